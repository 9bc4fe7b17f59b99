// SPDX-License-Identifier: Apache-2.0
// 03_tree_generate: token-tree against chain speculative decoding on a real transformer
// (stories260K in llama2.c format), at the same number of verified rows per step.
//
//   03_tree_generate [--model F] [--tokenizer F] [--prompt TEXT] [--steps N]
//                    [--drafter ngram|early-exit] [--layers L] [--budgets K1,K2,..]
//                    [--top-k K] [--depth D] [--ngram-max N] [--temperature T] [--top-p P]
//                    [--seed S] [--seeds N] [--branching B0,B1,..]
//
// For each K a chain step verifies K drafts and a tree step K draft nodes: both score K + 1 rows
// in one target call. The drafters: prompt lookup (suffix-automaton chain / n-gram trie of
// several earlier continuations) and early exit (the model's first L layers: sampled chain /
// EAGLE-2-style top-k tree / sampled multi-draft tree: --branching B0,B1,.. i.i.d. children per
// node at depths 0, 1, .. (1 past the end), verified by dense rejection sampling at T > 0). tau is
// the mean number of tokens emitted per verification step. Without --temperature both greedy
// decoding (checked token for token against plain greedy decoding) and temperature 1 (averaged over
// --seeds runs) are run.

#include "llama2c/cli.hpp"
#include "llama2c/session.hpp"
#include "llama2c/tokenizer.hpp"
#include <cstdio>
#include <string>

namespace {

const char* name(llama2c::drafter_kind d) {
  return d == llama2c::drafter_kind::ngram ? "ngram" : "early-exit";
}

void print_table(const std::vector<llama2c::tau_entry>& rows, int layers) {
  float t = -1.0f;
  for (const llama2c::tau_entry& e : rows) {
    if (e.temperature != t) {
      t = e.temperature;
      std::printf("\ntemperature %g%s\n", static_cast<double>(t), t == 0.0f ? " (greedy)" : "");
      std::printf("%-10s %3s  %9s %9s  %9s %9s  %11s %9s  %10s %12s  %s\n",
                  "drafter",
                  "K",
                  "chain tau",
                  "rows/step",
                  "tree tau",
                  "rows/step",
                  "sampled tau",
                  "rows/step",
                  "tree/chain",
                  "sampled/chain",
                  t == 0.0f ? "identical to plain (chain, tree, sampled)" : "");
    }
    const double ct = e.chain.tau();
    const double tt = e.tree.tau();
    const bool has_sampled = e.sampled.steps > 0;
    const double st = e.sampled.tau();
    std::printf("%-10s %3d  %9.3f %9.2f  %9.3f %9.2f",
                name(e.drafter),
                e.budget,
                ct,
                llama2c::tau_entry::rows_per_step(e.chain),
                tt,
                llama2c::tau_entry::rows_per_step(e.tree));
    if (has_sampled)
      std::printf("  %11.3f %9.2f", st, llama2c::tau_entry::rows_per_step(e.sampled));
    else
      std::printf("  %11s %9s", "-", "-");
    std::printf("  %10.3f", ct > 0.0 ? tt / ct : 0.0);
    if (has_sampled)
      std::printf(" %12.3f", ct > 0.0 ? st / ct : 0.0);
    else
      std::printf(" %12s", "-");
    if (e.temperature == 0.0f)
      std::printf("  %s, %s, %s",
                  e.chain_identical ? "yes" : "NO",
                  e.tree_identical ? "yes" : "NO",
                  has_sampled ? (e.sampled_identical ? "yes" : "NO") : "-");
    if (e.drafter == llama2c::drafter_kind::early_exit) {
      std::printf("   draft rows/step (%d layer%s): chain %.2f, tree %.2f",
                  layers,
                  layers == 1 ? "" : "s",
                  e.chain_draft_rows,
                  e.tree_draft_rows);
      if (has_sampled)
        std::printf(", sampled %.2f", e.sampled_draft_rows);
    }
    std::printf("\n");
  }
}

} // namespace

int main(int argc, char** argv) {
  llama2c::cli_options o;
  if (const int rc = llama2c::parse_cli(argc, argv, o); rc >= 0)
    return rc;
  llama2c::model m;
  std::string detail;
  if (const auto s = llama2c::model::load(o.model_path, m, &detail); !s.ok()) {
    std::fprintf(stderr,
                 "tree_generate: cannot load the model '%s': %s%s%s\n%s",
                 o.model_path.c_str(),
                 s.message(),
                 detail.empty() ? "" : ": ",
                 detail.c_str(),
                 llama2c::download_hint);
    return 1;
  }
  if (const std::string bad = llama2c::check_model(o, m); !bad.empty()) {
    std::fprintf(stderr, "tree_generate: %s\n", bad.c_str());
    return 1;
  }
  llama2c::tokenizer tok;
  if (const auto s = llama2c::tokenizer::load(o.tokenizer_path, m.vocab_size(), tok, &detail);
      !s.ok()) {
    std::fprintf(stderr,
                 "tree_generate: cannot load the tokenizer '%s': %s%s%s\n%s",
                 o.tokenizer_path.c_str(),
                 s.message(),
                 detail.empty() ? "" : ": ",
                 detail.c_str(),
                 llama2c::download_hint);
    return 1;
  }
  const std::vector<specdec::token_id> prompt = tok.encode(o.prompt, true, false);
  if (static_cast<specdec::index_t>(prompt.size()) >= m.cache().capacity()) {
    std::fprintf(stderr, "tree_generate: the prompt does not fit the model's context\n");
    return 1;
  }

  llama2c::tree_compare_options& t = o.tree;
  t.layers = o.session.layers;
  t.params = o.session.params;
  t.seed = o.session.seed;
  t.steps = o.session.steps;
  if (o.temperature_set)
    t.temperatures = {o.session.params.temperature};
  if (o.drafter_set) {
    t.ngram = o.session.drafter == llama2c::drafter_kind::ngram;
    t.early_exit = o.session.drafter == llama2c::drafter_kind::early_exit;
  }
  std::vector<llama2c::tau_entry> rows;
  if (const auto s = llama2c::compare_chain_tree(m, prompt, t, rows); !s.ok()) {
    std::fprintf(stderr, "tree_generate: decoding failed: %s\n", s.message());
    return 1;
  }
  std::string branching;
  for (int b : t.branching)
    branching += (branching.empty() ? "" : ",") + std::to_string(b);
  std::printf("stories260K, prompt \"%s\" (%zu tokens), up to %lld tokens per run; "
              "early exit: %d layer%s of %d, tree depth <= %d, top-k %d, sampled-tree "
              "branching {%s}; %d seed%s at temperature > 0\n",
              o.prompt.c_str(),
              prompt.size(),
              static_cast<long long>(t.steps),
              t.layers,
              t.layers == 1 ? "" : "s",
              m.num_layers(),
              t.depth,
              t.top_k,
              branching.c_str(),
              t.seeds,
              t.seeds == 1 ? "" : "s");
  std::printf("K: chain drafts per step = tree draft nodes per step (K + 1 rows verified); "
              "rows/step: measured mean\n");
  print_table(rows, t.layers);
  bool exact = true;
  for (const llama2c::tau_entry& e : rows)
    exact = exact && e.chain_identical && e.tree_identical && e.sampled_identical;
  // A greedy run that differs from plain decoding is a bug: report it through the exit code.
  return exact ? 0 : 2;
}
