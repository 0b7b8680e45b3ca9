#pragma once
// What an operation is, independent of who computes it: the activation kinds, the convolution
// geometry and the output-shape rules (PyTorch's) that every backend and every nn:: block share,
// so that a shape is validated once and the same way everywhere.

#include <cstdint>
#include <string_view>

#include "visopt/core/error.hpp"
#include "visopt/core/shape.hpp"

namespace visopt::nn {

/// The activations an epilogue can apply. gelu is the exact erf form, 0.5·x·(1 + erf(x/√2)),
/// as in torch.nn.GELU() (approximate='none'), which torchvision's and timm's ViTs use.
enum class Activation { none, relu, gelu };

constexpr std::string_view activation_name(Activation act) {
  switch (act) {
    case Activation::none: return "none";
    case Activation::relu: return "relu";
    case Activation::gelu: return "gelu";
  }
  return "?";
}

/// torch.nn.Conv2d's geometry: stride, zero padding and dilation per axis, and channel groups.
struct Conv2dGeometry {
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
  int dilation_h = 1, dilation_w = 1;
  int groups = 1;
};

/// The output shape [N,K,P,Q] of a convolution of `input` [N,C,H,W] with `weight` [K,C/groups,R,S].
/// Throws visopt::Error, prefixed with `where`, when the shapes or the geometry cannot go together.
inline Shape conv2d_output_shape(const Shape& input, const Shape& weight, const Conv2dGeometry& g,
                                 std::string_view where = "conv2d") {
  require(input.rank() == 4, where, ": input has shape ", input, ", expected rank 4 [N,C,H,W]");
  require(weight.rank() == 4, where, ": weight has shape ", weight, ", expected rank 4 [K,C/groups,R,S]");
  require(g.stride_h >= 1 && g.stride_w >= 1, where, ": stride (", g.stride_h, ",", g.stride_w, ") must be >= 1");
  require(g.dilation_h >= 1 && g.dilation_w >= 1, where, ": dilation (", g.dilation_h, ",", g.dilation_w,
          ") must be >= 1");
  require(g.pad_h >= 0 && g.pad_w >= 0, where, ": padding (", g.pad_h, ",", g.pad_w, ") must be >= 0");
  require(g.groups >= 1, where, ": groups is ", g.groups, ", must be >= 1");
  const std::int64_t n = input[0], c = input[1], h = input[2], w = input[3];
  const std::int64_t k = weight[0], r = weight[2], s = weight[3];
  require(c % g.groups == 0, where, ": input has shape ", input, ", whose C=", c, " is not divisible by groups=",
          g.groups);
  require(k % g.groups == 0, where, ": weight has shape ", weight, ", whose K=", k,
          " is not divisible by groups=", g.groups);
  require(weight[1] * g.groups == c, where, ": input has shape ", input, ", weight ", weight, " expects C=",
          weight[1] * g.groups, " channels (", weight[1], " per group x groups=", g.groups, ")");
  require(k >= 1 && r >= 1 && s >= 1, where, ": weight has shape ", weight, ", with an empty extent");
  const std::int64_t span_h = (r - 1) * g.dilation_h + 1, span_w = (s - 1) * g.dilation_w + 1;
  const std::int64_t padded_h = h + 2 * std::int64_t{g.pad_h}, padded_w = w + 2 * std::int64_t{g.pad_w};
  require(span_h <= padded_h && span_w <= padded_w, where, ": input has shape ", input, ", padded to ",
          padded_h, "x", padded_w, ", smaller than the dilated kernel ", span_h, "x", span_w, " of weight ", weight);
  return Shape{n, k, (padded_h - span_h) / g.stride_h + 1, (padded_w - span_w) / g.stride_w + 1};
}

/// The output shape of torch.nn.MaxPool2d(kernel, stride, padding) (floor mode, square window) on
/// `input` [N,C,H,W]. Like PyTorch, padding may be at most kernel/2, so no window lies wholly in padding.
inline Shape pool2d_output_shape(const Shape& input, int kernel, int stride, int padding,
                                 std::string_view where = "pool2d") {
  require(input.rank() == 4, where, ": input has shape ", input, ", expected rank 4 [N,C,H,W]");
  require(kernel >= 1 && stride >= 1, where, ": kernel ", kernel, " and stride ", stride, " must be >= 1");
  require(padding >= 0 && 2 * padding <= kernel, where, ": padding ", padding,
          " must be between 0 and half the kernel (", kernel, ")");
  const std::int64_t padded_h = input[2] + 2 * std::int64_t{padding}, padded_w = input[3] + 2 * std::int64_t{padding};
  require(kernel <= padded_h && kernel <= padded_w, where, ": input has shape ", input, ", padded to ", padded_h,
          "x", padded_w, ", smaller than the kernel ", kernel, "x", kernel);
  return Shape{input[0], input[1], (padded_h - kernel) / stride + 1, (padded_w - kernel) / stride + 1};
}

}  // namespace visopt::nn
