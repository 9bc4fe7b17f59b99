// SPDX-License-Identifier: Apache-2.0
// feature_proposer: a stateful proposer that does not say which layers it wants.
// expected-error: feature_proposer: P needs 'row_view<const std::int32_t> feature_layers.. const'
#include <specdec/propose/concepts.hpp>

#include <cstdint>

namespace {

struct no_layers {
  specdec::status propose(const specdec::draft_request&, specdec::draft_block&) {
    return {};
  }
  int max_draft_len() const {
    return 1;
  }
  specdec::status begin(std::uint64_t, specdec::row_view<const specdec::token_id>) {
    return {};
  }
  specdec::status observe(const specdec::round_outcome&) {
    return {};
  }
  void end(std::uint64_t) {}
#if !defined(SPECDEC_EXPECT_FAIL)
  specdec::row_view<const std::int32_t> feature_layers() const {
    return {};
  }
#endif
};

} // namespace

SPECDEC_CHECK(feature_proposer, no_layers);
