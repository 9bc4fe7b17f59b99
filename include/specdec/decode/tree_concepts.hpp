// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The plug-in concepts of tree speculative decoding: a target model that scores a token
/// tree in one pass (`tree_target_model`) and a proposer that drafts a token tree
/// (`tree_draft_proposer`, `dense_tree_draft_proposer`), the request and output types they
/// exchange with the loop, and their per-clause diagnostics.
///
/// Tree conventions are those of tree/token_tree.hpp: node 0 is the root, the last committed
/// token; parents precede children; node j sits at absolute position `base + depth(j)` where
/// `base` is the root's position.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/diagnostics.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/tree/token_tree.hpp>

#include <concepts>
#include <cstdint>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

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

/// @brief What a tree proposer is asked for: a token tree rooted at the last token of `context`.
struct tree_draft_request {
  std::uint64_t request_id = 0;     ///< the engine's id of the sequence
  row_view<const token_id> context; ///< committed tokens (prompt + generated), oldest first
  std::int32_t max_nodes = 0;       ///< most draft nodes, the root excluded (>= 0)
  std::int32_t max_depth = 0;       ///< deepest draft node (root: depth 0), >= 0
};

/// @brief Where a tree proposer writes its draft.
///
/// The proposer rebuilds `tree` (root = `context.back()`, then the draft nodes). A dense
/// proposer also writes draft rows into the caller-owned `probs`: node j >= 1 was drawn from row
/// `draft_index[j]`, or from row j - 1 when `draft_index` is empty (one row per node in node
/// order, which is what a chain-shaped tree needs). Siblings drawn i.i.d. from one row share it.
struct tree_draft {
  tree::token_tree tree;                 ///< the drafted tree (the proposer resets it)
  matrix_view<float> probs;              ///< caller-owned dense rows (rows == 0: none)
  std::vector<std::int32_t> draft_index; ///< empty, or the draft row of every node ([N])
  /// What `probs` rows hold (a dense proposer sets it; logits unless it says otherwise).
  distribution_kind probs_kind = distribution_kind::logits;
};

/// @brief A token-tree proposer: drafts a tree after a context.
///
/// Checked: `status propose_tree(const tree_draft_request&, tree_draft&)` and
/// `int max_draft_nodes() const` (the most draft nodes, root excluded, it proposes per step).
///
/// Semantics: on success `draft.tree` is a valid tree whose root holds `request.context.back()`,
/// with at most `request.max_nodes` draft nodes, none deeper than `request.max_depth`, and at
/// most tree::max_siblings children per node (stochastic verification rules try no more). The
/// tree may be only the root (no draft). A proposer without draft rows drafts deterministic
/// tokens (verify with greedy or one_hot_rejection; distinct siblings keep one-hot rejection
/// lossless).
/// @tparam P the candidate proposer type
template <class P>
concept tree_draft_proposer =
    requires(P& p, const P& cp, const tree_draft_request& r, tree_draft& d) {
  { p.propose_tree(r, d) } -> std::same_as<status>;
  { cp.max_draft_nodes() } -> std::convertible_to<int>;
};

/// @brief A tree proposer that also writes the dense draft row of every draft node (needed by
/// multi-draft rejection sampling with full q).
///
/// Declared by `static constexpr bool writes_draft_rows = true;`. The caller then passes `probs`
/// with at least `max_nodes` rows of the target's vocabulary size; the proposer sets
/// `probs_kind` and, unless it writes one row per node in node order, `draft_index`.
/// @tparam P the candidate proposer type
template <class P>
concept dense_tree_draft_proposer = tree_draft_proposer<P> && requires {
  requires static_cast<bool>(P::writes_draft_rows);
};

namespace diag {

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

/// @brief Checks `tree_draft_proposer` clause by clause.
/// @tparam P the type to check against tree_draft_proposer
/// @return true when satisfied (else a static_assert fires).
template <class P>
consteval bool check_tree_draft_proposer() {
  static_assert(
      requires(P & p, const tree_draft_request& r, tree_draft& d) {
        { p.propose_tree(r, d) } -> std::same_as<status>;
      },
      "tree_draft_proposer: P needs 'status propose_tree(const tree_draft_request&, "
      "tree_draft&)'");
  static_assert(
      requires(const P& p) {
        { p.max_draft_nodes() } -> std::convertible_to<int>;
      },
      "tree_draft_proposer: P needs 'int max_draft_nodes() const'");
  return true;
}

} // namespace diag

SPECDEC_NAMESPACE_END
