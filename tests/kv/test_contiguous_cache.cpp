// SPDX-License-Identifier: Apache-2.0
//
// kv::contiguous_cache against a reference model (a vector of per-position feature vectors per
// plane): random sequences of writes, extends, rollbacks and position copies must leave identical
// committed contents, lengths and statuses, for both plane layouts.
#include <specdec/kv/contiguous_cache.hpp>

#include <catch2/catch.hpp>

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
