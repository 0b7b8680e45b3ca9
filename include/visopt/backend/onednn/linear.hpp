#pragma once
// A linear layer as a oneDNN matmul: y [M,N] = act(x [M,K]·wᵀ + b) + residual, with the weights
// packed once into the layout the matmul chose, the activation as an eltwise post-op and the residual
// as a sum post-op reading the destination, which the caller fills with the residual (or which is it).

#include <string>

#include "../../nn/epilogue.hpp"
#include "../../nn/params.hpp"
#include "conv.hpp"
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

  /// y = act(x·wᵀ + b) [+ y]: x [M,K] and y [M,N] dense; with a residual epilogue y holds it on entry.
  void run(Context& context, const TensorView& x, const TensorView& y) {
    steps_.get(Layouts<2>{Layout(x), Layout(y)}, [&] { return make(context, x, y); }).run(context, {x.data(), y.data()});
  }

  const PackedWeights& packed() const { return packed_; }

  /// Calls f(const Step&) for each primitive made so far (one per input layout).
  template <class F>
  void for_each_step(F&& f) const {
    steps_.for_each(f);
  }

 private:
  Step make(Context& context, const TensorView& x, const TensorView& y) {
    const std::int64_t n = out_features(), k = in_features();
    const std::string what =
        visopt::detail::concat("linear weight ", weight_.shape(), " on input ", x.shape(), " ", dtype_name(x.dtype()));
    require(x.rank() == 2 && x.dim(1) == k && y.rank() == 2 && y.dim(0) == x.dim(0) && y.dim(1) == n, "onednn::", what,
            ": expected input [M,", k, "] and output [M,", n, "], got output ", y.shape());
    // torch keeps the weight as [N,K] row-major, which is the matmul's B [K,N] with strides {1,K}.
    const dnnl::memory::desc weight_source({k, n}, dnnl_dt::f32, dnnl::memory::dims{1, k});
    const dnnl::memory::desc weight_any({k, n}, to_dnnl(x.dtype()), dnnl::memory::format_tag::any);
    const dnnl::memory::desc bias = bias_.defined() ? describe(Shape{1, n}, DType::f32) : dnnl::memory::desc();
    const dnnl::memory::desc src = describe(x), dst = describe(y);

    dnnl::primitive_attr attr = context.attributes();
    dnnl::post_ops ops;
    append_activation(ops, epilogue_.activation);
    if (epilogue_.residual) VISOPT_DNNL(ops.append_sum(1.0f), what, ": appending the residual (sum) post-op");
    VISOPT_DNNL(attr.set_post_ops(ops), what, ": setting post-ops");

    const auto pd = VISOPT_DNNL(dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weight_any, bias, dst), attr,
                                                             context.engine()),
                                what, ": src ", to_string(src), ", dst ", to_string(dst), ", epilogue activation=",
                                nn::activation_name(epilogue_.activation), " residual=", epilogue_.residual);
    const dnnl::memory& weights = packed_.get(context, weight_source, weight_.data(), pd.weights_desc(), what);
    std::vector<Step::Arg> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, pd.weights_desc(), weights}};
    if (bias_.defined()) {
      args.push_back({DNNL_ARG_BIAS, bias,
                      VISOPT_DNNL(dnnl::memory(bias, context.engine(), bias_.data()), what, ": bias memory")});
    }
    args.push_back({DNNL_ARG_DST, dst});
    return Step(context, pd, args, what);
  }

  Tensor weight_, bias_;
  nn::LinearEpilogue epilogue_;
  PackedWeights packed_;
  StepCache<Layouts<2>> steps_;
};

}  // namespace visopt::backend::onednn
