#pragma once
// Class-name lists for classifier output (e.g. examples/data/imagenet_classes.txt): one name per line,
// line i naming logit i.

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "../core/error.hpp"

namespace visopt::io {

/// Reads one class name per line ('\r\n' or '\n'; trailing blank lines ignored). Throws visopt::Error when the
/// file is missing, holds no names or a blank line between names, or, when expected_count > 0, holds a
/// different number of names; the messages give the count found.
inline std::vector<std::string> load_class_names(const std::filesystem::path& path, std::size_t expected_count = 0) {
  const std::string prefix = "io: class names '" + path.string() + "': ";
  std::error_code ec;
  require(std::filesystem::is_regular_file(path, ec), prefix, ec ? ec.message() : std::string("no such file"));
  std::ifstream file(path);
  require(file.is_open(), prefix, "cannot open it");

  std::vector<std::string> names;
  for (std::string line; std::getline(file, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    names.push_back(std::move(line));
  }
  require(!file.bad(), prefix, "read error after ", names.size(), " lines");
  while (!names.empty() && names.back().empty()) names.pop_back();
  require(!names.empty(), prefix, "holds no names (0 lines)");
  for (std::size_t i = 0; i < names.size(); ++i) {
    require(!names[i].empty(), prefix, "line ", i + 1, " of ", names.size(), " is blank");
  }
  require(expected_count == 0 || names.size() == expected_count, prefix, "holds ", names.size(), " names, expected ",
          expected_count);
  return names;
}

}  // namespace visopt::io
