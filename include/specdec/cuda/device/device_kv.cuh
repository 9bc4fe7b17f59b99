// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Host entry points of device KV compaction after tree verification: kv_path_compactor
/// keeps each sequence's accepted tree path in a contiguous or paged cache (workspace query and
/// launch on a stream, no allocation, no synchronisation).

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/cuda/kernels/kv_compact_kernel.cuh>
#include <specdec/cuda/launch.cuh>

#include <cstddef>
#include <cstdint>
#include <type_traits>

SPECDEC_CUDA_NAMESPACE_BEGIN

namespace detail {

/// An unsigned type of N bytes (16: uint4); N must be 1, 2, 4, 8 or 16.
template <std::size_t N>
struct kv_storage {
  static_assert(N == 1 || N == 2 || N == 4 || N == 8 || N == 16, "no storage of this size");
  using type = std::conditional_t<
      N == 1,
      std::uint8_t,
      std::conditional_t<N == 2,
                         std::uint16_t,
                         std::conditional_t<N == 4,
                                            std::uint32_t,
                                            std::conditional_t<N == 8, std::uint64_t, uint4>>>>;
};

/// True when a byte count is a multiple of 16.
constexpr bool kv_aligned16(index_t bytes) noexcept {
  return bytes % 16 == 0;
}

} // namespace detail

/// @brief Keeps accepted tree paths in a device KV cache: for every sequence b, slot
/// `base[b] + path[b][d]` moves to `base[b] + d` in every plane (kv::contiguous_cache::keep_path
/// on the device, for a batch, in one launch).
///
/// Overlap safe in place: each (sequence, plane, feature group) is one thread copying its slots
/// in increasing d (see kv_compact_kernel.cuh). Features move 16 bytes at a time when a
/// plane's features are contiguous and every stride and the plane base are 16-byte aligned,
/// else element by element. Sequences with a bad path or slots outside the cache are left
/// untouched and flagged (kv_path_list::status).
/// @tparam Threads threads per CTA
template <int Threads = 256>
class kv_path_compactor {
public:
  /// @brief Workspace bytes `run` needs (none).
  /// @tparam T element type
  /// @param[in] p the problem
  /// @return 0
  /// @par Complexity
  /// Constant.
  template <class T>
  std::size_t workspace_bytes(const kv_contiguous_problem<T>& p) const noexcept {
    (void)p;
    return 0;
  }
  /// @brief Workspace bytes `run` needs (none).
  /// @tparam T element type
  /// @param[in] p the problem
  /// @return 0
  /// @par Complexity
  /// Constant.
  template <class T>
  std::size_t workspace_bytes(const kv_paged_problem<T>& p) const noexcept {
    (void)p;
    return 0;
  }

  /// @brief Compacts the paths of a contiguous cache on `stream`.
  /// @tparam T element type (1, 2, 4, 8 or 16 bytes)
  /// @param[in] p the problem (device pointers, host-side sizes)
  /// @param[in] workspace unused (may be null)
  /// @param[in] workspace_size unused
  /// @param[in] stream the stream
  /// @return ok once the kernel is enqueued; invalid_argument (B < 0, planes, width or
  ///   capacity below 1, negative strides, a null pointer with work to do, path_stride < 1);
  ///   cuda_error from the launch
  /// @par Complexity
  /// One launch; O(path length) per (sequence, plane, feature group) thread.
  template <class T>
  [[nodiscard]] status run(const kv_contiguous_problem<T>& p,
                           void* workspace,
                           std::size_t workspace_size,
                           cudaStream_t stream) const {
    (void)workspace;
    (void)workspace_size;
    if (p.capacity < 1 || p.sequence_stride < 0)
      return {errc::invalid_argument};
    kernels::detail::contiguous_slots layout;
    constexpr auto e = static_cast<index_t>(sizeof(T));
    layout.sequence_bytes = p.sequence_stride * e;
    layout.slot_bytes = p.slot_stride * e;
    layout.capacity = p.capacity;
    return launch<T>(p, layout, detail::kv_aligned16(layout.sequence_bytes), stream);
  }

  /// @brief Compacts the paths of a paged cache on `stream`.
  /// @tparam T element type (1, 2, 4, 8 or 16 bytes)
  /// @param[in] p the problem (device pointers, host-side sizes)
  /// @param[in] workspace unused (may be null)
  /// @param[in] workspace_size unused
  /// @param[in] stream the stream
  /// @return ok once the kernel is enqueued; invalid_argument (B < 0, planes, width or
  ///   block_size below 1, negative strides or counts, a null pointer with work to do,
  ///   path_stride < 1); cuda_error from the launch
  /// @par Complexity
  /// One launch; O(path length) per (sequence, plane, feature group) thread.
  template <class T>
  [[nodiscard]] status run(const kv_paged_problem<T>& p,
                           void* workspace,
                           std::size_t workspace_size,
                           cudaStream_t stream) const {
    (void)workspace;
    (void)workspace_size;
    if (p.block_size < 1 || p.num_blocks < 0 || p.block_stride < 0 || p.table_stride < 0
        || (p.paths.sequences > 0 && p.block_table == nullptr))
      return {errc::invalid_argument};
    kernels::detail::paged_slots layout;
    constexpr auto e = static_cast<index_t>(sizeof(T));
    layout.table = p.block_table;
    layout.table_stride = p.table_stride;
    layout.block_size = p.block_size;
    layout.num_blocks = p.num_blocks;
    layout.block_bytes = p.block_stride * e;
    layout.slot_bytes = p.slot_stride * e;
    return launch<T>(p, layout, detail::kv_aligned16(layout.block_bytes), stream);
  }

private:
  // The checks and the launch shared by both layouts; `Problem` is kv_contiguous_problem<T> or
  // kv_paged_problem<T> (the plane and feature fields they share).
  template <class T, class Problem, class Layout>
  static status
  launch(const Problem& p, const Layout& layout, bool layout_aligned16, cudaStream_t stream) {
    const kv_path_list& paths = p.paths;
    T* const data = p.data;
    T* const* const plane_data = p.plane_data;
    const index_t planes = p.planes;
    const index_t width = p.width;
    const index_t plane_stride = p.plane_stride;
    const index_t slot_stride = p.slot_stride;
    const index_t feature_stride = p.feature_stride;
    using storage = typename detail::kv_storage<sizeof(T)>::type;
    if (paths.sequences < 0 || planes < 1 || width < 1 || plane_stride < 0 || slot_stride < 0
        || feature_stride < 0)
      return {errc::invalid_argument};
    if (paths.sequences == 0)
      return {};
    if (paths.base == nullptr || paths.path == nullptr || paths.path_stride < 1
        || (data == nullptr && plane_data == nullptr))
      return {errc::invalid_argument};
    constexpr auto e = static_cast<index_t>(sizeof(T));
    kernels::detail::kv_compact_launch<Layout> l;
    l.paths = paths;
    l.layout = layout;
    l.data = reinterpret_cast<char*>(data);
    l.plane_data = reinterpret_cast<char* const*>(plane_data);
    l.planes = planes;
    l.width = width;
    l.plane_bytes = plane_stride * e;
    l.feature_bytes = feature_stride * e;
    l.vector_ok = (feature_stride == 1 || width == 1) && detail::kv_aligned16(width * e)
                  && detail::kv_aligned16(slot_stride * e) && layout_aligned16
                  && (plane_data != nullptr
                      || (detail::kv_aligned16(l.plane_bytes)
                          && reinterpret_cast<std::uintptr_t>(data) % 16u == 0u));
    const index_t units = width; // upper bound of the work items per sequence and plane
    const index_t items = paths.sequences * units;
    const index_t blocks = (items + Threads - 1) / Threads;
    const dim3 grid(static_cast<unsigned>(blocks < 4096 ? blocks : 4096),
                    static_cast<unsigned>(planes < 65535 ? planes : 65535));
    kernels::kv_compact_kernel<Threads, storage, Layout><<<grid, Threads, 0, stream>>>(l);
    SPECDEC_CUDA_TRY(cudaGetLastError());
    return {};
  }
};

SPECDEC_CUDA_NAMESPACE_END
