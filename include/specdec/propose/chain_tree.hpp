// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief An adapter that makes any chain draft_proposer a tree_draft_proposer: its k drafts
///        become a chain-shaped tree (node j's parent is j - 1), its dense rows pass through.
///
/// With it the tree loop (decode::tree_decoder) runs every chain drafter, and since a
/// chain-shaped tree verifies exactly as the chain (same rows, same uniforms), the tree loop then
/// emits the chain loop's tokens: a baseline at equal verified rows per step.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/diagnostics.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/propose/concepts.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace propose {

/// @brief A chain drafter seen as a tree drafter (see the file comment).
/// @tparam P a draft_proposer; when it is a dense_draft_proposer the adapter is a
///   dense_tree_draft_proposer (draft row j - 1 for node j, i.e. an empty draft_index)
///
/// The adapter holds a reference to the chain drafter, which must outlive it.
template <class P>
class chain_tree_proposer {
  SPECDEC_CHECK(draft_proposer, P);

public:
  /// Dense exactly when the chain drafter is (dense_tree_draft_proposer).
  static constexpr bool writes_draft_rows = dense_draft_proposer<P>;

  /// @brief Wraps `chain`.
  /// @param[in] chain the chain drafter
  explicit chain_tree_proposer(P& chain)
      : chain_(&chain) {}

  /// @brief The chain drafter's longest draft. O(1).
  /// @return `max_draft_len()` of the chain drafter
  [[nodiscard]] int max_draft_nodes() const {
    return static_cast<int>(chain_->max_draft_len());
  }

  /// @brief Forwards begin() to the chain drafter (present only when it is stateful, so the
  ///        adapter is a stateful_proposer exactly when the chain drafter is). O(its begin).
  /// @param[in] id the request
  /// @param[in] prompt its committed tokens
  /// @return the chain drafter's status
  [[nodiscard]] status begin(std::uint64_t id,
                             row_view<const token_id> prompt) requires proposer_lifecycle<P> {
    return chain_->begin(id, prompt);
  }
  /// @brief Forwards observe(): the accepted root path of a chain-shaped tree is the accepted
  ///        prefix of the chain. O(its observe).
  /// @param[in] o the round's outcome
  /// @return the chain drafter's status
  [[nodiscard]] status observe(const round_outcome& o) requires proposer_lifecycle<P> {
    return chain_->observe(o);
  }
  /// @brief Forwards end(). O(its end).
  /// @param[in] id the request
  void end(std::uint64_t id) requires proposer_lifecycle<P> {
    chain_->end(id);
  }

  /// @brief Drafts min(r.max_nodes, r.max_depth) tokens with the chain drafter and writes them as
  ///        a chain-shaped tree rooted at `r.context.back()`.
  /// @param[in] r the context and limits
  /// @param[in,out] d receives the tree (and, when dense, the chain drafter's rows in `d.probs`,
  ///   `d.probs_kind`; `d.draft_index` is cleared)
  /// @return errc::invalid_argument for an empty context or negative limits; otherwise the chain
  ///   drafter's status (the tree is then the root only)
  /// @par Complexity
  /// The chain drafter's cost plus O(k).
  [[nodiscard]] status propose_tree(const tree_draft_request& r, tree_draft& d) {
    d.draft_index.clear();
    if (r.context.size <= 0 || r.max_nodes < 0 || r.max_depth < 0)
      return status{errc::invalid_argument};
    d.tree.reset(r.context[r.context.size - 1]);
    const std::int32_t k = std::min(r.max_nodes, r.max_depth);
    if (k <= 0)
      return status{};
    tokens_.resize(static_cast<std::size_t>(k));
    draft_block b{};
    b.tokens = {tokens_.data(), k};
    if constexpr (dense_draft_proposer<P>)
      b.probs = {
          d.probs.data, std::min<index_t>(d.probs.rows, k), d.probs.cols, d.probs.row_stride};
    const draft_request dr{r.request_id, r.context, k};
    if (const status s = chain_->propose(dr, b); !s.ok())
      return s;
    if constexpr (dense_draft_proposer<P>)
      d.probs_kind = b.probs_kind;
    const std::int32_t len = std::clamp(b.length, 0, k);
    for (std::int32_t j = 0; j < len; ++j)
      (void)d.tree.add(j, tokens_[static_cast<std::size_t>(j)]);
    return status{};
  }

private:
  P* chain_;
  std::vector<token_id> tokens_;
};

} // namespace propose

SPECDEC_NAMESPACE_END
