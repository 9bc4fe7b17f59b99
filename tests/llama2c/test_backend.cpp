// SPDX-License-Identifier: Apache-2.0
//
// The llama2.c backend on stories260K: llama2.c's known greedy sample, batch invariance (rows are
// bitwise identical whatever the chunking, tree or chain scoring, early exit with every layer),
// KV rollback, and bad input (files, token ids, context overflow).
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/propose/no_draft.hpp>
#include <specdec/verify/greedy.hpp>

#include <catch2/catch.hpp>

#include "llama2c/model.hpp"
#include "llama2c/paths.hpp"
#include "support/llama2c.hpp"
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <vector>

namespace {

using specdec::errc;
using specdec::index_t;
using specdec::status;
using specdec::token_id;
using specdec_test::file_bytes;
using specdec_test::load_bytes;
using specdec_test::model_path;
using specdec_test::shared_model;

constexpr index_t V = 512;

// Logits of every position of `seq`, scored one token at a time from an empty cache.
std::vector<float> one_by_one(llama2c::model& m, const std::vector<token_id>& seq) {
  std::vector<float> out(seq.size() * V);
  REQUIRE(m.cache().rollback(0).ok());
  for (std::size_t i = 0; i < seq.size(); ++i)
    REQUIRE(
        m.score({0, {&seq[i], 1}, static_cast<index_t>(i)}, {out.data() + i * V, 1, V, V}).ok());
  return out;
}

std::vector<token_id> greedy(llama2c::model& m, int n) {
  std::vector<token_id> seq{1};
  std::vector<float> row(V);
  REQUIRE(m.cache().rollback(0).ok());
  for (int i = 0; i < n; ++i) {
    const token_id t = seq.back();
    REQUIRE(m.score({0, {&t, 1}, static_cast<index_t>(i)}, {row.data(), 1, V, V}).ok());
    seq.push_back(static_cast<token_id>(std::max_element(row.begin(), row.end()) - row.begin()));
  }
  return seq;
}

} // namespace

TEST_CASE("llama2c backend: greedy from BOS reproduces llama2.c's sample") {
  const std::vector<token_id> expected{403, 407, 261, 378, 432, 383, 286, 261, 376, 298,
                                       315, 421, 395, 317, 426, 338, 401, 396, 267, 337,
                                       410, 408, 419, 292, 411, 322, 265, 282, 295, 433,
                                       426, 385, 328, 432, 358, 394, 261, 370, 432, 352};
  const std::vector<token_id> seq = greedy(shared_model(), 40);
  CHECK(std::vector<token_id>(seq.begin() + 1, seq.end()) == expected);
}

TEST_CASE("llama2c backend: rows are bitwise identical whatever the chunking") {
  llama2c::model& m = shared_model();
  const std::vector<token_id> seq = greedy(m, 99);
  const std::vector<float> ref = one_by_one(m, seq);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    REQUIRE(m.cache().rollback(0).ok());
    std::vector<float> got(seq.size() * V);
    std::size_t at = 0;
    while (at < seq.size()) {
      const std::size_t T = std::min<std::size_t>(1 + rng() % 16, seq.size() - at);
      REQUIRE(m.score({0, {&seq[at], static_cast<index_t>(T)}, static_cast<index_t>(at)},
                      {got.data() + at * V, static_cast<index_t>(T), V, V})
                  .ok());
      at += T;
    }
    REQUIRE(std::memcmp(got.data(), ref.data(), got.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("llama2c backend: tree, chain and early-exit rows agree bitwise") {
  llama2c::model& m = shared_model();
  const std::vector<token_id> seq = greedy(m, 30);
  const std::vector<float> ref = one_by_one(m, seq);
  const index_t base = 20;
  // A chain scored as a tree equals score().
  std::vector<token_id> chain(seq.begin() + base, seq.begin() + base + 6);
  std::vector<std::int32_t> parents{-1, 0, 1, 2, 3, 4};
  std::vector<float> rows(chain.size() * V);
  REQUIRE(m.cache().rollback(base).ok());
  REQUIRE(m.score_tree(base, {chain.data(), 6}, {parents.data(), 6}, {rows.data(), 6, V, V}).ok());
  CHECK(std::memcmp(rows.data(), ref.data() + base * V, rows.size() * sizeof(float)) == 0);
  // A branching tree (0 <- 1, 0 <- 2 with another token, 2 <- 3): each row equals its root path's.
  const token_id other = static_cast<token_id>((seq[base + 1] + 7) % V);
  std::vector<token_id> tree{seq[base], seq[base + 1], other, seq[base + 2]};
  std::vector<std::int32_t> tp{-1, 0, 0, 2};
  std::vector<float> trows(4 * V);
  REQUIRE(m.cache().rollback(base).ok());
  REQUIRE(m.score_tree(base, {tree.data(), 4}, {tp.data(), 4}, {trows.data(), 4, V, V}).ok());
  CHECK(std::memcmp(trows.data(), ref.data() + base * V, 2 * V * sizeof(float)) == 0);
  std::vector<token_id> path{seq[base], other, seq[base + 2]};
  std::vector<float> prow(3 * V);
  REQUIRE(m.cache().rollback(base).ok());
  REQUIRE(m.score({0, {path.data(), 3}, base}, {prow.data(), 3, V, V}).ok());
  CHECK(std::memcmp(trows.data() + 2 * V, prow.data() + V, 2 * V * sizeof(float)) == 0);
  // Early exit with every layer is score(); chained early-exit calls past the committed length
  // leave the cache so that score() afterwards reproduces the reference.
  REQUIRE(m.cache().rollback(base).ok());
  std::vector<float> e(V);
  for (index_t i = 0; i < 4; ++i) {
    REQUIRE(m.score_layers({0, {&seq[static_cast<std::size_t>(base + i)], 1}, base + i},
                           m.num_layers(),
                           {e.data(), 1, V, V})
                .ok());
    CHECK(std::memcmp(e.data(), ref.data() + (base + i) * V, V * sizeof(float)) == 0);
  }
  REQUIRE(m.cache().length() == base);
  for (index_t i = 0; i < 3; ++i)
    REQUIRE(m.score_layers({0, {&seq[static_cast<std::size_t>(base + i)], 1}, base + i},
                           2,
                           {e.data(), 1, V, V})
                .ok());
  REQUIRE(m.score({0, {&seq[base], 5}, base}, {rows.data(), 5, V, V}).ok());
  CHECK(std::memcmp(rows.data(), ref.data() + base * V, 5 * V * sizeof(float)) == 0);
  // A non-chained early-exit call is refused.
  CHECK(m.score_layers({0, {&seq[0], 1}, m.cache().length() + 3}, 2, {e.data(), 1, V, V}).code
        == errc::invalid_argument);
}

TEST_CASE("llama2c backend: rollback then rescoring reproduces the rows") {
  llama2c::model& m = shared_model();
  const std::vector<token_id> seq = greedy(m, 40);
  const std::vector<float> ref = one_by_one(m, seq);
  std::mt19937 rng(3);
  std::vector<float> rows(16 * V);
  for (int trial = 0; trial < 30; ++trial) {
    // Score junk past a random point, roll back, score the true tokens.
    const index_t keep = static_cast<index_t>(rng() % 30);
    REQUIRE(m.cache().rollback(std::min(keep, m.cache().length())).ok());
    if (m.cache().length() < keep) {
      const index_t from = m.cache().length();
      REQUIRE(m.score({0, {&seq[static_cast<std::size_t>(from)], keep - from}, from},
                      {rows.data(), keep - from, V, V})
                  .ok());
    }
    std::vector<token_id> junk(8, static_cast<token_id>(rng() % V));
    REQUIRE(m.score({0, {junk.data(), 8}, keep}, {rows.data(), 8, V, V}).ok());
    REQUIRE(m.cache().rollback(keep).ok());
    REQUIRE(
        m.score({0, {&seq[static_cast<std::size_t>(keep)], 8}, keep}, {rows.data(), 8, V, V}).ok());
    REQUIRE(std::memcmp(rows.data(), ref.data() + keep * V, 8 * V * sizeof(float)) == 0);
  }
}

TEST_CASE("llama2c backend: bad input gives a status and changes nothing") {
  llama2c::model& m = shared_model();
  std::vector<float> rows(4 * V);
  REQUIRE(m.cache().rollback(0).ok());
  const token_id bos = 1;
  REQUIRE(m.score({0, {&bos, 1}, 0}, {rows.data(), 1, V, V}).ok());
  const token_id bad[] = {1, 512};
  CHECK(m.score({0, {bad, 2}, 1}, {rows.data(), 2, V, V}).code == errc::token_out_of_range);
  const token_id neg = -1;
  CHECK(m.score({0, {&neg, 1}, 1}, {rows.data(), 1, V, V}).code == errc::token_out_of_range);
  CHECK(m.score({0, {&bos, 1}, 5}, {rows.data(), 1, V, V}).code == errc::invalid_argument);
  CHECK(m.cache().length() == 1);
  // Past the context: seq_len is 512.
  std::vector<token_id> ones(600, 1);
  std::vector<float> big(600 * V);
  CHECK(m.score({0, {ones.data(), 600}, 0}, {big.data(), 600, V, V}).code == errc::overflow);
  CHECK(m.cache().length() == 1);
  // The decoding loop refuses a prompt longer than the context.
  specdec::propose::no_drafter none;
  specdec::decode::speculative_decoder dec(
      m, m.cache(), none, specdec::verify::greedy{}, specdec::sched::fixed_draft_length{0});
  specdec::decode::decode_result r;
  CHECK(dec.generate(ones, {}, r).code == errc::overflow);
}

TEST_CASE("llama2c backend: bad model files give a status") {
  CHECK(load_bytes("specdec_m_empty.bin", {}) == errc::corrupt_data);
  llama2c::model m;
  std::string detail;
  CHECK(llama2c::model::load("/nonexistent/m.bin", m, &detail).code == errc::io_error);
  const std::vector<char> good = file_bytes(model_path());
  REQUIRE(good.size() == 1056540);
  CHECK(load_bytes("specdec_m_cut.bin", std::vector<char>(good.begin(), good.end() - 1))
        == errc::corrupt_data);
  std::vector<char> extra = good;
  extra.push_back(0);
  CHECK(load_bytes("specdec_m_extra.bin", extra) == errc::corrupt_data);
  auto with_header = [&](int field, std::int32_t value) {
    std::vector<char> b = good;
    std::memcpy(b.data() + 4 * field, &value, 4);
    return b;
  };
  CHECK(load_bytes("specdec_m_dim0.bin", with_header(0, 0)) == errc::corrupt_data);
  CHECK(load_bytes("specdec_m_dimneg.bin", with_header(0, -64)) == errc::corrupt_data);
  CHECK(load_bytes("specdec_m_heads.bin", with_header(3, 7)) == errc::corrupt_data);
  CHECK(load_bytes("specdec_m_huge.bin", with_header(1, 1 << 30)) == errc::corrupt_data);
  std::vector<char> nan = good;
  const float q = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(nan.data() + 28 + 4 * 1000, &q, 4);
  CHECK(load_bytes("specdec_m_nan.bin", nan) == errc::corrupt_data);
}
