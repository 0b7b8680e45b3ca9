// Engines and threads on the oneDNN backend: two engines at once from two threads give their sequential
// results bit for bit, one engine called from two threads at once serves each caller its own result, and
// compile/run/destroy cycles leave host memory where it was.

#include <visopt/visopt.hpp>

#include "catch.hpp"
#include "stress.hpp"

using namespace visopt;
using visopt::testing::pattern_images;

TEST_CASE("onednn: two engines run at once from two threads give their sequential results bit for bit", "[onednn_concurrency]") {
  // Different OpenMP thread counts: each engine sets its own in the calling thread before every pass
  // (Context::apply_threads), so neither changes what the other computes.
  auto resnet = compile<O3, backend::OneDnn>(models::resnet18(models::RandomWeights{1}), {.max_batch = 2, .image_size = 32});
  auto vit = compile<O1, backend::OneDnn>(models::vit_ti_16(models::RandomWeights{2}, {.image_size = 32}),
                                          {.max_batch = 2, .num_threads = 1});
  visopt::testing::check_engines_run_at_once(resnet, pattern_images(2, 32, 1), vit, pattern_images(2, 32, 2), 8);
  auto same_model = compile<O3, backend::OneDnn>(models::resnet18(models::RandomWeights{1}), {.max_batch = 2, .image_size = 32});
  visopt::testing::check_engines_run_at_once(resnet, pattern_images(2, 32, 3), same_model, pattern_images(1, 32, 4), 8);
}

TEST_CASE("onednn: one engine called from two threads at once gives each caller its own logits", "[onednn_concurrency]") {
  auto engine = compile<O3, backend::OneDnn>(models::resnet18(models::RandomWeights{3}), {.max_batch = 2, .image_size = 32});
  // Batch sizes 2 and 1: the static plan switches between two recorded passes on every call.
  visopt::testing::check_one_engine_from_threads(engine, {pattern_images(2, 32, 3), pattern_images(1, 32, 4)}, 16);
}

// 300 cycles, not the reference backend's 1000: an O3 compile packs every weight (about 0.1 s a cycle here), and
// the code every backend shares is cycled 1000 times there. A leak over 220 bytes a cycle still fails.
TEST_CASE("onednn: 300 compile/run/destroy cycles leave host memory where it was", "[onednn_resources]") {
  const auto model = models::vit_ti_16(models::RandomWeights{4}, {.image_size = 32});
  const Tensor images = pattern_images(1, 32, 5);
  visopt::testing::check_host_memory_steady(
      [&] {
        auto engine = compile<O3, backend::OneDnn>(model, {.max_batch = 1, .warmup = 0});
        REQUIRE(engine.run(images).dim(1) == 1000);
      },
      20, 300, std::int64_t{32} << 20, std::int64_t{64} << 10);
}
