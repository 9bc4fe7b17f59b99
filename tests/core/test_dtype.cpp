// SPDX-License-Identifier: Apache-2.0
// half and bfloat16 conversions: exhaustive round trips and rounding.

#include <specdec/core/dtype.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>

using namespace specdec;

TEST_CASE("half: every non-NaN bit pattern round-trips through float", "[core][dtype]") {
  int bad = 0;
  for (std::uint32_t u = 0; u < 65536u; ++u) {
    const half h{static_cast<std::uint16_t>(u)};
    const float f = dtype_traits<half>::to_float(h);
    if (std::isnan(f)) {
      CHECK(std::isnan(dtype_traits<half>::to_float(dtype_traits<half>::from_float(f))));
      continue;
    }
    bad += dtype_traits<half>::from_float(f).bits != u;
  }
  CHECK(bad == 0);
}

TEST_CASE("half: known values, rounding to nearest even, overflow", "[core][dtype]") {
  CHECK(dtype_traits<half>::from_float(1.0f).bits == 0x3c00u);
  CHECK(dtype_traits<half>::from_float(-2.0f).bits == 0xc000u);
  CHECK(dtype_traits<half>::from_float(65504.0f).bits == 0x7bffu);
  CHECK(dtype_traits<half>::from_float(1e6f).bits == 0x7c00u);
  CHECK(dtype_traits<half>::to_float(half{0x0001u}) == std::ldexp(1.0f, -24));
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even gives 1.
  CHECK(dtype_traits<half>::from_float(1.0f + std::ldexp(1.0f, -11)).bits == 0x3c00u);
  CHECK(dtype_traits<half>::from_float(1.0f + 3 * std::ldexp(1.0f, -11)).bits == 0x3c02u);
  // Subnormal halfway case: 1.5 * 2^-24 rounds to 2 * 2^-24.
  CHECK(dtype_traits<half>::from_float(1.5f * std::ldexp(1.0f, -24)).bits == 0x0002u);
}

TEST_CASE("bfloat16: round trips and rounding", "[core][dtype]") {
  int bad = 0;
  for (std::uint32_t u = 0; u < 65536u; ++u) {
    const bfloat16 b{static_cast<std::uint16_t>(u)};
    const float f = dtype_traits<bfloat16>::to_float(b);
    if (std::isnan(f))
      continue;
    bad += dtype_traits<bfloat16>::from_float(f).bits != u;
  }
  CHECK(bad == 0);
  CHECK(dtype_traits<bfloat16>::from_float(1.0f).bits == 0x3f80u);
  CHECK(std::isnan(dtype_traits<bfloat16>::to_float(dtype_traits<bfloat16>::from_float(NAN))));
  STATIC_REQUIRE(row_element<float>);
  STATIC_REQUIRE(row_element<half>);
  STATIC_REQUIRE(row_element<const bfloat16>);
  STATIC_REQUIRE_FALSE(row_element<double>);
}
