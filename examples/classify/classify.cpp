// classify: reads an image, runs a ResNet at the optimisation levels asked for on the reference backend,
// prints each level's latency and top-5 classes, and, with --level all, whether O0 and O1 agree.
//
//   classify --weights resnet50.safetensors [--image photo.jpg] [--model resnet50] [--level all]
//   classify --random-weights --seed 7          (no weights needed; the classes are then meaningless)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include <visopt/io/class_names.hpp>
#include <visopt/io/image.hpp>
#include <visopt/io/top_k.hpp>
#include <visopt/visopt.hpp>

#ifndef VISOPT_EXAMPLES_DATA_DIR
#define VISOPT_EXAMPLES_DATA_DIR "examples/data"
#endif

namespace {

struct LevelResult {
  std::string level;
  double latency_ms = 0.0;
  visopt::Tensor logits;  // host f32 [1, classes]
  std::string report;     // what compile() applied at this level
};

/// The k most likely classes of row 0 of host f32 logits [1, classes].
std::vector<visopt::io::ScoredClass> top_k(const visopt::Tensor& logits, int k) {
  return visopt::io::top_k({logits.data_as<float>(), static_cast<std::size_t>(logits.dim(1))}, k);
}

void print_result(const LevelResult& result, const std::vector<std::string>& classes) {
  std::printf("%s: %.2f ms\n", result.level.c_str(), result.latency_ms);
  int rank = 1;
  for (const visopt::io::ScoredClass& c : top_k(result.logits, 5)) {
    std::printf("  %d. %5.2f%%  %s (%d)\n", rank++, 100.0 * c.probability, classes[static_cast<std::size_t>(c.index)].c_str(),
                c.index);
  }
  std::printf("%s\n\n", result.report.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Classify an image with a ResNet compiled at visopt's optimisation levels (reference backend)."};
  std::string weights_path;
  bool random_weights = false;
  std::uint64_t seed = 0;
  std::string image_path = VISOPT_EXAMPLES_DATA_DIR "/sample.jpg";
  std::string model_name = "resnet50";
  std::string level = "all";
  std::string classes_path = VISOPT_EXAMPLES_DATA_DIR "/imagenet_classes.txt";

  auto* source = app.add_option_group("weights", "where the model's weights come from (exactly one)");
  source->add_option("--weights", weights_path, "safetensors file with torchvision names (tools/ exports one)")
      ->check(CLI::ExistingFile);
  auto* random_flag =
      source->add_flag("--random-weights", random_weights, "a seeded random model; nothing to download");
  source->require_option(1);
  app.add_option("--seed", seed, "seed of --random-weights")->needs(random_flag)->capture_default_str();
  app.add_option("--image", image_path, "image file: JPEG, PNG, BMP or GIF")->capture_default_str();
  app.add_option("--model", model_name, "ResNet depth (resnet50 or just 50)")
      ->transform([](std::string name) { return name.starts_with("resnet") ? name : "resnet" + name; })
      ->check(CLI::IsMember({"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}))
      ->capture_default_str();
  app.add_option("--level", level, "optimisation level; 'all' runs O0 and O1 and compares them")
      ->check(CLI::IsMember({"O0", "O1", "all"}))
      ->capture_default_str();
  app.add_option("--classes", classes_path, "class names, one per line in logit order")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    const int depth = std::stoi(model_name.substr(std::string_view("resnet").size()));
    const std::vector<std::string> classes = visopt::io::load_class_names(classes_path);
    const visopt::io::Image image = visopt::io::load_image(image_path);
    const visopt::Tensor batch = visopt::io::stack_images({visopt::io::preprocess(image)});

    std::optional<visopt::io::SafeTensors> weights;  // kept open while the model may refer to it
    if (!random_weights) weights.emplace(visopt::io::SafeTensors::open(weights_path));
    const auto model = random_weights ? visopt::models::resnet(depth, visopt::nn::RandomWeights{seed})
                                      : visopt::models::resnet(depth, *weights);
    visopt::require(static_cast<std::size_t>(model.num_classes) == classes.size(), "classify: ", model_name, " has ",
                    model.num_classes, " classes but '", classes_path, "' names ", classes.size());

    const std::string source_text =
        random_weights ? "random weights (seed " + std::to_string(seed) + "; the classes below mean nothing)"
                       : weights_path;
    std::printf("%s from %s; image %s (%dx%d) -> input %s\n\n", model_name.c_str(), source_text.c_str(),
                image_path.c_str(), image.width, image.height, batch.shape().to_string().c_str());

    auto run_level = [&]<class Level>(Level) {
      auto engine = visopt::compile<Level, visopt::backend::Reference>(model, {.max_batch = 1});
      (void)engine.run(batch);  // warm-up: the timed run below is a steady-state one
      const auto start = std::chrono::steady_clock::now();
      const visopt::Tensor logits = engine.run(batch);
      const auto stop = std::chrono::steady_clock::now();
      std::ostringstream report;
      report << engine.report();
      visopt::require(logits.shape() == visopt::Shape{1, static_cast<std::int64_t>(classes.size())},
                      "classify: expected logits of shape [1,", classes.size(), "], got ", logits.shape().to_string());
      // A copy: the engine may reuse the memory of its output on its next run.
      return LevelResult{std::string(Level::name), std::chrono::duration<double, std::milli>(stop - start).count(),
                         logits.clone(), report.str()};
    };

    std::vector<LevelResult> results;
    for (const std::string_view name : {"O0", "O1"}) {
      if (level != "all" && level != name) continue;
      // The runtime name becomes a level type in visopt's one dispatch (visopt/runtime/dispatch.hpp).
      results.push_back(visopt::with_level_and_backend(name, visopt::backend::Reference::name,
                                                       [&](auto level_tag, auto) { return run_level(level_tag); }));
      print_result(results.back(), classes);
    }

    if (results.size() == 2) {
      const float* a = results[0].logits.data_as<float>();
      const float* b = results[1].logits.data_as<float>();
      float max_difference = 0.0f;
      for (std::int64_t i = 0; i < results[0].logits.numel(); ++i) {
        max_difference = std::max(max_difference, std::abs(a[i] - b[i]));
      }
      const auto indices = [](const visopt::Tensor& logits) {
        std::vector<int> out;
        for (const auto& c : top_k(logits, 5)) out.push_back(c.index);
        return out;
      };
      const bool agree = indices(results[0].logits) == indices(results[1].logits);
      std::printf("O0 vs O1: top-5 %s, max |logit difference| %.3g\n", agree ? "agree" : "DIFFER", max_difference);
    }
    return 0;
  } catch (const std::exception& e) {  // visopt::Error, and std::stoi's on a malformed model name
    std::fflush(stdout);                // so that the error follows what was printed before it
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
