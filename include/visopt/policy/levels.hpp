#pragma once
// The optimisation levels of DESIGN.md, each a named policy bundle. Every level is checked against O0;
// O1 adds fusion, measured tuning and TF32, O2 half precision and NHWC, O3 a static plan and graphs,
// O4 calibrated 8-bit precision.

#include "policy.hpp"

namespace visopt {

struct O0 : Policy<precision::fp32, layout::nchw, fusion::none, execution::eager, tuning::heuristic> {
  static constexpr std::string_view name = "O0";
};
struct O1 : Policy<precision::tf32, layout::nchw, fusion::epilogue, execution::eager, tuning::measured> {
  static constexpr std::string_view name = "O1";
};
struct O2 : Policy<precision::half, layout::nhwc, fusion::epilogue, execution::eager, tuning::measured> {
  static constexpr std::string_view name = "O2";
};
struct O3 : Policy<precision::half, layout::nhwc, fusion::epilogue, execution::graph_capture, tuning::measured> {
  static constexpr std::string_view name = "O3";
};

/// O3 with calibrated 8-bit precision: compile() needs CompileOptions::calibration (visopt::calibrate).
/// Checked against O0 by agreement (top-1, cosine), not by the fp32 tolerances of O0-O3.
struct O4 : Policy<precision::quantized, layout::nhwc, fusion::epilogue, execution::graph_capture, tuning::measured> {
  static constexpr std::string_view name = "O4";
};

static_assert(PolicyBundle<O0> && PolicyBundle<O1> && PolicyBundle<O2> && PolicyBundle<O3> && PolicyBundle<O4>);

}  // namespace visopt
