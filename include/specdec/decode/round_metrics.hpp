// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief Acceptance metrics of speculative decoding rounds as the DSpark reference evaluator
///        reports them (specification section 4), and the analytic and training-side quantities
///        of sections 4 and 10: analytic acceptance c*, expected round length, position weights,
///        BCE with logits and the L1 distance.
///
/// A *round* proposes P drafts (the effective proposal length), accepts n of them and commits
/// tau tokens: tau = n + 1 (the bonus token included), or tau = n when a stop token among the
/// accepted drafts ended the round (no bonus token, spec 3.4). round_metrics aggregates rounds:
///
/// - tau_mean = sum tau / R (the paper's "accepted length", bonus included);
/// - draft_tokens_per_proposal = sum P / R;
/// - verify_rate = sum tau / (sum P + R) (committed tokens per verified target position);
/// - accept_rate_at(i) = #{n > i} / #{P > i}, i = 0..gamma-1 (the repo's unconditional prefix
///   survival);
/// - conditional_acceptance(k) = #{n >= k} / #{n >= k-1 and P >= k}, k = 1..gamma (the paper's
///   Fig. 2, acceptance of draft k given that drafts 1..k-1 were accepted).
///
/// Undefined ratios (a zero denominator) are NaN. decode_stats (decode/stats.hpp) keeps the
/// decoder's own counters; this file is the evaluator's definition, EOS rule included.

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace decode {

/// Largest proposal length a round_record may carry (rounds are short; this bounds the memory
/// of round_metrics' per-position counters).
inline constexpr index_t max_round_proposal = index_t{1} << 16;

/// @brief The outcome of one verification round.
struct round_record {
  index_t proposed = 0; ///< P: drafts sent for verification (effective proposal length)
  index_t accepted = 0; ///< n: drafts accepted, in [0, P]
  index_t tau = 0;      ///< tokens committed: n + 1, or n for an EOS-terminated round

  /// @brief True when the round was ended by a stop token among its accepted drafts. O(1).
  /// @return tau == accepted (no bonus token)
  [[nodiscard]] constexpr bool terminated() const noexcept {
    return tau == accepted;
  }
  /// @brief Checks the record's consistency.
  /// @return ok; errc::invalid_argument when P < 0, n is outside [0, P], or tau is neither n + 1
  ///         nor n with n >= 1 (a terminated round ends on an accepted stop token, so n >= 1);
  ///         errc::overflow when P > max_round_proposal
  /// @par Complexity
  /// O(1).
  [[nodiscard]] constexpr status validate() const noexcept {
    if (proposed < 0 || accepted < 0 || accepted > proposed)
      return status{errc::invalid_argument};
    if (proposed > max_round_proposal)
      return status{errc::overflow};
    if (tau != accepted + 1 && !(tau == accepted && accepted >= 1))
      return status{errc::invalid_argument};
    return status{};
  }
};

/// @brief Builds the record of a round from its proposal length, accepted count and whether a
///        stop token among the accepted drafts ended it (spec 3.4: then tau = n, else n + 1).
/// @param[in] proposed P, the effective proposal length (after an EOS cut: the stop token's
///            1-based index)
/// @param[in] accepted n, drafts accepted (after an EOS cut: up to and including the stop token)
/// @param[in] terminated whether the round ended on an accepted stop token
/// @return {P, n, terminated ? n : n + 1}; not validated (see round_record::validate())
/// @par Complexity
/// O(1).
[[nodiscard]] constexpr round_record
make_round_record(index_t proposed, index_t accepted, bool terminated) noexcept {
  return round_record{proposed, accepted, terminated ? accepted : accepted + 1};
}

/// @brief Aggregates round records into the evaluator's acceptance metrics (see the file
///        comment). Merge partial aggregates with operator+=.
class round_metrics {
public:
  /// @brief Records one round.
  /// @param[in] r the round
  /// @return ok, or the error of r.validate() (nothing changes on error)
  /// @par Complexity
  /// O(P) time (amortised); grows the per-position counters to the longest P seen.
  [[nodiscard]] status add(const round_record& r) {
    const status s = r.validate();
    if (!s.ok())
      return s;
    const std::size_t p = static_cast<std::size_t>(r.proposed);
    const std::size_t n = static_cast<std::size_t>(r.accepted);
    if (offered_.size() < p) {
      offered_.resize(p, 0);
      survived_.resize(p, 0);
      reached_.resize(p, 0);
    }
    ++rounds_;
    if (r.terminated())
      ++terminated_;
    tau_total_ += r.tau;
    proposed_total_ += r.proposed;
    accepted_total_ += r.accepted;
    for (std::size_t i = 0; i < p; ++i)
      ++offered_[i]; // P > i
    for (std::size_t i = 0; i < n; ++i)
      ++survived_[i]; // n > i, i.e. n >= i + 1
    const std::size_t reach = n + 1 < p ? n + 1 : p;
    for (std::size_t i = 0; i < reach; ++i)
      ++reached_[i]; // k = i + 1 with n >= k - 1 and P >= k
    return status{};
  }

  /// @brief Records one round given as (P, n, terminated); see make_round_record().
  /// @param[in] proposed P, the effective proposal length
  /// @param[in] accepted n, drafts accepted
  /// @param[in] terminated whether the round ended on an accepted stop token
  /// @return as add(const round_record&)
  /// @par Complexity
  /// O(P) time (amortised).
  [[nodiscard]] status add(index_t proposed, index_t accepted, bool terminated) {
    return add(make_round_record(proposed, accepted, terminated));
  }

  /// @brief Adds another aggregate's rounds.
  /// @param[in] o the aggregate to add
  /// @return *this
  /// @par Complexity
  /// O(longest P).
  round_metrics& operator+=(const round_metrics& o) {
    if (offered_.size() < o.offered_.size()) {
      offered_.resize(o.offered_.size(), 0);
      survived_.resize(o.offered_.size(), 0);
      reached_.resize(o.offered_.size(), 0);
    }
    for (std::size_t i = 0; i < o.offered_.size(); ++i) {
      offered_[i] += o.offered_[i];
      survived_[i] += o.survived_[i];
      reached_[i] += o.reached_[i];
    }
    rounds_ += o.rounds_;
    terminated_ += o.terminated_;
    tau_total_ += o.tau_total_;
    proposed_total_ += o.proposed_total_;
    accepted_total_ += o.accepted_total_;
    return *this;
  }

  /// @brief Forgets every round. O(1).
  void reset() noexcept {
    *this = round_metrics{};
  }

  /// @brief Rounds recorded, R. O(1).
  /// @return R
  [[nodiscard]] std::int64_t rounds() const noexcept {
    return rounds_;
  }
  /// @brief Rounds ended by an accepted stop token (tau = n). O(1).
  /// @return the count
  [[nodiscard]] std::int64_t terminated_rounds() const noexcept {
    return terminated_;
  }
  /// @brief Tokens committed over all rounds, sum tau. O(1).
  /// @return sum tau
  [[nodiscard]] std::int64_t tau_total() const noexcept {
    return tau_total_;
  }
  /// @brief Drafts verified over all rounds, sum P. O(1).
  /// @return sum P
  [[nodiscard]] std::int64_t proposed_total() const noexcept {
    return proposed_total_;
  }
  /// @brief Drafts accepted over all rounds, sum n. O(1).
  /// @return sum n
  [[nodiscard]] std::int64_t accepted_total() const noexcept {
    return accepted_total_;
  }
  /// @brief The longest proposal recorded (the range of the per-position metrics). O(1).
  /// @return max P, 0 without rounds
  [[nodiscard]] index_t max_proposed() const noexcept {
    return static_cast<index_t>(offered_.size());
  }

  /// @brief Mean tokens committed per round, bonus token included (the "acceptance length").
  /// @return sum tau / R; NaN without rounds
  /// @par Complexity
  /// O(1).
  [[nodiscard]] double tau_mean() const noexcept {
    return ratio(tau_total_, rounds_);
  }
  /// @brief Mean drafts verified per round (printed "x.xx+1" by the reference).
  /// @return sum P / R; NaN without rounds
  /// @par Complexity
  /// O(1).
  [[nodiscard]] double draft_tokens_per_proposal() const noexcept {
    return ratio(proposed_total_, rounds_);
  }
  /// @brief Committed tokens per target position verified (each round verifies P + 1).
  /// @return sum tau / (sum P + R); NaN without rounds
  /// @par Complexity
  /// O(1).
  [[nodiscard]] double verify_rate() const noexcept {
    return ratio(tau_total_, proposed_total_ + rounds_);
  }
  /// @brief The repo's accept_rate\@i: unconditional survival of the draft prefix past i.
  /// @param[in] i 0-based draft position (i = 0..gamma-1)
  /// @return #{n > i} / #{P > i}; NaN when no round proposed more than i drafts (the repo's
  ///         "-") or i < 0
  /// @par Complexity
  /// O(1).
  [[nodiscard]] double accept_rate_at(index_t i) const noexcept {
    if (i < 0 || i >= max_proposed())
      return nan();
    const std::size_t u = static_cast<std::size_t>(i);
    return ratio(survived_[u], offered_[u]);
  }
  /// @brief The paper's conditional acceptance at draft position k (1-based).
  /// @param[in] k 1-based draft position (k = 1..gamma)
  /// @return #{n >= k} / #{n >= k-1 and P >= k}; NaN when the denominator is 0 or k < 1
  /// @par Complexity
  /// O(1).
  [[nodiscard]] double conditional_acceptance(index_t k) const noexcept {
    if (k < 1 || k > max_proposed())
      return nan();
    const std::size_t u = static_cast<std::size_t>(k - 1);
    return ratio(survived_[u], reached_[u]);
  }

private:
  static double nan() noexcept {
    return std::numeric_limits<double>::quiet_NaN();
  }
  static double ratio(std::int64_t num, std::int64_t den) noexcept {
    return den > 0 ? static_cast<double>(num) / static_cast<double>(den) : nan();
  }

  std::int64_t rounds_ = 0;
  std::int64_t terminated_ = 0;
  std::int64_t tau_total_ = 0;
  std::int64_t proposed_total_ = 0;
  std::int64_t accepted_total_ = 0;
  std::vector<std::int64_t> offered_;  // [i]: rounds with P > i
  std::vector<std::int64_t> survived_; // [i]: rounds with n > i
  std::vector<std::int64_t> reached_;  // [k-1]: rounds with n >= k-1 and P >= k
};

namespace detail {

template <class T>
status
analytic_acceptance_impl(std::span<const T> p_d, std::span<const T> p_t, double& out) noexcept {
  if (p_d.empty() || p_t.empty())
    return status{errc::invalid_argument};
  if (p_d.size() != p_t.size())
    return status{errc::vocab_mismatch};
  double sum = 0.0;
  for (std::size_t v = 0; v < p_d.size(); ++v) {
    const double a = static_cast<double>(p_d[v]);
    const double b = static_cast<double>(p_t[v]);
    if (!(a >= 0.0 && a <= std::numeric_limits<double>::max())
        || !(b >= 0.0 && b <= std::numeric_limits<double>::max()))
      return status{errc::invalid_value};
    sum += a < b ? a : b;
  }
  out = sum > 1.0 ? 1.0 : sum;
  return status{};
}

template <class T>
status l1_distance_impl(std::span<const T> a, std::span<const T> b, double& out) noexcept {
  if (a.size() != b.size())
    return status{errc::shape_mismatch};
  double sum = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double x = static_cast<double>(a[i]);
    const double y = static_cast<double>(b[i]);
    if (!std::isfinite(x) || !std::isfinite(y))
      return status{errc::invalid_value};
    sum += std::fabs(x - y);
  }
  out = sum;
  return status{};
}

} // namespace detail

/// @brief The analytic per-step acceptance c* = sum_v min(p_d(v), p_t(v)) = 1 - ||p_d - p_t||_1 / 2
///        (for normalised rows), clamped to [0, 1]: the probability that rejection sampling
///        accepts a draft drawn from p_d (spec 4 and 6.2; the confidence head's training target).
/// @param[in] p_d draft distribution row (probabilities, not necessarily normalised)
/// @param[in] p_t target distribution row over the same vocabulary
/// @param[out] out c* in [0, 1]; unchanged on error
/// @return ok; errc::invalid_argument for an empty row; errc::vocab_mismatch when the sizes
///         differ; errc::invalid_value for a NaN, infinite or negative probability
/// @par Complexity
/// O(V), accumulated in double.
[[nodiscard]] inline status analytic_acceptance(std::span<const double> p_d,
                                                std::span<const double> p_t,
                                                double& out) noexcept {
  return detail::analytic_acceptance_impl(p_d, p_t, out);
}

/// @brief As the double overload, for single-precision rows (accumulated in double).
/// @param[in] p_d draft distribution row
/// @param[in] p_t target distribution row over the same vocabulary
/// @param[out] out c* in [0, 1]
/// @return as the double overload
/// @par Complexity
/// O(V).
[[nodiscard]] inline status
analytic_acceptance(std::span<const float> p_d, std::span<const float> p_t, double& out) noexcept {
  return detail::analytic_acceptance_impl(p_d, p_t, out);
}

/// @brief Expected committed tokens of a block with per-step acceptances c_1..c_gamma:
///        E[tau] = 1 + sum_k prod_{i <= k} c_i (the reference's tau_probabilistic).
/// @param[in] c per-step (conditional) acceptance probabilities, each in [0, 1]; may be empty
/// @param[out] out E[tau] in [1, gamma + 1]; unchanged on error
/// @return ok, or errc::invalid_value for a value that is NaN or outside [0, 1]
/// @par Complexity
/// O(gamma).
[[nodiscard]] inline status expected_tau(std::span<const double> c, double& out) noexcept {
  for (const double v : c)
    if (!(v >= 0.0 && v <= 1.0))
      return status{errc::invalid_value};
  double prod = 1.0;
  double e = 1.0;
  for (const double v : c) {
    prod *= v;
    e += prod;
  }
  out = e;
  return status{};
}

/// @brief Training position weights w_k = exp(-(k - 1) / g), k = 1..gamma (spec 10; the repo's
///        configs use g = 4, the paper writes g = gamma).
/// @param[in] gamma number of positions, >= 0
/// @param[in] g decay constant, > 0 (+infinity gives all-ones weights)
/// @param[out] out the gamma weights (resized); unchanged on error
/// @return ok; errc::invalid_argument for gamma < 0 or gamma > max_round_proposal;
///         errc::invalid_value for g that is NaN or not positive
/// @par Complexity
/// O(gamma); allocates.
[[nodiscard]] inline status position_weights(index_t gamma, double g, std::vector<double>& out) {
  if (gamma < 0 || gamma > max_round_proposal)
    return status{errc::invalid_argument};
  if (!(g > 0.0))
    return status{errc::invalid_value};
  out.resize(static_cast<std::size_t>(gamma));
  for (std::size_t k = 0; k < out.size(); ++k)
    out[k] = std::exp(-static_cast<double>(k) / g);
  return status{};
}

/// @brief Binary cross-entropy with logits against a soft target, in the numerically stable form
///        max(z, 0) - z t + log(1 + exp(-|z|)) (PyTorch's BCEWithLogits, one element).
/// @param[in] z the logit, finite
/// @param[in] target the soft label, in [0, 1] (e.g. the analytic acceptance c*)
/// @param[out] out the loss, >= 0 up to rounding; unchanged on error
/// @return ok, or errc::invalid_value for a non-finite z or a target that is NaN or outside [0, 1]
/// @par Complexity
/// O(1).
[[nodiscard]] inline status bce_with_logits(double z, double target, double& out) noexcept {
  if (!std::isfinite(z) || !(target >= 0.0 && target <= 1.0))
    return status{errc::invalid_value};
  out = (z > 0.0 ? z : 0.0) - z * target + std::log1p(std::exp(-std::fabs(z)));
  return status{};
}

/// @brief L1 distance sum_i |a_i - b_i| (the training TV term uses the full L1 norm, 2 x TV).
/// @param[in] a first vector
/// @param[in] b second vector, same size
/// @param[out] out the distance (0 for empty vectors); unchanged on error
/// @return ok; errc::shape_mismatch when the sizes differ; errc::invalid_value for a NaN or
///         infinite entry
/// @par Complexity
/// O(n), accumulated in double.
[[nodiscard]] inline status
l1_distance(std::span<const double> a, std::span<const double> b, double& out) noexcept {
  return detail::l1_distance_impl(a, b, out);
}

/// @brief As the double overload, for single-precision vectors (accumulated in double).
/// @param[in] a first vector
/// @param[in] b second vector, same size
/// @param[out] out the distance
/// @return as the double overload
/// @par Complexity
/// O(n).
[[nodiscard]] inline status
l1_distance(std::span<const float> a, std::span<const float> b, double& out) noexcept {
  return detail::l1_distance_impl(a, b, out);
}

} // namespace decode

SPECDEC_NAMESPACE_END
