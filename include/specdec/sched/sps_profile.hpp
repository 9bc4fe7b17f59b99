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

/// @brief Measures SPS(B) for the given batch sizes: one warm-up round, then `reps` rounds that
///        each call `step(B)` once for every B in order; SPS(B) = 1 / (median seconds of B).
///
/// `step(B)` must run one target forward step on a verification batch of B tokens (for instance
/// R requests with B - R drafts between them, or one request scoring B tokens) and return its
/// status. A median below one nanosecond (a clock too coarse for the step) counts as one
/// nanosecond.
/// @tparam Step callable as `status(index_t batch)`
/// @par Complexity
/// (reps + 1) x batches.size() calls of step, plus O(reps log reps) per batch size.
/// @param[in,out] step the forward step to time
/// @param[in] batches batch sizes to profile, strictly increasing, >= 1
/// @param[in] reps timed rounds, >= 1
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
  std::vector<sps_point> points(batches.size());
  const auto half = static_cast<std::ptrdiff_t>(reps / 2);
  for (std::size_t i = 0; i < batches.size(); ++i) {
    const auto first = samples.begin() + static_cast<std::ptrdiff_t>(i) * reps;
    std::nth_element(first, first + half, first + reps);
    const double median = std::max(first[half], 1e-9);
    points[i] = sps_point{batches[i], 1.0 / median};
  }
  sps_table t(points);
  if (const status s = t.validate(); !s.ok())
    return s;
  out = std::move(t);
  return status{};
}

} // namespace sched

SPECDEC_NAMESPACE_END
