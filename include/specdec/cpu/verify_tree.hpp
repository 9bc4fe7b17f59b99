// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Host verification of token trees: one request, or a packed batch validated first and
/// then verified request by request with the serial executor. The reference for the device
/// tree kernels.

#include <specdec/config.hpp>

#include <specdec/core/diagnostics.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/cpu/serial_executor.hpp>
#include <specdec/verify/tree.hpp>
#include <specdec/verify/tree_batch.hpp>

SPECDEC_NAMESPACE_BEGIN

namespace cpu {

/// @brief Verifies one tree on the host with Philox uniforms keyed by `key`.
/// @tparam Policy a tree_verification_policy
/// @tparam TT target element type (a row_element)
/// @tparam TD draft element type (a row_element)
/// @param[in] policy the rule
/// @param[in] request the tree, its rows and sampling parameters
/// @param[in] key the request's random stream (seed and request id)
/// @return the outcome (malformed trees and bad rows are flagged in its status, never UB)
/// @par Complexity
/// As the policy's rule; O(V) per row pass, plus O(N x depth) to validate the tree.
template <class Policy, class TT, class TD>
verify::tree_outcome
verify_tree(const Policy& policy, const verify::tree_request<TT, TD>& request, rng_key key) {
  SPECDEC_CHECK(tree_verification_policy, Policy);
  return policy.verify_tree(serial_executor{}, request, philox_uniforms{key});
}

/// @brief Verifies a packed batch of trees on the host.
///
/// Requests are independent: a malformed tree, a bad row or a bad token id sets that request's
/// flags and gives it a defined result; the others are unaffected.
/// @tparam Policy a tree_verification_policy
/// @tparam TT target element type (a row_element)
/// @tparam TD draft element type (a row_element)
/// @param[in] policy the rule
/// @param[in] batch the packed trees (see verify::tree_batch)
/// @param[out] out per-request results
/// @return a shape or parameter error (nothing written, see verify::validate); else errc::ok
///   when every request was clean, or the errc of the first request with bad input (all
///   results written)
/// @par Complexity
/// Sum over requests of the rule's cost.
template <class Policy, class TT, class TD>
[[nodiscard]] status verify_tree_batch(const Policy& policy,
                                       const verify::tree_batch<TT, TD>& batch,
                                       const verify::tree_batch_output& out) {
  SPECDEC_CHECK(tree_verification_policy, Policy);
  const status valid = verify::validate(batch, out, Policy::needs_draft_rows);
  if (!valid.ok())
    return valid;
  status first_bad{};
  const serial_executor ex{};
  for (index_t b = 0; b < batch.batch; ++b) {
    const verify::tree_outcome o =
        policy.verify_tree(ex, batch.request(b, Policy::needs_draft_rows), batch.uniforms(b));
    out.accepted[b] = o.accepted;
    out.last_node[b] = o.last_node;
    out.next[b] = o.next;
    out.status[b] = o.status;
    if (first_bad.ok() && !o.status.ok())
      first_bad = status{o.status.to_errc()};
  }
  return first_bad;
}

} // namespace cpu

SPECDEC_NAMESPACE_END
