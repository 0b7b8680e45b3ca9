#pragma once
// What a user may tell compile() beyond the level and backend: batch limit, threads, cache, warm-up.
// A field left unset takes its VISOPT_* environment variable, else its default (docs/configuration.md);
// a field that is set wins over the environment. resolve() does this once, in compile().

#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/env.hpp"
#include "calibration.hpp"

namespace visopt::runtime {

/// What compile() does with a saved plan made for another model, level, backend, device, library or
/// visopt version.
enum class PlanMismatch {
  error,      // a visopt::Error naming the first difference
  recompile,  // compile afresh, as without a plan; the report's "saved_plan" entry says why
};

struct CompileOptions {
  int max_batch = 1;              // run() accepts batches of 1..max_batch images
  int num_threads = 0;            // CPU threads; 0 = VISOPT_NUM_THREADS, else the OpenMP/oneDNN default
  std::string cache_dir{};        // algorithm cache; empty = VISOPT_CACHE_DIR, else $XDG_CACHE_HOME/visopt or ~/.cache/visopt
  int image_size = 0;             // image size warm-up runs at for size-agnostic models (ResNet); 0 = 224. ViT: fixed by the weights
  std::optional<int> warmup{};    // forward passes at max_batch inside compile(), so the first run() is not the slow one; unset = VISOPT_WARMUP, else 1
  std::vector<int> warmup_batches{};  // more batch sizes to warm up at, each 1..max_batch: their algorithms are tuned (and, at O3, their graphs captured) in compile(), not in their first run()
  std::optional<bool> strict{};   // throw instead of falling back when an optimisation cannot apply here; unset = VISOPT_STRICT, else false
  std::optional<int> device{};    // GPU index for GPU backends; unset = VISOPT_DEVICE, else 0
  std::string plan{};             // a plan saved by Engine::save: its algorithm choices are used, nothing is timed (visopt::load also takes its batch sizes); empty = none
  PlanMismatch plan_mismatch = PlanMismatch::error;  // a plan saved for another model, level, device or version: error, or compile afresh
  std::optional<Calibration> calibration{};  // activation ranges for the 8-bit levels (O4: int8 on oneDNN, FP8 on CUDA): visopt::calibrate or Calibration::load; a saved plan carries its own
  std::vector<std::string> high_precision_layers{};  // 8-bit levels: convolutions (int8) and linears kept in the high-precision type, by the names the report and the calibration use ("conv.52", "linear.7")
};

/// Where one resolved setting came from, for report().
struct Setting {
  std::string name, value, source;  // source: "CompileOptions", "VISOPT_WARMUP" or "default"
};

/// The options with every unset field filled from the environment, else from its default; afterwards
/// warmup, strict and device hold values and num_threads is 0 only when neither set it (OpenMP decides).
/// `settings`, when given, receives each knob's value and source. Throws visopt::Error on a malformed
/// variable, naming it.
inline CompileOptions resolve(CompileOptions options, std::vector<Setting>* settings = nullptr) {
  auto note = [&](const char* name, const std::string& value, const char* source) {
    if (settings) settings->push_back({name, value, source});
  };
  auto pick = [&]<class T>(const char* name, const char* variable, std::optional<T>& field, std::optional<T> from_env,
                           T fallback) {
    const char* source = field ? "CompileOptions" : from_env ? variable : "default";
    if (!field) field = from_env ? *from_env : fallback;
    if constexpr (std::is_same_v<T, bool>) {
      note(name, *field ? "true" : "false", source);
    } else {
      note(name, std::to_string(*field), source);
    }
  };
  // The environment is read only for the fields left unset, so a malformed variable that the options
  // override is never an error.
  pick("warmup", "VISOPT_WARMUP", options.warmup, options.warmup ? std::nullopt : env::warmup(), 1);
  pick("strict", "VISOPT_STRICT", options.strict, options.strict ? std::nullopt : env::strict(), false);
  pick("device", "VISOPT_DEVICE", options.device, options.device ? std::nullopt : env::device(), 0);
  if (options.num_threads > 0) {
    note("num_threads", std::to_string(options.num_threads), "CompileOptions");
  } else if (const auto threads = env::num_threads()) {
    options.num_threads = *threads;
    note("num_threads", std::to_string(*threads), "VISOPT_NUM_THREADS");
  } else {
    note("num_threads", "OpenMP default", "default");
  }
  if (!options.cache_dir.empty()) {
    note("cache_dir", options.cache_dir, "CompileOptions");
  } else if (const auto dir = env::cache_dir()) {
    options.cache_dir = *dir;
    note("cache_dir", *dir, "VISOPT_CACHE_DIR");
  } else {
    note("cache_dir", "$XDG_CACHE_HOME/visopt or ~/.cache/visopt", "default");
  }
  return options;
}

}  // namespace visopt::runtime
