// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Internals of sched::prefix_scheduler (host only): candidate values in buckets of
/// decreasing value, sorted lazily as a reader walks them.

#include <specdec/config.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace sched {

namespace detail {

// Maps a positive finite double to its bucket: (hi - bits(v)) >> shift, non-increasing in v (for
// positive doubles the bit pattern as an unsigned integer orders like the value).
struct bucket_map {
  std::uint64_t hi = 0; // bit pattern of the largest value
  int shift = 63;       // 63: one bucket (hi - bits(v) < 2^63 for positive values)

  [[nodiscard]] std::size_t operator()(double v) const noexcept {
    return static_cast<std::size_t>((hi - std::bit_cast<std::uint64_t>(v)) >> shift);
  }
};

// Host-only scratch of prefix_scheduler: n positive finite doubles, to be read in decreasing
// order. prepare() assigns each value to one of 2^k buckets of decreasing value (bucket_map over
// the range of patterns present, about 8 values a bucket) and counts the buckets in one pass. A
// bucket is copied into place (one pass for a known limit, or passes that at least double the
// ranks placed, so that a walk that stops early copies little) and sorted only when a reader
// reaches it: a branch-free rank sort when small, else one more counting sort on the bucket's own
// range, recursively. Equal values are interchangeable: only values are sorted.
class bucketed_values {
public:
  static constexpr std::size_t one_bucket_below = 256; // one bucket below this many values
  static constexpr std::size_t small_sort_upto = 16;   // rank sort up to this many values

  // Buckets values[0 .. n) (positive finite); lo and hi are the smallest and largest bit patterns.
  void prepare(const double* values, std::size_t n, std::uint64_t lo, std::uint64_t hi) {
    values_ = values;
    n_ = n;
    scattered_ = 0;
    sorted_ = 0;
    out_.resize(n + 1); // + a spare slot for place()
    int log_buckets = 0;
    map_ = bucket_map{hi, 63};
    if (n >= one_bucket_below && lo < hi) {
      log_buckets = std::min(static_cast<int>(std::bit_width(n)) - 3, 20); // ~8 values a bucket
      const int range_bits = static_cast<int>(std::bit_width(hi - lo));
      map_.shift = range_bits > log_buckets ? range_bits - log_buckets : 0;
    }
    const std::size_t buckets = std::size_t{1} << log_buckets;
    start_.assign(buckets + 1, 0);
    const bucket_map map = map_;
    std::size_t* count = start_.data() + 1;
    for (std::size_t i = 0; i < n; ++i)
      ++count[map(values[i])];
    for (std::size_t b = 1; b <= buckets; ++b)
      start_[b] += start_[b - 1];
    cursor_.assign(start_.begin(), start_.end() - 1);
    if (lo >= hi) { // all equal (or none): already in order
      std::copy_n(values, n, out_.begin());
      scattered_ = sorted_ = buckets;
    }
  }

  // Values already in decreasing order: one bucket, in place and sorted.
  void assign_sorted(const double* values, std::size_t n) {
    values_ = values;
    n_ = n;
    map_ = bucket_map{n > 0 ? std::bit_cast<std::uint64_t>(values[0]) : 0, 63};
    out_.assign(values, values + n);
    start_.assign({std::size_t{0}, n});
    scattered_ = sorted_ = 1;
  }

  [[nodiscard]] std::size_t buckets() const noexcept {
    return start_.size() - 1;
  }
  // Ranks [begin(b), end(b)) of bucket b (0 = largest values).
  [[nodiscard]] std::size_t begin(std::size_t b) const noexcept {
    return start_[b];
  }
  [[nodiscard]] std::size_t end(std::size_t b) const noexcept {
    return start_[b + 1];
  }
  // The largest value bucket b can hold (its values are at most this); 0 for a bucket past the
  // patterns of positive values (hi - (b << shift) would wrap: such a bucket holds nothing).
  [[nodiscard]] double bound(std::size_t b) const noexcept {
    const std::uint64_t d = static_cast<std::uint64_t>(b) << map_.shift;
    return d > map_.hi ? 0.0 : std::bit_cast<double>(map_.hi - d);
  }

  // Puts buckets 0 .. b in place and sorts them; then (*this)[i] is the value of rank i for every
  // i < end(b).
  void sort_through(std::size_t b) {
    for (; sorted_ <= b; ++sorted_)
      sort_bucket(sorted_);
  }

  // The bucket holding rank i. Pre: i < number of values.
  [[nodiscard]] std::size_t bucket_of_rank(std::size_t i) const noexcept {
    return static_cast<std::size_t>(std::upper_bound(start_.begin(), start_.end(), i)
                                    - start_.begin())
           - 1;
  }

  // The value of rank i (0 = largest), moving nothing into place. Pre: i < n.
  [[nodiscard]] double value_at_rank(std::size_t i) {
    const std::size_t b = bucket_of_rank(i);
    if (b < sorted_)
      return out_[i];
    select_.clear();
    const bucket_map map = map_;
    for (std::size_t k = 0; k < n_; ++k)
      if (map(values_[k]) == b)
        select_.push_back(values_[k]);
    const auto nth = select_.begin() + static_cast<std::ptrdiff_t>(i - start_[b]);
    std::nth_element(select_.begin(), nth, select_.end(), std::greater<>());
    return *nth;
  }

  // Rank i's value. Pre: the bucket holding i was sorted (sort_through).
  [[nodiscard]] double operator[](std::size_t i) const noexcept {
    return out_[i];
  }

  // Copies the values of buckets up to limit - 1 into place (one pass over all values), ahead of
  // sort_through when the reader knows how far it will go.
  void place(std::size_t limit) {
    limit = std::min(limit, buckets());
    if (limit <= scattered_)
      return;
    const bucket_map map = map_;
    const double* v = values_;
    const std::size_t n = n_;
    double* out = out_.data();
    std::size_t* cursor = cursor_.data();
    const std::size_t first = scattered_;
    const std::size_t width = limit - scattered_;
    if (first == 0 && limit == buckets()) {
      for (std::size_t k = 0; k < n; ++k)
        out[cursor[map(v[k])]++] = v[k];
    } else { // branch-free: list the values in range, then copy them (no mispredicted branch)
      pick_.resize(n);
      std::size_t* pick = pick_.data();
      std::size_t picked = 0;
      for (std::size_t k = 0; k < n; ++k) {
        pick[picked] = k;
        picked += static_cast<std::size_t>(map(v[k]) - first < width);
      }
      for (std::size_t i = 0; i < picked; ++i) {
        const double x = v[pick[i]];
        out[cursor[map(x)]++] = x;
      }
    }
    scattered_ = limit;
  }

private:
  void sort_bucket(std::size_t b) {
    if (b >= scattered_)
      scatter_through(b);
    const std::size_t first = start_[b];
    const std::size_t last = start_[b + 1];
    if (last - first > small_sort_upto)
      spare_.resize(last - first);
    sort_descending(out_.data() + first, last - first, spare_.data(), 0);
  }

  // Sorts v[0 .. k) in decreasing order: a branch-free rank sort up to small_sort_upto values,
  // else one more counting-sort pass on the high bits of the values' own range (through spare,
  // k values), then each part recursively; std::sort past a depth no real input reaches.
  static void sort_descending(double* v, std::size_t k, double* spare, int depth) {
    if (k <= small_sort_upto) {
      double tmp[small_sort_upto];
      std::copy_n(v, k, tmp);
      for (std::size_t i = 0; i < k; ++i) { // rank: larger values, and equal ones before i
        const double x = tmp[i];
        std::size_t rank = 0;
        for (std::size_t j = 0; j < i; ++j)
          rank += static_cast<std::size_t>(tmp[j] >= x);
        for (std::size_t j = i + 1; j < k; ++j)
          rank += static_cast<std::size_t>(tmp[j] > x);
        v[rank] = x;
      }
      return;
    }
    std::uint64_t lo = std::bit_cast<std::uint64_t>(v[0]);
    std::uint64_t hi = lo;
    for (std::size_t i = 1; i < k; ++i) {
      const auto u = std::bit_cast<std::uint64_t>(v[i]);
      lo = u < lo ? u : lo;
      hi = u > hi ? u : hi;
    }
    if (lo == hi)
      return; // all equal
    if (depth >= 8) {
      std::sort(v, v + k, std::greater<>());
      return;
    }
    // About 4 values a part, at most max_parts parts.
    const int log_parts = std::min(static_cast<int>(std::bit_width(k)) - 2, max_log_parts);
    const std::size_t parts = std::size_t{1} << log_parts;
    const int range_bits = static_cast<int>(std::bit_width(hi - lo));
    const bucket_map map{hi, range_bits > log_parts ? range_bits - log_parts : 0};
    std::size_t count[(std::size_t{1} << max_log_parts) + 1];
    std::fill_n(count, parts + 1, std::size_t{0});
    for (std::size_t i = 0; i < k; ++i)
      ++count[map(v[i]) + 1];
    for (std::size_t p = 1; p <= parts; ++p)
      count[p] += count[p - 1];
    std::size_t cursor[std::size_t{1} << max_log_parts];
    std::copy_n(count, parts, cursor);
    for (std::size_t i = 0; i < k; ++i)
      spare[cursor[map(v[i])]++] = v[i];
    std::copy_n(spare, k, v);
    for (std::size_t p = 0; p < parts; ++p)
      if (count[p + 1] - count[p] > 1)
        sort_descending(v + count[p], count[p + 1] - count[p], spare + count[p], depth + 1);
  }
  static constexpr int max_log_parts = 8;

  // Places buckets from scattered_ up to a limit past b that covers at least twice the ranks
  // placed so far (and an eighth of all).
  void scatter_through(std::size_t b) {
    const std::size_t want = std::max({start_[b + 1], 2 * start_[scattered_], n_ / 8});
    place(static_cast<std::size_t>(
        std::lower_bound(start_.begin() + static_cast<std::ptrdiff_t>(b + 1), start_.end(), want)
        - start_.begin()));
  }

  const double* values_ = nullptr;
  std::size_t n_ = 0;
  bucket_map map_;
  std::vector<double> out_;         // bucket b's values in out_[start_[b] .. start_[b + 1])
  std::vector<std::size_t> start_;  // bucket boundaries (ranks), buckets + 1 entries
  std::vector<std::size_t> cursor_; // scatter cursors
  std::vector<double> select_;      // value_at_rank scratch
  std::vector<double> spare_;       // sort_descending scratch
  std::vector<std::size_t> pick_;   // place() scratch
  std::size_t scattered_ = 0;       // buckets [0, scattered_) are in place
  std::size_t sorted_ = 0;          // buckets [0, sorted_) are sorted
};

} // namespace detail

} // namespace sched

SPECDEC_NAMESPACE_END
