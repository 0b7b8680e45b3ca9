// Every model × level on the reference backend against the PyTorch oracle (fixtures made by
// tools/make_fixtures.py), and proof that the comparison can fail: one perturbed weight breaks it.

#include <cstring>

#include <visopt/visopt.hpp>

#include "catch.hpp"
#include "oracle.hpp"

using namespace visopt;
using visopt::testing::compare_logits;
using visopt::testing::fixture;

namespace {

struct Case {
  const char* fixture;
  bool vit;
  int depth_or_size;  // ResNet depth, or ViTSize as int
  int patch;
};

template <class Level, class Model>
Tensor run_level(const Model& model, const Tensor& input, int image_size) {
  auto engine = compile<Level, backend::Reference>(model, {.max_batch = static_cast<int>(input.dim(0)), .image_size = image_size, .warmup = 0});
  return engine.run(input);
}

template <class Model>
void check_levels(const Model& model, const io::SafeTensors& io, int image_size) {
  const Tensor input = io.load("input");
  const Tensor expected = io.load("logits");
  REQUIRE(input.dim(0) >= 32);
  const auto o0 = compare_logits(run_level<O0>(model, input, image_size), expected);
  INFO("O0: r=" << o0.relative_error << " top1=" << o0.top1);
  CHECK(o0.relative_error <= visopt::testing::fp32_tolerance.relative_error);
  CHECK(o0.top1 >= visopt::testing::fp32_tolerance.min_top1);
  const auto o1 = compare_logits(run_level<O1>(model, input, image_size), expected);
  INFO("O1: r=" << o1.relative_error << " top1=" << o1.top1);
  CHECK(o1.relative_error <= visopt::testing::fp32_tolerance.relative_error);
  CHECK(o1.top1 >= visopt::testing::fp32_tolerance.min_top1);
}

/// Rows [from, to) of a 2-D f32 tensor, copied.
Tensor rows(const Tensor& t, std::int64_t from, std::int64_t to) {
  const std::int64_t width = t.dim(1);
  Tensor out = Tensor::empty({to - from, width});
  std::memcpy(out.data_as<float>(), t.data_as<float>() + from * width, static_cast<std::size_t>((to - from) * width) * sizeof(float));
  return out;
}

void check_resnet(const std::string& name, int depth) {
  const auto weights = io::SafeTensors::open(fixture(name + ".weights.safetensors"));
  const auto io = io::SafeTensors::open(fixture(name + ".io.safetensors"));
  const int image_size = static_cast<int>(io.info("input").shape[2]);
  check_levels(models::resnet(depth, weights), io, image_size);
}

void check_vit(const std::string& file, models::ViTSize size, int patch, const std::string& io_name) {
  const auto weights = io::SafeTensors::open(fixture(file));
  const auto io = io::SafeTensors::open(fixture(io_name + ".io.safetensors"));
  const auto model = models::vit(size, patch, weights);
  REQUIRE(model.image_size == io.info("input").shape[2]);
  check_levels(model, io, 0);
}

}  // namespace

TEST_CASE("resnet18 at 64x64 matches PyTorch at O0 and O1", "[models][resnet]") { check_resnet("resnet18_64", 18); }
TEST_CASE("resnet50 at 64x64 matches PyTorch at O0 and O1", "[models][resnet]") { check_resnet("resnet50_64", 50); }
TEST_CASE("resnet50 at 224x224 matches PyTorch at O0 and O1", "[models_slow][resnet]") { check_resnet("resnet50_224", 50); }
// The other depths: the same blocks in other counts, so the deeper ones go with the slow checks.
TEST_CASE("resnet34 at 64x64 matches PyTorch at O0 and O1", "[models][resnet]") { check_resnet("resnet34_64", 34); }
TEST_CASE("resnet101 at 64x64 matches PyTorch at O0 and O1", "[models_slow][resnet]") { check_resnet("resnet101_64", 101); }
TEST_CASE("resnet152 at 64x64 matches PyTorch at O0 and O1", "[models_slow][resnet]") { check_resnet("resnet152_64", 152); }

TEST_CASE("vit_ti_16 at 64x64 matches PyTorch at O0 and O1 (torchvision names)", "[models][vit]") {
  check_vit("vit_ti16_64.weights.safetensors", models::ViTSize::tiny, 16, "vit_ti16_64");
}
TEST_CASE("vit_ti_16 at 64x64 matches PyTorch at O0 and O1 (timm names)", "[models][vit]") {
  check_vit("vit_ti16_64.timm.safetensors", models::ViTSize::tiny, 16, "vit_ti16_64");
}
TEST_CASE("vit_s_32 at 64x64 matches PyTorch at O0 and O1", "[models][vit]") {
  check_vit("vit_s32_64.weights.safetensors", models::ViTSize::small, 32, "vit_s32_64");
}
TEST_CASE("vit_b_16 at 64x64 matches PyTorch at O0 and O1", "[models][vit]") {
  check_vit("vit_b16_64.weights.safetensors", models::ViTSize::base, 16, "vit_b16_64");
}
TEST_CASE("vit_b_16 at 224x224 matches PyTorch at O0 and O1", "[models_slow][vit]") {
  check_vit("vit_b16_224.weights.safetensors", models::ViTSize::base, 16, "vit_b16_224");
}
TEST_CASE("vit_l_16 at 64x64 matches PyTorch at O0 and O1", "[models_slow][vit]") {
  check_vit("vit_l16_64.weights.safetensors", models::ViTSize::large, 16, "vit_l16_64");
}

// DeiT through the registry, as a user names it: timm's names, a distillation token, two heads averaged.
TEST_CASE("deit_ti_16_distilled at 64x64 matches PyTorch at O0 and O1 (registry name, timm weights)", "[models][vit][deit]") {
  const auto weights = io::SafeTensors::open(fixture("deit_ti16_64.weights.safetensors"));
  const auto io = io::SafeTensors::open(fixture("deit_ti16_64.io.safetensors"));
  const auto model = std::get<models::ViT>(models::model_by_name("deit_tiny_distilled_patch16_64", weights));
  CHECK(model.name == "deit_ti_16_distilled");
  CHECK(model.distilled);
  CHECK(model.tokens() == 4 * 4 + 2);
  check_levels(model, io, 0);
  // Without the distillation head the logits are another model's: the average is what PyTorch computes.
  auto undistilled = model;
  undistilled.distilled = false;
  undistilled.embed.prefix_tokens = rows(model.embed.prefix_tokens, 0, 1);  // the class token alone
  undistilled.embed.position = rows(model.embed.position, 1, model.tokens());  // one row fewer:
  std::memcpy(undistilled.embed.position.data_as<float>(), model.embed.position.data_as<float>(),  // the class token's,
              static_cast<std::size_t>(model.hidden) * sizeof(float));                              // then the patches'
  std::memcpy(undistilled.embed.position.data_as<float>() + model.hidden, model.embed.position.data_as<float>() + 2 * model.hidden,
              static_cast<std::size_t>((model.tokens() - 2) * model.hidden) * sizeof(float));
  const auto r = compare_logits(run_level<O0>(undistilled, io.load("input"), 0), io.load("logits"));
  CHECK(r.relative_error > visopt::testing::fp32_tolerance.relative_error);
}

TEST_CASE("a DeiT file is refused as a ViT, and a ViT file as a distilled DeiT", "[models][deit]") {
  const auto deit = io::SafeTensors::open(fixture("deit_ti16_64.weights.safetensors"));
  VISOPT_REQUIRE_ERROR(models::vit(models::ViTSize::tiny, 16, deit), "dist_token");
  const auto vit = io::SafeTensors::open(fixture("vit_ti16_64.timm.safetensors"));
  VISOPT_REQUIRE_ERROR(models::deit(models::ViTSize::tiny, 16, vit, true), "dist_token");
}

// A comparison that cannot fail proves nothing: scaling one weight tensor must break agreement.
TEST_CASE("the oracle comparison fails when one weight is perturbed", "[models][perturbed]") {
  const auto io = io::SafeTensors::open(fixture("resnet18_64.io.safetensors"));
  const Tensor input = io.load("input"), expected = io.load("logits");
  auto resnet = models::resnet(18, io::SafeTensors::open(fixture("resnet18_64.weights.safetensors")));
  float* w = resnet.stages[2][1].convs[0].conv.weight.data_as<float>();
  w[0] += 0.5f;  // one element of layer3.1.conv1.weight
  const auto r = compare_logits(run_level<O0>(resnet, input, 64), expected);
  CHECK(r.relative_error > visopt::testing::fp32_tolerance.relative_error);

  const auto vio = io::SafeTensors::open(fixture("vit_ti16_64.io.safetensors"));
  auto vit = models::vit(models::ViTSize::tiny, 16, io::SafeTensors::open(fixture("vit_ti16_64.weights.safetensors")));
  vit.blocks[5].mlp.fc1.weight.data_as<float>()[7] += 0.5f;
  const auto v = compare_logits(run_level<O1>(vit, vio.load("input"), 0), vio.load("logits"));
  CHECK(v.relative_error > visopt::testing::fp32_tolerance.relative_error);
}
