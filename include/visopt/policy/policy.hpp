#pragma once
// The policy bundle: one tag per axis (precision, layout, fusion, execution, tuning), named members
// instead of positional arguments, and `with<...>` to override any axis of an existing bundle.

#include <concepts>
#include <string>
#include <string_view>

#include "execution.hpp"
#include "fusion.hpp"
#include "layout.hpp"
#include "precision.hpp"
#include "tuning.hpp"

namespace visopt {

template <class T> concept PrecisionPolicy = std::derived_from<T, precision::precision_tag>;
template <class T> concept LayoutPolicy = std::derived_from<T, layout::layout_tag>;
template <class T> concept FusionPolicy = std::derived_from<T, fusion::fusion_tag>;
template <class T> concept ExecutionPolicy = std::derived_from<T, execution::execution_tag>;
template <class T> concept TuningPolicy = std::derived_from<T, tuning::tuning_tag>;

template <class T> concept AxisPolicy =
    PrecisionPolicy<T> || LayoutPolicy<T> || FusionPolicy<T> || ExecutionPolicy<T> || TuningPolicy<T>;

namespace detail {
template <class Bundle, class... Overrides> struct apply_overrides;
}  // namespace detail

/// A bundle of one policy per axis. Levels (O0-O3) are bundles with a name; `with<>` makes a custom one.
template <PrecisionPolicy P, LayoutPolicy L, FusionPolicy F, ExecutionPolicy E, TuningPolicy T>
struct Policy {
  using precision = P;
  using layout = L;
  using fusion = F;
  using execution = E;
  using tuning = T;
  static constexpr std::string_view name = "custom";

  /// The same bundle with the given axes replaced: `O3::with<precision::bf16>`.
  template <AxisPolicy... Overrides>
  using with = typename detail::apply_overrides<Policy, Overrides...>::type;
};

template <class T> concept PolicyBundle = requires {
  typename T::precision;
  typename T::layout;
  typename T::fusion;
  typename T::execution;
  typename T::tuning;
  { T::name } -> std::convertible_to<std::string_view>;
} && PrecisionPolicy<typename T::precision> && LayoutPolicy<typename T::layout> &&
    FusionPolicy<typename T::fusion> && ExecutionPolicy<typename T::execution> && TuningPolicy<typename T::tuning>;

namespace detail {
template <class Bundle, class O> struct override_axis;
template <class P, class L, class F, class E, class T, class O> requires PrecisionPolicy<O>
struct override_axis<Policy<P, L, F, E, T>, O> { using type = Policy<O, L, F, E, T>; };
template <class P, class L, class F, class E, class T, class O> requires LayoutPolicy<O>
struct override_axis<Policy<P, L, F, E, T>, O> { using type = Policy<P, O, F, E, T>; };
template <class P, class L, class F, class E, class T, class O> requires FusionPolicy<O>
struct override_axis<Policy<P, L, F, E, T>, O> { using type = Policy<P, L, O, E, T>; };
template <class P, class L, class F, class E, class T, class O> requires ExecutionPolicy<O>
struct override_axis<Policy<P, L, F, E, T>, O> { using type = Policy<P, L, F, O, T>; };
template <class P, class L, class F, class E, class T, class O> requires TuningPolicy<O>
struct override_axis<Policy<P, L, F, E, T>, O> { using type = Policy<P, L, F, E, O>; };

template <class Bundle> struct apply_overrides<Bundle> { using type = Bundle; };
template <class Bundle, class First, class... Rest> struct apply_overrides<Bundle, First, Rest...> {
  using type = typename apply_overrides<typename override_axis<Bundle, First>::type, Rest...>::type;
};
}  // namespace detail

/// "precision=fp16 layout=nhwc fusion=epilogue execution=graph_capture tuning=measured"
template <PolicyBundle P>
std::string describe_policy() {
  std::string s;
  s += "precision=";
  s += P::precision::name;
  s += " layout=";
  s += P::layout::name;
  s += " fusion=";
  s += P::fusion::name;
  s += " execution=";
  s += P::execution::name;
  s += " tuning=";
  s += P::tuning::name;
  return s;
}

}  // namespace visopt
