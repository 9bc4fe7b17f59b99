// SPDX-License-Identifier: Apache-2.0
//
// Host cost of DSpark's prefix scheduler (sched/prefix_scheduler.hpp), so that kernel tuners know
// from which batch size the device version pays: the scheduler's selection (bucketed candidate
// values sorted only as far as the walk goes, a threshold with the (j, r) tie rule for the
// lengths) against a naive full sort of every candidate (what a sort-based kernel does), at
// gamma = 7.
//
//   BM_sched_prefix_select/requests:{64,256,1024,4096}/mode:{0,1,2,3}
//     prefix_scheduler (reused scratch) on R requests. mode 0 = early_stop (Algorithm 1), 1 =
//     global search (the whole path unless its bound stops it), 2 = top-K with K = 4 R (half the
//     drafts), 3 = the same top-K also returning tau (what async_top_k_scheduler asks for).
//     counters: us/step = CPU microseconds per call (one call schedules one decoding step of the
//     R requests), requests/s, admitted (draft tokens admitted per request), ratio = seconds per
//     call of the full-sort baseline below / seconds per call of the scheduler (> 1: the
//     scheduler is faster), the baseline measured once per (R, mode) in this binary on first use
//     (CPU time, >= 0.1 s). (Named BM_sched_prefix_heap while the scheduler merged the requests'
//     lists with a max-heap: 2.90 ms global / 1.66 ms top-K per step at R = 4096 on the 2-core
//     build VM, Release.)
//   BM_sched_prefix_full_sort/requests/mode
//     The baseline alone: cumulative products of every request, std::sort of all R gamma
//     candidates by (-a, j, r), then the same walk. counters: us/step, requests/s.
//
// Inputs (generated once per R, fixed seed): c ~ U(0.5, 1) (typical calibrated conditionals),
// 5% of them 1.0 (ties); the step curve is SPS(B) = 1 / (1 + B / 1024) sampled at B = 1 and every
// multiple of 64 up to R (gamma + 1) (a memory-bound step up to about a thousand tokens).
//
// Run: specdec.bench.cpu.scheduler [--benchmark_filter=select] [--benchmark_format=json]

#include <specdec/sched/prefix_scheduler.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <map>
#include <random>
#include <utility>
#include <vector>

namespace {

using namespace specdec;

constexpr index_t gamma_len = 7;

struct workload {
  std::vector<double> c;
  std::vector<index_t> offsets;
  sched::sps_table table;
};

const workload& make_workload(index_t requests) {
  static std::map<index_t, workload> cache;
  auto it = cache.find(requests);
  if (it != cache.end())
    return it->second;
  workload w;
  std::mt19937_64 rng(static_cast<std::uint64_t>(requests) * 7919u + 1u);
  std::uniform_real_distribution<double> u(0.5, 1.0), coin(0.0, 1.0);
  w.offsets.push_back(0);
  for (index_t r = 0; r < requests; ++r) {
    for (index_t j = 0; j < gamma_len; ++j)
      w.c.push_back(coin(rng) < 0.05 ? 1.0 : u(rng));
    w.offsets.push_back(static_cast<index_t>(w.c.size()));
  }
  std::vector<sched::sps_point> p{{1, 1.0 / (1.0 + 1.0 / 1024.0)}};
  for (index_t b = 64; b <= requests * (gamma_len + 1) + 64; b += 64)
    p.push_back({b, 1.0 / (1.0 + static_cast<double>(b) / 1024.0)});
  w.table = sched::sps_table(p);
  return cache.emplace(requests, std::move(w)).first->second;
}

/// The naive rule: every candidate materialised, fully sorted, then walked (reusable buffers).
struct full_sort_scheduler {
  struct cand {
    double a;
    index_t j, r;
  };
  std::vector<cand> e;
  std::vector<double> a;

  index_t run(const workload& w, int mode, std::vector<index_t>& lengths) {
    const index_t n = static_cast<index_t>(w.offsets.size()) - 1;
    e.clear();
    a.resize(w.c.size());
    for (index_t r = 0; r < n; ++r) {
      const auto o = static_cast<std::size_t>(w.offsets[static_cast<std::size_t>(r)]);
      const index_t g =
          w.offsets[static_cast<std::size_t>(r) + 1] - w.offsets[static_cast<std::size_t>(r)];
      const index_t m = sched::cumulative_products(w.c.data() + o, g, a.data() + o);
      for (index_t j = 0; j < m; ++j)
        e.push_back({a[o + static_cast<std::size_t>(j)], j + 1, r});
    }
    std::sort(e.begin(), e.end(), [](const cand& x, const cand& y) {
      return sched::schedule_before(x.a, x.j, x.r, y.a, y.j, y.r);
    });
    std::fill(lengths.begin(), lengths.end(), index_t{0});
    if (mode >= 2) {
      const index_t k = std::min<index_t>(4 * n, static_cast<index_t>(e.size()));
      double tau = static_cast<double>(n);
      for (index_t i = 0; i < k; ++i) {
        lengths[static_cast<std::size_t>(e[static_cast<std::size_t>(i)].r)] =
            e[static_cast<std::size_t>(i)].j;
        tau = sched::add_expected_tokens(tau, e[static_cast<std::size_t>(i)].a);
      }
      benchmark::DoNotOptimize(tau);
      return k;
    }
    index_t b = n;
    double tau = static_cast<double>(n);
    double best = sched::prefix_throughput(tau, w.table.at(b));
    index_t best_count = 0;
    for (std::size_t i = 0; i < e.size(); ++i) {
      ++b;
      tau = sched::add_expected_tokens(tau, e[i].a);
      const double theta = sched::prefix_throughput(tau, w.table.at(b));
      if (theta > best) {
        best = theta;
        best_count = static_cast<index_t>(i) + 1;
      } else if (mode == 0) {
        break;
      }
    }
    for (index_t i = 0; i < best_count; ++i)
      lengths[static_cast<std::size_t>(e[static_cast<std::size_t>(i)].r)] =
          e[static_cast<std::size_t>(i)].j;
    return best_count;
  }
};

index_t
run_select(sched::prefix_scheduler& s, const workload& w, int mode, std::vector<index_t>& lengths) {
  if (mode >= 2) {
    const index_t n = static_cast<index_t>(lengths.size());
    double tau = 0.0;
    if (!s.top_k(w.c, w.offsets, 4 * n, lengths, mode == 3 ? &tau : nullptr).ok())
      return -1;
    benchmark::DoNotOptimize(tau);
    return std::min<index_t>(4 * n, static_cast<index_t>(w.c.size()));
  }
  sched::schedule_result res{};
  const auto m = mode == 0 ? sched::schedule_mode::early_stop : sched::schedule_mode::global;
  if (!s.schedule(w.c, w.offsets, w.table, lengths, &res, m).ok())
    return -1;
  return res.admitted;
}

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// Seconds per call of the full-sort baseline, measured once per (R, mode).
double full_sort_seconds(index_t requests, int mode) {
  static std::map<std::pair<index_t, int>, double> cache;
  const auto key = std::make_pair(requests, mode);
  if (auto it = cache.find(key); it != cache.end())
    return it->second;
  const workload& w = make_workload(requests);
  full_sort_scheduler s;
  std::vector<index_t> lengths(static_cast<std::size_t>(requests));
  s.run(w, mode, lengths); // warm-up (buffers grow)
  std::int64_t calls = 0;
  const double t0 = cpu_seconds();
  double t = t0;
  while (t - t0 < 0.1) {
    benchmark::DoNotOptimize(s.run(w, mode, lengths));
    ++calls;
    t = cpu_seconds();
  }
  const double sec = (t - t0) / static_cast<double>(calls);
  cache.emplace(key, sec);
  return sec;
}

void BM_sched_prefix_select(benchmark::State& state) {
  const index_t requests = state.range(0);
  const int mode = static_cast<int>(state.range(1));
  const workload& w = make_workload(requests);
  const double baseline = full_sort_seconds(requests, mode);
  sched::prefix_scheduler s;
  std::vector<index_t> lengths(static_cast<std::size_t>(requests));
  index_t admitted = run_select(s, w, mode, lengths); // warm-up (scratch grows)
  if (admitted < 0) {
    state.SkipWithError("schedule failed");
    return;
  }
  const double t0 = cpu_seconds();
  for (auto _ : state) {
    admitted = run_select(s, w, mode, lengths);
    benchmark::DoNotOptimize(admitted);
    benchmark::ClobberMemory();
  }
  const double per_call = (cpu_seconds() - t0) / static_cast<double>(state.iterations());
  const double calls = static_cast<double>(state.iterations());
  state.counters["requests/s"] =
      benchmark::Counter(calls * static_cast<double>(requests), benchmark::Counter::kIsRate);
  state.counters["admitted"] = static_cast<double>(admitted) / static_cast<double>(requests);
  state.counters["ratio"] = baseline / per_call;
  state.counters["us/step"] = per_call * 1e6;
}

void BM_sched_prefix_full_sort(benchmark::State& state) {
  const index_t requests = state.range(0);
  const int mode = static_cast<int>(state.range(1));
  const workload& w = make_workload(requests);
  full_sort_scheduler s;
  std::vector<index_t> lengths(static_cast<std::size_t>(requests));
  index_t admitted = s.run(w, mode, lengths);
  const double t0 = cpu_seconds();
  for (auto _ : state) {
    admitted = s.run(w, mode, lengths);
    benchmark::DoNotOptimize(admitted);
    benchmark::ClobberMemory();
  }
  state.counters["us/step"] = (cpu_seconds() - t0) / static_cast<double>(state.iterations()) * 1e6;
  state.counters["requests/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * static_cast<double>(requests),
                         benchmark::Counter::kIsRate);
  state.counters["admitted"] = static_cast<double>(admitted) / static_cast<double>(requests);
}

void grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"requests", "mode"});
  for (const index_t r : {64, 256, 1024, 4096})
    for (const int m : {0, 1, 2, 3})
      b->Args({r, m});
}

} // namespace

BENCHMARK(BM_sched_prefix_select)->Apply(grid);
BENCHMARK(BM_sched_prefix_full_sort)->Apply(grid);
