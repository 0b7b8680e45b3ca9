// Image loading where stb_image is not installed: io/image.hpp with VISOPT_IMAGE_LIBJPEG decodes JPEG with
// libjpeg(-turbo) and PNG with libpng, after the same header checks; BMP and GIF are refused with advice.

#include <png.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include <visopt/io/image.hpp>

#include "catch.hpp"

using namespace visopt;

namespace {

std::vector<std::uint8_t> file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::filesystem::path sample_jpeg() {
  const char* source = std::getenv("VISOPT_SOURCE_DIR");
  return std::filesystem::path(source != nullptr ? source : ".") / "examples" / "data" / "sample.jpg";
}

/// A PNG of `format` (PNG_FORMAT_RGB, _GA, _RGBA, ...) holding `pixels`, written by libpng.
std::vector<std::uint8_t> encode_png(int width, int height, png_uint_32 format, const std::vector<std::uint8_t>& pixels) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = format;
  png_alloc_size_t size = 0;
  REQUIRE(png_image_write_to_memory(&image, nullptr, &size, 0, pixels.data(), 0, nullptr) != 0);
  std::vector<std::uint8_t> out(size);
  REQUIRE(png_image_write_to_memory(&image, out.data(), &size, 0, pixels.data(), 0, nullptr) != 0);
  out.resize(size);
  return out;
}

}  // namespace

TEST_CASE("libjpeg: the bundled sample decodes as PIL (which uses the same libjpeg) decodes it", "[image_libjpeg]") {
  CHECK(io::image_decoder == "libjpeg and libpng");
  const io::Image image = io::load_image(sample_jpeg());
  REQUIRE(image.width == 384);
  REQUIRE(image.height == 450);
  // PIL 9.4: Image.open('sample.jpg').convert('RGB').tobytes(): its sum, first two and last two pixels.
  std::uint64_t sum = 0;
  for (const std::uint8_t v : image.rgb) sum += v;
  CHECK(sum == 41687455u);
  CHECK(std::vector<int>(image.rgb.begin(), image.rgb.begin() + 6) == std::vector<int>{22, 24, 81, 28, 30, 89});
  CHECK(std::vector<int>(image.rgb.end() - 6, image.rgb.end()) == std::vector<int>{14, 11, 18, 14, 11, 18});
}

TEST_CASE("libpng: RGB, grey and RGBA PNGs read back pixel for pixel (grey replicated, alpha dropped)", "[image_libjpeg]") {
  std::vector<std::uint8_t> rgb, grey, rgba;
  for (int i = 0; i < 5 * 3; ++i) {
    grey.push_back(static_cast<std::uint8_t>(i * 17));
    for (int c = 0; c < 3; ++c) rgb.push_back(static_cast<std::uint8_t>(i * 13 + c * 71));
    for (int c = 0; c < 4; ++c) rgba.push_back(static_cast<std::uint8_t>(i * 11 + c * 60));
  }
  const auto as_span = [](const std::vector<std::uint8_t>& v) { return std::span<const std::uint8_t>(v); };
  CHECK(io::load_image_from_memory(as_span(encode_png(5, 3, PNG_FORMAT_RGB, rgb))).rgb == rgb);
  const io::Image g = io::load_image_from_memory(as_span(encode_png(5, 3, PNG_FORMAT_GRAY, grey)));
  REQUIRE(g.rgb.size() == 45);
  for (int i = 0; i < 15; ++i) CHECK((g.rgb[i * 3] == grey[i] && g.rgb[i * 3 + 1] == grey[i] && g.rgb[i * 3 + 2] == grey[i]));
  const io::Image a = io::load_image_from_memory(as_span(encode_png(5, 3, PNG_FORMAT_RGBA, rgba)));
  for (int i = 0; i < 15; ++i) {
    for (int c = 0; c < 3; ++c) CHECK(a.rgb[i * 3 + c] == rgba[i * 4 + c]);
  }
}

TEST_CASE("libjpeg and libpng: broken and unsupported images are refused with the reason", "[image_libjpeg]") {
  const std::vector<std::uint8_t> jpeg = file_bytes(sample_jpeg());
  const std::span<const std::uint8_t> half(jpeg.data(), jpeg.size() / 2);
  VISOPT_REQUIRE_ERROR(io::load_image_from_memory(half, "half.jpg"), "io: cannot read image 'half.jpg': corrupt JPEG: Premature end");
  std::vector<std::uint8_t> scrambled = jpeg;
  for (std::size_t i = 20; i < 600; ++i) scrambled[i] = static_cast<std::uint8_t>(i * 7);
  VISOPT_REQUIRE_ERROR(io::load_image_from_memory(scrambled, "scrambled.jpg"), "io: cannot read image 'scrambled.jpg': corrupt JPEG");
  const std::vector<std::uint8_t> bmp{'B', 'M', 0, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0};
  VISOPT_REQUIRE_ERROR(io::load_image_from_memory(bmp, "a.bmp"), "BMP and GIF need stb_image (Debian: libstb-dev)");
  const std::vector<std::uint8_t> text{'h', 'e', 'l', 'l', 'o'};
  VISOPT_REQUIRE_ERROR(io::load_image_from_memory(text, "a.txt"), "not a JPEG, PNG, BMP or GIF image");
  std::vector<std::uint8_t> png = encode_png(2, 2, PNG_FORMAT_RGB, std::vector<std::uint8_t>(12, 9));
  png[16] = 0x00, png[17] = 0x01, png[18] = 0x00, png[19] = 0x00;  // IHDR width 65536: refused from the header
  VISOPT_REQUIRE_ERROR(io::load_image_from_memory(png, "wide.png"), "the largest side accepted is 16384");
  std::vector<std::uint8_t> cut = encode_png(4, 4, PNG_FORMAT_RGB, std::vector<std::uint8_t>(48, 200));
  cut.resize(cut.size() - 20);
  VISOPT_REQUIRE_ERROR(io::load_image_from_memory(cut, "cut.png"), "io: cannot read image 'cut.png'");
}
