#pragma once
// Vision Transformers (Ti/S/B/L, patch 16 or 32, class token) read from torchvision- or timm-named
// weights (detected from the file; docs/weights.md lists both), and DeiT (timm's names; the distilled
// variants add a distillation token and a second head whose logits are averaged with the first). The
// image size is any multiple of the patch whose token count matches the position embedding stored in
// the weights.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../nn/params.hpp"
#include "../nn/weights.hpp"

namespace visopt::models {

enum class ViTSize { tiny, small, base, large };

/// The naming scheme of the weights a ViT was read from; it also says which transform they expect
/// (models/preprocessing.hpp).
enum class WeightNaming { torchvision, timm };

/// Which recipe trained the transformer: it decides the expected preprocessing (models/preprocessing.hpp)
/// and the names (a DeiT is always timm-named).
enum class ViTFamily { vit, deit };

struct ViTOptions {
  int image_size = 0;  // 0: the square size the position embedding was trained for (224 for random weights)
};

struct ViT {
  std::string name;  // "vit_b_16", "deit_s_16_distilled"
  int image_size = 224, patch = 16, hidden = 768, depth = 12, heads = 12, mlp_dim = 3072, num_classes = 1000;
  WeightNaming naming = WeightNaming::torchvision;
  ViTFamily family = ViTFamily::vit;
  bool distilled = false;  // DeiT's distillation token and head_dist: logits = (head(class) + head_dist(dist)) / 2
  nn::PatchEmbedParams embed;
  std::vector<nn::EncoderBlockParams> blocks;
  nn::LayerNormParams norm;
  nn::LinearParams head;
  nn::LinearParams head_dist;  // distilled only

  std::int64_t parameter_count() const {
    auto linear = [](const nn::LinearParams& l) { return l.weight.numel() + l.bias.numel(); };
    auto norm = [](const nn::LayerNormParams& l) { return l.weight.numel() + l.bias.numel(); };
    std::int64_t n = embed.weight.numel() + embed.bias.numel() + embed.prefix_tokens.numel() + embed.position.numel() +
                     norm(this->norm) + linear(head) + (distilled ? linear(head_dist) : 0);
    for (const auto& b : blocks) {
      n += norm(b.norm1) + norm(b.norm2) + linear(b.attention.qkv) + linear(b.attention.proj) + linear(b.mlp.fc1) +
           linear(b.mlp.fc2);
    }
    return n;
  }

  /// Class token (and distillation token), then one per patch.
  int prefix_tokens() const { return distilled ? 2 : 1; }
  int tokens() const { return (image_size / patch) * (image_size / patch) + prefix_tokens(); }
};

namespace detail {

struct ViTShape {
  const char* letter;
  int hidden, depth, heads, mlp_dim;
};

inline ViTShape vit_shape(ViTSize size) {
  switch (size) {
    case ViTSize::tiny: return {"ti", 192, 12, 3, 768};
    case ViTSize::small: return {"s", 384, 12, 6, 1536};
    case ViTSize::base: return {"b", 768, 12, 12, 3072};
    case ViTSize::large: return {"l", 1024, 24, 16, 4096};
  }
  return {"b", 768, 12, 12, 3072};
}

/// The two naming schemes a ViT checkpoint comes in.
struct ViTNames {
  bool timm;
  std::string patch, class_token, position, final_norm, head;
  std::string block(int i) const {
    return timm ? "blocks." + std::to_string(i) + "." : "encoder.layers.encoder_layer_" + std::to_string(i) + ".";
  }
  std::string norm1() const { return timm ? "norm1" : "ln_1"; }
  std::string norm2() const { return timm ? "norm2" : "ln_2"; }
  std::string qkv_weight() const { return timm ? "attn.qkv.weight" : "self_attention.in_proj_weight"; }
  std::string qkv_bias() const { return timm ? "attn.qkv.bias" : "self_attention.in_proj_bias"; }
  std::string proj() const { return timm ? "attn.proj" : "self_attention.out_proj"; }
  std::string fc1() const { return timm ? "mlp.fc1" : "mlp.0"; }
  std::string fc2() const { return timm ? "mlp.fc2" : "mlp.3"; }
};

inline ViTNames vit_names(bool timm) {
  if (timm) return {true, "patch_embed.proj", "cls_token", "pos_embed", "norm", "head"};
  return {false, "conv_proj", "class_token", "encoder.pos_embedding", "encoder.ln", "heads.head"};
}

inline nn::LinearParams read_linear(nn::WeightReader& r, const std::string& weight, const std::string& bias,
                                    std::int64_t out, std::int64_t in) {
  return {r.take(weight, {out, in}, nn::ParamKind::linear_weight), r.take(bias, {out}, nn::ParamKind::bias)};
}

inline nn::LayerNormParams read_layer_norm(nn::WeightReader& r, const std::string& prefix, std::int64_t d) {
  return {r.take(prefix + ".weight", {d}, nn::ParamKind::norm_weight), r.take(prefix + ".bias", {d}, nn::ParamKind::norm_bias),
          1e-6f};
}

}  // namespace detail

namespace detail {
inline std::string vit_model_name(ViTSize size, int patch, ViTFamily family = ViTFamily::vit, bool distilled = false) {
  return std::string(family == ViTFamily::deit ? "deit_" : "vit_") + vit_shape(size).letter + "_" + std::to_string(patch) +
         (distilled ? "_distilled" : "");
}

/// Builds a transformer of the given family, size and patch. Throws visopt::Error naming any missing,
/// extra or mis-shaped tensor, or an image size that does not match the position embedding.
inline ViT build_vit(ViTSize size, int patch, nn::WeightReader reader, ViTOptions options, ViTFamily family, bool distilled) {
  const detail::ViTShape s = detail::vit_shape(size);
  ViT net;
  net.name = vit_model_name(size, patch, family, distilled);
  net.family = family;
  net.distilled = distilled;
  require(patch == 16 || patch == 32, net.name, ": patch size ", patch, " is not 16 or 32");
  net.patch = patch;
  net.hidden = s.hidden;
  net.depth = s.depth;
  net.heads = s.heads;
  net.mlp_dim = s.mlp_dim;
  const detail::ViTNames names =
      detail::vit_names(family == ViTFamily::deit || (reader.contains("cls_token") && reader.from_file()));
  net.naming = names.timm ? WeightNaming::timm : WeightNaming::torchvision;
  require(distilled || !reader.contains("dist_token") || !reader.from_file(), net.name, ": the weights hold 'dist_token' (and ",
          "'head_dist'): they are a distilled DeiT's; load them as deit_<size>_", patch, "_distilled (models::deit(size, ", patch,
          ", weights, true))");
  require(!distilled || reader.contains("dist_token"), net.name, ": the weights hold no 'dist_token': they are not a ",
          "distilled DeiT's; load them as deit_<size>_", patch, " (a DeiT without distillation) or as a ViT");
  const std::int64_t d = s.hidden;

  // The stored position embedding fixes the token count, hence the image size.
  std::int64_t stored_tokens = 0;
  if (const auto shape = reader.stored_shape(names.position); shape && shape->rank() == 3) stored_tokens = (*shape)[1];
  if (options.image_size == 0) {
    const auto grid = static_cast<int>(
        std::lround(std::sqrt(static_cast<double>(std::max<std::int64_t>(stored_tokens - net.prefix_tokens(), 0)))));
    options.image_size = stored_tokens > 0 ? grid * patch : 224;
  }
  require(options.image_size > 0 && options.image_size % patch == 0, net.name, ": image size ", options.image_size,
          " is not a positive multiple of the patch size ", patch);
  net.image_size = options.image_size;
  require(stored_tokens == 0 || stored_tokens == net.tokens(), net.name, ": image size ", net.image_size, " needs ",
          net.tokens(), " position embeddings, but '", names.position, "' holds ", stored_tokens,
          " (the weights were made for another image size)");

  net.embed.patch = patch;
  net.embed.weight = reader.take(names.patch + ".weight", {d, 3, patch, patch}, nn::ParamKind::conv_weight);
  net.embed.bias = reader.take(names.patch + ".bias", {d}, nn::ParamKind::bias);
  net.embed.prefix_tokens = reader.take(names.class_token, {1, 1, d}, nn::ParamKind::embedding).reshaped({1, d});
  if (distilled) {
    const Tensor distillation = reader.take("dist_token", {1, 1, d}, nn::ParamKind::embedding);
    Tensor both = Tensor::empty({2, d});
    std::copy_n(net.embed.prefix_tokens.data_as<float>(), d, both.data_as<float>());
    std::copy_n(distillation.data_as<float>(), d, both.data_as<float>() + d);
    net.embed.prefix_tokens = both;
  }
  net.embed.position = reader.take(names.position, {1, net.tokens(), d}, nn::ParamKind::embedding).reshaped({net.tokens(), d});

  for (int i = 0; i < s.depth; ++i) {
    const std::string b = names.block(i);
    nn::EncoderBlockParams block;
    block.norm1 = detail::read_layer_norm(reader, b + names.norm1(), d);
    block.attention.qkv = {reader.take(b + names.qkv_weight(), {3 * d, d}, nn::ParamKind::linear_weight),
                           reader.take(b + names.qkv_bias(), {3 * d}, nn::ParamKind::bias)};
    block.attention.proj = detail::read_linear(reader, b + names.proj() + ".weight", b + names.proj() + ".bias", d, d);
    block.attention.heads = s.heads;
    block.norm2 = detail::read_layer_norm(reader, b + names.norm2(), d);
    block.mlp.fc1 = detail::read_linear(reader, b + names.fc1() + ".weight", b + names.fc1() + ".bias", s.mlp_dim, d);
    block.mlp.fc2 = detail::read_linear(reader, b + names.fc2() + ".weight", b + names.fc2() + ".bias", d, s.mlp_dim);
    net.blocks.push_back(std::move(block));
  }
  net.norm = detail::read_layer_norm(reader, names.final_norm, d);
  const auto head_shape = reader.stored_shape(names.head + ".weight");
  net.num_classes = head_shape && head_shape->rank() == 2 ? static_cast<int>((*head_shape)[0]) : 1000;
  net.head = detail::read_linear(reader, names.head + ".weight", names.head + ".bias", net.num_classes, d);
  if (distilled) net.head_dist = detail::read_linear(reader, "head_dist.weight", "head_dist.bias", net.num_classes, d);
  reader.finish();
  return net;
}
}  // namespace detail

/// Builds a ViT of the given size and patch (torchvision's or timm's names, detected from the file).
inline ViT vit(ViTSize size, int patch, nn::WeightReader reader, ViTOptions options = {}) {
  return detail::build_vit(size, patch, std::move(reader), options, ViTFamily::vit, false);
}

inline ViT vit(ViTSize size, int patch, const io::SafeTensors& weights, ViTOptions options = {}) {
  return vit(size, patch, nn::WeightReader(weights, detail::vit_model_name(size, patch)), options);
}
inline ViT vit(ViTSize size, int patch, nn::RandomWeights random, ViTOptions options = {}) {
  return vit(size, patch, nn::WeightReader(random, detail::vit_model_name(size, patch)), options);
}

/// A DeiT (timm's names): `distilled` reads the distillation token and head_dist (deit_*_distilled_*),
/// else it is a ViT trained by DeiT's recipe (its own preprocessing). DeiT comes in tiny, small and base.
inline ViT deit(ViTSize size, int patch, nn::WeightReader reader, bool distilled, ViTOptions options = {}) {
  require(size != ViTSize::large, "deit: DeiT comes in tiny, small and base, not large");
  return detail::build_vit(size, patch, std::move(reader), options, ViTFamily::deit, distilled);
}
inline ViT deit(ViTSize size, int patch, const io::SafeTensors& weights, bool distilled, ViTOptions options = {}) {
  return deit(size, patch, nn::WeightReader(weights, detail::vit_model_name(size, patch, ViTFamily::deit, distilled)), distilled, options);
}
inline ViT deit(ViTSize size, int patch, nn::RandomWeights random, bool distilled, ViTOptions options = {}) {
  return deit(size, patch, nn::WeightReader(random, detail::vit_model_name(size, patch, ViTFamily::deit, distilled)), distilled, options);
}

template <class W> ViT vit_ti_16(const W& w, ViTOptions o = {}) { return vit(ViTSize::tiny, 16, w, o); }
template <class W> ViT vit_s_16(const W& w, ViTOptions o = {}) { return vit(ViTSize::small, 16, w, o); }
template <class W> ViT vit_s_32(const W& w, ViTOptions o = {}) { return vit(ViTSize::small, 32, w, o); }
template <class W> ViT vit_b_16(const W& w, ViTOptions o = {}) { return vit(ViTSize::base, 16, w, o); }
template <class W> ViT vit_b_32(const W& w, ViTOptions o = {}) { return vit(ViTSize::base, 32, w, o); }
template <class W> ViT vit_l_16(const W& w, ViTOptions o = {}) { return vit(ViTSize::large, 16, w, o); }
template <class W> ViT vit_l_32(const W& w, ViTOptions o = {}) { return vit(ViTSize::large, 32, w, o); }

}  // namespace visopt::models
