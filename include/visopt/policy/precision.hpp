#pragma once
// Precision axis: the number format activations and weights are computed in.
// `half` means "the device's 16-bit format": fp16 on GPUs, bf16 on CPUs that have it; `quantized`
// the device's calibrated 8-bit one.

#include <string_view>
#include <type_traits>

namespace visopt::precision {

struct precision_tag {};
struct fp32 : precision_tag { static constexpr std::string_view name = "fp32"; };
/// fp32 storage, TF32 tensor-core math on GPUs; CPUs compute it as plain fp32.
struct tf32 : precision_tag { static constexpr std::string_view name = "tf32"; };
struct fp16 : precision_tag { static constexpr std::string_view name = "fp16"; };
struct bf16 : precision_tag { static constexpr std::string_view name = "bf16"; };
/// fp16 on a GPU, bf16 on a CPU with avx512_bf16/AMX, else fp32 (the report says which).
struct half : precision_tag { static constexpr std::string_view name = "half"; };
/// Calibrated 8-bit integers: s8 weights (a scale per output channel) and s8/u8 activations (a scale
/// per tensor, from visopt::calibrate), int32 accumulation. The first convolution, the classifier,
/// LayerNorm, softmax and attention stay in the device's 16-bit format (fp32 without one).
struct int8 : precision_tag { static constexpr std::string_view name = "int8"; };
/// Calibrated FP8 (e4m3) on a GPU with FP8 tensor cores (sm_89 and later): e4m3 weights (one scale per
/// tensor) and activations (a scale per tensor, from visopt::calibrate), fp32 accumulation, in the
/// token-wise linears; the rest as precision::fp16.
struct fp8 : precision_tag { static constexpr std::string_view name = "fp8"; };
/// The device's calibrated 8-bit format: int8 on a CPU (oneDNN, VNNI/AMX), FP8 on a GPU.
struct quantized : precision_tag { static constexpr std::string_view name = "quantized"; };

template <class T> inline constexpr bool is_quantized_v =
    std::is_same_v<T, int8> || std::is_same_v<T, fp8> || std::is_same_v<T, quantized>;

template <class T> inline constexpr bool is_reduced_v = !std::is_same_v<T, fp32> && !std::is_same_v<T, tf32>;

}  // namespace visopt::precision
