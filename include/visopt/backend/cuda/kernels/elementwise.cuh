#pragma once
// Pointwise kernels: activation, add, the per-channel epilogue (bias + residual + activation, used
// where cuDNN's fused call does not apply), BatchNorm as a per-channel affine map, and dtype/layout
// conversion of input images and output logits, and the rescaling conversion at FP8's boundaries.

#include "../check.hpp"
#include "types.cuh"

namespace visopt::backend::cuda::kernels {

/// Which channel element i of a [N,C,H,W] tensor belongs to, in NCHW or NHWC storage order.
struct ChannelIndex {
  long long channels = 1, spatial = 1;  // C and H*W
  bool nhwc = false;
  __device__ __forceinline__ int operator()(long long i) const {
    return static_cast<int>(nhwc ? i % channels : (i / spatial) % channels);
  }
};

template <class T>
__global__ void activation_kernel(const T* x, T* y, long long n, nn::Activation act) {
  for (long long i = blockIdx.x * 1LL * blockDim.x + threadIdx.x; i < n; i += 1LL * gridDim.x * blockDim.x)
    store(y + i, activate(load(x + i), act));
}

template <class T>
__global__ void add_kernel(const T* a, const T* b, T* y, long long n, nn::Activation act) {
  for (long long i = blockIdx.x * 1LL * blockDim.x + threadIdx.x; i < n; i += 1LL * gridDim.x * blockDim.x)
    store(y + i, activate(load(a + i) + load(b + i), act));
}

/// y = act(x·scale[c] + shift[c] + residual): BatchNorm (scale, shift), a conv's bias (scale = null),
/// or the whole conv epilogue; residual may be null.
template <class T>
__global__ void channel_epilogue_kernel(const T* x, const float* scale, const float* shift, const T* residual, T* y,
                                        long long n, ChannelIndex channel, nn::Activation act) {
  for (long long i = blockIdx.x * 1LL * blockDim.x + threadIdx.x; i < n; i += 1LL * gridDim.x * blockDim.x) {
    const int c = channel(i);
    float v = load(x + i);
    if (scale) v *= scale[c];
    if (shift) v += shift[c];
    if (residual) v += load(residual + i);
    store(y + i, activate(v, act));
  }
}

/// f32 NCHW images -> T in NCHW or NHWC. grid (blocks over an image's pixels, N): each thread takes one
/// pixel's channels (reads coalesced per channel plane; NHWC writes are one contiguous run per warp).
template <class T>
__global__ void convert_images_kernel(const float* x, T* y, int channels, long long spatial, bool nhwc) {
  const long long image = blockIdx.y * static_cast<long long>(channels) * spatial;
  for (long long p = blockIdx.x * 1LL * blockDim.x + threadIdx.x; p < spatial; p += 1LL * gridDim.x * blockDim.x) {
    for (int c = 0; c < channels; ++c) {
      const float v = x[image + c * spatial + p];
      store(y + image + (nhwc ? p * channels + c : c * spatial + p), v);
    }
  }
}

template <class T>
__global__ void to_float_kernel(const T* x, float* y, long long n) {
  for (long long i = blockIdx.x * 1LL * blockDim.x + threadIdx.x; i < n; i += 1LL * gridDim.x * blockDim.x) y[i] = load(x + i);
}

/// y = x·scale in y's type, 8 elements per thread (16-byte fp16 loads, 8-byte FP8 stores): quantizing to
/// FP8 (scale = 1/step) and dequantizing from it (scale = step). n is a multiple of 8 and both buffers
/// are 16-byte aligned (pool blocks); the executor checks.
template <class In, class Out>
__global__ void rescale_kernel(const In* x, Out* y, long long n, float scale) {
  constexpr int per = 8;
  struct alignas(per * sizeof(In)) InPack { In v[per]; };
  struct alignas(per * sizeof(Out)) OutPack { Out v[per]; };
  const long long packs = n / per;
  for (long long p = blockIdx.x * 1LL * blockDim.x + threadIdx.x; p < packs; p += 1LL * gridDim.x * blockDim.x) {
    const InPack in = reinterpret_cast<const InPack*>(x)[p];
    OutPack out;
#pragma unroll
    for (int i = 0; i < per; ++i) store(&out.v[i], load(&in.v[i]) * scale);
    reinterpret_cast<OutPack*>(y)[p] = out;
  }
}

}  // namespace visopt::backend::cuda::kernels
