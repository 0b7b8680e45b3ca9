#pragma once
// LayerNorm (over the last axis; bf16 or fp32 data, statistics and affine in fp32) and inference
// BatchNorm (O0 keeps it as its own operation; from O1 compile() folds it into the convolutions).

#include <string>

#include "../../nn/params.hpp"
#include "../../services/batch_plan.hpp"
#include "primitive.hpp"

namespace visopt::backend::onednn {

namespace detail {
inline dnnl::memory bind_f32(Context& context, const Tensor& t, const std::string& what, const char* name) {
  require(t.dtype() == DType::f32 && t.rank() == 1, "onednn::", what, ": ", name, " has shape ", t.shape(), " ",
          dtype_name(t.dtype()), ", expected f32 [C]");
  const dnnl::memory::desc md = describe(t);
  return VISOPT_DNNL(dnnl::memory(md, context.engine(), t.data()), what, ": ", name, " memory");
}
}  // namespace detail

class LayerNormOp {
 public:
  explicit LayerNormOp(const nn::LayerNormParams& params) : params_(params) {}

  /// y = (x - mean) / sqrt(var + eps) * weight + bias over the last axis; x and y dense [M, D].
  void run(Context& context, runtime::BatchPlans<>& plans, const TensorView& x, const TensorView& y) {
    plans.step<Step>(this, Layouts<2>{Layout(x), Layout(y)}, [&] { return make(context, x, y); })
        .run(context, {x.data(), y.data()});
  }

 private:
  Step make(Context& context, const TensorView& x, const TensorView& y) {
    const std::string what = visopt::detail::concat("layer_norm on ", x.shape(), " ", dtype_name(x.dtype()));
    require(x.rank() == 2 && y.shape() == x.shape() && y.dtype() == x.dtype() && x.dim(1) == params_.weight.numel(),
            "onednn::", what, ": expected [M,", params_.weight.numel(), "] in and out, got out ", y.shape());
    const dnnl::memory::desc src = describe(x), dst = describe(y);
    const auto pd = VISOPT_DNNL(
        dnnl::layer_normalization_forward::primitive_desc(
            dnnl::layer_normalization_forward::desc(dnnl::prop_kind::forward_inference, src, params_.eps,
                                                    dnnl::normalization_flags::use_scale |
                                                        dnnl::normalization_flags::use_shift),
            context.attributes(), context.engine()),
        what);
    require(pd.dst_desc() == dst, "onednn::", what, ": layer normalisation writes ", to_string(pd.dst_desc()),
            ", not the requested ", to_string(dst));
    return Step(context, pd,
                {{DNNL_ARG_SRC, src},
                 {DNNL_ARG_SCALE, describe(params_.weight), detail::bind_f32(context, params_.weight, what, "weight")},
                 {DNNL_ARG_SHIFT, describe(params_.bias), detail::bind_f32(context, params_.bias, what, "bias")},
                 {DNNL_ARG_DST, dst}},
                what);
  }

  nn::LayerNormParams params_;
};

class BatchNormOp {
 public:
  explicit BatchNormOp(const nn::BatchNormParams& params) : params_(params) {}

  /// Inference BatchNorm with the running statistics; x and y [N,C,H,W] of the same layout, whose
  /// descriptor `describe(x)` gives.
  template <class Describe>
  void run(Context& context, runtime::BatchPlans<>& plans, const TensorView& x, const TensorView& y, Describe&& describe) {
    plans.step<Step>(this, Layouts<2>{Layout(x), Layout(y)}, [&] { return make(context, x, y, describe(x)); })
        .run(context, {x.data(), y.data()});
  }

 private:
  Step make(Context& context, const TensorView& x, const TensorView& y, const dnnl::memory::desc& data) {
    const std::string what = visopt::detail::concat("batch_norm on ", x.shape(), " ", dtype_name(x.dtype()));
    require(y.shape() == x.shape() && Layout(y) == Layout(x) && x.rank() == 4 && x.dim(1) == params_.weight.numel(),
            "onednn::", what, ": expected [N,", params_.weight.numel(), ",H,W] in and out of one layout");
    const auto pd = VISOPT_DNNL(
        dnnl::batch_normalization_forward::primitive_desc(
            dnnl::batch_normalization_forward::desc(dnnl::prop_kind::forward_inference, data, params_.eps,
                                                    dnnl::normalization_flags::use_global_stats |
                                                        dnnl::normalization_flags::use_scale |
                                                        dnnl::normalization_flags::use_shift),
            context.attributes(), context.engine()),
        what);
    const nn::BatchNormParams& p = params_;
    return Step(context, pd,
                {{DNNL_ARG_SRC, data},
                 {DNNL_ARG_MEAN, describe(p.running_mean), detail::bind_f32(context, p.running_mean, what, "running_mean")},
                 {DNNL_ARG_VARIANCE, describe(p.running_var), detail::bind_f32(context, p.running_var, what, "running_var")},
                 {DNNL_ARG_SCALE, describe(p.weight), detail::bind_f32(context, p.weight, what, "weight")},
                 {DNNL_ARG_SHIFT, describe(p.bias), detail::bind_f32(context, p.bias, what, "bias")},
                 {DNNL_ARG_DST, data}},
                what);
  }

  nn::BatchNormParams params_;
};

}  // namespace visopt::backend::onednn
