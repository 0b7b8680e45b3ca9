#pragma once
// ConvBnAct: convolution, BatchNorm (unless folded), optional residual add, activation. Under
// fusion::epilogue it is one backend call (bias, shortcut and ReLU in the conv's epilogue); otherwise
// each step is its own operation, as O0 requires.

#include "../policy/policy.hpp"
#include "epilogue.hpp"
#include "params.hpp"

namespace visopt::nn {

template <PolicyBundle P, class Exec>
class ConvBnAct {
 public:
  /// `takes_residual`: forward() will be given a shortcut to add before `after_residual` is applied
  /// (the last conv of a residual block; its own activation must then be none).
  ConvBnAct(Exec& exec, const ConvBnActParams& params, bool takes_residual = false,
            Activation after_residual = Activation::none)
      : activation_(params.activation), after_residual_(after_residual), takes_residual_(takes_residual) {
    require(!takes_residual || params.activation == Activation::none,
            "nn::ConvBnAct: a conv that takes a residual applies its activation after the add");
    fused_ = P::fusion::fuses_epilogue && !params.bn;
    ConvEpilogue epilogue;
    if (fused_) epilogue = {takes_residual, takes_residual ? after_residual : params.activation};
    conv_ = exec.prepare_conv(params.conv, epilogue);
    if (params.bn) bn_ = exec.prepare_batch_norm(*params.bn);
  }

  Tensor forward(Exec& exec, const Tensor& x, const Tensor* residual = nullptr) const {
    require((residual != nullptr) == takes_residual_, "nn::ConvBnAct: residual ", residual ? "given" : "missing",
            " for a conv prepared ", takes_residual_ ? "with" : "without", " one");
    if (fused_) return exec.conv2d(conv_, x, residual);
    Tensor y = exec.conv2d(conv_, x);
    if (bn_) y = exec.batch_norm(*bn_, y);
    if (activation_ != Activation::none) y = exec.activation(y, activation_);
    if (residual) {
      y = exec.add(y, *residual);
      if (after_residual_ != Activation::none) y = exec.activation(y, after_residual_);
    }
    return y;
  }

 private:
  typename Exec::Conv conv_;
  std::optional<typename Exec::BatchNorm> bn_;
  Activation activation_, after_residual_;
  bool takes_residual_ = false, fused_ = false;
};

}  // namespace visopt::nn
