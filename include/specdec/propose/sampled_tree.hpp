// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief Early-exit self-speculative *sampled* token trees (SpecInfer / SpecTr style): the
///        first L layers of the target draw several i.i.d. children per expanded node from their
///        draft row and continue every branch as a sampled chain, writing the dense draft rows
///        that multi-draft rejection sampling needs.
///
/// The shape is fixed before any token is drawn (sampled_tree_shape): level by level, every node
/// at depth d gets `branching[d]` children (1 past the end of the vector) until the node budget
/// or the depth limit is reached. `branching = {k}` is k sampled sequences merged at the root;
/// `{k, 2}` also forks every depth-1 node in two, and so on. A shape that does not depend on the
/// drawn tokens is what keeps verify::rejection_sampling exact: the children of a node are then
/// i.i.d. draws from its draft row whatever the rest of the tree holds. Duplicate siblings stay
/// separate nodes (the verification rule handles them).
///
/// Draws follow the chain drafter's discipline (propose::early_exit_proposer): the draft row is
/// processed with `params` (temperature, top-k, top-p, min-p: match the decode's), and the child
/// of a node at position p is drawn with the Philox uniform keyed by (seed ^ salt, request id) at
/// (p + 1, sample, lane), where the lane is the child's rank among the planned nodes of its
/// depth. With `branching = {1}` the tree is the chain drafter's draft token for token (same
/// rows, same uniforms); with more branches the first branch still is.
///
/// Rows are scored depth first with a chain-only `score_layers`: each expanded node costs one
/// single-token call at its own position, since every slot its root path needs was written by an
/// ancestor and only deeper slots were rewritten since. A step scores 1 + (internal nodes) rows.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/cpu/serial_executor.hpp>
#include <specdec/propose/concepts.hpp>
#include <specdec/propose/early_exit.hpp>
#include <specdec/sampling/distribution.hpp>
#include <specdec/sampling/params.hpp>
#include <specdec/tree/token_tree.hpp>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace propose {

/// @brief Settings of the sampled early-exit tree drafter.
struct sampled_tree_config {
  int layers = 1; ///< layers the drafter runs, 1 <= layers <= num_layers()
  int depth = 4;  ///< deepest draft node, >= 1
  int budget = 8; ///< draft nodes per step (root excluded), 1 .. tree::max_nodes - 1
  /// Children of every expanded node at depth d (the root: d = 0); 1 past the end. Each entry in
  /// [1, tree::max_siblings].
  std::vector<int> branching{2};
  sampling::sampling_params params{}; ///< how children are drawn from the rows (match the target)
  std::uint64_t seed = 0;             ///< the drafter's random stream (independent of verification)

  /// @brief Checks the settings that do not depend on the model.
  /// @return errc::invalid_argument for a depth below 1, a budget outside
  ///   [1, tree::max_nodes - 1] or a branching entry outside [1, tree::max_siblings]; the
  ///   params' error for invalid params; ok otherwise
  /// @par Complexity
  /// O(branching.size()).
  [[nodiscard]] status validate() const noexcept {
    if (depth < 1 || budget < 1 || budget > tree::max_nodes - 1)
      return status{errc::invalid_argument};
    for (int b : branching)
      if (b < 1 || b > tree::max_siblings)
        return status{errc::invalid_argument};
    if (params.validate() != errc::ok)
      return status{params.validate()};
    return status{};
  }
};

/// @brief The planned shape of a sampled tree: parents in breadth-first order, node 0 the root.
///
/// Level by level, each node at depth d (in index order) receives `branching[d]` children (1 when
/// d >= branching.size()) while fewer than `budget` draft nodes exist and d < depth.
/// @param[in] depth the deepest level (>= 0)
/// @param[in] budget the most draft nodes, root excluded (>= 0)
/// @param[in] branching children per node by depth (entries >= 1)
/// @param[out] parents receives the parent of every node ([0] = -1); at least the root
/// @par Complexity
/// O(budget).
inline void sampled_tree_shape(int depth,
                               int budget,
                               const std::vector<int>& branching,
                               std::vector<std::int32_t>& parents) {
  parents.assign(1, -1);
  std::size_t level_begin = 0;
  std::size_t level_end = 1;
  for (int d = 0; d < depth && level_begin < level_end; ++d) {
    const int b = static_cast<std::size_t>(d) < branching.size()
                      ? std::max(1, branching[static_cast<std::size_t>(d)])
                      : 1;
    for (std::size_t u = level_begin; u < level_end; ++u)
      for (int c = 0; c < b; ++c) {
        if (parents.size() > static_cast<std::size_t>(budget))
          return;
        parents.push_back(static_cast<std::int32_t>(u));
      }
    level_begin = level_end;
    level_end = parents.size();
  }
}

/// @brief Sampled multi-draft tree drafter over a layered_model (see the file comment).
///
/// Besides layered_model, the model must accept a score_layers call that starts anywhere up to
/// where the previous consecutive call ended (rewriting those draft slots), as llama2c::model
/// does. The drafter writes one logit row per expanded node into the caller's `probs` and points
/// every node at its parent's row through `draft_index`: verify with rejection_sampling (exact
/// at any temperature) or greedy. At temperature 0 every child is the row's argmax, so siblings
/// are duplicates: use branching {1} (the chain) there, or expect wasted nodes.
///
/// Contract: the model's cache holds exactly the committed prefix minus its last token (the
/// loop's invariant), so the root is scored at position n - 1 and the draft nodes from n on.
/// @tparam M a layered_model
template <layered_model M>
class sampled_tree_proposer {
public:
  /// The drafter writes dense draft rows (dense_tree_draft_proposer).
  static constexpr bool writes_draft_rows = true;

  /// @brief Binds the model (which must outlive the drafter) and the settings.
  /// @param[in] model the layered target model
  /// @param[in] config the settings
  sampled_tree_proposer(M& model, sampled_tree_config config)
      : model_(&model)
      , config_(std::move(config)) {}

  /// @brief The settings. O(1).
  /// @return the settings
  [[nodiscard]] const sampled_tree_config& config() const noexcept {
    return config_;
  }
  /// @brief Re-keys the drafter's random stream (per request or per run); see
  ///        early_exit_proposer::set_seed for why runs with different verifier seeds need
  ///        different drafter seeds. O(1).
  /// @param[in] seed the new stream seed
  void set_seed(std::uint64_t seed) noexcept {
    config_.seed = seed;
  }
  /// @brief config().budget. O(1).
  /// @return the most draft nodes per step
  [[nodiscard]] int max_draft_nodes() const noexcept {
    return config_.budget;
  }
  /// @brief Draft rows computed by the last propose_tree() (one per expanded node). O(1).
  /// @return the row count; the draft cost is about rows x layers / num_layers() target rows
  [[nodiscard]] index_t last_rows_scored() const noexcept {
    return rows_scored_;
  }
  /// @brief Draft rows computed since construction (all propose_tree() calls). O(1).
  /// @return the row count
  [[nodiscard]] std::int64_t total_rows_scored() const noexcept {
    return total_rows_;
  }

  /// @brief Drafts a sampled tree after r.context.
  /// @param[in] r the context and limits (depth min(r.max_depth, depth), nodes min(r.max_nodes,
  ///   budget))
  /// @param[in,out] d `d.tree` receives the tree (a lone root when a limit is 0); `d.probs`
  ///   (caller-owned, vocabulary-wide) receives one logit row per expanded node, in the order
  ///   they were scored; `d.draft_index` receives every node's row (the root's entry is 0);
  ///   `d.probs_kind` is set to logits
  /// @return errc::invalid_argument for an empty context, negative limits or layers outside
  ///   [1, num_layers()]; sampled_tree_config::validate()'s status; errc::shape_mismatch when
  ///   `d.probs` is not vocabulary-wide or has fewer rows than the shape's expanded nodes (at
  ///   most the node budget); the model's status when a score_layers call fails (the tree is
  ///   then the root only). A draft row without mass (NaN logits) drops the node's planned
  ///   subtree; nothing else changes the planned shape.
  /// @par Complexity
  /// One single-token score_layers call and one O(V) row pass per expanded node, plus one O(V)
  /// draw per draft node.
  [[nodiscard]] status propose_tree(const tree_draft_request& r, tree_draft& d) {
    d.draft_index.clear();
    rows_scored_ = 0;
    const index_t n = r.context.size;
    if (n <= 0 || r.max_nodes < 0 || r.max_depth < 0)
      return status{errc::invalid_argument};
    const token_id root = r.context[n - 1];
    d.tree.reset(root);
    if (config_.layers < 1 || config_.layers > model_->num_layers())
      return status{errc::invalid_argument};
    if (const status s = config_.validate(); !s.ok())
      return s;
    const int depth = std::min(config_.depth, static_cast<int>(r.max_depth));
    const int budget = std::min(config_.budget, static_cast<int>(r.max_nodes));
    if (depth <= 0 || budget <= 0)
      return status{};
    d.probs_kind = distribution_kind::logits;
    const index_t vocab = model_->vocab_size();
    if (d.probs.data == nullptr || d.probs.cols != vocab || d.probs.row_stride < vocab)
      return status{errc::shape_mismatch};

    // Plan: parents (BFS order), depths, lanes, child ranges (children are contiguous).
    sampled_tree_shape(depth, budget, config_.branching, plan_parent_);
    const std::size_t count = plan_parent_.size();
    plan_depth_.assign(count, 0);
    plan_lane_.assign(count, 0);
    child_begin_.assign(count, 0);
    child_count_.assign(count, 0);
    std::int32_t expanded = 0;
    for (std::size_t j = 1; j < count; ++j) {
      const auto p = static_cast<std::size_t>(plan_parent_[j]);
      plan_depth_[j] = plan_depth_[p] + 1;
      plan_lane_[j] = plan_depth_[j] == plan_depth_[j - 1] ? plan_lane_[j - 1] + 1 : 0;
      if (child_count_[p]++ == 0) {
        child_begin_[p] = static_cast<std::int32_t>(j);
        ++expanded;
      }
    }
    if (expanded > d.probs.rows)
      return status{errc::shape_mismatch};

    // Draw depth first: score a node, draw all its children from its row, descend.
    token_.assign(count, -1);
    row_of_.assign(count, 0);
    token_[0] = root;
    stack_.assign(1, 0);
    const rng_key key{config_.seed ^ stream_salt::early_exit, r.request_id};
    const cpu::serial_executor ex{};
    index_t rows = 0;
    status failed{};
    while (!stack_.empty()) {
      const auto u = static_cast<std::size_t>(stack_.back());
      stack_.pop_back();
      if (child_count_[u] == 0)
        continue;
      const index_t pos = n - 1 + plan_depth_[u];
      const matrix_view<float> row{d.probs.data + rows * d.probs.row_stride, 1, vocab, vocab};
      const score_request req{r.request_id, {&token_[u], 1}, pos};
      failed = model_->score_layers(req, config_.layers, row);
      if (!failed.ok())
        break;
      const index_t row_index = rows++;
      const sampling::dist_row<float> dr{row.data, vocab, distribution_kind::logits};
      const sampling::row_stats st = sampling::prepare_row(ex, dr, config_.params);
      if (!st.status.ok())
        continue;
      const auto first = static_cast<std::size_t>(child_begin_[u]);
      const auto last = first + static_cast<std::size_t>(child_count_[u]);
      for (std::size_t c = first; c < last; ++c) {
        const float x = uniform_at(
            key, pos + 1, draw_purpose::sample, static_cast<std::uint32_t>(plan_lane_[c]));
        const index_t next = sampling::sample_row(ex, dr, st, x);
        if (next < 0 || next >= vocab)
          continue;
        token_[c] = static_cast<token_id>(next);
        row_of_[c] = static_cast<std::int32_t>(row_index);
      }
      for (std::size_t c = last; c-- > first;)
        if (token_[c] >= 0)
          stack_.push_back(static_cast<std::int32_t>(c));
    }
    rows_scored_ = rows;
    total_rows_ += rows;
    if (!failed.ok())
      return failed;

    // Emit the drawn nodes in plan (breadth-first) order; a node without a token drops its
    // subtree.
    node_of_.assign(count, -1);
    node_of_[0] = 0;
    d.draft_index.push_back(0);
    for (std::size_t j = 1; j < count; ++j) {
      const std::int32_t parent = node_of_[static_cast<std::size_t>(plan_parent_[j])];
      if (parent < 0 || token_[j] < 0)
        continue;
      node_of_[j] = d.tree.add(parent, token_[j]);
      d.draft_index.push_back(row_of_[j]);
    }
    return status{};
  }

private:
  M* model_;
  sampled_tree_config config_;
  std::vector<std::int32_t> plan_parent_; // planned shape, breadth first
  std::vector<std::int32_t> plan_depth_;
  std::vector<std::int32_t> plan_lane_;   // rank among the planned nodes of its depth
  std::vector<std::int32_t> child_begin_; // first planned child
  std::vector<std::int32_t> child_count_; // planned children
  std::vector<token_id> token_;           // drawn token of each planned node (-1: none)
  std::vector<std::int32_t> row_of_;      // draft row each planned node was drawn from
  std::vector<std::int32_t> node_of_;     // tree node of each planned node (-1: dropped)
  std::vector<std::int32_t> stack_;
  index_t rows_scored_ = 0;
  std::int64_t total_rows_ = 0;
};

} // namespace propose

SPECDEC_NAMESPACE_END
