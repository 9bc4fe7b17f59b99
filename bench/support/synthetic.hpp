// SPDX-License-Identifier: Apache-2.0
#pragma once
// Synthetic logit rows shared by the verification benches (bench/cpu and bench/cuda), so that
// host and device figures are measured on the same inputs.

#include <specdec/specdec.hpp>

#include <cmath>
#include <cstdint>

namespace specdec_bench {

using specdec::index_t;

/// splitmix64: small, fast, good enough for synthetic logits.
struct splitmix64 {
  std::uint64_t s;
  std::uint64_t next() noexcept {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() noexcept { // [0, 1)
    return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f);
  }
  float normal() noexcept { // Irwin-Hall sum of four 16-bit uniforms, scaled to unit variance
    const std::uint64_t w = next();
    float sum = 0.0f;
    for (int i = 0; i < 4; ++i)
      sum += static_cast<float>((w >> (16 * i)) & 0xffffu);
    return (sum * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
  }
};

constexpr float bulk_sigma = 1.5f;  ///< spread of the non-peaked logits
constexpr float draft_noise = 0.6f; ///< draft row = target row + N(0, draft_noise^2)
/// Target logits: a normal bulk plus 1-8 peaked tokens; the top peak holds e^U(-1,4) times the
/// bulk's mass, so rows range from flat to confident.
inline void make_target_row(float* row, index_t vocab, splitmix64& g) {
  for (index_t i = 0; i < vocab; ++i)
    row[i] = bulk_sigma * g.normal();
  float boost = std::log(static_cast<float>(vocab)) + 0.5f * bulk_sigma * bulk_sigma - 1.0f
                + 5.0f * g.uniform();
  const auto peaks = 1 + static_cast<int>(g.next() % 8u);
  for (int p = 0; p < peaks; ++p) {
    row[g.next() % static_cast<std::uint64_t>(vocab)] = boost;
    boost -= 0.5f + 3.5f * g.uniform();
  }
}

inline specdec::sampling::sampling_params params_for(bool top_p) {
  specdec::sampling::sampling_params p;
  p.temperature = 1.0f;
  if (top_p)
    p.top_p = 0.9f;
  return p;
}

} // namespace specdec_bench
