// SPDX-License-Identifier: Apache-2.0
#pragma once
// Test support for CUDA tests: exit with code 77 (CTest SKIP_RETURN_CODE) before any test runs
// when no CUDA device is present, so GPU tests report "skipped", never "passed", on such hosts.
// Include in exactly one place per test executable, after <catch2/catch.hpp> with
// CATCH_CONFIG_EXTERNAL_INTERFACES defined.

#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

namespace specdec_test {

/// Exit code CTest maps to "skipped".
inline constexpr int skip_return_code = 77;

struct require_cuda_device : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testRunStarting(Catch::TestRunInfo const& info) override {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
      std::fprintf(stderr, "%s: no CUDA device, skipping\n", info.name.c_str());
      std::exit(skip_return_code);
    }
  }
};

} // namespace specdec_test

using specdec_test::require_cuda_device;
CATCH_REGISTER_LISTENER(require_cuda_device)
