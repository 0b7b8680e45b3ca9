#pragma once
// Models by name, for programs that take one on a command line or in a config file: visopt's (and
// torchvision's) names and timm's. One parser, so that every example and tool accepts the same names
// and an unknown one lists them all.
//
//   resnet18 resnet34 resnet50 resnet101 resnet152
//   vit_ti_16 vit_s_16 vit_s_32 vit_b_16 vit_b_32 vit_l_16 vit_l_32                     (torchvision's names)
//   vit_{tiny,small,base,large}_patch{16,32}_{224,384,...}[.tag]                         (timm's names)

#include <charconv>
#include <string>
#include <string_view>
#include <variant>

#include "../core/error.hpp"
#include "../io/safetensors.hpp"
#include "resnet.hpp"
#include "vit.hpp"

namespace visopt::models {

using AnyModel = std::variant<ResNet, ViT>;

inline constexpr std::string_view model_names =
    "resnet18, resnet34, resnet50, resnet101, resnet152, vit_ti_16, vit_s_16, vit_s_32, vit_b_16, vit_b_32, vit_l_16, "
    "vit_l_32, or timm's vit_{tiny,small,base,large}_patch{16,32}_<image size>[.tag] (e.g. vit_base_patch16_224)";

/// What a model name means.
struct ModelSpec {
  bool vit = false;
  int depth = 0;                    // ResNet
  ViTSize size = ViTSize::base;     // ViT
  int patch = 16;
  int image_size = 0;               // timm names carry it; 0: from the weights (ViT) or the caller (ResNet)
};

namespace detail {
inline int parse_positive(std::string_view text) {
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc{} && end == text.data() + text.size() && value > 0 ? value : 0;
}
}  // namespace detail

/// Parses a model name; throws visopt::Error listing the accepted names for anything else.
inline ModelSpec parse_model_name(std::string_view name) {
  const auto unknown = [&] { return Error(visopt::detail::concat("model '", name, "' is not one of ", model_names)); };
  ModelSpec spec;
  if (name.starts_with("resnet")) {
    spec.depth = detail::parse_positive(name.substr(6));
    if (spec.depth != 18 && spec.depth != 34 && spec.depth != 50 && spec.depth != 101 && spec.depth != 152) throw unknown();
    return spec;
  }
  spec.vit = true;
  if (!name.starts_with("vit_")) throw unknown();
  std::string_view rest = name.substr(4);
  if (const auto dot = rest.find('.'); dot != std::string_view::npos) rest = rest.substr(0, dot);  // timm's pretrained tag
  const auto underscore = rest.find('_');
  if (underscore == std::string_view::npos) throw unknown();
  const std::string_view size = rest.substr(0, underscore), tail = rest.substr(underscore + 1);
  if (size == "ti" || size == "tiny") spec.size = ViTSize::tiny;
  else if (size == "s" || size == "small") spec.size = ViTSize::small;
  else if (size == "b" || size == "base") spec.size = ViTSize::base;
  else if (size == "l" || size == "large") spec.size = ViTSize::large;
  else throw unknown();
  if (size.size() <= 2) {  // torchvision's: vit_b_16
    spec.patch = detail::parse_positive(tail);
  } else {  // timm's: vit_base_patch16_224
    const auto second = tail.find('_');
    if (!tail.starts_with("patch") || second == std::string_view::npos) throw unknown();
    spec.patch = detail::parse_positive(tail.substr(5, second - 5));
    spec.image_size = detail::parse_positive(tail.substr(second + 1));
    if (spec.image_size == 0) throw unknown();
  }
  if (spec.patch != 16 && spec.patch != 32) throw unknown();
  return spec;
}

/// Builds the named model from `weights` (an io::SafeTensors or nn::RandomWeights). `image_size`, when
/// not 0, is the ViT's image size (else the name's, else the weights'); ResNets take any size at compile().
template <class Weights>
AnyModel model_by_name(std::string_view name, const Weights& weights, int image_size = 0) {
  const ModelSpec spec = parse_model_name(name);
  if (!spec.vit) return resnet(spec.depth, weights);
  return vit(spec.size, spec.patch, weights, {.image_size = image_size != 0 ? image_size : spec.image_size});
}

/// The named model with its weights read from the safetensors file `weights_path`, or seeded random
/// weights (nn::RandomWeights{seed}) when the path is empty: what a program taking --model and --weights
/// does. The model holds copies of its tensors, so the file is closed again. `image_size` as model_by_name.
inline AnyModel load_model(std::string_view name, const std::string& weights_path, std::uint64_t seed = 0, int image_size = 0) {
  if (weights_path.empty()) return model_by_name(name, nn::RandomWeights{seed}, image_size);
  const io::SafeTensors weights = io::SafeTensors::open(weights_path);
  return model_by_name(name, weights, image_size);
}

/// The model's name ("resnet50", "vit_b_16") and its class count, whichever family it is.
inline const std::string& name_of(const AnyModel& model) {
  return std::visit([](const auto& m) -> const std::string& { return m.name; }, model);
}
inline int num_classes_of(const AnyModel& model) {
  return std::visit([](const auto& m) { return m.num_classes; }, model);
}

}  // namespace visopt::models
