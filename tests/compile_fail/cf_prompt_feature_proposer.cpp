// SPDX-License-Identifier: Apache-2.0
// A feature proposer whose observe_prompt has the wrong signature (a mutable view): without the
// check the loop would silently never hand it the prompt's features; the decoder says so.
// expected-error: the proposer has an observe_prompt member that is not
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/kv/contiguous_cache.hpp>
#include <specdec/verify/greedy.hpp>

#include <cstdint>
#include <vector>

namespace {

struct target {
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
  specdec::status score_features(const specdec::score_request&,
                                 specdec::matrix_view<float>,
                                 const specdec::feature_request&) {
    return {};
  }
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
#if defined(SPECDEC_EXPECT_FAIL)
  specdec::status observe_prompt(std::uint64_t, specdec::index_t, specdec::matrix_view<float>) {
    return {};
  }
#else
  specdec::status
  observe_prompt(std::uint64_t, specdec::index_t, specdec::matrix_view<const float>) {
    return {};
  }
#endif
};

} // namespace

/// Instantiates generate(), whose prefill checks the proposer.
[[maybe_unused]] specdec::status
instantiate(target& t, specdec::kv::contiguous_cache<float>& c, fed_proposer& p) {
  specdec::decode::speculative_decoder<target,
                                       specdec::kv::contiguous_cache<float>,
                                       fed_proposer,
                                       specdec::verify::greedy>
      dec(t, c, p);
  const std::vector<specdec::token_id> prompt{1, 2};
  specdec::decode::decode_result r;
  return dec.generate(prompt, {}, r);
}
