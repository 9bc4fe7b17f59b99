// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief Early-exit self-speculative tree drafting: the first L layers of the target draft an
///        EAGLE-2-style dynamic tree (top-k expansion by cumulative draft probability, then a
///        rerank under a node budget), reusing the target's KV cache as scratch.
///
/// The expansion is tree::build_dynamic_tree; this drafter supplies its callback. To expand a
/// node it needs the draft row after the node's root path, which a chain-only `score_layers`
/// gives by scoring the path as a chain: the root at position n - 1 once, then the path's draft
/// tokens at positions n, n + 1, ... Consecutive calls share the slots from position n on, so
/// each call rescores only the part of its path that differs from the previous call's (with a
/// batch-invariant model the shared slots already hold bitwise the keys and values the path
/// needs); expanding a node's siblings one after the other costs one row each.
///
/// Top-k children are deterministic (no sampling), so the drafts are one-hot: verify with
/// verify::one_hot_rejection (lossless for distinct deterministic siblings) or verify::greedy at
/// temperature 0. Dense multi-draft rejection sampling (verify::rejection_sampling on a tree)
/// needs siblings *sampled* from the draft rows (i.i.d. or without replacement), not the top-k.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/propose/concepts.hpp>
#include <specdec/propose/early_exit.hpp>
#include <specdec/tree/builder.hpp>
#include <specdec/tree/token_tree.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace propose {

/// @brief Settings of the early-exit tree drafter.
struct early_exit_tree_config {
  int layers = 1; ///< layers the drafter runs, 1 <= layers <= num_layers()
  int depth = 4;  ///< expansion rounds (deepest draft node), >= 1
  int top_k = 4;  ///< children per expanded node and nodes expanded per round, 1 .. 16
  int budget = 8; ///< draft nodes kept per step (root excluded), 1 .. tree::max_nodes - 1
};

/// @brief Self-speculative tree drafter over a layered_model (see the file comment).
///
/// Besides layered_model, the model must accept a score_layers call that starts anywhere up to
/// where the previous consecutive call ended (rewriting those draft slots), as
/// llama2c::model does. The draft rows are softmaxes of the early-exit logits at temperature 1;
/// the tree is a deterministic function of the context.
///
/// Contract: the model's cache holds exactly the committed prefix minus its last token (the
/// loop's invariant), so the root is scored at position n - 1 and the draft nodes from n on.
/// @tparam M a layered_model
template <layered_model M>
class early_exit_tree_proposer {
public:
  /// @brief Binds the model (which must outlive the drafter) and the settings.
  /// @param[in] model the layered target model
  /// @param[in] config the settings
  early_exit_tree_proposer(M& model, early_exit_tree_config config)
      : model_(&model)
      , config_(config) {}

  /// @brief The settings. O(1).
  /// @return the settings
  [[nodiscard]] const early_exit_tree_config& config() const noexcept {
    return config_;
  }
  /// @brief config().budget. O(1).
  /// @return the most draft nodes per step
  [[nodiscard]] int max_draft_nodes() const noexcept {
    return config_.budget;
  }
  /// @brief Draft rows computed by the last propose_tree() (score_layers rows, all calls). O(1).
  /// @return the row count; the draft cost is about rows x layers / num_layers() target rows
  [[nodiscard]] index_t last_rows_scored() const noexcept {
    return rows_scored_;
  }
  /// @brief Draft rows computed since construction (all propose_tree() calls). O(1).
  /// @return the row count
  [[nodiscard]] std::int64_t total_rows_scored() const noexcept {
    return total_rows_;
  }

  /// @brief Drafts a dynamic tree after r.context.
  /// @param[in] r the context and limits (depth min(r.max_depth, depth), nodes min(r.max_nodes,
  ///   budget))
  /// @param[in,out] d `d.tree` receives the tree (a lone root when a limit is 0);
  ///   `d.draft_index` is cleared; `d.probs` is not touched (one-hot drafts)
  /// @return errc::invalid_argument for an empty context, negative limits or layers outside
  ///   [1, num_layers()]; tree::dynamic_tree_config::validate()'s status for a bad depth, top_k or
  ///   budget; the model's status when a score_layers call fails. A draft row without finite
  ///   entries ends that node's expansion (no children).
  /// @par Complexity
  /// 1 + (depth - 1) x top_k score_layers calls of 1 .. depth rows each (rows shared with the
  /// previous call are not rescored), one O(V x top_k) pass per call, plus the builder's
  /// O(C log C) for C candidates.
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
    tree::dynamic_tree_config dc{config_.depth, config_.top_k, config_.budget};
    if (const status s = dc.validate(); !s.ok())
      return s;
    dc.depth = std::min(dc.depth, static_cast<int>(r.max_depth));
    dc.budget = std::min(dc.budget, static_cast<int>(r.max_nodes));
    if (dc.depth <= 0 || dc.budget <= 0)
      return status{};

    const index_t vocab = model_->vocab_size();
    rows_.resize(static_cast<std::size_t>(dc.depth) * static_cast<std::size_t>(vocab));
    scored_.clear();
    status failed{};
    auto expand = [&](const tree::expand_request& q, std::span<tree::draft_candidate> out) {
      if (!failed.ok())
        return std::int32_t{0};
      const float* row = nullptr;
      if (q.depth == 0) {
        const score_request req{r.request_id, {&root, 1}, n - 1};
        failed = model_->score_layers(req, config_.layers, {rows_.data(), 1, vocab, vocab});
        row = rows_.data();
        rows_scored_ += 1;
      } else {
        // The path's draft tokens q.path[1..depth] go to positions n .. n + depth - 1; the
        // prefix shared with the previous call is already in the cache.
        const auto len = static_cast<std::size_t>(q.depth);
        std::size_t common = 0;
        while (common < scored_.size() && common < len - 1 && scored_[common] == q.path[common + 1])
          ++common;
        const auto t = static_cast<index_t>(len - common);
        const score_request req{
            r.request_id, {q.path.data() + 1 + common, t}, n + static_cast<index_t>(common)};
        failed = model_->score_layers(req, config_.layers, {rows_.data(), t, vocab, vocab});
        scored_.assign(q.path.begin() + 1, q.path.end());
        row = rows_.data() + (t - 1) * vocab;
        rows_scored_ += t;
      }
      if (!failed.ok())
        return std::int32_t{0};
      return top_k(row, vocab, out);
    };
    tree::dynamic_tree dt;
    const status s = tree::build_dynamic_tree(root, dc, expand, dt);
    total_rows_ += rows_scored_;
    if (!failed.ok())
      return failed;
    if (!s.ok())
      return s;
    d.tree = std::move(dt.tree);
    return status{};
  }

private:
  // The out.size() most likely tokens of a logit row (ties: lower id), with their softmax
  // probabilities; 0 when the row has no finite entry.
  static std::int32_t top_k(const float* row, index_t vocab, std::span<tree::draft_candidate> out) {
    const auto k = static_cast<std::int32_t>(out.size());
    std::int32_t count = 0;
    float mx = -std::numeric_limits<float>::infinity();
    for (index_t v = 0; v < vocab; ++v) {
      const float x = row[v];
      if (!std::isfinite(x))
        continue;
      mx = std::max(mx, x);
      // Insert v into the sorted list (descending logit, ascending id on ties).
      if (count == k && !(x > row[out[static_cast<std::size_t>(k - 1)].token]))
        continue;
      std::int32_t i = count < k ? count++ : k - 1;
      for (; i > 0 && x > row[out[static_cast<std::size_t>(i - 1)].token]; --i)
        out[static_cast<std::size_t>(i)] = out[static_cast<std::size_t>(i - 1)];
      out[static_cast<std::size_t>(i)] = {static_cast<token_id>(v), 0.0f};
    }
    if (count == 0)
      return 0;
    double sum = 0.0;
    for (index_t v = 0; v < vocab; ++v)
      if (std::isfinite(row[v]))
        sum += std::exp(static_cast<double>(row[v]) - static_cast<double>(mx));
    for (std::int32_t i = 0; i < count; ++i) {
      tree::draft_candidate& c = out[static_cast<std::size_t>(i)];
      const double p = std::exp(static_cast<double>(row[c.token]) - static_cast<double>(mx)) / sum;
      c.probability = static_cast<float>(std::min(1.0, p));
    }
    return count;
  }

  M* model_;
  early_exit_tree_config config_;
  std::vector<float> rows_;      // score_layers output, [depth, vocab]
  std::vector<token_id> scored_; // draft tokens whose slots n.. hold the previous call's path
  index_t rows_scored_ = 0;
  std::int64_t total_rows_ = 0;
};

} // namespace propose

SPECDEC_NAMESPACE_END
