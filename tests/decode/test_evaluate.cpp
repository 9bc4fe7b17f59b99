// SPDX-License-Identifier: Apache-2.0
// The evaluation harness (decode/evaluate.hpp): its round accounting against the decoder's own
// counters and against the reference definitions of round_metrics, the per-prompt seeds, and the
// cost-model projection against its formula.
#include <specdec/decode/evaluate.hpp>
#include <specdec/propose/no_draft.hpp>
#include <specdec/sched/draft_length.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/rejection.hpp>

#include <catch2/catch.hpp>

#include "support/toy_target.hpp"
#include <cmath>
#include <vector>

namespace {

using specdec::index_t;
using specdec::token_id;
namespace decode = specdec::decode;
using specdec_test::toy_target;

const std::vector<std::vector<token_id>> prompts{{1, 7, 3}, {1, 2}, {4, 9, 9, 5}};

decode::decode_config config(float temperature) {
  decode::decode_config c;
  c.max_new_tokens = 40;
  c.params.temperature = temperature;
  c.seed = 11;
  c.max_draft = 4;
  return c;
}

} // namespace

TEST_CASE("evaluate: plain decoding is one token per round, every round without drafts",
          "[decode][evaluate]") {
  toy_target target(256);
  specdec::propose::no_drafter none;
  decode::evaluation e;
  REQUIRE(decode::evaluate(target,
                           target.cache,
                           none,
                           specdec::verify::greedy{},
                           specdec::sched::fixed_draft_length{0},
                           prompts,
                           config(0.0f),
                           e)
              .ok());
  CHECK(e.prompts == 3);
  CHECK(e.tokens == 120);
  CHECK(e.rounds.rounds() == 120);
  CHECK(e.rounds.tau_mean() == 1.0);
  REQUIRE(e.proposals.size() == 1);
  CHECK(e.proposals[0] == 120);
  // On any cost table, plain rounds project to exactly 1.
  specdec::sched::step_costs c;
  c.verify = {2.0, 3.0};
  c.draft_fixed = 0.5;
  CHECK(decode::projected_speedup(e, c) == 1.0);
}

TEST_CASE("evaluate: rounds and tokens agree with each prompt decoded alone (same seeds)",
          "[decode][evaluate]") {
  for (const float t : {0.7f, 1.0f}) {
    CAPTURE(t);
    toy_target target(256);
    specdec_test::toy_dense_drafter d;
    d.max_draft = 4;
    decode::evaluation e;
    std::int64_t callbacks = 0;
    decode::decode_config cfg = config(t);
    REQUIRE(decode::evaluate(target,
                             target.cache,
                             d,
                             specdec::verify::rejection_sampling{},
                             specdec::sched::fixed_draft_length{4},
                             prompts,
                             cfg,
                             e,
                             [&](const decode::step_record&) { ++callbacks; })
                .ok());
    // The same prompts one by one through the decoder, seeds as documented.
    std::int64_t steps = 0, drafted = 0, accepted = 0, tokens = 0;
    decode::round_metrics ref;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      toy_target t2(256);
      specdec_test::toy_dense_drafter d2;
      d2.max_draft = 4;
      decode::speculative_decoder dec(t2,
                                      t2.cache,
                                      d2,
                                      specdec::verify::rejection_sampling{},
                                      specdec::sched::fixed_draft_length{4});
      decode::decode_config c = cfg;
      c.seed = cfg.seed + i;
      c.request_id = i;
      c.on_step = [&](const decode::step_record& r) {
        REQUIRE(ref.add(r.drafted, r.accepted, false).ok());
      };
      decode::decode_result r;
      REQUIRE(dec.generate(prompts[i], c, r).ok());
      steps += r.stats.steps;
      drafted += r.stats.drafted;
      accepted += r.stats.accepted;
      tokens += static_cast<std::int64_t>(r.tokens.size());
    }
    CHECK(callbacks == steps);
    CHECK(e.rounds.rounds() == steps);
    CHECK(e.rounds.proposed_total() == drafted);
    CHECK(e.rounds.accepted_total() == accepted);
    CHECK(e.tokens == tokens);
    CHECK(e.rounds.tau_total() == accepted + steps);
    for (index_t k = 1; k <= 4; ++k) {
      CHECK(e.rounds.accept_rate_at(k - 1) == ref.accept_rate_at(k - 1));
      CHECK(e.rounds.conditional_acceptance(k) == ref.conditional_acceptance(k));
    }
    std::int64_t hist_rounds = 0, hist_drafts = 0;
    for (std::size_t k = 0; k < e.proposals.size(); ++k) {
      hist_rounds += e.proposals[k];
      hist_drafts += static_cast<std::int64_t>(k) * e.proposals[k];
    }
    CHECK(hist_rounds == steps);
    CHECK(hist_drafts == drafted);
    CHECK(e.seconds > 0.0);
    CHECK(e.seconds_draft <= e.seconds);
  }
}

TEST_CASE("projected_speedup: sum tau x cost(0) / sum cost(P_i); NaN outside the table",
          "[decode][evaluate]") {
  decode::evaluation e;
  // Three rounds: P = 5, n = 2; P = 5, n = 5; P = 3, n = 0.
  REQUIRE(e.add_round(5, 2).ok());
  REQUIRE(e.add_round(5, 5).ok());
  REQUIRE(e.add_round(3, 0).ok());
  CHECK(e.rounds.tau_total() == 3 + 6 + 1);
  specdec::sched::step_costs c;
  c.verify = {1.0, 1.1, 1.2, 1.3, 1.4, 1.5};
  c.draft_fixed = 0.2;
  c.draft_per_token = 0.05;
  const double cost5 = 1.5 + 0.2 + 5 * 0.05;
  const double cost3 = 1.3 + 0.2 + 3 * 0.05;
  CHECK(decode::projected_speedup(e, c) == Approx(10.0 * 1.0 / (2 * cost5 + cost3)));
  // A flat table (an accelerator below its compute bound) and free drafting: the speed-up is tau.
  c.verify.assign(6, 1.0);
  c.draft_fixed = 0.0;
  c.draft_per_token = 0.0;
  CHECK(decode::projected_speedup(e, c) == Approx(10.0 / 3.0));
  // A round longer than the table, an invalid table, no rounds: NaN.
  c.verify.assign(4, 1.0);
  CHECK(std::isnan(decode::projected_speedup(e, c)));
  c.verify.assign(6, 0.0);
  CHECK(std::isnan(decode::projected_speedup(e, c)));
  c.verify.assign(6, 1.0);
  CHECK(std::isnan(decode::projected_speedup(decode::evaluation{}, c)));
  // A bad round is refused and changes nothing.
  CHECK_FALSE(e.add_round(2, 3).ok());
  CHECK(e.rounds.rounds() == 3);
  CHECK(e.proposals.size() == 6);
}
