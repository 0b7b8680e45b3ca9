#pragma once
// ClassifierHead: pools the features to one vector per image (global average for ResNet, the class
// token for ViT, normalised first when the model has a final LayerNorm) and applies the classifier.

#include "../policy/policy.hpp"
#include "params.hpp"

namespace visopt::nn {

enum class Pooling { global_average, class_token };

template <PolicyBundle P, class Exec>
class ClassifierHead {
 public:
  ClassifierHead(Exec& exec, const LinearParams& fc, Pooling pooling, const LayerNormParams* norm = nullptr)
      : fc_(exec.prepare_linear(fc, {})), pooling_(pooling) {
    if (norm) norm_ = exec.prepare_layer_norm(*norm);
  }

  /// features [N,C,H,W] (global_average) or tokens [N,L,D] (class_token) -> logits [N, classes]
  Tensor forward(Exec& exec, const Tensor& features) const {
    Tensor pooled = pooling_ == Pooling::global_average ? exec.global_avg_pool(features) : exec.select_token(features, 0);
    if (norm_) pooled = exec.layer_norm(*norm_, pooled);  // LayerNorm is per token, so normalising after selecting is exact
    return exec.linear(fc_, pooled);
  }

 private:
  typename Exec::Linear fc_;
  std::optional<typename Exec::LayerNorm> norm_;
  Pooling pooling_;
};

}  // namespace visopt::nn
