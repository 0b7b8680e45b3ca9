#pragma once
// What the reference kernels share: the scalar activation, the checks every kernel makes on its
// TensorViews (host, fp32, dense row-major, expected shape), per-thread scratch and the OpenMP query.
// The reference backend is the oracle of the others, so it favours clarity and fp32 accuracy.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "visopt/core/error.hpp"
#include "visopt/core/shape.hpp"
#include "visopt/core/tensor.hpp"
#include "visopt/nn/op_specs.hpp"

namespace visopt::backend::reference {

using std::int64_t;

/// act(x) for one value; gelu is the exact erf form.
inline float apply_activation(float x, nn::Activation act) {
  switch (act) {
    case nn::Activation::none: return x;
    case nn::Activation::relu: return x > 0.0f ? x : 0.0f;
    case nn::Activation::gelu: return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752440f));
  }
  return x;
}

namespace detail {

template <nn::Activation A>
using activation_constant = std::integral_constant<nn::Activation, A>;

/// Calls f(activation_constant<act>{}) so that loops over elements see the activation as a constant
/// (and vectorise) instead of switching on it per element.
template <class F>
void with_activation(nn::Activation act, F&& f) {
  switch (act) {
    case nn::Activation::none: f(activation_constant<nn::Activation::none>{}); return;
    case nn::Activation::relu: f(activation_constant<nn::Activation::relu>{}); return;
    case nn::Activation::gelu: f(activation_constant<nn::Activation::gelu>{}); return;
  }
}

/// Threads an OpenMP parallel region would get here (1 without OpenMP or inside a parallel region).
inline int available_threads() {
#ifdef _OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

/// Throws unless `view` is a dense row-major fp32 host tensor; `where` names the kernel, `name` the argument.
inline void require_dense_f32(const TensorView& view, std::string_view where, std::string_view name) {
  require(!view.empty(), where, ": ", name, " is an empty view (null data)");
  require(view.dtype() == DType::f32, where, ": ", name, " of shape ", view.shape(), " is ",
          dtype_name(view.dtype()), ", the reference backend computes in f32 only");
  require(view.device().is_cpu(), where, ": ", name, " of shape ", view.shape(), " is on ",
          view.device().to_string(), ", the reference backend reads host memory only");
  require(view.is_contiguous(), where, ": ", name, " of shape ", view.shape(),
          " is not dense row-major (contiguous); the reference backend computes NCHW");
}

/// Throws unless `view` has exactly `expected` shape.
inline void require_shape(const TensorView& view, const Shape& expected, std::string_view where,
                          std::string_view name) {
  require(view.shape() == expected, where, ": ", name, " has shape ", view.shape(), ", expected ", expected);
}

/// Returns at least `count` floats of `buffer`, growing it only when it is too small, so that a scratch
/// buffer reused across calls of the same size is allocated once.
inline float* scratch(std::vector<float>& buffer, std::size_t count) {
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}

}  // namespace detail
}  // namespace visopt::backend::reference
