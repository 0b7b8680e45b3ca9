#pragma once
// Element-wise fp32 kernels of the unfused path (O0): an activation on its own, and the residual
// addition with an optional activation after it (ResNet's relu(out + identity)).

#include "common.hpp"

namespace visopt::backend::reference {

namespace detail {
// Below this many elements a parallel region costs more than it saves.
inline constexpr int64_t elementwise_parallel_threshold = 1 << 15;
}  // namespace detail

/// y = act(x) element-wise; x and y have the same shape; y may be x (in place).
inline void activation(TensorView x, TensorView y, nn::Activation act) {
  constexpr std::string_view where = "reference::activation";
  detail::require_dense_f32(x, where, "input");
  detail::require_dense_f32(y, where, "output");
  detail::require_shape(y, x.shape(), where, "output");
  const float* in = x.data_as<float>();
  float* out = y.data_as<float>();
  const int64_t count = x.numel();
  detail::with_activation(act, [&](auto a) {
#pragma omp parallel for schedule(static) if (count >= detail::elementwise_parallel_threshold)
    for (int64_t i = 0; i < count; ++i) out[i] = apply_activation(in[i], decltype(a)::value);
  });
}

/// y = act(a + b) element-wise; a, b and y have the same shape; y may be a or b (in place).
inline void add(TensorView a, TensorView b, TensorView y, nn::Activation act = nn::Activation::none) {
  constexpr std::string_view where = "reference::add";
  detail::require_dense_f32(a, where, "first input");
  detail::require_dense_f32(b, where, "second input");
  detail::require_dense_f32(y, where, "output");
  require(a.shape() == b.shape(), where, ": inputs have shapes ", a.shape(), " and ", b.shape(),
          ", expected equal shapes");
  detail::require_shape(y, a.shape(), where, "output");
  const float* lhs = a.data_as<float>();
  const float* rhs = b.data_as<float>();
  float* out = y.data_as<float>();
  const int64_t count = a.numel();
  detail::with_activation(act, [&](auto f) {
#pragma omp parallel for schedule(static) if (count >= detail::elementwise_parallel_threshold)
    for (int64_t i = 0; i < count; ++i) out[i] = apply_activation(lhs[i] + rhs[i], decltype(f)::value);
  });
}

}  // namespace visopt::backend::reference
