// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Host-only explicit float vectors (GCC/Clang vector extensions) and the lane-wise
/// twins of core/math.hpp's rules: min, max, select, unfused products and `exp_f`.
///
/// Why explicit vectors: a consumer compiles these headers with its own flags. g++'s default
/// `-ftrapping-math` keeps it from if-converting the float comparisons inside `exp_f` and the
/// executor's selects, so the scalar loops stay scalar there ("control flow in loop"), while
/// clang or `-fno-trapping-math` vectorise them: speed would depend on the consumer's flags. A
/// comparison of two vectors is one vector instruction that yields a lane mask, with no control
/// flow for any flag to forbid, so these loops are vector code under every compiler and flag set.
/// The vector is one register of the widest kind the consumer's flags allow without changing
/// the calling convention: 8 floats (32 bytes) where AVX is on, else 4 floats (16 bytes: SSE2,
/// x86-64's baseline, or NEON). The two widths live in differently named inline namespaces, so
/// translation units built with and without AVX never share a vector function of another ABI.
/// `std::experimental::simd` would do the same with g++ but not with every clang/libc++ the engines
/// use; vector extensions work in both.
///
/// Exactness: every function here applies, lane by lane, exactly the scalar operations of its
/// scalar twin in core/math.hpp, in the same order, each rounded to nearest and never contracted
/// into an FMA (each product passes an empty asm barrier), so lane c of `exp_v(x)` equals
/// `exp_f(x[c])` bit for bit. tests/cpu/test_serial_executor_simd.cpp checks it over all special
/// values and random inputs; the executor tests check whole rows against the scalar executor.
///
/// Device code (nvcc's device pass) never sees this file's contents: `SPECDEC_HOST_SIMD` is 0
/// there and wherever the compiler lacks vector extensions.

#include <specdec/config.hpp>

#include <specdec/core/math.hpp>

#include <cstdint>
#include <cstring>

#if !defined(__CUDA_ARCH__) && (defined(__GNUC__) || defined(__clang__))
/// 1 where the host compiler has GCC/Clang vector extensions (the executor's vector paths).
#define SPECDEC_HOST_SIMD 1
#else
/// 0: device code, or a compiler without GCC/Clang vector extensions (scalar loops only).
#define SPECDEC_HOST_SIMD 0
#endif

#if SPECDEC_HOST_SIMD

SPECDEC_NAMESPACE_BEGIN

namespace detail {

/// @brief Host-only 8-float vectors and their lane-wise rules (see the file comment).
namespace simd {

#if defined(__AVX__)
inline namespace w8 {
/// Lanes per vector.
inline constexpr int width = 8;
#else
inline namespace w4 {
/// Lanes per vector.
inline constexpr int width = 4;
#endif
/// `width` floats.
typedef float vf __attribute__((vector_size(4 * width)));
/// `width` signed 32-bit integers; also the lane mask of a comparison (-1 true, 0 false).
typedef std::int32_t vi __attribute__((vector_size(4 * width)));
/// `width` unsigned 32-bit integers.
typedef std::uint32_t vu __attribute__((vector_size(4 * width)));

/// All lanes equal to x.
inline vf splat(float x) noexcept {
  return vf{} + x;
}
/// All lanes equal to x.
inline vi splat_i(std::int32_t x) noexcept {
  return vi{} + x;
}
/// Loads `width` floats from p (any alignment).
inline vf load(const float* p) noexcept {
  vf v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
/// Stores `width` floats to p (any alignment).
inline void store(float* p, vf v) noexcept {
  std::memcpy(p, &v, sizeof(v));
}
/// Reinterprets the bits of a float vector.
inline vu bits(vf v) noexcept {
  return __builtin_bit_cast(vu, v);
}
/// Reinterprets bits as floats.
inline vf from_bits(vu v) noexcept {
  return __builtin_bit_cast(vf, v);
}
/// Lane-wise `m ? a : b` for a comparison mask m (all bits set or clear per lane).
inline vf select(vi m, vf a, vf b) noexcept {
  const vu mu = __builtin_bit_cast(vu, m);
  return from_bits((mu & bits(a)) | (~mu & bits(b)));
}
/// Lane-wise `m ? a : b` on integers.
inline vi select_i(vi m, vi a, vi b) noexcept {
  return (m & a) | (~m & b);
}
/// Lane-wise min_f: `b < a ? b : a`.
inline vf min(vf a, vf b) noexcept {
  return select(b < a, b, a);
}
/// Lane-wise max_f: `a < b ? b : a`.
inline vf max(vf a, vf b) noexcept {
  return select(a < b, b, a);
}
/// Lane-wise is_nan (bit test, like the scalar rule).
inline vi is_nan(vf x) noexcept {
  return __builtin_bit_cast(vi, (bits(x) & 0x7fffffffu) > 0x7f800000u);
}

/// Lane-wise product never fused into an FMA (the twin of `detail::fmul`): the product passes
/// through an empty asm statement (no instruction, no side effect), which no contraction or
/// reassociation can see through. `__builtin_assoc_barrier` would do the same on g++ but makes it
/// split the vector into lanes and rebuild it (three times slower). A template only so that
/// nvcc's front end leaves the asm to the host compiler.
template <class V>
inline V fmul(V a, V b) noexcept {
  V p = a * b;
#if defined(__x86_64__) || defined(__i386__)
  __asm__("" : "+x"(p));
#elif defined(__aarch64__)
  __asm__("" : "+w"(p));
#else
  p = p * splat(opaque_one<float>());
#endif
  return p;
}
/// Lane-wise product by a scalar, never fused.
inline vf fmul(vf a, float b) noexcept {
  return fmul<vf>(a, splat(b));
}

/// Lane-wise `detail::exp_f`, bit for bit (same operations, same order, same rounding).
inline vf exp_v(vf x) noexcept {
  const vf zero = splat(0.0f);
  const vf lo = splat(-87.33654f);
  const vf xn = select(x == x, x, zero);
  const vf xc = min(max(xn, lo), splat(88.0f));
  const vf round_magic = splat(12582912.0f);
  const vf fn = (fmul(xc, 1.44269504088896341f) + round_magic) + (-round_magic);
  const vf r = (xc + fmul(fn, -0.693359375f)) + fmul(fn, 2.12194440e-4f);
  vf p = splat(1.9875691500e-4f);
  p = fmul<vf>(p, r) + 1.3981999507e-3f;
  p = fmul<vf>(p, r) + 8.3334519073e-3f;
  p = fmul<vf>(p, r) + 4.1665795894e-2f;
  p = fmul<vf>(p, r) + 1.6666665459e-1f;
  p = fmul<vf>(p, r) + 5.0000001201e-1f;
  const vf y = (fmul<vf>(fmul<vf>(p, r), r) + r) + 1.0f;
  const vi n = __builtin_convertvector(fn, vi);
  const vf scale = from_bits(__builtin_bit_cast(vu, n + 127) << 23);
  const vf e = fmul<vf>(y, scale);
  return select(x < lo, zero, select(x != x, x, e));
}

/// Sum of the lanes in index order ((((l0 + l1) + l2) + ...)), as the scalar lane loops add.
inline float sum_lanes_in_order(float s, vf v) noexcept {
  for (int c = 0; c < width; ++c)
    s += v[c];
  return s;
}

} // namespace w8 / w4
} // namespace simd

} // namespace detail

SPECDEC_NAMESPACE_END

#endif // SPECDEC_HOST_SIMD
