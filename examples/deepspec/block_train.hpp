// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The training loop of the block drafters (DFlash, DSpark): the same batches, target
///        features, optimiser, schedule and two-thread sharding as the autoregressive drafters'
///        loop (train.hpp), with DeepSpec's anchored blocks and block loss.
///
/// Per sequence, `anchors` block anchors are drawn (seeded by the run seed, the epoch and the
/// sequence; DeepSpec draws 512 of up to 4096 positions), the batch is normalised by its sum of
/// slot weights (DeepSpec's weighted token mean), and the gradients of the two shards are summed
/// in shard order, so one thread or two give the same weights bit for bit. The held-out set is
/// only reported (fixed anchors), never used to choose anything.

#include <specdec/train/optim.hpp>

#include "deepspec/block_drafter.hpp"
#include "deepspec/train.hpp"
#include <chrono>
#include <cstdio>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

namespace deepspec {

/// @brief Settings of a block drafter's training run.
struct block_train_options {
  int epochs = 3;              ///< passes over the training set
  int batch = 16;              ///< sequences per optimizer step
  std::int64_t max_steps = -1; ///< stop after this many steps (-1: epochs decide)
  int anchors = 64;            ///< blocks per sequence (<= 0: every candidate)
  double lr = 3e-3;            ///< peak learning rate
  double warmup_ratio = 0.04;  ///< linear warm-up share
  double clip = 1.0;           ///< global gradient-norm clip
  double weight_decay = 0.0;   ///< AdamW decoupled decay
  std::uint64_t seed = 0;      ///< initialisation, batch order, anchors
  int threads = 2;             ///< 1 or 2 (results do not depend on it)
  int log_every = 25;          ///< progress line period (0: only the last)
  int eval_sequences = 32;     ///< held-out sequences in the progress lines
  bool quiet = false;          ///< no progress lines
};

/// The drafter_config make_example needs for a block drafter's feature layers.
inline drafter_config feature_shape(const block_config& c) {
  drafter_config d;
  d.kind = arch::eagle3;
  d.dim = c.dim;
  d.heads = c.heads;
  d.kv_heads = c.kv_heads;
  d.ffn = c.ffn;
  d.vocab = c.vocab;
  d.layers = c.layers;
  return d;
}

/// Anchors of training sequence s in `epoch` (seeded, reproducible).
inline std::vector<idx>
train_anchors(const dataset& d, std::int64_t s, int n, std::uint64_t seed, int epoch) {
  const std::int64_t L =
      d.offsets[static_cast<std::size_t>(s) + 1] - d.offsets[static_cast<std::size_t>(s)];
  std::uint64_t k = seed * 0x9e3779b97f4a7c15ull ^ (static_cast<std::uint64_t>(epoch) << 40)
                    ^ static_cast<std::uint64_t>(s) * 0xd1b54a32d192ed03ull;
  return pick_anchors(L, d.prompt_lengths[static_cast<std::size_t>(s)], n, splitmix64(k));
}

/// Per-thread resources of the block loop.
struct block_worker {
  worker base;              ///< target model and its outputs
  block_state<float> state; ///< forward state
  block_grads<float> grads; ///< the shard's gradient
  block_metrics metrics;    ///< the shard's sums
  specdec::status st{};     ///< the shard's status
};

/// @brief Teacher-forced block metrics of `W` on the first `n` sequences of `d` (anchors seeded
///        by 0, at most `anchors` per sequence).
inline specdec::status evaluate_blocks(const block_weights<float>& W,
                                       const mat<float>& E,
                                       block_worker& w,
                                       const dataset& d,
                                       std::int64_t n,
                                       int anchors,
                                       block_metrics& m) {
  m = block_metrics{};
  const block_loss_config lc = block_loss_config::for_config(W.cfg);
  train_example<float> ex;
  for (std::int64_t s = 0; s < std::min(n, d.size()); ++s) {
    if (const auto st = make_example(w.base, d, s, feature_shape(W.cfg), ex); !st.ok())
      return st;
    const auto a = train_anchors(d, s, anchors, 12345, 0);
    block_grads<float>* none = nullptr;
    if (const auto st = train_blocks(W, E, ex, a, lc, 1.0f, none, m, w.state); !st.ok())
      return st;
  }
  return specdec::status{};
}

/// @brief Trains `W` (already initialised) on `train`, reporting on `heldout`. The curve's
///        heldout_loss is the weighted objective, heldout_accept the mean c* of slot 1 and
///        heldout_tau the teacher-forced 1 + sum prod c* over the block.
/// @return a model, loss or optimiser status
inline specdec::status train_block_drafter(block_weights<float>& W,
                                           const mat<float>& E,
                                           const std::string& model_path,
                                           const dataset& train,
                                           const dataset& heldout,
                                           const block_train_options& o,
                                           train_result& res) {
  using specdec::errc;
  using specdec::status;
  res = train_result{};
  if (o.batch < 1 || o.epochs < 1 || o.threads < 1 || train.size() < 1)
    return status{errc::invalid_argument};
  const block_loss_config lc = block_loss_config::for_config(W.cfg);
  std::vector<block_worker> workers(2);
  for (auto& w : workers) {
    if (const status s = llama2c::model::load(model_path, w.base.target); !s.ok())
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
  block_grads<float> G;
  G.zero_like(W);
  for (int p = 0; p < W.slots(); ++p)
    if (W[p].size() > 0)
      if (const status s = opt.add(
              {W.w[static_cast<std::size_t>(p)].data(), static_cast<std::size_t>(W[p].size())},
              {G[p].data(), static_cast<std::size_t>(G[p].size())},
              !block_weights<float>::norm_slot(p));
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
  const char* name = W.cfg.head == block_head::none && !W.cfg.confidence ? "dflash" : "dspark";
  auto report = [&](std::int64_t step) -> status {
    curve_point cp;
    cp.step = step;
    cp.train_loss = loss_n > 0 ? loss_sum / loss_n : 0;
    loss_sum = 0;
    loss_n = 0;
    if (heldout.size() > 0 && o.eval_sequences > 0) {
      block_metrics hm;
      if (const status s =
              evaluate_blocks(W, E, workers[0], heldout, o.eval_sequences, o.anchors, hm);
          !s.ok())
        return s;
      cp.heldout_loss = hm.loss();
      cp.heldout_accept = hm.accept(0);
      cp.heldout_tau = hm.tau_estimate(static_cast<std::size_t>(W.cfg.block));
    }
    cp.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    res.curve.push_back(cp);
    if (!o.quiet)
      std::fprintf(stderr,
                   "[train %s %s r=%d] step %lld/%lld  lr %.2e  loss %.4f  held-out: loss %.4f  "
                   "accept@1 %.3f  tau(TF, block %d) %.3f  %.1f s\n",
                   name,
                   block_head_name(W.cfg.head),
                   W.cfg.r(),
                   static_cast<long long>(step),
                   static_cast<long long>(total),
                   sched.at(std::max<std::int64_t>(0, step - 1)),
                   cp.train_loss,
                   cp.heldout_loss,
                   cp.heldout_accept,
                   W.cfg.block,
                   cp.heldout_tau,
                   cp.seconds);
    return status{};
  };
  if (const status s = report(0); !s.ok())
    return s;
  std::int64_t step = 0;
  for (int epoch = 0; epoch < o.epochs && step < total; ++epoch) {
    std::iota(order.begin(), order.end(), 0);
    for (std::size_t i = order.size(); i > 1; --i)
      std::swap(order[i - 1], order[splitmix64(shuffle) % i]);
    for (std::int64_t b0 = 0; b0 < train.size() && step < total; b0 += o.batch, ++step) {
      const std::int64_t b1 = std::min<std::int64_t>(train.size(), b0 + o.batch);
      std::vector<std::vector<idx>> anchors(static_cast<std::size_t>(b1 - b0));
      double wsum = 0; // the batch's normaliser: its sum of slot weights
      for (std::int64_t i = b0; i < b1; ++i) {
        const std::int64_t s = order[static_cast<std::size_t>(i)];
        auto& a = anchors[static_cast<std::size_t>(i - b0)];
        a = train_anchors(train, s, o.anchors, o.seed, epoch);
        const std::int64_t L = train.offsets[static_cast<std::size_t>(s) + 1]
                               - train.offsets[static_cast<std::size_t>(s)];
        const idx lb = train.prompt_lengths[static_cast<std::size_t>(s)];
        for (idx x : a)
          for (idx k = 0; k < block_valid_slots(x, L, lb, W.cfg.block); ++k)
            wsum += std::exp(-static_cast<double>(k) / lc.decay_gamma);
      }
      const float scale = wsum > 0 ? static_cast<float>(1.0 / wsum) : 0.0f;
      const std::int64_t mid = b0 + (b1 - b0 + 1) / 2;
      auto shard = [&](int k) {
        block_worker& w = workers[static_cast<std::size_t>(k)];
        w.grads.zero_like(W);
        w.metrics = block_metrics{};
        w.st = status{};
        train_example<float> ex;
        for (std::int64_t i = k == 0 ? b0 : mid; i < (k == 0 ? mid : b1); ++i) {
          const std::int64_t s = order[static_cast<std::size_t>(i)];
          if (w.st = make_example(w.base, train, s, feature_shape(W.cfg), ex); !w.st.ok())
            return;
          if (w.st = train_blocks(W,
                                  E,
                                  ex,
                                  anchors[static_cast<std::size_t>(i - b0)],
                                  lc,
                                  scale,
                                  &w.grads,
                                  w.metrics,
                                  w.state);
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
      for (int p = 0; p < W.slots(); ++p)
        G[p] = workers[0].grads[p] + workers[1].grads[p];
      block_metrics bm = workers[0].metrics;
      bm.add(workers[1].metrics);
      if (bm.weight > 0) {
        loss_sum += bm.loss();
        loss_n += 1;
        res.tokens += static_cast<std::int64_t>(bm.slots.empty() ? 0 : bm.slots[0].rows);
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
