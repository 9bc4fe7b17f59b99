// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The target-model concepts of specdec, in one place: `target_model` (scores a chain),
/// `tree_target_model` (scores a token tree), `layered_model` (stops after its first layers: the
/// early-exit drafters), `feature_target_model` / `tree_feature_target_model` (also return the
/// hidden states of chosen layers), and the source of randomness `uniform_source`.
/// (The proposer concepts are in propose/concepts.hpp, the row executor in core/executor.hpp, the
/// KV caches in kv/concepts.hpp, verification policies in verify/policy.hpp.)
///
/// Each concept is structural (checked syntax); the semantic promises are in its comment. Use
/// `SPECDEC_CHECK(concept, T)` next to an adapter for one readable message per missing clause.

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>

#include <concepts>
#include <cstdint>
#include <span>

SPECDEC_NAMESPACE_BEGIN

/// @brief A source of uniforms in [0, 1): `u(position, purpose)` and `u(position, purpose, lane)`.
///
/// Checked: both calls on a `const U&` (with `index_t`, `draw_purpose` and `std::uint32_t`
/// arguments) return something convertible to float.
/// Semantics: the value depends only on the arguments (and the source's own key), never on call
/// order, so rules can draw lazily and host and device agree. `philox_uniforms` is the standard
/// model; tests pass scripted sources.
/// @tparam U the candidate type
template <class U>
concept uniform_source =
    requires(const U& u, index_t position, draw_purpose p, std::uint32_t lane) {
  { u(position, p) } -> std::convertible_to<float>;
  { u(position, p, lane) } -> std::convertible_to<float>;
};

/// @brief What a target model is asked to score: `tokens` appended after the committed prefix of a
/// request, in one forward pass (a chain: token j at position `start + j`).
struct score_request {
  std::uint64_t request_id = 0;    ///< the sequence
  row_view<const token_id> tokens; ///< the anchor (last committed token) followed by drafts
  index_t start = 0;               ///< absolute position of tokens[0]
};

/// @brief A target model: scores a chain of tokens and returns one logit row per token.
///
/// Required: `status score(const score_request&, matrix_view<float> logits)` writing
/// tokens.size rows of `vocab_size()` logits, and `index_t vocab_size() const`. Semantics: row j
/// is the distribution of the token after tokens[0..j]. Exactness of greedy speculation needs a
/// batch-invariant model: a row's logits must not depend on how many rows were scored with it.
/// @tparam M the candidate model type
template <class M>
concept target_model = requires(M& m, const M& cm, const score_request& r, matrix_view<float> out) {
  { m.score(r, out) } -> std::same_as<status>;
  { cm.vocab_size() } -> std::convertible_to<index_t>;
};

/// @brief A target model that also scores a token tree in one forward pass.
///
/// Checked, besides target_model: `status score_tree(index_t start, row_view<const token_id>
/// tokens, row_view<const std::int32_t> parents, matrix_view<float> out)`.
///
/// Semantics: `tokens` and `parents` describe N nodes in topological order (`parents[0] == -1`,
/// the root; `0 <= parents[j] < j` for j > 0). Node j sits at position `start + depth(j)` and
/// writes its keys and values at cache slot `start + j`; it attends to the committed positions
/// `[0, start)`, then to its ancestors and itself. Row j of `out` (N rows of `vocab_size()`
/// logits) is the distribution of the token after the committed prefix followed by node j's root
/// path, and equals what score() returns for that path as a chain (bitwise, for greedy
/// exactness, on a batch-invariant model). On success the cache length is `start + N`; the caller
/// then compacts the accepted path (kv::tree_kv_cache::keep_path or slot copies) and rolls back.
/// Requires `start <= cache length`.
/// @tparam M the candidate model type
template <class M>
concept tree_target_model = target_model<M> && requires(M& m,
                                                        index_t start,
                                                        row_view<const token_id> tokens,
                                                        row_view<const std::int32_t> parents,
                                                        matrix_view<float> out) {
  { m.score_tree(start, tokens, parents, out) } -> std::same_as<status>;
};

/// @brief A target model whose forward pass can stop after its first `layers` layers.
///
/// Required, besides target_model: `int num_layers() const`, and
/// `status score_layers(const score_request& r, int layers, matrix_view<float> out)`, which writes
/// one logit row per token of r (the first `layers` layers, then the final norm and classifier),
/// may write KV for those layers at positions r.start.. past the committed length without
/// committing them, and accepts a chain of such calls that each start where the previous ended.
/// @tparam M the candidate model type
template <class M>
concept layered_model = target_model<M> && requires(
    M& m, const M& cm, const score_request& r, int layers, matrix_view<float> out) {
  { cm.num_layers() } -> std::convertible_to<int>;
  { m.score_layers(r, layers, out) } -> std::same_as<status>;
};

/// @brief Which hidden states a feature-scoring call returns, and where.
///
/// `layers` lists layer indices in [0, num_layers()]: 0 is the token embedding, l the residual
/// stream after l layers (num_layers(): before the final norm). Row j of `out` receives, for
/// scored row j, the requested layers one after the other (`hidden_size()` floats each, in the
/// order of `layers`), so `out` needs the scored rows and at least layers.size * hidden_size()
/// columns. An empty `layers` requests nothing (and `out` is not touched).
struct feature_request {
  row_view<const std::int32_t> layers; ///< layer indices, each in [0, num_layers()]
  matrix_view<float> out;              ///< [rows, layers.size * hidden_size()]
};

/// @brief A target model that also returns, per scored row, the hidden states of caller-chosen
///        layers (what EAGLE-3, MTP and DFlash / DSpark drafters are fed with).
///
/// Checked, besides target_model: `int num_layers() const`, `index_t hidden_size() const` and
/// `status score_features(const score_request&, matrix_view<float> logits, const
/// feature_request&)`. Semantics: the logits are exactly score()'s (bitwise; asking for features
/// never changes them), and row j of the features belongs to the same row j. A request for no
/// layer costs nothing beyond score(). Bad layer indices or a too small `out` are errors
/// (errc::invalid_argument / errc::shape_mismatch) reported before anything is scored.
/// @tparam M the candidate model type
template <class M>
concept feature_target_model = target_model<M> && requires(M& m,
                                                           const M& cm,
                                                           const score_request& r,
                                                           matrix_view<float> logits,
                                                           const feature_request& f) {
  { cm.num_layers() } -> std::convertible_to<int>;
  { cm.hidden_size() } -> std::convertible_to<index_t>;
  { m.score_features(r, logits, f) } -> std::same_as<status>;
};

/// @brief A feature_target_model that also scores a token tree with features: `status
///        score_tree_features(index_t start, row_view<const token_id> tokens, row_view<const
///        std::int32_t> parents, matrix_view<float> logits, const feature_request&)`, with the
///        semantics of tree_target_model::score_tree for the logits and of score_features for
///        the features (row j: node j).
/// @tparam M the candidate model type
template <class M>
concept tree_feature_target_model =
    feature_target_model<M> && tree_target_model<M> && requires(M& m,
                                                                index_t start,
                                                                row_view<const token_id> tokens,
                                                                row_view<const std::int32_t> par,
                                                                matrix_view<float> logits,
                                                                const feature_request& f) {
  { m.score_tree_features(start, tokens, par, logits, f) } -> std::same_as<status>;
};

/// @brief A target model that scores many sequences in one call (continuous batching): a ragged
///        batch of chains, one per request, each after its own committed prefix.
///
/// Checked: `status score_batch(std::span<const score_request> requests, matrix_view<float>
/// logits)` and `index_t vocab_size() const`. Semantics: the requests name distinct sequences
/// (request_id) that the model's batch cache holds (kv::batch_kv_cache); request i's rows are
/// stacked after those of requests 0..i-1 (row `sum_{j<i} tokens_j + t` is the distribution after
/// request i's committed prefix followed by its tokens[0..t]). Request i requires `start <=` its
/// sequence's length; on success that length becomes `start + tokens.size`. Exactness needs a
/// batch-invariant model: a row's logits must not depend on the other requests of the call, their
/// order, or the number of threads (bitwise). A request with no tokens is allowed and changes
/// nothing. On error nothing is scored and no length changes.
/// @tparam M the candidate model type
template <class M>
concept batch_target_model =
    requires(M& m, const M& cm, std::span<const score_request> requests, matrix_view<float> out) {
  { m.score_batch(requests, out) } -> std::same_as<status>;
  { cm.vocab_size() } -> std::convertible_to<index_t>;
};

/// @brief A batch_target_model that also returns hidden states, as feature_target_model does for
///        one chain: `status score_batch_features(std::span<const score_request>,
///        matrix_view<float> logits, const feature_request&)`, `int num_layers() const` and
///        `index_t hidden_size() const`; feature row j belongs to logit row j (stacked the same
///        way), and the logits are bitwise score_batch()'s.
/// @tparam M the candidate model type
template <class M>
concept batch_feature_target_model =
    batch_target_model<M> && requires(M& m,
                                      const M& cm,
                                      std::span<const score_request> requests,
                                      matrix_view<float> logits,
                                      const feature_request& f) {
  { cm.num_layers() } -> std::convertible_to<int>;
  { cm.hidden_size() } -> std::convertible_to<index_t>;
  { m.score_batch_features(requests, logits, f) } -> std::same_as<status>;
};

SPECDEC_NAMESPACE_END
