// SPDX-License-Identifier: Apache-2.0
//
// The token-tree speculative decoding loop on a toy tree target whose next-token law depends on
// the last two tokens and the position, read back from its own KV cache (so a wrong path
// compaction changes the output):
//   - greedy tree decoding equals plain greedy decoding for branchy trees, n-gram tries and every
//     budget, with the cache's keep_path and with slot copies;
//   - with a chain-shaped tree (chain_tree_proposer) the tree loop equals the chain loop token
//     for token and counter for counter: greedy, one-hot rejection and dense rejection at T = 1;
//   - at T = 1 with branchy one-hot trees the first two emitted tokens follow the target law
//     (chi-square, cells expected < 5 pooled, bound: the 1 - 1e-6 quantile);
//   - the sampled early-exit tree drafter (propose::sampled_tree_proposer) on a layered toy
//     target: its planned shape, rows and draft_index; with branching {1} it is the early-exit
//     chain drafter token for token; greedy output equals plain greedy; at T = 1 with dense
//     multi-draft rejection sampling the first two emitted tokens follow the target law (same
//     chi-square test, siblings at depths 1 and 2), and the rule without the residual update
//     between siblings fails it;
//   - statistics, the final cache length and contents, stop conditions, bad input and proposers
//     that break their request.
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/decode/tree_decoder.hpp>
#include <specdec/kv/contiguous_cache.hpp>
#include <specdec/propose/chain_tree.hpp>
#include <specdec/propose/early_exit.hpp>
#include <specdec/propose/ngram_tree.hpp>
#include <specdec/propose/no_draft.hpp>
#include <specdec/propose/sampled_tree.hpp>
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
using specdec::row_view;
using specdec::score_request;
using specdec::status;
using specdec::token_id;
using specdec::tree_draft;
using specdec::tree_draft_request;
namespace decode = specdec::decode;
namespace kv = specdec::kv;
namespace propose = specdec::propose;
namespace verify = specdec::verify;

constexpr index_t vocab = specdec_test::toy_vocab;
using specdec_test::toy_argmax;
using specdec_test::toy_logit;
using specdec_test::toy_target;
using oracle_drafter = specdec_test::toy_oracle_drafter;
using dense_drafter = specdec_test::toy_dense_drafter;

SPECDEC_CHECK(tree_target_model, toy_target);

// The toy cache without keep_path: the decoder compacts with copy_position + rollback.
struct copy_only_cache {
  static constexpr kv::rollback_class rollback_kind = kv::rollback_class::partial;
  kv::contiguous_cache<float>* c;
  [[nodiscard]] status rollback(index_t n) {
    return c->rollback(n);
  }
  [[nodiscard]] index_t length() const {
    return c->length();
  }
  [[nodiscard]] index_t capacity() const {
    return c->capacity();
  }
  [[nodiscard]] status copy_position(index_t src, index_t dst) {
    return c->copy_position(src, dst);
  }
};
static_assert(!kv::tree_kv_cache<copy_only_cache>);
static_assert(kv::tree_kv_cache<kv::contiguous_cache<float>>);

// Branchy one-hot tree drafter: every expanded node gets up to `width` children, the target's
// argmax among them except at positions divisible by 5 (where it is left out, so the step
// rejects there); a wrong token comes first so that verification must look past it. Breadth
// first until the budget or the depth limit.
struct branchy_drafter {
  int width = 3;
  int depth = 4;
  int budget = 10;
  int max_draft_nodes() const {
    return budget;
  }
  status propose_tree(const tree_draft_request& r, tree_draft& d) const {
    const index_t n = r.context.size;
    d.draft_index.clear();
    d.tree.reset(r.context[n - 1]);
    const int nodes = std::min(budget, static_cast<int>(r.max_nodes));
    const int max_depth = std::min(depth, static_cast<int>(r.max_depth));
    std::vector<token_id> prev{n > 1 ? r.context[n - 2] : token_id{-1}};
    for (std::int32_t u = 0; u < d.tree.size(); ++u) {
      const std::int32_t du = d.tree.depths()[static_cast<std::size_t>(u)];
      if (du >= max_depth)
        continue;
      const token_id x = d.tree.tokens()[static_cast<std::size_t>(u)];
      const index_t pos = n - 1 + du; // x's position
      const token_id best = toy_argmax(prev[static_cast<std::size_t>(u)], x, pos);
      const token_id cands[3] = {static_cast<token_id>((best + 1) % vocab),
                                 best,
                                 static_cast<token_id>((best + 7) % vocab)};
      for (int c = 0; c < width && c < 3; ++c) {
        if (c == 1 && (pos + 1) % 5 == 0)
          continue;
        if (d.tree.size() - 1 >= nodes)
          return status{};
        (void)d.tree.add(u, cands[c]);
        prev.push_back(x);
      }
    }
    return status{};
  }
};

SPECDEC_CHECK(tree_draft_proposer, branchy_drafter);
SPECDEC_CHECK(tree_draft_proposer, propose::chain_tree_proposer<dense_drafter>);
static_assert(specdec::dense_tree_draft_proposer<propose::chain_tree_proposer<dense_drafter>>);
static_assert(!specdec::dense_tree_draft_proposer<propose::chain_tree_proposer<oracle_drafter>>);
static_assert(!specdec::tree_target_model<specdec::propose::no_drafter>);

decode::decode_config greedy_config(std::int64_t n, std::int32_t max_draft = 8) {
  decode::decode_config c;
  c.max_new_tokens = n;
  c.params.temperature = 0.0f;
  c.max_draft = max_draft;
  return c;
}

// Plain decoding through the chain loop.
std::vector<token_id> plain_greedy(const std::vector<token_id>& prompt, std::int64_t n) {
  toy_target target(512);
  propose::no_drafter none;
  decode::speculative_decoder dec(
      target, target.cache, none, verify::greedy{}, specdec::sched::fixed_draft_length{0});
  decode::decode_result out;
  REQUIRE(dec.generate(prompt, greedy_config(n), out).ok());
  return out.tokens;
}

struct tree_run {
  decode::decode_result result;
  index_t cache_length = 0;
  std::vector<token_id> cache_tokens; // token of every committed slot
  std::int64_t tree_calls = 0;
};

template <class Proposer, class Policy>
tree_run run_tree(Proposer& p,
                  Policy policy,
                  const std::vector<token_id>& prompt,
                  const decode::decode_config& cfg,
                  index_t capacity = 512,
                  bool copy_only = false) {
  toy_target target(capacity);
  tree_run r;
  status s{};
  if (copy_only) {
    copy_only_cache c{&target.cache};
    decode::tree_decoder dec(target, c, p, policy);
    s = dec.generate(prompt, cfg, r.result);
  } else {
    decode::tree_decoder dec(target, target.cache, p, policy);
    s = dec.generate(prompt, cfg, r.result);
  }
  if (!s.ok())
    r.result.error = s;
  r.cache_length = target.cache.length();
  for (index_t i = 0; i < r.cache_length; ++i)
    r.cache_tokens.push_back(target.slot_token(i));
  r.tree_calls = target.tree_calls;
  return r;
}

template <class Proposer, class Policy>
decode::decode_result run_chain(Proposer& p,
                                Policy policy,
                                const std::vector<token_id>& prompt,
                                const decode::decode_config& cfg) {
  toy_target target(512);
  decode::speculative_decoder dec(
      target, target.cache, p, policy, specdec::sched::fixed_draft_length{cfg.max_draft});
  decode::decode_result out;
  const status s = dec.generate(prompt, cfg, out);
  if (!s.ok())
    out.error = s;
  return out;
}

void check_consistent(const decode::decode_stats& s) {
  CHECK(s.accepted + s.steps == s.emitted);
  CHECK(s.tried.size() == s.hits.size());
  if (!s.tried.empty())
    CHECK(s.tried[0] <= s.draft_steps);
  std::int64_t hits = 0;
  for (std::size_t j = 0; j < s.tried.size(); ++j) {
    CHECK(s.hits[j] <= s.tried[j]);
    hits += s.hits[j];
    if (j + 1 < s.tried.size())
      CHECK(s.tried[j + 1] <= s.hits[j]);
  }
  CHECK(hits == s.accepted);
}

} // namespace

TEST_CASE("tree decoder: greedy tree decoding equals plain greedy decoding") {
  const std::vector<token_id> prompt{1, 7, 3};
  const std::vector<token_id> plain = plain_greedy(prompt, 300);
  REQUIRE(plain.size() == 300);
  for (int width : {1, 2, 3}) {
    for (int budget : {1, 2, 5, 10, 24}) {
      for (bool copy_only : {false, true}) {
        CAPTURE(width, budget, copy_only);
        branchy_drafter b{width, 5, budget};
        const tree_run r =
            run_tree(b, verify::greedy{}, prompt, greedy_config(300, budget), 512, copy_only);
        REQUIRE(r.result.error.ok());
        CHECK(r.result.tokens == plain);
        CHECK(r.result.reason == decode::stop_reason::budget);
        const auto& s = r.result.stats;
        CHECK(s.steps == r.tree_calls);
        // Width 1 (or a budget of 1) drafts only the wrong first candidate: nothing accepted.
        if (width >= 2 && budget >= 2) {
          CHECK(s.accepted > 0);
          CHECK(s.steps < 300);
        } else {
          CHECK(s.accepted == 0);
        }
        check_consistent(s);
        // The cache holds the prompt and the output but the last token, slot by slot.
        std::vector<token_id> all = prompt;
        all.insert(all.end(), plain.begin(), plain.end());
        all.pop_back();
        CHECK(r.cache_length == static_cast<index_t>(all.size()));
        CHECK(r.cache_tokens == all);
      }
    }
  }
  // One-hot rejection at temperature 0 is greedy too.
  branchy_drafter b{3, 4, 12};
  CHECK(run_tree(b, verify::one_hot_rejection{}, prompt, greedy_config(300, 12)).result.tokens
        == plain);
  // max_draft 0: plain decoding through the tree loop (lone roots).
  const tree_run none = run_tree(b, verify::greedy{}, prompt, greedy_config(50, 0));
  CHECK(none.result.tokens == std::vector<token_id>(plain.begin(), plain.begin() + 50));
  CHECK(none.result.stats.drafted == 0);
  CHECK(none.result.stats.steps == 50);
}

TEST_CASE("tree decoder: the n-gram tree drafter keeps greedy output exact") {
  // A prompt that repeats the start of the greedy continuation, so the trie has matches.
  const std::vector<token_id> plain = plain_greedy({2, 5}, 60);
  std::vector<token_id> prompt{2, 5};
  prompt.insert(prompt.end(), plain.begin(), plain.begin() + 30);
  prompt.push_back(2);
  prompt.push_back(5);
  const std::vector<token_id> expected = plain_greedy(prompt, 120);
  for (int budget : {1, 4, 16}) {
    CAPTURE(budget);
    propose::ngram_tree_proposer ng({1, 3, 8, budget, 4, 4, 0});
    const tree_run r = run_tree(ng, verify::greedy{}, prompt, greedy_config(120, budget));
    REQUIRE(r.result.error.ok());
    CHECK(r.result.tokens == expected);
    CHECK(r.result.stats.accepted > 0);
    check_consistent(r.result.stats);
  }
}

TEST_CASE("tree decoder: a chain-shaped tree reproduces the chain decoder") {
  const std::vector<token_id> prompt{4, 9, 2};
  SECTION("greedy, one-hot drafts") {
    for (int k : {1, 3, 6}) {
      CAPTURE(k);
      oracle_drafter o{k};
      propose::chain_tree_proposer<oracle_drafter> adapter(o);
      const auto chain = run_chain(o, verify::greedy{}, prompt, greedy_config(200, k));
      const tree_run tree = run_tree(adapter, verify::greedy{}, prompt, greedy_config(200, k));
      REQUIRE(tree.result.error.ok());
      CHECK(tree.result.tokens == chain.tokens);
      CHECK(tree.result.stats.steps == chain.stats.steps);
      CHECK(tree.result.stats.drafted == chain.stats.drafted);
      CHECK(tree.result.stats.accepted == chain.stats.accepted);
      CHECK(tree.result.stats.tried == chain.stats.tried);
      CHECK(tree.result.stats.hits == chain.stats.hits);
    }
  }
  SECTION("temperature 1, seeded: one-hot and dense rejection") {
    for (std::uint64_t seed : {1u, 2u, 3u, 4u, 5u}) {
      CAPTURE(seed);
      decode::decode_config cfg = greedy_config(150, 3);
      cfg.params.temperature = 1.0f;
      cfg.seed = seed;
      cfg.request_id = 77;
      oracle_drafter o{3};
      propose::chain_tree_proposer<oracle_drafter> oa(o);
      const auto c1 = run_chain(o, verify::one_hot_rejection{}, prompt, cfg);
      const tree_run t1 = run_tree(oa, verify::one_hot_rejection{}, prompt, cfg);
      REQUIRE(t1.result.error.ok());
      CHECK(t1.result.tokens == c1.tokens);
      CHECK(t1.result.stats.accepted == c1.stats.accepted);
      CHECK(t1.result.stats.tried == c1.stats.tried);

      dense_drafter d;
      d.seed = seed * 31 + 1;
      propose::chain_tree_proposer<dense_drafter> da(d);
      const auto c2 = run_chain(d, verify::rejection_sampling{}, prompt, cfg);
      const tree_run t2 = run_tree(da, verify::rejection_sampling{}, prompt, cfg);
      REQUIRE(t2.result.error.ok());
      CHECK(t2.result.tokens == c2.tokens);
      CHECK(t2.result.stats.accepted == c2.stats.accepted);
      CHECK(t2.result.stats.hits == c2.stats.hits);
      CHECK(t2.result.stats.accepted > 0);
    }
  }
}

TEST_CASE("tree decoder: statistics count nodes and per-depth acceptance") {
  branchy_drafter b{2, 3, 6};
  const tree_run r = run_tree(b, verify::greedy{}, {1, 2}, greedy_config(400, 6));
  REQUIRE(r.result.error.ok());
  const auto& s = r.result.stats;
  check_consistent(s);
  CHECK(s.emitted == static_cast<std::int64_t>(r.result.tokens.size()));
  CHECK(s.tau() == Approx(static_cast<double>(s.emitted) / static_cast<double>(s.steps)));
  REQUIRE(s.tried.size() >= 2);
  CHECK(s.tried.size() <= 3);
  CHECK(s.tried[0] == s.draft_steps);
  // Binary trees cut at 6 nodes, breadth first (fewer only in the last steps, whose depth is
  // capped by the tokens left to emit).
  CHECK(s.drafted <= 6 * s.draft_steps);
  CHECK(s.drafted >= 6 * s.draft_steps - 12);
  CHECK(s.conditional_acceptance(0) > 0.5);
  CHECK(s.conditional_acceptance(5) == -1.0);
  CHECK(s.seconds_total >= s.seconds_verify);
}

TEST_CASE("tree decoder: stop conditions") {
  const std::vector<token_id> prompt{4, 9};
  const std::vector<token_id> plain = plain_greedy(prompt, 64);
  branchy_drafter b{3, 4, 10};
  SECTION("budget, with drafts accepted past it") {
    for (std::int64_t n : {0, 1, 2, 5, 13}) {
      const tree_run r = run_tree(b, verify::greedy{}, prompt, greedy_config(n));
      CHECK(r.result.reason == decode::stop_reason::budget);
      CHECK(r.result.tokens == std::vector<token_id>(plain.begin(), plain.begin() + n));
      CHECK(r.cache_length
            == static_cast<index_t>(prompt.size() + static_cast<std::size_t>(n)) - 1);
    }
  }
  SECTION("end token: the first occurrence ends the output") {
    const token_id end = plain[10];
    auto cfg = greedy_config(64);
    cfg.end_tokens = {end};
    const tree_run r = run_tree(b, verify::greedy{}, prompt, cfg);
    CHECK(r.result.reason == decode::stop_reason::end_token);
    const auto first = std::find(plain.begin(), plain.end(), end);
    CHECK(r.result.tokens == std::vector<token_id>(plain.begin(), first + 1));
  }
  SECTION("stop string spanning several tokens") {
    auto cfg = greedy_config(64);
    cfg.token_text = [](token_id, token_id t) {
      return std::string(1, static_cast<char>('a' + t));
    };
    std::string text;
    for (token_id t : plain)
      text += static_cast<char>('a' + t);
    cfg.stop_strings = {"zzzz-never", text.substr(20, 3)};
    const tree_run r = run_tree(b, verify::greedy{}, prompt, cfg);
    CHECK(r.result.reason == decode::stop_reason::stop_string);
    CHECK(r.result.tokens.size() == text.find(text.substr(20, 3)) + 3);
  }
  SECTION("context full") {
    const tree_run r = run_tree(b, verify::greedy{}, prompt, greedy_config(1000), index_t{40});
    CHECK(r.result.error.ok());
    CHECK(r.result.reason == decode::stop_reason::context_full);
    CHECK(r.result.tokens == std::vector<token_id>(plain.begin(), plain.begin() + 39));
  }
}

namespace {

// Proposers that break their request.
struct bad_proposer {
  int mode = 0; // 0: wrong root token, 1: too many nodes, 2: too deep, 3: fails
  int max_draft_nodes() const {
    return 4;
  }
  status propose_tree(const tree_draft_request& r, tree_draft& d) const {
    const token_id last = r.context[r.context.size - 1];
    d.tree.reset(mode == 0 ? static_cast<token_id>((last + 1) % vocab) : last);
    if (mode == 1)
      for (int i = 0; i <= r.max_nodes; ++i)
        (void)d.tree.add(0, static_cast<token_id>(i % vocab));
    if (mode == 2)
      for (int i = 0; i <= r.max_depth; ++i)
        (void)d.tree.add(i, 1);
    return mode == 3 ? status{errc::io_error} : status{};
  }
};

} // namespace

TEST_CASE("tree decoder: bad input and broken proposers give a status") {
  branchy_drafter b;
  CHECK(run_tree(b, verify::greedy{}, {}, greedy_config(4)).result.error.code
        == errc::invalid_argument);
  CHECK(run_tree(b, verify::greedy{}, {1, 16}, greedy_config(4)).result.error.code
        == errc::token_out_of_range);
  CHECK(run_tree(b, verify::greedy{}, std::vector<token_id>(41, 1), greedy_config(4), 40)
            .result.error.code
        == errc::overflow);
  auto cfg = greedy_config(4);
  cfg.stop_strings = {"x"};
  CHECK(run_tree(b, verify::greedy{}, {1}, cfg).result.error.code == errc::invalid_argument);
  cfg = greedy_config(4);
  cfg.params.top_p = 2.0f;
  CHECK(run_tree(b, verify::greedy{}, {1}, cfg).result.error.code == errc::invalid_top_p);
  for (int mode : {0, 1, 2}) {
    CAPTURE(mode);
    bad_proposer p{mode};
    const tree_run r = run_tree(p, verify::greedy{}, {1, 2, 3}, greedy_config(10));
    CHECK(r.result.error.code == errc::malformed_tree);
    CHECK(r.result.reason == decode::stop_reason::error);
  }
  bad_proposer failing{3};
  CHECK(run_tree(failing, verify::greedy{}, {1, 2, 3}, greedy_config(10)).result.error.code
        == errc::io_error);
}

namespace {

// Joint law of the first two emitted tokens after {3, 5} over `draws` seeded runs.
// With new_tokens > 2 the first step drafts deeper, so deeper siblings decide the second token.
// A proposer with set_seed() is re-keyed every draw (its drafts must be random draws).
template <class Target, class Proposer, class Policy>
bool first_two_fit_on(Target& target,
                      Proposer& p,
                      Policy policy,
                      std::uint64_t draws,
                      double& stat,
                      double& bound,
                      std::int64_t new_tokens = 2) {
  const std::vector<token_id> prompt{3, 5};
  decode::tree_decoder dec(target, target.cache, p, policy);
  decode::decode_config cfg;
  cfg.max_new_tokens = new_tokens;
  cfg.params.temperature = 1.0f;
  cfg.request_id = 11;
  cfg.max_draft = 8;
  std::vector<std::uint64_t> counts(static_cast<std::size_t>(vocab * vocab), 0);
  decode::decode_result out;
  for (std::uint64_t i = 0; i < draws; ++i) {
    cfg.seed = i;
    if constexpr (requires { p.set_seed(i); })
      p.set_seed(i + 1000003);
    if (!dec.generate(prompt, cfg, out).ok()
        || out.tokens.size() != static_cast<std::size_t>(new_tokens))
      FAIL("generate failed at draw " << i);
    ++counts[static_cast<std::size_t>(out.tokens[0] * vocab + out.tokens[1])];
  }
  const std::vector<double> law = specdec_test::toy_first_two_law(prompt[0], prompt[1]);
  const auto chi =
      specdec_test::pooled_chi_square(counts, specdec_test::expected_counts(law, draws));
  stat = chi.statistic;
  bound = specdec_test::chi_square_upper_quantile(chi.degrees_of_freedom, 1e-6);
  return specdec_test::fits(chi, 1e-6);
}

template <class Proposer, class Policy>
bool first_two_fit(Proposer& p, Policy policy, std::uint64_t draws, double& stat, double& bound) {
  toy_target target(64);
  return first_two_fit_on(target, p, policy, draws, stat, bound);
}

constexpr std::uint64_t gof_draws = specdec_test::by_build<std::uint64_t>(200000, 40000);

} // namespace

TEST_CASE("tree decoder: at T=1 branchy one-hot trees keep the target law [stat]") {
  // Branches whose tokens include the mode and other tokens, both depths exercised.
  branchy_drafter b{3, 2, 8};
  double stat = 0.0, bound = 0.0;
  const bool fits = first_two_fit(b, verify::one_hot_rejection{}, gof_draws, stat, bound);
  INFO("chi2 " << stat << " bound " << bound);
  CHECK(fits);
}

namespace {

// The biased sibling rule (no residual update between siblings, as TensorRT-LLM's dynamic-tree
// kernel does): it must fail the same test.
struct biased_tree_rejection {
  static constexpr bool needs_draft_rows = false;
  template <class E, class TT, class TD, class U>
  verify::tree_outcome
  verify_tree(const E& ex, const verify::tree_request<TT, TD>& r, const U& u) const {
    return verify::detail::rejection_tree<false, false>(ex, r, u);
  }
};

} // namespace

TEST_CASE("tree decoder: a biased sibling rule fails the same test [stat]") {
  branchy_drafter b{3, 2, 8};
  double stat = 0.0, bound = 0.0;
  const bool fits = first_two_fit(b, biased_tree_rejection{}, gof_draws, stat, bound);
  INFO("chi2 " << stat << " bound " << bound);
  CHECK_FALSE(fits);
}

namespace {

// The toy target with an early exit: through 1 of its 2 layers the logits are the dense
// drafter's q (half the target logits plus a position hash); through both, the target's.
// score_layers writes the scored tokens' slots without committing them and checks the layered
// contract: a call starts at or after the committed length and at most where the previous draft
// call ended.
struct toy_layered_target : toy_target {
  index_t draft_end = 0;
  std::int64_t layer_calls = 0;

  using toy_target::toy_target;
  int num_layers() const {
    return 2;
  }
  status score(const score_request& r, matrix_view<float> out) {
    draft_end = 0;
    return toy_target::score(r, out);
  }
  status score_tree(index_t start,
                    row_view<const token_id> tokens,
                    row_view<const std::int32_t> parents,
                    matrix_view<float> out) {
    draft_end = 0;
    return toy_target::score_tree(start, tokens, parents, out);
  }
  status score_layers(const score_request& r, int layers, matrix_view<float> out) {
    const index_t n = r.tokens.size;
    if (layers < 1 || layers > 2 || out.rows < n || out.cols != vocab || r.start < cache.length()
        || r.start > std::max(cache.length(), draft_end))
      return status{errc::invalid_argument};
    if (r.start + n > cache.capacity())
      return status{errc::overflow};
    for (index_t i = 0; i < n; ++i) {
      const index_t pos = r.start + i;
      const token_id prev = slot_token(pos - 1);
      cache.at(0, pos, 0) = static_cast<float>(r.tokens[i]);
      for (index_t v = 0; v < vocab; ++v)
        out(i, v) =
            static_cast<float>(layers == 2 ? toy_logit(prev, r.tokens[i], pos, v)
                                           : dense_drafter::q_logit(prev, r.tokens[i], pos, v));
    }
    draft_end = r.start + n;
    ++layer_calls;
    return status{};
  }
};

static_assert(propose::layered_model<toy_layered_target>);
static_assert(
    specdec::dense_tree_draft_proposer<propose::sampled_tree_proposer<toy_layered_target>>);
SPECDEC_CHECK(tree_target_model, toy_layered_target);

specdec::sampling::sampling_params temperature(float t) {
  specdec::sampling::sampling_params p;
  p.temperature = t;
  return p;
}

template <class Proposer, class Policy>
decode::decode_result run_layered(toy_layered_target& target,
                                  Proposer& p,
                                  Policy policy,
                                  const std::vector<token_id>& prompt,
                                  const decode::decode_config& cfg) {
  decode::tree_decoder dec(target, target.cache, p, policy);
  decode::decode_result out;
  const status s = dec.generate(prompt, cfg, out);
  if (!s.ok())
    out.error = s;
  return out;
}

} // namespace

TEST_CASE("sampled tree: the planned shape") {
  using v = std::vector<std::int32_t>;
  v parents;
  propose::sampled_tree_shape(4, 8, {2}, parents);
  CHECK(parents == v{-1, 0, 0, 1, 2, 3, 4, 5, 6}); // two sampled chains of four
  propose::sampled_tree_shape(3, 8, {3, 2}, parents);
  CHECK(parents == v{-1, 0, 0, 0, 1, 1, 2, 2, 3}); // cut by the budget at depth 2
  propose::sampled_tree_shape(3, 100, {2, 2}, parents);
  CHECK(parents == v{-1, 0, 0, 1, 1, 2, 2, 3, 4, 5, 6});
  propose::sampled_tree_shape(5, 3, {}, parents);
  CHECK(parents == v{-1, 0, 1, 2});
  propose::sampled_tree_shape(0, 8, {2}, parents);
  CHECK(parents == v{-1});
  propose::sampled_tree_shape(2, 0, {2}, parents);
  CHECK(parents == v{-1});
}

TEST_CASE("sampled tree: rows, draft_index and draws") {
  const std::vector<token_id> context{3, 5, 9};
  std::vector<float> buf(static_cast<std::size_t>(8 * vocab));
  const auto draft_with = [&](const propose::sampled_tree_config& c,
                              std::int32_t rows,
                              toy_layered_target& t,
                              tree_draft& d) {
    REQUIRE(t.score({0, {context.data(), 2}, 0}, {buf.data(), 2, vocab, vocab}).ok());
    propose::sampled_tree_proposer<toy_layered_target> p(t, c);
    d.probs = {buf.data(), rows, vocab, vocab};
    const status s = p.propose_tree({0, {context.data(), 3}, 8, 3}, d);
    if (s.ok())
      CHECK(p.last_rows_scored() == p.total_rows_scored());
    return std::pair{s, p.last_rows_scored()};
  };
  toy_layered_target t(64);
  tree_draft d;
  int differing = 0;
  for (std::uint64_t seed = 0; seed < 8; ++seed) {
    CAPTURE(seed);
    const propose::sampled_tree_config c{1, 3, 8, {3, 2}, temperature(1.0f), seed};
    const auto [s, rows] = draft_with(c, 8, t, d);
    REQUIRE(s.ok());
    // Expanded: the root (row 0) and the three depth-1 nodes (rows 1..3, scored depth first).
    CHECK(rows == 4);
    REQUIRE(d.tree.size() == 9);
    CHECK(std::vector<std::int32_t>(d.tree.parents().begin(), d.tree.parents().end())
          == std::vector<std::int32_t>{-1, 0, 0, 0, 1, 1, 2, 2, 3});
    CHECK(d.draft_index == std::vector<std::int32_t>{0, 0, 0, 0, 1, 1, 2, 2, 3});
    CHECK(d.probs_kind == specdec::distribution_kind::logits);
    // Each row is q after its node's root path (the parent's slot held the parent's token).
    for (std::int32_t u : {0, 1, 2, 3}) {
      const token_id x = d.tree.tokens()[static_cast<std::size_t>(u)];
      const token_id prev = u == 0 ? context[1] : context[2];
      const index_t pos = 2 + (u == 0 ? 0 : 1);
      const std::int32_t row = u == 0 ? 0 : u;
      for (index_t v = 0; v < vocab; ++v)
        CHECK(buf[static_cast<std::size_t>(row * vocab + v)]
              == static_cast<float>(dense_drafter::q_logit(prev, x, pos, v)));
    }
    const auto tok = d.tree.tokens();
    differing += (tok[1] != tok[2] || tok[2] != tok[3]) ? 1 : 0;
    // Seeded: the same seed draws the same tree.
    tree_draft again;
    REQUIRE(draft_with(c, 8, t, again).first.ok());
    CHECK(std::vector<token_id>(again.tree.tokens().begin(), again.tree.tokens().end())
          == std::vector<token_id>(tok.begin(), tok.end()));
  }
  CHECK(differing >= 4); // i.i.d. siblings: usually not all equal
  // Temperature 0: every child is the row's argmax (duplicates kept as separate nodes).
  {
    const auto [s, rows] = draft_with({1, 3, 8, {3, 2}, temperature(0.0f), 0}, 8, t, d);
    REQUIRE(s.ok());
    REQUIRE(d.tree.size() == 9);
    CHECK(d.tree.tokens()[1] == d.tree.tokens()[2]);
    CHECK(d.tree.tokens()[2] == d.tree.tokens()[3]);
    CHECK(d.tree.tokens()[4] == d.tree.tokens()[5]);
  }
  // Errors.
  CHECK(draft_with({1, 3, 8, {3, 2}, temperature(1.0f), 0}, 3, t, d).first.code
        == errc::shape_mismatch);
  CHECK(draft_with({3, 3, 8, {2}, temperature(1.0f), 0}, 8, t, d).first.code
        == errc::invalid_argument);
  CHECK(draft_with({1, 3, 8, {0}, temperature(1.0f), 0}, 8, t, d).first.code
        == errc::invalid_argument);
  CHECK(draft_with({1, 3, 8, {17}, temperature(1.0f), 0}, 8, t, d).first.code
        == errc::invalid_argument);
  CHECK(draft_with({1, 0, 8, {2}, temperature(1.0f), 0}, 8, t, d).first.code
        == errc::invalid_argument);
  auto bad = temperature(1.0f);
  bad.top_p = 2.0f;
  CHECK(draft_with({1, 3, 8, {2}, bad, 0}, 8, t, d).first.code == errc::invalid_top_p);
  CHECK(d.tree.size() == 1);
}

TEST_CASE("sampled tree: branching {1} is the early-exit chain drafter") {
  const std::vector<token_id> prompt{4, 9, 2};
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    CAPTURE(seed);
    decode::decode_config cfg = greedy_config(150, 4);
    cfg.params.temperature = 1.0f;
    cfg.seed = seed;
    cfg.request_id = 5;
    toy_layered_target t1(512), t2(512);
    propose::early_exit_proposer<toy_layered_target> ee(t1, {1, 4, cfg.params, seed + 9});
    propose::chain_tree_proposer<propose::early_exit_proposer<toy_layered_target>> chain(ee);
    propose::sampled_tree_proposer<toy_layered_target> st(t2, {1, 8, 4, {1}, cfg.params, seed + 9});
    const auto a = run_layered(t1, chain, verify::rejection_sampling{}, prompt, cfg);
    const auto b = run_layered(t2, st, verify::rejection_sampling{}, prompt, cfg);
    REQUIRE(a.error.ok());
    REQUIRE(b.error.ok());
    CHECK(b.tokens == a.tokens);
    CHECK(b.stats.accepted == a.stats.accepted);
    CHECK(b.stats.hits == a.stats.hits);
    CHECK(b.stats.accepted > 0);
    check_consistent(b.stats);
  }
}

TEST_CASE("sampled tree: greedy output equals plain greedy decoding") {
  const std::vector<token_id> prompt{1, 7, 3};
  const std::vector<token_id> plain = plain_greedy(prompt, 200);
  for (const std::vector<int>& branching :
       {std::vector<int>{1}, std::vector<int>{2}, std::vector<int>{3, 2}}) {
    for (int budget : {1, 4, 9}) {
      CAPTURE(branching, budget);
      toy_layered_target t(512);
      propose::sampled_tree_proposer<toy_layered_target> st(
          t, {1, 4, budget, branching, temperature(0.0f), 3});
      const auto g = run_layered(t, st, verify::greedy{}, prompt, greedy_config(200, budget));
      REQUIRE(g.error.ok());
      CHECK(g.tokens == plain);
      check_consistent(g.stats);
      const auto r =
          run_layered(t, st, verify::rejection_sampling{}, prompt, greedy_config(200, budget));
      REQUIRE(r.error.ok());
      CHECK(r.tokens == plain);
      CHECK(t.cache.length() == static_cast<index_t>(prompt.size() + plain.size()) - 1);
    }
  }
}

TEST_CASE("sampled tree: at T=1 dense multi-draft rejection keeps the target law [stat]") {
  // Three i.i.d. children of the root, two of each depth-1 node (budget 8): with 3 tokens to
  // emit the first step drafts depth 2, so both sibling levels decide the first two tokens.
  toy_layered_target t(64);
  propose::sampled_tree_proposer<toy_layered_target> st(t, {1, 2, 8, {3, 2}, temperature(1.0f), 0});
  double stat = 0.0, bound = 0.0;
  const bool fits =
      first_two_fit_on(t, st, verify::rejection_sampling{}, gof_draws * 3 / 5, stat, bound, 3);
  INFO("chi2 " << stat << " bound " << bound);
  CHECK(fits);
  CHECK(st.total_rows_scored() >= static_cast<std::int64_t>(gof_draws));
}

namespace {

// The dense sibling rule without the residual update: it must fail the same test (a tenth of
// the draws is plenty: its statistic is about 100 times the bound at full size).
struct biased_dense_tree_rejection {
  static constexpr bool needs_draft_rows = true;
  template <class E, class TT, class TD, class U>
  verify::tree_outcome
  verify_tree(const E& ex, const verify::tree_request<TT, TD>& r, const U& u) const {
    return verify::detail::rejection_tree<true, false>(ex, r, u);
  }
};

} // namespace

TEST_CASE("sampled tree: a biased dense sibling rule fails the same test [stat]") {
  toy_layered_target t(64);
  propose::sampled_tree_proposer<toy_layered_target> st(t, {1, 2, 8, {3, 2}, temperature(1.0f), 0});
  double stat = 0.0, bound = 0.0;
  const bool fits =
      first_two_fit_on(t, st, biased_dense_tree_rejection{}, gof_draws / 10, stat, bound, 3);
  INFO("chi2 " << stat << " bound " << bound);
  CHECK_FALSE(fits);
}
