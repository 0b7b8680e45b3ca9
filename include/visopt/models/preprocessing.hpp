#pragma once
// The evaluation transform a model's weights were trained with (docs/weights.md), as each family's
// traits say (models::ModelTraits<Model>::preprocess): torchvision's for ResNets and torchvision-named
// ViTs (shorter side to 256/224 of the crop, bilinear, ImageNet mean and std; ViT-L/16: 242), timm's for
// timm-named ViTs (shorter side to crop / 0.9, bicubic, mean and std 0.5), DeiT's (timm's geometry with
// ImageNet's mean and std).

#include <variant>

#include "../io/preprocess.hpp"
#include "registry.hpp"

namespace visopt::models {

/// `image_size`: the square input the engine runs at (a ResNet's CompileOptions::image_size; a
/// transformer's is fixed by its weights and this is ignored).
template <RegisteredModel Model>
io::Preprocess preprocess_for(const Model& model, int image_size = 224) {
  return ModelTraits<Model>::preprocess(model, image_size);
}

inline io::Preprocess preprocess_for(const AnyModel& model, int image_size = 224) {
  return std::visit([&](const auto& m) { return preprocess_for(m, image_size); }, model);
}

}  // namespace visopt::models
