#pragma once
// The reference backend's executor: prepares parameters (a plain fp32 copy) and runs each operation
// with the Eigen kernels in kernels/, on host memory, NCHW. It is the oracle the other backends are
// checked against inside the library, so it favours clarity over speed.

#include <type_traits>

#include "../../nn/epilogue.hpp"
#include "../../nn/params.hpp"
#include "../../policy/policy.hpp"
#include "../../services/memory_pool.hpp"
#include "../../services/options.hpp"
#include "../../services/report.hpp"
#include "../backends.hpp"
#include "kernels.hpp"

#include <omp.h>

namespace visopt::backend::reference {

template <PolicyBundle P>
class Executor {
  static_assert(implementable<Reference, P>());  // a bundle it cannot run fails with the rule that says why

 public:
  struct Conv {
    Tensor weight, bias;
    nn::Conv2dGeometry geometry;
    nn::ConvEpilogue epilogue;
  };
  struct BatchNorm {
    nn::BatchNormParams params;
  };
  struct Linear {
    Tensor weight, bias;
    nn::LinearEpilogue epilogue;
  };
  struct LayerNorm {
    nn::LayerNormParams params;
  };
  struct PatchEmbed {
    Linear projection;  // [D, C*p*p]
    Tensor prefix_tokens, position;  // [T, D] class (and distillation) token, [L, D]
    int patch;
  };

  Executor(const runtime::CompileOptions& options, runtime::Report& report) : pool_(Device::cpu()) {
    if (options.num_threads > 0) omp_set_num_threads(options.num_threads);
    report.device = "cpu (" + std::to_string(omp_get_max_threads()) + " threads)";
    report.compute_precision = "fp32";
    if constexpr (std::is_same_v<typename P::precision, precision::tf32>) {
      report.skipped("tf32", "the reference backend computes tf32 as full fp32");
    }
    if constexpr (std::is_same_v<typename P::tuning, tuning::measured>) {
      report.skipped("measured_tuning", "the reference backend has one algorithm per operation");
    }
  }

  // ---- compile(): prepare parameters ----
  // Each keeps the fp32 tensors it is given (shared with the compiled model's copy, not copied again).
  Conv prepare_conv(const nn::Conv2dParams& p, nn::ConvEpilogue epilogue) {
    ++convolutions_;
    held_.add(p.weight, p.bias);
    return {p.weight, p.bias, p.geometry, epilogue};
  }
  BatchNorm prepare_batch_norm(const nn::BatchNormParams& p) {
    held_.add(p.weight, p.bias, p.running_mean, p.running_var);
    return {p};
  }
  Linear prepare_linear(const nn::LinearParams& p, nn::LinearEpilogue epilogue) {
    ++matmuls_;
    held_.add(p.weight, p.bias);
    return {p.weight, p.bias, epilogue};
  }
  LayerNorm prepare_layer_norm(const nn::LayerNormParams& p) {
    held_.add(p.weight, p.bias);
    return {p};
  }
  PatchEmbed prepare_patch_embed(const nn::PatchEmbedParams& p) {
    const auto d = p.weight.dim(0);
    held_.add(p.weight, p.bias, p.prefix_tokens, p.position);
    return {{p.weight.reshaped({d, p.weight.numel() / d}), p.bias, {}}, p.prefix_tokens, p.position, p.patch};
  }

  // ---- run(): operations; each returns a fresh activation from the pool ----
  /// Copies host images into the pool, runs `forward` and returns its logits as a new host tensor.
  template <class Forward>
  Tensor run(const TensorView& images, Forward&& forward) {
    require(images.device().is_cpu(), "reference: images are on ", images.device().to_string(),
            "; the reference backend takes host tensors");
    Tensor x = pool_.allocate(images.shape(), DType::f32);
    std::memcpy(x.data(), images.data(), images.nbytes());
    return forward(x).clone();
  }
  /// The lifecycle's plan stage: the reference executor chooses nothing, so one forward only fills the pool.
  template <class Forward>
  void plan(const TensorView& images, Forward&& forward) {
    (void)run(images, forward);
  }

  Tensor conv2d(const Conv& c, const Tensor& x, const Tensor* residual = nullptr) {
    require(residual == nullptr || c.epilogue.residual, "reference::conv2d: a residual was given to a conv prepared without one");
    Tensor y = pool_.allocate(nn::conv2d_output_shape(x.shape(), c.weight.shape(), c.geometry, "reference::conv2d"), DType::f32);
    reference::conv2d(x, c.weight, bias_of(c.bias), c.geometry, y, residual ? f32(*residual) : nullptr,
                      c.epilogue.activation);
    return y;
  }

  Tensor batch_norm(const BatchNorm& b, const Tensor& x) {
    Tensor y = pool_.allocate(x.shape(), DType::f32);
    const nn::BatchNormParams& p = b.params;
    reference::batch_norm(x, f32(p.running_mean), f32(p.running_var), f32(p.weight), f32(p.bias), p.eps, y);
    return y;
  }

  Tensor activation(const Tensor& x, nn::Activation act) {
    Tensor y = pool_.allocate(x.shape(), DType::f32);
    reference::activation(x, y, act);
    return y;
  }

  Tensor add(const Tensor& a, const Tensor& b) {
    Tensor y = pool_.allocate(a.shape(), DType::f32);
    reference::add(a, b, y);
    return y;
  }

  Tensor max_pool2d(const Tensor& x, int kernel, int stride, int padding) {
    Tensor y = pool_.allocate(nn::pool2d_output_shape(x.shape(), kernel, stride, padding, "reference::max_pool2d"), DType::f32);
    reference::max_pool2d(x, y, kernel, stride, padding);
    return y;
  }

  /// [N,C,H,W] -> [N,C]
  Tensor global_avg_pool(const Tensor& x) {
    Tensor y = pool_.allocate({x.dim(0), x.dim(1), 1, 1}, DType::f32);
    reference::adaptive_avg_pool2d(x, y);
    return y.reshaped({x.dim(0), x.dim(1)});
  }

  /// x [..., K] -> [..., N]
  Tensor linear(const Linear& l, const Tensor& x, const Tensor* residual = nullptr) {
    require(residual == nullptr || l.epilogue.residual, "reference::linear: a residual was given to a linear prepared without one");
    Shape out = x.shape();
    out[out.rank() - 1] = l.weight.dim(0);
    Tensor y = pool_.allocate(out, DType::f32);
    reference::linear(x, l.weight, bias_of(l.bias), y, residual ? f32(*residual) : nullptr, l.epilogue.activation);
    return y;
  }

  Tensor layer_norm(const LayerNorm& n, const Tensor& x) {
    Tensor y = pool_.allocate(x.shape(), DType::f32);
    const auto d = x.dim(x.rank() - 1);
    const nn::LayerNormParams& p = n.params;
    reference::layer_norm(x.view().reshaped({x.numel() / d, d}), f32(p.weight), f32(p.bias), p.eps,
                          y.view().reshaped({x.numel() / d, d}));
    return y;
  }

  /// qkv [B, L, 3D] -> [B, L, D]
  Tensor attention(const Tensor& qkv, int heads) {
    Tensor y = pool_.allocate({qkv.dim(0), qkv.dim(1), qkv.dim(2) / 3}, DType::f32);
    reference::self_attention(qkv, heads, y);
    return y;
  }

  /// Nothing to prepare: attention has no parameters here.
  void prepare_attention(int /*heads*/) {}
  /// x [B, L, K] -> attention over the heads of its qkv projection [B, L, 3D] -> [B, L, D].
  Tensor self_attention(const Linear& qkv, const Tensor& x, int heads) { return attention(linear(qkv, x), heads); }

  /// images [N,C,H,W] -> tokens [N, T + (H/p)(W/p), D]: the T prefix tokens first, position embedding added.
  Tensor patch_embed(const PatchEmbed& e, const Tensor& x) {
    const auto n = x.dim(0), grid = (x.dim(2) / e.patch) * (x.dim(3) / e.patch), d = e.projection.weight.dim(0);
    const auto prefix = e.prefix_tokens.dim(0);
    Tensor patches = pool_.allocate({n, grid, e.projection.weight.dim(1)}, DType::f32);
    reference::patchify(x, e.patch, patches);
    Tensor projected = linear(e.projection, patches);
    Tensor tokens = pool_.allocate({n, grid + prefix, d}, DType::f32);
    const float* first = f32(e.prefix_tokens);
    const float* pos = f32(e.position);
    const float* src = f32(projected);
    float* dst = f32(tokens);
    for (std::int64_t b = 0; b < n; ++b) {
      for (std::int64_t t = 0; t < grid + prefix; ++t) {
        const float* from = t < prefix ? first + t * d : src + (b * grid + t - prefix) * d;
        float* to = dst + (b * (grid + prefix) + t) * d;
        for (std::int64_t i = 0; i < d; ++i) to[i] = from[i] + pos[t * d + i];
      }
    }
    return tokens;
  }

  /// x [B, L, D] -> [B, D], the token at `index`.
  Tensor select_token(const Tensor& x, std::int64_t index) {
    const auto b = x.dim(0), l = x.dim(1), d = x.dim(2);
    Tensor y = pool_.allocate({b, d}, DType::f32);
    for (std::int64_t i = 0; i < b; ++i) {
      std::memcpy(f32(y) + i * d, f32(x) + (i * l + index) * d, static_cast<std::size_t>(d) * sizeof(float));
    }
    return y;
  }

  // ---- saved plans: nothing is tuned here, so a plan holds no algorithms ----
  static std::string identity() { return "cpu reference"; }
  void use_saved_algorithms(const nlohmann::json& /*entries*/, runtime::Report& /*report*/) {}
  static nlohmann::json saved_algorithms() { return nlohmann::json::object(); }

  /// Called by Engine after planning: the one algorithm each kind of operation has here.
  void complete_report(runtime::Report& report) const {
    if (convolutions_ > 0) report.algorithms["convolution: im2col + Eigen GEMM"] = convolutions_;
    if (matmuls_ > 0) report.algorithms["matmul: Eigen GEMM"] = matmuls_;
  }

  /// Activation memory reserved so far (for report()).
  /// Host memory for a caller to stage input batches in (Engine::input_buffer): plain memory on the CPU.
  static Tensor host_buffer(const Shape& shape) { return Tensor::empty(shape); }
  std::size_t activation_bytes() const { return pool_.bytes_reserved(); }
  /// Bytes of the parameters the engine runs with (for report()).
  std::size_t weight_bytes() const { return held_.bytes; }
  /// Fresh allocations so far: constant once every batch size has been seen.
  std::size_t fresh_allocations() const { return pool_.fresh_allocations(); }

 private:
  static float* f32(const Tensor& t) { return t.data_as<float>(); }
  static const float* bias_of(const Tensor& bias) { return bias.defined() ? f32(bias) : nullptr; }

  runtime::ActivationPool pool_;
  int convolutions_ = 0, matmuls_ = 0;  // prepared, for complete_report()
  nn::HeldFp32Parameters held_;
};

}  // namespace visopt::backend::reference

template <class P>
struct visopt::backend::executor_for<visopt::backend::Reference, P> {
  using type = visopt::backend::reference::Executor<P>;
};
