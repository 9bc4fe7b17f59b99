// SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief llama2c::batch_model on stories260K: for random batch compositions, orders and thread
///        counts, every request's logits and features are bitwise those of scoring it alone with
///        model::score / score_features after the same history; rollback then rescoring repeats
///        the rows; the batch_kv_cache errors; a failing score_batch changes nothing; and
///        model::score_rows / share_weights / allocate_cache on their own.
#include <specdec/core/concepts.hpp>
#include <specdec/kv/concepts.hpp>

#include <catch2/catch.hpp>

#include "llama2c/batch.hpp"
#include "llama2c/model.hpp"
#include "support/llama2c.hpp"
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <span>
#include <vector>

namespace {

using specdec::errc;
using specdec::index_t;
using specdec::token_id;

static_assert(specdec::batch_feature_target_model<llama2c::batch_model>);
static_assert(specdec::kv::batch_kv_cache<llama2c::batch_model>);

bool same_bits(const float* a, const float* b, index_t n) {
  return std::memcmp(a, b, static_cast<std::size_t>(n) * sizeof(float)) == 0;
}

std::vector<token_id> random_tokens(std::mt19937& rng, index_t n, index_t V) {
  std::uniform_int_distribution<token_id> tok(0, static_cast<token_id>(V - 1));
  std::vector<token_id> t(static_cast<std::size_t>(n));
  for (token_id& x : t)
    x = tok(rng);
  return t;
}

int uniform(std::mt19937& rng, int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

/// One request of a round: its sequence, tokens, start and first row in the stacked output.
struct planned {
  std::size_t seq;
  std::vector<token_id> tokens;
  index_t start;
  index_t row;
};

} // namespace

TEST_CASE("llama2c batch_model: rows equal scoring alone, for any composition, order and threads",
          "[llama2c][batch]") {
  const llama2c::model& m = specdec_test::shared_model();
  const index_t V = m.vocab_size();
  const index_t d = m.hidden_size();
  const std::vector<std::int32_t> layers{0, 2, m.num_layers()};
  const index_t cols = static_cast<index_t>(layers.size()) * d;
  const specdec::row_view<const std::int32_t> lv{layers.data(),
                                                 static_cast<index_t>(layers.size())};
  constexpr int sequences = 12;
  constexpr int rounds = 7;

  for (const int threads : {1, 2, 3}) {
    CAPTURE(threads);
    llama2c::batch_model b;
    REQUIRE(b.init(m, threads, sequences + 2).ok());
    CHECK(b.threads() == threads);
    CHECK(b.vocab_size() == V);
    CHECK(b.capacity() == m.seq_len());
    std::mt19937 rng(static_cast<std::uint32_t>(20240601 + threads));

    // Every sequence has a single-sequence reference model that replays the same calls.
    std::vector<std::uint64_t> ids;
    std::vector<llama2c::model> refs;
    for (int s = 0; s < sequences; ++s) {
      ids.push_back(0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(s + 1));
      REQUIRE(b.open(ids.back()).ok());
      refs.push_back(m); // a copy: shared weights, its own cache
      refs.back().reset();
    }
    CHECK(b.open_sequences() == sequences);

    for (int round = 0; round < rounds; ++round) {
      CAPTURE(round);
      // A random composition: 1..12 distinct sequences in random order, each with a prefill
      // chunk, a draft chain or (rarely) nothing; sometimes restarting below the length.
      std::vector<std::size_t> order(sequences);
      std::iota(order.begin(), order.end(), std::size_t{0});
      std::shuffle(order.begin(), order.end(), rng);
      const int R = uniform(rng, 1, sequences);
      std::vector<planned> plan;
      index_t N = 0;
      for (int i = 0; i < R; ++i) {
        const std::size_t s = order[static_cast<std::size_t>(i)];
        const index_t len = b.length(ids[s]);
        index_t start = len;
        if (len > 0 && uniform(rng, 0, 3) == 0)
          start = len - uniform(rng, 1, static_cast<int>(std::min<index_t>(len, 3)));
        const int kind = uniform(rng, 0, 9);
        const index_t T =
            kind == 0 ? 0 : (kind <= 4 || start == 0 ? uniform(rng, 1, 24) : uniform(rng, 1, 8));
        plan.push_back({s, random_tokens(rng, T, V), start, N});
        N += T;
      }
      std::vector<specdec::score_request> reqs;
      for (const planned& p : plan)
        reqs.push_back(
            {ids[p.seq], {p.tokens.data(), static_cast<index_t>(p.tokens.size())}, p.start});
      const bool features = round % 2 == 1;
      std::vector<float> logits(static_cast<std::size_t>(std::max<index_t>(N, 1) * V));
      std::vector<float> feat(static_cast<std::size_t>(std::max<index_t>(N, 1) * cols));
      const specdec::matrix_view<float> lview{logits.data(), N, V, V};
      const specdec::feature_request freq{lv, {feat.data(), N, cols, cols}};
      if (features)
        REQUIRE(b.score_batch_features(reqs, lview, freq).ok());
      else
        REQUIRE(b.score_batch(reqs, lview).ok());

      // Each request alone, on its reference model.
      for (const planned& p : plan) {
        const auto T = static_cast<index_t>(p.tokens.size());
        CHECK(b.length(ids[p.seq]) == (T > 0 ? p.start + T : refs[p.seq].cache().length()));
        if (T == 0)
          continue;
        std::vector<float> rl(static_cast<std::size_t>(T * V));
        std::vector<float> rf(static_cast<std::size_t>(T * cols));
        const specdec::score_request r{0, {p.tokens.data(), T}, p.start};
        if (features)
          REQUIRE(refs[p.seq]
                      .score_features(r, {rl.data(), T, V, V}, {lv, {rf.data(), T, cols, cols}})
                      .ok());
        else
          REQUIRE(refs[p.seq].score(r, {rl.data(), T, V, V}).ok());
        CHECK(same_bits(logits.data() + p.row * V, rl.data(), T * V));
        if (features)
          CHECK(same_bits(feat.data() + p.row * cols, rf.data(), T * cols));
        CHECK(b.length(ids[p.seq]) == refs[p.seq].cache().length());
      }

      // The same requests in another order, after rolling each sequence back to its start: the
      // same rows (rollback + rescoring, and order invariance).
      for (const planned& p : plan)
        if (!p.tokens.empty())
          REQUIRE(b.rollback(ids[p.seq], p.start).ok());
      std::vector<std::size_t> perm(plan.size());
      std::iota(perm.begin(), perm.end(), std::size_t{0});
      std::shuffle(perm.begin(), perm.end(), rng);
      std::vector<specdec::score_request> reqs2;
      std::vector<index_t> row2(plan.size());
      index_t row = 0;
      for (const std::size_t i : perm) {
        reqs2.push_back(reqs[i]);
        row2[i] = row;
        row += reqs[i].tokens.size;
      }
      std::vector<float> logits2(logits.size());
      std::vector<float> feat2(feat.size());
      REQUIRE(b.score_batch_features(
                   reqs2, {logits2.data(), N, V, V}, {lv, {feat2.data(), N, cols, cols}})
                  .ok());
      for (std::size_t i = 0; i < plan.size(); ++i) {
        const auto T = static_cast<index_t>(plan[i].tokens.size());
        CHECK(same_bits(logits2.data() + row2[i] * V, logits.data() + plan[i].row * V, T * V));
        if (features)
          CHECK(
              same_bits(feat2.data() + row2[i] * cols, feat.data() + plan[i].row * cols, T * cols));
        CHECK(b.length(ids[plan[i].seq]) == refs[plan[i].seq].cache().length());
      }
    }
    for (const std::uint64_t id : ids)
      REQUIRE(b.close(id).ok());
    CHECK(b.open_sequences() == 0);
  }
}

TEST_CASE("llama2c batch_model: rollback per sequence then rescoring repeats the rows",
          "[llama2c][batch]") {
  const llama2c::model& m = specdec_test::shared_model();
  const index_t V = m.vocab_size();
  llama2c::batch_model b;
  REQUIRE(b.init(m, 2, 4).ok());
  std::mt19937 rng(7);
  const std::vector<token_id> p1 = random_tokens(rng, 20, V), p2 = random_tokens(rng, 13, V);
  const std::vector<token_id> c1 = random_tokens(rng, 6, V), c2 = random_tokens(rng, 4, V);
  REQUIRE(b.open(1).ok());
  REQUIRE(b.open(2).ok());
  std::vector<float> scratch(33 * static_cast<std::size_t>(V));
  const std::vector<specdec::score_request> prefill{{1, {p1.data(), 20}, 0},
                                                    {2, {p2.data(), 13}, 0}};
  REQUIRE(b.score_batch(prefill, {scratch.data(), 33, V, V}).ok());

  // Draft chains of both sequences in one call.
  std::vector<float> a(10 * static_cast<std::size_t>(V));
  const std::vector<specdec::score_request> chains{{2, {c2.data(), 4}, 13},
                                                   {1, {c1.data(), 6}, 20}};
  REQUIRE(b.score_batch(chains, {a.data(), 10, V, V}).ok());
  CHECK(b.length(1) == 26);
  CHECK(b.length(2) == 17);

  // Sequence 1 keeps two drafts; sequence 2 rejects all. Rescoring the rest repeats the rows.
  REQUIRE(b.rollback(1, 22).ok());
  REQUIRE(b.rollback(2, 13).ok());
  std::vector<float> r(8 * static_cast<std::size_t>(V));
  const std::vector<specdec::score_request> again{{1, {c1.data() + 2, 4}, 22},
                                                  {2, {c2.data(), 4}, 13}};
  REQUIRE(b.score_batch(again, {r.data(), 8, V, V}).ok());
  CHECK(same_bits(r.data(), a.data() + (4 + 2) * V, 4 * V)); // c1[2..6)
  CHECK(same_bits(r.data() + 4 * V, a.data(), 4 * V));       // c2
  CHECK(b.length(1) == 26);
  CHECK(b.length(2) == 17);

  // A closed and reopened id starts empty; scoring its prompt again gives the same last row.
  std::vector<float> full1(20 * static_cast<std::size_t>(V)), full2(full1.size());
  REQUIRE(b.close(1).ok());
  REQUIRE(b.open(1).ok());
  CHECK(b.length(1) == 0);
  const std::vector<specdec::score_request> one{{1, {p1.data(), 20}, 0}};
  REQUIRE(b.score_batch(one, {full1.data(), 20, V, V}).ok());
  REQUIRE(b.rollback(1, 0).ok());
  REQUIRE(b.score_batch(one, {full2.data(), 20, V, V}).ok());
  CHECK(same_bits(full1.data(), full2.data(), 20 * V));
  CHECK(same_bits(full1.data(), scratch.data(), 20 * V)); // the first prefill, batched with 2
}

TEST_CASE("llama2c batch_model: cache errors follow batch_kv_cache", "[llama2c][batch]") {
  const llama2c::model& m = specdec_test::shared_model();
  llama2c::batch_model b;
  CHECK(b.open(1).code == errc::invalid_argument); // before init
  CHECK(b.score_batch({}, {}).code == errc::invalid_argument);
  CHECK(b.init(llama2c::model{}, 1, 1).code == errc::invalid_argument);
  CHECK(b.init(m, 0, 1).code == errc::invalid_argument);
  CHECK(b.init(m, 1, 0).code == errc::invalid_argument);
  CHECK(b.threads() == 0);
  REQUIRE(b.init(m, 2, 3).ok());
  CHECK(b.max_sequences() == 3);

  CHECK(b.open(10).ok());
  CHECK(b.open(10).code == errc::invalid_argument); // already open
  CHECK(b.open(11).ok());
  CHECK(b.open(12).ok());
  CHECK(b.open(13).code == errc::overflow); // every slot taken
  CHECK(b.open_sequences() == 3);
  CHECK_FALSE(b.contains(13));

  CHECK(b.close(99).code == errc::invalid_argument);
  CHECK(b.rollback(99, 0).code == errc::invalid_argument);
  CHECK(b.reserve(99, 1).code == errc::invalid_argument);
  CHECK(b.length(99) == 0);
  CHECK(b.reserve(10, b.capacity()).ok());
  CHECK(b.reserve(10, b.capacity() + 1).code == errc::overflow);
  CHECK(b.reserve(10, -1).code == errc::invalid_argument);
  CHECK(b.rollback(10, 1).code == errc::invalid_argument); // beyond the length
  CHECK(b.rollback(10, -1).code == errc::invalid_argument);
  CHECK(b.rollback(10, 0).ok());

  CHECK(b.close(12).ok());
  CHECK(b.close(12).code == errc::invalid_argument);
  CHECK(b.open(13).ok()); // the freed slot
  CHECK(b.open_sequences() == 3);
}

TEST_CASE("llama2c batch_model: a failing score_batch changes nothing", "[llama2c][batch]") {
  const llama2c::model& m = specdec_test::shared_model();
  const index_t V = m.vocab_size();
  const index_t d = m.hidden_size();
  llama2c::batch_model b;
  REQUIRE(b.init(m, 3, 4).ok());
  REQUIRE(b.open(1).ok());
  REQUIRE(b.open(2).ok());
  std::mt19937 rng(11);
  const std::vector<token_id> p1 = random_tokens(rng, 9, V), p2 = random_tokens(rng, 5, V);
  std::vector<float> scratch(14 * static_cast<std::size_t>(V));
  REQUIRE(b.score_batch(
               std::vector<specdec::score_request>{{1, {p1.data(), 9}, 0}, {2, {p2.data(), 5}, 0}},
               {scratch.data(), 14, V, V})
              .ok());

  const std::vector<token_id> c = random_tokens(rng, 3, V);
  std::vector<token_id> bad = c;
  bad[1] = static_cast<token_id>(V);
  std::vector<float> out(8 * static_cast<std::size_t>(V), 42.0f);
  const specdec::matrix_view<float> ov{out.data(), 8, V, V};
  using rq = std::vector<specdec::score_request>;
  auto fails = [&](const rq& reqs, specdec::matrix_view<float> view, errc want) {
    CHECK(b.score_batch(reqs, view).code == want);
    CHECK(b.length(1) == 9);
    CHECK(b.length(2) == 5);
    CHECK(std::all_of(out.begin(), out.end(), [](float x) { return x == 42.0f; }));
  };
  fails(rq{{1, {c.data(), 3}, 9}, {2, {bad.data(), 3}, 5}}, ov, errc::token_out_of_range);
  fails(rq{{1, {c.data(), 3}, 9}, {2, {c.data(), 3}, 6}}, ov, errc::invalid_argument); // start
  fails(rq{{1, {c.data(), 3}, 9}, {1, {c.data(), 3}, 9}}, ov, errc::invalid_argument); // dup
  fails(rq{{1, {c.data(), 3}, 9}, {7, {c.data(), 3}, 0}}, ov, errc::invalid_argument); // unknown
  fails(rq{{1, {c.data(), 3}, 9}, {2, {c.data(), 3}, 5}},
        {out.data(), 5, V, V},
        errc::shape_mismatch); // too few rows
  fails(rq{{1, {c.data(), 3}, 9}}, {out.data(), 8, V - 1, V}, errc::shape_mismatch);
  fails(rq{{1, {c.data(), 3}, 9}}, {nullptr, 8, V, V}, errc::invalid_argument);
  fails(rq{{1, {c.data(), 3}, m.seq_len() - 2}}, ov, errc::invalid_argument); // start > length
  fails(rq{{1, {c.data(), -1}, 9}}, ov, errc::invalid_argument);
  // Features: a bad layer, a too small output.
  const std::vector<std::int32_t> bad_layer{m.num_layers() + 1}, ok_layer{1};
  std::vector<float> f(8 * static_cast<std::size_t>(d));
  CHECK(b.score_batch_features(
             rq{{1, {c.data(), 3}, 9}}, ov, {{bad_layer.data(), 1}, {f.data(), 8, d, d}})
            .code
        == errc::invalid_argument);
  CHECK(b.score_batch_features(
             rq{{1, {c.data(), 3}, 9}}, ov, {{ok_layer.data(), 1}, {f.data(), 2, d, d}})
            .code
        == errc::shape_mismatch);
  CHECK(b.length(1) == 9);
  CHECK(std::all_of(out.begin(), out.end(), [](float x) { return x == 42.0f; }));

  // Sequence 1 at its last positions: start + T past seq_len overflows.
  {
    llama2c::batch_model b2;
    REQUIRE(b2.init(m, 1, 1).ok());
    REQUIRE(b2.open(5).ok());
    const std::vector<token_id> longer = random_tokens(rng, m.seq_len(), V);
    std::vector<float> big(static_cast<std::size_t>(m.seq_len() * V));
    REQUIRE(b2.score_batch(rq{{5, {longer.data(), m.seq_len() - 1}, 0}},
                           {big.data(), m.seq_len(), V, V})
                .ok());
    CHECK(b2.score_batch(rq{{5, {c.data(), 2}, m.seq_len() - 1}}, ov).code == errc::overflow);
    CHECK(b2.length(5) == m.seq_len() - 1);
  }

  // Empty batches and requests without tokens change nothing.
  CHECK(b.score_batch({}, ov).ok());
  CHECK(b.score_batch(rq{{2, {}, 5}, {1, {}, 3}}, {nullptr, 0, V, V}).ok());
  CHECK(b.length(1) == 9);
  CHECK(b.length(2) == 5);

  // The caches are intact: the next chain scores as it does alone.
  REQUIRE(b.score_batch(rq{{2, {c.data(), 3}, 5}, {1, {c.data(), 3}, 9}}, ov).ok());
  llama2c::model ref = m;
  ref.reset();
  std::vector<float> r(9 * static_cast<std::size_t>(V)), rc(3 * static_cast<std::size_t>(V));
  REQUIRE(ref.score({0, {p1.data(), 9}, 0}, {r.data(), 9, V, V}).ok());
  REQUIRE(ref.score({0, {c.data(), 3}, 9}, {rc.data(), 3, V, V}).ok());
  CHECK(same_bits(out.data() + 3 * V, rc.data(), 3 * V));
}

TEST_CASE("llama2c model: score_rows, share_weights and allocate_cache", "[llama2c][batch]") {
  const llama2c::model& m = specdec_test::shared_model();
  const index_t V = m.vocab_size();
  std::mt19937 rng(3);
  const std::vector<token_id> a = random_tokens(rng, 7, V), c = random_tokens(rng, 4, V);

  // A weight-sharing worker has no cache: single-sequence scoring fails until it gets one.
  llama2c::model w = m.share_weights();
  CHECK(w.loaded());
  CHECK(w.cache().capacity() == 0);
  std::vector<float> o1(7 * static_cast<std::size_t>(V)), o2(o1.size());
  CHECK(w.score({0, {a.data(), 7}, 0}, {o1.data(), 7, V, V}).code == errc::invalid_argument);
  CHECK(llama2c::model{}.share_weights().loaded() == false);

  // Two external caches scored in one call equal two single-sequence scorings.
  specdec::kv::contiguous_cache<float> k1, k2;
  REQUIRE(m.allocate_cache(k1).ok());
  REQUIRE(m.allocate_cache(k2).ok());
  CHECK(k1.capacity() == m.seq_len());
  specdec::kv::contiguous_cache<float>* ptrs[2] = {&k1, &k2};
  const specdec::score_request reqs[2] = {{0, {a.data(), 7}, 0}, {0, {c.data(), 4}, 0}};
  std::vector<float> both(11 * static_cast<std::size_t>(V));
  REQUIRE(w.score_rows(reqs, ptrs, {both.data(), 11, V, V}).ok());
  CHECK(k1.length() == 7);
  CHECK(k2.length() == 4);
  llama2c::model ref = m;
  ref.reset();
  REQUIRE(ref.score({0, {a.data(), 7}, 0}, {o1.data(), 7, V, V}).ok());
  ref.reset();
  REQUIRE(ref.score({0, {c.data(), 4}, 0}, {o2.data(), 4, V, V}).ok());
  CHECK(same_bits(both.data(), o1.data(), 7 * V));
  CHECK(same_bits(both.data() + 7 * V, o2.data(), 4 * V));

  // Errors: mismatched counts, null, repeated or foreign caches, start past a cache's length.
  specdec::kv::contiguous_cache<float> foreign;
  const specdec::kv::plane_desc pd{4, specdec::kv::plane_layout::position_major};
  REQUIRE(foreign.allocate(m.seq_len(), std::span<const specdec::kv::plane_desc>(&pd, 1)).ok());
  specdec::kv::contiguous_cache<float>* dup[2] = {&k1, &k1};
  specdec::kv::contiguous_cache<float>* bad[2] = {&k1, &foreign};
  specdec::kv::contiguous_cache<float>* null[2] = {&k1, nullptr};
  const specdec::matrix_view<float> bv{both.data(), 11, V, V};
  CHECK(w.score_rows(reqs, std::span<specdec::kv::contiguous_cache<float>* const>(ptrs, 1), bv).code
        == errc::invalid_argument);
  CHECK(w.score_rows(reqs, dup, bv).code == errc::invalid_argument);
  CHECK(w.score_rows(reqs, bad, bv).code == errc::invalid_argument);
  CHECK(w.score_rows(reqs, null, bv).code == errc::invalid_argument);
  const specdec::score_request late[2] = {{0, {a.data(), 7}, 8}, {0, {c.data(), 4}, 4}};
  CHECK(w.score_rows(late, ptrs, bv).code == errc::invalid_argument);
  CHECK(k1.length() == 7);
  CHECK(k2.length() == 4);

  // With its own cache allocated, the worker scores alone as the model does.
  REQUIRE(m.allocate_cache(w.cache()).ok());
  REQUIRE(w.score({0, {a.data(), 7}, 0}, {o2.data(), 7, V, V}).ok());
  CHECK(same_bits(o2.data(), o1.data(), 7 * V));

  // Rescoring below the length drops the tail first: the rows equal those after a rollback (with
  // SPECDEC_ENABLE_EXTRA_CHECKS the dropped slots are poisoned before the new keys are written).
  std::vector<float> o3(4 * static_cast<std::size_t>(V)), o4(o3.size());
  REQUIRE(w.score({0, {c.data(), 4}, 3}, {o3.data(), 4, V, V}).ok());
  CHECK(w.cache().length() == 7);
  REQUIRE(w.cache().rollback(3).ok());
  REQUIRE(w.score({0, {c.data(), 4}, 3}, {o4.data(), 4, V, V}).ok());
  CHECK(same_bits(o3.data(), o4.data(), 4 * V));
  CHECK(std::none_of(o3.begin(), o3.end(), [](float x) { return x != x; }));
  // The same through score_rows on an external cache (k1 holds a[0..7)).
  specdec::kv::contiguous_cache<float>* one[1] = {&k1};
  const specdec::score_request re[1] = {{0, {c.data(), 4}, 3}};
  REQUIRE(w.score_rows(re, one, {o4.data(), 4, V, V}).ok());
  CHECK(k1.length() == 7);
  CHECK(same_bits(o3.data(), o4.data(), 4 * V));
}
