// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief CUDA error handling: SPECDEC_CUDA_TRY and the conversion of cudaError_t to status.

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>

#include <cuda_runtime.h>

/// @namespace specdec::cuda
/// @brief The CUDA layer, for nvcc translation units (include specdec.cuh): CUDA error handling
/// and device queries.

SPECDEC_CUDA_NAMESPACE_BEGIN

/// @brief Converts a CUDA runtime result to a specdec status (errc::cuda_error carrying the code).
/// @param[in] e the CUDA result
/// @return ok for cudaSuccess, else {errc::cuda_error, e}
inline status to_status(cudaError_t e) noexcept {
  return e == cudaSuccess ? status{} : status{errc::cuda_error, static_cast<int>(e)};
}

/// @brief Number of CUDA devices visible, 0 when there is none or the driver is missing.
///
/// On a failure of `cudaGetDeviceCount` it calls `cudaGetLastError()` to reset the runtime's last
/// error.
/// @return the device count, or 0
inline int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError(); // clear the sticky "no device" error
    return 0;
  }
  return n;
}

SPECDEC_CUDA_NAMESPACE_END

/// @brief Evaluates a CUDA runtime call; on failure returns its status from the enclosing function
/// (which must return specdec::status).
///
/// With SPECDEC_DEBUG_SYNC it also synchronises the device so that asynchronous kernel faults
/// surface at the launch that caused them, and prints the failing expression and the CUDA error
/// string to stderr. On failure it calls `cudaGetLastError()` to reset the runtime's last error.
/// @param[in] expr an expression of type `cudaError_t`, evaluated once
#if defined(SPECDEC_DEBUG_SYNC)
#define SPECDEC_CUDA_TRY(expr)                                                                     \
  do {                                                                                             \
    cudaError_t specdec_err_ = (expr);                                                             \
    if (specdec_err_ == cudaSuccess)                                                               \
      specdec_err_ = cudaDeviceSynchronize();                                                      \
    if (specdec_err_ != cudaSuccess) {                                                             \
      (void)cudaGetLastError();                                                                    \
      std::fprintf(stderr, "specdec: %s failed: %s\n", #expr, cudaGetErrorString(specdec_err_));   \
      return ::specdec::cuda::to_status(specdec_err_);                                             \
    }                                                                                              \
  } while (0)
#else
#define SPECDEC_CUDA_TRY(expr)                                                                     \
  do {                                                                                             \
    const cudaError_t specdec_err_ = (expr);                                                       \
    if (specdec_err_ != cudaSuccess) {                                                             \
      (void)cudaGetLastError();                                                                    \
      return ::specdec::cuda::to_status(specdec_err_);                                             \
    }                                                                                              \
  } while (0)
#endif
