#pragma once
// Multi-head self-attention on visopt's fused kernels (online softmax, no score matrix): the
// tensor-core kernel (sm_80's mma.sync) for fp16 and bf16 where the GPU has it, the CUDA-core kernel
// for the fp32 levels and older GPUs.

#include <cmath>
#include <type_traits>

#include "../backends.hpp"
#include "kernel_code.hpp"
#include "kernels/attention.cuh"
#include "kernels/attention_tensor_core.cuh"
#include "launch.hpp"

namespace visopt::backend::cuda {

static_assert(kernels::attention_head_dim == Cuda::attention_head_dim, "backend::Cuda::cannot_run states the kernels' head size");

/// Whether attention in `dtype` runs on the tensor-core kernel on this GPU.
inline bool uses_tensor_core_attention(const Context& context, DType dtype) {
  return dtype != DType::f32 && architecture_of(context.device()) >= kernels::tc_attention_architecture;
}

/// Refuses, inside compile(), a program whose tensor-core attention kernel was compiled for an
/// architecture without its instructions.
inline void require_attention_code(const Context& context, DType dtype) {
  if (!uses_tensor_core_attention(context, dtype)) return;
  kernels::dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, float>) {
      const KernelCode code = kernel_code(kernels::attention_tensor_core_kernel<T>, "attention_tensor_core_kernel", context.device());
      require_kernel_code(code, kernels::tc_attention_architecture, "fused tensor-core attention (ViT in fp16/bf16)", context.device());
    }
  });
}

/// qkv [B, L, 3D] -> [B, L, D]
inline Tensor attention(Context& context, const Tensor& qkv, int heads) {
  const auto b = qkv.dim(0), l = qkv.dim(1), d = qkv.dim(2) / 3;
  require(d == heads * kernels::attention_head_dim, "cuda::attention: model width ", d, " with ", heads,
          " heads is not a head size of ", kernels::attention_head_dim);
  Tensor y = context.allocate({b, l, d}, qkv.dtype());
  const float scale = 1.0f / std::sqrt(static_cast<float>(kernels::attention_head_dim));
  const auto bh = static_cast<unsigned>(b * heads);
  const bool tensor_cores = uses_tensor_core_attention(context, qkv.dtype());
  launch("attention", qkv.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const dim3 simt_grid(static_cast<unsigned>((l + kernels::attention_queries_per_block - 1) / kernels::attention_queries_per_block), bh);
    if constexpr (std::is_same_v<T, float>) {  // fp32 levels: exact fp32 math on CUDA cores
      kernels::attention_kernel<T><<<simt_grid, kernels::attention_warps * 32, 0, context.stream()>>>(
          in<T>(qkv), out<T>(y), static_cast<int>(l), heads, scale);
    } else if (!tensor_cores) {  // no sm_80 tensor-core fragments on this GPU
      kernels::attention_kernel<T><<<simt_grid, kernels::attention_warps * 32, 0, context.stream()>>>(
          in<T>(qkv), out<T>(y), static_cast<int>(l), heads, scale);
    } else {
      constexpr std::size_t shared = kernels::tc_attention_shared_bytes<T>();
      static const bool configured = [] {
        VISOPT_CUDA_CHECK(cudaFuncSetAttribute(kernels::attention_tensor_core_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(shared)));
        return true;
      }();
      (void)configured;
      const dim3 grid(static_cast<unsigned>((l + kernels::tc_attention_queries - 1) / kernels::tc_attention_queries), bh);
      kernels::attention_tensor_core_kernel<T><<<grid, kernels::tc_attention_warps * 32, shared, context.stream()>>>(
          in<T>(qkv), out<T>(y), static_cast<int>(l), heads, scale);
    }
  });
  return y;
}

}  // namespace visopt::backend::cuda
