// Kernel-level checks on the GPU: the tensor-core attention kernel against the fp32 SIMT one on
// random packed q|k|v, at lengths that are and are not multiples of the tiles.

#include <cuda_runtime.h>

#include <cmath>
#include <random>
#include <vector>

#include <visopt/backend/cuda/kernels/attention_tensor_core.cuh>

#include "catch.hpp"

namespace kernels = visopt::backend::cuda::kernels;

TEST_CASE("cuda: tensor-core attention matches the fp32 kernel", "[gpu][kernels]") {
  for (int length : {17, 64, 197}) {
    const int batch = 2, heads = 3, d = heads * kernels::attention_head_dim;
    const std::size_t n = static_cast<std::size_t>(batch) * length * 3 * d, m = static_cast<std::size_t>(batch) * length * d;
    std::mt19937 generator(length);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> qkv(n);
    std::vector<__half> qkv_half(n);
    for (std::size_t i = 0; i < n; ++i) {
      qkv_half[i] = __float2half(normal(generator));
      qkv[i] = __half2float(qkv_half[i]);
    }
    float *qkv_f = nullptr, *y_f = nullptr;
    __half *qkv_h = nullptr, *y_h = nullptr;
    REQUIRE(cudaMalloc(&qkv_f, n * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&y_f, m * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&qkv_h, n * 2) == cudaSuccess);
    REQUIRE(cudaMalloc(&y_h, m * 2) == cudaSuccess);
    cudaMemcpy(qkv_f, qkv.data(), n * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(qkv_h, qkv_half.data(), n * 2, cudaMemcpyHostToDevice);
    cudaMemset(y_h, 0xff, m * 2);  // poison: every element must be written
    const float scale = 0.125f;
    kernels::attention_kernel<float><<<dim3((length + 15) / 16, batch * heads), 128>>>(qkv_f, y_f, length, heads, scale);
    constexpr std::size_t shared = kernels::tc_attention_shared_bytes<__half>();
    REQUIRE(cudaFuncSetAttribute(kernels::attention_tensor_core_kernel<__half>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(shared)) == cudaSuccess);
    kernels::attention_tensor_core_kernel<__half><<<dim3((length + 63) / 64, batch * heads), 128, shared>>>(qkv_h, y_h, length, heads, scale);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    std::vector<float> expected(m);
    std::vector<__half> got(m);
    cudaMemcpy(expected.data(), y_f, m * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(got.data(), y_h, m * 2, cudaMemcpyDeviceToHost);
    double worst = 0, scale_ref = 0;
    std::size_t worst_at = 0;
    for (std::size_t i = 0; i < m; ++i) {
      const double diff = std::abs(double(__half2float(got[i])) - expected[i]);
      if (!(diff <= worst)) {
        worst = diff;
        worst_at = i;
      }
      scale_ref = std::max(scale_ref, std::abs(double(expected[i])));
    }
    std::size_t nans = 0, first_nan = m;
    for (std::size_t i = 0; i < m; ++i) {
      if (std::isnan(__half2float(got[i]))) {
        ++nans;
        if (first_nan == m) first_nan = i;
      }
    }
    UNSCOPED_INFO("length " << length << ": " << nans << " NaN of " << m << ", first at " << first_nan << "; y[0..3] = "
                            << __half2float(got[0]) << " " << __half2float(got[1]) << " " << __half2float(got[64]) << " vs "
                            << expected[0] << " " << expected[1] << " " << expected[64]);
    CHECK(nans == 0);  // every element written, none NaN
    INFO("length " << length << ": max |diff| " << worst << " at element " << worst_at << " (row " << worst_at / d
                   << ", column " << worst_at % d << "), max |ref| " << scale_ref);
    CHECK(worst <= 2e-2 * scale_ref);
    cudaFree(qkv_f);
    cudaFree(y_f);
    cudaFree(qkv_h);
    cudaFree(y_h);
  }
}
