#pragma once
// visopt::calibrate(model, images): the activation ranges a quantized level (O4) needs, measured by
// running calibration images through the model in fp32 with fused epilogues (so that each range is
// that of a tensor the int8 engine stores: a convolution's output after its residual add and ReLU).
// It runs on backend B's executor wrapped in one that observes what every convolution, linear,
// LayerNorm and attention writes, and reduces each tensor to one clipping value (services/calibration.hpp).
//
//   auto calibration = visopt::calibrate(model, images);            // images: [N,3,H,W] f32, N >= 1
//   calibration.save("resnet50.calibration.json");
//   auto engine = visopt::compile<visopt::O4, visopt::backend::OneDnn>(model, {.calibration = calibration});

#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../backend/backends.hpp"
#include "../models/registry.hpp"
#include "../services/calibration.hpp"
#include "../services/options.hpp"
#include "../services/report.hpp"
#include "engine.hpp"

namespace visopt {

using runtime::Calibration;
using runtime::CalibrationMethod;
using runtime::CalibrationOptions;

namespace runtime {

/// The level calibration measures at: fp32, fused epilogues, eager, nothing timed.
struct CalibrationLevel : Policy<precision::fp32, layout::nchw, fusion::epilogue, execution::eager, tuning::heuristic> {
  static constexpr std::string_view name = "calibration";
};

/// Backend `Base`'s executor, observing the range of each tensor an int8 layer reads or writes. The
/// network is built on it like on any executor; the observed handles carry the tensor's name.
template <class Base>
class CalibratingExecutor : public Base {
 public:
  struct Conv : Base::Conv {
    std::size_t tensor = 0;
  };
  struct Linear : Base::Linear {
    std::size_t tensor = 0, attention = 0;
  };
  struct LayerNorm : Base::LayerNorm {
    std::size_t tensor = 0;
  };

  using Base::Base;

  Conv prepare_conv(const nn::Conv2dParams& p, nn::ConvEpilogue epilogue) {
    return {Base::prepare_conv(p, epilogue), name("conv", convs_++, p.weight)};
  }
  Linear prepare_linear(const nn::LinearParams& p, nn::LinearEpilogue epilogue) {
    const std::size_t index = linears_++;
    return {Base::prepare_linear(p, epilogue), name("linear", index, p.weight), name("attention", index, Tensor())};
  }
  LayerNorm prepare_layer_norm(const nn::LayerNormParams& p) {
    return {Base::prepare_layer_norm(p), name("layer_norm", layer_norms_++, p.weight)};
  }

  Tensor conv2d(const Conv& c, const Tensor& x, const Tensor* residual = nullptr) {
    return observed(c.tensor, Base::conv2d(c, x, residual));
  }
  Tensor linear(const Linear& l, const Tensor& x, const Tensor* residual = nullptr) {
    return observed(l.tensor, Base::linear(l, x, residual));
  }
  Tensor layer_norm(const LayerNorm& n, const Tensor& x) { return observed(n.tensor, Base::layer_norm(n, x)); }
  Tensor self_attention(const Linear& qkv, const Tensor& x, int heads) {
    return observed(qkv.attention, Base::self_attention(qkv, x, heads));
  }

  /// Every observed tensor's range, clipped as `options` asks.
  Calibration calibration(const std::string& model, int images, const CalibrationOptions& options) const {
    Calibration c;
    c.model = model;
    c.method = options.method == CalibrationMethod::max          ? std::string("max")
               : options.method == CalibrationMethod::percentile ? visopt::detail::concat("percentile ", options.percentile)
                                                                 : std::string("least squared error");
    c.images = images;
    for (std::size_t i = 0; i < names_.size(); ++i) {
      const RangeObserver& r = observers_[i];
      if (r.empty()) continue;  // prepared but never run (the attention range of a linear that is not a qkv)
      float clip = options.method == CalibrationMethod::max          ? r.amax()
                   : options.method == CalibrationMethod::percentile ? r.percentile(options.percentile)
                                                                     : r.least_squared_error_clip(r.non_negative() ? 255 : 127);
      if (!(clip > 0.0f)) clip = r.amax() > 0.0f ? r.amax() : 1.0f;  // an all-zero tensor: any step holds it
      c.ranges.push_back({names_[i].first, names_[i].second, clip, r.non_negative(), r.amax() > 0.0f ? r.amax() : clip});
    }
    return c;
  }

 private:
  std::size_t name(const char* kind, std::size_t index, const Tensor& weight) {
    names_.emplace_back(Calibration::tensor_name(kind, index), Calibration::weight_shape(weight));
    observers_.emplace_back();
    return names_.size() - 1;
  }

  /// Records y's values: f32 and dense at the calibration level, in whatever order the backend keeps them.
  Tensor observed(std::size_t tensor, Tensor y) {
    require(y.dtype() == DType::f32, "calibrate: ", names_[tensor].first, " is ", dtype_name(y.dtype()),
            ", expected f32 at the calibration level (internal error)");
    observers_[tensor].observe(y.data_as<float>(), static_cast<std::size_t>(y.numel()));
    return y;
  }

  std::vector<std::pair<std::string, std::string>> names_;  // tensor, weight shape
  std::vector<RangeObserver> observers_;
  std::size_t convs_ = 0, linears_ = 0, layer_norms_ = 0;
};

/// The backend calibration runs on when none is named: oneDNN where it was built, else the reference.
using DefaultCalibrationBackend = std::conditional_t<backend::OneDnn::available, backend::OneDnn, backend::Reference>;

}  // namespace runtime

/// Measures the activation ranges of `model` on calibration `images` ([N,3,H,W] f32 on the host, N >= 1,
/// preprocessed as for inference; they should differ from the images the engine is evaluated on), in
/// batches of options.batch, on backend B in fp32. The result is what CompileOptions::calibration takes.
template <backend::Backend B = runtime::DefaultCalibrationBackend, models::RegisteredModel Model>
Calibration calibrate(Model model, const TensorView& images, CalibrationOptions options = {}) {
  static_assert(B::available, "visopt::calibrate: this backend was not built");
  static_assert(!std::is_same_v<B, backend::Cuda>, "visopt::calibrate runs on a CPU backend (backend::OneDnn or "
                                                   "backend::Reference): the ranges are those of the fp32 model");
  using Level = runtime::CalibrationLevel;
  using Traits = models::ModelTraits<Model>;
  using Exec = runtime::CalibratingExecutor<typename backend::executor_for<B, Level>::type>;
  require(options.batch >= 1, "visopt::calibrate: CalibrationOptions::batch is ", options.batch, ", must be >= 1");
  require(options.method == CalibrationMethod::max || (options.percentile >= 50.0 && options.percentile <= 100.0),
          "visopt::calibrate: CalibrationOptions::percentile is ", options.percentile, ", must be within 50..100");
  require(images.device().is_cpu() && images.dtype() == DType::f32 && images.rank() == 4 && images.dim(0) >= 1 &&
              images.is_contiguous(),
          "visopt::calibrate: images must be host f32 [N,3,H,W] with N >= 1, contiguous; got ",
          dtype_name(images.dtype()), " ", images.shape(), " on ", images.device().to_string());
  const int image_size = Traits::image_size(model, static_cast<int>(images.dim(2)), "visopt::calibrate: ");
  require(images.dim(2) == image_size && images.dim(3) == image_size, "visopt::calibrate: images are ", images.dim(2),
          "x", images.dim(3), ", the model takes ", image_size, "x", image_size);

  runtime::Report report;
  runtime::CompileOptions compile_options;
  compile_options.max_batch = options.batch;
  compile_options.num_threads = options.num_threads;
  compile_options = runtime::resolve(std::move(compile_options), nullptr);
  Traits::template run_passes<Level>(model, &report);
  Exec executor(compile_options, report);
  const typename Traits::template Network<Level, Exec> network(executor, model);

  const std::int64_t count = images.dim(0), per_image = images.numel() / count;
  for (std::int64_t first = 0; first < count; first += options.batch) {
    const std::int64_t batch = std::min<std::int64_t>(options.batch, count - first);
    const TensorView slice(static_cast<float*>(images.data()) + first * per_image, DType::f32,
                           {batch, images.dim(1), images.dim(2), images.dim(3)});
    network.check_input(slice, options.batch);
    (void)executor.run(slice, [&](const Tensor& placed) { return network.forward(executor, placed); });
  }
  return executor.calibration(model.name, static_cast<int>(count), options);
}

}  // namespace visopt
