#pragma once
// What compile() did: the level and backend, each optimisation applied or skipped with its reason,
// parameters and memory. Printable as text (engine.report()) and as JSON for tools.

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "options.hpp"

namespace visopt::runtime {

struct Optimization {
  std::string name;    // "fold_bn", "epilogue_fusion", "tf32", ...
  bool applied = false;
  std::string detail;  // what was done, or why not
};

/// One input shape's plan (services/batch_plan.hpp) as compile() left it: the lifecycle's plan and
/// capture stages, with what they cost.
struct PlannedInput {
  std::vector<std::int64_t> input;     // [N, 3, H, W]
  std::size_t operations = 0;          // operations of the forward with a planned step
  std::size_t steps = 0;               // steps made (operations of one owner and key share one)
  double plan_ms = 0;                  // the planning forward: algorithms chosen (and timed), memory reserved
  bool captured = false;               // replayed as one CUDA Graph
  double capture_ms = 0;

  std::string text() const {
    std::string s = "batch ";
    s += input.empty() ? std::string("?") : std::to_string(input[0]);
    s += " [";
    for (std::size_t i = 0; i < input.size(); ++i) {
      if (i > 0) s += ',';
      s += std::to_string(input[i]);
    }
    s += "]: ";
    s += std::to_string(operations);
    s += " operations, ";
    s += std::to_string(steps);
    s += " steps, planned in ";
    s += std::to_string(static_cast<long long>(plan_ms));
    s += " ms";
    if (captured) {
      s += ", captured in ";
      s += std::to_string(static_cast<long long>(capture_ms));
      s += " ms";
    }
    return s;
  }
  nlohmann::json json() const {
    return {{"input", input}, {"operations", operations}, {"steps", steps}, {"plan_ms", plan_ms},
            {"captured", captured}, {"capture_ms", capture_ms}};
  }
};

struct Report {
  /// The version of json()'s layout (docs/levels-and-policies.md, "The report as JSON"): raised when a
  /// field is renamed, removed or changes meaning; adding a field keeps it.
  static constexpr int json_version = 1;

  std::string model, level, backend, device, policy;
  std::string compute_precision;  // what the backend actually computes in ("fp32", "fp16", ...)
  std::vector<Optimization> optimizations;
  std::map<std::string, int> algorithms;  // "convolution: brg:avx512_core" -> how many operations use it
  std::vector<Setting> settings;          // each CompileOptions knob's value and where it came from
  std::vector<PlannedInput> plans;        // one per input shape compile() planned (max_batch, warmup_batches)
  std::int64_t parameters = 0;
  int operations = 0;                // operations of one forward, from the trace compile() validated
  std::size_t weight_bytes = 0;      // parameters as the backend holds them (packed copies and device copies included)
  std::size_t activation_bytes = 0, workspace_bytes = 0;
  int cache_hits = 0, cache_misses = 0;  // the on-disk algorithm cache (measured tuning), when there is one
  double compile_ms = 0;

  /// Records an optimisation; a later entry of the same name replaces the earlier one (a fallback
  /// found during the warm-up overrides what the constructor planned), so each name appears once.
  void applied(std::string name, std::string detail) { record({std::move(name), true, std::move(detail)}); }
  void skipped(std::string name, std::string reason) { record({std::move(name), false, std::move(reason)}); }

  /// Whether the named optimisation was applied.
  bool has(const std::string& name) const {
    for (const auto& o : optimizations) {
      if (o.name == name && o.applied) return true;
    }
    return false;
  }

  /// "O1 on reference (cpu): fold_bn, epilogue_fusion" followed by one line per optimisation.
  std::string text() const {
    std::string s = level + " on " + backend + " (" + device + ") for " + model + ":";
    bool first = true;
    for (const auto& o : optimizations) {
      if (!o.applied) continue;
      s += (first ? " " : ", ") + o.name;
      first = false;
    }
    if (first) s += " no optimisations";
    s += "\n  policy: " + policy + "\n  computes in: " + compute_precision + "\n  operations: " + std::to_string(operations) +
         " per forward (traced and validated for this backend)";
    for (const auto& o : optimizations) s += "\n  " + std::string(o.applied ? "[applied] " : "[skipped] ") + o.name + ": " + o.detail;
    for (const auto& [algorithm, count] : algorithms) s += "\n  algorithm: " + algorithm + " x" + std::to_string(count);
    for (const auto& plan : plans) s += "\n  plan: " + plan.text();
    s += "\n  parameters: " + std::to_string(parameters) + ", weights " + std::to_string(weight_bytes / 1024) +
         " KiB, activations " + std::to_string(activation_bytes / 1024) + " KiB, workspace " +
         std::to_string(workspace_bytes / 1024) + " KiB\n  compile: " + std::to_string(static_cast<long long>(compile_ms)) +
         " ms, algorithm cache " + std::to_string(cache_hits) + " hits / " + std::to_string(cache_misses) + " misses";
    if (!settings.empty()) {
      s += "\n  settings:";
      for (const auto& setting : settings) s += " " + setting.name + "=" + setting.value + " (" + setting.source + ")";
    }
    return s;
  }

  nlohmann::json json() const {
    nlohmann::json j{{"version", json_version},
                     {"model", model},
                     {"level", level},
                     {"backend", backend},
                     {"device", device},
                     {"policy", policy},
                     {"compute_precision", compute_precision},
                     {"parameters", parameters},
                     {"operations", operations},
                     {"memory", {{"weights", weight_bytes}, {"activations", activation_bytes}, {"workspace", workspace_bytes}}},
                     {"compile_ms", compile_ms},
                     {"cache", {{"hits", cache_hits}, {"misses", cache_misses}}},
                     {"algorithms", algorithms}};
    j["settings"] = nlohmann::json::object();
    for (const auto& setting : settings) j["settings"][setting.name] = {{"value", setting.value}, {"source", setting.source}};
    j["plans"] = nlohmann::json::array();
    for (const auto& plan : plans) j["plans"].push_back(plan.json());
    j["optimizations"] = nlohmann::json::array();
    for (const auto& o : optimizations) j["optimizations"].push_back({{"name", o.name}, {"applied", o.applied}, {"detail", o.detail}});
    return j;
  }

  friend std::ostream& operator<<(std::ostream& out, const Report& r) { return out << r.text(); }

 private:
  void record(Optimization o) {
    for (auto& existing : optimizations) {
      if (existing.name == o.name) {
        existing = std::move(o);
        return;
      }
    }
    optimizations.push_back(std::move(o));
  }
};

}  // namespace visopt::runtime
