// SPDX-License-Identifier: Apache-2.0
// 04_dspark_generate: the whole DSpark round on a real transformer (stories260K, llama2.c format):
// a trained DSpark drafter (the miniature DeepSpec path's parallel block backbone fed by the
// target's features, a Markov head, a confidence head), Sequential Temperature Scaling, the draft
// length chosen by a threshold, by the cost-aware controller (profiled verification costs plus
// the block's measured cost) or by the hardware-aware prefix scheduler over the backend's
// profiled steps-per-second curve, rejection verification, and the DSpark statistics. Ends with
// a simulated load sweep: R concurrent requests drawing rounds logged from the real decoder,
// verified with the profiled SPS(B) of this backend (a simulation: no batched backend yet).
//
//   04_dspark_generate [--model F] [--tokenizer F] [--prompt TEXT] [--steps N] [--gamma G]
//                      [--drafter FILE] [--train-steps N] [--rank R] [--theta X] [--seed S]
//                      [--sweep-steps N]
//                      [--fit] [--layers L] [--heads FILE] [--save-heads FILE]
//                      [--fit-stories N] [--fit-length N]
//
// The drafter: --drafter loads a block drafter written by `deepspec train --drafter dspark`
// (examples/05_deepspec.cpp; its block size bounds --gamma); without it a small one is trained at
// start-up on stories the target writes itself (--train-steps optimizer steps, a few seconds).
// --fit uses instead the closed-form drafter of examples/llama2c/dspark_fit.hpp (the baseline of
// earlier versions: block maps over the target's first --layers layers, fitted in closed form;
// --heads / --save-heads load or save it). Exit code 2 when a greedy run differs from plain
// greedy decoding.

// GCC 12 reports -W(maybe-)uninitialized inside Eigen's AVX-512 double GEMM and LLT kernels with
// -march=native (a false positive in its own intrinsics headers); the fit below uses them.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <specdec/calib/reliability.hpp>
#include <specdec/calib/sts.hpp>
#include <specdec/decode/round_metrics.hpp>
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/propose/no_draft.hpp>
#include <specdec/propose/semi_ar.hpp>
#include <specdec/propose/semi_ar_heads_io.hpp>
#include <specdec/sched/confidence_length.hpp>
#include <specdec/sched/cost_profile.hpp>
#include <specdec/sched/draft_length.hpp>
#include <specdec/sched/prefix_scheduler.hpp>
#include <specdec/sched/sps_profile.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/rejection.hpp>

#include "deepspec/block_checkpoint.hpp"
#include "deepspec/block_train.hpp"
#include "deepspec/data.hpp"
#include "deepspec/quick_dspark.hpp"
#include "deepspec/svg.hpp"
#include "llama2c/dspark_fit.hpp"
#include "llama2c/load.hpp"
#include "llama2c/model.hpp"
#include "llama2c/paths.hpp"
#include "llama2c/tokenizer.hpp"
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

using specdec::index_t;
using specdec::status;
using specdec::token_id;
namespace decode = specdec::decode;
namespace propose = specdec::propose;
namespace sched = specdec::sched;
namespace calib = specdec::calib;
using fit_drafter = propose::semi_ar_drafter<llama2c::dspark::block_backbone>;
using trained_drafter = propose::semi_ar_drafter<deepspec::block_backbone>;

struct options {
  std::string model, tokenizer, prompt = "Once upon a time";
  std::string heads, save_heads, drafter, svg;
  bool fit = false;
  int train_steps = 120;
  std::int64_t steps = 200;
  int gamma = 5, layers = 3, fit_stories = 6, sweep_steps = 400;
  index_t rank = 32, fit_length = 200;
  float theta = 0.5f;
  std::uint64_t seed = 7;
};

int parse(int argc, char** argv, options& o) {
  const std::string dir = llama2c::default_model_dir();
  o.model = dir + "/stories260K.bin";
  o.tokenizer = dir + "/tok512.bin";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("usage: 04_dspark_generate [--model F] [--tokenizer F] [--prompt TEXT] "
                  "[--steps N] [--gamma G] [--drafter FILE] [--train-steps N] [--rank R] "
                  "[--theta X] [--seed S] [--sweep-steps N] [--svg FILE] [--fit] [--layers L] "
                  "[--heads FILE] "
                  "[--save-heads FILE] [--fit-stories N] [--fit-length N]\n");
      return 0;
    }
    if (a == "--fit") {
      o.fit = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "dspark_generate: %s needs a value (see --help)\n", a.c_str());
      return 1;
    }
    const std::string v = argv[++i];
    if (a == "--model")
      o.model = v;
    else if (a == "--tokenizer")
      o.tokenizer = v;
    else if (a == "--prompt")
      o.prompt = v;
    else if (a == "--heads")
      o.heads = v;
    else if (a == "--drafter")
      o.drafter = v;
    else if (a == "--svg")
      o.svg = v;
    else if (a == "--train-steps")
      o.train_steps = std::atoi(v.c_str());
    else if (a == "--save-heads")
      o.save_heads = v;
    else if (a == "--steps")
      o.steps = std::atoll(v.c_str());
    else if (a == "--gamma")
      o.gamma = std::atoi(v.c_str());
    else if (a == "--layers")
      o.layers = std::atoi(v.c_str());
    else if (a == "--rank")
      o.rank = std::atoi(v.c_str());
    else if (a == "--theta")
      o.theta = std::strtof(v.c_str(), nullptr);
    else if (a == "--seed")
      o.seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (a == "--fit-stories")
      o.fit_stories = std::atoi(v.c_str());
    else if (a == "--fit-length")
      o.fit_length = std::atoi(v.c_str());
    else if (a == "--sweep-steps")
      o.sweep_steps = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "dspark_generate: unknown option %s (see --help)\n", a.c_str());
      return 1;
    }
  }
  if (o.gamma < 1 || o.gamma > 16 || o.layers < 1 || o.rank < 1 || o.steps < 1 || o.fit_stories < 1
      || o.fit_length < 8 || o.sweep_steps < 1 || o.train_steps < 1) {
    std::fprintf(stderr, "dspark_generate: an option is out of range (see --help)\n");
    return 1;
  }
  return -1;
}

// The backbone maps beside the heads file: "SPDKMAPS", u32 gamma, u32 d, then gamma*d*d floats.
status save_maps(const std::string& path, const llama2c::dspark::fitted& f) {
  std::ofstream out(path, std::ios::binary);
  const std::uint32_t g = static_cast<std::uint32_t>(f.gamma);
  const std::uint32_t d = static_cast<std::uint32_t>(f.hidden);
  out.write("SPDKMAPS", 8);
  out.write(reinterpret_cast<const char*>(&g), 4);
  out.write(reinterpret_cast<const char*>(&d), 4);
  out.write(reinterpret_cast<const char*>(f.maps.data()),
            static_cast<std::streamsize>(f.maps.size() * sizeof(float)));
  return out ? status{} : status{specdec::errc::io_error};
}

status load_maps(const std::string& path, index_t d, llama2c::dspark::fitted& f) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  std::uint32_t g = 0, dd = 0;
  in.read(magic, 8);
  in.read(reinterpret_cast<char*>(&g), 4);
  in.read(reinterpret_cast<char*>(&dd), 4);
  if (!in)
    return status{specdec::errc::io_error};
  if (std::memcmp(magic, "SPDKMAPS", 8) != 0 || dd != static_cast<std::uint32_t>(d) || g < 1
      || g > 64)
    return status{specdec::errc::corrupt_data};
  f.gamma = static_cast<int>(g);
  f.maps.resize(static_cast<std::size_t>(g) * static_cast<std::size_t>(d * d));
  in.read(reinterpret_cast<char*>(f.maps.data()),
          static_cast<std::streamsize>(f.maps.size() * sizeof(float)));
  return in ? status{} : status{specdec::errc::corrupt_data};
}

// One logged round of the decoder: the block's raw confidence logits, what was verified and
// accepted.
struct logged_round {
  std::vector<double> z;
  int proposed = 0, accepted = 0;
};

struct run_result {
  decode::decode_result out;
  decode::round_metrics metrics;
  std::vector<logged_round> rounds;
};

// Decodes `steps` tokens after `prompt` with the DSpark drafter and a length policy, logging every
// round.
template <class Policy, class Length, class Drafter>
status run(llama2c::model& m,
           Drafter& drafter,
           const std::vector<token_id>& prompt,
           decode::decode_config cfg,
           Length length,
           run_result& r) {
  r = run_result{};
  cfg.on_step = [&r, &drafter](const decode::step_record& s) {
    (void)r.metrics.add(s.drafted, s.accepted, false);
    logged_round lr;
    const std::span<const float> z = drafter.confidence_logits();
    if (s.offered > 0)
      lr.z.assign(z.begin(), z.end());
    lr.proposed = s.drafted;
    lr.accepted = s.accepted;
    r.rounds.push_back(std::move(lr));
  };
  decode::speculative_decoder dec(m, m.cache(), drafter, Policy{}, std::move(length));
  return dec.generate(prompt, cfg, r.out);
}

status run_plain(llama2c::model& m,
                 const std::vector<token_id>& prompt,
                 const decode::decode_config& cfg,
                 decode::decode_result& out) {
  propose::no_drafter none;
  decode::speculative_decoder dec(m, m.cache(), none, specdec::verify::greedy{});
  if (cfg.params.greedy())
    return dec.generate(prompt, cfg, out);
  decode::speculative_decoder dec_t(m, m.cache(), none, specdec::verify::one_hot_rejection{});
  return dec_t.generate(prompt, cfg, out);
}

// The simulated load sweep: R requests per step, each drawing a logged full-block round (its
// calibrated conditionals and realised accepted count n); verifying l of its drafts commits
// min(n, l) + 1 tokens; the step takes 1 / SPS(B) seconds, B = R + sum l.
struct sweep_row {
  index_t requests = 0;
  double fixed_gamma = 0, best_fixed = 0, threshold = 0, early_stop = 0, async = 0, global = 0;
  int best_k = 0;
  double mean_len_early = 0, mean_len_async = 0;
};

status sweep(const std::vector<std::vector<double>>& c,
             const std::vector<int>& n,
             int gamma,
             float theta,
             const sched::sps_table& table,
             index_t requests,
             int steps,
             std::uint64_t seed,
             sweep_row& row) {
  row = sweep_row{};
  row.requests = requests;
  std::mt19937_64 g(seed);
  std::uniform_int_distribution<std::size_t> pick(0, c.size() - 1);
  sched::prefix_scheduler ps;
  sched::async_top_k_scheduler async;
  std::vector<double> flat;
  std::vector<index_t> offsets, lengths(static_cast<std::size_t>(requests));
  std::vector<std::size_t> drawn(static_cast<std::size_t>(requests));
  // tokens and seconds per policy: fixed k = 0..gamma, threshold, early stop, async, global
  const std::size_t P = static_cast<std::size_t>(gamma) + 5;
  std::vector<double> tokens(P, 0.0), seconds(P, 0.0);
  double len_early = 0, len_async = 0;
  const auto account = [&](std::size_t policy, const std::vector<index_t>& l) {
    index_t batch = requests;
    double tok = 0;
    for (std::size_t r = 0; r < drawn.size(); ++r) {
      batch += l[r];
      tok += static_cast<double>(std::min<index_t>(n[drawn[r]], l[r]) + 1);
    }
    const double sps = table.at(batch);
    tokens[policy] += tok;
    seconds[policy] += sps > 0 ? 1.0 / sps : 1e30;
  };
  for (int s = 0; s < steps; ++s) {
    flat.clear();
    offsets.assign(1, 0);
    for (std::size_t r = 0; r < drawn.size(); ++r) {
      drawn[r] = pick(g);
      flat.insert(flat.end(), c[drawn[r]].begin(), c[drawn[r]].end());
      offsets.push_back(static_cast<index_t>(flat.size()));
    }
    for (int k = 0; k <= gamma; ++k) {
      std::fill(lengths.begin(), lengths.end(), static_cast<index_t>(k));
      account(static_cast<std::size_t>(k), lengths);
    }
    for (std::size_t r = 0; r < drawn.size(); ++r)
      lengths[r] =
          calib::threshold_cut(std::span<const double>(c[drawn[r]]), static_cast<double>(theta));
    account(static_cast<std::size_t>(gamma) + 1, lengths);
    if (const status st = ps.schedule(flat, offsets, table, lengths); !st.ok())
      return st;
    for (const index_t l : lengths)
      len_early += static_cast<double>(l);
    account(static_cast<std::size_t>(gamma) + 2, lengths);
    if (const status st = async.schedule(flat, offsets, table, lengths); !st.ok())
      return st;
    for (const index_t l : lengths)
      len_async += static_cast<double>(l);
    account(static_cast<std::size_t>(gamma) + 3, lengths);
    if (const status st =
            ps.schedule(flat, offsets, table, lengths, nullptr, sched::schedule_mode::global);
        !st.ok())
      return st;
    account(static_cast<std::size_t>(gamma) + 4, lengths);
  }
  const auto rate = [&](std::size_t p) { return tokens[p] / seconds[p]; };
  row.fixed_gamma = rate(static_cast<std::size_t>(gamma));
  for (int k = 0; k <= gamma; ++k)
    if (rate(static_cast<std::size_t>(k)) > row.best_fixed) {
      row.best_fixed = rate(static_cast<std::size_t>(k));
      row.best_k = k;
    }
  row.threshold = rate(static_cast<std::size_t>(gamma) + 1);
  row.early_stop = rate(static_cast<std::size_t>(gamma) + 2);
  row.async = rate(static_cast<std::size_t>(gamma) + 3);
  row.global = rate(static_cast<std::size_t>(gamma) + 4);
  const double denom = static_cast<double>(steps) * static_cast<double>(requests);
  row.mean_len_early = len_early / denom;
  row.mean_len_async = len_async / denom;
  return status{};
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

} // namespace

template <class Drafter>
int demo(llama2c::model& m,
         const llama2c::tokenizer& tok,
         const options& o,
         const std::vector<token_id>& prompt,
         Drafter& drafter,
         Drafter& dflash);

int main(int argc, char** argv) {
  options o;
  if (const int rc = parse(argc, argv, o); rc >= 0)
    return rc;
  llama2c::model m;
  llama2c::tokenizer tok;
  if (!llama2c::load_model_and_tokenizer("dspark_generate", o.model, o.tokenizer, m, tok))
    return 1;
  if (o.layers >= m.num_layers()) {
    std::fprintf(stderr, "dspark_generate: --layers must be below %d\n", m.num_layers());
    return 1;
  }
  const std::vector<token_id> prompt = tok.encode(o.prompt, true, false);
  const index_t V = m.vocab_size(), d = m.hidden_size();

  // 1. The drafter: trained (loaded, or trained at start-up), or the closed-form fit.
  if (!o.fit) {
    deepspec::mat<float> E;
    if (const status s = deepspec::load_embedding(o.model, m, E); !s.ok()) {
      std::fprintf(stderr, "dspark_generate: cannot read the embedding: %s\n", s.message());
      return 1;
    }
    deepspec::block_weights<float> W;
    const auto t0 = std::chrono::steady_clock::now();
    if (!o.drafter.empty()) {
      std::string detail;
      if (const status s = deepspec::load_block_drafter(o.drafter, W, &detail); !s.ok()) {
        std::fprintf(stderr, "dspark_generate: %s\n", detail.c_str());
        return 1;
      }
      if (!W.cfg.confidence || W.cfg.vocab != V || W.cfg.dim != d) {
        std::fprintf(stderr,
                     "dspark_generate: %s is not a DSpark drafter of this target with a "
                     "confidence head\n",
                     o.drafter.c_str());
        return 1;
      }
      o.gamma = std::min(o.gamma, W.cfg.block);
      std::printf("loaded the DSpark drafter %s (%d layers, block %d, %s head r = %d)\n",
                  o.drafter.c_str(),
                  W.cfg.n_layers,
                  W.cfg.block,
                  deepspec::block_head_name(W.cfg.head),
                  W.cfg.r());
    } else {
      if (const status s = deepspec::train_small_dspark(
              o.model, tok, E, o.gamma, o.rank, o.train_steps, o.seed, W);
          !s.ok()) {
        std::fprintf(stderr, "dspark_generate: training failed: %s\n", s.message());
        return 1;
      }
      std::printf("trained a DSpark drafter (2 layers, block %d, Markov head r = %lld, confidence "
                  "head) for %d steps on 96 stories the target wrote, in %.1f s\n",
                  o.gamma,
                  static_cast<long long>(o.rank),
                  o.train_steps,
                  seconds_since(t0));
    }
    deepspec::block_backbone bb(W, E, m.seq_len());
    propose::semi_ar_config dcfg;
    dcfg.gamma = o.gamma;
    dcfg.seed = o.seed;
    trained_drafter drafter(
        bb, deepspec::to_sequential_head(W), deepspec::to_confidence_head(W), dcfg);
    // The same backbone without the sequential head and the confidence head (r = 0 at
    // inference; not a trained DFlash, which `deepspec train --drafter dflash` gives).
    trained_drafter dflash(bb, propose::sequential_head<float>{}, std::nullopt, dcfg);
    return demo(m, tok, o, prompt, drafter, dflash);
  }
  llama2c::dspark::fitted f;
  propose::sequential_head<float> head;
  std::optional<propose::confidence_head<float>> conf;
  const auto t_fit = std::chrono::steady_clock::now();
  if (!o.heads.empty()) {
    if (const status s = propose::load_heads(o.heads, head, conf); !s.ok()) {
      std::fprintf(
          stderr, "dspark_generate: cannot load heads '%s': %s\n", o.heads.c_str(), s.message());
      return 1;
    }
    if (const status s = load_maps(o.heads + ".maps", d, f); !s.ok() || head.vocab != V) {
      std::fprintf(
          stderr, "dspark_generate: '%s.maps' does not match the model\n", o.heads.c_str());
      return 1;
    }
    o.gamma = std::min(o.gamma, f.gamma);
    std::printf("loaded heads from %s (rank %lld, gamma %d)\n",
                o.heads.c_str(),
                static_cast<long long>(head.rank),
                f.gamma);
  } else {
    llama2c::dspark::fit_options fo;
    fo.layers = o.layers;
    fo.gamma = o.gamma;
    fo.rank = o.rank;
    fo.sequences = o.fit_stories;
    fo.length = o.fit_length;
    fo.seed = o.seed + 1000;
    std::vector<std::vector<token_id>> corpus;
    if (const status s = llama2c::dspark::make_corpus(m, fo, corpus); !s.ok())
      return 1;
    if (const status s = llama2c::dspark::fit(m, corpus, fo, f); !s.ok()) {
      std::fprintf(stderr, "dspark_generate: fitting failed: %s\n", s.message());
      return 1;
    }
    head.kind = propose::head_kind::markov;
    head.vocab = V;
    head.rank = f.rank;
    head.hidden = d;
    head.w1 = f.w1;
    head.w2 = f.w2;
    conf = propose::confidence_head<float>{f.conf_w, f.conf_b, d, f.rank, true};
    std::printf("fitted the block maps, a rank-%lld Markov head and the confidence head on %d "
                "self-sampled stories of %lld tokens in %.2f s\n",
                static_cast<long long>(f.rank),
                o.fit_stories,
                static_cast<long long>(o.fit_length),
                seconds_since(t_fit));
    if (!o.save_heads.empty()) {
      if (!propose::save_heads(o.save_heads, head, &*conf).ok()
          || !save_maps(o.save_heads + ".maps", f).ok()) {
        std::fprintf(stderr, "dspark_generate: cannot write '%s'\n", o.save_heads.c_str());
        return 1;
      }
      std::printf("saved the heads to %s and the block maps to %s.maps\n",
                  o.save_heads.c_str(),
                  o.save_heads.c_str());
    }
  }
  llama2c::dspark::block_backbone backbone(m, o.layers, o.gamma, f.maps);
  propose::semi_ar_config dcfg;
  dcfg.gamma = o.gamma;
  dcfg.seed = o.seed;
  fit_drafter drafter(backbone, head, conf, dcfg);
  // The same block without the sequential head and without confidence: DFlash (r = 0).
  fit_drafter dflash(backbone, propose::sequential_head<float>{}, std::nullopt, dcfg);
  return demo(m, tok, o, prompt, drafter, dflash);
}

// Steps 2 .. 5 with either drafter: STS, profiling, decoding, the load sweep.
template <class Drafter>
int demo(llama2c::model& m,
         const llama2c::tokenizer& tok,
         const options& o,
         const std::vector<token_id>& prompt,
         Drafter& drafter,
         Drafter& dflash) {
  const index_t V = m.vocab_size();
  const propose::semi_ar_config dcfg = drafter.config();
  decode::decode_config base;
  base.max_new_tokens = o.steps;
  base.max_draft = o.gamma;
  base.seed = o.seed;
  const auto configure = [&](Drafter& which, float t, std::uint64_t seed) {
    propose::semi_ar_config dc = dcfg;
    dc.params.temperature = t;
    dc.seed = seed * 31 + 7;
    dc.sts_temperatures = which.config().sts_temperatures;
    which.set_config(dc);
  };
  const auto with_temperature = [&](float t, std::uint64_t seed) {
    decode::decode_config c = base;
    c.params.temperature = t;
    c.seed = seed;
    configure(drafter, t, seed);
    configure(dflash, t, seed);
    return c;
  };
  using rejection = specdec::verify::rejection_sampling;
  using greedy = specdec::verify::greedy;

  // 2. STS on calibration rounds (T = 1, full blocks), then reliability on held-out rounds.
  std::vector<logged_round> calib_rounds, held_out;
  for (std::uint64_t s = 0; s < 4; ++s) {
    run_result r;
    const decode::decode_config c = with_temperature(1.0f, 100 + s);
    if (const status st = run<rejection>(m, drafter, {1}, c, sched::threshold_length{0.0f}, r);
        !st.ok()) {
      std::fprintf(stderr, "dspark_generate: decoding failed: %s\n", st.message());
      return 1;
    }
    auto& dst = s < 2 ? calib_rounds : held_out;
    for (logged_round& lr : r.rounds)
      if (lr.proposed == o.gamma && static_cast<int>(lr.z.size()) == o.gamma)
        dst.push_back(std::move(lr));
  }
  std::vector<calib::sts_round> sr;
  for (const logged_round& lr : calib_rounds)
    sr.push_back(calib::sts_round{lr.z, lr.accepted, {}});
  calib::sts_result sts;
  if (const status st = calib::fit_sts(sr, calib::sts_config{}, sts); !st.ok()) {
    std::fprintf(stderr, "dspark_generate: STS failed: %s\n", st.message());
    return 1;
  }
  {
    propose::semi_ar_config dc = drafter.config();
    dc.sts_temperatures = sts.temperatures;
    dc.sts_temperatures.resize(static_cast<std::size_t>(o.gamma), 1.0);
    drafter.set_config(dc);
  }
  calib::reliability_accumulator raw(o.gamma), cal(o.gamma);
  std::vector<std::vector<double>> sweep_c;
  std::vector<int> sweep_n;
  for (const logged_round& lr : held_out) {
    (void)raw.add_round_logits(std::span<const double>(lr.z), lr.accepted, lr.proposed);
    (void)cal.add_round_logits(
        std::span<const double>(lr.z), lr.accepted, lr.proposed, drafter.config().sts_temperatures);
    std::vector<double> c(lr.z.size());
    (void)calib::calibrate(std::span<const double>(lr.z), drafter.config().sts_temperatures, c);
    sweep_c.push_back(std::move(c));
    sweep_n.push_back(lr.accepted);
  }
  std::printf("\nconfidence head: %zu calibration rounds, %zu held-out rounds (T = 1, full blocks "
              "of %d)\n",
              calib_rounds.size(),
              held_out.size(),
              o.gamma);
  std::printf("%-9s %8s %9s %9s %9s %9s %9s\n",
              "position",
              "STS T",
              "rounds",
              "ECE raw",
              "ECE STS",
              "AUROC",
              "accepted");
  for (index_t p = 0; p < o.gamma; ++p) {
    const calib::position_metrics a = raw.metrics(p), b = cal.metrics(p);
    std::printf("%-9lld %8.2f %9lld %9.4f %9.4f %9.3f %9.3f\n",
                static_cast<long long>(p + 1),
                drafter.config().sts_temperatures[static_cast<std::size_t>(p)],
                static_cast<long long>(a.count),
                a.ece,
                b.ece,
                b.auroc,
                a.target_mean);
  }

  // 3. The backend's step curve: seconds of one forward of B tokens, as steps per second.
  std::vector<index_t> batches;
  for (index_t b = 1; b <= std::min<index_t>(512, m.seq_len()); b = b < 8 ? b + 1 : b + b / 4)
    batches.push_back(b);
  std::vector<token_id> filler(static_cast<std::size_t>(batches.back()), 1);
  sched::sps_table table;
  std::vector<float> profile_logits(filler.size() * static_cast<std::size_t>(V));
  const auto forward = [&](index_t b) {
    m.reset();
    return m.score({0, {filler.data(), b}, 0}, {profile_logits.data(), b, V, V});
  };
  if (const status st = sched::profile_sps(forward, batches, 3, table); !st.ok()) {
    std::fprintf(stderr, "dspark_generate: profiling failed: %s\n", st.message());
    return 1;
  }
  std::printf("\nprofiled SPS(B) of this backend (forward steps per second at B tokens):");
  for (const index_t b : {1, 2, 4, 8, 16, 32, 64, 128, 256})
    if (b <= table.max_batch())
      std::printf(" B=%lld: %.0f", static_cast<long long>(b), table.at(b));
  std::printf("\n");

  // 4. Decoding: plain, full blocks, threshold cut, Algorithm 1 (one sequence), at T = 0 and 1.
  bool exact = true;
  // Draft cost on its own line: ms per drafted block (the proposer's time per step), the
  // target's ms per verification step, and the block's cost in plain target steps (issue 17:
  // the block and head should cost at most 0.4 of a target step to pay off).
  std::printf("\n%-6s %-22s %8s %10s %11s %9s %10s %9s %9s %9s %s\n",
              "T",
              "length rule",
              "tau",
              "drafts/rd",
              "verify rate",
              "tok/s",
              "speedup",
              "draft ms",
              "target ms",
              "draft/tgt",
              "identical to plain");
  // The cost-aware controller's curve: seconds per verification of k = 0 .. gamma drafts,
  // profiled over the contexts the decode will see.
  std::vector<double> verify_seconds;
  if (const status s = sched::profile_verify_costs(
          m, m.cache(), prompt, o.gamma, 9, verify_seconds, static_cast<index_t>(o.steps));
      !s.ok()) {
    std::fprintf(stderr, "dspark_generate: cost profile failed: %s\n", s.message());
    return 1;
  }
  for (const float t : {0.0f, 1.0f}) {
    decode::decode_result plain;
    const decode::decode_config c0 = with_temperature(t, o.seed);
    if (!run_plain(m, prompt, c0, plain).ok())
      return 1;
    const double plain_tps =
        static_cast<double>(plain.tokens.size()) / std::max(plain.stats.seconds_total, 1e-9);
    const auto per_step = [](double seconds, std::int64_t steps) {
      return steps > 0 ? 1e3 * seconds / static_cast<double>(steps) : 0.0;
    };
    const double plain_step_ms = per_step(plain.stats.seconds_verify, plain.stats.steps);
    std::printf("%-6.1f %-22s %8.3f %10.2f %11.3f %9.0f %10s %9s %9.3f %9s %s\n",
                static_cast<double>(t),
                "plain",
                1.0,
                0.0,
                1.0,
                plain_tps,
                "1.00",
                "-",
                plain_step_ms,
                "-",
                "-");
    const auto report = [&](const char* name, const run_result& r) {
      const double tps =
          static_cast<double>(r.out.tokens.size()) / std::max(r.out.stats.seconds_total, 1e-9);
      const bool same = r.out.tokens == plain.tokens;
      if (t == 0.0f)
        exact = exact && same;
      const double draft_ms = per_step(r.out.stats.seconds_draft, r.out.stats.steps);
      std::printf("%-6.1f %-22s %8.3f %10.2f %11.3f %9.0f %10.2f %9.3f %9.3f %9.2f %s\n",
                  static_cast<double>(t),
                  name,
                  r.metrics.tau_mean(),
                  r.metrics.draft_tokens_per_proposal(),
                  r.metrics.verify_rate(),
                  tps,
                  tps / plain_tps,
                  draft_ms,
                  per_step(r.out.stats.seconds_verify, r.out.stats.steps),
                  plain_step_ms > 0.0 ? draft_ms / plain_step_ms : 0.0,
                  t == 0.0f ? (same ? "yes" : "NO") : "-");
    };
    run_result r;
    const auto go = [&](auto length, const char* name, Drafter& which) {
      const decode::decode_config c = with_temperature(t, o.seed);
      const status st = t == 0.0f ? run<greedy>(m, which, prompt, c, length, r)
                                  : run<rejection>(m, which, prompt, c, length, r);
      if (!st.ok()) {
        std::fprintf(stderr, "dspark_generate: decoding failed: %s\n", st.message());
        std::exit(1);
      }
      report(name, r);
    };
    go(sched::threshold_length{0.0f}, "full block, no head", dflash);
    go(sched::threshold_length{0.0f}, "full block", drafter);
    // The full block's measured draft cost and acceptance, for the cost-aware row below.
    const double block_seconds =
        r.out.stats.steps > 0 ? r.out.stats.seconds_draft / static_cast<double>(r.out.stats.steps)
                              : 0.0;
    const double block_tau = r.metrics.tau_mean();
    char name[64];
    std::snprintf(name, sizeof name, "threshold %.2f", static_cast<double>(o.theta));
    go(sched::threshold_length{o.theta}, name, drafter);
    // Cost-aware: sched::adaptive_draft_length with the profiled verification curve and the
    // block's measured cost as a fixed per-draft cost. It drafts only where E(k) / (C(k) +
    // draft) beats 1 / C(0); probes are held to 0.5 % of plain decoding's time (explore_budget).
    // Where no length could pay even at perfect acceptance (drafting_can_pay() false), the
    // drafter is not attached at all: it would still ingest the target's features every step.
    sched::adaptive_config ac;
    ac.explore_budget = 0.005;
    sched::adaptive_draft_length ctl(ac);
    if (!ctl.set_costs({verify_seconds, block_seconds, 0.0}).ok()) {
      std::fprintf(stderr, "dspark_generate: bad cost curve\n");
      return 1;
    }
    if (ctl.drafting_can_pay()) {
      go(ctl, "cost-aware", drafter);
    } else {
      run_result rp;
      decode::decode_config c = with_temperature(t, o.seed);
      c.on_step = [&rp](const decode::step_record& s) {
        (void)rp.metrics.add(s.drafted, s.accepted, false);
      };
      if (!run_plain(m, prompt, c, rp.out).ok())
        return 1;
      report("cost-aware (plain)", rp);
    }
    go(sched::scheduled_length{table}, "scheduler (R = 1)", drafter);
    if (t == 0.0f && r.out.tokens.size() >= 1)
      std::printf("       story: %s\n", tok.decode(r.out.tokens, prompt.back()).c_str());
    {
      // Break-even: the full block pays only if tau C(0) > C(gamma) + draft.
      const double cost0 = verify_seconds.front();
      const double need = (verify_seconds.back() + block_seconds) / cost0;
      std::printf("       cost model: C(%d)/C(0) = %.2f (profiled), block = %.2f C(0): the full "
                  "block pays only if tau > %.2f; measured tau %.3f%s\n",
                  o.gamma,
                  verify_seconds.back() / cost0,
                  block_seconds / cost0,
                  need,
                  block_tau,
                  ctl.drafting_can_pay() ? "" : " (no length can pay: cost-aware decodes plain)");
    }
    if (t == 1.0f) {
      std::printf("       scheduler run: accept_rate@i");
      for (index_t i = 0; i < r.metrics.max_proposed(); ++i)
        std::printf(" %.2f", r.metrics.accept_rate_at(i));
      std::printf(", conditional acceptance");
      for (index_t k = 1; k <= r.metrics.max_proposed(); ++k) {
        const double a = r.metrics.conditional_acceptance(k);
        if (std::isnan(a))
          std::printf(" -"); // no draft reached position k
        else
          std::printf(" %.2f", a);
      }
      std::printf("\n");
    }
  }

  // 5. Load sweep over the profiled curve.
  if (sweep_c.empty()) {
    std::printf("\nno held-out rounds: no load sweep\n");
    return exact ? 0 : 2;
  }
  // The same sweep on an accelerator-like curve: a forward costs the same up to 128 tokens
  // (memory-bound), then grows linearly (compute-bound), scaled to this backend's B = 1 speed.
  std::vector<sched::sps_point> accel_points;
  for (index_t b = 1; b <= 1024; b *= 2)
    accel_points.push_back({b, table.at(1) / std::max(1.0, static_cast<double>(b) / 128.0)});
  const sched::sps_table accel(accel_points);
  // Throughput against concurrency per length rule, both curves (the --svg plot).
  std::vector<deepspec::svg_series> plot;
  for (int curve = 0; curve < 2; ++curve) {
    const sched::sps_table& tb = curve == 0 ? table : accel;
    const std::size_t first_series = plot.size();
    for (const char* rule : {"fixed gamma", "threshold", "Alg. 1", "async top-K"})
      plot.push_back(
          {std::string(rule) + (curve == 0 ? ", this CPU" : ", accelerator"), {}, {}, curve == 0});
    std::printf("\nsimulated load sweep on %s: R requests per verification step, rounds drawn from "
                "%zu held-out rounds; tokens/s of the target (drafting not counted)\n",
                curve == 0 ? "the profiled SPS(B) of this backend"
                           : "a synthetic accelerator-like SPS(B) (flat to B = 128, then 1/B)",
                sweep_c.size());
    std::printf("%5s %11s %15s %11s %11s %11s %11s  %9s %9s  %s\n",
                "R",
                "fixed g",
                "best fixed (k)",
                "threshold",
                "Alg.1",
                "async topK",
                "global*",
                "Alg1/g",
                "Alg1/best",
                "mean drafts/request Alg.1, async");
    for (const index_t R : {1, 2, 4, 8, 16, 32, 64, 128}) {
      if (R * (o.gamma + 1) > tb.max_batch())
        break;
      sweep_row row;
      if (const status st =
              sweep(sweep_c, sweep_n, o.gamma, o.theta, tb, R, o.sweep_steps, o.seed + 5, row);
          !st.ok()) {
        std::fprintf(stderr, "dspark_generate: sweep failed: %s\n", st.message());
        return 1;
      }
      const double ys[4] = {row.fixed_gamma, row.threshold, row.early_stop, row.async};
      for (std::size_t q = 0; q < 4; ++q) {
        plot[first_series + q].x.push_back(static_cast<double>(R));
        plot[first_series + q].y.push_back(ys[q] / row.fixed_gamma);
      }
      std::printf("%5lld %11.0f %11.0f (%d) %11.0f %11.0f %11.0f %11.0f  %9.3f %9.3f  %.2f, %.2f\n",
                  static_cast<long long>(R),
                  row.fixed_gamma,
                  row.best_fixed,
                  row.best_k,
                  row.threshold,
                  row.early_stop,
                  row.async,
                  row.global,
                  row.early_stop / row.fixed_gamma,
                  row.early_stop / row.best_fixed,
                  row.mean_len_early,
                  row.mean_len_async);
    }
  }
  std::printf("* global: the search without the early stop looks at drafts past the one it "
              "decides on; it is not lossless and is shown only as a bound\n");
  if (!o.svg.empty()) {
    deepspec::svg_axes ax;
    ax.title = "simulated throughput against concurrency, relative to fixed gamma";
    ax.xlabel = "requests per verification step R";
    ax.ylabel = "tokens/s / tokens/s of fixed gamma";
    ax.log_x = true;
    ax.x0 = 1;
    ax.x1 = 128;
    ax.y0 = 0;
    ax.y1 = 8;
    if (deepspec::write_svg_chart(o.svg, ax, plot))
      std::printf("wrote %s\n", o.svg.c_str());
  }
  return exact ? 0 : 2;
}
