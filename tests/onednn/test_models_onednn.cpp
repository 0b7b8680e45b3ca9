// Every fixture model × level O0–O3 on the oneDNN backend against the PyTorch oracle, with the
// tolerances of CONVENTIONS.md by what the engine computes in (fp32, or bf16 where the CPU has it;
// bf16 checks say so and fall back to the fp32 check where it does not).

#include <cstdio>
#include <string>
#include <vector>

#include <visopt/visopt.hpp>

#include "catch.hpp"
#include "oracle.hpp"

using namespace visopt;
using visopt::testing::compare_logits;
using visopt::testing::fixture;

namespace {

/// "image 7: oracle top-1 412 vs 97 (oracle margin 0.021)" for each image whose top-1 differs.
std::string top1_disagreements(const Tensor& y, const Tensor& ref) {
  std::string out;
  const std::int64_t rows = ref.dim(0), cols = ref.dim(1);
  const float* p = y.data_as<float>();
  const float* q = ref.data_as<float>();
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* a = p + r * cols;
    const float* b = q + r * cols;
    const auto ya = std::max_element(a, a + cols) - a, yb = std::max_element(b, b + cols) - b;
    if (ya == yb) continue;
    float second = -1e30f;
    for (std::int64_t c = 0; c < cols; ++c) {
      if (c != yb) second = std::max(second, b[c]);
    }
    out += "image " + std::to_string(r) + ": top-1 " + std::to_string(ya) + " vs oracle " + std::to_string(yb) +
           " (oracle margin " + std::to_string(b[yb] - second) + ", ours " + std::to_string(a[ya] - a[yb]) + "); ";
  }
  return out;
}

struct Fixture {
  std::string name;
  Tensor input, expected;
  int image_size;
  visopt::testing::Tolerance bf16_bound;  // visopt::testing::bf16_tolerance_of of the fixture
};

Fixture load_fixture(const std::string& name, const std::string& io_name, int image_size) {
  const auto io = io::SafeTensors::open(fixture(io_name + ".io.safetensors"));
  Fixture f{name, io.load("input"), io.load("logits"), image_size, visopt::testing::bf16_tolerance_of(io.metadata())};
  REQUIRE(f.input.dim(0) >= 32);
  return f;
}

/// One level against the oracle: fp32's bound, or the fixture's bf16 bound where the engine computes in bf16.
template <class Level, class Model>
void check_level(const Fixture& f, const char* level, const Model& model) {
  auto engine = compile<Level, backend::OneDnn>(model, {.max_batch = static_cast<int>(f.input.dim(0)), .image_size = f.image_size});
  const Tensor logits = engine.run(f.input);
  const bool bf16 = engine.executor().compute_type() == DType::bf16;
  const auto a = compare_logits(logits, f.expected);
  std::printf("onednn %-18s %-9s r=%.3g cosine=%.7f top1=%.4f (%s)\n", f.name.c_str(), level, a.relative_error, a.cosine,
              a.top1, engine.report().compute_precision.c_str());
  INFO(f.name << " " << level << " computing in " << engine.report().compute_precision << ": r=" << a.relative_error
              << " cosine=" << a.cosine << " top1=" << a.top1 << " " << top1_disagreements(logits, f.expected));
  if constexpr (precision::is_reduced_v<typename Level::precision>) {
    if (!bf16) {
      // Catch2 v2 has no SKIP: say loudly that bf16 went untested here, then check the fp32 fallback.
      WARN("bf16 not tested on this CPU (" << backend::onednn::cpu_features().bf16_missing_reason << "); " << level
                                           << " fell back to fp32 and is checked as fp32");
    }
  }
  INFO("bf16 bound on this fixture: r <= " << f.bf16_bound.relative_error << ", cosine >= " << f.bf16_bound.min_cosine);
  visopt::testing::check_agreement(a, bf16 ? f.bf16_bound : visopt::testing::fp32_tolerance);
}

/// O0 and O1, and the O2/O3 machinery (channels_last, static plan) with fp32 arithmetic: all fp32-exact.
template <class Model>
void check_fp32_levels(const Fixture& f, const Model& model) {
  check_level<O0>(f, "O0", model);
  check_level<O1>(f, "O1", model);
  check_level<O2::with<precision::fp32>>(f, "O2(fp32)", model);
  check_level<O3::with<precision::fp32>>(f, "O3(fp32)", model);
}

/// O2 and O3 as they are: bf16 where the CPU has it.
template <class Model>
void check_half_levels(const Fixture& f, const Model& model) {
  check_level<O2>(f, "O2", model);
  check_level<O3>(f, "O3", model);
}

/// How far the fp32 engine's logits move when only the input images are rounded to bf16: a fixture
/// whose network amplifies that alone past the bf16 tolerance cannot resolve bf16 arithmetic.
template <class Model>
void print_bf16_sensitivity(const Fixture& f, const Model& model) {
  auto engine = compile<O1, backend::OneDnn>(model, {.max_batch = static_cast<int>(f.input.dim(0)), .image_size = f.image_size});
  const auto a = compare_logits(engine.run(f.input.to(DType::bf16).to(DType::f32)), f.expected);
  std::printf("onednn %-18s fp32 on bf16-rounded input only: r=%.3g cosine=%.7f top1=%.4f (the fixture's own bf16 sensitivity)\n",
              f.name.c_str(), a.relative_error, a.cosine, a.top1);
}

Fixture resnet_fixture(const std::string& name) {
  const auto io = io::SafeTensors::open(fixture(name + ".io.safetensors"));
  return load_fixture(name, name, static_cast<int>(io.info("input").shape[2]));
}
models::ResNet resnet_model(const std::string& name, int depth) {
  return models::resnet(depth, io::SafeTensors::open(fixture(name + ".weights.safetensors")));
}

/// Every level of a ResNet fixture, fp32 and bf16.
void check_resnet(const std::string& name, int depth) {
  const auto f = resnet_fixture(name);
  const auto model = resnet_model(name, depth);
  check_fp32_levels(f, model);
  check_half_levels(f, model);
}

void check_vit(const std::string& file, models::ViTSize size, int patch, const std::string& io_name) {
  const auto model = models::vit(size, patch, io::SafeTensors::open(fixture(file)));
  const Fixture f = load_fixture(file.substr(0, file.find(".safetensors")), io_name, 0);
  REQUIRE(model.image_size == f.input.dim(2));
  check_fp32_levels(f, model);
  check_half_levels(f, model);
}

}  // namespace

// Each ResNet prints, before its bf16 levels, how far rounding only the input images to bf16 moves the
// fp32 logits: the share of the bf16 error the fixture itself makes inevitable (CONVENTIONS'
// tolerances assume a fixture that does not amplify it; an earlier recipe, with unit gains at the end
// of residual branches, did: PyTorch's own bf16 autocast got r=0.62, top-1 0.31 on resnet50_64).
TEST_CASE("onednn: resnet18 at 64x64 matches PyTorch at O0, O1 and fp32 O2/O3", "[onednn][resnet]") {
  check_fp32_levels(resnet_fixture("resnet18_64"), resnet_model("resnet18_64", 18));
}
TEST_CASE("onednn: resnet18 at 64x64 in bf16 (O2, O3)", "[onednn][resnet][bf16]") {
  const auto f = resnet_fixture("resnet18_64");
  const auto model = resnet_model("resnet18_64", 18);
  print_bf16_sensitivity(f, model);
  check_half_levels(f, model);
}
TEST_CASE("onednn: resnet50 at 64x64 matches PyTorch at O0, O1 and fp32 O2/O3", "[onednn][resnet]") {
  check_fp32_levels(resnet_fixture("resnet50_64"), resnet_model("resnet50_64", 50));
}
TEST_CASE("onednn: resnet50 at 64x64 in bf16 (O2, O3)", "[onednn][resnet][bf16]") {
  const auto f = resnet_fixture("resnet50_64");
  const auto model = resnet_model("resnet50_64", 50);
  print_bf16_sensitivity(f, model);
  check_half_levels(f, model);
}
TEST_CASE("onednn: resnet50 at 224x224 matches PyTorch at O0, O1 and fp32 O2/O3", "[onednn_slow][resnet]") {
  check_fp32_levels(resnet_fixture("resnet50_224"), resnet_model("resnet50_224", 50));
}
TEST_CASE("onednn: resnet50 at 224x224 in bf16 (O2, O3)", "[onednn_slow][resnet][bf16]") {
  const auto f = resnet_fixture("resnet50_224");
  const auto model = resnet_model("resnet50_224", 50);
  print_bf16_sensitivity(f, model);
  check_half_levels(f, model);
}

// The other depths: the same blocks in other counts, every level in one case each; the deeper ones
// go with the slow checks.
TEST_CASE("onednn: resnet34 at 64x64 matches PyTorch at O0-O3", "[onednn][resnet]") { check_resnet("resnet34_64", 34); }
TEST_CASE("onednn: resnet101 at 64x64 matches PyTorch at O0-O3", "[onednn_slow][resnet]") { check_resnet("resnet101_64", 101); }
TEST_CASE("onednn: resnet152 at 64x64 matches PyTorch at O0-O3", "[onednn_slow][resnet]") { check_resnet("resnet152_64", 152); }

TEST_CASE("onednn: vit_ti_16 at 64x64 matches PyTorch at O0-O3 (torchvision names)", "[onednn][vit]") {
  check_vit("vit_ti16_64.weights.safetensors", models::ViTSize::tiny, 16, "vit_ti16_64");
}
TEST_CASE("onednn: vit_ti_16 at 64x64 matches PyTorch at O0-O3 (timm names)", "[onednn][vit]") {
  check_vit("vit_ti16_64.timm.safetensors", models::ViTSize::tiny, 16, "vit_ti16_64");
}
TEST_CASE("onednn: vit_s_32 at 64x64 matches PyTorch at O0-O3", "[onednn][vit]") {
  check_vit("vit_s32_64.weights.safetensors", models::ViTSize::small, 32, "vit_s32_64");
}
TEST_CASE("onednn: vit_b_16 at 64x64 matches PyTorch at O0-O3", "[onednn][vit]") {
  check_vit("vit_b16_64.weights.safetensors", models::ViTSize::base, 16, "vit_b16_64");
}
TEST_CASE("onednn: vit_b_16 at 224x224 matches PyTorch at O0-O3", "[onednn_slow][vit]") {
  check_vit("vit_b16_224.weights.safetensors", models::ViTSize::base, 16, "vit_b16_224");
}
TEST_CASE("onednn: deit_ti_16_distilled at 64x64 matches PyTorch at O0-O3", "[onednn][vit][deit]") {
  const auto model = models::deit(models::ViTSize::tiny, 16, io::SafeTensors::open(fixture("deit_ti16_64.weights.safetensors")), true);
  const Fixture f = load_fixture("deit_ti16_64.weights", "deit_ti16_64", 0);
  REQUIRE(model.image_size == f.input.dim(2));
  check_fp32_levels(f, model);
  check_half_levels(f, model);
}
TEST_CASE("onednn: vit_l_16 at 64x64 matches PyTorch at O0-O3", "[onednn_slow][vit]") {
  check_vit("vit_l16_64.weights.safetensors", models::ViTSize::large, 16, "vit_l16_64");
}
