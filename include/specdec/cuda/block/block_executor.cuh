// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The device row executor: every `row_executor` primitive as a CTA-cooperative collective
/// (CUB block reductions and scans, 16-byte vector loads), so that one CTA runs the same
/// `verify/` rule code the host runs with cpu::serial_executor.

#include <specdec/config.hpp>

#include <specdec/core/executor.hpp>
#include <specdec/core/math.hpp>
#include <specdec/core/types.hpp>
#include <specdec/sampling/distribution.hpp>
#include <specdec/sampling/partial_scan.hpp>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include <cstddef>
#include <cstdint>

SPECDEC_CUDA_NAMESPACE_BEGIN

/// @brief CTA-level building blocks of the device path.
namespace block {

namespace detail {

/// True for callables that also compute 8 consecutive values at once (vector loads).
template <class F>
concept eval8_callable = requires(const F& f, index_t i, float (&o)[8]) {
  f.eval8(i, o);
};

struct scan_op {
  bool exp_mode;
  float inv_temp;
  SPECDEC_DEVICE sampling::scan_partial operator()(const sampling::scan_partial& a,
                                                   const sampling::scan_partial& b) const {
    return sampling::combine_scan(a, b, exp_mode, inv_temp);
  }
};
struct probe_op {
  SPECDEC_DEVICE threshold_probe_result operator()(const threshold_probe_result& a,
                                                   const threshold_probe_result& b) const {
    return {a.mass + b.mass,
            ::specdec::detail::min_f(a.above, b.above),
            ::specdec::detail::max_f(a.below, b.below)};
  }
};
struct min_index_op {
  SPECDEC_DEVICE index_t operator()(index_t a, index_t b) const {
    return a < b ? a : b;
  }
};
struct max_index_op {
  SPECDEC_DEVICE index_t operator()(index_t a, index_t b) const {
    return a > b ? a : b;
  }
};

/// Read-only view of block_executor's fixed-point radix bins, as floats (what radix_histogram
/// hands its visitor).
struct shared_bins {
  const unsigned long long* bins; ///< the 256 shared-memory bins
  float unscale;                  ///< fixed point to float

  /// The mass of bin b, 0 <= b < 256.
  SPECDEC_DEVICE float operator[](int b) const {
    return static_cast<float>(bins[b]) * unscale;
  }
};

/// Smallest power of two >= n, as its exponent (0 for n <= 1).
SPECDEC_HD inline int ceil_log2(index_t n) noexcept {
  int e = 0;
  while ((index_t{1} << e) < n)
    ++e;
  return e;
}

} // namespace detail

/// Elements each thread handles per step (two 16-byte loads of float, one of half / bfloat16).
inline constexpr int items_per_thread = 8;

/// @brief Shared memory of a block_executor with `Threads` threads: CUB temporary storage (one
/// union, reused by every collective), the radix histogram and the broadcast slots.
/// @tparam Threads threads per CTA
template <int Threads>
struct block_storage {
  /// CUB temporary storage, reused by every collective (synchronised between uses).
  union cub_storage {
    typename cub::BlockReduce<float, Threads>::TempStorage sum;                    ///< sum
    typename cub::BlockReduce<sampling::scan_partial, Threads>::TempStorage scan;  ///< scan_row
    typename cub::BlockReduce<threshold_probe_result, Threads>::TempStorage probe; ///< probes
    typename cub::BlockReduce<index_t, Threads>::TempStorage index;                ///< min / max
    typename cub::BlockScan<float, Threads>::TempStorage prefix;                   ///< inverse CDF
  } cub;                                                                           ///< the union
  unsigned long long bins[256];     ///< radix histogram in fixed point (deterministic)
  row_scan_result scan_out;         ///< broadcast slot of scan_row
  threshold_probe_result probe_out; ///< broadcast slot of threshold_probe
  float float_out;                  ///< broadcast slot of sum
  index_t index_out;                ///< broadcast slot of sample_inverse_cdf
};

/// @brief Rows whose processed stats were computed before the rule runs (see
/// sampling::prepare_row's `prepared` hook): target rows and draft rows of a batch, each a
/// strided array with its stats.
struct prepared_rows {
  const char* target = nullptr;                      ///< target row 0 (bytes)
  index_t target_stride_bytes = 0;                   ///< bytes between target rows
  index_t target_rows = 0;                           ///< number of target rows
  const sampling::row_stats* target_stats = nullptr; ///< @shape{[target_rows]}
  const char* draft = nullptr;                       ///< draft row 0 (bytes), null when none
  index_t draft_stride_bytes = 0;                    ///< bytes between draft rows
  index_t draft_rows = 0;                            ///< number of draft rows
  const sampling::row_stats* draft_stats = nullptr;  ///< @shape{[draft_rows]}

  /// @brief The stats of the row starting at `p`, or null when `p` starts no listed row.
  /// @param[in] p a row's first element
  /// @return a pointer into the stats arrays, or null
  /// @par Complexity
  /// Constant. @hd
  SPECDEC_HD const sampling::row_stats* find(const void* p) const noexcept {
    const char* c = static_cast<const char*>(p);
    if (target_stats != nullptr && c >= target && target_stride_bytes > 0) {
      const index_t off = static_cast<index_t>(c - target);
      if (off % target_stride_bytes == 0 && off / target_stride_bytes < target_rows)
        return target_stats + off / target_stride_bytes;
    }
    if (draft_stats != nullptr && draft != nullptr && c >= draft && draft_stride_bytes > 0) {
      const index_t off = static_cast<index_t>(c - draft);
      if (off % draft_stride_bytes == 0 && off / draft_stride_bytes < draft_rows)
        return draft_stats + off / draft_stride_bytes;
    }
    return nullptr;
  }
};

/// @brief The device implementation of `row_executor`: every primitive is a collective that all
/// `Threads` threads of the CTA call with the same arguments, and every thread gets the result.
///
/// Thread t handles elements [8t, 8t + 8) of each tile of 8 * Threads elements, read with 16-byte
/// loads when the callable offers `eval8` (the row readers of sampling/ do) and the address is
/// aligned. Sums are float, reduced per thread in index order and then by cub::BlockReduce, so
/// they round differently from the host executor (the results agree to float rounding; see the
/// GPU tests for what that allows). Max, first argmax, invalid counts and threshold bounds are
/// exact, and the radix histogram accumulates in 64-bit fixed point, so every primitive is
/// deterministic: the same inputs give bit-identical results on every run.
///
/// Rules run redundantly in every thread (scalar logic is cheap and uniform); only the vocab-wide
/// primitives are split across the CTA. State a rule indexes at run time (tree rejection
/// sampling's siblings) lives in the executor's scratch (`ScratchBytes` of shared memory, one
/// copy per CTA; see scratch_executor), not per thread.
/// @tparam Threads threads per CTA, a multiple of 32
/// @tparam ScratchBytes bytes of scratch, a __shared__ array of the executor type's own (0: none;
///   `scratch<T>()` then fails to compile)
/// @par Complexity
/// Each primitive reads the row once (sample_inverse_cdf stops at the tile holding the sample);
/// O(n / Threads) per thread plus O(log Threads) for the reduction.
template <int Threads, std::size_t ScratchBytes = 0>
struct block_executor {
  static_assert(Threads % 32 == 0 && Threads >= 32 && Threads <= 1024, "Threads: a warp multiple");
  /// One functor with runtime branches per row form, not one instantiation each (see
  /// sampling::detail::runtime_dispatch): keeps kernels small.
  static constexpr bool runtime_dispatch = true;
  /// Bytes of scratch (see scratch()).
  static constexpr std::size_t scratch_bytes = ScratchBytes;
  block_storage<Threads>* smem = nullptr; ///< the CTA's shared storage
  prepared_rows rows{};                   ///< rows with precomputed stats (may be empty)

  /// @brief The precomputed stats of the row at `p`, if any (sampling::prepare_row's hook).
  /// @param[in] p a row's first element
  /// @return the stats, or null
  /// @hd
  SPECDEC_HD const sampling::row_stats* prepared(const void* p) const noexcept {
    return rows.find(p);
  }

  /// @brief The CTA's scratch viewed as one T (see scratch_executor). Not a collective.
  ///
  /// The scratch is a __shared__ array of ScratchBytes bytes declared in this function (one per
  /// CTA and executor type, whatever T is), so it costs the executor object nothing and costs
  /// shared memory only in kernels whose rules ask for it.
  /// @tparam T a trivially copyable type of at most ScratchBytes bytes, aligned to at most 16
  /// @return the scratch as a T*, the same in every thread; contents indeterminate until
  ///   written through publish
  /// @par Complexity
  /// Constant.
  template <class T>
  SPECDEC_DEVICE T* scratch() const noexcept {
    static_assert(ScratchBytes > 0, "block_executor: this kernel's executor has no scratch");
    static_assert(sizeof(T) <= ScratchBytes && alignof(T) <= 16,
                  "block_executor: T does not fit the executor's scratch");
    return reinterpret_cast<T*>(scratch_area());
  }

  /// @brief Stores `v` at `dst` (inside the scratch) for every thread: barrier, thread 0 writes,
  /// barrier. A collective (see scratch_executor).
  /// @tparam T the stored type (trivially copyable)
  /// @param[out] dst a T inside the scratch
  /// @param[in] v the value, the same in every thread
  /// @par Complexity
  /// Constant: one copy of T, two __syncthreads.
  template <class T>
  SPECDEC_DEVICE void publish(T& dst, const T& v) const {
    __syncthreads(); // no thread still reads dst's earlier value
    if (threadIdx.x == 0)
      dst = v;
    __syncthreads();
  }

  /// @brief The scratch's bytes (see scratch()): a block-wide `__shared__` array of ScratchBytes
  ///        (at least 1), 16-byte aligned. O(1).
  /// @return its first byte, the same address in every thread of the block
  SPECDEC_DEVICE static unsigned char* scratch_area() noexcept {
    __shared__ alignas(16) unsigned char area[ScratchBytes > 0 ? ScratchBytes : 1];
    return area;
  }

  /// @brief Visits the elements this thread owns: `body(i, f(i))` for each, in index order. Not a
  /// collective.
  ///
  /// Whole groups of items_per_thread are read at once (16-byte loads through `eval8` when f has
  /// it) into an array indexed only by constants, so it stays in registers; the last, partial
  /// group is read one element at a time. (An array filled and read up to a run-time length is
  /// indexed dynamically, which puts it in local memory: a stack frame in every kernel.)
  /// @tparam F a callable float(index_t), optionally with eval8
  /// @tparam Body a callable void(index_t, float)
  /// @param[in] n number of entries
  /// @param[in] f the values
  /// @param[in] body what to do with each element
  template <class F, class Body>
  SPECDEC_DEVICE SPECDEC_FORCEINLINE static void
  for_each_owned(index_t n, const F& f, Body&& body) {
    constexpr index_t step = static_cast<index_t>(Threads) * items_per_thread;
    for (index_t i0 = static_cast<index_t>(threadIdx.x) * items_per_thread; i0 < n; i0 += step) {
      if (i0 + items_per_thread <= n) {
        float v[items_per_thread];
        load_group(f, i0, v);
#pragma unroll
        for (int c = 0; c < items_per_thread; ++c)
          body(i0 + c, v[c]);
      } else {
        for (index_t i = i0; i < n; ++i)
          body(i, f(i));
      }
    }
  }

  /// @brief The items_per_thread values of f from i0 (all in range): one `eval8` call when f has
  /// it, else element by element. Every index into `v` is a constant.
  /// @tparam F a callable float(index_t), optionally with eval8
  /// @param[in] f the values
  /// @param[in] i0 the first index
  /// @param[out] v the values
  template <class F>
  SPECDEC_DEVICE SPECDEC_FORCEINLINE static void
  load_group(const F& f, index_t i0, float (&v)[items_per_thread]) {
    if constexpr (detail::eval8_callable<F>) {
      f.eval8(i0, v);
    } else {
#pragma unroll
      for (int c = 0; c < items_per_thread; ++c)
        v[c] = f(i0 + c);
    }
  }

  /// @brief Fused validation + max + first argmax + weight sum. See `row_executor`.
  /// @tparam Raw a callable `float(index_t)`
  /// @param[in] n number of entries
  /// @param[in] raw the raw values
  /// @param[in] mode how raw values become weights
  /// @param[in] inv_temp 1 / temperature (exp_scaled mode)
  /// @return as cpu::serial_executor::scan_row (the sum rounded in this executor's order)
  template <class Raw>
  SPECDEC_DEVICE row_scan_result
  scan_row(index_t n, Raw raw, weight_mode mode, float inv_temp) const {
    const sampling::scan_partial p = scan_partial_row(n, raw, mode, inv_temp, 0);
    if (threadIdx.x == 0)
      smem->scan_out = sampling::finish_scan(p, mode);
    __syncthreads();
    const row_scan_result r = smem->scan_out;
    __syncthreads();
    return r;
  }

  /// @brief scan_row's reduction without the final conversion, over raw(0 .. n-1) with indices
  /// reported as `first + i` (the split-vocabulary path scans slices). Result valid in thread 0.
  /// @tparam Raw a callable `float(index_t)`
  /// @param[in] n number of entries
  /// @param[in] raw the raw values
  /// @param[in] mode how raw values become weights
  /// @param[in] inv_temp 1 / temperature
  /// @param[in] first index of raw(0) in the whole row
  /// @return the partial (in thread 0)
  template <class Raw>
  SPECDEC_DEVICE sampling::scan_partial
  scan_partial_row(index_t n, Raw raw, weight_mode mode, float inv_temp, index_t first) const {
    sampling::scan_partial p = sampling::empty_partial();
    for_each_owned(
        n, raw, [&](index_t i, float x) { sampling::scan_add(p, x, first + i, mode, inv_temp); });
    using reduce = cub::BlockReduce<sampling::scan_partial, Threads>;
    const sampling::scan_partial r =
        reduce(smem->cub.scan)
            .Reduce(p, detail::scan_op{mode == weight_mode::exp_scaled, inv_temp});
    __syncthreads();
    return r;
  }

  /// @brief Sum of f(i) over 0 .. n-1. See `row_executor`.
  /// @tparam F a callable `float(index_t)`
  /// @param[in] n number of entries
  /// @param[in] f the terms
  /// @return the sum (every thread)
  template <class F>
  SPECDEC_DEVICE float sum(index_t n, F f) const {
    float acc = 0.0f;
    for_each_owned(n, f, [&](index_t, float x) { acc += x; });
    const float total = cub::BlockReduce<float, Threads>(smem->cub.sum).Sum(acc);
    if (threadIdx.x == 0)
      smem->float_out = total;
    __syncthreads();
    const float r = smem->float_out;
    __syncthreads();
    return r;
  }

  /// @brief Inverse-CDF draw: smallest i with f(i) > 0 whose running sum exceeds `target`. See
  /// `row_executor`. Tile by tile: a block scan of the per-thread sums gives each thread its
  /// starting running sum; the first tile holding the sample ends the pass.
  /// @tparam F a callable `float(index_t)` returning weights >= 0
  /// @param[in] n number of entries
  /// @param[in] f the weights
  /// @param[in] target the cumulative weight to exceed
  /// @return that index; if rounding leaves none, the last i with f(i) > 0; -1 when all are 0
  template <class F>
  SPECDEC_DEVICE index_t sample_inverse_cdf(index_t n, F f, float target) const {
    constexpr index_t step = static_cast<index_t>(Threads) * items_per_thread;
    constexpr index_t none = INT64_MAX;
    float running = 0.0f;
    index_t last_positive = -1;
    for (index_t tile = 0; tile < n; tile += step) {
      const index_t i0 = tile + static_cast<index_t>(threadIdx.x) * items_per_thread;
      const bool whole = i0 + items_per_thread <= n;
      float v[items_per_thread] = {};
      float local = 0.0f;
      if (whole) {
        load_group(f, i0, v);
#pragma unroll
        for (int c = 0; c < items_per_thread; ++c)
          local += v[c];
      } else {
        for (index_t i = i0; i < n; ++i)
          local += f(i);
      }
      float prefix = 0.0f;
      float tile_total = 0.0f;
      cub::BlockScan<float, Threads>(smem->cub.prefix).ExclusiveSum(local, prefix, tile_total);
      __syncthreads();
      index_t found = none;
      float acc = running + prefix;
      const auto visit = [&](index_t i, float x) {
        acc += x;
        if (x > 0.0f) {
          last_positive = i;
          if (acc > target && found == none)
            found = i;
        }
      };
      if (whole) {
#pragma unroll
        for (int c = 0; c < items_per_thread; ++c)
          visit(i0 + c, v[c]);
      } else {
        for (index_t i = i0; i < n; ++i) // f is a pure function of i: the same values again
          visit(i, f(i));
      }
      const index_t first =
          cub::BlockReduce<index_t, Threads>(smem->cub.index).Reduce(found, detail::min_index_op{});
      if (threadIdx.x == 0)
        smem->index_out = first;
      __syncthreads();
      const index_t hit = smem->index_out;
      __syncthreads();
      if (hit != none)
        return hit;
      running += tile_total;
    }
    const index_t last = cub::BlockReduce<index_t, Threads>(smem->cub.index)
                             .Reduce(last_positive, detail::max_index_op{});
    if (threadIdx.x == 0)
      smem->index_out = last;
    __syncthreads();
    const index_t r = smem->index_out;
    __syncthreads();
    return r;
  }

  /// @brief Mass of g(raw) over raw >= mid and the nearest raw values around mid (entries below
  /// `floor` ignored). See `row_executor`.
  /// @tparam Raw a callable `float(index_t)`
  /// @tparam G a callable `float(float)`
  /// @param[in] n number of entries
  /// @param[in] raw the raw values
  /// @param[in] g the weight of a raw value
  /// @param[in] floor entries with raw < floor (and NaN) are ignored
  /// @param[in] mid the probe point
  /// @return as cpu::serial_executor::threshold_probe (mass rounded in this executor's order)
  template <class Raw, class G>
  SPECDEC_DEVICE threshold_probe_result
  threshold_probe(index_t n, Raw raw, G g, float floor, float mid) const {
    const float inf = ::specdec::detail::infinity();
    threshold_probe_result p{0.0f, inf, -inf};
    for_each_owned(n, raw, [&](index_t, float x) {
      if (!(x >= floor))
        return;
      if (x >= mid) {
        p.mass += g(x);
        p.above = ::specdec::detail::min_f(p.above, x);
      } else {
        p.below = ::specdec::detail::max_f(p.below, x);
      }
    });
    const threshold_probe_result r =
        cub::BlockReduce<threshold_probe_result, Threads>(smem->cub.probe)
            .Reduce(p, detail::probe_op{});
    if (threadIdx.x == 0)
      smem->probe_out = r;
    __syncthreads();
    const threshold_probe_result out = smem->probe_out;
    __syncthreads();
    return out;
  }

  /// @brief One radix-select pass: the 256-bin histogram of g(raw) by order-key digit. See
  /// `row_executor`.
  ///
  /// Bins accumulate in 64-bit fixed point with shared-memory atomics, so the result does not
  /// depend on the order threads arrive in: weights are clamped to [0, 16] and scaled by
  /// 2^(59 - ceil(log2 n)) (resolution about 2^-41 at n = 256k; every caller's weights are at
  /// most 1: counts, weights relative to the row max, probabilities).
  /// @tparam Raw a callable `float(index_t)`
  /// @tparam G a callable `float(float)`
  /// @param[in] n number of entries
  /// @param[in] raw the raw values
  /// @param[in] g the weight of a raw value
  /// @param[in] floor entries with raw < floor (and NaN) are skipped
  /// @param[in] prefix the order-key bits chosen so far (bits above `shift + 8` count)
  /// @param[in] shift position of the digit: 24, 16, 8 or 0
  /// @param[in] visit called by every thread with a read-only view of the shared bins
  ///   (detail::shared_bins, floats on read), which stay valid until it returns
  /// @return `visit(bins)`
  template <class Raw, class G, class Visit>
  SPECDEC_DEVICE auto radix_histogram(
      index_t n, Raw raw, G g, float floor, std::uint32_t prefix, int shift, Visit visit) const {
    for (int b = static_cast<int>(threadIdx.x); b < 256; b += Threads)
      smem->bins[b] = 0ull;
    __syncthreads();
    const int e = 59 - detail::ceil_log2(n > 1 ? n : 1);
    const float scale = ::specdec::detail::bits_float(static_cast<std::uint32_t>(127 + e) << 23);
    const float unscale = ::specdec::detail::bits_float(static_cast<std::uint32_t>(127 - e) << 23);
    const int high = shift + 8;
    for_each_owned(n, raw, [&](index_t, float x) {
      if (!(x >= floor))
        return;
      const std::uint32_t key = ::specdec::detail::order_key(x);
      if (high < 32 && (key >> high) != (prefix >> high))
        return;
      const float w = ::specdec::detail::min_f(::specdec::detail::max_f(g(x), 0.0f), 16.0f);
      atomicAdd(&smem->bins[(key >> shift) & 255u], static_cast<unsigned long long>(w * scale));
    });
    __syncthreads();
    const auto result = visit(detail::shared_bins{smem->bins, unscale});
    __syncthreads(); // the next collective may zero or reuse the bins
    return result;
  }
};

} // namespace block

SPECDEC_CUDA_NAMESPACE_END
