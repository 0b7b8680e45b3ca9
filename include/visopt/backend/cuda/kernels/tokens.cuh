#pragma once
// ViT token plumbing: cut images into patch rows for the embedding GEMM, assemble the token sequence
// (class token first, position embedding added in fp32), and pick one token per image.

#include "pooling.cuh"
#include "types.cuh"

namespace visopt::backend::cuda::kernels {

/// x [N,C,H,W] (any strides) -> patches [N, (H/p)(W/p), C·p·p], columns ordered (c, kh, kw) like a conv
/// weight. grid (patches per image, N): one block per patch row, its threads across the columns (no
/// 64-bit division per element: that alone made the flat-index version 5× slower).
template <class T>
__global__ void patchify_kernel(const T* x, Strides4 xs, int channels, int grid_w, int patch, T* patches) {
  const int t = blockIdx.x, area = patch * patch, row_length = channels * area;
  const long long n = blockIdx.y;
  const int top = (t / grid_w) * patch, left = (t % grid_w) * patch;
  const T* image = x + n * xs.n;
  T* row = patches + (n * gridDim.x + t) * row_length;
  for (int col = threadIdx.x; col < row_length; col += blockDim.x) {
    const int c = col / area, kh = (col % area) / patch, kw = col % patch;
    row[col] = image[c * xs.c + (top + kh) * xs.h + (left + kw) * xs.w];
  }
}

/// tokens[b,t] = prefix[t] + position[t] for the `prefix` leading tokens (class, then distillation);
/// tokens[b,prefix+i] = projected[b,i] + position[prefix+i].
/// grid (tokens per image, B): one block per token, its threads across the d features.
template <class T>
__global__ void assemble_tokens_kernel(const T* projected, const float* prefix_tokens, int prefix, const float* position, T* tokens,
                                       int d) {
  const int t = blockIdx.x, tokens_per_image = gridDim.x;
  const long long b = blockIdx.y;
  const T* source = projected + (b * (tokens_per_image - prefix) + t - prefix) * d;  // read only when t >= prefix
  T* destination = tokens + (b * tokens_per_image + t) * d;
  for (int k = threadIdx.x; k < d; k += blockDim.x) {
    const float v = t < prefix ? prefix_tokens[t * d + k] : load(source + k);
    store(destination + k, v + position[t * d + k]);
  }
}

}  // namespace visopt::backend::cuda::kernels
