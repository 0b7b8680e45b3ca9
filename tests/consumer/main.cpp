// Builds and runs a model through the installed headers: the smallest real use of the package.
#include <visopt/visopt.hpp>

#include <iostream>

int main() {
  auto engine = visopt::compile<visopt::O1, visopt::backend::Reference>(
      visopt::models::resnet18(visopt::models::RandomWeights{7}), {.max_batch = 1, .image_size = 32, .warmup = 0});
  const visopt::Tensor logits = engine.run(visopt::Tensor::zeros({1, 3, 32, 32}));
  std::cout << "consumer: " << logits.shape() << " logits\n";
  return logits.dim(1) == 1000 ? 0 : 1;
}
