#pragma once
// The one percentile definition of visopt's measurements (bench, the levels demo, serve and its load
// generator): linear interpolation between the closest ranks, numpy's default, which bench/peers.py
// uses for the PyTorch peers too.

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/error.hpp"

namespace visopt::runtime {

/// Percentile q (0..1) of samples sorted ascending.
inline double percentile(const std::vector<double>& sorted, double q) {
  require(!sorted.empty(), "percentile: no samples");
  const double position = q * static_cast<double>(sorted.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(position));
  const std::size_t above = std::min(below + 1, sorted.size() - 1);
  return sorted[below] + (sorted[above] - sorted[below]) * (position - static_cast<double>(below));
}

struct Latency {
  double p50 = 0, p95 = 0, p99 = 0;
};

/// The median, p95 and p99 of latency samples in any order (unit in, unit out).
inline Latency summarize_latency(std::vector<double> samples) {
  require(!samples.empty(), "summarize_latency: no samples");
  std::sort(samples.begin(), samples.end());
  return {percentile(samples, 0.5), percentile(samples, 0.95), percentile(samples, 0.99)};
}

}  // namespace visopt::runtime
