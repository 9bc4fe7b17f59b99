// SPDX-License-Identifier: Apache-2.0
#pragma once
// Test support for the device chain verifier: device buffers and the device mirror of a host
// batch (support/host_batch.hpp has the batch, the host reference and the tie rule).
#include <specdec/specdec.cuh>

#include <catch2/catch.hpp>

#include "support/host_batch.hpp"
#include <cstdint>
#include <vector>

namespace specdec_test {

template <class T>
struct device_buffer {
  T* ptr = nullptr;
  std::size_t n = 0;
  device_buffer() = default;
  explicit device_buffer(std::size_t count)
      : n(count) {
    if (count > 0)
      REQUIRE(cudaMalloc(&ptr, count * sizeof(T)) == cudaSuccess);
  }
  explicit device_buffer(const std::vector<T>& h)
      : device_buffer(h.size()) {
    if (!h.empty())
      REQUIRE(cudaMemcpy(ptr, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice)
              == cudaSuccess);
  }
  ~device_buffer() {
    if (ptr != nullptr)
      (void)cudaFree(ptr);
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  std::vector<T> download() const {
    std::vector<T> h(n);
    if (n > 0)
      REQUIRE(cudaMemcpy(h.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
  }
};

/// The host batch's device mirror.
template <class T>
struct device_batch {
  device_buffer<specdec::index_t> offsets;
  device_buffer<specdec::token_id> tokens;
  device_buffer<T> target, draft;
  device_buffer<specdec::sampling::sampling_params> params;
  device_buffer<std::uint64_t> ids;
  device_buffer<specdec::index_t> positions;
  device_buffer<std::int32_t> accepted;
  device_buffer<specdec::token_id> next;
  device_buffer<specdec::row_status> status;
  specdec::cuda::chain_problem<T> problem;

  explicit device_batch(const host_batch<T>& h)
      : offsets(h.offsets)
      , tokens(h.tokens)
      , target(h.target)
      , draft(h.draft)
      , params(h.params)
      , ids(h.ids)
      , positions(h.positions)
      , accepted(static_cast<std::size_t>(h.batch))
      , next(static_cast<std::size_t>(h.batch))
      , status(static_cast<std::size_t>(h.batch)) {
    problem.batch = h.view();
    problem.batch.draft_offsets = offsets.ptr;
    problem.batch.tokens = tokens.ptr;
    problem.batch.target.data = target.ptr;
    problem.batch.draft.data = draft.ptr;
    problem.batch.params = params.ptr;
    problem.batch.request_ids = ids.ptr;
    problem.batch.positions = positions.ptr;
    problem.out = {accepted.ptr, next.ptr, status.ptr};
  }

  template <class Verifier>
  results run(const Verifier& v) {
    const std::size_t bytes = v.workspace_bytes(problem);
    device_buffer<unsigned char> ws(bytes);
    const specdec::status st = v.run(problem, ws.ptr, bytes, nullptr);
    REQUIRE(st.ok());
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    return {accepted.download(), next.download(), status.download()};
  }
};

} // namespace specdec_test
