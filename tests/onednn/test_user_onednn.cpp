// What a user sees of a oneDNN engine: report() as JSON with every field, and compile()'s warm-up,
// after which the first run() makes nothing the later ones do not (without it, the first one is slow).

#include <nlohmann/json.hpp>
#include <visopt/visopt.hpp>

#include "catch.hpp"
#include "report_json.hpp"

using namespace visopt;

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

TEST_CASE("onednn: after compile()'s warm-up the first run() makes nothing: no primitive, weight pack or "
          "activation allocation; without it, the first run() makes them all", "[onednn][warmup]") {
  // What made a first run() slow, counted rather than timed (CONVENTIONS: tests never time anything).
  const auto model = models::resnet18(models::RandomWeights{7});
  const Tensor images = Tensor::zeros({1, 3, 96, 96});
  auto warm = compile<O1, backend::OneDnn>(model, {.max_batch = 1, .image_size = 96, .warmup = 1});
  const auto& census = warm.executor().census();
  const int primitives = census.primitives, packs = census.weight_packs;
  const std::size_t allocations = warm.executor().fresh_allocations();
  CHECK(primitives > 0);
  CHECK(packs > 0);
  warm.run(images);
  CHECK(census.primitives == primitives);
  CHECK(census.weight_packs == packs);
  CHECK(warm.executor().fresh_allocations() == allocations);

  auto cold = compile<O1, backend::OneDnn>(model, {.max_batch = 1, .image_size = 96, .warmup = 0});
  const int cold_primitives = cold.executor().census().primitives, cold_packs = cold.executor().census().weight_packs;
  const std::size_t cold_allocations = cold.executor().fresh_allocations();
  cold.run(images);
  CHECK(cold.executor().census().primitives > cold_primitives);
  CHECK(cold.executor().census().weight_packs > cold_packs);
  CHECK(cold.executor().fresh_allocations() > cold_allocations);
  const int after_first = cold.executor().census().primitives;
  cold.run(images);  // and from then on nothing, as with the warm-up
  CHECK(cold.executor().census().primitives == after_first);
}
