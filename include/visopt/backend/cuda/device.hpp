#pragma once
// The GPU as visopt sees it: whether one is there (a clear error when not), its properties, RAII
// streams and events, and the device allocator hooks that let core Tensors live in GPU memory.

#include <memory>
#include <string>

#include "../../core/tensor.hpp"
#include "check.hpp"

namespace visopt::backend::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int major = 0, minor = 0, multiprocessors = 0;
  std::size_t memory_bytes = 0;
  int runtime_version = 0, driver_version = 0;
  std::size_t cudnn_version = 0;
  std::string description() const {
    return visopt::detail::concat(name, " (sm_", major, minor, ", ", multiprocessors, " SMs, ", memory_bytes >> 20,
                                  " MiB, cuDNN ", cudnn_version, ")");
  }
};

/// How many GPUs this process can use: 0 where there is no GPU or no driver (never an error).
inline int visible_gpus() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

/// Checks that GPU `index` exists and the driver can run this build; throws a visopt::Error that says
/// what to use instead when not.
inline DeviceInfo require_device(int index) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  DeviceInfo info;
  cudaDriverGetVersion(&info.driver_version);
  cudaRuntimeGetVersion(&info.runtime_version);
  if (status == cudaErrorInsufficientDriver && info.driver_version > 0) {
    fail(visopt::detail::concat("cuda: the NVIDIA driver supports CUDA ", info.driver_version / 1000, ".",
                                (info.driver_version % 1000) / 10, ", but visopt was built with CUDA ",
                                info.runtime_version / 1000, ".", (info.runtime_version % 1000) / 10,
                                "; update the driver or use backend::OneDnn / backend::Reference"));
  }
  if (status != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    fail(visopt::detail::concat("cuda: no GPU is visible (cudaGetDeviceCount: ",
                                status == cudaSuccess ? "0 devices" : cudaGetErrorString(status),
                                "); use backend::OneDnn or backend::Reference on this machine"));
  }
  require(index >= 0 && index < count, "cuda: CompileOptions::device is ", index, ", but this machine has ", count,
          " GPU(s)");
  cudaDeviceProp props{};
  VISOPT_CUDA_CHECK(cudaGetDeviceProperties(&props, index));
  info.index = index;
  info.name = props.name;
  info.major = props.major;
  info.minor = props.minor;
  info.multiprocessors = props.multiProcessorCount;
  info.memory_bytes = props.totalGlobalMem;
  info.cudnn_version = cudnnGetVersion();
  // nvcc 13 builds for sm_75 and newer only.
  require(info.major * 10 + info.minor >= 75, "cuda: ", info.name, " is compute capability ", info.major, ".", info.minor,
          "; visopt needs 7.5 (Turing) or newer");
  return info;
}

namespace detail {
inline void* device_allocate(std::size_t bytes, int index) {
  VISOPT_CUDA_CHECK(cudaSetDevice(index));
  void* p = nullptr;
  VISOPT_CUDA_CHECK(cudaMalloc(&p, bytes == 0 ? 1 : bytes), visopt::detail::concat(bytes, " bytes on cuda:", index));
  return p;
}
inline void device_release(void* p) noexcept { (void)cudaFree(p); }  // quiet at driver shutdown
}  // namespace detail

/// Lets Tensor::empty(shape, dtype, Device::cuda(i)) allocate with cudaMalloc.
inline void install_device_allocator() {
  device_allocator().allocate = &detail::device_allocate;
  device_allocator().release = &detail::device_release;
}

/// A host f32 (or `dtype`) tensor in page-locked memory, which the GPU copies from at full speed; freed
/// with cudaFreeHost when its last copy goes.
inline Tensor pinned_host_tensor(const Shape& shape, DType dtype = DType::f32) {
  const std::size_t bytes = static_cast<std::size_t>(shape.numel()) * dtype_size(dtype);
  void* p = nullptr;
  VISOPT_CUDA_CHECK(cudaHostAlloc(&p, bytes == 0 ? 1 : bytes, cudaHostAllocPortable), visopt::detail::concat(bytes, " bytes of page-locked host memory"));
  std::shared_ptr<void> storage(p, [](void* q) { (void)cudaFreeHost(q); });  // quiet at driver shutdown
  return Tensor(std::move(storage), TensorView(p, dtype, shape, Device::cpu()));
}

/// Makes GPU `index` the calling thread's current device for a scope and gives the thread its own back
/// after, so that an engine runs on its GPU from any thread (cudaGetDevice is a host-side lookup).
class DeviceScope {
 public:
  explicit DeviceScope(int index) : index_(index) {
    VISOPT_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != index_) VISOPT_CUDA_CHECK(cudaSetDevice(index_));
  }
  ~DeviceScope() {
    if (previous_ != index_) (void)cudaSetDevice(previous_);  // destructors never throw
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int index_, previous_ = 0;
};

/// A non-blocking stream this object owns, or a caller's stream it only borrows.
class Stream {
 public:
  Stream() {
    cudaStream_t s = nullptr;
    VISOPT_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    stream_.reset(s);
  }
  cudaStream_t get() const { return stream_.get(); }
  void synchronize() const { VISOPT_CUDA_CHECK(cudaStreamSynchronize(get())); }

 private:
  struct Destroy {
    void operator()(cudaStream_t s) const noexcept { (void)cudaStreamDestroy(s); }
  };
  std::unique_ptr<CUstream_st, Destroy> stream_;
};

class Event {
 public:
  Event() {
    cudaEvent_t e = nullptr;
    VISOPT_CUDA_CHECK(cudaEventCreate(&e));
    event_.reset(e);
  }
  cudaEvent_t get() const { return event_.get(); }
  void record(cudaStream_t stream) const { VISOPT_CUDA_CHECK(cudaEventRecord(get(), stream)); }
  /// Milliseconds from `start` to this event (both recorded, this one completed).
  float since(const Event& start) const {
    VISOPT_CUDA_CHECK(cudaEventSynchronize(get()));
    float ms = 0;
    VISOPT_CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), get()));
    return ms;
  }

 private:
  struct Destroy {
    void operator()(cudaEvent_t e) const noexcept { (void)cudaEventDestroy(e); }
  };
  std::unique_ptr<CUevent_st, Destroy> event_;
};

/// What measured tuning compares candidates by: milliseconds of the fastest of `runs` timed runs of
/// `launch` on `stream`, after one untimed run that loads its code and warms the caches; -1 when
/// `launch` reports a failure (returns false).
template <class Launch>
float fastest_run_ms(cudaStream_t stream, Launch&& launch, int runs = 3) {
  Event start, stop;
  float best = -1;
  for (int i = 0; i <= runs; ++i) {
    start.record(stream);
    const bool launched = launch();
    stop.record(stream);
    if (!launched) return -1;
    const float ms = stop.since(start);
    if (i > 0 && (best < 0 || ms < best)) best = ms;
  }
  return best;
}

}  // namespace visopt::backend::cuda
