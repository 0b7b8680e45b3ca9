#pragma once
// io/image.hpp's decoders of JPEG (libjpeg-turbo) and PNG (libpng): the libraries PIL decodes with, so a
// JPEG gives the same pixels here as in a PyTorch pipeline, and well fuzzed ones (stb_image's JPEG and
// PNG decoders gave tests/fuzz/fuzz_image four bugs to fence off, and a fifth it could not). Link
// JPEG::JPEG and PNG::PNG (Debian: libjpeg-dev, libpng-dev).
//
// libjpeg reports errors by longjmp. Each function that calls into it sets its jump point first and
// holds no object with a destructor, and everything that outlives a jump lives in JpegDecoder, so a
// corrupt file unwinds nothing C++ owns: the caller sees `false` and throws.

#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE and size_t declared first
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "image_checks.hpp"

namespace visopt::io::detail {

struct JpegDecoder {
  jpeg_decompress_struct info{};
  jpeg_error_mgr error{};
  std::jmp_buf jump{};
  char message[JMSG_LENGTH_MAX] = {};
  bool created = false;

  JpegDecoder() = default;
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;
  ~JpegDecoder() {
    if (created) jpeg_destroy_decompress(&info);
  }
};

inline void jpeg_error_exit(j_common_ptr info) {
  auto* decoder = reinterpret_cast<JpegDecoder*>(info->client_data);
  (*info->err->format_message)(info, decoder->message);
  std::longjmp(decoder->jump, 1);
}
/// libjpeg's warnings: a file cut short is an error, as in PIL (libjpeg would fill the rest with grey and
/// go on); the others (stray bytes between markers) are dropped, where libjpeg would print them.
inline void jpeg_warning(j_common_ptr info, int level) {
  if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) jpeg_error_exit(info);
}

/// Reads the header of `bytes` into d.info; false with d.message set when libjpeg refuses it.
inline bool jpeg_read_header_of(JpegDecoder& d, const std::uint8_t* bytes, std::size_t size) {
  d.info.err = jpeg_std_error(&d.error);
  d.error.error_exit = jpeg_error_exit;
  d.error.emit_message = jpeg_warning;
  if (setjmp(d.jump) != 0) return false;
  jpeg_create_decompress(&d.info);
  d.created = true;
  d.info.client_data = &d;
  jpeg_mem_src(&d.info, bytes, static_cast<unsigned long>(size));
  jpeg_read_header(&d.info, TRUE);
  return true;
}

/// Decodes every scanline into `pixels`, which the caller allocated for the header's size and `components`
/// bytes a pixel; false with d.message set on corrupt data or an output of another shape.
inline bool jpeg_read_pixels(JpegDecoder& d, std::uint8_t* pixels, int components) {
  if (setjmp(d.jump) != 0) return false;
  jpeg_start_decompress(&d.info);
  if (d.info.output_width != d.info.image_width || d.info.output_height != d.info.image_height ||
      d.info.output_components != components) {
    std::snprintf(d.message, sizeof d.message, "the header says %ux%u, but libjpeg decodes %ux%u with %d components",
                  d.info.image_width, d.info.image_height, d.info.output_width, d.info.output_height, d.info.output_components);
    return false;
  }
  const std::size_t row = static_cast<std::size_t>(d.info.output_width) * static_cast<std::size_t>(components);
  while (d.info.output_scanline < d.info.output_height) {
    JSAMPROW line = pixels + static_cast<std::size_t>(d.info.output_scanline) * row;
    jpeg_read_scanlines(&d.info, &line, 1);
  }
  jpeg_finish_decompress(&d.info);
  return true;
}

inline Image decode_jpeg(std::span<const std::uint8_t> bytes, std::string_view name) {
  auto d = std::make_unique<JpegDecoder>();
  if (!jpeg_read_header_of(*d, bytes.data(), bytes.size())) fail(image_error_prefix(name) + "corrupt JPEG: " + d->message);
  require_sane_dimensions(name, static_cast<int>(d->info.image_width), static_cast<int>(d->info.image_height));
  // Grey becomes RGB in libjpeg; CMYK (stored inverted, as Adobe writes it) is converted below, as PIL does.
  const bool cmyk = d->info.jpeg_color_space == JCS_CMYK || d->info.jpeg_color_space == JCS_YCCK;
  d->info.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  const int components = cmyk ? 4 : 3;
  const auto width = static_cast<int>(d->info.image_width), height = static_cast<int>(d->info.image_height);
  const auto pixels = static_cast<std::size_t>(width) * static_cast<std::size_t>(height);
  std::vector<std::uint8_t> decoded(pixels * static_cast<std::size_t>(components));
  if (!jpeg_read_pixels(*d, decoded.data(), components)) fail(image_error_prefix(name) + "corrupt JPEG: " + d->message);
  Image image;
  image.width = width;
  image.height = height;
  if (!cmyk) {
    image.rgb = std::move(decoded);
    return image;
  }
  image.rgb.resize(pixels * 3);
  for (std::size_t i = 0; i < pixels; ++i) {
    // PIL's CMYK to RGB, on the inverted values libjpeg hands over: nk - c·nk/255, with nk = 255 - k.
    const int nk = decoded[i * 4 + 3];
    for (std::size_t c = 0; c < 3; ++c) {
      const int scaled = (255 - decoded[i * 4 + c]) * nk + 128;
      image.rgb[i * 3 + c] = static_cast<std::uint8_t>(nk - (((scaled >> 8) + scaled) >> 8));
    }
  }
  return image;
}

inline Image decode_png(std::span<const std::uint8_t> bytes, std::string_view name) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  if (png_image_begin_read_from_memory(&png, bytes.data(), bytes.size()) == 0) {
    fail(image_error_prefix(name) + "corrupt PNG: " + png.message);
  }
  struct Release {  // what begin_read allocated, also when finish_read is never reached
    png_image* image;
    ~Release() { png_image_free(image); }
  } release{&png};
  require_sane_dimensions(name, static_cast<int>(png.width), static_cast<int>(png.height));
  png.format = PNG_FORMAT_RGBA;  // alpha dropped below, not composited: what stb_image and PIL's convert('RGB') do
  const auto pixels = static_cast<std::size_t>(png.width) * static_cast<std::size_t>(png.height);
  std::vector<std::uint8_t> rgba(pixels * 4);
  if (png_image_finish_read(&png, nullptr, rgba.data(), 0, nullptr) == 0) fail(image_error_prefix(name) + "corrupt PNG: " + png.message);
  Image image;
  image.width = static_cast<int>(png.width);
  image.height = static_cast<int>(png.height);
  image.rgb.resize(pixels * 3);
  for (std::size_t i = 0; i < pixels; ++i) std::memcpy(&image.rgb[i * 3], &rgba[i * 4], 3);
  return image;
}

}  // namespace visopt::io::detail
