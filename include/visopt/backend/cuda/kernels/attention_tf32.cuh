#pragma once
// Fused self-attention on TF32 tensor cores for the fp32 levels that allow TF32 (O1): the contract of
// attention.cuh and the structure of attention_tensor_core.cuh (64 queries per block, 16 per warp, an
// online softmax on the S accumulators, K/V tiles double-buffered by cp.async), with mma.sync m16n8k8 on
// TF32 operands. Q is rounded to TF32 once and P as it feeds the second product; K and V go in as their
// fp32 bits, which the tensor cores truncate to TF32 (a relative error below 2^-10, inside O1's bound).
//
// P·V without a trip through shared memory: an m16n8 accumulator holds keys 2q and 2q+1 of row g in lane
// (g, q), while a TF32 A operand wants columns q and q+4. The sum over keys does not care about their
// order, so the k-step runs over the 8 keys in the order 0,2,4,6,1,3,5,7: the accumulator then is the A
// operand as it stands, and each lane reads V's rows 2q and 2q+1 for its B operand.
// Shared rows are 68 floats apart, so every fragment load of a warp touches 32 distinct banks.

#include "attention_tensor_core.cuh"

namespace visopt::backend::cuda::kernels {

inline constexpr int tf32_attention_architecture = 80;  // mma.sync m16n8k8 with TF32 operands, cp.async
inline constexpr int tf32_row = attention_head_dim + 4;  // padded row of the Q, K and V tiles (floats)

constexpr std::size_t tf32_attention_shared_bytes() {
  return sizeof(float) * (tc_attention_queries + 2 * tc_attention_stages * attention_key_tile) * tf32_row;
}

namespace detail {

/// x rounded to TF32 (nearest, ties away from zero), in a 32-bit register.
__device__ __forceinline__ std::uint32_t to_tf32(float x) {
  std::uint32_t r = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
#endif
  return r;
}

__device__ __forceinline__ std::uint32_t bits(float x) { return __float_as_uint(x); }

/// c (16×8, fp32) += a (16×8) · b (8×8), TF32 operands.
__device__ __forceinline__ void mma_16x8x8_tf32(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

}  // namespace detail

/// grid (ceil(L / 64), B·heads), block 128 threads, dynamic shared memory tf32_attention_shared_bytes().
/// T is float: a template so that a header-only program may define it in several translation units.
template <class T>
__global__ void __launch_bounds__(tc_attention_warps * 32)
    attention_tf32_kernel(const T* qkv, T* y, int length, int heads, float scale) {
  static_assert(std::is_same_v<T, float>, "TF32 attention reads and writes fp32");
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int dh = attention_head_dim, tile = attention_key_tile, ld = tf32_row;
  extern __shared__ __align__(16) unsigned char shared_raw[];
  float* q_tile = reinterpret_cast<float*>(shared_raw);
  float* k_tiles = q_tile + tc_attention_queries * ld;  // stage i at k_tiles + i·tile·ld
  float* v_tiles = k_tiles + tc_attention_stages * tile * ld;

  const int b = blockIdx.y / heads, h = blockIdx.y % heads;
  const int d_model = heads * dh;
  const long long row_stride = 3LL * d_model;
  const float* base = qkv + static_cast<long long>(b) * length * row_stride + h * dh;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = lane / 4, quad = lane % 4;  // the fragment coordinates of mma.m16n8k8
  const int first_query = blockIdx.x * tc_attention_queries;
  const int warp_row = warp * 16;
  const bool active = first_query + warp_row < length;  // a warp past the end still helps load
  const float scale_log2 = scale * 1.4426950408889634f;  // softmax in base 2
  const int tiles = (length + tile - 1) / tile;
  auto fetch_keys = [&](int t) {  // K and V of key tile t into stage t % stages, as one copy group
    const int start = t * tile, stage = t % tc_attention_stages;
    detail::copy_rows_async<tf32_row>(k_tiles + stage * tile * ld, base + start * row_stride + d_model, row_stride, tile, length - start);
    detail::copy_rows_async<tf32_row>(v_tiles + stage * tile * ld, base + start * row_stride + 2 * d_model, row_stride, tile,
                                      length - start);
    detail::cp_async_commit();
  };

  detail::copy_rows_async<tf32_row>(q_tile, base + first_query * row_stride, row_stride, tc_attention_queries, length - first_query);
  fetch_keys(0);  // the first group holds Q and key tile 0

  std::uint32_t q[dh / 8][4];
  float o[dh / 8][4];
#pragma unroll
  for (int n = 0; n < dh / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY};  // rows group and group + 8, in scaled base-2 units
  float row_sum[2] = {0.0f, 0.0f};            // this lane's share; the quad is summed at the end

  for (int t = 0; t < tiles; ++t) {
    if (t + 1 < tiles) {
      fetch_keys(t + 1);
      detail::cp_async_wait<1>();
    } else {
      detail::cp_async_wait<0>();
    }
    __syncthreads();  // tile t (and at t = 0, Q) is in shared memory for every thread
    const int start = t * tile;
    const float* k_tile = k_tiles + (t % tc_attention_stages) * tile * ld;
    const float* v_tile = v_tiles + (t % tc_attention_stages) * tile * ld;
    if (t == 0) {
#pragma unroll
      for (int k = 0; k < dh / 8; ++k) {
        const float* row_a = q_tile + (warp_row + group) * ld + k * 8 + quad;
        const float* row_b = row_a + 8 * ld;
        q[k][0] = detail::to_tf32(row_a[0]);
        q[k][1] = detail::to_tf32(row_b[0]);
        q[k][2] = detail::to_tf32(row_a[4]);
        q[k][3] = detail::to_tf32(row_b[4]);
      }
    }
    if (active) {
      float s[tile / 8][4];
#pragma unroll
      for (int n = 0; n < tile / 8; ++n) {
        s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
        if (start + n * 8 >= length) continue;  // every key of this block is past the end: masked below
        const float* key_row = k_tile + (n * 8 + group) * ld + quad;  // B = Kᵀ: key `group`, dimension `quad`
#pragma unroll
        for (int k = 0; k < dh / 8; ++k) {
          detail::mma_16x8x8_tf32(s[n], q[k], detail::bits(key_row[k * 8]), detail::bits(key_row[k * 8 + 4]));
        }
      }

      detail::online_softmax_step(s, o, row_max, row_sum, start, length, quad, scale_log2);

      // O += P·V, 8 keys at a time in the order 0,2,4,6,1,3,5,7 (see the header).
#pragma unroll
      for (int j = 0; j < tile / 8; ++j) {
        if (start + j * 8 >= length) continue;  // P is zero there
        const std::uint32_t p[4] = {detail::to_tf32(s[j][0]), detail::to_tf32(s[j][2]), detail::to_tf32(s[j][1]),
                                    detail::to_tf32(s[j][3])};
        const float* v_rows = v_tile + (j * 8 + 2 * quad) * ld + group;  // keys 2q, 2q+1; dimension `group` of each block
#pragma unroll
        for (int n = 0; n < dh / 8; ++n) {
          detail::mma_16x8x8_tf32(o[n], p, detail::bits(v_rows[n * 8]), detail::bits(v_rows[ld + n * 8]));
        }
      }
    }
    __syncthreads();  // every warp is done with this stage before the next iteration refills it
  }
  if (!active) return;
  detail::write_rows(y + static_cast<long long>(b) * length * d_model + h * dh, d_model, o, row_sum, first_query + warp_row, length,
                     group, quad);
#elif defined(__CUDA_ARCH__)
  __trap();  // compiled for an architecture without these instructions: fail the launch, never write nothing
#endif
}

}  // namespace visopt::backend::cuda::kernels
