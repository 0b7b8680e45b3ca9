#pragma once
// The fields every engine's report().json() carries (README "report()"), checked the same way for
// each backend's test binary.

#include <string>

#include <nlohmann/json.hpp>

#include "catch.hpp"

namespace visopt::testing {

/// Parses the report's JSON text back and checks every field is there with the right type.
inline nlohmann::json check_report_json(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text);
  REQUIRE(j.contains("version"));
  CHECK(j["version"] == 1);  // a change of layout raises it, with docs/levels-and-policies.md
  for (const char* key : {"model", "level", "backend", "device", "policy", "compute_precision"}) {
    INFO(key);
    REQUIRE(j.contains(key));
    CHECK(j[key].is_string());
    CHECK(!j[key].get<std::string>().empty());
  }
  REQUIRE(j["optimizations"].is_array());
  CHECK(!j["optimizations"].empty());
  for (const auto& o : j["optimizations"]) {
    CHECK(o["name"].is_string());
    CHECK(o["applied"].is_boolean());
    CHECK(!o["detail"].get<std::string>().empty());  // what was done, or why not
  }
  REQUIRE(j["algorithms"].is_object());
  CHECK(!j["algorithms"].empty());
  for (const char* key : {"weights", "activations", "workspace"}) {
    INFO(key);
    CHECK(j["memory"][key].is_number_unsigned());
  }
  CHECK(j["memory"]["weights"].get<std::size_t>() > 0);
  CHECK(j["memory"]["activations"].get<std::size_t>() > 0);
  CHECK(j["compile_ms"].get<double>() > 0);
  CHECK(j["cache"]["hits"].is_number_integer());
  CHECK(j["cache"]["misses"].is_number_integer());
  CHECK(j["parameters"].get<std::int64_t>() > 0);
  for (const char* key : {"warmup", "strict", "num_threads", "cache_dir", "device"}) {
    INFO(key);
    CHECK(j["settings"][key]["source"].is_string());
  }
  return j;
}

}  // namespace visopt::testing
