#pragma once
// Where a model's parameters come from: a safetensors file (torchvision or timm names) or seeded
// random values for demos. WeightReader hands them to a model builder by name and shape, and at the
// end insists that the file held nothing the model did not use (a file for another model fails).

#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <variant>

#include "../core/tensor.hpp"
#include "../io/safetensors.hpp"

namespace visopt::nn {

/// How a parameter is used; RandomWeights picks its initialisation from it.
enum class ParamKind { conv_weight, linear_weight, bias, norm_weight, norm_bias, running_mean, running_var, embedding };

/// Seeded, well-scaled random parameters (He-normal convolutions, identity BatchNorm): a model that
/// runs with nothing downloaded. Deterministic for a given seed with the same standard library.
struct RandomWeights {
  std::uint64_t seed = 0;
};

class WeightReader {
 public:
  WeightReader(const io::SafeTensors& file, std::string model_name) : source_(&file), model_(std::move(model_name)) {}
  WeightReader(RandomWeights random, std::string model_name)
      : source_(random), model_(std::move(model_name)), generator_(random.seed) {}

  bool from_file() const { return std::holds_alternative<const io::SafeTensors*>(source_); }
  const std::string& model_name() const { return model_; }

  /// Whether the source holds `name` (random weights hold everything).
  bool contains(const std::string& name) const { return !from_file() || file().contains(name); }

  /// The shape stored under `name`, when the source is a file that has it.
  std::optional<Shape> stored_shape(const std::string& name) const {
    if (!from_file() || !file().contains(name)) return std::nullopt;
    return file().info(name).shape;
  }

  /// The fp32 parameter `name` with the shape the model expects.
  Tensor take(const std::string& name, const Shape& expected, ParamKind kind) {
    if (!from_file()) return random_tensor(expected, kind);
    require(file().contains(name), model_, ": weights '", file().source(), "' lack tensor '", name, "' (shape ",
            expected.to_string(), "); is this a weights file for ", model_, "?");
    used_.insert(name);
    return file().load(name, expected, DType::f32);
  }

  /// Throws when the file holds tensors the model did not take (BatchNorm's num_batches_tracked
  /// counters are training state and are allowed).
  void finish() const {
    if (!from_file()) return;
    std::string unused;
    int count = 0;
    for (const std::string& name : file().names()) {
      if (used_.count(name) || name.ends_with("num_batches_tracked")) continue;
      if (count < 5) unused += (count ? ", '" : "'") + name + "'";
      ++count;
    }
    require(count == 0, model_, ": weights '", file().source(), "' hold ", count, " tensor(s) the model does not use (",
            unused, count > 5 ? ", ..." : "", "); is this a weights file for ", model_, "?");
  }

 private:
  const io::SafeTensors& file() const { return *std::get<const io::SafeTensors*>(source_); }

  Tensor random_tensor(const Shape& shape, ParamKind kind) {
    Tensor t = Tensor::empty(shape);
    float* p = t.data_as<float>();
    const auto n = t.numel();
    auto fill = [&](float value) { std::fill(p, p + n, value); };
    auto normal = [&](double stddev) {
      std::normal_distribution<float> dist(0.0f, static_cast<float>(stddev));
      for (std::int64_t i = 0; i < n; ++i) p[i] = dist(generator_);
    };
    const double fan_in = shape.rank() > 1 ? static_cast<double>(n / shape[0]) : 1.0;
    switch (kind) {
      case ParamKind::conv_weight: normal(std::sqrt(2.0 / fan_in)); break;
      case ParamKind::linear_weight: normal(std::sqrt(1.0 / fan_in)); break;
      case ParamKind::embedding: normal(0.02); break;
      case ParamKind::norm_weight:
      case ParamKind::running_var: fill(1.0f); break;
      case ParamKind::bias:
      case ParamKind::norm_bias:
      case ParamKind::running_mean: fill(0.0f); break;
    }
    return t;
  }

  std::variant<const io::SafeTensors*, RandomWeights> source_;
  std::string model_;
  std::mt19937_64 generator_{0};
  std::set<std::string> used_;
};

}  // namespace visopt::nn

namespace visopt::models {
using nn::RandomWeights;  // models::resnet50(models::RandomWeights{seed}) reads naturally
}  // namespace visopt::models
