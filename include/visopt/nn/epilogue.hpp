#pragma once
// What a convolution or GEMM does to its result before writing it, when fusion puts that work in
// the same kernel. The two orders differ, as they do in the networks: ResNet adds the shortcut
// before its ReLU; a transformer adds the residual after the MLP's GELU.

#include "op_specs.hpp"

namespace visopt::nn {

// A residual handed to an executor with an epilogue is consumed: the executor may write the result
// over the residual's memory (oneDNN's sum post-op does), so callers pass only shortcuts they no
// longer need (ResidualBlock and EncoderBlock do).

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
