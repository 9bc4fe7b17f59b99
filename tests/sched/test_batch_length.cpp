// SPDX-License-Identifier: Apache-2.0
// The batch length policies of decode::batch_decoder (sched/batch_length.hpp): fixed gamma and the
// theta cut per request, Algorithm 1 and async top-K equal to the prefix scheduler on the usable
// conditionals, whole_step_table's formula, a per-request step cost that only ever lengthens
// Algorithm 1's prefixes, and malformed inputs.

#include <specdec/calib/threshold.hpp>
#include <specdec/sched/batch_length.hpp>
#include <specdec/sched/prefix_scheduler.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace {

using specdec::index_t;
namespace sched = specdec::sched;

struct batch_input {
  std::vector<index_t> offered, offsets{0};
  std::vector<double> conf;
  [[nodiscard]] sched::batch_length_input view() const {
    return {offered, conf, offsets};
  }
};

batch_input random_input(std::mt19937& g, index_t requests) {
  batch_input in;
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (index_t r = 0; r < requests; ++r) {
    const auto offered = static_cast<index_t>(g() % 8);
    const auto scored = g() % 4 == 0 ? offered / 2 : offered; // sometimes fewer confidences
    in.offered.push_back(offered);
    for (index_t k = 0; k < scored; ++k)
      in.conf.push_back(u(g));
    in.offsets.push_back(static_cast<index_t>(in.conf.size()));
  }
  return in;
}

const sched::sps_table table{{1, 1000.0}, {4, 990.0}, {16, 900.0}, {64, 400.0}, {256, 100.0}};

} // namespace

TEST_CASE("batch lengths: fixed gamma and the theta cut per request", "[sched][batch]") {
  std::mt19937 g(3);
  for (int trial = 0; trial < 200; ++trial) {
    const batch_input in = random_input(g, 1 + static_cast<index_t>(g() % 20));
    std::vector<index_t> lengths(in.offered.size(), -1);
    const sched::batch_fixed_length fixed{3};
    REQUIRE(fixed.choose(in.view(), lengths).ok());
    for (std::size_t r = 0; r < lengths.size(); ++r)
      CHECK(lengths[r] == std::min<index_t>(3, in.offered[r]));
    const sched::batch_threshold_length cut{0.4};
    REQUIRE(cut.choose(in.view(), lengths).ok());
    for (std::size_t r = 0; r < lengths.size(); ++r) {
      const index_t n = std::min(in.offered[r], in.offsets[r + 1] - in.offsets[r]);
      const std::span<const double> c(in.conf.data() + in.offsets[r], static_cast<std::size_t>(n));
      CHECK(lengths[r] == specdec::calib::threshold_cut(c, 0.4));
      CHECK(lengths[r] <= in.offered[r]);
    }
  }
  CHECK(sched::batch_fixed_length{4}.ask(2) == 2);
  CHECK(sched::batch_fixed_length{4}.ask(9) == 4);
  CHECK(sched::batch_threshold_length{}.ask(9) == 9);
}

TEST_CASE("batch lengths: Algorithm 1 and async top-K are the prefix scheduler's choices",
          "[sched][batch]") {
  std::mt19937 g(4);
  sched::batch_prefix_schedule alg1(table);
  sched::batch_async_top_k topk(table);
  sched::async_top_k_scheduler ref_topk;
  for (int trial = 0; trial < 200; ++trial) {
    const batch_input in = random_input(g, 1 + static_cast<index_t>(g() % 40));
    const std::size_t R = in.offered.size();
    // The usable conditionals: at most offered[r] per request.
    std::vector<double> c;
    std::vector<index_t> off{0};
    for (std::size_t r = 0; r < R; ++r) {
      const index_t n = std::min(in.offered[r], in.offsets[r + 1] - in.offsets[r]);
      c.insert(c.end(), in.conf.begin() + in.offsets[r], in.conf.begin() + in.offsets[r] + n);
      off.push_back(static_cast<index_t>(c.size()));
    }
    std::vector<index_t> got(R), want(R);
    REQUIRE(alg1.choose(in.view(), got).ok());
    REQUIRE(sched::schedule_prefixes(c, off, table, want).ok());
    CHECK(got == want);
    REQUIRE(topk.choose(in.view(), got).ok());
    REQUIRE(ref_topk.schedule(c, off, table, want).ok());
    CHECK(got == want);
  }
}

TEST_CASE("batch lengths: a per-request step cost lengthens Algorithm 1's prefixes",
          "[sched][batch]") {
  // whole_step_table's formula.
  sched::sps_table whole;
  sched::whole_step_table(table, 8, 1e-3, whole);
  REQUIRE(whole.validate().ok());
  for (std::size_t i = 0; i < table.batches().size(); ++i)
    CHECK(whole.values()[i] == Approx(1.0 / (8 * 1e-3 + 1.0 / table.values()[i])).epsilon(1e-12));
  sched::whole_step_table(table, 8, 0.0, whole);
  CHECK(whole.values()[2] == table.values()[2]);

  std::mt19937 g(5);
  index_t more = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const batch_input in = random_input(g, 1 + static_cast<index_t>(g() % 60));
    const std::size_t R = in.offered.size();
    sched::batch_prefix_schedule plain(table);
    sched::batch_prefix_schedule costly(table, sched::schedule_mode::early_stop, 2e-3);
    std::vector<index_t> a(R), b(R);
    REQUIRE(plain.choose(in.view(), a).ok());
    REQUIRE(costly.choose(in.view(), b).ok());
    for (std::size_t r = 0; r < R; ++r) {
      CHECK(b[r] >= a[r]); // the same greedy path, stopped no earlier
      more += b[r] - a[r];
    }
  }
  CHECK(more > 0);
}

TEST_CASE("batch lengths: malformed inputs are refused with every length 0", "[sched][batch]") {
  batch_input in;
  in.offered = {2, 3};
  in.conf = {0.5, 0.5, 0.9};
  in.offsets = {0, 2, 3};
  std::vector<index_t> lengths(2, 7);
  std::vector<index_t> wrong(3, 7);
  sched::batch_prefix_schedule alg1(table);
  CHECK(alg1.choose(in.view(), wrong).code == specdec::errc::shape_mismatch);
  CHECK(wrong == std::vector<index_t>(3, 0));
  in.offsets = {0, 3, 2};
  CHECK(sched::batch_threshold_length{}.choose(in.view(), lengths).code
        == specdec::errc::shape_mismatch);
  CHECK(lengths == std::vector<index_t>(2, 0));
  in.offsets = {0, 2, 3};
  in.offered = {-1, 3};
  CHECK(sched::batch_fixed_length{}.choose(in.view(), lengths).code
        == specdec::errc::shape_mismatch);
  in.offered = {2, 3};
  in.conf[0] = std::numeric_limits<double>::quiet_NaN(); // NaN counts as 0: a cut, not an error
  REQUIRE(alg1.choose(in.view(), lengths).ok());
  CHECK(lengths[0] == 0);
  sched::batch_prefix_schedule bad(sched::sps_table{});
  in.conf[0] = 0.5;
  CHECK(bad.choose(in.view(), lengths).code == specdec::errc::invalid_value);
}
