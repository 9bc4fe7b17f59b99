// SPDX-License-Identifier: Apache-2.0
//
// The cost-aware draft-length controller never pays for drafting that cannot win (issue 17:
// `--draft-len auto` must not lose to plain decoding), on scripted costs and outcomes (no clock):
//   - a cost curve on which even perfect acceptance cannot beat plain decoding by the margin
//     min_gain: the controller never drafts and never probes, may_draft() is false;
//   - the margin: a length whose predicted gain is below min_gain is not drafted;
//   - failed probes back off exponentially (interval doubled up to max_explore_interval), a
//     probe that makes the bucket draft resets the interval;
//   - may_draft() with exploration off answers per bucket and per available length;
//   - explore_budget stretches the first probe interval to the probe's cost;
//   - the decoder skips a bucketed proposer's run when may_draft() is false, and stays exact;
//   - profile_verify_costs with a horizon scores at the prompt's end and at the horizon (clamped
//     to the cache), leaves the cache holding the prefix minus its last token, refuses bad input.

#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/propose/no_draft.hpp>
#include <specdec/sched/cost_profile.hpp>
#include <specdec/sched/draft_length.hpp>
#include <specdec/verify/greedy.hpp>

#include <catch2/catch.hpp>

#include "support/toy_target.hpp"
#include <cstdint>
#include <vector>

namespace {

using specdec::errc;
using specdec::index_t;
using specdec::status;
using specdec::token_id;
using specdec::sched::adaptive_config;
using specdec::sched::adaptive_draft_length;
using specdec::sched::step_costs;

adaptive_config one_bucket(int explore, int max_explore, double min_gain = 1.05) {
  adaptive_config c;
  c.buckets = 1;
  c.prior_accept = 0.5;
  c.prior_weight = 2.0;
  c.explore_interval = explore;
  c.max_explore_interval = max_explore;
  c.min_gain = min_gain;
  return c;
}

// Steps at which choose() probed, each probe recorded as rejected (or accepted).
std::vector<int> probe_steps(adaptive_draft_length& c, int steps, bool accept) {
  std::vector<int> at;
  for (int i = 1; i <= steps; ++i) {
    const int k = c.choose(0, 8);
    if (k > 0) {
      at.push_back(i);
      c.record(0, k, accept ? k : 0);
    }
  }
  return at;
}

} // namespace

TEST_CASE("adaptive draft length: no drafting and no probe where drafting cannot pay",
          "[sched][cpu]") {
  // c(T) about linear and drafting a token costs a fifth of a step: even E(k) = k + 1 loses.
  adaptive_draft_length c(one_bucket(4, 4096));
  REQUIRE(c.set_costs({{1.0, 1.93, 2.9, 3.8, 4.7}, 0.0, 0.2}).ok());
  CHECK_FALSE(c.drafting_can_pay());
  CHECK_FALSE(c.may_draft(4));
  for (int i = 0; i < 10000; ++i)
    REQUIRE(c.choose(0, 4) == 0);
  // Recorded outcomes, however good, cannot make it draft.
  for (int i = 0; i < 100; ++i)
    c.record(0, 4, 4);
  CHECK(c.choose(0, 4) == 0);
  // The same curve without the draft cost can pay at perfect acceptance (5 / 4.7 > 1.05).
  REQUIRE(c.set_costs({{1.0, 1.93, 2.9, 3.8, 4.7}, 0.0, 0.0}).ok());
  CHECK(c.drafting_can_pay());
  CHECK(c.may_draft(4));
  // A tie at perfect acceptance (min_gain 1, linear c) still probes: only a strict loss stops it.
  adaptive_draft_length tie(one_bucket(4, 4, 1.0));
  REQUIRE(tie.set_costs({{1.0, 2.0, 3.0}, 0.0, 0.0}).ok());
  CHECK(tie.drafting_can_pay());
}

TEST_CASE("adaptive draft length: the margin min_gain", "[sched][cpu]") {
  // k = 1 at alpha = 0.95: E / C = 1.95 / 1.93 = 1.0104, a 1% predicted gain.
  adaptive_config cfg = one_bucket(0, 0, 1.0);
  cfg.prior_accept = 0.95;
  cfg.prior_weight = 1e9;
  adaptive_draft_length loose(cfg);
  REQUIRE(loose.set_costs({{1.0, 1.93}, 0.0, 0.0}).ok());
  CHECK(loose.choose(0, 1) == 1);
  cfg.min_gain = 1.05; // the default
  adaptive_draft_length guarded(cfg);
  REQUIRE(guarded.set_costs({{1.0, 1.93}, 0.0, 0.0}).ok());
  CHECK(guarded.choose(0, 1) == 0);
  CHECK(adaptive_config{}.min_gain == Approx(1.05));
}

TEST_CASE("adaptive draft length: failed probes back off exponentially", "[sched][cpu]") {
  // Drafting pays only with high acceptance: c(T) grows by 0.6 per token, so alpha = 0.5 (the
  // prior) loses at every k while perfect acceptance wins (9 / 5.8 at k = 8).
  const step_costs costs{{1.0, 1.6, 2.2, 2.8, 3.4, 4.0, 4.6, 5.2, 5.8}, 0.0, 0.0};
  SECTION("every probe rejected: intervals 4, 8, 16, 32, then 32") {
    adaptive_draft_length c(one_bucket(4, 32));
    REQUIRE(c.set_costs(costs).ok());
    CHECK(c.explore_interval(0) == 4);
    const std::vector<int> at = probe_steps(c, 4 + 8 + 16 + 32 + 32 + 32, false);
    CHECK(at == std::vector<int>{4, 12, 28, 60, 92, 124});
    CHECK(c.explore_interval(0) == 32);
  }
  SECTION("the learning cost vanishes: probes grow like log(steps)") {
    adaptive_draft_length c(one_bucket(64, 1 << 20));
    REQUIRE(c.set_costs(costs).ok());
    const std::vector<int> at = probe_steps(c, 100000, false);
    CHECK(at.size() == 10); // 64 (2^10 - 1) <= 100000 < 64 (2^11 - 1)
  }
  SECTION("max_explore_interval <= explore_interval keeps the interval fixed") {
    adaptive_draft_length c(one_bucket(10, 10));
    REQUIRE(c.set_costs(costs).ok());
    CHECK(probe_steps(c, 100, false).size() == 10);
  }
  SECTION("a probe after which the bucket drafts resets the interval") {
    adaptive_draft_length c(one_bucket(4, 1024));
    REQUIRE(c.set_costs(costs).ok());
    (void)probe_steps(c, 28, false); // probes at 4, 12, 28
    CHECK(c.explore_interval(0) == 32);
    // The regime changes: every draft is accepted. Probes (one token each) are all accepted; the
    // bucket starts drafting once the evidence beats the prior and the interval is reset.
    int drafted_steps = 0;
    for (int i = 0; i < 100000 && drafted_steps < 50; ++i) {
      const int k = c.choose(0, 8);
      if (k > 0) {
        ++drafted_steps;
        c.record(0, k, k);
      }
    }
    CHECK(drafted_steps == 50);
    CHECK(c.explore_interval(0) == 4);
    CHECK(c.choose(0, 8) > 0);
  }
}

TEST_CASE("adaptive draft length: may_draft with exploration off", "[sched][cpu]") {
  adaptive_config cfg;
  cfg.buckets = 3;
  cfg.explore_interval = 0;
  cfg.prior_by_bucket = {0.0, 0.5, 0.999};
  cfg.prior_weight = 2.0;
  adaptive_draft_length c(cfg);
  CHECK_FALSE(c.may_draft(8)); // no costs: never drafts
  // k = 1 loses at alpha <= 0.999 (2 / 2.05 < 1); k = 2 pays for alpha near 1 (3 / 2.1).
  REQUIRE(c.set_costs({{1.0, 2.05, 2.1, 2.15}, 0.0, 0.0}).ok());
  CHECK(c.may_draft(3));
  CHECK(c.may_draft(2));
  CHECK_FALSE(c.may_draft(1)); // the paying length does not fit
  CHECK_FALSE(c.may_draft(0));
  CHECK(c.choose(2, 3) >= 2);
  CHECK(c.choose(1, 3) == 0);
  // Bucket 2 is rejected from now on: once its estimate drops, no bucket drafts.
  for (int i = 0; i < 20; ++i)
    c.record(2, 2, 0);
  CHECK(c.choose(2, 3) == 0);
  CHECK_FALSE(c.may_draft(3));
  // It comes back when the evidence does (fed by a caller that drafts anyway).
  for (int i = 0; i < 400; ++i)
    c.record(2, 3, 3);
  CHECK(c.may_draft(3));
  // reset_statistics() returns to the priors.
  c.reset_statistics();
  CHECK(c.may_draft(3));
}

TEST_CASE("adaptive draft length: explore_budget spaces the probes by their cost", "[sched][cpu]") {
  // A probe costs C(1) - C(0) = 0.5 of a step; a budget of 1/16 of plain decoding's cost allows
  // one probe per 8 steps at most, so the first interval is 8 rather than explore_interval = 4.
  const step_costs costly{{1.0, 1.5}, 0.0, 0.0};
  adaptive_config cfg = one_bucket(4, 1 << 20);
  cfg.explore_budget = 0.0625;
  SECTION("a costly probe: the first interval is stretched, then doubles as before") {
    adaptive_draft_length c(cfg);
    REQUIRE(c.set_costs(costly).ok());
    REQUIRE(c.drafting_can_pay()); // 2 / 1.5 beats the margin at perfect acceptance
    CHECK(c.explore_interval(0) == 8);
    CHECK(probe_steps(c, 8 + 16 + 32, false) == std::vector<int>{8, 24, 56});
    c.reset_statistics();
    CHECK(c.explore_interval(0) == 8);
  }
  SECTION("a cheap probe keeps explore_interval") {
    adaptive_draft_length c(cfg);
    REQUIRE(c.set_costs({{1.0, 1.125}, 0.0, 0.0}).ok()); // 0.125 / 0.0625 = 2 < 4
    CHECK(c.explore_interval(0) == 4);
  }
  SECTION("drafting costs count in the probe's cost") {
    adaptive_draft_length c(cfg);
    REQUIRE(c.set_costs({{1.0, 1.25}, 0.25, 0.5}).ok()); // C(1) - C(0) = 1: 16 steps
    CHECK(c.explore_interval(0) == 16);
  }
  SECTION("no budget: explore_interval as before") {
    adaptive_draft_length c(one_bucket(4, 1 << 20));
    REQUIRE(c.set_costs(costly).ok());
    CHECK(c.explore_interval(0) == 4);
    CHECK(probe_steps(c, 4 + 8 + 16, false) == std::vector<int>{4, 12, 28});
  }
}

namespace {

// A bucketed one-hot drafter (the target's greedy continuation, every third draft corrupted)
// that counts its runs.
struct counting_bucketed : specdec_test::toy_oracle_drafter {
  int calls = 0;
  status propose(const specdec::draft_request& r, specdec::draft_block& b) {
    ++calls;
    return toy_oracle_drafter::propose(r, b);
  }
  int draft_bucket() const {
    return 0;
  }
};

template <class Proposer, class Length>
specdec::decode::decode_result decode(Proposer& p, Length length) {
  specdec_test::toy_target target(512);
  specdec::decode::speculative_decoder dec(
      target, target.cache, p, specdec::verify::greedy{}, length);
  specdec::decode::decode_config cfg;
  cfg.max_new_tokens = 200;
  cfg.params.temperature = 0.0f;
  specdec::decode::decode_result out;
  REQUIRE(dec.generate(std::vector<token_id>{1, 7, 3}, cfg, out).ok());
  return out;
}

} // namespace

TEST_CASE("decoder: a policy's may_draft() spares the bucketed proposer, output unchanged",
          "[sched][decode][cpu]") {
  specdec::propose::no_drafter none;
  const auto plain = decode(none, specdec::sched::fixed_draft_length{0});
  REQUIRE(plain.tokens.size() == 200);

  // Linear costs and no exploration: no bucket drafts, so the proposer never runs.
  adaptive_config cfg = one_bucket(0, 0);
  adaptive_draft_length idle(cfg);
  REQUIRE(idle.set_costs({{1.0, 2.0, 3.0, 4.0}, 0.0, 0.0}).ok());
  counting_bucketed a;
  const auto r = decode(a, idle);
  CHECK(r.tokens == plain.tokens);
  CHECK(a.calls == 0);
  CHECK(r.stats.drafted == 0);

  // Cheap verification and a confident prior: the proposer runs and drafts are verified.
  cfg.prior_accept = 0.9;
  adaptive_draft_length busy(cfg);
  REQUIRE(busy.set_costs({{1.0, 1.05, 1.1, 1.15}, 0.0, 0.0}).ok());
  counting_bucketed b;
  const auto s = decode(b, busy);
  CHECK(s.tokens == plain.tokens);
  CHECK(b.calls > 0);
  CHECK(s.stats.drafted > 0);
}

namespace {

// The toy target, recording where each score() call starts and how many tokens it scores.
struct recording_target : specdec_test::toy_target {
  std::vector<std::pair<index_t, index_t>> calls;
  explicit recording_target(index_t capacity)
      : toy_target(capacity) {}
  status score(const specdec::score_request& r, specdec::matrix_view<float> out) {
    calls.emplace_back(r.start, r.tokens.size);
    return toy_target::score(r, out);
  }
};

} // namespace

TEST_CASE("profile_verify_costs: the horizon profiles the far context too", "[sched][cpu]") {
  const std::vector<token_id> prefix{1, 5, 9, 2};
  const int kmax = 3;
  const int reps = 2;
  const auto measured_at = [&](const recording_target& t, index_t pos) {
    int n = 0;
    for (const auto& c : t.calls)
      n += c.first == pos && c.second >= 1 && c.second <= kmax + 1 ? 1 : 0;
    return n;
  };
  SECTION("no horizon: the prompt's end only") {
    recording_target t(64);
    std::vector<double> sec;
    REQUIRE(specdec::sched::profile_verify_costs(t, t.cache, prefix, kmax, reps, sec).ok());
    CHECK(sec.size() == static_cast<std::size_t>(kmax) + 1);
    CHECK(measured_at(t, 3) == (reps + 1) * (kmax + 1));
    CHECK(t.cache.length() == 3);
  }
  SECTION("horizon inside the cache") {
    recording_target t(64);
    std::vector<double> sec;
    REQUIRE(specdec::sched::profile_verify_costs(t, t.cache, prefix, kmax, reps, sec, 40).ok());
    CHECK(sec.size() == static_cast<std::size_t>(kmax) + 1);
    for (double s : sec)
      CHECK(s > 0.0);
    CHECK(measured_at(t, 3) == (reps + 1) * (kmax + 1));
    CHECK(measured_at(t, 43) == (reps + 1) * (kmax + 1));
    CHECK(t.cache.length() == 3); // the prefix minus its last token, as without a horizon
    // The far rows were scored on a context that starts with the prefix.
    for (index_t i = 0; i < 3; ++i)
      CHECK(t.slot_token(i) == prefix[static_cast<std::size_t>(i)]);
  }
  SECTION("horizon past the cache: clamped so K + 1 tokens still fit") {
    recording_target t(64);
    std::vector<double> sec;
    REQUIRE(specdec::sched::profile_verify_costs(t, t.cache, prefix, kmax, reps, sec, 1000).ok());
    CHECK(measured_at(t, 64 - kmax - 1) == (reps + 1) * (kmax + 1));
    CHECK(t.cache.length() == 3);
  }
  SECTION("bad input") {
    recording_target t(64);
    std::vector<double> sec;
    CHECK(specdec::sched::profile_verify_costs(t, t.cache, prefix, kmax, reps, sec, -1).code
          == errc::invalid_argument);
    CHECK(specdec::sched::profile_verify_costs(t, t.cache, prefix, 70, reps, sec, 4).code
          == errc::overflow);
  }
}
