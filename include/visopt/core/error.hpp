#pragma once
// visopt::Error, the one exception type of the library, and the helpers that build its messages.
// Messages name the thing, where it happened and what was expected (see CONVENTIONS.md).

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace visopt {

/// Every failure visopt reports is a visopt::Error; what() is a complete sentence for the user.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {

/// Streams every argument into one string: concat("tensor '", name, "' has ", n, " elements").
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}

}  // namespace detail

/// Throws visopt::Error with the concatenated message when `condition` is false.
template <class... Args>
void require(bool condition, Args&&... message) {
  if (!condition) throw Error(detail::concat(std::forward<Args>(message)...));
}

[[noreturn]] inline void fail(const std::string& message) { throw Error(message); }

}  // namespace visopt
