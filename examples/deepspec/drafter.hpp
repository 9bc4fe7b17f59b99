// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The autoregressive feature drafters of examples/deepspec, EAGLE-3 and MTP-1, with one
///        forward shared by training (training-time test over a whole sequence) and inference
///        (a KV cache that holds a committed chain and a token tree of drafts).
///
/// Both read target features and the token that follows them, run one llama-style decoder layer
/// and share the target's embedding and classifier, frozen:
///
///  - EAGLE-3 (SafeAILab/EAGLE, DeepSpec's `Eagle3DraftModel`): at a target row the fused features
///    of a low, a middle and a high layer go through `fc` (m*d -> d); a draft row feeds back the
///    layer's own output instead. The layer reads z = [input_layernorm(emb(token)) ;
///    hidden_norm(h)] (2d wide) into q/k/v, and its residual stream starts at the un-normalised h.
///  - MTP-1 (DeepSeek-V3's multi-token-prediction module): h is the target's last layer output
///    (before the final norm); x0 = eh_proj([hnorm(h) ; enorm(emb(token))]) (2d -> d), then one
///    ordinary block (input_layernorm -> attention, post_attention_layernorm -> SwiGLU) whose
///    residual starts at x0. Trained for depth 1; chained at inference by feeding back its output.
///
/// Then, for both: r = base + o_proj(attention), y = r + down(silu(gate(n)) * up(n)) with
/// n = post_attention_layernorm(r); logits = classifier(norm(y)); y is the row's hidden output.
///
/// Entry t of a sequence pairs the target features of position t with token x_{t+1} at RoPE
/// position t and predicts x_{t+2}. Training-time test (EAGLE-3) unrolls k steps: step k pairs
/// step k-1's own output at t with x_{t+1+k} at position t + k; its query at t sees the step-0
/// keys at <= t and the key at t of every step 1..k (the diagonal). At inference the same entry
/// for a draft appended after the committed entries sees the committed chain and its ancestors,
/// which is that mask.
///
/// Weights are named as the field saves them (safetensors, examples/deepspec/checkpoint.hpp).

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/propose/feature_drafter.hpp>
#include <specdec/train/loss.hpp>

#include "deepspec/nn.hpp"
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace deepspec {

/// Which drafter.
enum class arch { eagle3, mtp1 };

/// The name of an architecture ("eagle3", "mtp1").
inline const char* arch_name(arch a) {
  return a == arch::eagle3 ? "eagle3" : "mtp1";
}

/// @brief Shape of a drafter (the target's width, heads and FFN in the miniature mapping).
struct drafter_config {
  arch kind = arch::eagle3; ///< EAGLE-3 or MTP-1
  int dim = 64;             ///< width d (the target's: embedding and classifier are shared)
  int heads = 8;            ///< query heads
  int kv_heads = 4;         ///< key/value heads
  int ffn = 172;            ///< SwiGLU width
  int vocab = 512;          ///< vocabulary (the target's)
  std::vector<std::int32_t> layers{
      1, 3, 4}; ///< target feature layers (0: embedding, l: after l layers)

  /// Width of one head.
  [[nodiscard]] int head_dim() const noexcept {
    return dim / heads;
  }
  /// Columns of a target feature row (layers * dim).
  [[nodiscard]] idx feature_cols() const noexcept {
    return static_cast<idx>(layers.size()) * dim;
  }
  /// @brief Checks the shape: positive sizes, heads dividing dim into even head widths, kv_heads
  ///        dividing heads, at least one layer (MTP-1: exactly one). @return invalid_argument else
  [[nodiscard]] specdec::status validate() const {
    if (dim <= 0 || heads <= 0 || kv_heads <= 0 || ffn <= 0 || vocab <= 0 || dim % heads != 0
        || heads % kv_heads != 0 || head_dim() % 2 != 0 || layers.empty()
        || (kind == arch::mtp1 && layers.size() != 1))
      return specdec::status{specdec::errc::invalid_argument};
    for (std::int32_t l : layers)
      if (l < 0)
        return specdec::status{specdec::errc::invalid_argument};
    return specdec::status{};
  }
};

/// Parameter slots (both architectures use the same slots; ln_in is MTP-1's only).
enum pid : int {
  p_fc,      ///< EAGLE-3 fc [d, m*d]; MTP-1 eh_proj [d, 2d]
  p_norm_h,  ///< hidden_norm / hnorm [d]
  p_norm_e,  ///< input_layernorm (EAGLE-3) / enorm [d]
  p_ln_in,   ///< MTP-1 layers.0.input_layernorm [d] (EAGLE-3: empty)
  p_wq,      ///< q_proj [H*hd, in]
  p_wk,      ///< k_proj [G*hd, in]
  p_wv,      ///< v_proj [G*hd, in]
  p_wo,      ///< o_proj [d, H*hd]
  p_post_ln, ///< post_attention_layernorm [d]
  p_gate,    ///< mlp.gate_proj [ffn, d]
  p_up,      ///< mlp.up_proj [ffn, d]
  p_down,    ///< mlp.down_proj [d, ffn]
  p_final,   ///< norm / shared_head.norm [d]
  p_count
};

/// @brief The checkpoint name of a parameter slot ("" for a slot the architecture lacks).
inline std::string param_name(arch a, int p) {
  static const char* const eagle[p_count] = {"fc.weight",
                                             "layers.0.hidden_norm.weight",
                                             "layers.0.input_layernorm.weight",
                                             "",
                                             "layers.0.self_attn.q_proj.weight",
                                             "layers.0.self_attn.k_proj.weight",
                                             "layers.0.self_attn.v_proj.weight",
                                             "layers.0.self_attn.o_proj.weight",
                                             "layers.0.post_attention_layernorm.weight",
                                             "layers.0.mlp.gate_proj.weight",
                                             "layers.0.mlp.up_proj.weight",
                                             "layers.0.mlp.down_proj.weight",
                                             "norm.weight"};
  static const char* const mtp[p_count] = {"eh_proj.weight",
                                           "hnorm.weight",
                                           "enorm.weight",
                                           "layers.0.input_layernorm.weight",
                                           "layers.0.self_attn.q_proj.weight",
                                           "layers.0.self_attn.k_proj.weight",
                                           "layers.0.self_attn.v_proj.weight",
                                           "layers.0.self_attn.o_proj.weight",
                                           "layers.0.post_attention_layernorm.weight",
                                           "layers.0.mlp.gate_proj.weight",
                                           "layers.0.mlp.up_proj.weight",
                                           "layers.0.mlp.down_proj.weight",
                                           "shared_head.norm.weight"};
  return a == arch::eagle3 ? eagle[p] : mtp[p];
}

/// True for the RMSNorm weight slots (vectors; no weight decay, initialised to 1).
inline bool is_norm(int p) {
  return p == p_norm_h || p == p_norm_e || p == p_ln_in || p == p_post_ln || p == p_final;
}

/// splitmix64: the seeded stream of the initialiser (the same numbers on every platform).
inline std::uint64_t splitmix64(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// A standard normal draw (Box-Muller in double) from splitmix64.
inline double normal01(std::uint64_t& s) {
  const double u1 = (static_cast<double>(splitmix64(s) >> 11) + 0.5) * 0x1.0p-53;
  const double u2 = static_cast<double>(splitmix64(s) >> 11) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

/// @brief The trainable weights of a drafter (the frozen embedding / classifier live apart).
template <class T>
struct drafter_weights {
  drafter_config cfg;              ///< shape
  std::array<mat<T>, p_count> w{}; ///< one matrix per slot (norms: [1 x d]; absent: 0 x 0)

  /// @brief The [rows, cols] of slot p for cfg ({0, 0}: absent).
  [[nodiscard]] std::array<idx, 2> shape(int p) const {
    const idx d = cfg.dim;
    const idx qd = static_cast<idx>(cfg.heads) * cfg.head_dim();
    const idx kd = static_cast<idx>(cfg.kv_heads) * cfg.head_dim();
    const bool e = cfg.kind == arch::eagle3;
    const idx in = e ? 2 * d : d;
    switch (p) {
    case p_fc:
      return {d, e ? cfg.feature_cols() : 2 * d};
    case p_ln_in:
      return e ? std::array<idx, 2>{0, 0} : std::array<idx, 2>{1, d};
    case p_norm_h:
    case p_norm_e:
    case p_post_ln:
    case p_final:
      return {1, d};
    case p_wq:
      return {qd, in};
    case p_wk:
    case p_wv:
      return {kd, in};
    case p_wo:
      return {d, qd};
    case p_gate:
    case p_up:
      return {cfg.ffn, d};
    case p_down:
      return {d, cfg.ffn};
    default:
      return {0, 0};
    }
  }

  /// @brief Sizes every slot for `c` and draws the initial weights from `seed`: norms 1,
  ///        projections N(0, 0.02^2) (the HF initialiser's std). O(parameters).
  void init(const drafter_config& c, std::uint64_t seed) {
    cfg = c;
    std::uint64_t s = seed * 0x2545f4914f6cdd1dull + 0x1234567ull;
    for (int p = 0; p < p_count; ++p) {
      const auto sh = shape(p);
      w[p].resize(sh[0], sh[1]);
      for (idx i = 0; i < w[p].size(); ++i)
        w[p].data()[i] = is_norm(p) ? T(1) : static_cast<T>(0.02 * normal01(s));
    }
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
  [[nodiscard]] drafter_weights<U> cast() const {
    drafter_weights<U> o;
    o.cfg = cfg;
    for (int p = 0; p < p_count; ++p)
      o.w[p] = w[p].template cast<U>();
    return o;
  }
};

/// @brief Gradients of a drafter, slot for slot.
template <class T>
struct drafter_grads {
  std::array<mat<T>, p_count> g{}; ///< one per slot

  /// Zero gradients shaped like `w`.
  void zero_like(const drafter_weights<T>& w) {
    for (int p = 0; p < p_count; ++p)
      g[p].setZero(w.w[p].rows(), w.w[p].cols());
  }
  /// this += o.
  void add(const drafter_grads& o) {
    for (int p = 0; p < p_count; ++p)
      g[p] += o.g[p];
  }
};

/// @brief Everything one forward of a set of rows keeps for its backward.
template <class T>
struct step_state {
  bool from_target = true;       ///< rows read target features (EAGLE-3: through fc)
  std::vector<std::int64_t> pos; ///< RoPE position per row
  mat<T> in;                     ///< target features or own hidden rows
  mat<T> e;                      ///< token embeddings
  mat<T> hf, hn, en, z, x0, xn;  ///< fused h; norms; layer input; MTP-1 projection and norm
  std::vector<T> rh, re, rx;     ///< RMS factors
  mat<T> q, k, v;                ///< after RoPE (q, k)
  attention_mask mask;           ///< which keys each row sees
  attention_cache<T> ac;         ///< softmax rows
  mat<T> att, o, r, mn, g, u, a, f, y, yn, logits; ///< the rest of the layer
  std::vector<T> rm, ry;                           ///< RMS factors
};

/// @brief Rows -> q, k, v (roped) and the residual base; fills s.hf .. s.v. O(rows * layer).
template <class T>
void forward_pre(const drafter_weights<T>& W, step_state<T>& s) {
  const auto& w = W.w;
  if (W.cfg.kind == arch::eagle3) {
    if (s.from_target)
      linear_forward(s.in, w[p_fc], s.hf);
    else
      s.hf = s.in;
    rmsnorm_forward(s.hf, w[p_norm_h], s.hn, s.rh);
    rmsnorm_forward(s.e, w[p_norm_e], s.en, s.re);
    concat_cols(s.en, s.hn, s.z);
  } else {
    s.hf = s.in;
    rmsnorm_forward(s.hf, w[p_norm_h], s.hn, s.rh);
    rmsnorm_forward(s.e, w[p_norm_e], s.en, s.re);
    mat<T> cat;
    concat_cols(s.hn, s.en, cat);
    linear_forward(cat, w[p_fc], s.x0);
    rmsnorm_forward(s.x0, w[p_ln_in], s.xn, s.rx);
  }
  const mat<T>& zin = W.cfg.kind == arch::eagle3 ? s.z : s.xn;
  linear_forward(zin, w[p_wq], s.q);
  linear_forward(zin, w[p_wk], s.k);
  linear_forward(zin, w[p_wv], s.v);
  rope_apply(s.q, s.pos, W.cfg.head_dim());
  rope_apply(s.k, s.pos, W.cfg.head_dim());
}

/// @brief s.att -> logits and hidden output y (E: the frozen classifier [V x d]).
///        O(rows * (layer + V * d)).
template <class T>
void forward_post(const drafter_weights<T>& W, const mat<T>& E, step_state<T>& s) {
  const auto& w = W.w;
  linear_forward(s.att, w[p_wo], s.o);
  s.r = (W.cfg.kind == arch::eagle3 ? s.hf : s.x0) + s.o;
  rmsnorm_forward(s.r, w[p_post_ln], s.mn, s.rm);
  linear_forward(s.mn, w[p_gate], s.g);
  linear_forward(s.mn, w[p_up], s.u);
  silu_mul_forward(s.g, s.u, s.a);
  linear_forward(s.a, w[p_down], s.f);
  s.y = s.r + s.f;
  rmsnorm_forward(s.y, w[p_final], s.yn, s.ry);
  linear_forward(s.yn, E, s.logits);
}

/// @brief Backward of forward_post: from dlogits (and dy, the gradient reaching y from a later
///        step, may be empty) to datt and dr_base (the gradient of the residual base). O(fwd).
template <class T>
void backward_post(const drafter_weights<T>& W,
                   const mat<T>& E,
                   const step_state<T>& s,
                   const mat<T>& dlogits,
                   const mat<T>* dy_in,
                   drafter_grads<T>& G,
                   mat<T>& datt,
                   mat<T>& dbase) {
  const auto& w = W.w;
  auto& g = G.g;
  const idx n = s.y.rows();
  const idx d = s.y.cols();
  mat<T> dyn = dlogits * E; // frozen classifier: no weight gradient
  mat<T> dy = mat<T>::Zero(n, d);
  if (dy_in != nullptr)
    dy += *dy_in;
  rmsnorm_backward(s.y, w[p_final], s.ry, dyn, dy, &g[p_final]);
  // y = r + f
  mat<T> dr = dy;
  mat<T> da = mat<T>::Zero(s.a.rows(), s.a.cols());
  linear_backward(s.a, w[p_down], dy, &da, &g[p_down]);
  mat<T> dg = mat<T>::Zero(s.g.rows(), s.g.cols());
  mat<T> du = mat<T>::Zero(s.u.rows(), s.u.cols());
  silu_mul_backward(s.g, s.u, da, dg, du);
  mat<T> dmn = mat<T>::Zero(n, d);
  linear_backward(s.mn, w[p_gate], dg, &dmn, &g[p_gate]);
  linear_backward(s.mn, w[p_up], du, &dmn, &g[p_up]);
  rmsnorm_backward(s.r, w[p_post_ln], s.rm, dmn, dr, &g[p_post_ln]);
  // r = base + o
  dbase = dr;
  datt.setZero(s.att.rows(), s.att.cols());
  linear_backward(s.att, w[p_wo], dr, &datt, &g[p_wo]);
}

/// @brief Backward of forward_pre: from dq, dk, dv (roped) and dbase to din (the gradient of
///        s.in; the embedding is frozen). Modifies dq, dk. O(fwd).
template <class T>
void backward_pre(const drafter_weights<T>& W,
                  const step_state<T>& s,
                  mat<T>& dq,
                  mat<T>& dk,
                  const mat<T>& dv,
                  const mat<T>& dbase,
                  drafter_grads<T>& G,
                  mat<T>& din) {
  const auto& w = W.w;
  auto& g = G.g;
  const int hd = W.cfg.head_dim();
  rope_apply(dq, s.pos, hd, true);
  rope_apply(dk, s.pos, hd, true);
  const bool eagle = W.cfg.kind == arch::eagle3;
  const mat<T>& zin = eagle ? s.z : s.xn;
  mat<T> dz = mat<T>::Zero(zin.rows(), zin.cols());
  linear_backward(zin, w[p_wq], dq, &dz, &g[p_wq]);
  linear_backward(zin, w[p_wk], dk, &dz, &g[p_wk]);
  linear_backward(zin, w[p_wv], dv, &dz, &g[p_wv]);
  const idx d = W.cfg.dim;
  mat<T> dhf;
  mat<T> den = mat<T>::Zero(s.e.rows(), d); // embedding frozen: computed, not propagated
  if (eagle) {
    dhf = dbase; // residual base = hf
    const mat<T> dz_e = dz.leftCols(d);
    const mat<T> dz_h = dz.rightCols(d);
    rmsnorm_backward(s.hf, w[p_norm_h], s.rh, dz_h, dhf, &g[p_norm_h]);
    rmsnorm_backward(s.e, w[p_norm_e], s.re, dz_e, den, &g[p_norm_e]);
    if (s.from_target) {
      din.setZero(s.in.rows(), s.in.cols());
      linear_backward(s.in, w[p_fc], dhf, &din, &g[p_fc]);
    } else {
      din = dhf;
    }
  } else {
    mat<T> dx0 = dbase;
    rmsnorm_backward(s.x0, w[p_ln_in], s.rx, dz, dx0, &g[p_ln_in]);
    mat<T> cat;
    concat_cols(s.hn, s.en, cat);
    mat<T> dcat = mat<T>::Zero(cat.rows(), cat.cols());
    linear_backward(cat, w[p_fc], dx0, &dcat, &g[p_fc]);
    const mat<T> dhn = dcat.leftCols(d);
    const mat<T> de = dcat.rightCols(d);
    dhf = mat<T>::Zero(s.hf.rows(), d);
    rmsnorm_backward(s.hf, w[p_norm_h], s.rh, dhn, dhf, &g[p_norm_h]);
    rmsnorm_backward(s.e, w[p_norm_e], s.re, de, den, &g[p_norm_e]);
    din = dhf;
  }
}

// --- training ------------------------------------------------------------------------------------

/// @brief One training sequence: tokens, the target's features and next-token distributions.
template <class T>
struct train_example {
  std::vector<std::int32_t> tokens; ///< x_0 .. x_{L-1}
  mat<T> features;                  ///< [L x feature_cols]: row t = target features at t
  mat<T> target_probs;              ///< [L x V]: row t = the target's p(x_{t+1} | x_<=t) at T = 1
  idx loss_begin = 1;               ///< first supervised label position (the prompt's length)
};

/// Per unroll step: the sums behind the logged metrics.
struct step_metrics {
  double weight = 0; ///< sum of loss weights (valid rows)
  double loss = 0;   ///< sum of weight * loss
  double rows = 0;   ///< valid rows
  double argmax = 0; ///< rows whose draft argmax equals the target's argmax
  double accept = 0; ///< sum of c* = 1 - TV(draft, target) over valid rows
};

/// @brief The loss of a training run, per unroll step.
struct train_metrics {
  std::vector<step_metrics> steps; ///< one per unroll step
  /// this += o.
  void add(const train_metrics& o) {
    if (steps.size() < o.steps.size())
      steps.resize(o.steps.size());
    for (std::size_t k = 0; k < o.steps.size(); ++k) {
      steps[k].weight += o.steps[k].weight;
      steps[k].loss += o.steps[k].loss;
      steps[k].rows += o.steps[k].rows;
      steps[k].argmax += o.steps[k].argmax;
      steps[k].accept += o.steps[k].accept;
    }
  }
  /// The optimised objective: the step-weighted loss summed over steps, per supervised step-0 row.
  [[nodiscard]] double loss() const {
    double n = 0;
    for (const auto& s : steps)
      n += s.loss;
    return steps.empty() || steps[0].rows <= 0 ? 0.0 : n / steps[0].rows;
  }
  /// Expected tau under teacher forcing: 1 + sum_k prod_{i<=k} mean c*_i (a summary only).
  [[nodiscard]] double tau_estimate() const {
    double tau = 1;
    double prod = 1;
    for (const auto& s : steps) {
      if (s.rows <= 0)
        break;
      prod *= s.accept / s.rows;
      tau += prod;
    }
    return tau;
  }
};

/// Rows supervised at unroll step k of a sequence of L tokens (t = 0 .. L - 2 - k).
inline idx rows_at_step(idx L, int k) {
  return std::max<idx>(0, L - 1 - k);
}

/// @brief Number of valid (supervised) step-0 rows of an example: the normaliser of its loss.
template <class T>
idx supervised_rows(const train_example<T>& ex) {
  const idx L = static_cast<idx>(ex.tokens.size());
  idx n = 0;
  for (idx t = 0; t < rows_at_step(L, 0); ++t)
    if (t + 2 <= L - 1 && t + 2 >= ex.loss_begin)
      ++n;
  return n;
}

/// Scratch of train_sequence (kept between calls to save allocations).
template <class T>
struct train_scratch {
  std::vector<step_state<T>> steps; ///< one per unroll step
  mat<T> K, V, dK, dV;              ///< keys / values of every step, stacked
};

/// @brief Forward and (when G is not null) backward of one sequence with `ttt` unroll steps
///        (1 = no training-time test). EAGLE-3: soft cross-entropy against the target's
///        distribution, step k weighted step_decay^k; MTP-1: hard cross-entropy on x_{t+2}. Each
///        row's loss is scaled by `scale` (1 / the batch's supervised step-0 rows), so the batch
///        gradient is a token mean. Adds to `m` and to `*G`.
/// @return errc from the losses (a non-finite logit) or ok
/// @par Complexity
/// O(ttt * L * (layer + V * d) + ttt^2 * L^2 * d) time.
template <class T>
specdec::status train_sequence(const drafter_weights<T>& W,
                               const mat<T>& E,
                               const train_example<T>& ex,
                               int ttt,
                               T scale,
                               double step_decay,
                               drafter_grads<T>* G,
                               train_metrics& m,
                               train_scratch<T>& sc) {
  const drafter_config& c = W.cfg;
  const bool eagle = c.kind == arch::eagle3;
  const idx L = static_cast<idx>(ex.tokens.size());
  const idx V = c.vocab;
  const int H = c.heads;
  const int Gk = c.kv_heads;
  const int hd = c.head_dim();
  const idx kvw = static_cast<idx>(Gk) * hd;
  if (m.steps.size() < static_cast<std::size_t>(ttt))
    m.steps.resize(static_cast<std::size_t>(ttt));
  sc.steps.resize(static_cast<std::size_t>(ttt));
  // Key rows of each step in the stacked K / V.
  std::vector<idx> base(static_cast<std::size_t>(ttt) + 1, 0);
  for (int k = 0; k < ttt; ++k)
    base[static_cast<std::size_t>(k) + 1] = base[static_cast<std::size_t>(k)] + rows_at_step(L, k);
  const idx total = base.back();
  sc.K.resize(total, kvw);
  sc.V.resize(total, kvw);
  int steps_run = 0;
  std::vector<mat<T>> dlogits(static_cast<std::size_t>(ttt));
  for (int k = 0; k < ttt; ++k) {
    const idx n = rows_at_step(L, k);
    if (n == 0)
      break;
    step_state<T>& s = sc.steps[static_cast<std::size_t>(k)];
    s.from_target = k == 0;
    if (k == 0)
      s.in = ex.features.topRows(n);
    else
      s.in = sc.steps[static_cast<std::size_t>(k) - 1].y.topRows(n);
    std::vector<std::int32_t> toks(static_cast<std::size_t>(n));
    s.pos.resize(static_cast<std::size_t>(n));
    for (idx t = 0; t < n; ++t) {
      toks[static_cast<std::size_t>(t)] = ex.tokens[static_cast<std::size_t>(t + 1 + k)];
      s.pos[static_cast<std::size_t>(t)] = t + k;
    }
    embed_rows(E, toks, s.e);
    forward_pre(W, s);
    sc.K.middleRows(base[static_cast<std::size_t>(k)], n) = s.k;
    sc.V.middleRows(base[static_cast<std::size_t>(k)], n) = s.v;
    // Mask: step-0 keys <= t, then the key at t of steps 1..k.
    s.mask = attention_mask{};
    std::vector<idx> ex_keys(static_cast<std::size_t>(k));
    for (idx t = 0; t < n; ++t) {
      for (int j = 1; j <= k; ++j)
        ex_keys[static_cast<std::size_t>(j) - 1] = base[static_cast<std::size_t>(j)] + t;
      s.mask.add(t + 1, ex_keys.begin(), ex_keys.end());
    }
    attention_forward(s.q, sc.K, sc.V, H, Gk, hd, s.mask, s.att, s.ac);
    forward_post(W, E, s);
    // Losses.
    mat<T>& dl = dlogits[static_cast<std::size_t>(k)];
    dl.setZero(n, V);
    step_metrics& sm = m.steps[static_cast<std::size_t>(k)];
    const T wk = static_cast<T>(std::pow(step_decay, k));
    for (idx t = 0; t < n; ++t) {
      const idx j = t + 2 + k; // label position
      if (j > L - 1 || j < ex.loss_begin)
        continue;
      const std::span<const T> row{s.logits.data() + t * V, static_cast<std::size_t>(V)};
      const std::span<const T> tp{ex.target_probs.data() + (j - 1) * V,
                                  static_cast<std::size_t>(V)};
      const std::span<T> gr{dl.data() + t * V, static_cast<std::size_t>(V)};
      const T w = wk * scale;
      specdec::train::loss_result<T> lr;
      if (eagle)
        lr = specdec::train::soft_cross_entropy<T>(row, tp, w, G != nullptr ? gr : std::span<T>{});
      else
        lr = specdec::train::hard_cross_entropy<T>(
            row, ex.tokens[static_cast<std::size_t>(j)], w, G != nullptr ? gr : std::span<T>{});
      if (!lr.st.ok())
        return lr.st;
      sm.weight += static_cast<double>(wk);
      sm.loss += static_cast<double>(lr.value) / static_cast<double>(scale);
      sm.rows += 1;
      idx am = 0;
      idx tm = 0;
      for (idx v = 1; v < V; ++v) {
        if (row[static_cast<std::size_t>(v)] > row[static_cast<std::size_t>(am)])
          am = v;
        if (tp[static_cast<std::size_t>(v)] > tp[static_cast<std::size_t>(tm)])
          tm = v;
      }
      sm.argmax += am == tm ? 1 : 0;
      if (G == nullptr) // c* costs a softmax per row: evaluation only
        sm.accept += static_cast<double>(specdec::train::acceptance_estimate<T>(row, tp));
    }
    steps_run = k + 1;
  }
  if (G == nullptr)
    return specdec::status{};
  // Backward, last step first: a step's keys get every later query's gradient before its own.
  sc.dK.setZero(total, kvw);
  sc.dV.setZero(total, kvw);
  mat<T> dy_next; // gradient reaching step k's y from step k+1's input
  bool have_next = false;
  for (int k = steps_run - 1; k >= 0; --k) {
    step_state<T>& s = sc.steps[static_cast<std::size_t>(k)];
    const idx n = s.y.rows();
    mat<T> datt;
    mat<T> dbase;
    mat<T> dyk;
    if (have_next) {
      dyk = mat<T>::Zero(n, c.dim);
      dyk.topRows(dy_next.rows()) = dy_next;
    }
    backward_post(
        W, E, s, dlogits[static_cast<std::size_t>(k)], have_next ? &dyk : nullptr, *G, datt, dbase);
    mat<T> dq = mat<T>::Zero(n, s.q.cols());
    attention_backward(s.q, sc.K, sc.V, H, Gk, hd, s.mask, s.ac, datt, dq, sc.dK, sc.dV);
    mat<T> dk = sc.dK.middleRows(base[static_cast<std::size_t>(k)], n);
    const mat<T> dv = sc.dV.middleRows(base[static_cast<std::size_t>(k)], n);
    mat<T> din;
    backward_pre(W, s, dq, dk, dv, dbase, *G, din);
    dy_next = std::move(din);
    have_next = true;
  }
  return specdec::status{};
}

// --- inference -----------------------------------------------------------------------------------

/// @brief A drafter at inference: its weights, the frozen classifier and a KV cache of entries
///        (specdec::propose::feature_draft_network). Each entry has a parent (the entry before it
///        on its path, -1 for none); an entry sees its own path. The leading entries that form
///        one chain are tracked, so a committed context costs no walk.
class drafter_net {
public:
  /// @brief Binds weights (fp32) and the frozen embedding/classifier E [V x d]; `capacity`
  ///        entries at most. Both must outlive the net.
  drafter_net(const drafter_weights<float>& w, const mat<float>& E, idx capacity)
      : w_(&w)
      , e_(&E)
      , cap_(capacity) {
    const idx kvw = static_cast<idx>(w.cfg.kv_heads) * w.cfg.head_dim();
    K_.setZero(capacity, kvw);
    V_.setZero(capacity, kvw);
    parent_.reserve(static_cast<std::size_t>(capacity));
  }

  /// Target layers it reads (feature_layers of the proposer).
  [[nodiscard]] specdec::row_view<const std::int32_t> feature_layers() const noexcept {
    return {w_->cfg.layers.data(), static_cast<specdec::index_t>(w_->cfg.layers.size())};
  }
  /// Width of an own hidden row (d).
  [[nodiscard]] specdec::index_t hidden_size() const noexcept {
    return w_->cfg.dim;
  }
  /// Width of a target feature row (layers * d).
  [[nodiscard]] specdec::index_t feature_size() const noexcept {
    return w_->cfg.feature_cols();
  }
  /// Vocabulary.
  [[nodiscard]] specdec::index_t vocab_size() const noexcept {
    return w_->cfg.vocab;
  }
  /// Entries in the cache.
  [[nodiscard]] specdec::index_t size() const noexcept {
    return static_cast<specdec::index_t>(parent_.size());
  }
  /// Most entries.
  [[nodiscard]] specdec::index_t capacity() const noexcept {
    return cap_;
  }
  /// @brief Drops entries >= n. @return invalid_argument for n < 0 or n > size(). O(1).
  specdec::status truncate(specdec::index_t n) {
    if (n < 0 || n > size())
      return specdec::status{specdec::errc::invalid_argument};
    parent_.resize(static_cast<std::size_t>(n));
    chain_ = std::min<idx>(chain_, n);
    return specdec::status{};
  }

  /// @brief Appends rows (all target rows or all own rows) and writes each row's logits and
  ///        hidden output. A row's parent is an earlier entry or one appended before it in the
  ///        call (-1: none).
  /// @return invalid_argument for a bad parent, a mix of row kinds or null hidden; overflow past
  ///   capacity; token_out_of_range; shape_mismatch for small outputs
  /// @par Complexity
  /// O(rows * (layer + V * d) + rows * path length * d).
  specdec::status append(specdec::row_view<const specdec::feature_draft_step> rows,
                         specdec::matrix_view<float> logits,
                         specdec::matrix_view<float> hidden) {
    using specdec::errc;
    using specdec::status;
    const idx n = rows.size;
    if (n == 0)
      return status{};
    const drafter_config& c = w_->cfg;
    if (rows.data == nullptr || logits.rows < n || logits.cols != c.vocab
        || logits.row_stride < logits.cols || hidden.rows < n || hidden.cols != c.dim
        || hidden.row_stride < hidden.cols)
      return status{logits.data == nullptr ? errc::invalid_argument : errc::shape_mismatch};
    if (size() + n > cap_)
      return status{errc::overflow};
    const bool target = rows[0].target_hidden;
    const idx width = target ? c.feature_cols() : c.dim;
    for (idx i = 0; i < n; ++i) {
      const auto& r = rows[i];
      if (r.target_hidden != target || r.hidden == nullptr || r.parent < -1
          || r.parent >= size() + i || r.position < 0)
        return status{errc::invalid_argument};
      if (r.token < 0 || r.token >= c.vocab)
        return status{errc::token_out_of_range};
    }
    s_.from_target = target;
    s_.in.resize(n, width);
    s_.pos.resize(static_cast<std::size_t>(n));
    std::vector<std::int32_t> toks(static_cast<std::size_t>(n));
    for (idx i = 0; i < n; ++i) {
      std::copy_n(rows[i].hidden, width, s_.in.data() + i * width);
      s_.pos[static_cast<std::size_t>(i)] = rows[i].position;
      toks[static_cast<std::size_t>(i)] = rows[i].token;
    }
    embed_rows(*e_, toks, s_.e);
    forward_pre(*w_, s_);
    const idx first = size();
    for (idx i = 0; i < n; ++i) {
      K_.row(first + i) = s_.k.row(i);
      V_.row(first + i) = s_.v.row(i);
      parent_.push_back(rows[i].parent);
    }
    // Visibility: the chain prefix, then the ancestors past it, then the row itself.
    s_.mask = attention_mask{};
    std::vector<idx> path;
    for (idx i = 0; i < n; ++i) {
      path.clear();
      const idx self = first + i;
      idx p = self;
      while (p >= chain_ && p >= 0) {
        path.push_back(p);
        p = parent_[static_cast<std::size_t>(p)];
      }
      std::reverse(path.begin(), path.end());
      s_.mask.add(p + 1, path.begin(), path.end());
    }
    while (chain_ < size() && parent_[static_cast<std::size_t>(chain_)] == chain_ - 1)
      ++chain_;
    attention_forward(s_.q, K_, V_, c.heads, c.kv_heads, c.head_dim(), s_.mask, s_.att, s_.ac);
    forward_post(*w_, *e_, s_);
    for (idx i = 0; i < n; ++i) {
      std::copy_n(s_.logits.data() + i * c.vocab, c.vocab, logits.data + i * logits.row_stride);
      std::copy_n(s_.y.data() + i * c.dim, c.dim, hidden.data + i * hidden.row_stride);
    }
    return status{};
  }

private:
  const drafter_weights<float>* w_;
  const mat<float>* e_;
  idx cap_;
  idx chain_ = 0; // entries [0, chain_) form one chain (parent i - 1)
  std::vector<idx> parent_;
  mat<float> K_, V_;
  step_state<float> s_;
};

} // namespace deepspec
