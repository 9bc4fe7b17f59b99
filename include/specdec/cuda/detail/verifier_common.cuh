// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Internals shared by the host entry points of device verification (chain_verifier,
/// tree_verifier): workspace alignment and checks, the SM count query and the draft-matrix
/// checks.

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>

#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

SPECDEC_CUDA_NAMESPACE_BEGIN

namespace detail {

/// Rounds a byte count up to 256 (the alignment of every workspace region).
constexpr std::size_t align256(std::size_t n) noexcept {
  return (n + 255u) / 256u * 256u;
}

/// `sm_count` when positive, else the current device's multiprocessor count (1 on failure).
inline int sm_count_or_query(int sm_count) noexcept {
  if (sm_count > 0)
    return sm_count;
  int dev = 0;
  int n = 0;
  if (cudaGetDevice(&dev) == cudaSuccess
      && cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess)
    return n > 0 ? n : 1;
  (void)cudaGetLastError();
  return 1;
}

/// Whether `workspace` (of `size` bytes) holds `need` bytes and is 256-byte aligned.
inline bool workspace_ok(const void* workspace, std::size_t size, std::size_t need) noexcept {
  return size >= need && (need == 0 || workspace != nullptr)
         && reinterpret_cast<std::uintptr_t>(workspace) % 256u == 0u;
}

/// Checks a draft matrix against the target width: invalid_argument (no data), vocab_mismatch
/// (other width), shape_mismatch (`rows_ok` false or a stride below the width), else ok.
template <class Matrix>
status check_draft_matrix(const Matrix& draft, index_t target_cols, bool rows_ok) noexcept {
  if (draft.data == nullptr)
    return {errc::invalid_argument};
  if (draft.cols != target_cols)
    return {errc::vocab_mismatch};
  if (!rows_ok || draft.row_stride < draft.cols)
    return {errc::shape_mismatch};
  return {};
}

} // namespace detail

SPECDEC_CUDA_NAMESPACE_END
