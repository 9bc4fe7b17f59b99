// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief The n-gram (prompt-lookup) tree drafter: several earlier continuations of the context's
///        suffix, merged into one token trie rooted at the last token.
///
/// A chain n-gram drafter bets on one earlier occurrence of the suffix; when the text repeated
/// itself in several ways (a name followed by different verbs, a loop body with two branches) a
/// tree verifies several bets in one target call. No model runs and no probabilities are drafted:
/// the tree is a deterministic function of the context, so verify it with verify::greedy or
/// verify::one_hot_rejection (lossless: siblings in a trie are distinct).

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/propose/concepts.hpp>
#include <specdec/tree/token_tree.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace propose {

/// @brief Settings of the n-gram tree drafter.
struct ngram_tree_config {
  std::int32_t min_ngram = 1;    ///< shortest suffix looked up, >= 1
  std::int32_t max_ngram = 16;   ///< longest suffix match measured, >= min_ngram
  std::int32_t max_depth = 8;    ///< longest continuation copied (tree depth), >= 0
  std::int32_t max_nodes = 16;   ///< draft nodes per step (root excluded), >= 0
  std::int32_t max_matches = 8;  ///< continuations merged per step; 0: until the budget is full
  std::int32_t max_children = 4; ///< children per node, 1 .. tree::max_siblings
  index_t window = 0; ///< search only matches ending in the last `window` tokens; 0: everywhere

  /// @brief Checks the settings.
  /// @return errc::invalid_value when a bound above is broken; ok otherwise
  /// @par Complexity
  /// O(1).
  [[nodiscard]] constexpr status validate() const noexcept {
    if (min_ngram < 1 || max_ngram < min_ngram || max_depth < 0 || max_nodes < 0 || max_matches < 0
        || max_children < 1 || max_children > tree::max_siblings || window < 0)
      return status{errc::invalid_value};
    return status{};
  }
};

/// @brief Prompt-lookup tree drafter (see the file comment).
///
/// propose_tree() scans the context backwards once, measuring at every earlier position e how
/// many tokens ending at e agree with the context's suffix (capped at max_ngram). Positions whose
/// match is at least min_ngram long are taken longest match first (longer matches are more
/// reliable), most recent first among equal lengths. Each contributes its continuation, up to
/// max_depth tokens, inserted into a trie rooted at the last token: a
/// continuation follows existing nodes while their tokens agree and adds nodes where it departs,
/// until the node budget or the per-node branching is exhausted. Continuations that add no node
/// (an exact repeat of an earlier one) do not count towards max_matches. Sibling order is
/// insertion order, so the first child is the longest, most recent match's token.
class ngram_tree_proposer {
public:
  /// @brief A drafter with the given settings (checked by every propose_tree()).
  /// @param[in] config the settings
  explicit ngram_tree_proposer(ngram_tree_config config = {}) noexcept
      : config_(config) {}

  /// @brief The settings. O(1).
  /// @return the configuration given at construction
  [[nodiscard]] const ngram_tree_config& config() const noexcept {
    return config_;
  }

  /// @brief The most draft nodes one step proposes. O(1).
  /// @return config().max_nodes
  [[nodiscard]] int max_draft_nodes() const noexcept {
    return config_.max_nodes;
  }

  /// @brief Drafts the trie of earlier continuations of the context's suffix.
  /// @param[in] r the context (tokens >= 0) and the node and depth limits
  /// @param[in,out] d `d.tree` receives the trie (root `r.context.back()`, at most
  ///   min(r.max_nodes, max_nodes) draft nodes, depth at most min(r.max_depth, max_depth));
  ///   `d.draft_index` is cleared; `d.probs` is not touched (one-hot drafts)
  /// @return errc::invalid_value for invalid settings, an empty context, negative limits or a
  ///   negative context token (the tree is then the root only, or empty for an empty context);
  ///   ok otherwise (a lone root when nothing matched)
  /// @par Complexity
  /// O(W + sum of match lengths) for the W searched positions (at most W x max_ngram), plus
  /// O(depth x max_children) per merged continuation.
  [[nodiscard]] status propose_tree(const tree_draft_request& r, tree_draft& d) {
    d.draft_index.clear();
    matches_ = 0;
    longest_ = 0;
    if (const status s = config_.validate(); !s.ok())
      return s;
    const index_t n = r.context.size;
    if (n <= 0 || r.max_nodes < 0 || r.max_depth < 0)
      return status{errc::invalid_value};
    const row_view<const token_id> c = r.context;
    d.tree.reset(c[n - 1]);
    for (index_t i = 0; i < n; ++i)
      if (c[i] < 0)
        return status{errc::invalid_value};
    const std::int32_t budget = std::min(r.max_nodes, config_.max_nodes);
    const std::int32_t depth = std::min(r.max_depth, config_.max_depth);
    if (budget <= 0 || depth <= 0 || n < 2)
      return status{};
    children_.assign(1, 0);
    // One backward scan: the length of the suffix match ending at every earlier e (capped at
    // max_ngram), bucketed by length; within a bucket the most recent end comes first.
    const auto max_len = static_cast<std::size_t>(config_.max_ngram);
    if (by_length_.size() < max_len + 1)
      by_length_.resize(max_len + 1);
    for (std::size_t l = 0; l <= max_len; ++l)
      by_length_[l].clear();
    const index_t lowest_end =
        config_.window > 0 ? std::max<index_t>(0, n - 1 - config_.window) : 0;
    for (index_t e = n - 2; e >= lowest_end; --e) {
      const index_t cap = std::min<index_t>(config_.max_ngram, e + 1);
      index_t len = 0;
      while (len < cap && c[e - len] == c[n - 1 - len])
        ++len;
      if (len >= config_.min_ngram)
        by_length_[static_cast<std::size_t>(len)].push_back(e);
    }
    // Longest matches first, then the most recent; each continuation is merged into the trie.
    for (std::size_t l = max_len; l >= static_cast<std::size_t>(config_.min_ngram); --l) {
      for (const index_t e : by_length_[l]) {
        if (merge(c, e + 1, std::min<index_t>(n, e + 1 + depth), budget, d.tree)) {
          ++matches_;
          longest_ = std::max<std::int32_t>(longest_, static_cast<std::int32_t>(l));
        }
        if (d.tree.size() - 1 >= budget
            || (config_.max_matches > 0 && matches_ >= config_.max_matches))
          return status{};
      }
    }
    return status{};
  }

  /// @brief Continuations that added nodes to the last tree. O(1).
  /// @return 0 when the last propose_tree() found no usable match
  [[nodiscard]] std::int32_t last_matches() const noexcept {
    return matches_;
  }

  /// @brief Length of the longest suffix whose continuation added nodes to the last tree. O(1).
  /// @return 0 when the last propose_tree() found no usable match
  [[nodiscard]] std::int32_t last_match_length() const noexcept {
    return longest_;
  }

private:
  // Inserts c[from, to) below the root; returns whether a node was added.
  bool merge(row_view<const token_id> c,
             index_t from,
             index_t to,
             std::int32_t budget,
             tree::token_tree& t) {
    bool added = false;
    std::int32_t node = 0;
    for (index_t i = from; i < to; ++i) {
      std::int32_t child = t.find_child(node, c[i]);
      if (child < 0) {
        if (t.size() - 1 >= budget
            || children_[static_cast<std::size_t>(node)] >= config_.max_children)
          break;
        child = t.add(node, c[i]);
        if (child < 0)
          break;
        ++children_[static_cast<std::size_t>(node)];
        children_.push_back(0);
        added = true;
      }
      node = child;
    }
    return added;
  }

  ngram_tree_config config_;
  std::vector<std::int32_t> children_;          // children per node of the tree being built
  std::vector<std::vector<index_t>> by_length_; // match ends by match length, most recent first
  std::int32_t matches_ = 0;
  std::int32_t longest_ = 0;
};

static_assert(tree_draft_proposer<ngram_tree_proposer>);

} // namespace propose

SPECDEC_NAMESPACE_END
