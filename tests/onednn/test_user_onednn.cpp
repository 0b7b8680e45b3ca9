// What a user sees of a oneDNN engine: report() as JSON with every field, and compile()'s warm-up,
// which makes the first run() as fast as the later ones (and without which the first one is slow).

#include <algorithm>
#include <chrono>
#include <vector>

#include <nlohmann/json.hpp>
#include <visopt/visopt.hpp>

#include "catch.hpp"
#include "report_json.hpp"

using namespace visopt;

namespace {

/// The first run()'s time over the median of the next `later` runs, for an engine compiled with `warmup`.
template <class Level>
double first_run_ratio(const models::ResNet& model, int warmup, int later = 9) {
  auto engine = compile<Level, backend::OneDnn>(model, {.max_batch = 1, .image_size = 96, .warmup = warmup});
  const Tensor images = Tensor::zeros({1, 3, 96, 96});
  auto timed = [&] {
    const auto start = std::chrono::steady_clock::now();
    const Tensor logits = engine.run(images);
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  };
  const double first = timed();
  std::vector<double> rest;
  for (int i = 0; i < later; ++i) rest.push_back(timed());
  std::nth_element(rest.begin(), rest.begin() + later / 2, rest.end());
  return first / rest[static_cast<std::size_t>(later / 2)];
}

}  // namespace

TEST_CASE("onednn report(): JSON with level, backend, device, precision, optimisations, algorithms, memory, "
          "compile time and cache", "[onednn][report]") {
  const auto model = models::resnet18(models::RandomWeights{6});
  auto o3 = compile<O3, backend::OneDnn>(model, {.image_size = 32});
  const nlohmann::json j = testing::check_report_json(o3.report().json().dump());
  CHECK(j["level"] == "O3");
  CHECK(j["backend"] == "onednn");
  int convolutions = 0;
  for (const auto& [name, count] : j["algorithms"].items()) {
    if (name.starts_with("convolution: ")) convolutions += count.get<int>();
  }
  CHECK(convolutions == 20);  // one primitive per convolution at one batch size
  bool static_plan = false;
  for (const auto& o : j["optimizations"]) static_plan = static_plan || (o["name"] == "static_plan" && o["applied"] == true);
  CHECK(static_plan);

  auto o0 = compile<O0, backend::OneDnn>(model, {.image_size = 32});
  const nlohmann::json j0 = testing::check_report_json(o0.report().json().dump());
  CHECK(j0["compute_precision"] == "fp32");
  bool fusion_skipped = false;
  for (const auto& o : j0["optimizations"]) fusion_skipped = fusion_skipped || (o["name"] == "post_op_fusion" && o["applied"] == false);
  CHECK(fusion_skipped);
}

TEST_CASE("onednn: after compile()'s warm-up the first run() is within 1.5x of the median of the next ones",
          "[onednn][warmup]") {
  const auto model = models::resnet18(models::RandomWeights{7});
  // A shared machine can slow any one run down, never speed it up: the claim holds if one of three tries shows it.
  double best = 1e9;
  for (int attempt = 0; attempt < 3 && best > 1.5; ++attempt) best = std::min(best, first_run_ratio<O1>(model, 1));
  INFO("first run / median of the next 9, with warm-up: " << best);
  CHECK(best <= 1.5);
  // Without the warm-up the first run creates the primitives and packs the weights: the same check fails.
  const double cold = first_run_ratio<O1>(model, 0);
  INFO("first run / median of the next 9, warmup = 0: " << cold);
  CHECK(cold > 1.5);
}
