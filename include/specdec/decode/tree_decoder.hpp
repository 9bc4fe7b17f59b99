// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief The generic token-tree speculative decoding loop: a tree target model, its KV cache, a
///        tree proposer and a tree verification policy.
///
/// One step, with n committed tokens c_0..c_{n-1} and the cache holding positions [0, n - 1)
/// (the chain loop's invariant, see speculative_decoder.hpp):
///  1. draft a token tree whose root (node 0) is the anchor c_{n-1}, with as many draft nodes as
///     the draft-length policy chooses out of min(max_draft, max_draft_nodes(), capacity - n)
///     (sched::all_available_length by default: all of them), none deeper than the tokens still
///     to emit - 1;
///  2. score the N nodes in one `score_tree` call at start n - 1: node j at position
///     n - 1 + depth(j), cache slot n - 1 + j, target row j scoring node j's children;
///  3. verify with the policy (`cpu::verify_tree`, Philox keyed by (seed, request id), draws at
///     absolute positions: the depth-1 nodes sit at position n): a root path of a accepted
///     drafts and exactly one more token t;
///  4. compact the cache to the accepted path (slot n - 1 + path[d] moves to n - 1 + d, length
///     n + a), commit the path's tokens and t.
///
/// With a lone root a step is plain decoding; with a chain-shaped tree (`parents[j] = j - 1`) a
/// step is exactly the chain loop's step (same rows, same uniforms, same outcome), so both loops
/// emit the same tokens. Stop conditions (budget, end tokens, stop strings, full context),
/// configuration and results are the chain loop's decode_config / decode_result; the loop is
/// decode/loop.hpp's skeleton (shared with the chain decoder), so rounds are reported through
/// decode_config::on_step and stateful proposers observe every round (the committed path; a
/// feature_proposer over a tree_feature_target_model also gets the path's target features).

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/diagnostics.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/cpu/verify_tree.hpp>
#include <specdec/decode/loop.hpp>
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/decode/stats.hpp>
#include <specdec/kv/concepts.hpp>
#include <specdec/propose/concepts.hpp>
#include <specdec/sched/draft_length.hpp>
#include <specdec/tree/token_tree.hpp>
#include <specdec/verify/tree.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace decode {

namespace detail {

/// A cache that copies one slot to another (contiguous_cache::copy_position).
template <class C>
concept copies_positions = requires(C& c, index_t src, index_t dst) {
  { c.copy_position(src, dst) } -> std::same_as<status>;
};

/// Keeps slot `base + nodes[d]` at `base + d` and sets the length to `base + nodes.size()`:
/// keep_path when the cache has it, else slot copies in increasing d (nodes strictly increase,
/// so no source is overwritten before it is read) and a rollback.
template <class Cache>
status keep_tree_path(Cache& cache, index_t base, std::span<const std::int32_t> nodes) {
  if constexpr (kv::tree_kv_cache<Cache>) {
    return cache.keep_path(base, nodes);
  } else {
    for (std::size_t d = 1; d < nodes.size(); ++d)
      if (const status s = cache.copy_position(base + nodes[d], base + static_cast<index_t>(d));
          !s.ok())
        return s;
    return cache.rollback(base + static_cast<index_t>(nodes.size()));
  }
}

} // namespace detail

/// @brief The token-tree speculative decoding loop (see the file comment).
///
/// @tparam Target a tree_target_model (scores a token tree after the committed prefix)
/// @tparam Cache the target's kv::kv_cache, with `keep_path(base, nodes)` (kv::tree_kv_cache) or
///   `copy_position(src, dst)` (kv::contiguous_cache) to compact the accepted path
/// @tparam Proposer a tree_draft_proposer
/// @tparam Policy a verify::tree_verification_policy; one that reads draft rows
///   (rejection_sampling) needs a dense_tree_draft_proposer
/// @tparam Length a sched::draft_length_policy choosing the draft nodes of a round (bucket 0;
///   it records the verified depth and the accepted length)
///
/// The decoder holds references to the target, cache and proposer: they must outlive it. It is not
/// thread-safe; use one decoder per sequence.
template <class Target,
          class Cache,
          class Proposer,
          class Policy,
          class Length = sched::all_available_length>
class tree_decoder
    : public detail::loop_skeleton<tree_decoder<Target, Cache, Proposer, Policy, Length>,
                                   Target,
                                   Cache,
                                   Proposer> {
  SPECDEC_CHECK(tree_target_model, Target);
  SPECDEC_CHECK(tree_draft_proposer, Proposer);
  SPECDEC_CHECK(tree_verification_policy, Policy);
  SPECDEC_CHECK(kv_cache, Cache);
  static_assert(sched::draft_length_policy<Length>,
                "tree_decoder: Length needs 'int choose(int bucket, int available)' and 'void "
                "record(int bucket, int drafted, int accepted)' (sched::draft_length_policy)");
  static_assert(kv::tree_kv_cache<Cache> || detail::copies_positions<Cache>,
                "tree_decoder: Cache needs 'status keep_path(index_t base, std::span<const "
                "std::int32_t> nodes)' or 'status copy_position(index_t src, index_t dst)' to "
                "compact the accepted tree path");
  static_assert(!Policy::needs_draft_rows || dense_tree_draft_proposer<Proposer>,
                "tree_decoder: this verification policy reads draft rows (full q), but the "
                "proposer drafts one-hot tokens; use one_hot_rejection / greedy, or a "
                "dense_tree_draft_proposer");
  static_assert(!feature_proposer<Proposer> || tree_feature_target_model<Target>,
                "tree_decoder: the proposer is fed by target features (feature_proposer), but "
                "the target does not return them for a tree; it needs 'status "
                "score_tree_features(index_t, row_view<const token_id>, row_view<const "
                "std::int32_t>, matrix_view<float> logits, const feature_request&)'");

  using base = detail::loop_skeleton<tree_decoder, Target, Cache, Proposer>;
  friend base;

public:
  /// @brief Binds the components.
  /// @param[in] target the target model
  /// @param[in] cache its KV cache
  /// @param[in] proposer the tree drafter
  /// @param[in] policy the tree verification policy
  /// @param[in] length the draft-length policy (copied; reach it with length_policy())
  tree_decoder(
      Target& target, Cache& cache, Proposer& proposer, Policy policy = {}, Length length = {})
      : base(target, cache, proposer)
      , policy_(policy)
      , length_(std::move(length)) {}

  /// @brief The draft-length policy (to install costs or read its statistics). O(1).
  /// @return the policy the loop consults
  Length& length_policy() noexcept {
    return length_;
  }

  /// @brief Decodes after `prompt` (a fresh sequence: the cache is rolled back to 0 first).
  ///
  /// `cfg.max_draft` caps the draft nodes per step (root excluded): a step scores at most
  /// max_draft + 1 rows, as a chain step with max_draft drafts does; the length policy chooses
  /// the node budget within the cap.
  /// @param[in] prompt at least one token (e.g. BOS); every id in [0, vocab)
  /// @param[in] cfg budget, stop conditions, sampling and draft settings
  /// @param[out] out cleared, then filled with the tokens, the stop reason and the statistics
  ///   (`stats.drafted` counts draft nodes verified; tried / hits count per depth)
  /// @return ok when generation stopped normally (budget, end token, stop string, full context);
  ///         errc::invalid_argument for an empty prompt, bad config or stop strings without
  ///         token_text; errc::token_out_of_range for a bad prompt token; errc::overflow when the
  ///         prompt does not fit the cache; errc::malformed_tree when the proposer returns a
  ///         tree that breaks its request (wrong root token, too many nodes, too deep);
  ///         errc::shape_mismatch for a bad draft_index; otherwise the first failure of the
  ///         target, proposer, cache or policy (out.reason == error; out.tokens holds what was
  ///         emitted before it).
  /// @par Complexity
  /// One target call per step plus the proposer's and policy's costs; O(N + depth) bookkeeping
  /// per step for a tree of N nodes.
  [[nodiscard]] status
  generate(std::span<const token_id> prompt, const decode_config& cfg, decode_result& out) {
    return base::generate(prompt, cfg, out);
  }

  /// @brief The tree verified by the last step (root only when it drafted nothing). O(1).
  /// @return the last draft; valid until the next generate()
  [[nodiscard]] const tree::token_tree& last_tree() const noexcept {
    return draft_.tree;
  }

private:
  using clock = detail::decode_clock;

  // Checks that the proposer kept to its request (see tree_draft_proposer).
  status check_draft(token_id anchor, std::int32_t max_nodes, std::int32_t max_depth) const {
    const tree::token_tree& t = draft_.tree;
    if (t.size() < 1 || t.tokens()[0] != anchor || t.size() - 1 > max_nodes
        || t.max_depth() > max_depth)
      return status{errc::malformed_tree};
    if constexpr (Policy::needs_draft_rows) {
      const std::vector<std::int32_t>& di = draft_.draft_index;
      if (di.empty())
        return t.size() - 1 <= draft_.probs.rows ? status{} : status{errc::shape_mismatch};
      if (static_cast<std::int32_t>(di.size()) != t.size())
        return status{errc::shape_mismatch};
      for (std::int32_t j = 1; j < t.size(); ++j)
        if (di[static_cast<std::size_t>(j)] < 0
            || di[static_cast<std::size_t>(j)] >= draft_.probs.rows)
          return status{errc::shape_mismatch};
    }
    return status{};
  }

  // Buffers for trees of up to max_nodes_ draft nodes.
  status setup(const decode_config& cfg, index_t& rows) {
    const index_t vocab = this->target_->vocab_size();
    max_nodes_ =
        std::min<std::int32_t>({cfg.max_draft,
                                std::max(0, static_cast<int>(this->proposer_->max_draft_nodes())),
                                tree::max_nodes - 1});
    rows = max_nodes_ + 1;
    if constexpr (dense_tree_draft_proposer<Proposer>) {
      draft_rows_.resize(static_cast<std::size_t>(std::max(1, max_nodes_))
                         * static_cast<std::size_t>(vocab));
      draft_.probs = {draft_rows_.data(), max_nodes_, vocab, vocab};
    } else {
      draft_.probs = {};
    }
    feature_cols_ = detail::feature_columns(*this->target_, *this->proposer_);
    features_.resize(static_cast<std::size_t>(rows * feature_cols_));
    path_features_.resize(static_cast<std::size_t>(rows * feature_cols_));
    return status{};
  }

  // One round: draft a tree, score it in one call, verify, compact the cache to the path.
  status
  round(const decode_config& cfg, const round_state& st, decode_stats& stats, round_result& out) {
    const index_t vocab = this->target_->vocab_size();
    const index_t n = st.n;
    // Nodes occupy slots n - 1 .. n - 1 + nodes; deeper than left - 1 cannot all be emitted.
    const auto available = static_cast<int>(std::max<std::int64_t>(
        0, std::min<std::int64_t>(max_nodes_, static_cast<std::int64_t>(st.room))));
    const auto budget = static_cast<std::int32_t>(
        available > 0 ? std::clamp(static_cast<int>(length_.choose(0, available)), 0, available)
                      : 0);
    const auto depth_cap = static_cast<std::int32_t>(
        std::max<std::int64_t>(0, std::min<std::int64_t>(budget, st.left - 1)));

    // 1. Draft a tree rooted at the anchor.
    const auto t_draft = clock::now();
    const token_id anchor = st.context[n - 1];
    draft_.draft_index.clear();
    if (budget > 0 && depth_cap > 0) {
      const tree_draft_request r{cfg.request_id, st.context, budget, depth_cap};
      if (const status s = this->proposer_->propose_tree(r, draft_); !s.ok())
        return s;
      if (const status s = check_draft(anchor, budget, depth_cap); !s.ok())
        return s;
    } else {
      draft_.tree.reset(anchor);
    }
    const tree::token_tree& t = draft_.tree;
    const std::int32_t num_nodes = t.size();
    const auto t_verify = clock::now();
    stats.seconds_draft += detail::seconds(t_draft, t_verify);

    // 2. Score every node in one call, root at position n - 1.
    {
      const std::span<const token_id> tok = t.tokens();
      const std::span<const std::int32_t> par = t.parents();
      const matrix_view<float> view{this->logits_.data(), num_nodes, vocab, vocab};
      status s{};
      if constexpr (feature_proposer<Proposer>) {
        const feature_request f{this->proposer_->feature_layers(),
                                {features_.data(), num_nodes, feature_cols_, feature_cols_}};
        s = this->target_->score_tree_features(
            n - 1, {tok.data(), num_nodes}, {par.data(), num_nodes}, view, f);
      } else {
        s = this->target_->score_tree(
            n - 1, {tok.data(), num_nodes}, {par.data(), num_nodes}, view);
      }
      if (!s.ok())
        return s;
    }

    // 3. Verify.
    verify::tree_request<float, float> vreq{};
    vreq.target = this->logits_.data();
    vreq.target_stride = vocab;
    if constexpr (dense_tree_draft_proposer<Proposer>) {
      vreq.draft = draft_rows_.data();
      vreq.draft_stride = vocab;
      vreq.draft_kind = draft_.probs_kind;
      if (!draft_.draft_index.empty())
        vreq.draft_index = draft_.draft_index.data();
    }
    vreq.tokens = t.tokens().data();
    vreq.tree = t.view();
    vreq.vocab = vocab;
    vreq.target_kind = distribution_kind::logits;
    vreq.params = cfg.params;
    vreq.position = n;
    const verify::tree_outcome o =
        cpu::verify_tree(policy_, vreq, rng_key{cfg.seed, cfg.request_id});
    stats.seconds_verify += detail::seconds(t_verify, clock::now());
    if (!o.status.ok())
      return status{o.status.to_errc()};

    // 4. Keep the root and the accepted path in the cache.
    path_.resize(static_cast<std::size_t>(o.accepted) + 1);
    if (tree::write_path(t.view(), o.last_node, path_.data(), o.accepted + 1) != o.accepted + 1)
      return status{errc::malformed_tree};
    if (const status s =
            detail::keep_tree_path(*this->cache_, n - 1, std::span<const std::int32_t>(path_));
        !s.ok())
      return s;
    committed_.resize(static_cast<std::size_t>(o.accepted) + 1);
    for (int j = 1; j <= o.accepted; ++j)
      committed_[static_cast<std::size_t>(j) - 1] =
          t.tokens()[static_cast<std::size_t>(path_[static_cast<std::size_t>(j)])];
    committed_[static_cast<std::size_t>(o.accepted)] = o.next;
    if (num_nodes > 1)
      length_.record(0, t.max_depth(), o.accepted);
    out.drafted = num_nodes - 1;
    out.accepted = o.accepted;
    out.offered = num_nodes - 1;
    out.depth = t.max_depth();
    out.deeper = t.first_children()[static_cast<std::size_t>(o.last_node)] >= 0;
    out.committed = {committed_.data(), o.accepted + 1};
    if (feature_cols_ > 0) {
      for (std::size_t d = 0; d < path_.size(); ++d)
        std::copy_n(features_.data() + static_cast<index_t>(path_[d]) * feature_cols_,
                    feature_cols_,
                    path_features_.data() + static_cast<index_t>(d) * feature_cols_);
      out.features = {path_features_.data(), o.accepted + 1, feature_cols_, feature_cols_};
    }
    return status{};
  }

  Policy policy_;
  Length length_;
  std::int32_t max_nodes_ = 0;
  index_t feature_cols_ = 0;
  tree_draft draft_;
  std::vector<float> draft_rows_;
  std::vector<float> features_;
  std::vector<float> path_features_;
  std::vector<std::int32_t> path_;
  std::vector<token_id> committed_;
};

} // namespace decode

SPECDEC_NAMESPACE_END
