// SPDX-License-Identifier: Apache-2.0
// feature_target_model: a target with hidden_size() but no score_features names the member.
// expected-error: feature_target_model: M needs 'status score_features.const score_request&,
// matrix_view<float> logits, const feature_request&.'
#include <specdec/core/diagnostics.hpp>

namespace {

struct logits_only {
  specdec::status score(const specdec::score_request&, specdec::matrix_view<float>) {
    return {};
  }
  specdec::index_t vocab_size() const {
    return 8;
  }
  int num_layers() const {
    return 2;
  }
  specdec::index_t hidden_size() const {
    return 4;
  }
#if !defined(SPECDEC_EXPECT_FAIL)
  specdec::status score_features(const specdec::score_request&,
                                 specdec::matrix_view<float>,
                                 const specdec::feature_request&) {
    return {};
  }
#endif
};

} // namespace

SPECDEC_CHECK(feature_target_model, logits_only);
