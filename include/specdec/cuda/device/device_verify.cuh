// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Host entry points of device chain verification: chain_verifier (workspace query and
/// launch on a stream, no allocation, no synchronisation) and offsets_from_lengths.

#include <specdec/config.hpp>

#include <specdec/core/diagnostics.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/cuda/detail/verifier_common.cuh>
#include <specdec/cuda/kernels/verify_chain_kernel.cuh>
#include <specdec/cuda/launch.cuh>
#include <specdec/verify/policy.hpp>

#include <cub/device/device_scan.cuh>

#include <cstddef>
#include <cstdint>

SPECDEC_CUDA_NAMESPACE_BEGIN

namespace detail {
/// Adds two lengths in index_t (the scan's accumulator type).
struct add_index {
  SPECDEC_HD index_t operator()(index_t a, index_t b) const noexcept {
    return a + b;
  }
};
} // namespace detail

/// @brief Device chain verification with `Policy`'s rule: one launch sequence per batch.
///
/// `run` launches, on the given stream: (split path only) a partial scan of each row by several
/// CTAs; one CTA per target and draft row computing the processed stats (temperature, top-k,
/// min-p, top-p, never materialising the distribution); one CTA per request running the
/// policy's `verify_chain` with block::block_executor over those stats. It allocates nothing and
/// never synchronises the host, so it can be captured in a CUDA graph (give the seed and the
/// position offset as device pointers to change them between replays).
///
/// The split path (several CTAs per row, then a combining pass) is used when the batch has too
/// few rows to fill the device: fewer than twice the SM count, and rows of at least 8192 entries.
/// @tparam Policy a chain_verification_policy
/// @tparam TT target element type (a row_element)
/// @tparam TD draft element type (a row_element)
/// @tparam Threads threads per CTA (256: eight warps, 2048 elements per step)
template <class Policy, class TT, class TD = TT, int Threads = 256>
class chain_verifier {
  SPECDEC_CHECK(chain_verification_policy, Policy);

public:
  /// @brief Binds the rule and the device size.
  /// @param[in] policy the rule (copied to every launch)
  /// @param[in] sm_count multiprocessors of the device the kernels run on; 0 queries the
  ///   current device (on failure the split path is never used)
  explicit chain_verifier(Policy policy = {}, int sm_count = 0)
      : policy_(policy)
      , sms_(detail::sm_count_or_query(sm_count)) {}

  /// @brief The policy.
  /// @return the rule every launch runs
  const Policy& policy() const noexcept {
    return policy_;
  }

  /// @brief CTAs per row of the split-vocabulary pass for this problem (1: not split).
  /// @param[in] p the problem (only its host-side sizes are read)
  /// @return 1 .. 32
  int slices(const chain_problem<TT, TD>& p) const noexcept {
    const index_t rows = prepared_rows(p);
    const index_t v = p.batch.target.cols;
    if (rows <= 0 || v < 8192 || rows >= 2 * static_cast<index_t>(sms_))
      return 1;
    index_t s = (2 * static_cast<index_t>(sms_) + rows - 1) / rows;
    s = s < v / 4096 ? s : v / 4096;
    s = s < 32 ? s : 32;
    return s < 1 ? 1 : static_cast<int>(s);
  }

  /// @brief Workspace bytes `run` needs for this problem (0 for an empty batch).
  /// @param[in] p the problem (only its host-side sizes are read)
  /// @return the size; any buffer of at least this many bytes, 256-byte aligned, will do
  /// @par Complexity
  /// Constant.
  std::size_t workspace_bytes(const chain_problem<TT, TD>& p) const noexcept {
    if (p.batch.batch <= 0)
      return 0;
    const auto rows = static_cast<std::size_t>(prepared_rows(p));
    const int s = slices(p);
    std::size_t bytes = detail::align256(rows * sizeof(sampling::row_stats));
    if (s > 1)
      bytes +=
          detail::align256(rows * static_cast<std::size_t>(s) * sizeof(sampling::scan_partial));
    return bytes;
  }

  /// @brief Verifies the batch on `stream`.
  /// @param[in] p the problem: device pointers, host-side sizes (see chain_problem)
  /// @param[in] workspace device memory of at least workspace_bytes(p) bytes, 256-byte aligned
  /// @param[in] workspace_size its size in bytes
  /// @param[in] stream the stream
  /// @return ok once the kernels are enqueued; invalid_argument (null pointers, B < 0, V <= 0,
  ///   params_stride not 0 or 1, a workspace too small or misaligned), shape_mismatch (row counts
  ///   or strides), vocab_mismatch (draft V != target V), or cuda_error from a launch. What
  ///   depends on device memory (offsets, tokens, rows, parameters) is checked per request in
  ///   the kernels and reported in `p.out.status`.
  /// @par Complexity
  /// Two or three kernel launches; device work O((rows + B) * V / Threads) per thread.
  [[nodiscard]] status run(const chain_problem<TT, TD>& p,
                           void* workspace,
                           std::size_t workspace_size,
                           cudaStream_t stream) const {
    const verify::chain_batch<TT, TD>& b = p.batch;
    if (b.batch < 0 || b.target.cols <= 0)
      return {errc::invalid_argument};
    if (b.batch == 0)
      return {};
    if (b.draft_offsets == nullptr || b.target.data == nullptr || b.params == nullptr
        || b.request_ids == nullptr || b.positions == nullptr || p.out.accepted == nullptr
        || p.out.next == nullptr || p.out.status == nullptr
        || (b.params_stride != 0 && b.params_stride != 1))
      return {errc::invalid_argument};
    if (b.target.rows < b.batch || b.target.row_stride < b.target.cols)
      return {errc::shape_mismatch};
    const index_t total = b.target.rows - b.batch;
    if (total > 0 && b.tokens == nullptr)
      return {errc::invalid_argument};
    if (Policy::needs_draft_rows && total > 0) {
      const status d = detail::check_draft_matrix(b.draft, b.target.cols, b.draft.rows == total);
      if (!d.ok())
        return d;
    }
    const std::size_t need = workspace_bytes(p);
    if (!detail::workspace_ok(workspace, workspace_size, need))
      return {errc::invalid_argument};

    kernels::chain_launch<TT, TD> l;
    l.p = p;
    l.target_rows = b.target.rows;
    l.draft_rows = Policy::needs_draft_rows && total > 0 ? total : 0;
    l.slices = slices(p);
    auto* base = static_cast<unsigned char*>(workspace);
    l.target_stats = reinterpret_cast<sampling::row_stats*>(base);
    l.draft_stats = l.target_stats + l.target_rows;
    const index_t rows = l.target_rows + l.draft_rows;
    if (l.slices > 1)
      l.partials = reinterpret_cast<sampling::scan_partial*>(
          base + detail::align256(static_cast<std::size_t>(rows) * sizeof(sampling::row_stats)));
    if (l.slices > 1) {
      kernels::scan_slices_kernel<Threads, TT, TD>
          <<<dim3(static_cast<unsigned>(rows), static_cast<unsigned>(l.slices)),
             Threads,
             0,
             stream>>>(l);
      SPECDEC_CUDA_TRY(cudaGetLastError());
    }
    kernels::prepare_rows_kernel<Threads, TT, TD>
        <<<static_cast<unsigned>(rows), Threads, 0, stream>>>(l);
    SPECDEC_CUDA_TRY(cudaGetLastError());
    kernels::verify_chain_kernel<Threads, Policy, TT, TD>
        <<<static_cast<unsigned>(b.batch), Threads, 0, stream>>>(policy_, l);
    SPECDEC_CUDA_TRY(cudaGetLastError());
    return {};
  }

private:
  index_t prepared_rows(const chain_problem<TT, TD>& p) const noexcept {
    const index_t total = p.batch.target.rows - p.batch.batch;
    return p.batch.target.rows + (Policy::needs_draft_rows && total > 0 ? total : 0);
  }

  Policy policy_;
  int sms_ = 1;
};

/// @brief Builds ragged draft offsets from per-request draft lengths on the device:
/// offsets[0] = 0 and offsets[b + 1] = lengths[0] + ... + lengths[b] (a CUB inclusive scan in
/// 64-bit). Call it first with `temp == nullptr` to get the temporary bytes, as CUB does.
/// @tparam L the length type (an integer)
/// @param[in] temp device temporary storage, or null to query its size
/// @param[in,out] temp_bytes its size (written on a query)
/// @param[in] lengths @shape{[B]} device draft lengths
/// @param[out] offsets @shape{[B + 1]} device offsets
/// @param[in] batch B
/// @param[in] stream the stream
/// @return ok, invalid_argument (B < 0 or null pointers), or cuda_error
/// @par Complexity
/// O(B) device work, no host synchronisation.
template <class L>
[[nodiscard]] status offsets_from_lengths(void* temp,
                                          std::size_t& temp_bytes,
                                          const L* lengths,
                                          index_t* offsets,
                                          index_t batch,
                                          cudaStream_t stream) {
  if (batch < 0 || batch > INT32_MAX)
    return {errc::invalid_argument};
  if (temp == nullptr) {
    SPECDEC_CUDA_TRY(cub::DeviceScan::InclusiveScan(nullptr,
                                                    temp_bytes,
                                                    lengths,
                                                    offsets,
                                                    detail::add_index{},
                                                    static_cast<int>(batch > 0 ? batch : 1)));
    return {};
  }
  if (offsets == nullptr || (batch > 0 && lengths == nullptr))
    return {errc::invalid_argument};
  SPECDEC_CUDA_TRY(cudaMemsetAsync(offsets, 0, sizeof(index_t), stream));
  if (batch == 0)
    return {};
  SPECDEC_CUDA_TRY(cub::DeviceScan::InclusiveScan(temp,
                                                  temp_bytes,
                                                  lengths,
                                                  offsets + 1,
                                                  detail::add_index{},
                                                  static_cast<int>(batch),
                                                  stream));
  return {};
}

SPECDEC_CUDA_NAMESPACE_END
