// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Configuration macros: host/device annotations, the ABI namespace and assertions.
///
/// This header includes nothing of ours but version.hpp. Every other header includes it first.

#include <specdec/version.hpp>

#include <cstdio>
#include <cstdlib>

#if defined(__CUDACC__)
/// Marks a function callable from host and device code. Expands to nothing for a host compiler.
#define SPECDEC_HD __host__ __device__
/// Marks a function callable from host code only (under nvcc).
#define SPECDEC_HOST __host__
/// Marks a device-only function. Defined only under nvcc: use it in `.cuh` files only.
#define SPECDEC_DEVICE __device__
/// Marks a kernel entry point. Defined only under nvcc: use it in `.cuh` files only.
#define SPECDEC_KERNEL __global__
/// Forces inlining on host and device.
#define SPECDEC_FORCEINLINE __forceinline__
#else
#define SPECDEC_HD
#define SPECDEC_HOST
#define SPECDEC_FORCEINLINE inline __attribute__((always_inline))
#endif

/// Opens the versioned ABI namespace `specdec::v0_1`.
#define SPECDEC_NAMESPACE_BEGIN                                                                   \
  namespace specdec {                                                                             \
  inline namespace v0_1 {
/// Closes the namespace opened by SPECDEC_NAMESPACE_BEGIN.
#define SPECDEC_NAMESPACE_END                                                                     \
  }                                                                                               \
  }

#if defined(__CUDA_ARCH_LIST__)
#define SPECDEC_DETAIL_CAT2(a, b) a##b
#define SPECDEC_DETAIL_CAT(a, b) SPECDEC_DETAIL_CAT2(a, b)
/// Opens `specdec::cuda` inside an inline namespace that also names the device architectures, so
/// translation units built for different architecture lists never share a kernel symbol.
#define SPECDEC_CUDA_NAMESPACE_BEGIN                                                              \
  namespace specdec {                                                                             \
  inline namespace SPECDEC_DETAIL_CAT(v0_1_sm_, __CUDA_ARCH_LIST__) {                             \
  namespace cuda {
#else
#define SPECDEC_CUDA_NAMESPACE_BEGIN                                                              \
  namespace specdec {                                                                             \
  inline namespace v0_1 {                                                                         \
  namespace cuda {
#endif
/// Closes the namespace opened by SPECDEC_CUDA_NAMESPACE_BEGIN.
#define SPECDEC_CUDA_NAMESPACE_END                                                                \
  }                                                                                               \
  }                                                                                               \
  }

#if !defined(SPECDEC_ASSERT)
#if !defined(NDEBUG) || defined(SPECDEC_ENABLE_EXTRA_CHECKS)
#if defined(__CUDA_ARCH__)
#define SPECDEC_ASSERT(cond, msg)                                                                 \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      printf("specdec assertion failed: %s (%s) at %s:%d\n", msg, #cond, __FILE__, __LINE__);    \
      __trap();                                                                                   \
    }                                                                                             \
  } while (0)
#else
/// Checks a precondition in debug builds and tests: prints the message and aborts when it fails.
/// Define SPECDEC_ASSERT before including specdec to replace it (as with eigen_assert).
#define SPECDEC_ASSERT(cond, msg)                                                                 \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      std::fprintf(                                                                               \
          stderr, "specdec assertion failed: %s (%s) at %s:%d\n", msg, #cond, __FILE__, __LINE__); \
      std::abort();                                                                               \
    }                                                                                             \
  } while (0)
#endif
#else
#define SPECDEC_ASSERT(cond, msg)                                                                 \
  do {                                                                                            \
  } while (0)
#endif
#endif
