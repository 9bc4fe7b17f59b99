// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Host batch verification of chain drafts: validates the batch, then runs the policy's
/// rule on every request with the serial executor. The reference for every device test.

#include <specdec/config.hpp>

#include <specdec/core/diagnostics.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/cpu/serial_executor.hpp>
#include <specdec/verify/batch.hpp>
#include <specdec/verify/policy.hpp>

SPECDEC_NAMESPACE_BEGIN

namespace cpu {

/// @brief Verifies one request on the host with Philox uniforms keyed by `key`.
/// @tparam Policy a chain_verification_policy
/// @tparam TT target element type (a row_element)
/// @tparam TD draft element type (a row_element)
/// @param[in] policy the rule
/// @param[in] request the request's rows, drafts and sampling parameters
/// @param[in] key the request's random stream (seed and request id)
/// @return the outcome (bad rows are reported in its status, never as UB)
/// @par Complexity
/// As the policy's rule; O(V) per row pass.
template <class Policy, class TT, class TD>
verify::chain_outcome
verify_chain(const Policy& policy, const verify::chain_request<TT, TD>& request, rng_key key) {
  SPECDEC_CHECK(chain_verification_policy, Policy);
  return policy.verify_chain(serial_executor{}, request, philox_uniforms{key});
}

/// @brief Verifies a ragged batch on the host.
///
/// Every request is verified independently; a request with bad rows (NaN, zero mass, bad token
/// id, q(x) = 0) gets its flags in `out.status[b]` and a defined result, and the others are
/// unaffected.
/// @tparam Policy a chain_verification_policy
/// @tparam TT target element type (a row_element)
/// @tparam TD draft element type (a row_element)
/// @param[in] policy the rule
/// @param[in] batch the ragged batch (see verify::chain_batch)
/// @param[out] out per-request results (the buffers it points to are written)
/// @return errc::ok when every request was clean; a shape or parameter error (nothing written);
///   or, when all shapes were fine but some request had bad input, the errc of the first such
///   request in batch order (all results written).
/// @par Complexity
/// Sum over requests of the rule's cost.
template <class Policy, class TT, class TD>
[[nodiscard]] status verify_chain_batch(const Policy& policy,
                                        const verify::chain_batch<TT, TD>& batch,
                                        const verify::chain_batch_output& out) {
  SPECDEC_CHECK(chain_verification_policy, Policy);
  const status valid = verify::validate(batch, out, Policy::needs_draft_rows);
  if (!valid.ok())
    return valid;
  status first_bad{};
  const serial_executor ex{};
  for (index_t b = 0; b < batch.batch; ++b) {
    const verify::chain_outcome o =
        policy.verify_chain(ex, batch.request(b, Policy::needs_draft_rows), batch.uniforms(b));
    out.accepted[b] = o.accepted;
    out.next[b] = o.next;
    out.status[b] = o.status;
    if (first_bad.ok() && !o.status.ok())
      first_bad = status{o.status.to_errc()};
  }
  return first_bad;
}

} // namespace cpu

SPECDEC_NAMESPACE_END
