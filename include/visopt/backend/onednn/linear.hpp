#pragma once
// A linear layer as oneDNN matmuls: y [M,N] = act(x [M,K]·wᵀ + b) + residual, with the weights
// packed once into the layout the matmul chose, the activation as an eltwise post-op and the residual
// as a sum post-op reading the destination, which the caller fills with the residual (or which is it).
// The output can also be written as planes (attention's q, k and v, each dense) by one matmul per plane.
// An s8/u8 input makes it an int8 matmul (int8.hpp): weights quantized per output feature once; the
// output floating, or s8/u8 in its calibrated step.

#include <string>
#include <vector>

#include "../../nn/epilogue.hpp"
#include "../../nn/params.hpp"
#include "conv.hpp"
#include "int8.hpp"
#include "primitive.hpp"

namespace visopt::backend::onednn {

class LinearOp {
 public:
  LinearOp(const nn::LinearParams& params, nn::LinearEpilogue epilogue)
      : weight_(params.weight), bias_(params.bias), epilogue_(epilogue) {
    require(weight_.rank() == 2 && weight_.dtype() == DType::f32, "onednn::linear: weight has shape ", weight_.shape(),
            " ", dtype_name(weight_.dtype()), ", expected f32 [out, in]");
    require(!bias_.defined() || (bias_.dtype() == DType::f32 && bias_.shape() == Shape{weight_.dim(0)}),
            "onednn::linear: bias has shape ", bias_.shape(), ", expected f32 [", weight_.dim(0), "]");
  }

  std::int64_t in_features() const { return weight_.dim(1); }
  std::int64_t out_features() const { return weight_.dim(0); }
  const nn::LinearEpilogue& epilogue() const { return epilogue_; }
  /// Whether a primitive made so far reads s8/u8 input (for the report).
  bool ran_int8() const { return int8_.made(); }

  /// y = act(x·wᵀ + b) [+ y]: x [M,K] and y [M,N] dense; with a residual epilogue y holds it on entry.
  void run(Context& context, runtime::BatchPlans<>& plans, const TensorView& x, const TensorView& y) {
    plans.step<Plan>(this, Layouts<2>{Layout(x), Layout(y)}, [&] { return make(context, x, y, 1); }).run(context, x, y);
  }

  /// planes [G,M,N/G] dense: plane g holds output columns [g·N/G, (g+1)·N/G), so that each plane is
  /// dense where one [M,N] output would interleave them row by row (attention splits qkv so, without a
  /// copy: oneDNN 2.6's matmuls read only permutations of dense tensors on their brgemm kernels).
  void run_planes(Context& context, runtime::BatchPlans<>& plans, const TensorView& x, const TensorView& planes) {
    require(planes.rank() == 3 && planes.dim(0) * planes.dim(2) == out_features() && !epilogue_.residual,
            "onednn::linear: planes have shape ", planes.shape(), ", expected [G, M, ", out_features(),
            "/G] of a linear without residual");
    plans.step<Plan>(this, Layouts<2>{Layout(x), Layout(planes)}, [&] { return make(context, x, planes, planes.dim(0)); })
        .run(context, x, planes);
  }

  /// What runs one input layout: one matmul per output plane (one in all for a plain [M,N] output).
  struct Plan {
    std::vector<Step> planes;
    std::size_t plane_bytes = 0;
    void run(const Context& context, const TensorView& x, const TensorView& y) const {
      auto* out = static_cast<std::byte*>(y.data());
      for (const Step& step : planes) {
        step.run(context, {x.data(), out});
        out += plane_bytes;
      }
    }
  };


 private:
  Plan make(Context& context, const TensorView& x, const TensorView& y, std::int64_t groups) {
    const std::int64_t n = out_features() / groups, k = in_features(), m = x.dim(0);
    const std::string what =
        visopt::detail::concat("linear weight ", weight_.shape(), " on input ", x.shape(), " ", dtype_name(x.dtype()),
                               groups > 1 ? visopt::detail::concat(" into ", groups, " planes") : std::string());
    const Shape out = groups > 1 ? Shape{groups, m, n} : Shape{m, n};
    const bool int8 = is_quantized(x.dtype());
    require(x.rank() == 2 && x.dim(1) == k && x.is_contiguous() && y.shape() == out && y.is_contiguous() &&
                (y.dtype() == x.dtype() || int8),
            "onednn::", what, ": expected dense input [M,", k, "] and output ", out, ", got output ", y.shape(), " ",
            dtype_name(y.dtype()));
    const float y_step = int8_.output_step(weight_, x, y, what);
    // torch keeps the weight as [N,K] row-major, which is the matmul's B [K,N] with strides {1,K}; a
    // plane's B starts n rows further down.
    const dnnl::memory::desc weight_source({k, n}, int8 ? dnnl_dt::s8 : dnnl_dt::f32, dnnl::memory::dims{1, k});
    const dnnl::memory::desc weight_any({k, n}, int8 ? dnnl_dt::s8 : to_dnnl(x.dtype()), dnnl::memory::format_tag::any);
    const dnnl::memory::desc bias = bias_.defined() ? describe(Shape{1, n}, DType::f32) : dnnl::memory::desc();
    const dnnl::memory::desc src = describe(x), dst = describe(Shape{m, n}, y.dtype());

    // A quantized output takes the activation in its own step: a linear post-op divides by it after the
    // activation (the output scales cannot: GELU is not scale-invariant).
    dnnl::post_ops ops;
    append_activation(ops, epilogue_.activation);
    if (y_step > 0.0f && epilogue_.activation != nn::Activation::none) {
      VISOPT_DNNL(ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, 1.0f / y_step, 0.0f), what,
                  ": appending the output step (linear post-op)");
    }
    if (epilogue_.residual) VISOPT_DNNL(ops.append_sum(1.0f), what, ": appending the residual (sum) post-op");

    Plan plan;
    plan.plane_bytes = static_cast<std::size_t>(m * n) * dtype_size(y.dtype());
    for (std::int64_t g = 0; g < groups; ++g) {
      // int8: each plane has its own output scales (the steps of its weight rows) and scaled bias.
      const float scaled_step = epilogue_.activation == nn::Activation::none ? y_step : 0.0f;  // else the linear post-op
      const Int8Epilogue scaled =
          int8 ? int8_.epilogue(bias_, g * n, n, x.quantization().step, scaled_step) : Int8Epilogue{};
      dnnl::primitive_attr attr = context.attributes();
      if (int8) VISOPT_DNNL(attr.set_output_scales(1 << 1, scaled.output_scales), what, ": per-feature output scales");
      VISOPT_DNNL(attr.set_post_ops(ops), what, ": setting post-ops");
      const auto pd = VISOPT_DNNL(dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weight_any, bias, dst), attr,
                                                               context.engine()),
                                  what, ": src ", to_string(src), ", dst ", to_string(dst), ", epilogue activation=",
                                  nn::activation_name(epilogue_.activation), " residual=", epilogue_.residual);
      const void* rows = int8 ? static_cast<const void*>(int8_.weights().values.data_as<std::int8_t>() + g * n * k)
                              : static_cast<const void*>(weight_.data_as<float>() + g * n * k);
      const dnnl::memory weights = packed_.get(context, weight_source, rows, pd.weights_desc(), what);
      const float* b = !bias_.defined() ? nullptr : int8 ? scaled.bias.data_as<float>() : bias_.data_as<float>() + g * n;
      plan.planes.emplace_back(context, pd, weighted_arguments(context, src, weights, bias, b, dst, what), what);
    }
    return plan;
  }

  Tensor weight_, bias_;
  nn::LinearEpilogue epilogue_;
  PackedWeights packed_;
  Int8Weights int8_;
};

}  // namespace visopt::backend::onednn
