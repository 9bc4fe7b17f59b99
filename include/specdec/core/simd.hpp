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
/// Run-time width (g++ on x86, a build below AVX-512F, not nvcc's host pass: SPECDEC_HOST_WIDE):
/// the executor's exp loop, the costliest of its passes, also exists compiled for AVX2 (8 lanes)
/// and AVX-512F (16 lanes) through `__attribute__((target(...)))`, and wide_lanes() picks the
/// widest the CPU has. The rules at those widths are the any_width templates, the same source as
/// the 4-lane ones, always inlined into the wide loop, so no vector crosses a call; the lane sums
/// keep their order, so the bits do not depend on the width (tests check 4, 8 and 16 lanes). The
/// speed of a default-flags build then follows the CPU, not the consumer's -march.
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

#include <atomic>
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

/// Lane-wise `detail::exp_f`, bit for bit (same operations, same order, same rounding): the
/// rule of any_width::exp at this width.
inline vf exp_v(vf x) noexcept;

/// Sum of the lanes in index order ((((l0 + l1) + l2) + ...)), as the scalar lane loops add.
inline float sum_lanes_in_order(float s, vf v) noexcept {
  for (int c = 0; c < width; ++c)
    s += v[c];
  return s;
}

} // namespace w8 / w4

/// @brief The lane rules on a vector of any width (4, 8 or 16 floats), always inlined.
///
/// A loop compiled for a wider instruction set than the build's (a function with
/// `__attribute__((target("avx2")))` or `("avx512f")`, chosen at run time: see wide_lanes())
/// instantiates them at its own width and gets them inline, in its own instruction set, with no
/// vector crossing a call (so no calling-convention question arises). Every lane applies exactly
/// the operations of the scalar rule, as the fixed-width functions above do.
namespace any_width {

// Vectors pass by reference here: g++ warns (-Wpsabi) about any function that takes or returns a
// 32- or 64-byte vector by value while compiled without AVX, even one that is always inlined.

/// out = m ? a : b lane-wise, for a comparison mask m (I: the signed integers of V's width).
template <class V, class I>
SPECDEC_FORCEINLINE void select_into(V& out, const I& m, const V& a, const V& b) noexcept {
  out = __builtin_bit_cast(V, (m & __builtin_bit_cast(I, a)) | (~m & __builtin_bit_cast(I, b)));
}

/// p = a * b behind an empty asm barrier (see simd::fmul): never contracted into an FMA.
template <class V>
SPECDEC_FORCEINLINE void mul_into(V& p, const V& a, const V& b) noexcept {
  p = a * b;
#if defined(__x86_64__) || defined(__i386__)
  if constexpr (sizeof(V) == 64)
    __asm__("" : "+v"(p)); // zmm registers: the EVEX class
  else
    __asm__("" : "+x"(p));
#elif defined(__aarch64__)
  __asm__("" : "+w"(p));
#else
  p = p * (V{} + opaque_one<float>());
#endif
}

/// x = `detail::exp_f`(x) lane-wise, bit for bit (same operations, same order, same rounding).
template <class V>
SPECDEC_FORCEINLINE void exp_in_place(V& x) noexcept {
  using I = decltype(x < x);
  const V zero = V{};
  const V lo = V{} + -87.33654f;
  const V hi = V{} + 88.0f;
  V xn, xm, xc, t, u;
  select_into(xn, I(x == x), x, zero); // NaN: computed as 0
  select_into(xm, I(xn < lo), lo, xn); // max_f(xn, lo)
  select_into(xc, I(hi < xm), hi, xm); // min_f(xm, 88)
  const V round_magic = V{} + 12582912.0f;
  mul_into(t, xc, V{} + 1.44269504088896341f);
  const V fn = (t + round_magic) + (-round_magic);
  mul_into(t, fn, V{} + -0.693359375f);
  mul_into(u, fn, V{} + 2.12194440e-4f);
  const V r = (xc + t) + u;
  V p = V{} + 1.9875691500e-4f;
  mul_into(t, p, r);
  p = t + 1.3981999507e-3f;
  mul_into(t, p, r);
  p = t + 8.3334519073e-3f;
  mul_into(t, p, r);
  p = t + 4.1665795894e-2f;
  mul_into(t, p, r);
  p = t + 1.6666665459e-1f;
  mul_into(t, p, r);
  p = t + 5.0000001201e-1f;
  mul_into(t, p, r);
  mul_into(u, t, r);
  const V y = (u + r) + 1.0f;
  const I n = __builtin_convertvector(fn, I);
  const V scale = __builtin_bit_cast(V, (n + 127) << 23); // n + 127 in [1, 254]: no overflow
  mul_into(t, y, scale);
  select_into(u, I(x != x), x, t);
  select_into(x, I(x < lo), zero, u);
}

/// @brief scan_row's exp sum over the whole 16-float blocks of a chunk: lane l of `acc[0..15]`
/// adds exp((buf[j + l] - m) * inv_temp) for j = 0, 16, 32, ... in that order, whatever V's
/// width (16 / width vectors per block), so every width gives the same 16 sums bit for bit.
/// When `Keep`, each term is also stored to `out` at its index. Returns the entries summed.
template <bool Keep, class V>
SPECDEC_FORCEINLINE int
exp_sum_blocks(const float* buf, int len, float m, float inv_temp, float* acc, float* out) {
  constexpr int block = 16;
  constexpr int w = static_cast<int>(sizeof(V) / sizeof(float));
  constexpr int kv = block / w;
  V a[kv];
  for (int k = 0; k < kv; ++k)
    a[k] = V{};
  int j = 0;
  for (; j + block <= len; j += block)
    for (int k = 0; k < kv; ++k) {
      V e;
      std::memcpy(&e, buf + j + k * w, sizeof(V));
      e = (e - m) * inv_temp;
      exp_in_place(e);
      if constexpr (Keep)
        std::memcpy(out + j + k * w, &e, sizeof(V));
      a[k] += e;
    }
  for (int k = 0; k < kv; ++k)
    std::memcpy(acc + k * w, &a[k], sizeof(V));
  return j;
}

} // namespace any_width

#if defined(__AVX__)
inline namespace w8 {
#else
inline namespace w4 {
#endif
inline vf exp_v(vf x) noexcept {
  any_width::exp_in_place(x);
  return x;
}
} // namespace w8 / w4

#if (defined(__x86_64__) || defined(__i386__)) && !defined(__AVX512F__) && !defined(__CUDACC__)    \
    && !defined(__clang__)
/// 1 where the executor's exp loops also exist for AVX2 and AVX-512F, chosen at run time
/// (wide_lanes()): a baseline build runs them as wide as the CPU allows, with the same bits.
/// g++ only for now: clang checks the product barrier's asm operand against the template's own
/// (baseline) target, where a 32- or 64-byte register operand is refused.
#define SPECDEC_HOST_WIDE 1

/// Most lanes the run-time dispatched loops may use (0: as many as the CPU has); see wide_lanes().
inline std::atomic<int>& wide_lanes_limit() noexcept {
  static std::atomic<int> limit{0};
  return limit;
}

/// @brief Floats per vector of the executor's run-time dispatched loops: 16 where the CPU has
/// AVX-512F, 8 where it has AVX2, else the build's width; never more than a limit set with
/// limit_wide_lanes() (tests run every width this way; results are the same bits at every width).
/// O(1) (the CPU is queried once).
inline int wide_lanes() noexcept {
  static const int detected = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
      return 16;
    if (__builtin_cpu_supports("avx2"))
      return width > 8 ? width : 8;
    return width;
  }();
  const int limit = wide_lanes_limit().load(std::memory_order_relaxed);
  return limit > 0 && limit < detected ? (limit < width ? width : limit) : detected;
}

/// @brief Caps wide_lanes() at `lanes` (0 lifts the cap); the build's own width is the floor.
/// For tests and for pinning a speed; the results do not depend on it. Thread-safe.
inline void limit_wide_lanes(int lanes) noexcept {
  wide_lanes_limit().store(lanes, std::memory_order_relaxed);
}
#else
/// 0: the build is already at its widest (AVX-512F), or not x86, or nvcc's host pass.
#define SPECDEC_HOST_WIDE 0
#endif

} // namespace simd

} // namespace detail

SPECDEC_NAMESPACE_END

#endif // SPECDEC_HOST_SIMD
