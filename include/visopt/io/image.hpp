#pragma once
// Image loading: an encoded image into an 8-bit RGB io::Image, after the checks of image_checks.hpp. One
// decoder a format: JPEG with libjpeg(-turbo) and PNG with libpng (link both: Debian's libjpeg-dev and
// libpng-dev), BMP and GIF with stb_image where VISOPT_IMAGE_STB is defined (libstb-dev: link libstb, or
// define VISOPT_STB_IMPLEMENTATION in one translation unit). visopt's CMake sets this up for its own
// programs (cmake/VisoptImages.cmake). The transforms that make a model's input from an image
// (torchvision's and timm's) are in io/preprocess.hpp, which this header includes.

#include <climits>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "../core/error.hpp"
#include "image_checks.hpp"
#include "preprocess.hpp"

#include "image_decode_libjpeg.hpp"
#if defined(VISOPT_IMAGE_STB)
#include "image_decode_stb.hpp"
#endif

namespace visopt::io {

/// The libraries that decode images in this program.
#if defined(VISOPT_IMAGE_STB)
inline constexpr std::string_view image_decoders = "libjpeg (JPEG), libpng (PNG), stb_image (BMP, GIF)";
#else
inline constexpr std::string_view image_decoders = "libjpeg (JPEG), libpng (PNG)";
#endif

/// Decodes an encoded image held in memory into 8-bit RGB (grey is replicated, alpha dropped).
/// Throws visopt::Error naming `name` for empty or corrupt data, and for dimensions over
/// max_image_side / max_image_pixels, which are read from the header before any pixel is decoded.
inline Image load_image_from_memory(std::span<const std::uint8_t> bytes, std::string_view name = "<memory>") {
  require(!bytes.empty(), detail::image_error_prefix(name), "it is empty");
  require(bytes.size() <= static_cast<std::size_t>(INT_MAX), detail::image_error_prefix(name), "it is ", bytes.size(),
          " bytes; at most ", INT_MAX, " are read");
  const detail::PngChunkCheck png = detail::check_png_chunks(bytes);
  require(png.defect.empty(), detail::image_error_prefix(name), png.defect);
  if (png.repaired) bytes = *png.repaired;
  const detail::HeaderFacts facts = detail::inspect_header(bytes);
  require(facts.defect.empty(), detail::image_error_prefix(name), facts.defect);
  if (facts.size) detail::require_sane_dimensions(name, facts.size->first, facts.size->second);
  if (bytes[0] == 0x89) return detail::decode_png(bytes, name);  // inspect_header passed only the four formats
  if (bytes[0] == 0xff) return detail::decode_jpeg(bytes, name);
#if defined(VISOPT_IMAGE_STB)
  return detail::decode_with_stb(bytes, name, facts);
#else
  fail(detail::image_error_prefix(name) +
       "BMP and GIF are decoded by stb_image, which this program was built without (define VISOPT_IMAGE_STB; Debian: libstb-dev)");
#endif
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
          " bytes; at most ", INT_MAX, " are read");
  std::ifstream file(path, std::ios::binary);
  require(file.is_open(), detail::image_error_prefix(name), "cannot open it");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  file.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  require(file.gcount() == static_cast<std::streamsize>(size), detail::image_error_prefix(name), "read ", file.gcount(),
          " of its ", size, " bytes");
  return load_image_from_memory(bytes, name);
}

}  // namespace visopt::io
