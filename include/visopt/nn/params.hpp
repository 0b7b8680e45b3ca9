#pragma once
// The fp32 parameter tree a model is built from: what models::resnet50(weights) returns before
// compile(). Passes (fold_batch_norm, ...) rewrite it; backends prepare their own copies from it.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "../core/tensor.hpp"
#include "op_specs.hpp"

namespace visopt::nn {

/// How many values these parameter tensors hold (an undefined tensor, e.g. an absent bias, holds none):
/// what a backend stores for them, in whatever precision it stores them.
template <class... Tensors>
std::int64_t values_of(const Tensors&... tensors) {
  return ((tensors.defined() ? tensors.numel() : std::int64_t{0}) + ... + std::int64_t{0});
}

/// The bytes of fp32 parameter tensors a backend keeps as it prepares them (engine.report()'s weights).
struct HeldFp32Parameters {
  std::size_t bytes = 0;
  template <class... Tensors>
  void add(const Tensors&... tensors) {
    bytes += static_cast<std::size_t>(values_of(tensors...)) * sizeof(float);
  }
};

struct Conv2dParams {
  Tensor weight;  // [K, C/groups, R, S]
  Tensor bias;    // [K], or undefined
  Conv2dGeometry geometry;
};

struct BatchNormParams {
  Tensor weight, bias, running_mean, running_var;  // each [C]
  float eps = 1e-5f;
};

struct LinearParams {
  Tensor weight;  // [out, in]
  Tensor bias;    // [out], or undefined
};

struct LayerNormParams {
  Tensor weight, bias;  // [D]
  float eps = 1e-6f;
};

/// conv -> BatchNorm (until fold_batch_norm removes it) -> activation.
struct ConvBnActParams {
  Conv2dParams conv;
  std::optional<BatchNormParams> bn;
  Activation activation = Activation::none;
};

/// torchvision's BasicBlock (ResNet-18/34) and Bottleneck (50/101/152): the last conv has no
/// activation; ReLU follows the residual add.
struct ResidualBlockParams {
  std::vector<ConvBnActParams> convs;  // 2 for BasicBlock, 3 for Bottleneck
  std::optional<ConvBnActParams> downsample;
};

struct PatchEmbedParams {
  Tensor weight;        // [D, C, p, p]
  Tensor bias;          // [D]
  Tensor prefix_tokens; // [T, D]: the class token, then DeiT's distillation token when T = 2
  Tensor position;      // [tokens, D], tokens = T + (H/p)*(W/p)
  int patch = 16;
};

struct MultiHeadAttentionParams {
  LinearParams qkv;   // [3D, D]: q | k | v
  LinearParams proj;  // [D, D]
  int heads = 1;
};

struct MlpParams {
  LinearParams fc1, fc2;
};

struct EncoderBlockParams {
  LayerNormParams norm1;
  MultiHeadAttentionParams attention;
  LayerNormParams norm2;
  MlpParams mlp;
};

}  // namespace visopt::nn
