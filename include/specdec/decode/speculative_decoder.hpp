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
/// Proposers that report a per-step feature (`bucketed_proposer`, e.g. the n-gram drafter's match
/// length) are cheap to run: they draft the full budget first and the draft-length policy then
/// chooses how many of the drafts to verify, knowing the feature. Other proposers (model drafters)
/// are asked for exactly the chosen number of tokens, and not called at all when it is 0.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/cpu/verify_chain.hpp>
#include <specdec/decode/stats.hpp>
#include <specdec/decode/stop.hpp>
#include <specdec/kv/contiguous_cache.hpp>
#include <specdec/sampling/params.hpp>
#include <specdec/sched/draft_length.hpp>
#include <specdec/verify/chain.hpp>
#include <specdec/verify/policy.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

/// @brief A proposer that reports a small non-negative integer feature of its last draft (for the
///        n-gram drafter: the length of the matched suffix), used to bucket acceptance statistics.
template <class P>
concept bucketed_proposer = draft_proposer<P> && requires(const P& cp) {
  { cp.draft_bucket() } -> std::convertible_to<int>;
};

/// @brief A proposer that scores its last draft: `confidences()` holds, for each drafted
///        position k, an estimate of P(draft k accepted | drafts 1..k-1 accepted) that depends only
///        on the drafts before k (propose/semi_ar.hpp's calibrated confidence head).
template <class P>
concept confident_proposer = draft_proposer<P> && requires(const P& cp) {
  { cp.confidences() } -> std::convertible_to<std::span<const double>>;
};

/// @brief A draft-length policy that cuts a scored draft: `choose_with_confidence(c, available)`
///        returns a length in [0, available] and must be non-anticipating (whether draft k is kept
///        may depend on c_1..c_k only, never on c_{k+1}..), which keeps verification lossless.
template <class L>
concept confidence_length_policy = requires(L& l, std::span<const double> c, int n) {
  { l.choose_with_confidence(c, n) } -> std::convertible_to<int>;
};

namespace decode {

/// @brief Why generate() stopped.
enum class stop_reason {
  budget,       ///< max_new_tokens were emitted
  end_token,    ///< an end token was emitted (it is the last token of the output)
  stop_string,  ///< the text completed a stop string (the completing token is the last one)
  context_full, ///< the next position would exceed the cache capacity
  error         ///< a component failed; see decode_result::error
};

/// @brief A readable name for a stop reason (a static string).
/// @param[in] r the reason
/// @return its name, e.g. "budget"
constexpr const char* to_string(stop_reason r) noexcept {
  switch (r) {
  case stop_reason::budget:
    return "budget";
  case stop_reason::end_token:
    return "end_token";
  case stop_reason::stop_string:
    return "stop_string";
  case stop_reason::context_full:
    return "context_full";
  case stop_reason::error:
    return "error";
  }
  return "unknown";
}

/// @brief What one verification step did, as reported to decode_config::on_step.
struct step_record {
  index_t position = 0;      ///< absolute position of the step's anchor (the last committed token)
  std::int32_t drafted = 0;  ///< draft tokens verified (0 for a plain step)
  std::int32_t accepted = 0; ///< leading drafts accepted
  std::int32_t offered = 0;  ///< drafts the proposer produced before the length policy cut them
};

/// @brief What to generate and when to stop.
struct decode_config {
  std::int64_t max_new_tokens = 256;     ///< token budget, >= 0
  std::vector<token_id> end_tokens;      ///< stop after emitting any of these
  std::vector<std::string> stop_strings; ///< stop once the emitted text contains one of these
  /// Text of `tok` following `prev` (a detokenizer); required when stop_strings is non-empty.
  std::function<std::string(token_id prev, token_id tok)> token_text;
  sampling::sampling_params params{}; ///< target sampling; temperature 0 is greedy
  std::uint64_t seed = 0;             ///< random stream seed
  std::uint64_t request_id = 0;       ///< request id (keys the random stream and the proposer)
  std::int32_t max_draft = 8;         ///< most drafts per step (buffer size), >= 0
  std::int32_t prefill_chunk = 64;    ///< prompt tokens scored per target call, >= 1
  /// Called after every verification step (before its tokens are emitted), e.g. to log rounds
  /// for calibration (calib/sts.hpp) or per-round metrics (decode/round_metrics.hpp).
  std::function<void(const step_record&)> on_step;
};

/// @brief Output of generate().
struct decode_result {
  std::vector<token_id> tokens;             ///< emitted tokens (the prompt excluded)
  stop_reason reason = stop_reason::budget; ///< why generation stopped
  status error{};                           ///< the failure when reason == error
  decode_stats stats;                       ///< counters and times
};

namespace detail {

/// The decoders' clock.
using decode_clock = std::chrono::steady_clock;

/// Seconds from a to b.
inline double seconds(decode_clock::time_point a, decode_clock::time_point b) noexcept {
  return std::chrono::duration<double>(b - a).count();
}

/// The argument checks of generate() shared by the chain and tree loops.
template <class Target, class Cache>
status validate_generate(const Target& target,
                         const Cache& cache,
                         std::span<const token_id> prompt,
                         const decode_config& cfg) {
  if (prompt.empty() || cfg.max_new_tokens < 0 || cfg.max_draft < 0 || cfg.prefill_chunk < 1)
    return status{errc::invalid_argument};
  if (!cfg.stop_strings.empty() && !cfg.token_text)
    return status{errc::invalid_argument};
  if (cfg.params.validate() != errc::ok)
    return status{cfg.params.validate()};
  const index_t vocab = target.vocab_size();
  for (token_id t : prompt)
    if (t < 0 || static_cast<index_t>(t) >= vocab)
      return status{errc::token_out_of_range};
  if (static_cast<index_t>(prompt.size()) > cache.capacity())
    return status{errc::overflow};
  return status{};
}

/// Rolls the cache back to 0 and scores every prompt token but the last (the first step's
/// anchor) in chunks of cfg.prefill_chunk rows of `logits`; records the time in `stats`.
template <class Target, class Cache>
status prefill(Target& target,
               Cache& cache,
               std::span<const token_id> prompt,
               const decode_config& cfg,
               std::vector<float>& logits,
               decode_stats& stats) {
  const auto t0 = decode_clock::now();
  if (const status s = cache.rollback(0); !s.ok())
    return s;
  const index_t vocab = target.vocab_size();
  const index_t n = static_cast<index_t>(prompt.size()) - 1;
  for (index_t start = 0; start < n; start += cfg.prefill_chunk) {
    const index_t len = std::min<index_t>(cfg.prefill_chunk, n - start);
    const score_request req{cfg.request_id, {prompt.data() + start, len}, start};
    const matrix_view<float> view{logits.data(), len, vocab, vocab};
    if (const status s = target.score(req, view); !s.ok())
      return s;
  }
  stats.seconds_prefill = seconds(t0, decode_clock::now());
  return status{};
}

/// Commits token t (context and output); true when it ends generation (end token or stop
/// string, with out.reason set). The budget is the caller's check.
inline bool emit(token_id t,
                 std::vector<token_id>& context,
                 decode_result& out,
                 const decode_config& cfg,
                 stop_matcher& stop) {
  const token_id prev = context.back();
  context.push_back(t);
  out.tokens.push_back(t);
  if (std::find(cfg.end_tokens.begin(), cfg.end_tokens.end(), t) != cfg.end_tokens.end()) {
    out.reason = stop_reason::end_token;
    return true;
  }
  if (stop.active() && stop.append(cfg.stop_strings, cfg.token_text(prev, t))) {
    out.reason = stop_reason::stop_string;
    return true;
  }
  return false;
}

} // namespace detail

/// @brief The speculative decoding loop (see the file comment).
///
/// @tparam Target a target_model (scores tokens after the committed prefix)
/// @tparam Cache  the target's kv::kv_cache (rolled back after each verification)
/// @tparam Proposer a draft_proposer
/// @tparam Policy a chain_verification_policy; one that reads draft rows needs a
/// dense_draft_proposer
/// @tparam Length a sched::draft_length_policy, or a confidence_length_policy (then the proposer
///         must be a confident_proposer: it drafts up to the budget and the policy cuts the draft)
///
/// The decoder holds references to the target, cache and proposer: they must outlive it. It is not
/// thread-safe; use one decoder per sequence.
template <target_model Target,
          kv::kv_cache Cache,
          draft_proposer Proposer,
          verify::chain_verification_policy Policy,
          class Length = sched::fixed_draft_length>
  requires sched::draft_length_policy<Length> || confidence_length_policy<Length>
class speculative_decoder {
  static_assert(!Policy::needs_draft_rows || dense_draft_proposer<Proposer>,
                "specdec: this verification policy reads draft rows (full q), but the proposer "
                "drafts one-hot tokens; use one_hot_rejection / greedy, or a dense_draft_proposer");
  static_assert(
      sched::draft_length_policy<Length> || confident_proposer<Proposer>,
      "specdec: this length policy cuts drafts by their confidences (choose_with_confidence)"
      ", but the proposer reports none; give it a confident_proposer (confidences())");

public:
  /// @brief Binds the components; `length` is copied (reach it with length_policy()).
  /// @param[in] target the target model
  /// @param[in] cache its KV cache
  /// @param[in] proposer the drafter
  /// @param[in] policy the verification policy
  /// @param[in] length the draft-length policy
  speculative_decoder(
      Target& target, Cache& cache, Proposer& proposer, Policy policy = {}, Length length = {})
      : target_(&target)
      , cache_(&cache)
      , proposer_(&proposer)
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

private:
  using clock = detail::decode_clock;

  status run(std::span<const token_id> prompt, const decode_config& cfg, decode_result& out) {
    const status valid = detail::validate_generate(*target_, *cache_, prompt, cfg);
    if (!valid.ok())
      return valid;
    const index_t vocab = target_->vocab_size();
    const index_t capacity = cache_->capacity();
    const std::int32_t max_draft = std::min<std::int32_t>(
        cfg.max_draft, std::max(0, static_cast<int>(proposer_->max_draft_len())));

    // Buffers: target rows for the anchor + drafts (or a prefill chunk), draft tokens and rows.
    const index_t rows = std::max<index_t>(max_draft + 1, cfg.prefill_chunk);
    logits_.resize(static_cast<std::size_t>(rows * vocab));
    draft_tokens_.resize(static_cast<std::size_t>(std::max(1, max_draft)));
    if constexpr (dense_draft_proposer<Proposer>)
      draft_rows_.resize(static_cast<std::size_t>(std::max(1, max_draft))
                         * static_cast<std::size_t>(vocab));

    context_.assign(prompt.begin(), prompt.end());
    out.tokens.reserve(
        static_cast<std::size_t>(std::min<std::int64_t>(cfg.max_new_tokens, 1 << 16)));
    out.stats.prompt_tokens = static_cast<std::int64_t>(prompt.size());

    // Prefill every prompt token but the last (the last one is the first step's anchor).
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
      const int available = static_cast<int>(
          std::max<std::int64_t>(0, std::min<std::int64_t>({max_draft, left - 1, capacity - n})));

      // 1. Draft.
      const auto t_draft = clock::now();
      int k = 0;
      int bucket = 0;
      draft_block block{};
      block.tokens = {draft_tokens_.data(), static_cast<index_t>(draft_tokens_.size())};
      if constexpr (dense_draft_proposer<Proposer>)
        block.probs = {draft_rows_.data(), max_draft, vocab, vocab};
      const draft_request dreq{cfg.request_id, {context_.data(), n}, 0};
      int offered = 0;
      if constexpr (confident_proposer<Proposer> && confidence_length_policy<Length>) {
        if (available > 0) {
          draft_request r = dreq;
          r.max_tokens = available;
          if (const status s = proposer_->propose(r, block); !s.ok())
            return s;
          offered = std::clamp(block.length, 0, available);
          const std::span<const double> c = proposer_->confidences();
          const int scored = std::min(offered, static_cast<int>(c.size()));
          k = std::clamp(static_cast<int>(length_.choose_with_confidence(
                             c.first(static_cast<std::size_t>(scored)), scored)),
                         0,
                         scored);
        }
      } else if constexpr (bucketed_proposer<Proposer>) {
        if (available > 0) {
          draft_request r = dreq;
          r.max_tokens = available;
          if (const status s = proposer_->propose(r, block); !s.ok())
            return s;
          bucket = proposer_->draft_bucket();
          offered = block.length;
          k = std::min(static_cast<int>(length_.choose(bucket, block.length)), block.length);
        }
      } else {
        k = available > 0 ? static_cast<int>(length_.choose(0, available)) : 0;
        k = std::clamp(k, 0, available);
        if (k > 0) {
          draft_request r = dreq;
          r.max_tokens = k;
          if (const status s = proposer_->propose(r, block); !s.ok())
            return s;
          k = std::clamp(block.length, 0, k);
          offered = k;
        }
      }
      const auto t_verify = clock::now();
      out.stats.seconds_draft += detail::seconds(t_draft, t_verify);

      // 2. Score the anchor and the drafts in one call.
      step_tokens_.resize(static_cast<std::size_t>(k) + 1);
      step_tokens_[0] = context_.back();
      std::copy_n(draft_tokens_.data(), k, step_tokens_.begin() + 1);
      {
        const score_request req{cfg.request_id, {step_tokens_.data(), k + 1}, n - 1};
        const matrix_view<float> view{logits_.data(), k + 1, vocab, vocab};
        if (const status s = target_->score(req, view); !s.ok())
          return s;
      }

      // 3. Verify.
      verify::chain_request<float, float> vreq{};
      vreq.target = logits_.data();
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
      const verify::chain_outcome o = cpu::verify_chain(policy_, vreq, key);
      out.stats.seconds_verify += detail::seconds(t_verify, clock::now());
      if (!o.status.ok())
        return status{o.status.to_errc()};

      // 4. Keep the anchor and the accepted drafts in the cache; commit the tokens.
      if (const status s = cache_->rollback(n + o.accepted); !s.ok())
        return s;
      out.stats.record_step(k, o.accepted);
      if constexpr (requires { length_.record(bucket, k, o.accepted); }) {
        if (k > 0)
          length_.record(bucket, k, o.accepted);
      }
      if (cfg.on_step)
        cfg.on_step(step_record{n - 1, k, o.accepted, offered});
      for (int j = 0; j <= o.accepted; ++j) {
        const token_id t = j < o.accepted ? step_tokens_[static_cast<std::size_t>(j) + 1] : o.next;
        if (detail::emit(t, context_, out, cfg, stop_))
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
  Length length_;
  std::vector<float> logits_;
  std::vector<float> draft_rows_;
  std::vector<token_id> draft_tokens_;
  std::vector<token_id> step_tokens_;
  std::vector<token_id> context_;
  detail::stop_matcher stop_;
};

} // namespace decode

SPECDEC_NAMESPACE_END
