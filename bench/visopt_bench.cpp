// visopt_bench: times compiled visopt engines under the protocol that bench/peers.py shares with it
// (weights resident, random input, warm-up, >= 30 timed runs; median/p95/p99 latency, throughput,
// GFLOP/s, peak memory, compile time), printed as a table and appended as JSON lines (bench/README.md).
// One source, two programs: visopt_bench (C++: reference, onednn) and visopt_bench_cuda
// (visopt_bench_cuda.cu includes this file; nvcc: reference, cuda).
//
//   visopt_bench --model resnet50,vit_b_16 --batch 1,8 [--level O1,O2] [--backend onednn] [--ceiling]
//                [--json results.jsonl] [--tag run-id] [--quick --iterations 3 --image-size 64]

#include <CLI/CLI.hpp>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <filesystem>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>
#include <visopt/runtime/latency.hpp>
#include <visopt/visopt.hpp>

#if defined(VISOPT_HAS_CUDA) && defined(__CUDACC__)
#define VISOPT_BENCH_CUDA 1
#include <cuda_profiler_api.h>

#include <visopt/backend/cuda/gemm.hpp>
#endif
#if defined(VISOPT_HAS_ONEDNN)
#include <visopt/backend/onednn/linear.hpp>
#endif

// The visopt commit the rows carry: a header the build regenerates before every build (bench/commit.cmake),
// so an edit after configuring still shows as "-dirty"; -DVISOPT_GIT_COMMIT=... also works.
#if __has_include("visopt_bench_commit.hpp")
#include "visopt_bench_commit.hpp"
#endif
#ifndef VISOPT_GIT_COMMIT
#define VISOPT_GIT_COMMIT "unknown"
#endif

namespace visopt::bench {

// ---------------------------------------------------------------------------------------------
// Settings and results
// ---------------------------------------------------------------------------------------------

struct Settings {
  std::vector<std::string> models, levels;
  std::string backend;
  std::vector<int> batches{1, 8};
  int image_size = 224, iterations = 30, warmup = 5, threads = 0;
  std::uint64_t seed = 0;
  std::string json_path, tag;
  bool quick = false, ceiling = false;
  bool fresh_cache = false;  // compile each configuration with an empty algorithm cache: compile_ms is a cold compile
  bool plan_load = false;    // also save each engine's plan and time visopt::load from it (plan_load_ms)
};

using runtime::Latency;  // milliseconds here

/// One row of the results: a model at one level, backend and batch, or a matmul ceiling.
struct Result {
  std::string tool = "visopt", model, level, backend, precision, device, machine;
  int batch = 0, image_size = 0, iterations = 0, warmup = 0;
  Latency latency;
  double throughput = 0, gflops = 0, compile_ms = 0, flops_per_image = 0;
  std::optional<double> plan_load_ms;  // visopt::load from the engine's saved plan, with an empty algorithm cache
  nlohmann::json plans, loaded_plans;  // report().plans of the compiled and of the loaded engine: each stage's cost
  std::size_t peak_memory_bytes = 0, baseline_memory_bytes = 0;  // baseline: what the process held before (CPU)
  std::size_t weight_bytes = 0, activation_bytes = 0, workspace_bytes = 0;
  std::string timer, memory_method, error;
  std::vector<std::string> optimizations;  // what compile() applied
  std::vector<std::string> optimization_notes;  // each applied or skipped optimisation with its detail (why, what ran)
};


inline std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

/// Seeded N(0,1) values: what normalised images look like, and never zeros (which can run faster).
inline Tensor random_tensor(const Shape& shape, std::uint64_t seed) {
  Tensor t = Tensor::empty(shape);
  std::mt19937_64 generator(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  float* p = t.data_as<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = normal(generator);
  return t;
}

// ---------------------------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------------------------

/// CPUs this process may run on (what OpenMP and torch.set_num_threads default to).
inline int cpu_count() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

/// "AMD EPYC, 2 CPUs": the name peers.py gives the same CPU, so rows of one machine group together.
inline std::string cpu_machine_name() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) model = line.substr(line.find_first_not_of(" \t", colon + 1));
      break;
    }
  }
  return model + ", " + std::to_string(cpu_count()) + " CPUs";
}

/// Starts a new peak-RSS window: Linux resets the process's high-water mark (which getrusage's
/// ru_maxrss reports) when "5" is written to /proc/self/clear_refs. False where that is not allowed.
inline bool reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.close();
  return !clear.fail();
}

/// The resident set now, from /proc/self/statm (pages).
inline std::size_t rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

inline std::size_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<std::size_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

#if VISOPT_BENCH_CUDA
/// The GPU's own name ("NVIDIA H100 80GB HBM3"), as torch.cuda.get_device_name() gives it. Does not
/// throw: it also names the machine of a row that records why a GPU run failed.
inline std::string gpu_machine_name(int device) {
  cudaDeviceProp props{};
  if (const cudaError_t status = cudaGetDeviceProperties(&props, device); status != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string("no usable GPU (") + cudaGetErrorName(status) + ")";
  }
  return props.name;
}
#endif

/// The machine a backend's rows are grouped under: the GPU for cuda, else the CPU.
inline std::string machine_name(std::string_view backend) {
#if VISOPT_BENCH_CUDA
  if (backend == backend::Cuda::name) return gpu_machine_name(0);
#endif
  (void)backend;
  return cpu_machine_name();
}

// ---------------------------------------------------------------------------------------------
// Models and their arithmetic
// ---------------------------------------------------------------------------------------------

using Model = models::AnyModel;

// ---------------------------------------------------------------------------------------------
// Instruments: where the input lives, how one run is timed and memory measured, per backend
// ---------------------------------------------------------------------------------------------

/// CPU backends: host input, std::chrono::steady_clock around engine.run(), the process's peak RSS.
template <class B>
class Instruments {
 public:
  static constexpr const char* timer = "steady_clock";
  static constexpr const char* memory_method = "peak RSS of the process (getrusage; high-water mark reset per configuration)";

  explicit Instruments(int /*device*/) {
    if (!reset_peak_rss()) memory_note_ = " (could not reset: peak since the program started)";
    baseline_ = rss_bytes();
  }
  Tensor place(const Tensor& host) const { return host; }

  template <class Engine>
  double time(Engine& engine, const TensorView& input) const {
    const auto start = std::chrono::steady_clock::now();
    const Tensor logits = engine.run(input);
    const auto stop = std::chrono::steady_clock::now();
    return std::chrono::duration<double, std::milli>(stop - start).count();
  }

  std::size_t peak_memory() const { return peak_rss_bytes(); }
  /// The resident set when the window opened: the program, its libraries and the model's parameter tree.
  std::size_t baseline_memory() const { return baseline_; }
  std::string memory_description() const { return memory_method + memory_note_; }

 private:
  std::string memory_note_;
  std::size_t baseline_ = 0;
};

#if VISOPT_BENCH_CUDA
/// The GPU: device input (device-in/device-out, like the PyTorch peers), CUDA events on the engine's
/// stream around engine.run(), and the device memory the engine holds (cudaMemGetInfo before compile()
/// and after the timed runs).
template <>
class Instruments<backend::Cuda> {
 public:
  static constexpr const char* timer = "cuda_events";
  static constexpr const char* memory_method = "cudaMemGetInfo used delta from before compile() to after the timed runs";

  explicit Instruments(int device) : device_(checked(device)) {
    VISOPT_CUDA_CHECK(cudaSetDevice(device));
    VISOPT_CUDA_CHECK(cudaFree(nullptr));  // the CUDA context exists before the baseline: it is not the engine's
    std::size_t total = 0;
    VISOPT_CUDA_CHECK(cudaMemGetInfo(&free_before_, &total));
  }

  Tensor place(const Tensor& host) const { return backend::cuda::to_device(host, DType::f32, device_); }

  /// run() ends by synchronising its stream, so the stop event is recorded on an idle stream: the
  /// interval is the whole call (input copy, kernels or graph replay, logits copy) as a caller waiting
  /// for its result sees it, within the microseconds of one event record.
  template <class Engine>
  double time(Engine& engine, const TensorView& input) {
    const cudaStream_t stream = backend::cuda::executor_of(engine).context().stream();
    if (profile_range) VISOPT_CUDA_CHECK(cudaProfilerStart());
    start_.record(stream);
    const Tensor logits = engine.run(input);
    stop_.record(stream);
    if (profile_range) VISOPT_CUDA_CHECK(cudaProfilerStop());
    return static_cast<double>(stop_.since(start_));
  }

  /// Brackets each timed run with cudaProfilerStart/Stop, so `ncu --profile-from-start off` sees only
  /// the timed forwards (not compile(), tuning or warm-up).
  static inline bool profile_range = false;

  std::size_t peak_memory() const {
    std::size_t free_now = 0, total = 0;
    VISOPT_CUDA_CHECK(cudaMemGetInfo(&free_now, &total));
    return free_before_ > free_now ? free_before_ - free_now : 0;
  }
  std::size_t baseline_memory() const { return 0; }  // peak_memory() is already the engine's own
  std::string memory_description() const { return memory_method; }

 private:
  /// The device index, once the GPU is known to be there (before the events are made): a machine
  /// without one gets compile()'s own "no GPU is visible" message, not an event-creation failure.
  static int checked(int device) {
    (void)backend::cuda::require_device(device);
    return device;
  }

  int device_;
  std::size_t free_before_ = 0;
  backend::cuda::Event start_, stop_;
};
#endif

// ---------------------------------------------------------------------------------------------
// Progress on stderr
// ---------------------------------------------------------------------------------------------

/// One line on a terminal, rewritten in place; elsewhere (a log file) one plain line per configuration.
class Progress {
 public:
  Progress() : terminal_(isatty(fileno(stderr)) != 0) {}
  void stage(const std::string& line) {
    if (terminal_) {
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fflush(stderr);
  }
  void step(const std::string& line) {
    if (!terminal_) return;
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    std::fflush(stderr);
  }
  void clear() {
    if (terminal_) std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }

 private:
  bool terminal_;
};

// ---------------------------------------------------------------------------------------------
// One measurement
// ---------------------------------------------------------------------------------------------

/// Calls fn() `warmup` times untimed, then `iterations` times timed; fn runs once and returns its milliseconds.
template <class Fn>
Latency time_runs(int warmup, int iterations, const std::string& label, Progress& progress, Fn&& fn) {
  for (int i = 0; i < warmup; ++i) {
    progress.step(label + ": warm-up " + std::to_string(i + 1) + "/" + std::to_string(warmup));
    fn();
  }
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(iterations));
  for (int i = 0; i < iterations; ++i) {
    progress.step(label + ": timing " + std::to_string(i + 1) + "/" + std::to_string(iterations));
    samples.push_back(fn());
  }
  return runtime::summarize_latency(std::move(samples));
}

template <class Level, class B, class ModelT>
Result measure(const ModelT& model, int batch, const Settings& settings, double flops_per_image, Progress& progress) {
  const std::string label = model.name + " " + std::string(Level::name) + " " + std::string(B::name) + " batch " +
                            std::to_string(batch);
  progress.stage("compiling " + label + "…");
  runtime::CompileOptions options;
  options.max_batch = batch;
  options.num_threads = settings.threads;
  options.image_size = settings.image_size;
  // An empty cache directory of this configuration's own: nothing measured before is reused.
  const auto empty_cache = [&](const char* what) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("visopt_bench_" + std::string(what) + "_" + std::to_string(::getpid()) + "_" + model.name + "_" +
                      std::string(Level::name) + "_" + std::to_string(batch));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
  };
  if (settings.fresh_cache) options.cache_dir = empty_cache("cold").string();
  if constexpr (precision::is_quantized_v<typename Level::precision>) {
    // Calibrated on images of their own (another seed than the timed input), outside the timed compile.
    progress.stage("calibrating " + label + "…");
    options.calibration = calibrate(model, random_tensor({8, 3, settings.image_size, settings.image_size}, settings.seed + 2),
                                    {.num_threads = settings.threads});
  }
  Instruments<B> instruments(*runtime::resolve(options).device);  // VISOPT_DEVICE applies unless set  // the memory baseline comes before compile()
  auto engine = visopt::compile<Level, B>(model, options);
  const Tensor input = instruments.place(random_tensor({batch, 3, settings.image_size, settings.image_size},
                                                       settings.seed + 1));

  Result r;
  r.model = model.name;
  r.level = std::string(Level::name);
  r.backend = std::string(B::name);
  r.batch = batch;
  r.image_size = settings.image_size;
  r.iterations = settings.iterations;
  r.warmup = settings.warmup;
  r.latency = time_runs(settings.warmup, settings.iterations, label, progress,
                        [&] { return instruments.time(engine, input); });
  const runtime::Report& report = engine.report();
  r.precision = report.compute_precision;
  r.device = report.device;
  r.machine = machine_name(B::name);
  r.compile_ms = report.compile_ms;
  r.flops_per_image = flops_per_image;
  r.throughput = batch / (r.latency.p50 / 1e3);
  r.gflops = flops_per_image * batch / (r.latency.p50 / 1e3) / 1e9;
  r.peak_memory_bytes = instruments.peak_memory();
  r.baseline_memory_bytes = instruments.baseline_memory();
  r.weight_bytes = report.weight_bytes;
  r.activation_bytes = report.activation_bytes;
  r.workspace_bytes = report.workspace_bytes;
  r.plans = report.json()["plans"];
  r.timer = Instruments<B>::timer;
  r.memory_method = instruments.memory_description();
  for (const auto& o : report.optimizations) {
    if (o.applied) r.optimizations.push_back(o.name);
    std::string note = o.applied ? "applied " : "skipped ";  // appended in steps: GCC 12 warns (-Wrestrict) on a + chain
    note += o.name;
    note += ": ";
    note += o.detail;
    r.optimization_notes.push_back(std::move(note));
  }
  if (settings.plan_load) {
    progress.stage("saving and loading the plan of " + label + "…");
    const auto dir = empty_cache("plan");
    const std::string plan = (dir / "engine.plan").string();
    engine.save(plan);
    runtime::CompileOptions load_options = options;
    load_options.cache_dir = dir.string();  // empty: only the plan can spare the search
    const auto started = std::chrono::steady_clock::now();
    auto loaded = visopt::load<Level, B>(model, plan, load_options);
    r.plan_load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    r.loaded_plans = loaded.report().json()["plans"];
    require(loaded.report().cache_misses == 0, label, ": loading its plan searched ", loaded.report().cache_misses,
            " algorithms; a plan must cover every shape the engine was warmed up at");
    std::filesystem::remove_all(dir);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Matmul ceilings: what the machine's best GEMM reaches, to read each model's GFLOP/s against
// ---------------------------------------------------------------------------------------------

inline Result ceiling_row(std::string backend_name, std::string precision, std::string device, std::string machine,
                          std::int64_t n, Latency latency, int warmup, int iterations) {
  Result r;
  r.tool = "ceiling";
  r.model = "matmul_" + std::to_string(n);
  r.level = "-";
  r.backend = std::move(backend_name);
  r.precision = std::move(precision);
  r.device = std::move(device);
  r.machine = std::move(machine);
  r.batch = 1;
  r.iterations = iterations;
  r.warmup = warmup;
  r.latency = latency;
  r.flops_per_image = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  r.gflops = r.flops_per_image / (latency.p50 / 1e3) / 1e9;
  r.throughput = 1e3 / latency.p50;
  return r;
}

#if defined(VISOPT_HAS_ONEDNN)
/// A 2048³ oneDNN matmul (weights prepacked, all threads) in fp32, and in bf16 where the CPU has it,
/// through the same LinearOp the oneDNN backend runs a linear layer with.
inline std::vector<Result> cpu_ceiling(const Settings& settings, Progress& progress) {
  namespace onednn = backend::onednn;
  constexpr std::int64_t n = 2048;
  onednn::Context context(settings.threads);
  const nn::LinearParams params{random_tensor({n, n}, settings.seed + 2), Tensor{}};
  const Tensor x32 = random_tensor({n, n}, settings.seed + 3);
  std::vector<DType> types{DType::f32};
  if (onednn::cpu_features().bf16) types.push_back(DType::bf16);
  types.push_back(DType::s8);  // O4's int8 matmul: s8 × s8 weights, int32 accumulation, f32 out
  std::vector<Result> rows;
  for (const DType dtype : types) {
    const std::string label = "ceiling: onednn matmul " + std::to_string(n) + "³ " + std::string(dtype_name(dtype));
    progress.stage(label + "…");
    onednn::LinearOp op(params, {});
    runtime::BatchPlans<> plans;  // the matmul's primitive, made by the first (warm-up) run
    Tensor x = dtype == DType::s8 ? Tensor::empty({n, n}, DType::s8).as_quantized({1.0f / 32, DType::s8}) : x32.to(dtype);
    if (dtype == DType::s8) {  // N(0,1) in steps of 1/32, clamped to s8
      for (std::int64_t i = 0; i < x.numel(); ++i) {
        x.data_as<std::int8_t>()[i] = static_cast<std::int8_t>(std::clamp(std::nearbyint(x32.data_as<float>()[i] * 32), -127.0f, 127.0f));
      }
    }
    const Tensor y = Tensor::empty({n, n}, dtype == DType::s8 ? DType::f32 : dtype);
    context.apply_threads();
    const int warmup = std::max(2, settings.warmup), iterations = std::max(settings.quick ? 1 : 10, settings.iterations);
    const Latency latency = time_runs(warmup, iterations, label, progress, [&] {
      const auto start = std::chrono::steady_clock::now();
      runtime::with_plan(plans, x.shape(), [&] { op.run(context, plans, x, y); });
      context.wait();
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    });
    const std::string device = "cpu: " + onednn::cpu_features().isa_name + " (" + std::to_string(context.threads()) +
                               " threads)";
    rows.push_back(ceiling_row("onednn", dtype == DType::f32 ? "fp32" : dtype == DType::bf16 ? "bf16 (fp32 accumulation)" : "int8 (int32 accumulation)", device,
                               cpu_machine_name(), n, latency, warmup, iterations));
    rows.back().timer = "steady_clock";
  }
  return rows;
}
#endif

#if VISOPT_BENCH_CUDA
/// An 8192³ cuBLASLt GEMM in fp16, bf16 and FP8 e4m3 (fp32 accumulation, fp16 output; cuBLASLt's
/// heuristic algorithm), through the same Gemm the CUDA backend runs a linear layer with, timed with
/// CUDA events.
inline std::vector<Result> gpu_ceiling(const Settings& settings, Progress& progress) {
  namespace cuda = backend::cuda;
  constexpr std::int64_t n = 8192;
  cuda::Context context(0, /*measured_tuning=*/false, "");
  const nn::LinearParams params{random_tensor({n, n}, settings.seed + 2), Tensor{}};
  const Tensor x32 = random_tensor({n, n}, settings.seed + 3);
  std::vector<Result> rows;
  for (const DType dtype : {DType::f16, DType::bf16, DType::e4m3}) {
    const std::string label = "ceiling: cuBLASLt GEMM " + std::to_string(n) + "³ " + std::string(dtype_name(dtype));
    progress.stage(label + "…");
    const bool fp8 = dtype == DType::e4m3;  // O4's matmul: e4m3 × e4m3 (one step per tensor), fp16 out
    cuda::Gemm gemm(context, params, {}, fp8 ? DType::f16 : dtype, CUBLAS_COMPUTE_32F, fp8);
    Tensor x = cuda::to_device(x32, fp8 ? DType::f16 : dtype, 0);
    if (fp8) {  // N(0,1) in e4m3 with its largest value at 4 sigma
      const Tensor q = Tensor::empty(x.shape(), DType::e4m3, x.device()).as_quantized({4.0f / e4m3_largest, DType::e4m3});
      cuda::rescale(context, x, q, e4m3_largest / 4);
      x = q;
    }
    Tensor y = gemm.output(context, x);
    const cuda::Gemm::Plan plan = gemm.plan(context, x, y, nullptr);  // cuBLASLt's heuristic choice
    cuda::Event start, stop;
    const int warmup = std::max(2, settings.warmup), iterations = std::max(settings.quick ? 1 : 10, settings.iterations);
    const Latency latency = time_runs(warmup, iterations, label, progress, [&] {
      start.record(context.stream());
      gemm.forward(context, plan, x, y, nullptr);
      stop.record(context.stream());
      return static_cast<double>(stop.since(start));
    });
    rows.push_back(ceiling_row("cublaslt", fp8 ? "fp8 e4m3 (fp32 accumulation)" : dtype == DType::f16 ? "fp16 (fp32 accumulation)" : "bf16 (fp32 accumulation)",
                               "cuda:0 " + context.device().description(), gpu_machine_name(0), n, latency, warmup,
                               iterations));
    rows.back().timer = "cuda_events";
  }
  return rows;
}
#endif

// ---------------------------------------------------------------------------------------------
// Output: JSON lines and the table
// ---------------------------------------------------------------------------------------------

inline nlohmann::json to_json(const Result& r, const Settings& settings, const std::string& date) {
  auto number = [&](double v) { return r.error.empty() ? nlohmann::json(v) : nlohmann::json(nullptr); };
  const bool model_row = r.tool == "visopt" && r.error.empty();  // ceilings compile nothing and measure no memory
  nlohmann::json j{{"tool", r.tool},
                   {"model", r.model},
                   {"level", r.level},
                   {"backend", r.backend},
                   {"precision", r.precision},
                   {"batch", r.batch},
                   {"image_size", r.image_size},
                   {"device", r.device},
                   {"machine", r.machine},
                   {"date", date},
                   {"commit", VISOPT_GIT_COMMIT},
                   {"median_ms", number(r.latency.p50)},
                   {"p95_ms", number(r.latency.p95)},
                   {"p99_ms", number(r.latency.p99)},
                   {"throughput", number(r.throughput)},
                   {"gflops", number(r.gflops)},
                   {"peak_memory_bytes", model_row ? nlohmann::json(r.peak_memory_bytes) : nlohmann::json(nullptr)},
                   {"baseline_memory_bytes", r.baseline_memory_bytes},
                   {"compile_ms", model_row ? nlohmann::json(r.compile_ms) : nlohmann::json(nullptr)},
                   {"plan_load_ms", r.plan_load_ms ? nlohmann::json(*r.plan_load_ms) : nlohmann::json(nullptr)},
                   {"plans", model_row && !r.plans.is_null() ? r.plans : nlohmann::json(nullptr)},
                   {"loaded_plans", r.plan_load_ms ? r.loaded_plans : nlohmann::json(nullptr)},
                   {"fresh_cache", settings.fresh_cache},
                   {"iterations", r.iterations},
                   {"warmup", r.warmup},
                   {"flops_per_image", r.flops_per_image},
                   {"timer", r.timer},
                   {"memory_method", r.memory_method},
                   {"tag", settings.tag},
                   {"quick", settings.quick}};
  if (r.tool == "visopt") {
    j["weight_bytes"] = r.weight_bytes;
    j["activation_bytes"] = r.activation_bytes;
    j["workspace_bytes"] = r.workspace_bytes;
    j["optimizations"] = r.optimizations;
    j["optimization_notes"] = r.optimization_notes;
  }
  if (!r.error.empty()) j["error"] = r.error;
  return j;
}

/// The ceiling a row's GFLOP/s is read against: the one of its own precision ("fp32", "bf16", "fp16",
/// the first word of the precision), else the fastest one measured.
inline const Result* ceiling_for(const Result& r, const std::vector<Result>& ceilings) {
  const Result* best = nullptr;
  const std::string word = r.precision.substr(0, r.precision.find(' '));
  for (const Result& c : ceilings) {
    if (!c.error.empty() || c.machine != r.machine) continue;
    if (c.precision.substr(0, c.precision.find(' ')) == word) return &c;
    if (!best || c.gflops > best->gflops) best = &c;
  }
  return best;
}

inline std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

inline void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (std::size_t r = 0; r < rows.size(); ++r) {
    std::string line;
    for (std::size_t i = 0; i < rows[r].size(); ++i) {
      const bool text = i < 4;  // model, level, backend, precision: left-aligned; numbers right-aligned
      const std::string pad(width[i] - rows[r][i].size(), ' ');
      line += (i ? "  " : "") + (text ? rows[r][i] + pad : pad + rows[r][i]);
    }
    std::cout << line << '\n';
    if (r == 0) std::cout << std::string(line.size(), '-') << '\n';
  }
}

inline void print_results(const std::vector<Result>& results, const std::vector<Result>& ceilings) {
  if (!ceilings.empty()) {
    std::cout << "\nMatmul ceilings:\n";
    std::vector<std::vector<std::string>> rows{{"ceiling", "backend", "precision", "machine", "median ms", "GFLOP/s"}};
    for (const Result& c : ceilings) {
      rows.push_back({c.model, c.backend, c.precision, c.machine, fixed(c.latency.p50, 3), fixed(c.gflops, 1)});
    }
    print_table(rows);
  }
  if (results.empty()) return;
  std::cout << "\nResults (latency in ms; peak memory in MiB):\n";
  std::vector<std::vector<std::string>> rows{{"model", "level", "backend", "precision", "batch", "median", "p95", "p99",
                                              "img/s", "GFLOP/s", "% ceiling", "peak MiB", "compile ms"}};
  for (const Result& r : results) {
    if (!r.error.empty()) {
      rows.push_back({r.model, r.level, r.backend, "error: " + r.error.substr(0, 60), std::to_string(r.batch)});
      continue;
    }
    const Result* c = ceiling_for(r, ceilings);
    rows.push_back({r.model, r.level, r.backend, r.precision, std::to_string(r.batch), fixed(r.latency.p50, 3),
                    fixed(r.latency.p95, 3), fixed(r.latency.p99, 3), fixed(r.throughput, 1), fixed(r.gflops, 1),
                    c ? fixed(100.0 * r.gflops / c->gflops, 1) + "% " + c->precision.substr(0, c->precision.find(' ')) : "-",
                    fixed(static_cast<double>(r.peak_memory_bytes) / (1 << 20), 1), fixed(r.compile_ms, 0)});
  }
  print_table(rows);
}

class JsonLines {
 public:
  explicit JsonLines(const std::string& path) {
    if (path.empty()) return;
    file_.open(path, std::ios::app);
    require(file_.good(), "cannot open '", path, "' to append results");
  }
  void write(const nlohmann::json& row) {
    if (!file_.is_open()) return;
    file_ << row.dump() << '\n';
    file_.flush();  // rows survive a crash later in the run
  }

 private:
  std::ofstream file_;
};

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

inline int run(Settings settings) {
  if (settings.backend.empty()) settings.backend = fastest_backend_here();
  if (settings.levels.empty()) {
    for (const char* level : {"O0", "O1", "O2", "O3", "O4"}) {
      if (level_runs_on(level, settings.backend)) settings.levels.emplace_back(level);
    }
  }
  // Unknown names, and a level the backend cannot run, fail here with the dispatch's message, before any work.
  for (const auto& level : settings.levels) with_level_and_backend(level, settings.backend, [](auto, auto) { return 0; });
  require(settings.quick || settings.iterations >= 30, "--iterations ", settings.iterations,
          " is below the protocol's 30 timed runs (CONVENTIONS.md, Benchmarks); add --quick for a smoke test");
  require(settings.iterations >= 1 && settings.warmup >= 0, "--iterations must be >= 1 and --warmup >= 0");
  require(!settings.models.empty() || settings.ceiling, "name at least one --model, or --ceiling");

  JsonLines json(settings.json_path);
  Progress progress;
  std::vector<Result> results, ceilings;
  int failures = 0;
  auto record = [&](Result r, std::vector<Result>& into) {
    json.write(to_json(r, settings, utc_now()));
    failures += r.error.empty() ? 0 : 1;
    into.push_back(std::move(r));
  };

  if (settings.ceiling) {
    try {
#if VISOPT_BENCH_CUDA
      if (settings.backend == backend::Cuda::name) {
        for (Result& r : gpu_ceiling(settings, progress)) record(std::move(r), ceilings);
      }
#endif
#if defined(VISOPT_HAS_ONEDNN)
      for (Result& r : cpu_ceiling(settings, progress)) record(std::move(r), ceilings);
#endif
      if (ceilings.empty()) {
        progress.clear();
        std::cerr << "visopt_bench: --ceiling needs oneDNN (visopt_bench built with visopt::onednn) on the CPU, or "
                     "the cuda backend in visopt_bench_cuda; no ceiling measured\n";
      }
    } catch (const std::exception& e) {
      progress.clear();
      std::cerr << "visopt_bench: the ceiling failed: " << e.what() << '\n';
      ++failures;
    }
  }

  for (const std::string& name : settings.models) {
    progress.stage("building " + name + " with random weights…");
    std::optional<Model> model;
    std::string build_error;  // a model that cannot be built (a ViT at a size that is no multiple of its patch) fails its rows
    double flops = 0;
    try {
      model = models::model_by_name(name, nn::RandomWeights{settings.seed}, settings.image_size);  // a ResNet takes any size
      flops = 2.0 * static_cast<double>(
                        std::visit([&](const auto& m) { return models::multiply_adds(m, settings.image_size); }, *model));
    } catch (const std::exception& e) {
      build_error = e.what();
    }
    for (const std::string& level : settings.levels) {
      for (const int batch : settings.batches) {
        Result r;
        try {
          if (!model) throw Error(build_error);
          r = with_level_and_backend(level, settings.backend, [&](auto level_tag, auto backend_tag) {
            using L = decltype(level_tag);
            using B = decltype(backend_tag);
            return std::visit([&](const auto& m) { return measure<L, B>(m, batch, settings, flops, progress); }, *model);
          });
        } catch (const std::exception& e) {
          progress.clear();
          std::cerr << "visopt_bench: " << name << " " << level << " " << settings.backend << " batch " << batch
                    << " failed: " << e.what() << '\n';
          r = Result{};
          r.model = name;
          r.level = level;
          r.backend = settings.backend;
          r.batch = batch;
          r.image_size = settings.image_size;
          r.machine = machine_name(settings.backend);
          r.flops_per_image = flops;
          r.error = e.what();
        }
        record(std::move(r), results);
      }
    }
  }
  progress.clear();
  print_results(results, ceilings);
  std::cout << "\nvisopt " << VISOPT_GIT_COMMIT << ", " << settings.iterations << " timed runs after " << settings.warmup
            << " warm-up runs" << (settings.quick ? " (--quick: not a measurement to publish)" : "") << '\n';
  return failures == 0 ? 0 : 1;
}

}  // namespace visopt::bench

int main(int argc, char** argv) {
  using visopt::bench::Settings;
  Settings settings;
  CLI::App app{"visopt_bench: times visopt engines under the protocol bench/peers.py shares (bench/README.md)"};
  app.option_defaults()->always_capture_default();
  app.add_option("--model", settings.models, "Models, comma-separated: " + visopt::models::model_names())
      ->delimiter(',')
      ->check([](const std::string& name) {  // the registry's names; the message lists them
        try {
          visopt::models::parse_model_name(name);
          return std::string();
        } catch (const visopt::Error& e) {
          return std::string(e.what());
        }
      });
  app.add_option("--level", settings.levels, "Levels, comma-separated (O0,O1,O2,O3,O4); default: all the backend supports (O4 calibrates on 8 random images of another seed first)")
      ->delimiter(',');
  app.add_option("--backend", settings.backend,
                 "reference, onednn or cuda (built here: " + visopt::available_backend_names() +
                     "); default: cuda if built and a GPU is there, else onednn if built, else reference");
  app.add_option("--batch", settings.batches, "Batch sizes, comma-separated")->delimiter(',')->check(CLI::PositiveNumber);
  app.add_option("--image-size", settings.image_size, "Square image size (ViT: a multiple of the patch)")
      ->check(CLI::Range(32, 4096));
  app.add_option("--iterations", settings.iterations, "Timed runs per configuration (>= 30 unless --quick)");
  app.add_option("--warmup", settings.warmup, "Untimed runs before timing, after compile()'s own warm-up");
  app.add_option("--threads", settings.threads, "CPU threads (0: OpenMP's default, every CPU of this process)");
  app.add_option("--seed", settings.seed, "Seed of the random weights and input");
  app.add_option("--json", settings.json_path, "Append one JSON line per result to this file");
  app.add_option("--tag", settings.tag, "Free text carried in every JSON row (tools/bench.sh: the run's id)");
  app.add_flag("--quick", settings.quick, "Allow fewer than 30 timed runs (a smoke test; rows say quick: true)");
  app.add_flag("--ceiling", settings.ceiling, "Measure the matmul ceiling first (CPU: oneDNN 2048³; GPU: cuBLASLt 8192³)");
  app.add_flag("--fresh-cache", settings.fresh_cache,
               "Compile each configuration with an empty algorithm cache, so compile_ms is a cold compile");
  app.add_flag("--plan-load", settings.plan_load,
               "Also save each engine's plan and time visopt::load from it with an empty cache (plan_load_ms)");
  bool print_machine = false, print_commit = false;
  app.add_flag("--print-machine", print_machine, "Print the machine name rows are grouped under, and exit");
  app.add_flag("--print-commit", print_commit, "Print the visopt commit this program was built from, and exit");
#if VISOPT_BENCH_CUDA
  app.add_flag("--profile-range", visopt::bench::Instruments<visopt::backend::Cuda>::profile_range,
               "Bracket each timed run with cudaProfilerStart/Stop (for ncu --profile-from-start off)");
#endif
  CLI11_PARSE(app, argc, argv);
  try {
    if (print_machine) {
      std::cout << visopt::bench::machine_name(settings.backend.empty() ? visopt::fastest_backend_here() : settings.backend)
                << '\n';
      return 0;
    }
    if (print_commit) {
      std::cout << VISOPT_GIT_COMMIT << '\n';
      return 0;
    }
    return visopt::bench::run(std::move(settings));
  } catch (const std::exception& e) {
    std::cerr << "\nvisopt_bench: " << e.what() << '\n';
    return 2;
  }
}
