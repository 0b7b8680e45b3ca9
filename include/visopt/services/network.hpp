#pragma once
// The one virtual seam between a compiled model and its Engine: the Engine's type names only the
// level and backend, so it holds its network through this interface (one virtual call per run()).

#include <string>

#include "../core/tensor.hpp"

namespace visopt::runtime {

template <class Exec>
class Network {
 public:
  virtual ~Network() = default;
  /// images: a batch already checked by check_input and placed by Exec::input.
  virtual Tensor forward(Exec& exec, const Tensor& images) const = 0;
  /// Throws visopt::Error when `images` cannot be run: wrong rank, dtype, channels, size or batch.
  virtual void check_input(const TensorView& images, int max_batch) const = 0;
};

/// The checks every image model shares; `height`/`width` of 0 accept any size.
inline void check_image_batch(const TensorView& images, int max_batch, const std::string& model, std::int64_t height = 0,
                              std::int64_t width = 0) {
  require(images.dtype() == DType::f32, model, ": input must be f32 images [N,3,H,W], got ", dtype_name(images.dtype()));
  require(images.rank() == 4 && images.dim(1) == 3, model, ": input has shape ", images.shape(),
          ", expected images [N,3,H,W]");
  require(images.dim(0) >= 1 && images.dim(0) <= max_batch, model, ": batch of ", images.dim(0),
          " images, but the engine was compiled for 1..", max_batch, " (CompileOptions::max_batch)");
  require(height == 0 || (images.dim(2) == height && images.dim(3) == width), model, ": input has shape ",
          images.shape(), ", but the model takes ", height, "x", width, " images");
  require(images.is_contiguous(), model, ": input of shape ", images.shape(), " must be contiguous NCHW");
}

}  // namespace visopt::runtime
