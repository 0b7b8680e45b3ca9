#pragma once
// The executable ResNet: nn:: blocks instantiated for one policy bundle and backend executor,
// built by compile() from the (already folded) parameter tree in models/resnet.hpp.

#include <vector>

#include "../nn/classifier_head.hpp"
#include "../nn/residual_block.hpp"
#include "../runtime/network.hpp"
#include "resnet.hpp"

namespace visopt::models {

template <PolicyBundle P, class Exec>
class ResNetNetwork final : public runtime::Network<Exec> {
 public:
  ResNetNetwork(Exec& exec, const ResNet& model)
      : name_(model.name), stem_(exec, model.stem), head_(exec, model.fc, nn::Pooling::global_average) {
    for (const auto& stage : model.stages) {
      for (const auto& block : stage) blocks_.emplace_back(exec, block);
    }
  }

  Tensor forward(Exec& exec, const Tensor& images) const override {
    Tensor x = exec.max_pool2d(stem_.forward(exec, images), 3, 2, 1);
    for (const auto& block : blocks_) x = block.forward(exec, x);
    return head_.forward(exec, x);
  }

  void check_input(const TensorView& images, int max_batch) const override {
    runtime::check_image_batch(images, max_batch, name_);
    // Five stride-2 stages: below 32 pixels a feature map would vanish.
    require(images.dim(2) >= 32 && images.dim(3) >= 32, name_, ": input has shape ", images.shape(),
            ", images must be at least 32x32");
  }

 private:
  std::string name_;
  nn::ConvBnAct<P, Exec> stem_;
  std::vector<nn::ResidualBlock<P, Exec>> blocks_;
  nn::ClassifierHead<P, Exec> head_;
};

}  // namespace visopt::models
