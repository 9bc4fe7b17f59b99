// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The kernels of device chain verification: split-vocabulary partial scans, row
/// preparation (one CTA per row) and the rule (one CTA per request).

#include <specdec/config.hpp>

#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/cuda/block/block_executor.cuh>
#include <specdec/cuda/detail/kernel_common.cuh>
#include <specdec/sampling/distribution.hpp>
#include <specdec/verify/batch.hpp>
#include <specdec/verify/chain.hpp>

#include <cstdint>
#include <type_traits>

SPECDEC_CUDA_NAMESPACE_BEGIN

/// @brief A chain verification problem on the device: a ragged batch whose every pointer is
/// device memory, where the results go, and the random stream given as scalars or as device
/// pointers (read inside the kernels, so a captured CUDA graph can be replayed with new values).
/// @tparam TT target element type (a row_element)
/// @tparam TD draft element type (a row_element)
template <class TT, class TD = TT>
struct chain_problem {
  verify::chain_batch<TT, TD> batch{}; ///< device pointers; row counts and strides are host values
  verify::chain_batch_output out{};    ///< device pointers, one entry per request
  const std::uint64_t* seed_ptr = nullptr;      ///< device; when set, replaces batch.seed
  const index_t* position_offset_ptr = nullptr; ///< device; when set, added to every position
  index_t position_offset = 0;                  ///< added to every position (with the pointer's)
};

/// @brief `__global__` functions of the device path (launched by chain_verifier).
namespace kernels {

/// Everything the three chain kernels share, passed by value.
template <class TT, class TD>
struct chain_launch {
  chain_problem<TT, TD> p;                     ///< the problem
  sampling::row_stats* target_stats = nullptr; ///< @shape{[target_rows]} (workspace)
  sampling::row_stats* draft_stats = nullptr;  ///< @shape{[draft_rows]} (workspace)
  sampling::scan_partial* partials = nullptr;  ///< @shape{[rows, slices]} (workspace)
  index_t target_rows = 0;                     ///< rows of the target matrix
  index_t draft_rows = 0;                      ///< draft rows prepared (0 when not needed)
  int slices = 1;                              ///< CTAs per row of the partial scan
};

namespace detail {

/// The request owning target row r (r < target rows): the smallest b with
/// offsets[b + 1] + b + 1 > r, clamped to B - 1 (malformed offsets only give a wrong b).
SPECDEC_DEVICE inline index_t target_row_owner(const index_t* offsets, index_t batch, index_t r) {
  return owner_of(batch, r, [&](index_t b) { return offsets[b + 1] + b + 1; });
}

/// The request owning draft row r: the smallest b with offsets[b + 1] > r, clamped to B - 1.
SPECDEC_DEVICE inline index_t draft_row_owner(const index_t* offsets, index_t batch, index_t r) {
  return owner_of(batch, r, [&](index_t b) { return offsets[b + 1]; });
}

/// Row r of the prepared set (target rows first, then draft rows) with the sampling parameters
/// the rule will use for it (verify::detail::checked's fallback included).
template <class TT, class TD, class F>
SPECDEC_DEVICE auto with_row(const chain_launch<TT, TD>& l, index_t r, F&& f) {
  const verify::chain_batch<TT, TD>& b = l.p.batch;
  const bool is_target = r < l.target_rows;
  const index_t owner = is_target ? target_row_owner(b.draft_offsets, b.batch, r)
                                  : draft_row_owner(b.draft_offsets, b.batch, r - l.target_rows);
  verify::chain_request<TT, TD> req{};
  req.params = b.params[owner * b.params_stride];
  row_status ignored{};
  const sampling::sampling_params params = verify::detail::checked(req, ignored).params;
  if (is_target)
    return f(sampling::dist_row<TT>{b.target.data + r * b.target.row_stride,
                                    b.target.cols,
                                    b.target_kind},
             params,
             l.target_stats + r);
  const index_t d = r - l.target_rows;
  return f(
      sampling::dist_row<TD>{b.draft.data + d * b.draft.row_stride, b.draft.cols, b.draft_kind},
      params,
      l.draft_stats + d);
}

/// Elements of each slice of a V-wide row cut into `slices` (a multiple of 8, so slices stay
/// 16-byte aligned).
SPECDEC_HD inline index_t slice_length(index_t vocab, int slices) noexcept {
  const index_t per = (vocab + slices - 1) / slices;
  return (per + 7) / 8 * 8;
}

} // namespace detail

/// @brief Split-vocabulary first pass: CTA (r, s) scans slice s of prepared row r and writes its
/// partial (max, first argmax, weight sum, invalid count). grid = (rows, slices).
/// @tparam Threads threads per CTA
/// @tparam TT target element type
/// @tparam TD draft element type
/// @param[in] l the launch
template <int Threads, class TT, class TD>
__global__ void __launch_bounds__(Threads) scan_slices_kernel(const chain_launch<TT, TD> l) {
  block::block_executor<Threads> ex{detail::shared_storage<Threads>(), {}};
  const index_t r = static_cast<index_t>(blockIdx.x);
  const int s = static_cast<int>(blockIdx.y);
  detail::with_row(l, r, [&](const auto& row, const sampling::sampling_params& params, auto*) {
    const sampling::row_stats st = sampling::detail::initial_stats(row.kind, params);
    const index_t per = detail::slice_length(row.vocab, l.slices);
    const index_t start = ::specdec::detail::min_i<index_t>(per * s, row.vocab);
    const index_t len = ::specdec::detail::min_i<index_t>(per, row.vocab - start);
    using elem = std::remove_cv_t<std::remove_reference_t<decltype(*row.data)>>;
    const sampling::detail::dynamic_raw_reader<elem> raw{
        row.data + start, sampling::detail::form_of(row.kind, st.log_of_probs)};
    const sampling::scan_partial part = ex.scan_partial_row(len, raw, st.mode, st.inv_temp, start);
    if (threadIdx.x == 0)
      l.partials[r * l.slices + s] = part;
    return 0;
  });
}

/// @brief Row preparation: CTA r computes the processed stats of prepared row r (target rows,
/// then draft rows) with sampling::prepare_row's code, from the partial scans when
/// `l.slices > 1`. grid = rows.
/// @tparam Threads threads per CTA
/// @tparam TT target element type
/// @tparam TD draft element type
/// @param[in] l the launch
template <int Threads, class TT, class TD>
__global__ void __launch_bounds__(Threads) prepare_rows_kernel(const chain_launch<TT, TD> l) {
  block::block_storage<Threads>* smem = detail::shared_storage<Threads>();
  block::block_executor<Threads> ex{smem, {}};
  const index_t r = static_cast<index_t>(blockIdx.x);
  detail::with_row(l, r, [&](const auto& row, const sampling::sampling_params& params, auto* out) {
    row_scan_result scan{};
    const row_scan_result* prescan = nullptr;
    if (l.slices > 1) {
      const sampling::row_stats st = sampling::detail::initial_stats(row.kind, params);
      if (threadIdx.x == 0) {
        sampling::scan_partial acc = l.partials[r * l.slices];
        for (int s = 1; s < l.slices; ++s)
          acc = sampling::combine_scan(
              acc, l.partials[r * l.slices + s], st.mode == weight_mode::exp_scaled, st.inv_temp);
        smem->scan_out = sampling::finish_scan(acc, st.mode);
      }
      __syncthreads();
      scan = smem->scan_out;
      __syncthreads();
      prescan = &scan;
    }
    const sampling::row_stats stats = sampling::detail::prepare_row_with(ex, row, params, prescan);
    if (threadIdx.x == 0)
      *out = stats;
    return 0;
  });
}

/// @brief The rule: CTA b verifies request b with the policy's own code and the block executor,
/// reading the stats prepared for its rows. Writes accepted, next and status (a malformed
/// request gets bad_shape, accepted 0 and token 0). grid = B.
/// @tparam Threads threads per CTA
/// @tparam Policy a chain_verification_policy
/// @tparam TT target element type
/// @tparam TD draft element type
/// @param[in] policy the rule
/// @param[in] l the launch
template <int Threads, class Policy, class TT, class TD>
__global__ void __launch_bounds__(Threads)
    verify_chain_kernel(const Policy policy, const chain_launch<TT, TD> l) {
  const verify::chain_batch<TT, TD>& batch = l.p.batch;
  const index_t b = static_cast<index_t>(blockIdx.x);
  const index_t d0 = batch.draft_offsets[b];
  const index_t d1 = batch.draft_offsets[b + 1];
  const index_t position = detail::request_position(l.p, b);
  const bool malformed = d0 < 0 || d1 < d0 || d1 + b + 1 > l.target_rows
                         || (Policy::needs_draft_rows && d1 > d0 && d1 > l.draft_rows)
                         || d1 - d0 > INT32_MAX - 1 || position < 0;
  if (malformed) {
    if (threadIdx.x == 0) {
      row_status st{};
      st.set(row_status::bad_shape);
      l.p.out.accepted[b] = 0;
      l.p.out.next[b] = 0;
      l.p.out.status[b] = st;
    }
    return;
  }
  const block::prepared_rows rows = detail::prepared_rows_of<TT, TD>(
      batch, l.target_rows, l.target_stats, l.draft_rows, l.draft_stats);
  block::block_executor<Threads> ex{detail::shared_storage<Threads>(), rows};
  verify::chain_request<TT, TD> req = batch.request(b, Policy::needs_draft_rows);
  req.position = position;
  const philox_uniforms u = detail::request_uniforms(l.p, b);
  const verify::chain_outcome o = policy.verify_chain(ex, req, u);
  if (threadIdx.x == 0) {
    l.p.out.accepted[b] = o.accepted;
    l.p.out.next[b] = o.next;
    l.p.out.status[b] = o.status;
  }
}

} // namespace kernels

SPECDEC_CUDA_NAMESPACE_END
