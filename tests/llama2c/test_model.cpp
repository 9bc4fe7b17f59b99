// SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief llama2c::model details that test_backend.cpp does not cover: chunked greedy scoring,
///        argmax, request validation (shapes, malformed trees, empty requests), masking of stale or
///        NaN cache slots, early-exit K/V, the unshared-classifier format and more bad headers;
///        issue 12: headers whose KV cache a small file cannot justify are refused before
///        anything is allocated for it.

#include <catch2/catch.hpp>

#include "llama2c/alloc_guard.hpp"
#include "llama2c/model.hpp"
#include "llama2c/paths.hpp"
#include "support/llama2c.hpp"
#include "support/scratch_dir.hpp"
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

using specdec::errc;
using specdec::index_t;
using specdec::token_id;
using specdec_test::file_bytes;
using specdec_test::load_bytes;
using specdec_test::model_path;
using specdec_test::shared_model;
using specdec_test::write_temp;

constexpr index_t V = 512;

const std::vector<token_id> sample{403, 407, 261, 378, 432, 383, 286, 261, 376, 298,
                                   315, 421, 395, 317, 426, 338, 401, 396, 267, 337,
                                   410, 408, 419, 292, 411, 322, 265, 282, 295, 433,
                                   426, 385, 328, 432, 358, 394, 261, 370, 432, 352};

// BOS followed by the known sample: 41 tokens.
std::vector<token_id> bos_sample() {
  std::vector<token_id> s{1};
  s.insert(s.end(), sample.begin(), sample.end());
  return s;
}

// Logits of every position of `seq`, one token per call from an empty cache.
std::vector<float> one_by_one(llama2c::model& m, const std::vector<token_id>& seq) {
  std::vector<float> out(seq.size() * V);
  m.reset();
  for (std::size_t i = 0; i < seq.size(); ++i)
    REQUIRE(
        m.score({0, {&seq[i], 1}, static_cast<index_t>(i)}, {out.data() + i * V, 1, V, V}).ok());
  return out;
}

} // namespace

TEST_CASE("llama2c model: header facts and parameter count", "[llama2c]") {
  const llama2c::model& m = shared_model();
  CHECK(m.cfg().dim == 64);
  CHECK(m.cfg().hidden_dim == 172);
  CHECK(m.cfg().n_layers == 5);
  CHECK(m.cfg().n_heads == 8);
  CHECK(m.cfg().n_kv_heads == 4);
  CHECK(m.cfg().vocab_size == 512);
  CHECK(m.cfg().seq_len == 512);
  CHECK(m.cfg().shared_classifier);
  CHECK(m.num_layers() == 5);
  CHECK(m.vocab_size() == V);
  // 264128 floats in the file minus the 512 * 8 skipped RoPE floats.
  CHECK(m.parameter_count() == 260032u);
  CHECK(m.cache().capacity() == 512);
  CHECK(m.cache().num_planes() == 10);
}

TEST_CASE("llama2c model: the sample scored in chunks gives it back by argmax", "[llama2c]") {
  llama2c::model& m = shared_model();
  const std::vector<token_id> seq = bos_sample();
  const std::vector<float> ref = one_by_one(m, seq);
  for (std::size_t i = 0; i + 1 < seq.size(); ++i)
    CHECK(llama2c::argmax({ref.data() + i * V, V}) == seq[i + 1]);
  for (const index_t chunk : {2, 3, 5, 7, 16, 40}) {
    m.reset();
    std::vector<float> rows(seq.size() * V);
    for (index_t at = 0; at < 40; at += chunk) {
      const index_t T = std::min<index_t>(chunk, 40 - at);
      REQUIRE(
          m.score({0, {&seq[static_cast<std::size_t>(at)], T}, at}, {rows.data() + at * V, T, V, V})
              .ok());
    }
    CHECK(m.cache().length() == 40);
    for (index_t i = 0; i < 40; ++i)
      CHECK(llama2c::argmax({rows.data() + i * V, V}) == seq[static_cast<std::size_t>(i + 1)]);
    CHECK(std::memcmp(rows.data(), ref.data(), 40 * V * sizeof(float)) == 0);
  }
}

TEST_CASE("llama2c model: argmax picks the first maximum and skips NaN", "[llama2c]") {
  std::vector<float> r(37, 0.0f);
  CHECK(llama2c::argmax({r.data(), 0}) == -1);
  CHECK(llama2c::argmax({r.data(), 37}) == 0);
  r[20] = 3.0f;
  r[33] = 3.0f;
  CHECK(llama2c::argmax({r.data(), 37}) == 20);
  r[5] = std::numeric_limits<float>::quiet_NaN();
  r[36] = 4.0f;
  CHECK(llama2c::argmax({r.data(), 37}) == 36);
  std::vector<float> all(19, -std::numeric_limits<float>::infinity());
  CHECK(llama2c::argmax({all.data(), 19}) == 0);
}

TEST_CASE("llama2c model: malformed requests change nothing", "[llama2c]") {
  llama2c::model& m = shared_model();
  const std::vector<token_id> seq = bos_sample();
  std::vector<float> rows(8 * V);
  m.reset();
  REQUIRE(m.score({0, {seq.data(), 4}, 0}, {rows.data(), 4, V, V}).ok());
  REQUIRE(m.cache().length() == 4);
  // Output shape.
  CHECK(m.score({0, {&seq[4], 2}, 4}, {rows.data(), 1, V, V}).code == errc::shape_mismatch);
  CHECK(m.score({0, {&seq[4], 2}, 4}, {rows.data(), 2, V - 1, V}).code == errc::shape_mismatch);
  CHECK(m.score({0, {&seq[4], 2}, 4}, {rows.data(), 2, V, V - 1}).code == errc::shape_mismatch);
  CHECK(m.score({0, {&seq[4], 2}, 4}, {nullptr, 2, V, V}).code == errc::invalid_argument);
  CHECK(m.score({0, {nullptr, 2}, 4}, {rows.data(), 2, V, V}).code == errc::invalid_argument);
  CHECK(m.score({0, {&seq[4], 2}, -1}, {rows.data(), 2, V, V}).code == errc::invalid_argument);
  // A start beyond the committed length.
  CHECK(m.score({0, {&seq[4], 2}, 511}, {rows.data(), 2, V, V}).code == errc::invalid_argument);
  // Trees.
  const std::int32_t self[] = {-1, 1};
  const std::int32_t forward_ref[] = {1, -1};
  const std::int32_t below[] = {-1, -2};
  CHECK(m.score_tree(4, {&seq[4], 2}, {self, 2}, {rows.data(), 2, V, V}).code
        == errc::invalid_argument);
  CHECK(m.score_tree(4, {&seq[4], 2}, {forward_ref, 2}, {rows.data(), 2, V, V}).code
        == errc::invalid_argument);
  CHECK(m.score_tree(4, {&seq[4], 2}, {below, 2}, {rows.data(), 2, V, V}).code
        == errc::invalid_argument);
  CHECK(m.score_tree(4, {&seq[4], 2}, {self, 1}, {rows.data(), 2, V, V}).code
        == errc::shape_mismatch);
  CHECK(m.score_tree(5, {&seq[4], 1}, {self, 1}, {rows.data(), 1, V, V}).code
        == errc::invalid_argument);
  // Early exit: layer count.
  CHECK(m.score_layers({0, {&seq[4], 1}, 4}, 0, {rows.data(), 1, V, V}).code
        == errc::invalid_argument);
  CHECK(m.score_layers({0, {&seq[4], 1}, 4}, 6, {rows.data(), 1, V, V}).code
        == errc::invalid_argument);
  CHECK(m.cache().length() == 4);
  // Empty requests are no-ops.
  CHECK(m.score({0, {nullptr, 0}, 4}, {nullptr, 0, 0, 0}).ok());
  CHECK(m.score_tree(4, {nullptr, 0}, {nullptr, 0}, {nullptr, 0, 0, 0}).ok());
  CHECK(m.score_layers({0, {nullptr, 0}, 4}, 2, {nullptr, 0, 0, 0}).ok());
  CHECK(m.cache().length() == 4);
  // The committed prefix is intact: continuing reproduces the one-by-one rows.
  const std::vector<float> ref = one_by_one(m, seq);
  m.reset();
  REQUIRE(m.score({0, {seq.data(), 4}, 0}, {rows.data(), 4, V, V}).ok());
  REQUIRE(m.score({0, {&seq[4], 4}, 4}, {rows.data(), 4, V, V}).ok());
  CHECK(std::memcmp(rows.data(), ref.data() + 4 * V, 4 * V * sizeof(float)) == 0);
  // An unloaded model refuses everything.
  llama2c::model empty;
  CHECK(empty.vocab_size() == 0);
  CHECK(empty.score({0, {seq.data(), 1}, 0}, {rows.data(), 1, V, V}).code
        == errc::invalid_argument);
}

TEST_CASE("llama2c model: stale and NaN slots past the committed length are never read",
          "[llama2c]") {
  llama2c::model& m = shared_model();
  const std::vector<token_id> seq = bos_sample();
  const std::vector<float> ref = one_by_one(m, seq);
  m.reset();
  std::vector<float> rows(8 * V);
  REQUIRE(m.score({0, {seq.data(), 21}, 0}, {rows.data(), 8, V, V}).code
          == errc::shape_mismatch); // rows < T: refused
  std::vector<float> all(21 * V);
  REQUIRE(m.score({0, {seq.data(), 21}, 0}, {all.data(), 21, V, V}).ok());
  REQUIRE(m.cache().rollback(13).ok());
  // Poison every slot from 13 on, in every plane.
  specdec::kv::contiguous_cache<float>& c = m.cache();
  for (index_t p = 0; p < c.num_planes(); ++p)
    for (index_t pos = 13; pos < c.capacity(); ++pos)
      for (index_t f = 0; f < c.desc(p).width; ++f)
        c.at(p, pos, f) = std::numeric_limits<float>::quiet_NaN();
  for (const index_t T : {1, 3, 8}) {
    REQUIRE(c.rollback(13).ok());
    REQUIRE(m.score({0, {&seq[13], T}, 13}, {rows.data(), T, V, V}).ok());
    CHECK(std::memcmp(
              rows.data(), ref.data() + 13 * V, static_cast<std::size_t>(T * V) * sizeof(float))
          == 0);
  }
  // Tree rows gather their chunks: same result.
  const std::int32_t parents[] = {-1, 0, 1};
  REQUIRE(c.rollback(13).ok());
  for (index_t pos = 13; pos < c.capacity(); ++pos)
    for (index_t f = 0; f < c.desc(0).width; ++f)
      c.at(0, pos, f) = std::numeric_limits<float>::infinity();
  REQUIRE(m.score_tree(13, {&seq[13], 3}, {parents, 3}, {rows.data(), 3, V, V}).ok());
  CHECK(std::memcmp(rows.data(), ref.data() + 13 * V, 3 * V * sizeof(float)) == 0);
}

TEST_CASE("llama2c model: chained early exit writes the K/V that score() recomputes", "[llama2c]") {
  llama2c::model& m = shared_model();
  const std::vector<token_id> seq = bos_sample();
  const index_t base = 17;
  const int layers = 3;
  std::vector<float> rows(6 * V);
  // Reference K/V: the whole sequence through score().
  m.reset();
  std::vector<float> all(seq.size() * V);
  REQUIRE(m.score({0, {seq.data(), static_cast<index_t>(seq.size())}, 0},
                  {all.data(), static_cast<index_t>(seq.size()), V, V})
              .ok());
  const specdec::kv::contiguous_cache<float> ref_cache = m.cache();
  // Drafter: commit `base`, then run the first 3 layers token by token past it.
  REQUIRE(m.cache().rollback(base).ok());
  std::vector<float> e(V);
  for (index_t i = 0; i < 5; ++i)
    REQUIRE(m.score_layers({0, {&seq[static_cast<std::size_t>(base + i)], 1}, base + i},
                           layers,
                           {e.data(), 1, V, V})
                .ok());
  CHECK(m.cache().length() == base);
  // A different layer count cannot continue that chain; the same one can restart at the length.
  CHECK(m.score_layers({0, {&seq[base + 5], 1}, base + 5}, 2, {e.data(), 1, V, V}).code
        == errc::invalid_argument);
  const specdec::kv::contiguous_cache<float>& c = m.cache();
  for (index_t l = 0; l < layers; ++l)
    for (const index_t p : {2 * l, 2 * l + 1})
      for (index_t pos = base; pos < base + 5; ++pos)
        for (index_t f = 0; f < c.desc(p).width; ++f)
          REQUIRE(std::memcmp(&c.at(p, pos, f), &ref_cache.at(p, pos, f), sizeof(float)) == 0);
  // The target verifies: identical K/V in every layer and identical rows.
  REQUIRE(m.score({0, {&seq[base], 6}, base}, {rows.data(), 6, V, V}).ok());
  CHECK(std::memcmp(rows.data(), all.data() + base * V, 6 * V * sizeof(float)) == 0);
  for (index_t p = 0; p < c.num_planes(); ++p)
    for (index_t pos = 0; pos < base + 6; ++pos)
      for (index_t f = 0; f < c.desc(p).width; ++f)
        REQUIRE(std::memcmp(&c.at(p, pos, f), &ref_cache.at(p, pos, f), sizeof(float)) == 0);
  // After score(), the old chain is gone.
  CHECK(m.score_layers({0, {&seq[base + 7], 1}, base + 7}, layers, {e.data(), 1, V, V}).code
        == errc::invalid_argument);
}

TEST_CASE("llama2c model: every kernel width gives bitwise the same logits", "[llama2c]") {
  // A baseline build runs 128-, 256- or 512-bit kernels (what the CPU has); each must give the
  // rows of the 4-lane kernels bit for bit: chains in chunks of 1 to 7 rows (every register tile
  // of the products), a tree (the gathered value tail) and an early exit, over 40 positions
  // (every remainder of the softmax and value chunks).
  llama2c::model& m = shared_model();
  const std::vector<token_id> seq = bos_sample();
  const std::vector<std::int32_t> parents{-1, 0, 1, 1, 3, 0, 5, 2};
  auto run = [&](int bits) {
    const int width = m.set_kernel_width(bits);
    CHECK(width == m.kernel_width());
    std::vector<float> out;
    for (const index_t chunk : {1, 3, 4, 7}) {
      m.reset();
      std::vector<float> rows(40 * V);
      for (index_t at = 0; at < 40; at += chunk) {
        const index_t T = std::min<index_t>(chunk, 40 - at);
        REQUIRE(m.score({0, {&seq[static_cast<std::size_t>(at)], T}, at},
                        {rows.data() + at * V, T, V, V})
                    .ok());
      }
      out.insert(out.end(), rows.begin(), rows.end());
    }
    std::vector<float> tree(parents.size() * V);
    REQUIRE(m.cache().rollback(29).ok());
    REQUIRE(m.score_tree(29,
                         {&seq[29], static_cast<index_t>(parents.size())},
                         {parents.data(), static_cast<index_t>(parents.size())},
                         {tree.data(), static_cast<index_t>(parents.size()), V, V})
                .ok());
    out.insert(out.end(), tree.begin(), tree.end());
    REQUIRE(m.cache().rollback(21).ok());
    std::vector<float> early(3 * V);
    REQUIRE(m.score_layers({0, {&seq[21], 3}, 21}, 2, {early.data(), 3, V, V}).ok());
    out.insert(out.end(), early.begin(), early.end());
    return out;
  };
  const std::vector<float> base = run(128);
  for (const int bits : {256, 512}) {
    INFO("kernel width " << m.set_kernel_width(bits));
    const std::vector<float> wide = run(bits);
    REQUIRE(wide.size() == base.size());
    CHECK(std::memcmp(wide.data(), base.data(), base.size() * sizeof(float)) == 0);
  }
  m.set_kernel_width(1 << 20); // back to the widest, as load() leaves it
  m.reset();
}

TEST_CASE("llama2c model: an unshared classifier file equal to the embedding scores the same",
          "[llama2c]") {
  const std::vector<char> good = file_bytes(model_path());
  REQUIRE(good.size() == 1056540);
  // Negative vocab_size: wcls follows the RoPE tables; use a copy of the token embedding.
  std::vector<char> unshared = good;
  const std::int32_t neg = -512;
  std::memcpy(unshared.data() + 20, &neg, 4);
  unshared.insert(unshared.end(), good.begin() + 28, good.begin() + 28 + 512 * 64 * 4);
  llama2c::model u;
  std::string detail;
  REQUIRE(llama2c::model::load(write_temp("specdec_m_unshared.bin", unshared), u, &detail).ok());
  CHECK(detail.empty());
  CHECK_FALSE(u.cfg().shared_classifier);
  CHECK(u.parameter_count() == 260032u + 512u * 64u);
  const std::vector<token_id> seq = bos_sample();
  const std::vector<float> a = one_by_one(shared_model(), seq);
  const std::vector<float> b = one_by_one(u, seq);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  // Without the extra matrix the unshared file is one classifier short.
  std::vector<char> cut(unshared.begin(), unshared.end() - 512 * 64 * 4);
  CHECK(llama2c::model::load(write_temp("specdec_m_unshared_cut.bin", cut), u, &detail).code
        == errc::corrupt_data);
  CHECK(detail.find("1056540") != std::string::npos); // the file's size is in the message
}

TEST_CASE("llama2c model: more bad headers and weights", "[llama2c]") {
  const std::vector<char> good = file_bytes(model_path());
  REQUIRE(good.size() == 1056540);
  auto with_header = [&](int field, std::int32_t value) {
    std::vector<char> b = good;
    std::memcpy(b.data() + 4 * field, &value, 4);
    return b;
  };
  CHECK(load_bytes("specdec_m_short.bin", std::vector<char>(good.begin(), good.begin() + 27))
        == errc::corrupt_data);
  CHECK(load_bytes("specdec_m_header_only.bin", std::vector<char>(good.begin(), good.begin() + 28))
        == errc::corrupt_data);
  CHECK(load_bytes("specdec_m_kv3.bin", with_header(4, 3)) == errc::corrupt_data); // 8 % 3
  CHECK(load_bytes("specdec_m_kv0.bin", with_header(4, 0)) == errc::corrupt_data);
  CHECK(load_bytes("specdec_m_odd_hs.bin", with_header(3, 64)) == errc::corrupt_data); // hs 1
  CHECK(load_bytes("specdec_m_layers0.bin", with_header(2, 0)) == errc::corrupt_data);
  CHECK(load_bytes("specdec_m_vocab0.bin", with_header(5, 0)) == errc::corrupt_data);
  CHECK(
      load_bytes("specdec_m_vocabmin.bin", with_header(5, std::numeric_limits<std::int32_t>::min()))
      == errc::corrupt_data);
  CHECK(load_bytes("specdec_m_seq0.bin", with_header(6, 0)) == errc::corrupt_data);
  CHECK(load_bytes("specdec_m_seqneg.bin", with_header(6, -512)) == errc::corrupt_data);
  // Sizes whose products overflow 64 bits must not wrap around to the file size.
  std::vector<char> big = with_header(0, 1 << 24);
  std::int32_t v = 1 << 24;
  std::memcpy(big.data() + 4, &v, 4);
  v = 1 << 16;
  std::memcpy(big.data() + 8, &v, 4);
  CHECK(load_bytes("specdec_m_overflow.bin", big) == errc::corrupt_data);
  CHECK(load_bytes("specdec_m_absurd.bin", with_header(6, std::numeric_limits<std::int32_t>::max()))
        == errc::corrupt_data);
  // A non-finite weight anywhere (the embedding, the last norm weight).
  for (const std::size_t at : {std::size_t{28}, good.size() - 4 * (1 + 512 * 8)}) {
    std::vector<char> b = good;
    const float inf = std::numeric_limits<float>::infinity();
    std::memcpy(b.data() + at, &inf, 4);
    CHECK(load_bytes("specdec_m_inf.bin", b) == errc::corrupt_data);
  }
  // A NaN in the skipped RoPE tables is not a weight.
  std::vector<char> rope = good;
  const float q = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(rope.data() + good.size() - 4, &q, 4);
  CHECK(load_bytes("specdec_m_rope_nan.bin", rope) == errc::ok);
  // A failed load leaves the destination as it was.
  llama2c::model m = shared_model();
  std::string detail;
  CHECK(llama2c::model::load(write_temp("specdec_m_kv3.bin", with_header(4, 3)), m, &detail).code
        == errc::corrupt_data);
  CHECK(!detail.empty());
  CHECK(m.vocab_size() == V);
}

namespace {

/// The test's scratch folders (tests/support/scratch_dir.hpp), named after this file.
struct scratch_dir : specdec_test::scratch_dir {
  scratch_dir()
      : specdec_test::scratch_dir("specdec_model") {}
};

/// A well-formed checkpoint (shared classifier, every weight 0) of exactly the size its header
/// implies: {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len}.
std::vector<char> zero_model(const std::array<std::int32_t, 7>& h) {
  const std::uint64_t dim = static_cast<std::uint64_t>(h[0]),
                      hid = static_cast<std::uint64_t>(h[1]);
  const std::uint64_t nl = static_cast<std::uint64_t>(h[2]),
                      hs = dim / static_cast<std::uint64_t>(h[3]);
  const std::uint64_t kvd = hs * static_cast<std::uint64_t>(h[4]);
  const std::uint64_t floats = static_cast<std::uint64_t>(h[5]) * dim
                               + nl * (2 * dim + 2 * dim * dim + 2 * kvd * dim + 3 * hid * dim)
                               + dim + static_cast<std::uint64_t>(h[6]) * hs;
  std::vector<char> b(28 + 4 * floats, '\0');
  std::memcpy(b.data(), h.data(), 28);
  return b;
}

} // namespace

TEST_CASE("llama2c model: a small file cannot make load() allocate a huge KV cache",
          "[llama2c][issue12]") {
  const scratch_dir dir;
  // The fuzzer's file: 33 MB (mostly the RoPE table of seq_len 2^22 x head_size 2) whose header
  // asks for 64 layers x kv_dim 8 x 2^22 positions: a 16 GiB KV cache.
  const std::vector<char> fuzz = zero_model({8, 8, 64, 4, 4, 32, 1 << 22});
  REQUIRE(fuzz.size() < (std::size_t{34} << 20));
  // 2 MB asking for 1 GiB: under max_kv_cache_bytes, but far above the file's own size.
  const std::vector<char> gib = zero_model({2, 1, 256, 1, 1, 1, 1 << 18});
  REQUIRE(gib.size() < (std::size_t{3} << 20));
  // A tiny file whose 4 MiB cache is larger than the file, but within kv_cache_bytes_any_file.
  const std::vector<char> fine = zero_model({2, 1, 4, 1, 1, 1, 1 << 16});
  const std::string fuzz_path = dir.write("fuzz.bin", fuzz);
  const std::string gib_path = dir.write("gib.bin", gib);
  const std::string fine_path = dir.write("fine.bin", fine);
  // No single allocation for these files needs 128 MiB (the fuzz file's weights are 33 MB; the
  // loader used to allocate them, 64 MiB of attention scores, then the 16 GiB cache); a larger
  // request is refused (std::bad_alloc) and recorded.
  const specdec_test::allocation_cap cap(std::size_t{128} << 20);
  llama2c::model m;
  std::string detail;
  CHECK(llama2c::model::load(fuzz_path, m, &detail).code == errc::unsupported);
  CHECK(detail.find("KV cache") != std::string::npos);
  CHECK(detail.find("n_layers 64") != std::string::npos);
  CHECK(detail.find(std::to_string(fuzz.size())) != std::string::npos);
  CHECK(llama2c::model::load(gib_path, m, &detail).code == errc::unsupported);
  CHECK(detail.find("KV cache") != std::string::npos);
  CHECK(!m.loaded());
  CHECK(cap.largest_refused() == 0);
  REQUIRE(llama2c::model::load(fine_path, m, &detail).ok());
  CHECK(m.num_layers() == 4);
  CHECK(m.cache().capacity() == 1 << 16);
  CHECK(cap.largest_refused() == 0);
  // The real model loads under the same cap, and its header limits are the documented ones.
  CHECK(llama2c::model::load(model_path(), m, &detail).ok());
  CHECK(cap.largest_refused() == 0);
  static_assert(llama2c::model::kv_cache_bytes_any_file <= llama2c::model::max_kv_cache_bytes);
  std::array<std::int32_t, 7> over{8, 8, 1, 4, 4, 32, llama2c::model::max_seq_len + 1};
  CHECK(llama2c::model::load(dir.write("seq.bin", zero_model({8, 8, 1, 4, 4, 32, 1})), m, &detail)
            .ok());
  std::vector<char> long_seq = zero_model({8, 8, 1, 4, 4, 32, 1});
  std::memcpy(long_seq.data(), over.data(), 28);
  CHECK(llama2c::model::load(dir.write("long_seq.bin", long_seq), m, &detail).code
        == errc::corrupt_data);
  CHECK(detail.find("seq_len is above the limit of 4194304") != std::string::npos);
}
