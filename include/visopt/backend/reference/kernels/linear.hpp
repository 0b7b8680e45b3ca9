#pragma once
// fp32 fully connected layer (torch.nn.Linear) as one Eigen GEMM with a fused epilogue in the
// transformer's order: the activation applies to x·wᵀ + bias, and the residual is added after it.

#include <Eigen/Dense>

#include <vector>

#include "common.hpp"

namespace visopt::backend::reference {

/// y = act(x·wᵀ + bias), then y += residual when residual is given — in that order, as a transformer
/// block uses it: an MLP's fc1 has GELU and no residual, its fc2 has the residual and no activation.
/// x [..., K] and y [..., N] have the same leading extents (flattened into M rows); w is [N,K] (PyTorch's
/// layout); bias is [N] or null; residual has y's shape, or is null; it is either y's own data (then
/// y += act(x·wᵀ + bias) in place, a transformer's x = x + fc2(h)) or does not overlap y. y must not alias x.
inline void linear(TensorView x, TensorView w, const float* bias, TensorView y, const float* residual,
                   nn::Activation act) {
  constexpr std::string_view where = "reference::linear";
  detail::require_dense_f32(x, where, "input");
  detail::require_dense_f32(w, where, "weight");
  detail::require_dense_f32(y, where, "output");
  require(w.rank() == 2, where, ": weight has shape ", w.shape(), ", expected [N,K]");
  require(x.rank() >= 1 && x.dim(x.rank() - 1) == w.dim(1), where, ": input has shape ", x.shape(),
          ", weight ", w.shape(), " expects K=", w.dim(1), " features");
  Shape expected = x.shape();
  expected[expected.rank() - 1] = w.dim(0);
  detail::require_shape(y, expected, where, "output");

  const int64_t k = w.dim(1), n = w.dim(0);
  int64_t m = 1;
  for (int axis = 0; axis + 1 < x.rank(); ++axis) m *= x.dim(axis);
  using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  float* y_data = y.data_as<float>();
  const Eigen::Map<const RowMajorMatrix> input(x.data_as<float>(), m, k);
  const Eigen::Map<const RowMajorMatrix> weight(w.data_as<float>(), n, k);
  // Where y holds the residual: without an activation the GEMM accumulates onto it; with one, the
  // product goes to scratch first, since the activation must not see the residual.
  const float* skip = residual;
  float* gemm_out = y_data;
  if (residual == y_data && act == nn::Activation::none) {
    Eigen::Map<RowMajorMatrix>(y_data, m, n).noalias() += input * weight.transpose();
    skip = nullptr;
  } else {
    if (residual == y_data) {
      thread_local std::vector<float> buffer;
      gemm_out = detail::scratch(buffer, static_cast<std::size_t>(m * n));
    }
    Eigen::Map<RowMajorMatrix>(gemm_out, m, n).noalias() = input * weight.transpose();
  }
  if (bias == nullptr && skip == nullptr && act == nn::Activation::none) return;
  detail::with_activation(act, [&](auto a) {
#pragma omp parallel for schedule(static) if (m >= 2 && m * n >= 16384)
    for (int64_t i = 0; i < m; ++i) {
      const float* in = gemm_out + i * n;
      float* row = y_data + i * n;
      const float* res = skip ? skip + i * n : nullptr;
      for (int64_t j = 0; j < n; ++j) {
        const float v = apply_activation(in[j] + (bias ? bias[j] : 0.0f), decltype(a)::value);
        row[j] = res ? v + res[j] : v;
      }
    }
  });
}

}  // namespace visopt::backend::reference
