// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief A header-only llama2.c backend: checkpoint loader and a batch-invariant CPU forward pass
///        that models specdec's `target_model` (chain scoring), plus tree scoring and early-exit
///        scoring for self-speculative drafting.
///
/// **File format** (llama2.c "legacy" checkpoints, as written by `export.py --version 0` and read
/// by run.c): seven little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
/// vocab_size, seq_len; a negative vocab_size means the classifier is not shared with the token
/// embedding), then fp32 weights in this order: token_embedding[vocab][dim], rms_att[L][dim],
/// wq[L][dim][dim], wk[L][kv_dim][dim], wv[L][kv_dim][dim], wo[L][dim][dim], rms_ffn[L][dim],
/// w1[L][hidden][dim], w2[L][dim][hidden], w3[L][hidden][dim], rms_final[dim], seq_len * head_size
/// skipped floats (the old RoPE tables), then wcls[vocab][dim] only when unshared. Matrices are
/// [out][in] row-major.
///
/// **Forward pass** (run.c semantics): RMSNorm `o = w * (x / sqrt(mean(x^2) + 1e-5))`, RoPE with
/// theta 10000 on interleaved pairs (q for every pair, k for pairs below kv_dim), grouped-query
/// attention (query head h reads kv head `h / (n_heads / n_kv_heads)`), scores divided by
/// sqrt(head_size), a max-subtracted softmax, SwiGLU FFN `w2(silu(w1 x) * (w3 x))`, residual
/// adds, a final RMSNorm and the classifier. Greedy decoding from BOS reproduces llama2.c's output.
///
/// **Speed.** Weights are repacked at load time transposed, padded and cut into panels
/// (`[in][8 output vectors]` with 32 vector registers, 24 vectors with 16), so a register tile
/// streams its weights sequentially and one weight load serves a whole vector of outputs. The
/// products use GCC/clang vector extensions (16 floats with AVX-512, 8 with AVX, else 4) with tiles
/// of up to 4 rows x 8 output vectors in registers (x 12 with 16 registers). Keys and values are
/// cached feature-major, so one vector op handles `lanes` consecutive positions: scores, softmax
/// and the weighted value sums all run over positions. exp() is a vectorised Cephes polynomial
/// (about 1 ulp). A baseline x86 build (SSE, 4 lanes) also carries 256- and 512-bit versions of the
/// hot kernels (detail::wide) and runs them when the CPU has AVX2 / AVX-512F (kernel_width()); they
/// compute every element with the same operations in the same order as the 4-lane kernels, so the
/// logits are bitwise the same on every x86 CPU. Greedy decoding of stories260K on a 2-core AVX-512
/// Xeon VM (2.3 GHz, shared): about 43,000 tokens/s single-threaded from the baseline build, 45,000
/// with `-march=native` (llama2.c's run.c built with -Ofast -march=native: 13-15k); about 25,000
/// for the 4-lane kernels alone.
///
/// **Batch invariance (guaranteed by construction).** A row's logits are bitwise identical
/// whether its token is scored alone (T = 1) or among T rows in one call, whatever its index in
/// the call, and whether it is scored by score(), by score_tree() (as the same root path) or by
/// score_layers() with every layer:
///  1. *Matrix products.* Every output element `y[r][o]` is computed as
///     `((0 + w[0][o]*x[r][0]) + w[1][o]*x[r][1]) + ...`, accumulating over the input dimension in
///     ascending order, in its own vector lane. Register tiles over rows (1 to 4) and over output
///     vectors (1 to 8) only change which elements are computed side by side, never the sequence
///     of operations that produces one element; remainder rows and columns use the same
///     per-element sequence. The vector width is a compile-time constant.
///  2. *No contraction.* Every accumulation step is detail::madd: the product goes through an
///     empty `asm` register barrier before the add (x86, AArch64), so the compiler cannot fuse it
///     into an FMA in one tile shape and not in another (other targets rely on the build's
///     `-ffp-contract=off`). With `LLAMA2C_USE_FMA` every step is an explicit FMA instead, which is
///     just as deterministic.
///  3. *Row-wise steps* (embedding, RMSNorm, RoPE from a position table, SwiGLU, residual adds)
///     run the same code on each row separately; their horizontal sums use a fixed lane order.
///  4. *Attention.* A row sees a compact key list: its visible prefix, then its extra slots
///     (a tree node's ancestors and itself) in ascending slot order. Each key's score is one lane
///     of the same sequence (q[0]*k[0] + q[1]*k[1] + ..., then times 1/sqrt(head_size)); the
///     softmax max and sum, and each value sum, are accumulated lane-wise over the list in chunks
///     of `lanes` (list index j in lane j % lanes; lanes past the end masked out), then reduced
///     with one fixed tree. None of this depends on T, on the other rows, or on where a chunk was
///     read from (the cache directly, or a gathered copy for tree rows). Keys and values written
///     by a call are themselves batch-invariant, so by induction over positions every cached K/V
///     and every logit row is too.
///
/// The same holds across sequences: model::score_rows() scores chains of several sequences, each
/// against its own KV cache, in one forward pass (the matrix products batch over all their rows),
/// and a chain's rows are bitwise those of scoring it alone with score(), whatever the other
/// chains and their order (points 1 to 4 never look at another row).
///
/// **Thread safety.** A model is not safe to use from several threads at once (the scratch
/// buffers and the KV cache are members). Copies share the immutable packed weights (reference
/// counted) and have their own scratch and KV cache, so distinct copies may be used from distinct
/// threads at the same time; share_weights() makes such a copy without a KV cache.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/kv/contiguous_cache.hpp>

// Eigen 3.4's AVX/AVX-512 packet code trips -Wunused-variable and -Wconversion when it is not
// included as a system header (-isystem); keep those warnings out of builds that use -I.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wshadow"
#endif
#include <Eigen/Core>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace llama2c {

/// @brief The header of a llama2.c checkpoint (after validation).
struct config {
  std::int32_t dim = 0;          ///< model width
  std::int32_t hidden_dim = 0;   ///< FFN width
  std::int32_t n_layers = 0;     ///< transformer layers
  std::int32_t n_heads = 0;      ///< query heads
  std::int32_t n_kv_heads = 0;   ///< key/value heads (n_heads is a multiple of it)
  std::int32_t vocab_size = 0;   ///< vocabulary size (always positive here)
  std::int32_t seq_len = 0;      ///< maximum context: positions 0 .. seq_len-1
  bool shared_classifier = true; ///< the classifier is the token embedding
};

/// @brief Kernels of the forward pass (vector helpers, matrix products, value sums, loader size
///        arithmetic). Not a stable interface.
namespace detail {

using specdec::index_t;

#if defined(__AVX512F__)
inline constexpr index_t lanes = 16; ///< floats per vector (AVX-512)
#elif defined(__AVX__)
inline constexpr index_t lanes = 8; ///< floats per vector (AVX)
#else
inline constexpr index_t lanes = 4; ///< floats per vector (SSE / other targets)
#endif

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))        \
    && !defined(__AVX__)
/// 1 when a baseline x86 build also carries the 256-bit kernels of detail::wide, which
/// model::load() selects when the CPU has AVX2 (bitwise the same results).
#define LLAMA2C_WIDE_KERNELS 1
#else
#define LLAMA2C_WIDE_KERNELS 0
#endif

/// Bits per register of the widest kernels this build can run on this CPU: 512 (AVX-512F) or 256
/// (AVX2) for the kernels of detail::wide (LLAMA2C_WIDE_KERNELS), else the build's own `lanes`.
inline int widest_kernels() noexcept {
#if LLAMA2C_WIDE_KERNELS
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f"))
    return 512;
  if (__builtin_cpu_supports("avx2"))
    return 256;
#endif
  return static_cast<int>(lanes) * 32;
}

/// A vector of `lanes` floats (GCC/clang vector extension).
using vf = float __attribute__((vector_size(lanes * sizeof(float))));
/// A vector of `lanes` int32 (comparison results, lane masks).
using vi = std::int32_t __attribute__((vector_size(lanes * sizeof(float))));

/// Rounds n up to a multiple of m (m > 0).
constexpr index_t round_up(index_t n, index_t m) noexcept {
  return (n + m - 1) / m * m;
}

/// An allocator returning 64-byte aligned storage (one cache line, one AVX-512 vector).
template <class T>
struct aligned_allocator {
  using value_type = T;
  aligned_allocator() noexcept = default;
  template <class U>
  aligned_allocator(const aligned_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{64}));
  }
  void deallocate(T* p, std::size_t) noexcept {
    ::operator delete (p, std::align_val_t{64});
  }
  friend bool operator==(const aligned_allocator&, const aligned_allocator&) noexcept {
    return true;
  }
};

/// A 64-byte aligned float buffer.
using fbuf = std::vector<float, aligned_allocator<float>>;

/// Hides a value from the optimiser so that a product cannot be contracted with the following add.
template <class V>
SPECDEC_FORCEINLINE V opaque(V v) noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+v"(v));
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
  __asm__("" : "+w"(v));
#endif
  return v;
}

/// Unaligned load of a vector from `p`.
template <class V>
SPECDEC_FORCEINLINE V vload(const float* p) noexcept {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
/// Unaligned store of a vector to `p`.
template <class V>
SPECDEC_FORCEINLINE void vstore(float* p, V v) noexcept {
  std::memcpy(p, &v, sizeof(V));
}
/// A vector with every lane equal to `s`.
template <class V>
SPECDEC_FORCEINLINE V splat(float s) noexcept {
  return s - V{}; // exact for every s (x - (+0) == x, also for -0 and NaN): a plain broadcast
}
#if defined(__FMA__) && defined(LLAMA2C_USE_FMA)
/// 1 when the dot products use explicit fused multiply-adds (see madd).
#define LLAMA2C_FUSED 1
#else
#define LLAMA2C_FUSED 0
#endif

/// @brief `acc + a * b`, the one accumulation step of every dot product in the forward pass.
///
/// By default the product goes through opaque() and is added separately (two roundings). With FMA
/// hardware and `LLAMA2C_USE_FMA` defined it is an explicit fused multiply-add (one rounding; the
/// logits then differ in the last bits). Either way the operation is spelled out, never left to
/// the compiler's contraction, so every caller performs exactly the same floating-point operation.
SPECDEC_FORCEINLINE vf madd(vf acc, vf a, vf b) noexcept {
#if LLAMA2C_FUSED && defined(__AVX512F__)
  return _mm512_fmadd_ps(a, b, acc);
#elif LLAMA2C_FUSED && defined(__AVX__)
  return _mm256_fmadd_ps(a, b, acc);
#elif LLAMA2C_FUSED
  return _mm_fmadd_ps(a, b, acc);
#else
  return acc + opaque(a * b);
#endif
}
/// @brief Scalar madd: the same operation as one lane of the vector madd.
SPECDEC_FORCEINLINE float madd(float acc, float a, float b) noexcept {
#if LLAMA2C_FUSED
  return std::fma(a, b, acc);
#else
  return acc + opaque(a * b);
#endif
}

/// Lane-wise `mask ? a : b` (mask lanes are -1 or 0).
SPECDEC_FORCEINLINE vf select(vi mask, vf a, vf b) noexcept {
  return mask ? a : b; // lane-wise: a where mask lanes are -1, b where they are 0
}
/// Lane-wise `a > b ? a : b`: one (v)maxps on x86, whose definition is exactly this expression
/// (b when either is NaN or both are zeros); a compare-and-blend elsewhere.
SPECDEC_FORCEINLINE vf vmax(vf a, vf b) noexcept {
#if defined(__AVX512F__)
  return _mm512_mask_max_ps(a, 0xFFFF, a, b); // (mask form: no undefined source)
#elif defined(__AVX__)
  return _mm256_max_ps(a, b);
#elif defined(__SSE__)
  return _mm_max_ps(a, b);
#else
  return select(a > b, a, b);
#endif
}
/// Lane-wise `a < b ? a : b` (one (v)minps on x86; see vmax).
SPECDEC_FORCEINLINE vf vmin(vf a, vf b) noexcept {
#if defined(__AVX512F__)
  return _mm512_mask_min_ps(a, 0xFFFF, a, b);
#elif defined(__AVX__)
  return _mm256_min_ps(a, b);
#elif defined(__SSE__)
  return _mm_min_ps(a, b);
#else
  return select(a < b, a, b);
#endif
}
/// 4 floats (the last levels of the horizontal reductions).
using v4f = float __attribute__((vector_size(4 * sizeof(float))));
/// Sum of 4 lanes in the fixed order (v0 + v2) + (v1 + v3).
SPECDEC_FORCEINLINE float hsum(v4f v) noexcept {
  return (v[0] + v[2]) + (v[1] + v[3]);
}
/// Maximum of 4 lanes.
SPECDEC_FORCEINLINE float hmax(v4f v) noexcept {
  const float a = v[0] > v[2] ? v[0] : v[2];
  const float b = v[1] > v[3] ? v[1] : v[3];
  return a > b ? a : b;
}
#if defined(__AVX__)
/// 8 floats.
using v8f = float __attribute__((vector_size(8 * sizeof(float))));
/// Sum of 8 lanes: the halves are added lane-wise, then recursively (a fixed pairwise tree).
SPECDEC_FORCEINLINE float hsum(v8f v) noexcept {
  v4f lo, hi;
  std::memcpy(&lo, &v, sizeof lo);
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
  return hsum(lo + hi);
}
/// Maximum of 8 lanes.
SPECDEC_FORCEINLINE float hmax(v8f v) noexcept {
  v4f lo, hi;
  std::memcpy(&lo, &v, sizeof lo);
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
  return hmax(lo > hi ? lo : hi);
}
#endif
#if defined(__AVX512F__)
/// 16 floats.
using v16f = float __attribute__((vector_size(16 * sizeof(float))));
/// Sum of 16 lanes (fixed pairwise tree).
SPECDEC_FORCEINLINE float hsum(v16f v) noexcept {
  v8f lo, hi;
  std::memcpy(&lo, &v, sizeof lo);
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
  return hsum(lo + hi);
}
/// Maximum of 16 lanes.
SPECDEC_FORCEINLINE float hmax(v16f v) noexcept {
  v8f lo, hi;
  std::memcpy(&lo, &v, sizeof lo);
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
  return hmax(lo > hi ? lo : hi);
}
#endif

/// @brief Elementwise exp: Cephes expf (range reduction by ln 2, degree-5 polynomial; about
/// 1 ulp). With AVX-512 the power of two is applied by vscalefps and only the lower end is
/// clamped (exp(x) = 0 below -104, +inf above 88.7 as expf); otherwise x is clamped to [-87, 88].
/// Every lane runs the same operations: the result depends on its own input only.
SPECDEC_FORCEINLINE vf exp(vf x) noexcept {
#if defined(__AVX512F__)
  x = _mm512_mask_max_ps(x, 0xFFFF, x, splat<vf>(-104.0f)); // (mask form: no undefined source)
#else
  x = vmax(splat<vf>(-87.0f), x); // lo > x ? lo : x
  x = vmin(splat<vf>(88.0f), x);  // hi < x ? hi : x
#endif
  const vf magic = splat<vf>(12582912.0f); // 1.5 * 2^23: adding and subtracting rounds to integer
  vf fx = x * splat<vf>(1.44269504088896341f);
  fx = (fx + magic) - magic;
  vf r = madd(x, fx, splat<vf>(-0.693359375f));
  r = madd(r, fx, splat<vf>(2.12194440e-4f));
  const vf z = r * r;
  vf y = splat<vf>(1.9875691500e-4f);
  y = madd(splat<vf>(1.3981999507e-3f), y, r);
  y = madd(splat<vf>(8.3334519073e-3f), y, r);
  y = madd(splat<vf>(4.1665795894e-2f), y, r);
  y = madd(splat<vf>(1.6666665459e-1f), y, r);
  y = madd(splat<vf>(5.0000001201e-1f), y, r);
  y = madd(r, y, z) + splat<vf>(1.0f);
#if defined(__AVX512F__)
  return _mm512_mask_scalef_ps(y, 0xFFFF, y, fx); // y * 2^fx (fx is an integer)
#else
  const vi n = __builtin_convertvector(fx, vi);
  const vi bits = (n + 127) << 23;
  return y * (vf)bits; // same-size vector cast: a bit reinterpretation
#endif
}

/// One register tile of y = x W: R rows x C output vectors, accumulated over k = 0 .. in-1.
template <int R, int C>
inline void mm_tile(const float* x,
                    index_t xs,
                    const float* w,
                    index_t ws,
                    index_t in,
                    float* y,
                    index_t ys) noexcept {
  vf acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c)
      acc[r][c] = vf{};
  for (index_t k = 0; k < in; ++k) {
    const float* wk = w + k * ws;
    vf wv[C];
    for (int c = 0; c < C; ++c)
      wv[c] = vload<vf>(wk + c * lanes);
    for (int r = 0; r < R; ++r) {
      const vf xv = splat<vf>(x[r * xs + k]);
      for (int c = 0; c < C; ++c)
        acc[r][c] = madd(acc[r][c], wv[c], xv);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c)
      vstore(y + r * ys + c * lanes, acc[r][c]);
}

/// Vector registers of the target: 32 with AVX-512 and on AArch64, else 16 (SSE, AVX).
#if defined(__AVX512F__) || defined(__aarch64__)
inline constexpr int vector_registers = 32;
#else
inline constexpr int vector_registers = 16;
#endif

/// Output-vector tile width for a row tile of R rows. With 32 registers the accumulators and the
/// tile's weight vectors fit (R = 1, 2: 8; 3: 6; 4: 4). With 16, at most 12 accumulators, so that
/// one temporary and the broadcast input still fit (12, 6, 4, 3: every width divides the panel of
/// 12 vectors, and a matrix-vector product streams 12 output vectors per broadcast).
template <int R>
inline constexpr int col_tile = vector_registers == 32 ? (R <= 2 ? 8 : (R == 3 ? 6 : 4))
                                                       : (R == 1 ? 12 : 12 / R);

/// R rows times `nv` output vectors (nv <= panel_vectors), split into register tiles.
template <int R>
inline void mm_rows(const float* x,
                    index_t xs,
                    const float* w,
                    index_t ws,
                    index_t in,
                    float* y,
                    index_t ys,
                    index_t nv) noexcept {
  constexpr int ct = col_tile<R>;
  index_t c = 0;
  for (; c + ct <= nv; c += ct)
    mm_tile<R, ct>(x, xs, w + c * lanes, ws, in, y + c * lanes, ys);
  const index_t rem = nv - c;
  if (rem == 0)
    return;
  [&]<int... I>(std::integer_sequence<int, I...>) {
    ((rem == I + 1 ? (mm_tile<R, I + 1>(x, xs, w + c * lanes, ws, in, y + c * lanes, ys), 0) : 0),
     ...);
  }
  (std::make_integer_sequence<int, ct - 1>{});
}

/// Output vectors per weight panel (see matmul): the widest register tile with 32 registers; two
/// of them with 16 (24 vectors: 12 of 8 floats for detail::wide's 256-bit tiles).
inline constexpr index_t panel_vectors = vector_registers == 32 ? col_tile<1> : 2 * col_tile<1>;

/// @brief The panel loop of matmul, shared by every kernel width (detail::matmul, wide::matmul,
/// wide::matmul512): for each panel of panel_vectors output vectors, the rows in tiles of 4, then
/// the 3, 2 or 1 left, each tile handed to `tile(std::integral_constant<int, R>{}, x, xs, w, ws,
/// in, y, ys, nv)` (that width's mm_rows<R>). O(rows * ws * in) through the tiles.
template <class Tile>
SPECDEC_FORCEINLINE void for_each_panel_tile(const Tile& tile,
                                             const float* x,
                                             index_t xs,
                                             index_t rows,
                                             const float* w,
                                             index_t ws,
                                             index_t in,
                                             float* y,
                                             index_t ys) noexcept {
  const index_t nv = ws / lanes;
  for (index_t c0 = 0; c0 < nv; c0 += panel_vectors) {
    const index_t cb = std::min<index_t>(panel_vectors, nv - c0);
    const float* wc = w + c0 * lanes * in;
    const index_t pw = cb * lanes;
    float* yc = y + c0 * lanes;
    index_t r = 0;
    for (; r + 4 <= rows; r += 4)
      tile(std::integral_constant<int, 4>{}, x + r * xs, xs, wc, pw, in, yc + r * ys, ys, cb);
    switch (rows - r) {
    case 3:
      tile(std::integral_constant<int, 3>{}, x + r * xs, xs, wc, pw, in, yc + r * ys, ys, cb);
      break;
    case 2:
      tile(std::integral_constant<int, 2>{}, x + r * xs, xs, wc, pw, in, yc + r * ys, ys, cb);
      break;
    case 1:
      tile(std::integral_constant<int, 1>{}, x + r * xs, xs, wc, pw, in, yc + r * ys, ys, cb);
      break;
    default:
      break;
    }
  }
}

/// @brief y[T][ws] = x[T][in] W for W stored transposed (`[in][ws]`, ws a multiple of lanes) and
/// cut into panels of panel_vectors output vectors: the panel of output vectors c0 .. c0+cb-1
/// starts at `w + c0 * lanes * in` and is `[in][cb * lanes]`, so a tile streams its weights
/// sequentially. Row strides xs and ys. Every output element is summed over k in ascending order.
inline void matmul(const float* x,
                   index_t xs,
                   index_t rows,
                   const float* w,
                   index_t ws,
                   index_t in,
                   float* y,
                   index_t ys) noexcept {
  for_each_panel_tile([](auto R, auto... a) noexcept { mm_rows<decltype(R)::value>(a...); },
                      x,
                      xs,
                      rows,
                      w,
                      ws,
                      in,
                      y,
                      ys);
}

/// Mask of the first `valid` lanes (0 < valid <= lanes).
SPECDEC_FORCEINLINE vi first_lanes(index_t valid) noexcept {
  static constexpr std::int32_t iota[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  vi idx;
  std::memcpy(&idx, iota, sizeof idx);
  return idx < (static_cast<std::int32_t>(valid) - vi{});
}

/// Registers for the accumulators of one value tile.
inline constexpr int value_accumulators = lanes == 16 ? 16 : 8;

/// acc[m][f] += a_m[chunk] * v_f[chunk] for one chunk of `lanes` keys (masked lanes add +0).
template <int M, int F, bool Masked>
SPECDEC_FORCEINLINE void value_step(vf (&acc)[M][F],
                                    const float* a,
                                    index_t a_stride,
                                    const float* v,
                                    index_t v_stride,
                                    vi mask) noexcept {
  vf av[M];
  for (int m = 0; m < M; ++m)
    av[m] = vload<vf>(a + m * a_stride);
  for (int f = 0; f < F; ++f) {
    const vf vv = vload<vf>(v + f * v_stride);
    for (int m = 0; m < M; ++m) {
      const vf next = madd(acc[m][f], av[m], vv);
      if constexpr (Masked)
        acc[m][f] = select(mask, next, acc[m][f]);
      else
        acc[m][f] = next;
    }
  }
}

/// @brief Weighted value sums of M query heads x F value features over a compact key list:
/// out[m * out_stride + f] = hsum_lanes(sum over chunks c of a_m[c] * v_f[c]) * inv[m].
///
/// The keys are `chunks1` chunks of `lanes` read from v1 (feature f at `v1 + f * s1`), then
/// `chunks2` chunks from v2 (stride s2); only the first `valid_last` lanes of the final chunk
/// count. Weights a_m start at `a + m * a_stride` and run over both segments. Each output is
/// accumulated per lane in chunk order, then summed with the fixed hsum tree: the result depends
/// only on the compact list, not on where its chunks were read from.
template <int M, int F>
inline void vsum_tile(const float* a,
                      index_t a_stride,
                      const float* v1,
                      index_t s1,
                      index_t chunks1,
                      const float* v2,
                      index_t s2,
                      index_t chunks2,
                      index_t valid_last,
                      float* out,
                      index_t out_stride,
                      const float* inv) noexcept {
  vf acc[M][F];
  for (int m = 0; m < M; ++m)
    for (int f = 0; f < F; ++f)
      acc[m][f] = vf{};
  const index_t total = chunks1 + chunks2;
  const vi none{};
  index_t c = 0;
  for (; c < chunks1 && c < total - 1; ++c)
    value_step<M, F, false>(acc, a + c * lanes, a_stride, v1 + c * lanes, s1, none);
  for (; c < total - 1; ++c)
    value_step<M, F, false>(acc, a + c * lanes, a_stride, v2 + (c - chunks1) * lanes, s2, none);
  const vi mask = first_lanes(valid_last);
  if (c < chunks1)
    value_step<M, F, true>(acc, a + c * lanes, a_stride, v1 + c * lanes, s1, mask);
  else
    value_step<M, F, true>(acc, a + c * lanes, a_stride, v2 + (c - chunks1) * lanes, s2, mask);
#if defined(__AVX512F__)
  if constexpr (M * F == 16) {
    // All 16 horizontal sums at once, with hsum's exact pairwise tree: lanes i and i+8, then
    // i and i+4, i and i+2, i and i+1 are added, 16 -> 8 -> 4 -> 2 -> 1 lanes per accumulator.
    vf b[8], q[4], d[2];
    const vf* A = &acc[0][0];
    for (int i = 0; i < 8; ++i)
      b[i] =
          __builtin_shufflevector(
              A[2 * i], A[2 * i + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
          + __builtin_shufflevector(
              A[2 * i], A[2 * i + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    for (int i = 0; i < 4; ++i)
      q[i] =
          __builtin_shufflevector(
              b[2 * i], b[2 * i + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27)
          + __builtin_shufflevector(
              b[2 * i], b[2 * i + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    for (int i = 0; i < 2; ++i)
      d[i] =
          __builtin_shufflevector(
              q[2 * i], q[2 * i + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29)
          + __builtin_shufflevector(
              q[2 * i], q[2 * i + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
    const vf sums = __builtin_shufflevector(
                        d[0], d[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
                    + __builtin_shufflevector(
                        d[0], d[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    vf scale;
    for (int m = 0; m < M; ++m)
      for (int f = 0; f < F; ++f)
        scale[m * F + f] = inv[m];
    const vf r = sums * scale;
    float tmp[16];
    vstore(tmp, r);
    for (int m = 0; m < M; ++m)
      std::memcpy(out + m * out_stride, tmp + m * F, F * sizeof(float));
    return;
  }
#endif
  for (int m = 0; m < M; ++m)
    for (int f = 0; f < F; ++f)
      out[m * out_stride + f] = hsum(acc[m][f]) * inv[m];
}

#if LLAMA2C_WIDE_KERNELS
/// @brief Wider versions of the hot kernels for a baseline (SSE) build, chosen at run time
/// (model::kernel_width()): 256-bit ones for a CPU with AVX2, and a 512-bit matrix product for one
/// with AVX-512F. They read the same packed layouts (4-float vectors) and perform, for every
/// element, exactly the operations of the 4-lane kernels above in the same order: what the 4-lane
/// code runs lane-parallel (products, dot products over the input, exp) is done 8 or 16 lanes at
/// a time, and every accumulation that runs along chunks of 4 lanes (softmax sum, value sums) still
/// adds one 4-lane chunk after the other. The results are therefore bitwise those of the baseline
/// kernels, on any CPU. Every product goes through an asm barrier (mul) and the targets do not
/// include FMA, so no product can be contracted into its add.
namespace wide {

#define LLAMA2C_WIDE_TARGET __attribute__((target("avx2")))
#define LLAMA2C_WIDE512_TARGET __attribute__((target("avx512f")))

/// The product `a * b` behind an empty asm barrier, as in detail::madd: it cannot be fused with
/// the add that follows, whatever the target and the -ffp-contract setting.
LLAMA2C_WIDE_TARGET SPECDEC_FORCEINLINE __m256 mul(__m256 a, __m256 b) noexcept {
  __m256 p = _mm256_mul_ps(a, b);
  __asm__("" : "+x"(p));
  return p;
}
/// 128-bit mul (see the 256-bit one).
LLAMA2C_WIDE_TARGET SPECDEC_FORCEINLINE __m128 mul(__m128 a, __m128 b) noexcept {
  __m128 p = _mm_mul_ps(a, b);
  __asm__("" : "+x"(p));
  return p;
}
/// 512-bit mul (see the 256-bit one).
LLAMA2C_WIDE512_TARGET SPECDEC_FORCEINLINE __m512 mul(__m512 a, __m512 b) noexcept {
  __m512 p = _mm512_mul_ps(a, b);
  __asm__("" : "+v"(p));
  return p;
}

/// One register tile of matmul: R rows x (C 8-float columns, then one 4-float column if Tail).
template <int R, int C, bool Tail>
LLAMA2C_WIDE_TARGET inline void mm_tile(const float* x,
                                        index_t xs,
                                        const float* w,
                                        index_t ws,
                                        index_t in,
                                        float* y,
                                        index_t ys) noexcept {
  __m256 acc[R][C > 0 ? C : 1];
  __m128 tail[R];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c)
      acc[r][c] = _mm256_setzero_ps();
    tail[r] = _mm_setzero_ps();
  }
  for (index_t k = 0; k < in; ++k) {
    const float* wk = w + k * ws;
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_broadcast_ss(x + r * xs + k);
      for (int c = 0; c < C; ++c)
        acc[r][c] = _mm256_add_ps(acc[r][c], mul(_mm256_loadu_ps(wk + 8 * c), xv));
      if constexpr (Tail)
        tail[r] = _mm_add_ps(tail[r], mul(_mm_loadu_ps(wk + 8 * C), _mm256_castps256_ps128(xv)));
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c)
      _mm256_storeu_ps(y + r * ys + 8 * c, acc[r][c]);
    if constexpr (Tail)
      _mm_storeu_ps(y + r * ys + 8 * C, tail[r]);
  }
}

/// 8-float columns per tile for R rows (at most 12 accumulators of the 16 registers).
template <int R>
inline constexpr int col_tile = 12 / R;

/// R rows times one panel of n4 4-float vectors.
template <int R>
LLAMA2C_WIDE_TARGET inline void mm_rows(const float* x,
                                        index_t xs,
                                        const float* w,
                                        index_t ws,
                                        index_t in,
                                        float* y,
                                        index_t ys,
                                        index_t n4) noexcept {
  constexpr int ct = col_tile<R>;
  index_t c = 0; // in floats
  const index_t n = n4 * 4;
  for (; c + 8 * ct <= n; c += 8 * ct)
    mm_tile<R, ct, false>(x, xs, w + c, ws, in, y + c, ys);
  const index_t rem8 = (n - c) / 8;
  const bool tail = (n - c) % 8 != 0;
  if (rem8 == 0 && !tail)
    return;
  [&]<int... I>(std::integer_sequence<int, I...>) {
    ((rem8 == I ? (tail ? mm_tile<R, I, true>(x, xs, w + c, ws, in, y + c, ys)
                        : mm_tile<R, I, false>(x, xs, w + c, ws, in, y + c, ys),
                   0)
                : 0),
     ...);
  }
  (std::make_integer_sequence<int, ct>{});
}

/// detail::matmul with 8-float tiles: the same panels, the same per-element sums.
LLAMA2C_WIDE_TARGET inline void matmul(const float* x,
                                       index_t xs,
                                       index_t rows,
                                       const float* w,
                                       index_t ws,
                                       index_t in,
                                       float* y,
                                       index_t ys) noexcept {
  for_each_panel_tile([](auto R, auto... a) noexcept { mm_rows<decltype(R)::value>(a...); },
                      x,
                      xs,
                      rows,
                      w,
                      ws,
                      in,
                      y,
                      ys);
}

/// One register tile of matmul with 512-bit registers: R rows x C 16-float columns, the last one
/// covering only the floats of `last` (a lane mask) when Partial.
template <int R, int C, bool Partial>
LLAMA2C_WIDE512_TARGET inline void mm_tile512(const float* x,
                                              index_t xs,
                                              const float* w,
                                              index_t ws,
                                              index_t in,
                                              float* y,
                                              index_t ys,
                                              __mmask16 last) noexcept {
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c)
      acc[r][c] = _mm512_setzero_ps();
  for (index_t k = 0; k < in; ++k) {
    const float* wk = w + k * ws;
    __m512 wv[C];
    for (int c = 0; c < C; ++c)
      wv[c] = Partial && c == C - 1 ? _mm512_maskz_loadu_ps(last, wk + 16 * c)
                                    : _mm512_loadu_ps(wk + 16 * c);
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_set1_ps(x[r * xs + k]);
      for (int c = 0; c < C; ++c)
        acc[r][c] = _mm512_add_ps(acc[r][c], mul(wv[c], xv));
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      if (Partial && c == C - 1)
        _mm512_mask_storeu_ps(y + r * ys + 16 * c, last, acc[r][c]);
      else
        _mm512_storeu_ps(y + r * ys + 16 * c, acc[r][c]);
    }
}

/// R rows times one panel of n4 4-float vectors (at most 24: six 16-float columns).
template <int R>
LLAMA2C_WIDE512_TARGET inline void mm_rows512(const float* x,
                                              index_t xs,
                                              const float* w,
                                              index_t ws,
                                              index_t in,
                                              float* y,
                                              index_t ys,
                                              index_t n4) noexcept {
  const index_t n = n4 * 4;
  const index_t cols = (n + 15) / 16;
  const bool partial = n % 16 != 0;
  const auto last = static_cast<__mmask16>((1u << (n % 16)) - 1u);
  [&]<int... I>(std::integer_sequence<int, I...>) {
    ((cols == I + 1 ? (partial ? mm_tile512<R, I + 1, true>(x, xs, w, ws, in, y, ys, last)
                               : mm_tile512<R, I + 1, false>(x, xs, w, ws, in, y, ys, last),
                       0)
                    : 0),
     ...);
  }
  (std::make_integer_sequence<int, 6>{});
}

/// detail::matmul with 512-bit tiles: the same panels, the same per-element sums.
LLAMA2C_WIDE512_TARGET inline void matmul512(const float* x,
                                             index_t xs,
                                             index_t rows,
                                             const float* w,
                                             index_t ws,
                                             index_t in,
                                             float* y,
                                             index_t ys) noexcept {
  static_assert(panel_vectors * lanes <= 6 * 16, "a panel must fit six 16-float columns");
  for_each_panel_tile([](auto R, auto... a) noexcept { mm_rows512<decltype(R)::value>(a...); },
                      x,
                      xs,
                      rows,
                      w,
                      ws,
                      in,
                      y,
                      ys);
}

/// detail::exp on 8 lanes, operation for operation (the baseline branch: clamps to [-87, 88], the
/// Cephes polynomial with separate products and sums, the power of two built in the exponent).
LLAMA2C_WIDE_TARGET inline __m256 exp(__m256 x) noexcept {
  x = _mm256_max_ps(_mm256_set1_ps(-87.0f), x);
  x = _mm256_min_ps(_mm256_set1_ps(88.0f), x);
  const __m256 magic = _mm256_set1_ps(12582912.0f);
  __m256 fx = mul(x, _mm256_set1_ps(1.44269504088896341f));
  fx = _mm256_sub_ps(_mm256_add_ps(fx, magic), magic);
  __m256 r = _mm256_add_ps(x, mul(fx, _mm256_set1_ps(-0.693359375f)));
  r = _mm256_add_ps(r, mul(fx, _mm256_set1_ps(2.12194440e-4f)));
  const __m256 z = _mm256_mul_ps(r, r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_add_ps(_mm256_set1_ps(1.3981999507e-3f), mul(y, r));
  y = _mm256_add_ps(_mm256_set1_ps(8.3334519073e-3f), mul(y, r));
  y = _mm256_add_ps(_mm256_set1_ps(4.1665795894e-2f), mul(y, r));
  y = _mm256_add_ps(_mm256_set1_ps(1.6666665459e-1f), mul(y, r));
  y = _mm256_add_ps(_mm256_set1_ps(5.0000001201e-1f), mul(y, r));
  y = _mm256_add_ps(_mm256_add_ps(r, mul(y, z)), _mm256_set1_ps(1.0f));
  const __m256i n = _mm256_cvttps_epi32(fx);
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
}

/// model::score_keys over 8 keys per register: G 8-key groups x M heads, the same per-key sums.
template <int M, int G>
LLAMA2C_WIDE_TARGET inline void score_keys(const float* q,
                                           index_t hs,
                                           const float* k,
                                           index_t k_stride,
                                           float* a,
                                           index_t a_stride,
                                           float inv_scale) noexcept {
  __m256 acc[M][G];
  for (int m = 0; m < M; ++m)
    for (int g = 0; g < G; ++g)
      acc[m][g] = _mm256_setzero_ps();
  for (index_t i = 0; i < hs; ++i) {
    __m256 kv[G];
    for (int g = 0; g < G; ++g)
      kv[g] = _mm256_loadu_ps(k + i * k_stride + 8 * g);
    for (int m = 0; m < M; ++m) {
      const __m256 qv = _mm256_broadcast_ss(q + m * hs + i);
      for (int g = 0; g < G; ++g)
        acc[m][g] = _mm256_add_ps(acc[m][g], mul(kv[g], qv));
    }
  }
  const __m256 sc = _mm256_set1_ps(inv_scale);
  for (int m = 0; m < M; ++m)
    for (int g = 0; g < G; ++g)
      _mm256_storeu_ps(a + m * a_stride + 8 * g, _mm256_mul_ps(acc[m][g], sc));
}

/// model::score_prefix: the whole 8-key groups below P rounded up to 4 keys, the rest 4-wide.
template <int M>
LLAMA2C_WIDE_TARGET inline void score_prefix(const float* q,
                                             index_t hs,
                                             const float* k,
                                             index_t k_stride,
                                             float* a,
                                             index_t a_stride,
                                             float inv_scale,
                                             index_t P) noexcept {
  constexpr int G = M == 1 ? 4 : 2;
  const index_t n = round_up(P, 4);
  index_t c = 0;
  for (; c + 8 * G <= n; c += 8 * G)
    score_keys<M, G>(q, hs, k + c, k_stride, a + c, a_stride, inv_scale);
  for (; c + 8 <= n; c += 8)
    score_keys<M, 1>(q, hs, k + c, k_stride, a + c, a_stride, inv_scale);
  if (c < n) { // one chunk of 4 keys
    __m128 acc[M];
    for (int m = 0; m < M; ++m)
      acc[m] = _mm_setzero_ps();
    for (index_t i = 0; i < hs; ++i) {
      const __m128 kv = _mm_loadu_ps(k + i * k_stride + c);
      for (int m = 0; m < M; ++m)
        acc[m] = _mm_add_ps(acc[m], mul(kv, _mm_set1_ps(q[m * hs + i])));
    }
    for (int m = 0; m < M; ++m)
      _mm_storeu_ps(a + m * a_stride + c, _mm_mul_ps(acc[m], _mm_set1_ps(inv_scale)));
  }
}

/// model::softmax_exp without the sum (see inv_sums): the maximum (exact in any order), then
/// a[j] = exp(a[j] - max) 8 lanes at a time, 0 for the lanes of the last 4-lane chunk past n.
LLAMA2C_WIDE_TARGET inline void softmax_exp(float* a, index_t n) noexcept {
  const index_t chunks = (n + 3) / 4;
  const index_t last = (chunks - 1) * 4;
  const __m128 ninf = _mm_set1_ps(-std::numeric_limits<float>::infinity());
  const __m128i iota = _mm_setr_epi32(0, 1, 2, 3);
  const __m128 mask =
      _mm_castsi128_ps(_mm_cmplt_epi32(iota, _mm_set1_epi32(static_cast<int>(n - last))));
  // mask ? v : -inf, for the last chunk
  const __m128 tailv = _mm_loadu_ps(a + last);
  __m128 m0 = _mm_or_ps(_mm_and_ps(mask, tailv), _mm_andnot_ps(mask, ninf));
  __m256 m8 = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  index_t c = 0;
  for (; c + 8 <= last; c += 8)
    m8 = _mm256_max_ps(m8, _mm256_loadu_ps(a + c));
  if (c < last)
    m0 = _mm_max_ps(m0, _mm_loadu_ps(a + c));
  m0 = _mm_max_ps(m0, _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1)));
  float mv[4];
  _mm_storeu_ps(mv, m0);
  const float a02 = mv[0] > mv[2] ? mv[0] : mv[2];
  const float a13 = mv[1] > mv[3] ? mv[1] : mv[3];
  const float mx = a02 > a13 ? a02 : a13;
  const __m256 mx8 = _mm256_set1_ps(mx);
  for (c = 0; c + 8 <= last; c += 8)
    _mm256_storeu_ps(a + c, exp(_mm256_sub_ps(_mm256_loadu_ps(a + c), mx8)));
  // the remaining chunks (one or two of 4 lanes, the last masked) through the 8-lane exp
  alignas(32) float buf[8] = {};
  const index_t rest = last + 4 - c; // 4 or 8 floats
  std::memcpy(buf, a + c, static_cast<std::size_t>(rest) * sizeof(float));
  const __m256 e = exp(_mm256_sub_ps(_mm256_load_ps(buf), mx8));
  _mm256_store_ps(buf, e);
  if (rest == 8)
    _mm_storeu_ps(a + c, _mm_load_ps(buf));
  _mm_storeu_ps(a + last, _mm_and_ps(mask, _mm_load_ps(buf + rest - 4)));
}

/// 1 / (sum of the softmax numerators) of H heads (head h at `a + h * stride`, n keys, lanes
/// past n zero): each head's sum runs one 4-lane chunk after the other, then the fixed hsum tree,
/// as in model::softmax_exp; the heads are interleaved so that their add chains overlap.
LLAMA2C_WIDE_TARGET inline void
inv_sums(const float* a, index_t stride, index_t H, index_t n, float* inv) noexcept {
  const index_t end = round_up(n, 4);
  for (index_t h0 = 0; h0 < H; h0 += 8) {
    const index_t hn = std::min<index_t>(8, H - h0);
    __m128 s[8];
    for (int h = 0; h < 8; ++h)
      s[h] = _mm_setzero_ps();
    for (index_t c = 0; c < end; c += 4)
      for (int h = 0; h < 8; ++h)
        if (h < hn)
          s[h] = _mm_add_ps(s[h], _mm_loadu_ps(a + (h0 + h) * stride + c));
    for (index_t h = 0; h < hn; ++h) {
      float mv[4];
      _mm_storeu_ps(mv, s[h]);
      inv[h0 + h] = 1.0f / ((mv[0] + mv[2]) + (mv[1] + mv[3]));
    }
  }
}

/// detail::vsum_tile for M heads x 2 FP features: each register holds the 4-lane accumulators of
/// two features side by side, so every accumulator still adds its chunks one after the other. (The
/// chunk step is written out here, not in a helper taking the accumulator array by reference:
/// GCC then kept the array in memory and stored it on every chunk.)
template <int M, int FP>
LLAMA2C_WIDE_TARGET inline void vsum_tile(const float* a,
                                          index_t a_stride,
                                          const float* v1,
                                          index_t s1,
                                          index_t chunks1,
                                          const float* v2,
                                          index_t s2,
                                          index_t chunks2,
                                          index_t valid_last,
                                          float* out,
                                          index_t out_stride,
                                          const float* inv) noexcept {
  __m256 acc[M][FP];
  for (int m = 0; m < M; ++m)
    for (int f = 0; f < FP; ++f)
      acc[m][f] = _mm256_setzero_ps();
  const index_t total = chunks1 + chunks2;
  const __m128 m4 = _mm_castsi128_ps(
      _mm_cmplt_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(static_cast<int>(valid_last))));
  const __m256 mask = _mm256_insertf128_ps(_mm256_castps128_ps256(m4), m4, 1);
  // chunk c: acc[m][f] += (a_m[c], a_m[c]) * (v_2f[c], v_2f+1[c]); the last keeps masked lanes
  for (index_t c = 0; c < total; ++c) {
    const float* v = c < chunks1 ? v1 + 4 * c : v2 + 4 * (c - chunks1);
    const index_t vs = c < chunks1 ? s1 : s2;
    __m256 av[M];
    for (int m = 0; m < M; ++m)
      av[m] = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(a + m * a_stride + 4 * c));
    if (c + 1 < total) {
      for (int f = 0; f < FP; ++f) {
        const __m256 vv = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(v + 2 * f * vs)),
                                               _mm_loadu_ps(v + (2 * f + 1) * vs),
                                               1);
        for (int m = 0; m < M; ++m)
          acc[m][f] = _mm256_add_ps(acc[m][f], mul(av[m], vv));
      }
    } else {
      for (int f = 0; f < FP; ++f) {
        const __m256 vv = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(v + 2 * f * vs)),
                                               _mm_loadu_ps(v + (2 * f + 1) * vs),
                                               1);
        for (int m = 0; m < M; ++m)
          acc[m][f] = _mm256_blendv_ps(acc[m][f], _mm256_add_ps(acc[m][f], mul(av[m], vv)), mask);
      }
    }
  }
  for (int m = 0; m < M; ++m)
    for (int f = 0; f < FP; ++f) {
      alignas(32) float t[8];
      _mm256_store_ps(t, acc[m][f]);
      out[m * out_stride + 2 * f] = ((t[0] + t[2]) + (t[1] + t[3])) * inv[m];
      out[m * out_stride + 2 * f + 1] = ((t[4] + t[6]) + (t[5] + t[7])) * inv[m];
    }
}

/// detail::exp on 16 lanes, operation for operation (see the 8-lane exp).
LLAMA2C_WIDE512_TARGET inline __m512 exp512(__m512 x) noexcept {
  x = _mm512_mask_max_ps(x, 0xFFFF, _mm512_set1_ps(-87.0f), x);
  x = _mm512_mask_min_ps(x, 0xFFFF, _mm512_set1_ps(88.0f), x);
  const __m512 magic = _mm512_set1_ps(12582912.0f);
  __m512 fx = mul(x, _mm512_set1_ps(1.44269504088896341f));
  fx = _mm512_sub_ps(_mm512_add_ps(fx, magic), magic);
  __m512 r = _mm512_add_ps(x, mul(fx, _mm512_set1_ps(-0.693359375f)));
  r = _mm512_add_ps(r, mul(fx, _mm512_set1_ps(2.12194440e-4f)));
  const __m512 z = _mm512_mul_ps(r, r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_add_ps(_mm512_set1_ps(1.3981999507e-3f), mul(y, r));
  y = _mm512_add_ps(_mm512_set1_ps(8.3334519073e-3f), mul(y, r));
  y = _mm512_add_ps(_mm512_set1_ps(4.1665795894e-2f), mul(y, r));
  y = _mm512_add_ps(_mm512_set1_ps(1.6666665459e-1f), mul(y, r));
  y = _mm512_add_ps(_mm512_set1_ps(5.0000001201e-1f), mul(y, r));
  y = _mm512_add_ps(_mm512_add_ps(r, mul(y, z)), _mm512_set1_ps(1.0f));
  // (vector extensions: GCC 12's intrinsics for these read an "undefined" source and warn)
  using v16i = std::int32_t __attribute__((vector_size(64)));
  const v16i n = __builtin_convertvector(fx, v16i);
  const v16i bits = (n + 127) << 23;
  return _mm512_mul_ps(y, (__m512)bits);
}

/// score_keys with 16 keys per register; Partial: the last register holds only the keys of `last`.
template <int M, int G, bool Partial>
LLAMA2C_WIDE512_TARGET inline void score_keys512(const float* q,
                                                 index_t hs,
                                                 const float* k,
                                                 index_t k_stride,
                                                 float* a,
                                                 index_t a_stride,
                                                 float inv_scale,
                                                 __mmask16 last) noexcept {
  __m512 acc[M][G];
  for (int m = 0; m < M; ++m)
    for (int g = 0; g < G; ++g)
      acc[m][g] = _mm512_setzero_ps();
  for (index_t i = 0; i < hs; ++i) {
    __m512 kv[G];
    for (int g = 0; g < G; ++g)
      kv[g] = Partial && g == G - 1 ? _mm512_maskz_loadu_ps(last, k + i * k_stride + 16 * g)
                                    : _mm512_loadu_ps(k + i * k_stride + 16 * g);
    for (int m = 0; m < M; ++m) {
      const __m512 qv = _mm512_set1_ps(q[m * hs + i]);
      for (int g = 0; g < G; ++g)
        acc[m][g] = _mm512_add_ps(acc[m][g], mul(kv[g], qv));
    }
  }
  const __m512 sc = _mm512_set1_ps(inv_scale);
  for (int m = 0; m < M; ++m)
    for (int g = 0; g < G; ++g) {
      if (Partial && g == G - 1)
        _mm512_mask_storeu_ps(a + m * a_stride + 16 * g, last, _mm512_mul_ps(acc[m][g], sc));
      else
        _mm512_storeu_ps(a + m * a_stride + 16 * g, _mm512_mul_ps(acc[m][g], sc));
    }
}

/// score_prefix with 16 keys per register (the keys below P rounded up to 4); tiles of 8 or 4
/// accumulators, so that the add chains overlap.
template <int M>
LLAMA2C_WIDE512_TARGET inline void score_prefix512(const float* q,
                                                   index_t hs,
                                                   const float* k,
                                                   index_t k_stride,
                                                   float* a,
                                                   index_t a_stride,
                                                   float inv_scale,
                                                   index_t P) noexcept {
  constexpr int G = M == 1 ? 8 : (M == 2 ? 4 : 2);
  const index_t n = round_up(P, 4);
  index_t c = 0;
  for (; c + 16 * G <= n; c += 16 * G)
    score_keys512<M, G, false>(q, hs, k + c, k_stride, a + c, a_stride, inv_scale, 0);
  if constexpr (G > 2)
    for (; c + 16 * (G / 2) <= n; c += 16 * (G / 2))
      score_keys512<M, G / 2, false>(q, hs, k + c, k_stride, a + c, a_stride, inv_scale, 0);
  for (; c + 16 <= n; c += 16)
    score_keys512<M, 1, false>(q, hs, k + c, k_stride, a + c, a_stride, inv_scale, 0);
  if (c < n)
    score_keys512<M, 1, true>(q,
                              hs,
                              k + c,
                              k_stride,
                              a + c,
                              a_stride,
                              inv_scale,
                              static_cast<__mmask16>((1u << (n - c)) - 1u));
}

/// softmax_exp (the 8-lane one) with 16 lanes: the same maximum and numerators, no sum.
LLAMA2C_WIDE512_TARGET inline void softmax_exp512(float* a, index_t n) noexcept {
  const index_t chunks = (n + 3) / 4;
  const index_t end = chunks * 4; // floats covered, the last chunk partial
  const auto valid = static_cast<int>(n - (chunks - 1) * 4); // lanes of the last chunk
  // maximum over the first n (exact in any order)
  __m512 m16 = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  index_t c = 0;
  for (; c + 16 <= n; c += 16)
    m16 = _mm512_mask_max_ps(m16, 0xFFFF, m16, _mm512_loadu_ps(a + c));
  if (c < n) {
    const auto k = static_cast<__mmask16>((1u << (n - c)) - 1u);
    m16 = _mm512_mask_max_ps(m16, k, m16, _mm512_maskz_loadu_ps(k, a + c));
  }
  // halves, quarters, ... (any order gives the same maximum)
  const __m256 m8 = _mm256_max_ps(__builtin_shufflevector(m16, m16, 0, 1, 2, 3, 4, 5, 6, 7),
                                  __builtin_shufflevector(m16, m16, 8, 9, 10, 11, 12, 13, 14, 15));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ps(m4, _mm_shuffle_ps(m4, m4, 1));
  const float mx = _mm_cvtss_f32(m4);
  const __m512 mx16 = _mm512_set1_ps(mx);
  for (c = 0; c + 16 <= end; c += 16) {
    __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(a + c), mx16));
    if (c + 16 == end && valid < 4) // the last chunk: lanes past n are 0
      e = _mm512_maskz_mov_ps(static_cast<__mmask16>(0x0FFFu | (((1u << valid) - 1u) << 12)), e);
    _mm512_storeu_ps(a + c, e);
  }
  if (c < end) {
    const index_t m = end - c; // 4, 8 or 12 floats
    const auto k =
        static_cast<__mmask16>(((1u << (m - 4)) - 1u) | (((1u << valid) - 1u) << (m - 4)));
    const auto ld = static_cast<__mmask16>((1u << m) - 1u);
    const __m512 e =
        _mm512_maskz_mov_ps(k, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(ld, a + c), mx16)));
    _mm512_mask_storeu_ps(a + c, ld, e);
  }
}

/// model::swiglu for one row of n floats (n a multiple of 4): o = h1 * (1 / (1 + exp(-h1))) * h3,
/// 8 lanes at a time with the 8-lane exp (the same operations per element).
LLAMA2C_WIDE_TARGET inline void
swiglu(const float* h1, const float* h3, float* o, index_t n) noexcept {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  index_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const __m256 a = _mm256_loadu_ps(h1 + c);
    const __m256 e = exp(_mm256_xor_ps(a, sign));
    const __m256 sv = _mm256_mul_ps(a, _mm256_div_ps(one, _mm256_add_ps(one, e)));
    _mm256_storeu_ps(o + c, _mm256_mul_ps(sv, _mm256_loadu_ps(h3 + c)));
  }
  if (c < n) { // 4 floats
    alignas(32) float t[8] = {};
    std::memcpy(t, h1 + c, 4 * sizeof(float));
    const __m256 a = _mm256_load_ps(t);
    const __m256 e = exp(_mm256_xor_ps(a, sign));
    const __m256 sv = _mm256_mul_ps(a, _mm256_div_ps(one, _mm256_add_ps(one, e)));
    _mm_storeu_ps(o + c, _mm_mul_ps(_mm256_castps256_ps128(sv), _mm_loadu_ps(h3 + c)));
  }
}

/// swiglu with 16 lanes (the 16-lane exp; the last register masked to the n % 16 floats left).
LLAMA2C_WIDE512_TARGET inline void
swiglu512(const float* h1, const float* h3, float* o, index_t n) noexcept {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (index_t c = 0; c < n; c += 16) {
    const auto k = static_cast<__mmask16>(n - c >= 16 ? 0xFFFFu : (1u << (n - c)) - 1u);
    const __m512 a = _mm512_maskz_loadu_ps(k, h1 + c);
    const __m512 e = exp512(-a);
    const __m512 sv = _mm512_mul_ps(a, _mm512_div_ps(one, _mm512_add_ps(one, e)));
    _mm512_mask_storeu_ps(o + c, k, _mm512_mul_ps(sv, _mm512_maskz_loadu_ps(k, h3 + c)));
  }
}

#undef LLAMA2C_WIDE_TARGET
#undef LLAMA2C_WIDE512_TARGET

} // namespace wide
#endif

/// Checked 64-bit arithmetic for the size computation of the loader.
struct checked_size {
  std::uint64_t v = 0;
  bool overflow = false;
  checked_size& add(std::uint64_t a) noexcept {
    overflow = overflow || __builtin_add_overflow(v, a, &v);
    return *this;
  }
  static std::uint64_t mul(std::uint64_t a, std::uint64_t b, bool& of) noexcept {
    std::uint64_t r = 0;
    of = of || __builtin_mul_overflow(a, b, &r);
    return r;
  }
};

} // namespace detail

/// @brief A llama2.c transformer with a KV cache, scoring chains, trees and early-exit chains.
///
/// Load it with model::load(). The KV cache (cache()) has capacity seq_len and holds
/// `2 * n_layers` planes, both feature-major with `kv_dim` features: plane `2l` the keys of layer
/// l, plane `2l + 1` its values (kv head g owns features `[g * head_size, (g+1) * head_size)`, a
/// `[head_size][capacity]` block); when seq_len is not a multiple of the vector width one more
/// plane follows as padding (the kernels read whole vectors). Slots past the committed length may
/// hold anything, NaN included (extra-checks poisoning): the kernels mask them out. The decoding
/// loop may call `cache().rollback(n)` at any time; the next score() then starts at position n.
///
/// score_rows() scores the chains of several sequences in one pass, each against a cache of the
/// same layout (allocate_cache()); batch_model (batch.hpp) runs it on several threads.
///
/// Batch invariance, contraction and thread safety: see the file comment.
class model {
public:
  /// @brief Largest dim, hidden_dim and |vocab_size| that load() accepts (2^24; Llama 2 70B has
  ///        dim 8192 and hidden_dim 28672).
  static constexpr std::int32_t max_width = 1 << 24;
  /// @brief Most layers that load() accepts (2^16; Llama 2 70B has 80).
  static constexpr std::int32_t max_layers = 1 << 16;
  /// @brief Most query heads that load() accepts (2^16; Llama 2 70B has 64).
  static constexpr std::int32_t max_heads = 1 << 16;
  /// @brief Longest context (seq_len) that load() accepts: 2^22 positions (Llama 2: 4096).
  static constexpr std::int32_t max_seq_len = 1 << 22;
  /// @brief Most memory that load() gives the context state, in bytes: 8 GiB. The context state
  ///        is what the file does not back: the KV cache (`2 * n_layers * kv_dim * seq_len` floats,
  ///        plus a padding plane) and the attention scores (`n_heads * seq_len` floats, padded).
  ///        8 GiB holds every Llama 2 model at its full 4096-token context in fp32 (13B: 6.25 GiB).
  static constexpr std::uint64_t max_kv_cache_bytes = std::uint64_t{1} << 33;
  /// @brief Context state that any checkpoint may have, whatever its size: 256 MiB (stories110M
  ///        needs 72 MiB at its full context). Above it the state may not exceed the file's own
  ///        size (true of every real model: Llama 2 7B's 4 GiB against a 25 GiB file), so that a
  ///        small file cannot make load() allocate gigabytes.
  static constexpr std::uint64_t kv_cache_bytes_any_file = std::uint64_t{1} << 28;

  /// @brief Loads and validates a legacy llama2.c checkpoint.
  ///
  /// Validation, in this order, before anything is allocated for the weights or the context:
  ///  1. the file must exist and be readable (else errc::io_error) and hold the 28-byte header;
  ///     every size must be positive (vocab_size non-zero: its sign selects the classifier); dim,
  ///     hidden_dim and |vocab_size| at most max_width, n_layers at most max_layers, n_heads at
  ///     most max_heads, seq_len at most max_seq_len; dim a multiple of n_heads, n_heads a
  ///     multiple of n_kv_heads, head_size even (else errc::corrupt_data);
  ///  2. the file length must equal exactly `28 + 4 * (number of floats the header implies)`,
  ///     computed with overflow-checked 64-bit arithmetic (else errc::corrupt_data);
  ///  3. the context state (see max_kv_cache_bytes) must fit both max_kv_cache_bytes and the
  ///     larger of kv_cache_bytes_any_file and the file size (else errc::unsupported: the file
  ///     may be well formed, but this loader will not allocate that much for it);
  ///  4. every weight must be finite (else errc::corrupt_data).
  /// Should an allocation still fail, the result is errc::unsupported; no exception escapes.
  /// Assumes a little-endian host (as run.c does).
  /// @param[in] path the checkpoint file
  /// @param[out] out receives the model on success; unchanged on error
  /// @param[out] detail optional: receives a one-line explanation on error (e.g. the expected and
  ///             actual file sizes, or the limit a size breaks); cleared on success
  /// @return ok, errc::io_error, errc::corrupt_data or errc::unsupported
  /// @par Complexity
  /// O(file size) time; the packed weights take about the file size again (at most about 16
  /// times it, for matrices narrower than a vector), the context state as in step 3.
  static specdec::status load(const std::string& path, model& out, std::string* detail = nullptr) {
    using specdec::errc;
    using specdec::status;
    auto fail = [&](errc code, const std::string& why) {
      if (detail != nullptr)
        *detail = path + ": " + why;
      return status{code};
    };
    std::ifstream f(path, std::ios::binary);
    if (!f)
      return fail(errc::io_error, "cannot open the file");
    f.seekg(0, std::ios::end);
    const std::streamoff file_size = f.tellg();
    f.seekg(0, std::ios::beg);
    if (file_size < 0 || !f)
      return fail(errc::io_error, "cannot determine the file size");
    constexpr std::streamoff header_bytes = 7 * 4;
    if (file_size < header_bytes)
      return fail(errc::corrupt_data,
                  "file holds " + std::to_string(file_size)
                      + " bytes, shorter than the 28-byte header");
    std::array<std::int32_t, 7> h{};
    if (!f.read(reinterpret_cast<char*>(h.data()), header_bytes))
      return fail(errc::io_error, "cannot read the header");
    config c;
    c.dim = h[0];
    c.hidden_dim = h[1];
    c.n_layers = h[2];
    c.n_heads = h[3];
    c.n_kv_heads = h[4];
    c.shared_classifier = h[5] > 0;
    c.vocab_size = h[5] == std::numeric_limits<std::int32_t>::min() ? 0 : (h[5] < 0 ? -h[5] : h[5]);
    c.seq_len = h[6];
    const std::string hdr = "header (dim " + std::to_string(h[0]) + ", hidden_dim "
                            + std::to_string(h[1]) + ", n_layers " + std::to_string(h[2])
                            + ", n_heads " + std::to_string(h[3]) + ", n_kv_heads "
                            + std::to_string(h[4]) + ", vocab_size " + std::to_string(h[5])
                            + ", seq_len " + std::to_string(h[6]) + ")";
    if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0
        || c.vocab_size <= 0 || c.seq_len <= 0)
      return fail(errc::corrupt_data, hdr + ": every size must be positive");
    const struct {
      const char* name;
      std::int32_t value, limit;
    } limits[] = {{"dim", c.dim, max_width},
                  {"hidden_dim", c.hidden_dim, max_width},
                  {"vocab_size", c.vocab_size, max_width},
                  {"n_layers", c.n_layers, max_layers},
                  {"n_heads", c.n_heads, max_heads},
                  {"seq_len", c.seq_len, max_seq_len}};
    for (const auto& l : limits)
      if (l.value > l.limit)
        return fail(errc::corrupt_data,
                    hdr + ": " + l.name + " is above the limit of " + std::to_string(l.limit));
    if (c.dim % c.n_heads != 0)
      return fail(errc::corrupt_data, hdr + ": dim is not a multiple of n_heads");
    if (c.n_heads % c.n_kv_heads != 0)
      return fail(errc::corrupt_data, hdr + ": n_heads is not a multiple of n_kv_heads");
    const std::uint64_t hs = static_cast<std::uint64_t>(c.dim / c.n_heads);
    if (hs % 2 != 0)
      return fail(errc::corrupt_data, hdr + ": head_size is odd");
    const std::uint64_t dim = static_cast<std::uint64_t>(c.dim);
    const std::uint64_t hid = static_cast<std::uint64_t>(c.hidden_dim);
    const std::uint64_t nl = static_cast<std::uint64_t>(c.n_layers);
    const std::uint64_t voc = static_cast<std::uint64_t>(c.vocab_size);
    const std::uint64_t kvd = hs * static_cast<std::uint64_t>(c.n_kv_heads);
    bool of = false;
    using cs = detail::checked_size;
    const std::uint64_t per_layer = cs{}.add(2 * dim)
                                        .add(cs::mul(2, cs::mul(dim, dim, of), of))
                                        .add(cs::mul(2, cs::mul(kvd, dim, of), of))
                                        .add(cs::mul(3, cs::mul(hid, dim, of), of))
                                        .v;
    cs total;
    total.add(cs::mul(voc, dim, of))
        .add(cs::mul(nl, per_layer, of))
        .add(dim)
        .add(cs::mul(static_cast<std::uint64_t>(c.seq_len), hs, of));
    if (!c.shared_classifier)
      total.add(cs::mul(voc, dim, of));
    const std::uint64_t n_floats = total.v;
    const std::uint64_t expected = cs{}.add(28).add(cs::mul(4, n_floats, of)).v;
    if (of || total.overflow
        || expected > static_cast<std::uint64_t>(std::numeric_limits<std::streamoff>::max()))
      return fail(errc::corrupt_data, hdr + ": the implied file size overflows");
    if (static_cast<std::uint64_t>(file_size) != expected)
      return fail(errc::corrupt_data,
                  hdr + " implies " + std::to_string(expected) + " bytes, the file holds "
                      + std::to_string(file_size));
    // The context state, which the file does not back (see allocate_cache and reserve_rows).
    const auto lanes = static_cast<std::uint64_t>(detail::lanes);
    const auto seq = static_cast<std::uint64_t>(c.seq_len);
    const std::uint64_t kv_planes =
        cs{}.add(cs::mul(2, cs::mul(nl, kvd, of), of)).add(seq % lanes != 0 ? lanes : 0).v;
    const std::uint64_t att_stride = (seq + lanes - 1) / lanes * lanes + lanes;
    const std::uint64_t state_floats =
        cs{}.add(cs::mul(seq, kv_planes, of))
            .add(cs::mul(static_cast<std::uint64_t>(c.n_heads), att_stride, of))
            .v;
    const std::uint64_t state = cs::mul(4, state_floats, of);
    const std::uint64_t allowed =
        std::min(max_kv_cache_bytes, std::max(kv_cache_bytes_any_file, expected));
    if (of || state > allowed)
      return fail(errc::unsupported,
                  hdr + ": the KV cache and attention scores would take "
                      + (of ? std::string("more than 2^64") : std::to_string(state))
                      + " bytes; the limit for this " + std::to_string(expected) + "-byte file is "
                      + std::to_string(allowed) + " (the file size, but at least "
                      + std::to_string(kv_cache_bytes_any_file >> 20) + " MiB and at most "
                      + std::to_string(max_kv_cache_bytes >> 30) + " GiB)");
    model m;
    std::string why;
    auto build_all = [&]() -> status {
      std::vector<float> raw(static_cast<std::size_t>(n_floats));
      if (!f.read(reinterpret_cast<char*>(raw.data()),
                  static_cast<std::streamsize>(n_floats * sizeof(float)))) {
        why = "cannot read the weights";
        return status{errc::io_error};
      }
      // Every weight must be finite (the skipped RoPE tables are not weights).
      const std::size_t rope_begin =
          static_cast<std::size_t>(n_floats - seq * hs - (c.shared_classifier ? 0 : voc * dim));
      const std::size_t rope_end = rope_begin + static_cast<std::size_t>(seq * hs);
      auto finite = [&](std::size_t b, std::size_t e) {
        return Eigen::Map<const Eigen::ArrayXf>(raw.data() + b, static_cast<Eigen::Index>(e - b))
            .allFinite();
      };
      if (!finite(0, rope_begin) || !finite(rope_end, raw.size())) {
        why = "a weight is NaN or infinite";
        return status{errc::corrupt_data};
      }
      m.build(c, raw.data(), rope_end);
      const specdec::status st = m.allocate_cache(m.cache_);
      if (!st)
        why = "cannot allocate the KV cache";
      return st;
    };
#if defined(__cpp_exceptions)
    try {
      if (const status st = build_all(); !st)
        return fail(st.code, why);
    } catch (const std::bad_alloc&) {
      return fail(errc::unsupported,
                  hdr + ": out of memory for the weights (" + std::to_string(expected)
                      + " bytes in the file) and the context (" + std::to_string(state)
                      + " bytes)");
    }
#else
    if (const status st = build_all(); !st)
      return fail(st.code, why);
#endif
    out = std::move(m);
    if (detail != nullptr)
      detail->clear();
    return status{};
  }

  /// @brief The checkpoint's header. O(1).
  [[nodiscard]] const config& cfg() const noexcept {
    return cfg_;
  }
  /// @brief True once load() succeeded. O(1).
  [[nodiscard]] bool loaded() const noexcept {
    return cfg_.dim > 0;
  }
  /// @brief Vocabulary size (the width of a logit row); 0 before load(). O(1).
  [[nodiscard]] specdec::index_t vocab_size() const noexcept {
    return cfg_.vocab_size;
  }
  /// @brief Number of transformer layers (the `layers` bound of score_layers). O(1).
  [[nodiscard]] int num_layers() const noexcept {
    return cfg_.n_layers;
  }
  /// @brief Maximum context: positions 0 .. seq_len()-1. O(1).
  [[nodiscard]] specdec::index_t seq_len() const noexcept {
    return cfg_.seq_len;
  }
  /// @brief Number of weights the forward pass uses (embedding, norms, projections, FFN, final
  ///        norm, and the classifier when it is not shared; not the skipped RoPE tables). O(1).
  [[nodiscard]] std::size_t parameter_count() const noexcept {
    return params_;
  }
  /// @brief The KV cache (layout: see the class comment). The decoding loop rolls it back after a
  ///        rejection; score() and score_tree() set its length. O(1).
  [[nodiscard]] specdec::kv::contiguous_cache<float>& cache() noexcept {
    return cache_;
  }
  /// @brief The KV cache (read-only). O(1).
  [[nodiscard]] const specdec::kv::contiguous_cache<float>& cache() const noexcept {
    return cache_;
  }
  /// @brief Model width d (the length of a hidden row). O(1).
  [[nodiscard]] specdec::index_t hidden_size() const noexcept {
    return cfg_.dim;
  }
  /// @brief Row t of the last forward pass's final-normed hidden states (the classifier's input):
  ///        `hidden_size()` floats, valid until the next score(), score_tree() or score_layers()
  ///        call. After score_layers(r, L, ...) it is the early-exit hidden state of layer L.
  /// @pre 0 <= t < the row count of the last call. O(1).
  [[nodiscard]] const float* hidden_row(specdec::index_t t) const noexcept {
    return xb_.data() + t * dim_pad_;
  }
  /// @brief Applies the classifier to T hidden rows (each `hidden_size()` floats, row stride
  ///        `hidden_stride`): out row t receives the logits of hidden row t, exactly as the forward
  ///        pass computes them from its final-normed state. Leaves the cache alone; overwrites the
  ///        scratch that hidden_row() reads.
  /// @return errc::shape_mismatch for a bad `out` or stride, errc::invalid_argument for T < 0,
  ///         null pointers or an unloaded model
  /// @par Complexity
  /// O(T * vocab * dim).
  [[nodiscard]] specdec::status classify(const float* hidden,
                                         specdec::index_t hidden_stride,
                                         specdec::index_t T,
                                         specdec::matrix_view<float> out) {
    using specdec::errc;
    if (!loaded() || T < 0 || (T > 0 && (hidden == nullptr || out.data == nullptr)))
      return specdec::status{errc::invalid_argument};
    if (hidden_stride < cfg_.dim || out.rows < T || out.cols != cfg_.vocab_size
        || out.row_stride < out.cols)
      return specdec::status{errc::shape_mismatch};
    reserve_rows(T);
    for (index_t t = 0; t < T; ++t)
      std::memcpy(xb_.data() + t * dim_pad_,
                  hidden + t * hidden_stride,
                  static_cast<std::size_t>(cfg_.dim) * sizeof(float));
    mm(xb_.data(),
       dim_pad_,
       T,
       w_->data() + wcls_,
       vocab_pad_,
       cfg_.dim,
       logits_.data(),
       vocab_pad_);
    for (index_t t = 0; t < T; ++t)
      std::memcpy(out.data + t * out.row_stride,
                  logits_.data() + t * vocab_pad_,
                  static_cast<std::size_t>(cfg_.vocab_size) * sizeof(float));
    return specdec::status{};
  }
  /// @brief Bits per register of the kernels the forward pass runs: the build's own vector width
  ///        (128 for a baseline x86 build), or 256 / 512 where a baseline build runs the kernels
  ///        of detail::wide (load() picks the widest the CPU has). Every width gives bitwise the
  ///        same results. O(1).
  [[nodiscard]] int kernel_width() const noexcept {
    return kw_;
  }
  /// @brief Runs the widest kernels of at most `bits` that the CPU and the build support (for
  ///        tests and measurements); copies made later by share_weights() inherit the choice.
  /// @return kernel_width() now in effect
  /// @par Complexity
  /// O(1).
  int set_kernel_width(int bits) noexcept {
    const int widest = detail::widest_kernels();
    kw_ = static_cast<int>(detail::lanes) * 32;
    for (const int b : {256, 512})
      if (b <= bits && b <= widest && b > kw_)
        kw_ = b;
    return kw_;
  }
  /// @brief Empties the cache (length 0) and forgets any early-exit draft. O(1).
  void reset() noexcept {
    cache_.clear();
    forget_draft();
  }

  /// @brief Scores a chain: row j of `out` receives the logits after `r.tokens[0..j]`, token j at
  ///        absolute position `r.start + j`.
  ///
  /// Requires `0 <= r.start <= cache().length()` (positions `[0, start)` hold committed KV), else
  /// errc::invalid_argument; `start + T <= seq_len`, else errc::overflow; every token in
  /// `[0, vocab_size())`, else errc::token_out_of_range; `out.rows >= T`, `out.cols ==
  /// vocab_size()` and `out.row_stride >= out.cols`, else errc::shape_mismatch; a null data
  /// pointer with a positive size, a negative size, an unloaded model or a model without a KV
  /// cache of its own (share_weights()) give errc::invalid_argument. On error nothing changes.
  /// T = 0 is a no-op.
  ///
  /// On success the keys and values of slots `start .. start+T-1` are written for every layer,
  /// the cache length becomes `start + T` (a longer committed tail is dropped), and any
  /// early-exit draft is forgotten. Row t attends to positions `[0, start + t]`. Rows are
  /// batch-invariant (file comment).
  /// @par Complexity
  /// O(T * (parameters + n_layers * dim * (start + T))); no allocation once the scratch holds T
  /// rows.
  [[nodiscard]] specdec::status score(const specdec::score_request& r,
                                      specdec::matrix_view<float> out) {
    if (loaded() && (!own_cache_ready() || (r.start > cache_.length() && r.start >= 0)))
      return specdec::status{specdec::errc::invalid_argument};
    const specdec::status st = check(r.start, r.tokens, out);
    if (!st || r.tokens.size == 0)
      return st;
    plan_chain(r.start, r.tokens.size);
    drop_tail(cache_, r.start);
    forward(r.tokens.data, r.tokens.size, cfg_.n_layers, out, features_);
    features_ = nullptr;
    commit(r.start + r.tokens.size, r.start);
    return specdec::status{};
  }

  /// @brief score() that also returns, per scored row, the residual stream at the layers
  ///        `f.layers` (specdec::feature_target_model): layer 0 is the token embedding, layer l
  ///        the stream after l layers (num_layers(): before the final norm).
  ///
  /// The logits are bitwise score()'s and the feature rows are batch-invariant like them (they
  /// are copies of the rows the forward pass computes anyway: no extra arithmetic). An empty
  /// `f.layers` is score() itself. Errors as in score(), plus a layer outside [0, num_layers()]
  /// (errc::invalid_argument) and `f.out` with fewer than T rows or layers * hidden_size()
  /// columns (errc::shape_mismatch); on error nothing changes.
  /// @par Complexity
  /// As score(), plus O(T * layers * dim) copies.
  [[nodiscard]] specdec::status score_features(const specdec::score_request& r,
                                               specdec::matrix_view<float> logits,
                                               const specdec::feature_request& f) {
    if (const specdec::status s = check_features(f, r.tokens.size); !s.ok())
      return s;
    features_ = f.layers.size > 0 ? &f : nullptr;
    const specdec::status s = score(r, logits);
    features_ = nullptr;
    return s;
  }

  /// @brief score_tree() that also returns the features of every node (row i: node i), as
  ///        score_features() does for a chain. Errors as in score_tree() and score_features().
  /// @par Complexity
  /// As score_tree(), plus O(T * layers * dim) copies.
  [[nodiscard]] specdec::status
  score_tree_features(specdec::index_t start,
                      specdec::row_view<const specdec::token_id> tokens,
                      specdec::row_view<const std::int32_t> parents,
                      specdec::matrix_view<float> logits,
                      const specdec::feature_request& f) {
    if (const specdec::status s = check_features(f, tokens.size); !s.ok())
      return s;
    features_ = f.layers.size > 0 ? &f : nullptr;
    const specdec::status s = score_tree(start, tokens, parents, logits);
    features_ = nullptr;
    return s;
  }

  /// @brief Scores a token tree in one pass: node i's row receives the logits after the committed
  ///        prefix followed by the tokens on its root path.
  ///
  /// `parents[i]` is -1 (a child of the committed prefix) or a node index below i (topological
  /// order). Node i sits at position `start + depth(i)` (depth 0 for a root), its K/V go to slot
  /// `start + i`, and it attends to the committed positions `[0, start)` then to its ancestors and
  /// itself, keys summed in ascending slot order. For a chain (`parents[i] = i - 1`) the rows are
  /// bitwise equal to score()'s, and any node's row is bitwise equal to scoring its root path as a
  /// chain. Errors as in score(), plus `parents.size != tokens.size` (errc::shape_mismatch) and a
  /// parent outside `[-1, i)` (errc::invalid_argument). On error nothing changes.
  ///
  /// On success the cache length becomes `start + T`; slots hold the nodes in tree order, so the
  /// caller compacts the accepted path (contiguous_cache::copy_position) and rolls back.
  /// @par Complexity
  /// O(T * parameters + n_layers * dim * T * (start + depth)) plus O(sum of depths) for the paths.
  [[nodiscard]] specdec::status score_tree(specdec::index_t start,
                                           specdec::row_view<const specdec::token_id> tokens,
                                           specdec::row_view<const std::int32_t> parents,
                                           specdec::matrix_view<float> out) {
    using specdec::errc;
    if (loaded() && (!own_cache_ready() || (start > cache_.length() && start >= 0)))
      return specdec::status{errc::invalid_argument};
    const specdec::status st = check(start, tokens, out);
    if (!st)
      return st;
    if (parents.size != tokens.size)
      return specdec::status{errc::shape_mismatch};
    if (tokens.size == 0)
      return st;
    if (parents.data == nullptr)
      return specdec::status{errc::invalid_argument};
    for (specdec::index_t i = 0; i < parents.size; ++i)
      if (parents[i] < -1 || parents[i] >= i)
        return specdec::status{errc::invalid_argument};
    plan_tree(start, parents);
    drop_tail(cache_, start);
    forward(tokens.data, tokens.size, cfg_.n_layers, out, features_);
    features_ = nullptr;
    commit(start + tokens.size, start);
    return specdec::status{};
  }

  /// @brief Early exit for self-speculative drafting: runs only the first `layers` layers, then the
  ///        final RMSNorm and the classifier, on a chain as score() does.
  ///
  /// Writes K/V for layers `< layers` at slots `start .. start+T-1` and does **not** change
  /// `cache().length()`. Requires `1 <= layers <= num_layers()` and `start <= cache().length() +
  /// d`, where d counts the positions past the committed length written by consecutive
  /// score_layers calls with the same `layers` since the last score(), score_tree(), reset() or
  /// change of the cache length (a drafter chains calls token by token past the committed
  /// length); anything else gives errc::invalid_argument. Other errors as in score(). On error
  /// nothing changes.
  ///
  /// Slots below the committed length that the call covers are overwritten for those layers: pass
  /// the committed tokens there (they then get bitwise the same values). Because the forward pass
  /// is batch-invariant, a later score() of the same tokens recomputes bitwise the same K/V for
  /// layers `< layers`, and score_layers with `layers == num_layers()` returns score()'s logits.
  /// @par Complexity
  /// As score(), with `layers` layers instead of n_layers.
  [[nodiscard]] specdec::status
  score_layers(const specdec::score_request& r, int layers, specdec::matrix_view<float> out) {
    using specdec::errc;
    if (loaded() && (layers < 1 || layers > cfg_.n_layers || !own_cache_ready()))
      return specdec::status{errc::invalid_argument};
    if (loaded() && r.start >= 0 && r.start > draft_valid_end(layers))
      return specdec::status{errc::invalid_argument};
    const specdec::status st = check(r.start, r.tokens, out);
    if (!st || r.tokens.size == 0)
      return st;
    plan_chain(r.start, r.tokens.size);
    forward(r.tokens.data, r.tokens.size, layers, out);
    draft_layers_ = layers;
    draft_end_ = r.start + r.tokens.size;
    draft_base_ = cache_.length();
    return specdec::status{};
  }

  /// @brief Allocates `c` as a KV cache with this model's layout (capacity seq_len(), the planes
  ///        described in the class comment), zero-filled, length 0: a cache for score_rows().
  /// @param[out] c the cache to (re)allocate; unchanged on error
  /// @return errc::invalid_argument before load(), else what contiguous_cache::allocate returns
  /// @par Complexity
  /// O(n_layers * kv_dim * seq_len) (the zero fill); may throw std::bad_alloc.
  [[nodiscard]] specdec::status allocate_cache(specdec::kv::contiguous_cache<float>& c) const {
    if (!loaded())
      return specdec::status{specdec::errc::invalid_argument};
    std::vector<specdec::kv::plane_desc> planes;
    for (index_t l = 0; l < cfg_.n_layers; ++l) {
      planes.push_back({kv_dim_, specdec::kv::plane_layout::feature_major});
      planes.push_back({kv_dim_, specdec::kv::plane_layout::feature_major});
    }
    if (cap_ % detail::lanes != 0) // room for the last row's partial vector
      planes.push_back({detail::lanes, specdec::kv::plane_layout::position_major});
    return c.allocate(cap_, planes);
  }

  /// @brief A model that shares this one's packed weights (no copy), with scratch of its own and
  ///        **no** KV cache (capacity 0): a worker for score_rows() on another thread.
  ///
  /// Its score(), score_tree() and score_layers() fail with errc::invalid_argument until its
  /// cache is allocated (`allocate_cache(w.cache())`). A copy of an unloaded model is unloaded.
  /// @par Complexity
  /// O(seq_len * head_size) (the RoPE tables) plus the scratch for 8 rows; may throw
  /// std::bad_alloc.
  [[nodiscard]] model share_weights() const {
    model m;
    if (!loaded())
      return m;
    m.cfg_ = cfg_;
    m.hs_ = hs_;
    m.kv_dim_ = kv_dim_;
    m.kv_mul_ = kv_mul_;
    m.dim_pad_ = dim_pad_;
    m.qkv_pad_ = qkv_pad_;
    m.hid_pad_ = hid_pad_;
    m.vocab_pad_ = vocab_pad_;
    m.cap_ = cap_;
    m.att_stride_ = att_stride_;
    m.inv_scale_ = inv_scale_;
    m.params_ = params_;
    m.w_ = w_;
    m.layers_ = layers_;
    m.emb_ = emb_;
    m.rms_final_ = rms_final_;
    m.wcls_ = wcls_;
    m.rope_cos_ = rope_cos_;
    m.rope_sin_ = rope_sin_;
    m.kw_ = kw_;
    m.reserve_rows(8);
    return m;
  }

  /// @brief Grows the per-row scratch so that calls of up to `rows` rows in all (score(),
  ///        score_rows(), ...) do not allocate; a no-op when it is already that large.
  /// @param[in] rows the most rows one later call will score
  /// @par Complexity
  /// O(rows * (dim + hidden_dim + vocab)) when it grows; may throw std::bad_alloc.
  void reserve_scratch(specdec::index_t rows) {
    if (loaded())
      reserve_rows(rows);
  }

  /// @brief Scores the chains of several sequences in one forward pass, each against its own KV
  ///        cache: request i's token t sits at position `reqs[i].start + t` of `*caches[i]`, and
  ///        its row is stacked after the rows of requests 0..i-1 in `logits` (and in `f->out`).
  ///
  /// The matrix products run once over all the rows; attention reads each row's own cache.
  /// Every row is bitwise the row that score() returns for the same chain on a model whose cache
  /// holds the same committed prefix, whatever the other requests and their order (file comment).
  /// `request_id` is not used. With `f` (and a non-empty `f->layers`), feature row j belongs to
  /// logit row j, as in score_features().
  ///
  /// Requires: `caches.size() == reqs.size()`, each cache non-null, distinct and allocated by
  /// allocate_cache() (any model sharing these weights), else errc::invalid_argument; per request
  /// the rules of score() against its own cache (`start <= length()`, errc::invalid_argument;
  /// `start + T <= seq_len`, errc::overflow; tokens in range, errc::token_out_of_range); for the
  /// total row count N, `logits` and `f` as score_features() requires for N rows (a null
  /// `logits.data` with N > 0 is errc::invalid_argument). Everything is checked before anything
  /// is written: on error nothing changes. A request with no tokens changes nothing; N = 0 is a
  /// no-op.
  ///
  /// On success each cache of a request with T > 0 holds that request's keys and values at slots
  /// `start .. start+T-1` and has length `start + T` (a longer committed tail is dropped). The
  /// model's own cache() is touched only when it is one of `caches` (its early-exit draft is then
  /// forgotten). Overwrites the scratch that hidden_row() reads (row j: stacked row j).
  /// @param[in] reqs the chains, in the order their rows are stacked
  /// @param[in] caches `caches[i]` holds request i's sequence
  /// @param[out] logits N rows of vocab_size() logits
  /// @param[in] f optional features (null, or an empty layer list: none)
  /// @return ok or the first error found, as above
  /// @par Complexity
  /// O(N * parameters + n_layers * dim * sum over rows of their positions) plus O(R^2) pointer
  /// comparisons for R requests; no allocation once the scratch holds N rows (reserve_scratch()).
  [[nodiscard]] specdec::status
  score_rows(std::span<const specdec::score_request> reqs,
             std::span<specdec::kv::contiguous_cache<float>* const> caches,
             specdec::matrix_view<float> logits,
             const specdec::feature_request* f = nullptr) {
    using specdec::errc;
    if (!loaded() || caches.size() != reqs.size())
      return specdec::status{errc::invalid_argument};
    index_t N = 0;
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      const specdec::kv::contiguous_cache<float>* c = caches[i];
      if (c == nullptr || !fits(*c))
        return specdec::status{errc::invalid_argument};
      for (std::size_t j = 0; j < i; ++j)
        if (caches[j] == c)
          return specdec::status{errc::invalid_argument};
      const specdec::score_request& r = reqs[i];
      if (r.start >= 0 && r.start > c->length())
        return specdec::status{errc::invalid_argument};
      if (const specdec::status st = check_tokens(r.start, r.tokens); !st)
        return st;
      N += r.tokens.size; // each at most seq_len (checked): no overflow for any realistic R
    }
    if (f != nullptr)
      if (const specdec::status st = check_features(*f, N); !st)
        return st;
    if (N == 0)
      return specdec::status{};
    if (logits.data == nullptr)
      return specdec::status{errc::invalid_argument};
    if (logits.rows < N || logits.cols != cfg_.vocab_size || logits.row_stride < logits.cols)
      return specdec::status{errc::shape_mismatch};
    reserve_rows(N);
    index_t row = 0;
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      const specdec::score_request& r = reqs[i];
      for (index_t t = 0; t < r.tokens.size; ++t, ++row) {
        tok_[static_cast<std::size_t>(row)] = r.tokens[t];
        plan_[static_cast<std::size_t>(row)] =
            row_plan{r.start + t, r.start + t, r.start + t + 1, 0, 0, caches[i]};
      }
    }
    for (std::size_t i = 0; i < reqs.size(); ++i)
      if (reqs[i].tokens.size > 0)
        drop_tail(*caches[i], reqs[i].start);
    forward(
        tok_.data(), N, cfg_.n_layers, logits, f != nullptr && f->layers.size > 0 ? f : nullptr);
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      const specdec::score_request& r = reqs[i];
      if (r.tokens.size == 0)
        continue;
      specdec::kv::contiguous_cache<float>* c = caches[i];
      (void)c->extend(r.start + r.tokens.size);
      if (c == &cache_)
        forget_draft();
    }
    return specdec::status{};
  }

private:
  using index_t = specdec::index_t;

  struct layer_offsets {
    index_t rms_att, wqkv, wo, rms_ffn, w13, w2;
  };
  struct row_plan {
    index_t pos;      // position (RoPE)
    index_t slot;     // KV slot written
    index_t prefix;   // visible slots [0, prefix)
    index_t ex_begin; // extra visible slots: extras_[ex_begin .. ex_begin + ex_count)
    index_t ex_count;
    specdec::kv::contiguous_cache<float>* cache; // the KV cache the row writes and reads
  };

  // ----- loading
  // ----------------------------------------------------------------------------------

  /// Packs the weights (transposed, padded) and precomputes the RoPE table.
  void build(const config& c, const float* raw, std::size_t wcls_at) {
    using detail::lanes;
    using detail::round_up;
    using rmat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    cfg_ = c;
    const index_t dim = c.dim, hid = c.hidden_dim, nl = c.n_layers, voc = c.vocab_size;
    hs_ = dim / c.n_heads;
    kv_dim_ = hs_ * c.n_kv_heads;
    kv_mul_ = c.n_heads / c.n_kv_heads;
    dim_pad_ = round_up(dim, lanes);
    qkv_pad_ = round_up(dim + 2 * kv_dim_, lanes);
    hid_pad_ = round_up(hid, lanes);
    vocab_pad_ = round_up(voc, lanes);
    // The cache holds exactly seq_len positions (decoding loops read the context size from its
    // capacity). Its feature rows are read a whole vector at a time, so the last vector of a row
    // may run past seq_len into the next row, or into a padding plane after the last one; those
    // lanes are never used. Score rows get one spare vector so that they are not a power of two
    // apart (rows of a power-of-two stride share a few L1 sets).
    cap_ = c.seq_len;
    att_stride_ = round_up(c.seq_len, lanes) + lanes;
    inv_scale_ = 1.0f / std::sqrt(static_cast<float>(hs_));

    index_t total = 0;
    auto take = [&](index_t n) {
      const index_t at = total;
      total += round_up(n, lanes);
      return at;
    };
    emb_ = take(voc * dim);
    layers_.resize(static_cast<std::size_t>(nl));
    for (layer_offsets& lo : layers_) {
      lo.rms_att = take(dim_pad_);
      lo.wqkv = take(dim * qkv_pad_);
      lo.wo = take(dim * dim_pad_);
      lo.rms_ffn = take(dim_pad_);
      lo.w13 = take(dim * 2 * hid_pad_);
      lo.w2 = take(hid * dim_pad_);
    }
    rms_final_ = take(dim_pad_);
    wcls_ = take(dim * vocab_pad_);
    detail::fbuf packed(static_cast<std::size_t>(total), 0.0f);

    // Source offsets in the file (run.c's order).
    const float* p = raw;
    const float* s_emb = p;
    p += voc * dim;
    const float* s_rms_att = p;
    p += nl * dim;
    const float* s_wq = p;
    p += nl * dim * dim;
    const float* s_wk = p;
    p += nl * kv_dim_ * dim;
    const float* s_wv = p;
    p += nl * kv_dim_ * dim;
    const float* s_wo = p;
    p += nl * dim * dim;
    const float* s_rms_ffn = p;
    p += nl * dim;
    const float* s_w1 = p;
    p += nl * hid * dim;
    const float* s_w2 = p;
    p += nl * dim * hid;
    const float* s_w3 = p;
    p += nl * hid * dim;
    const float* s_rms_final = p;
    const float* s_wcls = c.shared_classifier ? s_emb : raw + wcls_at;

    float* w = packed.data();
    // A logical [in][ld] matrix is assembled in `logical` (columns col0 .. col0+n_out-1 = src
    // transposed), then cut into matmul's panels at `dst`.
    std::vector<float> logical;
    auto begin_matrix = [&](index_t n_in, index_t ld) {
      logical.assign(static_cast<std::size_t>(n_in * ld), 0.0f);
    };
    auto put_t = [&](index_t col0, const float* src, index_t n_out, index_t n_in, index_t ld) {
      Eigen::Map<const rmat> s(src, n_out, n_in);
      Eigen::Map<rmat, Eigen::Unaligned, Eigen::OuterStride<>> d(
          logical.data() + col0, n_in, n_out, Eigen::OuterStride<>(ld));
      d = s.transpose();
    };
    auto end_matrix = [&](index_t dst, index_t n_in, index_t ld) {
      const index_t nv = ld / lanes;
      for (index_t c0 = 0; c0 < nv; c0 += detail::panel_vectors) {
        const index_t pw = std::min<index_t>(detail::panel_vectors, nv - c0) * lanes;
        Eigen::Map<const rmat, Eigen::Unaligned, Eigen::OuterStride<>> s(
            logical.data() + c0 * lanes, n_in, pw, Eigen::OuterStride<>(ld));
        Eigen::Map<rmat> d(w + dst + c0 * lanes * n_in, n_in, pw);
        d = s;
      }
    };
    auto pack_t = [&](index_t dst, const float* src, index_t n_out, index_t n_in, index_t ld) {
      begin_matrix(n_in, ld);
      put_t(0, src, n_out, n_in, ld);
      end_matrix(dst, n_in, ld);
    };
    auto copy = [&](index_t dst, const float* src, index_t n) {
      std::memcpy(w + dst, src, static_cast<std::size_t>(n) * sizeof(float));
    };
    copy(emb_, s_emb, voc * dim);
    for (index_t l = 0; l < nl; ++l) {
      const layer_offsets& lo = layers_[static_cast<std::size_t>(l)];
      copy(lo.rms_att, s_rms_att + l * dim, dim);
      begin_matrix(dim, qkv_pad_);
      put_t(0, s_wq + l * dim * dim, dim, dim, qkv_pad_);
      put_t(dim, s_wk + l * kv_dim_ * dim, kv_dim_, dim, qkv_pad_);
      put_t(dim + kv_dim_, s_wv + l * kv_dim_ * dim, kv_dim_, dim, qkv_pad_);
      end_matrix(lo.wqkv, dim, qkv_pad_);
      pack_t(lo.wo, s_wo + l * dim * dim, dim, dim, dim_pad_);
      copy(lo.rms_ffn, s_rms_ffn + l * dim, dim);
      begin_matrix(dim, 2 * hid_pad_);
      put_t(0, s_w1 + l * hid * dim, hid, dim, 2 * hid_pad_);
      put_t(hid_pad_, s_w3 + l * hid * dim, hid, dim, 2 * hid_pad_);
      end_matrix(lo.w13, dim, 2 * hid_pad_);
      pack_t(lo.w2, s_w2 + l * dim * hid, dim, hid, dim_pad_);
    }
    copy(rms_final_, s_rms_final, dim);
    pack_t(wcls_, s_wcls, voc, dim, vocab_pad_);
    w_ = std::make_shared<const detail::fbuf>(std::move(packed));

    params_ = static_cast<std::size_t>(
        voc * dim + nl * (2 * dim + 2 * dim * dim + 2 * kv_dim_ * dim + 3 * hid * dim) + dim
        + (c.shared_classifier ? 0 : voc * dim));

    // RoPE table, computed exactly as run.c computes it per call.
    const index_t half = hs_ / 2;
    rope_cos_.assign(static_cast<std::size_t>(c.seq_len * half), 0.0f);
    rope_sin_.assign(static_cast<std::size_t>(c.seq_len * half), 0.0f);
    for (index_t pos = 0; pos < c.seq_len; ++pos)
      for (index_t k = 0; k < half; ++k) {
        const float head_dim = static_cast<float>(2 * k);
        const float freq = 1.0f / std::pow(10000.0f, head_dim / static_cast<float>(hs_));
        const float val = static_cast<float>(pos) * freq;
        rope_cos_[static_cast<std::size_t>(pos * half + k)] = std::cos(val);
        rope_sin_[static_cast<std::size_t>(pos * half + k)] = std::sin(val);
      }
    kw_ = detail::widest_kernels();
    rows_cap_ = 0;
    reserve_rows(8);
  }

  /// Grows the per-row scratch to hold at least `rows` rows (zero-filled, so padding lanes are 0).
  void reserve_rows(index_t rows) {
    if (rows <= rows_cap_)
      return;
    const index_t n = std::max<index_t>(rows, 2 * rows_cap_);
    auto grow = [n](detail::fbuf& b, index_t width) {
      b.assign(static_cast<std::size_t>(n * width), 0.0f);
    };
    grow(x_, dim_pad_);
    grow(xb_, dim_pad_);
    grow(qkv_, qkv_pad_);
    grow(ao_, dim_pad_);
    grow(tmp_, dim_pad_);
    grow(h13_, 2 * hid_pad_);
    grow(hb_, hid_pad_);
    grow(logits_, vocab_pad_);
    if (att_.empty()) {
      att_.assign(static_cast<std::size_t>(cfg_.n_heads * att_stride_), 0.0f);
      inv_sum_.assign(static_cast<std::size_t>(cfg_.n_heads), 0.0f);
    }
    plan_.resize(static_cast<std::size_t>(n));
    tok_.resize(static_cast<std::size_t>(n));
    rows_cap_ = n;
  }

  // ----- request handling
  // -------------------------------------------------------------------------

  /// Validation of a chain's start and tokens (the start <= length rule is checked by the caller).
  [[nodiscard]] specdec::status
  check_tokens(index_t start, specdec::row_view<const specdec::token_id> tokens) const {
    using specdec::errc;
    if (!loaded() || start < 0 || tokens.size < 0 || (tokens.size > 0 && tokens.data == nullptr))
      return specdec::status{errc::invalid_argument};
    const index_t T = tokens.size;
    if (start > cfg_.seq_len || T > cfg_.seq_len - start)
      return specdec::status{errc::overflow};
    for (index_t t = 0; t < T; ++t)
      if (tokens[t] < 0 || tokens[t] >= cfg_.vocab_size)
        return specdec::status{errc::token_out_of_range};
    return specdec::status{};
  }

  /// Validation shared by every scoring call (the start <= length rule is checked by the caller).
  [[nodiscard]] specdec::status check(index_t start,
                                      specdec::row_view<const specdec::token_id> tokens,
                                      specdec::matrix_view<float> out) const {
    using specdec::errc;
    if (const specdec::status st = check_tokens(start, tokens); !st)
      return st;
    const index_t T = tokens.size;
    if (T == 0)
      return specdec::status{};
    if (out.data == nullptr)
      return specdec::status{errc::invalid_argument};
    if (out.rows < T || out.cols != cfg_.vocab_size || out.row_stride < out.cols)
      return specdec::status{errc::shape_mismatch};
    return specdec::status{};
  }

  /// True when `c` has this model's KV layout (allocate_cache()): capacity seq_len, 2 feature-major
  /// planes of kv_dim features per layer, and the padding plane when there is one.
  [[nodiscard]] bool fits(const specdec::kv::contiguous_cache<float>& c) const noexcept {
    const index_t planes = 2 * cfg_.n_layers + (cap_ % detail::lanes != 0 ? 1 : 0);
    if (c.capacity() != cap_ || c.num_planes() != planes)
      return false;
    for (index_t p = 0; p < 2 * cfg_.n_layers; ++p)
      if (c.desc(p).width != kv_dim_
          || c.desc(p).layout != specdec::kv::plane_layout::feature_major)
        return false;
    return planes == 2 * cfg_.n_layers || c.desc(planes - 1).width >= detail::lanes;
  }

  /// False for a model without a KV cache of its own (share_weights()): score(), score_tree() and
  /// score_layers() then fail instead of writing to a cache that is not there.
  [[nodiscard]] bool own_cache_ready() const noexcept {
    return cache_.capacity() == cap_;
  }

  /// Row plans of a chain: row t at position and slot start + t, seeing [0, start + t].
  void plan_chain(index_t start, index_t T) {
    reserve_rows(T);
    for (index_t t = 0; t < T; ++t)
      plan_[static_cast<std::size_t>(t)] =
          row_plan{start + t, start + t, start + t + 1, 0, 0, &cache_};
  }

  /// Row plans of a tree: node i at position start + depth(i) and slot start + i, seeing
  /// [0, start) then its root path (ascending slots). Parents must be validated.
  void plan_tree(index_t start, specdec::row_view<const std::int32_t> parents) {
    const index_t T = parents.size;
    reserve_rows(T);
    depth_.resize(static_cast<std::size_t>(T));
    extras_.clear();
    index_t max_depth = 0;
    for (index_t i = 0; i < T; ++i) {
      const std::int32_t par = parents[i];
      const index_t d = par < 0 ? 0 : depth_[static_cast<std::size_t>(par)] + 1;
      depth_[static_cast<std::size_t>(i)] = d;
      const index_t begin = static_cast<index_t>(extras_.size());
      extras_.resize(static_cast<std::size_t>(begin + d + 1));
      index_t node = i;
      for (index_t k = d; k >= 0; --k) { // root path, written back to front: ascending slots
        extras_[static_cast<std::size_t>(begin + k)] = start + node;
        node = parents[node];
      }
      plan_[static_cast<std::size_t>(i)] =
          row_plan{start + d, start + i, start, begin, d + 1, &cache_};
      max_depth = std::max(max_depth, d);
    }
    // attend() gathers at most lanes - 1 prefix positions plus depth + 1 extras per feature.
    const std::size_t need = static_cast<std::size_t>(
        kv_dim_ * detail::round_up(detail::lanes + max_depth + 1, detail::lanes));
    if (vtail_.size() < need)
      vtail_.assign(need, 0.0f);
  }

  /// Drops a committed tail past `start` before a call that writes from `start` on: the call then
  /// never reads dropped slots, and rollback's poisoning (SPECDEC_ENABLE_EXTRA_CHECKS) happens
  /// before the new keys and values are written, not over them.
  static void drop_tail(specdec::kv::contiguous_cache<float>& c, index_t start) noexcept {
    if (c.length() > start)
      (void)c.rollback(start);
  }

  /// Sets the cache length to new_length after a call that started at `start`.
  void commit(index_t new_length, index_t start) {
    if (cache_.length() > start)
      (void)cache_.rollback(start);
    (void)cache_.extend(new_length);
    forget_draft();
  }

  /// Ends any early-exit chain.
  void forget_draft() noexcept {
    draft_layers_ = 0;
    draft_end_ = 0;
    draft_base_ = -1;
  }

  /// End of the slots holding valid K/V for the first `layers` layers (score_layers' bound).
  [[nodiscard]] index_t draft_valid_end(int layers) const noexcept {
    index_t end = cache_.length();
    if (layers == draft_layers_ && draft_base_ == cache_.length() && draft_end_ > end)
      end = draft_end_;
    return end;
  }

  // ----- forward pass
  // -----------------------------------------------------------------------------

  /// detail::matmul, or its 256- or 512-bit twin (bitwise the same products).
  void mm(const float* x,
          index_t xs,
          index_t rows,
          const float* w,
          index_t ws,
          index_t in,
          float* y,
          index_t ys) const noexcept {
#if LLAMA2C_WIDE_KERNELS
    if (kw_ == 512) {
      detail::wide::matmul512(x, xs, rows, w, ws, in, y, ys);
      return;
    }
    if (kw_ == 256) {
      detail::wide::matmul(x, xs, rows, w, ws, in, y, ys);
      return;
    }
#endif
    detail::matmul(x, xs, rows, w, ws, in, y, ys);
  }

  /// o = RMSNorm(x) * w for T rows of dim_pad_ floats (padding lanes stay 0).
  void rmsnorm(float* o, const float* x, const float* w, index_t T) const noexcept {
    using namespace detail;
    for (index_t t = 0; t < T; ++t) {
      const float* xr = x + t * dim_pad_;
      float* orow = o + t * dim_pad_;
      vf ss{};
      for (index_t c = 0; c < dim_pad_; c += lanes) {
        const vf v = vload<vf>(xr + c);
        ss = ss + v * v;
      }
      float s = hsum(ss) / static_cast<float>(cfg_.dim);
      s = s + 1e-5f;
      s = 1.0f / std::sqrt(s);
      const vf sv = splat<vf>(s);
      for (index_t c = 0; c < dim_pad_; c += lanes)
        vstore(orow + c, vload<vf>(w + c) * (sv * vload<vf>(xr + c)));
    }
  }

  /// x += y over T rows of dim_pad_ floats (the residual adds).
  void add_rows(float* x, const float* y, index_t T) const noexcept {
    using namespace detail;
    for (index_t i = 0; i < T * dim_pad_; i += lanes)
      vstore(x + i, vload<vf>(x + i) + vload<vf>(y + i));
  }

  /// RoPE on row t's q and k, then its k and v into the cache planes of layer l.
  void rope_and_store(index_t t, index_t l) noexcept {
    const row_plan& rp = plan_[static_cast<std::size_t>(t)];
    float* q = qkv_.data() + t * qkv_pad_;
    float* k = q + cfg_.dim;
    const float* v = k + kv_dim_;
    const index_t half = hs_ / 2;
    const float* fc = rope_cos_.data() + rp.pos * half;
    const float* fs = rope_sin_.data() + rp.pos * half;
    // run.c's loop over i = 0, 2, .. dim-2 with frequency index (i % head_size) / 2, written as
    // heads x pairs (no division); k is rotated for the pairs below kv_dim.
    auto rotate = [&](float* vec, index_t n) {
      for (index_t base = 0; base < n; base += hs_)
        for (index_t j = 0; j < half; ++j) {
          const index_t i = base + 2 * j;
          const float fcr = fc[j];
          const float fci = fs[j];
          const float v0 = vec[i], v1 = vec[i + 1];
          vec[i] = v0 * fcr - v1 * fci;
          vec[i + 1] = v0 * fci + v1 * fcr;
        }
    };
    rotate(q, cfg_.dim);
    rotate(k, kv_dim_);
    float* kp = rp.cache->plane(2 * l);
    float* vp = rp.cache->plane(2 * l + 1);
    for (index_t f = 0; f < kv_dim_; ++f)
      kp[f * cap_ + rp.slot] = k[f];
    for (index_t f = 0; f < kv_dim_; ++f)
      vp[f * cap_ + rp.slot] = v[f];
  }

  /// Softmax numerators in place: a[j] = exp(a[j] - max) for j < n, 0 for the rest of the last
  /// chunk. Returns 1 / sum. Reductions run lane-wise over chunks, then the fixed hsum/hmax trees.
  static float softmax_exp(float* a, index_t n) noexcept {
    using namespace detail;
    const index_t chunks = (n + lanes - 1) / lanes;
    const index_t last = (chunks - 1) * lanes;
    const vi mask = first_lanes(n - last);
    const vf ninf = splat<vf>(-std::numeric_limits<float>::infinity());
    // max is exact in any order: two running maxima shorten the dependency chain
    vf m0 = select(mask, vload<vf>(a + last), ninf);
    vf m1 = ninf;
    index_t c = 0;
    for (; c + 2 * lanes <= last; c += 2 * lanes) {
      m0 = vmax(m0, vload<vf>(a + c));
      m1 = vmax(m1, vload<vf>(a + c + lanes));
    }
    if (c < last)
      m0 = vmax(m0, vload<vf>(a + c));
    const vf mx = splat<vf>(hmax(vmax(m0, m1)));
    vf s{};
    for (c = 0; c < last; c += lanes) {
      const vf e = detail::exp(vload<vf>(a + c) - mx);
      vstore(a + c, e);
      s = s + e;
    }
    const vf e = select(mask, detail::exp(vload<vf>(a + last) - mx), vf{});
    vstore(a + last, e);
    s = s + e;
    return 1.0f / hsum(s);
  }

  /// Scores of G * lanes consecutive keys (feature-major block `k`, row stride cap_) against M
  /// query heads sharing that kv head (head m's query at `q + m * hs_`, scores at
  /// `a + m * att_stride_`): a[j] = (q[0] k[0][j] + q[1] k[1][j] + ...) * inv_scale_, per lane.
  template <int M, int G>
  void score_keys(const float* q, const float* k, float* a) const noexcept {
    using namespace detail;
    vf acc[M][G];
    for (int m = 0; m < M; ++m)
      for (int g = 0; g < G; ++g)
        acc[m][g] = vf{};
    for (index_t i = 0; i < hs_; ++i) {
      vf kv[G];
      for (int g = 0; g < G; ++g)
        kv[g] = vload<vf>(k + i * cap_ + g * lanes);
      for (int m = 0; m < M; ++m) {
        const vf qv = splat<vf>(q[m * hs_ + i]);
        for (int g = 0; g < G; ++g)
          acc[m][g] = madd(acc[m][g], kv[g], qv);
      }
    }
    const vf sc = splat<vf>(inv_scale_);
    for (int m = 0; m < M; ++m)
      for (int g = 0; g < G; ++g)
        vstore(a + m * att_stride_ + g * lanes, acc[m][g] * sc);
  }

  /// Prefix scores (keys [0, P) rounded up to whole chunks) of M heads sharing one kv head.
  template <int M>
  void score_prefix(const float* q, const float* k, float* a, index_t P) const noexcept {
    constexpr int G = M == 1 ? 4 : (M == 2 ? 4 : 2);
    index_t c = 0;
    for (; c + G * detail::lanes <= P; c += G * detail::lanes)
      score_keys<M, G>(q, k + c, a + c);
    for (; c < P; c += detail::lanes)
      score_keys<M, 1>(q, k + c, a + c);
  }

  /// M heads x F features of value sums (F <= the tile's maximum) for vsum_tile.
  template <int M>
  static void vsum_features(index_t nf,
                            const float* a,
                            index_t a_stride,
                            const float* v1,
                            index_t s1,
                            index_t chunks1,
                            const float* v2,
                            index_t s2,
                            index_t chunks2,
                            index_t valid_last,
                            float* out,
                            index_t out_stride,
                            const float* inv) noexcept {
    constexpr int fmax = detail::value_accumulators / M;
    [&]<int... I>(std::integer_sequence<int, I...>) {
      ((nf == I + 1
            ? (detail::vsum_tile<M, I + 1>(
                   a, a_stride, v1, s1, chunks1, v2, s2, chunks2, valid_last, out, out_stride, inv),
               0)
            : 0),
       ...);
    }
    (std::make_integer_sequence<int, fmax>{});
  }

  /// Attention of row t in layer l; writes dim floats to ao_ row t.
  ///
  /// The row's compact key list is its visible prefix [0, P) followed by its extra slots. Scores,
  /// the softmax and the value sums all run over that list in order (see the file comment).
  void attend(index_t t, index_t l) noexcept {
    using namespace detail;
    const row_plan& rp = plan_[static_cast<std::size_t>(t)];
    const float* q = qkv_.data() + t * qkv_pad_;
    const float* kp = rp.cache->plane(2 * l);
    const float* vp = rp.cache->plane(2 * l + 1);
    const index_t P = rp.prefix;
    const index_t E = rp.ex_count;
    const index_t* ex = extras_.data() + rp.ex_begin;
    const index_t n = P + E;
    const index_t mblk = kv_mul_ % 4 == 0 ? 4 : (kv_mul_ % 2 == 0 ? 2 : 1);
    for (index_t h = 0; h < cfg_.n_heads; h += mblk) {
      const float* kg = kp + (h / kv_mul_) * hs_ * cap_;
      float* ah = att_.data() + h * att_stride_;
#if LLAMA2C_WIDE_KERNELS
      if (kw_ == 512) {
        if (mblk == 4)
          wide::score_prefix512<4>(q + h * hs_, hs_, kg, cap_, ah, att_stride_, inv_scale_, P);
        else if (mblk == 2)
          wide::score_prefix512<2>(q + h * hs_, hs_, kg, cap_, ah, att_stride_, inv_scale_, P);
        else
          wide::score_prefix512<1>(q + h * hs_, hs_, kg, cap_, ah, att_stride_, inv_scale_, P);
        continue;
      }
      if (kw_ == 256) {
        if (mblk == 4)
          wide::score_prefix<4>(q + h * hs_, hs_, kg, cap_, ah, att_stride_, inv_scale_, P);
        else if (mblk == 2)
          wide::score_prefix<2>(q + h * hs_, hs_, kg, cap_, ah, att_stride_, inv_scale_, P);
        else
          wide::score_prefix<1>(q + h * hs_, hs_, kg, cap_, ah, att_stride_, inv_scale_, P);
        continue;
      }
#endif
      if (mblk == 4)
        score_prefix<4>(q + h * hs_, kg, ah, P);
      else if (mblk == 2)
        score_prefix<2>(q + h * hs_, kg, ah, P);
      else
        score_prefix<1>(q + h * hs_, kg, ah, P);
    }
    for (index_t h = 0; h < cfg_.n_heads; ++h) {
      float* a = att_.data() + h * att_stride_;
      const float* qh = q + h * hs_;
      const float* kg = kp + (h / kv_mul_) * hs_ * cap_;
      for (index_t e = 0; e < E; ++e) {
        float acc = 0.0f;
        for (index_t i = 0; i < hs_; ++i)
          acc = madd(acc, kg[i * cap_ + ex[e]], qh[i]);
        a[P + e] = acc * inv_scale_;
      }
    }
    for (index_t h = 0; h < cfg_.n_heads; ++h) {
      float* a = att_.data() + h * att_stride_;
#if LLAMA2C_WIDE_KERNELS
      if (kw_ == 512) {
        wide::softmax_exp512(a, n);
        continue;
      }
      if (kw_ == 256) {
        wide::softmax_exp(a, n);
        continue;
      }
#endif
      inv_sum_[static_cast<std::size_t>(h)] = softmax_exp(a, n);
    }
#if LLAMA2C_WIDE_KERNELS
    if (kw_ >= 256)
      wide::inv_sums(att_.data(), att_stride_, cfg_.n_heads, n, inv_sum_.data());
#endif
    // Value segments: the cache directly for a plain prefix; for a row with extra slots, the
    // chunks from the one holding position P on are gathered into vtail_ (compact order).
    const float* v1 = vp;
    index_t chunks1 = (n + lanes - 1) / lanes;
    const float* v2 = nullptr;
    index_t s2 = 0, chunks2 = 0;
    if (E > 0) {
      const index_t pf = P / lanes * lanes;
      chunks1 = pf / lanes;
      chunks2 = (n - pf + lanes - 1) / lanes;
      s2 = chunks2 * lanes;
      float* vt = vtail_.data();
      for (index_t f = 0; f < kv_dim_; ++f) {
        const float* src = vp + f * cap_;
        float* dst = vt + f * s2;
        index_t x = 0;
        for (; pf + x < P; ++x)
          dst[x] = src[pf + x];
        for (; pf + x < n; ++x)
          dst[x] = src[ex[pf + x - P]];
        for (; x < s2; ++x)
          dst[x] = 0.0f;
      }
      v2 = vt;
    }
    const index_t valid_last = n - ((n + lanes - 1) / lanes - 1) * lanes;
    float* o = ao_.data() + t * dim_pad_;
#if LLAMA2C_WIDE_KERNELS
    if (kw_ >= 256) {
      // feature pairs per tile: 8 accumulators (head_size is even, so nf is too)
      const index_t fpmax = mblk == 4 ? 2 : 4;
      for (index_t g = 0; g < cfg_.n_kv_heads; ++g)
        for (index_t m0 = 0; m0 < kv_mul_; m0 += mblk) {
          const index_t h0 = g * kv_mul_ + m0;
          for (index_t f0 = 0; f0 < hs_; f0 += 2 * fpmax) {
            const index_t np = std::min(fpmax, (hs_ - f0) / 2);
            const index_t fo = g * hs_ + f0;
            const float* a = att_.data() + h0 * att_stride_;
            const float* w1 = v1 + fo * cap_;
            const float* w2 = v2 == nullptr ? nullptr : v2 + fo * s2;
            float* out = o + h0 * hs_ + f0;
            const float* inv = inv_sum_.data() + h0;
            auto run = [&]<int M>() {
              [&]<int... I>(std::integer_sequence<int, I...>) {
                ((np == I + 1 ? (wide::vsum_tile<M, I + 1>(a,
                                                           att_stride_,
                                                           w1,
                                                           cap_,
                                                           chunks1,
                                                           w2,
                                                           s2,
                                                           chunks2,
                                                           valid_last,
                                                           out,
                                                           hs_,
                                                           inv),
                                 0)
                              : 0),
                 ...);
              }
              (std::make_integer_sequence < int, M == 4 ? 2 : 4 > {});
            };
            if (mblk == 4)
              run.template operator()<4>();
            else if (mblk == 2)
              run.template operator()<2>();
            else
              run.template operator()<1>();
          }
        }
      return;
    }
#endif
    const index_t fmax = value_accumulators / mblk;
    for (index_t g = 0; g < cfg_.n_kv_heads; ++g)
      for (index_t m0 = 0; m0 < kv_mul_; m0 += mblk) {
        const index_t h0 = g * kv_mul_ + m0;
        for (index_t f0 = 0; f0 < hs_; f0 += fmax) {
          const index_t nf = std::min(fmax, hs_ - f0);
          const index_t fo = g * hs_ + f0;
          const float* a = att_.data() + h0 * att_stride_;
          const float* w1 = v1 + fo * cap_;
          const float* w2 = v2 == nullptr ? nullptr : v2 + fo * s2;
          float* out = o + h0 * hs_ + f0;
          const float* inv = inv_sum_.data() + h0;
          if (mblk == 4)
            vsum_features<4>(
                nf, a, att_stride_, w1, cap_, chunks1, w2, s2, chunks2, valid_last, out, hs_, inv);
          else if (mblk == 2)
            vsum_features<2>(
                nf, a, att_stride_, w1, cap_, chunks1, w2, s2, chunks2, valid_last, out, hs_, inv);
          else
            vsum_features<1>(
                nf, a, att_stride_, w1, cap_, chunks1, w2, s2, chunks2, valid_last, out, hs_, inv);
        }
      }
  }

  /// hb = silu(h1) * h3 for T rows (h1, h3 = the two halves of h13_).
  void swiglu(index_t T) noexcept {
    using namespace detail;
#if LLAMA2C_WIDE_KERNELS
    if (kw_ >= 256) {
      for (index_t t = 0; t < T; ++t) {
        const float* h1 = h13_.data() + t * 2 * hid_pad_;
        if (kw_ == 512)
          wide::swiglu512(h1, h1 + hid_pad_, hb_.data() + t * hid_pad_, hid_pad_);
        else
          wide::swiglu(h1, h1 + hid_pad_, hb_.data() + t * hid_pad_, hid_pad_);
      }
      return;
    }
#endif
    const vf one = splat<vf>(1.0f);
    for (index_t t = 0; t < T; ++t) {
      const float* h1 = h13_.data() + t * 2 * hid_pad_;
      const float* h3 = h1 + hid_pad_;
      float* o = hb_.data() + t * hid_pad_;
      for (index_t c = 0; c < hid_pad_; c += lanes) {
        const vf a = vload<vf>(h1 + c);
        const vf s = a * (one / (one + detail::exp(-a)));
        vstore(o + c, s * vload<vf>(h3 + c));
      }
    }
  }

  /// Checks a feature request for T rows (see score_features).
  [[nodiscard]] specdec::status check_features(const specdec::feature_request& f,
                                               index_t T) const noexcept {
    using specdec::errc;
    if (f.layers.size < 0 || (f.layers.size > 0 && f.layers.data == nullptr))
      return specdec::status{errc::invalid_argument};
    for (index_t i = 0; i < f.layers.size; ++i)
      if (f.layers[i] < 0 || f.layers[i] > cfg_.n_layers)
        return specdec::status{errc::invalid_argument};
    if (f.layers.size == 0)
      return specdec::status{};
    if (f.out.data == nullptr || f.out.rows < T || f.out.cols < f.layers.size * cfg_.dim
        || f.out.row_stride < f.out.cols)
      return specdec::status{errc::shape_mismatch};
    return specdec::status{};
  }

  /// Copies the residual rows x_ of the T rows to every requested slot of layer `layer`.
  void capture(const specdec::feature_request* f, index_t layer, index_t T) const noexcept {
    if (f == nullptr)
      return;
    const index_t dim = cfg_.dim;
    for (index_t i = 0; i < f->layers.size; ++i)
      if (f->layers[i] == layer)
        for (index_t t = 0; t < T; ++t)
          std::memcpy(f->out.data + t * f->out.row_stride + i * dim,
                      x_.data() + t * dim_pad_,
                      static_cast<std::size_t>(dim) * sizeof(float));
  }

  /// Runs `n_layers` layers then the final norm and the classifier on the planned rows; with
  /// `f`, copies the residual rows of the requested layers on the way (no other change).
  void forward(const specdec::token_id* tokens,
               index_t T,
               index_t n_layers,
               specdec::matrix_view<float> out,
               const specdec::feature_request* f = nullptr) noexcept {
    const index_t dim = cfg_.dim;
    const float* w = w_->data();
    for (index_t t = 0; t < T; ++t)
      std::memcpy(x_.data() + t * dim_pad_,
                  w + emb_ + tokens[t] * dim,
                  static_cast<std::size_t>(dim) * sizeof(float));
    capture(f, 0, T);
    for (index_t l = 0; l < n_layers; ++l) {
      const layer_offsets& lo = layers_[static_cast<std::size_t>(l)];
      rmsnorm(xb_.data(), x_.data(), w + lo.rms_att, T);
      mm(xb_.data(), dim_pad_, T, w + lo.wqkv, qkv_pad_, dim, qkv_.data(), qkv_pad_);
      for (index_t t = 0; t < T; ++t)
        rope_and_store(t, l);
      for (index_t t = 0; t < T; ++t)
        attend(t, l);
      mm(ao_.data(), dim_pad_, T, w + lo.wo, dim_pad_, dim, tmp_.data(), dim_pad_);
      add_rows(x_.data(), tmp_.data(), T);
      rmsnorm(xb_.data(), x_.data(), w + lo.rms_ffn, T);
      mm(xb_.data(), dim_pad_, T, w + lo.w13, 2 * hid_pad_, dim, h13_.data(), 2 * hid_pad_);
      swiglu(T);
      mm(hb_.data(), hid_pad_, T, w + lo.w2, dim_pad_, cfg_.hidden_dim, tmp_.data(), dim_pad_);
      add_rows(x_.data(), tmp_.data(), T);
      capture(f, l + 1, T);
    }
    rmsnorm(xb_.data(), x_.data(), w + rms_final_, T);
    mm(xb_.data(), dim_pad_, T, w + wcls_, vocab_pad_, dim, logits_.data(), vocab_pad_);
    for (index_t t = 0; t < T; ++t)
      std::memcpy(out.data + t * out.row_stride,
                  logits_.data() + t * vocab_pad_,
                  static_cast<std::size_t>(cfg_.vocab_size) * sizeof(float));
  }

  config cfg_{};
  index_t hs_ = 0, kv_dim_ = 0, kv_mul_ = 1;
  index_t dim_pad_ = 0, qkv_pad_ = 0, hid_pad_ = 0, vocab_pad_ = 0, cap_ = 0, att_stride_ = 0;
  float inv_scale_ = 1.0f;                        // 1 / sqrt(head_size)
  int kw_ = static_cast<int>(detail::lanes) * 32; // kernel_width(); wider: detail::wide runs
  std::size_t params_ = 0;
  std::shared_ptr<const detail::fbuf> w_; // packed weights: immutable, shared by copies
  std::vector<layer_offsets> layers_;
  index_t emb_ = 0, rms_final_ = 0, wcls_ = 0;
  std::vector<float> rope_cos_, rope_sin_; // [seq_len][head_size / 2]
  specdec::kv::contiguous_cache<float> cache_;
  // scratch
  index_t rows_cap_ = 0;
  detail::fbuf x_, xb_, qkv_, ao_, tmp_, h13_, hb_, logits_, att_;
  detail::fbuf vtail_;         // gathered value chunks of a tree row, [kv_dim][tail]
  std::vector<float> inv_sum_; // per head: 1 / softmax denominator
  std::vector<row_plan> plan_;
  std::vector<specdec::token_id> tok_; // score_rows: the stacked tokens
  std::vector<index_t> extras_, depth_;
  // early-exit draft chain
  int draft_layers_ = 0;
  index_t draft_end_ = 0;
  index_t draft_base_ = -1;
  const specdec::feature_request* features_ = nullptr; // set only inside score_*_features
};

static_assert(specdec::target_model<model>);
static_assert(specdec::tree_feature_target_model<model>);

/// @brief Index of the largest value of a row (the first one on ties; NaN entries are skipped,
///        0 when all are NaN); -1 for an empty row.
/// @par Complexity
/// O(row.size).
inline specdec::token_id argmax(specdec::row_view<const float> row) noexcept {
  using namespace detail;
  if (row.size <= 0)
    return -1;
  // The maximum (exact in any order; NaN entries are never selected), then its first index.
  const float* p = row.data;
  const index_t n = row.size;
  vf m = splat<vf>(-std::numeric_limits<float>::infinity());
  const index_t whole = n / lanes * lanes;
  for (index_t i = 0; i < whole; i += lanes)
    m = vmax(m, vload<vf>(p + i));
  float best = hmax(m);
  for (index_t i = whole; i < n; ++i)
    best = p[i] > best ? p[i] : best;
  for (index_t j = 0; j < n; ++j)
    if (p[j] == best)
      return static_cast<specdec::token_id>(j);
  return 0; // every entry is NaN
}

} // namespace llama2c
