// SPDX-License-Identifier: Apache-2.0
// 02_speculative_generate (built as `speculative_generate`): speculative decoding on a real
// transformer, stories260K in llama2.c format, with plain decoding measured in the same run.
//
//   speculative_generate [--model F] [--tokenizer F] [--prompt TEXT] [--steps N]
//                        [--drafter ngram|early-exit|none] [--draft-len N|auto] [--layers L]
//                        [--temperature T] [--top-p P] [--seed S] [--stop TEXT] [--repeat R]
//                        [--json]
//
// Files default to $SPECDEC_MODEL_DIR, else ../shared/models beside the checkout. The drafts come
// from a suffix-automaton n-gram lookup or from the model's own first layers; `--draft-len auto`
// profiles c(T) (the cost of scoring T tokens at once) and lets the cost-aware controller choose
// each step's draft length, zero included. At temperature 0 the output is checked against plain
// greedy decoding token for token.

#include "llama2c/cli.hpp"
#include "llama2c/session.hpp"
#include "llama2c/tokenizer.hpp"
#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  llama2c::cli_options o;
  if (const int rc = llama2c::parse_cli(argc, argv, o); rc >= 0)
    return rc;

  llama2c::model m;
  std::string detail;
  if (const auto s = llama2c::model::load(o.model_path, m, &detail); !s.ok()) {
    std::fprintf(stderr,
                 "speculative_generate: cannot load the model '%s': %s%s%s\n%s",
                 o.model_path.c_str(),
                 s.message(),
                 detail.empty() ? "" : ": ",
                 detail.c_str(),
                 llama2c::download_hint);
    return 1;
  }
  if (const std::string bad = llama2c::check_model(o, m); !bad.empty()) {
    std::fprintf(stderr, "speculative_generate: %s\n", bad.c_str());
    return 1;
  }
  llama2c::tokenizer tok;
  if (const auto s = llama2c::tokenizer::load(o.tokenizer_path, m.vocab_size(), tok, &detail);
      !s.ok()) {
    std::fprintf(stderr,
                 "speculative_generate: cannot load the tokenizer '%s': %s%s%s\n%s",
                 o.tokenizer_path.c_str(),
                 s.message(),
                 detail.empty() ? "" : ": ",
                 detail.c_str(),
                 llama2c::download_hint);
    return 1;
  }

  const std::vector<specdec::token_id> prompt = tok.encode(o.prompt, true, false);
  if (static_cast<specdec::index_t>(prompt.size()) >= m.cache().capacity()) {
    std::fprintf(stderr,
                 "speculative_generate: the prompt has %zu tokens; the model's context is %lld\n",
                 prompt.size(),
                 static_cast<long long>(m.cache().capacity()));
    return 1;
  }

  llama2c::session_report rep;
  const auto text_of = [&tok](specdec::token_id prev, specdec::token_id t) {
    return std::string(tok.piece(prev, t));
  };
  if (const auto s = llama2c::run_session(m, prompt, o.session, rep, text_of); !s.ok()) {
    std::fprintf(stderr, "speculative_generate: decoding failed: %s\n", s.message());
    return 1;
  }
  const std::string text = tok.decode(rep.speculative.tokens, prompt.back());
  const bool greedy = o.session.params.greedy();
  const bool identical = rep.speculative.tokens == rep.plain.tokens;
  if (o.json)
    llama2c::print_json(stdout, o, prompt, text, rep, greedy, identical);
  else
    llama2c::print_summary(stdout, o, o.prompt + text, rep, greedy, identical);
  // A greedy run that differs from plain decoding is a bug: report it through the exit code.
  return greedy && !identical ? 2 : 0;
}
