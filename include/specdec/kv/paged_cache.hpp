// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief A paged KV cache (as in vLLM and TensorRT-LLM): a pool of fixed-size blocks, one block
/// table per sequence, reference-counted blocks shared between forked sequences, copy-on-write,
/// rollback that returns whole blocks to the pool, and tree-path compaction.
///
/// Position `pos` of a sequence lives in block `table[pos / block_size]` at row
/// `pos % block_size`. Every block holds all planes for its `block_size` positions: plane p
/// occupies `block_size x width_p` elements of the block, laid out as its plane_desc says
/// (position-major: row r, feature f at `r * width + f`; feature-major: at `f * block_size + r`).
///
/// Branches and common prefixes are shared with fork(): the child gets a copy of the parent's
/// block table and every block's reference count goes up by one. A write through writable() (or
/// make_writable(), copy_position(), keep_path()) to a block that another table also holds first
/// copies that block into a fresh one for the writing sequence only (copy-on-write), so the
/// other sequences never see the write. rollback() and release() decrement the counts of the
/// blocks they drop; a block whose count reaches 0 goes back to the free pool.
///
/// The kv_cache concept is per sequence: paged_sequence binds a cache and a sequence id and
/// models kv_cache and tree_kv_cache, so the decoding loop can use one sequence of the pool.

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/kv/concepts.hpp>
#include <specdec/kv/contiguous_cache.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace kv {

/// @brief Identifies one block of a paged_cache pool, `0 <= b < num_blocks()`.
using block_id = std::int32_t;

/// @brief A pool of KV blocks shared by many sequences through reference-counted block tables.
///
/// @tparam T element type (float, or a 16-bit type for a compressed cache)
///
/// Invariants: every block is either free (reference count 0, on the free list) or held by
/// exactly `refcount(b)` entries of the live sequences' block tables; a sequence's table covers
/// at least its length (`block_table(s).size() * block_size() >= length(s)`); storage is
/// allocated once by allocate() and never reallocated, so slot pointers stay valid until the
/// block changes owner (copy-on-write, rollback, release) or the next allocate(). The contents of
/// a block taken from the pool are unspecified until written.
template <class T>
class paged_cache {
public:
  /// @brief Each sequence can drop any suffix.
  static constexpr rollback_class rollback_kind = rollback_class::partial;

  /// @brief Allocates zeroed storage for `num_blocks` blocks of `block_size` positions of every
  /// plane; drops every sequence.
  /// @return errc::invalid_argument for num_blocks <= 0, block_size <= 0, no planes or a width
  ///         <= 0; errc::overflow when num_blocks does not fit block_id or the total element
  ///         count does not fit the index type. On error the cache is left unchanged.
  /// @par Complexity
  /// O(num_blocks x block_size x sum of widths) (the zero fill).
  /// @param[in] num_blocks blocks in the pool, > 0
  /// @param[in] block_size positions per block, > 0
  /// @param[in] planes the shape of each plane
  [[nodiscard]] status
  allocate(index_t num_blocks, index_t block_size, std::span<const plane_desc> planes) {
    if (num_blocks <= 0 || block_size <= 0 || planes.empty())
      return status{errc::invalid_argument};
    if (num_blocks > std::numeric_limits<block_id>::max())
      return status{errc::overflow};
    constexpr index_t max = std::numeric_limits<index_t>::max();
    std::vector<index_t> offsets;
    offsets.reserve(planes.size() + 1);
    index_t row = 0; // elements per position, all planes
    for (const plane_desc& d : planes) {
      if (d.width <= 0)
        return status{errc::invalid_argument};
      if (row > max - d.width)
        return status{errc::overflow};
      offsets.push_back(row * block_size);
      row += d.width;
      if (row > max / block_size)
        return status{errc::overflow};
    }
    const index_t per_block = row * block_size;
    if (per_block > max / num_blocks)
      return status{errc::overflow};
    storage_.assign(static_cast<std::size_t>(per_block * num_blocks), T{});
    plane_offsets_ = std::move(offsets);
    descs_.assign(planes.begin(), planes.end());
    num_blocks_ = num_blocks;
    block_size_ = block_size;
    block_elems_ = per_block;
    refcounts_.assign(static_cast<std::size_t>(num_blocks), 0);
    free_list_.resize(static_cast<std::size_t>(num_blocks));
    for (index_t i = 0; i < num_blocks; ++i) // popped from the back: blocks 0, 1, 2, ...
      free_list_[static_cast<std::size_t>(i)] = static_cast<block_id>(num_blocks - 1 - i);
    seqs_.clear();
    free_seqs_.clear();
    live_ = 0;
    return status{};
  }

  /// @brief Blocks in the pool. O(1).
  /// @return the block count
  [[nodiscard]] index_t num_blocks() const noexcept {
    return num_blocks_;
  }
  /// @brief Positions per block. O(1).
  /// @return the block size
  [[nodiscard]] index_t block_size() const noexcept {
    return block_size_;
  }
  /// @brief Blocks on the free list (reference count 0). O(1).
  /// @return the free block count
  [[nodiscard]] index_t free_blocks() const noexcept {
    return static_cast<index_t>(free_list_.size());
  }
  /// @brief Blocks held by at least one sequence. O(1).
  /// @return `num_blocks() - free_blocks()`
  [[nodiscard]] index_t used_blocks() const noexcept {
    return num_blocks_ - free_blocks();
  }
  /// @brief Number of block-table entries that hold block `b` (0 for a free block or an id out
  /// of range). O(1).
  /// @param[in] b a block id
  /// @return its reference count
  [[nodiscard]] std::int32_t refcount(block_id b) const noexcept {
    return b >= 0 && b < num_blocks_ ? refcounts_[static_cast<std::size_t>(b)] : 0;
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
  /// @brief Distance in elements between features f and f + 1 of one position of plane `p`:
  /// 1 for a position-major plane, block_size() for a feature-major one. O(1).
  /// @param[in] p plane index, `0 <= p < num_planes()`
  /// @return the feature stride
  [[nodiscard]] index_t feature_stride(index_t p) const noexcept {
    return desc(p).layout == plane_layout::position_major ? 1 : block_size_;
  }

  /// @brief Live sequences. O(1).
  /// @return the number of sequences added or forked and not yet released
  [[nodiscard]] index_t num_sequences() const noexcept {
    return live_;
  }
  /// @brief True when `s` names a live sequence. O(1).
  /// @param[in] s a sequence id
  /// @return whether it is live
  [[nodiscard]] bool contains(sequence_id s) const noexcept {
    return s >= 0 && static_cast<std::size_t>(s) < seqs_.size()
           && seqs_[static_cast<std::size_t>(s)].live;
  }
  /// @brief Committed positions of sequence `s` (0 when `s` is not live). O(1).
  /// @param[in] s a sequence id
  /// @return its length
  [[nodiscard]] index_t length(sequence_id s) const noexcept {
    return contains(s) ? get(s).length : 0;
  }
  /// @brief Positions covered by the blocks of `s` (0 when `s` is not live); slots in
  /// `[length(s), reserved(s))` are scratch the caller may write before extend(). O(1).
  /// @param[in] s a sequence id
  /// @return `block_table(s).size() * block_size()`
  [[nodiscard]] index_t reserved(sequence_id s) const noexcept {
    return contains(s) ? static_cast<index_t>(get(s).table.size()) * block_size_ : 0;
  }
  /// @brief The block table of `s`: entry i holds positions `[i * block_size(), (i + 1) *
  /// block_size())` (empty when `s` is not live). Valid until the next call that changes `s`.
  /// O(1).
  /// @param[in] s a sequence id
  /// @return its blocks in position order
  [[nodiscard]] std::span<const block_id> block_table(sequence_id s) const noexcept {
    if (!contains(s))
      return {};
    return {get(s).table.data(), get(s).table.size()};
  }

  /// @brief Starts an empty sequence (length 0, no blocks); ids of released sequences are reused.
  /// @return its id
  /// @par Complexity
  /// O(1) amortised.
  [[nodiscard]] sequence_id add_sequence() {
    sequence_id s;
    if (!free_seqs_.empty()) {
      s = free_seqs_.back();
      free_seqs_.pop_back();
    } else {
      s = static_cast<sequence_id>(seqs_.size());
      seqs_.emplace_back();
    }
    sequence& q = get(s);
    q.live = true;
    q.length = 0;
    q.table.clear();
    ++live_;
    return s;
  }

  /// @brief Starts a sequence that shares every block (and the length) of `parent`: each block's
  /// reference count goes up by one; no data is copied until one of them writes (copy-on-write).
  /// @return errc::invalid_argument when `parent` is not live (child is left unchanged then).
  /// @par Complexity
  /// O(blocks of parent).
  /// @param[in] parent the sequence to share
  /// @param[out] child receives the new sequence's id
  [[nodiscard]] status fork(sequence_id parent, sequence_id& child) {
    if (!contains(parent))
      return status{errc::invalid_argument};
    const sequence_id c = add_sequence(); // may reallocate seqs_: look parent up afterwards
    const sequence& p = get(parent);
    sequence& q = get(c);
    q.table = p.table;
    q.length = p.length;
    for (const block_id b : q.table)
      ++refcounts_[static_cast<std::size_t>(b)];
    child = c;
    return status{};
  }

  /// @brief Ends sequence `s`: every block it holds is decremented (freed at 0) and its id may
  /// be reused by add_sequence() or fork().
  /// @return errc::invalid_argument when `s` is not live.
  /// @par Complexity
  /// O(blocks of s).
  /// @param[in] s the sequence
  [[nodiscard]] status release(sequence_id s) {
    if (!contains(s))
      return status{errc::invalid_argument};
    sequence& q = get(s);
    for (const block_id b : q.table)
      decref(b);
    q.table.clear();
    q.length = 0;
    q.live = false;
    free_seqs_.push_back(s);
    --live_;
    return status{};
  }

  /// @brief Makes the table of `s` cover `[0, positions)`, taking blocks from the pool; the
  /// length does not change.
  /// @return errc::invalid_argument when `s` is not live or positions < 0; errc::overflow when
  ///         the pool has too few free blocks. On error nothing changes.
  /// @par Complexity
  /// O(new blocks).
  /// @param[in] s the sequence
  /// @param[in] positions positions to cover
  [[nodiscard]] status reserve(sequence_id s, index_t positions) {
    if (!contains(s) || positions < 0)
      return status{errc::invalid_argument};
    sequence& q = get(s);
    const index_t need = blocks_for(positions) - static_cast<index_t>(q.table.size());
    if (need <= 0)
      return status{};
    if (need > free_blocks())
      return status{errc::overflow};
    for (index_t i = 0; i < need; ++i)
      q.table.push_back(take_block());
    return status{};
  }

  /// @brief Commits the slots `[length(s), new_length)`, reserving blocks as needed.
  /// @return errc::invalid_argument when `s` is not live or new_length < length(s);
  ///         errc::overflow when the pool has too few free blocks. On error nothing changes.
  /// @par Complexity
  /// O(new blocks).
  /// @param[in] s the sequence
  /// @param[in] new_length the new committed length
  [[nodiscard]] status extend(sequence_id s, index_t new_length) {
    if (!contains(s) || new_length < get(s).length)
      return status{errc::invalid_argument};
    if (const status r = reserve(s, new_length); !r.ok())
      return r;
    get(s).length = new_length;
    return status{};
  }

  /// @brief Keeps positions `[0, new_length)` of `s` and returns every block past them
  /// (including reserved scratch blocks) to the pool: their counts go down, and a block whose
  /// count reaches 0 is freed.
  /// @return errc::invalid_argument when `s` is not live or new_length is outside
  ///         `[0, length(s)]`; nothing changes then.
  /// @par Complexity
  /// O(dropped blocks).
  /// @param[in] s the sequence
  /// @param[in] new_length positions to keep
  [[nodiscard]] status rollback(sequence_id s, index_t new_length) {
    if (!contains(s) || new_length < 0 || new_length > get(s).length)
      return status{errc::invalid_argument};
    sequence& q = get(s);
    const std::size_t keep = static_cast<std::size_t>(blocks_for(new_length));
    for (std::size_t i = keep; i < q.table.size(); ++i)
      decref(q.table[i]);
    q.table.resize(keep);
    q.length = new_length;
    return status{};
  }

  /// @brief First feature of position `pos` of plane `p` in sequence `s`, for reading; feature
  /// f is at `slot(s, pos, p)[f * feature_stride(p)]`. Do not write through it: the block may be
  /// shared (use writable()).
  /// @param[in] s the sequence
  /// @param[in] pos a position, `0 <= pos < reserved(s)`
  /// @param[in] p a plane, `0 <= p < num_planes()`
  /// @return the pointer, or nullptr when an argument is out of range
  /// @par Complexity
  /// O(1).
  [[nodiscard]] const T* slot(sequence_id s, index_t pos, index_t p) const noexcept {
    if (!in_range(s, pos, p))
      return nullptr;
    const sequence& q = get(s);
    return storage_.data() + element(q.table[static_cast<std::size_t>(pos / block_size_)], pos, p);
  }

  /// @brief Like slot(), for writing: when the block holding `pos` is shared (reference count
  /// > 1), it is first copied into a fresh block that replaces it in this sequence's table only
  /// (copy-on-write).
  /// @param[in] s the sequence
  /// @param[in] pos a position, `0 <= pos < reserved(s)`
  /// @param[in] p a plane, `0 <= p < num_planes()`
  /// @return the pointer, or nullptr when an argument is out of range or the copy needs a block
  ///         and the pool is empty (nothing changes then)
  /// @par Complexity
  /// O(1), or O(block_size x sum of widths) when it copies.
  [[nodiscard]] T* writable(sequence_id s, index_t pos, index_t p) noexcept {
    if (!in_range(s, pos, p))
      return nullptr;
    const std::size_t i = static_cast<std::size_t>(pos / block_size_);
    if (!own_block(get(s), i))
      return nullptr;
    return storage_.data() + element(get(s).table[i], pos, p);
  }

  /// @brief Copies-on-write, at once, every shared block that holds a position of
  /// `[begin, end)` in `s`, so that writable() cannot fail on that range afterwards.
  /// @return errc::invalid_argument when `s` is not live or the range is not within
  ///         `[0, reserved(s)]`; errc::overflow when the pool has fewer free blocks than there are
  ///         shared blocks to copy. On error nothing changes.
  /// @par Complexity
  /// O(blocks in range + copied blocks x block_size x sum of widths).
  /// @param[in] s the sequence
  /// @param[in] begin first position
  /// @param[in] end one past the last position
  [[nodiscard]] status make_writable(sequence_id s, index_t begin, index_t end) noexcept {
    if (!contains(s) || begin < 0 || end < begin || end > reserved(s))
      return status{errc::invalid_argument};
    if (begin == end)
      return status{};
    sequence& q = get(s);
    const std::size_t first = static_cast<std::size_t>(begin / block_size_);
    const std::size_t last = static_cast<std::size_t>(blocks_for(end));
    index_t shared = 0;
    for (std::size_t i = first; i < last; ++i)
      shared += refcounts_[static_cast<std::size_t>(q.table[i])] > 1 ? 1 : 0;
    if (shared > free_blocks())
      return status{errc::overflow};
    for (std::size_t i = first; i < last; ++i)
      (void)own_block(q, i);
    return status{};
  }

  /// @brief Copies position `src` to position `dst` of `s` in every plane (copy-on-write on the
  /// block of `dst`). Does not change the length.
  /// @return errc::invalid_argument when `s` is not live or a position is outside
  ///         `[0, reserved(s))`; errc::overflow when the copy-on-write needs a block and the pool
  ///         is empty. On error nothing changes.
  /// @par Complexity
  /// O(sum of widths), plus one block copy when the block of dst is shared.
  /// @param[in] s the sequence
  /// @param[in] src position to read
  /// @param[in] dst position to overwrite
  [[nodiscard]] status copy_position(sequence_id s, index_t src, index_t dst) noexcept {
    if (!contains(s) || src < 0 || dst < 0 || src >= reserved(s) || dst >= reserved(s))
      return status{errc::invalid_argument};
    if (src == dst)
      return status{};
    if (!own_block(get(s), static_cast<std::size_t>(dst / block_size_)))
      return status{errc::overflow};
    copy_unchecked(get(s), src, dst);
    return status{};
  }

  /// @brief Keeps an accepted tree path of `s`: position `base + nodes[d]` moves to `base + d`
  /// in every plane (copy-on-write where a destination block is shared), then the sequence is
  /// rolled back to `base + nodes.size()` (freeing whole blocks past it).
  ///
  /// The tree was written node by node at positions `base + j` (node j; `base` is the root's
  /// position, the last committed token), so `nodes` is the accepted root path in node indices
  /// relative to `base`: root first (`nodes[0] == 0`) and strictly increasing (parents precede
  /// children).
  /// @return errc::invalid_argument when `s` is not live, `nodes` is empty, `nodes[0] != 0`, the
  ///         nodes are not strictly increasing, base < 0, or `base + nodes.back() >= length(s)`;
  ///         errc::overflow when the pool has fewer free blocks than the shared destination
  ///         blocks to copy. On error nothing changes.
  /// @par Complexity
  /// O(nodes.size() x sum of widths + copied blocks x block_size x sum of widths + dropped
  /// blocks).
  /// @param[in] s the sequence
  /// @param[in] base position of the root (node 0)
  /// @param[in] nodes the accepted root path, root first
  [[nodiscard]] status
  keep_path(sequence_id s, index_t base, std::span<const std::int32_t> nodes) noexcept {
    if (!contains(s) || nodes.empty() || nodes[0] != 0 || base < 0)
      return status{errc::invalid_argument};
    for (std::size_t d = 1; d < nodes.size(); ++d)
      if (nodes[d] <= nodes[d - 1])
        return status{errc::invalid_argument};
    sequence& q = get(s);
    if (nodes.back() >= q.length - base)
      return status{errc::invalid_argument};
    // Count the shared destination blocks first (all or nothing). Destinations base + d grow
    // with d, so equal block indices are adjacent.
    index_t shared = 0;
    std::size_t last = static_cast<std::size_t>(-1);
    for (std::size_t d = 1; d < nodes.size(); ++d) {
      if (nodes[d] == static_cast<std::int32_t>(d))
        continue;
      const std::size_t i =
          static_cast<std::size_t>((base + static_cast<index_t>(d)) / block_size_);
      if (i != last && refcounts_[static_cast<std::size_t>(q.table[i])] > 1)
        ++shared;
      last = i;
    }
    if (shared > free_blocks())
      return status{errc::overflow};
    // Increasing d is overlap-safe: nodes[0] == 0 and strictly increasing give nodes[d] >= d,
    // so every source base + nodes[d] is at or after its destination base + d, and every later
    // source base + nodes[e] (e > d, nodes[e] >= e > d) lies after every position written so
    // far. A copy-on-write copies the whole block, so sources read through the updated table
    // still see the same values.
    for (std::size_t d = 1; d < nodes.size(); ++d) {
      const index_t dst = base + static_cast<index_t>(d);
      const index_t src = base + nodes[d];
      if (src == dst)
        continue;
      (void)own_block(q, static_cast<std::size_t>(dst / block_size_));
      copy_unchecked(q, src, dst);
    }
    // nodes.size() <= nodes.back() + 1, so the new length is within [base + 1, length(s)].
    return rollback(s, base + static_cast<index_t>(nodes.size()));
  }

private:
  struct sequence {
    std::vector<block_id> table;
    index_t length = 0;
    bool live = false;
  };

  [[nodiscard]] sequence& get(sequence_id s) noexcept {
    return seqs_[static_cast<std::size_t>(s)];
  }
  [[nodiscard]] const sequence& get(sequence_id s) const noexcept {
    return seqs_[static_cast<std::size_t>(s)];
  }
  [[nodiscard]] index_t blocks_for(index_t positions) const noexcept {
    return positions / block_size_ + (positions % block_size_ != 0 ? 1 : 0);
  }
  [[nodiscard]] bool in_range(sequence_id s, index_t pos, index_t p) const noexcept {
    return contains(s) && pos >= 0 && pos < reserved(s) && p >= 0 && p < num_planes();
  }
  // Offset of position pos (feature 0) of plane p inside storage_, in block b.
  [[nodiscard]] index_t element(block_id b, index_t pos, index_t p) const noexcept {
    const index_t r = pos % block_size_;
    const index_t in_plane = desc(p).layout == plane_layout::position_major ? r * desc(p).width : r;
    return static_cast<index_t>(b) * block_elems_ + plane_offsets_[static_cast<std::size_t>(p)]
           + in_plane;
  }
  // Pops a free block with reference count 1; requires free_blocks() > 0.
  [[nodiscard]] block_id take_block() noexcept {
    const block_id b = free_list_.back();
    free_list_.pop_back();
    refcounts_[static_cast<std::size_t>(b)] = 1;
    return b;
  }
  void decref(block_id b) noexcept {
    if (--refcounts_[static_cast<std::size_t>(b)] == 0)
      free_list_.push_back(b);
  }
  // Makes table entry i of q private (copy-on-write); false when a copy is needed and the pool
  // is empty (nothing changes then).
  [[nodiscard]] bool own_block(sequence& q, std::size_t i) noexcept {
    const block_id old = q.table[i];
    if (refcounts_[static_cast<std::size_t>(old)] == 1)
      return true;
    if (free_list_.empty())
      return false;
    const block_id fresh = take_block();
    const T* from = storage_.data() + static_cast<index_t>(old) * block_elems_;
    std::copy(
        from, from + block_elems_, storage_.data() + static_cast<index_t>(fresh) * block_elems_);
    --refcounts_[static_cast<std::size_t>(old)]; // was > 1: stays held by another table
    q.table[i] = fresh;
    return true;
  }
  // Copies position src to dst in every plane; the block of dst must be private.
  void copy_unchecked(const sequence& q, index_t src, index_t dst) noexcept {
    const block_id bs = q.table[static_cast<std::size_t>(src / block_size_)];
    const block_id bd = q.table[static_cast<std::size_t>(dst / block_size_)];
    for (index_t p = 0; p < num_planes(); ++p) {
      const T* from = storage_.data() + element(bs, src, p);
      T* to = storage_.data() + element(bd, dst, p);
      const index_t stride = feature_stride(p);
      for (index_t f = 0; f < desc(p).width; ++f)
        to[f * stride] = from[f * stride];
    }
  }

  std::vector<T> storage_;
  std::vector<index_t> plane_offsets_; // plane p starts at plane_offsets_[p] inside a block
  std::vector<plane_desc> descs_;
  std::vector<std::int32_t> refcounts_;
  std::vector<block_id> free_list_;
  std::vector<sequence> seqs_;
  std::vector<sequence_id> free_seqs_;
  index_t num_blocks_ = 0;
  index_t block_size_ = 0;
  index_t block_elems_ = 0;
  index_t live_ = 0;
};

/// @brief One sequence of a paged_cache seen as a single-sequence kv_cache / tree_kv_cache (the
/// decoding loop's view). It holds a pointer to the cache, which must outlive it.
///
/// @tparam T element type of the cache
template <class T>
class paged_sequence {
public:
  /// @brief Each sequence can drop any suffix.
  static constexpr rollback_class rollback_kind = rollback_class::partial;

  /// @brief Binds sequence `s` of `cache` (s should be live).
  /// @param[in] cache the pool
  /// @param[in] s the sequence id
  paged_sequence(paged_cache<T>& cache, sequence_id s) noexcept
      : cache_(&cache)
      , seq_(s) {}

  /// @brief What this sequence can undo: any suffix. O(1).
  /// @return `{rollback_class::partial, index_t max}`
  [[nodiscard]] static constexpr rollback_capability rollback_limit() noexcept {
    return {rollback_class::partial, std::numeric_limits<index_t>::max()};
  }
  /// @brief The bound cache. O(1).
  /// @return the cache
  [[nodiscard]] paged_cache<T>& cache() const noexcept {
    return *cache_;
  }
  /// @brief The bound sequence id. O(1).
  /// @return the id
  [[nodiscard]] sequence_id id() const noexcept {
    return seq_;
  }
  /// @brief Committed positions. O(1).
  /// @return paged_cache::length of the sequence
  [[nodiscard]] index_t length() const noexcept {
    return cache_->length(seq_);
  }
  /// @brief Most positions the sequence could reach now: its reserved positions plus every free
  /// block of the pool (other sequences draw on the same pool, and copy-on-write may need
  /// blocks too, so this is an upper bound that can shrink). O(1).
  /// @return `reserved + free_blocks() x block_size()`
  [[nodiscard]] index_t capacity() const noexcept {
    return cache_->reserved(seq_) + cache_->free_blocks() * cache_->block_size();
  }
  /// @brief paged_cache::reserve for this sequence.
  /// @param[in] positions positions to cover
  /// @return its status
  /// @par Complexity
  /// O(new blocks).
  [[nodiscard]] status reserve(index_t positions) {
    return cache_->reserve(seq_, positions);
  }
  /// @brief paged_cache::extend for this sequence.
  /// @param[in] new_length the new committed length
  /// @return its status
  /// @par Complexity
  /// O(new blocks).
  [[nodiscard]] status extend(index_t new_length) {
    return cache_->extend(seq_, new_length);
  }
  /// @brief paged_cache::rollback for this sequence.
  /// @param[in] new_length positions to keep
  /// @return its status
  /// @par Complexity
  /// O(dropped blocks).
  [[nodiscard]] status rollback(index_t new_length) {
    return cache_->rollback(seq_, new_length);
  }
  /// @brief paged_cache::keep_path for this sequence.
  /// @param[in] base position of the root
  /// @param[in] nodes the accepted root path, root first
  /// @return its status
  /// @par Complexity
  /// As paged_cache::keep_path.
  [[nodiscard]] status keep_path(index_t base, std::span<const std::int32_t> nodes) noexcept {
    return cache_->keep_path(seq_, base, nodes);
  }
  /// @brief paged_cache::make_writable for this sequence.
  /// @param[in] begin first position
  /// @param[in] end one past the last position
  /// @return its status
  /// @par Complexity
  /// As paged_cache::make_writable.
  [[nodiscard]] status make_writable(index_t begin, index_t end) noexcept {
    return cache_->make_writable(seq_, begin, end);
  }
  /// @brief paged_cache::slot for this sequence (read only). O(1).
  /// @param[in] pos a position
  /// @param[in] p a plane
  /// @return the pointer or nullptr
  [[nodiscard]] const T* slot(index_t pos, index_t p) const noexcept {
    return static_cast<const paged_cache<T>*>(cache_)->slot(seq_, pos, p);
  }
  /// @brief paged_cache::writable for this sequence (copy-on-write).
  /// @param[in] pos a position
  /// @param[in] p a plane
  /// @return the pointer or nullptr
  /// @par Complexity
  /// O(1), or one block copy.
  [[nodiscard]] T* writable(index_t pos, index_t p) noexcept {
    return cache_->writable(seq_, pos, p);
  }

private:
  paged_cache<T>* cache_;
  sequence_id seq_;
};

static_assert(tree_kv_cache<paged_sequence<float>>);

} // namespace kv

SPECDEC_NAMESPACE_END
