// levels: one model through O0 -> O3 on every backend this machine has (reference and oneDNN on the
// CPU, CUDA where a GPU is visible), with a progress bar while it compiles and measures, then one table:
// latency p50/p95, throughput, speed-up over the backend's O0, and max error and top-1 agreement against
// the reference backend's O0. Also writes the table as JSON and a PNG chart. A plain C++ program: the
// CUDA engines it runs were compiled once by nvcc (examples/CMakeLists.txt, visopt_add_cuda_engines).
// Nothing is downloaded: seeded random weights unless --weights, the bundled image plus seeded images.
//
//   levels [--model resnet50] [--iterations 8] [--json levels.json] [--chart levels.png]
//   levels --weights vit_b_16.safetensors --model vit_b_16
//   levels --backend onednn --level O1,O3      (VISOPT_BACKEND / VISOPT_LEVEL work too)

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <visopt/io/image.hpp>
#include <visopt/models/preprocessing.hpp>
#include <visopt/runtime/latency.hpp>
#include <visopt/visopt.hpp>

#ifndef VISOPT_EXAMPLES_DATA_DIR
#define VISOPT_EXAMPLES_DATA_DIR "examples/data"
#endif
#ifndef VISOPT_SOURCE_DIR
#define VISOPT_SOURCE_DIR "."
#endif
#ifndef VISOPT_PYTHON_DEFAULT  // the interpreter the build found (CMake's VISOPT_PYTHON_EXECUTABLE)
#define VISOPT_PYTHON_DEFAULT "python3"
#endif

namespace {

struct Settings {
  std::string model = "resnet50", weights_path;
  int image_size = 224, batch = 1, accuracy_batch = 4, iterations = 5;
  std::uint64_t seed = 0;
  std::vector<std::string> levels{"O0", "O1", "O2", "O3"}, backends;
  std::string json_path = "levels.json", chart_path = "levels.png";
};

struct Row {
  std::string level, backend, precision, device, error;
  double p50_ms = 0, p95_ms = 0, throughput = 0, speedup = 0, max_error = 0, top1 = 0, compile_ms = 0;
  visopt::Tensor logits;  // the accuracy batch's, for the comparison with the reference O0
};

/// One line on stderr, redrawn in place on a terminal: "[######------] 5/14 resnet50 O2 onednn: timing 3/8".
class ProgressBar {
 public:
  explicit ProgressBar(int total) : total_(total), terminal_(isatty(fileno(stderr)) != 0) {}
  void show(int done, const std::string& what) {
    constexpr int width = 24;
    const int filled = total_ > 0 ? width * done / total_ : width;
    const std::string bar = "[" + std::string(static_cast<std::size_t>(filled), '#') +
                            std::string(static_cast<std::size_t>(width - filled), '-') + "] " + std::to_string(done) + "/" +
                            std::to_string(total_) + " " + what;
    if (terminal_) {
      std::fprintf(stderr, "\r\033[K%s", bar.c_str());
    } else if (what != last_) {
      std::fprintf(stderr, "%s\n", bar.c_str());  // a log file gets one line per stage, not per iteration
    }
    last_ = what;
    std::fflush(stderr);
  }
  void stage(int done, const std::string& what) {
    last_.clear();
    show(done, what);
  }
  void clear() {
    if (terminal_) std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }

 private:
  int total_;
  bool terminal_;
  std::string last_;
};

/// The bundled photo first (with the model's transform), then seeded N(0,1) images: a batch with one real
/// image and no download.
visopt::Tensor make_batch(int n, int size, const visopt::io::Preprocess& transform, std::uint64_t seed) {
  std::vector<visopt::Tensor> images{visopt::io::preprocess(visopt::io::load_image(VISOPT_EXAMPLES_DATA_DIR "/sample.jpg"), transform)};
  std::mt19937_64 generator(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  while (static_cast<int>(images.size()) < n) {
    visopt::Tensor t = visopt::Tensor::empty({3, size, size});
    for (std::int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = normal(generator);
    images.push_back(t);
  }
  images.resize(static_cast<std::size_t>(n));
  return visopt::io::stack_images(images);
}

/// r = max|y - ref| / max|ref| (CONVENTIONS.md) and the share of images whose top-1 class agrees.
std::pair<double, double> compare(const visopt::Tensor& y, const visopt::Tensor& ref) {
  const float* a = y.data_as<float>();
  const float* b = ref.data_as<float>();
  const auto n = ref.dim(0), classes = ref.dim(1);
  double diff = 0, scale = 0;
  int agree = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float* ra = a + i * classes;
    const float* rb = b + i * classes;
    for (std::int64_t c = 0; c < classes; ++c) {
      diff = std::max(diff, static_cast<double>(std::abs(ra[c] - rb[c])));
      scale = std::max(scale, static_cast<double>(std::abs(rb[c])));
    }
    agree += std::max_element(ra, ra + classes) == ra + (std::max_element(rb, rb + classes) - rb) ? 1 : 0;
  }
  return {scale > 0 ? diff / scale : diff, static_cast<double>(agree) / static_cast<double>(n)};
}

/// Every backend built into this program that can run here, in the order of the table.
std::vector<std::string> backends_here() {
  std::vector<std::string> names;
  for (const std::string_view name : {visopt::backend::Reference::name, visopt::backend::OneDnn::name, visopt::backend::Cuda::name}) {
    if (visopt::backend_runs_here(name)) names.emplace_back(name);
  }
  return names;
}

using Model = visopt::models::AnyModel;

template <class Level, class Backend, class M>
Row measure(const M& model, const Settings& s, const visopt::Tensor& latency_batch, const visopt::Tensor& accuracy_batch,
            ProgressBar& progress, int done, const std::string& label) {
  progress.stage(done, label + ": compiling");
  // Both batch sizes are warmed up in compile(): the timed runs measure replays, not their first run's tuning.
  auto engine = visopt::compile<Level, Backend>(model, {.max_batch = std::max(s.batch, s.accuracy_batch),
                                                        .image_size = s.image_size,
                                                        .warmup_batches = {s.batch, s.accuracy_batch}});
  Row row;
  row.level = std::string(Level::name);
  row.backend = std::string(Backend::name);
  row.precision = engine.report().compute_precision;
  row.device = engine.report().device;
  row.compile_ms = engine.report().compile_ms;
  progress.show(done, label + ": checking " + std::to_string(s.accuracy_batch) + " images");
  row.logits = engine.run(accuracy_batch).clone();  // a copy: the engine may reuse its output's memory
  std::vector<double> samples;
  for (int i = 0; i < s.iterations; ++i) {
    progress.show(done, label + ": timing " + std::to_string(i + 1) + "/" + std::to_string(s.iterations));
    const auto start = std::chrono::steady_clock::now();
    const visopt::Tensor logits = engine.run(latency_batch);
    samples.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  const visopt::runtime::Latency latency = visopt::runtime::summarize_latency(samples);
  row.p50_ms = latency.p50;
  row.p95_ms = latency.p95;
  row.throughput = s.batch / (row.p50_ms / 1e3);
  return row;
}

std::string fixed(double v, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, v);
  return text;
}

void print_table(const std::vector<Row>& rows) {
  std::vector<std::vector<std::string>> cells{
      {"level", "backend", "precision", "p50 ms", "p95 ms", "img/s", "speed-up", "max error", "top-1"}};
  for (const Row& r : rows) {
    if (!r.error.empty()) {
      cells.push_back({r.level, r.backend, "failed: " + r.error.substr(0, 70)});
      continue;
    }
    char error[32];
    std::snprintf(error, sizeof error, "%.1e", r.max_error);
    cells.push_back({r.level, r.backend, r.precision, fixed(r.p50_ms, 2), fixed(r.p95_ms, 2), fixed(r.throughput, 1),
                     fixed(r.speedup, 2) + "x", error, fixed(100 * r.top1, 0) + "%"});
  }
  std::vector<std::size_t> width(cells[0].size(), 0);
  for (const auto& row : cells) {
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (std::size_t r = 0; r < cells.size(); ++r) {
    std::string line;
    for (std::size_t i = 0; i < cells[r].size(); ++i) {
      const std::string pad(width[i] - cells[r][i].size(), ' ');
      line += (i ? "  " : "") + (i < 3 ? cells[r][i] + pad : pad + cells[r][i]);
    }
    std::printf("%s\n", line.c_str());
    if (r == 0) std::printf("%s\n", std::string(line.size(), '-').c_str());
  }
}

int run(Settings s) {
  const std::vector<std::string> available = backends_here();
  if (s.backends.empty()) {
    // VISOPT_BACKEND narrows the demo to one backend; otherwise every backend here runs.
    if (visopt::env::backend()) s.backends = {visopt::choose_backend("")};
    else s.backends = available;
  }
  if (const auto level = visopt::env::level(); level && s.levels.size() == 4) s.levels = {visopt::choose_level("")};
  for (const auto& b : s.backends) visopt::choose_backend(b);  // unknown names fail here, listing the valid ones
  for (const auto& l : s.levels) visopt::choose_level(l);

  // Every configuration this machine can run, in table order; the reference O0 is the oracle for all.
  std::vector<std::pair<std::string, std::string>> configs{{"O0", "reference"}};
  for (const auto& b : s.backends) {
    for (const auto& l : s.levels) {
      if (visopt::level_runs_on(l, b) && !(b == "reference" && l == "O0")) configs.emplace_back(l, b);
    }
  }
  ProgressBar progress(static_cast<int>(configs.size()) + 1);
  progress.stage(0, "building " + s.model + (s.weights_path.empty() ? " with seeded random weights" : " from " + s.weights_path));
  const bool vit = s.model.starts_with("vit");
  const Model model = visopt::models::load_model(s.model, s.weights_path, s.seed, vit && s.weights_path.empty() ? s.image_size : 0);
  if (vit) s.image_size = std::get<visopt::models::ViT>(model).image_size;  // a ViT's weights fix it
  const visopt::io::Preprocess transform = visopt::models::preprocess_for(model, s.image_size);
  const visopt::Tensor accuracy_batch = make_batch(s.accuracy_batch, s.image_size, transform, s.seed + 1);
  const visopt::Tensor latency_batch = make_batch(s.batch, s.image_size, transform, s.seed + 1);
  const visopt::models::Summary summary =
      std::visit([&](const auto& m) { return visopt::models::summarize(m, {.batch = s.batch, .image_size = s.image_size}); }, model);

  std::vector<Row> rows;
  int done = 1;
  for (const auto& [level, backend] : configs) {
    const std::string label = s.model + " " + level + " " + backend;
    Row row;
    try {
      row = visopt::with_level_and_backend(level, backend, [&](auto level_tag, auto backend_tag) {
        using L = decltype(level_tag);
        using B = decltype(backend_tag);
        return std::visit([&](const auto& m) { return measure<L, B>(m, s, latency_batch, accuracy_batch, progress, done, label); },
                          model);
      });
    } catch (const std::exception& e) {
      row.level = level;
      row.backend = backend;
      row.error = e.what();
    }
    rows.push_back(std::move(row));
    ++done;
  }
  progress.clear();

  const Row& oracle = rows.front();
  for (Row& r : rows) {
    if (!r.error.empty() || !oracle.error.empty()) continue;
    std::tie(r.max_error, r.top1) = compare(r.logits, oracle.logits);
    for (const Row& base : rows) {
      if (base.backend == r.backend && base.level == "O0" && base.error.empty()) r.speedup = base.p50_ms / r.p50_ms;
    }
  }

  std::printf("%s\n\n", summary.text().c_str());
  std::printf("%s, batch %d at %dx%d, %d timed runs after compile()'s warm-up\n\n", s.model.c_str(), s.batch,
              s.image_size, s.image_size, s.iterations);
  print_table(rows);
  std::printf("\nspeed-up: over the same backend's O0 (p50). max error r = max|y - ref| / max|ref| and top-1 agreement: "
              "against the reference O0 on %d images (the bundled photo and seeded noise).\n",
              s.accuracy_batch);

  nlohmann::json j{{"model", s.model},         {"batch", s.batch},           {"image_size", s.image_size},
                   {"iterations", s.iterations}, {"accuracy_batch", s.accuracy_batch}, {"summary", summary.json()}};
  j["rows"] = nlohmann::json::array();
  for (const Row& r : rows) {
    nlohmann::json row{{"level", r.level}, {"backend", r.backend}};
    if (!r.error.empty()) {
      row["error"] = r.error;
    } else {
      row.update({{"precision", r.precision}, {"device", r.device}, {"p50_ms", r.p50_ms}, {"p95_ms", r.p95_ms},
                  {"throughput", r.throughput}, {"speedup", r.speedup}, {"max_error", r.max_error}, {"top1", r.top1},
                  {"compile_ms", r.compile_ms}});
    }
    j["rows"].push_back(row);
  }
  if (!s.json_path.empty()) {
    std::ofstream(s.json_path) << j.dump(2) << '\n';
    std::printf("wrote %s\n", s.json_path.c_str());
  }
  if (!s.chart_path.empty() && !s.json_path.empty()) {
    // The chart is matplotlib's (tools/plot_levels.py), run by VISOPT_PYTHON, else the build's interpreter.
    const std::string python = visopt::env::text("VISOPT_PYTHON").value_or(VISOPT_PYTHON_DEFAULT);
    const std::string command = "'" + python + "' '" VISOPT_SOURCE_DIR "/tools/plot_levels.py' '" + s.json_path + "' '" +
                                s.chart_path + "'";
    if (std::system(command.c_str()) == 0) {
      std::printf("wrote %s\n", s.chart_path.c_str());
    } else {
      std::fprintf(stderr, "levels: no chart: '%s' failed (it needs matplotlib: apt-get install python3-matplotlib)\n",
                   command.c_str());
    }
  }
  return std::all_of(rows.begin(), rows.end(), [](const Row& r) { return r.error.empty(); }) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  CLI::App app{"Run one model through O0 -> O3 on every backend here and compare speed and accuracy."};
  app.option_defaults()->always_capture_default();
  app.add_option("--model", s.model, std::string("model: ") + visopt::models::model_names());
  app.add_option("--weights", s.weights_path, "safetensors file, torchvision or timm names (default: seeded random weights)")
      ->check(CLI::ExistingFile);
  app.add_option("--image-size", s.image_size, "square image size (ViT: a multiple of 16)")->check(CLI::Range(32, 1024));
  app.add_option("--batch", s.batch, "images per timed run")->check(CLI::Range(1, 1024));
  app.add_option("--accuracy-batch", s.accuracy_batch, "images compared with the reference O0")->check(CLI::Range(1, 1024));
  app.add_option("--iterations", s.iterations, "timed runs per configuration")->check(CLI::Range(1, 100000));
  app.add_option("--seed", s.seed, "seed of the random weights and images");
  app.add_option("--level", s.levels, "levels, comma-separated (default: all; VISOPT_LEVEL picks one)")->delimiter(',');
  app.add_option("--backend", s.backends,
                 "backends, comma-separated (built here: " + visopt::available_backend_names() +
                     "; default: every one this machine can run; VISOPT_BACKEND picks one)")
      ->delimiter(',');
  app.add_option("--json", s.json_path, "write the table as JSON here ('' to skip)");
  app.add_option("--chart", s.chart_path, "write a PNG chart here ('' to skip; needs matplotlib)");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(std::move(s));
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nlevels: %s\n", e.what());
    return 2;
  }
}
