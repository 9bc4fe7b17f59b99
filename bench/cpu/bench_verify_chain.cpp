// SPDX-License-Identifier: Apache-2.0
// Host batch verification of chain drafts (cpu::verify_chain_batch) on fp32 logit rows, measured
// as a ratio to this machine's read bandwidth, which the same binary measures (DESIGN section 5:
// the goal is >= 0.5 for plain rejection sampling).
//
// Inputs (generated once per vocabulary, outside every timed loop, fixed seeds): target rows of
// normal logits (sigma 1.5) with 1-8 peaked tokens holding most of the mass; draft rows = target
// rows + normal noise (sigma 0.6), so acceptance is partial (tau is reported); draft tokens
// sampled from the processed draft rows (the same sampling parameters the verifier applies).
// Each benchmark lays its batch out in as many copies as fill >= 1 GiB and verifies a different
// copy every iteration, so rows come from DRAM as in the baseline (the host L3 is 300 MiB).
// SPECDEC_BENCH_HOT=1 verifies one copy over and over (cache-resident rows) instead.
//
// Counters (rates are per second):
//   bytes_read  bytes of rows the rule read, computed per iteration from its outcomes: token-wise
//               rules stop at the first rejection, so only target rows 0..accepted and draft rows
//               0..min(accepted, K-1) count (V * 4 bytes each), plus the residual passes' re-reads
//               (mass: target + draft row; inverse CDF: the prefix up to the drawn token's chunk,
//               and that chunk again) and the bonus draw's prefix. Top-k/top-p bisection probes
//               re-read rows too; they are NOT counted here (see `passes`), so they show up as
//               a lower ratio rather than as extra "bandwidth".
//   bytes_all   the naive figure: every row of the batch the rule may read (K+1 target rows,
//               plus K draft rows for rules that read draft rows).
//   ratio       bytes_read/s divided by the read-bandwidth baseline; ratio_all likewise. The
//               baseline (BM_cpu_read_bandwidth's loop: 32 accumulators, 1 GiB, best of five
//               passes) is measured once, on first use; times are process CPU time, as GB's.
//   tau         mean tokens emitted per request (accepted + 1).
//   passes      executor passes over the vocabulary per request (each primitive call counted
//               once; inverse CDF counted by the elements it visited), bisection probes included;
//               measured outside the timed loop on the first (up to) 4 requests.
//
// Run: specdec.bench.cpu.verify_chain [--benchmark_filter=rejection/] [--benchmark_format=json]

#include <specdec/specdec.hpp>

#include <benchmark/benchmark.h>

#include "../support/synthetic.hpp"
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <type_traits>
#include <vector>

namespace {

using namespace specdec;

// ---------------------------------------------------------------------------------------------
// Read-bandwidth baseline.

constexpr std::size_t cold_bytes = std::size_t{1} << 30; ///< > the 300 MiB L3 of the build host

/// Sums n floats with 32 independent accumulators (compilers keep them in SIMD registers, so the
/// loop is bound by memory, not by the latency of one add chain).
float sum_stream(const float* p, std::size_t n) {
  constexpr std::size_t lanes = 32;
  float acc[lanes] = {};
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    for (std::size_t l = 0; l < lanes; ++l)
      acc[l] += p[i + l];
  for (; i < n; ++i)
    acc[0] += p[i];
  float s = 0.0f;
  for (float a : acc)
    s += a;
  return s;
}

/// Process CPU time in seconds (what Google Benchmark divides rate counters by).
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// Best of five passes over 1 GiB, in bytes per second of CPU time.
double measure_read_bandwidth() {
  const std::size_t n = cold_bytes / sizeof(float);
  const std::vector<float> buf(n, 1.0f);
  double best = 0.0;
  for (int pass = 0; pass < 5; ++pass) {
    const double t0 = cpu_seconds();
    float s = sum_stream(buf.data(), n);
    benchmark::DoNotOptimize(s);
    best = std::max(best, static_cast<double>(cold_bytes) / (cpu_seconds() - t0));
  }
  return best;
}

/// The baseline every verify benchmark divides by: measured once, on first use.
double read_bandwidth_baseline() {
  static const double bw = measure_read_bandwidth();
  return bw;
}

void BM_cpu_read_bandwidth(benchmark::State& state) {
  const double baseline = read_bandwidth_baseline();
  const auto bytes = static_cast<std::size_t>(state.range(0)) << 20;
  const std::vector<float> buf(bytes / sizeof(float), 1.0f);
  const double t0 = cpu_seconds();
  for (auto _ : state) {
    float s = sum_stream(buf.data(), buf.size());
    benchmark::DoNotOptimize(s);
  }
  const double seconds = cpu_seconds() - t0;
  const double total = static_cast<double>(bytes) * static_cast<double>(state.iterations());
  state.counters["bytes_read"] = benchmark::Counter(total, benchmark::Counter::kIsRate);
  state.counters["ratio"] = total / seconds / baseline;
}
BENCHMARK(BM_cpu_read_bandwidth)->Arg(1024)->ArgName("MiB")->MinTime(0.2);

// ---------------------------------------------------------------------------------------------
// Synthetic rows.

using specdec_bench::bulk_sigma;
using specdec_bench::draft_noise;
using specdec_bench::make_target_row;
using specdec_bench::params_for;
using specdec_bench::splitmix64;

constexpr index_t pool_size = 128; ///< distinct (target, draft) row pairs per vocabulary

/// Row pairs and draft tokens for one vocabulary (tokens per parameter set, made on first use).
struct row_pool {
  index_t vocab = 0;
  std::vector<float> target, draft; // pool_size rows each
  std::vector<token_id> tokens[2];  // [top_p]: sampled from the processed draft row

  explicit row_pool(index_t v)
      : vocab(v)
      , target(static_cast<std::size_t>(pool_size * v))
      , draft(target.size()) {
    splitmix64 g{0x5eed0000u + static_cast<std::uint64_t>(v)};
    for (index_t r = 0; r < pool_size; ++r) {
      make_target_row(target_row(r), v, g);
      for (index_t i = 0; i < v; ++i)
        draft_row(r)[i] = target_row(r)[i] + draft_noise * g.normal();
    }
  }
  float* target_row(index_t r) {
    return target.data() + r * vocab;
  }
  float* draft_row(index_t r) {
    return draft.data() + r * vocab;
  }
  const std::vector<token_id>& tokens_for(bool top_p) {
    std::vector<token_id>& t = tokens[top_p ? 1 : 0];
    if (!t.empty())
      return t;
    const cpu::serial_executor ex{};
    const sampling::sampling_params params = params_for(top_p);
    splitmix64 g{0xd4af7u};
    for (index_t r = 0; r < pool_size; ++r) {
      const sampling::dist_row<float> row{draft_row(r), vocab, distribution_kind::logits};
      const sampling::row_stats st = sampling::prepare_row(ex, row, params);
      t.push_back(static_cast<token_id>(sampling::sample_row(ex, row, st, g.uniform())));
    }
    return t;
  }
};

row_pool& pool_for(index_t vocab) {
  static std::map<index_t, std::unique_ptr<row_pool>> pools;
  auto& p = pools[vocab];
  if (!p)
    p = std::make_unique<row_pool>(vocab);
  return *p;
}

/// Row storage shared by all benchmarks (grown, never shrunk: no page faults after the first).
float* arena(std::size_t floats) {
  static std::unique_ptr<float[]> data;
  static std::size_t capacity = 0;
  if (floats > capacity) {
    data.reset();
    data.reset(new float[floats]);
    capacity = floats;
  }
  return data.get();
}

// ---------------------------------------------------------------------------------------------
// What each rule reads (bytes), from its outcome.

enum class rule_kind { greedy, rejection, one_hot_rejection, block };

template <class Policy>
constexpr rule_kind kind_of() {
  if constexpr (std::is_same_v<Policy, verify::greedy>)
    return rule_kind::greedy;
  else if constexpr (std::is_same_v<Policy, verify::rejection_sampling>)
    return rule_kind::rejection;
  else if constexpr (std::is_same_v<Policy, verify::one_hot_rejection>)
    return rule_kind::one_hot_rejection;
  else {
    static_assert(std::is_same_v<Policy, verify::block_verification>);
    return rule_kind::block;
  }
}

/// Elements serial_executor::sample_inverse_cdf visits to return `t`: every chunk up to t's,
/// then t's chunk again up to t.
index_t cdf_elements(index_t vocab, token_id t) {
  constexpr index_t chunk = cpu::serial_executor::chunk;
  const index_t c = t / chunk;
  return std::min(vocab, (c + 1) * chunk) + (t - c * chunk + 1);
}

/// Elements (fp32 values) one request's verification read, valid input assumed.
index_t
elements_read(rule_kind rule, index_t vocab, index_t k, index_t a, token_id next, row_status st) {
  const bool fallback = st.has(row_status::residual_fallback);
  const index_t cdf = cdf_elements(vocab, next);
  switch (rule) {
  case rule_kind::greedy:
    return (a + 1) * vocab;
  case rule_kind::rejection:
  case rule_kind::one_hot_rejection: {
    const index_t sides = rule == rule_kind::rejection ? 2 : 1; // rows a residual pass reads
    index_t rows = a + 1;                                       // target rows 0..a
    if (rule == rule_kind::rejection)
      rows += std::min(a + 1, k); // draft rows 0..min(a, K-1)
    if (a == k)
      return rows * vocab + cdf;                                    // bonus draw
    return (rows + sides) * vocab + (fallback ? cdf : sides * cdf); // residual mass + draw
  }
  case rule_kind::block: {
    // Every target row (K+1) and draft row (K), the next position's excess mass (2 rows) for
    // positions 1..K-1, then the bonus draw or the residual at tau (both rows again: stats, mass
    // and draw).
    const index_t rows = (k + 1) + k + 2 * (k - 1);
    if (a == k)
      return rows * vocab + cdf;
    return (rows + 4) * vocab + (fallback ? cdf : 2 * cdf);
  }
  }
  return 0;
}

/// A row_executor that counts the elements each primitive visits (for the `passes` counter).
struct counting_executor {
  cpu::serial_executor inner{};
  index_t* visited = nullptr;

  template <class Raw>
  row_scan_result scan_row(index_t n, Raw raw, weight_mode mode, float inv_temp) const {
    *visited += n;
    return inner.scan_row(n, raw, mode, inv_temp);
  }
  template <class F>
  float sum(index_t n, F f) const {
    *visited += n;
    return inner.sum(n, f);
  }
  template <class F>
  index_t sample_inverse_cdf(index_t n, F f, float target) const {
    index_t* v = visited;
    return inner.sample_inverse_cdf(
        n,
        [v, f](index_t i) {
          ++*v;
          return f(i);
        },
        target);
  }
  template <class Raw, class G>
  threshold_probe_result threshold_probe(index_t n, Raw raw, G g, float floor, float mid) const {
    *visited += n;
    return inner.threshold_probe(n, raw, g, floor, mid);
  }
  template <class Raw, class G, class Visit>
  auto radix_histogram(
      index_t n, Raw raw, G g, float floor, std::uint32_t prefix, int shift, Visit visit) const {
    *visited += n;
    return inner.radix_histogram(n, raw, g, floor, prefix, shift, visit);
  }
  // The fused truncation primitives, so that the counted passes are the ones the timed
  // cpu::serial_executor runs.
  static constexpr bool fused_truncation = cpu::serial_executor::fused_truncation;
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
    *visited += n;
    inner.key_histogram(n, raw, g, floor, prefix, shift, width, count, mass);
  }
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
    *visited += n;
    return inner.gather_keys(n, raw, g, floor, lo, hi, keys, weights, cap);
  }
  template <class Raw>
  row_scan_result scan_row_histogram(index_t n,
                                     Raw raw,
                                     float inv_temp,
                                     int width,
                                     std::uint32_t* count,
                                     float* mass,
                                     bool* ok) const {
    *visited += n;
    return inner.scan_row_histogram(n, raw, inv_temp, width, count, mass, ok);
  }
};
static_assert(row_executor<counting_executor>);

// ---------------------------------------------------------------------------------------------
// The verify benchmark.

/// One copy of a batch in the arena, with its own request ids and outputs.
struct batch_copy {
  verify::chain_batch<float> batch;
  std::vector<token_id> tokens;
  std::vector<std::uint64_t> ids;
  std::vector<std::int32_t> accepted;
  std::vector<token_id> next;
  std::vector<row_status> status;
  verify::chain_batch_output out() {
    return {accepted.data(), next.data(), status.data()};
  }
};

template <class Policy>
void BM_cpu_verify_chain(benchmark::State& state, Policy policy, bool top_p) {
  constexpr rule_kind rule = kind_of<Policy>();
  const index_t B = state.range(0), K = state.range(1), V = state.range(2);
  const double baseline = read_bandwidth_baseline();
  row_pool& pool = pool_for(V);
  const std::vector<token_id>& pool_tokens = pool.tokens_for(top_p);

  const index_t target_rows = B * (K + 1), draft_rows = B * K;
  const auto copy_floats = static_cast<std::size_t>((target_rows + draft_rows) * V);
  const bool hot = std::getenv("SPECDEC_BENCH_HOT") != nullptr;
  const std::size_t n_copies =
      hot ? 1
          : std::max<std::size_t>(1, (cold_bytes / sizeof(float) + copy_floats - 1) / copy_floats);
  float* rows = arena(n_copies * copy_floats);
  // The arena's rows depend only on (B, K, V, copies): consecutive benchmarks of one shape (the
  // rules and parameter sets registered next to each other) reuse them.
  static std::array<index_t, 4> filled{};
  const std::array<index_t, 4> shape{B, K, V, static_cast<index_t>(n_copies)};
  const bool fill = filled != shape;
  filled = shape;

  std::vector<index_t> offsets(static_cast<std::size_t>(B + 1));
  for (index_t b = 0; b <= B; ++b)
    offsets[static_cast<std::size_t>(b)] = b * K;
  const std::vector<index_t> positions(static_cast<std::size_t>(B), 1000);
  const sampling::sampling_params params = params_for(top_p);

  std::vector<batch_copy> copies(n_copies);
  const std::size_t row_bytes = sizeof(float) * static_cast<std::size_t>(V);
  index_t next_pair = 0;
  for (std::size_t c = 0; c < n_copies; ++c) {
    float* t = rows + c * copy_floats;
    float* d = t + target_rows * V;
    batch_copy& cp = copies[c];
    for (index_t b = 0; b < B; ++b) {
      for (index_t j = 0; j <= K; ++j) {
        const index_t p = next_pair++ % pool_size;
        if (fill)
          std::memcpy(t + (b * (K + 1) + j) * V, pool.target_row(p), row_bytes);
        if (j == K)
          break; // the bonus row has no draft
        if (fill)
          std::memcpy(d + (b * K + j) * V, pool.draft_row(p), row_bytes);
        cp.tokens.push_back(pool_tokens[static_cast<std::size_t>(p)]);
      }
      cp.ids.push_back(static_cast<std::uint64_t>(static_cast<index_t>(c) * B + b));
    }
    cp.accepted.resize(static_cast<std::size_t>(B));
    cp.next.resize(static_cast<std::size_t>(B));
    cp.status.resize(static_cast<std::size_t>(B));
    verify::chain_batch<float>& vb = cp.batch;
    vb.batch = B;
    vb.draft_offsets = offsets.data();
    vb.tokens = cp.tokens.data();
    vb.target = make_matrix_view<const float>(t, target_rows, V);
    vb.draft = make_matrix_view<const float>(d, draft_rows, V);
    vb.params = &params;
    vb.params_stride = 0;
    vb.request_ids = cp.ids.data();
    vb.positions = positions.data();
    vb.seed = 42;
  }

  // Outside the timed loop: executor passes of the first (up to) 4 requests of copy 0.
  index_t visited = 0;
  const index_t probed = std::min<index_t>(B, 4);
  const counting_executor counter{cpu::serial_executor{}, &visited};
  for (index_t b = 0; b < probed; ++b) {
    const verify::chain_outcome o =
        policy.verify_chain(counter, copies[0].batch.request(b), copies[0].batch.uniforms(b));
    benchmark::DoNotOptimize(o);
  }

  const index_t all_rows = rule == rule_kind::rejection || rule == rule_kind::block
                               ? target_rows + draft_rows
                               : target_rows;
  double bytes_read = 0.0;
  index_t emitted = 0;
  std::size_t it = 0;
  const double t0 = cpu_seconds();
  for (auto _ : state) {
    batch_copy& cp = copies[it++ % n_copies];
    const status s = cpu::verify_chain_batch(policy, cp.batch, cp.out());
    if (!s.ok()) {
      state.SkipWithError(s.message());
      break;
    }
    index_t elems = 0;
    for (std::size_t b = 0; b < static_cast<std::size_t>(B); ++b) {
      elems += elements_read(rule, V, K, cp.accepted[b], cp.next[b], cp.status[b]);
      emitted += cp.accepted[b] + 1;
    }
    bytes_read += static_cast<double>(elems) * sizeof(float);
  }
  const double seconds = cpu_seconds() - t0;
  const double bytes_all =
      static_cast<double>(all_rows * V) * sizeof(float) * static_cast<double>(state.iterations());
  using C = benchmark::Counter;
  state.counters["bytes_read"] = C(bytes_read, C::kIsRate);
  state.counters["bytes_all"] = C(bytes_all, C::kIsRate);
  state.counters["ratio"] = bytes_read / seconds / baseline;
  state.counters["ratio_all"] = bytes_all / seconds / baseline;
  state.counters["tau"] = static_cast<double>(emitted)
                          / static_cast<double>(B * std::max<index_t>(1, static_cast<index_t>(it)));
  state.counters["passes"] = static_cast<double>(visited) / static_cast<double>(V * probed);
}

template <class Policy>
void add(const char* name, Policy policy, bool top_p, int batch, int k, int vocab) {
  benchmark::RegisterBenchmark(
      name, [=](benchmark::State& st) { BM_cpu_verify_chain(st, policy, top_p); })
      ->Args({batch, k, vocab})
      ->ArgNames({"batch", "k", "vocab"})
      ->MinTime(0.05);
}

/// The grids, registered shape by shape (so rules of one shape share the arena's rows): the
/// headline rule over V x B x K (vocab outermost, one table per V), with and without top-p; then
/// the other rules on a smaller grid.
const bool registered = [] {
  for (int v : {32000, 128256, 151936})
    for (int b : {1, 16, 64})
      for (int k : {1, 4, 8, 16}) {
        add("BM_cpu_verify_chain/rejection", verify::rejection_sampling{}, false, b, k, v);
        add("BM_cpu_verify_chain/rejection_top_p", verify::rejection_sampling{}, true, b, k, v);
      }
  for (int v : {32000, 151936})
    for (int b : {1, 16})
      for (int k : {4, 8}) {
        add("BM_cpu_verify_chain/greedy", verify::greedy{}, false, b, k, v);
        add("BM_cpu_verify_chain/one_hot_rejection", verify::one_hot_rejection{}, false, b, k, v);
        add("BM_cpu_verify_chain/one_hot_rejection_top_p",
            verify::one_hot_rejection{},
            true,
            b,
            k,
            v);
        add("BM_cpu_verify_chain/block", verify::block_verification{}, false, b, k, v);
        add("BM_cpu_verify_chain/block_top_p", verify::block_verification{}, true, b, k, v);
      }
  return true;
}();

} // namespace
