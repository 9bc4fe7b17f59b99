// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The kernel compacting accepted tree paths in a KV cache on the device, for a
/// contiguous layout and a paged layout, plus the problem types it reads.
///
/// Tree verification writes node j of sequence b at slot `base[b] + j`; after it, the accepted
/// root path `path[b] = [0, n_1, ..., n_a]` (strictly increasing, see tree/token_tree.hpp)
/// moves slot `base + n_d` to slot `base + d` for every d, as kv::contiguous_cache::keep_path
/// does on the host. Overlap safety: `n_d >= d`, so every source is at or after its
/// destination and after every destination written before it; copying each feature's slots
/// in increasing d (one thread per (sequence, plane, feature group)) never reads a slot the
/// same pass overwrote.

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>

#include <cstddef>
#include <cstdint>

SPECDEC_CUDA_NAMESPACE_BEGIN

/// @brief The accepted paths to keep, one per sequence, and what to report (device memory).
///
/// A path row is root first (`path[b][0] == 0`), strictly increasing, and ends at the first
/// negative entry or at path_stride (cuda::tree_problem::path writes this form). A sequence
/// whose base is negative, whose path row is not of this form, or whose slots fall outside
/// the cache is left untouched and flagged.
struct kv_path_list {
  index_t sequences = 0;              ///< B
  const index_t* base = nullptr;      ///< @shape{[B]} slot of each sequence's root (node 0)
  const std::int32_t* path = nullptr; ///< @shape{[B, path_stride]} accepted root paths
  index_t path_stride = 0;            ///< entries per path row, >= 1
  row_status* status = nullptr;       ///< optional @shape{[B]}: bad_shape when left untouched
  /// Optional @shape{[B]}: `base + path length` (the sequence's new committed length), -1
  /// when the sequence was left untouched.
  index_t* new_length = nullptr;
};

/// @brief A contiguous KV cache: B sequences of `capacity` slots, `planes` planes (keys of a
/// layer, values of a layer, ...) of `width` features per slot. Strides are in elements, so
/// both position-major planes (`slot_stride = width`, `feature_stride = 1`) and feature-major
/// planes (`slot_stride = 1`, `feature_stride = capacity`) fit.
///
/// Element (sequence b, plane p, slot s, feature f) is at
/// `plane_base(p) + b * sequence_stride + s * slot_stride + f * feature_stride`, where
/// `plane_base(p)` is `plane_data[p]` when plane_data is set, else `data + p * plane_stride`.
/// Distinct (b, p, s, f) must be distinct elements.
/// @tparam T element type (any trivially copyable type of 1, 2, 4, 8 or 16 bytes)
template <class T>
struct kv_contiguous_problem {
  kv_path_list paths{};           ///< the paths and the outputs
  T* data = nullptr;              ///< plane 0 (unused when plane_data is set)
  T* const* plane_data = nullptr; ///< optional @shape{[planes]} device array of plane bases
  index_t planes = 1;             ///< planes per sequence, >= 1
  index_t width = 0;              ///< features per slot and plane, >= 1
  index_t capacity = 0;           ///< slots per sequence, >= 1
  index_t sequence_stride = 0;    ///< elements between sequences
  index_t plane_stride = 0;       ///< elements between planes (without plane_data)
  index_t slot_stride = 0;        ///< elements between slots
  index_t feature_stride = 1;     ///< elements between features
};

/// @brief A paged KV cache: a pool of `num_blocks` physical blocks of `block_size` slots;
/// slot s of sequence b lives in physical block `block_table[b][s / block_size]` at offset
/// `s % block_size`.
///
/// Element (plane p, physical block k, offset o, feature f) is at
/// `plane_base(p) + k * block_stride + o * slot_stride + f * feature_stride` (strides in
/// elements; plane_base as for kv_contiguous_problem). vLLM's `[num_blocks, block_size, H, D]`
/// per-layer tensors are `block_stride = block_size * H * D`, `slot_stride = H * D`,
/// `width = H * D`, one plane per layer and K/V (plane_data); FlashInfer's
/// `[pages, 2, page_size, H, D]` is `plane_stride = page_size * H * D` for V after K.
///
/// The host guarantees that the blocks holding a sequence's tree slots are its own (copy on
/// write done beforehand) and that a sequence's logical blocks map to distinct physical ones.
/// @tparam T element type (any trivially copyable type of 1, 2, 4, 8 or 16 bytes)
template <class T>
struct kv_paged_problem {
  kv_path_list paths{};                      ///< the paths and the outputs
  T* data = nullptr;                         ///< plane 0 (unused when plane_data is set)
  T* const* plane_data = nullptr;            ///< optional @shape{[planes]} device plane bases
  index_t planes = 1;                        ///< planes, >= 1
  index_t width = 0;                         ///< features per slot and plane, >= 1
  index_t plane_stride = 0;                  ///< elements between planes (without plane_data)
  index_t block_stride = 0;                  ///< elements between physical blocks
  index_t slot_stride = 0;                   ///< elements between slots of a block
  index_t feature_stride = 1;                ///< elements between features
  index_t block_size = 0;                    ///< slots per block, >= 1
  index_t num_blocks = 0;                    ///< physical blocks in the pool
  const std::int32_t* block_table = nullptr; ///< @shape{[B, table_stride]} physical block ids
  index_t table_stride = 0;                  ///< logical blocks per sequence (max_blocks)
};

namespace kernels {

namespace detail {

/// Slot addressing of the contiguous layout (byte strides).
struct contiguous_slots {
  index_t sequence_bytes = 0; ///< bytes between sequences
  index_t slot_bytes = 0;     ///< bytes between slots
  index_t capacity = 0;       ///< slots per sequence
  /// True when slot s of sequence b exists.
  SPECDEC_DEVICE bool valid(index_t, index_t s) const {
    return s >= 0 && s < capacity;
  }
  /// First byte of slot s of sequence b in a plane.
  SPECDEC_DEVICE char* at(char* plane, index_t b, index_t s) const {
    return plane + b * sequence_bytes + s * slot_bytes;
  }
};

/// Slot addressing of the paged layout (byte strides).
struct paged_slots {
  const std::int32_t* table = nullptr; ///< block table
  index_t table_stride = 0;            ///< entries per sequence
  index_t block_size = 1;              ///< slots per block
  index_t num_blocks = 0;              ///< physical blocks
  index_t block_bytes = 0;             ///< bytes between blocks
  index_t slot_bytes = 0;              ///< bytes between slots of a block
  /// True when slot s of sequence b maps to a physical block of the pool.
  SPECDEC_DEVICE bool valid(index_t b, index_t s) const {
    if (s < 0 || s / block_size >= table_stride)
      return false;
    const std::int32_t k = table[b * table_stride + s / block_size];
    return k >= 0 && k < num_blocks;
  }
  /// First byte of slot s of sequence b in a plane.
  SPECDEC_DEVICE char* at(char* plane, index_t b, index_t s) const {
    const index_t k = table[b * table_stride + s / block_size];
    return plane + k * block_bytes + (s % block_size) * slot_bytes;
  }
};

/// The launch: paths, layout, planes (byte strides), element copy shape.
template <class Layout>
struct kv_compact_launch {
  kv_path_list paths{};              ///< the paths
  Layout layout{};                   ///< slot addressing
  char* data = nullptr;              ///< plane 0
  char* const* plane_data = nullptr; ///< optional plane bases
  index_t planes = 1;                ///< planes
  index_t width = 1;                 ///< features per slot
  index_t plane_bytes = 0;           ///< bytes between planes (without plane_data)
  index_t feature_bytes = 0;         ///< bytes between features
  bool vector_ok = false;            ///< 16-byte units possible (contiguous features, strides)
};

/// A sequence's path, checked.
struct checked_path {
  index_t base = 0;  ///< root slot
  index_t len = 0;   ///< nodes kept
  index_t first = 0; ///< first d with path[d] != d (len when none moves)
  bool ok = false;   ///< usable
};

/// Reads and checks sequence b's path row and slots.
template <class Layout>
SPECDEC_DEVICE checked_path check_path(const kv_compact_launch<Layout>& l, index_t b) {
  checked_path c;
  c.base = l.paths.base[b];
  const std::int32_t* row = l.paths.path + b * l.paths.path_stride;
  if (c.base < 0 || row[0] != 0)
    return c;
  c.len = 1;
  c.first = -1;
  for (index_t d = 1; d < l.paths.path_stride; ++d) {
    const std::int32_t v = row[d];
    if (v < 0)
      break;
    if (v <= row[d - 1])
      return c;
    if (c.first < 0 && v != d)
      c.first = d;
    ++c.len;
  }
  if (c.first < 0)
    c.first = c.len;
  for (index_t d = 0; d < c.len; ++d)
    if (!l.layout.valid(b, c.base + d) || !l.layout.valid(b, c.base + row[d]))
      return c;
  c.ok = true;
  return c;
}

/// Moves one unit (type U at byte offset `off` of every slot) along the path, in increasing
/// d, four loads ahead of their stores (all four sources lie after all four destinations'
/// earlier writes, see the file comment).
template <class U, class Layout>
SPECDEC_DEVICE void move_along_path(const Layout& layout,
                                    char* plane,
                                    index_t b,
                                    const checked_path& c,
                                    const std::int32_t* row,
                                    index_t off) {
  constexpr int ahead = 4;
  for (index_t d = c.first; d < c.len; d += ahead) {
    U v[ahead];
#pragma unroll
    for (int k = 0; k < ahead; ++k)
      if (d + k < c.len)
        v[k] = *reinterpret_cast<const U*>(layout.at(plane, b, c.base + row[d + k]) + off);
#pragma unroll
    for (int k = 0; k < ahead; ++k)
      if (d + k < c.len)
        *reinterpret_cast<U*>(layout.at(plane, b, c.base + d + k) + off) = v[k];
  }
}

} // namespace detail

/// @brief Path compaction: grid.y strides over planes, grid.x (grid-stride) over
/// (sequence, unit) with unit a 16-byte group of features when the plane allows it, else one
/// feature. Each thread checks its sequence's path, then moves its unit along it; the thread
/// of plane 0, unit 0 writes the sequence's status and new length.
/// @tparam Threads threads per CTA
/// @tparam S an unsigned type of the element's size
/// @tparam Layout detail::contiguous_slots or detail::paged_slots
/// @param[in] l the launch
template <int Threads, class S, class Layout>
__global__ void __launch_bounds__(Threads)
    kv_compact_kernel(const detail::kv_compact_launch<Layout> l) {
  const index_t step = static_cast<index_t>(gridDim.x) * Threads;
  for (index_t p = blockIdx.y; p < l.planes; p += gridDim.y) {
    char* plane = l.plane_data != nullptr ? l.plane_data[p] : l.data + p * l.plane_bytes;
    const bool vec = l.vector_ok && reinterpret_cast<std::uintptr_t>(plane) % 16u == 0u;
    const index_t units = vec ? l.width * static_cast<index_t>(sizeof(S)) / 16 : l.width;
    const index_t unit_bytes = vec ? 16 : l.feature_bytes;
    const index_t items = l.paths.sequences * units;
    for (index_t i = static_cast<index_t>(blockIdx.x) * Threads + threadIdx.x; i < items;
         i += step) {
      const index_t b = i / units;
      const index_t u = i % units;
      const detail::checked_path c = detail::check_path(l, b);
      if (p == 0 && u == 0) {
        if (l.paths.status != nullptr) {
          row_status st{};
          if (!c.ok)
            st.set(row_status::bad_shape);
          l.paths.status[b] = st;
        }
        if (l.paths.new_length != nullptr)
          l.paths.new_length[b] = c.ok ? c.base + c.len : -1;
      }
      if (!c.ok)
        continue;
      const std::int32_t* row = l.paths.path + b * l.paths.path_stride;
      if (vec)
        detail::move_along_path<uint4>(l.layout, plane, b, c, row, u * unit_bytes);
      else
        detail::move_along_path<S>(l.layout, plane, b, c, row, u * unit_bytes);
    }
  }
}

} // namespace kernels

SPECDEC_CUDA_NAMESPACE_END
