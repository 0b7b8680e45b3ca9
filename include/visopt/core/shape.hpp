#pragma once
// Shape: the extents of a tensor (rank <= 6), printed as "[64,64,3,3]" in every error message.

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "error.hpp"

namespace visopt {

class Shape {
 public:
  static constexpr int max_rank = 6;

  Shape() = default;
  Shape(std::initializer_list<std::int64_t> extents) { assign(extents.begin(), extents.end()); }
  explicit Shape(const std::vector<std::int64_t>& extents) { assign(extents.begin(), extents.end()); }

  int rank() const { return rank_; }
  std::int64_t operator[](int axis) const { return extents_[static_cast<std::size_t>(axis)]; }
  std::int64_t& operator[](int axis) { return extents_[static_cast<std::size_t>(axis)]; }
  const std::int64_t* begin() const { return extents_.data(); }
  const std::int64_t* end() const { return extents_.data() + rank_; }

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= extents_[static_cast<std::size_t>(i)];
    return n;
  }

  friend bool operator==(const Shape& a, const Shape& b) {
    return a.rank_ == b.rank_ && std::equal(a.begin(), a.end(), b.begin());
  }

  std::string to_string() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) {
      if (i) s += ',';
      s += std::to_string(extents_[static_cast<std::size_t>(i)]);
    }
    return s + "]";
  }

 private:
  template <class It>
  void assign(It first, It last) {
    const auto n = std::distance(first, last);
    require(n <= max_rank, "Shape: rank ", n, " exceeds the supported maximum of ", max_rank);
    rank_ = static_cast<int>(n);
    std::size_t i = 0;
    for (; first != last; ++first) {
      require(*first >= 0, "Shape: extent ", *first, " at axis ", i, " is negative");
      extents_[i++] = *first;
    }
  }

  std::array<std::int64_t, max_rank> extents_{};
  int rank_ = 0;
};

inline std::ostream& operator<<(std::ostream& out, const Shape& shape) { return out << shape.to_string(); }

}  // namespace visopt
