#pragma once
// compile<Level, Backend>(model, options): validates the options, runs the passes the level's policy
// asks for on a copy of the parameter tree, lets the backend prepare every operation, warms up, and
// returns an Engine. This is where the levels of DESIGN.md become concrete. For backend::Cuda the work
// happens in code nvcc compiled (backend/cuda/engines.cuh), so that plain C++ can call it too.

#include <chrono>
#include <concepts>
#include <string>

#include "../backend/cuda/engine.hpp"
#include "../models/resnet_network.hpp"
#include "../models/vit_network.hpp"
#include "engine.hpp"
#include "passes/fold_batch_norm.hpp"

namespace visopt {

using runtime::CompileOptions;

namespace detail {

/// Validates the options and starts the report; `options` comes back resolved (runtime::resolve):
/// every field the caller left unset holds its environment variable's value or its default.
template <PolicyBundle Level, backend::Backend B>
runtime::Report start_report(const std::string& model, std::int64_t parameters, CompileOptions& options) {
  runtime::Report report;
  options = runtime::resolve(std::move(options), &report.settings);
  require(options.max_batch >= 1, model, ": CompileOptions::max_batch is ", options.max_batch, ", must be >= 1");
  require(*options.warmup >= 0, model, ": CompileOptions::warmup is ", *options.warmup, ", must be >= 0");
  for (const int batch : options.warmup_batches)
    require(batch >= 1 && batch <= options.max_batch, model, ": CompileOptions::warmup_batches holds ", batch,
            ", must be within 1..max_batch (", options.max_batch, ")");
  require(*options.device >= 0, model, ": CompileOptions::device is ", *options.device, ", must be >= 0");
  report.model = model;
  report.level = std::string(Level::name);
  report.backend = std::string(B::name);
  report.policy = describe_policy<Level>();
  report.parameters = parameters;  // weight_bytes: what the backend holds, known once it is prepared (Engine)
  return report;
}

/// Records the epilogue-fusion decision, which the nn:: blocks carry out as they are built.
template <PolicyBundle Level>
void note_epilogue_fusion(runtime::Report& report, const std::string& what) {
  if constexpr (Level::fusion::fuses_epilogue) {
    report.applied("epilogue_fusion", what);
  } else {
    report.skipped("epilogue_fusion", std::string("fusion=") + std::string(Level::fusion::name));
  }
}

template <PolicyBundle Level, backend::Backend B, template <class, class> class NetworkT, class Model>
runtime::EngineImpl<Level, B> build_engine(const Model& model, const CompileOptions& options, runtime::Report report,
                                           std::int64_t image_size, std::chrono::steady_clock::time_point started) {
  using Exec = typename runtime::EngineImpl<Level, B>::Executor;
  auto executor = std::make_unique<Exec>(options, report);
  auto network = std::make_unique<NetworkT<Level, Exec>>(*executor, model);
  return runtime::EngineImpl<Level, B>(std::move(executor), std::move(network), options, std::move(report), image_size, started);
}

/// compile()'s work for a ResNet on backend B's executor. The model is taken by value: passes rewrite the copy.
template <PolicyBundle Level, backend::Backend B>
runtime::EngineImpl<Level, B> compile_impl(models::ResNet model, CompileOptions options) {
  const auto started = std::chrono::steady_clock::now();
  runtime::Report report = start_report<Level, B>(model.name, model.parameter_count(), options);
  if constexpr (Level::fusion::folds_batch_norm) {
    const int folded = runtime::passes::fold_batch_norms(model);
    report.applied("fold_bn", std::to_string(folded) + " BatchNorms folded into their convolutions");
  } else {
    report.skipped("fold_bn", "fusion=none keeps BatchNorm as its own operation");
  }
  note_epilogue_fusion<Level>(report, "bias, shortcut add and ReLU computed in each convolution's epilogue");
  const std::int64_t image_size = options.image_size > 0 ? options.image_size : 224;
  return build_engine<Level, B, models::ResNetNetwork>(model, options, std::move(report), image_size, started);
}

/// compile()'s work for a ViT on backend B's executor. Its image size is fixed by the model (the position embedding).
template <PolicyBundle Level, backend::Backend B>
runtime::EngineImpl<Level, B> compile_impl(const models::ViT& model, CompileOptions options) {
  const auto started = std::chrono::steady_clock::now();
  runtime::Report report = start_report<Level, B>(model.name, model.parameter_count(), options);
  require(options.image_size == 0 || options.image_size == model.image_size, model.name, ": CompileOptions::image_size is ",
          options.image_size, ", but the model's weights fix it at ", model.image_size);
  note_epilogue_fusion<Level>(report, "GELU in fc1's epilogue; residual adds in the output projection and fc2");
  return build_engine<Level, B, models::ViTNetwork>(model, options, std::move(report), model.image_size, started);
}

template <class B>
constexpr void require_backend_built() {
  static_assert(B::available,
                "visopt: this backend was not built: link visopt::onednn (needs libdnnl-dev) for backend::OneDnn, or "
                "visopt::cuda (needs the CUDA toolkit, cuDNN and cuBLASLt) for backend::Cuda");
}

}  // namespace detail

/// Compiles a ResNet for Level on backend B. The model is taken by value: passes rewrite the copy.
/// backend::Cuda from a plain C++ file needs the engine's code compiled once by nvcc (docs/backends.md):
/// visopt_add_cuda_engines() in CMake, or a .cu file with VISOPT_INSTANTIATE_CUDA_ENGINES(Level).
template <PolicyBundle Level, backend::Backend B>
Engine<Level, B> compile(models::ResNet model, CompileOptions options = {}) {
  detail::require_backend_built<B>();
  if constexpr (std::same_as<B, backend::Cuda>) {
    return backend::cuda::compile_engine<Level>(std::move(model), std::move(options));
  } else {
    return Engine<Level, B>(detail::compile_impl<Level, B>(std::move(model), std::move(options)));
  }
}

/// Compiles a ViT for Level on backend B. Its image size is fixed by the model (the position embedding).
template <PolicyBundle Level, backend::Backend B>
Engine<Level, B> compile(const models::ViT& model, CompileOptions options = {}) {
  detail::require_backend_built<B>();
  if constexpr (std::same_as<B, backend::Cuda>) {
    return backend::cuda::compile_engine<Level>(model, std::move(options));
  } else {
    return Engine<Level, B>(detail::compile_impl<Level, B>(model, std::move(options)));
  }
}

}  // namespace visopt
