#pragma once
// Multi-head self-attention on visopt's fused kernels (online softmax, no score matrix): the
// tensor-core kernels (sm_80's mma.sync) for fp16 and bf16, and for fp32 where the level allows TF32
// (O1), where the GPU has them; the CUDA-core kernel for exact fp32 (O0) and older GPUs.

#include <cmath>
#include <type_traits>

#include "../backends.hpp"
#include "kernel_code.hpp"
#include "kernels/attention.cuh"
#include "kernels/attention_tensor_core.cuh"
#include "kernels/attention_tf32.cuh"
#include "launch.hpp"

namespace visopt::backend::cuda {

static_assert(kernels::attention_head_dim == Cuda::attention_head_dim, "backend::Cuda::cannot_run states the kernels' head size");

/// Whether attention in `dtype` runs on a tensor-core kernel on this GPU; `tf32`: the level lets fp32
/// math round to TF32 (O1; O0 keeps exact fp32).
inline bool uses_tensor_core_attention(const Context& context, DType dtype, bool tf32) {
  static_assert(kernels::tc_attention_architecture == kernels::tf32_attention_architecture);
  return (dtype != DType::f32 || tf32) && architecture_of(context.device()) >= kernels::tc_attention_architecture;
}

/// Refuses, inside compile(), a program whose tensor-core attention kernel was compiled for an
/// architecture without its instructions.
inline void require_attention_code(const Context& context, DType dtype, bool tf32) {
  if (!uses_tensor_core_attention(context, dtype, tf32)) return;
  kernels::dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float>) {
      const KernelCode code = kernel_code(kernels::attention_tf32_kernel, "attention_tf32_kernel", context.device());
      require_kernel_code(code, kernels::tf32_attention_architecture, "fused TF32 tensor-core attention (ViT at O1)", context.device());
    } else {
      const KernelCode code = kernel_code(kernels::attention_tensor_core_kernel<T>, "attention_tensor_core_kernel", context.device());
      require_kernel_code(code, kernels::tc_attention_architecture, "fused tensor-core attention (ViT in fp16/bf16)", context.device());
    }
  });
}

/// Lets `kernel` take `bytes` of dynamic shared memory (above the default 48 KB), once per program.
template <auto* kernel>
void allow_shared_memory(std::size_t bytes) {
  static const bool configured = [&] {
    VISOPT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
    return true;
  }();
  (void)configured;
}

/// qkv [B, L, 3D] -> [B, L, D]; `tf32` as for uses_tensor_core_attention.
inline Tensor attention(Context& context, const Tensor& qkv, int heads, bool tf32) {
  const auto b = qkv.dim(0), l = qkv.dim(1), d = qkv.dim(2) / 3;
  require(d == heads * kernels::attention_head_dim, "cuda::attention: model width ", d, " with ", heads,
          " heads is not a head size of ", kernels::attention_head_dim);
  Tensor y = context.allocate({b, l, d}, qkv.dtype());
  const float scale = 1.0f / std::sqrt(static_cast<float>(kernels::attention_head_dim));
  const auto bh = static_cast<unsigned>(b * heads);
  const bool tensor_cores = uses_tensor_core_attention(context, qkv.dtype(), tf32);
  launch("attention", qkv.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (!tensor_cores) {  // exact fp32 (O0), or no sm_80 tensor-core fragments on this GPU
      const dim3 grid(static_cast<unsigned>((l + kernels::attention_queries_per_block - 1) / kernels::attention_queries_per_block), bh);
      kernels::attention_kernel<T><<<grid, kernels::attention_warps * 32, 0, context.stream()>>>(in<T>(qkv), out<T>(y),
                                                                                                static_cast<int>(l), heads, scale);
      return;
    }
    const dim3 grid(static_cast<unsigned>((l + kernels::tc_attention_queries - 1) / kernels::tc_attention_queries), bh);
    if constexpr (std::is_same_v<T, float>) {
      constexpr std::size_t shared = kernels::tf32_attention_shared_bytes();
      allow_shared_memory<kernels::attention_tf32_kernel>(shared);
      kernels::attention_tf32_kernel<<<grid, kernels::tc_attention_warps * 32, shared, context.stream()>>>(
          in<T>(qkv), out<T>(y), static_cast<int>(l), heads, scale);
    } else {
      constexpr std::size_t shared = kernels::tc_attention_shared_bytes<T>();
      allow_shared_memory<kernels::attention_tensor_core_kernel<T>>(shared);
      kernels::attention_tensor_core_kernel<T><<<grid, kernels::tc_attention_warps * 32, shared, context.stream()>>>(
          in<T>(qkv), out<T>(y), static_cast<int>(l), heads, scale);
    }
  });
  return y;
}

}  // namespace visopt::backend::cuda
