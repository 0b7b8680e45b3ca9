#pragma once
// fp32 layer normalisation over the last axis (torch.nn.LayerNorm(D)), with each row's mean and
// biased variance accumulated in double so that the oracle stays exact for rows with a large offset.

#include "common.hpp"

namespace visopt::backend::reference {

/// y = (x − mean) / sqrt(var + eps) · gamma + beta per row of x [..., D], with mean and var (biased, as in
/// PyTorch) over that row; gamma and beta are [D], or null for a LayerNorm without affine parameters.
/// y has x's shape and may be x (in place).
inline void layer_norm(TensorView x, const float* gamma, const float* beta, float eps, TensorView y) {
  constexpr std::string_view where = "reference::layer_norm";
  detail::require_dense_f32(x, where, "input");
  detail::require_dense_f32(y, where, "output");
  require(x.rank() >= 1 && x.dim(x.rank() - 1) >= 1, where, ": input has shape ", x.shape(),
          ", expected [..., D] with D >= 1");
  detail::require_shape(y, x.shape(), where, "output");
  require(eps >= 0.0f, where, ": eps is ", eps, ", must be >= 0");
  const int64_t d = x.dim(x.rank() - 1), rows = x.numel() / d;
  const float* in = x.data_as<float>();
  float* out = y.data_as<float>();
#pragma omp parallel for schedule(static) if (rows >= 2 && x.numel() >= 16384)
  for (int64_t i = 0; i < rows; ++i) {
    const float* src = in + i * d;
    float* dst = out + i * d;
    double sum = 0.0;
    for (int64_t j = 0; j < d; ++j) sum += src[j];
    const double mean = sum / static_cast<double>(d);
    double squares = 0.0;
    for (int64_t j = 0; j < d; ++j) {
      const double centred = src[j] - mean;
      squares += centred * centred;
    }
    const double inv_std = 1.0 / std::sqrt(squares / static_cast<double>(d) + static_cast<double>(eps));
    for (int64_t j = 0; j < d; ++j) {
      const double normalised = (src[j] - mean) * inv_std;
      dst[j] = static_cast<float>(normalised * (gamma ? gamma[j] : 1.0f) + (beta ? beta[j] : 0.0f));
    }
  }
}

}  // namespace visopt::backend::reference
