#pragma once
// The CUDA backend's executor: cuDNN convolutions, cuBLASLt GEMMs and our kernels, on one stream.
// O0 runs fp32 with TF32 off, op by op; O1 folds and fuses and allows TF32; O2 computes in fp16 (bf16
// when asked) with NHWC activations end to end; O3 also captures the whole forward once per batch
// size in a CUDA Graph and replays it. Each input shape has one batch plan (services/batch_plan.hpp):
// the algorithm of every convolution and GEMM, and at O3 the captured graph. The operations themselves
// live per family: convolution.hpp, gemm.hpp, attention.hpp, layer_norm.hpp, elementwise.hpp,
// pooling.hpp, tokens.hpp. Compile this only in .cu translation units (nvcc); plain C++ reaches it
// through runtime/cuda_engine.hpp.
//
// FP8 (O4, precision::fp8): O3 with the token-wise linears (ViT's qkv, projection and MLP) as e4m3
// matmuls. Each tensor an FP8 linear reads carries its calibrated step (Tensor::quantization, from
// CompileOptions::calibration): LayerNorm and attention outputs are quantized by one rescale kernel each,
// the MLP's hidden layer is written in e4m3 by its matmul. The residual stream, LayerNorm, attention,
// the patch embedding, the classifier and every convolution stay in fp16.

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "../../nn/epilogue.hpp"
#include "../../nn/params.hpp"
#include "../../policy/policy.hpp"
#include "../../services/batch_plan.hpp"
#include "../../services/calibration.hpp"
#include "../../services/options.hpp"
#include "../../services/report.hpp"
#include "../backends.hpp"
#include "context.hpp"
#include "convolution.hpp"
#include "gemm.hpp"
#include "graph.hpp"
#include "attention.hpp"
#include "elementwise.hpp"
#include "kernel_code.hpp"
#include "layer_norm.hpp"
#include "pooling.hpp"
#include "tokens.hpp"

namespace visopt::backend::cuda {

template <PolicyBundle P>
class Executor {
 public:
  static constexpr Lowering lowered = Cuda::lower<P>();  // the backend's traits decide; the executor follows
  static constexpr DType dtype = lowered.dtype;
  static constexpr bool nhwc = lowered.channels_last;
  static constexpr bool tensor_cores = lowered.tensor_cores;
  static constexpr bool captures = lowered.captures;
  static constexpr MemoryFormat image_format = nhwc ? MemoryFormat::channels_last : MemoryFormat::contiguous;
  static constexpr bool fp8 = lowered.fp8;
  static constexpr std::string_view precision_name = dtype == DType::f16 ? "fp16" : dtype == DType::bf16 ? "bf16" : "fp32";

  using Conv = std::shared_ptr<Convolution>;
  struct Linear {
    std::shared_ptr<Gemm> gemm;
    Quantization output{}, attention{};  // FP8: the steps of what it writes and (qkv) of the attention it feeds
    bool high = false;                   // FP8: kept in fp16 (CompileOptions::high_precision_layers)
  };
  struct BatchNorm {
    Tensor scale, shift;  // device f32 [C]: y = x·scale + shift
  };
  struct LayerNorm {
    Tensor weight, bias;  // device f32 [D]
    float eps;
    Quantization output{};  // FP8: the step its FP8 readers quantize it in
  };
  struct PatchEmbed {
    Linear projection;
    Tensor prefix_tokens, position;  // device f32: [T, D] class (and distillation) token, [L, D]
    int patch;
  };

  static constexpr int max_batch_limit = 65535;

  Executor(const runtime::CompileOptions& options, runtime::Report& report)
      : context_(options.device.value_or(0), std::is_same_v<typename P::tuning, tuning::measured>, options.cache_dir),
        strict_(options.strict.value_or(false)) {
    require(options.max_batch <= max_batch_limit, "CompileOptions::max_batch is ", options.max_batch, "; the CUDA backend takes at most ",
            max_batch_limit, " images per run() (a grid dimension of its input kernels)");
    report.device = "cuda:" + std::to_string(options.device.value_or(0)) + " " + context_.device().description();
    report.compute_precision = std::string(precision_name) +
                               (dtype == DType::f32 ? (tensor_cores ? " (TF32 tensor cores)" : " (TF32 off)") : " (fp32 accumulation)");
    if constexpr (fp8) {
      require(options.calibration.has_value(), "visopt: ", P::name, " (calibrated FP8) on backend::Cuda needs "
              "CompileOptions::calibration: measure one with visopt::calibrate(model, images), or Calibration::load a saved one");
      require(context_.device().major * 10 + context_.device().minor >= 89, "visopt: ", P::name, " (FP8) needs a GPU with FP8 "
              "tensor cores (sm_89 or later); ", context_.device().description(), " has none: use O3 (fp16)");
      calibration_ = *options.calibration;
      high_precision_layers_ = options.high_precision_layers;
      report.compute_precision = "fp8 e4m3 (fp32 accumulation) in the token-wise linears; " + report.compute_precision + " elsewhere";
    }
    if constexpr (tensor_cores && dtype == DType::f32) report.applied("tf32", "cuDNN, cuBLASLt and the attention kernel may use TF32 tensor cores");
    else if constexpr (dtype == DType::f32) report.skipped("tf32", "precision=fp32 keeps full fp32 math");
    if constexpr (dtype != DType::f32) {
      report.applied(std::string(precision_name), "weights and activations in " + std::string(precision_name) +
                                                      ", fp32 accumulation; LayerNorm and softmax in fp32");
    }
    if constexpr (nhwc) report.applied("channels_last", "NHWC activations end to end; one conversion kernel at the input");
    if (auto* cache = context_.cache()) {
      report.applied("measured_tuning", "algorithms timed while planning each input shape, cached in " + cache->file().string());
      if (!cache->warning().empty()) report.skipped("algorithm_cache", cache->warning());
    } else {
      report.skipped("measured_tuning", "tuning=heuristic: cuDNN's and cuBLASLt's default choices");
    }
    if constexpr (captures) report.applied("cuda_graph", "the forward is captured once per batch size and replayed");
    else report.skipped("cuda_graph", "execution=eager launches kernels one by one");
    note_kernel_code(report);
  }

  // ---- saved plans (services/plan.hpp) ----
  /// The GPU and library versions the algorithm choices hold for.
  std::string identity() const { return "cuda " + context_.identity(); }
  /// Takes a saved plan's algorithm choices instead of the on-disk cache (before the first forward).
  void use_saved_algorithms(const nlohmann::json& entries, runtime::Report& report) {
    context_.use_saved_algorithms(entries);
    if (context_.cache()) {
      report.applied("measured_tuning", "algorithm choices from the saved plan (" + std::to_string(entries.size()) +
                                            " entries): nothing is timed for the shapes it covers");
    }
  }
  /// The algorithm choices this engine made or looked up: what Engine::save keeps.
  nlohmann::json saved_algorithms() const { return context_.cache() ? context_.cache()->used() : nlohmann::json::object(); }

  ~Executor() {
    if (auto* cache = context_.cache()) cache->save();
  }

  // ---- compile(): prepare parameters ----
  Conv prepare_conv(const nn::Conv2dParams& p, nn::ConvEpilogue epilogue) {
    ++convs_;
    return std::make_shared<Convolution>(context_, p, epilogue, dtype, nhwc, tensor_cores, P::fusion::fuses_epilogue);
  }
  BatchNorm prepare_batch_norm(const nn::BatchNormParams& p) {
    const auto c = p.weight.numel();
    Tensor scale = Tensor::empty({c}), shift = Tensor::empty({c});
    for (std::int64_t i = 0; i < c; ++i) {
      const float s = p.weight.data_as<float>()[i] / std::sqrt(p.running_var.data_as<float>()[i] + p.eps);
      scale.data_as<float>()[i] = s;
      shift.data_as<float>()[i] = p.bias.data_as<float>()[i] - p.running_mean.data_as<float>()[i] * s;
    }
    return {context_.upload(scale, DType::f32), context_.upload(shift, DType::f32)};
  }
  Linear prepare_linear(const nn::LinearParams& p, nn::LinearEpilogue epilogue) {
    const std::size_t index = linear_names_.size();  // numbered as calibrate() numbers them: prepare_linear's calls
    linear_names_.push_back(runtime::Calibration::tensor_name("linear", index));
    const bool high = kept_high(linear_names_.back());
    Linear l{make_gemm(p, epilogue, fp8 && !high), {}, {}, high};
    gemms_.push_back(l.gemm);
    if constexpr (fp8) {
      // Ranges exist for what the calibration observed: every linear's output (only the MLP's hidden
      // layer, read by an FP8 linear, uses it) and the attention of each qkv projection.
      l.output = calibrated("linear", index, p.weight, true);
      l.attention = calibrated("attention", index, Tensor(), true);
    }
    return l;
  }
  LayerNorm prepare_layer_norm(const nn::LayerNormParams& p) {
    const Quantization output = calibrated("layer_norm", layer_norms_++, p.weight);
    return {context_.upload(p.weight, DType::f32), context_.upload(p.bias, DType::f32), p.eps, output};
  }
  /// One self-attention layer of the model (attention needs no parameters). Refuses, inside compile(),
  /// a program whose tensor-core attention kernel was compiled for an architecture without its instructions.
  void prepare_attention(int /*heads*/) {
    if (attention_layers_++ == 0) require_attention_code(context_, dtype, tensor_cores);
  }
  PatchEmbed prepare_patch_embed(const nn::PatchEmbedParams& p) {
    const auto d = p.weight.dim(0);
    nn::LinearParams projection{p.weight.reshaped({d, p.weight.numel() / d}), p.bias};
    // Not a prepare_linear: the calibration does not number it, and it stays fp16 (it reads the images).
    return {Linear{make_gemm(projection, {}, false)}, context_.upload(p.prefix_tokens, DType::f32), context_.upload(p.position, DType::f32),
            p.patch};
  }

  // ---- run() ----
  /// Runs `forward` on `images` (host, or device f32 NCHW on the engine's GPU); returns f32 logits on the
  /// images' device. The calling thread's current GPU does not matter and is left as it was.
  /// An input shape run() has not seen is planned (and captured) first, as plan() does.
  template <class Forward>
  Tensor run(const TensorView& images, Forward&& forward) {
    const DeviceScope on_engine_gpu(device());
    check_device(images);
    const BatchPlan& plan = plan_batch(images, forward);
    if (plan.replay.captured()) return replay(context_, plan.replay, images);
    Tensor staged = stage(images);
    Tensor logits = runtime::with_plan(plans_, images.shape(), [&] { return to_float(forward(place(staged))); });
    return finish(logits, images.device());
  }

  /// The lifecycle's plan and capture stages for the shape of `images` (compile() calls it for max_batch
  /// and each warmup_batches size): one planning forward chooses (and, measured, times) every cuDNN and
  /// cuBLASLt algorithm, sizes the workspace and fills the pool; at O3 one more forward over the finished
  /// plan is captured into a CUDA Graph. Does nothing for a shape already planned.
  template <class Forward>
  void plan(const TensorView& images, Forward&& forward) {
    const DeviceScope on_engine_gpu(device());
    check_device(images);
    (void)plan_batch(images, forward);
  }

  /// Called by Engine once the network is built, before planning: refuses a high_precision_layers name
  /// that is no linear of it (FP8 on the GPU quantizes linears only).
  void check_prepared(const runtime::Report& report) const {
    if constexpr (fp8) runtime::require_known_layers(high_precision_layers_, 0, linear_names_.size(), report.model);
  }

  /// Called by Engine after the plans are made: what they hold and what fell back. Under
  /// CompileOptions::strict a fallback is an error.
  void complete_report(runtime::Report& report) const {
    report.plans = plans_.describe();
    if constexpr (P::fusion::fuses_epilogue) {
      int fused = 0, fallbacks = 0;
      plans_.for_each([&](const BatchPlan& plan) {
        plan.template for_each<Convolution::Plan>([&](const void*, const Convolution::Plan& c) {
          fused += c.graph ? 1 : 0;
          fallbacks += c.fallback ? 1 : 0;
        });
      });
      report.applied("fused_conv", visopt::detail::concat(fused, " convolution shape(s) run as one cuDNN graph each "
                                                                 "(convolution + bias + shortcut + ReLU in one engine)"));
      if (fallbacks > 0) {
        const std::string reason = visopt::detail::concat(fallbacks, " convolution shape(s) have no fused cuDNN engine on this "
                                                                     "GPU and run as convolution + visopt's epilogue kernel");
        require(!strict_, "visopt: CompileOptions::strict: ", reason);
        report.skipped("fused_conv_fallback", reason);
      }
    }
    if constexpr (fp8) {
      report.applied("fp8", fp8_summary());
    }
    if (attention_layers_ > 0) {
      int cudnn_shapes = 0, own_shapes = 0;
      std::string why;
      plans_.for_each([&](const BatchPlan& plan) {
        plan.template for_each<Attention::Plan>([&](const void*, const Attention::Plan& a) {
          ++(a.graph ? cudnn_shapes : own_shapes);
          if (!a.graph && !a.why.empty()) why = a.why;
        });
      });
      report.applied("fused_attention", visopt::detail::concat(attention_layers_, " attention layer(s), one fused kernel each (online "
                                                                                  "softmax, no score matrix): cuDNN's fused attention "
                                                                                  "for ", cudnn_shapes, " input shape(s), visopt's "
                                                                                  "kernel for ", own_shapes));
      if (!why.empty()) report.skipped("cudnn_attention", why);
    }
    if constexpr (captures) {
      if (!graph_fallback_.empty()) {
        report.skipped("cuda_graph", "capture failed, running eagerly instead: " + graph_fallback_);
      }
    }
    report.workspace_bytes = context_.workspace_bytes();
    report.activation_bytes = activation_bytes();
    if (const auto* cache = context_.cache()) {
      report.cache_hits = cache->hits();
      report.cache_misses = cache->misses();
    }
  }

  Tensor conv2d(const Conv& c, const Tensor& x, const Tensor* residual = nullptr) {
    Tensor y = c->output(context_, x);
    const auto& plan = plans_.step<Convolution::Plan>(c.get(), x.shape(), [&] {
      return c->plan(context_, x, y, residual, [&](const std::string& key, auto make) {
        return plans_.shared<Convolution::FusedChoice>(key, make);
      });
    });
    c->forward(context_, plan, x, y, residual);
    return y;
  }

  Tensor batch_norm(const BatchNorm& b, const Tensor& x) { return channel_affine(context_, x, b.scale, b.shift, nhwc); }
  Tensor activation(const Tensor& x, nn::Activation act) { return cuda::activation(context_, x, act); }
  Tensor add(const Tensor& a, const Tensor& b) { return cuda::add(context_, a, b); }
  Tensor max_pool2d(const Tensor& x, int kernel, int stride, int padding) {
    return cuda::max_pool2d(context_, x, kernel, stride, padding, image_format);
  }
  /// [N,C,H,W] -> [N,C]
  Tensor global_avg_pool(const Tensor& x) { return cuda::global_avg_pool(context_, x); }

  Tensor linear(const Linear& l, const Tensor& x, const Tensor* residual = nullptr) {
    if constexpr (fp8) {
      const bool runs_fp8 = !l.high && l.gemm->fp8_capable() && x.rank() == 3 && x.quantization().defined();
      if (runs_fp8 && x.dtype() != DType::e4m3) return linear(l, quantized(x), residual);
      if (!runs_fp8 && x.dtype() == DType::e4m3) return linear(l, dequantized(x), residual);  // kept high after an FP8 fc1
      // An FP8 linear with nothing to add writes what FP8 reads next in e4m3 (the MLP's hidden layer).
      // (When the next linear is kept in fp16, it dequantizes what it reads.)
      const bool writes_fp8 = runs_fp8 && residual == nullptr && l.output.defined();
      if (writes_fp8) return run_linear(l, x, l.gemm->output(context_, x, l.output), residual);
    }
    return run_linear(l, x, l.gemm->output(context_, x), residual).with_quantization(l.output);
  }

  /// Carries the step its FP8 readers quantize it in (O4).
  Tensor layer_norm(const LayerNorm& n, const Tensor& x) {
    return cuda::layer_norm(context_, x, n.weight, n.bias, n.eps).with_quantization(n.output);
  }

  /// x [B, L, K] -> attention over the heads of its qkv projection -> [B, L, D].
  Tensor self_attention(const Linear& qkv, const Tensor& x, int heads) {
    return attention(linear(qkv, x), heads).with_quantization(qkv.attention);
  }

  /// qkv [B, L, 3D] -> [B, L, D]
  Tensor attention(const Tensor& qkv, int heads) {
    Tensor y = attention_.output(context_, qkv, heads);
    const auto& plan = plans_.step<Attention::Plan>(&attention_, qkv.shape(), [&] { return attention_.plan(context_, qkv, y, heads); });
    attention_.forward(context_, plan, qkv, y, heads);
    return y;
  }

  /// images [N,C,H,W] -> tokens [N, T + (H/p)(W/p), D]
  Tensor patch_embed(const PatchEmbed& e, const Tensor& x) {
    const Tensor patches = patchify(context_, x, e.patch);
    return assemble_tokens(context_, linear(e.projection, patches), e.prefix_tokens, e.position);
  }

  /// x [B, L, D] -> [B, D], the token at `index`.
  Tensor select_token(const Tensor& x, std::int64_t index) { return cuda::select_token(context_, x, index); }

  /// Host memory for a caller to stage input batches in (Engine::input_buffer): page-locked, so that
  /// run()'s copy to the GPU runs at the bus's speed rather than through the driver's bounce buffers.
  Tensor host_buffer(const Shape& shape) const {
    const DeviceScope on_engine_gpu(device());
    return pinned_host_tensor(shape);
  }
  std::size_t activation_bytes() const { return context_.pool().bytes_reserved(); }
  /// Device bytes of the parameters (for report()).
  std::size_t weight_bytes() const { return context_.weight_bytes(); }
  std::size_t fresh_allocations() const { return context_.pool().fresh_allocations(); }
  Context& context() { return context_; }
  int graphs_captured() const {
    int n = 0;
    plans_.for_each([&](const BatchPlan& plan) { n += plan.replay.captured() ? 1 : 0; });
    return n;
  }
  /// Input shapes planned so far (one plan each).
  std::size_t plans() const { return plans_.size(); }

 private:
  using BatchPlan = runtime::BatchPlan<CapturedForward>;

  int device() const { return context_.device().index; }

  std::shared_ptr<Gemm> make_gemm(const nn::LinearParams& p, nn::LinearEpilogue epilogue, bool fp8_capable) {
    const cublasComputeType_t compute = tensor_cores && dtype == DType::f32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    return std::make_shared<Gemm>(context_, p, epilogue, dtype, compute, fp8_capable);
  }

  Tensor run_linear(const Linear& l, const Tensor& x, Tensor y, const Tensor* residual) {
    const auto& plan = plans_.step<Gemm::Plan>(l.gemm.get(), l.gemm->rows(x), [&] { return l.gemm->plan(context_, x, y, residual); });
    l.gemm->forward(context_, plan, x, y, residual);
    return y;
  }

  // ---- FP8 (O4) ----
  /// The FP8 step of what operation `kind`.`index` writes (none when the level is not FP8). `optional`: none
  /// where the calibration has no range for it, else that is an error; so is a range measured on another
  /// model's operation.
  Quantization calibrated(const char* kind, std::size_t index, const Tensor& weight, bool optional = false) const {
    if constexpr (!fp8) {
      return {};
    } else {
      const runtime::Calibration::Range* range = calibration_.range_of(kind, index, weight, optional);
      return range ? range->fp8() : Quantization{};
    }
  }
  bool kept_high(const std::string& name) const {
    return std::find(high_precision_layers_.begin(), high_precision_layers_.end(), name) != high_precision_layers_.end();
  }
  /// x as the e4m3 tensor an FP8 linear reads: quantized in the step it carries by one rescale kernel.
  Tensor quantized(const Tensor& x) {
    const Quantization& q = x.quantization();
    require(q.defined() && q.dtype == DType::e4m3, "cuda: an FP8 linear reads a ", dtype_name(x.dtype()), " tensor without an "
            "FP8 step (internal error)");
    const Tensor y = context_.allocate(x.shape(), DType::e4m3).as_quantized(q);
    rescale(context_, x, y, 1.0f / q.step);
    return y;
  }
  /// "48 of 49 linears in FP8 (...); in fp16: ..." for report().
  std::string fp8_summary() const {
    std::size_t ran = 0;
    std::string high;
    for (const std::string& name : high_precision_layers_) high += (high.empty() ? "" : ", ") + name;
    for (const std::shared_ptr<Gemm>& g : gemms_) ran += g->runs_fp8() ? 1 : 0;
    const std::string kept = attention_layers_ > 0
                                 ? "the residual stream, LayerNorm, attention, the patch embedding, the classifier (each LayerNorm "
                                   "and attention output an FP8 linear reads is quantized by one kernel)"
                                 : "the classifier";
    return visopt::detail::concat(ran, " of ", linear_names_.size(), " linears in FP8 (e4m3 weights with one step per tensor, "
                                  "e4m3 activations in their calibrated steps (", calibration_.method, " on ",
                                  calibration_.images, " images; FP8 scales by the largest value seen); fp32 accumulation); "
                                  "in fp16: ", kept,
                                  convs_ > 0 ? visopt::detail::concat(", ", convs_, " convolution(s) (FP8 ones lose speed and "
                                                                      "accuracy; int8 ones are not yet faster than fp16 here: "
                                                                      "docs/performance.md)")
                                             : std::string(),
                                  high.empty() ? std::string() : ", and as asked " + high);
  }
  /// An e4m3 tensor back in the level's dtype, keeping its step.
  Tensor dequantized(const Tensor& x) {
    const Tensor y = context_.allocate(x.shape(), dtype).with_quantization(x.quantization());
    rescale(context_, x, y, x.quantization().step);
    return y;
  }

  void check_device(const TensorView& images) const {
    if (!images.device().is_cpu() && images.device().index != device()) {
      fail(visopt::detail::concat("cuda: images are on ", images.device().to_string(), ", but this engine runs on cuda:",
                                  device(), "; copy them there or compile with CompileOptions::device = ",
                                  images.device().index));
    }
  }

  /// The plan of the images' shape, made (and captured) first when there is none.
  template <class Forward>
  const BatchPlan& plan_batch(const TensorView& images, Forward& forward) {
    if (const BatchPlan* planned = plans_.find(images.shape())) return *planned;
    {
      Tensor staged = stage(images);
      // The same calls as run()'s forward, to_float included: the capture below must find every pool
      // block it needs already made (no cudaMalloc inside a capture). Synchronised inside the planning
      // forward, so that the plan's plan_ms counts the GPU's work too.
      runtime::with_plan(plans_, images.shape(), [&] {
        (void)to_float(forward(place(staged)));
        VISOPT_CUDA_CHECK(cudaStreamSynchronize(stream()), "planning the forward for input " + images.shape().to_string());
      });
    }
    BatchPlan& plan = *plans_.find(images.shape());
    if constexpr (captures) {
      if (graph_fallback_.empty()) {
        const auto capture_started = std::chrono::steady_clock::now();
        try {
          plan.replay = capture_forward(context_, images, [&](const Tensor& staged) {
            return runtime::with_plan(plans_, images.shape(), [&] { return to_float(forward(place(staged))); });
          });
          plan.replay.capture_ms =
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - capture_started).count();
        } catch (const Error& e) {
          // A forward that cannot be captured (a library call that is not capture-safe on this driver)
          // still runs eagerly over its plan; complete_report() says so, and strict makes it compile()'s error.
          if (strict_) throw;
          (void)cudaGetLastError();  // a failed capture leaves no sticky error, only the last one
          graph_fallback_ = e.what();
        }
      }
    }
    return plan;
  }
  /// Says which code visopt's kernels run: machine code compiled for this GPU, or PTX of an older
  /// architecture that the driver compiled at load (slower kernels; an error under strict).
  void note_kernel_code(runtime::Report& report) const {
    const KernelCode code = kernel_code(kernels::to_float_kernel<float>, "to_float_kernel", context_.device());
    const int gpu = architecture_of(context_.device());
    if (code.compiled_for >= gpu) {
      report.applied("native_kernels", visopt::detail::concat("visopt's kernels run code compiled for sm_", code.compiled_for));
      return;
    }
    const std::string reason = visopt::detail::concat("visopt's kernels were compiled for sm_", code.compiled_for,
                                                      " and the driver compiles their PTX for this sm_", gpu, " GPU at load; ",
                                                      rebuild_advice(context_.device()));
    require(!strict_, "visopt: CompileOptions::strict: ", reason);
    report.skipped("native_kernels", reason);
  }
  cudaStream_t stream() const { return context_.stream(); }

  /// Copies the caller's f32 NCHW images into a device buffer from the pool.
  Tensor stage(const TensorView& images) {
    Tensor staged = context_.allocate(images.shape(), DType::f32);
    VISOPT_CUDA_CHECK(cudaMemcpyAsync(staged.data(), images.data(), images.nbytes(),
                                      images.device().is_cpu() ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice, stream()));
    return staged;
  }

  /// The staged f32 NCHW images in this level's dtype and layout (one kernel; none at O0/O1).
  Tensor place(const Tensor& staged) {
    if (dtype == DType::f32 && !nhwc) return staged;
    return convert_images(context_, staged, dtype, nhwc);
  }
  Tensor to_float(const Tensor& logits) { return cuda::to_float(context_, logits); }

  /// Copies device f32 logits out to the caller's side (host, or a new device tensor) and waits.
  Tensor finish(const Tensor& logits, Device where) {
    Tensor result = where.is_cpu() ? Tensor::empty(logits.shape()) : context_.results().allocate(logits.shape(), DType::f32);
    VISOPT_CUDA_CHECK(cudaMemcpyAsync(result.data(), logits.data(), logits.nbytes(),
                                      where.is_cpu() ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice, stream()));
    VISOPT_CUDA_CHECK(cudaStreamSynchronize(stream()));
    return result;
  }

  Context context_;
  bool strict_ = false;
  runtime::BatchPlans<CapturedForward> plans_;  // one per input shape: each operation's algorithm, and the graph at O3
  int attention_layers_ = 0;                    // for complete_report()
  // FP8 (O4):
  runtime::Calibration calibration_;                // the activation ranges compile() was given
  std::vector<std::string> high_precision_layers_;  // CompileOptions::high_precision_layers
  std::vector<std::string> linear_names_;           // "linear.<i>" per prepare_linear call, calibrate()'s numbering
  std::vector<std::shared_ptr<Gemm>> gemms_;        // those linears' matmuls, for the report
  std::size_t layer_norms_ = 0, convs_ = 0;
  Attention attention_{dtype, tensor_cores};    // every attention layer's: layers of equal shapes share a plan step
  std::string graph_fallback_;                  // why capture failed, once it has
};

}  // namespace visopt::backend::cuda

template <class P>
struct visopt::backend::executor_for<visopt::backend::Cuda, P> {
  using type = visopt::backend::cuda::Executor<P>;
};
