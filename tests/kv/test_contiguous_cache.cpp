// SPDX-License-Identifier: Apache-2.0
//
// kv::contiguous_cache against a reference model (a vector of per-position feature vectors per
// plane): random sequences of writes, extends, rollbacks and position copies must leave identical
// committed contents, lengths and statuses, for both plane layouts.
#include <specdec/kv/contiguous_cache.hpp>

#include <catch2/catch.hpp>

#include "support/sanitizer.hpp"
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace {

using specdec::errc;
using specdec::index_t;
namespace kv = specdec::kv;

// Reference: plane -> position -> features. Length is a plain number, as in the real cache.
struct reference {
  std::vector<std::vector<std::vector<float>>> data;
  index_t length = 0;
  index_t capacity = 0;
};

} // namespace

TEST_CASE("kv cache: allocate validates its arguments") {
  kv::contiguous_cache<float> c;
  const kv::plane_desc ok{4, kv::plane_layout::position_major};
  const kv::plane_desc bad{0, kv::plane_layout::position_major};
  CHECK(c.allocate(0, {&ok, 1}).code == errc::invalid_argument);
  CHECK(c.allocate(8, {}).code == errc::invalid_argument);
  CHECK(c.allocate(8, {&bad, 1}).code == errc::invalid_argument);
  const kv::plane_desc huge{index_t{1} << 40, kv::plane_layout::feature_major};
  CHECK(c.allocate(index_t{1} << 30, {&huge, 1}).code == errc::overflow);
  REQUIRE(c.allocate(8, {&ok, 1}).ok());
  CHECK(c.capacity() == 8);
  CHECK(c.length() == 0);
  CHECK(c.num_planes() == 1);
  CHECK(c.at(0, 7, 3) == 0.0f);
}

TEST_CASE("kv cache: extend, rollback and copy_position match a reference model") {
  std::mt19937_64 rng(12345);
  const kv::plane_desc planes[] = {{3, kv::plane_layout::feature_major},
                                   {5, kv::plane_layout::position_major},
                                   {1, kv::plane_layout::feature_major}};
  for (int trial = 0; trial < 50; ++trial) {
    const index_t capacity = 1 + static_cast<index_t>(rng() % 40);
    kv::contiguous_cache<float> c;
    REQUIRE(c.allocate(capacity, planes).ok());
    reference ref;
    ref.capacity = capacity;
    for (const kv::plane_desc& d : planes)
      ref.data.emplace_back(static_cast<std::size_t>(capacity),
                            std::vector<float>(static_cast<std::size_t>(d.width), 0.0f));
    for (int op = 0; op < 400; ++op) {
      const int what = static_cast<int>(rng() % 4);
      const index_t a = static_cast<index_t>(rng() % static_cast<std::uint64_t>(capacity + 3)) - 1;
      const index_t b = static_cast<index_t>(rng() % static_cast<std::uint64_t>(capacity + 3)) - 1;
      if (what == 0 && a >= 0 && a < capacity) { // write a slot (committed or scratch)
        for (index_t p = 0; p < 3; ++p)
          for (index_t f = 0; f < planes[p].width; ++f) {
            const float v = static_cast<float>(rng() % 1000);
            c.at(p, a, f) = v;
            ref.data[static_cast<std::size_t>(p)][static_cast<std::size_t>(a)]
                    [static_cast<std::size_t>(f)] = v;
          }
      } else if (what == 1) {
        const bool ok = a >= ref.length && a <= capacity;
        const specdec::status s = c.extend(a);
        CHECK(s.ok() == ok);
        if (!ok)
          CHECK(s.code == (a < ref.length ? errc::invalid_argument : errc::overflow));
        if (ok)
          ref.length = a;
      } else if (what == 2) {
        const bool ok = a >= 0 && a <= ref.length;
        CHECK(c.rollback(a).ok() == ok);
        if (ok)
          ref.length = a;
      } else {
        const bool ok = a >= 0 && b >= 0 && a < capacity && b < capacity;
        CHECK(c.copy_position(a, b).ok() == ok);
        if (ok)
          for (std::size_t p = 0; p < 3; ++p)
            ref.data[p][static_cast<std::size_t>(b)] = ref.data[p][static_cast<std::size_t>(a)];
      }
      REQUIRE(c.length() == ref.length);
    }
    // Committed contents agree (rolled-back slots may hold poison under extra checks).
    for (index_t p = 0; p < 3; ++p)
      for (index_t pos = 0; pos < ref.length; ++pos)
        for (index_t f = 0; f < planes[p].width; ++f) {
          const float want = ref.data[static_cast<std::size_t>(p)][static_cast<std::size_t>(pos)]
                                     [static_cast<std::size_t>(f)];
          const float got = c.at(p, pos, f);
          if (!std::isnan(got))
            REQUIRE(got == want);
        }
  }
}

TEST_CASE("kv cache: layouts place elements where documented") {
  kv::contiguous_cache<float> c;
  const kv::plane_desc planes[] = {{4, kv::plane_layout::position_major},
                                   {4, kv::plane_layout::feature_major}};
  REQUIRE(c.allocate(10, planes).ok());
  c.at(0, 3, 2) = 1.0f;
  c.at(1, 3, 2) = 2.0f;
  CHECK(c.plane(0)[3 * 4 + 2] == 1.0f);
  CHECK(c.plane(1)[2 * 10 + 3] == 2.0f);
  REQUIRE(c.copy_position(3, 7).ok());
  CHECK(c.plane(0)[7 * 4 + 2] == 1.0f);
  CHECK(c.plane(1)[2 * 10 + 7] == 2.0f);
  REQUIRE(c.extend(5).ok());
  REQUIRE(c.rollback(2).ok());
  CHECK(c.length() == 2);
  c.clear();
  CHECK(c.length() == 0);
  static_assert(kv::kv_cache<kv::contiguous_cache<float>>);
  static_assert(kv::contiguous_cache<float>::rollback_kind == kv::rollback_class::partial);
}

namespace {

// Every element of every plane, in storage order, plus the length: a full snapshot.
std::vector<float> snapshot(const kv::contiguous_cache<float>& c) {
  std::vector<float> out;
  for (index_t p = 0; p < c.num_planes(); ++p)
    for (index_t pos = 0; pos < c.capacity(); ++pos)
      for (index_t f = 0; f < c.desc(p).width; ++f)
        out.push_back(c.at(p, pos, f));
  out.push_back(static_cast<float>(c.length()));
  return out;
}

// Root path of `node` in a parent array, root first.
std::vector<std::int32_t> root_path(const std::vector<std::int32_t>& parents, std::int32_t node) {
  std::vector<std::int32_t> path;
  for (std::int32_t j = node; j >= 0; j = parents[static_cast<std::size_t>(j)])
    path.insert(path.begin(), j);
  return path;
}

// Sanitized builds run fewer random trees.
constexpr int keep_path_trials = specdec_test::by_build<int>(3000, 300);

} // namespace

TEST_CASE("kv cache: keep_path compacts an overlapping path in place", "[kv][contiguous]") {
  kv::contiguous_cache<float> c;
  const kv::plane_desc planes[] = {{2, kv::plane_layout::position_major},
                                   {3, kv::plane_layout::feature_major}};
  REQUIRE(c.allocate(12, planes).ok());
  for (index_t p = 0; p < 2; ++p)
    for (index_t pos = 0; pos < 12; ++pos)
      for (index_t f = 0; f < planes[p].width; ++f)
        c.at(p, pos, f) = static_cast<float>(100 * p + 10 * pos + f);
  const index_t base = 2;
  REQUIRE(c.extend(base + 8).ok()); // root at 2, nodes 1..7 at 3..9
  const std::int32_t path[] = {0, 1, 3, 6};
  REQUIRE(c.keep_path(base, path).ok());
  CHECK(c.length() == base + 4);
  const index_t from[] = {0, 1, 2, 3, 5, 8}; // slots 0..5 now hold these old slots
  for (index_t p = 0; p < 2; ++p)
    for (index_t pos = 0; pos < 6; ++pos)
      for (index_t f = 0; f < planes[p].width; ++f)
        CHECK(c.at(p, pos, f) == static_cast<float>(100 * p + 10 * from[pos] + f));

  SECTION("a root-only path keeps the root") {
    const std::int32_t root[] = {0};
    REQUIRE(c.keep_path(3, root).ok());
    CHECK(c.length() == 4);
    CHECK(c.at(0, 3, 1) == static_cast<float>(10 * 3 + 1));
  }
  SECTION("a path with every node in place copies nothing") {
    const std::int32_t straight[] = {0, 1, 2};
    REQUIRE(c.keep_path(1, straight).ok());
    CHECK(c.length() == 4);
    CHECK(c.at(1, 3, 2) == static_cast<float>(100 + 10 * 3 + 2)); // slot 3 held old slot 3
  }
}

TEST_CASE("kv cache: keep_path rejects bad paths and leaves the cache unchanged",
          "[kv][contiguous]") {
  kv::contiguous_cache<float> c;
  const kv::plane_desc planes[] = {{2, kv::plane_layout::position_major},
                                   {1, kv::plane_layout::feature_major}};
  REQUIRE(c.allocate(10, planes).ok());
  for (index_t pos = 0; pos < 10; ++pos) {
    c.at(0, pos, 0) = static_cast<float>(pos);
    c.at(0, pos, 1) = static_cast<float>(-pos);
    c.at(1, pos, 0) = static_cast<float>(pos * pos);
  }
  REQUIRE(c.extend(8).ok());
  const std::vector<float> before = snapshot(c);
  const std::vector<std::vector<std::int32_t>> bad = {
      {},        // empty
      {1, 2},    // does not start at the root
      {0, 2, 2}, // not strictly increasing
      {0, 3, 1}, // decreasing
      {0, 2, 6}, // base + 6 == length: past the committed slots
      {0, 1, 9}, // far past
      {-1, 0},   // negative node
  };
  for (const auto& path : bad) {
    INFO("path size " << path.size());
    CHECK(c.keep_path(2, path).code == errc::invalid_argument);
    CHECK(snapshot(c) == before);
  }
  const std::int32_t ok[] = {0, 1};
  CHECK(c.keep_path(-1, ok).code == errc::invalid_argument);
  CHECK(c.keep_path(8, ok).code == errc::invalid_argument); // root at length: not committed
  CHECK(c.keep_path(7, ok).code == errc::invalid_argument); // node 1 at 8 == length
  CHECK(snapshot(c) == before);
  CHECK(c.keep_path(6, ok).ok());
  CHECK(c.length() == 8);
}

TEST_CASE("kv cache: keep_path equals a reference gather on random trees", "[kv][contiguous]") {
  std::mt19937 rng(2024);
  const kv::plane_desc planes[] = {{3, kv::plane_layout::feature_major},
                                   {2, kv::plane_layout::position_major}};
  const index_t capacity = 48;
  kv::contiguous_cache<float> c;
  REQUIRE(c.allocate(capacity, planes).ok());
  float next = 1.0f;
  for (int trial = 0; trial < keep_path_trials; ++trial) {
    const index_t base = static_cast<index_t>(rng() % 16);
    const std::int32_t n = 1 + static_cast<std::int32_t>(rng() % 32); // nodes, root included
    std::vector<std::int32_t> parents(static_cast<std::size_t>(n), -1);
    for (std::int32_t j = 1; j < n; ++j) // random topology; deep chains and wide fans both occur
      parents[static_cast<std::size_t>(j)] =
          rng() % 2 ? j - 1 : static_cast<std::int32_t>(rng() % static_cast<std::uint32_t>(j));
    c.clear();
    REQUIRE(c.extend(base + n).ok());
    for (index_t p = 0; p < 2; ++p)
      for (index_t pos = 0; pos < capacity; ++pos)
        for (index_t f = 0; f < planes[p].width; ++f)
          c.at(p, pos, f) = next++;
    const std::vector<float> before = snapshot(c);
    const std::int32_t leaf = static_cast<std::int32_t>(rng() % static_cast<std::uint32_t>(n));
    const std::vector<std::int32_t> path = root_path(parents, leaf);
    REQUIRE(c.keep_path(base, path).ok());
    REQUIRE(c.length() == base + static_cast<index_t>(path.size()));
    for (index_t p = 0; p < 2; ++p)
      for (index_t pos = 0; pos < c.length(); ++pos) {
        const index_t src = pos < base ? pos : base + path[static_cast<std::size_t>(pos - base)];
        for (index_t f = 0; f < planes[p].width; ++f) {
          // snapshot order: plane-major, then position, then feature
          const index_t plane_start = p == 0 ? 0 : capacity * planes[0].width;
          const float want =
              before[static_cast<std::size_t>(plane_start + src * planes[p].width + f)];
          REQUIRE(c.at(p, pos, f) == want);
        }
      }
  }
  static_assert(kv::tree_kv_cache<kv::contiguous_cache<float>>);
  CHECK(kv::capability_of(c) == kv::contiguous_cache<float>::rollback_limit());
  CHECK(kv::capability_of(c).kind == kv::rollback_class::partial);
}
