// SPDX-License-Identifier: Apache-2.0
// DSpark's prefix scheduler (spec 8, golden case G8): the step-curve table, Algorithm 1 with its
// early stop, the global search, top-K and the asynchronous top-K variant; brute force over all
// length vectors on small problems; the heap merge against a naive full sort; the Appendix-A
// counterexample as a Monte Carlo simulation of the emitted law; the SPS profiler; bad input.

#include <specdec/sched/prefix_scheduler.hpp>
#include <specdec/sched/sps_profile.hpp>

#include <catch2/catch.hpp>

#include "support/gof.hpp"
#include "support/sanitizer.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <random>
#include <vector>

using namespace specdec;
using sched::schedule_mode;
using sched::schedule_result;
using sched::schedule_step;
using sched::sps_table;

namespace {

constexpr double tol = 1e-6; // G8 golden values are given to a few digits
constexpr double alpha = 1e-6;
const double qnan = std::numeric_limits<double>::quiet_NaN();

errc table_code(std::initializer_list<sched::sps_point> p) {
  return sps_table(p).validate().code;
}

/// Ragged conditionals: rows -> flat c + offsets.
struct ragged {
  std::vector<double> c;
  std::vector<index_t> offsets{0};
  explicit ragged(const std::vector<std::vector<double>>& rows) {
    for (const auto& r : rows) {
      c.insert(c.end(), r.begin(), r.end());
      offsets.push_back(static_cast<index_t>(c.size()));
    }
  }
  [[nodiscard]] std::size_t requests() const {
    return offsets.size() - 1;
  }
};

struct outcome {
  status st;
  std::vector<index_t> lengths;
  schedule_result res;
  std::vector<schedule_step> trace;
};

outcome run(const ragged& g, const sps_table& t, schedule_mode mode) {
  outcome o;
  o.lengths.assign(g.requests(), -7);
  o.st = sched::schedule_prefixes(g.c, g.offsets, t, o.lengths, &o.res, mode, &o.trace);
  return o;
}

using lv = std::vector<index_t>;

const sps_table s1_sps{{1, 1.0}, {2, 0.5}, {3, 0.45}};
const sps_table s2_sps{{2, 1.0}, {3, 0.95}, {4, 0.9}, {5, 0.8}, {6, 0.7}, {7, 0.6}, {8, 0.5}};
const sps_table s3_sps{{2, 1.0}, {3, 0.95}, {4, 0.70}, {5, 0.69}, {6, 0.68}, {7, 0.67}, {8, 0.66}};
const ragged s2_c({{.9, .8, .5}, {.6, .5, .9}});

// ---------------------------------------------------------------------------------------------
// References written independently of the library's heap: the brute force over every length
// vector, and Algorithm 1 over a fully sorted candidate list.
// ---------------------------------------------------------------------------------------------

std::vector<std::vector<double>> survival(const ragged& g) {
  std::vector<std::vector<double>> a;
  for (std::size_t r = 0; r < g.requests(); ++r) {
    std::vector<double> row;
    double run_a = 1.0;
    for (index_t k = g.offsets[r]; k < g.offsets[r + 1]; ++k) {
      run_a *= g.c[static_cast<std::size_t>(k)];
      row.push_back(run_a);
    }
    a.push_back(row);
  }
  return a;
}

/// Max over every length vector (only_positive: l_r restricted to positions with a > 0).
double brute_force_max(const ragged& g, const sps_table& t, bool only_positive) {
  const auto a = survival(g);
  const std::size_t n = a.size();
  std::vector<std::size_t> l(n, 0);
  double best = -1.0;
  for (;;) {
    double tau = static_cast<double>(n);
    index_t b = static_cast<index_t>(n);
    bool allowed = true;
    for (std::size_t r = 0; r < n; ++r) {
      for (std::size_t j = 0; j < l[r]; ++j)
        tau += a[r][j];
      b += static_cast<index_t>(l[r]);
      if (only_positive && l[r] > 0 && !(a[r][l[r] - 1] > 0.0))
        allowed = false;
    }
    if (allowed)
      best = std::max(best, tau * t.at(b));
    std::size_t r = 0;
    while (r < n && l[r] == a[r].size()) {
      l[r] = 0;
      ++r;
    }
    if (r == n)
      return best;
    ++l[r];
  }
}

struct cand {
  double a;
  index_t j, r;
};

/// Candidates with a > 0, fully sorted by (-a, j, r).
std::vector<cand> sorted_candidates(const ragged& g) {
  std::vector<cand> e;
  const auto a = survival(g);
  for (std::size_t r = 0; r < a.size(); ++r)
    for (std::size_t j = 0; j < a[r].size(); ++j)
      if (a[r][j] > 0.0)
        e.push_back({a[r][j], static_cast<index_t>(j + 1), static_cast<index_t>(r)});
  std::sort(e.begin(), e.end(), [](const cand& x, const cand& y) {
    if (x.a != y.a)
      return x.a > y.a;
    if (x.j != y.j)
      return x.j < y.j;
    return x.r < y.r;
  });
  return e;
}

/// Algorithm 1 (and the no-break variant) over the sorted list, as written in spec 8.3.
outcome naive_schedule(const ragged& g, const sps_table& t, schedule_mode mode) {
  const auto e = sorted_candidates(g);
  const index_t n = static_cast<index_t>(g.requests());
  outcome o;
  o.lengths.assign(g.requests(), 0);
  lv l(g.requests(), 0);
  index_t b = n;
  double tau = static_cast<double>(n);
  double best = tau * t.at(b);
  o.res = {best, tau, b, 0};
  for (const cand& x : e) {
    l[static_cast<std::size_t>(x.r)] = x.j;
    ++b;
    tau += x.a;
    const double theta = tau * t.at(b);
    if (theta > best) {
      best = theta;
      o.lengths = l;
      o.res = {best, tau, b, b - n};
    } else if (mode == schedule_mode::early_stop) {
      break;
    }
  }
  return o;
}

lv naive_top_k(const ragged& g, index_t k) {
  const auto e = sorted_candidates(g);
  lv l(g.requests(), 0);
  for (index_t i = 0; i < k && i < static_cast<index_t>(e.size()); ++i)
    l[static_cast<std::size_t>(e[static_cast<std::size_t>(i)].r)] =
        e[static_cast<std::size_t>(i)].j;
  return l;
}

/// Random ragged conditionals; `ties` draws from a small set (0, 1 and repeats included).
ragged random_c(std::mt19937_64& rng, int max_r, int max_gamma, bool ties) {
  std::uniform_int_distribution<int> rn(1, max_r), gn(0, max_gamma), pick(0, 5);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const double set[] = {0.0, 0.25, 0.5, 0.5, 0.9, 1.0};
  std::vector<std::vector<double>> rows(static_cast<std::size_t>(rn(rng)));
  for (auto& row : rows) {
    row.resize(static_cast<std::size_t>(gn(rng)));
    for (auto& x : row)
      x = ties ? set[pick(rng)] : (u(rng) < 0.05 ? 1.0 : u(rng));
  }
  return ragged(rows);
}

/// SPS(B) = 1 / (alpha + beta B) at B = 1 .. max_b (a smoothly decaying, unimodal curve).
sps_table unimodal_sps(std::mt19937_64& rng, index_t max_b) {
  std::uniform_real_distribution<double> al(0.01, 2.0), be(0.001, 1.0);
  const double a = al(rng), b = be(rng);
  std::vector<sched::sps_point> p;
  for (index_t i = 1; i <= max_b; ++i)
    p.push_back({i, 1.0 / (a + b * static_cast<double>(i))});
  return sps_table(p);
}

/// Random positive values at random batch sizes (cliffs, rises, an early end of the table).
sps_table jagged_sps(std::mt19937_64& rng, index_t max_b) {
  std::uniform_real_distribution<double> v(0.05, 1.0);
  std::uniform_int_distribution<int> coin(0, 3);
  std::vector<sched::sps_point> p;
  for (index_t i = 1; i <= max_b; ++i)
    if (i == 1 || coin(rng) != 0)
      p.push_back({i, v(rng)});
  return sps_table(p);
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Table and shared arithmetic
// ---------------------------------------------------------------------------------------------

TEST_CASE("sps_table: interpolation, below the first point, zero past the last",
          "[dspark][sched][cpu]") {
  const sps_table t{{2, 1.0}, {4, 0.5}, {5, 0.45}};
  REQUIRE(t.validate().ok());
  CHECK(t.size() == 3);
  CHECK(t.max_batch() == 5);
  CHECK(t.at(-3) == 1.0);
  CHECK(t.at(1) == 1.0);
  CHECK(t.at(2) == 1.0);
  CHECK(t.at(3) == Approx(0.75).epsilon(1e-15));
  CHECK(t.at(4) == 0.5); // exact at a point
  CHECK(t.at(5) == 0.45);
  CHECK(t.at(6) == 0.0);
  CHECK(sps_table{}.at(1) == 0.0);
  const sps_table one{{7, 0.3}};
  CHECK(one.at(1) == 0.3);
  CHECK(one.at(7) == 0.3);
  CHECK(one.at(8) == 0.0);
}

TEST_CASE("sps_table: invalid point sets", "[dspark][sched][cpu]") {
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(sps_table{}.validate().code == errc::invalid_value);
  CHECK(table_code({{2, 1.0}, {1, 0.5}}) == errc::invalid_value);  // unsorted
  CHECK(table_code({{1, 1.0}, {1, 0.5}}) == errc::invalid_value);  // duplicate
  CHECK(table_code({{0, 1.0}, {1, 0.5}}) == errc::invalid_value);  // batch < 1
  CHECK(table_code({{1, 1.0}, {2, 0.0}}) == errc::invalid_value);  // zero
  CHECK(table_code({{1, -1.0}}) == errc::invalid_value);           // negative
  CHECK(table_code({{1, 1.0}, {2, qnan}}) == errc::invalid_value); // NaN
  CHECK(table_code({{1, inf}}) == errc::invalid_value);            // infinite
}

TEST_CASE("shared arithmetic: key order, cumulative products, throughput", "[dspark][sched][cpu]") {
  CHECK(sched::schedule_before(0.9, 3, 5, 0.8, 1, 0));       // larger a first
  CHECK(sched::schedule_before(0.5, 1, 5, 0.5, 2, 0));       // then shorter prefix
  CHECK(sched::schedule_before(0.5, 2, 0, 0.5, 2, 1));       // then lower request
  CHECK_FALSE(sched::schedule_before(0.5, 2, 1, 0.5, 2, 1)); // strict
  const double c[] = {0.9, 0.8, 0.0, 0.5};
  double a[4];
  CHECK(sched::cumulative_products(c, 4, a) == 2);
  CHECK(a[0] == 0.9);
  CHECK(a[1] == 0.9 * 0.8);
  CHECK(a[2] == 0.0);
  CHECK(a[3] == 0.0);
  const double ones[] = {1.0, 1.0};
  CHECK(sched::cumulative_products(ones, 2, a) == 2);
  CHECK(sched::cumulative_products(c, 0, a) == 0);
  CHECK(sched::prefix_throughput(sched::add_expected_tokens(2.0, 0.9), 0.95) == 2.9 * 0.95);
}

TEST_CASE("sps_lookup_monotone equals sps_lookup bit for bit", "[dspark][sched][cpu]") {
  std::mt19937_64 rng(5);
  for (int rep = 0; rep < 20; ++rep) {
    const sps_table t = jagged_sps(rng, 40);
    const auto b = t.batches();
    const auto v = t.values();
    index_t cursor = 0;
    for (index_t x = -2; x <= 44; ++x) {
      CAPTURE(rep, x);
      const double want = sched::sps_lookup(b.data(), v.data(), t.size(), x);
      CHECK(sched::sps_lookup_monotone(b.data(), v.data(), t.size(), x, &cursor) == want);
      CHECK(t.at(x) == want);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Golden case G8
// ---------------------------------------------------------------------------------------------

TEST_CASE("G8 S1: Appendix A, early stop breaks at once, the global search looks ahead",
          "[dspark][sched][cpu]") {
  for (const double c2 : {0.9, 0.0}) {
    const ragged g({{0.8, c2}});
    const outcome e = run(g, s1_sps, schedule_mode::early_stop);
    REQUIRE(e.st.ok());
    CHECK(e.lengths == lv{0});
    REQUIRE(e.trace.size() == 2);
    CHECK(e.trace[0].throughput == Approx(1.0).margin(tol));
    CHECK(e.trace[1].request == 0);
    CHECK(e.trace[1].position == 1);
    CHECK(e.trace[1].batch == 2);
    CHECK(e.trace[1].expected_tokens == Approx(1.8).margin(tol));
    CHECK(e.trace[1].throughput == Approx(0.9).margin(tol));
    CHECK(e.res.throughput == Approx(1.0).margin(tol));
    CHECK(e.res.batch == 1);
    CHECK(e.res.admitted == 0);

    const outcome gl = run(g, s1_sps, schedule_mode::global);
    REQUIRE(gl.st.ok());
    if (c2 > 0) {
      CHECK(gl.lengths == lv{2});
      CHECK(gl.res.throughput == Approx(1.134).margin(tol));
      CHECK(gl.res.expected_tokens == Approx(2.52).margin(tol));
      CHECK(gl.res.batch == 3);
      CHECK(gl.res.admitted == 2);
    } else {
      CHECK(gl.lengths == lv{0});
      CHECK(gl.res.throughput == Approx(1.0).margin(tol));
    }
  }
}

TEST_CASE("G8 S2: trace 2.755, 3.258, 3.376, 3.206 then break; l = [2,1]", "[dspark][sched][cpu]") {
  const outcome e = run(s2_c, s2_sps, schedule_mode::early_stop);
  REQUIRE(e.st.ok());
  CHECK(e.lengths == lv{2, 1});
  CHECK(e.res.throughput == Approx(3.376).margin(tol));
  CHECK(e.res.expected_tokens == Approx(4.22).margin(tol));
  CHECK(e.res.batch == 5);
  CHECK(e.res.admitted == 3);
  REQUIRE(e.trace.size() == 5);
  const double theta[] = {2.0, 2.755, 3.258, 3.376, 3.206};
  const index_t req[] = {-1, 0, 0, 1, 0};
  const index_t pos[] = {0, 1, 2, 1, 3};
  for (std::size_t i = 0; i < 5; ++i) {
    CAPTURE(i);
    CHECK(e.trace[i].throughput == Approx(theta[i]).margin(tol));
    CHECK(e.trace[i].request == req[i]);
    CHECK(e.trace[i].position == pos[i]);
    CHECK(e.trace[i].batch == 2 + static_cast<index_t>(i));
  }
  const outcome gl = run(s2_c, s2_sps, schedule_mode::global);
  REQUIRE(gl.st.ok());
  CHECK(gl.lengths == lv{2, 1});
  CHECK(gl.res.throughput == Approx(3.376).margin(tol));
  CHECK(gl.trace.size() == 7); // the whole path: start + 6 candidates
}

TEST_CASE("G8 S3: a cliff traps the early stop at [1,0]; the global search finds [3,3]",
          "[dspark][sched][cpu]") {
  const outcome e = run(s2_c, s3_sps, schedule_mode::early_stop);
  REQUIRE(e.st.ok());
  CHECK(e.lengths == lv{1, 0});
  REQUIRE(e.trace.size() == 3);
  CHECK(e.trace[1].throughput == Approx(2.755).margin(tol));
  CHECK(e.trace[2].throughput == Approx(2.534).margin(tol));
  CHECK(e.res.throughput == Approx(2.755).margin(tol));

  const outcome gl = run(s2_c, s3_sps, schedule_mode::global);
  REQUIRE(gl.st.ok());
  CHECK(gl.lengths == lv{3, 3});
  CHECK(gl.res.throughput == Approx(3.399).margin(tol));
  CHECK(gl.res.batch == 8);
  const double path[] = {2.755, 2.534, 2.9118, 3.1144, 3.2696, 3.399};
  REQUIRE(gl.trace.size() == 7);
  for (std::size_t i = 0; i < 6; ++i)
    CHECK(gl.trace[i + 1].throughput == Approx(path[i]).margin(tol));
}

TEST_CASE("G8 S4: c = 1 ties pop in prefix order", "[dspark][sched][cpu]") {
  const sps_table t{{1, 1.0}, {2, 0.99}, {3, 0.98}, {4, 0.97}};
  const outcome e = run(ragged({{1.0, 1.0, 0.5}}), t, schedule_mode::early_stop);
  REQUIRE(e.st.ok());
  CHECK(e.lengths == lv{3});
  REQUIRE(e.trace.size() == 4);
  const double theta[] = {1.98, 2.94, 3.395};
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(e.trace[i + 1].position == static_cast<index_t>(i + 1));
    CHECK(e.trace[i + 1].throughput == Approx(theta[i]).margin(tol));
  }
  CHECK(e.res.throughput == Approx(3.395).margin(tol));
}

TEST_CASE("strict >: an equal Theta is not an improvement (early stop and first maximum)",
          "[dspark][sched][cpu]") {
  // Theta along the path: 1, 1, 0.75, 1 (all exact in binary).
  const sps_table t{{1, 1.0}, {2, 0.5}, {3, 0.25}, {4, 0.25}};
  const ragged g({{1.0, 1.0, 1.0}});
  for (const auto mode : {schedule_mode::early_stop, schedule_mode::global}) {
    const outcome e = run(g, t, mode);
    REQUIRE(e.st.ok());
    CHECK(e.lengths == lv{0});
    CHECK(e.res.throughput == 1.0);
    CHECK(e.trace.size() == (mode == schedule_mode::global ? 4u : 2u));
  }
}

TEST_CASE("G8 S5: a = 0 candidates are never admitted, even on a flat curve",
          "[dspark][sched][cpu]") {
  const sps_table flat{{1, 1.0}, {64, 1.0}};
  const ragged g({{.9, .8, 0.0}, {.5, .5, .5}});
  for (const auto mode : {schedule_mode::early_stop, schedule_mode::global}) {
    const outcome e = run(g, flat, mode);
    REQUIRE(e.st.ok());
    CHECK(e.lengths == lv{2, 3});
    CHECK(e.res.throughput == Approx(4.495).margin(tol));
    CHECK(e.trace.size() == 6); // start + 5 candidates: (1,3) never visited
    for (const auto& s : e.trace)
      CHECK_FALSE((s.request == 0 && s.position == 3));
  }
  lv l(2);
  REQUIRE(sched::schedule_top_k(g.c, g.offsets, 100, l).ok());
  CHECK(l == lv{2, 3});
}

TEST_CASE("G8 top-K on S2's C, K = 0..6", "[dspark][sched][cpu]") {
  const lv want[] = {{0, 0}, {1, 0}, {2, 0}, {2, 1}, {3, 1}, {3, 2}, {3, 3}};
  sched::prefix_scheduler s;
  for (index_t k = 0; k <= 6; ++k) {
    CAPTURE(k);
    lv l(2, -1);
    REQUIRE(sched::schedule_top_k(s2_c.c, s2_c.offsets, k, l).ok());
    CHECK(l == want[k]);
    double tau = 0;
    REQUIRE(s.top_k(s2_c.c, s2_c.offsets, k, l, &tau).ok());
    CHECK(l == want[k]);
  }
  lv l(2);
  REQUIRE(sched::schedule_top_k(s2_c.c, s2_c.offsets, 1000, l).ok()); // clamped
  CHECK(l == lv{3, 3});
}

TEST_CASE("G8 async top-K: K from two calls earlier, early stop before that",
          "[dspark][sched][cpu]") {
  sched::async_top_k_scheduler s;
  const ragged now({{.5, .5, .5}, {.95, .9, .85}});
  lv l(2, -1);
  schedule_result res{};
  // t = 0 and t = 1: no history, Algorithm 1 on the current step.
  REQUIRE(s.schedule(s2_c.c, s2_c.offsets, s2_sps, l, &res).ok());
  CHECK(l == lv{2, 1});
  CHECK(res.throughput == Approx(3.376).margin(tol));
  REQUIRE(s.schedule(now.c, now.offsets, s2_sps, l).ok());
  CHECK(l == run(now, s2_sps, schedule_mode::early_stop).lengths);
  // t = 2: K_0 = 3 (S2's unconstrained argmax) applied to the current confidences.
  REQUIRE(s.schedule(now.c, now.offsets, s2_sps, l, &res).ok());
  CHECK(l == lv{0, 3});
  CHECK(res.admitted == 3);
  CHECK(res.batch == 5);
  CHECK(res.expected_tokens == Approx(2 + .95 + .855 + .72675).margin(tol));
  CHECK(res.throughput == Approx((2 + .95 + .855 + .72675) * 0.8).margin(tol));
  REQUIRE(s.capacity_history().size() == 3);
  CHECK(s.capacity_history()[0] == 3);
  CHECK(s.capacity_history()[1] == run(now, s2_sps, schedule_mode::global).res.admitted);
  // t = 3 uses K_1 with a different request count: clamped to the current candidates.
  const ragged small({{.5, 0.0}});
  lv l1(1, -1);
  REQUIRE(s.schedule(small.c, small.offsets, s2_sps, l1).ok());
  CHECK(l1 == lv{1});
  // A failing call records nothing; reset() starts over.
  const ragged bad(std::vector<std::vector<double>>{{qnan}});
  CHECK(s.schedule(bad.c, bad.offsets, s2_sps, l1).code == errc::invalid_value);
  CHECK(s.capacity_history().size() == 4);
  s.reset();
  CHECK(s.capacity_history().empty());
  REQUIRE(s.schedule(now.c, now.offsets, s2_sps, l).ok());
  CHECK(l == run(now, s2_sps, schedule_mode::early_stop).lengths);
}

// ---------------------------------------------------------------------------------------------
// Brute force and the naive reference
// ---------------------------------------------------------------------------------------------

TEST_CASE("early stop reaches the brute-force optimum on unimodal SPS; global on any SPS",
          "[dspark][sched][cpu]") {
  std::mt19937_64 rng(20240611);
  sched::prefix_scheduler s;
  int cases = 0;
  for (int r = 1; r <= 4; ++r) {
    for (int gamma = 1; gamma <= 4; ++gamma) {
      for (int rep = 0; rep < 30; ++rep, ++cases) {
        CAPTURE(r, gamma, rep);
        std::vector<std::vector<double>> rows(static_cast<std::size_t>(r));
        std::uniform_real_distribution<double> u(0.0, 1.0);
        for (auto& row : rows) {
          row.resize(static_cast<std::size_t>(gamma));
          for (auto& x : row)
            x = u(rng) < 0.05 ? 1.0 : (u(rng) < 0.05 ? 0.0 : u(rng));
        }
        const ragged g(rows);
        const index_t max_b = r * (gamma + 1);
        lv l(g.requests());
        schedule_result res{};

        const sps_table smooth = unimodal_sps(rng, max_b);
        REQUIRE(s.schedule(g.c, g.offsets, smooth, l, &res).ok());
        const double want = brute_force_max(g, smooth, false);
        CHECK(res.throughput == Approx(want).epsilon(1e-12));

        const sps_table rough = jagged_sps(rng, max_b);
        REQUIRE(s.schedule(g.c, g.offsets, rough, l, &res, schedule_mode::global).ok());
        const double want_g = brute_force_max(g, rough, true);
        CHECK(res.throughput == Approx(want_g).epsilon(1e-12));
      }
    }
  }
  CHECK(cases == 480);
}

TEST_CASE("heap merge equals a full sort of the candidates, bit for bit", "[dspark][sched][cpu]") {
  std::mt19937_64 rng(77);
  sched::prefix_scheduler s; // reused across shapes: scratch must not leak between calls
  for (int rep = 0; rep < 300; ++rep) {
    CAPTURE(rep);
    const bool ties = rep % 2 == 0;
    const ragged g = random_c(rng, rep < 150 ? 6 : 40, 8, ties);
    const index_t total = static_cast<index_t>(g.requests() + g.c.size());
    const sps_table t =
        rep % 3 == 0 ? jagged_sps(rng, total) : unimodal_sps(rng, std::max<index_t>(1, total - 2));
    for (const auto mode : {schedule_mode::early_stop, schedule_mode::global}) {
      lv l(g.requests(), -1);
      schedule_result res{};
      REQUIRE(s.schedule(g.c, g.offsets, t, l, &res, mode).ok());
      const outcome want = naive_schedule(g, t, mode);
      CHECK(l == want.lengths);
      CHECK(res.throughput == want.res.throughput);
      CHECK(res.expected_tokens == want.res.expected_tokens);
      CHECK(res.batch == want.res.batch);
      CHECK(res.admitted == want.res.admitted);
    }
    std::uniform_int_distribution<index_t> kd(0, static_cast<index_t>(g.c.size()) + 2);
    const index_t k = kd(rng);
    lv l(g.requests(), -1);
    REQUIRE(s.top_k(g.c, g.offsets, k, l).ok());
    CHECK(l == naive_top_k(g, k));
  }
}

TEST_CASE("empty batch and empty drafts", "[dspark][sched][cpu]") {
  const ragged none(std::vector<std::vector<double>>{});
  lv l;
  schedule_result res{1, 1, 1, 1};
  REQUIRE(sched::schedule_prefixes(none.c, none.offsets, s1_sps, l, &res).ok());
  CHECK(res.batch == 0);
  CHECK(res.throughput == 0.0);
  const ragged blank({{}, {}});
  lv l2(2, -1);
  REQUIRE(sched::schedule_prefixes(blank.c, blank.offsets, s2_sps, l2, &res).ok());
  CHECK(l2 == lv{0, 0});
  CHECK(res.throughput == 2.0);
  // Past the table SPS = 0: nothing is admitted once B passes max_batch.
  const sps_table short_t{{1, 1.0}, {2, 0.9}};
  const ragged g({{1.0, 1.0, 1.0}, {1.0}});
  REQUIRE(sched::schedule_prefixes(g.c, g.offsets, short_t, l2, &res, schedule_mode::global).ok());
  CHECK(l2 == lv{0, 0});
}

// ---------------------------------------------------------------------------------------------
// Losslessness: the Appendix-A counterexample, simulated
// ---------------------------------------------------------------------------------------------

namespace {

/// First emitted token's counts over `trials` rounds: V = {A, B}, p_t = (.7, .3), p_d = (.5, .5),
/// c_1 = .8, c_2 = .9 if x_1 = A else 0; the scheduler picks the length, rejection sampling
/// verifies x_1 when l >= 1, otherwise the token comes from p_t.
std::vector<std::uint64_t> first_token_counts(const sps_table& t,
                                              schedule_mode mode,
                                              std::uint64_t trials,
                                              std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const auto uni = [&rng] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };
  const double p_t[2] = {0.7, 0.3};
  const double p_d[2] = {0.5, 0.5};
  sched::prefix_scheduler s;
  std::vector<std::uint64_t> counts(2, 0);
  const index_t offsets[2] = {0, 2};
  for (std::uint64_t i = 0; i < trials; ++i) {
    const int x1 = uni() < p_d[0] ? 0 : 1;
    const double c[2] = {0.8, x1 == 0 ? 0.9 : 0.0};
    index_t len = 0;
    if (!s.schedule(c, offsets, t, std::span<index_t>(&len, 1), nullptr, mode).ok())
      return {};
    int y = 0;
    if (len >= 1) {
      if (uni() < std::min(1.0, p_t[x1] / p_d[x1]))
        y = x1;
      else
        y = 0; // residual norm(max(0, p_t - p_d)) = (1, 0)
    } else {
      y = uni() < p_t[0] ? 0 : 1;
    }
    ++counts[static_cast<std::size_t>(y)];
  }
  return counts;
}

} // namespace

TEST_CASE("Appendix A: the early stop is lossless, the global search is biased to (.85, .15)",
          "[dspark][sched][cpu][stat]") {
  const std::uint64_t trials = specdec_test::by_build<std::uint64_t>(1000000, 100000);
  const std::vector<double> target{0.7, 0.3};
  const std::vector<double> retro{0.85, 0.15};
  const sps_table causal_sps{{1, 1.0}, {2, 0.95}, {3, 0.9}};

  SECTION("causal rule: x_1 always verified (Theta_1 = 1.71 > 1), output ~ p_t") {
    const auto counts = first_token_counts(causal_sps, schedule_mode::early_stop, trials, 1);
    REQUIRE(counts.size() == 2);
    SPECDEC_CHECK_FITS(counts, target, 0, 0.0, trials, alpha);
    // Spec G8: (.7, .3) +- .003 at 10^6 trials (6.5 sigma); the same 6.5 sigma under sanitizers.
    const double sigma = std::sqrt(0.7 * 0.3 / static_cast<double>(trials));
    CHECK(std::fabs(static_cast<double>(counts[0]) / static_cast<double>(trials) - 0.7)
          < 6.5 * sigma);
  }
  SECTION("causal rule on the Appendix-A curve: l = 0 always, output ~ p_t") {
    const auto counts = first_token_counts(s1_sps, schedule_mode::early_stop, trials, 2);
    REQUIRE(counts.size() == 2);
    SPECDEC_CHECK_FITS(counts, target, 0, 0.0, trials, alpha);
  }
  SECTION("retrospective (global) rule: biased; fits (.85, .15), fails (.7, .3)") {
    const auto counts = first_token_counts(s1_sps, schedule_mode::global, trials, 3);
    REQUIRE(counts.size() == 2);
    SPECDEC_CHECK_FAILS(counts, target, alpha);
    SPECDEC_CHECK_FITS(counts, retro, 0, 0.0, trials, alpha);
  }
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

TEST_CASE("bad input: statuses, and lengths zeroed on error", "[dspark][sched][cpu]") {
  const auto code = [](const std::vector<double>& c,
                       const std::vector<index_t>& offsets,
                       std::size_t n_lengths,
                       const sps_table& t) {
    lv l(n_lengths, 9);
    schedule_result res{1, 1, 1, 1};
    const status s = sched::schedule_prefixes(c, offsets, t, l, &res);
    for (const index_t x : l)
      CHECK(x == (s.ok() ? x : 0));
    if (!s.ok())
      CHECK(res.batch == 0);
    return s.code;
  };
  const std::vector<double> c{.9, .8, .5};
  CHECK(code(c, {0, 2, 3}, 2, s2_sps) == errc::ok);
  // c values
  CHECK(code({.9, qnan, .5}, {0, 2, 3}, 2, s2_sps) == errc::invalid_value);
  CHECK(code({.9, -0.1, .5}, {0, 2, 3}, 2, s2_sps) == errc::invalid_value);
  CHECK(code({.9, 1.5, .5}, {0, 2, 3}, 2, s2_sps) == errc::invalid_value);
  CHECK(code({.9, std::numeric_limits<double>::infinity(), .5}, {0, 2, 3}, 2, s2_sps)
        == errc::invalid_value);
  // offsets and lengths
  CHECK(code(c, {}, 0, s2_sps) == errc::shape_mismatch);
  CHECK(code(c, {1, 2, 3}, 2, s2_sps) == errc::shape_mismatch);
  CHECK(code(c, {0, 2, 1, 3}, 3, s2_sps) == errc::shape_mismatch);
  CHECK(code(c, {0, 2, 4}, 2, s2_sps) == errc::shape_mismatch);
  CHECK(code(c, {0, 2}, 1, s2_sps) == errc::shape_mismatch);
  CHECK(code(c, {0, 2, 3}, 3, s2_sps) == errc::shape_mismatch);
  CHECK(code(c, {0, 2, 3}, 1, s2_sps) == errc::shape_mismatch);
  // invalid tables
  CHECK(code(c, {0, 2, 3}, 2, sps_table{}) == errc::invalid_value);
  CHECK(code(c, {0, 2, 3}, 2, sps_table({{2, 1.0}, {1, 1.0}})) == errc::invalid_value);
  CHECK(code(c, {0, 2, 3}, 2, sps_table({{1, 1.0}, {1, 1.0}})) == errc::invalid_value);
  CHECK(code(c, {0, 2, 3}, 2, sps_table({{1, 0.0}})) == errc::invalid_value);
  CHECK(code(c, {0, 2, 3}, 2, sps_table({{1, qnan}})) == errc::invalid_value);
  // top-K
  lv l(2, 9);
  const std::vector<index_t> off{0, 2, 3};
  CHECK(sched::schedule_top_k(c, off, -1, l).code == errc::invalid_argument);
  CHECK(l == lv{0, 0});
  CHECK(sched::schedule_top_k(std::vector<double>{.9, qnan, .5}, off, 1, l).code
        == errc::invalid_value);
  CHECK(sched::schedule_top_k(c, std::vector<index_t>{0, 3, 2}, 1, l).code == errc::shape_mismatch);
}

// ---------------------------------------------------------------------------------------------
// Profiling
// ---------------------------------------------------------------------------------------------

TEST_CASE("profile_sps: interleaved rounds after a warm-up, a valid table",
          "[dspark][sched][cpu]") {
  std::vector<index_t> calls;
  const auto step = [&calls](index_t b) {
    calls.push_back(b);
    volatile double sink = 0;
    for (index_t i = 0; i < 200 * b; ++i)
      sink = sink + 1.0;
    return status{};
  };
  const std::vector<index_t> batches{1, 4, 16};
  sps_table t;
  REQUIRE(sched::profile_sps(step, batches, 3, t).ok());
  CHECK(calls == lv{1, 4, 16, 1, 4, 16, 1, 4, 16, 1, 4, 16});
  REQUIRE(t.validate().ok());
  CHECK(t.size() == 3);
  CHECK(t.batches()[2] == 16);
  for (const double v : t.values())
    CHECK((v > 0.0 && std::isfinite(v)));

  const sps_table before = t;
  CHECK(sched::profile_sps(step, std::vector<index_t>{}, 3, t).code == errc::invalid_argument);
  CHECK(sched::profile_sps(step, std::vector<index_t>{4, 1}, 3, t).code == errc::invalid_argument);
  CHECK(sched::profile_sps(step, std::vector<index_t>{1, 1}, 3, t).code == errc::invalid_argument);
  CHECK(sched::profile_sps(step, std::vector<index_t>{0, 1}, 3, t).code == errc::invalid_argument);
  CHECK(sched::profile_sps(step, batches, 0, t).code == errc::invalid_argument);
  int n = 0;
  const auto failing = [&n](index_t) { return ++n == 3 ? status{errc::io_error} : status{}; };
  CHECK(sched::profile_sps(failing, batches, 2, t).code == errc::io_error);
  CHECK(t.values()[0] == before.values()[0]); // untouched on error
}

TEST_CASE("sps_table_from_costs: SPS = 1 / seconds", "[dspark][sched][cpu]") {
  sps_table t;
  REQUIRE(sched::sps_table_from_costs(std::vector<double>{0.5, 1.0, 2.0}, t).ok());
  CHECK(t.at(1) == 2.0);
  CHECK(t.at(2) == 1.0);
  CHECK(t.at(3) == 0.5);
  CHECK(t.at(4) == 0.0);
  REQUIRE(sched::sps_table_from_costs(std::vector<double>{0.25}, t, 8).ok());
  CHECK(t.batches()[0] == 8);
  CHECK(t.at(8) == 4.0);
  CHECK(sched::sps_table_from_costs(std::vector<double>{}, t).code == errc::invalid_argument);
  CHECK(sched::sps_table_from_costs(std::vector<double>{1.0}, t, 0).code == errc::invalid_argument);
  CHECK(sched::sps_table_from_costs(std::vector<double>{1.0, 0.0}, t).code == errc::invalid_value);
  CHECK(sched::sps_table_from_costs(std::vector<double>{1.0, -1.0}, t).code == errc::invalid_value);
  CHECK(sched::sps_table_from_costs(std::vector<double>{qnan}, t).code == errc::invalid_value);
  CHECK(sched::sps_table_from_costs(std::vector<double>{1e-320}, t).code == errc::invalid_value);
  CHECK(t.at(8) == 4.0); // untouched on error
}
