#pragma once
// Which GPU code a program holds for a kernel. nvcc compiles each kernel for the architectures the
// build names (CMAKE_CUDA_ARCHITECTURES); the driver runs machine code for the GPU when there is some,
// else compiles the newest PTX at load. A kernel that needs newer instructions than its code was
// compiled for has an empty body there (and traps), so compile() asks here first and refuses, naming
// the architecture to build for, instead of returning logits nobody computed.

#include <string>

#include "check.hpp"
#include "device.hpp"

namespace visopt::backend::cuda {

struct KernelCode {
  int compiled_for = 0;  // the architecture its code was compiled for (PTX version: 75, 90, ...)
  int runs_as = 0;       // the machine code the GPU runs (the same, or this GPU's when the driver compiled PTX)
};

inline int architecture_of(const DeviceInfo& device) { return device.major * 10 + device.minor; }

/// What to tell a user who must rebuild for `device`.
inline std::string rebuild_advice(const DeviceInfo& device) {
  return visopt::detail::concat("rebuild with CMAKE_CUDA_ARCHITECTURES=", architecture_of(device), " (", device.name,
                                ") or native, or ARCHITECTURES ", architecture_of(device), " in visopt_add_cuda_engines()");
}

/// The code `kernel` (named `name` in messages) has on the current GPU. Throws visopt::Error when the
/// program holds none that runs there.
template <class Kernel>
KernelCode kernel_code(Kernel* kernel, const char* name, const DeviceInfo& device) {
  cudaFuncAttributes attributes{};
  const cudaError_t status = cudaFuncGetAttributes(&attributes, kernel);
  if (status == cudaErrorNoKernelImageForDevice || status == cudaErrorInvalidDeviceFunction ||
      status == cudaErrorInvalidPtx || status == cudaErrorUnsupportedPtxVersion) {
    (void)cudaGetLastError();
    fail(visopt::detail::concat("cuda: this program holds no GPU code that runs on ", device.name, " (sm_",
                                architecture_of(device), ") for visopt's kernel ", name, " (", cudaGetErrorString(status),
                                "); ", rebuild_advice(device)));
  }
  VISOPT_CUDA_CHECK(status, name);
  return {attributes.ptxVersion, attributes.binaryVersion};
}

/// Throws unless `code` was compiled for sm_`needed` or newer: below it, the kernel's body is empty.
inline void require_kernel_code(const KernelCode& code, int needed, const char* what, const DeviceInfo& device) {
  require(code.compiled_for >= needed, "cuda: ", what, " needs GPU code compiled for sm_", needed,
          " or newer, but this program's was compiled for sm_", code.compiled_for, " (CMAKE_CUDA_ARCHITECTURES=",
          code.compiled_for, "), where it would compute nothing; ", rebuild_advice(device));
}

}  // namespace visopt::backend::cuda
