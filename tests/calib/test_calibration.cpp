// SPDX-License-Identifier: Apache-2.0
// Confidence calibration and round metrics of DSpark (shared/specs/dspark.md sections 4, 6.4, 7,
// 10): golden cases G9, G10, G11, G12 and G2's c* and E[tau], property tests, bad input.

#include <specdec/calib/reliability.hpp>
#include <specdec/calib/sts.hpp>
#include <specdec/decode/round_metrics.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

using namespace specdec;

namespace {

// Golden numbers are printed to 6 decimals: compare with an absolute 1e-6 only.
Approx golden(double v) {
  return Approx(v).margin(1e-6).epsilon(0.0);
}

double logistic(double z) {
  return 1.0 / (1.0 + std::exp(-z));
}

double logit(double p) {
  return std::log(p / (1.0 - p));
}

// A uniform double in [0, 1) from 53 random bits (portable across standard libraries).
double u01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1p-53;
}

// Index of value t in the grid (-1 when absent).
index_t grid_index(const std::vector<double>& grid, double t) {
  for (std::size_t i = 0; i < grid.size(); ++i)
    if (grid[i] == t)
      return static_cast<index_t>(i);
  return -1;
}

// Logits and outcomes of synthetic rounds, owned, with sts_round views onto them.
struct round_set {
  std::vector<std::vector<double>> z;
  std::vector<index_t> accepted;
  std::vector<std::vector<double>> soft;

  std::vector<calib::sts_round> views() const {
    std::vector<calib::sts_round> v(z.size());
    for (std::size_t j = 0; j < z.size(); ++j) {
      v[j].z = z[j];
      v[j].accepted = accepted[j];
      if (j < soft.size())
        v[j].soft = soft[j];
    }
    return v;
  }
};

// G10 data: one position.
const std::vector<double> g10_pred{.95, .93, .91, .82, .61, .31, .12};
const std::vector<double> g10_label{1, 0, 1, 0, 1, 0, 0};

} // namespace

// -------------------------------------------------------------------------------------------------
// G10: reliability metrics
// -------------------------------------------------------------------------------------------------

TEST_CASE("G10: ECE, AUROC and Brier of the golden set", "[golden][calib]") {
  double e = -1, a = -1, b = -1;
  REQUIRE(calib::ece(g10_pred, g10_label, e).ok());
  REQUIRE(calib::auroc(g10_pred, g10_label, a).ok());
  REQUIRE(calib::brier(g10_pred, g10_label, b).ok());
  CHECK(e == golden(2.53 / 7));
  CHECK(e == golden(0.361429));
  CHECK(a == golden(0.75));
  CHECK(b == golden(0.258643));

  calib::position_metrics m;
  REQUIRE(calib::reliability(g10_pred, g10_label, m).ok());
  CHECK(m.count == 7);
  CHECK(m.ece == golden(0.361429));
  CHECK(m.auroc == golden(0.75));
  CHECK(m.brier == golden(0.258643));
  CHECK(m.pred_mean == golden(4.65 / 7));
  CHECK(m.target_mean == golden(3.0 / 7));
}

TEST_CASE("G10: the accumulator reproduces the golden set and its reliability diagram",
          "[golden][calib]") {
  calib::reliability_accumulator acc(2);
  for (std::size_t i = 0; i < g10_pred.size(); ++i)
    REQUIRE(acc.add(0, g10_pred[i], g10_label[i]).ok());
  const calib::position_metrics m = acc.metrics(0);
  CHECK(m.count == 7);
  CHECK(m.ece == golden(0.361429));
  CHECK(m.auroc == golden(0.75));
  CHECK(m.brier == golden(0.258643));

  const std::vector<calib::reliability_bin> d = acc.diagram(0);
  REQUIRE(d.size() == 20);
  std::int64_t total = 0;
  for (std::size_t b = 0; b < d.size(); ++b) {
    total += d[b].count;
    CHECK(d[b].lower == golden(static_cast<double>(b) / 20));
    CHECK(d[b].upper == golden(static_cast<double>(b + 1) / 20));
    const bool used = b == 2 || b == 6 || b == 12 || b == 16 || b == 18 || b == 19;
    CHECK((d[b].count > 0) == used);
    CHECK(std::isnan(d[b].mean_pred) == !used);
  }
  CHECK(total == 7);
  CHECK(d[18].count == 2);
  CHECK(d[18].mean_pred == golden(0.92));
  CHECK(d[18].mean_label == golden(0.5));
  CHECK(d[19].mean_pred == golden(0.95));
  CHECK(d[19].mean_label == golden(1.0));
  CHECK(d[2].mean_pred == golden(0.12));

  // Position 1 saw nothing: count 0, every metric NaN.
  const calib::position_metrics empty = acc.metrics(1);
  CHECK(empty.count == 0);
  CHECK(std::isnan(empty.ece));
  CHECK(std::isnan(empty.auroc));
  CHECK(std::isnan(empty.brier));
  CHECK(std::isnan(empty.pred_mean));
  CHECK(std::isnan(empty.target_mean));
  // The summary over positions is position 0's.
  const calib::position_metrics s = acc.summary();
  CHECK(s.count == 7);
  CHECK(s.ece == golden(0.361429));
  CHECK(s.auroc == golden(0.75));
}

TEST_CASE("G10: predictions sharing a fine bin are ties worth one half", "[golden][calib]") {
  const std::vector<double> pred{.5004, .5006, .2};
  const std::vector<double> label{1, 0, 0};
  calib::position_metrics m;
  REQUIRE(calib::reliability(pred, label, m).ok());
  CHECK(m.auroc == golden(0.75));
  CHECK(m.ece == golden(0.067));
  CHECK(m.brier == golden(0.180067));
  // Moved to different fine bins, the positive now ranks strictly above the negative.
  const std::vector<double> apart{.5014, .5006, .2};
  double a = 0;
  REQUIRE(calib::auroc(apart, label, a).ok());
  CHECK(a == golden(1.0));
}

TEST_CASE("calib: AUROC is NaN without positives or negatives; empty sets give NaN", "[calib]") {
  const std::vector<double> pred{.2, .7};
  double a = 0;
  REQUIRE(calib::auroc(pred, std::vector<double>{1, 1}, a).ok());
  CHECK(std::isnan(a));
  REQUIRE(calib::auroc(pred, std::vector<double>{0, 0}, a).ok());
  CHECK(std::isnan(a));
  double e = 0, b = 0;
  REQUIRE(calib::ece({}, {}, e).ok());
  REQUIRE(calib::brier({}, {}, b).ok());
  CHECK(std::isnan(e));
  CHECK(std::isnan(b));
  // Clamping: 0 and 1 are scored as 1e-8 and 1 - 1e-8.
  REQUIRE(calib::brier(std::vector<double>{0.0, 1.0}, std::vector<double>{1, 0}, b).ok());
  CHECK(b == Approx((1 - 1e-8) * (1 - 1e-8)).epsilon(1e-15));
}

// -------------------------------------------------------------------------------------------------
// Accumulator
// -------------------------------------------------------------------------------------------------

TEST_CASE("calib: rounds label the accepted prefix and the summary weights by count", "[calib]") {
  // Three positions. Rounds (cumulative predictions, n, L):
  calib::reliability_accumulator acc(3);
  REQUIRE(acc.add_round(std::vector<double>{.9, .8, .7}, 3, 3).ok()); // labels 1 1 1
  REQUIRE(acc.add_round(std::vector<double>{.9, .6, .3}, 1, 3).ok()); // labels 1 0 0
  REQUIRE(acc.add_round(std::vector<double>{.4, .2, .1}, 0, 2).ok()); // labels 0 0 (L = 2)
  REQUIRE(acc.add_round(std::vector<double>{.7, .5}, 1, 1).ok());     // label 1 (only L read)
  REQUIRE(acc.add_round(std::vector<double>{}, 0, 0).ok());           // empty proposal: nothing

  CHECK(acc.count(0) == 4);
  CHECK(acc.count(1) == 3);
  CHECK(acc.count(2) == 2);
  const std::vector<calib::position_metrics> m = acc.per_position();
  REQUIRE(m.size() == 3);
  // Position 0: pred {.9, .9, .4, .7}, labels {1, 1, 0, 1}.
  CHECK(m[0].target_mean == golden(0.75));
  CHECK(m[0].pred_mean == golden(2.9 / 4));
  CHECK(m[0].auroc == golden(1.0));
  CHECK(m[0].brier == golden((.01 + .01 + .16 + .09) / 4));
  // Position 1: pred {.8, .6, .2}, labels {1, 0, 0}.
  CHECK(m[1].target_mean == golden(1.0 / 3));
  CHECK(m[1].auroc == golden(1.0));
  // Position 2: pred {.7, .3}, labels {1, 0}: bins 14 and 6, ECE = (.3 + .3) / 2.
  CHECK(m[2].ece == golden(0.3));

  std::vector<double> p0{.9, .9, .4, .7}, y0{1, 1, 0, 1};
  double e0 = 0;
  REQUIRE(calib::ece(p0, y0, e0).ok());
  CHECK(m[0].ece == golden(e0));

  const calib::position_metrics s = acc.summary();
  CHECK(s.count == 9);
  CHECK(s.ece == golden((4 * m[0].ece + 3 * m[1].ece + 2 * m[2].ece) / 9));
  CHECK(s.brier == golden((4 * m[0].brier + 3 * m[1].brier + 2 * m[2].brier) / 9));
  CHECK(s.target_mean == golden(5.0 / 9));

  // A position whose labels are all equal has a NaN AUROC and drops out of the AUROC mean only.
  calib::reliability_accumulator acc2(2);
  REQUIRE(acc2.add_round(std::vector<double>{.9, .5}, 2, 2).ok());
  REQUIRE(acc2.add_round(std::vector<double>{.8, .2}, 2, 2).ok());
  REQUIRE(acc2.add_round(std::vector<double>{.3, .1}, 1, 2).ok());
  const calib::position_metrics q0 = acc2.metrics(0);
  const calib::position_metrics q1 = acc2.metrics(1);
  CHECK(std::isnan(q0.auroc));
  CHECK(q1.auroc == golden(1.0));
  const calib::position_metrics s2 = acc2.summary();
  CHECK(s2.auroc == golden(1.0));
  CHECK(s2.ece == golden((q0.ece + q1.ece) / 2));

  // Empty accumulator: NaN summary.
  const calib::position_metrics none = calib::reliability_accumulator(4).summary();
  CHECK(none.count == 0);
  CHECK(std::isnan(none.ece));
  CHECK(std::isnan(none.auroc));
}

TEST_CASE("calib: merge equals one accumulator fed everything; logits rounds match", "[calib]") {
  calib::reliability_accumulator all(3), a(3), b(3), via_logits(3);
  std::mt19937_64 rng(17);
  const std::vector<double> temps{2.0, 1.5, 0.75};
  for (int r = 0; r < 200; ++r) {
    std::vector<double> z(3), c(3), cum(3);
    for (double& v : z)
      v = 6.0 * u01(rng) - 3.0;
    const index_t len = 1 + static_cast<index_t>(rng() % 3);
    const index_t n = static_cast<index_t>(rng() % static_cast<std::uint64_t>(len + 1));
    REQUIRE(calib::calibrate(z, temps, c, cum).ok());
    REQUIRE(all.add_round(cum, n, len).ok());
    REQUIRE((r % 2 ? a : b).add_round(cum, n, len).ok());
    REQUIRE(via_logits.add_round_logits(z, n, len, temps).ok());
  }
  REQUIRE(a.merge(b).ok());
  for (index_t p = 0; p < 3; ++p) {
    const calib::position_metrics x = all.metrics(p), y = a.metrics(p), w = via_logits.metrics(p);
    CHECK(x.count == y.count);
    CHECK(x.ece == golden(y.ece));
    CHECK(x.auroc == golden(y.auroc));
    CHECK(x.brier == golden(y.brier));
    CHECK(x.count == w.count);
    CHECK(x.ece == golden(w.ece));
    CHECK(x.auroc == golden(w.auroc));
  }
  CHECK(a.merge(calib::reliability_accumulator(2)).code == errc::shape_mismatch);
  a.reset();
  CHECK(a.count(0) == 0);
  CHECK(a.positions() == 3);
}

TEST_CASE("calib: bad input to the metrics is reported and changes nothing", "[calib][bad]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  double out = 42;
  CHECK(calib::ece(std::vector<double>{.5, nan}, std::vector<double>{1, 0}, out).code
        == errc::invalid_value);
  CHECK(calib::auroc(std::vector<double>{.5, 1.5}, std::vector<double>{1, 0}, out).code
        == errc::invalid_value);
  CHECK(calib::brier(std::vector<double>{.5, -.1}, std::vector<double>{1, 0}, out).code
        == errc::invalid_value);
  CHECK(calib::ece(std::vector<double>{.5, .6}, std::vector<double>{1, 2}, out).code
        == errc::invalid_value);
  CHECK(calib::auroc(std::vector<double>{.5, .6}, std::vector<double>{1, .5}, out).code
        == errc::invalid_value);
  CHECK(calib::brier(std::vector<double>{.5, .6}, std::vector<double>{1, nan}, out).code
        == errc::invalid_value);
  CHECK(calib::ece(std::vector<double>{.5, .6}, std::vector<double>{1}, out).code
        == errc::shape_mismatch);
  calib::position_metrics m;
  CHECK(calib::reliability(std::vector<double>{.5}, std::vector<double>{1, 0}, m).code
        == errc::shape_mismatch);
  CHECK(out == 42);
  CHECK(m.count == 0);

  calib::reliability_accumulator acc(2);
  CHECK(acc.add(2, .5, 1).code == errc::invalid_argument);
  CHECK(acc.add(-1, .5, 1).code == errc::invalid_argument);
  CHECK(acc.add(0, nan, 1).code == errc::invalid_value);
  CHECK(acc.add(0, .5, 3).code == errc::invalid_value);
  const std::vector<double> ok2{.5, .4};
  CHECK(acc.add_round(ok2, 3, 2).code == errc::invalid_argument);  // n > L
  CHECK(acc.add_round(ok2, -1, 2).code == errc::invalid_argument); // n < 0
  CHECK(acc.add_round(ok2, 0, -1).code == errc::invalid_argument); // L < 0
  CHECK(acc.add_round(std::vector<double>{.5, .4, .3}, 0, 3).code == errc::shape_mismatch);
  CHECK(acc.add_round(std::vector<double>{.5}, 0, 2).code == errc::shape_mismatch);
  CHECK(acc.add_round(std::vector<double>{.5, nan}, 1, 2).code == errc::invalid_value);
  CHECK(acc.add_round(std::vector<double>{.5, 1.2}, 1, 2).code == errc::invalid_value);
  CHECK(acc.add_round_logits(std::vector<double>{.5, nan}, 1, 2).code == errc::invalid_value);
  CHECK(acc.add_round_logits(std::vector<float>{.5f, 1.f}, 1, 2, std::vector<double>{1.0}).code
        == errc::shape_mismatch);
  CHECK(acc.add_round_logits(ok2, 1, 2, std::vector<double>{1.0, 0.0}).code
        == errc::invalid_temperature);
  CHECK(acc.add_round_logits(ok2, 1, 2, std::vector<double>{1.0, nan}).code
        == errc::invalid_temperature);
  // Nothing was recorded by the failed calls (validation precedes every update).
  CHECK(acc.count(0) == 0);
  CHECK(acc.count(1) == 0);
}

// -------------------------------------------------------------------------------------------------
// G11: Sequential Temperature Scaling
// -------------------------------------------------------------------------------------------------

namespace {
// STS-1: z = [2, 1] in every round; six rounds accept draft 1, four of them also draft 2.
round_set sts1_rounds() {
  round_set s;
  for (int j = 0; j < 10; ++j) {
    s.z.push_back({2.0, 1.0});
    s.accepted.push_back(j < 4 ? 2 : (j < 6 ? 1 : 0));
  }
  return s;
}
} // namespace

TEST_CASE("G11 STS-1: hand-checkable temperatures 5 and 1.5", "[golden][calib][sts]") {
  const round_set data = sts1_rounds();
  const std::vector<calib::sts_round> rounds = data.views();
  calib::sts_result r;
  REQUIRE(calib::fit_sts(rounds, calib::sts_config{}, r).ok());
  const std::vector<double> grid = calib::sts_grid_default();
  REQUIRE(grid == std::vector<double>{0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6});
  REQUIRE(r.positions() == 2);
  CHECK(r.temperatures == std::vector<double>{5.0, 1.5});
  CHECK(r.count == std::vector<std::int64_t>{10, 10});
  CHECK(r.ece_at(0, grid_index(grid, 4.0)) == golden(0.022459));
  CHECK(r.ece_at(0, grid_index(grid, 5.0)) == golden(0.001312));
  CHECK(r.ece_at(0, grid_index(grid, 6.0)) == golden(0.017430));
  CHECK(r.ece_at(1, grid_index(grid, 1.25)) == golden(0.013079));
  CHECK(r.ece_at(1, grid_index(grid, 1.5)) == golden(0.004413));
  CHECK(r.ece_at(1, grid_index(grid, 2.0)) == golden(0.027341));
  CHECK(r.ece[0] == golden(0.001312));
  CHECK(r.ece[1] == golden(0.004413));
  CHECK(r.ece_raw[0] == golden(0.280797));
  CHECK(r.ece_raw[1] == golden(0.243914));
  // Single bin: ECE(T) = |sigma(2/T) - .6| at position 1, |sigma(.4) sigma(1/T) - .4| at 2.
  for (index_t g = 0; g < r.grid_size; ++g) {
    const double t = grid[static_cast<std::size_t>(g)];
    CHECK(r.ece_at(0, g) == Approx(std::fabs(logistic(2 / t) - .6)).margin(1e-12));
    CHECK(r.ece_at(1, g) == Approx(std::fabs(logistic(.4) * logistic(1 / t) - .4)).margin(1e-12));
  }
  CHECK(std::isnan(r.ece_at(2, 0)));
  CHECK(std::isnan(r.ece_at(0, r.grid_size)));

  // The convenience overload gives the same temperatures.
  std::vector<double> t;
  REQUIRE(calib::fit_sts(rounds, grid, t).ok());
  CHECK(t == r.temperatures);
}

TEST_CASE("G11 STS-2: multi-bin regression, T1 = 4 and T2 = 3, ECE not monotone in T2",
          "[golden][calib][sts]") {
  const std::vector<std::vector<double>> z{
      {3, 2}, {2.5, 1}, {2, 3}, {2, 2}, {1.5, .5}, {1, 1}, {3, 2.5}, {.5, 1}, {2.5, 2}, {1.5, 0}};
  const std::vector<std::vector<int>> y{
      {1, 1}, {1, 0}, {1, 1}, {0, 0}, {1, 0}, {0, 0}, {1, 1}, {0, 0}, {0, 0}, {1, 0}};
  round_set data;
  data.z = z;
  for (const std::vector<int>& lab : y)
    data.accepted.push_back(lab[0] + lab[0] * lab[1]); // prefix labels -> accepted count
  const std::vector<calib::sts_round> rounds = data.views();
  calib::sts_config cfg;
  cfg.grid = {.5, .75, 1, 1.25, 1.5, 2, 2.5, 3, 4};
  calib::sts_result r;
  REQUIRE(calib::fit_sts(rounds, cfg, r).ok());
  CHECK(r.temperatures == std::vector<double>{4.0, 3.0});
  CHECK(r.ece[0] == golden(0.136755));
  CHECK(r.ece[1] == golden(0.299571));
  CHECK(r.ece_raw[0] == golden(0.342310));
  CHECK(r.ece_raw[1] == golden(0.397032));
  // Non-monotone: going from T2 = 1 to 1.25 makes ECE worse (.310 -> .418), 1.5 better (.311),
  // and the minimum is at 3: a search that stopped at the first increase would miss it.
  const index_t g1 = grid_index(cfg.grid, 1.0), g125 = grid_index(cfg.grid, 1.25),
                g15 = grid_index(cfg.grid, 1.5);
  CHECK(r.ece_at(1, g125) == Approx(0.418).margin(1e-3));
  CHECK(r.ece_at(1, g15) == Approx(0.311).margin(1e-3));
  CHECK(r.ece_at(1, g125) > r.ece_at(1, g1));
  CHECK(r.ece_at(1, g15) < r.ece_at(1, g125));
  for (index_t g = 0; g < r.grid_size; ++g)
    CHECK(r.ece_at(1, g) >= r.ece[1]);
}

TEST_CASE("calib: STS soft labels are products of the analytic acceptances", "[calib][sts]") {
  // STS-1 with soft labels c* = (.6, 2/3) in every round: y1 = .6 and y2 = .4 as in STS-1.
  round_set data = sts1_rounds();
  for (std::size_t j = 0; j < data.z.size(); ++j) {
    data.soft.push_back({.6, 2.0 / 3.0});
    data.accepted[j] = 0; // ignored with soft labels
  }
  calib::sts_config cfg;
  cfg.labels = calib::sts_labels::soft;
  calib::sts_result r;
  REQUIRE(calib::fit_sts(data.views(), cfg, r).ok());
  CHECK(r.temperatures == std::vector<double>{5.0, 1.5});
  CHECK(r.ece[0] == golden(0.001312));
  CHECK(r.ece[1] == golden(0.004413));
}

TEST_CASE("calib: STS keeps T = 1 where no round reaches; ties go to the first grid value",
          "[calib][sts]") {
  round_set data;
  data.z = {{2.0}, {2.0, 1.0}, {1.0}};
  data.accepted = {1, 1, 0};
  calib::sts_config cfg;
  cfg.positions = 4;
  calib::sts_result r;
  REQUIRE(calib::fit_sts(data.views(), cfg, r).ok());
  REQUIRE(r.positions() == 4);
  CHECK(r.count == std::vector<std::int64_t>{3, 1, 0, 0});
  CHECK(r.temperatures[2] == 1.0);
  CHECK(r.temperatures[3] == 1.0);
  CHECK(std::isnan(r.ece[2]));
  CHECK(std::isnan(r.ece_raw[3]));
  CHECK(std::isnan(r.ece_at(3, 0)));

  // Saturated logits: sigmoid(60 / T) rounds to 1 for both candidates, so the ECEs tie exactly.
  round_set sat;
  sat.z = {{60.0}, {60.0}};
  sat.accepted = {1, 1};
  calib::sts_config first;
  first.grid = {1.0, 0.5};
  REQUIRE(calib::fit_sts(sat.views(), first, r).ok());
  REQUIRE(r.ece_at(0, 0) == r.ece_at(0, 1));
  CHECK(r.temperatures == std::vector<double>{1.0});
  first.grid = {0.5, 1.0};
  REQUIRE(calib::fit_sts(sat.views(), first, r).ok());
  CHECK(r.temperatures == std::vector<double>{0.5});

  // No rounds at all: nothing to fit.
  REQUIRE(calib::fit_sts({}, calib::sts_config{}, r).ok());
  CHECK(r.positions() == 0);
}

TEST_CASE("calib: calibrate gives sigmoid(z / T) and cumulative products", "[calib][sts]") {
  // G7's logits z = [.4, 0, 1.25] at T = 1.
  const std::vector<double> z{.4, 0, 1.25};
  std::vector<double> c(3), a(3);
  REQUIRE(calib::calibrate(z, {}, c, a).ok());
  CHECK(c[0] == golden(0.598688));
  CHECK(c[1] == golden(0.5));
  CHECK(c[2] == golden(0.777300));
  CHECK(a[0] == golden(0.598688));
  CHECK(a[1] == golden(0.299344));
  CHECK(a[2] == golden(0.232680));
  const std::vector<double> t{2.0, 1.0, 0.5, 7.0}; // extra temperatures are ignored
  REQUIRE(calib::calibrate(z, t, c, a).ok());
  CHECK(c[0] == golden(logistic(.2)));
  CHECK(c[2] == golden(logistic(2.5)));
  CHECK(a[2] == golden(logistic(.2) * .5 * logistic(2.5)));
  CHECK(calib::calibrated_confidence(1.25, 0.5) == golden(logistic(2.5)));
  CHECK(std::isnan(calib::calibrated_confidence(1.0, 0.0)));
  // Float logits, no cumulative output; infinite logits saturate.
  const std::vector<float> zf{.4f, -INFINITY, INFINITY};
  REQUIRE(calib::calibrate(zf, t, c).ok());
  CHECK(c[0] == golden(logistic(.2)));
  CHECK(c[1] == 0.0);
  CHECK(c[2] == 1.0);
  // Stable for large |z|: no overflow to NaN.
  REQUIRE(calib::calibrate(std::vector<double>{-800, 800}, {}, c).ok());
  CHECK(c[0] == 0.0);
  CHECK(c[1] == 1.0);
}

TEST_CASE("calib: bad input to STS and calibrate is reported and changes nothing",
          "[calib][sts][bad]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const round_set data = sts1_rounds();
  const std::vector<calib::sts_round> rounds = data.views();
  calib::sts_result r;
  r.temperatures = {42.0};
  calib::sts_config cfg;
  cfg.grid = {};
  CHECK(calib::fit_sts(rounds, cfg, r).code == errc::invalid_argument);
  for (const double bad : {0.0, -1.0, nan, std::numeric_limits<double>::infinity()}) {
    cfg.grid = {1.0, bad};
    CHECK(calib::fit_sts(rounds, cfg, r).code == errc::invalid_temperature);
  }
  std::vector<double> temps{42.0};
  CHECK(calib::fit_sts(rounds, std::vector<double>{}, temps).code == errc::invalid_argument);
  CHECK(calib::validate_grid(calib::sts_grid_default()).ok());

  cfg = calib::sts_config{};
  cfg.positions = -1;
  CHECK(calib::fit_sts(rounds, cfg, r).code == errc::invalid_argument);
  cfg.positions = 1; // rounds have L = 2
  CHECK(calib::fit_sts(rounds, cfg, r).code == errc::shape_mismatch);

  round_set bad = data;
  bad.accepted[3] = 3; // n > L
  CHECK(calib::fit_sts(bad.views(), calib::sts_config{}, r).code == errc::invalid_argument);
  bad.accepted[3] = -1;
  CHECK(calib::fit_sts(bad.views(), calib::sts_config{}, r).code == errc::invalid_argument);
  bad = data;
  bad.z[5][1] = nan;
  CHECK(calib::fit_sts(bad.views(), calib::sts_config{}, r).code == errc::invalid_value);

  calib::sts_config soft;
  soft.labels = calib::sts_labels::soft;
  CHECK(calib::fit_sts(rounds, soft, r).code == errc::shape_mismatch); // no soft labels given
  bad = data;
  for (std::size_t j = 0; j < bad.z.size(); ++j)
    bad.soft.push_back({.5, .5});
  bad.soft[2][1] = 1.5;
  CHECK(calib::fit_sts(bad.views(), soft, r).code == errc::invalid_value);
  bad.soft[2] = {.5};
  CHECK(calib::fit_sts(bad.views(), soft, r).code == errc::shape_mismatch);
  CHECK(r.temperatures == std::vector<double>{42.0});
  CHECK(temps == std::vector<double>{42.0});

  std::vector<double> c(3, -1.0), a(3, -1.0);
  const std::vector<double> z{1, 2, 3};
  CHECK(calib::calibrate(z, {}, std::span<double>(c.data(), 2)).code == errc::shape_mismatch);
  CHECK(calib::calibrate(z, {}, c, std::span<double>(a.data(), 2)).code == errc::shape_mismatch);
  CHECK(calib::calibrate(z, std::vector<double>{1, 1}, c).code == errc::shape_mismatch);
  CHECK(calib::calibrate(z, std::vector<double>{1, 0, 1}, c).code == errc::invalid_temperature);
  CHECK(calib::calibrate(z, std::vector<double>{1, -2, 1}, c, a).code == errc::invalid_temperature);
  CHECK(calib::calibrate(std::vector<double>{1, nan, 3}, {}, c, a).code == errc::invalid_value);
  CHECK(c == std::vector<double>(3, -1.0));
  CHECK(a == std::vector<double>(3, -1.0));
}

// -------------------------------------------------------------------------------------------------
// Properties
// -------------------------------------------------------------------------------------------------

TEST_CASE("calib: AUROC is invariant under temperature scaling and equals Mann-Whitney",
          "[calib][property]") {
  // Well separated logits (step .25 in [-3, 3]) keep every scaled prediction in its own fine bin
  // for T in [.5, 3]: the fine-bin estimator is then the exact pairwise statistic.
  std::mt19937_64 rng(5);
  std::vector<double> z;
  std::vector<double> label;
  for (int i = -12; i <= 12; ++i) {
    z.push_back(0.25 * i);
    label.push_back(u01(rng) < logistic(0.25 * i) ? 1.0 : 0.0);
  }
  double pairs = 0, wins = 0;
  for (std::size_t i = 0; i < z.size(); ++i)
    for (std::size_t j = 0; j < z.size(); ++j)
      if (label[i] == 1 && label[j] == 0) {
        pairs += 1;
        wins += z[i] > z[j] ? 1.0 : (z[i] == z[j] ? 0.5 : 0.0);
      }
  REQUIRE(pairs > 0);
  const double mann_whitney = wins / pairs;
  REQUIRE(mann_whitney > 0.5);
  REQUIRE(mann_whitney < 1.0);
  for (const double t : {0.5, 1.0, 1.5, 2.0, 3.0}) {
    std::vector<double> c(z.size());
    REQUIRE(calib::calibrate(z, std::vector<double>(z.size(), t), c).ok());
    // calibrate() scales every position by its own T: here each entry is one sample.
    double a = 0;
    REQUIRE(calib::auroc(c, label, a).ok());
    CHECK(a == Approx(mann_whitney).margin(1e-12));
  }
}

namespace {
// Overconfident synthetic rounds: the true conditional acceptance of draft k is q, the head
// reports logit 2.5 logit(q) + noise; drafts are accepted sequentially with probability q.
round_set overconfident_rounds(std::uint64_t seed, int count, int gamma) {
  std::mt19937_64 rng(seed);
  round_set s;
  for (int j = 0; j < count; ++j) {
    const int len = 1 + static_cast<int>(rng() % static_cast<std::uint64_t>(gamma));
    std::vector<double> z;
    index_t n = 0;
    bool alive = true;
    for (int k = 0; k < len; ++k) {
      const double q = 0.2 + 0.75 * u01(rng);
      z.push_back(2.5 * logit(q) + 0.3 * (u01(rng) - 0.5));
      if (alive && u01(rng) < q)
        ++n;
      else
        alive = false;
    }
    s.z.push_back(z);
    s.accepted.push_back(n);
  }
  return s;
}

// ECE at position k of the cumulative products calibrated with `temps`, via the public API.
double position_ece(const round_set& s, const std::vector<double>& temps, std::size_t k) {
  std::vector<double> pred, label;
  bool ok = true;
  for (std::size_t j = 0; j < s.z.size(); ++j) {
    if (s.z[j].size() <= k)
      continue;
    std::vector<double> c(s.z[j].size()), a(s.z[j].size());
    ok = ok && calib::calibrate(s.z[j], temps, c, a).ok();
    pred.push_back(a[k]);
    label.push_back(static_cast<index_t>(k) < s.accepted[j] ? 1.0 : 0.0);
  }
  double e = 0;
  REQUIRE(ok);
  REQUIRE(calib::ece(pred, label, e).ok());
  return e;
}
} // namespace

TEST_CASE("calib: STS never raises a position's ECE over T = 1 given the calibrated prefix",
          "[calib][sts][property]") {
  const int gamma = 4;
  for (const std::uint64_t seed : {1u, 2u, 3u}) {
    const round_set s = overconfident_rounds(seed, 1500, gamma);
    calib::sts_result r;
    REQUIRE(calib::fit_sts(s.views(), calib::sts_config{}, r).ok());
    REQUIRE(r.positions() == gamma);
    // The head is overconfident: position 1 needs T > 1 and calibration helps a lot there.
    CHECK(r.temperatures[0] > 1.0);
    CHECK(r.ece[0] < 0.5 * r.ece_raw[0]);
    for (std::size_t k = 0; k < static_cast<std::size_t>(gamma); ++k) {
      // Independent recomputation through calibrate() and ece().
      const double fitted = position_ece(s, r.temperatures, k);
      CHECK(r.ece[k] == Approx(fitted).margin(1e-12));
      std::vector<double> unit = r.temperatures;
      unit[k] = 1.0;
      CHECK(fitted <= position_ece(s, unit, k) + 1e-12);
      // Raw ECE: every temperature 1.
      CHECK(r.ece_raw[k]
            == Approx(position_ece(s, std::vector<double>(gamma, 1.0), k)).margin(1e-12));
    }
  }
}

TEST_CASE("calib: calibrated cumulative confidences have a small ECE, overconfident ones do not",
          "[calib][property]") {
  // 10^5 rounds of gamma = 3: conditional c_k ~ U(.05, .95), drafts accepted sequentially with
  // probability c_k, so pred_k = prod c_i is exactly P(label_k = 1). Expected ECE with 20 bins
  // and 10^5 samples is ~.005; the bound is 0.015. Tripling the logits is overconfident.
  const int rounds = 100000;
  const double bound = 0.015;
  calib::reliability_accumulator calibrated(3), overconfident(3);
  std::mt19937_64 rng(2024);
  bool added = true;
  for (int j = 0; j < rounds; ++j) {
    std::vector<double> z(3), z3(3);
    index_t n = 0;
    bool alive = true;
    for (std::size_t k = 0; k < 3; ++k) {
      const double c = 0.05 + 0.9 * u01(rng);
      z[k] = logit(c);
      z3[k] = 3.0 * z[k];
      if (alive && u01(rng) < c)
        ++n;
      else
        alive = false;
    }
    added = added && calibrated.add_round_logits(z, n, 3).ok()
            && overconfident.add_round_logits(z3, n, 3).ok();
  }
  REQUIRE(added);
  for (index_t p = 0; p < 3; ++p) {
    const calib::position_metrics good = calibrated.metrics(p);
    const calib::position_metrics bad = overconfident.metrics(p);
    CHECK(good.count == rounds);
    CHECK(good.ece < bound);
    CHECK(bad.ece > bound);
    CHECK(std::fabs(good.pred_mean - good.target_mean) < bound);
    if (p == 0) // position 1: same ranking, so the same AUROC up to fine-bin ties
      CHECK(good.auroc == Approx(bad.auroc).margin(0.002));
  }
  CHECK(calibrated.summary().ece < bound);
  CHECK(overconfident.summary().ece > 3 * bound);
}

// -------------------------------------------------------------------------------------------------
// G9: round metrics
// -------------------------------------------------------------------------------------------------

TEST_CASE("G9: acceptance metrics of five rounds, the last EOS-terminated", "[golden][metrics]") {
  decode::round_metrics m;
  REQUIRE(m.add(4, 4, false).ok());
  REQUIRE(m.add(4, 0, false).ok());
  REQUIRE(m.add(4, 2, false).ok());
  REQUIRE(m.add(4, 1, false).ok());
  REQUIRE(m.add(2, 2, true).ok());
  CHECK(m.rounds() == 5);
  CHECK(m.terminated_rounds() == 1);
  CHECK(m.tau_total() == 13);
  CHECK(m.proposed_total() == 18);
  CHECK(m.accepted_total() == 9);
  CHECK(m.max_proposed() == 4);
  CHECK(m.tau_mean() == golden(2.6));
  CHECK(m.draft_tokens_per_proposal() == golden(3.6));
  CHECK(m.verify_rate() == golden(13.0 / 23));
  CHECK(m.verify_rate() == golden(0.565217));
  const double rates[] = {.8, .6, .25, .25};
  const double cond[] = {.8, .75, .5, 1.0};
  for (index_t i = 0; i < 4; ++i) {
    CHECK(m.accept_rate_at(i) == golden(rates[i]));
    CHECK(m.conditional_acceptance(i + 1) == golden(cond[i]));
  }
  CHECK(std::isnan(m.accept_rate_at(4)));
  CHECK(std::isnan(m.accept_rate_at(-1)));
  CHECK(std::isnan(m.conditional_acceptance(0)));
  CHECK(std::isnan(m.conditional_acceptance(5)));

  // The records: tau = n + 1, except n for the terminated round.
  const decode::round_record last = decode::make_round_record(2, 2, true);
  CHECK(last.tau == 2);
  CHECK(last.terminated());
  CHECK(decode::make_round_record(4, 4, false).tau == 5);
  CHECK_FALSE(decode::make_round_record(4, 4, false).terminated());

  // Split over two workers and merged: the same numbers.
  decode::round_metrics a, b;
  REQUIRE(a.add(decode::round_record{4, 4, 5}).ok());
  REQUIRE(a.add(decode::round_record{2, 2, 2}).ok());
  REQUIRE(b.add(decode::round_record{4, 0, 1}).ok());
  REQUIRE(b.add(decode::round_record{4, 2, 3}).ok());
  REQUIRE(b.add(decode::round_record{4, 1, 2}).ok());
  a += b;
  CHECK(a.rounds() == 5);
  CHECK(a.tau_mean() == golden(2.6));
  CHECK(a.verify_rate() == golden(0.565217));
  for (index_t i = 0; i < 4; ++i) {
    CHECK(a.accept_rate_at(i) == golden(rates[i]));
    CHECK(a.conditional_acceptance(i + 1) == golden(cond[i]));
  }
  a.reset();
  CHECK(a.rounds() == 0);
  CHECK(std::isnan(a.tau_mean()));
  CHECK(std::isnan(a.verify_rate()));
  CHECK(std::isnan(a.draft_tokens_per_proposal()));
  CHECK(std::isnan(a.accept_rate_at(0)));
}

TEST_CASE("metrics: rates match brute-force counts over random rounds", "[metrics][property]") {
  std::mt19937_64 rng(99);
  const int gamma = 6;
  std::vector<decode::round_record> recs;
  decode::round_metrics m;
  bool added = true;
  for (int j = 0; j < 3000; ++j) {
    const index_t p = static_cast<index_t>(rng() % (gamma + 1));
    const index_t n = static_cast<index_t>(rng() % static_cast<std::uint64_t>(p + 1));
    const bool term = n > 0 && rng() % 10 == 0;
    recs.push_back(decode::make_round_record(p, n, term));
    added = added && m.add(recs.back()).ok();
  }
  REQUIRE(added);
  for (index_t i = 0; i < gamma; ++i) {
    double num = 0, den = 0, cnum = 0, cden = 0;
    for (const decode::round_record& r : recs) {
      num += r.accepted > i;
      den += r.proposed > i;
      const index_t k = i + 1;
      cnum += r.accepted >= k;
      cden += r.accepted >= k - 1 && r.proposed >= k;
    }
    CHECK(m.accept_rate_at(i) == Approx(num / den).margin(1e-15));
    CHECK(m.conditional_acceptance(i + 1) == Approx(cnum / cden).margin(1e-15));
  }
  // Fixed-length eval (every P = gamma): cond_k = A_k / A_{k-1}, accept_rate@i = A_{i+1} / R.
  decode::round_metrics fixed;
  std::vector<double> at_least(gamma + 1, 0.0);
  const int rounds = 2000;
  for (int j = 0; j < rounds; ++j) {
    const index_t n = static_cast<index_t>(rng() % (gamma + 1));
    added = added && fixed.add(gamma, n, false).ok();
    for (index_t k = 0; k <= n; ++k)
      at_least[static_cast<std::size_t>(k)] += 1;
  }
  REQUIRE(added);
  for (std::size_t k = 1; k <= static_cast<std::size_t>(gamma); ++k) {
    CHECK(fixed.conditional_acceptance(static_cast<index_t>(k))
          == Approx(at_least[k] / at_least[k - 1]).margin(1e-15));
    CHECK(fixed.accept_rate_at(static_cast<index_t>(k - 1))
          == Approx(at_least[k] / rounds).margin(1e-15));
  }
}

TEST_CASE("metrics: inconsistent round records are rejected", "[metrics][bad]") {
  decode::round_metrics m;
  CHECK(m.add(2, 3, false).code == errc::invalid_argument);                   // n > P
  CHECK(m.add(-1, 0, false).code == errc::invalid_argument);                  // P < 0
  CHECK(m.add(2, -1, false).code == errc::invalid_argument);                  // n < 0
  CHECK(m.add(3, 0, true).code == errc::invalid_argument);                    // EOS needs n >= 1
  CHECK(m.add(decode::round_record{3, 1, 3}).code == errc::invalid_argument); // tau != n, n+1
  CHECK(m.add(decode::max_round_proposal + 1, 0, false).code == errc::overflow);
  CHECK(m.rounds() == 0);
  CHECK(m.max_proposed() == 0);
  CHECK(decode::round_record{0, 0, 1}.validate().ok()); // empty proposal: tau = 1
}

// -------------------------------------------------------------------------------------------------
// G2's analytic acceptance and E[tau]; G12 training quantities
// -------------------------------------------------------------------------------------------------

TEST_CASE("G2: analytic acceptance c* = [.8, .6, .5] and E[tau] = 2.52", "[golden][metrics]") {
  const std::vector<std::vector<double>> p_d{{.5, .3, .1, .1}, {.2, .6, .1, .1}, {.1, .1, .4, .4}};
  const std::vector<std::vector<double>> p_t{{.7, .1, .1, .1}, {.1, .3, .5, .1}, {.4, .3, .2, .1}};
  const double expected[] = {.8, .6, .5};
  std::vector<double> c(3);
  for (std::size_t k = 0; k < 3; ++k) {
    REQUIRE(decode::analytic_acceptance(p_d[k], p_t[k], c[k]).ok());
    CHECK(c[k] == golden(expected[k]));
    double l1 = 0;
    REQUIRE(decode::l1_distance(p_d[k], p_t[k], l1).ok());
    CHECK(c[k] == golden(1.0 - 0.5 * l1)); // the two forms agree on normalised rows
    const std::vector<float> fd(p_d[k].begin(), p_d[k].end()), ft(p_t[k].begin(), p_t[k].end());
    double cf = 0;
    REQUIRE(decode::analytic_acceptance(fd, ft, cf).ok());
    CHECK(cf == Approx(expected[k]).margin(1e-6));
  }
  double tau = 0;
  REQUIRE(decode::expected_tau(c, tau).ok());
  CHECK(tau == golden(2.52));
  REQUIRE(decode::expected_tau({}, tau).ok());
  CHECK(tau == 1.0);
  // Unnormalised rows clamp to 1.
  double big = 0;
  REQUIRE(
      decode::analytic_acceptance(std::vector<double>{2, 2}, std::vector<double>{1, 1}, big).ok());
  CHECK(big == 1.0);
}

TEST_CASE("G12: position weights, BCE with logits, L1 distance and cross-entropy",
          "[golden][metrics]") {
  std::vector<double> w;
  REQUIRE(decode::position_weights(7, 4.0, w).ok());
  const std::vector<double> w4{1, .7788, .6065, .4724, .3679, .2865, .2231};
  REQUIRE(w.size() == 7);
  for (std::size_t k = 0; k < 7; ++k)
    CHECK(w[k] == Approx(w4[k]).margin(1e-4));
  REQUIRE(decode::position_weights(7, 7.0, w).ok());
  const std::vector<double> w7{1, .8669, .7515, .6514, .5647, .4895, .4244};
  for (std::size_t k = 0; k < 7; ++k)
    CHECK(w[k] == Approx(w7[k]).margin(1e-4));
  REQUIRE(decode::position_weights(0, 4.0, w).ok());
  CHECK(w.empty());

  double bce = 0;
  REQUIRE(decode::bce_with_logits(.4, .8, bce).ok());
  CHECK(bce == golden(0.593015));
  // Stable at large |z|: -log sigma(z) for t = 1.
  REQUIRE(decode::bce_with_logits(800, 1, bce).ok());
  CHECK(bce == Approx(0.0).margin(1e-300));
  REQUIRE(decode::bce_with_logits(-800, 1, bce).ok());
  CHECK(bce == golden(800));
  REQUIRE(decode::bce_with_logits(-3, 0.25, bce).ok());
  CHECK(bce == golden(-(.25 * std::log(logistic(-3)) + .75 * std::log(1 - logistic(-3)))));

  // G2 row 1: ||p_d - p_t||_1 = .4 and CE(x* = 0) = -log p_d(0) = ln 2.
  const std::vector<float> pd{.5f, .3f, .1f, .1f}, pt{.7f, .1f, .1f, .1f};
  double l1 = 0;
  REQUIRE(decode::l1_distance(pd, pt, l1).ok());
  CHECK(l1 == Approx(0.4).margin(1e-6));
  CHECK(-std::log(static_cast<double>(pd[0])) == golden(0.693147));
}

TEST_CASE("metrics: bad input to the analytic and training helpers", "[metrics][bad]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  double out = 42;
  const std::vector<double> row{.5, .5};
  CHECK(decode::analytic_acceptance(row, std::vector<double>{1, 0, 0}, out).code
        == errc::vocab_mismatch);
  CHECK(decode::analytic_acceptance(std::vector<double>{}, std::vector<double>{}, out).code
        == errc::invalid_argument);
  CHECK(decode::analytic_acceptance(row, std::vector<double>{-.1, 1.1}, out).code
        == errc::invalid_value);
  CHECK(decode::analytic_acceptance(row, std::vector<double>{nan, 1}, out).code
        == errc::invalid_value);
  CHECK(decode::analytic_acceptance(row, std::vector<double>{INFINITY, 1}, out).code
        == errc::invalid_value);
  CHECK(decode::expected_tau(std::vector<double>{.5, 1.2}, out).code == errc::invalid_value);
  CHECK(decode::expected_tau(std::vector<double>{nan}, out).code == errc::invalid_value);
  CHECK(decode::bce_with_logits(.4, 1.5, out).code == errc::invalid_value);
  CHECK(decode::bce_with_logits(.4, nan, out).code == errc::invalid_value);
  CHECK(decode::bce_with_logits(nan, .5, out).code == errc::invalid_value);
  CHECK(decode::bce_with_logits(INFINITY, .5, out).code == errc::invalid_value);
  CHECK(decode::l1_distance(row, std::vector<double>{1}, out).code == errc::shape_mismatch);
  CHECK(decode::l1_distance(row, std::vector<double>{1, INFINITY}, out).code
        == errc::invalid_value);
  CHECK(out == 42);
  std::vector<double> w{42};
  CHECK(decode::position_weights(-1, 4, w).code == errc::invalid_argument);
  CHECK(decode::position_weights(3, 0, w).code == errc::invalid_value);
  CHECK(decode::position_weights(3, -1, w).code == errc::invalid_value);
  CHECK(decode::position_weights(3, nan, w).code == errc::invalid_value);
  CHECK(w == std::vector<double>{42});
}
