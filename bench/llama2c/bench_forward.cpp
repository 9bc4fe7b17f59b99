// SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Forward-pass speed of the llama2.c backend on stories260K (single thread).
///
///   BM_llama2c_decode_plain   256 greedy tokens from BOS, one token per score() call (argmax
///                             included); counter tok/s. llama2.c's run.c does about 10-13k tok/s
///                             on the same machine.
///   BM_llama2c_score_T/T      one score() of T tokens after 128 committed tokens, rolled back
///                             after each call (T = 1, 2, 3, 4, 5, 6, 8, 12, 16); counters tok/s,
///                             us_per_call and c_ratio = c(T) / c(1), with c(1) measured once
///                             (best of 5 rounds of 2000 calls) at the same context.
///
/// The model folder comes from $SPECDEC_MODEL_DIR or the build's default (../shared/models).

#include <benchmark/benchmark.h>

#include "llama2c/model.hpp"
#include "llama2c/paths.hpp"
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using specdec::index_t;
using specdec::token_id;

constexpr index_t context = 128;

/// The model, the first `context + 16` greedy tokens from BOS, and c(1) at `context`.
struct fixture {
  llama2c::model model;
  bool ok = false;
  std::vector<token_id> seq;
  double c1_seconds = 0.0;

  fixture() {
    ok = llama2c::model::load(llama2c::default_model_dir() + "/stories260K.bin", model).ok();
    if (!ok)
      return;
    const index_t V = model.vocab_size();
    std::vector<float> row(static_cast<std::size_t>(V));
    seq = {1};
    for (index_t p = 0; p < context + 16; ++p) {
      const token_id t = seq.back();
      if (!model.score({0, {&t, 1}, p}, {row.data(), 1, V, V}).ok()) {
        ok = false;
        return;
      }
      seq.push_back(llama2c::argmax({row.data(), V}));
    }
    (void)model.cache().rollback(context);
    double best = 1e30;
    for (int round = 0; round < 5; ++round) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < 2000; ++i) {
        (void)model.score({0, {&seq[context], 1}, context}, {row.data(), 1, V, V});
        (void)model.cache().rollback(context);
      }
      const std::chrono::duration<double> d = std::chrono::steady_clock::now() - t0;
      best = std::min(best, d.count() / 2000);
    }
    c1_seconds = best;
  }
};

fixture& shared() {
  static fixture f;
  return f;
}

void BM_llama2c_decode_plain(benchmark::State& state) {
  fixture& f = shared();
  if (!f.ok) {
    state.SkipWithError("cannot load stories260K.bin (set SPECDEC_MODEL_DIR)");
    return;
  }
  llama2c::model& m = f.model;
  const index_t V = m.vocab_size();
  std::vector<float> row(static_cast<std::size_t>(V));
  constexpr int n = 256;
  token_id last = 0;
  for (auto _ : state) {
    m.reset();
    token_id t = 1;
    for (int p = 0; p < n; ++p) {
      if (!m.score({0, {&t, 1}, p}, {row.data(), 1, V, V}).ok()) {
        state.SkipWithError("score failed");
        return;
      }
      t = llama2c::argmax({row.data(), V});
    }
    last = t;
    benchmark::DoNotOptimize(last);
  }
  state.counters["tok/s"] = benchmark::Counter(n, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_llama2c_decode_plain)->Unit(benchmark::kMillisecond)->MinTime(1.0);

void BM_llama2c_score_T(benchmark::State& state) {
  fixture& f = shared();
  if (!f.ok) {
    state.SkipWithError("cannot load stories260K.bin (set SPECDEC_MODEL_DIR)");
    return;
  }
  llama2c::model& m = f.model;
  const index_t V = m.vocab_size();
  const index_t T = state.range(0);
  std::vector<float> rows(static_cast<std::size_t>(T * V));
  (void)m.cache().rollback(context);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    if (!m.score({0, {&f.seq[context], T}, context}, {rows.data(), T, V, V}).ok()) {
      state.SkipWithError("score failed");
      return;
    }
    (void)m.cache().rollback(context);
    benchmark::DoNotOptimize(rows.data());
  }
  const std::chrono::duration<double> d = std::chrono::steady_clock::now() - t0;
  const double per_call =
      d.count() / static_cast<double>(std::max<std::int64_t>(1, state.iterations()));
  state.counters["tok/s"] =
      benchmark::Counter(static_cast<double>(T), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["us_per_call"] = per_call * 1e6;
  state.counters["c_ratio"] = per_call / f.c1_seconds; // c(T) / c(1)
}
BENCHMARK(BM_llama2c_score_T)
    ->ArgName("T")
    ->Arg(1)
    ->Arg(2)
    ->Arg(3)
    ->Arg(4)
    ->Arg(5)
    ->Arg(6)
    ->Arg(8)
    ->Arg(12)
    ->Arg(16)
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(0.5);

} // namespace
