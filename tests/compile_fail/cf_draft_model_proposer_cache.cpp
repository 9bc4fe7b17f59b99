// SPDX-License-Identifier: Apache-2.0
// draft_model_proposer: the draft model's cache must roll back to the accepted prefix.
// expected-error: kv_cache: C needs '\[\[nodiscard\]\] status rollback.index_t new_length.'
#include <specdec/kv/concepts.hpp>
#include <specdec/propose/draft_model.hpp>

namespace {

struct model {
  specdec::status score(const specdec::score_request&, specdec::matrix_view<float>) {
    return {};
  }
  specdec::index_t vocab_size() const {
    return 8;
  }
};

struct append_only_cache {
  static constexpr specdec::kv::rollback_class rollback_kind = specdec::kv::rollback_class::partial;
#if !defined(SPECDEC_EXPECT_FAIL)
  specdec::status rollback(specdec::index_t) {
    return {};
  }
#endif
  specdec::index_t length() const {
    return 0;
  }
  specdec::index_t capacity() const {
    return 16;
  }
};

} // namespace

/// Instantiates the proposer class.
[[maybe_unused]] void instantiate(model& m, append_only_cache& c) {
  specdec::propose::draft_model_proposer<model, append_only_cache> p(m, c);
  (void)p;
}
