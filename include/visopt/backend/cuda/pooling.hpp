#pragma once
// Pooling on visopt's kernels: ResNet's stem max-pool (a vectorised NHWC kernel where channels fill
// 16-byte pieces, a strided one otherwise) and the global average pool before the classifier.

#include "../../nn/op_specs.hpp"
#include "kernels/pooling.cuh"
#include "launch.hpp"

namespace visopt::backend::cuda {

inline Tensor max_pool2d(Context& context, const Tensor& x, int kernel, int stride, int padding, MemoryFormat format) {
  const Shape shape = nn::pool2d_output_shape(x.shape(), kernel, stride, padding, "cuda::max_pool2d");
  Tensor y = context.allocate(shape, x.dtype(), format);
  const long long total = y.numel();
  launch("max_pool2d", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    constexpr int per = 16 / static_cast<int>(sizeof(T));
    if (x.view().is_channels_last() && y.view().is_channels_last() && x.dim(1) % per == 0 && total / per < (1LL << 31)) {
      const int pieces = static_cast<int>(total / per);
      kernels::max_pool2d_nhwc_kernel<T><<<kernels::blocks_for(pieces), 256, 0, context.stream()>>>(
          in<T>(x), static_cast<int>(x.dim(2)), static_cast<int>(x.dim(3)), static_cast<int>(x.dim(1)), out<T>(y),
          static_cast<int>(y.dim(2)), static_cast<int>(y.dim(3)), pieces, kernel, stride, padding);
      return;
    }
    kernels::max_pool2d_kernel<T><<<kernels::blocks_for(total), 256, 0, context.stream()>>>(
        in<T>(x), strides4(x), static_cast<int>(x.dim(2)), static_cast<int>(x.dim(3)), out<T>(y), strides4(y),
        static_cast<int>(y.dim(1)), static_cast<int>(y.dim(2)), static_cast<int>(y.dim(3)), total, kernel, stride, padding);
  });
  return y;
}

/// [N,C,H,W] -> [N,C]
inline Tensor global_avg_pool(Context& context, const Tensor& x) {
  Tensor y = context.allocate({x.dim(0), x.dim(1)}, x.dtype());
  const long long pairs = x.dim(0) * x.dim(1);
  launch("global_avg_pool", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    kernels::global_avg_pool_kernel<T><<<kernels::blocks_for(x.view().stride(1) == 1 ? pairs : pairs * 32), 256, 0,
                                         context.stream()>>>(in<T>(x), strides4(x), static_cast<int>(x.dim(1)),
                                                             static_cast<int>(x.dim(2)), static_cast<int>(x.dim(3)),
                                                             out<T>(y), pairs);
  });
  return y;
}

}  // namespace visopt::backend::cuda
