#pragma once
// The stateless oneDNN operations (no parameters to prepare): the reorder that converts images at the
// model's input, an activation, an add, and max/average pooling. Each function makes the Step for one
// set of tensors, described by the executor (which knows their layouts); the executor caches them.

#include <string>

#include "../../nn/op_specs.hpp"
#include "conv.hpp"
#include "primitive.hpp"

namespace visopt::backend::onednn {

/// y = x converted to y's type and layout (the model input: f32 NCHW -> bf16 NHWC, say).
inline Step make_reorder(Context& context, const TensorView& x, const dnnl::memory::desc& src, const TensorView& y,
                         const dnnl::memory::desc& dst, float scale = 1.0f) {
  const std::string what = visopt::detail::concat("reorder ", x.shape(), " ", dtype_name(x.dtype()), " -> ", dtype_name(y.dtype()),
                                                  scale != 1.0f ? visopt::detail::concat(" scaled by ", scale) : std::string());
  dnnl::primitive_attr attr = context.attributes();
  if (scale != 1.0f) VISOPT_DNNL(attr.set_output_scales(0, {scale}), what, ": output scale");
  const auto pd = VISOPT_DNNL(dnnl::reorder::primitive_desc(context.engine(), src, context.engine(), dst, attr), what,
                              ": ", to_string(src), " -> ", to_string(dst));
  return Step(context, pd, {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}}, what);
}

/// y = act(x) with x and y of one layout.
inline Step make_activation(Context& context, const TensorView& x, const TensorView& y, const dnnl::memory::desc& data,
                            nn::Activation act) {
  const std::string what =
      visopt::detail::concat(nn::activation_name(act), " on ", x.shape(), " ", dtype_name(x.dtype()));
  require(act != nn::Activation::none && Layout(x) == Layout(y), "onednn::", what, ": expected an activation and one layout");
  const auto pd = VISOPT_DNNL(
      dnnl::eltwise_forward::primitive_desc(
          dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, eltwise_algorithm(act), data, 0.0f, 0.0f),
          context.attributes(), context.engine()),
      what);
  return Step(context, pd, {{DNNL_ARG_SRC, data}, {DNNL_ARG_DST, data}}, what);
}

/// y = a + b, all three of one shape (layouts may differ).
inline Step make_add(Context& context, const TensorView& a, const dnnl::memory::desc& ma, const TensorView& b,
                     const dnnl::memory::desc& mb, const TensorView& y, const dnnl::memory::desc& my) {
  const std::string what = visopt::detail::concat("add on ", a.shape(), " ", dtype_name(a.dtype()));
  require(a.shape() == b.shape() && a.shape() == y.shape(), "onednn::", what, ": operands have shapes ", a.shape(),
          " and ", b.shape(), ", expected equal");
  const auto pd = VISOPT_DNNL(dnnl::binary::primitive_desc(dnnl::binary::desc(dnnl::algorithm::binary_add, ma, mb, my),
                                                           context.attributes(), context.engine()),
                              what);
  return Step(context, pd, {{DNNL_ARG_SRC_0, ma}, {DNNL_ARG_SRC_1, mb}, {DNNL_ARG_DST, my}}, what);
}

/// torch.nn.MaxPool2d(kernel, stride, padding) (or, with `average`, an average over the window that
/// excludes padding) from x into y, whose shape the caller computed with nn::pool2d_output_shape.
inline Step make_pooling(Context& context, const TensorView& x, const dnnl::memory::desc& src, const TensorView& y,
                         const dnnl::memory::desc& dst, int kernel, int stride, int padding, bool average) {
  const std::string what = visopt::detail::concat(average ? "avg_pool2d" : "max_pool2d", " ", kernel, "/", stride,
                                                  " on ", x.shape(), " ", dtype_name(x.dtype()));
  // Like a convolution: the right padding that gives PyTorch's floored output size.
  auto right = [&](int axis) { return (y.dim(axis) - 1) * stride + kernel - x.dim(axis) - padding; };
  const dnnl::memory::dims kernel_dims{kernel, kernel}, strides{stride, stride}, pad_l{padding, padding},
      pad_r{right(2), right(3)};
  const auto algorithm = average ? dnnl::algorithm::pooling_avg_exclude_padding : dnnl::algorithm::pooling_max;
  const auto pd = VISOPT_DNNL(
      dnnl::pooling_forward::primitive_desc(dnnl::pooling_forward::desc(dnnl::prop_kind::forward_inference, algorithm,
                                                                        src, dst, strides, kernel_dims, pad_l, pad_r),
                                            context.attributes(), context.engine()),
      what, ": ", to_string(src), " -> ", to_string(dst));
  return Step(context, pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}}, what);
}

}  // namespace visopt::backend::onednn
