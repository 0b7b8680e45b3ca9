// Entry point of the GPU test binary: with no usable GPU, "[gpu]" runs report a skip (exit 77, which
// CTest's SKIP_RETURN_CODE turns into "Skipped") with the reason; everything else runs as usual.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <string>

#if __has_include(<catch2/catch_session.hpp>)
#include <catch2/catch_session.hpp>
#else
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#endif

int main(int argc, char** argv) {
  const bool wants_gpu = argc > 1 && std::string(argv[1]).find("[gpu]") != std::string::npos;
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (wants_gpu && (status != cudaSuccess || count == 0)) {
    std::printf("skipped: no usable GPU here (%s)\n", status == cudaSuccess ? "0 devices" : cudaGetErrorString(status));
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
