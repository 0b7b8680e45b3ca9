#pragma once
// ViT token plumbing: cut images into patch rows for the embedding GEMM, assemble the token sequence
// (class token first, position embedding added in fp32), and pick one token per image.

#include "pooling.cuh"
#include "types.cuh"

namespace visopt::backend::cuda::kernels {

/// x [N,C,H,W] (any strides) -> patches [N, (H/p)(W/p), C·p·p], columns ordered (c, kh, kw) like a conv weight.
template <class T>
__global__ void patchify_kernel(const T* x, Strides4 xs, int channels, int grid_w, int patch, T* patches, long long total,
                                int patches_per_image) {
  const int row_length = channels * patch * patch;
  for (long long i = blockIdx.x * 1LL * blockDim.x + threadIdx.x; i < total; i += 1LL * gridDim.x * blockDim.x) {
    const int col = static_cast<int>(i % row_length);
    const long long row = i / row_length;
    const int t = static_cast<int>(row % patches_per_image);
    const long long n = row / patches_per_image;
    const int c = col / (patch * patch), kh = (col / patch) % patch, kw = col % patch;
    const int h = (t / grid_w) * patch + kh, w = (t % grid_w) * patch + kw;
    patches[i] = x[n * xs.n + c * xs.c + h * xs.h + w * xs.w];
  }
}

/// tokens[b,0] = class_token + position[0]; tokens[b,1+t] = projected[b,t] + position[1+t].
template <class T>
__global__ void assemble_tokens_kernel(const T* projected, const float* class_token, const float* position, T* tokens,
                                       long long total, int tokens_per_image, int d) {
  for (long long i = blockIdx.x * 1LL * blockDim.x + threadIdx.x; i < total; i += 1LL * gridDim.x * blockDim.x) {
    const int k = static_cast<int>(i % d);
    const int t = static_cast<int>((i / d) % tokens_per_image);
    const long long b = i / (1LL * d * tokens_per_image);
    const float v = t == 0 ? class_token[k] : load(projected + (b * (tokens_per_image - 1) + t - 1) * d + k);
    store(tokens + i, v + position[t * d + k]);
  }
}

}  // namespace visopt::backend::cuda::kernels
