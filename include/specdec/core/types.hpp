// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Vocabulary types: token ids, indices, distribution kinds and random-draw purposes.

#include <specdec/config.hpp>

#include <cstdint>

/// @namespace specdec
/// @brief Speculative-decoding primitives: vocabulary types, views, randomness, the plug-in
/// concepts and the row executor (the sub-namespaces hold the rest).
///
/// Everything is declared inside the versioned inline namespace `specdec::v0_1` (see
/// SPECDEC_NAMESPACE_BEGIN), which user code never names.

SPECDEC_NAMESPACE_BEGIN

/// A token id. Valid ids of a vocabulary of size V are 0 .. V-1.
using token_id = std::int32_t;

/// A signed index or size (rows, vocabulary entries, offsets).
using index_t = std::int64_t;

/// @brief The largest absolute decode position a request may have (2^60).
///
/// Rules key their draws by position + k with k below 2^31 (drafts) or 1024 (tree depth), and the
/// device adds up to two offsets to a request's position; with every term at most 2^60 none of
/// these sums can overflow. Batch validation refuses larger positions (errc::overflow); a single
/// request or a device row with a position outside [0, max_position] gets row_status::bad_shape
/// and is verified as if at position 0.
inline constexpr index_t max_position = index_t{1} << 60;

/// What the values of a distribution row hold.
enum class distribution_kind : std::uint8_t {
  logits,       ///< unnormalised log-probabilities; -inf marks a token that cannot occur
  probabilities ///< non-negative probabilities (they need not sum to one: rows are normalised)
};

/// Why a random number is drawn. Each purpose is an independent stream for a (request, position).
enum class draw_purpose : std::uint32_t {
  accept = 0,   ///< the acceptance coin of the draft token at a position
  sample = 1,   ///< the categorical draw of a correction or bonus token at a position
  auxiliary = 2 ///< any further draw a rule needs (tree siblings use auxiliary + sibling index)
};

SPECDEC_NAMESPACE_END
