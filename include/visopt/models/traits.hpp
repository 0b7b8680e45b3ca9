#pragma once
// What compile(), summary() and the tools need to know of a model family, in one place per family:
// models::ModelTraits<Model>, specialised next to the family's network (resnet_network.hpp,
// vit_network.hpp). Adding a family is its parameter header, its blocks, its network with these traits,
// and one line in models/registry.hpp.

#include <concepts>
#include <string_view>

#include "../io/preprocess.hpp"
#include "../policy/levels.hpp"
#include "../policy/policy.hpp"
#include "../services/report.hpp"

namespace visopt::models {

template <class Model>
struct ModelTraits;  // specialised by each family

/// A family's traits, as compile() and summary() call them.
template <class Model> concept RegisteredModel = requires(Model& model, const Model& cmodel, runtime::Report* report) {
  { ModelTraits<Model>::family } -> std::convertible_to<std::string_view>;
  // template <PolicyBundle P, class Exec> using Network = ...;  the executable network on one executor
  { ModelTraits<Model>::image_size(cmodel, 0, "") } -> std::same_as<int>;
  { ModelTraits<Model>::template run_passes<O1>(model, report) };
  { ModelTraits<Model>::fused_epilogue } -> std::convertible_to<std::string_view>;
  { ModelTraits<Model>::preprocess(cmodel, 224) } -> std::same_as<io::Preprocess>;
  { cmodel.parameter_count() } -> std::convertible_to<std::int64_t>;
  { cmodel.name } -> std::convertible_to<std::string>;
};

}  // namespace visopt::models
