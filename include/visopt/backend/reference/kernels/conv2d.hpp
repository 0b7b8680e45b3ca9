#pragma once
// fp32 NCHW 2-D convolution (torch.nn.Conv2d with stride, zero padding, dilation and groups) with a
// fused epilogue y = act(conv(x, w) + bias + residual): im2col per image and group into per-thread
// scratch, then one Eigen GEMM; 1x1 stride-1 unpadded convolutions skip im2col.

#include <Eigen/Dense>
#include <algorithm>
#include <cstring>

#include "common.hpp"

namespace visopt::backend::reference {

namespace detail {

using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMatrixMap = Eigen::Map<const RowMajorMatrix>;
using MatrixMap = Eigen::Map<RowMajorMatrix>;

/// Unfolds `channels` planes of `x` (each H×W) into `col` [channels·R·S, P·Q], row (c,r,s) holding the
/// input pixel under kernel tap (r,s) for every output pixel, and 0 where the tap falls in the padding.
inline void im2col(const float* x, int64_t channels, int64_t h, int64_t w, int64_t r_taps, int64_t s_taps,
                   int64_t p_out, int64_t q_out, const nn::Conv2dGeometry& g, float* col, bool parallel) {
  const int64_t sh = g.stride_h, sw = g.stride_w;
#pragma omp parallel for schedule(static) if (parallel && channels >= 2)
  for (int64_t c = 0; c < channels; ++c) {
    const float* plane = x + c * h * w;
    for (int64_t r = 0; r < r_taps; ++r) {
      for (int64_t s = 0; s < s_taps; ++s) {
        float* row = col + ((c * r_taps + r) * s_taps + s) * p_out * q_out;
        // Output columns q whose input column q·sw + offset_w lies inside [0, w): one contiguous range.
        const int64_t offset_w = s * g.dilation_w - g.pad_w;
        const int64_t q_end = offset_w < w ? std::min(q_out, (w - 1 - offset_w) / sw + 1) : 0;
        const int64_t q_begin = std::min(q_end, offset_w < 0 ? (-offset_w + sw - 1) / sw : int64_t{0});
        for (int64_t p = 0; p < p_out; ++p) {
          float* out = row + p * q_out;
          const int64_t ih = p * sh + r * g.dilation_h - g.pad_h;
          if (ih < 0 || ih >= h) {
            std::fill(out, out + q_out, 0.0f);
            continue;
          }
          const float* in = plane + ih * w + offset_w;
          std::fill(out, out + q_begin, 0.0f);
          if (sw == 1) {
            std::memcpy(out + q_begin, in + q_begin, static_cast<std::size_t>(q_end - q_begin) * sizeof(float));
          } else {
            for (int64_t q = q_begin; q < q_end; ++q) out[q] = in[q * sw];
          }
          std::fill(out + q_end, out + q_out, 0.0f);
        }
      }
    }
  }
}

/// y[k,:] = act(y[k,:] + bias[k] + residual[k,:]) over `rows` output channels of `cols` pixels each.
/// The order (residual before the activation) is ResNet's: relu(bn(conv(x)) + identity).
inline void conv_epilogue(float* y, const float* bias, const float* residual, int64_t rows, int64_t cols,
                          nn::Activation act, bool parallel) {
  if (bias == nullptr && residual == nullptr && act == nn::Activation::none) return;
  with_activation(act, [&](auto a) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t k = 0; k < rows; ++k) {
      float* out = y + k * cols;
      const float b = bias ? bias[k] : 0.0f;
      const float* res = residual ? residual + k * cols : nullptr;
      for (int64_t i = 0; i < cols; ++i) {
        const float v = out[i] + b + (res ? res[i] : 0.0f);
        out[i] = apply_activation(v, decltype(a)::value);
      }
    }
  });
}

}  // namespace detail

/// y = act(conv2d(x, w) + bias + residual), PyTorch's Conv2d semantics (cross-correlation, zero padding).
/// x [N,C,H,W], w [K,C/groups,R,S], y [N,K,P,Q] with P,Q from nn::conv2d_output_shape, all dense fp32 host
/// tensors; bias is [K] or null; residual has y's shape and layout, or is null. y must not alias x or w;
/// residual is either y's own data (the residual is then read from y and the sum written over it) or
/// does not overlap y. Batches of two or more images (or groups) run one per thread; a single image
/// leaves the threads to Eigen's GEMM.
inline void conv2d(TensorView x, TensorView w, const float* bias, const nn::Conv2dGeometry& g, TensorView y,
                   const float* residual, nn::Activation act) {
  constexpr std::string_view where = "reference::conv2d";
  detail::require_dense_f32(x, where, "input");
  detail::require_dense_f32(w, where, "weight");
  detail::require_dense_f32(y, where, "output");
  const Shape out_shape = nn::conv2d_output_shape(x.shape(), w.shape(), g, where);
  detail::require_shape(y, out_shape, where, "output");

  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3);
  const int64_t k = w.dim(0), r_taps = w.dim(2), s_taps = w.dim(3);
  const int64_t p_out = out_shape[2], q_out = out_shape[3], pixels = p_out * q_out;
  const int64_t groups = g.groups, c_group = c / groups, k_group = k / groups;
  const int64_t depth = c_group * r_taps * s_taps;  // GEMM inner dimension
  const bool direct = r_taps == 1 && s_taps == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 &&
                      g.pad_w == 0;  // then x itself is the [C, H·W] column matrix
  const float* x_data = x.data_as<float>();
  const float* w_data = w.data_as<float>();
  float* y_data = y.data_as<float>();
  const bool residual_in_place = residual == y_data;

  // One work item is one (image, group): im2col, GEMM, epilogue, all while the slice is in cache.
  auto run_item = [&](int64_t item, bool threaded) {
    const int64_t image = item / groups, group = item % groups;
    const float* x_slice = x_data + (image * c + group * c_group) * h * wd;
    const float* columns = x_slice;
    if (!direct) {
      thread_local std::vector<float> buffer;
      float* col = detail::scratch(buffer, static_cast<std::size_t>(depth * pixels));
      detail::im2col(x_slice, c_group, h, wd, r_taps, s_taps, p_out, q_out, g, col, threaded);
      columns = col;
    }
    const int64_t y_offset = (image * k + group * k_group) * pixels;
    detail::MatrixMap out(y_data + y_offset, k_group, pixels);
    const detail::ConstMatrixMap filters(w_data + group * k_group * depth, k_group, depth);
    const detail::ConstMatrixMap unfolded(columns, depth, pixels);
    if (residual_in_place) {
      out.noalias() += filters * unfolded;  // y holds the residual: the GEMM accumulates onto it
    } else {
      out.noalias() = filters * unfolded;
    }
    detail::conv_epilogue(out.data(), bias ? bias + group * k_group : nullptr,
                          residual && !residual_in_place ? residual + y_offset : nullptr, k_group, pixels, act,
                          threaded);
  };

  const int64_t items = n * groups;
  if (items >= 2 && detail::available_threads() > 1) {
    // Eigen's GEMM runs single-threaded inside a parallel region, so the items share the cores.
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) run_item(item, false);
  } else {
    for (int64_t item = 0; item < items; ++item) run_item(item, true);
  }
}

}  // namespace visopt::backend::reference
