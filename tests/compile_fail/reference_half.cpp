// Must NOT compile: the reference backend computes in fp32 only (CTest checks the message).
#include <visopt/visopt.hpp>
int main() {
  auto engine = visopt::compile<visopt::O2, visopt::backend::Reference>(visopt::models::resnet(18, visopt::models::RandomWeights{}));
  return 0;
}
