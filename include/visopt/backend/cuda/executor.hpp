#pragma once
// The CUDA backend's executor: cuDNN convolutions, cuBLASLt GEMMs and our kernels, on one stream.
// O0 runs fp32 with TF32 off, op by op; O1 folds and fuses and allows TF32; O2 computes in fp16 (bf16
// when asked) with NHWC activations end to end; O3 also captures the whole forward once per batch
// size in a CUDA Graph and replays it. Compile this only in .cu translation units (nvcc); plain C++
// reaches it through runtime/cuda_engine.hpp.

#include <map>
#include <memory>
#include <type_traits>
#include <vector>

#include "../../nn/epilogue.hpp"
#include "../../nn/params.hpp"
#include "../../policy/policy.hpp"
#include "../../services/options.hpp"
#include "../../services/report.hpp"
#include "../backends.hpp"
#include "context.hpp"
#include "convolution.hpp"
#include "gemm.hpp"
#include "graph.hpp"
#include "kernel_code.hpp"
#include "kernels/attention.cuh"
#include "kernels/attention_tensor_core.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/layer_norm.cuh"
#include "kernels/pooling.cuh"
#include "kernels/tokens.cuh"

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
  static constexpr std::string_view precision_name = dtype == DType::f16 ? "fp16" : dtype == DType::bf16 ? "bf16" : "fp32";

  using Conv = std::shared_ptr<Convolution>;
  using Linear = std::shared_ptr<Gemm>;
  struct BatchNorm {
    Tensor scale, shift;  // device f32 [C]: y = x·scale + shift
  };
  struct LayerNorm {
    Tensor weight, bias;  // device f32 [D]
    float eps;
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
    if constexpr (tensor_cores && dtype == DType::f32) report.applied("tf32", "cuDNN and cuBLASLt may use TF32 tensor cores");
    else if constexpr (dtype == DType::f32) report.skipped("tf32", "precision=fp32 keeps full fp32 math");
    if constexpr (dtype != DType::f32) {
      report.applied(std::string(precision_name), "weights and activations in " + std::string(precision_name) +
                                                      ", fp32 accumulation; LayerNorm and softmax in fp32");
    }
    if constexpr (nhwc) report.applied("channels_last", "NHWC activations end to end; one conversion kernel at the input");
    if (auto* cache = context_.cache()) {
      report.applied("measured_tuning", "algorithms timed on first run of each shape, cached in " + cache->file().string());
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
    const bool fused = P::fusion::fuses_epilogue;
    convolutions_.push_back(std::make_shared<Convolution>(context_, p, epilogue, dtype, nhwc, tensor_cores, fused));
    return convolutions_.back();
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
    const cublasComputeType_t compute = tensor_cores && dtype == DType::f32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    return std::make_shared<Gemm>(context_, p, epilogue, dtype, compute);
  }
  LayerNorm prepare_layer_norm(const nn::LayerNormParams& p) {
    return {context_.upload(p.weight, DType::f32), context_.upload(p.bias, DType::f32), p.eps};
  }
  /// One self-attention layer of the model (attention needs no parameters). Refuses, inside compile(),
  /// a program whose tensor-core attention kernel was compiled for an architecture without its instructions.
  void prepare_attention(int /*heads*/) {
    if (attention_layers_++ > 0 || !uses_tensor_core_attention()) return;
    kernels::dispatch_dtype(dtype, [&](auto tag) {
      using T = decltype(tag);
      if constexpr (!std::is_same_v<T, float>) {
        const KernelCode code = kernel_code(kernels::attention_tensor_core_kernel<T>, "attention_tensor_core_kernel", context_.device());
        require_kernel_code(code, kernels::tc_attention_architecture, "fused tensor-core attention (ViT in fp16/bf16)", context_.device());
      }
    });
  }
  PatchEmbed prepare_patch_embed(const nn::PatchEmbedParams& p) {
    const auto d = p.weight.dim(0);
    nn::LinearParams projection{p.weight.reshaped({d, p.weight.numel() / d}), p.bias};
    return {prepare_linear(projection, {}), context_.upload(p.prefix_tokens, DType::f32), context_.upload(p.position, DType::f32), p.patch};
  }

  // ---- run() ----
  /// Runs `forward` on `images` (host, or device f32 NCHW on the engine's GPU); returns f32 logits on the
  /// images' device. The calling thread's current GPU does not matter and is left as it was.
  template <class Forward>
  Tensor run(const TensorView& images, Forward&& forward) {
    const DeviceScope on_engine_gpu(device());
    if (!images.device().is_cpu() && images.device().index != device()) {
      fail(visopt::detail::concat("cuda: images are on ", images.device().to_string(), ", but this engine runs on cuda:",
                                  device(), "; copy them there or compile with CompileOptions::device = ",
                                  images.device().index));
    }
    if constexpr (captures) {
      if (graph_fallback_.empty()) {
        try {
          return graphs_.run(context_, images, [&](const Tensor& staged) { return to_float(forward(place(staged))); });
        } catch (const Error& e) {
          // A forward that cannot be captured (a library call that is not capture-safe on this driver)
          // still runs eagerly; complete_report() says so, and strict turns it into compile()'s error.
          if (strict_) throw;
          (void)cudaGetLastError();  // a failed capture leaves no sticky error, only the last one
          graph_fallback_ = e.what();
        }
      }
    }
    Tensor staged = stage(images);
    Tensor logits = to_float(forward(place(staged)));
    return finish(logits, images.device());
  }

  /// Called by Engine after the warm-up: what fell back. Under CompileOptions::strict a fallback is an error.
  void complete_report(runtime::Report& report) const {
    if constexpr (P::fusion::fuses_epilogue) {
      int fused = 0, fallbacks = 0;
      for (const auto& c : convolutions_) fused += c->fused_shapes(), fallbacks += c->fallbacks();
      report.applied("fused_conv", visopt::detail::concat(fused, " convolution shape(s) run as one cuDNN graph each "
                                                                 "(convolution + bias + shortcut + ReLU in one engine)"));
      if (fallbacks > 0) {
        const std::string reason = visopt::detail::concat(fallbacks, " convolution shape(s) have no fused cuDNN engine on this "
                                                                     "GPU and run as convolution + visopt's epilogue kernel");
        require(!strict_, "visopt: CompileOptions::strict: ", reason);
        report.skipped("fused_conv_fallback", reason);
      }
    }
    if (attention_layers_ > 0) {
      report.applied("fused_attention", visopt::detail::concat(attention_layers_, " attention layer(s), one kernel each: online "
                                                                                  "softmax, no score matrix"));
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

  Tensor conv2d(const Conv& c, const Tensor& x, const Tensor* residual = nullptr) { return c->forward(context_, x, residual); }

  Tensor batch_norm(const BatchNorm& b, const Tensor& x) {
    Tensor y = like(x);
    const long long n = x.numel();
    kernels::ChannelIndex channel{x.dim(1), x.dim(2) * x.dim(3), nhwc};
    launch("batch_norm", [&](auto tag) {
      using T = decltype(tag);
      kernels::channel_epilogue_kernel<T><<<kernels::blocks_for(n), 256, 0, stream()>>>(
          in<T>(x), b.scale.template data_as<float>(), b.shift.template data_as<float>(), nullptr, out<T>(y), n, channel, nn::Activation::none);
    });
    return y;
  }

  Tensor activation(const Tensor& x, nn::Activation act) {
    Tensor y = like(x);
    const long long n = x.numel();
    launch("activation", [&](auto tag) {
      using T = decltype(tag);
      kernels::activation_kernel<T><<<kernels::blocks_for(n), 256, 0, stream()>>>(in<T>(x), out<T>(y), n, act);
    });
    return y;
  }

  Tensor add(const Tensor& a, const Tensor& b) {
    Tensor y = like(a);
    const long long n = a.numel();
    launch("add", [&](auto tag) {
      using T = decltype(tag);
      kernels::add_kernel<T><<<kernels::blocks_for(n), 256, 0, stream()>>>(in<T>(a), in<T>(b), out<T>(y), n, nn::Activation::none);
    });
    return y;
  }

  Tensor max_pool2d(const Tensor& x, int kernel, int stride, int padding) {
    const Shape shape = nn::pool2d_output_shape(x.shape(), kernel, stride, padding, "cuda::max_pool2d");
    Tensor y = context_.allocate(shape, dtype, image_format);
    const long long total = y.numel();
    launch("max_pool2d", [&](auto tag) {
      using T = decltype(tag);
      constexpr int per = 16 / static_cast<int>(sizeof(T));
      if (x.view().is_channels_last() && y.view().is_channels_last() && x.dim(1) % per == 0 && total / per < (1LL << 31)) {
        const int pieces = static_cast<int>(total / per);
        kernels::max_pool2d_nhwc_kernel<T><<<kernels::blocks_for(pieces), 256, 0, stream()>>>(
            in<T>(x), static_cast<int>(x.dim(2)), static_cast<int>(x.dim(3)), static_cast<int>(x.dim(1)), out<T>(y),
            static_cast<int>(y.dim(2)), static_cast<int>(y.dim(3)), pieces, kernel, stride, padding);
        return;
      }
      kernels::max_pool2d_kernel<T><<<kernels::blocks_for(total), 256, 0, stream()>>>(
          in<T>(x), strides4(x), static_cast<int>(x.dim(2)), static_cast<int>(x.dim(3)), out<T>(y), strides4(y),
          static_cast<int>(y.dim(1)), static_cast<int>(y.dim(2)), static_cast<int>(y.dim(3)), total, kernel, stride, padding);
    });
    return y;
  }

  /// [N,C,H,W] -> [N,C]
  Tensor global_avg_pool(const Tensor& x) {
    Tensor y = context_.allocate({x.dim(0), x.dim(1)}, dtype);
    const long long pairs = x.dim(0) * x.dim(1);
    launch("global_avg_pool", [&](auto tag) {
      using T = decltype(tag);
      kernels::global_avg_pool_kernel<T><<<kernels::blocks_for(x.view().stride(1) == 1 ? pairs : pairs * 32), 256, 0, stream()>>>(
          in<T>(x), strides4(x), static_cast<int>(x.dim(1)), static_cast<int>(x.dim(2)), static_cast<int>(x.dim(3)), out<T>(y), pairs);
    });
    return y;
  }

  Tensor linear(const Linear& l, const Tensor& x, const Tensor* residual = nullptr) { return l->forward(context_, x, residual); }

  Tensor layer_norm(const LayerNorm& n, const Tensor& x) {
    Tensor y = like(x);
    const int d = static_cast<int>(x.dim(x.rank() - 1));
    const long long rows = x.numel() / d;
    launch("layer_norm", [&](auto tag) {
      using T = decltype(tag);
      if (kernels::layer_norm_vectorizable<T>(d)) {
        kernels::layer_norm_vector_kernel<T><<<kernels::blocks_for(rows * 32), 256, 0, stream()>>>(
            in<T>(x), n.weight.template data_as<float>(), n.bias.template data_as<float>(), n.eps, out<T>(y), rows, d);
        return;
      }
      kernels::layer_norm_kernel<T><<<kernels::blocks_for(rows * 32), 256, 0, stream()>>>(
          in<T>(x), n.weight.template data_as<float>(), n.bias.template data_as<float>(), n.eps, out<T>(y), rows, d);
    });
    return y;
  }

  /// x [B, L, K] -> attention over the heads of its qkv projection -> [B, L, D].
  Tensor self_attention(const Linear& qkv, const Tensor& x, int heads) { return attention(linear(qkv, x), heads); }

  /// qkv [B, L, 3D] -> [B, L, D]
  Tensor attention(const Tensor& qkv, int heads) {
    const auto b = qkv.dim(0), l = qkv.dim(1), d = qkv.dim(2) / 3;
    require(d == heads * kernels::attention_head_dim, "cuda::attention: model width ", d, " with ", heads,
            " heads is not a head size of ", kernels::attention_head_dim);
    Tensor y = context_.allocate({b, l, d}, dtype);
    const float scale = 1.0f / std::sqrt(static_cast<float>(kernels::attention_head_dim));
    const auto bh = static_cast<unsigned>(b * heads);
    launch("attention", [&](auto tag) {
      using T = decltype(tag);
      const dim3 simt_grid(static_cast<unsigned>((l + kernels::attention_queries_per_block - 1) / kernels::attention_queries_per_block), bh);
      if constexpr (std::is_same_v<T, float>) {  // fp32 levels: exact fp32 math on CUDA cores
        kernels::attention_kernel<T><<<simt_grid, kernels::attention_warps * 32, 0, stream()>>>(in<T>(qkv), out<T>(y), static_cast<int>(l), heads, scale);
      } else if (!uses_tensor_core_attention()) {  // no sm_80 tensor-core fragments on this GPU
        kernels::attention_kernel<T><<<simt_grid, kernels::attention_warps * 32, 0, stream()>>>(in<T>(qkv), out<T>(y), static_cast<int>(l), heads, scale);
      } else {
        constexpr std::size_t shared = kernels::tc_attention_shared_bytes<T>();
        static const bool configured = [] {
          VISOPT_CUDA_CHECK(cudaFuncSetAttribute(kernels::attention_tensor_core_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 static_cast<int>(shared)));
          return true;
        }();
        (void)configured;
        const dim3 grid(static_cast<unsigned>((l + kernels::tc_attention_queries - 1) / kernels::tc_attention_queries), bh);
        kernels::attention_tensor_core_kernel<T><<<grid, kernels::tc_attention_warps * 32, shared, stream()>>>(
            in<T>(qkv), out<T>(y), static_cast<int>(l), heads, scale);
      }
    });
    return y;
  }

  /// images [N,C,H,W] -> tokens [N, 1 + (H/p)(W/p), D]
  Tensor patch_embed(const PatchEmbed& e, const Tensor& x) {
    const int p = e.patch;
    const auto n = x.dim(0), c = x.dim(1), grid_h = x.dim(2) / p, grid_w = x.dim(3) / p, grid = grid_h * grid_w;
    const auto d = e.projection->out_features();
    Tensor patches = context_.allocate({n, grid, c * p * p}, dtype);
    launch("patchify", [&](auto tag) {
      using T = decltype(tag);
      kernels::patchify_kernel<T><<<dim3(static_cast<unsigned>(grid), static_cast<unsigned>(n)), 256, 0, stream()>>>(
          in<T>(x), strides4(x), static_cast<int>(c), static_cast<int>(grid_w), p, out<T>(patches));
    });
    Tensor projected = linear(e.projection, patches);
    const auto prefix = e.prefix_tokens.dim(0);
    Tensor tokens = context_.allocate({n, grid + prefix, d}, dtype);
    launch("assemble_tokens", [&](auto tag) {
      using T = decltype(tag);
      kernels::assemble_tokens_kernel<T><<<dim3(static_cast<unsigned>(grid + prefix), static_cast<unsigned>(n)), 256, 0, stream()>>>(
          in<T>(projected), e.prefix_tokens.template data_as<float>(), static_cast<int>(prefix), e.position.template data_as<float>(),
          out<T>(tokens), static_cast<int>(d));
    });
    return tokens;
  }

  /// x [B, L, D] -> [B, D], the token at `index`.
  Tensor select_token(const Tensor& x, std::int64_t index) {
    const auto b = x.dim(0), l = x.dim(1), d = x.dim(2);
    Tensor y = context_.allocate({b, d}, dtype);
    const std::size_t row = static_cast<std::size_t>(d) * dtype_size(dtype);
    VISOPT_CUDA_CHECK(cudaMemcpy2DAsync(y.data(), row, static_cast<char*>(x.data()) + index * static_cast<std::int64_t>(row),
                                        static_cast<std::size_t>(l) * row, row, static_cast<std::size_t>(b), cudaMemcpyDeviceToDevice,
                                        stream()));
    return y;
  }

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
  int graphs_captured() const { return graphs_.captured(); }

 private:
  int device() const { return context_.device().index; }
  /// Half-precision attention runs on tensor cores where the GPU has sm_80's mma.sync (prepare_attention
  /// checked that the program holds such code); fp32 levels and older GPUs use the CUDA-core kernel.
  bool uses_tensor_core_attention() const {
    return dtype != DType::f32 && architecture_of(context_.device()) >= kernels::tc_attention_architecture;
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
  Tensor like(const Tensor& x) { return context_.allocate(x.shape(), dtype, x.view().format()); }
  template <class T> static const T* in(const Tensor& t) { return static_cast<const T*>(t.data()); }
  template <class T> static T* out(const Tensor& t) { return static_cast<T*>(t.data()); }
  static kernels::Strides4 strides4(const Tensor& t) { return {t.view().stride(0), t.view().stride(1), t.view().stride(2), t.view().stride(3)}; }

  template <class Launch>
  void launch(const char* name, Launch&& body) {
    kernels::dispatch_dtype(dtype, body);
    VISOPT_CUDA_CHECK_LAUNCH(name);
  }

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
    Tensor x = context_.allocate(staged.shape(), dtype, image_format);
    launch("convert_images", [&](auto tag) {
      using T = decltype(tag);
      const long long spatial = staged.dim(2) * staged.dim(3);
      kernels::convert_images_kernel<T><<<dim3(kernels::blocks_for(spatial), static_cast<unsigned>(staged.dim(0))), 256, 0, stream()>>>(
          staged.data_as<float>(), out<T>(x), static_cast<int>(staged.dim(1)), spatial, nhwc);
    });
    return x;
  }

  /// Logits in f32 on the device.
  Tensor to_float(const Tensor& logits) {
    if (dtype == DType::f32) return logits;
    Tensor y = context_.allocate(logits.shape(), DType::f32);
    const long long n = logits.numel();
    launch("to_float", [&](auto tag) {
      using T = decltype(tag);
      kernels::to_float_kernel<T><<<kernels::blocks_for(n), 256, 0, stream()>>>(in<T>(logits), y.data_as<float>(), n);
    });
    return y;
  }

  /// Copies device f32 logits out to the caller's side (host, or a new device tensor) and waits.
  Tensor finish(const Tensor& logits, Device where) {
    Tensor result = where.is_cpu() ? Tensor::empty(logits.shape()) : context_.results().allocate(logits.shape(), DType::f32);
    VISOPT_CUDA_CHECK(cudaMemcpyAsync(result.data(), logits.data(), logits.nbytes(),
                                      where.is_cpu() ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice, stream()));
    VISOPT_CUDA_CHECK(cudaStreamSynchronize(stream()));
    return result;
  }

  friend class GraphCache;

  Context context_;
  bool strict_ = false;
  GraphCache graphs_;
  std::vector<Conv> convolutions_;  // for complete_report(): which run fused
  int attention_layers_ = 0;        // for complete_report()
  std::string graph_fallback_;                              // why capture failed, once it has
};

}  // namespace visopt::backend::cuda

template <class P>
struct visopt::backend::executor_for<visopt::backend::Cuda, P> {
  using type = visopt::backend::cuda::Executor<P>;
};
