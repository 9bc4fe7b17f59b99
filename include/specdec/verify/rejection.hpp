// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Token-wise rejection sampling (Leviathan et al. 2023; Chen et al. 2023), with the
/// full draft distribution or with one-hot drafts. Lossless: the emitted tokens follow the
/// processed target distribution exactly.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/executor.hpp>
#include <specdec/verify/chain.hpp>
#include <specdec/verify/tree.hpp>

SPECDEC_NAMESPACE_BEGIN

namespace verify {

namespace detail {

/// The token-wise rejection rule, dense (`Dense`) or one-hot drafts. @hd
template <bool Dense, row_executor E, class TT, class TD, uniform_source U>
SPECDEC_HD chain_outcome rejection_chain(const E& ex,
                                         const chain_request<TT, TD>& req,
                                         const U& u) {
  chain_outcome out;
  const chain_request<TT, TD> r = checked(req, out.status);
  for (std::int32_t k = 0; k < r.num_drafts; ++k) {
    const index_t pos = r.position + k;
    const sampling::dist_row<TT> trow = r.target_row(k);
    const sampling::row_stats ts = sampling::prepare_row(ex, trow, r.params);
    out.accepted = k;
    if (!ts.ok()) {
      merge_row_status(out.status, ts, false);
      out.next = safe_token(ts);
      return out;
    }
    if (!r.token_in_range(k)) {
      out.status.set(row_status::token_out_of_range);
      out.next = draw_from(ex, trow, ts, u(pos, draw_purpose::sample));
      return out;
    }
    const draft_dist<TD> q = make_draft(ex, r, k, Dense);
    if (!q.ok()) {
      merge_row_status(out.status, q.stats, true);
      out.next = draw_from(ex, trow, ts, u(pos, draw_purpose::sample));
      return out;
    }
    const token_id x = r.tokens[k];
    const float px = sampling::prob_at(trow, ts, x);
    const float qx = q.prob(x);
    if (!(qx > 0.0f))
      out.status.set(row_status::zero_draft_probability); // reject below
    const float keep = qx > 0.0f ? (px >= qx ? 1.0f : px / qx) : 0.0f;
    if (u(pos, draw_purpose::accept) < keep)
      continue;
    out.next = sample_residual(ex, trow, ts, q, 1.0f, u(pos, draw_purpose::sample), out.status);
    return out;
  }
  out.accepted = r.num_drafts;
  const index_t pos = r.position + r.num_drafts;
  const sampling::dist_row<TT> trow = r.target_row(r.num_drafts);
  const sampling::row_stats ts = sampling::prepare_row(ex, trow, r.params);
  if (!ts.ok()) {
    merge_row_status(out.status, ts, false);
    out.next = safe_token(ts);
    return out;
  }
  out.next = draw_from(ex, trow, ts, u(pos, draw_purpose::sample));
  return out;
}

} // namespace detail

/// @brief Rejection sampling with the full draft distribution q.
///
/// Accept x_k with probability min(1, p(x_k) / q(x_k)) (strict u < ratio), else emit a sample of
/// norm(max(0, p - q)); a fully accepted chain emits a sample of the bonus row. p and q are the
/// processed distributions (the same sampling parameters on both sides).
///
/// Bad input: an invalid target row stops the chain there (safe token); an out-of-range token
/// or an invalid draft row rejects at that position and draws the correction from the target
/// row; q(x) = 0 (the draft claims it could not have drafted x) rejects and is flagged; a
/// residual without mass falls back to the target row (flagged residual_fallback).
struct rejection_sampling {
  static constexpr bool needs_draft_rows = true; ///< q is read for every visited position
  static constexpr bool lossless = true;         ///< output law equals the processed target's

  /// @brief Verifies one chain.
  /// @tparam E a row_executor
  /// @tparam TT target element type (a row_element)
  /// @tparam TD draft element type (a row_element)
  /// @tparam U a uniform_source
  /// @param[in] ex the executor
  /// @param[in] r the request (with draft rows)
  /// @param[in] u the request's uniforms: (r.position + k, accept) is the coin of x_{k+1} and
  ///   (r.position + k, sample) draws the token emitted at that position
  /// @return the accepted count, the emitted token and the request's flags
  /// @par Complexity
  /// Per visited position, one pass over the target row and one over the draft row; the
  /// rejected position adds two residual passes. @hd
  template <row_executor E, class TT, class TD, uniform_source U>
  SPECDEC_HD chain_outcome verify_chain(const E& ex,
                                        const chain_request<TT, TD>& r,
                                        const U& u) const {
    return detail::rejection_chain<true>(ex, r, u);
  }

  /// @brief Verifies one tree with siblings drawn from their draft rows (SpecInfer multi-draft: the
  /// residual is renormalised after every rejected sibling).
  /// @tparam E a row_executor
  /// @tparam TT target element type (a row_element)
  /// @tparam TD draft element type (a row_element)
  /// @tparam U a uniform_source
  /// @param[in] ex the executor
  /// @param[in] r the request
  /// @param[in] u the request's uniforms: (r.position + d, accept, i) is the coin of the i-th
  ///   child of the depth-d node reached, (r.position + d, sample) the token emitted there
  /// @return the last accepted node, its depth, the emitted token and the request's flags
  /// @par Complexity
  /// Per visited node one target pass (plus one draft pass per tried child when dense); the
  /// i-th rejection under a node adds one residual pass of O(i) per entry, the final draw one
  /// more. @hd
  template <row_executor E, class TT, class TD, uniform_source U>
  SPECDEC_HD tree_outcome verify_tree(const E& ex,
                                      const tree_request<TT, TD>& r,
                                      const U& u) const {
    return detail::rejection_tree<true, true>(ex, r, u);
  }
};

/// @brief Rejection sampling for drafters without probabilities (q is one-hot at the draft).
///
/// Accept x_k iff u < p(x_k); on rejection emit a sample of p with x_k removed and renormalised.
/// Lossless whenever the drafts are deterministic functions of the context.
struct one_hot_rejection {
  static constexpr bool needs_draft_rows = false; ///< draft rows are never read
  static constexpr bool lossless = true;          ///< for deterministic drafters

  /// @brief Verifies one chain.
  /// @tparam E a row_executor
  /// @tparam TT target element type (a row_element)
  /// @tparam TD draft element type (unused: draft rows are not read)
  /// @tparam U a uniform_source
  /// @param[in] ex the executor
  /// @param[in] r the request (draft rows are not read)
  /// @param[in] u the request's uniforms: (r.position + k, accept) is the coin of x_{k+1} and
  ///   (r.position + k, sample) draws the token emitted at that position
  /// @return the accepted count, the emitted token and the request's flags
  /// @par Complexity
  /// One pass per visited target row; two residual passes at the rejected position. @hd
  template <row_executor E, class TT, class TD, uniform_source U>
  SPECDEC_HD chain_outcome verify_chain(const E& ex,
                                        const chain_request<TT, TD>& r,
                                        const U& u) const {
    return detail::rejection_chain<false>(ex, r, u);
  }

  /// @brief Verifies one tree with one-hot siblings (accept x with the current residual's r(x),
  /// else zero x and renormalise; lossless for distinct deterministic siblings).
  /// @tparam E a row_executor
  /// @tparam TT target element type (a row_element)
  /// @tparam TD draft element type (a row_element)
  /// @tparam U a uniform_source
  /// @param[in] ex the executor
  /// @param[in] r the request
  /// @param[in] u the request's uniforms: (r.position + d, accept, i) is the coin of the i-th
  ///   child of the depth-d node reached, (r.position + d, sample) the token emitted there
  /// @return the last accepted node, its depth, the emitted token and the request's flags
  /// @par Complexity
  /// Per visited node one target pass (plus one draft pass per tried child when dense); the
  /// i-th rejection under a node adds one residual pass of O(i) per entry, the final draw one
  /// more. @hd
  template <row_executor E, class TT, class TD, uniform_source U>
  SPECDEC_HD tree_outcome verify_tree(const E& ex,
                                      const tree_request<TT, TD>& r,
                                      const U& u) const {
    return detail::rejection_tree<false, true>(ex, r, u);
  }
};

} // namespace verify

SPECDEC_NAMESPACE_END
