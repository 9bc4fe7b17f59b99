// SPDX-License-Identifier: Apache-2.0
// The fused top-k / top-p truncation (one histogram pass, one gather pass) against radix select
// (the device's rule, cpu::basic_serial_executor<true, false>): the same top-k cut always, the
// same top-p cut except where the goal lies within float rounding of F at the cut, the same kept
// mass to rounding; rows that force the deeper histogram levels (heavy ties, > 4096 entries in
// one bin) and the radix fallback; the fused path really taken on ordinary rows; and draws
// through a fused cut fit the processed law while a cut one entry low fails the same test.

#include <specdec/core/dtype.hpp>
#include <specdec/cpu/serial_executor.hpp>
#include <specdec/sampling/distribution.hpp>

#include <catch2/catch.hpp>

#include "support/sanitizer.hpp"
#include "support/stats.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

using namespace specdec;

namespace {

const cpu::serial_executor fused{};
const cpu::basic_serial_executor<true, false> radix{};

/// Rows: 0 normal logits, 1 heavy ties (quarter steps), 2 bfloat16-like (8 mantissa bits) with
/// one value repeated 6000 times near the top, 3 probabilities, 4 nearly flat logits.
std::vector<float> make_row(int kind, std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::uniform_real_distribution<float> ud(0.0f, 1.0f);
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    float x = nd(rng);
    switch (kind) {
    case 1:
      x = std::round(x * 4.0f) / 4.0f;
      break;
    case 2:
      x = specdec::detail::bits_float(specdec::detail::float_bits(x) & 0xffff0000u);
      if (i % 5 == 0 && i < 30000)
        x = 3.0f;
      break;
    case 3:
      x = ud(rng) * ud(rng) * ud(rng);
      break;
    case 4:
      x = 0.01f * x;
      break;
    default:
      break;
    }
    v[i] = x;
  }
  return v;
}

/// F(v) in double: the weight of the entries >= v (and >= floor) under the stats' weights.
double mass_at(const std::vector<float>& v, const sampling::row_stats& st, float cut, bool probs) {
  double f = 0.0;
  for (const float x : v) {
    const double r = probs && st.log_of_probs ? std::log(static_cast<double>(x)) : x;
    if (!(r >= cut))
      continue;
    f += st.mode == weight_mode::linear ? r : std::exp((r - st.max_raw) * st.inv_temp);
  }
  return f;
}

} // namespace

TEST_CASE("fused truncation finds radix select's cuts", "[sampling][fused]") {
  struct cfg {
    float t, p, minp;
    int k;
  };
  const cfg cfgs[] = {{1.0f, 0.9f, 0.0f, 0},
                      {0.7f, 0.5f, 0.0f, 0},
                      {1.0f, 1.0f, 0.0f, 50},
                      {0.8f, 0.95f, 0.0f, 50},
                      {1.2f, 0.9f, 0.02f, 0},
                      {1.0f, 0.99f, 0.0f, 5000},
                      {1.0f, 1.0f, 0.0f, 1},
                      {0.6f, 0.3f, 0.0f, 7000}};
  int rows = 0, same_cut = 0, rounding_only = 0, fused_taken = 0;
  double worst_mass = 0.0;
  for (const std::size_t n : {600u, 4099u, 32000u, 151936u})
    for (int kind = 0; kind < 5; ++kind)
      for (unsigned seed = 0; seed < 2; ++seed) {
        const auto v = make_row(kind, n, seed * 977u + static_cast<unsigned>(n) + kind);
        const bool probs = kind == 3;
        const sampling::dist_row<float> row{v.data(),
                                            static_cast<index_t>(n),
                                            probs ? distribution_kind::probabilities
                                                  : distribution_kind::logits};
        for (const cfg& c : cfgs) {
          sampling::sampling_params sp;
          sp.temperature = c.t;
          sp.top_p = c.p;
          sp.top_k = c.k;
          sp.min_p = c.minp;
          const auto a = sampling::prepare_row(fused, row, sp);
          const auto b = sampling::prepare_row(radix, row, sp);
          REQUIRE(a.ok() == b.ok());
          if (!a.ok())
            continue;
          ++rows;
          // Was the fused path taken? Run it alone on the same stats.
          {
            sampling::row_stats st = b;
            const bool linear = st.mode == weight_mode::linear;
            const float mx = st.max_raw, it = st.inv_temp;
            const auto w = [linear, mx, it](auto r) {
              if constexpr (std::is_same_v<decltype(r), float>)
                return linear ? r : specdec::detail::exp_f((r - mx) * it);
              else
                return linear ? r : sampling::detail::exp_any((r - mx) * it);
            };
            float cut0 = -specdec::detail::infinity();
            if (sp.min_p > 0.0f)
              cut0 = linear ? specdec::detail::fmul(sp.min_p, mx)
                            : std::min(
                                mx + specdec::detail::fmul(std::log(sp.min_p), sp.temperature), mx);
            const auto go = [&](const auto& raw) {
              return sampling::detail::fused_truncate(fused, row.vocab, raw, w, sp, st, cut0);
            };
            const bool took =
                st.log_of_probs
                    ? go(sampling::detail::
                             raw_reader<float, sampling::detail::raw_form::log_of_probabilities>{
                                 v.data()})
                    : (probs ? go(
                           sampling::detail::raw_reader<float,
                                                        sampling::detail::raw_form::probabilities>{
                               v.data()})
                             : go(sampling::detail::raw_reader<float,
                                                               sampling::detail::raw_form::logits>{
                                 v.data()}));
            fused_taken += took;
          }
          if (specdec::detail::float_bits(a.cut) == specdec::detail::float_bits(b.cut)
              || a.cut == b.cut) {
            // Same cut, same support: the masses differ by summation order only.
            const double rel = std::fabs(static_cast<double>(a.mass) - b.mass) / b.mass;
            worst_mass = std::max(worst_mass, rel);
            ++same_cut;
            continue;
          }
          // Different cuts: only top-p may differ, and only where F at one of the cuts is within
          // rounding of the goal.
          CHECK(c.p < 1.0f);
          const float lo = std::min(a.cut, b.cut), hi = std::max(a.cut, b.cut);
          const double f_hi = mass_at(v, b, hi, probs);
          double kept_before = 0.0;
          {
            sampling::sampling_params kp = sp;
            kp.top_p = 1.0f;
            const auto k_only = sampling::prepare_row(radix, row, kp);
            kept_before = k_only.mass;
          }
          const double goal = static_cast<double>(c.p) * kept_before;
          const bool near = std::fabs(f_hi - goal) <= 2e-5 * kept_before;
          CHECK(near);
          CHECK(lo < hi);
          rounding_only += near;
        }
      }
  INFO("rows " << rows << ", same cut " << same_cut << ", rounding-only " << rounding_only
               << ", fused path " << fused_taken << ", worst relative mass " << worst_mass);
  CHECK(rows == 4 * 5 * 2 * 8);
  CHECK(same_cut + rounding_only == rows);
  CHECK(same_cut >= rows * 9 / 10);
  CHECK(worst_mass < 1e-4);            // bins summed in index order: about sqrt(n) ulps
  CHECK(fused_taken >= rows * 9 / 10); // the fallback is the exception
}

TEST_CASE("fused truncation on small and degenerate rows", "[sampling][fused]") {
  // All equal, a single entry, -inf entries, k larger than the row, -0 next to +0.
  const std::vector<std::vector<float>> rows = {
      std::vector<float>(3000, 1.5f),
      {2.0f},
      {-std::numeric_limits<float>::infinity(), 1.0f, -std::numeric_limits<float>::infinity()},
      {0.0f, -0.0f, 0.0f, -0.0f, -1.0f, 1e-30f},
      std::vector<float>(5000, -0.0f)};
  for (const auto& v : rows)
    for (const int k : {0, 1, 2, 4, 10000})
      for (const float p : {1.0f, 0.5f, 0.01f}) {
        if (k == 0 && p == 1.0f)
          continue;
        sampling::sampling_params sp;
        sp.top_k = k;
        sp.top_p = p;
        const sampling::dist_row<float> row{
            v.data(), static_cast<index_t>(v.size()), distribution_kind::logits};
        const auto a = sampling::prepare_row(fused, row, sp);
        const auto b = sampling::prepare_row(radix, row, sp);
        REQUIRE(a.ok() == b.ok());
        if (!a.ok())
          continue;
        CHECK(a.cut == b.cut);
        CHECK(std::fabs(a.mass - b.mass) <= 1e-5f * b.mass);
      }
}

TEST_CASE("scan_row_histogram: scan_row's bits and key_histogram's first level in one pass",
          "[sampling][fused]") {
  // The scan must be scan_row's bit for bit (the device decides from the same sums); the counts
  // key_histogram's exactly; the masses key_histogram's up to the rescaling roundings. Rows
  // whose max climbs across chunks exercise the reference factor (rises under e^32), the rebase
  // (over it) and the give-up after max_rebases rebases; an invalid entry and a leading chunk of
  // -inf the count-only path.
  const cpu::basic_serial_executor<false, false> scalar{};
  const float ninf = -specdec::detail::infinity();
  struct rcase {
    const char* name;
    std::vector<float> v;
    float t;
    bool ok; // the histogram is usable
  };
  std::vector<rcase> cases;
  cases.push_back({"logits", make_row(0, 32000, 11u), 1.0f, true});
  cases.push_back({"logits T 0.6", make_row(0, 151936, 12u), 0.6f, true});
  cases.push_back({"ties", make_row(1, 5000, 13u), 1.3f, true});
  {
    auto v = make_row(0, 4000, 14u);
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] += 3.0f * static_cast<float>(i / 512); // rises of 3 per chunk: a factor, no rebase
    cases.push_back({"slow climb", v, 1.0f, true});
  }
  {
    auto v = make_row(0, 2048, 15u);
    for (std::size_t i = 1024; i < v.size(); ++i)
      v[i] += 40.0f; // one rise of 40 > 32: one rebase
    cases.push_back({"one rebase", v, 1.0f, true});
  }
  {
    auto v = make_row(0, 3000, 16u);
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] += 40.0f * static_cast<float>(i / 512); // a rebase per chunk: given up
    cases.push_back({"steep climb", v, 1.0f, false});
  }
  {
    auto v = make_row(0, 3000, 17u);
    for (std::size_t i = 0; i < 700; ++i)
      v[i] = ninf; // the first chunk has no valid value
    v[2000] = ninf;
    cases.push_back({"leading -inf", v, 0.9f, true});
  }
  for (const rcase& c : cases) {
    CAPTURE(c.name);
    const index_t n = static_cast<index_t>(c.v.size());
    const auto raw = [&](index_t i) { return c.v[static_cast<std::size_t>(i)]; };
    const float it = 1.0f / c.t;
    const int w = sampling::detail::fused_first_width(n);
    const std::size_t bins = std::size_t{1} << w;
    std::vector<std::uint32_t> cnt(bins + 1), cnt_s(bins + 1), ref_cnt(bins + 1);
    std::vector<float> mass(bins + 1), mass_s(bins + 1), ref_mass(bins + 1);
    bool ok = false, ok_s = false;
    const row_scan_result a = fused.scan_row_histogram(n, raw, it, w, cnt.data(), mass.data(), &ok);
    const row_scan_result b = fused.scan_row(n, raw, weight_mode::exp_scaled, it);
    const row_scan_result a_s =
        scalar.scan_row_histogram(n, raw, it, w, cnt_s.data(), mass_s.data(), &ok_s);
    CHECK(specdec::detail::float_bits(a.max) == specdec::detail::float_bits(b.max));
    CHECK(a.argmax == b.argmax);
    CHECK(specdec::detail::float_bits(a.weight_sum) == specdec::detail::float_bits(b.weight_sum));
    CHECK(a.invalid == b.invalid);
    CHECK(specdec::detail::float_bits(a_s.weight_sum) == specdec::detail::float_bits(a.weight_sum));
    CHECK(ok == c.ok);
    // The vector path and the scalar one: the same histogram, bit for bit.
    CHECK(ok_s == ok);
    CHECK(cnt_s == cnt);
    bool same_mass = true;
    for (std::size_t i = 0; i <= bins; ++i)
      same_mass &= specdec::detail::float_bits(mass[i]) == specdec::detail::float_bits(mass_s[i]);
    CHECK(same_mass);
    if (!ok)
      continue;
    const float mx = b.max;
    const auto g = [mx, it](float r) { return specdec::detail::exp_f((r - mx) * it); };
    fused.key_histogram(n, raw, g, ninf, 0u, 32 - w, w, ref_cnt.data(), ref_mass.data());
    CHECK(cnt == ref_cnt);
    double worst = 0.0, total = 0.0;
    for (std::size_t i = 0; i < bins; ++i)
      total += ref_mass[i];
    for (std::size_t i = 0; i < bins; ++i) // relative to the bin, or to the row for tiny bins
      worst = std::max(worst,
                       std::fabs(static_cast<double>(mass[i]) - ref_mass[i])
                           / std::max(static_cast<double>(ref_mass[i]), 1e-6 * total));
    CAPTURE(worst);
    CHECK(worst <= 1e-5);
    // Through prepare_row (top-k and top-p without min-p take this path): top-k's cut is radix
    // select's exactly, top-p's is or lies within rounding of the goal.
    struct cut_cfg {
      int k;
      float p;
    };
    for (const cut_cfg q : {cut_cfg{50, 1.0f}, {3000, 1.0f}, {0, 0.9f}, {0, 0.5f}}) {
      sampling::sampling_params sp;
      sp.temperature = c.t;
      sp.top_k = q.k;
      sp.top_p = q.p;
      const sampling::dist_row<float> row{c.v.data(), n, distribution_kind::logits};
      const auto x = sampling::prepare_row(fused, row, sp);
      const auto y = sampling::prepare_row(radix, row, sp);
      REQUIRE(x.ok() == y.ok());
      if (q.k > 0 || x.cut == y.cut) {
        CHECK(x.cut == y.cut);
        CHECK(std::fabs(x.mass - y.mass) <= 1e-4f * y.mass); // summation order, as above
      } else { // top-p: F at the higher cut within rounding of the goal
        const double row_mass = b.weight_sum;
        const double f_hi = mass_at(c.v, y, std::max(x.cut, y.cut), false);
        CHECK(std::fabs(f_hi - static_cast<double>(q.p) * row_mass) <= 2e-5 * row_mass);
      }
    }
  }
}

TEST_CASE("draws through the fused cut fit the processed law (1e6 draws); a cut one entry low "
          "fails",
          "[sampling][fused][stat]") {
  // Rows above small_row take the fused truncation in prepare_row; sample_row then draws by
  // inverse CDF below st.cut with st.mass. The law is the double-precision reference
  // (support/stats.hpp); chi-square with the cells expected fewer than 5 times pooled, bound at
  // alpha = 1e-6. The biased variant keeps the next value below the cut as well (the mistake a
  // boundary walk off by one entry makes): its draws land where the law has no mass.
  const std::uint64_t draws = specdec_test::by_build<std::uint64_t>(1000000, 100000);
  const double alpha = 1e-6;
  const auto v = make_row(0, 1024, 4242u);
  const sampling::dist_row<float> row{
      v.data(), static_cast<index_t>(v.size()), distribution_kind::logits};
  const std::vector<double> vd(v.begin(), v.end());
  struct cfg {
    float t, p;
    int k;
  };
  for (const cfg c : {cfg{0.8f, 0.9f, 40}, cfg{1.0f, 0.85f, 0}}) {
    sampling::sampling_params sp;
    sp.temperature = c.t;
    sp.top_p = c.p;
    sp.top_k = c.k;
    CAPTURE(c.t, c.p, c.k);
    const sampling::row_stats st = sampling::prepare_row(fused, row, sp);
    REQUIRE(st.ok());
    const specdec_test::reference_row ref =
        specdec_test::reference_processed(vd, false, specdec_test::reference_params(sp));
    REQUIRE(ref.margin > 1e-4); // no float rounding can move this cut
    std::size_t support = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      REQUIRE((v[i] >= st.cut) == (ref.p[i] > 0.0));
      support += ref.p[i] > 0.0;
    }
    REQUIRE(support >= 10);

    // The next value below the cut, and the stats of the biased cut that keeps it too.
    float below = -specdec::detail::infinity();
    for (const float x : v)
      if (x < st.cut)
        below = std::max(below, x);
    sampling::row_stats biased = st;
    biased.cut = below;
    for (const float x : v)
      if (x == below)
        biased.mass += specdec::detail::exp_f((x - st.max_raw) * st.inv_temp);

    const auto run = [&](const sampling::row_stats& s, std::uint64_t m) {
      std::mt19937_64 rng(0x5eedu + static_cast<unsigned>(c.k));
      std::vector<std::uint64_t> counts(v.size(), 0);
      std::uint64_t failed = 0;
      for (std::uint64_t i = 0; i < m; ++i) {
        const float u = static_cast<float>(rng() >> 40) * 0x1p-24f;
        const index_t x = sampling::sample_row(fused, row, s, u);
        if (x >= 0)
          ++counts[static_cast<std::size_t>(x)];
        else
          ++failed;
      }
      CHECK(failed == 0);
      return counts;
    };
    {
      const auto counts = run(st, draws);
      const auto f =
          specdec_test::pooled_chi_square(counts, specdec_test::expected_counts(ref.p, draws));
      CAPTURE(f.statistic, f.degrees_of_freedom, f.impossible, support);
      CHECK(specdec_test::fits(f, alpha));
    }
    {
      const auto counts = run(biased, draws / 5);
      const auto f =
          specdec_test::pooled_chi_square(counts, specdec_test::expected_counts(ref.p, draws / 5));
      CAPTURE(f.statistic, f.degrees_of_freedom, f.impossible);
      CHECK_FALSE(specdec_test::fits(f, alpha));
    }
  }
}
