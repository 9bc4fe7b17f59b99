// SPDX-License-Identifier: Apache-2.0
// A decoder whose proposer is fed by target features (feature_proposer) over a target that
// returns only logits: the decoder says what the target lacks.
// expected-error: the proposer is fed by target features .feature_proposer., but the target does
// not return them
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/kv/contiguous_cache.hpp>
#include <specdec/verify/greedy.hpp>

#include <cstdint>

namespace {

struct target {
  specdec::status score(const specdec::score_request&, specdec::matrix_view<float>) {
    return {};
  }
  specdec::index_t vocab_size() const {
    return 8;
  }
#if !defined(SPECDEC_EXPECT_FAIL)
  int num_layers() const {
    return 2;
  }
  specdec::index_t hidden_size() const {
    return 4;
  }
  specdec::status score_features(const specdec::score_request&,
                                 specdec::matrix_view<float>,
                                 const specdec::feature_request&) {
    return {};
  }
#endif
};

struct fed_proposer {
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
  specdec::row_view<const std::int32_t> feature_layers() const {
    return {};
  }
};

} // namespace

/// Instantiates the decoder class.
[[maybe_unused]] void
instantiate(target& t, specdec::kv::contiguous_cache<float>& c, fed_proposer& p) {
  specdec::decode::speculative_decoder<target,
                                       specdec::kv::contiguous_cache<float>,
                                       fed_proposer,
                                       specdec::verify::greedy>
      dec(t, c, p);
  (void)dec;
}
