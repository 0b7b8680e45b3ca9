// Kernel-level checks on the GPU: the tensor-core attention kernels (fp16, and TF32 for O1) and cuDNN's
// fused attention graphs (sdpa_graph.hpp, both forms) against the fp32 SIMT kernel on random packed
// q|k|v, at lengths that are and are not multiples of the tiles.

#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <optional>
#include <random>
#include <type_traits>
#include <vector>

#include <visopt/backend/cuda/context.hpp>
#include <visopt/backend/cuda/kernels/attention_tf32.cuh>
#include <visopt/backend/cuda/sdpa_graph.hpp>

#include "catch.hpp"

namespace kernels = visopt::backend::cuda::kernels;

namespace {

/// Runs the tensor-core kernel for T (__half: attention_tensor_core_kernel; float: the TF32 one), or
/// with `graph` (T = __half) cuDNN's plan of it, and the exact fp32 kernel on the same random q|k|v;
/// checks every output is written and within `bound` × max|reference|.
template <class T>
void check_against_fp32(int length, double bound, const visopt::backend::cuda::SdpaGraph* graph = nullptr,
                        cudnnHandle_t handle = nullptr) {
  const int batch = 2, heads = 3, d = heads * kernels::attention_head_dim;
  const std::size_t n = static_cast<std::size_t>(batch) * length * 3 * d, m = static_cast<std::size_t>(batch) * length * d;
  std::mt19937 generator(length);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> qkv(n);
  std::vector<T> qkv_t(n);
  for (std::size_t i = 0; i < n; ++i) {
    qkv_t[i] = static_cast<T>(normal(generator));
    qkv[i] = static_cast<float>(qkv_t[i]);
  }
  float *qkv_f = nullptr, *y_f = nullptr;
  T *qkv_d = nullptr, *y_d = nullptr;
  REQUIRE(cudaMalloc(&qkv_f, n * 4) == cudaSuccess);
  REQUIRE(cudaMalloc(&y_f, m * 4) == cudaSuccess);
  REQUIRE(cudaMalloc(&qkv_d, n * sizeof(T)) == cudaSuccess);
  REQUIRE(cudaMalloc(&y_d, m * sizeof(T)) == cudaSuccess);
  cudaMemcpy(qkv_f, qkv.data(), n * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(qkv_d, qkv_t.data(), n * sizeof(T), cudaMemcpyHostToDevice);
  cudaMemset(y_d, 0xff, m * sizeof(T));  // poison (NaN in both types): every element must be written
  const float scale = 0.125f;
  kernels::attention_kernel<float><<<dim3((length + 15) / 16, batch * heads), 128>>>(qkv_f, y_f, length, heads, scale);
  const dim3 grid((length + kernels::tc_attention_queries - 1) / kernels::tc_attention_queries, batch * heads);
  if (graph) {
    void* workspace = nullptr;
    if (graph->workspace() > 0) REQUIRE(cudaMalloc(&workspace, graph->workspace()) == cudaSuccess);
    REQUIRE(graph->execute(handle, graph->chosen(), qkv_d, y_d, workspace) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    cudaFree(workspace);
  } else if constexpr (std::is_same_v<T, float>) {
    constexpr std::size_t shared = kernels::tf32_attention_shared_bytes();
    REQUIRE(cudaFuncSetAttribute(kernels::attention_tf32_kernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(shared)) == cudaSuccess);
    kernels::attention_tf32_kernel<float><<<grid, 128, shared>>>(qkv_d, y_d, length, heads, scale);
  } else {
    constexpr std::size_t shared = kernels::tc_attention_shared_bytes<T>();
    REQUIRE(cudaFuncSetAttribute(kernels::attention_tensor_core_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(shared)) == cudaSuccess);
    kernels::attention_tensor_core_kernel<T><<<grid, 128, shared>>>(qkv_d, y_d, length, heads, scale);
  }
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  std::vector<float> expected(m);
  std::vector<T> got(m);
  cudaMemcpy(expected.data(), y_f, m * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(got.data(), y_d, m * sizeof(T), cudaMemcpyDeviceToHost);
  double worst = 0, scale_ref = 0;
  std::size_t worst_at = 0, nans = 0, first_nan = m;
  for (std::size_t i = 0; i < m; ++i) {
    const double value = static_cast<float>(got[i]);
    if (std::isnan(value) && nans++ == 0) first_nan = i;
    const double diff = std::abs(value - expected[i]);
    if (!(diff <= worst)) {
      worst = diff;
      worst_at = i;
    }
    scale_ref = std::max(scale_ref, std::abs(double(expected[i])));
  }
  INFO("length " << length << ": " << nans << " NaN of " << m << ", first at " << first_nan << "; max |diff| " << worst
                 << " at element " << worst_at << " (row " << worst_at / d << ", column " << worst_at % d << "), max |ref| "
                 << scale_ref);
  CHECK(nans == 0);  // every element written, none NaN
  CHECK(worst <= bound * scale_ref);
  CHECK(worst > 0);  // a different kernel: identical outputs would mean the reference ran twice
  cudaFree(qkv_f);
  cudaFree(y_f);
  cudaFree(qkv_d);
  cudaFree(y_d);
}

}  // namespace

TEST_CASE("cuda: tensor-core attention matches the fp32 kernel", "[gpu][kernels]") {
  for (int length : {17, 64, 197}) check_against_fp32<__half>(length, 2e-2);
}

TEST_CASE("cuda: TF32 tensor-core attention (O1) matches the fp32 kernel", "[gpu][kernels]") {
  for (int length : {17, 64, 197}) check_against_fp32<float>(length, 1e-2);  // CONVENTIONS.md's TF32 bound
}

TEST_CASE("cuda: cuDNN's fused attention graphs match the fp32 kernel", "[gpu][kernels]") {
  namespace cuda = visopt::backend::cuda;
  cudnnHandle_t handle = nullptr;
  REQUIRE(cudnnCreate(&handle) == CUDNN_STATUS_SUCCESS);
  int major = 0;
  REQUIRE(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) == cudaSuccess);
  int forms_with_engines = 0;
  for (const auto form : {cuda::SdpaGraph::Form::single_operation, cuda::SdpaGraph::Form::decomposed}) {
    for (int length : {17, 64, 197}) {
      const cuda::SdpaSpec spec{visopt::DType::f16, 2, length, 3, kernels::attention_head_dim, 0.125f};
      std::optional<cuda::SdpaGraph> graph;
      try {
        graph.emplace(handle, spec, form);
      } catch (const visopt::Error& e) {  // this cuDNN lacks the form: said, and the other form must run
        std::printf("cuDNN attention %s: %s\n", spec.describe().c_str(), e.what());
        break;
      }
      // The heuristic's choice: the first engine that builds (no timing).
      auto plan = graph->fastest_plan(handle, cuda::Context::workspace_limit, 1, [](const cuda::OperationGraph::Plan&) { return 0.0f; });
      std::printf("cuDNN attention %s: %d engine(s) proposed, %s\n", graph->what().c_str(), graph->candidates(),
                  plan ? "one builds" : "none builds");
      if (!plan) break;
      if (length == 17) ++forms_with_engines;
      graph->use(std::move(plan->plan));
      INFO(graph->what());
      check_against_fp32<__half>(length, 2e-2, &*graph, handle);
    }
  }
  if (major >= 9) CHECK(forms_with_engines > 0);  // cuDNN 9 runs fused attention on Hopper: one form at least
  cudnnDestroy(handle);
}
