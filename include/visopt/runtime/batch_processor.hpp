#pragma once
// BatchProcessor: runs images of any sizes through one Engine. Each image is fitted to the engine's
// square input (torchvision's resize + centre crop, or letterboxed: aspect kept, the rest padded), the
// images are grouped into batches of at most max_batch, and one result comes back per image, in input
// order, with the Placement that maps model-input coordinates back to the original image (unpad).
//
// Needs stb_image like visopt/io/image.hpp (link libstb, or define VISOPT_STB_IMPLEMENTATION once).

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../io/image.hpp"
#include "../services/options.hpp"

namespace visopt::runtime {

/// How an image of any size becomes the engine's square input.
enum class Fit {
  resize_crop,  ///< torchvision's classification transform: shorter side to BatchOptions::resize, centre crop
  letterbox,    ///< aspect ratio kept, longer side scaled to the input size, the rest padded: nothing is cut off
};

/// A point in pixel-edge coordinates: pixel (i, j) covers [i, i+1) x [j, j+1).
struct Point {
  double x = 0, y = 0;
  friend bool operator==(const Point&, const Point&) = default;
};

/// An axis-aligned box [x0, x1) x [y0, y1) in pixel-edge coordinates.
struct Box {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  friend bool operator==(const Box&, const Box&) = default;
};

/// Where one original image sits in the model input: model = original * scale + offset, per axis. For
/// Fit::letterbox the offsets are the padding (>= 0); for Fit::resize_crop they are minus the crop corner.
struct Placement {
  int original_width = 0, original_height = 0;
  double scale_x = 1, scale_y = 1;
  double offset_x = 0, offset_y = 0;

  /// Original-image coordinates to model-input coordinates.
  Point to_model(Point p) const { return {p.x * scale_x + offset_x, p.y * scale_y + offset_y}; }
  Box to_model(Box b) const {
    const Point a = to_model(Point{b.x0, b.y0}), c = to_model(Point{b.x1, b.y1});
    return {a.x, a.y, c.x, c.y};
  }
  /// Model-input coordinates (a detection head's output) back to original-image coordinates. Not clipped:
  /// a box reaching into the padding maps outside the image; clip() bounds it.
  Point unpad(Point p) const { return {(p.x - offset_x) / scale_x, (p.y - offset_y) / scale_y}; }
  Box unpad(Box b) const {
    const Point a = unpad(Point{b.x0, b.y0}), c = unpad(Point{b.x1, b.y1});
    return {a.x, a.y, c.x, c.y};
  }
  /// `b` (original coordinates) limited to the original image.
  Box clip(Box b) const {
    const auto cx = [&](double v) { return std::clamp(v, 0.0, static_cast<double>(original_width)); };
    const auto cy = [&](double v) { return std::clamp(v, 0.0, static_cast<double>(original_height)); };
    return {cx(b.x0), cy(b.y0), cx(b.x1), cy(b.y1)};
  }
};

struct BatchOptions {
  Fit fit = Fit::resize_crop;
  /// Fit::resize_crop: the shorter side before the centre crop; 0 = input size * 256 / 224, torchvision's ratio.
  int resize = 0;
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};  ///< per channel, of pixels scaled to [0, 1]
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
  io::Interpolation interpolation = io::Interpolation::bilinear;  ///< of every resize
  /// Fit::letterbox: the padding colour; ImageNet's mean colour normalises to about zero.
  std::array<std::uint8_t, 3> pad_rgb{124, 116, 104};
  /// Images per engine run: 1..the engine's CompileOptions::max_batch; 0 = the engine's.
  int max_batch = 0;
  /// Run a partial last batch at the full batch size, padded with zero images whose outputs are
  /// dropped: the engine then sees one batch shape (one CUDA Graph, one memory plan).
  bool pad_last_batch = true;
};

/// BatchOptions that fit images with `transform` (models::preprocess_for gives a model's): its resize,
/// interpolation, mean and std; its crop is the engine's input size.
inline BatchOptions batch_options_for(const io::Preprocess& transform) {
  return {.fit = Fit::resize_crop, .resize = transform.resize, .mean = transform.mean, .std = transform.std,
          .interpolation = transform.interpolation};
}

/// One image fitted to the engine's input: host f32 [3, S, S], normalised, and where it came from.
struct Prepared {
  Tensor image;
  Placement placement;
};

/// One image's answer: its row of the engine's output (host f32; [classes] for a classifier), a copy
/// that outlives the next run, and the placement its coordinates are in.
struct Result {
  Tensor output;
  Placement placement;
};

/// What BatchProcessor needs of an engine: visopt::Engine, visopt::AnyEngine and anything shaped like them.
template <class E>
concept BatchEngine = requires(E& engine, const Tensor& images) {
  { engine.run(images) } -> std::convertible_to<Tensor>;
  { engine.options().max_batch } -> std::convertible_to<int>;
  { engine.image_size() } -> std::convertible_to<std::int64_t>;
};

template <BatchEngine EngineT>
class BatchProcessor {
 public:
  /// Keeps a reference to `engine`, which must outlive the processor.
  explicit BatchProcessor(EngineT& engine, BatchOptions options = {})
      : engine_(engine), options_(options), size_(static_cast<int>(engine.image_size())) {
    const int engine_batch = engine.options().max_batch;
    if (options_.max_batch == 0) options_.max_batch = engine_batch;
    require(options_.max_batch >= 1 && options_.max_batch <= engine_batch, "BatchProcessor: max_batch is ",
            options_.max_batch, ", must be within 1..", engine_batch, " (the engine's CompileOptions::max_batch)");
    require(size_ >= 1, "BatchProcessor: the engine's input size is ", size_);
    if (options_.resize == 0) options_.resize = size_ * 256 / 224;
    require(options_.fit != Fit::resize_crop || options_.resize >= size_, "BatchProcessor: resize is ",
            options_.resize, ", must be at least the input size ", size_, " to centre-crop it");
  }

  int input_size() const { return size_; }
  int max_batch() const { return options_.max_batch; }
  const BatchOptions& options() const { return options_; }

  /// Fits one image to the input. Touches no engine state, so threads may prepare while another runs.
  Prepared prepare(const io::Image& image) const {
    io::Preprocess normalise{.resize = options_.resize, .crop = size_, .mean = options_.mean, .std = options_.std,
                             .interpolation = options_.interpolation};
    Prepared out;
    Placement& p = out.placement;
    p.original_width = image.width;
    p.original_height = image.height;
    if (options_.fit == Fit::resize_crop) {
      const io::PreprocessGeometry g = io::preprocess_geometry(image, normalise);
      p.scale_x = static_cast<double>(g.resized_width) / image.width;
      p.scale_y = static_cast<double>(g.resized_height) / image.height;
      p.offset_x = -g.left;
      p.offset_y = -g.top;
      out.image = io::preprocess(image, normalise);
      return out;
    }
    require(image.width > 0 && image.height > 0, "BatchProcessor: image is ", image.width, "x", image.height);
    const double scale = std::min(static_cast<double>(size_) / image.width, static_cast<double>(size_) / image.height);
    const auto fitted = [&](int side) { return std::clamp(static_cast<int>(std::lround(side * scale)), 1, size_); };
    const int width = fitted(image.width), height = fitted(image.height);
    const io::Image resized = io::resize_image(image, width, height, options_.interpolation);
    const int left = (size_ - width) / 2, top = (size_ - height) / 2;

    io::Image canvas;
    canvas.width = canvas.height = size_;
    canvas.rgb.resize(static_cast<std::size_t>(size_) * static_cast<std::size_t>(size_) * 3);
    for (std::size_t i = 0; i < canvas.rgb.size(); i += 3) std::memcpy(&canvas.rgb[i], options_.pad_rgb.data(), 3);
    const auto row_bytes = static_cast<std::size_t>(width) * 3;
    for (int y = 0; y < height; ++y) {
      std::memcpy(&canvas.rgb[(static_cast<std::size_t>(top + y) * static_cast<std::size_t>(size_) +
                               static_cast<std::size_t>(left)) * 3],
                  &resized.rgb[static_cast<std::size_t>(y) * row_bytes], row_bytes);
    }
    p.scale_x = static_cast<double>(width) / image.width;
    p.scale_y = static_cast<double>(height) / image.height;
    p.offset_x = left;
    p.offset_y = top;
    // A canvas already of the input size: preprocess only normalises it (its resize and crop are identities).
    normalise.resize = size_;
    out.image = io::preprocess(canvas, normalise);
    return out;
  }

  /// Fits, batches and runs `images`; result i belongs to images[i].
  std::vector<Result> run(std::span<const io::Image> images) {
    std::vector<Prepared> prepared;
    prepared.reserve(images.size());
    for (const io::Image& image : images) prepared.push_back(prepare(image));
    return run(std::span<const Prepared>(prepared));
  }

  /// Batches and runs images already prepared (by prepare()); result i belongs to prepared[i].
  std::vector<Result> run(std::span<const Prepared> prepared) {
    const Shape image_shape{3, size_, size_};
    for (std::size_t i = 0; i < prepared.size(); ++i) {
      const Tensor& t = prepared[i].image;
      require(t.defined() && t.dtype() == DType::f32 && t.shape() == image_shape && t.device().is_cpu() &&
                  t.view().is_contiguous(),
              "BatchProcessor: prepared image ", i, " is not a contiguous host f32 ", image_shape.to_string(),
              " tensor (use prepare())");
    }
    std::vector<Result> results;
    results.reserve(prepared.size());
    const auto batch = static_cast<std::size_t>(options_.max_batch);
    for (std::size_t first = 0; first < prepared.size(); first += batch) {
      const std::size_t count = std::min(batch, prepared.size() - first);
      const std::size_t rows = options_.pad_last_batch ? batch : count;
      Tensor images = Tensor::zeros(Shape{static_cast<std::int64_t>(rows), 3, size_, size_});
      auto* dst = static_cast<std::uint8_t*>(images.data());
      for (std::size_t i = 0; i < count; ++i) {
        const Tensor& t = prepared[first + i].image;
        std::memcpy(dst + i * t.nbytes(), t.data(), t.nbytes());
      }
      const Tensor output = engine_.run(images);
      require(output.device().is_cpu() && output.dtype() == DType::f32 && output.rank() >= 1 &&
                  output.dim(0) == static_cast<std::int64_t>(rows) && output.view().is_contiguous(),
              "BatchProcessor: the engine returned ", dtype_name(output.dtype()), " ", output.shape().to_string(), " on ",
              output.device().to_string(), " for a batch of ", rows, "; expected contiguous host f32 [", rows, ", ...]");
      std::vector<std::int64_t> dims;
      for (int axis = 1; axis < output.rank(); ++axis) dims.push_back(output.dim(axis));
      const Shape row_shape(dims);
      const std::size_t row_bytes = output.nbytes() / rows;
      for (std::size_t i = 0; i < count; ++i) {
        Tensor row = Tensor::empty(row_shape);
        std::memcpy(row.data(), static_cast<const std::uint8_t*>(output.data()) + i * row_bytes, row_bytes);
        results.push_back({std::move(row), prepared[first + i].placement});
      }
    }
    return results;
  }

 private:
  EngineT& engine_;
  BatchOptions options_;
  int size_;
};

}  // namespace visopt::runtime
