// SPDX-License-Identifier: Apache-2.0
#pragma once
// The six-token bigram target of the goodness-of-fit tests (tests/verify/test_goodness_of_fit.cpp,
// tests/propose/test_semi_ar_lossless.cpp): target P(b | a) as logits, row a. Row 2 forbids token 5
// (-inf: probability 0). Row 0 has a tie at its third largest value (0.4, tokens 1 and 5): top-k
// = 3 keeps four tokens there, and top-p = 0.75 reaches its mass inside that tie and keeps both.

#include <array>
#include <cstddef>
#include <limits>

namespace specdec_test {

/// A token or index as a container subscript.
template <class I>
constexpr std::size_t ix(I i) {
  return static_cast<std::size_t>(i);
}

inline constexpr float bigram_ninf = -std::numeric_limits<float>::infinity();

/// Target logits of the bigram law, 6 x 6, row a = P(. | a).
inline constexpr std::array<float, 36> bigram_target_logits{
    1.2f,  0.4f,  -0.3f, 0.9f,  -1.0f, 0.4f,        // P(.|0)
    0.2f,  1.5f,  0.6f,  -0.5f, 0.0f,  -1.2f,       // P(.|1)
    -0.4f, 0.3f,  1.1f,  0.5f,  0.8f,  bigram_ninf, // P(.|2)
    0.7f,  -0.6f, 0.2f,  1.3f,  0.4f,  0.0f,        // P(.|3)
    0.0f,  0.9f,  -0.8f, 0.6f,  1.0f,  0.6f,        // P(.|4)
    1.0f,  0.1f,  0.5f,  -0.2f, -0.7f, 1.4f,        // P(.|5)
};

} // namespace specdec_test
