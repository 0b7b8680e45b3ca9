#pragma once
// The one place where runtime strings become compile-time types: "O2" -> visopt::O2, "onednn" ->
// backend::OneDnn. CLIs, config files and the environment go through here; an unknown value lists
// the valid ones.

#include <string>
#include <string_view>

#include "../backend/backends.hpp"
#include "../core/env.hpp"
#include "../core/error.hpp"
#include "../models/registry.hpp"
#include "../policy/levels.hpp"
#include "compile.hpp"
#include "engine.hpp"

#if defined(VISOPT_HAS_CUDA)
#include "../backend/cuda/device.hpp"
#endif

namespace visopt {

inline constexpr std::string_view level_names = "O0, O1, O2, O3, O4";

/// Calls f(Level{}) for the named level and returns its result.
template <class F>
decltype(auto) with_level(std::string_view level, F&& f) {
  if (level == "O0") return f(O0{});
  if (level == "O1") return f(O1{});
  if (level == "O2") return f(O2{});
  if (level == "O3") return f(O3{});
  if (level == "O4") return f(O4{});
  throw Error(detail::concat("level '", level, "' is not one of ", level_names));
}

/// The backends this translation unit can run, in the order a demo should try them.
inline std::string available_backend_names() {
  std::string names{backend::Reference::name};
  if constexpr (backend::OneDnn::available) names += std::string(", ") + std::string(backend::OneDnn::name);
  if constexpr (backend::Cuda::available) names += std::string(", ") + std::string(backend::Cuda::name);
  return names;
}

/// Whether the named backend was built here and can run on this machine (for cuda: a GPU is visible).
inline bool backend_runs_here(std::string_view name) {
  if (name == backend::Reference::name) return true;
  if (name == backend::OneDnn::name) return backend::OneDnn::available;
#if defined(VISOPT_HAS_CUDA)
  if (name == backend::Cuda::name) return backend::cuda::visible_gpus() > 0;
#endif
  return false;
}

/// The fastest backend that runs here: cuda (built, and a GPU visible), else onednn (built), else reference.
inline std::string fastest_backend_here() {
  for (const std::string_view name : {backend::Cuda::name, backend::OneDnn::name}) {
    if (backend_runs_here(name)) return std::string(name);
  }
  return std::string(backend::Reference::name);
}

/// Calls f(Backend{}) for the named backend if it was built into this translation unit.
template <class F>
decltype(auto) with_backend(std::string_view name, F&& f) {
  if (name == backend::Reference::name) return f(backend::Reference{});
  if constexpr (backend::OneDnn::available) {
    if (name == backend::OneDnn::name) return f(backend::OneDnn{});
  }
  if constexpr (backend::Cuda::available) {
    if (name == backend::Cuda::name) return f(backend::Cuda{});
  }
  throw Error(detail::concat("backend '", name, "' is not one of those built here: ", available_backend_names()));
}

}  // namespace visopt

namespace visopt {

/// Calls f(Level{}, Backend{}) for a named pair; a pair the backend cannot run (O2 on the reference
/// backend) is a visopt::Error at run time here, where the types alone would not compile.
template <class F>
decltype(auto) with_level_and_backend(std::string_view level, std::string_view backend_name, F&& f) {
  return with_level(level, [&](auto level_tag) -> decltype(auto) {
    return with_backend(backend_name, [&](auto backend_tag) -> decltype(auto) {
      using L = decltype(level_tag);
      using B = decltype(backend_tag);
      if constexpr (B::template can_implement<L>().ok) {
        return f(level_tag, backend_tag);
      } else {
        throw Error(detail::concat("backend '", B::name, "' cannot run level ", L::name, " (", describe_policy<L>(),
                                   "): ", B::template can_implement<L>().reason));
        return f(O0{}, backend::Reference{});  // unreachable; names the return type
      }
    });
  });
}

}  // namespace visopt

namespace visopt {

/// The level a program runs: `given` (its command line or config file) when not empty, else
/// VISOPT_LEVEL, else `fallback`. A value that is no level is a visopt::Error naming where it came from.
inline std::string choose_level(std::string_view given, std::string_view fallback = "O1") {
  const auto from_env = env::level();
  const std::string level = !given.empty() ? std::string(given) : from_env ? *from_env : std::string(fallback);
  const char* source = !given.empty() ? "" : from_env ? "environment variable VISOPT_LEVEL: " : "";
  try {
    with_level(level, [](auto) { return 0; });
  } catch (const Error& e) {
    throw Error(source + std::string(e.what()));
  }
  return level;
}

/// The backend a program runs: `given` when not empty, else VISOPT_BACKEND, else `fallback`. A name
/// that is not built into this translation unit is a visopt::Error listing those that are.
inline std::string choose_backend(std::string_view given, std::string_view fallback = backend::Reference::name) {
  const auto from_env = env::backend();
  const std::string name = !given.empty() ? std::string(given) : from_env ? *from_env : std::string(fallback);
  const char* source = !given.empty() ? "" : from_env ? "environment variable VISOPT_BACKEND: " : "";
  try {
    with_backend(name, [](auto) { return 0; });
  } catch (const Error& e) {
    throw Error(source + std::string(e.what()));
  }
  return name;
}

}  // namespace visopt

namespace visopt {

/// Why the named backend cannot run the named level (its can_implement's reason), or "" when it can.
inline std::string why_level_cannot_run_on(std::string_view level, std::string_view backend_name) {
  return with_level(level, [&](auto level_tag) {
    return with_backend(backend_name, [](auto backend_tag) {
      return std::string(decltype(backend_tag)::template can_implement<decltype(level_tag)>().reason);
    });
  });
}

/// Whether the named backend runs the named level (O2 on the reference backend does not); names that
/// are no level or backend built here are a visopt::Error listing the valid ones.
inline bool level_runs_on(std::string_view level, std::string_view backend_name) {
  return why_level_cannot_run_on(level, backend_name).empty();
}

/// The highest level the named backend runs: O3 on onednn and cuda, O1 on the reference backend.
inline std::string fastest_level_for(std::string_view backend_name) {
  return std::string(level_runs_on(O3::name, backend_name) ? O3::name : O1::name);
}

/// Compiles `model` (a models::ResNet, models::ViT or models::AnyModel) at a level and on a backend named
/// at run time, into an AnyEngine: what a program whose command line picks them holds. Instantiates every
/// level on every backend built here, so call it only where visopt/visopt.hpp is included.
template <class Model>
AnyEngine compile_any(const Model& model, std::string_view level, std::string_view backend_name, CompileOptions options = {}) {
  if constexpr (std::is_same_v<Model, models::AnyModel>) {
    return std::visit([&](const auto& m) { return compile_any(m, level, backend_name, std::move(options)); }, model);
  } else {
    return with_level_and_backend(level, backend_name, [&](auto level_tag, auto backend_tag) {
      return AnyEngine(compile<decltype(level_tag), decltype(backend_tag)>(model, std::move(options)));
    });
  }
}

}  // namespace visopt
