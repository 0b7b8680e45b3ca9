#pragma once
// The executable ViT: patch embedding, encoder blocks and the class-token head instantiated for one
// policy bundle and backend executor, built by compile() from models/vit.hpp's parameter tree.

#include <vector>

#include "../nn/classifier_head.hpp"
#include "../nn/encoder_block.hpp"
#include "../nn/patch_embed.hpp"
#include "../runtime/network.hpp"
#include "vit.hpp"

namespace visopt::models {

template <PolicyBundle P, class Exec>
class ViTNetwork final : public runtime::Network<Exec> {
 public:
  ViTNetwork(Exec& exec, const ViT& model)
      : name_(model.name),
        image_size_(model.image_size),
        embed_(exec, model.embed),
        head_(exec, model.head, nn::Pooling::class_token, &model.norm) {
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

}  // namespace visopt::models
