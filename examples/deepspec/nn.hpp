// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The miniature training core of examples/deepspec: the operations a drafter needs, each
///        a forward and a hand-written backward over Eigen row-major matrices, templated on the
///        scalar (float to train, double for the finite-difference tests).
///
/// Conventions: a batch of rows is a row-major matrix [T x width]; a linear layer stores its
/// weight as PyTorch does, [out x in], and computes Y = X W^T. Every backward ADDS into the
/// gradients it is given (so a tensor used twice sums both uses) and never reads them first.
///
/// Why hand-written backward passes: the Debian packages offer no fitting training library
/// (libtorch 1.13 is an old 130 MB CPU build, and a tape-based autograd would be a dependency
/// the library does not need); the drafters here are a handful of operations, every backward is
/// checked against central finite differences in double precision
/// (tests/deepspec/test_nn_grad.cpp), and the same forward functions serve training and
/// inference (examples/deepspec/drafter.hpp).
///
/// Attention visibility is one general form, shared by every mask the drafters need: query q
/// sees keys [0, prefix[q]) and the listed extra keys (`attention_mask`). The training-time-test
/// mask (causal over the step-0 chunk plus the diagonal of every later chunk), the block mask of
/// the block drafters (context keys before the anchor plus the whole block, non-causal) and the
/// inference mask over a KV cache with a token tree (committed prefix plus the ancestors) are all
/// this form.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace deepspec {

/// Row-major dynamic matrix of scalar T.
template <class T>
using mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Index type of the training code.
using idx = Eigen::Index;

// --- linear -------------------------------------------------------------------------------------

/// @brief Y = X W^T (X [T x in], W [out x in], Y [T x out]). O(T * in * out).
template <class T>
void linear_forward(const mat<T>& X, const mat<T>& W, mat<T>& Y) {
  Y.noalias() = X * W.transpose();
}

/// @brief Backward of linear_forward: dX += dY W, dW += dY^T X (either may be null). O(T*in*out).
template <class T>
void linear_backward(const mat<T>& X, const mat<T>& W, const mat<T>& dY, mat<T>* dX, mat<T>* dW) {
  if (dX != nullptr)
    dX->noalias() += dY * W;
  if (dW != nullptr)
    dW->noalias() += dY.transpose() * X;
}

// --- RMSNorm ------------------------------------------------------------------------------------

/// Default RMSNorm epsilon (llama2.c's 1e-5).
inline constexpr double rms_eps = 1e-5;

/// @brief Y = X * r * w per row, r = 1 / sqrt(mean(x^2) + eps); saves r per row. O(T * d).
template <class T>
void rmsnorm_forward(const mat<T>& X, const mat<T>& w, mat<T>& Y, std::vector<T>& r) {
  const idx n = X.rows();
  const idx d = X.cols();
  Y.resize(n, d);
  r.resize(static_cast<std::size_t>(n));
  for (idx t = 0; t < n; ++t) {
    T ss = 0;
    for (idx i = 0; i < d; ++i)
      ss += X(t, i) * X(t, i);
    const T rt = T(1) / std::sqrt(ss / static_cast<T>(d) + static_cast<T>(rms_eps));
    r[static_cast<std::size_t>(t)] = rt;
    for (idx i = 0; i < d; ++i)
      Y(t, i) = X(t, i) * rt * w(0, i);
  }
}

/// @brief Backward of rmsnorm_forward: dX += ..., dw += ... (dw may be null: a frozen norm).
///        O(T * d).
template <class T>
void rmsnorm_backward(const mat<T>& X,
                      const mat<T>& w,
                      const std::vector<T>& r,
                      const mat<T>& dY,
                      mat<T>& dX,
                      mat<T>* dw) {
  const idx n = X.rows();
  const idx d = X.cols();
  for (idx t = 0; t < n; ++t) {
    const T rt = r[static_cast<std::size_t>(t)];
    T dot = 0; // sum_i dy_i w_i x_i
    for (idx i = 0; i < d; ++i)
      dot += dY(t, i) * w(0, i) * X(t, i);
    const T c = rt * rt * rt * dot / static_cast<T>(d);
    for (idx i = 0; i < d; ++i) {
      dX(t, i) += rt * w(0, i) * dY(t, i) - X(t, i) * c;
      if (dw != nullptr)
        (*dw)(0, i) += dY(t, i) * X(t, i) * rt;
    }
  }
}

// --- RoPE ---------------------------------------------------------------------------------------

/// @brief Rotates every head of X [T x heads*hd] in place at the positions given (llama2.c's
///        convention: pair (2i, 2i+1) of a head turns by pos * theta^(-2i/hd)); `inverse` turns
///        the other way, which is the backward. Angles are computed in double. O(T * width).
template <class T>
void rope_apply(mat<T>& X,
                const std::vector<std::int64_t>& pos,
                int hd,
                bool inverse = false,
                double theta = 10000.0) {
  const idx n = X.rows();
  const idx w = X.cols();
  // The rotation of pair i (columns c with c % hd = i, i even) at one position is the same for
  // every head: computed once per row, in double, as before the hoisting (same bits).
  std::vector<double> freq(static_cast<std::size_t>(hd / 2));
  for (int i = 0; i < hd; i += 2)
    freq[static_cast<std::size_t>(i / 2)] = 1.0 / std::pow(theta, static_cast<double>(i) / hd);
  std::vector<T> cs(freq.size()), sn(freq.size());
  for (idx t = 0; t < n; ++t) {
    const double p = static_cast<double>(pos[static_cast<std::size_t>(t)]);
    for (std::size_t i = 0; i < freq.size(); ++i) {
      const double a = p * freq[i];
      cs[i] = static_cast<T>(std::cos(a));
      sn[i] = static_cast<T>(inverse ? -std::sin(a) : std::sin(a));
    }
    for (idx c = 0; c < w; c += 2) {
      const std::size_t i = static_cast<std::size_t>(c % hd) / 2;
      const T x0 = X(t, c);
      const T x1 = X(t, c + 1);
      X(t, c) = x0 * cs[i] - x1 * sn[i];
      X(t, c + 1) = x0 * sn[i] + x1 * cs[i];
    }
  }
}

// --- attention ----------------------------------------------------------------------------------

/// @brief Which keys each query sees: keys [0, prefix[q]) then extras[extra_begin[q] ..
///        extra_begin[q + 1]) (ascending, none below prefix[q]).
struct attention_mask {
  std::vector<idx> prefix;      ///< [Tq]
  std::vector<idx> extra_begin; ///< [Tq + 1]
  std::vector<idx> extras;      ///< key indices

  /// Number of queries.
  [[nodiscard]] idx queries() const noexcept {
    return static_cast<idx>(prefix.size());
  }
  /// Keys visible to query q.
  [[nodiscard]] idx visible(idx q) const noexcept {
    return prefix[static_cast<std::size_t>(q)] + extra_begin[static_cast<std::size_t>(q) + 1]
           - extra_begin[static_cast<std::size_t>(q)];
  }
  /// The j-th visible key of query q.
  [[nodiscard]] idx key(idx q, idx j) const noexcept {
    const idx p = prefix[static_cast<std::size_t>(q)];
    return j < p
               ? j
               : extras[static_cast<std::size_t>(extra_begin[static_cast<std::size_t>(q)] + j - p)];
  }
  /// Appends a query that sees keys [0, p) and nothing else.
  void add_causal(idx p) {
    if (extra_begin.empty())
      extra_begin.push_back(0);
    prefix.push_back(p);
    extra_begin.push_back(static_cast<idx>(extras.size()));
  }
  /// Appends a query that sees keys [0, p) and the given extras.
  template <class It>
  void add(idx p, It first, It last) {
    if (extra_begin.empty())
      extra_begin.push_back(0);
    prefix.push_back(p);
    extras.insert(extras.end(), first, last);
    extra_begin.push_back(static_cast<idx>(extras.size()));
  }
};

/// Saved state of one attention forward (the softmax rows, for the backward).
template <class T>
struct attention_cache {
  std::vector<T> probs;    ///< per query, per head, per visible key
  std::vector<idx> offset; ///< start of query q's block in probs ([Tq + 1])
};

/// @brief Multi-head attention with grouped keys: Q [Tq x H*hd], K and V [Tk x G*hd] (G key
///        heads, H a multiple of G; head h reads key head h / (H / G)), O [Tq x H*hd], scaled by
///        1/sqrt(hd), visibility from `mask`. A query that sees no key gets a zero row.
///        O(sum over queries of visible keys * H * hd).
template <class T>
void attention_forward(const mat<T>& Q,
                       const mat<T>& K,
                       const mat<T>& V,
                       int H,
                       int G,
                       int hd,
                       const attention_mask& mask,
                       mat<T>& O,
                       attention_cache<T>& cache) {
  const idx tq = Q.rows();
  O.setZero(tq, static_cast<idx>(H) * hd);
  cache.offset.assign(static_cast<std::size_t>(tq) + 1, 0);
  for (idx q = 0; q < tq; ++q)
    cache.offset[static_cast<std::size_t>(q) + 1] =
        cache.offset[static_cast<std::size_t>(q)] + mask.visible(q) * H;
  cache.probs.assign(static_cast<std::size_t>(cache.offset.back()), T(0));
  const T scale = T(1) / std::sqrt(static_cast<T>(hd));
  const int group = H / G;
  for (idx q = 0; q < tq; ++q) {
    const idx n = mask.visible(q);
    if (n == 0)
      continue;
    for (int h = 0; h < H; ++h) {
      const int g = h / group;
      T* p =
          cache.probs.data() + cache.offset[static_cast<std::size_t>(q)] + static_cast<idx>(h) * n;
      // Rows through raw pointers (row-major): the same operations as Q(q, c) * K(k, c), without
      // an accessor call per coefficient in unoptimised and sanitized builds.
      const T* qr = Q.data() + q * Q.cols() + static_cast<idx>(h) * hd;
      T* orow = O.data() + q * O.cols() + static_cast<idx>(h) * hd;
      T mx = -std::numeric_limits<T>::infinity();
      for (idx j = 0; j < n; ++j) {
        const T* kr = K.data() + mask.key(q, j) * K.cols() + static_cast<idx>(g) * hd;
        T s = 0;
        for (int c = 0; c < hd; ++c)
          s += qr[c] * kr[c];
        p[j] = s * scale;
        mx = std::max(mx, p[j]);
      }
      T sum = 0;
      for (idx j = 0; j < n; ++j) {
        p[j] = std::exp(p[j] - mx);
        sum += p[j];
      }
      const T inv = T(1) / sum;
      for (idx j = 0; j < n; ++j) {
        p[j] *= inv;
        const T* vr = V.data() + mask.key(q, j) * V.cols() + static_cast<idx>(g) * hd;
        for (int c = 0; c < hd; ++c)
          orow[c] += p[j] * vr[c];
      }
    }
  }
}

/// @brief Backward of attention_forward: dQ, dK, dV += ... O(as the forward).
template <class T>
void attention_backward(const mat<T>& Q,
                        const mat<T>& K,
                        const mat<T>& V,
                        int H,
                        int G,
                        int hd,
                        const attention_mask& mask,
                        const attention_cache<T>& cache,
                        const mat<T>& dO,
                        mat<T>& dQ,
                        mat<T>& dK,
                        mat<T>& dV) {
  const idx tq = Q.rows();
  const T scale = T(1) / std::sqrt(static_cast<T>(hd));
  const int group = H / G;
  std::vector<T> dp;
  for (idx q = 0; q < tq; ++q) {
    const idx n = mask.visible(q);
    if (n == 0)
      continue;
    dp.resize(static_cast<std::size_t>(n));
    for (int h = 0; h < H; ++h) {
      const int g = h / group;
      const T* p =
          cache.probs.data() + cache.offset[static_cast<std::size_t>(q)] + static_cast<idx>(h) * n;
      const idx qo = q * Q.cols() + static_cast<idx>(h) * hd; // Q, dQ and dO are [Tq x H*hd]
      const T* dor = dO.data() + qo;
      const T* qr = Q.data() + qo;
      T* dqr = dQ.data() + qo;
      T dot = 0; // sum_j p_j dp_j
      for (idx j = 0; j < n; ++j) {
        const idx ko = mask.key(q, j) * V.cols() + static_cast<idx>(g) * hd; // K, V, dK, dV alike
        const T* vr = V.data() + ko;
        T* dvr = dV.data() + ko;
        T d = 0;
        for (int c = 0; c < hd; ++c) {
          d += dor[c] * vr[c];
          dvr[c] += p[j] * dor[c];
        }
        dp[static_cast<std::size_t>(j)] = d;
        dot += p[j] * d;
      }
      for (idx j = 0; j < n; ++j) {
        const idx ko = mask.key(q, j) * K.cols() + static_cast<idx>(g) * hd;
        const T* kr = K.data() + ko;
        T* dkr = dK.data() + ko;
        const T ds = p[j] * (dp[static_cast<std::size_t>(j)] - dot) * scale;
        for (int c = 0; c < hd; ++c) {
          dqr[c] += ds * kr[c];
          dkr[c] += ds * qr[c];
        }
      }
    }
  }
}

// --- SwiGLU -------------------------------------------------------------------------------------

/// @brief A = silu(G) * U elementwise (the SwiGLU gate; silu(g) = g * sigmoid(g)). O(size).
template <class T>
void silu_mul_forward(const mat<T>& G, const mat<T>& U, mat<T>& A) {
  A.resize(G.rows(), G.cols());
  for (idx i = 0; i < G.size(); ++i) {
    const T g = G.data()[i];
    const T s = T(1) / (T(1) + std::exp(-g));
    A.data()[i] = g * s * U.data()[i];
  }
}

/// @brief Backward of silu_mul_forward: dG, dU += ... O(size).
template <class T>
void silu_mul_backward(const mat<T>& G, const mat<T>& U, const mat<T>& dA, mat<T>& dG, mat<T>& dU) {
  for (idx i = 0; i < G.size(); ++i) {
    const T g = G.data()[i];
    const T s = T(1) / (T(1) + std::exp(-g));
    const T silu = g * s;
    dU.data()[i] += dA.data()[i] * silu;
    dG.data()[i] += dA.data()[i] * U.data()[i] * s * (T(1) + g * (T(1) - s));
  }
}

// --- embedding (frozen) -------------------------------------------------------------------------

/// @brief Rows of a frozen embedding table E [V x d] for the given tokens (no gradient: the
///        drafters share the target's embedding and classifier frozen). O(T * d).
template <class T>
void embed_rows(const mat<T>& E, const std::vector<std::int32_t>& tokens, mat<T>& out) {
  out.resize(static_cast<idx>(tokens.size()), E.cols());
  for (std::size_t t = 0; t < tokens.size(); ++t)
    out.row(static_cast<idx>(t)) = E.row(tokens[t]);
}

/// @brief Copies columns [c0, c0 + w) of A into B ([rows x w]). O(rows * w).
template <class T>
void take_cols(const mat<T>& A, idx c0, idx w, mat<T>& B) {
  B = A.middleCols(c0, w);
}

/// @brief [A | B]: columns of A then of B (same rows). O(size).
template <class T>
void concat_cols(const mat<T>& A, const mat<T>& B, mat<T>& C) {
  C.resize(A.rows(), A.cols() + B.cols());
  C.leftCols(A.cols()) = A;
  C.rightCols(B.cols()) = B;
}

} // namespace deepspec
