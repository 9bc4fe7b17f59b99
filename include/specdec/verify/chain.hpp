// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The chain verification problem of one request, its outcome, and the helpers shared by
/// every chain rule (row access, draft-distribution views, residual sampling).

#include <specdec/config.hpp>

#include <specdec/core/executor.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/core/simd.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/sampling/distribution.hpp>
#include <specdec/sampling/params.hpp>

#include <cstdint>
#include <type_traits>

SPECDEC_NAMESPACE_BEGIN

/// @brief Chain verification: the problem of one request and of a batch, the verification
/// rules (greedy, rejection sampling, block verification, typical acceptance) and the
/// chain_verification_policy concept.
namespace verify {

/// @brief One request's chain draft and the rows that score it.
///
/// Target row j (0 <= j <= num_drafts) is the target's distribution for the token after the
/// committed prefix and drafts x_1..x_j: row j-1 scores draft x_j and row num_drafts gives the
/// bonus token. Draft row j (0 <= j < num_drafts) is the distribution x_{j+1} was drawn from.
/// @tparam TT target element type, a row_element (float, half, bfloat16)
/// @tparam TD draft element type, a row_element (defaults to TT)
template <class TT, class TD = TT>
struct chain_request {
  const TT* target = nullptr;       ///< target row 0; @shape{[num_drafts + 1, vocab]}
  index_t target_stride = 0;        ///< elements between target rows
  const TD* draft = nullptr;        ///< draft row 0 (null for rules without draft rows)
  index_t draft_stride = 0;         ///< elements between draft rows
  const token_id* tokens = nullptr; ///< the drafts x_1..x_K; @shape{[num_drafts]}
  std::int32_t num_drafts = 0;      ///< K >= 0 (0: only the bonus token is drawn)
  index_t vocab = 0;                ///< vocabulary size V, shared by target and draft rows
  distribution_kind target_kind = distribution_kind::logits; ///< what target rows hold
  distribution_kind draft_kind = distribution_kind::logits;  ///< what draft rows hold
  sampling::sampling_params params{}; ///< applied identically to target and draft rows
  index_t position = 0;               ///< absolute decode position of x_1 (keys the random draws)

  /// @brief Target row j.
  /// @param[in] j the row index
  /// @return the row at `target + j * target_stride`, with #vocab and #target_kind
  /// @pre 0 <= j <= num_drafts.
  /// @hd
  SPECDEC_HD sampling::dist_row<TT> target_row(index_t j) const noexcept {
    return {target + j * target_stride, vocab, target_kind};
  }
  /// @brief Draft row j (the distribution of x_{j+1}).
  /// @param[in] j the row index
  /// @return the row at `draft + j * draft_stride`, with #vocab and #draft_kind
  /// @pre 0 <= j < num_drafts and the request has draft rows.
  /// @hd
  SPECDEC_HD sampling::dist_row<TD> draft_row(index_t j) const noexcept {
    return {draft + j * draft_stride, vocab, draft_kind};
  }
  /// @brief True when draft j (0-based) is a valid token id.
  /// @param[in] j the draft index
  /// @return `0 <= tokens[j] < vocab`
  /// @pre 0 <= j < num_drafts.
  /// @hd
  SPECDEC_HD bool token_in_range(index_t j) const noexcept {
    return tokens[j] >= 0 && static_cast<index_t>(tokens[j]) < vocab;
  }
};

/// The result of verifying one chain: `accepted` drafts kept, then exactly one more token.
struct chain_outcome {
  std::int32_t accepted = 0; ///< number of leading drafts accepted, 0 .. K
  token_id next = 0;         ///< the correction (accepted < K) or bonus (accepted == K) token
  row_status status{};       ///< what went wrong with this request's input, if anything

  /// @brief Equal when all fields are.
  /// @return true when #accepted, #next and #status are equal
  /// @hd
  friend constexpr bool operator==(const chain_outcome&, const chain_outcome&) = default;
};

/// Residual masses at or below this fall back to the target row (DeepSpec's numerical guard).
inline constexpr float residual_mass_floor = 1e-8f;

namespace detail {

/// A token that is always a valid id: the row's argmax when it has one, else 0. @hd
SPECDEC_HD inline token_id safe_token(const sampling::row_stats& st) noexcept {
  return st.argmax >= 0 ? static_cast<token_id>(st.argmax) : 0;
}

/// Moves a row's failure flags into the request status; `draft` relabels them as draft flags.
SPECDEC_HD inline void
merge_row_status(row_status& out, const sampling::row_stats& st, bool draft) noexcept {
  if (st.status.has(row_status::target_invalid))
    out.set(draft ? row_status::draft_invalid : row_status::target_invalid);
  if (st.status.has(row_status::target_zero_mass))
    out.set(draft ? row_status::draft_zero_mass : row_status::target_zero_mass);
}

/// The request (chain or tree) with usable sampling parameters and position: itself when both
/// are valid, else a copy with greedy parameters and `invalid_params` set in `status`, and / or
/// position 0 and `bad_shape` set when the position is outside [0, max_position] (so that
/// position + k cannot overflow). A defined fallback for callers that skip validation, such as
/// device kernels. @hd
template <class Request>
SPECDEC_HD Request checked(const Request& r, row_status& status) noexcept {
  Request out = r;
  if (r.params.validate() != errc::ok) {
    status.set(row_status::invalid_params);
    out.params = sampling::sampling_params{};
    out.params.temperature = 0.0f;
  }
  if (r.position < 0 || r.position > max_position) {
    status.set(row_status::bad_shape);
    out.position = 0;
  }
  return out;
}

/// Draws from a processed target row; a row without mass yields its safe token. @hd
template <row_executor E, class T>
SPECDEC_HD token_id
draw_from(const E& ex, const sampling::dist_row<T>& row, const sampling::row_stats& st, float u) {
  const index_t t = sampling::sample_row(ex, row, st, u);
  return t >= 0 ? static_cast<token_id>(t) : safe_token(st);
}

/// The distribution a draft token was drawn from: a processed dense row, or a one-hot at the
/// token itself (drafters without probabilities).
template <class TD>
struct draft_dist {
  sampling::dist_row<TD> row{}; ///< the dense row (unused when one_hot)
  sampling::row_stats stats{};  ///< its processed stats (unused when one_hot)
  token_id token = 0;           ///< the drafted token (the one-hot position)
  bool one_hot = true;          ///< true for one-hot drafts

  /// q(i). @hd
  SPECDEC_HD float prob(index_t i) const noexcept {
    if (one_hot)
      return i == token ? 1.0f : 0.0f;
    return sampling::prob_at(row, stats, i);
  }
  /// True when the distribution is usable. @hd
  SPECDEC_HD bool ok() const noexcept {
    return one_hot || stats.ok();
  }
};

/// Builds the draft distribution of draft j (dense when `dense`, else one-hot at x_{j+1}). @hd
template <row_executor E, class TT, class TD>
SPECDEC_HD draft_dist<TD>
make_draft(const E& ex, const chain_request<TT, TD>& r, index_t j, bool dense) {
  draft_dist<TD> d;
  d.token = r.tokens[j];
  d.one_hot = !dense;
  if (dense) {
    d.row = r.draft_row(j);
    d.stats = sampling::prepare_row(ex, d.row, r.params);
  }
  return d;
}

/// q(i) of a one-hot draft.
struct token_indicator {
  index_t token; ///< the drafted token
  /// 1 at the token, 0 elsewhere. @hd
  SPECDEC_HD float operator()(index_t i) const noexcept {
    return i == token ? 1.0f : 0.0f;
  }
#if SPECDEC_HOST_SIMD
  /// Lanes i .. i + simd::width - 1 of the indicator (host vector loops).
  ::specdec::detail::simd::vf eval_v(index_t i) const noexcept {
    namespace simd = ::specdec::detail::simd;
    simd::vi idx{};
    for (int c = 0; c < simd::width; ++c)
      idx[c] = static_cast<std::int32_t>(i + c);
    return simd::select(
        idx == static_cast<std::int32_t>(token), simd::splat(1.0f), simd::splat(0.0f));
  }
#endif
};

/// The residual i -> max(0, scale * p(i) - q(i)) of two weight functors; with a vector form
/// (eval_v) on the host when both have one.
template <class P, class Q>
struct residual_fn {
  P p;
  Q q;
  float scale;
  SPECDEC_HD float operator()(index_t i) const noexcept {
    const float d = ::specdec::detail::fmul(scale, p(i)) - q(i);
    return d > 0.0f ? d : 0.0f;
  }
#if SPECDEC_HOST_SIMD
  /// Lanes i .. i + simd::width - 1, each equal to (*this)(i + c) bit for bit.
  ::specdec::detail::simd::vf eval_v(index_t i) const noexcept requires
      requires(const P& pp, const Q& qq) {
    pp.eval_v(i);
    qq.eval_v(i);
  }
  {
    namespace simd = ::specdec::detail::simd;
    const simd::vf d = simd::fmul(simd::splat(scale), p.eval_v(i)) - q.eval_v(i);
    return simd::select(d > 0.0f, d, simd::splat(0.0f));
  }
#endif
};

/// Calls f with the residual functor i -> max(0, scale * p(i) - q(i)), specialised for the
/// row forms of p and q so that loops over it are branch-free, and returns what f returns.
template <bool Dynamic = false, class TT, class TD, class F>
SPECDEC_HD auto visit_residual(const sampling::dist_row<TT>& trow,
                               const sampling::row_stats& ts,
                               const draft_dist<TD>& q,
                               float scale,
                               F&& f) {
  if constexpr (Dynamic) { // one functor, runtime branches (device executors)
    const sampling::detail::generic_weight<TT> p{trow, ts, ts.inv_mass};
    const draft_dist<TD> qq = q;
    return f([p, qq, scale](index_t i) {
      const float d = ::specdec::detail::fmul(scale, p(i)) - qq.prob(i);
      return d > 0.0f ? d : 0.0f;
    });
  } else {
    return sampling::detail::visit_weights(trow, ts, ts.inv_mass, [&](const auto& p) {
      const auto with_q = [&](const auto& qf) {
        return f(residual_fn<std::decay_t<decltype(p)>, std::decay_t<decltype(qf)>>{p, qf, scale});
      };
      if (q.one_hot)
        return with_q(token_indicator{q.token});
      return sampling::detail::visit_weights(q.row, q.stats, q.stats.inv_mass, with_q);
    });
  }
}

/// Samples from max(0, scale * p - q) over the vocabulary (the rejection residual; scale is 1
/// except in block verification). Falls back to the target row, flagging residual_fallback,
/// when the residual mass is at or below residual_mass_floor. @hd
template <row_executor E, class TT, class TD>
SPECDEC_HD token_id sample_residual(const E& ex,
                                    const sampling::dist_row<TT>& trow,
                                    const sampling::row_stats& ts,
                                    const draft_dist<TD>& q,
                                    float scale,
                                    float u,
                                    row_status& status) {
  return visit_residual<sampling::detail::runtime_dispatch<E>>(
      trow, ts, q, scale, [&](const auto& residual) -> token_id {
        const float mass = ex.sum(trow.vocab, residual);
        if (!(mass > residual_mass_floor)) {
          status.set(row_status::residual_fallback);
          return draw_from(ex, trow, ts, u);
        }
        const index_t t =
            ex.sample_inverse_cdf(trow.vocab, residual, ::specdec::detail::fmul(u, mass));
        return t >= 0 ? static_cast<token_id>(t) : safe_token(ts);
      });
}

} // namespace detail

} // namespace verify

SPECDEC_NAMESPACE_END
