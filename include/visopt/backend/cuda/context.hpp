#pragma once
// Everything the CUDA operations share: the device, one stream, the cuDNN and cuBLASLt handles, the
// activation pool in GPU memory, one grow-only workspace, and the algorithm cache when tuning is
// measured. Workspaces and algorithms are settled while each input shape is planned (its batch plan), so
// later runs (and CUDA Graph captures) allocate and search nothing.

#include <memory>

#include "../../services/algorithm_cache.hpp"
#include "../../services/memory_pool.hpp"
#include "device.hpp"
#include "handles.hpp"

namespace visopt::backend::cuda {

/// Copies host fp32 values to a new device tensor of `dtype` (synchronous: for set-up, not run()).
inline Tensor to_device(const Tensor& host, DType dtype, int device_index) {
  const Tensor converted = host.to(dtype);
  Tensor device = Tensor::empty(host.shape(), dtype, Device::cuda(device_index));
  VISOPT_CUDA_CHECK(cudaMemcpy(device.data(), converted.data(), converted.nbytes(), cudaMemcpyHostToDevice));
  return device;
}

class Context {
 public:
  Context(int device_index, bool measured_tuning, const std::string& cache_dir)
      : device_(prepare_device(device_index)),
        cudnn_(CudnnHandlePool::lend(stream_.get())),
        cublaslt_(make_cublaslt()),
        pool_(Device::cuda(device_index)),
        results_(Device::cuda(device_index)) {
    if (measured_tuning) {
      cache_ = std::make_unique<runtime::AlgorithmCache>(runtime::cache_directory(cache_dir) / "cuda-algorithms.json", identity());
    }
  }

  /// The GPU and the library versions algorithm choices are valid for (the cache's and saved plans' key).
  std::string identity() const {
    return visopt::detail::concat(device_.name, " sm_", device_.major, device_.minor, " cudnn ", device_.cudnn_version,
                                  " cublasLt ", cublasLtGetVersion(), " cuda ", device_.runtime_version);
  }

  /// Takes a saved plan's algorithm choices instead of the on-disk cache: held in memory, nothing timed
  /// for the shapes they cover (a shape they miss is timed and kept with them). Heuristic tuning keeps none.
  void use_saved_algorithms(const nlohmann::json& entries) {
    if (cache_) cache_ = std::make_unique<runtime::AlgorithmCache>(entries, identity());
  }

  const DeviceInfo& device() const { return device_; }
  cudaStream_t stream() const { return stream_.get(); }
  cudnnHandle_t cudnn() const { return cudnn_.get(); }
  cublasLtHandle_t cublaslt() const { return cublaslt_.get(); }
  runtime::ActivationPool& pool() { return pool_; }
  const runtime::ActivationPool& pool() const { return pool_; }
  /// Device tensors handed to the caller: a block returns here when the caller drops its tensor, so a
  /// caller that keeps one result at a time causes no allocation after the first run.
  runtime::ActivationPool& results() { return results_; }
  /// The measured-algorithm cache, or null when tuning is heuristic.
  runtime::AlgorithmCache* cache() { return cache_.get(); }
  const runtime::AlgorithmCache* cache() const { return cache_.get(); }

  Tensor allocate(const Shape& shape, DType dtype, MemoryFormat format = MemoryFormat::contiguous) {
    return pool_.allocate(shape, dtype, format);
  }

  /// A device scratch buffer of at least `bytes`, shared by every operation on the stream.
  void* workspace(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    if (bytes > workspace_bytes_) {
      VISOPT_CUDA_CHECK(cudaStreamSynchronize(stream()));  // the old buffer may still be in use
      workspace_ = Tensor::empty({static_cast<std::int64_t>((bytes + 3) / 4)}, DType::f32, Device::cuda(device_.index));
      workspace_bytes_ = bytes;
    }
    return workspace_.data();
  }
  std::size_t workspace_bytes() const { return workspace_bytes_; }

  /// Copies host fp32 parameters to a new device tensor of `dtype` and counts them (compile() only).
  Tensor upload(const Tensor& host, DType dtype) {
    Tensor device = to_device(host, dtype, device_.index);
    weight_bytes_ += device.nbytes();
    return device;
  }
  /// Counts `now` instead of `before` (a parameter converted on the device: FP8 weights).
  void replace_weights(const Tensor& before, const Tensor& now) { weight_bytes_ = weight_bytes_ - before.nbytes() + now.nbytes(); }
  /// Device bytes of every parameter uploaded so far.
  std::size_t weight_bytes() const { return weight_bytes_; }

  /// The largest workspace an algorithm may ask for.
  static constexpr std::size_t workspace_limit = std::size_t{256} << 20;

 private:
  static DeviceInfo prepare_device(int index) {
    DeviceInfo info = require_device(index);
    VISOPT_CUDA_CHECK(cudaSetDevice(index));
    install_device_allocator();
    return info;
  }

  DeviceInfo device_;
  Stream stream_;
  CudnnHandlePool::Lease cudnn_;
  CublasLtHandle cublaslt_;
  runtime::ActivationPool pool_, results_;
  Tensor workspace_;
  std::size_t workspace_bytes_ = 0, weight_bytes_ = 0;
  std::unique_ptr<runtime::AlgorithmCache> cache_;
};

}  // namespace visopt::backend::cuda
