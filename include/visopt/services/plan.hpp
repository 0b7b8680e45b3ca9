#pragma once
// Saved plans, as TensorRT users save engines: Engine::save(path) writes what compile() chose for one
// model, level, backend and device (the measured algorithm choices, the batch sizes it was warmed up at,
// and its report), and compile() with CompileOptions::plan (or visopt::load) rebuilds the engine from the
// weights plus that file without timing anything. The file is keyed by the model, level, backend, device
// and library versions and visopt's version: a mismatch is a visopt::Error naming the first difference,
// or a fresh compile that the report explains (CompileOptions::plan_mismatch).

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "../core/version.hpp"
#include "atomic_file.hpp"
#include "report.hpp"

namespace visopt::runtime {

struct SavedPlan {
  static constexpr int format_version = 1;
  static constexpr const char* format_name = "visopt-plan";

  nlohmann::json key;         // what the plan is valid for: visopt, model, parameters, level, policy, backend, device
  nlohmann::json options;     // the engine's max_batch, image_size and warmup_batches
  nlohmann::json algorithms;  // the algorithm-cache entries the engine used (empty where nothing is tuned)
  nlohmann::json report;      // the saving compile's report().json(), for people and tools
  nlohmann::json calibration;  // int8 levels: the activation ranges the engine was compiled with (Calibration::json); null otherwise

  /// The key of the engine `report` describes, on the executor whose identity() is `device`: everything
  /// the algorithm choices depend on besides the shapes.
  static nlohmann::json key_for(const Report& report, const std::string& device) {
    return {{"visopt", std::string(visopt::version)}, {"model", report.model},   {"parameters", report.parameters},
            {"level", report.level},                  {"policy", report.policy}, {"backend", report.backend},
            {"device", device}};
  }

  /// "" when `saved` and `expected` agree, else the first field that differs, as people read it.
  static std::string difference(const nlohmann::json& saved, const nlohmann::json& expected) {
    for (const auto& [field, value] : expected.items()) {
      if (!saved.contains(field)) return "the plan has no '" + field + "'";
      if (saved[field] != value) return field + " is " + saved[field].dump() + " in the plan, " + value.dump() + " here";
    }
    return "";
  }

  /// Writes the plan atomically (write_file_atomically); a visopt::Error names the path and why not.
  void write(const std::filesystem::path& path) const {
    nlohmann::json j{{"format", format_name}, {"version", format_version}, {"key", key},
                     {"options", options},    {"algorithms", algorithms},  {"report", report}};
    if (!calibration.is_null()) j["calibration"] = calibration;
    const std::string failed = write_file_atomically(path, j.dump(1) + '\n');
    require(failed.empty(), "Engine::save: ", failed, " (for the plan '", path.string(), "')");
  }

  /// Reads a plan; a missing, truncated or foreign file is a visopt::Error naming the path and what is wrong.
  static SavedPlan read(const std::filesystem::path& path) {
    const auto fail = [&](const std::string& why) {
      return Error(visopt::detail::concat("saved plan '", path.string(), "': ", why));
    };
    std::ifstream in(path);
    if (!in) throw fail("cannot be opened (Engine::save writes one)");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      throw fail(std::string("is not JSON (truncated?): ") + e.what());
    }
    if (!j.is_object() || j.value("format", "") != format_name) throw fail("is not a visopt plan (no \"format\": \"visopt-plan\")");
    if (j.value("version", 0) != format_version) {
      throw fail("has format version " + j.value("version", nlohmann::json(0)).dump() + ", this visopt reads version " +
                 std::to_string(format_version) + ": save it again");
    }
    for (const char* field : {"key", "options", "algorithms"}) {
      if (!j.contains(field) || !j[field].is_object()) throw fail(std::string("has no \"") + field + "\" object");
    }
    const nlohmann::json& o = j["options"];
    if (!o.contains("max_batch") || !o["max_batch"].is_number_integer() || o["max_batch"].get<int>() < 1 ||
        !o.contains("image_size") || !o["image_size"].is_number_integer() || !o.contains("warmup_batches") ||
        !o["warmup_batches"].is_array() ||
        !std::all_of(o["warmup_batches"].begin(), o["warmup_batches"].end(), [](const auto& b) { return b.is_number_integer(); })) {
      throw fail("its \"options\" need max_batch >= 1, image_size and warmup_batches");
    }
    return {j["key"], o, j["algorithms"], j.value("report", nlohmann::json::object()), j.value("calibration", nlohmann::json())};
  }
};

}  // namespace visopt::runtime
