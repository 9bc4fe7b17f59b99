// SPDX-License-Identifier: Apache-2.0
// One processed row on the host: prepare_row (temperature only, top-p 0.9, top-k 50, both) and
// inverse-CDF sampling (with the row's stats prepared once) over one fp32 logit row of V entries
// (cache-resident: the row is read over and over), with the host executor. Issue 17's rows "one exp
// pass", "prepare_row with top-p" and "verification with top-p" are measured here and in
// bench_verify_chain.
//
// Counters:
//   ns_per_elem  nanoseconds per row entry (process CPU time of the timed loop)
//   vs_scalar    time of cpu::scalar_executor (the scalar lane loops and radix select, what the
//                executor did before its vector loops and fused truncation) / time of
//                cpu::serial_executor on the same row: the speed-up, measured side by side in
//                this process, best of five repetitions each
//   vs_temp      time of this op / time of a temperature-only prepare_row (the goal for top-k /
//                top-p: <= 2), with the same executor, best of five each
//
// Run: specdec.bench.cpu.row [--benchmark_format=json]

#include <specdec/specdec.hpp>

#include <benchmark/benchmark.h>

#include "../support/synthetic.hpp"
#include <algorithm>
#include <ctime>
#include <vector>

namespace {

using namespace specdec;

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

enum class op { temp, top_p, top_k, top_k_p, sample };

sampling::sampling_params params_of(op o) {
  sampling::sampling_params p;
  p.temperature = 0.8f;
  if (o == op::top_p || o == op::top_k_p)
    p.top_p = 0.9f;
  if (o == op::top_k || o == op::top_k_p)
    p.top_k = 50;
  return p;
}

template <class E>
float run_once(const E& ex,
               const sampling::dist_row<float>& row,
               op o,
               const sampling::row_stats& st) {
  if (o == op::sample)
    return static_cast<float>(sampling::sample_row(ex, row, st, 0.97f));
  return sampling::prepare_row(ex, row, params_of(o)).mass;
}

/// Best of five timings of `reps` runs, in seconds per run.
template <class E>
double best_of_five(const E& ex, const sampling::dist_row<float>& row, op o, int reps) {
  const sampling::row_stats st = sampling::prepare_row(ex, row, params_of(op::temp));
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    const double t0 = cpu_seconds();
    for (int i = 0; i < reps; ++i)
      benchmark::DoNotOptimize(run_once(ex, row, o, st));
    best = std::min(best, (cpu_seconds() - t0) / reps);
  }
  return best;
}

void BM_cpu_row(benchmark::State& state, op o) {
  const auto V = static_cast<index_t>(state.range(0));
  std::vector<float> logits(static_cast<std::size_t>(V));
  specdec_bench::splitmix64 g{7};
  specdec_bench::make_target_row(logits.data(), V, g);
  const sampling::dist_row<float> row{logits.data(), V, distribution_kind::logits};
  const cpu::serial_executor ex{};
  const int reps = std::max(1, static_cast<int>(2000000 / V));
  // Side-by-side references, outside the timed loop.
  const double t_vec = best_of_five(ex, row, o, reps);
  const double t_scalar = best_of_five(cpu::scalar_executor{}, row, o, reps);
  const double t_temp = best_of_five(ex, row, op::temp, reps);
  const sampling::row_stats st = sampling::prepare_row(ex, row, params_of(op::temp));
  const double t0 = cpu_seconds();
  for (auto _ : state)
    benchmark::DoNotOptimize(run_once(ex, row, o, st));
  const double seconds = cpu_seconds() - t0;
  state.counters["ns_per_elem"] =
      1e9 * seconds / static_cast<double>(state.iterations()) / static_cast<double>(V);
  state.counters["vs_scalar"] = t_scalar / t_vec;
  state.counters["vs_temp"] = t_vec / t_temp;
}

const bool registered = [] {
  const std::pair<const char*, op> ops[] = {{"BM_cpu_row/temperature", op::temp},
                                            {"BM_cpu_row/top_p", op::top_p},
                                            {"BM_cpu_row/top_k", op::top_k},
                                            {"BM_cpu_row/top_k_top_p", op::top_k_p},
                                            {"BM_cpu_row/sample", op::sample}};
  for (const auto& [name, o] : ops)
    for (const int v : {32000, 151936})
      benchmark::RegisterBenchmark(name, [o = o](benchmark::State& st) { BM_cpu_row(st, o); })
          ->Arg(v)
          ->ArgName("vocab")
          ->MinTime(0.1);
  return true;
}();

} // namespace
