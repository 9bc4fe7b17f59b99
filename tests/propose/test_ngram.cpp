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

  // Same request, longer context whose token 0 was edited behind the proposer's back: only the
  // new tokens are read (the proposer assumes a request's context only grows).
  text_t edited = a;
  edited[0] = 99;
  REQUIRE(step(p, 1, edited, 9).st.ok());
  CHECK(p.automaton().size() == 9);
  CHECK(p.automaton().at(0) == 10); // not re-read: incremental
  CHECK(p.automaton().at(8) == 11);

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
  CHECK(ngram_config{}.validate().ok());
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
