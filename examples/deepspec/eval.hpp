// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Evaluation of the miniature drafters by real speculative decoding on the target:
///        tau (accepted drafts + the bonus token per verification round), accept_rate@i (prefix
///        survival, DeepSpec's eval metric), conditional acceptance per position (the paper's
///        Fig. 2), verify rate, and whether greedy output equals plain decoding.
///
/// Prompt sets, all from data the drafters never trained on:
///  - "stories": the first 16 tokens of held-out sequences;
///  - "openings": BOS and each fixed story opening (data.hpp; the training prompts use them too,
///    with answers from other random streams);
///  - "copy": a copy-heavy set: the first 40 tokens of a held-out sequence, then its tokens 1..8
///    again, so a faithful continuation repeats the passage.
/// Rounds follow DeepSpec's definitions (anchors/deepspec-training.md §5.2): round i verifies
/// P_i drafts and accepts n_i; tau = sum(n_i + 1) / R (a round that ends at the end token counts
/// its bonus too); accept_rate@i = #{n > i} / #{P > i}; conditional@k = #{n >= k} / #{n >= k-1
/// and P >= k}; verify_rate = sum(n_i + 1) / (sum P_i + R).

#include <specdec/decode/evaluate.hpp>
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/propose/feature_drafter.hpp>
#include <specdec/propose/ngram.hpp>
#include <specdec/propose/no_draft.hpp>
#include <specdec/sched/draft_length.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/rejection.hpp>

#include "deepspec/data.hpp"
#include "deepspec/drafter.hpp"
#include "llama2c/model.hpp"
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace deepspec {

/// @brief A named prompt set.
struct prompt_set {
  std::string name;                                    ///< stories / openings / copy
  std::vector<std::vector<specdec::token_id>> prompts; ///< each starts with BOS
};

/// @brief The three evaluation sets (see the file comment), `n` prompts each at most.
inline std::vector<prompt_set>
eval_sets(const dataset& heldout, const llama2c::tokenizer& tok, int n) {
  std::vector<prompt_set> out(3);
  out[0].name = "stories";
  out[1].name = "openings";
  out[2].name = "copy";
  for (std::int64_t s = 0; s < heldout.size() && static_cast<int>(out[0].prompts.size()) < n; ++s) {
    const auto seq = heldout.sequence(s);
    if (seq.size() >= 24)
      out[0].prompts.emplace_back(seq.begin(), seq.begin() + 16);
  }
  for (const auto& o : openings())
    if (static_cast<int>(out[1].prompts.size()) < n)
      out[1].prompts.push_back(tok.encode(o, true, false));
  for (std::int64_t s = heldout.size() - 1; s >= 0 && static_cast<int>(out[2].prompts.size()) < n;
       --s) {
    const auto seq = heldout.sequence(s);
    if (seq.size() < 48)
      continue;
    std::vector<specdec::token_id> p(seq.begin(), seq.begin() + 40);
    p.insert(p.end(), seq.begin() + 1, seq.begin() + 9);
    out[2].prompts.push_back(std::move(p));
  }
  return out;
}

/// @brief Acceptance statistics of a run of rounds (DeepSpec's definitions, file comment).
struct acceptance {
  int gamma = 5;                     ///< drafts per round asked for
  std::int64_t rounds = 0;           ///< R
  std::int64_t committed = 0;        ///< sum (n_i + 1)
  std::int64_t drafted = 0;          ///< sum P_i
  std::vector<std::int64_t> survive; ///< [gamma]: #{n > i}
  std::vector<std::int64_t> offered; ///< [gamma]: #{P > i}
  std::vector<std::int64_t> reached; ///< [gamma]: #{n >= i and P > i} (draft i+1 was tried)
  std::int64_t tokens = 0;           ///< tokens emitted
  double seconds = 0;                ///< decoding time (prefill excluded)
  double seconds_draft = 0;          ///< of which drafting
  specdec::decode::evaluation ev;    ///< the library harness's view of the same rounds

  /// Records one round.
  void add(int P, int n) {
    if (survive.size() < static_cast<std::size_t>(gamma)) {
      survive.assign(static_cast<std::size_t>(gamma), 0);
      offered.assign(static_cast<std::size_t>(gamma), 0);
      reached.assign(static_cast<std::size_t>(gamma), 0);
    }
    (void)ev.add_round(P, n);
    ++rounds;
    committed += n + 1;
    drafted += P;
    for (int i = 0; i < gamma; ++i) {
      offered[static_cast<std::size_t>(i)] += P > i ? 1 : 0;
      survive[static_cast<std::size_t>(i)] += n > i ? 1 : 0;
      reached[static_cast<std::size_t>(i)] += n >= i && P > i ? 1 : 0;
    }
  }
  /// tau: committed tokens per round (the bonus included).
  [[nodiscard]] double tau() const {
    return rounds > 0 ? static_cast<double>(committed) / static_cast<double>(rounds) : 0.0;
  }
  /// accept_rate@i (prefix survival).
  [[nodiscard]] double accept_rate(int i) const {
    return offered.empty() || offered[static_cast<std::size_t>(i)] == 0
               ? 0.0
               : static_cast<double>(survive[static_cast<std::size_t>(i)])
                     / static_cast<double>(offered[static_cast<std::size_t>(i)]);
  }
  /// Conditional acceptance of draft k (1-based): accepted / tried, where draft k was tried when
  /// it was verified and drafts 1..k-1 were accepted.
  [[nodiscard]] double conditional(int k) const {
    if (reached.empty() || reached[static_cast<std::size_t>(k) - 1] == 0)
      return 0.0;
    return static_cast<double>(survive[static_cast<std::size_t>(k) - 1])
           / static_cast<double>(reached[static_cast<std::size_t>(k) - 1]);
  }
  /// Committed tokens per verified slot.
  [[nodiscard]] double verify_rate() const {
    return rounds > 0 ? static_cast<double>(committed) / static_cast<double>(drafted + rounds)
                      : 0.0;
  }
};

/// @brief Evaluation settings.
struct eval_options {
  int gamma = 5;               ///< chain drafts per round
  std::int64_t max_new = 128;  ///< tokens per prompt
  std::uint64_t seed = 980406; ///< DeepSpec's eval seed; prompt i uses seed + i
};

/// @brief Decodes every prompt of `set` with the proposer at temperature T (greedy at 0,
///        rejection sampling with the drafter's dense rows otherwise) and records each round.
///        `outputs` receives each prompt's tokens; `on_round(P, n)` is called after each round
///        (the proposer still describes that round's block). @return the decoder's status
template <class Proposer>
specdec::status run_set(llama2c::model& m,
                        Proposer& proposer,
                        const prompt_set& set,
                        float T,
                        const eval_options& o,
                        acceptance& acc,
                        std::vector<std::vector<specdec::token_id>>* outputs = nullptr,
                        const std::function<void(int, int)>& on_round = {}) {
  using namespace specdec;
  acc = acceptance{};
  acc.gamma = o.gamma;
  if (outputs != nullptr)
    outputs->clear();
  for (std::size_t i = 0; i < set.prompts.size(); ++i) {
    decode::decode_config cfg;
    cfg.max_new_tokens = o.max_new;
    cfg.params.temperature = T;
    cfg.seed = o.seed + i;
    cfg.request_id = i;
    cfg.max_draft = o.gamma;
    cfg.end_tokens = {1};
    cfg.on_step = [&](const decode::step_record& r) {
      acc.add(r.drafted, r.accepted);
      if (on_round)
        on_round(r.drafted, r.accepted);
    };
    if constexpr (requires { proposer.set_seed(std::uint64_t{}); })
      proposer.set_seed(o.seed * 31 + i);
    if constexpr (requires { proposer.set_params(cfg.params); })
      proposer.set_params(cfg.params); // draft from the row the verifier processes alike
    decode::decode_result r;
    status s{};
    if (T == 0.0f) {
      decode::speculative_decoder dec(
          m, m.cache(), proposer, verify::greedy{}, sched::fixed_draft_length{o.gamma});
      s = dec.generate(set.prompts[i], cfg, r);
    } else if constexpr (dense_draft_proposer<Proposer>) {
      decode::speculative_decoder dec(
          m, m.cache(), proposer, verify::rejection_sampling{}, sched::fixed_draft_length{o.gamma});
      s = dec.generate(set.prompts[i], cfg, r);
    } else {
      decode::speculative_decoder dec(
          m, m.cache(), proposer, verify::one_hot_rejection{}, sched::fixed_draft_length{o.gamma});
      s = dec.generate(set.prompts[i], cfg, r);
    }
    if (!s.ok())
      return s;
    acc.tokens += static_cast<std::int64_t>(r.tokens.size());
    acc.seconds += r.stats.seconds_total - r.stats.seconds_prefill;
    acc.seconds_draft += r.stats.seconds_draft;
    ++acc.ev.prompts;
    acc.ev.tokens += static_cast<std::int64_t>(r.tokens.size());
    acc.ev.seconds += r.stats.seconds_total - r.stats.seconds_prefill;
    acc.ev.seconds_draft += r.stats.seconds_draft;
    acc.ev.seconds_verify += r.stats.seconds_verify;
    if (outputs != nullptr)
      outputs->push_back(std::move(r.tokens));
  }
  return status{};
}

} // namespace deepspec
