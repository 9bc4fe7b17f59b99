// SPDX-License-Identifier: Apache-2.0
// Device tree verification (cuda::tree_verifier with verify::greedy and verify::rejection_sampling
// on bfloat16 logit rows), tree mask building (cuda::tree_mask_builder) and KV path compaction
// (cuda::kv_path_compactor, contiguous and paged), measured as ratios to this device's copy
// bandwidth, which the same binary measures.
//
// Grids (small enough for one quick pass):
//   verify   {greedy, rejection} x B in {1, 16, 128} x N in {8, 32, 64} x V in {32000, 128256}
//   mask     B in {16, 256} x N in {32, 64}
//   kv       {contiguous, paged} x B in {16, 128}: 16 planes of 1024 bfloat16 features per slot
// Points whose rows exceed 2 GiB stop with "skipped: ..." (Google Benchmark 1.7 reports that as
// an error; nothing failed). Without a CUDA device every benchmark stops with "no CUDA device"
// and the binary exits 0.
//
// Trees: node j > 0 hangs under node (j - 1) / 2 (a binary tree of depth floor(log2 N)), the
// same shape for every request. Rows (fixed seeds, built once per V and uploaded once): 32
// target rows (bench/support/synthetic.hpp: normal logits plus peaked tokens) and their draft
// rows (target + normal noise); target row of node j of request b is pool row (b N + j) % 32,
// the draft row of node j (one per non-root node) perturbs its parent's pool row, and node j's
// token is one of 8 tokens sampled on the host from that processed draft row (T = 1, no
// truncation, so q(x) > 0). Each state gathers its batch into device memory outside the timed
// region.
//
// Timing: CUDA events around run() on a non-default stream (manual time); the L2 is
// overwritten (a memset of twice its size) before every timed run unless SPECDEC_BENCH_HOT=1.
//
// Counters:
//   copy_GBps        the copy baseline: read bandwidth (1e9 bytes / s) of a grid-stride kernel
//                    copying 1 GiB with 16-byte loads and stores, best of five, measured once.
//   ratio            (verify) bytes of all target (and, for rejection, draft) rows per second /
//                    the copy baseline: 1 would mean every row read once at copy speed. The rule
//                    visits only depth + 1 rows per request, so see path_ratio too.
//   path_ratio       (verify) bytes of the target rows on the accepted paths (accepted + 1 per
//                    request) per second / the copy baseline: a lower bound of the bytes read.
//   prepared         (verify) 1 when run() prepared the rows in parallel first (see
//                    tree_verifier::prepares_rows), else 0.
//   inline_over_prepared  (verify) time with rows prepared inline / time with rows prepared in
//                    parallel first (each the mean of 3 runs outside the main loop): > 1 where
//                    parallel preparation pays.
//   tau, flagged     (verify) mean tokens emitted per request (accepted + 1); fraction of
//                    requests with an error flag (expected 0).
//   ratio            (mask) bytes written (mask words and positions) per second / the copy
//                    baseline's read rate.
//   ratio            (kv) bytes read by the compaction (the moved slots) per second / the copy
//                    baseline's read rate.
//
// Run: specdec.bench.cuda.verify_tree [--benchmark_filter=verify/rejection]
//      [--benchmark_format=json]

#include <specdec/cuda/device/device_kv.cuh>
#include <specdec/cuda/device/device_tree.cuh>
#include <specdec/specdec.cuh>
#include <specdec/verify/tree.hpp>
#include <specdec/verify/tree_batch.hpp>

#include <benchmark/benchmark.h>

#include "../support/device.cuh"
#include "../support/synthetic.hpp"
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cuda_runtime.h>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace {

using namespace specdec;
using elem = specdec::bfloat16;

constexpr std::size_t row_budget = std::size_t{2} << 30; ///< skip points with more row bytes
constexpr index_t pool_rows = 32;                        ///< distinct target rows (and drafts)
constexpr int samples_per_row = 8;                       ///< tokens sampled per draft row
constexpr int alt_reps = 3;                              ///< runs of each preparation mode

using specdec_bench::check;
using specdec_bench::copy_baseline;
using specdec_bench::device_buffer;
using specdec_bench::download;
using specdec_bench::gather_rows;
using specdec_bench::start;
using specdec_bench::timed;
using specdec_bench::timed_loop;
using specdec_bench::timed_stream;
using specdec_bench::upload;

// ---------------------------------------------------------------------------------------------
// Rows and trees.

/// The pool of one vocabulary: pool_rows target rows then pool_rows draft rows (bfloat16) on
/// the host and the device, and samples_per_row tokens sampled from each processed draft row.
struct row_pool {
  index_t vocab = 0;
  std::vector<elem> rows;
  std::vector<token_id> samples; // [pool_rows, samples_per_row]
  device_buffer device;
};

row_pool* pool_for(benchmark::State& state, index_t vocab) {
  static std::unique_ptr<row_pool> pool;
  if (pool && pool->vocab == vocab)
    return pool.get();
  pool.reset();
  auto p = std::make_unique<row_pool>();
  p->vocab = vocab;
  std::vector<float> f(static_cast<std::size_t>(2 * pool_rows * vocab));
  specdec_bench::splitmix64 g{0x7ee0000u + static_cast<std::uint64_t>(vocab)};
  for (index_t r = 0; r < pool_rows; ++r) {
    float* t = f.data() + r * vocab;
    float* d = f.data() + (pool_rows + r) * vocab;
    specdec_bench::make_target_row(t, vocab, g);
    for (index_t i = 0; i < vocab; ++i)
      d[i] = t[i] + specdec_bench::draft_noise * g.normal();
  }
  p->rows.resize(f.size());
  std::transform(f.begin(), f.end(), p->rows.begin(), [](float x) {
    return dtype_traits<elem>::from_float(x);
  });
  const cpu::serial_executor ex{};
  const sampling::sampling_params params = specdec_bench::params_for(false);
  for (index_t r = 0; r < pool_rows; ++r) {
    const sampling::dist_row<elem> row{
        p->rows.data() + (pool_rows + r) * vocab, vocab, distribution_kind::logits};
    const sampling::row_stats st = sampling::prepare_row(ex, row, params);
    for (int s = 0; s < samples_per_row; ++s)
      p->samples.push_back(static_cast<token_id>(sampling::sample_row(ex, row, st, g.uniform())));
  }
  if (!upload(state, p->device, p->rows))
    return nullptr;
  pool = std::move(p);
  return pool.get();
}

/// Parent of node j > 0 in the benchmark's binary tree.
std::int32_t parent_of(std::int32_t j) {
  return (j - 1) / 2;
}

// ---------------------------------------------------------------------------------------------
// Tree verification.

template <class Policy>
void BM_cuda_verify_tree(benchmark::State& state) {
  const copy_baseline* base = start(state);
  if (base == nullptr)
    return;
  const index_t B = state.range(0), N = state.range(1), V = state.range(2);
  const bool drafts = Policy::needs_draft_rows;
  const index_t target_rows = B * N;
  const index_t draft_rows = drafts ? B * (N - 1) : 0;
  const index_t n_rows = target_rows + draft_rows;
  const std::size_t row_bytes = static_cast<std::size_t>(V) * sizeof(elem);
  const std::size_t rows_bytes = static_cast<std::size_t>(n_rows) * row_bytes;
  if (rows_bytes > row_budget) {
    state.SkipWithError("skipped: rows exceed the 2 GiB budget");
    return;
  }
  if (row_bytes % sizeof(uint4) != 0) {
    state.SkipWithError("V * sizeof(T) must be a multiple of 16 bytes (gather kernel)");
    return;
  }
  row_pool* pool = pool_for(state, V);
  if (pool == nullptr)
    return;

  std::vector<index_t> offsets(static_cast<std::size_t>(B + 1));
  std::vector<std::int32_t> parents(static_cast<std::size_t>(target_rows));
  std::vector<token_id> tokens(static_cast<std::size_t>(target_rows), 0);
  std::vector<int> src_row(static_cast<std::size_t>(n_rows));
  std::vector<std::uint64_t> ids(static_cast<std::size_t>(B));
  const std::vector<index_t> positions(static_cast<std::size_t>(B), 1000);
  for (index_t b = 0; b < B; ++b) {
    offsets[static_cast<std::size_t>(b + 1)] = (b + 1) * N;
    ids[static_cast<std::size_t>(b)] = static_cast<std::uint64_t>(b);
    for (index_t j = 0; j < N; ++j) {
      const auto node = static_cast<std::size_t>(b * N + j);
      const index_t pool_of_node = (b * N + j) % pool_rows;
      src_row[node] = static_cast<int>(pool_of_node);
      parents[node] = j == 0 ? -1 : parent_of(static_cast<std::int32_t>(j));
      if (j == 0)
        continue;
      const index_t pool_of_parent = (b * N + parent_of(static_cast<std::int32_t>(j))) % pool_rows;
      tokens[node] = pool->samples[static_cast<std::size_t>(pool_of_parent * samples_per_row
                                                            + j % samples_per_row)];
      if (drafts)
        src_row[static_cast<std::size_t>(target_rows + b * (N - 1) + j - 1)] =
            static_cast<int>(pool_rows + pool_of_parent);
    }
  }
  const std::vector<sampling::sampling_params> params{specdec_bench::params_for(false)};

  timed_stream ts;
  device_buffer rows, d_src, d_offsets, d_parents, d_tokens, d_ids, d_positions, d_params;
  device_buffer d_accepted, d_last, d_next, d_status, ws_default, ws_inline, ws_prepared;
  if (!check(state, ts.create(), "stream / event creation")
      || !check(state, rows.allocate(rows_bytes), "cudaMalloc (rows)")
      || !upload(state, d_src, src_row) || !upload(state, d_offsets, offsets)
      || !upload(state, d_parents, parents) || !upload(state, d_tokens, tokens)
      || !upload(state, d_ids, ids) || !upload(state, d_positions, positions)
      || !upload(state, d_params, params)
      || !check(state, d_accepted.allocate(static_cast<std::size_t>(B) * 4), "cudaMalloc")
      || !check(state, d_last.allocate(static_cast<std::size_t>(B) * 4), "cudaMalloc")
      || !check(
          state, d_next.allocate(static_cast<std::size_t>(B) * sizeof(token_id)), "cudaMalloc")
      || !check(
          state, d_status.allocate(static_cast<std::size_t>(B) * sizeof(row_status)), "cudaMalloc"))
    return;
  if (!gather_rows(
          state, rows.ptr, pool->device.ptr, d_src.as<const int>(), n_rows, row_bytes, ts.stream))
    return;

  specdec::cuda::tree_problem<elem> p;
  verify::tree_batch<elem>& tb = p.batch;
  tb.batch = B;
  tb.node_offsets = d_offsets.as<const index_t>();
  tb.tokens = d_tokens.as<const token_id>();
  tb.parents = d_parents.as<const std::int32_t>();
  tb.target = make_matrix_view<const elem>(rows.as<const elem>(), target_rows, V);
  if (drafts)
    tb.draft = make_matrix_view<const elem>(rows.as<const elem>() + target_rows * V, draft_rows, V);
  tb.params = d_params.as<const sampling::sampling_params>();
  tb.params_stride = 0;
  tb.request_ids = d_ids.as<const std::uint64_t>();
  tb.positions = d_positions.as<const index_t>();
  tb.seed = 42;
  p.out = {d_accepted.as<std::int32_t>(),
           d_last.as<std::int32_t>(),
           d_next.as<token_id>(),
           d_status.as<row_status>()};

  const specdec::cuda::tree_verifier<Policy, elem> chosen{};              // the heuristic
  const specdec::cuda::tree_verifier<Policy, elem> prepared({}, 1 << 30); // always parallel
  const specdec::cuda::tree_verifier<Policy, elem> never({}, 1);          // inline (rows > 2)
  const bool can_prepare = prepared.prepares_rows(p) && !never.prepares_rows(p);
  if (!check(state, ws_default.allocate(chosen.workspace_bytes(p)), "cudaMalloc (workspace)")
      || !check(state, ws_inline.allocate(never.workspace_bytes(p)), "cudaMalloc (workspace)")
      || !check(state, ws_prepared.allocate(prepared.workspace_bytes(p)), "cudaMalloc (workspace)"))
    return;
  const auto launcher = [&](const specdec::cuda::tree_verifier<Policy, elem>& v,
                            device_buffer& ws) {
    return [&, bytes = v.workspace_bytes(p)] {
      return check(state, v.run(p, ws.ptr, bytes, ts.stream), "tree_verifier::run");
    };
  };
  const auto run_default = launcher(chosen, ws_default);
  const auto run_inline = launcher(never, ws_inline);
  const auto run_prepared = launcher(prepared, ws_prepared);
  double t_inline = 0.0, t_prepared = 0.0;
  if (can_prepare) {
    if (!run_inline() || !run_prepared()
        || !check(state, cudaStreamSynchronize(ts.stream), "warm-up"))
      return;
    for (int rep = 0; rep < alt_reps; ++rep) {
      double a = 0.0, c = 0.0;
      if (!timed(state, ts, run_inline, a) || !timed(state, ts, run_prepared, c))
        return;
      t_inline += a / alt_reps;
      t_prepared += c / alt_reps;
    }
  }
  const double seconds = timed_loop(state, ts, run_default);
  if (!(seconds > 0.0))
    return;

  std::vector<std::int32_t> accepted(static_cast<std::size_t>(B));
  std::vector<row_status> st(static_cast<std::size_t>(B));
  if (!download(state, accepted, d_accepted) || !download(state, st, d_status))
    return;
  double emitted = 0.0, flagged = 0.0;
  for (std::size_t b = 0; b < accepted.size(); ++b) {
    emitted += accepted[b] + 1.0;
    flagged += st[b].ok() ? 0.0 : 1.0;
  }
  const auto requests = static_cast<double>(B);
  state.counters["copy_GBps"] = base->read_bytes_per_second * 1e-9;
  state.counters["ratio"] = static_cast<double>(rows_bytes) / seconds / base->read_bytes_per_second;
  state.counters["path_ratio"] =
      emitted * static_cast<double>(row_bytes) / seconds / base->read_bytes_per_second;
  state.counters["prepared"] = chosen.prepares_rows(p) ? 1.0 : 0.0;
  if (can_prepare && t_prepared > 0.0)
    state.counters["inline_over_prepared"] = t_inline / t_prepared;
  state.counters["tau"] = emitted / requests;
  state.counters["flagged"] = flagged / requests;
}

// ---------------------------------------------------------------------------------------------
// Tree masks.

void BM_cuda_tree_mask(benchmark::State& state) {
  const copy_baseline* base = start(state);
  if (base == nullptr)
    return;
  const index_t B = state.range(0), N = state.range(1);
  const index_t total = B * N;
  const index_t stride = tree::mask_words(static_cast<std::int32_t>(N));
  std::vector<index_t> offsets(static_cast<std::size_t>(B + 1)), roots(static_cast<std::size_t>(B));
  std::vector<std::int32_t> parents(static_cast<std::size_t>(total));
  for (index_t b = 0; b < B; ++b) {
    offsets[static_cast<std::size_t>(b + 1)] = (b + 1) * N;
    roots[static_cast<std::size_t>(b)] = 100 + b;
    for (index_t j = 0; j < N; ++j)
      parents[static_cast<std::size_t>(b * N + j)] =
          j == 0 ? -1 : parent_of(static_cast<std::int32_t>(j));
  }
  timed_stream ts;
  device_buffer d_offsets, d_roots, d_parents, d_mask, d_pos;
  if (!check(state, ts.create(), "stream / event creation") || !upload(state, d_offsets, offsets)
      || !upload(state, d_roots, roots) || !upload(state, d_parents, parents)
      || !check(state, d_mask.allocate(static_cast<std::size_t>(total * stride) * 4), "cudaMalloc")
      || !check(
          state, d_pos.allocate(static_cast<std::size_t>(total) * sizeof(index_t)), "cudaMalloc"))
    return;
  specdec::cuda::tree_mask_problem p;
  p.batch = B;
  p.node_offsets = d_offsets.as<const index_t>();
  p.parents = d_parents.as<const std::int32_t>();
  p.total_nodes = total;
  p.mask = d_mask.as<std::uint32_t>();
  p.mask_stride = stride;
  p.positions = d_pos.as<index_t>();
  p.root_positions = d_roots.as<const index_t>();
  const specdec::cuda::tree_mask_builder<> builder;
  const double seconds = timed_loop(state, ts, [&] {
    return check(state, builder.run(p, nullptr, 0, ts.stream), "tree_mask_builder::run");
  });
  if (!(seconds > 0.0))
    return;
  const double bytes = static_cast<double>(total) * static_cast<double>(stride * 4 + 8);
  state.counters["copy_GBps"] = base->read_bytes_per_second * 1e-9;
  state.counters["ratio"] = bytes / seconds / base->read_bytes_per_second;
  state.counters["masks_per_second"] = static_cast<double>(B) / seconds;
}

// ---------------------------------------------------------------------------------------------
// KV path compaction.

constexpr index_t kv_planes = 16;
constexpr index_t kv_width = 1024; // 8 heads x 128
constexpr index_t kv_capacity = 256;
constexpr index_t kv_block = 16;
constexpr index_t kv_path_stride = 8;

void BM_cuda_kv_compact(benchmark::State& state, bool paged) {
  const copy_baseline* base = start(state);
  if (base == nullptr)
    return;
  const index_t B = state.range(0);
  const index_t slot_elems = kv_width;
  const index_t seq_elems = kv_capacity * slot_elems; // per plane
  const std::size_t bytes = static_cast<std::size_t>(B * kv_planes * seq_elems) * sizeof(elem);
  // Paths: the binary tree of 64 nodes written at slots base..base+63 (base = 128); the accepted
  // path follows random children to depth 6.
  specdec_bench::splitmix64 g{0xc0ffeeu};
  std::vector<std::int32_t> paths(static_cast<std::size_t>(B * kv_path_stride), -1);
  std::vector<index_t> bases(static_cast<std::size_t>(B), 128);
  double moved_slots = 0.0;
  for (index_t b = 0; b < B; ++b) {
    std::int32_t* row = paths.data() + b * kv_path_stride;
    row[0] = 0;
    std::int32_t node = 0;
    for (index_t d = 1; d < 7; ++d) {
      node = 2 * node + 1 + static_cast<std::int32_t>(g.next() % 2u);
      row[d] = node;
      moved_slots += node != d ? 1.0 : 0.0;
    }
  }
  const index_t blocks_per_seq = kv_capacity / kv_block;
  std::vector<std::int32_t> table(static_cast<std::size_t>(B * blocks_per_seq));
  std::iota(table.begin(), table.end(), 0);
  for (std::size_t i = table.size(); i > 1; --i) // a shuffled pool: blocks are not in order
    std::swap(table[i - 1], table[static_cast<std::size_t>(g.next() % i)]);
  timed_stream ts;
  device_buffer data, d_paths, d_bases, d_table, d_status, d_len;
  if (!check(state, ts.create(), "stream / event creation")
      || !check(state, data.allocate(bytes), "cudaMalloc (cache)")
      || !check(state, cudaMemset(data.ptr, 0, bytes), "cudaMemset")
      || !upload(state, d_paths, paths) || !upload(state, d_bases, bases)
      || !upload(state, d_table, table)
      || !check(
          state, d_status.allocate(static_cast<std::size_t>(B) * sizeof(row_status)), "cudaMalloc")
      || !check(state, d_len.allocate(static_cast<std::size_t>(B) * sizeof(index_t)), "cudaMalloc"))
    return;
  const specdec::cuda::kv_path_list list{B,
                                         d_bases.as<const index_t>(),
                                         d_paths.as<const std::int32_t>(),
                                         kv_path_stride,
                                         d_status.as<row_status>(),
                                         d_len.as<index_t>()};
  const specdec::cuda::kv_path_compactor<> k;
  // The same path applied to an already compacted cache moves the same bytes, so repetitions
  // measure the same work.
  double seconds = 0.0;
  if (paged) {
    specdec::cuda::kv_paged_problem<elem> p;
    p.paths = list;
    p.data = data.as<elem>();
    p.planes = kv_planes;
    p.width = kv_width;
    p.plane_stride = B * seq_elems; // [planes][blocks][block_size][width]
    p.block_stride = kv_block * slot_elems;
    p.slot_stride = slot_elems;
    p.block_size = kv_block;
    p.num_blocks = B * blocks_per_seq;
    p.block_table = d_table.as<const std::int32_t>();
    p.table_stride = blocks_per_seq;
    seconds = timed_loop(state, ts, [&] {
      return check(state, k.run(p, nullptr, 0, ts.stream), "kv_path_compactor::run (paged)");
    });
  } else {
    specdec::cuda::kv_contiguous_problem<elem> p;
    p.paths = list;
    p.data = data.as<elem>();
    p.planes = kv_planes;
    p.width = kv_width;
    p.capacity = kv_capacity;
    p.sequence_stride = seq_elems; // [planes][sequences][capacity][width]
    p.plane_stride = B * seq_elems;
    p.slot_stride = slot_elems;
    seconds = timed_loop(state, ts, [&] {
      return check(state, k.run(p, nullptr, 0, ts.stream), "kv_path_compactor::run");
    });
  }
  if (!(seconds > 0.0))
    return;
  const double read = moved_slots * static_cast<double>(kv_planes * kv_width) * sizeof(elem);
  state.counters["copy_GBps"] = base->read_bytes_per_second * 1e-9;
  state.counters["ratio"] = read / seconds / base->read_bytes_per_second;
  state.counters["moved_MB"] = read * 1e-6;
}

// ---------------------------------------------------------------------------------------------
// Registration.

const bool registered = [] {
  for (int v : {32000, 128256})
    for (int b : {1, 16, 128})
      for (int n : {8, 32, 64}) {
        benchmark::RegisterBenchmark("BM_cuda_verify_tree/greedy",
                                     BM_cuda_verify_tree<verify::greedy>)
            ->Args({b, n, v})
            ->ArgNames({"batch", "nodes", "vocab"})
            ->UseManualTime()
            ->MinTime(0.05)
            ->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark("BM_cuda_verify_tree/rejection",
                                     BM_cuda_verify_tree<verify::rejection_sampling>)
            ->Args({b, n, v})
            ->ArgNames({"batch", "nodes", "vocab"})
            ->UseManualTime()
            ->MinTime(0.05)
            ->Unit(benchmark::kMicrosecond);
      }
  for (int b : {16, 256})
    for (int n : {32, 64})
      benchmark::RegisterBenchmark("BM_cuda_tree_mask", BM_cuda_tree_mask)
          ->Args({b, n})
          ->ArgNames({"batch", "nodes"})
          ->UseManualTime()
          ->MinTime(0.05)
          ->Unit(benchmark::kMicrosecond);
  for (const bool paged : {false, true})
    for (int b : {16, 128})
      benchmark::RegisterBenchmark(paged ? "BM_cuda_kv_compact/paged"
                                         : "BM_cuda_kv_compact/contiguous",
                                   [paged](benchmark::State& st) { BM_cuda_kv_compact(st, paged); })
          ->Arg(b)
          ->ArgName("batch")
          ->UseManualTime()
          ->MinTime(0.05)
          ->Unit(benchmark::kMicrosecond);
  return true;
}();

} // namespace
