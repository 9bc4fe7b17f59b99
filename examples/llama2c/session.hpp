// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief One measured comparison of plain and speculative decoding on a llama2.c model: the
///        shared core of the `speculative_generate` demo and the end-to-end benchmark; and the
///        chain-versus-tree comparison of the `tree_generate` demo.
///
/// run_session() profiles the verify cost curve c(T) (at the prompt and `steps` tokens further,
/// keeping the worse shape: sched::profile_verify_costs with a horizon), then decodes the prompt
/// `repeat` times plainly and `repeat` times speculatively (alternating, so both see the same
/// machine state), keeping the fastest run of each. Plain decoding is the same decoding loop with
/// the empty proposer, so the comparison measures speculation and nothing else.
///
/// compare_chain_tree() decodes the prompt with a chain drafter of K drafts per step (K + 1
/// verified rows) and with a tree drafter of K draft nodes per step (K + 1 verified rows), for
/// each K, drafter and temperature, and reports tau (tokens per verification step) of both;
/// for the early-exit drafter also with a sampled multi-draft tree of K nodes
/// (propose::sampled_tree_proposer: i.i.d. siblings, dense rejection sampling at T > 0).

#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/decode/tree_decoder.hpp>
#include <specdec/propose/early_exit.hpp>
#include <specdec/propose/early_exit_tree.hpp>
#include <specdec/propose/ngram.hpp>
#include <specdec/propose/ngram_tree.hpp>
#include <specdec/propose/no_draft.hpp>
#include <specdec/propose/sampled_tree.hpp>
#include <specdec/sched/cost_profile.hpp>
#include <specdec/sched/draft_length.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/rejection.hpp>

#include "llama2c/model.hpp"
#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace llama2c {

/// @brief Which drafter a session uses.
enum class drafter_kind {
  none,      ///< no drafts: the speculative run is plain decoding too (a control)
  ngram,     ///< prompt lookup through a suffix automaton (specdec::propose::ngram_proposer)
  early_exit ///< the model's first layers (specdec::propose::early_exit_proposer)
};

/// @brief Settings of a session.
struct session_options {
  drafter_kind drafter = drafter_kind::ngram; ///< the drafter
  int draft_len = -1; ///< fixed drafts per step, or -1 for the cost-aware controller
  int max_draft = 8;  ///< the controller's largest draft length
  int layers = 1;     ///< early-exit layers
  /// Sampling; the default is greedy (temperature 0).
  specdec::sampling::sampling_params params = [] {
    specdec::sampling::sampling_params p;
    p.temperature = 0.0f;
    return p;
  }();
  std::uint64_t seed = 0;                ///< random stream
  std::int64_t steps = 256;              ///< token budget
  std::vector<std::string> stop_strings; ///< optional stop strings (need `text_of`)
  bool stop_at_bos = true;               ///< stop when the model emits BOS (as run.c does)
  int repeat = 3;                        ///< runs of each kind; the fastest is reported
  int profile_reps = 15;                 ///< rounds of the c(T) profile
};

/// @brief One decoding run (the fastest of the repeats).
struct run_report {
  std::vector<specdec::token_id> tokens; ///< emitted tokens
  specdec::decode::decode_stats stats;   ///< its statistics
  specdec::decode::stop_reason reason{}; ///< why it stopped
  /// Emitted tokens per second of decoding (prefill excluded).
  [[nodiscard]] double tokens_per_s() const noexcept {
    const double t = stats.seconds_total - stats.seconds_prefill;
    return t > 0.0 ? static_cast<double>(tokens.size()) / t : 0.0;
  }
};

/// @brief What run_session() measured.
struct session_report {
  run_report plain;                ///< plain decoding
  run_report speculative;          ///< speculative decoding
  std::vector<double> verify_cost; ///< verify_cost[t]: seconds to score t + 1 tokens at once
  double draft_cost = 0.0;         ///< seconds per drafted token (early exit; ~0 for n-gram)
  /// Speculative over plain decoding speed.
  [[nodiscard]] double speedup() const noexcept {
    return plain.tokens_per_s() > 0.0 ? speculative.tokens_per_s() / plain.tokens_per_s() : 0.0;
  }
};

namespace detail {

template <class Proposer, class Policy, class Length>
specdec::status decode_once(model& m,
                            Proposer& proposer,
                            Policy policy,
                            Length length,
                            std::span<const specdec::token_id> prompt,
                            const specdec::decode::decode_config& cfg,
                            run_report& best) {
  specdec::decode::speculative_decoder dec(m, m.cache(), proposer, policy, std::move(length));
  specdec::decode::decode_result r;
  if (const specdec::status s = dec.generate(prompt, cfg, r); !s.ok())
    return s;
  run_report now{std::move(r.tokens), std::move(r.stats), r.reason};
  if (best.stats.steps == 0 || now.tokens_per_s() > best.tokens_per_s())
    best = std::move(now);
  return specdec::status{};
}

// The controller for a session: fixed, or cost-aware with the profiled costs.
inline specdec::sched::adaptive_draft_length
make_controller(const session_report& rep, int buckets, double draft_cost) {
  specdec::sched::adaptive_config c;
  c.buckets = buckets;
  // Bucket b is an n-gram match of b tokens: prior acceptance b / (b + 1), so long matches are
  // drafted from the start and short ones are not drafted unless the data says otherwise.
  // Exploration is off: the priors stand in for it, and it would cost up to (c(2)/c(1) - 1) per
  // explored step on a model where only long matches pay.
  if (buckets > 1) {
    for (int b = 0; b < buckets; ++b)
      c.prior_by_bucket.push_back(static_cast<double>(b) / (b + 1.0));
    c.explore_interval = 0;
  } else {
    // One bucket (early exit) explores. A probe costs C(1) - C(0): on this CPU model a second
    // verified row plus the drafting layers, nearly a whole step (0.85-0.9). Probes may take at
    // most 0.5% of plain decoding's time, a quarter of the 2% the demo allows itself against
    // plain decoding: the first probe comes after ~175 steps instead of 64.
    c.explore_budget = 0.005;
  }
  specdec::sched::adaptive_draft_length ctl(c);
  (void)ctl.set_costs({rep.verify_cost, 0.0, draft_cost});
  return ctl;
}

} // namespace detail

/// @brief Measures plain against speculative decoding of `prompt` (see the file comment).
/// @param text_of detokenizer for stop strings (prev, token) -> text; may be empty without them
/// @return the first failure of the model, the profile or the decoder
/// @par Complexity
/// 2 x repeat decoding runs of up to `steps` tokens, plus a profile of profile_reps x (K + 1)
/// target calls.
inline specdec::status
run_session(model& m,
            std::span<const specdec::token_id> prompt,
            const session_options& opt,
            session_report& rep,
            std::function<std::string(specdec::token_id, specdec::token_id)> text_of = {}) {
  using namespace specdec;
  rep = session_report{};
  const int kmax = opt.draft_len >= 0 ? opt.draft_len : opt.max_draft;
  if (opt.max_draft < 0 || kmax > 64 || opt.repeat < 1)
    return status{errc::invalid_argument};
  const index_t fits = m.cache().capacity() - static_cast<index_t>(prompt.size());
  if (const status s = sched::profile_verify_costs(
          m,
          m.cache(),
          prompt,
          static_cast<int>(std::clamp<index_t>(kmax, 0, std::max<index_t>(0, fits))),
          opt.profile_reps,
          rep.verify_cost,
          static_cast<index_t>(std::clamp<std::int64_t>(opt.steps, 0, m.cache().capacity())));
      !s.ok())
    return s;

  decode::decode_config cfg;
  cfg.max_new_tokens = opt.steps;
  cfg.params = opt.params;
  cfg.seed = opt.seed;
  cfg.max_draft = kmax;
  cfg.stop_strings = opt.stop_strings;
  cfg.token_text = std::move(text_of);
  if (opt.stop_at_bos)
    cfg.end_tokens = {1};

  const bool greedy = opt.params.greedy();
  propose::early_exit_config ee{opt.layers, kmax, opt.params, opt.seed + 1};
  if (opt.drafter == drafter_kind::early_exit) {
    if (opt.layers < 1 || opt.layers > m.num_layers())
      return status{errc::invalid_argument};
    // Seconds per drafted token: one single-token pass through the first `layers` layers.
    std::vector<float> row(static_cast<std::size_t>(m.vocab_size()));
    const token_id last = prompt.back();
    const score_request req{0, {&last, 1}, static_cast<index_t>(prompt.size()) - 1};
    status bad{};
    rep.draft_cost = sched::median_seconds(
        [&] {
          const status s =
              m.score_layers(req, opt.layers, {row.data(), 1, m.vocab_size(), m.vocab_size()});
          if (!s.ok())
            bad = s;
        },
        opt.profile_reps);
    if (!bad.ok())
      return bad;
  }

  for (int i = 0; i < opt.repeat; ++i) {
    propose::no_drafter none;
    const status p =
        greedy ? detail::decode_once(
            m, none, verify::greedy{}, sched::fixed_draft_length{0}, prompt, cfg, rep.plain)
               : detail::decode_once(m,
                                     none,
                                     verify::one_hot_rejection{},
                                     sched::fixed_draft_length{0},
                                     prompt,
                                     cfg,
                                     rep.plain);
    if (!p.ok())
      return p;
    status s{};
    const sched::fixed_draft_length fixed{opt.draft_len};
    const bool fixed_len = opt.draft_len >= 0;
    switch (opt.drafter) {
    case drafter_kind::none:
      s = greedy
              ? detail::decode_once(m, none, verify::greedy{}, fixed, prompt, cfg, rep.speculative)
              : detail::decode_once(
                  m, none, verify::one_hot_rejection{}, fixed, prompt, cfg, rep.speculative);
      break;
    case drafter_kind::ngram: {
      propose::ngram_proposer ng({1, 15, kmax});
      const auto ctl = detail::make_controller(rep, 16, 0.0);
      if (greedy)
        s = fixed_len
                ? detail::decode_once(m, ng, verify::greedy{}, fixed, prompt, cfg, rep.speculative)
                : detail::decode_once(m, ng, verify::greedy{}, ctl, prompt, cfg, rep.speculative);
      else
        s = fixed_len ? detail::decode_once(
                m, ng, verify::one_hot_rejection{}, fixed, prompt, cfg, rep.speculative)
                      : detail::decode_once(
                          m, ng, verify::one_hot_rejection{}, ctl, prompt, cfg, rep.speculative);
      break;
    }
    case drafter_kind::early_exit: {
      propose::early_exit_proposer<model> ex(m, ee);
      const auto ctl = detail::make_controller(rep, 1, rep.draft_cost);
      if (greedy)
        s = fixed_len
                ? detail::decode_once(m, ex, verify::greedy{}, fixed, prompt, cfg, rep.speculative)
                : detail::decode_once(m, ex, verify::greedy{}, ctl, prompt, cfg, rep.speculative);
      else
        s = fixed_len ? detail::decode_once(
                m, ex, verify::rejection_sampling{}, fixed, prompt, cfg, rep.speculative)
                      : detail::decode_once(
                          m, ex, verify::rejection_sampling{}, ctl, prompt, cfg, rep.speculative);
      break;
    }
    }
    if (!s.ok())
      return s;
  }
  return status{};
}

/// @brief Settings of compare_chain_tree().
struct tree_compare_options {
  /// K: drafts per chain step and draft nodes per tree step (both verify K + 1 rows).
  std::vector<int> budgets{2, 4, 8};
  bool ngram = true;        ///< compare the n-gram drafters
  bool early_exit = true;   ///< compare the early-exit drafters
  int layers = 1;           ///< early-exit layers (chain and tree)
  int top_k = 4;            ///< early-exit tree: children per expanded node, nodes per round
  int depth = 6;            ///< early-exit tree: expansion rounds (capped by K)
  int ngram_max = 16;       ///< n-gram tree: longest suffix match measured
  int ngram_children = 4;   ///< n-gram tree: children per node
  bool sampled_tree = true; ///< early exit: also run the sampled multi-draft tree
  /// Sampled tree: i.i.d. children per expanded node by depth (1 past the end), depth up to K.
  std::vector<int> branching{2};
  /// Temperatures to run (0: greedy, checked against plain greedy decoding); the other sampling
  /// parameters come from `params`.
  std::vector<float> temperatures{0.0f, 1.0f};
  specdec::sampling::sampling_params params{}; ///< top-k / top-p / min-p (temperature ignored)
  std::uint64_t seed = 0;                      ///< first random stream
  int seeds = 3;            ///< runs per temperature > 0 (seeds seed .. seed + seeds - 1)
  std::int64_t steps = 256; ///< token budget per run
  bool stop_at_bos = true;  ///< stop when the model emits BOS (as run.c does)
};

/// @brief One line of the comparison: a drafter, K and a temperature, chain against tree.
struct tau_entry {
  drafter_kind drafter = drafter_kind::ngram; ///< ngram or early_exit
  int budget = 0;                             ///< K
  float temperature = 0.0f;                   ///< the temperature
  specdec::decode::decode_stats chain;        ///< chain loop, summed over the seeds
  specdec::decode::decode_stats tree;         ///< tree loop, summed over the seeds
  /// Early exit with tree_compare_options::sampled_tree: the sampled multi-draft tree (tree loop,
  /// summed over the seeds); empty (no steps) otherwise.
  specdec::decode::decode_stats sampled;
  bool chain_identical = true;   ///< greedy: the chain output equals plain greedy decoding
  bool tree_identical = true;    ///< greedy: the tree output equals plain greedy decoding
  bool sampled_identical = true; ///< greedy: the sampled-tree output equals plain greedy decoding
  /// Early exit: draft rows (through `layers` layers) per step, chain and tree.
  double chain_draft_rows = 0.0;
  double tree_draft_rows = 0.0;    ///< see chain_draft_rows
  double sampled_draft_rows = 0.0; ///< see chain_draft_rows (the sampled tree)
  /// @brief Verified rows per step: 1 + drafted / steps. O(1).
  /// @param[in] s a run's statistics
  /// @return the mean rows the target scored per verification step (0 without steps)
  static double rows_per_step(const specdec::decode::decode_stats& s) noexcept {
    return s.steps > 0 ? 1.0 + static_cast<double>(s.drafted) / static_cast<double>(s.steps) : 0.0;
  }
};

namespace detail {

// Counts the draft rows an early-exit proposer scores (one per drafted token for the chain).
template <class Proposer>
struct counting_chain {
  Proposer* p;
  std::int64_t rows = 0;
  static constexpr bool writes_draft_rows = Proposer::writes_draft_rows;
  specdec::status propose(const specdec::draft_request& r, specdec::draft_block& b) {
    const specdec::status s = p->propose(r, b);
    rows += b.length;
    return s;
  }
  [[nodiscard]] int max_draft_len() const {
    return p->max_draft_len();
  }
};

template <class Proposer, class Policy>
specdec::status chain_run(model& m,
                          Proposer& p,
                          Policy policy,
                          std::span<const specdec::token_id> prompt,
                          const specdec::decode::decode_config& cfg,
                          specdec::decode::decode_result& r) {
  // Every draft up to the budget cfg.max_draft, as the tree decoder's default policy does.
  specdec::decode::speculative_decoder dec(
      m, m.cache(), p, policy, specdec::sched::all_available_length{});
  return dec.generate(prompt, cfg, r);
}

template <class Proposer, class Policy>
specdec::status tree_run(model& m,
                         Proposer& p,
                         Policy policy,
                         std::span<const specdec::token_id> prompt,
                         const specdec::decode::decode_config& cfg,
                         specdec::decode::decode_result& r) {
  specdec::decode::tree_decoder dec(m, m.cache(), p, policy);
  return dec.generate(prompt, cfg, r);
}

} // namespace detail

/// @brief Chain against tree drafting at the same number of verified rows per step (see the
///        file comment). Greedy runs use verify::greedy; sampled runs use one_hot_rejection for
///        the n-gram chain and both deterministic trees, and rejection_sampling for the
///        early-exit chain and the sampled tree (drafts sampled from the early-exit rows; both
///        drafters are keyed by seed + 1, so the sampled tree's first branch is the chain's
///        draft at the first step).
/// @param[in] m the model
/// @param[in] prompt at least one token
/// @param[in] opt budgets, drafters, temperatures, seeds
/// @param[out] out one entry per (temperature, drafter, K), in that order
/// @return the first failure of a decoder, or errc::invalid_argument for bad options
/// @par Complexity
/// (2 x drafters x budgets + 1) decoding runs per temperature and seed, plus one per budget
/// for the sampled tree.
inline specdec::status compare_chain_tree(model& m,
                                          std::span<const specdec::token_id> prompt,
                                          const tree_compare_options& opt,
                                          std::vector<tau_entry>& out) {
  using namespace specdec;
  out.clear();
  if (opt.seeds < 1 || opt.layers < 1 || opt.layers > m.num_layers() || opt.top_k < 1
      || opt.top_k > tree::max_siblings || opt.depth < 1 || opt.ngram_max < 1
      || opt.ngram_children < 1 || opt.ngram_children > tree::max_siblings)
    return status{errc::invalid_argument};
  for (int b : opt.branching)
    if (b < 1 || b > tree::max_siblings)
      return status{errc::invalid_argument};
  for (int k : opt.budgets)
    if (k < 1 || k > 64)
      return status{errc::invalid_argument};
  for (float t : opt.temperatures) {
    sampling::sampling_params params = opt.params;
    params.temperature = t;
    const bool greedy = params.greedy();
    const int seeds = greedy ? 1 : opt.seeds;
    decode::decode_config cfg;
    cfg.max_new_tokens = opt.steps;
    cfg.params = params;
    if (opt.stop_at_bos)
      cfg.end_tokens = {1};
    std::vector<token_id> plain;
    if (greedy) {
      propose::no_drafter none;
      decode::decode_result r;
      cfg.max_draft = 0;
      if (const status s = detail::chain_run(m, none, verify::greedy{}, prompt, cfg, r); !s.ok())
        return s;
      plain = std::move(r.tokens);
    }
    for (drafter_kind d : {drafter_kind::ngram, drafter_kind::early_exit}) {
      if ((d == drafter_kind::ngram && !opt.ngram)
          || (d == drafter_kind::early_exit && !opt.early_exit))
        continue;
      for (int k : opt.budgets) {
        tau_entry e;
        e.drafter = d;
        e.budget = k;
        e.temperature = t;
        std::int64_t chain_rows = 0, tree_rows = 0, sampled_rows = 0;
        const bool sampled = d == drafter_kind::early_exit && opt.sampled_tree;
        for (int i = 0; i < seeds; ++i) {
          cfg.seed = opt.seed + static_cast<std::uint64_t>(i);
          cfg.max_draft = k;
          decode::decode_result c, tr, sr;
          status s{};
          if (d == drafter_kind::ngram) {
            propose::ngram_proposer chain({1, 15, k});
            propose::ngram_tree_proposer tree({1, opt.ngram_max, k, k, 0, opt.ngram_children, 0});
            if (greedy) {
              s = detail::chain_run(m, chain, verify::greedy{}, prompt, cfg, c);
              if (s.ok())
                s = detail::tree_run(m, tree, verify::greedy{}, prompt, cfg, tr);
            } else {
              s = detail::chain_run(m, chain, verify::one_hot_rejection{}, prompt, cfg, c);
              if (s.ok())
                s = detail::tree_run(m, tree, verify::one_hot_rejection{}, prompt, cfg, tr);
            }
          } else {
            propose::early_exit_proposer<model> ee(m, {opt.layers, k, params, cfg.seed + 1});
            detail::counting_chain<propose::early_exit_proposer<model>> chain{&ee};
            propose::early_exit_tree_proposer<model> tree(
                m, {opt.layers, std::min(opt.depth, k), opt.top_k, k});
            if (greedy) {
              s = detail::chain_run(m, chain, verify::greedy{}, prompt, cfg, c);
              if (s.ok())
                s = detail::tree_run(m, tree, verify::greedy{}, prompt, cfg, tr);
            } else {
              s = detail::chain_run(m, chain, verify::rejection_sampling{}, prompt, cfg, c);
              if (s.ok())
                s = detail::tree_run(m, tree, verify::one_hot_rejection{}, prompt, cfg, tr);
            }
            chain_rows += chain.rows;
            tree_rows += tree.total_rows_scored();
            if (sampled && s.ok()) {
              propose::sampled_tree_proposer<model> st(
                  m, {opt.layers, k, k, opt.branching, params, cfg.seed + 1});
              if (greedy)
                s = detail::tree_run(m, st, verify::greedy{}, prompt, cfg, sr);
              else
                s = detail::tree_run(m, st, verify::rejection_sampling{}, prompt, cfg, sr);
              sampled_rows += st.total_rows_scored();
            }
          }
          if (!s.ok())
            return s;
          if (greedy) {
            e.chain_identical = c.tokens == plain;
            e.tree_identical = tr.tokens == plain;
            if (sampled)
              e.sampled_identical = sr.tokens == plain;
          }
          e.chain += c.stats;
          e.tree += tr.stats;
          if (sampled)
            e.sampled += sr.stats;
        }
        if (e.chain.steps > 0)
          e.chain_draft_rows = static_cast<double>(chain_rows) / static_cast<double>(e.chain.steps);
        if (e.tree.steps > 0)
          e.tree_draft_rows = static_cast<double>(tree_rows) / static_cast<double>(e.tree.steps);
        if (e.sampled.steps > 0)
          e.sampled_draft_rows =
              static_cast<double>(sampled_rows) / static_cast<double>(e.sampled.steps);
        out.push_back(std::move(e));
      }
    }
  }
  return status{};
}

} // namespace llama2c
