// SPDX-License-Identifier: Apache-2.0
// propose::feature_chain_proposer and feature_tree_proposer (propose/feature_drafter.hpp) over a
// toy feature_draft_network whose rows depend on every entry of their path, so a wrong position,
// parent, token or hidden input changes the drafts. Expectations are computed independently: a
// fresh network fed by hand as the file comment of feature_drafter.hpp prescribes (committed
// entries, then draft entries), a reference EAGLE-2 tree built node by node, the drafter's
// Philox stream recomputed here; then both drafters through the real decoding loops (greedy:
// the output of plain decoding).
#include <specdec/core/rng.hpp>
#include <specdec/cpu/serial_executor.hpp>
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/decode/tree_decoder.hpp>
#include <specdec/propose/feature_drafter.hpp>
#include <specdec/propose/no_draft.hpp>
#include <specdec/propose/semi_ar.hpp>
#include <specdec/sampling/distribution.hpp>
#include <specdec/tree/token_tree.hpp>
#include <specdec/verify/greedy.hpp>

#include <catch2/catch.hpp>

#include "support/toy_target.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <vector>

namespace {

using namespace specdec;
using specdec_test::toy_mix;
using specdec_test::toy_target;
using specdec_test::toy_vocab;

constexpr index_t net_hidden = 4;                    // width of the network's own hidden output
constexpr index_t target_hidden = 4;                 // the target's hidden size (per layer)
constexpr index_t feature_width = 2 * target_hidden; // two layers: {1, 2}

/// Target features: slot h of layer `layer` of the row of token t at position p. Slot 0 is the
/// token itself (the network reads it as the entry's previous token); the rest are multiples of
/// 1/8, so every sum below is exact.
float target_feature(std::int32_t layer, token_id t, index_t p, index_t h) {
  if (h == 0)
    return static_cast<float>(t);
  return static_cast<float>(
             (layer * 5 + static_cast<int>(t) * 3 + static_cast<int>(p) * 7 + static_cast<int>(h))
             % 13)
         / 8.0f;
}

/// The feature row (layers 1 then 2) of token t at position p.
std::vector<float> feature_row(token_id t, index_t p) {
  std::vector<float> f(static_cast<std::size_t>(feature_width));
  const std::int32_t layers[2] = {1, 2};
  for (index_t l = 0; l < 2; ++l)
    for (index_t h = 0; h < target_hidden; ++h)
      f[static_cast<std::size_t>(l * target_hidden + h)] = target_feature(layers[l], t, p, h);
  return f;
}

/// Index of the first largest value of a row.
token_id argmax_of(const float* row) {
  index_t best = 0;
  for (index_t v = 1; v < toy_vocab; ++v)
    if (row[v] > row[best])
      best = v;
  return static_cast<token_id>(best);
}

/// The toy feature_draft_network. An entry at position p pairs a hidden input h (target
/// features or a parent's own output; h[0] is the previous token) with token x; its logits are
/// the toy target's next-token logits after (h[0], x) plus a noise term that hashes the sum of
/// an entry value over the entry's whole path (its "attention"), and its hidden output starts
/// with x. Every call is recorded and the concept's contract enforced (violations counted).
struct toy_net {
  struct entry {
    index_t position = 0;
    token_id token = 0;
    index_t parent = -1;
    bool target = true;
    double path_sum = 0.0;
    std::vector<float> hidden_in, logits, hidden_out;
  };
  struct call {
    index_t first = 0; // index of the first entry it appended
    index_t rows = 0;
    bool target = true;
  };

  std::vector<entry> entries;
  std::vector<call> calls;
  std::vector<index_t> truncations;
  int violations = 0;
  index_t cap = 256;
  double noise = 1.5;
  token_id nan_token = -1;   // entries with this token get NaN logits
  bool nan_whole_row = true; // every logit NaN, else only logit 3
  std::vector<std::int32_t> layers{1, 2};

  row_view<const std::int32_t> feature_layers() const {
    return {layers.data(), static_cast<index_t>(layers.size())};
  }
  index_t hidden_size() const {
    return net_hidden;
  }
  index_t feature_size() const {
    return feature_width;
  }
  index_t vocab_size() const {
    return toy_vocab;
  }
  index_t size() const {
    return static_cast<index_t>(entries.size());
  }
  index_t capacity() const {
    return cap;
  }
  status truncate(index_t n) {
    truncations.push_back(n);
    if (n < 0) {
      ++violations;
      return status{errc::invalid_argument};
    }
    if (n < size())
      entries.resize(static_cast<std::size_t>(n));
    return status{};
  }

  void compute(entry& e) const {
    const token_id prev = static_cast<token_id>(e.hidden_in[0]);
    const double value =
        static_cast<double>((static_cast<int>(e.token) * 5 + static_cast<int>(e.position)) % 9)
            / 4.0
        + static_cast<double>(e.hidden_in[1]);
    e.path_sum =
        value + (e.parent >= 0 ? entries[static_cast<std::size_t>(e.parent)].path_sum : 0.0);
    const auto q = static_cast<std::uint32_t>(std::llround(e.path_sum * 8.0));
    e.logits.resize(static_cast<std::size_t>(toy_vocab));
    for (index_t v = 0; v < toy_vocab; ++v) {
      const std::uint32_t hsh =
          toy_mix(q * 2654435761U + static_cast<std::uint32_t>(e.position) * 97U
                  + static_cast<std::uint32_t>(v) * 7919U);
      const double z = -1.0 + 2.0 * static_cast<double>(hsh % 1001U) / 1000.0;
      e.logits[static_cast<std::size_t>(v)] =
          static_cast<float>(specdec_test::toy_logit(prev, e.token, e.position + 1, v) + noise * z);
    }
    if (e.token == nan_token) {
      for (index_t v = 0; v < toy_vocab; ++v)
        if (nan_whole_row || v == 3)
          e.logits[static_cast<std::size_t>(v)] = std::numeric_limits<float>::quiet_NaN();
    }
    e.hidden_out = {static_cast<float>(e.token),
                    static_cast<float>((q + static_cast<std::uint32_t>(e.token)) % 11U) / 8.0f,
                    static_cast<float>(e.position % 5) / 4.0f,
                    static_cast<float>(prev) / 16.0f};
  }

  status append(row_view<const feature_draft_step> rows,
                matrix_view<float> logits,
                matrix_view<float> hidden) {
    const index_t k = rows.size;
    bool ok = k > 0 && logits.data != nullptr && logits.rows >= k && logits.cols == toy_vocab
              && logits.row_stride >= toy_vocab && hidden.data != nullptr && hidden.rows >= k
              && hidden.cols == net_hidden && hidden.row_stride >= net_hidden;
    for (index_t i = 0; ok && i < k; ++i) {
      const feature_draft_step& r = rows[i];
      ok = r.target_hidden == rows[0].target_hidden && r.hidden != nullptr && r.parent >= -1
           && r.parent < size() + i && r.position >= 0 && r.token >= 0 && r.token < toy_vocab;
    }
    if (!ok) {
      ++violations;
      return status{errc::invalid_argument};
    }
    if (size() + k > cap) {
      ++violations;
      return status{errc::overflow};
    }
    calls.push_back(call{size(), k, rows[0].target_hidden});
    for (index_t i = 0; i < k; ++i) {
      const feature_draft_step& r = rows[i];
      entry e;
      e.position = r.position;
      e.token = r.token;
      e.parent = r.parent;
      e.target = r.target_hidden;
      e.hidden_in.assign(r.hidden, r.hidden + (r.target_hidden ? feature_width : net_hidden));
      compute(e);
      std::copy(e.logits.begin(), e.logits.end(), &logits(i, 0));
      std::copy(e.hidden_out.begin(), e.hidden_out.end(), &hidden(i, 0));
      entries.push_back(std::move(e));
    }
    return status{};
  }

  /// Appends one row by hand (the references); returns the new entry.
  const entry& push(index_t position, token_id token, const float* h, index_t parent, bool target) {
    const feature_draft_step s{position, token, h, parent, target};
    std::vector<float> lg(static_cast<std::size_t>(toy_vocab));
    std::vector<float> hd(static_cast<std::size_t>(net_hidden));
    REQUIRE(append({&s, 1},
                   {lg.data(), 1, toy_vocab, toy_vocab},
                   {hd.data(), 1, net_hidden, net_hidden})
                .ok());
    return entries.back();
  }
};

using chain_proposer = propose::feature_chain_proposer<toy_net>;
using tree_proposer = propose::feature_tree_proposer<toy_net>;

SPECDEC_CHECK(feature_draft_network, toy_net);
static_assert(feature_draft_network<toy_net>);
static_assert(prompt_feature_proposer<chain_proposer>);
static_assert(dense_draft_proposer<chain_proposer>);
static_assert(prompt_feature_proposer<tree_proposer>);
static_assert(tree_draft_proposer<tree_proposer>);
static_assert(!dense_tree_draft_proposer<tree_proposer>);
static_assert(!draft_proposer<tree_proposer>);
static_assert(!tree_draft_proposer<chain_proposer>);

/// Feeds the committed entries of context c_0..c_{n-1} to a fresh network, one row at a time:
/// entry t = the features of (c_t, t) paired with c_{t+1}, parent t - 1.
void feed_committed(toy_net& net, const std::vector<token_id>& ctx) {
  for (std::size_t t = 0; t + 1 < ctx.size(); ++t) {
    const std::vector<float> f = feature_row(ctx[t], static_cast<index_t>(t));
    (void)net.push(
        static_cast<index_t>(t), ctx[t + 1], f.data(), static_cast<index_t>(t) - 1, true);
  }
}

struct ref_chain {
  std::vector<token_id> tokens;
  std::vector<std::vector<float>> rows;
};

/// The chain the drafter should write after `ctx` (n >= 2 tokens): row 0 is the last committed
/// entry's output; draft j + 1 comes from a draft entry at position n - 1 + j whose input is the
/// previous entry's hidden output. `choose(row, j)` draws draft j.
ref_chain reference_chain(const std::vector<token_id>& ctx,
                          int k,
                          const std::function<token_id(const float*, int)>& choose,
                          double noise = 1.5) {
  toy_net net;
  net.noise = noise;
  feed_committed(net, ctx);
  const auto n = static_cast<index_t>(ctx.size());
  ref_chain out;
  std::vector<float> row = net.entries.back().logits;
  std::vector<float> hid = net.entries.back().hidden_out;
  for (int j = 0; j < k; ++j) {
    out.rows.push_back(row);
    const token_id tok = choose(row.data(), j);
    out.tokens.push_back(tok);
    const toy_net::entry& e = net.push(n - 1 + j, tok, hid.data(), n - 2 + j, false);
    row = e.logits;
    hid = e.hidden_out;
  }
  return out;
}

ref_chain greedy_chain(const std::vector<token_id>& ctx, int k, double noise = 1.5) {
  return reference_chain(
      ctx, k, [](const float* r, int) { return argmax_of(r); }, noise);
}

/// The feature rows of positions [first, first + count) of a context, one after the other.
std::vector<float> features_of(const std::vector<token_id>& ctx, index_t first, index_t count) {
  std::vector<float> out;
  for (index_t p = first; p < first + count; ++p) {
    const std::vector<float> f = feature_row(ctx[static_cast<std::size_t>(p)], p);
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

matrix_view<const float> rows_view(const std::vector<float>& f, index_t first, index_t count) {
  return {f.data() + first * feature_width, count, feature_width, feature_width};
}

/// A chain proposer at T = 0 begun on `prompt`, its prompt observed in two chunks.
struct chain_fixture {
  std::vector<token_id> prompt{3, 5, 7, 1, 2, 9, 4};
  toy_net net;
  propose::feature_drafter_config config;
  chain_proposer p;
  std::vector<token_id> tokens = std::vector<token_id>(6);
  std::vector<float> rows = std::vector<float>(static_cast<std::size_t>(6 * toy_vocab));
  static constexpr std::uint64_t id = 9;

  explicit chain_fixture(int max_draft = 4)
      : config{max_draft, greedy_params()}
      , p(net, config) {
    REQUIRE(p.begin(id, {prompt.data(), n()}).ok());
    const std::vector<float> f = features_of(prompt, 0, n() - 1);
    REQUIRE(p.observe_prompt(id, 0, rows_view(f, 0, 3)).ok());
    REQUIRE(p.observe_prompt(id, 3, rows_view(f, 3, n() - 4)).ok());
  }
  static sampling::sampling_params greedy_params() {
    sampling::sampling_params sp;
    sp.temperature = 0.0f;
    return sp;
  }
  index_t n() const {
    return static_cast<index_t>(prompt.size());
  }
  draft_block block() {
    return draft_block{{tokens.data(), 6}, {rows.data(), 6, toy_vocab, toy_vocab}};
  }
  // Proposes after `ctx`; returns the drafts.
  std::vector<token_id> propose(const std::vector<token_id>& ctx, int k, std::uint64_t rid = id) {
    draft_block b = block();
    REQUIRE(p.propose({rid, {ctx.data(), static_cast<index_t>(ctx.size())}, k}, b).ok());
    return {tokens.begin(), tokens.begin() + b.length};
  }
  std::vector<float> row(int j) const {
    return {rows.begin() + j * toy_vocab, rows.begin() + (j + 1) * toy_vocab};
  }
  // Observes a round after `ctx` that kept `accepted` drafts then emitted tokens.back(); the
  // features are the target's for the anchor and the kept drafts (feature_rows of them).
  status observe(const std::vector<token_id>& ctx,
                 const std::vector<token_id>& committed,
                 index_t feature_rows,
                 std::uint64_t rid = id,
                 index_t position = -1) {
    std::vector<token_id> all = ctx;
    all.insert(all.end(), committed.begin(), committed.end());
    const auto nc = static_cast<index_t>(ctx.size());
    features_ = features_of(all, nc - 1, std::max<index_t>(feature_rows, 1));
    round_outcome o;
    o.request_id = rid;
    o.position = position < 0 ? nc : position;
    o.accepted = static_cast<std::int32_t>(committed.size()) - 1;
    o.drafted = o.accepted + 1;
    o.next = committed.back();
    o.tokens = {committed.data(), static_cast<index_t>(committed.size())};
    o.features = rows_view(features_, 0, feature_rows);
    return p.observe(o);
  }

private:
  std::vector<float> features_;
};

std::vector<token_id> concat(std::vector<token_id> a, const std::vector<token_id>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/// Checks the committed entries of a network against context `ctx` (n - 1 target entries).
void check_committed(const toy_net& net, const std::vector<token_id>& ctx) {
  REQUIRE(net.size() >= static_cast<index_t>(ctx.size()) - 1);
  for (std::size_t t = 0; t + 1 < ctx.size(); ++t) {
    const toy_net::entry& e = net.entries[t];
    INFO("entry " << t);
    CHECK(e.target);
    CHECK(e.position == static_cast<index_t>(t));
    CHECK(e.token == ctx[t + 1]);
    CHECK(e.parent == static_cast<index_t>(t) - 1);
    CHECK(e.hidden_in == feature_row(ctx[t], static_cast<index_t>(t)));
  }
}

} // namespace

TEST_CASE("feature chain: the prompt's entries, the drafts and observe follow the file comment",
          "[propose][feature_drafter]") {
  chain_fixture fx;
  const index_t n = fx.n();
  // begin emptied the network; the two chunks appended entries 0..n-2 in two calls.
  CHECK(fx.net.truncations.front() == 0);
  REQUIRE(fx.net.calls.size() == 2);
  CHECK(fx.net.calls[0].first == 0);
  CHECK(fx.net.calls[0].rows == 3);
  CHECK(fx.net.calls[1].first == 3);
  CHECK(fx.net.calls[1].rows == n - 4);
  CHECK(fx.net.size() == n - 1);
  check_committed(fx.net, fx.prompt);

  // Three drafts: the rows and argmax tokens of a network fed by hand.
  const ref_chain ref = greedy_chain(fx.prompt, 3);
  const std::vector<token_id> d = fx.propose(fx.prompt, 3);
  REQUIRE(d.size() == 3);
  CHECK(d == ref.tokens);
  for (int j = 0; j < 3; ++j) {
    INFO("row " << j);
    CHECK(fx.row(j) == ref.rows[static_cast<std::size_t>(j)]);
    CHECK(d[static_cast<std::size_t>(j)] == argmax_of(fx.row(j).data()));
  }
  // Two draft entries (the last draft needs no row): position n - 1 + j, parent n - 2 + j, the
  // draft token, the previous entry's own hidden output; one call each.
  REQUIRE(fx.net.size() == n - 1 + 2);
  REQUIRE(fx.net.calls.size() == 4);
  for (index_t j = 0; j < 2; ++j) {
    const toy_net::entry& e = fx.net.entries[static_cast<std::size_t>(n - 1 + j)];
    INFO("draft entry " << j);
    CHECK_FALSE(e.target);
    CHECK(e.position == n - 1 + j);
    CHECK(e.parent == n - 2 + j);
    CHECK(e.token == d[static_cast<std::size_t>(j)]);
    CHECK(e.hidden_in == fx.net.entries[static_cast<std::size_t>(n - 2 + j)].hidden_out);
    CHECK_FALSE(fx.net.calls[static_cast<std::size_t>(2 + j)].target);
    CHECK(fx.net.calls[static_cast<std::size_t>(2 + j)].rows == 1);
  }

  // A second propose without observe drops the earlier drafts first: the same drafts.
  const std::vector<float> row0 = fx.row(0);
  const std::vector<token_id> again = fx.propose(fx.prompt, 3);
  CHECK(again == d);
  CHECK(fx.row(0) == row0);
  CHECK(fx.row(2) == ref.rows[2]);
  CHECK(fx.net.size() == n - 1 + 2);
  CHECK(fx.net.violations == 0);

  // Verification kept draft 0 and emitted a correction: the drafts are dropped and the anchor
  // and the kept draft become target entries (features of positions n - 1 and n).
  const token_id next = static_cast<token_id>((d[1] + 1) % toy_vocab);
  const std::vector<token_id> committed{d[0], next};
  REQUIRE(fx.observe(fx.prompt, committed, 2).ok());
  const std::vector<token_id> ctx2 = concat(fx.prompt, committed);
  CHECK(fx.net.size() == n + 1);
  CHECK(fx.net.truncations.back() == n - 1);
  CHECK(fx.net.calls.back().target);
  CHECK(fx.net.calls.back().rows == 2);
  check_committed(fx.net, ctx2);

  // The next round drafts what a fresh network fed with ctx2 drafts.
  const ref_chain ref2 = greedy_chain(ctx2, 4);
  CHECK(fx.propose(ctx2, 4) == ref2.tokens);
  for (int j = 0; j < 4; ++j)
    CHECK(fx.row(j) == ref2.rows[static_cast<std::size_t>(j)]);

  // A round that kept every draft, its outcome carrying more feature rows than it kept (only
  // accepted + 1 are read).
  const std::vector<token_id> d2 = fx.propose(ctx2, 2);
  const std::vector<token_id> committed2{d2[0], d2[1], 0};
  {
    std::vector<token_id> all = concat(ctx2, committed2);
    all.push_back(5); // a fourth row's token (ignored)
    const std::vector<float> f = features_of(all, static_cast<index_t>(ctx2.size()) - 1, 4);
    round_outcome o;
    o.request_id = chain_fixture::id;
    o.position = static_cast<index_t>(ctx2.size());
    o.drafted = 2;
    o.accepted = 2;
    o.next = 0;
    o.tokens = {committed2.data(), 3};
    o.features = rows_view(f, 0, 4);
    REQUIRE(fx.p.observe(o).ok());
  }
  const std::vector<token_id> ctx3 = concat(ctx2, committed2);
  CHECK(fx.net.size() == static_cast<index_t>(ctx3.size()) - 1);
  check_committed(fx.net, ctx3);
  CHECK(fx.propose(ctx3, 3) == greedy_chain(ctx3, 3).tokens);

  // end() empties the network; the drafter then drafts nothing.
  fx.p.end(chain_fixture::id + 1); // another request: ignored
  CHECK(fx.net.size() > 0);
  fx.p.end(chain_fixture::id);
  CHECK(fx.net.size() == 0);
  CHECK(fx.propose(ctx3, 3).empty());
  CHECK(fx.net.violations == 0);
}

TEST_CASE("feature chain: observe_prompt refuses a wrong request, order or shape",
          "[propose][feature_drafter]") {
  const std::vector<token_id> prompt{3, 5, 7, 1, 2, 9, 4};
  const std::vector<float> f = features_of(prompt, 0, 6);
  toy_net net;
  chain_proposer p(net);
  // Before begin.
  CHECK(p.observe_prompt(1, 0, rows_view(f, 0, 3)).code == errc::invalid_argument);
  REQUIRE(p.begin(1, {prompt.data(), 7}).ok());
  CHECK(p.observe_prompt(2, 0, rows_view(f, 0, 3)).code == errc::invalid_argument); // wrong id
  CHECK(p.observe_prompt(1, 3, rows_view(f, 3, 3)).code == errc::invalid_argument); // skips 0..2
  CHECK(p.observe_prompt(1, 0, rows_view(f, 0, 7 - 1 + 0)).ok());
  CHECK(p.observe_prompt(1, 0, rows_view(f, 0, 3)).code == errc::invalid_argument); // again
  CHECK(net.size() == 6);
  CHECK(net.calls.size() == 1);

  REQUIRE(p.begin(1, {prompt.data(), 7}).ok());
  CHECK(net.size() == 0);
  // Past the last committed entry (n - 1 rows at most).
  std::vector<float> f7 = features_of(prompt, 0, 7);
  CHECK(p.observe_prompt(1, 0, rows_view(f7, 0, 7)).code == errc::invalid_argument);
  // Features of the wrong width.
  CHECK(p.observe_prompt(1, 0, {f.data(), 3, feature_width - 1, feature_width}).code
        == errc::shape_mismatch);
  CHECK(p.observe_prompt(1, 0, {nullptr, 3, feature_width, feature_width}).code
        == errc::shape_mismatch);
  // An empty chunk is fine.
  CHECK(p.observe_prompt(1, 0, {nullptr, 0, feature_width, feature_width}).ok());
  CHECK(net.size() == 0);
  // Until the prompt is complete the drafter drafts nothing.
  REQUIRE(p.observe_prompt(1, 0, rows_view(f, 0, 4)).ok());
  std::vector<token_id> tok(4);
  std::vector<float> rows(static_cast<std::size_t>(4 * toy_vocab));
  draft_block b{{tok.data(), 4}, {rows.data(), 4, toy_vocab, toy_vocab}};
  REQUIRE(p.propose({1, {prompt.data(), 7}, 4}, b).ok());
  CHECK(b.length == 0);
  REQUIRE(p.observe_prompt(1, 4, rows_view(f, 4, 2)).ok());
  REQUIRE(p.propose({1, {prompt.data(), 7}, 4}, b).ok());
  CHECK(b.length == 4);
  CHECK(net.violations == 0);
}

TEST_CASE("feature chain: a request the drafter lost track of drafts nothing until begin",
          "[propose][feature_drafter]") {
  chain_fixture fx;
  const std::vector<token_id> d = fx.propose(fx.prompt, 3);
  REQUIRE(d.size() == 3);
  const std::vector<token_id> committed{d[0], d[1], 6};
  const std::vector<token_id> ctx2 = concat(fx.prompt, committed);

  SECTION("features missing") {
    REQUIRE(fx.observe(fx.prompt, committed, 2).ok()); // 3 rows are due
  }
  SECTION("features of another width") {
    std::vector<token_id> all = concat(fx.prompt, committed);
    const std::vector<float> f = features_of(all, fx.n() - 1, 3);
    round_outcome o;
    o.request_id = chain_fixture::id;
    o.position = fx.n();
    o.drafted = 3;
    o.accepted = 2;
    o.next = 6;
    o.tokens = {committed.data(), 3};
    o.features = {f.data(), 3, feature_width - 1, feature_width};
    REQUIRE(fx.p.observe(o).ok());
  }
  SECTION("a round that does not follow the context the drafter saw") {
    REQUIRE(fx.observe(fx.prompt, committed, 3, chain_fixture::id, fx.n() + 1).ok());
  }
  SECTION("an outcome of another request") {
    REQUIRE(fx.observe(fx.prompt, committed, 3, chain_fixture::id + 1).ok());
  }
  // From then on: no drafts, no error, also after a well-formed round.
  CHECK(fx.propose(ctx2, 3).empty());
  const std::vector<token_id> committed2{4};
  CHECK(fx.observe(ctx2, committed2, 1).ok());
  const std::vector<token_id> ctx3 = concat(ctx2, committed2);
  CHECK(fx.propose(ctx3, 3).empty());
  CHECK(fx.net.violations == 0);

  // begin() at the current context (a resumed request) drafts again, from a clean cache.
  REQUIRE(fx.p.begin(chain_fixture::id, {ctx3.data(), static_cast<index_t>(ctx3.size())}).ok());
  const std::vector<float> f = features_of(ctx3, 0, static_cast<index_t>(ctx3.size()) - 1);
  REQUIRE(fx.p.observe_prompt(
                  chain_fixture::id, 0, rows_view(f, 0, static_cast<index_t>(ctx3.size()) - 1))
              .ok());
  check_committed(fx.net, ctx3);
  CHECK(fx.propose(ctx3, 3) == greedy_chain(ctx3, 3).tokens);
}

TEST_CASE("feature chain: a rewritten context or another request drafts nothing",
          "[propose][feature_drafter]") {
  chain_fixture fx;
  std::vector<token_id> rewritten = fx.prompt;
  rewritten[2] = 11;
  CHECK(fx.propose(rewritten, 3).empty());
  CHECK(fx.propose(fx.prompt, 3, chain_fixture::id + 1).empty());
  std::vector<token_id> longer = fx.prompt;
  longer.push_back(2);
  CHECK(fx.propose(longer, 3).empty());
  std::vector<token_id> shorter(fx.prompt.begin(), fx.prompt.end() - 1);
  CHECK(fx.propose(shorter, 3).empty());
  // The cache was left as it was: the prompt drafts as before.
  CHECK(fx.propose(fx.prompt, 3) == greedy_chain(fx.prompt, 3).tokens);
  CHECK(fx.net.violations == 0);
}

TEST_CASE("feature chain: a one-token prompt drafts from the first observed round on",
          "[propose][feature_drafter]") {
  toy_net net;
  propose::feature_drafter_config fc;
  fc.params.temperature = 0.0f;
  chain_proposer p(net, fc);
  const std::vector<token_id> prompt{6};
  REQUIRE(p.begin(3, {prompt.data(), 1}).ok());
  std::vector<token_id> tok(4);
  std::vector<float> rows(static_cast<std::size_t>(4 * toy_vocab));
  draft_block b{{tok.data(), 4}, {rows.data(), 4, toy_vocab, toy_vocab}};
  REQUIRE(p.propose({3, {prompt.data(), 1}, 4}, b).ok());
  CHECK(b.length == 0);
  CHECK(net.size() == 0);
  // The first round emitted 12 with no drafts: the anchor's features arrive.
  const std::vector<token_id> committed{12};
  const std::vector<float> f = feature_row(6, 0);
  round_outcome o;
  o.request_id = 3;
  o.position = 1;
  o.next = 12;
  o.tokens = {committed.data(), 1};
  o.features = {f.data(), 1, feature_width, feature_width};
  REQUIRE(p.observe(o).ok());
  const std::vector<token_id> ctx{6, 12};
  REQUIRE(p.propose({3, {ctx.data(), 2}, 4}, b).ok());
  REQUIRE(b.length == 4);
  const ref_chain ref = greedy_chain(ctx, 4);
  CHECK(std::vector<token_id>(tok.begin(), tok.end()) == ref.tokens);
  CHECK(std::vector<float>(rows.begin(), rows.begin() + toy_vocab) == ref.rows[0]);
  CHECK(net.violations == 0);
}

TEST_CASE("feature chain: budgets, buffers and capacity cap the draft; bad arguments fail",
          "[propose][feature_drafter]") {
  SECTION("max_tokens 0: nothing drafted, nothing appended") {
    chain_fixture fx;
    const std::size_t calls = fx.net.calls.size();
    CHECK(fx.propose(fx.prompt, 0).empty());
    CHECK(fx.net.calls.size() == calls);
  }
  SECTION("a negative budget or an empty context is invalid") {
    chain_fixture fx;
    draft_block b = fx.block();
    CHECK(fx.p.propose({chain_fixture::id, {fx.prompt.data(), fx.n()}, -1}, b).code
          == errc::invalid_argument);
    CHECK(fx.p.propose({chain_fixture::id, {fx.prompt.data(), 0}, 3}, b).code
          == errc::invalid_argument);
    CHECK(b.length == 0);
  }
  SECTION("probs of the wrong width") {
    chain_fixture fx;
    draft_block b{{fx.tokens.data(), 6}, {fx.rows.data(), 6, toy_vocab - 1, toy_vocab}};
    CHECK(fx.p.propose({chain_fixture::id, {fx.prompt.data(), fx.n()}, 3}, b).code
          == errc::shape_mismatch);
    CHECK(b.length == 0);
  }
  SECTION("invalid sampling parameters") {
    chain_fixture fx;
    chain_proposer bad(fx.net, propose::feature_drafter_config{4, {-1.0f}});
    draft_block b = fx.block();
    CHECK(bad.propose({chain_fixture::id, {fx.prompt.data(), fx.n()}, 3}, b).code
          == errc::invalid_temperature);
  }
  SECTION("the smallest of max_tokens, max_draft, tokens, probs rows and cache room") {
    chain_fixture fx(3);
    CHECK(fx.propose(fx.prompt, 6).size() == 3); // max_draft
    draft_block b{{fx.tokens.data(), 2}, {fx.rows.data(), 6, toy_vocab, toy_vocab}};
    REQUIRE(fx.p.propose({chain_fixture::id, {fx.prompt.data(), fx.n()}, 3}, b).ok());
    CHECK(b.length == 2);
    draft_block b2{{fx.tokens.data(), 6}, {fx.rows.data(), 1, toy_vocab, toy_vocab}};
    REQUIRE(fx.p.propose({chain_fixture::id, {fx.prompt.data(), fx.n()}, 3}, b2).ok());
    CHECK(b2.length == 1);
    // Room for one more entry: two drafts (the last needs no entry).
    fx.net.cap = fx.n();
    CHECK(fx.propose(fx.prompt, 3) == greedy_chain(fx.prompt, 2).tokens);
    fx.net.cap = fx.n() - 1;
    CHECK(fx.propose(fx.prompt, 3).size() == 1);
    CHECK(fx.net.violations == 0);
  }
}

TEST_CASE("feature chain: T = 1 draws use the (seed ^ salt, request) stream at (n + j, sample)",
          "[propose][feature_drafter]") {
  const std::vector<token_id> prompt{3, 5, 7, 1, 2, 9, 4};
  const auto n = static_cast<index_t>(prompt.size());
  const std::vector<float> f = features_of(prompt, 0, n - 1);
  const cpu::serial_executor ex{};
  sampling::sampling_params sp; // temperature 1
  // The draws as the file comment describes them, recomputed here on the reference rows.
  const auto reference = [&](std::uint64_t seed, std::uint64_t salt, std::uint64_t rid) {
    const rng_key key{seed ^ salt, rid};
    return reference_chain(
               prompt,
               4,
               [&](const float* row, int j) {
                 const sampling::dist_row<float> dr{row, toy_vocab, distribution_kind::logits};
                 const sampling::row_stats st = sampling::prepare_row(ex, dr, sp);
                 return static_cast<token_id>(sampling::sample_row(
                     ex, dr, st, uniform_at(key, n + j, draw_purpose::sample)));
               })
        .tokens;
  };
  const auto draft = [&](chain_proposer& p, std::uint64_t rid) {
    REQUIRE(p.begin(rid, {prompt.data(), n}).ok());
    REQUIRE(p.observe_prompt(rid, 0, rows_view(f, 0, n - 1)).ok());
    std::vector<token_id> tok(4);
    std::vector<float> rows(static_cast<std::size_t>(4 * toy_vocab));
    draft_block b{{tok.data(), 4}, {rows.data(), 4, toy_vocab, toy_vocab}};
    REQUIRE(p.propose({rid, {prompt.data(), n}, 4}, b).ok());
    REQUIRE(b.length == 4);
    return tok;
  };
  toy_net net1, net2;
  propose::feature_drafter_config fc;
  fc.seed = 42;
  chain_proposer p1(net1, fc), p2(net2, fc);
  const std::vector<token_id> a = draft(p1, 9);
  CHECK(a == draft(p2, 9));
  CHECK(a == reference(42, stream_salt::feature_drafter, 9));
  int differ = 0;
  int unsalted_differ = 0;
  for (std::uint64_t seed = 43; seed < 51; ++seed) {
    INFO("seed " << seed);
    p2.set_seed(seed);
    const std::vector<token_id> s = draft(p2, 9);
    CHECK(s == reference(seed, stream_salt::feature_drafter, 9));
    differ += s != a ? 1 : 0;
    unsalted_differ += s != reference(seed, 0, 9) ? 1 : 0;
  }
  CHECK(differ > 0);          // set_seed changes the draws
  CHECK(unsalted_differ > 0); // ... and the salt enters the key
  p2.set_seed(42);
  const std::vector<token_id> other = draft(p2, 10);
  CHECK(other == reference(42, stream_salt::feature_drafter, 10));
  CHECK(net1.violations + net2.violations == 0);
}

namespace {

/// A node of the reference EAGLE-2 tree.
struct ref_node {
  std::vector<token_id> path; // tokens from the first draft to this node
  std::int32_t parent = -1;   // reference node index, -1: the root
  double score = 0.0;         // cumulative log-probability
  int depth = 0;
  std::vector<float> hidden_out; // its entry's output once expanded
};

/// log-softmax children (top k by logit, ties to the lower id) of a row, or none with a NaN.
void ref_expand(std::vector<ref_node>& nodes,
                const std::vector<float>& row,
                std::int32_t parent,
                int k) {
  for (float x : row)
    if (std::isnan(x))
      return;
  double mx = -HUGE_VAL;
  for (float x : row)
    mx = std::max(mx, static_cast<double>(x));
  double sum = 0.0;
  for (float x : row)
    sum += std::exp(static_cast<double>(x) - mx);
  const double lse = mx + std::log(sum);
  std::vector<token_id> ids(static_cast<std::size_t>(toy_vocab));
  for (index_t v = 0; v < toy_vocab; ++v)
    ids[static_cast<std::size_t>(v)] = static_cast<token_id>(v);
  std::stable_sort(ids.begin(), ids.end(), [&](token_id a, token_id b) {
    return row[static_cast<std::size_t>(a)] > row[static_cast<std::size_t>(b)];
  });
  const ref_node par = parent < 0 ? ref_node{} : nodes[static_cast<std::size_t>(parent)];
  for (int i = 0; i < k; ++i) {
    ref_node c;
    c.path = par.path;
    c.path.push_back(ids[static_cast<std::size_t>(i)]);
    c.parent = parent;
    c.depth = par.depth + 1;
    c.score =
        par.score
        + (static_cast<double>(row[static_cast<std::size_t>(ids[static_cast<std::size_t>(i)])])
           - lse);
    nodes.push_back(c);
  }
}

struct ref_tree {
  std::set<std::vector<token_id>> kept;                  // root paths of the kept nodes
  std::vector<std::set<std::vector<token_id>>> expanded; // per depth 2..: expanded nodes
  std::map<std::vector<token_id>, double> score;         // every candidate's score
};

/// EAGLE-2 written out node by node on a fresh network: per depth the top k nodes of the last
/// level by score get an entry (position n - 2 + depth, parent: the parent node's entry or the
/// last committed entry, input: the parent's hidden output) and k children each; then the best
/// `budget` nodes by score (ties: shallower first, then creation order).
ref_tree reference_tree(const std::vector<token_id>& ctx,
                        int k,
                        int depth,
                        int budget,
                        token_id nan_token = -1,
                        bool nan_whole_row = true) {
  toy_net net;
  net.nan_token = nan_token;
  net.nan_whole_row = nan_whole_row;
  feed_committed(net, ctx);
  const auto n = static_cast<index_t>(ctx.size());
  std::vector<ref_node> nodes;
  std::vector<index_t> entry_of;
  ref_expand(nodes, net.entries.back().logits, -1, k);
  std::size_t level_begin = 0;
  ref_tree out;
  for (int dep = 2; dep <= depth; ++dep) {
    const std::size_t level_end = nodes.size();
    std::vector<std::size_t> level;
    for (std::size_t i = level_begin; i < level_end; ++i)
      level.push_back(i);
    std::stable_sort(level.begin(), level.end(), [&](std::size_t a, std::size_t b) {
      return nodes[a].score > nodes[b].score;
    });
    if (level.size() > static_cast<std::size_t>(k))
      level.resize(static_cast<std::size_t>(k));
    out.expanded.emplace_back();
    entry_of.resize(nodes.size(), -1);
    std::vector<std::vector<float>> rows;
    for (std::size_t i : level) {
      const ref_node& nd = nodes[i];
      const bool top = nd.parent < 0;
      const std::vector<float> h = top ? net.entries[static_cast<std::size_t>(n - 2)].hidden_out
                                       : nodes[static_cast<std::size_t>(nd.parent)].hidden_out;
      const index_t parent_entry = top ? n - 2 : entry_of[static_cast<std::size_t>(nd.parent)];
      const toy_net::entry& e =
          net.push(n - 2 + nd.depth, nd.path.back(), h.data(), parent_entry, false);
      entry_of[i] = net.size() - 1;
      nodes[i].hidden_out = e.hidden_out;
      rows.push_back(e.logits);
      out.expanded.back().insert(nd.path);
    }
    level_begin = level_end;
    for (std::size_t j = 0; j < level.size(); ++j)
      ref_expand(nodes, rows[j], static_cast<std::int32_t>(level[j]), k);
  }
  std::vector<std::size_t> order(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    order[i] = i;
    out.score[nodes[i].path] = nodes[i].score;
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (nodes[a].score != nodes[b].score)
      return nodes[a].score > nodes[b].score;
    return nodes[a].depth < nodes[b].depth;
  });
  for (std::size_t i = 0; i < order.size() && i < static_cast<std::size_t>(budget); ++i)
    out.kept.insert(nodes[order[i]].path);
  return out;
}

/// Root paths (draft tokens) of every draft node of a tree.
std::vector<std::vector<token_id>> node_paths(const tree::token_tree& t) {
  std::vector<std::vector<token_id>> out;
  for (std::int32_t j = 1; j < t.size(); ++j) {
    const std::vector<std::int32_t> p = t.path_to(j);
    std::vector<token_id> toks;
    for (std::size_t i = 1; i < p.size(); ++i)
      toks.push_back(t.tokens()[static_cast<std::size_t>(p[i])]);
    out.push_back(toks);
  }
  return out;
}

/// Root path (draft tokens) of an own entry of the network: its tokens up to the committed
/// entries.
std::vector<token_id> entry_path(const toy_net& net, index_t e) {
  std::vector<token_id> p;
  while (e >= 0 && !net.entries[static_cast<std::size_t>(e)].target) {
    p.insert(p.begin(), net.entries[static_cast<std::size_t>(e)].token);
    e = net.entries[static_cast<std::size_t>(e)].parent;
  }
  return p;
}

/// A tree proposer over its own network, begun on `prompt` with every prompt feature observed.
struct tree_fixture {
  std::vector<token_id> prompt{3, 5, 7, 1, 2, 9, 4};
  toy_net net;
  tree_proposer p;
  tree_draft d;

  explicit tree_fixture(propose::feature_drafter_config fc,
                        token_id nan_token = -1,
                        bool whole = true)
      : p(net, fc) {
    net.nan_token = nan_token;
    net.nan_whole_row = whole;
    const auto n = static_cast<index_t>(prompt.size());
    REQUIRE(p.begin(4, {prompt.data(), n}).ok());
    const std::vector<float> f = features_of(prompt, 0, n - 1);
    REQUIRE(p.observe_prompt(4, 0, rows_view(f, 0, n - 1)).ok());
  }
  status propose(std::int32_t max_nodes, std::int32_t max_depth) {
    return p.propose_tree(
        {4, {prompt.data(), static_cast<index_t>(prompt.size())}, max_nodes, max_depth}, d);
  }
};

propose::feature_drafter_config tree_config(int top_k, int depth, int max_nodes) {
  propose::feature_drafter_config fc;
  fc.top_k = top_k;
  fc.depth = depth;
  fc.max_nodes = max_nodes;
  return fc;
}

/// The structural promises of a tree draft (tree_draft_proposer and the EAGLE-2 shape).
void check_tree_shape(const tree::token_tree& t, token_id root, int top_k, int depth, int nodes) {
  REQUIRE(t.size() >= 1);
  CHECK(tree::validate(t.view()).ok());
  CHECK(t.tokens()[0] == root);
  CHECK(t.size() - 1 <= nodes);
  CHECK(t.max_depth() <= depth);
  for (std::int32_t j = 0; j < t.size(); ++j) {
    std::set<token_id> children;
    int count = 0;
    for (std::int32_t c = t.first_children()[static_cast<std::size_t>(j)]; c >= 0;
         c = t.next_siblings()[static_cast<std::size_t>(c)]) {
      children.insert(t.tokens()[static_cast<std::size_t>(c)]);
      ++count;
    }
    CHECK(count <= top_k);
    CHECK(static_cast<int>(children.size()) == count); // distinct siblings
  }
}

} // namespace

TEST_CASE("feature tree: EAGLE-2 top-k expansion and the best max_nodes nodes, per reference",
          "[propose][feature_drafter][tree]") {
  tree_fixture fx(tree_config(3, 3, 8));
  const auto n = static_cast<index_t>(fx.prompt.size());
  const std::size_t calls_before = fx.net.calls.size();
  CHECK(fx.p.max_draft_nodes() == 8);
  REQUIRE(fx.propose(20, 5).ok());
  const tree::token_tree& t = fx.d.tree;
  check_tree_shape(t, fx.prompt.back(), 3, 3, 8);
  CHECK(t.size() - 1 == 8);
  CHECK(fx.d.draft_index.empty());

  const ref_tree ref = reference_tree(fx.prompt, 3, 3, 8);
  const std::vector<std::vector<token_id>> paths = node_paths(t);
  CHECK(std::set<std::vector<token_id>>(paths.begin(), paths.end()) == ref.kept);
  // A child's cumulative log-probability never exceeds its parent's; every score is finite.
  for (const std::vector<token_id>& p : paths) {
    REQUIRE(ref.score.count(p) == 1);
    CHECK(std::isfinite(ref.score.at(p)));
    if (p.size() > 1) {
      const std::vector<token_id> up(p.begin(), p.end() - 1);
      CHECK(ref.score.at(p) <= ref.score.at(up));
    }
  }
  // The kept nodes are the best: no dropped candidate scores above a kept one.
  double worst_kept = HUGE_VAL;
  for (const std::vector<token_id>& p : paths)
    worst_kept = std::min(worst_kept, ref.score.at(p));
  for (const auto& [p, s] : ref.score)
    if (ref.kept.count(p) == 0)
      CHECK(s <= worst_kept);

  // One call per depth 2..3, of min(top_k, nodes of the previous level) = 3 own rows at position
  // n - 2 + depth - 1, each pointing at its parent's entry with the parent's hidden output.
  REQUIRE(fx.net.calls.size() == calls_before + 2);
  REQUIRE(ref.expanded.size() == 2);
  for (std::size_t c = 0; c < 2; ++c) {
    const toy_net::call& cl = fx.net.calls[calls_before + c];
    INFO("depth " << c + 2);
    CHECK_FALSE(cl.target);
    CHECK(cl.rows == 3);
    std::set<std::vector<token_id>> expanded;
    for (index_t e = cl.first; e < cl.first + cl.rows; ++e) {
      const toy_net::entry& en = fx.net.entries[static_cast<std::size_t>(e)];
      CHECK(en.position == n - 1 + static_cast<index_t>(c));
      if (c == 0) {
        CHECK(en.parent == n - 2);
      } else {
        const toy_net::call& prev = fx.net.calls[calls_before + c - 1];
        CHECK(en.parent >= prev.first);
        CHECK(en.parent < prev.first + prev.rows);
      }
      CHECK(en.hidden_in == fx.net.entries[static_cast<std::size_t>(en.parent)].hidden_out);
      expanded.insert(entry_path(fx.net, e));
    }
    CHECK(expanded == ref.expanded[c]);
  }
  CHECK(fx.net.violations == 0);

  // A second draft of the same round drops the first one's entries: the same tree.
  const std::vector<std::vector<token_id>> first = paths;
  REQUIRE(fx.propose(20, 5).ok());
  CHECK(node_paths(fx.d.tree) == first);
  CHECK(fx.net.size() == n - 1 + 6);
}

TEST_CASE("feature tree: the request's max_nodes and max_depth bound the tree",
          "[propose][feature_drafter][tree]") {
  tree_fixture fx(tree_config(3, 3, 8));
  const auto paths_set = [](const tree::token_tree& t) {
    const std::vector<std::vector<token_id>> p = node_paths(t);
    return std::set<std::vector<token_id>>(p.begin(), p.end());
  };
  REQUIRE(fx.propose(5, 5).ok());
  check_tree_shape(fx.d.tree, fx.prompt.back(), 3, 3, 5);
  CHECK(paths_set(fx.d.tree) == reference_tree(fx.prompt, 3, 3, 5).kept);
  REQUIRE(fx.propose(20, 2).ok());
  check_tree_shape(fx.d.tree, fx.prompt.back(), 3, 2, 8);
  CHECK(paths_set(fx.d.tree) == reference_tree(fx.prompt, 3, 2, 8).kept);
  REQUIRE(fx.propose(20, 1).ok());
  check_tree_shape(fx.d.tree, fx.prompt.back(), 3, 1, 8);
  CHECK(fx.d.tree.size() == 4);
  // No node at all: the root only, nothing appended.
  const std::size_t calls = fx.net.calls.size();
  REQUIRE(fx.propose(0, 5).ok());
  CHECK(fx.d.tree.size() == 1);
  CHECK(fx.d.tree.tokens()[0] == fx.prompt.back());
  REQUIRE(fx.propose(5, 0).ok());
  CHECK(fx.d.tree.size() == 1);
  CHECK(fx.net.calls.size() == calls);
  // Negative limits and top_k outside [1, max_siblings] are invalid.
  CHECK(fx.propose(-1, 3).code == errc::invalid_argument);
  CHECK(fx.propose(3, -1).code == errc::invalid_argument);
  tree_fixture bad(tree_config(0, 3, 8));
  CHECK(bad.propose(5, 3).code == errc::invalid_argument);
  tree_fixture bad2(tree_config(tree::max_siblings + 1, 3, 8));
  CHECK(bad2.propose(5, 3).code == errc::invalid_argument);
  // max_nodes is clamped to the tree limit.
  tree_fixture big(tree_config(2, 2, 5000));
  CHECK(big.p.max_draft_nodes() == tree::max_nodes - 1);
  CHECK(fx.net.violations == 0);
}

TEST_CASE("feature tree: top_k = 1 drafts the greedy chain of feature_chain_proposer",
          "[propose][feature_drafter][tree]") {
  tree_fixture fx(tree_config(1, 5, 5));
  REQUIRE(fx.propose(5, 5).ok());
  const tree::token_tree& t = fx.d.tree;
  REQUIRE(t.size() == 6);
  for (std::int32_t j = 1; j < t.size(); ++j)
    CHECK(t.parents()[static_cast<std::size_t>(j)] == j - 1);
  const std::vector<token_id> tree_tokens(t.tokens().begin() + 1, t.tokens().end());

  chain_fixture cf(5);
  CHECK(cf.propose(cf.prompt, 5) == tree_tokens);
  CHECK(greedy_chain(fx.prompt, 5).tokens == tree_tokens);
  CHECK(fx.net.violations + cf.net.violations == 0);
}

TEST_CASE("feature tree: a NaN row gives its node no children",
          "[propose][feature_drafter][tree]") {
  const std::vector<token_id> prompt{3, 5, 7, 1, 2, 9, 4};
  // The best first draft, found without NaN.
  const ref_tree clean = reference_tree(prompt, 3, 3, 8);
  token_id best = -1;
  double best_score = -HUGE_VAL;
  for (const auto& [p, s] : clean.score)
    if (p.size() == 1 && s > best_score) {
      best_score = s;
      best = p[0];
    }
  REQUIRE(best >= 0);
  SECTION("the root's row (the last committed entry's): the root only") {
    tree_fixture fx(tree_config(3, 3, 8), prompt.back());
    REQUIRE(fx.propose(8, 3).ok());
    CHECK(fx.d.tree.size() == 1);
    CHECK(fx.d.tree.tokens()[0] == prompt.back());
  }
  for (const bool whole : {true, false}) {
    DYNAMIC_SECTION("the row of an expanded first draft, " << (whole ? "all NaN" : "one NaN")) {
      tree_fixture fx(tree_config(3, 3, 8), best, whole);
      REQUIRE(fx.propose(8, 3).ok());
      check_tree_shape(fx.d.tree, prompt.back(), 3, 3, 8);
      const std::vector<std::vector<token_id>> paths = node_paths(fx.d.tree);
      for (const std::vector<token_id>& p : paths) {
        INFO("node path size " << p.size() << " first " << p[0]);
        CHECK(std::count(p.begin(), p.end(), best) <= 1);
        if (p.size() > 1)
          CHECK(p[p.size() - 2] != best); // no child of a node whose token is `best`
      }
      const ref_tree ref = reference_tree(prompt, 3, 3, 8, best, whole);
      CHECK(std::set<std::vector<token_id>>(paths.begin(), paths.end()) == ref.kept);
      CHECK(fx.net.violations == 0);
    }
  }
}

TEST_CASE("feature tree: out of step with the context, the tree is the root only",
          "[propose][feature_drafter][tree]") {
  tree_fixture fx(tree_config(3, 3, 8));
  std::vector<token_id> other = fx.prompt;
  other[1] = 0;
  REQUIRE(fx.p.propose_tree({4, {other.data(), 7}, 8, 3}, fx.d).ok());
  CHECK(fx.d.tree.size() == 1);
  CHECK(fx.d.tree.tokens()[0] == other.back());
  REQUIRE(fx.p.propose_tree({5, {fx.prompt.data(), 7}, 8, 3}, fx.d).ok());
  CHECK(fx.d.tree.size() == 1);
  REQUIRE(fx.propose(8, 3).ok());
  CHECK(fx.d.tree.size() == 9);
}

namespace {

/// The toy target with features: slot h of layer l of a row is target_feature(l, token, pos, h).
struct toy_feature_target : toy_target {
  using toy_target::toy_target;
  int num_layers() const {
    return 2;
  }
  index_t hidden_size() const {
    return target_hidden;
  }
  static status write(const feature_request& f,
                      row_view<const token_id> tokens,
                      const std::vector<index_t>& pos) {
    if (f.out.rows < tokens.size || f.out.cols < f.layers.size * target_hidden)
      return status{errc::shape_mismatch};
    for (index_t j = 0; j < tokens.size; ++j)
      for (index_t l = 0; l < f.layers.size; ++l)
        for (index_t h = 0; h < target_hidden; ++h)
          f.out(j, l * target_hidden + h) =
              target_feature(f.layers[l], tokens[j], pos[static_cast<std::size_t>(j)], h);
    return status{};
  }
  status
  score_features(const score_request& r, matrix_view<float> logits, const feature_request& f) {
    if (const status s = score(r, logits); !s.ok())
      return s;
    std::vector<index_t> pos(static_cast<std::size_t>(r.tokens.size));
    for (index_t j = 0; j < r.tokens.size; ++j)
      pos[static_cast<std::size_t>(j)] = r.start + j;
    return write(f, r.tokens, pos);
  }
  status score_tree_features(index_t start,
                             row_view<const token_id> tokens,
                             row_view<const std::int32_t> parents,
                             matrix_view<float> logits,
                             const feature_request& f) {
    if (const status s = score_tree(start, tokens, parents, logits); !s.ok())
      return s;
    std::vector<index_t> pos(static_cast<std::size_t>(tokens.size), start);
    for (index_t j = 1; j < tokens.size; ++j)
      pos[static_cast<std::size_t>(j)] = pos[static_cast<std::size_t>(parents[j])] + 1;
    return write(f, tokens, pos);
  }
};
static_assert(tree_feature_target_model<toy_feature_target>);

/// The chain proposer, recording the prompt chunks it is handed.
struct recording_chain_proposer : chain_proposer {
  struct chunk {
    std::uint64_t id;
    index_t start;
    index_t rows;
    bool operator==(const chunk&) const = default;
  };
  std::vector<chunk> chunks;
  using chain_proposer::chain_proposer;
  status observe_prompt(std::uint64_t id, index_t start, matrix_view<const float> f) {
    chunks.push_back(chunk{id, start, f.rows});
    return chain_proposer::observe_prompt(id, start, f);
  }
};
static_assert(prompt_feature_proposer<recording_chain_proposer>);

const std::vector<token_id> loop_prompt{3, 5, 7, 1, 2, 9, 4, 8, 6};

decode::decode_config loop_config(std::int32_t max_draft) {
  decode::decode_config cfg;
  cfg.max_new_tokens = 60;
  cfg.max_draft = max_draft;
  cfg.params.temperature = 0.0f;
  cfg.request_id = 77;
  cfg.prefill_chunk = 3;
  return cfg;
}

std::vector<token_id> plain_tokens() {
  toy_target target(256);
  propose::no_drafter none;
  decode::speculative_decoder dec(target, target.cache, none, verify::greedy{});
  decode::decode_result out;
  REQUIRE(dec.generate(loop_prompt, loop_config(4), out).ok());
  REQUIRE(out.tokens.size() == 60);
  return out.tokens;
}

} // namespace

TEST_CASE("feature chain: through speculative_decoder, greedy output equals plain decoding",
          "[propose][feature_drafter][decode]") {
  toy_feature_target target(256);
  toy_net net;
  propose::feature_drafter_config fc;
  fc.max_draft = 4;
  fc.params.temperature = 0.0f;
  recording_chain_proposer p(net, fc);
  decode::speculative_decoder dec(
      target, target.cache, p, verify::greedy{}, sched::fixed_draft_length{4});
  decode::decode_config cfg = loop_config(4);
  std::vector<decode::step_record> steps;
  cfg.on_step = [&](const decode::step_record& s) { steps.push_back(s); };
  decode::decode_result out;
  REQUIRE(dec.generate(loop_prompt, cfg, out).ok());
  CHECK(out.tokens == plain_tokens());
  CHECK(out.stats.drafted > 0);
  CHECK(out.stats.accepted > 0);
  CHECK(out.stats.accepted < out.stats.drafted);

  // The prompt's features arrived once, in prefill-sized chunks covering positions 0..n-2, as
  // the first appends (before any draft), with the target's features of each position.
  using chunk = recording_chain_proposer::chunk;
  CHECK(p.chunks == std::vector<chunk>{{77, 0, 3}, {77, 3, 3}, {77, 6, 2}});
  REQUIRE(net.calls.size() >= 3);
  CHECK(net.calls[0].first == 0);
  CHECK(net.calls[1].first == 3);
  CHECK(net.calls[2].first == 6);
  for (std::size_t c = 0; c < 3; ++c)
    CHECK(net.calls[c].target);
  // Every round's anchor and kept drafts came back as target rows, nothing else did.
  std::int64_t target_rows = 0;
  for (const toy_net::call& c : net.calls)
    target_rows += c.target ? c.rows : 0;
  std::int64_t kept = static_cast<std::int64_t>(loop_prompt.size()) - 1;
  for (const decode::step_record& s : steps)
    kept += s.accepted + 1;
  CHECK(target_rows == kept);
  CHECK(net.size() == 0); // end()
  CHECK(net.violations == 0);
}

namespace {

/// A feature-fed block backbone (DFlash / DSpark shape): it keeps the committed tokens and the
/// target feature rows it was handed, checks every row against the toy target's feature of that
/// token and position, and checks at every block that it knows the features of exactly the
/// positions before the anchor. Its base logits favour (anchor + 1 + k + rows known) mod V.
struct toy_feature_backbone {
  std::vector<std::int32_t> layers{1, 2};
  std::vector<token_id> tokens; // committed context
  std::vector<float> rows;      // feature rows known, position-major
  std::int64_t violations = 0;  // rows or blocks that broke the contract
  std::int64_t blocks = 0;      // run_block calls
  std::int64_t begins = 0, ends = 0, prompt_chunks = 0, observed = 0;
  index_t known() const {
    return static_cast<index_t>(rows.size()) / feature_width;
  }
  void take(const float* f, index_t n) {
    for (index_t j = 0; j < n; ++j) {
      const index_t p = known();
      for (index_t l = 0; l < 2; ++l)
        for (index_t h = 0; h < target_hidden; ++h)
          if (p >= static_cast<index_t>(tokens.size())
              || f[j * feature_width + l * target_hidden + h]
                     != target_feature(layers[static_cast<std::size_t>(l)],
                                       tokens[static_cast<std::size_t>(p)],
                                       p,
                                       h))
            ++violations;
      rows.insert(rows.end(), f + j * feature_width, f + (j + 1) * feature_width);
    }
  }
  status begin(std::uint64_t, row_view<const token_id> prompt) {
    ++begins;
    tokens.assign(prompt.data, prompt.data + prompt.size);
    rows.clear();
    return status{};
  }
  status observe_prompt(std::uint64_t, index_t start, matrix_view<const float> f) {
    ++prompt_chunks;
    if (start != known() || f.cols != feature_width)
      ++violations;
    take(f.data, f.rows);
    return status{};
  }
  status observe(const round_outcome& o) {
    ++observed;
    if (o.position - 1 != known() || o.features.rows != o.accepted + 1)
      ++violations;
    tokens.insert(tokens.end(), o.tokens.data, o.tokens.data + o.tokens.size);
    take(o.features.data, o.features.rows);
    return status{};
  }
  void end(std::uint64_t) {
    ++ends;
  }
  row_view<const std::int32_t> feature_layers() const {
    return {layers.data(), 2};
  }
  status run_block(const propose::backbone_request& r, matrix_view<float> U, matrix_view<float> H) {
    ++blocks;
    if (known() != r.context.size - 1 || static_cast<index_t>(tokens.size()) != r.context.size)
      ++violations;
    const token_id anchor = r.context[r.context.size - 1];
    for (index_t k = 0; k < r.gamma; ++k) {
      for (index_t v = 0; v < toy_vocab; ++v)
        U(k, v) = v == (anchor + 1 + k + known()) % toy_vocab ? 4.0f : 0.0f;
      H(k, 0) = static_cast<float>(k);
    }
    return status{};
  }
  index_t vocab_size() const {
    return toy_vocab;
  }
  index_t hidden_size() const {
    return 1;
  }
  int block_size() const {
    return 4;
  }
};
static_assert(propose::prompt_feature_backbone<toy_feature_backbone>);
static_assert(prompt_feature_proposer<propose::semi_ar_drafter<toy_feature_backbone>>);

/// A backbone without a lifecycle: the drafter over it is not stateful.
struct stateless_backbone {
  status run_block(const propose::backbone_request&, matrix_view<float>, matrix_view<float>) {
    return status{};
  }
  index_t vocab_size() const {
    return toy_vocab;
  }
  index_t hidden_size() const {
    return 1;
  }
  int block_size() const {
    return 4;
  }
};
static_assert(propose::parallel_backbone<stateless_backbone>);
static_assert(!propose::stateful_backbone<stateless_backbone>);
static_assert(!stateful_proposer<propose::semi_ar_drafter<stateless_backbone>>);
static_assert(draft_proposer<propose::semi_ar_drafter<stateless_backbone>>);

} // namespace

TEST_CASE("semi_ar_drafter over a feature backbone: the loop feeds the backbone the prompt's and "
          "every kept row's target features; greedy output equals plain decoding",
          "[propose][feature_drafter][semi_ar][decode]") {
  toy_feature_target target(256);
  toy_feature_backbone bb;
  propose::semi_ar_config sc;
  sc.gamma = 4;
  sc.params.temperature = 0.0f;
  propose::semi_ar_drafter<toy_feature_backbone> drafter(
      bb, propose::sequential_head<float>{}, std::nullopt, sc);
  decode::speculative_decoder dec(
      target, target.cache, drafter, verify::greedy{}, sched::fixed_draft_length{4});
  decode::decode_config cfg = loop_config(4);
  std::int64_t rounds = 0;
  std::int64_t kept = 0;
  cfg.on_step = [&](const decode::step_record& s) {
    ++rounds;
    kept += s.accepted + 1;
  };
  decode::decode_result out;
  REQUIRE(dec.generate(loop_prompt, cfg, out).ok());
  CHECK(out.tokens == plain_tokens());
  CHECK(out.stats.drafted > 0);
  CHECK(bb.begins == 1);
  CHECK(bb.ends == 1);
  CHECK(bb.prompt_chunks == 3); // prefill chunks of 3: positions 0..7
  CHECK(bb.observed == rounds);
  CHECK(bb.blocks >= 1);
  CHECK(bb.violations == 0);
  // The prompt minus its last token, then the anchor and the kept drafts of every round.
  CHECK(bb.known() == static_cast<index_t>(loop_prompt.size()) - 1 + kept);
}

TEST_CASE("feature tree: through tree_decoder, greedy output equals plain decoding",
          "[propose][feature_drafter][decode][tree]") {
  toy_feature_target target(256);
  toy_net net;
  tree_proposer p(net, tree_config(3, 4, 10));
  decode::tree_decoder dec(target, target.cache, p, verify::greedy{});
  decode::decode_config cfg = loop_config(10);
  decode::decode_result out;
  REQUIRE(dec.generate(loop_prompt, cfg, out).ok());
  CHECK(out.tokens == plain_tokens());
  CHECK(out.stats.drafted > 0);
  CHECK(out.stats.accepted > 0);
  CHECK(net.size() == 0);
  CHECK(net.violations == 0);
}
