#pragma once
// Calibration for the quantized levels (O4, precision::int8, precision::fp8): the range of every
// activation an 8-bit layer reads or writes, measured by running calibration images through the fp32 model
// (visopt::calibrate, runtime/calibrate.hpp) and reduced to one clipping value per tensor by the max
// or a percentile of |x|. Weights need no calibration: their scales are per output channel, from the
// weights themselves. A Calibration is saved as JSON (save/load) and inside saved plans (Engine::save).
//
// Tensors are named by the operation that writes them, numbered in the order the network prepares its
// operations ("conv.12", "linear.3", "layer_norm.4"; "attention.3" is the attention whose q, k and v
// linear.3 projects), with the weight shape alongside so that a calibration made for another model is
// an error naming the first operation that differs, not a silently wrong scale.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "atomic_file.hpp"

namespace visopt::runtime {

enum class CalibrationMethod {
  max,         // the largest |x| seen: nothing clipped, coarser steps
  percentile,  // the given percentile of |x| over all images: rare outliers clipped, finer steps
  mse,         // the clip with the least mean squared error over all values seen (rounding plus clipping)
};

struct CalibrationOptions {
  CalibrationMethod method = CalibrationMethod::mse;
  double percentile = 99.99;  // of |x| per tensor, for CalibrationMethod::percentile (50..100)
  int batch = 8;              // images per calibration forward
  int num_threads = 0;        // CPU threads; 0 = as compile() decides (VISOPT_NUM_THREADS, else OpenMP's default)
};

/// The distribution of |x| of one tensor over all calibration images: its largest value and a histogram
/// whose range doubles (merging bins pairwise) whenever a larger value arrives, so it holds every image
/// in fixed memory and percentiles are exact to one bin (1/2048 of the range).
class RangeObserver {
 public:
  static constexpr std::size_t bins = 2048;

  void observe(const float* values, std::size_t count) {
    float top = 0.0f;
    bool negative = false;
    for (std::size_t i = 0; i < count; ++i) {
      top = std::max(top, std::fabs(values[i]));
      negative = negative || values[i] < 0.0f;
    }
    require(std::isfinite(top), "calibrate: a tensor holds inf or NaN; calibration needs finite activations");
    non_negative_ = non_negative_ && !negative;
    amax_ = std::max(amax_, top);
    if (counts_.empty()) {
      counts_.assign(bins, 0);
      limit_ = top > 0.0f ? top : 1.0f;
    }
    while (top >= limit_) grow();
    const float per_bin = static_cast<float>(bins) / limit_;
    for (std::size_t i = 0; i < count; ++i) {
      const auto bin = static_cast<std::size_t>(std::fabs(values[i]) * per_bin);
      ++counts_[std::min(bin, bins - 1)];
    }
    total_ += count;
  }

  float amax() const { return amax_; }
  bool non_negative() const { return non_negative_; }
  bool empty() const { return total_ == 0; }

  /// The clip (a bin edge, at most amax()) whose quantization to `levels` steps above zero has the least
  /// mean squared error over the values seen: values below it round (error step²/12), values above
  /// it are clipped (error (|x| - clip)², taking each bin's values at its centre).
  float least_squared_error_clip(int levels) const {
    if (total_ == 0) return 0.0f;
    const float width = limit_ / static_cast<float>(bins);
    std::size_t last = bins;
    while (last > 1 && counts_[last - 1] == 0) --last;
    double best_error = -1.0;
    float best = amax_;
    for (std::size_t edge = std::max<std::size_t>(1, last / 16); edge <= last; ++edge) {
      const double clip = static_cast<double>(width) * static_cast<double>(edge), step = clip / levels;
      double error = 0.0, below = 0.0;
      for (std::size_t b = 0; b < last; ++b) {
        if (b < edge) {
          below += static_cast<double>(counts_[b]);
        } else {
          const double excess = (static_cast<double>(b) + 0.5) * width - clip;
          error += static_cast<double>(counts_[b]) * excess * excess;
        }
      }
      error += below * step * step / 12.0;
      if (best_error < 0.0 || error < best_error) {
        best_error = error;
        best = static_cast<float>(clip);
      }
    }
    return std::min(best, amax_);
  }

  /// The |x| below which `percent` of the values lie (the upper edge of its bin, at most amax()).
  float percentile(double percent) const {
    if (total_ == 0) return 0.0f;
    const double wanted = percent / 100.0 * static_cast<double>(total_);
    double seen = 0;
    for (std::size_t b = 0; b < bins; ++b) {
      seen += static_cast<double>(counts_[b]);
      if (seen >= wanted) return std::min(amax_, limit_ * static_cast<float>(b + 1) / static_cast<float>(bins));
    }
    return amax_;
  }

 private:
  void grow() {
    for (std::size_t b = 0; b < bins / 2; ++b) counts_[b] = counts_[2 * b] + counts_[2 * b + 1];
    std::fill(counts_.begin() + bins / 2, counts_.end(), 0);
    limit_ *= 2.0f;
  }

  std::vector<std::uint64_t> counts_;
  float limit_ = 0.0f, amax_ = 0.0f;
  std::uint64_t total_ = 0;
  bool non_negative_ = true;
};

/// The calibrated range of every tensor an int8 layer reads or writes.
struct Calibration {
  static constexpr const char* format_name = "visopt-calibration";
  static constexpr int format_version = 1;

  struct Range {
    std::string tensor;       // the operation that writes it: "conv.12"
    std::string weight;       // that operation's weight shape, "[256,64,1,1]" ("" for attention)
    float clip = 0.0f;        // the |x| that maps to the largest 8-bit step
    bool non_negative = false;  // no negative value seen (after a ReLU): stored as u8, else s8
    float amax = 0.0f;          // the largest |x| seen (0 in calibrations saved before it was kept: clip stands in)

    /// The int8 type and step the tensor is stored in: clip maps to 255 (u8) or 127 (s8).
    Quantization quantization() const {
      return non_negative ? Quantization{clip / 255.0f, DType::u8} : Quantization{clip / 127.0f, DType::s8};
    }
    /// The FP8 (e4m3) step: amax maps to e4m3's largest finite value. FP8's relative precision is the
    /// same across its range, so clipping below the largest value only adds saturation error: FP8 scales
    /// by the maximum whatever method chose `clip` (the usual amax recipe).
    Quantization fp8() const { return {(amax > 0.0f ? amax : clip) / e4m3_largest, DType::e4m3}; }
  };

  /// "conv.12": the name of what the index-th operation of `kind` (in prepare order) writes.
  static std::string tensor_name(std::string_view kind, std::size_t index) {
    std::string name(kind);
    name += '.';
    name += std::to_string(index);
    return name;
  }
  /// "[256,64,1,1]" for a weight, "" for none (attention): what a range is checked against.
  static std::string weight_shape(const Tensor& weight) { return weight.defined() ? weight.shape().to_string() : std::string(); }

  std::string model;     // the model it was measured on ("resnet50")
  std::string method;    // "max" or "percentile 99.99"
  int images = 0;        // how many calibration images
  std::vector<Range> ranges;

  /// The range of `tensor`, whose operation has weight shape `weight`; a visopt::Error when the
  /// calibration lacks it or measured it on another operation.
  const Range& find(const std::string& tensor, const std::string& weight) const {
    const Range* r = find_if(tensor, weight);
    if (r == nullptr) {
      fail(visopt::detail::concat("calibration of ", model, " (", ranges.size(), " tensors): has no range for ", tensor,
                                  " (weight ", weight, "): it was calibrated on another model"));
    }
    return *r;
  }
  /// The range of what the index-th operation of `kind` writes, whose weight is `weight` (none for
  /// attention): null when `optional` and the calibration has none, else find()'s errors.
  const Range* range_of(std::string_view kind, std::size_t index, const Tensor& weight, bool optional) const {
    const std::string tensor = tensor_name(kind, index), shape = weight_shape(weight);
    return optional ? find_if(tensor, shape) : &find(tensor, shape);
  }
  /// The same, or null when the calibration has no range for `tensor`.
  const Range* find_if(const std::string& tensor, const std::string& weight) const {
    for (const Range& r : ranges) {
      if (r.tensor != tensor) continue;
      require(r.weight == weight, "calibration of ", model, ": ", tensor, " has weight ", r.weight,
              " in the calibration, ", weight, " in this model: it was calibrated on another model");
      return &r;
    }
    return nullptr;
  }

  nlohmann::json json() const {
    nlohmann::json list = nlohmann::json::array();
    for (const Range& r : ranges) {
      list.push_back({{"tensor", r.tensor}, {"weight", r.weight}, {"clip", r.clip}, {"non_negative", r.non_negative}, {"amax", r.amax}});
    }
    return {{"format", format_name}, {"version", format_version}, {"model", model},
            {"method", method},      {"images", images},          {"ranges", list}};
  }

  /// Reads what json() wrote; `where` names the source in errors.
  static Calibration from_json(const nlohmann::json& j, const std::string& where) {
    const auto bad = [&](const std::string& why) { return Error("calibration " + where + ": " + why); };
    if (!j.is_object() || j.value("format", "") != format_name) throw bad("is not a visopt calibration (no \"format\": \"visopt-calibration\")");
    if (j.value("version", 0) != format_version) throw bad("has format version " + j.value("version", nlohmann::json(0)).dump() + ", this visopt reads " + std::to_string(format_version));
    Calibration c;
    try {
      c.model = j.at("model").get<std::string>();
      c.method = j.at("method").get<std::string>();
      c.images = j.at("images").get<int>();
      for (const auto& r : j.at("ranges")) {
        Range range{r.at("tensor").get<std::string>(), r.at("weight").get<std::string>(), r.at("clip").get<float>(),
                    r.at("non_negative").get<bool>(), r.value("amax", 0.0f)};
        if (!(range.clip > 0.0f) || !std::isfinite(range.clip)) {
          throw bad("tensor " + range.tensor + " has clip " + r.at("clip").dump() + ", expected a finite value > 0");
        }
        if (!(range.amax >= 0.0f) || !std::isfinite(range.amax)) {
          throw bad("tensor " + range.tensor + " has amax " + r.at("amax").dump() + ", expected a finite value >= 0");
        }
        c.ranges.push_back(std::move(range));
      }
    } catch (const nlohmann::json::exception& e) {
      throw bad(std::string("is malformed: ") + e.what());
    }
    return c;
  }

  /// Writes the calibration as JSON, atomically; a visopt::Error names the path and why not.
  void save(const std::filesystem::path& path) const {
    const std::string failed = write_file_atomically(path, json().dump(1) + '\n');
    require(failed.empty(), "Calibration::save: ", failed, " (for '", path.string(), "')");
  }

  /// Reads a saved calibration; a missing, truncated or foreign file is a visopt::Error naming it.
  static Calibration load(const std::filesystem::path& path) {
    const std::string where = "'" + path.string() + "'";
    std::ifstream in(path);
    require(static_cast<bool>(in), "calibration ", where, ": cannot be opened (Calibration::save writes one)");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      throw Error("calibration " + where + ": is not JSON (truncated?): " + e.what());
    }
    return from_json(j, where);
  }
};

/// Refuses a CompileOptions::high_precision_layers name that is no 8-bit-capable layer the network
/// prepared: `convs` convolutions ("conv.0"...; 0 where the level quantizes none) and `linears` linears
/// ("linear.0"...). A misspelt name would otherwise leave that layer quantized without a word. Called
/// when the network is built, before compile() plans anything.
inline void require_known_layers(const std::vector<std::string>& asked, std::size_t convs, std::size_t linears,
                                 const std::string& model) {
  auto numbered = [](std::string_view kind, const std::string& name, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      if (name == Calibration::tensor_name(kind, i)) return true;  // the names calibrate() and the report use
    }
    return false;
  };
  for (const std::string& name : asked) {
    if (numbered("conv", name, convs) || numbered("linear", name, linears)) continue;
    fail(visopt::detail::concat(model, ": CompileOptions::high_precision_layers names '", name, "', which is no ",
                                convs > 0 ? "convolution or linear" : "linear", " of this model (they are ",
                                convs > 0 ? visopt::detail::concat("conv.0 to conv.", convs - 1, ", ") : std::string(),
                                linears > 0 ? visopt::detail::concat("linear.0 to linear.", linears - 1) : std::string("no linears"), ")"));
  }
}

}  // namespace visopt::runtime
