// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief 16-bit floating-point storage types (IEEE half, bfloat16) and the dtype traits that
/// read any supported row element as float, identically on host and device.

#include <specdec/config.hpp>

#include <specdec/core/math.hpp>
#include <specdec/core/types.hpp>

#include <concepts>
#include <cstdint>
#include <type_traits>

SPECDEC_NAMESPACE_BEGIN

/// IEEE 754 binary16 storage, bit-compatible with CUDA's `__half`. Convert with dtype_traits.
struct half {
  std::uint16_t bits; ///< the raw binary16 bits
};

/// bfloat16 storage (the upper 16 bits of a binary32), bit-compatible with `__nv_bfloat16`.
struct bfloat16 {
  std::uint16_t bits; ///< the raw bfloat16 bits
};

/// @brief Traits of a row element type.
///
/// Specialised for float, half and bfloat16; the primary template is undefined, so an unsupported
/// type fails with "incomplete type dtype_traits<T>". Each specialisation provides `name`,
/// `to_float` and `from_float`.
/// @tparam T the element type (cv-unqualified)
template <class T>
struct dtype_traits;

/// Traits of float rows.
template <>
struct dtype_traits<float> {
  static constexpr const char* name = "float32"; ///< short name used in benchmarks and messages
  /// @brief Reads an element as float.
  /// @param[in] x the element
  /// @return `x`
  /// @hd
  SPECDEC_HD static constexpr float to_float(float x) noexcept {
    return x;
  }
  /// @brief Stores a float as an element (identity).
  /// @param[in] x the value
  /// @return `x`
  /// @hd
  SPECDEC_HD static constexpr float from_float(float x) noexcept {
    return x;
  }
};

/// Traits of bfloat16 rows.
template <>
struct dtype_traits<bfloat16> {
  static constexpr const char* name = "bfloat16"; ///< short name
  /// @brief Widens to float (exact).
  /// @param[in] x the element
  /// @return the float with the same value
  /// @hd
  SPECDEC_HD static inline float to_float(bfloat16 x) noexcept {
    return detail::bits_float(static_cast<std::uint32_t>(x.bits) << 16);
  }
  /// @brief Rounds a float to the nearest bfloat16, ties to even; NaN stays a quiet NaN.
  /// @param[in] f the value
  /// @return the rounded bfloat16
  /// @hd
  SPECDEC_HD static inline bfloat16 from_float(float f) noexcept {
    const std::uint32_t u = detail::float_bits(f);
    if (detail::is_nan(f))
      return bfloat16{static_cast<std::uint16_t>((u >> 16) | 0x40u)};
    const std::uint32_t rounded = u + 0x7fffu + ((u >> 16) & 1u);
    return bfloat16{static_cast<std::uint16_t>(rounded >> 16)};
  }
};

/// Traits of IEEE half rows.
template <>
struct dtype_traits<half> {
  static constexpr const char* name = "float16"; ///< short name
  /// @brief Widens to float (exact, subnormals included).
  /// @param[in] h the element
  /// @return the float with the same value (infinities and NaN kept)
  /// @hd
  SPECDEC_HD static inline float to_float(half h) noexcept {
    const std::uint32_t sign = static_cast<std::uint32_t>(h.bits & 0x8000u) << 16;
    const std::uint32_t exp = (h.bits >> 10) & 0x1fu;
    const std::uint32_t mant = h.bits & 0x3ffu;
    if (exp == 0u) { // zero or subnormal: mant * 2^-24 is exact in float
      const float mag = static_cast<float>(mant) * 5.9604644775390625e-8f;
      return sign != 0u ? -mag : mag;
    }
    if (exp == 31u)
      return detail::bits_float(sign | 0x7f800000u | (mant << 13));
    return detail::bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
  }
  /// @brief Rounds a float to the nearest half, ties to even, overflowing to infinity.
  /// @param[in] f the value
  /// @return the rounded half (a quiet NaN for NaN)
  /// @hd
  SPECDEC_HD static inline half from_float(float f) noexcept {
    const std::uint32_t u = detail::float_bits(f);
    const auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
    const std::uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u)
      return half{static_cast<std::uint16_t>(sign | 0x7e00u)}; // NaN
    if (absu >= 0x477ff000u)
      return half{static_cast<std::uint16_t>(sign | 0x7c00u)}; // overflow
    if (absu < 0x38800000u) { // result is subnormal or zero: round |f| * 2^24 to an integer
      const float scaled = detail::bits_float(absu) * 16777216.0f;
      auto m = static_cast<std::uint32_t>(scaled);
      const float rem = scaled - static_cast<float>(m);
      if (rem > 0.5f || (rem == 0.5f && (m & 1u) != 0u))
        ++m;
      return half{static_cast<std::uint16_t>(sign | m)};
    }
    const std::uint32_t rounded = absu + 0xfffu + ((absu >> 13) & 1u);
    return half{static_cast<std::uint16_t>(sign | ((rounded - 0x38000000u) >> 13))};
  }
};

/// @brief Satisfied by the element types a distribution row may hold: float, half, bfloat16.
///
/// Checked: `dtype_traits<std::remove_cv_t<T>>::to_float(x)` returns `float` for a `const T& x`.
/// Semantics: the conversion gives the same value on host and device (it is exact for the three
/// supported types).
/// @tparam T the candidate element type (cv-qualifiers are ignored)
template <class T>
concept row_element = requires(const T& x) {
  { dtype_traits<std::remove_cv_t<T>>::to_float(x) } -> std::same_as<float>;
};

/// @brief Reads element `i` of a row as float.
/// @tparam T the element type; must model row_element
/// @param[in] p the first element of the row
/// @param[in] i the index of the element
/// @return `dtype_traits<T>::to_float(p[i])`
/// @pre `p[i]` is a valid element (0 <= i < the row's length).
/// @hd
template <class T>
SPECDEC_HD inline float load_as_float(const T* p, index_t i) noexcept {
  return dtype_traits<std::remove_cv_t<T>>::to_float(p[i]);
}

/// @brief Reads elements i .. i+7 of a row as floats, with 16-byte loads when `p + i` is 16-byte
/// aligned (two loads for float, one for the 16-bit types) and element loads otherwise.
/// @tparam T the element type; must model row_element and be 2 or 4 bytes wide
/// @param[in] p the first element of the row
/// @param[in] i the index of the first element read
/// @param[out] out `out[c] = load_as_float(p, i + c)`, bit for bit
/// @pre elements i .. i+7 are valid.
/// @par Complexity
/// Constant. @hd
template <class T>
SPECDEC_HD inline void load8_as_float(const T* p, index_t i, float (&out)[8]) noexcept {
  using U = std::remove_cv_t<T>;
  static_assert(sizeof(U) == 2 || sizeof(U) == 4, "load8_as_float: 2- or 4-byte elements only");
  const T* q = p + i;
  if ((reinterpret_cast<std::uintptr_t>(q) & 15u) != 0u) {
    for (int c = 0; c < 8; ++c)
      out[c] = load_as_float(p, i + c);
    return;
  }
  std::uint32_t w[4];
  if constexpr (sizeof(U) == 4) {
    detail::load16(q, w);
    for (int c = 0; c < 4; ++c)
      out[c] = detail::bits_float(w[c]);
    detail::load16(q + 4, w);
    for (int c = 0; c < 4; ++c)
      out[4 + c] = detail::bits_float(w[c]);
  } else {
    detail::load16(q, w);
    for (int c = 0; c < 4; ++c) {
      out[2 * c] = dtype_traits<U>::to_float(U{static_cast<std::uint16_t>(w[c] & 0xffffu)});
      out[2 * c + 1] = dtype_traits<U>::to_float(U{static_cast<std::uint16_t>(w[c] >> 16)});
    }
  }
}

SPECDEC_NAMESPACE_END
