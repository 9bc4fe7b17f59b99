// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Internals shared by the verification and tree-mask kernels: the owner search of
/// packed rows, the CTA's block-executor storage, the prepared-row views and the per-request
/// position and random stream.

#include <specdec/config.hpp>

#include <specdec/core/rng.hpp>
#include <specdec/core/types.hpp>
#include <specdec/cuda/block/block_executor.cuh>
#include <specdec/sampling/distribution.hpp>

#include <cstdint>

SPECDEC_CUDA_NAMESPACE_BEGIN

namespace kernels::detail {

/// The smallest b in [0, B) with key(b) > r, clamped to B - 1 (`key` non-decreasing on good
/// input; malformed offsets only give a wrong b, which the caller checks).
template <class Key>
SPECDEC_DEVICE index_t owner_of(index_t batch, index_t r, const Key& key) {
  index_t lo = 0;
  index_t hi = batch - 1;
  while (lo < hi) {
    const index_t mid = lo + (hi - lo) / 2;
    if (key(mid) > r)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

/// The CTA's shared storage of a block executor (raw bytes: __shared__ takes no constructors).
template <int Threads>
SPECDEC_DEVICE block::block_storage<Threads>* shared_storage() {
  __shared__ alignas(16) unsigned char raw[sizeof(block::block_storage<Threads>)];
  return reinterpret_cast<block::block_storage<Threads>*>(raw);
}

/// The block executor's view of prepared rows: the batch's target matrix with `target_stats`,
/// plus its draft matrix with `draft_stats` when `draft_rows > 0`.
template <class TT, class TD, class Batch>
SPECDEC_DEVICE block::prepared_rows prepared_rows_of(const Batch& batch,
                                                     index_t target_rows,
                                                     const sampling::row_stats* target_stats,
                                                     index_t draft_rows,
                                                     const sampling::row_stats* draft_stats) {
  block::prepared_rows rows;
  rows.target = reinterpret_cast<const char*>(batch.target.data);
  rows.target_stride_bytes = batch.target.row_stride * static_cast<index_t>(sizeof(TT));
  rows.target_rows = target_rows;
  rows.target_stats = target_stats;
  if (draft_rows > 0) {
    rows.draft = reinterpret_cast<const char*>(batch.draft.data);
    rows.draft_stride_bytes = batch.draft.row_stride * static_cast<index_t>(sizeof(TD));
    rows.draft_rows = draft_rows;
    rows.draft_stats = draft_stats;
  }
  return rows;
}

/// Request b's position: batch.positions[b] plus the problem's scalar and device offsets, or -1
/// (a bad request) when a term or the sum lies outside [-max_position, max_position] resp.
/// [0, max_position]. With every term bounded by 2^60 the sum cannot overflow.
template <class Problem>
SPECDEC_DEVICE index_t request_position(const Problem& p, index_t b) {
  const auto bounded = [](index_t x) { return x >= -max_position && x <= max_position; };
  const index_t base = p.batch.positions[b];
  const index_t extra = p.position_offset_ptr != nullptr ? *p.position_offset_ptr : 0;
  if (!bounded(base) || !bounded(p.position_offset) || !bounded(extra))
    return -1;
  const index_t position = base + p.position_offset + extra;
  return position <= max_position ? position : -1;
}

/// Request b's uniforms: the device seed when set, else the batch's own (its per-request seeds
/// when it has them, the batch seed otherwise), and b's request id.
template <class Problem>
SPECDEC_DEVICE philox_uniforms request_uniforms(const Problem& p, index_t b) {
  if (p.seed_ptr != nullptr)
    return philox_uniforms{rng_key{*p.seed_ptr, p.batch.request_ids[b]}};
  return p.batch.uniforms(b);
}

} // namespace kernels::detail

SPECDEC_CUDA_NAMESPACE_END
