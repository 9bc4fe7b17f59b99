// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief The generic token-tree speculative decoding loop: a tree target model, its KV cache, a
///        tree proposer and a tree verification policy.
///
/// One step, with n committed tokens c_0..c_{n-1} and the cache holding positions [0, n - 1)
/// (the chain loop's invariant, see speculative_decoder.hpp):
///  1. draft a token tree whose root (node 0) is the anchor c_{n-1}, with at most
///     min(max_draft, capacity - n) draft nodes, none deeper than the tokens still to emit - 1;
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
/// configuration and results are the chain loop's decode_config / decode_result.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/diagnostics.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/cpu/verify_tree.hpp>
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/decode/stats.hpp>
#include <specdec/decode/stop.hpp>
#include <specdec/decode/tree_concepts.hpp>
#include <specdec/kv/concepts.hpp>
#include <specdec/tree/token_tree.hpp>
#include <specdec/verify/tree.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
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
///
/// The decoder holds references to the target, cache and proposer: they must outlive it. It is not
/// thread-safe; use one decoder per sequence.
template <class Target, class Cache, class Proposer, class Policy>
class tree_decoder {
  SPECDEC_CHECK(tree_target_model, Target);
  SPECDEC_CHECK(tree_draft_proposer, Proposer);
  SPECDEC_CHECK(tree_verification_policy, Policy);
  SPECDEC_CHECK(kv_cache, Cache);
  static_assert(kv::tree_kv_cache<Cache> || detail::copies_positions<Cache>,
                "tree_decoder: Cache needs 'status keep_path(index_t base, std::span<const "
                "std::int32_t> nodes)' or 'status copy_position(index_t src, index_t dst)' to "
                "compact the accepted tree path");
  static_assert(!Policy::needs_draft_rows || dense_tree_draft_proposer<Proposer>,
                "tree_decoder: this verification policy reads draft rows (full q), but the "
                "proposer drafts one-hot tokens; use one_hot_rejection / greedy, or a "
                "dense_tree_draft_proposer");

public:
  /// @brief Binds the components.
  /// @param[in] target the target model
  /// @param[in] cache its KV cache
  /// @param[in] proposer the tree drafter
  /// @param[in] policy the tree verification policy
  tree_decoder(Target& target, Cache& cache, Proposer& proposer, Policy policy = {})
      : target_(&target)
      , cache_(&cache)
      , proposer_(&proposer)
      , policy_(policy) {}

  /// @brief Decodes after `prompt` (a fresh sequence: the cache is rolled back to 0 first).
  ///
  /// `cfg.max_draft` bounds the draft nodes per step (root excluded): a step scores at most
  /// max_draft + 1 rows, as a chain step with max_draft drafts does.
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
    const auto t_begin = clock::now();
    out = decode_result{};
    const status s = run(prompt, cfg, out);
    out.stats.seconds_total = detail::seconds(t_begin, clock::now());
    if (!s.ok()) {
      out.reason = stop_reason::error;
      out.error = s;
    }
    return s;
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

  status run(std::span<const token_id> prompt, const decode_config& cfg, decode_result& out) {
    const status valid = detail::validate_generate(*target_, *cache_, prompt, cfg);
    if (!valid.ok())
      return valid;
    const index_t vocab = target_->vocab_size();
    const index_t capacity = cache_->capacity();
    const std::int32_t max_nodes =
        std::min<std::int32_t>({cfg.max_draft,
                                std::max(0, static_cast<int>(proposer_->max_draft_nodes())),
                                tree::max_nodes - 1});

    // Buffers: target rows for the tree (or a prefill chunk), draft rows for dense proposers.
    const index_t rows = std::max<index_t>(max_nodes + 1, cfg.prefill_chunk);
    logits_.resize(static_cast<std::size_t>(rows * vocab));
    if constexpr (dense_tree_draft_proposer<Proposer>) {
      draft_rows_.resize(static_cast<std::size_t>(std::max(1, max_nodes))
                         * static_cast<std::size_t>(vocab));
      draft_.probs = {draft_rows_.data(), max_nodes, vocab, vocab};
    } else {
      draft_.probs = {};
    }

    context_.assign(prompt.begin(), prompt.end());
    out.tokens.reserve(
        static_cast<std::size_t>(std::min<std::int64_t>(cfg.max_new_tokens, 1 << 16)));
    out.stats.prompt_tokens = static_cast<std::int64_t>(prompt.size());

    // Prefill every prompt token but the last (the last one is the first step's root).
    if (const status s = detail::prefill(*target_, *cache_, prompt, cfg, logits_, out.stats);
        !s.ok())
      return s;

    stop_.reset(cfg.stop_strings);

    const rng_key key{cfg.seed, cfg.request_id};
    while (static_cast<std::int64_t>(out.tokens.size()) < cfg.max_new_tokens) {
      const index_t n = static_cast<index_t>(context_.size());
      if (n > capacity) {
        out.reason = stop_reason::context_full;
        return status{};
      }
      const std::int64_t left = cfg.max_new_tokens - static_cast<std::int64_t>(out.tokens.size());
      // Nodes occupy slots n - 1 .. n - 1 + nodes; deeper than left - 1 cannot all be emitted.
      const auto budget = static_cast<std::int32_t>(
          std::max<std::int64_t>(0, std::min<std::int64_t>(max_nodes, capacity - n)));
      const auto depth_cap = static_cast<std::int32_t>(
          std::max<std::int64_t>(0, std::min<std::int64_t>(budget, left - 1)));

      // 1. Draft a tree rooted at the anchor.
      const auto t_draft = clock::now();
      const token_id anchor = context_.back();
      draft_.draft_index.clear();
      if (budget > 0 && depth_cap > 0) {
        const tree_draft_request r{cfg.request_id, {context_.data(), n}, budget, depth_cap};
        if (const status s = proposer_->propose_tree(r, draft_); !s.ok())
          return s;
        if (const status s = check_draft(anchor, budget, depth_cap); !s.ok())
          return s;
      } else {
        draft_.tree.reset(anchor);
      }
      const tree::token_tree& t = draft_.tree;
      const std::int32_t num_nodes = t.size();
      const auto t_verify = clock::now();
      out.stats.seconds_draft += detail::seconds(t_draft, t_verify);

      // 2. Score every node in one call, root at position n - 1.
      {
        const std::span<const token_id> tok = t.tokens();
        const std::span<const std::int32_t> par = t.parents();
        const matrix_view<float> view{logits_.data(), num_nodes, vocab, vocab};
        if (const status s =
                target_->score_tree(n - 1, {tok.data(), num_nodes}, {par.data(), num_nodes}, view);
            !s.ok())
          return s;
      }

      // 3. Verify.
      verify::tree_request<float, float> vreq{};
      vreq.target = logits_.data();
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
      const verify::tree_outcome o = cpu::verify_tree(policy_, vreq, key);
      out.stats.seconds_verify += detail::seconds(t_verify, clock::now());
      if (!o.status.ok())
        return status{o.status.to_errc()};

      // 4. Keep the root and the accepted path in the cache; commit the tokens.
      path_.resize(static_cast<std::size_t>(o.accepted) + 1);
      if (tree::write_path(t.view(), o.last_node, path_.data(), o.accepted + 1) != o.accepted + 1)
        return status{errc::malformed_tree};
      if (const status s =
              detail::keep_tree_path(*cache_, n - 1, std::span<const std::int32_t>(path_));
          !s.ok())
        return s;
      out.stats.record_tree_step(num_nodes - 1,
                                 t.max_depth(),
                                 o.accepted,
                                 t.first_children()[static_cast<std::size_t>(o.last_node)] >= 0);
      for (int j = 1; j <= o.accepted + 1; ++j) {
        const token_id tk =
            j <= o.accepted
                ? t.tokens()[static_cast<std::size_t>(path_[static_cast<std::size_t>(j)])]
                : o.next;
        if (detail::emit(tk, context_, out, cfg, stop_))
          return status{};
        if (static_cast<std::int64_t>(out.tokens.size()) >= cfg.max_new_tokens)
          break;
      }
    }
    out.reason = stop_reason::budget;
    return status{};
  }

  Target* target_;
  Cache* cache_;
  Proposer* proposer_;
  Policy policy_;
  tree_draft draft_;
  std::vector<float> logits_;
  std::vector<float> draft_rows_;
  std::vector<std::int32_t> path_;
  std::vector<token_id> context_;
  detail::stop_matcher stop_;
};

} // namespace decode

SPECDEC_NAMESPACE_END
