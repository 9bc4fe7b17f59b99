// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief A batch of tree verification requests in one packed layout (host and device), its
/// outputs and its shape validation.

#include <specdec/config.hpp>

#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/sampling/params.hpp>
#include <specdec/tree/token_tree.hpp>
#include <specdec/verify/tree.hpp>

#include <cstdint>

SPECDEC_NAMESPACE_BEGIN

namespace verify {

/// @brief B token trees packed node-major: request b owns nodes
/// `[node_offsets[b], node_offsets[b + 1])`, one target row per node.
///
/// Parents, first-child / next-sibling lists and draft indices hold request-local indices.
/// Draft rows of request b start at row `draft_offsets[b]` (or, without draft_offsets, at
/// `node_offsets[b] - b`: one row per non-root node). Trivially copyable: kernels take it by
/// value.
/// @tparam TT target element type
/// @tparam TD draft element type
template <class TT, class TD = TT>
struct tree_batch {
  index_t batch = 0;                          ///< B
  const index_t* node_offsets = nullptr;      ///< @shape{[B + 1]}, [0] = 0, increasing
  const token_id* tokens = nullptr;           ///< @shape{[sum N_b]}
  const std::int32_t* parents = nullptr;      ///< @shape{[sum N_b]} request-local
  const std::int32_t* first_child = nullptr;  ///< optional @shape{[sum N_b]} request-local
  const std::int32_t* next_sibling = nullptr; ///< optional @shape{[sum N_b]} request-local
  matrix_view<const TT> target{};             ///< @shape{[sum N_b, V]}
  matrix_view<const TD> draft{};              ///< draft rows; rows = 0 when not needed
  const index_t* draft_offsets = nullptr;     ///< optional @shape{[B + 1]} first draft row
  const std::int32_t* draft_index = nullptr;  ///< optional @shape{[sum N_b]} request-local row
  distribution_kind target_kind = distribution_kind::logits; ///< what target rows hold
  distribution_kind draft_kind = distribution_kind::logits;  ///< what draft rows hold
  const sampling::sampling_params* params = nullptr;         ///< per request, or one for all
  index_t params_stride = 0;                  ///< 1: one entry per request; 0: params[0] for all
  const std::uint64_t* request_ids = nullptr; ///< @shape{[B]} engine-wide ids (RNG stream)
  const index_t* positions = nullptr;         ///< @shape{[B]} position of the depth-1 nodes
  std::uint64_t seed = 0;                     ///< sampling seed (of every request without seeds)
  /// @shape{[B]} per-request seeds (each request's own random stream), or null: #seed for all
  const std::uint64_t* seeds = nullptr;

  /// @brief Request b's view of the batch.
  /// @param[in] b the request, 0 <= b < batch
  /// @param[in] with_draft_rows false for rules that never read draft rows (their draft fields
  ///   are not validated): the draft pointer is then null
  /// @return its tree_request
  /// @hd
  SPECDEC_HD tree_request<TT, TD> request(index_t b, bool with_draft_rows = true) const noexcept {
    tree_request<TT, TD> r;
    const index_t n0 = node_offsets[b];
    const index_t n = node_offsets[b + 1] - n0;
    r.target = target.data + n0 * target.row_stride;
    r.target_stride = target.row_stride;
    const index_t d0 = draft_offsets != nullptr ? draft_offsets[b] : n0 - b;
    // Rules without draft rows never validated the draft fields: no arithmetic on them.
    r.draft = with_draft_rows && draft.rows > 0 && draft.data != nullptr
                  ? draft.data + d0 * draft.row_stride
                  : nullptr;
    r.draft_stride = draft.row_stride;
    r.draft_index = draft_index != nullptr ? draft_index + n0 : nullptr;
    r.tokens = tokens + n0;
    r.tree.parents = parents + n0;
    r.tree.num_nodes = static_cast<std::int32_t>(n);
    if (first_child != nullptr && next_sibling != nullptr) {
      r.tree.first_child = first_child + n0;
      r.tree.next_sibling = next_sibling + n0;
    }
    r.vocab = target.cols;
    r.target_kind = target_kind;
    r.draft_kind = draft_kind;
    r.params = params[b * params_stride];
    r.position = positions[b];
    return r;
  }
  /// @brief Request b's uniform source: Philox keyed by (`seeds[b]`, or #seed without seeds,
  ///        request_ids[b]).
  /// @param[in] b the request
  /// @return its uniforms
  /// @hd
  SPECDEC_HD philox_uniforms uniforms(index_t b) const noexcept {
    return philox_uniforms{rng_key{seeds != nullptr ? seeds[b] : seed, request_ids[b]}};
  }
};

/// @brief Where a tree batch call writes, one entry per request.
struct tree_batch_output {
  std::int32_t* accepted = nullptr;  ///< @shape{[B]} accepted drafts (depth of last_node)
  std::int32_t* last_node = nullptr; ///< @shape{[B]} last accepted node (request-local)
  token_id* next = nullptr;          ///< @shape{[B]} correction or bonus token
  row_status* status = nullptr;      ///< @shape{[B]} per-request flags
};

/// @brief Checks a tree batch's shapes (not its data: malformed trees, bad rows and bad tokens
/// are per-request statuses).
/// @param[in] b the batch
/// @param[in] out the outputs
/// @param[in] needs_draft_rows whether the policy reads draft rows
/// @return errc::invalid_argument for null pointers, negative positions or a bad params stride;
///   errc::overflow for a position above max_position;
///   errc::shape_mismatch when offsets are not increasing from 0, a request has no node or
///   more than tree::max_nodes, or the row counts disagree (draft rows must cover every draft
///   row index the layout implies: node j >= 1 of request b reads row draft_offsets[b] +
///   (draft_index ? draft_index[j] : j - 1); and every request's first draft row, one without
///   drafts too, must lie in [0, draft.rows]); errc::vocab_mismatch when draft and target widths
///   differ; the first parameter error; else ok
/// @par Complexity
/// O(B + sum N_b).
template <class TT, class TD>
constexpr status validate(const tree_batch<TT, TD>& b,
                          const tree_batch_output& out,
                          bool needs_draft_rows) noexcept {
  if (b.batch < 0 || b.target.cols <= 0)
    return {errc::invalid_argument};
  if (b.batch == 0)
    return {};
  if (b.node_offsets == nullptr || b.tokens == nullptr || b.parents == nullptr
      || b.target.data == nullptr || b.params == nullptr || b.request_ids == nullptr
      || b.positions == nullptr || out.accepted == nullptr || out.last_node == nullptr
      || out.next == nullptr || out.status == nullptr)
    return {errc::invalid_argument};
  if (b.params_stride != 0 && b.params_stride != 1)
    return {errc::invalid_argument};
  if ((b.first_child == nullptr) != (b.next_sibling == nullptr))
    return {errc::invalid_argument};
  if (b.node_offsets[0] != 0)
    return {errc::shape_mismatch};
  for (index_t i = 0; i < b.batch; ++i) {
    // Offsets start at 0 and must increase: compared before subtracting, so the difference of
    // two non-negative offsets cannot overflow.
    if (b.node_offsets[i + 1] <= b.node_offsets[i])
      return {errc::shape_mismatch};
    const index_t n = b.node_offsets[i + 1] - b.node_offsets[i];
    if (n > tree::max_nodes)
      return {errc::shape_mismatch};
    if (b.positions[i] < 0)
      return {errc::invalid_argument};
    if (b.positions[i] > max_position)
      return {errc::overflow};
  }
  const index_t total = b.node_offsets[b.batch];
  if (b.target.rows != total || b.target.row_stride < b.target.cols)
    return {errc::shape_mismatch};
  if (needs_draft_rows) {
    if (b.draft.data == nullptr)
      return {errc::invalid_argument};
    if (b.draft.cols != b.target.cols)
      return {errc::vocab_mismatch};
    if (b.draft.row_stride < b.draft.cols)
      return {errc::shape_mismatch};
    for (index_t i = 0; i < b.batch; ++i) {
      const index_t n0 = b.node_offsets[i];
      const index_t n = b.node_offsets[i + 1] - n0;
      const index_t d0 = b.draft_offsets != nullptr ? b.draft_offsets[i] : n0 - i;
      if (d0 < 0 || d0 > b.draft.rows)
        return {errc::shape_mismatch};
      for (index_t j = 1; j < n; ++j) {
        const index_t idx = b.draft_index != nullptr ? b.draft_index[n0 + j] : j - 1;
        if (idx < 0 || idx >= b.draft.rows - d0) // d0 + idx in [0, rows), without overflow
          return {errc::shape_mismatch};
      }
    }
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
