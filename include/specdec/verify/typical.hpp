// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Typical acceptance (Medusa, Cai et al. 2024): a lossy rule that accepts drafts the
/// target finds typical enough.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/executor.hpp>
#include <specdec/core/math.hpp>
#include <specdec/verify/chain.hpp>
#include <specdec/verify/tree.hpp>

SPECDEC_NAMESPACE_BEGIN

namespace verify {

/// @brief Typical acceptance: a lossy rule that accepts drafts the target finds typical enough.
///
/// Accept x_k while p(x_k) > min(epsilon, delta * exp(-H(p))), where p is
/// the processed target row and H its entropy in nats; the first rejected position emits a
/// sample of p (not a residual), and a fully accepted chain a sample of the bonus row. Not
/// lossless: it trades exactness for acceptance. Greedy parameters reduce it to greedy.
///
/// Bad input is handled as in greedy (invalid target row: stop, safe token; bad token id:
/// rejected, flagged).
struct typical_acceptance {
  float epsilon = 0.09f; ///< hard threshold (Medusa's posterior_threshold)
  float delta = 0.3f;    ///< entropy-scaled threshold factor (Medusa's posterior_alpha)
  static constexpr bool needs_draft_rows = false; ///< draft rows are never read
  static constexpr bool lossless = false;         ///< lossy by design

  /// @brief The acceptance threshold for a row of entropy `h`.
  /// @param[in] h the entropy of the processed target row, in nats
  /// @return `min(epsilon, delta * exp(-h))`
  /// @hd
  SPECDEC_HD float threshold(float h) const noexcept {
    return ::specdec::detail::min_f(epsilon, delta * ::specdec::detail::exp_f(-h));
  }

  /// @brief Verifies one chain.
  /// @tparam E a row_executor
  /// @tparam TT target element type (a row_element)
  /// @tparam TD draft element type (unused: draft rows are not read)
  /// @tparam U a uniform_source
  /// @param[in] ex the executor
  /// @param[in] req the request (draft rows are not read)
  /// @param[in] u the request's uniforms: (req.position + k, sample) draws the token emitted at
  ///   position k; the acceptance test itself uses no randomness
  /// @return the accepted count, the emitted token and the request's flags
  /// @par Complexity
  /// Two passes (stats, entropy) per visited target row, plus the sampling pass. @hd
  template <row_executor E, class TT, class TD, uniform_source U>
  SPECDEC_HD chain_outcome verify_chain(const E& ex,
                                        const chain_request<TT, TD>& req,
                                        const U& u) const {
    chain_outcome out;
    const chain_request<TT, TD> r = detail::checked(req, out.status);
    for (std::int32_t k = 0; k <= r.num_drafts; ++k) {
      const index_t pos = r.position + k;
      const sampling::dist_row<TT> trow = r.target_row(k);
      const sampling::row_stats ts = sampling::prepare_row(ex, trow, r.params);
      out.accepted = k;
      if (!ts.ok()) {
        detail::merge_row_status(out.status, ts, false);
        out.next = detail::safe_token(ts);
        return out;
      }
      if (k < r.num_drafts) {
        if (!r.token_in_range(k)) {
          out.status.set(row_status::token_out_of_range);
        } else {
          const float px = sampling::prob_at(trow, ts, r.tokens[k]);
          if (px > threshold(sampling::entropy(ex, trow, ts)))
            continue;
        }
      }
      out.next = detail::draw_from(ex, trow, ts, u(pos, draw_purpose::sample));
      return out;
    }
    return out; // not reached
  }

  /// @brief Verifies one tree: a child is accepted when its parent is and p(x) > threshold of
  /// the parent's row; the deepest accepted node wins (lowest index on ties) and the extra
  /// token is drawn from its row.
  /// @tparam E a row_executor
  /// @tparam TT target element type (a row_element)
  /// @tparam TD draft element type (unused)
  /// @tparam U a uniform_source
  /// @param[in] ex the executor
  /// @param[in] r the request
  /// @param[in] u the request's uniforms: (r.position + depth, sample) draws the extra token
  /// @return the last accepted node, its depth, the emitted token and the request's flags
  /// @par Complexity
  /// Two passes (stats, entropy) per accepted inner node, one more for the final row. @hd
  template <row_executor E, class TT, class TD, uniform_source U>
  SPECDEC_HD tree_outcome verify_tree(const E& ex,
                                      const tree_request<TT, TD>& r,
                                      const U& u) const {
    return detail::typical_tree(ex, r, u, [this](float h) { return threshold(h); });
  }
};

} // namespace verify

SPECDEC_NAMESPACE_END
