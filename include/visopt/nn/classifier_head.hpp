#pragma once
// ClassifierHead: pools the features to one vector per image (global average for ResNet, the class
// token for ViT, normalised first when the model has a final LayerNorm) and applies the classifier.
// A distilled DeiT has a second classifier on its distillation token; the two logits are averaged.

#include <optional>

#include "../policy/policy.hpp"
#include "params.hpp"

namespace visopt::nn {

enum class Pooling { global_average, class_token };

/// `linear` with weight and bias times `factor` (a fresh copy): halving both heads of a distilled DeiT
/// turns the average of their logits into a sum, which the second head's epilogue adds. Exact: ×0.5
/// only changes the exponent.
inline LinearParams scaled(const LinearParams& linear, float factor) {
  auto times = [factor](const Tensor& t) {
    Tensor out = Tensor::empty(t.shape());
    const float* from = t.data_as<float>();
    float* to = out.data_as<float>();
    for (std::int64_t i = 0; i < t.numel(); ++i) to[i] = from[i] * factor;
    return out;
  };
  return {times(linear.weight), linear.bias.defined() ? times(linear.bias) : Tensor{}};
}

template <PolicyBundle P, class Exec>
class ClassifierHead {
 public:
  /// `distillation`: a distilled DeiT's head_dist, applied to token 1 and averaged with `fc` on token 0.
  ClassifierHead(Exec& exec, const LinearParams& fc, Pooling pooling, const LayerNormParams* norm = nullptr,
                 const LinearParams* distillation = nullptr)
      : fc_(exec.prepare_linear(distillation ? scaled(fc, 0.5f) : fc, {})), pooling_(pooling) {
    if (norm) norm_ = exec.prepare_layer_norm(*norm);
    if (distillation) {
      distillation_ = exec.prepare_linear(scaled(*distillation, 0.5f), {Activation::none, P::fusion::fuses_epilogue});
    }
  }

  /// features [N,C,H,W] (global_average) or tokens [N,L,D] (class_token) -> logits [N, classes]
  Tensor forward(Exec& exec, const Tensor& features) const {
    if (pooling_ == Pooling::global_average) return exec.linear(fc_, exec.global_avg_pool(features));
    const Tensor logits = exec.linear(fc_, token(exec, features, 0));
    if (!distillation_) return logits;
    const Tensor distilled = token(exec, features, 1);
    if constexpr (P::fusion::fuses_epilogue) {
      return exec.linear(*distillation_, distilled, &logits);  // (head(cls) + head_dist(dist)) / 2 in one epilogue
    } else {
      return exec.add(logits, exec.linear(*distillation_, distilled));
    }
  }

 private:
  /// tokens [N,L,D] -> [N,D], normalised: LayerNorm is per token, so normalising after selecting is exact.
  Tensor token(Exec& exec, const Tensor& tokens, std::int64_t index) const {
    Tensor pooled = exec.select_token(tokens, index);
    return norm_ ? exec.layer_norm(*norm_, pooled) : pooled;
  }

  typename Exec::Linear fc_;
  std::optional<typename Exec::LayerNorm> norm_;
  std::optional<typename Exec::Linear> distillation_;
  Pooling pooling_;
};

}  // namespace visopt::nn
