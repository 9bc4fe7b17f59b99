// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Partial row scans and their combination: how an executor splits `scan_row` (validation,
/// max, first argmax, online weight sum) across threads or CTAs and merges the pieces.

#include <specdec/config.hpp>

#include <specdec/core/executor.hpp>
#include <specdec/core/math.hpp>
#include <specdec/core/types.hpp>

SPECDEC_NAMESPACE_BEGIN

namespace sampling {

/// @brief A partial result of `scan_row` over part of a row: what the threads of a CTA, and the
/// CTAs of the split-vocabulary path, combine.
struct scan_partial {
  float max;       ///< largest valid value (-inf: none)
  index_t argmax;  ///< first index of max (-1: none)
  float sum;       ///< weight sum relative to max (exp mode) or plain sum (linear)
  index_t invalid; ///< invalid values seen
};

/// @brief The partial of no value: max -inf, argmax -1, sum 0, no invalid value.
/// @return that partial
/// @hd
SPECDEC_HD inline scan_partial empty_partial() noexcept {
  return {-::specdec::detail::infinity(), -1, 0.0f, 0};
}

/// @brief Combines two scan partials (commutative; associative except for the rounding of `sum`).
/// @param[in] a one partial
/// @param[in] b the other
/// @param[in] exp_mode true in weight_mode::exp_scaled: sums are rescaled to the larger max
/// @param[in] inv_temp 1 / temperature
/// @return max, first argmax and invalid count exactly; the sum rounded as two products and an
///   add (exp mode) or one add
/// @par Complexity
/// Constant. @hd
SPECDEC_HD inline scan_partial
combine_scan(const scan_partial& a, const scan_partial& b, bool exp_mode, float inv_temp) noexcept {
  const float ninf = -::specdec::detail::infinity();
  scan_partial r;
  r.invalid = a.invalid + b.invalid;
  r.max = ::specdec::detail::max_f(a.max, b.max);
  if (a.max > b.max)
    r.argmax = a.argmax;
  else if (b.max > a.max)
    r.argmax = b.argmax;
  else
    r.argmax = a.argmax < 0
                   ? b.argmax
                   : (b.argmax < 0 ? a.argmax : ::specdec::detail::min_i(a.argmax, b.argmax));
  if (!exp_mode) {
    r.sum = a.sum + b.sum;
    return r;
  }
  const float sa =
      a.max == ninf
          ? 0.0f
          : ::specdec::detail::fmul(a.sum, ::specdec::detail::exp_f((a.max - r.max) * inv_temp));
  const float sb =
      b.max == ninf
          ? 0.0f
          : ::specdec::detail::fmul(b.sum, ::specdec::detail::exp_f((b.max - r.max) * inv_temp));
  r.sum = sa + sb;
  return r;
}

/// @brief Adds the value at index i to a partial (indices must arrive in increasing order).
/// @param[in,out] p the partial
/// @param[in] x the raw value
/// @param[in] i its index
/// @param[in] mode as in `scan_row`: invalid values (NaN, +Inf, negative in linear mode) are
///   counted, not summed
/// @param[in] inv_temp 1 / temperature
/// @par Complexity
/// Constant. @hd
SPECDEC_HD inline void
scan_add(scan_partial& p, float x, index_t i, weight_mode mode, float inv_temp) noexcept {
  const float inf = ::specdec::detail::infinity();
  const bool linear = mode == weight_mode::linear;
  if (::specdec::detail::is_nan(x) || x == inf || (linear && x < 0.0f)) {
    ++p.invalid;
    return;
  }
  if (x > p.max) {
    if (mode == weight_mode::exp_scaled && p.max > -inf)
      p.sum = ::specdec::detail::fmul(p.sum, ::specdec::detail::exp_f((p.max - x) * inv_temp));
    p.max = x;
    p.argmax = i;
  }
  if (mode == weight_mode::one_hot || !(p.max > -inf))
    return;
  p.sum += linear ? x : ::specdec::detail::exp_f((x - p.max) * inv_temp);
}

/// @brief The `scan_row` result of a partial that covers a whole row.
/// @param[in] p the partial
/// @param[in] mode the weight mode it was computed in
/// @return its fields, with weight_sum = 1 (or 0 without a valid value) in one_hot mode
/// @hd
SPECDEC_HD inline row_scan_result finish_scan(const scan_partial& p, weight_mode mode) noexcept {
  row_scan_result r;
  r.max = p.max;
  r.argmax = p.argmax;
  r.invalid = p.invalid;
  r.weight_sum = mode == weight_mode::one_hot ? (p.argmax >= 0 ? 1.0f : 0.0f) : p.sum;
  return r;
}

} // namespace sampling

SPECDEC_NAMESPACE_END
