// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief The one loop skeleton every decoder runs: argument checks, prefill, the proposer's
///        lifecycle, the budget / capacity / stop handling, statistics, on_step and timing. A
///        decoder (speculative_decoder, tree_decoder) supplies only its round: draft, score,
///        verify, roll back.
///
/// The loop, with n committed tokens c_0..c_{n-1} and the cache holding positions [0, n - 1):
///
///     validate; proposer.begin(id, prompt)                             (stateful proposers)
///     prefill c_0..c_{n-2}   (a prompt_feature_proposer gets each chunk's target features)
///     while tokens emitted < budget:
///         n > capacity                -> stop (context_full)
///         round(n, left, room)        -> drafted, accepted, depth, committed tokens, features
///         stats, on_step, proposer.observe(outcome)
///         emit the committed tokens   -> stop on an end token / stop string / the budget
///     proposer.end(id)                                                 (also after an error)
///
/// Draws are keyed by (seed, request id, position), so plain and speculative runs of a greedy
/// policy emit the same tokens when the target is batch-invariant, and stochastic policies emit
/// the target's distribution.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/decode/stats.hpp>
#include <specdec/decode/stop.hpp>
#include <specdec/propose/concepts.hpp>
#include <specdec/sampling/params.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

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
  /// Cap on the drafts of one round for this request (a tree: nodes, root excluded), >= 0; it
  /// sizes the decoder's buffers. It does not choose the number: the decoder's draft-length
  /// policy (sched/, the one owner of that decision) does, within min(max_draft, the proposer's
  /// max_draft_len() or max_draft_nodes(), the cache room, the tokens left - 1).
  std::int32_t max_draft = 8;
  std::int32_t prefill_chunk = 64; ///< prompt tokens scored per target call, >= 1
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
/// anchor) in chunks of cfg.prefill_chunk rows of `logits`; records the time in `stats`. When
/// the proposer is a prompt_feature_proposer over a feature_target_model, each chunk is scored
/// with the proposer's feature layers and handed to observe_prompt (the time it takes counts as
/// drafting).
template <class Target, class Cache, class Proposer>
status prefill(Target& target,
               Cache& cache,
               Proposer& proposer,
               std::span<const token_id> prompt,
               const decode_config& cfg,
               std::vector<float>& logits,
               decode_stats& stats) {
  static_assert(
      !requires { &Proposer::observe_prompt; } || prompt_feature_proposer<Proposer>,
      "specdec: the proposer has an observe_prompt member that is not 'status "
      "observe_prompt(std::uint64_t, index_t, matrix_view<const float>)' of a "
      "feature_proposer (prompt_feature_proposer): the loop would never call it");
  const auto t0 = decode_clock::now();
  double feature_seconds = 0.0;
  if (const status s = cache.rollback(0); !s.ok())
    return s;
  const index_t vocab = target.vocab_size();
  const index_t n = static_cast<index_t>(prompt.size()) - 1;
  [[maybe_unused]] std::vector<float> features;
  for (index_t start = 0; start < n; start += cfg.prefill_chunk) {
    const index_t len = std::min<index_t>(cfg.prefill_chunk, n - start);
    const score_request req{cfg.request_id, {prompt.data() + start, len}, start};
    const matrix_view<float> view{logits.data(), len, vocab, vocab};
    if constexpr (prompt_feature_proposer<Proposer> && feature_target_model<Target>) {
      const row_view<const std::int32_t> layers = proposer.feature_layers();
      const index_t cols = layers.size * static_cast<index_t>(target.hidden_size());
      features.resize(static_cast<std::size_t>(len * cols));
      const feature_request f{layers, {features.data(), len, cols, cols}};
      if (const status s = target.score_features(req, view, f); !s.ok())
        return s;
      const auto t1 = decode_clock::now();
      if (const status s = proposer.observe_prompt(
              cfg.request_id, start, matrix_view<const float>{features.data(), len, cols, cols});
          !s.ok())
        return s;
      feature_seconds += seconds(t1, decode_clock::now());
    } else {
      (void)proposer;
      if (const status s = target.score(req, view); !s.ok())
        return s;
    }
  }
  stats.seconds_prefill = seconds(t0, decode_clock::now()) - feature_seconds;
  stats.seconds_draft += feature_seconds;
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

/// @brief What one round did, as a decoder's round reports it to the skeleton.
struct round_result {
  std::int32_t drafted = 0;  ///< draft tokens (tree: nodes, root excluded) verified
  std::int32_t accepted = 0; ///< drafts accepted
  std::int32_t offered = 0;  ///< drafts the proposer produced before the length policy cut them
  std::int32_t depth = 0;    ///< depth of the verified draft (a chain: drafted)
  bool deeper = false;       ///< the last accepted draft had children (a chain: accepted < drafted)
  /// The committed tokens: the accepted drafts then the emitted token (accepted + 1 of them).
  row_view<const token_id> committed;
  /// Target features of the anchor and the accepted drafts (round_outcome::features), or none.
  matrix_view<const float> features;
};

/// @brief What the skeleton tells a round about the request's state.
struct round_state {
  index_t n = 0;         ///< committed tokens (the anchor c_{n-1} sits at position n - 1)
  std::int64_t left = 0; ///< tokens still to emit (>= 1)
  index_t room = 0;      ///< cache capacity - n: most drafts whose keys and values fit
  row_view<const token_id> context; ///< the committed tokens c_0..c_{n-1}
};

namespace detail {

/// @brief The loop skeleton (see the file comment); a decoder derives from it (CRTP) and
///        provides `status setup(const decode_config&, index_t& rows)` (buffers; `rows`: the most
///        target rows one round scores) and `status round(const decode_config&, const
///        round_state&, decode_stats&, round_result&)`.
/// @tparam Derived the decoder
/// @tparam Target its target_model
/// @tparam Cache its KV cache
/// @tparam Proposer its proposer (the lifecycle members are called when it has them)
template <class Derived, class Target, class Cache, class Proposer>
class loop_skeleton {
public:
  /// @brief Decodes after `prompt` (a fresh sequence: the cache is rolled back to 0 first).
  /// @param[in] prompt at least one token (e.g. BOS); every id in [0, vocab)
  /// @param[in] cfg budget, stop conditions, sampling and draft settings
  /// @param[out] out cleared, then filled with the tokens, the stop reason and the statistics
  /// @return see the decoders' generate()
  /// @par Complexity
  /// One target call per round plus the round's own cost; O(tokens) bookkeeping.
  [[nodiscard]] status
  generate(std::span<const token_id> prompt, const decode_config& cfg, decode_result& out) {
    const auto t_begin = decode_clock::now();
    out = decode_result{};
    bool begun = false;
    status s = run(prompt, cfg, out, begun);
    if constexpr (proposer_lifecycle<Proposer>) {
      if (begun)
        proposer_->end(cfg.request_id);
    }
    out.stats.seconds_total = seconds(t_begin, decode_clock::now());
    if (!s.ok()) {
      out.reason = stop_reason::error;
      out.error = s;
    }
    return s;
  }

protected:
  /// Binds the components (they must outlive the decoder).
  loop_skeleton(Target& target, Cache& cache, Proposer& proposer)
      : target_(&target)
      , cache_(&cache)
      , proposer_(&proposer) {}

  Target* target_;                ///< the target model
  Cache* cache_;                  ///< its KV cache
  Proposer* proposer_;            ///< the drafter
  std::vector<float> logits_;     ///< target rows: a round's rows or a prefill chunk
  std::vector<token_id> context_; ///< committed tokens

private:
  status
  run(std::span<const token_id> prompt, const decode_config& cfg, decode_result& out, bool& begun) {
    if (const status v = validate_generate(*target_, *cache_, prompt, cfg); !v.ok())
      return v;
    const index_t vocab = target_->vocab_size();
    const index_t capacity = cache_->capacity();
    index_t rows = 1;
    if (const status s = derived().setup(cfg, rows); !s.ok())
      return s;
    logits_.resize(static_cast<std::size_t>(std::max<index_t>(rows, cfg.prefill_chunk) * vocab));

    context_.assign(prompt.begin(), prompt.end());
    out.tokens.reserve(
        static_cast<std::size_t>(std::min<std::int64_t>(cfg.max_new_tokens, 1 << 16)));
    out.stats.prompt_tokens = static_cast<std::int64_t>(prompt.size());

    if constexpr (proposer_lifecycle<Proposer>) {
      const auto t0 = decode_clock::now();
      const status s =
          proposer_->begin(cfg.request_id, {prompt.data(), static_cast<index_t>(prompt.size())});
      out.stats.seconds_draft += seconds(t0, decode_clock::now());
      if (!s.ok())
        return s;
      begun = true;
    }
    // Prefill every prompt token but the last (the last one is the first round's anchor).
    if (const status s = prefill(*target_, *cache_, *proposer_, prompt, cfg, logits_, out.stats);
        !s.ok())
      return s;
    stop_.reset(cfg.stop_strings);

    while (static_cast<std::int64_t>(out.tokens.size()) < cfg.max_new_tokens) {
      const index_t n = static_cast<index_t>(context_.size());
      if (n > capacity) {
        out.reason = stop_reason::context_full;
        return status{};
      }
      round_state st{};
      st.n = n;
      st.left = cfg.max_new_tokens - static_cast<std::int64_t>(out.tokens.size());
      st.room = capacity - n;
      st.context = {context_.data(), n};
      round_result r{};
      if (const status s = derived().round(cfg, st, out.stats, r); !s.ok())
        return s;
      out.stats.record_tree_step(r.drafted, r.depth, r.accepted, r.deeper);
      if (cfg.on_step)
        cfg.on_step(step_record{n - 1, r.drafted, r.accepted, r.offered});
      if constexpr (proposer_lifecycle<Proposer>) {
        const auto t0 = decode_clock::now();
        round_outcome o{};
        o.request_id = cfg.request_id;
        o.position = n;
        o.drafted = r.drafted;
        o.accepted = r.accepted;
        o.next = r.committed[r.accepted];
        o.tokens = r.committed;
        o.features = r.features;
        const status s = proposer_->observe(o);
        out.stats.seconds_draft += seconds(t0, decode_clock::now());
        if (!s.ok())
          return s;
      }
      for (index_t j = 0; j < r.committed.size; ++j) {
        if (emit(r.committed[j], context_, out, cfg, stop_))
          return status{};
        if (static_cast<std::int64_t>(out.tokens.size()) >= cfg.max_new_tokens)
          break;
      }
    }
    out.reason = stop_reason::budget;
    return status{};
  }

  Derived& derived() noexcept {
    return static_cast<Derived&>(*this);
  }

  stop_matcher stop_;
};

} // namespace detail

} // namespace decode

SPECDEC_NAMESPACE_END
