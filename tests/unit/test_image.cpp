// Image loading (JPEG by libjpeg, PNG by libpng, BMP and GIF by stb_image where VISOPT_IMAGE_STB),
// torchvision-style preprocessing, batching and class-name files (visopt/io). The one translation unit of
// visopt_tests that compiles stb_image; every other file that includes visopt/io/image.hpp must not.
#if defined(VISOPT_IMAGE_STB)
#define VISOPT_STB_IMPLEMENTATION
#endif
#include <png.h>

#include <visopt/io/class_names.hpp>
#include <visopt/io/image.hpp>
#include <visopt/io/top_k.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "catch.hpp"

namespace {

namespace fs = std::filesystem;
using visopt::io::Image;

/// A fresh directory under the system temp dir, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device entropy;
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path = fs::temp_directory_path() / ("visopt_image_" + std::to_string(stamp) + "_" + std::to_string(entropy()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

void write_bytes(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

Image make_image(int width, int height, std::uint8_t (*r)(int, int), std::uint8_t (*g)(int, int),
                 std::uint8_t (*b)(int, int)) {
  Image image{width, height, std::vector<std::uint8_t>(static_cast<std::size_t>(width * height * 3))};
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const auto i = static_cast<std::size_t>((y * width + x) * 3);
      image.rgb[i] = r(x, y);
      image.rgb[i + 1] = g(x, y);
      image.rgb[i + 2] = b(x, y);
    }
  }
  return image;
}

Image constant_image(int width, int height, std::uint8_t r, std::uint8_t g, std::uint8_t b) {
  Image image{width, height, {}};
  for (int i = 0; i < width * height; ++i) image.rgb.insert(image.rgb.end(), {r, g, b});
  return image;
}

void put_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}
void put_le32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}
void put_le16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v));
  out.push_back(static_cast<std::uint8_t>(v >> 8));
}

std::uint32_t crc32(const std::uint8_t* data, std::size_t size) {
  std::uint32_t crc = 0xffffffffu;
  for (std::size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

/// A PNG of `channels` (1: grey, 3: RGB, 4: RGBA) bytes a pixel, written by libpng, in memory.
std::vector<std::uint8_t> encode_png(int width, int height, int channels, const std::vector<std::uint8_t>& pixels) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = channels == 1 ? PNG_FORMAT_GRAY : channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
  png_alloc_size_t size = 0;
  REQUIRE(png_image_write_to_memory(&image, nullptr, &size, 0, pixels.data(), 0, nullptr) != 0);
  std::vector<std::uint8_t> out(size);
  REQUIRE(png_image_write_to_memory(&image, out.data(), &size, 0, pixels.data(), 0, nullptr) != 0);
  out.resize(size);
  return out;
}

/// A PNG signature and a valid IHDR chunk (8-bit RGB) claiming width x height; no pixel data follows.
std::vector<std::uint8_t> png_header(std::uint32_t width, std::uint32_t height) {
  std::vector<std::uint8_t> png{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  put_be32(png, 13);
  const std::size_t chunk = png.size();
  png.insert(png.end(), {'I', 'H', 'D', 'R'});
  put_be32(png, width);
  put_be32(png, height);
  png.insert(png.end(), {8, 2, 0, 0, 0});  // bit depth, colour type RGB, compression, filter, interlace
  put_be32(png, crc32(png.data() + chunk, png.size() - chunk));
  return png;
}

/// The start of a baseline JPEG: SOI, an APP0 segment, then a start-of-frame claiming width x height.
std::vector<std::uint8_t> jpeg_header(std::uint16_t width, std::uint16_t height) {
  std::vector<std::uint8_t> jpg{0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0};
  jpg.insert(jpg.end(), {0xff, 0xc0, 0, 17, 8});
  jpg.insert(jpg.end(), {static_cast<std::uint8_t>(height >> 8), static_cast<std::uint8_t>(height),
                         static_cast<std::uint8_t>(width >> 8), static_cast<std::uint8_t>(width)});
  jpg.insert(jpg.end(), {3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1});  // three components, 4:2:0
  return jpg;
}

/// A 24-bit BMP; a negative height stores the rows top-down. `rgb` may be empty to make a header only.
std::vector<std::uint8_t> bmp(std::int32_t width, std::int32_t height, const std::vector<std::uint8_t>& rgb) {
  const std::uint32_t row_bytes = (static_cast<std::uint32_t>(width) * 3 + 3) / 4 * 4;
  const std::uint32_t rows = static_cast<std::uint32_t>(height < 0 ? -height : height);
  std::vector<std::uint8_t> out{'B', 'M'};
  put_le32(out, 54 + row_bytes * rows);
  put_le32(out, 0);   // reserved
  put_le32(out, 54);  // pixel data offset
  put_le32(out, 40);  // BITMAPINFOHEADER
  put_le32(out, static_cast<std::uint32_t>(width));
  put_le32(out, static_cast<std::uint32_t>(height));
  put_le16(out, 1);   // planes
  put_le16(out, 24);  // bits per pixel
  // No compression, then image size, resolutions and palette counts left at 0.
  for (int i = 0; i < 6; ++i) put_le32(out, 0);
  if (rgb.empty()) return out;
  for (std::uint32_t stored = 0; stored < rows; ++stored) {
    const std::uint32_t y = height < 0 ? stored : rows - 1 - stored;  // positive height: bottom row first
    for (std::int32_t x = 0; x < width; ++x) {
      const std::size_t i =
          (static_cast<std::size_t>(y) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x)) * 3;
      out.insert(out.end(), {rgb[i + 2], rgb[i + 1], rgb[i]});
    }
    for (std::uint32_t pad = static_cast<std::uint32_t>(width) * 3; pad < row_bytes; ++pad) out.push_back(0);
  }
  return out;
}

float at(const visopt::Tensor& t, int c, int y, int x) { return t.data_as<float>()[(c * t.dim(1) + y) * t.dim(2) + x]; }

fs::path bundled_data_dir() {
  return fs::path(__FILE__).parent_path().parent_path().parent_path() / "examples" / "data";
}

}  // namespace

TEST_CASE("a PNG written by libpng reads back pixel for pixel", "[image]") {
  TempDir dir;
  const Image original = make_image(
      7, 5, [](int x, int y) { return static_cast<std::uint8_t>(x * 30 + y); },
      [](int x, int y) { return static_cast<std::uint8_t>(255 - y * 40 - x); },
      [](int x, int y) { return static_cast<std::uint8_t>((x * y * 17) % 256); });
  const fs::path file = dir.path / "colour.png";
  write_bytes(file, encode_png(original.width, original.height, 3, original.rgb));

  const Image loaded = visopt::io::load_image(file);
  CHECK(loaded.width == 7);
  CHECK(loaded.height == 5);
  CHECK(loaded.rgb == original.rgb);

  std::ifstream in(file, std::ios::binary);
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(visopt::io::load_image_from_memory(bytes).rgb == original.rgb);

  // A zero-length IDAT chunk before the data (valid PNG; it made stb_image, visopt's PNG decoder until
  // 2026-12, call memcpy with a null buffer, found by tests/fuzz/fuzz_image): left out before decoding.
  std::vector<std::uint8_t> empty_data{0, 0, 0, 0};
  const std::size_t type = empty_data.size();
  empty_data.insert(empty_data.end(), {'I', 'D', 'A', 'T'});
  put_be32(empty_data, crc32(empty_data.data() + type, 4));
  std::vector<std::uint8_t> with_empty = bytes;
  with_empty.insert(with_empty.begin() + 33, empty_data.begin(), empty_data.end());  // after the signature and IHDR
  CHECK(visopt::io::load_image_from_memory(with_empty, "empty-idat.png").rgb == original.rgb);
  CHECK(visopt::io::detail::check_png_chunks(with_empty).repaired == bytes);
  CHECK_FALSE(visopt::io::detail::check_png_chunks(bytes).repaired.has_value());

  // The same chunk as a truncated file's last, its CRC cut off (tests/fuzz/corpus/image/
  // regression_png_empty_idat_no_crc.png): stb copies the data before it reads the CRC, so the chunk
  // goes all the same, and what is left is a PNG without image data: an error.
  std::vector<std::uint8_t> cut(bytes.begin(), bytes.begin() + 33);  // signature and IHDR
  cut.insert(cut.end(), empty_data.begin(), empty_data.begin() + 10);   // length, type, 2 of 4 CRC bytes
  CHECK(visopt::io::detail::check_png_chunks(cut).repaired == std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + 33));
  VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(cut, "cut.png"), "'cut.png'");

  // An IDAT chunk declaring far more data than the file holds (tests/fuzz/corpus/image/
  // regression_png_idat_longer_than_file.png): stb would grow its buffer to the declared size first.
  std::vector<std::uint8_t> huge(bytes.begin(), bytes.begin() + 33);
  put_be32(huge, 0x3fff0000);  // 1 GiB - 64 KiB, under stb's own 1 GiB chunk limit
  huge.insert(huge.end(), {'I', 'D', 'A', 'T', 0x78, 0x9c});
  VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(huge, "huge.png"),
                       "'huge.png': corrupt PNG: the IDAT chunk at byte 33 declares 1073676288 bytes of data, but only 2 follow it");
}

TEST_CASE("grey and top-down BMP images load as RGB in row order", "[image]") {
  TempDir dir;
  const std::vector<std::uint8_t> grey{0, 50, 100, 150, 200, 250};
  const fs::path file = dir.path / "grey.png";
  write_bytes(file, encode_png(3, 2, 1, grey));
  const Image loaded = visopt::io::load_image(file);
  REQUIRE(loaded.rgb.size() == 18);
  for (std::size_t i = 0; i < grey.size(); ++i) {
    CHECK(loaded.rgb[i * 3] == grey[i]);
    CHECK(loaded.rgb[i * 3 + 1] == grey[i]);
    CHECK(loaded.rgb[i * 3 + 2] == grey[i]);
  }

  const std::vector<std::uint8_t> rgb{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18};  // 3x2
#if defined(VISOPT_IMAGE_STB)
  for (const std::int32_t height : {2, -2}) {
    const Image image = visopt::io::load_image_from_memory(bmp(3, height, rgb), "tiny.bmp");
    CHECK(image.width == 3);
    CHECK(image.height == 2);
    CHECK(image.rgb == rgb);
  }
#else
  VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(bmp(3, 2, rgb), "tiny.bmp"),
                       "BMP and GIF are decoded by stb_image, which this program was built without");
#endif
}

TEST_CASE("the bundled sample JPEG decodes as PIL decodes it, and the class list loads", "[image]") {
  const Image sample = visopt::io::load_image(bundled_data_dir() / "sample.jpg");
  REQUIRE(sample.width == 384);
  REQUIRE(sample.height == 450);
  // PIL 9.4 (the same libjpeg-turbo): Image.open('sample.jpg').convert('RGB').tobytes(): its byte sum, the
  // first two and the last two pixels. A PyTorch pipeline sees these pixels too.
  std::uint64_t sum = 0;
  for (const std::uint8_t v : sample.rgb) sum += v;
  CHECK(sum == 41687455u);
  CHECK(std::vector<int>(sample.rgb.begin(), sample.rgb.begin() + 6) == std::vector<int>{22, 24, 81, 28, 30, 89});
  CHECK(std::vector<int>(sample.rgb.end() - 6, sample.rgb.end()) == std::vector<int>{14, 11, 18, 14, 11, 18});
  const visopt::Tensor x = visopt::io::preprocess(sample);
  CHECK(x.shape() == visopt::Shape{3, 224, 224});

  const auto names = visopt::io::load_class_names(bundled_data_dir() / "imagenet_classes.txt", 1000);
  CHECK(names.front() == "tench");
  CHECK(names[281] == "tabby");
  CHECK(names.back() == "toilet tissue");
}

TEST_CASE("a CMYK JPEG converts to RGB as PIL converts it", "[image]") {
  // tests/data/cmyk_40x30.jpg: random C, M, Y and K planes saved by PIL 9.4 (Adobe's inverted CMYK);
  // Image.open(...).convert('RGB').tobytes(): its byte sum, first two pixels and last pixel.
  const Image cmyk = visopt::io::load_image(bundled_data_dir().parent_path().parent_path() / "tests" / "data" / "cmyk_40x30.jpg");
  REQUIRE(cmyk.rgb.size() == 40 * 30 * 3);
  std::uint64_t sum = 0;
  for (const std::uint8_t v : cmyk.rgb) sum += v;
  CHECK(sum == 222441u);
  CHECK(std::vector<int>(cmyk.rgb.begin(), cmyk.rgb.begin() + 6) == std::vector<int>{165, 122, 54, 60, 15, 66});
  CHECK(std::vector<int>(cmyk.rgb.end() - 3, cmyk.rgb.end()) == std::vector<int>{49, 40, 6});
}

TEST_CASE("libpng: grey+alpha and RGBA PNGs load with alpha dropped, not composited", "[image]") {
  std::vector<std::uint8_t> rgba;
  for (int i = 0; i < 15; ++i) {
    for (int c = 0; c < 4; ++c) rgba.push_back(static_cast<std::uint8_t>(i * 11 + c * 60));
  }
  const Image a = visopt::io::load_image_from_memory(encode_png(5, 3, 4, rgba), "rgba.png");
  REQUIRE(a.rgb.size() == 45);
  for (std::size_t i = 0; i < 15; ++i) {
    for (std::size_t c = 0; c < 3; ++c) CHECK(a.rgb[i * 3 + c] == rgba[i * 4 + c]);
  }
  CHECK(visopt::io::image_decoders.starts_with("libjpeg (JPEG), libpng (PNG)"));
}

TEST_CASE("resize follows a triangle filter that widens when shrinking", "[image]") {
  // 4 -> 2 pixels: scale 2, so the filter radius is 2 input pixels. Output 0 is centred at 1.0 and sees
  // input centres 0.5, 1.5, 2.5 with weights 0.75, 0.75, 0.25 (normalised by 1.75).
  const Image row{4, 1, {0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255}};
  const Image half = visopt::io::resize_image(row, 2, 1);
  REQUIRE(half.rgb.size() == 6);
  CHECK(half.rgb[0] == 71);   // (0*.75 + 100*.75 + 200*.25) / 1.75 = 71.4; PIL 9.4 BILINEAR gives 71 too
  CHECK(half.rgb[3] == 209);  // (100*.25 + 200*.75 + 255*.75) / 1.75 = 209.3; PIL: 209

  // 2 -> 4 pixels (enlarging): plain bilinear between pixel centres, edges clamped.
  const Image pair{2, 1, {0, 0, 0, 200, 200, 200}};
  const Image wide = visopt::io::resize_image(pair, 4, 1);
  CHECK(std::vector<int>{wide.rgb[0], wide.rgb[3], wide.rgb[6], wide.rgb[9]} == std::vector<int>{0, 50, 150, 200});

  const Image same = visopt::io::resize_image(row, 4, 1);
  CHECK(same.rgb == row.rgb);
  VISOPT_REQUIRE_ERROR(visopt::io::resize_image(row, 0, 1), "target size 0x1");
}

TEST_CASE("preprocess resizes the shorter side, centre-crops and normalises exactly", "[image]") {
  const visopt::io::Preprocess options;
  SECTION("a constant 300x200 image becomes (v/255 - mean)/std everywhere") {
    const std::array<std::uint8_t, 3> colour{10, 128, 250};
    for (const auto& [w, h] : {std::pair{300, 200}, std::pair{200, 300}}) {
      const Image image = constant_image(w, h, colour[0], colour[1], colour[2]);
      const Image resized = visopt::io::resize_image(image, w > h ? 384 : 256, w > h ? 256 : 384);
      CHECK(resized.rgb == constant_image(resized.width, resized.height, colour[0], colour[1], colour[2]).rgb);

      const visopt::Tensor x = visopt::io::preprocess(image, options);
      REQUIRE(x.shape() == visopt::Shape{3, 224, 224});
      REQUIRE(x.dtype() == visopt::DType::f32);
      for (int c = 0; c < 3; ++c) {
        const auto k = static_cast<std::size_t>(c);
        const float expected = (static_cast<float>(colour[k]) / 255.0f - options.mean[k]) / options.std[k];
        int mismatches = 0;
        for (int y = 0; y < 224; ++y) {
          for (int px = 0; px < 224; ++px) mismatches += at(x, c, y, px) != expected ? 1 : 0;
        }
        CHECK(mismatches == 0);
      }
    }
  }
  SECTION("the crop is centred with Python's round-half-to-even offset") {
    // The shorter side is already 256, so nothing is resampled and pixel (x, y) keeps R = x, G = y.
    for (const auto& [width, left] : {std::pair{256, 16}, std::pair{300, 38}, std::pair{257, 16}, std::pair{259, 18}}) {
      const Image image = make_image(
          width, 256, [](int x, int) { return static_cast<std::uint8_t>(x % 256); },
          [](int, int y) { return static_cast<std::uint8_t>(y); }, [](int, int) { return std::uint8_t{0}; });
      const visopt::Tensor x = visopt::io::preprocess(image, options);
      REQUIRE(x.shape() == visopt::Shape{3, 224, 224});
      for (const int px : {0, 100, 223}) {
        const float r = static_cast<float>((px + left) % 256) / 255.0f;
        const float g = static_cast<float>(5 + 16) / 255.0f;  // row 5 of the crop is row 16 of the image
        CHECK(at(x, 0, 5, px) == (r - options.mean[0]) / options.std[0]);
        CHECK(at(x, 1, 5, px) == (g - options.mean[1]) / options.std[1]);
      }
    }
  }
  SECTION("bad options are rejected") {
    const Image image = constant_image(8, 8, 1, 2, 3);
    VISOPT_REQUIRE_ERROR(visopt::io::preprocess(image, {.resize = 200, .crop = 224}), "crop 224 and resize 200");
    VISOPT_REQUIRE_ERROR(visopt::io::preprocess(Image{}), "image is 0x0");
  }
}

TEST_CASE("unreadable images are rejected with the file's name and the reason", "[image]") {
  TempDir dir;
  SECTION("missing file and directory") {
    VISOPT_REQUIRE_ERROR(visopt::io::load_image(dir.path / "missing.png"), "missing.png': no such file");
    VISOPT_REQUIRE_ERROR(visopt::io::load_image(dir.path), "not a regular file");
  }
  SECTION("empty, corrupt and truncated data") {
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory({}, "empty.png"),
                         "io: cannot read image 'empty.png': it is empty");
    const std::vector<std::uint8_t> junk{'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'};
    write_bytes(dir.path / "junk.jpg", junk);
    VISOPT_REQUIRE_ERROR(visopt::io::load_image(dir.path / "junk.jpg"), "junk.jpg': not a JPEG, PNG, BMP or GIF image");
    // stb_image 2.27 reads past its buffer on a 16-bit PGM (CVE-2021-42716): formats beyond these four are refused.
    const std::string pgm = "P5\n2 2\n65535\n\1\2\3\4\5\6\7\10";
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(std::vector<std::uint8_t>(pgm.begin(), pgm.end()), "x.pgm"),
                         "x.pgm': not a JPEG, PNG, BMP or GIF image");
    // A Huffman table of 654 codes (at most 256 exist) would overrun stb_image 2.27's tables: refused first.
    std::vector<std::uint8_t> bad_table = jpeg_header(8, 8);
    const std::vector<std::uint8_t> counts{0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 99, 99, 99, 99, 255};
    bad_table.insert(bad_table.end(), {0xff, 0xc4, static_cast<std::uint8_t>((2 + 17 + 654) >> 8),
                                       static_cast<std::uint8_t>(2 + 17 + 654), 0x00});
    bad_table.insert(bad_table.end(), counts.begin(), counts.end());
    bad_table.resize(bad_table.size() + 654, 0);
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(bad_table, "bad.jpg"),
                         "'bad.jpg': corrupt JPEG: a Huffman table defines 654 codes, at most 256 are possible");
    // Found by tests/fuzz/fuzz_image: stb reads Huffman tables while the segment's length has bytes left,
    // so a second table that starts on the segment's last byte takes its counts from beyond the segment.
    // Those 16 x 19 = 304 codes would overrun stb's tables just the same: they must be counted too.
    std::vector<std::uint8_t> straddling = jpeg_header(8, 8);
    straddling.insert(straddling.end(), {0xff, 0xc4, 0, 2 + 17 + 1, 0x00});  // one empty table and one byte more
    straddling.resize(straddling.size() + 16, 0);
    straddling.push_back(0x01);                                  // the second table's class and id
    straddling.resize(straddling.size() + 16, 19);               // its code counts, past the segment's end
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(straddling, "straddling.jpg"),
                         "'straddling.jpg': corrupt JPEG: a Huffman table defines 304 codes, at most 256 are possible");
    // Found by tests/fuzz/fuzz_image: stb 2.27 does not clear its decoder, so a scan using a table no
    // segment defined decodes with leftover heap bytes (an out-of-bounds Huffman index). Refused first.
    const auto segment = [](std::vector<std::uint8_t>& jpg, std::uint8_t marker, std::vector<std::uint8_t> body) {
      jpg.insert(jpg.end(), {0xff, marker, static_cast<std::uint8_t>((body.size() + 2) >> 8), static_cast<std::uint8_t>(body.size() + 2)});
      jpg.insert(jpg.end(), body.begin(), body.end());
    };
    // A table of one code (length 1, symbol 0) with the class/id byte first; 64 quantization values of 1.
    const auto huffman_table = [](std::uint8_t class_and_id) {
      std::vector<std::uint8_t> table(18, 0);
      table[0] = class_and_id;
      table[1] = 1;
      return table;
    };
    const auto quantization_table = [](std::uint8_t id) {
      std::vector<std::uint8_t> table(65, 1);
      table[0] = id;
      return table;
    };
    const std::vector<std::uint8_t> scan{1, 1, 0x00, 0, 63, 0};  // component 1 with DC and AC table 0, baseline
    std::vector<std::uint8_t> no_ac = jpeg_header(8, 8);
    segment(no_ac, 0xdb, quantization_table(0));
    segment(no_ac, 0xdb, quantization_table(1));
    segment(no_ac, 0xc4, huffman_table(0x00));  // DC table 0 only
    segment(no_ac, 0xda, scan);
    no_ac.insert(no_ac.end(), {0x12, 0x34, 0xff, 0xd9});
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(no_ac, "no-ac.jpg"),
                         "'no-ac.jpg': corrupt JPEG: a scan uses AC Huffman table 0, which no DHT segment before it defines");
    std::vector<std::uint8_t> no_quantization = jpeg_header(8, 8);
    segment(no_quantization, 0xc4, huffman_table(0x00));
    segment(no_quantization, 0xc4, huffman_table(0x10));  // AC table 0
    segment(no_quantization, 0xda, scan);
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(no_quantization, "no-dqt.jpg"),
                         "'no-dqt.jpg': corrupt JPEG: a scan uses quantization table 0, which no DQT segment before it defines");
    // A valid header for a small image whose pixel data is missing.
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(png_header(4, 4), "truncated.png"),
                         "io: cannot read image 'truncated.png': corrupt PNG: ");
    // A JPEG cut in half: libjpeg would fill the rest with grey; PIL and visopt refuse it.
    std::ifstream in(bundled_data_dir() / "sample.jpg", std::ios::binary);
    const std::vector<std::uint8_t> jpeg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(std::span<const std::uint8_t>(jpeg.data(), jpeg.size() / 2), "half.jpg"),
                         "io: cannot read image 'half.jpg': corrupt JPEG: Premature end of JPEG file");
    std::vector<std::uint8_t> scrambled = jpeg;
    for (std::size_t i = 20; i < 600; ++i) scrambled[i] = static_cast<std::uint8_t>(i * 7);
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(scrambled, "scrambled.jpg"), "'scrambled.jpg': corrupt JPEG");
  }
  SECTION("absurd dimensions, refused from the header alone") {
    // The claimed size is read from the header before any decoder sees the file.
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(png_header(60000, 60000), "huge.png"),
                         "io: cannot read image 'huge.png': its header claims 60000x60000 pixels; the largest side "
                         "accepted is 16384");
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(jpeg_header(30000, 40000), "huge.jpg"),
                         "'huge.jpg': its header claims 30000x40000 pixels");
#if defined(VISOPT_IMAGE_STB)
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(bmp(60000, 60000, {}), "huge.bmp"),
                         "'huge.bmp': its header claims 60000x60000 pixels; the largest side accepted is 16384");
#endif
    // A BMP too short for the rows its header claims (stb_image would decode the missing ones as zeros, for
    // seconds: tests/fuzz/fuzz_image), refused before any decoder sees it.
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(bmp(8197, 11527, {}), "rows_missing.bmp"),
                         "'rows_missing.bmp': a truncated BMP: its header claims 8197x11527 pixels of 24 bits, 283471983 "
                         "bytes of pixels from byte 54, and the file has 54 bytes");
    // A BMP whose info header stops before its compression field (stb_image read the rest as zeros and
    // decoded 8197x11527 pixels: tests/fuzz/fuzz_image), and one too short for its sizes.
    std::vector<std::uint8_t> header_cut = bmp(8197, 11527, {});
    header_cut.resize(30);
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(header_cut, "header_cut.bmp"),
                         "'header_cut.bmp': a truncated BMP: the file has 30 bytes, and its headers need 34");
    header_cut.resize(17);
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(header_cut, "header_cut.bmp"), "'header_cut.bmp': a truncated BMP");
    // 5 pixels of 24 bits: 15 bytes a row, padded to 16. The last row's padding byte may be missing, a pixel byte may not.
    std::vector<std::uint8_t> short_bmp = bmp(5, 4, std::vector<std::uint8_t>(5 * 4 * 3, 7));
    short_bmp.pop_back();
#if defined(VISOPT_IMAGE_STB)
    CHECK(visopt::io::load_image_from_memory(short_bmp, "unpadded.bmp").width == 5);
#endif
    short_bmp.pop_back();
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(short_bmp, "short.bmp"), "'short.bmp': a truncated BMP");
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(png_header(20000, 1), "wide.png"),
                         "its header claims 20000x1 pixels; the largest side accepted is 16384");
    VISOPT_REQUIRE_ERROR(visopt::io::load_image_from_memory(png_header(12000, 12000), "big.png"),
                         "its header claims 12000x12000 pixels; at most 100000000 pixels are accepted");
  }
}

TEST_CASE("stack_images batches [C,H,W] tensors and refuses mismatches", "[image]") {
  std::vector<float> a(24), b(24);
  for (std::size_t i = 0; i < 24; ++i) {
    a[i] = static_cast<float>(i);
    b[i] = -static_cast<float>(i);
  }
  const visopt::Tensor batch =
      visopt::io::stack_images({visopt::Tensor::from_vector({3, 2, 4}, a), visopt::Tensor::from_vector({3, 2, 4}, b)});
  REQUIRE(batch.shape() == visopt::Shape{2, 3, 2, 4});
  CHECK(batch.data_as<float>()[23] == 23.0f);
  CHECK(batch.data_as<float>()[24 + 23] == -23.0f);

  VISOPT_REQUIRE_ERROR(visopt::io::stack_images({}), "no images");
  VISOPT_REQUIRE_ERROR(
      visopt::io::stack_images({visopt::Tensor::from_vector({3, 2, 4}, a), visopt::Tensor::from_vector({3, 4, 2}, b)}),
      "image 1 is f32 [3,4,2] but image 0 is f32 [3,2,4]");
  VISOPT_REQUIRE_ERROR(visopt::io::stack_images({visopt::Tensor::from_vector({24}, a)}), "expected [C,H,W]");
}

TEST_CASE("class-name files: one name per line, counted in every error", "[image][class_names]") {
  TempDir dir;
  write_text(dir.path / "three.txt", "tench\r\ngoldfish\ngreat white shark\n\n");
  CHECK(visopt::io::load_class_names(dir.path / "three.txt") ==
        std::vector<std::string>{"tench", "goldfish", "great white shark"});
  VISOPT_REQUIRE_ERROR(visopt::io::load_class_names(dir.path / "three.txt", 1000), "holds 3 names, expected 1000");

  write_text(dir.path / "gap.txt", "a\n\nb\n");
  VISOPT_REQUIRE_ERROR(visopt::io::load_class_names(dir.path / "gap.txt"), "line 2 of 3 is blank");
  write_text(dir.path / "empty.txt", "\n\n");
  VISOPT_REQUIRE_ERROR(visopt::io::load_class_names(dir.path / "empty.txt"), "holds no names");
  VISOPT_REQUIRE_ERROR(visopt::io::load_class_names(dir.path / "none.txt"), "none.txt'");
}

TEST_CASE("top_k ranks logits largest first with softmax probabilities", "[image][top_k]") {
  const std::vector<float> logits{1.0f, 3.0f, -2.0f, 3.0f, 0.5f};
  const auto top = visopt::io::top_k(logits, 3);
  REQUIRE(top.size() == 3);
  CHECK(top[0].index == 1);  // a tie goes to the lower index
  CHECK(top[1].index == 3);
  CHECK(top[2].index == 0);
  double total = 0;
  for (const float v : logits) total += std::exp(double(v));
  CHECK(top[0].probability == Approx(std::exp(3.0) / total));
  CHECK(top[2].probability == Approx(std::exp(1.0) / total));
  CHECK(top[2].logit == 1.0f);
  CHECK(visopt::io::top_k(logits, 99).size() == logits.size());
  CHECK_THROWS_WITH(visopt::io::top_k(std::span<const float>{}, 5), Catch::Contains("row of logits is empty"));
}
