// The lifecycle's first stages: models::trace lists the operations a level's forward runs (following
// its fusion decisions), summarize() reads its figures from it, and backend::validate refuses an
// operation a backend's kernels cannot take, naming it, before compile() prepares anything.

#include <algorithm>

#include <visopt/visopt.hpp>

#include "catch.hpp"

using namespace visopt;

namespace {
std::size_t count(const runtime::Trace& t, const std::string& kind) {
  return static_cast<std::size_t>(
      std::count_if(t.operations.begin(), t.operations.end(), [&](const auto& op) { return op.kind == kind; }));
}
}  // namespace

TEST_CASE("trace: ResNet-18's operations follow the level's fusion", "[trace]") {
  const auto model = models::resnet18(models::RandomWeights{3});
  const Shape images{2, 3, 64, 64};
  const runtime::Trace o0 = models::trace<O0>(model, images);
  INFO(o0.text());
  CHECK(o0.model == "resnet18");
  CHECK(o0.level == "O0");
  CHECK(o0.input == images);
  // 20 convolutions, each with its BatchNorm; ReLUs and the 8 shortcut adds as their own operations.
  CHECK(count(o0, "conv2d") == 20);
  CHECK(count(o0, "batch_norm") == 20);
  CHECK(count(o0, "add") == 8);
  CHECK(count(o0, "activation") == 17);
  CHECK(count(o0, "max_pool2d") == 1);
  CHECK(count(o0, "global_avg_pool") == 1);
  CHECK(count(o0, "linear") == 1);
  CHECK(o0.operations.front().kind == "conv2d");
  CHECK(o0.operations.front().inputs == std::vector<Shape>{images});
  CHECK(o0.operations.front().output == Shape{2, 64, 32, 32});
  CHECK(o0.operations.back().output == Shape{2, 1000});
  CHECK(o0.macs() == 2 * models::multiply_adds(model, 64));

  // O3: BatchNorm folded, bias + shortcut + ReLU in the convolutions' epilogues (the residual is an input).
  models::ResNet folded = model;
  models::ModelTraits<models::ResNet>::run_passes<O3>(folded, nullptr);
  const runtime::Trace o3 = models::trace<O3>(folded, images);
  INFO(o3.text());
  CHECK(o3.operations.size() == 23);
  CHECK(count(o3, "conv2d") == 20);
  CHECK(count(o3, "batch_norm") + count(o3, "add") + count(o3, "activation") == 0);
  const auto with_residual = std::count_if(o3.operations.begin(), o3.operations.end(),
                                           [](const auto& op) { return op.kind == "conv2d" && op.inputs.size() == 2; });
  CHECK(with_residual == 8);
  CHECK(o3.macs() == o0.macs());
  CHECK(o3.weight_bytes * 2 < o0.weight_bytes);  // fp16 storage, and no BatchNorm parameters
  CHECK(o3.json()["operations"].size() == 23);

  // An input the network cannot take is an error naming the operation, before anything is prepared.
  VISOPT_REQUIRE_ERROR(models::trace<O0>(model, Shape{1, 4, 64, 64}), "trace: conv2d");
}

TEST_CASE("trace: ViT's attention carries its heads; DeiT has one more token", "[trace]") {
  const auto vit = models::vit_ti_16(models::RandomWeights{4});
  const runtime::Trace t = models::trace<O2>(vit, Shape{3, 3, 224, 224});
  INFO(t.operations.size() << " operations");
  CHECK(count(t, "attention") == 12);
  CHECK(count(t, "layer_norm") == 25);
  const auto attention = std::find_if(t.operations.begin(), t.operations.end(), [](const auto& op) { return op.kind == "attention"; });
  REQUIRE(attention != t.operations.end());
  CHECK(attention->heads == 3);
  CHECK(attention->inputs.front() == Shape{3, 197, 3 * 192});
  CHECK(attention->output == Shape{3, 197, 192});
  CHECK(t.macs() == 3 * models::multiply_adds(vit));
  CHECK(t.text().find("attention([3,197,576]) -> [3,197,192] heads=3") != std::string::npos);
  VISOPT_REQUIRE_ERROR(models::trace<O2>(vit, Shape{1, 3, 200, 200}), "trace: patch_embed: images [1,3,200,200] do not split into 16x16 patches");

  const auto deit = models::deit(models::ViTSize::tiny, 16, models::RandomWeights{5}, /*distilled=*/true);
  const runtime::Trace d = models::trace<O2>(deit, Shape{1, 3, 224, 224});
  const auto tokens = std::find_if(d.operations.begin(), d.operations.end(), [](const auto& op) { return op.kind == "assemble_tokens"; });
  REQUIRE(tokens != d.operations.end());
  CHECK(tokens->output == Shape{1, 198, 192});
}

TEST_CASE("validate: a backend's per-operation rule names the operation it cannot run", "[trace]") {
  const auto vit = models::vit_ti_16(models::RandomWeights{6});
  runtime::Trace t = models::trace<O3>(vit, Shape{2, 3, 224, 224});
  CHECK_NOTHROW(backend::validate<backend::Cuda>(t));
  CHECK_NOTHROW(backend::validate<backend::Reference>(t));
  // The same trace with heads of 48 values (192 wide over 4 heads): the CUDA kernels take heads of 64.
  for (auto& op : t.operations) {
    if (op.kind == "attention") op.heads = 4;
  }
  const auto first = std::find_if(t.operations.begin(), t.operations.end(), [](const auto& op) { return op.kind == "attention"; });
  const std::string expected = "vit_ti_16 at O3 on cuda: operation " + std::to_string(first - t.operations.begin() + 1) + " of " +
                               std::to_string(t.operations.size()) +
                               ", attention([2,197,576]) -> [2,197,192] heads=4: backend::cuda cannot run it: its attention "
                               "kernels take heads of 64 values; this model has 4 heads over a width of 192";
  VISOPT_REQUIRE_ERROR(backend::validate<backend::Cuda>(t), expected);
  CHECK_NOTHROW(backend::validate<backend::OneDnn>(t));
  CHECK_NOTHROW(backend::validate<backend::Reference>(t));
}

TEST_CASE("compile() reports the traced operations", "[trace]") {
  const auto model = models::resnet18(models::RandomWeights{7});
  auto engine = compile<O1, backend::Reference>(model, {.max_batch = 2, .image_size = 32, .warmup = 0});
  CHECK(engine.report().operations == 23);
  CHECK(engine.report().json()["operations"] == 23);
  auto o0 = compile<O0, backend::Reference>(model, {.max_batch = 1, .image_size = 32, .warmup = 0});
  CHECK(o0.report().operations == 68);
}
