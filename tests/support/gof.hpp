// SPDX-License-Identifier: Apache-2.0
#pragma once
// Goodness-of-fit verdicts shared by the statistical tests: chi-square of observed counts
// against a law, the 1 - alpha bound, the TV distance, and the two Catch2 checks: a correct rule
// fits (every trial clean, no impossible cell, statistic below the bound) and a biased one fails.

#include "support/stats.hpp"
#include <cstdint>
#include <vector>

namespace specdec_test {

/// A fit of counts against a law.
struct fit {
  chi_square_result chi;
  double bound = 0.0; ///< the 1 - alpha chi-square quantile for the degrees of freedom
  double tv = 0.0;    ///< total variation between the empirical law and the law
};

/// Chi-square, bound and TV of `counts` against `law`.
inline fit
evaluate(const std::vector<std::uint64_t>& counts, const std::vector<double>& law, double alpha) {
  fit f;
  std::uint64_t n = 0;
  for (auto c : counts)
    n += c;
  f.chi = chi_square(counts, expected_counts(law, n));
  f.bound = chi_square_upper_quantile(f.chi.degrees_of_freedom, alpha);
  f.tv = total_variation(empirical(counts), law);
  return f;
}

} // namespace specdec_test

/// A correct rule: `bad` trials zero, all `trials` counted, expected counts >= 5, no draw in an
/// impossible cell, statistic below the 1 - alpha bound.
#define SPECDEC_CHECK_FITS(counts, law, bad, mean_accepted_, trials, alpha)                        \
  do {                                                                                             \
    const specdec_test::fit f_ = specdec_test::evaluate((counts), (law), (alpha));                 \
    const double statistic = f_.chi.statistic;                                                     \
    const double bound = f_.bound;                                                                 \
    const int dof = f_.chi.degrees_of_freedom;                                                     \
    const double tv = f_.tv;                                                                       \
    const double mean_accepted = (mean_accepted_);                                                 \
    CAPTURE(statistic, bound, dof, tv, mean_accepted);                                             \
    CHECK((bad) == 0);                                                                             \
    CHECK(f_.chi.total == (trials));                                                               \
    CHECK(f_.chi.min_expected >= 5.0);                                                             \
    CHECK(f_.chi.impossible == 0);                                                                 \
    CHECK(statistic < bound);                                                                      \
  } while (0)

/// A biased rule: it must fail (statistic above the 1 - alpha bound, or an impossible draw).
#define SPECDEC_CHECK_FAILS(counts, law, alpha)                                                    \
  do {                                                                                             \
    const specdec_test::fit f_ = specdec_test::evaluate((counts), (law), (alpha));                 \
    const double statistic = f_.chi.statistic;                                                     \
    const double bound = f_.bound;                                                                 \
    const int dof = f_.chi.degrees_of_freedom;                                                     \
    const double tv = f_.tv;                                                                       \
    const auto impossible = f_.chi.impossible;                                                     \
    CAPTURE(statistic, bound, dof, tv, impossible);                                                \
    CHECK((statistic > bound || impossible > 0));                                                  \
  } while (0)
