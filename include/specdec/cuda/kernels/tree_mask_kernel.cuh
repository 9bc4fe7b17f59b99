// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The kernel building bit-packed tree attention masks and node positions for a packed
/// batch of token trees (one thread per (row, word), each calling the shared tree::mask_word),
/// plus the problem type it reads.

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/cuda/detail/kernel_common.cuh>
#include <specdec/tree/mask.hpp>
#include <specdec/tree/token_tree.hpp>

#include <cstdint>

SPECDEC_CUDA_NAMESPACE_BEGIN

/// @brief Masks and positions of a packed batch of token trees (every pointer device memory).
///
/// Request b owns rows `[node_offsets[b], node_offsets[b + 1])` (the layout of
/// verify::tree_batch). Mask row `r` (node j = r - node_offsets[b] of request b) holds
/// `mask_stride` words: word w is `tree::mask_word(tree of b, j, w)` (bit k set iff node
/// 32 w + k is j or one of its ancestors, little-endian), and words past
/// `tree::mask_words(N_b)` are 0. Tree columns only: the committed prefix is visible to every
/// row and is left to the attention kernel.
struct tree_mask_problem {
  index_t batch = 0;                       ///< B
  const index_t* node_offsets = nullptr;   ///< @shape{[B + 1]}, [0] = 0, increasing
  const std::int32_t* parents = nullptr;   ///< @shape{[total_nodes]}, request-local parents
  index_t total_nodes = 0;                 ///< host value of node_offsets[B]: rows of the outputs
  std::uint32_t* mask = nullptr;           ///< optional @shape{[total_nodes, mask_stride]}
  index_t mask_stride = 0;                 ///< words per mask row, >= mask_words(largest N_b)
  index_t* positions = nullptr;            ///< optional @shape{[total_nodes]}: root + depth
  const index_t* root_positions = nullptr; ///< @shape{[B]} position of each root (with positions)
  /// Optional @shape{[B]}: bad_shape when the request's node count is outside
  /// [1, tree::max_nodes], its rows run past total_nodes or its mask does not fit mask_stride
  /// (its rows are then all-zero words and position -1); malformed_tree when tree::validate
  /// fails (its words and positions are then unspecified but written, and nothing outside the
  /// request's parents is read); else clean.
  row_status* status = nullptr;
};

namespace kernels {

namespace detail {

/// Request b's node range and whether the kernels may use it.
struct tree_rows {
  index_t n0 = 0;  ///< first row
  index_t n = 0;   ///< nodes
  bool ok = false; ///< counts, bounds and mask width are usable
};

/// The node range of request b, checked against the outputs.
SPECDEC_DEVICE inline tree_rows mask_rows_of(const tree_mask_problem& p, index_t b) {
  tree_rows t;
  t.n0 = p.node_offsets[b];
  const index_t n1 = p.node_offsets[b + 1];
  t.n = n1 - t.n0;
  t.ok =
      t.n0 >= 0 && t.n >= 1 && t.n <= tree::max_nodes && n1 <= p.total_nodes
      && (p.mask == nullptr || tree::mask_words(static_cast<std::int32_t>(t.n)) <= p.mask_stride);
  return t;
}

/// Depth of node j, walking parent links while they point to a lower index (a valid tree's
/// depth; bounded and in range on a malformed one).
SPECDEC_DEVICE inline std::int32_t bounded_depth(const std::int32_t* parents, std::int32_t j) {
  std::int32_t d = 0;
  for (std::int32_t k = j; k > 0;) {
    const std::int32_t q = parents[k];
    if (q < 0 || q >= k)
      break;
    ++d;
    k = q;
  }
  return d;
}

} // namespace detail

/// @brief Builds masks, positions and statuses. Grid-stride over `B + total_nodes * W`
/// work items (W = mask_stride, or 1 without a mask): items [0, B) write the request statuses,
/// the others word (r, w) of the mask and, for w == 0, position r.
/// @tparam Threads threads per CTA
/// @param[in] p the problem
template <int Threads>
__global__ void __launch_bounds__(Threads) tree_mask_kernel(const tree_mask_problem p) {
  const index_t words = p.mask != nullptr ? p.mask_stride : 1;
  const index_t items = p.batch + p.total_nodes * words;
  const index_t step = static_cast<index_t>(gridDim.x) * Threads;
  for (index_t i = static_cast<index_t>(blockIdx.x) * Threads + threadIdx.x; i < items; i += step) {
    if (i < p.batch) {
      if (p.status == nullptr)
        continue;
      const detail::tree_rows t = detail::mask_rows_of(p, i);
      row_status st{};
      if (!t.ok)
        st.set(row_status::bad_shape);
      else if (!tree::validate({p.parents + t.n0, static_cast<std::int32_t>(t.n), nullptr, nullptr})
                    .ok())
        st.set(row_status::malformed_tree);
      p.status[i] = st;
      continue;
    }
    const index_t r = (i - p.batch) / words;
    const index_t w = (i - p.batch) % words;
    const index_t b =
        detail::owner_of(p.batch, r, [&](index_t k) { return p.node_offsets[k + 1]; });
    const detail::tree_rows t = detail::mask_rows_of(p, b);
    const bool ok = t.ok && t.n0 <= r && r < t.n0 + t.n;
    const tree::tree_view view{p.parents + t.n0, static_cast<std::int32_t>(t.n), nullptr, nullptr};
    const auto j = static_cast<std::int32_t>(r - t.n0);
    if (p.mask != nullptr)
      p.mask[r * p.mask_stride + w] =
          ok ? tree::mask_word(view, j, static_cast<std::int32_t>(w)) : 0u;
    if (w == 0 && p.positions != nullptr)
      p.positions[r] = ok ? p.root_positions[b] + detail::bounded_depth(view.parents, j) : -1;
  }
}

} // namespace kernels

SPECDEC_CUDA_NAMESPACE_END
