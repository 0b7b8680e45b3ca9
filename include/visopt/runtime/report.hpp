#pragma once
// What compile() did: the level and backend, each optimisation applied or skipped with its reason,
// parameters and memory. Printable as text (engine.report()) and as JSON for tools.

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace visopt::runtime {

struct Optimization {
  std::string name;    // "fold_bn", "epilogue_fusion", "tf32", ...
  bool applied = false;
  std::string detail;  // what was done, or why not
};

struct Report {
  std::string model, level, backend, device, policy;
  std::string compute_precision;  // what the backend actually computes in ("fp32", "fp16", ...)
  std::vector<Optimization> optimizations;
  std::int64_t parameters = 0;
  std::size_t weight_bytes = 0, activation_bytes = 0, workspace_bytes = 0;
  double compile_ms = 0;

  void applied(std::string name, std::string detail) { optimizations.push_back({std::move(name), true, std::move(detail)}); }
  void skipped(std::string name, std::string reason) { optimizations.push_back({std::move(name), false, std::move(reason)}); }

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
    s += "\n  policy: " + policy + "\n  computes in: " + compute_precision;
    for (const auto& o : optimizations) s += "\n  " + std::string(o.applied ? "[applied] " : "[skipped] ") + o.name + ": " + o.detail;
    s += "\n  parameters: " + std::to_string(parameters) + ", weights " + std::to_string(weight_bytes / 1024) +
         " KiB, activations " + std::to_string(activation_bytes / 1024) + " KiB, workspace " +
         std::to_string(workspace_bytes / 1024) + " KiB\n  compile: " + std::to_string(compile_ms) + " ms";
    return s;
  }

  nlohmann::json json() const {
    nlohmann::json j{{"model", model},
                     {"level", level},
                     {"backend", backend},
                     {"device", device},
                     {"policy", policy},
                     {"compute_precision", compute_precision},
                     {"parameters", parameters},
                     {"memory", {{"weights", weight_bytes}, {"activations", activation_bytes}, {"workspace", workspace_bytes}}},
                     {"compile_ms", compile_ms}};
    j["optimizations"] = nlohmann::json::array();
    for (const auto& o : optimizations) j["optimizations"].push_back({{"name", o.name}, {"applied", o.applied}, {"detail", o.detail}});
    return j;
  }

  friend std::ostream& operator<<(std::ostream& out, const Report& r) { return out << r.text(); }
};

}  // namespace visopt::runtime
