// serve_load: a bounded load generator for examples/serve, on loopback. For each concurrency C, C clients,
// each on one kept-alive connection, send POST /predict with the given images (round robin) one request
// after another for --seconds (after --warmup-seconds not counted); it reports throughput (answers per
// second), client-side latency p50/p95/p99 (visopt::runtime::summarize_latency) and, from the server's
// /status before and after, the mean batch, the engine's share of the time and the decode time. One JSON
// row per concurrency (--json, appended), the same fields tools/serve_bench.sh puts in the docs' table.
//
//   serve_load --port 8080 --images jpegs/ --concurrency 1,16,256 --seconds 20 --json rows.jsonl

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <visopt/runtime/latency.hpp>

#include "http.hpp"

#if __has_include("visopt_bench_commit.hpp")
#include "visopt_bench_commit.hpp"
#endif
#ifndef VISOPT_GIT_COMMIT
#define VISOPT_GIT_COMMIT "unknown"
#endif

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

struct Settings {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::vector<std::string> image_paths;
  std::vector<int> concurrency{1, 16, 256};
  double seconds = 20, warmup_seconds = 3;
  std::string json_path, tag, note;
};

std::vector<std::string> read_images(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  for (const auto& path : paths) {
    if (std::filesystem::is_directory(path)) {
      for (const auto& entry : std::filesystem::directory_iterator(path)) {
        if (entry.is_regular_file()) files.push_back(entry.path().string());
      }
    } else {
      files.push_back(path);
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> bodies;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    bodies.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (bodies.empty()) throw std::runtime_error("serve_load: no images in the paths given");
  return bodies;
}

json server_status(const Settings& s) {
  http::Client client(s.host, s.port);
  const http::Response r = client.request("GET", "/status");
  if (r.status != 200) throw std::runtime_error("serve_load: /status answered HTTP " + std::to_string(r.status));
  return json::parse(r.body);
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

/// One measurement at `clients` concurrent connections.
json measure(const Settings& s, const std::vector<std::string>& images, int clients) {
  std::atomic<bool> counting{false}, done{false};
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(clients));
  std::vector<long long> errors(static_cast<std::size_t>(clients), 0);
  std::vector<std::string> failures(static_cast<std::size_t>(clients));
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      try {
        http::Client client(s.host, s.port);
        for (std::size_t i = static_cast<std::size_t>(c); !done; ++i) {
          const bool counted = counting;
          const Clock::time_point start = Clock::now();
          const http::Response r = client.request("POST", "/predict", images[i % images.size()]);
          const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
          if (!counted || done) continue;
          if (r.status == 200) latencies[static_cast<std::size_t>(c)].push_back(ms);
          else ++errors[static_cast<std::size_t>(c)];
        }
      } catch (const std::exception& e) {
        failures[static_cast<std::size_t>(c)] = e.what();
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(s.warmup_seconds));
  const json before = server_status(s);
  const Clock::time_point start = Clock::now();
  counting = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(s.seconds));
  done = true;
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const json after = server_status(s);
  for (auto& t : threads) t.join();
  for (const auto& f : failures) {
    if (!f.empty()) throw std::runtime_error("serve_load: a client failed: " + f);
  }
  std::vector<double> all;
  long long error_count = 0;
  for (std::size_t c = 0; c < latencies.size(); ++c) {
    all.insert(all.end(), latencies[c].begin(), latencies[c].end());
    error_count += errors[c];
  }
  if (all.empty()) throw std::runtime_error("serve_load: no answer in " + std::to_string(s.seconds) + " s");
  const visopt::runtime::Latency l = visopt::runtime::summarize_latency(all);
  const auto delta = [&](const char* key) { return after["batches"][key].get<double>() - before["batches"][key].get<double>(); };
  const double runs = delta("runs"), batched = delta("images"), engine_ms = delta("engine_ms");
  const json& report = after["report"];
  return {{"tool", "serve_load"},
          {"model", report["model"]},
          {"level", report["level"]},
          {"backend", report["backend"]},
          {"precision", report["compute_precision"]},
          {"device", report["device"]},
          {"concurrency", clients},
          {"requests", all.size()},
          {"errors", error_count},
          {"seconds", elapsed},
          {"throughput", static_cast<double>(all.size()) / elapsed},
          {"p50_ms", l.p50},
          {"p95_ms", l.p95},
          {"p99_ms", l.p99},
          {"mean_batch", runs > 0 ? batched / runs : 0.0},
          {"engine_busy", engine_ms / (elapsed * 1e3)},
          {"engine_ms_per_batch", runs > 0 ? engine_ms / runs : 0.0},
          {"decode_p50_ms", after["decode_ms"].value("p50", 0.0)},
          {"max_batch", after["batches"]["max_batch"]},
          {"window_ms", after["batches"]["window_ms"]},
          {"preprocess", after["preprocess"]},
          {"image_bytes_mean", [&] {
             double total = 0;
             for (const auto& i : images) total += static_cast<double>(i.size());
             return total / static_cast<double>(images.size());
           }()},
          {"hardware_threads", std::thread::hardware_concurrency()},
          {"date", utc_now()},
          {"commit", VISOPT_GIT_COMMIT},
          {"tag", s.tag},
          {"note", s.note}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Load examples/serve with a bounded number of concurrent clients and measure it."};
  Settings s;
  app.add_option("--host", s.host)->capture_default_str();
  app.add_option("--port", s.port)->required();
  app.add_option("--images", s.image_paths, "image files or directories, sent round robin")->required();
  app.add_option("--concurrency", s.concurrency, "concurrent clients, comma-separated")->delimiter(',')->capture_default_str();
  app.add_option("--seconds", s.seconds, "measured time per concurrency")->capture_default_str();
  app.add_option("--warmup-seconds", s.warmup_seconds, "load before measuring, not counted")->capture_default_str();
  app.add_option("--json", s.json_path, "append one JSON row per concurrency here");
  app.add_option("--tag", s.tag, "run tag the rows carry");
  app.add_option("--note", s.note, "free text the rows carry (the server's settings)");
  CLI11_PARSE(app, argc, argv);
  try {
    const std::vector<std::string> images = read_images(s.image_paths);
    std::printf("%-11s %9s %10s %9s %9s %9s %10s %11s %10s\n", "concurrency", "requests", "img/s", "p50 ms", "p95 ms", "p99 ms",
                "mean batch", "engine busy", "decode ms");
    for (const int clients : s.concurrency) {
      const json row = measure(s, images, clients);
      std::printf("%-11d %9lld %10.1f %9.2f %9.2f %9.2f %10.1f %10.0f%% %10.2f\n", clients, row["requests"].get<long long>(),
                  row["throughput"].get<double>(), row["p50_ms"].get<double>(), row["p95_ms"].get<double>(),
                  row["p99_ms"].get<double>(), row["mean_batch"].get<double>(), 100 * row["engine_busy"].get<double>(),
                  row["decode_p50_ms"].get<double>());
      std::fflush(stdout);
      if (!s.json_path.empty()) std::ofstream(s.json_path, std::ios::app) << row.dump() << '\n';
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
