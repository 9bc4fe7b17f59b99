// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Sampling parameters (temperature, top-k, top-p, min-p) and their validation.

#include <specdec/config.hpp>

#include <specdec/core/math.hpp>
#include <specdec/core/status.hpp>

#include <cstdint>

SPECDEC_NAMESPACE_BEGIN

/// @brief Sampling parameters, the processed distribution of a row, and categorical sampling.
namespace sampling {

/// Temperatures below this are greedy decoding (argmax, first index on ties), as in DeepSpec.
inline constexpr float greedy_temperature_threshold = 1e-5f;

/// @brief How a row of logits or probabilities becomes the distribution that is sampled and
/// verified.
///
/// The transforms apply in this order, identically to target and draft rows:
/// 1. temperature: p proportional to exp(logit / T) (for probability rows, p^(1/T));
///    T below greedy_temperature_threshold means greedy (a one-hot at the first argmax);
/// 2. top-k: keep the tokens whose value is at least the k-th largest (ties at the boundary kept);
/// 3. min-p: keep the tokens with p >= min_p * max p;
/// 4. top-p: of what is left, renormalised, keep the smallest set of most probable tokens whose
///    mass reaches top_p (ties at the boundary kept);
/// 5. renormalise.
///
/// Every filter keeps the most probable token, so the result always has mass.
struct sampling_params {
  float temperature = 1.0f; ///< >= 0; below greedy_temperature_threshold means greedy
  std::int32_t top_k = 0;   ///< 0 disables top-k; otherwise >= 1
  float top_p = 1.0f;       ///< in (0, 1]; 1 disables top-p
  float min_p = 0.0f;       ///< in [0, 1]; 0 disables min-p

  /// @brief True when these parameters select greedy decoding.
  /// @return `temperature < greedy_temperature_threshold`
  /// @hd
  SPECDEC_HD constexpr bool greedy() const noexcept {
    return temperature < greedy_temperature_threshold;
  }
  /// @brief True when any truncation (top-k, top-p, min-p) is active.
  /// @return `top_k > 0 || top_p < 1 || min_p > 0`
  /// @hd
  SPECDEC_HD constexpr bool truncates() const noexcept {
    return top_k > 0 || top_p < 1.0f || min_p > 0.0f;
  }
  /// @brief Checks the parameters: errc::ok, or the code naming the first bad field. NaN is
  /// rejected.
  /// @return errc::ok, else the first of errc::invalid_temperature (negative, NaN or above
  ///   3e38), errc::invalid_top_k, errc::invalid_top_p and errc::invalid_min_p that applies
  /// @par Complexity
  /// Constant. @hd
  SPECDEC_HD constexpr errc validate() const noexcept {
    if (!(temperature >= 0.0f) || temperature > 3.0e38f)
      return errc::invalid_temperature;
    if (top_k < 0)
      return errc::invalid_top_k;
    if (!(top_p > 0.0f && top_p <= 1.0f))
      return errc::invalid_top_p;
    if (!(min_p >= 0.0f && min_p <= 1.0f))
      return errc::invalid_min_p;
    return errc::ok;
  }
};

} // namespace sampling

SPECDEC_NAMESPACE_END
