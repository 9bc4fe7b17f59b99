// SPDX-License-Identifier: Apache-2.0
//
// kv::recurrent_checkpoints: commit picks the slot by accepted count without copying, rollback is
// bounded by the last commit, the recurrent_sequence adapter is a bounded kv_cache, and random
// drafts / commits / rollbacks / prefills / resets on several sequences match a reference model.
#include <specdec/kv/concepts.hpp>
#include <specdec/kv/recurrent_checkpoints.hpp>

#include <catch2/catch.hpp>

#include "support/sanitizer.hpp"
#include <cstdint>
#include <random>
#include <set>
#include <vector>

namespace {

using specdec::errc;
using specdec::index_t;
using specdec::status;
namespace kv = specdec::kv;
using states_t = kv::recurrent_checkpoints<float>;

// Sanitized builds (about 10x slower) run a fifth of the random operations.
constexpr int property_ops = specdec_test::by_build<int>(10000, 2000);

void fill(states_t& st, kv::sequence_id s, index_t i, float v) {
  float* p = st.slot(s, i);
  REQUIRE(p != nullptr);
  for (index_t e = 0; e < st.state_size(); ++e)
    p[e] = v + static_cast<float>(e);
}

std::vector<float> state(const states_t& st, kv::sequence_id s, index_t i) {
  const float* p = st.slot(s, i);
  REQUIRE(p != nullptr);
  return std::vector<float>(p, p + st.state_size());
}

std::vector<float> filled(index_t n, float v) {
  std::vector<float> out;
  for (index_t e = 0; e < n; ++e)
    out.push_back(v + static_cast<float>(e));
  return out;
}

// A bounded cache that forgot to report its bound, and a full-only one.
struct bounded_without_limit {
  static constexpr kv::rollback_class rollback_kind = kv::rollback_class::bounded;
  [[nodiscard]] specdec::status rollback(index_t) {
    return {};
  }
  [[nodiscard]] index_t length() const {
    return 0;
  }
  [[nodiscard]] index_t capacity() const {
    return 0;
  }
};
struct full_only_cache {
  static constexpr kv::rollback_class rollback_kind = kv::rollback_class::full_only;
  [[nodiscard]] specdec::status rollback(index_t) {
    return {};
  }
  [[nodiscard]] index_t length() const {
    return 0;
  }
  [[nodiscard]] index_t capacity() const {
    return 0;
  }
};

} // namespace

TEST_CASE("recurrent: allocate validates its arguments", "[kv][recurrent]") {
  states_t st;
  CHECK(st.allocate(0, 4, 8).code == errc::invalid_argument);
  CHECK(st.allocate(2, -1, 8).code == errc::invalid_argument);
  CHECK(st.allocate(2, 4, 0).code == errc::invalid_argument);
  CHECK(st.allocate(2, 4, 8, -1).code == errc::invalid_argument);
  CHECK(st.allocate(index_t{1} << 40, 4, 8).code == errc::overflow);
  CHECK(st.allocate(1 << 20, 1 << 20, 1 << 30).code == errc::overflow);
  CHECK(st.num_sequences() == 0);
  REQUIRE(st.allocate(2, 4, 3, 100).ok());
  CHECK(st.num_sequences() == 2);
  CHECK(st.window() == 4);
  CHECK(st.state_size() == 3);
  CHECK(st.max_length() == 100);
  CHECK(st.rollback_limit() == kv::rollback_capability{kv::rollback_class::bounded, 4});
  CHECK(state(st, 1, 4) == std::vector<float>(3, 0.0f));
  CHECK(st.slot(2, 0) == nullptr);
  CHECK(st.slot(0, 5) == nullptr);
  CHECK(st.slot(0, -1) == nullptr);
  CHECK(st.length(7) == 0);
}

TEST_CASE("recurrent: commit makes the accepted slot the committed state without copying",
          "[kv][recurrent]") {
  states_t st;
  REQUIRE(st.allocate(2, 4, 3).ok());
  const kv::sequence_id s = 1;
  fill(st, s, 0, 5.0f); // prefill wrote the state after 5 positions in place
  REQUIRE(st.advance_committed(s, 5).ok());
  CHECK(st.committed_length(s) == 5);
  CHECK(st.length(s) == 5);
  // Draft 4 positions: the state after pending position i goes to slot i.
  for (index_t i = 1; i <= 4; ++i) {
    fill(st, s, i, static_cast<float>(10 * i));
    REQUIRE(st.extend(s, 5 + i).ok());
  }
  CHECK(st.pending(s) == 4);
  const float* slot2 = st.slot(s, 2);
  const float* slot0 = st.slot(s, 0);
  REQUIRE(st.rollback(s, 7).ok()); // accept 2: slot 2 becomes the committed state
  CHECK(st.slot(s, 0) == slot2);   // the same storage, not a copy
  CHECK(st.slot(s, 2) == slot0);   // the old committed state is now scratch
  CHECK(state(st, s, 0) == filled(3, 20.0f));
  CHECK(st.committed_length(s) == 7);
  CHECK(st.length(s) == 7);
  CHECK(st.pending(s) == 0);
  // The other sequence is untouched.
  CHECK(state(st, 0, 0) == std::vector<float>(3, 0.0f));

  SECTION("accepting nothing keeps the committed state") {
    fill(st, s, 1, 99.0f);
    REQUIRE(st.extend(s, 8).ok());
    REQUIRE(st.commit(s, 0).ok());
    CHECK(st.length(s) == 7);
    CHECK(state(st, s, 0) == filled(3, 20.0f));
  }
  SECTION("accepting everything commits the last slot") {
    for (index_t i = 1; i <= 4; ++i)
      fill(st, s, i, static_cast<float>(100 * i));
    REQUIRE(st.extend(s, 11).ok());
    REQUIRE(st.commit(s, 4).ok());
    CHECK(st.committed_length(s) == 11);
    CHECK(state(st, s, 0) == filled(3, 400.0f));
  }
}

TEST_CASE("recurrent: rollback is bounded by the last commit", "[kv][recurrent]") {
  states_t st;
  REQUIRE(st.allocate(1, 3, 2, 20).ok());
  REQUIRE(st.advance_committed(0, 10).ok());
  fill(st, 0, 0, 1.0f);
  CHECK(st.extend(0, 14).code == errc::overflow); // 4 pending > window 3
  CHECK(st.extend(0, 9).code == errc::invalid_argument);
  REQUIRE(st.extend(0, 13).ok());
  CHECK(st.rollback(0, 9).code == errc::invalid_argument); // past the committed state
  CHECK(st.rollback(0, 14).code == errc::invalid_argument);
  CHECK(st.rollback(0, -1).code == errc::invalid_argument);
  CHECK(st.commit(0, 4).code == errc::invalid_argument);
  CHECK(st.commit(0, -1).code == errc::invalid_argument);
  CHECK(st.advance_committed(0, 9).code == errc::invalid_argument);
  CHECK(st.advance_committed(0, 21).code == errc::overflow);
  CHECK(st.length(0) == 13);
  CHECK(st.committed_length(0) == 10);
  CHECK(state(st, 0, 0) == filled(2, 1.0f));
  REQUIRE(st.rollback(0, 10).ok()); // drop every pending position
  CHECK(st.length(0) == 10);
  CHECK(state(st, 0, 0) == filled(2, 1.0f));
  // Near max_length the window is cut short.
  REQUIRE(st.advance_committed(0, 19).ok());
  CHECK(st.extend(0, 21).code == errc::overflow);
  REQUIRE(st.extend(0, 20).ok());
  // rollback(0) is a full reset to the zero state.
  REQUIRE(st.rollback(0, 0).ok());
  CHECK(st.length(0) == 0);
  CHECK(st.committed_length(0) == 0);
  CHECK(state(st, 0, 0) == std::vector<float>(2, 0.0f));
  CHECK(st.rollback(3, 0).code == errc::invalid_argument);
}

TEST_CASE("recurrent: recurrent_sequence is a bounded kv_cache", "[kv][recurrent]") {
  static_assert(kv::kv_cache<kv::recurrent_sequence<float>>);
  static_assert(!kv::tree_kv_cache<kv::recurrent_sequence<float>>);
  static_assert(specdec::diag::check_kv_cache<kv::recurrent_sequence<float>>());
  static_assert(kv::recurrent_sequence<float>::rollback_kind == kv::rollback_class::bounded);
  static_assert(!kv::kv_cache<bounded_without_limit>); // bounded caches must report the bound
  static_assert(kv::kv_cache<full_only_cache>);
  CHECK(kv::capability_of(full_only_cache{})
        == kv::rollback_capability{kv::rollback_class::full_only, 0});

  states_t st;
  REQUIRE(st.allocate(2, 5, 4, 64).ok());
  kv::recurrent_sequence<float> seq(st, 1);
  CHECK(&seq.states() == &st);
  CHECK(seq.id() == 1);
  CHECK(seq.capacity() == 64);
  CHECK(kv::capability_of(seq) == kv::rollback_capability{kv::rollback_class::bounded, 5});
  // The decoder's step: the anchor and 3 drafts at positions 8..11, then keep the anchor and
  // one accepted draft (rollback to 10) - slot 2 becomes the committed state.
  REQUIRE(st.advance_committed(1, 8).ok());
  for (index_t i = 1; i <= 4; ++i) {
    float* p = seq.slot(i);
    REQUIRE(p != nullptr);
    p[0] = static_cast<float>(i);
  }
  REQUIRE(seq.extend(12).ok());
  CHECK(seq.length() == 12);
  REQUIRE(seq.rollback(10).ok());
  CHECK(seq.length() == 10);
  CHECK(seq.slot(0)[0] == 2.0f);
  CHECK(seq.rollback(9).code == errc::invalid_argument);
  REQUIRE(seq.extend(11).ok());
  REQUIRE(seq.commit(1).ok());
  CHECK(seq.length() == 11);
}

TEST_CASE("recurrent: random drafts, commits and rollbacks match a reference model",
          "[kv][recurrent][property]") {
  struct ref_seq {
    index_t committed = 0;
    std::vector<float> state;                // the committed state
    std::vector<std::vector<float>> pending; // states after each pending position
  };
  const index_t num_seqs = 3, window = 5, size = 4, max_length = 60;
  states_t st;
  REQUIRE(st.allocate(num_seqs, window, size, max_length).ok());
  std::vector<ref_seq> ref(static_cast<std::size_t>(num_seqs));
  for (ref_seq& r : ref)
    r.state.assign(static_cast<std::size_t>(size), 0.0f);
  std::mt19937 rng(4242);
  auto pick = [&rng](index_t n) { // uniform in [0, n)
    return static_cast<index_t>(rng() % static_cast<std::uint32_t>(n));
  };
  float next = 1.0f;
  std::int64_t commits = 0, refused = 0;
  for (int op = 0; op < property_ops; ++op) {
    const kv::sequence_id s = static_cast<kv::sequence_id>(pick(num_seqs));
    ref_seq& r = ref[static_cast<std::size_t>(s)];
    const index_t len = r.committed + static_cast<index_t>(r.pending.size());
    const index_t what = pick(10);
    INFO("op " << op << " kind " << what << " seq " << s);
    if (what < 4) { // draft m more positions (too many: overflow, nothing written)
      const index_t m = pick(window + 2);
      const index_t to = len + m;
      const bool ok = to - r.committed <= window && to <= max_length;
      if (ok)
        for (index_t i = len - r.committed + 1; i <= to - r.committed; ++i) {
          const float v = next;
          next += 10.0f;
          fill(st, s, i, v);
          r.pending.push_back(filled(size, v));
        }
      const status e = st.extend(s, to);
      REQUIRE(e.ok() == ok);
      if (!ok) {
        REQUIRE(e.code == errc::overflow);
        ++refused;
      }
    } else if (what < 7) { // rollback to a random length, sometimes out of range
      const index_t to = pick(len + 3) - 1;
      const bool ok = to == 0 || (to >= r.committed && to <= len);
      const status e = st.rollback(s, to);
      REQUIRE(e.ok() == ok);
      if (!ok) {
        REQUIRE(e.code == errc::invalid_argument);
        ++refused;
      } else if (to == 0) {
        r = ref_seq{0, std::vector<float>(static_cast<std::size_t>(size), 0.0f), {}};
      } else {
        const index_t a = to - r.committed;
        if (a > 0)
          r.state = r.pending[static_cast<std::size_t>(a - 1)];
        r.committed = to;
        r.pending.clear();
        ++commits;
      }
    } else if (what < 9) { // commit by accepted count
      const index_t a = pick(static_cast<index_t>(r.pending.size()) + 3) - 1;
      const bool ok = a >= 0 && a <= static_cast<index_t>(r.pending.size());
      const status e = st.commit(s, a);
      REQUIRE(e.ok() == ok);
      if (ok) {
        if (a > 0)
          r.state = r.pending[static_cast<std::size_t>(a - 1)];
        r.committed += a;
        r.pending.clear();
        ++commits;
      } else {
        ++refused;
      }
    } else if (pick(4) == 0) { // reset
      st.reset(s);
      r = ref_seq{0, std::vector<float>(static_cast<std::size_t>(size), 0.0f), {}};
    } else { // prefill in place: advance the committed state directly
      const index_t to = r.committed + pick(8) - 1;
      const bool ok = to >= r.committed && to <= max_length;
      if (ok) {
        const float v = next;
        next += 10.0f;
        fill(st, s, 0, v);
        r.state = filled(size, v);
        r.committed = to;
        r.pending.clear();
      }
      const status e = st.advance_committed(s, to);
      REQUIRE(e.ok() == ok);
      if (!ok)
        ++refused;
    }
    for (kv::sequence_id q = 0; q < num_seqs; ++q) {
      const ref_seq& x = ref[static_cast<std::size_t>(q)];
      REQUIRE(st.committed_length(q) == x.committed);
      REQUIRE(st.length(q) == x.committed + static_cast<index_t>(x.pending.size()));
      REQUIRE(state(st, q, 0) == x.state);
      for (std::size_t i = 0; i < x.pending.size(); ++i)
        REQUIRE(state(st, q, static_cast<index_t>(i) + 1) == x.pending[i]);
      std::set<const float*> distinct; // the slot map stays a permutation
      for (index_t i = 0; i <= window; ++i)
        distinct.insert(st.slot(q, i));
      REQUIRE(static_cast<index_t>(distinct.size()) == window + 1);
    }
  }
  INFO("commits " << commits << ", refused " << refused);
  CHECK(commits > property_ops / 10);
  CHECK(refused > 0);
}
