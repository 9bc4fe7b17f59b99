// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The ragged batch layout of chain verification (shared by the host and device
/// backends), its validation, and the per-request view into it.

#include <specdec/config.hpp>

#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/sampling/params.hpp>
#include <specdec/verify/chain.hpp>

#include <cstdint>

SPECDEC_NAMESPACE_BEGIN

namespace verify {

/// @brief A batch of B chain drafts of different lengths, in the ragged layout engines use.
///
/// Request b owns drafts `draft_offsets[b] .. draft_offsets[b+1]` (K_b of them) in `tokens` and
/// `draft`, and target rows `draft_offsets[b] + b .. draft_offsets[b+1] + b` (K_b + 1 rows).
/// Randomness is keyed by (seed or seeds[b], request_ids[b], positions[b] + j), never by b, so
/// permuting the batch permutes the results and changes nothing else.
/// @tparam TT target element type (a row_element)
/// @tparam TD draft element type (a row_element; defaults to TT)
template <class TT, class TD = TT>
struct chain_batch {
  index_t batch = 0;                      ///< B
  const index_t* draft_offsets = nullptr; ///< @shape{[B + 1]}, [0] = 0, non-decreasing
  const token_id* tokens = nullptr;       ///< @shape{[sum K_b]}
  matrix_view<const TT> target{};         ///< @shape{[sum K_b + B, V]}
  matrix_view<const TD> draft{};          ///< @shape{[sum K_b, V]}; rows = 0 when not needed
  distribution_kind target_kind = distribution_kind::logits; ///< what target rows hold
  distribution_kind draft_kind = distribution_kind::logits;  ///< what draft rows hold
  const sampling::sampling_params* params = nullptr;         ///< per request, or one for all
  index_t params_stride = 0;                  ///< 1: one entry per request; 0: params[0] for all
  const std::uint64_t* request_ids = nullptr; ///< @shape{[B]} engine-wide ids (RNG stream)
  const index_t* positions = nullptr;         ///< @shape{[B]} absolute position of each x_1
  std::uint64_t seed = 0;                     ///< sampling seed (of every request without seeds)
  /// @shape{[B]} per-request seeds (each request's own random stream), or null: #seed for all
  const std::uint64_t* seeds = nullptr;

  /// @brief The request view of request b.
  /// @param[in] b the request's index in the batch
  /// @param[in] with_draft_rows false for rules that never read draft rows (their draft fields
  ///   are not validated): the draft pointer is then null
  /// @return a chain_request pointing into the batch's buffers, with request b's parameters and
  ///   position (its draft pointer is null when the batch has no draft rows)
  /// @pre the batch validated.
  /// @pre 0 <= b < batch.
  /// @hd
  SPECDEC_HD chain_request<TT, TD> request(index_t b, bool with_draft_rows = true) const noexcept {
    chain_request<TT, TD> r;
    const index_t d0 = draft_offsets[b];
    r.num_drafts = static_cast<std::int32_t>(draft_offsets[b + 1] - d0);
    r.target = target.data + (d0 + b) * target.row_stride;
    r.target_stride = target.row_stride;
    // Rules without draft rows never validated the draft fields: no arithmetic on them.
    r.draft = with_draft_rows && draft.rows > 0 && draft.data != nullptr
                  ? draft.data + d0 * draft.row_stride
                  : nullptr;
    r.draft_stride = draft.row_stride;
    r.tokens = tokens + d0;
    r.vocab = target.cols;
    r.target_kind = target_kind;
    r.draft_kind = draft_kind;
    r.params = params[b * params_stride];
    r.position = positions[b];
    return r;
  }
  /// @brief The uniform source of request b.
  /// @param[in] b the request's index in the batch
  /// @return Philox uniforms keyed by (`seeds[b]`, or #seed without seeds, `request_ids[b]`)
  /// @pre 0 <= b < batch.
  /// @hd
  SPECDEC_HD philox_uniforms uniforms(index_t b) const noexcept {
    return philox_uniforms{rng_key{seeds != nullptr ? seeds[b] : seed, request_ids[b]}};
  }
};

/// Where batch results go: one entry per request.
struct chain_batch_output {
  std::int32_t* accepted = nullptr; ///< @shape{[B]} accepted drafts
  token_id* next = nullptr;         ///< @shape{[B]} correction or bonus token
  row_status* status = nullptr;     ///< @shape{[B]} per-request flags
};

/// @brief Validates the shape and parameters of a batch (not the row contents, which are checked
/// per request while verifying).
/// @tparam TT target element type (a row_element)
/// @tparam TD draft element type (a row_element)
/// @param[in] b the batch
/// @param[in] out the output buffers (checked, not written)
/// @param[in] needs_draft_rows whether the policy reads draft rows
/// @return errc::ok, or the first problem: invalid_argument (null pointer, B < 0, V <= 0,
///   params_stride other than 0 or 1, a negative position),
///   shape_mismatch (offsets, row counts or row strides), vocab_mismatch (draft V != target V),
///   overflow (a draft of INT32_MAX tokens or more, a position above max_position), or the
///   parameter errors of sampling_params.
/// @par Complexity
/// O(B).
template <class TT, class TD>
constexpr status validate(const chain_batch<TT, TD>& b,
                          const chain_batch_output& out,
                          bool needs_draft_rows) noexcept {
  if (b.batch < 0 || b.target.cols <= 0)
    return {errc::invalid_argument};
  if (b.batch == 0)
    return {};
  if (b.draft_offsets == nullptr || b.target.data == nullptr || b.params == nullptr
      || b.request_ids == nullptr || b.positions == nullptr || out.accepted == nullptr
      || out.next == nullptr || out.status == nullptr)
    return {errc::invalid_argument};
  if (b.params_stride != 0 && b.params_stride != 1)
    return {errc::invalid_argument};
  if (b.draft_offsets[0] != 0)
    return {errc::shape_mismatch};
  for (index_t i = 0; i < b.batch; ++i) {
    // Offsets start at 0 and must not decrease: compared before subtracting, so the difference
    // of two non-negative offsets cannot overflow.
    if (b.draft_offsets[i + 1] < b.draft_offsets[i])
      return {errc::shape_mismatch};
    const index_t k = b.draft_offsets[i + 1] - b.draft_offsets[i];
    if (k > INT32_MAX - 1)
      return {errc::overflow};
    if (b.positions[i] < 0)
      return {errc::invalid_argument};
    if (b.positions[i] > max_position)
      return {errc::overflow};
  }
  const index_t total = b.draft_offsets[b.batch];
  if (total > 0 && b.tokens == nullptr)
    return {errc::invalid_argument};
  if (b.target.rows != total + b.batch || b.target.row_stride < b.target.cols)
    return {errc::shape_mismatch};
  if (needs_draft_rows && total > 0) {
    if (b.draft.data == nullptr)
      return {errc::invalid_argument};
    if (b.draft.cols != b.target.cols)
      return {errc::vocab_mismatch};
    if (b.draft.rows != total || b.draft.row_stride < b.draft.cols)
      return {errc::shape_mismatch};
  }
  const index_t n_params = b.params_stride == 0 ? 1 : b.batch;
  for (index_t i = 0; i < n_params; ++i) {
    const errc e = b.params[i].validate();
    if (e != errc::ok)
      return {e};
  }
  return {};
}

} // namespace verify

SPECDEC_NAMESPACE_END
