#pragma once
// MultiHeadAttention: the self-attention half of a transformer block, qkv projection -> scaled dot
// product attention per head -> output projection, with the block's residual added in the output
// projection's epilogue when fusion allows.

#include "../policy/policy.hpp"
#include "epilogue.hpp"
#include "params.hpp"

namespace visopt::nn {

template <PolicyBundle P, class Exec>
class MultiHeadAttention {
 public:
  MultiHeadAttention(Exec& exec, const MultiHeadAttentionParams& params)
      : qkv_(exec.prepare_linear(params.qkv, {})),
        proj_(exec.prepare_linear(params.proj, {Activation::none, P::fusion::fuses_epilogue})),
        heads_(params.heads) {
    exec.prepare_attention(heads_);  // CUDA checks here that its attention kernel runs on this GPU
  }

  /// normed [B,L,D], residual [B,L,D] -> residual + attention(normed)
  Tensor forward(Exec& exec, const Tensor& normed, const Tensor& residual) const {
    const Tensor mixed = attend(exec, normed);
    if constexpr (P::fusion::fuses_epilogue) {
      return exec.linear(proj_, mixed, &residual);
    } else {
      return exec.add(exec.linear(proj_, mixed), residual);
    }
  }

 private:
  /// normed [B,L,D] -> attention over the heads of its qkv projection (the executor decides whether the
  /// packed [B,L,3D] qkv is ever made: oneDNN writes q, k and v as separate planes).
  Tensor attend(Exec& exec, const Tensor& normed) const { return exec.self_attention(qkv_, normed, heads_); }

  typename Exec::Linear qkv_, proj_;
  int heads_;
};

}  // namespace visopt::nn
