// SPDX-License-Identifier: Apache-2.0
// The prefix scheduler's selection (bucketed values, lazy sorting, a threshold with the (j, r) tie
// rule, the global search's bound) against the max-heap merge it replaced, kept here verbatim as
// the reference: every output (lengths, throughput, tau, batch, admitted, trace, top-K tau, the
// async scheduler's capacity history) must be bit for bit the same, on random inputs with ties,
// ones, zeros, -0.0, subnormals and ragged rows, for R = 1 .. 4096.

#include <specdec/sched/prefix_scheduler.hpp>

#include <catch2/catch.hpp>

#include "support/sanitizer.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <vector>

using namespace specdec;
using sched::schedule_mode;
using sched::schedule_result;
using sched::schedule_step;
using sched::sps_table;

namespace {

// ---------------------------------------------------------------------------------------------
// The reference: prefix_scheduler's max-heap merge before the selection replaced it (inputs are
// valid here, so its validation is left out).
// ---------------------------------------------------------------------------------------------

class heap_reference {
public:
  void schedule(std::span<const double> c,
                std::span<const index_t> offsets,
                const sps_table& table,
                std::span<index_t> lengths,
                schedule_result* result,
                schedule_mode mode,
                std::vector<schedule_step>* trace) {
    const index_t r_count = static_cast<index_t>(lengths.size());
    std::fill(lengths.begin(), lengths.end(), index_t{0});
    build_heap(c, offsets);
    const std::span<const index_t> tb = table.batches();
    const std::span<const double> tv = table.values();
    const index_t tn = table.size();
    const index_t max_b = table.max_batch();
    index_t batch = r_count;
    double tau = static_cast<double>(r_count);
    index_t cursor = 0;
    double best = sched::prefix_throughput(
        tau, sched::sps_lookup_monotone(tb.data(), tv.data(), tn, batch, &cursor));
    double best_tau = tau;
    index_t best_count = 0;
    index_t count = 0;
    if (trace != nullptr) {
      trace->clear();
      trace->push_back(schedule_step{-1, 0, 0.0, batch, tau, best});
    }
    order_.clear();
    while (!heap_.empty()) {
      if (mode == schedule_mode::global && batch >= max_b)
        break;
      const entry top = heap_.front();
      advance(c, offsets);
      ++batch;
      ++count;
      tau = sched::add_expected_tokens(tau, top.a);
      const double theta = sched::prefix_throughput(
          tau, sched::sps_lookup_monotone(tb.data(), tv.data(), tn, batch, &cursor));
      if (trace != nullptr)
        trace->push_back(schedule_step{top.r, top.j, top.a, batch, tau, theta});
      if (mode == schedule_mode::early_stop) {
        if (!(theta > best))
          break;
        lengths[static_cast<std::size_t>(top.r)] = top.j;
        best = theta;
        best_tau = tau;
        best_count = count;
      } else {
        order_.push_back(top.r);
        if (theta > best) {
          best = theta;
          best_tau = tau;
          best_count = count;
        }
      }
    }
    if (mode == schedule_mode::global)
      for (index_t i = 0; i < best_count; ++i)
        ++lengths[static_cast<std::size_t>(order_[static_cast<std::size_t>(i)])];
    if (result != nullptr)
      *result = schedule_result{best, best_tau, r_count + best_count, best_count};
  }

  void top_k(std::span<const double> c,
             std::span<const index_t> offsets,
             index_t k,
             std::span<index_t> lengths,
             double* expected_tokens) {
    std::fill(lengths.begin(), lengths.end(), index_t{0});
    build_heap(c, offsets);
    double tau = static_cast<double>(lengths.size());
    for (index_t i = 0; i < k && !heap_.empty(); ++i) {
      const entry top = heap_.front();
      advance(c, offsets);
      tau = sched::add_expected_tokens(tau, top.a);
      lengths[static_cast<std::size_t>(top.r)] = top.j;
    }
    if (expected_tokens != nullptr)
      *expected_tokens = tau;
  }

private:
  struct entry {
    double a;
    index_t j;
    index_t r;
  };

  static bool before(const entry& x, const entry& y) noexcept {
    return sched::schedule_before(x.a, x.j, x.r, y.a, y.j, y.r);
  }

  void build_heap(std::span<const double> c, std::span<const index_t> offsets) {
    heap_.clear();
    const index_t r_count = static_cast<index_t>(offsets.size()) - 1;
    for (index_t r = 0; r < r_count; ++r) {
      const index_t o = offsets[static_cast<std::size_t>(r)];
      if (offsets[static_cast<std::size_t>(r) + 1] > o) {
        const double a = specdec::detail::dmul(1.0, c[static_cast<std::size_t>(o)]);
        if (a > 0.0)
          heap_.push_back(entry{a, 1, r});
      }
    }
    const auto n = static_cast<std::ptrdiff_t>(heap_.size());
    for (std::ptrdiff_t i = n / 2 - 1; i >= 0; --i)
      sift_down(static_cast<std::size_t>(i));
  }

  void advance(std::span<const double> c, std::span<const index_t> offsets) {
    entry& top = heap_.front();
    const auto r = static_cast<std::size_t>(top.r);
    const index_t next = offsets[r] + top.j;
    double a = 0.0;
    if (next < offsets[r + 1])
      a = specdec::detail::dmul(top.a, c[static_cast<std::size_t>(next)]);
    if (a > 0.0) {
      top.a = a;
      ++top.j;
    } else {
      top = heap_.back();
      heap_.pop_back();
      if (heap_.empty())
        return;
    }
    sift_down(0);
  }

  void sift_down(std::size_t i) noexcept {
    const std::size_t n = heap_.size();
    const entry x = heap_[i];
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= n)
        break;
      if (child + 1 < n)
        child += static_cast<std::size_t>(before(heap_[child + 1], heap_[child]));
      if (!before(heap_[child], x))
        break;
      heap_[i] = heap_[child];
      i = child;
    }
    heap_[i] = x;
  }

  std::vector<entry> heap_;
  std::vector<index_t> order_;
};

// ---------------------------------------------------------------------------------------------
// Random inputs
// ---------------------------------------------------------------------------------------------

struct problem {
  std::vector<double> c;
  std::vector<index_t> offsets{0};
  [[nodiscard]] std::size_t requests() const {
    return offsets.size() - 1;
  }
};

enum class value_kind : std::uint8_t {
  spread,    // U(0.5, 1) with 5% ones (the benchmark's conditionals)
  uniform,   // U(0, 1)
  ties,      // a small set: repeated products everywhere
  zeros,     // spread with 10% zeros and some -0.0
  tiny,      // spread plus rare tiny values (subnormal products: far apart bit patterns)
  clustered, // 1 - U(0, 1e-12) and one tiny value (all values in one bucket but one)
  ones,      // every c = 1 (all a = 1: one tie)
};
constexpr int value_kinds = 7;

double draw(std::mt19937_64& rng, value_kind kind) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  switch (kind) {
  case value_kind::spread:
    return u(rng) < 0.05 ? 1.0 : 0.5 + 0.5 * u(rng);
  case value_kind::uniform:
    return u(rng);
  case value_kind::ties: {
    static constexpr double set[] = {0.0, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0, 1.0};
    return set[static_cast<std::size_t>(u(rng) * 8.0) % 8];
  }
  case value_kind::zeros: {
    const double x = u(rng);
    return x < 0.08 ? 0.0 : x < 0.1 ? -0.0 : 0.5 + 0.5 * u(rng);
  }
  case value_kind::tiny:
    return u(rng) < 0.02 ? 1e-160 * u(rng) : 0.5 + 0.5 * u(rng);
  case value_kind::clustered:
    return u(rng) < 0.001 ? 1e-300 : 1.0 - 1e-12 * u(rng);
  case value_kind::ones:
    return 1.0;
  }
  return 1.0;
}

/// R requests; gamma fixed (uniform rows, the interleaved path) or ragged in 0 .. max_gamma.
problem
random_problem(std::mt19937_64& rng, index_t r, int max_gamma, bool ragged, value_kind kind) {
  problem p;
  std::uniform_int_distribution<int> gd(0, max_gamma);
  for (index_t i = 0; i < r; ++i) {
    const int g = ragged ? gd(rng) : max_gamma;
    for (int k = 0; k < g; ++k)
      p.c.push_back(draw(rng, kind));
    p.offsets.push_back(static_cast<index_t>(p.c.size()));
  }
  return p;
}

/// Step curves: decaying (unimodal Theta), rising (the global search must visit the whole path),
/// jagged (cliffs), flat (every Theta ties, strict > decides), short (ends before the path does).
sps_table random_table(std::mt19937_64& rng, index_t total, int shape) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<sched::sps_point> p;
  const index_t top = std::max<index_t>(1, total);
  const index_t stride = std::max<index_t>(1, top / 200);
  const double scale = 64.0 + 4096.0 * u(rng);
  for (index_t b = 1; b <= top + stride; b += stride) {
    const double x = static_cast<double>(b);
    double v = 1.0;
    switch (shape) {
    case 0:
      v = 1.0 / (1.0 + x / scale);
      break;
    case 1:
      v = 1.0 + x / scale;
      break;
    case 2:
      v = 0.05 + u(rng);
      break;
    case 3:
      v = 0.5;
      break;
    default:
      if (b > top / 3 + 1)
        return sps_table(p);
      v = 1.0 / (1.0 + x / 512.0);
      break;
    }
    p.push_back({b, v});
  }
  return sps_table(p);
}

bool same_trace(const std::vector<schedule_step>& x, const std::vector<schedule_step>& y) {
  if (x.size() != y.size())
    return false;
  for (std::size_t i = 0; i < x.size(); ++i)
    if (x[i].request != y[i].request || x[i].position != y[i].position || x[i].a != y[i].a
        || x[i].batch != y[i].batch || x[i].expected_tokens != y[i].expected_tokens
        || x[i].throughput != y[i].throughput)
      return false;
  return true;
}

bool same_result(const schedule_result& x, const schedule_result& y) {
  return x.throughput == y.throughput && x.expected_tokens == y.expected_tokens
         && x.batch == y.batch && x.admitted == y.admitted;
}

/// Compares every entry point on one problem; returns the number of mismatches.
int compare_all(sched::prefix_scheduler& s,
                heap_reference& ref,
                const problem& p,
                const sps_table& t,
                std::mt19937_64& rng,
                bool with_trace) {
  int bad = 0;
  const std::size_t r = p.requests();
  for (const auto mode : {schedule_mode::early_stop, schedule_mode::global}) {
    std::vector<index_t> got(r, -1), want(r, -1);
    schedule_result got_res{}, want_res{};
    REQUIRE(s.schedule(p.c, p.offsets, t, got, &got_res, mode).ok());
    ref.schedule(p.c, p.offsets, t, want, &want_res, mode, nullptr);
    bad += static_cast<int>(got != want) + static_cast<int>(!same_result(got_res, want_res));
    if (with_trace) {
      std::vector<schedule_step> got_trace, want_trace;
      std::vector<index_t> got2(r, -1);
      schedule_result got2_res{};
      REQUIRE(s.schedule(p.c, p.offsets, t, got2, &got2_res, mode, &got_trace).ok());
      ref.schedule(p.c, p.offsets, t, want, &want_res, mode, &want_trace);
      bad += static_cast<int>(got2 != want) + static_cast<int>(!same_result(got2_res, want_res))
             + static_cast<int>(!same_trace(got_trace, want_trace));
    }
  }
  const auto n = static_cast<index_t>(p.c.size());
  std::uniform_int_distribution<index_t> kd(0, n + 2);
  for (const index_t k : {index_t{0}, index_t{1}, kd(rng), kd(rng), n / 2, n, n + 5}) {
    std::vector<index_t> got(r, -1), want(r, -1), got_plain(r, -1);
    double got_tau = -1.0, want_tau = -2.0;
    REQUIRE(s.top_k(p.c, p.offsets, k, got, &got_tau).ok());
    REQUIRE(s.top_k(p.c, p.offsets, k, got_plain).ok());
    ref.top_k(p.c, p.offsets, k, want, &want_tau);
    bad += static_cast<int>(got != want) + static_cast<int>(got_plain != want)
           + static_cast<int>(got_tau != want_tau);
  }
  return bad;
}

} // namespace

TEST_CASE("selection equals the heap merge bit for bit: R = 1 .. 4096, every value kind",
          "[dspark][sched][cpu]") {
  std::mt19937_64 rng(20260417);
  sched::prefix_scheduler s; // reused: scratch must not leak between shapes
  heap_reference ref;
  const int reps = specdec_test::by_build(700, 120);
  int bad = 0;
  int cases = 0;
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int rep = 0; rep < reps; ++rep) {
    CAPTURE(rep);
    // R log-uniform in 1 .. 4096, and exactly 4096 now and then.
    const auto r = rep % 50 == 0
                       ? index_t{4096}
                       : static_cast<index_t>(std::exp(u(rng) * std::log(4096.0))) + (rep % 3);
    const auto kind = static_cast<value_kind>(rep % value_kinds);
    const bool ragged = rep % 4 == 1;
    const int gamma = 1 + rep % 9;
    const problem p = random_problem(rng, std::min<index_t>(r, 4096), gamma, ragged, kind);
    const index_t total = static_cast<index_t>(p.requests() + p.c.size());
    const sps_table t = random_table(rng, total, (rep / value_kinds) % 5);
    REQUIRE(t.validate().ok());
    bad += compare_all(s, ref, p, t, rng, p.c.size() < 3000);
    ++cases;
  }
  CHECK(cases == reps);
  CHECK(bad == 0);
}

TEST_CASE("selection: the benchmark's shape (R = 4096, gamma = 7) on every step curve",
          "[dspark][sched][cpu]") {
  std::mt19937_64 rng(7);
  sched::prefix_scheduler s;
  heap_reference ref;
  int bad = 0;
  for (int shape = 0; shape < 5; ++shape)
    for (const auto kind : {value_kind::spread, value_kind::ties, value_kind::zeros}) {
      CAPTURE(shape);
      const problem p = random_problem(rng, 4096, 7, false, kind);
      const sps_table t = random_table(rng, static_cast<index_t>(p.requests() + p.c.size()), shape);
      bad += compare_all(s, ref, p, t, rng, false);
    }
  CHECK(bad == 0);
}

TEST_CASE("selection: ties at the threshold are admitted in (j, r) order", "[dspark][sched][cpu]") {
  // Requests 0, 1 and 3 have a = 0.5, 0.25 (c = 0.5, 0.5), request 2 has a = 0.5, 0.5
  // (c = 0.5, 1): top-K takes the five 0.5's in (j, r) order, so r = 2's j = 2 comes last.
  const std::vector<double> c{0.5, 0.5, 0.5, 0.5, 0.5, 1.0, 0.5, 0.5};
  const std::vector<index_t> offsets{0, 2, 4, 6, 8};
  sched::prefix_scheduler s;
  heap_reference ref;
  for (index_t k = 0; k <= 9; ++k) {
    CAPTURE(k);
    std::vector<index_t> got(4, -1), want(4, -1);
    double got_tau = 0.0, want_tau = 1.0;
    REQUIRE(s.top_k(c, offsets, k, got, &got_tau).ok());
    ref.top_k(c, offsets, k, want, &want_tau);
    CHECK(got == want);
    CHECK(got_tau == want_tau);
  }
  std::vector<index_t> l(4, -1);
  REQUIRE(s.top_k(c, offsets, 3, l).ok());
  CHECK(l == std::vector<index_t>{1, 1, 1, 0}); // j = 1 of r = 0, 1, 2; r = 3's j = 1 waits
  REQUIRE(s.top_k(c, offsets, 5, l).ok());
  CHECK(l == std::vector<index_t>{1, 1, 2, 1}); // then j = 1 of r = 3, j = 2 of r = 2
}

TEST_CASE("selection: scratch reuse from a large problem to small ones and back",
          "[dspark][sched][cpu]") {
  std::mt19937_64 rng(99);
  sched::prefix_scheduler s;
  heap_reference ref;
  int bad = 0;
  for (const index_t r : {4096, 1, 3, 2048, 0, 17, 4096, 5}) {
    const problem p = random_problem(rng, r, 7, r % 2 == 1, value_kind::spread);
    const sps_table t = random_table(rng, static_cast<index_t>(p.requests() + p.c.size()), 0);
    bad += compare_all(s, ref, p, t, rng, true);
  }
  CHECK(bad == 0);
}

TEST_CASE("selection: the async top-K scheduler records the same capacities",
          "[dspark][sched][cpu]") {
  std::mt19937_64 rng(5);
  sched::async_top_k_scheduler s;
  heap_reference ref;
  std::vector<index_t> want_history;
  int bad = 0;
  for (int step = 0; step < 12; ++step) {
    CAPTURE(step);
    const problem p = random_problem(rng, 512 + 97 * step, 6, step % 2 == 0, value_kind::spread);
    const sps_table t = random_table(rng, static_cast<index_t>(p.requests() + p.c.size()), 0);
    std::vector<index_t> got(p.requests(), -1), want(p.requests(), -1);
    schedule_result got_res{}, global{};
    REQUIRE(s.schedule(p.c, p.offsets, t, got, &got_res).ok());
    ref.schedule(p.c, p.offsets, t, want, &global, schedule_mode::global, nullptr);
    want_history.push_back(global.admitted);
    double tau = 0.0;
    if (step < 2) {
      schedule_result res{};
      ref.schedule(p.c, p.offsets, t, want, &res, schedule_mode::early_stop, nullptr);
      tau = res.expected_tokens;
    } else {
      ref.top_k(p.c, p.offsets, want_history[static_cast<std::size_t>(step) - 2], want, &tau);
    }
    bad += static_cast<int>(got != want) + static_cast<int>(got_res.expected_tokens != tau);
  }
  const std::span<const index_t> h = s.capacity_history();
  CHECK(std::vector<index_t>(h.begin(), h.end()) == want_history);
  CHECK(bad == 0);
}

TEST_CASE("selection: the global search's bound with far apart values on a rising curve",
          "[dspark][sched][cpu]") {
  // Values from 1 down to the smallest subnormal (bit patterns far apart: many buckets hold
  // nothing, the last ones lie past the largest value's pattern) and a step
  // curve that keeps rising, so that the first maximum is at the very end of the path and no
  // bound may stop the walk before it.
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  sched::prefix_scheduler s;
  heap_reference ref;
  int bad = 0;
  for (int rep = 0; rep < 20; ++rep) {
    problem p;
    const index_t r = rep < 10 ? 64 + 100 * rep : 2048 + 450 * rep; // up to 2^15 candidates
    for (index_t i = 0; i < r; ++i) {
      for (int k = 0; k < 4; ++k)
        p.c.push_back(u(rng) < 0.05   ? 1e-300 * (0.5 + u(rng))
                      : u(rng) < 0.05 ? std::numeric_limits<double>::denorm_min() * (1 + k)
                                      : 0.5 + 0.2 * u(rng));
      p.offsets.push_back(static_cast<index_t>(p.c.size()));
    }
    std::vector<sched::sps_point> pts;
    const index_t top = static_cast<index_t>(p.requests() + p.c.size());
    for (index_t b = 1; b <= top; ++b)
      pts.push_back({b, 1.0 + static_cast<double>(b) * (rep % 2 == 0 ? 1.0 : 1e-3)});
    const sps_table t(pts);
    std::vector<index_t> got(p.requests()), want(p.requests());
    schedule_result got_res{}, want_res{};
    REQUIRE(s.schedule(p.c, p.offsets, t, got, &got_res, schedule_mode::global).ok());
    ref.schedule(p.c, p.offsets, t, want, &want_res, schedule_mode::global, nullptr);
    bad += static_cast<int>(got != want) + static_cast<int>(!same_result(got_res, want_res));
  }
  CHECK(bad == 0);
}
