#pragma once
// Multi-head self-attention on oneDNN, on q, k and v as three dense [B,L,D] planes (the qkv
// projection writes them so: LinearOp::run_planes). Both batched matmuls read their heads through the
// strides of dense [B,L,H,dh] descriptors and run on brgemm kernels; the 1/sqrt(dh) scale rides in the
// first matmul's output scale, softmax runs in fp32 (oneDNN 2.6 has no softmax post-op), and S·V is
// written straight into y [B,L,D] in the heads' order. Three primitives, no copy.
//
// Why not read a packed qkv [B,L,3D] in place: oneDNN 2.6 runs matmuls on strides that are not a
// permutation of a dense tensor on its packed GEMM ("gemm:jit"), which mallocs packing buffers on
// every call (an O3 run() must not allocate) and was measured 10-25% slower here than brgemm.

#include <cmath>
#include <string>

#include "../../services/batch_plan.hpp"
#include "primitive.hpp"

namespace visopt::backend::onednn {

class AttentionOp {
 public:
  /// planes [3,B,L,D] (q, k, v; dense) -> y [B,L,D] (dense, the planes' type). `scores` is fp32
  /// [B,H,L,L]; `probs` has that shape in the planes' type and may be `scores` itself when that is
  /// fp32 (softmax in place).
  /// Every layer of one input shape shares its three primitives (one step of the batch plan).
  void run(Context& context, runtime::BatchPlans<>& plans, const TensorView& planes, const TensorView& scores,
           const TensorView& probs, const TensorView& y) {
    const Steps& steps = plans.step<Steps>(this, Layouts<4>{Layout(planes), Layout(scores), Layout(probs), Layout(y)},
                                           [&] { return make(context, planes, scores, probs, y); });
    const std::size_t plane = static_cast<std::size_t>(y.numel()) * dtype_size(planes.dtype());
    const auto* q = static_cast<const std::byte*>(planes.data());
    steps.scores.run(context, {q, q + plane, scores.data()});
    steps.softmax.run(context, {scores.data(), probs.data()});
    steps.mix.run(context, {probs.data(), q + 2 * plane, y.data()});
  }

 private:
  struct Steps {
    Step scores, softmax, mix;
  };

  static Steps make(Context& context, const TensorView& planes, const TensorView& scores, const TensorView& probs,
                    const TensorView& y) {
    const std::int64_t b = y.dim(0), l = y.dim(1), d = y.dim(2), h = scores.dim(1), dh = d / h;
    const std::string what = visopt::detail::concat("attention on q, k, v ", planes.shape(), " ",
                                                    dtype_name(planes.dtype()), " with ", h, " heads");
    require(y.rank() == 3 && y.is_contiguous() && d % h == 0 && planes.shape() == Shape{3, b, l, d} &&
                planes.is_contiguous() && scores.shape() == Shape{b, h, l, l} && probs.shape() == scores.shape() &&
                scores.dtype() == DType::f32 && probs.dtype() == planes.dtype() && y.dtype() == planes.dtype(),
            "onednn::", what, ": expected dense planes [3,B,L,D], y [B,L,D] and f32 scores [B,H,L,L]; got y ",
            y.shape(), ", scores ", scores.shape());
    using tag = dnnl::memory::format_tag;
    const dnnl_dt type = to_dnnl(planes.dtype());
    // A dense [B,L,D] plane seen per head: dims [B,H,L,dh] in acbd order; Kᵀ: dims [B,H,dh,L] in adbc.
    const dnnl::memory::desc q({b, h, l, dh}, type, tag::acbd), k_transposed({b, h, dh, l}, type, tag::adbc);
    const dnnl::memory::desc v = q, out = q;
    const dnnl::memory::desc s = describe(scores), p = describe(probs);

    Steps steps;
    {
      dnnl::primitive_attr attr = context.attributes();
      VISOPT_DNNL(attr.set_output_scales(0, {1.0f / std::sqrt(static_cast<float>(dh))}), what, ": scale");
      const auto pd = VISOPT_DNNL(dnnl::matmul::primitive_desc(dnnl::matmul::desc(q, k_transposed, s), attr, context.engine()),
                                  what, ": Q·Kᵀ into ", to_string(s));
      steps.scores = Step(context, pd, {{DNNL_ARG_SRC, q}, {DNNL_ARG_WEIGHTS, k_transposed}, {DNNL_ARG_DST, s}}, what + " Q·Kᵀ");
    }
    {
      const auto pd = VISOPT_DNNL(
          dnnl::softmax_v2_forward::primitive_desc(
              dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::softmax_accurate, s, p, 3),
              context.attributes(), context.engine()),
          what, ": softmax ", to_string(s), " -> ", to_string(p));
      steps.softmax = Step(context, pd, {{DNNL_ARG_SRC, s}, {DNNL_ARG_DST, p}}, what + " softmax");
    }
    {
      const auto pd = VISOPT_DNNL(dnnl::matmul::primitive_desc(dnnl::matmul::desc(p, v, out), context.attributes(),
                                                               context.engine()),
                                  what, ": S·V into ", to_string(out));
      steps.mix = Step(context, pd, {{DNNL_ARG_SRC, p}, {DNNL_ARG_WEIGHTS, v}, {DNNL_ARG_DST, out}}, what + " S·V");
    }
    return steps;
  }
};

}  // namespace visopt::backend::onednn
