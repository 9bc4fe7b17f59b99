// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Command line, JSON and text report of the `speculative_generate` demo (the command
///        line is shared with the `tree_generate` demo, which reads the tree options too).

#include "llama2c/paths.hpp"
#include "llama2c/session.hpp"
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace llama2c {

/// @brief Printed when a model file is missing or unreadable.
inline constexpr const char* download_hint =
    "The demo needs stories260K.bin and tok512.bin (llama2.c format). Point --model/--tokenizer "
    "at them, or set SPECDEC_MODEL_DIR to their folder.\n"
    "Download: https://huggingface.co/karpathy/tinyllamas/tree/main/stories260K "
    "(files stories260K.bin and tok512.bin).\n";

/// @brief Parsed command line of the demo.
struct cli_options {
  std::string model_path;       ///< --model
  std::string tokenizer_path;   ///< --tokenizer
  std::string prompt;           ///< --prompt (empty: start from BOS)
  bool json = false;            ///< --json
  session_options session;      ///< drafter, draft length, sampling, steps, repeats
  tree_compare_options tree;    ///< --budgets, --top-k, --depth, --seeds, --ngram-max, --branching
  bool drafter_set = false;     ///< --drafter was given
  bool temperature_set = false; ///< --temperature was given
};

/// @brief Name of a drafter as the command line spells it.
inline const char* to_string(drafter_kind d) noexcept {
  return d == drafter_kind::ngram ? "ngram" : d == drafter_kind::early_exit ? "early-exit" : "none";
}

/// @brief Parses argv into `o`.
/// @return -1 to continue, else the exit code (0 after --help, 1 after an error, both printed)
/// @par Complexity
/// O(argc).
inline int parse_cli(int argc, char** argv, cli_options& o) {
  const std::string dir = default_model_dir();
  o.model_path = dir + "/stories260K.bin";
  o.tokenizer_path = dir + "/tok512.bin";
  auto usage = [](std::FILE* f) {
    std::fprintf(
        f,
        "usage: speculative_generate [--model F] [--tokenizer F] [--prompt TEXT] [--steps N]\n"
        "  [--drafter ngram|early-exit|none] [--draft-len N|auto] [--max-draft K] [--layers L]\n"
        "  [--temperature T] [--top-p P] [--seed S] [--stop TEXT]... [--repeat R] [--json]\n"
        "  tree demo: [--budgets K1,K2,..] [--top-k K] [--depth D] [--seeds N] [--ngram-max N]\n"
        "             [--branching B0,B1,..]\n");
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    }
    if (a == "--json") {
      o.json = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "speculative_generate: %s needs a value (or is unknown)\n", argv[i]);
      usage(stderr);
      return 1;
    }
    const std::string v = argv[++i];
    char* end = nullptr;
    auto number = [&](double lo, double hi) {
      const double x = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(x >= lo && x <= hi)) {
        std::fprintf(
            stderr, "speculative_generate: bad value '%s' for %s\n", v.c_str(), argv[i - 1]);
        std::exit(1);
      }
      return x;
    };
    session_options& s = o.session;
    if (a == "--model")
      o.model_path = v;
    else if (a == "--tokenizer")
      o.tokenizer_path = v;
    else if (a == "--prompt")
      o.prompt = v;
    else if (a == "--steps")
      s.steps = static_cast<std::int64_t>(number(0, 1e9));
    else if (a == "--draft-len")
      s.draft_len = v == "auto" ? -1 : static_cast<int>(number(0, 64));
    else if (a == "--max-draft")
      s.max_draft = static_cast<int>(number(0, 64));
    else if (a == "--layers")
      s.layers = static_cast<int>(number(1, std::numeric_limits<int>::max())); // see check_model
    else if (a == "--temperature") {
      s.params.temperature = static_cast<float>(number(0, 1e6));
      o.temperature_set = true;
    } else if (a == "--top-k")
      o.tree.top_k = static_cast<int>(number(1, 16));
    else if (a == "--depth")
      o.tree.depth = static_cast<int>(number(1, 64));
    else if (a == "--seeds")
      o.tree.seeds = static_cast<int>(number(1, 1000));
    else if (a == "--ngram-max")
      o.tree.ngram_max = static_cast<int>(number(1, 64));
    else if (a == "--budgets") {
      o.tree.budgets.clear();
      std::size_t at = 0;
      while (at <= v.size()) {
        const std::size_t comma = std::min(v.find(',', at), v.size());
        const std::string item = v.substr(at, comma - at);
        const long k = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || k < 1 || k > 64) {
          std::fprintf(
              stderr, "speculative_generate: bad --budgets '%s' (K in 1..64)\n", v.c_str());
          return 1;
        }
        o.tree.budgets.push_back(static_cast<int>(k));
        at = comma + 1;
      }
    } else if (a == "--branching") {
      o.tree.branching.clear();
      std::size_t at = 0;
      while (at <= v.size()) {
        const std::size_t comma = std::min(v.find(',', at), v.size());
        const std::string item = v.substr(at, comma - at);
        const long b = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || b < 1 || b > 16) {
          std::fprintf(
              stderr, "speculative_generate: bad --branching '%s' (B in 1..16)\n", v.c_str());
          return 1;
        }
        o.tree.branching.push_back(static_cast<int>(b));
        at = comma + 1;
      }
    } else if (a == "--top-p")
      s.params.top_p = static_cast<float>(number(1e-9, 1));
    else if (a == "--seed")
      s.seed = static_cast<std::uint64_t>(number(0, 1.8e19));
    else if (a == "--repeat")
      s.repeat = static_cast<int>(number(1, 1000));
    else if (a == "--stop")
      s.stop_strings.push_back(v);
    else if (a == "--drafter") {
      o.drafter_set = true;
      if (v == "ngram")
        s.drafter = drafter_kind::ngram;
      else if (v == "early-exit")
        s.drafter = drafter_kind::early_exit;
      else if (v == "none")
        s.drafter = drafter_kind::none;
      else {
        std::fprintf(stderr, "speculative_generate: --drafter must be ngram, early-exit or none\n");
        return 1;
      }
    } else {
      std::fprintf(stderr, "speculative_generate: unknown option %s\n", argv[i - 1]);
      usage(stderr);
      return 1;
    }
  }
  return -1;
}

/// @brief Checks the options that depend on the loaded model: --layers must name a number of
///        layers the model has (the early-exit drafters run that many).
/// @return empty when the options fit `m`, else the message to print, e.g.
///         "--layers 1000: the model has 5 layers"
/// @par Complexity
/// O(1).
inline std::string check_model(const cli_options& o, const model& m) {
  const int n = m.num_layers();
  if (o.session.layers >= 1 && o.session.layers <= n)
    return {};
  return "--layers " + std::to_string(o.session.layers) + ": the model has " + std::to_string(n)
         + (n == 1 ? " layer" : " layers");
}

/// @brief Writes `s` as a JSON string literal (quotes included). O(|s|).
inline void json_string(std::FILE* f, std::string_view s) {
  std::fputc('"', f);
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\')
      std::fprintf(f, "\\%c", c);
    else if (c == '\n')
      std::fputs("\\n", f);
    else if (u < 0x20)
      std::fprintf(f, "\\u%04x", u);
    else
      std::fputc(c, f);
  }
  std::fputc('"', f);
}

/// @brief The cost table c(T)/c(1), T = 1 .. K + 1.
inline std::vector<double> cost_ratios(const session_report& r) {
  std::vector<double> c;
  for (double t : r.verify_cost)
    c.push_back(r.verify_cost.empty() || r.verify_cost[0] <= 0.0 ? 0.0 : t / r.verify_cost[0]);
  return c;
}

/// @brief The demo's `--json` output: one JSON object on one line.
inline void print_json(std::FILE* f,
                       const cli_options& o,
                       const std::vector<specdec::token_id>& prompt,
                       const std::string& text,
                       const session_report& r,
                       bool greedy,
                       bool identical) {
  const auto& st = r.speculative.stats;
  std::fputs("{\"text\":", f);
  json_string(f, text);
  auto ids = [f](const char* name, const std::vector<specdec::token_id>& v) {
    std::fprintf(f, ",\"%s\":[", name);
    for (std::size_t i = 0; i < v.size(); ++i)
      std::fprintf(f, "%s%d", i ? "," : "", v[i]);
    std::fputs("]", f);
  };
  ids("prompt_tokens", prompt);
  ids("tokens", r.speculative.tokens);
  std::fprintf(f, ",\"drafter\":\"%s\",\"draft_len\":", to_string(o.session.drafter));
  if (o.session.draft_len < 0)
    std::fputs("\"auto\"", f);
  else
    std::fprintf(f, "%d", o.session.draft_len);
  std::fprintf(f,
               ",\"temperature\":%g,\"top_p\":%g,\"seed\":%llu",
               static_cast<double>(o.session.params.temperature),
               static_cast<double>(o.session.params.top_p),
               static_cast<unsigned long long>(o.session.seed));
  std::fprintf(f,
               ",\"tau\":%.4f,\"tau_drafting\":%.4f,\"steps\":%lld,\"draft_steps\":%lld,"
               "\"drafted\":%lld,\"accepted\":%lld,\"conditional_acceptance\":[",
               st.tau(),
               st.tau_drafting(),
               static_cast<long long>(st.steps),
               static_cast<long long>(st.draft_steps),
               static_cast<long long>(st.drafted),
               static_cast<long long>(st.accepted));
  for (std::size_t j = 0; j < st.tried.size(); ++j) {
    const double c = st.conditional_acceptance(j);
    if (c < 0.0)
      std::fprintf(f, "%snull", j ? "," : "");
    else
      std::fprintf(f, "%s%.4f", j ? "," : "", c);
  }
  std::fprintf(f,
               "],\"tokens_per_s_speculative\":%.1f,\"tokens_per_s_plain\":%.1f,\"speedup\":%.4f",
               r.speculative.tokens_per_s(),
               r.plain.tokens_per_s(),
               r.speedup());
  std::fputs(",\"identical_to_plain\":", f);
  std::fputs(greedy ? (identical ? "true" : "false") : "null", f);
  std::fprintf(f,
               ",\"stop_reason\":\"%s\",\"seconds_draft\":%.6f,\"seconds_verify\":%.6f,"
               "\"seconds_rest\":%.6f,\"seconds_prefill\":%.6f,\"cost_ratio\":[",
               specdec::decode::to_string(r.speculative.reason),
               st.seconds_draft,
               st.seconds_verify,
               st.seconds_rest(),
               st.seconds_prefill);
  const std::vector<double> c = cost_ratios(r);
  for (std::size_t i = 0; i < c.size(); ++i)
    std::fprintf(f, "%s%.3f", i ? "," : "", c[i]);
  std::fprintf(f,
               "],\"draft_cost_ratio\":%.4f}\n",
               r.verify_cost.empty() ? 0.0 : r.draft_cost / r.verify_cost[0]);
}

/// @brief The demo's default output: the story, then a short summary.
inline void print_summary(std::FILE* f,
                          const cli_options& o,
                          const std::string& story,
                          const session_report& r,
                          bool greedy,
                          bool identical) {
  const auto& st = r.speculative.stats;
  std::fprintf(f, "%s\n\n", story.c_str());
  std::fprintf(f,
               "--- %zu tokens, drafter %s, draft length %s, %s\n",
               r.speculative.tokens.size(),
               to_string(o.session.drafter),
               o.session.draft_len < 0 ? "auto (cost-aware)"
                                       : std::to_string(o.session.draft_len).c_str(),
               greedy ? "greedy" : "sampling");
  std::fprintf(f,
               "tau %.3f tokens/step (%.3f on drafting steps), %lld of %lld drafts accepted\n",
               st.tau(),
               st.tau_drafting(),
               static_cast<long long>(st.accepted),
               static_cast<long long>(st.drafted));
  std::fputs("conditional acceptance by draft position:", f);
  for (std::size_t j = 0; j < st.tried.size(); ++j)
    if (st.conditional_acceptance(j) >= 0.0)
      std::fprintf(f, " %zu:%.2f", j + 1, st.conditional_acceptance(j));
  std::fputs("\nc(T)/c(1):", f);
  const std::vector<double> c = cost_ratios(r);
  for (std::size_t i = 0; i < c.size(); ++i)
    std::fprintf(f, " %zu:%.2f", i + 1, c[i]);
  std::fprintf(f,
               "\nspeculative %.0f tokens/s, plain %.0f tokens/s: speed-up %.3fx\n",
               r.speculative.tokens_per_s(),
               r.plain.tokens_per_s(),
               r.speedup());
  std::fprintf(f,
               "time: draft %.2f ms, verify %.2f ms, rest %.2f ms, prefill %.2f ms\n",
               1e3 * st.seconds_draft,
               1e3 * st.seconds_verify,
               1e3 * st.seconds_rest(),
               1e3 * st.seconds_prefill);
  if (greedy)
    std::fprintf(f, "identical to plain greedy decoding: %s\n", identical ? "yes" : "NO");
}

} // namespace llama2c
