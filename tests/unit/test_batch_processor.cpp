// runtime::BatchProcessor: ragged image sizes and counts around max_batch come back one result per image,
// in order, equal to running each image alone; letterbox placement and unpad map back to the original.

#include <visopt/runtime/batch_processor.hpp>
#include <visopt/visopt.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include "catch.hpp"

using namespace visopt;
using runtime::BatchProcessor;
using runtime::Fit;

namespace {

io::Image random_image(int width, int height, std::mt19937& rng) {
  io::Image image{width, height, std::vector<std::uint8_t>(static_cast<std::size_t>(width * height * 3))};
  std::uniform_int_distribution<int> value(0, 255);
  for (auto& v : image.rgb) v = static_cast<std::uint8_t>(value(rng));
  return image;
}

/// max |a - b| / max |b| over two host f32 tensors of one shape.
double relative_difference(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double diff = 0, scale = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    diff = std::max(diff, std::abs(double(a.data_as<float>()[i]) - b.data_as<float>()[i]));
    scale = std::max(scale, std::abs(double(b.data_as<float>()[i])));
  }
  return diff / scale;
}

constexpr int max_batch = 4;

auto small_engine() {
  return compile<O1, backend::Reference>(models::resnet(18, models::RandomWeights{3}),
                                         {.max_batch = max_batch, .image_size = 64, .warmup = 0});
}

}  // namespace

TEST_CASE("BatchProcessor returns one result per image, in order, equal to running each alone", "[batch]") {
  auto engine = small_engine();
  std::mt19937 rng(11);
  const std::vector<std::pair<int, int>> sizes = {{64, 64}, {100, 37}, {31, 80}, {257, 129}, {64, 65}, {13, 7},
                                                  {90, 90}, {40, 200}, {65, 64}, {120, 71}, {7, 13}};
  std::vector<io::Image> images;
  for (const auto& [w, h] : sizes) images.push_back(random_image(w, h, rng));
  REQUIRE(images.size() == 2 * max_batch + 3);

  for (const Fit fit : {Fit::resize_crop, Fit::letterbox}) {
    for (const bool pad : {true, false}) {
      BatchProcessor processor(engine, {.fit = fit, .pad_last_batch = pad});
      REQUIRE(processor.max_batch() == max_batch);
      REQUIRE(processor.input_size() == 64);
      std::vector<Tensor> alone;
      for (const io::Image& image : images) {
        alone.push_back(engine.run(io::stack_images({processor.prepare(image).image})).clone());
      }
      // Distinct images give distinct outputs, so a shuffled order could not pass.
      for (std::size_t i = 1; i < alone.size(); ++i) REQUIRE(relative_difference(alone[i], alone[0]) > 1e-3);

      for (const std::size_t count : {std::size_t{1}, std::size_t{max_batch}, std::size_t{max_batch + 1}, images.size()}) {
        INFO("fit " << (fit == Fit::letterbox ? "letterbox" : "resize_crop") << ", pad " << pad << ", " << count
                    << " images");
        const auto results = processor.run(std::span<const io::Image>(images).first(count));
        REQUIRE(results.size() == count);
        for (std::size_t i = 0; i < count; ++i) {
          INFO("image " << i);
          REQUIRE(results[i].output.shape() == Shape{1000});
          CHECK(relative_difference(results[i].output.reshaped(Shape{1, 1000}), alone[i]) <= 1e-5);
          CHECK(results[i].placement.original_width == images[i].width);
          CHECK(results[i].placement.original_height == images[i].height);
        }
      }
    }
  }
  CHECK(BatchProcessor(engine).run(std::span<const io::Image>{}).empty());
}

TEST_CASE("BatchProcessor letterboxes without cutting, and unpad maps a box back to the original", "[batch]") {
  auto engine = small_engine();
  BatchProcessor processor(engine, {.fit = Fit::letterbox, .mean = {0, 0, 0}, .std = {1, 1, 1}, .pad_rgb = {0, 0, 0}});
  // A dark 100x60 image with a white rectangle [40,60) x [10,30).
  io::Image image{100, 60, std::vector<std::uint8_t>(100 * 60 * 3, 20)};
  const runtime::Box white{40, 10, 60, 30};
  for (int y = 10; y < 30; ++y) {
    for (int x = 40; x < 60; ++x) std::fill_n(&image.rgb[static_cast<std::size_t>((y * 100 + x) * 3)], 3, 255);
  }
  const runtime::Prepared prepared = processor.prepare(image);
  const runtime::Placement& p = prepared.placement;
  CHECK(p.scale_x == Approx(0.64));
  CHECK(p.scale_y == Approx(38.0 / 60));
  CHECK(p.offset_x == 0);
  CHECK(p.offset_y == 13);  // (64 - 38) / 2

  // The content spans [0,64) x [13,51) of the input and unpads to the whole image; the padding is 0.
  CHECK(p.unpad(runtime::Box{0, 13, 64, 51}) == runtime::Box{0, 0, 100, 60});
  const float* red = prepared.image.data_as<float>();
  CHECK(red[5 * 64 + 30] == 0.0f);
  CHECK(red[60 * 64 + 30] == 0.0f);
  CHECK(red[20 * 64 + 2] > 0.05f);

  // The bright pixels of the input, unpadded, land on the white rectangle within one original pixel or two.
  runtime::Box found{64, 64, 0, 0};
  for (int y = 0; y < 64; ++y) {
    for (int x = 0; x < 64; ++x) {
      if (red[y * 64 + x] < 0.55f) continue;
      found = {std::min(found.x0, double(x)), std::min(found.y0, double(y)), std::max(found.x1, x + 1.0),
               std::max(found.y1, y + 1.0)};
    }
  }
  const runtime::Box back = p.unpad(found);
  INFO("found [" << back.x0 << "," << back.x1 << ") x [" << back.y0 << "," << back.y1 << ")");
  CHECK(std::abs(back.x0 - white.x0) <= 2);
  CHECK(std::abs(back.x1 - white.x1) <= 2);
  CHECK(std::abs(back.y0 - white.y0) <= 2);
  CHECK(std::abs(back.y1 - white.y1) <= 2);
  CHECK(p.clip(p.unpad(runtime::Box{-5, 0, 70, 64})) == runtime::Box{0, 0, 100, 60});

  // As docs/getting-started.md shows it: a vector of images in, one result each.
  const std::vector<io::Image> images{image, image};
  const std::vector<runtime::Result> results = processor.run(images);
  REQUIRE(results.size() == 2);
  CHECK(results[1].placement.unpad(runtime::Box{0, 13, 64, 51}) == runtime::Box{0, 0, 100, 60});
}

TEST_CASE("Placement::unpad inverts to_model for both fits", "[batch]") {
  auto engine = small_engine();
  std::mt19937 rng(5);
  for (const Fit fit : {Fit::resize_crop, Fit::letterbox}) {
    BatchProcessor processor(engine, {.fit = fit});
    for (const auto& [w, h] : {std::pair{100, 37}, std::pair{31, 80}, std::pair{64, 64}}) {
      const runtime::Placement p = processor.prepare(random_image(w, h, rng)).placement;
      const runtime::Box box{1.5, 2.25, w - 3.0, h - 0.5};
      const runtime::Box round_trip = p.unpad(p.to_model(box));
      CHECK(round_trip.x0 == Approx(box.x0));
      CHECK(round_trip.y0 == Approx(box.y0));
      CHECK(round_trip.x1 == Approx(box.x1));
      CHECK(round_trip.y1 == Approx(box.y1));
      // The centre of the image stays at the centre of the input (centre crop, centred padding).
      const runtime::Point centre = p.to_model(runtime::Point{w / 2.0, h / 2.0});
      CHECK(std::abs(centre.x - 32) <= 1);
      CHECK(std::abs(centre.y - 32) <= 1);
    }
  }
}

TEST_CASE("BatchProcessor rejects a batch size the engine cannot run and tensors it did not prepare", "[batch]") {
  auto engine = small_engine();
  CHECK_THROWS_WITH(BatchProcessor(engine, {.max_batch = max_batch + 1}),
                    Catch::Contains("max_batch is 5, must be within 1..4"));
  BatchProcessor processor(engine);
  std::vector<runtime::Prepared> wrong(1);
  wrong[0].image = Tensor::zeros(Shape{3, 32, 32});
  CHECK_THROWS_WITH(processor.run(std::span<const runtime::Prepared>(wrong)),
                    Catch::Contains("prepared image 0 is not a contiguous host f32 [3,64,64]"));
}
