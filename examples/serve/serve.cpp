// serve: a small HTTP server around one engine. Concurrent /predict requests are batched dynamically:
// one worker runs up to --max-batch images at a time, waiting at most --batch-window-ms after the first
// one for others to join.
//
//   serve --random-weights --model resnet18 --port 8080          (or --weights resnet50.safetensors)
//   curl -s localhost:8080/health
//   curl -s -H 'Content-Type: application/octet-stream' --data-binary @photo.jpg localhost:8080/predict
//                                                                 -> {"top5": [{"class": ..., "probability": ...}], ...}
//   curl -s localhost:8080/status                                 -> report, request counts, p50/p95/p99 latency
//   serve --random-weights --once a.jpg b.png                      (no server, no batcher: a JSON line per image)
//
// The Content-Type must not be curl's default, application/x-www-form-urlencoded: cpp-httplib refuses such
// bodies over 8 KiB (413) before any handler sees them. --port 0 picks a free port; the first line printed is "serve: listening on http://HOST:PORT".
// SIGINT or SIGTERM stops it cleanly.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <fstream>
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
#include <visopt/runtime/batch_processor.hpp>
#include <visopt/visopt.hpp>

// After visopt: httplib brings in <resolv.h>, whose `_res` macro would rewrite Eigen's parameters of that name.
#include <httplib.h>

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
  std::string level = "O1";
  std::string backend = "reference";
  int image_size = 224;
  std::string host = "127.0.0.1";
  int port = 8080;
  int max_batch = 8;
  double window_ms = 5.0;
  int threads = 0;
  std::string classes_path = VISOPT_EXAMPLES_DATA_DIR "/imagenet_classes.txt";
  std::vector<std::string> once_paths;  // classify these images without serving
};

/// Latencies of the most recent requests, for percentiles.
class LatencyWindow {
 public:
  void add(double ms) {
    std::lock_guard lock(mutex_);
    if (samples_.size() == capacity) samples_.pop_front();
    samples_.push_back(ms);
  }
  /// {"samples": n, "p50": ..., "p95": ..., "p99": ...} in ms, nearest-rank; no percentiles before a sample.
  json summary() const {
    std::vector<double> sorted;
    {
      std::lock_guard lock(mutex_);
      sorted.assign(samples_.begin(), samples_.end());
    }
    json out{{"samples", sorted.size()}};
    if (sorted.empty()) return out;
    std::sort(sorted.begin(), sorted.end());
    for (const auto& [name, q] : {std::pair{"p50", 0.50}, std::pair{"p95", 0.95}, std::pair{"p99", 0.99}}) {
      const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
      out[name] = sorted[std::max<std::size_t>(rank, 1) - 1];
    }
    return out;
  }

 private:
  static constexpr std::size_t capacity = 10000;
  mutable std::mutex mutex_;
  std::deque<double> samples_;
};

/// The dynamic batcher: request threads submit prepared images and wait; one worker takes up to
/// max_batch of them, waiting at most `window` after the oldest arrived, and runs them as one batch.
template <class Processor>
class Batcher {
 public:
  struct Answer {
    visopt::Tensor output;  // host f32 [classes]
    int batch_size = 0;     // how many requests shared the engine run
  };

  Batcher(Processor& processor, std::chrono::microseconds window)
      : processor_(processor), window_(window), worker_([this] { work(); }) {}
  ~Batcher() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }

  std::future<Answer> submit(visopt::runtime::Prepared prepared) {
    Job job{std::move(prepared), {}, Clock::now()};
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
            {"max_batch", processor_.max_batch()},
            {"window_ms", std::chrono::duration<double, std::milli>(window_).count()}};
  }

 private:
  struct Job {
    visopt::runtime::Prepared prepared;
    std::promise<Answer> answer;
    Clock::time_point arrived;
  };

  void work() {
    const auto max_batch = static_cast<std::size_t>(processor_.max_batch());
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
        ++runs_;
        images_ += n;
        largest_ = std::max(largest_, n);
      }
      std::vector<visopt::runtime::Prepared> images;
      for (Job& job : batch) images.push_back(std::move(job.prepared));
      try {
        std::vector<visopt::runtime::Result> results = processor_.run(std::span<const visopt::runtime::Prepared>(images));
        for (std::size_t i = 0; i < batch.size(); ++i) {
          batch[i].answer.set_value({std::move(results[i].output), static_cast<int>(batch.size())});
        }
      } catch (...) {
        for (Job& job : batch) job.answer.set_exception(std::current_exception());
      }
    }
  }

  Processor& processor_;
  std::chrono::microseconds window_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::uint64_t runs_ = 0, images_ = 0;
  std::size_t largest_ = 0;
  std::thread worker_;  // last: starts once everything it uses exists
};

json top5_json(const visopt::Tensor& row, const std::vector<std::string>& classes) {
  json top = json::array();
  for (const visopt::io::ScoredClass& c :
       visopt::io::top_k({row.data_as<float>(), static_cast<std::size_t>(row.numel())}, 5)) {
    top.push_back({{"index", c.index},
                   {"class", classes[static_cast<std::size_t>(c.index)]},
                   {"probability", c.probability},
                   {"logit", c.logit}});
  }
  return top;
}

void answer_json(httplib::Response& response, int status, const json& body) {
  response.status = status;
  response.set_content(body.dump(), "application/json");
}

/// Blocks SIGINT and SIGTERM in this thread and every thread started after it (OpenMP's, the batcher's,
/// the server's pool), so that one thread can wait for them with sigwait and stop the server outside a
/// signal handler. Called first thing, before any thread exists; a signal that comes early stays pending.
sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

template <class Level, class Backend, class Model>
int serve(const Settings& settings, const Model& model, const std::vector<std::string>& classes,
          const sigset_t& stop_signals) {
  auto engine = visopt::compile<Level, Backend>(
      model, {.max_batch = settings.max_batch, .num_threads = settings.threads, .image_size = settings.image_size});
  visopt::runtime::BatchProcessor processor(engine);

  if (!settings.once_paths.empty()) {  // one direct engine run per image: what /predict must agree with
    for (const std::string& path : settings.once_paths) {
      const visopt::runtime::Prepared prepared = processor.prepare(visopt::io::load_image(path));
      const visopt::Tensor logits = engine.run(visopt::io::stack_images({prepared.image}));
      const json answer{{"image", path}, {"top5", top5_json(logits.reshaped(visopt::Shape{logits.dim(1)}), classes)}};
      std::printf("%s\n", answer.dump().c_str());
    }
    return 0;
  }

  Batcher batcher(processor, std::chrono::microseconds(static_cast<std::int64_t>(settings.window_ms * 1000.0)));
  LatencyWindow latency;
  std::atomic<std::uint64_t> answered{0}, bad_requests{0}, failures{0};
  const json report = engine.report().json();

  httplib::Server server;
  server.set_payload_max_length(64u << 20);
  server.set_error_handler([](const httplib::Request& request, httplib::Response& response) {
    if (response.status == 413 && request.get_header_value("Content-Type") == "application/x-www-form-urlencoded") {
      answer_json(response, 413, {{"error", "serve: a form-encoded body is limited to 8 KiB; send the image bytes with "
                                            "Content-Type: application/octet-stream"}});
    } else if (response.body.empty()) {
      answer_json(response, response.status,
                  {{"error", visopt::detail::concat("serve: HTTP ", response.status, " for ", request.method, " ", request.path,
                                                    "; the endpoints are GET /health, GET /status, POST /predict")}});
    }
  });
  server.Get("/health", [](const httplib::Request&, httplib::Response& response) {
    answer_json(response, 200, {{"status", "ok"}});
  });
  server.Get("/status", [&](const httplib::Request&, httplib::Response& response) {
    answer_json(response, 200,
                {{"report", report},
                 {"requests", {{"answered", answered.load()}, {"bad_request", bad_requests.load()}, {"failed", failures.load()}}},
                 {"latency_ms", latency.summary()},
                 {"batches", batcher.summary()}});
  });
  server.Post("/predict", [&](const httplib::Request& request, httplib::Response& response) {
    const Clock::time_point start = Clock::now();
    std::optional<visopt::runtime::Prepared> prepared;
    try {  // what the client sent: a bad image is their error (400), with visopt's message
      const std::span bytes(reinterpret_cast<const std::uint8_t*>(request.body.data()), request.body.size());
      prepared = processor.prepare(visopt::io::load_image_from_memory(bytes, "request body"));
    } catch (const visopt::Error& e) {
      ++bad_requests;
      answer_json(response, 400, {{"error", e.what()}});
      return;
    }
    try {
      const auto answer = batcher.submit(std::move(*prepared)).get();
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      latency.add(ms);
      ++answered;
      answer_json(response, 200,
                  {{"top5", top5_json(answer.output, classes)}, {"batch_size", answer.batch_size}, {"latency_ms", ms}});
    } catch (const std::exception& e) {
      ++failures;
      answer_json(response, 500, {{"error", e.what()}});
    }
  });

  const int port = settings.port == 0 ? server.bind_to_any_port(settings.host)
                                      : (server.bind_to_port(settings.host, settings.port) ? settings.port : -1);
  visopt::require(port > 0, "serve: cannot listen on ", settings.host, ":", settings.port);
  std::printf("serve: listening on http://%s:%d\nserve: %s\n", settings.host.c_str(), port,
              engine.report().text().c_str());
  std::fflush(stdout);

  std::atomic<bool> signalled{false};
  std::thread stopper([&] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    signalled = true;
    server.stop();
  });
  const bool clean = server.listen_after_bind();
  if (!signalled) pthread_kill(stopper.native_handle(), SIGTERM);  // the server stopped on its own: release the waiter
  stopper.join();
  std::printf("serve: stopped after %llu answers\n", static_cast<unsigned long long>(answered.load()));
  return clean ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Serve image classification over HTTP with one visopt engine and dynamic batching."};
  Settings s;
  auto* source = app.add_option_group("weights", "where the model's weights come from (exactly one)");
  source->add_option("--weights", s.weights_path, "safetensors file with torchvision names (tools/ exports one)")
      ->check(CLI::ExistingFile);
  auto* random_flag = source->add_flag("--random-weights", s.random_weights, "a seeded random model; nothing to download");
  source->require_option(1);
  app.add_option("--seed", s.seed, "seed of --random-weights")->needs(random_flag)->capture_default_str();
  app.add_option("--model", s.model, "ResNet depth (resnet50 or just 50)")
      ->transform([](std::string name) { return name.starts_with("resnet") ? name : "resnet" + name; })
      ->check(CLI::IsMember({"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}))
      ->capture_default_str();
  app.add_option("--level", s.level, "optimisation level: O0..O3")->capture_default_str();
  app.add_option("--backend", s.backend, "backend: " + visopt::available_backend_names())->capture_default_str();
  app.add_option("--image-size", s.image_size, "side of the square model input")->check(CLI::Range(16, 1024))->capture_default_str();
  app.add_option("--host", s.host, "address to listen on")->capture_default_str();
  app.add_option("--port", s.port, "port; 0 picks a free one")->check(CLI::Range(0, 65535))->capture_default_str();
  app.add_option("--max-batch", s.max_batch, "most requests run together")->check(CLI::Range(1, 1024))->capture_default_str();
  app.add_option("--batch-window-ms", s.window_ms, "longest a request waits for others to join its batch")
      ->check(CLI::Range(0.0, 10000.0))
      ->capture_default_str();
  app.add_option("--threads", s.threads, "CPU threads of the engine; 0 = default")->capture_default_str();
  app.add_option("--classes", s.classes_path, "class names, one per line in logit order")->capture_default_str();
  app.add_option("--once", s.once_paths, "classify these images, each alone in one direct engine run; print a JSON line each, exit")
      ->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  if (s.once_paths.empty()) stop_signals = block_stop_signals();

  try {
    const int depth = std::stoi(s.model.substr(std::string_view("resnet").size()));
    const std::vector<std::string> classes = visopt::io::load_class_names(s.classes_path);
    std::optional<visopt::io::SafeTensors> weights;  // kept open while the model may refer to it
    if (!s.random_weights) weights.emplace(visopt::io::SafeTensors::open(s.weights_path));
    const auto model = s.random_weights ? visopt::models::resnet(depth, visopt::nn::RandomWeights{s.seed})
                                        : visopt::models::resnet(depth, *weights);
    visopt::require(static_cast<std::size_t>(model.num_classes) == classes.size(), "serve: ", s.model, " has ",
                    model.num_classes, " classes but '", s.classes_path, "' names ", classes.size());
    return visopt::with_level_and_backend(s.level, s.backend, [&]<class Level, class Backend>(Level, Backend) {
      return serve<Level, Backend>(s, model, classes, stop_signals);
    });
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
