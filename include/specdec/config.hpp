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
#define SPECDEC_NAMESPACE_BEGIN                                                                    \
  namespace specdec {                                                                              \
  inline namespace v0_1 {
/// Closes the namespace opened by SPECDEC_NAMESPACE_BEGIN.
#define SPECDEC_NAMESPACE_END                                                                      \
  }                                                                                                \
  }

#if defined(__CUDA_ARCH_LIST__)
#define SPECDEC_DETAIL_CAT2(a, b) a##b
#define SPECDEC_DETAIL_CAT(a, b) SPECDEC_DETAIL_CAT2(a, b)
// __CUDA_ARCH_LIST__ is a comma-separated list (e.g. 800,900): join up to 8 entries with '_'.
#define SPECDEC_DETAIL_NARGS(...) SPECDEC_DETAIL_NARGS_(__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define SPECDEC_DETAIL_NARGS_(a1, a2, a3, a4, a5, a6, a7, a8, n, ...) n
#define SPECDEC_DETAIL_JOIN1(a) a
#define SPECDEC_DETAIL_JOIN2(a, b) a##_##b
#define SPECDEC_DETAIL_JOIN3(a, b, c) a##_##b##_##c
#define SPECDEC_DETAIL_JOIN4(a, b, c, d) a##_##b##_##c##_##d
#define SPECDEC_DETAIL_JOIN5(a, b, c, d, e) a##_##b##_##c##_##d##_##e
#define SPECDEC_DETAIL_JOIN6(a, b, c, d, e, f) a##_##b##_##c##_##d##_##e##_##f
#define SPECDEC_DETAIL_JOIN7(a, b, c, d, e, f, g) a##_##b##_##c##_##d##_##e##_##f##_##g
#define SPECDEC_DETAIL_JOIN8(a, b, c, d, e, f, g, h) a##_##b##_##c##_##d##_##e##_##f##_##g##_##h
#define SPECDEC_DETAIL_ARCH_NAME(...)                                                              \
  SPECDEC_DETAIL_CAT(SPECDEC_DETAIL_JOIN, SPECDEC_DETAIL_NARGS(__VA_ARGS__))(__VA_ARGS__)
#define SPECDEC_DETAIL_ARCH_NS(...)                                                                \
  SPECDEC_DETAIL_CAT(v0_1_sm_, SPECDEC_DETAIL_ARCH_NAME(__VA_ARGS__))
/// @brief Opens `specdec::cuda` inside an inline namespace that also names the device
/// architectures, so translation units built for different architecture lists never share a
/// kernel symbol.
#define SPECDEC_CUDA_NAMESPACE_BEGIN                                                               \
  namespace specdec {                                                                              \
  inline namespace SPECDEC_DETAIL_ARCH_NS(__CUDA_ARCH_LIST__) {                                    \
    namespace cuda {
#else
/// @brief Opens `specdec::cuda` inside the ABI namespace `specdec::v0_1`.
///
/// This is the definition for host compilers (and nvcc without `__CUDA_ARCH_LIST__`), and the one
/// Doxygen sees. When nvcc defines `__CUDA_ARCH_LIST__`, the inline namespace also names the
/// device architectures, so translation units built for different architecture lists never share
/// a kernel symbol.
#define SPECDEC_CUDA_NAMESPACE_BEGIN                                                               \
  namespace specdec {                                                                              \
  inline namespace v0_1 {                                                                          \
  namespace cuda {
#endif
/// Closes the namespace opened by SPECDEC_CUDA_NAMESPACE_BEGIN.
#define SPECDEC_CUDA_NAMESPACE_END                                                                 \
  }                                                                                                \
  }                                                                                                \
  }

#if !defined(SPECDEC_ASSERT)
#if !defined(NDEBUG) || defined(SPECDEC_ENABLE_EXTRA_CHECKS)
#if defined(__CUDA_ARCH__)
#define SPECDEC_ASSERT(cond, msg)                                                                  \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      printf("specdec assertion failed: %s (%s) at %s:%d\n", msg, #cond, __FILE__, __LINE__);      \
      __trap();                                                                                    \
    }                                                                                              \
  } while (0)
#else
/// @brief Checks a precondition in debug builds and tests: prints the message and aborts when it
/// fails.
///
/// Define SPECDEC_ASSERT before including specdec to replace it (as with eigen_assert).
/// It is active unless `NDEBUG` is defined (`SPECDEC_ENABLE_EXTRA_CHECKS` keeps it on), and does
/// nothing otherwise. In device code a failure prints with `printf` and calls `__trap()`.
/// @param[in] cond the condition that must hold (not evaluated when the check is off)
/// @param[in] msg a C string naming the broken precondition
#define SPECDEC_ASSERT(cond, msg)                                                                  \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(                                                                                \
          stderr, "specdec assertion failed: %s (%s) at %s:%d\n", msg, #cond, __FILE__, __LINE__); \
      std::abort();                                                                                \
    }                                                                                              \
  } while (0)
#endif
#else
#define SPECDEC_ASSERT(cond, msg)                                                                  \
  do {                                                                                             \
  } while (0)
#endif
#endif
