// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The row-ops executor: the vocab-wide primitives every rule is written against.
///
/// A verification rule is written once, as `SPECDEC_HD` code over an executor. The host
/// executor (`cpu::serial_executor`) runs plain vectorisable loops; a device executor runs the
/// same primitives block-cooperatively. The primitives take lazily computed functions of the
/// index, so nothing of vocabulary size is ever materialised.

#include <specdec/config.hpp>

#include <specdec/core/types.hpp>

#include <concepts>
#include <cstdint>

SPECDEC_NAMESPACE_BEGIN

/// How raw row values turn into unnormalised weights.
enum class weight_mode : std::uint8_t {
  exp_scaled, ///< weight = exp((raw - max) * inv_temp): logits, or log-probabilities
  linear,     ///< weight = raw: probabilities at temperature 1
  one_hot     ///< greedy: all weight on the first argmax
};

/// Result of executor::scan_row.
struct row_scan_result {
  float max = 0.0f;        ///< largest valid raw value (-inf when there is none)
  index_t argmax = -1;     ///< first index holding `max`; -1 when no valid value exists
  float weight_sum = 0.0f; ///< sum of weights relative to `max` (see weight_mode)
  index_t invalid = 0;     ///< number of invalid values (NaN, +Inf, or negative in linear mode)
};

/// Result of executor::threshold_probe.
struct threshold_probe_result {
  float mass = 0.0f;  ///< sum of g(raw) over the entries with raw >= mid
  float above = 0.0f; ///< smallest raw value >= mid (+inf when none)
  float below = 0.0f; ///< largest raw value in [floor, mid) (-inf when none)
};

namespace detail {
/// Archetype of the `f(i) -> float` callables executors take (concept checking only).
struct index_fn_archetype {
  SPECDEC_HD float operator()(index_t) const noexcept {
    return 0.0f;
  }
};
/// Archetype of the `g(raw) -> float` callables of threshold_probe (concept checking only).
struct value_fn_archetype {
  SPECDEC_HD float operator()(float) const noexcept {
    return 0.0f;
  }
};
/// Archetype of the visitors radix_histogram hands its bins to (concept checking only): reads
/// bins through `operator[](int) -> float` and returns a value.
struct histogram_fn_archetype {
  template <class Bins>
  SPECDEC_HD int operator()(const Bins& bins) const noexcept {
    return static_cast<int>(static_cast<float>(bins[0]));
  }
};
/// Archetype of the values a scratch_executor lends scratch for (concept checking only).
struct scratch_archetype {
  float value = 0.0f; ///< a trivially copyable member
};
} // namespace detail

/// @brief A row-ops executor.
///
/// Every primitive runs over indices 0 .. n-1 of one row and takes callables `raw(i) -> float`
/// (the raw value at i) or `f(i) -> float` (a weight at i, >= 0).
///
/// Required, with these semantics (all float accumulation; order is the executor's):
/// - `scan_row(n, raw, mode, inv_temp)` -> row_scan_result: max and first argmax of the valid
///   raw values, count of invalid ones, and the sum of weights exp((raw - max) * inv_temp)
///   (exp_scaled) or raw (linear) over valid values; one pass.
/// - `sum(n, f)` -> float: the sum of f(i).
/// - `sample_inverse_cdf(n, f, target)` -> index_t: the smallest i whose running sum of f
///   exceeds `target`; if rounding leaves none, the last i with f(i) > 0; -1 when all are 0.
/// - `threshold_probe(n, raw, g, floor, mid)` -> threshold_probe_result over the entries with
///   raw >= floor.
/// - `radix_histogram(n, raw, g, floor, prefix, shift, visit)` -> what `visit` returns: builds
///   the 256 bins mass[b] = sum of g(raw) over the entries with raw >= floor whose order key
///   agrees with `prefix` on the bits above `shift + 8` and has digit
///   `(order_key(raw) >> shift) & 255` = b (one pass; radix select), then returns
///   `visit(bins)`, where `bins[b]` (b in 0 .. 255, an int) reads mass[b] as a float and stays
///   valid only during the call. The executor owns the storage (a device executor's shared
///   memory, a host executor's local array), so callers keep no per-thread copy of the bins.
///
/// Checked: each call compiles on a `const E&` with callables of the shapes above; scan_row and
/// threshold_probe return exactly the result types named, sum and sample_inverse_cdf something
/// convertible to float and index_t.
/// @tparam E the candidate executor type
template <class E>
concept row_executor = requires(const E& e,
                                index_t n,
                                float x,
                                weight_mode m,
                                detail::index_fn_archetype f,
                                detail::value_fn_archetype g) {
  { e.scan_row(n, f, m, x) } -> std::same_as<row_scan_result>;
  { e.sum(n, f) } -> std::convertible_to<float>;
  { e.sample_inverse_cdf(n, f, x) } -> std::convertible_to<index_t>;
  { e.threshold_probe(n, f, g, x, x) } -> std::same_as<threshold_probe_result>;
  e.radix_histogram(n, f, g, x, std::uint32_t{}, int{}, detail::histogram_fn_archetype{});
};

/// @brief A row executor that also lends the rule running on it scratch memory: one object,
/// seen by every thread that runs the rule (a device executor's shared memory), so that state a
/// rule indexes at run time need not live per thread (on the device, per-thread arrays indexed
/// at run time go to the stack: local memory and spills).
///
/// Optional: a rule asks for it with `if constexpr (scratch_executor<E>)` and keeps a local
/// object otherwise (cpu::serial_executor lends none: its local object is the plain array).
/// Required, with these semantics:
/// - `e.template scratch<T>()` -> `T*`: the executor's scratch, viewed as one T (T trivially
///   copyable, its size and alignment within what the executor has; an executor that has too
///   little fails to compile or asserts). The same address in every thread and on every call;
///   its contents are indeterminate until written, and it stays valid for the executor's
///   lifetime. Only one rule call at a time may use it.
/// - `e.publish(dst, v)` (dst a `T&` inside the scratch, v a `const T&`): stores v at dst so
///   that every thread reads v there once publish returns. A collective like the row
///   primitives: every thread calls it with the same arguments; a thread may read dst's earlier
///   value until it calls publish. Constant time (device: one copy, two barriers).
/// Reads of the scratch are plain loads; the scratch is written only through publish.
///
/// Checked: both calls compile on a `const E&` for a small trivially copyable T, and scratch
/// returns exactly `T*`.
/// @tparam E the candidate executor type
template <class E>
concept scratch_executor = row_executor<E> && requires(const E& e,
                                                       detail::scratch_archetype& dst,
                                                       const detail::scratch_archetype& v) {
  { e.template scratch<detail::scratch_archetype>() } -> std::same_as<detail::scratch_archetype*>;
  e.publish(dst, v);
};

SPECDEC_NAMESPACE_END
