// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The block drafters of examples/deepspec, DFlash and DSpark, as DeepSpec implements
///        them (anchors/deepspec-training.md §2.3-2.4): one forward shared by training (many
///        anchored blocks of a sequence at once) and inference (a parallel_backbone fed by the
///        target's features, run by the library's semi_ar_drafter).
///
/// Backbone. The context is ctx = hidden_norm(fc(target features of the m layers)), computed once
/// per position and handed to every layer. A block anchored at position a has the inputs
/// [emb(x_a), emb(MASK) x (gamma - 1)] at RoPE positions a .. a + gamma - 1. Each of the n draft
/// layers is a llama-style block (input_layernorm -> attention -> o_proj residual,
/// post_attention_layernorm -> SwiGLU residual) whose keys and values are
/// [k/v_proj(ctx) ; k/v_proj(block)] with the layer's own projections (RoPE on both key parts,
/// context at its own positions); queries come from the block only. A block query sees the
/// context keys of positions < a (not the anchor's own features, which the target has not
/// computed yet at inference) and every key of its own block (non-causal). h = norm(x) after the
/// last layer, U = lm_head(h) with the target's frozen classifier. Slot k (0-based) predicts
/// x_{a+k+1}; the anchor is the first prediction slot (DeepSpec's DFlash, not upstream's).
///
/// Heads (DSpark; DFlash has none). e_k = markov_w1[prev_k] with prev = [x_a, x_{a+1}, ...]
/// (teacher forcing in training, the block's own samples at inference), B_k = markov_w2 coef_k,
/// L_k = U_k + B_k; coef is e (markov), sigmoid(gate_proj [h; e]) * e (gated), or tanh(o) of the
/// rnn cell over [s; e; h] (s_0 = 0 per block): exactly the library's head_coefficient, so the
/// trained weights run unchanged in propose::sample_block. Confidence z_k = proj . [h_k; e_k] + b
/// ([h_k] alone without a Markov head).
///
/// Loss (DeepSpec's dspark/loss.py): per slot weight w = valid * exp(-k / 4), valid a cumulative
/// product along the block (label inside the sequence and generated); alpha_ce * CE(L_k, x*) +
/// alpha_l1 * ||softmax(L_k) - p_t||_1 + alpha_conf * BCE(z_k, c*_k) with c* = 1 - TV computed
/// from L_k and detached. DFlash: (1, 0, 0); DSpark: (0.1, 0.9, 1.0).
///
/// Weights are named as DeepSpec saves them (`fc.weight`, `hidden_norm.weight`,
/// `layers.{i}.self_attn.q_proj.weight`, ..., `markov_head.markov_w1.weight`,
/// `confidence_head.proj.weight`).

#include <specdec/core/math.hpp>
#include <specdec/core/simd.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/propose/concepts.hpp>
#include <specdec/propose/semi_ar.hpp>
#include <specdec/propose/semi_ar_heads.hpp>
#include <specdec/train/loss.hpp>

#include "deepspec/drafter.hpp"
#include "deepspec/nn.hpp"
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace deepspec {

/// The sequential head of a block drafter (none: DFlash).
enum class block_head { none, markov, gated, rnn };

/// The name of a head ("none", "markov", "gated", "rnn").
inline const char* block_head_name(block_head h) {
  switch (h) {
  case block_head::markov:
    return "markov";
  case block_head::gated:
    return "gated";
  case block_head::rnn:
    return "rnn";
  default:
    return "none";
  }
}

/// @brief Shape of a block drafter.
struct block_config {
  int dim = 64;                              ///< width d (the target's)
  int heads = 8;                             ///< query heads
  int kv_heads = 4;                          ///< key/value heads
  int ffn = 172;                             ///< SwiGLU width
  int vocab = 512;                           ///< vocabulary (the target's)
  int n_layers = 2;                          ///< draft layers
  int block = 7;                             ///< slots per block (gamma at training)
  std::int32_t mask_token = 0;               ///< MASK id (0: <unk>, never a label)
  std::vector<std::int32_t> layers{1, 3, 4}; ///< target feature layers
  block_head head = block_head::none;        ///< sequential head
  int rank = 0;                              ///< its rank r (0 with none)
  bool confidence = false;                   ///< a confidence head

  /// Width of one attention head.
  [[nodiscard]] int head_dim() const noexcept {
    return dim / heads;
  }
  /// Columns of a target feature row.
  [[nodiscard]] idx feature_cols() const noexcept {
    return static_cast<idx>(layers.size()) * dim;
  }
  /// Rank actually used (0 without a head).
  [[nodiscard]] int r() const noexcept {
    return head == block_head::none ? 0 : rank;
  }
  /// @brief Checks the shape. @return invalid_argument for a bad size, head/rank pair or layer
  [[nodiscard]] specdec::status validate() const {
    if (dim <= 0 || heads <= 0 || kv_heads <= 0 || ffn <= 0 || vocab <= 0 || dim % heads != 0
        || heads % kv_heads != 0 || head_dim() % 2 != 0 || layers.empty() || n_layers < 1
        || block < 1 || mask_token < 0 || mask_token >= vocab
        || (head == block_head::none) != (rank == 0) || rank < 0)
      return specdec::status{specdec::errc::invalid_argument};
    for (std::int32_t l : layers)
      if (l < 0)
        return specdec::status{specdec::errc::invalid_argument};
    return specdec::status{};
  }
};

/// Global parameter slots; layer l's slots follow at bg_count + l * bl_count.
enum block_global : int {
  bg_fc,          ///< fc [d, m*d]
  bg_hidden_norm, ///< hidden_norm [d]
  bg_norm,        ///< norm [d]
  bg_w1,          ///< markov_head.markov_w1 [V, r]
  bg_w2,          ///< markov_head.markov_w2 [V, r]
  bg_proj_w,      ///< gate_proj [r, d+r] / joint_proj [3r, 2r+d]
  bg_proj_b,      ///< its bias [1, rows]
  bg_conf_w,      ///< confidence_head.proj.weight [1, d (+ r)]
  bg_conf_b,      ///< confidence_head.proj.bias [1, 1]
  bg_count
};

/// Per-layer parameter slots.
enum block_layer : int {
  bl_in_ln,   ///< input_layernorm [d]
  bl_wq,      ///< q_proj [H*hd, d]
  bl_wk,      ///< k_proj [G*hd, d]
  bl_wv,      ///< v_proj [G*hd, d]
  bl_wo,      ///< o_proj [d, H*hd]
  bl_post_ln, ///< post_attention_layernorm [d]
  bl_gate,    ///< mlp.gate_proj [ffn, d]
  bl_up,      ///< mlp.up_proj [ffn, d]
  bl_down,    ///< mlp.down_proj [d, ffn]
  bl_count
};

/// @brief The trainable weights of a block drafter (slot vector; see block_global/block_layer).
template <class T>
struct block_weights {
  block_config cfg;      ///< shape
  std::vector<mat<T>> w; ///< all slots

  /// Slot of layer l's parameter j.
  [[nodiscard]] static int slot(int l, int j) noexcept {
    return bg_count + l * bl_count + j;
  }
  /// Number of slots.
  [[nodiscard]] int slots() const noexcept {
    return bg_count + cfg.n_layers * bl_count;
  }
  /// True for an RMSNorm weight slot (initialised to 1, no weight decay).
  [[nodiscard]] static bool norm_slot(int p) noexcept {
    if (p < bg_count)
      return p == bg_hidden_norm || p == bg_norm;
    const int j = (p - bg_count) % bl_count;
    return j == bl_in_ln || j == bl_post_ln;
  }
  /// DeepSpec's checkpoint name of slot p.
  [[nodiscard]] std::string name(int p) const {
    static const char* const g[bg_count] = {"fc.weight",
                                            "hidden_norm.weight",
                                            "norm.weight",
                                            "markov_head.markov_w1.weight",
                                            "markov_head.markov_w2.weight",
                                            "",
                                            "",
                                            "confidence_head.proj.weight",
                                            "confidence_head.proj.bias"};
    static const char* const l[bl_count] = {"input_layernorm.weight",
                                            "self_attn.q_proj.weight",
                                            "self_attn.k_proj.weight",
                                            "self_attn.v_proj.weight",
                                            "self_attn.o_proj.weight",
                                            "post_attention_layernorm.weight",
                                            "mlp.gate_proj.weight",
                                            "mlp.up_proj.weight",
                                            "mlp.down_proj.weight"};
    if (p == bg_proj_w || p == bg_proj_b) {
      const std::string base =
          cfg.head == block_head::gated ? "markov_head.gate_proj." : "markov_head.joint_proj.";
      return base + (p == bg_proj_w ? "weight" : "bias");
    }
    if (p < bg_count)
      return g[p];
    const int li = (p - bg_count) / bl_count;
    return "layers." + std::to_string(li) + "." + l[(p - bg_count) % bl_count];
  }
  /// @brief The [rows, cols] of slot p ({0, 0}: absent).
  [[nodiscard]] std::array<idx, 2> shape(int p) const {
    const block_config& c = cfg;
    const idx d = c.dim;
    const idx r = c.r();
    const idx qd = static_cast<idx>(c.heads) * c.head_dim();
    const idx kd = static_cast<idx>(c.kv_heads) * c.head_dim();
    if (p < bg_count) {
      switch (p) {
      case bg_fc:
        return {d, c.feature_cols()};
      case bg_hidden_norm:
      case bg_norm:
        return {1, d};
      case bg_w1:
      case bg_w2:
        return r > 0 ? std::array<idx, 2>{c.vocab, r} : std::array<idx, 2>{0, 0};
      case bg_proj_w:
        return c.head == block_head::gated ? std::array<idx, 2>{r, d + r}
               : c.head == block_head::rnn ? std::array<idx, 2>{3 * r, 2 * r + d}
                                           : std::array<idx, 2>{0, 0};
      case bg_proj_b:
        return c.head == block_head::gated ? std::array<idx, 2>{1, r}
               : c.head == block_head::rnn ? std::array<idx, 2>{1, 3 * r}
                                           : std::array<idx, 2>{0, 0};
      case bg_conf_w:
        return c.confidence ? std::array<idx, 2>{1, d + r} : std::array<idx, 2>{0, 0};
      case bg_conf_b:
        return c.confidence ? std::array<idx, 2>{1, 1} : std::array<idx, 2>{0, 0};
      default:
        return {0, 0};
      }
    }
    switch ((p - bg_count) % bl_count) {
    case bl_in_ln:
    case bl_post_ln:
      return {1, d};
    case bl_wq:
      return {qd, d};
    case bl_wk:
    case bl_wv:
      return {kd, d};
    case bl_wo:
      return {d, qd};
    case bl_gate:
    case bl_up:
      return {c.ffn, d};
    default:
      return {d, c.ffn};
    }
  }
  /// @brief Sizes every slot for `c` and draws the initial weights from `seed`: norms 1, the
  ///        rest N(0, 0.02^2), biases 0. O(parameters).
  void init(const block_config& c, std::uint64_t seed) {
    cfg = c;
    w.assign(static_cast<std::size_t>(slots()), mat<T>{});
    std::uint64_t s = seed * 0x2545f4914f6cdd1dull + 0xb10cull;
    for (int p = 0; p < slots(); ++p) {
      const auto sh = shape(p);
      w[static_cast<std::size_t>(p)].resize(sh[0], sh[1]);
      for (idx i = 0; i < w[static_cast<std::size_t>(p)].size(); ++i)
        w[static_cast<std::size_t>(p)].data()[i] = norm_slot(p) ? T(1)
                                                   : (p == bg_proj_b || p == bg_conf_b)
                                                       ? T(0)
                                                       : static_cast<T>(0.02 * normal01(s));
    }
  }
  /// Slot p.
  [[nodiscard]] const mat<T>& operator[](int p) const {
    return w[static_cast<std::size_t>(p)];
  }
  /// Number of trainable weights.
  [[nodiscard]] std::size_t count() const {
    std::size_t n = 0;
    for (const auto& m : w)
      n += static_cast<std::size_t>(m.size());
    return n;
  }
  /// A copy in another scalar type.
  template <class U>
  [[nodiscard]] block_weights<U> cast() const {
    block_weights<U> o;
    o.cfg = cfg;
    for (const auto& m : w)
      o.w.push_back(m.template cast<U>());
    return o;
  }
};

/// @brief Gradients of a block drafter, slot for slot.
template <class T>
struct block_grads {
  std::vector<mat<T>> g; ///< one per slot
  /// Zero gradients shaped like `w`.
  void zero_like(const block_weights<T>& w) {
    g.resize(w.w.size());
    for (std::size_t p = 0; p < w.w.size(); ++p)
      g[p].setZero(w.w[p].rows(), w.w[p].cols());
  }
  /// Slot p.
  mat<T>& operator[](int p) {
    return g[static_cast<std::size_t>(p)];
  }
};

/// @brief The library's sequential head holding the trained weights (semi_ar_drafter runs it).
inline specdec::propose::sequential_head<float> to_sequential_head(const block_weights<float>& W) {
  using specdec::propose::head_kind;
  specdec::propose::sequential_head<float> h;
  const block_config& c = W.cfg;
  h.kind = c.head == block_head::markov  ? head_kind::markov
           : c.head == block_head::gated ? head_kind::gated
           : c.head == block_head::rnn   ? head_kind::rnn
                                         : head_kind::none;
  h.vocab = c.vocab;
  h.rank = c.r();
  h.hidden = c.dim;
  auto flat = [](const mat<float>& m) { return std::vector<float>(m.data(), m.data() + m.size()); };
  if (c.r() > 0) {
    h.w1 = flat(W[bg_w1]);
    h.w2 = flat(W[bg_w2]);
    h.proj_w = flat(W[bg_proj_w]);
    h.proj_b = flat(W[bg_proj_b]);
  }
  return h;
}

/// @brief The library's confidence head holding the trained weights (nullopt without one).
inline std::optional<specdec::propose::confidence_head<float>>
to_confidence_head(const block_weights<float>& W) {
  if (!W.cfg.confidence)
    return std::nullopt;
  specdec::propose::confidence_head<float> c;
  c.w.assign(W[bg_conf_w].data(), W[bg_conf_w].data() + W[bg_conf_w].size());
  c.bias = W[bg_conf_b](0, 0);
  c.hidden = W.cfg.dim;
  c.rank = W.cfg.r();
  c.with_markov = W.cfg.r() > 0;
  return c;
}

// --- the layers ----------------------------------------------------------------------------------

/// Saved state of one draft layer over the block rows.
template <class T>
struct block_layer_state {
  mat<T> x, n, q, kb, vb, kc, vc, K, V, att, o, r, mn, g, u, a, f; ///< see block_layer_forward
  std::vector<T> rn, rm;                                           ///< RMS factors
  attention_cache<T> ac;                                           ///< softmax rows
};

/// @brief Context keys/values of layer l: kc = rope(ctx Wk^T) at `pos`, vc = ctx Wv^T.
template <class T>
void block_context_kv(const block_weights<T>& W,
                      int l,
                      const mat<T>& ctx,
                      const std::vector<std::int64_t>& pos,
                      mat<T>& kc,
                      mat<T>& vc) {
  linear_forward(ctx, W[block_weights<T>::slot(l, bl_wk)], kc);
  linear_forward(ctx, W[block_weights<T>::slot(l, bl_wv)], vc);
  rope_apply(kc, pos, W.cfg.head_dim());
}

/// @brief The tail of draft layer l after attention, shared by the training and the inference
///        forward: output projection of s.att, residual onto x, post-attention RMSNorm (factors
///        into `rms`), SwiGLU FFN, residual; fills s.o, s.r, s.mn, s.g, s.u, s.a, s.f and writes
///        `out` last (it may be x). `lin(X, W, Y)` computes Y = X W^T. O(rows * (d^2 + d * ffn)).
template <class T, class S, class Lin>
void block_layer_ffn(const block_weights<T>& W,
                     int l,
                     const mat<T>& x,
                     S& s,
                     std::vector<T>& rms,
                     const Lin& lin,
                     mat<T>& out) {
  using BW = block_weights<T>;
  lin(s.att, W[BW::slot(l, bl_wo)], s.o);
  s.r = x + s.o;
  rmsnorm_forward(s.r, W[BW::slot(l, bl_post_ln)], s.mn, rms);
  lin(s.mn, W[BW::slot(l, bl_gate)], s.g);
  lin(s.mn, W[BW::slot(l, bl_up)], s.u);
  silu_mul_forward(s.g, s.u, s.a);
  lin(s.a, W[BW::slot(l, bl_down)], s.f);
  out = s.r + s.f;
}

/// @brief One draft layer over block rows X (positions `pos`) with `nctx` context keys kc / vc
///        (already roped) in front of the block's own; visibility from `mask` (keys: context
///        rows, then block rows). Keeps what the backward needs in `s`; returns the output in
///        s.x of the next layer via `out`. O(rows * layer + attention).
template <class T>
void block_layer_forward(const block_weights<T>& W,
                         int l,
                         const mat<T>& X,
                         const std::vector<std::int64_t>& pos,
                         const mat<T>& kc,
                         const mat<T>& vc,
                         const attention_mask& mask,
                         block_layer_state<T>& s,
                         mat<T>& out) {
  using BW = block_weights<T>;
  const block_config& c = W.cfg;
  s.x = X;
  rmsnorm_forward(s.x, W[BW::slot(l, bl_in_ln)], s.n, s.rn);
  linear_forward(s.n, W[BW::slot(l, bl_wq)], s.q);
  linear_forward(s.n, W[BW::slot(l, bl_wk)], s.kb);
  linear_forward(s.n, W[BW::slot(l, bl_wv)], s.vb);
  rope_apply(s.q, pos, c.head_dim());
  rope_apply(s.kb, pos, c.head_dim());
  s.K.resize(kc.rows() + s.kb.rows(), s.kb.cols());
  s.V.resize(vc.rows() + s.vb.rows(), s.vb.cols());
  s.K.topRows(kc.rows()) = kc;
  s.K.bottomRows(s.kb.rows()) = s.kb;
  s.V.topRows(vc.rows()) = vc;
  s.V.bottomRows(s.vb.rows()) = s.vb;
  attention_forward(s.q, s.K, s.V, c.heads, c.kv_heads, c.head_dim(), mask, s.att, s.ac);
  block_layer_ffn(
      W,
      l,
      s.x,
      s,
      s.rm,
      [](const mat<T>& x, const mat<T>& w, mat<T>& y) { linear_forward(x, w, y); },
      out);
}

/// @brief Scratch of block_layer_infer (kept by the inference backbone across calls).
struct block_infer_scratch {
  mat<float> n, q, kb, vb, att, o, r, mn, g, u, a, f; ///< as in block_layer_state
  std::vector<float> rn, p;                           ///< RMS factors; one head's scores
};

/// @brief p[j] = exp(p[j] - mx) for j < n (vectors where the host has them, the same bits as
///        specdec::detail::exp_f); returns their sum in index order. O(n).
inline float exp_shifted_sum(float* p, idx n, float mx) {
  idx j = 0;
#if SPECDEC_HOST_SIMD
  namespace sd = specdec::detail::simd;
  for (; j + sd::width <= n; j += sd::width)
    sd::store(p + j, sd::exp_v(sd::load(p + j) - mx));
#endif
  for (; j < n; ++j)
    p[j] = specdec::detail::exp_f(p[j] - mx);
  float sum = 0.0f;
  for (j = 0; j < n; ++j)
    sum += p[j];
  return sum;
}

/// @brief Y = X W^T for the few rows of a block: coefficient-wise (each output one dot product),
///        which for 1-8 rows beats a packed matrix product. O(rows * in * out).
inline void linear_rows(const mat<float>& X, const mat<float>& W, mat<float>& Y) {
  Y.noalias() = X.lazyProduct(W.transpose());
}

/// @brief Inference form of block_layer_forward for one block: every block row sees the context
///        keys [0, nctx) of `kc` / `vc` (rows already roped; read in place, not copied) and all the
///        block's own keys (the block is not causal). Nothing is kept for a backward. The same
///        operations as the training forward except for rounding: coefficient-wise products,
///        exp_f for the softmax, the value sums weighted first and divided once.
/// @param[in,out] X the block rows [g x d], replaced by the layer's output
/// @par Complexity
/// O(g * layer + g * H * (nctx + g) * hd).
inline void block_layer_infer(const block_weights<float>& W,
                              int l,
                              mat<float>& X,
                              const std::vector<std::int64_t>& pos,
                              const mat<float>& kc,
                              const mat<float>& vc,
                              idx nctx,
                              block_infer_scratch& s) {
  using BW = block_weights<float>;
  const block_config& c = W.cfg;
  const int hd = c.head_dim();
  const int group = c.heads / c.kv_heads;
  const idx g = X.rows();
  rmsnorm_forward(X, W[BW::slot(l, bl_in_ln)], s.n, s.rn);
  linear_rows(s.n, W[BW::slot(l, bl_wq)], s.q);
  linear_rows(s.n, W[BW::slot(l, bl_wk)], s.kb);
  linear_rows(s.n, W[BW::slot(l, bl_wv)], s.vb);
  rope_apply(s.q, pos, hd);
  rope_apply(s.kb, pos, hd);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const idx keys = nctx + g;
  s.att.setZero(g, static_cast<idx>(c.heads) * hd);
  s.p.resize(static_cast<std::size_t>(keys));
  for (idx t = 0; t < g; ++t)
    for (int h = 0; h < c.heads; ++h) {
      const idx kcol = static_cast<idx>(h / group) * hd;
      const float* qv = s.q.data() + t * s.q.cols() + static_cast<idx>(h) * hd;
      float mx = -std::numeric_limits<float>::infinity();
      for (idx j = 0; j < keys; ++j) {
        const float* kv = j < nctx ? kc.data() + j * kc.cols() + kcol
                                   : s.kb.data() + (j - nctx) * s.kb.cols() + kcol;
        float dot = 0.0f;
        for (int e = 0; e < hd; ++e)
          dot += qv[e] * kv[e];
        s.p[static_cast<std::size_t>(j)] = dot * scale;
        mx = std::max(mx, s.p[static_cast<std::size_t>(j)]);
      }
      const float sum = exp_shifted_sum(s.p.data(), keys, mx);
      float* out = s.att.data() + t * s.att.cols() + static_cast<idx>(h) * hd;
      for (idx j = 0; j < keys; ++j) {
        const float* vv = j < nctx ? vc.data() + j * vc.cols() + kcol
                                   : s.vb.data() + (j - nctx) * s.vb.cols() + kcol;
        const float pj = s.p[static_cast<std::size_t>(j)];
        for (int e = 0; e < hd; ++e)
          out[e] += pj * vv[e];
      }
      const float inv = 1.0f / sum;
      for (int e = 0; e < hd; ++e)
        out[e] *= inv;
    }
  block_layer_ffn(W, l, X, s, s.rn, linear_rows, X);
}

/// @brief Backward of block_layer_forward: from dout to dX (returned in dX, overwritten) and the
///        gradients of the context keys/values dkc, dvc (added; roped space for dkc).
template <class T>
void block_layer_backward(const block_weights<T>& W,
                          int l,
                          const std::vector<std::int64_t>& pos,
                          const attention_mask& mask,
                          const block_layer_state<T>& s,
                          const mat<T>& dout,
                          block_grads<T>& G,
                          mat<T>& dX,
                          mat<T>& dkc,
                          mat<T>& dvc) {
  using BW = block_weights<T>;
  const block_config& c = W.cfg;
  const idx n = s.x.rows();
  const idx d = c.dim;
  mat<T> dr = dout;
  mat<T> da = mat<T>::Zero(s.a.rows(), s.a.cols());
  linear_backward(s.a, W[BW::slot(l, bl_down)], dout, &da, &G[BW::slot(l, bl_down)]);
  mat<T> dg = mat<T>::Zero(s.g.rows(), s.g.cols());
  mat<T> du = mat<T>::Zero(s.u.rows(), s.u.cols());
  silu_mul_backward(s.g, s.u, da, dg, du);
  mat<T> dmn = mat<T>::Zero(n, d);
  linear_backward(s.mn, W[BW::slot(l, bl_gate)], dg, &dmn, &G[BW::slot(l, bl_gate)]);
  linear_backward(s.mn, W[BW::slot(l, bl_up)], du, &dmn, &G[BW::slot(l, bl_up)]);
  rmsnorm_backward(s.r, W[BW::slot(l, bl_post_ln)], s.rm, dmn, dr, &G[BW::slot(l, bl_post_ln)]);
  dX = dr; // r = x + o
  mat<T> datt = mat<T>::Zero(s.att.rows(), s.att.cols());
  linear_backward(s.att, W[BW::slot(l, bl_wo)], dr, &datt, &G[BW::slot(l, bl_wo)]);
  mat<T> dq = mat<T>::Zero(s.q.rows(), s.q.cols());
  mat<T> dK = mat<T>::Zero(s.K.rows(), s.K.cols());
  mat<T> dV = mat<T>::Zero(s.V.rows(), s.V.cols());
  attention_backward(
      s.q, s.K, s.V, c.heads, c.kv_heads, c.head_dim(), mask, s.ac, datt, dq, dK, dV);
  const idx nc = s.K.rows() - n;
  dkc += dK.topRows(nc);
  dvc += dV.topRows(nc);
  mat<T> dkb = dK.bottomRows(n);
  const mat<T> dvb = dV.bottomRows(n);
  rope_apply(dq, pos, c.head_dim(), true);
  rope_apply(dkb, pos, c.head_dim(), true);
  mat<T> dn = mat<T>::Zero(n, d);
  linear_backward(s.n, W[BW::slot(l, bl_wq)], dq, &dn, &G[BW::slot(l, bl_wq)]);
  linear_backward(s.n, W[BW::slot(l, bl_wk)], dkb, &dn, &G[BW::slot(l, bl_wk)]);
  linear_backward(s.n, W[BW::slot(l, bl_wv)], dvb, &dn, &G[BW::slot(l, bl_wv)]);
  rmsnorm_backward(s.x, W[BW::slot(l, bl_in_ln)], s.rn, dn, dX, &G[BW::slot(l, bl_in_ln)]);
}

/// @brief The block rows of `anchors`: input tokens [x_a, MASK, ...], positions a + k, and the
///        mask (context keys < min(a, nctx), then the own block's keys, which start at nctx).
inline void block_rows(const block_config& c,
                       const std::vector<std::int32_t>& anchor_tokens,
                       const std::vector<idx>& anchors,
                       idx nctx,
                       std::vector<std::int32_t>& toks,
                       std::vector<std::int64_t>& pos,
                       attention_mask& mask) {
  const idx g = c.block;
  const idx nb = static_cast<idx>(anchors.size());
  toks.assign(static_cast<std::size_t>(nb * g), c.mask_token);
  pos.resize(static_cast<std::size_t>(nb * g));
  mask = attention_mask{};
  std::vector<idx> own(static_cast<std::size_t>(g));
  for (idx b = 0; b < nb; ++b) {
    const idx a = anchors[static_cast<std::size_t>(b)];
    toks[static_cast<std::size_t>(b * g)] = anchor_tokens[static_cast<std::size_t>(b)];
    for (idx k = 0; k < g; ++k) {
      pos[static_cast<std::size_t>(b * g + k)] = a + k;
      own[static_cast<std::size_t>(k)] = nctx + b * g + k;
    }
    for (idx k = 0; k < g; ++k)
      mask.add(std::min(a, nctx), own.begin(), own.end());
  }
}

/// @brief Everything a training forward keeps.
template <class T>
struct block_state {
  mat<T> cpre, ctx;                              ///< fc output, hidden_norm of it [L x d]
  std::vector<T> rc;                             ///< RMS factors of ctx
  std::vector<std::int64_t> cpos, pos;           ///< context and block positions
  std::vector<std::int32_t> toks, prev;          ///< block inputs; previous token per slot
  attention_mask mask;                           ///< block visibility
  std::vector<mat<T>> kc, vc;                    ///< per layer context keys / values
  std::vector<block_layer_state<T>> layers;      ///< per layer
  mat<T> x0, xl, h, U, e, coef, gpre, raw, s, L; ///< block stream, heads, logits
  std::vector<T> rh;                             ///< RMS factors of the final norm
  std::vector<T> z;                              ///< confidence logits
  std::vector<T> cstar;                          ///< the confidence labels c* of the last forward
  bool freeze_cstar = false; ///< reuse `cstar` as the labels (finite-difference tests only)
};

/// @brief Backbone forward over the context features and the anchored blocks: fills s.ctx .. s.U.
template <class T>
void block_backbone_forward(const block_weights<T>& W,
                            const mat<T>& E,
                            const mat<T>& features,
                            const std::vector<std::int32_t>& tokens,
                            const std::vector<idx>& anchors,
                            block_state<T>& s) {
  const block_config& c = W.cfg;
  const idx L = features.rows();
  linear_forward(features, W[bg_fc], s.cpre);
  rmsnorm_forward(s.cpre, W[bg_hidden_norm], s.ctx, s.rc);
  s.cpos.resize(static_cast<std::size_t>(L));
  for (idx t = 0; t < L; ++t)
    s.cpos[static_cast<std::size_t>(t)] = t;
  std::vector<std::int32_t> at(anchors.size());
  for (std::size_t b = 0; b < anchors.size(); ++b)
    at[b] = tokens[static_cast<std::size_t>(anchors[b])];
  block_rows(c, at, anchors, L, s.toks, s.pos, s.mask);
  embed_rows(E, s.toks, s.x0);
  s.kc.resize(static_cast<std::size_t>(c.n_layers));
  s.vc.resize(static_cast<std::size_t>(c.n_layers));
  s.layers.resize(static_cast<std::size_t>(c.n_layers));
  mat<T> x = s.x0;
  for (int l = 0; l < c.n_layers; ++l) {
    const auto li = static_cast<std::size_t>(l);
    block_context_kv(W, l, s.ctx, s.cpos, s.kc[li], s.vc[li]);
    mat<T> y;
    block_layer_forward(W, l, x, s.pos, s.kc[li], s.vc[li], s.mask, s.layers[li], y);
    x = std::move(y);
  }
  s.xl = std::move(x);
  rmsnorm_forward(s.xl, W[bg_norm], s.h, s.rh);
  linear_forward(s.h, E, s.U);
}

/// @brief Heads forward: L = U + B(prev, h) and the confidence logits, with s.prev set (prev of
///        slot k of block b: x_{a+k}, teacher forcing). O(rows * (V * r + heads)).
template <class T>
void block_heads_forward(const block_weights<T>& W, block_state<T>& s) {
  const block_config& c = W.cfg;
  const idx N = s.h.rows();
  const idx r = c.r();
  const idx d = c.dim;
  const idx g = c.block;
  s.L = s.U;
  if (r > 0) {
    s.e.resize(N, r);
    for (idx i = 0; i < N; ++i)
      s.e.row(i) = W[bg_w1].row(s.prev[static_cast<std::size_t>(i)]);
    s.coef.resize(N, r);
    if (c.head == block_head::markov) {
      s.coef = s.e;
    } else if (c.head == block_head::gated) {
      mat<T> he(N, d + r);
      he.leftCols(d) = s.h;
      he.rightCols(r) = s.e;
      linear_forward(he, W[bg_proj_w], s.gpre);
      for (idx i = 0; i < N; ++i)
        for (idx j = 0; j < r; ++j) {
          s.gpre(i, j) += W[bg_proj_b](0, j);
          s.coef(i, j) = s.e(i, j) / (T(1) + std::exp(-s.gpre(i, j)));
        }
    } else { // rnn, unrolled along each block; state s.s row i = s_k after slot i
      s.raw.resize(N, 3 * r);
      s.s.resize(N, r);
      const mat<T>& P = W[bg_proj_w];
      std::vector<T> zin(static_cast<std::size_t>(2 * r + d));
      for (idx i = 0; i < N; ++i) {
        const bool first = i % g == 0;
        for (idx j = 0; j < r; ++j) {
          zin[static_cast<std::size_t>(j)] = first ? T(0) : s.s(i - 1, j);
          zin[static_cast<std::size_t>(r + j)] = s.e(i, j);
        }
        for (idx j = 0; j < d; ++j)
          zin[static_cast<std::size_t>(2 * r + j)] = s.h(i, j);
        for (idx q = 0; q < 3 * r; ++q) {
          T acc = 0;
          for (idx j = 0; j < 2 * r + d; ++j)
            acc += P(q, j) * zin[static_cast<std::size_t>(j)];
          s.raw(i, q) = acc + W[bg_proj_b](0, q);
        }
        for (idx j = 0; j < r; ++j) {
          const T gs = T(1) / (T(1) + std::exp(-s.raw(i, j)));
          const T sp = first ? T(0) : s.s(i - 1, j);
          s.s(i, j) = gs * sp + (T(1) - gs) * std::tanh(s.raw(i, r + j));
          s.coef(i, j) = std::tanh(s.raw(i, 2 * r + j));
        }
      }
    }
    mat<T> B;
    linear_forward(s.coef, W[bg_w2], B); // B[v] = sum_j w2[v][j] coef_j
    s.L += B;
  }
  s.z.clear();
  if (c.confidence) {
    s.z.resize(static_cast<std::size_t>(N));
    const mat<T>& cw = W[bg_conf_w];
    for (idx i = 0; i < N; ++i) {
      T acc = 0;
      for (idx j = 0; j < d; ++j)
        acc += cw(0, j) * s.h(i, j);
      for (idx j = 0; j < r; ++j)
        acc += cw(0, d + j) * s.e(i, j);
      s.z[static_cast<std::size_t>(i)] = acc + W[bg_conf_b](0, 0);
    }
  }
}

/// @brief Loss coefficients and decay (DeepSpec's configs).
struct block_loss_config {
  double ce = 1.0;          ///< alpha_ce (DSpark 0.1)
  double l1 = 0.0;          ///< alpha_l1 (DSpark 0.9)
  double conf = 0.0;        ///< alpha_conf (DSpark 1.0)
  double decay_gamma = 4.0; ///< w_k = exp(-k / decay_gamma)
  /// DeepSpec's coefficients for a drafter: DFlash (no head, no confidence) or DSpark.
  static block_loss_config for_config(const block_config& c) {
    block_loss_config o;
    if (c.head != block_head::none || c.confidence) {
      o.ce = 0.1;
      o.l1 = 0.9;
      o.conf = c.confidence ? 1.0 : 0.0;
    }
    return o;
  }
};

/// Per slot: the sums behind the logged metrics.
struct slot_metrics {
  double weight = 0; ///< sum of w
  double rows = 0;   ///< valid rows
  double ce = 0;     ///< sum of CE (unweighted)
  double l1 = 0;     ///< sum of L1
  double bce = 0;    ///< sum of BCE
  double accept = 0; ///< sum of c*
  double argmax = 0; ///< draft argmax == label
};

/// The metrics of a set of blocks, per slot.
struct block_metrics {
  std::vector<slot_metrics> slots; ///< one per block slot
  double objective = 0;            ///< sum of w * (alpha-weighted terms)
  double weight = 0;               ///< sum of w
  /// this += o.
  void add(const block_metrics& o) {
    if (slots.size() < o.slots.size())
      slots.resize(o.slots.size());
    for (std::size_t k = 0; k < o.slots.size(); ++k) {
      slots[k].weight += o.slots[k].weight;
      slots[k].rows += o.slots[k].rows;
      slots[k].ce += o.slots[k].ce;
      slots[k].l1 += o.slots[k].l1;
      slots[k].bce += o.slots[k].bce;
      slots[k].accept += o.slots[k].accept;
      slots[k].argmax += o.slots[k].argmax;
    }
    objective += o.objective;
    weight += o.weight;
  }
  /// The weighted objective per unit weight.
  [[nodiscard]] double loss() const {
    return weight > 0 ? objective / weight : 0.0;
  }
  /// Mean c* of slot k.
  [[nodiscard]] double accept(std::size_t k) const {
    return k < slots.size() && slots[k].rows > 0 ? slots[k].accept / slots[k].rows : 0.0;
  }
  /// Teacher-forced 1 + sum_k prod_{i<=k} mean c*_i over the first `gamma` slots.
  [[nodiscard]] double tau_estimate(std::size_t gamma) const {
    double tau = 1;
    double prod = 1;
    for (std::size_t k = 0; k < std::min(gamma, slots.size()); ++k) {
      if (slots[k].rows <= 0)
        break;
      prod *= slots[k].accept / slots[k].rows;
      tau += prod;
    }
    return tau;
  }
};

/// Valid slots of the block at anchor a: the labels a + k + 1 inside [loss_begin, L - 1], as a
/// contiguous prefix.
inline idx block_valid_slots(idx a, idx L, idx loss_begin, int block) {
  idx n = 0;
  for (idx k = 0; k < block; ++k) {
    const idx j = a + k + 1;
    if (j > L - 1 || j < loss_begin)
      break;
    ++n;
  }
  return n;
}

/// @brief Anchor candidates of a sequence (DeepSpec: loss_mask[a] and loss_mask[a + 1], a <= L - 2)
///        and a seeded choice of at most `n` of them (all when n <= 0), ascending.
inline std::vector<idx> pick_anchors(idx L, idx loss_begin, int n, std::uint64_t seed) {
  std::vector<idx> cand;
  for (idx a = std::max<idx>(loss_begin, 0); a <= L - 2; ++a)
    cand.push_back(a);
  if (n > 0 && static_cast<idx>(cand.size()) > n) {
    std::uint64_t s = seed;
    for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) // partial Fisher-Yates
      std::swap(cand[i], cand[i + splitmix64(s) % (cand.size() - i)]);
    cand.resize(static_cast<std::size_t>(n));
    std::sort(cand.begin(), cand.end());
  }
  return cand;
}

/// @brief Forward and (G not null) backward of one sequence's anchored blocks. The loss of each
///        slot is scaled by `scale` (1 / the batch's sum of weights), so the batch gradient is
///        DeepSpec's weighted token mean. Adds to `m` and `*G`.
/// @return a loss status (non-finite logits) or ok
template <class T>
specdec::status train_blocks(const block_weights<T>& W,
                             const mat<T>& E,
                             const train_example<T>& ex,
                             const std::vector<idx>& anchors,
                             const block_loss_config& lc,
                             T scale,
                             block_grads<T>* G,
                             block_metrics& m,
                             block_state<T>& s) {
  const block_config& c = W.cfg;
  const idx L = static_cast<idx>(ex.tokens.size());
  const idx V = c.vocab;
  const idx g = c.block;
  const idx r = c.r();
  const idx d = c.dim;
  const idx nb = static_cast<idx>(anchors.size());
  if (m.slots.size() < static_cast<std::size_t>(g))
    m.slots.resize(static_cast<std::size_t>(g));
  if (nb == 0)
    return specdec::status{};
  block_backbone_forward(W, E, ex.features, ex.tokens, anchors, s);
  s.prev.resize(static_cast<std::size_t>(nb * g));
  for (idx b = 0; b < nb; ++b)
    for (idx k = 0; k < g; ++k) {
      const idx j = std::min(anchors[static_cast<std::size_t>(b)] + k, L - 1);
      s.prev[static_cast<std::size_t>(b * g + k)] = ex.tokens[static_cast<std::size_t>(j)];
    }
  block_heads_forward(W, s);
  const idx N = nb * g;
  mat<T> dL = mat<T>::Zero(G != nullptr ? N : 0, G != nullptr ? V : 0);
  std::vector<T> dz(static_cast<std::size_t>(G != nullptr && c.confidence ? N : 0), T(0));
  for (idx b = 0; b < nb; ++b) {
    const idx a = anchors[static_cast<std::size_t>(b)];
    const idx nv = block_valid_slots(a, L, ex.loss_begin, c.block);
    for (idx k = 0; k < nv; ++k) {
      const idx i = b * g + k;
      const idx j = a + k + 1;
      const double w = std::exp(-static_cast<double>(k) / lc.decay_gamma);
      const std::span<const T> row{s.L.data() + i * V, static_cast<std::size_t>(V)};
      const std::span<const T> tp{ex.target_probs.data() + (j - 1) * V,
                                  static_cast<std::size_t>(V)};
      const std::span<T> gr = G != nullptr
                                  ? std::span<T>{dL.data() + i * V, static_cast<std::size_t>(V)}
                                  : std::span<T>{};
      slot_metrics& sm = m.slots[static_cast<std::size_t>(k)];
      const std::int32_t label = ex.tokens[static_cast<std::size_t>(j)];
      const auto ce = specdec::train::hard_cross_entropy<T>(row, label, T(1), std::span<T>{});
      if (!ce.st.ok())
        return ce.st;
      const double ce_v = static_cast<double>(ce.value);
      T cstar = specdec::train::acceptance_estimate<T>(row, tp);
      if (!std::isfinite(static_cast<double>(cstar)))
        return specdec::status{specdec::errc::invalid_value};
      if (s.cstar.size() < static_cast<std::size_t>(N))
        s.cstar.resize(static_cast<std::size_t>(N));
      const double l1_v = 2.0 * (1.0 - static_cast<double>(cstar)); // ||q - p||_1 = 2 TV
      if (s.freeze_cstar) // the label is detached: a finite-difference test holds it fixed
        cstar = s.cstar[static_cast<std::size_t>(i)];
      else
        s.cstar[static_cast<std::size_t>(i)] = cstar;
      if (G != nullptr && lc.ce > 0)
        (void)specdec::train::hard_cross_entropy<T>(
            row, label, static_cast<T>(lc.ce * w) * scale, gr);
      if (G != nullptr && lc.l1 > 0)
        if (const auto l1 = specdec::train::l1_probability_distance<T>(
                row, tp, static_cast<T>(lc.l1 * w) * scale, gr);
            !l1.st.ok())
          return l1.st;
      double bce_v = 0;
      if (c.confidence) {
        T gz = 0;
        const auto bce = specdec::train::bce_with_logits<T>(
            s.z[static_cast<std::size_t>(i)], cstar, T(1), G != nullptr ? &gz : nullptr);
        if (!bce.st.ok())
          return bce.st;
        bce_v = static_cast<double>(bce.value);
        if (G != nullptr)
          dz[static_cast<std::size_t>(i)] = gz * static_cast<T>(lc.conf * w) * scale;
      }
      const double obj = lc.ce * ce_v + lc.l1 * l1_v + lc.conf * bce_v;
      sm.weight += w;
      sm.rows += 1;
      sm.ce += ce_v;
      sm.l1 += l1_v;
      sm.bce += bce_v;
      sm.accept += static_cast<double>(cstar);
      idx am = 0;
      for (idx v = 1; v < V; ++v)
        if (row[static_cast<std::size_t>(v)] > row[static_cast<std::size_t>(am)])
          am = v;
      sm.argmax += am == ex.tokens[static_cast<std::size_t>(j)] ? 1 : 0;
      m.objective += w * obj;
      m.weight += w;
    }
  }
  if (G == nullptr)
    return specdec::status{};
  // Heads backward: dL -> dU (identity), dcoef, de, dh.
  block_grads<T>& gr = *G;
  mat<T> dh = dL * E; // from U = h E^T (frozen E)
  if (r > 0) {
    mat<T> dcoef = dL * W[bg_w2]; // B = coef w2^T
    gr[bg_w2].noalias() += dL.transpose() * s.coef;
    mat<T> de = mat<T>::Zero(N, r);
    if (c.head == block_head::markov) {
      de += dcoef;
    } else if (c.head == block_head::gated) {
      mat<T> dgp(N, r);
      for (idx i = 0; i < N; ++i)
        for (idx j = 0; j < r; ++j) {
          const T sg = T(1) / (T(1) + std::exp(-s.gpre(i, j)));
          de(i, j) += dcoef(i, j) * sg;
          dgp(i, j) = dcoef(i, j) * s.e(i, j) * sg * (T(1) - sg);
        }
      mat<T> he(N, d + r);
      he.leftCols(d) = s.h;
      he.rightCols(r) = s.e;
      mat<T> dhe = mat<T>::Zero(N, d + r);
      linear_backward(he, W[bg_proj_w], dgp, &dhe, &gr[bg_proj_w]);
      gr[bg_proj_b] += dgp.colwise().sum();
      dh += dhe.leftCols(d);
      de += dhe.rightCols(r);
    } else { // rnn: back through each block, last slot first
      const mat<T>& P = W[bg_proj_w];
      std::vector<T> ds(static_cast<std::size_t>(r)), draw(static_cast<std::size_t>(3 * r));
      std::vector<T> zin(static_cast<std::size_t>(2 * r + d));
      for (idx b = 0; b < nb; ++b) {
        std::fill(ds.begin(), ds.end(), T(0));
        for (idx k = g - 1; k >= 0; --k) {
          const idx i = b * g + k;
          const bool first = k == 0;
          for (idx j = 0; j < r; ++j) {
            const T gs = T(1) / (T(1) + std::exp(-s.raw(i, j)));
            const T tc = std::tanh(s.raw(i, r + j));
            const T to = std::tanh(s.raw(i, 2 * r + j));
            const T sp = first ? T(0) : s.s(i - 1, j);
            const T dsj = ds[static_cast<std::size_t>(j)];
            draw[static_cast<std::size_t>(j)] = dsj * (sp - tc) * gs * (T(1) - gs);
            draw[static_cast<std::size_t>(r + j)] = dsj * (T(1) - gs) * (T(1) - tc * tc);
            draw[static_cast<std::size_t>(2 * r + j)] = dcoef(i, j) * (T(1) - to * to);
            ds[static_cast<std::size_t>(j)] = dsj * gs; // to s_{k-1}, direct path
          }
          for (idx j = 0; j < r; ++j) {
            zin[static_cast<std::size_t>(j)] = first ? T(0) : s.s(i - 1, j);
            zin[static_cast<std::size_t>(r + j)] = s.e(i, j);
          }
          for (idx j = 0; j < d; ++j)
            zin[static_cast<std::size_t>(2 * r + j)] = s.h(i, j);
          for (idx q = 0; q < 3 * r; ++q) {
            const T dq = draw[static_cast<std::size_t>(q)];
            if (dq == T(0))
              continue;
            gr[bg_proj_b](0, q) += dq;
            for (idx j = 0; j < 2 * r + d; ++j) {
              gr[bg_proj_w](q, j) += dq * zin[static_cast<std::size_t>(j)];
              const T dzj = dq * P(q, j);
              if (j < r)
                ds[static_cast<std::size_t>(j)] += first ? T(0) : dzj;
              else if (j < 2 * r)
                de(i, j - r) += dzj;
              else
                dh(i, j - 2 * r) += dzj;
            }
          }
        }
      }
    }
    if (c.confidence) {
      for (idx i = 0; i < N; ++i)
        for (idx j = 0; j < r; ++j)
          de(i, j) += dz[static_cast<std::size_t>(i)] * W[bg_conf_w](0, d + j);
    }
    for (idx i = 0; i < N; ++i)
      gr[bg_w1].row(s.prev[static_cast<std::size_t>(i)]) += de.row(i);
  }
  if (c.confidence) {
    for (idx i = 0; i < N; ++i) {
      const T zg = dz[static_cast<std::size_t>(i)];
      gr[bg_conf_b](0, 0) += zg;
      for (idx j = 0; j < d; ++j) {
        gr[bg_conf_w](0, j) += zg * s.h(i, j);
        dh(i, j) += zg * W[bg_conf_w](0, j);
      }
      for (idx j = 0; j < r; ++j)
        gr[bg_conf_w](0, d + j) += zg * s.e(i, j);
    }
  }
  // Backbone backward.
  mat<T> dx = mat<T>::Zero(N, d);
  rmsnorm_backward(s.xl, W[bg_norm], s.rh, dh, dx, &gr[bg_norm]);
  mat<T> dctx = mat<T>::Zero(L, d);
  for (int l = c.n_layers - 1; l >= 0; --l) {
    const auto li = static_cast<std::size_t>(l);
    mat<T> dkc = mat<T>::Zero(L, s.kc[li].cols());
    mat<T> dvc = mat<T>::Zero(L, s.vc[li].cols());
    mat<T> dxin;
    block_layer_backward(W, l, s.pos, s.mask, s.layers[li], dx, gr, dxin, dkc, dvc);
    dx = std::move(dxin);
    rope_apply(dkc, s.cpos, c.head_dim(), true);
    linear_backward(s.ctx,
                    W[block_weights<T>::slot(l, bl_wk)],
                    dkc,
                    &dctx,
                    &gr[block_weights<T>::slot(l, bl_wk)]);
    linear_backward(s.ctx,
                    W[block_weights<T>::slot(l, bl_wv)],
                    dvc,
                    &dctx,
                    &gr[block_weights<T>::slot(l, bl_wv)]);
  }
  mat<T> dcpre = mat<T>::Zero(L, d);
  rmsnorm_backward(s.cpre, W[bg_hidden_norm], s.rc, dctx, dcpre, &gr[bg_hidden_norm]);
  linear_backward<T>(ex.features, W[bg_fc], dcpre, nullptr, &gr[bg_fc]);
  return specdec::status{};
}

// --- inference -----------------------------------------------------------------------------------

/// @brief A trained block drafter's backbone at inference: a propose::prompt_feature_backbone
///        for the library's semi_ar_drafter. It keeps, for the one request it serves, the
///        context rows (ctx and every layer's keys/values) of the positions whose target
///        features it was handed, and runs a whole trained block (cfg.block slots, as in
///        training: the block is non-causal, so a shorter block would change every slot) per
///        call, returning the first gamma rows.
class block_backbone {
public:
  /// @brief Binds the weights and the frozen embedding/classifier E [V x d] (both must outlive
  ///        the backbone); `capacity` context positions at most.
  block_backbone(const block_weights<float>& w, const mat<float>& E, idx capacity)
      : w_(&w)
      , e_(&E)
      , cap_(capacity) {
    const block_config& c = w.cfg;
    const idx kvw = static_cast<idx>(c.kv_heads) * c.head_dim();
    kc_.assign(static_cast<std::size_t>(c.n_layers), mat<float>::Zero(capacity, kvw));
    vc_.assign(static_cast<std::size_t>(c.n_layers), mat<float>::Zero(capacity, kvw));
  }

  /// Target layers it reads.
  [[nodiscard]] specdec::row_view<const std::int32_t> feature_layers() const noexcept {
    return {w_->cfg.layers.data(), static_cast<specdec::index_t>(w_->cfg.layers.size())};
  }
  /// Vocabulary.
  [[nodiscard]] specdec::index_t vocab_size() const noexcept {
    return w_->cfg.vocab;
  }
  /// Width of h.
  [[nodiscard]] specdec::index_t hidden_size() const noexcept {
    return w_->cfg.dim;
  }
  /// The trained block size (the largest gamma).
  [[nodiscard]] int block_size() const noexcept {
    return w_->cfg.block;
  }
  /// Context positions known.
  [[nodiscard]] idx known() const noexcept {
    return n_;
  }

  /// @brief Starts (or restarts) a request: forgets every context row. O(1).
  specdec::status begin(std::uint64_t, specdec::row_view<const specdec::token_id>) {
    n_ = 0;
    return specdec::status{};
  }
  /// @brief Takes the prompt's features of positions [start, start + rows).
  /// @return see append_rows
  specdec::status
  observe_prompt(std::uint64_t, specdec::index_t start, specdec::matrix_view<const float> f) {
    return append_rows(start, f);
  }
  /// @brief Takes the kept rows of a round (anchor, accepted drafts) at positions
  ///        o.position - 1 onward. @return see append_rows
  specdec::status observe(const specdec::round_outcome& o) {
    if (o.features.rows == 0)
      return specdec::status{};
    return append_rows(o.position - 1, o.features);
  }
  /// @brief Ends the request. O(1).
  void end(std::uint64_t) {
    n_ = 0;
  }

  /// @brief Runs one block after r.context (anchor at position a = size - 1) over the context
  ///        rows of positions < min(a, known()).
  /// @return invalid_argument for an empty context or gamma outside [1, block_size()];
  ///   token_out_of_range for an anchor outside the vocabulary; shape_mismatch for small outputs
  /// @par Complexity
  /// O(n_layers * block * (layer + context * d) + block * V * d).
  specdec::status run_block(const specdec::propose::backbone_request& r,
                            specdec::matrix_view<float> U,
                            specdec::matrix_view<float> H) {
    using specdec::errc;
    using specdec::status;
    const block_config& c = w_->cfg;
    if (r.context.size < 1 || r.gamma < 1 || r.gamma > c.block)
      return status{errc::invalid_argument};
    const specdec::token_id anchor = r.context[r.context.size - 1];
    if (anchor < 0 || anchor >= c.vocab)
      return status{errc::token_out_of_range};
    if (U.rows < r.gamma || U.cols != c.vocab || H.rows < r.gamma || H.cols != c.dim)
      return status{errc::shape_mismatch};
    const idx a = r.context.size - 1;
    const idx nctx = std::min(a, n_);
    // The block's rows: [anchor, MASK, ...] at positions a .. a + block - 1, each seeing the
    // context rows [0, nctx) and the whole block (as block_rows sets up training's mask).
    toks_.assign(static_cast<std::size_t>(c.block), c.mask_token);
    toks_[0] = anchor;
    pos_.resize(static_cast<std::size_t>(c.block));
    for (idx k = 0; k < c.block; ++k)
      pos_[static_cast<std::size_t>(k)] = a + k;
    mat<float> x;
    embed_rows(*e_, toks_, x);
    for (int l = 0; l < c.n_layers; ++l) {
      const auto li = static_cast<std::size_t>(l);
      block_layer_infer(*w_, l, x, pos_, kc_[li], vc_[li], nctx, scratch_);
    }
    rmsnorm_forward(x, (*w_)[bg_norm], h_, scratch_.rn);
    u_.noalias() = h_.topRows(r.gamma).lazyProduct(e_->transpose()); // returned rows only
    for (idx k = 0; k < r.gamma; ++k) {
      std::copy_n(u_.data() + k * c.vocab, c.vocab, U.data + k * U.row_stride);
      std::copy_n(h_.data() + k * c.dim, c.dim, H.data + k * H.row_stride);
    }
    return status{};
  }

private:
  specdec::status append_rows(specdec::index_t start, specdec::matrix_view<const float> f) {
    using specdec::errc;
    using specdec::status;
    const block_config& c = w_->cfg;
    if (f.rows == 0)
      return status{};
    if (f.cols != c.feature_cols() || f.data == nullptr || start < 0)
      return status{errc::shape_mismatch};
    if (start > n_) // a gap: rows before `start` are unknown; keep what is contiguous
      return status{};
    if (start + f.rows > cap_)
      return status{errc::overflow};
    mat<float> feats(f.rows, f.cols);
    for (idx i = 0; i < f.rows; ++i)
      std::copy_n(f.data + i * f.row_stride, f.cols, feats.data() + i * f.cols);
    mat<float> cpre, ctx;
    std::vector<float> rc;
    linear_forward(feats, (*w_)[bg_fc], cpre);
    rmsnorm_forward(cpre, (*w_)[bg_hidden_norm], ctx, rc);
    std::vector<std::int64_t> pos(static_cast<std::size_t>(f.rows));
    for (idx i = 0; i < f.rows; ++i)
      pos[static_cast<std::size_t>(i)] = start + i;
    for (int l = 0; l < c.n_layers; ++l) {
      mat<float> kc, vc;
      block_context_kv(*w_, l, ctx, pos, kc, vc);
      kc_[static_cast<std::size_t>(l)].middleRows(start, f.rows) = kc;
      vc_[static_cast<std::size_t>(l)].middleRows(start, f.rows) = vc;
    }
    n_ = start + f.rows;
    return status{};
  }

  const block_weights<float>* w_;
  const mat<float>* e_;
  idx cap_;
  idx n_ = 0;
  std::vector<mat<float>> kc_, vc_;
  std::vector<std::int64_t> pos_;
  std::vector<std::int32_t> toks_;
  block_infer_scratch scratch_;
  mat<float> h_, u_; // final norm of the block, its logits
};

static_assert(specdec::propose::prompt_feature_backbone<block_backbone>);

} // namespace deepspec
