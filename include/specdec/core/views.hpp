// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Non-owning, trivially copyable views shared by host and device code.
///
/// `std::span` is not used: its members are not `__host__ __device__` (see STYLE, toolchain
/// facts), so a device kernel could not call them without relaxed-constexpr flags.

#include <specdec/config.hpp>

#include <specdec/core/types.hpp>

SPECDEC_NAMESPACE_BEGIN

/// @brief A contiguous run of `size` elements. Trivially copyable; never owns its memory.
/// @tparam T element type (const-qualify it for read-only views)
template <class T>
struct row_view {
  T* data = nullptr; ///< first element, or null when size is 0
  index_t size = 0;  ///< number of elements

  /// @brief Element `i`.
  /// @param[in] i the index
  /// @return a reference to `data[i]`
  /// @pre 0 <= i < size.
  /// @hd
  SPECDEC_HD constexpr T& operator[](index_t i) const noexcept {
    return data[i];
  }
  /// @brief True when the view has no elements.
  /// @return `size == 0`
  /// @hd
  SPECDEC_HD constexpr bool empty() const noexcept {
    return size == 0;
  }
  /// @brief Pointer to the first element (range-for support).
  /// @return `data`
  /// @hd
  SPECDEC_HD constexpr T* begin() const noexcept {
    return data;
  }
  /// @brief Pointer one past the last element.
  /// @return `data + size`
  /// @hd
  SPECDEC_HD constexpr T* end() const noexcept {
    return data + size;
  }
};

/// @brief A row-major matrix view: `rows` rows of `cols` elements, row r starting at
/// `data + r * row_stride`. @shape{[rows, cols]}
/// @tparam T element type (const-qualify it for read-only views)
template <class T>
struct matrix_view {
  T* data = nullptr;      ///< element (0, 0)
  index_t rows = 0;       ///< number of rows
  index_t cols = 0;       ///< elements per row (the vocabulary size for distribution rows)
  index_t row_stride = 0; ///< elements between the starts of consecutive rows (>= cols)

  /// @brief Row `r` as a contiguous view.
  /// @param[in] r the row index
  /// @return the `cols` elements starting at `data + r * row_stride`
  /// @pre 0 <= r < rows.
  /// @hd
  SPECDEC_HD constexpr row_view<T> row(index_t r) const noexcept {
    return row_view<T>{data + r * row_stride, cols};
  }
  /// @brief Element (r, c).
  /// @param[in] r the row index
  /// @param[in] c the column index
  /// @return a reference to `data[r * row_stride + c]`
  /// @pre in range: 0 <= r < rows and 0 <= c < cols.
  /// @hd
  SPECDEC_HD constexpr T& operator()(index_t r, index_t c) const noexcept {
    return data[r * row_stride + c];
  }
};

/// @brief Makes a dense matrix view (row_stride = cols) over `rows * cols` elements.
/// @tparam T element type
/// @param[in] data the first element
/// @param[in] rows number of rows
/// @param[in] cols elements per row, and the row stride
/// @return `matrix_view<T>{data, rows, cols, cols}`
/// @hd
template <class T>
SPECDEC_HD constexpr matrix_view<T> make_matrix_view(T* data, index_t rows, index_t cols) noexcept {
  return matrix_view<T>{data, rows, cols, cols};
}

SPECDEC_NAMESPACE_END
