#pragma once
// What a user may tell compile() beyond the level and backend: batch limit, threads, cache, warm-up.

#include <string>

namespace visopt::runtime {

struct CompileOptions {
  int max_batch = 1;        // run() accepts batches of 1..max_batch images
  int num_threads = 0;      // CPU threads; 0 = the OpenMP/oneDNN default
  std::string cache_dir{};  // algorithm cache; empty = VISOPT_CACHE_DIR or ~/.cache/visopt
  int image_size = 0;      // image size warm-up runs at for size-agnostic models (ResNet); 0 = 224. ViT: fixed by the weights
  int warmup = 1;           // forward passes at max_batch inside compile(), so the first run() is not the slow one
  bool strict = false;      // throw instead of falling back when an optimisation cannot apply here
  int device = 0;           // GPU index for GPU backends
};

}  // namespace visopt::runtime
