#pragma once
// One checking helper per library (CUDA runtime, cuDNN, cuBLASLt): every call goes through a macro
// that records the call's text, file and line and the library's own message, and throws visopt::Error.

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

#include "../../core/error.hpp"

namespace visopt::backend::cuda::detail {

[[noreturn]] inline void throw_call_error(const char* library, const char* call, const std::string& message,
                                          const char* file, int line, const std::string& context) {
  throw Error(visopt::detail::concat(library, ": ", call, " failed: ", message, context.empty() ? "" : " [", context,
                                     context.empty() ? "" : "]", " (", file, ":", line, ")"));
}

inline void check_cuda(cudaError_t status, const char* call, const char* file, int line, const std::string& context = {}) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();  // clear the sticky-free error so the next call does not report it again
  std::string message = std::string(cudaGetErrorName(status)) + ", " + cudaGetErrorString(status);
  if (status == cudaErrorMemoryAllocation) {
    std::size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
      message += visopt::detail::concat("; the GPU has ", free_bytes >> 20, " MiB free of ", total_bytes >> 20,
                                        " MiB: lower CompileOptions::max_batch");
    }
  }
  throw_call_error("cuda", call, message, file, line, context);
}

inline void check_cudnn(cudnnStatus_t status, const char* call, const char* file, int line, const std::string& context = {}) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  throw_call_error("cudnn", call, std::string(cudnnGetErrorString(status)) + (detail[0] ? std::string("; ") + detail : ""),
                   file, line, context);
}

inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line, const std::string& context = {}) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw_call_error("cublasLt", call, cublasLtGetStatusString(status), file, line, context);
}

}  // namespace visopt::backend::cuda::detail

#define VISOPT_CUDA_CHECK(call, ...) ::visopt::backend::cuda::detail::check_cuda((call), #call, __FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
#define VISOPT_CUDNN_CHECK(call, ...) ::visopt::backend::cuda::detail::check_cudnn((call), #call, __FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
#define VISOPT_CUBLAS_CHECK(call, ...) ::visopt::backend::cuda::detail::check_cublas((call), #call, __FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
/// After a kernel launch: a launch error (bad configuration, no kernel image for this GPU) is reported at once.
#define VISOPT_CUDA_CHECK_LAUNCH(name) ::visopt::backend::cuda::detail::check_cuda(cudaGetLastError(), name, __FILE__, __LINE__)
