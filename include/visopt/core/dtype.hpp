#pragma once
// Element types visopt computes in (fp32, fp16, bf16; s8 and u8 for int8-quantized activations and
// weights, e4m3 (FP8, 4 exponent and 3 mantissa bits, finite range +-448) for the GPU's quantized ones)
// and exact round-to-nearest-even conversions between the floating ones, so that weights converted on
// the host match what the GPU and oneDNN would produce. Quantized values need their scale to mean
// anything, so they convert only through quantize()/dequantize(), never through convert_elements.

#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "error.hpp"

namespace visopt {

enum class DType : std::uint8_t { f32, f16, bf16, s8, u8, e4m3 };

/// IEEE 754 binary16, stored as its bit pattern.
struct half {
  std::uint16_t bits = 0;
};

/// bfloat16: the upper half of an IEEE binary32, stored as its bit pattern.
struct bfloat16 {
  std::uint16_t bits = 0;
};

constexpr std::size_t dtype_size(DType t) { return t == DType::f32 ? 4 : t == DType::f16 || t == DType::bf16 ? 2 : 1; }

/// e4m3's largest finite value: the step of an FP8 tensor maps its largest value here.
inline constexpr float e4m3_largest = 448.0f;

/// s8, u8 or e4m3: a quantized type, whose values mean value·step (TensorView::quantization).
constexpr bool is_quantized(DType t) { return t == DType::s8 || t == DType::u8 || t == DType::e4m3; }

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::s8: return "s8";
    case DType::u8: return "u8";
    case DType::e4m3: return "e4m3";
  }
  return "?";
}

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<half> { static constexpr DType value = DType::f16; };
template <> struct dtype_of<bfloat16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<std::int8_t> { static constexpr DType value = DType::s8; };
template <> struct dtype_of<std::uint8_t> { static constexpr DType value = DType::u8; };
template <class T> inline constexpr DType dtype_of_v = dtype_of<T>::value;

// ---- bfloat16 ----

/// fp32 -> bf16, round to nearest, ties to even; NaN stays a (quiet) NaN, inf stays inf.
constexpr bfloat16 to_bfloat16(float value) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(value);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bfloat16{static_cast<std::uint16_t>((u >> 16) | 0x0040u)};
  const std::uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return bfloat16{static_cast<std::uint16_t>((u + rounding) >> 16)};
}

constexpr float to_float(bfloat16 value) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(value.bits) << 16);
}

// ---- half ----

/// fp32 -> fp16, round to nearest, ties to even, with subnormals, overflow to inf and NaN kept.
constexpr half to_half(float value) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(value);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t magnitude = u & 0x7fffffffu;
  if (magnitude > 0x7f800000u) {  // NaN: keep it quiet and keep the top payload bits
    return half{static_cast<std::uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu))};
  }
  if (magnitude >= 0x477ff000u) return half{static_cast<std::uint16_t>(sign | 0x7c00u)};  // rounds past 65504
  if (magnitude < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    if (magnitude < 0x33000000u) return half{sign};  // below half the smallest subnormal: to zero
    const std::uint32_t exponent = magnitude >> 23;
    const std::uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126u - exponent;  // brings the value to units of 2^-24
    std::uint32_t result = mantissa >> shift;
    const std::uint32_t remainder = mantissa & ((1u << shift) - 1u);
    const std::uint32_t halfway = 1u << (shift - 1u);
    if (remainder > halfway || (remainder == halfway && (result & 1u))) ++result;
    return half{static_cast<std::uint16_t>(sign | result)};
  }
  // Normal: rebias the exponent and round the 13 dropped mantissa bits to nearest even.
  std::uint32_t rebased = magnitude - 0x38000000u;
  rebased += 0xfffu + ((rebased >> 13) & 1u);
  return half{static_cast<std::uint16_t>(sign | (rebased >> 13))};
}

constexpr float to_float(half value) {
  const std::uint32_t sign = static_cast<std::uint32_t>(value.bits & 0x8000u) << 16;
  const std::uint32_t exponent = (value.bits >> 10) & 0x1fu;
  std::uint32_t mantissa = value.bits & 0x3ffu;
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0) return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  if (mantissa == 0) return std::bit_cast<float>(sign);
  // Subnormal half: normalise into a float.
  std::uint32_t e = 113u;
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    --e;
  }
  return std::bit_cast<float>(sign | (e << 23) | ((mantissa & 0x3ffu) << 13));
}

constexpr float to_float(float value) { return value; }

/// Converts a float to element type T (float, half or bfloat16).
template <class T>
constexpr T from_float(float value) {
  if constexpr (std::is_same_v<T, float>) return value;
  else if constexpr (std::is_same_v<T, half>) return to_half(value);
  else return to_bfloat16(value);
}

/// Converts `count` elements between any two visopt dtypes (the source and destination must not overlap).
inline void convert_elements(const void* source, DType source_type, void* destination, DType destination_type,
                             std::size_t count) {
  if (source_type == destination_type) {
    std::memcpy(destination, source, count * dtype_size(source_type));
    return;
  }
  require(!is_quantized(source_type) && !is_quantized(destination_type), "convert_elements: ", dtype_name(source_type),
          " to ", dtype_name(destination_type), ": quantized values convert only with their scale (quantize/dequantize)");
  auto load = [&](std::size_t i) -> float {
    switch (source_type) {
      case DType::f32: return static_cast<const float*>(source)[i];
      case DType::f16: return to_float(static_cast<const half*>(source)[i]);
      case DType::bf16: return to_float(static_cast<const bfloat16*>(source)[i]);
      case DType::s8:
      case DType::u8:
      case DType::e4m3: break;
    }
    return 0.0f;
  };
  for (std::size_t i = 0; i < count; ++i) {
    const float v = load(i);
    switch (destination_type) {
      case DType::f32: static_cast<float*>(destination)[i] = v; break;
      case DType::f16: static_cast<half*>(destination)[i] = to_half(v); break;
      case DType::bf16: static_cast<bfloat16*>(destination)[i] = to_bfloat16(v); break;
      case DType::s8:
      case DType::u8:
      case DType::e4m3: break;
    }
  }
}

}  // namespace visopt
