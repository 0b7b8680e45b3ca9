#pragma once
// Tuning axis: heuristic takes each library's default algorithm; measured times the candidates at
// compile() and keeps the winner in an on-disk cache (VISOPT_CACHE_DIR).

#include <string_view>

namespace visopt::tuning {

struct tuning_tag {};
struct heuristic : tuning_tag { static constexpr std::string_view name = "heuristic"; };
struct measured : tuning_tag { static constexpr std::string_view name = "measured"; };

}  // namespace visopt::tuning
