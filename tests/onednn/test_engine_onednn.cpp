// The oneDNN engine's promises beyond numbers: at O3 run() allocates nothing for a batch size seen
// before (every heap allocation of the process is counted), batch sizes below max_batch work and
// above it fail, report() says what was applied and why not, fp16 and threads are handled.

#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <type_traits>

#include <visopt/visopt.hpp>

#include "catch.hpp"
#include "oracle.hpp"

using namespace visopt;
using visopt::testing::compare_logits;
using visopt::testing::first_images;
using visopt::testing::fixture;

// ---- a counting allocator: this binary's malloc family forwards to glibc's and counts while asked ----
// (libstdc++'s operator new, oneDNN and std::aligned_alloc all end up here; free stays glibc's own.)
// Not under AddressSanitizer, which owns malloc and free: it would be handed memory it did not allocate.
#if defined(__SANITIZE_ADDRESS__)
#define VISOPT_COUNT_ALLOCATIONS 0
#else
#define VISOPT_COUNT_ALLOCATIONS 1
#endif
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
}

namespace {
struct AllocationCounter {
  std::atomic<bool> counting{false};
  std::atomic<std::size_t> calls{0}, bytes{0}, largest{0}, at_least_1k{0};
  void note(std::size_t n) {
    if (!counting.load(std::memory_order_relaxed)) return;
    ++calls;
    bytes += n;
    if (n >= 1024) ++at_least_1k;
    std::size_t seen = largest.load();
    while (n > seen && !largest.compare_exchange_weak(seen, n)) {
    }
  }
  void start() {
    calls = 0, bytes = 0, largest = 0, at_least_1k = 0;
    counting = true;
  }
  void stop() { counting = false; }
};
AllocationCounter counter;
}  // namespace

#if VISOPT_COUNT_ALLOCATIONS
extern "C" {
void* malloc(std::size_t n) {
  counter.note(n);
  return __libc_malloc(n);
}
void* calloc(std::size_t count, std::size_t n) {
  counter.note(count * n);
  return __libc_calloc(count, n);
}
void* realloc(void* p, std::size_t n) {
  counter.note(n);
  return __libc_realloc(p, n);
}
void* aligned_alloc(std::size_t alignment, std::size_t n) {
  counter.note(n);
  return __libc_memalign(alignment, n);
}
void* memalign(std::size_t alignment, std::size_t n) {
  counter.note(n);
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t n) {
  counter.note(n);
  *out = __libc_memalign(alignment, n);
  return *out ? 0 : 12;  // ENOMEM
}
}
#endif  // VISOPT_COUNT_ALLOCATIONS

namespace {

/// Runs `engine` on `images` while counting allocations; checks that the only allocation that is
/// not oneDNN's small per-call bookkeeping is the returned logits, and that nothing was planned anew.
template <class Engine>
void check_allocation_free_run(Engine& engine, const Tensor& images, const char* what) {
  auto& executor = engine.executor();
  const std::size_t fresh = executor.fresh_allocations(), arena = executor.activation_bytes();
  const std::size_t workspace = executor.workspace_bytes();
  const std::size_t heap_before = mallinfo2().uordblks;
  counter.start();
  const Tensor logits = engine.run(images);
  counter.stop();
  const std::size_t heap_after = mallinfo2().uordblks;
  INFO(what << ": " << counter.calls << " allocations in run(), " << counter.bytes << " bytes, largest " << counter.largest
            << ", of >= 1 KiB: " << counter.at_least_1k << "; logits " << logits.nbytes() << " bytes");
  std::printf("onednn O3 run() on %s: %zu heap allocations (%zu bytes, largest %zu; the logits are %zu bytes)\n", what,
              counter.calls.load(), counter.bytes.load(), counter.largest.load(), logits.nbytes());
  CHECK(executor.fresh_allocations() == fresh);  // no activation memory made
  CHECK(executor.activation_bytes() == arena);
  CHECK(executor.workspace_bytes() == workspace);
  // Exactly one allocation of any size: the logits. The rest are oneDNN's argument maps inside each
  // dnnl_primitive_execute (a few tens of bytes, freed before it returns).
  CHECK(counter.at_least_1k == (logits.nbytes() >= 1024 ? 1u : 0u));
  CHECK(counter.largest <= std::max<std::size_t>(logits.nbytes() + 64, 1024));
  // What run() leaves allocated is the logits (and their control block), nothing more. The slack is
  // glibc's per-thread cache: it keeps up to 7 freed chunks per small size per thread (the caller's and
  // OpenMP's), and mallinfo2 counts them as in use after oneDNN's ~1000 small call-scoped allocations.
  // 8 KiB is still far below the smallest activation buffer any tested model would allocate.
  CHECK(heap_after - heap_before <= logits.nbytes() + 8192);
}

}  // namespace

TEST_CASE("onednn O3: run() allocates nothing but the logits for a batch size seen before", "[onednn][static_plan]") {
  if (!VISOPT_COUNT_ALLOCATIONS) {
    WARN("skipped under AddressSanitizer: allocations cannot be counted through glibc's malloc there");
    return;
  }
  const auto io = io::SafeTensors::open(fixture("resnet18_64.io.safetensors"));
  const Tensor images = io.load("input");
  const auto resnet = models::resnet(18, io::SafeTensors::open(fixture("resnet18_64.weights.safetensors")));
  auto engine = compile<O3, backend::OneDnn>(resnet, {.max_batch = 8, .image_size = 64});
  check_allocation_free_run(engine, first_images(images, 8), "resnet18, batch 8 (planned by compile())");

  // A new batch size records its plan on its first run, then runs allocation-free as well.
  const Tensor three = first_images(images, 3);
  engine.run(three);
  check_allocation_free_run(engine, three, "resnet18, batch 3 (second run)");

  const auto vio = io::SafeTensors::open(fixture("vit_ti16_64.io.safetensors"));
  const auto vit = models::vit(models::ViTSize::tiny, 16, io::SafeTensors::open(fixture("vit_ti16_64.weights.safetensors")));
  auto vengine = compile<O3, backend::OneDnn>(vit, {.max_batch = 4});
  check_allocation_free_run(vengine, first_images(vio.load("input"), 4), "vit_ti_16, batch 4");
}

/// Runs batches of several sizes (each seen twice, none above max_batch = 8) on one engine and
/// compares each with the oracle's rows; then batch 9 and a malformed batch must fail.
template <class Engine>
void check_batch_sizes(Engine& engine, const Tensor& images, const Tensor& expected) {
  const auto tolerance = visopt::testing::tolerance_for(engine.executor().compute_type());
  for (const std::int64_t n : {8, 5, 1, 5, 8}) {
    const auto a = compare_logits(engine.run(first_images(images, n)), first_images(expected, n));
    INFO("batch " << n << ": r=" << a.relative_error << " cosine=" << a.cosine << " top1=" << a.top1);
    visopt::testing::check_agreement(a, tolerance);
  }
  VISOPT_REQUIRE_ERROR(engine.run(first_images(images, 9)), "compiled for 1..8 (CompileOptions::max_batch)");
  VISOPT_REQUIRE_ERROR(engine.run(Tensor::zeros({2, 3, 64})), "expected images [N,3,H,W]");
}

TEST_CASE("onednn: batches below max_batch run and agree, above it fail", "[onednn][batch]") {
  const auto io = io::SafeTensors::open(fixture("resnet18_64.io.safetensors"));
  const auto resnet = models::resnet(18, io::SafeTensors::open(fixture("resnet18_64.weights.safetensors")));
  auto engine = compile<O3, backend::OneDnn>(resnet, {.max_batch = 8, .image_size = 64});
  check_batch_sizes(engine, io.load("input"), io.load("logits"));
  auto fp32 = compile<O3::with<precision::fp32>, backend::OneDnn>(resnet, {.max_batch = 8, .image_size = 64});
  check_batch_sizes(fp32, io.load("input"), io.load("logits"));
  auto blocked = compile<O1, backend::OneDnn>(resnet, {.max_batch = 8, .image_size = 64});
  check_batch_sizes(blocked, io.load("input"), io.load("logits"));

  const auto vio = io::SafeTensors::open(fixture("vit_ti16_64.io.safetensors"));
  const auto vit = models::vit(models::ViTSize::tiny, 16, io::SafeTensors::open(fixture("vit_ti16_64.weights.safetensors")));
  auto vengine = compile<O3, backend::OneDnn>(vit, {.max_batch = 8});
  check_batch_sizes(vengine, vio.load("input"), vio.load("logits"));
}

TEST_CASE("onednn: compile() makes one plan per warm-up batch size; run() plans a new size once", "[onednn][lifecycle]") {
  const auto io = io::SafeTensors::open(fixture("resnet18_64.io.safetensors"));
  const auto resnet = models::resnet(18, io::SafeTensors::open(fixture("resnet18_64.weights.safetensors")));
  auto engine = compile<O3, backend::OneDnn>(resnet, {.max_batch = 8, .image_size = 64, .warmup_batches = {2}});
  auto& executor = engine.executor();
  CHECK(executor.plans() == 2);
  const auto& plans = engine.report().plans;
  REQUIRE(plans.size() == 2);
  CHECK(plans[0].input == std::vector<std::int64_t>{8, 3, 64, 64});
  CHECK(plans[1].input == std::vector<std::int64_t>{2, 3, 64, 64});
  // ResNet-18 at O3: 20 fused convolutions, the stem's pool, the classifier and the input reorder.
  CHECK(plans[0].operations >= 22);
  CHECK(plans[0].steps <= plans[0].operations);
  CHECK_FALSE(plans[0].captured);
  CHECK(engine.report().json()["plans"].size() == 2);
  CHECK(engine.report().text().find("plan: batch 8 [8,3,64,64]:") != std::string::npos);

  const int primitives = executor.census().primitives;
  engine.run(first_images(io.load("input"), 8));
  engine.run(first_images(io.load("input"), 2));
  CHECK(executor.census().primitives == primitives);  // both planned in compile(): nothing made
  engine.run(first_images(io.load("input"), 3));
  CHECK(executor.plans() == 3);
  const int with_three = executor.census().primitives;
  CHECK(with_three > primitives);
  engine.run(first_images(io.load("input"), 3));
  CHECK(executor.census().primitives == with_three);

  // No warm-up: nothing planned in compile(); the first run() of each size plans it.
  auto lazy = compile<O1, backend::OneDnn>(resnet, {.max_batch = 4, .image_size = 64, .warmup = 0});
  CHECK(lazy.executor().plans() == 0);
  CHECK(lazy.report().plans.empty());
  const auto a = compare_logits(lazy.run(first_images(io.load("input"), 4)), first_images(io.load("logits"), 4));
  visopt::testing::check_agreement(a, visopt::testing::tolerance_for(lazy.executor().compute_type()));
  CHECK(lazy.executor().plans() == 1);
}

TEST_CASE("onednn: report() says what each level applied and why not", "[onednn][report]") {
  const auto resnet = models::resnet(18, models::RandomWeights{3});
  const auto& cpu = backend::onednn::cpu_features();

  auto o0 = compile<O0, backend::OneDnn>(resnet, {.image_size = 64});
  const auto& r0 = o0.report();
  CHECK(r0.backend == "onednn");
  CHECK(r0.device.starts_with("cpu: " + cpu.isa_name + " ("));
  CHECK(r0.device.find(" threads") != std::string::npos);
  CHECK(r0.compute_precision == "fp32");
  CHECK_FALSE(r0.has("post_op_fusion"));
  CHECK_FALSE(r0.has("channels_last"));
  CHECK_FALSE(r0.has("static_plan"));

  auto o1 = compile<O1, backend::OneDnn>(resnet, {.image_size = 64});
  const auto& r1 = o1.report();
  CHECK(r1.has("fold_bn"));
  CHECK(r1.has("post_op_fusion"));
  CHECK(r1.has("weights_prepacked"));
  CHECK(r1.text().find("8 residual adds (sum") != std::string::npos);  // resnet18: 8 blocks
  CHECK(r1.text().find("[skipped] tf32") != std::string::npos);

  auto o3 = compile<O3, backend::OneDnn>(resnet, {.max_batch = 2, .image_size = 64});
  const auto& r3 = o3.report();
  CHECK(r3.has("channels_last"));
  CHECK(r3.has("static_plan"));
  // Weights: the folded fp32 tensors the ops keep (summary's O1 figure) and the copies packed from them.
  const models::Summary s = models::summarize(resnet, {.image_size = 64});
  CHECK(r0.weight_bytes == s.levels[0].weight_bytes + o0.executor().census().packed_bytes);
  CHECK(r3.weight_bytes == s.levels[1].weight_bytes + o3.executor().census().packed_bytes);
  CHECK(o3.executor().census().packed_bytes > 0);
  CHECK(r3.activation_bytes == o3.executor().activation_bytes());
  CHECK(r3.activation_bytes > 0);
  CHECK(r3.text().find("one activation arena of") != std::string::npos);
  if (cpu.bf16) {
    CHECK(r3.has("bf16"));
    CHECK(r3.compute_precision.starts_with("bf16"));
  } else {
    WARN("bf16 not available here: " << cpu.bf16_missing_reason);
    CHECK(r3.text().find("[skipped] bf16: " + cpu.bf16_missing_reason) != std::string::npos);
    CHECK(r3.compute_precision == "fp32");
  }
}

TEST_CASE("onednn: fp16 falls back to fp32 with a reason, or throws when strict", "[onednn][precision]") {
  using Fp16 = O2::with<precision::fp16>;
  const auto resnet = models::resnet(18, models::RandomWeights{4});
  auto engine = compile<Fp16, backend::OneDnn>(resnet, {.image_size = 32});
  CHECK(engine.report().compute_precision == "fp32");
  CHECK(engine.report().text().find("[skipped] fp16: oneDNN 2.6 has no fp16 CPU kernels") != std::string::npos);
  VISOPT_REQUIRE_ERROR((compile<Fp16, backend::OneDnn>(resnet, {.image_size = 32, .strict = true})),
                       "precision::fp16 on backend::OneDnn");
}

TEST_CASE("onednn: CompileOptions::num_threads sets the thread count and the report says so", "[onednn][threads]") {
  const auto vit = models::vit(models::ViTSize::tiny, 16, models::RandomWeights{5}, {.image_size = 32});
  auto engine = compile<O1, backend::OneDnn>(vit, {.num_threads = 1});
  CHECK(engine.report().device.find("(1 threads)") != std::string::npos);
  CHECK_THAT(engine.report().text(), VISOPT_CATCH_CONTAINS("num_threads=1 (CompileOptions)"));
  CHECK(engine.run(Tensor::zeros({1, 3, 32, 32})).shape() == Shape{1, 1000});
}

namespace {

/// Compiles `model` at `Level`, then checks structurally what run() does: repeated batch sizes make
/// no primitive and pack no weights (a primitive re-created or weights re-packed per call would show
/// here, not just as a slow run), no primitive is oneDNN's reference implementation, and past O0
/// at most one reorder runs per batch size: the input's (a reorder between layers would be a layout
/// mismatch left in the forward pass).
template <class Level, class Model>
void check_structure(const Model& model, const char* what, int image_size) {
  auto engine = compile<Level, backend::OneDnn>(model, {.max_batch = 2, .image_size = image_size});
  const auto& census = engine.executor().census();
  INFO(what << " " << engine.report().level << ": " << engine.report().text());
  const Tensor images = Tensor::zeros({2, 3, image_size, image_size});
  const int primitives = census.primitives, packs = census.weight_packs;
  REQUIRE(primitives > 0);
  engine.run(images);
  engine.run(images);
  CHECK(census.primitives == primitives);
  CHECK(census.weight_packs == packs);
  // A new batch size may make its primitives once, on its first run; never again.
  engine.run(first_images(images, 1));
  const int after_new_size = census.primitives, packs_after_new_size = census.weight_packs;
  engine.run(first_images(images, 1));
  engine.run(images);
  CHECK(census.primitives == after_new_size);
  CHECK(census.weight_packs == packs_after_new_size);

  int reorders = 0;
  for (const auto& [name, count] : census.implementations) {
    INFO(name << ": " << count);
    CHECK(name.find("ref") == std::string::npos);
    if (name.starts_with("reorder")) reorders += count;
  }
  if constexpr (!std::is_same_v<Level, O0>) CHECK(reorders <= 2);  // the input's, at each of the two batch sizes
  CHECK(engine.report().has("primitives"));
}

template <class Model>
void check_structure_all_levels(const Model& model, const char* what, int image_size) {
  check_structure<O0>(model, what, image_size);
  check_structure<O1>(model, what, image_size);
  check_structure<O2>(model, what, image_size);
  check_structure<O3>(model, what, image_size);
}

}  // namespace

TEST_CASE("onednn: run() makes no primitive, packs no weights and uses no reference kernel", "[onednn][structure]") {
  check_structure_all_levels(models::resnet(18, models::RandomWeights{6}), "resnet18", 64);
  const auto vit = models::vit(models::ViTSize::tiny, 16, models::RandomWeights{7}, {.image_size = 32});
  check_structure_all_levels(vit, "vit_ti_16", 32);

  // The qkv projection writes q, k and v as planes that attention reads in place: per layer three
  // qkv matmuls (one per plane), proj, fc1 and fc2; Q·Kᵀ, softmax and S·V are made once for all
  // layers (same shapes); plus the patch projection and the head. No copy loop is left to count.
  auto engine = compile<O3, backend::OneDnn>(vit, {.max_batch = 1});
  int matmuls = 0, softmaxes = 0;
  for (const auto& [name, count] : engine.executor().census().implementations) {
    if (name.starts_with("matmul")) matmuls += count;
    if (name.starts_with("softmax")) softmaxes += count;
  }
  const int layers = 12;  // ViT-Ti
  CHECK(softmaxes == 1);
  CHECK(matmuls == layers * (3 + 1 + 2) + 2 + 2);
}
