// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief Measures the cost curve c(T) of scoring T tokens at once, the input of the cost-aware
///        draft-length controller (sched/draft_length.hpp).
///
/// The profile is taken in the process that decodes, on the machine and model it decodes with, at
/// start-up: costs are relative, so only their ratios matter, and the measurement is repeated with
/// the T values interleaved so that frequency drift or a noisy neighbour affects every T alike.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/kv/contiguous_cache.hpp>

#include <algorithm>
#include <chrono>
#include <span>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace sched {

/// @brief Median wall time in seconds of `reps` calls of `f` (after one warm-up call).
/// @par Complexity
/// reps + 1 calls of f, plus O(reps log reps).
/// @tparam F a callable taking no argument
/// @param[in] f the work to time
/// @param[in] reps timed calls, >= 1 (fewer count as 1)
/// @return the median in seconds
template <class F>
[[nodiscard]] double median_seconds(F&& f, int reps) {
  using clock = std::chrono::steady_clock;
  f();
  std::vector<double> t(static_cast<std::size_t>(std::max(1, reps)));
  for (double& x : t) {
    const auto a = clock::now();
    f();
    x = std::chrono::duration<double>(clock::now() - a).count();
  }
  std::nth_element(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(t.size() / 2), t.end());
  return t[t.size() / 2];
}

/// @brief Measures seconds[t] = time of scoring t + 1 tokens at once, t = 0 .. max_draft, at
///        the end of `prefix` (the prompt the decoder is about to continue) and, with a horizon,
///        also `horizon` tokens further on, keeping for each T the larger relative cost.
///
/// The prefix minus its last token is prefilled, then every measurement scores [last, last, ...]
/// (t + 1 copies) at position |prefix| - 1 and rolls the cache back. c(T) / c(1) grows with the
/// context (attention over the cached keys is a share of every row's cost that batching does not
/// amortise), so a curve taken at the prompt alone is optimistic for the rest of the decode; with
/// `horizon` > 0 the cache is then filled (with copies of the last token: costs do not depend on
/// token values) up to position min(|prefix| - 1 + horizon, capacity - max_draft - 1), the curve
/// is measured there too, and the result is seconds[t] = c_near(1) x max(c_near(t + 1) /
/// c_near(1), c_far(t + 1) / c_far(1)): the prompt's absolute scale, the worse shape. The cache
/// is left holding the prefix minus its last token.
/// @param reps rounds; each round measures every T once, in order, and the median per T is kept
/// @return errc::invalid_argument for an empty prefix, max_draft < 0, reps < 1 or horizon < 0;
///         errc::overflow when the prefix plus max_draft + 1 tokens do not fit the cache; the
///         target's or cache's first failure otherwise
/// @par Complexity
/// reps x (max_draft + 1) target calls of up to max_draft + 1 tokens per profiled position, plus
/// prefills of up to |prefix| - 1 + horizon tokens.
/// @param[in,out] target the model to time
/// @param[in,out] cache its KV cache (left holding the prefix minus its last token)
/// @param[in] prefix the context, at least one token
/// @param[in] max_draft largest draft length K; T runs over 1 .. K + 1
/// @param[out] seconds seconds[t] for t = 0 .. K
/// @param[in] horizon tokens the decode may add after the prefix (0: profile at the prompt only)
template <target_model Target, kv::kv_cache Cache>
[[nodiscard]] status profile_verify_costs(Target& target,
                                          Cache& cache,
                                          std::span<const token_id> prefix,
                                          int max_draft,
                                          int reps,
                                          std::vector<double>& seconds,
                                          index_t horizon = 0) {
  using clock = std::chrono::steady_clock;
  if (prefix.empty() || max_draft < 0 || reps < 1 || horizon < 0)
    return status{errc::invalid_argument};
  const index_t n = static_cast<index_t>(prefix.size());
  if (n + max_draft > cache.capacity())
    return status{errc::overflow};
  const index_t vocab = target.vocab_size();
  constexpr index_t chunk = 64;
  const index_t far = std::min<index_t>(n - 1 + horizon, cache.capacity() - max_draft - 1);
  const index_t rows = std::max<index_t>({std::min<index_t>(std::max<index_t>(n, far), chunk),
                                          static_cast<index_t>(max_draft) + 1,
                                          1});
  std::vector<float> logits(static_cast<std::size_t>(rows * vocab));
  // Fills the cache with positions [from, to): the prefix, then copies of its last token.
  std::vector<token_id> fill;
  const auto prefill = [&](index_t from, index_t to) -> status {
    for (index_t a = from; a < to; a += chunk) {
      const index_t len = std::min<index_t>(chunk, to - a);
      fill.resize(static_cast<std::size_t>(len));
      for (index_t j = 0; j < len; ++j)
        fill[static_cast<std::size_t>(j)] =
            a + j < n ? prefix[static_cast<std::size_t>(a + j)] : prefix.back();
      const score_request pre{0, {fill.data(), len}, a};
      if (const status s = target.score(pre, {logits.data(), len, vocab, vocab}); !s.ok())
        return s;
    }
    return status{};
  };
  const std::vector<token_id> tokens(static_cast<std::size_t>(max_draft) + 1, prefix.back());
  // Median time per T of scoring at position pos (the cache holding [0, pos)).
  const auto measure = [&](index_t pos, std::vector<double>& out) -> status {
    std::vector<std::vector<double>> samples(static_cast<std::size_t>(max_draft) + 1);
    for (int round = -1; round < reps; ++round) { // round -1 warms up
      for (int t = 0; t <= max_draft; ++t) {
        const score_request req{0, {tokens.data(), t + 1}, pos};
        const auto a = clock::now();
        const status s = target.score(req, {logits.data(), t + 1, vocab, vocab});
        const double dt = std::chrono::duration<double>(clock::now() - a).count();
        if (!s.ok())
          return s;
        if (const status r = cache.rollback(pos); !r.ok())
          return r;
        if (round >= 0)
          samples[static_cast<std::size_t>(t)].push_back(dt);
      }
    }
    out.assign(samples.size(), 0.0);
    for (std::size_t t = 0; t < samples.size(); ++t) {
      std::vector<double>& v = samples[t];
      std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
      out[t] = v[v.size() / 2];
    }
    return status{};
  };

  if (const status s = cache.rollback(0); !s.ok())
    return s;
  if (const status s = prefill(0, n - 1); !s.ok())
    return s;
  if (const status s = measure(n - 1, seconds); !s.ok())
    return s;
  if (far > n - 1) {
    std::vector<double> far_seconds;
    if (const status s = prefill(n - 1, far); !s.ok())
      return s;
    if (const status s = measure(far, far_seconds); !s.ok())
      return s;
    if (const status s = cache.rollback(n - 1); !s.ok())
      return s;
    for (std::size_t t = 1; t < seconds.size(); ++t)
      seconds[t] = std::max(seconds[t], seconds[0] * far_seconds[t] / far_seconds[0]);
  }
  return status{};
}

} // namespace sched

SPECDEC_NAMESPACE_END
