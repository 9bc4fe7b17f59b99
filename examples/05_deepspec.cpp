// SPDX-License-Identifier: Apache-2.0
// DeepSpec in miniature on stories260K: the target writes its own training data, trains EAGLE-3
// (with and without training-time test) and MTP-1 drafters, and evaluates them by speculative
// decoding. One program, four sub-commands (the build names it `deepspec`):
//
//   deepspec data  [--dir D] [--train N] [--heldout M] [--max-new K] [--seed S]
//                  [--features 1,3,4,5] [--top-logits K] [--f32]
//   deepspec train --drafter eagle3|mtp1|dflash|dspark [--ttt K] [--dir D] [--out FILE]
//                  [--epochs E] [--batch B] [--lr X] [--steps N] [--threads T] [--seed S]
//                  block drafters: [--head markov|gated|rnn|none] [--rank R] [--confidence 0|1]
//                  [--block G] [--draft-layers N] [--anchors A]
//   deepspec eval  [--dir D] [--drafters a.safetensors,b.safetensors] [--temps 0,0.7,1]
//                  [--gamma G] [--block-gammas 5,7] [--eval-max-new K] [--prompts N]
//                  [--json FILE]
//   deepspec all   [--dir D] [--train N] [--epochs E] [--dspark markov:32,rnn:32,...]
//                  data, every training (EAGLE-3 with and without TTT, MTP-1, DFlash, the
//                  DSpark variants), then eval: the headline table
//
// With no arguments it runs a small end-to-end pass (a few sequences, a few steps) as a smoke
// test. The README section "DeepSpec in miniature" shows the full run and its table.
#include <specdec/calib/reliability.hpp>
#include <specdec/calib/sts.hpp>
#include <specdec/decode/evaluate.hpp>
#include <specdec/propose/early_exit.hpp>
#include <specdec/propose/semi_ar.hpp>
#include <specdec/sched/cost_profile.hpp>

#include "deepspec/block_checkpoint.hpp"
#include "deepspec/block_train.hpp"
#include "deepspec/checkpoint.hpp"
#include "deepspec/data.hpp"
#include "deepspec/eval.hpp"
#include "deepspec/svg.hpp"
#include "deepspec/train.hpp"
#include "llama2c/dspark_fit.hpp"
#include "llama2c/paths.hpp"
#include "llama2c/tokenizer.hpp"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace {

using deepspec::arch;

struct args {
  std::map<std::string, std::string> kv;
  bool has(const std::string& k) const {
    return kv.count(k) != 0;
  }
  std::string str(const std::string& k, const std::string& def) const {
    const auto it = kv.find(k);
    return it == kv.end() ? def : it->second;
  }
  long long num(const std::string& k, long long def) const {
    const auto it = kv.find(k);
    return it == kv.end() ? def : std::atoll(it->second.c_str());
  }
  double real(const std::string& k, double def) const {
    const auto it = kv.find(k);
    return it == kv.end() ? def : std::atof(it->second.c_str());
  }
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at <= s.size()) {
    const std::size_t c = std::min(s.find(',', at), s.size());
    if (c > at)
      out.push_back(s.substr(at, c - at));
    at = c + 1;
  }
  return out;
}

std::vector<std::int32_t> split_layers(const std::string& s) {
  std::vector<std::int32_t> out;
  for (const auto& x : split(s))
    out.push_back(static_cast<std::int32_t>(std::atoi(x.c_str())));
  return out;
}

int fail(const std::string& what, specdec::status s, const std::string& detail = {}) {
  std::fprintf(stderr,
               "deepspec: %s: %s%s%s\n",
               what.c_str(),
               specdec::message(s.code),
               detail.empty() ? "" : ": ",
               detail.c_str());
  return 1;
}

struct env {
  std::string model_path, tok_path;
  llama2c::model target;
  llama2c::tokenizer tok;
  deepspec::mat<float> E;
};

int load_env(env& e) {
  const std::string dir = llama2c::default_model_dir();
  e.model_path = dir + "/stories260K.bin";
  e.tok_path = dir + "/tok512.bin";
  std::string detail;
  if (const auto s = llama2c::model::load(e.model_path, e.target, &detail); !s.ok())
    return fail("loading the target", s, detail);
  if (const auto s = llama2c::tokenizer::load(e.tok_path, e.target.vocab_size(), e.tok, &detail);
      !s.ok())
    return fail("loading the tokenizer", s, detail);
  if (const auto s = deepspec::load_embedding(e.model_path, e.target, e.E); !s.ok())
    return fail("reading the target's embedding", s);
  return 0;
}

int cmd_data(env& e, const args& a) {
  const std::string dir = a.str("dir", "deepspec_out");
  std::filesystem::create_directories(dir);
  for (int split = 0; split < 2; ++split) {
    deepspec::data_options o;
    o.heldout = split == 1;
    o.sequences = a.num(o.heldout ? "heldout" : "train", o.heldout ? 128 : 2048);
    o.max_new = a.num("max-new", 192);
    o.seed = static_cast<std::uint64_t>(a.num("seed", 42));
    for (const auto& l : split_layers(a.str("features", "")))
      o.feature_layers.push_back(l);
    o.top_logits = static_cast<int>(a.num("top-logits", 0));
    o.bf16_features = !a.has("f32");
    deepspec::dataset d;
    if (const auto s = deepspec::generate_dataset(e.target, e.tok, o, d); !s.ok())
      return fail("generating data", s);
    const std::string path = dir + (o.heldout ? "/heldout.safetensors" : "/train.safetensors");
    std::string detail;
    if (const auto s = deepspec::save_dataset(d, o, path, &detail); !s.ok())
      return fail("writing " + path, s, detail);
    std::printf("[data] wrote %s: %lld sequences, %zu tokens (%lld supervised)\n",
                path.c_str(),
                static_cast<long long>(d.size()),
                d.tokens.size(),
                static_cast<long long>(d.supervised_tokens()));
  }
  return 0;
}

int load_split(env& e, const std::string& dir, bool heldout, deepspec::dataset& d) {
  const std::string path = dir + (heldout ? "/heldout.safetensors" : "/train.safetensors");
  std::string detail;
  if (const auto s = deepspec::load_dataset(
          path, e.target.vocab_size(), e.target.hidden_size(), e.target.seq_len(), d, &detail);
      !s.ok())
    return fail("reading " + path + " (run 'deepspec data' first)", s, detail);
  return 0;
}

// The drafter shape of the miniature mapping: the target's width, heads and FFN.
deepspec::drafter_config shape_for(const env& e, arch kind) {
  deepspec::drafter_config c;
  c.kind = kind;
  c.dim = static_cast<int>(e.target.hidden_size());
  c.heads = e.target.cfg().n_heads;
  c.kv_heads = e.target.cfg().n_kv_heads;
  c.ffn = e.target.cfg().hidden_dim;
  c.vocab = static_cast<int>(e.target.vocab_size());
  const int L = e.target.num_layers();
  // EAGLE-3: a low, a middle and a high layer output, never the last (DeepSpec's rule; stories260K:
  // the outputs of layers 0, 2, 3 = residual streams 1, 3, 4). MTP-1: the last layer's output.
  if (kind == arch::eagle3)
    c.layers = {1, std::max(1, L / 2 + 1), std::max(1, L - 1)};
  else
    c.layers = {L};
  return c;
}

int train_one(env& e,
              const args& a,
              arch kind,
              int ttt,
              const std::string& out,
              deepspec::train_result& res) {
  const std::string dir = a.str("dir", "deepspec_out");
  deepspec::dataset train;
  deepspec::dataset heldout;
  if (int r = load_split(e, dir, false, train); r != 0)
    return r;
  if (int r = load_split(e, dir, true, heldout); r != 0)
    return r;
  deepspec::train_options o;
  o.kind = kind;
  o.ttt = ttt;
  o.epochs = static_cast<int>(a.num("epochs", 3));
  o.batch = static_cast<int>(a.num("batch", 16));
  o.lr = a.real("lr", 3e-3);
  o.max_steps = a.num("steps", -1);
  o.threads = static_cast<int>(a.num("threads", 2));
  o.seed = static_cast<std::uint64_t>(a.num("seed", 0));
  o.log_every = static_cast<int>(a.num("log-every", 25));
  deepspec::drafter_weights<float> W;
  W.init(shape_for(e, kind), o.seed);
  std::fprintf(stderr,
               "[train] %s (ttt %d): %zu weights, %lld train / %lld held-out sequences\n",
               deepspec::arch_name(kind),
               ttt,
               W.count(),
               static_cast<long long>(train.size()),
               static_cast<long long>(heldout.size()));
  if (const auto s = deepspec::train_drafter(W, e.E, e.model_path, train, heldout, o, res); !s.ok())
    return fail("training", s);
  std::string detail;
  std::map<std::string, std::string> md{{"ttt", std::to_string(ttt)},
                                        {"steps", std::to_string(res.steps)},
                                        {"seed", std::to_string(o.seed)},
                                        {"train_seconds", std::to_string(res.seconds)}};
  if (const auto s = deepspec::save_drafter(W, e.E, out, md, &detail); !s.ok())
    return fail("writing " + out, s, detail);
  // The loss curve beside the checkpoint (<out without .safetensors>.curve.json).
  const std::string curve = (out.size() > 12 && out.substr(out.size() - 12) == ".safetensors"
                                 ? out.substr(0, out.size() - 12)
                                 : out)
                            + ".curve.json";
  if (std::FILE* f = std::fopen(curve.c_str(), "w"); f != nullptr) {
    std::fprintf(
        f,
        "{\"drafter\": \"%s\", \"ttt\": %d, \"steps\": %lld, \"seconds\": %.1f, \"points\": [\n",
        deepspec::arch_name(kind),
        ttt,
        static_cast<long long>(res.steps),
        res.seconds);
    for (std::size_t i = 0; i < res.curve.size(); ++i) {
      const auto& c = res.curve[i];
      std::fprintf(f,
                   "  {\"step\": %lld, \"train_loss\": %.5f, \"heldout_loss\": %.5f, "
                   "\"heldout_accept1\": %.4f, \"heldout_tau_tf\": %.4f, \"seconds\": %.1f}%s\n",
                   static_cast<long long>(c.step),
                   c.train_loss,
                   c.heldout_loss,
                   c.heldout_accept,
                   c.heldout_tau,
                   c.seconds,
                   i + 1 < res.curve.size() ? "," : "");
    }
    std::fprintf(f, "]}\n");
    std::fclose(f);
  }
  std::printf("[train] wrote %s: %lld steps, %lld supervised tokens, %.1f s\n",
              out.c_str(),
              static_cast<long long>(res.steps),
              static_cast<long long>(res.tokens),
              res.seconds);
  return 0;
}

// The drafter shape of a block drafter: the target's width, heads and FFN, EAGLE-3's feature
// layers (paper 4.1: every drafter reads the same target layers).
deepspec::block_config block_shape_for(const env& e, const args& a, bool dspark) {
  deepspec::block_config c;
  const deepspec::drafter_config d = shape_for(e, arch::eagle3);
  c.dim = d.dim;
  c.heads = d.heads;
  c.kv_heads = d.kv_heads;
  c.ffn = d.ffn;
  c.vocab = d.vocab;
  c.layers = d.layers;
  c.n_layers = static_cast<int>(a.num("draft-layers", 2));
  c.block = static_cast<int>(a.num("block", 7));
  c.mask_token = 0; // <unk>: never a label
  if (dspark) {
    const std::string h = a.str("head", "markov");
    c.head = h == "gated"  ? deepspec::block_head::gated
             : h == "rnn"  ? deepspec::block_head::rnn
             : h == "none" ? deepspec::block_head::none
                           : deepspec::block_head::markov;
    c.rank = c.head == deepspec::block_head::none ? 0 : static_cast<int>(a.num("rank", 32));
    c.confidence = a.num("confidence", 1) != 0;
  }
  return c;
}

void write_curve(const std::string& out,
                 const std::string& drafter,
                 const deepspec::train_result& res) {
  const std::string curve = (out.size() > 12 && out.substr(out.size() - 12) == ".safetensors"
                                 ? out.substr(0, out.size() - 12)
                                 : out)
                            + ".curve.json";
  std::FILE* f = std::fopen(curve.c_str(), "w");
  if (f == nullptr)
    return;
  std::fprintf(f,
               "{\"drafter\": \"%s\", \"steps\": %lld, \"seconds\": %.1f, \"points\": [\n",
               drafter.c_str(),
               static_cast<long long>(res.steps),
               res.seconds);
  for (std::size_t i = 0; i < res.curve.size(); ++i) {
    const auto& c = res.curve[i];
    std::fprintf(f,
                 "  {\"step\": %lld, \"train_loss\": %.5f, \"heldout_loss\": %.5f, "
                 "\"heldout_accept1\": %.4f, \"heldout_tau_tf\": %.4f, \"seconds\": %.1f}%s\n",
                 static_cast<long long>(c.step),
                 c.train_loss,
                 c.heldout_loss,
                 c.heldout_accept,
                 c.heldout_tau,
                 c.seconds,
                 i + 1 < res.curve.size() ? "," : "");
  }
  std::fprintf(f, "]}\n");
  std::fclose(f);
}

int train_block_one(env& e,
                    const args& a,
                    const deepspec::block_config& c,
                    const std::string& out,
                    deepspec::train_result& res) {
  const std::string dir = a.str("dir", "deepspec_out");
  deepspec::dataset train;
  deepspec::dataset heldout;
  if (int r = load_split(e, dir, false, train); r != 0)
    return r;
  if (int r = load_split(e, dir, true, heldout); r != 0)
    return r;
  if (!c.validate().ok()) {
    std::fprintf(stderr, "deepspec train: invalid block drafter shape\n");
    return 2;
  }
  deepspec::block_train_options o;
  o.epochs = static_cast<int>(a.num("epochs", 3));
  o.batch = static_cast<int>(a.num("batch", 16));
  o.lr = a.real("lr", 3e-3);
  o.max_steps = a.num("steps", -1);
  o.threads = static_cast<int>(a.num("threads", 2));
  o.seed = static_cast<std::uint64_t>(a.num("seed", 0));
  o.log_every = static_cast<int>(a.num("log-every", 25));
  o.anchors = static_cast<int>(a.num("anchors", 64));
  deepspec::block_weights<float> W;
  W.init(c, o.seed);
  const std::string name = std::filesystem::path(out).stem().string();
  std::fprintf(stderr,
               "[train] %s (%d layers, block %d, head %s r=%d, confidence %d): %zu weights, "
               "%lld train / %lld held-out sequences\n",
               name.c_str(),
               c.n_layers,
               c.block,
               deepspec::block_head_name(c.head),
               c.r(),
               c.confidence ? 1 : 0,
               W.count(),
               static_cast<long long>(train.size()),
               static_cast<long long>(heldout.size()));
  if (const auto s = deepspec::train_block_drafter(W, e.E, e.model_path, train, heldout, o, res);
      !s.ok())
    return fail("training", s);
  std::string detail;
  const std::map<std::string, std::string> md{{"steps", std::to_string(res.steps)},
                                              {"seed", std::to_string(o.seed)},
                                              {"anchors", std::to_string(o.anchors)},
                                              {"train_seconds", std::to_string(res.seconds)}};
  if (const auto s = deepspec::save_block_drafter(W, e.E, out, md, &detail); !s.ok())
    return fail("writing " + out, s, detail);
  write_curve(out, name, res);
  std::printf("[train] wrote %s: %lld steps, %lld supervised blocks, %.1f s\n",
              out.c_str(),
              static_cast<long long>(res.steps),
              static_cast<long long>(res.tokens),
              res.seconds);
  return 0;
}

int cmd_train(env& e, const args& a) {
  const std::string d = a.str("drafter", "eagle3");
  if (d == "dflash" || d == "dspark") {
    const deepspec::block_config c = block_shape_for(e, a, d == "dspark");
    const std::string stem =
        d == "dflash"
            ? std::string("dflash")
            : "dspark_" + std::string(deepspec::block_head_name(c.head)) + std::to_string(c.r());
    const std::string out =
        a.str("out", a.str("dir", "deepspec_out") + "/" + stem + ".safetensors");
    deepspec::train_result res;
    return train_block_one(e, a, c, out, res);
  }
  if (d != "eagle3" && d != "mtp1") {
    std::fprintf(stderr, "deepspec train: --drafter must be eagle3, mtp1, dflash or dspark\n");
    return 2;
  }
  const arch kind = d == "eagle3" ? arch::eagle3 : arch::mtp1;
  const int ttt = static_cast<int>(a.num("ttt", kind == arch::eagle3 ? 7 : 1));
  const std::string out = a.str("out", a.str("dir", "deepspec_out") + "/" + d + ".safetensors");
  deepspec::train_result res;
  return train_one(e, a, kind, ttt, out, res);
}

// One confidence drafter's reliability on the evaluation sets' T = 1 rounds, raw and after STS.
struct conf_row {
  std::string drafter;
  specdec::calib::reliability_accumulator raw, sts;
  std::vector<double> temperatures;
  std::int64_t calibration_rounds = 0;
};

bool is_block_file(const std::string& path) {
  specdec::io::safetensors_file f;
  if (!specdec::io::safetensors_file::load(path, f, nullptr).ok())
    return false;
  const auto it = f.metadata().find("format");
  return it != f.metadata().end() && it->second == "specdec-block-drafter";
}

// The drafting cost of a drafter on a memory-bound accelerator, in target steps: a forward costs
// the bytes of the weights it reads, so a call of a drafter with w_d weights costs w_d / w_t of a
// target step (w_t: the target's weights), once per round (block drafters) or per draft
// (autoregressive ones).
struct draft_cost {
  double per_round = 0;
  double per_draft = 0;
};

struct eval_row {
  std::string drafter, set;
  float T;
  deepspec::acceptance acc;
  bool greedy_same = true;
  draft_cost cost{};
};

int cmd_eval(env& e, const args& a) {
  const std::string dir = a.str("dir", "deepspec_out");
  deepspec::dataset heldout;
  if (int r = load_split(e, dir, true, heldout); r != 0)
    return r;
  // Default: every drafter file in the directory (the data splits excepted), by name.
  std::vector<std::string> files;
  if (a.has("drafters")) {
    files = split(a.str("drafters", ""));
  } else {
    for (const auto& de : std::filesystem::directory_iterator(dir)) {
      const std::string n = de.path().filename().string();
      if (de.path().extension() == ".safetensors" && n != "train.safetensors"
          && n != "heldout.safetensors")
        files.push_back(de.path().string());
    }
    std::sort(files.begin(), files.end());
  }
  std::vector<float> temps;
  for (const auto& t : split(a.str("temps", "0,0.7,1")))
    temps.push_back(static_cast<float>(std::atof(t.c_str())));
  deepspec::eval_options eo;
  eo.gamma = static_cast<int>(a.num("gamma", 5));
  eo.max_new = a.num("eval-max-new", 128);
  const auto sets = deepspec::eval_sets(heldout, e.tok, static_cast<int>(a.num("prompts", 12)));
  // Plain greedy outputs, to check that greedy speculative decoding changes nothing.
  std::vector<std::vector<std::vector<specdec::token_id>>> plain(sets.size());
  {
    specdec::propose::no_drafter none;
    for (std::size_t s = 0; s < sets.size(); ++s) {
      deepspec::acceptance acc;
      if (const auto st = deepspec::run_set(e.target, none, sets[s], 0.0f, eo, acc, &plain[s]);
          !st.ok())
        return fail("plain decoding", st);
    }
  }
  // Plain decoding's speed per set (T = 0), the baseline of the measured speed-ups.
  std::vector<double> plain_tps(sets.size(), 0.0);
  for (std::size_t s = 0; s < sets.size(); ++s) {
    specdec::propose::no_drafter none;
    deepspec::acceptance acc;
    if (const auto st = deepspec::run_set(e.target, none, sets[s], 0.0f, eo, acc); !st.ok())
      return fail("plain decoding", st);
    plain_tps[s] = acc.ev.tokens_per_second();
  }
  // This backend's measured c(T): seconds of scoring t + 1 tokens at once, t = 0 .. 7.
  std::vector<double> cpu_verify;
  if (const auto st = specdec::sched::profile_verify_costs(
          e.target,
          e.target.cache(),
          std::span<const specdec::token_id>(sets[0].prompts[0]),
          7,
          31,
          cpu_verify);
      !st.ok())
    return fail("profiling c(T)", st);
  const double target_weights = static_cast<double>(std::filesystem::file_size(e.model_path)) / 4.0;
  std::vector<eval_row> rows;
  std::vector<conf_row> confs;
  draft_cost next_cost{};
  auto evaluate_with = [&](const std::string& name,
                           auto& proposer,
                           const deepspec::eval_options& o,
                           const std::function<void(int, int)>& at_t1) -> int {
    for (std::size_t s = 0; s < sets.size(); ++s)
      for (float T : temps) {
        eval_row row{name, sets[s].name, T, {}, true, next_cost};
        std::vector<std::vector<specdec::token_id>> outs;
        if (const auto st = deepspec::run_set(
                e.target, proposer, sets[s], T, o, row.acc, &outs, T == 1.0f ? at_t1 : nullptr);
            !st.ok())
          return fail("evaluating " + name, st);
        if (T == 0.0f)
          row.greedy_same = outs == plain[s];
        rows.push_back(std::move(row));
      }
    return 0;
  };
  auto evaluate = [&](const std::string& name, auto& proposer) -> int {
    return evaluate_with(name, proposer, eo, nullptr);
  };
  {
    specdec::propose::ngram_config nc;
    nc.max_draft = eo.gamma;
    specdec::propose::ngram_proposer ng(nc);
    next_cost = {};
    if (int r = evaluate("ngram", ng); r != 0)
      return r;
  }
  if (a.num("baselines", 1) != 0) {
    // Self-speculation: the target's first L - 1 layers (4 of 5) and its classifier.
    const int ee_layers = std::max(1, e.target.num_layers() - 1);
    specdec::propose::early_exit_proposer<llama2c::model> ee(e.target,
                                                             {ee_layers, eo.gamma, {}, 1});
    next_cost = {0.0, static_cast<double>(ee_layers) / e.target.num_layers()};
    if (int r = evaluate("early_exit_" + std::to_string(ee_layers) + "of"
                             + std::to_string(e.target.num_layers()),
                         ee);
        r != 0)
      return r;
    // Example 04's closed-form DSpark fit (block maps over the first 3 layers, Markov and
    // confidence heads fitted on 6 self-sampled stories): the baseline of the trained drafters.
    llama2c::dspark::fit_options fo;
    fo.gamma = eo.gamma;
    fo.layers = 3;
    std::vector<std::vector<specdec::token_id>> corpus;
    llama2c::dspark::fitted fit;
    if (const auto st = llama2c::dspark::make_corpus(e.target, fo, corpus); !st.ok())
      return fail("the closed-form fit's corpus", st);
    if (const auto st = llama2c::dspark::fit(e.target, corpus, fo, fit); !st.ok())
      return fail("the closed-form fit", st);
    specdec::propose::sequential_head<float> head;
    head.kind = specdec::propose::head_kind::markov;
    head.vocab = e.target.vocab_size();
    head.rank = fit.rank;
    head.hidden = e.target.hidden_size();
    head.w1 = fit.w1;
    head.w2 = fit.w2;
    llama2c::dspark::block_backbone fbb(e.target, fo.layers, fo.gamma, fit.maps);
    specdec::propose::semi_ar_config sc;
    sc.gamma = eo.gamma;
    specdec::propose::semi_ar_drafter<llama2c::dspark::block_backbone> fd(
        fbb,
        head,
        specdec::propose::confidence_head<float>{
            fit.conf_w, fit.conf_b, e.target.hidden_size(), fit.rank, true},
        sc);
    next_cost = {static_cast<double>(fo.layers) / e.target.num_layers(), 0.0};
    if (int r = evaluate("dspark_fit", fd); r != 0)
      return r;
  }
  // Calibration prompts for STS: held-out sequences from the middle of the split, disjoint from
  // the "stories" (first) and "copy" (last) evaluation prompts.
  deepspec::prompt_set calib_set;
  calib_set.name = "calibration";
  for (std::int64_t s = heldout.size() / 4;
       s < heldout.size()
       && static_cast<int>(calib_set.prompts.size()) < a.num("calib-prompts", 24);
       ++s) {
    const auto seq = heldout.sequence(s);
    if (seq.size() >= 24)
      calib_set.prompts.emplace_back(seq.begin(), seq.begin() + 16);
  }
  const std::vector<int> block_gammas = [&] {
    std::vector<int> g;
    for (const auto& x : split(a.str("block-gammas", std::to_string(eo.gamma) + ",7")))
      g.push_back(std::atoi(x.c_str()));
    return g;
  }();
  for (const auto& f : files) {
    if (is_block_file(f)) {
      deepspec::block_weights<float> W;
      std::string detail;
      if (const auto s = deepspec::load_block_drafter(f, W, &detail); !s.ok())
        return fail("reading " + f, s, detail);
      deepspec::block_backbone bb(W, e.E, e.target.seq_len());
      next_cost = {static_cast<double>(W.count()) / target_weights, 0.0};
      const std::string stem = std::filesystem::path(f).stem().string();
      for (int g : block_gammas) {
        if (g < 1 || g > W.cfg.block)
          continue;
        specdec::propose::semi_ar_config sc;
        sc.gamma = g;
        specdec::propose::semi_ar_drafter<deepspec::block_backbone> dr(
            bb, deepspec::to_sequential_head(W), deepspec::to_confidence_head(W), sc);
        deepspec::eval_options o = eo;
        o.gamma = g;
        const std::string name = g == eo.gamma ? stem : stem + "@g" + std::to_string(g);
        if (!W.cfg.confidence) {
          if (int r = evaluate_with(name, dr, o, nullptr); r != 0)
            return r;
          continue;
        }
        // Confidence: STS fitted on calibration rounds at T = 1 (theta = 0), then ECE / AUROC /
        // Brier of prod sigmoid(z / T_k) per position on the evaluation sets' T = 1 rounds.
        std::vector<std::vector<double>> zs;
        std::vector<int> ns;
        auto collect = [&](int P, int n) {
          const auto z = dr.confidence_logits();
          zs.emplace_back(z.begin(), z.begin() + std::min<std::ptrdiff_t>(P, std::ssize(z)));
          ns.push_back(n);
        };
        deepspec::acceptance cal_acc;
        if (const auto st =
                deepspec::run_set(e.target, dr, calib_set, 1.0f, o, cal_acc, nullptr, collect);
            !st.ok())
          return fail("calibration rounds of " + name, st);
        std::vector<specdec::calib::sts_round> cr;
        for (std::size_t i = 0; i < zs.size(); ++i)
          cr.push_back({zs[i], ns[i], {}});
        specdec::calib::sts_config stc;
        stc.positions = g;
        specdec::calib::sts_result sts;
        if (const auto st = specdec::calib::fit_sts(cr, stc, sts); !st.ok())
          return fail("fitting STS for " + name, st);
        zs.clear();
        ns.clear();
        if (int r = evaluate_with(name, dr, o, collect); r != 0)
          return r;
        conf_row c{name,
                   specdec::calib::reliability_accumulator(g),
                   specdec::calib::reliability_accumulator(g),
                   sts.temperatures,
                   static_cast<std::int64_t>(cr.size())};
        for (std::size_t i = 0; i < zs.size(); ++i) {
          const auto len = static_cast<specdec::index_t>(zs[i].size());
          if (!c.raw.add_round_logits(std::span<const double>(zs[i]), ns[i], len, {}).ok()
              || !c.sts
                      .add_round_logits(
                          std::span<const double>(zs[i]), ns[i], len, sts.temperatures)
                      .ok())
            return fail("scoring confidences of " + name,
                        specdec::status{specdec::errc::invalid_value});
        }
        confs.push_back(std::move(c));
      }
      continue;
    }
    deepspec::drafter_weights<float> W;
    std::string detail;
    if (const auto s = deepspec::load_drafter(f, W, &detail); !s.ok())
      return fail("reading " + f + " (run 'deepspec train' first)", s, detail);
    deepspec::drafter_net net(W, e.E, e.target.seq_len());
    next_cost = {0.0, static_cast<double>(W.count()) / target_weights};
    specdec::propose::feature_drafter_config fc;
    fc.max_draft = eo.gamma;
    specdec::propose::feature_chain_proposer<deepspec::drafter_net> prop(net, fc);
    std::string name = std::filesystem::path(f).stem().string();
    if (int r = evaluate(name, prop); r != 0)
      return r;
  }
  // Markdown: tau per drafter x set x temperature, then accept_rate@i and conditional@k.
  std::printf("\n| drafter | set | T | tau | verify rate | accept_rate@0..%d | conditional@1..%d | "
              "greedy = plain |\n",
              eo.gamma - 1,
              eo.gamma);
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows) {
    std::string ar, cd;
    for (int i = 0; i < r.acc.gamma; ++i) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%s%.2f", i ? " " : "", r.acc.accept_rate(i));
      ar += buf;
      std::snprintf(buf, sizeof buf, "%s%.2f", i ? " " : "", r.acc.conditional(i + 1));
      cd += buf;
    }
    std::printf("| %s | %s | %.1f | %.3f | %.3f | %s | %s | %s |\n",
                r.drafter.c_str(),
                r.set.c_str(),
                static_cast<double>(r.T),
                r.acc.tau(),
                r.acc.verify_rate(),
                ar.c_str(),
                cd.c_str(),
                r.T == 0.0f ? (r.greedy_same ? "yes" : "NO") : "-");
  }
  // The headline form: tau per drafter (rows) x set and temperature (columns).
  {
    std::vector<std::string> names;
    for (const auto& r : rows)
      if (std::find(names.begin(), names.end(), r.drafter) == names.end())
        names.push_back(r.drafter);
    std::printf("\n| tau | ");
    for (const auto& st : sets)
      for (float T : temps)
        std::printf("%s T=%.1f | ", st.name.c_str(), static_cast<double>(T));
    std::printf("\n|---|");
    for (std::size_t i = 0; i < sets.size() * temps.size(); ++i)
      std::printf("---|");
    std::printf("\n");
    for (const auto& n : names) {
      std::printf("| %s | ", n.c_str());
      for (const auto& st : sets)
        for (float T : temps)
          for (const auto& r : rows)
            if (r.drafter == n && r.set == st.name && r.T == T)
              std::printf("%.2f | ", r.acc.tau());
      std::printf("\n");
    }
  }
  // Speed, pooled over the sets at T = 0 and T = 1: measured tokens/s against plain decoding on
  // this CPU, and the speed-up the same rounds project on (a) this backend's measured c(T) with
  // the drafting time measured, (b) a memory-bound accelerator (scoring up to 8 tokens costs one
  // step; a drafter call costs its weights over the target's, see draft_cost).
  std::printf("\nspeed: measured on this CPU (plain decoding %.0f tok/s) and projected "
              "(decode::projected_speedup); c(T) of this backend, T = 1..8, in units of c(1):",
              plain_tps[0]);
  for (double c : cpu_verify)
    std::printf(" %.2f", c / cpu_verify[0]);
  std::printf("\n| drafter | T | tok/s | measured speed-up | projected, this CPU | projected, "
              "memory-bound accelerator |\n|---|---|---|---|---|---|\n");
  struct speed {
    std::string name;
    float T;
    double tps, measured, cpu, accel;
  };
  std::vector<speed> speeds;
  for (const float T : {0.0f, 1.0f}) {
    std::vector<std::string> names;
    for (const auto& r : rows)
      if (r.T == T && std::find(names.begin(), names.end(), r.drafter) == names.end())
        names.push_back(r.drafter);
    for (const auto& n : names) {
      specdec::decode::evaluation pooled;
      double plain_seconds = 0; // plain decoding's time for the same tokens
      draft_cost dc{};
      for (std::size_t si = 0; si < sets.size(); ++si)
        for (const auto& r : rows)
          if (r.drafter == n && r.T == T && r.set == sets[si].name) {
            pooled.rounds += r.acc.ev.rounds;
            if (pooled.proposals.size() < r.acc.ev.proposals.size())
              pooled.proposals.resize(r.acc.ev.proposals.size(), 0);
            for (std::size_t k = 0; k < r.acc.ev.proposals.size(); ++k)
              pooled.proposals[k] += r.acc.ev.proposals[k];
            pooled.tokens += r.acc.ev.tokens;
            pooled.seconds += r.acc.ev.seconds;
            pooled.seconds_draft += r.acc.ev.seconds_draft;
            plain_seconds += static_cast<double>(r.acc.ev.tokens) / plain_tps[si];
            dc = r.cost;
          }
      const std::int64_t drafting_rounds =
          pooled.rounds.rounds() - (pooled.proposals.empty() ? 0 : pooled.proposals[0]);
      specdec::sched::step_costs cpu;
      cpu.verify = cpu_verify;
      cpu.draft_fixed =
          drafting_rounds > 0 ? pooled.seconds_draft / static_cast<double>(drafting_rounds) : 0.0;
      specdec::sched::step_costs accel;
      accel.verify.assign(8, 1.0);
      accel.draft_fixed = dc.per_round;
      accel.draft_per_token = dc.per_draft;
      const speed sp{n,
                     T,
                     pooled.tokens_per_second(),
                     plain_seconds / pooled.seconds,
                     specdec::decode::projected_speedup(pooled, cpu),
                     specdec::decode::projected_speedup(pooled, accel)};
      std::printf("| %s | %.1f | %.0f | %.2f | %.2f | %.2f |\n",
                  n.c_str(),
                  static_cast<double>(T),
                  sp.tps,
                  sp.measured,
                  sp.cpu,
                  sp.accel);
      speeds.push_back(sp);
    }
  }
  // Confidence heads: per position, ECE / AUROC / Brier of prod sigmoid(z / T), raw -> STS.
  for (const auto& c : confs) {
    std::printf(
        "\n%s: confidence on the evaluation sets' T = 1 rounds (STS fitted on %lld "
        "calibration rounds)\n| position | pairs | T_k | ECE raw -> STS | AUROC raw -> STS | "
        "Brier raw -> STS | predicted (STS) / realised |\n|---|---|---|---|---|---|---|\n",
        c.drafter.c_str(),
        static_cast<long long>(c.calibration_rounds));
    for (specdec::index_t k = 0; k < c.raw.positions(); ++k) {
      const auto m0 = c.raw.metrics(k);
      const auto m1 = c.sts.metrics(k);
      std::printf(
          "| %lld | %lld | %.2f | %.3f -> %.3f | %.3f -> %.3f | %.3f -> %.3f | %.3f / %.3f |\n",
          static_cast<long long>(k + 1),
          static_cast<long long>(m0.count),
          k < static_cast<specdec::index_t>(c.temperatures.size())
              ? c.temperatures[static_cast<std::size_t>(k)]
              : 1.0,
          m0.ece,
          m1.ece,
          m0.auroc,
          m1.auroc,
          m0.brier,
          m1.brier,
          m1.pred_mean,
          m1.target_mean);
    }
  }
  // Plots: conditional acceptance by position (T = 1, pooled over the sets) per drafter, and a
  // reliability diagram per confidence drafter (positions 1-3, raw and after STS).
  {
    std::vector<deepspec::svg_series> ser;
    std::vector<std::string> names;
    int kmax = 1;
    for (const auto& r : rows)
      if (r.T == 1.0f && r.drafter.find("@g") == std::string::npos
          && std::find(names.begin(), names.end(), r.drafter) == names.end())
        names.push_back(r.drafter);
    for (const auto& n : names) {
      deepspec::svg_series sr;
      sr.name = n;
      std::vector<std::int64_t> surv, reach;
      for (const auto& r : rows)
        if (r.drafter == n && r.T == 1.0f) {
          surv.resize(std::max(surv.size(), r.acc.survive.size()));
          reach.resize(std::max(reach.size(), r.acc.reached.size()));
          for (std::size_t k = 0; k < r.acc.survive.size(); ++k) {
            surv[k] += r.acc.survive[k];
            reach[k] += r.acc.reached[k];
          }
        }
      for (std::size_t k = 0; k < surv.size(); ++k) {
        sr.x.push_back(static_cast<double>(k + 1));
        sr.y.push_back(reach[k] > 0 ? static_cast<double>(surv[k]) / static_cast<double>(reach[k])
                                    : std::nan(""));
      }
      kmax = std::max(kmax, static_cast<int>(surv.size()));
      ser.push_back(std::move(sr));
    }
    deepspec::svg_axes ax;
    ax.title = "conditional acceptance by draft position (T = 1, all sets, gamma 5)";
    ax.xlabel = "draft position k";
    ax.ylabel = "P(accept k | 1..k-1 accepted)";
    ax.x0 = 1;
    ax.x1 = std::max(2, kmax);
    if (!ser.empty() && deepspec::write_svg_chart(dir + "/acceptance.svg", ax, ser))
      std::printf("\n[eval] wrote %s/acceptance.svg\n", dir.c_str());
    for (const auto& c : confs) {
      std::vector<deepspec::svg_series> rs;
      rs.push_back({"perfect calibration", {0, 1}, {0, 1}, true});
      for (specdec::index_t k = 0; k < std::min<specdec::index_t>(3, c.raw.positions()); ++k)
        for (int which = 0; which < 2; ++which) {
          deepspec::svg_series sr;
          sr.name = "k=" + std::to_string(k + 1) + (which == 0 ? " raw" : " STS");
          sr.dashed = which == 0;
          for (const auto& b : (which == 0 ? c.raw : c.sts).diagram(k))
            if (b.count > 0) {
              sr.x.push_back(b.mean_pred);
              sr.y.push_back(b.mean_label);
            }
          rs.push_back(std::move(sr));
        }
      deepspec::svg_axes ra;
      ra.title = "reliability of prod sigmoid(z/T), " + c.drafter;
      ra.xlabel = "predicted survival of drafts 1..k";
      ra.ylabel = "observed";
      const std::string path = dir + "/reliability_" + c.drafter + ".svg";
      if (deepspec::write_svg_chart(path, ra, rs))
        std::printf("[eval] wrote %s\n", path.c_str());
    }
  }
  const std::string json = a.str("json", dir + "/eval.json");
  if (std::FILE* f = std::fopen(json.c_str(), "w"); f != nullptr) {
    std::fprintf(f,
                 "{\"gamma\": %d, \"max_new\": %lld, \"rows\": [\n",
                 eo.gamma,
                 static_cast<long long>(eo.max_new));
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      std::fprintf(
          f,
          "  {\"drafter\": \"%s\", \"set\": \"%s\", \"T\": %.2f, \"tau\": %.4f, \"verify_rate\": "
          "%.4f, "
          "\"rounds\": %lld, \"tokens\": %lld, \"seconds\": %.4f, \"draft_seconds\": %.4f, "
          "\"greedy_equals_plain\": %s, \"accept_rate\": [",
          r.drafter.c_str(),
          r.set.c_str(),
          static_cast<double>(r.T),
          r.acc.tau(),
          r.acc.verify_rate(),
          static_cast<long long>(r.acc.rounds),
          static_cast<long long>(r.acc.tokens),
          r.acc.seconds,
          r.acc.seconds_draft,
          r.T == 0.0f ? (r.greedy_same ? "true" : "false") : "null");
      for (int k = 0; k < r.acc.gamma; ++k)
        std::fprintf(f, "%s%.4f", k ? ", " : "", r.acc.accept_rate(k));
      std::fprintf(f, "], \"conditional\": [");
      for (int k = 0; k < r.acc.gamma; ++k)
        std::fprintf(f, "%s%.4f", k ? ", " : "", r.acc.conditional(k + 1));
      std::fprintf(f, "]}%s\n", i + 1 < rows.size() ? "," : "");
    }
    std::fprintf(f, "], \"speed\": [\n");
    for (std::size_t i = 0; i < speeds.size(); ++i)
      std::fprintf(f,
                   "  {\"drafter\": \"%s\", \"T\": %.1f, \"tokens_per_second\": %.1f, "
                   "\"measured_speedup\": %.4f, \"projected_cpu\": %.4f, "
                   "\"projected_accelerator\": %.4f}%s\n",
                   speeds[i].name.c_str(),
                   static_cast<double>(speeds[i].T),
                   speeds[i].tps,
                   speeds[i].measured,
                   speeds[i].cpu,
                   speeds[i].accel,
                   i + 1 < speeds.size() ? "," : "");
    std::fprintf(f, "], \"confidence\": [\n");
    for (std::size_t i = 0; i < confs.size(); ++i) {
      const auto& c = confs[i];
      std::fprintf(f,
                   "  {\"drafter\": \"%s\", \"calibration_rounds\": %lld, \"positions\": [",
                   c.drafter.c_str(),
                   static_cast<long long>(c.calibration_rounds));
      for (specdec::index_t k = 0; k < c.raw.positions(); ++k) {
        const auto m0 = c.raw.metrics(k);
        const auto m1 = c.sts.metrics(k);
        std::fprintf(f,
                     "%s{\"k\": %lld, \"pairs\": %lld, \"T\": %.4f, \"ece_raw\": %.4f, "
                     "\"ece_sts\": %.4f, \"auroc_raw\": %.4f, \"auroc_sts\": %.4f, "
                     "\"brier_raw\": %.4f, \"brier_sts\": %.4f, \"pred_raw\": %.4f, "
                     "\"pred_sts\": %.4f, \"realised\": %.4f}",
                     k ? ", " : "",
                     static_cast<long long>(k + 1),
                     static_cast<long long>(m0.count),
                     k < static_cast<specdec::index_t>(c.temperatures.size())
                         ? c.temperatures[static_cast<std::size_t>(k)]
                         : 1.0,
                     m0.ece,
                     m1.ece,
                     m0.auroc,
                     m1.auroc,
                     m0.brier,
                     m1.brier,
                     m0.pred_mean,
                     m1.pred_mean,
                     m1.target_mean);
      }
      std::fprintf(f, "]}%s\n", i + 1 < confs.size() ? "," : "");
    }
    std::fprintf(f, "]}\n");
    std::fclose(f);
    std::printf("\n[eval] wrote %s\n", json.c_str());
  }
  for (const auto& r : rows)
    if (r.T == 0.0f && !r.greedy_same) {
      std::fprintf(stderr,
                   "deepspec eval: greedy output of %s on %s differs from plain decoding\n",
                   r.drafter.c_str(),
                   r.set.c_str());
      return 1;
    }
  return 0;
}

int cmd_all(env& e, args a) {
  if (int r = cmd_data(e, a); r != 0)
    return r;
  const std::string dir = a.str("dir", "deepspec_out");
  deepspec::train_result res;
  if (int r = train_one(
          e, a, arch::eagle3, static_cast<int>(a.num("ttt", 7)), dir + "/eagle3.safetensors", res);
      r != 0)
    return r;
  if (int r = train_one(e, a, arch::eagle3, 1, dir + "/eagle3_nottt.safetensors", res); r != 0)
    return r;
  if (int r = train_one(e, a, arch::mtp1, 1, dir + "/mtp1.safetensors", res); r != 0)
    return r;
  // The block drafters, with the same data, steps and optimiser: DFlash, then DSpark variants
  // given as head:rank (none:0 is DSpark with only the confidence head).
  if (int r = train_block_one(e, a, block_shape_for(e, a, false), dir + "/dflash.safetensors", res);
      r != 0)
    return r;
  for (const auto& v :
       split(a.str("dspark", "markov:32,markov:64,gated:32,gated:64,rnn:32,rnn:64,none:0"))) {
    const std::size_t colon = v.find(':');
    args b = a;
    b.kv["head"] = v.substr(0, colon);
    b.kv["rank"] = colon == std::string::npos ? "32" : v.substr(colon + 1);
    const deepspec::block_config c = block_shape_for(e, b, true);
    const std::string out = dir + "/dspark_" + std::string(deepspec::block_head_name(c.head))
                            + std::to_string(c.r()) + ".safetensors";
    if (int r = train_block_one(e, b, c, out, res); r != 0)
      return r;
  }
  return cmd_eval(e, a);
}

} // namespace

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  args a;
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) {
      std::fprintf(stderr, "deepspec: unexpected argument '%s'\n", argv[i]);
      return 2;
    }
    k = k.substr(2);
    if (k == "f32") {
      a.kv[k] = "1";
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "deepspec: --%s needs a value\n", k.c_str());
      return 2;
    }
    a.kv[k] = argv[++i];
  }
  env e;
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::printf("usage: deepspec data|train|eval|all [options]  (see examples/05_deepspec.cpp)\n");
    return 0;
  }
  if (int r = load_env(e); r != 0)
    return r;
  if (cmd == "data")
    return cmd_data(e, a);
  if (cmd == "train")
    return cmd_train(e, a);
  if (cmd == "eval")
    return cmd_eval(e, a);
  if (cmd == "all")
    return cmd_all(e, a);
  if (!cmd.empty()) {
    std::fprintf(stderr, "deepspec: unknown command '%s' (data, train, eval, all)\n", cmd.c_str());
    return 2;
  }
  // No arguments: a small end-to-end smoke run in a scratch directory.
  const std::string dir =
      (std::filesystem::temp_directory_path() / "specdec_deepspec_smoke").string();
  std::printf("deepspec: no command given; smoke run in %s (usage: deepspec data|train|eval|all)\n",
              dir.c_str());
  a.kv = {{"dir", dir},
          {"train", "16"},
          {"heldout", "8"},
          {"max-new", "48"},
          {"epochs", "1"},
          {"batch", "4"},
          {"ttt", "3"},
          {"dspark", "markov:8"},
          {"anchors", "8"},
          {"calib-prompts", "2"},
          {"prompts", "2"},
          {"eval-max-new", "24"},
          {"log-every", "0"}};
  const int r = cmd_all(e, a);
  std::filesystem::remove_all(dir);
  return r;
}
