#pragma once
// Fused multi-head self-attention, softmax(Q·Kᵀ/√d)·V, reading q|k|v straight out of the packed
// [B, L, 3D] projection and writing [B, L, D]: no materialised score matrix, no head split copies.
// Online softmax over tiles of 64 keys (running max and sum per query), everything in fp32.
// Head dimension 64 (every ViT from Ti to L).

#include <math.h>

#include "types.cuh"

namespace visopt::backend::cuda::kernels {

inline constexpr int attention_head_dim = 64;
inline constexpr int attention_key_tile = 64;
inline constexpr int attention_warps = 4;
inline constexpr int attention_queries_per_warp = 4;
inline constexpr int attention_queries_per_block = attention_warps * attention_queries_per_warp;

/// grid (ceil(L / 16), B·heads), block 128 threads.
template <class T>
__global__ void __launch_bounds__(attention_warps * 32) attention_kernel(const T* qkv, T* y, int length, int heads, float scale) {
  constexpr int dh = attention_head_dim, tile = attention_key_tile, per_warp = attention_queries_per_warp;
  __shared__ float keys[tile][dh + 1];  // +1: lane-indexed rows land in distinct banks
  __shared__ float values[tile][dh];
  __shared__ float queries[attention_warps][per_warp][dh];
  const int b = blockIdx.y / heads, h = blockIdx.y % heads;
  const int d_model = heads * dh;
  const long long row_stride = 3LL * d_model;
  const T* base = qkv + static_cast<long long>(b) * length * row_stride + h * dh;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int first_query = blockIdx.x * attention_queries_per_block + warp * per_warp;

  for (int q = 0; q < per_warp; ++q) {
    const int i = first_query + q;
    for (int d = lane; d < dh; d += 32) queries[warp][q][d] = i < length ? load(base + i * row_stride + d) * scale : 0.0f;
  }
  float running_max[per_warp], running_sum[per_warp], out_lo[per_warp], out_hi[per_warp];
  for (int q = 0; q < per_warp; ++q) {
    running_max[q] = -INFINITY;
    running_sum[q] = out_lo[q] = out_hi[q] = 0.0f;
  }

  for (int start = 0; start < length; start += tile) {
    __syncthreads();  // the previous tile has been consumed
    for (int index = threadIdx.x; index < tile * dh; index += blockDim.x) {
      const int j = index / dh, d = index % dh, key = start + j;
      keys[j][d] = key < length ? load(base + key * row_stride + d_model + d) : 0.0f;
      values[j][d] = key < length ? load(base + key * row_stride + 2 * d_model + d) : 0.0f;
    }
    __syncthreads();
    const int valid = min(tile, length - start);
    for (int q = 0; q < per_warp; ++q) {
      float s_lo = 0.0f, s_hi = 0.0f;  // scores of keys `lane` and `lane + 32`
#pragma unroll 16
      for (int d = 0; d < dh; ++d) {
        const float qd = queries[warp][q][d];
        s_lo += qd * keys[lane][d];
        s_hi += qd * keys[lane + 32][d];
      }
      if (lane >= valid) s_lo = -INFINITY;
      if (lane + 32 >= valid) s_hi = -INFINITY;
      float tile_max = fmaxf(s_lo, s_hi);
      for (int offset = 16; offset > 0; offset /= 2) tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, offset));
      const float new_max = fmaxf(running_max[q], tile_max);
      const float p_lo = expf(s_lo - new_max), p_hi = expf(s_hi - new_max);
      const float correction = expf(running_max[q] - new_max);
      float tile_sum = p_lo + p_hi;
      for (int offset = 16; offset > 0; offset /= 2) tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, offset);
      running_sum[q] = running_sum[q] * correction + tile_sum;
      float acc_lo = out_lo[q] * correction, acc_hi = out_hi[q] * correction;
      for (int j = 0; j < valid; ++j) {
        const float p = __shfl_sync(0xffffffffu, j < 32 ? p_lo : p_hi, j & 31);
        acc_lo += p * values[j][lane];
        acc_hi += p * values[j][lane + 32];
      }
      out_lo[q] = acc_lo;
      out_hi[q] = acc_hi;
      running_max[q] = new_max;
    }
  }
  for (int q = 0; q < per_warp; ++q) {
    const int i = first_query + q;
    if (i >= length) continue;
    T* out = y + (static_cast<long long>(b) * length + i) * d_model + h * dh;
    store(out + lane, out_lo[q] / running_sum[q]);
    store(out + lane + 32, out_hi[q] / running_sum[q]);
  }
}

}  // namespace visopt::backend::cuda::kernels
