#pragma once
// fp32 multi-head self-attention core (torch.nn.MultiheadAttention between in_proj and out_proj):
// softmax(Q·Kᵀ/√head_dim)·V per batch and head, reading Q, K, V straight out of the packed qkv
// projection, one (batch, head) per thread with an L×L score matrix in per-thread scratch.

#include <Eigen/Dense>

#include "common.hpp"
#include "softmax.hpp"

namespace visopt::backend::reference {

/// qkv [B,L,3·D] holds q | k | v along its last axis, each D = heads·head_dim wide with head h in columns
/// [h·head_dim, (h+1)·head_dim) of its third (PyTorch's in_proj order). Writes y [B,L,D], head h's
/// softmax(Q_h·K_hᵀ/√head_dim)·V_h into the same columns. y must not alias qkv.
inline void self_attention(TensorView qkv, int heads, TensorView y) {
  constexpr std::string_view where = "reference::self_attention";
  detail::require_dense_f32(qkv, where, "qkv");
  detail::require_dense_f32(y, where, "output");
  require(qkv.rank() == 3 && qkv.dim(2) % 3 == 0, where, ": qkv has shape ", qkv.shape(),
          ", expected [B,L,3*D]");
  require(heads >= 1 && qkv.dim(2) / 3 % heads == 0 && qkv.dim(2) > 0, where, ": qkv has shape ", qkv.shape(),
          ", whose D=", qkv.dim(2) / 3, " is not a positive multiple of heads=", heads);
  detail::require_shape(y, Shape{qkv.dim(0), qkv.dim(1), qkv.dim(2) / 3}, where, "output");

  const int64_t batch = qkv.dim(0), length = qkv.dim(1), d = qkv.dim(2) / 3, head_dim = d / heads;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  const float* in = qkv.data_as<float>();
  float* out = y.data_as<float>();
  using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Strided = Eigen::Map<const RowMajorMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;
  using StridedOut = Eigen::Map<RowMajorMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;

  auto run_item = [&](int64_t item) {
    const int64_t b = item / heads, h = item % heads;
    const float* base = in + b * length * 3 * d + h * head_dim;
    const Strided q(base, length, head_dim, Eigen::OuterStride<>(3 * d));
    const Strided k(base + d, length, head_dim, Eigen::OuterStride<>(3 * d));
    const Strided v(base + 2 * d, length, head_dim, Eigen::OuterStride<>(3 * d));
    thread_local std::vector<float> buffer;
    Eigen::Map<RowMajorMatrix> scores(detail::scratch(buffer, static_cast<std::size_t>(length * length)), length,
                                      length);
    scores.noalias() = (scale * q) * k.transpose();
    for (int64_t i = 0; i < length; ++i) detail::softmax_row(scores.data() + i * length, length);
    StridedOut(out + b * length * d + h * head_dim, length, head_dim, Eigen::OuterStride<>(d)).noalias() =
        scores * v;
  };

  const int64_t items = batch * heads;
  if (items >= 2 && detail::available_threads() > 1) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) run_item(item);
  } else {
    for (int64_t item = 0; item < items; ++item) run_item(item);
  }
}

}  // namespace visopt::backend::reference
