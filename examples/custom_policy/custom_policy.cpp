// custom_policy: a level of one's own. A level is a bundle of one policy per axis (precision, layout,
// fusion, execution, tuning); `with<>` replaces any of them. This program builds two bundles, compiles
// a ResNet-18 with each on the reference backend and checks them against O0.
//
// An impossible bundle does not compile. The reference backend keeps activations in NCHW, so
//
//   using ChannelsLast = visopt::O1::with<visopt::layout::nhwc>;
//   auto engine = visopt::compile<ChannelsLast, visopt::backend::Reference>(model);
//
// stops the compiler with (tests/compile_fail/custom_nhwc_reference.cpp checks the text):
//
//   error: static assertion failed: visopt: the reference backend keeps activations in NCHW; use
//   layout::nchw, or backend::OneDnn / backend::Cuda for channels_last

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <type_traits>

#include <visopt/visopt.hpp>

// O1 without TF32: its fusion and measured tuning, strict fp32 math on GPUs too.
using StrictO1 = visopt::O1::with<visopt::precision::fp32>;
// BatchNorm folded into the convolutions but nothing else fused, and no algorithm search.
using FoldOnly = visopt::O1::with<visopt::fusion::fold_bn, visopt::tuning::heuristic>;

// A bundle is its policies, not its name: the same axes reached from O0 are the same type.
static_assert(std::is_same_v<StrictO1, visopt::O0::with<visopt::fusion::epilogue, visopt::tuning::measured>>);
static_assert(visopt::PolicyBundle<FoldOnly> && FoldOnly::name == "custom");
// What a backend can run is known at compile time; this is the reference backend's answer.
static_assert(visopt::backend::Reference::supports<FoldOnly>);
static_assert(!visopt::backend::Reference::supports<visopt::O1::with<visopt::layout::nhwc>>);

namespace {

/// max |a - b| over two host f32 tensors of one shape.
float max_difference(const visopt::Tensor& a, const visopt::Tensor& b) {
  float d = 0.0f;
  for (std::int64_t i = 0; i < a.numel(); ++i) d = std::max(d, std::abs(a.data_as<float>()[i] - b.data_as<float>()[i]));
  return d;
}

template <class Level>
visopt::Tensor run(const visopt::models::ResNet& model, const visopt::Tensor& images) {
  auto engine = visopt::compile<Level, visopt::backend::Reference>(model, {.max_batch = 2, .image_size = 64});
  std::printf("%s\n\n", engine.report().text().c_str());
  return engine.run(images).clone();  // a copy: the engine may reuse its output's memory
}

}  // namespace

int main() {
  try {
    const auto model = visopt::models::resnet(18, visopt::models::RandomWeights{1});
    const visopt::Tensor images = visopt::Tensor::zeros({2, 3, 64, 64});
    for (std::int64_t i = 0; i < images.numel(); ++i) images.data_as<float>()[i] = std::sin(0.001f * static_cast<float>(i));

    const visopt::Tensor baseline = run<visopt::O0>(model, images);
    const float strict = max_difference(run<StrictO1>(model, images), baseline);
    const float fold_only = max_difference(run<FoldOnly>(model, images), baseline);
    std::printf("max |logit difference| from O0: StrictO1 %.3g, FoldOnly %.3g\n", strict, fold_only);
    if (strict > 1e-3f || fold_only > 1e-3f) {
      std::fprintf(stderr, "error: a custom bundle disagrees with O0\n");
      return 1;
    }
    std::printf("custom bundles agree with O0\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
