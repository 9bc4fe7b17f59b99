// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief DSpark's hardware-aware prefix scheduler (paper Algorithm 1, spec 8): per-request
///        verification lengths that maximise expected committed tokens x target steps per second.
///
/// R requests each drafted a block; request r comes with calibrated conditionals c_{r,1..g_r}
/// (c_{r,k} estimates P(draft k accepted | drafts < k accepted)). The prefix survival
/// probabilities a_{r,j} = prod_{i<=j} c_{r,i} are non-increasing in j. Verifying the prefix
/// lengths l_r costs one target step on a batch of B = sum_r (1 + l_r) tokens (every request always
/// verifies its anchor slot) and commits tau = sum_r (1 + sum_{j<=l_r} a_{r,j}) tokens in
/// expectation, so the throughput is Theta = tau * SPS(B) for a profiled step curve SPS
/// (sps_table; sched/sps_profile.hpp measures one).
///
/// The candidates (r, j) with a_{r,j} > 0 are visited in the order of the key (-a, j asc, r asc):
/// the greedy path. The order respects prefixes (within a request a is non-increasing and ties
/// go to the smaller j), so every point of the path is a valid set of prefix lengths.
/// - schedule_mode::early_stop (Algorithm 1): admit along the path while Theta strictly grows;
///   stop at the first candidate that does not raise it. The stop keeps speculative decoding
///   lossless (spec 8.4): whether draft k of request r is verified never depends on the value of
///   x_{r,k}. It finds the global optimum when Theta is unimodal along the path.
/// - schedule_mode::global: the first maximum of Theta over the whole path. NOT lossless on the
///   current step's confidences (the Appendix-A counterexample); it is safe only on information
///   from earlier steps, which is how async_top_k_scheduler uses it (spec 8.5).
/// - schedule_top_k: admit the first k candidates of the path.
///
/// The path is produced by selection, not by merging the R lists: the schedule outcome depends
/// only on the sorted sequence of candidate values (tau adds them in path order, and equal values
/// add alike whatever their (j, r)) and on how many candidates m are admitted. The values are
/// distributed into buckets of decreasing value by a counting sort on the high bits of their bit
/// patterns (which order positive doubles like their values); the walk sorts a bucket when it
/// reaches it, so only the visited prefix of the path is ever sorted. The admitted set is then
/// the first m candidates of the key order: every candidate with a above the m-th value t, plus
/// the first ties (a == t) in (j ascending, r ascending) order. The result is identical, bit for
/// bit, to a full sort of all candidates by the key (and to the max-heap merge this replaced).
///
/// Arithmetic contract (shared with the CUDA version, which must match bit for bit): everything is
/// double; a_{r,j} = a_{r,j-1} * c_{r,j} left to right from a_{r,0} = 1 (cumulative_products);
/// tau starts at double(R) and adds the admitted a's one at a time in path order; SPS(B) comes
/// from sps_lookup; Theta = tau * SPS(B) (prefix_throughput). Multiplications and additions go
/// through detail::dmul / detail::dadd, which never fuse into an FMA on the device nor on the host,
/// whatever the consumer's -ffp-contract and -march (tests/portability/flags_probe.cpp).

#include <specdec/config.hpp>

#include <specdec/core/math.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/sched/detail/bucketed_values.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <span>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace sched {

namespace detail {

// The double arithmetic of the shared rules (core/math.hpp: never fused into FMAs on the device).
using ::specdec::detail::dadd;
using ::specdec::detail::ddiv;
using ::specdec::detail::dmul;
using ::specdec::detail::dsub;

} // namespace detail

// ---------------------------------------------------------------------------------------------
// Shared per-candidate arithmetic (host and device)
// ---------------------------------------------------------------------------------------------

/// @brief The schedule order: true when candidate (a1, j1, r1) comes strictly before
///        (a2, j2, r2) under the key (-a, j ascending, r ascending).
///
/// Larger survival probability first; on equal a the shorter prefix first (so that c = 1, which
/// repeats a value, still yields prefixes), then the lower request index. NaN is never passed
/// (inputs are validated).
/// @par Complexity
/// O(1).
/// @param[in] a1 survival probability a of the first candidate
/// @param[in] j1 its prefix length j (1-based draft position)
/// @param[in] r1 its request index
/// @param[in] a2 survival probability of the second candidate
/// @param[in] j2 its prefix length
/// @param[in] r2 its request index
/// @return true when the first candidate is visited before the second
/// @hd
SPECDEC_HD inline bool
schedule_before(double a1, index_t j1, index_t r1, double a2, index_t j2, index_t r2) noexcept {
  // Branch-free form (sorts compare unpredictable values): equal to the lexicographic test.
  return (a1 > a2) | ((a1 == a2) & ((j1 < j2) | ((j1 == j2) & (r1 < r2))));
}

/// @brief Prefix survival probabilities of one request: a[k] = a[k-1] * c[k] for k = 0 .. n-1,
///        left to right from 1 (so a[0] = c[0] exactly), in double through detail::dmul.
///
/// The candidates of the request are positions j = 1 .. m with a[j-1] > 0; because every
/// c <= 1, a is non-increasing and they form a prefix.
/// @pre c[0..n) in [0, 1]; a has room for n values (a may alias c).
/// @par Complexity
/// O(n).
/// @param[in] c the request's calibrated conditionals, n values
/// @param[in] n number of draft positions, >= 0
/// @param[out] a the survival probabilities, n values
/// @return m, the number of candidates (positions with a > 0)
/// @hd
SPECDEC_HD inline index_t cumulative_products(const double* c, index_t n, double* a) noexcept {
  double run = 1.0;
  index_t m = 0;
  for (index_t k = 0; k < n; ++k) {
    run = detail::dmul(run, c[k]);
    a[k] = run;
    if (run > 0.0)
      m = k + 1;
  }
  return m;
}

/// @brief SPS at batch b on the segment that starts at point i of a table (the interpolation
///        formula shared by every lookup): sps[i] when b == batch[i] or i is the last point,
///        else sps[i] + (sps[i+1] - sps[i]) * ((b - batch[i]) / (batch[i+1] - batch[i])), each
///        operation rounded once (detail:: helpers, no FMA).
/// @pre 0 <= i < n, batch strictly increasing, batch[i] <= b, and b < batch[i+1] when i < n - 1.
/// @par Complexity
/// O(1).
/// @param[in] batch the table's batch sizes, n values
/// @param[in] sps the table's steps per second, n values
/// @param[in] n number of points
/// @param[in] i the segment's first point
/// @param[in] b the batch size
/// @return SPS(b)
/// @hd
SPECDEC_HD inline double
sps_segment(const index_t* batch, const double* sps, index_t n, index_t i, index_t b) noexcept {
  if (b == batch[i] || i + 1 >= n)
    return sps[i];
  const double t =
      detail::ddiv(static_cast<double>(b - batch[i]), static_cast<double>(batch[i + 1] - batch[i]));
  return detail::dadd(sps[i], detail::dmul(detail::dsub(sps[i + 1], sps[i]), t));
}

/// @brief Steps per second at batch b from a table of n points (batch[i], sps[i]) with strictly
///        increasing batch: linear interpolation between points (sps_segment), sps[0] below the
///        first point, 0 past the last one (spec 8.1), sps[i] exactly at a point.
/// @pre batch strictly increasing, n >= 0 (n = 0 gives 0).
/// @par Complexity
/// O(log n).
/// @param[in] batch the table's batch sizes, n values
/// @param[in] sps the table's steps per second, n values
/// @param[in] n number of points
/// @param[in] b the batch size to look up
/// @return SPS(b)
/// @hd
SPECDEC_HD inline double
sps_lookup(const index_t* batch, const double* sps, index_t n, index_t b) noexcept {
  if (n <= 0 || b > batch[n - 1])
    return 0.0;
  if (b <= batch[0])
    return sps[0];
  index_t lo = 0; // invariant: batch[lo] <= b < batch[hi], or b == batch[hi] with hi = n - 1
  index_t hi = n - 1;
  while (hi - lo > 1) {
    const index_t mid = lo + (hi - lo) / 2;
    if (batch[mid] <= b)
      lo = mid;
    else
      hi = mid;
  }
  return b >= batch[hi] ? sps[hi] : sps_segment(batch, sps, n, lo, b);
}

/// @brief sps_lookup for a non-decreasing sequence of batch sizes (the greedy path adds one
///        token at a time): the same value, with the segment found by advancing `cursor`.
/// @pre batch strictly increasing; *cursor in [0, n) (start at 0) and batch[*cursor] <= b or
///      *cursor == 0; b not below the b of the previous call with the same cursor.
/// @par Complexity
/// O(1) amortised over a path (the cursor only moves forward).
/// @param[in] batch the table's batch sizes, n values
/// @param[in] sps the table's steps per second, n values
/// @param[in] n number of points
/// @param[in] b the batch size to look up
/// @param[in,out] cursor the segment of the previous lookup
/// @return SPS(b), bit-identical to sps_lookup(batch, sps, n, b)
/// @hd
SPECDEC_HD inline double sps_lookup_monotone(
    const index_t* batch, const double* sps, index_t n, index_t b, index_t* cursor) noexcept {
  if (n <= 0 || b > batch[n - 1])
    return 0.0;
  if (b <= batch[0])
    return sps[0];
  index_t i = *cursor;
  while (i + 1 < n && batch[i + 1] <= b)
    ++i;
  *cursor = i;
  return sps_segment(batch, sps, n, i, b);
}

/// @brief Throughput of a prefix of the path: Theta = expected_tokens * sps, rounded once.
/// @par Complexity
/// O(1).
/// @param[in] expected_tokens tau of the prefix (double(R) plus the admitted a's, in path order)
/// @param[in] sps SPS at the prefix's batch size
/// @return Theta
/// @hd
SPECDEC_HD inline double prefix_throughput(double expected_tokens, double sps) noexcept {
  return detail::dmul(expected_tokens, sps);
}

/// @brief Adds one admitted candidate's survival probability to tau (one rounding).
/// @par Complexity
/// O(1).
/// @param[in] expected_tokens tau so far
/// @param[in] a the admitted candidate's a
/// @return tau + a
/// @hd
SPECDEC_HD inline double add_expected_tokens(double expected_tokens, double a) noexcept {
  return detail::dadd(expected_tokens, a);
}

// ---------------------------------------------------------------------------------------------
// Step curve
// ---------------------------------------------------------------------------------------------

/// @brief One profiled point of the step curve: the target runs `steps_per_second` forward steps
///        per second on a verification batch of `batch` tokens.
struct sps_point {
  index_t batch = 0;             ///< tokens in the verification batch, >= 1
  double steps_per_second = 0.0; ///< forward steps per second at that batch, finite and > 0
};

/// @brief The profiled step curve SPS(B) (spec 8.1): points with strictly increasing batch >= 1
///        and finite positive values; at(B) interpolates linearly, returns the first value below
///        the first point and 0 past the last point (which stops admission).
///
/// Construction never fails: an invalid point set yields a table whose validate() reports
/// errc::invalid_value (empty, batch < 1, batches not strictly increasing (unsorted or duplicate),
/// a value that is NaN, infinite, zero or negative). The schedulers refuse an invalid table.
class sps_table {
public:
  /// @brief An empty table (invalid: validate() reports errc::invalid_value). O(1).
  sps_table() = default;

  /// @brief A table from points, in the given order (they are not sorted).
  /// @par Complexity
  /// O(n).
  /// @param[in] points the profiled points
  explicit sps_table(std::span<const sps_point> points) {
    batch_.reserve(points.size());
    sps_.reserve(points.size());
    for (const sps_point& p : points) {
      batch_.push_back(p.batch);
      sps_.push_back(p.steps_per_second);
    }
    valid_ = check();
  }

  /// @brief A table from a braced list of points, e.g. `sps_table{{1, 1.0}, {2, 0.5}}`.
  /// @par Complexity
  /// O(n).
  /// @param[in] points the profiled points
  sps_table(std::initializer_list<sps_point> points)
      : sps_table(std::span<const sps_point>(points.begin(), points.size())) {}

  /// @brief ok when the points satisfy the class contract, else errc::invalid_value. O(1).
  /// @return the cached validation status
  [[nodiscard]] status validate() const noexcept {
    return valid_ ? status{} : status{errc::invalid_value};
  }

  /// @brief SPS(b) (sps_lookup on the points); 0 for an empty table.
  /// @par Complexity
  /// O(log n).
  /// @param[in] b batch size in tokens
  /// @return steps per second at b
  [[nodiscard]] double at(index_t b) const noexcept {
    return sps_lookup(batch_.data(), sps_.data(), size(), b);
  }

  /// @brief Number of points. O(1).
  /// @return the point count
  [[nodiscard]] index_t size() const noexcept {
    return static_cast<index_t>(batch_.size());
  }
  /// @brief True without points. O(1).
  /// @return size() == 0
  [[nodiscard]] bool empty() const noexcept {
    return batch_.empty();
  }
  /// @brief The largest profiled batch (at() is 0 past it); 0 when empty. O(1).
  /// @return the last point's batch
  [[nodiscard]] index_t max_batch() const noexcept {
    return batch_.empty() ? 0 : batch_.back();
  }
  /// @brief The points' batch sizes (for copying the table to a device). O(1).
  /// @return size() values
  [[nodiscard]] std::span<const index_t> batches() const noexcept {
    return batch_;
  }
  /// @brief The points' steps per second, parallel to batches(). O(1).
  /// @return size() values
  [[nodiscard]] std::span<const double> values() const noexcept {
    return sps_;
  }

private:
  [[nodiscard]] bool check() const noexcept {
    if (batch_.empty())
      return false;
    for (std::size_t i = 0; i < batch_.size(); ++i) {
      if (batch_[i] < 1 || (i > 0 && !(batch_[i] > batch_[i - 1])))
        return false;
      const double v = sps_[i];
      if (!(v > 0.0) || !(v <= std::numeric_limits<double>::max()))
        return false;
    }
    return true;
  }

  std::vector<index_t> batch_;
  std::vector<double> sps_;
  bool valid_ = false;
};

// ---------------------------------------------------------------------------------------------
// Scheduling
// ---------------------------------------------------------------------------------------------

/// @brief Where schedule_prefixes stops along the greedy path.
enum class schedule_mode : std::uint8_t {
  early_stop, ///< Algorithm 1: stop at the first candidate that does not raise Theta (lossless)
  global      ///< first maximum of Theta over the whole path (only for past-step information)
};

/// @brief What a schedule chose.
struct schedule_result {
  double throughput = 0.0;      ///< Theta = expected_tokens * SPS(batch) of the chosen lengths
  double expected_tokens = 0.0; ///< tau = R + the admitted a's (path order)
  index_t batch = 0;            ///< B = R + admitted
  index_t admitted = 0;         ///< draft tokens admitted, sum of the lengths
};

/// @brief One point of the greedy path, for the optional trace of schedule_prefixes.
///
/// The first entry is the empty schedule (request = -1, position = 0, batch = R, tau = R); then one
/// entry per candidate evaluated, in path order, including the one that triggered the early stop.
struct schedule_step {
  index_t request = -1;         ///< r of the candidate (0-based), -1 for the empty schedule
  index_t position = 0;         ///< j of the candidate (1-based prefix length), 0 for the start
  double a = 0.0;               ///< the candidate's survival probability (0 at the start)
  index_t batch = 0;            ///< B after admitting it
  double expected_tokens = 0.0; ///< tau after admitting it
  double throughput = 0.0;      ///< Theta after admitting it
};

/// @brief Reusable scheduler: the functions of this header with scratch memory kept between calls
///        (no allocation once the scratch has grown to the largest R and N = c.size() seen,
///        except the optional trace).
///
/// Input layout (all entry points): `c` holds the calibrated conditionals of every request
/// back to back; `offsets` has R + 1 entries and request r owns c[offsets[r] .. offsets[r+1]),
/// so g_r = offsets[r+1] - offsets[r] may differ between requests (0 allowed). `lengths` receives
/// R prefix lengths l_r in [0, g_r].
///
/// Errors, checked before anything is scheduled (on error every element of `lengths` is set to 0
/// and *result to {}): errc::shape_mismatch when offsets is empty, offsets[0] != 0, offsets
/// decrease, offsets.back() != c.size() or lengths.size() != R; errc::invalid_value when a c is
/// NaN or outside [0, 1] or the sps_table is invalid; errc::invalid_argument for k < 0 (top-K);
/// errc::overflow when R + c.size() does not fit index_t.
class prefix_scheduler {
public:
  /// @brief Algorithm 1 (schedule_mode::early_stop) or the global search along the greedy path.
  ///
  /// early_stop: start with l = 0, tau = R, B = R, best = R * SPS(R); visit candidates in key
  /// order; admitting (r, j) sets l_r = j, B += 1, tau += a; if Theta > best (strict) it becomes
  /// the best, otherwise stop (the candidate is not admitted). global: visit the whole path
  /// (stopping only once B passes table.max_batch(), after which SPS = 0 can never win) and
  /// return the first point with the maximal Theta. Candidates with a = 0 are never visited.
  /// Without a trace the global walk also stops where an upper bound of Theta over the rest of
  /// the path (from counts of the remaining values and the table) falls below the best: the
  /// outputs are those of the whole walk; a requested trace lists the whole path.
  /// @par Complexity
  /// O(N + R) for N = c.size() (validation, survival probabilities, bucketing, selection of the
  /// admitted set) plus the sorting of the buckets holding the K visited candidates: O(K)
  /// expected when the values are spread out, O(N log N) at worst (values clustered in a few
  /// buckets). With a trace: O(N log N) (a full sort of the candidates by the key).
  /// @param[in] c calibrated conditionals, ragged by offsets
  /// @param[in] offsets R + 1 non-decreasing offsets into c
  /// @param[in] table the step curve (must be valid)
  /// @param[out] lengths R prefix lengths
  /// @param[out] result what was chosen (optional)
  /// @param[in] mode early_stop (default, lossless) or global
  /// @param[out] trace when non-null, cleared and filled with the visited path (debugging)
  /// @return ok or an error (see the class comment)
  [[nodiscard]] status schedule(std::span<const double> c,
                                std::span<const index_t> offsets,
                                const sps_table& table,
                                std::span<index_t> lengths,
                                schedule_result* result = nullptr,
                                schedule_mode mode = schedule_mode::early_stop,
                                std::vector<schedule_step>* trace = nullptr) {
    const bool global = mode == schedule_mode::global;
    const bool prune = global && trace == nullptr;
    std::size_t n = 0;
    if (const status s = check_and_gather(c, offsets, lengths, &table, trace != nullptr, n);
        !s.ok())
      return fail(s, lengths, result);
    const index_t r_count = static_cast<index_t>(lengths.size());
    const std::span<const index_t> tb = table.batches();
    const std::span<const double> tv = table.values();
    const index_t tn = table.size();
    const index_t max_b = table.max_batch();
    std::size_t group = 0;
    if (prune)
      group = path_bounds(table, r_count, n);

    index_t batch = r_count;
    double tau = static_cast<double>(r_count);
    index_t cursor = 0;
    double best =
        prefix_throughput(tau, sps_lookup_monotone(tb.data(), tv.data(), tn, batch, &cursor));
    double best_tau = tau;
    index_t best_count = 0; // candidates admitted at the best point
    if (trace != nullptr) {
      trace->clear();
      trace->push_back(schedule_step{-1, 0, 0.0, batch, tau, best});
    }
    bool stop = n == 0;
    for (std::size_t b = 0; !stop && b < values_.buckets(); ++b) {
      if (prune && b % group == 0 && bounds_[b / group] < best)
        break; // no later point of the path can exceed best
      const std::size_t last = values_.end(b);
      if (values_.begin(b) == last)
        continue;
      values_.sort_through(b);
      for (std::size_t i = values_.begin(b); i < last; ++i) {
        if (global && batch >= max_b) {
          stop = true; // every further point has SPS = 0 and cannot beat best >= 0
          break;
        }
        const double a = values_[i];
        ++batch;
        tau = add_expected_tokens(tau, a);
        const double theta =
            prefix_throughput(tau, sps_lookup_monotone(tb.data(), tv.data(), tn, batch, &cursor));
        if (trace != nullptr)
          trace->push_back(schedule_step{records_[i].r, records_[i].j, a, batch, tau, theta});
        if (theta > best) {
          best = theta;
          best_tau = tau;
          best_count = static_cast<index_t>(i) + 1;
        } else if (!global) {
          stop = true; // early stop: the candidate is not admitted
          break;
        }
      }
    }
    assign_lengths(static_cast<std::size_t>(best_count), lengths);
    if (result != nullptr)
      *result = schedule_result{best, best_tau, r_count + best_count, best_count};
    return status{};
  }

  /// @brief Top-K admission: the first min(k, number of candidates) candidates of the greedy
  ///        path (candidates with a = 0 excluded); l_r = the largest admitted j of request r.
  /// @par Complexity
  /// O(N + R) expected when the values are spread out: a selection of the k-th value (only the
  /// values of its bucket are partially sorted), plus, when expected_tokens is requested, the
  /// sorting of the buckets before it (tau adds the a's in path order); O(N log N) at worst.
  /// @param[in] c calibrated conditionals, ragged by offsets
  /// @param[in] offsets R + 1 non-decreasing offsets into c
  /// @param[in] k draft tokens to admit, >= 0
  /// @param[out] lengths R prefix lengths
  /// @param[out] expected_tokens when non-null, tau of the admitted set (R + their a's in path
  ///             order)
  /// @return ok or an error (see the class comment)
  [[nodiscard]] status top_k(std::span<const double> c,
                             std::span<const index_t> offsets,
                             index_t k,
                             std::span<index_t> lengths,
                             double* expected_tokens = nullptr) {
    std::size_t n = 0;
    if (const status s = check_and_gather(c, offsets, lengths, nullptr, false, n); !s.ok())
      return fail(s, lengths, nullptr);
    if (k < 0)
      return fail(status{errc::invalid_argument}, lengths, nullptr);
    const std::size_t m = std::min(static_cast<std::size_t>(k), n);
    if (expected_tokens != nullptr) {
      double tau = static_cast<double>(lengths.size());
      if (m > 0) // one pass places every bucket up to the one of rank m - 1
        values_.place(values_.bucket_of_rank(m - 1) + 1);
      for (std::size_t b = 0; b < values_.buckets() && values_.begin(b) < m; ++b) {
        values_.sort_through(b);
        const std::size_t last = std::min(values_.end(b), m);
        for (std::size_t i = values_.begin(b); i < last; ++i)
          tau = add_expected_tokens(tau, values_[i]);
      }
      *expected_tokens = tau;
    }
    assign_lengths(m, lengths);
    return status{};
  }

private:
  // One candidate of the optional trace: survival probability a, position j, request r.
  struct record {
    double a;
    index_t j;
    index_t r;
  };
  // One candidate whose a equals the selection threshold.
  struct tie {
    index_t j;
    index_t r;
  };

  // Validates the input (the class comment's errors, in that order) and, when it is valid,
  // gathers the candidates (gather); n receives their number.
  status check_and_gather(std::span<const double> c,
                          std::span<const index_t> offsets,
                          std::span<index_t> lengths,
                          const sps_table* table,
                          bool with_records,
                          std::size_t& n) {
    if (offsets.empty() || offsets.front() != 0)
      return status{errc::shape_mismatch};
    constexpr auto max_index = static_cast<std::size_t>(std::numeric_limits<index_t>::max());
    if (c.size() > max_index || offsets.size() - 1 > max_index - c.size())
      return status{errc::overflow};
    for (std::size_t r = 1; r < offsets.size(); ++r)
      if (offsets[r] < offsets[r - 1])
        return status{errc::shape_mismatch};
    if (offsets.back() != static_cast<index_t>(c.size()) || lengths.size() != offsets.size() - 1)
      return status{errc::shape_mismatch};
    if (!gather(c, offsets, n))
      return status{errc::invalid_value};
    if (table != nullptr)
      if (const status s = table->validate(); !s.ok())
        return s;
    if (with_records)
      sort_records(n);
    else
      values_.prepare(candidates_.data(), n, lo_, hi_);
    return status{};
  }

  static status fail(status s, std::span<index_t> lengths, schedule_result* result) noexcept {
    std::fill(lengths.begin(), lengths.end(), index_t{0});
    if (result != nullptr)
      *result = schedule_result{};
    return s;
  }

  // a_{r,j} > 0 of every request back to back into candidates_ (request r's at
  // candidates_[first_[r] .. first_[r + 1]), in j order), their smallest and largest bit patterns
  // into lo_ and hi_, their number into n. Returns false when a c is NaN or outside [0, 1] (the
  // candidates are then meaningless and must not be used).
  bool gather(std::span<const double> c, std::span<const index_t> offsets, std::size_t& n) {
    const std::size_t r_count = offsets.size() - 1;
    candidates_.resize(c.size());
    request_.resize(c.size());
    first_.resize(r_count + 1);
    n = 0;
    lo_ = ~std::uint64_t{0};
    hi_ = 0;
    first_[0] = 0;
    // c in [0, 1] (-0.0 included, NaN excluded) <=> its bit pattern is at most 1.0's or is -0.0's:
    // accumulated without branches while the products are computed, checked at the end.
    std::uint64_t bad = 0;
    const auto check_c = [&bad](double x) {
      const auto u = std::bit_cast<std::uint64_t>(x);
      bad |= static_cast<std::uint64_t>(u > 0x3FF0000000000000u)
             & static_cast<std::uint64_t>(u != 0x8000000000000000u);
    };
    // Records request r's m candidates, written at candidates_[n ..).
    const auto keep = [&](std::size_t r, std::size_t m) {
      if (m > 0) { // a is non-increasing: the first is the request's largest, the m-th its least
        hi_ = std::max(hi_, std::bit_cast<std::uint64_t>(candidates_[n]));
        lo_ = std::min(lo_, std::bit_cast<std::uint64_t>(candidates_[n + m - 1]));
      }
      for (std::size_t k = 0; k < m; ++k)
        request_[n + k] = r;
      n += m;
      first_[r + 1] = n;
    };
    for (std::size_t r = 0; r < r_count;) {
      const auto o = static_cast<std::size_t>(offsets[r]);
      const auto g = static_cast<std::size_t>(offsets[r + 1]) - o;
      if (r + lanes <= r_count && g <= max_lane_len && same_length(offsets, r, g)) {
        // `lanes` requests of g drafts each: their products (cumulative_products, bit for bit)
        // interleaved so that the chains of multiplications overlap, written as if every a were
        // positive (request r + i at n + i g), then moved down past a request with zeros.
        double* out = candidates_.data() + n;
        double run[lanes];
        std::size_t m[lanes];
        for (std::size_t i = 0; i < lanes; ++i) {
          run[i] = 1.0;
          m[i] = 0;
        }
        for (std::size_t k = 0; k < g; ++k)
          for (std::size_t i = 0; i < lanes; ++i) {
            check_c(c[o + i * g + k]);
            run[i] = detail::dmul(run[i], c[o + i * g + k]);
            out[i * g + k] = run[i];
            m[i] = run[i] > 0.0 ? k + 1 : m[i];
          }
        for (std::size_t i = 0; i < lanes; ++i) {
          const double* src = out + i * g;
          double* dst = candidates_.data() + n; // dst <= src
          if (dst != src)
            std::copy_n(src, m[i], dst);
          keep(r + i, m[i]);
        }
        r += lanes;
        continue;
      }
      for (std::size_t k = o; k < o + g; ++k)
        check_c(c[k]);
      // Writes g values; the zeros past the m candidates are overwritten by the next request.
      keep(r,
           static_cast<std::size_t>(
               cumulative_products(c.data() + o, static_cast<index_t>(g), candidates_.data() + n)));
      ++r;
    }
    return bad == 0;
  }

  // True when requests r .. r + lanes - 1 all have g drafts.
  static bool same_length(std::span<const index_t> offsets, std::size_t r, std::size_t g) noexcept {
    bool same = true;
    for (std::size_t i = 1; i <= lanes; ++i)
      same &= static_cast<std::size_t>(offsets[r + i] - offsets[r + i - 1]) == g;
    return same;
  }

  static constexpr std::size_t lanes = 4;         // requests whose products gather interleaves
  static constexpr std::size_t max_lane_len = 16; // for requests of at most this many drafts

  // Trace: the n candidates as records fully sorted by the key, and values_ over their values.
  void sort_records(std::size_t n) {
    records_.clear();
    for (std::size_t r = 0; r + 1 < first_.size(); ++r)
      for (std::size_t k = first_[r]; k < first_[r + 1]; ++k)
        records_.push_back(record{
            candidates_[k], static_cast<index_t>(k - first_[r]) + 1, static_cast<index_t>(r)});
    std::sort(records_.begin(), records_.end(), [](const record& x, const record& y) {
      return schedule_before(x.a, x.j, x.r, y.a, y.j, y.r);
    });
    sorted_.resize(n);
    for (std::size_t i = 0; i < n; ++i)
      sorted_[i] = records_[i].a;
    values_.assign_sorted(sorted_.data(), n);
  }

  // Global search: bounds_[g] >= every Theta the walk can compute at a point inside bucket group
  // g or after it (groups of `group` consecutive buckets, about 1024 groups); returns `group`.
  // Inside group g, tau <= T_{g+1} = R + sum over the buckets up to the group's last of (count x
  // the bucket's largest possible value), and SPS <= the largest table value over the group's
  // batch range (interpolation between two points stays between them); the margin covers every
  // rounding on both sides (tau, T and the interpolation are each within n + 4 units in the last
  // place of the exact values). A NaN bound would disable the stop, never hide a group.
  // Also places the buckets that the walk will visit (up to the first group whose bound falls
  // below an estimate of the best Theta, from the group ends; only a hint for speed).
  std::size_t path_bounds(const sps_table& table, index_t r_count, std::size_t n) {
    const std::size_t nb = values_.buckets();
    const std::size_t group = std::max<std::size_t>(1, nb / 1024);
    const std::size_t groups = (nb + group - 1) / group;
    bounds_.assign(groups, 0.0);
    const std::span<const index_t> tb = table.batches();
    const std::span<const double> tv = table.values();
    const index_t tn = table.size();
    const index_t max_b = table.max_batch();
    double t_end = static_cast<double>(r_count);
    double estimate = 0.0; // max over group ends of T * SPS, about the Theta there
    index_t p = 0;         // first table point not below the current group's first batch
    index_t lo_cursor = 0;
    index_t hi_cursor = 0;
    for (std::size_t g = 0; g < groups; ++g) {
      const std::size_t fb = g * group;
      const std::size_t lb = std::min(nb, fb + group);
      for (std::size_t b = fb; b < lb; ++b)
        t_end += static_cast<double>(values_.end(b) - values_.begin(b)) * values_.bound(b);
      const index_t lo = r_count + static_cast<index_t>(values_.begin(fb)) + 1;
      const index_t hi = std::min(r_count + static_cast<index_t>(values_.end(lb - 1)), max_b);
      if (lo > hi)
        continue; // no point of the walk in this group
      const double sps_hi = sps_lookup_monotone(tb.data(), tv.data(), tn, hi, &hi_cursor);
      double sps_max =
          std::max(sps_lookup_monotone(tb.data(), tv.data(), tn, lo, &lo_cursor), sps_hi);
      while (p < tn && tb[static_cast<std::size_t>(p)] < lo)
        ++p;
      for (index_t q = p; q < tn && tb[static_cast<std::size_t>(q)] <= hi; ++q)
        sps_max = std::max(sps_max, tv[static_cast<std::size_t>(q)]);
      bounds_[g] = t_end * sps_max;
      estimate = std::max(estimate, t_end * sps_hi);
    }
    const double margin = 1.0 + static_cast<double>(n + 16) * 0x1p-48;
    double suffix = 0.0;
    std::size_t reach = groups; // groups the walk is expected to enter
    for (std::size_t g = groups; g-- > 0;) {
      const double bound = bounds_[g] * margin;
      if (!(bound <= suffix)) // a NaN propagates
        suffix = bound;
      bounds_[g] = suffix;
      if (suffix < estimate * (1.0 - 1e-9))
        reach = g;
    }
    values_.place(reach * group);
    return group;
  }

  // lengths = the prefix lengths of the first m candidates of the key order: with t the m-th
  // largest value, request r keeps its candidates with a > t, and the ties a == t (consecutive
  // positions of each request) are admitted in (j, r) order until m are admitted.
  void assign_lengths(std::size_t m, std::span<index_t> lengths) {
    std::fill(lengths.begin(), lengths.end(), index_t{0});
    if (m == 0)
      return;
    const double t = values_.value_at_rank(m - 1);
    const std::size_t n = first_.back();
    const double* a = candidates_.data();
    pick_.resize(n);
    std::size_t* pick = pick_.data();
    std::size_t picked = 0;
    for (std::size_t k = 0; k < n; ++k) { // branch-free: list the candidates with a >= t
      pick[picked] = k;
      picked += static_cast<std::size_t>(a[k] >= t);
    }
    ties_.clear();
    for (std::size_t i = 0; i < picked; ++i) {
      const std::size_t k = pick[i];
      const std::size_t r = request_[k];
      if (a[k] > t)
        ++lengths[r];
      else
        ties_.push_back(tie{static_cast<index_t>(k - first_[r]) + 1, static_cast<index_t>(r)});
    }
    const std::size_t need = m - (picked - ties_.size()); // 1 .. ties_.size(): rank m - 1 ties
    if (need < ties_.size())
      std::nth_element(
          ties_.begin(),
          ties_.begin() + static_cast<std::ptrdiff_t>(need),
          ties_.end(),
          [](const tie& x, const tie& y) { return x.j < y.j || (x.j == y.j && x.r < y.r); });
    for (std::size_t i = 0; i < need; ++i)
      ++lengths[static_cast<std::size_t>(ties_[i].r)];
  }

  std::vector<double> candidates_;   // the positive a's, request by request
  std::vector<std::size_t> first_;   // [R + 1] request r's candidates start at first_[r]
  std::vector<std::size_t> request_; // the request of each candidate
  std::vector<std::size_t> pick_;    // assign_lengths scratch
  std::uint64_t lo_ = 0;             // bit patterns of the smallest and largest candidate
  std::uint64_t hi_ = 0;
  std::vector<double> sorted_;     // trace only: the values in path order
  detail::bucketed_values values_; // the candidates' values in path order
  std::vector<double> bounds_;     // global search: suffix bounds of Theta per bucket group
  std::vector<tie> ties_;
  std::vector<record> records_; // trace only
};

/// @brief Chooses per-request verification lengths by Algorithm 1 (default) or the global search;
///        see prefix_scheduler::schedule for the rule, errors and complexity.
///
/// Allocates O(N + R) scratch; use a prefix_scheduler object to reuse it.
/// @param[in] c calibrated conditionals, ragged by offsets
/// @param[in] offsets R + 1 non-decreasing offsets into c
/// @param[in] table the step curve (must be valid)
/// @param[out] lengths R prefix lengths
/// @param[out] result what was chosen (optional)
/// @param[in] mode early_stop (default, lossless) or global
/// @param[out] trace when non-null, cleared and filled with the visited path (debugging)
/// @return ok or an error (see prefix_scheduler)
[[nodiscard]] inline status schedule_prefixes(std::span<const double> c,
                                              std::span<const index_t> offsets,
                                              const sps_table& table,
                                              std::span<index_t> lengths,
                                              schedule_result* result = nullptr,
                                              schedule_mode mode = schedule_mode::early_stop,
                                              std::vector<schedule_step>* trace = nullptr) {
  prefix_scheduler s;
  return s.schedule(c, offsets, table, lengths, result, mode, trace);
}

/// @brief Top-K admission along the greedy path; see prefix_scheduler::top_k.
///
/// Allocates O(N + R) scratch; use a prefix_scheduler object to reuse it.
/// @param[in] c calibrated conditionals, ragged by offsets
/// @param[in] offsets R + 1 non-decreasing offsets into c
/// @param[in] k draft tokens to admit, >= 0
/// @param[out] lengths R prefix lengths
/// @return ok or an error (see prefix_scheduler)
[[nodiscard]] inline status schedule_top_k(std::span<const double> c,
                                           std::span<const index_t> offsets,
                                           index_t k,
                                           std::span<index_t> lengths) {
  prefix_scheduler s;
  return s.top_k(c, offsets, k, lengths);
}

/// @brief The production variant of spec 8.5: top-K admission whose budget K comes from the
///        confidences of two calls earlier.
///
/// Every call t runs the global search (schedule_mode::global, no early stop) on its own
/// confidences and records K_t = the draft tokens admitted at the Theta-maximising point
/// (B* - R_t) in capacity_history(). The lengths of call t are then:
/// - t >= 2: top-K on the current confidences with K = K_{t-2}, clamped to the current candidates
///   with a > 0 (lossless: K depends only on step t-2, and top-K on current scores is
///   non-anticipating, spec 8.5);
/// - t < 2 (no history yet): Algorithm 1 (early_stop) on the current confidences.
///
/// Choices where the paper is silent: K counts draft tokens (not the total batch B), and it is used
/// unchanged when requests joined or left since step t-2. A call that fails validation records
/// nothing and does not advance t.
class async_top_k_scheduler {
public:
  /// @brief Schedules call t (see the class comment) and records K_t.
  /// @par Complexity
  /// Two or three prefix_scheduler calls (see their complexity); O(N + R) memory.
  /// @param[in] c calibrated conditionals of the current step, ragged by offsets
  /// @param[in] offsets R + 1 non-decreasing offsets into c
  /// @param[in] table the step curve (must be valid)
  /// @param[out] lengths R prefix lengths
  /// @param[out] result when non-null: throughput, tau, batch and admitted of the lengths chosen
  /// @return ok or an error (see prefix_scheduler); on error nothing is recorded
  [[nodiscard]] status schedule(std::span<const double> c,
                                std::span<const index_t> offsets,
                                const sps_table& table,
                                std::span<index_t> lengths,
                                schedule_result* result = nullptr) {
    schedule_result global{};
    if (const status s = impl_.schedule(c, offsets, table, lengths, &global, schedule_mode::global);
        !s.ok()) {
      if (result != nullptr)
        *result = schedule_result{};
      return s;
    }
    const std::size_t t = history_.size();
    history_.push_back(global.admitted);
    if (t < 2)
      return impl_.schedule(c, offsets, table, lengths, result, schedule_mode::early_stop);
    double tau = 0.0;
    if (const status s = impl_.top_k(c, offsets, history_[t - 2], lengths, &tau); !s.ok())
      return s;
    if (result != nullptr) {
      const index_t r_count = static_cast<index_t>(lengths.size());
      index_t admitted = 0;
      for (const index_t l : lengths)
        admitted += l;
      const index_t batch = r_count + admitted;
      *result = schedule_result{prefix_throughput(tau, table.at(batch)), tau, batch, admitted};
    }
    return status{};
  }

  /// @brief K_t recorded by every successful call so far (call t uses K_{t-2}). O(1).
  /// @return one capacity per call, oldest first
  [[nodiscard]] std::span<const index_t> capacity_history() const noexcept {
    return history_;
  }

  /// @brief Forgets the history: the next call is call 0 again. O(1).
  void reset() noexcept {
    history_.clear();
  }

private:
  prefix_scheduler impl_;
  std::vector<index_t> history_;
};

} // namespace sched

SPECDEC_NAMESPACE_END
