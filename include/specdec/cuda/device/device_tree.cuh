// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Host entry points of device tree verification and tree masks: tree_verifier and
/// tree_mask_builder (workspace query and launch on a stream, no allocation, no
/// synchronisation).

#include <specdec/config.hpp>

#include <specdec/core/diagnostics.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/cuda/detail/verifier_common.cuh>
#include <specdec/cuda/kernels/tree_mask_kernel.cuh>
#include <specdec/cuda/kernels/verify_tree_kernel.cuh>
#include <specdec/cuda/launch.cuh>
#include <specdec/tree/token_tree.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/rejection.hpp>
#include <specdec/verify/tree.hpp>
#include <specdec/verify/typical.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>

SPECDEC_CUDA_NAMESPACE_BEGIN

namespace detail {

/// Whether the rows of a request can be prepared before `Policy`'s rule runs, and with which
/// parameters: only for the library's tree rules, whose parameter use is known (a prepared row
/// must equal what the rule would compute). Other policies always prepare inline.
template <class Policy>
struct tree_preparation {
  static constexpr bool supported = false; ///< never prepared
  static constexpr kernels::tree_row_params params = kernels::tree_row_params::request; ///< unused
};
template <>
struct tree_preparation<verify::greedy> {
  static constexpr bool supported = true;
  static constexpr kernels::tree_row_params params = kernels::tree_row_params::argmax_only;
};
/// Prepared with each request's own (checked) parameters.
struct tree_preparation_per_request {
  static constexpr bool supported = true;
  static constexpr kernels::tree_row_params params = kernels::tree_row_params::request;
};
template <>
struct tree_preparation<verify::rejection_sampling> : tree_preparation_per_request {};
template <>
struct tree_preparation<verify::one_hot_rejection> : tree_preparation_per_request {};
template <>
struct tree_preparation<verify::typical_acceptance> : tree_preparation_per_request {};

} // namespace detail

/// @brief Device tree verification with `Policy`'s rule: one launch sequence per batch.
///
/// `run` launches, on the given stream, one CTA per request running the policy's shared
/// `verify_tree` (the host rule's own code, with block::block_executor's collectives: outcomes
/// equal the host's except where float sums rounded in another order decide, see the GPU
/// tests). A
/// request's CTA prepares the rows it visits one after another (depth + 1 target rows, plus
/// the draft rows of tried children); when the whole batch has few rows (at most twice the SM
/// count, target and draft rows together) and the policy is one of the library's tree rules, it
/// first launches one CTA per row computing the processed row stats in parallel, which the rule
/// then reads: lower latency for small batches, at the price of preparing rows the rule never
/// visits (so not for larger batches, where the per-request CTAs already fill the device and
/// the extra rows would dominate). Both give bit-identical results. It allocates nothing and
/// never synchronises the host, so it can be captured in a CUDA graph (give the seed and the
/// position offset as device pointers to change them between replays).
///
/// Host-side checks cover what the host can see without reading device memory (null
/// pointers, strides, widths, row counts); the per-request checks verify::validate does on the
/// host (node counts, row ranges, positions, draft rows) happen in the kernel and become that
/// request's bad_shape status, so a bad request never disturbs the others. To reject a batch
/// up front instead, run verify::validate on a host mirror of the batch.
///
/// The accepted path is `out.last_node` and its ancestors (`accepted + 1` nodes): optionally
/// written by the kernel (tree_problem::path), else derivable on the host with
/// tree::write_path.
/// @tparam Policy a tree_verification_policy
/// @tparam TT target element type (a row_element)
/// @tparam TD draft element type (a row_element)
/// @tparam Threads threads per CTA (256: eight warps, 2048 elements per step)
template <class Policy, class TT, class TD = TT, int Threads = 256>
class tree_verifier {
  SPECDEC_CHECK(tree_verification_policy, Policy);

public:
  /// @brief Binds the rule and the device size.
  /// @param[in] policy the rule (copied to every launch)
  /// @param[in] sm_count multiprocessors of the device the kernels run on; 0 queries the
  ///   current device (on failure, 1)
  explicit tree_verifier(Policy policy = {}, int sm_count = 0)
      : policy_(policy)
      , sms_(detail::sm_count_or_query(sm_count)) {}

  /// @brief The policy.
  /// @return the rule every launch runs
  const Policy& policy() const noexcept {
    return policy_;
  }

  /// @brief Whether `run` prepares the rows in parallel before the rule for this problem.
  /// @param[in] p the problem (only its host-side sizes are read)
  /// @return true for the library's rules when B > 0 and the rows to prepare (target rows,
  ///   plus draft rows for rules reading them) are at most twice the SM count
  /// @par Complexity
  /// Constant.
  bool prepares_rows(const tree_problem<TT, TD>& p) const noexcept {
    return detail::tree_preparation<Policy>::supported && p.batch.batch > 0
           && p.batch.target.rows > 0 && prepared_rows(p) <= 2 * static_cast<index_t>(sms_);
  }

  /// @brief Workspace bytes `run` needs for this problem (0 when rows are not prepared).
  /// @param[in] p the problem (only its host-side sizes are read)
  /// @return the size; any buffer of at least this many bytes, 256-byte aligned, will do
  /// @par Complexity
  /// Constant.
  std::size_t workspace_bytes(const tree_problem<TT, TD>& p) const noexcept {
    if (!prepares_rows(p))
      return 0;
    const auto rows = static_cast<std::size_t>(prepared_rows(p));
    return detail::align256(rows * sizeof(sampling::row_stats))
           + detail::align256(rows * sizeof(std::int32_t));
  }

  /// @brief Verifies the batch on `stream`.
  /// @param[in] p the problem: device pointers, host-side sizes (see tree_problem)
  /// @param[in] workspace device memory of at least workspace_bytes(p) bytes, 256-byte aligned
  /// @param[in] workspace_size its size in bytes
  /// @param[in] stream the stream
  /// @return ok once the kernels are enqueued; invalid_argument (B outside [0, 2^31), V <= 0,
  ///   null pointers, first_child without next_sibling, params_stride not 0 or 1, a path
  ///   without a positive path_stride, a workspace too small or misaligned), shape_mismatch
  ///   (target rows fewer than B, strides below the width), vocab_mismatch (draft V != target
  ///   V), or cuda_error from a launch. What depends on device memory is checked per request
  ///   in the kernel and reported in `p.out.status` (see verify_tree_kernel).
  /// @par Complexity
  /// One or two kernel launches; the rule's device work is O((depth + tried siblings) * V /
  /// Threads) per thread and request, the preparation's O(V / Threads) per row.
  [[nodiscard]] status run(const tree_problem<TT, TD>& p,
                           void* workspace,
                           std::size_t workspace_size,
                           cudaStream_t stream) const {
    const verify::tree_batch<TT, TD>& b = p.batch;
    if (b.batch < 0 || b.batch > INT32_MAX || b.target.cols <= 0)
      return {errc::invalid_argument};
    if (b.batch == 0)
      return {};
    if (b.node_offsets == nullptr || b.tokens == nullptr || b.parents == nullptr
        || b.target.data == nullptr || b.params == nullptr || b.request_ids == nullptr
        || b.positions == nullptr || p.out.accepted == nullptr || p.out.last_node == nullptr
        || p.out.next == nullptr || p.out.status == nullptr
        || (b.params_stride != 0 && b.params_stride != 1)
        || ((b.first_child == nullptr) != (b.next_sibling == nullptr))
        || (p.path != nullptr && p.path_stride < 1))
      return {errc::invalid_argument};
    if (b.target.rows < b.batch || b.target.row_stride < b.target.cols)
      return {errc::shape_mismatch};
    if (Policy::needs_draft_rows) {
      const status d = detail::check_draft_matrix(b.draft, b.target.cols, b.draft.rows >= 0);
      if (!d.ok())
        return d;
    }
    const std::size_t need = workspace_bytes(p);
    if (!detail::workspace_ok(workspace, workspace_size, need))
      return {errc::invalid_argument};

    kernels::tree_launch<TT, TD> l;
    l.p = p;
    if (!Policy::needs_draft_rows) { // the rule never reads them: keep the request views clean
      l.p.batch.draft = {};
      l.p.batch.draft_offsets = nullptr;
      l.p.batch.draft_index = nullptr;
    }
    l.target_rows = b.target.rows;
    l.row_params = detail::tree_preparation<Policy>::params;
    if (need > 0) {
      l.draft_rows = Policy::needs_draft_rows ? b.draft.rows : 0;
      const index_t rows = l.target_rows + l.draft_rows;
      auto* base = static_cast<unsigned char*>(workspace);
      l.stats = reinterpret_cast<sampling::row_stats*>(base);
      l.owners = reinterpret_cast<std::int32_t*>(
          base + detail::align256(static_cast<std::size_t>(rows) * sizeof(sampling::row_stats)));
      kernels::prepare_tree_rows_kernel<Threads, TT, TD>
          <<<static_cast<unsigned>(rows), Threads, 0, stream>>>(l);
      SPECDEC_CUDA_TRY(cudaGetLastError());
    }
    kernels::verify_tree_kernel<Threads, Policy, TT, TD>
        <<<static_cast<unsigned>(b.batch), Threads, 0, stream>>>(policy_, l);
    SPECDEC_CUDA_TRY(cudaGetLastError());
    return {};
  }

private:
  index_t prepared_rows(const tree_problem<TT, TD>& p) const noexcept {
    return p.batch.target.rows + (Policy::needs_draft_rows ? p.batch.draft.rows : 0);
  }

  Policy policy_;
  int sms_ = 1;
};

/// @brief Builds bit-packed tree attention masks and node positions for a packed batch of
/// trees on the device (see tree_mask_problem for the layout): one thread per (row, word)
/// calling the shared tree::mask_word, so the words equal tree::build_packed_mask's.
/// @tparam Threads threads per CTA
template <int Threads = 256>
class tree_mask_builder {
public:
  /// @brief Workspace bytes `run` needs (none).
  /// @param[in] p the problem
  /// @return 0
  /// @par Complexity
  /// Constant.
  std::size_t workspace_bytes(const tree_mask_problem& p) const noexcept {
    (void)p;
    return 0;
  }

  /// @brief Builds the masks, positions and statuses on `stream`.
  /// @param[in] p the problem: device pointers, host-side sizes
  /// @param[in] workspace unused (may be null)
  /// @param[in] workspace_size unused
  /// @param[in] stream the stream
  /// @return ok once the kernel is enqueued; invalid_argument (B < 0, total_nodes < 0, null
  ///   offsets or parents with work to do, a mask with mask_stride < 1, positions without
  ///   root_positions); cuda_error from the launch
  /// @par Complexity
  /// One launch; O(depth) per word, plus O(N x depth) per request for the status.
  [[nodiscard]] status run(const tree_mask_problem& p,
                           void* workspace,
                           std::size_t workspace_size,
                           cudaStream_t stream) const {
    (void)workspace;
    (void)workspace_size;
    if (p.batch < 0 || p.total_nodes < 0 || (p.mask != nullptr && p.mask_stride < 1)
        || (p.positions != nullptr && p.root_positions == nullptr))
      return {errc::invalid_argument};
    if (p.batch == 0)
      return {};
    if (p.node_offsets == nullptr || (p.total_nodes > 0 && p.parents == nullptr))
      return {errc::invalid_argument};
    const index_t words = p.mask != nullptr ? p.mask_stride : 1;
    const index_t items = p.batch + p.total_nodes * words;
    const index_t blocks = (items + Threads - 1) / Threads;
    kernels::tree_mask_kernel<Threads>
        <<<static_cast<unsigned>(blocks < 65536 ? blocks : 65536), Threads, 0, stream>>>(p);
    SPECDEC_CUDA_TRY(cudaGetLastError());
    return {};
  }
};

SPECDEC_CUDA_NAMESPACE_END
