#pragma once
// Element types on the device: loads widen to float and stores narrow with round-to-nearest-even,
// so every kernel computes in fp32 whatever it stores. dispatch_dtype turns a runtime DType into
// the device type a kernel template is instantiated for.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "../../../core/dtype.hpp"
#include "../../../nn/op_specs.hpp"

namespace visopt::backend::cuda::kernels {

__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
// FP8 e4m3: round to nearest even, saturating to +-448 (what a calibrated step clips to) rather than NaN.
__device__ __forceinline__ float load(const __nv_fp8_e4m3* p) { return static_cast<float>(*p); }
__device__ __forceinline__ void store(__nv_fp8_e4m3* p, float v) { p->__x = __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3); }

__device__ __forceinline__ float activate(float x, nn::Activation act) {
  switch (act) {
    case nn::Activation::relu: return x > 0.0f ? x : 0.0f;
    case nn::Activation::gelu: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    default: return x;
  }
}

/// Calls f(T{}) with T = float, __half or __nv_bfloat16 for the given dtype.
template <class F>
void dispatch_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32: f(float{}); return;
    case DType::f16: f(__half{}); return;
    case DType::bf16: f(__nv_bfloat16{}); return;
    case DType::s8:
    case DType::u8:
    case DType::e4m3: break;
  }
  fail(visopt::detail::concat("cuda: no kernel for ", dtype_name(dtype), " tensors (visopt's CUDA kernels take f32, f16 and bf16; "
                              "FP8 tensors are read by FP8 matmuls and made by rescale())"));
}

/// Grid size for a grid-stride loop over n elements.
inline unsigned blocks_for(long long n, int threads = 256) {
  const long long blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535LL * 8 ? 65535LL * 8 : blocks));
}

}  // namespace visopt::backend::cuda::kernels
