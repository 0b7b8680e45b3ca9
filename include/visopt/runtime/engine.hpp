#pragma once
// Engine<Level, Backend>: what compile() returns. It owns the backend executor (prepared weights,
// activation memory) and the network, runs batches, and says what was done in report().

#include <chrono>
#include <memory>
#include <mutex>

#include "../backend/backends.hpp"
#include "../policy/policy.hpp"
#include "network.hpp"
#include "options.hpp"
#include "report.hpp"

namespace visopt {

namespace detail {
/// Names the executor only once the backend is known to exist, so a missing backend fails on the
/// static_assert in Engine with its own message rather than on an incomplete type.
template <class B, class P, bool available = B::available>
struct executor_of {
  using type = void;
};
template <class B, class P>
struct executor_of<B, P, true> {
  using type = typename backend::executor_for<B, P>::type;
};
}  // namespace detail

template <PolicyBundle Level, backend::Backend B>
class Engine {
  static_assert(B::available,
                "visopt: this backend was not built: link visopt::onednn (needs libdnnl-dev) for backend::OneDnn, or "
                "visopt::cuda in a .cu file compiled by nvcc (needs the CUDA toolkit, cuDNN and cuBLASLt) for "
                "backend::Cuda");

 public:
  using Executor = typename detail::executor_of<B, Level>::type;
  using level = Level;
  using backend_type = B;

  Engine(std::unique_ptr<Executor> executor, std::unique_ptr<runtime::Network<Executor>> network,
         runtime::CompileOptions options, runtime::Report report, std::int64_t image_size,
         std::chrono::steady_clock::time_point started)
      : executor_(std::move(executor)),
        network_(std::move(network)),
        options_(std::move(options)),
        report_(std::move(report)),
        image_size_(image_size),
        run_mutex_(std::make_unique<std::mutex>()) {
    require(options_.max_batch >= 1, report_.model, ": CompileOptions::max_batch is ", options_.max_batch, ", must be >= 1");
    warm_up();
    report_.weight_bytes = executor_->weight_bytes();  // after the warm-up: oneDNN packs weights there
    // Executors that learn more during the warm-up (what was packed, planned, fused) add it here.
    if constexpr (requires(const Executor& e, runtime::Report& r) { e.complete_report(r); }) {
      executor_->complete_report(report_);
    }
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

  /// Fixed after compile(): readable from any thread.
  const runtime::Report& report() const { return report_; }
  const runtime::CompileOptions& options() const { return options_; }
  /// The square image side the engine was warmed up at: a ViT's, fixed by its weights, or a ResNet's
  /// CompileOptions::image_size (224 when 0). runtime::BatchProcessor fits images to it.
  std::int64_t image_size() const { return image_size_; }
  /// The backend's inside, not synchronised with run(): for tests and diagnostics from one thread.
  Executor& executor() { return *executor_; }

 private:
  /// Runs batches of max_batch and of each warmup_batches size so that memory is reserved and caches are
  /// filled (and graphs captured) before the first run().
  void warm_up() {
    const int passes = options_.warmup.value_or(1);
    if (passes <= 0) return;
    std::vector<int> batches{options_.max_batch};
    batches.insert(batches.end(), options_.warmup_batches.begin(), options_.warmup_batches.end());
    for (const int batch : batches) {
      const Tensor images = Tensor::zeros({batch, 3, image_size_, image_size_});
      for (int i = 0; i < passes; ++i) run(images);
    }
    report_.activation_bytes = executor_->activation_bytes();
  }

  std::unique_ptr<Executor> executor_;
  std::unique_ptr<runtime::Network<Executor>> network_;
  runtime::CompileOptions options_;
  runtime::Report report_;
  std::int64_t image_size_;  // the square size warm-up runs at
  std::unique_ptr<std::mutex> run_mutex_;
};

}  // namespace visopt
