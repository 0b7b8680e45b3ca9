// classify: the top classes of one or several images (files, or directories of them) with any ResNet or
// ViT, on any backend and level, in batches. Each image gets the transform the model's weights expect:
// torchvision's for ResNets and torchvision-named ViTs, timm's (bicubic, mean and std 0.5) for timm-named
// ViTs (visopt/models/preprocessing.hpp, docs/weights.md).
//
//   classify --weights resnet50.safetensors photo.jpg more_photos/            (fastest backend and level here)
//   classify --weights vit_b_16.safetensors --model vit_base_patch16_224 --backend cuda --level O3 photos/
//   classify --random-weights --model vit_b_16                                  (the bundled sample; no download)
//   classify --weights resnet50.safetensors --level all photo.jpg              (every level vs the backend's O0)
//   classify --weights resnet50.safetensors --level O4 --calibrate calibration_photos/
//            --save-calibration resnet50.calibration.json photos/               (int8, calibrated on other images)
//   classify --weights resnet50.safetensors --level O4 --calibration resnet50.calibration.json photos/

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <visopt/io/class_names.hpp>
#include <visopt/io/image.hpp>
#include <visopt/io/top_k.hpp>
#include <visopt/models/preprocessing.hpp>
#include <visopt/runtime/batch_processor.hpp>
#include <visopt/visopt.hpp>

#ifndef VISOPT_EXAMPLES_DATA_DIR
#define VISOPT_EXAMPLES_DATA_DIR "examples/data"
#endif

namespace {

struct Settings {
  std::vector<std::string> inputs{VISOPT_EXAMPLES_DATA_DIR "/sample.jpg"};
  std::string weights_path;
  bool random_weights = false;
  std::uint64_t seed = 0;
  std::string model = "resnet50", backend, level;
  int image_size = 224, batch = 32, top = 5;
  std::string classes_path = VISOPT_EXAMPLES_DATA_DIR "/imagenet_classes.txt";
  std::vector<std::string> calibrate;               // images to calibrate O4 on (not those classified)
  std::string calibration_path, save_calibration;  // a saved calibration to use; where to save a new one
};

/// The image files named: files as given, directories by their image files in name order.
std::vector<std::filesystem::path> image_files(const std::vector<std::string>& inputs) {
  static const std::set<std::string> extensions{".jpg", ".jpeg", ".png", ".bmp", ".gif"};
  std::vector<std::filesystem::path> files;
  for (const std::string& input : inputs) {
    if (!std::filesystem::is_directory(input)) {
      files.emplace_back(input);  // load_image says what is wrong with a path that is not an image
      continue;
    }
    std::vector<std::filesystem::path> found;
    for (const auto& entry : std::filesystem::directory_iterator(input)) {
      std::string extension = entry.path().extension().string();
      std::transform(extension.begin(), extension.end(), extension.begin(), [](unsigned char c) { return std::tolower(c); });
      if (entry.is_regular_file() && extensions.contains(extension)) found.push_back(entry.path());
    }
    visopt::require(!found.empty(), "classify: directory '", input, "' holds no .jpg, .jpeg, .png, .bmp or .gif file");
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

/// The levels to run: the one asked for, the backend's fastest when none was, or every level it runs
/// ("all"; O4 only with a calibration).
std::vector<std::string> levels_to_run(const std::string& level, const std::string& backend, bool calibrated) {
  if (level.empty()) return {visopt::fastest_level_for(backend)};
  if (level != "all") return {visopt::choose_level(level)};
  std::vector<std::string> levels;
  for (const std::string_view name : {"O0", "O1", "O2", "O3", "O4"}) {
    if (name == "O4" && !calibrated) continue;
    if (visopt::level_runs_on(name, backend)) levels.emplace_back(name);
  }
  return levels;
}

/// O4's calibration, measured on the images named (preprocessed as the model's weights expect).
visopt::Calibration calibrate(const visopt::models::AnyModel& model, const std::vector<std::string>& inputs, int image_size) {
  const std::vector<std::filesystem::path> files = image_files(inputs);
  const int size = std::visit([&](const auto& m) {
    return visopt::models::ModelTraits<std::decay_t<decltype(m)>>::image_size(m, image_size, "--calibrate: ");
  }, model);
  const visopt::io::Preprocess transform = visopt::models::preprocess_for(model, size);
  std::vector<visopt::Tensor> images;
  for (const auto& file : files) images.push_back(visopt::io::preprocess(visopt::io::load_image(file), transform));
  const visopt::Tensor batch = visopt::io::stack_images(images);
  const auto start = std::chrono::steady_clock::now();
  visopt::Calibration calibration = std::visit([&](const auto& m) { return visopt::calibrate(m, batch); }, model);
  std::printf("calibrated on %zu image(s) (%s) in %.1f s: %zu activation ranges\n", files.size(), calibration.method.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), calibration.ranges.size());
  return calibration;
}

int run(const Settings& s) {
  const visopt::models::AnyModel model = visopt::models::load_model(s.model, s.random_weights ? "" : s.weights_path, s.seed);
  const std::vector<std::string> classes = visopt::io::load_class_names(s.classes_path, visopt::models::num_classes_of(model));
  const std::vector<std::filesystem::path> files = image_files(s.inputs);
  const std::string backend = s.backend.empty() ? visopt::fastest_backend_here() : visopt::choose_backend(s.backend);
  const bool resnet = std::holds_alternative<visopt::models::ResNet>(model);
  const int batch = std::min<int>(s.batch, static_cast<int>(files.size()));

  std::printf("%s from %s, %zu image(s) in batches of %d on %s\n", visopt::models::name_of(model).c_str(),
              s.random_weights ? ("random weights, seed " + std::to_string(s.seed) + " (the classes below mean nothing)").c_str()
                               : s.weights_path.c_str(),
              files.size(), batch, backend.c_str());
  std::vector<visopt::io::Image> images;
  images.reserve(files.size());
  for (const auto& file : files) images.push_back(visopt::io::load_image(file));

  std::optional<visopt::Calibration> calibration;  // the int8 level's activation ranges
  if (!s.calibration_path.empty()) calibration = visopt::Calibration::load(s.calibration_path);
  if (!s.calibrate.empty()) calibration = calibrate(model, s.calibrate, resnet ? s.image_size : 0);
  if (calibration && !s.save_calibration.empty()) {
    calibration->save(s.save_calibration);
    std::printf("calibration saved to %s\n", s.save_calibration.c_str());
  }

  const std::vector<std::string> levels = levels_to_run(s.level, backend, calibration.has_value());
  std::vector<visopt::runtime::Result> reference;  // the first level's answers, which later levels are compared with
  for (const std::string& level : levels) {
    visopt::AnyEngine engine = visopt::compile_any(
        model, level, backend, {.max_batch = batch, .image_size = resnet ? s.image_size : 0, .calibration = calibration});
    const visopt::io::Preprocess transform = visopt::models::preprocess_for(model, static_cast<int>(engine.image_size()));
    visopt::runtime::BatchProcessor processor(engine, visopt::runtime::batch_options_for(transform));
    const auto start = std::chrono::steady_clock::now();
    const std::vector<visopt::runtime::Result> results = processor.run(images);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("\n%s: %s\n  preprocess: %s\n  %.1f ms for %zu image(s), preprocessing included\n", level.c_str(),
                engine.report().text().c_str(), visopt::io::describe(transform).c_str(), ms, files.size());
    for (std::size_t i = 0; i < results.size(); ++i) {
      const visopt::Tensor& row = results[i].output;
      std::printf("%s\n", files[i].string().c_str());
      int rank = 1;
      for (const auto& c : visopt::io::top_k({row.data_as<float>(), static_cast<std::size_t>(row.numel())}, s.top)) {
        std::printf("  %d. %6.2f%%  %s (%d)\n", rank++, 100.0 * c.probability, classes[static_cast<std::size_t>(c.index)].c_str(), c.index);
      }
    }
    if (reference.empty()) {
      reference = results;
      continue;
    }
    int agree = 0;
    double difference = 0, scale = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
      const float* a = results[i].output.data_as<float>();
      const float* b = reference[i].output.data_as<float>();
      const auto n = results[i].output.numel();
      for (std::int64_t k = 0; k < n; ++k) {
        difference = std::max(difference, static_cast<double>(std::abs(a[k] - b[k])));
        scale = std::max(scale, static_cast<double>(std::abs(b[k])));
      }
      agree += std::max_element(a, a + n) - a == std::max_element(b, b + n) - b ? 1 : 0;
    }
    std::printf("%s vs %s: top-1 agrees on %d of %zu image(s), max |logit difference| / max |logit| = %.3g\n", level.c_str(),
                levels.front().c_str(), agree, results.size(), scale > 0 ? difference / scale : difference);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Classify images with a ResNet or ViT compiled by visopt, on any backend and level."};
  Settings s;
  app.add_option("images", s.inputs, "image files (JPEG, PNG; BMP and GIF with stb_image) or directories of them "
                                     "(default: the bundled sample)");
  auto* source = app.add_option_group("weights", "where the model's weights come from (exactly one)");
  source->add_option("--weights", s.weights_path, "safetensors file, torchvision or timm names (tools/export_weights.py makes one)")
      ->check(CLI::ExistingFile);
  auto* random_flag = source->add_flag("--random-weights", s.random_weights, "a seeded random model; nothing to download");
  source->require_option(1);
  app.add_option("--seed", s.seed, "seed of --random-weights")->needs(random_flag)->capture_default_str();
  app.add_option("--model", s.model, std::string("model: ") + visopt::models::model_names())->capture_default_str();
  app.add_option("--backend", s.backend, "backend: " + visopt::available_backend_names() + " (default: the fastest here)");
  app.add_option("--level", s.level, "O0..O4, or all: every level the backend runs, each compared with the first "
                                     "(default: the backend's fastest; O4 needs --calibrate or --calibration)");
  auto* calibrate_option = app.add_option("--calibrate", s.calibrate, "images (files or directories) to calibrate O4's "
                                                                     "int8 ranges on; use other images than those classified");
  calibrate_option->allow_extra_args(false);  // one path per --calibrate: the images to classify follow it
  app.add_option("--calibration", s.calibration_path, "a calibration saved by --save-calibration (Calibration::save)")
      ->check(CLI::ExistingFile)
      ->excludes(calibrate_option);
  app.add_option("--save-calibration", s.save_calibration, "where to save the calibration --calibrate measures");
  app.add_option("--image-size", s.image_size, "ResNet input side (a ViT's is fixed by its weights)")
      ->check(CLI::Range(32, 1024))
      ->capture_default_str();
  app.add_option("--batch", s.batch, "images per engine run")->check(CLI::Range(1, 1024))->capture_default_str();
  app.add_option("--top", s.top, "classes shown per image")->check(CLI::Range(1, 1000))->capture_default_str();
  app.add_option("--classes", s.classes_path, "class names, one per line in logit order")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    return run(s);
  } catch (const std::exception& e) {  // visopt::Error, and filesystem errors on unreadable directories
    std::fflush(stdout);               // so that the error follows what was printed before it
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
