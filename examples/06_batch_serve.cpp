// SPDX-License-Identifier: Apache-2.0
// Serving many requests with specdec's batch decoder (decode::batch_decoder) on the batched,
// multi-threaded llama2.c backend (examples/llama2c/batch.hpp): continuous batching, per-request
// sampling parameters and seeds, one ragged target call per step, one batch verification.
//
// Without --sweep (what CTest runs): 8 requests with different prompts and budgets through a
// batch of 4 with the n-gram drafter; every output is checked against decoding the request alone
// with speculative_decoder (greedy: identical tokens), and the throughput is printed.
//
// With --sweep: a closed-loop load sweep. R clients (R = 1, 2, 4, ... 64 by default) each keep one
// request in flight over the held-out prompt set (the DeepSpec example's prompts: BOS or a story
// opening); per R and per policy, tokens/s and the p50 / p99 request latency:
//   plain decoding; n-gram drafter with gamma = 5; DSpark drafter with every fixed gamma 1 .. 5
//   (the best of them in hindsight is the yardstick of the schedulers), with the theta cut, with
//   Algorithm 1 (early stop) over the backend's profiled SPS(B), and with the asynchronous top-K
//   (budget from two steps earlier, allocation from the current step).
// The DSpark drafter is the miniature DeepSpec one: --drafter FILE (from `deepspec train
// --drafter dspark`), or a small one trained at start-up (about 10 s). SPS(B) is profiled on the
// batched backend itself (median of interleaved rounds, then made non-increasing in B: a step of
// more tokens is never faster, and Algorithm 1 assumes as much). Writes sweep.json, sweep.md and
// sweep.svg (throughput vs concurrency) into --out.
//
// usage: 06_batch_serve [--model F] [--tokenizer F] [--threads N] [--sweep] [--drafter FILE]
//                       [--train-steps N] [--concurrency 1,2,4,...] [--tokens N]
//                       [--requests-per-client K]
//                       [--temperature T] [--theta X] [--out DIR] [--seed S]

#include <specdec/decode/batch_decoder.hpp>
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/propose/ngram.hpp>
#include <specdec/propose/no_draft.hpp>
#include <specdec/propose/semi_ar.hpp>
#include <specdec/sched/batch_length.hpp>
#include <specdec/sched/sps_profile.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/rejection.hpp>

#include "deepspec/block_checkpoint.hpp"
#include "deepspec/block_drafter.hpp"
#include "deepspec/data.hpp"
#include "deepspec/eval.hpp"
#include "deepspec/quick_dspark.hpp"
#include "deepspec/svg.hpp"
#include "deepspec/train.hpp"
#include "llama2c/batch.hpp"
#include "llama2c/load.hpp"
#include "llama2c/model.hpp"
#include "llama2c/paths.hpp"
#include "llama2c/tokenizer.hpp"
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

using specdec::index_t;
using specdec::status;
using specdec::token_id;
namespace decode = specdec::decode;
namespace propose = specdec::propose;
namespace sched = specdec::sched;
using trained_drafter = propose::semi_ar_drafter<deepspec::block_backbone>;

struct options {
  std::string model, tokenizer, drafter, out = "batch_sweep";
  bool sweep = false;
  int threads = 0; // 0: hardware concurrency
  std::vector<index_t> concurrency{1, 2, 4, 8, 16, 32, 64};
  std::int64_t tokens = 64;
  int requests_per_client = 2;
  float temperature = 0.0f;
  double theta = 0.5;
  int gamma = 5, train_steps = 120;
  std::uint64_t seed = 7;
};

int parse(int argc, char** argv, options& o) {
  const std::string dir = llama2c::default_model_dir();
  o.model = dir + "/stories260K.bin";
  o.tokenizer = dir + "/tok512.bin";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("usage: 06_batch_serve [--model F] [--tokenizer F] [--threads N] [--sweep] "
                  "[--drafter FILE] [--train-steps N] [--concurrency 1,2,4,...] [--tokens N] "
                  "[--requests-per-client K] [--temperature T] [--theta X] [--out DIR] "
                  "[--seed S]\n");
      return 0;
    }
    if (a == "--sweep") {
      o.sweep = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "batch_serve: %s needs a value\n", a.c_str());
      return 2;
    }
    const std::string v = argv[++i];
    char* end = nullptr;
    if (a == "--model")
      o.model = v;
    else if (a == "--tokenizer")
      o.tokenizer = v;
    else if (a == "--drafter")
      o.drafter = v;
    else if (a == "--out")
      o.out = v;
    else if (a == "--threads")
      o.threads = std::atoi(v.c_str());
    else if (a == "--train-steps")
      o.train_steps = std::atoi(v.c_str());
    else if (a == "--tokens")
      o.tokens = std::atoll(v.c_str());
    else if (a == "--requests-per-client")
      o.requests_per_client = std::atoi(v.c_str());
    else if (a == "--temperature")
      o.temperature = std::strtof(v.c_str(), &end);
    else if (a == "--theta")
      o.theta = std::strtod(v.c_str(), &end);
    else if (a == "--seed")
      o.seed = std::strtoull(v.c_str(), &end, 10);
    else if (a == "--concurrency") {
      o.concurrency.clear();
      for (const char* p = v.c_str(); *p != '\0';) {
        const long long r = std::strtoll(p, &end, 10);
        if (end == p || r < 1)
          break;
        o.concurrency.push_back(static_cast<index_t>(r));
        p = *end == ',' ? end + 1 : end;
      }
    } else {
      std::fprintf(stderr, "batch_serve: unknown option %s (try --help)\n", a.c_str());
      return 2;
    }
  }
  if (o.threads <= 0)
    o.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (o.tokens < 1 || o.requests_per_client < 1 || o.concurrency.empty()) {
    std::fprintf(stderr, "batch_serve: bad --tokens, --requests-per-client or --concurrency\n");
    return 2;
  }
  return -1;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One request's DSpark drafter: its own backbone state (the context rows of its features) over
// the shared trained weights, and the library's semi_ar_drafter on it.
class dspark_request_drafter {
public:
  static constexpr bool writes_draft_rows = true;
  dspark_request_drafter(const deepspec::block_weights<float>& W,
                         const deepspec::mat<float>& E,
                         index_t capacity,
                         const propose::semi_ar_config& cfg)
      : bb_(W, E, capacity)
      , d_(bb_, deepspec::to_sequential_head(W), deepspec::to_confidence_head(W), cfg) {}
  dspark_request_drafter(const dspark_request_drafter&) = delete;
  dspark_request_drafter& operator=(const dspark_request_drafter&) = delete;

  status propose(const specdec::draft_request& r, specdec::draft_block& b) {
    return d_.propose(r, b);
  }
  [[nodiscard]] int max_draft_len() const noexcept {
    return d_.max_draft_len();
  }
  [[nodiscard]] std::span<const double> confidences() const noexcept {
    return d_.confidences();
  }
  status begin(std::uint64_t id, specdec::row_view<const token_id> prompt) {
    return d_.begin(id, prompt);
  }
  status observe(const specdec::round_outcome& o) {
    return d_.observe(o);
  }
  void end(std::uint64_t id) {
    d_.end(id);
  }
  [[nodiscard]] specdec::row_view<const std::int32_t> feature_layers() const {
    return d_.feature_layers();
  }
  status observe_prompt(std::uint64_t id, index_t start, specdec::matrix_view<const float> f) {
    return d_.observe_prompt(id, start, f);
  }

private:
  deepspec::block_backbone bb_;
  trained_drafter d_;
};
static_assert(specdec::prompt_feature_proposer<dspark_request_drafter>);
static_assert(specdec::confident_proposer<dspark_request_drafter>);

// One closed-loop run's figures.
struct run_result {
  std::string policy;
  index_t concurrency = 0;
  std::int64_t requests = 0, tokens = 0, steps = 0, rounds = 0, drafted = 0, accepted = 0;
  double seconds = 0.0, p50 = 0.0, p99 = 0.0, mean_batch_rows = 0.0;
  double seconds_draft = 0.0, seconds_verify = 0.0; // summed over the steps
  [[nodiscard]] double tokens_per_second() const {
    return seconds > 0.0 ? static_cast<double>(tokens) / seconds : 0.0;
  }
};

double percentile(std::vector<double> v, double q) {
  if (v.empty())
    return 0.0;
  std::sort(v.begin(), v.end());
  const double at = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(at));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (at - static_cast<double>(lo));
}

// R clients, each with one request in flight, until every client has sent `per_client`.
template <class Decoder>
status closed_loop(Decoder& dec,
                   const std::vector<std::vector<token_id>>& prompts,
                   const options& o,
                   index_t clients,
                   run_result& out) {
  const std::int64_t total = static_cast<std::int64_t>(clients) * o.requests_per_client;
  std::int64_t sent = 0;
  std::vector<double> latencies;
  std::int64_t rows = 0;
  auto send = [&]() -> status {
    decode::decode_config cfg;
    cfg.max_new_tokens = o.tokens;
    cfg.params.temperature = o.temperature;
    cfg.seed = o.seed;
    cfg.max_draft = o.gamma;
    cfg.prefill_chunk = 32;
    const auto& p = prompts[static_cast<std::size_t>(sent) % prompts.size()];
    const status s = dec.submit(static_cast<std::uint64_t>(sent) + 1, p, cfg);
    ++sent;
    return s;
  };
  const auto t0 = std::chrono::steady_clock::now();
  for (index_t c = 0; c < clients && sent < total; ++c)
    if (const status s = send(); !s.ok())
      return s;
  while (!dec.idle()) {
    if (const status s = dec.step(); !s.ok())
      return s;
    ++out.steps;
    rows += dec.last_step().rows;
    out.drafted += dec.last_step().drafted;
    out.accepted += dec.last_step().accepted;
    out.rounds += dec.last_step().decoding;
    out.seconds_draft += dec.last_step().seconds_draft;
    out.seconds_verify += dec.last_step().seconds_verify;
    for (const auto& f : dec.take_finished()) {
      if (f.result.reason == decode::stop_reason::error)
        return f.result.error;
      latencies.push_back(f.seconds_latency);
      out.tokens += static_cast<std::int64_t>(f.result.tokens.size());
      ++out.requests;
      if (sent < total)
        if (const status s = send(); !s.ok())
          return s;
    }
  }
  out.seconds = seconds_since(t0);
  out.concurrency = clients;
  out.p50 = percentile(latencies, 0.5);
  out.p99 = percentile(latencies, 0.99);
  out.mean_batch_rows =
      out.steps > 0 ? static_cast<double>(rows) / static_cast<double>(out.steps) : 0.0;
  return status{};
}

// SPS(B) of the batched backend: B rows spread over min(B, 64) requests at a context of 96
// tokens; best of interleaved rounds, then non-increasing in B (sched::profile_sps).
status profile_backend(llama2c::batch_model& bm, sched::sps_table& table) {
  const index_t ctx = 96;
  const index_t seqs = std::min<index_t>(64, bm.max_sequences());
  std::vector<token_id> tokens(static_cast<std::size_t>(ctx), 5);
  std::vector<float> logits;
  for (index_t s = 0; s < seqs; ++s) {
    const auto id = static_cast<std::uint64_t>(900000 + s);
    if (const status st = bm.open(id); !st.ok())
      return st;
    const specdec::score_request r{id, {tokens.data(), ctx}, 0};
    logits.resize(static_cast<std::size_t>(ctx * bm.vocab_size()));
    if (const status st = bm.score_batch(
            {&r, 1},
            specdec::matrix_view<float>{logits.data(), ctx, bm.vocab_size(), bm.vocab_size()});
        !st.ok())
      return st;
  }
  std::vector<specdec::score_request> reqs;
  auto step = [&](index_t B) -> status {
    const index_t n = std::min(B, seqs);
    reqs.clear();
    index_t given = 0;
    for (index_t s = 0; s < n; ++s) {
      const index_t rows = B / n + (s < B % n ? 1 : 0);
      reqs.push_back({static_cast<std::uint64_t>(900000 + s), {tokens.data(), rows}, ctx});
      given += rows;
    }
    logits.resize(static_cast<std::size_t>(given * bm.vocab_size()));
    const status st = bm.score_batch(
        reqs, specdec::matrix_view<float>{logits.data(), given, bm.vocab_size(), bm.vocab_size()});
    for (index_t s = 0; s < n; ++s)
      (void)bm.rollback(static_cast<std::uint64_t>(900000 + s), ctx);
    return st;
  };
  const std::vector<index_t> batches{1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512};
  // Best of 9 per B, step time made non-decreasing in B (sched/sps_profile.hpp): noise cannot
  // make a larger batch look faster to the schedulers.
  const status profiled = sched::profile_sps(step, batches, 9, table);
  for (index_t s = 0; s < seqs; ++s)
    (void)bm.close(static_cast<std::uint64_t>(900000 + s));
  if (!profiled.ok())
    return profiled;
  return table.validate();
}

// The demo CTest runs: 8 requests through a batch of 4, each checked against decoding it alone.
int demo(const options& o, llama2c::model& m, const llama2c::tokenizer& tok) {
  llama2c::batch_model bm;
  if (const status s = bm.init(m, std::min(o.threads, 2), 8); !s.ok()) {
    std::fprintf(stderr, "batch_serve: %s\n", s.message());
    return 1;
  }
  propose::ngram_config nc;
  nc.max_draft = 5;
  const propose::ngram_proposer ngram(nc);
  decode::batch_decoder dec(bm,
                            bm,
                            ngram,
                            specdec::verify::greedy{},
                            sched::batch_fixed_length{5},
                            decode::batch_decoder_config{4, 64});
  std::vector<std::vector<token_id>> prompts;
  for (std::int64_t i = 0; i < 8; ++i)
    prompts.push_back(deepspec::prompt_of(tok, i));
  std::vector<decode::decode_config> cfgs(prompts.size());
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    cfgs[i].max_new_tokens = 24 + 8 * static_cast<std::int64_t>(i);
    cfgs[i].max_draft = 5;
    if (const status s = dec.submit(i + 1, prompts[i], cfgs[i]); !s.ok()) {
      std::fprintf(stderr, "batch_serve: submit: %s\n", s.message());
      return 1;
    }
  }
  std::map<std::uint64_t, decode::batch_finished> done;
  std::int64_t steps = 0, tokens = 0;
  while (!dec.idle()) {
    if (const status s = dec.step(); !s.ok()) {
      std::fprintf(stderr, "batch_serve: step: %s\n", s.message());
      return 1;
    }
    ++steps;
    for (auto& f : dec.take_finished()) {
      tokens += static_cast<std::int64_t>(f.result.tokens.size());
      done.emplace(f.request_id, std::move(f));
    }
  }
  const double secs = seconds_since(t0);
  int mismatches = 0;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    llama2c::model alone = m;
    alone.reset();
    propose::ngram_proposer p(nc);
    decode::speculative_decoder sd(
        alone, alone.cache(), p, specdec::verify::greedy{}, sched::fixed_draft_length{5});
    decode::decode_result r;
    decode::decode_config c = cfgs[i];
    c.request_id = i + 1;
    if (const status s = sd.generate(prompts[i], c, r); !s.ok())
      return 1;
    const auto& b = done.at(i + 1).result.tokens;
    const bool same = b == r.tokens;
    mismatches += same ? 0 : 1;
    std::printf("request %zu (%zu tokens, %s): %s...\n",
                i + 1,
                b.size(),
                same ? "== alone" : "DIFFERS from alone",
                tok.decode(std::span<const token_id>(b).first(std::min<std::size_t>(b.size(), 12)),
                           prompts[i].back())
                    .c_str());
  }
  std::printf("8 requests through a batch of 4 with the n-gram drafter (gamma 5, greedy): %lld "
              "tokens in %lld steps, %.0f tokens/s on %d thread(s); every output %s decoding "
              "alone\n",
              static_cast<long long>(tokens),
              static_cast<long long>(steps),
              secs > 0 ? static_cast<double>(tokens) / secs : 0.0,
              bm.threads(),
              mismatches == 0 ? "equals" : "does NOT equal");
  return mismatches == 0 ? 0 : 1;
}

// Rejection sampling with the draft rows for a dense drafter, with one-hot drafts otherwise (both
// are lossless at any temperature; at T = 0 they accept exactly the target's argmax).
template <class Proposer>
using policy_for = std::conditional_t<specdec::dense_draft_proposer<Proposer>,
                                      specdec::verify::rejection_sampling,
                                      specdec::verify::one_hot_rejection>;

template <class Proposer, class Length>
status run_policy(llama2c::batch_model& bm,
                  typename decode::batch_decoder<llama2c::batch_model,
                                                 llama2c::batch_model,
                                                 Proposer,
                                                 policy_for<Proposer>,
                                                 Length>::proposer_factory factory,
                  Length length,
                  const std::vector<std::vector<token_id>>& prompts,
                  const options& o,
                  index_t clients,
                  const char* name,
                  std::vector<run_result>& results) {
  decode::batch_decoder<llama2c::batch_model,
                        llama2c::batch_model,
                        Proposer,
                        policy_for<Proposer>,
                        Length>
      dec(bm,
          bm,
          std::move(factory),
          policy_for<Proposer>{},
          std::move(length),
          decode::batch_decoder_config{clients, std::max<index_t>(512, clients * (o.gamma + 1))});
  run_result r;
  r.policy = name;
  if (const status s = closed_loop(dec, prompts, o, clients, r); !s.ok())
    return s;
  std::printf("  R = %3lld  %-28s %8.0f tok/s  p50 %7.1f ms  p99 %7.1f ms  tau %.2f  rows/step "
              "%.1f\n",
              static_cast<long long>(clients),
              name,
              r.tokens_per_second(),
              1e3 * r.p50,
              1e3 * r.p99,
              r.rounds > 0
                  ? static_cast<double>(r.accepted + r.rounds) / static_cast<double>(r.rounds)
                  : 0.0,
              r.mean_batch_rows);
  std::fflush(stdout);
  results.push_back(r);
  return status{};
}

int sweep(const options& o, llama2c::model& m, const llama2c::tokenizer& tok) {
  const index_t max_r = *std::max_element(o.concurrency.begin(), o.concurrency.end());
  llama2c::batch_model bm;
  if (const status s = bm.init(m, o.threads, std::max<index_t>(max_r, 64)); !s.ok()) {
    std::fprintf(stderr, "batch_serve: %s\n", s.message());
    return 1;
  }
  // The DSpark drafter.
  deepspec::mat<float> E;
  if (const status s = deepspec::load_embedding(o.model, m, E); !s.ok()) {
    std::fprintf(stderr, "batch_serve: cannot read the embedding: %s\n", s.message());
    return 1;
  }
  deepspec::block_weights<float> W;
  int gamma = o.gamma;
  const auto t_train = std::chrono::steady_clock::now();
  if (!o.drafter.empty()) {
    std::string detail;
    if (const status s = deepspec::load_block_drafter(o.drafter, W, &detail); !s.ok()) {
      std::fprintf(stderr, "batch_serve: %s\n", detail.c_str());
      return 1;
    }
    if (!W.cfg.confidence || W.cfg.vocab != m.vocab_size() || W.cfg.dim != m.hidden_size()) {
      std::fprintf(stderr,
                   "batch_serve: %s is not a DSpark drafter of this target with a "
                   "confidence head\n",
                   o.drafter.c_str());
      return 1;
    }
    gamma = std::min(gamma, W.cfg.block);
    std::printf("DSpark drafter: %s\n", o.drafter.c_str());
  } else {
    if (const status s =
            deepspec::train_small_dspark(o.model, tok, E, gamma, 32, o.train_steps, o.seed, W);
        !s.ok()) {
      std::fprintf(stderr, "batch_serve: training failed: %s\n", s.message());
      return 1;
    }
    std::printf("DSpark drafter: trained at start-up (2 layers, block %d, Markov r = 32, "
                "confidence head; %d steps) in %.1f s\n",
                gamma,
                o.train_steps,
                seconds_since(t_train));
  }
  propose::semi_ar_config dcfg;
  dcfg.gamma = gamma;
  dcfg.seed = o.seed;
  dcfg.params.temperature = o.temperature; // drafts drawn as the target samples

  // The backend's step curve.
  sched::sps_table table;
  const auto t_prof = std::chrono::steady_clock::now();
  if (const status s = profile_backend(bm, table); !s.ok()) {
    std::fprintf(stderr, "batch_serve: profiling failed: %s\n", s.message());
    return 1;
  }
  std::printf("profiled SPS(B) on %d thread(s) in %.1f s:", bm.threads(), seconds_since(t_prof));
  for (std::size_t i = 0; i < table.batches().size(); ++i)
    std::printf(" %lld:%.0f", static_cast<long long>(table.batches()[i]), table.values()[i]);
  std::printf("\n");

  // Held-out prompts: the DeepSpec example's three evaluation sets (stories, openings, copy) of
  // 16 prompts each, built from held-out sequences the target writes (never used in training).
  std::vector<std::vector<token_id>> prompts;
  {
    deepspec::data_options d;
    d.sequences = 48;
    d.max_new = 64;
    d.seed = o.seed;
    d.heldout = true;
    d.progress = false;
    deepspec::dataset heldout;
    llama2c::model writer = m;
    if (const status s = deepspec::generate_dataset(writer, tok, d, heldout); !s.ok()) {
      std::fprintf(stderr, "batch_serve: held-out prompts: %s\n", s.message());
      return 1;
    }
    const auto sets = deepspec::eval_sets(heldout, tok, 16);
    for (std::size_t i = 0; i < 16; ++i) // interleaved, so every R sees all three sets
      for (const auto& set : sets)
        if (i < set.prompts.size())
          prompts.push_back(set.prompts[i]);
  }

  const index_t capacity = m.seq_len();
  // The per-request cost of a DSpark step outside the target's profile (drafting, observing,
  // verification), measured on the training-style prompts (BOS and story openings), never on the
  // held-out set: the schedulers weigh a verified token against the whole step with it.
  double per_request = 0.0;
  {
    std::vector<std::vector<token_id>> cal;
    for (std::int64_t i = 0; i < 8; ++i)
      cal.push_back(deepspec::prompt_of(tok, i));
    std::vector<run_result> scratch;
    options c = o;
    c.requests_per_client = 1;
    if (const status s = run_policy<dspark_request_drafter>(
            bm,
            [&](std::uint64_t) {
              return std::make_unique<dspark_request_drafter>(W, E, capacity, dcfg);
            },
            sched::batch_fixed_length{gamma},
            cal,
            c,
            8,
            "(calibration: DSpark, gamma 5)",
            scratch);
        !s.ok()) {
      std::fprintf(stderr, "batch_serve: calibration failed: %s\n", s.message());
      return 1;
    }
    const run_result& r = scratch.front();
    per_request =
        r.rounds > 0 ? (r.seconds_draft + r.seconds_verify) / static_cast<double>(r.rounds) : 0.0;
    std::printf("DSpark per-request step cost outside the target (draft + verify): %.1f us\n",
                1e6 * per_request);
  }
  auto ngram_factory = [](std::uint64_t) {
    propose::ngram_config nc;
    nc.max_draft = 8;
    return std::make_unique<propose::ngram_proposer>(nc);
  };
  auto dspark_factory = [&](std::uint64_t) {
    return std::make_unique<dspark_request_drafter>(W, E, capacity, dcfg);
  };
  auto plain_factory = [](std::uint64_t) { return std::make_unique<propose::no_drafter>(); };
  std::vector<run_result> results;
  const index_t g = gamma;
  for (const index_t r : o.concurrency) {
    status s = run_policy<propose::no_drafter>(
        bm, plain_factory, sched::batch_fixed_length{0}, prompts, o, r, "plain", results);
    if (s.ok())
      s = run_policy<propose::ngram_proposer>(bm,
                                              ngram_factory,
                                              sched::batch_fixed_length{g},
                                              prompts,
                                              o,
                                              r,
                                              "n-gram, gamma 5",
                                              results);
    // Fixed lengths 1 .. gamma: the best fixed length in hindsight is the scheduler's yardstick.
    for (index_t k = 1; k <= g && s.ok(); ++k) {
      const std::string name = "DSpark, gamma " + std::to_string(k);
      s = run_policy<dspark_request_drafter>(
          bm, dspark_factory, sched::batch_fixed_length{k}, prompts, o, r, name.c_str(), results);
    }
    if (s.ok())
      s = run_policy<dspark_request_drafter>(bm,
                                             dspark_factory,
                                             sched::batch_threshold_length{o.theta},
                                             prompts,
                                             o,
                                             r,
                                             "DSpark, theta cut",
                                             results);
    if (s.ok())
      s = run_policy<dspark_request_drafter>(
          bm,
          dspark_factory,
          sched::batch_prefix_schedule{table, sched::schedule_mode::early_stop, per_request},
          prompts,
          o,
          r,
          "DSpark, Algorithm 1",
          results);
    if (s.ok())
      s = run_policy<dspark_request_drafter>(bm,
                                             dspark_factory,
                                             sched::batch_async_top_k{table, per_request},
                                             prompts,
                                             o,
                                             r,
                                             "DSpark, async top-K",
                                             results);
    if (!s.ok()) {
      std::fprintf(
          stderr, "batch_serve: R = %lld failed: %s\n", static_cast<long long>(r), s.message());
      return 1;
    }
  }

  // Outputs.
  const std::string mk = "mkdir -p '" + o.out + "'";
  if (std::system(mk.c_str()) != 0) {
    std::fprintf(stderr, "batch_serve: cannot create %s\n", o.out.c_str());
    return 1;
  }
  std::vector<std::string> names;
  for (const run_result& r : results)
    if (std::find(names.begin(), names.end(), r.policy) == names.end())
      names.push_back(r.policy);
  if (std::FILE* f = std::fopen((o.out + "/sweep.json").c_str(), "w")) {
    std::fprintf(f,
                 "{\"threads\": %d, \"tokens_per_request\": %lld, \"temperature\": %g, "
                 "\"runs\": [\n",
                 bm.threads(),
                 static_cast<long long>(o.tokens),
                 static_cast<double>(o.temperature));
    for (std::size_t i = 0; i < results.size(); ++i) {
      const run_result& r = results[i];
      std::fprintf(f,
                   "  {\"policy\": \"%s\", \"R\": %lld, \"requests\": %lld, \"tokens\": %lld, "
                   "\"seconds\": %.6f, \"tokens_per_second\": %.3f, \"p50_s\": %.6f, \"p99_s\": "
                   "%.6f, \"steps\": %lld, \"rounds\": %lld, \"drafted\": %lld, \"accepted\": "
                   "%lld, \"mean_rows_per_step\": %.3f}%s\n",
                   r.policy.c_str(),
                   static_cast<long long>(r.concurrency),
                   static_cast<long long>(r.requests),
                   static_cast<long long>(r.tokens),
                   r.seconds,
                   r.tokens_per_second(),
                   r.p50,
                   r.p99,
                   static_cast<long long>(r.steps),
                   static_cast<long long>(r.rounds),
                   static_cast<long long>(r.drafted),
                   static_cast<long long>(r.accepted),
                   r.mean_batch_rows,
                   i + 1 < results.size() ? "," : "");
    }
    std::fprintf(f, "]}\n");
    std::fclose(f);
  }
  if (std::FILE* f = std::fopen((o.out + "/sweep.md").c_str(), "w")) {
    std::fprintf(f, "| policy |");
    for (const index_t r : o.concurrency)
      std::fprintf(f, " R = %lld |", static_cast<long long>(r));
    std::fprintf(f, "\n|---|");
    for (std::size_t i = 0; i < o.concurrency.size(); ++i)
      std::fprintf(f, "---|");
    std::fprintf(f, "\n");
    for (const std::string& n : names) {
      std::fprintf(f, "| %s |", n.c_str());
      for (const run_result& r : results)
        if (r.policy == n)
          std::fprintf(f,
                       " %.0f tok/s, p50 %.0f ms, p99 %.0f ms |",
                       r.tokens_per_second(),
                       1e3 * r.p50,
                       1e3 * r.p99);
      std::fprintf(f, "\n");
    }
    std::fclose(f);
  }
  std::vector<deepspec::svg_series> series;
  double ymax = 0.0;
  for (const std::string& n : names) {
    deepspec::svg_series sr;
    sr.name = n;
    for (const run_result& r : results)
      if (r.policy == n) {
        sr.x.push_back(static_cast<double>(r.concurrency));
        sr.y.push_back(r.tokens_per_second());
        ymax = std::max(ymax, r.tokens_per_second());
      }
    series.push_back(sr);
  }
  deepspec::svg_axes ax;
  ax.title = "Throughput vs concurrency (stories260K, batched llama2c backend, measured)";
  ax.xlabel = "concurrent requests R";
  ax.ylabel = "tokens / s";
  ax.log_x = true;
  ax.x0 = static_cast<double>(*std::min_element(o.concurrency.begin(), o.concurrency.end()));
  ax.x1 = std::max(ax.x0 * 2.0, static_cast<double>(max_r));
  ax.y0 = 0.0;
  ax.y1 = ymax * 1.1 + 1.0;
  if (!deepspec::write_svg_chart(o.out + "/sweep.svg", ax, series))
    std::fprintf(stderr, "batch_serve: cannot write %s/sweep.svg\n", o.out.c_str());
  std::printf("wrote %s/sweep.json, sweep.md, sweep.svg\n", o.out.c_str());
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  if (const int rc = parse(argc, argv, o); rc >= 0)
    return rc;
  llama2c::model m;
  llama2c::tokenizer tok;
  if (!llama2c::load_model_and_tokenizer("batch_serve", o.model, o.tokenizer, m, tok))
    return 1;
  return o.sweep ? sweep(o, m, tok) : demo(o, m, tok);
}
