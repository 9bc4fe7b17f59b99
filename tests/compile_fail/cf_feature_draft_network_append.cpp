// SPDX-License-Identifier: Apache-2.0
// feature_draft_network: a network with its cache accessors but no append names the member.
// expected-error: feature_draft_network: N needs 'status append.row_view<const feature_draft_step>,
// matrix_view<float> logits, matrix_view<float> hidden.'
#include <specdec/propose/concepts.hpp>

#include <cstdint>

namespace {

struct no_append {
  specdec::row_view<const std::int32_t> feature_layers() const {
    return {};
  }
  specdec::index_t hidden_size() const {
    return 4;
  }
  specdec::index_t feature_size() const {
    return 8;
  }
  specdec::index_t vocab_size() const {
    return 16;
  }
  specdec::index_t size() const {
    return 0;
  }
  specdec::index_t capacity() const {
    return 64;
  }
  specdec::status truncate(specdec::index_t) {
    return {};
  }
#if !defined(SPECDEC_EXPECT_FAIL)
  specdec::status append(specdec::row_view<const specdec::feature_draft_step>,
                         specdec::matrix_view<float>,
                         specdec::matrix_view<float>) {
    return {};
  }
#endif
};

} // namespace

SPECDEC_CHECK(feature_draft_network, no_append);
