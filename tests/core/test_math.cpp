// SPDX-License-Identifier: Apache-2.0
// Host/device scalar math: exp_f accuracy and edge cases, float classification, order keys.

#include <specdec/core/math.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

using namespace specdec;

TEST_CASE("exp_f is within 2 ulp of exp on [-87, 88]", "[core][math]") {
  double worst = 0.0;
  for (float x = -87.0f; x <= 88.0f; x += 0.00731f) {
    const double ref = std::exp(static_cast<double>(x));
    const double rel = std::fabs(detail::exp_f(x) - ref) / ref;
    worst = rel > worst ? rel : worst;
  }
  CAPTURE(worst);
  CHECK(worst < 2.0 * 5.97e-8);
}

TEST_CASE("exp_f edge cases", "[core][math]") {
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(detail::exp_f(0.0f) == 1.0f);
  CHECK(detail::exp_f(-inf) == 0.0f);
  CHECK(detail::exp_f(-100.0f) == 0.0f);
  CHECK(std::isnan(detail::exp_f(std::numeric_limits<float>::quiet_NaN())));
  CHECK(detail::exp_f(-1.0f) < 1.0f);
}

TEST_CASE("float classification by bits", "[core][math]") {
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(detail::is_nan(std::numeric_limits<float>::quiet_NaN()));
  CHECK_FALSE(detail::is_nan(inf));
  CHECK_FALSE(detail::is_finite(inf));
  CHECK_FALSE(detail::is_finite(-inf));
  CHECK(detail::is_finite(3.0f));
  CHECK(detail::infinity() == inf);
}

TEST_CASE("order_key preserves the order of floats and round-trips", "[core][math]") {
  const float vals[] = {-std::numeric_limits<float>::infinity(),
                        -1e30f,
                        -2.0f,
                        -1e-40f,
                        -0.0f,
                        0.0f,
                        1e-40f,
                        1.0f,
                        3.5f,
                        1e30f,
                        std::numeric_limits<float>::infinity()};
  for (std::size_t i = 0; i + 1 < std::size(vals); ++i) {
    CHECK(detail::order_key(vals[i]) < detail::order_key(vals[i + 1]));
    CHECK(detail::from_order_key(detail::order_key(vals[i])) == vals[i]);
  }
}

TEST_CASE("uniform_from_bits maps to [0, 1) with 24 bits", "[core][math]") {
  CHECK(detail::uniform_from_bits(0u) == 0.0f);
  CHECK(detail::uniform_from_bits(0xffffffffu) < 1.0f);
  CHECK(detail::uniform_from_bits(0x80000000u) == 0.5f);
}
