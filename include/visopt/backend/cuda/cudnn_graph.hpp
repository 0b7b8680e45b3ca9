#pragma once
// A thin RAII layer over cuDNN's backend (graph) API: descriptors, an operation graph with its
// heuristic engine configurations and chosen execution plan (OperationGraph), and the convolution
// graph built on it, whose bias add, residual add and activation run in the same kernel. The legacy
// cudnnConvolutionBiasActivationForward picks pre-Hopper SIMT kernels and NCHW round trips for fp16
// NHWC on an H100; the graph API's fused engines (runtime fusion included) do not. Attention's graph
// (scaled dot-product attention) is in sdpa_graph.hpp.

#include <cudnn.h>

#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "../../core/tensor.hpp"
#include "../../nn/op_specs.hpp"
#include "check.hpp"
#include "handles.hpp"

namespace visopt::backend::cuda {

/// One cudnnBackendDescriptor_t, owned uniquely, with typed setters that name the attribute on failure.
class BackendDescriptor {
 public:
  BackendDescriptor() = default;
  explicit BackendDescriptor(cudnnBackendDescriptorType_t type) {
    cudnnBackendDescriptor_t d = nullptr;
    VISOPT_CUDNN_CHECK(cudnnBackendCreateDescriptor(type, &d), "descriptor type " + std::to_string(static_cast<int>(type)));
    handle_ = Handle(d);
  }

  cudnnBackendDescriptor_t get() const { return handle_.get(); }

  template <class T>
  BackendDescriptor& set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, const T* values, std::int64_t count) {
    VISOPT_CUDNN_CHECK(cudnnBackendSetAttribute(get(), name, type, count, values), "attribute " + std::to_string(static_cast<int>(name)));
    return *this;
  }
  BackendDescriptor& set_int64s(cudnnBackendAttributeName_t name, const std::vector<std::int64_t>& values) {
    return set(name, CUDNN_TYPE_INT64, values.data(), static_cast<std::int64_t>(values.size()));
  }
  BackendDescriptor& set_int64(cudnnBackendAttributeName_t name, std::int64_t value) { return set(name, CUDNN_TYPE_INT64, &value, 1); }
  BackendDescriptor& set_data_type(cudnnBackendAttributeName_t name, cudnnDataType_t value) {
    return set(name, CUDNN_TYPE_DATA_TYPE, &value, 1);
  }
  BackendDescriptor& set_descriptor(cudnnBackendAttributeName_t name, const BackendDescriptor& value) {
    const cudnnBackendDescriptor_t d = value.get();
    return set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, &d, 1);
  }
  BackendDescriptor& set_handle(cudnnBackendAttributeName_t name, cudnnHandle_t handle) { return set(name, CUDNN_TYPE_HANDLE, &handle, 1); }

  BackendDescriptor& finalize(const std::string& what) {
    VISOPT_CUDNN_CHECK(cudnnBackendFinalize(get()), what);
    return *this;
  }
  /// Finalises, reporting "not supported here" as false rather than an error (engine configurations).
  bool try_finalize() { return cudnnBackendFinalize(get()) == CUDNN_STATUS_SUCCESS; }

 private:
  using Handle = Owned<cudnnBackendDescriptor_t, cudnnBackendDestroyDescriptor>;
  Handle handle_;
};

/// An operation graph under construction, then finalised with the engine configurations cuDNN's
/// heuristic proposes for it, and the execution plan chosen among them. Tensors are bound by unique id
/// at execute(). Subclasses add tensors and operations in their constructor, then call finalize().
class OperationGraph {
 public:
  /// Engine configurations cuDNN's heuristic proposes, best guess first.
  int candidates() const { return static_cast<int>(configurations_.size()); }

  /// An execution plan for one engine configuration, with the workspace it needs.
  struct Plan {
    BackendDescriptor descriptor;
    std::size_t workspace = 0;
    int rank = -1;
  };

  /// The plan for candidate `rank`, or nothing when that engine cannot run this graph here or needs
  /// more than `workspace_limit` bytes. cuDNN finalises each configuration into one plan only, so the
  /// plans of a measured search are kept rather than rebuilt.
  std::optional<Plan> build(cudnnHandle_t handle, int rank, std::size_t workspace_limit) const {
    if (rank < 0 || rank >= candidates()) return std::nullopt;
    Plan plan{BackendDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR), 0, rank};
    plan.descriptor.set_handle(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, handle)
        .set_descriptor(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, configurations_[static_cast<std::size_t>(rank)]);
    if (!plan.descriptor.try_finalize()) return std::nullopt;
    std::int64_t workspace = 0, returned = 0;
    VISOPT_CUDNN_CHECK(cudnnBackendGetAttribute(plan.descriptor.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64,
                                                1, &returned, &workspace),
                       what_);
    if (workspace < 0 || static_cast<std::size_t>(workspace) > workspace_limit) return std::nullopt;
    plan.workspace = static_cast<std::size_t>(workspace);
    return plan;
  }

  /// A plan with what it took to run once (0 when it was not timed).
  struct TimedPlan {
    Plan plan;
    float ms = 0;
  };

  /// The engine to run, as tuning chooses it: the first candidate that builds when `most` is 1
  /// (heuristic), else the fastest by `time(plan)` of the first `most` that build (measured; `time`
  /// returns -1 for a plan that fails to run). Nothing when no candidate builds and runs.
  template <class Time>
  std::optional<TimedPlan> fastest_plan(cudnnHandle_t handle, std::size_t workspace_limit, int most, Time&& time) const {
    std::optional<TimedPlan> best;
    int tried = 0;
    for (int rank = 0; rank < candidates() && tried < most; ++rank) {
      auto plan = build(handle, rank, workspace_limit);
      if (!plan) continue;
      ++tried;
      const float ms = most > 1 ? time(*plan) : 0.0f;
      if (ms >= 0 && (!best || ms < best->ms)) best = TimedPlan{std::move(*plan), ms};
    }
    return best;
  }

  /// Makes `plan` the one execute() runs.
  void use(Plan plan) { plan_ = std::move(plan); }
  const Plan& chosen() const { return plan_; }
  std::size_t workspace() const { return plan_.workspace; }
  /// What the graph computes, for messages.
  const std::string& what() const { return what_; }

 protected:
  explicit OperationGraph(std::string what) : what_(std::move(what)) {}

  /// A tensor of the graph; `by_value`: a scalar passed by host pointer in the variant pack.
  const BackendDescriptor& tensor(std::int64_t uid, cudnnDataType_t type, const Shape& shape, const std::vector<std::int64_t>& strides,
                                  bool is_virtual, bool by_value = false) {
    BackendDescriptor t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const std::vector<std::int64_t> dims(shape.begin(), shape.end());
    const bool virtual_flag = is_virtual, value_flag = by_value;
    t.set_data_type(CUDNN_ATTR_TENSOR_DATA_TYPE, type)
        .set_int64s(CUDNN_ATTR_TENSOR_DIMENSIONS, dims)
        .set_int64s(CUDNN_ATTR_TENSOR_STRIDES, strides)
        .set_int64(CUDNN_ATTR_TENSOR_UNIQUE_ID, uid)
        .set_int64(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, 16)
        .set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, &virtual_flag, 1);
    if (by_value) t.set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, &value_flag, 1);
    t.finalize(visopt::detail::concat("tensor descriptor uid ", uid, " shape ", shape, " of ", what_));
    tensors_.push_back(std::move(t));
    return tensors_.back();
  }

  /// out = mode(in[, other]) in fp32 math.
  const BackendDescriptor& pointwise(cudnnPointwiseMode_t mode, const BackendDescriptor& in, const BackendDescriptor* other,
                                     const BackendDescriptor& out) {
    BackendDescriptor& description = descriptor(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    description.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &mode, 1)
        .set_data_type(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_DATA_FLOAT)
        .finalize("pointwise descriptor for " + what_);
    BackendDescriptor op(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    op.set_descriptor(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, description).set_descriptor(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, in);
    if (other) op.set_descriptor(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *other);
    op.set_descriptor(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, out).finalize("pointwise operation for " + what_);
    operations_.push_back(std::move(op));
    return out;
  }

  /// An operation of the graph (finalised by the caller).
  void add_operation(BackendDescriptor op) { operations_.push_back(std::move(op)); }
  /// A descriptor operations refer to (convolution, matmul, reduction, pointwise), kept alive with the graph.
  BackendDescriptor& descriptor(cudnnBackendDescriptorType_t type) {
    descriptors_.emplace_back(type);
    return descriptors_.back();
  }

  /// Finalises the operation graph and asks the heuristic (mode A, then the fallback list) for engines.
  void finalize(cudnnHandle_t handle) {
    graph_ = BackendDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    std::vector<cudnnBackendDescriptor_t> ops;
    for (const auto& op : operations_) ops.push_back(op.get());
    graph_.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, ops.data(), static_cast<std::int64_t>(ops.size()))
        .set_handle(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, handle)
        .finalize("operation graph for " + what_);
    configurations_ = heuristic_configurations(CUDNN_HEUR_MODE_A);
    if (configurations_.empty()) configurations_ = heuristic_configurations(CUDNN_HEUR_MODE_FALLBACK);
  }

  /// Runs `plan` with the tensors of `uids` at `pointers`.
  cudnnStatus_t execute(cudnnHandle_t handle, const Plan& plan, const std::int64_t* uids, void* const* pointers, int count,
                        void* workspace) const {
    BackendDescriptor pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, uids, count)
        .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, pointers, count)
        .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, &workspace, 1)
        .finalize("variant pack for " + what_);
    return cudnnBackendExecute(handle, plan.descriptor.get(), pack.get());
  }

 private:
  std::vector<BackendDescriptor> heuristic_configurations(cudnnBackendHeurMode_t mode) {
    BackendDescriptor heuristics(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    heuristics.set_descriptor(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph_).set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, &mode, 1);
    if (!heuristics.try_finalize()) return {};
    std::int64_t count = 0;
    VISOPT_CUDNN_CHECK(cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                                &count, nullptr),
                       what_);
    std::vector<BackendDescriptor> configurations;
    std::vector<cudnnBackendDescriptor_t> raw;
    for (std::int64_t i = 0; i < count; ++i) {
      configurations.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
      raw.push_back(configurations.back().get());
    }
    std::int64_t returned = 0;
    if (count > 0) {
      VISOPT_CUDNN_CHECK(cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                                  count, &returned, raw.data()),
                         what_);
    }
    configurations.resize(static_cast<std::size_t>(returned));
    return configurations;
  }

  std::string what_;
  std::deque<BackendDescriptor> tensors_, descriptors_;  // deques: operations hold references into them
  std::vector<BackendDescriptor> operations_;
  BackendDescriptor graph_;
  std::vector<BackendDescriptor> configurations_;
  Plan plan_;
};

/// What a fused convolution computes: y = act(conv(x, w) + bias + residual), each term optional.
struct FusedConvolutionSpec {
  DType dtype = DType::f32;                // x, w, bias, residual and y
  Shape x, w, y;                           // logical NCHW / KCRS / NKPQ
  Strides x_strides, w_strides, y_strides; // NHWC or NCHW storage, through strides
  nn::Conv2dGeometry geometry;
  bool bias = false, residual = false;
  nn::Activation activation = nn::Activation::none;

  std::string describe() const {
    return visopt::detail::concat("fused conv x=", x, " w=", w, " stride=", geometry.stride_h, " pad=", geometry.pad_h,
                                  " groups=", geometry.groups, " ", dtype_name(dtype), x_strides[1] == 1 ? " nhwc" : " nchw",
                                  bias ? " +bias" : "", residual ? " +residual" : "",
                                  activation == nn::Activation::relu ? " relu" : "");
  }
};

/// The operation graph of one FusedConvolutionSpec: conv -> (+bias) -> (+residual) -> (act).
class FusedConvolutionGraph : public OperationGraph {
 public:
  enum Uid : std::int64_t { x_uid = 1, w_uid, bias_uid, residual_uid, y_uid, first_virtual_uid = 100 };

  FusedConvolutionGraph(cudnnHandle_t handle, FusedConvolutionSpec spec) : OperationGraph(spec.describe()), spec_(std::move(spec)) {
    require(spec_.geometry.groups == 1, "cudnn graph: grouped convolutions are not built as fused graphs (", spec_.describe(), ")");
    const cudnnDataType_t io = cudnn_type(spec_.dtype);
    const BackendDescriptor& x = tensor(x_uid, io, spec_.x, strides_of(spec_.x, spec_.x_strides), false);
    const BackendDescriptor& w = tensor(w_uid, io, spec_.w, strides_of(spec_.w, spec_.w_strides), false);

    const auto& g = spec_.geometry;
    BackendDescriptor& convolution = descriptor(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
    const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    convolution.set_data_type(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_DATA_FLOAT)
        .set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, &mode, 1)
        .set_int64(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, 2)
        .set_int64s(CUDNN_ATTR_CONVOLUTION_DILATIONS, {g.dilation_h, g.dilation_w})
        .set_int64s(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, {g.stride_h, g.stride_w})
        .set_int64s(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, {g.pad_h, g.pad_w})
        .set_int64s(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, {g.pad_h, g.pad_w})
        .finalize("convolution descriptor for " + spec_.describe());

    // Every intermediate is a virtual fp32 tensor; the last operation writes y.
    const int stages = (spec_.bias ? 1 : 0) + (spec_.residual ? 1 : 0) + (spec_.activation != nn::Activation::none ? 1 : 0);
    const std::vector<std::int64_t> y_strides = strides_of(spec_.y, spec_.y_strides);
    std::int64_t next_virtual = first_virtual_uid;
    auto output_of = [&](int stage) -> const BackendDescriptor& {
      if (stage == stages) return tensor(y_uid, io, spec_.y, y_strides, false);
      return tensor(next_virtual++, CUDNN_DATA_FLOAT, spec_.y, y_strides, true);
    };

    int stage = 0;
    const BackendDescriptor* current = &output_of(stage);
    BackendDescriptor conv_op(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
    const float alpha = 1.0f, beta = 0.0f;
    conv_op.set_descriptor(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, x)
        .set_descriptor(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, w)
        .set_descriptor(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, *current)
        .set_descriptor(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, convolution)
        .set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, &alpha, 1)
        .set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, &beta, 1)
        .finalize("convolution operation for " + spec_.describe());
    add_operation(std::move(conv_op));

    if (spec_.bias) {
      const auto c = spec_.y[1];
      const BackendDescriptor& bias = tensor(bias_uid, io, Shape{1, c, 1, 1}, {c, 1, c, c}, false);
      current = &pointwise(CUDNN_POINTWISE_ADD, *current, &bias, output_of(++stage));
    }
    if (spec_.residual) {
      const BackendDescriptor& residual = tensor(residual_uid, io, spec_.y, y_strides, false);
      current = &pointwise(CUDNN_POINTWISE_ADD, *current, &residual, output_of(++stage));
    }
    if (spec_.activation == nn::Activation::relu) {
      current = &pointwise(CUDNN_POINTWISE_RELU_FWD, *current, nullptr, output_of(++stage));
    } else if (spec_.activation == nn::Activation::gelu) {
      current = &pointwise(CUDNN_POINTWISE_GELU_FWD, *current, nullptr, output_of(++stage));
    }
    finalize(handle);
  }

  const FusedConvolutionSpec& spec() const { return spec_; }

  /// Runs the chosen plan on the handle's stream; `bias` and `residual` are ignored when the spec has none.
  cudnnStatus_t execute(cudnnHandle_t handle, const void* x, const void* w, const void* bias, const void* residual, void* y,
                        void* workspace) const {
    return execute(handle, chosen(), x, w, bias, residual, y, workspace);
  }

  /// Runs `plan` (the chosen one, or a candidate being timed).
  cudnnStatus_t execute(cudnnHandle_t handle, const Plan& plan, const void* x, const void* w, const void* bias,
                        const void* residual, void* y, void* workspace) const {
    std::int64_t uids[5] = {x_uid, w_uid, y_uid, 0, 0};
    void* pointers[5] = {const_cast<void*>(x), const_cast<void*>(w), y, nullptr, nullptr};
    int count = 3;
    if (spec_.bias) uids[count] = bias_uid, pointers[count++] = const_cast<void*>(bias);
    if (spec_.residual) uids[count] = residual_uid, pointers[count++] = const_cast<void*>(residual);
    return OperationGraph::execute(handle, plan, uids, pointers, count, workspace);
  }

 private:
  static std::vector<std::int64_t> strides_of(const Shape& shape, const Strides& strides) {
    return {strides.begin(), strides.begin() + static_cast<std::ptrdiff_t>(shape.rank())};
  }

  FusedConvolutionSpec spec_;
};

}  // namespace visopt::backend::cuda
