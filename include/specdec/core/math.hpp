// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Host/device scalar math with identical results on both sides: min/max, bit casts,
/// finiteness tests, an order-preserving float key and a polynomial exp.
///
/// The only place where shared code branches on `__CUDA_ARCH__`. Multiplications and additions
/// in exp_f use `__fmul_rn`/`__fadd_rn` on the device so that nvcc never fuses them into FMAs;
/// the host must be compiled with `-ffp-contract=off` (the specdec CMake target adds it), so both
/// sides round the same way.

#include <specdec/config.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>

SPECDEC_NAMESPACE_BEGIN

namespace detail {

SPECDEC_HD constexpr float min_f(float a, float b) noexcept {
  return b < a ? b : a;
}
SPECDEC_HD constexpr float max_f(float a, float b) noexcept {
  return a < b ? b : a;
}
template <class I>
SPECDEC_HD constexpr I min_i(I a, I b) noexcept {
  return b < a ? b : a;
}
template <class I>
SPECDEC_HD constexpr I max_i(I a, I b) noexcept {
  return a < b ? b : a;
}

SPECDEC_HD inline std::uint32_t float_bits(float x) noexcept {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  return __builtin_bit_cast(std::uint32_t, x);
#endif
}
SPECDEC_HD inline float bits_float(std::uint32_t u) noexcept {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  return __builtin_bit_cast(float, u);
#endif
}

SPECDEC_HD inline float fmul(float a, float b) noexcept {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
SPECDEC_HD inline float fadd(float a, float b) noexcept {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

/// Double-precision product, rounded to nearest and never fused into an FMA (host and device).
SPECDEC_HD inline double dmul(double a, double b) noexcept {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
/// Double-precision sum, rounded to nearest and never fused (host and device).
SPECDEC_HD inline double dadd(double a, double b) noexcept {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
/// Double-precision difference, rounded to nearest and never fused (host and device).
SPECDEC_HD inline double dsub(double a, double b) noexcept {
#if defined(__CUDA_ARCH__)
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
/// Double-precision quotient, rounded to nearest (host and device).
SPECDEC_HD inline double ddiv(double a, double b) noexcept {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

/// True for NaN (bit test: unaffected by fast-math flags).
SPECDEC_HD inline bool is_nan(float x) noexcept {
  return (float_bits(x) & 0x7fffffffu) > 0x7f800000u;
}
/// True for finite values (not NaN, not +-Inf).
SPECDEC_HD inline bool is_finite(float x) noexcept {
  return (float_bits(x) & 0x7f800000u) != 0x7f800000u;
}
/// Positive infinity.
SPECDEC_HD inline float infinity() noexcept {
  return bits_float(0x7f800000u);
}

/// Maps a float to an unsigned key with the same order (-0 < +0; NaN above +Inf).
SPECDEC_HD inline std::uint32_t order_key(float x) noexcept {
  const std::uint32_t u = float_bits(x);
  return (u & 0x80000000u) != 0u ? ~u : (u | 0x80000000u);
}
/// Inverse of order_key.
SPECDEC_HD inline float from_order_key(std::uint32_t k) noexcept {
  return bits_float((k & 0x80000000u) != 0u ? (k & 0x7fffffffu) : ~k);
}

/// exp(x) to about 2 ulp for -87.33 <= x <= 88 (larger x give exp(88)), with exp(x) = 0 for x <
/// -87.33 (flushes the subnormal range) and exp(-inf) = 0; NaN stays NaN. Branch-free, so host
/// loops vectorise; bit-identical on host and device. Range reduction x = n ln2 + r with Cephes'
/// split ln2 and a degree-5 polynomial for exp(r) on [-ln2/2, ln2/2].
SPECDEC_HD inline float exp_f(float x) noexcept {
  const float xc = min_f(max_f(x == x ? x : 0.0f, -87.33654f), 88.0f); // NaN: computed as 0
  const float round_magic = 12582912.0f; // 1.5 * 2^23: adding and subtracting rounds to int
  const float fn = fadd(fadd(fmul(xc, 1.44269504088896341f), round_magic), -round_magic);
  const float r = fadd(fadd(xc, fmul(fn, -0.693359375f)), fmul(fn, 2.12194440e-4f));
  float p = 1.9875691500e-4f;
  p = fadd(fmul(p, r), 1.3981999507e-3f);
  p = fadd(fmul(p, r), 8.3334519073e-3f);
  p = fadd(fmul(p, r), 4.1665795894e-2f);
  p = fadd(fmul(p, r), 1.6666665459e-1f);
  p = fadd(fmul(p, r), 5.0000001201e-1f);
  const float y = fadd(fadd(fmul(fmul(p, r), r), r), 1.0f);
  const auto n = static_cast<std::int32_t>(fn);
  const float scale = bits_float(static_cast<std::uint32_t>(n + 127) << 23);
  const float e = fmul(y, scale);
  return x < -87.33654f ? 0.0f : (x != x ? x : e);
}

/// Natural logarithm (the platform's logf on both sides; used once per row, not per element).
SPECDEC_HD inline float log_f(float x) noexcept {
#if defined(__CUDA_ARCH__)
  return ::logf(x);
#else
  return std::log(x);
#endif
}

/// Loads the 16 bytes at `p` into four 32-bit words (little-endian order, as stored): one 16-byte
/// vector load through the read-only path on the device, a memcpy on the host.
/// @pre `p` is 16-byte aligned and the 16 bytes are readable.
SPECDEC_HD inline void load16(const void* p, std::uint32_t (&w)[4]) noexcept {
#if defined(__CUDA_ARCH__)
  const uint4 v = __ldg(static_cast<const uint4*>(p));
  w[0] = v.x;
  w[1] = v.y;
  w[2] = v.z;
  w[3] = v.w;
#else
  std::memcpy(w, p, sizeof(w));
#endif
}

/// Converts a 32-bit random word to a uniform float in [0, 1) with 24 random bits.
SPECDEC_HD constexpr float uniform_from_bits(std::uint32_t w) noexcept {
  return static_cast<float>(w >> 8) * (1.0f / 16777216.0f);
}

} // namespace detail

SPECDEC_NAMESPACE_END
