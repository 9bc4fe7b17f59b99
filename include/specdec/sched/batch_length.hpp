// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Draft-length policies of a batch of requests decoded together (decode::batch_decoder):
///        every step, one call chooses the verification length of every request from what each
///        one offers (its draft and, for a confident_proposer, the calibrated conditional
///        confidences c_1..c_g of its drafts).
///
/// The policies: a fixed gamma, the static threshold cut theta, DSpark's Algorithm 1 over the
/// backend's profiled SPS(B) (prefix_scheduler, early stop or global search), plain top-K, and the
/// asynchronous top-K of spec 8.5 (the step's budget K from the confidences of two steps earlier,
/// the per-request allocation from the current ones). Every one is non-anticipating per request
/// (whether draft k of a request is verified depends on c_1..c_k of the batch's requests, never on
/// an outcome), which keeps verification lossless.

#include <specdec/config.hpp>

#include <specdec/calib/threshold.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/sched/prefix_scheduler.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <span>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace sched {

/// @brief What the requests of one step offer: R requests, request r offers `offered[r]` drafts
///        and, when the proposer reports them, the conditionals
///        `confidences[offsets[r] .. offsets[r+1])` of its first drafts (at most offered[r] of
///        them; none when the proposer has no confidence head).
struct batch_length_input {
  std::span<const index_t> offered;    ///< @shape{[R]} drafts offered, >= 0
  std::span<const double> confidences; ///< ragged by offsets; each in [0, 1]
  std::span<const index_t> offsets;    ///< @shape{[R + 1]}, offsets[0] = 0, non-decreasing
};

/// @brief A batch draft-length policy: `status choose(const batch_length_input&,
///        std::span<index_t> lengths)` writes R lengths, lengths[r] in [0, offered[r]] (and, for a
///        policy with `needs_confidences`, at most the number of request r's confidences);
///        `index_t ask(index_t available) const` says how many drafts to ask a proposer for when
///        it may draft up to `available` (a fixed gamma asks for no more than gamma); the static
///        `needs_confidences` says whether the policy reads confidences (then the proposer must
///        be a confident_proposer).
/// @tparam P the candidate policy type
template <class P>
concept batch_length_policy =
    requires(P& p, const P& cp, const batch_length_input& in, std::span<index_t> lengths) {
  { p.choose(in, lengths) } -> std::same_as<status>;
  { cp.ask(index_t{}) } -> std::convertible_to<index_t>;
  { P::needs_confidences } -> std::convertible_to<bool>;
};

namespace detail {

/// Checks the common shape of a batch_length_input against R lengths.
[[nodiscard]] inline status check_batch_input(const batch_length_input& in,
                                              std::span<index_t> lengths) noexcept {
  const std::size_t r = lengths.size();
  if (in.offered.size() != r || in.offsets.size() != r + 1 || in.offsets[0] != 0
      || in.offsets[r] != static_cast<index_t>(in.confidences.size()))
    return status{errc::shape_mismatch};
  for (std::size_t i = 0; i < r; ++i)
    if (in.offered[i] < 0 || in.offsets[i + 1] < in.offsets[i])
      return status{errc::shape_mismatch};
  return status{};
}

} // namespace detail

/// @brief Every request verifies min(gamma, offered) drafts (gamma = 0: plain decoding).
struct batch_fixed_length {
  static constexpr bool needs_confidences = false; ///< reads no confidence
  index_t gamma = 5;                               ///< drafts per request, >= 0

  /// @brief Drafts to ask for: min(gamma, available). O(1).
  /// @param[in] available drafts the request may verify
  /// @return the number to ask the proposer for
  [[nodiscard]] index_t ask(index_t available) const noexcept {
    return std::clamp<index_t>(gamma, 0, std::max<index_t>(available, 0));
  }
  /// @brief lengths[r] = min(gamma, offered[r]).
  /// @return errc::shape_mismatch for a malformed input (lengths all 0 then)
  /// @par Complexity
  /// O(R).
  /// @param[in] in what the requests offer
  /// @param[out] lengths R lengths
  [[nodiscard]] status choose(const batch_length_input& in, std::span<index_t> lengths) const {
    std::fill(lengths.begin(), lengths.end(), index_t{0});
    if (const status s = detail::check_batch_input(in, lengths); !s.ok())
      return s;
    for (std::size_t r = 0; r < lengths.size(); ++r)
      lengths[r] = ask(in.offered[r]);
    return status{};
  }
};

/// @brief The static threshold cut per request (calib::threshold_cut): drafts up to, not
///        including, the first conditional below theta.
struct batch_threshold_length {
  static constexpr bool needs_confidences = true; ///< reads the conditionals
  double theta = 0.5;                             ///< threshold in [0, 1]

  /// @brief Drafts to ask for: all available. O(1).
  /// @param[in] available drafts the request may verify
  /// @return available
  [[nodiscard]] index_t ask(index_t available) const noexcept {
    return std::max<index_t>(available, 0);
  }
  /// @brief lengths[r] = the threshold cut of request r's confidences (at most offered[r]).
  /// @return errc::shape_mismatch for a malformed input (lengths all 0 then)
  /// @par Complexity
  /// O(R + number of confidences).
  /// @param[in] in what the requests offer
  /// @param[out] lengths R lengths
  [[nodiscard]] status choose(const batch_length_input& in, std::span<index_t> lengths) const {
    std::fill(lengths.begin(), lengths.end(), index_t{0});
    if (const status s = detail::check_batch_input(in, lengths); !s.ok())
      return s;
    for (std::size_t r = 0; r < lengths.size(); ++r) {
      const index_t n = std::min(in.offered[r], in.offsets[r + 1] - in.offsets[r]);
      lengths[r] =
          calib::threshold_cut(in.confidences.subspan(static_cast<std::size_t>(in.offsets[r]),
                                                      static_cast<std::size_t>(n)),
                               theta);
    }
    return status{};
  }
};

namespace detail {

/// Copies the usable conditionals (at most offered[r] per request, clamped to [0, 1], NaN as 0)
/// into c / offsets for the prefix scheduler.
inline void usable_confidences(const batch_length_input& in,
                               std::vector<double>& c,
                               std::vector<index_t>& offsets) {
  const std::size_t r_count = in.offered.size();
  c.clear();
  offsets.assign(r_count + 1, 0);
  for (std::size_t r = 0; r < r_count; ++r) {
    const index_t n = std::min(in.offered[r], in.offsets[r + 1] - in.offsets[r]);
    for (index_t k = 0; k < n; ++k) {
      const double v = in.confidences[static_cast<std::size_t>(in.offsets[r] + k)];
      c.push_back(v >= 0.0 ? std::min(v, 1.0) : 0.0);
    }
    offsets[r + 1] = static_cast<index_t>(c.size());
  }
}

} // namespace detail

/// @brief The step curve of a step that also pays `seconds_per_request` for each of its R
///        requests (drafting, sampling, bookkeeping: costs that do not grow with the verified
///        tokens): point (b, 1 / (R * seconds_per_request + 1 / SPS(b))) for every point of
///        `table`. With 0 it is `table` itself.
/// @param[in] table SPS(B) of the target's forward step
/// @param[in] requests R, >= 0
/// @param[in] seconds_per_request the per-request cost of a step, >= 0 and finite
/// @param[out] out the step curve of the whole step
/// @par Complexity
/// O(points of table).
inline void whole_step_table(const sps_table& table,
                             index_t requests,
                             double seconds_per_request,
                             sps_table& out) {
  if (!(seconds_per_request > 0.0) || requests <= 0) {
    out = table;
    return;
  }
  std::vector<sps_point> pts;
  pts.reserve(static_cast<std::size_t>(table.size()));
  const double fixed = static_cast<double>(requests) * seconds_per_request;
  for (std::size_t i = 0; i < table.batches().size(); ++i) {
    const double v = table.values()[i];
    pts.push_back({table.batches()[i], v > 0.0 ? 1.0 / (fixed + 1.0 / v) : 0.0});
  }
  out = sps_table(pts);
}

namespace detail {

/// What the two scheduler-driven policies share: the step curve, the per-request step cost, the
/// checks, the usable conditionals and the whole-step table of the current step.
class scheduled_batch_base {
public:
  static constexpr bool needs_confidences = true; ///< reads the conditionals

  /// @brief Drafts to ask for: all available. O(1).
  /// @param[in] available drafts the request may verify
  /// @return available
  [[nodiscard]] index_t ask(index_t available) const noexcept {
    return std::max<index_t>(available, 0);
  }

protected:
  scheduled_batch_base(sps_table table, double seconds_per_request)
      : table_(std::move(table))
      , per_request_(seconds_per_request) {}

  /// Zeroes the lengths, checks the input, then fills c_, offsets_ and step_ for this step.
  [[nodiscard]] status prepare(const batch_length_input& in, std::span<index_t> lengths) {
    std::fill(lengths.begin(), lengths.end(), index_t{0});
    if (const status s = check_batch_input(in, lengths); !s.ok())
      return s;
    usable_confidences(in, c_, offsets_);
    whole_step_table(table_, static_cast<index_t>(lengths.size()), per_request_, step_);
    return status{};
  }

  sps_table table_;              ///< SPS(B) of the target
  double per_request_ = 0.0;     ///< per-request step cost outside the table, seconds
  sps_table step_;               ///< the whole step's curve at this step's R
  std::vector<double> c_;        ///< usable conditionals
  std::vector<index_t> offsets_; ///< their offsets
  schedule_result last_{};       ///< what the last step expected
};

} // namespace detail

/// @brief DSpark's prefix scheduler over the batch (Algorithm 1 with early stop, or the global
///        search) against a profiled SPS(B) table of the backend (B = requests + verified drafts).
///
/// The paper's SPS(B) is the rate of whole engine steps. Where a step also pays a cost per request
/// that the target's profile does not hold (a drafter run once per request, on the host), give it
/// as `seconds_per_request`: each step then schedules against whole_step_table(table, R, that),
/// so Algorithm 1 weighs a verified token against the real step time. 0 (the default) schedules
/// against the table as given.
class batch_prefix_schedule : public detail::scheduled_batch_base {
public:
  /// @brief A policy over a step curve (validated at use).
  /// @param[in] table SPS(B) of the backend
  /// @param[in] mode early_stop (Algorithm 1, default) or global
  /// @param[in] seconds_per_request the per-request cost of a step outside the table (>= 0)
  explicit batch_prefix_schedule(sps_table table,
                                 schedule_mode mode = schedule_mode::early_stop,
                                 double seconds_per_request = 0.0)
      : scheduled_batch_base(std::move(table), seconds_per_request)
      , mode_(mode) {}

  /// @brief Schedules the step (prefix_scheduler::schedule on the usable conditionals: at most
  ///        offered[r] per request, clamped to [0, 1], NaN as 0).
  /// @return errc::shape_mismatch for a malformed input, the scheduler's errors (an invalid
  ///         table: errc::invalid_value); lengths all 0 on error
  /// @par Complexity
  /// That of prefix_scheduler::schedule.
  /// @param[in] in what the requests offer
  /// @param[out] lengths R lengths
  [[nodiscard]] status choose(const batch_length_input& in, std::span<index_t> lengths) {
    if (const status s = prepare(in, lengths); !s.ok())
      return s;
    return scheduler_.schedule(c_, offsets_, step_, lengths, &last_, mode_);
  }
  /// @brief What the last step expected. O(1).
  /// @return the last schedule_result
  [[nodiscard]] const schedule_result& last() const noexcept {
    return last_;
  }

private:
  schedule_mode mode_;
  prefix_scheduler scheduler_;
};

/// @brief The asynchronous top-K of spec 8.5 over the batch (async_top_k_scheduler): the budget
///        K_t comes from the global search on the confidences of step t - 2, the allocation among
///        the requests from the current confidences (Algorithm 1 for the first two steps).
class batch_async_top_k : public detail::scheduled_batch_base {
public:
  /// @brief A policy over a step curve (validated at use).
  /// @param[in] table SPS(B) of the backend
  /// @param[in] seconds_per_request the per-request cost of a step outside the table (>= 0; see
  ///            batch_prefix_schedule)
  explicit batch_async_top_k(sps_table table, double seconds_per_request = 0.0)
      : scheduled_batch_base(std::move(table), seconds_per_request) {}

  /// @brief Schedules the step (see the class comment); the usable conditionals as in
  ///        batch_prefix_schedule.
  /// @return errc::shape_mismatch for a malformed input, or the scheduler's errors; lengths all
  ///         0 on error (and nothing recorded)
  /// @par Complexity
  /// That of async_top_k_scheduler::schedule.
  /// @param[in] in what the requests offer
  /// @param[out] lengths R lengths
  [[nodiscard]] status choose(const batch_length_input& in, std::span<index_t> lengths) {
    if (const status s = prepare(in, lengths); !s.ok())
      return s;
    return scheduler_.schedule(c_, offsets_, step_, lengths, &last_);
  }
  /// @brief The budgets K_t recorded so far (see async_top_k_scheduler). O(1).
  /// @return one budget per step
  [[nodiscard]] std::span<const index_t> capacity_history() const noexcept {
    return scheduler_.capacity_history();
  }

private:
  async_top_k_scheduler scheduler_;
};

static_assert(batch_length_policy<batch_fixed_length>);
static_assert(batch_length_policy<batch_threshold_length>);
static_assert(batch_length_policy<batch_prefix_schedule>);
static_assert(batch_length_policy<batch_async_top_k>);

} // namespace sched

SPECDEC_NAMESPACE_END
