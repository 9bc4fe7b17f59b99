// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief Draft-length policies: a fixed length, every draft offered, and a cost-aware controller
///        that picks the length (zero included) maximising expected emitted tokens per unit of
///        cost.
///
/// The draft length is decided here (and in sched/confidence_length.hpp for drafters that score
/// their drafts) and nowhere else. The other parts only report what they can offer: a proposer's
/// max_draft_len() / max_draft_nodes() is its capacity, a confident proposer's confidences() are
/// its scores (it never cuts its own draft), and decode_config::max_draft is a per-request cap
/// (buffer size). The decoders pass the policy `available` = the smallest of those caps, the
/// cache room and the tokens left - 1, and verify exactly the number it returns.
///
/// Speculation pays only when scoring T tokens costs little more than scoring one. The cost-aware
/// controller is given the measured cost curve c(T) of a verification step (sched/cost_profile.hpp)
/// and the cost of drafting, tracks the conditional acceptance rate of each draft position online,
/// and for every step chooses
///
///     k* = argmax_k  E(k) / C(k),   E(k) = 1 + sum_{j=1..k} prod_{i<=j} alpha_i,
///                                   C(k) = c(k + 1) + [k > 0] (draft_fixed + k draft_per_token)
///
/// where alpha_i is the probability that draft i is accepted given that drafts 1..i-1 were. k* = 0
/// is plain decoding. Acceptance statistics are kept per *bucket*: a small integer feature that the
/// proposer knows before verification (the n-gram drafter's match length), so that a long suffix
/// match can be drafted aggressively while a short one is not drafted at all. Counts decay
/// geometrically, so the controller follows a change of regime (a story drifting into a copied
/// passage), and a bucket whose choice is zero is re-explored with one draft token every
/// `explore_interval` of its steps, which bounds the cost of learning (see the config).

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace sched {

/// @brief A draft-length policy: chooses the number of drafts for a step and learns from its
/// outcome.
///
/// `choose(bucket, available)` returns a length in [0, available]; `record(bucket, drafted,
/// accepted)` reports the verified outcome of a step that drafted `drafted` tokens, `accepted` of
/// them accepted.
template <class P>
concept draft_length_policy = requires(P& p, int bucket, int n) {
  { p.choose(bucket, n) } -> std::convertible_to<int>;
  p.record(bucket, n, n);
};

/// @brief Always the same draft length (capped by what the proposer produced).
struct fixed_draft_length {
  int length = 4; ///< drafts per step, >= 0

  /// @brief min(length, available). O(1).
  /// @param[in] available drafts the proposer can offer
  /// @return the draft length
  [[nodiscard]] int choose(int /*bucket*/, int available) const noexcept {
    return std::max(0, std::min(length, available));
  }
  /// @brief Ignored: a fixed length does not learn. O(1).
  void record(int /*bucket*/, int /*drafted*/, int /*accepted*/) noexcept {}
};

/// @brief Every draft the round can offer: the decoders' caps alone bound the length (the tree
///        decoder's default, where decode_config::max_draft is the node budget).
struct all_available_length {
  /// @brief max(0, available). O(1).
  /// @param[in] available drafts the round can offer
  /// @return the draft length
  [[nodiscard]] int choose(int /*bucket*/, int available) const noexcept {
    return std::max(0, available);
  }
  /// @brief Ignored: nothing to learn. O(1).
  void record(int /*bucket*/, int /*drafted*/, int /*accepted*/) noexcept {}
};

/// @brief The cost of a step as a function of its draft length, in any consistent unit.
struct step_costs {
  /// verify[t] is the cost of scoring t + 1 tokens at once (and verifying them), t = 0 .. K.
  std::vector<double> verify;
  double draft_fixed = 0.0;     ///< cost of a drafting step that drafts at least one token
  double draft_per_token = 0.0; ///< added cost per drafted token (0 for an n-gram lookup)

  /// @brief Largest draft length the table covers: verify.size() - 1 (0 when empty). O(1).
  /// @return the largest k with a cost
  [[nodiscard]] int max_draft() const noexcept {
    return verify.empty() ? 0 : static_cast<int>(verify.size()) - 1;
  }
  /// @brief Cost of a step that drafts k tokens; requires 0 <= k <= max_draft(). O(1).
  /// @param[in] k drafts in the step
  /// @return the step cost
  [[nodiscard]] double cost(int k) const noexcept {
    const double d = k > 0 ? draft_fixed + draft_per_token * static_cast<double>(k) : 0.0;
    return verify[static_cast<std::size_t>(k)] + d;
  }
  /// @brief errc::invalid_value unless verify is non-empty and every cost is finite and > 0,
  ///        and draft costs are finite and >= 0. O(K).
  /// @return ok or errc::invalid_value
  [[nodiscard]] status validate() const noexcept {
    if (verify.empty())
      return status{errc::invalid_value};
    for (double c : verify)
      if (!(c > 0.0) || c > 1e300)
        return status{errc::invalid_value};
    if (!(draft_fixed >= 0.0) || !(draft_per_token >= 0.0) || draft_fixed > 1e300
        || draft_per_token > 1e300)
      return status{errc::invalid_value};
    return status{};
  }
};

/// @brief Settings of the cost-aware controller.
struct adaptive_config {
  int buckets = 1;           ///< number of feature buckets; choose() clamps a bucket into range
  double prior_accept = 0.5; ///< prior mean of every conditional acceptance rate
  double prior_weight = 2.0; ///< pseudo-observations behind the prior
  double decay = 0.98;       ///< per-observation discount of a position's counts, in (0, 1]
  int explore_interval =
      64;                ///< a bucket choosing 0 drafts one token every this many steps; 0 = never
  double min_gain = 1.0; ///< draft only when the best ratio beats plain decoding by this factor
  /// Optional prior mean per bucket (overrides prior_accept where given): a proposer whose
  /// feature predicts acceptance (a longer n-gram match is accepted more often) starts each
  /// bucket from a sensible guess instead of paying to explore it.
  std::vector<double> prior_by_bucket;
};

/// @brief Cost-aware draft-length controller (see the file comment for the rule).
///
/// Exploration cost: a bucket whose choice is 0 verifies one extra token once per
/// `explore_interval` of its steps, so the worst-case slowdown from learning is
/// (c(2)/c(1) - 1) / explore_interval, about 1% for c(2)/c(1) = 1.65 and the default 64.
class adaptive_draft_length {
public:
  /// @brief A controller without costs: it drafts nothing until set_costs() is called.
  /// @param[in] config the settings (buckets clamped to >= 1)
  explicit adaptive_draft_length(adaptive_config config = {})
      : config_(config) {
    config_.buckets = std::max(1, config_.buckets);
    reset_statistics();
  }

  /// @brief Installs the step cost model. @return its validate() status; on error nothing changes.
  /// @par Complexity
  /// O(buckets x K).
  /// @param[in] costs the cost model
  [[nodiscard]] status set_costs(const step_costs& costs) {
    const status s = costs.validate();
    if (!s.ok())
      return s;
    costs_ = costs;
    reset_statistics();
    return status{};
  }

  /// @brief Forgets every acceptance observation (the prior remains). O(buckets x K).
  void reset_statistics() {
    const std::size_t k = static_cast<std::size_t>(std::max(1, costs_.max_draft()));
    const std::size_t b = static_cast<std::size_t>(config_.buckets);
    tries_.assign(b * k, 0.0);
    hits_.assign(b * k, 0.0);
    idle_.assign(b, 0);
  }

  /// @brief The installed cost model. O(1).
  /// @return the cost model
  [[nodiscard]] const step_costs& costs() const noexcept {
    return costs_;
  }
  /// @brief The settings. O(1).
  /// @return the settings
  [[nodiscard]] const adaptive_config& config() const noexcept {
    return config_;
  }

  /// @brief Posterior-mean conditional acceptance rate of draft position j (1-based) in a bucket.
  /// @par Complexity
  /// O(1).
  /// @param[in] bucket feature bucket (clamped)
  /// @param[in] j draft position, 1-based (clamped to 1..K)
  /// @return the estimated rate in (0, 1)
  [[nodiscard]] double alpha(int bucket, int j) const noexcept {
    const std::size_t i = index(bucket, j);
    const std::size_t b = static_cast<std::size_t>(clamp_bucket(bucket));
    const double prior =
        b < config_.prior_by_bucket.size() ? config_.prior_by_bucket[b] : config_.prior_accept;
    return (hits_[i] + config_.prior_weight * prior) / (tries_[i] + config_.prior_weight);
  }

  /// @brief Expected tokens emitted by a step drafting k tokens in a bucket, bonus token included.
  /// @par Complexity
  /// O(k).
  /// @param[in] bucket feature bucket
  /// @param[in] k draft length
  /// @return E(k)
  [[nodiscard]] double expected_tokens(int bucket, int k) const noexcept {
    double e = 1.0;
    double run = 1.0;
    for (int j = 1; j <= k; ++j) {
      run *= alpha(bucket, j);
      e += run;
    }
    return e;
  }

  /// @brief The draft length in [0, min(available, K)] with the most expected tokens per unit cost.
  ///
  /// Ties go to the shorter length; a positive length must beat k = 0 by the factor `min_gain`.
  /// When the best choice is 0 and exploration is due for the bucket, returns 1 (if available).
  /// @par Complexity
  /// O(K).
  /// @param[in] bucket the step's feature bucket
  /// @param[in] available drafts the proposer can offer
  /// @return the draft length
  [[nodiscard]] int choose(int bucket, int available) {
    const int kmax = std::min(available, costs_.max_draft());
    if (kmax <= 0 || costs_.verify.empty())
      return 0;
    const std::size_t b = static_cast<std::size_t>(clamp_bucket(bucket));
    const double plain = 1.0 / costs_.cost(0);
    int best = 0;
    double best_rate = plain * config_.min_gain;
    double e = 1.0;
    double run = 1.0;
    for (int k = 1; k <= kmax; ++k) {
      run *= alpha(bucket, k);
      e += run;
      const double rate = e / costs_.cost(k);
      if (rate > best_rate) {
        best = k;
        best_rate = rate;
      }
    }
    if (best == 0 && config_.explore_interval > 0 && ++idle_[b] >= config_.explore_interval) {
      idle_[b] = 0;
      return 1;
    }
    if (best > 0)
      idle_[b] = 0;
    return best;
  }

  /// @brief Records a verified step: positions 1..min(accepted + 1, drafted) were tried, the first
  ///        `accepted` of them succeeded. Counts of the tried positions decay by `decay` first.
  /// @par Complexity
  /// O(drafted).
  /// @param[in] bucket the step's feature bucket
  /// @param[in] drafted drafts verified
  /// @param[in] accepted drafts accepted
  void record(int bucket, int drafted, int accepted) noexcept {
    const int kmax = std::max(1, costs_.max_draft());
    const int tried = std::min({drafted, accepted + 1, kmax});
    for (int j = 1; j <= tried; ++j) {
      const std::size_t i = index(bucket, j);
      tries_[i] = tries_[i] * config_.decay + 1.0;
      hits_[i] = hits_[i] * config_.decay + (j <= accepted ? 1.0 : 0.0);
    }
  }

private:
  [[nodiscard]] int clamp_bucket(int bucket) const noexcept {
    return std::clamp(bucket, 0, config_.buckets - 1);
  }
  [[nodiscard]] std::size_t index(int bucket, int j) const noexcept {
    const int kmax = std::max(1, costs_.max_draft());
    const int jj = std::clamp(j, 1, kmax);
    return static_cast<std::size_t>(clamp_bucket(bucket)) * static_cast<std::size_t>(kmax)
           + static_cast<std::size_t>(jj - 1);
  }

  adaptive_config config_;
  step_costs costs_;
  std::vector<double> tries_;
  std::vector<double> hits_;
  std::vector<int> idle_;
};

static_assert(draft_length_policy<fixed_draft_length>);
static_assert(draft_length_policy<all_available_length>);
static_assert(draft_length_policy<adaptive_draft_length>);

} // namespace sched

SPECDEC_NAMESPACE_END
