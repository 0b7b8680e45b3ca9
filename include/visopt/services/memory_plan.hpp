#pragma once
// PlannedArena: the static activation memory plan of execution::graph_capture, backend-neutral.
// The first forward pass for an input shape records each allocation's size and lifetime; offsets in
// ONE 64-byte-aligned block are then assigned by liveness, and later passes for that shape replay them.

#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

#include "../core/tensor.hpp"

namespace visopt::runtime {

/// One activation of a recorded pass: its size and the events [first, last) during which it is live.
struct PlannedBuffer {
  std::size_t bytes = 0;
  std::size_t first = 0, last = 0;
  std::size_t offset = 0;  // assigned by assign_offsets
};

/// Places every buffer at an offset such that buffers live at the same time never overlap, and
/// returns the block size this needs. Greedy by size: the largest buffer is placed first, each into
/// the smallest gap (best fit) left between the already-placed buffers that overlap it in time.
/// Offsets and sizes are rounded to `alignment` bytes.
inline std::size_t assign_offsets(std::vector<PlannedBuffer>& buffers, std::size_t alignment = 64) {
  auto round_up = [alignment](std::size_t n) { return (n + alignment - 1) / alignment * alignment; };
  std::vector<std::size_t> order(buffers.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return buffers[a].bytes > buffers[b].bytes; });
  std::vector<std::size_t> placed, overlapping;
  std::size_t block = 0;
  for (const std::size_t i : order) {
    PlannedBuffer& buffer = buffers[i];
    const std::size_t size = round_up(std::max<std::size_t>(buffer.bytes, 1));
    overlapping.clear();
    for (const std::size_t j : placed) {
      if (buffers[j].first < buffer.last && buffer.first < buffers[j].last) overlapping.push_back(j);
    }
    std::sort(overlapping.begin(), overlapping.end(), [&](std::size_t a, std::size_t b) { return buffers[a].offset < buffers[b].offset; });
    std::size_t cursor = 0, best = 0, best_gap = 0;
    bool found = false;
    for (const std::size_t j : overlapping) {
      if (buffers[j].offset >= cursor) {
        const std::size_t gap = buffers[j].offset - cursor;
        if (gap >= size && (!found || gap < best_gap)) {
          best = cursor;
          best_gap = gap;
          found = true;
        }
      }
      cursor = std::max(cursor, round_up(buffers[j].offset + std::max<std::size_t>(buffers[j].bytes, 1)));
    }
    buffer.offset = found ? best : cursor;
    block = std::max(block, buffer.offset + size);
    placed.push_back(i);
  }
  return block;
}

/// The most bytes live at one time in a recorded pass: no plan can use less than this.
inline std::size_t peak_live_bytes(const std::vector<PlannedBuffer>& buffers) {
  std::vector<std::pair<std::size_t, std::ptrdiff_t>> events;
  for (const auto& b : buffers) {
    events.emplace_back(b.first, static_cast<std::ptrdiff_t>(b.bytes));
    events.emplace_back(b.last, -static_cast<std::ptrdiff_t>(b.bytes));
  }
  std::sort(events.begin(), events.end());  // at equal times a release (negative) sorts before an allocation
  std::ptrdiff_t live = 0, peak = 0;
  for (const auto& e : events) peak = std::max(peak, live += e.second);
  return static_cast<std::size_t>(peak);
}

/// Activation memory planned by liveness, with ActivationPool's allocate() interface.
///
/// Use: begin_pass(input shape) -> allocate()... -> end_pass(). The first pass for a key records
/// (each allocation gets memory of its own, freed with its last handle); end_pass() turns the
/// recording into a plan and grows the block to fit it. A later pass for that key must allocate the
/// same sizes in the same order (a deterministic forward pass does); allocation #k then returns the
/// block at offset[k], with no allocation at all: the tensor shares ownership of the block.
class PlannedArena {
 public:
  explicit PlannedArena(Device device = Device::cpu()) : state_(std::make_shared<State>()) { state_->device = device; }

  /// Starts a forward pass for `key` (the input shape). A pass left open by an exception is dropped.
  void begin_pass(const Shape& key) {
    State& s = *state_;
    ++s.pass_id;
    s.cursor = 0;
    s.recording.clear();
    s.plan = nullptr;
    for (auto& plan : s.plans) {
      if (plan.key == key) s.plan = &plan;
    }
    s.recording_key = key;
    s.in_pass = true;
  }

  /// A tensor of `shape`: planned memory when replaying, memory of its own when recording.
  Tensor allocate(const Shape& shape, DType dtype, MemoryFormat format = MemoryFormat::contiguous) {
    State& s = *state_;
    require(s.in_pass, "PlannedArena: allocate(", shape, ") outside a forward pass; call begin_pass() first");
    const std::size_t bytes = static_cast<std::size_t>(shape.numel()) * dtype_size(dtype);
    const std::size_t index = s.cursor++;
    if (s.plan) {
      const Plan& plan = *s.plan;
      require(index < plan.buffers.size() && plan.buffers[index].bytes == bytes, "PlannedArena: allocation #", index,
              " of the pass for input ", plan.key, " asks for ", bytes, " bytes (", shape, " ", dtype_name(dtype),
              "), but the recorded plan has ",
              index < plan.buffers.size() ? plan.buffers[index].bytes : std::size_t{0},
              " bytes there; the forward pass must allocate the same sequence each time (internal error)");
      void* data = static_cast<std::byte*>(s.block.get()) + plan.buffers[index].offset;
      return Tensor(std::shared_ptr<void>(s.block, data), TensorView(data, dtype, shape, s.device, format));
    }
    s.recording.push_back({bytes, ++s.events, 0, 0});
    std::shared_ptr<void> storage = detail::allocate_storage(std::max<std::size_t>(bytes, 1), s.device);
    ++s.fresh_allocations;
    void* data = storage.get();
    // The handle tells the arena when the buffer dies: that ends its lifetime in the recording.
    std::weak_ptr<State> owner = state_;
    std::shared_ptr<void> handle(data, [owner, storage = std::move(storage), index, pass = s.pass_id](void*) mutable {
      storage.reset();
      if (auto state = owner.lock(); state && state->in_pass && state->pass_id == pass && !state->plan &&
                                     index < state->recording.size()) {
        state->recording[index].last = ++state->events;
      }
    });
    return Tensor(std::move(handle), TensorView(data, dtype, shape, s.device, format));
  }

  /// Ends the pass. Buffers still alive (the input, the output) live to its end. A recorded pass
  /// becomes the plan for its key; the block is reallocated only when this plan needs more.
  void end_pass() {
    State& s = *state_;
    require(s.in_pass, "PlannedArena: end_pass() without begin_pass()");
    s.in_pass = false;
    if (s.plan) {
      require(s.cursor == s.plan->buffers.size(), "PlannedArena: the pass for input ", s.plan->key, " made ", s.cursor,
              " allocations, the recorded plan ", s.plan->buffers.size(), " (internal error)");
      return;
    }
    const std::size_t end = ++s.events;
    for (auto& b : s.recording) {
      if (b.last == 0) b.last = end;
    }
    Plan plan{s.recording_key, std::move(s.recording), 0, 0};
    plan.block_bytes = assign_offsets(plan.buffers, detail::tensor_alignment);
    plan.peak_live_bytes = peak_live_bytes(plan.buffers);
    if (plan.block_bytes > s.capacity) {
      s.block = detail::allocate_storage(plan.block_bytes, s.device);
      s.capacity = plan.block_bytes;
      ++s.fresh_allocations;
    }
    s.plans.push_back(std::move(plan));
    s.recording = {};
  }

  /// Bytes of the planned block (the activation memory of every planned pass).
  std::size_t bytes_reserved() const { return state_->capacity; }
  /// How many times the arena allocated memory: recordings and block growth; constant once every
  /// input shape was seen.
  std::size_t fresh_allocations() const { return state_->fresh_allocations; }
  /// Input shapes with a plan.
  std::size_t plan_count() const { return state_->plans.size(); }
  /// For the largest plan: its block bytes, the lower bound (peak live bytes) and the sum of all its
  /// buffers (what allocating each activation separately would take).
  struct Summary {
    std::size_t block_bytes = 0, peak_live_bytes = 0, total_bytes = 0, buffers = 0;
  };
  Summary largest_plan() const {
    Summary out;
    for (const auto& plan : state_->plans) {
      if (plan.block_bytes < out.block_bytes) continue;
      out = {plan.block_bytes, plan.peak_live_bytes, 0, plan.buffers.size()};
      for (const auto& b : plan.buffers) out.total_bytes += b.bytes;
    }
    return out;
  }

 private:
  struct Plan {
    Shape key;
    std::vector<PlannedBuffer> buffers;
    std::size_t block_bytes = 0, peak_live_bytes = 0;
  };
  struct State {
    Device device;
    std::vector<Plan> plans;  // few: one per input shape
    const Plan* plan = nullptr;  // the plan being replayed, or null while recording
    std::vector<PlannedBuffer> recording;
    Shape recording_key;
    std::shared_ptr<void> block;
    std::size_t capacity = 0, cursor = 0, events = 0, pass_id = 0, fresh_allocations = 0;
    bool in_pass = false;
  };
  std::shared_ptr<State> state_;
};

}  // namespace visopt::runtime
