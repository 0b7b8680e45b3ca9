#pragma once
// LayerNorm over the last axis on visopt's kernel (statistics and affine in fp32): one warp per row,
// vectorised where the width allows 16-byte loads.

#include "kernels/layer_norm.cuh"
#include "launch.hpp"

namespace visopt::backend::cuda {

/// weight and bias: device f32 [D].
inline Tensor layer_norm(Context& context, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  Tensor y = like(context, x);
  const int d = static_cast<int>(x.dim(x.rank() - 1));
  const long long rows = x.numel() / d;
  launch("layer_norm", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (kernels::layer_norm_vectorizable<T>(d)) {
      kernels::layer_norm_vector_kernel<T><<<kernels::blocks_for(rows * 32), 256, 0, context.stream()>>>(
          in<T>(x), weight.data_as<float>(), bias.data_as<float>(), eps, out<T>(y), rows, d);
      return;
    }
    kernels::layer_norm_kernel<T><<<kernels::blocks_for(rows * 32), 256, 0, context.stream()>>>(
        in<T>(x), weight.data_as<float>(), bias.data_as<float>(), eps, out<T>(y), rows, d);
  });
  return y;
}

}  // namespace visopt::backend::cuda
