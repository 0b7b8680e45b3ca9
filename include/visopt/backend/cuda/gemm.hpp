#pragma once
// A linear layer on cuBLASLt: y[M,N] = act(x[M,K]·W[N,K]ᵀ + bias) + residual, with bias and GELU in
// the matmul epilogue and the residual as its C operand (beta = 1). Row-major tensors are read as
// column-major transposes: D(N×M) = Wᵀᵀ·xᵀ. plan() chooses the algorithm for a row count M, by
// cuBLASLt's heuristic or by timing its best candidates (kept in the algorithm cache); the executor
// keeps that Plan in its batch plan (services/batch_plan.hpp).
//
// cuBLASLt's GELU epilogue is the tanh approximation (|difference from erf GELU| < 5e-4), so it is
// used only under fusion::epilogue; unfused levels apply the exact erf GELU as its own kernel.
//
// FP8 (O4): a linear built with `fp8` multiplies e4m3 inputs by e4m3 weights (one step per tensor,
// max|W|/448) when the executor hands it an e4m3 x; its weights turn into e4m3 at that first FP8 plan.
// The two steps are the matmul's alpha, the bias stays fp16, and the output is fp16 or, when y is e4m3,
// FP8 in y's step (cuBLASLt's D scale): the MLP's hidden layer, read by the next FP8 linear as it is.
// This is cuBLASLt's "TN" FP8 layout, which needs K a multiple of 16 (the executor checks).

#include <algorithm>
#include <cmath>

#include "../../nn/epilogue.hpp"
#include "../../nn/params.hpp"
#include "context.hpp"
#include "elementwise.hpp"

namespace visopt::backend::cuda {

class Gemm {
 public:
  Gemm(Context& context, const nn::LinearParams& params, nn::LinearEpilogue epilogue, DType dtype, cublasComputeType_t compute,
       bool fp8 = false)
      : epilogue_(epilogue), dtype_(dtype), compute_(compute), n_(params.weight.dim(0)), k_(params.weight.dim(1)) {
    weight_ = context.upload(params.weight, dtype);
    if (params.bias.defined()) bias_ = context.upload(params.bias, dtype);
    if (fp8) {
      float top = 0.0f;
      const float* w = params.weight.data_as<float>();
      for (std::int64_t i = 0; i < params.weight.numel(); ++i) top = std::max(top, std::fabs(w[i]));
      weight_step_ = top > 0.0f ? top / e4m3_largest : 1.0f;
    }
  }

  std::int64_t out_features() const { return n_; }
  std::int64_t in_features() const { return k_; }
  /// Whether this linear may run in FP8 (built with fp8, and K a multiple of 16 as cuBLASLt's FP8 needs).
  bool fp8_capable() const { return weight_step_ > 0.0f && k_ % 16 == 0; }
  /// Whether its weights are e4m3 now (it has planned an FP8 forward).
  bool runs_fp8() const { return weight_.dtype() == DType::e4m3; }

  /// The matmul's descriptors and chosen algorithm for one row count M.
  struct Plan {
    MatmulDescriptor description;
    MatrixLayout a, b, c, d;
    cublasLtMatmulAlgo_t algorithm{};
    std::size_t workspace = 0;
  };

  /// The output y [..., N] for x [..., K], from the pool: in the level's dtype, or e4m3 in step `fp8`
  /// when it is defined.
  Tensor output(Context& context, const Tensor& x, const Quantization& fp8 = {}) const {
    require(x.dim(x.rank() - 1) == k_, "cuda::linear: input has shape ", x.shape(), ", the layer expects ", k_, " features");
    Shape out = x.shape();
    out[out.rank() - 1] = n_;
    if (fp8.defined()) return context.allocate(out, DType::e4m3).as_quantized(fp8);
    return context.allocate(out, dtype_);
  }
  /// The row count M of input x: what a plan is made for.
  std::int64_t rows(const Tensor& x) const { return x.numel() / k_; }

  /// Chooses (or finds in the algorithm cache) the algorithm for x into y (timing candidates on these
  /// buffers when tuning is measured).
  Plan plan(Context& context, const Tensor& x, Tensor& y, const Tensor* residual) {
    const std::int64_t m = rows(x);
    const bool fp8 = x.dtype() == DType::e4m3;
    if (fp8) use_fp8(context, y);
    require(fp8 || (!runs_fp8() && x.dtype() == dtype_ && y.dtype() == dtype_), "cuda::linear: a ", dtype_name(x.dtype()),
            " input to a ", runs_fp8() ? "FP8" : dtype_name(dtype_), " linear (internal error)");
    Plan plan;
    cublasLtMatmulDesc_t desc = nullptr;
    VISOPT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, fp8 ? CUBLAS_COMPUTE_32F : compute_, CUDA_R_32F));
    plan.description = MatmulDescriptor(desc);
    const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
    VISOPT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose)));
    VISOPT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof(keep)));
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const bool gelu = epilogue_.activation == nn::Activation::gelu;
    require(epilogue_.activation != nn::Activation::relu, "cuda::linear: a ReLU epilogue is not used by any model");
    if (bias_.defined()) {
      epilogue = gelu ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
      const void* bias = bias_.data();
      VISOPT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    } else if (gelu) {
      epilogue = CUBLASLT_EPILOGUE_GELU;
    }
    VISOPT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    if (fp8) {
      // The bias and C (the residual) stay in the level's 16-bit type; an e4m3 D is scaled into y's step.
      // Fast accumulation: Hopper's FP8 MMA accumulates K in its own (narrower) accumulator without
      // promoting to fp32 every few blocks: faster, with its error inside the FP8 tests' bound.
      const std::int8_t fast = 1;
      VISOPT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof(fast)));
      const std::int32_t bias_type = cuda_type(dtype_);
      VISOPT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
      if (y.dtype() == DType::e4m3) {
        const void* scale = output_scale_.data();
        VISOPT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_D_SCALE_POINTER, &scale, sizeof(scale)));
      }
    }
    plan.a = layout(cuda_type(weight_.dtype()), k_, n_, k_);
    plan.b = layout(cuda_type(x.dtype()), k_, m, k_);
    plan.c = layout(cuda_type(dtype_), n_, m, n_);
    plan.d = layout(cuda_type(y.dtype()), n_, m, n_);
    choose_algorithm(context, plan, m, x, y, residual);
    return plan;
  }

  /// y = act(x·Wᵀ + bias) + residual as `plan` says.
  void forward(Context& context, const Plan& plan, const Tensor& x, Tensor& y, const Tensor* residual) {
    run(context, plan, x, y, residual, plan.algorithm);
  }

 private:
  std::string describe(std::int64_t m, DType out) const {
    const std::string types = runs_fp8() ? visopt::detail::concat("e4m3->", dtype_name(out)) : std::string(dtype_name(dtype_));
    return visopt::detail::concat("linear M=", m, " N=", n_, " K=", k_, " ", types, " compute=", static_cast<int>(compute_),
                                  " act=", nn::activation_name(epilogue_.activation), epilogue_.residual ? " residual" : "",
                                  bias_.defined() ? " bias" : "");
  }

  static MatrixLayout layout(cudaDataType_t type, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
    cublasLtMatrixLayout_t l = nullptr;
    VISOPT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, type, static_cast<std::uint64_t>(rows), static_cast<std::uint64_t>(cols), ld));
    return MatrixLayout(l);
  }

  /// Turns the weights into e4m3 (once; the fp16 copy is freed) and sets the D scale an e4m3 y needs.
  void use_fp8(Context& context, const Tensor& y) {
    require(fp8_capable(), "cuda::linear: an FP8 input to a linear that is not FP8 (internal error)");
    if (!runs_fp8()) {
      Tensor quantized = Tensor::empty(weight_.shape(), DType::e4m3, weight_.device());
      rescale(context, weight_, quantized, 1.0f / weight_step_);
      context.replace_weights(weight_, quantized);
      weight_ = quantized;
    }
    if (y.dtype() == DType::e4m3 && !output_scale_.defined()) {
      Tensor scale = Tensor::empty({1});
      scale.data_as<float>()[0] = 1.0f / y.quantization().step;
      output_scale_ = context.upload(scale, DType::f32);
    }
  }

  void run(Context& context, const Plan& plan, const Tensor& x, Tensor& y, const Tensor* residual, const cublasLtMatmulAlgo_t& algorithm) {
    // FP8: the product of e4m3 values times both steps is the product of what they stand for.
    const float alpha = x.dtype() == DType::e4m3 ? x.quantization().step * weight_step_ : 1.0f, beta = residual ? 1.0f : 0.0f;
    // Without a residual C is not read (beta = 0); an e4m3 y cannot stand in for it (C is fp16, and C = D
    // means in place, which needs equal layouts), so C is then null, as cuBLASLt allows for beta = 0.
    const void* c = residual ? residual->data() : y.dtype() == DType::e4m3 ? nullptr : y.data();
    VISOPT_CUBLAS_CHECK(cublasLtMatmul(context.cublaslt(), plan.description.get(), &alpha, weight_.data(), plan.a.get(), x.data(),
                                       plan.b.get(), &beta, c, plan.c.get(), y.data(), plan.d.get(), &algorithm,
                                       context.workspace(plan.workspace), plan.workspace, context.stream()),
                        describe(x.numel() / k_, y.dtype()));
  }

  void choose_algorithm(Context& context, Plan& plan, std::int64_t m, const Tensor& x, Tensor& y, const Tensor* residual) {
    runtime::AlgorithmCache* cache = context.cache();
    const std::string key = describe(m, y.dtype());
    if (cache) {
      if (auto hit = cache->find(key); hit && hit->contains("algorithm") && (*hit)["algorithm"].is_array() &&
                                       (*hit)["algorithm"].size() == 8) {
        for (std::size_t i = 0; i < 8; ++i) plan.algorithm.data[i] = (*hit)["algorithm"][i].get<std::uint64_t>();
        cublasLtMatmulHeuristicResult_t check{};
        if (cublasLtMatmulAlgoCheck(context.cublaslt(), plan.description.get(), plan.a.get(), plan.b.get(), plan.c.get(),
                                    plan.d.get(), &plan.algorithm, &check) == CUBLAS_STATUS_SUCCESS &&
            check.workspaceSize <= Context::workspace_limit) {
          plan.workspace = check.workspaceSize;
          return;
        }
        cache->forget(key);  // not an algorithm this cuBLASLt accepts: search again
      }
    }
    cublasLtMatmulPreference_t pref = nullptr;
    VISOPT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    MatmulPreference preference(pref);
    const std::uint64_t limit = Context::workspace_limit;
    VISOPT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &limit, sizeof(limit)));
    constexpr int wanted = 32;  // the heuristic's first choice is often not the fastest for ViT's tall M
    cublasLtMatmulHeuristicResult_t results[wanted]{};
    int returned = 0;
    VISOPT_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(context.cublaslt(), plan.description.get(), plan.a.get(), plan.b.get(),
                                                       plan.c.get(), plan.d.get(), pref, cache ? wanted : 1, results, &returned),
                        key);
    require(returned > 0, "cublasLt: no matmul algorithm for ", key);
    int best = 0;
    if (cache && returned > 1) best = fastest(context, plan, results, returned, x, y, residual);
    plan.algorithm = results[best].algo;
    plan.workspace = results[best].workspaceSize;
    if (cache) {
      nlohmann::json words = nlohmann::json::array();
      for (std::uint64_t word : plan.algorithm.data) words.push_back(word);
      cache->store(key, {{"algorithm", words}});
    }
  }

  /// Times each candidate on the real buffers (the output is rewritten by the run that follows).
  int fastest(Context& context, Plan& plan, const cublasLtMatmulHeuristicResult_t* results, int count, const Tensor& x,
              Tensor& y, const Tensor* residual) {
    int best = 0;
    float best_ms = 1e30f;
    for (int i = 0; i < count; ++i) {
      if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
      plan.workspace = results[i].workspaceSize;
      const float ms = fastest_run_ms(context.stream(), [&] {
        run(context, plan, x, y, residual, results[i].algo);
        return true;
      });
      if (ms < best_ms) {
        best_ms = ms;
        best = i;
      }
    }
    return best;
  }

  nn::LinearEpilogue epilogue_;
  DType dtype_;
  cublasComputeType_t compute_;
  std::int64_t n_, k_;
  Tensor weight_, bias_;
  float weight_step_ = 0.0f;  // FP8: max|W|/448, the e4m3 weights' step; 0 when not built for FP8
  Tensor output_scale_;       // FP8 with an e4m3 output: device f32 [1], 1/step of y (cuBLASLt's D scale)
};

}  // namespace visopt::backend::cuda
