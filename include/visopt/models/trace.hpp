#pragma once
// trace<Level>(model, images): the lifecycle's first stage. A Tracer is an executor that computes
// nothing: every operation returns a tensor with the right shape and no storage and is recorded in a
// runtime::Trace (services/trace.hpp) with its shapes and multiply-adds, and every activation's size and
// lifetime is kept. The nn:: blocks drive it exactly as they drive a real backend, so the trace follows
// the level's fusion decisions. compile() validates it against the backend before preparing anything;
// summarize() reads multiply-adds and memory from it.

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../nn/epilogue.hpp"
#include "../nn/op_specs.hpp"
#include "../nn/operations.hpp"
#include "../nn/params.hpp"
#include "../policy/levels.hpp"
#include "../services/trace.hpp"
#include "resnet_network.hpp"
#include "traits.hpp"
#include "vit_network.hpp"

namespace visopt::models {

/// Bytes per value of a precision policy as weights and activations are stored: 2 for the 16-bit
/// formats (a CPU without bf16 runs `half` in fp32, at twice this), 4 otherwise (tf32 is stored as fp32).
template <PrecisionPolicy Precision>
constexpr std::size_t storage_bytes() {
  return precision::is_reduced_v<Precision> ? 2 : 4;
}

/// The executor that traces: shapes, multiply-adds and activation lifetimes, no arithmetic.
template <PolicyBundle P>
class Tracer {
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

  Tracer() : state_(std::make_shared<State>()) {}

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
  void prepare_attention(int /*heads*/) {}

  // ---- what run() computes: shapes, multiply-adds and activation lifetimes ----
  /// The copy of the input images every backend makes into its own memory.
  Tensor input(const Shape& images) { return allocate(images); }

  Tensor conv2d(const Conv& c, const Tensor& x, const Tensor* residual = nullptr) {
    const Shape out = nn::conv2d_output_shape(x.shape(), c.weight, c.geometry, "trace: conv2d");
    return record("conv2d", {&x, residual}, out, out[0] * out[2] * out[3] * c.weight.numel());
  }
  Tensor batch_norm(const BatchNorm&, const Tensor& x) { return record("batch_norm", {&x}, x.shape()); }
  Tensor activation(const Tensor& x, nn::Activation) { return record("activation", {&x}, x.shape()); }
  Tensor add(const Tensor& a, const Tensor& b) { return record("add", {&a, &b}, a.shape()); }
  Tensor max_pool2d(const Tensor& x, int kernel, int stride, int padding) {
    return record("max_pool2d", {&x}, nn::pool2d_output_shape(x.shape(), kernel, stride, padding, "trace: max_pool2d"));
  }
  Tensor global_avg_pool(const Tensor& x) {
    return record("global_avg_pool", {&x}, Shape{x.dim(0), x.dim(1), 1, 1}).reshaped({x.dim(0), x.dim(1)});
  }
  Tensor linear(const Linear& l, const Tensor& x, const Tensor* residual = nullptr) {
    Shape out = x.shape();
    out[out.rank() - 1] = l.weight[0];
    return record("linear", {&x, residual}, out, x.numel() / x.dim(x.rank() - 1) * l.weight.numel());
  }
  Tensor layer_norm(const LayerNorm&, const Tensor& x) { return record("layer_norm", {&x}, x.shape()); }
  /// x [B, L, K] -> its qkv projection [B, L, 3D] -> [B, L, D]: Q·Kᵀ and P·V, each L×L×D multiply-adds per image.
  Tensor self_attention(const Linear& qkv, const Tensor& x, int heads) { return attention(linear(qkv, x), heads); }
  Tensor attention(const Tensor& qkv, int heads) {
    const auto b = qkv.dim(0), l = qkv.dim(1), d = qkv.dim(2) / 3;
    Tensor y = record("attention", {&qkv}, Shape{b, l, d}, 2 * b * l * l * d);
    state_->trace.operations.back().heads = heads;
    return y;
  }
  Tensor patch_embed(const PatchEmbed& e, const Tensor& x) {
    const auto n = x.dim(0), grid = (x.dim(2) / e.patch) * (x.dim(3) / e.patch);
    require(x.dim(2) % e.patch == 0 && x.dim(3) % e.patch == 0, "trace: patch_embed: images ", x.shape(),
            " do not split into ", e.patch, "x", e.patch, " patches");
    const Tensor patches = record("patchify", {&x}, Shape{n, grid, e.projection.weight[1]});
    const Tensor projected = linear(e.projection, patches);
    return record("assemble_tokens", {&projected}, Shape{n, grid + e.prefix, e.projection.weight[0]});
  }
  Tensor select_token(const Tensor& x, std::int64_t /*index*/) { return record("select_token", {&x}, Shape{x.dim(0), x.dim(2)}); }

  /// The trace, taken once every tensor of the pass is gone (its buffers' lifetimes are then complete).
  runtime::Trace take() { return std::move(state_->trace); }

 private:
  struct State {
    runtime::Trace trace;
    std::size_t events = 0;
  };

  /// Records an operation reading `inputs` (a null pointer: an absent residual) and returns its output.
  Tensor record(const char* kind, std::initializer_list<const Tensor*> inputs, const Shape& out, std::int64_t macs = 0) {
    runtime::TracedOperation op{kind, {}, out, macs, 0};
    for (const Tensor* t : inputs) {
      if (t != nullptr) op.inputs.push_back(t->shape());
    }
    state_->trace.operations.push_back(std::move(op));
    return allocate(out);
  }

  template <class... Tensors>
  void add_weights(const Tensors&... tensors) {
    state_->trace.weight_bytes += static_cast<std::size_t>(nn::values_of(tensors...)) * storage_bytes<typename P::precision>();
  }

  /// A tensor of `shape` whose storage is a token: when its last handle dies the buffer's lifetime ends.
  Tensor allocate(const Shape& shape) {
    static unsigned char no_data;  // never read or written: only shapes flow through this executor
    auto& buffers = state_->trace.buffers;
    const std::size_t index = buffers.size();
    const auto bytes = std::max<std::size_t>(static_cast<std::size_t>(shape.numel()) * storage_bytes<typename P::precision>(), 1);
    buffers.push_back({bytes, state_->events++, 0, 0});
    std::shared_ptr<void> token(&no_data, [state = state_, index](void*) {
      if (index < state->trace.buffers.size()) state->trace.buffers[index].last = state->events++;
    });
    return Tensor(std::move(token), TensorView(&no_data, DType::f32, shape));
  }

  std::shared_ptr<State> state_;
};
static_assert(nn::check_operations<Tracer<O0>>());  // the same contract the backends meet

/// The forward of `model` (as compile() hands it to the network: the level's passes already run) at
/// input shape `images` under Level: its operations, multiply-adds, weight bytes and activation
/// lifetimes. A shape the model cannot take is a visopt::Error naming the operation.
template <PolicyBundle Level, RegisteredModel Model>
runtime::Trace trace(const Model& model, const Shape& images) {
  using Network = typename ModelTraits<Model>::template Network<Level, Tracer<Level>>;
  Tracer<Level> tracer;
  {
    Network network(tracer, model);
    const Tensor x = tracer.input(images);
    const Tensor logits = network.forward(tracer, x);
  }
  runtime::Trace t = tracer.take();
  t.model = model.name;
  t.level = std::string(Level::name);
  t.input = images;
  return t;
}

}  // namespace visopt::models
