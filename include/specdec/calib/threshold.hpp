// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The static threshold cut on calibrated per-position conditionals (DSpark spec 6.3):
///        keep the leading drafts whose conditional confidence reaches theta.
///
/// A function of calibrated confidences, so it sits with the calibration code, below both the
/// drafters (propose/) that produce the confidences and the draft-length policies (sched/) that
/// apply the cut (sched::threshold_length).

#include <specdec/config.hpp>

#include <cstddef>
#include <span>

SPECDEC_NAMESPACE_BEGIN

namespace calib {

/// @brief Static threshold cut (spec 6.3): the number of leading positions whose conditional is
///        at least theta.
///
/// Returns the 0-based index of the first k with !(conditionals[k] >= theta) (a NaN conditional
/// cuts), or the size when there is none. theta <= 0 (or NaN) disables the cut and returns the
/// size. Lossless: whether x_k is sent depends only on c_1..c_k, functions of x_{<k}.
/// @param[in] conditionals the per-position (calibrated) conditionals c_k, not the products
/// @param[in] theta the threshold
/// @return gamma' in [0, conditionals.size()]
/// @par Complexity
/// O(gamma').
inline int threshold_cut(std::span<const float> conditionals, float theta) noexcept {
  const auto n = static_cast<int>(conditionals.size());
  if (!(theta > 0.0f))
    return n;
  for (int k = 0; k < n; ++k)
    if (!(conditionals[static_cast<std::size_t>(k)] >= theta))
      return k;
  return n;
}

/// @brief threshold_cut over double conditionals (as the drafters and sched/ keep them); same rule.
/// @param[in] conditionals the per-position conditionals c_k
/// @param[in] theta the threshold (<= 0 or NaN: no cut)
/// @return gamma' in [0, conditionals.size()]
/// @par Complexity
/// O(gamma').
inline int threshold_cut(std::span<const double> conditionals, double theta) noexcept {
  const auto n = static_cast<int>(conditionals.size());
  if (!(theta > 0.0))
    return n;
  for (int k = 0; k < n; ++k)
    if (!(conditionals[static_cast<std::size_t>(k)] >= theta))
      return k;
  return n;
}

} // namespace calib

SPECDEC_NAMESPACE_END
