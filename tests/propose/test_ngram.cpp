// SPDX-License-Identifier: Apache-2.0
// The suffix automaton and the n-gram (prompt-lookup) drafter, against a brute-force reference.

#include <specdec/propose/ngram.hpp>
#include <specdec/propose/suffix_automaton.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <vector>

using namespace specdec;
using propose::ngram_config;
using propose::ngram_proposer;
using propose::suffix_automaton;

namespace {

using text_t = std::vector<token_id>;

/// The longest suffix of a text that also ends at an earlier index, and the earliest such end.
struct ref_match {
  index_t length = 0;
  index_t end = -1;
};

/// Direct O(n^3) scan: longest L first, then the earliest end e < n - 1.
ref_match naive_repeated_suffix(const text_t& t, index_t n) {
  for (index_t len = n - 1; len >= 1; --len)
    for (index_t e = len - 1; e < n - 1; ++e) {
      bool same = true;
      for (index_t k = 0; k < len && same; ++k)
        same = t[static_cast<std::size_t>(e - k)] == t[static_cast<std::size_t>(n - 1 - k)];
      if (same)
        return {len, e};
    }
  return {};
}

/// O(n) per token (O(n^2) per text): lcs[e] = common suffix length of t[0..e] and t[0..n-1] for
/// every e < n - 1, updated as tokens arrive.
class brute_reference {
public:
  explicit brute_reference(const text_t& t)
      : t_(t) {}

  /// Absorbs token n - 1 (the next one of the text).
  void advance() {
    const index_t n = ++n_;
    lcs_.resize(static_cast<std::size_t>(n));
    lcs_[static_cast<std::size_t>(n - 1)] = 0;
    for (index_t e = n - 2; e >= 0; --e) {
      const bool eq = tok(e) == tok(n - 1);
      lcs_[static_cast<std::size_t>(e)] = eq ? (e > 0 ? lcs(e - 1) : 0) + 1 : 0;
    }
  }

  ref_match longest() const {
    ref_match m;
    for (index_t e = 0; e + 1 < n_; ++e)
      if (lcs(e) > m.length)
        m = {lcs(e), e};
    return m;
  }

  /// Token -> end index of its first occurrence right after an occurrence of the suffix of
  /// length `len` (ending before n - 1); for len 0, every token of the text with its first index.
  std::map<token_id, index_t> continuations(index_t len) const {
    std::map<token_id, index_t> out;
    if (len == 0) {
      for (index_t i = 0; i < n_; ++i)
        out.emplace(tok(i), i);
      return out;
    }
    for (index_t e = 0; e + 1 < n_; ++e)
      if (lcs(e) >= len)
        out.emplace(tok(e + 1), e + 1);
    return out;
  }

  index_t size() const {
    return n_;
  }

private:
  token_id tok(index_t i) const {
    return t_[static_cast<std::size_t>(i)];
  }
  index_t lcs(index_t e) const {
    return lcs_[static_cast<std::size_t>(e)];
  }
  const text_t& t_;
  std::vector<index_t> lcs_;
  index_t n_ = 0;
};

/// A random text over `alphabet` symbols (mapped to spread-out ids, some near 2^31) in which a
/// fraction `copy_prob` of steps copies a passage of 1..24 tokens from earlier in the text.
text_t make_text(std::uint32_t seed, index_t n, int alphabet, double copy_prob) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> sym(0, alphabet - 1);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  const auto id = [](int s) {
    return s % 3 == 2 ? std::numeric_limits<token_id>::max() - s : static_cast<token_id>(s * 7919);
  };
  text_t t;
  while (static_cast<index_t>(t.size()) < n) {
    if (!t.empty() && coin(rng) < copy_prob) {
      std::uniform_int_distribution<std::size_t> start(0, t.size() - 1);
      std::uniform_int_distribution<std::size_t> len(1, 24);
      const std::size_t s = start(rng);
      const std::size_t l = len(rng);
      for (std::size_t k = 0; k < l && static_cast<index_t>(t.size()) < n; ++k)
        t.push_back(t[s + k]); // s + k < size: the passage may overlap what it writes
    } else {
      t.push_back(id(sym(rng)));
    }
  }
  return t;
}

std::map<token_id, index_t> automaton_continuations(const suffix_automaton& sa,
                                                    const suffix_automaton::match& m) {
  std::vector<suffix_automaton::candidate> buf(static_cast<std::size_t>(sa.size()) + 1);
  const std::int32_t k = sa.continuations(m, buf);
  std::map<token_id, index_t> out;
  for (std::int32_t i = 0; i < k; ++i) {
    const auto& c = buf[static_cast<std::size_t>(i)];
    CHECK(out.emplace(c.token, c.end).second); // distinct tokens
    CHECK(sa.at(c.end) == c.token);
  }
  return out;
}

row_view<const token_id> view_of(const text_t& t, index_t n) {
  return {t.data(), n};
}
row_view<const token_id> view_of(const text_t& t) {
  return view_of(t, static_cast<index_t>(t.size()));
}

/// One propose() call with a fresh output buffer of `cap` tokens; returns the draft.
struct step_result {
  status st;
  text_t draft;
  std::int32_t match_length = 0;
};
step_result step(ngram_proposer& p,
                 std::uint64_t id,
                 const text_t& ctx,
                 index_t n,
                 std::int32_t max_tokens = 8,
                 index_t cap = 16) {
  text_t buf(static_cast<std::size_t>(cap), -7);
  draft_block b;
  b.tokens = {buf.data(), cap};
  const draft_request r{id, view_of(ctx, n), max_tokens};
  step_result out;
  out.st = p.propose(r, b);
  REQUIRE(b.length >= 0);
  REQUIRE(b.length <= cap);
  for (index_t j = static_cast<index_t>(b.length); j < cap; ++j)
    CHECK(buf[static_cast<std::size_t>(j)] == -7); // nothing written past length
  out.draft.assign(buf.begin(), buf.begin() + b.length);
  out.match_length = p.last_match_length();
  return out;
}

/// One propose() on `p` and one on a freshly constructed proposer with the same settings, both
/// on ctx[0..n): `p` must have indexed exactly that context and drafted what the fresh one does
/// (draft, match and candidates). Returns the step of `p`.
step_result
require_same_as_fresh(ngram_proposer& p, std::uint64_t id, const text_t& ctx, index_t n) {
  step_result a = step(p, id, ctx, n, 8, 8);
  ngram_proposer fresh(p.config());
  const step_result b = step(fresh, id, ctx, n, 8, 8);
  REQUIRE(a.st.ok());
  REQUIRE(b.st.ok());
  const auto text = p.automaton().text();
  REQUIRE(static_cast<index_t>(text.size()) == n);
  REQUIRE(std::equal(text.begin(), text.end(), ctx.begin()));
  REQUIRE(a.draft == b.draft);
  REQUIRE(a.match_length == b.match_length);
  REQUIRE(p.last_match().end == fresh.last_match().end);
  std::vector<ngram_proposer::candidate> ca(64), cb(64);
  const std::int32_t ka = p.candidates(ca);
  REQUIRE(ka == fresh.candidates(cb));
  for (std::int32_t i = 0; i < ka; ++i) {
    REQUIRE(ca[static_cast<std::size_t>(i)].token == cb[static_cast<std::size_t>(i)].token);
    REQUIRE(ca[static_cast<std::size_t>(i)].end == cb[static_cast<std::size_t>(i)].end);
  }
  return a;
}

/// The draft of ctx[0..n) by a direct scan: the tokens after the earliest end of the longest
/// repeated suffix, when it is at least min_match long.
text_t brute_draft(const text_t& ctx, index_t n, const ngram_config& c, index_t budget) {
  brute_reference ref(ctx);
  for (index_t i = 0; i < n; ++i)
    ref.advance();
  const ref_match m = ref.longest();
  if (m.length == 0 || m.length < c.min_match)
    return {};
  const index_t len = std::min({budget, static_cast<index_t>(c.max_draft), n - (m.end + 1)});
  return text_t(ctx.begin() + m.end + 1, ctx.begin() + m.end + 1 + len);
}

/// A token different from `t` (both non-negative).
token_id other_token(token_id t) {
  return t == 1 ? 2 : 1;
}

} // namespace

static_assert(draft_proposer<ngram_proposer>);
static_assert(!dense_draft_proposer<ngram_proposer>);

TEST_CASE("ngram: the brute-force DP reference agrees with a direct scan", "[propose][ngram]") {
  for (int alphabet : {2, 3, 5}) {
    const text_t t = make_text(static_cast<std::uint32_t>(100 + alphabet), 60, alphabet, 0.2);
    brute_reference ref(t);
    for (index_t n = 1; n <= 60; ++n) {
      ref.advance();
      const ref_match a = ref.longest();
      const ref_match b = naive_repeated_suffix(t, n);
      CHECK(a.length == b.length);
      CHECK(a.end == b.end);
    }
  }
}

TEST_CASE("ngram: longest repeated suffix and continuations equal brute force on every prefix",
          "[propose][ngram][automaton]") {
  int texts = 0;
  for (int alphabet : {2, 3, 4, 5, 512}) {
    for (std::uint32_t seed = 1; seed <= 6; ++seed) {
      const index_t n = 50 + static_cast<index_t>(seed) * 58; // 108 .. 398
      const double copy_prob = alphabet == 512 ? 0.3 * seed / 6.0 : 0.05 * (seed % 3);
      const text_t t =
          make_text(seed * 1000u + static_cast<std::uint32_t>(alphabet), n, alphabet, copy_prob);
      CAPTURE(alphabet, seed, n);
      suffix_automaton sa;
      brute_reference ref(t);
      index_t repeats = 0;
      for (index_t i = 0; i < n; ++i) {
        sa.push_back(t[static_cast<std::size_t>(i)]);
        ref.advance();
        CAPTURE(i);
        REQUIRE(sa.size() == i + 1);
        REQUIRE(sa.at(i) == t[static_cast<std::size_t>(i)]);
        const auto m = sa.longest_repeated_suffix();
        const ref_match r = ref.longest();
        REQUIRE(m.length == r.length);
        REQUIRE(m.end == r.end);
        if (m.length > 0) {
          ++repeats;
          REQUIRE(m.end < sa.size() - 1);
          REQUIRE(m.state > 0);
        } else {
          REQUIRE(m.state == 0);
        }
        REQUIRE(automaton_continuations(sa, m) == ref.continuations(m.length));
        // the size bounds hold for every prefix
        if (sa.size() >= 2)
          REQUIRE(sa.num_states() <= 2 * sa.size() - 1);
        if (sa.size() >= 3)
          REQUIRE(sa.num_edges() <= 3 * sa.size() - 4);
        REQUIRE(sa.hash_capacity() >= 2 * sa.num_edges());
      }
      // the root lists every distinct token with its first index
      CHECK(automaton_continuations(sa, suffix_automaton::match{}) == ref.continuations(0));
      // most prefixes of these texts repeat something: the comparisons above were not vacuous
      if (alphabet < 512 || seed >= 3)
        CHECK(repeats > n / 2);
      ++texts;
    }
  }
  CHECK(texts == 30);
}

TEST_CASE("ngram: transitions spell exactly the substrings of the text", "[propose][ngram]") {
  const text_t t = make_text(77, 120, 3, 0.1);
  suffix_automaton sa;
  for (token_id x : t)
    sa.push_back(x);
  // every substring is accepted
  for (std::size_t i = 0; i < t.size(); i += 7) {
    std::int32_t s = 0;
    for (std::size_t j = i; j < t.size(); ++j) {
      s = sa.transition(s, t[j]);
      REQUIRE(s > 0);
    }
  }
  // a token never seen has no transition; neither has a string longer than the text
  CHECK(sa.transition(0, 12345) == -1);
  std::int32_t s = 0;
  for (token_id x : t)
    s = sa.transition(s, x);
  REQUIRE(s > 0);
  for (token_id x : t)
    CHECK(sa.transition(s, x) == -1);
}

TEST_CASE("ngram: extremal texts reach the 2n-1 state and 3n-4 edge bounds exactly",
          "[propose][ngram][automaton]") {
  // "a b b ... b" has 2n - 1 states; "a b ... b c" has 3n - 4 edges.
  const index_t n = 1000;
  suffix_automaton sa;
  sa.push_back(1);
  for (index_t i = 1; i < n; ++i)
    sa.push_back(2);
  CHECK(sa.num_states() == 2 * n - 1);
  sa.clear();
  CHECK(sa.size() == 0);
  CHECK(sa.num_states() == 1);
  CHECK(sa.num_edges() == 0);
  sa.push_back(1);
  for (index_t i = 1; i < n - 1; ++i)
    sa.push_back(2);
  sa.push_back(3);
  CHECK(sa.num_edges() == 3 * n - 4);
}

TEST_CASE("ngram: states, edges and hash probes grow linearly", "[propose][ngram][automaton]") {
  const index_t n = 20000;
  std::vector<text_t> texts;
  for (int alphabet : {2, 4, 512})
    texts.push_back(make_text(static_cast<std::uint32_t>(alphabet), n, alphabet, 0.1));
  texts.push_back(text_t(static_cast<std::size_t>(n), 5)); // a a a ...
  text_t fib{1, 2};                                        // Fibonacci word: many clones
  while (static_cast<index_t>(fib.size()) < n) {
    const text_t prev(fib.begin(), fib.begin() + static_cast<std::ptrdiff_t>(fib.size() / 2));
    text_t next = fib;
    next.insert(next.end(), prev.begin(), prev.end());
    fib = next;
  }
  fib.resize(static_cast<std::size_t>(n));
  texts.push_back(fib);
  text_t distinct(static_cast<std::size_t>(n)); // all tokens different: the root fans out
  for (index_t i = 0; i < n; ++i)
    distinct[static_cast<std::size_t>(i)] = static_cast<token_id>(i * 104729 % 2147483647);
  texts.push_back(distinct);

  for (const text_t& t : texts) {
    suffix_automaton sa;
    std::int64_t at_half = 0;
    for (index_t i = 0; i < n; ++i) {
      sa.push_back(t[static_cast<std::size_t>(i)]);
      if (i + 1 == n / 2)
        at_half = sa.probe_count();
    }
    CHECK(sa.num_states() <= 2 * n - 1);
    CHECK(sa.num_edges() <= 3 * n - 4);
    CHECK(2 * sa.num_edges() <= sa.hash_capacity());
    // linear work: a bounded number of probes per token, and doubling n about doubles it
    // (measured: 4-13 per token, rehashes included)
    CHECK(sa.probe_count() <= 20 * n);
    CHECK(2 * sa.probe_count() <= 5 * at_half);
    CHECK(sa.probe_count() >= n); // at least one probe per token
  }
  // reserve() sizes the table for the worst case: no rehash while appending that many tokens
  suffix_automaton sa;
  sa.reserve(n);
  const index_t cap = sa.hash_capacity();
  for (token_id x : texts[2])
    sa.push_back(x);
  CHECK(sa.hash_capacity() == cap);
}

TEST_CASE("ngram: proposes the continuation of the longest repeated suffix with clamping",
          "[propose][ngram]") {
  // The suffix "1 2 3" first occurred ending at index 2; what followed is "4 5 9 1 2 3".
  const text_t ctx{1, 2, 3, 4, 5, 9, 1, 2, 3};
  {
    ngram_proposer p;
    const auto r = step(p, 1, ctx, 9);
    REQUIRE(r.st.ok());
    CHECK(r.draft == text_t{4, 5, 9, 1, 2, 3}); // stops at the end of the text
    CHECK(r.match_length == 3);
    CHECK(p.last_match().end == 2);
    CHECK(p.max_draft_len() == 8);
  }
  {
    ngram_proposer p;
    CHECK(step(p, 1, ctx, 9, /*max_tokens=*/2).draft == text_t{4, 5});
    CHECK(step(p, 1, ctx, 9, /*max_tokens=*/0).draft.empty());
    CHECK(p.last_match_length() == 3); // the match is still reported
    CHECK(step(p, 1, ctx, 9, 8, /*cap=*/1).draft == text_t{4});
    CHECK(step(p, 1, ctx, 9, 8, /*cap=*/0).draft.empty());
  }
  {
    ngram_proposer p(ngram_config{1, 0, 3});
    CHECK(p.max_draft_len() == 3);
    CHECK(step(p, 1, ctx, 9).draft == text_t{4, 5, 9});
  }
  {
    ngram_proposer p(ngram_config{3, 0, 8}); // min_match 3: still drafts
    CHECK(step(p, 1, ctx, 9).draft.size() == 6);
    ngram_proposer q(ngram_config{4, 0, 8}); // min_match 4: the 3-token match is too short
    const auto r = step(q, 1, ctx, 9);
    CHECK(r.st.ok());
    CHECK(r.draft.empty());
    CHECK(r.match_length == 0);
    std::vector<ngram_proposer::candidate> c(4);
    CHECK(q.candidates(c) == 0);
  }
  {
    ngram_proposer p(ngram_config{1, 2, 8}); // max_match caps the report, not the draft
    const auto r = step(p, 1, ctx, 9);
    CHECK(r.match_length == 2);
    CHECK(p.last_match().length == 3);
    CHECK(r.draft == text_t{4, 5, 9, 1, 2, 3});
  }
  {
    ngram_proposer p; // no repeat: no draft
    const text_t fresh{4, 8, 15, 16, 23, 42};
    const auto r = step(p, 1, fresh, 6);
    CHECK(r.st.ok());
    CHECK(r.draft.empty());
    CHECK(r.match_length == 0);
    CHECK(step(p, 2, fresh, 0).draft.empty()); // empty context
    CHECK(step(p, 3, fresh, 1).draft.empty()); // one token
  }
}

TEST_CASE("ngram: candidates list every alternative after the match, newest edge first",
          "[propose][ngram]") {
  // "1 2" was followed by 7 (first, ending at 2) and by 8 (ending at 5).
  const text_t ctx{1, 2, 7, 1, 2, 8, 1, 2};
  ngram_proposer p;
  const auto r = step(p, 9, ctx, 8);
  REQUIRE(r.st.ok());
  CHECK(r.match_length == 2);
  CHECK(r.draft == text_t{7, 1, 2, 8, 1, 2});
  std::vector<ngram_proposer::candidate> c(4);
  REQUIRE(p.candidates(c) == 2);
  CHECK(c[0].token == 8);
  CHECK(c[0].end == 5);
  CHECK(c[1].token == 7);
  CHECK(c[1].end == 2);
  std::vector<ngram_proposer::candidate> one(1);
  CHECK(p.candidates(one) == 1); // clamped to the span
  CHECK(one[0].token == 8);
  CHECK(p.candidates({}) == 0);
}

TEST_CASE("ngram: the draft rows are never touched (one-hot drafts)", "[propose][ngram]") {
  const text_t ctx{1, 2, 3, 1, 2};
  std::vector<float> probs(3 * 4, 0.25f);
  text_t buf(8, -1);
  draft_block b;
  b.tokens = {buf.data(), 8};
  b.probs = make_matrix_view(probs.data(), 3, 4);
  b.probs_kind = distribution_kind::probabilities;
  ngram_proposer p;
  REQUIRE(p.propose(draft_request{1, view_of(ctx), 8}, b).ok());
  CHECK(b.length == 3);
  CHECK(buf[0] == 3);
  CHECK(b.probs_kind == distribution_kind::probabilities);
  CHECK(b.probs.data == probs.data());
  CHECK(std::all_of(probs.begin(), probs.end(), [](float x) { return x == 0.25f; }));
}

TEST_CASE("ngram: incremental sync equals a rebuild at every step", "[propose][ngram]") {
  for (int alphabet : {2, 5, 512}) {
    const text_t t = make_text(static_cast<std::uint32_t>(31 * alphabet), 400, alphabet, 0.25);
    std::mt19937 rng(static_cast<std::uint32_t>(alphabet));
    std::uniform_int_distribution<index_t> chunk(0, 9);
    ngram_proposer inc(ngram_config{2, 0, 6});
    index_t n = 0;
    int drafted = 0;
    while (n < 400) {
      n = std::min<index_t>(400, n + chunk(rng));
      CAPTURE(alphabet, n);
      const index_t probes_before = inc.automaton().probe_count();
      const auto a = step(inc, 42, t, n, 8, 8);
      ngram_proposer fresh(ngram_config{2, 0, 6});
      const auto b = step(fresh, 42, t, n, 8, 8);
      REQUIRE(a.st.ok());
      REQUIRE(b.st.ok());
      REQUIRE(a.draft == b.draft);
      REQUIRE(a.match_length == b.match_length);
      REQUIRE(inc.automaton().size() == n);
      REQUIRE(inc.automaton().num_states() == fresh.automaton().num_states());
      REQUIRE(inc.automaton().num_edges() == fresh.automaton().num_edges());
      std::vector<ngram_proposer::candidate> ca(600), cb(600);
      const std::int32_t ka = inc.candidates(ca);
      REQUIRE(ka == fresh.candidates(cb));
      for (std::int32_t i = 0; i < ka; ++i) {
        CHECK(ca[static_cast<std::size_t>(i)].token == cb[static_cast<std::size_t>(i)].token);
        CHECK(ca[static_cast<std::size_t>(i)].end == cb[static_cast<std::size_t>(i)].end);
      }
      // incremental: the probe counter was not reset by a rebuild
      REQUIRE(inc.automaton().probe_count() >= probes_before);
      REQUIRE(inc.rebuild_count() == 1);
      drafted += a.draft.empty() ? 0 : 1;
    }
    CHECK(drafted > 5);
  }
}

TEST_CASE("ngram: the same request absorbs only new tokens; a switch or a shorter context "
          "rebuilds",
          "[propose][ngram]") {
  const text_t a{10, 11, 12, 10, 11, 12, 13, 10, 11};
  ngram_proposer p;
  REQUIRE(step(p, 1, a, 6).st.ok());
  REQUIRE(p.automaton().size() == 6);

  CHECK(p.rebuild_count() == 1);
  REQUIRE(step(p, 1, a, 7).st.ok()); // the same tokens and one more: incremental
  CHECK(p.automaton().size() == 7);
  CHECK(p.rebuild_count() == 1);

  // Same request, longer context whose token 0 was edited behind the proposer's back: the edit
  // lies within the verified window, so the context is re-indexed (issue 12).
  text_t edited = a;
  edited[0] = 99;
  REQUIRE(step(p, 1, edited, 9).st.ok());
  CHECK(p.automaton().size() == 9);
  CHECK(p.automaton().at(0) == 99);
  CHECK(p.automaton().at(8) == 11);
  CHECK(p.rebuild_count() == 2);
  {
    // With the checks off the proposer trusts the caller: only the new tokens are read.
    ngram_config trusting;
    trusting.check_window = 0;
    trusting.check_sweep = 0;
    ngram_proposer q(trusting);
    REQUIRE(step(q, 1, a, 6).st.ok());
    REQUIRE(step(q, 1, edited, 9).st.ok());
    CHECK(q.automaton().at(0) == 10); // not re-read: incremental
    CHECK(q.automaton().at(8) == 11);
    CHECK(q.rebuild_count() == 1);
    REQUIRE(step(q, 1, a, 5).st.ok()); // a shorter context is still rebuilt
    CHECK(q.automaton().at(0) == 10);
    CHECK(q.rebuild_count() == 2);
  }

  // Another request: rebuilt from its own context.
  REQUIRE(step(p, 2, edited, 9).st.ok());
  CHECK(p.automaton().at(0) == 99);
  // Back to request 1 with a's tokens: rebuilt again.
  const auto back = step(p, 1, a, 9);
  CHECK(p.automaton().at(0) == 10);
  CHECK(back.match_length == 2); // "10 11": its earliest occurrence ends at 1
  CHECK(back.draft == text_t{12, 10, 11, 12, 13, 10, 11});

  // Same request, shorter context (a rollback): rebuilt to exactly that context.
  const auto shorter = step(p, 1, a, 5);
  CHECK(p.automaton().size() == 5);
  CHECK(shorter.draft == text_t{12, 10, 11}); // "10 11" again, from index 2
  CHECK(shorter.match_length == 2);

  // Same request and length but the last absorbed token changed: rebuilt.
  text_t last_changed(a.begin(), a.begin() + 5);
  last_changed[4] = 12; // 10 11 12 10 12
  const auto lc = step(p, 1, last_changed, 5);
  CHECK(p.automaton().at(4) == 12);
  CHECK(lc.match_length == 1); // "12" occurred at 2
  CHECK(lc.draft == text_t{10, 12});

  // reset() forgets everything.
  p.reset();
  CHECK(p.automaton().size() == 0);
  CHECK(p.last_match_length() == 0);
  REQUIRE(step(p, 1, a, 9).st.ok());
  CHECK(p.automaton().size() == 9);
}

TEST_CASE("ngram: bad input is rejected without side effects", "[propose][ngram]") {
  const text_t good{1, 2, 1, 2};
  const text_t bad{1, 2, -3, 1, 2};
  text_t buf(4, -7);
  draft_block b;
  b.tokens = {buf.data(), 4};

  ngram_proposer p;
  b.length = 5;
  CHECK(p.propose(draft_request{1, view_of(bad), 4}, b).code == errc::invalid_value);
  CHECK(b.length == 0);
  CHECK(p.automaton().size() == 0);
  CHECK(buf == text_t(4, -7));

  REQUIRE(p.propose(draft_request{1, view_of(good), 4}, b).ok());
  CHECK(b.length == 2); // "1 2" first ended at 1, followed by "1 2"
  CHECK(buf[0] == 1);
  // a negative token among the new ones: nothing absorbed, nothing drafted
  text_t grown = good;
  grown.push_back(-1);
  b.length = 3;
  buf.assign(4, -7);
  CHECK(p.propose(draft_request{1, view_of(grown), 4}, b).code == errc::invalid_value);
  CHECK(b.length == 0);
  CHECK(buf == text_t(4, -7));
  CHECK(p.automaton().size() == 4);
  CHECK(p.last_match_length() == 0);
  // ... and the automaton is still usable incrementally
  grown.back() = 1;
  REQUIRE(p.propose(draft_request{1, view_of(grown), 4}, b).ok());
  CHECK(b.length == 2); // "1 2 1" first ended at 2, followed by "2 1" (the end of the text)
  CHECK(buf[0] == 2);
  CHECK(buf[1] == 1);
  CHECK(p.last_match_length() == 3);

  CHECK(p.propose(draft_request{1, view_of(grown), -1}, b).code == errc::invalid_value);
  CHECK(b.length == 0);

  for (const ngram_config& c : {ngram_config{0, 0, 8},
                                ngram_config{-1, 0, 8},
                                ngram_config{1, 0, -1},
                                ngram_config{3, 2, 8},
                                ngram_config{2, -1, 8}}) {
    CHECK(c.validate().code == errc::invalid_value);
    ngram_proposer q(c);
    b.length = 2;
    CHECK(q.propose(draft_request{1, view_of(good), 4}, b).code == errc::invalid_value);
    CHECK(b.length == 0);
    CHECK(q.automaton().size() == 0);
  }
  for (const ngram_config& c : {ngram_config{1, 0, 8, -1, 256}, ngram_config{1, 0, 8, 64, -1}}) {
    CHECK(c.validate().code == errc::invalid_value);
    ngram_proposer q(c);
    CHECK(q.propose(draft_request{1, view_of(good), 4}, b).code == errc::invalid_value);
  }
  CHECK(ngram_config{}.validate().ok());
  CHECK(ngram_config{1, 0, 8, 0, 0}.validate().ok());
  CHECK(ngram_config{1, 0, 8, ngram_config::check_all, 0}.validate().ok());
  CHECK(ngram_config{2, 2, 0}.validate().ok());
  CHECK(ngram_config{2, 5, 3}.validate().ok());
}

TEST_CASE("ngram: a repeated passage is drafted exactly, step after step", "[propose][ngram]") {
  std::mt19937 rng(2024);
  std::uniform_int_distribution<token_id> vocab(0, 31999);
  text_t passage(50), head(30), middle(20);
  for (auto* v : {&passage, &head, &middle})
    for (token_id& x : *v)
      x = vocab(rng);
  text_t ctx = head;
  ctx.insert(ctx.end(), passage.begin(), passage.end());
  ctx.insert(ctx.end(), middle.begin(), middle.end());
  ctx.insert(ctx.end(), passage.begin(), passage.begin() + 10); // the copy starts

  ngram_proposer p;
  index_t copied = 10;
  int steps = 0;
  while (copied < 50) {
    const auto r = step(p, 7, ctx, static_cast<index_t>(ctx.size()));
    REQUIRE(r.st.ok());
    CAPTURE(copied);
    CHECK(r.match_length >= copied); // the whole copied prefix (at least) repeats
    const auto expect_len = std::min<index_t>(8, 50 - copied);
    REQUIRE(r.draft.size() == 8); // the first passage is followed by more text
    for (index_t j = 0; j < expect_len; ++j)
      CHECK(r.draft[static_cast<std::size_t>(j)] == passage[static_cast<std::size_t>(copied + j)]);
    // a perfect verifier accepts every draft token of the passage
    for (index_t j = 0; j < expect_len; ++j)
      ctx.push_back(r.draft[static_cast<std::size_t>(j)]);
    copied += expect_len;
    ++steps;
  }
  CHECK(steps == 5);
  // at the end of the copy the drafter continues with what followed the passage the first time
  const auto r = step(p, 7, ctx, static_cast<index_t>(ctx.size()));
  CHECK(r.match_length >= 50);
  CHECK(r.draft == text_t(middle.begin(), middle.begin() + 8));
}

// Issue 12: a context that is not an extension of what was indexed (same request id) must be
// re-indexed, not extended. The default settings verify the last 64 indexed tokens on every
// call and sweep 256 more (plus one per new token) through the older ones.
namespace {
constexpr index_t default_window = ngram_config{}.check_window;
constexpr index_t default_sweep = ngram_config{}.check_sweep;
static_assert(default_window == 64 && default_sweep == 256);

/// The documented staleness bound: a change to an indexed token outside the window is found by
/// the (ceil((n - W) / C) + 1)-th call that sees it, n the indexed size at the first such call.
index_t sweep_bound(index_t n, const ngram_config& c) {
  const index_t older = n - std::min<index_t>(c.check_window, n);
  return (older + c.check_sweep - 1) / c.check_sweep + 1;
}
} // namespace

TEST_CASE("ngram: a context shortened then regrown under the same request id is re-indexed",
          "[propose][ngram][issue12]") {
  for (std::uint32_t seed = 1; seed <= 8; ++seed) {
    CAPTURE(seed);
    // A preempted request: its 48-token context was cut back to 30 tokens and regrew to 56 with
    // other tokens before the next call; the last token indexed (47) happens to be unchanged.
    const text_t a = make_text(seed, 48, 4, 0.3);
    text_t b(a.begin(), a.begin() + 30);
    const text_t regrown = make_text(seed + 100, 26, 4, 0.3);
    b.insert(b.end(), regrown.begin(), regrown.end());
    b[47] = a[47];
    REQUIRE_FALSE(std::equal(a.begin(), a.end(), b.begin()));
    ngram_proposer p;
    REQUIRE(step(p, 5, a, 48).st.ok());
    require_same_as_fresh(p, 5, b, 56);
    // ... and then it grows incrementally again
    const auto absorbed_probes = p.automaton().probe_count();
    b.push_back(b[3]);
    require_same_as_fresh(p, 5, b, 57);
    CHECK(p.automaton().probe_count() > absorbed_probes);
  }
  for (std::uint32_t seed = 1; seed <= 4; ++seed) {
    CAPTURE(seed);
    // A long context cut back far more than the verified window, then regrown past its old
    // length: the window sees regrown tokens where the indexed ones were.
    const text_t a = make_text(seed, 3000, 512, 0.3);
    text_t b(a.begin(), a.begin() + 2000);
    const text_t regrown = make_text(seed + 100, 1100, 512, 0.3);
    b.insert(b.end(), regrown.begin(), regrown.end());
    b[2999] = a[2999];
    ngram_proposer p;
    REQUIRE(step(p, 9, a, 3000).st.ok());
    require_same_as_fresh(p, 9, b, 3100);
  }
}

TEST_CASE("ngram: an edit in the middle of a same-length context is re-indexed",
          "[propose][ngram][issue12]") {
  SECTION("a context within the verified window: detected at the next call, at any position") {
    text_t ctx = make_text(7, 40, 3, 0.2);
    ngram_proposer p;
    REQUIRE(step(p, 3, ctx, 40).st.ok());
    ctx[20] = other_token(ctx[20]);
    require_same_as_fresh(p, 3, ctx, 40);
    for (std::size_t pos = 0; pos < ctx.size(); ++pos) {
      CAPTURE(pos);
      ctx[pos] = other_token(ctx[pos]);
      require_same_as_fresh(p, 3, ctx, 40);
    }
  }
  SECTION("a long context: the sweep finds it within ceil((n - window) / sweep) + 1 calls") {
    for (const index_t at : {index_t{0}, index_t{1500}, index_t{3900}}) {
      CAPTURE(at);
      text_t ctx = make_text(11, 4000, 5, 0.2);
      ngram_proposer p;
      REQUIRE(step(p, 3, ctx, 4000).st.ok());
      ctx[static_cast<std::size_t>(at)] = other_token(ctx[static_cast<std::size_t>(at)]);
      std::mt19937 rng(static_cast<std::uint32_t>(at));
      std::uniform_int_distribution<index_t> grow(0, 3);
      const index_t bound = sweep_bound(4000, ngram_config{});
      REQUIRE(bound == (4000 - default_window + default_sweep - 1) / default_sweep + 1);
      index_t calls = 0;
      bool synced = false;
      while (!synced && calls < bound + 5) {
        for (index_t g = grow(rng); g > 0; --g)
          ctx.push_back(ctx[ctx.size() / 2]);
        REQUIRE(step(p, 3, ctx, static_cast<index_t>(ctx.size())).st.ok());
        ++calls;
        const auto text = p.automaton().text();
        synced = std::equal(text.begin(), text.end(), ctx.begin(), ctx.end());
      }
      CHECK(synced);
      CHECK(calls <= bound);
      // once re-indexed, the drafts are a fresh proposer's again
      ctx.push_back(ctx[100]);
      require_same_as_fresh(p, 3, ctx, static_cast<index_t>(ctx.size()));
    }
  }
}

TEST_CASE("ngram: random grow, shrink, regrow and recent-edit sequences draft as a fresh "
          "proposer and a brute-force scan do",
          "[propose][ngram][issue12]") {
  // Every change to indexed tokens made here lies within the last default_window indexed
  // ones (or shortens the context): the class detected for sure at the very next call.
  int drafted = 0;
  int rebuilt = 0;
  for (std::uint32_t seed = 1; seed <= 24; ++seed) {
    std::mt19937 rng(seed);
    const int alphabet = 2 + static_cast<int>(seed % 4);
    std::uniform_int_distribution<token_id> sym(0, alphabet - 1);
    std::uniform_int_distribution<int> pick(0, 9);
    const ngram_config config{1 + static_cast<std::int32_t>(seed % 3), 0, 6};
    ngram_proposer p(config);
    text_t ctx;
    std::uint64_t id = 1;
    const auto grow = [&](index_t count) {
      for (index_t i = 0; i < count; ++i) {
        if (ctx.size() > 4 && pick(rng) < 4) // copy an earlier token: repeats to draft from
          ctx.push_back(ctx[std::uniform_int_distribution<std::size_t>(0, ctx.size() - 1)(rng)]);
        else
          ctx.push_back(sym(rng) * 1009);
      }
    };
    for (int call = 0; call < 160; ++call) {
      const auto absorbed = static_cast<index_t>(p.automaton().size());
      // lowest indexed position a change may touch: inside the verified window
      const index_t lo = std::max<index_t>(0, absorbed - default_window);
      const auto size = [&] { return static_cast<index_t>(ctx.size()); };
      const int ops = 1 + pick(rng) % 3;
      for (int o = 0; o < ops; ++o) {
        const int op = pick(rng);
        if (op <= 3) { // grow
          grow(std::uniform_int_distribution<index_t>(0, 10)(rng));
        } else if (op == 4) { // shrink (a rollback)
          ctx.resize(std::uniform_int_distribution<std::size_t>(0, ctx.size())(rng));
        } else if (op <= 6) { // shrink then regrow with other tokens
          const index_t from = std::min(lo, size());
          ctx.resize(
              static_cast<std::size_t>(std::uniform_int_distribution<index_t>(from, size())(rng)));
          grow(std::uniform_int_distribution<index_t>(1, 24)(rng));
        } else if (op <= 8) { // edit one to three recent tokens in place
          if (size() > lo)
            for (int e = 1 + pick(rng) % 3; e > 0; --e) {
              auto& x = ctx[static_cast<std::size_t>(
                  std::uniform_int_distribution<index_t>(lo, size() - 1)(rng))];
              x = sym(rng) * 1009;
            }
        } else if (pick(rng) < 3) { // another request now and then
          ++id;
        }
      }
      if (ctx.size() > 240)
        ctx.resize(200);
      const auto n = static_cast<index_t>(ctx.size());
      CAPTURE(seed, call, n, absorbed, id);
      const step_result r = require_same_as_fresh(p, id, ctx, n);
      CHECK(r.draft == brute_draft(ctx, n, config, 8));
      drafted += r.draft.empty() ? 0 : 1;
    }
    rebuilt += static_cast<int>(p.rebuild_count());
  }
  CHECK(drafted > 24 * 160 / 2); // the comparisons were mostly not vacuous
  CHECK(rebuilt > 24 * 10);
}

TEST_CASE("ngram: with check_all every edit of a long context is found at the next call",
          "[propose][ngram][issue12]") {
  ngram_config config;
  config.check_window = ngram_config::check_all;
  config.check_sweep = 0;
  text_t ctx = make_text(5, 5000, 6, 0.2);
  ngram_proposer p(config);
  REQUIRE(step(p, 1, ctx, 5000).st.ok());
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> coin(0, 3);
  std::int64_t changes = 0;
  for (int call = 0; call < 60; ++call) {
    CAPTURE(call);
    for (int g = coin(rng); g > 0; --g)
      ctx.push_back(ctx[ctx.size() / 3]);
    if (coin(rng) != 0) { // an in-place edit anywhere, most calls
      auto& x = ctx[std::uniform_int_distribution<std::size_t>(0, ctx.size() - 1)(rng)];
      x = other_token(x);
      ++changes;
    }
    require_same_as_fresh(p, 1, ctx, static_cast<index_t>(ctx.size()));
  }
  CHECK(changes > 30);
  CHECK(p.rebuild_count() == 1 + changes); // and no rebuild without a change
}

TEST_CASE("ngram: random edits anywhere are found at once where guaranteed and within the sweep "
          "bound elsewhere",
          "[propose][ngram][issue12]") {
  // {min_match, max_match, max_draft, check_window, check_sweep}
  const ngram_config configs[] = {{1, 0, 6, 4, 3},
                                  {2, 0, 6, 0, 5},
                                  {1, 0, 6, 16, 1},
                                  {1, 0, 6, 64, 256},
                                  {1, 0, 6, ngram_config::check_all, 0}};
  for (const ngram_config& config : configs) {
    int stale_episodes = 0;
    index_t longest_stale = 0;
    int fresh_calls = 0;
    for (std::uint32_t seed = 1; seed <= 12; ++seed) {
      std::mt19937 rng(seed);
      const int alphabet = 2 + static_cast<int>(seed % 3);
      std::uniform_int_distribution<token_id> sym(0, alphabet - 1);
      std::uniform_int_distribution<int> pick(0, 9);
      ngram_proposer p(config);
      text_t ctx;
      std::uint64_t id = 1;
      std::uint64_t last_id = 0;
      int stale_since = -1; // first call that drafted from a stale index, -1 when in sync
      index_t stale_bound = 0;
      const auto grow = [&](index_t count) {
        for (index_t i = 0; i < count; ++i)
          ctx.push_back(
              ctx.size() > 4 && pick(rng) < 4
                  ? ctx[std::uniform_int_distribution<std::size_t>(0, ctx.size() - 1)(rng)]
                  : sym(rng) * 7);
      };
      for (int call = 0; call < 200; ++call) {
        const auto text0 = p.automaton().text();
        const text_t indexed(text0.begin(), text0.end());
        const auto m = static_cast<index_t>(indexed.size());
        if (stale_since < 0) { // new changes only while in sync, so each bound applies cleanly
          const int op = pick(rng);
          if (op <= 3) {
            grow(std::uniform_int_distribution<index_t>(0, 8)(rng));
          } else if (op == 4) {
            ctx.resize(std::uniform_int_distribution<std::size_t>(0, ctx.size())(rng));
          } else if (op == 5) {
            ctx.resize(std::uniform_int_distribution<std::size_t>(0, ctx.size())(rng));
            grow(std::uniform_int_distribution<index_t>(1, 40)(rng));
          } else if (op <= 8) {
            if (!ctx.empty())
              for (int e = 1 + pick(rng) % 3; e > 0; --e)
                ctx[std::uniform_int_distribution<std::size_t>(0, ctx.size() - 1)(rng)] =
                    sym(rng) * 7;
          } else if (pick(rng) < 3) {
            ++id;
          }
        } else {
          grow(std::uniform_int_distribution<index_t>(0, 3)(rng));
        }
        if (ctx.size() > 240)
          ctx.resize(200);
        const auto n = static_cast<index_t>(ctx.size());
        // Is this call's change one the contract detects for sure?
        const index_t window = std::min<index_t>(config.check_window, m);
        bool changed = false;
        bool sure = id != last_id || n < m;
        for (index_t i = 0; !sure && i < m; ++i)
          if (ctx[static_cast<std::size_t>(i)] != indexed[static_cast<std::size_t>(i)]) {
            changed = true;
            sure = i >= m - window;
          }
        CAPTURE(seed, call, n, m, changed, sure);
        last_id = id;
        const step_result r = step(p, id, ctx, n, 8, 8);
        REQUIRE(r.st.ok());
        const auto text = p.automaton().text();
        const bool in_sync = std::equal(text.begin(), text.end(), ctx.begin(), ctx.end());
        if (sure || !changed)
          REQUIRE((in_sync || stale_since >= 0)); // nothing new goes unnoticed for sure
        if (stale_since < 0 && (sure || !changed))
          REQUIRE(in_sync);
        if (in_sync) {
          stale_since = -1;
          ++fresh_calls;
          ngram_proposer fresh(config);
          const step_result f = step(fresh, id, ctx, n, 8, 8);
          REQUIRE(r.draft == f.draft);
          REQUIRE(r.match_length == f.match_length);
          REQUIRE(r.draft == brute_draft(ctx, n, config, 8));
        } else {
          REQUIRE(config.check_sweep > 0); // with no sweep only check_all is tested here
          if (stale_since < 0) {
            stale_since = call;
            stale_bound = sweep_bound(m, config);
            ++stale_episodes;
          }
          const index_t seen = call - stale_since + 1; // calls that saw the change, this one too
          REQUIRE(seen < stale_bound);                 // the stale_bound-th call finds it
          longest_stale = std::max(longest_stale, seen);
        }
      }
    }
    CAPTURE(config.check_window, config.check_sweep, stale_episodes, longest_stale);
    CHECK(fresh_calls > 12 * 200 / 2);
    if (config.check_window <= 16) // small windows: the bounded class was exercised
      CHECK(stale_episodes > 10);
    else
      CHECK(stale_episodes == 0); // contexts of <= 240 tokens: the default window + sweep
  }
}

TEST_CASE("ngram: a change found by a call that fails on a bad token is still rebuilt next",
          "[propose][ngram][issue12]") {
  // Only the sweep looks at token 3, and only in the first call after the edit (its cursor moves
  // on): that call fails on a negative new token, yet the next one still re-indexes.
  ngram_config config;
  config.check_window = 0;
  config.check_sweep = 10;
  text_t ctx = make_text(3, 100, 4, 0.2);
  ngram_proposer p(config);
  REQUIRE(step(p, 1, ctx, 100).st.ok());
  ctx[3] = other_token(ctx[3]);
  ctx.push_back(-1);
  CHECK(step(p, 1, ctx, 101).st.code == errc::invalid_value);
  CHECK(p.automaton().size() == 100); // unchanged
  CHECK(p.automaton().at(3) != ctx[3]);
  ctx.back() = 5;
  require_same_as_fresh(p, 1, ctx, 101);
  CHECK(p.rebuild_count() == 2);
}

TEST_CASE("ngram: the sweep bound holds for every edited position and cursor, and is attained",
          "[propose][ngram][issue12]") {
  std::mt19937 rng(12);
  text_t buf(8);
  draft_block b;
  b.tokens = {buf.data(), 8};
  bool all_ok = true;
  const auto call = [&](ngram_proposer& p, const text_t& ctx) {
    all_ok = p.propose(draft_request{1, view_of(ctx), 8}, b).ok() && all_ok;
  };
  for (const index_t max_growth : {index_t{0}, index_t{3}, index_t{40}}) {
    index_t attained = 0; // cases whose detection took exactly the bound
    for (const index_t n0 : {index_t{61}, index_t{90}})
      for (const std::int32_t sweep : {3, 7, 16})
        for (const std::int32_t window : {0, 8}) {
          ngram_config config;
          config.check_window = window;
          config.check_sweep = sweep;
          // `warm` incremental calls first put the cursor anywhere in its cycle
          for (index_t warm = 0; warm < 8; ++warm)
            for (index_t x = 0; x < n0 - window; ++x) {
              CAPTURE(max_growth, n0, sweep, window, warm, x);
              text_t ctx(static_cast<std::size_t>(n0));
              for (index_t i = 0; i < n0; ++i) // any tokens < 999 do
                ctx[static_cast<std::size_t>(i)] = static_cast<token_id>((i * 7919 + x) % 50);
              ngram_proposer p(config);
              call(p, ctx);
              for (index_t w = 0; w < warm; ++w) {
                ctx.push_back(1);
                call(p, ctx);
              }
              const index_t bound = sweep_bound(static_cast<index_t>(ctx.size()), config);
              ctx[static_cast<std::size_t>(x)] = 999;
              const std::int64_t rebuilds = p.rebuild_count();
              index_t calls = 0;
              while (p.rebuild_count() == rebuilds && calls <= bound) {
                for (index_t g = std::uniform_int_distribution<index_t>(0, max_growth)(rng); g > 0;
                     --g)
                  ctx.push_back(2);
                call(p, ctx);
                ++calls;
              }
              REQUIRE(all_ok);
              REQUIRE(calls <= bound);
              attained += calls == bound ? 1 : 0;
            }
        }
    if (max_growth <= 3) // (with faster growth the bound still holds, but is seldom met exactly)
      CHECK(attained > 0);
  }
}
