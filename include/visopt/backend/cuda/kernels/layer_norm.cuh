#pragma once
// LayerNorm over the last axis, one warp per row, mean and variance in fp32 whatever the storage type
// (two passes over the row: the second reads it back from L1/L2, which is exact and cheap at D <= 1024).
// layer_norm_vector_kernel is the same with 16-byte loads and the row held in registers, for rows of
// whole 16-byte pieces up to 128 of them (every ViT width); the executor picks it where it applies.

#include "types.cuh"

namespace visopt::backend::cuda::kernels {

template <class T>
__global__ void layer_norm_kernel(const T* x, const float* gamma, const float* beta, float eps, T* y, long long rows, int d) {
  const long long row = (blockIdx.x * 1LL * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const T* in = x + row * d;
  T* out = y + row * d;
  float sum = 0.0f;
  for (int i = lane; i < d; i += 32) sum += load(in + i);
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  const float mean = sum / static_cast<float>(d);
  float squares = 0.0f;
  for (int i = lane; i < d; i += 32) {
    const float centred = load(in + i) - mean;
    squares += centred * centred;
  }
  for (int offset = 16; offset > 0; offset /= 2) squares += __shfl_xor_sync(0xffffffffu, squares, offset);
  const float inv_std = rsqrtf(squares / static_cast<float>(d) + eps);
  for (int i = lane; i < d; i += 32) store(out + i, (load(in + i) - mean) * inv_std * gamma[i] + beta[i]);
}

inline constexpr int layer_norm_vector_steps = 4;  // 16-byte pieces per lane: rows of up to 128 pieces

template <class T>
constexpr int layer_norm_piece() {
  return 16 / static_cast<int>(sizeof(T));  // elements per 16-byte piece
}

/// Whether layer_norm_vector_kernel<T> takes rows of d elements.
template <class T>
constexpr bool layer_norm_vectorizable(int d) {
  return d % layer_norm_piece<T>() == 0 && d / layer_norm_piece<T>() <= 32 * layer_norm_vector_steps;
}

template <class T>
__global__ void layer_norm_vector_kernel(const T* x, const float* gamma, const float* beta, float eps, T* y, long long rows, int d) {
  constexpr int per = layer_norm_piece<T>();
  const long long row = (blockIdx.x * 1LL * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int pieces = d / per;
  const uint4* in = reinterpret_cast<const uint4*>(x + row * d);
  uint4* out = reinterpret_cast<uint4*>(y + row * d);
  float v[layer_norm_vector_steps][per];
  float sum = 0.0f;
#pragma unroll
  for (int step = 0; step < layer_norm_vector_steps; ++step) {
    const int piece = lane + 32 * step;
    if (piece >= pieces) break;
    const uint4 raw = in[piece];
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < per; ++i) sum += v[step][i] = load(e + i);
  }
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  const float mean = sum / static_cast<float>(d);
  float squares = 0.0f;
#pragma unroll
  for (int step = 0; step < layer_norm_vector_steps; ++step) {
    if (lane + 32 * step >= pieces) break;
#pragma unroll
    for (int i = 0; i < per; ++i) squares += (v[step][i] - mean) * (v[step][i] - mean);
  }
  for (int offset = 16; offset > 0; offset /= 2) squares += __shfl_xor_sync(0xffffffffu, squares, offset);
  const float inv_std = rsqrtf(squares / static_cast<float>(d) + eps);
#pragma unroll
  for (int step = 0; step < layer_norm_vector_steps; ++step) {
    const int piece = lane + 32 * step;
    if (piece >= pieces) break;
    // gamma and beta in 16-byte loads too (a piece's `per` floats start on a 16-byte boundary).
    float g[per], bt[per];
#pragma unroll
    for (int i = 0; i < per; i += 4) {
      *reinterpret_cast<float4*>(g + i) = *reinterpret_cast<const float4*>(gamma + piece * per + i);
      *reinterpret_cast<float4*>(bt + i) = *reinterpret_cast<const float4*>(beta + piece * per + i);
    }
    uint4 raw;
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int i = 0; i < per; ++i) store(e + i, (v[step][i] - mean) * inv_std * g[i] + bt[i]);
    out[piece] = raw;
  }
}

}  // namespace visopt::backend::cuda::kernels
