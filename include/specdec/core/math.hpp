// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Host/device scalar math with identical results on both sides: min/max, bit casts,
/// finiteness tests, an order-preserving float key and a polynomial exp.
///
/// The only place where shared code branches on `__CUDA_ARCH__`. Products and sums that must
/// round the same way on both sides go through fmul/fadd/dmul/dadd/dsub: `__fmul_rn` and friends
/// on the device, which nvcc never fuses into FMAs; on the host a product whose rounding no
/// compiler flag can remove (see detail::unfused), so a consumer's `-ffp-contract=fast` (g++'s
/// default), `-march` with FMA or clang's `-ffp-contract=fast` gives the same bits as
/// `-ffp-contract=off`. The result does not depend on how the consumer compiles the headers, and
/// hot loops still vectorise.

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

#if !defined(__CUDA_ARCH__)
/// 1, in a register the optimiser cannot see into: an empty asm statement without side effects,
/// so loops hoist it and still vectorise.
template <class F>
inline F opaque_one() noexcept {
  F one = 1;
#if defined(__x86_64__) || defined(__i386__)
  __asm__("" : "+x"(one));
#elif defined(__aarch64__)
  __asm__("" : "+w"(one));
#else
  __asm__("" : "+r"(one));
#endif
  return one;
}

/// The host product p = a * b (already rounded by the caller's expression) made unfusable: a
/// later `p + c` is computed as round(p + c) even where the compiler contracts a*b+c into an FMA.
///
/// g++ >= 12: `__builtin_assoc_barrier(p)`, which ends the expression tree that contraction and
/// reassociation work on (also under -ffast-math). Clang and others: `p * 1` with a 1 the
/// optimiser cannot prove to be 1; a contracted `fma(p, 1, c)` rounds exactly like `p + c`, and
/// `__arithmetic_fence` (clang >= 14) keeps -ffast-math from reassociating `(a*b)*1` into
/// `a*(b*1)`.
template <class F>
inline F unfused(F p) noexcept {
#if defined(__GNUC__) && !defined(__clang__) && defined(__has_builtin)
#if __has_builtin(__builtin_assoc_barrier)
  return __builtin_assoc_barrier(p);
#else
  return p * opaque_one<F>();
#endif
#elif defined(__clang__) && defined(__has_builtin)
#if __has_builtin(__arithmetic_fence)
  return __arithmetic_fence(p) * opaque_one<F>();
#else
  return p * opaque_one<F>();
#endif
#else
  return p * opaque_one<F>();
#endif
}
#endif

/// Single-precision product, rounded to nearest and never fused into an FMA (host and device),
/// whatever the compiler flags.
SPECDEC_HD inline float fmul(float a, float b) noexcept {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return unfused(a * b);
#endif
}
/// Single-precision sum, rounded to nearest and never fused (host and device).
SPECDEC_HD inline float fadd(float a, float b) noexcept {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

/// Double-precision product, rounded to nearest and never fused into an FMA (host and device),
/// whatever the compiler flags.
SPECDEC_HD inline double dmul(double a, double b) noexcept {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return unfused(a * b);
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
