// The static activation plan (services/memory_plan.hpp): offsets never let two live buffers overlap,
// a replayed pass reuses its planned memory without allocating, and a pass that differs from its
// recording is an error.

#include <random>

#include <visopt/services/memory_plan.hpp>

#include "catch.hpp"

using visopt::DType;
using visopt::Shape;
using visopt::Tensor;
using visopt::runtime::assign_offsets;
using visopt::runtime::PlannedArena;
using visopt::runtime::PlannedBuffer;

namespace {
bool overlaps_in_time(const PlannedBuffer& a, const PlannedBuffer& b) { return a.first < b.last && b.first < a.last; }
bool overlaps_in_memory(const PlannedBuffer& a, const PlannedBuffer& b) {
  return a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
}
}  // namespace

TEST_CASE("assign_offsets keeps buffers that are live together apart and reuses the rest", "[memory_plan]") {
  // A chain a -> b -> c: a and c are never live together and share memory; b sits beside both.
  std::vector<PlannedBuffer> chain{{1000, 0, 2}, {500, 1, 4}, {1000, 3, 5}};
  const std::size_t block = assign_offsets(chain);
  CHECK(chain[0].offset == chain[2].offset);
  CHECK_FALSE(overlaps_in_memory(chain[0], chain[1]));
  CHECK_FALSE(overlaps_in_memory(chain[1], chain[2]));
  CHECK(block == 1024 + 512);  // sizes rounded to 64 bytes
  CHECK(visopt::runtime::peak_live_bytes(chain) == 1500);

  std::mt19937 random(7);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<PlannedBuffer> buffers;
    std::size_t total = 0;
    for (int i = 0; i < 60; ++i) {
      const std::size_t first = random() % 100, length = 1 + random() % 30, bytes = 1 + random() % 5000;
      buffers.push_back({bytes, first, first + length});
      total += (bytes + 63) / 64 * 64;
    }
    const std::size_t size = assign_offsets(buffers);
    CHECK(size <= total);
    CHECK(size >= visopt::runtime::peak_live_bytes(buffers));
    for (std::size_t i = 0; i < buffers.size(); ++i) {
      CHECK(buffers[i].offset % 64 == 0);
      CHECK(buffers[i].offset + buffers[i].bytes <= size);
      for (std::size_t j = i + 1; j < buffers.size(); ++j) {
        if (overlaps_in_time(buffers[i], buffers[j])) CHECK_FALSE(overlaps_in_memory(buffers[i], buffers[j]));
      }
    }
  }
}

TEST_CASE("PlannedArena records a pass, then replays it from one block without allocating", "[memory_plan]") {
  PlannedArena arena;
  const Shape key{4, 3, 8, 8};
  auto pass = [&](std::vector<void*>& pointers) {
    arena.begin_pass(key);
    Tensor input = arena.allocate({4, 16}, DType::f32);
    Tensor hidden = arena.allocate({4, 64}, DType::f32);
    pointers = {input.data(), hidden.data()};
    input = Tensor();  // dies before the next allocation: its memory can be reused
    Tensor out = arena.allocate({4, 16}, DType::bf16);
    pointers.push_back(out.data());
    hidden = Tensor();
    arena.end_pass();
  };
  std::vector<void*> first, second, third;
  pass(first);
  const std::size_t fresh = arena.fresh_allocations();
  CHECK(fresh == 4);  // three recorded buffers and the block
  CHECK(arena.plan_count() == 1);
  CHECK(arena.bytes_reserved() == 1024 + 256);  // hidden, and beside it input, whose memory out reuses
  pass(second);
  pass(third);
  CHECK(arena.fresh_allocations() == fresh);
  CHECK(second == third);
  CHECK(second[0] == second[2]);  // out reuses input's memory
  CHECK(arena.largest_plan().total_bytes == 4 * 16 * 4 + 4 * 64 * 4 + 4 * 16 * 2);

  // A replay that asks for other sizes is an internal error, and so is allocating outside a pass.
  arena.begin_pass(key);
  VISOPT_REQUIRE_ERROR(arena.allocate({4, 17}, DType::f32), "the recorded plan has 256 bytes there");
  arena.begin_pass(key);  // a pass left open by an exception is dropped
  arena.allocate({4, 16}, DType::f32);
  VISOPT_REQUIRE_ERROR(arena.end_pass(), "made 1 allocations, the recorded plan 3");
  VISOPT_REQUIRE_ERROR(arena.allocate({1}, DType::f32), "outside a forward pass");

  // Another key records its own plan; the block grows only when that plan needs more.
  std::vector<void*> other;
  arena.begin_pass({1, 3, 8, 8});
  Tensor small = arena.allocate({1, 16}, DType::f32);
  small = Tensor();
  arena.end_pass();
  CHECK(arena.plan_count() == 2);
  CHECK(arena.fresh_allocations() == fresh + 1);  // the recording only: the block was big enough
}
