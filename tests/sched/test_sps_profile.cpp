// SPDX-License-Identifier: Apache-2.0
// SPS(B) profiling against noise (sched/sps_profile.hpp): the best of the repeats per batch size,
// step times made non-decreasing in B (a running maximum), fed with scripted timings so that the
// results are exact; profile_sps's table is monotone whatever the clock measured.

#include <specdec/sched/sps_profile.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace specdec;
using sched::sps_table;

TEST_CASE("monotone_step_seconds: running maximum", "[dspark][sched][cpu]") {
  std::vector<double> t{1.0, 0.8, 2.0, 1.5, 3.0, 3.0, 0.1};
  sched::monotone_step_seconds(t);
  CHECK(t == std::vector<double>{1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0});
  std::vector<double> sorted{0.5, 0.6, 0.7};
  sched::monotone_step_seconds(sorted);
  CHECK(sorted == std::vector<double>{0.5, 0.6, 0.7}); // already monotone: unchanged
  std::vector<double> none;
  sched::monotone_step_seconds(none);
  CHECK(none.empty());
}

TEST_CASE("sps_table_from_samples: best of the repeats, then B = 2 never faster than B = 1",
          "[dspark][sched][cpu]") {
  const std::vector<index_t> batches{1, 2, 4, 8};
  // Rows of 3 samples. B = 1: a noisy 5.0 is ignored (best 0.9). B = 2 measured 0.7, faster than
  // B = 1: smoothed up to 0.9. B = 4: best 1.5. B = 8: best 1.2 < 1.5: smoothed up to 1.5.
  const std::vector<double> samples{
      1.0,
      0.9,
      5.0, // B = 1
      0.7,
      3.0,
      0.8, // B = 2
      2.0,
      1.5,
      1.6, // B = 4
      1.2,
      1.3,
      9.0, // B = 8
  };
  sps_table t;
  REQUIRE(sched::sps_table_from_samples(batches, samples, 3, t).ok());
  REQUIRE(t.size() == 4);
  CHECK(t.values()[0] == 1.0 / 0.9);
  CHECK(t.values()[1] == 1.0 / 0.9);
  CHECK(t.values()[2] == 1.0 / 1.5);
  CHECK(t.values()[3] == 1.0 / 1.5);
  CHECK(t.at(3) == 1.0 / 0.9 + (1.0 / 1.5 - 1.0 / 0.9) * 0.5);

  // Without smoothing B = 2 would run at 1 / 0.7 steps per second: a second token that looks
  // better than free. Algorithm 1 on one request with a 1% draft: raw, Theta(B = 2) =
  // 1.01 / 0.7 > 1 / 0.9 admits it for a fake 57% gain; smoothed, the gain is the draft's 1%.
  const std::vector<double> c{0.01};
  const std::vector<index_t> offsets{0, 1};
  std::vector<index_t> l(1, -1);
  sched::schedule_result res{};
  REQUIRE(sched::schedule_prefixes(c, offsets, t, l, &res).ok());
  CHECK(res.throughput == Approx(1.01 / 0.9).epsilon(1e-12));
  CHECK(res.throughput < 1.02 / 0.9);

  // Zero samples count as one nanosecond; a clean increasing profile is unchanged.
  REQUIRE(sched::sps_table_from_samples(
              std::vector<index_t>{1, 2}, std::vector<double>{0.0, 0.0, 2e-9, 3e-9}, 2, t)
              .ok());
  CHECK(t.values()[0] == 1.0 / 1e-9);
  CHECK(t.values()[1] == 1.0 / 2e-9);
}

TEST_CASE("sps_table_from_samples: random noisy timings give a non-increasing SPS",
          "[dspark][sched][cpu]") {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> noise(0.0, 2.0);
  for (int rep = 0; rep < 200; ++rep) {
    std::vector<index_t> batches;
    for (index_t b = 1; b <= 512; b = b < 8 ? b + 1 : b + b / 4)
      batches.push_back(b);
    const int reps = 1 + rep % 7;
    std::vector<double> samples;
    for (const index_t b : batches)
      for (int k = 0; k < reps; ++k) // true cost 1 + B / 64, plus up to 200% noise
        samples.push_back((1.0 + static_cast<double>(b) / 64.0) * (1.0 + noise(rng)));
    sps_table t;
    REQUIRE(sched::sps_table_from_samples(batches, samples, reps, t).ok());
    bool monotone = true;
    bool best_of = true;
    for (std::size_t i = 0; i < batches.size(); ++i) {
      if (i > 0)
        monotone &= t.values()[i] <= t.values()[i - 1];
      double best = std::numeric_limits<double>::infinity();
      for (int k = 0; k < reps; ++k)
        best = std::min(best,
                        samples[i * static_cast<std::size_t>(reps) + static_cast<std::size_t>(k)]);
      best_of &= t.values()[i] <= 1.0 / best; // smoothing only ever slows a point down
    }
    CHECK(monotone);
    CHECK(best_of);
  }
}

TEST_CASE("sps_table_from_samples: bad input", "[dspark][sched][cpu]") {
  sps_table t;
  REQUIRE(
      sched::sps_table_from_samples(std::vector<index_t>{1}, std::vector<double>{0.5}, 1, t).ok());
  const auto code = [&t](std::vector<index_t> b, std::vector<double> s, int reps) {
    return sched::sps_table_from_samples(b, s, reps, t).code;
  };
  CHECK(code({}, {}, 1) == errc::invalid_argument);
  CHECK(code({1, 2}, {1.0, 2.0}, 0) == errc::invalid_argument);
  CHECK(code({1, 2}, {1.0, 2.0, 3.0}, 1) == errc::invalid_argument);
  CHECK(code({1, 2}, {1.0, 2.0, 3.0}, 2) == errc::invalid_argument);
  CHECK(code({2, 1}, {1.0, 2.0}, 1) == errc::invalid_argument);
  CHECK(code({1, 1}, {1.0, 2.0}, 1) == errc::invalid_argument);
  CHECK(code({0, 1}, {1.0, 2.0}, 1) == errc::invalid_argument);
  CHECK(code({1, 2}, {1.0, -1.0}, 1) == errc::invalid_value);
  CHECK(code({1, 2}, {1.0, std::nan("")}, 1) == errc::invalid_value);
  CHECK(code({1, 2}, {1.0, std::numeric_limits<double>::infinity()}, 1) == errc::invalid_value);
  CHECK(t.values()[0] == 2.0); // untouched on error
}

TEST_CASE("profile_sps: the measured table is non-increasing whatever the clock says",
          "[dspark][sched][cpu]") {
  const auto step = [](index_t b) {
    volatile double sink = 0;
    for (index_t i = 0; i < 50 * b; ++i)
      sink = sink + 1.0;
    return status{};
  };
  const std::vector<index_t> batches{1, 2, 3, 4, 6, 8, 12, 16};
  sps_table t;
  REQUIRE(sched::profile_sps(step, batches, 3, t).ok());
  REQUIRE(t.size() == 8);
  for (std::size_t i = 1; i < batches.size(); ++i)
    CHECK(t.values()[i] <= t.values()[i - 1]);
}
