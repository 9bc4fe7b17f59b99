// SPDX-License-Identifier: Apache-2.0
// Smoke test of the GPU test wiring: exits 77 (CTest: skipped) when there is no CUDA device
// (support/gpu.hpp), otherwise runs a trivial kernel and checks its output with Catch2.
#define CATCH_CONFIG_EXTERNAL_INTERFACES // Catch::TestEventListenerBase, for support/gpu.hpp
#include <catch2/catch.hpp>

#include "support/gpu.hpp"
#include <cstddef>
#include <cuda_runtime.h>
#include <vector>

namespace {

__global__ void affine_kernel(int* out, int n) {
  int const i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) {
    out[i] = 3 * i + 1;
  }
}

} // namespace

TEST_CASE("cuda smoke: a kernel writes 3i+1 to every element", "[gpu][smoke]") {
  constexpr int n = 1000;
  int* d_out = nullptr;
  REQUIRE(cudaMalloc(&d_out, n * sizeof(int)) == cudaSuccess);
  affine_kernel<<<(n + 255) / 256, 256>>>(d_out, n);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  std::vector<int> out(n, -1);
  REQUIRE(cudaMemcpy(out.data(), d_out, n * sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess);
  REQUIRE(cudaFree(d_out) == cudaSuccess);
  for (int i = 0; i < n; ++i) {
    REQUIRE(out[static_cast<std::size_t>(i)] == 3 * i + 1);
  }
}
