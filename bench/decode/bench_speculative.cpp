// SPDX-License-Identifier: Apache-2.0
//
// End-to-end plain vs speculative decoding on stories260K, measured in the same run (each
// iteration decodes the prompt once plainly and once speculatively through the same loop).
//
//   BM_decode_speculative/drafter:{0 none,1 ngram,2 early-exit}/draft_len:{-1 = auto,
//   k}/prompt:{0,1,2}
//     prompt 0: BOS only, greedy (the story llama2.c prints)
//     prompt 1: copy-heavy, greedy: BOS + the first 346 greedy tokens, which end where the model
//               starts a second story (BOS); it retells the first one for ~60 tokens (100 steps)
//     prompt 2: BOS only, temperature 1
//   counters: spec_tok/s, plain_tok/s, speedup (ratio of the two), tau, accepted per draft.
//   BM_decode_cost_table: c(T)/c(1) for T = 1..9 at a 128-token context (counters c1..c9).
//
// The model folder comes from $SPECDEC_MODEL_DIR or the build's default (../shared/models).

#include <benchmark/benchmark.h>

#include "llama2c/paths.hpp"
#include "llama2c/session.hpp"
#include <cstdio>
#include <string>
#include <vector>

namespace {

struct fixture {
  llama2c::model model;
  bool ok = false;
  std::vector<specdec::token_id> story;
  std::vector<specdec::token_id> copy_heavy;

  fixture() {
    const std::string dir = llama2c::default_model_dir();
    ok = llama2c::model::load(dir + "/stories260K.bin", model, nullptr).ok();
    if (!ok)
      return;
    story = {1};
    // A greedy passage from BOS, then the prompt that restarts it.
    llama2c::session_options o;
    o.drafter = llama2c::drafter_kind::none;
    o.steps = 346;
    o.repeat = 1;
    o.profile_reps = 1;
    o.stop_at_bos = false;
    llama2c::session_report r;
    if (!llama2c::run_session(model, story, o, r).ok()) {
      ok = false;
      return;
    }
    copy_heavy = {1};
    copy_heavy.insert(copy_heavy.end(), r.plain.tokens.begin(), r.plain.tokens.end());
  }
};

fixture& shared() {
  static fixture f;
  return f;
}

void BM_decode_speculative(benchmark::State& state) {
  fixture& f = shared();
  if (!f.ok) {
    state.SkipWithError("model files not found (set SPECDEC_MODEL_DIR)");
    return;
  }
  llama2c::session_options o;
  o.drafter = static_cast<llama2c::drafter_kind>(state.range(0));
  o.draft_len = static_cast<int>(state.range(1));
  o.layers = 1;
  o.steps = 256;
  o.repeat = 1;
  o.stop_at_bos = false;
  const int prompt = static_cast<int>(state.range(2));
  if (prompt == 1)
    o.steps = 100;
  if (prompt == 2) {
    o.params.temperature = 1.0f;
    o.seed = 7;
  }
  const std::vector<specdec::token_id>& p = prompt == 1 ? f.copy_heavy : f.story;
  double plain_s = 0.0, spec_s = 0.0, tokens_plain = 0.0, tokens_spec = 0.0;
  double tau = 0.0, drafted = 0.0, accepted = 0.0;
  for (auto _ : state) {
    llama2c::session_report r;
    if (!llama2c::run_session(f.model, p, o, r).ok()) {
      state.SkipWithError("decoding failed");
      return;
    }
    const auto& sp = r.speculative.stats;
    const auto& pl = r.plain.stats;
    plain_s += pl.seconds_total - pl.seconds_prefill;
    spec_s += sp.seconds_total - sp.seconds_prefill;
    tokens_plain += static_cast<double>(r.plain.tokens.size());
    tokens_spec += static_cast<double>(r.speculative.tokens.size());
    tau += sp.tau();
    drafted += static_cast<double>(sp.drafted);
    accepted += static_cast<double>(sp.accepted);
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["plain_tok/s"] = tokens_plain / plain_s;
  state.counters["spec_tok/s"] = tokens_spec / spec_s;
  state.counters["speedup"] = (tokens_spec / spec_s) / (tokens_plain / plain_s);
  state.counters["tau"] = tau / n;
  state.counters["accept_rate"] = drafted > 0.0 ? accepted / drafted : 0.0;
}

void grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"drafter", "draft_len", "prompt"});
  for (int prompt : {0, 1, 2}) {
    b->Args({0, 0, prompt});
    for (int k : {-1, 1, 2, 4, 8})
      b->Args({1, k, prompt});
    for (int k : {-1, 1, 3})
      b->Args({2, k, prompt});
  }
}

BENCHMARK(BM_decode_speculative)->Apply(grid)->Unit(benchmark::kMillisecond)->MinTime(0.5);

void BM_decode_cost_table(benchmark::State& state) {
  fixture& f = shared();
  if (!f.ok) {
    state.SkipWithError("model files not found (set SPECDEC_MODEL_DIR)");
    return;
  }
  std::vector<specdec::token_id> ctx(f.copy_heavy.begin(), f.copy_heavy.begin() + 128);
  std::vector<double> sec;
  for (auto _ : state) {
    if (!specdec::sched::profile_verify_costs(f.model, f.model.cache(), ctx, 8, 50, sec).ok()) {
      state.SkipWithError("profile failed");
      return;
    }
  }
  for (std::size_t t = 0; t < sec.size(); ++t) {
    char name[32]; // (g++ 12 -O3 flags "c" + std::to_string() with a false -Wrestrict)
    std::snprintf(name, sizeof name, "c%zu", t + 1);
    state.counters[name] = sec[t] / sec[0];
  }
  state.counters["T1_tok/s"] = 1.0 / sec[0];
}

BENCHMARK(BM_decode_cost_table)->Unit(benchmark::kMillisecond)->Iterations(3);

} // namespace
