// SPDX-License-Identifier: Apache-2.0
// The proposer lifecycle (propose/concepts.hpp: begin / propose / observe / end) as both decoders
// drive it through the one loop skeleton (decode/loop.hpp), the target features a
// feature_proposer receives, and the tree decoder's on_step reports.
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/decode/tree_decoder.hpp>
#include <specdec/propose/chain_tree.hpp>
#include <specdec/propose/concepts.hpp>
#include <specdec/verify/greedy.hpp>

#include <catch2/catch.hpp>

#include "support/toy_target.hpp"
#include <cstdint>
#include <vector>

namespace {

using namespace specdec;
using specdec_test::toy_oracle_drafter;
using specdec_test::toy_target;
using specdec_test::toy_vocab;

/// What a recording proposer saw.
struct lifecycle_log {
  std::vector<std::uint64_t> begun;
  std::vector<std::uint64_t> ended;
  std::vector<token_id> prompt;
  std::vector<token_id> committed;   // every observed round's tokens, in order
  std::vector<round_outcome> rounds; // (views not kept valid; counts only)
  int context_mismatches = 0;        // propose contexts other than prompt + committed
  int feature_mismatches = 0;        // observed feature rows other than expected
  int fail_observe_at = -1;          // observe returns an error at this round
};

/// Checks that a propose context is prompt + what was observed so far.
void check_context(lifecycle_log& log, row_view<const token_id> ctx) {
  const std::size_t want = log.prompt.size() + log.committed.size();
  bool ok = static_cast<std::size_t>(ctx.size) == want;
  for (std::size_t i = 0; ok && i < want; ++i) {
    const token_id t = i < log.prompt.size() ? log.prompt[i] : log.committed[i - log.prompt.size()];
    ok = ctx[static_cast<index_t>(i)] == t;
  }
  if (!ok)
    ++log.context_mismatches;
}

/// Features of the toy feature target: layer l of the row for token t at position p.
float toy_feature(std::int32_t layer, token_id t, index_t p, index_t h) {
  return static_cast<float>(layer * 1000 + static_cast<int>(p) * 10 + static_cast<int>(h))
         + static_cast<float>(t) * 0.01f;
}

/// Records what it observes and checks the features of the kept rows.
void record(lifecycle_log& log, const round_outcome& o, std::vector<std::int32_t> const* layers) {
  log.rounds.push_back(o);
  if (layers != nullptr) {
    const index_t hidden = 2;
    bool ok = o.features.rows == o.accepted + 1
              && o.features.cols == static_cast<index_t>(layers->size()) * hidden;
    for (index_t j = 0; ok && j <= o.accepted; ++j) {
      // Row 0: the anchor (the last committed token before the round), row j: draft j.
      const std::size_t total = log.prompt.size() + log.committed.size();
      const token_id t = j == 0 ? (log.committed.empty() ? log.prompt.back() : log.committed.back())
                                : o.tokens[j - 1];
      (void)total;
      const index_t p = o.position - 1 + j;
      for (std::size_t l = 0; ok && l < layers->size(); ++l)
        for (index_t h = 0; h < hidden; ++h)
          ok = ok
               && o.features(j, static_cast<index_t>(l) * hidden + h)
                      == toy_feature((*layers)[l], t, p, h);
    }
    if (!ok)
      ++log.feature_mismatches;
  }
  for (index_t j = 0; j < o.tokens.size; ++j)
    log.committed.push_back(o.tokens[j]);
}

/// A stateful chain proposer: the oracle drafter plus the lifecycle, recording everything.
struct recording_proposer {
  toy_oracle_drafter inner{};
  lifecycle_log* log = nullptr;

  status begin(std::uint64_t id, row_view<const token_id> prompt) {
    log->begun.push_back(id);
    log->prompt.assign(prompt.data, prompt.data + prompt.size);
    log->committed.clear();
    return status{};
  }
  status propose(const draft_request& r, draft_block& b) {
    check_context(*log, r.context);
    return inner.propose(r, b);
  }
  status observe(const round_outcome& o) {
    if (static_cast<int>(log->rounds.size()) == log->fail_observe_at)
      return status{errc::invalid_value};
    record(*log, o, nullptr);
    return status{};
  }
  void end(std::uint64_t id) {
    log->ended.push_back(id);
  }
  int max_draft_len() const {
    return inner.max_draft_len();
  }
};

/// The same, fed by the target's features at layers {0, 2}.
struct feature_recording_proposer : recording_proposer {
  std::vector<std::int32_t> layers{0, 2};
  row_view<const std::int32_t> feature_layers() const {
    return {layers.data(), static_cast<index_t>(layers.size())};
  }
  status observe(const round_outcome& o) {
    record(*log, o, &layers);
    return status{};
  }
};

/// A stateful tree proposer: the chain oracle as a chain-shaped tree, recording everything.
struct recording_tree_proposer {
  toy_oracle_drafter chain{};
  propose::chain_tree_proposer<toy_oracle_drafter> inner{chain};
  lifecycle_log* log = nullptr;
  std::vector<std::int32_t> layers{1};

  status begin(std::uint64_t id, row_view<const token_id> prompt) {
    log->begun.push_back(id);
    log->prompt.assign(prompt.data, prompt.data + prompt.size);
    log->committed.clear();
    return status{};
  }
  status propose_tree(const tree_draft_request& r, tree_draft& d) {
    check_context(*log, r.context);
    return inner.propose_tree(r, d);
  }
  status observe(const round_outcome& o) {
    record(*log, o, &layers);
    return status{};
  }
  void end(std::uint64_t id) {
    log->ended.push_back(id);
  }
  int max_draft_nodes() const {
    return inner.max_draft_nodes();
  }
  row_view<const std::int32_t> feature_layers() const {
    return {layers.data(), static_cast<index_t>(layers.size())};
  }
};

/// The toy target with features: layer l of a row is toy_feature(l, token, position, h).
struct toy_feature_target : toy_target {
  using toy_target::toy_target;
  int num_layers() const {
    return 2;
  }
  index_t hidden_size() const {
    return 2;
  }
  status write_features(const feature_request& f,
                        row_view<const token_id> tokens,
                        const std::vector<index_t>& pos) const {
    for (index_t j = 0; j < tokens.size; ++j)
      for (index_t l = 0; l < f.layers.size; ++l)
        for (index_t h = 0; h < 2; ++h)
          f.out(j, l * 2 + h) =
              toy_feature(f.layers[l], tokens[j], pos[static_cast<std::size_t>(j)], h);
    return status{};
  }
  status
  score_features(const score_request& r, matrix_view<float> logits, const feature_request& f) {
    if (f.out.rows < r.tokens.size || f.out.cols < f.layers.size * 2)
      return status{errc::shape_mismatch};
    if (const status s = score(r, logits); !s.ok())
      return s;
    std::vector<index_t> pos(static_cast<std::size_t>(r.tokens.size));
    for (index_t j = 0; j < r.tokens.size; ++j)
      pos[static_cast<std::size_t>(j)] = r.start + j;
    return write_features(f, r.tokens, pos);
  }
  status score_tree_features(index_t start,
                             row_view<const token_id> tokens,
                             row_view<const std::int32_t> parents,
                             matrix_view<float> logits,
                             const feature_request& f) {
    if (const status s = score_tree(start, tokens, parents, logits); !s.ok())
      return s;
    std::vector<index_t> depth(static_cast<std::size_t>(tokens.size), 0);
    std::vector<index_t> pos(static_cast<std::size_t>(tokens.size), start);
    for (index_t j = 1; j < tokens.size; ++j) {
      depth[static_cast<std::size_t>(j)] = depth[static_cast<std::size_t>(parents[j])] + 1;
      pos[static_cast<std::size_t>(j)] = start + depth[static_cast<std::size_t>(j)];
    }
    return write_features(f, tokens, pos);
  }
};

static_assert(stateful_proposer<recording_proposer>);
static_assert(!feature_proposer<recording_proposer>);
static_assert(feature_proposer<feature_recording_proposer>);
static_assert(stateful_proposer<recording_tree_proposer>);
static_assert(!stateful_proposer<toy_oracle_drafter>);
static_assert(feature_target_model<toy_feature_target>);
static_assert(tree_feature_target_model<toy_feature_target>);
static_assert(!feature_target_model<toy_target>);
SPECDEC_CHECK(stateful_proposer, recording_proposer);
SPECDEC_CHECK(feature_proposer, feature_recording_proposer);
SPECDEC_CHECK(tree_feature_target_model, toy_feature_target);

decode::decode_config config(std::int64_t budget) {
  decode::decode_config cfg;
  cfg.max_new_tokens = budget;
  cfg.max_draft = 4;
  cfg.request_id = 77;
  return cfg;
}

const std::vector<token_id> prompt{3, 5, 7, 1};

} // namespace

TEST_CASE("lifecycle: a stateful chain proposer is begun, observes every round and is ended",
          "[decode][lifecycle]") {
  toy_target target(128);
  lifecycle_log log;
  recording_proposer p;
  p.log = &log;
  decode::speculative_decoder dec(target, target.cache, p, verify::greedy{});
  decode::decode_result out;
  REQUIRE(dec.generate(prompt, config(40), out).ok());
  CHECK(log.begun == std::vector<std::uint64_t>{77});
  CHECK(log.ended == std::vector<std::uint64_t>{77});
  CHECK(log.prompt == prompt);
  CHECK(log.context_mismatches == 0);
  CHECK(static_cast<std::int64_t>(log.rounds.size()) == out.stats.steps);
  // The observed tokens are the emitted ones (the last round may be cut by the budget).
  REQUIRE(log.committed.size() >= out.tokens.size());
  CHECK(
      std::vector<token_id>(log.committed.begin(),
                            log.committed.begin() + static_cast<std::ptrdiff_t>(out.tokens.size()))
      == out.tokens);

  // Stateless proposers keep working unchanged: the same tokens without the lifecycle.
  toy_target target2(128);
  toy_oracle_drafter plain;
  decode::speculative_decoder dec2(target2, target2.cache, plain, verify::greedy{});
  decode::decode_result out2;
  REQUIRE(dec2.generate(prompt, config(40), out2).ok());
  CHECK(out2.tokens == out.tokens);
  CHECK(out2.stats.steps == out.stats.steps);
}

TEST_CASE("lifecycle: end is called after an observe failure, whose status stops the loop",
          "[decode][lifecycle]") {
  toy_target target(128);
  lifecycle_log log;
  log.fail_observe_at = 2;
  recording_proposer p;
  p.log = &log;
  decode::speculative_decoder dec(target, target.cache, p, verify::greedy{});
  decode::decode_result out;
  CHECK(dec.generate(prompt, config(40), out).code == errc::invalid_value);
  CHECK(out.reason == decode::stop_reason::error);
  CHECK(log.rounds.size() == 2);
  CHECK(log.ended == std::vector<std::uint64_t>{77});
}

TEST_CASE("lifecycle: a resumed request begins again at its current context",
          "[decode][lifecycle]") {
  // Preemption: the engine stops the request after 10 tokens and resumes it later from the
  // committed context; the proposer is begun again with it and sees consistent contexts.
  toy_target target(128);
  lifecycle_log log;
  recording_proposer p;
  p.log = &log;
  decode::speculative_decoder dec(target, target.cache, p, verify::greedy{});
  decode::decode_result first;
  REQUIRE(dec.generate(prompt, config(10), first).ok());
  std::vector<token_id> resumed = prompt;
  resumed.insert(resumed.end(), first.tokens.begin(), first.tokens.end());
  decode::decode_result second;
  REQUIRE(dec.generate(resumed, config(30), second).ok());
  CHECK(log.begun.size() == 2);
  CHECK(log.ended.size() == 2);
  CHECK(log.prompt == resumed);
  CHECK(log.context_mismatches == 0);

  // Greedy: the two halves are the uninterrupted run.
  toy_target target2(128);
  toy_oracle_drafter plain;
  decode::speculative_decoder dec2(target2, target2.cache, plain, verify::greedy{});
  decode::decode_result whole;
  REQUIRE(dec2.generate(prompt, config(40), whole).ok());
  std::vector<token_id> joined = first.tokens;
  joined.insert(joined.end(), second.tokens.begin(), second.tokens.end());
  CHECK(joined == whole.tokens);
}

TEST_CASE("lifecycle: a feature proposer observes the target features of the kept rows",
          "[decode][lifecycle][features]") {
  toy_feature_target target(128);
  lifecycle_log log;
  feature_recording_proposer p;
  p.log = &log;
  decode::speculative_decoder dec(target, target.cache, p, verify::greedy{});
  decode::decode_result out;
  REQUIRE(dec.generate(prompt, config(40), out).ok());
  CHECK(log.rounds.size() > 3);
  CHECK(log.feature_mismatches == 0);
  CHECK(log.context_mismatches == 0);
  std::int64_t accepted = 0;
  for (const round_outcome& o : log.rounds)
    accepted += o.accepted;
  CHECK(accepted > 0); // some rounds kept drafts, so rows past the anchor were checked
}

TEST_CASE("lifecycle: the tree decoder drives the lifecycle, features and on_step",
          "[decode][lifecycle][tree]") {
  toy_feature_target target(128);
  lifecycle_log log;
  recording_tree_proposer p;
  p.log = &log;
  decode::tree_decoder dec(target, target.cache, p, verify::greedy{});
  decode::decode_config cfg = config(40);
  std::vector<decode::step_record> steps;
  cfg.on_step = [&](const decode::step_record& s) { steps.push_back(s); };
  decode::decode_result out;
  REQUIRE(dec.generate(prompt, cfg, out).ok());
  CHECK(log.begun == std::vector<std::uint64_t>{77});
  CHECK(log.ended == std::vector<std::uint64_t>{77});
  CHECK(log.context_mismatches == 0);
  CHECK(log.feature_mismatches == 0);
  REQUIRE(static_cast<std::int64_t>(steps.size()) == out.stats.steps);
  std::int64_t drafted = 0;
  std::int64_t accepted = 0;
  for (const decode::step_record& s : steps) {
    drafted += s.drafted;
    accepted += s.accepted;
  }
  CHECK(drafted == out.stats.drafted);
  CHECK(accepted == out.stats.accepted);
  CHECK(steps.front().position == static_cast<index_t>(prompt.size()) - 1);

  // The chain decoder with the same drafter emits the same tokens.
  toy_target target2(128);
  toy_oracle_drafter plain;
  decode::speculative_decoder dec2(target2, target2.cache, plain, verify::greedy{});
  decode::decode_result out2;
  REQUIRE(dec2.generate(prompt, config(40), out2).ok());
  CHECK(out2.tokens == out.tokens);
}
