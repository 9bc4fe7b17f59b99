// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief Reliability of a confidence head: expected calibration error (ECE), AUROC and Brier
///        score, per draft position, with the binning of the DSpark reference evaluator.
///
/// The estimators follow the DSpark specification (section 6.4) exactly, in double precision:
///
/// - every prediction is first clamped to [1e-8, 1 - 1e-8];
/// - ECE uses 20 equal-width *coarse* bins, b = clamp(floor(pred * 20), 0, 19):
///   ECE = sum_b count_b |sum_pred_b / count_b - sum_label_b / count_b| / sum_b count_b;
/// - AUROC uses 1000 equal-width *fine* bins, f = clamp(floor(pred * 1000), 0, 999), with
///   pos_f = sum label and neg_f = sum (1 - label):
///   AUC = sum_f pos_f (sum_{f' < f} neg_f' + neg_f / 2) / (P N), so two predictions that share a
///   fine bin count as a tie worth one half. It is NaN when P = 0 or N = 0;
/// - Brier = sum (pred - label)^2 / count, plus the mean prediction and the mean label.
///
/// Labels are the realised prefix acceptances (0 or 1). For a verified round of length L with n
/// accepted drafts, draft position k = 1..L (0-based k - 1) has prediction
/// pred_k = prod_{i <= k} c_i (the *cumulative* confidence) and label [k <= n].
/// reliability_accumulator collects such rounds per position; the free functions ece(), auroc(),
/// brier() and reliability() evaluate one set of (prediction, label) pairs.

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

/// @namespace specdec::calib
/// @brief Confidence calibration: reliability metrics (ECE, AUROC, Brier) and Sequential
/// Temperature Scaling of per-position confidence heads.

SPECDEC_NAMESPACE_BEGIN

namespace calib {

/// Number of equal-width bins of the ECE estimator and of the reliability diagram.
inline constexpr int coarse_bins = 20;
/// Number of equal-width bins of the AUROC estimator (predictions in one bin are ties).
inline constexpr int fine_bins = 1000;
/// Lower clamp applied to every prediction before it is binned or scored.
inline constexpr double pred_floor = 1e-8;
/// Upper clamp applied to every prediction before it is binned or scored.
inline constexpr double pred_ceil = 1.0 - 1e-8;

namespace detail {

constexpr double nan_value() noexcept {
  return std::numeric_limits<double>::quiet_NaN();
}

inline double clamp_pred(double p) noexcept {
  return p < pred_floor ? pred_floor : (p > pred_ceil ? pred_ceil : p);
}

/// Bin of a clamped prediction among `bins` equal-width bins of [0, 1].
inline std::size_t bin_of(double p, int bins) noexcept {
  const double f = std::floor(p * static_cast<double>(bins));
  if (!(f > 0.0))
    return 0;
  if (f >= static_cast<double>(bins - 1))
    return static_cast<std::size_t>(bins - 1);
  return static_cast<std::size_t>(f);
}

/// Numerically stable logistic function in double precision.
inline double sigmoid(double z) noexcept {
  if (z >= 0.0)
    return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

/// The checks shared by every consumer of confidence logits: temperatures empty or at least
/// z.size() of them (else errc::shape_mismatch), no NaN logit (errc::invalid_value), every used
/// temperature finite and > 0 (errc::invalid_temperature). O(z.size()).
template <class T>
status check_logits(std::span<const T> z, std::span<const double> temperatures) noexcept {
  if (!temperatures.empty() && temperatures.size() < z.size())
    return status{errc::shape_mismatch};
  for (std::size_t k = 0; k < z.size(); ++k) {
    if (std::isnan(z[k]))
      return status{errc::invalid_value};
    if (!temperatures.empty()
        && !(temperatures[k] > 0.0 && temperatures[k] <= std::numeric_limits<double>::max()))
      return status{errc::invalid_temperature};
  }
  return status{};
}

/// The coarse (ECE) histogram. Labels may be soft (in [0, 1]); they are summed as doubles.
struct coarse_histogram {
  std::array<std::int64_t, coarse_bins> count{};
  std::array<double, coarse_bins> sum_pred{};
  std::array<double, coarse_bins> sum_label{};

  void add(double p, double y) noexcept {
    const std::size_t b = bin_of(p, coarse_bins);
    ++count[b];
    sum_pred[b] += p;
    sum_label[b] += y;
  }
  void merge(const coarse_histogram& o) noexcept {
    for (std::size_t b = 0; b < count.size(); ++b) {
      count[b] += o.count[b];
      sum_pred[b] += o.sum_pred[b];
      sum_label[b] += o.sum_label[b];
    }
  }
  std::int64_t total() const noexcept {
    std::int64_t n = 0;
    for (const std::int64_t c : count)
      n += c;
    return n;
  }
  double ece() const noexcept {
    double num = 0.0;
    std::int64_t n = 0;
    for (std::size_t b = 0; b < count.size(); ++b) {
      if (count[b] == 0)
        continue;
      const double c = static_cast<double>(count[b]);
      num += c * std::fabs(sum_pred[b] / c - sum_label[b] / c);
      n += count[b];
    }
    return n > 0 ? num / static_cast<double>(n) : nan_value();
  }
};

/// Everything one position keeps: coarse and fine bins and the Brier and mean sums.
struct position_bins {
  coarse_histogram coarse;
  std::array<double, fine_bins> pos{};
  std::array<double, fine_bins> neg{};
  double sum_sq = 0.0;
  double sum_pred = 0.0;
  double sum_label = 0.0;

  /// p must already be clamped.
  void add(double p, double y) noexcept {
    coarse.add(p, y);
    const std::size_t f = bin_of(p, fine_bins);
    pos[f] += y;
    neg[f] += 1.0 - y;
    sum_sq += (p - y) * (p - y);
    sum_pred += p;
    sum_label += y;
  }
  void merge(const position_bins& o) noexcept {
    coarse.merge(o.coarse);
    for (std::size_t f = 0; f < pos.size(); ++f) {
      pos[f] += o.pos[f];
      neg[f] += o.neg[f];
    }
    sum_sq += o.sum_sq;
    sum_pred += o.sum_pred;
    sum_label += o.sum_label;
  }
  double auroc() const noexcept {
    double p_total = 0.0;
    double n_total = 0.0;
    for (std::size_t f = 0; f < pos.size(); ++f) {
      p_total += pos[f];
      n_total += neg[f];
    }
    if (!(p_total > 0.0) || !(n_total > 0.0))
      return nan_value();
    double num = 0.0;
    double below = 0.0; // negatives in lower fine bins
    for (std::size_t f = 0; f < pos.size(); ++f) {
      num += pos[f] * (below + 0.5 * neg[f]);
      below += neg[f];
    }
    return num / (p_total * n_total);
  }
};

/// errc::shape_mismatch for different sizes, errc::invalid_value for a prediction that is NaN or
/// outside [0, 1] or a label other than 0 or 1.
inline status check_pairs(std::span<const double> pred, std::span<const double> label) noexcept {
  if (pred.size() != label.size())
    return status{errc::shape_mismatch};
  for (std::size_t i = 0; i < pred.size(); ++i) {
    if (!(pred[i] >= 0.0 && pred[i] <= 1.0))
      return status{errc::invalid_value};
    if (!(label[i] == 0.0 || label[i] == 1.0))
      return status{errc::invalid_value};
  }
  return status{};
}

} // namespace detail

/// @brief The reliability metrics of one draft position (or a summary over positions).
///
/// Every value is NaN when `count` is 0; `auroc` is also NaN when all labels are equal.
struct position_metrics {
  std::int64_t count = 0;                   ///< (prediction, label) pairs scored
  double ece = detail::nan_value();         ///< expected calibration error, 20 bins
  double auroc = detail::nan_value();       ///< area under the ROC curve, 1000 bins
  double brier = detail::nan_value();       ///< mean squared error of the predictions
  double pred_mean = detail::nan_value();   ///< mean clamped prediction
  double target_mean = detail::nan_value(); ///< mean label (the realised acceptance rate)
};

/// @brief One bin of a reliability diagram (predicted probability against observed frequency).
struct reliability_bin {
  double lower = 0.0;                      ///< left edge of the bin, b / 20
  double upper = 0.0;                      ///< right edge of the bin, (b + 1) / 20
  std::int64_t count = 0;                  ///< predictions that fell into the bin
  double mean_pred = detail::nan_value();  ///< mean clamped prediction in the bin (NaN if empty)
  double mean_label = detail::nan_value(); ///< mean label in the bin (NaN if empty)
};

/// @brief All reliability metrics of a set of (prediction, label) pairs in one pass.
/// @param[in] pred predictions in [0, 1] (clamped to [1e-8, 1 - 1e-8] before use)
/// @param[in] label labels, each exactly 0 or 1, one per prediction
/// @param[out] out the metrics; every value NaN when the spans are empty. Unchanged on error.
/// @return ok; errc::shape_mismatch when the sizes differ; errc::invalid_value for a NaN
///         prediction, one outside [0, 1], or a label other than 0 and 1
/// @par Complexity
/// O(n + 1000) time, O(1) extra memory (about 16 KiB of stack for the fine bins).
[[nodiscard]] inline status reliability(std::span<const double> pred,
                                        std::span<const double> label,
                                        position_metrics& out) noexcept {
  const status s = detail::check_pairs(pred, label);
  if (!s.ok())
    return s;
  detail::position_bins bins;
  for (std::size_t i = 0; i < pred.size(); ++i)
    bins.add(detail::clamp_pred(pred[i]), label[i]);
  position_metrics m;
  m.count = static_cast<std::int64_t>(pred.size());
  if (m.count > 0) {
    const double n = static_cast<double>(m.count);
    m.ece = bins.coarse.ece();
    m.auroc = bins.auroc();
    m.brier = bins.sum_sq / n;
    m.pred_mean = bins.sum_pred / n;
    m.target_mean = bins.sum_label / n;
  }
  out = m;
  return status{};
}

/// @brief Expected calibration error with 20 equal-width bins (spec 6.4).
/// @param[in] pred predictions in [0, 1] (clamped to [1e-8, 1 - 1e-8] before binning)
/// @param[in] label labels, each exactly 0 or 1, one per prediction
/// @param[out] out the ECE, in [0, 1]; NaN when the spans are empty. Unchanged on error.
/// @return ok, or the errors of reliability()
/// @par Complexity
/// O(n) time, O(1) extra memory.
[[nodiscard]] inline status
ece(std::span<const double> pred, std::span<const double> label, double& out) noexcept {
  const status s = detail::check_pairs(pred, label);
  if (!s.ok())
    return s;
  detail::coarse_histogram h;
  for (std::size_t i = 0; i < pred.size(); ++i)
    h.add(detail::clamp_pred(pred[i]), label[i]);
  out = h.ece();
  return status{};
}

/// @brief Area under the ROC curve from 1000 fine bins; pairs in one bin count as ties (1/2).
/// @param[in] pred predictions in [0, 1] (clamped to [1e-8, 1 - 1e-8] before binning)
/// @param[in] label labels, each exactly 0 or 1, one per prediction
/// @param[out] out the AUROC in [0, 1]; NaN when there is no positive or no negative label.
///             Unchanged on error.
/// @return ok, or the errors of reliability()
/// @par Complexity
/// O(n + 1000) time, O(1) extra memory (about 16 KiB of stack).
[[nodiscard]] inline status
auroc(std::span<const double> pred, std::span<const double> label, double& out) noexcept {
  position_metrics m;
  const status s = reliability(pred, label, m);
  if (s.ok())
    out = m.auroc;
  return s;
}

/// @brief Brier score: mean of (clamped prediction - label)^2.
/// @param[in] pred predictions in [0, 1] (clamped to [1e-8, 1 - 1e-8] before use)
/// @param[in] label labels, each exactly 0 or 1, one per prediction
/// @param[out] out the Brier score in [0, 1]; NaN when the spans are empty. Unchanged on error.
/// @return ok, or the errors of reliability()
/// @par Complexity
/// O(n) time, O(1) extra memory.
[[nodiscard]] inline status
brier(std::span<const double> pred, std::span<const double> label, double& out) noexcept {
  const status s = detail::check_pairs(pred, label);
  if (!s.ok())
    return s;
  double sum = 0.0;
  for (std::size_t i = 0; i < pred.size(); ++i) {
    const double d = detail::clamp_pred(pred[i]) - label[i];
    sum += d * d;
  }
  out = pred.empty() ? detail::nan_value() : sum / static_cast<double>(pred.size());
  return status{};
}

/// @brief Per-position reliability statistics of a confidence head, fed one verified round at a
///        time (the repo's `PerPositionConfidenceMetrics`).
///
/// Position p (0-based) is draft position k = p + 1. For a round of verified length L with n
/// accepted drafts, add_round() scores pred_k = prod_{i <= k} c_i against the label [k <= n] at
/// positions 0 .. L - 1. Collect only rounds decoded without a length cut (theta = 0), as the
/// reference does, or the positions past a cut are missing. Memory: about 17 KiB per position.
class reliability_accumulator {
public:
  /// @brief An accumulator for draft positions 0 .. positions - 1, all empty.
  /// @param[in] positions number of draft positions (gamma); a negative value is taken as 0
  /// @par Complexity
  /// O(positions) time and memory.
  explicit reliability_accumulator(index_t positions = 0)
      : bins_(static_cast<std::size_t>(positions > 0 ? positions : 0)) {}

  /// @brief Number of draft positions tracked. O(1).
  /// @return the positions given at construction
  [[nodiscard]] index_t positions() const noexcept {
    return static_cast<index_t>(bins_.size());
  }

  /// @brief Scores one (prediction, label) pair at a position.
  /// @param[in] position 0-based draft position, in [0, positions())
  /// @param[in] pred the predicted probability, in [0, 1] (clamped to [1e-8, 1 - 1e-8])
  /// @param[in] label the outcome, exactly 0 or 1
  /// @return ok; errc::invalid_argument for a position out of range; errc::invalid_value for a NaN
  ///         or out-of-range prediction or a label other than 0 and 1. Nothing changes on error.
  /// @par Complexity
  /// O(1).
  [[nodiscard]] status add(index_t position, double pred, double label) noexcept {
    if (position < 0 || position >= positions())
      return status{errc::invalid_argument};
    const status s =
        detail::check_pairs(std::span<const double>(&pred, 1), std::span<const double>(&label, 1));
    if (!s.ok())
      return s;
    bins_[static_cast<std::size_t>(position)].add(detail::clamp_pred(pred), label);
    return status{};
  }

  /// @brief Scores one verified round from its cumulative predictions.
  ///
  /// Position k - 1 (k = 1..length) gets prediction pred_cumulative[k - 1] and label [k <= n].
  /// A round of length 0 (an empty proposal) changes nothing.
  /// @param[in] pred_cumulative cumulative confidences a_k = prod_{i <= k} c_i; at least `length`
  ///            values (only the first `length` are read), each in [0, 1]
  /// @param[in] accepted drafts accepted in the round, n, in [0, length]
  /// @param[in] length drafts verified in the round, L (the effective proposal length), in
  ///            [0, positions()]
  /// @return ok; errc::invalid_argument when accepted is outside [0, length] or length < 0;
  ///         errc::shape_mismatch when length > positions() or length > pred_cumulative.size();
  ///         errc::invalid_value for a NaN or out-of-range prediction. All checks come first:
  ///         nothing changes on error.
  /// @par Complexity
  /// O(length).
  [[nodiscard]] status
  add_round(std::span<const double> pred_cumulative, index_t accepted, index_t length) noexcept {
    const status s = check_round(static_cast<index_t>(pred_cumulative.size()), accepted, length);
    if (!s.ok())
      return s;
    const std::size_t len = static_cast<std::size_t>(length);
    for (std::size_t k = 0; k < len; ++k)
      if (!(pred_cumulative[k] >= 0.0 && pred_cumulative[k] <= 1.0))
        return status{errc::invalid_value};
    for (std::size_t k = 0; k < len; ++k)
      bins_[k].add(detail::clamp_pred(pred_cumulative[k]),
                   static_cast<index_t>(k) < accepted ? 1.0 : 0.0);
    return status{};
  }

  /// @brief Scores one verified round from its confidence logits z (double precision).
  ///
  /// pred_k = prod_{i <= k} sigmoid(z_i / T_i), computed in double, then as add_round().
  /// @param[in] z confidence logits, at least `length` values (only the first `length` are read);
  ///            infinities are allowed, NaN is not
  /// @param[in] accepted drafts accepted in the round, n, in [0, length]
  /// @param[in] length drafts verified in the round, L, in [0, positions()]
  /// @param[in] temperatures per-position temperatures T_i (e.g. from fit_sts()); empty means all
  ///            1, otherwise at least `length` finite values > 0
  /// @return as add_round(); also errc::invalid_value for a NaN logit, errc::shape_mismatch for a
  ///         non-empty `temperatures` shorter than `length`, errc::invalid_temperature for a
  ///         temperature that is not finite and > 0. Nothing changes on error.
  /// @par Complexity
  /// O(length).
  [[nodiscard]] status add_round_logits(std::span<const double> z,
                                        index_t accepted,
                                        index_t length,
                                        std::span<const double> temperatures = {}) noexcept {
    return add_logits_impl(z, accepted, length, temperatures);
  }

  /// @brief As the double overload, for single-precision logits (widened to double first).
  /// @param[in] z confidence logits, at least `length` values; NaN is not allowed
  /// @param[in] accepted drafts accepted in the round, n, in [0, length]
  /// @param[in] length drafts verified in the round, L, in [0, positions()]
  /// @param[in] temperatures per-position temperatures; empty means all 1
  /// @return as the double overload
  /// @par Complexity
  /// O(length).
  [[nodiscard]] status add_round_logits(std::span<const float> z,
                                        index_t accepted,
                                        index_t length,
                                        std::span<const double> temperatures = {}) noexcept {
    return add_logits_impl(z, accepted, length, temperatures);
  }

  /// @brief Adds another accumulator's statistics (e.g. from another worker).
  /// @param[in] other an accumulator with the same number of positions
  /// @return ok, or errc::shape_mismatch when the position counts differ (nothing changes)
  /// @par Complexity
  /// O(positions x 1000).
  [[nodiscard]] status merge(const reliability_accumulator& other) noexcept {
    if (other.positions() != positions())
      return status{errc::shape_mismatch};
    for (std::size_t p = 0; p < bins_.size(); ++p)
      bins_[p].merge(other.bins_[p]);
    return status{};
  }

  /// @brief Forgets every observation (the number of positions is kept).
  /// @par Complexity
  /// O(positions x 1000).
  void reset() noexcept {
    for (detail::position_bins& b : bins_)
      b = detail::position_bins{};
  }

  /// @brief Number of pairs scored at a position. O(20).
  /// @param[in] position 0-based draft position
  /// @return the count; 0 for a position out of range
  [[nodiscard]] std::int64_t count(index_t position) const noexcept {
    if (position < 0 || position >= positions())
      return 0;
    return bins_[static_cast<std::size_t>(position)].coarse.total();
  }

  /// @brief The metrics of one position.
  /// @param[in] position 0-based draft position
  /// @return count, ECE, AUROC, Brier, pred_mean, target_mean; all NaN (count 0) for an empty
  ///         position or one out of range, AUROC NaN when the labels there are all equal
  /// @par Complexity
  /// O(1000).
  [[nodiscard]] position_metrics metrics(index_t position) const noexcept {
    position_metrics m;
    if (position < 0 || position >= positions())
      return m;
    const detail::position_bins& b = bins_[static_cast<std::size_t>(position)];
    m.count = b.coarse.total();
    if (m.count == 0)
      return m;
    const double n = static_cast<double>(m.count);
    m.ece = b.coarse.ece();
    m.auroc = b.auroc();
    m.brier = b.sum_sq / n;
    m.pred_mean = b.sum_pred / n;
    m.target_mean = b.sum_label / n;
    return m;
  }

  /// @brief The metrics of every position, in position order.
  /// @return positions() entries, as metrics(p)
  /// @par Complexity
  /// O(positions x 1000) time; allocates the result.
  [[nodiscard]] std::vector<position_metrics> per_position() const {
    std::vector<position_metrics> out;
    out.reserve(bins_.size());
    for (index_t p = 0; p < positions(); ++p)
      out.push_back(metrics(p));
    return out;
  }

  /// @brief Count-weighted summary over positions (spec 6.4).
  ///
  /// `count` is the total; ece, brier, pred_mean and target_mean are means of the per-position
  /// values weighted by count; auroc is the count-weighted mean over the positions whose AUROC is
  /// not NaN (NaN when there is none). Everything is NaN when nothing was scored.
  /// @return the summary
  /// @par Complexity
  /// O(positions x 1000).
  [[nodiscard]] position_metrics summary() const noexcept {
    position_metrics s;
    double w = 0.0;
    double w_auc = 0.0;
    double ece_sum = 0.0;
    double brier_sum = 0.0;
    double pred_sum = 0.0;
    double target_sum = 0.0;
    double auc_sum = 0.0;
    for (index_t p = 0; p < positions(); ++p) {
      const position_metrics m = metrics(p);
      if (m.count == 0)
        continue;
      const double c = static_cast<double>(m.count);
      s.count += m.count;
      w += c;
      ece_sum += c * m.ece;
      brier_sum += c * m.brier;
      pred_sum += c * m.pred_mean;
      target_sum += c * m.target_mean;
      if (!std::isnan(m.auroc)) {
        w_auc += c;
        auc_sum += c * m.auroc;
      }
    }
    if (s.count == 0)
      return s;
    s.ece = ece_sum / w;
    s.brier = brier_sum / w;
    s.pred_mean = pred_sum / w;
    s.target_mean = target_sum / w;
    s.auroc = w_auc > 0.0 ? auc_sum / w_auc : detail::nan_value();
    return s;
  }

  /// @brief Reliability-diagram data of one position: the 20 coarse bins of the ECE estimator.
  /// @param[in] position 0-based draft position
  /// @return 20 bins in order (edges b/20, (b+1)/20, count, mean prediction, mean label; the means
  ///         are NaN in an empty bin); all bins empty for a position out of range
  /// @par Complexity
  /// O(20) time; allocates the result.
  [[nodiscard]] std::vector<reliability_bin> diagram(index_t position) const {
    std::vector<reliability_bin> out(static_cast<std::size_t>(coarse_bins));
    for (std::size_t b = 0; b < out.size(); ++b) {
      out[b].lower = static_cast<double>(b) / coarse_bins;
      out[b].upper = static_cast<double>(b + 1) / coarse_bins;
    }
    if (position < 0 || position >= positions())
      return out;
    const detail::coarse_histogram& h = bins_[static_cast<std::size_t>(position)].coarse;
    for (std::size_t b = 0; b < out.size(); ++b) {
      out[b].count = h.count[b];
      if (h.count[b] > 0) {
        const double c = static_cast<double>(h.count[b]);
        out[b].mean_pred = h.sum_pred[b] / c;
        out[b].mean_label = h.sum_label[b] / c;
      }
    }
    return out;
  }

private:
  status check_round(index_t available, index_t accepted, index_t length) const noexcept {
    if (length < 0 || accepted < 0 || accepted > length)
      return status{errc::invalid_argument};
    if (length > positions() || length > available)
      return status{errc::shape_mismatch};
    return status{};
  }

  template <class T>
  status add_logits_impl(std::span<const T> z,
                         index_t accepted,
                         index_t length,
                         std::span<const double> temperatures) noexcept {
    const status s = check_round(static_cast<index_t>(z.size()), accepted, length);
    if (!s.ok())
      return s;
    const std::size_t len = static_cast<std::size_t>(length);
    if (const status c = detail::check_logits(z.first(len), temperatures); !c.ok())
      return c;
    double a = 1.0;
    for (std::size_t k = 0; k < len; ++k) {
      const double t = temperatures.empty() ? 1.0 : temperatures[k];
      a *= detail::sigmoid(static_cast<double>(z[k]) / t);
      bins_[k].add(detail::clamp_pred(a), static_cast<index_t>(k) < accepted ? 1.0 : 0.0);
    }
    return status{};
  }

  std::vector<detail::position_bins> bins_;
};

} // namespace calib

SPECDEC_NAMESPACE_END
