// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The kernels of the device prefix scheduler (DSpark Algorithm 1, spec 8): candidate
/// preparation, the tile scans of the expected tokens tau and the throughput Theta along the
/// greedy path, admission (early stop, global search, top-K) and the per-request lengths, plus
/// the problem type they read. The host entry point is cuda::prefix_scheduler
/// (device/device_dspark.cuh).

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/sched/prefix_scheduler.hpp>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include <climits>
#include <cstdint>

SPECDEC_CUDA_NAMESPACE_BEGIN

/// @brief Where the device prefix scheduler stops along the greedy path (sched::schedule_mode
/// plus top-K admission, which the host offers as sched::schedule_top_k).
enum class prefix_admission : std::uint8_t {
  early_stop, ///< Algorithm 1: admit while Theta strictly grows (lossless)
  global,     ///< the first maximum of Theta over the whole path (past-step information only)
  top_k       ///< the first min(K, candidates) candidates of the path
};

/// @brief A prefix-scheduling problem on the device (spec 8): every pointer is device memory,
/// sizes are host values.
///
/// Request r owns the calibrated conditionals `c[offsets[r] .. offsets[r + 1])` (the ragged
/// layout of sched::prefix_scheduler), g_r = offsets[r + 1] - offsets[r] of them. The step
/// curve is the points of a valid sched::sps_table (copy its batches() and values() to the
/// device). Output: `lengths[r]` in [0, g_r] and, optionally, a per-request status and the
/// schedule_result of the chosen lengths.
///
/// A request whose window is malformed (offsets[r] < 0, decreasing offsets, offsets[r + 1] past
/// `total`, or g_r > `max_positions`) gets row_status::bad_shape; one with a conditional that is
/// NaN or outside [0, 1] gets row_status::draft_invalid (errc::invalid_value, as the host
/// reports for the whole call). Such a request is excluded from the schedule: none of its
/// candidates is visited and its length is 0, but it still counts in R (its anchor slot is
/// verified). The other requests are scheduled as if its row were empty.
struct prefix_sched_problem {
  index_t requests = 0;               ///< R (host value)
  index_t max_positions = 0;          ///< host value: the largest g_r allowed (gamma); >= 0
  index_t total = 0;                  ///< host value: entries of `c` (offsets[R] on good input)
  const double* c = nullptr;          ///< @shape{[total]} calibrated conditionals, ragged
  const index_t* offsets = nullptr;   ///< @shape{[R + 1]} request r owns [offsets[r], offsets[r+1])
  const index_t* sps_batch = nullptr; ///< @shape{[sps_points]} the table's batches, increasing
  const double* sps_values = nullptr; ///< @shape{[sps_points]} the table's steps per second
  index_t sps_points = 0;             ///< host value: points of the table (>= 1 unless top_k)
  prefix_admission admission = prefix_admission::early_stop; ///< the stopping rule
  index_t k = 0;                  ///< top_k: draft tokens to admit (host value), >= 0
  const index_t* k_ptr = nullptr; ///< top_k: when set, *k_ptr (device) replaces k (< 0 reads 0)
  index_t* lengths = nullptr;     ///< @shape{[R]} output prefix lengths
  row_status* status = nullptr;   ///< optional @shape{[R]}: bad_shape / draft_invalid, else clean
  /// Optional (one value): throughput Theta (0 without a table), expected tokens tau, batch
  /// B = R + admitted, admitted. `&result->admitted` may serve as a later call's k_ptr (the
  /// asynchronous top-K of spec 8.5: a global search at step t gives the budget of step t + 2).
  sched::schedule_result* result = nullptr;
};

namespace kernels {

/// Device scalars of one scheduling run (in the workspace).
struct prefix_sched_scalars {
  int count = 0;                   ///< candidates with a > 0 (a prefix of the sorted order)
  int stop = INT_MAX;              ///< early_stop: first m with Theta(m) <= Theta(m - 1)
  int best_m = INT_MAX;            ///< global: first m with the largest Theta
  int admitted = 0;                ///< M, the admitted candidates
  unsigned long long best_key = 0; ///< global: order key of the largest Theta
};

/// Everything the scheduler kernels share, passed by value. Candidates live in a dense
/// j-major grid: slot `(j - 1) * R + r` holds a_{r,j} (0 past g_r and for excluded requests),
/// so slot order is (j asc, r asc) and a stable descending sort by a yields the key order
/// (-a, j asc, r asc).
struct prefix_sched_launch {
  prefix_sched_problem p;                  ///< the problem
  int n = 0;                               ///< N = R * max_positions slots
  int tiles = 0;                           ///< ceil(N / tile) scan tiles
  double* keys = nullptr;                  ///< @shape{[N]} a per slot
  std::int32_t* ids = nullptr;             ///< @shape{[N]} slot ids
  double* sorted = nullptr;                ///< @shape{[N]} a in path order
  std::int32_t* order = nullptr;           ///< @shape{[N]} slot ids in path order
  double* tau = nullptr;                   ///< @shape{[N + 1]} tau after m candidates
  double* theta = nullptr;                 ///< @shape{[N + 1]} Theta after m candidates
  double* tile_sums = nullptr;             ///< @shape{[tiles]}
  double* tile_offsets = nullptr;          ///< @shape{[tiles]} tau before each tile
  prefix_sched_scalars* scalars = nullptr; ///< the run's scalars
};

namespace detail {

/// SPS(b) from the problem's table (sched::sps_lookup, bit for bit the host's sps_table::at).
SPECDEC_DEVICE inline double sps_at(const prefix_sched_problem& p, index_t b) {
  return sched::sps_lookup(p.sps_batch, p.sps_values, p.sps_points, b);
}

/// Monotone unsigned key of a double (order of the values; -0 < +0; NaN above +inf).
SPECDEC_DEVICE inline unsigned long long order_key64(double x) {
  const auto u = static_cast<unsigned long long>(__double_as_longlong(x));
  return (u >> 63) != 0ull ? ~u : (u | (1ull << 63));
}

/// M, the number of candidates admitted, from the run's scalars.
SPECDEC_DEVICE inline int admitted_count(const prefix_sched_launch& l) {
  const prefix_sched_scalars& s = *l.scalars;
  const int count = s.count;
  switch (l.p.admission) {
  case prefix_admission::early_stop:
    return s.stop == INT_MAX ? count : s.stop - 1;
  case prefix_admission::global:
    return s.best_m < count ? s.best_m : count;
  case prefix_admission::top_k: {
    const index_t k = l.p.k_ptr != nullptr ? *l.p.k_ptr : l.p.k;
    return k <= 0 ? 0 : (k < count ? static_cast<int>(k) : count);
  }
  }
  return 0;
}

} // namespace detail

/// @brief Candidates: thread r checks request r's window and conditionals (status), writes its
/// column of the slot grid (a_{r,j} by the host's cumulative products: a = a * c left to right
/// from 1 with sched::detail::dmul, 0 past g_r or when excluded) and the slot ids, and zeroes its
/// length. Thread 0 of CTA 0 initialises the run's scalars. grid-stride over R.
/// @tparam Threads threads per CTA
/// @param[in] l the launch
template <int Threads>
__global__ void __launch_bounds__(Threads) prefix_candidates_kernel(const prefix_sched_launch l) {
  const prefix_sched_problem& p = l.p;
  if (blockIdx.x == 0 && threadIdx.x == 0)
    *l.scalars = prefix_sched_scalars{};
  const index_t stride = static_cast<index_t>(gridDim.x) * Threads;
  for (index_t r = static_cast<index_t>(blockIdx.x) * Threads + threadIdx.x; r < p.requests;
       r += stride) {
    const index_t o0 = p.offsets[r];
    const index_t o1 = p.offsets[r + 1];
    row_status st{};
    bool ok = o0 >= 0 && o1 >= o0 && o1 <= p.total && o1 - o0 <= p.max_positions;
    if (!ok)
      st.set(row_status::bad_shape);
    const index_t g = ok ? o1 - o0 : 0;
    for (index_t k = 0; k < g && ok; ++k) {
      const double x = p.c[o0 + k];
      if (!(x >= 0.0 && x <= 1.0)) {
        st.set(row_status::draft_invalid);
        ok = false;
      }
    }
    double run = 1.0;
    for (index_t k = 0; k < p.max_positions; ++k) {
      double a = 0.0;
      if (ok && k < g) {
        run = sched::detail::dmul(run, p.c[o0 + k]);
        a = run;
      }
      const index_t slot = k * p.requests + r;
      l.keys[slot] = a;
      l.ids[slot] = static_cast<std::int32_t>(slot);
    }
    p.lengths[r] = 0;
    if (p.status != nullptr)
      p.status[r] = st;
  }
}

/// @brief Tile sums of the sorted a (per thread in index order, then cub::BlockReduce: a fixed
/// association, so runs are deterministic) and the candidate count (the a > 0 prefix of the
/// sorted order). grid = tiles.
/// @tparam Threads threads per CTA
/// @tparam Items consecutive elements per thread
/// @param[in] l the launch
template <int Threads, int Items>
__global__ void __launch_bounds__(Threads) prefix_tile_sum_kernel(const prefix_sched_launch l) {
  using reduce = cub::BlockReduce<double, Threads>;
  __shared__ typename reduce::TempStorage temp;
  const int base =
      static_cast<int>(blockIdx.x) * Threads * Items + static_cast<int>(threadIdx.x) * Items;
  double local = 0.0;
  for (int c = 0; c < Items; ++c) {
    const int i = base + c;
    if (i >= l.n)
      break;
    const double x = l.sorted[i];
    local = sched::detail::dadd(local, x);
    if (x > 0.0 && (i + 1 == l.n || !(l.sorted[i + 1] > 0.0)))
      l.scalars->count = i + 1; // exactly one writer: the last positive entry
  }
  const double total = reduce(temp).Sum(local);
  if (threadIdx.x == 0)
    l.tile_sums[blockIdx.x] = total;
}

/// @brief Tile offsets: tau before each tile, from R and an exclusive scan of the tile sums
/// (one CTA, chunk by chunk with a carry; fixed association). grid = 1.
/// @tparam Threads threads per CTA
/// @tparam Items consecutive elements per thread
/// @param[in] l the launch
template <int Threads, int Items>
__global__ void __launch_bounds__(Threads) prefix_tile_offsets_kernel(const prefix_sched_launch l) {
  using scan = cub::BlockScan<double, Threads>;
  __shared__ typename scan::TempStorage temp;
  double carry = static_cast<double>(l.p.requests);
  for (int chunk = 0; chunk < l.tiles; chunk += Threads * Items) {
    const int base = chunk + static_cast<int>(threadIdx.x) * Items;
    double v[Items];
    double local = 0.0;
    for (int c = 0; c < Items; ++c) {
      v[c] = base + c < l.tiles ? l.tile_sums[base + c] : 0.0;
      local = sched::detail::dadd(local, v[c]);
    }
    double excl = 0.0;
    double aggregate = 0.0;
    scan(temp).ExclusiveSum(local, excl, aggregate);
    double x = sched::detail::dadd(carry, excl);
    for (int c = 0; c < Items; ++c) {
      if (base + c < l.tiles)
        l.tile_offsets[base + c] = x;
      x = sched::detail::dadd(x, v[c]);
    }
    carry = sched::detail::dadd(carry, aggregate);
    __syncthreads(); // temp is reused by the next chunk
  }
}

/// @brief tau and Theta along the path: tau(m) = tau before the tile + the scan inside it
/// (thread prefix by cub::BlockScan, then the thread's own elements one at a time), Theta(m) =
/// tau(m) * SPS(R + m) (sched::prefix_throughput and sps_lookup); CTA 0 writes tau(0) = R and
/// Theta(0) = R * SPS(R). grid = max(tiles, 1).
/// @tparam Threads threads per CTA
/// @tparam Items consecutive elements per thread
/// @param[in] l the launch
template <int Threads, int Items>
__global__ void __launch_bounds__(Threads) prefix_theta_kernel(const prefix_sched_launch l) {
  using scan = cub::BlockScan<double, Threads>;
  __shared__ typename scan::TempStorage temp;
  const prefix_sched_problem& p = l.p;
  const int base =
      static_cast<int>(blockIdx.x) * Threads * Items + static_cast<int>(threadIdx.x) * Items;
  double v[Items];
  double local = 0.0;
  for (int c = 0; c < Items; ++c) {
    v[c] = base + c < l.n ? l.sorted[base + c] : 0.0;
    local = sched::detail::dadd(local, v[c]);
  }
  double excl = 0.0;
  scan(temp).ExclusiveSum(local, excl);
  const double r_count = static_cast<double>(p.requests);
  const double start = l.tiles > 0 ? l.tile_offsets[blockIdx.x] : r_count;
  double x = sched::detail::dadd(start, excl);
  for (int c = 0; c < Items; ++c) {
    const int i = base + c;
    if (i >= l.n)
      break;
    x = sched::add_expected_tokens(x, v[c]);
    l.tau[i + 1] = x;
    l.theta[i + 1] = sched::prefix_throughput(x, detail::sps_at(p, p.requests + i + 1));
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    l.tau[0] = r_count;
    l.theta[0] = sched::prefix_throughput(r_count, detail::sps_at(p, p.requests));
  }
}

/// @brief Admission over the path points m = 0 .. count: early_stop records the first m >= 1
/// with !(Theta(m) > Theta(m - 1)) (atomicMin); global records the largest Theta (`pass` 0,
/// atomicMax of its order key) and then its first index (`pass` 1, atomicMin). Atomics of
/// min / max: the result does not depend on scheduling. grid = ceil((N + 1) / Threads).
/// @tparam Threads threads per CTA
/// @param[in] l the launch
/// @param[in] pass 0 or 1 (global only)
template <int Threads>
__global__ void __launch_bounds__(Threads)
    prefix_admission_kernel(const prefix_sched_launch l, int pass) {
  const int m = static_cast<int>(blockIdx.x) * Threads + static_cast<int>(threadIdx.x);
  prefix_sched_scalars* s = l.scalars;
  if (m > s->count)
    return;
  if (l.p.admission == prefix_admission::early_stop) {
    if (m >= 1 && !(l.theta[m] > l.theta[m - 1]))
      atomicMin(&s->stop, m);
  } else if (pass == 0) {
    atomicMax(&s->best_key, detail::order_key64(l.theta[m]));
  } else if (detail::order_key64(l.theta[m]) == s->best_key) {
    atomicMin(&s->best_m, m);
  }
}

/// @brief Lengths: the first M candidates of the path raise their request's length to their j
/// (atomicMax; the order respects prefixes, so it is the number admitted); thread 0 of CTA 0
/// stores M and the result. grid = max(ceil(N / Threads), 1).
/// @tparam Threads threads per CTA
/// @param[in] l the launch
template <int Threads>
__global__ void __launch_bounds__(Threads) prefix_lengths_kernel(const prefix_sched_launch l) {
  const prefix_sched_problem& p = l.p;
  const int admitted = detail::admitted_count(l);
  const int i = static_cast<int>(blockIdx.x) * Threads + static_cast<int>(threadIdx.x);
  if (i < admitted) {
    const index_t slot = l.order[i];
    const index_t r = slot % p.requests;
    const long long j = static_cast<long long>(slot / p.requests + 1);
    static_assert(sizeof(index_t) == sizeof(long long), "index_t is 64 bits");
    atomicMax(reinterpret_cast<long long*>(p.lengths + r), j);
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    l.scalars->admitted = admitted;
    if (p.result != nullptr)
      *p.result = sched::schedule_result{.throughput = l.theta[admitted],
                                         .expected_tokens = l.tau[admitted],
                                         .batch = p.requests + admitted,
                                         .admitted = admitted};
  }
}

} // namespace kernels

SPECDEC_CUDA_NAMESPACE_END
