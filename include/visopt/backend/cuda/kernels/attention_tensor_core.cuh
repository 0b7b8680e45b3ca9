#pragma once
// Fused self-attention on tensor cores for fp16/bf16 (O2/O3): the same contract as attention.cuh,
// flash-style. A block takes 64 queries of one (image, head); each of its 4 warps owns 16 query rows.
// Per tile of 64 keys: S = Q·Kᵀ on WMMA 16×16×16 fragments (fp32 accumulate), online softmax in fp32
// (two lanes per row, interleaved columns), P stored as T, O += P·V on WMMA; O lives in registers,
// 32 floats per lane. Tiles are loaded 16 bytes at a time, and every shared row is padded so that the
// lanes of a warp fall on different banks (unpadded, all 32 hit one bank).

#include <mma.h>

#include "attention.cuh"

namespace visopt::backend::cuda::kernels {

inline constexpr int tc_attention_queries = 64;  // per block
inline constexpr int tc_attention_warps = 4;
inline constexpr int tc_row = attention_head_dim + 8;     // padded row of a Q/K/V tile and of P (elements of T)
inline constexpr int tc_scratch_row = attention_key_tile + 4;  // padded fp32 row of S and of P·V
static_assert(attention_head_dim == attention_key_tile, "S and P·V share one scratch layout");

/// Shared memory: Q, K, V tiles (T), per-warp fp32 scratch for S and P·V, per-warp P (T).
template <class T>
constexpr std::size_t tc_attention_shared_bytes() {
  return sizeof(T) * (tc_attention_queries + 2 * attention_key_tile) * tc_row +
         sizeof(float) * tc_attention_warps * 16 * tc_scratch_row + sizeof(T) * tc_attention_warps * 16 * tc_row;
}

/// Copies `rows` rows of 64 elements (row r at src + r·src_stride) into a padded shared tile, 16 bytes
/// per thread per step; rows at or past `valid` are zero.
template <class T>
__device__ __forceinline__ void load_tile(T* tile, const T* src, long long src_stride, int rows, int valid) {
  constexpr int chunks = attention_head_dim * static_cast<int>(sizeof(T)) / 16;  // 16-byte pieces per row
  for (int index = threadIdx.x; index < rows * chunks; index += blockDim.x) {
    const int r = index / chunks, c = index % chunks;
    uint4 value = make_uint4(0, 0, 0, 0);
    if (r < valid) value = *reinterpret_cast<const uint4*>(src + r * src_stride + c * (16 / sizeof(T)));
    *reinterpret_cast<uint4*>(tile + r * tc_row + c * (16 / sizeof(T))) = value;
  }
}

/// grid (ceil(L / 64), B·heads), block 128 threads, dynamic shared memory tc_attention_shared_bytes<T>().
template <class T>
__global__ void __launch_bounds__(tc_attention_warps * 32)
    attention_tensor_core_kernel(const T* qkv, T* y, int length, int heads, float scale) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800  // bf16 fragments exist from sm_80; the executor checks
  using namespace nvcuda;
  constexpr int dh = attention_head_dim, tile = attention_key_tile, ld = tc_row, lds = tc_scratch_row;
  extern __shared__ __align__(128) unsigned char shared_raw[];
  T* q_tile = reinterpret_cast<T*>(shared_raw);
  T* k_tile = q_tile + tc_attention_queries * ld;
  T* v_tile = k_tile + tile * ld;
  float* scratch_all = reinterpret_cast<float*>(v_tile + tile * ld);
  T* p_all = reinterpret_cast<T*>(scratch_all + tc_attention_warps * 16 * lds);

  const int b = blockIdx.y / heads, h = blockIdx.y % heads;
  const int d_model = heads * dh;
  const long long row_stride = 3LL * d_model;
  const T* base = qkv + static_cast<long long>(b) * length * row_stride + h * dh;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int first_query = blockIdx.x * tc_attention_queries;
  float* scratch = scratch_all + warp * 16 * lds;
  T* p_tile = p_all + warp * 16 * ld;

  load_tile(q_tile, base + first_query * row_stride, row_stride, tc_attention_queries, length - first_query);

  const int row = lane / 2;      // this lane's query row within the warp's 16
  const int parity = lane % 2;   // and its 32 columns (of scores, then of the output): parity, parity + 2, ...
  float out[32];
#pragma unroll
  for (int i = 0; i < 32; ++i) out[i] = 0.0f;
  float running_max = -INFINITY, running_sum = 0.0f;

  for (int start = 0; start < length; start += tile) {
    __syncthreads();  // Q is loaded; the previous K/V tile is consumed
    load_tile(k_tile, base + start * row_stride + d_model, row_stride, tile, length - start);
    load_tile(v_tile, base + start * row_stride + 2 * d_model, row_stride, tile, length - start);
    __syncthreads();

    // S (16 × 64) = Q_warp (16 × 64) · Kᵀ (64 × 64)
    for (int n = 0; n < tile / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> s;
      wmma::fill_fragment(s, 0.0f);
#pragma unroll
      for (int k = 0; k < dh / 16; ++k) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> bk;
        wmma::load_matrix_sync(a, q_tile + warp * 16 * ld + k * 16, ld);
        wmma::load_matrix_sync(bk, k_tile + n * 16 * ld + k * 16, ld);
        wmma::mma_sync(s, a, bk, s);
      }
      wmma::store_matrix_sync(scratch + n * 16, s, lds, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax on this lane's half row.
    float tile_max = -INFINITY;
    float scores[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const int key = start + parity + 2 * i;
      scores[i] = key < length ? scratch[row * lds + parity + 2 * i] * scale : -INFINITY;
      tile_max = fmaxf(tile_max, scores[i]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float new_max = fmaxf(running_max, tile_max);
    const float correction = expf(running_max - new_max);
    float tile_sum = 0.0f;
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const float p = expf(scores[i] - new_max);
      tile_sum += p;
      p_tile[row * ld + parity + 2 * i] = static_cast<T>(p);
    }
    tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 1);
    running_sum = running_sum * correction + tile_sum;
    running_max = new_max;
    __syncwarp();

    // P·V (16 × 64) = P (16 × 64) · V (64 × 64), then O = O·correction + P·V.
    for (int n = 0; n < dh / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> o;
      wmma::fill_fragment(o, 0.0f);
#pragma unroll
      for (int k = 0; k < tile / 16; ++k) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> bv;
        wmma::load_matrix_sync(a, p_tile + k * 16, ld);
        wmma::load_matrix_sync(bv, v_tile + k * 16 * ld + n * 16, ld);
        wmma::mma_sync(o, a, bv, o);
      }
      wmma::store_matrix_sync(scratch + n * 16, o, lds, wmma::mem_row_major);
    }
    __syncwarp();
#pragma unroll
    for (int i = 0; i < 32; ++i) out[i] = out[i] * correction + scratch[row * lds + parity + 2 * i];
    __syncwarp();  // scratch is rewritten by the next tile's S
  }

  const int query = first_query + warp * 16 + row;
  if (query < length) {
    T* destination = y + (static_cast<long long>(b) * length + query) * d_model + h * dh + parity;
    const float inverse = 1.0f / running_sum;
#pragma unroll
    for (int i = 0; i < 32; ++i) store(destination + 2 * i, out[i] * inverse);
  }
#endif
}

}  // namespace visopt::backend::cuda::kernels
