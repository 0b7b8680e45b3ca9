#pragma once
// Pass: fold an inference BatchNorm into the convolution before it, so that the network runs one
// conv with a bias instead of conv + normalise: w' = w·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β.

#include <cmath>

#include "../params.hpp"

namespace visopt::nn::passes {

/// Folds p.bn into p.conv (computed in double, stored fp32) and removes it. No-op when already folded.
inline void fold_batch_norm(nn::ConvBnActParams& p) {
  if (!p.bn) return;
  const nn::BatchNormParams& bn = *p.bn;
  const Tensor& w = p.conv.weight;
  const std::int64_t out = w.dim(0);
  const std::int64_t per_filter = w.numel() / out;
  Tensor folded_weight = Tensor::empty(w.shape());
  Tensor folded_bias = Tensor::empty({out});
  const float* src = w.data_as<float>();
  float* dst = folded_weight.data_as<float>();
  for (std::int64_t k = 0; k < out; ++k) {
    const double scale = static_cast<double>(bn.weight.data_as<float>()[k]) /
                         std::sqrt(static_cast<double>(bn.running_var.data_as<float>()[k]) + bn.eps);
    for (std::int64_t i = 0; i < per_filter; ++i) {
      dst[k * per_filter + i] = static_cast<float>(src[k * per_filter + i] * scale);
    }
    const double bias = p.conv.bias.defined() ? p.conv.bias.data_as<float>()[k] : 0.0;
    folded_bias.data_as<float>()[k] = static_cast<float>((bias - bn.running_mean.data_as<float>()[k]) * scale +
                                                         bn.bias.data_as<float>()[k]);
  }
  p.conv.weight = std::move(folded_weight);
  p.conv.bias = std::move(folded_bias);
  p.bn.reset();
}

/// Folds every conv's BatchNorm in a model that offers for_each_conv; returns how many were folded.
template <class Model>
int fold_batch_norms(Model& model) {
  int folded = 0;
  model.for_each_conv([&](nn::ConvBnActParams& p) {
    if (p.bn) {
      fold_batch_norm(p);
      ++folded;
    }
  });
  return folded;
}

}  // namespace visopt::nn::passes
