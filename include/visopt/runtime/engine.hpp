#pragma once
// What compile() returns. Engine<Level, Backend> owns the backend executor (prepared weights, activation
// memory) and the network, runs batches and says what was done in report(). AnyEngine holds any engine
// behind one virtual seam: a level and backend chosen at run time, and CUDA engines called from plain
// C++ (Engine<Level, backend::Cuda> is such a handle; its code lives where nvcc compiled it).

#include <chrono>
#include <concepts>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>

#include "../backend/backends.hpp"
#include "../backend/contract.hpp"
#include "../policy/policy.hpp"
#include "../services/network.hpp"
#include "../services/options.hpp"
#include "../services/plan.hpp"
#include "../services/report.hpp"

namespace visopt {

namespace detail {
/// Names the executor only once the backend is known to exist, so a missing backend fails on the
/// static_assert in compile() with its own message rather than on an incomplete type.
template <class B, class P, bool available = B::available>
struct executor_of {
  using type = void;
};
template <class B, class P>
struct executor_of<B, P, true> {
  using type = typename backend::executor_for<B, P>::type;
};
}  // namespace detail

namespace runtime {

/// The compiled network on one backend's executor: plans its batch sizes in its constructor (the
/// lifecycle's plan and capture stages, docs/architecture.md), then runs batches over those plans.
/// Engine<Level, B> is this for the CPU backends; a CUDA engine holds one behind EngineInterface.
template <PolicyBundle Level, backend::Backend B>
class EngineImpl {
 public:
  using Executor = typename visopt::detail::executor_of<B, Level>::type;
  static_assert(backend::check_executor<Executor>());  // names the operation a backend lacks or misspells
  using level = Level;
  using backend_type = B;

  EngineImpl(std::unique_ptr<Executor> executor, std::unique_ptr<Network<Executor>> network, CompileOptions options,
             Report report, std::int64_t image_size, std::chrono::steady_clock::time_point started)
      : executor_(std::move(executor)),
        network_(std::move(network)),
        options_(std::move(options)),
        report_(std::move(report)),
        image_size_(image_size),
        run_mutex_(std::make_unique<std::mutex>()) {
    require(options_.max_batch >= 1, report_.model, ": CompileOptions::max_batch is ", options_.max_batch, ", must be >= 1");
    // Options the built network refutes fail here, before any planning (a backend may check none).
    if constexpr (requires(const Executor& e, const Report& r) { e.check_prepared(r); }) executor_->check_prepared(report_);
    plan_batches();
    report_.weight_bytes = executor_->weight_bytes();  // after planning: oneDNN packs weights there
    executor_->complete_report(report_);  // built from the plans: what was chosen, packed, fused and captured
    report_.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  }

  /// Runs a batch of images [N,3,H,W] (f32, NCHW, 1 <= N <= max_batch) and returns f32 logits
  /// [N, classes] on the images' device (host images give host logits).
  /// Thread safety: calls from several threads at once are safe and serialised by the engine's mutex
  /// (one batch at a time, each caller gets its own logits); for parallel inference use one engine per
  /// thread, which share nothing (docs/architecture.md, "Threads"). Throws visopt::Error for an input
  /// the engine was not compiled for.
  Tensor run(const TensorView& images) {
    std::lock_guard lock(*run_mutex_);
    network_->check_input(images, options_.max_batch);
    return executor_->run(images, [this](const Tensor& placed) { return network_->forward(*executor_, placed); });
  }

  /// A host tensor [batch, 3, S, S] (S: image_size()) to fill with images and pass to run(), whole or its first
  /// rows: page-locked on a CUDA engine, so that run()'s copy to the GPU goes at full speed; plain host
  /// memory on the CPU backends. 1 <= batch <= max_batch; allocate once and reuse it.
  Tensor input_buffer(int batch) const {
    require(batch >= 1 && batch <= options_.max_batch, report_.model, ": input_buffer(", batch, "): the engine runs 1..",
            options_.max_batch, " images (CompileOptions::max_batch)");
    return executor_->host_buffer({batch, 3, image_size_, image_size_});
  }

  /// Writes this engine's plan to `path` (services/plan.hpp): its algorithm choices, the batch sizes it
  /// was warmed up at and its report, keyed by model, level, backend, device, library versions and
  /// visopt's version. visopt::load (or CompileOptions::plan) rebuilds the engine from weights and this
  /// file without tuning. Serialised with run(); throws visopt::Error when the file cannot be written.
  void save(const std::string& path) const {
    std::lock_guard lock(*run_mutex_);
    SavedPlan plan;
    plan.key = SavedPlan::key_for(report_, executor_->identity());
    plan.options = {{"max_batch", options_.max_batch}, {"image_size", image_size_}, {"warmup_batches", options_.warmup_batches}};
    plan.algorithms = executor_->saved_algorithms();
    plan.report = report_.json();
    // Only the 8-bit levels use a calibration; one given to another level is not theirs to carry.
    if (precision::is_quantized_v<typename Level::precision> && options_.calibration) plan.calibration = options_.calibration->json();
    plan.write(path);
  }

  /// Fixed after compile(): readable from any thread.
  const Report& report() const { return report_; }
  const CompileOptions& options() const { return options_; }
  /// The square image side the engine was warmed up at: a ViT's, fixed by its weights, or a ResNet's
  /// CompileOptions::image_size (224 when 0). runtime::BatchProcessor fits images to it.
  std::int64_t image_size() const { return image_size_; }
  /// The backend's inside, not synchronised with run(): for tests and diagnostics from one thread.
  Executor& executor() { return *executor_; }

 private:
  /// The lifecycle's plan and capture stages: max_batch and each warmup_batches size get their plan
  /// (algorithms chosen and timed, memory reserved, weights packed, the CUDA Graph captured at O3), so
  /// that no first run() of those sizes chooses, allocates or captures anything. `warmup` > 1 runs each
  /// size that many times in all; 0 plans nothing (each size is then planned by its first run()).
  void plan_batches() {
    const int passes = options_.warmup.value_or(1);
    if (passes <= 0) return;
    std::vector<int> batches{options_.max_batch};
    batches.insert(batches.end(), options_.warmup_batches.begin(), options_.warmup_batches.end());
    std::lock_guard lock(*run_mutex_);
    for (const int batch : batches) {
      const Tensor images = Tensor::zeros({batch, 3, image_size_, image_size_});
      network_->check_input(images, options_.max_batch);
      auto forward = [this](const Tensor& placed) { return network_->forward(*executor_, placed); };
      executor_->plan(images, forward);
      for (int i = 1; i < passes; ++i) (void)executor_->run(images, forward);
    }
    report_.activation_bytes = executor_->activation_bytes();
  }

  std::unique_ptr<Executor> executor_;
  std::unique_ptr<Network<Executor>> network_;
  CompileOptions options_;
  Report report_;
  std::int64_t image_size_;  // the square size warm-up runs at
  std::unique_ptr<std::mutex> run_mutex_;
};

/// What every compiled engine does, whatever its level and backend: the one virtual seam behind AnyEngine.
class EngineInterface {
 public:
  virtual ~EngineInterface() = default;
  virtual Tensor run(const TensorView& images) = 0;
  virtual const Report& report() const = 0;
  virtual const CompileOptions& options() const = 0;
  virtual std::int64_t image_size() const = 0;
  virtual Tensor input_buffer(int batch) const = 0;
  virtual void save(const std::string& path) const = 0;
};

/// An engine of known type behind EngineInterface.
template <class E>
class EngineAdapter final : public EngineInterface {
 public:
  explicit EngineAdapter(E engine) : engine_(std::move(engine)) {}
  Tensor run(const TensorView& images) override { return engine_.run(images); }
  const Report& report() const override { return engine_.report(); }
  const CompileOptions& options() const override { return engine_.options(); }
  std::int64_t image_size() const override { return engine_.image_size(); }
  Tensor input_buffer(int batch) const override { return engine_.input_buffer(batch); }
  void save(const std::string& path) const override { engine_.save(path); }
  E& engine() { return engine_; }

 private:
  E engine_;
};

}  // namespace runtime

/// The engine compile<Level, B>() returns for a CPU backend: its executor and network inline, no virtual call.
template <PolicyBundle Level, backend::Backend B>
class Engine : public runtime::EngineImpl<Level, B> {
 public:
  explicit Engine(runtime::EngineImpl<Level, B>&& impl) : runtime::EngineImpl<Level, B>(std::move(impl)) {}
};

/// Any compiled engine, its level and backend erased: what a program that picks them at run time holds
/// (`visopt::with_level_and_backend(...)` returning one), and what a CUDA engine is in plain C++.
/// run(), report(), options(), image_size() and save() behave as Engine's; calling them on an empty AnyEngine
/// (default-constructed or moved from) throws visopt::Error.
class AnyEngine {
 public:
  AnyEngine() = default;
  explicit AnyEngine(std::unique_ptr<runtime::EngineInterface> impl) : impl_(std::move(impl)) {}
  /// Takes over a compiled engine of any level and backend.
  template <PolicyBundle Level, backend::Backend B>
  AnyEngine(Engine<Level, B>&& engine)  // NOLINT(google-explicit-constructor): an engine is an AnyEngine
      : AnyEngine(take(std::move(engine))) {}

  Tensor run(const TensorView& images) { return held().run(images); }
  const runtime::Report& report() const { return held().report(); }
  const runtime::CompileOptions& options() const { return held().options(); }
  std::int64_t image_size() const { return held().image_size(); }
  Tensor input_buffer(int batch) const { return held().input_buffer(batch); }
  void save(const std::string& path) const { held().save(path); }
  explicit operator bool() const { return impl_ != nullptr; }
  /// The engine behind the handle (backend::cuda::executor_of reaches a CUDA engine's executor through it).
  runtime::EngineInterface& implementation() { return held(); }

 private:
  template <PolicyBundle Level, backend::Backend B>
  static std::unique_ptr<runtime::EngineInterface> take(Engine<Level, B>&& engine) {
    if constexpr (std::derived_from<Engine<Level, B>, AnyEngine>) {
      return std::move(static_cast<AnyEngine&>(engine).impl_);
    } else {
      return std::make_unique<runtime::EngineAdapter<Engine<Level, B>>>(std::move(engine));
    }
  }
  runtime::EngineInterface& held() const {
    require(impl_ != nullptr, "AnyEngine: this handle holds no engine (default-constructed or moved from)");
    return *impl_;
  }

  std::unique_ptr<runtime::EngineInterface> impl_;
};

/// A CUDA engine: a handle on an engine whose code nvcc compiled (visopt/runtime/cuda_engines.cuh), so that
/// plain C++ translation units can compile and run it. Same calls as every Engine; the executor is reached
/// with backend::cuda::executor_of(engine) in CUDA translation units.
template <PolicyBundle Level>
class Engine<Level, backend::Cuda> : public AnyEngine {
 public:
  using level = Level;
  using backend_type = backend::Cuda;
  explicit Engine(std::unique_ptr<runtime::EngineInterface> impl) : AnyEngine(std::move(impl)) {}
};

}  // namespace visopt
