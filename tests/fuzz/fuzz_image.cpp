// libFuzzer target for image loading: any bytes must either decode to an image whose size matches its
// pixels, which then preprocesses (resize, crop, normalise) without fault, or be refused with a
// visopt::Error. Dimensions over max_image_side / max_image_pixels must be refused before decoding.

#include <cstddef>
#include <cstdint>
#include <span>

// JPEG and PNG go to libjpeg and libpng (whose errors come back by longjmp through visopt's wrappers),
// BMP and GIF to stb_image: every decoder visopt has.
#define VISOPT_IMAGE_STB
#define VISOPT_STB_IMPLEMENTATION
#include <visopt/io/image.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const visopt::io::Image image = visopt::io::load_image_from_memory(std::span<const std::uint8_t>(data, size), "fuzz");
    if (image.width <= 0 || image.height <= 0 || image.width > visopt::io::max_image_side ||
        image.height > visopt::io::max_image_side ||
        image.rgb.size() != static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.height) * 3)
      __builtin_trap();
    // Small resize and crop: exercises the resampling on every decoded shape while staying fast.
    try {
      const visopt::Tensor t = visopt::io::preprocess(image, {.resize = 16, .crop = 8});
      if (t.numel() != 3 * 8 * 8) __builtin_trap();
    } catch (const visopt::Error&) {  // an extreme aspect ratio: the longer side would pass max_image_side
    }
  } catch (const visopt::Error&) {
  }
  return 0;
}
