#pragma once
// Self-attention as one cuDNN graph, softmax(Q·Kᵀ·scale)·V on cuDNN's fused flash-attention engine, in
// one of two forms: the single SDPA forward operation (cuDNN 9.13.1 and newer), or the same written out
// operation by operation (matmul, scale, max, subtract, exp, sum, divide, matmul, with the log-sum-exp
// branch the engine's pattern includes), which older cuDNN 9 releases recognise. Q, K and V are read in
// place from the packed [B, L, 3·H·D] projection through strides (the decomposed form reads K as Kᵀ by
// swapping two), and O is written as [B, L, H·D]: the contract of visopt's own attention kernels.

#include <string>

#include "cudnn_graph.hpp"

namespace visopt::backend::cuda {

/// What one attention graph computes: `batch` images of `length` tokens, `heads` heads of `head_dim`.
struct SdpaSpec {
  DType dtype = DType::f16;
  std::int64_t batch = 0, length = 0, heads = 0, head_dim = 0;
  float scale = 1.0f;

  std::string describe() const {
    return visopt::detail::concat("sdpa B=", batch, " L=", length, " H=", heads, " D=", head_dim, " ", dtype_name(dtype));
  }
};

class SdpaGraph : public OperationGraph {
 public:
  enum class Form { single_operation, decomposed };
  enum Uid : std::int64_t { q_uid = 1, k_uid, v_uid, o_uid, scale_uid, first_virtual_uid = 100 };

  SdpaGraph(cudnnHandle_t handle, SdpaSpec spec, Form form)
      : OperationGraph(spec.describe() + (form == Form::single_operation ? " (sdpa operation)" : " (decomposed)")), spec_(spec) {
    const cudnnDataType_t io = cudnn_type(spec_.dtype);
    const std::int64_t b = spec_.batch, l = spec_.length, h = spec_.heads, d = spec_.head_dim;
    const std::int64_t row = 3 * h * d;  // one token's q|k|v
    const std::vector<std::int64_t> qkv_strides{l * row, d, row, 1};  // logical [B, H, L, D] views of the projection
    const BackendDescriptor& q = tensor(q_uid, io, Shape{b, h, l, d}, qkv_strides, false);
    const BackendDescriptor& v_view = tensor(v_uid, io, Shape{b, h, l, d}, qkv_strides, false);
    const BackendDescriptor& o = tensor(o_uid, io, Shape{b, h, l, d}, {l * h * d, d, h * d, 1}, false);
    const BackendDescriptor& scale = tensor(scale_uid, CUDNN_DATA_FLOAT, Shape{1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
    if (form == Form::single_operation) {
      const BackendDescriptor& k = tensor(k_uid, io, Shape{b, h, l, d}, qkv_strides, false);
      BackendDescriptor op(CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR);
      op.set_descriptor(CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, q)
          .set_descriptor(CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC, k)
          .set_descriptor(CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC, v_view)
          .set_descriptor(CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC, o)
          .set_descriptor(CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC, scale)  // no stats: inference
          .finalize("sdpa operation for " + what());
      add_operation(std::move(op));
      finalize(handle);
      return;
    }
    const BackendDescriptor& k_transposed = tensor(k_uid, io, Shape{b, h, d, l}, {l * row, d, 1, row}, false);
    std::int64_t next_virtual = first_virtual_uid;
    const Shape scores_shape{b, h, l, l}, row_shape{b, h, l, 1};
    const std::vector<std::int64_t> scores_strides{h * l * l, l * l, l, 1}, row_strides{h * l, l, 1, 1};
    auto scores = [&](cudnnDataType_t type) -> const BackendDescriptor& {
      return tensor(next_virtual++, type, scores_shape, scores_strides, true);
    };
    auto per_row = [&]() -> const BackendDescriptor& { return tensor(next_virtual++, CUDNN_DATA_FLOAT, row_shape, row_strides, true); };

    const BackendDescriptor& s = matmul(q, k_transposed, scores(CUDNN_DATA_FLOAT));
    const BackendDescriptor& scaled = pointwise(CUDNN_POINTWISE_MUL, s, &scale, scores(CUDNN_DATA_FLOAT));
    const BackendDescriptor& row_max = reduction(CUDNN_REDUCE_TENSOR_MAX, scaled, per_row());
    const BackendDescriptor& centred = pointwise(CUDNN_POINTWISE_SUB, scaled, &row_max, scores(CUDNN_DATA_FLOAT));
    const BackendDescriptor& exponent = pointwise(CUDNN_POINTWISE_EXP, centred, nullptr, scores(CUDNN_DATA_FLOAT));
    const BackendDescriptor& row_sum = reduction(CUDNN_REDUCE_TENSOR_ADD, exponent, per_row());
    // The log-sum-exp statistics nothing reads: the pattern cuDNN's fused engine matches has them.
    const BackendDescriptor& log_sum = pointwise(CUDNN_POINTWISE_LOG, row_sum, nullptr, per_row());
    pointwise(CUDNN_POINTWISE_ADD, row_max, &log_sum, per_row());
    const BackendDescriptor& p = pointwise(CUDNN_POINTWISE_DIV, exponent, &row_sum, scores(io));  // P in the io type, as the engine wants
    matmul(p, v_view, o);
    finalize(handle);
  }

  const SdpaSpec& spec() const { return spec_; }

  /// Runs `plan` (the chosen one, or a candidate being timed): qkv [B, L, 3·H·D] -> o [B, L, H·D].
  cudnnStatus_t execute(cudnnHandle_t handle, const Plan& plan, const void* qkv, void* o, void* workspace) const {
    const auto* base = static_cast<const unsigned char*>(qkv);
    const std::size_t part = static_cast<std::size_t>(spec_.heads * spec_.head_dim) * dtype_size(spec_.dtype);
    float scale = spec_.scale;  // by value: cuDNN reads it at execute (and a captured graph keeps it)
    const std::int64_t uids[5] = {q_uid, k_uid, v_uid, o_uid, scale_uid};
    void* const pointers[5] = {const_cast<unsigned char*>(base), const_cast<unsigned char*>(base + part),
                               const_cast<unsigned char*>(base + 2 * part), o, &scale};
    return OperationGraph::execute(handle, plan, uids, pointers, 5, workspace);
  }

 private:
  const BackendDescriptor& matmul(const BackendDescriptor& a, const BackendDescriptor& b, const BackendDescriptor& c) {
    BackendDescriptor& description = descriptor(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    description.set_data_type(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_DATA_FLOAT).finalize("matmul descriptor for " + what());
    BackendDescriptor op(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    op.set_descriptor(CUDNN_ATTR_OPERATION_MATMUL_ADESC, a)
        .set_descriptor(CUDNN_ATTR_OPERATION_MATMUL_BDESC, b)
        .set_descriptor(CUDNN_ATTR_OPERATION_MATMUL_CDESC, c)
        .set_descriptor(CUDNN_ATTR_OPERATION_MATMUL_DESC, description)
        .finalize("matmul operation for " + what());
    add_operation(std::move(op));
    return c;
  }

  const BackendDescriptor& reduction(cudnnReduceTensorOp_t mode, const BackendDescriptor& x, const BackendDescriptor& y) {
    BackendDescriptor& description = descriptor(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    description.set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, &mode, 1)
        .set_data_type(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_DATA_FLOAT)
        .finalize("reduction descriptor for " + what());
    BackendDescriptor op(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    op.set_descriptor(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x)
        .set_descriptor(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y)
        .set_descriptor(CUDNN_ATTR_OPERATION_REDUCTION_DESC, description)
        .finalize("reduction operation for " + what());
    add_operation(std::move(op));
    return y;
  }

  SdpaSpec spec_;
};

}  // namespace visopt::backend::cuda
