// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief Drafter training losses and their gradients with respect to the logits, engine-neutral:
///        soft and hard cross-entropy, the L1 distance between probability rows, the confidence
///        head's BCE-with-logits and soft label, and DeepSpec's position / step weights.
///
/// The losses are those of DeepSpec (anchors/deepspec-training.md section 3): DSpark / DFlash
/// train on hard CE against the ground-truth token, the L1 distance ||softmax(z) - p||_1 (the
/// paper's "Ltv", = 2 TV) against the target's row, and a BCE of the confidence logit against the
/// detached soft label c* = clamp(1 - 0.5 ||softmax(z) - p||_1, 0, 1), each slot weighted by
/// exp(-k / 4); EAGLE-3 trains on soft CE against the target's row, step k weighted by 0.8^k.
///
/// Every loss takes one row and a weight w >= 0, returns w * loss and ADDS w * dloss/dlogits into
/// a caller-owned gradient row (skipped when that span is empty), so the rows of a batch
/// accumulate into one gradient buffer. A weighted mean over rows is weighted_mean: feed it
/// each result's value and its weight. With w = 0 the value is 0 and nothing is added (a masked
/// slot never turns a sum into NaN, even when its loss is infinite).
///
/// Inputs are checked before anything is written: on error the gradient row is untouched. The
/// order of the checks (the first failure is reported): sizes (errc::shape_mismatch), weight
/// (errc::invalid_argument), logits (a NaN or +inf logit: errc::invalid_value; every logit -inf or
/// an empty row: errc::zero_mass_row), then the label (errc::token_out_of_range) or the target row
/// (a negative, NaN or infinite probability, or a sum more than 1e-3 from 1: errc::invalid_value).
/// -inf logits are allowed (masked vocabulary entries get probability 0).
///
/// Arithmetic: whatever T is, every value is computed in double from the inputs with a
/// max-shifted log-sum-exp (log-softmax is z - lse, never log(softmax)), and rounded to T once per
/// output value. Every product that feeds a sum goes through core/math.hpp's unfused dmul, so
/// results do not depend on -ffp-contract or -march (the project's flags rule); exp, log and
/// log1p are the platform's.

#include <specdec/config.hpp>

#include <specdec/core/math.hpp>
#include <specdec/core/status.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

SPECDEC_NAMESPACE_BEGIN

namespace train {

/// @brief The result of a loss call: a status and the weighted loss.
/// @tparam T the scalar type of the logits (float or double)
template <class T>
struct [[nodiscard]] loss_result {
  status st;   ///< ok, or why nothing was computed
  T value = 0; ///< weight * loss on success (0 when the weight is 0), 0 on error
};

namespace detail {

using ::specdec::detail::dadd;
using ::specdec::detail::dmul;
using ::specdec::detail::dsub;

inline constexpr double prob_sum_tolerance = 1e-3;

inline double nan_d() noexcept {
  return std::numeric_limits<double>::quiet_NaN();
}

// Max and log-sum-exp of a logit row, after the value checks.
struct row_scan {
  errc code = errc::ok;
  double max = 0;
  double lse = 0;
};

template <class T>
row_scan scan_logits(std::span<const T> z) noexcept {
  row_scan r;
  if (z.empty()) {
    r.code = errc::zero_mass_row;
    return r;
  }
  double m = -std::numeric_limits<double>::infinity();
  for (const T v : z) {
    const auto x = static_cast<double>(v);
    if (std::isnan(x) || x == std::numeric_limits<double>::infinity()) {
      r.code = errc::invalid_value;
      return r;
    }
    m = x > m ? x : m;
  }
  if (m == -std::numeric_limits<double>::infinity()) {
    r.code = errc::zero_mass_row;
    return r;
  }
  double s = 0.0;
  for (const T v : z)
    s = dadd(s, std::exp(static_cast<double>(v) - m)); // the max term contributes exactly 1
  r.max = m;
  r.lse = dadd(m, std::log(s));
  return r;
}

// Checks a probability row (each value finite and >= 0, sum within 1e-3 of 1); its sum in `sum`.
template <class T>
errc check_probs(std::span<const T> p, double& sum) noexcept {
  double s = 0.0;
  for (const T v : p) {
    const auto x = static_cast<double>(v);
    if (!(x >= 0.0 && x <= std::numeric_limits<double>::max()))
      return errc::invalid_value;
    s = dadd(s, x);
  }
  if (!(std::fabs(s - 1.0) <= prob_sum_tolerance))
    return errc::invalid_value;
  sum = s;
  return errc::ok;
}

template <class T>
bool valid_weight(T w) noexcept {
  const auto x = static_cast<double>(w);
  return x >= 0.0 && x <= std::numeric_limits<double>::max();
}

// grad[i] = round_T(grad[i] + w * d), the product unfused.
template <class T>
void add_scaled(T& g, double w, double d) noexcept {
  g = static_cast<T>(dadd(static_cast<double>(g), dmul(w, d)));
}

template <class T>
loss_result<T> fail(errc code) noexcept {
  return loss_result<T>{status{code}, T(0)};
}

template <class T>
T weighted(double w, double loss) noexcept {
  return w == 0.0 ? T(0) : static_cast<T>(w * loss);
}

// The checks shared by the losses against a target row, in their documented order: sizes,
// weight, logits (scanned into `r`), target probabilities (their sum in `psum`).
template <class T>
errc check_pair(std::span<const T> logits,
                std::span<const T> target_probs,
                T weight,
                std::span<T> grad,
                row_scan& r,
                double& psum) noexcept {
  if (target_probs.size() != logits.size() || (!grad.empty() && grad.size() != logits.size()))
    return errc::shape_mismatch;
  if (!valid_weight(weight))
    return errc::invalid_argument;
  r = scan_logits(logits);
  if (r.code != errc::ok)
    return r.code;
  return check_probs(target_probs, psum);
}

// The L1 distance sum_v |q_v - p_v| of a scanned row, and S = sum_v sign(q_v - p_v) q_v.
template <class T>
void l1_terms(
    std::span<const T> z, std::span<const T> p, double lse, double& l1, double& s_dot_q) noexcept {
  double l = 0.0;
  double s = 0.0;
  for (std::size_t v = 0; v < z.size(); ++v) {
    const double q = std::exp(static_cast<double>(z[v]) - lse);
    const double d = q - static_cast<double>(p[v]);
    l = dadd(l, std::fabs(d));
    s = d > 0.0 ? dadd(s, q) : (d < 0.0 ? dsub(s, q) : s);
  }
  l1 = l;
  s_dot_q = s;
}

} // namespace detail

/// @brief Softmax of one logit row, max-shifted (no overflow for any finite logits).
/// @tparam T float or double
/// @param[in] logits the row z, V = logits.size(); -inf entries get probability 0
/// @param[out] out softmax(z), V entries (computed in double, rounded to T once each); all NaN
///             when z holds a NaN or +inf, when every entry is -inf, or when V = 0
/// @pre out.size() == logits.size() (checked by SPECDEC_ASSERT; with the check off, nothing is
///      written when the sizes differ)
/// @par Complexity
/// O(V), 2V exponentials; no allocation.
template <class T>
void softmax(std::span<const T> logits, std::span<T> out) noexcept {
  SPECDEC_ASSERT(out.size() == logits.size(), "train::softmax: out.size() != logits.size()");
  if (out.size() != logits.size())
    return;
  const detail::row_scan r = detail::scan_logits(logits);
  for (std::size_t v = 0; v < logits.size(); ++v)
    out[v] = r.code == errc::ok ? static_cast<T>(std::exp(static_cast<double>(logits[v]) - r.lse))
                                : static_cast<T>(detail::nan_d());
}

/// @brief Soft cross-entropy -sum_v p(v) log softmax(z)(v) of a draft row against a target
///        probability row (EAGLE-3's per-step loss), and its gradient.
///
/// Terms with p(v) = 0 contribute nothing (also where z_v = -inf); p(v) > 0 where z_v = -inf
/// gives an infinite loss (and a finite gradient). The gradient is the exact one of the value
/// returned, (sum_v p(v)) softmax(z) - p, i.e. softmax(z) - p for a normalised target.
/// @tparam T float or double
/// @param[in] logits draft logits z, V entries
/// @param[in] target_probs target probabilities p, V entries, each finite and >= 0, summing to 1
///            within 1e-3
/// @param[in] weight w, finite and >= 0
/// @param[in,out] grad empty, or V entries to which w * dloss/dz is added
/// @return status (see the file comment for the checks and their order; on error grad is
///         untouched and value is 0) and value = w * loss
/// @par Complexity
/// O(V), at most 2V exponentials (V more with a gradient); no allocation.
template <class T>
loss_result<T> soft_cross_entropy(std::span<const T> logits,
                                  std::span<const T> target_probs,
                                  T weight,
                                  std::span<T> grad) noexcept {
  detail::row_scan r{};
  double psum = 0.0;
  if (const errc e = detail::check_pair(logits, target_probs, weight, grad, r, psum); e != errc::ok)
    return detail::fail<T>(e);

  double loss = 0.0;
  for (std::size_t v = 0; v < logits.size(); ++v) {
    const auto p = static_cast<double>(target_probs[v]);
    if (p > 0.0)
      loss = detail::dadd(loss, detail::dmul(p, r.lse - static_cast<double>(logits[v])));
  }
  const auto w = static_cast<double>(weight);
  if (w != 0.0 && !grad.empty())
    for (std::size_t v = 0; v < logits.size(); ++v) {
      const double q = std::exp(static_cast<double>(logits[v]) - r.lse);
      const double d = detail::dsub(detail::dmul(psum, q), static_cast<double>(target_probs[v]));
      detail::add_scaled(grad[v], w, d);
    }
  return loss_result<T>{status{}, detail::weighted<T>(w, loss)};
}

/// @brief Hard cross-entropy -log softmax(z)(label) against one ground-truth token (DSpark's CE
///        term), and its gradient softmax(z) - onehot(label).
///
/// A label whose logit is -inf gives an infinite loss (and a finite gradient).
/// @tparam T float or double
/// @param[in] logits draft logits z, V entries
/// @param[in] label the ground-truth token, in [0, V)
/// @param[in] weight w, finite and >= 0
/// @param[in,out] grad empty, or V entries to which w * dloss/dz is added
/// @return status (see the file comment; errc::token_out_of_range for a label outside [0, V);
///         on error grad is untouched and value is 0) and value = w * loss
/// @par Complexity
/// O(V), V exponentials (V more with a gradient); no allocation.
template <class T>
loss_result<T> hard_cross_entropy(std::span<const T> logits,
                                  std::int32_t label,
                                  T weight,
                                  std::span<T> grad) noexcept {
  if (!grad.empty() && grad.size() != logits.size())
    return detail::fail<T>(errc::shape_mismatch);
  if (!detail::valid_weight(weight))
    return detail::fail<T>(errc::invalid_argument);
  const detail::row_scan r = detail::scan_logits(logits);
  if (r.code != errc::ok)
    return detail::fail<T>(r.code);
  if (label < 0 || static_cast<std::size_t>(label) >= logits.size())
    return detail::fail<T>(errc::token_out_of_range);

  const auto y = static_cast<std::size_t>(label);
  const double loss = r.lse - static_cast<double>(logits[y]);
  const auto w = static_cast<double>(weight);
  if (w != 0.0 && !grad.empty())
    for (std::size_t v = 0; v < logits.size(); ++v) {
      const double q = std::exp(static_cast<double>(logits[v]) - r.lse);
      detail::add_scaled(grad[v], w, v == y ? q - 1.0 : q);
    }
  return loss_result<T>{status{}, detail::weighted<T>(w, loss)};
}

/// @brief The L1 distance ||softmax(z) - p||_1 between the draft's and the target's probability
///        rows (DeepSpec's "L1" term, the paper's Ltv; = 2 TV), and a subgradient.
///
/// With q = softmax(z) and s = sign(q - p) (sign(0) = 0), the subgradient is
/// d/dz_j = q_j (s_j - sum_v s_v q_v); it is the gradient wherever no q_v equals p_v.
/// @tparam T float or double
/// @param[in] logits draft logits z, V entries
/// @param[in] target_probs target probabilities p, V entries, each finite and >= 0, summing to 1
///            within 1e-3
/// @param[in] weight w, finite and >= 0
/// @param[in,out] grad empty, or V entries to which w * dloss/dz is added
/// @return status (see the file comment; on error grad is untouched and value is 0) and
///         value = w * loss, the loss in [0, 2] (up to the target's normalisation)
/// @par Complexity
/// O(V), 2V exponentials (V more with a gradient); no allocation.
template <class T>
loss_result<T> l1_probability_distance(std::span<const T> logits,
                                       std::span<const T> target_probs,
                                       T weight,
                                       std::span<T> grad) noexcept {
  detail::row_scan r{};
  double psum = 0.0;
  if (const errc e = detail::check_pair(logits, target_probs, weight, grad, r, psum); e != errc::ok)
    return detail::fail<T>(e);

  double l1 = 0.0;
  double s_dot_q = 0.0;
  detail::l1_terms(logits, target_probs, r.lse, l1, s_dot_q);
  const auto w = static_cast<double>(weight);
  if (w != 0.0 && !grad.empty())
    for (std::size_t v = 0; v < logits.size(); ++v) {
      const double q = std::exp(static_cast<double>(logits[v]) - r.lse);
      const double d = q - static_cast<double>(target_probs[v]);
      const double s = d > 0.0 ? 1.0 : (d < 0.0 ? -1.0 : 0.0);
      detail::add_scaled(grad[v], w, detail::dmul(q, s - s_dot_q));
    }
  return loss_result<T>{status{}, detail::weighted<T>(w, l1)};
}

/// @brief The analytic acceptance estimate c* = clamp(1 - 0.5 ||softmax(z) - p||_1, 0, 1): the
///        probability that rejection sampling accepts a draft from softmax(z) against p, and the
///        confidence head's (detached) soft label.
/// @tparam T float or double
/// @param[in] draft_logits draft logits z, V entries
/// @param[in] target_probs target probabilities p, V entries, each finite and >= 0, summing to 1
///            within 1e-3
/// @return c* in [0, 1]; NaN for any input that l1_probability_distance() rejects
/// @par Complexity
/// O(V), 2V exponentials; no allocation.
template <class T>
[[nodiscard]] T acceptance_estimate(std::span<const T> draft_logits,
                                    std::span<const T> target_probs) noexcept {
  const auto nan = static_cast<T>(detail::nan_d());
  if (target_probs.size() != draft_logits.size())
    return nan;
  const detail::row_scan r = detail::scan_logits(draft_logits);
  if (r.code != errc::ok)
    return nan;
  double psum = 0.0;
  if (detail::check_probs(target_probs, psum) != errc::ok)
    return nan;
  double l1 = 0.0;
  double s_dot_q = 0.0;
  detail::l1_terms(draft_logits, target_probs, r.lse, l1, s_dot_q);
  const double c = detail::dsub(1.0, detail::dmul(0.5, l1));
  return static_cast<T>(c < 0.0 ? 0.0 : (c > 1.0 ? 1.0 : c));
}

/// @brief Binary cross-entropy with logits of the confidence head, -(y log sigmoid(z) +
///        (1 - y) log(1 - sigmoid(z))), in the stable form max(z, 0) - z y + log1p(exp(-|z|)),
///        and its gradient sigmoid(z) - y.
/// @tparam T float or double
/// @param[in] z the logit, finite
/// @param[in] label the (soft) label y in [0, 1], e.g. acceptance_estimate()
/// @param[in] weight w, finite and >= 0
/// @param[in,out] grad null, or a value to which w * dloss/dz is added
/// @return ok, errc::invalid_argument for a bad weight, errc::invalid_value for a non-finite z or
///         a label outside [0, 1] (checked in that order; on error *grad is untouched and value is
///         0); value = w * loss
/// @par Complexity
/// O(1).
template <class T>
loss_result<T> bce_with_logits(T z, T label, T weight, T* grad) noexcept {
  if (!detail::valid_weight(weight))
    return detail::fail<T>(errc::invalid_argument);
  const auto x = static_cast<double>(z);
  const auto y = static_cast<double>(label);
  if (!std::isfinite(x) || !(y >= 0.0 && y <= 1.0))
    return detail::fail<T>(errc::invalid_value);
  const double loss = detail::dadd(detail::dsub(x > 0.0 ? x : 0.0, detail::dmul(x, y)),
                                   std::log1p(std::exp(-std::fabs(x))));
  const auto w = static_cast<double>(weight);
  if (w != 0.0 && grad != nullptr) {
    const double e = std::exp(-std::fabs(x)); // in (0, 1]: no overflow on either side
    const double sig = x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    detail::add_scaled(*grad, w, sig - y);
  }
  return loss_result<T>{status{}, detail::weighted<T>(w, loss)};
}

/// @brief DeepSpec's DSpark / DFlash position weight exp(-k / gamma) of slot k of a block
///        (`loss_decay_gamma` = 4.0 in every config: 1, .7788, .6065, .4724, .3679, .2865, .2231
///        for k = 0..6).
/// @param[in] k 0-based slot in the block (the paper's 1-based position minus 1)
/// @param[in] decay_gamma gamma > 0 (the paper writes the block size, 7; the configs use 4)
/// @return the weight in (0, 1]; NaN when k < 0 or gamma is not > 0 (NaN included)
/// @par Complexity
/// O(1).
[[nodiscard]] inline double block_position_weight(int k, double decay_gamma = 4.0) noexcept {
  if (k < 0 || !(decay_gamma > 0.0))
    return detail::nan_d();
  return std::exp(-static_cast<double>(k) / decay_gamma);
}

/// @brief EAGLE-3's training-time-test step weight decay^k (`step_loss_decay` = 0.8).
/// @param[in] k 0-based TTT step
/// @param[in] decay the per-step factor, >= 0
/// @return decay^k (1 at k = 0); NaN when k < 0 or decay is negative or NaN
/// @par Complexity
/// O(1).
[[nodiscard]] inline double ttt_step_weight(int k, double decay = 0.8) noexcept {
  if (k < 0 || !(decay >= 0.0))
    return detail::nan_d();
  return std::pow(decay, static_cast<double>(k));
}

/// @brief A weighted mean sum_i w_i l_i / sum_i w_i accumulated from weighted values, for
///        DeepSpec's per-term normalisation (numerator sum of w * loss, denominator sum of w).
///
/// Feed it each loss_result's value (already w * loss) and the weight w. DeepSpec divides by
/// (sum of w + 1e-6) summed over ranks; this is the plain ratio, 0 when no weight was added.
/// Merging two accumulators is adding their members.
struct weighted_mean {
  double num = 0; ///< sum of the weighted values
  double den = 0; ///< sum of the weights

  /// @brief Adds one weighted value and its weight. O(1).
  /// @param[in] weighted_value w * l (e.g. loss_result::value)
  /// @param[in] weight w
  void add(double weighted_value, double weight) noexcept {
    num += weighted_value;
    den += weight;
  }
  /// @brief The mean. O(1).
  /// @return num / den; 0 when den == 0
  [[nodiscard]] double value() const noexcept {
    return den == 0.0 ? 0.0 : num / den;
  }
};

} // namespace train

SPECDEC_NAMESPACE_END
