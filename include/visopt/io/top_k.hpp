#pragma once
// Reading a classifier's output: the k most likely classes of one row of logits, with softmax
// probabilities, as examples/classify prints them and examples/serve answers them.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <span>
#include <vector>

#include "../core/error.hpp"

namespace visopt::io {

struct ScoredClass {
  int index = 0;             ///< the logit's position: the class id
  float logit = 0;
  double probability = 0;    ///< softmax over the whole row
};

/// The min(k, logits.size()) largest logits, largest first (ties: lower index first), with their softmax
/// probabilities. Throws visopt::Error for an empty row or k < 1.
inline std::vector<ScoredClass> top_k(std::span<const float> logits, int k) {
  require(!logits.empty(), "io: top_k: the row of logits is empty");
  require(k >= 1, "io: top_k: k is ", k, ", must be >= 1");
  const float largest = *std::max_element(logits.begin(), logits.end());
  double total = 0.0;  // shifted by the largest logit so exp() cannot overflow
  for (const float v : logits) total += std::exp(static_cast<double>(v - largest));

  std::vector<int> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  const auto n = static_cast<std::ptrdiff_t>(std::min<std::size_t>(static_cast<std::size_t>(k), order.size()));
  std::partial_sort(order.begin(), order.begin() + n, order.end(), [&](int a, int b) {
    const float la = logits[static_cast<std::size_t>(a)], lb = logits[static_cast<std::size_t>(b)];
    return la > lb || (la == lb && a < b);
  });
  std::vector<ScoredClass> out;
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    const int c = order[static_cast<std::size_t>(i)];
    const float v = logits[static_cast<std::size_t>(c)];
    out.push_back({c, v, std::exp(static_cast<double>(v - largest)) / total});
  }
  return out;
}

}  // namespace visopt::io
