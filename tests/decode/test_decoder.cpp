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
#include <specdec/sched/draft_length.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/rejection.hpp>

#include <catch2/catch.hpp>

#include "support/stats.hpp"
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

constexpr index_t vocab = 16;

std::uint32_t mix(std::uint32_t h) {
  h ^= h >> 16;
  h *= 0x7feb352dU;
  h ^= h >> 15;
  h *= 0x846ca68bU;
  h ^= h >> 16;
  return h;
}

// Logit of token v after (prev, x) with x at position pos: a fixed pseudo-random value in [-3, 3].
double toy_logit(token_id prev, token_id x, index_t pos, index_t v) {
  const auto key = static_cast<std::uint32_t>((prev + 1) * 977 + x * 131 + (pos % 3) * 17
                                              + static_cast<int>(v) * 100003);
  return -3.0 + 6.0 * static_cast<double>(mix(key) % 10007U) / 10006.0;
}

// The exact next-token law at temperature 1 (double precision).
std::vector<double> toy_law(token_id prev, token_id x, index_t pos) {
  std::vector<double> p(static_cast<std::size_t>(vocab));
  double mx = -1e300;
  for (index_t v = 0; v < vocab; ++v)
    mx = std::max(mx, toy_logit(prev, x, pos, v));
  double sum = 0.0;
  for (index_t v = 0; v < vocab; ++v)
    sum += p[static_cast<std::size_t>(v)] = std::exp(toy_logit(prev, x, pos, v) - mx);
  for (double& q : p)
    q /= sum;
  return p;
}

// Target: keeps the tokens it has scored in a one-plane contiguous cache and reads the previous
// token from it, as a transformer reads its keys.
struct toy_target {
  kv::contiguous_cache<float> cache;

  explicit toy_target(index_t capacity) {
    const kv::plane_desc d{1, kv::plane_layout::position_major};
    REQUIRE(cache.allocate(capacity, {&d, 1}).ok());
  }
  index_t vocab_size() const {
    return vocab;
  }
  status score(const score_request& r, matrix_view<float> out) {
    const index_t n = r.tokens.size;
    if (r.start < 0 || r.start > cache.length() || out.rows < n || out.cols != vocab)
      return status{errc::invalid_argument};
    if (r.start + n > cache.capacity())
      return status{errc::overflow};
    (void)cache.rollback(r.start);
    for (index_t i = 0; i < n; ++i) {
      const index_t pos = r.start + i;
      const token_id prev = pos > 0 ? static_cast<token_id>(cache.at(0, pos - 1, 0)) : token_id{-1};
      cache.at(0, pos, 0) = static_cast<float>(r.tokens[i]);
      for (index_t v = 0; v < vocab; ++v)
        out(i, v) = static_cast<float>(toy_logit(prev, r.tokens[i], pos, v));
    }
    return cache.extend(r.start + n);
  }
};

token_id toy_argmax(token_id prev, token_id x, index_t pos) {
  index_t best = 0;
  for (index_t v = 1; v < vocab; ++v)
    if (toy_logit(prev, x, pos, v) > toy_logit(prev, x, pos, best))
      best = v;
  return static_cast<token_id>(best);
}

// One-hot drafter: the target's greedy continuation, with every third draft position corrupted.
struct oracle_drafter {
  int max_draft = 6;
  status propose(const draft_request& r, draft_block& b) const {
    const index_t n = r.context.size;
    token_id prev = n > 1 ? r.context[n - 2] : -1;
    token_id x = r.context[n - 1];
    b.length = 0;
    const index_t k = std::min<index_t>(r.max_tokens, b.tokens.size);
    for (index_t j = 0; j < k; ++j) {
      token_id d = toy_argmax(prev, x, n - 1 + j);
      if ((n + j) % 3 == 0)
        d = static_cast<token_id>((d + 1) % vocab);
      b.tokens[j] = d;
      prev = x;
      x = d;
      b.length = static_cast<std::int32_t>(j + 1);
    }
    return status{};
  }
  int max_draft_len() const {
    return max_draft;
  }
  int draft_bucket() const {
    return 1;
  }
};

// Dense drafter: q = softmax(0.5 * target logits + a position hash), sampled by its own stream.
// With `lie` it samples from q but reports the target's rows, which biases rejection sampling.
struct dense_drafter {
  static constexpr bool writes_draft_rows = true;
  int max_draft = 3;
  bool lie = false;
  std::uint64_t seed = 0;

  static double q_logit(token_id prev, token_id x, index_t pos, index_t v) {
    return 0.5 * toy_logit(prev, x, pos, v)
           + static_cast<double>(mix(static_cast<std::uint32_t>(pos * 31 + v)) % 7U) * 0.3;
  }
  status propose(const draft_request& r, draft_block& b) const {
    const index_t n = r.context.size;
    token_id prev = n > 1 ? r.context[n - 2] : -1;
    token_id x = r.context[n - 1];
    b.length = 0;
    b.probs_kind = specdec::distribution_kind::logits;
    const index_t k = std::min<index_t>({r.max_tokens, b.tokens.size, b.probs.rows});
    const specdec::rng_key key{seed, r.request_id};
    for (index_t j = 0; j < k; ++j) {
      const index_t pos = n - 1 + j;
      std::vector<double> w(static_cast<std::size_t>(vocab));
      double sum = 0.0;
      for (index_t v = 0; v < vocab; ++v) {
        const double ql = q_logit(prev, x, pos, v);
        b.probs(j, v) = static_cast<float>(lie ? toy_logit(prev, x, pos, v) : ql);
        sum += w[static_cast<std::size_t>(v)] = std::exp(ql);
      }
      double u = specdec::uniform_at(key, pos + 1, specdec::draw_purpose::auxiliary) * sum;
      token_id d = vocab - 1;
      for (index_t v = 0; v < vocab; ++v) {
        u -= w[static_cast<std::size_t>(v)];
        if (u < 0.0) {
          d = static_cast<token_id>(v);
          break;
        }
      }
      b.tokens[j] = d;
      prev = x;
      x = d;
      b.length = static_cast<std::int32_t>(j + 1);
    }
    return status{};
  }
  int max_draft_len() const {
    return max_draft;
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
template <class Proposer, class Policy>
joint_fit first_two_tokens(Proposer& p, Policy policy, std::uint64_t draws) {
  const std::vector<token_id> prompt{3, 5};
  toy_target target(64);
  decode::speculative_decoder dec(
      target, target.cache, p, policy, specdec::sched::fixed_draft_length{3});
  decode::decode_config cfg;
  cfg.max_new_tokens = 2;
  cfg.params.temperature = 1.0f;
  cfg.request_id = 11;
  std::vector<std::uint64_t> counts(static_cast<std::size_t>(vocab * vocab), 0);
  decode::decode_result out;
  for (std::uint64_t i = 0; i < draws; ++i) {
    cfg.seed = i;
    if constexpr (requires { p.seed; })
      p.seed = i * 7919 + 1;
    if (!dec.generate(prompt, cfg, out).ok() || out.tokens.size() != 2)
      FAIL("generate failed at draw " << i);
    ++counts[static_cast<std::size_t>(out.tokens[0] * vocab + out.tokens[1])];
  }
  std::vector<double> law(counts.size());
  const std::vector<double> p1 = toy_law(prompt[0], prompt[1], 1);
  for (index_t a = 0; a < vocab; ++a) {
    const std::vector<double> p2 = toy_law(prompt[1], static_cast<token_id>(a), 2);
    for (index_t b = 0; b < vocab; ++b)
      law[static_cast<std::size_t>(a * vocab + b)] =
          p1[static_cast<std::size_t>(a)] * p2[static_cast<std::size_t>(b)];
  }
  // Cells expected fewer than 5 times are pooled into one, so the chi-square law applies.
  const std::vector<double> expected = specdec_test::expected_counts(law, draws);
  std::vector<std::uint64_t> pooled_counts{0};
  std::vector<double> pooled_expected{0.0};
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (expected[i] < 5.0) {
      pooled_counts[0] += counts[i];
      pooled_expected[0] += expected[i];
    } else {
      pooled_counts.push_back(counts[i]);
      pooled_expected.push_back(expected[i]);
    }
  }
  joint_fit f;
  f.chi = specdec_test::chi_square(pooled_counts, pooled_expected);
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
