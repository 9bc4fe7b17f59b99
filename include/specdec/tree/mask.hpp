// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Attention masks for a committed prefix followed by a token tree: per-word and
/// per-entry functions shared by host and device, and host builders of the dense (one byte per
/// entry) and packed (one bit per entry) forms.
///
/// Row j of a mask is the query of tree node j; it sees every prefix position and, among the
/// tree columns, exactly the nodes on its own root path (its ancestors and itself). Columns are
/// laid out as `[prefix_len prefix positions, then the N tree nodes in index order]`; the
/// tree-only forms drop the prefix columns.
///
/// Packed rows hold 32 columns per `std::uint32_t` word, little-endian within a word: column c
/// is bit `c % 32` of word `c / 32` (the TensorRT-LLM / FlashInfer packed-mask layout). Bits
/// past the last column of a row's final word are zero.
///
/// The shared functions (mask_word, mask_word_with_prefix, visible) walk one row's ancestors,
/// O(depth), so a kernel can compute every word independently. On a malformed tree they never
/// read outside `parents[0, N)` and always terminate (a walk stops at the first parent link
/// that does not point to a lower index); the result is then unspecified.

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/tree/token_tree.hpp>

#include <cstdint>
#include <limits>
#include <span>

SPECDEC_NAMESPACE_BEGIN

namespace tree {

/// @brief Number of 32-bit words of a packed tree-only row: ceil(num_nodes / 32).
/// @param[in] num_nodes N, the columns of the row (negative counts as 0)
/// @return the words per row, 0 when num_nodes <= 0
/// @par Complexity
/// O(1). @hd
SPECDEC_HD constexpr std::int32_t mask_words(std::int32_t num_nodes) noexcept {
  return num_nodes <= 0 ? 0 : num_nodes / 32 + (num_nodes % 32 != 0 ? 1 : 0);
}

/// @brief Number of 32-bit words of a packed row with a prefix: ceil((prefix_len + N) / 32).
/// @param[in] prefix_len committed positions before the tree, >= 0
/// @param[in] num_nodes N, the tree nodes, >= 0
/// @return the words per row (0 for negative arguments or when prefix_len + N overflows)
/// @par Complexity
/// O(1). @hd
SPECDEC_HD constexpr index_t prefix_mask_words(index_t prefix_len,
                                               std::int32_t num_nodes) noexcept {
  if (prefix_len < 0 || num_nodes < 0 || prefix_len > INT64_MAX - num_nodes)
    return 0; // prefix_len + N would overflow
  const index_t cols = prefix_len + num_nodes;
  return cols / 32 + (cols % 32 != 0 ? 1 : 0);
}

/// @brief Word `word` of packed tree-only row `row`: bit b is set iff node `32 * word + b` is
/// an ancestor of `row` or `row` itself.
/// @param[in] t a valid tree (see the file comment for malformed ones)
/// @param[in] row the query node, 0 <= row < N (else the word is 0)
/// @param[in] word the word, 0 <= word < mask_words(N) (else the word is 0)
/// @return the 32 mask bits, little-endian
/// @par Complexity
/// O(depth(row)): one step per ancestor with an index >= 32 * word. @hd
SPECDEC_HD constexpr std::uint32_t
mask_word(const tree_view& t, std::int32_t row, std::int32_t word) noexcept {
  if (row < 0 || row >= t.num_nodes || word < 0 || word >= mask_words(t.num_nodes))
    return 0u;
  const std::int32_t lo = word * 32;
  std::uint32_t bits = 0u;
  // Ancestors have decreasing indices: stop once below the word (the root's -1 ends it too).
  for (std::int32_t k = row; k >= lo;) {
    if (k - lo < 32)
      bits |= 1u << (k - lo);
    const std::int32_t p = t.parents[k];
    if (p >= k) // malformed link: stop rather than loop
      break;
    k = p;
  }
  return bits;
}

/// @brief Word `word` of packed row `row` with `prefix_len` prefix columns before the tree:
/// prefix columns are always set, tree column `prefix_len + k` is set iff node k is an
/// ancestor of `row` or `row` itself.
/// @param[in] t a valid tree
/// @param[in] prefix_len committed positions before the tree, >= 0 (else the word is 0)
/// @param[in] row the query node, 0 <= row < N (else the word is 0)
/// @param[in] word the word, 0 <= word < prefix_mask_words(prefix_len, N) (else the word is 0)
/// @return the 32 mask bits, little-endian
/// @par Complexity
/// O(depth(row)). @hd
SPECDEC_HD constexpr std::uint32_t mask_word_with_prefix(const tree_view& t,
                                                         index_t prefix_len,
                                                         std::int32_t row,
                                                         index_t word) noexcept {
  if (prefix_len < 0 || row < 0 || row >= t.num_nodes || word < 0
      || word >= prefix_mask_words(prefix_len, t.num_nodes))
    return 0u;
  const index_t lo = word * 32;
  std::uint32_t bits = 0u;
  if (lo < prefix_len) {
    const index_t n = prefix_len - lo; // prefix columns in this word
    bits = n >= 32 ? 0xffffffffu : (1u << n) - 1u;
    if (n >= 32)
      return bits;
  }
  for (std::int32_t k = row; k >= 0 && prefix_len + k >= lo;) {
    const index_t c = prefix_len + k - lo;
    if (c < 32)
      bits |= 1u << c;
    const std::int32_t p = t.parents[k];
    if (p >= k)
      break;
    k = p;
  }
  return bits;
}

/// @brief Entry (row, col) of the tree-only mask: true iff node `col` is an ancestor of node
/// `row` or `row` itself.
/// @param[in] t a valid tree
/// @param[in] row the query node, 0 <= row < N (else false)
/// @param[in] col the key node, 0 <= col < N (else false)
/// @return whether `row` attends to `col`
/// @par Complexity
/// O(depth(row)). @hd
SPECDEC_HD constexpr bool visible(const tree_view& t, std::int32_t row, std::int32_t col) noexcept {
  if (row < 0 || row >= t.num_nodes || col < 0 || col >= t.num_nodes)
    return false;
  for (std::int32_t k = row; k >= col;) {
    if (k == col)
      return true;
    const std::int32_t p = t.parents[k];
    if (p >= k)
      break;
    k = p;
  }
  return false;
}

/// @brief Entry (row, col) of the mask with `prefix_len` prefix columns: every prefix column is
/// visible; column `prefix_len + k` is visible iff visible(t, row, k).
/// @param[in] t a valid tree
/// @param[in] prefix_len committed positions before the tree, >= 0 (else false)
/// @param[in] row the query node, 0 <= row < N (else false)
/// @param[in] col the column, 0 <= col < prefix_len + N (else false)
/// @return whether `row` attends to column `col`
/// @par Complexity
/// O(depth(row)). @hd
SPECDEC_HD constexpr bool visible_with_prefix(const tree_view& t,
                                              index_t prefix_len,
                                              std::int32_t row,
                                              index_t col) noexcept {
  if (prefix_len < 0 || row < 0 || row >= t.num_nodes || col < 0
      || col - prefix_len >= t.num_nodes) // col - prefix_len cannot overflow: both >= 0
    return false;
  if (col < prefix_len)
    return true;
  return visible(t, row, static_cast<std::int32_t>(col - prefix_len));
}

namespace detail {

// Shared argument checks of the host builders: tree, prefix length, size (rows x row_elems).
// Order: malformed_tree, invalid_argument (prefix_len < 0), overflow, shape_mismatch.
inline status check_mask_args(const tree_view& t,
                              index_t prefix_len,
                              index_t row_elems,
                              std::size_t out_size) noexcept {
  if (!validate(t).ok())
    return status{errc::malformed_tree};
  if (prefix_len < 0)
    return status{errc::invalid_argument};
  if (row_elems < 0 || row_elems > std::numeric_limits<index_t>::max() / t.num_nodes)
    return status{errc::overflow};
  const index_t need = row_elems * t.num_nodes;
  if (static_cast<std::uint64_t>(need) > static_cast<std::uint64_t>(out_size))
    return status{errc::shape_mismatch};
  return status{};
}

// Columns of a prefixed row, or -1 when prefix_len + N overflows.
inline index_t prefixed_columns(index_t prefix_len, std::int32_t n) noexcept {
  if (prefix_len > std::numeric_limits<index_t>::max() - n)
    return -1;
  return prefix_len + n;
}

} // namespace detail

/// @brief Writes the dense mask of prefix + tree: row-major `[N, prefix_len + N]`, 1 where the
/// row's node attends to the column (every prefix column; among the tree columns, its
/// ancestors and itself), else 0.
/// @param[in] t the tree (validated with tree::validate)
/// @param[in] prefix_len committed positions before the tree, >= 0
/// @param[out] out receives `N * (prefix_len + N)` bytes; @shape{[N, prefix_len + N]};
///   elements past them are left untouched
/// @return errc::malformed_tree when validate(t) fails; errc::invalid_argument when
///   prefix_len < 0; errc::overflow when the size does not fit index_t; errc::shape_mismatch
///   when `out` is too small. Nothing is written on error.
/// @par Complexity
/// O(N * (prefix_len + N)): each row copies its parent's tree columns.
[[nodiscard]] inline status
build_dense_mask(const tree_view& t, index_t prefix_len, std::span<std::uint8_t> out) noexcept {
  const index_t cols = detail::prefixed_columns(prefix_len, t.num_nodes > 0 ? t.num_nodes : 0);
  if (const status s = detail::check_mask_args(t, prefix_len, cols, out.size()); !s.ok())
    return s;
  const index_t n = t.num_nodes;
  for (index_t j = 0; j < n; ++j) {
    std::uint8_t* row = out.data() + j * cols;
    for (index_t c = 0; c < prefix_len; ++c)
      row[c] = 1;
    std::uint8_t* tree_part = row + prefix_len;
    if (j == 0) {
      for (index_t c = 0; c < n; ++c)
        tree_part[c] = 0;
    } else { // a node sees what its parent sees, plus itself
      const std::uint8_t* parent_part =
          out.data() + static_cast<index_t>(t.parents[j]) * cols + prefix_len;
      for (index_t c = 0; c < n; ++c)
        tree_part[c] = parent_part[c];
    }
    tree_part[j] = 1;
  }
  return status{};
}

/// @brief Writes the dense tree-only mask: row-major `[N, N]`, 1 iff the column's node is an
/// ancestor of the row's node or the node itself (build_dense_mask with prefix_len = 0).
/// @param[in] t the tree (validated with tree::validate)
/// @param[out] out receives `N * N` bytes; @shape{[N, N]}; elements past them are untouched
/// @return errc::malformed_tree when validate(t) fails; errc::shape_mismatch when `out` is too
///   small. Nothing is written on error.
/// @par Complexity
/// O(N^2).
[[nodiscard]] inline status build_tree_mask(const tree_view& t,
                                            std::span<std::uint8_t> out) noexcept {
  return build_dense_mask(t, 0, out);
}

/// @brief Writes the packed mask of prefix + tree: N rows of
/// `W = prefix_mask_words(prefix_len, N)` words, column c of a row in bit `c % 32` of word
/// `c / 32`; prefix columns are set, tree column `prefix_len + k` is set iff node k is an
/// ancestor of the row's node or the node itself; bits past the last column are 0.
/// @param[in] t the tree (validated with tree::validate)
/// @param[in] prefix_len committed positions before the tree, >= 0
/// @param[out] out receives `N * W` words; @shape{[N, W]}; elements past them are untouched
/// @return errc::malformed_tree when validate(t) fails; errc::invalid_argument when
///   prefix_len < 0; errc::overflow when the size does not fit index_t; errc::shape_mismatch
///   when `out` is too small. Nothing is written on error.
/// @par Complexity
/// O(N * W): each row copies its parent's row and sets one bit.
[[nodiscard]] inline status build_packed_mask_with_prefix(const tree_view& t,
                                                          index_t prefix_len,
                                                          std::span<std::uint32_t> out) noexcept {
  const index_t cols = detail::prefixed_columns(prefix_len, t.num_nodes > 0 ? t.num_nodes : 0);
  const index_t words = cols < 0 ? -1 : cols / 32 + (cols % 32 != 0 ? 1 : 0);
  if (const status s = detail::check_mask_args(t, prefix_len, words, out.size()); !s.ok())
    return s;
  const index_t n = t.num_nodes;
  for (index_t j = 0; j < n; ++j) {
    std::uint32_t* row = out.data() + j * words;
    if (j == 0) {
      const index_t full = prefix_len / 32;
      for (index_t w = 0; w < words; ++w)
        row[w] = w < full ? 0xffffffffu : 0u;
      if (prefix_len % 32 != 0)
        row[full] = (1u << (prefix_len % 32)) - 1u;
    } else {
      const std::uint32_t* parent_row = out.data() + static_cast<index_t>(t.parents[j]) * words;
      for (index_t w = 0; w < words; ++w)
        row[w] = parent_row[w];
    }
    const index_t c = prefix_len + j;
    row[c / 32] |= 1u << (c % 32);
  }
  return status{};
}

/// @brief Writes the packed tree-only mask: N rows of `mask_words(N)` words, bit b of word w of
/// row j set iff node `32 * w + b` is an ancestor of j or j itself (same bits as mask_word).
/// @param[in] t the tree (validated with tree::validate)
/// @param[out] out receives `N * mask_words(N)` words; @shape{[N, mask_words(N)]}; elements
///   past them are untouched
/// @return errc::malformed_tree when validate(t) fails; errc::shape_mismatch when `out` is too
///   small. Nothing is written on error.
/// @par Complexity
/// O(N * mask_words(N)).
[[nodiscard]] inline status build_packed_mask(const tree_view& t,
                                              std::span<std::uint32_t> out) noexcept {
  return build_packed_mask_with_prefix(t, 0, out);
}

/// @brief Writes the absolute position of every node: `base + depth(j)` (the RoPE positions of
/// the tree tokens, the root at `base`).
/// @param[in] t the tree (validated with tree::validate)
/// @param[in] base the root's position, >= 0
/// @param[out] out receives N positions; @shape{[N]}; elements past them are untouched
/// @return errc::malformed_tree when validate(t) fails; errc::invalid_argument when base < 0;
///   errc::overflow when `base + N - 1` does not fit index_t; errc::shape_mismatch when `out`
///   has fewer than N elements. Nothing is written on error.
/// @par Complexity
/// O(N) after validation (parents precede children, so each depth is its parent's plus one).
[[nodiscard]] inline status
positions(const tree_view& t, index_t base, std::span<index_t> out) noexcept {
  if (!validate(t).ok())
    return status{errc::malformed_tree};
  if (base < 0)
    return status{errc::invalid_argument};
  if (base > std::numeric_limits<index_t>::max() - t.num_nodes)
    return status{errc::overflow};
  if (out.size() < static_cast<std::size_t>(t.num_nodes))
    return status{errc::shape_mismatch};
  out[0] = base;
  for (std::int32_t j = 1; j < t.num_nodes; ++j)
    out[static_cast<std::size_t>(j)] = out[static_cast<std::size_t>(t.parents[j])] + 1;
  return status{};
}

} // namespace tree

SPECDEC_NAMESPACE_END
