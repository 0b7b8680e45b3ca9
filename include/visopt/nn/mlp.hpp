#pragma once
// Mlp: the feed-forward half of a transformer block, fc1 -> GELU -> fc2, plus the block's residual.
// Under fusion::epilogue the GELU rides in fc1's epilogue and the residual in fc2's.

#include "../policy/policy.hpp"
#include "epilogue.hpp"
#include "params.hpp"

namespace visopt::nn {

template <PolicyBundle P, class Exec>
class Mlp {
  static constexpr bool fused = P::fusion::fuses_epilogue;

 public:
  Mlp(Exec& exec, const MlpParams& params)
      : fc1_(exec.prepare_linear(params.fc1, {fused ? Activation::gelu : Activation::none, false})),
        fc2_(exec.prepare_linear(params.fc2, {Activation::none, fused})) {}

  /// normed [B,L,D], residual [B,L,D] -> residual + fc2(gelu(fc1(normed)))
  Tensor forward(Exec& exec, const Tensor& normed, const Tensor& residual) const {
    if constexpr (fused) {
      return exec.linear(fc2_, exec.linear(fc1_, normed), &residual);
    } else {
      const Tensor hidden = exec.activation(exec.linear(fc1_, normed), Activation::gelu);
      return exec.add(exec.linear(fc2_, hidden), residual);
    }
  }

 private:
  typename Exec::Linear fc1_, fc2_;
};

}  // namespace visopt::nn
