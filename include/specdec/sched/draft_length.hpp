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
///
/// Never slower than plain decoding (by design, up to the cost model's accuracy):
///  - a positive length must beat plain decoding by the margin `min_gain` (default 1.05), which
///    absorbs the noise of a measured c(T) and the per-step costs outside it;
///  - no probe is spent where drafting cannot reach that margin even if every draft were accepted
///    (E(k) = k + 1): on a backend whose c(T) grows about linearly, or whose drafts cost about a
///    target step, the controller is plain decoding from the first step;
///  - a probe that leaves its bucket at zero doubles that bucket's probe interval, up to
///    `max_explore_interval`, so a regime where drafting does not pay costs a vanishing share of
///    the steps; a probe that makes the bucket draft again resets the interval; with
///    `explore_budget` the first interval is long enough that probes, each costing C(1) - C(0),
///    take at most that share of plain decoding's time;
///  - may_draft() tells a decoder whose proposer drafts before the length is chosen (a
///    bucketed proposer) that no bucket would draft now, so the proposer is not run at all and a
///    step costs what a plain step does.
/// The cost curve itself should be the worst over the contexts the decode will see
/// (sched::profile_verify_costs with a horizon): c(T) / c(1) grows with the context length.

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>

#include <algorithm>
#include <cmath>
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
      64; ///< a bucket choosing 0 drafts one token every this many steps; 0 = never
  /// Draft only when the best ratio E(k) / C(k) beats plain decoding's 1 / C(0) by this factor,
  /// >= 1: the margin that absorbs the noise of a measured cost curve and per-step costs it does
  /// not hold (a mispredicted draft costs a whole extra row, a too-cautious one only a lost gain).
  double min_gain = 1.05;
  /// Optional prior mean per bucket (overrides prior_accept where given): a proposer whose
  /// feature predicts acceptance (a longer n-gram match is accepted more often) starts each
  /// bucket from a sensible guess instead of paying to explore it.
  std::vector<double> prior_by_bucket;
  /// Back-off cap: each probe after which its bucket still chooses 0 doubles the bucket's probe
  /// interval (from explore_interval) up to this many steps; a value <= explore_interval keeps
  /// the interval fixed.
  int max_explore_interval = 4096;
  /// Largest share of plain decoding's cost that probing may take, > 0 (0 = no such bound): each
  /// probe costs C(1) - C(0), so a bucket's probe interval starts at no less than
  /// (C(1) - C(0)) / (explore_budget C(0)) steps (rounded up). A probe that costs most of a step
  /// (a draft model on a CPU) is made rarely, one that costs little (a GPU, where C(1) is close
  /// to C(0)) as often as explore_interval allows.
  double explore_budget = 0.0;
};

/// @brief Cost-aware draft-length controller (see the file comment for the rule).
///
/// Exploration cost: a bucket whose choice is 0 verifies one extra token once per
/// `explore_interval` of its steps at first, so the slowdown from learning starts at
/// (C(1)/C(0) - 1) / explore_interval, about 1% for C(1)/C(0) = 1.65 and the default 64, and
/// halves with every probe that fails (the interval doubles up to `max_explore_interval`);
/// `explore_budget` lengthens the first interval so that it is at most that share. No
/// probe is made where drafting cannot beat plain decoding by `min_gain` even at perfect
/// acceptance.
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
    // Could any length reach the margin if every draft were accepted (E(k) = k + 1)? A tie
    // counts as reachable: only a strictly losing curve turns probing off.
    can_pay_ = false;
    const double need = config_.min_gain / costs_.cost(0);
    for (int k = 1; k <= costs_.max_draft(); ++k)
      can_pay_ = can_pay_ || static_cast<double>(k + 1) / costs_.cost(k) >= need;
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
    interval_.assign(b, base_interval());
    probing_.assign(b, 0);
    first_paying_.assign(b, 0);
    for (int i = 0; i < config_.buckets; ++i)
      refresh(i);
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

  /// @brief Whether some length could reach the `min_gain` margin over plain decoding if every
  ///        draft were accepted; when false the controller never drafts and never probes. O(1).
  /// @return false when the installed cost curve rules drafting out (or none is installed)
  [[nodiscard]] bool drafting_can_pay() const noexcept {
    return can_pay_;
  }

  /// @brief The current probe interval of a bucket: explore_interval (lengthened to respect
  ///        explore_budget), doubled by every failed probe up to max_explore_interval (0 when
  ///        exploration is off). O(1).
  /// @param[in] bucket feature bucket (clamped)
  /// @return steps between probes of the bucket while it chooses 0
  [[nodiscard]] int explore_interval(int bucket) const noexcept {
    return interval_[static_cast<std::size_t>(clamp_bucket(bucket))];
  }

  /// @brief Whether a step offering `available` drafts could draft in some bucket now: false
  ///        when every bucket would choose 0 and no probe can be due, so a decoder may skip
  ///        running a proposer that drafts before the length is chosen (choose() would return 0
  ///        whatever the bucket). Probes need the bucket, so with exploration on this is true
  ///        wherever drafting_can_pay().
  /// @par Complexity
  /// O(buckets) (the per-bucket answer is kept up to date by record()).
  /// @param[in] available drafts the step can offer
  /// @return true when choose() might return a positive length
  [[nodiscard]] bool may_draft(int available) const noexcept {
    if (available <= 0 || !can_pay_)
      return false;
    if (config_.explore_interval > 0)
      return true;
    for (int k : first_paying_)
      if (k > 0 && k <= available)
        return true;
    return false;
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
    if (kmax <= 0 || costs_.verify.empty() || !can_pay_)
      return 0;
    const std::size_t b = static_cast<std::size_t>(clamp_bucket(bucket));
    // first_paying_ is the shortest length that beats plain decoding by the margin: when it is
    // out of reach, so is every longer one at this kmax, and the scan is skipped.
    const int first = first_paying_[b];
    const int best = first > 0 && first <= kmax ? best_length(bucket, kmax) : 0;
    probing_[b] = 0;
    if (best == 0 && interval_[b] > 0 && ++idle_[b] >= interval_[b]) {
      idle_[b] = 0;
      probing_[b] = 1;
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
  /// A recorded probe (a step whose length came from exploration) that leaves the bucket at 0
  /// doubles the bucket's probe interval (up to max_explore_interval); one after which the bucket
  /// drafts resets it to its first value (explore_interval, or longer by explore_budget).
  void record(int bucket, int drafted, int accepted) noexcept {
    const int kmax = std::max(1, costs_.max_draft());
    const int tried = std::min({drafted, accepted + 1, kmax});
    for (int j = 1; j <= tried; ++j) {
      const std::size_t i = index(bucket, j);
      tries_[i] = tries_[i] * config_.decay + 1.0;
      hits_[i] = hits_[i] * config_.decay + (j <= accepted ? 1.0 : 0.0);
    }
    const int cb = clamp_bucket(bucket);
    const std::size_t b = static_cast<std::size_t>(cb);
    refresh(cb);
    if (probing_[b] != 0) {
      probing_[b] = 0;
      interval_[b] = first_paying_[b] > 0 ? base_interval()
                                          : std::max(interval_[b],
                                                     interval_[b] > config_.max_explore_interval / 2
                                                         ? config_.max_explore_interval
                                                         : 2 * interval_[b]);
    }
  }

private:
  // The best length in 1..kmax by E(k) / C(k) against the margin over plain decoding (0 if none
  // beats it); ties go to the shorter length.
  [[nodiscard]] int best_length(int bucket, int kmax) const noexcept {
    int best = 0;
    double best_rate = config_.min_gain / costs_.cost(0);
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
    return best;
  }

  // The first probe interval: explore_interval, or the longer one that keeps a probe's cost
  // C(1) - C(0) within explore_budget of plain decoding's cost per step.
  [[nodiscard]] int base_interval() const noexcept {
    const int e = config_.explore_interval;
    if (e <= 0 || !(config_.explore_budget > 0.0) || costs_.verify.size() < 2)
      return e;
    const double steps =
        (costs_.cost(1) - costs_.cost(0)) / (config_.explore_budget * costs_.cost(0));
    return steps > static_cast<double>(e) ? static_cast<int>(std::min(std::ceil(steps), 1e9)) : e;
  }

  // Recomputes a bucket's shortest length that beats plain decoding by the margin (0: none).
  void refresh(int bucket) noexcept {
    const std::size_t b = static_cast<std::size_t>(bucket);
    first_paying_[b] = 0;
    if (!can_pay_ || costs_.verify.empty())
      return;
    const double need = config_.min_gain / costs_.cost(0);
    double e = 1.0;
    double run = 1.0;
    for (int k = 1; k <= costs_.max_draft(); ++k) {
      run *= alpha(bucket, k);
      e += run;
      if (e / costs_.cost(k) > need) {
        first_paying_[b] = k;
        return;
      }
    }
  }

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
  std::vector<int> interval_;     // current probe interval per bucket (back-off)
  std::vector<char> probing_;     // the bucket's last choice was a probe
  std::vector<int> first_paying_; // shortest length beating plain by the margin, 0 if none
  bool can_pay_ = false;          // some length could pay at perfect acceptance
};

static_assert(draft_length_policy<fixed_draft_length>);
static_assert(draft_length_policy<all_available_length>);
static_assert(draft_length_policy<adaptive_draft_length>);

} // namespace sched

SPECDEC_NAMESPACE_END
