#pragma once
// The on-disk cache of measured algorithm choices (cuDNN convolution algorithms, cuBLASLt matmul
// algorithms), keyed by device, library versions, shape, dtype and layout. A second compile() reads it
// and searches nothing. A corrupt or foreign file is ignored with a warning, never trusted.

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <string>

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/file.h>
#include <unistd.h>

#include "../core/env.hpp"
#include "atomic_file.hpp"

namespace visopt::runtime {

/// An exclusive flock on a directory for a scope: writers of the caches in it (threads or processes)
/// read, merge and replace their file one at a time. Best effort: where the directory cannot be opened
/// or locked, the scope goes on unlocked, as the cache is only ever an optimisation.
class DirectoryLock {
 public:
  explicit DirectoryLock(const std::filesystem::path& directory)
      : fd_(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
    while (fd_ >= 0 && ::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  ~DirectoryLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_;
};

/// Where caches live: CompileOptions::cache_dir, else VISOPT_CACHE_DIR, else $XDG_CACHE_HOME/visopt,
/// else ~/.cache/visopt, else the system temporary directory.
inline std::filesystem::path cache_directory(const std::string& configured) {
  if (!configured.empty()) return configured;
  if (const auto dir = env::cache_dir()) return *dir;
  if (const auto xdg = env::text("XDG_CACHE_HOME")) return std::filesystem::path(*xdg) / "visopt";
  if (const auto home = env::text("HOME")) return std::filesystem::path(*home) / ".cache" / "visopt";
  return std::filesystem::temp_directory_path() / "visopt";
}

class AlgorithmCache {
 public:
  static constexpr int format_version = 1;

  /// `identity` names what the entries are valid for (GPU, library versions); a file written for
  /// another identity is ignored.
  AlgorithmCache(std::filesystem::path file, std::string identity) : file_(std::move(file)), identity_(std::move(identity)) {
    load();
  }
  /// A cache in memory only, holding `entries` (a saved plan's): nothing is read from or written to disk.
  AlgorithmCache(nlohmann::json entries, std::string identity) : identity_(std::move(identity)), entries_(std::move(entries)) {
    if (!entries_.is_object()) entries_ = nlohmann::json::object();
  }

  const std::filesystem::path& file() const { return file_; }  // empty for a cache in memory
  /// The entries looked up or stored since this cache was made: what one engine chose (its saved plan's).
  const nlohmann::json& used() const { return used_; }
  const std::string& warning() const { return warning_; }
  int hits() const { return hits_; }
  int misses() const { return misses_; }

  std::optional<nlohmann::json> find(const std::string& key) {
    if (auto it = entries_.find(key); it != entries_.end()) {
      ++hits_;
      used_[key] = *it;
      return *it;
    }
    ++misses_;
    return std::nullopt;
  }

  /// Drops an entry that turned out to be unusable (e.g. an algorithm the library rejects).
  void forget(const std::string& key) {
    entries_.erase(key);
    used_.erase(key);
    forgotten_.insert(key);
    dirty_ = true;
  }

  void store(const std::string& key, nlohmann::json value) {
    used_[key] = value;
    entries_[key] = std::move(value);
    forgotten_.erase(key);
    dirty_ = true;
  }

  /// Writes the file if anything changed: atomically (a temporary file of this writer's own, then
  /// rename), and merged with what another writer saved since load(), under an flock on the directory so
  /// that two writers saving at once (threads or processes) both keep their entries (this one's win where
  /// both measured a key). A cache that cannot be written is a warning, not an error: the engine works
  /// without it. Never throws (destructors call it).
  void save() noexcept {
    if (!dirty_ || file_.empty()) return;
    try {
      std::error_code ec;
      std::filesystem::create_directories(file_.parent_path(), ec);
      const DirectoryLock lock(file_.parent_path().empty() ? std::filesystem::path(".") : file_.parent_path());
      nlohmann::json entries = read_entries(/*quiet=*/true).value_or(nlohmann::json::object());
      entries.update(entries_);
      for (const auto& key : forgotten_) entries.erase(key);
      const std::string failed = write_file_atomically(
          file_, nlohmann::json{{"format", "visopt-algorithm-cache"}, {"version", format_version}, {"identity", identity_},
                                {"entries", entries}}
                     .dump(1));
      if (!failed.empty()) {
        warn(failed);
        return;
      }
      entries_ = std::move(entries);
      forgotten_.clear();
      dirty_ = false;
    } catch (const std::exception& e) {
      warn("cannot save '" + file_.string() + "': " + e.what());
    }
  }

 private:
  void load() { entries_ = read_entries(/*quiet=*/false).value_or(nlohmann::json::object()); }

  /// The entries of the file on disk when it is a cache of this identity; otherwise none, with a
  /// warning unless `quiet` (save() merges quietly: load() has already said what was wrong).
  std::optional<nlohmann::json> read_entries(bool quiet) {
    if (!std::filesystem::exists(file_)) return std::nullopt;
    const auto ignore = [&](const std::string& why) -> std::optional<nlohmann::json> {
      if (!quiet) warn("ignoring '" + file_.string() + "': " + why);
      return std::nullopt;
    };
    try {
      std::ifstream in(file_);
      const nlohmann::json j = nlohmann::json::parse(in);
      if (!j.is_object() || j.value("format", "") != "visopt-algorithm-cache" || j.value("version", 0) != format_version) {
        return ignore("not a visopt algorithm cache of version " + std::to_string(format_version));
      }
      if (j.value("identity", "") != identity_) {
        return ignore("it was written for " + j.value("identity", std::string("?")) + ", this is " + identity_);
      }
      if (!j.contains("entries") || !j["entries"].is_object()) return ignore("it has no entries object");
      return j["entries"];
    } catch (const std::exception& e) {
      return ignore(e.what());
    }
  }


  void warn(const std::string& message) {
    warning_ = message;
    std::cerr << "visopt: warning: algorithm cache: " << message << '\n';
  }

  std::filesystem::path file_;
  std::string identity_;
  nlohmann::json entries_ = nlohmann::json::object();
  nlohmann::json used_ = nlohmann::json::object();
  std::set<std::string> forgotten_;  // dropped here: a concurrent writer's copy must not bring them back
  std::string warning_;
  int hits_ = 0, misses_ = 0;
  bool dirty_ = false;
};

}  // namespace visopt::runtime
