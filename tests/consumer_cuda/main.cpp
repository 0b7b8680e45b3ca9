// A user's plain C++ program on visopt's CUDA backend: ResNet-50 and ViT-B/16 compiled at O3 from the
// oracle's fixtures and checked against PyTorch's logits (CONVENTIONS.md's fp16 bounds). No CUDA header is
// included here and nvcc compiles none of this file: the engines come from visopt_add_cuda_engines().
//
//   consumer_cuda FIXTURE_DIR [--expect-architecture-refusal]
// With --expect-architecture-refusal (a build for sm_75 only, tests/consumer_subdirectory), on a GPU of sm_80
// or newer: ResNet-50 must still match (its kernels run from PTX, and the report says so), and ViT-B/16 must
// be refused by compile() with an error naming the architecture to build for. Exit 77: no GPU here.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include <visopt/visopt.hpp>

namespace {

struct Agreement {
  double relative_error = 0, cosine = 0, top1 = 0;
};

Agreement compare(const visopt::Tensor& y, const visopt::Tensor& ref) {
  visopt::require(y.shape() == ref.shape(), "consumer: logits ", y.shape(), " against ", ref.shape());
  const float* a = y.data_as<float>();
  const float* b = ref.data_as<float>();
  double max_diff = 0, max_ref = 0, dot = 0, na = 0, nb = 0;
  for (std::int64_t i = 0; i < y.numel(); ++i) {
    max_diff = std::max(max_diff, std::abs(double(a[i]) - b[i]));
    max_ref = std::max(max_ref, std::abs(double(b[i])));
    dot += double(a[i]) * b[i];
    na += double(a[i]) * a[i];
    nb += double(b[i]) * b[i];
  }
  const std::int64_t rows = y.dim(0), classes = y.dim(1);
  int agree = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* p = a + r * classes;
    const float* q = b + r * classes;
    agree += std::max_element(p, p + classes) - p == std::max_element(q, q + classes) - q ? 1 : 0;
  }
  return {max_diff / max_ref, dot / std::sqrt(na * nb), double(agree) / double(rows)};
}

/// Runs one fixture at O3 on the GPU; true when it matches the oracle within the fp16 bounds.
template <class Build>
bool check(const std::filesystem::path& dir, const std::string& fixture, Build build, bool expect_jit) {
  const auto weights = visopt::io::SafeTensors::open(dir / (fixture + ".weights.safetensors"));
  const auto io = visopt::io::SafeTensors::open(dir / (fixture + ".io.safetensors"));
  const visopt::Tensor input = io.load("input"), expected = io.load("logits");
  auto engine = visopt::compile<visopt::O3, visopt::backend::Cuda>(build(weights), {.max_batch = static_cast<int>(input.dim(0))});
  const Agreement a = compare(engine.run(input), expected);
  const bool ok = a.relative_error <= 5e-2 && a.cosine >= 0.999 && a.top1 >= 0.99;
  std::printf("consumer: %s O3 on %s: r=%.4g cosine=%.6f top1=%.0f%% -> %s\n", fixture.c_str(), engine.report().device.c_str(),
              a.relative_error, a.cosine, 100 * a.top1, ok ? "ok" : "OUTSIDE the fp16 bounds");
  const bool native = engine.report().has("native_kernels");
  if (native == expect_jit) {
    std::printf("consumer: the report says native_kernels %s, expected %s\n", native ? "applied" : "skipped",
                expect_jit ? "skipped (a build for an older architecture)" : "applied");
    return false;
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: consumer_cuda FIXTURE_DIR [--expect-architecture-refusal]\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const bool expect_refusal = argc > 2 && std::strcmp(argv[2], "--expect-architecture-refusal") == 0;
  if (visopt::backend::cuda::visible_gpus() == 0) {
    std::printf("skipped: no usable GPU here\n");
    return 77;
  }
  try {
    const visopt::backend::cuda::DeviceInfo gpu = visopt::backend::cuda::require_device(0);
    const bool refuses = expect_refusal && gpu.major >= 8;  // below sm_80 the fp16 attention runs on CUDA cores
    bool ok = check(dir, "resnet50_224", [](const auto& w) { return visopt::models::resnet50(w); }, refuses);
    if (!refuses) {
      ok = check(dir, "vit_b16_224", [](const auto& w) { return visopt::models::vit_b_16(w); }, false) && ok;
    } else {
      try {
        const auto weights = visopt::io::SafeTensors::open(dir / "vit_b16_224.weights.safetensors");
        (void)visopt::compile<visopt::O3, visopt::backend::Cuda>(visopt::models::vit_b_16(weights), {.max_batch = 1});
        std::printf("consumer: vit_b_16 O3 compiled from sm_75 code on sm_%d%d: it should have been refused\n", gpu.major, gpu.minor);
        ok = false;
      } catch (const visopt::Error& e) {
        const std::string message = e.what();
        const bool clear = message.find("sm_80") != std::string::npos &&
                           message.find("CMAKE_CUDA_ARCHITECTURES=" + std::to_string(gpu.major * 10 + gpu.minor)) != std::string::npos;
        std::printf("consumer: vit_b_16 O3 refused: %s -> %s\n", message.c_str(), clear ? "ok" : "UNCLEAR");
        ok = ok && clear;
      }
    }
    std::printf("consumer: %s\n", ok ? "passed" : "FAILED");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
  }
}
