#pragma once
// ViT's patch embedding without a convolution: patchify x into one row per patch, then a linear layer
// with the conv weight [D,C,p,p] viewed as [D,C·p·p] equals Conv2d(C, D, kernel=stride=p).

#include <algorithm>
#include <cstring>

#include "common.hpp"

namespace visopt::backend::reference {

/// x [N,C,H,W] into y [N, (H/p)·(W/p), C·p·p]: row gy·(W/p)+gx holds patch (gy,gx) (row-major over the
/// patch grid, like a conv output flattened), its columns ordered (c, kh, kw) like the conv weight.
/// Like the conv, a remainder of H or W that does not fill a patch is dropped.
inline void patchify(TensorView x, int patch, TensorView y) {
  constexpr std::string_view where = "reference::patchify";
  detail::require_dense_f32(x, where, "input");
  detail::require_dense_f32(y, where, "output");
  require(x.rank() == 4, where, ": input has shape ", x.shape(), ", expected rank 4 [N,C,H,W]");
  require(patch >= 1 && x.dim(2) >= patch && x.dim(3) >= patch, where, ": input has shape ", x.shape(),
          ", smaller than one ", patch, "x", patch, " patch");
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3), p = patch;
  const int64_t grid_h = h / p, grid_w = w / p, row_size = c * p * p;
  detail::require_shape(y, Shape{n, grid_h * grid_w, row_size}, where, "output");
  const float* in = x.data_as<float>();
  float* out = y.data_as<float>();
#pragma omp parallel for schedule(static) if (n * grid_h >= 2 && x.numel() >= 16384)
  for (int64_t ny = 0; ny < n * grid_h; ++ny) {
    const int64_t image = ny / grid_h, gy = ny % grid_h;
    for (int64_t gx = 0; gx < grid_w; ++gx) {
      float* row = out + (image * grid_h * grid_w + gy * grid_w + gx) * row_size;
      for (int64_t ch = 0; ch < c; ++ch) {
        for (int64_t kh = 0; kh < p; ++kh) {
          const float* src = in + ((image * c + ch) * h + gy * p + kh) * w + gx * p;
          std::memcpy(row + (ch * p + kh) * p, src, static_cast<std::size_t>(p) * sizeof(float));
        }
      }
    }
  }
}

}  // namespace visopt::backend::reference
