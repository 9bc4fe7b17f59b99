// SPDX-License-Identifier: Apache-2.0
// The shared SPECDEC_HD code run by one device thread per request (cpu::serial_executor is
// host/device) must give bit-identical results to the host: Philox words, exp_f, dtype
// conversions, and every chain rule's accepted count, token and status.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <specdec/specdec.cuh>

#include <catch2/catch.hpp>

#include "support/gpu.hpp"
#include <cstdint>
#include <random>
#include <vector>

using namespace specdec;

namespace specdec_test {

/// The host executor with the device executor's runtime dispatch of row forms: one code path
/// per rule instead of one per combination of row forms (the statically dispatched rules
/// inlined into a one-thread kernel took ptxas over ten minutes per architecture). The host
/// reference keeps the static dispatch; verify/test_device_logic.cpp checks that the two
/// dispatches decide alike.
struct serial_runtime_dispatch : cpu::serial_executor {
  static constexpr bool runtime_dispatch = true; ///< see sampling::detail::runtime_dispatch
};

} // namespace specdec_test

namespace {

template <class T>
struct device_buffer {
  T* ptr = nullptr;
  explicit device_buffer(std::size_t n) {
    REQUIRE(cudaMalloc(&ptr, n * sizeof(T)) == cudaSuccess);
  }
  ~device_buffer() {
    (void)cudaFree(ptr);
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
};

template <class T>
T* upload(device_buffer<T>& d, const std::vector<T>& h) {
  REQUIRE(cudaMemcpy(d.ptr, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
  return d.ptr;
}

__global__ void scalar_kernel(std::uint32_t* words, float* exps, float* halves, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= n)
    return;
  const philox_block b = random_words(rng_key{12345u, 77u}, i, draw_purpose::sample);
  words[i] = b.w[0] ^ b.w[3];
  exps[i] = detail::exp_f(-0.01f * static_cast<float>(i));
  halves[i] = dtype_traits<specdec::half>::to_float(
      dtype_traits<specdec::half>::from_float(0.37f * static_cast<float>(i)));
}

template <class Policy>
__global__ void
verify_kernel(Policy policy, verify::chain_batch<float> batch, verify::chain_batch_output out) {
  const index_t b = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= batch.batch)
    return;
  const verify::chain_outcome o = policy.verify_chain(
      specdec_test::serial_runtime_dispatch{}, batch.request(b), batch.uniforms(b));
  out.accepted[b] = o.accepted;
  out.next[b] = o.next;
  out.status[b] = o.status;
}

} // namespace

TEST_CASE("device: Philox, exp_f and half conversion are bit-identical to the host",
          "[gpu][core]") {
  constexpr int n = 4096;
  device_buffer<std::uint32_t> w(n);
  device_buffer<float> e(n), h(n);
  scalar_kernel<<<n / 256, 256>>>(w.ptr, e.ptr, h.ptr, n);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  std::vector<std::uint32_t> words(n);
  std::vector<float> exps(n), halves(n);
  REQUIRE(cudaMemcpy(words.data(), w.ptr, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  REQUIRE(cudaMemcpy(exps.data(), e.ptr, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  REQUIRE(cudaMemcpy(halves.data(), h.ptr, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  for (int i = 0; i < n; ++i) {
    const philox_block b = random_words(rng_key{12345u, 77u}, i, draw_purpose::sample);
    REQUIRE(words[static_cast<std::size_t>(i)] == (b.w[0] ^ b.w[3]));
    REQUIRE(exps[static_cast<std::size_t>(i)] == detail::exp_f(-0.01f * static_cast<float>(i)));
    REQUIRE(halves[static_cast<std::size_t>(i)]
            == dtype_traits<specdec::half>::to_float(
                dtype_traits<specdec::half>::from_float(0.37f * static_cast<float>(i))));
  }
}

TEMPLATE_TEST_CASE("device: every chain rule on one thread per request equals the host",
                   "[gpu][verify][chain]",
                   verify::greedy,
                   verify::rejection_sampling,
                   verify::one_hot_rejection,
                   verify::typical_acceptance,
                   verify::block_verification,
                   verify::one_hot_block_verification) {
  constexpr index_t B = 64, V = 777;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.5f);
  std::vector<index_t> offsets{0};
  for (index_t b = 0; b < B; ++b)
    offsets.push_back(offsets.back() + b % 6);
  const index_t total = offsets.back();
  std::vector<float> target(static_cast<std::size_t>((total + B) * V)),
      draft(static_cast<std::size_t>(total * V));
  for (auto& x : target)
    x = nd(rng);
  for (std::size_t i = 0; i < draft.size(); ++i)
    draft[i] = 0.7f * nd(rng);
  std::vector<token_id> tokens(static_cast<std::size_t>(total));
  for (auto& t : tokens)
    t = static_cast<token_id>(rng() % 8); // small ids: some get accepted
  target[5 * V + 3] = NAN;                // one bad row must stay contained
  std::vector<std::uint64_t> ids(B);
  std::vector<index_t> pos(B);
  for (index_t b = 0; b < B; ++b) {
    ids[static_cast<std::size_t>(b)] = 1000u + static_cast<std::uint64_t>(b) * 7u;
    pos[static_cast<std::size_t>(b)] = 50 + b;
  }
  std::vector<sampling::sampling_params> params(B);
  for (index_t b = 0; b < B; ++b) {
    auto& p = params[static_cast<std::size_t>(b)];
    p.temperature = b % 4 == 0 ? 0.0f : 0.8f;
    p.top_k = b % 3 == 0 ? 20 : 0;
    p.top_p = b % 5 == 0 ? 0.9f : 1.0f;
  }
  device_buffer<index_t> d_off(offsets.size()), d_pos(pos.size());
  device_buffer<float> d_target(target.size()), d_draft(draft.size());
  device_buffer<token_id> d_tok(tokens.size()), d_next(B);
  device_buffer<std::uint64_t> d_ids(ids.size());
  device_buffer<sampling::sampling_params> d_params(params.size());
  device_buffer<std::int32_t> d_acc(B);
  device_buffer<row_status> d_st(B);

  verify::chain_batch<float> host;
  host.batch = B;
  host.draft_offsets = offsets.data();
  host.tokens = tokens.data();
  host.target = {target.data(), total + B, V, V};
  host.draft = {draft.data(), total, V, V};
  host.params = params.data();
  host.params_stride = 1;
  host.request_ids = ids.data();
  host.positions = pos.data();
  host.seed = 99;
  std::vector<std::int32_t> acc(B);
  std::vector<token_id> next(B);
  std::vector<row_status> st(B);
  (void)cpu::verify_chain_batch(TestType{}, host, {acc.data(), next.data(), st.data()});

  verify::chain_batch<float> dev = host;
  dev.draft_offsets = upload(d_off, offsets);
  dev.tokens = upload(d_tok, tokens);
  dev.target.data = upload(d_target, target);
  dev.draft.data = upload(d_draft, draft);
  dev.params = upload(d_params, params);
  dev.request_ids = upload(d_ids, ids);
  dev.positions = upload(d_pos, pos);
  verify_kernel<<<1, B>>>(
      TestType{}, dev, verify::chain_batch_output{d_acc.ptr, d_next.ptr, d_st.ptr});
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  std::vector<std::int32_t> dacc(B);
  std::vector<token_id> dnext(B);
  std::vector<row_status> dst(B);
  REQUIRE(cudaMemcpy(dacc.data(), d_acc.ptr, B * sizeof(std::int32_t), cudaMemcpyDeviceToHost)
          == cudaSuccess);
  REQUIRE(cudaMemcpy(dnext.data(), d_next.ptr, B * sizeof(token_id), cudaMemcpyDeviceToHost)
          == cudaSuccess);
  REQUIRE(cudaMemcpy(dst.data(), d_st.ptr, B * sizeof(row_status), cudaMemcpyDeviceToHost)
          == cudaSuccess);
  for (index_t b = 0; b < B; ++b) {
    const auto i = static_cast<std::size_t>(b);
    CAPTURE(b);
    CHECK(dacc[i] == acc[i]);
    CHECK(dnext[i] == next[i]);
    CHECK(dst[i].bits == st[i].bits);
  }
}
