// Must NOT compile: backend::Cuda exists only in .cu files built by nvcc with the CUDA backend.
#include <visopt/visopt.hpp>
int main() {
  auto engine = visopt::compile<visopt::O1, visopt::backend::Cuda>(visopt::models::resnet(18, visopt::models::RandomWeights{}));
  return 0;
}
