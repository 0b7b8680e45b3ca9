#pragma once
// The executable ViT (and DeiT): patch embedding, encoder blocks and the class-token head (with DeiT's
// distillation head) instantiated for one
// policy bundle and backend executor, built by compile() from models/vit.hpp's parameter tree.

#include <vector>

#include "../nn/classifier_head.hpp"
#include "../nn/encoder_block.hpp"
#include "../nn/patch_embed.hpp"
#include "../services/network.hpp"
#include "traits.hpp"
#include "vit.hpp"

namespace visopt::models {

template <PolicyBundle P, class Exec>
class ViTNetwork final : public runtime::Network<Exec> {
 public:
  ViTNetwork(Exec& exec, const ViT& model)
      : name_(model.name),
        image_size_(model.image_size),
        embed_(exec, model.embed),
        head_(exec, model.head, nn::Pooling::class_token, &model.norm, model.distilled ? &model.head_dist : nullptr) {
    for (const auto& block : model.blocks) blocks_.emplace_back(exec, block);
  }

  Tensor forward(Exec& exec, const Tensor& images) const override {
    Tensor x = embed_.forward(exec, images);
    for (const auto& block : blocks_) x = block.forward(exec, x);
    return head_.forward(exec, x);
  }

  void check_input(const TensorView& images, int max_batch) const override {
    runtime::check_image_batch(images, max_batch, name_, image_size_, image_size_);
  }

 private:
  std::string name_;
  int image_size_;
  nn::PatchEmbed<P, Exec> embed_;
  std::vector<nn::EncoderBlock<P, Exec>> blocks_;
  nn::ClassifierHead<P, Exec> head_;
};

template <>
struct ModelTraits<ViT> {
  static constexpr std::string_view family = "vit";
  template <PolicyBundle P, class Exec>
  using Network = ViTNetwork<P, Exec>;
  static constexpr std::string_view fused_epilogue = "GELU in fc1's epilogue; residual adds in the output projection and fc2";

  /// Fixed by the weights (the position embedding): `requested` must be 0 or that size.
  static int image_size(const ViT& model, int requested, std::string_view who) {
    require(requested == 0 || requested == model.image_size, who, model.name, ": image size ", requested,
            " asked, but the model's weights fix it at ", model.image_size);
    return model.image_size;
  }
  /// No pass rewrites a transformer's parameters; its epilogues are fused as the blocks are built.
  template <PolicyBundle Level>
  static void run_passes(ViT&, runtime::Report*) {}
  /// The transform the weights were trained with: torchvision's (ViT-L/16: resize 242), timm's for
  /// timm-named ViTs (bicubic, crop 0.9, mean and std 0.5), DeiT's (bicubic, crop 0.9, ImageNet's).
  static io::Preprocess preprocess(const ViT& model, int /*image_size: fixed*/) {
    if (model.family == ViTFamily::deit) return io::deit_transform(model.image_size);
    if (model.naming == WeightNaming::timm) return io::timm_transform(model.image_size);
    io::Preprocess transform = io::torchvision_transform(model.image_size);
    if (model.hidden == 1024 && model.patch == 16) transform.resize = model.image_size * 242 / 224;  // torchvision's ViT_L_16_Weights
    return transform;
  }
};

}  // namespace visopt::models
