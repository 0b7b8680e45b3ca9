#pragma once
// Max pooling (any layout, through strides; padding counts as -inf like PyTorch) and global average
// pooling to [N,C], accumulating in fp32.

#include <cfloat>

#include "types.cuh"

namespace visopt::backend::cuda::kernels {

struct Strides4 {
  long long n, c, h, w;
};

/// Calls visit(ih, iw) for each input position of output (oh, ow)'s window that lies inside the image.
template <class Visit>
__device__ __forceinline__ void for_each_in_window(int oh, int ow, int height, int width, int kernel, int stride, int padding,
                                                   Visit&& visit) {
  for (int r = 0; r < kernel; ++r) {
    const int ih = oh * stride - padding + r;
    if (ih < 0 || ih >= height) continue;
    for (int s = 0; s < kernel; ++s) {
      const int iw = ow * stride - padding + s;
      if (iw >= 0 && iw < width) visit(ih, iw);
    }
  }
}

/// The running maximum with PyTorch's semantics: the first value seeds it and a NaN sticks.
__device__ __forceinline__ float max_step(float best, float v, bool first) { return (first || v > best || v != v) ? v : best; }

template <class T>
__global__ void max_pool2d_kernel(const T* x, Strides4 xs, int height, int width, T* y, Strides4 ys, int channels,
                                  int out_h, int out_w, long long total, int kernel, int stride, int padding) {
  // Neighbouring threads take neighbouring addresses: channels innermost when the output is NHWC.
  const bool channels_last = ys.c == 1;
  for (long long i = blockIdx.x * 1LL * blockDim.x + threadIdx.x; i < total; i += 1LL * gridDim.x * blockDim.x) {
    int c, oh, ow;
    long long n;
    if (channels_last) {
      c = static_cast<int>(i % channels);
      ow = static_cast<int>((i / channels) % out_w);
      oh = static_cast<int>((i / (1LL * channels * out_w)) % out_h);
      n = i / (1LL * out_w * out_h * channels);
    } else {
      ow = static_cast<int>(i % out_w);
      oh = static_cast<int>((i / out_w) % out_h);
      c = static_cast<int>((i / (1LL * out_w * out_h)) % channels);
      n = i / (1LL * out_w * out_h * channels);
    }
    float best = -FLT_MAX;
    bool any = false;
    for_each_in_window(oh, ow, height, width, kernel, stride, padding, [&](int ih, int iw) {
      best = max_step(best, load(x + n * xs.n + c * xs.c + ih * xs.h + iw * xs.w), !any);
      any = true;
    });
    store(y + n * ys.n + c * ys.c + oh * ys.h + ow * ys.w, best);
  }
}

/// Max pooling on dense NHWC tensors whose channels come in whole 16-byte pieces: one thread per
/// output piece, 16-byte loads, 32-bit indices (the caller checks `total` fits). Same semantics as
/// max_pool2d_kernel.
template <class T>
__global__ void max_pool2d_nhwc_kernel(const T* x, int height, int width, int channels, T* y, int out_h, int out_w, int total,
                                       int kernel, int stride, int padding) {
  constexpr int per = 16 / static_cast<int>(sizeof(T));
  const int pieces = channels / per;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const int piece = i % pieces;
    int rest = i / pieces;
    const int ow = rest % out_w;
    rest /= out_w;
    const int oh = rest % out_h;
    const int n = rest / out_h;
    float best[per];
    bool any = false;
    for_each_in_window(oh, ow, height, width, kernel, stride, padding, [&](int ih, int iw) {
      const uint4 raw = *reinterpret_cast<const uint4*>(x + ((static_cast<long long>(n) * height + ih) * width + iw) * channels + piece * per);
      const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int k = 0; k < per; ++k) best[k] = max_step(best[k], load(e + k), !any);
      any = true;
    });
    uint4 raw;
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int k = 0; k < per; ++k) store(e + k, any ? best[k] : -FLT_MAX);
    *reinterpret_cast<uint4*>(y + static_cast<long long>(i) * per) = raw;
  }
}

/// y[n, c] = mean over H×W. NCHW: one warp per (image, channel), reading its contiguous plane.
/// NHWC: one thread per (image, channel), neighbouring threads reading neighbouring channels.
template <class T>
__global__ void global_avg_pool_kernel(const T* x, Strides4 xs, int channels, int height, int width, T* y, long long pairs) {
  if (xs.c == 1) {
    const long long pair = blockIdx.x * 1LL * blockDim.x + threadIdx.x;
    if (pair >= pairs) return;
    const long long n = pair / channels;
    const int c = static_cast<int>(pair % channels);
    float sum = 0.0f;
    for (int h = 0; h < height; ++h)
      for (int w = 0; w < width; ++w) sum += load(x + n * xs.n + c + h * xs.h + w * xs.w);
    store(y + pair, sum / static_cast<float>(height * width));
    return;
  }
  const long long warp = (blockIdx.x * 1LL * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= pairs) return;
  const long long n = warp / channels;
  const int c = static_cast<int>(warp % channels);
  float sum = 0.0f;
  for (int p = lane; p < height * width; p += 32) sum += load(x + n * xs.n + c * xs.c + (p / width) * xs.h + (p % width) * xs.w);
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane == 0) store(y + warp, sum / static_cast<float>(height * width));
}

}  // namespace visopt::backend::cuda::kernels
