// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Error codes, the host-side status object and the per-row status flags of batch calls.

#include <specdec/config.hpp>

#include <cstdint>

SPECDEC_NAMESPACE_BEGIN

/// Error codes returned by host algorithms and launchers. `errc::ok` is zero.
enum class errc : std::int32_t {
  ok = 0,                 ///< success
  invalid_argument,       ///< a null pointer, negative size or similar malformed argument
  shape_mismatch,         ///< offsets, row counts or strides disagree with each other
  vocab_mismatch,         ///< draft and target rows have different vocabulary sizes
  token_out_of_range,     ///< a token id is negative or not below the vocabulary size
  invalid_value,          ///< NaN, +Inf in logits, or an infinite or negative probability
  zero_mass_row,          ///< a row has no probability mass (all zero, or all -inf logits)
  zero_draft_probability, ///< the draft distribution gives probability 0 to its own drafted token
  invalid_temperature,    ///< temperature is negative or NaN
  invalid_top_k,          ///< top-k is negative
  invalid_top_p,          ///< top-p is outside (0, 1]
  invalid_min_p,          ///< min-p is outside [0, 1]
  overflow,               ///< a size or position does not fit the index types
  unsupported,            ///< a valid request this build or backend cannot serve
  cuda_error,             ///< a CUDA runtime call failed; see status::cuda_error
  io_error,               ///< a file could not be opened or read
  corrupt_data,           ///< a file or buffer does not hold what its header promises
  malformed_tree          ///< a token tree has a bad root, an out-of-range or forward parent, a
                          ///< cycle, too many nodes or a depth over the limit
};

/// @brief A human-readable message for an error code (a static string, never null).
/// @param[in] code the error code
/// @return the message; "unknown error" for a value that names no enumerator
/// @par Complexity
/// Constant.
constexpr const char* message(errc code) noexcept {
  switch (code) {
  case errc::ok:
    return "ok";
  case errc::invalid_argument:
    return "invalid argument";
  case errc::shape_mismatch:
    return "shape mismatch between offsets, rows or strides";
  case errc::vocab_mismatch:
    return "draft and target vocabulary sizes differ";
  case errc::token_out_of_range:
    return "token id outside [0, vocab)";
  case errc::invalid_value:
    return "NaN, +Inf logit, or infinite or negative probability in a row";
  case errc::zero_mass_row:
    return "distribution row has no probability mass";
  case errc::zero_draft_probability:
    return "draft gives probability 0 to its own token";
  case errc::invalid_temperature:
    return "temperature must be >= 0";
  case errc::invalid_top_k:
    return "top-k must be >= 0";
  case errc::invalid_top_p:
    return "top-p must be in (0, 1]";
  case errc::invalid_min_p:
    return "min-p must be in [0, 1]";
  case errc::overflow:
    return "size or position overflows the index type";
  case errc::unsupported:
    return "unsupported configuration";
  case errc::cuda_error:
    return "CUDA runtime error";
  case errc::io_error:
    return "I/O error";
  case errc::corrupt_data:
    return "corrupt or truncated data";
  case errc::malformed_tree:
    return "malformed token tree (root, parent order, cycle, size or depth)";
  }
  return "unknown error";
}

/// @brief The result of a host algorithm or launcher: an error code and, for CUDA calls, the raw
/// `cudaError_t` value (kept as an int so that core/ needs no CUDA header).
struct [[nodiscard]] status {
  errc code = errc::ok; ///< what went wrong, or errc::ok
  int cuda_error = 0;   ///< the cudaError_t of a failed CUDA call, else 0

  /// @brief True when the call succeeded.
  /// @return `code == errc::ok`
  /// @hd
  SPECDEC_HD constexpr bool ok() const noexcept {
    return code == errc::ok;
  }
  /// @brief True when the call succeeded.
  /// @return ok()
  /// @hd
  SPECDEC_HD constexpr explicit operator bool() const noexcept {
    return ok();
  }
  /// @brief The message of #code.
  /// @return `specdec::message(code)`, a static string, never null
  constexpr const char* message() const noexcept {
    return ::specdec::message(code);
  }
  /// @brief Two statuses are equal when code and CUDA error agree.
  /// @return true when both #code and #cuda_error are equal
  friend constexpr bool operator==(const status&, const status&) = default;
};

/// @brief Bit flags describing what happened to one request of a batch call. Zero means clean.
///
/// Device kernels write them instead of failing; host batch calls fill them as well, so the
/// CPU reference and the GPU report the same thing.
struct row_status {
  std::uint32_t bits = 0; ///< OR of the flag constants below

  static constexpr std::uint32_t target_invalid = 1u << 0;   ///< NaN/+Inf/negative in a target row
  static constexpr std::uint32_t target_zero_mass = 1u << 1; ///< a target row has no mass
  static constexpr std::uint32_t draft_invalid = 1u << 2;    ///< NaN/+Inf/negative in a draft row
  static constexpr std::uint32_t draft_zero_mass = 1u << 3;  ///< a draft row has no mass
  static constexpr std::uint32_t token_out_of_range = 1u << 4;     ///< a draft token id is invalid
  static constexpr std::uint32_t zero_draft_probability = 1u << 5; ///< q(x) = 0 for a draft x
  static constexpr std::uint32_t invalid_params = 1u << 6;         ///< sampling parameters rejected
  /// Informational: a residual had no mass, so the correction was drawn from the target row.
  static constexpr std::uint32_t residual_fallback = 1u << 7;
  /// The request's shape was malformed (device path: decreasing draft offsets, rows past the
  /// end of the batch); the result is accepted = 0 and token 0.
  static constexpr std::uint32_t bad_shape = 1u << 8;
  /// The request's token tree is malformed (see tree::validate); the result is the root's
  /// target draw with no draft accepted.
  static constexpr std::uint32_t malformed_tree = 1u << 9;
  /// Flags that mean the input was bad (everything except informational flags).
  static constexpr std::uint32_t error_mask = 0x37fu;

  /// @brief True when no error flag is set (informational flags allowed).
  /// @return `(bits & error_mask) == 0`
  /// @hd
  SPECDEC_HD constexpr bool ok() const noexcept {
    return (bits & error_mask) == 0;
  }
  /// @brief True when flag `f` is set.
  /// @param[in] f a flag constant (for an OR of several: true when any of them is set)
  /// @return `(bits & f) != 0`
  /// @hd
  SPECDEC_HD constexpr bool has(std::uint32_t f) const noexcept {
    return (bits & f) != 0;
  }
  /// @brief Sets flag `f`.
  /// @param[in] f a flag constant, or an OR of several
  /// @post has(f); other flags are unchanged.
  /// @hd
  SPECDEC_HD constexpr void set(std::uint32_t f) noexcept {
    bits |= f;
  }
  /// @brief The host error code for the error flags set, errc::ok when none.
  ///
  /// When several are set, the first match in this order wins: invalid rows
  /// (errc::invalid_value), rows without mass (errc::zero_mass_row), errc::token_out_of_range,
  /// errc::zero_draft_probability, invalid_params (errc::invalid_argument), bad_shape
  /// (errc::shape_mismatch), then malformed_tree (errc::malformed_tree).
  /// @return the error code; informational flags alone give errc::ok
  /// @hd
  SPECDEC_HD constexpr errc to_errc() const noexcept {
    if (has(target_invalid) || has(draft_invalid))
      return errc::invalid_value;
    if (has(target_zero_mass) || has(draft_zero_mass))
      return errc::zero_mass_row;
    if (has(token_out_of_range))
      return errc::token_out_of_range;
    if (has(zero_draft_probability))
      return errc::zero_draft_probability;
    if (has(invalid_params))
      return errc::invalid_argument;
    if (has(bad_shape))
      return errc::shape_mismatch;
    if (has(malformed_tree))
      return errc::malformed_tree;
    return errc::ok;
  }
  /// @brief Two row statuses are equal when their bits are.
  /// @return true when #bits are equal
  friend constexpr bool operator==(const row_status&, const row_status&) = default;
};

SPECDEC_NAMESPACE_END
