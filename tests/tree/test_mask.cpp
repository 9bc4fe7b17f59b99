// SPDX-License-Identifier: Apache-2.0
//
// Attention masks of prefix + tree against a brute-force reference: ancestor sets computed by
// following parent links into a std::set, on many random trees (bushy, deep and chain shapes,
// N up to 100 with the 32-bit word boundaries N = 31, 32, 33, 63, 64, 65, 96, 97) and prefix
// lengths around word boundaries. Dense, tree-only and packed forms, the per-word and per-entry
// shared functions, positions, and the statuses of malformed trees and short spans.
#include <specdec/tree/mask.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <iterator>
#include <limits>
#include <random>
#include <set>
#include <vector>

namespace {

using specdec::errc;
using specdec::index_t;
namespace tree = specdec::tree;

std::vector<std::int32_t> random_parents(std::mt19937& rng, std::int32_t n, int shape) {
  std::vector<std::int32_t> p(static_cast<std::size_t>(n), -1);
  for (std::int32_t j = 1; j < n; ++j) {
    std::int32_t v = 0;
    if (shape == 0) // bushy
      v = static_cast<std::int32_t>(rng() % static_cast<std::uint32_t>(j));
    else if (shape == 1) // deep: a recent node
      v = j - 1 - static_cast<std::int32_t>(rng() % static_cast<std::uint32_t>(j < 3 ? j : 3));
    else if (shape == 2) // chain
      v = j - 1;
    else // star
      v = 0;
    p[static_cast<std::size_t>(j)] = v;
  }
  return p;
}

// The reference: for each node, the set of its ancestors and itself.
std::vector<std::set<std::int32_t>> ancestor_sets(const std::vector<std::int32_t>& parents) {
  std::vector<std::set<std::int32_t>> out(parents.size());
  for (std::size_t j = 0; j < parents.size(); ++j)
    for (auto k = static_cast<std::int32_t>(j); k != -1; k = parents[static_cast<std::size_t>(k)])
      out[j].insert(k);
  return out;
}

struct expected_masks {
  std::vector<std::uint8_t> dense;   // [N, P + N]
  std::vector<std::uint32_t> packed; // [N, ceil((P + N) / 32)]
};

expected_masks reference(const std::vector<std::int32_t>& parents, index_t prefix) {
  const auto sets = ancestor_sets(parents);
  const auto n = static_cast<index_t>(parents.size());
  const index_t cols = prefix + n;
  const index_t words = (cols + 31) / 32;
  expected_masks m;
  m.dense.assign(static_cast<std::size_t>(n * cols), 0);
  m.packed.assign(static_cast<std::size_t>(n * words), 0u);
  for (index_t r = 0; r < n; ++r)
    for (index_t c = 0; c < cols; ++c) {
      const bool v =
          c < prefix
          || sets[static_cast<std::size_t>(r)].count(static_cast<std::int32_t>(c - prefix)) != 0;
      if (!v)
        continue;
      m.dense[static_cast<std::size_t>(r * cols + c)] = 1;
      m.packed[static_cast<std::size_t>(r * words + c / 32)] |= 1u << (c % 32);
    }
  return m;
}

std::vector<std::int32_t> sizes_to_test(std::mt19937& rng) {
  std::vector<std::int32_t> ns = {1, 2, 3, 31, 32, 33, 63, 64, 65, 96, 97, 100};
  for (int i = 0; i < 30; ++i)
    ns.push_back(static_cast<std::int32_t>(1 + rng() % 100));
  return ns;
}

const index_t prefixes[] = {0, 1, 7, 31, 32, 33, 64, 95};

} // namespace

TEST_CASE("mask: word counts round up to 32 columns", "[tree][mask]") {
  CHECK(tree::mask_words(0) == 0);
  CHECK(tree::mask_words(-5) == 0);
  CHECK(tree::mask_words(1) == 1);
  CHECK(tree::mask_words(32) == 1);
  CHECK(tree::mask_words(33) == 2);
  CHECK(tree::mask_words(64) == 2);
  CHECK(tree::mask_words(65) == 3);
  CHECK(tree::mask_words(tree::max_nodes) == 32);
  CHECK(tree::prefix_mask_words(0, 32) == 1);
  CHECK(tree::prefix_mask_words(1, 32) == 2);
  CHECK(tree::prefix_mask_words(32, 32) == 2);
  CHECK(tree::prefix_mask_words(1000, 24) == 32);
  CHECK(tree::prefix_mask_words(-1, 4) == 0);
  static_assert(tree::mask_words(33) == 2, "usable in constant expressions");
}

TEST_CASE("mask: dense, tree-only and packed masks match the brute-force reference",
          "[tree][mask]") {
  std::mt19937 rng(424242);
  int trees = 0;
  for (const std::int32_t n : sizes_to_test(rng)) {
    for (int shape = 0; shape < 4; ++shape) {
      const std::vector<std::int32_t> parents = random_parents(rng, n, shape);
      const tree::tree_view t{parents.data(), n};
      ++trees;
      for (const index_t prefix : prefixes) {
        const expected_masks ref = reference(parents, prefix);
        const index_t cols = prefix + n;
        const index_t words = tree::prefix_mask_words(prefix, n);
        INFO("n = " << n << ", shape = " << shape << ", prefix = " << prefix);

        // Spans one element longer than needed: the extra element must stay untouched.
        std::vector<std::uint8_t> dense(ref.dense.size() + 1, 0xAB);
        REQUIRE(tree::build_dense_mask(t, prefix, dense).ok());
        CHECK(dense.back() == 0xAB);
        dense.pop_back();
        CHECK(dense == ref.dense);

        std::vector<std::uint32_t> packed(ref.packed.size() + 1, 0xDEADBEEFu);
        REQUIRE(tree::build_packed_mask_with_prefix(t, prefix, packed).ok());
        CHECK(packed.back() == 0xDEADBEEFu);
        packed.pop_back();
        CHECK(packed == ref.packed);

        // The shared per-word and per-entry functions give the same bits.
        std::int32_t word_mismatches = 0, entry_mismatches = 0;
        for (std::int32_t r = 0; r < n; ++r) {
          for (index_t w = 0; w < words; ++w)
            word_mismatches +=
                tree::mask_word_with_prefix(t, prefix, r, w)
                        != ref.packed[static_cast<std::size_t>(static_cast<index_t>(r) * words + w)]
                    ? 1
                    : 0;
          for (index_t c = 0; c < cols; ++c)
            entry_mismatches +=
                tree::visible_with_prefix(t, prefix, r, c)
                        != (ref.dense[static_cast<std::size_t>(static_cast<index_t>(r) * cols + c)]
                            != 0)
                    ? 1
                    : 0;
        }
        CHECK(word_mismatches == 0);
        CHECK(entry_mismatches == 0);

        if (prefix == 0) {
          std::vector<std::uint8_t> tree_only(ref.dense.size());
          REQUIRE(tree::build_tree_mask(t, tree_only).ok());
          CHECK(tree_only == ref.dense);
          std::vector<std::uint32_t> packed_only(ref.packed.size());
          REQUIRE(tree::build_packed_mask(t, packed_only).ok());
          CHECK(packed_only == ref.packed);
          std::int32_t mismatches = 0;
          for (std::int32_t r = 0; r < n; ++r) {
            for (std::int32_t w = 0; w < tree::mask_words(n); ++w)
              mismatches +=
                  tree::mask_word(t, r, w)
                          != ref.packed[static_cast<std::size_t>(r * tree::mask_words(n) + w)]
                      ? 1
                      : 0;
            for (std::int32_t c = 0; c < n; ++c)
              mismatches +=
                  tree::visible(t, r, c) != (ref.dense[static_cast<std::size_t>(r * n + c)] != 0)
                      ? 1
                      : 0;
          }
          CHECK(mismatches == 0);
        }
      }
    }
  }
  CHECK(trees == 4 * 42);
}

TEST_CASE("mask: sibling lists do not change the masks", "[tree][mask]") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    const auto n = static_cast<std::int32_t>(1 + rng() % 80);
    const std::vector<std::int32_t> parents = random_parents(rng, n, trial % 4);
    tree::token_tree tt;
    REQUIRE(tt.assign(std::vector<specdec::token_id>(parents.size(), 0), parents).ok());
    const tree::tree_view bare{parents.data(), n};
    std::vector<std::uint32_t> a(static_cast<std::size_t>(n * tree::mask_words(n)));
    std::vector<std::uint32_t> b(a.size());
    REQUIRE(tree::build_packed_mask(bare, a).ok());
    REQUIRE(tree::build_packed_mask(tt.view(), b).ok());
    CHECK(a == b);
  }
}

TEST_CASE("mask: a known tree gives the expected bits", "[tree][mask]") {
  // 0 -> {1, 2}; 1 -> {3}; 2 -> {4}
  const std::int32_t parents[] = {-1, 0, 0, 1, 2};
  const tree::tree_view t{parents, 5};
  const std::uint8_t expected[] = {1, 0, 0, 0, 0, //
                                   1, 1, 0, 0, 0, //
                                   1, 0, 1, 0, 0, //
                                   1, 1, 0, 1, 0, //
                                   1, 0, 1, 0, 1};
  std::vector<std::uint8_t> dense(25);
  REQUIRE(tree::build_tree_mask(t, dense).ok());
  CHECK(dense == std::vector<std::uint8_t>(std::begin(expected), std::end(expected)));
  std::vector<std::uint32_t> packed(5);
  REQUIRE(tree::build_packed_mask(t, packed).ok());
  CHECK(packed == std::vector<std::uint32_t>{0b1u, 0b11u, 0b101u, 0b1011u, 0b10101u});
  // Prefix of 30: node k is column 30 + k, so nodes 2.. fall in the second word.
  std::vector<std::uint32_t> with_prefix(10);
  REQUIRE(tree::build_packed_mask_with_prefix(t, 30, with_prefix).ok());
  CHECK(with_prefix[6] == 0xffffffffu); // row 3: prefix + node 0 + node 1 (column 31)
  CHECK(with_prefix[7] == 0b10u);       // row 3: node 3 at column 33
  CHECK(with_prefix[8] == 0x7fffffffu); // row 4: prefix + node 0, not node 1
  CHECK(with_prefix[9] == 0b101u);      // row 4: nodes 2 and 4 at columns 32, 34
  std::vector<index_t> pos(5);
  REQUIRE(tree::positions(t, 100, pos).ok());
  CHECK(pos == std::vector<index_t>{100, 101, 101, 102, 102});
}

TEST_CASE("mask: positions are base plus depth on random trees", "[tree][mask][positions]") {
  std::mt19937 rng(99);
  for (int trial = 0; trial < 100; ++trial) {
    const auto n = static_cast<std::int32_t>(1 + rng() % 100);
    const std::vector<std::int32_t> parents = random_parents(rng, n, trial % 4);
    const tree::tree_view t{parents.data(), n};
    const auto base = static_cast<index_t>(rng() % 5000);
    std::vector<index_t> pos(static_cast<std::size_t>(n) + 1, -7);
    REQUIRE(tree::positions(t, base, pos).ok());
    CHECK(pos.back() == -7);
    for (std::int32_t j = 0; j < n; ++j)
      CHECK(pos[static_cast<std::size_t>(j)] == base + t.depth(j));
  }
}

TEST_CASE("mask: malformed trees give malformed_tree and write nothing", "[tree][mask]") {
  const std::vector<std::vector<std::int32_t>> bad = {
      {0, 0}, {-1, -1}, {-1, 5}, {-1, 2, 0}, {-1, 2, 1}, {-1, 1}};
  for (const auto& p : bad) {
    const tree::tree_view t{p.data(), static_cast<std::int32_t>(p.size())};
    std::vector<std::uint8_t> dense(64, 9);
    std::vector<std::uint32_t> packed(64, 9u);
    std::vector<index_t> pos(64, 9);
    CHECK(tree::build_dense_mask(t, 3, dense).code == errc::malformed_tree);
    CHECK(tree::build_tree_mask(t, dense).code == errc::malformed_tree);
    CHECK(tree::build_packed_mask(t, packed).code == errc::malformed_tree);
    CHECK(tree::build_packed_mask_with_prefix(t, 3, packed).code == errc::malformed_tree);
    CHECK(tree::positions(t, 0, pos).code == errc::malformed_tree);
    CHECK(dense == std::vector<std::uint8_t>(64, 9));
    CHECK(packed == std::vector<std::uint32_t>(64, 9u));
    CHECK(pos == std::vector<index_t>(64, 9));
  }
  std::vector<std::uint8_t> dense(4);
  std::vector<std::uint32_t> packed(4);
  CHECK(tree::build_tree_mask(tree::tree_view{}, dense).code == errc::malformed_tree);
  CHECK(tree::build_packed_mask(tree::tree_view{}, packed).code == errc::malformed_tree);
  // Sibling lists that disagree with the parents are malformed too.
  const std::int32_t parents[] = {-1, 0};
  const std::int32_t fc[] = {-1, -1};
  const std::int32_t ns[] = {-1, -1};
  CHECK(tree::build_packed_mask(tree::tree_view{parents, 2, fc, ns}, packed).code
        == errc::malformed_tree);
}

TEST_CASE("mask: short spans give shape_mismatch and write nothing", "[tree][mask]") {
  std::mt19937 rng(5);
  for (const std::int32_t n : {1, 5, 32, 33, 65}) {
    const std::vector<std::int32_t> parents = random_parents(rng, n, 0);
    const tree::tree_view t{parents.data(), n};
    for (const index_t prefix : {index_t{0}, index_t{3}, index_t{40}}) {
      const auto dense_need = static_cast<std::size_t>(n * (prefix + n));
      const auto packed_need = static_cast<std::size_t>(n * tree::prefix_mask_words(prefix, n));
      std::vector<std::uint8_t> dense(dense_need - 1, 9);
      std::vector<std::uint32_t> packed(packed_need - 1, 9u);
      CHECK(tree::build_dense_mask(t, prefix, dense).code == errc::shape_mismatch);
      CHECK(tree::build_packed_mask_with_prefix(t, prefix, packed).code == errc::shape_mismatch);
      CHECK(dense == std::vector<std::uint8_t>(dense_need - 1, 9));
      CHECK(packed == std::vector<std::uint32_t>(packed_need - 1, 9u));
      CHECK(tree::build_dense_mask(t, prefix, {}).code == errc::shape_mismatch);
      CHECK(tree::build_packed_mask_with_prefix(t, prefix, {}).code == errc::shape_mismatch);
    }
    std::vector<std::uint8_t> dense(static_cast<std::size_t>(n * n) - 1);
    std::vector<std::uint32_t> packed(static_cast<std::size_t>(n * tree::mask_words(n)) - 1);
    std::vector<index_t> pos(static_cast<std::size_t>(n) - 1);
    CHECK(tree::build_tree_mask(t, dense).code == errc::shape_mismatch);
    CHECK(tree::build_packed_mask(t, packed).code == errc::shape_mismatch);
    CHECK(tree::positions(t, 0, pos).code == errc::shape_mismatch);
  }
}

TEST_CASE("mask: negative prefix or base is invalid, huge ones overflow", "[tree][mask]") {
  const std::int32_t parents[] = {-1, 0, 1};
  const tree::tree_view t{parents, 3};
  std::vector<std::uint8_t> dense(64);
  std::vector<std::uint32_t> packed(64);
  std::vector<index_t> pos(3);
  CHECK(tree::build_dense_mask(t, -1, dense).code == errc::invalid_argument);
  CHECK(tree::build_packed_mask_with_prefix(t, -1, packed).code == errc::invalid_argument);
  CHECK(tree::positions(t, -1, pos).code == errc::invalid_argument);
  // Hidden from the optimiser: with the constant propagated, g++ -O3 warns about the writing
  // loops (which the overflow check skips) as if they ran (-Waggressive-loop-optimizations).
  index_t huge = std::numeric_limits<index_t>::max() - 1;
  asm volatile("" : "+r"(huge));
  CHECK(tree::build_dense_mask(t, huge, dense).code == errc::overflow);
  CHECK(tree::build_dense_mask(t, huge / 2, dense).code == errc::overflow);
  CHECK(tree::build_packed_mask_with_prefix(t, huge, packed).code == errc::overflow);
  CHECK(tree::positions(t, huge, pos).code == errc::overflow);
  REQUIRE(tree::positions(t, std::numeric_limits<index_t>::max() - 3, pos).ok());
  CHECK(pos[2] == std::numeric_limits<index_t>::max() - 1);
}

TEST_CASE("mask: shared functions return 0 or false outside the tree", "[tree][mask]") {
  const std::int32_t parents[] = {-1, 0, 1};
  const tree::tree_view t{parents, 3};
  CHECK(tree::mask_word(t, 2, 0) == 0b111u);
  CHECK(tree::mask_word(t, 3, 0) == 0u);
  CHECK(tree::mask_word(t, -1, 0) == 0u);
  CHECK(tree::mask_word(t, 2, 1) == 0u);
  CHECK(tree::mask_word(t, 2, -1) == 0u);
  CHECK(tree::mask_word_with_prefix(t, 2, 2, 0) == 0b11111u);
  CHECK(tree::mask_word_with_prefix(t, 2, 2, 1) == 0u);
  CHECK(tree::mask_word_with_prefix(t, -2, 2, 0) == 0u);
  CHECK_FALSE(tree::visible(t, 2, 3));
  CHECK_FALSE(tree::visible(t, -1, 0));
  CHECK(tree::visible_with_prefix(t, 2, 0, 1));
  CHECK_FALSE(tree::visible_with_prefix(t, 2, 0, 5));
  CHECK_FALSE(tree::visible_with_prefix(t, 2, 0, -1));
}

TEST_CASE("mask: shared functions terminate on malformed trees", "[tree][mask]") {
  // A cycle and a forward parent: the walks stop at the first link that does not go down.
  const std::int32_t cycle[] = {-1, 2, 1};
  const tree::tree_view c{cycle, 3};
  CHECK(tree::mask_word(c, 1, 0) == 0b10u);
  CHECK_FALSE(tree::visible(c, 1, 0));
  CHECK(tree::mask_word_with_prefix(c, 4, 2, 0) == 0b1101111u);
  const std::int32_t out_of_range[] = {-1, -5, 0};
  const tree::tree_view o{out_of_range, 3};
  CHECK(tree::mask_word(o, 1, 0) == 0b10u);
  CHECK(tree::mask_word_with_prefix(o, 1, 1, 0) == 0b101u);
}
