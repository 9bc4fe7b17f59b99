// SPDX-License-Identifier: Apache-2.0
//
// The n-gram (prompt-lookup) drafter: per-step cost and automaton build rate.
//
//   BM_propose_ngram_step/context:{1k,16k,256k}
//     One decoding step: the context grows by one token, then propose() absorbs it and drafts up
//     to 8 tokens. The work per step does not depend on the context length (the automaton is
//     updated incrementally: see the probes counter); the time grows only with the memory
//     level the automaton lives in (about 11 cache-line misses per step, measured with
//     cachegrind at 256k: L2-resident at 1k, L3-resident at 256k, DRAM beyond). Every
//     context/4 steps (at least 256) the proposer is restored, outside the timed region, from a
//     copy made at the starting context, so the context stays within 25% of its nominal length.
//     counters: tokens/s (context tokens absorbed per second = steps per second), draft_len (mean
//     tokens drafted per step), match_len (mean last_match_length()), probes (mean hash probes
//     per step).
//   BM_propose_ngram_build/context:{1k,16k,256k}
//     Building the automaton of a whole context from scratch (propose() of a new request).
//     counters: tokens/s (context tokens absorbed per second).
//
// Inputs (generated once, outside every timed loop, fixed seed): a 32000-token vocabulary; the
// text mixes uniformly random tokens with copies of earlier passages (8-64 tokens, 30% of steps),
// so the drafter finds matches of realistic lengths.
//
// Run: specdec.bench.propose.ngram [--benchmark_filter=step] [--benchmark_format=json]

#include <specdec/propose/ngram.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <random>
#include <vector>

namespace {

using namespace specdec;

/// A text of n tokens over a 32000-token vocabulary with copied passages.
std::vector<token_id> make_text(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<token_id> vocab(0, 31999);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::uniform_int_distribution<std::size_t> passage(8, 64);
  std::vector<token_id> t;
  t.reserve(n);
  while (t.size() < n) {
    if (t.size() > 64 && coin(rng) < 0.3) {
      const std::size_t len = passage(rng);
      const std::size_t start = std::uniform_int_distribution<std::size_t>(0, t.size() - 1)(rng);
      for (std::size_t k = 0; k < len && t.size() < n; ++k)
        t.push_back(t[start + k]);
    } else {
      t.push_back(vocab(rng));
    }
  }
  return t;
}

void BM_propose_ngram_step(benchmark::State& state) {
  const auto context = static_cast<std::size_t>(state.range(0));
  const std::size_t window = std::max<std::size_t>(256, context / 4);
  const std::vector<token_id> text = make_text(context + window, 17);
  std::array<token_id, 8> draft{};

  propose::ngram_proposer base(propose::ngram_config{1, 0, 8});
  draft_block b;
  b.tokens = {draft.data(), 8};
  const draft_request start{1, {text.data(), static_cast<index_t>(context)}, 8};
  if (!base.propose(start, b).ok()) {
    state.SkipWithError("propose failed");
    return;
  }
  propose::ngram_proposer p = base;
  std::size_t n = context;
  std::int64_t drafted = 0;
  std::int64_t matched = 0;
  std::int64_t probes = -base.automaton().probe_count();
  for (auto _ : state) {
    if (n == context + window) {
      state.PauseTiming();
      probes += p.automaton().probe_count() - base.automaton().probe_count();
      p = base; // vector assignments: no reallocation after the first
      n = context;
      state.ResumeTiming();
    }
    ++n;
    const draft_request r{1, {text.data(), static_cast<index_t>(n)}, 8};
    const status s = p.propose(r, b);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(draft.data());
    drafted += b.length;
    matched += p.last_match_length();
  }
  probes += p.automaton().probe_count();
  const auto steps = static_cast<double>(state.iterations());
  state.counters["tokens/s"] = benchmark::Counter(steps, benchmark::Counter::kIsRate);
  state.counters["draft_len"] = static_cast<double>(drafted) / steps;
  state.counters["match_len"] = static_cast<double>(matched) / steps;
  state.counters["probes"] = static_cast<double>(probes) / steps;
}
BENCHMARK(BM_propose_ngram_step)->ArgNames({"context"})->Arg(1 << 10)->Arg(1 << 14)->Arg(1 << 18);

void BM_propose_ngram_build(benchmark::State& state) {
  const auto context = static_cast<std::size_t>(state.range(0));
  const std::vector<token_id> text = make_text(context, 29);
  std::array<token_id, 8> draft{};
  draft_block b;
  b.tokens = {draft.data(), 8};
  propose::ngram_proposer p(propose::ngram_config{1, 0, 8});
  std::uint64_t id = 0;
  for (auto _ : state) {
    // a new request id every iteration: propose() rebuilds from the whole context
    const draft_request r{++id, {text.data(), static_cast<index_t>(context)}, 8};
    const status s = p.propose(r, b);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(draft.data());
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * static_cast<double>(context),
                         benchmark::Counter::kIsRate);
  state.counters["states/token"] =
      static_cast<double>(p.automaton().num_states()) / static_cast<double>(context);
}
BENCHMARK(BM_propose_ngram_build)
    ->ArgNames({"context"})
    ->Arg(1 << 10)
    ->Arg(1 << 14)
    ->Arg(1 << 18)
    ->Unit(benchmark::kMicrosecond);

} // namespace
