// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The plug-in concepts of specdec: sources of randomness, draft proposers and target
/// models. (The row executor concept is in core/executor.hpp; verification policies, whose
/// problem types live in verify/, are in verify/policy.hpp.)
///
/// Each concept is structural (checked syntax); the semantic promises are in its comment. Use
/// `SPECDEC_CHECK(concept, T)` next to an adapter for one readable message per missing clause.

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>

#include <concepts>
#include <cstdint>

SPECDEC_NAMESPACE_BEGIN

/// @brief A source of uniforms in [0, 1): `u(position, purpose)` and `u(position, purpose, lane)`.
///
/// Checked: both calls on a `const U&` (with `index_t`, `draw_purpose` and `std::uint32_t`
/// arguments) return something convertible to float.
/// Semantics: the value depends only on the arguments (and the source's own key), never on call
/// order, so rules can draw lazily and host and device agree. `philox_uniforms` is the standard
/// model; tests pass scripted sources.
/// @tparam U the candidate type
template <class U>
concept uniform_source =
    requires(const U& u, index_t position, draw_purpose p, std::uint32_t lane) {
  { u(position, p) } -> std::convertible_to<float>;
  { u(position, p, lane) } -> std::convertible_to<float>;
};

/// What a proposer is asked for: draft up to `max_tokens` tokens after `context`.
struct draft_request {
  std::uint64_t request_id = 0;     ///< the engine's id of the sequence
  row_view<const token_id> context; ///< committed tokens (prompt + generated), oldest first
  std::int32_t max_tokens = 0;      ///< draft budget for this step, >= 0
};

/// Where a proposer writes its draft: caller-owned buffers.
struct draft_block {
  row_view<token_id> tokens; ///< capacity for the draft tokens
  matrix_view<float> probs;  ///< optional dense draft rows (rows == 0: the drafter has none)
  std::int32_t length = 0;   ///< set by the proposer: tokens written, <= tokens.size
  /// What `probs` rows hold (a dense proposer sets it; logits unless it says otherwise).
  distribution_kind probs_kind = distribution_kind::logits;
};

/// @brief A draft proposer: fills a draft_block for a request.
///
/// Required: `status propose(const draft_request&, draft_block&)` and
/// `int max_draft_len() const`. Semantics: `propose` writes at most
/// min(request.max_tokens, block.tokens.size) tokens and sets `length`; when `probs.rows > 0`
/// and the proposer samples, row j holds the distribution token j was drawn from (before the
/// sampling parameters, which verification applies identically to both sides).
/// @tparam P the candidate proposer type
template <class P>
concept draft_proposer = requires(P& p, const P& cp, const draft_request& r, draft_block& b) {
  { p.propose(r, b) } -> std::same_as<status>;
  { cp.max_draft_len() } -> std::convertible_to<int>;
};

/// @brief A proposer that also writes one dense draft row per drafted token into
///        `draft_block::probs` (needed by rejection sampling with full q).
///
/// Declared by `static constexpr bool writes_draft_rows = true;` in the proposer. The caller then
/// passes `probs` with at least `max_tokens` rows of the target's vocabulary size; the proposer
/// sets `draft_block::probs_kind`. A proposer without it drafts deterministic (one-hot) tokens.
template <class P>
concept dense_draft_proposer = draft_proposer<P> && requires {
  requires static_cast<bool>(P::writes_draft_rows);
};

/// @brief What a target model is asked to score: `tokens` appended after the committed prefix of a
/// request, in one forward pass (a chain: token j at position `start + j`).
struct score_request {
  std::uint64_t request_id = 0;    ///< the sequence
  row_view<const token_id> tokens; ///< the anchor (last committed token) followed by drafts
  index_t start = 0;               ///< absolute position of tokens[0]
};

/// @brief A target model: scores a chain of tokens and returns one logit row per token.
///
/// Required: `status score(const score_request&, matrix_view<float> logits)` writing
/// tokens.size rows of `vocab_size()` logits, and `index_t vocab_size() const`. Semantics: row j
/// is the distribution of the token after tokens[0..j]. Exactness of greedy speculation needs a
/// batch-invariant model: a row's logits must not depend on how many rows were scored with it.
/// @tparam M the candidate model type
template <class M>
concept target_model = requires(M& m, const M& cm, const score_request& r, matrix_view<float> out) {
  { m.score(r, out) } -> std::same_as<status>;
  { cm.vocab_size() } -> std::convertible_to<index_t>;
};

SPECDEC_NAMESPACE_END
