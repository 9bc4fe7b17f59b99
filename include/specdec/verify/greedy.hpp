// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Greedy chain verification: accept while each draft is the target's argmax.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/executor.hpp>
#include <specdec/verify/chain.hpp>
#include <specdec/verify/tree.hpp>

SPECDEC_NAMESPACE_BEGIN

namespace verify {

/// @brief Greedy verification.
///
/// Draft x_k is accepted while it equals the argmax (first index on ties)
/// of target row k-1; the first mismatch emits that argmax, and a fully accepted chain emits the
/// argmax of the bonus row. Sampling parameters and randomness are ignored (the argmax survives
/// every filter), and draft rows are not read.
///
/// Bad input: an invalid target row stops the chain there and emits its safe token (argmax of
/// the valid entries, else 0); an out-of-range draft token is a mismatch and is flagged.
struct greedy {
  static constexpr bool needs_draft_rows = false; ///< draft rows are never read
  static constexpr bool lossless = true;          ///< equals greedy decoding of the target

  /// @brief Verifies one chain.
  /// @tparam E a row_executor
  /// @tparam TT target element type (a row_element)
  /// @tparam TD draft element type (unused: draft rows are not read)
  /// @tparam U a uniform_source (unused)
  /// @param[in] ex the executor
  /// @param[in] r the request (its uniform source, the unnamed last parameter, is ignored)
  /// @return the accepted count, the emitted token and the request's flags (invalid sampling
  ///   parameters are flagged, though greedy does not use them)
  /// @par Complexity
  /// One max/argmax pass per target row visited (at most accepted + 1 rows). @hd
  template <row_executor E, class TT, class TD, uniform_source U>
  SPECDEC_HD chain_outcome verify_chain(const E& ex,
                                        const chain_request<TT, TD>& r,
                                        const U&) const {
    chain_outcome out;
    (void)detail::checked(r, out.status); // flags invalid parameters; greedy ignores them
    sampling::sampling_params argmax_only;
    argmax_only.temperature = 0.0f;
    for (std::int32_t k = 0; k <= r.num_drafts; ++k) {
      const sampling::row_stats ts = sampling::prepare_row(ex, r.target_row(k), argmax_only);
      detail::merge_row_status(out.status, ts, false);
      const token_id best = detail::safe_token(ts);
      if (!ts.ok() || k == r.num_drafts || r.tokens[k] != best) {
        if (ts.ok() && k < r.num_drafts && !r.token_in_range(k))
          out.status.set(row_status::token_out_of_range);
        out.accepted = k;
        out.next = best;
        return out;
      }
    }
    return out; // not reached
  }

  /// @brief Verifies one tree: from the root, move to the first child holding the target
  /// argmax while there is one; emit the argmax of the last accepted node's row.
  /// @tparam E a row_executor
  /// @tparam TT target element type (a row_element)
  /// @tparam TD draft element type (unused)
  /// @tparam U a uniform_source (unused except for a malformed tree's root draw)
  /// @param[in] ex the executor
  /// @param[in] r the request
  /// @param[in] u the request's uniforms
  /// @return the last accepted node, its depth, the argmax token and the request's flags
  /// @par Complexity
  /// One max/argmax pass per visited node (depth + 1 rows) plus the child scans. @hd
  template <row_executor E, class TT, class TD, uniform_source U>
  SPECDEC_HD tree_outcome verify_tree(const E& ex,
                                      const tree_request<TT, TD>& r,
                                      const U& u) const {
    return detail::greedy_tree(ex, r, u);
  }
};

} // namespace verify

SPECDEC_NAMESPACE_END
