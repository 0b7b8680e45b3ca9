#pragma once
// A convolution on cuDNN. Fused (O1+): one cuDNN graph (backend API) computes
// act(conv(x) + bias + residual) in a single engine. Unfused (O0, or where no cuDNN engine can fuse
// a shape): cudnnConvolutionForward then one epilogue kernel. plan() chooses the engine or algorithm
// for an input shape, by cuDNN's heuristic or by measurement (kept in the algorithm cache), together
// with its workspace; the executor keeps that Plan in its batch plan (services/batch_plan.hpp).

#include <memory>
#include <optional>
#include <vector>

#include "../../nn/epilogue.hpp"
#include "../../nn/params.hpp"
#include "context.hpp"
#include "cudnn_graph.hpp"
#include "kernels/elementwise.cuh"

namespace visopt::backend::cuda {

class Convolution {
 public:
  /// `params` is host fp32 [K, C/g, R, S]; weights are stored in `dtype`, KRSC when `nhwc`.
  Convolution(Context& context, const nn::Conv2dParams& params, nn::ConvEpilogue epilogue, DType dtype, bool nhwc,
              bool tensor_cores, bool fused)
      : geometry_(params.geometry), epilogue_(epilogue), dtype_(dtype), nhwc_(nhwc), fused_(fused), kcrs_(params.weight.shape()) {
    Tensor weight = params.weight;
    if (nhwc) weight = kcrs_to_krsc(weight);
    weight_ = context.upload(weight, dtype);
    const std::int64_t k = kcrs_[0];
    Tensor bias = params.bias.defined() ? params.bias : Tensor::zeros({k});
    has_bias_ = params.bias.defined();
    bias_ = context.upload(bias.reshaped({1, k, 1, 1}), dtype);
    bias_f32_ = context.upload(bias, DType::f32);
    filter_ = filter_descriptor(dtype, kcrs_, nhwc);
    convolution_ = convolution_descriptor(geometry_, tensor_cores);
  }

  /// What runs one input shape: a fused cuDNN graph with its engine, or an algorithm for
  /// cudnnConvolutionForward (then the epilogue kernel), with their descriptors and workspace.
  struct Plan {
    TensorDescriptor x, y;
    cudnnConvolutionFwdAlgo_t algorithm = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
    std::size_t workspace = 0;
    std::shared_ptr<const FusedConvolutionGraph> graph;  // the fused path; null: conv + epilogue kernel
    bool fallback = false;                         // fusion was asked for, but no cuDNN engine fuses this shape
  };

  /// The output tensor for input `x`, from the pool.
  Tensor output(Context& context, const Tensor& x) const {
    const Shape out_shape = nn::conv2d_output_shape(x.shape(), kcrs_, geometry_, "cuda::conv2d");
    return context.allocate(out_shape, dtype_, nhwc_ ? MemoryFormat::channels_last : MemoryFormat::contiguous);
  }

  /// The fused graph of one spec with its engine chosen (null: no engine fuses it here); what
  /// convolutions of equal shapes share within a batch plan.
  struct FusedChoice {
    std::shared_ptr<const FusedConvolutionGraph> graph;
  };

  /// Chooses (or finds in the algorithm cache) how to run input `x` into `y` (timing candidates on
  /// these buffers when tuning is measured). `share(key, make)` returns the batch plan's shared
  /// FusedChoice for `key`, made by `make()` once: convolutions of equal shapes in one plan (ResNet-50
  /// repeats most of its blocks) build and time one cuDNN graph between them.
  template <class Share>
  Plan plan(Context& context, const Tensor& x, const Tensor& y, const Tensor* residual, Share&& share) {
    Plan plan;
    if (fused_) {
      if (auto spec = fused_spec(x, y, residual)) {
        plan.graph = share(spec->describe(), [&] { return std::make_shared<FusedChoice>(FusedChoice{fused_graph(context, *spec, x, y, residual)}); })
                         ->graph;
      }
      plan.fallback = plan.graph == nullptr;  // no cuDNN engine fuses this shape: conv + epilogue kernel instead
    }
    if (!plan.graph) {
      plan.x = tensor_descriptor(x.view());
      plan.y = tensor_descriptor(y.view());
      require(choose_algorithm(context, x, y, plan), "cudnn: no convolution algorithm is available for ", describe(x.shape()));
    }
    return plan;
  }

  /// y = act(conv(x) + bias + residual) as `plan` says.
  void forward(Context& context, const Plan& plan, const Tensor& x, Tensor& y, const Tensor* residual) {
    if (plan.graph) {
      VISOPT_CUDNN_CHECK(plan.graph->execute(context.cudnn(), x.data(), weight_.data(), bias_.data(),
                                             residual ? residual->data() : nullptr, y.data(),
                                             context.workspace(plan.graph->workspace())),
                         plan.graph->spec().describe());
      return;
    }
    const float one = 1.0f, zero = 0.0f;
    void* workspace = context.workspace(plan.workspace);
    VISOPT_CUDNN_CHECK(cudnnSetConvolutionMathType(convolution_.get(), plan.math));
    VISOPT_CUDNN_CHECK(cudnnConvolutionForward(context.cudnn(), &one, plan.x.get(), x.data(), filter_.get(), weight_.data(),
                                               convolution_.get(), plan.algorithm, workspace, plan.workspace, &zero,
                                               plan.y.get(), y.data()),
                       describe(x.shape()));
    if (has_bias_ || residual || epilogue_.activation != nn::Activation::none) {
      apply_epilogue(context, y, residual);
    }
  }

 private:
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

  /// The fused graph's spec for this call, or nothing when cuDNN's graph cannot express it.
  std::optional<FusedConvolutionSpec> fused_spec(const Tensor& x, const Tensor& y, const Tensor* residual) const {
    if (geometry_.groups != 1) return std::nullopt;
    if (residual && residual->view().strides() != y.view().strides()) return std::nullopt;
    FusedConvolutionSpec spec;
    spec.dtype = dtype_;
    spec.x = x.shape();
    spec.x_strides = x.view().strides();
    spec.w = kcrs_;
    const auto c = kcrs_[1], r = kcrs_[2], s = kcrs_[3];
    spec.w_strides = nhwc_ ? Strides{r * s * c, 1, s * c, c} : Strides{c * r * s, r * s, s, 1};
    spec.y = y.shape();
    spec.y_strides = y.view().strides();
    spec.geometry = geometry_;
    spec.bias = has_bias_;
    spec.residual = residual != nullptr;
    spec.activation = epilogue_.activation;
    return spec;
  }

  /// The fused graph for `spec` with its engine chosen, or null when no engine can run it here.
  std::shared_ptr<FusedConvolutionGraph> fused_graph(Context& context, const FusedConvolutionSpec& spec, const Tensor& x,
                                                     const Tensor& y, const Tensor* residual) {
    auto graph = std::make_shared<FusedConvolutionGraph>(context.cudnn(), spec);
    const void* z = residual ? residual->data() : nullptr;

    runtime::AlgorithmCache* cache = context.cache();
    const std::string key = spec.describe();
    if (cache) {
      if (auto hit = cache->find(key)) {
        const int rank = hit->value("rank", -2);
        if (rank == -1) return nullptr;  // measured before: no engine fuses this shape
        if (auto plan = graph->build(context.cudnn(), rank, Context::workspace_limit)) {
          graph->use(std::move(*plan));
          return graph;
        }
        cache->forget(key);  // an entry this cuDNN rejects is not trusted
      }
    }
    // Heuristic: the first engine that builds. Measured: the fastest of the first few that build.
    constexpr int measured_candidates = 4;
    auto best = graph->fastest_plan(context.cudnn(), Context::workspace_limit, cache ? measured_candidates : 1,
                                    [&](const FusedConvolutionGraph::Plan& plan) { return time_plan(context, *graph, plan, x, y, z); });
    if (cache) cache->store(key, {{"rank", best ? best->plan.rank : -1}, {"ms", best ? best->ms : 0.0f}});
    if (!best) return nullptr;
    graph->use(std::move(best->plan));
    return graph;
  }

  /// Milliseconds of one run of a candidate plan (fastest_run_ms), or -1 if it fails to run.
  float time_plan(Context& context, const FusedConvolutionGraph& graph, const FusedConvolutionGraph::Plan& plan, const Tensor& x,
                  const Tensor& y, const void* z) {
    void* workspace = context.workspace(plan.workspace);
    return fastest_run_ms(context.stream(), [&] {
      return graph.execute(context.cudnn(), plan, x.data(), weight_.data(), bias_.data(), z, const_cast<void*>(y.data()), workspace) ==
             CUDNN_STATUS_SUCCESS;
    });
  }

  /// Picks the plan's algorithm (false when none fits the plan's constraints).
  bool choose_algorithm(Context& context, const Tensor& x, const Tensor& y, Plan& plan) {
    runtime::AlgorithmCache* cache = context.cache();
    const std::string key = describe(x.shape()) + " plain math=" + std::to_string(static_cast<int>(convolution_math()));
    if (cache) {
      if (auto hit = cache->find(key)) {
        plan.algorithm = static_cast<cudnnConvolutionFwdAlgo_t>(hit->value("algorithm", 0));
        plan.math = static_cast<cudnnMathType_t>(hit->value("math", 0));
        if (workspace_size(context, plan, plan.workspace)) return true;
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
      if (r.status != CUDNN_STATUS_SUCCESS || r.memory > Context::workspace_limit) continue;
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

  bool workspace_size(Context& context, const Plan& plan, std::size_t& bytes) {
    VISOPT_CUDNN_CHECK(cudnnSetConvolutionMathType(convolution_.get(), plan.math));
    const cudnnStatus_t status = cudnnGetConvolutionForwardWorkspaceSize(context.cudnn(), plan.x.get(), filter_.get(),
                                                                         convolution_.get(), plan.y.get(), plan.algorithm, &bytes);
    return status == CUDNN_STATUS_SUCCESS && bytes <= Context::workspace_limit;
  }

  void apply_epilogue(Context& context, const Tensor& y, const Tensor* residual) {
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
};

}  // namespace visopt::backend::cuda
