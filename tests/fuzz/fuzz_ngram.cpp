// SPDX-License-Identifier: Apache-2.0
//
// Fuzz target: the n-gram (prompt-lookup) proposer, propose::ngram_proposer over its
// suffix_automaton, against a brute-force longest-repeated-suffix reference. The input is a
// configuration (min_match, max_match, max_draft, check_window, check_sweep; sometimes invalid)
// and a sequence of operations on one engine-side context: append tokens, propose (fuzzed budget
// and block capacity), shrink, edit a token, switch request id, reset(), append a negative token.
//
// Properties checked after every propose():
//  - status: invalid_value for invalid settings, a negative budget or a negative token among the
//    tokens it indexes (then length 0, the automaton and rebuild count unchanged); ok otherwise;
//  - what is indexed (automaton().text()) is the context after a rebuild, else the previously
//    indexed text extended by the context's new tokens; rebuild_count() grows by at most one;
//  - rebuilds are required where the documentation promises detection: the first call, after
//    reset(), another request id, a shorter context, a change among the last W = min(check_window,
//    n) indexed tokens; and a persisting change elsewhere is caught by the 2 ceil((n - W) / C)-th
//    call that sees it (C = check_sweep > 0); a context that extends the indexed text with the
//    same id is never rebuilt (the incremental path);
//  - the draft: with L the longest suffix of the indexed text that occurs earlier and e the end of
//    its first occurrence (brute force), nothing when L < min_match, else text[e + 1 ...] capped at
//    min(max_tokens, max_draft, capacity); nothing written past the draft; last_match() and
//    last_match_length() (clamped to max_match) agree; candidates() are exactly the distinct
//    tokens that follow an occurrence of the suffix, each with its first position.
// With check_window = check_all every drift is a failure: the draft always comes from the
// current context.

#include <specdec/specdec.hpp>

#include "support/fuzz_input.hpp"
#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

using namespace specdec;
using specdec_fuzz::reader;

namespace {

constexpr token_id sentinel = -777;
constexpr std::size_t max_context = 256;

template <class I>
constexpr std::size_t ix(I i) {
  return static_cast<std::size_t>(i);
}

std::string tokens_str(const std::vector<token_id>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size() && i < 48; ++i) {
    if (i > 0)
      s += ' ';
    s += std::to_string(v[i]);
  }
  s += v.size() > 48 ? " ...]" : "]";
  return s;
}

/// The longest suffix of t that also ends at an earlier position, and the first such position.
struct ref_match {
  index_t length = 0;
  index_t end = -1;
};

/// Length of the common suffix of t[0, p] and t (at most p + 1).
index_t common_suffix(const std::vector<token_id>& t, index_t p) {
  const auto n = static_cast<index_t>(t.size());
  index_t c = 0;
  while (c <= p && t[ix(p - c)] == t[ix(n - 1 - c)])
    ++c;
  return c;
}

ref_match longest_repeated_suffix(const std::vector<token_id>& t) {
  ref_match m;
  const auto n = static_cast<index_t>(t.size());
  for (index_t p = 0; p + 1 < n; ++p) {
    const index_t c = common_suffix(t, p);
    if (c > m.length) { // strictly: the first end reaching the longest length
      m.length = c;
      m.end = p;
    }
  }
  return m;
}

struct config_case {
  propose::ngram_config cfg;
  int alphabet = 4;
};

config_case read_config(reader& in) {
  config_case c;
  c.cfg.min_match = in.range<std::int32_t>(1, 4);
  c.cfg.max_match = in.u8() % 3 == 0 ? 0 : c.cfg.min_match + in.range<std::int32_t>(0, 3);
  c.cfg.max_draft = in.range<std::int32_t>(0, 10);
  static constexpr std::int32_t windows[] = {0, 1, 2, 4, 8, 64, propose::ngram_config::check_all};
  c.cfg.check_window = windows[in.u8() % 7];
  static constexpr std::int32_t sweeps[] = {0, 1, 3, 16, 256};
  c.cfg.check_sweep = sweeps[in.u8() % 5];
  static constexpr int alphabets[] = {2, 3, 4, 8, 256};
  c.alphabet = alphabets[in.u8() % 5];
  switch (in.u8() % 16) { // sometimes invalid settings
  case 0:
    c.cfg.min_match = 0;
    break;
  case 1:
    c.cfg.max_draft = -1;
    break;
  case 2:
    c.cfg.check_window = -1;
    break;
  case 3:
    c.cfg.max_match = c.cfg.min_match > 1 ? c.cfg.min_match - 1 : -1;
    break;
  default:
    break;
  }
  return c;
}

token_id read_token(reader& in, int alphabet) {
  const std::uint8_t t = in.u8();
  if (t == 255) // ids far apart (hashing)
    return std::numeric_limits<token_id>::max() - static_cast<token_id>(in.u8() % 4);
  return static_cast<token_id>(t % alphabet);
}

class harness {
public:
  explicit harness(const config_case& c)
      : cfg_(c.cfg)
      , valid_cfg_(c.cfg.validate().ok())
      , proposer_(c.cfg) {}

  std::vector<token_id> ctx;
  std::uint64_t id = 0;

  void reset() {
    proposer_.reset();
    indexed_.clear();
    synced_ = false;
    must_rebuild_ = true;
    tracked_.clear();
  }

  void propose(std::int32_t max_tokens, std::int32_t capacity) {
    ++calls_;
    std::vector<token_id> block(ix(capacity) + 2, sentinel);
    draft_block b;
    b.tokens = {block.data(), capacity};
    b.length = 12345;
    draft_request r;
    r.request_id = id;
    r.context = {ctx.data(), static_cast<index_t>(ctx.size())};
    r.max_tokens = max_tokens;

    const auto n = static_cast<index_t>(indexed_.size());
    const index_t w = std::min<index_t>(cfg_.check_window, n);
    const bool same_id = synced_ && id == id_;
    const bool shorter = static_cast<index_t>(ctx.size()) < n;
    bool recent_change = false; // among the last W indexed tokens
    bool extends = !shorter;    // the indexed text is a prefix of the context
    for (index_t p = 0; p < std::min<index_t>(n, static_cast<index_t>(ctx.size())); ++p)
      if (ctx[ix(p)] != indexed_[ix(p)]) {
        extends = false;
        recent_change = recent_change || p >= n - w;
      }
    index_t last_negative = -1;
    for (std::size_t p = 0; p < ctx.size(); ++p)
      if (ctx[p] < 0)
        last_negative = static_cast<index_t>(p);
    const bool negative = last_negative >= 0;
    const bool syncs = valid_cfg_ && max_tokens >= 0; // the call reaches the sync
    // Persisting changes of the older indexed tokens, with the call count bound.
    if (syncs && same_id && cfg_.check_sweep > 0) {
      for (auto it = tracked_.begin(); it != tracked_.end();) {
        const index_t p = it->first;
        if (p >= static_cast<index_t>(ctx.size()) || p >= n || ctx[ix(p)] == indexed_[ix(p)])
          it = tracked_.erase(it);
        else
          ++it;
      }
      for (index_t p = 0; p < std::min<index_t>(n - w, static_cast<index_t>(ctx.size())); ++p)
        if (ctx[ix(p)] != indexed_[ix(p)] && tracked_.count(p) == 0) {
          const index_t span = n - w;
          const index_t bound = 2 * ((span + cfg_.check_sweep - 1) / cfg_.check_sweep);
          tracked_[p] = {0, bound};
        }
    }

    const std::int64_t rebuilds_before = proposer_.rebuild_count();
    const status s = proposer_.propose(r, b);
    const std::int64_t rebuilds = proposer_.rebuild_count() - rebuilds_before;
    const std::vector<token_id> text(proposer_.automaton().text().begin(),
                                     proposer_.automaton().text().end());
    const std::string what =
        "call " + std::to_string(calls_) + " (id " + std::to_string(id) + ", context "
        + tokens_str(ctx) + ", indexed " + tokens_str(indexed_) + ", max_tokens "
        + std::to_string(max_tokens) + ", capacity " + std::to_string(capacity) + "; min_match "
        + std::to_string(cfg_.min_match) + " max_match " + std::to_string(cfg_.max_match)
        + " max_draft " + std::to_string(cfg_.max_draft) + " W " + std::to_string(cfg_.check_window)
        + " C " + std::to_string(cfg_.check_sweep) + "): status " + s.message() + ", rebuilds +"
        + std::to_string(rebuilds) + ", now indexed " + tokens_str(text) + ": ";
    if (specdec_fuzz::verbose())
      std::fprintf(stderr, "  %s length %d\n", what.c_str(), b.length);
    FUZZ_CHECK(rebuilds == 0 || rebuilds == 1, what + "rebuild count jumped");
    FUZZ_CHECK(b.length >= 0 && b.length <= capacity, what + "length " + std::to_string(b.length));
    for (std::size_t i = ix(b.length); i < block.size(); ++i)
      FUZZ_CHECK(block[i] == sentinel, what + "written past the draft");

    if (!syncs) {
      FUZZ_CHECK(s.code == errc::invalid_value && b.length == 0 && rebuilds == 0
                     && text == indexed_,
                 what + "invalid settings or budget must fail and change nothing");
      FUZZ_CHECK(proposer_.last_match_length() == 0, what + "a failed call left a match");
      return;
    }
    if (!s.ok()) {
      // Only a negative context token among those the call indexes may fail it.
      FUZZ_CHECK(s.code == errc::invalid_value && negative, what + "unexpected failure");
      FUZZ_CHECK(b.length == 0 && rebuilds == 0 && text == indexed_
                     && proposer_.last_match_length() == 0,
                 what + "a failed call changed the proposer");
      maybe_rebuild_ = true; // a change it detected is remembered: the next call may rebuild
      return;
    }
    // A negative token can only be passed over when it sits among the indexed positions that the
    // checks did not look at (a stale index).
    if (negative)
      FUZZ_CHECK(last_negative < n && rebuilds == 0, what + "a negative token was accepted");

    const bool must = must_rebuild_ || !same_id || shorter || recent_change;
    const bool must_not = !maybe_rebuild_ && !must_rebuild_ && same_id && extends;
    FUZZ_CHECK(!must || rebuilds == 1, what + "the context change had to be detected (rebuild)");
    FUZZ_CHECK(!must_not || rebuilds == 0, what + "an extension of the indexed text was rebuilt");
    if (cfg_.check_window == propose::ngram_config::check_all)
      FUZZ_CHECK(rebuilds == 1 || extends, what + "check_all missed a context change");
    std::vector<token_id> model;
    if (rebuilds == 1) {
      model = ctx;
      tracked_.clear();
    } else {
      model = indexed_;
      model.insert(model.end(), ctx.begin() + n, ctx.end());
      for (auto& [p, t] : tracked_) {
        ++t.first;
        FUZZ_CHECK(t.first < t.second,
                   what + "the change at position " + std::to_string(p) + " persisted "
                       + std::to_string(t.first) + " calls, over the bound of "
                       + std::to_string(t.second));
      }
    }
    FUZZ_CHECK(text == model, what + "indexed text is not " + tokens_str(model));
    indexed_ = text;
    synced_ = true;
    id_ = id;
    must_rebuild_ = false;
    maybe_rebuild_ = false;

    // The draft, from the indexed text.
    const ref_match m = longest_repeated_suffix(indexed_);
    const auto len = static_cast<index_t>(indexed_.size());
    const bool drafts = m.length > 0 && m.length >= cfg_.min_match;
    const suffix_automaton_match got = proposer_.last_match();
    if (!drafts) {
      FUZZ_CHECK(b.length == 0 && proposer_.last_match_length() == 0 && got.length == 0,
                 what + "no repeated suffix of min_match tokens, yet a draft or a match (longest "
                     + std::to_string(m.length) + ")");
      return;
    }
    FUZZ_CHECK(got.length == m.length && got.end == m.end,
               what + "match (" + std::to_string(got.length) + ", " + std::to_string(got.end)
                   + "), brute force (" + std::to_string(m.length) + ", " + std::to_string(m.end)
                   + ")");
    const index_t clamp =
        cfg_.max_match > 0 ? std::min<index_t>(m.length, cfg_.max_match) : m.length;
    FUZZ_CHECK(proposer_.last_match_length() == clamp && proposer_.draft_bucket() == clamp,
               what + "last_match_length " + std::to_string(proposer_.last_match_length()));
    const index_t cap = std::min({static_cast<index_t>(max_tokens),
                                  static_cast<index_t>(cfg_.max_draft),
                                  static_cast<index_t>(capacity),
                                  len - (m.end + 1)});
    FUZZ_CHECK(b.length == cap,
               what + "draft length " + std::to_string(b.length) + ", expected "
                   + std::to_string(cap));
    for (index_t j = 0; j < cap; ++j)
      FUZZ_CHECK(block[ix(j)] == indexed_[ix(m.end + 1 + j)],
                 what + "draft token " + std::to_string(j));

    // Candidates: the distinct followers of the suffix's occurrences, each at its first place.
    std::map<token_id, index_t> want;
    for (index_t p = 0; p + 1 < len; ++p)
      if (common_suffix(indexed_, p) >= m.length && want.count(indexed_[ix(p + 1)]) == 0)
        want[indexed_[ix(p + 1)]] = p + 1;
    std::vector<propose::ngram_proposer::candidate> cands(want.size() + 3);
    const std::int32_t k = proposer_.candidates(cands);
    FUZZ_CHECK(ix(k) == want.size(),
               what + std::to_string(k) + " candidates, expected " + std::to_string(want.size()));
    for (std::int32_t i = 0; i < k; ++i) {
      const auto it = want.find(cands[ix(i)].token);
      FUZZ_CHECK(it != want.end() && it->second == cands[ix(i)].end,
                 what + "candidate (" + std::to_string(cands[ix(i)].token) + ", "
                     + std::to_string(cands[ix(i)].end) + ")");
    }
    if (!want.empty()) { // a smaller buffer is filled, never overrun
      std::vector<propose::ngram_proposer::candidate> one(1);
      FUZZ_CHECK(proposer_.candidates(std::span(one.data(), 1)) == 1,
                 what + "candidates into one slot");
    }
  }

private:
  using suffix_automaton_match = propose::suffix_automaton::match;
  propose::ngram_config cfg_;
  bool valid_cfg_;
  propose::ngram_proposer proposer_;
  std::vector<token_id> indexed_; // what the proposer indexed, per the model
  bool synced_ = false;
  std::uint64_t id_ = 0;
  bool must_rebuild_ = true;                               // first call, after reset()
  bool maybe_rebuild_ = false;                             // after a failed call
  std::map<index_t, std::pair<index_t, index_t>> tracked_; // position -> (calls seen, bound)
  int calls_ = 0;
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { // NOLINT
  reader in(data, size);
  const config_case c = read_config(in);
  harness h(c);
  for (int op = 0; op < 120 && !in.empty(); ++op) {
    switch (in.u8() % 8) {
    case 0:
    case 1: {
      const int k = in.range<int>(1, 8);
      for (int i = 0; i < k && h.ctx.size() < max_context; ++i)
        h.ctx.push_back(read_token(in, c.alphabet));
      break;
    }
    case 2:
    case 3: {
      const auto max_tokens = in.range<std::int32_t>(-1, 12);
      const auto capacity = in.range<std::int32_t>(0, 12);
      h.propose(max_tokens, capacity);
      break;
    }
    case 4: {
      const std::size_t m = in.range<std::size_t>(1, 16);
      h.ctx.resize(h.ctx.size() > m ? h.ctx.size() - m : 0);
      break;
    }
    case 5:
      if (!h.ctx.empty())
        h.ctx[ix(in.range<std::size_t>(0, h.ctx.size() - 1))] = read_token(in, c.alphabet);
      break;
    case 6:
      h.id = in.u8() % 3;
      break;
    default:
      if (in.u8() % 4 == 0 && h.ctx.size() < max_context)
        h.ctx.push_back(-1 - static_cast<token_id>(in.u8() % 2)); // a negative token
      else
        h.reset();
      break;
    }
  }
  return 0;
}

// --- seeds ------------------------------------------------------------------------------------
namespace {

/// A script: config, then ops written as the reader reads them.
struct script {
  specdec_fuzz::writer w;
  script(std::int32_t min_match,
         std::int32_t max_match,
         std::int32_t max_draft,
         int window,
         int sweep,
         int alphabet) {
    w.range<std::int32_t>(min_match, 1, 4);
    if (max_match == 0) {
      w.u8(0);
    } else {
      w.u8(1);
      w.range<std::int32_t>(max_match - min_match, 0, 3);
    }
    w.range<std::int32_t>(max_draft, 0, 10);
    w.u8(static_cast<std::uint64_t>(window));   // index into {0, 1, 2, 4, 8, 64, check_all}
    w.u8(static_cast<std::uint64_t>(sweep));    // index into {0, 1, 3, 16, 256}
    w.u8(static_cast<std::uint64_t>(alphabet)); // index into {2, 3, 4, 8, 256}
    w.u8(4);                                    // valid settings
  }
  script& append(const std::vector<int>& toks) {
    for (std::size_t i = 0; i < toks.size(); i += 8) {
      const std::size_t k = std::min<std::size_t>(8, toks.size() - i);
      w.u8(0);
      w.range<int>(static_cast<int>(k), 1, 8);
      for (std::size_t j = 0; j < k; ++j)
        w.u8(static_cast<std::uint64_t>(toks[i + j]));
    }
    return *this;
  }
  script& propose(std::int32_t max_tokens = 8, std::int32_t capacity = 8) {
    w.u8(2);
    w.range<std::int32_t>(max_tokens, -1, 12);
    w.range<std::int32_t>(capacity, 0, 12);
    return *this;
  }
  script& shrink(std::size_t m) {
    w.u8(4);
    w.range<std::size_t>(m, 1, 16);
    return *this;
  }
  script& edit(std::size_t at, std::size_t size, int token) {
    w.u8(5);
    w.range<std::size_t>(at, 0, size - 1);
    w.u8(static_cast<std::uint64_t>(token));
    return *this;
  }
  script& id(int v) {
    w.u8(6);
    w.u8(static_cast<std::uint64_t>(v));
    return *this;
  }
  script& reset() {
    w.u8(7);
    w.u8(1);
    return *this;
  }
  script& negative() {
    w.u8(7);
    w.u8(0);
    w.u8(0);
    return *this;
  }
};

} // namespace

std::vector<specdec_fuzz::seed> specdec_fuzz::seeds() {
  const std::vector<int> story = {1, 2, 3, 0, 1, 2, 3, 1, 2, 0, 3, 3, 1, 2, 3};
  std::vector<specdec_fuzz::seed> out;
  {
    script s(1, 0, 8, 5, 4, 2); // W 64, C 256, alphabet 4
    s.append(story).propose().append({0}).propose().append({1, 2}).propose(3, 2).propose(12, 12);
    out.push_back({"grow_and_propose", s.w.bytes()});
  }
  {
    // Issue 12's stale drafts: the same request id, the context cut back and regrown
    // differently, with the default checks and with W = 0 (trust the caller), C = 0.
    script s(1, 2, 8, 5, 4, 2);
    s.append(story).propose().shrink(6).append({3, 0, 0, 2, 1}).propose().shrink(2).propose();
    out.push_back({"issue12_shrink_and_regrow", s.w.bytes()});
    script t(2, 0, 4, 6, 1, 2); // check_all, C 1
    t.append(story).propose().edit(2, story.size(), 0).propose().edit(2, story.size(), 3).propose();
    out.push_back({"edit_check_all", t.w.bytes()});
    script u(1, 0, 8, 1, 1, 0); // W 1, C 1, binary alphabet: an old edit found by the sweep
    u.append({0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 0, 1, 1, 0}).propose().edit(0, 16, 1);
    for (int i = 0; i < 12; ++i)
      u.append({i % 2}).propose();
    out.push_back({"old_edit_found_by_sweep", u.w.bytes()});
  }
  {
    script s(1, 0, 10, 3, 2, 1); // W 4, C 3, alphabet 3
    s.append(story).propose().id(1).propose().id(0).append({2}).propose().reset().propose();
    out.push_back({"switch_ids_and_reset", s.w.bytes()});
    script t(1, 0, 8, 0, 0, 2); // W 0, C 0: contexts trusted to only grow
    t.append(story).propose().append({1}).propose().negative().propose().shrink(1).propose();
    out.push_back({"trusting_and_negative_token", t.w.bytes()});
    script u(3, 4, 8, 5, 4, 4); // alphabet 256, min_match 3
    u.append({10, 20, 30, 40, 10, 20, 30, 50, 10, 20, 30}).propose(-1, 4).propose(2, 1).propose();
    out.push_back({"long_alphabet_min_match_3", u.w.bytes()});
  }
  return out;
}
