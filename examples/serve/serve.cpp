// serve: image classification over HTTP with one visopt engine (any ResNet or ViT, any backend and level)
// and dynamic batching: concurrent /predict requests wait at most --batch-window-ms after the first for
// others to join, and run together, up to --max-batch. The engine is warmed up (and at O3 on the GPU, its
// CUDA Graph captured) at every batch size in --batch-sizes; a batch runs at the smallest of them that holds
// it, so no request ever meets a first run's tuning.
//
//   serve --random-weights --model resnet50 --backend cuda --level O3 --max-batch 256 --port 8080
//   serve --weights vit_b_16.timm.safetensors --model vit_base_patch16_224
//   serve --weights resnet50.safetensors --level O4 --calibration resnet50.calibration.json   (int8 on the CPU,
//         FP8 on the GPU; classify --calibrate ... --save-calibration makes the file)
//   curl -s localhost:8080/health
//   curl -s --data-binary @photo.jpg localhost:8080/predict   -> {"top5": [{"class": ..., "probability": ...}], ...}
//   curl -s localhost:8080/status                            -> report, request counts, p50/p95/p99 latency, batches
//   serve --random-weights --once a.jpg b.png                 (no server, no batcher: a JSON line per image)
//
// --port 0 picks a free port; the first line printed is "serve: listening on http://HOST:PORT". SIGINT or
// SIGTERM stops it cleanly. The HTTP server is examples/serve/http.hpp (one thread per connection).

#include <algorithm>
#include <filesystem>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <future>
#include <iterator>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <pthread.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <visopt/io/class_names.hpp>
#include <visopt/io/image.hpp>
#include <visopt/io/top_k.hpp>
#include <visopt/models/preprocessing.hpp>
#include <visopt/runtime/batch_processor.hpp>
#include <visopt/runtime/latency.hpp>
#include <visopt/visopt.hpp>

#include "http.hpp"

#ifndef VISOPT_EXAMPLES_DATA_DIR
#define VISOPT_EXAMPLES_DATA_DIR "examples/data"
#endif

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

struct Settings {
  std::string weights_path;
  bool random_weights = false;
  std::uint64_t seed = 0;
  std::string model = "resnet50";
  std::string level;    // empty: the backend's fastest
  std::string backend;  // empty: the fastest here
  int image_size = 224;
  std::string host = "127.0.0.1";
  int port = 8080;
  int max_batch = 64;
  std::vector<int> batch_sizes;  // empty: 1, 2, 4, ... and max_batch
  double window_ms = 5.0;
  int threads = 0;
  std::string classes_path = VISOPT_EXAMPLES_DATA_DIR "/imagenet_classes.txt";
  std::vector<std::string> once_paths;  // classify these images without serving
  std::string plan_path;                // --plan: load the engine's plan from here, or save it here
  std::string calibration_path;         // --calibration: O4's activation ranges (Calibration::save)
};

/// Latencies of the most recent requests, for percentiles.
class LatencyWindow {
 public:
  void add(double ms) {
    std::lock_guard lock(mutex_);
    if (samples_.size() == capacity) samples_.pop_front();
    samples_.push_back(ms);
  }
  /// {"samples": n, "p50": ..., "p95": ..., "p99": ...} in ms (visopt::runtime::summarize_latency); no
  /// percentiles before a sample.
  json summary() const {
    std::vector<double> samples;
    {
      std::lock_guard lock(mutex_);
      samples.assign(samples_.begin(), samples_.end());
    }
    json out{{"samples", samples.size()}};
    if (samples.empty()) return out;
    const visopt::runtime::Latency l = visopt::runtime::summarize_latency(std::move(samples));
    out.update({{"p50", l.p50}, {"p95", l.p95}, {"p99", l.p99}});
    return out;
  }

 private:
  static constexpr std::size_t capacity = 10000;
  mutable std::mutex mutex_;
  std::deque<double> samples_;
};

/// The dynamic batcher: request threads submit prepared images and wait; one worker takes up to max_batch
/// of them, waiting at most `window` after the oldest arrived, copies them into the engine's input buffer
/// (page-locked on the GPU) and runs them at the smallest warmed-up batch size that holds them.
class Batcher {
 public:
  struct Answer {
    visopt::Tensor output;  // host f32 [classes]
    int batch_size = 0;     // how many requests shared the engine run
  };

  Batcher(visopt::AnyEngine& engine, std::vector<int> batch_sizes, std::chrono::microseconds window)
      : engine_(engine),
        sizes_(std::move(batch_sizes)),
        staging_(engine.input_buffer(sizes_.back())),
        window_(window),
        worker_([this] { work(); }) {}
  ~Batcher() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }

  std::future<Answer> submit(visopt::Tensor image) {
    Job job{std::move(image), {}, Clock::now()};
    auto future = job.answer.get_future();
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(job));
    }
    wake_.notify_all();
    return future;
  }

  json summary() const {
    std::lock_guard lock(mutex_);
    return {{"runs", runs_},
            {"images", images_},
            {"mean_batch", runs_ == 0 ? 0.0 : static_cast<double>(images_) / static_cast<double>(runs_)},
            {"largest_batch", largest_},
            {"max_batch", sizes_.back()},
            {"batch_sizes", sizes_},
            {"engine_ms", engine_ms_},
            {"window_ms", std::chrono::duration<double, std::milli>(window_).count()}};
  }

 private:
  struct Job {
    visopt::Tensor image;  // host f32 [3, S, S]
    std::promise<Answer> answer;
    Clock::time_point arrived;
  };

  void work() {
    const auto max_batch = static_cast<std::size_t>(sizes_.back());
    const std::size_t image_bytes = staging_.nbytes() / max_batch;
    for (;;) {
      std::vector<Job> batch;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, and nothing left to answer
        const Clock::time_point deadline = queue_.front().arrived + window_;
        wake_.wait_until(lock, deadline, [&] { return stopping_ || queue_.size() >= max_batch; });
        const std::size_t n = std::min(max_batch, queue_.size());
        std::move(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n), std::back_inserter(batch));
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
      }
      const auto rows = static_cast<std::size_t>(*std::lower_bound(sizes_.begin(), sizes_.end(), static_cast<int>(batch.size())));
      auto* staging = static_cast<std::uint8_t*>(staging_.data());
      // A few threads copy: a batch of 256 images at 224x224 is 154 MB, some 20 ms for one core.
      const auto count = static_cast<std::ptrdiff_t>(batch.size());
#pragma omp parallel for num_threads(8) schedule(static) if (count >= 16)
      for (std::ptrdiff_t i = 0; i < count; ++i) {
        std::memcpy(staging + static_cast<std::size_t>(i) * image_bytes, batch[static_cast<std::size_t>(i)].image.data(), image_bytes);
      }
      std::memset(staging + batch.size() * image_bytes, 0, (rows - batch.size()) * image_bytes);  // padding rows, dropped
      const visopt::Shape shape{static_cast<std::int64_t>(rows), staging_.dim(1), staging_.dim(2), staging_.dim(3)};
      try {
        const Clock::time_point start = Clock::now();
        const visopt::Tensor logits = engine_.run(visopt::TensorView(staging_.data(), visopt::DType::f32, shape));
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
        const auto classes = logits.dim(1);
        for (std::size_t i = 0; i < batch.size(); ++i) {
          visopt::Tensor row = visopt::Tensor::empty({classes});
          std::memcpy(row.data(), logits.data_as<float>() + static_cast<std::int64_t>(i) * classes, row.nbytes());
          batch[i].answer.set_value({std::move(row), static_cast<int>(batch.size())});
        }
        std::lock_guard lock(mutex_);
        ++runs_;
        images_ += batch.size();
        largest_ = std::max(largest_, batch.size());
        engine_ms_ += ms;
      } catch (...) {
        for (Job& job : batch) job.answer.set_exception(std::current_exception());
      }
    }
  }

  visopt::AnyEngine& engine_;
  std::vector<int> sizes_;   // ascending; the last is max_batch
  visopt::Tensor staging_;   // [max_batch, 3, S, S] from engine.input_buffer()
  std::chrono::microseconds window_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::uint64_t runs_ = 0, images_ = 0;
  std::size_t largest_ = 0;
  double engine_ms_ = 0;
  std::thread worker_;  // last: starts once everything it uses exists
};

json top5_json(const visopt::Tensor& row, const std::vector<std::string>& classes) {
  json top = json::array();
  for (const visopt::io::ScoredClass& c : visopt::io::top_k({row.data_as<float>(), static_cast<std::size_t>(row.numel())}, 5)) {
    top.push_back({{"index", c.index}, {"class", classes[static_cast<std::size_t>(c.index)]}, {"probability", c.probability},
                   {"logit", c.logit}});
  }
  return top;
}

http::Response json_response(int status, const json& body) { return {status, "application/json", body.dump()}; }

/// Blocks SIGINT and SIGTERM in this thread and every thread started after it (OpenMP's, the batcher's,
/// the connections'), so that one thread can wait for them with sigwait and stop the server outside a
/// signal handler. Called first thing, before any thread exists; a signal that comes early stays pending.
sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

/// 1, 2, 4, ... below max_batch, and max_batch.
std::vector<int> default_batch_sizes(int max_batch) {
  std::vector<int> sizes;
  for (int b = 1; b < max_batch; b *= 2) sizes.push_back(b);
  sizes.push_back(max_batch);
  return sizes;
}

int serve(const Settings& s, const visopt::models::AnyModel& model, const std::vector<std::string>& classes,
          const sigset_t& stop_signals) {
  const std::string backend = s.backend.empty() ? visopt::fastest_backend_here() : visopt::choose_backend(s.backend);
  const std::string level = s.level.empty() ? visopt::fastest_level_for(backend) : visopt::choose_level(s.level);
  std::vector<int> sizes = s.batch_sizes.empty() ? default_batch_sizes(s.max_batch) : s.batch_sizes;
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  visopt::require(sizes.front() >= 1 && sizes.back() == s.max_batch, "serve: --batch-sizes must lie in 1..--max-batch and hold it (",
                  s.max_batch, ")");
  const bool resnet = std::holds_alternative<visopt::models::ResNet>(model);
  // --plan: the algorithm choices of an earlier start (a deployment's engine file); one that does not fit
  // this model, level, device or version is compiled afresh and replaced.
  const bool plan_exists = !s.plan_path.empty() && std::filesystem::exists(s.plan_path);
  std::optional<visopt::Calibration> calibration;  // O4: from --calibration, else the plan's own
  if (!s.calibration_path.empty()) calibration = visopt::Calibration::load(s.calibration_path);
  visopt::AnyEngine engine = visopt::compile_any(
      model, level, backend,
      {.max_batch = s.max_batch, .num_threads = s.threads, .image_size = resnet ? s.image_size : 0,
       .warmup_batches = std::vector<int>(sizes.begin(), sizes.end() - 1), .plan = plan_exists ? s.plan_path : "",
       .plan_mismatch = visopt::runtime::PlanMismatch::recompile, .calibration = calibration});
  if (!s.plan_path.empty() && !engine.report().has("saved_plan")) {
    engine.save(s.plan_path);
    std::fprintf(stderr, "serve: saved the engine's plan to %s\n", s.plan_path.c_str());
  }
  const visopt::io::Preprocess transform = visopt::models::preprocess_for(model, static_cast<int>(engine.image_size()));
  const visopt::runtime::BatchProcessor processor(engine, visopt::runtime::batch_options_for(transform));

  if (!s.once_paths.empty()) {  // one direct engine run per image: what /predict must agree with
    for (const std::string& path : s.once_paths) {
      const visopt::runtime::Prepared prepared = processor.prepare(visopt::io::load_image(path));
      const visopt::Tensor logits = engine.run(visopt::io::stack_images({prepared.image}));
      const json answer{{"image", path}, {"top5", top5_json(logits.reshaped(visopt::Shape{logits.dim(1)}), classes)}};
      std::printf("%s\n", answer.dump().c_str());
    }
    return 0;
  }

  Batcher batcher(engine, sizes, std::chrono::microseconds(static_cast<std::int64_t>(s.window_ms * 1000.0)));
  LatencyWindow latency, decode;
  std::atomic<std::uint64_t> answered{0}, bad_requests{0}, failures{0};
  const json report = engine.report().json();

  http::Server server([](int status, const std::string& why) {
    const std::string endpoints = status == 404 || status == 405 ? "; the endpoints are GET /health, GET /status, POST /predict" : "";
    return json_response(status, {{"error", "serve: " + why + endpoints}});
  });
  server.handle("GET", "/health", [](const http::Request&) { return json_response(200, {{"status", "ok"}}); });
  server.handle("GET", "/status", [&](const http::Request&) {
    return json_response(200, {{"report", report},
                               {"preprocess", visopt::io::describe(transform)},
                               {"requests", {{"answered", answered.load()}, {"bad_request", bad_requests.load()}, {"failed", failures.load()}}},
                               {"latency_ms", latency.summary()},
                               {"decode_ms", decode.summary()},
                               {"batches", batcher.summary()}});
  });
  server.handle("POST", "/predict", [&](const http::Request& request) {
    const Clock::time_point start = Clock::now();
    std::optional<visopt::runtime::Prepared> prepared;
    try {  // what the client sent: a bad image is their error (400), with visopt's message
      const std::span bytes(reinterpret_cast<const std::uint8_t*>(request.body.data()), request.body.size());
      prepared = processor.prepare(visopt::io::load_image_from_memory(bytes, "request body"));
    } catch (const visopt::Error& e) {
      ++bad_requests;
      return json_response(400, {{"error", e.what()}});
    }
    decode.add(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    try {
      const Batcher::Answer answer = batcher.submit(std::move(prepared->image)).get();
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      latency.add(ms);
      ++answered;
      return json_response(200, {{"top5", top5_json(answer.output, classes)}, {"batch_size", answer.batch_size}, {"latency_ms", ms}});
    } catch (const std::exception& e) {
      ++failures;
      return json_response(500, {{"error", e.what()}});
    }
  });

  const int port = server.bind(s.host, s.port);
  std::printf("serve: listening on http://%s:%d\nserve: %s\nserve: preprocess: %s; batch sizes", s.host.c_str(), port,
              engine.report().text().c_str(), visopt::io::describe(transform).c_str());
  for (const int b : sizes) std::printf(" %d", b);
  std::printf(", window %.1f ms\n", s.window_ms);
  std::fflush(stdout);

  std::atomic<bool> signalled{false};
  std::thread stopper([&] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    signalled = true;
    server.stop();
  });
  server.run();
  if (!signalled) pthread_kill(stopper.native_handle(), SIGTERM);  // the server stopped on its own: release the waiter
  stopper.join();
  std::printf("serve: stopped after %llu answers\n", static_cast<unsigned long long>(answered.load()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Serve image classification over HTTP with one visopt engine and dynamic batching."};
  Settings s;
  auto* source = app.add_option_group("weights", "where the model's weights come from (exactly one)");
  source->add_option("--weights", s.weights_path, "safetensors file, torchvision or timm names (tools/export_weights.py)")
      ->check(CLI::ExistingFile);
  auto* random_flag = source->add_flag("--random-weights", s.random_weights, "a seeded random model; nothing to download");
  source->require_option(1);
  app.add_option("--seed", s.seed, "seed of --random-weights")->needs(random_flag)->capture_default_str();
  app.add_option("--model", s.model, std::string("model: ") + visopt::models::model_names())->capture_default_str();
  app.add_option("--level", s.level, "optimisation level O0..O4 (default: the backend's fastest; O4 needs --calibration, "
                                     "or a --plan saved at O4, which carries its calibration)");
  app.add_option("--backend", s.backend, "backend: " + visopt::available_backend_names() + " (default: the fastest here)");
  app.add_option("--image-size", s.image_size, "ResNet input side (a ViT's is fixed by its weights)")
      ->check(CLI::Range(32, 1024))
      ->capture_default_str();
  app.add_option("--host", s.host, "address to listen on")->capture_default_str();
  app.add_option("--port", s.port, "port; 0 picks a free one")->check(CLI::Range(0, 65535))->capture_default_str();
  app.add_option("--max-batch", s.max_batch, "most requests run together")->check(CLI::Range(1, 4096))->capture_default_str();
  app.add_option("--batch-sizes", s.batch_sizes, "batch sizes warmed up in compile(), comma-separated, the last --max-batch "
                                                 "(default 1, 2, 4, ... and --max-batch)")
      ->delimiter(',');
  app.add_option("--batch-window-ms", s.window_ms, "longest a request waits for others to join its batch")
      ->check(CLI::Range(0.0, 10000.0))
      ->capture_default_str();
  app.add_option("--threads", s.threads, "CPU threads of the engine; 0 = default")->capture_default_str();
  app.add_option("--classes", s.classes_path, "class names, one per line in logit order")->capture_default_str();
  app.add_option("--plan", s.plan_path, "a saved plan: the engine is built from it when it exists and fits, else compiled "
                                        "and saved there (nothing is tuned on the next start)");
  app.add_option("--calibration", s.calibration_path, "O4's calibration, saved by classify --save-calibration (Calibration::save)")
      ->check(CLI::ExistingFile);
  app.add_option("--once", s.once_paths, "classify these images, each alone in one direct engine run; print a JSON line each, exit")
      ->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  if (s.once_paths.empty()) stop_signals = block_stop_signals();

  try {
    const visopt::models::AnyModel model = visopt::models::load_model(s.model, s.random_weights ? "" : s.weights_path, s.seed);
    const std::vector<std::string> classes = visopt::io::load_class_names(s.classes_path, visopt::models::num_classes_of(model));
    return serve(s, model, classes, stop_signals);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
