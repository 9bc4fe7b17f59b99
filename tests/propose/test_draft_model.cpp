// SPDX-License-Identifier: Apache-2.0
// propose::draft_model_proposer: a separate model with its own KV cache as an autoregressive
// drafter. Mechanics on a toy draft model (cache in step with verification, no re-prefill of
// accepted tokens, resynchronisation after a rewritten context, resume), losslessness by
// goodness of fit through rejection sampling (a misconfigured drafter fails), and greedy
// equality with plain decoding on stories260K (chain and chain-shaped tree).
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/decode/tree_decoder.hpp>
#include <specdec/kv/contiguous_cache.hpp>
#include <specdec/propose/chain_tree.hpp>
#include <specdec/propose/draft_model.hpp>
#include <specdec/propose/no_draft.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/rejection.hpp>

#include <catch2/catch.hpp>

#include "support/llama2c.hpp"
#include "support/sanitizer.hpp"
#include "support/stats.hpp"
#include "support/toy_target.hpp"
#include <cstdint>
#include <vector>

namespace {

using namespace specdec;
using specdec_test::toy_target;
using specdec_test::toy_vocab;

/// The toy draft model: q = softmax(0.5 * target logits + a position hash) after the token in
/// the previous cache slot, so a stale or wrong cache changes its rows.
struct toy_draft_model {
  kv::contiguous_cache<float> cache;
  std::int64_t rows_scored = 0;

  explicit toy_draft_model(index_t capacity) {
    const kv::plane_desc d{1, kv::plane_layout::position_major};
    REQUIRE(cache.allocate(capacity, {&d, 1}).ok());
  }
  index_t vocab_size() const {
    return toy_vocab;
  }
  status score(const score_request& r, matrix_view<float> out) {
    const index_t n = r.tokens.size;
    if (r.start < 0 || r.start > cache.length() || out.rows < n || out.cols != toy_vocab)
      return status{errc::invalid_argument};
    if (r.start + n > cache.capacity())
      return status{errc::overflow};
    (void)cache.rollback(r.start);
    for (index_t i = 0; i < n; ++i) {
      const index_t pos = r.start + i;
      const token_id prev = pos > 0 ? static_cast<token_id>(cache.at(0, pos - 1, 0)) : -1;
      cache.at(0, pos, 0) = static_cast<float>(r.tokens[i]);
      for (index_t v = 0; v < toy_vocab; ++v)
        out(i, v) =
            static_cast<float>(specdec_test::toy_dense_drafter::q_logit(prev, r.tokens[i], pos, v));
    }
    rows_scored += n;
    return cache.extend(r.start + n);
  }
};

using toy_proposer = propose::draft_model_proposer<toy_draft_model, kv::contiguous_cache<float>>;
static_assert(stateful_proposer<toy_proposer>);
static_assert(dense_draft_proposer<toy_proposer>);
static_assert(!feature_proposer<toy_proposer>);
static_assert(stateful_proposer<propose::chain_tree_proposer<toy_proposer>>);
static_assert(dense_tree_draft_proposer<propose::chain_tree_proposer<toy_proposer>>);
static_assert(!stateful_proposer<propose::chain_tree_proposer<specdec_test::toy_oracle_drafter>>);
SPECDEC_CHECK(stateful_proposer, toy_proposer);

struct joint_fit {
  specdec_test::chi_square_result chi;
  double bound = 0.0;
  bool fits = false;
};

// Joint law of the first two emitted tokens after {3, 5} over `draws` seeded runs (one round
// drafts one token, the next emits the second token).
joint_fit first_two_tokens(float drafter_temperature, std::uint64_t draws) {
  const std::vector<token_id> prompt{3, 5};
  toy_target target(64);
  toy_draft_model dm(64);
  propose::draft_model_config dc;
  dc.max_draft = 3;
  dc.params.temperature = drafter_temperature;
  toy_proposer p(dm, dm.cache, dc);
  decode::speculative_decoder dec(
      target, target.cache, p, verify::rejection_sampling{}, sched::fixed_draft_length{3});
  decode::decode_config cfg;
  cfg.max_new_tokens = 2;
  cfg.params.temperature = 1.0f;
  cfg.request_id = 11;
  std::vector<std::uint64_t> counts(static_cast<std::size_t>(toy_vocab * toy_vocab), 0);
  decode::decode_result out;
  for (std::uint64_t i = 0; i < draws; ++i) {
    cfg.seed = i;
    p.set_seed(i * 7919 + 1);
    if (!dec.generate(prompt, cfg, out).ok() || out.tokens.size() < 2)
      FAIL("generate failed at draw " << i);
    ++counts[static_cast<std::size_t>(out.tokens[0] * toy_vocab + out.tokens[1])];
  }
  const std::vector<double> law = specdec_test::toy_first_two_law(prompt[0], prompt[1]);
  joint_fit f;
  f.chi = specdec_test::pooled_chi_square(counts, specdec_test::expected_counts(law, draws));
  f.bound = specdec_test::chi_square_upper_quantile(f.chi.degrees_of_freedom, 1e-6);
  f.fits = specdec_test::fits(f.chi, 1e-6);
  return f;
}

decode::decode_config greedy_config(std::int64_t budget, std::int32_t max_draft) {
  decode::decode_config cfg;
  cfg.max_new_tokens = budget;
  cfg.max_draft = max_draft;
  cfg.params.temperature = 0.0f;
  cfg.request_id = 5;
  return cfg;
}

} // namespace

TEST_CASE("draft model: the cache follows verification and accepted tokens are never rescored",
          "[propose][draft_model]") {
  const std::vector<token_id> prompt{3, 5, 7, 1, 2};
  toy_target target(256);
  toy_draft_model dm(256);
  propose::draft_model_config dc;
  dc.max_draft = 4;
  dc.params.temperature = 0.0f; // greedy drafts, greedy verification
  toy_proposer p(dm, dm.cache, dc);
  decode::speculative_decoder dec(
      target, target.cache, p, verify::greedy{}, sched::fixed_draft_length{4});
  std::vector<decode::step_record> steps;
  decode::decode_config cfg = greedy_config(100, 4);
  cfg.on_step = [&](const decode::step_record& s) { steps.push_back(s); };
  decode::decode_result out;
  REQUIRE(dec.generate(prompt, cfg, out).ok());
  REQUIRE(out.stats.drafted > 0);
  CHECK(out.stats.accepted > 0);
  CHECK(out.stats.accepted < out.stats.drafted); // q differs from the target

  // Scored: the prompt but its last token once, then per round the pending tokens (the anchor,
  // plus the last draft when all were accepted) and one row per further draft. Nothing else.
  std::int64_t expected = static_cast<std::int64_t>(prompt.size()) - 1;
  for (const decode::step_record& s : steps) {
    if (s.drafted == 0)
      continue;
    expected += 1 + (s.drafted - 1); // anchor + drafts 2..k
  }
  std::int64_t full = 0;
  for (std::size_t i = 0; i + 1 < steps.size(); ++i)
    if (steps[i].drafted > 0 && steps[i].accepted == steps[i].drafted)
      ++full; // the last draft, scored with the next round's anchor
  // The scored count is exactly that (a re-prefill would cost the whole context per round).
  CHECK(p.tokens_scored() <= expected + full);
  CHECK(p.tokens_scored() >= expected);
  CHECK(dm.cache.length() == 0); // end() released the request
}

TEST_CASE("draft model: a rewritten or resumed context is resynchronised, never trusted",
          "[propose][draft_model]") {
  toy_draft_model dm(128);
  toy_draft_model fresh_model(128);
  propose::draft_model_config dc;
  dc.max_draft = 3;
  toy_proposer p(dm, dm.cache, dc);
  toy_proposer fresh(fresh_model, fresh_model.cache, dc);
  const std::vector<token_id> a{3, 5, 7, 1, 2, 9, 4};
  std::vector<token_id> b = a;
  b[3] = 11; // rewritten in the middle
  std::vector<token_id> tok(3), tok2(3);
  std::vector<float> rows(3 * toy_vocab), rows2(3 * toy_vocab);
  REQUIRE(p.begin(1, {a.data(), 7}).ok());
  draft_block blk{{tok.data(), 3}, {rows.data(), 3, toy_vocab, toy_vocab}};
  REQUIRE(p.propose({1, {a.data(), 7}, 3}, blk).ok());
  // Same request, other context: the rows equal a fresh drafter's on that context.
  REQUIRE(p.propose({1, {b.data(), 7}, 3}, blk).ok());
  draft_block blk2{{tok2.data(), 3}, {rows2.data(), 3, toy_vocab, toy_vocab}};
  REQUIRE(fresh.begin(1, {b.data(), 7}).ok());
  REQUIRE(fresh.propose({1, {b.data(), 7}, 3}, blk2).ok());
  CHECK(blk.length == blk2.length);
  CHECK(tok == tok2);
  CHECK(rows == rows2);
  // Resume: begin again at a longer context.
  std::vector<token_id> c = b;
  c.push_back(6);
  REQUIRE(p.begin(1, {c.data(), 8}).ok());
  REQUIRE(p.propose({1, {c.data(), 8}, 3}, blk).ok());
  REQUIRE(fresh.begin(1, {c.data(), 8}).ok());
  REQUIRE(fresh.propose({1, {c.data(), 8}, 3}, blk2).ok());
  CHECK(tok == tok2);
  CHECK(rows == rows2);
  p.end(1);
  fresh.end(1);
}

TEST_CASE("draft model: rejection sampling with its rows is lossless at T = 1 (1e6 runs)",
          "[propose][draft_model][stat]") {
  const std::uint64_t draws = specdec_test::by_build<std::uint64_t>(1000000, 100000);
  const joint_fit f = first_two_tokens(1.0f, draws);
  INFO("chi2 " << f.chi.statistic << " dof " << f.chi.degrees_of_freedom << " bound " << f.bound
               << " min expected " << f.chi.min_expected);
  CHECK(f.chi.min_expected > 5.0);
  CHECK(f.fits);
}

TEST_CASE("draft model: a drafter sampling at another temperature than it reports fails",
          "[propose][draft_model][stat]") {
  // The drafter draws at T = 0.5 but hands its raw rows to a T = 1 verifier: q is misreported.
  const std::uint64_t draws = specdec_test::by_build<std::uint64_t>(1000000, 100000);
  const joint_fit f = first_two_tokens(0.5f, draws);
  INFO("chi2 " << f.chi.statistic << " bound " << f.bound);
  CHECK_FALSE(f.fits);
}

TEST_CASE("draft model: a second stories260K instance drafts; greedy output is plain decoding",
          "[propose][draft_model][llama2c]") {
  llama2c::model& target = specdec_test::shared_model();
  llama2c::model& draft = specdec_test::shared_model_once(); // a separate instance, own cache
  REQUIRE(&target != &draft);
  const std::vector<token_id> prompt{1, 403, 261, 378};

  propose::no_drafter none;
  decode::speculative_decoder plain(target, target.cache(), none, verify::greedy{});
  decode::decode_result want;
  REQUIRE(plain.generate(prompt, greedy_config(60, 4), want).ok());

  using proposer = propose::draft_model_proposer<llama2c::model, kv::contiguous_cache<float>>;
  propose::draft_model_config dc;
  dc.max_draft = 4;
  dc.params.temperature = 0.0f;
  proposer p(draft, draft.cache(), dc);
  decode::speculative_decoder dec(
      target, target.cache(), p, verify::greedy{}, sched::fixed_draft_length{4});
  decode::decode_result got;
  REQUIRE(dec.generate(prompt, greedy_config(60, 4), got).ok());
  CHECK(got.tokens == want.tokens);
  // The same model drafting greedily: every draft is accepted (batch-invariant rows).
  CHECK(got.stats.drafted > 0);
  CHECK(got.stats.accepted == got.stats.drafted);
  CHECK(p.tokens_scored() < static_cast<std::int64_t>(prompt.size() + 2 * want.tokens.size()));

  // Tree form: the chain drafter as a chain-shaped tree (lifecycle forwarded).
  propose::chain_tree_proposer<proposer> tp(p);
  decode::tree_decoder tdec(target, target.cache(), tp, verify::greedy{});
  decode::decode_result tgot;
  REQUIRE(tdec.generate(prompt, greedy_config(60, 4), tgot).ok());
  CHECK(tgot.tokens == want.tokens);
  CHECK(tgot.stats.accepted == tgot.stats.drafted);
}
