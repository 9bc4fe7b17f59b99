// SPDX-License-Identifier: Apache-2.0
// core/simd.hpp: every lane of the host vector rules equals its scalar twin in core/math.hpp bit
// for bit (exp over special values, every exponent and random bit patterns; min, max, select).

#include <specdec/core/math.hpp>
#include <specdec/core/simd.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

using namespace specdec;

#if SPECDEC_HOST_SIMD
namespace {
namespace simd = detail::simd;

std::vector<float> test_inputs() {
  std::vector<float> xs = {0.0f,
                           -0.0f,
                           1.0f,
                           -1.0f,
                           88.0f,
                           88.5f,
                           -87.33654f,
                           -87.3366f,
                           -87.33653f,
                           -200.0f,
                           1e30f,
                           -1e30f,
                           std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::infinity(),
                           std::numeric_limits<float>::quiet_NaN(),
                           -std::numeric_limits<float>::quiet_NaN(),
                           1e-40f,
                           -1e-40f,
                           0.34657359f,
                           -0.34657359f};
  std::mt19937 rng(20261207);
  std::uniform_real_distribution<float> u(-100.0f, 100.0f);
  for (int i = 0; i < 400000; ++i)
    xs.push_back(u(rng));
  for (int i = 0; i < 400000; ++i)
    xs.push_back(detail::bits_float(static_cast<std::uint32_t>(rng())));
  while (xs.size() % simd::width != 0)
    xs.push_back(0.0f);
  return xs;
}
} // namespace

TEST_CASE("simd exp_v equals exp_f lane by lane", "[core][simd]") {
  const auto xs = test_inputs();
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < xs.size(); i += simd::width) {
    const simd::vf e = simd::exp_v(simd::load(xs.data() + i));
    for (int c = 0; c < simd::width; ++c)
      mismatches += detail::float_bits(e[c]) != detail::float_bits(detail::exp_f(xs[i + c]));
  }
  CHECK(mismatches == 0);
  CHECK(xs.size() > 800000);
}

TEST_CASE("simd min, max, select and fmul equal the scalar rules", "[core][simd]") {
  const auto xs = test_inputs();
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i + 2 * simd::width <= xs.size(); i += 2 * simd::width) {
    const simd::vf a = simd::load(xs.data() + i);
    const simd::vf b = simd::load(xs.data() + i + simd::width);
    const simd::vf mn = simd::min(a, b);
    const simd::vf mx = simd::max(a, b);
    const simd::vf pr = simd::fmul(a, b);
    const simd::vf sel = simd::select(a < b, a, b);
    for (int c = 0; c < simd::width; ++c) {
      const float x = xs[i + c];
      const float y = xs[i + simd::width + c];
      mismatches += detail::float_bits(mn[c]) != detail::float_bits(detail::min_f(x, y));
      mismatches += detail::float_bits(mx[c]) != detail::float_bits(detail::max_f(x, y));
      mismatches += detail::float_bits(pr[c]) != detail::float_bits(detail::fmul(x, y));
      mismatches += detail::float_bits(sel[c]) != detail::float_bits(x < y ? x : y);
    }
  }
  CHECK(mismatches == 0);
}
#else
TEST_CASE("simd: no vector extensions on this compiler", "[core][simd]") {
  SUCCEED("the executors use their scalar lane loops only");
}
#endif
