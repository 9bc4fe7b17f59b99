// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief The generic speculative decoding loop over the plug-in concepts: a target model, its KV
///        cache, a draft proposer, a chain verification policy and a draft-length policy.
///
/// One step, with n committed tokens c_0..c_{n-1} and the cache holding positions [0, n - 1):
///  1. choose a draft length k and draft d_1..d_k (the order depends on the proposer, see below);
///  2. score [c_{n-1}, d_1..d_k] at positions n - 1 .. n - 1 + k in one target call (k + 1 rows);
///  3. verify with the policy: a drafts accepted and exactly one more token t;
///  4. roll the cache back to n + a (the anchor and the accepted drafts stay), commit d_1..d_a, t.
///
/// With k = 0 a step is plain decoding, so plain and speculative decoding share this loop (a
/// `propose::no_drafter` gives plain decoding). Draws are keyed by (seed, request id, position), so
/// plain and speculative runs of a greedy policy emit the same tokens when the target is
/// batch-invariant, and stochastic policies emit the target's distribution.
///
/// The loop itself (prefill, lifecycle, budget / capacity / stop handling, statistics) is
/// decode/loop.hpp's skeleton; this header is the chain round. A stateful proposer is told the
/// outcome of every round (propose/concepts.hpp); a feature_proposer over a feature_target_model
/// also gets the target's hidden states of the rows the round kept.
///
/// Proposers that report a per-step feature (`bucketed_proposer`, e.g. the n-gram drafter's match
/// length) are cheap to run: they draft the full budget first and the draft-length policy then
/// chooses how many of the drafts to verify, knowing the feature; a policy with a `may_draft(n)`
/// member that answers false (no bucket would draft) spares the proposer's run for that step (such
/// a proposer must accept skipped steps: the n-gram drafter catches up with the context on its
/// next call).
/// Other proposers (model drafters) are asked for exactly the chosen number of tokens, and not
/// called at all when it is 0.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/diagnostics.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/cpu/verify_chain.hpp>
#include <specdec/decode/loop.hpp>
#include <specdec/decode/stats.hpp>
#include <specdec/kv/concepts.hpp>
#include <specdec/propose/concepts.hpp>
#include <specdec/sched/confidence_length.hpp>
#include <specdec/sched/draft_length.hpp>
#include <specdec/verify/chain.hpp>
#include <specdec/verify/policy.hpp>

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace decode {

namespace detail {

/// The feature columns a feature_proposer asks of the target (0 when it asks none).
template <class Target, class Proposer>
index_t feature_columns(const Target& target, const Proposer& proposer) {
  if constexpr (feature_proposer<Proposer>)
    return proposer.feature_layers().size * static_cast<index_t>(target.hidden_size());
  else
    return 0;
}

} // namespace detail

/// @brief The speculative decoding loop (see the file comment).
///
/// @tparam Target a target_model (scores tokens after the committed prefix); a
///   feature_target_model when the proposer is a feature_proposer
/// @tparam Cache  the target's kv::kv_cache (rolled back after each verification)
/// @tparam Proposer a draft_proposer (optionally a stateful_proposer / feature_proposer)
/// @tparam Policy a chain_verification_policy; one that reads draft rows needs a
/// dense_draft_proposer
/// @tparam Length a sched::draft_length_policy, or a confidence_length_policy (then the
///         proposer must be a confident_proposer: it drafts up to the budget and the policy cuts
///         the draft). The policy alone decides the number of drafts, out of min(cfg.max_draft,
///         the proposer's max_draft_len(), the cache room, the tokens left - 1)
///
/// The decoder holds references to the target, cache and proposer: they must outlive it. It is not
/// thread-safe; use one decoder per sequence.
template <target_model Target,
          kv::kv_cache Cache,
          draft_proposer Proposer,
          verify::chain_verification_policy Policy,
          class Length = sched::fixed_draft_length>
  requires sched::draft_length_policy<Length> || confidence_length_policy<Length>
class speculative_decoder
    : public detail::loop_skeleton<speculative_decoder<Target, Cache, Proposer, Policy, Length>,
                                   Target,
                                   Cache,
                                   Proposer> {
  static_assert(!Policy::needs_draft_rows || dense_draft_proposer<Proposer>,
                "specdec: this verification policy reads draft rows (full q), but the proposer "
                "drafts one-hot tokens; use one_hot_rejection / greedy, or a dense_draft_proposer");
  static_assert(
      sched::draft_length_policy<Length> || confident_proposer<Proposer>,
      "specdec: this length policy cuts drafts by their confidences (choose_with_confidence)"
      ", but the proposer reports none; give it a confident_proposer (confidences())");
  static_assert(!feature_proposer<Proposer> || feature_target_model<Target>,
                "specdec: the proposer is fed by target features (feature_proposer), but the "
                "target does not return them; it needs 'status score_features(const "
                "score_request&, matrix_view<float> logits, const feature_request&)' "
                "(feature_target_model)");

  using base = detail::loop_skeleton<speculative_decoder, Target, Cache, Proposer>;
  friend base;

public:
  /// @brief Binds the components; `length` is copied (reach it with length_policy()).
  /// @param[in] target the target model
  /// @param[in] cache its KV cache
  /// @param[in] proposer the drafter
  /// @param[in] policy the verification policy
  /// @param[in] length the draft-length policy
  speculative_decoder(
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
  /// @param prompt at least one token (e.g. BOS); every id in [0, vocab)
  /// @param cfg    budget, stop conditions, sampling and draft settings
  /// @param out    cleared, then filled with the tokens, the stop reason and the statistics
  /// @return ok when generation stopped normally (budget, end token, stop string, full context);
  ///         errc::invalid_argument for an empty prompt, bad config or stop strings without
  ///         token_text; errc::token_out_of_range for a bad prompt token; errc::overflow when the
  ///         prompt does not fit the cache; otherwise the first failure of the target, proposer,
  ///         cache or policy (out.reason == error; out.tokens holds what was emitted before it).
  /// @par Complexity
  /// One target call per step plus the proposer's and policy's costs; O(k) bookkeeping per step.
  [[nodiscard]] status
  generate(std::span<const token_id> prompt, const decode_config& cfg, decode_result& out) {
    return base::generate(prompt, cfg, out);
  }

private:
  using clock = detail::decode_clock;

  // Buffers for rounds of up to max_draft_ drafts.
  status setup(const decode_config& cfg, index_t& rows) {
    const index_t vocab = this->target_->vocab_size();
    max_draft_ = std::min<std::int32_t>(
        cfg.max_draft, std::max(0, static_cast<int>(this->proposer_->max_draft_len())));
    rows = max_draft_ + 1;
    draft_tokens_.resize(static_cast<std::size_t>(std::max(1, max_draft_)));
    step_tokens_.resize(static_cast<std::size_t>(max_draft_) + 2);
    if constexpr (dense_draft_proposer<Proposer>)
      draft_rows_.resize(static_cast<std::size_t>(std::max(1, max_draft_))
                         * static_cast<std::size_t>(vocab));
    feature_cols_ = detail::feature_columns(*this->target_, *this->proposer_);
    features_.resize(static_cast<std::size_t>(rows * feature_cols_));
    return status{};
  }

  // Drafts; returns the number k of drafts to verify (in draft_tokens_) and what was offered.
  status draft(const decode_config& cfg,
               const round_state& st,
               draft_block& block,
               int& k,
               int& offered,
               int& bucket) {
    const int available = static_cast<int>(std::max<std::int64_t>(
        0, std::min<std::int64_t>({max_draft_, st.left - 1, static_cast<std::int64_t>(st.room)})));
    k = 0;
    offered = 0;
    bucket = 0;
    draft_request r{cfg.request_id, st.context, available};
    if constexpr (confident_proposer<Proposer> && confidence_length_policy<Length>) {
      if (available > 0) {
        if (const status s = this->proposer_->propose(r, block); !s.ok())
          return s;
        offered = std::clamp(block.length, 0, available);
        const std::span<const double> c = this->proposer_->confidences();
        const int scored = std::min(offered, static_cast<int>(c.size()));
        k = std::clamp(static_cast<int>(length_.choose_with_confidence(
                           c.first(static_cast<std::size_t>(scored)), scored)),
                       0,
                       scored);
      }
    } else if constexpr (bucketed_proposer<Proposer>) {
      // A policy that can tell no bucket would draft now (sched::adaptive_draft_length::
      // may_draft) spares the proposer's run: the step is then a plain step in cost too.
      bool may = available > 0;
      if constexpr (requires { length_.may_draft(available); })
        may = may && static_cast<bool>(length_.may_draft(available));
      if (may) {
        if (const status s = this->proposer_->propose(r, block); !s.ok())
          return s;
        bucket = this->proposer_->draft_bucket();
        offered = block.length;
        k = std::min(static_cast<int>(length_.choose(bucket, block.length)), block.length);
      }
    } else {
      k = available > 0 ? std::clamp(static_cast<int>(length_.choose(0, available)), 0, available)
                        : 0;
      if (k > 0) {
        r.max_tokens = k;
        if (const status s = this->proposer_->propose(r, block); !s.ok())
          return s;
        k = std::clamp(block.length, 0, k);
        offered = k;
      }
    }
    return status{};
  }

  // One round: draft, score the anchor and the drafts in one call, verify, roll back.
  status
  round(const decode_config& cfg, const round_state& st, decode_stats& stats, round_result& out) {
    const index_t vocab = this->target_->vocab_size();
    const index_t n = st.n;

    // 1. Draft.
    const auto t_draft = clock::now();
    draft_block block{};
    block.tokens = {draft_tokens_.data(), static_cast<index_t>(draft_tokens_.size())};
    if constexpr (dense_draft_proposer<Proposer>)
      block.probs = {draft_rows_.data(), max_draft_, vocab, vocab};
    int k = 0;
    int offered = 0;
    int bucket = 0;
    if (const status s = draft(cfg, st, block, k, offered, bucket); !s.ok())
      return s;
    const auto t_verify = clock::now();
    stats.seconds_draft += detail::seconds(t_draft, t_verify);

    // 2. Score the anchor and the drafts in one call (with the features a proposer asks for).
    step_tokens_[0] = st.context[n - 1];
    std::copy_n(draft_tokens_.data(), k, step_tokens_.begin() + 1);
    {
      const score_request req{cfg.request_id, {step_tokens_.data(), k + 1}, n - 1};
      const matrix_view<float> view{this->logits_.data(), k + 1, vocab, vocab};
      status s{};
      if constexpr (feature_proposer<Proposer>) {
        const feature_request f{this->proposer_->feature_layers(),
                                {features_.data(), k + 1, feature_cols_, feature_cols_}};
        s = this->target_->score_features(req, view, f);
      } else {
        s = this->target_->score(req, view);
      }
      if (!s.ok())
        return s;
    }

    // 3. Verify.
    verify::chain_request<float, float> vreq{};
    vreq.target = this->logits_.data();
    vreq.target_stride = vocab;
    if constexpr (dense_draft_proposer<Proposer>) {
      vreq.draft = draft_rows_.data();
      vreq.draft_stride = vocab;
      vreq.draft_kind = block.probs_kind;
    }
    vreq.tokens = step_tokens_.data() + 1;
    vreq.num_drafts = k;
    vreq.vocab = vocab;
    vreq.target_kind = distribution_kind::logits;
    vreq.params = cfg.params;
    vreq.position = n;
    const verify::chain_outcome o =
        cpu::verify_chain(policy_, vreq, rng_key{cfg.seed, cfg.request_id});
    stats.seconds_verify += detail::seconds(t_verify, clock::now());
    if (!o.status.ok())
      return status{o.status.to_errc()};

    // 4. Keep the anchor and the accepted drafts in the cache.
    if (const status s = this->cache_->rollback(n + o.accepted); !s.ok())
      return s;
    if constexpr (requires { length_.record(bucket, k, o.accepted); }) {
      if (k > 0)
        length_.record(bucket, k, o.accepted);
    }
    step_tokens_[static_cast<std::size_t>(o.accepted) + 1] = o.next;
    out.drafted = k;
    out.accepted = o.accepted;
    out.offered = offered;
    out.depth = k;
    out.deeper = o.accepted < k;
    out.committed = {step_tokens_.data() + 1, o.accepted + 1};
    if (feature_cols_ > 0)
      out.features = {features_.data(), o.accepted + 1, feature_cols_, feature_cols_};
    return status{};
  }

  Policy policy_;
  Length length_;
  std::int32_t max_draft_ = 0;
  index_t feature_cols_ = 0;
  std::vector<float> draft_rows_;
  std::vector<float> features_;
  std::vector<token_id> draft_tokens_;
  std::vector<token_id> step_tokens_;
};

} // namespace decode

SPECDEC_NAMESPACE_END
