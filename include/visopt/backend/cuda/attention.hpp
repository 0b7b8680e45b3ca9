#pragma once
// Multi-head self-attention, fused (online softmax, no score matrix): cuDNN's fused attention graph or
// visopt's kernels, chosen per input shape in fp16/bf16; visopt's kernels for fp32. visopt's: the
// tensor-core kernels (sm_80's mma.sync) for fp16 and bf16, and for fp32 where the level allows TF32
// (O1), where the GPU has them; the CUDA-core kernel for exact fp32 (O0) and older GPUs.

#include <cmath>
#include <memory>
#include <string>
#include <type_traits>

#include "../backends.hpp"
#include "kernel_code.hpp"
#include "kernels/attention.cuh"
#include "kernels/attention_tensor_core.cuh"
#include "kernels/attention_tf32.cuh"
#include "launch.hpp"
#include "sdpa_graph.hpp"

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
      const KernelCode code = kernel_code(kernels::attention_tf32_kernel<float>, "attention_tf32_kernel", context.device());
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

/// softmax(Q·Kᵀ·scale): the scale every attention path applies, 1/√(head size).
inline float attention_scale() { return 1.0f / std::sqrt(static_cast<float>(kernels::attention_head_dim)); }

/// visopt's own attention kernel for qkv into y: the tensor-core one for T where `tensor_cores`, else
/// the CUDA-core one.
inline void launch_attention_kernel(Context& context, const Tensor& qkv, Tensor& y, int heads, bool tensor_cores) {
  const auto b = qkv.dim(0), l = qkv.dim(1);
  const float scale = attention_scale();
  const auto bh = static_cast<unsigned>(b * heads);
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
      allow_shared_memory<kernels::attention_tf32_kernel<float>>(shared);
      kernels::attention_tf32_kernel<float><<<grid, kernels::tc_attention_warps * 32, shared, context.stream()>>>(
          in<T>(qkv), out<T>(y), static_cast<int>(l), heads, scale);
    } else {
      constexpr std::size_t shared = kernels::tc_attention_shared_bytes<T>();
      allow_shared_memory<kernels::attention_tensor_core_kernel<T>>(shared);
      kernels::attention_tensor_core_kernel<T><<<grid, kernels::tc_attention_warps * 32, shared, context.stream()>>>(
          in<T>(qkv), out<T>(y), static_cast<int>(l), heads, scale);
    }
  });
}

/// Self-attention of one executor: qkv [B, L, 3D] -> [B, L, D]. In fp16/bf16, plan() chooses per input
/// shape between cuDNN's fused attention graph (sdpa_graph.hpp) and visopt's kernel: the faster on this
/// GPU under measured tuning (kept in the algorithm cache), cuDNN's where it has an engine otherwise.
/// The fp32 levels run visopt's kernels (cuDNN's attention engines take 16-bit data only).
class Attention {
 public:
  /// `tf32` as for uses_tensor_core_attention.
  Attention(DType dtype, bool tf32) : dtype_(dtype), tf32_(tf32) {}

  struct Plan {
    std::shared_ptr<const SdpaGraph> graph;  // cuDNN's fused attention; null: visopt's kernel
    std::string why;                         // why visopt's kernel runs instead, where cuDNN's was considered
  };

  /// The output y [B, L, D] for qkv [B, L, 3D], from the pool.
  Tensor output(Context& context, const Tensor& qkv, int heads) const {
    const auto d = qkv.dim(2) / 3;
    require(qkv.rank() == 3 && qkv.dim(2) % 3 == 0 && d == heads * kernels::attention_head_dim, "cuda::attention: qkv of shape ",
            qkv.shape(), " with ", heads, " heads is not [B, L, 3·heads·", kernels::attention_head_dim, "]");
    return context.allocate({qkv.dim(0), qkv.dim(1), d}, qkv.dtype());
  }

  /// Chooses how qkv's shape runs (timing the candidates on these buffers when tuning is measured).
  Plan plan(Context& context, const Tensor& qkv, Tensor& y, int heads) const {
    if (dtype_ == DType::f32) return {};
    const SdpaSpec spec{dtype_, qkv.dim(0), qkv.dim(1), heads, kernels::attention_head_dim, attention_scale()};
    runtime::AlgorithmCache* cache = context.cache();
    const std::string key = spec.describe();
    if (cache) {
      if (auto hit = cache->find(key)) {
        const int rank = hit->value("rank", -2), form = hit->value("form", -1);
        if (rank == -1) return {nullptr, hit->value("why", std::string("visopt's kernel"))};
        if (auto graph = cached_graph(context, spec, form, rank)) return {graph, {}};
        cache->forget(key);  // an entry this cuDNN rejects is not trusted
      }
    }
    // The single operation where this cuDNN has it, else the decomposed graph. Heuristic tuning: the
    // first engine that builds. Measured: the fastest of the first few, then against visopt's kernel.
    std::string why;
    for (const auto form : {SdpaGraph::Form::single_operation, SdpaGraph::Form::decomposed}) {
      std::shared_ptr<SdpaGraph> graph;
      try {
        graph = std::make_shared<SdpaGraph>(context.cudnn(), spec, form);
      } catch (const Error& e) {  // this cuDNN cannot express that form
        why += visopt::detail::concat(why.empty() ? "" : "; ", e.what());
        continue;
      }
      constexpr int measured_candidates = 3;
      auto best = graph->fastest_plan(context.cudnn(), Context::workspace_limit, cache ? measured_candidates : 1,
                                      [&](const OperationGraph::Plan& candidate) { return time_graph(context, *graph, candidate, qkv, y); });
      if (!best) {
        why += visopt::detail::concat(why.empty() ? "" : "; ", "no cuDNN engine runs ", graph->what(), " here (", graph->candidates(),
                                      " proposed)");
        continue;
      }
      if (cache) {
        const bool tensor_cores = uses_tensor_core_attention(context, dtype_, tf32_);
        const float own_ms = fastest_run_ms(context.stream(), [&] {
          launch_attention_kernel(context, qkv, y, heads, tensor_cores);
          return true;
        });
        if (own_ms < best->ms) {
          why = visopt::detail::concat("visopt's kernel measured faster than cuDNN's ", graph->what(), " (", own_ms, " against ",
                                       best->ms, " ms)");
          cache->store(key, {{"rank", -1}, {"why", why}});
          return {nullptr, why};
        }
        cache->store(key, {{"form", static_cast<int>(form)}, {"rank", best->plan.rank}, {"ms", best->ms}});
      }
      graph->use(std::move(best->plan));
      return {graph, {}};
    }
    if (cache) cache->store(key, {{"rank", -1}, {"why", why}});
    return {nullptr, why};
  }

  void forward(Context& context, const Plan& plan, const Tensor& qkv, Tensor& y, int heads) const {
    if (plan.graph) {
      const auto& chosen = plan.graph->chosen();
      VISOPT_CUDNN_CHECK(plan.graph->execute(context.cudnn(), chosen, qkv.data(), y.data(), context.workspace(chosen.workspace)),
                         plan.graph->what());
      return;
    }
    launch_attention_kernel(context, qkv, y, heads, uses_tensor_core_attention(context, dtype_, tf32_));
  }

 private:
  /// The graph of a cache entry (form, rank), or null when this cuDNN does not build it.
  static std::shared_ptr<SdpaGraph> cached_graph(Context& context, const SdpaSpec& spec, int form, int rank) {
    if (form != static_cast<int>(SdpaGraph::Form::single_operation) && form != static_cast<int>(SdpaGraph::Form::decomposed)) return nullptr;
    try {
      auto graph = std::make_shared<SdpaGraph>(context.cudnn(), spec, static_cast<SdpaGraph::Form>(form));
      auto chosen = graph->build(context.cudnn(), rank, Context::workspace_limit);
      if (!chosen) return nullptr;
      graph->use(std::move(*chosen));
      return graph;
    } catch (const Error&) {
      return nullptr;
    }
  }

  static float time_graph(Context& context, const SdpaGraph& graph, const OperationGraph::Plan& candidate, const Tensor& qkv,
                          Tensor& y) {
    void* workspace = context.workspace(candidate.workspace);
    return fastest_run_ms(context.stream(),
                          [&] { return graph.execute(context.cudnn(), candidate, qkv.data(), y.data(), workspace) == CUDNN_STATUS_SUCCESS; });
  }

  DType dtype_;
  bool tf32_;
};

}  // namespace visopt::backend::cuda
