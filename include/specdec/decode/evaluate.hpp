// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief An engine-neutral evaluation harness: decode a set of prompts with any target, cache,
///        proposer, verification policy and length policy, and collect what the DSpark / DeepSpec
///        evaluations report (round_metrics: tau, accept_rate\@i, conditional acceptance, verify
///        rate), the histogram of proposal lengths, tokens and wall times; then project the
///        speed-up of those rounds on a cost model (sched::step_costs: the measured c(T) of a
///        backend, or a step-time table given for an accelerator).
///
/// Round accounting follows the reference evaluator (round_metrics): every verified round counts
/// its accepted drafts plus the bonus token (a round whose emitted token ends the sequence still
/// counts n + 1, as DeepSpec's eval does), including rounds with no draft (P = 0, tau = 1).

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/decode/round_metrics.hpp>
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/sched/draft_length.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <utility>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace decode {

/// @brief What an evaluation measured over its prompts.
struct evaluation {
  round_metrics rounds;                ///< per-round acceptance (n + 1 per round, see the file)
  std::vector<std::int64_t> proposals; ///< proposals[k]: rounds that verified k drafts
  std::int64_t prompts = 0;            ///< prompts decoded
  std::int64_t tokens = 0;             ///< tokens emitted
  double seconds = 0.0;                ///< decoding wall time, prefill excluded
  double seconds_draft = 0.0;          ///< of which inside the proposer
  double seconds_verify = 0.0;         ///< of which scoring and verifying

  /// @brief Emitted tokens per second of decoding (prefill excluded). O(1).
  /// @return tokens / seconds; NaN when no time was measured
  [[nodiscard]] double tokens_per_second() const noexcept {
    return seconds > 0.0 ? static_cast<double>(tokens) / seconds
                         : std::numeric_limits<double>::quiet_NaN();
  }
  /// @brief Records one verified round (the harness's on_step). O(P) amortised.
  /// @param[in] proposed drafts verified, P >= 0
  /// @param[in] accepted drafts accepted, in [0, P]
  /// @return round_metrics::add's status (nothing changes on error)
  [[nodiscard]] status add_round(index_t proposed, index_t accepted) {
    if (const status s = rounds.add(proposed, accepted, false); !s.ok())
      return s;
    if (proposals.size() <= static_cast<std::size_t>(proposed))
      proposals.resize(static_cast<std::size_t>(proposed) + 1, 0);
    ++proposals[static_cast<std::size_t>(proposed)];
    return status{};
  }
};

/// @brief Decodes every prompt with one speculative_decoder and accumulates an evaluation.
///
/// Prompt i runs with `cfg` except seed = cfg.seed + i and request_id = i; before it, a proposer
/// with `set_seed(std::uint64_t)` is re-keyed to cfg.seed * 31 + i and one with
/// `set_params(const sampling::sampling_params&)` gets cfg.params (drafts drawn at the
/// verifier's temperature). cfg.on_step is called after the harness's own bookkeeping; `on_round`
/// (optional) too, while the proposer still describes the round's block (e.g. its confidences).
/// @tparam Target, Cache, Proposer, Policy, Length as speculative_decoder's
/// @param[in,out] target the target model
/// @param[in,out] cache its KV cache
/// @param[in,out] proposer the drafter
/// @param[in] policy the verification policy
/// @param[in] length the draft-length policy (copied per prompt)
/// @param[in] prompts the prompts, each at least one token
/// @param[in] cfg budget, stop conditions, sampling, draft cap
/// @param[out] out cleared, then filled
/// @param[in] on_round optional per-round callback
/// @return ok; the first decoder error (out then holds the prompts before it)
/// @par Complexity
/// One generate() per prompt, plus O(P) per round.
template <class Target, class Cache, class Proposer, class Policy, class Length>
[[nodiscard]] status evaluate(Target& target,
                              Cache& cache,
                              Proposer& proposer,
                              Policy policy,
                              const Length& length,
                              std::span<const std::vector<token_id>> prompts,
                              const decode_config& cfg,
                              evaluation& out,
                              const std::function<void(const step_record&)>& on_round = {}) {
  out = evaluation{};
  status round_error{};
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    decode_config c = cfg;
    c.seed = cfg.seed + i;
    c.request_id = i;
    c.on_step = [&](const step_record& r) {
      if (const status s = out.add_round(r.drafted, r.accepted); !s.ok() && round_error.ok())
        round_error = s;
      if (cfg.on_step)
        cfg.on_step(r);
      if (on_round)
        on_round(r);
    };
    if constexpr (requires { proposer.set_seed(std::uint64_t{}); })
      proposer.set_seed(cfg.seed * 31 + i);
    if constexpr (requires { proposer.set_params(cfg.params); })
      proposer.set_params(cfg.params);
    speculative_decoder dec(target, cache, proposer, policy, length);
    decode_result r;
    if (const status s = dec.generate(prompts[i], c, r); !s.ok())
      return s;
    if (!round_error.ok())
      return round_error;
    ++out.prompts;
    out.tokens += static_cast<std::int64_t>(r.tokens.size());
    out.seconds += r.stats.seconds_total - r.stats.seconds_prefill;
    out.seconds_draft += r.stats.seconds_draft;
    out.seconds_verify += r.stats.seconds_verify;
  }
  return status{};
}

/// @brief The speed-up of the evaluated rounds over plain decoding on a cost model: tokens per
///        unit cost of the rounds, sum tau / sum cost(P_i), against plain decoding's 1 / cost(0).
///
/// `costs` is sched::step_costs: verify[t] the cost of scoring t + 1 tokens (a measured c(T) of
/// this backend, e.g. from sched::profile_verify_costs, or a step-time table of an accelerator),
/// plus the drafting cost per step and per drafted token in the same unit.
/// @param[in] e the evaluation
/// @param[in] costs the cost model
/// @return the projected speed-up; NaN without rounds, with an invalid cost table, or when a
///   round verified more drafts than the table covers
/// @par Complexity
/// O(longest proposal).
[[nodiscard]] inline double projected_speedup(const evaluation& e,
                                              const sched::step_costs& costs) noexcept {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (e.rounds.rounds() <= 0 || !costs.validate().ok())
    return nan;
  double total = 0.0;
  for (std::size_t k = 0; k < e.proposals.size(); ++k) {
    if (e.proposals[k] == 0)
      continue;
    if (static_cast<int>(k) > costs.max_draft())
      return nan;
    total += static_cast<double>(e.proposals[k]) * costs.cost(static_cast<int>(k));
  }
  return static_cast<double>(e.rounds.tau_total()) * costs.cost(0) / total;
}

} // namespace decode

SPECDEC_NAMESPACE_END
