#pragma once
// Tensor (owning, 64-byte aligned, shared storage) and TensorView (non-owning: pointer, dtype, shape,
// strides in elements, device). Shapes are logical (N,C,H,W for images); a channels_last tensor keeps
// that shape and carries NHWC strides, as PyTorch does.

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "device.hpp"
#include "dtype.hpp"
#include "error.hpp"
#include "shape.hpp"

namespace visopt {

enum class MemoryFormat { contiguous, channels_last };

/// How an int8 layer reads a tensor: as `dtype` (s8, or u8 for values never negative) with real value
/// stored·step. An s8/u8 tensor holds exactly that; a floating tensor of a quantized engine carries the
/// calibrated step and type its int8 consumers quantize it to. step 0: none.
struct Quantization {
  float step = 0.0f;
  DType dtype = DType::s8;
  bool defined() const { return step > 0.0f; }
};

using Strides = std::array<std::int64_t, Shape::max_rank>;

/// Row-major strides for `shape`, or NHWC strides for a rank-4 shape when `format` is channels_last.
inline Strides strides_for(const Shape& shape, MemoryFormat format = MemoryFormat::contiguous) {
  Strides s{};
  if (format == MemoryFormat::channels_last) {
    require(shape.rank() == 4, "channels_last needs a rank-4 shape, got ", shape.to_string());
    const auto c = shape[1], h = shape[2], w = shape[3];
    s[0] = h * w * c;
    s[1] = 1;
    s[2] = w * c;
    s[3] = c;
    return s;
  }
  std::int64_t step = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    s[static_cast<std::size_t>(i)] = step;
    step *= shape[i];
  }
  return s;
}

class TensorView {
 public:
  TensorView() = default;
  TensorView(void* data, DType dtype, const Shape& shape, Device device = Device::cpu(),
             MemoryFormat format = MemoryFormat::contiguous)
      : data_(data), dtype_(dtype), shape_(shape), strides_(strides_for(shape, format)), device_(device) {}
  TensorView(void* data, DType dtype, const Shape& shape, const Strides& strides, Device device)
      : data_(data), dtype_(dtype), shape_(shape), strides_(strides), device_(device) {}

  void* data() const { return data_; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Strides& strides() const { return strides_; }
  std::int64_t stride(int axis) const { return strides_[static_cast<std::size_t>(axis)]; }
  Device device() const { return device_; }
  int rank() const { return shape_.rank(); }
  std::int64_t dim(int axis) const { return shape_[axis]; }
  std::int64_t numel() const { return shape_.numel(); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  bool empty() const { return data_ == nullptr; }

  bool is_contiguous() const { return strides_ == strides_for(shape_); }
  bool is_channels_last() const { return rank() == 4 && strides_ == strides_for(shape_, MemoryFormat::channels_last); }
  MemoryFormat format() const { return is_channels_last() && !is_contiguous() ? MemoryFormat::channels_last : MemoryFormat::contiguous; }

  /// Typed pointer; throws when T does not match the tensor's dtype.
  template <class T>
  T* data_as() const {
    require(dtype_ == dtype_of_v<T>, "TensorView: asked for ", dtype_name(dtype_of_v<T>), " data of a ",
            dtype_name(dtype_), " tensor of shape ", shape_.to_string());
    return static_cast<T*>(data_);
  }

  /// Same bytes, new shape; the view must be dense (contiguous or channels_last keeps its order).
  TensorView reshaped(const Shape& shape) const {
    require(shape.numel() == numel(), "TensorView: cannot reshape ", shape_.to_string(), " to ", shape.to_string());
    require(is_contiguous(), "TensorView: reshape of a non-contiguous tensor of shape ", shape_.to_string());
    TensorView view(data_, dtype_, shape, device_);
    view.quantization_ = quantization_;
    return view;
  }

  const Quantization& quantization() const { return quantization_; }
  /// The same view carrying `q`: for a floating tensor, how int8 layers will read it.
  TensorView with_quantization(const Quantization& q) const {
    TensorView view = *this;
    view.quantization_ = q;
    return view;
  }
  /// The same bytes seen as q.dtype (s8 or u8) holding values of step q.step.
  TensorView as_quantized(const Quantization& q) const {
    require(is_quantized(q.dtype) && dtype_size(dtype_) == 1, "TensorView: cannot see ", dtype_name(dtype_),
            " data as ", dtype_name(q.dtype));
    TensorView view = with_quantization(q);
    view.dtype_ = q.dtype;
    return view;
  }

 private:
  void* data_ = nullptr;
  DType dtype_ = DType::f32;
  Shape shape_;
  Strides strides_{};
  Device device_{};
  Quantization quantization_{};
};

namespace detail {
inline constexpr std::size_t tensor_alignment = 64;

inline std::shared_ptr<void> allocate_storage(std::size_t bytes, Device device) {
  if (device.is_cpu()) {
    const std::size_t rounded = (bytes + tensor_alignment - 1) / tensor_alignment * tensor_alignment;
    void* p = std::aligned_alloc(tensor_alignment, rounded == 0 ? tensor_alignment : rounded);
    if (!p) throw Error(detail::concat("Tensor: out of host memory allocating ", bytes, " bytes"));
    return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  }
  const DeviceAllocator& hooks = device_allocator();
  require(hooks.allocate != nullptr, "Tensor: cannot allocate on ", device.to_string(),
          ": no GPU allocator is installed (compiling an engine with backend::Cuda installs it; that needs visopt::cuda)");
  void* p = hooks.allocate(bytes, device.index);
  return std::shared_ptr<void>(p, [release = hooks.release](void* q) { release(q); });
}
}  // namespace detail

/// An owning tensor. Copies share storage (like torch.Tensor); use clone() for a deep copy.
class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<void> storage, const TensorView& view) : storage_(std::move(storage)), view_(view) {}

  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu(),
                      MemoryFormat format = MemoryFormat::contiguous) {
    auto storage = detail::allocate_storage(static_cast<std::size_t>(shape.numel()) * dtype_size(dtype), device);
    TensorView view(storage.get(), dtype, shape, device, format);
    return Tensor(std::move(storage), view);
  }

  static Tensor zeros(const Shape& shape, DType dtype = DType::f32) {
    Tensor t = empty(shape, dtype);
    std::memset(t.data(), 0, t.nbytes());
    return t;
  }

  /// A host fp32 tensor holding a copy of `values`.
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values) {
    require(static_cast<std::int64_t>(values.size()) == shape.numel(), "Tensor::from_vector: ", values.size(),
            " values for shape ", shape.to_string(), " of ", shape.numel(), " elements");
    Tensor t = empty(shape);
    std::memcpy(t.data(), values.data(), values.size() * sizeof(float));
    return t;
  }

  const TensorView& view() const { return view_; }
  operator const TensorView&() const { return view_; }  // NOLINT: a Tensor is usable wherever a view is
  void* data() const { return view_.data(); }
  template <class T> T* data_as() const { return view_.data_as<T>(); }
  DType dtype() const { return view_.dtype(); }
  const Shape& shape() const { return view_.shape(); }
  Device device() const { return view_.device(); }
  int rank() const { return view_.rank(); }
  std::int64_t dim(int axis) const { return view_.dim(axis); }
  std::int64_t numel() const { return view_.numel(); }
  std::size_t nbytes() const { return view_.nbytes(); }
  bool defined() const { return storage_ != nullptr; }

  /// Same storage, new (dense) shape.
  Tensor reshaped(const Shape& shape) const { return Tensor(storage_, view_.reshaped(shape)); }
  const Quantization& quantization() const { return view_.quantization(); }
  Tensor with_quantization(const Quantization& q) const { return Tensor(storage_, view_.with_quantization(q)); }
  Tensor as_quantized(const Quantization& q) const { return Tensor(storage_, view_.as_quantized(q)); }

  /// A host copy converted to `dtype` (the source must be a dense host tensor).
  Tensor to(DType dtype) const {
    require(device().is_cpu(), "Tensor::to: only host tensors convert on the host; this one is on ",
            device().to_string());
    require(view_.is_contiguous() || view_.is_channels_last(), "Tensor::to: tensor of shape ",
            shape().to_string(), " is not dense");
    Tensor out = empty(shape(), dtype, Device::cpu(), view_.format());
    convert_elements(data(), this->dtype(), out.data(), dtype, static_cast<std::size_t>(numel()));
    return out;
  }

  Tensor clone() const { return to(dtype()); }

 private:
  std::shared_ptr<void> storage_;
  TensorView view_;
};

}  // namespace visopt
