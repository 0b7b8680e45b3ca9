// libFuzzer target for the safetensors reader: any bytes must either parse, after which every tensor
// loads in every dtype it converts to, or be refused with a visopt::Error. Anything else (a crash, a
// sanitizer report, another exception type) is a finding.

#include <cstddef>
#include <cstdint>
#include <vector>

#include <visopt/io/safetensors.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto* first = reinterpret_cast<const std::byte*>(data);
  try {
    const auto file = visopt::io::SafeTensors::from_bytes(std::vector<std::byte>(first, first + size), "fuzz-input");
    for (const auto& name : file.names()) {
      const auto& info = file.info(name);
      (void)file.raw_bytes(name);
      // load() allocates the whole tensor: a valid header may describe a large one backed by the data
      // section, which libFuzzer's input size bounds, so this cannot run away.
      for (const auto as : {visopt::DType::f32, visopt::DType::f16, visopt::DType::bf16}) {
        try {
          const visopt::Tensor t = file.load(name, info.shape, as);
          if (t.shape() != info.shape || t.dtype() != as) __builtin_trap();
        } catch (const visopt::Error&) {  // e.g. an I64 tensor: load() refuses to convert it
        }
      }
    }
  } catch (const visopt::Error&) {
  }
  return 0;
}
