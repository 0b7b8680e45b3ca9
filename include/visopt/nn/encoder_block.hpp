#pragma once
// EncoderBlock: one pre-norm transformer layer, x + attention(norm1(x)), then + mlp(norm2(x)),
// as torchvision's EncoderBlock and timm's Block compute it.

#include "attention.hpp"
#include "mlp.hpp"

namespace visopt::nn {

template <PolicyBundle P, class Exec>
class EncoderBlock {
 public:
  EncoderBlock(Exec& exec, const EncoderBlockParams& params)
      : norm1_(exec.prepare_layer_norm(params.norm1)),
        attention_(exec, params.attention),
        norm2_(exec.prepare_layer_norm(params.norm2)),
        mlp_(exec, params.mlp) {}

  Tensor forward(Exec& exec, const Tensor& x) const {
    const Tensor after_attention = attention_.forward(exec, exec.layer_norm(norm1_, x), x);
    return mlp_.forward(exec, exec.layer_norm(norm2_, after_attention), after_attention);
  }

 private:
  typename Exec::LayerNorm norm1_;
  MultiHeadAttention<P, Exec> attention_;
  typename Exec::LayerNorm norm2_;
  Mlp<P, Exec> mlp_;
};

}  // namespace visopt::nn
