// models::summarize: parameters and multiply-adds against the published figures of torchvision's
// ResNet-50 and ViT-B/16, and the activation memory it predicts against what the reference backend
// really reserves.

#include <nlohmann/json.hpp>
#include <visopt/visopt.hpp>

#include "catch.hpp"

using namespace visopt;

namespace {

/// |actual / expected - 1| <= tolerance
bool near(double actual, double expected, double tolerance) { return std::abs(actual / expected - 1.0) <= tolerance; }

}  // namespace

TEST_CASE("summary of ResNet-50 and ViT-B/16 matches the published 25.6 M / 4.1 GMACs and 86.6 M / 17.6 GMACs",
          "[summary]") {
  const models::Summary resnet50 = summary(models::resnet50(models::RandomWeights{1}), 8);
  INFO(resnet50.text());
  CHECK(resnet50.parameters == 25'557'032);  // torchvision's count
  CHECK(near(static_cast<double>(resnet50.macs_per_image), 4.1e9, 0.01));
  CHECK(resnet50.image_size == 224);
  REQUIRE(resnet50.levels.size() == 4);

  const models::Summary vit = summary(models::vit_b_16(models::RandomWeights{1}), 8);
  INFO(vit.text());
  CHECK(vit.parameters == 86'567'656);
  CHECK(near(static_cast<double>(vit.macs_per_image), 17.6e9, 0.01));
  CHECK(vit.flops_per_image() == 2.0 * static_cast<double>(vit.macs_per_image));
}

TEST_CASE("summary of the small models: resnet18 1.8 GMACs, vit_ti_16 1.26 GMACs; memory follows the levels",
          "[summary]") {
  const auto resnet18 = models::resnet18(models::RandomWeights{2});
  const models::Summary s = models::summarize(resnet18, {.batch = 4});
  INFO(s.text());
  CHECK(s.parameters == 11'689'512);
  CHECK(near(static_cast<double>(s.macs_per_image), 1.82e9, 0.01));
  REQUIRE(s.levels.size() == 4);
  const auto& o0 = s.levels[0];
  const auto& o1 = s.levels[1];
  const auto& o2 = s.levels[2];
  const auto& o3 = s.levels[3];
  CHECK((o0.level == "O0" && o1.level == "O1" && o2.level == "O2" && o3.level == "O3"));
  // O0 keeps every BatchNorm (4 vectors per conv); O1 folds it into a bias (1 vector): fewer weights.
  CHECK(o0.weight_bytes > static_cast<std::size_t>(s.parameters) * 4);  // + BatchNorm's running mean and variance
  CHECK(o1.weight_bytes < o0.weight_bytes);
  CHECK(o2.weight_bytes * 2 == o1.weight_bytes);  // half precision stores 2 bytes a value
  // Unfused BatchNorm and ReLU outputs cost memory; half precision halves it; the planned arena beats the pool.
  CHECK(o1.activation_bytes < o0.activation_bytes);
  CHECK(o2.activation_bytes * 2 == o1.activation_bytes);
  CHECK(o3.activation_bytes <= o2.activation_bytes);
  // Activations grow with the batch; weights do not.
  const models::Summary one = models::summarize(resnet18, {.batch = 1});
  CHECK(one.levels[0].weight_bytes == o0.weight_bytes);
  CHECK(one.levels[0].activation_bytes * 4 == o0.activation_bytes);
  CHECK(one.macs_per_image == s.macs_per_image);

  const models::Summary vit = summary(models::vit_ti_16(models::RandomWeights{2}));
  INFO(vit.text());
  CHECK(near(static_cast<double>(vit.parameters), 5.72e6, 0.01));
  CHECK(near(static_cast<double>(vit.macs_per_image), 1.26e9, 0.01));

  const nlohmann::json j = s.json();
  CHECK(j["model"] == "resnet18");
  CHECK(j["macs_per_image"] == s.macs_per_image);
  CHECK(j["levels"].size() == 4);
  CHECK(j["levels"][3]["activation_bytes"] == o3.activation_bytes);
  CHECK_THAT(s.text(), VISOPT_CATCH_CONTAINS("11.69 M parameters"));
}

TEST_CASE("summary predicts the activation memory the reference backend reserves at O0 and O1", "[summary]") {
  const auto resnet = models::resnet18(models::RandomWeights{3});
  const models::Summary s = models::summarize(resnet, {.batch = 2, .image_size = 64});
  const CompileOptions options{.max_batch = 2, .image_size = 64};
  CHECK(s.levels[0].activation_bytes == compile<O0, backend::Reference>(resnet, options).report().activation_bytes);
  CHECK(s.levels[1].activation_bytes == compile<O1, backend::Reference>(resnet, options).report().activation_bytes);

  const auto vit = models::vit_ti_16(models::RandomWeights{3}, {.image_size = 64});
  const models::Summary v = models::summarize(vit, {.batch = 2});
  const CompileOptions vit_options{.max_batch = 2};
  CHECK(v.levels[0].activation_bytes == compile<O0, backend::Reference>(vit, vit_options).report().activation_bytes);
  CHECK(v.levels[1].activation_bytes == compile<O1, backend::Reference>(vit, vit_options).report().activation_bytes);
}

TEST_CASE("report() and summary() agree on the weights the reference backend holds at O0 and O1", "[summary]") {
  const auto resnet = models::resnet18(models::RandomWeights{5});
  const models::Summary s = models::summarize(resnet, {.image_size = 64});
  const CompileOptions options{.max_batch = 1, .image_size = 64, .warmup = 0};
  // O0 keeps BatchNorm's four vectors, O1 folds them into a bias: the figures differ, and each must match.
  REQUIRE(s.levels[0].weight_bytes != s.levels[1].weight_bytes);
  CHECK(compile<O0, backend::Reference>(resnet, options).report().weight_bytes == s.levels[0].weight_bytes);
  CHECK(compile<O1, backend::Reference>(resnet, options).report().weight_bytes == s.levels[1].weight_bytes);

  const auto vit = models::vit_ti_16(models::RandomWeights{5}, {.image_size = 64});
  const models::Summary v = models::summarize(vit);
  CHECK(v.levels[0].weight_bytes == static_cast<std::size_t>(v.parameters) * sizeof(float));
  CHECK(compile<O1, backend::Reference>(vit, {.warmup = 0}).report().weight_bytes == v.levels[1].weight_bytes);
}

TEST_CASE("summary rejects a batch below 1 and a ViT size its weights do not fix", "[summary]") {
  const auto vit = models::vit_ti_16(models::RandomWeights{4}, {.image_size = 64});
  VISOPT_REQUIRE_ERROR(models::summarize(vit, {.batch = 0}), "batch is 0");
  VISOPT_REQUIRE_ERROR(models::summarize(vit, {.image_size = 224}), "fix it at 64");
}
