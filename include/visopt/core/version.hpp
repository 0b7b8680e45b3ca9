#pragma once
// visopt's version, which saved plans carry (CMakeLists.txt checks that project() says the same).

#include <string_view>

namespace visopt {

inline constexpr std::string_view version = "0.1.0";

}  // namespace visopt
