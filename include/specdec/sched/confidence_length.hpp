// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Draft-length policies for drafters that score their own drafts (a
///        confident_proposer such as propose::semi_ar_drafter): the static threshold cut
///        and Algorithm 1 of the prefix scheduler for one sequence.
///
/// Both are non-anticipating: whether draft k is verified depends only on c_1..c_k, which are
/// functions of the drafts before k, so verification stays lossless (spec section 8.4). They
/// plug into decode::speculative_decoder as its `Length` parameter.
#include <specdec/config.hpp>

#include <specdec/calib/threshold.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/sched/prefix_scheduler.hpp>

#include <algorithm>
#include <array>
#include <concepts>
#include <span>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

/// @brief A draft-length policy that cuts a scored draft: `choose_with_confidence(c, available)`
///        returns a length in [0, available] and must be non-anticipating (whether draft k is kept
///        may depend on c_1..c_k only, never on c_{k+1}..), which keeps verification lossless.
///        The proposer it serves is a confident_proposer (propose/concepts.hpp).
/// @tparam L the candidate policy type
template <class L>
concept confidence_length_policy = requires(L& l, std::span<const double> c, int n) {
  { l.choose_with_confidence(c, n) } -> std::convertible_to<int>;
};

namespace sched {

/// @brief The static threshold cut (DeepSpec's eval, paper Fig. 5): keep drafts up to, not
///        including, the first position whose conditional confidence is below `theta`.
struct threshold_length {
  float theta = 0.0f; ///< threshold in [0, 1]; theta <= 0 keeps every draft

  /// @brief The kept length: the 0-based index of the first c_k < theta, or `available` when there
  ///        is none (or theta <= 0). A NaN confidence counts as below the threshold.
  /// @par Complexity
  /// O(available).
  /// @param[in] c conditional confidences of the draft, at least `available` of them
  /// @param[in] available drafts offered
  /// @return the length in [0, available]
  [[nodiscard]] int choose_with_confidence(std::span<const double> c,
                                           int available) const noexcept {
    const int n = std::clamp(available, 0, static_cast<int>(c.size()));
    return calib::threshold_cut(c.first(static_cast<std::size_t>(n)), static_cast<double>(theta));
  }
};

/// @brief Algorithm 1 of the prefix scheduler (schedule_mode::early_stop) for one sequence: the
///        longest prefix along which the expected tokens per second tau * SPS(1 + l) keep rising.
///
/// With a batch of one this is the throughput-optimal cut of a single decoder (the steps-per-second
/// table is the decoder's own, e.g. sched::profile_sps of its backend). An engine scheduling many
/// sequences in one forward calls prefix_scheduler on all of them instead.
class scheduled_length {
public:
  /// @brief A policy over a profiled step curve (validated at use: an invalid table keeps no
  /// draft).
  /// @param[in] table SPS(B) of the target, B = 1 + drafts
  explicit scheduled_length(sps_table table)
      : table_(std::move(table)) {}

  /// @brief The step curve. O(1).
  /// @return the table
  [[nodiscard]] const sps_table& table() const noexcept {
    return table_;
  }

  /// @brief The prefix length Algorithm 1 admits for the confidences `c[0 .. available)`.
  ///
  /// Values outside [0, 1] or NaN are clamped (NaN as 0), so a bad confidence can only shorten the
  /// draft; an invalid table yields 0 (plain decoding).
  /// @par Complexity
  /// O(available log available) (the scheduler's heap on one request is a sorted walk).
  /// @param[in] c conditional confidences of the draft
  /// @param[in] available drafts offered
  /// @return the length in [0, available]
  [[nodiscard]] int choose_with_confidence(std::span<const double> c, int available) {
    const int n = std::clamp(available, 0, static_cast<int>(c.size()));
    c_.resize(static_cast<std::size_t>(n));
    for (int k = 0; k < n; ++k) {
      const double v = c[static_cast<std::size_t>(k)];
      c_[static_cast<std::size_t>(k)] = v >= 0.0 ? std::min(v, 1.0) : 0.0;
    }
    const std::array<index_t, 2> offsets{0, static_cast<index_t>(n)};
    std::array<index_t, 1> length{0};
    if (!scheduler_.schedule(c_, offsets, table_, length, &last_).ok())
      return 0;
    return static_cast<int>(length[0]);
  }

  /// @brief What the last choice expected (tau, SPS-weighted throughput, batch). O(1).
  /// @return the last schedule_result
  [[nodiscard]] const schedule_result& last() const noexcept {
    return last_;
  }

private:
  sps_table table_;
  prefix_scheduler scheduler_;
  std::vector<double> c_;
  schedule_result last_{};
};

} // namespace sched

SPECDEC_NAMESPACE_END
