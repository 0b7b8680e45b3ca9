// quickstart: the program docs/getting-started.md walks through, built and run by the tests so that
// the page stays true. A ResNet-50 with seeded random weights, compiled at O1 on the reference backend.
#include <iostream>

#include <visopt/visopt.hpp>

int main() {
  // With a real checkpoint (tools/export_weights.py makes one), keep the file open while compiling:
  //   auto weights = visopt::io::SafeTensors::open("resnet50.safetensors");
  //   auto model   = visopt::models::resnet50(weights);
  auto model = visopt::models::resnet50(visopt::models::RandomWeights{0});
  auto engine = visopt::compile<visopt::O1, visopt::backend::Reference>(model, {.max_batch = 2});

  visopt::Tensor images = visopt::Tensor::zeros({2, 3, 224, 224});  // f32 NCHW, normalised as torchvision does
  visopt::Tensor logits = engine.run(images);                        // host f32 [2, 1000]

  std::cout << engine.report() << '\n' << "logits: " << logits.shape() << '\n';
  return 0;
}
