#pragma once
// A convolution on cuDNN. Fused (O1+): one cudnnConvolutionBiasActivationForward computes
// act(conv(x) + bias + residual). Unfused (O0, or where cuDNN cannot fuse): cudnnConvolutionForward
// then one epilogue kernel. The algorithm for each input shape is chosen on its first run, by cuDNN's
// heuristic or by measurement (kept in the algorithm cache), together with its workspace.

#include <map>
#include <vector>

#include "../../nn/epilogue.hpp"
#include "../../nn/params.hpp"
#include "context.hpp"
#include "kernels/elementwise.cuh"

namespace visopt::backend::cuda {

class Convolution {
 public:
  /// `params` is host fp32 [K, C/g, R, S]; weights are stored in `dtype`, KRSC when `nhwc`.
  Convolution(Context& context, const nn::Conv2dParams& params, nn::ConvEpilogue epilogue, DType dtype, bool nhwc,
              bool tensor_cores, bool fused)
      : geometry_(params.geometry), epilogue_(epilogue), dtype_(dtype), nhwc_(nhwc), fused_(fused), kcrs_(params.weight.shape()) {
    const int device = context.device().index;
    Tensor weight = params.weight;
    if (nhwc) weight = kcrs_to_krsc(weight);
    weight_ = upload(weight, dtype, device);
    const std::int64_t k = kcrs_[0];
    Tensor bias = params.bias.defined() ? params.bias : Tensor::zeros({k});
    has_bias_ = params.bias.defined();
    bias_ = upload(bias.reshaped({1, k, 1, 1}), dtype, device);
    bias_f32_ = upload(bias, DType::f32, device);
    filter_ = filter_descriptor(dtype, kcrs_, nhwc);
    convolution_ = convolution_descriptor(geometry_, tensor_cores);
    activation_ = activation_descriptor(epilogue.activation);
    bias_descriptor_ = tensor_descriptor(bias_.view());
  }

  Tensor forward(Context& context, const Tensor& x, const Tensor* residual) {
    const Shape out_shape = nn::conv2d_output_shape(x.shape(), kcrs_, geometry_, "cuda::conv2d");
    Tensor y = context.allocate(out_shape, dtype_, nhwc_ ? MemoryFormat::channels_last : MemoryFormat::contiguous);
    Plan& plan = plan_for(context, x, y, residual);
    const float one = 1.0f, zero = 0.0f;
    void* workspace = context.workspace(plan.workspace);
    VISOPT_CUDNN_CHECK(cudnnSetConvolutionMathType(convolution_.get(), plan.math));
    if (plan.fused) {
      const Tensor& z = residual ? *residual : y;
      const float alpha2 = residual ? 1.0f : 0.0f;
      VISOPT_CUDNN_CHECK(cudnnConvolutionBiasActivationForward(
                             context.cudnn(), &one, plan.x.get(), x.data(), filter_.get(), weight_.data(), convolution_.get(),
                             plan.algorithm, workspace, plan.workspace, &alpha2, plan.y.get(), z.data(), bias_descriptor_.get(),
                             bias_.data(), activation_.get(), plan.y.get(), y.data()),
                         describe(x.shape()));
      return y;
    }
    VISOPT_CUDNN_CHECK(cudnnConvolutionForward(context.cudnn(), &one, plan.x.get(), x.data(), filter_.get(), weight_.data(),
                                               convolution_.get(), plan.algorithm, workspace, plan.workspace, &zero,
                                               plan.y.get(), y.data()),
                       describe(x.shape()));
    if (has_bias_ || residual || epilogue_.activation != nn::Activation::none) {
      apply_epilogue(context, y, residual);
    }
    return y;
  }

  bool fused() const { return fused_; }
  /// Shapes whose fused call cuDNN refused, so they run conv + epilogue kernel instead.
  int fallbacks() const { return fallbacks_; }

 private:
  struct Plan {
    TensorDescriptor x, y;
    cudnnConvolutionFwdAlgo_t algorithm = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
    std::size_t workspace = 0;
    bool fused = false;
  };

  static Tensor kcrs_to_krsc(const Tensor& w) {
    const auto k = w.dim(0), c = w.dim(1), r = w.dim(2), s = w.dim(3);
    Tensor out = Tensor::empty({k, r, s, c});
    const float* src = w.data_as<float>();
    float* dst = out.data_as<float>();
    for (std::int64_t a = 0; a < k; ++a)
      for (std::int64_t b = 0; b < c; ++b)
        for (std::int64_t i = 0; i < r; ++i)
          for (std::int64_t j = 0; j < s; ++j) dst[((a * r + i) * s + j) * c + b] = src[((a * c + b) * r + i) * s + j];
    return out;
  }

  std::string describe(const Shape& x) const {
    return visopt::detail::concat("conv2d x=", x, " w=", kcrs_, " stride=", geometry_.stride_h, " pad=", geometry_.pad_h,
                                  " groups=", geometry_.groups, " ", dtype_name(dtype_), nhwc_ ? " nhwc" : " nchw");
  }

  // Identity-activation fusion is only implemented by IMPLICIT_PRECOMP_GEMM in cuDNN's fused call.
  bool algorithm_allowed(const Plan& plan, cudnnConvolutionFwdAlgo_t a) const {
    return !plan.fused || epilogue_.activation != nn::Activation::none || a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
  }

  Plan& plan_for(Context& context, const Tensor& x, const Tensor& y, const Tensor* residual) {
    std::vector<std::int64_t> key(x.shape().begin(), x.shape().end());
    if (auto it = plans_.find(key); it != plans_.end()) return it->second;
    Plan plan;
    plan.x = tensor_descriptor(x.view());
    plan.y = tensor_descriptor(y.view());
    plan.fused = fused_;
    if (!choose_algorithm(context, x, y, plan) && plan.fused) {
      plan.fused = false;  // no algorithm can fuse this shape: conv + epilogue kernel instead
      ++fallbacks_;
      require(choose_algorithm(context, x, y, plan), "cudnn: no convolution algorithm is available for ", describe(x.shape()));
    } else if (plan.fused && !try_fused(context, x, y, residual, plan)) {
      plan.fused = false;  // cuDNN refused this fusion: run conv + epilogue kernel instead
      ++fallbacks_;
    }
    return plans_.emplace(std::move(key), std::move(plan)).first->second;
  }

  /// Runs the fused call once to learn whether cuDNN supports it for this shape.
  bool try_fused(Context& context, const Tensor& x, const Tensor& y, const Tensor* residual, Plan& plan) {
    const float one = 1.0f, alpha2 = residual ? 1.0f : 0.0f;
    const Tensor& z = residual ? *residual : y;
    VISOPT_CUDNN_CHECK(cudnnSetConvolutionMathType(convolution_.get(), plan.math));
    const cudnnStatus_t status = cudnnConvolutionBiasActivationForward(
        context.cudnn(), &one, plan.x.get(), x.data(), filter_.get(), weight_.data(), convolution_.get(), plan.algorithm,
        context.workspace(plan.workspace), plan.workspace, &alpha2, plan.y.get(), z.data(), bias_descriptor_.get(),
        bias_.data(), activation_.get(), plan.y.get(), const_cast<void*>(y.data()));
    if (static_cast<int>(status) / 1000 == CUDNN_STATUS_NOT_SUPPORTED / 1000) return false;  // the NOT_SUPPORTED family
    VISOPT_CUDNN_CHECK(status, describe(x.shape()));
    return true;
  }

  /// Picks the plan's algorithm (false when none fits the plan's constraints).
  bool choose_algorithm(Context& context, const Tensor& x, const Tensor& y, Plan& plan) {
    runtime::AlgorithmCache* cache = context.cache();
    const std::string key = describe(x.shape()) + (plan.fused ? (epilogue_.activation == nn::Activation::none ? " fused-identity" : " fused-relu") : " plain") +
                            " math=" + std::to_string(static_cast<int>(convolution_math()));
    if (cache) {
      if (auto hit = cache->find(key)) {
        plan.algorithm = static_cast<cudnnConvolutionFwdAlgo_t>(hit->value("algorithm", 0));
        plan.math = static_cast<cudnnMathType_t>(hit->value("math", 0));
        if (algorithm_allowed(plan, plan.algorithm) && workspace_size(context, plan, plan.workspace)) return true;
        cache->forget(key);  // an entry this cuDNN rejects is not trusted
      }
    }
    constexpr int wanted = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
    cudnnConvolutionFwdAlgoPerf_t results[wanted];
    int returned = 0;
    if (cache) {
      VISOPT_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
                             context.cudnn(), plan.x.get(), x.data(), filter_.get(), weight_.data(), convolution_.get(),
                             plan.y.get(), const_cast<void*>(y.data()), wanted, &returned, results,
                             context.workspace(Context::workspace_limit), Context::workspace_limit),
                         describe(x.shape()));
    } else {
      VISOPT_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(context.cudnn(), plan.x.get(), filter_.get(), convolution_.get(),
                                                                plan.y.get(), wanted, &returned, results),
                         describe(x.shape()));
    }
    for (int i = 0; i < returned; ++i) {
      const auto& r = results[i];
      if (r.status != CUDNN_STATUS_SUCCESS || !algorithm_allowed(plan, r.algo) || r.memory > Context::workspace_limit) continue;
      plan.algorithm = r.algo;
      plan.math = r.mathType;
      if (!workspace_size(context, plan, plan.workspace)) continue;
      if (cache) cache->store(key, {{"algorithm", static_cast<int>(r.algo)}, {"math", static_cast<int>(r.mathType)}});
      return true;
    }
    return false;
  }

  cudnnMathType_t convolution_math() const {
    cudnnMathType_t math{};
    VISOPT_CUDNN_CHECK(cudnnGetConvolutionMathType(convolution_.get(), &math));
    return math;
  }

  bool workspace_size(Context& context, Plan& plan, std::size_t& bytes) {
    VISOPT_CUDNN_CHECK(cudnnSetConvolutionMathType(convolution_.get(), plan.math));
    const cudnnStatus_t status = cudnnGetConvolutionForwardWorkspaceSize(context.cudnn(), plan.x.get(), filter_.get(),
                                                                         convolution_.get(), plan.y.get(), plan.algorithm, &bytes);
    return status == CUDNN_STATUS_SUCCESS && bytes <= Context::workspace_limit;
  }

  void apply_epilogue(Context& context, Tensor& y, const Tensor* residual) {
    const long long n = y.numel();
    kernels::ChannelIndex channel{y.dim(1), y.dim(2) * y.dim(3), nhwc_};
    const float* shift = has_bias_ ? bias_f32_.data_as<float>() : nullptr;
    kernels::dispatch_dtype(dtype_, [&](auto tag) {
      using T = decltype(tag);
      kernels::channel_epilogue_kernel<T><<<kernels::blocks_for(n), 256, 0, context.stream()>>>(
          static_cast<const T*>(y.data()), nullptr, shift, residual ? static_cast<const T*>(residual->data()) : nullptr,
          static_cast<T*>(y.data()), n, channel, epilogue_.activation);
    });
    VISOPT_CUDA_CHECK_LAUNCH("channel_epilogue_kernel");
  }

  nn::Conv2dGeometry geometry_;
  nn::ConvEpilogue epilogue_;
  DType dtype_;
  bool nhwc_, fused_, has_bias_ = false;
  Shape kcrs_;
  Tensor weight_, bias_, bias_f32_;
  FilterDescriptor filter_;
  ConvolutionDescriptor convolution_;
  ActivationDescriptor activation_;
  TensorDescriptor bias_descriptor_;
  std::map<std::vector<std::int64_t>, Plan> plans_;
  int fallbacks_ = 0;
};

}  // namespace visopt::backend::cuda
