#pragma once
// An 8-bit RGB image and the evaluation transforms that turn it into a model's input: PIL-equivalent
// resampling (bilinear or bicubic, antialiased when shrinking), centre crop, normalisation, batching.
// Needs no image decoder; io/image.hpp decodes files into an Image.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace visopt::io {

/// An 8-bit image, interleaved RGB, rows top to bottom: rgb.size() == width * height * 3.
struct Image {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgb;
};

/// Images larger than this are rejected from their header, before anything is decoded or allocated.
inline constexpr int max_image_side = 16384;
inline constexpr std::int64_t max_image_pixels = 100'000'000;

/// The resampling filter of a resize.
enum class Interpolation {
  bilinear,  ///< a triangle filter: PIL's BILINEAR, torchvision's default
  bicubic,   ///< Keys' cubic, a = -0.5: PIL's BICUBIC, timm's ViT transforms
};

namespace detail {

/// For each output index of a 1-D resample: the first input index and that many weights (stride `taps`).
struct ResampleTaps {
  std::vector<int> first;
  std::vector<int> count;
  std::vector<float> weights;  // out_size * taps
  int taps = 0;
};

/// The filter of Interpolation on a distance in input pixels (already divided by the widening factor),
/// and how far from the centre it reaches: a triangle (PIL's BILINEAR) or Keys' cubic with a = -0.5
/// (PIL's BICUBIC, which timm's transforms use).
inline double filter_weight(Interpolation interpolation, double x) {
  x = std::abs(x);
  if (interpolation == Interpolation::bilinear) return std::max(0.0, 1.0 - x);
  constexpr double a = -0.5;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}
inline double filter_support(Interpolation interpolation) { return interpolation == Interpolation::bilinear ? 1.0 : 2.0; }

/// The taps of a resample from in_size to out_size on pixel centres, the filter widened by the downscale
/// factor so that a shrink averages every input pixel under the output pixel (PIL's resampling, which
/// torchvision's antialias=True follows); weights normalised to sum to 1.
inline ResampleTaps resample_taps(int in_size, int out_size, Interpolation interpolation) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double widen = std::max(scale, 1.0);
  const double radius = filter_support(interpolation) * widen;
  ResampleTaps t;
  t.taps = static_cast<int>(std::ceil(radius)) * 2 + 1;
  t.first.resize(static_cast<std::size_t>(out_size));
  t.count.resize(static_cast<std::size_t>(out_size));
  t.weights.assign(static_cast<std::size_t>(out_size) * static_cast<std::size_t>(t.taps), 0.0f);
  std::vector<double> w(static_cast<std::size_t>(t.taps));
  for (int i = 0; i < out_size; ++i) {
    const double centre = (i + 0.5) * scale;  // in input pixel units
    // Input pixel j (centre j + 0.5) has non-zero weight only while |j + 0.5 - centre| < radius.
    const int lo = std::max(0, static_cast<int>(std::floor(centre - radius + 0.5)));
    const int hi = std::min(in_size, static_cast<int>(std::ceil(centre + radius - 0.5)));
    const int n = std::min(hi - lo, t.taps);
    double sum = 0.0;
    for (int k = 0; k < n; ++k) {
      w[static_cast<std::size_t>(k)] = filter_weight(interpolation, (lo + k + 0.5 - centre) / widen);
      sum += w[static_cast<std::size_t>(k)];
    }
    t.first[static_cast<std::size_t>(i)] = lo;
    t.count[static_cast<std::size_t>(i)] = n;
    float* out = t.weights.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(t.taps);
    for (int k = 0; k < n; ++k) out[k] = static_cast<float>(sum != 0.0 ? w[static_cast<std::size_t>(k)] / sum : 0.0);
  }
  return t;
}

/// PIL's rounding of a resampled value: half up, clamped to 0..255. Written so that compilers vectorise
/// it (the clamp first, then truncation of a non-negative value is its floor).
inline std::uint8_t round_to_u8(float value) {
  const float up = std::min(std::max(value + 0.5f, 0.0f), 255.0f);
  return static_cast<std::uint8_t>(static_cast<int>(up));
}

/// out[c] = round(sum_k w[k] · in[k·stride + c]) for the `count` taps of one output pixel, c < 3.
inline void resample_pixel(const std::uint8_t* in, std::size_t stride, const float* w, int count, std::uint8_t* out) {
  float r = 0.0f, g = 0.0f, b = 0.0f;
  for (int k = 0; k < count; ++k, in += stride) {
    r += w[k] * in[0];
    g += w[k] * in[1];
    b += w[k] * in[2];
  }
  out[0] = round_to_u8(r);
  out[1] = round_to_u8(g);
  out[2] = round_to_u8(b);
}

/// Rows [row_lo, row_hi) of `image` resampled horizontally to `width` columns, of which only [x0, x0 + w)
/// are kept: w·3 bytes a row.
inline std::vector<std::uint8_t> resample_rows(const Image& image, int width, int x0, int w, int row_lo, int row_hi,
                                               Interpolation interpolation) {
  const auto row_bytes = static_cast<std::size_t>(w) * 3;
  std::vector<std::uint8_t> out(row_bytes * static_cast<std::size_t>(row_hi - row_lo));
  const auto in_row = [&](int y) { return image.rgb.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(image.width) * 3; };
  if (width == image.width) {  // no horizontal resampling: the window's columns as they are
    for (int y = row_lo; y < row_hi; ++y) std::memcpy(&out[static_cast<std::size_t>(y - row_lo) * row_bytes], in_row(y) + static_cast<std::size_t>(x0) * 3, row_bytes);
    return out;
  }
  const ResampleTaps taps = resample_taps(image.width, width, interpolation);
  for (int y = row_lo; y < row_hi; ++y) {
    std::uint8_t* dst = &out[static_cast<std::size_t>(y - row_lo) * row_bytes];
    for (int x = x0; x < x0 + w; ++x) {
      const auto i = static_cast<std::size_t>(x);
      resample_pixel(in_row(y) + static_cast<std::size_t>(taps.first[i]) * 3, 3, taps.weights.data() + i * static_cast<std::size_t>(taps.taps),
                     taps.count[i], dst + static_cast<std::size_t>(x - x0) * 3);
    }
  }
  return out;
}

/// Python's round() of x.5 values (ties to even), which torchvision's CenterCrop uses for its offset.
inline int centre_offset(int size, int crop) {
  const int difference = size - crop;
  const int half = difference / 2;
  return difference % 2 == 0 ? half : half + (half % 2);
}

}  // namespace detail

/// The window [x0, x0 + w) x [y0, y0 + h) of `image` resized to width x height (PIL's separable resampling:
/// horizontal pass, rounded to 8 bits, then vertical, as resize_image), computing only that window's
/// pixels: a centre crop costs only the pixels it keeps. Rows of the vertical pass are done a whole row
/// at a time, so memory is read in order.
inline Image resize_window(const Image& image, int width, int height, int x0, int y0, int w, int h,
                           Interpolation interpolation = Interpolation::bilinear) {
  require(image.width > 0 && image.height > 0 &&
              image.rgb.size() == static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.height) * 3,
          "io: resize_image: image of ", image.width, "x", image.height, " has ", image.rgb.size(),
          " bytes, expected width*height*3");
  require(width > 0 && height > 0, "io: resize_image: target size ", width, "x", height, " is not positive");
  require(x0 >= 0 && y0 >= 0 && w > 0 && h > 0 && x0 + w <= width && y0 + h <= height, "io: resize_image: window ", w, "x", h,
          " at (", x0, ",", y0, ") does not fit in ", width, "x", height);
  Image out;
  out.width = w;
  out.height = h;
  const auto row_bytes = static_cast<std::size_t>(w) * 3;
  if (height == image.height) {
    out.rgb = detail::resample_rows(image, width, x0, w, y0, y0 + h, interpolation);
    return out;
  }
  const detail::ResampleTaps taps = detail::resample_taps(image.height, height, interpolation);
  int row_lo = image.height, row_hi = 0;  // the input rows the window's output rows read
  for (int y = y0; y < y0 + h; ++y) {
    row_lo = std::min(row_lo, taps.first[static_cast<std::size_t>(y)]);
    row_hi = std::max(row_hi, taps.first[static_cast<std::size_t>(y)] + taps.count[static_cast<std::size_t>(y)]);
  }
  const std::vector<std::uint8_t> rows = detail::resample_rows(image, width, x0, w, row_lo, row_hi, interpolation);
  out.rgb.resize(row_bytes * static_cast<std::size_t>(h));
  std::vector<float> sum(row_bytes);
  for (int y = y0; y < y0 + h; ++y) {
    const auto i = static_cast<std::size_t>(y);
    const float* weights = taps.weights.data() + i * static_cast<std::size_t>(taps.taps);
    std::fill(sum.begin(), sum.end(), 0.0f);
    for (int k = 0; k < taps.count[i]; ++k) {  // the same sum, in the same order, as resample_pixel's, a row at a time
      const std::uint8_t* src = &rows[static_cast<std::size_t>(taps.first[i] + k - row_lo) * row_bytes];
      const float weight = weights[k];
      for (std::size_t b = 0; b < row_bytes; ++b) sum[b] += weight * src[b];
    }
    std::uint8_t* dst = &out.rgb[static_cast<std::size_t>(y - y0) * row_bytes];
    for (std::size_t b = 0; b < row_bytes; ++b) dst[b] = detail::round_to_u8(sum[b]);
  }
  return out;
}

/// Resizes to width x height, antialiased when shrinking, with PIL's BILINEAR (a triangle) or BICUBIC
/// filter; each separable pass rounds (and clamps) to 8 bits as PIL does, so a constant image stays
/// exactly constant.
inline Image resize_image(const Image& image, int width, int height, Interpolation interpolation = Interpolation::bilinear) {
  return resize_window(image, width, height, 0, 0, width, height, interpolation);
}

/// An evaluation transform: Resize(resize, interpolation), CenterCrop(crop), ToTensor, Normalize(mean, std).
/// The defaults are torchvision's ImageNet transform; torchvision_transform() and timm_transform() give
/// the ones each family's weights were trained with (models/preprocessing.hpp picks per model).
struct Preprocess {
  int resize = 256;  ///< the shorter side becomes this many pixels, the longer keeps the aspect ratio
  int crop = 224;    ///< side of the square centre crop; at most `resize`
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
  Interpolation interpolation = Interpolation::bilinear;
};

/// torchvision's classification weights: shorter side to crop·256/224 (bilinear), ImageNet mean and std.
inline Preprocess torchvision_transform(int crop = 224) { return {.resize = crop * 256 / 224, .crop = crop}; }

/// timm's ViT weights: shorter side to floor(crop / crop_pct) with bicubic resampling, mean and std 0.5
/// (the pretrained_cfg of timm's vit_*_patch{16,32}_224 models: crop_pct 0.9, 'bicubic', 0.5).
inline Preprocess timm_transform(int crop = 224, double crop_pct = 0.9) {
  return {.resize = static_cast<int>(std::floor(crop / crop_pct)), .crop = crop, .mean = {0.5f, 0.5f, 0.5f},
          .std = {0.5f, 0.5f, 0.5f}, .interpolation = Interpolation::bicubic};
}

/// timm's DeiT weights (deit_*_patch16_224, distilled or not): as timm_transform, with ImageNet's mean and std.
inline Preprocess deit_transform(int crop = 224, double crop_pct = 0.9) {
  Preprocess p = timm_transform(crop, crop_pct);
  p.mean = Preprocess{}.mean;
  p.std = Preprocess{}.std;
  return p;
}

/// One line on a transform, for programs that say what they do: "bicubic resize to 248, centre crop 224, ...".
inline std::string describe(const Preprocess& p) {
  return visopt::detail::concat(p.interpolation == Interpolation::bicubic ? "bicubic" : "bilinear", " resize to ", p.resize,
                                ", centre crop ", p.crop, ", mean ", p.mean[0], "/", p.mean[1], "/", p.mean[2], ", std ",
                                p.std[0], "/", p.std[1], "/", p.std[2]);
}

/// Where io::preprocess takes its pixels from: the size the whole image is resized to, and the top-left
/// corner of the centre crop in that resized image. Model-input pixel (x, y) is resized pixel
/// (x + left, y + top), and resized pixel (u, v) covers original pixels (u, v) * original / resized.
struct PreprocessGeometry {
  int resized_width = 0, resized_height = 0;
  int left = 0, top = 0;
};

/// The geometry io::preprocess uses for `image`: the shorter side becomes options.resize, the longer
/// floor(resize * long / short) as torchvision computes it; the crop is centred with Python's rounding.
inline PreprocessGeometry preprocess_geometry(const Image& image, const Preprocess& options) {
  require(options.resize > 0 && options.crop > 0 && options.crop <= options.resize,
          "io: preprocess: needs 0 < crop <= resize, got crop ", options.crop, " and resize ", options.resize);
  require(image.width > 0 && image.height > 0, "io: preprocess: image is ", image.width, "x", image.height);
  const bool wide = image.width >= image.height;
  const int short_side = wide ? image.height : image.width;
  const int long_side = wide ? image.width : image.height;
  const auto new_long = static_cast<std::int64_t>(
      static_cast<double>(static_cast<std::int64_t>(options.resize) * long_side) / short_side);
  require(new_long <= max_image_side, "io: preprocess: resizing ", image.width, "x", image.height,
          " so that its shorter side is ", options.resize, " makes the longer ", new_long, " pixels (over ",
          max_image_side, ")");
  PreprocessGeometry g;
  g.resized_width = wide ? static_cast<int>(new_long) : options.resize;
  g.resized_height = wide ? options.resize : static_cast<int>(new_long);
  g.left = detail::centre_offset(g.resized_width, options.crop);
  g.top = detail::centre_offset(g.resized_height, options.crop);
  return g;
}

/// Resizes the shorter side to options.resize (the longer to floor(resize * long / short), as torchvision),
/// centre-crops options.crop x options.crop and returns host float [3, crop, crop] holding
/// (v / 255 - mean[c]) / std[c], computed in float in that order so it matches torchvision bit for bit
/// given the same resized pixels.
inline Tensor preprocess(const Image& image, const Preprocess& options = {}) {
  for (int c = 0; c < 3; ++c) {
    require(options.std[static_cast<std::size_t>(c)] != 0.0f, "io: preprocess: std[", c, "] is zero");
  }
  const PreprocessGeometry geometry = preprocess_geometry(image, options);
  const int crop = options.crop;
  const Image cropped = resize_window(image, geometry.resized_width, geometry.resized_height, geometry.left, geometry.top, crop,
                                      crop, options.interpolation);
  // Each channel's 256 possible outputs, computed with torchvision's formula in its order, then looked up.
  std::array<std::array<float, 256>, 3> normalised{};
  for (std::size_t c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) normalised[c][static_cast<std::size_t>(v)] = (static_cast<float>(v) / 255.0f - options.mean[c]) / options.std[c];
  }
  Tensor out = Tensor::empty(Shape{3, crop, crop});
  float* dst = out.data_as<float>();
  const auto pixels = static_cast<std::size_t>(crop) * static_cast<std::size_t>(crop);
  for (std::size_t c = 0; c < 3; ++c) {
    const std::uint8_t* channel = cropped.rgb.data() + c;
    for (std::size_t i = 0; i < pixels; ++i) *dst++ = normalised[c][channel[i * 3]];
  }
  return out;
}

/// Stacks N dense host tensors of one shape [C,H,W] and dtype into [N,C,H,W].
inline Tensor stack_images(const std::vector<Tensor>& images) {
  require(!images.empty(), "io: stack_images: no images to stack");
  const Tensor& first = images.front();
  require(first.rank() == 3, "io: stack_images: image 0 has shape ", first.shape().to_string(), ", expected [C,H,W]");
  for (std::size_t i = 0; i < images.size(); ++i) {
    const Tensor& t = images[i];
    require(t.defined(), "io: stack_images: image ", i, " is an empty tensor");
    require(t.shape() == first.shape() && t.dtype() == first.dtype(), "io: stack_images: image ", i, " is ",
            dtype_name(t.dtype()), " ", t.shape().to_string(), " but image 0 is ", dtype_name(first.dtype()), " ",
            first.shape().to_string());
    require(t.device().is_cpu(), "io: stack_images: image ", i, " is on ", t.device().to_string(),
            ", expected a host tensor");
    require(t.view().is_contiguous(), "io: stack_images: image ", i, " is not contiguous");
  }
  Tensor batch = Tensor::empty(
      Shape{static_cast<std::int64_t>(images.size()), first.dim(0), first.dim(1), first.dim(2)}, first.dtype());
  auto* dst = static_cast<std::uint8_t*>(batch.data());
  for (const Tensor& t : images) {
    std::memcpy(dst, t.data(), t.nbytes());
    dst += t.nbytes();
  }
  return batch;
}

}  // namespace visopt::io
