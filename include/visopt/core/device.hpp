#pragma once
// Where a tensor's bytes live. Host memory is always available; device memory comes from an
// allocator that a GPU backend registers, so core/ never depends on CUDA.

#include <cstddef>
#include <string>

#include "error.hpp"

namespace visopt {

enum class DeviceKind { cpu, cuda };

struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int index = 0;

  static constexpr Device cpu() { return {DeviceKind::cpu, 0}; }
  static constexpr Device cuda(int index = 0) { return {DeviceKind::cuda, index}; }
  bool is_cpu() const { return kind == DeviceKind::cpu; }
  friend bool operator==(const Device&, const Device&) = default;

  std::string to_string() const { return kind == DeviceKind::cpu ? "cpu" : "cuda:" + std::to_string(index); }
};

/// The hooks a GPU backend installs so that Tensor::empty(..., Device::cuda()) can allocate.
struct DeviceAllocator {
  void* (*allocate)(std::size_t bytes, int device_index) = nullptr;
  void (*release)(void* pointer) noexcept = nullptr;
};

inline DeviceAllocator& device_allocator() {
  static DeviceAllocator hooks;
  return hooks;
}

}  // namespace visopt
