// Engines and threads on the reference backend: two engines at once from two threads give their sequential
// results bit for bit, one engine called from two threads at once serves each caller its own result, and
// compile/run/destroy cycles leave host memory where it was. Also the activation pool, whose blocks come
// back from whichever thread drops them.

#include <vector>

#include <visopt/services/memory_pool.hpp>
#include <visopt/visopt.hpp>

#include "catch.hpp"
#include "stress.hpp"

using namespace visopt;
using visopt::testing::pattern_images;

TEST_CASE("reference: two engines run at once from two threads give their sequential results bit for bit", "[concurrency]") {
  auto resnet = compile<O1, backend::Reference>(models::resnet18(models::RandomWeights{1}), {.max_batch = 2, .image_size = 32});
  auto vit = compile<O0, backend::Reference>(models::vit_ti_16(models::RandomWeights{2}, {.image_size = 32}), {.max_batch = 2});
  visopt::testing::check_engines_run_at_once(resnet, pattern_images(2, 32, 1), vit, pattern_images(2, 32, 2), 8);
}

TEST_CASE("reference: one engine called from two threads at once gives each caller its own logits", "[concurrency]") {
  auto engine = compile<O1, backend::Reference>(models::resnet18(models::RandomWeights{3}), {.max_batch = 2, .image_size = 32});
  visopt::testing::check_one_engine_from_threads(engine, {pattern_images(2, 32, 3), pattern_images(1, 32, 4)}, 16);
}

TEST_CASE("reference: 1000 compile/run/destroy cycles leave host memory where it was", "[resources]") {
  const auto model = models::vit_ti_16(models::RandomWeights{4}, {.image_size = 32});
  const Tensor images = pattern_images(1, 32, 5);
  visopt::testing::check_host_memory_steady(
      [&] {
        auto engine = compile<O1, backend::Reference>(model, {.max_batch = 1, .warmup = 0});
        REQUIRE(engine.run(images).dim(1) == 1000);
      },
      20, 1000, std::int64_t{32} << 20, std::int64_t{64} << 10);
}

TEST_CASE("an activation pool takes blocks back from other threads while it allocates", "[concurrency]") {
  // A CUDA engine hands device-resident logits from such a pool to its callers: they drop them on their own
  // threads, outside the engine's lock, while another caller's run() allocates.
  visopt::runtime::ActivationPool pool;
  constexpr int rounds = 20000;
  std::vector<Tensor> handed_out;
  for (int i = 0; i < 4096; ++i) handed_out.push_back(pool.allocate({16 + i % 4}, DType::f32));
  visopt::testing::run_together(2, [&](int t) {
    if (t == 0) {
      for (int i = 0; i < rounds; ++i) {
        Tensor x = pool.allocate({16 + i % 4}, DType::f32);
        x.data_as<float>()[0] = 1.0f;
      }
    } else {
      for (Tensor& x : handed_out) x = Tensor();  // each drop gives a block back, concurrently
    }
  });
  CHECK(pool.fresh_allocations() <= 4096 + 4);
}
