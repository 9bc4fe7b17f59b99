// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The KV-cache concepts (`kv_cache`, `tree_kv_cache`), what a cache can undo
/// (rollback_class, rollback_capability, capability_of) and their per-clause diagnostics.
///
/// Semantic promises the compiler cannot check:
///  - `rollback(n)` keeps the positions `[0, n)` exactly as they were and drops the rest; it
///    fails with a status (and changes nothing) when the cache cannot undo that far.
///    `rollback(0)` (a full reset) is always allowed.
///  - `keep_path(base, nodes)` compacts an accepted root path of a token tree written at slots
///    `base + j` (node j): slot `base + nodes[d]` moves to `base + d`, then the length becomes
///    `base + nodes.size()`. `nodes` is root first, so `nodes[0] == 0`, and strictly increasing
///    (parents precede children, see tree/token_tree.hpp).

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>

#include <concepts>
#include <cstdint>
#include <limits>
#include <span>

SPECDEC_NAMESPACE_BEGIN

/// @brief KV caches and recurrent-state checkpoints the decoding loop rolls back after a
/// rejection: the concepts, a contiguous cache, a paged cache and recurrent checkpoints.
namespace kv {

/// @brief Identifies one sequence of a multi-sequence cache (paged_cache, recurrent_checkpoints).
using sequence_id = std::int32_t;

/// @brief What a cache can undo (DESIGN §3): recurrent-state caches cannot drop arbitrary suffixes.
enum class rollback_class {
  partial,  ///< any suffix can be dropped: rollback(n) for every n <= length()
  bounded,  ///< at most a fixed number of positions can be dropped (checkpointed recurrent state)
  full_only ///< only a full reset is possible
};

/// @brief What a cache can undo: its class and, for rollback_class::bounded, how far.
struct rollback_capability {
  rollback_class kind = rollback_class::partial; ///< the rollback class
  /// Most positions one rollback can drop (besides a full reset to 0). Meaningful for
  /// rollback_class::bounded; capability_of() reports `index_t` max for partial caches (limited
  /// only by length()) and 0 for full_only ones.
  index_t bound = std::numeric_limits<index_t>::max();

  /// @brief Two capabilities are equal when kind and bound agree.
  /// @return true when both members are equal
  friend constexpr bool operator==(const rollback_capability&,
                                   const rollback_capability&) = default;
};

namespace detail {

/// The member clauses of kv_cache.
template <class C>
concept kv_cache_members = requires(C& c, const C& cc, index_t n) {
  { c.rollback(n) } -> std::same_as<status>;
  { cc.length() } -> std::convertible_to<index_t>;
  { cc.capacity() } -> std::convertible_to<index_t>;
  { C::rollback_kind } -> std::convertible_to<rollback_class>;
};

/// A cache that reports its own rollback_capability.
template <class C>
concept reports_rollback_limit = requires(const C& cc) {
  { cc.rollback_limit() } -> std::convertible_to<rollback_capability>;
};

/// True when C declares `rollback_kind == rollback_class::bounded` (false when it declares none).
template <class C>
consteval bool declares_bounded() {
  if constexpr (requires {
                  { C::rollback_kind } -> std::convertible_to<rollback_class>;
                })
    return static_cast<rollback_class>(C::rollback_kind) == rollback_class::bounded;
  else
    return false;
}

/// A cache that is not rollback_class::bounded, or that reports its bound.
template <class C>
concept bound_reported_if_bounded = !declares_bounded<C>() || reports_rollback_limit<C>;

} // namespace detail

/// @brief A KV cache the decoding loop can roll back after a rejection.
///
/// Requires `length()` (committed positions), `capacity()`, `status rollback(index_t new_length)`,
/// a static `rollback_kind` naming its rollback_class and, when that class is
/// rollback_class::bounded, `rollback_capability rollback_limit() const` reporting the bound.
template <class C>
concept kv_cache = detail::kv_cache_members<C> && detail::bound_reported_if_bounded<C>;

/// @brief A kv_cache that can also compact an accepted tree path in place (tree verification).
///
/// Requires `status keep_path(index_t base, std::span<const std::int32_t> nodes)`, which keeps
/// slot `base + nodes[d]` at `base + d` for every d and sets the length to
/// `base + nodes.size()` (see the file comment).
template <class C>
concept tree_kv_cache = kv_cache<C> && requires(C& c,
                                                index_t base,
                                                std::span<const std::int32_t> nodes) {
  { c.keep_path(base, nodes) } -> std::same_as<status>;
};

/// @brief The KV state of many sequences decoded together (continuous batching), keyed by the
///        engine's 64-bit request ids.
///
/// Checked: `status open(std::uint64_t seq)` (a new empty sequence), `status close(std::uint64_t
/// seq)` (drops it and frees what it held), `status rollback(std::uint64_t seq, index_t n)` (keeps
/// positions [0, n) exactly, drops the rest; n <= length), `status reserve(std::uint64_t seq,
/// index_t n)` (makes room for n positions in total, so scoring up to n never fails for lack of
/// memory), `index_t length(std::uint64_t seq) const` and `index_t capacity() const` (the most
/// positions one sequence may hold). Semantics: open fails with errc::invalid_argument for an id
/// already open and with errc::overflow when the pool has no room for another sequence; reserve
/// fails with errc::overflow when the pool cannot hold the positions now (the caller may preempt
/// another sequence and retry) or n exceeds capacity(); every call on an id that is not open
/// fails with errc::invalid_argument. A failed call changes nothing.
template <class C>
concept batch_kv_cache = requires(C& c, const C& cc, std::uint64_t seq, index_t n) {
  { c.open(seq) } -> std::same_as<status>;
  { c.close(seq) } -> std::same_as<status>;
  { c.rollback(seq, n) } -> std::same_as<status>;
  { c.reserve(seq, n) } -> std::same_as<status>;
  { cc.length(seq) } -> std::convertible_to<index_t>;
  { cc.capacity() } -> std::convertible_to<index_t>;
};

/// @brief What cache `c` can undo: its own rollback_limit() when it has one, else its
/// rollback_kind with bound `index_t` max (partial) or 0 (full_only).
/// @tparam C a kv_cache
/// @param[in] c the cache
/// @return its rollback capability
/// @par Complexity
/// O(1) (whatever `c.rollback_limit()` costs).
template <kv_cache C>
[[nodiscard]] constexpr rollback_capability capability_of(const C& c) noexcept {
  if constexpr (detail::reports_rollback_limit<C>) {
    return static_cast<rollback_capability>(c.rollback_limit());
  } else {
    const rollback_class kind = C::rollback_kind;
    return {kind, kind == rollback_class::partial ? std::numeric_limits<index_t>::max() : 0};
  }
}

} // namespace kv

namespace diag {

/// @brief Checks `kv::kv_cache` clause by clause.
/// @tparam C the type to check against kv::kv_cache
/// @return true when satisfied (else a static_assert fires).
template <class C>
consteval bool check_kv_cache() {
  static_assert(
      requires(C & c, index_t n) {
        { c.rollback(n) } -> std::same_as<status>;
      },
      "kv_cache: C needs '[[nodiscard]] status rollback(index_t new_length)'");
  static_assert(
      requires(const C& c) {
        { c.length() } -> std::convertible_to<index_t>;
      },
      "kv_cache: C needs 'index_t length() const'");
  static_assert(
      requires(const C& c) {
        { c.capacity() } -> std::convertible_to<index_t>;
      },
      "kv_cache: C needs 'index_t capacity() const'");
  static_assert(
      requires {
        { C::rollback_kind } -> std::convertible_to<kv::rollback_class>;
      },
      "kv_cache: C needs 'static constexpr kv::rollback_class rollback_kind'");
  static_assert(!kv::detail::declares_bounded<C>() || kv::detail::reports_rollback_limit<C>,
                "kv_cache: C has rollback_kind == rollback_class::bounded, so it needs "
                "'kv::rollback_capability rollback_limit() const' reporting the bound");
  return true;
}

/// @brief Checks `kv::tree_kv_cache` clause by clause (the kv_cache clauses first).
/// @tparam C the type to check against kv::tree_kv_cache
/// @return true when satisfied (else a static_assert fires).
template <class C>
consteval bool check_tree_kv_cache() {
  static_assert(check_kv_cache<C>(), "tree_kv_cache: C must be a kv_cache");
  static_assert(
      requires(C & c, index_t base, std::span<const std::int32_t> nodes) {
        { c.keep_path(base, nodes) } -> std::same_as<status>;
      },
      "tree_kv_cache: C needs '[[nodiscard]] status keep_path(index_t base, "
      "std::span<const std::int32_t> nodes)'");
  return true;
}

} // namespace diag

SPECDEC_NAMESPACE_END
