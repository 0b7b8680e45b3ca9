#pragma once
// Numerically stable fp32 softmax over the rows of a row-major matrix, in place: attention's
// probabilities and a classifier's output probabilities.

#include <algorithm>
#include <limits>

#include "common.hpp"

namespace visopt::backend::reference {

namespace detail {
/// softmax of one row in place: exp(x − max) / Σ exp(x − max), which cannot overflow.
inline void softmax_row(float* row, int64_t cols) {
  float max_value = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < cols; ++j) max_value = std::max(max_value, row[j]);
  float sum = 0.0f;
  for (int64_t j = 0; j < cols; ++j) {
    row[j] = std::exp(row[j] - max_value);
    sum += row[j];
  }
  const float inverse = 1.0f / sum;
  for (int64_t j = 0; j < cols; ++j) row[j] *= inverse;
}
}  // namespace detail

/// Replaces each of the `rows` rows of `data` (row-major, `cols` per row) by its softmax. A row of all
/// −inf becomes NaN, as in PyTorch.
inline void softmax_rows(float* data, int64_t rows, int64_t cols) {
  require(data != nullptr || rows * cols == 0, "reference::softmax_rows: data is null for ", rows, "x", cols);
  require(rows >= 0 && cols >= 1, "reference::softmax_rows: ", rows, "x", cols, " needs rows >= 0 and cols >= 1");
  const bool parallel = rows >= 2 && rows * cols >= (1 << 14) && detail::available_threads() > 1;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t i = 0; i < rows; ++i) detail::softmax_row(data + i * cols, cols);
}

}  // namespace visopt::backend::reference
