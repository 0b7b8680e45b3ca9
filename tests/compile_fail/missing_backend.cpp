// Must NOT compile: backend::Cuda in a program that does not link visopt::cuda (no VISOPT_HAS_CUDA).
#include <visopt/visopt.hpp>
int main() {
  auto engine = visopt::compile<visopt::O1, visopt::backend::Cuda>(visopt::models::resnet(18, visopt::models::RandomWeights{}));
  return 0;
}
