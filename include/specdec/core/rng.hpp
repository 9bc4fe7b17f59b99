// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Counter-based Philox4x32-10 and the request/position-keyed uniforms of every rule.
///
/// Philox4x32-10 (Salmon et al., SC'11) is bit-exact against the Random123 known-answer vectors
/// on host and device. specdec keys the generator by the sampling seed and derives the counter
/// from (request id, decode position, draw purpose), never from a batch slot, so a request draws
/// the same numbers in any batch, on any backend.

#include <specdec/config.hpp>

#include <specdec/core/math.hpp>
#include <specdec/core/types.hpp>

#include <cstdint>

SPECDEC_NAMESPACE_BEGIN

/// Four 32-bit words: a Philox counter or output block.
struct philox_block {
  std::uint32_t w[4]; ///< the words, w[0] first
};

/// @brief Philox4x32 with `Rounds` rounds (10 is the standard, crush-resistant choice).
/// @tparam Rounds number of rounds
/// @param[in] counter the 128-bit counter
/// @param[in] key0 low key word
/// @param[in] key1 high key word
/// @return the 128 random bits for this counter
/// @par Complexity
/// Constant: `Rounds` rounds of two 32x32->64 multiplications. @hd
template <int Rounds = 10>
SPECDEC_HD constexpr philox_block
philox4x32(philox_block counter, std::uint32_t key0, std::uint32_t key1) noexcept {
  constexpr std::uint64_t m0 = 0xD2511F53u;
  constexpr std::uint64_t m1 = 0xCD9E8D57u;
  constexpr std::uint32_t w0 = 0x9E3779B9u; // golden ratio
  constexpr std::uint32_t w1 = 0xBB67AE85u; // sqrt(3) - 1
  std::uint32_t c0 = counter.w[0], c1 = counter.w[1], c2 = counter.w[2], c3 = counter.w[3];
  for (int r = 0; r < Rounds; ++r) {
    if (r > 0) {
      key0 += w0;
      key1 += w1;
    }
    const std::uint64_t p0 = m0 * c0;
    const std::uint64_t p1 = m1 * c2;
    const auto hi0 = static_cast<std::uint32_t>(p0 >> 32);
    const auto lo0 = static_cast<std::uint32_t>(p0);
    const auto hi1 = static_cast<std::uint32_t>(p1 >> 32);
    const auto lo1 = static_cast<std::uint32_t>(p1);
    c0 = hi1 ^ c1 ^ key0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ key1;
    c3 = lo0;
  }
  return philox_block{{c0, c1, c2, c3}};
}

/// @brief The salts a drafter xors into its seed so that its random stream is independent of the
///        verifier's (keyed by the plain seed), named once for host drafters and device kernels.
namespace stream_salt {
/// Early-exit chain and sampled-tree drafters (propose/early_exit.hpp, sampled_tree.hpp).
inline constexpr std::uint64_t early_exit = 0x9e3779b97f4a7c15ull;
/// Semi-autoregressive block drafter, host and device (propose/semi_ar.hpp, cuda markov head).
inline constexpr std::uint64_t semi_ar = 0xd5a4c3b2e1f00718ull;
/// Separate draft model (propose/draft_model.hpp).
inline constexpr std::uint64_t draft_model = 0x6a09e667f3bcc909ull;
/// Drafters fed by target features: EAGLE-3, MTP (propose/feature_drafter.hpp).
inline constexpr std::uint64_t feature_drafter = 0xbb67ae8584caa73bull;
} // namespace stream_salt

/// @brief The identity of a request's random stream: the sampling seed and the request id.
///
/// Positions and purposes select the draws inside the stream.
struct rng_key {
  std::uint64_t seed = 0;    ///< user seed (the Philox key)
  std::uint64_t request = 0; ///< engine-wide request id (never a batch slot)
};

/// @brief The four random words of draw (position, purpose, lane) of a stream.
///
/// The Philox counter is (position, purpose | lane << 8, request id low word, request id high
/// word) and the Philox key is the seed.
/// @param[in] key the stream: seed and request id
/// @param[in] position the absolute decode position (its low 32 bits enter the counter)
/// @param[in] purpose why the number is drawn
/// @param[in] lane distinguishes several draws of one (position, purpose) (its low 24 bits count)
/// @return the Philox4x32-10 output block of that counter
/// @par Complexity
/// Constant: one philox4x32<10> evaluation.
/// @hd
SPECDEC_HD constexpr philox_block
random_words(rng_key key, index_t position, draw_purpose purpose, std::uint32_t lane = 0) noexcept {
  const philox_block ctr{{static_cast<std::uint32_t>(position),
                          static_cast<std::uint32_t>(purpose) | (lane << 8),
                          static_cast<std::uint32_t>(key.request),
                          static_cast<std::uint32_t>(key.request >> 32)}};
  return philox4x32<10>(
      ctr, static_cast<std::uint32_t>(key.seed), static_cast<std::uint32_t>(key.seed >> 32));
}

/// @brief The uniform in [0, 1) (24 random bits) of draw (position, purpose, lane).
/// @param[in] key the stream: seed and request id
/// @param[in] position the absolute decode position
/// @param[in] purpose why the number is drawn
/// @param[in] lane distinguishes several draws of one (position, purpose)
/// @return the top 24 bits of `random_words(key, position, purpose, lane).w[0]`, times 2^-24
/// @par Complexity
/// Constant: one philox4x32<10> evaluation.
/// @hd
SPECDEC_HD constexpr float
uniform_at(rng_key key, index_t position, draw_purpose purpose, std::uint32_t lane = 0) noexcept {
  return detail::uniform_from_bits(random_words(key, position, purpose, lane).w[0]);
}

/// @brief The standard uniform source of every rule: Philox keyed by (seed, request), indexed by
/// the absolute decode position and the purpose. Satisfies `uniform_source`.
struct philox_uniforms {
  rng_key key; ///< seed and request id

  /// @brief The uniform for (position, purpose, lane).
  /// @param[in] position the absolute decode position
  /// @param[in] purpose why the number is drawn
  /// @param[in] lane distinguishes several draws of one (position, purpose)
  /// @return `uniform_at(key, position, purpose, lane)`, in [0, 1)
  /// @hd
  SPECDEC_HD constexpr float
  operator()(index_t position, draw_purpose purpose, std::uint32_t lane = 0) const noexcept {
    return uniform_at(key, position, purpose, lane);
  }
};

SPECDEC_NAMESPACE_END
