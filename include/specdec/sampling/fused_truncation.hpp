// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Top-k and top-p cuts from one histogram pass of the order keys plus one gather pass
/// over the boundary (host executors that offer `key_histogram` and `gather_keys`).
///
/// The rule is the one `truncate` applies everywhere: for top-k the largest raw value v >= floor
/// with at least k entries >= v (ties at v all kept), for top-p the largest v with
/// F(v) = sum over raw >= v of weight(raw) >= top_p times the mass kept so far. Radix select
/// finds v with four 256-bin histogram passes per filter and a probe pass for the mass (seven
/// passes for top-p, twelve with top-k as well). Here:
///
/// 1. One pass builds a histogram (2^8 bins for rows up to 4095 entries, up to 2^14 from 131072
/// entries;
///    count and weight sum per bin) of the order keys of the entries >= floor; walking the bins
///    from the top finds the bin where the goal is crossed. Without min-p, prepare_row has the
///    executor build this level in its first pass (`scan_row_histogram`, from the scan's own
///    exps): the row is read once less, and for top-p exponentiated once, not twice.
/// 2. One pass gathers the keys and weights of the entries in that bin (or, when they fit, of
///    every entry from that bin up, so that a following top-p needs no further pass); sorted,
///    they give v exactly, with the mass kept.
/// 3. When more than `fused_gather_cap` entries share the boundary bin (heavy ties, as in
///    bfloat16 rows), the remaining key bits are histogrammed in two more levels first, like
///    radix select; the last level's bins are single keys.
///
/// The cut is the same value radix select finds, up to the rounding of the weight sums (bin
/// sums here, lane sums there) at the goal; the kept mass is summed bin by bin, then entry by
/// entry. When the rounding of the two sums disagrees on which side of the goal a value lies
/// (the walk through a bin does not reach a goal its bin sum reached), the caller falls back to
/// radix select, so the result is always a cut that the rule admits.

#include <specdec/config.hpp>

#include <specdec/core/executor.hpp>
#include <specdec/core/math.hpp>
#include <specdec/core/types.hpp>

#include <concepts>
#include <cstdint>

#if !defined(__CUDA_ARCH__)
#include <algorithm>
#include <memory>
#endif

SPECDEC_NAMESPACE_BEGIN

namespace sampling {
namespace detail {

#if !defined(__CUDA_ARCH__)

/// True for host executors that offer key_histogram and gather_keys (cpu::serial_executor).
template <class E>
concept fused_truncation_executor = requires {
  requires E::fused_truncation;
};

/// Fused executors whose first pass can also build the first histogram level
/// (`scan_row_histogram`, as cpu::serial_executor): prepare_row then reads a top-p row once less.
template <class E, class Raw>
concept scan_histogram_executor = fused_truncation_executor<E> && requires(
    const E& e, index_t n, const Raw& raw, std::uint32_t* c, float* m, bool* ok) {
  { e.scan_row_histogram(n, raw, 1.0f, 8, c, m, ok) } -> std::same_as<row_scan_result>;
};

/// Entries gathered around a boundary at most (larger boundary bins are refined by histogram).
inline constexpr index_t fused_gather_cap = 4096;

/// Per-thread scratch of the fused truncation: 2^14 bins plus the gather list (176 KiB, allocated
/// on a thread's first truncation, never larger).
struct fused_scratch {
  static constexpr int bins = 1 << 14;    ///< bins of the first level
  std::uint32_t count[bins + 1];          ///< entries per bin (+ key_histogram's skip bin)
  float mass[bins + 1];                   ///< weight per bin (likewise)
  std::uint32_t keys[fused_gather_cap];   ///< gathered keys, in gather order
  float weights[fused_gather_cap];        ///< their weights, in gather order
  std::uint64_t sorted[fused_gather_cap]; ///< (~key << 32) | gather index, ascending
  index_t list = 0;                       ///< gathered entries (sorted)

  /// Key of the i-th entry of the sorted list (keys descending).
  [[nodiscard]] std::uint32_t key(index_t i) const noexcept {
    return ~static_cast<std::uint32_t>(sorted[i] >> 32);
  }
  /// Weight of the i-th entry of the sorted list.
  [[nodiscard]] float weight(index_t i) const noexcept {
    return weights[static_cast<std::uint32_t>(sorted[i])];
  }
};

/// The calling thread's scratch.
inline fused_scratch& fused_scratch_for_thread() {
  thread_local std::unique_ptr<fused_scratch> s;
  if (!s)
    s = std::make_unique<fused_scratch>();
  return *s;
}

/// What a fused search looks for: the largest v whose F(v) (count, or weight, of the entries
/// >= v) reaches a goal.
struct fused_goal {
  bool by_count = false;   ///< count goal (top-k) rather than a mass goal (top-p)
  std::uint64_t count = 0; ///< the count goal
  float mass = 0.0f;       ///< the mass goal, when `of_total` is 1
  float of_total = 1.0f;   ///< below 1: the mass goal is this fraction of the entries' total

  /// At least k entries (top-k).
  static fused_goal top_k(std::uint64_t k) noexcept {
    return {true, k, 0.0f, 1.0f};
  }
  /// A kept mass of at least m (top-p after a filter that told the mass).
  static fused_goal mass_at_least(float m) noexcept {
    return {false, 0, m, 1.0f};
  }
  /// A kept mass of at least p times the total mass >= floor, which the first pass sums (top-p).
  static fused_goal fraction_of_total(float p) noexcept {
    return {false, 0, 0.0f, p};
  }
};

/// Outcome of a fused search.
struct fused_cut {
  float cut = 0.0f;           ///< the threshold value
  float kept_mass = 0.0f;     ///< weight of the entries >= cut (and >= floor)
  bool ok = false;            ///< false: rounding disagreed, fall back to radix select
  bool whole = false;         ///< the goal exceeds everything: no cut (cut = floor)
  bool complete_list = false; ///< scratch holds every entry >= floor down to the boundary bin
};

/// Sorts the first m gathered entries of `s` by key, descending, ties in gather (index) order:
/// one std::sort of packed (~key, gather index) words, deterministic and in place
/// (std::stable_sort may allocate).
inline void sort_gathered(fused_scratch& s, index_t m) {
  for (index_t i = 0; i < m; ++i)
    s.sorted[i] = static_cast<std::uint64_t>(~s.keys[i]) << 32 | static_cast<std::uint32_t>(i);
  std::sort(s.sorted, s.sorted + m);
  s.list = m;
}

/// Walks the sorted list from the top, key group by key group, from the count and mass above it;
/// returns the first key value whose F reaches the goal (a fraction-of-total goal must have been
/// resolved to a mass), or ok = false when none does.
inline fused_cut walk_sorted(const fused_scratch& s,
                             std::uint64_t base_count,
                             float base_mass,
                             const fused_goal& goal) {
  fused_cut r;
  std::uint64_t c = base_count;
  float m = base_mass;
  index_t i = 0;
  while (i < s.list) {
    const std::uint32_t k = s.key(i);
    while (i < s.list && s.key(i) == k) {
      c += 1;
      m += s.weight(i);
      ++i;
    }
    if (goal.by_count ? c >= goal.count : m >= goal.mass) {
      r.cut = ::specdec::detail::from_order_key(k);
      r.kept_mass = m;
      r.ok = true;
      return r;
    }
  }
  return r;
}

/// Bits of the first histogram level for a row of n entries: 8 for short rows, where zeroing
/// 2^14 bins would cost more than the row, up to 14 from 131072 entries.
inline int fused_first_width(index_t n) noexcept {
  int w1 = 8;
  while (w1 < 14 && (index_t{1} << (w1 + 3)) <= n)
    ++w1;
  return w1;
}

/// The fused search of the largest v >= floor whose F(v) reaches `goal`. See the file comment.
/// When `level0_ready`, `s` already holds the first level's weighted histogram of the whole row
/// (fused_first_width(n) bits, floor -inf: the executor's scan_row_histogram), and the first
/// histogram pass is skipped.
/// O(n) per histogram level (one to three, plus one unweighted count for top-k) and one gather
/// pass, then O(m log m) for the m <= fused_gather_cap gathered entries.
template <class E, class Raw, class G>
fused_cut fused_search(const E& ex,
                       index_t n,
                       const Raw& raw,
                       const G& g,
                       float floor,
                       fused_goal goal,
                       fused_scratch& s,
                       bool level0_ready = false) {
  const bool by_count = goal.by_count;
  struct level {
    int shift, width;
  };
  // The other two levels split the bits the first one leaves.
  const int w1 = fused_first_width(n);
  const int w2 = (32 - w1 + 1) / 2;
  const level levels[3] = {{32 - w1, w1}, {32 - w1 - w2, w2}, {0, 32 - w1 - w2}};
  std::uint32_t prefix = 0;
  std::uint64_t base_c = 0;
  float base_m = 0.0f;
  for (int li = 0; li < 3; ++li) {
    const level lv = levels[li];
    // A top-k search counts first without computing weights: when everything from the boundary
    // bin up fits the gather list (k well below fused_gather_cap), the weights of the gathered
    // entries are all it needs, so the row's exp pass is saved.
    bool weighted = !(li == 0 && by_count) || (li == 0 && level0_ready);
    const auto histogram = [&](bool with_weights) {
      if (with_weights) {
        ex.key_histogram(n, raw, g, floor, prefix, lv.shift, lv.width, s.count, s.mass);
      } else {
        const auto no_weight = [](auto r) { return decltype(r){}; };
        ex.key_histogram(n, raw, no_weight, floor, prefix, lv.shift, lv.width, s.count, s.mass);
      }
    };
    if (li > 0 || !level0_ready)
      histogram(weighted);
    const int bins = 1 << lv.width;
    if (li == 0 && !by_count && goal.of_total < 1.0f) {
      float total = 0.0f;
      for (int b = bins - 1; b >= 0; --b)
        total += s.mass[b];
      goal = fused_goal::mass_at_least(::specdec::detail::fmul(goal.of_total, total));
    }
    if (li == 0 && by_count) { // k >= the entries left: no cut (as radix select's caller)
      std::uint64_t total = 0;
      float total_mass = 0.0f;
      for (int b = bins - 1; b >= 0; --b) {
        total += s.count[b];
        total_mass += s.mass[b];
      }
      if (total <= goal.count) {
        if (!weighted) { // the kept mass is the row's whole mass: weigh it
          histogram(true);
          total_mass = 0.0f;
          for (int b = bins - 1; b >= 0; --b)
            total_mass += s.mass[b];
        }
        fused_cut r;
        r.cut = floor;
        r.kept_mass = total_mass;
        r.ok = true;
        r.whole = true;
        return r;
      }
    }
    std::uint64_t c = base_c;
    float m = base_m;
    int chosen = -1;
    for (int b = bins - 1; b >= 0; --b) {
      if (s.count[b] == 0u)
        continue;
      if (by_count ? c + s.count[b] >= goal.count : m + s.mass[b] >= goal.mass) {
        chosen = b;
        break;
      }
      c += s.count[b];
      m += s.mass[b];
    }
    fused_cut r;
    if (chosen < 0)
      return r; // a goal nothing reaches (rounding): let radix select decide
    const std::uint32_t lo = prefix | (static_cast<std::uint32_t>(chosen) << lv.shift);
    const std::uint32_t hi = lv.shift == 0 ? lo : lo | ((1u << lv.shift) - 1u);
    const std::uint32_t in_bin = s.count[chosen];
    if (lv.shift == 0) { // a single key
      r.cut = ::specdec::detail::from_order_key(lo);
      r.kept_mass = m + s.mass[chosen];
      r.ok = true;
      return r;
    }
    if (li == 0 && c + in_bin <= static_cast<std::uint64_t>(fused_gather_cap)) {
      // Everything from this bin up fits: gather it all (a top-p after a top-k reuses it).
      const index_t got =
          ex.gather_keys(n, raw, g, floor, lo, 0xffffffffu, s.keys, s.weights, fused_gather_cap);
      if (got != static_cast<index_t>(c + in_bin))
        return r;
      sort_gathered(s, got);
      r = walk_sorted(s, 0, 0.0f, goal);
      r.complete_list = r.ok;
      return r;
    }
    if (!weighted) { // bucket mode needs the masses of the bins above: weigh this level
      histogram(true);
      weighted = true;
      m = base_m;
      for (int b = bins - 1; b > chosen; --b)
        m += s.mass[b];
    }
    if (in_bin <= static_cast<std::uint32_t>(fused_gather_cap)) {
      const index_t got =
          ex.gather_keys(n, raw, g, floor, lo, hi, s.keys, s.weights, fused_gather_cap);
      if (got != static_cast<index_t>(in_bin))
        return r;
      sort_gathered(s, got);
      return walk_sorted(s, c, m, goal);
    }
    prefix = lo;
    base_c = c;
    base_m = m;
  }
  return fused_cut{};
}

/// Top-k then top-p by the fused search (min-p's cut given as `cut`). Writes st.cut and st.mass
/// and returns true, or returns false (st untouched) when rounding made a walk disagree with its
/// bin sums; the caller then runs radix select. `level0_ready`: the thread's scratch holds the
/// row's first-level histogram (see fused_search), used by the first search when no cut precedes
/// it.
template <class E, class Raw, class W, class Stats, class Params>
bool fused_truncate(const E& ex,
                    index_t n,
                    const Raw& raw,
                    const W& weight,
                    const Params& params,
                    Stats& st,
                    float cut,
                    bool level0_ready = false) {
  fused_scratch& s = fused_scratch_for_thread();
  float mass = 0.0f;
  bool have_mass = false;
  bool complete = false;
  if (params.top_k > 0) {
    const bool ready = level0_ready && !(cut > -::specdec::detail::infinity());
    const fused_cut r = fused_search(ex,
                                     n,
                                     raw,
                                     weight,
                                     cut,
                                     fused_goal::top_k(static_cast<std::uint64_t>(params.top_k)),
                                     s,
                                     ready);
    if (!r.ok)
      return false;
    if (!r.whole)
      cut = r.cut;
    mass = r.kept_mass;
    have_mass = true;
    complete = r.complete_list;
  }
  if (params.top_p < 1.0f) {
    fused_cut r;
    if (complete) { // every entry >= the top-k cut is in the sorted list
      index_t keep = 0;
      const std::uint32_t cut_key = ::specdec::detail::order_key(cut == 0.0f ? 0.0f : cut);
      while (keep < s.list && s.key(keep) >= cut_key)
        ++keep;
      s.list = keep;
      r = walk_sorted(
          s, 0, 0.0f, fused_goal::mass_at_least(::specdec::detail::fmul(params.top_p, mass)));
    } else {
      const fused_goal goal =
          have_mass ? fused_goal::mass_at_least(::specdec::detail::fmul(params.top_p, mass))
                    : fused_goal::fraction_of_total(params.top_p);
      const bool ready = level0_ready && !have_mass && !(cut > -::specdec::detail::infinity());
      r = fused_search(ex, n, raw, weight, cut, goal, s, ready);
    }
    if (!r.ok)
      return false;
    cut = r.cut;
    mass = r.kept_mass;
  }
  st.cut = cut;
  st.mass = mass;
  return true;
}

#endif // !__CUDA_ARCH__

} // namespace detail
} // namespace sampling

SPECDEC_NAMESPACE_END
