#pragma once
// The oneDNN CPU backend's executor: the reference executor's contract (the same types and member
// functions) on oneDNN primitives. The level decides fusion (post-ops), precision (bf16 where the CPU
// has it), layout (NHWC kept end to end) and memory (a pool, or at O3 one arena planned by liveness).
//
// Calibrated int8 (O4): every convolution whose input carries a calibrated step (all but the first,
// which reads the images) and every linear on tokens (not the classifier, which reads pooled
// features) runs on s8 weights and s8/u8 activations. Convolutions write s8/u8 in their output's
// calibrated step, so ResNet stays in int8 from its first block to the pooling; a ViT's int8 linears
// read LayerNorm and attention outputs (bf16, quantized by one reorder each) and write the residual
// stream in bf16, or s8 for the MLP's hidden layer. The calibrated step of each tensor travels with it
// (Tensor::quantization).
//
// Threads: OpenMP's default (OMP_NUM_THREADS, else every core), overridden by the environment
// variable VISOPT_NUM_THREADS, overridden in turn by CompileOptions::num_threads; report().settings
// says which applied.

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../../nn/epilogue.hpp"
#include "../../nn/params.hpp"
#include "../../policy/policy.hpp"
#include "../../services/batch_plan.hpp"
#include "../../services/calibration.hpp"
#include "../../services/memory_plan.hpp"
#include "../../services/memory_pool.hpp"
#include "../../services/options.hpp"
#include "../../services/report.hpp"
#include "../backends.hpp"
#include "attention.hpp"
#include "conv.hpp"
#include "cpu_features.hpp"
#include "host_loops.hpp"
#include "int8.hpp"
#include "linear.hpp"
#include "normalization.hpp"
#include "primitive.hpp"
#include "simple_ops.hpp"

namespace visopt::backend::onednn {

namespace detail {
inline std::string mebibytes(std::size_t bytes) {
  return visopt::detail::concat(static_cast<double>(bytes * 10 / (1024 * 1024)) / 10.0, " MiB");
}

/// "56 primitives made, by implementation: 36 brgconv_1x1:avx512_core_bf16, ..." for report().
inline std::string implementation_summary(const Context::Census& census) {
  std::vector<std::pair<int, std::string>> by_count;
  for (const auto& [name, count] : census.implementations) by_count.emplace_back(count, name);
  std::sort(by_count.begin(), by_count.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::string s = visopt::detail::concat(census.primitives, " primitives made (each once, then reused by run()), by "
                                         "oneDNN implementation:");
  for (std::size_t i = 0; i < by_count.size(); ++i) {
    s += visopt::detail::concat(i ? ", " : " ", by_count[i].first, " ", by_count[i].second);
  }
  return s;
}
}  // namespace detail

template <PolicyBundle P>
class Executor {
  static constexpr Lowering lowered = OneDnn::lower<P>();  // the backend's traits decide; the executor follows
  static constexpr bool static_plan = lowered.static_plan;
  static constexpr bool channels_last = lowered.channels_last;
  // layout::nchw past the op-by-op baseline (fusion=none stays plain NCHW): channels-first in
  // oneDNN's nChw16c blocks, as PyTorch's mkldnn tensors are. oneDNN 2.6 runs plain-NCHW fp32
  // convolutions as im2col + GEMM, several times slower; its blocked and NHWC kernels are direct.
  static constexpr bool blocked = !channels_last && !std::is_same_v<typename P::fusion, fusion::none>;
  static constexpr bool fused = P::fusion::fuses_epilogue;
  using Memory = std::conditional_t<static_plan, runtime::PlannedArena, runtime::ActivationPool>;

 public:
  // Handles to operations the executor owns (so blocks can hold them by value and forward() can be const).
  // Under int8, each handle carries the calibrated type and step of what its operation writes.
  struct Conv {
    ConvOp* op = nullptr;
    Quantization output{};
    bool high = false;  // kept in the high-precision type (CompileOptions::high_precision_layers)
  };
  struct BatchNorm {
    BatchNormOp* op = nullptr;
  };
  struct Linear {
    LinearOp* op = nullptr;
    Quantization output{}, attention{};  // attention: of the attention whose q, k and v it projects
    bool high = false;                   // kept in the high-precision type (CompileOptions::high_precision_layers)
  };
  struct LayerNorm {
    LayerNormOp* op = nullptr;
    Quantization output{};
  };
  struct PatchEmbed {
    LinearOp* projection = nullptr;  // [D, C*p*p], columns in the order patchify writes
    Tensor prefix_tokens, position;  // [T, D] class (and distillation) token, [L, D]
    int patch = 16;
  };

  Executor(const runtime::CompileOptions& options, runtime::Report& report)
      : context_(options.num_threads), memory_(Device::cpu()) {
    const CpuFeatures& cpu = cpu_features();
    using precision_t = typename P::precision;
    if constexpr (std::is_same_v<precision_t, precision::fp16>) {
      require(!options.strict.value_or(false), "visopt: precision::fp16 on backend::OneDnn: oneDNN 2.6 has no fp16 CPU kernels; use "
                               "precision::bf16 or precision::half, or leave CompileOptions::strict off to run in fp32");
      report.skipped("fp16", "oneDNN 2.6 has no fp16 CPU kernels; computing in fp32 (precision::half or bf16 use bf16)");
    } else if constexpr (lowered.dtype == DType::bf16) {
      if (cpu.bf16) {
        dtype_ = DType::bf16;
        report.applied("bf16", "bf16 activations and weights on " + cpu.isa_name +
                                   ", fp32 accumulation; LayerNorm statistics, softmax, pooled features and logits in fp32");
      } else {
        require(!options.strict.value_or(false), "visopt: bf16 asked of backend::OneDnn with CompileOptions::strict, but ",
                cpu.bf16_missing_reason);
        report.skipped("bf16", cpu.bf16_missing_reason + "; computing in fp32");
      }
    } else if constexpr (std::is_same_v<precision_t, precision::tf32>) {
      report.skipped("tf32", "CPUs have no TF32: computed in full fp32");
    }
    if constexpr (channels_last) {
      report.applied("channels_last", "NHWC activations end to end; reorders only at the input (f32 NCHW images) and "
                                      "the output (f32 logits)");
    } else if constexpr (blocked) {
      report.skipped("channels_last", "layout=nchw: channels-first activations, kept end to end in oneDNN's nChw16c "
                                      "blocks (plain NCHW convolutions are im2col + GEMM in oneDNN 2.6, several times "
                                      "slower)");
    } else {
      report.skipped("channels_last", "layout=nchw with fusion=none: plain NCHW activations, one op at a time");
    }
    if constexpr (std::is_same_v<typename P::tuning, tuning::measured>) {
      if (dtype_ == DType::f32) {
        report.applied("measured_tuning", "each fp32 3x3 stride-1 convolution is timed as oneDNN's Winograd and direct "
                                          "convolution in its planning forward and runs as the faster (the primitives "
                                          "line counts the wino ones)");
      } else {
        report.skipped("measured_tuning", "oneDNN dispatches one implementation per shape and ISA (brgemm/jit) and has "
                                          "no Winograd kernels in bf16: there are no candidates to time");
      }
    }
    if constexpr (lowered.int8) {
      require(options.calibration.has_value(), "visopt: ", P::name, " (calibrated int8) on backend::OneDnn needs "
              "CompileOptions::calibration: measure one with visopt::calibrate(model, images), or Calibration::load a "
              "saved one");
      calibration_ = *options.calibration;
      high_precision_layers_ = options.high_precision_layers;
    }
    report.device = "cpu: " + cpu.isa_name + " (" + std::to_string(context_.threads()) + " threads)";
    report.compute_precision = dtype_ == DType::bf16 ? "bf16 (fp32 accumulation)" : "fp32";
    if constexpr (lowered.int8) report.compute_precision = "int8 (int32 accumulation); " + report.compute_precision + " elsewhere";
  }

  // ---- saved plans: oneDNN dispatches one implementation per shape and ISA, so a plan holds no algorithms ----
  static std::string identity() {
    const dnnl_version_t* v = dnnl_version();
    return visopt::detail::concat("cpu oneDNN ", v->major, ".", v->minor, ".", v->patch, " ", cpu_features().isa_name);
  }
  void use_saved_algorithms(const nlohmann::json& /*entries*/, runtime::Report& /*report*/) {}
  static nlohmann::json saved_algorithms() { return nlohmann::json::object(); }

  // ---- compile(): prepare parameters (weights are packed at the first forward of each layout) ----
  // Each op keeps the fp32 tensors it is given (packing for a layout starts from them).
  Conv prepare_conv(const nn::Conv2dParams& p, nn::ConvEpilogue epilogue) {
    convs_fused_ += count_epilogue(epilogue.residual, epilogue.activation);
    held_.add(p.weight, p.bias);
    const std::size_t index = convs_owned_.size();
    const Quantization output = calibrated("conv", index, p.weight);
    // A convolution whose output goes negative (no ReLU: ResNet's downsampling shortcuts) stays in the
    // high-precision type: as s8 it would carry a bit less into the residual stream, and these four decide
    // whether ResNet-50 meets the int8 bound (docs/performance.md).
    const bool asked = kept_high(runtime::Calibration::tensor_name("conv", index));
    const bool high = asked || (output.defined() && output.dtype == DType::s8);
    conv_kept_why_.push_back(asked ? " (asked)" : high ? " (signed output: a shortcut)" : index == 0 ? " (reads the images)" : "");
    return {own(std::make_unique<ConvOp>(p, epilogue, std::is_same_v<typename P::tuning, tuning::measured>)), output, high};
  }
  BatchNorm prepare_batch_norm(const nn::BatchNormParams& p) {
    held_.add(p.weight, p.bias, p.running_mean, p.running_var);
    return {own(std::make_unique<BatchNormOp>(p))};
  }
  Linear prepare_linear(const nn::LinearParams& p, nn::LinearEpilogue epilogue) {
    linears_fused_ += count_epilogue(epilogue.residual, epilogue.activation);
    held_.add(p.weight, p.bias);
    const std::size_t index = linears_prepared();  // numbered as calibrate() numbers them: prepare_linear's calls
    linear_names_.push_back(runtime::Calibration::tensor_name("linear", index));
    // Only the linears that write to int8 layers have a range (the MLP's hidden layer); attention
    // only for the qkv projections.
    const Quantization output = calibrated("linear", index, p.weight, true);
    const Quantization attention = calibrated("attention", index, Tensor(), true);
    const bool high = kept_high(linear_names_.back());
    return {own(std::make_unique<LinearOp>(p, epilogue)), output, attention, high};
  }
  LayerNorm prepare_layer_norm(const nn::LayerNormParams& p) {
    held_.add(p.weight, p.bias);
    const Quantization output = calibrated("layer_norm", layer_norms_owned_.size(), p.weight);
    return {own(std::make_unique<LayerNormOp>(p)), output};
  }
  PatchEmbed prepare_patch_embed(const nn::PatchEmbedParams& p) {
    held_.add(p.prefix_tokens, p.position);  // the projection's weight (permuted for NHWC) and bias: below
    const std::int64_t d = p.weight.dim(0), c = p.weight.dim(1), k = p.weight.dim(2) * p.weight.dim(3);
    Tensor weight = p.weight.reshaped({d, c * k});
    if constexpr (channels_last) {
      // NHWC images give patch rows ordered (py, px, c): permute the weight's columns to match, once.
      Tensor permuted = Tensor::empty({d, c * k});
      const float* from = p.weight.data_as<float>();
      float* to = permuted.data_as<float>();
      for (std::int64_t o = 0; o < d; ++o) {
        for (std::int64_t ch = 0; ch < c; ++ch) {
          for (std::int64_t q = 0; q < k; ++q) to[(o * k + q) * c + ch] = from[(o * c + ch) * k + q];
        }
      }
      weight = permuted;
    }
    held_.add(weight, p.bias);
    linear_names_.push_back("");  // not a prepare_linear: the patch embedding, kept in high precision
    return {own(std::make_unique<LinearOp>(nn::LinearParams{weight, p.bias}, nn::LinearEpilogue{})), p.prefix_tokens,
            p.position, p.patch};
  }

  // ---- run(): operations; each returns an activation from the pool (or the planned arena) ----

  /// Places host images [N,3,H,W] (f32 NCHW) in the activation layout and type (a copy, or one
  /// reorder), runs `forward` on them and returns its logits as a new host f32 tensor, the one
  /// allocation of a planned run(). At O3 this brackets one pass of the arena. An input shape seen for
  /// the first time is planned by this forward (plan()).
  template <class Forward>
  Tensor run(const TensorView& images, Forward&& forward) {
    if (!images.device().is_cpu()) {  // not require(): its message arguments would be built on every run
      fail("onednn: images are on " + images.device().to_string() + "; the oneDNN backend takes host tensors");
    }
    return forward_over_plan(images, forward);
  }

  /// The lifecycle's plan stage for the shape of `images` (compile() calls it for max_batch and each
  /// warmup_batches size): one forward makes every oneDNN primitive, packs the weights for the layouts
  /// they chose, and (at O3) records the activation arena's liveness plan. Nothing for a planned shape.
  template <class Forward>
  void plan(const TensorView& images, Forward&& forward) {
    if (plans_.find(images.shape()) == nullptr) (void)forward_over_plan(images, forward);
  }

  /// y = act(conv(x) + bias + residual). The residual is consumed: its buffer becomes the output
  /// (the sum post-op reads it there), so a shortcut costs no copy and no extra memory.
  Tensor conv2d(const Conv& c, const Tensor& x, const Tensor* residual = nullptr) {
    ConvOp& op = *c.op;
    require((residual != nullptr) == op.epilogue().residual, "onednn::conv2d: residual ", residual ? "given" : "missing",
            " for a conv prepared ", op.epilogue().residual ? "with" : "without", " one");
    const Shape out = op.output_shape(x.shape());
    if constexpr (lowered.int8) {
      if (x.quantization().defined() && !c.high) return conv2d_int8(c, quantized(x), residual, out);
      if (c.high && (is_quantized(x.dtype()) || (residual && is_quantized(residual->dtype())))) {
        // Kept in high precision between int8 layers: its int8 input and shortcut are dequantized first.
        const Tensor shortcut = residual ? dequantized(*residual) : Tensor();
        return conv2d(c, dequantized(x), residual ? &shortcut : nullptr);
      }
    }
    Tensor y = residual ? destination_from(*residual, out, x, "onednn::conv2d") : allocate(out, x.dtype());
    op.run(context_, plans_, x, y, describer());
    return y.with_quantization(c.output);  // int8 consumers quantize it in this step (the first convolution's output)
  }

  Tensor batch_norm(const BatchNorm& b, const Tensor& x) {
    Tensor y = allocate_like(x);
    b.op->run(context_, plans_, x, y, describer());
    return y;
  }

  Tensor activation(const Tensor& x, nn::Activation act) {
    require(act != nn::Activation::none, "onednn::activation: no activation to apply");
    Tensor y = allocate_like(x);
    plans_
        .step<Step>(&owners_.activation[static_cast<std::size_t>(act)], Layouts<2>{Layout(x.view()), Layout(y.view())},
                    [&] { return make_activation(context_, x, y, describe_activation(x), act); })
        .run(context_, {x.data(), y.data()});
    return y;
  }

  Tensor add(const Tensor& a, const Tensor& b) {
    Tensor y = allocate_like(a);
    plans_
        .step<Step>(&owners_.add, Layouts<3>{Layout(a.view()), Layout(b.view()), Layout(y.view())},
                    [&] { return make_add(context_, a, describe_activation(a), b, describe_activation(b), y, describe_activation(y)); })
        .run(context_, {a.data(), b.data(), y.data()});
    return y;
  }

  /// The maximum keeps the input's step, quantized or not.
  Tensor max_pool2d(const Tensor& x, int kernel, int stride, int padding) {
    Tensor y = allocate(nn::pool2d_output_shape(x.shape(), kernel, stride, padding, "onednn::max_pool2d"), x.dtype(),
                        x.view().format())
                   .with_quantization(x.quantization());
    plans_
        .step<Step>(&owners_.pool, PoolKey{Layout(x.view()), Layout(y.view()), kernel, stride, padding},
                    [&] {
                      return make_pooling(context_, x, describe_activation(x), y, describe_activation(y), kernel, stride,
                                          padding, false);
                    })
        .run(context_, {x.data(), y.data()});
    return y;
  }

  /// [N,C,H,W] -> [N,C] in fp32 (pooled features feed the classifier, which stays fp32).
  Tensor global_avg_pool(const Tensor& x) {
    Tensor y = allocate({x.dim(0), x.dim(1)}, DType::f32);
    loops::global_average(x, y, is_blocked(x) ? block : 0);  // s8/u8 input: dequantized by its step
    return y;
  }

  /// x [..., K] -> [..., N]: act(x·wᵀ + b) + residual; the residual is consumed like conv2d's.
  Tensor linear(const Linear& l, const Tensor& x, const Tensor* residual = nullptr) {
    LinearOp& op = *l.op;
    require((residual != nullptr) == op.epilogue().residual, "onednn::linear: residual ", residual ? "given" : "missing",
            " for a linear prepared ", op.epilogue().residual ? "with" : "without", " one");
    const std::int64_t k = x.dim(x.rank() - 1);
    require(k == op.in_features() && x.view().is_contiguous(), "onednn::linear: input has shape ", x.shape(),
            ", expected dense [..., ", op.in_features(), "]");
    Shape out = x.shape();
    out[out.rank() - 1] = op.out_features();
    const std::int64_t m = x.numel() / k;
    if constexpr (lowered.int8) {
      if (l.high && is_quantized(x.dtype())) return linear(l, dequantized(x), residual);  // kept high: fc2 after fc1
      // Token-wise linears only: the classifier reads pooled features [N, D] and stays in high precision.
      if (x.rank() == 3 && x.quantization().defined() && !l.high) {
        const Tensor q = quantized(x);
        // Into the residual stream (high precision), or, without a residual (the MLP's hidden layer),
        // quantized for the int8 linear that reads it.
        require(residual != nullptr || l.output.defined(), "onednn::linear: int8 output without a calibrated range (the "
                "calibration has none for this linear)");
        Tensor y = residual ? destination_from(*residual, out, x, "onednn::linear", dtype_)
                            : allocate(out, l.output.dtype).as_quantized(l.output);
        op.run(context_, plans_, q.view().reshaped({m, k}), y.view().reshaped({m, op.out_features()}));
        return y;
      }
    }
    Tensor y = residual ? destination_from(*residual, out, x, "onednn::linear") : allocate(out, x.dtype());
    op.run(context_, plans_, x.view().reshaped({m, k}), y.view().reshaped({m, op.out_features()}));
    return y.with_quantization(l.output);  // where an int8 linear reads it (fc2 after an fc1 kept high)
  }

  Tensor layer_norm(const LayerNorm& n, const Tensor& x) {
    Tensor y = allocate(x.shape(), x.dtype());
    const std::int64_t d = x.dim(x.rank() - 1);
    n.op->run(context_, plans_, x.view().reshaped({x.numel() / d, d}), y.view().reshaped({x.numel() / d, d}));
    return y.with_quantization(n.output);  // for the int8 linear that reads it (int8 levels)
  }

  /// Nothing to prepare: the attention primitives are made while each input shape is planned.
  void prepare_attention(int /*heads*/) {}
  /// x [B, L, K] -> attention(q, k, v) [B, L, D] where [q k v] = x·qkvᵀ + b: the projection writes
  /// q, k and v as separate dense planes that the attention matmuls read per head through strides,
  /// so the packed [B, L, 3D] qkv is never made.
  Tensor self_attention(const Linear& qkv, const Tensor& x, int heads) {
    LinearOp& op = *qkv.op;
    const std::int64_t b = x.dim(0), l = x.dim(1), k = op.in_features(), d = op.out_features() / 3;
    require(x.rank() == 3 && x.dim(2) == k && x.view().is_contiguous() && op.out_features() == 3 * d && heads >= 1 &&
                d % heads == 0,
            "onednn::self_attention: input has shape ", x.shape(), ", expected dense [B,L,", k,
            "] and a qkv projection to 3D with D divisible by ", heads, " heads");
    // Planes and scores are not images: dense whatever the level's image layout.
    Tensor planes = allocate({3, b, l, d}, x.dtype(), MemoryFormat::contiguous);
    const Tensor source = lowered.int8 && x.quantization().defined() && !qkv.high ? quantized(x) : x;
    op.run_planes(context_, plans_, source.view().reshaped({b * l, k}), planes.view().reshaped({3, b * l, d}));
    Tensor scores = allocate({b, heads, l, l}, DType::f32, MemoryFormat::contiguous);
    Tensor probs = x.dtype() == DType::f32 ? scores : allocate({b, heads, l, l}, x.dtype(), MemoryFormat::contiguous);
    Tensor y = allocate({b, l, d}, x.dtype());
    attention_.run(context_, plans_, planes, scores, probs, y);
    return y.with_quantization(qkv.attention);  // for the int8 projection that reads it (int8 levels)
  }

  /// images [N,C,H,W] -> tokens [N, 1 + (H/p)(W/p), D]: class token first, position embedding added.
  Tensor patch_embed(const PatchEmbed& e, const Tensor& x) {
    const std::int64_t n = x.dim(0), grid = (x.dim(2) / e.patch) * (x.dim(3) / e.patch);
    const std::int64_t d = e.projection->out_features();
    require(x.dim(2) % e.patch == 0 && x.dim(3) % e.patch == 0 && e.projection->in_features() == x.dim(1) * e.patch * e.patch,
            "onednn::patch_embed: images ", x.shape(), " do not split into ", e.patch, "x", e.patch, " patches of ",
            e.projection->in_features(), " values");
    Tensor patches = allocate({n * grid, e.projection->in_features()}, x.dtype());
    loops::patchify(x, e.patch, patches);
    Tensor projected = allocate({n * grid, d}, x.dtype());
    e.projection->run(context_, plans_, patches, projected);
    Tensor tokens = allocate({n, grid + e.prefix_tokens.dim(0), d}, x.dtype());
    loops::assemble_tokens(projected, e.prefix_tokens, e.position, tokens);
    return tokens;
  }

  /// x [B, L, D] -> [B, D] in fp32, the token at `index`.
  Tensor select_token(const Tensor& x, std::int64_t index) {
    Tensor y = allocate({x.dim(0), x.dim(2)}, DType::f32);
    loops::select_token(x, index, y);
    return y;
  }

  /// Activation memory reserved so far (the arena block at O3).
  /// Host memory for a caller to stage input batches in (Engine::input_buffer): plain memory on the CPU.
  static Tensor host_buffer(const Shape& shape) { return Tensor::empty(shape); }
  std::size_t activation_bytes() const { return memory_.bytes_reserved(); }
  /// Bytes of parameters the engine holds: the fp32 tensors it was given and their packed copies.
  std::size_t weight_bytes() const { return held_.bytes + context_.census().packed_bytes; }
  /// Fresh activation allocations so far: constant once every batch size has been seen.
  std::size_t fresh_allocations() const { return memory_.fresh_allocations(); }
  /// The primitives made and weights packed so far (constant once every batch size has been seen).
  const Context::Census& census() const { return context_.census(); }
  /// Bytes of the one scratchpad all primitives share.
  std::size_t workspace_bytes() const { return context_.scratchpad_bytes(); }
  DType compute_type() const { return dtype_; }

  /// Called by Engine once the network is built, before planning: refuses a high_precision_layers name
  /// that is no convolution or linear of it.
  void check_prepared(const runtime::Report& report) const {
    if constexpr (lowered.int8) runtime::require_known_layers(high_precision_layers_, convs_owned_.size(), linears_prepared(), report.model);
  }

  /// Called by Engine after the plans are made: what was fused, packed and planned.
  void complete_report(runtime::Report& report) const {
    report.plans = plans_.describe();
    if constexpr (fused) {
      report.applied("post_op_fusion",
                     visopt::detail::concat(residual_sums_, " residual adds (sum post-op, into the shortcut's own "
                                            "buffer) and ", activations_fused_, " activations (eltwise post-op) inside ",
                                            convs_fused_, " convolution(s) and ", linears_fused_,
                                            " matmul(s); no separate add or activation primitive"));
    } else {
      report.skipped("post_op_fusion", "fusion=" + std::string(P::fusion::name) +
                                           ": BatchNorm, adds and activations run as their own primitives");
    }
    if constexpr (lowered.int8) {
      report.applied("int8", int8_summary());
    }
    const Context::Census& census = context_.census();
    if (census.weight_packs > 0) {
      report.applied("weights_prepacked",
                     visopt::detail::concat(census.weight_packs, " weight tensors reordered once into oneDNN's chosen "
                                            "layouts (", dtype_name(dtype_), "), ", detail::mebibytes(census.packed_bytes),
                                            ", while compile() planned its batch sizes"));
    } else {
      report.skipped("weights_prepacked", "nothing planned (CompileOptions::warmup = 0): weights are packed at the first run() of each batch size");
    }
    report.applied("primitives", detail::implementation_summary(census));
    if constexpr (static_plan) {
      const auto plan = memory_.largest_plan();
      report.applied("static_plan",
                     visopt::detail::concat("one activation arena of ", detail::mebibytes(memory_.bytes_reserved()),
                                            " planned by liveness (", plan.buffers, " activations totalling ",
                                            detail::mebibytes(plan.total_bytes), "; at most ",
                                            detail::mebibytes(plan.peak_live_bytes), " live at once); every primitive "
                                            "made in compile(); run() allocates nothing but the returned logits"));
    } else {
      report.skipped("static_plan", "execution=eager: activations come from a pool that reuses blocks by size");
    }
    report.activation_bytes = memory_.bytes_reserved();
    report.workspace_bytes = context_.scratchpad_bytes();
    // The implementation oneDNN dispatched for each convolution and matmul ("brg:avx512_core", "jit:avx2"...).
    plans_.for_each([&](const runtime::BatchPlan<>& plan) {
      plan.for_each<Step>([&](const void* owner, const Step& s) {
        const bool conv = std::any_of(convs_owned_.begin(), convs_owned_.end(), [&](const auto& op) { return op.get() == owner; });
        if (conv) ++report.algorithms["convolution: " + s.implementation()];
      });
      plan.for_each<LinearOp::Plan>([&](const void*, const LinearOp::Plan& matmuls) {
        for (const Step& s : matmuls.planes) ++report.algorithms["matmul: " + s.implementation()];
      });
    });
  }
  /// Input shapes planned so far (one plan each).
  std::size_t plans() const { return plans_.size(); }

 private:
  static constexpr std::int64_t block = 16;  // channels per nChw16c block

  /// One forward over the plan of the images' shape: its planning forward the first time.
  template <class Forward>
  Tensor forward_over_plan(const TensorView& images, Forward& forward) {
    context_.apply_threads();
    if constexpr (static_plan) memory_.begin_pass(images.shape());
    Tensor out = runtime::with_plan(plans_, images.shape(), [&] {
      Tensor x = allocate(images.shape(), dtype_);
      if (Layout(x.view()) == Layout(images) && !is_blocked(x)) {
        std::memcpy(x.data(), images.data(), images.nbytes());
      } else {
        plans_
            .step<Step>(&owners_.reorder, Layouts<2>{Layout(images), Layout(x.view())},
                        [&] { return make_reorder(context_, images, describe(images), x, describe_activation(x)); })
            .run(context_, {images.data(), x.data()});
      }
      const Tensor logits = forward(x);
      context_.wait();
      return logits.to(DType::f32);
    });
    if constexpr (static_plan) memory_.end_pass();
    return out;
  }

  struct PoolKey {
    Layout x, y;
    int kernel, stride, padding;
    friend bool operator==(const PoolKey&, const PoolKey&) = default;
  };
  struct RescaleKey {
    Layout x, y;
    float scale;
    friend bool operator==(const RescaleKey&, const RescaleKey&) = default;
  };

  /// The calibrated type and step of what operation `kind`.`index` writes (int8 levels; none otherwise).
  /// `optional`: none where the calibration has no range for it (only qkv linears have an attention).
  Quantization calibrated(const char* kind, std::size_t index, const Tensor& weight, bool optional = false) const {
    if constexpr (!lowered.int8) {
      return {};
    } else {
      const runtime::Calibration::Range* range = calibration_.range_of(kind, index, weight, optional);
      return range ? range->quantization() : Quantization{};
    }
  }

  /// x as the s8/u8 tensor an int8 layer reads: itself when quantized, else quantized in the step it
  /// carries by one reorder (at the boundaries of the int8 layers: after the first convolution,
  /// LayerNorm and attention).
  Tensor quantized(const Tensor& x) {
    if (is_quantized(x.dtype())) return x;
    const Quantization& q = x.quantization();
    return rescaled(x, allocate(x.shape(), q.dtype, x.view().format()).as_quantized(q), 1.0f / q.step);
  }

  /// x (s8/u8) as the high-precision type, by one reorder scaled by its step; a floating x as it is.
  Tensor dequantized(const Tensor& x) {
    if (!is_quantized(x.dtype())) return x;
    const Quantization& q = x.quantization();
    return rescaled(x, allocate(x.shape(), dtype_, x.view().format()).with_quantization(q), q.step);
  }

  /// y = x · scale converted to y's type: the one reorder that (de)quantizes at the int8 boundaries.
  Tensor rescaled(const Tensor& x, Tensor y, float scale) {
    plans_
        .step<Step>(&owners_.rescale, RescaleKey{Layout(x.view()), Layout(y.view()), scale},
                    [&] {
                      ++rescale_steps_;
                      return make_reorder(context_, x, describe_activation(x), y, describe_activation(y), scale);
                    })
        .run(context_, {x.data(), y.data()});
    return y;
  }

  /// How many linears prepare_linear made (linear_names_ less the patch embedding's empty entry).
  std::size_t linears_prepared() const {
    return static_cast<std::size_t>(std::count_if(linear_names_.begin(), linear_names_.end(), [](const auto& n) { return !n.empty(); }));
  }

  /// Whether CompileOptions::high_precision_layers names `name`.
  bool kept_high(const std::string& name) const {
    return std::find(high_precision_layers_.begin(), high_precision_layers_.end(), name) != high_precision_layers_.end();
  }

  /// An int8 convolution of quantized x, written as s8/u8 in its calibrated step. A residual is
  /// quantized if it is not yet, and its buffer becomes the output: the sum post-op reads it there in
  /// its own step.
  Tensor conv2d_int8(const Conv& c, const Tensor& x, const Tensor* residual, const Shape& out) {
    require(c.output.defined(), "onednn::conv2d: an int8 convolution without a calibrated output (internal error)");
    if (residual == nullptr) {
      Tensor y = allocate(out, c.output.dtype).as_quantized(c.output);
      c.op->run(context_, plans_, x, y, describer());
      return y;
    }
    require(residual->shape() == out, "onednn::conv2d: residual has shape ", residual->shape(), ", the output ", out);
    const Tensor shortcut = quantized(*residual);
    require(shortcut.data() != x.data() && shortcut.view().strides() == strides_for(out, MemoryFormat::channels_last),
            "onednn::conv2d: an int8 residual must be an NHWC tensor other than the input (internal error)");
    const Tensor y = shortcut.as_quantized(c.output);
    c.op->run(context_, plans_, x, y, describer(), shortcut.quantization());
    return y;
  }

  /// "52 of 53 convolutions and ..." in int8, and what stayed in higher precision, for report().
  std::string int8_summary() const {
    int convs = 0, linears = 0;
    std::string kept;
    auto keep = [&](const std::string& what) { kept += (kept.empty() ? "" : ", ") + what; };
    for (std::size_t i = 0; i < convs_owned_.size(); ++i) {
      if (convs_owned_[i]->ran_int8()) ++convs;
      else keep(visopt::detail::concat("conv.", i, conv_kept_why_[i]));
    }
    for (std::size_t i = 0; i < linears_owned_.size(); ++i) {
      if (linears_owned_[i]->ran_int8()) ++linears;
      else if (!linear_names_[i].empty())
        keep(linear_names_[i] + (kept_high(linear_names_[i]) ? " (asked)" : " (the classifier: reads pooled features)"));
    }
    std::string s = visopt::detail::concat(convs, " of ", convs_owned_.size(), " convolutions and ", linears, " of ",
                                           linears_prepared(), " linears in int8 (s8 weights, one step per output "
                                           "channel; s8/u8 activations, one step per tensor, calibrated by ",
                                           calibration_.method, " on ", calibration_.images, " images; int32 "
                                           "accumulation); ", rescale_steps_, " (de)quantize reorder(s) at the "
                                           "int8 boundaries; in ", dtype_name(dtype_), ": ");
    const bool transformer = std::find(linear_names_.begin(), linear_names_.end(), "") != linear_names_.end();
    if (transformer) {
      keep("the patch embedding");
      keep(visopt::detail::concat(layer_norms_owned_.size(), " LayerNorms"));
      keep("attention (q·kᵀ, softmax, p·v) and the residual stream");
    } else {
      keep("the max pooling of the first convolution's output");
    }
    return s + kept;
  }

  template <class Op>
  Op* own(std::unique_ptr<Op> op) {
    Op* raw = op.get();
    if constexpr (std::is_same_v<Op, ConvOp>) convs_owned_.push_back(std::move(op));
    else if constexpr (std::is_same_v<Op, LinearOp>) linears_owned_.push_back(std::move(op));
    else if constexpr (std::is_same_v<Op, LayerNormOp>) layer_norms_owned_.push_back(std::move(op));
    else batch_norms_owned_.push_back(std::move(op));
    return raw;
  }

  /// Counts an epilogue's post-ops; returns 1 when it has any.
  int count_epilogue(bool residual, nn::Activation act) {
    residual_sums_ += residual ? 1 : 0;
    activations_fused_ += act != nn::Activation::none ? 1 : 0;
    return residual || act != nn::Activation::none ? 1 : 0;
  }

  /// Rank-4 activations take the level's layout; everything else is dense.
  Tensor allocate(const Shape& shape, DType dtype, MemoryFormat format) { return memory_.allocate(shape, dtype, format); }
  Tensor allocate(const Shape& shape, DType dtype) {
    return memory_.allocate(shape, dtype,
                            shape.rank() == 4 && channels_last ? MemoryFormat::channels_last : MemoryFormat::contiguous);
  }
  Tensor allocate_like(const Tensor& x) { return allocate(x.shape(), x.dtype(), x.view().format()); }

  /// The destination of an operation on x whose epilogue adds `residual`: the residual's own buffer when
  /// it has the type and layout the output would get (x's type, or `dtype` when given: an int8 layer's
  /// floating output), else a fresh output holding a copy of it.
  Tensor destination_from(const Tensor& residual, const Shape& out, const Tensor& x, const char* where,
                          std::optional<DType> dtype = std::nullopt) {
    require(residual.shape() == out, where, ": residual has shape ", residual.shape(), ", the output ", out);
    const MemoryFormat format = out.rank() == 4 && channels_last ? MemoryFormat::channels_last : MemoryFormat::contiguous;
    const DType type = dtype.value_or(x.dtype());
    if (residual.dtype() == type && residual.view().strides() == strides_for(out, format) && residual.data() != x.data()) {
      return residual;
    }
    Tensor y = allocate(out, type);
    plans_
        .step<Step>(&owners_.reorder, Layouts<2>{Layout(residual.view()), Layout(y.view())},
             [&] { return make_reorder(context_, residual, describe_activation(residual), y, describe_activation(y)); })
        .run(context_, {residual.data(), y.data()});
    return y;
  }

  /// The memory descriptor of an activation this executor made: its strides say NCHW or NHWC, except
  /// that blocked levels keep rank-4 activations whose channels fill whole blocks in nChw16c (the
  /// tensor's own strides then describe the logical NCHW order only; nothing outside reads them).
  static bool is_blocked(const TensorView& t) {
    return blocked && t.rank() == 4 && t.dim(1) % block == 0 && t.is_contiguous();
  }
  static dnnl::memory::desc describe_activation(const TensorView& t) {
    if (is_blocked(t)) return dnnl::memory::desc(dims_of(t.shape()), to_dnnl(t.dtype()), dnnl::memory::format_tag::nChw16c);
    return describe(t);
  }
  static auto describer() {
    return [](const TensorView& t) { return describe_activation(t); };
  }

  Context context_;
  Memory memory_;
  DType dtype_ = DType::f32;  // activations: bf16 when the level asks for half precision and the CPU has it
  std::vector<std::unique_ptr<ConvOp>> convs_owned_;
  std::vector<std::unique_ptr<LinearOp>> linears_owned_;
  std::vector<std::unique_ptr<LayerNormOp>> layer_norms_owned_;
  std::vector<std::unique_ptr<BatchNormOp>> batch_norms_owned_;
  AttentionOp attention_;
  runtime::BatchPlans<> plans_;  // one per input shape: every primitive its forward runs, in order
  struct {
    char reorder, rescale, add, pool, activation[3];  // by nn::Activation
  } owners_{};                                 // the owners of the executor's own steps (addresses only)
  int convs_fused_ = 0, linears_fused_ = 0, residual_sums_ = 0, activations_fused_ = 0;
  nn::HeldFp32Parameters held_;  // what the ops keep in fp32
  runtime::Calibration calibration_;  // int8 levels: the activation ranges compile() was given
  int rescale_steps_ = 0;  // (de)quantize reorders made
  std::vector<std::string> high_precision_layers_;  // CompileOptions::high_precision_layers
  std::vector<std::string> conv_kept_why_;          // by convs_owned_: why it stays in high precision, if it does
  std::vector<std::string> linear_names_;  // by linears_owned_: "linear.<i>" in calibration's numbering, "" for the patch embedding
};

}  // namespace visopt::backend::onednn

template <class P>
struct visopt::backend::executor_for<visopt::backend::OneDnn, P> {
  using type = visopt::backend::onednn::Executor<P>;
};
