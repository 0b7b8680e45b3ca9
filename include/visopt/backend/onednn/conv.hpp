#pragma once
// A 2-D convolution on oneDNN: weights packed once into the layout the primitive chose (and to bf16
// when activations are), one primitive per input layout, and the epilogue y = act(conv + bias +
// residual) as post-ops (sum, then eltwise): the residual is read from the destination itself.
// The primitive for each input layout is a step of the executor's batch plan (services/batch_plan.hpp).
// Under measured tuning in fp32 (O1), a 3×3 stride-1 convolution is also built as oneDNN's Winograd
// convolution (fewer multiplications: 2-3× faster at small batches on AVX-512) and the faster of the
// two, timed in the planning forward, is kept; its rounding differs from direct fp32 by ~1e-6 relative.
// An s8/u8 input makes it an int8 convolution (int8.hpp): weights quantized per output channel once,
// the output written as s8/u8 in its calibrated step, the residual read in its own.

#include <chrono>
#include <cstring>
#include <string>
#include <unordered_map>

#include "../../nn/epilogue.hpp"
#include "../../nn/params.hpp"
#include "../../services/batch_plan.hpp"
#include "int8.hpp"
#include "primitive.hpp"

namespace visopt::backend::onednn {

/// oneDNN's eltwise algorithm for an activation (none has none).
inline dnnl::algorithm eltwise_algorithm(nn::Activation act) {
  switch (act) {
    case nn::Activation::relu: return dnnl::algorithm::eltwise_relu;
    case nn::Activation::gelu: return dnnl::algorithm::eltwise_gelu_erf;  // torch.nn.GELU(): the exact erf form
    case nn::Activation::none: break;
  }
  return dnnl::algorithm::undef;
}

inline void append_activation(dnnl::post_ops& ops, nn::Activation act) {
  if (act == nn::Activation::none) return;
  VISOPT_DNNL(ops.append_eltwise(1.0f, eltwise_algorithm(act), 0.0f, 0.0f), "appending a ",
              nn::activation_name(act), " post-op");
}

class ConvOp {
 public:
  /// `measured`: time Winograd against direct where both apply (fp32 3×3 stride 1; see the header).
  ConvOp(const nn::Conv2dParams& params, nn::ConvEpilogue epilogue, bool measured = false)
      : weight_(params.weight), bias_(params.bias), geometry_(params.geometry), epilogue_(epilogue), measured_(measured) {
    require(weight_.rank() == 4 && weight_.dtype() == DType::f32, "onednn::conv2d: weight has shape ", weight_.shape(),
            " ", dtype_name(weight_.dtype()), ", expected f32 [K,C/groups,R,S]");
    require(!bias_.defined() || (bias_.dtype() == DType::f32 && bias_.shape() == Shape{weight_.dim(0)}),
            "onednn::conv2d: bias has shape ", bias_.shape(), ", expected f32 [", weight_.dim(0), "]");
  }

  const nn::ConvEpilogue& epilogue() const { return epilogue_; }

  Shape output_shape(const Shape& input) const {
    return nn::conv2d_output_shape(input, weight_.shape(), geometry_, "onednn::conv2d");
  }

  /// y = act(conv(x, w) + bias [+ y]): with a residual epilogue, y holds the shortcut on entry, in
  /// `residual`'s type and step when it is quantized. `describe(view)` gives the memory descriptor of an
  /// activation (the executor knows its layout); it is called only when a primitive is made (in the
  /// planning forward of `plans`).
  template <class Describe>
  void run(Context& context, runtime::BatchPlans<>& plans, const TensorView& x, const TensorView& y, Describe&& describe,
           const Quantization& residual = {}) {
    plans.step<Step>(this, Layouts<2>{Layout(x), Layout(y)},
                     [&] { return make(context, x, y, describe(x), describe(y), residual); })
        .run(context, {x.data(), y.data()});
  }

  /// Whether a primitive made so far reads s8/u8 input (for the report).
  bool ran_int8() const { return int8_.made(); }

  const PackedWeights& packed() const { return packed_; }

 private:
  Step make(Context& context, const TensorView& x, const TensorView& y, const dnnl::memory::desc& src,
            const dnnl::memory::desc& dst, const Quantization& residual) {
    const std::string what = visopt::detail::concat("conv2d weight ", weight_.shape(), " on input ", x.shape(), " ",
                                                    dtype_name(x.dtype()));
    const Shape out = output_shape(x.shape());
    require(y.shape() == out, "onednn::", what, ": output has shape ", y.shape(), ", expected ", out);
    const nn::Conv2dGeometry& g = geometry_;
    const std::int64_t k = weight_.dim(0), c = weight_.dim(1), r = weight_.dim(2), s = weight_.dim(3);
    const dnnl::memory::dims weight_dims =
        g.groups == 1 ? dnnl::memory::dims{k, c, r, s} : dnnl::memory::dims{g.groups, k / g.groups, c, r, s};
    const bool int8 = is_quantized(x.dtype());
    const float y_step = int8_.output_step(weight_, x, y, what);
    const Int8Epilogue scaled = int8 ? int8_.epilogue(bias_, 0, k, x.quantization().step, y_step) : Int8Epilogue{};
    const dnnl::memory::desc weight_source(weight_dims, int8 ? dnnl_dt::s8 : dnnl_dt::f32,
                                           g.groups == 1 ? dnnl::memory::format_tag::oihw : dnnl::memory::format_tag::goihw);
    const dnnl::memory::desc weight_any(weight_dims, int8 ? dnnl_dt::s8 : to_dnnl(x.dtype()), dnnl::memory::format_tag::any);
    const dnnl::memory::desc bias = bias_.defined() ? describe(bias_) : dnnl::memory::desc();
    const void* bias_data = !bias_.defined() ? nullptr : int8 ? scaled.bias.data() : bias_.data();
    // PyTorch pads symmetrically and floors; oneDNN wants the right padding that yields the same output
    // size, which is smaller than the left one when the last window does not reach the edge.
    auto right_padding = [](std::int64_t in, std::int64_t outs, std::int64_t kernel, int stride, int dilation, int left) {
      return (outs - 1) * stride + (kernel - 1) * dilation + 1 - in - left;
    };
    const dnnl::memory::dims strides{g.stride_h, g.stride_w}, dilation{g.dilation_h - 1, g.dilation_w - 1},
        pad_l{g.pad_h, g.pad_w},
        pad_r{right_padding(x.dim(2), out[2], r, g.stride_h, g.dilation_h, g.pad_h),
              right_padding(x.dim(3), out[3], s, g.stride_w, g.dilation_w, g.pad_w)};

    dnnl::primitive_attr attr = context.attributes();
    if (int8) VISOPT_DNNL(attr.set_output_scales(1 << 1, scaled.output_scales), what, ": per-channel output scales");
    dnnl::post_ops ops;
    if (epilogue_.residual) {
      // The shortcut is in y already, in its own type and step: scaled into y's step as it is added.
      const bool rescaled = residual.defined() && y_step > 0.0f;
      VISOPT_DNNL(ops.append_sum(rescaled ? residual.step / y_step : 1.0f,
                                 rescaled && residual.dtype != y.dtype() ? to_dnnl(residual.dtype) : dnnl_dt::undef),
                  what, ": appending the residual (sum) post-op");
    }
    append_activation(ops, epilogue_.activation);
    VISOPT_DNNL(attr.set_post_ops(ops), what, ": setting post-ops");

    auto descriptor = [&](dnnl::algorithm algorithm) {
      return dnnl::convolution_forward::primitive_desc(
          dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algorithm, src, weight_any, bias, dst, strides,
                                          dilation, pad_l, pad_r),
          attr, context.engine());
    };
    auto pd = VISOPT_DNNL(descriptor(dnnl::algorithm::convolution_direct), what, ": src ", to_string(src), ", dst ",
                          to_string(dst), ", epilogue residual=", epilogue_.residual, " activation=",
                          nn::activation_name(epilogue_.activation));
    if (measured_ && x.dtype() == DType::f32 && r == 3 && s == 3 && g.stride_h == 1 && g.stride_w == 1 && g.dilation_h == 1 &&
        g.dilation_w == 1 && g.groups == 1) {
      try {
        auto winograd = descriptor(dnnl::algorithm::convolution_winograd);
        if (milliseconds(context, winograd) < milliseconds(context, pd)) pd = winograd;
      } catch (const dnnl::error&) {  // no Winograd kernel for this shape, ISA or epilogue: direct it is
      }
    }
    const dnnl::memory weights =
        packed_.get(context, weight_source, int8 ? int8_.weights().values.data() : weight_.data(), pd.weights_desc(), what);
    const auto args = weighted_arguments(context, src, weights, bias, bias_data, dst, what);
    return Step(context, pd, args, what);
  }

  /// The fastest of three runs of `pd` (after one that loads its code) on zeroed scratch buffers of its
  /// shapes: the real destination may hold a residual that the sum post-op must read once.
  static double milliseconds(Context& context, const dnnl::convolution_forward::primitive_desc& pd) {
    auto zeroed = [&](const dnnl::memory::desc& desc) {
      dnnl::memory m(desc, context.engine());
      if (desc.get_size() > 0) std::memset(m.get_data_handle(), 0, desc.get_size());
      return m;
    };
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, zeroed(pd.src_desc())}, {DNNL_ARG_WEIGHTS, zeroed(pd.weights_desc())},
                                               {DNNL_ARG_DST, zeroed(pd.dst_desc())}, {DNNL_ARG_SCRATCHPAD, zeroed(pd.scratchpad_desc())}};
    if (pd.bias_desc().get_size() > 0) args.emplace(DNNL_ARG_BIAS, zeroed(pd.bias_desc()));
    const dnnl::convolution_forward convolution(pd);
    double best = 0;
    for (int i = 0; i < 4; ++i) {
      const auto start = std::chrono::steady_clock::now();
      convolution.execute(context.stream(), args);
      context.wait();
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      if (i == 1 || (i > 1 && ms < best)) best = ms;
    }
    return best;
  }

  Tensor weight_, bias_;  // f32 as given (BatchNorm already folded in when the level folds it)
  nn::Conv2dGeometry geometry_;
  nn::ConvEpilogue epilogue_;
  bool measured_ = false;
  PackedWeights packed_;
  Int8Weights int8_;
};

}  // namespace visopt::backend::onednn
