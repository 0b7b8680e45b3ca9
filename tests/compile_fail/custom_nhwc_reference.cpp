// Must NOT compile: a bundle of one's own that asks the reference backend for NHWC (examples/custom_policy
// and docs/levels-and-policies.md quote the message CTest checks).
#include <visopt/visopt.hpp>
using ChannelsLast = visopt::O1::with<visopt::layout::nhwc>;
int main() {
  auto engine = visopt::compile<ChannelsLast, visopt::backend::Reference>(visopt::models::resnet(18, visopt::models::RandomWeights{}));
  return 0;
}
