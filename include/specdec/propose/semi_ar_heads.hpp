// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief DSpark's sequential heads (vanilla Markov, gated Markov, RNN) and confidence head: the
///        per-step math shared by host and device and the owning host types with validation.
///        Their binary file format (save_heads / load_heads) is propose/semi_ar_heads_io.hpp.
///
/// The semi-autoregressive drafter (propose/semi_ar.hpp) corrects the parallel backbone's base
/// logits U_k with a bias B_k that depends on the previous token:
/// - markov: e = W1[x_{k-1}], B_k[v] = W2[v] . e;
/// - gated:  g = sigmoid(Wg [h_k; e] + bg), B_k[v] = W2[v] . (g * e);
/// - rnn:    [g | c | o] = Wj [s_{k-1}; e; h_k] + bj, s_k = sigmoid(g) s_{k-1} + (1 - sigmoid(g))
///           tanh(c), B_k[v] = W2[v] . tanh(o) (s_0 = 0 at every block);
/// - none:   B_k = 0 (DFlash).
/// The confidence head gives z_k = w . [h_k; e] + b and c_k = sigmoid(z_k).
///
/// Every SPECDEC_HD function here accumulates in a fixed order (index ascending, from 0.0f, with
/// detail::fmul / detail::fadd, never an FMA), so host and device results agree bit for bit.

#include <specdec/config.hpp>

#include <specdec/core/dtype.hpp>
#include <specdec/core/math.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace propose {

/// Which sequential head corrects the backbone's logits (spec sections 5.2 and 5.3).
enum class head_kind : std::uint8_t {
  none,   ///< no head (rank 0): L_k = U_k, DFlash
  markov, ///< vanilla Markov: B_k = W2 W1[x_{k-1}]
  gated,  ///< gated Markov: B_k = W2 (sigmoid(Wg [h_k; e] + bg) * e)
  rnn     ///< RNN: B_k = W2 tanh(o_k) with a recurrent state reset per block
};

namespace detail {

/// sigmoid(x) = 1 / (1 + exp(-x)) with the library's exp. @hd
SPECDEC_HD inline float sigmoid_f(float x) noexcept {
  return 1.0f / ::specdec::detail::fadd(1.0f, ::specdec::detail::exp_f(-x));
}

/// tanh(x): Cephes' odd polynomial for |x| < 0.625, else 1 - 2 / (exp(2|x|) + 1), sign restored.
/// Absolute error below 1e-7. NaN stays NaN. @hd
SPECDEC_HD inline float tanh_f(float x) noexcept {
  using ::specdec::detail::fadd;
  using ::specdec::detail::fmul;
  const float ax = x < 0.0f ? -x : x;
  if (ax < 0.625f) {
    const float z = fmul(x, x);
    float p = -5.70498872745e-3f;
    p = fadd(fmul(p, z), 2.06390887954e-2f);
    p = fadd(fmul(p, z), -5.37397155531e-2f);
    p = fadd(fmul(p, z), 1.33314422036e-1f);
    p = fadd(fmul(p, z), -3.33332819422e-1f);
    return fadd(fmul(fmul(p, z), x), x);
  }
  const float e = ::specdec::detail::exp_f(fmul(2.0f, ax));
  const float y = fadd(1.0f, -(2.0f / fadd(e, 1.0f)));
  return x < 0.0f ? -y : y; // NaN: exp_f(NaN) is NaN, so y is NaN
}

/// Dot product of n weights (from `w`) with n floats (from `x`, or zeros when `x` is null),
/// index ascending, starting from `acc`. @hd
template <class W>
SPECDEC_HD inline float dot_acc(float acc, const W* w, const float* x, index_t n) noexcept {
  for (index_t i = 0; i < n; ++i) {
    const float xi = x != nullptr ? x[i] : 0.0f;
    acc = ::specdec::detail::fadd(acc, ::specdec::detail::fmul(load_as_float(w, i), xi));
  }
  return acc;
}

} // namespace detail

/// @brief Non-owning view of a sequential head's weights, usable on host or device.
///
/// Trivially copyable; the pointers may point to host or device memory (the functions taking the
/// view must run where the memory is). Layouts (row-major):
/// - `w1`: [vocab, rank], the embedding table (e = w1[x_{k-1}]); markov, gated, rnn;
/// - `w2`: [vocab, rank], B[v] = w2[v] . coef; markov, gated, rnn;
/// - `proj_w`: gated [rank, hidden + rank] over the input [h; e]; rnn [3 rank, 2 rank + hidden]
///   over [s; e; h], rows in the order gate, candidate, output;
/// - `proj_b`: gated [rank]; rnn [3 rank].
/// Unused pointers are null. kind none has rank 0 and no weights.
/// @tparam W the weight element type: float or bfloat16 (a row_element)
template <class W>
struct sequential_head_view {
  head_kind kind = head_kind::none; ///< which head
  index_t vocab = 0;                ///< V, rows of w1 and w2 (0 allowed for kind none)
  index_t rank = 0;                 ///< r, the Markov rank (0 for kind none)
  index_t hidden = 0;               ///< d, the backbone's hidden size (gated and rnn read h)
  const W* w1 = nullptr;            ///< [vocab, rank] embedding table
  const W* w2 = nullptr;            ///< [vocab, rank] output projection
  const W* proj_w = nullptr;        ///< gate (gated) or joint (rnn) projection, see above
  const W* proj_b = nullptr;        ///< its bias
};

/// @brief Widens the embedding row w1[prev] to float: `e[j] = w1[prev * rank + j]`.
/// @tparam W the weight element type (float or bfloat16)
/// @param[in] h the head
/// @param[in] prev the previous token x_{k-1}
/// @param[out] e receives `h.rank` floats
/// @pre 0 <= prev < h.vocab when h.rank > 0.
/// @par Complexity
/// O(rank). @hd
template <class W>
SPECDEC_HD inline void
embedding_row(const sequential_head_view<W>& h, token_id prev, float* e) noexcept {
  const W* row = h.w1 + static_cast<index_t>(prev) * h.rank;
  for (index_t j = 0; j < h.rank; ++j)
    e[j] = load_as_float(row, j);
}

/// @brief One coefficient coef_j of a step, j in [0, rank): B[v] = sum_j w2[v][j] coef_j.
///
/// markov: e_j. gated: sigmoid(gate_j) * e_j with gate_j = (proj_w[j] . [h; e]) + proj_b[j].
/// rnn: tanh(o_j) with o_j = (proj_w[2r + j] . [s; e; h]) + proj_b[2r + j]; it also writes the new
/// state s_j = sigmoid(g_j) s_in_j + (1 - sigmoid(g_j)) tanh(c_j) to `state_out[j]` (g and c from
/// rows j and r + j). none: 0. Dot products run index ascending over the concatenated input from
/// 0.0f with fmul/fadd, then the bias is added, so host and device agree bit for bit.
/// @tparam W the weight element type (float or bfloat16)
/// @param[in] h the head
/// @param[in] j the coefficient index, 0 <= j < h.rank
/// @param[in] e the float embedding row w1[x_{k-1}] (h.rank values; see embedding_row)
/// @param[in] hk the backbone hidden state h_k (h.hidden values; read by gated and rnn)
/// @param[in] state_in rnn: the previous state s_{k-1} (h.rank values), or null for the zero
///   state of step 1; ignored by the other kinds
/// @param[out] state_out rnn: receives s_j at index j (may be null when the state is not needed);
///   must not alias `state_in`, because every coefficient reads the whole previous state
/// @return the coefficient
/// @par Complexity
/// O(1) for markov, O(hidden + rank) for gated and rnn. @hd
template <class W>
SPECDEC_HD inline float head_coefficient(const sequential_head_view<W>& h,
                                         index_t j,
                                         const float* e,
                                         const float* hk,
                                         const float* state_in,
                                         float* state_out) noexcept {
  using ::specdec::detail::fadd;
  using ::specdec::detail::fmul;
  switch (h.kind) {
  case head_kind::markov:
    return e[j];
  case head_kind::gated: {
    const index_t in = h.hidden + h.rank;
    const W* row = h.proj_w + j * in;
    float acc = detail::dot_acc(0.0f, row, hk, h.hidden);
    acc = detail::dot_acc(acc, row + h.hidden, e, h.rank);
    acc = fadd(acc, load_as_float(h.proj_b, j));
    return fmul(detail::sigmoid_f(acc), e[j]);
  }
  case head_kind::rnn: {
    const index_t r = h.rank;
    const index_t in = 2 * r + h.hidden;
    float raw[3];
    for (index_t c = 0; c < 3; ++c) {
      const W* row = h.proj_w + (c * r + j) * in;
      float acc = detail::dot_acc(0.0f, row, state_in, r);
      acc = detail::dot_acc(acc, row + r, e, r);
      acc = detail::dot_acc(acc, row + 2 * r, hk, h.hidden);
      raw[c] = fadd(acc, load_as_float(h.proj_b, c * r + j));
    }
    if (state_out != nullptr) {
      const float g = detail::sigmoid_f(raw[0]);
      const float s_prev = state_in != nullptr ? state_in[j] : 0.0f;
      state_out[j] = fadd(fmul(g, s_prev), fmul(fadd(1.0f, -g), detail::tanh_f(raw[1])));
    }
    return detail::tanh_f(raw[2]);
  }
  case head_kind::none:
    break;
  }
  return 0.0f;
}

/// @brief The bias of token v: B[v] = sum_j w2[v][j] coef[j], j ascending from 0.0f (fmul/fadd).
/// @tparam W the weight element type (float or bfloat16)
/// @param[in] h the head
/// @param[in] v the token, 0 <= v < h.vocab (any v for kind none)
/// @param[in] coef the step's coefficients (h.rank values, see head_coefficient)
/// @return the bias; 0 for kind none (rank 0)
/// @par Complexity
/// O(rank). @hd
template <class W>
SPECDEC_HD inline float
head_bias(const sequential_head_view<W>& h, index_t v, const float* coef) noexcept {
  if (h.kind == head_kind::none || h.rank == 0)
    return 0.0f;
  return detail::dot_acc(0.0f, h.w2 + v * h.rank, coef, h.rank);
}

/// @brief Non-owning view of a confidence head (spec 6.1): z = w . [h; e] + bias, or w . h + bias
///        without the Markov feature. Trivially copyable; host or device memory.
/// @tparam W the weight element type: float or bfloat16
template <class W>
struct confidence_head_view {
  const W* w = nullptr;    ///< [hidden + rank] (with_markov) or [hidden] weights, h part first
  float bias = 0.0f;       ///< the scalar bias b
  index_t hidden = 0;      ///< d
  index_t rank = 0;        ///< r, length of the e part (read only when with_markov)
  bool with_markov = true; ///< the feature includes e = W1[x_{k-1}]
};

/// @brief The confidence logit z_k = (w . [h_k; e]) + b, dot product index ascending from 0.0f
///        with fmul/fadd, then the bias.
/// @tparam W the weight element type (float or bfloat16)
/// @param[in] c the confidence head
/// @param[in] hk the hidden state h_k (c.hidden values)
/// @param[in] e the float embedding row of the previous token (c.rank values; may be null when
///   !c.with_markov)
/// @return z_k; the calibrated conditional is sigmoid(z_k / T_k)
/// @par Complexity
/// O(hidden + rank). @hd
template <class W>
SPECDEC_HD inline float
confidence_logit(const confidence_head_view<W>& c, const float* hk, const float* e) noexcept {
  float acc = detail::dot_acc(0.0f, c.w, hk, c.hidden);
  if (c.with_markov)
    acc = detail::dot_acc(acc, c.w + c.hidden, e, c.rank);
  return ::specdec::detail::fadd(acc, c.bias);
}

namespace detail {

/// a * b into out, false on overflow or a negative operand.
inline bool checked_mul(index_t a, index_t b, index_t& out) noexcept {
  if (a < 0 || b < 0)
    return false;
  return !__builtin_mul_overflow(a, b, &out);
}

/// Expected element counts of a head's arrays (w1, w2, proj_w, proj_b); false on overflow.
inline bool
head_sizes(head_kind kind, index_t vocab, index_t rank, index_t hidden, index_t (&n)[4]) noexcept {
  n[0] = n[1] = n[2] = n[3] = 0;
  if (kind == head_kind::none)
    return true;
  if (!checked_mul(vocab, rank, n[0]))
    return false;
  n[1] = n[0];
  index_t in = 0;
  index_t rows = 0;
  if (kind == head_kind::gated) {
    rows = rank;
    if (__builtin_add_overflow(hidden, rank, &in))
      return false;
  } else if (kind == head_kind::rnn) {
    if (!checked_mul(rank, 3, rows) || !checked_mul(rank, 2, in)
        || __builtin_add_overflow(in, hidden, &in))
      return false;
  }
  n[3] = rows;
  return checked_mul(rows, in, n[2]);
}

/// True when every element is finite.
template <class W>
bool all_finite(const std::vector<W>& v) noexcept {
  for (const W& x : v)
    if (!::specdec::detail::is_finite(dtype_traits<W>::to_float(x)))
      return false;
  return true;
}

} // namespace detail

/// @brief An owning sequential head (host memory): its dimensions and weight arrays.
///
/// Layouts as in sequential_head_view. Fill the fields, call validate(), then view().
/// @tparam W the weight element type: float or bfloat16
template <class W>
struct sequential_head {
  head_kind kind = head_kind::none; ///< which head
  index_t vocab = 0;                ///< V (0 allowed for kind none: matches any backbone)
  index_t rank = 0;                 ///< r (0 for none, >= 1 otherwise)
  index_t hidden = 0;               ///< d (gated and rnn read h; markov ignores it)
  std::vector<W> w1;                ///< [vocab, rank]
  std::vector<W> w2;                ///< [vocab, rank]
  std::vector<W> proj_w;            ///< gated [rank, hidden + rank]; rnn [3 rank, 2 rank + hidden]
  std::vector<W> proj_b;            ///< gated [rank]; rnn [3 rank]

  /// @brief Checks dimensions, array sizes and weights.
  /// @return errc::ok; errc::invalid_argument for an unknown kind, a negative dimension, a
  ///   non-zero rank for kind none, or rank or vocab < 1 for the other kinds; errc::overflow when
  ///   an array size overflows; errc::shape_mismatch when an array's size differs from what the
  ///   kind and dimensions require (unused arrays must be empty); errc::invalid_value for a
  ///   non-finite weight
  /// @par Complexity
  /// O(number of weights).
  [[nodiscard]] status validate() const {
    if (kind != head_kind::none && kind != head_kind::markov && kind != head_kind::gated
        && kind != head_kind::rnn)
      return status{errc::invalid_argument};
    if (vocab < 0 || rank < 0 || hidden < 0)
      return status{errc::invalid_argument};
    if (kind == head_kind::none ? rank != 0 : (rank < 1 || vocab < 1))
      return status{errc::invalid_argument};
    index_t n[4];
    if (!detail::head_sizes(kind, vocab, rank, hidden, n))
      return status{errc::overflow};
    const std::vector<W>* arrays[4] = {&w1, &w2, &proj_w, &proj_b};
    for (int a = 0; a < 4; ++a)
      if (static_cast<index_t>(arrays[a]->size()) != n[a])
        return status{errc::shape_mismatch};
    for (const std::vector<W>* a : arrays)
      if (!detail::all_finite(*a))
        return status{errc::invalid_value};
    return status{};
  }

  /// @brief A view of the weights (valid while this object lives and is not resized). O(1).
  /// @return the view; unused arrays give null pointers
  [[nodiscard]] sequential_head_view<W> view() const noexcept {
    const auto ptr = [](const std::vector<W>& v) -> const W* {
      return v.empty() ? nullptr : v.data();
    };
    return sequential_head_view<W>{
        kind, vocab, rank, hidden, ptr(w1), ptr(w2), ptr(proj_w), ptr(proj_b)};
  }
};

/// @brief An owning confidence head (host memory).
/// @tparam W the weight element type: float or bfloat16
template <class W>
struct confidence_head {
  std::vector<W> w;        ///< [hidden + rank] (with_markov) or [hidden]: the h part first
  float bias = 0.0f;       ///< b
  index_t hidden = 0;      ///< d
  index_t rank = 0;        ///< r (must equal the sequential head's rank when with_markov)
  bool with_markov = true; ///< the feature includes e = W1[x_{k-1}]

  /// @brief Checks dimensions and weights.
  /// @return errc::ok; errc::invalid_argument for a negative dimension; errc::shape_mismatch when
  ///   w.size() != hidden + (with_markov ? rank : 0); errc::invalid_value for a non-finite weight
  ///   or bias
  /// @par Complexity
  /// O(hidden + rank).
  [[nodiscard]] status validate() const {
    if (hidden < 0 || rank < 0)
      return status{errc::invalid_argument};
    index_t n = hidden;
    if (with_markov && __builtin_add_overflow(hidden, rank, &n))
      return status{errc::overflow};
    if (static_cast<index_t>(w.size()) != n)
      return status{errc::shape_mismatch};
    if (!detail::all_finite(w) || !::specdec::detail::is_finite(bias))
      return status{errc::invalid_value};
    return status{};
  }

  /// @brief A view of the weights (valid while this object lives and is not resized). O(1).
  /// @return the view
  [[nodiscard]] confidence_head_view<W> view() const noexcept {
    return confidence_head_view<W>{w.empty() ? nullptr : w.data(), bias, hidden, rank, with_markov};
  }
};

} // namespace propose

SPECDEC_NAMESPACE_END
