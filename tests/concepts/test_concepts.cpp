// SPDX-License-Identifier: Apache-2.0
// Conformance of the library's own models and of minimal archetypes to the public concepts,
// and rejection of types that miss a clause.

#include <specdec/specdec.hpp>

#include <catch2/catch.hpp>

using namespace specdec;

namespace {

struct minimal_target {
  status score(const score_request&, matrix_view<float>) {
    return {};
  }
  index_t vocab_size() const {
    return 8;
  }
};
struct target_without_vocab {
  status score(const score_request&, matrix_view<float>) {
    return {};
  }
};
struct minimal_proposer {
  status propose(const draft_request&, draft_block& b) {
    b.length = 0;
    return {};
  }
  int max_draft_len() const {
    return 4;
  }
};
struct proposer_returning_int {
  int propose(const draft_request&, draft_block&) {
    return 0;
  }
  int max_draft_len() const {
    return 4;
  }
};
struct scripted {
  float operator()(index_t, draw_purpose, std::uint32_t = 0) const {
    return 0.5f;
  }
};
struct not_a_policy {
  int verify_chain() const {
    return 0;
  }
};

// The SPECDEC_CHECK macro compiles for conforming types.
SPECDEC_CHECK(target_model, minimal_target);
SPECDEC_CHECK(draft_proposer, minimal_proposer);
SPECDEC_CHECK(uniform_source, scripted);
SPECDEC_CHECK(row_executor, cpu::serial_executor);
SPECDEC_CHECK(chain_verification_policy, verify::rejection_sampling);

} // namespace

TEST_CASE("library models satisfy their concepts", "[concepts]") {
  STATIC_REQUIRE(row_executor<cpu::serial_executor>);
  STATIC_REQUIRE(uniform_source<philox_uniforms>);
  STATIC_REQUIRE(verify::chain_verification_policy<verify::greedy>);
  STATIC_REQUIRE(verify::chain_verification_policy<verify::rejection_sampling>);
  STATIC_REQUIRE(verify::chain_verification_policy<verify::one_hot_rejection>);
  STATIC_REQUIRE(verify::chain_verification_policy<verify::typical_acceptance>);
  STATIC_REQUIRE(verify::chain_verification_policy<verify::block_verification>);
  STATIC_REQUIRE(verify::chain_verification_policy<verify::one_hot_block_verification>);
}

TEST_CASE("archetypes: a missing or mistyped clause is rejected", "[concepts]") {
  STATIC_REQUIRE(target_model<minimal_target>);
  STATIC_REQUIRE_FALSE(target_model<target_without_vocab>);
  STATIC_REQUIRE(draft_proposer<minimal_proposer>);
  STATIC_REQUIRE_FALSE(draft_proposer<proposer_returning_int>);
  STATIC_REQUIRE(uniform_source<scripted>);
  STATIC_REQUIRE_FALSE(uniform_source<int>);
  STATIC_REQUIRE_FALSE(row_executor<int>);
  STATIC_REQUIRE_FALSE(verify::chain_verification_policy<not_a_policy>);
}
