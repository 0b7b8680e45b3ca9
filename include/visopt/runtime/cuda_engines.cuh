#pragma once
// The CUDA engines' code, for nvcc: defines backend::cuda::compile_engine<Level> (declared for plain C++
// in engine.hpp) and VISOPT_INSTANTIATE_CUDA_ENGINES(Level), which compiles it for one level, ResNet and
// ViT. A program whose .cpp files call compile<Level, backend::Cuda> needs one .cu file such as
//
//     #include <visopt/runtime/cuda_engines.cuh>
//     VISOPT_INSTANTIATE_CUDA_ENGINES(visopt::O3)
//
// or CMake's visopt_add_cuda_engines(), which writes it. This header leaves Eigen and the reference
// backend out on purpose: Eigen configures itself differently under nvcc, and the same inline function
// compiled both ways in one program would break the one-definition rule.

#if !defined(__CUDACC__)
#error "visopt/runtime/cuda_engines.cuh is compiled by nvcc only; plain C++ files include <visopt/visopt.hpp>"
#endif

#include <memory>
#include <type_traits>

#include "../policy/levels.hpp"
#include "compile.hpp"
#include "cuda_engine.hpp"
#include "../backend/cuda/executor.hpp"

namespace visopt::backend::cuda {

namespace detail {
template <PolicyBundle Level>
using CudaEngineImpl = runtime::EngineAdapter<runtime::EngineImpl<Level, Cuda>>;

template <PolicyBundle Level>
Engine<Level, Cuda> hold(runtime::EngineImpl<Level, Cuda>&& impl) {
  return Engine<Level, Cuda>(std::make_unique<CudaEngineImpl<Level>>(std::move(impl)));
}
}  // namespace detail

template <PolicyBundle Level, class Model>
Engine<Level, Cuda> compile_engine(Model model, runtime::CompileOptions options) {
  return detail::hold<Level>(visopt::detail::compile_impl<Level, Cuda>(std::move(model), std::move(options)));
}

/// The executor of a CUDA engine (its context, stream, captured graphs): for tests, benchmarks and
/// diagnostics from one thread, as Engine::executor() is for the CPU backends.
template <PolicyBundle Level>
Executor<Level>& executor_of(Engine<Level, Cuda>& engine) {
  auto* impl = dynamic_cast<detail::CudaEngineImpl<Level>*>(&engine.implementation());
  require(impl != nullptr, "cuda::executor_of: the engine was not made by compile<", Level::name, ", backend::Cuda>");
  return impl->engine().executor();
}

}  // namespace visopt::backend::cuda

/// Compiles the CUDA engines of one level (a visopt::O0..O3 or a bundle of one's own) for every registered
/// model type (VISOPT_REGISTERED_MODELS: ResNet and ViT, which DeiT is), at namespace scope of one .cu file
/// of the program. The level is named through an alias because a bundle's spelling may hold commas.
#define VISOPT_DETAIL_CONCAT2(a, b) a##b
#define VISOPT_DETAIL_CONCAT(a, b) VISOPT_DETAIL_CONCAT2(a, b)
#define VISOPT_DETAIL_CUDA_LEVEL VISOPT_DETAIL_CONCAT(visopt_cuda_engines_level_, __LINE__)
#define VISOPT_DETAIL_INSTANTIATE_CUDA_ENGINE(Model)                                                     \
  template visopt::Engine<VISOPT_DETAIL_CUDA_LEVEL, visopt::backend::Cuda>                               \
  visopt::backend::cuda::compile_engine<VISOPT_DETAIL_CUDA_LEVEL, Model>(Model, visopt::runtime::CompileOptions);
#define VISOPT_INSTANTIATE_CUDA_ENGINES(...)          \
  using VISOPT_DETAIL_CUDA_LEVEL = __VA_ARGS__;       \
  VISOPT_REGISTERED_MODELS(VISOPT_DETAIL_INSTANTIATE_CUDA_ENGINE) static_assert(true, "")
