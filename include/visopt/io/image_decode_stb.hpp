#pragma once
// io/image.hpp's decoder of BMP and GIF, with stb_image (Debian: libstb-dev), where VISOPT_IMAGE_STB is
// defined. stb_image's implementation is compiled once per program: link Debian's libstb (`-lstb`), or
// define VISOPT_STB_IMPLEMENTATION in exactly one translation unit before its first visopt include.

#include <climits>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "image_checks.hpp"

#if defined(VISOPT_STB_IMPLEMENTATION) && !defined(STB_IMAGE_IMPLEMENTATION)
#define STB_IMAGE_IMPLEMENTATION
#endif
#if __has_include(<stb/stb_image.h>)
#include <stb/stb_image.h>
#elif __has_include(<stb_image.h>)
#include <stb_image.h>
#else
#error "VISOPT_IMAGE_STB: visopt/io/image.hpp decodes BMP and GIF with stb_image: install libstb-dev (Debian), or leave VISOPT_IMAGE_STB undefined"
#endif

namespace visopt::io::detail {

inline std::string stb_reason() {
  const char* reason = stbi_failure_reason();
  return reason != nullptr ? std::string(reason) : std::string("unknown reason");
}

/// Decodes a BMP or GIF that passed the checks of image_checks.hpp (`facts`: what inspect_header found).
inline Image decode_with_stb(std::span<const std::uint8_t> bytes, std::string_view name, const HeaderFacts& facts) {
  const int length = static_cast<int>(bytes.size());
  int width = 0, height = 0, channels = 0;
  if (stbi_info_from_memory(bytes.data(), length, &width, &height, &channels) == 0) {
    const std::string reason = stb_reason();
    if (facts.size) require_sane_dimensions(name, facts.size->first, facts.size->second);
    fail(image_error_prefix(name) + reason);
  }
  // A BMP stores a top-down image's height negated, and stbi_info passes it through as it is.
  if (height < 0 && height != INT_MIN) height = -height;
  require_sane_dimensions(name, width, height);

  int decoded_width = 0, decoded_height = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes.data(), length, &decoded_width, &decoded_height, &channels, 3), stbi_image_free);
  if (!pixels) fail(image_error_prefix(name) + stb_reason());
  require(decoded_width == width && decoded_height == height, image_error_prefix(name), "header says ", width, "x", height,
          " but ", decoded_width, "x", decoded_height, " pixels were decoded");

  Image image;
  image.width = width;
  image.height = height;
  image.rgb.assign(pixels.get(), pixels.get() + static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3);
  return image;
}

}  // namespace visopt::io::detail
