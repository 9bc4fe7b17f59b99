// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The host row executor: serial, chunked loops written so that compilers vectorise them.
///
/// Every primitive processes the row in chunks of `chunk` elements; inside a chunk it keeps
/// `lanes` independent accumulators, which compilers turn into SIMD registers without any
/// reassociation flag. The row is read once per primitive (scan_row fuses validation, max,
/// argmax and the online-softmax sum into one pass).
///
/// On the host the lane loops run as explicit vectors (core/simd.hpp) whenever the row functor
/// offers them: compilers keep float selects scalar under g++'s default -ftrapping-math, so
/// relying on auto-vectorisation made the speed depend on the consumer's flags. Each vector
/// lane applies the scalar lane's operations in the scalar order, so both paths give the same
/// bits (tests/cpu/test_serial_executor_simd.cpp compares them on whole rows), and the device
/// (which runs the scalar path) decides exactly as the host does.

#include <specdec/config.hpp>

#include <specdec/core/executor.hpp>
#include <specdec/core/math.hpp>
#include <specdec/core/simd.hpp>
#include <specdec/core/types.hpp>

#include <concepts>
#include <cstdint>
#include <cstring>

SPECDEC_NAMESPACE_BEGIN

/// @brief The host backend: the serial row executor and host batch verification (the reference
/// for every device test).
namespace cpu {

/// @brief The host implementation of `row_executor`.
///
/// `Vector` selects the explicit-vector lane loops on the host (where SPECDEC_HOST_SIMD); the
/// scalar instantiation (`scalar_executor`) is the reference they are tested against, bit for
/// bit. Stateless and trivially copyable.
/// @tparam Vector true to run the lane loops as explicit vectors where the host compiler can
/// @tparam Fused true to offer the fused truncation primitives (key_histogram, gather_keys), so
///   that top-k / top-p take one histogram pass and one gather pass instead of radix select Its
/// members are also `SPECDEC_HD`, so a single device thread can run a rule with it (the GPU tests
/// use that to run the exact host decision logic on the device; the fast device path is the block
/// executor).
/// @par Complexity
/// Each primitive is O(n) with one read of the row; sample_inverse_cdf reads at most one chunk
/// twice.
template <bool Vector, bool Fused = Vector>
struct basic_serial_executor {
  static constexpr index_t chunk = 512; ///< elements staged per chunk (fits L1 with headroom)
  static constexpr int lanes = 16;      ///< independent accumulators (the sum order)
#if SPECDEC_HOST_SIMD
  /// True when this instantiation runs the vector lane loops.
  static constexpr bool vector = Vector;
#else
  /// True when this instantiation runs the vector lane loops.
  static constexpr bool vector = false;
#endif

  /// @brief Fused validation + max + first argmax + online weight sum. See `row_executor`.
  /// @tparam Raw a callable `float(index_t)` giving the raw value at an index
  /// @param[in] n number of entries
  /// @param[in] raw the raw values
  /// @param[in] mode how raw values become weights
  /// @param[in] inv_temp 1 / temperature (exp_scaled mode)
  /// @return max and first argmax of the valid values, the count of invalid ones (NaN, +Inf, or
  ///   negative in linear mode) and the weight sum (1 in one_hot mode when a valid value exists)
  /// @par Complexity
  /// O(n), one read of each raw value. @hd
  template <class Raw>
  SPECDEC_HD row_scan_result scan_row(index_t n, Raw raw, weight_mode mode, float inv_temp) const {
    const no_chunk_hook none;
    return scan_chunks<false>(n, raw, mode, inv_temp, none);
  }

private:
  /// scan_row's chunk hook that does nothing.
  struct no_chunk_hook {
    SPECDEC_HD void operator()(const float*, const float*, int, float) const {}
  };

  /// scan_row, and when `Keep`, after each chunk hook(values, weights, len, running max): the
  /// chunk's validated values (invalid ones as -inf) and, once a valid value has been seen and
  /// the mode is exp_scaled, their weights exp((x - running max) * inv_temp), the very terms of
  /// the sum (nullptr before that, and in the other modes).
  template <bool Keep, class Raw, class Hook>
  SPECDEC_HD row_scan_result
  scan_chunks(index_t n, Raw raw, weight_mode mode, float inv_temp, Hook& hook) const {
    const float inf = detail::infinity();
    const bool linear = mode == weight_mode::linear;
    float buf[chunk];
    [[maybe_unused]] float wbuf[Keep ? chunk : 1];
    row_scan_result res{-inf, -1, 0.0f, 0};
    for (index_t base = 0; base < n; base += chunk) {
      const int len = static_cast<int>(detail::min_i<index_t>(chunk, n - base));
      for (int j = 0; j < len; ++j)
        buf[j] = raw(base + j);
      // Invalid entries become -inf in the buffer so that max and sums skip them.
      float lane_max[lanes];
      int lane_bad[lanes];
      for (int l = 0; l < lanes; ++l) {
        lane_max[l] = -inf;
        lane_bad[l] = 0;
      }
      int j = 0;
#if SPECDEC_HOST_SIMD
      if constexpr (vector)
        j = validate_vector(buf, len, linear, lane_max, lane_bad);
#endif
      for (; j + lanes <= len; j += lanes) {
        for (int l = 0; l < lanes; ++l) {
          const float x = buf[j + l];
          const bool bad = detail::is_nan(x) || x == inf || (linear && x < 0.0f);
          lane_bad[l] += bad ? 1 : 0;
          const float v = bad ? -inf : x;
          buf[j + l] = v;
          lane_max[l] = detail::max_f(lane_max[l], v);
        }
      }
      for (; j < len; ++j) {
        const float x = buf[j];
        const bool bad = detail::is_nan(x) || x == inf || (linear && x < 0.0f);
        lane_bad[0] += bad ? 1 : 0;
        buf[j] = bad ? -inf : x;
        lane_max[0] = detail::max_f(lane_max[0], buf[j]);
      }
      float cmax = -inf;
      for (int l = 0; l < lanes; ++l) {
        cmax = detail::max_f(cmax, lane_max[l]);
        res.invalid += lane_bad[l];
      }
      if (cmax > res.max) {
        if (mode == weight_mode::exp_scaled && res.argmax >= 0)
          res.weight_sum = detail::fmul(res.weight_sum, detail::exp_f((res.max - cmax) * inv_temp));
        res.max = cmax;
        for (int k = 0; k < len; ++k) {
          if (buf[k] == cmax) {
            res.argmax = base + k;
            break;
          }
        }
      }
      if (mode == weight_mode::one_hot || res.argmax < 0) {
        if constexpr (Keep)
          hook(static_cast<const float*>(buf), static_cast<const float*>(nullptr), len, res.max);
        continue;
      }
      float acc[lanes] = {};
      const float m = res.max;
      j = 0;
      if (linear) {
#if SPECDEC_HOST_SIMD
        if constexpr (vector)
          j = linear_sum_vector(buf, len, acc);
#endif
        for (; j + lanes <= len; j += lanes)
          for (int l = 0; l < lanes; ++l)
            acc[l] += detail::max_f(buf[j + l], 0.0f);
        for (; j < len; ++j)
          acc[0] += detail::max_f(buf[j], 0.0f);
      } else {
#if SPECDEC_HOST_SIMD
        if constexpr (vector)
          j = exp_sum_vector<Keep>(buf, len, m, inv_temp, acc, wbuf);
#endif
        for (; j + lanes <= len; j += lanes)
          for (int l = 0; l < lanes; ++l) {
            const float e = detail::exp_f((buf[j + l] - m) * inv_temp);
            if constexpr (Keep)
              wbuf[j + l] = e;
            acc[l] += e;
          }
        for (; j < len; ++j) {
          const float e = detail::exp_f((buf[j] - m) * inv_temp);
          if constexpr (Keep)
            wbuf[j] = e;
          acc[0] += e;
        }
      }
      res.weight_sum += sum_lanes(acc);
      if constexpr (Keep)
        hook(static_cast<const float*>(buf),
             linear ? static_cast<const float*>(nullptr) : static_cast<const float*>(wbuf),
             len,
             m);
    }
    if (mode == weight_mode::one_hot)
      res.weight_sum = res.argmax >= 0 ? 1.0f : 0.0f;
    return res;
  }

public:
  /// @brief Sum of f(i) over 0 .. n-1. See `row_executor`.
  /// @tparam F a callable `float(index_t)`
  /// @param[in] n number of entries
  /// @param[in] f the terms
  /// @return the sum, accumulated per chunk in `lanes` partial sums
  /// @par Complexity
  /// O(n), one call of f per index. @hd
  template <class F>
  SPECDEC_HD float sum(index_t n, F f) const {
    float total = 0.0f;
    for (index_t base = 0; base < n; base += chunk)
      total += chunk_sum(base, detail::min_i<index_t>(chunk, n - base), f);
    return total;
  }

  /// @brief Inverse-CDF draw: smallest i with running sum of f > target. See `row_executor`.
  /// @tparam F a callable `float(index_t)` returning weights >= 0
  /// @param[in] n number of entries
  /// @param[in] f the weights
  /// @param[in] target the cumulative weight to exceed (u * total mass for a uniform u)
  /// @return that index; if rounding leaves none, the last i with f(i) > 0; -1 when all are 0
  /// @par Complexity
  /// O(n): one call of f per index, plus the indices of at most one chunk a second time (on the
  /// host's vector path each term is evaluated once and buffered per chunk). @hd
  template <class F>
  SPECDEC_HD index_t sample_inverse_cdf(index_t n, F f, float target) const {
    float running = 0.0f;
    index_t last_positive_chunk = -1;
#if SPECDEC_HOST_SIMD
    if constexpr (vector && vector_terms<F>) {
      // Each chunk's terms are evaluated once, as vectors (the same bits as f(i)), into a
      // buffer: its total is summed in chunk_sum's lane order, and the fine scan walks the
      // buffer in index order.
      float terms[chunk];
      for (index_t base = 0; base < n; base += chunk) {
        const index_t len = detail::min_i<index_t>(chunk, n - base);
        index_t j = 0;
        for (; j + detail::simd::width <= len; j += detail::simd::width)
          detail::simd::store(terms + j, f.eval_v(base + j));
        for (; j < len; ++j)
          terms[j] = f(base + j);
        const float total = buffer_sum(terms, len);
        if (total > 0.0f)
          last_positive_chunk = base;
        if (running + total > target) {
          float acc = running;
          for (j = 0; j < len; ++j) {
            acc += terms[j];
            if (acc > target)
              return base + j;
          }
          running = acc;
        } else {
          running += total;
        }
      }
    } else
#endif
    {
      for (index_t base = 0; base < n; base += chunk) {
        const index_t len = detail::min_i<index_t>(chunk, n - base);
        const float total = chunk_sum(base, len, f);
        if (total > 0.0f)
          last_positive_chunk = base;
        if (running + total > target) {
          // Fine scan of this chunk in index order from the running total.
          float acc = running;
          for (index_t i = base; i < base + len; ++i) {
            acc += f(i);
            if (acc > target)
              return i;
          }
          running = acc;
        } else {
          running += total;
        }
      }
    }
    if (last_positive_chunk < 0)
      return -1;
    const index_t end = detail::min_i<index_t>(last_positive_chunk + chunk, n);
    for (index_t i = end - 1; i >= last_positive_chunk; --i)
      if (f(i) > 0.0f)
        return i;
    return -1;
  }

  /// @brief Mass of g(raw) over raw >= mid, plus the nearest raw values around mid (entries below
  /// `floor` ignored). See `row_executor`.
  ///
  /// Two stages per chunk (stage the raw values, then a branch-free lane loop), so the probe
  /// vectorises.
  /// @tparam Raw a callable `float(index_t)` giving the raw value at an index
  /// @tparam G a callable `float(float)` mapping a raw value to its weight
  /// @param[in] n number of entries
  /// @param[in] raw the raw values
  /// @param[in] g the weight of a raw value
  /// @param[in] floor entries with raw < floor (and NaN) are ignored
  /// @param[in] mid the probe point
  /// @return the mass of g(raw) over the entries with raw >= floor and raw >= mid, the smallest
  ///   such raw (+inf when none) and the largest raw in [floor, mid) (-inf when none)
  /// @par Complexity
  /// O(n), one read of each raw value. @hd
  template <class Raw, class G>
  SPECDEC_HD threshold_probe_result
  threshold_probe(index_t n, Raw raw, G g, float floor, float mid) const {
    const float inf = detail::infinity();
    float buf[chunk];
    float mass[lanes], above[lanes], below[lanes];
    for (int l = 0; l < lanes; ++l) {
      mass[l] = 0.0f;
      above[l] = inf;
      below[l] = -inf;
    }
    for (index_t base = 0; base < n; base += chunk) {
      const int len = static_cast<int>(detail::min_i<index_t>(chunk, n - base));
      for (int j = 0; j < len; ++j)
        buf[j] = raw(base + j);
      const int padded = (len + lanes - 1) / lanes * lanes;
      for (int j = len; j < padded; ++j)
        buf[j] = -inf; // below any floor but -inf itself
      int j = 0;
#if SPECDEC_HOST_SIMD
      if constexpr (vector && vector_weight<G>)
        j = probe_vector(buf, len, padded, g, floor, mid, mass, above, below);
#endif
      for (; j < padded; j += lanes) {
        for (int l = 0; l < lanes; ++l) {
          const float x = buf[j + l];
          const bool in = x >= floor && j + l < len; // also drops NaN and the padding
          const bool up = in && x >= mid;
          const float w = g(x);
          mass[l] += up ? w : 0.0f;
          above[l] = up ? detail::min_f(above[l], x) : above[l];
          below[l] = (in && !up) ? detail::max_f(below[l], x) : below[l];
        }
      }
    }
    threshold_probe_result res{0.0f, inf, -inf};
    for (int l = 0; l < lanes; ++l) {
      res.mass += mass[l];
      res.above = detail::min_f(res.above, above[l]);
      res.below = detail::max_f(res.below, below[l]);
    }
    return res;
  }

  /// @brief One radix-select pass: a 256-bin histogram of g(raw) by the order-key digit at
  /// `shift`, over the entries with raw >= floor whose key matches `prefix` above that digit. See
  /// `row_executor`.
  /// @tparam Raw a callable `float(index_t)` giving the raw value at an index
  /// @tparam G a callable `float(float)` mapping a raw value to its weight
  /// @param[in] n number of entries
  /// @param[in] raw the raw values
  /// @param[in] g the weight of a raw value
  /// @param[in] floor entries with raw < floor (and NaN) are skipped
  /// @param[in] prefix the order-key bits chosen so far (only the bits above `shift + 8` count)
  /// @param[in] shift position of the digit: 24, 16, 8 or 0
  /// @param[in] visit called once with the 256 bins (a `const float*` to an array local to this
  ///   call), its result returned
  /// @return `visit(bins)`
  /// @pre 0 <= shift <= 24.
  /// @par Complexity
  /// O(n), one read of each raw value. @hd
  template <class Raw, class G, class Visit>
  SPECDEC_HD auto radix_histogram(
      index_t n, Raw raw, G g, float floor, std::uint32_t prefix, int shift, Visit visit) const {
    float mass[256];
    for (int b = 0; b < 256; ++b)
      mass[b] = 0.0f;
    const int high = shift + 8;
    for (index_t i = 0; i < n; ++i) {
      const float x = raw(i);
      if (!(x >= floor))
        continue; // also skips NaN
      const std::uint32_t key = detail::order_key(x);
      if (high < 32 && (key >> high) != (prefix >> high))
        continue;
      mass[(key >> shift) & 255u] += g(x);
    }
    return visit(static_cast<const float*>(mass));
  }

#if !defined(__CUDA_ARCH__)
  /// Offers key_histogram and gather_keys: prepare_row truncates in one histogram pass plus one
  /// gather pass (sampling/fused_truncation.hpp) instead of radix or bisection probes.
  static constexpr bool fused_truncation = Fused;

  /// @brief Count and weight histogram of the order keys of one key range (host only).
  ///
  /// Over the entries with raw >= floor (NaN skipped) whose key k = zero_key(raw) agrees with
  /// `prefix` on the bits above `shift + width`, adds 1 to `count[b]` and g(raw) to `mass[b]`
  /// with b = (k >> shift) mod 2^width. Both arrays are zeroed first. Weights are summed per bin
  /// in index order; skipped entries go to an extra last bin, so the scatter loop has no branch.
  /// @tparam Raw a callable `float(index_t)` giving the raw value at an index
  /// @tparam G a callable `float(float)` mapping a raw value to its weight
  /// @param[in] n number of entries
  /// @param[in] raw the raw values
  /// @param[in] g the weight of a raw value
  /// @param[in] floor entries below it are skipped
  /// @param[in] prefix the key bits chosen so far (bits above shift + width count)
  /// @param[in] shift position of the digit
  /// @param[in] width bits of the digit (1 .. 16), shift + width <= 32
  /// @param[out] count 2^width + 1 counters (the last one collects the skipped entries)
  /// @param[out] mass 2^width + 1 weight sums (likewise)
  /// @par Complexity
  /// O(n + 2^width), one read of each raw value, weights computed as vectors where G allows.
  template <class Raw, class G>
  void key_histogram(index_t n,
                     Raw raw,
                     G g,
                     float floor,
                     std::uint32_t prefix,
                     int shift,
                     int width,
                     std::uint32_t* count,
                     float* mass) const {
    const std::uint32_t bins = 1u << width;
    for (std::uint32_t b = 0; b <= bins; ++b) {
      count[b] = 0;
      mass[b] = 0.0f;
    }
    const int high = shift + width;
    const std::uint32_t want = high < 32 ? prefix >> high : 0u;
    const std::uint32_t mask = bins - 1u;
    float buf[chunk];
    float wbuf[chunk];
    std::uint32_t bin[chunk]; // `bins` marks an entry that is skipped
    for (index_t base = 0; base < n; base += chunk) {
      const int len = static_cast<int>(detail::min_i<index_t>(chunk, n - base));
      for (int j = 0; j < len; ++j)
        buf[j] = raw(base + j);
      int j = 0;
#if SPECDEC_HOST_SIMD
      if constexpr (vector && vector_weight<G>) {
        const vu none = vu{} + bins;
        for (; j + width_v <= len; j += width_v) {
          const vf x = detail::simd::load(buf + j);
          detail::simd::store(wbuf + j, g(x));
          const vu k = zero_keys(x);
          vi ok = x >= floor;
          if (high < 32)
            ok &= __builtin_bit_cast(vi, k >> high) == static_cast<std::int32_t>(want);
          const vu b = (k >> shift) & mask;
          const vu chosen = __builtin_bit_cast(
              vu,
              detail::simd::select_i(ok, __builtin_bit_cast(vi, b), __builtin_bit_cast(vi, none)));
          std::memcpy(bin + j, &chosen, sizeof(chosen));
        }
      }
#endif
      for (; j < len; ++j) {
        const float x = buf[j];
        wbuf[j] = g(x);
        const std::uint32_t k = detail::order_key(x == 0.0f ? 0.0f : x);
        const bool ok = x >= floor && (high >= 32 || (k >> high) == want);
        bin[j] = ok ? (k >> shift) & mask : bins;
      }
      for (j = 0; j < len; ++j) { // skipped entries land in the extra bin `bins`
        count[bin[j]] += 1u;
        mass[bin[j]] += wbuf[j];
      }
    }
  }

  /// @brief scan_row in exp_scaled mode that also builds key_histogram's first level of the
  /// whole row (floor -inf, no prefix) from the same pass (host only).
  ///
  /// The returned scan is scan_row(n, raw, weight_mode::exp_scaled, inv_temp) bit for bit. The
  /// histogram counts every entry (invalid ones in the bin of -inf) in bin k >> (32 - width) of
  /// its key k = zero_key(raw); each bin's mass is the sum, in index order, of the scan's own
  /// terms exp((x - running max) * inv_temp), brought to the row max by at most two exact-order
  /// rescalings: the masses stay relative to a reference max, the terms of a chunk whose running
  /// max lies above it are multiplied by exp((max - reference) * inv_temp) (at most e^32), and
  /// the reference moves (every bin rescaled) when that factor would exceed e^32. So a mass
  /// differs from key_histogram's by a few roundings per term, which the fused search tolerates
  /// as it tolerates bin-order rounding. A row whose max rises past the reference more than
  /// `max_rebases` times (logits that climb across chunks by hundreds) leaves `*ok` false: the
  /// histogram is then unusable and the caller histograms the row itself.
  /// @tparam Raw a callable `float(index_t)` giving the raw value at an index
  /// @param[in] n number of entries
  /// @param[in] raw the raw values
  /// @param[in] inv_temp 1 / temperature
  /// @param[in] width bits of the first-level digit (1 .. 16)
  /// @param[out] count 2^width + 1 counters (the last, key_histogram's skip bin, stays 0)
  /// @param[out] mass 2^width + 1 weight sums relative to the row max (likewise)
  /// @param[out] ok whether the histogram is valid
  /// @return the scan_row result
  /// @par Complexity
  /// O(n + 2^width * (1 + rebases)), one read of each raw value and one exp per entry (the
  /// scan's).
  template <class Raw>
  row_scan_result scan_row_histogram(index_t n,
                                     Raw raw,
                                     float inv_temp,
                                     int width,
                                     std::uint32_t* count,
                                     float* mass,
                                     bool* ok) const {
    const std::uint32_t bins = 1u << width;
    for (std::uint32_t b = 0; b <= bins; ++b) {
      count[b] = 0;
      mass[b] = 0.0f;
    }
    const int shift = 32 - width;
    constexpr float rebase_gap = 32.0f; // the largest scaled rise kept as a factor: e^32
    float ref = 0.0f;
    bool have_ref = false;
    bool good = true;
    int rebases = 0;
    const auto rescale = [&](float f) {
      for (std::uint32_t b = 0; b < bins; ++b)
        mass[b] = detail::fmul(mass[b], f);
    };
    const auto hook = [&](const float* x, const float* w, int len, float m) {
      if (!good)
        return;
      std::uint32_t bin[chunk];
      int j = 0;
#if SPECDEC_HOST_SIMD
      if constexpr (vector)
        for (; j + width_v <= len; j += width_v) {
          const vu b = zero_keys(detail::simd::load(x + j)) >> shift;
          std::memcpy(bin + j, &b, sizeof(b));
        }
#endif
      for (; j < len; ++j)
        bin[j] = detail::order_key(x[j] == 0.0f ? 0.0f : x[j]) >> shift;
      if (w == nullptr) { // no valid value yet: weights 0
        for (j = 0; j < len; ++j)
          count[bin[j]] += 1u;
        return;
      }
      if (!have_ref) {
        ref = m;
        have_ref = true;
      }
      float scale = 1.0f;
      if (m != ref) {
        if (!((m - ref) * inv_temp <= rebase_gap)) {
          if (++rebases > max_rebases) {
            good = false;
            return;
          }
          rescale(detail::exp_f((ref - m) * inv_temp));
          ref = m;
        } else {
          scale = detail::exp_f((m - ref) * inv_temp);
        }
      }
      if (scale == 1.0f) {
        for (j = 0; j < len; ++j) {
          count[bin[j]] += 1u;
          mass[bin[j]] += w[j];
        }
      } else {
        for (j = 0; j < len; ++j) {
          count[bin[j]] += 1u;
          mass[bin[j]] += detail::fmul(w[j], scale);
        }
      }
    };
    const row_scan_result res = scan_chunks<true>(n, raw, weight_mode::exp_scaled, inv_temp, hook);
    if (good && have_ref && res.max != ref)
      rescale(detail::exp_f((ref - res.max) * inv_temp));
    *ok = good;
    return res;
  }

  /// Rebases scan_row_histogram allows before it gives its histogram up.
  static constexpr int max_rebases = 2;

  /// @brief Gathers the keys and weights of the entries with raw >= floor and lo <= zero_key(raw)
  /// <= hi, in index order (host only).
  /// @tparam Raw a callable `float(index_t)` giving the raw value at an index
  /// @tparam G a callable `float(float)` mapping a raw value to its weight
  /// @param[in] n number of entries
  /// @param[in] raw the raw values
  /// @param[in] g the weight of a raw value
  /// @param[in] floor entries below it are skipped
  /// @param[in] lo smallest key gathered
  /// @param[in] hi largest key gathered
  /// @param[out] keys the keys of the first `cap` such entries
  /// @param[out] weights their weights
  /// @param[in] cap capacity of `keys` and `weights`
  /// @return the number of such entries (may exceed cap; only cap are written)
  /// @par Complexity
  /// O(n), one read of each raw value; g is called for the gathered entries only.
  template <class Raw, class G>
  index_t gather_keys(index_t n,
                      Raw raw,
                      G g,
                      float floor,
                      std::uint32_t lo,
                      std::uint32_t hi,
                      std::uint32_t* keys,
                      float* weights,
                      index_t cap) const {
    index_t found = 0;
    float buf[chunk];
    std::uint32_t kbuf[chunk];
    std::uint32_t pass[chunk];
    std::uint32_t idx[chunk];
    for (index_t base = 0; base < n; base += chunk) {
      const int len = static_cast<int>(detail::min_i<index_t>(chunk, n - base));
      for (int j = 0; j < len; ++j)
        buf[j] = raw(base + j);
      int j0 = 0;
#if SPECDEC_HOST_SIMD
      if constexpr (vector) {
        for (; j0 + width_v <= len; j0 += width_v) {
          const vf x = detail::simd::load(buf + j0);
          const vu k = zero_keys(x);
          const vi ok = (x >= floor) & __builtin_bit_cast(vi, (k >= lo) & (k <= hi));
          const vu one = __builtin_bit_cast(vu, ok) & 1u;
          std::memcpy(kbuf + j0, &k, sizeof(k));
          std::memcpy(pass + j0, &one, sizeof(one));
        }
      }
#endif
      for (int j = j0; j < len; ++j) { // branch-free: the key and whether the entry is gathered
        const float x = buf[j];
        const std::uint32_t k = detail::order_key(x == 0.0f ? 0.0f : x);
        kbuf[j] = k;
        pass[j] = (x >= floor) & (k >= lo) & (k <= hi);
      }
      int m = 0;
      for (int j = 0; j < len; ++j) { // compaction without a branch
        idx[m] = static_cast<std::uint32_t>(j);
        m += static_cast<int>(pass[j]);
      }
      for (int t = 0; t < m; ++t, ++found) {
        if (found < cap) {
          const int j = static_cast<int>(idx[t]);
          keys[found] = kbuf[j];
          weights[found] = g(buf[j]);
        }
      }
    }
    return found;
  }
#endif

private:
#if SPECDEC_HOST_SIMD
  static constexpr int width_v = detail::simd::width;
  using vf = detail::simd::vf;
  using vi = detail::simd::vi;
  static constexpr int k_vec = lanes / width_v; ///< vectors per block of `lanes`

  /// Terms offering `eval_v(i)`: the values i .. i + width_v - 1 as one vector, lane c equal to
  /// the scalar term i + c bit for bit.
  template <class F>
  static constexpr bool vector_terms = requires(const F& f, index_t i) {
    { f.eval_v(i) } -> std::same_as<vf>;
  };
  /// Weight maps that also take a vector of raw values (generic lambdas over the simd rules).
  template <class G>
  static constexpr bool vector_weight = requires(const G& g, vf x) {
    { g(x) } -> std::same_as<vf>;
  };

  using vu = detail::simd::vu;

  /// Lane-wise order_key(x == 0 ? +0 : x): -0 as +0, then all bits flipped for negative values,
  /// the sign bit set for the others.
  static vu zero_keys(vf x) {
    const vu u = detail::simd::bits(detail::simd::select(x == 0.0f, vf{}, x));
    const vi neg = __builtin_bit_cast(vi, u) < 0;
    return u ^ __builtin_bit_cast(vu, detail::simd::select_i(neg, vi{} - 1, vi{} + INT32_MIN));
  }

  /// scan_row's validation lane loop over the whole blocks of a chunk; returns where it stopped.
  static int validate_vector(float* buf, int len, bool linear, float* lane_max, int* lane_bad) {
    const vf neg_inf = detail::simd::splat(-detail::infinity());
    const vf inf = detail::simd::splat(detail::infinity());
    const vi lin = detail::simd::splat_i(linear ? -1 : 0);
    vf mx[k_vec];
    vi nbad[k_vec];
    for (int k = 0; k < k_vec; ++k) {
      mx[k] = neg_inf;
      nbad[k] = vi{};
    }
    int j = 0;
    for (; j + lanes <= len; j += lanes) {
      for (int k = 0; k < k_vec; ++k) {
        const vf x = detail::simd::load(buf + j + k * width_v);
        const vi bad = detail::simd::is_nan(x) | (x == inf) | (lin & (x < 0.0f));
        nbad[k] -= bad; // a true lane is -1
        const vf v = detail::simd::select(bad, neg_inf, x);
        detail::simd::store(buf + j + k * width_v, v);
        mx[k] = detail::simd::max(mx[k], v);
      }
    }
    for (int k = 0; k < k_vec; ++k)
      for (int c = 0; c < width_v; ++c) {
        lane_max[k * width_v + c] = mx[k][c];
        lane_bad[k * width_v + c] = nbad[k][c];
      }
    return j;
  }

  /// scan_row's sum of exp((x - m) * inv_temp) over the whole blocks of a chunk into `acc`;
  /// when `Keep`, each term is also stored to `out` at its index. Runs as wide as the CPU allows
  /// (detail::simd::wide_lanes(): 16 or 8 lanes on a baseline build), with the same bits.
  template <bool Keep>
  static int
  exp_sum_vector(const float* buf, int len, float m, float inv_temp, float* acc, float* out) {
    static_assert(lanes == 16, "the exp blocks are 16 lanes wide");
#if SPECDEC_HOST_WIDE
    const int w = detail::simd::wide_lanes();
    if (w == 16)
      return exp_sum_avx512<Keep>(buf, len, m, inv_temp, acc, out);
    if (w == 8 && width_v == 4)
      return exp_sum_avx2<Keep>(buf, len, m, inv_temp, acc, out);
#endif
    return detail::simd::any_width::exp_sum_blocks<Keep, vf>(buf, len, m, inv_temp, acc, out);
  }

#if SPECDEC_HOST_WIDE
  /// 8-float vectors of the AVX2 loops.
  typedef float vf8 __attribute__((vector_size(32)));
  /// 16-float vectors of the AVX-512F loops.
  typedef float vf16 __attribute__((vector_size(64)));

  /// exp_sum_vector on a CPU with AVX2 (8 lanes).
  template <bool Keep>
  __attribute__((target("avx2"))) static int
  exp_sum_avx2(const float* buf, int len, float m, float inv_temp, float* acc, float* out) {
    return detail::simd::any_width::exp_sum_blocks<Keep, vf8>(buf, len, m, inv_temp, acc, out);
  }
  /// exp_sum_vector on a CPU with AVX-512F (16 lanes).
  template <bool Keep>
  __attribute__((target("avx512f"))) static int
  exp_sum_avx512(const float* buf, int len, float m, float inv_temp, float* acc, float* out) {
    return detail::simd::any_width::exp_sum_blocks<Keep, vf16>(buf, len, m, inv_temp, acc, out);
  }
#endif

  /// scan_row's sum of max(x, 0) over the whole blocks of a chunk into `acc`.
  static int linear_sum_vector(const float* buf, int len, float* acc) {
    vf a[k_vec] = {};
    const vf zero = detail::simd::splat(0.0f);
    int j = 0;
    for (; j + lanes <= len; j += lanes)
      for (int k = 0; k < k_vec; ++k)
        a[k] += detail::simd::max(detail::simd::load(buf + j + k * width_v), zero);
    for (int k = 0; k < k_vec; ++k)
      detail::simd::store(acc + k * width_v, a[k]);
    return j;
  }

  /// threshold_probe's lane loop over the padded chunk, continuing the lane accumulators.
  template <class G>
  static int probe_vector(const float* buf,
                          int len,
                          int padded,
                          const G& g,
                          float floor,
                          float mid,
                          float* mass,
                          float* above,
                          float* below) {
    vf ms[k_vec], ab[k_vec], be[k_vec];
    vi iota{};
    for (int c = 0; c < width_v; ++c)
      iota[c] = c;
    for (int k = 0; k < k_vec; ++k) {
      ms[k] = detail::simd::load(mass + k * width_v);
      ab[k] = detail::simd::load(above + k * width_v);
      be[k] = detail::simd::load(below + k * width_v);
    }
    const vf zero = detail::simd::splat(0.0f);
    int j = 0;
    for (; j < padded; j += lanes) {
      for (int k = 0; k < k_vec; ++k) {
        const vf x = detail::simd::load(buf + j + k * width_v);
        const vi in = (x >= floor) & (iota + (j + k * width_v) < len);
        const vi up = in & (x >= mid);
        const vf w = g(x);
        ms[k] += detail::simd::select(up, w, zero);
        ab[k] = detail::simd::select(up, detail::simd::min(ab[k], x), ab[k]);
        be[k] = detail::simd::select(in & ~up, detail::simd::max(be[k], x), be[k]);
      }
    }
    for (int k = 0; k < k_vec; ++k) {
      detail::simd::store(mass + k * width_v, ms[k]);
      detail::simd::store(above + k * width_v, ab[k]);
      detail::simd::store(below + k * width_v, be[k]);
    }
    return j;
  }
#endif

  SPECDEC_HD static float sum_lanes(const float (&acc)[lanes]) {
    float s = 0.0f;
    for (int l = 0; l < lanes; ++l)
      s += acc[l];
    return s;
  }

#if SPECDEC_HOST_SIMD
  /// The sum of `len` (<= chunk) buffered terms in chunk_sum's order (lane l of `lanes` takes the
  /// terms l, l + lanes, ...; the ragged tail goes to lane 0; then sum_lanes), so it equals
  /// chunk_sum over the terms the buffer holds. O(len). Host only.
  static float buffer_sum(const float* terms, index_t len) {
    float acc[lanes] = {};
    detail::simd::vf a[k_vec] = {};
    index_t j = 0;
    for (; j + lanes <= len; j += lanes)
      for (int k = 0; k < k_vec; ++k)
        a[k] += detail::simd::load(terms + j + k * detail::simd::width);
    for (int k = 0; k < k_vec; ++k)
      detail::simd::store(acc + k * detail::simd::width, a[k]);
    for (; j < len; ++j)
      acc[0] += terms[j];
    return sum_lanes(acc);
  }
#endif

  template <class F>
  SPECDEC_HD static float chunk_sum(index_t base, index_t len, F f) {
    float acc[lanes] = {};
    index_t j = 0;
#if SPECDEC_HOST_SIMD
    if constexpr (vector && vector_terms<F>) {
      detail::simd::vf a[k_vec] = {};
      for (; j + lanes <= len; j += lanes)
        for (int k = 0; k < k_vec; ++k)
          a[k] += f.eval_v(base + j + k * detail::simd::width);
      for (int k = 0; k < k_vec; ++k)
        detail::simd::store(acc + k * detail::simd::width, a[k]);
    }
#endif
    for (; j + lanes <= len; j += lanes)
      for (int l = 0; l < lanes; ++l)
        acc[l] += f(base + j + l);
    for (; j < len; ++j)
      acc[0] += f(base + j);
    return sum_lanes(acc);
  }
};

/// @brief The host executor: explicit vector lane loops where the host compiler has them.
using serial_executor = basic_serial_executor<true>;
/// @brief The scalar reference of serial_executor's lane loops, truncating by radix select like
/// the device (the vector paths are tested against it bit for bit with the same truncation).
using scalar_executor = basic_serial_executor<false, false>;

static_assert(row_executor<serial_executor>);
static_assert(row_executor<scalar_executor>);

} // namespace cpu

SPECDEC_NAMESPACE_END
