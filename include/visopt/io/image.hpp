#pragma once
// Image loading (JPEG, PNG, BMP, GIF through stb_image) and torchvision's evaluation transform (resize the
// shorter side, centre crop, scale to [0,1], normalise) into float CHW tensors.
//
// stb_image's implementation is compiled once per program: link Debian's libstb (`-lstb`, what
// examples/ do), or define VISOPT_STB_IMPLEMENTATION in exactly one translation unit before its first
// visopt include. Headers come from <stb/stb_image.h> (Debian's libstb-dev) or <stb_image.h>.

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"

#if defined(VISOPT_STB_IMPLEMENTATION) && !defined(STB_IMAGE_IMPLEMENTATION)
#define STB_IMAGE_IMPLEMENTATION
#endif
#if __has_include(<stb/stb_image.h>)
#include <stb/stb_image.h>
#elif __has_include(<stb_image.h>)
#include <stb_image.h>
#else
#error "visopt/io/image.hpp needs stb_image.h: install libstb-dev (Debian) or put stb on the include path"
#endif

namespace visopt::io {

/// An 8-bit image, interleaved RGB, rows top to bottom: rgb.size() == width * height * 3.
struct Image {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgb;
};

/// Images larger than this are rejected from their header, before anything is decoded or allocated.
inline constexpr int max_image_side = 16384;
inline constexpr std::int64_t max_image_pixels = 100'000'000;

namespace detail {

inline std::string image_error_prefix(std::string_view name) {
  return visopt::detail::concat("io: cannot read image '", name, "': ");
}

inline std::string stb_reason() {
  const char* reason = stbi_failure_reason();
  return reason != nullptr ? std::string(reason) : std::string("unknown reason");
}

inline void require_sane_dimensions(std::string_view name, int width, int height) {
  require(width > 0 && height > 0, image_error_prefix(name), "its header claims ", width, "x", height, " pixels");
  require(width <= max_image_side && height <= max_image_side, image_error_prefix(name), "its header claims ", width,
          "x", height, " pixels; the largest side accepted is ", max_image_side);
  require(static_cast<std::int64_t>(width) * height <= max_image_pixels, image_error_prefix(name), "its header claims ",
          width, "x", height, " pixels; at most ", max_image_pixels, " pixels are accepted");
}

/// What a look at the raw bytes finds before stb sees them: the size a PNG or JPEG header claims, and a
/// defect that stb_image must not be given. Needed because
///  - only JPEG, PNG, BMP and GIF are passed on: stb_image 2.27 (Debian 12's libstb) reads past its
///    buffer on a 16-bit PGM (CVE-2021-42716, nothings/stb#1225), and the rarer formats add only risk;
///  - it writes past its Huffman tables when a JPEG table defines over 256 codes (nothings/stb#1289);
///  - stbi_info tries every format and, when all refuse, says only "unknown image type", hiding that
///    stb refused a PNG or JPEG for its size (over 2^30 decoded bytes).
struct HeaderFacts {
  std::optional<std::pair<int, int>> size;  // width, height
  std::string defect;                       // non-empty: refuse the image with this reason
};

inline HeaderFacts inspect_header(std::span<const std::uint8_t> b) {
  HeaderFacts facts;
  const auto be16 = [&](std::size_t i) { return static_cast<std::size_t>((b[i] << 8) | b[i + 1]); };
  const auto be31 = [&](std::size_t i) {  // PNG limits both sides to 2^31 - 1
    return static_cast<int>((static_cast<std::uint32_t>(b[i] & 0x7f) << 24) |
                            (static_cast<std::uint32_t>(b[i + 1]) << 16) | (static_cast<std::uint32_t>(b[i + 2]) << 8) |
                            b[i + 3]);
  };
  static constexpr std::uint8_t png_start[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
                                               0,    0,   0,   13,  'I',  'H',  'D',  'R'};
  if (b.size() >= 8 && std::equal(std::begin(png_start), std::begin(png_start) + 8, b.begin())) {
    if (b.size() >= 24 && std::equal(std::begin(png_start), std::end(png_start), b.begin())) {
      facts.size = std::pair{be31(16), be31(20)};
    }
    return facts;
  }
  const bool bmp = b.size() >= 2 && b[0] == 'B' && b[1] == 'M';
  const bool gif = b.size() >= 4 && b[0] == 'G' && b[1] == 'I' && b[2] == 'F' && b[3] == '8';
  if (bmp || gif) return facts;
  // stb takes any run of 0xff and then 0xd8 (start of image) for a JPEG.
  std::size_t i = 0;
  while (i < b.size() && b[i] == 0xff) ++i;
  if (i == 0 || i >= b.size() || b[i] != 0xd8) {
    facts.defect = "not a JPEG, PNG, BMP or GIF image";
    return facts;
  }
  // Walk every marker segment, stepping over the entropy-coded data between them byte by byte, as stb does.
  // stb reads 0 past the end of the data; so does byte_at.
  const auto byte_at = [&](std::size_t k) -> std::size_t { return k < b.size() ? b[k] : 0; };
  // stb (2.27) does not clear its decoder state, so a scan that uses a Huffman or quantization table no
  // segment defined decodes with leftover heap bytes (an out-of-bounds table index, found by
  // tests/fuzz/fuzz_image). Valid JPEGs define every table before the scan that uses it.
  bool huffman_defined[2][4] = {}, quantization_defined[4] = {}, progressive = false;
  std::vector<std::pair<std::size_t, std::size_t>> frame_components;  // (id, quantization table)
  for (++i; i + 1 < b.size();) {
    const std::uint8_t marker = b[i + 1];
    if (b[i] != 0xff || marker == 0xff) {  // scan data, junk or a fill byte
      ++i;
      continue;
    }
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {  // no length field
      i += 2;
      continue;
    }
    if (marker == 0xd9 || i + 4 > b.size()) break;  // end of image
    const bool frame = marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
    if (frame) {  // length, precision, height, width, component count, then (id, sampling, table) each
      if (!facts.size && i + 9 <= b.size()) facts.size = std::pair{static_cast<int>(be16(i + 7)), static_cast<int>(be16(i + 5))};
      progressive = marker == 0xc2;
      frame_components.clear();
      for (std::size_t c = 0, n = byte_at(i + 9); c < n; ++c) {
        frame_components.emplace_back(byte_at(i + 10 + 3 * c), byte_at(i + 12 + 3 * c));
      }
    }
    if (marker == 0xdb) {  // define quantization tables: a precision/id byte, then 64 values of 1 or 2 bytes
      auto left = static_cast<std::ptrdiff_t>(be16(i + 2)) - 2;
      for (std::size_t t = i + 4; left > 0;) {
        const std::size_t precision = byte_at(t) >> 4, id = byte_at(t) & 15;
        if (precision > 1 || id > 3) break;  // stb refuses the segment
        quantization_defined[id] = true;
        const std::size_t size = 1 + 64 * (precision + 1);
        t += size;
        left -= static_cast<std::ptrdiff_t>(size);
      }
    }
    if (marker == 0xda) {  // start of scan: component count, then (component id, DC table << 4 | AC table) each
      const std::size_t n = byte_at(i + 4), ss = byte_at(i + 5 + 2 * n), ah = byte_at(i + 7 + 2 * n) >> 4;
      for (std::size_t c = 0; c < n; ++c) {
        const std::size_t id = byte_at(i + 5 + 2 * c), dc = byte_at(i + 6 + 2 * c) >> 4, ac = byte_at(i + 6 + 2 * c) & 15;
        if (dc > 3 || ac > 3) break;  // stb refuses the scan
        // Baseline decodes both tables of every block; a progressive DC scan only the DC table on its first
        // pass, an AC scan only the AC table.
        const bool uses_dc = !progressive || (ss == 0 && ah == 0), uses_ac = !progressive || ss > 0;
        const char* missing = uses_dc && !huffman_defined[0][dc] ? "DC" : uses_ac && !huffman_defined[1][ac] ? "AC" : nullptr;
        if (missing) {
          facts.defect = visopt::detail::concat("corrupt JPEG: a scan uses ", missing, " Huffman table ",
                                                missing[0] == 'D' ? dc : ac, ", which no DHT segment before it defines");
          return facts;
        }
        for (const auto& [component, table] : frame_components) {
          if (component == id && table <= 3 && !quantization_defined[table]) {
            facts.defect = visopt::detail::concat("corrupt JPEG: a scan uses quantization table ", table,
                                                  ", which no DQT segment before it defines");
            return facts;
          }
        }
      }
    }
    if (marker == 0xc4) {  // define Huffman tables: each is a class/id byte, 16 code counts, the codes
      // Read the tables exactly as stb does: while the segment's length has bytes left, even when a
      // table's codes run past the segment's end, and reading 0 past the end of the data. (Stopping at
      // the segment's end let a table that straddles it through to stb: found by tests/fuzz/fuzz_image.)
      auto left = static_cast<std::ptrdiff_t>(be16(i + 2)) - 2;
      std::size_t t = i + 4;
      while (left > 0) {
        if ((byte_at(t) >> 4) > 1 || (byte_at(t) & 15) > 3) break;  // stb refuses the table's class or id
        std::size_t codes = 0;
        for (std::size_t k = 1; k <= 16; ++k) codes += byte_at(t + k);
        if (codes > 256) {
          facts.defect = visopt::detail::concat("corrupt JPEG: a Huffman table defines ", codes,
                                                " codes, at most 256 are possible");
          return facts;
        }
        huffman_defined[byte_at(t) >> 4][byte_at(t) & 15] = true;
        t += 17 + codes;
        left -= static_cast<std::ptrdiff_t>(17 + codes);
      }
      if (left != 0) break;  // stb refuses this segment and reads nothing after it
    }
    i += 2 + be16(i + 2);
  }
  return facts;
}

/// For each output index of a 1-D resample: the first input index and that many weights (stride `taps`).
struct ResampleTaps {
  std::vector<int> first;
  std::vector<int> count;
  std::vector<float> weights;  // out_size * taps
  int taps = 0;
};

/// A triangle (bilinear) filter on pixel centres whose radius grows with the downscale factor, so a
/// shrink averages every input pixel under the output pixel (PIL's and torchvision's antialias=True).
inline ResampleTaps triangle_taps(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double radius = std::max(scale, 1.0);
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
      const double distance = std::abs(lo + k + 0.5 - centre) / radius;
      w[static_cast<std::size_t>(k)] = std::max(0.0, 1.0 - distance);
      sum += w[static_cast<std::size_t>(k)];
    }
    t.first[static_cast<std::size_t>(i)] = lo;
    t.count[static_cast<std::size_t>(i)] = n;
    float* out = t.weights.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(t.taps);
    for (int k = 0; k < n; ++k) out[k] = static_cast<float>(w[static_cast<std::size_t>(k)] / sum);
  }
  return t;
}

inline std::uint8_t round_to_u8(float value) {
  return static_cast<std::uint8_t>(std::clamp(std::lround(value), 0L, 255L));
}

/// One separable pass: resamples `lines` lines of `in_len` RGB pixels each; consecutive pixels of a line
/// are `step` pixels apart and consecutive lines `line_step` pixels apart, in input and output alike.
inline void resample_pass(const std::uint8_t* in, std::uint8_t* out, const ResampleTaps& taps, int out_len, int lines,
                          std::size_t in_line_step, std::size_t out_line_step, std::size_t step) {
  for (int line = 0; line < lines; ++line) {
    const std::uint8_t* src = in + static_cast<std::size_t>(line) * in_line_step * 3;
    std::uint8_t* dst = out + static_cast<std::size_t>(line) * out_line_step * 3;
    for (int i = 0; i < out_len; ++i) {
      const float* w = taps.weights.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(taps.taps);
      const std::uint8_t* p = src + static_cast<std::size_t>(taps.first[static_cast<std::size_t>(i)]) * step * 3;
      float r = 0.0f, g = 0.0f, b = 0.0f;
      for (int k = 0; k < taps.count[static_cast<std::size_t>(i)]; ++k, p += step * 3) {
        r += w[k] * p[0];
        g += w[k] * p[1];
        b += w[k] * p[2];
      }
      std::uint8_t* q = dst + static_cast<std::size_t>(i) * step * 3;
      q[0] = round_to_u8(r);
      q[1] = round_to_u8(g);
      q[2] = round_to_u8(b);
    }
  }
}

/// Python's round() of x.5 values (ties to even), which torchvision's CenterCrop uses for its offset.
inline int centre_offset(int size, int crop) {
  const int difference = size - crop;
  const int half = difference / 2;
  return difference % 2 == 0 ? half : half + (half % 2);
}

/// What the PNG chunk walk before stb_image found: stb trusts each chunk's length field, so visopt checks
/// the IDAT chunks (the ones it copies into memory) first.
struct PngChunkCheck {
  std::string defect;                               // non-empty: refuse the image with this reason
  std::optional<std::vector<std::uint8_t>> repaired;  // the PNG without its zero-length IDAT chunks, if it had any
};

/// Walks a PNG's chunks (nothing to report for other formats):
/// - An IDAT chunk that declares more data than the file has left is refused: stb grows its data buffer
///   to the declared length before reading, so a 60-byte file declaring 1 GiB made it allocate 2 GiB
///   (found by tests/fuzz/fuzz_image).
/// - Zero-length IDAT chunks are left out: for a zero-length first IDAT stb's data buffer is still null
///   and memcpy(nullptr, data, 0) is undefined behaviour (found by fuzz_image under UBSan). stb makes
///   that copy as soon as it has read the chunk's length and type, so a chunk whose CRC is cut off goes
///   too. Such a chunk carries no data, so leaving it out changes no pixel.
inline PngChunkCheck check_png_chunks(std::span<const std::uint8_t> b) {
  static constexpr std::uint8_t signature[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  PngChunkCheck check;
  if (b.size() < 8 || !std::equal(std::begin(signature), std::end(signature), b.begin())) return check;
  const auto be32 = [&](std::size_t i) {
    return (std::uint64_t{b[i]} << 24) | (std::uint64_t{b[i + 1]} << 16) | (std::uint64_t{b[i + 2]} << 8) | b[i + 3];
  };
  std::vector<std::pair<std::size_t, std::size_t>> kept;  // [begin, end) byte ranges
  std::size_t from = 0, i = 8;
  bool dropped = false;
  while (i + 8 <= b.size()) {  // a chunk's length and type: what stb reads before it copies the data
    const std::uint64_t length = be32(i);
    const std::size_t left = b.size() - i - 8;  // bytes after this chunk's header
    if (std::memcmp(b.data() + i + 4, "IDAT", 4) == 0) {
      if (length > left) {
        check.defect = visopt::detail::concat("corrupt PNG: the IDAT chunk at byte ", i, " declares ", length,
                                              " bytes of data, but only ", left, " follow it");
        return check;
      }
      if (length == 0) {
        kept.emplace_back(from, i);
        from = std::min(i + 12, b.size());  // with its CRC, or what is left of it
        dropped = true;
      }
    }
    if (length + 4 > left) break;  // data or CRC cut off: the rest goes to stb as it is
    i += 12 + static_cast<std::size_t>(length);
  }
  if (!dropped) return check;
  kept.emplace_back(from, b.size());
  std::vector<std::uint8_t> out;
  out.reserve(b.size());
  for (const auto& [begin, end] : kept) out.insert(out.end(), b.begin() + static_cast<std::ptrdiff_t>(begin), b.begin() + static_cast<std::ptrdiff_t>(end));
  check.repaired = std::move(out);
  return check;
}

}  // namespace detail

/// Decodes an encoded image held in memory into 8-bit RGB (grey is replicated, alpha dropped).
/// Throws visopt::Error naming `name` for empty or corrupt data, and for dimensions over
/// max_image_side / max_image_pixels, which are read from the header before any pixel is decoded.
inline Image load_image_from_memory(std::span<const std::uint8_t> bytes, std::string_view name = "<memory>") {
  require(!bytes.empty(), detail::image_error_prefix(name), "it is empty");
  require(bytes.size() <= static_cast<std::size_t>(INT_MAX), detail::image_error_prefix(name), "it is ", bytes.size(),
          " bytes; stb_image reads at most ", INT_MAX);
  const detail::PngChunkCheck png = detail::check_png_chunks(bytes);
  require(png.defect.empty(), detail::image_error_prefix(name), png.defect);
  if (png.repaired) bytes = *png.repaired;
  const int length = static_cast<int>(bytes.size());
  const detail::HeaderFacts facts = detail::inspect_header(bytes);
  require(facts.defect.empty(), detail::image_error_prefix(name), facts.defect);
  int width = 0, height = 0, channels = 0;
  if (stbi_info_from_memory(bytes.data(), length, &width, &height, &channels) == 0) {
    const std::string reason = detail::stb_reason();
    if (facts.size) detail::require_sane_dimensions(name, facts.size->first, facts.size->second);
    fail(detail::image_error_prefix(name) + reason);
  }
  // A BMP stores a top-down image's height negated, and stbi_info passes it through as it is.
  if (height < 0 && height != INT_MIN) height = -height;
  detail::require_sane_dimensions(name, width, height);

  int decoded_width = 0, decoded_height = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes.data(), length, &decoded_width, &decoded_height, &channels, 3), stbi_image_free);
  if (!pixels) fail(detail::image_error_prefix(name) + detail::stb_reason());
  require(decoded_width == width && decoded_height == height, detail::image_error_prefix(name), "header says ", width,
          "x", height, " but ", decoded_width, "x", decoded_height, " pixels were decoded");

  Image image;
  image.width = width;
  image.height = height;
  image.rgb.assign(pixels.get(), pixels.get() + static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3);
  return image;
}

/// Reads and decodes an image file; same rules and errors as load_image_from_memory, named by the path.
inline Image load_image(const std::filesystem::path& path) {
  const std::string name = path.string();
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  require(status.type() != std::filesystem::file_type::not_found, detail::image_error_prefix(name), "no such file");
  require(!ec, detail::image_error_prefix(name), "cannot access it: ", ec.message());
  require(std::filesystem::is_regular_file(status), detail::image_error_prefix(name), "not a regular file");
  const auto size = std::filesystem::file_size(path, ec);
  require(!ec, detail::image_error_prefix(name), "cannot get its size: ", ec.message());
  require(size <= static_cast<std::uintmax_t>(INT_MAX), detail::image_error_prefix(name), "it is ", size,
          " bytes; stb_image reads at most ", INT_MAX);
  std::ifstream file(path, std::ios::binary);
  require(file.is_open(), detail::image_error_prefix(name), "cannot open it");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  file.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  require(file.gcount() == static_cast<std::streamsize>(size), detail::image_error_prefix(name), "read ", file.gcount(),
          " of its ", size, " bytes");
  return load_image_from_memory(bytes, name);
}

/// Resizes to width x height with a triangle filter, antialiased when shrinking (like PIL's BILINEAR);
/// each separable pass rounds to 8 bits as PIL does, so a constant image stays exactly constant.
inline Image resize_image(const Image& image, int width, int height) {
  require(image.width > 0 && image.height > 0 &&
              image.rgb.size() == static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.height) * 3,
          "io: resize_image: image of ", image.width, "x", image.height, " has ", image.rgb.size(),
          " bytes, expected width*height*3");
  require(width > 0 && height > 0, "io: resize_image: target size ", width, "x", height, " is not positive");
  const auto pixels = [](int w, int h) { return static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * 3; };

  Image horizontal;  // image.height rows of `width` pixels
  if (width == image.width) {
    horizontal = image;
  } else {
    horizontal.width = width;
    horizontal.height = image.height;
    horizontal.rgb.resize(pixels(width, image.height));
    detail::resample_pass(image.rgb.data(), horizontal.rgb.data(), detail::triangle_taps(image.width, width), width,
                          image.height, static_cast<std::size_t>(image.width), static_cast<std::size_t>(width), 1);
  }
  if (height == image.height) return horizontal;

  Image out;
  out.width = width;
  out.height = height;
  out.rgb.resize(pixels(width, height));
  // Vertical pass: a "line" is a column, its pixels `width` apart; columns are one pixel apart.
  detail::resample_pass(horizontal.rgb.data(), out.rgb.data(), detail::triangle_taps(image.height, height), height,
                        width, 1, 1, static_cast<std::size_t>(width));
  return out;
}

/// torchvision's ImageNet evaluation transform: Resize(resize), CenterCrop(crop), ToTensor, Normalize.
struct Preprocess {
  int resize = 256;  ///< the shorter side becomes this many pixels, the longer keeps the aspect ratio
  int crop = 224;    ///< side of the square centre crop; at most `resize`
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
};

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
  const int resized_width = geometry.resized_width;
  const Image resized = resize_image(image, resized_width, geometry.resized_height);

  const int top = geometry.top;
  const int left = geometry.left;
  const int crop = options.crop;
  Tensor out = Tensor::empty(Shape{3, crop, crop});
  float* dst = out.data_as<float>();
  const auto row_pixels = static_cast<std::size_t>(resized_width);
  for (std::size_t c = 0; c < 3; ++c) {
    const float mean = options.mean[c];
    const float std_dev = options.std[c];
    for (int y = 0; y < crop; ++y) {
      const std::size_t first_pixel = static_cast<std::size_t>(top + y) * row_pixels + static_cast<std::size_t>(left);
      const std::uint8_t* channel = resized.rgb.data() + first_pixel * 3 + c;
      for (std::size_t x = 0; x < static_cast<std::size_t>(crop); ++x) {
        *dst++ = (static_cast<float>(channel[x * 3]) / 255.0f - mean) / std_dev;
      }
    }
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
