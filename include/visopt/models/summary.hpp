#pragma once
// summarize(model): what a model costs before anything runs: parameters, multiply-adds per image, and
// weight and activation memory for a batch at each level O0-O3. It walks the real network code with a
// shape-only executor, so the count follows exactly the operations compile() would run.

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

#include "../nn/epilogue.hpp"
#include "../nn/op_specs.hpp"
#include "../nn/operations.hpp"
#include "../nn/params.hpp"
#include "../policy/levels.hpp"
#include "../services/memory_plan.hpp"
#include "resnet.hpp"
#include "resnet_network.hpp"
#include "vit.hpp"
#include "traits.hpp"
#include "vit_network.hpp"

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

/// Bytes per value of a precision policy as weights and activations are stored: 2 for the 16-bit
/// formats (a CPU without bf16 runs `half` in fp32, at twice this), 4 otherwise (tf32 is stored as fp32).
template <PrecisionPolicy Precision>
constexpr std::size_t storage_bytes() {
  return precision::is_reduced_v<Precision> ? 2 : 4;
}

/// A backend executor that computes nothing: every operation returns a tensor with the right shape and
/// no storage, counts its multiply-adds, and records when its activation is made and released. The
/// nn:: blocks drive it exactly as they drive a real backend, so fusion decisions follow the level.
template <PolicyBundle P>
class ShapeExecutor {
 public:
  struct Conv {
    Shape weight;
    nn::Conv2dGeometry geometry;
  };
  struct BatchNorm {};
  struct Linear {
    Shape weight;  // [N, K]
  };
  struct LayerNorm {};
  struct PatchEmbed {
    Linear projection;
    int patch = 16;
    std::int64_t prefix = 1;  // class (and distillation) tokens
  };

  ShapeExecutor() : state_(std::make_shared<State>()) {}

  // ---- what compile() prepares: the weights, in the level's storage precision ----
  Conv prepare_conv(const nn::Conv2dParams& p, nn::ConvEpilogue) {
    add_weights(p.weight, p.bias);
    return {p.weight.shape(), p.geometry};
  }
  BatchNorm prepare_batch_norm(const nn::BatchNormParams& p) {
    add_weights(p.weight, p.bias, p.running_mean, p.running_var);
    return {};
  }
  Linear prepare_linear(const nn::LinearParams& p, nn::LinearEpilogue) {
    add_weights(p.weight, p.bias);
    return {p.weight.shape()};
  }
  LayerNorm prepare_layer_norm(const nn::LayerNormParams& p) {
    add_weights(p.weight, p.bias);
    return {};
  }
  PatchEmbed prepare_patch_embed(const nn::PatchEmbedParams& p) {
    add_weights(p.weight, p.bias, p.prefix_tokens, p.position);
    const auto d = p.weight.dim(0);
    return {{Shape{d, p.weight.numel() / d}}, p.patch, p.prefix_tokens.dim(0)};
  }

  // ---- what run() computes: shapes, multiply-adds and activation lifetimes ----
  /// The copy of the input images every backend makes into its own memory.
  Tensor input(const Shape& images) { return allocate(images); }

  Tensor conv2d(const Conv& c, const Tensor& x, const Tensor* = nullptr) {
    const Shape out = nn::conv2d_output_shape(x.shape(), c.weight, c.geometry, "summary: conv2d");
    state_->macs += out[0] * out[2] * out[3] * c.weight.numel();
    return allocate(out);
  }
  Tensor batch_norm(const BatchNorm&, const Tensor& x) { return allocate(x.shape()); }
  Tensor activation(const Tensor& x, nn::Activation) { return allocate(x.shape()); }
  Tensor add(const Tensor& a, const Tensor&) { return allocate(a.shape()); }
  Tensor max_pool2d(const Tensor& x, int kernel, int stride, int padding) {
    return allocate(nn::pool2d_output_shape(x.shape(), kernel, stride, padding, "summary: max_pool2d"));
  }
  Tensor global_avg_pool(const Tensor& x) { return allocate({x.dim(0), x.dim(1), 1, 1}).reshaped({x.dim(0), x.dim(1)}); }
  Tensor linear(const Linear& l, const Tensor& x, const Tensor* = nullptr) {
    Shape out = x.shape();
    out[out.rank() - 1] = l.weight[0];
    state_->macs += x.numel() / x.dim(x.rank() - 1) * l.weight.numel();
    return allocate(out);
  }
  Tensor layer_norm(const LayerNorm&, const Tensor& x) { return allocate(x.shape()); }
  void prepare_attention(int /*heads*/) {}
  /// x [B, L, K] -> its qkv projection [B, L, 3D] -> [B, L, D]: Q·Kᵀ and P·V, each L×L×D multiply-adds per image.
  Tensor self_attention(const Linear& qkv, const Tensor& x, int heads) { return attention(linear(qkv, x), heads); }
  Tensor attention(const Tensor& qkv, int /*heads*/) {
    const auto b = qkv.dim(0), l = qkv.dim(1), d = qkv.dim(2) / 3;
    state_->macs += 2 * b * l * l * d;
    return allocate({b, l, d});
  }
  Tensor patch_embed(const PatchEmbed& e, const Tensor& x) {
    const auto n = x.dim(0), grid = (x.dim(2) / e.patch) * (x.dim(3) / e.patch);
    const Tensor patches = allocate({n, grid, e.projection.weight[1]});
    const Tensor projected = linear(e.projection, patches);
    return allocate({n, grid + e.prefix, e.projection.weight[0]});
  }
  Tensor select_token(const Tensor& x, std::int64_t /*index*/) { return allocate({x.dim(0), x.dim(2)}); }

  std::size_t weight_bytes() const { return state_->weight_bytes; }
  std::int64_t multiply_adds() const { return state_->macs; }
  /// Every activation of the passes so far; call once their tensors are gone.
  const std::vector<runtime::PlannedBuffer>& buffers() const { return state_->buffers; }

 private:
  struct State {
    std::vector<runtime::PlannedBuffer> buffers;
    std::size_t events = 0, weight_bytes = 0;
    std::int64_t macs = 0;
  };

  template <class... Tensors>
  void add_weights(const Tensors&... tensors) {
    state_->weight_bytes += static_cast<std::size_t>(nn::values_of(tensors...)) * storage_bytes<typename P::precision>();
  }

  /// A tensor of `shape` whose storage is a token: when its last handle dies the buffer's lifetime ends.
  Tensor allocate(const Shape& shape) {
    static unsigned char no_data;  // never read or written: only shapes flow through this executor
    const std::size_t index = state_->buffers.size();
    const auto bytes = std::max<std::size_t>(static_cast<std::size_t>(shape.numel()) * storage_bytes<typename P::precision>(), 1);
    state_->buffers.push_back({bytes, state_->events++, 0, 0});
    std::shared_ptr<void> token(&no_data, [state = state_, index](void*) { state->buffers[index].last = state->events++; });
    return Tensor(std::move(token), TensorView(&no_data, DType::f32, shape));
  }

  std::shared_ptr<State> state_;
};
static_assert(nn::check_operations<ShapeExecutor<O0>>());  // the same contract the backends meet

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
  using Network = typename ModelTraits<Model>::template Network<Level, ShapeExecutor<Level>>;
  ShapeExecutor<Level> exec;
  {
    Network network(exec, model);
    const Tensor x = exec.input(images);
    const Tensor logits = network.forward(exec, x);
  }
  if (macs_per_image) *macs_per_image = exec.multiply_adds() / images[0];
  const std::size_t activations = Level::execution::static_plan
                                      ? [&] { auto b = exec.buffers(); return runtime::assign_offsets(b); }()
                                      : pool_reserved_bytes(exec.buffers());
  return {std::string(Level::name), std::string(Level::precision::name), exec.weight_bytes(), activations};
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
