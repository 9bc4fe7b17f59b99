// SPDX-License-Identifier: Apache-2.0
// DSpark on the device: the semi-AR block sampler (cuda::markov_head_sampler, vanilla Markov head)
// and the prefix scheduler (cuda::prefix_scheduler), measured as ratios to this device's copy
// bandwidth, which the same binary measures, and as items per second.
//
// Grids (one quick pass):
//   sampler    {fp32, bf16 weights} x R in {1, 32, 128} x V in {32000, 151936}; rank 256,
//              gamma 7, T = 1 (no truncation)
//   scheduler  {early_stop, global, top_k} x R in {256, 4096, 65536}; gamma 7
// Without a CUDA device every benchmark stops with "no CUDA device" and the binary exits 0.
//
// Inputs (fixed seeds): head weights w1, w2 [V, 256] ~ N(0, 1) and N(0, 0.05^2) (built once
// per V and weight type); U rows gathered on the device from a pool of 16 synthetic rows
// (bench/support/synthetic.hpp); anchors, ids and positions from the request index.
// Scheduler: c ~ U(0.5, 1) for 7 positions per request and a smooth step curve
// SPS(B) = 100 / (1 + 0.4 ((B - R) / R)^2) sampled every max(1, R / 16) tokens, so the early
// stop lands inside the path.
//
// Timing: CUDA events around run() on a non-default stream (manual time); the L2 is
// overwritten (a memset of twice its size) before every timed run unless SPECDEC_BENCH_HOT=1.
//
// Counters:
//   copy_GBps       the copy baseline: read bandwidth (1e9 bytes / s) of a grid-stride kernel
//                   copying 1 GiB with 16-byte loads and stores, best of five, measured once.
//   ratio           (sampler) bytes every CTA reads (its w2 pass, V * rank weights, and its U
//                   row, per position) per second / the copy baseline. Above 1 the CTAs share
//                   w2 through the L2; the bias pass of one CTA per request is the cost.
//   tokens_per_s    (sampler) draft tokens sampled per second (R * gamma / time).
//   flagged         (sampler) fraction of requests with an error flag (expected 0).
//   items_per_s     (scheduler) candidates (R * gamma) scheduled per second.
//   admitted        (scheduler) draft tokens admitted per request.
//   host_us         (scheduler) sched::schedule_prefixes / schedule_top_k on the host on the
//                   same input (mean of 3 runs, microseconds), for the crossover.
//
// Run: specdec.bench.cuda.dspark [--benchmark_filter=sampler] [--benchmark_format=json]

#include <specdec/cuda/device/device_dspark.cuh>
#include <specdec/propose/semi_ar_heads.hpp>
#include <specdec/sched/prefix_scheduler.hpp>
#include <specdec/specdec.cuh>

#include <benchmark/benchmark.h>

#include "../support/device.cuh"
#include "../support/synthetic.hpp"
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>
#include <memory>
#include <span>
#include <vector>

namespace {

using namespace specdec;

constexpr index_t head_rank = 256; ///< Markov rank of the sampler benches
constexpr index_t block_gamma = 7; ///< positions per block
constexpr index_t pool_rows = 16;  ///< distinct U rows

using specdec_bench::check;
using specdec_bench::copy_baseline;
using specdec_bench::device_buffer;
using specdec_bench::download;
using specdec_bench::gather_rows;
using specdec_bench::start;
using specdec_bench::timed_loop;
using specdec_bench::timed_stream;
using specdec_bench::upload;

// ---------------------------------------------------------------------------------------------
// Sampler.

/// The head weights and the U pool of one (V, weight type), on the device.
template <class W>
struct head_weights {
  index_t vocab = 0;
  device_buffer w1, w2, pool;
};

template <class W>
head_weights<W>* weights_for(benchmark::State& state, index_t vocab) {
  static std::unique_ptr<head_weights<W>> cached;
  if (cached && cached->vocab == vocab)
    return cached.get();
  cached.reset();
  auto h = std::make_unique<head_weights<W>>();
  h->vocab = vocab;
  specdec_bench::splitmix64 g{0xd5a4ull + static_cast<std::uint64_t>(vocab)};
  std::vector<W> w(static_cast<std::size_t>(vocab * head_rank));
  for (auto& x : w)
    x = dtype_traits<W>::from_float(g.normal());
  if (!upload(state, h->w1, w))
    return nullptr;
  for (auto& x : w)
    x = dtype_traits<W>::from_float(0.05f * g.normal());
  if (!upload(state, h->w2, w))
    return nullptr;
  std::vector<float> rows(static_cast<std::size_t>(pool_rows * vocab));
  for (index_t r = 0; r < pool_rows; ++r)
    specdec_bench::make_target_row(rows.data() + r * vocab, vocab, g);
  if (!upload(state, h->pool, rows))
    return nullptr;
  cached = std::move(h);
  return cached.get();
}

template <class W>
void BM_cuda_dspark_sampler(benchmark::State& state) {
  const copy_baseline* base = start(state);
  if (base == nullptr)
    return;
  const index_t R = state.range(0), V = state.range(1);
  head_weights<W>* hw = weights_for<W>(state, V);
  if (hw == nullptr)
    return;
  const index_t rows = R * block_gamma;
  std::vector<int> src(static_cast<std::size_t>(rows));
  for (index_t i = 0; i < rows; ++i)
    src[static_cast<std::size_t>(i)] = static_cast<int>(i % pool_rows);
  std::vector<token_id> anchors(static_cast<std::size_t>(R));
  std::vector<std::uint64_t> ids(static_cast<std::size_t>(R));
  std::vector<index_t> positions(static_cast<std::size_t>(R));
  for (index_t b = 0; b < R; ++b) {
    anchors[static_cast<std::size_t>(b)] = static_cast<token_id>((b * 7919) % V);
    ids[static_cast<std::size_t>(b)] = static_cast<std::uint64_t>(b);
    positions[static_cast<std::size_t>(b)] = 1000 + b;
  }
  const std::vector<sampling::sampling_params> params{specdec_bench::params_for(false)};
  const std::size_t row_bytes = static_cast<std::size_t>(V) * sizeof(float);

  timed_stream ts;
  device_buffer d_src, U, L, d_anchors, d_ids, d_positions, d_params, d_tokens, d_status;
  if (!check(state, ts.create(), "stream / event creation") || !upload(state, d_src, src)
      || !check(state, U.allocate(static_cast<std::size_t>(rows) * row_bytes), "cudaMalloc (U)")
      || !check(state, L.allocate(static_cast<std::size_t>(rows) * row_bytes), "cudaMalloc (L)")
      || !upload(state, d_anchors, anchors) || !upload(state, d_ids, ids)
      || !upload(state, d_positions, positions) || !upload(state, d_params, params)
      || !check(
          state, d_tokens.allocate(static_cast<std::size_t>(rows) * sizeof(token_id)), "cudaMalloc")
      || !check(
          state, d_status.allocate(static_cast<std::size_t>(R) * sizeof(row_status)), "cudaMalloc"))
    return;
  if (!gather_rows(state, U.ptr, hw->pool.ptr, d_src.as<const int>(), rows, row_bytes, ts.stream))
    return;

  specdec::cuda::markov_head_problem<W> p;
  p.requests = R;
  p.gamma = block_gamma;
  p.vocab = V;
  p.head.kind = propose::head_kind::markov;
  p.head.vocab = V;
  p.head.rank = head_rank;
  p.head.w1 = hw->w1.template as<const W>();
  p.head.w2 = hw->w2.template as<const W>();
  p.base_logits = U.as<const float>();
  p.anchors = d_anchors.as<const token_id>();
  p.request_ids = d_ids.as<const std::uint64_t>();
  p.positions = d_positions.as<const index_t>();
  p.seed = 42;
  p.params = d_params.as<const sampling::sampling_params>();
  p.params_stride = 0;
  p.tokens = d_tokens.as<token_id>();
  p.logits = L.as<float>();
  p.status = d_status.as<row_status>();
  const specdec::cuda::markov_head_sampler<W> sampler;
  const double seconds = timed_loop(state, ts, [&] {
    return check(state, sampler.run(p, nullptr, 0, ts.stream), "markov_head_sampler::run");
  });
  if (!(seconds > 0.0))
    return;
  std::vector<row_status> st(static_cast<std::size_t>(R));
  if (!download(state, st, d_status))
    return;
  double flagged = 0.0;
  for (const row_status& s : st)
    flagged += s.ok() ? 0.0 : 1.0;
  const double per_position =
      static_cast<double>(V) * (static_cast<double>(head_rank) * sizeof(W) + sizeof(float));
  const double bytes = static_cast<double>(rows) * per_position;
  state.counters["copy_GBps"] = base->read_bytes_per_second * 1e-9;
  state.counters["ratio"] = bytes / seconds / base->read_bytes_per_second;
  state.counters["tokens_per_s"] = static_cast<double>(rows) / seconds;
  state.counters["flagged"] = flagged / static_cast<double>(R);
}

// ---------------------------------------------------------------------------------------------
// Scheduler.

void BM_cuda_dspark_scheduler(benchmark::State& state, specdec::cuda::prefix_admission mode) {
  const copy_baseline* base = start(state);
  if (base == nullptr)
    return;
  const index_t R = state.range(0);
  specdec_bench::splitmix64 g{0x5c4edull + static_cast<std::uint64_t>(R)};
  std::vector<double> c(static_cast<std::size_t>(R * block_gamma));
  for (auto& x : c)
    x = 0.5 + 0.5 * static_cast<double>(g.uniform());
  std::vector<index_t> offsets(static_cast<std::size_t>(R + 1));
  for (index_t r = 0; r <= R; ++r)
    offsets[static_cast<std::size_t>(r)] = r * block_gamma;
  std::vector<sched::sps_point> pts;
  const index_t step = std::max<index_t>(1, R / 16);
  for (index_t b = 1; b <= R * (block_gamma + 2); b += step) {
    const double x = static_cast<double>(b - R) / static_cast<double>(R);
    pts.push_back({b, 100.0 / (1.0 + 0.4 * x * x)});
  }
  const sched::sps_table table{std::span<const sched::sps_point>(pts)};
  const std::vector<index_t> batches(table.batches().begin(), table.batches().end());
  const std::vector<double> values(table.values().begin(), table.values().end());
  const index_t k = R * block_gamma / 3;

  timed_stream ts;
  device_buffer d_c, d_offsets, d_batch, d_values, d_lengths, d_status, d_result, ws;
  if (!check(state, ts.create(), "stream / event creation") || !upload(state, d_c, c)
      || !upload(state, d_offsets, offsets) || !upload(state, d_batch, batches)
      || !upload(state, d_values, values)
      || !check(
          state, d_lengths.allocate(static_cast<std::size_t>(R) * sizeof(index_t)), "cudaMalloc")
      || !check(
          state, d_status.allocate(static_cast<std::size_t>(R) * sizeof(row_status)), "cudaMalloc")
      || !check(state, d_result.allocate(sizeof(sched::schedule_result)), "cudaMalloc"))
    return;
  specdec::cuda::prefix_sched_problem p;
  p.requests = R;
  p.max_positions = block_gamma;
  p.total = R * block_gamma;
  p.c = d_c.as<const double>();
  p.offsets = d_offsets.as<const index_t>();
  p.sps_batch = d_batch.as<const index_t>();
  p.sps_values = d_values.as<const double>();
  p.sps_points = table.size();
  p.admission = mode;
  p.k = k;
  p.lengths = d_lengths.as<index_t>();
  p.status = d_status.as<row_status>();
  p.result = d_result.as<sched::schedule_result>();
  const specdec::cuda::prefix_scheduler<> scheduler;
  const std::size_t bytes = scheduler.workspace_bytes(p);
  if (!check(state, ws.allocate(bytes), "cudaMalloc (workspace)"))
    return;
  const double seconds = timed_loop(state, ts, [&] {
    return check(state, scheduler.run(p, ws.ptr, bytes, ts.stream), "prefix_scheduler::run");
  });
  if (!(seconds > 0.0))
    return;
  std::vector<sched::schedule_result> res(1);
  if (!download(state, res, d_result))
    return;

  std::vector<index_t> lengths(static_cast<std::size_t>(R));
  double host = 0.0;
  sched::prefix_scheduler host_scheduler;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    status s{};
    if (mode == specdec::cuda::prefix_admission::top_k)
      s = host_scheduler.top_k(c, offsets, k, lengths);
    else
      s = host_scheduler.schedule(c,
                                  offsets,
                                  table,
                                  lengths,
                                  nullptr,
                                  mode == specdec::cuda::prefix_admission::global
                                      ? sched::schedule_mode::global
                                      : sched::schedule_mode::early_stop);
    const auto t1 = std::chrono::steady_clock::now();
    if (!check(state, s, "host scheduler"))
      return;
    host += std::chrono::duration<double>(t1 - t0).count() / 3.0;
  }
  state.counters["copy_GBps"] = base->read_bytes_per_second * 1e-9;
  state.counters["items_per_s"] = static_cast<double>(R * block_gamma) / seconds;
  state.counters["admitted"] = static_cast<double>(res[0].admitted) / static_cast<double>(R);
  state.counters["host_us"] = host * 1e6;
}

// ---------------------------------------------------------------------------------------------
// Registration.

const bool registered = [] {
  for (int v : {32000, 151936})
    for (int r : {1, 32, 128}) {
      benchmark::RegisterBenchmark("BM_cuda_dspark_sampler/fp32", BM_cuda_dspark_sampler<float>)
          ->Args({r, v})
          ->ArgNames({"batch", "vocab"})
          ->UseManualTime()
          ->MinTime(0.05)
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark("BM_cuda_dspark_sampler/bf16", BM_cuda_dspark_sampler<bfloat16>)
          ->Args({r, v})
          ->ArgNames({"batch", "vocab"})
          ->UseManualTime()
          ->MinTime(0.05)
          ->Unit(benchmark::kMicrosecond);
    }
  using specdec::cuda::prefix_admission;
  for (const prefix_admission mode :
       {prefix_admission::early_stop, prefix_admission::global, prefix_admission::top_k})
    for (int r : {256, 4096, 65536})
      benchmark::RegisterBenchmark(
          mode == prefix_admission::early_stop ? "BM_cuda_dspark_scheduler/early_stop"
          : mode == prefix_admission::global   ? "BM_cuda_dspark_scheduler/global"
                                               : "BM_cuda_dspark_scheduler/top_k",
          [mode](benchmark::State& st) { BM_cuda_dspark_scheduler(st, mode); })
          ->Arg(r)
          ->ArgName("batch")
          ->UseManualTime()
          ->MinTime(0.05)
          ->Unit(benchmark::kMicrosecond);
  return true;
}();

} // namespace
