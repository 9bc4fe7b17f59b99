// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief A DSpark drafter for the llama2.c backend, fitted in closed form at start-up (example
///        code, not part of the library): the parallel block is the model's early-exit hidden
///        state of the anchor mapped by per-position linear maps, the Markov head is a low-rank
///        least-squares fit of what the block gets wrong given the previous token, and the
///        confidence head is a logistic regression on the soft labels of the DSpark paper.
///
/// The backbone (`block_backbone`, a specdec::propose::parallel_backbone) runs the first L layers
/// on the anchor x0 at its position p and takes the final-normed hidden state h0. Position k of the
/// block gets h_k = P_k h0 (P_1 = I) and base logits U_k = classifier(h_k). P_k is the ridge
/// regression of the target's final hidden state at p + k - 1 on h0: the best the block can say
/// about position k without seeing x_1 .. x_{k-1}. The Markov head W1 W2^T (rank r) is the
/// truncated least-squares fit of the residual (target logits - U_k) as a function of the previous
/// token, which is what the sequential head is for. Training data: stories the target samples
/// itself (self-distillation). Real DSpark heads are trained with DeepSpec; this fit exists so the
/// whole round runs end to end on a model small enough for CI.
#include <specdec/propose/semi_ar.hpp>
#include <specdec/propose/semi_ar_heads.hpp>

#include <Eigen/Dense>

#include "llama2c/model.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace llama2c::dspark {

using specdec::index_t;
using specdec::status;
using specdec::token_id;

/// @brief The parallel block of the example drafter: early-exit hidden state of the anchor and
///        per-position linear maps (see the file comment).
class block_backbone {
public:
  /// @brief Binds the model; `maps` holds gamma matrices d x d, row-major, map k-1 for position k.
  block_backbone(model& m, int layers, int gamma, std::vector<float> maps)
      : m_(&m)
      , layers_(layers)
      , gamma_(gamma)
      , maps_(std::move(maps)) {}

  /// @brief Vocabulary size. O(1).
  [[nodiscard]] index_t vocab_size() const noexcept {
    return m_->vocab_size();
  }
  /// @brief Hidden size d. O(1).
  [[nodiscard]] index_t hidden_size() const noexcept {
    return m_->hidden_size();
  }
  /// @brief Largest block. O(1).
  [[nodiscard]] int block_size() const noexcept {
    return gamma_;
  }
  /// @brief The per-position maps (gamma x d x d). O(1).
  [[nodiscard]] const std::vector<float>& maps() const noexcept {
    return maps_;
  }

  /// @brief U [gamma, V] and H [gamma, d] for the anchor r.context.back() at position
  ///        |context| - 1. One early-exit forward of one token plus gamma classifier rows.
  [[nodiscard]] status run_block(const specdec::propose::backbone_request& r,
                                 specdec::matrix_view<float> U,
                                 specdec::matrix_view<float> H) {
    const index_t d = hidden_size();
    const int g = r.gamma;
    if (r.context.size <= 0 || g < 1 || g > gamma_)
      return status{specdec::errc::invalid_argument};
    if (U.rows < g || H.rows < g || U.cols != vocab_size() || H.cols != d)
      return status{specdec::errc::shape_mismatch};
    const token_id x0 = r.context[r.context.size - 1];
    const specdec::score_request req{r.request_id, {&x0, 1}, r.context.size - 1};
    if (const status s = m_->score_layers(req, layers_, {U.data, 1, U.cols, U.row_stride}); !s)
      return s;
    h0_.assign(m_->hidden_row(0), m_->hidden_row(0) + d);
    for (int k = 0; k < g; ++k) {
      float* h = H.data + k * H.row_stride;
      const float* P = maps_.data() + static_cast<std::size_t>(k) * static_cast<std::size_t>(d * d);
      for (index_t i = 0; i < d; ++i) {
        float acc = 0.0f;
        for (index_t j = 0; j < d; ++j)
          acc += P[i * d + j] * h0_[static_cast<std::size_t>(j)];
        h[i] = acc;
      }
    }
    // U row 0 already holds the early-exit logits (P_1 = I); classify the other rows.
    if (g > 1)
      return m_->classify(H.data + H.row_stride,
                          H.row_stride,
                          g - 1,
                          {U.data + U.row_stride, g - 1, U.cols, U.row_stride});
    return status{};
  }

private:
  model* m_;
  int layers_;
  int gamma_;
  std::vector<float> maps_;
  std::vector<float> h0_;
};

/// @brief What fit() produces: the backbone's maps and the heads' weights, row-major float.
struct fitted {
  int gamma = 0;
  index_t vocab = 0, hidden = 0, rank = 0;
  std::vector<float> maps;   ///< [gamma, d, d]
  std::vector<float> w1, w2; ///< [V, r] each
  std::vector<float> conf_w; ///< [d + r]
  float conf_b = 0.0f;       ///< confidence bias
};

/// @brief Settings of the fit.
struct fit_options {
  int layers = 2;         ///< early-exit layers of the block
  int gamma = 5;          ///< block size
  index_t rank = 32;      ///< Markov rank
  int sequences = 6;      ///< self-generated training stories
  index_t length = 200;   ///< tokens per story
  double ridge = 1e-2;    ///< ridge of the per-position maps
  double shrink = 4.0;    ///< pseudo-count shrinking rare previous tokens' residuals to 0
  std::uint64_t seed = 1; ///< sampling seed of the stories
  int newton_steps = 12;  ///< logistic-regression iterations of the confidence head
  int kl_epochs = 30;     ///< gradient steps on the Markov table's distillation loss
  double kl_rate = 4.0;   ///< their step size
};

namespace detail {

using mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using vec = Eigen::VectorXd;

inline void softmax(const float* x, index_t n, std::vector<double>& p) {
  p.resize(static_cast<std::size_t>(n));
  double m = x[0];
  for (index_t i = 1; i < n; ++i)
    m = std::max(m, static_cast<double>(x[i]));
  double s = 0.0;
  for (index_t i = 0; i < n; ++i)
    s += (p[static_cast<std::size_t>(i)] = std::exp(static_cast<double>(x[i]) - m));
  for (double& v : p)
    v /= s;
}

/// Top-r right singular subspace of M (n x n) by subspace iteration: returns Q (n x r,
/// orthonormal).
inline mat top_subspace(const mat& M, index_t r, int iters, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> nd;
  mat Q(M.cols(), r);
  for (Eigen::Index i = 0; i < Q.rows(); ++i)
    for (Eigen::Index j = 0; j < Q.cols(); ++j)
      Q(i, j) = nd(g);
  for (int it = 0; it < iters; ++it) {
    mat Y = M.transpose() * (M * Q);
    Eigen::HouseholderQR<mat> qr(Y);
    Q = qr.householderQ() * mat::Identity(Y.rows(), r);
  }
  return Q;
}

} // namespace detail

/// @brief Samples `o.sequences` stories of `o.length` tokens from BOS with the target at T = 1.
[[nodiscard]] inline status
make_corpus(model& m, const fit_options& o, std::vector<std::vector<token_id>>& out) {
  out.clear();
  const index_t V = m.vocab_size();
  std::vector<float> logits(static_cast<std::size_t>(V));
  std::vector<double> p;
  std::mt19937_64 g(o.seed);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  const index_t len = std::min<index_t>(o.length, m.seq_len() - 1);
  for (int s = 0; s < o.sequences; ++s) {
    m.reset();
    std::vector<token_id> t{1}; // BOS
    for (index_t i = 0; i + 1 < len; ++i) {
      const specdec::score_request r{0, {&t.back(), 1}, i};
      if (const status st = m.score(r, {logits.data(), 1, V, V}); !st)
        return st;
      detail::softmax(logits.data(), V, p);
      double u = u01(g), c = 0.0;
      index_t pick = V - 1;
      for (index_t v = 0; v < V; ++v)
        if ((c += p[static_cast<std::size_t>(v)]) > u) {
          pick = v;
          break;
        }
      t.push_back(static_cast<token_id>(pick));
    }
    out.push_back(std::move(t));
  }
  m.reset();
  return status{};
}

/// @brief Fits the backbone maps, the Markov head and the confidence head on `corpus`.
/// @par Complexity
/// One target and one early-exit forward per story, O(N gamma (d^2 + V d)) for the maps and
/// residuals, O(V^2 r) per subspace iteration, O(N gamma (d + r)^2) per Newton step.
[[nodiscard]] inline status
fit(model& m, const std::vector<std::vector<token_id>>& corpus, const fit_options& o, fitted& f) {
  using detail::mat;
  using detail::vec;
  const index_t V = m.vocab_size(), d = m.hidden_size(), r = std::min<index_t>(o.rank, V);
  const int G = o.gamma;
  f = fitted{};
  f.gamma = G;
  f.vocab = V;
  f.hidden = d;
  f.rank = r;
  // 1. Per story: target logits and final hidden rows, early-exit hidden rows.
  std::vector<mat> He, Ht, Lt;
  std::vector<float> logits;
  for (const std::vector<token_id>& t : corpus) {
    const index_t T = static_cast<index_t>(t.size());
    logits.resize(static_cast<std::size_t>(T * V));
    m.reset();
    const specdec::score_request all{0, {t.data(), T}, 0};
    if (const status s = m.score(all, {logits.data(), T, V, V}); !s)
      return s;
    mat ht(T, d), lt(T, V), he(T, d);
    for (index_t i = 0; i < T; ++i) {
      for (index_t j = 0; j < d; ++j)
        ht(i, j) = m.hidden_row(i)[j];
      for (index_t v = 0; v < V; ++v)
        lt(i, v) = logits[static_cast<std::size_t>(i * V + v)];
    }
    if (const status s = m.score_layers(all, o.layers, {logits.data(), T, V, V}); !s)
      return s;
    for (index_t i = 0; i < T; ++i)
      for (index_t j = 0; j < d; ++j)
        he(i, j) = m.hidden_row(i)[j];
    He.push_back(std::move(he));
    Ht.push_back(std::move(ht));
    Lt.push_back(std::move(lt));
  }
  m.reset();
  // 2. Maps: P_1 = I; P_k = argmin sum |Ht[i+k-1] - P h0(i)|^2 + ridge |P|^2.
  f.maps.assign(static_cast<std::size_t>(G) * static_cast<std::size_t>(d * d), 0.0f);
  std::vector<mat> P(static_cast<std::size_t>(G));
  P[0] = mat::Identity(d, d);
  for (int k = 2; k <= G; ++k) {
    mat XX = mat::Identity(d, d) * o.ridge, YX = mat::Zero(d, d);
    for (std::size_t s = 0; s < He.size(); ++s)
      for (Eigen::Index i = 0; i + k - 1 < He[s].rows(); ++i) {
        const auto x = He[s].row(i).transpose();
        XX += x * x.transpose();
        YX += Ht[s].row(i + k - 1).transpose() * x.transpose();
      }
    P[static_cast<std::size_t>(k - 1)] = XX.llt().solve(YX.transpose()).transpose();
  }
  for (int k = 0; k < G; ++k)
    for (index_t i = 0; i < d; ++i)
      for (index_t j = 0; j < d; ++j)
        f.maps[static_cast<std::size_t>(k * d * d + i * d + j)] =
            static_cast<float>(P[static_cast<std::size_t>(k)](i, j));
  // 3. Base logits of every (story, anchor, k) sample and the residual table by previous token.
  struct sample {
    std::size_t s;
    Eigen::Index i;
    int k;
  };
  std::vector<sample> samples;
  std::vector<std::vector<float>> U; // per sample, V floats
  std::vector<std::vector<float>> Hk;
  mat M = mat::Zero(V, V);
  std::vector<double> count(static_cast<std::size_t>(V), 0.0);
  std::vector<float> hrows, urows;
  for (std::size_t s = 0; s < He.size(); ++s) {
    const Eigen::Index T = He[s].rows();
    for (int k = 1; k <= G; ++k) {
      const Eigen::Index n = T - (k - 1);
      if (n <= 0)
        continue;
      hrows.assign(static_cast<std::size_t>(n * d), 0.0f);
      for (Eigen::Index i = 0; i < n; ++i) {
        const Eigen::VectorXd h = P[static_cast<std::size_t>(k - 1)] * He[s].row(i).transpose();
        for (index_t j = 0; j < d; ++j)
          hrows[static_cast<std::size_t>(i * d + j)] = static_cast<float>(h(j));
      }
      urows.assign(static_cast<std::size_t>(n * V), 0.0f);
      if (const status st = m.classify(hrows.data(),
                                       d,
                                       static_cast<index_t>(n),
                                       {urows.data(), static_cast<index_t>(n), V, V});
          !st)
        return st;
      for (Eigen::Index i = 0; i < n; ++i) {
        const token_id prev = corpus[s][static_cast<std::size_t>(i + k - 1)];
        const float* u = urows.data() + i * V;
        for (index_t v = 0; v < V; ++v)
          M(prev, v) += Lt[s](i + k - 1, v) - static_cast<double>(u[v]);
        count[static_cast<std::size_t>(prev)] += 1.0;
        samples.push_back({s, i, k});
        U.emplace_back(u, u + V);
        Hk.emplace_back(hrows.begin() + i * d, hrows.begin() + (i + 1) * d);
      }
    }
  }
  for (index_t v = 0; v < V; ++v)
    M.row(v) /= count[static_cast<std::size_t>(v)] + o.shrink;
  // Refine the table by gradient descent on the mean KL(p_target || softmax(U + M[prev])), whose
  // gradient in the logits is softmax(U + M[prev]) - p_target (the least-squares start above fits
  // logits, not distributions).
  // The target distribution of every story row, once (the epochs and the confidence labels read
  // it), from the logits rounded to float as the drafter's rows are.
  std::vector<mat> Pt;
  {
    std::vector<float> lt(static_cast<std::size_t>(V));
    std::vector<double> pt;
    for (const mat& l : Lt) {
      mat p(l.rows(), V);
      for (Eigen::Index i = 0; i < l.rows(); ++i) {
        for (index_t v = 0; v < V; ++v)
          lt[static_cast<std::size_t>(v)] = static_cast<float>(l(i, v));
        detail::softmax(lt.data(), V, pt);
        for (index_t v = 0; v < V; ++v)
          p(i, v) = pt[static_cast<std::size_t>(v)];
      }
      Pt.push_back(std::move(p));
    }
  }
  {
    std::vector<double> pd;
    std::vector<float> L(static_cast<std::size_t>(V));
    mat grad(V, V);
    for (int epoch = 0; epoch < o.kl_epochs; ++epoch) {
      grad.setZero();
      for (std::size_t n = 0; n < samples.size(); ++n) {
        const sample& sm = samples[n];
        const token_id prev = corpus[sm.s][static_cast<std::size_t>(sm.i + sm.k - 1)];
        for (index_t v = 0; v < V; ++v)
          L[static_cast<std::size_t>(v)] =
              U[n][static_cast<std::size_t>(v)] + static_cast<float>(M(prev, v));
        detail::softmax(L.data(), V, pd);
        const auto pt = Pt[sm.s].row(sm.i + sm.k - 1);
        for (index_t v = 0; v < V; ++v)
          grad(prev, v) += pd[static_cast<std::size_t>(v)] - pt(v);
      }
      for (index_t v = 0; v < V; ++v)
        M.row(v) -= o.kl_rate * grad.row(v) / (count[static_cast<std::size_t>(v)] + o.shrink);
    }
  }
  // 4. Rank-r Markov head: M ~ (M Q) Q^T, W1 = M Q, W2 = Q.
  const mat Q = detail::top_subspace(M, r, 6, o.seed + 7);
  const mat W1 = M * Q;
  f.w1.resize(static_cast<std::size_t>(V * r));
  f.w2.resize(static_cast<std::size_t>(V * r));
  for (index_t v = 0; v < V; ++v)
    for (index_t j = 0; j < r; ++j) {
      f.w1[static_cast<std::size_t>(v * r + j)] = static_cast<float>(W1(v, j));
      f.w2[static_cast<std::size_t>(v * r + j)] = static_cast<float>(Q(v, j));
    }
  // 5. Confidence head: logistic regression of c* = sum min(p_d, p_t) (T = 1) on [h_k; e].
  const index_t F = d + r;
  const std::size_t N = samples.size();
  mat X(static_cast<Eigen::Index>(N), F + 1);
  vec y(static_cast<Eigen::Index>(N));
  // The head's bias B[prev][v] = W1[prev] . Q[v], once per (prev, v) rather than per sample.
  std::vector<float> B(static_cast<std::size_t>(V * V));
  for (index_t prev = 0; prev < V; ++prev)
    for (index_t v = 0; v < V; ++v) {
      double b = 0.0;
      for (index_t j = 0; j < r; ++j)
        b += W1(prev, j) * Q(v, j);
      B[static_cast<std::size_t>(prev * V + v)] = static_cast<float>(b);
    }
  std::vector<float> L(static_cast<std::size_t>(V));
  std::vector<double> pd;
  for (std::size_t n = 0; n < N; ++n) {
    const sample& sm = samples[n];
    const token_id prev = corpus[sm.s][static_cast<std::size_t>(sm.i + sm.k - 1)];
    for (index_t v = 0; v < V; ++v)
      L[static_cast<std::size_t>(v)] =
          U[n][static_cast<std::size_t>(v)] + B[static_cast<std::size_t>(prev * V + v)];
    detail::softmax(L.data(), V, pd);
    const auto pt = Pt[sm.s].row(sm.i + sm.k - 1);
    double c = 0.0;
    for (std::size_t v = 0; v < pd.size(); ++v)
      c += std::min(pd[v], pt(static_cast<Eigen::Index>(v)));
    y(static_cast<Eigen::Index>(n)) = std::clamp(c, 0.0, 1.0);
    const auto row = static_cast<Eigen::Index>(n);
    for (index_t j = 0; j < d; ++j)
      X(row, j) = Hk[n][static_cast<std::size_t>(j)];
    for (index_t j = 0; j < r; ++j)
      X(row, d + j) = f.w1[static_cast<std::size_t>(prev * r + j)];
    X(row, F) = 1.0;
  }
  vec w = vec::Zero(F + 1);
  for (int it = 0; it < o.newton_steps; ++it) {
    const vec z = X * w;
    vec p(z.size()), s(z.size());
    for (Eigen::Index i = 0; i < z.size(); ++i) {
      p(i) = 1.0 / (1.0 + std::exp(-z(i)));
      s(i) = std::max(p(i) * (1.0 - p(i)), 1e-6);
    }
    const vec grad = X.transpose() * (p - y) + 1e-3 * w;
    mat Hs = X.transpose() * s.asDiagonal() * X;
    Hs.diagonal().array() += 1e-3;
    w -= Hs.llt().solve(grad);
  }
  f.conf_w.resize(static_cast<std::size_t>(F));
  for (index_t j = 0; j < F; ++j)
    f.conf_w[static_cast<std::size_t>(j)] = static_cast<float>(w(j));
  f.conf_b = static_cast<float>(w(F));
  return status{};
}

} // namespace llama2c::dspark
