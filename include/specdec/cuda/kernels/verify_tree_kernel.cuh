// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The kernels of device tree verification: optional row preparation (one CTA per
/// target / draft row) and the rule (one CTA per request running the policy's shared
/// `verify_tree` with the block executor), plus the problem type they read.

#include <specdec/config.hpp>

#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/cuda/block/block_executor.cuh>
#include <specdec/cuda/detail/kernel_common.cuh>
#include <specdec/sampling/distribution.hpp>
#include <specdec/tree/token_tree.hpp>
#include <specdec/verify/tree.hpp>
#include <specdec/verify/tree_batch.hpp>

#include <cstdint>
#include <type_traits>

SPECDEC_CUDA_NAMESPACE_BEGIN

/// @brief A tree verification problem on the device: a packed tree batch whose every pointer
/// is device memory, where the results go, and the random stream given as scalars or as device
/// pointers (read inside the kernels, so a captured CUDA graph can be replayed with new values).
///
/// The accepted path can be written by the kernel (`path`, root first, -1 padded) or derived
/// on the host from `out.last_node` with tree::write_path; both give the same nodes.
/// @tparam TT target element type (a row_element)
/// @tparam TD draft element type (a row_element)
template <class TT, class TD = TT>
struct tree_problem {
  verify::tree_batch<TT, TD> batch{}; ///< device pointers; row counts and strides are host values
  verify::tree_batch_output out{};    ///< device pointers, one entry per request
  /// Optional @shape{[B, path_stride]}: request b's accepted root path in request-local node
  /// indices, root first (`path[b][0] == 0`, `path[b][d]` the node at depth d up to
  /// `accepted[b]`), then -1 to the end of the row. A path longer than path_stride keeps its
  /// first path_stride nodes (size it max depth + 1). A bad_shape request gets `[0, -1, ...]`.
  std::int32_t* path = nullptr;
  index_t path_stride = 0;                      ///< entries per path row, >= 1 when path is set
  const std::uint64_t* seed_ptr = nullptr;      ///< device; when set, replaces batch.seed
  const index_t* position_offset_ptr = nullptr; ///< device; when set, added to every position
  index_t position_offset = 0;                  ///< added to every position (with the pointer's)
};

namespace kernels {

/// Which parameters the prepared rows of a launch are computed with.
enum class tree_row_params : int {
  request,    ///< each request's checked parameters (verify::detail::checked)
  argmax_only ///< temperature 0, no truncation (what verify::detail::greedy_tree reads)
};

/// Everything the tree kernels share, passed by value.
template <class TT, class TD>
struct tree_launch {
  tree_problem<TT, TD> p;               ///< the problem
  sampling::row_stats* stats = nullptr; ///< @shape{[target_rows + draft_rows]}, null: none
  std::int32_t* owners = nullptr;       ///< @shape{[target_rows + draft_rows]} request of each
  index_t target_rows = 0;              ///< rows of the target matrix
  index_t draft_rows = 0;               ///< draft rows prepared (0: none)
  tree_row_params row_params = tree_row_params::request; ///< parameters of prepared rows
};

namespace detail {

/// First draft row of request b (draft_offsets[b], or one row per non-root node).
template <class TT, class TD>
SPECDEC_DEVICE index_t first_draft_row(const verify::tree_batch<TT, TD>& b, index_t r) {
  return b.draft_offsets != nullptr ? b.draft_offsets[r] : b.node_offsets[r] - r;
}

/// Draft row of request-local node j >= 1 of the request whose nodes start at n0.
template <class TT, class TD>
SPECDEC_DEVICE index_t
draft_row_of(const verify::tree_batch<TT, TD>& b, index_t d0, index_t n0, index_t j) {
  return d0 + (b.draft_index != nullptr ? static_cast<index_t>(b.draft_index[n0 + j]) : j - 1);
}

/// Writes request b's outputs (thread 0) and its path row (all threads).
template <int Threads, class TT, class TD>
SPECDEC_DEVICE void store_tree_outcome(const tree_launch<TT, TD>& l,
                                       index_t b,
                                       const verify::tree_outcome& o,
                                       const std::int32_t* parents,
                                       std::int32_t n) {
  if (threadIdx.x == 0) {
    l.p.out.accepted[b] = o.accepted;
    l.p.out.last_node[b] = o.last_node;
    l.p.out.next[b] = o.next;
    l.p.out.status[b] = o.status;
  }
  if (l.p.path == nullptr)
    return;
  std::int32_t* row = l.p.path + b * l.p.path_stride;
  const index_t len = static_cast<index_t>(o.accepted) + 1;
  for (index_t i = static_cast<index_t>(threadIdx.x); i < l.p.path_stride; i += Threads)
    if (i >= len)
      row[i] = -1;
  if (threadIdx.x == 0) {
    // Walk up from the last node; every link is checked, so a malformed tree (for which the
    // rule returns accepted 0 anyway) cannot make it read outside [0, n).
    std::int32_t k = o.last_node;
    for (index_t i = len - 1; i >= 0; --i) {
      const bool valid = k == 0 || (k > 0 && k < n);
      if (i < l.p.path_stride)
        row[i] = valid ? k : -1;
      if (i > 0)
        k = valid && k > 0 ? parents[k] : -1;
    }
  }
}

} // namespace detail

/// @brief Row preparation: CTA r computes the processed stats of prepared row r (target rows,
/// then draft rows) with sampling::prepare_row's code and the parameters the rule will use
/// for it, and records the request it belongs to (-1 when the offsets give none). grid = rows.
/// @tparam Threads threads per CTA
/// @tparam TT target element type
/// @tparam TD draft element type
/// @param[in] l the launch
template <int Threads, class TT, class TD>
__global__ void __launch_bounds__(Threads) prepare_tree_rows_kernel(const tree_launch<TT, TD> l) {
  const verify::tree_batch<TT, TD>& b = l.p.batch;
  block::block_executor<Threads> ex{detail::shared_storage<Threads>(), {}};
  const index_t r = static_cast<index_t>(blockIdx.x);
  const bool is_target = r < l.target_rows;
  index_t owner = 0;
  bool owned = false;
  if (is_target) {
    owner = detail::owner_of(b.batch, r, [&](index_t i) { return b.node_offsets[i + 1]; });
    owned = b.node_offsets[owner] <= r && r < b.node_offsets[owner + 1];
  } else {
    const index_t d = r - l.target_rows;
    const auto end = [&](index_t i) { return detail::first_draft_row(b, i + 1); };
    owner = detail::owner_of(b.batch, d, end);
    owned = detail::first_draft_row(b, owner) <= d && d < end(owner);
  }
  if (threadIdx.x == 0)
    l.owners[r] = owned ? static_cast<std::int32_t>(owner) : -1;
  if (!owned)
    return;
  verify::tree_request<TT, TD> req{};
  if (l.row_params == tree_row_params::request) {
    req.params = b.params[owner * b.params_stride];
    row_status ignored{};
    req.params = verify::detail::checked(req, ignored).params;
  } else {
    req.params = sampling::sampling_params{};
    req.params.temperature = 0.0f;
  }
  // One call site per element type: each prepare_row_with is a large inlined body.
  const auto prepare = [&](const auto* data, index_t cols, distribution_kind k) {
    using elem = std::remove_cv_t<std::remove_pointer_t<decltype(data)>>;
    return sampling::detail::prepare_row_with(ex,
                                              sampling::dist_row<elem>{data, cols, k},
                                              req.params,
                                              static_cast<const row_scan_result*>(nullptr));
  };
  const index_t d = r - l.target_rows;
  sampling::row_stats st;
  if constexpr (std::is_same_v<TT, TD>)
    st = prepare(is_target ? b.target.data + r * b.target.row_stride
                           : b.draft.data + d * b.draft.row_stride,
                 is_target ? b.target.cols : b.draft.cols,
                 is_target ? b.target_kind : b.draft_kind);
  else if (is_target)
    st = prepare(b.target.data + r * b.target.row_stride, b.target.cols, b.target_kind);
  else
    st = prepare(b.draft.data + d * b.draft.row_stride, b.draft.cols, b.draft_kind);
  if (threadIdx.x == 0)
    l.stats[r] = st;
}

/// @brief The rule: CTA b verifies request b with the policy's own `verify_tree` and the block
/// executor (reading prepared stats when the launch has them and every row of the request was
/// prepared for it). Writes accepted, last_node, next, status and the path row.
///
/// Before the rule runs, what would make it read out of bounds is checked: a node count
/// outside [1, tree::max_nodes], nodes past the target rows, a negative position and (for
/// rules reading draft rows) draft rows outside the draft matrix give the request bad_shape,
/// accepted 0, last_node 0 and token 0. A malformed tree is the shared rule's business: it
/// validates the tree and falls back (malformed_tree, the root row's draw). grid = B.
/// @tparam Threads threads per CTA
/// @tparam Policy a tree_verification_policy
/// @tparam TT target element type
/// @tparam TD draft element type
/// @param[in] policy the rule
/// @param[in] l the launch
template <int Threads, class Policy, class TT, class TD>
__global__ void __launch_bounds__(Threads)
    verify_tree_kernel(const Policy policy, const tree_launch<TT, TD> l) {
  const verify::tree_batch<TT, TD>& batch = l.p.batch;
  const index_t b = static_cast<index_t>(blockIdx.x);
  const index_t n0 = batch.node_offsets[b];
  const index_t n1 = batch.node_offsets[b + 1];
  const index_t n = n1 - n0;
  const index_t position = detail::request_position(l.p, b);
  bool malformed = n0 < 0 || n < 1 || n > tree::max_nodes || n1 > l.target_rows || position < 0;
  index_t d0 = 0;
  if (!malformed && Policy::needs_draft_rows && n > 1) { // uniform across the CTA
    d0 = detail::first_draft_row(batch, b);
    bool bad = false;
    for (index_t j = 1 + static_cast<index_t>(threadIdx.x); j < n; j += Threads) {
      const index_t row = detail::draft_row_of(batch, d0, n0, j);
      bad = bad || row < 0 || row >= batch.draft.rows;
    }
    malformed = __syncthreads_or(bad ? 1 : 0) != 0;
  }
  if (malformed) {
    verify::tree_outcome o;
    o.status.set(row_status::bad_shape);
    detail::store_tree_outcome<Threads>(l, b, o, nullptr, 0);
    return;
  }
  block::prepared_rows rows;
  if (l.stats != nullptr) { // use them only if every row of this request was prepared for it
    bool foreign = false;
    for (index_t j = static_cast<index_t>(threadIdx.x); j < n; j += Threads) {
      foreign = foreign || l.owners[n0 + j] != b;
      if (l.draft_rows > 0 && j >= 1)
        foreign = foreign || l.owners[l.target_rows + detail::draft_row_of(batch, d0, n0, j)] != b;
    }
    if (__syncthreads_or(foreign ? 1 : 0) == 0)
      rows = detail::prepared_rows_of<TT, TD>(
          batch, l.target_rows, l.stats, l.draft_rows, l.stats + l.target_rows);
  }
  // The rule's sibling state (tree rejection sampling) lives in the executor's shared scratch.
  block::block_executor<Threads, verify::tree_scratch_bytes<TD>> ex{
      detail::shared_storage<Threads>(), rows};
  verify::tree_request<TT, TD> req = batch.request(b, Policy::needs_draft_rows);
  req.position = position;
  const philox_uniforms u = detail::request_uniforms(l.p, b);
  const verify::tree_outcome o = policy.verify_tree(ex, req, u);
  detail::store_tree_outcome<Threads>(l, b, o, req.tree.parents, req.tree.num_nodes);
}

} // namespace kernels

SPECDEC_CUDA_NAMESPACE_END
