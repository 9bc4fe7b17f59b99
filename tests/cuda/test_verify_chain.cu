// SPDX-License-Identifier: Apache-2.0
// Device chain verification (specdec::cuda::chain_verifier, fp32 rows) against the host executor on
// the same inputs and seeds, for every chain rule: equal accepted counts, tokens and statuses,
// except proven ties (support/device_batch.hpp states the rule); the split-vocabulary path;
// determinism and batch-slot independence; bad rows isolated; seed and position offset through
// device pointers; offsets from lengths; goodness of fit of the device sampler with a biased
// variant.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <specdec/specdec.cuh>

#include <catch2/catch.hpp>

#include "support/device_batch.hpp"
#include "support/gpu.hpp"
#include "support/stats.hpp"
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

using namespace specdec;
using namespace specdec_test;

namespace {

template <class Policy>
void check_against_host(const Policy& policy, const batch_shape& shape, int sm_count = 0) {
  const host_batch<float> h = make_batch<float>(shape);
  device_batch<float> d(h);
  const specdec::cuda::chain_verifier<Policy, float> v(policy, sm_count);
  const results dev = d.run(v);
  const comparison c = compare(policy, h, dev);
  INFO("B " << shape.batch << " V " << shape.vocab << " slices " << v.slices(d.problem)
            << ": equal " << c.equal << ", ties " << c.ties << ", hard " << c.hard);
  CHECK(c.hard == 0);
  CHECK(c.ties <= std::max<index_t>(1, shape.batch / 1000));
}

template <class Policy>
void check_rule(const Policy& policy) {
  // Odd V: rows are not 16-byte aligned (scalar loads) and tiles end mid-vector.
  check_against_host(policy, {257, 5003, 6, false, 11});
  // Aligned rows, vector loads, several tiles per row.
  check_against_host(policy, {96, 32000, 8, false, 12});
  // Probability rows.
  check_against_host(policy, {96, 4096, 4, true, 13});
}

} // namespace

TEST_CASE("device greedy equals the host", "[gpu][verify]") {
  check_rule(verify::greedy{});
}

TEST_CASE("device rejection_sampling equals the host up to proven ties", "[gpu][verify]") {
  check_rule(verify::rejection_sampling{});
}

TEST_CASE("device one_hot_rejection equals the host up to proven ties", "[gpu][verify]") {
  check_rule(verify::one_hot_rejection{});
}

TEST_CASE("device typical_acceptance equals the host up to proven ties", "[gpu][verify]") {
  check_rule(verify::typical_acceptance{});
}

TEST_CASE("device block_verification equals the host up to proven ties", "[gpu][verify]") {
  check_rule(verify::block_verification{});
}

TEST_CASE("device one_hot_block_verification equals the host up to proven ties", "[gpu][verify]") {
  check_rule(verify::one_hot_block_verification{});
}

TEST_CASE("split-vocabulary path: several CTAs per row, same results", "[gpu][verify]") {
  const batch_shape shape{3, 131072, 2, false, 21};
  const host_batch<float> h = make_batch<float>(shape);
  device_batch<float> d(h);
  const specdec::cuda::chain_verifier<verify::rejection_sampling, float> split({}, 4096);
  REQUIRE(split.slices(d.problem) > 1);
  const results a = d.run(split);
  const comparison c = compare(verify::rejection_sampling{}, h, a);
  CHECK(c.hard == 0);
  CHECK(c.ties <= 1);
  check_against_host(verify::greedy{}, shape, 4096);
  check_against_host(verify::one_hot_rejection{}, {5, 262144, 3, false, 22}, 4096);
}

TEST_CASE("device results are deterministic and do not depend on the batch slot", "[gpu][verify]") {
  const host_batch<float> h = make_batch<float>({64, 8192, 5, false, 31});
  device_batch<float> d(h);
  const specdec::cuda::chain_verifier<verify::rejection_sampling, float> v;
  const results a = d.run(v);
  const results b = d.run(v);
  CHECK(a.accepted == b.accepted);
  CHECK(a.next == b.next);
  CHECK(a.status == b.status);

  // The same requests in reverse order.
  host_batch<float> r = h;
  r.offsets.assign(1, 0);
  r.tokens.clear();
  r.target.clear();
  r.draft.clear();
  r.params.clear();
  r.ids.clear();
  r.positions.clear();
  const auto v_ = static_cast<std::size_t>(h.vocab);
  for (index_t b0 = h.batch - 1; b0 >= 0; --b0) {
    const index_t d0 = h.offsets[b0];
    const index_t d1 = h.offsets[b0 + 1];
    r.offsets.push_back(r.offsets.back() + (d1 - d0));
    r.tokens.insert(r.tokens.end(), h.tokens.begin() + d0, h.tokens.begin() + d1);
    r.target.insert(r.target.end(),
                    h.target.begin() + static_cast<std::ptrdiff_t>((d0 + b0) * h.vocab),
                    h.target.begin() + static_cast<std::ptrdiff_t>((d1 + b0 + 1) * h.vocab));
    r.draft.insert(r.draft.end(),
                   h.draft.begin() + static_cast<std::ptrdiff_t>(d0 * h.vocab),
                   h.draft.begin() + static_cast<std::ptrdiff_t>(d1 * h.vocab));
    r.params.push_back(h.params[static_cast<std::size_t>(b0)]);
    r.ids.push_back(h.ids[static_cast<std::size_t>(b0)]);
    r.positions.push_back(h.positions[static_cast<std::size_t>(b0)]);
  }
  (void)v_;
  device_batch<float> dr(r);
  const results c = dr.run(v);
  for (index_t b0 = 0; b0 < h.batch; ++b0) {
    const auto i = static_cast<std::size_t>(b0);
    const auto j = static_cast<std::size_t>(h.batch - 1 - b0);
    CHECK(a.accepted[i] == c.accepted[j]);
    CHECK(a.next[i] == c.next[j]);
    CHECK(a.status[i] == c.status[j]);
  }
}

TEST_CASE("a bad request leaves the others' results unchanged", "[gpu][verify][bad_input]") {
  const host_batch<float> clean = make_batch<float>({48, 4096, 4, false, 41});
  host_batch<float> bad = clean;
  // Request 3: NaN in its first target row. Request 5: a token out of range (if it drafted).
  // Request 7: invalid parameters. Request 9: q(x) = 0 (-inf draft logit at the drafted token).
  bad.target[static_cast<std::size_t>((clean.offsets[3] + 3) * clean.vocab + 17)] = std::nanf("");
  if (clean.offsets[6] > clean.offsets[5])
    bad.tokens[static_cast<std::size_t>(clean.offsets[5])] = static_cast<token_id>(clean.vocab + 5);
  bad.params[7].top_p = 2.0f;
  if (clean.offsets[10] > clean.offsets[9]) {
    const auto j = static_cast<std::size_t>(clean.offsets[9]);
    bad.draft[j * static_cast<std::size_t>(clean.vocab)
              + static_cast<std::size_t>(clean.tokens[j])] =
        -std::numeric_limits<float>::infinity();
  }
  const specdec::cuda::chain_verifier<verify::rejection_sampling, float> v;
  device_batch<float> dc(clean);
  device_batch<float> db(bad);
  const results a = dc.run(v);
  const results b = db.run(v);
  for (index_t r = 0; r < clean.batch; ++r) {
    const auto i = static_cast<std::size_t>(r);
    CHECK(b.next[i] >= 0);
    CHECK(b.next[i] < clean.vocab);
    if (r == 3 || r == 5 || r == 7 || r == 9)
      continue;
    CHECK(a.accepted[i] == b.accepted[i]);
    CHECK(a.next[i] == b.next[i]);
    CHECK(a.status[i] == b.status[i]);
  }
  CHECK(b.status[3].has(row_status::target_invalid));
  if (clean.offsets[6] > clean.offsets[5])
    CHECK(b.status[5].has(row_status::token_out_of_range));
  CHECK(b.status[7].has(row_status::invalid_params));
  // The host flags the same things.
  const comparison c = compare(verify::rejection_sampling{}, bad, b);
  CHECK(c.hard == 0);
}

TEST_CASE("malformed offsets give bad_shape for that request only", "[gpu][verify][bad_input]") {
  host_batch<float> h = make_batch<float>({3, 1024, 1, false, 51});
  h.offsets = {0, 2, 1, 3};
  h.tokens.assign(3, 5);
  h.target.assign(static_cast<std::size_t>(6 * h.vocab), 0.5f);
  h.draft.assign(static_cast<std::size_t>(3 * h.vocab), 0.5f);
  device_batch<float> d(h);
  const results r = d.run(specdec::cuda::chain_verifier<verify::rejection_sampling, float>{});
  CHECK(r.status[1].has(row_status::bad_shape));
  CHECK(r.accepted[1] == 0);
  CHECK_FALSE(r.status[0].has(row_status::bad_shape));
  CHECK_FALSE(r.status[2].has(row_status::bad_shape));
}

TEST_CASE("host-side checks of run", "[gpu][verify][bad_input]") {
  const host_batch<float> h = make_batch<float>({4, 1024, 4, false, 52});
  REQUIRE(h.total() > 0);
  device_batch<float> d(h);
  const specdec::cuda::chain_verifier<verify::rejection_sampling, float> v;
  device_buffer<unsigned char> ws(v.workspace_bytes(d.problem));
  CHECK(v.run(d.problem, nullptr, 0, nullptr).code == errc::invalid_argument);
  auto p = d.problem;
  p.batch.draft.cols = 1000;
  CHECK(v.run(p, ws.ptr, ws.n, nullptr).code == errc::vocab_mismatch);
  p = d.problem;
  p.batch.target.rows -= 1;
  CHECK(v.run(p, ws.ptr, ws.n, nullptr).code == errc::shape_mismatch);
}

TEST_CASE("seed and position offset through device pointers", "[gpu][verify]") {
  host_batch<float> h = make_batch<float>({32, 2048, 4, false, 61});
  device_batch<float> d(h);
  const specdec::cuda::chain_verifier<verify::rejection_sampling, float> v;
  const std::uint64_t seed = 987654321u;
  const index_t offset = 37;
  device_buffer<std::uint64_t> dseed(std::vector<std::uint64_t>{seed});
  device_buffer<index_t> doff(std::vector<index_t>{offset});
  d.problem.batch.seed = 1; // ignored: the pointer wins
  d.problem.seed_ptr = dseed.ptr;
  d.problem.position_offset_ptr = doff.ptr;
  d.problem.position_offset = 3;
  const results r = d.run(v);
  h.seed = seed;
  for (auto& p : h.positions)
    p += offset + 3;
  const comparison c = compare(verify::rejection_sampling{}, h, r);
  CHECK(c.hard == 0);
  CHECK(c.ties <= 1);
}

TEST_CASE("offsets_from_lengths builds the ragged offsets", "[gpu][verify]") {
  std::vector<std::int32_t> lengths(1000);
  std::mt19937 rng(5);
  for (auto& l : lengths)
    l = static_cast<std::int32_t>(rng() % 17);
  device_buffer<std::int32_t> dl(lengths);
  device_buffer<index_t> doff(lengths.size() + 1);
  std::size_t temp_bytes = 0;
  REQUIRE(specdec::cuda::offsets_from_lengths<std::int32_t>(
              nullptr, temp_bytes, dl.ptr, doff.ptr, static_cast<index_t>(lengths.size()), nullptr)
              .ok());
  device_buffer<unsigned char> temp(temp_bytes);
  REQUIRE(specdec::cuda::offsets_from_lengths<std::int32_t>(
              temp.ptr, temp_bytes, dl.ptr, doff.ptr, static_cast<index_t>(lengths.size()), nullptr)
              .ok());
  const std::vector<index_t> got = doff.download();
  index_t run = 0;
  CHECK(got[0] == 0);
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    run += lengths[i];
    CHECK(got[i + 1] == run);
  }
}

namespace {

/// Emitted first tokens of `draws` device verifications of one K = 1 request (same rows, a new
/// request id each), drafts drawn from `draft_law` on the host while the rows claim q.
std::vector<std::uint64_t> first_tokens(const std::vector<float>& target0,
                                        const std::vector<float>& target1,
                                        const std::vector<float>& draft0,
                                        const std::vector<double>& draft_law,
                                        const sampling::sampling_params& params,
                                        std::uint64_t draws) {
  const auto v = static_cast<index_t>(target0.size());
  const index_t batch = 1 << 17;
  host_batch<float> h;
  h.batch = batch;
  h.vocab = v;
  h.offsets.resize(static_cast<std::size_t>(batch + 1));
  std::iota(h.offsets.begin(), h.offsets.end(), index_t{0});
  for (index_t b = 0; b < batch; ++b) {
    h.target.insert(h.target.end(), target0.begin(), target0.end());
    h.target.insert(h.target.end(), target1.begin(), target1.end());
    h.draft.insert(h.draft.end(), draft0.begin(), draft0.end());
  }
  h.params.assign(static_cast<std::size_t>(batch), params);
  h.positions.assign(static_cast<std::size_t>(batch), 100);
  h.tokens.assign(static_cast<std::size_t>(batch), 0);
  h.ids.assign(static_cast<std::size_t>(batch), 0);
  device_batch<float> d(h);
  const specdec::cuda::chain_verifier<verify::rejection_sampling, float> ver;
  std::mt19937_64 rng(77);
  std::discrete_distribution<int> q(draft_law.begin(), draft_law.end());
  std::vector<std::uint64_t> counts(static_cast<std::size_t>(v), 0);
  for (std::uint64_t done = 0, round = 0; done < draws;
       done += static_cast<std::uint64_t>(batch), ++round) {
    for (index_t b = 0; b < batch; ++b) {
      h.tokens[static_cast<std::size_t>(b)] = q(rng);
      h.ids[static_cast<std::size_t>(b)] =
          round * static_cast<std::uint64_t>(batch) + static_cast<std::uint64_t>(b);
    }
    REQUIRE(cudaMemcpy(d.tokens.ptr,
                       h.tokens.data(),
                       h.tokens.size() * sizeof(token_id),
                       cudaMemcpyHostToDevice)
            == cudaSuccess);
    REQUIRE(
        cudaMemcpy(
            d.ids.ptr, h.ids.data(), h.ids.size() * sizeof(std::uint64_t), cudaMemcpyHostToDevice)
        == cudaSuccess);
    const results r = d.run(ver);
    for (index_t b = 0; b < batch; ++b) {
      const auto i = static_cast<std::size_t>(b);
      const token_id t = r.accepted[i] >= 1 ? h.tokens[i] : r.next[i];
      ++counts[static_cast<std::size_t>(t)];
    }
  }
  return counts;
}

} // namespace

TEST_CASE("device rejection_sampling: the first token follows the processed target (1e6 draws)",
          "[gpu][verify][gof]") {
  constexpr index_t v = 96;
  std::mt19937_64 rng(3);
  std::normal_distribution<float> n(0.0f, 1.5f);
  std::vector<float> t0(v), t1(v), q0(v);
  for (index_t i = 0; i < v; ++i) {
    t0[static_cast<std::size_t>(i)] = n(rng);
    t1[static_cast<std::size_t>(i)] = n(rng);
    q0[static_cast<std::size_t>(i)] = t0[static_cast<std::size_t>(i)] + 0.8f * n(rng);
  }
  sampling::sampling_params params;
  params.temperature = 0.9f;
  params.top_p = 0.95f;
  const std::vector<double> td(t0.begin(), t0.end());
  const std::vector<double> qd(q0.begin(), q0.end());
  const reference_row p = reference_processed(td, false, reference_params(params));
  const reference_row q = reference_processed(qd, false, reference_params(params));
  constexpr std::uint64_t draws = std::uint64_t{1} << 20;
  constexpr double alpha = 1e-6;

  const std::vector<std::uint64_t> good = first_tokens(t0, t1, q0, q.p, params, draws);
  const chi_square_result fit = chi_square(good, expected_counts(p.p, draws));
  INFO("chi2 " << fit.statistic << " dof " << fit.degrees_of_freedom << " bound "
               << chi_square_upper_quantile(fit.degrees_of_freedom, alpha));
  CHECK(fits(fit, alpha));

  // Biased variant: drafts drawn from the target law itself while the rows claim q. The output
  // then over-weights tokens where p > q, so the same test must reject it.
  const std::vector<std::uint64_t> biased = first_tokens(t0, t1, q0, p.p, params, draws);
  const chi_square_result bad = chi_square(biased, expected_counts(p.p, draws));
  INFO("biased chi2 " << bad.statistic);
  CHECK_FALSE(fits(bad, alpha));
}
