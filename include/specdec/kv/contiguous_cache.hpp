// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief A contiguous KV cache: per-plane storage for `capacity` positions, a committed length,
/// O(1) rollback after a rejected draft and in-place compaction of an accepted tree path.
///
/// A *plane* is one tensor that holds `width` features for each position: the keys of one layer,
/// the values of one layer, or a finer split (per layer and KV head) if a backend prefers. Each
/// plane is stored either position-major (`[capacity][width]`, the usual layout for values) or
/// feature-major (`[width][capacity]`, so a vector of consecutive positions is one load: the usual
/// layout for keys in a CPU attention kernel). The cache never interprets the numbers.
///
/// The speculative loop writes the anchor and the drafts at slots `[length, length + T)`, calls
/// `extend(length + T)`, verifies, then calls `rollback(n)` to keep the committed prefix and the
/// accepted drafts. Slots past `length()` may be written freely as scratch (a self-speculative
/// drafter writes its own layers there before the target commits them).
///
/// After a tree verification, keep_path() moves the accepted root path (written node by node at
/// `[length, length + N)`) to consecutive slots; the rollback classes and the kv_cache /
/// tree_kv_cache concepts are in kv/concepts.hpp.

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/kv/concepts.hpp>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace kv {

/// @brief How a plane lays out its `capacity x width` elements.
enum class plane_layout {
  position_major, ///< element (pos, f) at `pos * width + f`
  feature_major   ///< element (pos, f) at `f * capacity + pos`
};

/// @brief Shape of one plane: features per position and the layout.
struct plane_desc {
  index_t width = 0;                                  ///< features per position, > 0
  plane_layout layout = plane_layout::position_major; ///< storage order
};

/// @brief Contiguous per-plane KV storage with a committed length and partial rollback.
///
/// @tparam T element type (float, or a 16-bit type for a compressed cache)
///
/// Invariants: `0 <= length() <= capacity()`; every plane holds `capacity() * width` elements;
/// storage is zero-initialised by allocate() and never reallocated afterwards, so plane pointers
/// stay valid until the next allocate().
template <class T>
class contiguous_cache {
public:
  /// @brief This cache can drop any suffix.
  static constexpr rollback_class rollback_kind = rollback_class::partial;

  /// @brief What this cache can undo: any suffix (bound `index_t` max, limited only by
  /// length()).
  /// @return `{rollback_class::partial, index_t max}`
  /// @par Complexity
  /// O(1).
  [[nodiscard]] static constexpr rollback_capability rollback_limit() noexcept {
    return {rollback_class::partial, std::numeric_limits<index_t>::max()};
  }

  /// @brief Allocates zeroed storage for `capacity` positions of every plane; length becomes 0.
  /// @return errc::invalid_argument for capacity <= 0, no planes or a width <= 0;
  ///         errc::overflow when the total element count does not fit the index type.
  ///         On error the cache is left unchanged.
  /// @par Complexity
  /// O(capacity x sum of widths) (the zero fill).
  /// @param[in] capacity positions per plane, > 0
  /// @param[in] planes the shape of each plane
  [[nodiscard]] status allocate(index_t capacity, std::span<const plane_desc> planes) {
    if (capacity <= 0 || planes.empty())
      return status{errc::invalid_argument};
    std::vector<index_t> offsets;
    offsets.reserve(planes.size() + 1);
    index_t total = 0;
    for (const plane_desc& d : planes) {
      if (d.width <= 0)
        return status{errc::invalid_argument};
      if (d.width > std::numeric_limits<index_t>::max() / capacity)
        return status{errc::overflow};
      const index_t n = d.width * capacity;
      if (total > std::numeric_limits<index_t>::max() - n)
        return status{errc::overflow};
      offsets.push_back(total);
      total += n;
    }
    offsets.push_back(total);
    storage_.assign(static_cast<std::size_t>(total), T{});
    offsets_ = std::move(offsets);
    descs_.assign(planes.begin(), planes.end());
    capacity_ = capacity;
    length_ = 0;
    return status{};
  }

  /// @brief Positions the storage can hold. O(1).
  /// @return the capacity in positions
  [[nodiscard]] index_t capacity() const noexcept {
    return capacity_;
  }
  /// @brief Committed positions `[0, length())`. O(1).
  /// @return the committed length
  [[nodiscard]] index_t length() const noexcept {
    return length_;
  }
  /// @brief Number of planes. O(1).
  /// @return the plane count
  [[nodiscard]] index_t num_planes() const noexcept {
    return static_cast<index_t>(descs_.size());
  }
  /// @brief Shape of plane `p`; requires `0 <= p < num_planes()`. O(1).
  /// @param[in] p plane index
  /// @return its descriptor
  [[nodiscard]] const plane_desc& desc(index_t p) const noexcept {
    return descs_[static_cast<std::size_t>(p)];
  }
  /// @brief First element of plane `p`; requires `0 <= p < num_planes()`. O(1).
  /// @param[in] p plane index
  /// @return pointer to its first element
  [[nodiscard]] T* plane(index_t p) noexcept {
    return storage_.data() + offsets_[static_cast<std::size_t>(p)];
  }
  /// @brief First element of plane `p` (read-only); requires `0 <= p < num_planes()`. O(1).
  /// @param[in] p plane index
  /// @return pointer to its first element
  [[nodiscard]] const T* plane(index_t p) const noexcept {
    return storage_.data() + offsets_[static_cast<std::size_t>(p)];
  }
  /// @brief Offset of element (pos, f) inside plane `p`, following the plane's layout. O(1).
  /// @param[in] p plane index
  /// @param[in] pos position
  /// @param[in] f feature
  /// @return the element offset inside the plane
  [[nodiscard]] index_t offset(index_t p, index_t pos, index_t f) const noexcept {
    const plane_desc& d = desc(p);
    return d.layout == plane_layout::position_major ? pos * d.width + f : f * capacity_ + pos;
  }
  /// @brief Element (pos, f) of plane `p`; requires all three in range. O(1).
  /// @param[in] p plane index
  /// @param[in] pos position
  /// @param[in] f feature
  /// @return the element
  [[nodiscard]] T& at(index_t p, index_t pos, index_t f) noexcept {
    return plane(p)[offset(p, pos, f)];
  }
  /// @brief Element (pos, f) of plane `p` (read-only); requires all three in range. O(1).
  /// @param[in] p plane index
  /// @param[in] pos position
  /// @param[in] f feature
  /// @return the element
  [[nodiscard]] const T& at(index_t p, index_t pos, index_t f) const noexcept {
    return plane(p)[offset(p, pos, f)];
  }

  /// @brief Commits the slots `[length(), new_length)` that the caller has written.
  /// @return errc::invalid_argument when new_length < length(); errc::overflow when it exceeds
  ///         capacity(). On error nothing changes.
  /// @par Complexity
  /// O(1).
  /// @param[in] new_length the new committed length
  [[nodiscard]] status extend(index_t new_length) noexcept {
    if (new_length < length_)
      return status{errc::invalid_argument};
    if (new_length > capacity_)
      return status{errc::overflow};
    length_ = new_length;
    return status{};
  }

  /// @brief Drops the committed tail: keeps positions `[0, new_length)`.
  ///
  /// With `SPECDEC_ENABLE_EXTRA_CHECKS` and a floating-point T the dropped slots are overwritten
  /// with NaN, so a backend that reads a rolled-back slot produces NaN logits instead of silently
  /// stale ones.
  /// @return errc::invalid_argument when new_length is negative or greater than length();
  ///         nothing changes then.
  /// @par Complexity
  /// O(1) (O(dropped x widths) with extra checks).
  /// @param[in] new_length positions to keep
  [[nodiscard]] status rollback(index_t new_length) noexcept {
    if (new_length < 0 || new_length > length_)
      return status{errc::invalid_argument};
#if defined(SPECDEC_ENABLE_EXTRA_CHECKS)
    if constexpr (std::is_floating_point_v<T>) {
      for (index_t p = 0; p < num_planes(); ++p)
        for (index_t pos = new_length; pos < length_; ++pos)
          for (index_t f = 0; f < desc(p).width; ++f)
            at(p, pos, f) = std::numeric_limits<T>::quiet_NaN();
    }
#endif
    length_ = new_length;
    return status{};
  }

  /// @brief Copies slot `src` to slot `dst` in every plane (tree-path compaction moves accepted
  /// nodes to consecutive positions this way). Does not change length().
  /// @return errc::invalid_argument when either slot is outside `[0, capacity())`.
  /// @par Complexity
  /// O(sum of widths).
  /// @param[in] src slot to read
  /// @param[in] dst slot to overwrite
  [[nodiscard]] status copy_position(index_t src, index_t dst) noexcept {
    if (src < 0 || dst < 0 || src >= capacity_ || dst >= capacity_)
      return status{errc::invalid_argument};
    if (src == dst)
      return status{};
    for (index_t p = 0; p < num_planes(); ++p) {
      T* base = plane(p);
      for (index_t f = 0; f < desc(p).width; ++f)
        base[offset(p, dst, f)] = base[offset(p, src, f)];
    }
    return status{};
  }

  /// @brief Keeps an accepted tree path: slot `base + nodes[d]` moves to `base + d` in every
  /// plane, then the length becomes `base + nodes.size()`.
  ///
  /// The tree was written node by node at slots `base + j` (node j; `base` is the root's slot,
  /// the last committed token), so `nodes` is the accepted root path in node indices relative to
  /// `base`: root first (`nodes[0] == 0`) and strictly increasing (parents precede children).
  /// A path of only the root keeps `[0, base + 1)`.
  /// @return errc::invalid_argument when `nodes` is empty, `nodes[0] != 0`, the nodes are not
  ///         strictly increasing, base < 0, or `base + nodes.back() >= length()`. On error
  ///         nothing changes.
  /// @par Complexity
  /// O(nodes.size() x sum of widths) (plus rollback()'s poisoning with extra checks).
  /// @param[in] base slot of the root (node 0)
  /// @param[in] nodes the accepted root path, root first
  [[nodiscard]] status keep_path(index_t base, std::span<const std::int32_t> nodes) noexcept {
    if (nodes.empty() || nodes[0] != 0 || base < 0)
      return status{errc::invalid_argument};
    for (std::size_t d = 1; d < nodes.size(); ++d)
      if (nodes[d] <= nodes[d - 1])
        return status{errc::invalid_argument};
    if (nodes.back() >= length_ - base)
      return status{errc::invalid_argument};
    // Increasing d is overlap-safe: nodes[0] == 0 and strictly increasing give nodes[d] >= d,
    // so every source slot base + nodes[d] is at or after its destination base + d, and every
    // later source base + nodes[e] (e > d, nodes[e] >= e > d) lies after every slot written so
    // far. No copy reads a slot an earlier copy overwrote.
    for (std::size_t d = 1; d < nodes.size(); ++d)
      (void)copy_position(base + nodes[d], base + static_cast<index_t>(d));
    // nodes.size() <= nodes.back() + 1, so the new length is within [base + 1, length()].
    return rollback(base + static_cast<index_t>(nodes.size()));
  }

  /// @brief Empties the cache (length 0); storage is kept. O(1).
  void clear() noexcept {
    length_ = 0;
  }

private:
  std::vector<T> storage_;
  std::vector<index_t> offsets_;
  std::vector<plane_desc> descs_;
  index_t capacity_ = 0;
  index_t length_ = 0;
};

static_assert(tree_kv_cache<contiguous_cache<float>>);

} // namespace kv

SPECDEC_NAMESPACE_END
