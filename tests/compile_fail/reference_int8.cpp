// Must NOT compile: calibrated 8-bit precision (O4) does not run on the reference backend (CTest checks the message).
#include <visopt/visopt.hpp>
int main() {
  auto engine = visopt::compile<visopt::O4, visopt::backend::Reference>(visopt::models::resnet(18, visopt::models::RandomWeights{}));
  return 0;
}
