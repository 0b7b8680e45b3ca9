#pragma once
// What a convolution or GEMM does to its result before writing it, when fusion puts that work in
// the same kernel. The two orders differ, as they do in the networks: ResNet adds the shortcut
// before its ReLU; a transformer adds the residual after the MLP's GELU.

#include "op_specs.hpp"

namespace visopt::nn {

/// y = activation(conv(x, w) + bias + residual)
struct ConvEpilogue {
  bool residual = false;
  Activation activation = Activation::none;
};

/// y = activation(x·wᵀ + bias) + residual
struct LinearEpilogue {
  Activation activation = Activation::none;
  bool residual = false;
};

}  // namespace visopt::nn
