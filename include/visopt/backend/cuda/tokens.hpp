#pragma once
// ViT's token operations on visopt's kernels: images cut into patch rows (the patch embedding's GEMM
// input), the projected patches assembled with the class (and distillation) tokens and the position
// embedding, and one token selected for the head.

#include <cstdint>

#include "kernels/tokens.cuh"
#include "launch.hpp"

namespace visopt::backend::cuda {

/// images [N,C,H,W] -> patch rows [N, (H/p)(W/p), C·p·p]
inline Tensor patchify(Context& context, const Tensor& x, int p) {
  const auto n = x.dim(0), c = x.dim(1), grid_w = x.dim(3) / p, grid = (x.dim(2) / p) * grid_w;
  Tensor patches = context.allocate({n, grid, c * p * p}, x.dtype());
  launch("patchify", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    kernels::patchify_kernel<T><<<dim3(static_cast<unsigned>(grid), static_cast<unsigned>(n)), 256, 0, context.stream()>>>(
        in<T>(x), strides4(x), static_cast<int>(c), static_cast<int>(grid_w), p, out<T>(patches));
  });
  return patches;
}

/// projected [N, G, D] -> tokens [N, T + G, D]: the T prefix tokens (device f32 [T, D]) first, then the
/// patches, each plus its position embedding (device f32 [T + G, D]).
inline Tensor assemble_tokens(Context& context, const Tensor& projected, const Tensor& prefix_tokens, const Tensor& position) {
  const auto n = projected.dim(0), grid = projected.dim(1), d = projected.dim(2), prefix = prefix_tokens.dim(0);
  Tensor tokens = context.allocate({n, grid + prefix, d}, projected.dtype());
  launch("assemble_tokens", projected.dtype(), [&](auto tag) {
    using T = decltype(tag);
    kernels::assemble_tokens_kernel<T><<<dim3(static_cast<unsigned>(grid + prefix), static_cast<unsigned>(n)), 256, 0,
                                         context.stream()>>>(in<T>(projected), prefix_tokens.data_as<float>(),
                                                             static_cast<int>(prefix), position.data_as<float>(),
                                                             out<T>(tokens), static_cast<int>(d));
  });
  return tokens;
}

/// x [B, L, D] -> [B, D], the token at `index` (one strided copy).
inline Tensor select_token(Context& context, const Tensor& x, std::int64_t index) {
  const auto b = x.dim(0), l = x.dim(1), d = x.dim(2);
  Tensor y = context.allocate({b, d}, x.dtype());
  const std::size_t row = static_cast<std::size_t>(d) * dtype_size(x.dtype());
  VISOPT_CUDA_CHECK(cudaMemcpy2DAsync(y.data(), row, static_cast<const char*>(x.data()) + index * static_cast<std::int64_t>(row),
                                      static_cast<std::size_t>(l) * row, row, static_cast<std::size_t>(b),
                                      cudaMemcpyDeviceToDevice, context.stream()));
  return y;
}

}  // namespace visopt::backend::cuda
