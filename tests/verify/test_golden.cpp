// SPDX-License-Identifier: Apache-2.0
// Golden cases G1-G3 of the DSpark specification (shared/specs/dspark.md, section 13).

#include <specdec/specdec.hpp>

#include <catch2/catch.hpp>

#include "support/scripted.hpp"
#include <vector>

using namespace specdec;
using specdec_test::make_request;
using specdec_test::scripted_uniforms;

namespace {
const cpu::serial_executor ex{};

template <class T>
sampling::dist_row<T> row_of(const std::vector<T>& v, distribution_kind k) {
  return {v.data(), static_cast<index_t>(v.size()), k};
}
} // namespace

TEST_CASE("G1: greedy probs are one-hot at the first argmax", "[golden][sampling]") {
  sampling::sampling_params greedy;
  greedy.temperature = 0.0f;
  for (const std::vector<float>& logits :
       {std::vector<float>{2, 1, 0.5f, 0}, std::vector<float>{1, 1, 0, 0}}) {
    const auto row = row_of(logits, distribution_kind::logits);
    const auto st = sampling::prepare_row(ex, row, greedy);
    REQUIRE(st.ok());
    CHECK(sampling::prob_at(row, st, 0) == 1.0f);
    for (index_t i = 1; i < 4; ++i)
      CHECK(sampling::prob_at(row, st, i) == 0.0f);
  }
}

TEST_CASE("G1: inverse CDF returns the first index whose cumulative sum exceeds u",
          "[golden][sampling]") {
  const std::vector<float> p{0.1f, 0.1f, 0.1f, 0.7f};
  const auto row = row_of(p, distribution_kind::probabilities);
  const auto st = sampling::prepare_row(ex, row, sampling::sampling_params{});
  REQUIRE(st.ok());
  CHECK(sampling::sample_row(ex, row, st, 0.1f) == 1);
  CHECK(sampling::sample_row(ex, row, st, 0.95f) == 3);
}

namespace {
// G2 data: V = 4, three drafts x = [0, 1, 3].
const std::vector<float> g2_draft{.5f, .3f, .1f, .1f, .2f, .6f, .1f, .1f, .1f, .1f, .4f, .4f};
const std::vector<float> g2_target{
    .7f, .1f, .1f, .1f, .1f, .3f, .5f, .1f, .4f, .3f, .2f, .1f, .1f, .1f, .1f, .7f};
const std::vector<token_id> g2_tokens{0, 1, 3};
} // namespace

TEST_CASE("G2: rejection sampling follows the golden table", "[golden][verify][chain][cpu]") {
  const auto r = make_request(g2_target, g2_draft, g2_tokens, 4, distribution_kind::probabilities);
  struct row {
    std::vector<float> u;
    float u_final;
    std::int32_t n;
    token_id next;
  };
  const std::vector<row> table{{{.9f, .4f, .1f}, 0.1f, 3, 1},
                               {{.9f, .4f, .1f}, 0.95f, 3, 3},
                               {{.9f, .6f, .1f}, 0.5f, 1, 2},
                               {{.9f, .6f, .1f}, 0.0f, 1, 2},
                               {{.9f, .4f, .3f}, 0.1f, 2, 0},
                               {{.9f, .4f, .3f}, 0.95f, 2, 1}};
  for (const auto& t : table) {
    const auto o =
        verify::rejection_sampling{}.verify_chain(ex, r, scripted_uniforms{t.u, t.u_final, 0});
    CHECK(o.accepted == t.n);
    CHECK(o.next == t.next);
    CHECK(o.status.ok());
  }
}

TEST_CASE("G2: empty proposal draws the bonus from target row 0", "[golden][verify][chain][cpu]") {
  const std::vector<token_id> none;
  const auto r = make_request(g2_target, g2_draft, none, 4, distribution_kind::probabilities);
  const auto o = verify::rejection_sampling{}.verify_chain(ex, r, scripted_uniforms{{}, 0.75f, 0});
  CHECK(o.accepted == 0);
  CHECK(o.next == 1);
}

TEST_CASE("G3: greedy verification accepts one draft and emits the target argmax",
          "[golden][verify][chain][cpu]") {
  const std::vector<float> target{2, 1, .5f, 0, .1f, .3f, 2.2f, 0, 1, 1, 0, 0, 0, 0, 0, 3};
  const std::vector<float> draft{3, 0, 0, 0, 0, 1, .5f, 0, 0, 0, 0, 1};
  const std::vector<token_id> x{0, 1, 3};
  sampling::sampling_params greedy;
  greedy.temperature = 0.0f;
  const auto r = make_request(target, draft, x, 4, distribution_kind::logits, greedy);
  for (float u : {0.0f, 0.3f, 0.99f}) {
    const scripted_uniforms us{{u, u, u}, u, 0};
    for (const auto& o : {verify::greedy{}.verify_chain(ex, r, us),
                          verify::rejection_sampling{}.verify_chain(ex, r, us),
                          verify::one_hot_rejection{}.verify_chain(ex, r, us),
                          verify::block_verification{}.verify_chain(ex, r, us)}) {
      CHECK(o.accepted == 1);
      CHECK(o.next == 2);
    }
  }
}
