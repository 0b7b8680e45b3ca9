#pragma once
// Comparing logits with the PyTorch oracle as CONVENTIONS.md defines it: r = max|y − ref| / max|ref|,
// cosine similarity, and top-1 agreement over the batch, checked against the tolerance of the
// precision an engine computes in; plus where the fixtures live.

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>

#include <visopt/core/tensor.hpp>
#include <visopt/io/safetensors.hpp>

#include "catch.hpp"

namespace visopt::testing {

struct Agreement {
  double relative_error = 0;  // r
  double cosine = 0;
  double top1 = 0;            // fraction of images whose arg-max agrees
};

inline Agreement compare_logits(const Tensor& y, const Tensor& ref) {
  require(y.shape() == ref.shape(), "compare_logits: shapes ", y.shape(), " and ", ref.shape(), " differ");
  const Tensor a = y.to(DType::f32), b = ref.to(DType::f32);
  const float* p = a.data_as<float>();
  const float* q = b.data_as<float>();
  double max_diff = 0, max_ref = 0, dot = 0, na = 0, nb = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    max_diff = std::max(max_diff, std::abs(double(p[i]) - q[i]));
    max_ref = std::max(max_ref, std::abs(double(q[i])));
    dot += double(p[i]) * q[i];
    na += double(p[i]) * p[i];
    nb += double(q[i]) * q[i];
  }
  const std::int64_t rows = a.dim(0), cols = a.numel() / rows;
  std::int64_t agree = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    auto argmax = [&](const float* row) { return std::max_element(row, row + cols) - row; };
    agree += argmax(p + r * cols) == argmax(q + r * cols);
  }
  return {max_diff / max_ref, dot / std::sqrt(na * nb), double(agree) / double(rows)};
}

/// N(0,1) images [n,3,size,size] from `seed`: calibration draws for the 8-bit levels, distinct from the
/// fixtures' test images (torch's draws).
inline Tensor calibration_images(std::int64_t n, std::int64_t size, unsigned seed) {
  Tensor t = Tensor::empty({n, 3, size, size});
  std::mt19937 generator(seed);
  std::normal_distribution<float> normal;
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = normal(generator);
  return t;
}

/// The first `count` images of a host batch, as their own tensor.
inline Tensor first_images(const Tensor& images, std::int64_t count) {
  Shape shape = images.shape();
  shape[0] = count;
  Tensor out = Tensor::empty(shape);
  std::memcpy(out.data(), images.data(), out.nbytes());
  return out;
}

/// The directory make_fixtures.py wrote to (CTest sets VISOPT_FIXTURE_DIR).
inline std::filesystem::path fixture_dir() {
  const char* dir = std::getenv("VISOPT_FIXTURE_DIR");
  require(dir != nullptr, "tests: VISOPT_FIXTURE_DIR is not set; run the tests through ctest, which makes the fixtures");
  return dir;
}

inline std::filesystem::path fixture(const std::string& file) { return fixture_dir() / file; }

/// Tolerances of CONVENTIONS.md by the precision the engine computes in.
struct Tolerance {
  double relative_error;
  double min_cosine;
  double min_top1 = 0.99;  // of a batch of at least 32 images
};
inline constexpr Tolerance fp32_tolerance{1e-4, 0.0};
inline constexpr Tolerance tf32_tolerance{1e-2, 0.0};
inline constexpr Tolerance half_tolerance{5e-2, 0.999};
/// Quantized precisions (INT8/FP8): top-1 and cosine against fp32; no bound on r.
inline constexpr Tolerance int8_tolerance{1e30, 0.99, 0.99};

/// The tolerance for logits an engine computed in `compute`: fp32's, or the half-precision one for
/// bf16 and fp16 (TF32 engines, which compute in f32 tensors, take tf32_tolerance_of themselves; bf16
/// engines checked against a fixture, bf16_tolerance_of).
inline Tolerance tolerance_for(DType compute) { return compute == DType::f32 ? fp32_tolerance : half_tolerance; }

/// CONVENTIONS.md's bound `conventions` for a reduced precision, widened to PyTorch's own error in that
/// precision on the same images where PyTorch cannot meet it. make_fixtures.py records that error as
/// torch_<precision>_relative_error (and torch_<precision>_cosine): bf16 on the GPU of a GPU machine,
/// else on the CPU; tf32 on a GPU only. Never looser than PyTorch's own. Why it is needed: on deep
/// ResNets with random weights torch's bf16 itself lands at r ≈ 0.07 (ResNet-50 at 224, GPU), 0.10
/// (ResNet-101 at 64) and 0.14-0.16 (ResNet-152 at 64), and TF32's 10-bit mantissa, summed over 152
/// layers, passes 1e-2 as well; the bound alone would ask an engine to beat the oracle's own arithmetic.
inline Tolerance pytorch_bounded(Tolerance conventions, const std::map<std::string, std::string>& fixture_metadata,
                                 const std::string& precision) {
  const auto r = fixture_metadata.find("torch_" + precision + "_relative_error");
  const auto cosine = fixture_metadata.find("torch_" + precision + "_cosine");
  const auto top1 = fixture_metadata.find("torch_" + precision + "_top1");
  if (r != fixture_metadata.end()) conventions.relative_error = std::max(conventions.relative_error, std::stod(r->second));
  if (cosine != fixture_metadata.end()) conventions.min_cosine = std::min(conventions.min_cosine, std::stod(cosine->second));
  if (top1 != fixture_metadata.end()) conventions.min_top1 = std::min(conventions.min_top1, std::stod(top1->second));
  return conventions;
}

/// The bound for a bf16 engine on a fixture (pytorch_bounded).
inline Tolerance bf16_tolerance_of(const std::map<std::string, std::string>& fixture_metadata) {
  return pytorch_bounded(half_tolerance, fixture_metadata, "bf16");
}

/// The bound for an int8 engine on a fixture (pytorch_bounded; make_fixtures.py measures torch's int8
/// on ResNets, with FX post-training quantization on its x86 engine).
inline Tolerance int8_tolerance_of(const std::map<std::string, std::string>& fixture_metadata) {
  return pytorch_bounded(int8_tolerance, fixture_metadata, "int8");
}

/// The bound for an FP8 engine on a fixture: CONVENTIONS.md's quantized bound, widened where PyTorch
/// computing the same e4m3 recipe in fp32 misses it (make_fixtures.py, torch_fp8_*: e4m3 keeps 3
/// mantissa bits, and deep random models amplify that), less what the engine's fp16 arithmetic, tanh
/// GELU and fast FP8 accumulation add over fp32: 0.002 of cosine and one image of 32 in top-1.
inline Tolerance fp8_tolerance_of(const std::map<std::string, std::string>& fixture_metadata) {
  Tolerance t = pytorch_bounded(int8_tolerance, fixture_metadata, "fp8");
  if (fixture_metadata.count("torch_fp8_cosine")) {
    t.min_cosine = std::min(int8_tolerance.min_cosine, std::stod(fixture_metadata.at("torch_fp8_cosine")) - 0.002);
    t.min_top1 = std::min(int8_tolerance.min_top1, std::stod(fixture_metadata.at("torch_fp8_top1")) - 1.0 / 32);
  }
  return t;
}

/// The bound for a TF32 engine on a fixture (pytorch_bounded).
inline Tolerance tf32_tolerance_of(const std::map<std::string, std::string>& fixture_metadata) {
  return pytorch_bounded(tf32_tolerance, fixture_metadata, "tf32");
}

/// Checks `a` against `t` and the top-1 agreement, each as its own CHECK (the caller INFOs the context).
inline void check_agreement(const Agreement& a, const Tolerance& t) {
  CHECK(a.relative_error <= t.relative_error);
  CHECK(a.cosine >= t.min_cosine);
  CHECK(a.top1 >= t.min_top1);
}

}  // namespace visopt::testing
