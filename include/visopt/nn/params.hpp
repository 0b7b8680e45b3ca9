#pragma once
// The fp32 parameter tree a model is built from: what models::resnet50(weights) returns before
// compile(). Passes (fold_batch_norm, ...) rewrite it; backends prepare their own copies from it.

#include <optional>
#include <vector>

#include "../core/tensor.hpp"
#include "op_specs.hpp"

namespace visopt::nn {

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
  Tensor class_token;   // [D]
  Tensor position;      // [tokens, D], tokens = (H/p)*(W/p) + 1
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
