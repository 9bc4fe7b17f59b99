// SPDX-License-Identifier: Apache-2.0
//
// The generic speculative decoding loop on a toy target whose next-token law depends on the last
// two tokens and the position, read back from its own KV cache (so a wrong rollback changes the
// output):
//   - greedy speculative output equals plain greedy output for one-hot and dense drafters, fixed
//   and
//     adaptive draft lengths;
//   - at temperature 1 the joint law of the first two emitted tokens matches the exact target law
//     (chi-square on 1e6 seeded runs, bound: the 1 - 1e-6 quantile), and a drafter that reports a
//     different q than it samples from fails the same test;
//   - stop conditions, statistics, bad input.
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/kv/contiguous_cache.hpp>
#include <specdec/propose/no_draft.hpp>
#include <specdec/sched/confidence_length.hpp>
#include <specdec/sched/draft_length.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/rejection.hpp>

#include <catch2/catch.hpp>

#include "support/sanitizer.hpp"
#include "support/stats.hpp"
#include "support/toy_target.hpp"
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using specdec::draft_block;
using specdec::draft_request;
using specdec::errc;
using specdec::index_t;
using specdec::matrix_view;
using specdec::score_request;
using specdec::status;
using specdec::token_id;
namespace decode = specdec::decode;
namespace kv = specdec::kv;

constexpr index_t vocab = specdec_test::toy_vocab;
using specdec_test::toy_target;
using dense_drafter = specdec_test::toy_dense_drafter;

// The one-hot toy drafter, bucketed (so the decoder takes its bucketed draft path).
struct oracle_drafter : specdec_test::toy_oracle_drafter {
  int draft_bucket() const {
    return 1;
  }
};

template <class Proposer, class Policy, class Length = specdec::sched::fixed_draft_length>
decode::decode_result run(Proposer& p,
                          Policy policy,
                          const std::vector<token_id>& prompt,
                          decode::decode_config cfg,
                          Length length = {},
                          index_t capacity = 512) {
  toy_target target(capacity);
  decode::speculative_decoder dec(target, target.cache, p, policy, length);
  decode::decode_result out;
  const status s = dec.generate(prompt, cfg, out);
  if (!s.ok())
    out.error = s;
  return out;
}

decode::decode_config greedy_config(std::int64_t n) {
  decode::decode_config c;
  c.max_new_tokens = n;
  c.params.temperature = 0.0f;
  return c;
}

} // namespace

TEST_CASE("decoder: greedy speculative output equals plain greedy for every drafter and length") {
  const std::vector<token_id> prompt{1, 7, 3};
  specdec::propose::no_drafter none;
  const auto plain = run(none, specdec::verify::greedy{}, prompt, greedy_config(300));
  REQUIRE(plain.error.ok());
  REQUIRE(plain.tokens.size() == 300);
  REQUIRE(plain.stats.drafted == 0);
  REQUIRE(plain.stats.steps == 300);
  for (int k = 1; k <= 6; ++k) {
    CAPTURE(k);
    oracle_drafter o;
    const auto spec = run(o,
                          specdec::verify::greedy{},
                          prompt,
                          greedy_config(300),
                          specdec::sched::fixed_draft_length{k});
    REQUIRE(spec.error.ok());
    CHECK(spec.tokens == plain.tokens);
    CHECK(spec.stats.drafted > 0);
    CHECK(spec.stats.steps < plain.stats.steps);
    dense_drafter d;
    d.max_draft = k;
    const auto dense = run(d,
                           specdec::verify::greedy{},
                           prompt,
                           greedy_config(300),
                           specdec::sched::fixed_draft_length{k});
    CHECK(dense.tokens == plain.tokens);
  }
  // The adaptive controller with a cheap verify curve drafts, and stays exact.
  specdec::sched::adaptive_draft_length ctl({2, 0.5, 2.0, 0.98, 64, 1.0, {}});
  REQUIRE(ctl.set_costs({{1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3}, 0.0, 0.0}).ok());
  oracle_drafter o;
  const auto adaptive = run(o, specdec::verify::greedy{}, prompt, greedy_config(300), ctl);
  CHECK(adaptive.tokens == plain.tokens);
  CHECK(adaptive.stats.drafted > 0);
}

TEST_CASE("decoder: statistics are consistent") {
  oracle_drafter o;
  const auto r = run(o,
                     specdec::verify::greedy{},
                     {1, 2},
                     greedy_config(400),
                     specdec::sched::fixed_draft_length{4});
  REQUIRE(r.error.ok());
  const auto& s = r.stats;
  CHECK(s.emitted >= static_cast<std::int64_t>(r.tokens.size()));
  CHECK(s.tau() == Approx(static_cast<double>(s.emitted) / static_cast<double>(s.steps)));
  CHECK(s.accepted + s.steps == s.emitted);
  REQUIRE(s.tried.size() == 4);
  CHECK(s.tried[0] == s.draft_steps);
  std::int64_t hits = 0;
  for (std::size_t j = 0; j < s.tried.size(); ++j) {
    CHECK(s.hits[j] <= s.tried[j]);
    hits += s.hits[j];
    if (j + 1 < s.tried.size())
      CHECK(s.tried[j + 1] <= s.hits[j]);
  }
  CHECK(hits == s.accepted);
  // Drafts at positions divisible by 3 are wrong. After the first step every step starts one past
  // such a position, so drafts 1 and 2 are accepted and draft 3 never is.
  CHECK(s.conditional_acceptance(0) == 1.0);
  CHECK(s.conditional_acceptance(1) > 0.95);
  CHECK(s.conditional_acceptance(2) == 0.0);
  CHECK(s.conditional_acceptance(3) == -1.0);
  CHECK(s.conditional_acceptance(9) == -1.0);
  CHECK(s.seconds_total >= s.seconds_verify);
  decode::decode_stats twice = s;
  twice += s;
  CHECK(twice.accepted == 2 * s.accepted);
  CHECK(twice.tau() == Approx(s.tau()));
}

TEST_CASE("decoder: stop conditions") {
  specdec::propose::no_drafter none;
  const std::vector<token_id> prompt{4, 9};
  const auto plain = run(none, specdec::verify::greedy{}, prompt, greedy_config(64));
  REQUIRE(plain.tokens.size() == 64);
  oracle_drafter o;
  const specdec::sched::fixed_draft_length k4{4};

  SECTION("budget, with drafts accepted past it") {
    for (std::int64_t n : {0, 1, 2, 5, 13}) {
      const auto r = run(o, specdec::verify::greedy{}, prompt, greedy_config(n), k4);
      CHECK(r.reason == decode::stop_reason::budget);
      CHECK(r.tokens == std::vector<token_id>(plain.tokens.begin(), plain.tokens.begin() + n));
    }
  }
  SECTION("end token: the first occurrence ends the output") {
    const token_id end = plain.tokens[10];
    auto cfg = greedy_config(64);
    cfg.end_tokens = {end};
    const auto r = run(o, specdec::verify::greedy{}, prompt, cfg, k4);
    CHECK(r.reason == decode::stop_reason::end_token);
    REQUIRE(!r.tokens.empty());
    CHECK(r.tokens.back() == end);
    const auto first = std::find(plain.tokens.begin(), plain.tokens.end(), end);
    CHECK(r.tokens == std::vector<token_id>(plain.tokens.begin(), first + 1));
  }
  SECTION("stop string spanning several tokens") {
    auto cfg = greedy_config(64);
    cfg.token_text = [](token_id, token_id t) {
      return std::string(1, static_cast<char>('a' + t));
    };
    std::string text;
    for (token_id t : plain.tokens)
      text += static_cast<char>('a' + t);
    cfg.stop_strings = {"zzzz-never", text.substr(20, 3)};
    const auto r = run(o, specdec::verify::greedy{}, prompt, cfg, k4);
    CHECK(r.reason == decode::stop_reason::stop_string);
    const std::size_t at = text.find(text.substr(20, 3));
    CHECK(r.tokens.size() == at + 3);
  }
  SECTION("context full") {
    const auto r = run(o, specdec::verify::greedy{}, prompt, greedy_config(1000), k4, index_t{40});
    CHECK(r.error.ok());
    CHECK(r.reason == decode::stop_reason::context_full);
    CHECK(r.tokens.size() == 40 + 1 - prompt.size());
    CHECK(r.tokens == std::vector<token_id>(plain.tokens.begin(), plain.tokens.begin() + 39));
  }
}

TEST_CASE("decoder: bad input gives a status") {
  oracle_drafter o;
  const auto empty = run(o, specdec::verify::greedy{}, {}, greedy_config(4));
  CHECK(empty.error.code == errc::invalid_argument);
  CHECK(empty.reason == decode::stop_reason::error);
  CHECK(run(o, specdec::verify::greedy{}, {1, 16}, greedy_config(4)).error.code
        == errc::token_out_of_range);
  CHECK(run(o, specdec::verify::greedy{}, {-1}, greedy_config(4)).error.code
        == errc::token_out_of_range);
  CHECK(run(o,
            specdec::verify::greedy{},
            std::vector<token_id>(41, 1),
            greedy_config(4),
            {},
            index_t{40})
            .error.code
        == errc::overflow);
  auto cfg = greedy_config(4);
  cfg.stop_strings = {"x"};
  CHECK(run(o, specdec::verify::greedy{}, {1}, cfg).error.code == errc::invalid_argument);
  cfg = greedy_config(4);
  cfg.params.top_p = 2.0f;
  CHECK(run(o, specdec::verify::greedy{}, {1}, cfg).error.code == errc::invalid_top_p);
  cfg = greedy_config(-1);
  CHECK(run(o, specdec::verify::greedy{}, {1}, cfg).error.code == errc::invalid_argument);
}

namespace {

struct joint_fit {
  specdec_test::chi_square_result chi;
  double bound = 0.0;
  bool fits = false;
};

// Joint law of the first two emitted tokens after `prompt` over `draws` seeded runs.
template <class Proposer, class Policy, class Length = specdec::sched::fixed_draft_length>
joint_fit first_two_tokens(Proposer& p,
                           Policy policy,
                           std::uint64_t draws,
                           Length length = specdec::sched::fixed_draft_length{3},
                           std::int64_t budget = 2) {
  const std::vector<token_id> prompt{3, 5};
  toy_target target(64);
  decode::speculative_decoder dec(target, target.cache, p, policy, length);
  decode::decode_config cfg;
  cfg.max_new_tokens = budget; // the first step drafts at most budget - 1 tokens
  cfg.params.temperature = 1.0f;
  cfg.request_id = 11;
  std::vector<std::uint64_t> counts(static_cast<std::size_t>(vocab * vocab), 0);
  decode::decode_result out;
  for (std::uint64_t i = 0; i < draws; ++i) {
    cfg.seed = i;
    if constexpr (requires { p.seed; })
      p.seed = i * 7919 + 1;
    if (!dec.generate(prompt, cfg, out).ok() || out.tokens.size() < 2)
      FAIL("generate failed at draw " << i);
    ++counts[static_cast<std::size_t>(out.tokens[0] * vocab + out.tokens[1])];
  }
  const std::vector<double> law = specdec_test::toy_first_two_law(prompt[0], prompt[1]);
  joint_fit f;
  // Cells expected fewer than 5 times are pooled into one, so the chi-square law applies.
  f.chi = specdec_test::pooled_chi_square(counts, specdec_test::expected_counts(law, draws));
  f.bound = specdec_test::chi_square_upper_quantile(f.chi.degrees_of_freedom, 1e-6);
  f.fits = specdec_test::fits(f.chi, 1e-6);
  return f;
}

} // namespace

TEST_CASE("decoder: at T=1 the first two emitted tokens follow the target law (1e6 runs)") {
  dense_drafter d;
  const joint_fit f = first_two_tokens(d, specdec::verify::rejection_sampling{}, 1000000);
  INFO("chi2 " << f.chi.statistic << " dof " << f.chi.degrees_of_freedom << " bound " << f.bound
               << " min expected " << f.chi.min_expected);
  CHECK(f.chi.min_expected > 5.0);
  CHECK(f.fits);

  oracle_drafter o;
  const joint_fit g = first_two_tokens(o, specdec::verify::one_hot_rejection{}, 1000000);
  INFO("one-hot: chi2 " << g.chi.statistic << " bound " << g.bound);
  CHECK(g.fits);
}

TEST_CASE("decoder: a drafter reporting the wrong q fails the same test") {
  dense_drafter liar;
  liar.lie = true;
  const joint_fit f = first_two_tokens(liar, specdec::verify::rejection_sampling{}, 1000000);
  INFO("chi2 " << f.chi.statistic << " bound " << f.bound);
  CHECK_FALSE(f.fits);
}

TEST_CASE("adaptive draft length: follows the cost curve and the acceptance per bucket") {
  using specdec::sched::adaptive_draft_length;
  adaptive_draft_length none;
  CHECK(none.choose(0, 8) == 0); // no costs installed: never drafts

  SECTION("linear cost: drafting cannot pay, only exploration drafts") {
    adaptive_draft_length c({1, 0.9, 2.0, 0.98, 10, 1.0, {}});
    REQUIRE(c.set_costs({{1, 2, 3, 4, 5}, 0.0, 0.0}).ok());
    int drafted_steps = 0;
    for (int i = 0; i < 100; ++i) {
      const int k = c.choose(0, 4);
      CHECK(k <= 1);
      drafted_steps += k;
    }
    CHECK(drafted_steps == 10);
  }
  SECTION("learns acceptance per bucket") {
    adaptive_draft_length c({2, 0.5, 2.0, 0.98, 0, 1.0, {}});
    REQUIRE(c.set_costs({{1.0, 1.65, 1.8, 1.9, 1.95, 2.0, 2.05, 2.1, 2.15}, 0.0, 0.0}).ok());
    CHECK(c.choose(0, 8) == 0); // prior 0.5: E(k) < 2 while C(k) >= 1.65
    for (int i = 0; i < 500; ++i) {
      c.record(1, 8, 8);           // bucket 1: everything accepted
      c.record(0, 1, i % 10 == 0); // bucket 0: 10% accepted
    }
    CHECK(c.alpha(1, 1) > 0.95);
    CHECK(c.alpha(0, 1) < 0.2);
    CHECK(c.choose(1, 8) == 8);
    CHECK(c.choose(1, 3) == 3);
    CHECK(c.choose(0, 8) == 0);
    CHECK(c.expected_tokens(1, 2) > 2.8);
    // A regime change is followed: bucket 1 starts rejecting everything.
    for (int i = 0; i < 300; ++i)
      c.record(1, 1, 0);
    CHECK(c.choose(1, 8) == 0);
  }
  SECTION("a per-bucket prior drafts long matches from the start") {
    specdec::sched::adaptive_config cfg;
    cfg.buckets = 2;
    cfg.explore_interval = 0;
    cfg.prior_by_bucket = {0.1, 0.99};
    adaptive_draft_length c(cfg);
    REQUIRE(c.set_costs({{1.0, 1.65, 1.8, 1.9, 1.95}, 0.0, 0.0}).ok());
    CHECK(c.choose(0, 4) == 0);
    CHECK(c.choose(1, 4) == 4);
    CHECK(c.alpha(1, 3) == Approx(0.99));
  }
  SECTION("draft cost counts") {
    adaptive_draft_length c({1, 0.9, 1e6, 1.0, 0, 1.0, {}});
    REQUIRE(c.set_costs({{1.0, 1.0, 1.0}, 0.0, 0.0}).ok());
    CHECK(c.choose(0, 2) == 2);
    REQUIRE(c.set_costs({{1.0, 1.0, 1.0}, 0.0, 5.0}).ok());
    CHECK(c.choose(0, 2) == 0);
  }
  SECTION("invalid cost curves are refused") {
    adaptive_draft_length c;
    CHECK(c.set_costs({{}, 0.0, 0.0}).code == errc::invalid_value);
    CHECK(c.set_costs({{1.0, -1.0}, 0.0, 0.0}).code == errc::invalid_value);
    CHECK(c.set_costs({{1.0, NAN}, 0.0, 0.0}).code == errc::invalid_value);
    CHECK(c.set_costs({{1.0, 2.0}, -1.0, 0.0}).code == errc::invalid_value);
  }
}

namespace {

// The dense toy drafter with a confidence per draft that depends only on the drafts before it:
// c_1 = 0.8, then c_k = 0.9 after an even draft and 0.1 after an odd one.
struct confident_drafter : specdec_test::toy_dense_drafter {
  std::vector<double> conf;
  specdec::status propose(const specdec::draft_request& r, specdec::draft_block& b) {
    const specdec::status s = toy_dense_drafter::propose(r, b);
    conf.assign(static_cast<std::size_t>(b.length), 0.8);
    for (int k = 1; k < b.length; ++k)
      conf[static_cast<std::size_t>(k)] = b.tokens[k - 1] % 2 == 0 ? 0.9 : 0.1;
    return s;
  }
  std::span<const double> confidences() const {
    return conf;
  }
};

// A length policy that peeks at c_{k+1} (a function of draft k itself) to decide whether draft k
// is verified: anticipating, so lossy (the decoder-level form of the paper's Appendix A).
struct peeking_length {
  int choose_with_confidence(std::span<const double> c, int available) const {
    int k = 0;
    while (k < available && (k + 1 >= available || c[static_cast<std::size_t>(k) + 1] > 0.5))
      ++k;
    return k;
  }
};

} // namespace

TEST_CASE("decoder: confidence-cut drafts (threshold, scheduler) stay exact and are reported") {
  static_assert(specdec::confident_proposer<confident_drafter>);
  static_assert(specdec::confidence_length_policy<specdec::sched::threshold_length>);
  static_assert(specdec::confidence_length_policy<specdec::sched::scheduled_length>);
  const std::vector<token_id> prompt{1, 7, 3};
  specdec::propose::no_drafter none;
  const auto plain = run(none, specdec::verify::greedy{}, prompt, greedy_config(200));
  confident_drafter d;
  d.max_draft = 4;
  std::vector<decode::step_record> steps;
  decode::decode_config cfg = greedy_config(200);
  cfg.on_step = [&steps](const decode::step_record& r) { steps.push_back(r); };
  const auto cut =
      run(d, specdec::verify::greedy{}, prompt, cfg, specdec::sched::threshold_length{0.5f});
  REQUIRE(cut.error.ok());
  CHECK(cut.tokens == plain.tokens);
  REQUIRE(static_cast<std::int64_t>(steps.size()) == cut.stats.steps);
  std::int64_t drafted = 0, accepted = 0;
  for (const decode::step_record& r : steps) {
    CHECK(r.drafted <= r.offered);
    CHECK(r.accepted <= r.drafted);
    drafted += r.drafted;
    accepted += r.accepted;
  }
  CHECK(drafted == cut.stats.drafted);
  CHECK(accepted == cut.stats.accepted);
  CHECK(cut.stats.drafted > 0);
  CHECK(cut.stats.drafted < 200 * 4); // the cut removed drafts after odd ones

  // Algorithm 1 on one sequence: with a flat step curve every draft with c > 0 pays; with a curve
  // that halves the speed per extra token, none does.
  const specdec::sched::scheduled_length flat(specdec::sched::sps_table{{1, 1.0}, {16, 1.0}});
  const auto all = run(d, specdec::verify::greedy{}, prompt, greedy_config(200), flat);
  CHECK(all.tokens == plain.tokens);
  const specdec::sched::scheduled_length steep(
      specdec::sched::sps_table{{1, 1.0}, {2, 0.5}, {3, 0.33}, {4, 0.25}, {5, 0.2}});
  const auto no = run(d, specdec::verify::greedy{}, prompt, greedy_config(200), steep);
  CHECK(no.tokens == plain.tokens);
  CHECK(no.stats.drafted == 0);
  CHECK(all.stats.drafted > cut.stats.drafted);
}

TEST_CASE("decoder: a non-anticipating confidence cut is lossless at T=1, a peeking one is not") {
  const std::uint64_t draws = specdec_test::by_build<std::uint64_t>(1000000, 100000);
  confident_drafter d;
  d.max_draft = 3;
  const joint_fit f = first_two_tokens(
      d, specdec::verify::rejection_sampling{}, draws, specdec::sched::threshold_length{0.5f}, 4);
  INFO("threshold: chi2 " << f.chi.statistic << " bound " << f.bound);
  CHECK(f.fits);
  const specdec::sched::scheduled_length sched(
      specdec::sched::sps_table{{1, 1.0}, {2, 0.9}, {3, 0.6}, {4, 0.5}});
  const joint_fit g = first_two_tokens(d, specdec::verify::rejection_sampling{}, draws, sched, 4);
  INFO("scheduler: chi2 " << g.chi.statistic << " bound " << g.bound);
  CHECK(g.fits);
  const joint_fit h =
      first_two_tokens(d, specdec::verify::rejection_sampling{}, draws, peeking_length{}, 4);
  INFO("peeking: chi2 " << h.chi.statistic << " bound " << h.bound);
  CHECK_FALSE(h.fits);
}
