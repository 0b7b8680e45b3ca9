#pragma once
// summarize(model): what a model costs before anything runs: parameters, multiply-adds per image, and
// weight and activation memory for a batch at each level O0-O3. It reads them from each level's trace
// (models/trace.hpp), which walks the real network code, so the count follows exactly the operations
// compile() would run.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "../policy/levels.hpp"
#include "../services/memory_plan.hpp"
#include "resnet.hpp"
#include "trace.hpp"
#include "traits.hpp"
#include "vit.hpp"

namespace visopt::models {

/// The memory one level needs for a batch: weights in the level's storage precision and the
/// activations its forward pass holds. A backend adds its own staging, reorders and workspace;
/// engine.report() gives the measured figures.
struct LevelMemory {
  std::string level;                // "O2"
  std::string precision;            // the level's precision policy: "fp32", "tf32", "half", ...
  std::size_t weight_bytes = 0;     // parameters as the level stores them (BatchNorm folded at O1+)
  std::size_t activation_bytes = 0; // eager levels: a pool reusing blocks of equal size; O3: one arena planned by liveness
};

struct Summary {
  std::string model;
  int batch = 1, image_size = 224;
  std::int64_t parameters = 0;      // learnable parameters, as PyTorch counts them
  std::int64_t macs_per_image = 0;  // multiply-adds of convolutions, linears and attention's two products
  std::vector<LevelMemory> levels;  // O0, O1, O2, O3

  double flops_per_image() const { return 2.0 * static_cast<double>(macs_per_image); }

  /// "resnet50: 25.56 M parameters, 4.09 GMACs (8.18 GFLOPs) per 224x224 image" and a table of the levels.
  std::string text() const {
    auto fixed = [](double v, int digits) {
      char buffer[64];
      std::snprintf(buffer, sizeof buffer, "%.*f", digits, v);
      return std::string(buffer);
    };
    auto mib = [&](std::size_t bytes) { return fixed(static_cast<double>(bytes) / (1 << 20), 1) + " MiB"; };
    std::string s = model + ": " + fixed(static_cast<double>(parameters) / 1e6, 2) + " M parameters, " +
                    fixed(static_cast<double>(macs_per_image) / 1e9, 2) + " GMACs (" +
                    fixed(flops_per_image() / 1e9, 2) + " GFLOPs) per " + std::to_string(image_size) + "x" +
                    std::to_string(image_size) + " image\n  memory for a batch of " + std::to_string(batch) + ":";
    for (const LevelMemory& l : levels) {
      s += "\n    " + l.level + " (" + l.precision + "): weights " + mib(l.weight_bytes) + ", activations " +
           mib(l.activation_bytes);
    }
    return s;
  }

  nlohmann::json json() const {
    nlohmann::json j{{"model", model},
                     {"batch", batch},
                     {"image_size", image_size},
                     {"parameters", parameters},
                     {"macs_per_image", macs_per_image},
                     {"flops_per_image", flops_per_image()}};
    j["levels"] = nlohmann::json::array();
    for (const LevelMemory& l : levels) {
      j["levels"].push_back({{"level", l.level},
                             {"precision", l.precision},
                             {"weight_bytes", l.weight_bytes},
                             {"activation_bytes", l.activation_bytes}});
    }
    return j;
  }

  friend std::ostream& operator<<(std::ostream& out, const Summary& s) { return out << s.text(); }
};

struct SummaryOptions {
  int batch = 1;
  int image_size = 0;  // ResNet: 0 = 224. ViT: fixed by the model (0 or that size)
};

namespace detail {

/// The memory runtime::ActivationPool reserves for these buffers: a released block is reused only by
/// an allocation of exactly its size, so the pool holds, per size, the most blocks live at once.
inline std::size_t pool_reserved_bytes(const std::vector<runtime::PlannedBuffer>& buffers) {
  std::vector<std::tuple<std::size_t, bool, std::size_t>> events;  // (time, is_allocation, bytes)
  for (const auto& b : buffers) {
    events.emplace_back(b.first, true, b.bytes);
    events.emplace_back(b.last, false, b.bytes);
  }
  std::sort(events.begin(), events.end());
  std::map<std::size_t, std::size_t> free_blocks;
  std::size_t reserved = 0;
  for (const auto& [time, allocation, bytes] : events) {
    if (!allocation) {
      ++free_blocks[bytes];
    } else if (auto it = free_blocks.find(bytes); it != free_blocks.end() && it->second > 0) {
      --it->second;
    } else {
      reserved += bytes;
    }
  }
  return reserved;
}

template <PolicyBundle Level, class Model>
LevelMemory level_memory(const Model& model, const Shape& images, std::int64_t* macs_per_image) {
  runtime::Trace t = trace<Level>(model, images);
  if (macs_per_image) *macs_per_image = t.macs() / images[0];
  const std::size_t activations = Level::execution::static_plan ? runtime::assign_offsets(t.buffers) : pool_reserved_bytes(t.buffers);
  return {std::string(Level::name), std::string(Level::precision::name), t.weight_bytes, activations};
}

}  // namespace detail

/// Multiply-adds for one image through the model: every convolution's weights times its output positions,
/// every linear's weights times its rows, and attention's two products. `image_size`: a ResNet's (0 = 224);
/// a ViT's is fixed by its weights (0 or that size).
template <RegisteredModel Model>
std::int64_t multiply_adds(const Model& model, int image_size = 0) {
  std::int64_t macs = 0;
  const std::int64_t size = ModelTraits<Model>::image_size(model, image_size, "multiply_adds: ");
  detail::level_memory<O0>(model, Shape{1, 3, size, size}, &macs);
  return macs;
}

/// Parameters, multiply-adds per image, and weight and activation memory at O0-O3 for a batch of
/// `options.batch` images. Nothing is computed on the weights but the levels' passes (BatchNorm folding).
template <RegisteredModel Model>
Summary summarize(const Model& model, SummaryOptions options = {}) {
  require(options.batch >= 1, "summarize: ", model.name, ": batch is ", options.batch, ", must be >= 1");
  const int size = ModelTraits<Model>::image_size(model, options.image_size, "summarize: ");
  Summary s{model.name, options.batch, size, model.parameter_count(), 0, {}};
  const Shape images{options.batch, 3, size, size};
  // The model as compile() hands it to the network: O0 runs no pass; O1-O3 share their fusion policy, which
  // decides the passes (BatchNorm folding for a ResNet), so the passes run once for the three.
  static_assert(std::is_same_v<O1::fusion, O2::fusion> && std::is_same_v<O1::fusion, O3::fusion>);
  Model compiled = model;
  ModelTraits<Model>::template run_passes<O1>(compiled, nullptr);
  s.levels.push_back(detail::level_memory<O0>(model, images, &s.macs_per_image));
  s.levels.push_back(detail::level_memory<O1>(compiled, images, nullptr));
  s.levels.push_back(detail::level_memory<O2>(compiled, images, nullptr));
  s.levels.push_back(detail::level_memory<O3>(compiled, images, nullptr));
  return s;
}

}  // namespace visopt::models

namespace visopt {

/// visopt::summary(model, batch): models::summarize for a batch at the model's default image size.
template <class Model>
models::Summary summary(const Model& model, int batch = 1) {
  return models::summarize(model, {.batch = batch});
}

}  // namespace visopt
