#pragma once
// What the int8 layers of a quantized level (O4) share: weights quantized once per output channel,
// and the accumulator-domain bias and output scales oneDNN 2.x wants (the quantize step that turns a
// floating activation into the s8/u8 tensor its int8 consumer reads is a reorder, make_reorder).
//
// oneDNN 2.x computes an int8 convolution or matmul as dst = output_scale · (Σ x_q·w_q + bias), then the
// post-ops, then rounds and saturates to dst's type. With x = x_q·x_step and w = w_q·w_step[o], the
// real result x·w + b is x_step·w_step[o]·(Σ x_q·w_q + b / (x_step·w_step[o])): the bias is divided by
// both steps and the output scale is x_step·w_step[o], divided by y_step when the output is quantized.

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "primitive.hpp"

namespace visopt::backend::onednn {

/// A weight [O, ...] as s8 with one step per output channel: w ≈ values · steps[o], steps[o] = max|w[o]|/127.
struct ChannelQuantizedWeights {
  Tensor values;             // s8, the weight's shape
  std::vector<float> steps;  // [O]

  static ChannelQuantizedWeights of(const Tensor& weight) {
    require(weight.dtype() == DType::f32 && weight.rank() >= 2, "onednn int8: weight of shape ", weight.shape(),
            " must be f32 [O, ...]");
    const std::int64_t rows = weight.dim(0), per_row = weight.numel() / rows;
    ChannelQuantizedWeights q{Tensor::empty(weight.shape(), DType::s8), std::vector<float>(static_cast<std::size_t>(rows))};
    const float* w = weight.data_as<float>();
    auto* out = q.values.data_as<std::int8_t>();
    for (std::int64_t o = 0; o < rows; ++o) {
      float top = 0.0f;
      for (std::int64_t i = 0; i < per_row; ++i) top = std::max(top, std::fabs(w[o * per_row + i]));
      const float step = top > 0.0f ? top / 127.0f : 1.0f;  // an all-zero row stays zero at any step
      q.steps[static_cast<std::size_t>(o)] = step;
      for (std::int64_t i = 0; i < per_row; ++i) {
        out[o * per_row + i] = static_cast<std::int8_t>(std::clamp(std::nearbyint(w[o * per_row + i] / step), -127.0f, 127.0f));
      }
    }
    return q;
  }
};

/// The output scales and accumulator-domain bias of an int8 layer for outputs [first, first + count)
/// (a plane of a split output), input step `x_step` and output step `y_step` (0: a floating output).
struct Int8Epilogue {
  std::vector<float> output_scales;
  Tensor bias;  // f32 [count], or undefined when the layer has none

  static Int8Epilogue of(const ChannelQuantizedWeights& w, const Tensor& bias, std::int64_t first, std::int64_t count,
                         float x_step, float y_step) {
    Int8Epilogue e;
    e.output_scales.resize(static_cast<std::size_t>(count));
    if (bias.defined()) e.bias = Tensor::empty({count});
    for (std::int64_t o = 0; o < count; ++o) {
      const float accumulator_step = x_step * w.steps[static_cast<std::size_t>(first + o)];
      e.output_scales[static_cast<std::size_t>(o)] = y_step > 0.0f ? accumulator_step / y_step : accumulator_step;
      if (bias.defined()) e.bias.data_as<float>()[o] = bias.data_as<float>()[first + o] / accumulator_step;
    }
    return e;
  }
};

/// What an operation with weights (convolution, linear) keeps for its int8 primitives: its weight
/// quantized at the first one, and the accumulator-domain biases their Steps bind, alive as long as it.
class Int8Weights {
 public:
  /// The step of y (0: a floating output) for a primitive reading x: when x is s8/u8, checks that x and
  /// a quantized y carry their steps and quantizes `weight` the first time.
  float output_step(const Tensor& weight, const TensorView& x, const TensorView& y, const std::string& what) {
    const float y_step = is_quantized(y.dtype()) ? y.quantization().step : 0.0f;
    if (!is_quantized(x.dtype())) return y_step;
    require(x.quantization().defined() && (y_step > 0.0f || !is_quantized(y.dtype())), "onednn::", what,
            ": an int8 primitive needs the steps of its quantized input and output");
    if (!weights_) weights_ = ChannelQuantizedWeights::of(weight);
    return y_step;
  }

  /// Whether a primitive made so far reads s8/u8 input (for the report).
  bool made() const { return weights_.has_value(); }
  const ChannelQuantizedWeights& weights() const { return *weights_; }

  /// Int8Epilogue::of on the quantized weight; its bias stays alive here for the Step that binds it.
  Int8Epilogue epilogue(const Tensor& bias, std::int64_t first, std::int64_t count, float x_step, float y_step) {
    Int8Epilogue e = Int8Epilogue::of(*weights_, bias, first, count, x_step, y_step);
    if (e.bias.defined()) biases_.push_back(e.bias);
    return e;
  }

 private:
  std::optional<ChannelQuantizedWeights> weights_;
  std::vector<Tensor> biases_;
};

}  // namespace visopt::backend::onednn
