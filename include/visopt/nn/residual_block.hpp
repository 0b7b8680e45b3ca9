#pragma once
// torchvision's residual blocks: BasicBlock (two 3×3 convs) and Bottleneck (1×1, 3×3, 1×1), with an
// optional downsampling shortcut; ReLU follows the shortcut add. One class serves both, since they
// differ only in their list of convolutions.

#include <vector>

#include "conv_bn_act.hpp"

namespace visopt::nn {

template <PolicyBundle P, class Exec>
class ResidualBlock {
 public:
  ResidualBlock(Exec& exec, const ResidualBlockParams& params) {
    for (std::size_t i = 0; i < params.convs.size(); ++i) {
      const bool last = i + 1 == params.convs.size();
      convs_.emplace_back(exec, params.convs[i], last, last ? Activation::relu : Activation::none);
    }
    if (params.downsample) downsample_.emplace(exec, *params.downsample);
  }

  Tensor forward(Exec& exec, const Tensor& x) const {
    const Tensor shortcut = downsample_ ? downsample_->forward(exec, x) : x;
    Tensor y = x;
    for (std::size_t i = 0; i + 1 < convs_.size(); ++i) y = convs_[i].forward(exec, y);
    return convs_.back().forward(exec, y, &shortcut);
  }

 private:
  std::vector<ConvBnAct<P, Exec>> convs_;
  std::optional<ConvBnAct<P, Exec>> downsample_;
};

template <PolicyBundle P, class Exec> using BasicBlock = ResidualBlock<P, Exec>;
template <PolicyBundle P, class Exec> using Bottleneck = ResidualBlock<P, Exec>;

}  // namespace visopt::nn
