// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Block verification (Sun et al., 2024, "Block Verification Accelerates Speculative
/// Decoding"): lossless, and never fewer accepted tokens in expectation than token-wise
/// rejection sampling, because it judges the draft block jointly.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/executor.hpp>
#include <specdec/core/math.hpp>
#include <specdec/verify/chain.hpp>

SPECDEC_NAMESPACE_BEGIN

namespace verify {

namespace detail {

/// The block verification rule, dense or one-hot drafts. @hd
///
/// With p_0 = 1 and p_i = min(1, p_{i-1} p(x_i) / q(x_i)), the weight
/// h_i = Z_i / (Z_i + 1 - p_i), Z_i = sum_v max(0, p_i P_i(v) - Q_i(v)) over the next position's
/// rows (h_K = p_K), and one coin per position, the accepted length tau is the last i whose
/// coin is below h_i (0 if none). The extra token is drawn from the target bonus row when
/// tau = K, else from norm(max(0, p_tau P_tau - Q_tau)). A position whose input is bad ends
/// the usable block before it (K_eff), and is flagged.
template <bool Dense, row_executor E, class TT, class TD, uniform_source U>
SPECDEC_HD chain_outcome block_chain(const E& ex, const chain_request<TT, TD>& req, const U& u) {
  chain_outcome out;
  const chain_request<TT, TD> r = checked(req, out.status);
  sampling::dist_row<TT> trow = r.target_row(0);
  sampling::row_stats ts = sampling::prepare_row(ex, trow, r.params);
  if (!ts.ok()) {
    merge_row_status(out.status, ts, false);
    out.next = safe_token(ts);
    return out;
  }
  const std::int32_t K = r.num_drafts;
  float p = 1.0f;              // p_{i-1}, then p_i
  std::int32_t tau = 0;        // last success so far
  std::int32_t tau_before = 0; // last success among indices < i
  float p_tau = 1.0f;          // p at tau
  float p_tau_before = 1.0f;
  std::int32_t k_eff = K;
  bool final_decided = false;
  draft_dist<TD> q{};
  if (K > 0 && r.token_in_range(0))
    q = make_draft(ex, r, 0, Dense);
  for (std::int32_t i = 1; i <= K; ++i) {
    // Step i judges x_i with target row i-1 (ts) and draft row i-1 (q).
    if (!r.token_in_range(i - 1)) {
      out.status.set(row_status::token_out_of_range);
      k_eff = i - 1;
      break;
    }
    if (!q.ok()) {
      merge_row_status(out.status, q.stats, true);
      k_eff = i - 1;
      break;
    }
    const token_id x = r.tokens[i - 1];
    const float qx = q.prob(x);
    if (!(qx > 0.0f)) {
      out.status.set(row_status::zero_draft_probability);
      k_eff = i - 1;
      break;
    }
    const float px = sampling::prob_at(trow, ts, x);
    const float pi = ::specdec::detail::min_f(1.0f, ::specdec::detail::fmul(p, px / qx));
    const sampling::dist_row<TT> trow_next = r.target_row(i);
    const sampling::row_stats ts_next = sampling::prepare_row(ex, trow_next, r.params);
    if (!ts_next.ok()) {
      merge_row_status(out.status, ts_next, false);
      k_eff = i - 1;
      break;
    }
    tau_before = tau;
    p_tau_before = p_tau;
    float h = pi; // the last position's weight
    bool last = i == K;
    draft_dist<TD> q_next{};
    if (!last) {
      if (r.token_in_range(i))
        q_next = make_draft(ex, r, i, Dense);
      if (!r.token_in_range(i) || !q_next.ok()) {
        last = true; // the block ends at i; step i+1 flags the cause
      } else {
        const float z = visit_residual<sampling::detail::runtime_dispatch<E>>(
            trow_next, ts_next, q_next, pi, [&](const auto& excess) {
              return static_cast<float>(ex.sum(r.vocab, excess));
            });
        h = z > 0.0f ? z / (z + (1.0f - pi)) : 0.0f;
      }
    }
    if (u(r.position + i - 1, draw_purpose::accept) < h) {
      tau = i;
      p_tau = pi;
    }
    p = pi;
    trow = trow_next;
    ts = ts_next;
    q = q_next;
    if (last && i < K) {
      // Flag the cause at i+1 (token or draft row) and end the block at i.
      if (!r.token_in_range(i))
        out.status.set(row_status::token_out_of_range);
      else
        merge_row_status(out.status, q_next.stats, true);
      k_eff = i;
      final_decided = true;
      break;
    }
    if (last)
      final_decided = true;
  }
  if (!final_decided && k_eff >= 1) {
    // The block was cut before its end: re-judge position k_eff as the last one (h = p).
    tau = u(r.position + k_eff - 1, draw_purpose::accept) < p ? k_eff : tau_before;
    p_tau = tau == k_eff ? p : p_tau_before;
  }
  out.accepted = tau;
  const float us = u(r.position + tau, draw_purpose::sample);
  if (tau == k_eff) { // ts holds target row k_eff
    out.next = draw_from(ex, trow, ts, us);
    return out;
  }
  const sampling::dist_row<TT> trow_tau = r.target_row(tau);
  const sampling::row_stats ts_tau = sampling::prepare_row(ex, trow_tau, r.params);
  const draft_dist<TD> q_tau = make_draft(ex, r, tau, Dense);
  out.next = sample_residual(ex, trow_tau, ts_tau, q_tau, p_tau, us, out.status);
  return out;
}

} // namespace detail

/// @brief Block verification with dense draft rows (lossless; Sun et al., 2024).
///
/// Unlike token-wise rejection it reads every position's rows (each h_i needs the next
/// position's residual mass), so it costs more vocabulary passes and accepts more tokens in
/// expectation. Bad input truncates the block before the bad position and is flagged.
struct block_verification {
  static constexpr bool needs_draft_rows = true; ///< q is read at every position
  static constexpr bool lossless = true;         ///< output law equals the processed target's

  /// @brief Verifies one chain.
  /// @tparam E a row_executor
  /// @tparam TT target element type (a row_element)
  /// @tparam TD draft element type (a row_element)
  /// @tparam U a uniform_source
  /// @param[in] ex the executor
  /// @param[in] r the request (with draft rows)
  /// @param[in] u the request's uniforms: (r.position + i - 1, accept) is the coin of position
  ///   i (1 <= i <= K), and (r.position + accepted, sample) draws the emitted token
  /// @return the accepted count, the emitted token and the request's flags
  /// @par Complexity
  /// About three passes per position (target stats, draft stats, residual mass) plus up to four
  /// at the end (one to sample the bonus row; else stats and two residual passes at the
  /// rejected position). @hd
  template <row_executor E, class TT, class TD, uniform_source U>
  SPECDEC_HD chain_outcome verify_chain(const E& ex,
                                        const chain_request<TT, TD>& r,
                                        const U& u) const {
    return detail::block_chain<true>(ex, r, u);
  }
};

/// Block verification for drafters without probabilities (q one-hot at each draft).
struct one_hot_block_verification {
  static constexpr bool needs_draft_rows = false; ///< draft rows are never read
  static constexpr bool lossless = true;          ///< for deterministic drafters

  /// @brief Verifies one chain.
  /// @tparam E a row_executor
  /// @tparam TT target element type (a row_element)
  /// @tparam TD draft element type (unused: draft rows are not read)
  /// @tparam U a uniform_source
  /// @param[in] ex the executor
  /// @param[in] r the request (draft rows are not read)
  /// @param[in] u the request's uniforms: (r.position + i - 1, accept) is the coin of position
  ///   i (1 <= i <= K), and (r.position + accepted, sample) draws the emitted token
  /// @return the accepted count, the emitted token and the request's flags
  /// @par Complexity
  /// About two passes per position (target stats, residual mass) plus up to three at the end.
  /// @hd
  template <row_executor E, class TT, class TD, uniform_source U>
  SPECDEC_HD chain_outcome verify_chain(const E& ex,
                                        const chain_request<TT, TD>& r,
                                        const U& u) const {
    return detail::block_chain<false>(ex, r, u);
  }
};

} // namespace verify

SPECDEC_NAMESPACE_END
