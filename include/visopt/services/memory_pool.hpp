#pragma once
// ActivationPool: hands out activation tensors and takes their blocks back when the last reference
// dies. Blocks are matched by exact size, so a forward pass that repeats the sizes of an earlier one
// (same batch size) reuses every block: after the first run() nothing is allocated.
// Thread-safe: a block comes back from whichever thread drops its last reference (a CUDA engine's
// device-resident logits live in the caller's hands), possibly while run() allocates on another.

#include <map>
#include <memory>
#include <mutex>

#include "../core/tensor.hpp"

namespace visopt::runtime {

class ActivationPool {
 public:
  explicit ActivationPool(Device device = Device::cpu()) : state_(std::make_shared<State>()) { state_->device = device; }

  Tensor allocate(const Shape& shape, DType dtype, MemoryFormat format = MemoryFormat::contiguous) {
    const std::size_t bytes = std::max<std::size_t>(static_cast<std::size_t>(shape.numel()) * dtype_size(dtype), 1);
    std::shared_ptr<void> block;
    std::lock_guard lock(state_->mutex);  // uncontended but for a block coming back from another thread
    if (auto it = state_->free.find(bytes); it != state_->free.end()) {
      block = std::move(it->second);
      state_->free.erase(it);
    } else {
      block = detail::allocate_storage(bytes, state_->device);
      state_->reserved += bytes;
      ++state_->fresh_allocations;
    }
    state_->in_use += bytes;
    state_->peak = std::max(state_->peak, state_->in_use);
    // The handle keeps the block alive and, when released, gives it back to the pool if the pool still exists.
    std::weak_ptr<State> owner = state_;
    void* data = block.get();
    std::shared_ptr<void> handle(data, [owner, block = std::move(block), bytes](void*) mutable {
      if (auto state = owner.lock()) {
        std::lock_guard lock(state->mutex);
        state->in_use -= bytes;
        state->free.emplace(bytes, std::move(block));
      }
    });
    return Tensor(std::move(handle), TensorView(data, dtype, shape, state_->device, format));
  }

  std::size_t bytes_reserved() const { return locked(&State::reserved); }
  std::size_t peak_bytes_in_use() const { return locked(&State::peak); }
  /// How many times the pool had to allocate fresh memory (constant once every batch size was seen).
  std::size_t fresh_allocations() const { return locked(&State::fresh_allocations); }

 private:
  struct State {
    std::mutex mutex;
    Device device;
    std::multimap<std::size_t, std::shared_ptr<void>> free;
    std::size_t reserved = 0, in_use = 0, peak = 0, fresh_allocations = 0;
  };
  std::size_t locked(std::size_t State::*field) const {
    std::lock_guard lock(state_->mutex);
    return (*state_).*field;
  }

  std::shared_ptr<State> state_;
};

}  // namespace visopt::runtime
