#pragma once
// The backend tags a user names in compile<Level, Backend>. Every tag exists in every build so that
// asking for one that was not built is a compile-time error that says so, not an unknown name.

#include <concepts>
#include <string_view>
#include <type_traits>

#include "../policy/policy.hpp"

namespace visopt::backend {

struct backend_tag {};

/// Eigen, fp32, NCHW: the in-library oracle and the fallback everywhere.
struct Reference : backend_tag {
  static constexpr std::string_view name = "reference";
  static constexpr bool available = true;
  /// fp32 (tf32 computed as fp32), NCHW, eager: anything else is a compile-time error with advice.
  template <PolicyBundle P>
  static constexpr bool supports = !precision::is_reduced_v<typename P::precision> &&
                                   std::is_same_v<typename P::layout, layout::nchw> &&
                                   std::is_same_v<typename P::execution, execution::eager>;
};

/// oneDNN on the CPU; built when dnnl.hpp is found (target visopt::onednn).
struct OneDnn : backend_tag {
  static constexpr std::string_view name = "onednn";
#if defined(VISOPT_HAS_ONEDNN)
  static constexpr bool available = true;
#else
  static constexpr bool available = false;
#endif
  template <PolicyBundle P>
  static constexpr bool supports = true;  // what the CPU lacks (bf16) falls back at run time, and says so
};

/// cuDNN, cuBLASLt, own kernels and CUDA Graphs; built when the CUDA toolkit, cuDNN and cuBLASLt are
/// found (target visopt::cuda). Plain C++ files call it too: its code is compiled by nvcc once per
/// program (backend/cuda/engine.hpp).
struct Cuda : backend_tag {
  static constexpr std::string_view name = "cuda";
#if defined(VISOPT_HAS_CUDA)
  static constexpr bool available = true;
#else
  static constexpr bool available = false;
#endif
  template <PolicyBundle P>
  static constexpr bool supports = true;
};

template <class T> concept Backend = std::derived_from<T, backend_tag> && requires {
  { T::name } -> std::convertible_to<std::string_view>;
  { T::available } -> std::convertible_to<bool>;
};

/// Specialised by each backend's header: the executor type that runs a policy bundle on it.
template <class BackendTag, class Policy> struct executor_for;

}  // namespace visopt::backend
