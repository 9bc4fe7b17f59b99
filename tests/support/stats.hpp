// SPDX-License-Identifier: Apache-2.0
#pragma once
// Test support for distribution tests (STYLE C8):
//  - chi-square goodness of fit over cells with expected counts, impossible cells reported apart;
//  - the chi-square upper quantile (Wilson-Hilferty) and the normal upper quantile;
//  - total-variation distance;
//  - pooled_chi_square: the same with cells expected fewer than 5 times pooled into one;
//  - reference_processed: an independent, sort-based double-precision implementation of the
//    processed distribution of sampling/params.hpp (temperature, top-k, min-p, top-p, greedy).
// Nothing here calls the library: tests compare the library against it.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

namespace specdec_test {

// ------------------------------------------------------------------------------------------------
// Chi-square and friends
// ------------------------------------------------------------------------------------------------

/// Result of a chi-square goodness-of-fit computation.
struct chi_square_result {
  double statistic = 0.0;       ///< sum over cells with expected > 0 of (O - E)^2 / E
  int degrees_of_freedom = 0;   ///< (number of cells with expected > 0) - 1
  std::uint64_t impossible = 0; ///< observations in cells whose expected count is 0
  double min_expected = 0.0;    ///< smallest positive expected count (validity of the test)
  std::uint64_t total = 0;      ///< number of observations
};

/// Chi-square statistic of `observed` counts against `expected` counts (same length). Cells
/// with expected count 0 do not enter the statistic: any observation there is a separate
/// failure, counted in `impossible`.
inline chi_square_result chi_square(const std::vector<std::uint64_t>& observed,
                                    const std::vector<double>& expected) {
  chi_square_result r;
  r.min_expected = std::numeric_limits<double>::infinity();
  int cells = 0;
  for (std::size_t i = 0; i < observed.size(); ++i) {
    const double o = static_cast<double>(observed[i]);
    r.total += observed[i];
    if (!(expected[i] > 0.0)) {
      r.impossible += observed[i];
      continue;
    }
    ++cells;
    r.min_expected = std::min(r.min_expected, expected[i]);
    r.statistic += (o - expected[i]) * (o - expected[i]) / expected[i];
  }
  r.degrees_of_freedom = cells - 1;
  return r;
}

/// Expected counts of `n` draws from the law `probabilities` (which must sum to 1).
inline std::vector<double> expected_counts(const std::vector<double>& probabilities,
                                           std::uint64_t n) {
  std::vector<double> e(probabilities.size());
  for (std::size_t i = 0; i < e.size(); ++i)
    e[i] = probabilities[i] * static_cast<double>(n);
  return e;
}

/// Chi-square of `observed` against `expected` with every cell expected fewer than 5 times
/// pooled into one (cell 0 of the pooled lists, present even when empty), so the chi-square law
/// applies.
inline chi_square_result pooled_chi_square(const std::vector<std::uint64_t>& observed,
                                           const std::vector<double>& expected) {
  std::vector<std::uint64_t> pooled_counts{0};
  std::vector<double> pooled_expected{0.0};
  for (std::size_t i = 0; i < observed.size(); ++i) {
    if (expected[i] < 5.0) {
      pooled_counts[0] += observed[i];
      pooled_expected[0] += expected[i];
    } else {
      pooled_counts.push_back(observed[i]);
      pooled_expected.push_back(expected[i]);
    }
  }
  return chi_square(pooled_counts, pooled_expected);
}

/// z with P(Z > z) = alpha for a standard normal Z, 0 < alpha < 1: bisection on std::erfc
/// (accurate to double rounding).
inline double normal_upper_quantile(double alpha) {
  double lo = -40.0, hi = 40.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (0.5 * std::erfc(mid / std::sqrt(2.0)) > alpha)
      lo = mid;
    else
      hi = mid;
  }
  return 0.5 * (lo + hi);
}

/// The upper alpha quantile of the chi-square law with `dof` degrees of freedom, by the
/// Wilson-Hilferty cube-root normal approximation:
///   x = k (1 - 2/(9k) + z sqrt(2/(9k)))^3,  z the normal upper alpha quantile.
/// Accuracy at alpha = 1e-6 (checked against the regularised incomplete gamma function with
/// mpmath): it overstates the exact quantile by 15% at k = 1, 5.5% at k = 4, 2.3% at k = 10,
/// 0.6% at k = 35 and 0.16% at k = 100, so the exact tail probability of the returned bound is
/// 1.6e-7 (k = 1), 4.2e-7 (k = 4), 6.3e-7 (k = 10), 8.4e-7 (k = 35): a correct sampler fails a
/// test bounded this way with probability below alpha (and fixed seeds make it deterministic).
inline double chi_square_upper_quantile(int dof, double alpha) {
  const double k = static_cast<double>(dof);
  const double z = normal_upper_quantile(alpha);
  const double c = 2.0 / (9.0 * k);
  const double t = 1.0 - c + z * std::sqrt(c);
  return k * t * t * t;
}

/// True when the fit is accepted at level alpha: no impossible observation and the statistic at
/// or below the upper alpha quantile.
inline bool fits(const chi_square_result& r, double alpha) {
  return r.impossible == 0 && r.degrees_of_freedom >= 1
         && r.statistic <= chi_square_upper_quantile(r.degrees_of_freedom, alpha);
}

/// Empirical law of counts (divides by their total).
inline std::vector<double> empirical(const std::vector<std::uint64_t>& counts) {
  double n = 0.0;
  for (auto c : counts)
    n += static_cast<double>(c);
  std::vector<double> p(counts.size(), 0.0);
  if (n > 0.0)
    for (std::size_t i = 0; i < p.size(); ++i)
      p[i] = static_cast<double>(counts[i]) / n;
  return p;
}

/// Total-variation distance: half the L1 distance of two laws on the same cells.
inline double total_variation(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i)
    s += std::fabs(a[i] - b[i]);
  return 0.5 * s;
}

// ------------------------------------------------------------------------------------------------
// Reference processed distribution
// ------------------------------------------------------------------------------------------------

/// Sampling parameters of the reference (the fields of sampling::sampling_params, in double).
struct reference_params {
  double temperature = 1.0; ///< below 1e-5: greedy
  int top_k = 0;            ///< 0: off
  double top_p = 1.0;       ///< 1: off
  double min_p = 0.0;       ///< 0: off

  reference_params() = default;
  /// From any struct with temperature / top_k / top_p / min_p (e.g. sampling::sampling_params).
  template <class P>
  explicit reference_params(const P& p)
      : temperature(p.temperature)
      , top_k(p.top_k)
      , top_p(p.top_p)
      , min_p(p.min_p) {}
};

/// A processed row of the reference.
struct reference_row {
  std::vector<double> p; ///< processed probabilities (sum 1)
  /// The closest call among the filter decisions: min over tokens of |p_i / p_max - min_p|
  /// (min-p) and over the descending prefixes up to the top-p cut of |mass / kept mass - top_p|
  /// (top-p); +inf without these filters. A float implementation can only disagree with this
  /// reference about which tokens survive when the margin is within its rounding (~1e-6).
  double margin = std::numeric_limits<double>::infinity();
};

/// The processed distribution of a row of logits (or probabilities), in double precision, with
/// the order and tie rules of sampling/params.hpp: temperature (greedy below 1e-5: one-hot at
/// the first argmax), top-k (ties at the k-th value kept), min-p (p >= min_p * max p), top-p
/// over the renormalised remainder (smallest descending prefix whose mass reaches top_p, ties
/// at the boundary kept), renormalise. -inf logits (probability 0) are legal; the row is
/// assumed otherwise valid (finite logits, non-negative probabilities, some mass).
inline reference_row reference_processed(const std::vector<double>& values,
                                         bool probabilities,
                                         const reference_params& rp) {
  const std::size_t n = values.size();
  reference_row out;
  out.p.assign(n, 0.0);
  if (n == 0)
    return out;
  if (rp.temperature < 1e-5) {
    std::size_t best = 0;
    for (std::size_t i = 1; i < n; ++i)
      if (values[i] > values[best])
        best = i;
    out.p[best] = 1.0;
    return out;
  }
  std::vector<double> w(n, 0.0);
  if (probabilities) {
    for (std::size_t i = 0; i < n; ++i)
      w[i] = values[i] > 0.0 ? std::pow(values[i], 1.0 / rp.temperature) : 0.0;
  } else {
    const double mx = *std::max_element(values.begin(), values.end());
    for (std::size_t i = 0; i < n; ++i)
      w[i] = std::exp((values[i] - mx) / rp.temperature);
  }
  const double z0 = std::accumulate(w.begin(), w.end(), 0.0);
  for (auto& x : w)
    x /= z0;

  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return w[a] != w[b] ? w[a] > w[b] : a < b;
  });
  std::vector<bool> keep(n, true);
  if (rp.top_k > 0 && static_cast<std::size_t>(rp.top_k) < n) {
    const double kth = w[order[static_cast<std::size_t>(rp.top_k) - 1]];
    for (std::size_t i = 0; i < n; ++i)
      keep[i] = keep[i] && w[i] >= kth;
  }
  if (rp.min_p > 0.0) {
    const double pmax = w[order[0]];
    for (std::size_t i = 0; i < n; ++i) {
      keep[i] = keep[i] && w[i] >= rp.min_p * pmax;
      if (w[i] > 0.0)
        out.margin = std::min(out.margin, std::fabs(w[i] / pmax - rp.min_p));
    }
  }
  if (rp.top_p < 1.0) {
    double total = 0.0;
    for (std::size_t i = 0; i < n; ++i)
      total += keep[i] ? w[i] : 0.0;
    double cum = 0.0;
    double cut = 0.0;
    for (std::size_t j = 0; j < n;) {
      const double v = w[order[j]];
      std::size_t e = j;
      for (; e < n && w[order[e]] == v; ++e)
        cum += keep[order[e]] ? w[order[e]] : 0.0;
      out.margin = std::min(out.margin, std::fabs(cum / total - rp.top_p));
      if (cum / total >= rp.top_p) {
        cut = v;
        break;
      }
      j = e;
    }
    for (std::size_t i = 0; i < n; ++i)
      keep[i] = keep[i] && w[i] >= cut;
  }
  double z = 0.0;
  for (std::size_t i = 0; i < n; ++i)
    z += keep[i] ? w[i] : 0.0;
  for (std::size_t i = 0; i < n; ++i)
    out.p[i] = keep[i] ? w[i] / z : 0.0;
  return out;
}

/// Shannon entropy in nats of a law.
inline double entropy_nats(const std::vector<double>& p) {
  double h = 0.0;
  for (double x : p)
    if (x > 0.0)
      h -= x * std::log(x);
  return h;
}

} // namespace specdec_test
