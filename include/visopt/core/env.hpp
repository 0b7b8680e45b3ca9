#pragma once
// The one place visopt reads its environment variables (docs/configuration.md lists them): each
// VISOPT_* knob is parsed here, and a malformed value is a visopt::Error that names the variable and
// the values it accepts. An unset or empty variable is std::nullopt: the caller's default applies.

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "error.hpp"

namespace visopt::env {

/// The variable's value when it is set and not empty.
inline std::optional<std::string> text(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

/// A whole number in [min, max].
inline std::optional<int> integer(const char* name, int min, int max) {
  const auto value = text(name);
  if (!value) return std::nullopt;
  char* end = nullptr;
  const long n = std::strtol(value->c_str(), &end, 10);
  require(end != nullptr && *end == '\0' && n >= min && n <= max, "environment variable ", name, " is '", *value,
          "', expected a whole number from ", min, " to ", max);
  return static_cast<int>(n);
}

/// 1/0, true/false, yes/no, on/off (lower case).
inline std::optional<bool> flag(const char* name) {
  const auto value = text(name);
  if (!value) return std::nullopt;
  for (const char* yes : {"1", "true", "yes", "on"}) {
    if (*value == yes) return true;
  }
  for (const char* no : {"0", "false", "no", "off"}) {
    if (*value == no) return false;
  }
  throw Error(detail::concat("environment variable ", name, " is '", *value,
                             "', expected one of 1, 0, true, false, yes, no, on, off"));
}

// ---- the knobs (docs/configuration.md); CompileOptions fields win over each ----

/// VISOPT_LEVEL: the level a program runs when its command line does not say (see visopt::choose_level).
inline std::optional<std::string> level() { return text("VISOPT_LEVEL"); }
/// VISOPT_BACKEND: the backend a program runs when its command line does not say (visopt::choose_backend).
inline std::optional<std::string> backend() { return text("VISOPT_BACKEND"); }
/// VISOPT_CACHE_DIR: where measured algorithm choices are cached (CompileOptions::cache_dir).
inline std::optional<std::string> cache_dir() { return text("VISOPT_CACHE_DIR"); }
/// VISOPT_NUM_THREADS: CPU threads of the CPU backends (CompileOptions::num_threads).
inline std::optional<int> num_threads() { return integer("VISOPT_NUM_THREADS", 1, 4096); }
/// VISOPT_WARMUP: forward passes inside compile() (CompileOptions::warmup).
inline std::optional<int> warmup() { return integer("VISOPT_WARMUP", 0, 1000); }
/// VISOPT_STRICT: throw instead of falling back (CompileOptions::strict).
inline std::optional<bool> strict() { return flag("VISOPT_STRICT"); }
/// VISOPT_DEVICE: the GPU index of the GPU backends (CompileOptions::device).
inline std::optional<int> device() { return integer("VISOPT_DEVICE", 0, 1023); }

}  // namespace visopt::env
