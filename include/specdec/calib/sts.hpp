// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief Sequential Temperature Scaling (STS) of a per-position confidence head (DSpark paper
///        section 3.2.1, specification section 7), and the calibrated confidences it yields.
///
/// The confidence head gives, at draft position k, a logit z_k whose sigmoid estimates the
/// probability that draft k is accepted given that drafts 1..k-1 were. A scheduler uses the
/// *cumulative* products a_k = prod_{i <= k} c_i, so STS calibrates those: each position gets a
/// temperature T_k > 0 and c_k = sigmoid(z_k / T_k). The temperatures are fitted left to right on
/// held-out rounds (decoded without a length cut), each by a one-dimensional grid search:
///
///     prefix_j = 1 for every round j
///     for k = 1..gamma:
///         S_k = rounds with L_j >= k
///         T_k = argmin_{T in grid} ECE({prefix_j sigmoid(z_{j,k} / T)}, {y_{j,k}}), j in S_k
///         prefix_j *= sigmoid(z_{j,k} / T_k) for j in S_k      (the calibrated prefix is frozen)
///
/// ECE is the 20-bin estimator of calib/reliability.hpp (predictions clamped to
/// [1e-8, 1 - 1e-8]); ties go to the first minimum in grid order. The labels y_{j,k} are the
/// realised prefix acceptances [k <= n_j] or, as an option, the soft labels prod_{i <= k} c*_{j,i}
/// built from the analytic acceptances c* (decode/round_metrics.hpp analytic_acceptance()).
/// Scaling a logit by a positive temperature preserves order, so the AUROC of position 1 (and of
/// every conditional c_k) is unchanged; the cumulative products of later positions may reorder.

#include <specdec/config.hpp>

#include <specdec/calib/reliability.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace calib {

/// @brief The default STS temperature grid {0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6}
///        (specification section 7, a library choice: the paper only says "1D grid search").
/// @return the grid, in search order
/// @par Complexity
/// O(1); allocates the result.
[[nodiscard]] inline std::vector<double> sts_grid_default() {
  return {0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0};
}

/// @brief Which labels STS fits the cumulative confidences to.
enum class sts_labels : std::uint8_t {
  hard, ///< realised prefix acceptances y_k = [k <= n] (the reference's choice)
  soft  ///< soft labels y_k = prod_{i <= k} c*_i from each round's analytic acceptances
};

/// @brief One held-out round: the confidence logits of its verified drafts and its outcome.
///
/// The round's verified length is L = z.size(). The spans are non-owning: the data must outlive
/// the fit_sts() call.
struct sts_round {
  std::span<const double> z;         ///< confidence logits z_1..z_L (NaN not allowed)
  index_t accepted = 0;              ///< drafts accepted, n, in [0, L] (hard labels)
  std::span<const double> soft = {}; ///< analytic acceptances c*_1..c*_L in [0, 1] (soft labels)
};

/// @brief Settings of fit_sts().
struct sts_config {
  /// Candidate temperatures in search order; each finite and > 0, at least one. Include 1 so
  /// that STS can never do worse than the uncalibrated head at a position.
  std::vector<double> grid = sts_grid_default();
  /// Number of draft positions gamma to fit; 0 means the longest round. Rounds may be shorter.
  index_t positions = 0;
  sts_labels labels = sts_labels::hard; ///< label kind
};

/// @brief The result of fit_sts(): temperatures and the ECEs that chose them, per position.
///
/// Position p (0-based) is draft position k = p + 1. A position that no round reaches keeps
/// T = 1 and reports count 0 and NaN ECEs.
struct sts_result {
  std::vector<double> temperatures; ///< T_k per position
  std::vector<std::int64_t> count;  ///< rounds that verified the position, |S_k|
  std::vector<double> ece_raw;      ///< ECE of the uncalibrated products (every T = 1)
  std::vector<double> ece;          ///< ECE of the calibrated products (the minimum found)
  /// ECE of every grid candidate given the frozen calibrated prefix, row-major
  /// [positions, grid size].
  std::vector<double> ece_grid;
  index_t grid_size = 0; ///< number of grid candidates (the row length of ece_grid)

  /// @brief Number of positions fitted. O(1).
  /// @return temperatures.size()
  [[nodiscard]] index_t positions() const noexcept {
    return static_cast<index_t>(temperatures.size());
  }
  /// @brief ECE of grid candidate g at position p given the calibrated prefix. O(1).
  /// @param[in] p 0-based position, in [0, positions())
  /// @param[in] g index into the grid, in [0, grid_size)
  /// @return the ECE; NaN when the position has no data or an index is out of range
  [[nodiscard]] double ece_at(index_t p, index_t g) const noexcept {
    if (p < 0 || p >= positions() || g < 0 || g >= grid_size)
      return std::numeric_limits<double>::quiet_NaN();
    return ece_grid[static_cast<std::size_t>(p * grid_size + g)];
  }
};

/// @brief The calibrated conditional confidence sigmoid(z / T), stable for any z.
/// @param[in] z a confidence logit (infinities allowed)
/// @param[in] temperature T > 0
/// @return the calibrated confidence in [0, 1]; NaN when z is NaN or T is not positive
/// @par Complexity
/// O(1).
[[nodiscard]] inline double calibrated_confidence(double z, double temperature) noexcept {
  if (!(temperature > 0.0))
    return std::numeric_limits<double>::quiet_NaN();
  return detail::sigmoid(z / temperature);
}

/// @brief Checks an STS temperature grid.
/// @param[in] grid candidate temperatures
/// @return ok; errc::invalid_argument when empty; errc::invalid_temperature when a value is NaN,
///         infinite, zero or negative
/// @par Complexity
/// O(grid size).
[[nodiscard]] inline status validate_grid(std::span<const double> grid) noexcept {
  if (grid.empty())
    return status{errc::invalid_argument};
  for (const double t : grid)
    if (!(t > 0.0 && t <= std::numeric_limits<double>::max()))
      return status{errc::invalid_temperature};
  return status{};
}

/// @brief Fits per-position temperatures by Sequential Temperature Scaling (see the file
///        comment for the exact procedure).
/// @param[in] rounds held-out rounds decoded without a length cut; a round of length 0
///            contributes nothing
/// @param[in] config grid, number of positions and label kind
/// @param[out] out temperatures, counts and ECEs per position (see sts_result); unchanged on
///             error
/// @return ok; the errors of validate_grid(); errc::invalid_argument for a negative
///         config.positions or a round whose accepted count is outside [0, L];
///         errc::shape_mismatch for a round longer than a non-zero config.positions, or (soft
///         labels) whose `soft` span has a size other than L; errc::invalid_value for a NaN
///         logit or (soft labels) a soft label that is NaN or outside [0, 1]
/// @par Complexity
/// O(|grid| x sum_j L_j) time, O(rounds + positions x |grid|) memory.
[[nodiscard]] inline status
fit_sts(std::span<const sts_round> rounds, const sts_config& config, sts_result& out) {
  const status g = validate_grid(config.grid);
  if (!g.ok())
    return g;
  if (config.positions < 0)
    return status{errc::invalid_argument};
  const bool soft = config.labels == sts_labels::soft;
  std::size_t gamma = static_cast<std::size_t>(config.positions);
  std::size_t longest = 0;
  for (const sts_round& r : rounds) {
    const std::size_t len = r.z.size();
    if (r.accepted < 0 || static_cast<std::size_t>(r.accepted) > len)
      return status{errc::invalid_argument};
    if (config.positions > 0 && len > gamma)
      return status{errc::shape_mismatch};
    if (soft && r.soft.size() != len)
      return status{errc::shape_mismatch};
    for (std::size_t k = 0; k < len; ++k) {
      if (std::isnan(r.z[k]))
        return status{errc::invalid_value};
      if (soft && !(r.soft[k] >= 0.0 && r.soft[k] <= 1.0))
        return status{errc::invalid_value};
    }
    longest = len > longest ? len : longest;
  }
  if (config.positions == 0)
    gamma = longest;

  const std::size_t n_grid = config.grid.size();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  sts_result res;
  res.grid_size = static_cast<index_t>(n_grid);
  res.temperatures.assign(gamma, 1.0);
  res.count.assign(gamma, 0);
  res.ece_raw.assign(gamma, nan);
  res.ece.assign(gamma, nan);
  res.ece_grid.assign(gamma * n_grid, nan);

  std::vector<double> prefix(rounds.size(), 1.0); // calibrated prefix products
  std::vector<double> raw(rounds.size(), 1.0);    // uncalibrated prefix products
  std::vector<double> label(soft ? rounds.size() : 0, 1.0);
  for (std::size_t k = 0; k < gamma; ++k) {
    // Labels and the raw products of position k for the rounds that reach it.
    detail::coarse_histogram h_raw;
    std::int64_t members = 0;
    for (std::size_t j = 0; j < rounds.size(); ++j) {
      const sts_round& r = rounds[j];
      if (r.z.size() <= k)
        continue;
      ++members;
      if (soft)
        label[j] *= r.soft[k];
      raw[j] *= detail::sigmoid(r.z[k]);
      const double y = soft ? label[j] : (static_cast<index_t>(k) < r.accepted ? 1.0 : 0.0);
      h_raw.add(detail::clamp_pred(raw[j]), y);
    }
    if (members == 0)
      continue; // later positions cannot have data either (S_{k+1} is a subset of S_k)
    res.count[k] = members;
    res.ece_raw[k] = h_raw.ece();

    std::size_t best = 0;
    for (std::size_t gi = 0; gi < n_grid; ++gi) {
      const double t = config.grid[gi];
      detail::coarse_histogram h;
      for (std::size_t j = 0; j < rounds.size(); ++j) {
        const sts_round& r = rounds[j];
        if (r.z.size() <= k)
          continue;
        const double y = soft ? label[j] : (static_cast<index_t>(k) < r.accepted ? 1.0 : 0.0);
        h.add(detail::clamp_pred(prefix[j] * detail::sigmoid(r.z[k] / t)), y);
      }
      const double e = h.ece();
      res.ece_grid[k * n_grid + gi] = e;
      if (e < res.ece_grid[k * n_grid + best])
        best = gi; // strict: the first minimum in grid order wins
    }
    res.temperatures[k] = config.grid[best];
    res.ece[k] = res.ece_grid[k * n_grid + best];
    for (std::size_t j = 0; j < rounds.size(); ++j)
      if (rounds[j].z.size() > k)
        prefix[j] *= detail::sigmoid(rounds[j].z[k] / config.grid[best]);
  }
  out = std::move(res);
  return status{};
}

/// @brief Convenience form of fit_sts(): hard labels, positions = the longest round, and only
///        the temperatures returned.
/// @param[in] rounds held-out rounds (see the other overload)
/// @param[in] grid candidate temperatures in search order (e.g. sts_grid_default())
/// @param[out] temperatures T_k per position (1 where no round reaches the position); unchanged
///             on error
/// @return as the other overload
/// @par Complexity
/// O(|grid| x sum_j L_j) time.
[[nodiscard]] inline status fit_sts(std::span<const sts_round> rounds,
                                    std::span<const double> grid,
                                    std::vector<double>& temperatures) {
  sts_config cfg;
  cfg.grid.assign(grid.begin(), grid.end());
  sts_result res;
  const status s = fit_sts(rounds, cfg, res);
  if (s.ok())
    temperatures = std::move(res.temperatures);
  return s;
}

namespace detail {

template <class T>
status calibrate_impl(std::span<const T> z,
                      std::span<const double> temperatures,
                      std::span<double> c,
                      std::span<double> a) noexcept {
  const std::size_t len = z.size();
  if (c.size() < len || (!a.empty() && a.size() < len))
    return status{errc::shape_mismatch};
  if (const status s = check_logits(z, temperatures); !s.ok())
    return s;
  double prod = 1.0;
  for (std::size_t k = 0; k < len; ++k) {
    const double t = temperatures.empty() ? 1.0 : temperatures[k];
    c[k] = sigmoid(static_cast<double>(z[k]) / t);
    prod *= c[k];
    if (!a.empty())
      a[k] = prod;
  }
  return status{};
}

} // namespace detail

/// @brief Calibrated conditional confidences c_k = sigmoid(z_k / T_k) and their cumulative
///        products a_k = prod_{i <= k} c_i (what the prefix scheduler consumes).
/// @param[in] z confidence logits of one block, L = z.size() (NaN not allowed)
/// @param[in] temperatures T_k per position (e.g. from fit_sts()); empty means all 1, otherwise
///            at least L values, each finite and > 0 (extra values are ignored)
/// @param[out] c calibrated conditionals; at least L entries, the first L written
/// @param[out] a cumulative products; empty to skip, otherwise at least L entries
/// @return ok; errc::shape_mismatch for a short `c`, `a` or `temperatures`; errc::invalid_value
///         for a NaN logit; errc::invalid_temperature for a bad temperature. All checks come
///         first: nothing is written on error.
/// @par Complexity
/// O(L).
[[nodiscard]] inline status calibrate(std::span<const double> z,
                                      std::span<const double> temperatures,
                                      std::span<double> c,
                                      std::span<double> a = {}) noexcept {
  return detail::calibrate_impl(z, temperatures, c, a);
}

/// @brief As the double overload, for single-precision logits (widened to double first).
/// @param[in] z confidence logits of one block (NaN not allowed)
/// @param[in] temperatures T_k per position; empty means all 1
/// @param[out] c calibrated conditionals; at least z.size() entries
/// @param[out] a cumulative products; empty to skip, otherwise at least z.size() entries
/// @return as the double overload
/// @par Complexity
/// O(L).
[[nodiscard]] inline status calibrate(std::span<const float> z,
                                      std::span<const double> temperatures,
                                      std::span<double> c,
                                      std::span<double> a = {}) noexcept {
  return detail::calibrate_impl(z, temperatures, c, a);
}

} // namespace calib

SPECDEC_NAMESPACE_END
