#pragma once
// The one way visopt calls oneDNN: VISOPT_DNNL(call, context...) runs a C++ API call (which throws
// dnnl::error) or a C API call (which returns dnnl_status_t) and turns any failure into a
// visopt::Error naming the call, the file and line, what it was for (shapes) and oneDNN's own message.

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <oneapi/dnnl/dnnl.hpp>

#include "../../core/error.hpp"

namespace visopt::backend::onednn {

/// oneDNN's name for a status, as its own error messages use it.
inline std::string_view status_name(dnnl_status_t status) {
  switch (status) {
    case dnnl_success: return "success";
    case dnnl_out_of_memory: return "out_of_memory";
    case dnnl_invalid_arguments: return "invalid_arguments";
    case dnnl_unimplemented: return "unimplemented";
    case dnnl_iterator_ends: return "iterator_ends";
    case dnnl_runtime_error: return "runtime_error";
    case dnnl_not_required: return "not_required";
  }
  return "unknown status";
}

namespace detail {

[[noreturn]] inline void throw_dnnl_error(std::string_view call, const char* file, int line, const std::string& context,
                                          dnnl_status_t status, std::string_view message) {
  std::string advice = status == dnnl_unimplemented
                           ? "; oneDNN has no implementation for these shapes/types on this CPU"
                           : "";
  throw Error(visopt::detail::concat("onednn: ", context, ": `", call, "` failed with ", status_name(status), " (",
                                     message, ")", advice, " [", file, ":", line,
                                     "]; run with ONEDNN_VERBOSE=all for oneDNN's view"));
}

/// Runs `f`; a dnnl::error or a non-success dnnl_status_t becomes a visopt::Error. `context` is
/// called only on failure, so the success path builds no strings (run() must not allocate).
template <class F, class Context>
decltype(auto) call_checked(F&& f, std::string_view call, const char* file, int line, Context&& context) {
  using Result = decltype(std::forward<F>(f)());
  try {
    if constexpr (std::is_same_v<Result, dnnl_status_t>) {
      const dnnl_status_t status = std::forward<F>(f)();
      if (status != dnnl_success) throw_dnnl_error(call, file, line, context(), status, "C API status");
      return status;
    } else {
      return std::forward<F>(f)();
    }
  } catch (const dnnl::error& e) {
    throw_dnnl_error(call, file, line, context(), e.status, e.what());
  }
}

}  // namespace detail
}  // namespace visopt::backend::onednn

/// VISOPT_DNNL(expression, what...): evaluates a oneDNN call; on failure throws visopt::Error with
/// the call's text, file and line, `what...` (concatenated, e.g. "conv2d ", shape) and oneDNN's message.
#define VISOPT_DNNL(expression, ...)                                                                  \
  ::visopt::backend::onednn::detail::call_checked([&]() -> decltype(auto) { return expression; }, \
                                                  #expression, __FILE__, __LINE__,                   \
                                                  [&] { return ::visopt::detail::concat(__VA_ARGS__); })
