// SPDX-License-Identifier: Apache-2.0
//
// kv::paged_cache: fork / copy-on-write / rollback freeing whole blocks / pool exhaustion /
// keep_path, the paged_sequence adapter, and a property test: thousands of random appends,
// tree writes + keep_path, rollbacks, forks, overwrites and releases checked after every
// operation against a reference model (per sequence, per plane, a flat vector of features) and
// against reference counts recomputed from the block tables.
#include <specdec/kv/concepts.hpp>
#include <specdec/kv/paged_cache.hpp>

#include <catch2/catch.hpp>

#include "support/sanitizer.hpp"
#include <cstdint>
#include <iterator>
#include <map>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace {

using specdec::errc;
using specdec::index_t;
using specdec::status;
namespace kv = specdec::kv;
using cache_t = kv::paged_cache<float>;

// Sanitized builds (about 10x slower) run a fifth of the random operations.
constexpr int property_ops = specdec_test::by_build<int>(2000, 400);

float read(const cache_t& c, kv::sequence_id s, index_t pos, index_t p, index_t f) {
  const float* x = c.slot(s, pos, p);
  REQUIRE(x != nullptr);
  return x[f * c.feature_stride(p)];
}

// Writes `v + 100 * p + f` to every feature of position pos of every plane.
void write(cache_t& c, kv::sequence_id s, index_t pos, float v) {
  for (index_t p = 0; p < c.num_planes(); ++p) {
    float* x = c.writable(s, pos, p);
    REQUIRE(x != nullptr);
    for (index_t f = 0; f < c.desc(p).width; ++f)
      x[f * c.feature_stride(p)] = v + static_cast<float>(100 * p + f);
  }
}

// The value write() stored, read back from plane 0 feature 0.
float value(const cache_t& c, kv::sequence_id s, index_t pos) {
  return read(c, s, pos, 0, 0);
}

// Reference contents of one sequence: plane -> position-major features [pos * width + f].
struct ref_seq {
  std::vector<std::vector<float>> planes;
  index_t length = 0;
};

struct reference {
  std::vector<kv::plane_desc> descs;
  std::map<kv::sequence_id, ref_seq> seqs;

  ref_seq empty() const {
    return ref_seq{std::vector<std::vector<float>>(descs.size()), 0};
  }
  // Appends a position whose features are drawn from `next`.
  void push(ref_seq& r, float& next) const {
    for (std::size_t p = 0; p < descs.size(); ++p)
      for (index_t f = 0; f < descs[p].width; ++f)
        r.planes[p].push_back(next++);
    ++r.length;
  }
  void resize(ref_seq& r, index_t n) const {
    for (std::size_t p = 0; p < descs.size(); ++p)
      r.planes[p].resize(static_cast<std::size_t>(n * descs[p].width));
    r.length = n;
  }
  float at(const ref_seq& r, std::size_t p, index_t pos, index_t f) const {
    return r.planes[p][static_cast<std::size_t>(pos * descs[p].width + f)];
  }
};

// Writes reference position `pos` of r into the cache (copy-on-write through writable()).
void store(cache_t& c, kv::sequence_id s, const reference& ref, const ref_seq& r, index_t pos) {
  for (std::size_t p = 0; p < ref.descs.size(); ++p) {
    float* x = c.writable(s, pos, static_cast<index_t>(p));
    REQUIRE(x != nullptr);
    for (index_t f = 0; f < ref.descs[p].width; ++f)
      x[f * c.feature_stride(static_cast<index_t>(p))] = ref.at(r, p, pos, f);
  }
}

index_t blocks_for(index_t n, index_t bs) {
  return (n + bs - 1) / bs;
}

// Every live sequence equals the reference; tables have the minimal size; reference counts equal
// the number of table entries holding each block; free blocks are exactly the unreferenced ones.
void check_all(const cache_t& c, const reference& ref) {
  REQUIRE(c.num_sequences() == static_cast<index_t>(ref.seqs.size()));
  std::vector<std::int32_t> holders(static_cast<std::size_t>(c.num_blocks()), 0);
  for (const auto& [s, r] : ref.seqs) {
    REQUIRE(c.contains(s));
    REQUIRE(c.length(s) == r.length);
    const std::span<const kv::block_id> table = c.block_table(s);
    REQUIRE(static_cast<index_t>(table.size()) == blocks_for(r.length, c.block_size()));
    for (const kv::block_id b : table) {
      REQUIRE(b >= 0);
      REQUIRE(b < c.num_blocks());
      ++holders[static_cast<std::size_t>(b)];
    }
    for (std::size_t p = 0; p < ref.descs.size(); ++p)
      for (index_t pos = 0; pos < r.length; ++pos)
        for (index_t f = 0; f < ref.descs[p].width; ++f)
          if (read(c, s, pos, static_cast<index_t>(p), f) != ref.at(r, p, pos, f)) {
            INFO("seq " << s << " plane " << p << " pos " << pos << " feature " << f);
            REQUIRE(read(c, s, pos, static_cast<index_t>(p), f) == ref.at(r, p, pos, f));
          }
  }
  index_t unreferenced = 0;
  for (kv::block_id b = 0; b < c.num_blocks(); ++b) {
    REQUIRE(c.refcount(b) == holders[static_cast<std::size_t>(b)]);
    unreferenced += holders[static_cast<std::size_t>(b)] == 0 ? 1 : 0;
  }
  REQUIRE(c.free_blocks() == unreferenced);
  REQUIRE(c.used_blocks() == c.num_blocks() - unreferenced);
}

// Shared blocks of s holding a position in [begin, end): what a copy-on-write of the range needs.
index_t shared_in(const cache_t& c, kv::sequence_id s, index_t begin, index_t end) {
  if (begin >= end)
    return 0;
  const std::span<const kv::block_id> table = c.block_table(s);
  index_t n = 0;
  for (index_t i = begin / c.block_size(); i < blocks_for(end, c.block_size()); ++i)
    n += c.refcount(table[static_cast<std::size_t>(i)]) > 1 ? 1 : 0;
  return n;
}

std::vector<std::int32_t> root_path(const std::vector<std::int32_t>& parents, std::int32_t node) {
  std::vector<std::int32_t> path;
  for (std::int32_t j = node; j >= 0; j = parents[static_cast<std::size_t>(j)])
    path.insert(path.begin(), j);
  return path;
}

const kv::plane_desc two_planes[] = {{2, kv::plane_layout::position_major},
                                     {3, kv::plane_layout::feature_major}};

} // namespace

TEST_CASE("paged cache: allocate validates its arguments", "[kv][paged]") {
  cache_t c;
  const kv::plane_desc bad{0, kv::plane_layout::position_major};
  CHECK(c.allocate(0, 4, two_planes).code == errc::invalid_argument);
  CHECK(c.allocate(4, 0, two_planes).code == errc::invalid_argument);
  CHECK(c.allocate(4, 4, {}).code == errc::invalid_argument);
  CHECK(c.allocate(4, 4, {&bad, 1}).code == errc::invalid_argument);
  CHECK(c.allocate(index_t{1} << 40, 4, two_planes).code == errc::overflow);
  const kv::plane_desc huge{index_t{1} << 40, kv::plane_layout::position_major};
  CHECK(c.allocate(1 << 20, 1 << 10, {&huge, 1}).code == errc::overflow);
  CHECK(c.num_blocks() == 0);
  REQUIRE(c.allocate(6, 4, two_planes).ok());
  CHECK(c.num_blocks() == 6);
  CHECK(c.block_size() == 4);
  CHECK(c.free_blocks() == 6);
  CHECK(c.used_blocks() == 0);
  CHECK(c.num_planes() == 2);
  CHECK(c.feature_stride(0) == 1);
  CHECK(c.feature_stride(1) == 4);
  CHECK(c.num_sequences() == 0);
}

TEST_CASE("paged cache: extend takes blocks, rollback frees whole blocks", "[kv][paged]") {
  cache_t c;
  REQUIRE(c.allocate(6, 4, two_planes).ok());
  const kv::sequence_id s = c.add_sequence();
  CHECK(c.contains(s));
  CHECK(c.length(s) == 0);
  REQUIRE(c.extend(s, 10).ok()); // 3 blocks
  CHECK(c.block_table(s).size() == 3);
  CHECK(c.free_blocks() == 3);
  CHECK(c.reserved(s) == 12);
  for (index_t pos = 0; pos < 10; ++pos)
    write(c, s, pos, static_cast<float>(pos));
  CHECK(c.extend(s, 9).code == errc::invalid_argument);
  REQUIRE(c.rollback(s, 9).ok()); // still 3 blocks
  CHECK(c.free_blocks() == 3);
  REQUIRE(c.rollback(s, 8).ok()); // block 2 no longer covered
  CHECK(c.block_table(s).size() == 2);
  CHECK(c.free_blocks() == 4);
  REQUIRE(c.rollback(s, 5).ok());
  CHECK(c.free_blocks() == 4);
  REQUIRE(c.rollback(s, 4).ok());
  CHECK(c.free_blocks() == 5);
  CHECK(c.rollback(s, 5).code == errc::invalid_argument);
  CHECK(c.rollback(s, -1).code == errc::invalid_argument);
  for (index_t pos = 0; pos < 4; ++pos)
    CHECK(value(c, s, pos) == static_cast<float>(pos));
  REQUIRE(c.rollback(s, 0).ok());
  CHECK(c.free_blocks() == 6);
  CHECK(c.block_table(s).empty());

  SECTION("reserve covers scratch without committing it") {
    REQUIRE(c.reserve(s, 5).ok());
    CHECK(c.length(s) == 0);
    CHECK(c.reserved(s) == 8);
    CHECK(c.slot(s, 7, 1) != nullptr);
    CHECK(c.slot(s, 8, 1) == nullptr);
    CHECK(c.reserve(s, -1).code == errc::invalid_argument);
    REQUIRE(c.rollback(s, 0).ok()); // drops the reservation too
    CHECK(c.free_blocks() == 6);
  }
}

TEST_CASE("paged cache: fork shares blocks, writes copy on write", "[kv][paged]") {
  cache_t c;
  REQUIRE(c.allocate(8, 4, two_planes).ok());
  const kv::sequence_id a = c.add_sequence();
  REQUIRE(c.extend(a, 6).ok());
  for (index_t pos = 0; pos < 6; ++pos)
    write(c, a, pos, static_cast<float>(pos));
  kv::sequence_id b = -1;
  REQUIRE(c.fork(a, b).ok());
  CHECK(b != a);
  CHECK(c.num_sequences() == 2);
  CHECK(c.length(b) == 6);
  const std::vector<kv::block_id> shared(c.block_table(a).begin(), c.block_table(a).end());
  CHECK(std::vector<kv::block_id>(c.block_table(b).begin(), c.block_table(b).end()) == shared);
  CHECK(c.refcount(shared[0]) == 2);
  CHECK(c.refcount(shared[1]) == 2);
  CHECK(c.free_blocks() == 6);

  // The child appends into the shared partial block: it gets its own copy of block 1.
  REQUIRE(c.extend(b, 7).ok());
  write(c, b, 6, 60.0f);
  CHECK(c.block_table(b)[0] == shared[0]);
  CHECK(c.block_table(b)[1] != shared[1]);
  CHECK(c.refcount(shared[1]) == 1);
  CHECK(c.refcount(c.block_table(b)[1]) == 1);
  CHECK(c.free_blocks() == 5);
  for (index_t pos = 0; pos < 6; ++pos) {
    CHECK(value(c, b, pos) == static_cast<float>(pos)); // the copy kept the prefix
    CHECK(value(c, a, pos) == static_cast<float>(pos));
    CHECK(read(c, b, pos, 1, 2) == static_cast<float>(pos) + 102.0f);
  }
  CHECK(value(c, b, 6) == 60.0f);

  // The parent overwrites a shared position: the child does not see it.
  write(c, a, 1, -1.0f);
  CHECK(value(c, a, 1) == -1.0f);
  CHECK(value(c, b, 1) == 1.0f);
  CHECK(c.refcount(shared[0]) == 1);
  CHECK(c.free_blocks() == 4);
  // Writing a private block copies nothing.
  write(c, a, 2, -2.0f);
  CHECK(c.free_blocks() == 4);

  // Rolling back a forked sequence decrements without freeing until the last holder goes.
  kv::sequence_id d = -1;
  REQUIRE(c.fork(b, d).ok());
  REQUIRE(c.rollback(b, 0).ok());
  CHECK(c.free_blocks() == 4);
  REQUIRE(c.release(d).ok());
  CHECK(c.free_blocks() == 6); // b's two blocks freed (a holds its own two)
  CHECK(c.release(d).code == errc::invalid_argument);
  CHECK(c.fork(d, d).code == errc::invalid_argument);
  REQUIRE(c.release(b).ok());
  REQUIRE(c.release(a).ok());
  CHECK(c.free_blocks() == 8);
  CHECK(c.num_sequences() == 0);
  // Released ids are reused.
  const kv::sequence_id e = c.add_sequence();
  CHECK((e == a || e == b || e == d));
}

TEST_CASE("paged cache: an exhausted pool fails with overflow and changes nothing", "[kv][paged]") {
  cache_t c;
  REQUIRE(c.allocate(3, 2, two_planes).ok());
  const kv::sequence_id a = c.add_sequence();
  REQUIRE(c.extend(a, 5).ok()); // all 3 blocks
  for (index_t pos = 0; pos < 5; ++pos)
    write(c, a, pos, static_cast<float>(pos));
  CHECK(c.free_blocks() == 0);
  CHECK(c.extend(a, 7).code == errc::overflow);
  CHECK(c.length(a) == 5);
  CHECK(c.extend(a, 6).ok()); // fits the last block's free row
  kv::sequence_id b = -1;
  REQUIRE(c.fork(a, b).ok()); // forking needs no block
  CHECK(c.writable(b, 0, 0) == nullptr);
  CHECK(c.make_writable(b, 0, 3).code == errc::overflow);
  const std::int32_t path[] = {0, 2};
  CHECK(c.keep_path(b, 1, path).code == errc::overflow);
  CHECK(c.length(b) == 6);
  CHECK(c.copy_position(b, 3, 0).code == errc::overflow);
  for (index_t pos = 0; pos < 5; ++pos) {
    CHECK(value(c, a, pos) == static_cast<float>(pos));
    CHECK(value(c, b, pos) == static_cast<float>(pos));
  }
  for (kv::block_id k = 0; k < 3; ++k)
    CHECK(c.refcount(k) == 2);
  // Once a's copies are gone, b writes in place.
  REQUIRE(c.release(a).ok());
  CHECK(c.writable(b, 0, 0) != nullptr);
  REQUIRE(c.keep_path(b, 1, path).ok());
  CHECK(c.length(b) == 3);
  CHECK(value(c, b, 2) == 3.0f);
  CHECK(c.free_blocks() == 1);
}

TEST_CASE("paged cache: keep_path compacts across blocks and leaves forks intact", "[kv][paged]") {
  cache_t c;
  REQUIRE(c.allocate(16, 3, two_planes).ok());
  const kv::sequence_id a = c.add_sequence();
  const index_t base = 2;
  REQUIRE(c.extend(a, base + 8).ok());
  for (index_t pos = 0; pos < base + 8; ++pos)
    write(c, a, pos, static_cast<float>(10 * pos));
  kv::sequence_id b = -1;
  REQUIRE(c.fork(a, b).ok()); // b keeps the whole tree
  const std::int32_t path[] = {0, 1, 3, 6};
  REQUIRE(c.keep_path(a, base, path).ok());
  CHECK(c.length(a) == base + 4);
  CHECK(c.block_table(a).size() == 2);
  const index_t from[] = {0, 1, 2, 3, 5, 8};
  for (index_t pos = 0; pos < 6; ++pos) {
    CHECK(value(c, a, pos) == static_cast<float>(10 * from[pos]));
    CHECK(read(c, a, pos, 1, 2) == static_cast<float>(10 * from[pos] + 102));
  }
  for (index_t pos = 0; pos < base + 8; ++pos)
    CHECK(value(c, b, pos) == static_cast<float>(10 * pos));
  // Block 0 (slots 0..2) had no destination that moved: it is still shared.
  CHECK(c.block_table(a)[0] == c.block_table(b)[0]);
  CHECK(c.block_table(a)[1] != c.block_table(b)[1]);

  SECTION("bad paths change nothing") {
    const std::vector<std::vector<std::int32_t>> bad = {
        {}, {1}, {0, 0}, {0, 2, 1}, {0, 4}, {0, 1, 2, 3, 4}};
    for (const auto& p : bad) {
      CHECK(c.keep_path(a, base, p).code == errc::invalid_argument);
      CHECK(c.length(a) == base + 4);
    }
    CHECK(c.keep_path(a, -1, path).code == errc::invalid_argument);
    CHECK(c.keep_path(99, 0, path).code == errc::invalid_argument);
    for (index_t pos = 0; pos < 6; ++pos)
      CHECK(value(c, a, pos) == static_cast<float>(10 * from[pos]));
  }
  SECTION("copy_position copies on write") {
    REQUIRE(c.copy_position(b, 9, 0).ok());
    CHECK(value(c, b, 0) == 90.0f);
    CHECK(value(c, a, 0) == 0.0f);
    CHECK(c.copy_position(b, 0, 12).code == errc::invalid_argument);
  }
}

TEST_CASE("paged cache: paged_sequence is a tree_kv_cache over one sequence", "[kv][paged]") {
  static_assert(kv::kv_cache<kv::paged_sequence<float>>);
  static_assert(kv::tree_kv_cache<kv::paged_sequence<float>>);
  static_assert(specdec::diag::check_tree_kv_cache<kv::paged_sequence<float>>());
  cache_t c;
  REQUIRE(c.allocate(4, 4, two_planes).ok());
  kv::paged_sequence<float> seq(c, c.add_sequence());
  CHECK(kv::capability_of(seq).kind == kv::rollback_class::partial);
  CHECK(seq.length() == 0);
  CHECK(seq.capacity() == 16);
  REQUIRE(seq.extend(6).ok());
  CHECK(seq.capacity() == 16);
  for (index_t pos = 0; pos < 6; ++pos) {
    REQUIRE(seq.make_writable(pos, pos + 1).ok());
    float* x = seq.writable(pos, 0);
    REQUIRE(x != nullptr);
    x[0] = static_cast<float>(pos);
  }
  const std::int32_t path[] = {0, 2, 4};
  REQUIRE(seq.keep_path(1, path).ok());
  CHECK(seq.length() == 4);
  CHECK(seq.slot(2, 0)[0] == 3.0f);
  CHECK(seq.slot(3, 0)[0] == 5.0f);
  REQUIRE(seq.rollback(1).ok());
  CHECK(seq.length() == 1);
  CHECK(c.free_blocks() == 3);
  CHECK(seq.reserve(9).ok());
  CHECK(&seq.cache() == &c);
  CHECK(c.length(seq.id()) == 1);
}

TEST_CASE("paged cache: random operations match a reference model", "[kv][paged][property]") {
  const index_t block_sizes[] = {1, 2, 3, 4, 7, 8};
  std::mt19937 rng(777);
  auto pick = [&rng](index_t n) { // uniform in [0, n)
    return static_cast<index_t>(rng() % static_cast<std::uint32_t>(n));
  };
  std::int64_t ops_ok = 0, ops_failed = 0, cows = 0;
  for (const index_t bs : block_sizes) {
    INFO("block size " << bs);
    const index_t num_blocks = 40 / bs + 6;
    cache_t c;
    REQUIRE(c.allocate(num_blocks, bs, two_planes).ok());
    reference ref;
    ref.descs.assign(std::begin(two_planes), std::end(two_planes));
    float next = 1.0f;
    auto random_seq = [&]() -> kv::sequence_id {
      auto it = ref.seqs.begin();
      std::advance(it, pick(static_cast<index_t>(ref.seqs.size())));
      return it->first;
    };
    for (int op = 0; op < property_ops; ++op) {
      const index_t what = ref.seqs.empty() ? 0 : pick(15);
      INFO("op " << op << " kind " << what);
      // One operation; a `return` ends it early (the checks below still run).
      [&] {
        if (what == 0) { // add
          if (ref.seqs.size() < 8) {
            const kv::sequence_id s = c.add_sequence();
            REQUIRE(ref.seqs.count(s) == 0);
            ref.seqs[s] = ref.empty();
          }
        } else if (what <= 4) { // append 1..6 written positions
          const kv::sequence_id s = random_seq();
          ref_seq& r = ref.seqs[s];
          const index_t old = r.length, m = 1 + pick(6);
          const index_t need =
              blocks_for(old + m, bs) - static_cast<index_t>(c.block_table(s).size());
          const index_t free_before = c.free_blocks();
          const status e = c.extend(s, old + m);
          REQUIRE(e.ok() == (need <= free_before));
          if (!e.ok()) {
            REQUIRE(e.code == errc::overflow);
            ++ops_failed;
          } else {
            const index_t shared = shared_in(c, s, old, old + m);
            const index_t free_now = c.free_blocks();
            const status w = c.make_writable(s, old, old + m);
            REQUIRE(w.ok() == (shared <= free_now));
            if (!w.ok()) {
              REQUIRE(w.code == errc::overflow);
              REQUIRE(c.rollback(s, old).ok());
              ++ops_failed;
            } else {
              cows += shared;
              for (index_t i = 0; i < m; ++i) {
                ref.push(r, next);
                store(c, s, ref, r, old + i);
              }
              ++ops_ok;
            }
          }
        } else if (what <= 7) { // write a tree after the last token, maybe fork, keep a path
          const kv::sequence_id s = random_seq();
          ref_seq& r = ref.seqs[s];
          if (r.length == 0)
            return;
          const index_t len = r.length, base = len - 1;
          const std::int32_t n = 1 + static_cast<std::int32_t>(pick(12));
          std::vector<std::int32_t> parents(static_cast<std::size_t>(n), -1);
          for (std::int32_t j = 1; j < n; ++j)
            parents[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(pick(j));
          if (!c.extend(s, base + n).ok()) {
            ++ops_failed;
            return;
          }
          if (!c.make_writable(s, len, base + n).ok()) {
            REQUIRE(c.rollback(s, len).ok());
            ++ops_failed;
            return;
          }
          for (std::int32_t j = 1; j < n; ++j) {
            ref.push(r, next);
            store(c, s, ref, r, base + j);
          }
          if (pick(3) == 0 && ref.seqs.size() < 8) { // a fork keeps the whole tree
            kv::sequence_id child = -1;
            REQUIRE(c.fork(s, child).ok());
            ref.seqs[child] = ref.seqs[s];
          }
          ref_seq& t = ref.seqs[s]; // the map may have grown: look s up again
          if (pick(10) == 0) {      // a malformed path is rejected
            const std::vector<std::int32_t> bad =
                pick(2) ? std::vector<std::int32_t>{0, 0} : std::vector<std::int32_t>{0, n};
            REQUIRE(c.keep_path(s, base, bad).code == errc::invalid_argument);
            ++ops_failed;
            return;
          }
          const std::vector<std::int32_t> path =
              root_path(parents, static_cast<std::int32_t>(pick(n)));
          // Shared destination blocks: what the compaction must copy.
          index_t need = 0, last = -1;
          for (std::size_t d = 1; d < path.size(); ++d) {
            if (path[d] == static_cast<std::int32_t>(d))
              return;
            const index_t i = (base + static_cast<index_t>(d)) / bs;
            if (i != last && c.refcount(c.block_table(s)[static_cast<std::size_t>(i)]) > 1)
              ++need;
            last = i;
          }
          const bool fits = need <= c.free_blocks();
          const status k = c.keep_path(s, base, path);
          REQUIRE(k.ok() == fits);
          if (!k.ok()) {
            REQUIRE(k.code == errc::overflow);
            ++ops_failed;
          } else {
            ref_seq g = ref.empty();
            for (std::size_t p = 0; p < ref.descs.size(); ++p) {
              const std::size_t w = static_cast<std::size_t>(ref.descs[p].width);
              for (index_t pos = 0; pos < base + static_cast<index_t>(path.size()); ++pos) {
                const index_t src =
                    pos < base ? pos : base + path[static_cast<std::size_t>(pos - base)];
                for (std::size_t f = 0; f < w; ++f)
                  g.planes[p].push_back(t.planes[p][static_cast<std::size_t>(src) * w + f]);
              }
            }
            g.length = base + static_cast<index_t>(path.size());
            t = std::move(g);
            cows += need;
            ++ops_ok;
          }
        } else if (what <= 9) { // rollback (sometimes out of range)
          const kv::sequence_id s = random_seq();
          ref_seq& r = ref.seqs[s];
          const index_t to = pick(r.length + 3) - 1;
          const status st = c.rollback(s, to);
          REQUIRE(st.ok() == (to >= 0 && to <= r.length));
          if (st.ok())
            ref.resize(r, to);
          else
            REQUIRE(st.code == errc::invalid_argument);
        } else if (what <= 11) { // fork
          if (ref.seqs.size() < 8) {
            const kv::sequence_id s = random_seq();
            kv::sequence_id child = -1;
            REQUIRE(c.fork(s, child).ok());
            REQUIRE(ref.seqs.count(child) == 0);
            ref.seqs[child] = ref.seqs[s];
          }
        } else if (what == 12) { // release (sometimes a dead id)
          if (pick(8) == 0) {
            REQUIRE(c.release(1000).code == errc::invalid_argument);
          } else {
            const kv::sequence_id s = random_seq();
            REQUIRE(c.release(s).ok());
            ref.seqs.erase(s);
          }
        } else { // overwrite a committed position (copy-on-write when shared)
          const kv::sequence_id s = random_seq();
          ref_seq& r = ref.seqs[s];
          if (r.length == 0)
            return;
          const index_t pos = pick(r.length);
          const bool shared = shared_in(c, s, pos, pos + 1) > 0;
          if (shared && c.free_blocks() == 0) {
            REQUIRE(c.writable(s, pos, 0) == nullptr);
            ++ops_failed;
          } else {
            for (std::size_t p = 0; p < ref.descs.size(); ++p)
              for (index_t f = 0; f < ref.descs[p].width; ++f)
                r.planes[p][static_cast<std::size_t>(pos * ref.descs[p].width + f)] = next++;
            store(c, s, ref, r, pos);
            cows += shared ? 1 : 0;
          }
        }
      }();
      check_all(c, ref);
    }
    for (const auto& entry : ref.seqs)
      REQUIRE(c.release(entry.first).ok());
    ref.seqs.clear();
    check_all(c, ref);
    CHECK(c.free_blocks() == num_blocks);
    CHECK(c.num_sequences() == 0);
  }
  INFO("ok " << ops_ok << ", failed " << ops_failed << ", copies " << cows);
  CHECK(ops_ok > property_ops / 2);
  CHECK(ops_failed > 0); // the pool ran out at times
  CHECK(cows > 0);       // shared blocks were copied
}
