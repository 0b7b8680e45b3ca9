#pragma once
// ResNet-18/34/50/101/152 as torchvision builds them (V1.5: the stride sits on the 3×3 conv of a
// Bottleneck), read from torchvision-named weights. This is the fp32 parameter tree; compile() turns
// it into an executable network (models/resnet_network.hpp).

#include <array>
#include <string>
#include <vector>

#include "../nn/params.hpp"
#include "../nn/weights.hpp"

namespace visopt::models {

struct ResNet {
  std::string name;  // "resnet50"
  int depth = 50;
  bool bottleneck = true;
  int num_classes = 1000;
  nn::ConvBnActParams stem;                              // conv1 7×7/2 + bn1 + relu (then max pool 3×3/2)
  std::vector<std::vector<nn::ResidualBlockParams>> stages;  // layer1..layer4
  nn::LinearParams fc;

  /// Learnable parameters as PyTorch counts them (BatchNorm running statistics are buffers, not parameters).
  std::int64_t parameter_count() const {
    std::int64_t n = fc.weight.numel() + fc.bias.numel();
    auto count = [&](const nn::ConvBnActParams& p) {
      n += p.conv.weight.numel() + (p.conv.bias.defined() ? p.conv.bias.numel() : 0);
      if (p.bn) n += p.bn->weight.numel() + p.bn->bias.numel();
    };
    count(stem);
    for (const auto& stage : stages) {
      for (const auto& block : stage) {
        for (const auto& conv : block.convs) count(conv);
        if (block.downsample) count(*block.downsample);
      }
    }
    return n;
  }

  /// Calls f(nn::ConvBnActParams&) for every conv of the network, shortcuts included.
  template <class F>
  void for_each_conv(F&& f) {
    f(stem);
    for (auto& stage : stages) {
      for (auto& block : stage) {
        for (auto& conv : block.convs) f(conv);
        if (block.downsample) f(*block.downsample);
      }
    }
  }
};

namespace detail {

struct ResNetLayout {
  bool bottleneck;
  std::array<int, 4> blocks;
};

inline ResNetLayout resnet_layout(int depth) {
  switch (depth) {
    case 18: return {false, {2, 2, 2, 2}};
    case 34: return {false, {3, 4, 6, 3}};
    case 50: return {true, {3, 4, 6, 3}};
    case 101: return {true, {3, 4, 23, 3}};
    case 152: return {true, {3, 8, 36, 3}};
    default: break;
  }
  fail(visopt::detail::concat("models::resnet: depth ", depth, " is not one of 18, 34, 50, 101, 152"));
}

inline nn::ConvBnActParams read_conv_bn(nn::WeightReader& reader, const std::string& conv, const std::string& bn,
                                        std::int64_t in, std::int64_t out, int kernel, int stride, int padding,
                                        nn::Activation activation) {
  nn::ConvBnActParams p;
  p.conv.weight = reader.take(conv + ".weight", {out, in, kernel, kernel}, nn::ParamKind::conv_weight);
  p.conv.geometry.stride_h = p.conv.geometry.stride_w = stride;
  p.conv.geometry.pad_h = p.conv.geometry.pad_w = padding;
  nn::BatchNormParams b;
  b.weight = reader.take(bn + ".weight", {out}, nn::ParamKind::norm_weight);
  b.bias = reader.take(bn + ".bias", {out}, nn::ParamKind::norm_bias);
  b.running_mean = reader.take(bn + ".running_mean", {out}, nn::ParamKind::running_mean);
  b.running_var = reader.take(bn + ".running_var", {out}, nn::ParamKind::running_var);
  p.bn = std::move(b);
  p.activation = activation;
  return p;
}

}  // namespace detail

/// Builds resnet{depth} from torchvision-named weights; the class count comes from fc.weight.
/// Throws visopt::Error naming any missing, extra or mis-shaped tensor.
inline ResNet resnet(int depth, nn::WeightReader reader) {
  const detail::ResNetLayout layout = detail::resnet_layout(depth);
  ResNet net;
  net.name = "resnet" + std::to_string(depth);
  net.depth = depth;
  net.bottleneck = layout.bottleneck;
  const int expansion = layout.bottleneck ? 4 : 1;
  const auto relu = nn::Activation::relu;

  net.stem = detail::read_conv_bn(reader, "conv1", "bn1", 3, 64, 7, 2, 3, relu);
  std::int64_t in = 64;
  for (int s = 0; s < 4; ++s) {
    const std::int64_t width = 64LL << s;
    std::vector<nn::ResidualBlockParams> stage;
    for (int b = 0; b < layout.blocks[static_cast<std::size_t>(s)]; ++b) {
      const std::string prefix = "layer" + std::to_string(s + 1) + "." + std::to_string(b) + ".";
      const int stride = (b == 0 && s > 0) ? 2 : 1;
      nn::ResidualBlockParams block;
      auto conv = [&](int i, std::int64_t cin, std::int64_t cout, int k, int st, nn::Activation act) {
        const std::string n = std::to_string(i);
        block.convs.push_back(detail::read_conv_bn(reader, prefix + "conv" + n, prefix + "bn" + n, cin, cout, k, st, k / 2, act));
      };
      if (layout.bottleneck) {
        conv(1, in, width, 1, 1, relu);
        conv(2, width, width, 3, stride, relu);
        conv(3, width, width * expansion, 1, 1, nn::Activation::none);
      } else {
        conv(1, in, width, 3, stride, relu);
        conv(2, width, width, 3, 1, nn::Activation::none);
      }
      if (stride != 1 || in != width * expansion) {
        block.downsample = detail::read_conv_bn(reader, prefix + "downsample.0", prefix + "downsample.1", in,
                                                width * expansion, 1, stride, 0, nn::Activation::none);
      }
      in = width * expansion;
      stage.push_back(std::move(block));
    }
    net.stages.push_back(std::move(stage));
  }
  const auto fc_shape = reader.stored_shape("fc.weight");
  net.num_classes = fc_shape && fc_shape->rank() == 2 ? static_cast<int>((*fc_shape)[0]) : 1000;
  net.fc.weight = reader.take("fc.weight", {net.num_classes, in}, nn::ParamKind::linear_weight);
  net.fc.bias = reader.take("fc.bias", {net.num_classes}, nn::ParamKind::bias);
  reader.finish();
  return net;
}

inline ResNet resnet(int depth, const io::SafeTensors& weights) {
  return resnet(depth, nn::WeightReader(weights, "resnet" + std::to_string(depth)));
}
inline ResNet resnet(int depth, nn::RandomWeights random) {
  return resnet(depth, nn::WeightReader(random, "resnet" + std::to_string(depth)));
}

template <class Weights> ResNet resnet18(const Weights& w) { return resnet(18, w); }
template <class Weights> ResNet resnet34(const Weights& w) { return resnet(34, w); }
template <class Weights> ResNet resnet50(const Weights& w) { return resnet(50, w); }
template <class Weights> ResNet resnet101(const Weights& w) { return resnet(101, w); }
template <class Weights> ResNet resnet152(const Weights& w) { return resnet(152, w); }

}  // namespace visopt::models
