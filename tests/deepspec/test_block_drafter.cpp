// SPDX-License-Identifier: Apache-2.0
// The block drafters of examples/deepspec (DFlash and DSpark, examples/deepspec/block_drafter.hpp):
// every gradient against central finite differences in double precision (the method of
// test_nn_grad.cpp), and the inference path (block_backbone under the library's
// semi_ar_drafter heads) against the training forward.
#include <specdec/cpu/serial_executor.hpp>
#include <specdec/propose/semi_ar.hpp>

#include <catch2/catch.hpp>

#include "deepspec/block_drafter.hpp"
#include "deepspec/fd_check.hpp"
#include <cstdint>
#include <functional>
#include <random>

using namespace deepspec;
using md = mat<double>;
using deepspec_test::check_grad;
using deepspec_test::random_mat;

namespace {

template <class T>
train_example<T> tiny_example(const block_config& c, idx L, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  train_example<T> ex;
  for (idx t = 0; t < L; ++t)
    ex.tokens.push_back(
        static_cast<std::int32_t>(1 + g() % static_cast<std::uint64_t>(c.vocab - 1)));
  ex.features = random_mat(L, c.feature_cols(), seed + 1).cast<T>();
  md logits = random_mat(L, c.vocab, seed + 2, 3.0);
  md p(L, c.vocab);
  for (idx t = 0; t < L; ++t) {
    const double mx = logits.row(t).maxCoeff();
    const auto e = (logits.row(t).array() - mx).exp();
    p.row(t) = e / e.sum();
  }
  ex.target_probs = p.cast<T>();
  ex.loss_begin = 2;
  return ex;
}

block_config tiny_config(block_head h, int rank, bool conf) {
  block_config c;
  c.dim = 8;
  c.heads = 2;
  c.kv_heads = 1;
  c.ffn = 12;
  c.vocab = 11;
  c.n_layers = 2;
  c.block = 3;
  c.layers = {1, 2};
  c.head = h;
  c.rank = rank;
  c.confidence = conf;
  return c;
}

void check_block_drafter(block_head h, int rank, bool conf) {
  const block_config c = tiny_config(h, rank, conf);
  REQUIRE(c.validate().ok());
  block_weights<double> W;
  W.init(c, 5);
  std::mt19937_64 g(77);
  std::uniform_real_distribution<double> u(-0.5, 0.5);
  for (auto& m : W.w)
    for (idx i = 0; i < m.size(); ++i)
      m.data()[i] += u(g);
  const md E = random_mat(c.vocab, c.dim, 21);
  const train_example<double> ex = tiny_example<double>(c, 9, 31);
  const std::vector<idx> anchors = pick_anchors(9, ex.loss_begin, 0, 1);
  REQUIRE(anchors.size() == 6); // 2 .. 7
  block_loss_config lc = block_loss_config::for_config(c);
  if (h == block_head::none && !conf)
    lc = block_loss_config{1.0, 0.5, 0.0, 4.0}; // DFlash plus an L1 term: both data paths
  const double scale = 0.3;
  block_state<double> s;
  block_grads<double> G;
  G.zero_like(W);
  block_metrics m;
  REQUIRE(train_blocks(W, E, ex, anchors, lc, scale, &G, m, s).ok());
  CHECK(m.weight > 0);
  s.freeze_cstar = true; // the confidence label c* is detached
  auto f = [&] {
    block_metrics mm;
    block_grads<double>* none = nullptr;
    REQUIRE(train_blocks(W, E, ex, anchors, lc, scale, none, mm, s).ok());
    return mm.objective * scale;
  };
  for (int p = 0; p < W.slots(); ++p)
    if (W.w[static_cast<std::size_t>(p)].size() > 0)
      check_grad(W.w[static_cast<std::size_t>(p)], G[p], f, W.name(p));
}

} // namespace

TEST_CASE("block drafter: DFlash gradients (CE and L1 paths) match finite differences",
          "[deepspec][block]") {
  check_block_drafter(block_head::none, 0, false);
}

TEST_CASE("block drafter: DSpark Markov head + confidence gradients match finite differences",
          "[deepspec][block]") {
  check_block_drafter(block_head::markov, 3, true);
}

TEST_CASE("block drafter: DSpark gated head + confidence gradients match finite differences",
          "[deepspec][block]") {
  check_block_drafter(block_head::gated, 3, true);
}

TEST_CASE("block drafter: DSpark RNN head + confidence gradients match finite differences",
          "[deepspec][block]") {
  check_block_drafter(block_head::rnn, 3, true);
}

TEST_CASE("block drafter: confidence head without a Markov head (r = 0) matches finite differences",
          "[deepspec][block]") {
  check_block_drafter(block_head::none, 0, true);
}
