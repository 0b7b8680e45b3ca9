#pragma once
// The few data movements oneDNN has no primitive for, as plain OpenMP loops over fp32 or bf16:
// cutting images into patches, assembling ViT tokens (class token, position embedding), picking the
// class token and global average pooling into fp32. Each touches every element once.

#include <cstring>
#include <type_traits>
#include <vector>

#include "../../core/tensor.hpp"

namespace visopt::backend::onednn::loops {

template <class T>
float load(const T* p, std::int64_t i) {
  if constexpr (std::is_integral_v<T>) return static_cast<float>(p[i]);  // a quantized value, in steps
  else return to_float(p[i]);
}
template <class T>
void store(T* p, std::int64_t i, float v) {
  p[i] = from_float<T>(v);
}

/// Calls f.template operator()<T>() with T the C++ type of `dtype` (float or bfloat16).
template <class F>
void with_element_type(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32: f.template operator()<float>(); return;
    case DType::bf16: f.template operator()<bfloat16>(); return;
    case DType::f16:
    case DType::s8:
    case DType::u8:
    case DType::e4m3: break;
  }
  fail(visopt::detail::concat("onednn: no host loop for ", dtype_name(dtype), " tensors (fp16 is not a CPU type here; "
                              "quantized tensors are read by int8 primitives)"));
}

/// images [N,C,H,W] (NCHW or NHWC) -> patches [N*(H/p)*(W/p), C*p*p]. A patch row is ordered
/// (c, py, px) for NCHW images and (py, px, c) for NHWC ones: either way it copies contiguous runs,
/// and the projection weight is permuted to match once (PatchEmbedOp).
inline void patchify(const TensorView& images, int patch, const TensorView& patches) {
  const std::int64_t n = images.dim(0), c = images.dim(1), h = images.dim(2), w = images.dim(3), p = patch;
  const std::int64_t gh = h / p, gw = w / p, row = c * p * p;
  const std::size_t element = dtype_size(images.dtype());
  const bool nhwc = images.is_channels_last() && !images.is_contiguous();
  const auto* src = static_cast<const std::byte*>(images.data());
  auto* dst = static_cast<std::byte*>(patches.data());
#pragma omp parallel for collapse(2)
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t gy = 0; gy < gh; ++gy) {
      for (std::int64_t gx = 0; gx < gw; ++gx) {
        std::byte* out = dst + static_cast<std::size_t>(((i * gh + gy) * gw + gx) * row) * element;
        if (nhwc) {
          for (std::int64_t py = 0; py < p; ++py) {
            const std::int64_t from = ((i * h + gy * p + py) * w + gx * p) * c;
            std::memcpy(out + static_cast<std::size_t>(py * p * c) * element, src + static_cast<std::size_t>(from) * element,
                        static_cast<std::size_t>(p * c) * element);
          }
        } else {
          for (std::int64_t ch = 0; ch < c; ++ch) {
            for (std::int64_t py = 0; py < p; ++py) {
              const std::int64_t from = ((i * c + ch) * h + gy * p + py) * w + gx * p;
              std::memcpy(out + static_cast<std::size_t>((ch * p + py) * p) * element,
                          src + static_cast<std::size_t>(from) * element, static_cast<std::size_t>(p) * element);
            }
          }
        }
      }
    }
  }
}

/// tokens [N, T+G, D] = concat(prefix_tokens [T, D], projected [N, G, D]) + position [T+G, D], summed in fp32.
inline void assemble_tokens(const TensorView& projected, const Tensor& prefix_tokens, const Tensor& position,
                            const TensorView& tokens) {
  const std::int64_t n = tokens.dim(0), l = tokens.dim(1), d = tokens.dim(2), prefix = prefix_tokens.dim(0);
  const float* first = prefix_tokens.data_as<float>();
  const float* pos = position.data_as<float>();
  with_element_type(tokens.dtype(), [&]<class T>() {
    const T* src = static_cast<const T*>(projected.data());
    T* dst = static_cast<T*>(tokens.data());
#pragma omp parallel for collapse(2)
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t t = 0; t < l; ++t) {
        T* out = dst + (i * l + t) * d;
        const float* p = pos + t * d;
        if (t < prefix) {
          for (std::int64_t e = 0; e < d; ++e) store(out, e, first[t * d + e] + p[e]);
        } else {
          const T* in = src + (i * (l - prefix) + t - prefix) * d;
          for (std::int64_t e = 0; e < d; ++e) store(out, e, load(in, e) + p[e]);
        }
      }
    }
  });
}

/// y [B, D] fp32 = x [B, L, D] at token `index`.
inline void select_token(const TensorView& x, std::int64_t index, const TensorView& y) {
  const std::int64_t b = x.dim(0), l = x.dim(1), d = x.dim(2);
  float* out = static_cast<float*>(y.data());
  with_element_type(x.dtype(), [&]<class T>() {
    const T* in = static_cast<const T*>(x.data());
    for (std::int64_t i = 0; i < b; ++i) {
      for (std::int64_t e = 0; e < d; ++e) out[i * d + e] = load(in + (i * l + index) * d, e);
    }
  });
}

/// y [N, C] fp32 = the mean of x [N,C,H,W] over H and W, summed in fp32. x is fp32, bf16 or (its step
/// applied) s8/u8, and NCHW, NHWC or, when `block` > 0, blocked by `block` channels (nChw16c).
inline void global_average(const TensorView& x, const TensorView& y, std::int64_t block = 0) {
  const std::int64_t n = x.dim(0), c = x.dim(1), hw = x.dim(2) * x.dim(3);
  const bool nhwc = x.is_channels_last() && !x.is_contiguous();
  const float scale = (is_quantized(x.dtype()) ? x.quantization().step : 1.0f) / static_cast<float>(hw);
  float* out = static_cast<float*>(y.data());
  auto average = [&]<class T>() {
    const T* in = static_cast<const T*>(x.data());
    if (block > 0) {
      const std::int64_t blocks = c / block;
#pragma omp parallel for collapse(2)
      for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t b = 0; b < blocks; ++b) {
          float sum[64] = {};  // block <= 64
          const T* plane = in + (i * blocks + b) * hw * block;
          for (std::int64_t q = 0; q < hw; ++q) {
            for (std::int64_t e = 0; e < block; ++e) sum[e] += load(plane + q * block, e);
          }
          for (std::int64_t e = 0; e < block; ++e) out[i * c + b * block + e] = sum[e] * scale;
        }
      }
    } else if (nhwc) {
      // Channels are contiguous: each thread sums a slice of channels over all positions.
      constexpr std::int64_t slice = 64;
      const std::int64_t slices = (c + slice - 1) / slice;
#pragma omp parallel for collapse(2)
      for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t s = 0; s < slices; ++s) {
          const std::int64_t first = s * slice, last = std::min(c, first + slice);
          float sum[slice] = {};
          for (std::int64_t q = 0; q < hw; ++q) {
            const T* pixel = in + (i * hw + q) * c;
            for (std::int64_t ch = first; ch < last; ++ch) sum[ch - first] += load(pixel, ch);
          }
          for (std::int64_t ch = first; ch < last; ++ch) out[i * c + ch] = sum[ch - first] * scale;
        }
      }
    } else {
#pragma omp parallel for
      for (std::int64_t row = 0; row < n * c; ++row) {
        float sum = 0;
        for (std::int64_t q = 0; q < hw; ++q) sum += load(in + row * hw, q);
        out[row] = sum * scale;
      }
    }
  };
  if (x.dtype() == DType::u8) average.template operator()<std::uint8_t>();
  else if (x.dtype() == DType::s8) average.template operator()<std::int8_t>();
  else with_element_type(x.dtype(), average);
}

}  // namespace visopt::backend::onednn::loops
