#pragma once
// The executable ResNet: nn:: blocks instantiated for one policy bundle and backend executor,
// built by compile() from the (already folded) parameter tree in models/resnet.hpp; and the family's
// traits (models/traits.hpp).

#include <string>
#include <vector>

#include "../nn/classifier_head.hpp"
#include "../nn/residual_block.hpp"
#include "../nn/passes/fold_batch_norm.hpp"
#include "../services/network.hpp"
#include "resnet.hpp"
#include "traits.hpp"

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

template <>
struct ModelTraits<ResNet> {
  static constexpr std::string_view family = "resnet";
  template <PolicyBundle P, class Exec>
  using Network = ResNetNetwork<P, Exec>;
  static constexpr std::string_view fused_epilogue = "bias, shortcut add and ReLU computed in each convolution's epilogue";

  /// Any square size from 32 (five stride-2 stages): `requested`, or 224 when 0.
  static int image_size(const ResNet& model, int requested, std::string_view who) {
    const int size = requested > 0 ? requested : 224;
    require(size >= 32, who, model.name, ": image size ", size, " is below ResNet's 32x32");
    return size;
  }
  /// BatchNorm folded into its convolution where the level folds (O1+).
  template <PolicyBundle Level>
  static void run_passes(ResNet& model, runtime::Report* report) {
    if constexpr (Level::fusion::folds_batch_norm) {
      const int folded = nn::passes::fold_batch_norms(model);
      if (report) report->applied("fold_bn", std::to_string(folded) + " BatchNorms folded into their convolutions");
    } else if (report) {
      report->skipped("fold_bn", "fusion=none keeps BatchNorm as its own operation");
    }
  }
  /// torchvision's evaluation transform.
  static io::Preprocess preprocess(const ResNet&, int image_size) { return io::torchvision_transform(image_size); }
};

}  // namespace visopt::models
