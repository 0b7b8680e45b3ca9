#pragma once
// RAII owners for cuBLASLt handles and cuDNN/cuBLASLt descriptors (unique ownership, quiet destructors),
// the process-wide pool that lends cuDNN handles, and the mapping from visopt dtypes and tensor views to
// cuDNN descriptors.

#include <array>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>
#include <memory>
#include <type_traits>

#include "../../core/tensor.hpp"
#include "../../nn/op_specs.hpp"
#include "check.hpp"

namespace visopt::backend::cuda {

/// A C handle with a destroy function, owned uniquely.
template <class Handle, auto Destroy>
class Owned {
 public:
  Owned() = default;
  explicit Owned(Handle h) : handle_(h) {}
  Owned(Owned&& other) noexcept : handle_(std::exchange(other.handle_, Handle{})) {}
  Owned& operator=(Owned&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, Handle{});
    }
    return *this;
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() { reset(); }
  Handle get() const { return handle_; }
  explicit operator bool() const { return handle_ != Handle{}; }

 private:
  void reset() noexcept {
    if (handle_ != Handle{}) (void)Destroy(handle_);
    handle_ = Handle{};
  }
  Handle handle_{};
};

using CublasLtHandle = Owned<cublasLtHandle_t, cublasLtDestroy>;
using TensorDescriptor = Owned<cudnnTensorDescriptor_t, cudnnDestroyTensorDescriptor>;
using FilterDescriptor = Owned<cudnnFilterDescriptor_t, cudnnDestroyFilterDescriptor>;
using ConvolutionDescriptor = Owned<cudnnConvolutionDescriptor_t, cudnnDestroyConvolutionDescriptor>;
using ActivationDescriptor = Owned<cudnnActivationDescriptor_t, cudnnDestroyActivationDescriptor>;
using PoolingDescriptor = Owned<cudnnPoolingDescriptor_t, cudnnDestroyPoolingDescriptor>;
using MatmulDescriptor = Owned<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy>;
using MatrixLayout = Owned<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy>;
using MatmulPreference = Owned<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy>;

/// cuDNN handles, kept for the life of the process and lent to one Context at a time. cuDNN 9 does not
/// give back about 39 KB of host heap per cudnnCreate/cudnnDestroy pair (measured on the H100 machine,
/// cuDNN 9.19: 7.8 MB over 200 pairs, with streams, cuBLASLt handles and graphs flat), so engines that
/// come and go borrow from here instead. The pool holds at most as many handles as engines were ever
/// alive at once on a device. Idle handles are destroyed at exit by an atexit handler registered after
/// the CUDA runtime's own (so it runs first, while the driver is still there); handles still on loan
/// then belong to engines that outlive main and are left to the process's end.
class CudnnHandlePool {
 public:
  /// A handle created on the current device, on loan until it is given back.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept
        : handle_(std::exchange(other.handle_, nullptr)), device_(other.device_) {}
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
      if (handle_) pool().give_back(device_, handle_);
    }
    cudnnHandle_t get() const { return handle_; }

   private:
    friend class CudnnHandlePool;
    Lease(cudnnHandle_t handle, int device) : handle_(handle), device_(device) {}
    cudnnHandle_t handle_ = nullptr;
    int device_ = 0;
  };

  /// A handle for the current device, bound to `stream`.
  static Lease lend(cudaStream_t stream) {
    int device = 0;
    VISOPT_CUDA_CHECK(cudaGetDevice(&device));
    static const bool cleanup_registered = (std::atexit(&destroy_idle), true);  // the runtime is initialised by now
    (void)cleanup_registered;
    cudnnHandle_t handle = pool().take(device);
    if (!handle) VISOPT_CUDNN_CHECK(cudnnCreate(&handle));
    Lease lease(handle, device);  // from here on the handle goes back to the pool, whatever happens
    VISOPT_CUDNN_CHECK(cudnnSetStream(handle, stream));
    return lease;
  }

  /// Handles waiting in the pool for `device` (for tests).
  static std::size_t idle(int device) {
    std::lock_guard lock(pool().mutex_);
    auto it = pool().idle_.find(device);
    return it == pool().idle_.end() ? 0 : it->second.size();
  }

 private:
  static CudnnHandlePool& pool() {
    static auto* instance = new CudnnHandlePool;  // never destroyed: handles outlive static destruction
    return *instance;
  }
  cudnnHandle_t take(int device) {
    std::lock_guard lock(mutex_);
    auto& handles = idle_[device];
    if (handles.empty()) return nullptr;
    cudnnHandle_t h = handles.back();
    handles.pop_back();
    return h;
  }
  static void destroy_idle() noexcept {
    std::lock_guard lock(pool().mutex_);
    for (auto& [device, handles] : pool().idle_) {
      for (cudnnHandle_t h : handles) (void)cudnnDestroy(h);
      handles.clear();
    }
  }
  void give_back(int device, cudnnHandle_t handle) noexcept {
    try {
      std::lock_guard lock(mutex_);
      idle_[device].push_back(handle);
    } catch (...) {
      (void)cudnnDestroy(handle);  // the pool could not grow: let this one go instead
    }
  }

  std::mutex mutex_;
  std::map<int, std::vector<cudnnHandle_t>> idle_;
};

inline CublasLtHandle make_cublaslt() {
  cublasLtHandle_t h = nullptr;
  VISOPT_CUBLAS_CHECK(cublasLtCreate(&h));
  return CublasLtHandle(h);
}

inline cudnnDataType_t cudnn_type(DType t) {
  switch (t) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::f16: return CUDNN_DATA_HALF;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    case DType::s8: return CUDNN_DATA_INT8;
    case DType::u8: return CUDNN_DATA_UINT8;
    case DType::e4m3: return CUDNN_DATA_FP8_E4M3;
  }
  return CUDNN_DATA_FLOAT;
}

inline cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32: return CUDA_R_32F;
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
    case DType::s8: return CUDA_R_8I;
    case DType::u8: return CUDA_R_8U;
    case DType::e4m3: return CUDA_R_8F_E4M3;
  }
  return CUDA_R_32F;
}

/// A 4-d cuDNN descriptor with the view's own strides (NCHW or NHWC alike).
inline TensorDescriptor tensor_descriptor(DType dtype, const Shape& shape, const Strides& strides) {
  cudnnTensorDescriptor_t d = nullptr;
  VISOPT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
  TensorDescriptor owned(d);
  std::array<int, 4> dims{}, stride{};
  for (int i = 0; i < 4; ++i) {
    dims[static_cast<std::size_t>(i)] = static_cast<int>(i < shape.rank() ? shape[i] : 1);
    stride[static_cast<std::size_t>(i)] = static_cast<int>(i < shape.rank() ? strides[static_cast<std::size_t>(i)] : 1);
  }
  VISOPT_CUDNN_CHECK(cudnnSetTensorNdDescriptor(d, cudnn_type(dtype), 4, dims.data(), stride.data()),
                     "shape " + shape.to_string());
  return owned;
}

inline TensorDescriptor tensor_descriptor(const TensorView& v) { return tensor_descriptor(v.dtype(), v.shape(), v.strides()); }

/// [K, C/g, R, S] filter, stored KCRS (nchw) or KRSC (nhwc).
inline FilterDescriptor filter_descriptor(DType dtype, const Shape& kcrs, bool nhwc) {
  cudnnFilterDescriptor_t d = nullptr;
  VISOPT_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d));
  FilterDescriptor owned(d);
  VISOPT_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d, cudnn_type(dtype), nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW,
                                                static_cast<int>(kcrs[0]), static_cast<int>(kcrs[1]),
                                                static_cast<int>(kcrs[2]), static_cast<int>(kcrs[3])),
                     "filter " + kcrs.to_string());
  return owned;
}

/// Cross-correlation (PyTorch's conv) accumulating in fp32; `tensor_cores` false forbids TF32 (O0).
inline ConvolutionDescriptor convolution_descriptor(const nn::Conv2dGeometry& g, bool tensor_cores) {
  cudnnConvolutionDescriptor_t d = nullptr;
  VISOPT_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d));
  ConvolutionDescriptor owned(d);
  VISOPT_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d, g.pad_h, g.pad_w, g.stride_h, g.stride_w, g.dilation_h,
                                                     g.dilation_w, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  VISOPT_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d, g.groups));
  VISOPT_CUDNN_CHECK(cudnnSetConvolutionMathType(d, tensor_cores ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
  return owned;
}

inline ActivationDescriptor activation_descriptor(nn::Activation act) {
  cudnnActivationDescriptor_t d = nullptr;
  VISOPT_CUDNN_CHECK(cudnnCreateActivationDescriptor(&d));
  ActivationDescriptor owned(d);
  require(act != nn::Activation::gelu, "cuda: cuDNN's fused convolution takes ReLU or no activation, not GELU");
  VISOPT_CUDNN_CHECK(cudnnSetActivationDescriptor(d, act == nn::Activation::relu ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_IDENTITY,
                                                  CUDNN_PROPAGATE_NAN, 0.0));
  return owned;
}

}  // namespace visopt::backend::cuda
