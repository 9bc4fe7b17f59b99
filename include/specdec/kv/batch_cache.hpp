// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief `paged_batch_cache`: a paged_cache pool addressed by the engine's request ids, the
///        kv::batch_kv_cache that decode::batch_decoder drives (open, reserve, rollback, close),
///        with prefix sharing by reference count (fork) and a bound on the positions of one
///        sequence.

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/kv/concepts.hpp>
#include <specdec/kv/paged_cache.hpp>

#include <cstdint>
#include <unordered_map>

SPECDEC_NAMESPACE_BEGIN

namespace kv {

/// @brief A paged KV pool whose sequences are named by 64-bit request ids (models batch_kv_cache).
///
/// Every open request owns one paged_cache sequence; its blocks come from the shared pool when
/// reserved and go back when it is rolled back past them or closed. fork() starts a request that
/// shares a parent's blocks (a common prompt prefix) by reference count; writes go through the
/// pool's copy-on-write. The pool is reached with pool() and a request's sequence with sequence()
/// (what a target model reads and writes).
/// @tparam T element type of the pool
template <class T>
class paged_batch_cache {
public:
  /// @brief Allocates the pool (paged_cache::allocate) and sets the per-sequence bound.
  /// @param[in] num_blocks blocks in the pool, > 0
  /// @param[in] block_size positions per block, > 0
  /// @param[in] planes the shape of each plane
  /// @param[in] capacity most positions one sequence may hold, > 0
  /// @return paged_cache::allocate's errors, or errc::invalid_argument for capacity <= 0; on
  ///         success every request is closed
  /// @par Complexity
  /// That of paged_cache::allocate.
  [[nodiscard]] status allocate(index_t num_blocks,
                                index_t block_size,
                                std::span<const plane_desc> planes,
                                index_t capacity) {
    if (capacity <= 0)
      return status{errc::invalid_argument};
    if (const status s = pool_.allocate(num_blocks, block_size, planes); !s.ok())
      return s;
    ids_.clear();
    capacity_ = capacity;
    return status{};
  }

  /// @brief Opens an empty sequence for `seq`.
  /// @param[in] seq the request id
  /// @return errc::invalid_argument when `seq` is open already
  /// @par Complexity
  /// O(1) amortised.
  [[nodiscard]] status open(std::uint64_t seq) {
    if (ids_.contains(seq))
      return status{errc::invalid_argument};
    ids_.emplace(seq, pool_.add_sequence());
    return status{};
  }
  /// @brief Opens `child` sharing every block and the length of the open request `parent` (a
  ///        common prefix, by reference count; copy-on-write on later writes).
  /// @param[in] parent an open request
  /// @param[in] child a request id that is not open
  /// @return errc::invalid_argument when parent is not open or child is
  /// @par Complexity
  /// O(blocks of parent).
  [[nodiscard]] status fork(std::uint64_t parent, std::uint64_t child) {
    const auto p = ids_.find(parent);
    if (p == ids_.end() || ids_.contains(child))
      return status{errc::invalid_argument};
    sequence_id c = -1;
    if (const status s = pool_.fork(p->second, c); !s.ok())
      return s;
    ids_.emplace(child, c);
    return status{};
  }
  /// @brief Closes `seq`: its blocks' counts go down (freed at 0).
  /// @param[in] seq an open request
  /// @return errc::invalid_argument when it is not open
  /// @par Complexity
  /// O(blocks of seq).
  [[nodiscard]] status close(std::uint64_t seq) {
    const auto it = ids_.find(seq);
    if (it == ids_.end())
      return status{errc::invalid_argument};
    const status s = pool_.release(it->second);
    ids_.erase(it);
    return s;
  }
  /// @brief Keeps positions [0, n) of `seq`, returns the blocks past them to the pool.
  /// @param[in] seq an open request
  /// @param[in] n positions to keep, 0 <= n <= length(seq)
  /// @return errc::invalid_argument for a request that is not open or a bad n
  /// @par Complexity
  /// O(dropped blocks).
  [[nodiscard]] status rollback(std::uint64_t seq, index_t n) {
    const auto it = ids_.find(seq);
    if (it == ids_.end())
      return status{errc::invalid_argument};
    return pool_.rollback(it->second, n);
  }
  /// @brief Makes room for n positions of `seq` (blocks from the pool).
  /// @param[in] seq an open request
  /// @param[in] n positions, >= 0
  /// @return errc::invalid_argument for a request that is not open or n < 0; errc::overflow when
  ///         n > capacity() or the pool has too few free blocks now
  /// @par Complexity
  /// O(new blocks).
  [[nodiscard]] status reserve(std::uint64_t seq, index_t n) {
    const auto it = ids_.find(seq);
    if (it == ids_.end() || n < 0)
      return status{errc::invalid_argument};
    if (n > capacity_)
      return status{errc::overflow};
    return pool_.reserve(it->second, n);
  }
  /// @brief Committed positions of `seq` (0 when it is not open). O(1) average.
  /// @param[in] seq the request id
  /// @return its length
  [[nodiscard]] index_t length(std::uint64_t seq) const noexcept {
    const auto it = ids_.find(seq);
    return it == ids_.end() ? 0 : pool_.length(it->second);
  }
  /// @brief Most positions one sequence may hold. O(1).
  /// @return the bound given to allocate()
  [[nodiscard]] index_t capacity() const noexcept {
    return capacity_;
  }
  /// @brief True when `seq` is open. O(1) average.
  /// @param[in] seq the request id
  /// @return whether it is open
  [[nodiscard]] bool contains(std::uint64_t seq) const noexcept {
    return ids_.contains(seq);
  }
  /// @brief The pool's sequence of `seq`, or -1 when it is not open. O(1) average.
  /// @param[in] seq the request id
  /// @return its sequence id in pool()
  [[nodiscard]] sequence_id sequence(std::uint64_t seq) const noexcept {
    const auto it = ids_.find(seq);
    return it == ids_.end() ? -1 : it->second;
  }
  /// @brief Open requests. O(1).
  /// @return their count
  [[nodiscard]] index_t open_sequences() const noexcept {
    return static_cast<index_t>(ids_.size());
  }
  /// @brief The pool (block counts, slots). O(1).
  /// @return the paged cache
  [[nodiscard]] paged_cache<T>& pool() noexcept {
    return pool_;
  }
  /// @brief The pool, read-only. O(1).
  /// @return the paged cache
  [[nodiscard]] const paged_cache<T>& pool() const noexcept {
    return pool_;
  }

private:
  paged_cache<T> pool_;
  std::unordered_map<std::uint64_t, sequence_id> ids_;
  index_t capacity_ = 0;
};

static_assert(batch_kv_cache<paged_batch_cache<float>>);

} // namespace kv

SPECDEC_NAMESPACE_END
