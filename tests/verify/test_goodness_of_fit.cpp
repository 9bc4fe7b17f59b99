// SPDX-License-Identifier: Apache-2.0
// Goodness of fit of the chain verification rules (DESIGN section 4): every lossless rule must
// emit tokens distributed as the processed target, checked by chi-square on 10^6 seeded trials
// (10^5 under AddressSanitizer), and a deliberately biased variant of each rule must fail the
// same test (power).
//
// Setup: V = 6, bigram target P(.|prev) and draft Q(.|prev) logit tables, K = 3 drafts after the
// context token x0. The joint law of the first two emitted tokens (36 cells) must be
// P'(a|x0) P'(b|a), where P' is the processed target of the independent double-precision
// reference of support/stats.hpp. Bound: the 1 - 1e-6 chi-square quantile (Wilson-Hilferty) for
// the degrees of freedom (cells of positive expected count minus one); cells of expected count 0
// must stay empty. Seeds are fixed, so every test is deterministic.

#include <specdec/specdec.hpp>

#include <catch2/catch.hpp>

#include "support/bigram_law.hpp"
#include "support/gof.hpp"
#include "support/sanitizer.hpp"
#include "support/stats.hpp"
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

using namespace specdec;
using specdec_test::chi_square_result;

namespace {

constexpr index_t V = 6;
constexpr std::int32_t K = 3;
// Sanitized builds (about 10x slower per draw) run 10^5 draws; the biased variants still fail
// by a wide margin there.
constexpr std::uint64_t n_trials = specdec_test::by_build<std::uint64_t>(1'000'000, 100'000);
constexpr double alpha = 1e-6; ///< the bound is the 1 - alpha chi-square quantile
/// The context token. From x0 = 1 the first draft is often accepted with p_1 < 1 and the next
/// rows of P and Q overlap, so the p_tau scaling of block verification's residual shows in the
/// law of the first two tokens (from x0 = 0 the unscaled-residual variant is not detected).
constexpr token_id x0 = 1;
constexpr float ninf = -std::numeric_limits<float>::infinity();

using specdec_test::ix;

// Target P(b | a) as logits, row a. Row 2 forbids token 5 (-inf: probability 0). Row 0 has a tie
// at its third largest value (0.4, tokens 1 and 5): top-k = 3 keeps four tokens there, and
// top-p = 0.75 reaches its mass inside that tie and keeps both (at T = 0.7 the kept counts of
// rows 0, 1, 2 are 4, 3, 3 with top-k = 3, 4, 2, 3 with top-p = 0.75, 4, 2, 4 with min-p = 0.2).
const std::array<float, 36>& p_logits = specdec_test::bigram_target_logits;
// Draft Q(b | a): different enough that drafts are often rejected. Q(5|2) > 0 = P(5|2) (such a
// draft is always rejected), Q(4|5) = 0 < P(4|5) (only the residual can emit 4 after 5).
const std::array<float, 36> q_logits{
    0.5f,  1.3f,  -0.5f, 1.0f,  0.2f, -0.3f, // Q(.|0)
    0.9f,  0.8f,  1.2f,  -1.0f, 0.4f, -0.2f, // Q(.|1)
    0.1f,  0.6f,  0.9f,  -0.2f, 1.4f, 0.3f,  // Q(.|2)
    1.1f,  0.0f,  -0.4f, 0.9f,  1.0f, -0.6f, // Q(.|3)
    -0.3f, 1.2f,  0.2f,  0.8f,  0.5f, 1.1f,  // Q(.|4)
    0.6f,  -0.5f, 1.3f,  0.3f,  ninf, 0.9f,  // Q(.|5)
};

/// A bigram table stored as T, and the stored values read back (what the reference must use).
template <class T>
struct bigram {
  std::vector<T> rows;
  std::vector<double> values;
  explicit bigram(const std::array<float, 36>& logits) {
    for (float x : logits) {
      rows.push_back(dtype_traits<T>::from_float(x));
      values.push_back(static_cast<double>(dtype_traits<T>::to_float(rows.back())));
    }
  }
  const T* row(token_id prev) const {
    return rows.data() + prev * V;
  }
  sampling::dist_row<T> dist(token_id prev) const {
    return {row(prev), V, distribution_kind::logits};
  }
  std::vector<double> row_values(token_id prev) const {
    return {values.begin() + prev * V, values.begin() + (prev + 1) * V};
  }
};

/// The reference processed rows of a table, one per context. Requires that no filter decision
/// is a close call (the library works in float, the reference in double).
template <class T>
std::vector<std::vector<double>> reference_rows(const bigram<T>& m,
                                                const sampling::sampling_params& sp) {
  std::vector<std::vector<double>> out;
  for (token_id c = 0; c < V; ++c) {
    const auto r = specdec_test::reference_processed(
        m.row_values(c), false, specdec_test::reference_params(sp));
    INFO("context " << c);
    REQUIRE(r.margin > 1e-4);
    out.push_back(r.p);
  }
  return out;
}

/// The reference law of the first two tokens after x0: P'(a|x0) P'(b|a).
std::vector<double> reference_pair_law(const std::vector<std::vector<double>>& p) {
  std::vector<double> law(V * V);
  for (std::size_t a = 0; a < V; ++a)
    for (std::size_t b = 0; b < V; ++b)
      law[a * V + b] = p[ix(x0)][a] * p[a][b];
  return law;
}

enum class drafting {
  sampled, ///< x_{j+1} drawn from the processed Q(.|x_j)
  argmax   ///< x_{j+1} = argmax Q(.|x_j): a deterministic drafter (for the one-hot rules)
};

struct trial_result {
  std::vector<std::uint64_t> pairs = std::vector<std::uint64_t>(V * V, 0); ///< first two tokens
  std::vector<std::uint64_t> firsts = std::vector<std::uint64_t>(V, 0);    ///< first token
  std::vector<std::int8_t> accepted;                                       ///< per trial, if kept
  double mean_accepted = 0.0;
  std::uint64_t bad = 0; ///< trials with an error flag or an out-of-range result
};

/// Runs `n` trials of `policy`. Per trial: drafts after x0 (drawn from the processed draft rows,
/// as the library computes them, with a Philox stream of our own keyed by another seed; or
/// deterministic argmax drafts), the rows they select, verification with rng_key{seed, trial},
/// and the first two emitted tokens (the second drawn with sampling::sample_row from the
/// processed P(.|first) and a uniform of our own when only one token was emitted).
template <class T, class Policy>
trial_result run_trials(const Policy& policy,
                        const bigram<T>& target,
                        const bigram<T>& draft,
                        const sampling::sampling_params& sp,
                        drafting mode,
                        std::uint64_t seed,
                        bool keep_accepted = false) {
  const cpu::serial_executor ex{};
  std::array<sampling::row_stats, V> tstats{};
  std::array<token_id, V> draft_argmax{};
  std::array<std::array<double, V>, V> draft_cdf{}; // cumulative processed q(.|c)
  for (token_id c = 0; c < V; ++c) {
    tstats[ix(c)] = sampling::prepare_row(ex, target.dist(c), sp);
    const sampling::row_stats ds = sampling::prepare_row(ex, draft.dist(c), sp);
    REQUIRE(tstats[ix(c)].ok());
    REQUIRE(ds.ok());
    draft_argmax[ix(c)] = static_cast<token_id>(ds.argmax);
    double cum = 0.0;
    for (index_t v = 0; v < V; ++v)
      draft_cdf[ix(c)][ix(v)] = cum += sampling::prob_at(draft.dist(c), ds, v);
  }
  const auto draw_draft = [&](token_id c, float u) {
    const double goal = static_cast<double>(u) * draft_cdf[ix(c)][ix(V - 1)];
    token_id v = 0;
    while (v < V - 1 && !(draft_cdf[ix(c)][ix(v)] > goal))
      ++v;
    return v;
  };
  std::array<T, (K + 1) * V> trows{};
  std::array<T, K * V> drows{};
  std::array<token_id, K> x{};
  verify::chain_request<T, T> r;
  r.target = trows.data();
  r.target_stride = V;
  r.draft = Policy::needs_draft_rows ? drows.data() : nullptr; // one-hot rules never read it
  r.draft_stride = V;
  r.tokens = x.data();
  r.num_drafts = K;
  r.vocab = V;
  r.params = sp;
  r.position = 0;
  const std::uint64_t own_seed = seed ^ 0x9e3779b97f4a7c15ull; // our draws: an independent key
  trial_result res;
  if (keep_accepted)
    res.accepted.resize(n_trials);
  std::uint64_t accepted_sum = 0;
  for (std::uint64_t t = 0; t < n_trials; ++t) {
    const rng_key own{own_seed, t};
    token_id prev = x0;
    for (std::int32_t j = 0; j < K; ++j) {
      std::copy_n(target.row(prev), V, trows.data() + j * V);
      std::copy_n(draft.row(prev), V, drows.data() + j * V);
      x[ix(j)] = mode == drafting::argmax
                     ? draft_argmax[ix(prev)]
                     : draw_draft(prev, uniform_at(own, j, draw_purpose::sample));
      prev = x[ix(j)];
    }
    std::copy_n(target.row(prev), V, trows.data() + K * V);
    const verify::chain_outcome o = cpu::verify_chain(policy, r, rng_key{seed, t});
    if (!o.status.ok() || o.next < 0 || o.next >= V || o.accepted < 0 || o.accepted > K) {
      ++res.bad;
      continue;
    }
    token_id a = o.next, b = 0;
    if (o.accepted >= 2) {
      a = x[0];
      b = x[1];
    } else if (o.accepted == 1) {
      a = x[0];
      b = o.next;
    } else {
      b = static_cast<token_id>(sampling::sample_row(
          ex, target.dist(a), tstats[ix(a)], uniform_at(own, K + 1, draw_purpose::sample)));
    }
    ++res.pairs[static_cast<std::size_t>(a * V + b)];
    ++res.firsts[static_cast<std::size_t>(a)];
    accepted_sum += static_cast<std::uint64_t>(o.accepted);
    if (keep_accepted)
      res.accepted[t] = static_cast<std::int8_t>(o.accepted);
  }
  res.mean_accepted = static_cast<double>(accepted_sum) / static_cast<double>(n_trials);
  return res;
}

/// A correct rule: every trial clean, no draw in an impossible cell, statistic below the bound.
#define CHECK_FITS(counts, law, res)                                                               \
  SPECDEC_CHECK_FITS(counts, law, (res).bad, (res).mean_accepted, n_trials, alpha)
/// A biased rule: it must fail (statistic above the bound, or a draw in an impossible cell).
#define CHECK_FAILS(counts, law) SPECDEC_CHECK_FAILS(counts, law, alpha)

sampling::sampling_params t1() {
  return {};
}
sampling::sampling_params t07_top_k3() {
  sampling::sampling_params sp;
  sp.temperature = 0.7f;
  sp.top_k = 3;
  return sp;
}
sampling::sampling_params t07_top_p075() {
  sampling::sampling_params sp;
  sp.temperature = 0.7f;
  sp.top_p = 0.75f;
  return sp;
}
sampling::sampling_params t07_min_p02() {
  sampling::sampling_params sp;
  sp.temperature = 0.7f;
  sp.min_p = 0.2f;
  return sp;
}

/// Fits the pair law of a lossless rule under `sp`.
template <class Policy>
void check_lossless(const Policy& policy,
                    const sampling::sampling_params& sp,
                    drafting mode,
                    std::uint64_t seed) {
  const bigram<float> target(p_logits), draft(q_logits);
  const auto law = reference_pair_law(reference_rows(target, sp));
  const auto res = run_trials(policy, target, draft, sp, mode, seed);
  CHECK_FITS(res.pairs, law, res);
}

/// Runs a biased rule at T = 1 and requires the fit test to reject it.
template <class Policy>
void check_biased(const Policy& policy, drafting mode, std::uint64_t seed) {
  const bigram<float> target(p_logits), draft(q_logits);
  const auto law = reference_pair_law(reference_rows(target, t1()));
  const auto res = run_trials(policy, target, draft, t1(), mode, seed);
  CHECK(res.bad == 0);
  CHECK_FAILS(res.pairs, law);
}

// ------------------------------------------------------------------------------------------------
// Deliberately biased rules, built from the library's pieces (each must fail the fit test)
// ------------------------------------------------------------------------------------------------

/// Rejection sampling whose correction is drawn from the target p instead of the residual
/// norm(max(0, p - q)). With one-hot drafts (Dense = false) this is one-hot rejection that does
/// not remove the rejected x from the residual.
template <bool Dense>
struct rejection_correction_from_target {
  static constexpr bool needs_draft_rows = Dense;
  template <row_executor E, class TT, class TD, uniform_source U>
  verify::chain_outcome
  verify_chain(const E& ex, const verify::chain_request<TT, TD>& r, const U& u) const {
    verify::chain_outcome out;
    for (std::int32_t k = 0; k <= r.num_drafts; ++k) {
      const index_t pos = r.position + k;
      const auto trow = r.target_row(k);
      const auto ts = sampling::prepare_row(ex, trow, r.params);
      out.accepted = k;
      if (k < r.num_drafts) {
        const auto q = verify::detail::make_draft(ex, r, k, Dense);
        const float px = sampling::prob_at(trow, ts, r.tokens[k]);
        const float qx = q.prob(r.tokens[k]);
        if (u(pos, draw_purpose::accept) < (px >= qx ? 1.0f : px / qx))
          continue;
      }
      out.next = verify::detail::draw_from(ex, trow, ts, u(pos, draw_purpose::sample)); // the bias
      return out;
    }
    return out;
  }
};

enum class block_bias {
  /// residual max(0, P_tau - Q_tau) instead of max(0, p_tau P_tau - Q_tau). (No bias at all for
  /// one-hot drafts: q(x) = 1 >= p_tau P(x) there, so both residuals are P without x.)
  unscaled_residual,
  /// tau = the position before the first failed coin instead of the last successful one
  first_failure
};

/// Block verification (Sun et al. 2024) rewritten from the library's pieces with one mistake.
template <bool Dense, block_bias Bias>
struct biased_block {
  static constexpr bool needs_draft_rows = Dense;
  template <row_executor E, class TT, class TD, uniform_source U>
  verify::chain_outcome
  verify_chain(const E& ex, const verify::chain_request<TT, TD>& r, const U& u) const {
    std::array<float, 17> pv{}; // p_0 .. p_K (K <= 16 here)
    pv[0] = 1.0f;
    std::int32_t tau = 0;
    for (std::int32_t i = 1; i <= r.num_drafts; ++i) {
      const auto trow = r.target_row(i - 1);
      const auto ts = sampling::prepare_row(ex, trow, r.params);
      const auto q = verify::detail::make_draft(ex, r, i - 1, Dense);
      const token_id x = r.tokens[i - 1];
      const float pi = std::min(
          1.0f, pv[static_cast<std::size_t>(i - 1)] * (sampling::prob_at(trow, ts, x) / q.prob(x)));
      pv[static_cast<std::size_t>(i)] = pi;
      float h = pi;
      if (i < r.num_drafts) {
        const auto tn = r.target_row(i);
        const auto tsn = sampling::prepare_row(ex, tn, r.params);
        const auto qn = verify::detail::make_draft(ex, r, i, Dense);
        const float z = ex.sum(r.vocab, [&](index_t v) {
          return std::max(0.0f, pi * sampling::prob_at(tn, tsn, v) - qn.prob(v));
        });
        h = z > 0.0f ? z / (z + (1.0f - pi)) : 0.0f;
      }
      const bool success = u(r.position + i - 1, draw_purpose::accept) < h;
      if (Bias == block_bias::first_failure) {
        if (!success)
          break;
        tau = i;
      } else if (success) {
        tau = i;
      }
    }
    verify::chain_outcome out;
    out.accepted = tau;
    const float us = u(r.position + tau, draw_purpose::sample);
    const auto trow = r.target_row(tau);
    const auto ts = sampling::prepare_row(ex, trow, r.params);
    if (tau == r.num_drafts) {
      out.next = verify::detail::draw_from(ex, trow, ts, us);
    } else {
      const auto q = verify::detail::make_draft(ex, r, tau, Dense);
      const float scale =
          Bias == block_bias::unscaled_residual ? 1.0f : pv[static_cast<std::size_t>(tau)];
      out.next = verify::detail::sample_residual(ex, trow, ts, q, scale, us, out.status);
    }
    return out;
  }
};

/// Typical acceptance whose rejected position emits a draw from the rejection residual
/// norm(max(0, p - q)) instead of a draw from p.
struct typical_with_residual_correction {
  static constexpr bool needs_draft_rows = true;
  verify::typical_acceptance base{};
  template <row_executor E, class TT, class TD, uniform_source U>
  verify::chain_outcome
  verify_chain(const E& ex, const verify::chain_request<TT, TD>& r, const U& u) const {
    verify::chain_outcome out;
    for (std::int32_t k = 0; k <= r.num_drafts; ++k) {
      const auto trow = r.target_row(k);
      const auto ts = sampling::prepare_row(ex, trow, r.params);
      out.accepted = k;
      const float us = u(r.position + k, draw_purpose::sample);
      if (k == r.num_drafts) {
        out.next = verify::detail::draw_from(ex, trow, ts, us);
        return out;
      }
      const float px = sampling::prob_at(trow, ts, r.tokens[k]);
      if (px > base.threshold(sampling::entropy(ex, trow, ts)))
        continue;
      const auto q = verify::detail::make_draft(ex, r, k, true);
      out.next = verify::detail::sample_residual(ex, trow, ts, q, 1.0f, us, out.status);
      return out;
    }
    return out;
  }
};

static_assert(verify::chain_verification_policy<rejection_correction_from_target<true>>);
static_assert(verify::chain_verification_policy<biased_block<true, block_bias::first_failure>>);
static_assert(verify::chain_verification_policy<typical_with_residual_correction>);

} // namespace

// ------------------------------------------------------------------------------------------------
// Lossless rules: T = 1, T = 0.7 with top-k / top-p / min-p
// ------------------------------------------------------------------------------------------------

TEST_CASE("rejection_sampling: the first two tokens follow the processed target",
          "[stat][verify][chain][cpu]") {
  const verify::rejection_sampling rule{};
  // T = 1 is covered by "block_verification accepts at least as many tokens as rejection".
  SECTION("T = 0.7, top-k = 3") {
    check_lossless(rule, t07_top_k3(), drafting::sampled, 102);
  }
  SECTION("T = 0.7, top-p = 0.75") {
    check_lossless(rule, t07_top_p075(), drafting::sampled, 103);
  }
  SECTION("T = 0.7, min-p = 0.2") {
    check_lossless(rule, t07_min_p02(), drafting::sampled, 104);
  }
}

TEST_CASE("one_hot_rejection: the first two tokens follow the processed target (argmax drafts)",
          "[stat][verify][chain][cpu]") {
  // One-hot rejection is lossless only for deterministic drafters: drafts are argmax Q(.|prev).
  const verify::one_hot_rejection rule{};
  SECTION("T = 1") {
    check_lossless(rule, t1(), drafting::argmax, 111);
  }
  SECTION("T = 0.7, top-k = 3") {
    check_lossless(rule, t07_top_k3(), drafting::argmax, 112);
  }
  SECTION("T = 0.7, top-p = 0.75") {
    check_lossless(rule, t07_top_p075(), drafting::argmax, 113);
  }
}

TEST_CASE("block_verification: the first two tokens follow the processed target",
          "[stat][verify][chain][cpu]") {
  const verify::block_verification rule{};
  // T = 1 is covered by "block_verification accepts at least as many tokens as rejection".
  SECTION("T = 0.7, top-k = 3") {
    check_lossless(rule, t07_top_k3(), drafting::sampled, 122);
  }
  SECTION("T = 0.7, top-p = 0.75") {
    check_lossless(rule, t07_top_p075(), drafting::sampled, 123);
  }
}

TEST_CASE(
    "one_hot_block_verification: the first two tokens follow the processed target (argmax drafts)",
    "[stat][verify][chain][cpu]") {
  const verify::one_hot_block_verification rule{};
  SECTION("T = 1") {
    check_lossless(rule, t1(), drafting::argmax, 131);
  }
  SECTION("T = 0.7, top-k = 3") {
    check_lossless(rule, t07_top_k3(), drafting::argmax, 132);
  }
  SECTION("T = 0.7, top-p = 0.75") {
    check_lossless(rule, t07_top_p075(), drafting::argmax, 133);
  }
}

TEST_CASE("block_verification accepts at least as many tokens as rejection_sampling, both lossless "
          "(T = 1)",
          "[stat][verify][chain][cpu]") {
  // Same drafts (same drafting seed) and same verification uniforms (same rng_key per trial).
  const bigram<float> target(p_logits), draft(q_logits);
  const auto law = reference_pair_law(reference_rows(target, t1()));
  const auto rej =
      run_trials(verify::rejection_sampling{}, target, draft, t1(), drafting::sampled, 141, true);
  const auto blk =
      run_trials(verify::block_verification{}, target, draft, t1(), drafting::sampled, 141, true);
  CHECK_FITS(rej.pairs, law, rej);
  CHECK_FITS(blk.pairs, law, blk);
  // Paired difference of accepted lengths: mean and standard error.
  double sum = 0.0, sum2 = 0.0;
  for (std::size_t t = 0; t < n_trials; ++t) {
    const double d = blk.accepted[t] - rej.accepted[t];
    sum += d;
    sum2 += d * d;
  }
  const double n = static_cast<double>(n_trials);
  const double mean_diff = sum / n;
  const double std_error = std::sqrt((sum2 / n - mean_diff * mean_diff) / (n - 1.0));
  const double mean_block = blk.mean_accepted;
  const double mean_rejection = rej.mean_accepted;
  CAPTURE(mean_block, mean_rejection, mean_diff, std_error);
  CHECK(mean_block >= mean_rejection - 4.0 * std_error);
}

// ------------------------------------------------------------------------------------------------
// Power: a biased variant of each rule fails the same test (T = 1)
// ------------------------------------------------------------------------------------------------

TEST_CASE("power: rejection with the correction drawn from p instead of the residual fails the fit",
          "[stat][verify][chain][cpu]") {
  check_biased(rejection_correction_from_target<true>{}, drafting::sampled, 101);
}

TEST_CASE("power: one-hot rejection that keeps x in the residual fails the fit",
          "[stat][verify][chain][cpu]") {
  check_biased(rejection_correction_from_target<false>{}, drafting::argmax, 111);
}

TEST_CASE("power: block verification with a residual not scaled by p_tau fails the fit",
          "[stat][verify][chain][cpu]") {
  check_biased(biased_block<true, block_bias::unscaled_residual>{}, drafting::sampled, 141);
}

TEST_CASE("power: one-hot block verification whose tau is the first failure fails the fit",
          "[stat][verify][chain][cpu]") {
  check_biased(biased_block<false, block_bias::first_failure>{}, drafting::argmax, 131);
}

// ------------------------------------------------------------------------------------------------
// Typical acceptance (lossy): the law of the first token
// ------------------------------------------------------------------------------------------------

namespace {
/// The analytic law of the first emitted token under typical acceptance with drafts x_1 ~ q:
/// x_1 is kept iff p(x_1) > min(eps, delta exp(-H(p))), else the token is a draw from p.
std::vector<double> typical_first_law(const std::vector<double>& p,
                                      const std::vector<double>& q,
                                      const verify::typical_acceptance& rule) {
  const double thr =
      std::min(static_cast<double>(rule.epsilon),
               static_cast<double>(rule.delta) * std::exp(-specdec_test::entropy_nats(p)));
  double rejected = 0.0;
  for (std::size_t v = 0; v < p.size(); ++v) {
    INFO("token " << v << " p " << p[v] << " threshold " << thr);
    REQUIRE(std::fabs(p[v] - thr) > 1e-4); // not a close call for float
    if (!(p[v] > thr))
      rejected += q[v];
  }
  std::vector<double> law(p.size());
  for (std::size_t v = 0; v < p.size(); ++v)
    law[v] = (p[v] > thr ? q[v] : 0.0) + rejected * p[v];
  return law;
}

template <class Policy>
trial_result
typical_trials(const Policy& policy, const sampling::sampling_params& sp, std::uint64_t seed) {
  const bigram<float> target(p_logits), draft(q_logits);
  return run_trials(policy, target, draft, sp, drafting::sampled, seed);
}

std::vector<double> typical_law(const sampling::sampling_params& sp) {
  const bigram<float> target(p_logits), draft(q_logits);
  const auto p = reference_rows(target, sp);
  const auto q = reference_rows(draft, sp);
  return typical_first_law(p[ix(x0)], q[ix(x0)], verify::typical_acceptance{});
}
} // namespace

TEST_CASE("typical_acceptance: the first token follows its analytic law",
          "[stat][verify][chain][cpu]") {
  SECTION("T = 1") {
    const auto law = typical_law(t1());
    const auto res = typical_trials(verify::typical_acceptance{}, t1(), 151);
    CHECK_FITS(res.firsts, law, res);
  }
  SECTION("T = 0.7, min-p = 0.2") {
    const auto law = typical_law(t07_min_p02());
    const auto res = typical_trials(verify::typical_acceptance{}, t07_min_p02(), 152);
    CHECK_FITS(res.firsts, law, res);
  }
}

TEST_CASE("power: typical acceptance correcting from the residual instead of p fails the fit",
          "[stat][verify][chain][cpu]") {
  const auto law = typical_law(t1());
  const auto res = typical_trials(typical_with_residual_correction{}, t1(), 151);
  CHECK(res.bad == 0);
  CHECK_FAILS(res.firsts, law);
}

// ------------------------------------------------------------------------------------------------
// Storage types: half and bfloat16 rows
// ------------------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE(
    "rejection_sampling on 16-bit rows follows the target of the rounded logits (T = 1)",
    "[stat][verify][chain][cpu]",
    half,
    bfloat16) {
  const bigram<TestType> target(p_logits), draft(q_logits);
  const auto law = reference_pair_law(reference_rows(target, t1())); // from the rounded values
  const auto res =
      run_trials(verify::rejection_sampling{}, target, draft, t1(), drafting::sampled, 161);
  CHECK_FITS(res.pairs, law, res);
}
