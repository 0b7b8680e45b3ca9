#pragma once
// Elementwise operations on visopt's kernels: inference BatchNorm as a per-channel affine (O0; from O1
// it is folded into the convolutions), activations, adds, and the conversions at the forward's ends
// (the staged f32 NCHW images into the level's dtype and layout; the logits back to f32), and the
// rescaling conversion into and out of FP8 at the FP8 layers' boundaries (O4).

#include "../../nn/epilogue.hpp"
#include "kernels/elementwise.cuh"
#include "launch.hpp"

namespace visopt::backend::cuda {

/// y = x·scale[c] + shift[c] per channel c (device f32 [C] each).
inline Tensor channel_affine(Context& context, const Tensor& x, const Tensor& scale, const Tensor& shift, bool nhwc) {
  Tensor y = like(context, x);
  const long long n = x.numel();
  const kernels::ChannelIndex channel{x.dim(1), x.dim(2) * x.dim(3), nhwc};
  launch("batch_norm", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    kernels::channel_epilogue_kernel<T><<<kernels::blocks_for(n), 256, 0, context.stream()>>>(
        in<T>(x), scale.data_as<float>(), shift.data_as<float>(), nullptr, out<T>(y), n, channel, nn::Activation::none);
  });
  return y;
}

inline Tensor activation(Context& context, const Tensor& x, nn::Activation act) {
  Tensor y = like(context, x);
  const long long n = x.numel();
  launch("activation", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    kernels::activation_kernel<T><<<kernels::blocks_for(n), 256, 0, context.stream()>>>(in<T>(x), out<T>(y), n, act);
  });
  return y;
}

inline Tensor add(Context& context, const Tensor& a, const Tensor& b) {
  Tensor y = like(context, a);
  const long long n = a.numel();
  launch("add", a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    kernels::add_kernel<T><<<kernels::blocks_for(n), 256, 0, context.stream()>>>(in<T>(a), in<T>(b), out<T>(y), n,
                                                                                  nn::Activation::none);
  });
  return y;
}

/// The staged f32 NCHW images in `dtype`, NHWC when `nhwc` (one kernel).
inline Tensor convert_images(Context& context, const Tensor& staged, DType dtype, bool nhwc) {
  Tensor x = context.allocate(staged.shape(), dtype, nhwc ? MemoryFormat::channels_last : MemoryFormat::contiguous);
  launch("convert_images", dtype, [&](auto tag) {
    using T = decltype(tag);
    const long long spatial = staged.dim(2) * staged.dim(3);
    kernels::convert_images_kernel<T><<<dim3(kernels::blocks_for(spatial), static_cast<unsigned>(staged.dim(0))), 256, 0,
                                        context.stream()>>>(staged.data_as<float>(), out<T>(x),
                                                            static_cast<int>(staged.dim(1)), spatial, nhwc);
  });
  return x;
}

/// Logits in f32 (a copy in f32 of half-precision logits; f32 logits as they are).
inline Tensor to_float(Context& context, const Tensor& logits) {
  if (logits.dtype() == DType::f32) return logits;
  Tensor y = context.allocate(logits.shape(), DType::f32);
  const long long n = logits.numel();
  launch("to_float", logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    kernels::to_float_kernel<T><<<kernels::blocks_for(n), 256, 0, context.stream()>>>(in<T>(logits), y.data_as<float>(), n);
  });
  return y;
}

/// y = x·scale converted to y's type, where one of x and y is FP8 (e4m3) and the other f32, f16 or bf16:
/// quantize with scale = 1/step, dequantize with scale = step. One kernel, 8 elements per thread.
inline void rescale(Context& context, const Tensor& x, const Tensor& y, float scale) {
  require(x.numel() == y.numel() && x.numel() % 8 == 0 && (x.dtype() == DType::e4m3) != (y.dtype() == DType::e4m3),
          "cuda::rescale: ", dtype_name(x.dtype()), " ", x.shape(), " to ", dtype_name(y.dtype()), " ", y.shape(),
          ": expected one FP8 side and a multiple of 8 elements (internal error)");
  const long long n = x.numel();
  using Fp8 = __nv_fp8_e4m3;
  const bool quantizing = y.dtype() == DType::e4m3;
  launch("rescale", quantizing ? x.dtype() : y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const unsigned blocks = kernels::blocks_for(n / 8);
    if (quantizing) kernels::rescale_kernel<T, Fp8><<<blocks, 256, 0, context.stream()>>>(in<T>(x), out<Fp8>(y), n, scale);
    else kernels::rescale_kernel<Fp8, T><<<blocks, 256, 0, context.stream()>>>(in<Fp8>(x), out<T>(y), n, scale);
  });
}

}  // namespace visopt::backend::cuda
