// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The training loop of the miniature DeepSpec drafters: batches of self-distilled
///        sequences, the target's features computed online (or read from the data file), the
///        drafter's forward and backward on two threads, AdamW with warm-up, cosine decay and
///        clipping (specdec/train/optim.hpp), progress lines with the held-out acceptance.
///
/// Reproducible: the batch order comes from the seed, each batch is cut into the same two
/// shards whatever the thread count, and the shards' gradients are summed in shard order, so a
/// run gives the same weights bit for bit on one thread or two. The held-out set is only
/// reported (never used to choose anything).

#include <specdec/train/optim.hpp>

#include "deepspec/checkpoint.hpp"
#include "deepspec/data.hpp"
#include "deepspec/drafter.hpp"
#include "llama2c/model.hpp"
#include <chrono>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

namespace deepspec {

/// @brief Reads the token embedding [V x d] of a llama2.c checkpoint (the classifier when it is
///        shared, as in the stories models). The file must already load as a llama2c::model.
inline specdec::status
load_embedding(const std::string& path, const llama2c::model& m, mat<float>& E) {
  std::ifstream f(path, std::ios::binary);
  if (!f || !m.cfg().shared_classifier)
    return specdec::status{f ? specdec::errc::unsupported : specdec::errc::io_error};
  f.seekg(28);
  E.resize(m.vocab_size(), m.hidden_size());
  if (!f.read(reinterpret_cast<char*>(E.data()), static_cast<std::streamsize>(E.size() * 4)))
    return specdec::status{specdec::errc::io_error};
  return specdec::status{};
}

/// @brief Settings of a training run.
struct train_options {
  arch kind = arch::eagle3;    ///< the drafter
  int ttt = 7;                 ///< unroll steps (1: no training-time test; MTP-1: 1)
  double step_decay = 0.8;     ///< EAGLE-3 step weights decay^k
  int epochs = 4;              ///< passes over the training set
  int batch = 16;              ///< sequences per optimizer step
  std::int64_t max_steps = -1; ///< stop after this many steps (-1: epochs decide)
  double lr = 3e-3;            ///< peak learning rate
  double warmup_ratio = 0.04;  ///< linear warm-up share of the steps
  double clip = 1.0;           ///< global gradient-norm clip
  double weight_decay = 0.0;   ///< AdamW decoupled decay
  std::uint64_t seed = 0;      ///< initialisation and batch order
  int threads = 2;             ///< 1 or 2 (results do not depend on it)
  int log_every = 25;          ///< progress line period in steps (0: only the last)
  int eval_sequences = 32;     ///< held-out sequences in the progress lines
  int eval_steps = 5;          ///< unroll steps of the held-out acceptance (gamma)
  bool quiet = false;          ///< no progress lines
};

/// One point of the loss curve.
struct curve_point {
  std::int64_t step = 0;     ///< optimizer steps done
  double train_loss = 0;     ///< mean loss of the batches since the last point
  double heldout_loss = 0;   ///< teacher-forced held-out loss (step 0)
  double heldout_accept = 0; ///< held-out mean c* of the first draft
  double heldout_tau = 0;    ///< held-out 1 + sum prod c* over eval_steps (an estimate)
  double seconds = 0;        ///< wall time so far
};

/// @brief Result of a training run.
struct train_result {
  std::vector<curve_point> curve; ///< progress points (the last one: the end)
  std::int64_t steps = 0;         ///< optimizer steps
  double seconds = 0;             ///< wall time
  std::int64_t tokens = 0;        ///< supervised tokens seen
};

/// @brief Per-thread resources: a target model (online features) and scratch.
struct worker {
  llama2c::model target;            ///< its own copy of the target
  train_scratch<float> scratch;     ///< drafter scratch
  std::vector<float> logits, feats; ///< target outputs
  drafter_grads<float> grads;       ///< the shard's gradient
  train_metrics metrics;            ///< the shard's sums
  specdec::status st{};             ///< the shard's status
};

/// @brief Builds the training example of sequence s: the target's features of the drafter's
///        layers and its distributions at T = 1 (from the data file when it holds them all, else
///        by one target pass).
inline specdec::status make_example(worker& w,
                                    const dataset& d,
                                    std::int64_t s,
                                    const drafter_config& c,
                                    train_example<float>& ex) {
  using specdec::index_t;
  ex.tokens = d.sequence(s);
  ex.loss_begin = d.prompt_lengths[static_cast<std::size_t>(s)];
  const index_t L = static_cast<index_t>(ex.tokens.size());
  const index_t V = c.vocab;
  const index_t dim = c.dim;
  const index_t nl = static_cast<index_t>(c.layers.size());
  ex.features.resize(L, nl * dim);
  ex.target_probs.resize(L, V);
  w.logits.resize(static_cast<std::size_t>(L * V));
  w.feats.resize(static_cast<std::size_t>(L * nl * dim));
  w.target.reset();
  const specdec::feature_request f{{c.layers.data(), nl}, {w.feats.data(), L, nl * dim, nl * dim}};
  if (const specdec::status st =
          w.target.score_features({0, {ex.tokens.data(), L}, 0}, {w.logits.data(), L, V, V}, f);
      !st.ok())
    return st;
  std::copy(w.feats.begin(), w.feats.end(), ex.features.data());
  for (index_t t = 0; t < L; ++t) {
    const float* row = w.logits.data() + t * V;
    float mx = row[0];
    for (index_t v = 1; v < V; ++v)
      mx = std::max(mx, row[v]);
    double sum = 0;
    for (index_t v = 0; v < V; ++v)
      sum += std::exp(static_cast<double>(row[v] - mx));
    for (index_t v = 0; v < V; ++v)
      ex.target_probs(t, v) = static_cast<float>(std::exp(static_cast<double>(row[v] - mx)) / sum);
  }
  return specdec::status{};
}

/// @brief Teacher-forced metrics of the weights on the first `n` sequences of `d` with `steps`
///        unroll steps (no gradient).
inline specdec::status evaluate_teacher_forced(const drafter_weights<float>& W,
                                               const mat<float>& E,
                                               worker& w,
                                               const dataset& d,
                                               std::int64_t n,
                                               int steps,
                                               double step_decay,
                                               train_metrics& m) {
  m = train_metrics{};
  train_example<float> ex;
  for (std::int64_t s = 0; s < std::min(n, d.size()); ++s) {
    if (const specdec::status st = make_example(w, d, s, W.cfg, ex); !st.ok())
      return st;
    drafter_grads<float>* none = nullptr;
    if (const specdec::status st =
            train_sequence(W, E, ex, steps, 1.0f, step_decay, none, m, w.scratch);
        !st.ok())
      return st;
  }
  return specdec::status{};
}

/// @brief Trains `W` (already initialised) on `train` and reports on `heldout`.
/// @return a model, loss or optimiser status (a non-finite gradient stops the run)
inline specdec::status train_drafter(drafter_weights<float>& W,
                                     const mat<float>& E,
                                     const std::string& model_path,
                                     const dataset& train,
                                     const dataset& heldout,
                                     const train_options& o,
                                     train_result& res) {
  using specdec::errc;
  using specdec::status;
  res = train_result{};
  if (o.batch < 1 || o.epochs < 1 || o.ttt < 1 || o.threads < 1 || train.size() < 1)
    return status{errc::invalid_argument};
  std::vector<worker> workers(2);
  for (auto& w : workers) {
    if (const status s = llama2c::model::load(model_path, w.target); !s.ok())
      return s;
    w.grads.zero_like(W);
  }
  const std::int64_t per_epoch = (train.size() + o.batch - 1) / o.batch;
  std::int64_t total = per_epoch * o.epochs;
  if (o.max_steps >= 0)
    total = std::min(total, o.max_steps);
  specdec::train::adamw_config ac;
  ac.lr = o.lr;
  ac.weight_decay = o.weight_decay;
  ac.clip_norm = o.clip;
  specdec::train::adamw opt(ac);
  drafter_grads<float> G;
  G.zero_like(W);
  for (int p = 0; p < p_count; ++p)
    if (W.w[p].size() > 0)
      if (const status s = opt.add({W.w[p].data(), static_cast<std::size_t>(W.w[p].size())},
                                   {G.g[p].data(), static_cast<std::size_t>(G.g[p].size())},
                                   !is_norm(p));
          !s.ok())
        return s;
  specdec::train::lr_schedule sched;
  sched.peak = o.lr;
  sched.total_steps = std::max<std::int64_t>(1, total);
  sched.warmup_ratio = o.warmup_ratio;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::int64_t> order(static_cast<std::size_t>(train.size()));
  std::uint64_t shuffle = o.seed * 0x9e3779b97f4a7c15ull + 17;
  double loss_sum = 0;
  double loss_n = 0;
  auto report = [&](std::int64_t step) -> status {
    curve_point cp;
    cp.step = step;
    cp.train_loss = loss_n > 0 ? loss_sum / loss_n : 0;
    loss_sum = 0;
    loss_n = 0;
    if (heldout.size() > 0 && o.eval_sequences > 0) {
      train_metrics hm;
      if (const status s = evaluate_teacher_forced(
              W, E, workers[0], heldout, o.eval_sequences, o.eval_steps, o.step_decay, hm);
          !s.ok())
        return s;
      cp.heldout_loss =
          hm.steps.empty() || hm.steps[0].rows <= 0 ? 0 : hm.steps[0].loss / hm.steps[0].rows;
      cp.heldout_accept =
          hm.steps.empty() || hm.steps[0].rows <= 0 ? 0 : hm.steps[0].accept / hm.steps[0].rows;
      cp.heldout_tau = hm.tau_estimate();
    }
    cp.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    res.curve.push_back(cp);
    if (!o.quiet)
      std::fprintf(stderr,
                   "[train %s ttt=%d] step %lld/%lld  lr %.2e  loss %.4f  held-out: loss %.4f  "
                   "accept@1 %.3f  tau(TF, gamma %d) %.3f  %.1f s\n",
                   arch_name(W.cfg.kind),
                   o.ttt,
                   static_cast<long long>(step),
                   static_cast<long long>(total),
                   sched.at(std::max<std::int64_t>(0, step - 1)),
                   cp.train_loss,
                   cp.heldout_loss,
                   cp.heldout_accept,
                   o.eval_steps,
                   cp.heldout_tau,
                   cp.seconds);
    return status{};
  };
  if (const status s = report(0); !s.ok())
    return s;
  std::int64_t step = 0;
  for (int epoch = 0; epoch < o.epochs && step < total; ++epoch) {
    std::iota(order.begin(), order.end(), 0);
    for (std::size_t i = order.size(); i > 1; --i) // Fisher-Yates with splitmix64
      std::swap(order[i - 1], order[splitmix64(shuffle) % i]);
    for (std::int64_t b0 = 0; b0 < train.size() && step < total; b0 += o.batch, ++step) {
      const std::int64_t b1 = std::min<std::int64_t>(train.size(), b0 + o.batch);
      // The batch's normaliser: its supervised step-0 rows.
      std::int64_t rows = 0;
      for (std::int64_t i = b0; i < b1; ++i) {
        const std::int64_t s = order[static_cast<std::size_t>(i)];
        const std::int64_t L = train.offsets[static_cast<std::size_t>(s) + 1]
                               - train.offsets[static_cast<std::size_t>(s)];
        const std::int64_t p = train.prompt_lengths[static_cast<std::size_t>(s)];
        rows += std::max<std::int64_t>(0, L - std::max<std::int64_t>(p, 2));
      }
      const float scale = rows > 0 ? 1.0f / static_cast<float>(rows) : 0.0f;
      const std::int64_t mid = b0 + (b1 - b0 + 1) / 2;
      auto shard = [&](int k) {
        worker& w = workers[static_cast<std::size_t>(k)];
        w.grads.zero_like(W);
        w.metrics = train_metrics{};
        w.st = status{};
        train_example<float> ex;
        for (std::int64_t i = k == 0 ? b0 : mid; i < (k == 0 ? mid : b1); ++i) {
          const std::int64_t s = order[static_cast<std::size_t>(i)];
          if (w.st = make_example(w, train, s, W.cfg, ex); !w.st.ok())
            return;
          if (w.st = train_sequence(
                  W, E, ex, o.ttt, scale, o.step_decay, &w.grads, w.metrics, w.scratch);
              !w.st.ok())
            return;
        }
      };
      if (o.threads >= 2) {
        std::thread t1(shard, 1);
        shard(0);
        t1.join();
      } else {
        shard(0);
        shard(1);
      }
      for (const auto& w : workers)
        if (!w.st.ok())
          return w.st;
      for (int p = 0; p < p_count; ++p)
        G.g[p] = workers[0].grads.g[p] + workers[1].grads.g[p];
      train_metrics bm = workers[0].metrics;
      bm.add(workers[1].metrics);
      if (!bm.steps.empty() && bm.steps[0].rows > 0) {
        loss_sum += bm.loss();
        loss_n += 1;
        res.tokens += static_cast<std::int64_t>(bm.steps[0].rows);
      }
      const auto rep = opt.step(sched.at(step));
      if (!rep.st.ok())
        return rep.st;
      if ((o.log_every > 0 && (step + 1) % o.log_every == 0) || step + 1 == total)
        if (const status s = report(step + 1); !s.ok())
          return s;
    }
  }
  res.steps = step;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return status{};
}

} // namespace deepspec
