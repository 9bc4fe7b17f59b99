// SPDX-License-Identifier: Apache-2.0
// Device batch verification of chain drafts (cuda::chain_verifier with verify::rejection_sampling
// on dense draft rows) on float, bfloat16 and half logit rows, measured as a ratio to this
// device's copy bandwidth, which the same binary measures, and against an unfused pipeline built
// from the same library pieces.
//
// Grid: B in {1, 8, 64, 256} x K in {1, 4, 8, 16} x V in {32000, 128256, 151936, 262144}, for each
// dtype, with sampling parameters T = 1, top-p 0.9 ("rejection_top_p") and T = 1 without
// truncation ("rejection"). Every point is registered; points whose target + draft rows exceed
// 2 GiB stop with "skipped: ..." (Google Benchmark 1.7 reports that as an error; nothing failed).
// Without a CUDA device every benchmark stops with "no CUDA device" and the binary exits 0.
//
// Inputs (fixed seeds, generated on the host once per (V, dtype) and uploaded once): 32 pairs of
// target rows (normal logits, sigma 1.5, plus 1-8 peaked tokens holding most of the mass) and
// draft rows (target + normal noise, sigma 0.6), rounded to the dtype. Draft tokens are sampled
// on the host from the processed draft rows (the parameters the verifier applies): a uniformly
// random token would mostly lie outside the top-p support, where q(x) = 0 is an input error
// (zero_draft_probability), not a verification. Each benchmark state gathers its batch (target
// row j of request b and its draft row come from the same pair) into device memory with a copy
// kernel, outside every timed region.
//
// Timing: CUDA events around the launch sequence on a non-default stream (manual time). The L2
// is overwritten (a memset of twice its size, outside the events) before every timed launch, so
// rows come from HBM; SPECDEC_BENCH_HOT=1 leaves the L2 alone (cache-resident small batches).
//
// Counters:
//   bytes_per_second  bytes of all target and draft rows (B (2K + 1) V sizeof(T), each read once)
//                     per second of the fused launch sequence (scan, prepare, verify kernels).
//   copy_GBps         the copy baseline: read bandwidth (bytes read / s, 1e9) of a grid-stride
//                     kernel copying 1 GiB to another buffer with 16-byte loads and stores, best
//                     of five, measured once per process on first use (BM_cuda_copy_bandwidth
//                     reports the same kernel as a benchmark).
//   ratio             bytes_per_second / the copy baseline's read bandwidth.
//   unfused_ratio     time of the unfused pipeline / time of the fused launch sequence, same point:
//                     (1) one CTA per target and draft row writes the processed probabilities
//                     (sampling::prepare_row with block::block_executor, then prob_at for every
//                     index) to a float buffer; (2) chain_verifier<rejection_sampling, float> on
//                     those probability rows with T = 1 and no truncation. Timed once per state:
//                     mean of 3 runs after a warm-up, each after an L2 overwrite.
//   tau               mean tokens emitted per request (accepted + 1), fused pipeline.
//   agree             fraction of requests where the fused and unfused pipelines return the same
//                     (accepted, next); they draw the same uniforms, so this is ~1 (float rounding
//                     of the two paths may split a decision on a boundary).
//   flagged           fraction of requests with an error flag in their status (expected 0).
//   slices            CTAs per row of the fused split-vocabulary pass (1: not split).
//
// Run: specdec.bench.cuda.verify_chain [--benchmark_filter=rejection_top_p/bfloat16]
//      [--benchmark_format=json]

#include <specdec/specdec.cuh>

#include <benchmark/benchmark.h>

#include "../support/device.cuh"
#include "../support/synthetic.hpp"
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cuda_runtime.h>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace specdec;

constexpr int threads = specdec_bench::harness_threads;  ///< threads per CTA of the harness
constexpr std::size_t row_budget = std::size_t{2} << 30; ///< skip points with more row bytes
constexpr int unfused_reps = 3;                          ///< timed runs of the unfused pipeline
constexpr std::int64_t pool_pairs = 32;                  ///< distinct (target, draft) row pairs
constexpr std::uint64_t batch_seed = 42;                 ///< chain_batch::seed

using specdec_bench::check;
using specdec_bench::copy_baseline;
using specdec_bench::copy_bytes;
using specdec_bench::copy_setup;
using specdec_bench::device_buffer;
using specdec_bench::download;
using specdec_bench::gather_rows;
using specdec_bench::has_device;
using specdec_bench::start;
using specdec_bench::timed;
using specdec_bench::timed_loop;
using specdec_bench::timed_stream;
using specdec_bench::upload;

// ---------------------------------------------------------------------------------------------
// Kernels of the harness (none of them is timed as part of a verification).

/// Unfused step 1: CTA r writes the processed probabilities of logit row r (temperature, then
/// truncation and renormalisation, as `params` say) to row r of `probs`. grid = rows.
template <class T>
__global__ void __launch_bounds__(threads) materialise_probs_kernel(
    const T* rows, index_t vocab, sampling::sampling_params params, float* probs) {
  using storage = specdec::cuda::block::block_storage<threads>;
  __shared__ alignas(16) unsigned char raw[sizeof(storage)]; // no constructors for __shared__
  const specdec::cuda::block::block_executor<threads> ex{reinterpret_cast<storage*>(raw), {}};
  const auto r = static_cast<index_t>(blockIdx.x);
  const sampling::dist_row<T> row{rows + r * vocab, vocab, distribution_kind::logits};
  const sampling::row_stats st = sampling::prepare_row(ex, row, params);
  float* out = probs + r * vocab;
  for (auto i = static_cast<index_t>(threadIdx.x); i < vocab; i += threads)
    out[i] = sampling::prob_at(row, st, i);
}

// ---------------------------------------------------------------------------------------------
// Copy-bandwidth baseline.

void BM_cuda_copy_bandwidth(benchmark::State& state) {
  const copy_baseline* base = start(state);
  if (base == nullptr)
    return;
  copy_setup c;
  if (!check(state, c.create(), "copy setup"))
    return;
  double total = 0.0;
  for (auto _ : state) {
    double seconds = 0.0;
    if (!check(state, c.run(seconds), "copy kernel"))
      break;
    state.SetIterationTime(seconds);
    total += seconds;
  }
  if (state.error_occurred() || !(total > 0.0))
    return;
  const double read = static_cast<double>(copy_bytes) * static_cast<double>(state.iterations());
  state.counters["bytes_per_second"] = read / total;
  state.counters["copy_GBps"] = base->read_bytes_per_second * 1e-9;
  state.counters["ratio"] = read / total / base->read_bytes_per_second;
}
BENCHMARK(BM_cuda_copy_bandwidth)
    ->Arg(1024)
    ->ArgName("MiB")
    ->UseManualTime()
    ->MinTime(0.2)
    ->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------------------------
// Synthetic rows.

using specdec_bench::bulk_sigma;
using specdec_bench::draft_noise;
using specdec_bench::make_target_row;
using specdec_bench::params_for;
using specdec_bench::splitmix64;

/// Float rows of one vocabulary: pool_pairs target rows, then their pool_pairs draft rows.
const std::vector<float>& float_rows(index_t vocab) {
  static index_t cached = 0;
  static std::vector<float> rows;
  if (cached == vocab)
    return rows;
  rows.assign(static_cast<std::size_t>(2 * pool_pairs * vocab), 0.0f);
  splitmix64 g{0x5eed0000u + static_cast<std::uint64_t>(vocab)};
  for (index_t p = 0; p < pool_pairs; ++p) {
    float* t = rows.data() + p * vocab;
    float* d = rows.data() + (pool_pairs + p) * vocab;
    make_target_row(t, vocab, g);
    for (index_t i = 0; i < vocab; ++i)
      d[i] = t[i] + draft_noise * g.normal();
  }
  cached = vocab;
  return rows;
}

/// The row pairs of one (vocabulary, dtype) on host and device, and draft tokens sampled from
/// the processed draft rows (per parameter set, made on first use).
template <class T>
struct row_pool {
  index_t vocab = 0;
  std::vector<T> rows; ///< 2 * pool_pairs rows: targets, then drafts
  device_buffer device;
  std::vector<token_id> tokens[2]; ///< [top_p]

  const std::vector<token_id>& tokens_for(bool top_p) {
    std::vector<token_id>& t = tokens[top_p ? 1 : 0];
    if (!t.empty())
      return t;
    const cpu::serial_executor ex{};
    const sampling::sampling_params params = params_for(top_p);
    splitmix64 g{0xd4af7u + (top_p ? 1u : 0u)};
    for (index_t p = 0; p < pool_pairs; ++p) {
      const sampling::dist_row<T> row{
          rows.data() + (pool_pairs + p) * vocab, vocab, distribution_kind::logits};
      const sampling::row_stats st = sampling::prepare_row(ex, row, params);
      t.push_back(static_cast<token_id>(sampling::sample_row(ex, row, st, g.uniform())));
    }
    return t;
  }
};

/// The pool of (vocab, T), built and uploaded on first use (one vocabulary kept per dtype: the
/// grid is registered vocabulary by vocabulary). Null, with the state stopped, on failure.
template <class T>
row_pool<T>* pool_for(benchmark::State& state, index_t vocab) {
  static std::unique_ptr<row_pool<T>> pool;
  if (pool && pool->vocab == vocab)
    return pool.get();
  pool.reset();
  auto p = std::make_unique<row_pool<T>>();
  p->vocab = vocab;
  const std::vector<float>& f = float_rows(vocab);
  p->rows.resize(f.size());
  std::transform(
      f.begin(), f.end(), p->rows.begin(), [](float x) { return dtype_traits<T>::from_float(x); });
  if (!upload(state, p->device, p->rows))
    return nullptr;
  pool = std::move(p);
  return pool.get();
}

// ---------------------------------------------------------------------------------------------
// The verify benchmark.

using policy = verify::rejection_sampling;

template <class T>
void BM_cuda_verify_chain(benchmark::State& state, bool top_p) {
  const copy_baseline* base = start(state);
  if (base == nullptr)
    return;
  const index_t B = state.range(0), K = state.range(1), V = state.range(2);
  const index_t target_rows = B * (K + 1), draft_rows = B * K, n_rows = target_rows + draft_rows;
  const std::size_t row_bytes = static_cast<std::size_t>(V) * sizeof(T);
  const std::size_t rows_bytes = static_cast<std::size_t>(n_rows) * row_bytes;
  if (rows_bytes > row_budget) {
    state.SkipWithError("skipped: target + draft rows exceed the 2 GiB budget");
    return;
  }
  if (row_bytes % sizeof(uint4) != 0) {
    state.SkipWithError("V * sizeof(T) must be a multiple of 16 bytes (gather kernel)");
    return;
  }
  row_pool<T>* pool = pool_for<T>(state, V);
  if (pool == nullptr)
    return;
  const std::vector<token_id>& pool_tokens = pool->tokens_for(top_p);

  // The batch on the host: offsets, tokens, the pool row behind every batch row.
  std::vector<index_t> offsets(static_cast<std::size_t>(B + 1));
  std::vector<token_id> tokens(static_cast<std::size_t>(draft_rows));
  std::vector<int> src_row(static_cast<std::size_t>(n_rows));
  std::vector<std::uint64_t> ids(static_cast<std::size_t>(B));
  const std::vector<index_t> positions(static_cast<std::size_t>(B), 1000);
  for (index_t b = 0; b < B; ++b) {
    offsets[static_cast<std::size_t>(b + 1)] = (b + 1) * K;
    ids[static_cast<std::size_t>(b)] = static_cast<std::uint64_t>(b);
    for (index_t j = 0; j <= K; ++j) {
      const index_t p = (b * (K + 1) + j) % pool_pairs;
      src_row[static_cast<std::size_t>(b * (K + 1) + j)] = static_cast<int>(p);
      if (j == K)
        break; // the bonus row has no draft
      src_row[static_cast<std::size_t>(target_rows + b * K + j)] = static_cast<int>(pool_pairs + p);
      tokens[static_cast<std::size_t>(b * K + j)] = pool_tokens[static_cast<std::size_t>(p)];
    }
  }
  // [0]: the point's parameters (fused pipeline, unfused step 1); [1]: T = 1, no truncation
  // (unfused step 2 on probability rows).
  const std::vector<sampling::sampling_params> params{params_for(top_p), params_for(false)};

  // Device buffers, filled once per state.
  timed_stream ts;
  device_buffer rows, probs, d_src, d_offsets, d_tokens, d_ids, d_positions, d_params;
  device_buffer d_accepted, d_next, d_status, ws_fused, ws_unfused;
  const auto out_count = static_cast<std::size_t>(2 * B); // [0, B): fused; [B, 2B): unfused
  if (!check(state, ts.create(), "stream / event creation")
      || !check(state, rows.allocate(rows_bytes), "cudaMalloc (rows)")
      || !check(state,
                probs.allocate(static_cast<std::size_t>(n_rows * V) * sizeof(float)),
                "cudaMalloc (probabilities)")
      || !upload(state, d_src, src_row) || !upload(state, d_offsets, offsets)
      || !upload(state, d_tokens, tokens) || !upload(state, d_ids, ids)
      || !upload(state, d_positions, positions) || !upload(state, d_params, params)
      || !check(state, d_accepted.allocate(out_count * sizeof(std::int32_t)), "cudaMalloc")
      || !check(state, d_next.allocate(out_count * sizeof(token_id)), "cudaMalloc")
      || !check(state, d_status.allocate(out_count * sizeof(row_status)), "cudaMalloc"))
    return;
  if (!gather_rows(
          state, rows.ptr, pool->device.ptr, d_src.as<const int>(), n_rows, row_bytes, ts.stream))
    return;

  // The two problems.
  specdec::cuda::chain_problem<T> fused;
  {
    verify::chain_batch<T>& fb = fused.batch;
    fb.batch = B;
    fb.draft_offsets = d_offsets.as<const index_t>();
    fb.tokens = d_tokens.as<const token_id>();
    fb.target = make_matrix_view<const T>(rows.as<const T>(), target_rows, V);
    fb.draft = make_matrix_view<const T>(rows.as<const T>() + target_rows * V, draft_rows, V);
    fb.params = d_params.as<const sampling::sampling_params>();
    fb.params_stride = 0;
    fb.request_ids = d_ids.as<const std::uint64_t>();
    fb.positions = d_positions.as<const index_t>();
    fb.seed = batch_seed;
    fused.out = {d_accepted.as<std::int32_t>(), d_next.as<token_id>(), d_status.as<row_status>()};
  }
  specdec::cuda::chain_problem<float> unfused;
  {
    verify::chain_batch<float>& ub = unfused.batch;
    ub.batch = B;
    ub.draft_offsets = fused.batch.draft_offsets;
    ub.tokens = fused.batch.tokens;
    ub.target = make_matrix_view<const float>(probs.as<const float>(), target_rows, V);
    ub.draft =
        make_matrix_view<const float>(probs.as<const float>() + target_rows * V, draft_rows, V);
    ub.target_kind = distribution_kind::probabilities;
    ub.draft_kind = distribution_kind::probabilities;
    ub.params = fused.batch.params + 1;
    ub.params_stride = 0;
    ub.request_ids = fused.batch.request_ids;
    ub.positions = fused.batch.positions;
    ub.seed = batch_seed;
    unfused.out = {fused.out.accepted + B, fused.out.next + B, fused.out.status + B};
  }
  const specdec::cuda::chain_verifier<policy, T> fused_verifier{};
  const specdec::cuda::chain_verifier<policy, float> unfused_verifier{};
  const std::size_t fused_bytes = fused_verifier.workspace_bytes(fused);
  const std::size_t unfused_bytes = unfused_verifier.workspace_bytes(unfused);
  if (!check(state, ws_fused.allocate(fused_bytes), "cudaMalloc (workspace)")
      || !check(state, ws_unfused.allocate(unfused_bytes), "cudaMalloc (workspace)"))
    return;

  const auto run_fused = [&] {
    return check(state,
                 fused_verifier.run(fused, ws_fused.ptr, fused_bytes, ts.stream),
                 "chain_verifier::run (fused)");
  };
  const auto run_unfused = [&] {
    materialise_probs_kernel<T><<<static_cast<unsigned>(n_rows), threads, 0, ts.stream>>>(
        rows.as<const T>(), V, params[0], probs.as<float>());
    return check(state, cudaGetLastError(), "materialise_probs_kernel")
           && check(state,
                    unfused_verifier.run(unfused, ws_unfused.ptr, unfused_bytes, ts.stream),
                    "chain_verifier::run (unfused)");
  };
  // Unfused: warm-up, then the mean of unfused_reps runs. Fused: warm-up (module loading), then
  // the main loop.
  double unfused_seconds = 0.0;
  if (!run_unfused() || !check(state, cudaStreamSynchronize(ts.stream), "warm-up"))
    return;
  for (int rep = 0; rep < unfused_reps; ++rep) {
    double seconds = 0.0;
    if (!timed(state, ts, run_unfused, seconds))
      return;
    unfused_seconds += seconds / unfused_reps;
  }
  const double fused_seconds = timed_loop(state, ts, run_fused);
  if (!(fused_seconds > 0.0))
    return;

  // Outcomes (outside timing): the last fused run and the last unfused run.
  std::vector<std::int32_t> accepted(out_count);
  std::vector<token_id> next(out_count);
  std::vector<row_status> st(out_count);
  if (!download(state, accepted, d_accepted) || !download(state, next, d_next)
      || !download(state, st, d_status))
    return;
  double emitted = 0.0, agree = 0.0, flagged = 0.0;
  for (std::size_t b = 0; b < static_cast<std::size_t>(B); ++b) {
    const std::size_t u = b + static_cast<std::size_t>(B);
    emitted += accepted[b] + 1.0;
    agree += accepted[b] == accepted[u] && next[b] == next[u] ? 1.0 : 0.0;
    flagged += st[b].ok() ? 0.0 : 1.0;
  }

  const double bytes_per_second = static_cast<double>(rows_bytes) / fused_seconds;
  const auto requests = static_cast<double>(B);
  state.counters["bytes_per_second"] = bytes_per_second;
  state.counters["copy_GBps"] = base->read_bytes_per_second * 1e-9;
  state.counters["ratio"] = bytes_per_second / base->read_bytes_per_second;
  state.counters["unfused_ratio"] = unfused_seconds / fused_seconds;
  state.counters["tau"] = emitted / requests;
  state.counters["agree"] = agree / requests;
  state.counters["flagged"] = flagged / requests;
  state.counters["slices"] = fused_verifier.slices(fused);
}

template <class T>
void add(const char* family, bool top_p, int batch, int k, int vocab) {
  const std::string name =
      std::string("BM_cuda_verify_chain/") + family + "/" + dtype_traits<T>::name;
  benchmark::RegisterBenchmark(
      name.c_str(), [top_p](benchmark::State& st) { BM_cuda_verify_chain<T>(st, top_p); })
      ->Args({batch, k, vocab})
      ->ArgNames({"batch", "k", "vocab"})
      ->UseManualTime()
      ->MinTime(0.05)
      ->Unit(benchmark::kMicrosecond);
}

template <class T>
void add_dtype(int vocab) {
  for (const bool top_p : {true, false})
    for (int b : {1, 8, 64, 256})
      for (int k : {1, 4, 8, 16})
        add<T>(top_p ? "rejection_top_p" : "rejection", top_p, b, k, vocab);
}

/// The grid, vocabulary outermost (each (V, dtype) pool is built and uploaded once), then dtype,
/// parameter set, B and K.
const bool registered = [] {
  for (int v : {32000, 128256, 151936, 262144}) {
    add_dtype<float>(v);
    add_dtype<specdec::bfloat16>(v);
    add_dtype<specdec::half>(v);
  }
  return true;
}();

} // namespace
