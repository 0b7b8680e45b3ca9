#pragma once
// The model registry: the model types compile() knows (VISOPT_REGISTERED_MODELS) and the names a
// program takes on a command line or in a config file (name_rules). Every example, tool and the
// bench go through it, so that they accept the same names and an unknown one lists them all.
// Adding a family: its parameter header, its blocks, its network with models::ModelTraits, and a
// line here (a type in VISOPT_REGISTERED_MODELS if it is a new type, a rule in name_rules).
//
//   resnet18 resnet34 resnet50 resnet101 resnet152
//   vit_ti_16 vit_s_16 vit_s_32 vit_b_16 vit_b_32 vit_l_16 vit_l_32                     (torchvision's names)
//   vit_{tiny,small,base,large}_patch{16,32}_{224,384,...}[.tag]                         (timm's names)
//   deit_{ti,s,b}_16[_distilled], deit_{tiny,small,base}[_distilled]_patch16_<size>[.tag] (DeiT, timm's weights)

#include <array>
#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "../core/error.hpp"
#include "../io/safetensors.hpp"
#include "resnet.hpp"
#include "resnet_network.hpp"
#include "vit.hpp"
#include "vit_network.hpp"

/// Every model type compile() takes, for the code that must name them all (AnyModel, the CUDA engines'
/// instantiations): X(type) once per type.
#define VISOPT_REGISTERED_MODELS(X) X(::visopt::models::ResNet) X(::visopt::models::ViT)

namespace visopt::models {

namespace detail {
template <class... Models> struct variant_of;
template <class... Models> struct variant_of<void, Models...> {
  static_assert((RegisteredModel<Models> && ...), "visopt: a registered model type needs models::ModelTraits");
  using type = std::variant<Models...>;
};
#define VISOPT_DETAIL_MODEL_ALTERNATIVE(Model) , Model
}  // namespace detail

/// Any registered model: what a program that picks its model at run time holds.
using AnyModel = detail::variant_of<void VISOPT_REGISTERED_MODELS(VISOPT_DETAIL_MODEL_ALTERNATIVE)>::type;
#undef VISOPT_DETAIL_MODEL_ALTERNATIVE

/// What a model name means.
struct ModelSpec {
  std::string_view family = "resnet";  // "resnet", "vit" or "deit"
  bool vit = false;                    // a transformer (ViT or DeiT)
  int depth = 0;                       // ResNet
  ViTSize size = ViTSize::base;        // ViT, DeiT
  int patch = 16;
  bool distilled = false;              // DeiT's distillation token and head
  int image_size = 0;                  // timm names carry it; 0: from the weights (ViT) or the caller (ResNet)
};

/// Where a model's weights come from: a safetensors file, or seeded random weights.
using WeightSource = std::variant<const io::SafeTensors*, nn::RandomWeights>;

/// Calls `build(weights)` with the source as the family builders take it: an io::SafeTensors or nn::RandomWeights.
template <class F>
AnyModel with_weights(const WeightSource& source, F&& build) {
  return std::visit([&](const auto& s) -> AnyModel {
    if constexpr (std::is_pointer_v<std::decay_t<decltype(s)>>) return build(*s);
    else return build(s);
  }, source);
}

/// One family's names: `parse` claims a name (nullopt when the name is not this family's), `build` makes
/// the model; `names` says what it accepts, for the message an unknown name gets.
struct NameRule {
  std::string_view names;
  std::optional<ModelSpec> (*parse)(std::string_view name);
  AnyModel (*build)(const ModelSpec& spec, const WeightSource& weights, int image_size);
};

namespace detail {

inline int parse_positive(std::string_view text) {
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc{} && end == text.data() + text.size() && value > 0 ? value : 0;
}

inline std::optional<ViTSize> parse_vit_size(std::string_view size) {
  if (size == "ti" || size == "tiny") return ViTSize::tiny;
  if (size == "s" || size == "small") return ViTSize::small;
  if (size == "b" || size == "base") return ViTSize::base;
  if (size == "l" || size == "large") return ViTSize::large;
  return std::nullopt;
}

/// timm's "patch16_224" tail: fills patch and image size.
inline bool parse_timm_tail(std::string_view tail, ModelSpec& spec) {
  const auto underscore = tail.find('_');
  if (!tail.starts_with("patch") || underscore == std::string_view::npos) return false;
  spec.patch = parse_positive(tail.substr(5, underscore - 5));
  spec.image_size = parse_positive(tail.substr(underscore + 1));
  return spec.image_size != 0;
}

inline std::string_view without_tag(std::string_view name) {  // timm's pretrained tag after the dot
  const auto dot = name.find('.');
  return dot == std::string_view::npos ? name : name.substr(0, dot);
}

inline std::optional<ModelSpec> parse_resnet(std::string_view name) {
  if (!name.starts_with("resnet")) return std::nullopt;
  ModelSpec spec{.family = "resnet"};
  spec.depth = parse_positive(name.substr(6));
  if (spec.depth != 18 && spec.depth != 34 && spec.depth != 50 && spec.depth != 101 && spec.depth != 152) return std::nullopt;
  return spec;
}

/// vit_b_16 (torchvision) or vit_base_patch16_224[.tag] (timm).
inline std::optional<ModelSpec> parse_vit(std::string_view name) {
  if (!name.starts_with("vit_")) return std::nullopt;
  const std::string_view rest = without_tag(name.substr(4));
  const auto underscore = rest.find('_');
  if (underscore == std::string_view::npos) return std::nullopt;
  const std::string_view size = rest.substr(0, underscore), tail = rest.substr(underscore + 1);
  const auto parsed = parse_vit_size(size);
  if (!parsed) return std::nullopt;
  ModelSpec spec{.family = "vit", .vit = true, .size = *parsed};
  if (size.size() <= 2) {
    spec.patch = parse_positive(tail);
  } else if (!parse_timm_tail(tail, spec)) {
    return std::nullopt;
  }
  if (spec.patch != 16 && spec.patch != 32) return std::nullopt;
  return spec;
}

/// deit_s_16[_distilled] or timm's deit_small[_distilled]_patch16_224[.tag]; DeiT has tiny, small, base, patch 16.
inline std::optional<ModelSpec> parse_deit(std::string_view name) {
  if (!name.starts_with("deit_")) return std::nullopt;
  std::string_view rest = without_tag(name.substr(5));
  const auto underscore = rest.find('_');
  if (underscore == std::string_view::npos) return std::nullopt;
  const std::string_view size = rest.substr(0, underscore);
  std::string_view tail = rest.substr(underscore + 1);
  const auto parsed = parse_vit_size(size);
  if (!parsed || *parsed == ViTSize::large) return std::nullopt;
  ModelSpec spec{.family = "deit", .vit = true, .size = *parsed};
  if (size.size() <= 2) {  // deit_s_16[_distilled]
    if (tail.ends_with("_distilled")) {
      spec.distilled = true;
      tail.remove_suffix(10);
    }
    spec.patch = parse_positive(tail);
  } else {  // deit_small[_distilled]_patch16_224
    if (tail.starts_with("distilled_")) {
      spec.distilled = true;
      tail.remove_prefix(10);
    }
    if (!parse_timm_tail(tail, spec)) return std::nullopt;
  }
  if (spec.patch != 16) return std::nullopt;
  return spec;
}

inline AnyModel build_resnet(const ModelSpec& spec, const WeightSource& weights, int) {
  return with_weights(weights, [&](const auto& w) { return resnet(spec.depth, w); });
}
inline AnyModel build_vit(const ModelSpec& spec, const WeightSource& weights, int image_size) {
  const ViTOptions options{.image_size = image_size != 0 ? image_size : spec.image_size};
  return with_weights(weights, [&](const auto& w) { return vit(spec.size, spec.patch, w, options); });
}
inline AnyModel build_deit(const ModelSpec& spec, const WeightSource& weights, int image_size) {
  const ViTOptions options{.image_size = image_size != 0 ? image_size : spec.image_size};
  return with_weights(weights, [&](const auto& w) { return deit(spec.size, spec.patch, w, spec.distilled, options); });
}

}  // namespace detail

/// The registry of names, one rule per family.
inline constexpr std::array name_rules{
    NameRule{"resnet18, resnet34, resnet50, resnet101, resnet152", detail::parse_resnet, detail::build_resnet},
    NameRule{"vit_ti_16, vit_s_16, vit_s_32, vit_b_16, vit_b_32, vit_l_16, vit_l_32, or timm's "
             "vit_{tiny,small,base,large}_patch{16,32}_<image size>[.tag] (e.g. vit_base_patch16_224)",
             detail::parse_vit, detail::build_vit},
    NameRule{"deit_{ti,s,b}_16[_distilled], or timm's deit_{tiny,small,base}[_distilled]_patch16_<image size>[.tag]",
             detail::parse_deit, detail::build_deit},
};

/// Every accepted name, for help texts and errors.
inline const std::string& model_names() {
  static const std::string names = [] {
    std::string s;
    for (const NameRule& rule : name_rules) s += (s.empty() ? "" : "; ") + std::string(rule.names);
    return s;
  }();
  return names;
}

/// The rule that claims `name`, and what it means; throws visopt::Error listing the accepted names.
inline std::pair<const NameRule*, ModelSpec> find_model(std::string_view name) {
  for (const NameRule& rule : name_rules) {
    if (auto spec = rule.parse(name)) return {&rule, *spec};
  }
  throw Error(visopt::detail::concat("model '", name, "' is not one of ", model_names()));
}

/// Parses a model name; throws visopt::Error listing the accepted names for anything else.
inline ModelSpec parse_model_name(std::string_view name) { return find_model(name).second; }

/// Builds the named model from `weights` (an io::SafeTensors or nn::RandomWeights). `image_size`, when
/// not 0, is the transformer's image size (else the name's, else the weights'); ResNets take any size at compile().
template <class Weights>
AnyModel model_by_name(std::string_view name, const Weights& weights, int image_size = 0) {
  const auto [rule, spec] = find_model(name);
  if constexpr (std::is_same_v<Weights, nn::RandomWeights>) return rule->build(spec, WeightSource{weights}, image_size);
  else return rule->build(spec, WeightSource{&weights}, image_size);
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
