// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief Profiles the step curve SPS(B) (target forward steps per second at a verification batch
///        of B tokens) that the prefix scheduler (sched/prefix_scheduler.hpp) maximises against.
///
/// Like sched/cost_profile.hpp, the profile is taken once at engine start, in the process that
/// serves, and the batch sizes are interleaved round by round so that frequency drift or a noisy
/// neighbour hits every B alike. sps_table_from_costs turns an existing cost vector (for instance
/// cost_profile.hpp's seconds per verification of T tokens) into a table.
///
/// Robustness to noise (profile_sps, sps_table_from_samples): noise only ever adds time, so each
/// batch size keeps the best (smallest) of its repeats; then the step times are made
/// non-decreasing in B by a running maximum, step(B_i) = max over i' <= i of best(B_i')
/// (monotone_step_seconds), so that SPS(B) is non-increasing. A larger batch does at least the
/// work of a smaller one, so a B that measured faster than a smaller B is noise; left in the table
/// it would make Algorithm 1 (sched/prefix_scheduler.hpp) admit drafts for a speed-up that does not
/// exist (B = 2 measured faster than B = 1 would make the second token look free).

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/sched/prefix_scheduler.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <limits>
#include <span>
#include <utility>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace sched {

/// @brief Builds an sps_table from step costs: point i is (first_batch + i, 1 / seconds[i]).
///
/// For cost_profile.hpp's `profile_verify_costs` output (seconds[t] for t + 1 tokens of one
/// request) pass first_batch = 1.
/// @par Complexity
/// O(n).
/// @param[in] seconds seconds per forward step, one per batch size, each finite and > 0
/// @param[out] out the table (assigned only on success)
/// @param[in] first_batch batch size of seconds[0], >= 1
/// @return errc::invalid_argument for an empty vector, first_batch < 1 or a batch past index_t;
///         errc::invalid_value for a cost that is NaN, infinite, zero or negative, or so small
///         that 1 / seconds overflows; ok otherwise
[[nodiscard]] inline status
sps_table_from_costs(std::span<const double> seconds, sps_table& out, index_t first_batch = 1) {
  if (seconds.empty() || first_batch < 1
      || static_cast<std::size_t>(std::numeric_limits<index_t>::max() - first_batch)
             < seconds.size() - 1)
    return status{errc::invalid_argument};
  std::vector<sps_point> points;
  points.reserve(seconds.size());
  for (std::size_t i = 0; i < seconds.size(); ++i) {
    const double s = seconds[i];
    if (!(s > 0.0) || !(s <= std::numeric_limits<double>::max()))
      return status{errc::invalid_value};
    points.push_back(sps_point{first_batch + static_cast<index_t>(i), 1.0 / s});
  }
  sps_table t(points);
  if (const status s = t.validate(); !s.ok())
    return s;
  out = std::move(t);
  return status{};
}

/// @brief Makes step times non-decreasing in place: seconds[i] = max(seconds[0 .. i]) (a running
///        maximum; the smallest non-decreasing sequence that is >= the input everywhere).
///
/// With seconds[i] the time of a forward step at the i-th of increasing batch sizes, the result
/// gives an SPS = 1 / seconds that never rises with the batch.
/// @par Complexity
/// O(n).
/// @param[in,out] seconds step times in order of increasing batch size (NaN is left in place and
///                does not propagate: a NaN never compares greater)
inline void monotone_step_seconds(std::span<double> seconds) noexcept {
  for (std::size_t i = 1; i < seconds.size(); ++i)
    if (seconds[i - 1] > seconds[i])
      seconds[i] = seconds[i - 1];
}

/// @brief Builds a step curve from repeated timings: per batch size the best (smallest) of its
///        samples, floored at one nanosecond, then monotone_step_seconds, then SPS = 1 / seconds.
///
/// This is profile_sps's rule, separate from the clock so that it can be fed any timings.
/// @par Complexity
/// O(batches.size() x reps).
/// @param[in] batches batch sizes, strictly increasing, >= 1
/// @param[in] samples seconds, batches.size() rows of `reps` samples (row-major: the samples of
///            batches[i] are samples[i reps .. (i + 1) reps)), each finite and >= 0
/// @param[in] reps samples per batch size, >= 1
/// @param[out] out the table (assigned only on success)
/// @return errc::invalid_argument for no batch sizes, a batch < 1, batches not strictly increasing,
///         reps < 1 or samples.size() != batches.size() x reps; errc::invalid_value for a sample
///         that is NaN, infinite or negative; ok otherwise
[[nodiscard]] inline status sps_table_from_samples(std::span<const index_t> batches,
                                                   std::span<const double> samples,
                                                   int reps,
                                                   sps_table& out) {
  if (batches.empty() || reps < 1
      || samples.size() / static_cast<std::size_t>(reps) != batches.size()
      || samples.size() % static_cast<std::size_t>(reps) != 0)
    return status{errc::invalid_argument};
  for (std::size_t i = 0; i < batches.size(); ++i)
    if (batches[i] < 1 || (i > 0 && batches[i] <= batches[i - 1]))
      return status{errc::invalid_argument};
  for (const double x : samples)
    if (!(x >= 0.0 && x <= std::numeric_limits<double>::max()))
      return status{errc::invalid_value};
  const auto n = static_cast<std::size_t>(reps);
  std::vector<double> best(batches.size());
  for (std::size_t i = 0; i < batches.size(); ++i) {
    const auto first = samples.begin() + static_cast<std::ptrdiff_t>(i * n);
    best[i] = std::max(*std::min_element(first, first + reps), 1e-9);
  }
  monotone_step_seconds(best);
  std::vector<sps_point> points(batches.size());
  for (std::size_t i = 0; i < batches.size(); ++i)
    points[i] = sps_point{batches[i], 1.0 / best[i]};
  sps_table t(points);
  if (const status s = t.validate(); !s.ok())
    return s;
  out = std::move(t);
  return status{};
}

/// @brief Measures SPS(B) for the given batch sizes: one warm-up round, then `reps` rounds that
///        each call `step(B)` once for every B in order; the timings go through
///        sps_table_from_samples (best of the reps per B, step time made non-decreasing in B).
///
/// `step(B)` must run one target forward step on a verification batch of B tokens (for instance
/// R requests with B - R drafts between them, or one request scoring B tokens) and return its
/// status. A best time below one nanosecond (a clock too coarse for the step) counts as one
/// nanosecond.
/// @tparam Step callable as `status(index_t batch)`
/// @par Complexity
/// (reps + 1) x batches.size() calls of step, plus O(reps x batches.size()).
/// @param[in,out] step the forward step to time
/// @param[in] batches batch sizes to profile, strictly increasing, >= 1
/// @param[in] reps timed rounds, >= 1 (more rounds: a best time closer to the noiseless one)
/// @param[out] out the table (assigned only on success)
/// @return errc::invalid_argument for no batch sizes, a batch < 1, batches not strictly increasing
///         or reps < 1; the first failing status of `step`; ok otherwise
template <class Step>
  requires std::invocable<Step&, index_t>
[[nodiscard]] status
profile_sps(Step&& step, std::span<const index_t> batches, int reps, sps_table& out) {
  using clock = std::chrono::steady_clock;
  if (batches.empty() || reps < 1)
    return status{errc::invalid_argument};
  for (std::size_t i = 0; i < batches.size(); ++i)
    if (batches[i] < 1 || (i > 0 && batches[i] <= batches[i - 1]))
      return status{errc::invalid_argument};
  std::vector<double> samples(batches.size() * static_cast<std::size_t>(reps));
  for (int round = -1; round < reps; ++round) { // round -1 warms up
    for (std::size_t i = 0; i < batches.size(); ++i) {
      const auto t0 = clock::now();
      const status s = step(batches[i]);
      const double dt = std::chrono::duration<double>(clock::now() - t0).count();
      if (!s.ok())
        return s;
      if (round >= 0)
        samples[i * static_cast<std::size_t>(reps) + static_cast<std::size_t>(round)] = dt;
    }
  }
  return sps_table_from_samples(batches, samples, reps, out);
}

} // namespace sched

SPECDEC_NAMESPACE_END
