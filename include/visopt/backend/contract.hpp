#pragma once
// The backend contract: what an executor provides, written down once. The nn:: blocks call the
// operations (nn::Operations, nn/operations.hpp); compile() and the Engine call the rest (here). Every
// executor is checked against it where a backend is named (runtime::EngineImpl), and the summary's
// shape executor against the operations, so a missing or misspelt operation is a compile error that
// names the operation and its signature, not a silent fallback. There are no optional hooks: an
// executor with nothing to do for one writes it empty.

#include <concepts>
#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "../core/tensor.hpp"
#include "../nn/operations.hpp"
#include "../services/options.hpp"
#include "../services/report.hpp"

namespace visopt::backend {

// ---- what the Engine calls ----
namespace detail {
struct ForwardProbe {  // stands for the network's forward in the run() requirement
  Tensor operator()(const Tensor& images) const { return images; }
};
}  // namespace detail

template <class E> concept constructed_from_options = std::constructible_from<E, const runtime::CompileOptions&, runtime::Report&>;
template <class E> concept runs_forward = requires(E& e, const TensorView& images) {
  { e.run(images, detail::ForwardProbe{}) } -> std::same_as<Tensor>;
};
template <class E> concept plans_forward = requires(E& e, const TensorView& images) { e.plan(images, detail::ForwardProbe{}); };
template <class E> concept gives_host_buffers = requires(const E& e, const Shape& shape) {
  { e.host_buffer(shape) } -> std::same_as<Tensor>;
};
template <class E> concept counts_memory = requires(const E& e) {
  { e.activation_bytes() } -> std::convertible_to<std::size_t>;
  { e.weight_bytes() } -> std::convertible_to<std::size_t>;
};
template <class E> concept completes_report = requires(const E& e, runtime::Report& r) { e.complete_report(r); };
template <class E> concept saves_plans = requires(E& e, const E& ce, const nlohmann::json& entries, runtime::Report& r) {
  { ce.identity() } -> std::convertible_to<std::string>;
  e.use_saved_algorithms(entries, r);
  { ce.saved_algorithms() } -> std::convertible_to<nlohmann::json>;
};

/// A backend's executor: the operations plus what compile() and Engine::run() need.
template <class E> concept ExecutorContract =
    nn::Operations<E> && constructed_from_options<E> && runs_forward<E> && plans_forward<E> && gives_host_buffers<E> && counts_memory<E> &&
    completes_report<E> && saves_plans<E>;

/// Names the first missing or misspelt part of E's contract in a static_assert; returns the concept.
template <class E>
consteval bool check_executor() {
  static_assert(nn::check_operations<E>());
  static_assert(constructed_from_options<E>, "visopt backend contract: missing the constructor `Executor(const runtime::CompileOptions&, runtime::Report&)`");
  static_assert(runs_forward<E>, "visopt backend contract: missing `template <class Forward> Tensor run(const TensorView& images, Forward&&)`");
  static_assert(plans_forward<E>, "visopt backend contract: missing `template <class Forward> void plan(const TensorView& images, Forward&&)`");
  static_assert(gives_host_buffers<E>, "visopt backend contract: missing `Tensor host_buffer(const Shape&) const`");
  static_assert(counts_memory<E>, "visopt backend contract: missing `std::size_t activation_bytes() const` or `std::size_t weight_bytes() const`");
  static_assert(completes_report<E>, "visopt backend contract: missing `void complete_report(runtime::Report&) const`");
  static_assert(saves_plans<E>, "visopt backend contract: missing `std::string identity() const`, `void use_saved_algorithms("
                                "const nlohmann::json&, runtime::Report&)` or `nlohmann::json saved_algorithms() const`");
  return ExecutorContract<E>;
}

}  // namespace visopt::backend
