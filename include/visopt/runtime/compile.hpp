#pragma once
// compile<Level, Backend>(model, options): validates the options, runs the passes the level's policy
// asks for on a copy of the parameter tree, traces and validates the forward, lets the backend prepare
// every operation, plans each warm-up batch size (docs/architecture.md, "Lifecycle") and returns an
// Engine. This is where the levels of DESIGN.md become concrete. For backend::Cuda the work happens in
// code nvcc compiled (runtime/cuda_engines.cuh), so that plain C++ can call it too.

#include <chrono>
#include <concepts>
#include <string>

#include "cuda_engine.hpp"
#include "../models/registry.hpp"
#include "../models/trace.hpp"
#include "engine.hpp"

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
  // A saved int8 plan carries its calibration (only quantized levels read it: apply_saved_plan reads the rest).
  if (precision::is_quantized_v<typename Level::precision> && !options.calibration && !options.plan.empty()) {
    try {
      const runtime::SavedPlan plan = runtime::SavedPlan::read(options.plan);
      if (!plan.calibration.is_null()) {
        options.calibration = runtime::Calibration::from_json(plan.calibration, "in the plan '" + options.plan + "'");
      }
    } catch (const Error&) {  // an unreadable plan: apply_saved_plan says so, or recompiles
      if (options.plan_mismatch != runtime::PlanMismatch::recompile) throw;
    }
  }
  require(!options.calibration || options.calibration->model == model, model, ": CompileOptions::calibration was "
          "measured on ", options.calibration ? options.calibration->model : std::string(), ", not on this model");
  report.model = model;
  report.level = std::string(Level::name);
  report.backend = std::string(B::name);
  report.policy = describe_policy<Level>();
  report.parameters = parameters;  // weight_bytes: what the backend holds, known once it is prepared (Engine)
  return report;
}

/// Hands the executor the algorithm choices of CompileOptions::plan when the plan was saved for this
/// model, level, backend, device and versions; otherwise an error naming the difference, or (with
/// PlanMismatch::recompile) a fresh compile that the report explains.
template <class Exec>
void apply_saved_plan(Exec& executor, const CompileOptions& options, runtime::Report& report) {
  if (options.plan.empty()) return;
  const bool recompile = options.plan_mismatch == runtime::PlanMismatch::recompile;
  std::string why;
  try {
    const runtime::SavedPlan plan = runtime::SavedPlan::read(options.plan);
    const auto expected = runtime::SavedPlan::key_for(report, executor.identity());
    why = runtime::SavedPlan::difference(plan.key, expected);
    if (why.empty()) {
      executor.use_saved_algorithms(plan.algorithms, report);
      report.applied("saved_plan", "'" + options.plan + "': " + std::to_string(plan.algorithms.size()) +
                                       " algorithm choices taken, none searched for the shapes they cover");
      return;
    }
    why = "it was saved for another engine: " + why;
  } catch (const Error& e) {
    if (!recompile) throw;
    why = e.what();
  }
  require(recompile, report.model, ": CompileOptions::plan '", options.plan, "': ", why,
          "; compile without a plan to make a new one (Engine::save), or set CompileOptions::plan_mismatch = "
          "PlanMismatch::recompile to do so automatically");
  report.skipped("saved_plan", "'" + options.plan + "' not used (" + why + "): compiled afresh");
}

template <PolicyBundle Level, backend::Backend B, class Model>
runtime::EngineImpl<Level, B> build_engine(const Model& model, const CompileOptions& options, runtime::Report report,
                                           std::int64_t image_size, std::chrono::steady_clock::time_point started) {
  using Exec = typename runtime::EngineImpl<Level, B>::Executor;
  using Network = typename models::ModelTraits<Model>::template Network<Level, Exec>;
  auto executor = std::make_unique<Exec>(options, report);
  apply_saved_plan(*executor, options, report);
  auto network = std::make_unique<Network>(*executor, model);
  return runtime::EngineImpl<Level, B>(std::move(executor), std::move(network), options, std::move(report), image_size, started);
}

/// compile()'s work for any registered model on backend B's executor, stage by stage (docs/architecture.md,
/// "Lifecycle"): the family's passes (its models::ModelTraits) and the epilogue-fusion decision; trace
/// and validate (every operation at max_batch against the backend's rules, before anything is
/// converted or uploaded); then the executor and the network (prepare), whose Engine plans and
/// captures. The model is taken by value: passes rewrite the copy (tensors are shared until a pass
/// replaces one).
template <PolicyBundle Level, backend::Backend B, models::RegisteredModel Model>
runtime::EngineImpl<Level, B> compile_impl(Model model, CompileOptions options) {
  using Traits = models::ModelTraits<Model>;
  const auto started = std::chrono::steady_clock::now();
  runtime::Report report = start_report<Level, B>(model.name, model.parameter_count(), options);
  const int image_size = Traits::image_size(model, options.image_size, "CompileOptions::image_size: ");
  Traits::template run_passes<Level>(model, &report);
  if constexpr (Level::fusion::fuses_epilogue) {
    report.applied("epilogue_fusion", std::string(Traits::fused_epilogue));
  } else {
    report.skipped("epilogue_fusion", std::string("fusion=") + std::string(Level::fusion::name));
  }
  const runtime::Trace trace = models::trace<Level>(model, Shape{options.max_batch, 3, image_size, image_size});
  backend::validate<B>(trace);
  report.operations = static_cast<int>(trace.operations.size());
  return build_engine<Level, B>(model, options, std::move(report), image_size, started);
}

template <class B>
constexpr void require_backend_built() {
  static_assert(B::available,
                "visopt: this backend was not built: link visopt::onednn (needs libdnnl-dev) for backend::OneDnn, or "
                "visopt::cuda (needs the CUDA toolkit, cuDNN and cuBLASLt) for backend::Cuda");
}

/// The backend's own rules (B::can_implement): a level it cannot run fails here with the rule's message.
template <backend::Backend B, PolicyBundle Level>
constexpr void require_implementable() {
  if constexpr (B::available) static_assert(backend::implementable<B, Level>());
}

}  // namespace detail

/// Compiles a model (a models::ResNet or models::ViT; any registered family) for Level on backend B.
/// The model is taken by value: passes rewrite the copy. A ViT's image size is fixed by its weights.
/// backend::Cuda from a plain C++ file needs the engine's code compiled once by nvcc (docs/backends.md):
/// visopt_add_cuda_engines() in CMake, or a .cu file with VISOPT_INSTANTIATE_CUDA_ENGINES(Level).
template <PolicyBundle Level, backend::Backend B, models::RegisteredModel Model>
Engine<Level, B> compile(Model model, CompileOptions options = {}) {
  detail::require_backend_built<B>();
  detail::require_implementable<B, Level>();
  if constexpr (std::same_as<B, backend::Cuda>) {
    return backend::cuda::compile_engine<Level>(std::move(model), std::move(options));
  } else {
    return Engine<Level, B>(detail::compile_impl<Level, B>(std::move(model), std::move(options)));
  }
}

/// Rebuilds an engine from the model's weights and a plan that Engine::save wrote: the plan's batch sizes
/// (max_batch, image_size, warmup_batches) and algorithm choices, `options` for the rest (threads, device,
/// cache, strict, plan_mismatch). Nothing is timed for the shapes the plan covers. A plan that cannot be
/// read is a visopt::Error naming the file; one saved for another model, level, backend, device or
/// version is an error naming the difference, or a fresh compile with PlanMismatch::recompile.
template <PolicyBundle Level, backend::Backend B, models::RegisteredModel Model>
Engine<Level, B> load(Model model, const std::string& plan_path, CompileOptions options = {}) {
  const runtime::SavedPlan plan = runtime::SavedPlan::read(plan_path);
  options.max_batch = plan.options["max_batch"].get<int>();
  options.image_size = plan.options["image_size"].get<int>();
  options.warmup_batches = plan.options["warmup_batches"].get<std::vector<int>>();
  options.plan = plan_path;
  return compile<Level, B>(std::move(model), std::move(options));
}

}  // namespace visopt
