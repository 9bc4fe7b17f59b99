// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The kernel of device semi-autoregressive block sampling (DSpark spec 5.2-5.4, 6.1):
/// one CTA per request runs propose::sample_block's loop (head coefficients, L = U + bias,
/// prepare_row / sample_row with the block executor, then the next position) and the confidence
/// head, plus the problem type it reads. The host entry point is cuda::markov_head_sampler
/// (device/device_dspark.cuh).

#include <specdec/config.hpp>

#include <specdec/core/dtype.hpp>
#include <specdec/core/math.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/cuda/block/block_executor.cuh>
#include <specdec/cuda/detail/kernel_common.cuh>
#include <specdec/propose/semi_ar_heads.hpp>
#include <specdec/sampling/distribution.hpp>
#include <specdec/sampling/params.hpp>

#include <cstdint>

SPECDEC_CUDA_NAMESPACE_BEGIN

/// @brief A batch of semi-autoregressive blocks to sample on the device: every pointer is
/// device memory, sizes are host values. Request b's block has `gamma` positions; its rows are
/// dense: U row k at `base_logits + (b * gamma + k) * vocab`, H row k at `hidden + (b * gamma +
/// k) * hidden_size`, and the outputs likewise.
///
/// Per request, the result equals propose::sample_block's on the host with the same head, the
/// request's parameters and the drafter's uniforms u_k = uniform_at(rng_key{seed ^
/// stream_salt::semi_ar (core/rng.hpp), request_ids[b]}, positions[b] + 1 + k,
/// draw_purpose::sample) (semi_ar_drafter's stream): L rows and confidence logits bit for bit (same
/// fixed-order fmul/fadd sums), tokens exactly in greedy mode and up to the block executor's float
/// sums otherwise (a draw can differ only when u lies within rounding of a CDF step; see the GPU
/// tests).
///
/// Outcomes per request (`status`, one row_status each):
/// - clean: gamma tokens, gamma L rows, and gamma confidence logits when a confidence head is
///   given;
/// - invalid_params (parameters failing validate()) or token_out_of_range (anchor outside
///   [0, vocab)): nothing sampled; tokens all -1, confidence logits all NaN, no L row written;
/// - draft_invalid / draft_zero_mass at position k (L_k has a NaN or +inf, from NaN or +inf in
///   U or H, or is all -inf): the block stops as on the host: tokens and L rows before k are
///   valid, L row k holds the bad row, tokens k .. gamma-1 are -1, later L rows are not written,
///   confidence logits are all NaN;
/// - draft_invalid with all gamma tokens valid: a confidence logit is not finite (NaN or inf in
///   H or the weights); the confidence logits are written as computed.
/// @tparam W the heads' weight type: float or bfloat16
template <class W>
struct markov_head_problem {
  index_t requests = 0;                          ///< R (host value)
  index_t gamma = 0;                             ///< positions per block (host value), >= 0
  index_t vocab = 0;                             ///< V (host value), >= 1
  index_t hidden_size = 0;                       ///< d: values per H row (host value)
  propose::sequential_head_view<W> head{};       ///< device weights (kind none: L = U, DFlash)
  bool with_confidence = false;                  ///< run the confidence head
  propose::confidence_head_view<W> confidence{}; ///< device weights (when with_confidence)
  const float* base_logits = nullptr;            ///< @shape{[R, gamma, V]} U
  const float* hidden = nullptr;              ///< @shape{[R, gamma, d]} H (gated, rnn, confidence)
  const token_id* anchors = nullptr;          ///< @shape{[R]} x0 of each block
  const std::uint64_t* request_ids = nullptr; ///< @shape{[R]} engine request ids
  const index_t* positions = nullptr;         ///< @shape{[R]} absolute position of x0
  std::uint64_t seed = 0;                     ///< the drafter's seed (semi_ar_config::seed)
  const std::uint64_t* seed_ptr = nullptr;    ///< device; when set, replaces seed
  const sampling::sampling_params* params = nullptr; ///< @shape{[R] or [1]} (params_stride)
  index_t params_stride = 0;          ///< 0: one set for all requests; 1: one per request
  token_id* tokens = nullptr;         ///< @shape{[R, gamma]} output x_1 .. x_gamma
  float* logits = nullptr;            ///< @shape{[R, gamma, V]} output L rows
  float* confidence_logits = nullptr; ///< @shape{[R, gamma]} output z (when with_confidence)
  row_status* status = nullptr;       ///< @shape{[R]} output per-request status
};

namespace kernels {

namespace detail {

/// A callable without its eval8: the block executor then reads element by element with plain
/// (coherent) loads. The L rows are written by the same CTA inside the kernel, so they must not
/// be read through the read-only path the executor's 16-byte loads use (__ldg).
template <class F>
struct scalar_reads {
  F f;
  SPECDEC_DEVICE float operator()(index_t i) const {
    return f(i);
  }
};

/// The block executor over rows this CTA has just written: every primitive forwards to
/// block::block_executor with the row callable wrapped in scalar_reads. No prepared rows.
template <int Threads>
struct own_row_executor {
  static constexpr bool runtime_dispatch = true;
  block::block_executor<Threads> ex;

  template <class Raw>
  SPECDEC_DEVICE row_scan_result
  scan_row(index_t n, Raw raw, weight_mode mode, float inv_temp) const {
    return ex.scan_row(n, scalar_reads<Raw>{raw}, mode, inv_temp);
  }
  template <class F>
  SPECDEC_DEVICE float sum(index_t n, F f) const {
    return ex.sum(n, scalar_reads<F>{f});
  }
  template <class F>
  SPECDEC_DEVICE index_t sample_inverse_cdf(index_t n, F f, float target) const {
    return ex.sample_inverse_cdf(n, scalar_reads<F>{f}, target);
  }
  template <class Raw, class G>
  SPECDEC_DEVICE threshold_probe_result
  threshold_probe(index_t n, Raw raw, G g, float floor, float mid) const {
    return ex.threshold_probe(n, scalar_reads<Raw>{raw}, g, floor, mid);
  }
  template <class Raw, class G, class Visit>
  SPECDEC_DEVICE auto radix_histogram(
      index_t n, Raw raw, G g, float floor, std::uint32_t prefix, int shift, Visit visit) const {
    return ex.radix_histogram(n, scalar_reads<Raw>{raw}, g, floor, prefix, shift, visit);
  }
};

/// What sampling one L row gave: the token (-1 on a bad row) and the flags to set.
struct row_draw {
  index_t token = -1;      ///< the sampled token, -1 when the row is bad
  std::uint32_t flags = 0; ///< draft_invalid / draft_zero_mass, 0 when clean
};

/// prepare_row + sample_row of one L row (logits) with the CTA's block executor, as
/// propose::sample_block does on the host. Not inlined: one copy serves every weight type.
template <int Threads>
__device__ __noinline__ row_draw
sample_logit_row(const float* row, index_t vocab, sampling::sampling_params params, float u) {
  const own_row_executor<Threads> ex{
      block::block_executor<Threads>{kernels::detail::shared_storage<Threads>(), {}}};
  const sampling::dist_row<float> r{row, vocab, distribution_kind::logits};
  const sampling::row_stats st = sampling::prepare_row(ex, r, params);
  if (!st.ok())
    return {-1,
            st.status.has(row_status::target_invalid) ? row_status::draft_invalid
                                                      : row_status::draft_zero_mass};
  const index_t x = sampling::sample_row(ex, r, st, u);
  if (x < 0 || x >= vocab)
    return {-1, row_status::draft_zero_mass};
  return {x, 0u};
}

/// propose::head_bias of token v with 16-byte loads of its w2 row where aligned: the same
/// products and sums in the same order (j ascending from 0.0f, fmul then fadd), so the same bits.
template <class W>
SPECDEC_HD inline float bias_of(const W* w2_row, const float* coef, index_t rank) noexcept {
  float acc = 0.0f;
  index_t j = 0;
  for (; j + 8 <= rank; j += 8) {
    float w[8];
    load8_as_float(w2_row, j, w);
    for (int c = 0; c < 8; ++c)
      acc = ::specdec::detail::fadd(acc, ::specdec::detail::fmul(w[c], coef[j + c]));
  }
  for (; j < rank; ++j)
    acc = ::specdec::detail::fadd(acc, ::specdec::detail::fmul(load_as_float(w2_row, j), coef[j]));
  return acc;
}

/// bias_of for the `Rows` tokens v0, v0 + stride, ... (those below `vocab`) at once: each row's
/// sum is bias_of's sequence bit for bit, but the rows' chains are interleaved, so a thread has
/// `Rows` independent sums and loads in flight. Rows past `vocab` give 0.
template <int Rows, class W>
SPECDEC_HD inline void bias_of_rows(const W* w2,
                                    index_t v0,
                                    index_t stride,
                                    index_t vocab,
                                    const float* coef,
                                    index_t rank,
                                    float (&acc)[Rows]) noexcept {
  const W* row[Rows];
  bool in[Rows];
  for (int q = 0; q < Rows; ++q) {
    const index_t v = v0 + q * stride;
    in[q] = v < vocab;
    row[q] = w2 + (in[q] ? v : 0) * rank;
    acc[q] = 0.0f;
  }
  index_t j = 0;
  for (; j + 8 <= rank; j += 8) {
    float w[Rows][8];
    for (int q = 0; q < Rows; ++q)
      if (in[q])
        load8_as_float(row[q], j, w[q]);
    for (int c = 0; c < 8; ++c)
      for (int q = 0; q < Rows; ++q)
        if (in[q])
          acc[q] = ::specdec::detail::fadd(acc[q], ::specdec::detail::fmul(w[q][c], coef[j + c]));
  }
  for (; j < rank; ++j)
    for (int q = 0; q < Rows; ++q)
      if (in[q])
        acc[q] = ::specdec::detail::fadd(
            acc[q], ::specdec::detail::fmul(load_as_float(row[q], j), coef[j]));
}

/// Rows of the bias pass each thread interleaves (see bias_of_rows).
inline constexpr int bias_rows = 4;

/// Floats of dynamic shared memory per CTA: e and coef, plus two state buffers for rnn.
template <class W>
SPECDEC_HD inline index_t head_shared_floats(const propose::sequential_head_view<W>& h) {
  if (h.kind == propose::head_kind::none)
    return 0;
  return (h.kind == propose::head_kind::rnn ? 4 : 2) * h.rank;
}

} // namespace detail

/// @brief The semi-AR loop: CTA b samples request b's block (see markov_head_problem for the
/// outcomes). Per position k: e = w1[x_{k-1}] into shared memory (threads over j), the head's
/// coefficients (threads over j, propose::head_coefficient; the rnn state double-buffered in
/// shared memory, the zero state at k = 1), and, in thread 0 meanwhile, the confidence logit
/// z_k (propose::confidence_logit); then L_k[v] = U_k[v] + head_bias(v) into global memory
/// (threads over v; a copy of U_k for head_kind::none), a barrier, and the draw of x_k from
/// L_k (sampling::prepare_row / sample_row with the block executor, plain loads). Dynamic shared
/// memory: detail::head_shared_floats(head) floats. grid = R.
/// @tparam Threads threads per CTA
/// @tparam W the weight type
/// @param[in] p the problem
template <int Threads, class W>
__global__ void __launch_bounds__(Threads) markov_head_kernel(const markov_head_problem<W> p) {
  extern __shared__ float specdec_head_smem[];
  using propose::head_kind;
  const index_t b = static_cast<index_t>(blockIdx.x);
  const index_t gamma = p.gamma;
  const index_t vocab = p.vocab;
  const propose::sequential_head_view<W>& head = p.head;
  const index_t rank = head.kind == head_kind::none ? 0 : head.rank;
  const bool rnn = head.kind == head_kind::rnn;
  const bool uses_hidden = head.kind == head_kind::gated || rnn || p.with_confidence;
  float* e = specdec_head_smem;
  float* coef = e + rank;
  float* state_a = rnn ? coef + rank : nullptr;
  float* state_b = rnn ? state_a + rank : nullptr;
  token_id* tokens = p.tokens + b * gamma;
  float* z = p.with_confidence ? p.confidence_logits + b * gamma : nullptr;
  const float nan = ::specdec::detail::bits_float(0x7fc00000u);

  const sampling::sampling_params params = p.params[b * p.params_stride];
  const token_id anchor = p.anchors[b];
  row_status st{};
  if (params.validate() != errc::ok)
    st.set(row_status::invalid_params);
  else if (anchor < 0 || static_cast<index_t>(anchor) >= vocab)
    st.set(row_status::token_out_of_range);
  else if (p.positions[b] < 0
           || p.positions[b] > max_position) // position + 1 + k must not overflow
    st.set(row_status::bad_shape);
  if (!st.ok()) { // uniform across the CTA
    if (threadIdx.x == 0) {
      for (index_t k = 0; k < gamma; ++k) {
        tokens[k] = -1;
        if (z != nullptr)
          z[k] = nan;
      }
      p.status[b] = st;
    }
    return;
  }

  const std::uint64_t seed = p.seed_ptr != nullptr ? *p.seed_ptr : p.seed;
  const rng_key key{seed ^ stream_salt::semi_ar, p.request_ids[b]};
  const index_t anchor_position = p.positions[b];
  token_id prev = anchor;
  const float* state_in = nullptr; // the zero state at k = 1
  bool z_finite = true;            // thread 0's confidence logits
  index_t k = 0;
  for (; k < gamma; ++k) {
    const index_t row = b * gamma + k;
    const float* hk = uses_hidden ? p.hidden + row * p.hidden_size : nullptr;
    const float* u_row = p.base_logits + row * vocab;
    float* l_row = p.logits + row * vocab;
    if (rank > 0) {
      const W* w1_row = head.w1 + static_cast<index_t>(prev) * rank;
      for (index_t j = static_cast<index_t>(threadIdx.x); j < rank; j += Threads)
        e[j] = load_as_float(w1_row, j); // propose::embedding_row
      __syncthreads();
      float* state_out = rnn ? (state_in == state_a ? state_b : state_a) : nullptr;
      for (index_t j = static_cast<index_t>(threadIdx.x); j < rank; j += Threads)
        coef[j] = propose::head_coefficient(head, j, e, hk, state_in, state_out);
      state_in = state_out;
    }
    __syncthreads();                        // coefficients (and the new state) visible
    if (z != nullptr && threadIdx.x == 0) { // overlaps the bias pass of the other threads
      const float zk = propose::confidence_logit(p.confidence, hk, e);
      z[k] = zk;
      z_finite = z_finite && ::specdec::detail::is_finite(zk);
    }
    if (rank > 0) {
      constexpr index_t step = static_cast<index_t>(Threads) * detail::bias_rows;
      for (index_t v0 = static_cast<index_t>(threadIdx.x); v0 < vocab; v0 += step) {
        float bias[detail::bias_rows];
        detail::bias_of_rows(head.w2, v0, Threads, vocab, coef, rank, bias);
        for (int q = 0; q < detail::bias_rows; ++q) {
          const index_t v = v0 + q * Threads;
          if (v < vocab)
            l_row[v] = ::specdec::detail::fadd(u_row[v], bias[q]);
        }
      }
    } else {
      for (index_t v = static_cast<index_t>(threadIdx.x); v < vocab; v += Threads)
        l_row[v] = u_row[v];
    }
    __syncthreads(); // the L row visible to the whole CTA
    const float u = uniform_at(key, anchor_position + 1 + k, draw_purpose::sample);
    const detail::row_draw d = detail::sample_logit_row<Threads>(l_row, vocab, params, u);
    if (d.flags != 0u) {
      st.set(d.flags);
      break;
    }
    if (threadIdx.x == 0)
      tokens[k] = static_cast<token_id>(d.token);
    prev = static_cast<token_id>(d.token);
  }
  if (threadIdx.x != 0)
    return;
  if (k < gamma) { // the block stopped at a bad row
    for (index_t i = k; i < gamma; ++i)
      tokens[i] = -1;
    if (z != nullptr)
      for (index_t i = 0; i < gamma; ++i)
        z[i] = nan;
  } else if (!z_finite) {
    st.set(row_status::draft_invalid);
  }
  p.status[b] = st;
}

} // namespace kernels

SPECDEC_CUDA_NAMESPACE_END
