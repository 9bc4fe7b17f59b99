// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Recurrent-state checkpoints for SSM / RNN layers: one committed state plus k draft
/// checkpoints per sequence, committed by swapping a slot index (no copy), with bounded rollback.
///
/// A recurrent layer keeps one fixed-size state instead of a per-position KV, so it cannot drop
/// a suffix after the fact: the state after each speculative position must be saved while the
/// drafts are processed. Each sequence owns `1 + k` slots of `state_size` elements:
///  - slot 0 holds the committed state, the state after the first committed_length() positions;
///  - while processing the pending positions `committed_length() + i - 1` (i = 1..k) the engine
///    writes the state after position i into slot i (`slot(s, i)`) and extends the length;
///  - `commit(s, a)` (or `rollback(s, committed_length() + a)`) makes slot a the committed state
///    by swapping two entries of the sequence's slot map: O(1), nothing is copied.
///
/// The window k counts every position processed after the committed state. The decoding loop
/// (decode/speculative_decoder.hpp) scores the anchor and up to max_draft drafts in one call, so
/// it needs `k >= max_draft + 1`. Rolling back past the committed state is impossible
/// (errc::invalid_argument), except rollback(s, 0), a full reset to the initial (zero) state.
///
/// The kv_cache concept is per sequence: recurrent_sequence binds a cache and a sequence id and
/// models kv_cache with rollback_class::bounded.

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/kv/concepts.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace kv {

/// @brief Per-sequence recurrent states: a committed slot and a window of k draft checkpoints.
///
/// @tparam T element type of the state
///
/// Invariants, for every sequence s: `committed_length(s) <= length(s) <= committed_length(s) +
/// window()` and `length(s) <= max_length()`; the slot map of s is a permutation of its `1 + k`
/// physical slots. Storage is zero-initialised by allocate() and never reallocated afterwards,
/// so slot pointers stay valid until the next allocate() (a commit changes which physical slot a
/// slot index names, not the storage).
template <class T>
class recurrent_checkpoints {
public:
  /// @brief At most window() positions (those since the last commit) can be dropped.
  static constexpr rollback_class rollback_kind = rollback_class::bounded;

  /// @brief Allocates zeroed states for `num_sequences` sequences (ids 0 .. num_sequences - 1),
  /// each with `1 + window` slots of `state_size` elements; every length becomes 0.
  /// @return errc::invalid_argument for num_sequences <= 0, window < 0, state_size <= 0 or
  ///         max_length < 0; errc::overflow when the element count does not fit the index type or
  ///         num_sequences does not fit sequence_id. On error nothing changes.
  /// @par Complexity
  /// O(num_sequences x (window + 1) x state_size) (the zero fill).
  /// @param[in] num_sequences sequences, > 0
  /// @param[in] window draft checkpoints per sequence (k), >= 0
  /// @param[in] state_size elements per state, > 0
  /// @param[in] max_length most positions a sequence may reach (reported as capacity)
  [[nodiscard]] status allocate(index_t num_sequences,
                                index_t window,
                                index_t state_size,
                                index_t max_length = std::numeric_limits<index_t>::max()) {
    if (num_sequences <= 0 || window < 0 || state_size <= 0 || max_length < 0)
      return status{errc::invalid_argument};
    constexpr index_t max = std::numeric_limits<index_t>::max();
    if (num_sequences > std::numeric_limits<sequence_id>::max() || window > max - 1)
      return status{errc::overflow};
    const index_t slots = window + 1;
    if (slots > max / num_sequences || slots * num_sequences > max / state_size)
      return status{errc::overflow};
    storage_.assign(static_cast<std::size_t>(slots * num_sequences * state_size), T{});
    map_.resize(static_cast<std::size_t>(slots * num_sequences));
    for (std::size_t i = 0; i < map_.size(); ++i)
      map_[i] = static_cast<index_t>(i % static_cast<std::size_t>(slots));
    committed_.assign(static_cast<std::size_t>(num_sequences), 0);
    length_.assign(static_cast<std::size_t>(num_sequences), 0);
    window_ = window;
    state_size_ = state_size;
    max_length_ = max_length;
    return status{};
  }

  /// @brief Sequences. O(1).
  /// @return the sequence count
  [[nodiscard]] index_t num_sequences() const noexcept {
    return static_cast<index_t>(committed_.size());
  }
  /// @brief Draft checkpoints per sequence (k). O(1).
  /// @return the window
  [[nodiscard]] index_t window() const noexcept {
    return window_;
  }
  /// @brief Elements per state. O(1).
  /// @return the state size
  [[nodiscard]] index_t state_size() const noexcept {
    return state_size_;
  }
  /// @brief Most positions a sequence may reach. O(1).
  /// @return the maximum length
  [[nodiscard]] index_t max_length() const noexcept {
    return max_length_;
  }
  /// @brief What a sequence can undo: at most window() positions, those since the last commit.
  /// O(1).
  /// @return `{rollback_class::bounded, window()}`
  [[nodiscard]] rollback_capability rollback_limit() const noexcept {
    return {rollback_class::bounded, window_};
  }
  /// @brief True when `s` names a sequence. O(1).
  /// @param[in] s a sequence id
  /// @return `0 <= s < num_sequences()`
  [[nodiscard]] bool contains(sequence_id s) const noexcept {
    return s >= 0 && s < num_sequences();
  }
  /// @brief Positions processed by sequence `s`, committed and pending (0 for a bad id). O(1).
  /// @param[in] s a sequence id
  /// @return its length
  [[nodiscard]] index_t length(sequence_id s) const noexcept {
    return contains(s) ? length_[static_cast<std::size_t>(s)] : 0;
  }
  /// @brief Positions covered by the committed state (slot 0) of `s` (0 for a bad id). O(1).
  /// @param[in] s a sequence id
  /// @return its committed length
  [[nodiscard]] index_t committed_length(sequence_id s) const noexcept {
    return contains(s) ? committed_[static_cast<std::size_t>(s)] : 0;
  }
  /// @brief Pending positions of `s`: `length(s) - committed_length(s)`, at most window(). O(1).
  /// @param[in] s a sequence id
  /// @return the pending count
  [[nodiscard]] index_t pending(sequence_id s) const noexcept {
    return length(s) - committed_length(s);
  }

  /// @brief State slot `i` of sequence `s`: slot 0 is the committed state, slot i (1 .. window())
  /// the state after pending position i.
  /// @param[in] s a sequence id
  /// @param[in] i a slot index, `0 <= i <= window()`
  /// @return pointer to its `state_size()` elements, or nullptr when an argument is out of range
  /// @par Complexity
  /// O(1).
  [[nodiscard]] T* slot(sequence_id s, index_t i) noexcept {
    return contains(s) && i >= 0 && i <= window_ ? storage_.data() + offset(s, i) : nullptr;
  }
  /// @brief State slot `i` of sequence `s`, read only (see the other overload).
  /// @param[in] s a sequence id
  /// @param[in] i a slot index, `0 <= i <= window()`
  /// @return pointer to its `state_size()` elements, or nullptr when an argument is out of range
  /// @par Complexity
  /// O(1).
  [[nodiscard]] const T* slot(sequence_id s, index_t i) const noexcept {
    return contains(s) && i >= 0 && i <= window_ ? storage_.data() + offset(s, i) : nullptr;
  }

  /// @brief Records that the engine has written the states of the pending positions up to
  /// `new_length` (slot `new_length - committed_length(s)` holds the last).
  /// @return errc::invalid_argument for a bad id or new_length < length(s); errc::overflow when
  ///         new_length exceeds `committed_length(s) + window()` or max_length(). On error nothing
  ///         changes.
  /// @par Complexity
  /// O(1).
  /// @param[in] s a sequence id
  /// @param[in] new_length the new length
  [[nodiscard]] status extend(sequence_id s, index_t new_length) noexcept {
    if (!contains(s) || new_length < length(s))
      return status{errc::invalid_argument};
    if (new_length - committed_length(s) > window_ || new_length > max_length_)
      return status{errc::overflow};
    length_[static_cast<std::size_t>(s)] = new_length;
    return status{};
  }

  /// @brief Makes slot `accepted` the committed state of `s` by swapping two slot-map entries
  /// (no copy); committed_length and length become `committed_length(s) + accepted`. The other
  /// draft slots become scratch.
  /// @return errc::invalid_argument for a bad id or accepted outside `[0, pending(s)]`; nothing
  ///         changes then.
  /// @par Complexity
  /// O(1).
  /// @param[in] s a sequence id
  /// @param[in] accepted pending positions to keep
  [[nodiscard]] status commit(sequence_id s, index_t accepted) noexcept {
    if (!contains(s) || accepted < 0 || accepted > pending(s))
      return status{errc::invalid_argument};
    const std::size_t q = static_cast<std::size_t>(s);
    const std::size_t row = q * static_cast<std::size_t>(window_ + 1);
    std::swap(map_[row], map_[row + static_cast<std::size_t>(accepted)]);
    committed_[q] += accepted;
    length_[q] = committed_[q];
    return status{};
  }

  /// @brief Keeps positions `[0, new_length)` of `s`: for new_length in
  /// `[committed_length(s), length(s)]` this is `commit(s, new_length - committed_length(s))`;
  /// new_length == 0 resets the sequence (the committed state is zeroed, as after allocate()).
  /// @return errc::invalid_argument for a bad id, new_length > length(s), or 0 < new_length <
  ///         committed_length(s) (past the last commit: those states are gone). Nothing changes
  ///         then.
  /// @par Complexity
  /// O(1); O(state_size) for a reset.
  /// @param[in] s a sequence id
  /// @param[in] new_length positions to keep
  [[nodiscard]] status rollback(sequence_id s, index_t new_length) noexcept {
    if (!contains(s) || new_length < 0 || new_length > length(s))
      return status{errc::invalid_argument};
    if (new_length == 0) {
      reset(s);
      return status{};
    }
    if (new_length < committed_length(s))
      return status{errc::invalid_argument};
    return commit(s, new_length - committed_length(s));
  }

  /// @brief Records that the engine has written the state after position `new_length - 1`
  /// directly into slot 0 (a prefill, or a step without checkpoints); pending slots are dropped
  /// and committed_length and length become new_length.
  /// @return errc::invalid_argument for a bad id or new_length < committed_length(s);
  ///         errc::overflow when new_length > max_length(). Nothing changes then.
  /// @par Complexity
  /// O(1).
  /// @param[in] s a sequence id
  /// @param[in] new_length the new committed length
  [[nodiscard]] status advance_committed(sequence_id s, index_t new_length) noexcept {
    if (!contains(s) || new_length < committed_length(s))
      return status{errc::invalid_argument};
    if (new_length > max_length_)
      return status{errc::overflow};
    committed_[static_cast<std::size_t>(s)] = new_length;
    length_[static_cast<std::size_t>(s)] = new_length;
    return status{};
  }

  /// @brief Resets sequence `s` (a valid id) to length 0 and a zero committed state.
  /// @param[in] s a sequence id, `contains(s)`
  /// @par Complexity
  /// O(state_size).
  void reset(sequence_id s) noexcept {
    T* p = slot(s, 0);
    std::fill(p, p + state_size_, T{});
    committed_[static_cast<std::size_t>(s)] = 0;
    length_[static_cast<std::size_t>(s)] = 0;
  }

private:
  [[nodiscard]] index_t offset(sequence_id s, index_t i) const noexcept {
    const index_t row = static_cast<index_t>(s) * (window_ + 1);
    return (row + map_[static_cast<std::size_t>(row + i)]) * state_size_;
  }

  std::vector<T> storage_;         // [num_sequences][window + 1][state_size] (physical slots)
  std::vector<index_t> map_;       // [num_sequences][window + 1]: slot index -> physical slot
  std::vector<index_t> committed_; // [num_sequences]
  std::vector<index_t> length_;    // [num_sequences]
  index_t window_ = 0;
  index_t state_size_ = 0;
  index_t max_length_ = 0;
};

/// @brief One sequence of a recurrent_checkpoints seen as a single-sequence kv_cache with
/// rollback_class::bounded (the decoding loop's view). It holds a pointer to the checkpoints,
/// which must outlive it.
///
/// @tparam T element type of the state
template <class T>
class recurrent_sequence {
public:
  /// @brief At most window() positions (those since the last commit) can be dropped.
  static constexpr rollback_class rollback_kind = rollback_class::bounded;

  /// @brief Binds sequence `s` of `states`.
  /// @param[in] states the checkpoints
  /// @param[in] s a sequence id, `states.contains(s)`
  recurrent_sequence(recurrent_checkpoints<T>& states, sequence_id s) noexcept
      : states_(&states)
      , seq_(s) {}

  /// @brief The bound checkpoints. O(1).
  /// @return the checkpoints
  [[nodiscard]] recurrent_checkpoints<T>& states() const noexcept {
    return *states_;
  }
  /// @brief The bound sequence id. O(1).
  /// @return the id
  [[nodiscard]] sequence_id id() const noexcept {
    return seq_;
  }
  /// @brief What this sequence can undo. O(1).
  /// @return `{rollback_class::bounded, window()}`
  [[nodiscard]] rollback_capability rollback_limit() const noexcept {
    return states_->rollback_limit();
  }
  /// @brief Positions processed, committed and pending. O(1).
  /// @return the length
  [[nodiscard]] index_t length() const noexcept {
    return states_->length(seq_);
  }
  /// @brief Most positions the sequence may reach. O(1).
  /// @return recurrent_checkpoints::max_length()
  [[nodiscard]] index_t capacity() const noexcept {
    return states_->max_length();
  }
  /// @brief recurrent_checkpoints::extend for this sequence.
  /// @param[in] new_length the new length
  /// @return its status
  /// @par Complexity
  /// O(1).
  [[nodiscard]] status extend(index_t new_length) noexcept {
    return states_->extend(seq_, new_length);
  }
  /// @brief recurrent_checkpoints::commit for this sequence.
  /// @param[in] accepted pending positions to keep
  /// @return its status
  /// @par Complexity
  /// O(1).
  [[nodiscard]] status commit(index_t accepted) noexcept {
    return states_->commit(seq_, accepted);
  }
  /// @brief recurrent_checkpoints::rollback for this sequence.
  /// @param[in] new_length positions to keep
  /// @return its status
  /// @par Complexity
  /// O(1); O(state_size) for a reset.
  [[nodiscard]] status rollback(index_t new_length) noexcept {
    return states_->rollback(seq_, new_length);
  }
  /// @brief recurrent_checkpoints::slot for this sequence. O(1).
  /// @param[in] i a slot index
  /// @return the pointer or nullptr
  [[nodiscard]] T* slot(index_t i) const noexcept {
    return states_->slot(seq_, i);
  }

private:
  recurrent_checkpoints<T>* states_;
  sequence_id seq_;
};

static_assert(kv_cache<recurrent_sequence<float>>);

} // namespace kv

SPECDEC_NAMESPACE_END
