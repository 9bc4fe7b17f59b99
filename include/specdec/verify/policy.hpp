// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The `chain_verification_policy` concept, its diagnostics, and the list of policies.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/verify/chain.hpp>

#include <concepts>

SPECDEC_NAMESPACE_BEGIN

namespace verify {

namespace detail {
/// An executor archetype used only to check the policy concept.
struct executor_archetype {
  template <class Raw>
  SPECDEC_HD row_scan_result scan_row(index_t, Raw, weight_mode, float) const {
    return {};
  }
  template <class F>
  SPECDEC_HD float sum(index_t, F) const {
    return 0.0f;
  }
  template <class F>
  SPECDEC_HD index_t sample_inverse_cdf(index_t, F, float) const {
    return 0;
  }
  template <class Raw, class G>
  SPECDEC_HD threshold_probe_result threshold_probe(index_t, Raw, G, float, float) const {
    return {};
  }
  template <class Raw, class G, class Visit>
  SPECDEC_HD auto radix_histogram(index_t, Raw, G, float, std::uint32_t, int, Visit visit) const {
    const float bins[256] = {};
    return visit(static_cast<const float*>(bins));
  }
};
} // namespace detail

/// @brief A chain verification policy: a type with
/// `chain_outcome verify_chain(const E&, const chain_request<TT, TD>&, const U&) const` for any
/// row_executor E and uniform_source U, and `static constexpr bool needs_draft_rows`.
///
/// Checked: `verify_chain` on a `const P&` with an executor archetype, a
/// `chain_request<float, float>` and `philox_uniforms` returns exactly chain_outcome, and
/// `P::needs_draft_rows` converts to bool.
///
/// Semantics: the outcome depends only on the request's rows, tokens, parameters and the
/// uniforms drawn (never on a batch slot); exactly one extra token is emitted; a policy that
/// declares `lossless = true` emits tokens distributed exactly as the processed target.
/// @tparam P the candidate policy type
template <class P>
concept chain_verification_policy = requires(const P& p,
                                             const detail::executor_archetype& ex,
                                             const chain_request<float, float>& r,
                                             const philox_uniforms& u) {
  { p.verify_chain(ex, r, u) } -> std::same_as<chain_outcome>;
  { P::needs_draft_rows } -> std::convertible_to<bool>;
};

} // namespace verify

namespace diag {

/// @brief Checks `verify::chain_verification_policy` clause by clause.
/// @tparam P the type to check against verify::chain_verification_policy
/// @return true when satisfied (else a static_assert fires).
template <class P>
consteval bool check_chain_verification_policy() {
  static_assert(
      requires(const P& p,
               const verify::detail::executor_archetype& ex,
               const verify::chain_request<float, float>& r,
               const philox_uniforms& u) {
        { p.verify_chain(ex, r, u) } -> std::same_as<verify::chain_outcome>;
      },
      "chain_verification_policy: P needs 'template <row_executor E, class TT, class TD, "
      "uniform_source U> chain_outcome verify_chain(const E&, const chain_request<TT, TD>&, "
      "const U&) const'");
  static_assert(
      requires {
        { P::needs_draft_rows } -> std::convertible_to<bool>;
      },
      "chain_verification_policy: P needs 'static constexpr bool needs_draft_rows'");
  return true;
}

} // namespace diag

SPECDEC_NAMESPACE_END
