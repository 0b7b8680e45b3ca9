#pragma once
// What every launch of visopt's own kernels shares: the dtype dispatch with its launch check, typed
// data pointers and 4-D strides. The operation families (elementwise.hpp, pooling.hpp, tokens.hpp,
// layer_norm.hpp, attention.hpp) launch through these.

#include "../../core/tensor.hpp"
#include "check.hpp"
#include "context.hpp"
#include "kernels/pooling.cuh"  // kernels::Strides4
#include "kernels/types.cuh"

namespace visopt::backend::cuda {

/// Runs `body(T{})` for the kernel type of `dtype` (float, __half or __nv_bfloat16), then checks the launch.
template <class Launch>
void launch(const char* name, DType dtype, Launch&& body) {
  kernels::dispatch_dtype(dtype, body);
  VISOPT_CUDA_CHECK_LAUNCH(name);
}

template <class T>
const T* in(const Tensor& t) {
  return static_cast<const T*>(t.data());
}
template <class T>
T* out(const Tensor& t) {
  return static_cast<T*>(t.data());
}
inline kernels::Strides4 strides4(const Tensor& t) {
  return {t.view().stride(0), t.view().stride(1), t.view().stride(2), t.view().stride(3)};
}
/// A pool tensor of x's shape, dtype and layout.
inline Tensor like(Context& context, const Tensor& x) { return context.allocate(x.shape(), x.dtype(), x.view().format()); }

}  // namespace visopt::backend::cuda
