// SPDX-License-Identifier: Apache-2.0
// Philox4x32-10 against the Random123 known-answer vectors, and the keyed uniforms.

#include <specdec/core/rng.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

using namespace specdec;

TEST_CASE("philox4x32-10 matches the Random123 known-answer vectors", "[core][rng]") {
  struct kat {
    philox_block ctr;
    std::uint32_t k0, k1;
    philox_block expect;
  };
  const kat kats[] = {
      {{{0u, 0u, 0u, 0u}}, 0u, 0u, {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
      {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
       0xffffffffu,
       0xffffffffu,
       {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
      {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
       0xa4093822u,
       0x299f31d0u,
       {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
  };
  for (const kat& k : kats) {
    const philox_block out = philox4x32<10>(k.ctr, k.k0, k.k1);
    for (int i = 0; i < 4; ++i)
      CHECK(out.w[i] == k.expect.w[i]);
  }
}

TEST_CASE("philox is usable in constant expressions", "[core][rng]") {
  constexpr philox_block out = philox4x32<10>({{0u, 0u, 0u, 0u}}, 0u, 0u);
  STATIC_REQUIRE(out.w[0] == 0x6627e8d5u);
}

TEST_CASE("uniforms lie in [0, 1) and depend only on (seed, request, position, purpose)",
          "[core][rng]") {
  const rng_key a{42u, 7u};
  const rng_key b{42u, 8u};
  const rng_key c{43u, 7u};
  int differ_req = 0, differ_seed = 0, differ_purpose = 0;
  for (index_t pos = 0; pos < 1000; ++pos) {
    const float u = uniform_at(a, pos, draw_purpose::accept);
    CHECK(u >= 0.0f);
    CHECK(u < 1.0f);
    CHECK(u == philox_uniforms{a}(pos, draw_purpose::accept));
    differ_req += u != uniform_at(b, pos, draw_purpose::accept);
    differ_seed += u != uniform_at(c, pos, draw_purpose::accept);
    differ_purpose += u != uniform_at(a, pos, draw_purpose::sample);
  }
  CHECK(differ_req > 990);
  CHECK(differ_seed > 990);
  CHECK(differ_purpose > 990);
}

TEST_CASE("uniforms are uniform: chi-square over 100 bins on 10^6 draws", "[core][rng][stat]") {
  // Bound: the 1 - 1e-6 quantile of chi-square with 99 degrees of freedom is about 172.
  constexpr int bins = 100;
  constexpr int n = 1000000;
  std::vector<int> count(bins, 0);
  const rng_key key{2026u, 1u};
  for (int i = 0; i < n; ++i)
    ++count[static_cast<std::size_t>(uniform_at(key, i, draw_purpose::sample) * bins)];
  double chi2 = 0.0;
  const double expect = static_cast<double>(n) / bins;
  for (int c : count)
    chi2 += (c - expect) * (c - expect) / expect;
  CAPTURE(chi2);
  CHECK(chi2 < 172.0);
  // Power: a generator that drops the lowest bin's draws must fail the same bound.
  std::vector<int> biased(count);
  biased[1] += biased[0] / 5;
  biased[0] -= biased[0] / 5;
  double chi2b = 0.0;
  for (int c : biased)
    chi2b += (c - expect) * (c - expect) / expect;
  CHECK(chi2b > 172.0);
}
