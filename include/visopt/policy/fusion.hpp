#pragma once
// Fusion axis: none runs one op at a time; fold_bn folds BatchNorm into the convolution weights;
// epilogue also puts bias, residual add and ReLU/GELU into the conv/GEMM epilogue.

#include <string_view>

namespace visopt::fusion {

struct fusion_tag {};
struct none : fusion_tag {
  static constexpr std::string_view name = "none";
  static constexpr bool folds_batch_norm = false;
  static constexpr bool fuses_epilogue = false;
};
struct fold_bn : fusion_tag {
  static constexpr std::string_view name = "fold_bn";
  static constexpr bool folds_batch_norm = true;
  static constexpr bool fuses_epilogue = false;
};
struct epilogue : fusion_tag {
  static constexpr std::string_view name = "epilogue";
  static constexpr bool folds_batch_norm = true;
  static constexpr bool fuses_epilogue = true;
};

}  // namespace visopt::fusion
