// SPDX-License-Identifier: Apache-2.0
// Every backward of the miniature training core (examples/deepspec/nn.hpp) and of the two
// drafters (examples/deepspec/drafter.hpp: EAGLE-3 with training-time test, MTP-1) against
// central finite differences in double precision.
//
// Method: a random linear functional L = sum(R .* out) of each operation's output (R fixed,
// seeded) is differentiated two ways: the backward with dOut = R, and (L(x + h e_i) -
// L(x - h e_i)) / 2h for every input element i (h = 1e-6). The bound is a relative error of
// 1e-6 against max(1, |analytic|) per element; a wrong factor anywhere gives errors of order 1.
#include <catch2/catch.hpp>

#include "deepspec/drafter.hpp"
#include "deepspec/fd_check.hpp"
#include <cstdint>
#include <functional>
#include <random>

using namespace deepspec;
using md = mat<double>;
using deepspec_test::check_grad;
using deepspec_test::dot;
using deepspec_test::random_mat;

TEST_CASE("nn: linear backward matches finite differences") {
  md X = random_mat(5, 7, 1);
  md W = random_mat(4, 7, 2);
  const md R = random_mat(5, 4, 3);
  auto f = [&] {
    md Y;
    linear_forward(X, W, Y);
    return dot(Y, R);
  };
  md dX = md::Zero(5, 7);
  md dW = md::Zero(4, 7);
  linear_backward(X, W, R, &dX, &dW);
  check_grad(X, dX, f, "dX");
  check_grad(W, dW, f, "dW");
}

TEST_CASE("nn: rmsnorm backward matches finite differences") {
  md X = random_mat(4, 6, 4);
  md w = random_mat(1, 6, 5);
  const md R = random_mat(4, 6, 6);
  auto f = [&] {
    md Y;
    std::vector<double> r;
    rmsnorm_forward(X, w, Y, r);
    return dot(Y, R);
  };
  md Y;
  std::vector<double> r;
  rmsnorm_forward(X, w, Y, r);
  md dX = md::Zero(4, 6);
  md dw = md::Zero(1, 6);
  rmsnorm_backward(X, w, r, R, dX, &dw);
  check_grad(X, dX, f, "dX");
  check_grad(w, dw, f, "dw");
}

TEST_CASE("nn: rope is a rotation and its inverse is the backward") {
  md X = random_mat(3, 8, 7);
  const std::vector<std::int64_t> pos{0, 5, 300};
  const md R = random_mat(3, 8, 8);
  auto f = [&] {
    md Y = X;
    rope_apply(Y, pos, 4);
    return dot(Y, R);
  };
  md dX = R;
  rope_apply(dX, pos, 4, true);
  check_grad(X, dX, f, "dX");
  md Y = X;
  rope_apply(Y, pos, 4);
  CHECK(std::abs(Y.norm() - X.norm()) < 1e-12);
  rope_apply(Y, pos, 4, true);
  CHECK((Y - X).cwiseAbs().maxCoeff() < 1e-12);
}

TEST_CASE("nn: attention backward matches finite differences (causal + diagonal + block masks)") {
  const int H = 4;
  const int G = 2;
  const int hd = 4;
  md Q = random_mat(6, H * hd, 9);
  md K = random_mat(8, G * hd, 10);
  md V = random_mat(8, G * hd, 11);
  const md R = random_mat(6, H * hd, 12);
  attention_mask mask;
  mask.add_causal(1);
  mask.add_causal(3);
  const std::vector<idx> e1{5};
  mask.add(2, e1.begin(), e1.end()); // training-time-test diagonal
  const std::vector<idx> e2{4, 6, 7};
  mask.add(0, e2.begin(), e2.end()); // block: only listed keys
  mask.add_causal(8);
  mask.add(0, e2.begin(), e2.begin()); // sees nothing: zero row
  auto f = [&] {
    md O;
    attention_cache<double> c;
    attention_forward(Q, K, V, H, G, hd, mask, O, c);
    return dot(O, R);
  };
  md O;
  attention_cache<double> c;
  attention_forward(Q, K, V, H, G, hd, mask, O, c);
  CHECK(O.row(5).cwiseAbs().maxCoeff() == 0.0);
  md dQ = md::Zero(Q.rows(), Q.cols());
  md dK = md::Zero(K.rows(), K.cols());
  md dV = md::Zero(V.rows(), V.cols());
  attention_backward(Q, K, V, H, G, hd, mask, c, R, dQ, dK, dV);
  check_grad(Q, dQ, f, "dQ");
  check_grad(K, dK, f, "dK");
  check_grad(V, dV, f, "dV");
}

TEST_CASE("nn: silu-mul backward matches finite differences") {
  md Gm = random_mat(3, 5, 13, 4.0);
  md U = random_mat(3, 5, 14);
  const md R = random_mat(3, 5, 15);
  auto f = [&] {
    md A;
    silu_mul_forward(Gm, U, A);
    return dot(A, R);
  };
  md dG = md::Zero(3, 5);
  md dU = md::Zero(3, 5);
  silu_mul_backward(Gm, U, R, dG, dU);
  check_grad(Gm, dG, f, "dG");
  check_grad(U, dU, f, "dU");
}

namespace {

// A tiny random example: L tokens, features, target distributions, a prompt of 2.
train_example<double> tiny_example(const drafter_config& c, idx L, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  train_example<double> ex;
  for (idx t = 0; t < L; ++t)
    ex.tokens.push_back(static_cast<std::int32_t>(g() % static_cast<std::uint64_t>(c.vocab)));
  ex.features = random_mat(L, c.feature_cols(), seed + 1);
  md logits = random_mat(L, c.vocab, seed + 2, 3.0);
  ex.target_probs.resize(L, c.vocab);
  for (idx t = 0; t < L; ++t) {
    const double mx = logits.row(t).maxCoeff();
    const auto e = (logits.row(t).array() - mx).exp();
    ex.target_probs.row(t) = e / e.sum();
  }
  ex.loss_begin = 2;
  return ex;
}

void check_drafter(arch a, int ttt) {
  drafter_config c;
  c.kind = a;
  c.dim = 8;
  c.heads = 2;
  c.kv_heads = 1;
  c.ffn = 12;
  c.vocab = 11;
  c.layers = a == arch::eagle3 ? std::vector<std::int32_t>{1, 2} : std::vector<std::int32_t>{3};
  REQUIRE(c.validate().ok());
  drafter_weights<double> W;
  W.init(c, 7);
  // Larger weights than the initialiser's, so every path carries gradient.
  std::mt19937_64 g(99);
  std::uniform_real_distribution<double> u(-0.5, 0.5);
  for (auto& m : W.w)
    for (idx i = 0; i < m.size(); ++i)
      m.data()[i] += u(g);
  const md E = random_mat(c.vocab, c.dim, 21);
  const train_example<double> ex = tiny_example(c, 7, 31);
  train_scratch<double> sc;
  auto f = [&] {
    train_metrics m;
    drafter_grads<double>* none = nullptr;
    REQUIRE(train_sequence(W, E, ex, ttt, 0.25, 0.8, none, m, sc).ok());
    double total = 0;
    for (const auto& s : m.steps)
      total += s.loss;
    return total * 0.25;
  };
  drafter_grads<double> G;
  G.zero_like(W);
  train_metrics m;
  REQUIRE(train_sequence(W, E, ex, ttt, 0.25, 0.8, &G, m, sc).ok());
  for (int p = 0; p < p_count; ++p) {
    if (W.w[p].size() == 0)
      continue;
    check_grad(W.w[p], G.g[p], f, param_name(a, p).c_str());
  }
}

} // namespace

TEST_CASE("drafter: EAGLE-3 gradients with training-time test (3 steps) match finite differences") {
  check_drafter(arch::eagle3, 3);
}

TEST_CASE("drafter: EAGLE-3 gradients without training-time test match finite differences") {
  check_drafter(arch::eagle3, 1);
}

TEST_CASE("drafter: MTP-1 gradients match finite differences") {
  check_drafter(arch::mtp1, 1);
  check_drafter(arch::mtp1, 2);
}

TEST_CASE("drafter: the inference cache reproduces the training forward (one forward)") {
  // Entry t of a committed chain equals training step 0 at t; a draft entry after entry t equals
  // training step 1 at t (its own hidden fed back), up to float rounding.
  for (arch a : {arch::eagle3, arch::mtp1}) {
    drafter_config c;
    c.kind = a;
    c.dim = 16;
    c.heads = 4;
    c.kv_heads = 2;
    c.ffn = 24;
    c.vocab = 13;
    c.layers =
        a == arch::eagle3 ? std::vector<std::int32_t>{1, 2, 3} : std::vector<std::int32_t>{4};
    drafter_weights<double> Wd;
    Wd.init(c, 3);
    const md E = random_mat(c.vocab, c.dim, 5);
    const train_example<double> ex = tiny_example(c, 9, 41);
    train_scratch<double> sc;
    train_metrics m;
    drafter_grads<double>* none = nullptr;
    REQUIRE(train_sequence(Wd, E, ex, 2, 1.0, 0.8, none, m, sc).ok());
    const drafter_weights<float> Wf = Wd.cast<float>();
    const mat<float> Ef = E.cast<float>();
    drafter_net net(Wf, Ef, 32);
    const idx L = 9;
    const mat<float> F = ex.features.cast<float>();
    std::vector<specdec::feature_draft_step> rows;
    for (idx t = 0; t < L - 1; ++t)
      rows.push_back(
          {t, ex.tokens[static_cast<std::size_t>(t + 1)], F.data() + t * F.cols(), t - 1, true});
    mat<float> logits(L - 1, c.vocab);
    mat<float> hidden(L - 1, c.dim);
    REQUIRE(net.append({rows.data(), L - 1},
                       {logits.data(), L - 1, c.vocab, c.vocab},
                       {hidden.data(), L - 1, c.dim, c.dim})
                .ok());
    const md& ref0 = sc.steps[0].logits;
    CHECK((logits.cast<double>() - ref0).cwiseAbs().maxCoeff() < 1e-4);
    // A draft after entry t = 3 (step 1 at t = 3): truncate the chain to 4 entries first.
    const idx t = 3;
    REQUIRE(net.truncate(t + 1).ok());
    const specdec::feature_draft_step d{
        t + 1, ex.tokens[static_cast<std::size_t>(t + 2)], hidden.data() + t * c.dim, t, false};
    mat<float> l1(1, c.vocab);
    mat<float> h1(1, c.dim);
    REQUIRE(
        net.append({&d, 1}, {l1.data(), 1, c.vocab, c.vocab}, {h1.data(), 1, c.dim, c.dim}).ok());
    CHECK((l1.row(0).cast<double>() - sc.steps[1].logits.row(t)).cwiseAbs().maxCoeff() < 1e-4);
  }
}
