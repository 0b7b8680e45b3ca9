// Saved plans (services/plan.hpp) on the reference backend: save, load (bit-identical logits, the plan's
// batch sizes), and every way a plan can be wrong: another level, model or visopt version, a truncated or
// foreign file, a missing one; with PlanMismatch::recompile the engine compiles afresh and says why.

#include <cstring>
#include <filesystem>
#include <fstream>

#include <visopt/visopt.hpp>

#include "catch.hpp"

using namespace visopt;

namespace {

std::filesystem::path scratch(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "visopt_test_plan";
  std::filesystem::create_directories(dir);
  return dir / name;
}

void write_text(const std::filesystem::path& path, const std::string& text) { std::ofstream(path, std::ios::trunc) << text; }

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

const runtime::Optimization* entry(const runtime::Report& report, const std::string& name) {
  for (const auto& o : report.optimizations) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("a saved plan rebuilds the engine: same logits, the plan's batch sizes, the report says so", "[plan]") {
  const auto model = models::resnet(18, models::RandomWeights{7});
  const auto path = scratch("resnet18_o1.plan");
  auto engine = compile<O1, backend::Reference>(model, {.max_batch = 3, .image_size = 64, .warmup_batches = {2}});
  engine.save(path.string());
  const nlohmann::json saved = nlohmann::json::parse(read_text(path));
  CHECK(saved["format"] == "visopt-plan");
  CHECK(saved["key"]["model"] == "resnet18");
  CHECK(saved["key"]["level"] == "O1");
  CHECK(saved["key"]["backend"] == "reference");
  CHECK(saved["key"]["visopt"] == std::string(visopt::version));
  CHECK(saved["options"]["max_batch"] == 3);
  CHECK(saved["options"]["image_size"] == 64);
  CHECK(saved["report"]["version"] == 1);

  auto loaded = load<O1, backend::Reference>(model, path.string());
  CHECK(loaded.options().max_batch == 3);
  CHECK(loaded.image_size() == 64);
  CHECK(loaded.options().warmup_batches == std::vector<int>{2});
  const auto* used = entry(loaded.report(), "saved_plan");
  REQUIRE(used != nullptr);
  CHECK(used->applied);
  Tensor images = Tensor::empty({3, 3, 64, 64});
  for (std::int64_t i = 0; i < images.numel(); ++i) images.data_as<float>()[i] = static_cast<float>((i * 7919) % 255) / 127.0f - 1.0f;
  const Tensor a = engine.run(images), b = loaded.run(images);
  REQUIRE(a.numel() == b.numel());
  CHECK(std::memcmp(a.data(), b.data(), a.nbytes()) == 0);

  // AnyEngine saves too (what a CUDA engine is from plain C++).
  AnyEngine any = compile_any(models::AnyModel(model), "O1", "reference", {.max_batch = 1, .image_size = 64});
  any.save(scratch("any.plan").string());
  CHECK(load<O1, backend::Reference>(model, scratch("any.plan").string()).options().max_batch == 1);
}

TEST_CASE("a plan for another engine is refused with the difference, or recompiled on request", "[plan]") {
  const auto model = models::resnet(18, models::RandomWeights{7});
  const auto path = scratch("resnet18_o1_b.plan");
  compile<O1, backend::Reference>(model, {.max_batch = 1, .image_size = 64}).save(path.string());

  VISOPT_REQUIRE_ERROR((load<O0, backend::Reference>(model, path.string())), "level is \"O1\" in the plan, \"O0\" here");
  VISOPT_REQUIRE_ERROR((load<O0, backend::Reference>(model, path.string())), "PlanMismatch::recompile");
  VISOPT_REQUIRE_ERROR((load<O1, backend::Reference>(models::resnet(34, models::RandomWeights{7}), path.string())),
                       "model is \"resnet18\" in the plan, \"resnet34\" here");
  auto fresh = load<O0, backend::Reference>(model, path.string(), {.plan_mismatch = runtime::PlanMismatch::recompile});
  const auto* skipped = entry(fresh.report(), "saved_plan");
  REQUIRE(skipped != nullptr);
  CHECK(!skipped->applied);
  CHECK(skipped->detail.find("compiled afresh") != std::string::npos);

  // Another visopt version's plan.
  nlohmann::json old = nlohmann::json::parse(read_text(path));
  old["key"]["visopt"] = "0.0.1";
  write_text(scratch("old.plan"), old.dump());
  VISOPT_REQUIRE_ERROR((load<O1, backend::Reference>(model, scratch("old.plan").string())), "visopt is \"0.0.1\" in the plan");
}

TEST_CASE("a truncated, foreign or missing plan is a clear error naming the file", "[plan]") {
  const auto model = models::resnet(18, models::RandomWeights{7});
  const auto path = scratch("good.plan");
  compile<O1, backend::Reference>(model, {.max_batch = 1, .image_size = 64}).save(path.string());
  const std::string text = read_text(path);
  write_text(scratch("truncated.plan"), text.substr(0, text.size() / 2));
  VISOPT_REQUIRE_ERROR((load<O1, backend::Reference>(model, scratch("truncated.plan").string())), "is not JSON (truncated?)");
  write_text(scratch("foreign.plan"), R"({"format": "visopt-algorithm-cache", "version": 1})");
  VISOPT_REQUIRE_ERROR((load<O1, backend::Reference>(model, scratch("foreign.plan").string())), "is not a visopt plan");
  nlohmann::json newer = nlohmann::json::parse(text);
  newer["version"] = 2;
  write_text(scratch("newer.plan"), newer.dump());
  VISOPT_REQUIRE_ERROR((load<O1, backend::Reference>(model, scratch("newer.plan").string())), "has format version 2");
  nlohmann::json bad_options = nlohmann::json::parse(text);
  bad_options["options"]["max_batch"] = 0;
  write_text(scratch("bad_options.plan"), bad_options.dump());
  VISOPT_REQUIRE_ERROR((load<O1, backend::Reference>(model, scratch("bad_options.plan").string())), "max_batch >= 1");
  VISOPT_REQUIRE_ERROR((load<O1, backend::Reference>(model, scratch("missing.plan").string())), "missing.plan': cannot be opened");
  // Through CompileOptions::plan a bad file is an error too, unless the caller asked to recompile.
  VISOPT_REQUIRE_ERROR((compile<O1, backend::Reference>(model, {.image_size = 64, .plan = scratch("truncated.plan").string()})),
                       "truncated.plan");
  auto fresh = compile<O1, backend::Reference>(
      model, {.image_size = 64, .plan = scratch("truncated.plan").string(), .plan_mismatch = runtime::PlanMismatch::recompile});
  CHECK(!entry(fresh.report(), "saved_plan")->applied);
  // An unwritable destination.
  VISOPT_REQUIRE_ERROR(fresh.save("/nonexistent-directory/x.plan"), "cannot write");
}

TEST_CASE("high_precision_layers names are checked against the layers the network has", "[plan][quantized]") {
  using visopt::runtime::require_known_layers;
  require_known_layers({"conv.0", "conv.19", "linear.0"}, 20, 1, "resnet18");
  require_known_layers({}, 0, 0, "resnet18");
  VISOPT_REQUIRE_ERROR(require_known_layers({"conv.20"}, 20, 1, "resnet18"),
                       "resnet18: CompileOptions::high_precision_layers names 'conv.20', which is no convolution or linear of "
                       "this model (they are conv.0 to conv.19, linear.0 to linear.0)");
  for (const char* bad : {"conv.", "conv.01", "conv.-1", "conv.1x", "conv", "Conv.1", "conv.99999999999", "layer_norm.0"}) {
    INFO(bad);
    VISOPT_REQUIRE_ERROR(require_known_layers({bad}, 20, 1, "resnet18"), "which is no convolution or linear");
  }
  // A level that quantizes no convolution (FP8 on a ViT) names linears only.
  VISOPT_REQUIRE_ERROR(require_known_layers({"conv.0"}, 0, 49, "vit_ti_16"), "names 'conv.0', which is no linear of this model "
                                                                               "(they are linear.0 to linear.48)");
}
