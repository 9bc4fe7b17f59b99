// SPDX-License-Identifier: Apache-2.0
// The processed distribution (temperature, top-k, min-p, top-p) against a sort-based
// double-precision reference, and inverse-CDF sampling.

#include <specdec/cpu/serial_executor.hpp>
#include <specdec/sampling/distribution.hpp>

#include <catch2/catch.hpp>

#include "support/stats.hpp"
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

using namespace specdec;

namespace {
const cpu::serial_executor ex{};

std::vector<float> random_logits(std::size_t n, unsigned seed, bool with_ties) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> v(n);
  for (auto& x : v)
    x = with_ties ? std::round(nd(rng) * 2.0f) / 2.0f : nd(rng);
  return v;
}

double max_abs_diff(const std::vector<float>& logits, const sampling::sampling_params& sp) {
  const sampling::dist_row<float> row{
      logits.data(), static_cast<index_t>(logits.size()), distribution_kind::logits};
  const auto st = sampling::prepare_row(ex, row, sp);
  REQUIRE(st.ok());
  const std::vector<double> values(logits.begin(), logits.end());
  const auto ref_row =
      specdec_test::reference_processed(values, false, specdec_test::reference_params(sp));
  const auto& ref = ref_row.p;
  double worst = 0.0;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    const double got = sampling::prob_at(row, st, static_cast<index_t>(i));
    // The support must match exactly unless a filter decision is within float rounding.
    if ((ref[i] == 0.0) != (got == 0.0) && ref_row.margin > 1e-5)
      return 1.0;
    worst = std::max(worst, std::fabs(got - ref[i]));
  }
  return worst;
}
} // namespace

TEST_CASE("processed distribution matches the reference", "[sampling][cpu]") {
  struct cfg {
    float t;
    int k;
    float p;
    float minp;
  };
  const cfg cfgs[] = {{1.0f, 0, 1.0f, 0.0f},
                      {0.7f, 0, 1.0f, 0.0f},
                      {1.3f, 5, 1.0f, 0.0f},
                      {0.7f, 50, 1.0f, 0.0f},
                      {1.0f, 0, 0.9f, 0.0f},
                      {0.7f, 0, 0.5f, 0.0f},
                      {1.0f, 0, 1.0f, 0.05f},
                      {0.8f, 40, 0.9f, 0.01f},
                      {0.0f, 3, 0.5f, 0.0f},
                      {1.0f, 1, 1.0f, 0.0f},
                      {1.0f, 0, 0.01f, 0.0f}};
  for (bool ties : {false, true}) {
    for (unsigned seed = 1; seed <= 4; ++seed) {
      for (std::size_t n : {7u, 1000u, 4099u}) {
        const auto logits = random_logits(n, seed, ties);
        for (const cfg& c : cfgs) {
          sampling::sampling_params sp;
          sp.temperature = c.t;
          sp.top_k = c.k;
          sp.top_p = c.p;
          sp.min_p = c.minp;
          CAPTURE(ties, seed, n, c.t, c.k, c.p, c.minp);
          CHECK(max_abs_diff(logits, sp) < 1e-5);
        }
      }
    }
  }
}

TEST_CASE("top-k keeps ties at the k-th value; top-p keeps ties at the boundary",
          "[sampling][cpu]") {
  const std::vector<float> logits{3, 2, 2, 2, 1, 0};
  const sampling::dist_row<float> row{logits.data(), 6, distribution_kind::logits};
  sampling::sampling_params sp;
  sp.top_k = 2;
  auto st = sampling::prepare_row(ex, row, sp);
  CHECK(sampling::prob_at(row, st, 3) > 0.0f);
  CHECK(sampling::prob_at(row, st, 4) == 0.0f);
  sp = {};
  sp.top_p = 0.5f; // mass of token 0 alone is below one half
  st = sampling::prepare_row(ex, row, sp);
  for (index_t i = 1; i <= 3; ++i)
    CHECK(sampling::prob_at(row, st, i) > 0.0f);
  CHECK(sampling::prob_at(row, st, 4) == 0.0f);
}

TEST_CASE("probability rows and logit rows give the same processed distribution",
          "[sampling][cpu]") {
  const auto logits = random_logits(500, 9, false);
  std::vector<float> probs(logits.size());
  double z = 0.0;
  for (float x : logits)
    z += std::exp(x);
  for (std::size_t i = 0; i < logits.size(); ++i)
    probs[i] = static_cast<float>(std::exp(logits[i]) / z);
  for (float t : {1.0f, 0.6f}) {
    sampling::sampling_params sp;
    sp.temperature = t;
    sp.top_p = 0.8f;
    const sampling::dist_row<float> lr{logits.data(), 500, distribution_kind::logits};
    const sampling::dist_row<float> pr{probs.data(), 500, distribution_kind::probabilities};
    const auto ls = sampling::prepare_row(ex, lr, sp);
    const auto ps = sampling::prepare_row(ex, pr, sp);
    for (index_t i = 0; i < 500; ++i)
      CHECK(sampling::prob_at(lr, ls, i) == Approx(sampling::prob_at(pr, ps, i)).margin(1e-5));
  }
}

TEST_CASE("half and bfloat16 rows are processed like their float values", "[sampling][cpu]") {
  const auto logits = random_logits(300, 3, false);
  std::vector<half> h(logits.size());
  std::vector<float> hf(logits.size());
  for (std::size_t i = 0; i < logits.size(); ++i) {
    h[i] = dtype_traits<half>::from_float(logits[i]);
    hf[i] = dtype_traits<half>::to_float(h[i]);
  }
  sampling::sampling_params sp;
  sp.top_k = 20;
  const sampling::dist_row<half> hr{h.data(), 300, distribution_kind::logits};
  const sampling::dist_row<float> fr{hf.data(), 300, distribution_kind::logits};
  const auto hs = sampling::prepare_row(ex, hr, sp);
  const auto fs = sampling::prepare_row(ex, fr, sp);
  for (index_t i = 0; i < 300; ++i)
    CHECK(sampling::prob_at(hr, hs, i) == sampling::prob_at(fr, fs, i));
}

TEST_CASE("invalid rows are flagged, -inf logits are legal", "[sampling][cpu]") {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const sampling::sampling_params sp;
  auto flags = [&](std::vector<float> v, distribution_kind k) {
    const sampling::dist_row<float> r{v.data(), static_cast<index_t>(v.size()), k};
    return sampling::prepare_row(ex, r, sp).status;
  };
  CHECK(flags({0, -inf, 1}, distribution_kind::logits).ok());
  CHECK(flags({0, nan, 1}, distribution_kind::logits).has(row_status::target_invalid));
  CHECK(flags({0, inf, 1}, distribution_kind::logits).has(row_status::target_invalid));
  CHECK(flags({-inf, -inf}, distribution_kind::logits).has(row_status::target_zero_mass));
  CHECK(flags({0.5f, -0.1f}, distribution_kind::probabilities).has(row_status::target_invalid));
  CHECK(flags({0.0f, 0.0f}, distribution_kind::probabilities).has(row_status::target_zero_mass));
  CHECK(flags({0.0f, 2.0f}, distribution_kind::probabilities).ok()); // unnormalised is fine
}

TEST_CASE("inverse CDF sampling: boundaries and the all-zero fallback", "[sampling][cpu]") {
  const std::vector<float> p{0.0f, 0.25f, 0.0f, 0.75f, 0.0f};
  const sampling::dist_row<float> row{p.data(), 5, distribution_kind::probabilities};
  const auto st = sampling::prepare_row(ex, row, sampling::sampling_params{});
  CHECK(sampling::sample_row(ex, row, st, 0.0f) == 1);
  CHECK(sampling::sample_row(ex, row, st, 0.2499f) == 1);
  CHECK(sampling::sample_row(ex, row, st, 0.25f) == 3);
  CHECK(sampling::sample_row(ex, row, st, 0.99999994f) == 3);
  // Executor contract: when rounding leaves no crossing, the last positive index.
  CHECK(ex.sample_inverse_cdf(
            5, [&](index_t i) { return p[static_cast<std::size_t>(i)]; }, 5.0f)
        == 3);
  CHECK(ex.sample_inverse_cdf(
            5, [](index_t) { return 0.0f; }, 0.0f)
        == -1);
}

TEST_CASE("sampling params validation names the bad field", "[sampling]") {
  sampling::sampling_params sp;
  CHECK(sp.validate() == errc::ok);
  sp.temperature = -1.0f;
  CHECK(sp.validate() == errc::invalid_temperature);
  sp = {};
  sp.temperature = std::numeric_limits<float>::quiet_NaN();
  CHECK(sp.validate() == errc::invalid_temperature);
  sp = {};
  sp.top_p = 0.0f;
  CHECK(sp.validate() == errc::invalid_top_p);
  sp.top_p = 1.5f;
  CHECK(sp.validate() == errc::invalid_top_p);
  sp = {};
  sp.top_k = -2;
  CHECK(sp.validate() == errc::invalid_top_k);
  sp = {};
  sp.min_p = 1.5f;
  CHECK(sp.validate() == errc::invalid_min_p);
}

namespace {
// The serial executor with a count of threshold probes; past `limit` probes it reports an empty
// range (mass 0, no value below), which ends any bisection, so a regression fails instead of
// hanging.
struct probe_counting_executor : cpu::serial_executor {
  mutable int probes = 0;
  int limit = 200;
  template <class Raw, class G>
  threshold_probe_result threshold_probe(index_t n, Raw raw, G g, float floor, float mid) const {
    if (++probes > limit)
      return {0.0f, detail::infinity(), -detail::infinity()};
    return cpu::serial_executor::threshold_probe(n, raw, g, floor, mid);
  }
};
static_assert(row_executor<probe_counting_executor>);
} // namespace

// Found by fuzzing: the bisection's keys told -0 from +0 while its probes (float >=) did not, so
// lo went back to -0 forever.
TEST_CASE("top-p and top-k bisection ends on rows holding -0 and +0", "[sampling][cpu]") {
  struct row_case {
    std::vector<float> logits;
    int top_k;
    float top_p;
  };
  const float tiny = 0x1p-149f;
  const row_case cases[] = {{{tiny, -0.0f}, 0, 0.99f},
                            {{tiny, -0.0f, 1.0f}, 2, 1.0f},
                            {{-0.0f, 0.0f, tiny, -tiny}, 0, 0.5f},
                            {{0.0f, -0.0f, -0.0f, 0.0f, tiny}, 3, 0.9f},
                            {{-tiny, -0.0f, 0.0f}, 2, 0.7f}};
  for (const row_case& c : cases) {
    probe_counting_executor pex;
    sampling::sampling_params sp;
    sp.temperature = 1.0f;
    sp.top_k = c.top_k;
    sp.top_p = c.top_p;
    const sampling::dist_row<float> row{
        c.logits.data(), static_cast<index_t>(c.logits.size()), distribution_kind::logits};
    const auto st = sampling::prepare_row(pex, row, sp);
    CAPTURE(c.logits.size(), c.top_k, c.top_p, pex.probes);
    REQUIRE(pex.probes <= 80); // two bisections of at most 33 probes plus the plain passes
    REQUIRE(st.ok());
    // The same cut as the serial executor, and the result is a distribution over kept values.
    const auto ref = sampling::prepare_row(ex, row, sp);
    CHECK(detail::float_bits(ref.cut) == detail::float_bits(st.cut));
    double total = 0.0;
    for (index_t i = 0; i < row.vocab; ++i)
      total += sampling::prob_at(row, ref, i);
    CHECK(total == Approx(1.0).epsilon(1e-5));
  }
}
