// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Semi-autoregressive block drafting (DSpark, spec section 5): a parallel backbone gives
///        base logits U and hidden states H for a whole block in one forward pass, a cheap
///        sequential head adds a bias that depends on the previously sampled token, and a
///        confidence head scores every position for the threshold cut or the prefix scheduler.
///
/// The drafter only reports what it offers (the block and its confidences); how many drafts are
/// verified is the draft-length policy's choice (sched/: sched::threshold_length for the static
/// theta cut, sched::scheduled_length for Algorithm 1), applied by the decoder.
///
/// The draft rows are the corrected logits L_k = U_k + B_k (distribution_kind::logits), so the
/// verifier applies the same temperature, top-k, top-p and min-p to draft and target rows and
/// p_d = softmax(L_k / T), which is the law each x_k was drawn from: rejection sampling stays
/// exact. With head_kind::none (DFlash) L_k = U_k.

#include <specdec/config.hpp>

#include <specdec/calib/sts.hpp>
#include <specdec/core/concepts.hpp>
#include <specdec/core/executor.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/cpu/serial_executor.hpp>
#include <specdec/propose/concepts.hpp>
#include <specdec/propose/semi_ar_heads.hpp>
#include <specdec/sampling/distribution.hpp>
#include <specdec/sampling/params.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace propose {

/// @brief What a parallel backbone is asked for: one block of `gamma` positions after `context`.
struct backbone_request {
  std::uint64_t request_id = 0;     ///< the engine's id of the sequence
  row_view<const token_id> context; ///< committed tokens, oldest first; the last is the anchor x0
  int gamma = 0;                    ///< positions in the block, 1 <= gamma <= block_size()
};

/// @brief A parallel block backbone (DSpark's or DFlash's draft model).
///
/// Required: `status run_block(const backbone_request&, matrix_view<float> U,
/// matrix_view<float> H)`, `index_t vocab_size() const`, `index_t hidden_size() const` and
/// `int block_size() const`.
/// Semantics: run_block writes r.gamma rows of U (vocab_size() base logits each) and of H
/// (hidden_size() values each, after the final norm); row k-1 predicts x_k, the token at absolute
/// position context.size - 1 + k, from the context alone (the block's inputs are the anchor and
/// mask tokens, never the drafts). block_size() is the largest gamma the backbone supports.
/// Use `SPECDEC_CHECK(parallel_backbone, B)` for one readable message per missing member.
/// @tparam B the candidate backbone type
template <class B>
concept parallel_backbone = requires(
    B& b, const B& cb, const backbone_request& r, matrix_view<float> U, matrix_view<float> H) {
  { b.run_block(r, U, H) } -> std::same_as<status>;
  { cb.vocab_size() } -> std::convertible_to<index_t>;
  { cb.hidden_size() } -> std::convertible_to<index_t>;
  { cb.block_size() } -> std::convertible_to<int>;
};

/// @brief A parallel backbone that keeps per-request state and is fed by the target (DFlash and
///        DSpark condition every block on the target's hidden states of the committed context).
///
/// Checked, besides parallel_backbone: proposer_lifecycle's `status begin(std::uint64_t,
/// row_view<const token_id>)`, `status observe(const round_outcome&)` and `end(std::uint64_t)`,
/// with the same contract as a stateful_proposer's. semi_ar_drafter forwards them, so the drafter
/// over such a backbone is a stateful_proposer; when the backbone also has `feature_layers()`
/// (and `observe_prompt`), the drafter forwards those too and is a feature_proposer (and a
/// prompt_feature_proposer): the loop then hands the backbone the target features of the prompt
/// and of every kept row.
/// @tparam B the candidate backbone type
template <class B>
concept stateful_backbone = parallel_backbone<B> && proposer_lifecycle<B>;

/// @brief A stateful_backbone that names the target layers it reads (see stateful_backbone).
/// @tparam B the candidate backbone type
template <class B>
concept feature_backbone = stateful_backbone<B> && requires(const B& cb) {
  { cb.feature_layers() } -> std::convertible_to<row_view<const std::int32_t>>;
};

/// @brief A feature_backbone that also takes the prompt's target features (see stateful_backbone).
/// @tparam B the candidate backbone type
template <class B>
concept prompt_feature_backbone = feature_backbone<B> && requires(B& b,
                                                                  std::uint64_t id,
                                                                  index_t start,
                                                                  matrix_view<const float> f) {
  { b.observe_prompt(id, start, f) } -> std::same_as<status>;
};

} // namespace propose

namespace diag {

/// @brief Checks `propose::parallel_backbone` clause by clause.
/// @tparam B the type to check against propose::parallel_backbone
/// @return true when satisfied (else a static_assert fires).
template <class B>
consteval bool check_parallel_backbone() {
  static_assert(
      requires(
          B & b, const propose::backbone_request& r, matrix_view<float> U, matrix_view<float> H) {
        { b.run_block(r, U, H) } -> std::same_as<status>;
      },
      "parallel_backbone: B needs 'status run_block(const propose::backbone_request&, "
      "matrix_view<float> U, matrix_view<float> H)'");
  static_assert(
      requires(const B& b) {
        { b.vocab_size() } -> std::convertible_to<index_t>;
      },
      "parallel_backbone: B needs 'index_t vocab_size() const'");
  static_assert(
      requires(const B& b) {
        { b.hidden_size() } -> std::convertible_to<index_t>;
      },
      "parallel_backbone: B needs 'index_t hidden_size() const'");
  static_assert(
      requires(const B& b) {
        { b.block_size() } -> std::convertible_to<int>;
      },
      "parallel_backbone: B needs 'int block_size() const'");
  return true;
}

} // namespace diag

namespace propose {

/// @brief The inputs of one semi-autoregressive block (gamma = base_logits.rows).
struct block_inputs {
  token_id anchor = 0;                  ///< x0, the last committed token
  matrix_view<const float> base_logits; ///< U; @shape{[gamma, V]}
  matrix_view<const float> hidden;      ///< H, read by gated/rnn heads and the confidence head
                                        ///< (may be empty otherwise); @shape{[gamma, d]}
  row_view<const float> uniforms;       ///< u_k in [0, 1) for x_k (may be empty when greedy)
};

/// @brief Where sample_block writes one block (caller-owned buffers of at least gamma entries).
struct block_outputs {
  row_view<token_id> tokens;         ///< x_1 .. x_gamma
  matrix_view<float> logits;         ///< L rows (U + B); @shape{[gamma, V]}, row_stride >= V
  row_view<float> confidence_logits; ///< z_k (used only with a confidence head)
  int length = 0;                    ///< set by sample_block: tokens (and L rows) written
};

/// @brief The exact left-to-right loop of spec 5.4 over one block, with the library's row
///        executor for the sampling passes.
///
/// For k = 1 .. gamma: e = w1[x_{k-1}] (x_0 = anchor), the head's coefficients (head_coefficient;
/// the rnn state starts as the zero state, passed as a null state_in at k = 1), L_k[v] =
/// U_k[v] + head_bias(v) written into the output row (L_k = U_k for head_kind::none), then
/// `sampling::prepare_row` and `sampling::sample_row` on L_k with `params` and u_k: the argmax
/// (first on ties) when params.greedy() (T < 1e-5), else the inverse-CDF draw of the processed
/// row (temperature, top-k, min-p, top-p). After the loop, with a confidence head, z_k =
/// confidence_logit(h_k, w1[x_{k-1}]) for every position.
///
/// Errors before the loop write nothing (length 0). A bad row stops the block: the tokens and L
/// rows before it stay valid, `length` counts them (k - 1), and L row k holds the bad row.
/// @tparam E a row_executor (cpu::serial_executor on the host)
/// @tparam W the head's weight type: float or bfloat16
/// @param[in] ex the executor
/// @param[in] head the sequential head (kind none for DFlash)
/// @param[in] confidence the confidence head, or null for none
/// @param[in] in anchor, U, H and uniforms
/// @param[in] params sampling parameters, the same as the target's
/// @param[in,out] out the buffers; `length` is set
/// @return errc::ok; the params' validate() code; errc::invalid_argument for a null buffer of
///   positive size or an empty vocabulary; errc::vocab_mismatch when the head's vocab (when not
///   0) differs from U's columns; errc::token_out_of_range for an anchor outside [0, V);
///   errc::shape_mismatch for output buffers shorter than gamma, L columns or stride other than
///   V, too few uniforms (sampling mode), H with fewer than gamma rows or a column count other
///   than the head's (gated, rnn) or the confidence head's hidden size, or a confidence head
///   whose rank differs from the head's (with_markov); errc::invalid_value when L_k has a NaN or
///   +inf (NaN or +inf in U or H) or a confidence logit is not finite (NaN or inf in H; the
///   tokens are then complete); errc::zero_mass_row when L_k is all -inf
/// @par Complexity
/// Per position O(V * rank) for the bias (plus O(rank * (hidden + rank)) for gated and rnn),
/// one or two executor passes over V, and O(hidden + rank) for z. Allocates O(rank) scratch.
template <row_executor E, class W>
[[nodiscard]] status sample_block(const E& ex,
                                  const sequential_head_view<W>& head,
                                  const confidence_head_view<W>* confidence,
                                  const block_inputs& in,
                                  const sampling::sampling_params& params,
                                  block_outputs& out) {
  out.length = 0;
  if (const errc pe = params.validate(); pe != errc::ok)
    return status{pe};
  const index_t gamma = in.base_logits.rows;
  const index_t vocab = in.base_logits.cols;
  if (gamma < 0 || vocab < 1 || (gamma > 0 && in.base_logits.data == nullptr))
    return status{errc::invalid_argument};
  if (head.vocab != 0 && head.vocab != vocab)
    return status{errc::vocab_mismatch};
  if (in.anchor < 0 || static_cast<index_t>(in.anchor) >= vocab)
    return status{errc::token_out_of_range};
  if (in.base_logits.row_stride < vocab)
    return status{errc::shape_mismatch};
  const bool uses_hidden =
      head.kind == head_kind::gated || head.kind == head_kind::rnn || confidence != nullptr;
  if (uses_hidden) {
    if (in.hidden.rows < gamma || in.hidden.row_stride < in.hidden.cols)
      return status{errc::shape_mismatch};
    if ((head.kind == head_kind::gated || head.kind == head_kind::rnn)
        && in.hidden.cols != head.hidden)
      return status{errc::shape_mismatch};
    if (confidence != nullptr && in.hidden.cols != confidence->hidden)
      return status{errc::shape_mismatch};
    if (gamma > 0 && in.hidden.cols > 0 && in.hidden.data == nullptr)
      return status{errc::invalid_argument};
  }
  if (confidence != nullptr && confidence->with_markov && confidence->rank != head.rank)
    return status{errc::shape_mismatch};
  if (out.tokens.size < gamma || out.logits.rows < gamma || out.logits.cols != vocab
      || out.logits.row_stride < vocab || (!params.greedy() && in.uniforms.size < gamma)
      || (confidence != nullptr && out.confidence_logits.size < gamma))
    return status{errc::shape_mismatch};
  if (gamma > 0
      && (out.tokens.data == nullptr || out.logits.data == nullptr
          || (confidence != nullptr && out.confidence_logits.data == nullptr)))
    return status{errc::invalid_argument};

  const index_t rank = head.kind == head_kind::none ? 0 : head.rank;
  const auto r = static_cast<std::size_t>(rank);
  std::vector<float> scratch(4 * r + 1);
  float* e = scratch.data();
  float* coef = e + r;
  float* state_a = coef + r;
  float* state_b = state_a + r;
  const float* state_in = nullptr; // the zero state at k = 1
  token_id prev = in.anchor;
  for (index_t k = 0; k < gamma; ++k) {
    const float* hk = uses_hidden ? in.hidden.data + k * in.hidden.row_stride : nullptr;
    const float* u_row = in.base_logits.data + k * in.base_logits.row_stride;
    float* l_row = out.logits.data + k * out.logits.row_stride;
    if (rank > 0) {
      embedding_row(head, prev, e);
      float* state_out = state_in == state_a ? state_b : state_a;
      for (index_t j = 0; j < rank; ++j)
        coef[j] = head_coefficient(head, j, e, hk, state_in, state_out);
      state_in = state_out;
      for (index_t v = 0; v < vocab; ++v)
        l_row[v] = ::specdec::detail::fadd(u_row[v], head_bias(head, v, coef));
    } else {
      std::copy_n(u_row, vocab, l_row);
    }
    const sampling::dist_row<float> row{l_row, vocab, distribution_kind::logits};
    const sampling::row_stats st = sampling::prepare_row(ex, row, params);
    if (!st.ok())
      return status{st.status.has(row_status::target_invalid) ? errc::invalid_value
                                                              : errc::zero_mass_row};
    const float u = k < in.uniforms.size ? in.uniforms[k] : 0.0f;
    const index_t x = sampling::sample_row(ex, row, st, u);
    if (x < 0 || x >= vocab)
      return status{errc::zero_mass_row};
    prev = static_cast<token_id>(x);
    out.tokens[k] = prev;
    out.length = static_cast<int>(k + 1);
  }
  if (confidence == nullptr)
    return status{};
  bool finite = true;
  for (index_t k = 0; k < gamma; ++k) {
    const token_id p = k == 0 ? in.anchor : out.tokens[k - 1];
    if (rank > 0)
      embedding_row(head, p, e);
    const float* hk = in.hidden.data + k * in.hidden.row_stride;
    out.confidence_logits[k] = confidence_logit(*confidence, hk, rank > 0 ? e : nullptr);
    finite = finite && ::specdec::detail::is_finite(out.confidence_logits[k]);
  }
  return finite ? status{} : status{errc::invalid_value};
}

/// @brief Settings of semi_ar_drafter.
struct semi_ar_config {
  int gamma = 5; ///< block size: positions drafted per step, 0 <= gamma <= block_size()
  sampling::sampling_params params{}; ///< how drafts are drawn (the same as the target's)
  std::uint64_t seed = 0;             ///< the drafter's random stream (independent of verification)
  /// STS temperatures T_k (spec 7): c_k = sigmoid(z_k / T_k). Empty means T_k = 1; otherwise at
  /// least gamma finite positive values.
  std::vector<double> sts_temperatures{};
};

/// The salt xor-ed into semi_ar_config::seed for the draft stream: draft u_k =
/// uniform_at(rng_key{seed ^ semi_ar_seed_salt, request_id}, position of x_k,
/// draw_purpose::sample). Device samplers use the same key for parity.
inline constexpr std::uint64_t semi_ar_seed_salt = stream_salt::semi_ar;

/// @brief DSpark / DFlash block drafter over a parallel_backbone: one backbone call per step,
///        then the sequential loop (sample_block) and the confidence head.
///
/// propose(): runs the backbone for gamma positions after the context, samples the whole block
/// (all gamma tokens and L rows), computes the confidence logits z_k, the calibrated
/// conditionals c_k = sigmoid(z_k / T_k) and their running products a_k (in double), then sends
/// min(gamma, request's max_tokens, block capacity) tokens. It never cuts the block by its
/// confidences itself: it is a confident_proposer, and the decoder's length policy (sched/,
/// e.g. sched::threshold_length or sched::scheduled_length) reads confidences() and decides how
/// many drafts are verified. The accessors describe the whole last block. Without a confidence
/// head, c_k = a_k = 1 and z is empty.
///
/// The draft rows are the L rows (logits) and x_k is drawn from their processed distribution
/// with u_k keyed as described at semi_ar_seed_salt, so verify with rejection_sampling (or
/// greedy). Satisfies draft_proposer and dense_draft_proposer.
/// @tparam Backbone a parallel_backbone (it must outlive the drafter)
/// @tparam W the heads' weight type: float or bfloat16
template <parallel_backbone Backbone, class W = float>
class semi_ar_drafter {
public:
  /// The drafter writes one dense logit row (L_k) per draft (dense_draft_proposer).
  static constexpr bool writes_draft_rows = true;

  /// @brief Binds the backbone and takes the heads and the settings (checked by validate(),
  ///        which propose() runs first).
  /// @param[in] backbone the parallel backbone
  /// @param[in] head the sequential head (kind none for DFlash)
  /// @param[in] confidence the confidence head, or std::nullopt
  /// @param[in] config the settings
  semi_ar_drafter(Backbone& backbone,
                  sequential_head<W> head,
                  std::optional<confidence_head<W>> confidence,
                  semi_ar_config config)
      : backbone_(&backbone)
      , head_(std::move(head))
      , config_(std::move(config)) {
    if (confidence) // (not the optional's move constructor: g++ 12 warns maybe-uninitialized)
      confidence_.emplace(std::move(*confidence));
  }

  /// @brief The settings. O(1).
  /// @return the settings
  [[nodiscard]] const semi_ar_config& config() const noexcept {
    return config_;
  }
  /// @brief Replaces the settings (e.g. fitted STS temperatures, a new gamma); checked again by
  ///        the next propose(). O(1) plus the move.
  /// @param[in] config the new settings
  void set_config(semi_ar_config config) {
    config_ = std::move(config);
    checked_ = false;
  }
  /// @brief Replaces the sampling parameters drafts are drawn with (set them to the verifier's,
  ///        so that the L rows are the law the drafts came from); checked by the next propose().
  ///        O(1).
  /// @param[in] params the new parameters
  void set_params(const sampling::sampling_params& params) noexcept {
    config_.params = params;
    checked_ = false;
  }
  /// @brief Re-keys the drafter's random stream (per request or per run): the drafts must be
  ///        random draws whose stream is independent of the verifier's. O(1).
  /// @param[in] seed the new stream seed
  void set_seed(std::uint64_t seed) noexcept {
    config_.seed = seed;
  }
  /// @brief The sequential head. O(1).
  /// @return the head
  [[nodiscard]] const sequential_head<W>& head() const noexcept {
    return head_;
  }
  /// @brief The confidence head, if any. O(1).
  /// @return the optional confidence head
  [[nodiscard]] const std::optional<confidence_head<W>>& confidence_head_weights() const noexcept {
    return confidence_;
  }
  /// @brief config().gamma: what the drafter can offer per step (the length policy decides how
  ///        many of them are verified). O(1).
  /// @return the largest draft per step
  [[nodiscard]] int max_draft_len() const noexcept {
    return config_.gamma;
  }

  /// @brief Checks the heads and the settings against the backbone.
  /// @return errc::ok; the heads' validate() codes; errc::vocab_mismatch when the head's vocab
  ///   (when not 0) differs from the backbone's; errc::shape_mismatch when a gated or rnn head's
  ///   hidden size or the confidence head's differs from the backbone's, or the confidence
  ///   head's rank differs from the head's (with_markov); errc::invalid_argument for gamma
  ///   outside [0, block_size()], or STS temperatures that are neither empty nor at
  ///   least gamma finite positive values; the params' validate() code
  /// @par Complexity
  /// O(number of weights).
  [[nodiscard]] status validate() const {
    if (const status s = head_.validate(); !s.ok())
      return s;
    const index_t vocab = backbone_->vocab_size();
    const index_t hidden = backbone_->hidden_size();
    if (head_.vocab != 0 && head_.vocab != vocab)
      return status{errc::vocab_mismatch};
    if ((head_.kind == head_kind::gated || head_.kind == head_kind::rnn) && head_.hidden != hidden)
      return status{errc::shape_mismatch};
    if (confidence_) {
      if (const status s = confidence_->validate(); !s.ok())
        return s;
      if (confidence_->hidden != hidden
          || (confidence_->with_markov && confidence_->rank != head_.rank))
        return status{errc::shape_mismatch};
    }
    if (config_.gamma < 0 || config_.gamma > backbone_->block_size())
      return status{errc::invalid_argument};
    if (const errc pe = config_.params.validate(); pe != errc::ok)
      return status{pe};
    if (!config_.sts_temperatures.empty()) {
      if (config_.sts_temperatures.size() < static_cast<std::size_t>(config_.gamma))
        return status{errc::invalid_argument};
      for (double t : config_.sts_temperatures)
        if (!(t > 0.0) || !std::isfinite(t))
          return status{errc::invalid_argument};
    }
    return status{};
  }

  /// @brief Drafts min(r.max_tokens, gamma, capacity of b) tokens after r.context (no cut by
  ///        confidence: that is the length policy's decision, see the class comment).
  ///
  /// Writes b.tokens[0 .. length), the L rows of those drafts into b.probs (rows past `length`
  /// may be overwritten up to gamma when b.probs has that many rows) and sets
  /// b.probs_kind = logits. A budget of 0 (or a block without capacity) returns at once without
  /// a backbone call, and the accessors then describe an empty block.
  /// @param[in] r the context (its last token is the anchor) and budget
  /// @param[out] b receives tokens, logit rows and length
  /// @return errc::ok; errc::invalid_argument for an empty context or a negative budget;
  ///   validate()'s codes; errc::shape_mismatch when b.probs is not vocabulary-wide; the
  ///   backbone's status; sample_block's codes (e.g. errc::token_out_of_range for an anchor
  ///   outside the vocabulary, errc::invalid_value for NaN base logits). On any error b.length
  ///   is 0.
  /// @par Complexity
  /// One run_block call, then sample_block's cost for gamma positions, plus O(gamma * V) to copy
  /// the rows when b.probs has fewer than gamma rows. Buffers are reused across calls.
  [[nodiscard]] status propose(const draft_request& r, draft_block& b) {
    b.length = 0;
    b.probs_kind = distribution_kind::logits;
    tokens_.clear();
    z_.clear();
    c_.clear();
    a_.clear();
    if (r.context.size <= 0 || r.max_tokens < 0)
      return status{errc::invalid_argument};
    if (!checked_) {
      if (const status s = validate(); !s.ok())
        return s;
      checked_ = true;
    }
    const int gamma = config_.gamma;
    const index_t cap =
        std::min<index_t>({static_cast<index_t>(r.max_tokens), gamma, b.tokens.size, b.probs.rows});
    if (cap <= 0)
      return status{};
    const index_t vocab = backbone_->vocab_size();
    const index_t hidden = backbone_->hidden_size();
    if (b.probs.cols != vocab || b.probs.row_stride < vocab || b.tokens.data == nullptr
        || b.probs.data == nullptr)
      return status{errc::shape_mismatch};

    const auto g = static_cast<std::size_t>(gamma);
    u_.resize(g * static_cast<std::size_t>(vocab));
    h_.resize(g * static_cast<std::size_t>(hidden));
    const matrix_view<float> U{u_.data(), gamma, vocab, vocab};
    const matrix_view<float> H{h_.data(), gamma, hidden, hidden};
    const backbone_request br{r.request_id, r.context, gamma};
    if (const status s = backbone_->run_block(br, U, H); !s.ok())
      return s;

    const bool direct = b.probs.rows >= gamma;
    if (!direct)
      l_.resize(g * static_cast<std::size_t>(vocab));
    const matrix_view<float> L =
        direct ? matrix_view<float>{b.probs.data, gamma, vocab, b.probs.row_stride}
               : matrix_view<float>{l_.data(), gamma, vocab, vocab};
    const rng_key key{config_.seed ^ semi_ar_seed_salt, r.request_id};
    const index_t anchor_pos = r.context.size - 1;
    uniforms_.resize(g);
    for (int k = 0; k < gamma; ++k)
      uniforms_[static_cast<std::size_t>(k)] =
          uniform_at(key, anchor_pos + 1 + k, draw_purpose::sample);
    tokens_.resize(g);
    if (confidence_)
      z_.resize(g);

    const sequential_head_view<W> hv = head_.view();
    const confidence_head_view<W> cv =
        confidence_ ? confidence_->view() : confidence_head_view<W>{};
    const block_inputs in{r.context[r.context.size - 1],
                          matrix_view<const float>{U.data, U.rows, U.cols, U.row_stride},
                          matrix_view<const float>{H.data, H.rows, H.cols, H.row_stride},
                          row_view<const float>{uniforms_.data(), gamma}};
    block_outputs out{row_view<token_id>{tokens_.data(), gamma},
                      L,
                      row_view<float>{z_.empty() ? nullptr : z_.data(), z_.empty() ? 0 : gamma},
                      0};
    const cpu::serial_executor ex{};
    if (const status s = sample_block(ex, hv, confidence_ ? &cv : nullptr, in, config_.params, out);
        !s.ok()) {
      tokens_.clear();
      z_.clear();
      return s;
    }

    c_.assign(g, 1.0);
    a_.assign(g, 1.0);
    // The calibration STS fits (calib/sts.hpp): c_k = sigmoid(z_k / T_k), a_k = prod c_i. The
    // logits are finite (sample_block checked) and the temperatures valid (validate()).
    if (confidence_) {
      const status s = calib::calibrate(std::span<const float>(z_),
                                        std::span<const double>(config_.sts_temperatures),
                                        std::span<double>(c_),
                                        std::span<double>(a_));
      if (!s.ok()) {
        tokens_.clear();
        z_.clear();
        c_.clear();
        a_.clear();
        return s;
      }
    }
    const index_t length = cap;
    for (index_t k = 0; k < length; ++k) {
      b.tokens[k] = tokens_[static_cast<std::size_t>(k)];
      if (!direct)
        std::copy_n(l_.data() + k * vocab, vocab, b.probs.data + k * b.probs.row_stride);
    }
    b.length = static_cast<std::int32_t>(length);
    return status{};
  }

  /// @name Lifecycle, forwarded to a stateful backbone
  /// Present only when the backbone has them (stateful_backbone, feature_backbone,
  /// prompt_feature_backbone); each forwards the call unchanged. O(1) plus the backbone's cost.
  /// @{

  /// @brief Starts (or resumes) request `id` at `prompt`: the backbone's begin.
  /// @param[in] id the request
  /// @param[in] prompt its context (the last token is the first anchor)
  /// @return the backbone's status
  [[nodiscard]] status begin(std::uint64_t id,
                             row_view<const token_id> prompt) requires stateful_backbone<Backbone> {
    return backbone_->begin(id, prompt);
  }
  /// @brief Reports a verified round (its committed tokens and kept target features).
  /// @param[in] o the round
  /// @return the backbone's status
  [[nodiscard]] status observe(const round_outcome& o) requires stateful_backbone<Backbone> {
    return backbone_->observe(o);
  }
  /// @brief Releases request `id`.
  /// @param[in] id the request
  void end(std::uint64_t id) requires stateful_backbone<Backbone> {
    backbone_->end(id);
  }
  /// @brief The target layers the backbone reads.
  /// @return the backbone's feature_layers()
  [[nodiscard]] row_view<const std::int32_t>
  feature_layers() const requires feature_backbone<Backbone> {
    return backbone_->feature_layers();
  }
  /// @brief Hands over the target features of prompt positions [start, start + f.rows).
  /// @param[in] id the request
  /// @param[in] start position of row 0
  /// @param[in] f the features
  /// @return the backbone's status
  [[nodiscard]] status
  observe_prompt(std::uint64_t id,
                 index_t start,
                 matrix_view<const float> f) requires prompt_feature_backbone<Backbone> {
    return backbone_->observe_prompt(id, start, f);
  }
  /// @}

  /// @brief The last block's sampled tokens x_1 .. x_gamma (all of them, also past max_tokens).
  ///        Empty after an error or an empty budget. O(1).
  /// @return the tokens
  [[nodiscard]] std::span<const token_id> tokens() const noexcept {
    return tokens_;
  }
  /// @brief The last block's raw confidence logits z_k (size gamma; empty without a confidence
  ///        head). O(1).
  /// @return the logits
  [[nodiscard]] std::span<const float> confidence_logits() const noexcept {
    return z_;
  }
  /// @brief The last block's calibrated conditionals c_k = sigmoid(z_k / T_k) (size gamma,
  ///        computed for the whole block; all 1 without a confidence head). A length policy
  ///        reads them to cut the draft (sched/confidence_length.hpp). O(1).
  /// @return the conditionals
  [[nodiscard]] std::span<const double> confidences() const noexcept {
    return c_;
  }
  /// @brief The last block's cumulative products a_k = c_1 ... c_k (size gamma), the expected
  ///        survival of each prefix, as the prefix schedulers take them. O(1).
  /// @return the products
  [[nodiscard]] std::span<const double> cumulative() const noexcept {
    return a_;
  }

private:
  Backbone* backbone_;
  sequential_head<W> head_;
  std::optional<confidence_head<W>> confidence_;
  semi_ar_config config_;
  bool checked_ = false;
  std::vector<float> u_, h_, l_, uniforms_, z_;
  std::vector<token_id> tokens_;
  std::vector<double> c_, a_;
};

} // namespace propose

SPECDEC_NAMESPACE_END
