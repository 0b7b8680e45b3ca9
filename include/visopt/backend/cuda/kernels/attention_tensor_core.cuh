#pragma once
// Fused self-attention on tensor cores for fp16/bf16 (O2/O3): the same contract as attention.cuh,
// flash-attention-2 style. A block takes 64 queries of one (image, head); each of its 4 warps owns 16
// query rows. Everything a warp computes stays in registers: Q fragments are loaded once; per tile of
// 64 keys, S = Q·Kᵀ is accumulated by mma.sync m16n8k16 in fp32, the online softmax runs on those
// accumulators (the 4 lanes sharing a row reduce with two shuffles), and because an m16n8 accumulator
// pair has the layout of an m16k16 A operand, P feeds O += P·V without touching shared memory.
// Shared memory holds only the Q tile and two stages of K and V tiles, rows padded so that a warp's
// fragment loads hit 32 banks. The tiles arrive by cp.async, the next key tile while this one is being
// computed on, so global latency hides behind the tensor cores. K's B fragments come from ldmatrix, V's
// from ldmatrix.trans. Key blocks past the sequence's end are skipped.

#include <cstdint>
#include <type_traits>

#include "attention.cuh"

namespace visopt::backend::cuda::kernels {

inline constexpr int tc_attention_architecture = 80;  // mma.sync m16n8k16 for bf16, cp.async, ldmatrix
inline constexpr int tc_attention_queries = 64;  // per block
inline constexpr int tc_attention_warps = 4;
inline constexpr int tc_attention_stages = 2;  // K/V tiles in flight: one computed on, one arriving
inline constexpr int tc_row = attention_head_dim + 8;  // padded row of the Q, K and V tiles (elements)
static_assert(attention_head_dim == 64 && attention_key_tile == 64, "the fragment loops below assume 64 × 64 tiles");

template <class T>
constexpr std::size_t tc_attention_shared_bytes() {
  return sizeof(T) * (tc_attention_queries + 2 * tc_attention_stages * attention_key_tile) * tc_row;
}

namespace detail {

/// Two floats as one 32-bit register of T pairs (the lower index in the low half).
template <class T>
__device__ __forceinline__ std::uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const std::uint32_t*>(&v);
  } else {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const std::uint32_t*>(&v);
  }
}

template <class T>
__device__ __forceinline__ std::uint32_t load2(const T* p) {
  return *reinterpret_cast<const std::uint32_t*>(p);
}

/// c (16×8, fp32) += a (16×16) · b (16×8) on tensor cores.
template <class T>
__device__ __forceinline__ void mma_16x8x16(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
#endif
}

/// Starts copying `rows` rows of 64 elements (row r at src + r·src_stride) into a shared tile whose rows
/// are `pitch` elements apart, 16 bytes per thread per step, without waiting (cp.async); rows at or
/// past `valid` become zero. The caller commits the group and waits for it (cp_async_commit, cp_async_wait).
template <int pitch, class T>
__device__ __forceinline__ void copy_rows_async(T* tile, const T* src, long long src_stride, int rows, int valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int chunks = attention_head_dim * static_cast<int>(sizeof(T)) / 16;  // 16-byte pieces per row
  for (int index = threadIdx.x; index < rows * chunks; index += blockDim.x) {
    const int r = index / chunks, c = index % chunks;
    const bool inside = r < valid;
    const T* from = inside ? src + r * src_stride + c * (16 / sizeof(T)) : src;  // a source-size of 0 reads nothing
    const auto to = static_cast<unsigned>(__cvta_generic_to_shared(tile + r * pitch + c * (16 / sizeof(T))));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(to), "l"(from), "r"(inside ? 16 : 0));
  }
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

/// Waits until at most `pending` of this thread's committed copy groups are still in flight.
template <int pending>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending));
#endif
}

/// Four 8×8 b16 matrices from shared memory: lane l gives the address of row l % 8 of matrix l / 8 and
/// receives, per matrix, the two elements of row l / 4 at columns 2(l % 4), 2(l % 4) + 1; `transposed`:
/// of column l / 4 at rows 2(l % 4), 2(l % 4) + 1 instead.
template <bool transposed>
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* row_address) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const auto address = static_cast<unsigned>(__cvta_generic_to_shared(row_address));
  if constexpr (transposed) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
  }
#endif
}

/// Two floats to y[0..1] in T (16-bit: one packed 32-bit store; float: one float2).
template <class T>
__device__ __forceinline__ void store2(T* y, float lo, float hi) {
  if constexpr (std::is_same_v<T, float>) {
    *reinterpret_cast<float2*>(y) = make_float2(lo, hi);
  } else {
    *reinterpret_cast<std::uint32_t*>(y) = pack2<T>(lo, hi);
  }
}

/// One key tile of the online softmax, on a warp's m16n8 score accumulators s (16 queries × 64 keys,
/// fragment rows `group` and `group + 8`): masks keys at or past `length`, raises the running row max,
/// rescales the running sums and the output accumulators o by how much it rose, and turns s into the
/// tile's probabilities, exp((s − max)·scale) in base 2 (`scale_log2` = scale·log2 e), adding them to the
/// sums. Every tile holds at least one valid key, so the max stays finite.
__device__ __forceinline__ void online_softmax_step(float (&s)[attention_key_tile / 8][4], float (&o)[attention_head_dim / 8][4],
                                                    float (&row_max)[2], float (&row_sum)[2], int start, int length, int quad,
                                                    float scale_log2) {
  constexpr int tile = attention_key_tile;
  if (start + tile > length) {  // only the last tile can hold keys past the end
#pragma unroll
    for (int n = 0; n < tile / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if (start + n * 8 + quad * 2 + (e & 1) >= length) s[n][e] = -INFINITY;
      }
    }
  }
  float tile_max[2] = {-INFINITY, -INFINITY};  // of the raw scores: scaling by a positive factor keeps the order
#pragma unroll
  for (int n = 0; n < tile / 8; ++n) {
    tile_max[0] = fmaxf(tile_max[0], fmaxf(s[n][0], s[n][1]));
    tile_max[1] = fmaxf(tile_max[1], fmaxf(s[n][2], s[n][3]));
  }
  float correction[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {  // the 4 lanes of a row (a quad) hold its 64 keys between them
    tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
    tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
    const float new_max = fmaxf(row_max[r], tile_max[r] * scale_log2);
    correction[r] = exp2f(row_max[r] - new_max);
    row_max[r] = new_max;
    row_sum[r] *= correction[r];
  }
#pragma unroll
  for (int n = 0; n < tile / 8; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      s[n][e] = exp2f(fmaf(s[n][e], scale_log2, -row_max[e / 2]));  // exp((s - max)·scale), one FFMA
      row_sum[e / 2] += s[n][e];
    }
  }
#pragma unroll
  for (int n = 0; n < attention_head_dim / 8; ++n) {
    o[n][0] *= correction[0], o[n][1] *= correction[0];
    o[n][2] *= correction[1], o[n][3] *= correction[1];
  }
}

/// A warp's 16 output rows, o / row sum, from its m16n8 accumulators: row `first_row + group (+ 8)` of
/// `head_out` (one head's columns of y; rows `stride` apart), rows at or past `length` skipped.
template <class T>
__device__ __forceinline__ void write_rows(T* head_out, int stride, const float (&o)[attention_head_dim / 8][4], float (&row_sum)[2],
                                           int first_row, int length, int group, int quad) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {  // this lane's sums are a quarter of the row's
    row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 1);
    row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = first_row + group + 8 * r;
    if (row >= length) continue;
    const float inverse = 1.0f / row_sum[r];
    T* destination = head_out + static_cast<long long>(row) * stride + quad * 2;
#pragma unroll
    for (int n = 0; n < attention_head_dim / 8; ++n) store2(destination + n * 8, o[n][2 * r] * inverse, o[n][2 * r + 1] * inverse);
  }
}

}  // namespace detail

/// grid (ceil(L / 64), B·heads), block 128 threads, dynamic shared memory tc_attention_shared_bytes<T>().
template <class T>
__global__ void __launch_bounds__(tc_attention_warps * 32)
    attention_tensor_core_kernel(const T* qkv, T* y, int length, int heads, float scale) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800  // mma.sync for bf16 exists from sm_80; compile() checks the build
  constexpr int dh = attention_head_dim, tile = attention_key_tile, ld = tc_row;
  extern __shared__ __align__(16) unsigned char shared_raw[];
  T* q_tile = reinterpret_cast<T*>(shared_raw);
  T* k_tiles = q_tile + tc_attention_queries * ld;              // stage i at k_tiles + i·tile·ld
  T* v_tiles = k_tiles + tc_attention_stages * tile * ld;

  const int b = blockIdx.y / heads, h = blockIdx.y % heads;
  const int d_model = heads * dh;
  const long long row_stride = 3LL * d_model;
  const T* base = qkv + static_cast<long long>(b) * length * row_stride + h * dh;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = lane / 4, quad = lane % 4;  // the fragment coordinates of mma.m16n8k16
  const int first_query = blockIdx.x * tc_attention_queries;
  const int warp_row = warp * 16;
  const bool active = first_query + warp_row < length;  // a warp past the end still helps load
  const float scale_log2 = scale * 1.4426950408889634f;  // softmax in base 2: exp(x) = exp2(x·log2 e)
  const int tiles = (length + tile - 1) / tile;
  auto fetch_keys = [&](int t) {  // K and V of key tile t into stage t % stages, as one copy group
    const int start = t * tile, stage = t % tc_attention_stages;
    detail::copy_rows_async<tc_row>(k_tiles + stage * tile * ld, base + start * row_stride + d_model, row_stride, tile, length - start);
    detail::copy_rows_async<tc_row>(v_tiles + stage * tile * ld, base + start * row_stride + 2 * d_model, row_stride, tile, length - start);
    detail::cp_async_commit();
  };

  detail::copy_rows_async<tc_row>(q_tile, base + first_query * row_stride, row_stride, tc_attention_queries, length - first_query);
  fetch_keys(0);  // the first group holds Q and key tile 0

  std::uint32_t q[dh / 16][4];
  float o[dh / 8][4];
#pragma unroll
  for (int n = 0; n < dh / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY};  // rows group and group + 8, in scaled base-2 units
  float row_sum[2] = {0.0f, 0.0f};            // this lane's share; the quad is summed at the end

  for (int t = 0; t < tiles; ++t) {
    // Tile t+1 starts arriving into the stage tile t-1 used (every warp left it at the last barrier).
    if (t + 1 < tiles) {
      fetch_keys(t + 1);
      detail::cp_async_wait<1>();
    } else {
      detail::cp_async_wait<0>();
    }
    __syncthreads();  // tile t (and at t = 0, Q) is in shared memory for every thread
    const int start = t * tile;
    const T* k_tile = k_tiles + (t % tc_attention_stages) * tile * ld;
    const T* v_tile = v_tiles + (t % tc_attention_stages) * tile * ld;
    if (t == 0) {
#pragma unroll
      for (int k = 0; k < dh / 16; ++k) {
        const T* row_a = q_tile + (warp_row + group) * ld + k * 16 + quad * 2;
        const T* row_b = row_a + 8 * ld;
        q[k][0] = detail::load2(row_a);
        q[k][1] = detail::load2(row_b);
        q[k][2] = detail::load2(row_a + 8);
        q[k][3] = detail::load2(row_b + 8);
      }
    }
    if (active) {
      float s[tile / 8][4];
#pragma unroll
      for (int n = 0; n < tile / 8; ++n) {
        s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
        if (start + n * 8 >= length) continue;  // every key of this block is past the end: masked below
        // Keys n·8 + lane % 8, dimensions (lane / 8)·8 ..: the B fragments of k-steps 0, 1 and then 2, 3.
        const T* key_row = k_tile + (n * 8 + lane % 8) * ld + (lane / 8) * 8;
#pragma unroll
        for (int k = 0; k < dh / 16; k += 2) {
          std::uint32_t kb[4];
          detail::ldmatrix_x4<false>(kb, key_row + k * 16);
          detail::mma_16x8x16<T>(s[n], q[k], kb[0], kb[1]);
          detail::mma_16x8x16<T>(s[n], q[k + 1], kb[2], kb[3]);
        }
      }

      detail::online_softmax_step(s, o, row_max, row_sum, start, length, quad, scale_log2);

      // O += P·V, 16 keys at a time: S blocks 2j and 2j+1 are the A operand's two column halves.
#pragma unroll
      for (int j = 0; j < tile / 16; ++j) {
        if (start + j * 16 >= length) continue;  // P is zero there
        const std::uint32_t p[4] = {detail::pack2<T>(s[2 * j][0], s[2 * j][1]), detail::pack2<T>(s[2 * j][2], s[2 * j][3]),
                                    detail::pack2<T>(s[2 * j + 1][0], s[2 * j + 1][1]),
                                    detail::pack2<T>(s[2 * j + 1][2], s[2 * j + 1][3])};
        const int matrix = lane / 8;  // keys j·16 + (matrix & 1)·8 + lane % 8, values of d block n + matrix / 2
        const T* v_row = v_tile + (j * 16 + (matrix & 1) * 8 + lane % 8) * ld + (matrix >> 1) * 8;
#pragma unroll
        for (int n = 0; n < dh / 8; n += 2) {
          std::uint32_t v[4];
          detail::ldmatrix_x4<true>(v, v_row + n * 8);
          detail::mma_16x8x16<T>(o[n], p, v[0], v[1]);
          detail::mma_16x8x16<T>(o[n + 1], p, v[2], v[3]);
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
