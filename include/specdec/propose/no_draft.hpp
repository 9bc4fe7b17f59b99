// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief The empty proposer: with it the speculative loop is plain autoregressive decoding.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/status.hpp>
#include <specdec/propose/concepts.hpp>

SPECDEC_NAMESPACE_BEGIN

namespace propose {

/// @brief Drafts nothing. Plain decoding through the same loop, as the baseline of every
/// comparison.
struct no_drafter {
  /// @brief Sets b.length = 0. O(1).
  /// @param[out] b its length is set to 0
  /// @return ok
  [[nodiscard]] status propose(const draft_request& /*r*/, draft_block& b) const noexcept {
    b.length = 0;
    return status{};
  }
  /// @brief 0: the loop never asks for drafts. O(1).
  /// @return 0
  [[nodiscard]] int max_draft_len() const noexcept {
    return 0;
  }
};

static_assert(draft_proposer<no_drafter>);

} // namespace propose

SPECDEC_NAMESPACE_END
