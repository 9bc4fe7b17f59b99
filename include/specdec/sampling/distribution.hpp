// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The processed distribution of one row: logits or probabilities, any dtype, after
/// temperature / top-k / min-p / top-p, represented lazily by a few scalars (never
/// materialised), plus categorical sampling by inverse CDF.

#include <specdec/config.hpp>

#include <specdec/core/dtype.hpp>
#include <specdec/core/executor.hpp>
#include <specdec/core/math.hpp>
#include <specdec/core/simd.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/sampling/fused_truncation.hpp>
#include <specdec/sampling/params.hpp>

#include <cstdint>
#include <type_traits>

SPECDEC_NAMESPACE_BEGIN

namespace sampling {

/// @brief One distribution row as stored by the engine: `vocab` elements of type T.
/// @tparam T a row_element: float, half or bfloat16
template <class T>
struct dist_row {
  const T* data = nullptr;                            ///< first element
  index_t vocab = 0;                                  ///< number of elements
  distribution_kind kind = distribution_kind::logits; ///< logits or probabilities
};

/// @brief The lazily represented processed distribution of a row (a few scalars, O(1) to copy).
///
/// For index i with raw value r(i) (the logit; for probability rows r = p, or log p when the
/// temperature is not 1), the processed probability is
/// `one_hot ? [i == argmax] : (r(i) >= cut ? weight(r(i)) * inv_mass : 0)`.
struct row_stats {
  weight_mode mode = weight_mode::exp_scaled; ///< how raw values become weights
  bool log_of_probs = false;                  ///< raw values are log(p) of a probability row
  float max_raw = 0.0f;                       ///< largest raw value
  float inv_temp = 1.0f;                      ///< 1 / temperature (exp_scaled mode)
  float cut = 0.0f;                           ///< raw values below this have probability 0
  float mass = 0.0f;                          ///< sum of weights over the support
  float inv_mass = 0.0f;                      ///< 1 / mass
  index_t argmax = -1;                        ///< first index of the largest raw value
  row_status status{};                        ///< target_invalid / target_zero_mass on bad rows

  /// @brief Unnormalised weight of a raw value (0 outside the support).
  /// @param[in] raw a raw value, as raw_value() reads it
  /// @return `raw` (linear mode) or `exp((raw - max_raw) * inv_temp)` (other modes) when
  ///   `raw >= cut`, else 0
  /// @hd
  SPECDEC_HD float weight(float raw) const noexcept {
    const float w =
        mode == weight_mode::linear ? raw : ::specdec::detail::exp_f((raw - max_raw) * inv_temp);
    return raw >= cut ? w : 0.0f;
  }
  /// @brief True when the row could be processed (no invalid value, positive mass).
  /// @return `status.ok()`
  /// @hd
  SPECDEC_HD bool ok() const noexcept {
    return status.ok();
  }
};

/// @brief Raw value of element i of a row, as the processed distribution sees it (log p for
/// probability rows in exp_scaled mode).
/// @tparam T a row_element
/// @param[in] row the row
/// @param[in] log_of_probs true to read log p (row_stats::log_of_probs)
/// @param[in] i the index
/// @return the element as float; with `log_of_probs`, its natural log (NaN for a negative
///   probability)
/// @pre 0 <= i < row.vocab.
/// @hd
template <class T>
SPECDEC_HD inline float raw_value(const dist_row<T>& row, bool log_of_probs, index_t i) noexcept {
  const float x = load_as_float(row.data, i);
  return log_of_probs
             ? (x < 0.0f ? ::specdec::detail::bits_float(0x7fc00000u) : ::specdec::detail::log_f(x))
             : x;
}

/// @brief Processed probability of index i.
/// @tparam T a row_element
/// @param[in] row the row
/// @param[in] st the stats of `row` (from prepare_row)
/// @param[in] i the index
/// @return `i == st.argmax` as 1 or 0 for one-hot (greedy) rows, else
///   `st.weight(raw) * st.inv_mass` (meaningful only when `st.ok()`)
/// @pre st was computed for `row`.
/// @pre 0 <= i < row.vocab.
/// @hd
template <class T>
SPECDEC_HD inline float prob_at(const dist_row<T>& row, const row_stats& st, index_t i) noexcept {
  if (st.mode == weight_mode::one_hot)
    return i == st.argmax ? 1.0f : 0.0f;
  return ::specdec::detail::fmul(st.weight(raw_value(row, st.log_of_probs, i)), st.inv_mass);
}

namespace detail {

/// How raw values are read from a row.
enum class raw_form { logits, probabilities, log_of_probabilities };

/// Raw values of a row with its form fixed at compile time, so loops over it have no
/// per-element branch. A negative probability reads as NaN, so every scan flags it as invalid.
template <class T, raw_form Form>
struct raw_reader {
  const T* data;
  SPECDEC_HD static float form(float x) noexcept {
    const float nan = ::specdec::detail::bits_float(0x7fc00000u);
    if constexpr (Form == raw_form::log_of_probabilities)
      return x < 0.0f ? nan : ::specdec::detail::log_f(x);
    else if constexpr (Form == raw_form::probabilities)
      return x < 0.0f ? nan : x;
    else
      return x;
  }
  SPECDEC_HD float operator()(index_t i) const noexcept {
    return form(load_as_float(data, i));
  }
  /// Values i .. i+7 (vector loads where aligned); executors use it when all 8 are in range.
  SPECDEC_HD void eval8(index_t i, float (&out)[8]) const noexcept {
    load8_as_float(data, i, out);
    for (int c = 0; c < 8; ++c)
      out[c] = form(out[c]);
  }
};

/// True for executors that prefer one functor with runtime branches over one instantiation per
/// row form (the device executor: a uniform branch costs nothing there, while every extra
/// instantiation of a CTA collective multiplies the kernel's size and compile time).
template <class E>
inline constexpr bool runtime_dispatch = requires {
  requires E::runtime_dispatch;
};

/// The raw reader with its form chosen at run time (for runtime_dispatch executors).
template <class T>
struct dynamic_raw_reader {
  const T* data;
  raw_form form;
  SPECDEC_HD float apply(float x) const noexcept {
    if (form == raw_form::logits)
      return x;
    if (x < 0.0f)
      return ::specdec::detail::bits_float(0x7fc00000u);
    return form == raw_form::log_of_probabilities ? ::specdec::detail::log_f(x) : x;
  }
  SPECDEC_HD float operator()(index_t i) const noexcept {
    return apply(load_as_float(data, i));
  }
  /// Values i .. i+7 (vector loads where aligned).
  SPECDEC_HD void eval8(index_t i, float (&out)[8]) const noexcept {
    load8_as_float(data, i, out);
    for (int c = 0; c < 8; ++c)
      out[c] = apply(out[c]);
  }
};

/// The raw form of a row of `kind` (log_of_probs as in row_stats).
SPECDEC_HD inline raw_form form_of(distribution_kind kind, bool log_of_probs) noexcept {
  if (kind != distribution_kind::probabilities)
    return raw_form::logits;
  return log_of_probs ? raw_form::log_of_probabilities : raw_form::probabilities;
}

#if SPECDEC_HOST_SIMD
template <class T>
inline ::specdec::detail::simd::vf load_vector(const T* data, index_t i) noexcept;
#endif

/// scale * weight(i) for logit rows (exp_scaled, Linear = false) or probability rows at T = 1
/// (Linear = true): branch-free, equal bit for bit to fmul(st.weight(raw), scale).
template <class T, bool Linear>
struct fast_weight {
  const T* data;
  float max_raw, inv_temp, cut, scale;
  SPECDEC_HD float apply(float r) const noexcept {
    const float w = Linear ? r : ::specdec::detail::exp_f((r - max_raw) * inv_temp);
    return r >= cut ? ::specdec::detail::fmul(w, scale) : 0.0f;
  }
  SPECDEC_HD float operator()(index_t i) const noexcept {
    return apply(load_as_float(data, i));
  }
  /// Values i .. i+7 (vector loads where aligned); executors use it when all 8 are in range.
  SPECDEC_HD void eval8(index_t i, float (&out)[8]) const noexcept {
    load8_as_float(data, i, out);
    for (int c = 0; c < 8; ++c)
      out[c] = apply(out[c]);
  }
#if SPECDEC_HOST_SIMD
  /// Values i .. i + simd::width - 1 as one host vector, lane c equal to (*this)(i + c) bit
  /// for bit (the host executor's vector loops use it).
  ::specdec::detail::simd::vf eval_v(index_t i) const noexcept {
    namespace simd = ::specdec::detail::simd;
    simd::vf r = load_vector(data, i);
    const simd::vf w = Linear ? r : simd::exp_v((r - max_raw) * inv_temp);
    return simd::select(r >= cut, simd::fmul(w, scale), simd::splat(0.0f));
  }
#endif
};

#if SPECDEC_HOST_SIMD
/// Elements i .. i + simd::width - 1 of a row as one host vector of floats.
template <class T>
inline ::specdec::detail::simd::vf load_vector(const T* data, index_t i) noexcept {
  namespace simd = ::specdec::detail::simd;
  if constexpr (std::is_same_v<std::remove_cv_t<T>, float>) {
    return simd::load(data + i);
  } else {
    float tmp[simd::width];
    for (int c = 0; c < simd::width; ++c)
      tmp[c] = load_as_float(data, i + c);
    return simd::load(tmp);
  }
}
#endif

/// exp_f of a float, or lane-wise of a host vector (for weight maps written once for both).
template <class V>
SPECDEC_HD inline V exp_any(V x) noexcept {
#if SPECDEC_HOST_SIMD
  if constexpr (std::is_same_v<V, ::specdec::detail::simd::vf>)
    return ::specdec::detail::simd::exp_v(x);
  else
#endif
    return ::specdec::detail::exp_f(x);
}

/// scale * weight(i) for any row (one-hot and log-of-probabilities rows included).
template <class T>
struct generic_weight {
  dist_row<T> row;
  row_stats st;
  float scale;
  SPECDEC_HD float operator()(index_t i) const noexcept {
    if (st.mode == weight_mode::one_hot)
      return i == st.argmax ? scale : 0.0f;
    return ::specdec::detail::fmul(st.weight(raw_value(row, st.log_of_probs, i)), scale);
  }
  /// Values i .. i+7 (vector loads where aligned).
  SPECDEC_HD void eval8(index_t i, float (&out)[8]) const noexcept {
    if (st.mode == weight_mode::one_hot) {
      for (int c = 0; c < 8; ++c)
        out[c] = i + c == st.argmax ? scale : 0.0f;
      return;
    }
    const dynamic_raw_reader<T> rd{row.data, form_of(row.kind, st.log_of_probs)};
    rd.eval8(i, out);
    for (int c = 0; c < 8; ++c)
      out[c] = ::specdec::detail::fmul(st.weight(out[c]), scale);
  }
};

/// Calls f with the cheapest functor computing scale * weight(i) for this row (scale =
/// inv_mass gives the processed probabilities) and returns what f returns.
template <bool Dynamic = false, class T, class F>
SPECDEC_HD auto visit_weights(const dist_row<T>& row, const row_stats& st, float scale, F&& f) {
  if constexpr (Dynamic) {
    return f(generic_weight<T>{row, st, scale});
  } else {
    if (st.mode == weight_mode::exp_scaled && !st.log_of_probs)
      return f(fast_weight<T, false>{row.data, st.max_raw, st.inv_temp, st.cut, scale});
    if (st.mode == weight_mode::linear)
      return f(fast_weight<T, true>{row.data, st.max_raw, st.inv_temp, st.cut, scale});
    return f(generic_weight<T>{row, st, scale});
  }
}

/// The order key of x with -0 mapped to +0 (float comparison's order, for bisection). @hd
SPECDEC_HD inline std::uint32_t zero_key(float x) noexcept {
  return ::specdec::detail::order_key(x == 0.0f ? 0.0f : x);
}

/// Rows up to this length find thresholds by bisection rather than radix select.
inline constexpr index_t small_row = 512;

/// One radix-select digit: the chosen bin and the mass of the entries above it.
struct radix_step {
  int chosen;  ///< the bin holding the threshold
  float above; ///< mass of the entries whose key is above that bin
};

/// Largest raw value v (among the row's values >= floor) with F(v) = sum over raw >= v of g(raw)
/// at least `goal`, by radix select on the order-preserving key: four histogram passes of 8 bits.
/// When rounding leaves F below `goal` everywhere, the smallest value >= floor (everything kept).
/// Rows of at most `small_row` entries use bisection by threshold probes instead.
template <row_executor E, class Raw, class G>
SPECDEC_HD float
search_threshold(const E& ex, index_t n, const Raw& raw, const G& g, float floor, float goal) {
  if (n <= small_row) { // short rows: bisection by probes is cheaper than 4 x 256 bins
    float lo = ex.threshold_probe(n, raw, g, floor, floor).above; // smallest value >= floor
    float hi = ex.threshold_probe(n, raw, g, floor, ::specdec::detail::infinity()).below;
    // The probes compare floats, where -0 == +0; the keys must too, or a probe at mid = +0
    // returns above = -0 = lo and the loop never ends ({0x1p-149f, -0.0f}, top-p 0.99). With
    // zero_key, key(lo) < key(mid) <= key(hi) whenever lo < hi, so every probe moves lo up or
    // hi down: at most 32 probes.
    while (lo < hi) {
      const std::uint32_t klo = zero_key(lo);
      const std::uint32_t khi = zero_key(hi);
      const float mid = ::specdec::detail::from_order_key(klo + (khi - klo + 1u) / 2u);
      const threshold_probe_result pr = ex.threshold_probe(n, raw, g, floor, mid);
      if (pr.mass >= goal)
        lo = pr.above; // F is constant on [mid, above], so above satisfies too
      else
        hi = pr.below; // every v >= mid fails; the next candidate is the largest value below mid
    }
    return lo;
  }
  std::uint32_t prefix = 0;
  float above = 0.0f; // mass of the entries whose key is above the current bucket
  for (int shift = 24; shift >= 0; shift -= 8) {
    // The executor owns the bins (shared memory on the device): no per-thread copy.
    const radix_step step =
        ex.radix_histogram(n, raw, g, floor, prefix, shift, [above, goal](const auto& mass) {
          float acc = above;
          int chosen = -1;
          int lowest_nonempty = -1;
          for (int b = 255; b >= 0; --b) {
            if (!(mass[b] > 0.0f))
              continue;
            lowest_nonempty = b;
            if (acc + mass[b] >= goal) {
              chosen = b;
              break;
            }
            acc += mass[b];
          }
          if (chosen < 0) { // rounding: take the whole remaining range
            chosen = lowest_nonempty < 0 ? 0 : lowest_nonempty;
            acc -= chosen == lowest_nonempty && lowest_nonempty >= 0 ? mass[chosen] : 0.0f;
          }
          return radix_step{chosen, acc};
        });
    above = step.above;
    prefix |= static_cast<std::uint32_t>(step.chosen) << shift;
  }
  return ::specdec::detail::from_order_key(prefix);
}

/// What truncation leaves of a row: the cut and the kept mass.
struct truncation {
  float cut;  ///< raw values below it are dropped
  float mass; ///< unnormalised mass of the kept entries
};

/// Applies min-p, top-k and top-p to a row with largest raw value `max_raw` in weight mode
/// `mode`, with `weight(raw)` the unnormalised weight relative to the row max, and returns the
/// cut and the kept mass (by value, with the readers by value: a device caller keeps nothing in
/// local memory for it). Host executors with fused truncation find the top-k / top-p cuts with
/// one histogram and one gather pass (fused_truncation.hpp); the others, and those whose fused
/// walk disagrees with its bin sums by rounding, by radix select or bisection.
template <row_executor E, class Raw, class W>
SPECDEC_HD truncation truncate(const E& ex,
                               index_t n,
                               Raw raw,
                               W weight,
                               const sampling_params& params,
                               weight_mode mode,
                               float max_raw,
                               bool level0_ready = false) {
  const auto one = [](auto r) { return decltype(r){} + 1.0f; }; // float or a host vector
  float cut = -::specdec::detail::infinity();
  if (params.min_p > 0.0f) {
    cut = mode == weight_mode::linear
              ? ::specdec::detail::fmul(params.min_p, max_raw)
              : max_raw
                    + ::specdec::detail::fmul(::specdec::detail::log_f(params.min_p),
                                              params.temperature);
    cut = ::specdec::detail::min_f(cut, max_raw); // the top token always survives
  }
#if !defined(__CUDA_ARCH__)
  if constexpr (fused_truncation_executor<E>) {
    // Rows of at most small_row entries keep bisection: a few probes of a short row cost less
    // than any histogram.
    truncation fused{cut, 0.0f};
    if ((params.top_k > 0 || params.top_p < 1.0f) && n > small_row
        && fused_truncate(ex, n, raw, weight, params, fused, cut, level0_ready))
      return fused;
  }
#endif
  if (params.top_k > 0) {
    const float count = ex.threshold_probe(n, raw, one, cut, cut).mass; // entries kept so far
    if (static_cast<float>(params.top_k) < count)
      cut = search_threshold(ex, n, raw, one, cut, static_cast<float>(params.top_k));
  }
  float mass = ex.threshold_probe(n, raw, weight, cut, cut).mass;
  if (params.top_p < 1.0f) {
    cut = search_threshold(ex, n, raw, weight, cut, ::specdec::detail::fmul(params.top_p, mass));
    mass = ex.threshold_probe(n, raw, weight, cut, cut).mass;
  }
  return truncation{cut, mass};
}

/// True when a probability row's mass can be normalised in single precision as it is: in
/// [2^-126, FLT_MAX], so that 1 / mass is finite and non-zero. @hd
SPECDEC_HD inline bool linear_mass_ok(float mass) noexcept {
  return mass >= 0x1p-126f && mass <= 0x1.fffffep127f;
}

/// Marks `st` for processing in log form (what prepare_row_with then does): the mode switch
/// is the signal. @hd
SPECDEC_HD inline row_stats log_form_needed(row_stats st) noexcept {
  st.mode = weight_mode::exp_scaled;
  st.log_of_probs = true;
  st.inv_temp = 1.0f;
  return st;
}

template <row_executor E, class T, class Raw>
SPECDEC_HD row_stats prepare_row_impl(const E& ex,
                                      const dist_row<T>& row,
                                      const sampling_params& params,
                                      row_stats st,
                                      const row_scan_result* prescan,
                                      const Raw& raw,
                                      raw_form form) {
  const bool greedy = params.greedy();
  bool level0_ready = false; // the fused truncation's first histogram came with the scan
  row_scan_result scan;
  if (prescan != nullptr) {
    scan = *prescan;
  } else {
#if !defined(__CUDA_ARCH__)
    if constexpr (scan_histogram_executor<E, Raw>) {
      // Top-k / top-p on a long row without min-p: the first histogram of the fused search
      // comes with the scan, from the scan's own exps (the row is read once less, and for top-p
      // exponentiated once less).
      if (!greedy && st.mode == weight_mode::exp_scaled && (params.top_p < 1.0f || params.top_k > 0)
          && !(params.min_p > 0.0f) && row.vocab > small_row) {
        fused_scratch& s = fused_scratch_for_thread();
        scan = ex.scan_row_histogram(row.vocab,
                                     raw,
                                     st.inv_temp,
                                     fused_first_width(row.vocab),
                                     s.count,
                                     s.mass,
                                     &level0_ready);
      } else {
        scan = ex.scan_row(row.vocab, raw, st.mode, st.inv_temp);
      }
    } else
#endif
    {
      scan = ex.scan_row(row.vocab, raw, st.mode, st.inv_temp);
    }
  }
  st.max_raw = scan.max;
  st.argmax = scan.argmax;
  st.cut = -::specdec::detail::infinity();
  st.mass = scan.weight_sum;
  // A probability row whose largest value is 0 has no mass, even for greedy parameters.
  const bool no_mass = form == raw_form::probabilities && !(scan.max > 0.0f);
  if (scan.invalid > 0)
    st.status.set(row_status::target_invalid);
  else if (scan.argmax < 0 || !(scan.weight_sum > 0.0f) || no_mass)
    st.status.set(row_status::target_zero_mass);
  if (!st.status.ok()) {
    st.inv_mass = 0.0f;
    return st;
  }
  if (st.mode == weight_mode::linear && !linear_mass_ok(scan.weight_sum))
    return log_form_needed(st);
  if (!greedy && params.truncates()) {
    // Unnormalised weights relative to the max, with the row form fixed at compile time.
    const float max_raw = st.max_raw;
    const float inv_temp = st.inv_temp;
    // Generic lambdas: the host executor also calls them on vectors of raw values.
    const auto linear_weight = [](auto r) { return r; };
    const auto exp_weight = [max_raw, inv_temp](auto r) {
      return exp_any((r - max_raw) * inv_temp);
    };
    truncation t;
    if constexpr (runtime_dispatch<E>) {
      const bool linear = st.mode == weight_mode::linear;
      const auto weight = [max_raw, inv_temp, linear](float r) {
        return linear ? r : ::specdec::detail::exp_f((r - max_raw) * inv_temp);
      };
      t = truncate(ex, row.vocab, raw, weight, params, st.mode, max_raw);
    } else if (st.mode == weight_mode::linear) {
      t = truncate(ex, row.vocab, raw, linear_weight, params, st.mode, max_raw);
    } else {
      t = truncate(ex, row.vocab, raw, exp_weight, params, st.mode, max_raw, level0_ready);
    }
    st.cut = t.cut;
    st.mass = t.mass;
    if (st.mode == weight_mode::linear && !linear_mass_ok(st.mass))
      return log_form_needed(st); // the kept mass of many tiny entries
  }
  st.inv_mass = 1.0f / st.mass;
  return st;
}

/// The stats prepare_row starts from: weight mode, log_of_probs and 1 / temperature for a row of
/// `kind` under `params` (no pass over the row). @hd
SPECDEC_HD inline row_stats initial_stats(distribution_kind kind,
                                          const sampling_params& params) noexcept {
  row_stats st;
  const bool greedy = params.greedy();
  const bool probs = kind == distribution_kind::probabilities;
  st.mode = greedy ? weight_mode::one_hot
                   : (probs && params.temperature == 1.0f ? weight_mode::linear
                                                          : weight_mode::exp_scaled);
  st.log_of_probs = probs && st.mode == weight_mode::exp_scaled;
  st.inv_temp = greedy ? 1.0f : 1.0f / params.temperature;
  return st;
}

/// Calls f with the raw reader of `row` (its form fixed at compile time from `row.kind` and
/// `st.log_of_probs`) and returns what f returns. @hd
template <class T, class F>
SPECDEC_HD auto visit_raw(const dist_row<T>& row, const row_stats& st, F&& f) {
  if (row.kind != distribution_kind::probabilities)
    return f(raw_reader<T, raw_form::logits>{row.data});
  if (st.log_of_probs)
    return f(raw_reader<T, raw_form::log_of_probabilities>{row.data});
  return f(raw_reader<T, raw_form::probabilities>{row.data});
}

/// prepare_row_impl with the raw reader of `st`'s form (fixed at compile time unless the executor
/// dispatches at run time). @hd
template <row_executor E, class T>
SPECDEC_HD row_stats prepare_row_dispatch(const E& ex,
                                          const dist_row<T>& row,
                                          const sampling_params& params,
                                          const row_stats& st,
                                          const row_scan_result* prescan) {
  const raw_form form = form_of(row.kind, st.log_of_probs);
  if constexpr (runtime_dispatch<E>) {
    return prepare_row_impl(
        ex, row, params, st, prescan, dynamic_raw_reader<T>{row.data, form}, form);
  } else {
    if (form == raw_form::logits)
      return prepare_row_impl(
          ex, row, params, st, prescan, raw_reader<T, raw_form::logits>{row.data}, form);
    if (form == raw_form::log_of_probabilities)
      return prepare_row_impl(ex,
                              row,
                              params,
                              st,
                              prescan,
                              raw_reader<T, raw_form::log_of_probabilities>{row.data},
                              form);
    return prepare_row_impl(
        ex, row, params, st, prescan, raw_reader<T, raw_form::probabilities>{row.data}, form);
  }
}

/// prepare_row with the first pass (`scan_row`) done elsewhere when `prescan` is not null: the
/// split-vocabulary device path scans slices of a row in several CTAs and combines them. The
/// prescan must be the scan_row result of this row with initial_stats(row.kind, params)'s mode
/// and 1 / temperature.
///
/// A probability row at temperature 1 is normalised as it is (linear weights) unless its mass
/// (or its kept mass after truncation) lies outside [2^-126, FLT_MAX], where 1 / mass would be
/// infinite or zero (rows such as {0x1p-149} or {FLT_MAX, FLT_MAX}, found by fuzzing): such a row
/// is processed again in log form, weights exp(log p - log p_max), like any other temperature. @hd
template <row_executor E, class T>
SPECDEC_HD row_stats prepare_row_with(const E& ex,
                                      const dist_row<T>& row,
                                      const sampling_params& params,
                                      const row_scan_result* prescan) {
  row_stats st0 = initial_stats(row.kind, params);
  // At most two rounds, the second in log form. One call site, so a device build inlines one
  // copy of the row code (the truncation above all) rather than two.
  for (;;) {
    const row_stats st = prepare_row_dispatch(ex, row, params, st0, prescan);
    if (st.mode == st0.mode)
      return st; // the second round's mode is exp_scaled, which never asks for another
    st0 = log_form_needed(st0);
    prescan = nullptr;
  }
}
} // namespace detail

/// @brief Computes the processed distribution of a row: validation, max/argmax and mass in one
/// pass, then (only when truncation is on) the top-k, min-p and top-p cut.
///
/// An executor that computed the stats of some rows beforehand (the device verifier does it for
/// all rows of a batch at once) may provide `const row_stats* prepared(const void* row_data)`:
/// when it returns non-null for `row.data`, that result is returned instead (it must equal what
/// this function would compute for `params`).
/// @tparam E a row_executor
/// @tparam T the element type (a row_element)
/// @param[in] ex executor
/// @param[in] row the row
/// @param[in] params sampling parameters (validated by the caller)
/// @return the stats; `status` has target_invalid (NaN, +Inf, negative probability) or
///   target_zero_mass set when the row is unusable (callers re-label them for draft rows)
/// @par Complexity
/// One pass over the row without truncation; with truncation, O(log) extra probes (at most
/// 32 per filter, usually far fewer). @hd
template <row_executor E, class T>
SPECDEC_HD row_stats prepare_row(const E& ex,
                                 const dist_row<T>& row,
                                 const sampling_params& params) {
  if constexpr (requires { ex.prepared(static_cast<const void*>(row.data)); }) {
    if (const row_stats* cached = ex.prepared(static_cast<const void*>(row.data)))
      return *cached;
  }
  return detail::prepare_row_with(ex, row, params, static_cast<const row_scan_result*>(nullptr));
}

/// @brief Draws from a processed row by inverse CDF with uniform u in [0, 1): the smallest index
/// whose cumulative weight exceeds u * mass (DeepSpec's convention). Greedy rows return the
/// argmax.
/// @tparam E a row_executor
/// @tparam T the element type (a row_element)
/// @param[in] ex executor
/// @param[in] row the row
/// @param[in] st the stats of `row` (from prepare_row)
/// @param[in] u a uniform in [0, 1)
/// @return the token, or -1 when the row has no mass.
/// @pre st was computed for `row`.
/// @par Complexity
/// One `sample_inverse_cdf` pass of the executor over the row; constant for greedy rows. @hd
template <row_executor E, class T>
SPECDEC_HD index_t sample_row(const E& ex, const dist_row<T>& row, const row_stats& st, float u) {
  if (st.mode == weight_mode::one_hot)
    return st.argmax;
  const float target = ::specdec::detail::fmul(u, st.mass);
  return detail::visit_weights<detail::runtime_dispatch<E>>(
      row, st, 1.0f, [&ex, &row, target](const auto& w) -> index_t {
        return ex.sample_inverse_cdf(row.vocab, w, target);
      });
}

/// @brief Processes a row with `params` and draws one token with `u` (a drafter's draw: the row
///        it hands the verifier is then exactly the law it drew from).
/// @tparam E a row_executor
/// @tparam T the element type (a row_element)
/// @param[in] ex executor
/// @param[in] row the row
/// @param[in] params the sampling parameters (the decode's)
/// @param[in] u a uniform in [0, 1)
/// @return the token, or -1 when the row is invalid or has no mass
/// @par Complexity
/// prepare_row then sample_row. @hd
template <row_executor E, class T>
SPECDEC_HD index_t
draw_token(const E& ex, const dist_row<T>& row, const sampling_params& params, float u) {
  const row_stats st = prepare_row(ex, row, params);
  if (!st.status.ok())
    return -1;
  const index_t x = sample_row(ex, row, st, u);
  return x >= 0 && x < row.vocab ? x : -1;
}

/// @brief Shannon entropy (nats) of a processed row; 0 for greedy rows. Used by typical
/// acceptance.
/// @tparam E a row_executor
/// @tparam T the element type (a row_element)
/// @param[in] ex executor
/// @param[in] row the row
/// @param[in] st the stats of `row` (from prepare_row)
/// @return H(p) = -sum p log p over the support of the processed distribution
/// @pre st was computed for `row` and `st.ok()` (a row without mass has no entropy).
/// @par Complexity
/// One pass. @hd
template <row_executor E, class T>
SPECDEC_HD float entropy(const E& ex, const dist_row<T>& row, const row_stats& st) {
  if (st.mode == weight_mode::one_hot)
    return 0.0f;
  const bool log_probs = st.log_of_probs;
  if (st.mode == weight_mode::linear) {
    // -sum p log p with p = w / mass directly: w log w itself can overflow (w near FLT_MAX).
    const auto plogp = [row, st, log_probs](index_t i) {
      const float p = ::specdec::detail::fmul(st.weight(raw_value(row, log_probs, i)), st.inv_mass);
      return p > 0.0f ? ::specdec::detail::fmul(p, ::specdec::detail::log_f(p)) : 0.0f;
    };
    return -ex.sum(row.vocab, plogp);
  }
  // Weights in (0, 1] here: H = log(mass) - sum(w log w) / mass, with log w known exactly.
  const auto wlogw = [row, st, log_probs](index_t i) {
    const float r = raw_value(row, log_probs, i);
    const float w = st.weight(r);
    if (!(w > 0.0f))
      return 0.0f;
    return ::specdec::detail::fmul(w, (r - st.max_raw) * st.inv_temp);
  };
  const float s = ex.sum(row.vocab, wlogw);
  return ::specdec::detail::log_f(st.mass) - ::specdec::detail::fmul(s, st.inv_mass);
}

} // namespace sampling

SPECDEC_NAMESPACE_END
