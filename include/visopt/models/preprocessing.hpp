#pragma once
// The evaluation transform a model's weights were trained with, chosen from the model and the naming of
// its weights (docs/weights.md): torchvision's for ResNets and torchvision-named ViTs (shorter side to
// 256/224 of the crop, bilinear, ImageNet mean and std; ViT-L/16: 242), timm's for timm-named ViTs
// (shorter side to crop / 0.9, bicubic, mean and std 0.5).

#include "../io/preprocess.hpp"
#include "by_name.hpp"

namespace visopt::models {

/// `image_size`: the square input the engine runs at (a ResNet's CompileOptions::image_size).
inline io::Preprocess preprocess_for(const ResNet&, int image_size = 224) { return io::torchvision_transform(image_size); }

inline io::Preprocess preprocess_for(const ViT& model) {
  if (model.naming == WeightNaming::timm) return io::timm_transform(model.image_size);
  io::Preprocess transform = io::torchvision_transform(model.image_size);
  if (model.hidden == 1024 && model.patch == 16) transform.resize = model.image_size * 242 / 224;  // torchvision's ViT_L_16_Weights
  return transform;
}

inline io::Preprocess preprocess_for(const AnyModel& model, int image_size = 224) {
  return std::visit([&](const auto& m) {
    if constexpr (std::is_same_v<std::decay_t<decltype(m)>, ResNet>) return preprocess_for(m, image_size);
    else return preprocess_for(m);
  }, model);
}

}  // namespace visopt::models
