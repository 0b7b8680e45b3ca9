#pragma once
// Replacing a file so that readers see the old or the new content, never half of one: what the
// algorithm cache and saved plans both write.

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include <unistd.h>

namespace visopt::runtime {

/// Writes `text` to a temporary file of this writer's own (process id and a counter, so that threads and
/// processes writing the same path at once never share one), then renames it over `path`. Returns "" on
/// success, else why not ("cannot write '<temporary>'" or "cannot replace '<path>': <reason>"), with the
/// temporary removed. Never throws.
inline std::string write_file_atomically(const std::filesystem::path& path, const std::string& text) noexcept {
  static std::atomic<unsigned long> writers{0};
  try {
    const auto temporary = path.string() + ".partial." + std::to_string(::getpid()) + "." + std::to_string(writers++);
    std::error_code ec;
    {
      std::ofstream out(temporary, std::ios::trunc);
      out << text;
      if (!out) {
        std::filesystem::remove(temporary, ec);
        return "cannot write '" + temporary + "'";
      }
    }
    std::filesystem::rename(temporary, path, ec);
    if (ec) {
      const std::string why = "cannot replace '" + path.string() + "': " + ec.message();
      std::filesystem::remove(temporary, ec);
      return why;
    }
    return "";
  } catch (const std::exception& e) {
    return "cannot write '" + path.string() + "': " + e.what();
  }
}

}  // namespace visopt::runtime
