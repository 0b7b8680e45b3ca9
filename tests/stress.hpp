#pragma once
// What the concurrency and resource tests of every backend share: deterministic input batches, a bit-for-bit
// comparison, starting work on several threads at once, and the process's host memory (resident pages and
// the heap bytes malloc has handed out), read before and after many compile/run/destroy cycles.

#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <latch>
#include <thread>
#include <vector>

#include <unistd.h>

#include <visopt/core/tensor.hpp>

#include "catch.hpp"

namespace visopt::testing {

/// Images [n,3,size,size] in [-1, 1), different for every `seed` and every image.
inline Tensor pattern_images(std::int64_t n, std::int64_t size, std::uint32_t seed) {
  Tensor images = Tensor::empty({n, 3, size, size});
  float* p = images.data_as<float>();
  std::uint32_t state = seed * 2654435761u + 1u;
  for (std::int64_t i = 0; i < images.numel(); ++i) {
    state = state * 1664525u + 1013904223u;  // a small LCG: the same values on every platform
    p[i] = static_cast<float>(state >> 8) / static_cast<float>(1u << 23) - 1.0f;
  }
  return images;
}

/// The same shape, dtype and bytes.
inline bool identical(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && a.nbytes() == b.nbytes() &&
         std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

/// Calls work(0) .. work(threads - 1), each on its own thread, released together so that they overlap;
/// rethrows the first exception any of them threw. (Catch2 assertions are not thread-safe: `work` records
/// what it saw and the caller checks it afterwards.)
template <class Work>
void run_together(int threads, Work work) {
  std::latch start(threads);
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(threads));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      start.arrive_and_wait();
      try {
        work(t);
      } catch (...) {
        errors[static_cast<std::size_t>(t)] = std::current_exception();
      }
    });
  }
  for (auto& thread : pool) thread.join();
  for (const auto& error : errors)
    if (error) std::rethrow_exception(error);
}

struct HostMemory {
  std::int64_t resident_bytes = 0;  // RSS, from /proc/self/statm
  std::int64_t heap_bytes = 0;      // bytes malloc has handed out and not taken back (mallinfo2)
};

inline HostMemory host_memory() {
  HostMemory m;
  if (std::FILE* statm = std::fopen("/proc/self/statm", "r")) {
    long long size = 0, resident = 0;
    if (std::fscanf(statm, "%lld %lld", &size, &resident) == 2) m.resident_bytes = resident * sysconf(_SC_PAGESIZE);
    std::fclose(statm);
  }
  const struct mallinfo2 info = mallinfo2();
  m.heap_bytes = static_cast<std::int64_t>(info.uordblks + info.hblkhd);  // in use from the arenas + mmapped blocks
  return m;
}

/// AddressSanitizer replaces malloc (mallinfo2 reads zero) and holds freed memory in quarantine (RSS grows):
/// there, LeakSanitizer's report at exit is the leak check instead.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool host_memory_is_measurable = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool host_memory_is_measurable = false;
#else
inline constexpr bool host_memory_is_measurable = true;
#endif
#else
inline constexpr bool host_memory_is_measurable = true;
#endif

/// Two engines run at once from two threads, `rounds` batches each, must give exactly what each gives
/// when it runs alone (their streams, arenas and caches are their own).
template <class EngineA, class EngineB>
void check_engines_run_at_once(EngineA& a, const Tensor& images_a, EngineB& b, const Tensor& images_b, int rounds) {
  const Tensor alone_a = a.run(images_a);
  const Tensor alone_b = b.run(images_b);
  // Deterministic when alone: the precondition of comparing bit for bit.
  REQUIRE(identical(a.run(images_a), alone_a));
  REQUIRE(identical(b.run(images_b), alone_b));
  std::vector<int> mismatches(2, 0);
  run_together(2, [&](int t) {
    for (int r = 0; r < rounds; ++r) {
      const bool same = t == 0 ? identical(a.run(images_a), alone_a) : identical(b.run(images_b), alone_b);
      mismatches[static_cast<std::size_t>(t)] += same ? 0 : 1;
    }
  });
  CHECK(mismatches[0] == 0);
  CHECK(mismatches[1] == 0);
}

/// One engine called from images.size() threads at once, each with its own batch, `rounds` times: Engine::run
/// serialises the calls, so every caller gets exactly the logits of its own images.
template <class Engine>
void check_one_engine_from_threads(Engine& engine, const std::vector<Tensor>& images, int rounds) {
  std::vector<Tensor> alone;
  for (const Tensor& batch : images) alone.push_back(engine.run(batch));
  REQUIRE_FALSE(identical(alone[0], alone[1]));  // different inputs give different logits, so a mix-up shows
  std::vector<int> mismatches(images.size(), 0);
  run_together(static_cast<int>(images.size()), [&](int t) {
    const auto i = static_cast<std::size_t>(t);
    for (int r = 0; r < rounds; ++r) mismatches[i] += identical(engine.run(images[i]), alone[i]) ? 0 : 1;
  });
  for (std::size_t i = 0; i < images.size(); ++i) {
    INFO("thread " << i);
    CHECK(mismatches[i] == 0);
  }
}

/// Runs `cycle` (compile, run, destroy) `warmup` times, then `cycles` times more, and checks that host memory
/// did not grow: RSS within `resident_slack` bytes (the allocator may keep some pages) and the heap in use within
/// `heap_slack` bytes (a leak of more than heap_slack / cycles bytes per cycle fails).
template <class Cycle>
void check_host_memory_steady(Cycle cycle, int warmup, int cycles, std::int64_t resident_slack, std::int64_t heap_slack) {
  for (int i = 0; i < warmup; ++i) cycle();
  const HostMemory before = host_memory();
  for (int i = 0; i < cycles; ++i) cycle();
  const HostMemory after = host_memory();
  std::printf("%d compile/run/destroy cycles: RSS %.1f -> %.1f MiB, heap in use %lld -> %lld bytes\n", cycles,
              static_cast<double>(before.resident_bytes) / (1 << 20), static_cast<double>(after.resident_bytes) / (1 << 20),
              static_cast<long long>(before.heap_bytes), static_cast<long long>(after.heap_bytes));
  if constexpr (!host_memory_is_measurable) return;
  CHECK(after.resident_bytes - before.resident_bytes <= resident_slack);
  CHECK(after.heap_bytes - before.heap_bytes <= heap_slack);
}

}  // namespace visopt::testing
