#pragma once
// The backend tags a user names in compile<Level, Backend>, each with its traits: lower<Policy>() says
// what the backend runs for a policy (dtype, layout, tensor cores, static plan, capture) and
// can_implement<Policy>() whether it can, and if not why. static_assert (compile()), run-time dispatch
// (level_runs_on), the executors and the report all ask these two, so each rule is written once.
// cannot_run(operation) is the rule per traced operation (what a backend's kernels take), which
// compile()'s validate stage asks of every operation of the trace before anything is prepared.
// Every tag exists in every build so that asking for one that was not built is a compile-time error
// that says so, not an unknown name.

#include <concepts>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "../core/dtype.hpp"
#include "../core/error.hpp"
#include "../policy/levels.hpp"
#include "../policy/policy.hpp"
#include "../services/trace.hpp"

namespace visopt::backend {

struct backend_tag {};

/// What a backend runs for a policy bundle: the traits every executor reads instead of restating the rule.
struct Lowering {
  DType dtype = DType::f32;    // what weights and activations are stored and multiplied in (a CPU without bf16
                               // falls back to fp32 at run time, and the report says so)
  bool channels_last = false;  // NHWC activations end to end
  bool tensor_cores = false;   // TF32 or half-precision tensor cores (GPU)
  bool static_plan = false;    // activation memory planned once per batch size, weights prepacked
  bool captures = false;       // the whole forward captured once per batch size and replayed (CUDA Graphs)
  bool int8 = false;           // calibrated int8 convolutions and token-wise linears; `dtype` is then what the
                               // layers kept in higher precision run in
  bool fp8 = false;            // calibrated FP8 (e4m3) token-wise linears, `dtype` elsewhere (GPU)
};

/// can_implement's answer: whether a backend runs a policy bundle, and if not, why and what to use.
struct Verdict {
  bool ok = true;
  std::string_view reason;  // empty when ok
};

/// One rule of a backend's can_implement, written once: with Diagnose (compile()'s static_assert) a
/// broken rule is a compile error carrying `message`; without, can_implement returns it as the reason.
#define VISOPT_BACKEND_RULE(holds, message)     \
  if constexpr (Diagnose) static_assert(holds, message); \
  if (!(holds)) return ::visopt::backend::Verdict{false, message}

/// Eigen, fp32, NCHW: the in-library oracle and the fallback everywhere.
struct Reference : backend_tag {
  static constexpr std::string_view name = "reference";
  static constexpr bool available = true;

  template <PolicyBundle P, bool Diagnose = false>
  static constexpr Verdict can_implement() {
    VISOPT_BACKEND_RULE(!precision::is_quantized_v<typename P::precision>,
                        "visopt: the reference backend computes in fp32 only; calibrated 8-bit precision (precision::int8, "
                        "precision::fp8, precision::quantized, O4) runs on backend::OneDnn (int8) or backend::Cuda (fp8)");
    VISOPT_BACKEND_RULE(!precision::is_reduced_v<typename P::precision>,
                        "visopt: the reference backend computes in fp32 only; use backend::OneDnn or backend::Cuda for "
                        "half precision, or precision::fp32 (O0/O1)");
    VISOPT_BACKEND_RULE((std::is_same_v<typename P::layout, layout::nchw>),
                        "visopt: the reference backend keeps activations in NCHW; use layout::nchw, or backend::OneDnn / "
                        "backend::Cuda for channels_last");
    VISOPT_BACKEND_RULE(!P::execution::static_plan,
                        "visopt: the reference backend runs eagerly; use execution::eager, or backend::OneDnn / "
                        "backend::Cuda for a static plan and graph capture");
    return {};
  }
  /// fp32 (tf32 computed as fp32), NCHW, eager.
  template <PolicyBundle P>
  static constexpr Lowering lower() { return {}; }
  /// Every operation the models trace.
  static std::string cannot_run(const runtime::TracedOperation&) { return {}; }
  template <PolicyBundle P>
  static constexpr bool supports = can_implement<P>().ok;  // the spelling before can_implement
};

/// oneDNN on the CPU; built when dnnl.hpp is found (target visopt::onednn).
struct OneDnn : backend_tag {
  static constexpr std::string_view name = "onednn";
#if defined(VISOPT_HAS_ONEDNN)
  static constexpr bool available = true;
#else
  static constexpr bool available = false;
#endif
  /// Every bundle but FP8, and int8 without fused epilogues: what the CPU lacks (bf16, any fp16) falls back
  /// to fp32 at run time, and the report says so (CompileOptions::strict turns that into an error).
  template <PolicyBundle P, bool Diagnose = false>
  static constexpr Verdict can_implement() {
    VISOPT_BACKEND_RULE((!std::is_same_v<typename P::precision, precision::fp8>),
                        "visopt: backend::OneDnn has no FP8 (oneDNN 2.x); use precision::int8 or precision::quantized "
                        "(O4) on the CPU, or backend::Cuda for fp8");
    VISOPT_BACKEND_RULE(!precision::is_quantized_v<typename P::precision> || P::fusion::fuses_epilogue,
                        "visopt: calibrated int8 on backend::OneDnn needs fusion::epilogue: BatchNorm folded and each "
                        "convolution's residual add and ReLU applied before its output is quantized");
    return {};
  }
  /// bf16 for bf16 and half, and for the layers int8 keeps in higher precision.
  template <PolicyBundle P>
  static constexpr Lowering lower() {
    using precision_t = typename P::precision;
    const bool int8 = precision::is_quantized_v<precision_t>;
    const bool bf16 = std::is_same_v<precision_t, precision::bf16> || std::is_same_v<precision_t, precision::half> || int8;
    return {bf16 ? DType::bf16 : DType::f32, std::is_same_v<typename P::layout, layout::nhwc>, false,
            P::execution::static_plan, false, int8};
  }
  /// Every operation the models trace.
  static std::string cannot_run(const runtime::TracedOperation&) { return {}; }
  template <PolicyBundle P>
  static constexpr bool supports = can_implement<P>().ok;
};

/// cuDNN, cuBLASLt, own kernels and CUDA Graphs; built when the CUDA toolkit, cuDNN and cuBLASLt are
/// found (target visopt::cuda). Plain C++ files call it too: its code is compiled by nvcc once per
/// program (runtime/cuda_engine.hpp).
struct Cuda : backend_tag {
  static constexpr std::string_view name = "cuda";
#if defined(VISOPT_HAS_CUDA)
  static constexpr bool available = true;
#else
  static constexpr bool available = false;
#endif
  template <PolicyBundle P, bool Diagnose = false>
  static constexpr Verdict can_implement() {
    VISOPT_BACKEND_RULE((!std::is_same_v<typename P::precision, precision::int8>),
                        "visopt: backend::Cuda quantizes to FP8 (e4m3), not int8: use precision::fp8 or "
                        "precision::quantized (O4) on the GPU, or backend::OneDnn for int8");
    VISOPT_BACKEND_RULE(!precision::is_quantized_v<typename P::precision> || P::fusion::fuses_epilogue,
                        "visopt: FP8 on backend::Cuda needs fusion::epilogue: each linear's bias, GELU and residual add "
                        "are applied in its FP8 matmul's epilogue");
    return {};
  }
  /// fp16 for fp16, half and the layers FP8 keeps in higher precision, bf16 for bf16; TF32 tensor cores
  /// unless precision::fp32; a CUDA Graph per batch size with a static plan.
  template <PolicyBundle P>
  static constexpr Lowering lower() {
    using precision_t = typename P::precision;
    const bool fp8 = precision::is_quantized_v<precision_t>;
    const DType dtype =
        std::is_same_v<precision_t, precision::fp16> || std::is_same_v<precision_t, precision::half> || fp8 ? DType::f16
        : std::is_same_v<precision_t, precision::bf16>                                                     ? DType::bf16
                                                                                                           : DType::f32;
    return {dtype, std::is_same_v<typename P::layout, layout::nhwc>, !std::is_same_v<precision_t, precision::fp32>,
            P::execution::static_plan, P::execution::static_plan, false, fp8};
  }
  /// The head size visopt's attention kernels are written for (backend/cuda/kernels/attention.cuh).
  static constexpr int attention_head_dim = 64;
  /// Attention only in heads of attention_head_dim values (ViT-Ti to ViT-H and DeiT all have them).
  static std::string cannot_run(const runtime::TracedOperation& op) {
    if (op.kind != "attention" || op.heads <= 0 || op.inputs.empty()) return {};
    const std::int64_t width = op.inputs[0][op.inputs[0].rank() - 1] / 3;
    if (width == std::int64_t{op.heads} * attention_head_dim) return {};
    return "its attention kernels take heads of " + std::to_string(attention_head_dim) + " values; this model has " +
           std::to_string(op.heads) + " heads over a width of " + std::to_string(width);
  }
  template <PolicyBundle P>
  static constexpr bool supports = can_implement<P>().ok;
};

#undef VISOPT_BACKEND_RULE

template <class T> concept Backend = std::derived_from<T, backend_tag> && requires {
  { T::name } -> std::convertible_to<std::string_view>;
  { T::available } -> std::convertible_to<bool>;
  { T::template can_implement<O0>() } -> std::same_as<Verdict>;
  { T::template lower<O0>() } -> std::same_as<Lowering>;
  { T::cannot_run(std::declval<const runtime::TracedOperation&>()) } -> std::convertible_to<std::string>;
};

/// compile()'s validate stage: every operation of the trace against the backend's per-operation rule,
/// before anything is prepared; the first one it cannot run is a visopt::Error naming it.
template <Backend B>
void validate(const runtime::Trace& trace) {
  for (std::size_t i = 0; i < trace.operations.size(); ++i) {
    const std::string why = B::cannot_run(trace.operations[i]);
    if (!why.empty()) {
      fail(visopt::detail::concat(trace.model, " at ", trace.level, " on ", B::name, ": operation ", i + 1, " of ",
                                  trace.operations.size(), ", ", trace.operations[i].text(), ": backend::", B::name,
                                  " cannot run it: ", why));
    }
  }
}

/// compile()'s check: a bundle the backend cannot run fails here with the rule's own message.
template <Backend B, PolicyBundle P>
consteval bool implementable() {
  return B::template can_implement<P, true>().ok;
}

/// Specialised by each backend's header: the executor type that runs a policy bundle on it.
template <class BackendTag, class Policy> struct executor_for;

}  // namespace visopt::backend
