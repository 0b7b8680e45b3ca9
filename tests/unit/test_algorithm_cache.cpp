// The on-disk algorithm cache (services/algorithm_cache.hpp) on its own, without a GPU: entries round-trip,
// and a file written for another GPU or another cuDNN version, or a corrupt one, is ignored with a warning
// that says why, so no algorithm chosen elsewhere is ever used.

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <visopt/services/algorithm_cache.hpp>

#include "catch.hpp"

using visopt::runtime::AlgorithmCache;
namespace fs = std::filesystem;

namespace {

// The identity the CUDA backend writes (backend/cuda/context.hpp): GPU, architecture, library versions.
const std::string h100 = "NVIDIA H100 80GB HBM3 sm_90 cudnn 91000 cublasLt 130000 cuda 13000";

struct CacheFile {
  fs::path dir, file;
  CacheFile() {
    std::random_device random;
    dir = fs::temp_directory_path() / ("visopt_algorithm_cache_" + std::to_string(random()));
    fs::create_directories(dir);
    file = dir / "cuda-algorithms.json";
    AlgorithmCache cache(file, h100);
    cache.store("conv 1x64x56x56 f16 nhwc", {{"algorithm", 6}, {"workspace", 1024}});
    cache.save();
  }
  ~CacheFile() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
};

}  // namespace

TEST_CASE("algorithm cache: entries written for this GPU and these libraries are read back", "[algorithm_cache]") {
  CacheFile f;
  AlgorithmCache cache(f.file, h100);
  CHECK(cache.warning().empty());
  const auto entry = cache.find("conv 1x64x56x56 f16 nhwc");
  REQUIRE(entry.has_value());
  CHECK((*entry)["algorithm"] == 6);
  CHECK(cache.hits() == 1);
}

TEST_CASE("algorithm cache: a file from another GPU or cuDNN version is ignored with a warning", "[algorithm_cache]") {
  CacheFile f;
  SECTION("another GPU") {
    const std::string a100 = "NVIDIA A100-SXM4-80GB sm_80 cudnn 91000 cublasLt 130000 cuda 13000";
    AlgorithmCache cache(f.file, a100);
    CHECK(cache.warning() == "ignoring '" + f.file.string() + "': it was written for " + h100 + ", this is " + a100);
    CHECK_FALSE(cache.find("conv 1x64x56x56 f16 nhwc").has_value());
    CHECK(cache.misses() == 1);
  }
  SECTION("another cuDNN version on the same GPU") {
    const std::string newer = "NVIDIA H100 80GB HBM3 sm_90 cudnn 91100 cublasLt 130000 cuda 13000";
    AlgorithmCache cache(f.file, newer);
    CHECK(cache.warning().find("it was written for " + h100 + ", this is " + newer) != std::string::npos);
    CHECK_FALSE(cache.find("conv 1x64x56x56 f16 nhwc").has_value());
  }
  SECTION("a corrupt file, another format and a missing entries object") {
    for (const std::string& text : {std::string("{ not json"), std::string(R"({"format": "other", "version": 1})"),
                                    R"({"format": "visopt-algorithm-cache", "version": 1, "identity": ")" + h100 + R"("})"}) {
      std::ofstream(f.file, std::ios::trunc) << text;
      AlgorithmCache cache(f.file, h100);
      INFO(text);
      CHECK(cache.warning().rfind("ignoring '" + f.file.string() + "': ", 0) == 0);
      CHECK_FALSE(cache.find("conv 1x64x56x56 f16 nhwc").has_value());
    }
  }
}

TEST_CASE("algorithm cache: two writers of one file keep each other's entries, and a forgotten one stays gone",
          "[algorithm_cache]") {
  CacheFile f;  // holds "conv 1x64x56x56 f16 nhwc"
  AlgorithmCache first(f.file, h100), second(f.file, h100);
  first.store("gemm 64x768x3072 f16", {{"algorithm", 1}});
  second.store("gemm 64x3072x768 f16", {{"algorithm", 2}});
  second.forget("conv 1x64x56x56 f16 nhwc");
  first.save();   // writes the conv entry it loaded and its own gemm
  second.save();  // merges first's gemm into its own; the conv entry it dropped stays dropped
  AlgorithmCache reader(f.file, h100);
  CHECK(reader.warning().empty());
  CHECK(reader.find("gemm 64x768x3072 f16").has_value());
  CHECK(reader.find("gemm 64x3072x768 f16").has_value());
  CHECK_FALSE(reader.find("conv 1x64x56x56 f16 nhwc").has_value());
  // Each writer's temporary file is its own and none is left behind.
  for (const auto& entry : fs::directory_iterator(f.dir)) CHECK(entry.path().filename() == "cuda-algorithms.json");
}

TEST_CASE("algorithm cache: writers saving at the same moment lose none of each other's entries", "[algorithm_cache]") {
  // Without the directory lock, two read-merge-rename cycles that overlap drop the entries of whichever
  // renames first; eight writers saving 25 times each made that happen in every run.
  CacheFile f;
  constexpr int writers = 8, rounds = 25;
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      AlgorithmCache cache(f.file, h100);
      for (int r = 0; r < rounds; ++r) {
        cache.store("writer " + std::to_string(w) + " round " + std::to_string(r), {{"algorithm", r}});
        cache.save();
      }
    });
  }
  for (auto& t : threads) t.join();
  AlgorithmCache reader(f.file, h100);
  int found = 0;
  for (int w = 0; w < writers; ++w) {
    for (int r = 0; r < rounds; ++r) found += reader.find("writer " + std::to_string(w) + " round " + std::to_string(r)) ? 1 : 0;
  }
  CHECK(found == writers * rounds);
  CHECK(reader.find("conv 1x64x56x56 f16 nhwc").has_value());
}

TEST_CASE("algorithm cache: a directory it cannot write is a warning, not an error", "[algorithm_cache]") {
  CacheFile f;
  const fs::path blocked = f.dir / "not-a-directory";
  std::ofstream(blocked) << "a file where the cache directory should be";
  AlgorithmCache cache(blocked / "cuda-algorithms.json", h100);
  cache.store("conv", {{"algorithm", 0}});
  cache.save();  // must not throw
  CHECK(cache.warning().rfind("cannot write '", 0) == 0);
}
