#pragma once
// What the nn:: blocks call on an executor: the handles for prepared parameters, the preparation done
// once per layer inside compile(), and the operations of every forward. Each backend's executor and the
// summary's shape executor provide all of it (backend/contract.hpp adds what the Engine needs).

#include <concepts>
#include <cstdint>

#include "../core/tensor.hpp"
#include "epilogue.hpp"
#include "params.hpp"

namespace visopt::nn {

// ---- the handles an executor hands the blocks for prepared parameters ----
template <class E> concept has_handles = requires {
  typename E::Conv;
  typename E::BatchNorm;
  typename E::Linear;
  typename E::LayerNorm;
  typename E::PatchEmbed;
};

// ---- preparation, once per layer inside compile() ----
template <class E> concept prepares_conv = requires(E& e, const Conv2dParams& p, ConvEpilogue ep) {
  { e.prepare_conv(p, ep) } -> std::same_as<typename E::Conv>;
};
template <class E> concept prepares_batch_norm = requires(E& e, const BatchNormParams& p) {
  { e.prepare_batch_norm(p) } -> std::same_as<typename E::BatchNorm>;
};
template <class E> concept prepares_linear = requires(E& e, const LinearParams& p, LinearEpilogue ep) {
  { e.prepare_linear(p, ep) } -> std::same_as<typename E::Linear>;
};
template <class E> concept prepares_layer_norm = requires(E& e, const LayerNormParams& p) {
  { e.prepare_layer_norm(p) } -> std::same_as<typename E::LayerNorm>;
};
template <class E> concept prepares_patch_embed = requires(E& e, const PatchEmbedParams& p) {
  { e.prepare_patch_embed(p) } -> std::same_as<typename E::PatchEmbed>;
};
template <class E> concept prepares_attention = requires(E& e, int heads) { e.prepare_attention(heads); };

// ---- operations, every forward ----
template <class E> concept runs_conv2d = requires(E& e, const typename E::Conv& c, const Tensor& x) {
  { e.conv2d(c, x, &x) } -> std::same_as<Tensor>;
};
template <class E> concept runs_batch_norm = requires(E& e, const typename E::BatchNorm& b, const Tensor& x) {
  { e.batch_norm(b, x) } -> std::same_as<Tensor>;
};
template <class E> concept runs_activation = requires(E& e, const Tensor& x, Activation a) {
  { e.activation(x, a) } -> std::same_as<Tensor>;
};
template <class E> concept runs_add = requires(E& e, const Tensor& x) {
  { e.add(x, x) } -> std::same_as<Tensor>;
};
template <class E> concept runs_max_pool2d = requires(E& e, const Tensor& x, int k) {
  { e.max_pool2d(x, k, k, k) } -> std::same_as<Tensor>;
};
template <class E> concept runs_global_avg_pool = requires(E& e, const Tensor& x) {
  { e.global_avg_pool(x) } -> std::same_as<Tensor>;
};
template <class E> concept runs_linear = requires(E& e, const typename E::Linear& l, const Tensor& x) {
  { e.linear(l, x, &x) } -> std::same_as<Tensor>;
};
template <class E> concept runs_layer_norm = requires(E& e, const typename E::LayerNorm& n, const Tensor& x) {
  { e.layer_norm(n, x) } -> std::same_as<Tensor>;
};
template <class E> concept runs_self_attention = requires(E& e, const typename E::Linear& qkv, const Tensor& x, int heads) {
  { e.self_attention(qkv, x, heads) } -> std::same_as<Tensor>;
};
template <class E> concept runs_patch_embed = requires(E& e, const typename E::PatchEmbed& p, const Tensor& x) {
  { e.patch_embed(p, x) } -> std::same_as<Tensor>;
};
template <class E> concept runs_select_token = requires(E& e, const Tensor& x, std::int64_t index) {
  { e.select_token(x, index) } -> std::same_as<Tensor>;
};

/// What the  blocks call: satisfied by every backend's executor and by the summary's shape executor.
template <class E> concept Operations =
    has_handles<E> && prepares_conv<E> && prepares_batch_norm<E> && prepares_linear<E> && prepares_layer_norm<E> &&
    prepares_patch_embed<E> && prepares_attention<E> && runs_conv2d<E> && runs_batch_norm<E> && runs_activation<E> &&
    runs_add<E> && runs_max_pool2d<E> && runs_global_avg_pool<E> && runs_linear<E> && runs_layer_norm<E> &&
    runs_self_attention<E> && runs_patch_embed<E> && runs_select_token<E>;

/// Names the first missing or misspelt operation of E in a static_assert (a concept failure alone
/// buries it in template notes). Returns the concept, so that it can sit in a static_assert itself.
template <class E>
consteval bool check_operations() {
  static_assert(has_handles<E>, "visopt backend contract: the executor must name its handle types Conv, BatchNorm, Linear, LayerNorm, PatchEmbed");
  static_assert(prepares_conv<E>, "visopt backend contract: missing `Conv prepare_conv(const Conv2dParams&, ConvEpilogue)`");
  static_assert(prepares_batch_norm<E>, "visopt backend contract: missing `BatchNorm prepare_batch_norm(const BatchNormParams&)`");
  static_assert(prepares_linear<E>, "visopt backend contract: missing `Linear prepare_linear(const LinearParams&, LinearEpilogue)`");
  static_assert(prepares_layer_norm<E>, "visopt backend contract: missing `LayerNorm prepare_layer_norm(const LayerNormParams&)`");
  static_assert(prepares_patch_embed<E>, "visopt backend contract: missing `PatchEmbed prepare_patch_embed(const PatchEmbedParams&)`");
  static_assert(prepares_attention<E>, "visopt backend contract: missing `void prepare_attention(int heads)`");
  static_assert(runs_conv2d<E>, "visopt backend contract: missing `Tensor conv2d(const Conv&, const Tensor& x, const Tensor* residual)`");
  static_assert(runs_batch_norm<E>, "visopt backend contract: missing `Tensor batch_norm(const BatchNorm&, const Tensor&)`");
  static_assert(runs_activation<E>, "visopt backend contract: missing `Tensor activation(const Tensor&, Activation)`");
  static_assert(runs_add<E>, "visopt backend contract: missing `Tensor add(const Tensor&, const Tensor&)`");
  static_assert(runs_max_pool2d<E>, "visopt backend contract: missing `Tensor max_pool2d(const Tensor&, int kernel, int stride, int padding)`");
  static_assert(runs_global_avg_pool<E>, "visopt backend contract: missing `Tensor global_avg_pool(const Tensor&)`");
  static_assert(runs_linear<E>, "visopt backend contract: missing `Tensor linear(const Linear&, const Tensor& x, const Tensor* residual)`");
  static_assert(runs_layer_norm<E>, "visopt backend contract: missing `Tensor layer_norm(const LayerNorm&, const Tensor&)`");
  static_assert(runs_self_attention<E>, "visopt backend contract: missing `Tensor self_attention(const Linear& qkv, const Tensor& x, int heads)`");
  static_assert(runs_patch_embed<E>, "visopt backend contract: missing `Tensor patch_embed(const PatchEmbed&, const Tensor& images)`");
  static_assert(runs_select_token<E>, "visopt backend contract: missing `Tensor select_token(const Tensor& tokens, std::int64_t index)`");
  return Operations<E>;
}

}  // namespace visopt::nn
