// SPDX-License-Identifier: Apache-2.0
#pragma once
// The two-draft goodness-of-fit check of a trained drafter's losslessness, shared by the
// miniature DeepSpec tests: a run draws two drafts per trial, verifies them by rejection sampling
// and records the first emitted token, and the second one when the first was the most likely
// token and was accepted; both must follow the target's law (pooled chi-square, alpha = 1e-6,
// 10^6 trials, 10^5 under ASan), and a drafter that misreports its rows must fail the first test
// with a fifth of the trials.

#include <catch2/catch.hpp>

#include "support/gof.hpp"
#include "support/sanitizer.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

namespace specdec_test {

/// What a two-draft run counted, and the laws it must follow.
struct two_draft_counts {
  std::vector<std::uint64_t> first, second;  ///< emitted token counts
  std::vector<double> law_first, law_second; ///< the target's laws
  std::uint64_t second_total = 0;            ///< trials that counted a second token
};

/// softmax of a float logit row, in double.
inline std::vector<double> softmax_d(const float* row, std::int64_t V) {
  std::vector<double> p(static_cast<std::size_t>(V));
  double mx = row[0];
  for (std::int64_t v = 1; v < V; ++v)
    mx = std::max(mx, static_cast<double>(row[v]));
  double s = 0;
  for (std::int64_t v = 0; v < V; ++v)
    s += p[static_cast<std::size_t>(v)] = std::exp(static_cast<double>(row[v]) - mx);
  for (auto& x : p)
    x /= s;
  return p;
}

/// Runs `run(trials, misreport)` honestly and misreported and checks the verdicts above.
inline void check_two_draft_gof(const std::function<two_draft_counts(std::uint64_t, bool)>& run) {
  const std::uint64_t draws = by_build<std::uint64_t>(1000000, 100000);
  const double alpha = 1e-6;
  {
    const two_draft_counts g = run(draws, false);
    const auto fa = pooled_chi_square(g.first, expected_counts(g.law_first, draws));
    const double bound = chi_square_upper_quantile(fa.degrees_of_freedom, alpha);
    CAPTURE(fa.statistic, fa.degrees_of_freedom, bound, fa.min_expected);
    CHECK(fits(fa, alpha));
    REQUIRE(g.second_total > 20000 / (address_sanitized ? 10 : 1));
    const auto fb = pooled_chi_square(g.second, expected_counts(g.law_second, g.second_total));
    CAPTURE(fb.statistic, fb.degrees_of_freedom, g.second_total);
    CHECK(fits(fb, alpha));
  }
  {
    const two_draft_counts g = run(draws / 5, true);
    const auto fa = pooled_chi_square(g.first, expected_counts(g.law_first, draws / 5));
    CAPTURE(fa.statistic, fa.degrees_of_freedom);
    CHECK_FALSE(fits(fa, alpha));
  }
}

} // namespace specdec_test
