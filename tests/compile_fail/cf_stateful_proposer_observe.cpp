// SPDX-License-Identifier: Apache-2.0
// stateful_proposer: a proposer with begin / end but no observe names the missing member.
// expected-error: stateful_proposer: P needs 'status observe.const round_outcome&.'
#include <specdec/propose/concepts.hpp>

#include <cstdint>

namespace {

struct half_stateful {
  specdec::status propose(const specdec::draft_request&, specdec::draft_block&) {
    return {};
  }
  int max_draft_len() const {
    return 1;
  }
  specdec::status begin(std::uint64_t, specdec::row_view<const specdec::token_id>) {
    return {};
  }
#if !defined(SPECDEC_EXPECT_FAIL)
  specdec::status observe(const specdec::round_outcome&) {
    return {};
  }
#endif
  void end(std::uint64_t) {}
};

} // namespace

SPECDEC_CHECK(stateful_proposer, half_stateful);
