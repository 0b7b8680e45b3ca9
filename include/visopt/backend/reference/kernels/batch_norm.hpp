#pragma once
// Inference-mode batch normalisation on fp32 NCHW (torch.nn.BatchNorm2d in eval()): each channel is
// normalised with its running statistics. Compiled levels fold BN into the conv; O0 runs this.

#include <algorithm>

#include "common.hpp"

namespace visopt::backend::reference {

/// y = (x − mean[c]) / sqrt(var[c] + eps) · gamma[c] + beta[c] for x, y [N,C,H,W] (or [N,C]); the four
/// statistics are [C] arrays. y may be x (in place).
inline void batch_norm(TensorView x, const float* mean, const float* var, const float* gamma, const float* beta,
                       float eps, TensorView y) {
  constexpr std::string_view where = "reference::batch_norm";
  detail::require_dense_f32(x, where, "input");
  detail::require_dense_f32(y, where, "output");
  require(x.rank() >= 2, where, ": input has shape ", x.shape(), ", expected [N,C,H,W] or [N,C]");
  detail::require_shape(y, x.shape(), where, "output");
  require(mean && var && gamma && beta, where, ": mean, var, gamma and beta must all be given");
  require(eps >= 0.0f, where, ": eps is ", eps, ", must be >= 0");
  const int64_t n = x.dim(0), c = x.dim(1), plane = x.numel() / std::max<int64_t>(n * c, 1);
  const float* in = x.data_as<float>();
  float* out = y.data_as<float>();
#pragma omp parallel for schedule(static) if (n * c >= 2 && x.numel() >= 4096)
  for (int64_t nc = 0; nc < n * c; ++nc) {
    const int64_t ch = nc % c;
    // Centre first, then scale: x·scale + shift would cancel badly where x is close to the mean.
    const float centre = mean[ch], offset = beta[ch];
    const float scale =
        static_cast<float>(gamma[ch] / std::sqrt(static_cast<double>(var[ch]) + static_cast<double>(eps)));
    const float* src = in + nc * plane;
    float* dst = out + nc * plane;
    for (int64_t i = 0; i < plane; ++i) dst[i] = (src[i] - centre) * scale + offset;
  }
}

}  // namespace visopt::backend::reference
