// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Per-clause diagnostics for the core concepts and the SPECDEC_CHECK macro.
///
/// `SPECDEC_CHECK(target_model, my_model);` fails with one message per missing member, naming
/// the concept, the member and its expected signature (nvcc prints little for an unmet
/// constraint; static_assert messages print under every compiler).

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/executor.hpp>

SPECDEC_NAMESPACE_BEGIN

/// @brief Per-clause concept checks, one static_assert message per missing member (used by
/// SPECDEC_CHECK).
namespace diag {

/// @brief Checks `uniform_source` clause by clause.
/// @tparam U the type to check against uniform_source
/// @return true when satisfied (else a static_assert fires).
template <class U>
consteval bool check_uniform_source() {
  static_assert(
      requires(const U& u, index_t pos, draw_purpose p) {
        { u(pos, p) } -> std::convertible_to<float>;
      },
      "uniform_source: U needs 'float operator()(index_t position, draw_purpose purpose) const'");
  static_assert(
      requires(const U& u, index_t pos, draw_purpose p, std::uint32_t lane) {
        { u(pos, p, lane) } -> std::convertible_to<float>;
      },
      "uniform_source: U needs 'float operator()(index_t, draw_purpose, std::uint32_t lane) "
      "const'");
  return true;
}

/// @brief Checks `target_model` clause by clause.
/// @tparam M the type to check against target_model
/// @return true when satisfied (else a static_assert fires).
template <class M>
consteval bool check_target_model() {
  static_assert(
      requires(M & m, const score_request& r, matrix_view<float> out) {
        { m.score(r, out) } -> std::same_as<status>;
      },
      "target_model: M needs 'status score(const score_request&, matrix_view<float> logits)'");
  static_assert(
      requires(const M& m) {
        { m.vocab_size() } -> std::convertible_to<index_t>;
      },
      "target_model: M needs 'index_t vocab_size() const'");
  return true;
}

/// @brief Checks `tree_target_model` clause by clause (the target_model clauses first).
/// @tparam M the type to check against tree_target_model
/// @return true when satisfied (else a static_assert fires).
template <class M>
consteval bool check_tree_target_model() {
  static_assert(check_target_model<M>(), "tree_target_model: M must be a target_model");
  static_assert(
      requires(M & m,
               index_t start,
               row_view<const token_id> tokens,
               row_view<const std::int32_t> parents,
               matrix_view<float> out) {
        { m.score_tree(start, tokens, parents, out) } -> std::same_as<status>;
      },
      "tree_target_model: M needs 'status score_tree(index_t start, row_view<const token_id> "
      "tokens, row_view<const std::int32_t> parents, matrix_view<float> logits)'");
  return true;
}

/// @brief Checks `layered_model` clause by clause (the target_model clauses first).
/// @tparam M the type to check against layered_model
/// @return true when satisfied (else a static_assert fires).
template <class M>
consteval bool check_layered_model() {
  static_assert(check_target_model<M>(), "layered_model: M must be a target_model");
  static_assert(
      requires(const M& m) {
        { m.num_layers() } -> std::convertible_to<int>;
      },
      "layered_model: M needs 'int num_layers() const'");
  static_assert(
      requires(M & m, const score_request& r, int layers, matrix_view<float> out) {
        { m.score_layers(r, layers, out) } -> std::same_as<status>;
      },
      "layered_model: M needs 'status score_layers(const score_request&, int layers, "
      "matrix_view<float> logits)'");
  return true;
}

/// @brief Checks `feature_target_model` clause by clause (the target_model clauses first).
/// @tparam M the type to check against feature_target_model
/// @return true when satisfied (else a static_assert fires).
template <class M>
consteval bool check_feature_target_model() {
  static_assert(check_target_model<M>(), "feature_target_model: M must be a target_model");
  static_assert(
      requires(const M& m) {
        { m.num_layers() } -> std::convertible_to<int>;
      },
      "feature_target_model: M needs 'int num_layers() const'");
  static_assert(
      requires(const M& m) {
        { m.hidden_size() } -> std::convertible_to<index_t>;
      },
      "feature_target_model: M needs 'index_t hidden_size() const'");
  static_assert(
      requires(M & m, const score_request& r, matrix_view<float> logits, const feature_request& f) {
        { m.score_features(r, logits, f) } -> std::same_as<status>;
      },
      "feature_target_model: M needs 'status score_features(const score_request&, "
      "matrix_view<float> logits, const feature_request&)'");
  return true;
}

/// @brief Checks `tree_feature_target_model` clause by clause.
/// @tparam M the type to check against tree_feature_target_model
/// @return true when satisfied (else a static_assert fires).
template <class M>
consteval bool check_tree_feature_target_model() {
  static_assert(check_feature_target_model<M>(),
                "tree_feature_target_model: M must be a feature_target_model");
  static_assert(check_tree_target_model<M>(),
                "tree_feature_target_model: M must be a tree_target_model");
  static_assert(
      requires(M & m,
               index_t start,
               row_view<const token_id> tokens,
               row_view<const std::int32_t> parents,
               matrix_view<float> logits,
               const feature_request& f) {
        { m.score_tree_features(start, tokens, parents, logits, f) } -> std::same_as<status>;
      },
      "tree_feature_target_model: M needs 'status score_tree_features(index_t start, "
      "row_view<const token_id>, row_view<const std::int32_t> parents, matrix_view<float> "
      "logits, const feature_request&)'");
  return true;
}

/// @brief Checks `row_executor` clause by clause.
/// @tparam E the type to check against row_executor
/// @return true when satisfied (else a static_assert fires).
template <class E>
consteval bool check_row_executor() {
  static_assert(
      requires(const E& e, index_t n, float x, weight_mode m) {
        { e.scan_row(n, detail::index_fn_archetype{}, m, x) } -> std::same_as<row_scan_result>;
      },
      "row_executor: E needs 'row_scan_result scan_row(index_t, Raw, weight_mode, float) const'");
  static_assert(
      requires(const E& e, index_t n) {
        { e.sum(n, detail::index_fn_archetype{}) } -> std::convertible_to<float>;
      },
      "row_executor: E needs 'float sum(index_t, F) const'");
  static_assert(
      requires(const E& e, index_t n, float x) {
        {
          e.sample_inverse_cdf(n, detail::index_fn_archetype{}, x)
          } -> std::convertible_to<index_t>;
      },
      "row_executor: E needs 'index_t sample_inverse_cdf(index_t, F, float target) const'");
  static_assert(
      requires(const E& e, index_t n, float x) {
        {
          e.threshold_probe(n, detail::index_fn_archetype{}, detail::value_fn_archetype{}, x, x)
          } -> std::same_as<threshold_probe_result>;
      },
      "row_executor: E needs 'threshold_probe_result threshold_probe(index_t, Raw, G, float, "
      "float) const'");
  static_assert(
      requires(const E& e, index_t n, float x, std::uint32_t k, int s) {
        e.radix_histogram(n,
                          detail::index_fn_archetype{},
                          detail::value_fn_archetype{},
                          x,
                          k,
                          s,
                          detail::histogram_fn_archetype{});
      },
      "row_executor: E needs 'auto radix_histogram(index_t, Raw, G, float floor, std::uint32_t "
      "prefix, int shift, Visit visit) const' returning visit(bins)");
  return true;
}

} // namespace diag

SPECDEC_NAMESPACE_END

/// @brief Asserts that `T` models the specdec concept `CONCEPT` (e.g. target_model), with one
/// readable message per missing clause.
///
/// Expands to `static_assert(specdec::diag::check_CONCEPT<T>())`, so it works for every concept
/// with a `diag::check_` function: uniform_source, target_model, tree_target_model, layered_model,
/// feature_target_model, tree_feature_target_model, row_executor (here); draft_proposer,
/// tree_draft_proposer, stateful_proposer, feature_proposer (propose/concepts.hpp); kv_cache
/// (kv/concepts.hpp); chain / tree verification policies (verify/).
/// @param[in] CONCEPT the unqualified name of the concept
/// @param[in] ... the type `T` (variadic, so that a type with commas needs no parentheses)
#define SPECDEC_CHECK(CONCEPT, ...) static_assert(::specdec::diag::check_##CONCEPT<__VA_ARGS__>())
