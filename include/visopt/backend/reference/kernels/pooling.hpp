#pragma once
// fp32 NCHW pooling with PyTorch's rules: max pooling whose padding never wins (it counts as −inf),
// and adaptive average pooling to any output size (ResNet's global pool is the 1×1 case).

#include <algorithm>
#include <limits>

#include "common.hpp"

namespace visopt::backend::reference {

/// torch.nn.MaxPool2d(kernel, stride, padding) (square window, floor mode): x [N,C,H,W] into y
/// [N,C,P,Q] with P,Q from nn::pool2d_output_shape. A NaN in a window propagates, as in PyTorch.
inline void max_pool2d(TensorView x, TensorView y, int kernel, int stride, int padding) {
  constexpr std::string_view where = "reference::max_pool2d";
  detail::require_dense_f32(x, where, "input");
  detail::require_dense_f32(y, where, "output");
  const Shape out_shape = nn::pool2d_output_shape(x.shape(), kernel, stride, padding, where);
  detail::require_shape(y, out_shape, where, "output");
  const int64_t planes = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3);
  const int64_t p_out = out_shape[2], q_out = out_shape[3];
  const float* in = x.data_as<float>();
  float* out = y.data_as<float>();
#pragma omp parallel for schedule(static) if (planes >= 2 && x.numel() >= 16384)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const float* src = in + plane * h * w;
    float* dst = out + plane * p_out * q_out;
    for (int64_t p = 0; p < p_out; ++p) {
      const int64_t h_begin = std::max<int64_t>(p * stride - padding, 0);
      const int64_t h_end = std::min<int64_t>(p * stride - padding + kernel, h);
      for (int64_t q = 0; q < q_out; ++q) {
        const int64_t w_begin = std::max<int64_t>(q * stride - padding, 0);
        const int64_t w_end = std::min<int64_t>(q * stride - padding + kernel, w);
        float best = -std::numeric_limits<float>::infinity();
        for (int64_t ih = h_begin; ih < h_end; ++ih) {
          for (int64_t iw = w_begin; iw < w_end; ++iw) {
            const float v = src[ih * w + iw];
            if (v > best || std::isnan(v)) best = v;
          }
        }
        dst[p * q_out + q] = best;
      }
    }
  }
}

/// torch.nn.AdaptiveAvgPool2d((P,Q)): x [N,C,H,W] into y [N,C,P,Q] for any P,Q >= 1 (smaller or larger
/// than H,W); output cell (i,j) averages rows [⌊i·H/P⌋, ⌈(i+1)·H/P⌉) and the same rule for columns.
inline void adaptive_avg_pool2d(TensorView x, TensorView y) {
  constexpr std::string_view where = "reference::adaptive_avg_pool2d";
  detail::require_dense_f32(x, where, "input");
  detail::require_dense_f32(y, where, "output");
  require(x.rank() == 4, where, ": input has shape ", x.shape(), ", expected rank 4 [N,C,H,W]");
  require(y.rank() == 4 && y.dim(0) == x.dim(0) && y.dim(1) == x.dim(1) && y.dim(2) >= 1 && y.dim(3) >= 1, where,
          ": output has shape ", y.shape(), ", expected [", x.dim(0), ",", x.dim(1), ",P,Q] with P,Q >= 1");
  require(x.dim(2) >= 1 && x.dim(3) >= 1, where, ": input has shape ", x.shape(), ", with an empty plane");
  const int64_t planes = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3);
  const int64_t p_out = y.dim(2), q_out = y.dim(3);
  const float* in = x.data_as<float>();
  float* out = y.data_as<float>();
#pragma omp parallel for schedule(static) if (planes >= 2 && x.numel() >= 16384)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const float* src = in + plane * h * w;
    float* dst = out + plane * p_out * q_out;
    for (int64_t i = 0; i < p_out; ++i) {
      const int64_t h_begin = i * h / p_out, h_end = ((i + 1) * h + p_out - 1) / p_out;
      for (int64_t j = 0; j < q_out; ++j) {
        const int64_t w_begin = j * w / q_out, w_end = ((j + 1) * w + q_out - 1) / q_out;
        // Summed in double: the global pool of a 7×7 (or larger) plane is an oracle for fp32 backends.
        double sum = 0.0;
        for (int64_t ih = h_begin; ih < h_end; ++ih) {
          for (int64_t iw = w_begin; iw < w_end; ++iw) sum += src[ih * w + iw];
        }
        dst[i * q_out + j] = static_cast<float>(sum / static_cast<double>((h_end - h_begin) * (w_end - w_begin)));
      }
    }
  }
}

}  // namespace visopt::backend::reference
