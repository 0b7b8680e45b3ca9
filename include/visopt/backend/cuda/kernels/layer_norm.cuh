#pragma once
// LayerNorm over the last axis, one warp per row, mean and variance in fp32 whatever the storage type
// (two passes over the row: the second reads it back from L1/L2, which is exact and cheap at D <= 1024).

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

}  // namespace visopt::backend::cuda::kernels
