// The CUDA backend against the PyTorch oracle (fixtures made on the GPU machine by the same script):
// every fixture model × O0..O3 within CONVENTIONS.md's tolerances, graph replay at two batch sizes,
// the algorithm cache round trip, device-resident inputs, and the error paths.

#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <visopt/visopt.hpp>

#include "catch.hpp"
#include "oracle.hpp"
#include "stress.hpp"

using namespace visopt;
using visopt::testing::Agreement;
using visopt::testing::compare_logits;
using visopt::testing::first_images;
using visopt::testing::fixture;
using visopt::testing::pattern_images;

namespace {

/// `fixture_metadata`: the fixture's io metadata, which widens the bf16 and TF32 bounds to PyTorch's
/// own error on it (visopt::testing::pytorch_bounded); without it, CONVENTIONS.md's bounds.
template <class Level>
void check_agreement(const Agreement& a, const char* what, const std::map<std::string, std::string>& fixture_metadata = {}) {
  INFO(what << " at " << Level::name << ": r=" << a.relative_error << " cosine=" << a.cosine << " top1=" << a.top1);
  using visopt::testing::Tolerance;
  const Tolerance bound = [&] {
    if constexpr (std::is_same_v<typename Level::precision, precision::bf16>) return visopt::testing::bf16_tolerance_of(fixture_metadata);
    else if constexpr (precision::is_reduced_v<typename Level::precision>) return visopt::testing::half_tolerance;
    else if constexpr (std::is_same_v<typename Level::precision, precision::tf32>) return visopt::testing::tf32_tolerance_of(fixture_metadata);
    else return visopt::testing::fp32_tolerance;
  }();
  INFO("bound: r <= " << bound.relative_error << ", cosine >= " << bound.min_cosine);
  visopt::testing::check_agreement(a, bound);
}

struct Fixture {
  io::SafeTensors weights, io;
  Tensor input, logits;
  explicit Fixture(const std::string& name, const std::string& weights_file = "")
      : weights(io::SafeTensors::open(fixture(weights_file.empty() ? name + ".weights.safetensors" : weights_file))),
        io(io::SafeTensors::open(fixture(name + ".io.safetensors"))),
        input(io.load("input")),
        logits(io.load("logits")) {}
  int image_size() const { return static_cast<int>(input.dim(2)); }
  int batch() const { return static_cast<int>(input.dim(0)); }
};

template <class Level, class Model>
void check_level(const Model& model, const Fixture& f, const char* what) {
  auto engine = compile<Level, backend::Cuda>(model, {.max_batch = f.batch(), .image_size = f.image_size()});
  check_agreement<Level>(compare_logits(engine.run(f.input), f.logits), what, f.io.metadata());
}

template <class Model>
void check_all_levels(const Model& model, const Fixture& f, const char* what) {
  check_level<O0>(model, f, what);
  check_level<O1>(model, f, what);
  check_level<O2>(model, f, what);
  check_level<O3>(model, f, what);
  check_level<O3::with<precision::bf16>>(model, f, what);
}

std::size_t free_device_memory() {
  std::size_t free = 0, total = 0;
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  REQUIRE(cudaMemGetInfo(&free, &total) == cudaSuccess);
  return free;
}

std::filesystem::path fresh_directory(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

TEST_CASE("cuda: resnet18 at 64x64, every level", "[gpu][models]") {
  const Fixture f("resnet18_64");
  check_all_levels(models::resnet18(f.weights), f, "resnet18_64");
}
TEST_CASE("cuda: resnet50 at 64x64, every level", "[gpu][models]") {
  const Fixture f("resnet50_64");
  check_all_levels(models::resnet50(f.weights), f, "resnet50_64");
}
TEST_CASE("cuda: resnet50 at 224x224, every level", "[gpu][models]") {
  const Fixture f("resnet50_224");
  check_all_levels(models::resnet50(f.weights), f, "resnet50_224");
}
TEST_CASE("cuda: resnet34, resnet101 and resnet152 at 64x64, every level", "[gpu][models]") {
  const Fixture r34("resnet34_64");
  check_all_levels(models::resnet34(r34.weights), r34, "resnet34_64");
  const Fixture r101("resnet101_64");
  check_all_levels(models::resnet101(r101.weights), r101, "resnet101_64");
  const Fixture r152("resnet152_64");
  check_all_levels(models::resnet152(r152.weights), r152, "resnet152_64");
}
TEST_CASE("cuda: vit_ti_16 (torchvision and timm names), every level", "[gpu][models]") {
  const Fixture f("vit_ti16_64");
  check_all_levels(models::vit_ti_16(f.weights), f, "vit_ti16_64");
  const Fixture timm("vit_ti16_64", "vit_ti16_64.timm.safetensors");
  check_level<O3>(models::vit_ti_16(timm.weights), timm, "vit_ti16_64 timm");
}
TEST_CASE("cuda: deit_ti_16_distilled (two prefix tokens, two heads), every level", "[gpu][models][deit]") {
  const Fixture f("deit_ti16_64");
  check_all_levels(models::deit(models::ViTSize::tiny, 16, f.weights, true), f, "deit_ti16_64");
}
TEST_CASE("cuda: vit_s_32 and vit_b_16 at 64x64, every level", "[gpu][models]") {
  const Fixture s("vit_s32_64");
  check_all_levels(models::vit_s_32(s.weights), s, "vit_s32_64");
  const Fixture b("vit_b16_64");
  check_all_levels(models::vit_b_16(b.weights), b, "vit_b16_64");
}
TEST_CASE("cuda: vit_b_16 at 224x224, every level", "[gpu][models]") {
  const Fixture f("vit_b16_224");
  check_all_levels(models::vit_b_16(f.weights), f, "vit_b16_224");
}
TEST_CASE("cuda: vit_l_16 at 64x64, every level", "[gpu][models]") {
  const Fixture f("vit_l16_64");
  check_all_levels(models::vit_l_16(f.weights), f, "vit_l16_64");
}

TEST_CASE("cuda: O3 replays graphs at two batch sizes and matches eager O2", "[gpu][graph]") {
  const Fixture f("resnet18_64");
  const auto model = models::resnet18(f.weights);
  // Heuristic tuning on both sides: the same algorithms, so replay and eager must agree to the bit.
  auto graph = compile<O3::with<tuning::heuristic>, backend::Cuda>(model, {.max_batch = 8, .image_size = 64, .warmup_batches = {3}});
  CHECK(backend::cuda::executor_of(graph).graphs_captured() == 2);  // max_batch and warmup_batches: both captured inside compile()
  // One plan per batch size, built from its planning forward: ResNet-18's 20 convolutions and its FC.
  const auto& plans = graph.report().plans;
  REQUIRE(plans.size() == 2);
  CHECK(plans[0].input == std::vector<std::int64_t>{8, 3, 64, 64});
  CHECK(plans[1].input == std::vector<std::int64_t>{3, 3, 64, 64});
  for (const auto& plan : plans) {
    INFO(plan.text());
    CHECK(plan.operations == 21);
    CHECK(plan.steps == 21);
    CHECK(plan.captured);
  }
  auto eager = compile<O2::with<tuning::heuristic>, backend::Cuda>(model, {.max_batch = 8, .image_size = 64});
  REQUIRE(eager.report().plans.size() == 1);
  CHECK_FALSE(eager.report().plans[0].captured);
  CHECK(backend::cuda::executor_of(eager).plans() == 1);
  for (int round = 0; round < 2; ++round) {
    for (std::int64_t n : {8, 3}) {
      const Tensor images = first_images(f.input, n);
      const Tensor replayed = graph.run(images);
      const Agreement vs_eager = compare_logits(replayed, eager.run(images));
      CHECK(vs_eager.relative_error == 0.0);
      check_agreement<O3>(compare_logits(replayed, first_images(f.logits, n)), "graph replay");
    }
  }
  CHECK(backend::cuda::executor_of(graph).graphs_captured() == 2);
  CHECK(backend::cuda::executor_of(eager).plans() == 2);  // batch 3 planned by its first run()
  // Device weights: fp16 at O3 against fp32 at O1 (both folded); each conv also keeps an fp32 copy of its bias.
  const auto fp32 = compile<O1::with<tuning::heuristic>, backend::Cuda>(model, {.max_batch = 1, .image_size = 64, .warmup = 0});
  const double ratio = double(graph.report().weight_bytes) / double(fp32.report().weight_bytes);
  INFO("device weights: O3 " << graph.report().weight_bytes << " B, O1 " << fp32.report().weight_bytes << " B");
  CHECK(fp32.report().weight_bytes >= models::summarize(model, {.image_size = 64}).levels[1].weight_bytes);
  CHECK((ratio > 0.45 && ratio < 0.55));
  CHECK(graph.report().has("cuda_graph"));
  CHECK(graph.report().has("channels_last"));
  CHECK(graph.report().has("fp16"));
  CHECK_FALSE(graph.report().has("fused_attention"));  // a ResNet has no attention to fuse
}

TEST_CASE("cuda: run() takes device tensors and returns device logits", "[gpu][graph]") {
  const Fixture f("vit_ti16_64");
  auto engine = compile<O3, backend::Cuda>(models::vit_ti_16(f.weights), {.max_batch = 32});
  Tensor device_input = Tensor::empty(f.input.shape(), DType::f32, Device::cuda());
  REQUIRE(cudaMemcpy(device_input.data(), f.input.data(), f.input.nbytes(), cudaMemcpyHostToDevice) == cudaSuccess);
  const Tensor device_logits = engine.run(device_input);
  REQUIRE(device_logits.device() == Device::cuda());
  Tensor host = Tensor::empty(device_logits.shape());
  REQUIRE(cudaMemcpy(host.data(), device_logits.data(), host.nbytes(), cudaMemcpyDeviceToHost) == cudaSuccess);
  check_agreement<O3>(compare_logits(host, f.logits), "device input");
  CHECK(engine.report().text().find("[applied] fused_attention: 12 attention layer(s)") != std::string::npos);
}

TEST_CASE("cuda: a saved plan rebuilds resnet50 O3 and vit_b_16 O3 with nothing searched", "[gpu][plan]") {
  for (const bool vit : {false, true}) {
    const models::AnyModel any = vit ? models::AnyModel(models::vit_b_16(models::RandomWeights{8}))
                                     : models::AnyModel(models::resnet50(models::RandomWeights{8}));
    std::visit([&](const auto& model) {
      const auto cold_cache = fresh_directory("visopt_plan_cold"), empty_cache = fresh_directory("visopt_plan_empty");
      const auto plan = (cold_cache / "engine.plan").string();
      Tensor images = Tensor::empty({4, 3, 224, 224});
      for (std::int64_t i = 0; i < images.numel(); ++i) images.data_as<float>()[i] = static_cast<float>((i * 37) % 101) / 50.0f - 1.0f;
      const auto started = std::chrono::steady_clock::now();
      auto engine = compile<O3, backend::Cuda>(model, {.max_batch = 4, .cache_dir = cold_cache.string(), .warmup_batches = {1}});
      const double cold_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
      engine.save(plan);
      const Tensor expected = engine.run(images);

      const auto loading = std::chrono::steady_clock::now();
      auto loaded = load<O3, backend::Cuda>(model, plan, {.cache_dir = empty_cache.string()});
      const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - loading).count();
      std::printf("cuda plan %-9s O3 batch 4 (+1): cold compile %.0f ms (%d searched), load from plan %.0f ms (%d searched)\n",
                  model.name.c_str(), cold_ms, engine.report().cache_misses, load_ms, loaded.report().cache_misses);
      CHECK(engine.report().cache_misses > 0);   // the cold compile searched
      CHECK(loaded.report().cache_misses == 0);  // the load searched nothing
      CHECK(loaded.report().cache_hits > 0);
      CHECK(loaded.report().has("saved_plan"));
      CHECK(loaded.options().max_batch == 4);
      CHECK(loaded.options().warmup_batches == std::vector<int>{1});
      CHECK(!std::filesystem::exists(empty_cache / "cuda-algorithms.json"));  // a plan's choices stay in memory
      CHECK(compare_logits(loaded.run(images), expected).relative_error <= 1e-2);
      // The plan of O3 is not O2's.
      VISOPT_REQUIRE_ERROR((load<O2, backend::Cuda>(model, plan)), "level is \"O3\" in the plan, \"O2\" here");
    }, any);
  }
}

TEST_CASE("cuda: the algorithm cache is written, read back, and ignored when corrupt or foreign", "[gpu][cache]") {
  const auto dir = fresh_directory("visopt_cache_test");
  const auto model = models::resnet18(models::RandomWeights{5});
  Tensor images = Tensor::empty({2, 3, 64, 64});
  for (std::int64_t i = 0; i < images.numel(); ++i) images.data_as<float>()[i] = static_cast<float>((i * 37) % 101) / 50.0f - 1.0f;
  CompileOptions options{.max_batch = 2, .cache_dir = dir.string(), .image_size = 64};
  Tensor first;
  {
    auto engine = compile<O1, backend::Cuda>(model, options);
    first = engine.run(images);
    CHECK(backend::cuda::executor_of(engine).context().cache()->misses() > 0);
  }  // the cache is saved when the engine goes
  const auto file = dir / "cuda-algorithms.json";
  REQUIRE(std::filesystem::exists(file));
  {
    auto engine = compile<O1, backend::Cuda>(model, options);
    const auto* cache = backend::cuda::executor_of(engine).context().cache();
    CHECK(cache->hits() > 0);
    CHECK(cache->misses() == 0);  // a second compile() searches nothing
    CHECK(compare_logits(engine.run(images), first).relative_error <= 1e-2);
  }
  std::ofstream(file, std::ios::trunc) << "{ not json";
  {
    auto engine = compile<O1, backend::Cuda>(model, options);
    const auto* cache = backend::cuda::executor_of(engine).context().cache();
    CHECK(cache->warning().find("ignoring") != std::string::npos);
    CHECK(cache->misses() > 0);  // nothing was taken from the corrupt file: every shape was searched again
    CHECK(compare_logits(engine.run(images), first).relative_error <= 1e-2);
  }
  std::ofstream(file, std::ios::trunc)
      << R"({"format": "visopt-algorithm-cache", "version": 1, "identity": "another GPU", "entries": {}})";
  {
    auto engine = compile<O1, backend::Cuda>(model, options);
    CHECK(backend::cuda::executor_of(engine).context().cache()->warning().find("written for another GPU") != std::string::npos);
  }
  // The same GPU with another cuDNN version: its algorithm choices may not exist or be best here.
  {
    std::remove(file.c_str());
    { auto writer = compile<O1, backend::Cuda>(model, options); }  // the cache file is written when the engine goes
    const nlohmann::json written = nlohmann::json::parse(std::ifstream(dir / "cuda-algorithms.json"), nullptr, false);
    REQUIRE(written.is_object());
    const std::string identity = written.value("identity", "");
    const auto at = identity.find(" cudnn ");
    REQUIRE(at != std::string::npos);
    const std::string foreign = identity.substr(0, at) + " cudnn 1" + identity.substr(identity.find(' ', at + 7));
    std::ofstream(file, std::ios::trunc) << nlohmann::json{{"format", "visopt-algorithm-cache"}, {"version", 1},
                                                           {"identity", foreign}, {"entries", nlohmann::json::object()}};
    auto engine = compile<O1, backend::Cuda>(model, options);
    const auto* cache = backend::cuda::executor_of(engine).context().cache();
    CHECK(cache->warning().find("it was written for " + foreign + ", this is " + identity) != std::string::npos);
    CHECK(cache->misses() > 0);
    CHECK(compare_logits(engine.run(images), first).relative_error <= 1e-2);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("cuda: out of memory at compile() is a visopt::Error, and a smaller compile() still works", "[gpu][errors]") {
  const auto model = models::resnet50(models::RandomWeights{});
  { auto warm = compile<O0, backend::Cuda>(model, {.max_batch = 1, .image_size = 64}); }  // libraries loaded once
  const std::size_t free_before = free_device_memory();
  VISOPT_REQUIRE_ERROR((compile<O0, backend::Cuda>(model, {.max_batch = 60000, .image_size = 224})), "out of memory");
  // What the failed compile() had allocated went back with the exception.
  CHECK(static_cast<double>(free_before) - static_cast<double>(free_device_memory()) <= 16.0 * (1 << 20));
  auto engine = compile<O0, backend::Cuda>(model, {.max_batch = 2, .image_size = 64});
  CHECK(engine.run(Tensor::zeros({2, 3, 64, 64})).dim(1) == 1000);
  VISOPT_REQUIRE_ERROR((compile<O1, backend::Cuda>(model, {.max_batch = 1, .device = 99})), "CompileOptions::device is 99");
  VISOPT_REQUIRE_ERROR((compile<O1, backend::Cuda>(model, {.max_batch = 70000})), "the CUDA backend takes at most 65535 images");
  VISOPT_REQUIRE_ERROR(engine.run(Tensor::zeros({3, 3, 64, 64})), "batch of 3 images, but the engine was compiled for 1..2");
  // Device images said to be on another GPU are refused before anything reads them.
  Tensor on_device = Tensor::empty({2, 3, 64, 64}, DType::f32, Device::cuda());
  const TensorView elsewhere(on_device.data(), DType::f32, on_device.shape(), Device::cuda(1));
  VISOPT_REQUIRE_ERROR(engine.run(elsewhere), "images are on cuda:1, but this engine runs on cuda:0");
}

TEST_CASE("cuda: with no GPU, compile() says so", "[nogpu]") {
  int count = 0;
  if (cudaGetDeviceCount(&count) == cudaSuccess && count > 0) {
    VISOPT_REQUIRE_ERROR((compile<O1, backend::Cuda>(models::resnet18(models::RandomWeights{}), {.max_batch = 1, .device = count})),
                         "CompileOptions::device is");
    return;
  }
  VISOPT_REQUIRE_ERROR((compile<O1, backend::Cuda>(models::resnet18(models::RandomWeights{}), {.max_batch = 1})),
                       "no GPU is visible");
}

TEST_CASE("cuda: two engines, each on its own stream, run at once from two threads and match their sequential results bit for bit",
          "[gpu][concurrency]") {
  // Heuristic tuning: nothing is timed, so running the engines together cannot change what they choose.
  auto resnet = compile<O3::with<tuning::heuristic>, backend::Cuda>(models::resnet18(models::RandomWeights{1}),
                                                                    {.max_batch = 4, .image_size = 64});
  auto vit = compile<O2::with<tuning::heuristic>, backend::Cuda>(models::vit_ti_16(models::RandomWeights{2}, {.image_size = 64}),
                                                                 {.max_batch = 4});
  REQUIRE(backend::cuda::executor_of(resnet).context().stream() != backend::cuda::executor_of(vit).context().stream());
  REQUIRE(backend::cuda::executor_of(resnet).context().cudnn() != backend::cuda::executor_of(vit).context().cudnn());  // pooled handles are lent to one engine at a time
  visopt::testing::check_engines_run_at_once(resnet, pattern_images(4, 64, 1), vit, pattern_images(4, 64, 2), 20);
  auto twin = compile<O3::with<tuning::heuristic>, backend::Cuda>(models::resnet18(models::RandomWeights{1}),
                                                                  {.max_batch = 4, .image_size = 64});
  visopt::testing::check_engines_run_at_once(resnet, pattern_images(4, 64, 3), twin, pattern_images(2, 64, 4), 20);
}

TEST_CASE("cuda: one engine called from two threads at once gives each caller its own logits", "[gpu][concurrency]") {
  auto engine = compile<O3::with<tuning::heuristic>, backend::Cuda>(models::resnet18(models::RandomWeights{3}),
                                                                    {.max_batch = 4, .image_size = 64});
  // Batch sizes 4 and 1: the calls alternate between two captured graphs.
  visopt::testing::check_one_engine_from_threads(engine, {pattern_images(4, 64, 3), pattern_images(1, 64, 4)}, 20);
}

TEST_CASE("cuda: 1000 compile/run/destroy cycles leave device and host memory where they were", "[gpu][resources]") {
  const auto model = models::vit_ti_16(models::RandomWeights{4}, {.image_size = 32});
  const Tensor images = pattern_images(1, 32, 5);
  const auto cycle = [&] {
    auto engine = compile<O3::with<tuning::heuristic>, backend::Cuda>(model, {.max_batch = 1, .warmup = 0});
    REQUIRE(engine.run(images).dim(1) == 1000);
  };
  for (int i = 0; i < 10; ++i) cycle();
  // cuDNN handles are reused across engines (backend::cuda::CudnnHandlePool): cycles create no more of them.
  const std::size_t idle_handles = backend::cuda::CudnnHandlePool::idle(0);
  CHECK(idle_handles >= 1);
  const std::size_t free_before = free_device_memory();
  visopt::testing::check_host_memory_steady(cycle, 0, 1000, std::int64_t{64} << 20, std::int64_t{1} << 20);
  const std::size_t free_after = free_device_memory();
  std::printf("cudaMemGetInfo free: %.1f -> %.1f MiB\n", static_cast<double>(free_before) / (1 << 20),
              static_cast<double>(free_after) / (1 << 20));
  CHECK(static_cast<double>(free_before) - static_cast<double>(free_after) <= 8.0 * (1 << 20));
  CHECK(backend::cuda::CudnnHandlePool::idle(0) == idle_handles);
}
