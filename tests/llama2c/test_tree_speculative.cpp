// SPDX-License-Identifier: Apache-2.0
//
// Token-tree speculative decoding on the real model (stories260K):
//   - greedy tree decoding equals plain greedy decoding token for token with the n-gram tree
//     drafter and the early-exit tree drafter (several budgets, depths, top-k and exit layers),
//     on a story prompt and on a copy-heavy prompt; the cache ends at the right length;
//   - an early-exit tree through every layer drafts the target's own argmax first, so every
//     drafting step accepts at least one node;
//   - at temperature 1 a chain-shaped tree (the early-exit chain drafter through
//     chain_tree_proposer, dense rejection sampling) reproduces the chain loop token for token;
//   - the sampled multi-draft tree drafter (i.i.d. siblings, dense rows): greedy output equals
//     plain greedy decoding; with branching {1} it reproduces the early-exit chain at T = 1; at
//     T = 1 with dense rejection sampling it runs clean (valid tokens, one row per expanded node,
//     consistent statistics);
//   - the chain-versus-tree comparison of the tree demo runs at temperature 0 (all outputs equal
//     plain greedy decoding) and 1, with consistent statistics.
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/decode/tree_decoder.hpp>
#include <specdec/propose/chain_tree.hpp>
#include <specdec/propose/early_exit.hpp>
#include <specdec/propose/early_exit_tree.hpp>
#include <specdec/propose/ngram_tree.hpp>
#include <specdec/propose/no_draft.hpp>
#include <specdec/propose/sampled_tree.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/rejection.hpp>

#include <catch2/catch.hpp>

#include "llama2c/model.hpp"
#include "llama2c/paths.hpp"
#include "llama2c/session.hpp"
#include "support/llama2c.hpp"
#include "support/sanitizer.hpp"
#include <vector>

namespace {

using specdec::index_t;
using specdec::status;
using specdec::token_id;
using specdec_test::shared_model_once;
namespace decode = specdec::decode;
namespace propose = specdec::propose;

constexpr std::int64_t scale =
    specdec_test::by_build<std::int64_t>(1, 4); // sanitized builds: a quarter of the tokens

decode::decode_config greedy_config(std::int64_t n, std::int32_t max_draft) {
  decode::decode_config cfg;
  cfg.max_new_tokens = n;
  cfg.max_draft = max_draft;
  cfg.params.temperature = 0.0f;
  return cfg;
}

std::vector<token_id> plain_greedy(const std::vector<token_id>& prompt, std::int64_t n) {
  llama2c::model& m = shared_model_once();
  propose::no_drafter none;
  decode::speculative_decoder dec(
      m, m.cache(), none, specdec::verify::greedy{}, specdec::sched::fixed_draft_length{0});
  decode::decode_result r;
  REQUIRE(dec.generate(prompt, greedy_config(n, 0), r).ok());
  return r.tokens;
}

template <class Proposer>
decode::decode_result
tree_greedy(Proposer& p, const std::vector<token_id>& prompt, std::int64_t n, std::int32_t budget) {
  llama2c::model& m = shared_model_once();
  decode::tree_decoder dec(m, m.cache(), p, specdec::verify::greedy{});
  decode::decode_result r;
  REQUIRE(dec.generate(prompt, greedy_config(n, budget), r).ok());
  // The cache holds the prompt and the output but the last token.
  CHECK(m.cache().length() == static_cast<index_t>(prompt.size() + r.tokens.size()) - 1);
  return r;
}

} // namespace

TEST_CASE("llama2c tree speculative: greedy tree output equals plain greedy") {
  // The greedy story ends with BOS at index 345, after which the model tells it again: a prompt
  // holding it is copy-heavy.
  const std::vector<token_id> story = plain_greedy({1}, 346);
  std::vector<token_id> copy_heavy{1};
  copy_heavy.insert(copy_heavy.end(), story.begin(), story.end());
  struct prompt_case {
    std::vector<token_id> tokens;
    std::int64_t steps;
  };
  for (const prompt_case& pc :
       {prompt_case{{1}, 160 / scale}, prompt_case{copy_heavy, 100 / scale}}) {
    const std::vector<token_id> plain = plain_greedy(pc.tokens, pc.steps);
    REQUIRE(plain.size() == static_cast<std::size_t>(pc.steps));
    for (int budget : {1, 4, 12}) {
      CAPTURE(pc.tokens.size(), budget);
      propose::ngram_tree_proposer ng({1, 16, 8, budget, 0, 4, 0});
      const decode::decode_result r = tree_greedy(ng, pc.tokens, pc.steps, budget);
      CHECK(r.tokens == plain);
      if (pc.tokens.size() > 1 && budget > 1)
        CHECK(r.stats.tau() > 2.0); // the copy-heavy prompt repeats the continuation
    }
    for (int layers : {1, 3}) {
      for (int budget : {2, 8}) {
        for (int top_k : {1, 4}) {
          CAPTURE(pc.tokens.size(), layers, budget, top_k);
          propose::early_exit_tree_proposer<llama2c::model> ee(
              shared_model_once(), {layers, std::min(4, budget), top_k, budget});
          const decode::decode_result r = tree_greedy(ee, pc.tokens, pc.steps, budget);
          CHECK(r.tokens == plain);
          CHECK(r.stats.drafted > 0);
          CHECK(ee.total_rows_scored() > 0);
        }
      }
    }
  }
}

TEST_CASE("llama2c tree speculative: an early-exit tree through every layer is always right "
          "first") {
  llama2c::model& m = shared_model_once();
  const std::vector<token_id> plain = plain_greedy({1}, 120 / scale);
  propose::early_exit_tree_proposer<llama2c::model> ee(m, {m.num_layers(), 3, 3, 6});
  const decode::decode_result r = tree_greedy(ee, {1}, 120 / scale, 6);
  CHECK(r.tokens == plain);
  // The depth-1 node with the highest draft probability is the target's argmax and always kept.
  CHECK(r.stats.accepted >= r.stats.draft_steps);
  CHECK(r.stats.conditional_acceptance(0) == 1.0);
  CHECK(r.stats.tau() > 2.0);
}

TEST_CASE("llama2c tree speculative: a chain-shaped tree reproduces the chain loop at T=1") {
  llama2c::model& m = shared_model_once();
  for (std::uint64_t seed : {3u, 4u}) {
    CAPTURE(seed);
    decode::decode_config cfg = greedy_config(96 / scale, 3);
    cfg.params.temperature = 1.0f;
    cfg.seed = seed;
    const specdec::propose::early_exit_config ec{3, 3, cfg.params, seed + 1};
    decode::decode_result chain, tree;
    {
      propose::early_exit_proposer<llama2c::model> ee(m, ec);
      decode::speculative_decoder dec(m,
                                      m.cache(),
                                      ee,
                                      specdec::verify::rejection_sampling{},
                                      specdec::sched::fixed_draft_length{3});
      REQUIRE(dec.generate(std::vector<token_id>{1}, cfg, chain).ok());
    }
    {
      propose::early_exit_proposer<llama2c::model> ee(m, ec);
      propose::chain_tree_proposer<propose::early_exit_proposer<llama2c::model>> adapter(ee);
      decode::tree_decoder dec(m, m.cache(), adapter, specdec::verify::rejection_sampling{});
      REQUIRE(dec.generate(std::vector<token_id>{1}, cfg, tree).ok());
    }
    CHECK(tree.tokens == chain.tokens);
    CHECK(tree.stats.accepted == chain.stats.accepted);
    CHECK(tree.stats.hits == chain.stats.hits);
    CHECK(tree.stats.accepted > 0);
  }
}

TEST_CASE("llama2c tree speculative: sampled trees keep greedy output exact") {
  llama2c::model& m = shared_model_once();
  const std::vector<token_id> plain = plain_greedy({1}, 120 / scale);
  for (const std::vector<int>& branching :
       {std::vector<int>{1}, std::vector<int>{3}, std::vector<int>{2, 2}}) {
    for (int budget : {3, 8}) {
      CAPTURE(branching, budget);
      specdec::sampling::sampling_params greedy;
      greedy.temperature = 0.0f;
      propose::sampled_tree_proposer<llama2c::model> st(m,
                                                        {2, budget, budget, branching, greedy, 1});
      const decode::decode_result r = tree_greedy(st, {1}, 120 / scale, budget);
      CHECK(r.tokens == plain);
      CHECK(r.stats.drafted > 0);
      CHECK(st.total_rows_scored() > 0);
    }
  }
}

TEST_CASE("llama2c tree speculative: sampled trees at T=1 (branching {1} is the chain)") {
  llama2c::model& m = shared_model_once();
  for (std::uint64_t seed : {5u, 6u}) {
    CAPTURE(seed);
    decode::decode_config cfg = greedy_config(96 / scale, 4);
    cfg.params.temperature = 1.0f;
    cfg.seed = seed;
    decode::decode_result chain, single, multi;
    {
      propose::early_exit_proposer<llama2c::model> ee(m, {3, 4, cfg.params, seed + 1});
      propose::chain_tree_proposer<propose::early_exit_proposer<llama2c::model>> adapter(ee);
      decode::tree_decoder dec(m, m.cache(), adapter, specdec::verify::rejection_sampling{});
      REQUIRE(dec.generate(std::vector<token_id>{1}, cfg, chain).ok());
    }
    {
      propose::sampled_tree_proposer<llama2c::model> st(m, {3, 4, 4, {1}, cfg.params, seed + 1});
      decode::tree_decoder dec(m, m.cache(), st, specdec::verify::rejection_sampling{});
      REQUIRE(dec.generate(std::vector<token_id>{1}, cfg, single).ok());
    }
    CHECK(single.tokens == chain.tokens);
    CHECK(single.stats.hits == chain.stats.hits);
    // A 4-node multi-draft tree: smoke run, no error statuses, valid tokens, sane counters.
    cfg.max_new_tokens = 128 / scale;
    cfg.max_draft = 8;
    propose::sampled_tree_proposer<llama2c::model> st(m, {3, 8, 8, {3, 2}, cfg.params, seed + 1});
    decode::tree_decoder dec(m, m.cache(), st, specdec::verify::rejection_sampling{});
    const status s = dec.generate(std::vector<token_id>{1}, cfg, multi);
    REQUIRE(s.ok());
    CHECK(multi.reason == decode::stop_reason::budget);
    CHECK(multi.tokens.size() == static_cast<std::size_t>(cfg.max_new_tokens));
    for (token_id t : multi.tokens)
      CHECK((t >= 0 && static_cast<index_t>(t) < m.vocab_size()));
    const auto& stats = multi.stats;
    CHECK(stats.accepted + stats.steps == stats.emitted);
    CHECK(stats.accepted > 0);
    CHECK(stats.drafted <= 8 * stats.steps);
    CHECK(stats.tau() > 1.0);
    // Depth first: one draft row per expanded node, at most the root plus 4 internal nodes.
    CHECK(st.total_rows_scored() <= 4 * stats.steps);
    CHECK(m.cache().length() == static_cast<index_t>(1 + multi.tokens.size()) - 1);
  }
}

TEST_CASE("llama2c tree speculative: the chain-versus-tree comparison runs and is exact") {
  llama2c::model& m = shared_model_once();
  llama2c::tree_compare_options o;
  o.budgets = {2, 5};
  o.layers = 3;
  o.seeds = 2;
  o.steps = 64 / scale;
  o.stop_at_bos = false;
  std::vector<llama2c::tau_entry> rows;
  const std::vector<token_id> prompt{1};
  REQUIRE(llama2c::compare_chain_tree(m, prompt, o, rows).ok());
  REQUIRE(rows.size() == std::size_t{8}); // 2 temperatures x 2 drafters x 2 budgets
  for (const llama2c::tau_entry& e : rows) {
    CAPTURE(static_cast<int>(e.drafter), e.budget, e.temperature);
    CHECK(e.chain_identical);
    CHECK(e.tree_identical);
    CHECK(e.sampled_identical);
    if (e.drafter == llama2c::drafter_kind::early_exit) {
      CHECK(e.sampled.emitted >= (e.temperature == 0.0f ? 1 : 2) * o.steps);
      CHECK(e.sampled.accepted + e.sampled.steps == e.sampled.emitted);
      CHECK(llama2c::tau_entry::rows_per_step(e.sampled) <= e.budget + 1.0);
      CHECK(e.sampled_draft_rows <= e.budget);
    } else {
      CHECK(e.sampled.steps == 0);
    }
    const int runs = e.temperature == 0.0f ? 1 : 2;
    CHECK(e.chain.emitted >= runs * o.steps);
    CHECK(e.tree.emitted >= runs * o.steps);
    CHECK(e.chain.tau() >= 1.0);
    CHECK(e.tree.tau() >= 1.0);
    CHECK(llama2c::tau_entry::rows_per_step(e.tree) <= e.budget + 1.0);
    CHECK(llama2c::tau_entry::rows_per_step(e.chain) <= e.budget + 1.0);
    CHECK(e.tree.accepted + e.tree.steps == e.tree.emitted);
  }
  o.budgets = {0};
  CHECK(llama2c::compare_chain_tree(m, prompt, o, rows).code == specdec::errc::invalid_argument);
}
