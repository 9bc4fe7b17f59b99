// SPDX-License-Identifier: Apache-2.0
// The device path's decision logic, run on the host. The CUDA kernels differ from the host batch
// loop in four ways besides the CTA collectives: rules run with runtime_dispatch (one functor with
// runtime branches per row form), every row's stats are prepared before the rule runs and found
// through the `prepared` hook, the split-vocabulary path builds a row's first scan from partial
// scans of its slices, and rows are read 8 elements at a time (eval8 / load8_as_float). Each is
// checked here against cpu::serial_executor on the same inputs and seeds: bit-identical where the
// arithmetic is the same, and under the GPU tests' tie rule where only the summation order
// differs (support/host_batch.hpp).
#include <specdec/specdec.hpp>

#include <catch2/catch.hpp>

#include "support/host_batch.hpp"
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

using namespace specdec;
using namespace specdec_test;

namespace {

/// The serial executor with the device's runtime dispatch.
struct dispatch_executor : cpu::serial_executor {
  static constexpr bool runtime_dispatch = true;
};

/// The device's verify kernel on the host: runtime dispatch plus a table of prepared rows.
struct prepared_executor : cpu::serial_executor {
  static constexpr bool runtime_dispatch = true;
  const void* target = nullptr;
  std::size_t target_stride = 0;
  std::size_t target_rows = 0;
  const sampling::row_stats* target_stats = nullptr;
  const void* draft = nullptr;
  std::size_t draft_stride = 0;
  std::size_t draft_rows = 0;
  const sampling::row_stats* draft_stats = nullptr;
  mutable std::size_t hits = 0;

  const sampling::row_stats* prepared(const void* p) const noexcept {
    const auto* c = static_cast<const char*>(p);
    const auto* t = static_cast<const char*>(target);
    const auto* d = static_cast<const char*>(draft);
    if (c >= t && c < t + target_stride * target_rows && (c - t) % target_stride == 0) {
      ++hits;
      return target_stats + (c - t) / static_cast<std::ptrdiff_t>(target_stride);
    }
    if (d != nullptr && c >= d && c < d + draft_stride * draft_rows
        && (c - d) % draft_stride == 0) {
      ++hits;
      return draft_stats + (c - d) / static_cast<std::ptrdiff_t>(draft_stride);
    }
    return nullptr;
  }
};

/// Outcomes of running `policy` with executor `ex` on every request of the batch.
template <class Policy, class E, class T>
results run_with(const Policy& policy, const E& ex, const host_batch<T>& h) {
  results r;
  const auto view = h.view();
  for (index_t b = 0; b < h.batch; ++b) {
    const verify::chain_outcome o = policy.verify_chain(ex, view.request(b), view.uniforms(b));
    r.accepted.push_back(o.accepted);
    r.next.push_back(o.next);
    r.status.push_back(o.status);
  }
  return r;
}

/// The first scan of a row built as the split path does: slices of 8-aligned length scanned in
/// index order (scan_add), then combined in slice order.
template <class T>
row_scan_result
split_scan(const sampling::dist_row<T>& row, const sampling::sampling_params& params, int slices) {
  const sampling::row_stats st = sampling::detail::initial_stats(row.kind, params);
  const sampling::detail::dynamic_raw_reader<T> raw{
      row.data, sampling::detail::form_of(row.kind, st.log_of_probs)};
  const index_t per = ((row.vocab + slices - 1) / slices + 7) / 8 * 8;
  sampling::scan_partial acc = sampling::empty_partial();
  for (int s = 0; s < slices; ++s) {
    sampling::scan_partial p = sampling::empty_partial();
    for (index_t i = per * s; i < std::min<index_t>(per * (s + 1), row.vocab); ++i)
      sampling::scan_add(p, raw(i), i, st.mode, st.inv_temp);
    acc = s == 0 ? p
                 : sampling::combine_scan(acc, p, st.mode == weight_mode::exp_scaled, st.inv_temp);
  }
  return sampling::finish_scan(acc, st.mode);
}

/// Stats of every target and draft row, prepared as the device's prepare kernel does (the
/// owner's parameters, with verify::detail::checked's fallback), optionally from split scans.
template <class Policy, class T>
prepared_executor prepare_all(const host_batch<T>& h,
                              std::vector<sampling::row_stats>& ts,
                              std::vector<sampling::row_stats>& ds,
                              int slices) {
  const auto view = h.view();
  const cpu::serial_executor ex{};
  ts.clear();
  ds.clear();
  for (index_t b = 0; b < h.batch; ++b) {
    row_status ignored{};
    const verify::chain_request<T> req = verify::detail::checked(view.request(b), ignored);
    const auto prep = [&](const sampling::dist_row<T>& row) {
      if (slices <= 1)
        return sampling::detail::prepare_row_with(ex, row, req.params, nullptr);
      const row_scan_result scan = split_scan(row, req.params, slices);
      return sampling::detail::prepare_row_with(ex, row, req.params, &scan);
    };
    for (index_t j = 0; j <= req.num_drafts; ++j)
      ts.push_back(prep(req.target_row(j)));
    if (Policy::needs_draft_rows)
      for (index_t j = 0; j < req.num_drafts; ++j)
        ds.push_back(prep(req.draft_row(j)));
  }
  prepared_executor pe;
  pe.target = h.target.data();
  pe.target_stride = static_cast<std::size_t>(h.vocab) * sizeof(T);
  pe.target_rows = ts.size();
  pe.target_stats = ts.data();
  if (Policy::needs_draft_rows) {
    pe.draft = h.draft.data();
    pe.draft_stride = static_cast<std::size_t>(h.vocab) * sizeof(T);
    pe.draft_rows = ds.size();
    pe.draft_stats = ds.data();
  }
  return pe;
}

template <class Policy, class T>
void check_policy(const Policy& policy, const batch_shape& shape) {
  const host_batch<T> h = make_batch<T>(shape);
  const results ref = host_run(policy, h);

  // Runtime dispatch: the same arithmetic per element, so bit-identical outcomes.
  const results dyn = run_with(policy, dispatch_executor{}, h);
  CHECK(dyn.accepted == ref.accepted);
  CHECK(dyn.next == ref.next);
  CHECK(dyn.status == ref.status);

  // Rows prepared beforehand (one pass per row, as the prepare kernel): bit-identical.
  std::vector<sampling::row_stats> ts, ds;
  const prepared_executor pe = prepare_all<Policy>(h, ts, ds, 1);
  const results pre = run_with(policy, pe, h);
  CHECK(pe.hits > 0);
  CHECK(pre.accepted == ref.accepted);
  CHECK(pre.next == ref.next);
  CHECK(pre.status == ref.status);

  // Split first scans (the split-vocabulary path): equal up to proven ties.
  for (const int slices : {2, 7}) {
    const prepared_executor ps = prepare_all<Policy>(h, ts, ds, slices);
    const results sp = run_with(policy, ps, h);
    const comparison c = compare(policy, h, sp);
    INFO("slices " << slices << ": equal " << c.equal << ", ties " << c.ties << ", hard "
                   << c.hard);
    CHECK(c.hard == 0);
    CHECK(c.ties <= std::max<index_t>(1, shape.batch / 1000));
  }
}

// Sanitized builds (about 10x slower) verify a quarter of the requests.
#if defined(__SANITIZE_ADDRESS__)
constexpr index_t requests = 20;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr index_t requests = 20;
#else
constexpr index_t requests = 80;
#endif
#else
constexpr index_t requests = 80;
#endif

template <class Policy>
void check_all_shapes(const Policy& policy) {
  check_policy<Policy, float>(policy, {requests, 3001, 5, false, 91});
  check_policy<Policy, float>(policy, {requests / 2, 2048, 4, true, 92});
  check_policy<Policy, half>(policy, {requests / 2, 1500, 4, false, 93});
  check_policy<Policy, bfloat16>(policy, {requests / 2, 1024, 4, true, 94});
}

} // namespace

TEST_CASE("device logic on the host: greedy", "[verify][device_logic]") {
  check_all_shapes(verify::greedy{});
}

TEST_CASE("device logic on the host: rejection_sampling", "[verify][device_logic]") {
  check_all_shapes(verify::rejection_sampling{});
}

TEST_CASE("device logic on the host: one_hot_rejection", "[verify][device_logic]") {
  check_all_shapes(verify::one_hot_rejection{});
}

TEST_CASE("device logic on the host: typical_acceptance", "[verify][device_logic]") {
  check_all_shapes(verify::typical_acceptance{});
}

TEST_CASE("device logic on the host: block_verification", "[verify][device_logic]") {
  check_all_shapes(verify::block_verification{});
}

TEST_CASE("device logic on the host: one_hot_block_verification", "[verify][device_logic]") {
  check_all_shapes(verify::one_hot_block_verification{});
}

TEST_CASE("split scans: max, first argmax and invalid count exact, sum to rounding",
          "[verify][device_logic]") {
  std::mt19937 rng(4);
  std::normal_distribution<float> n(0.0f, 2.0f);
  std::vector<float> row(10007);
  for (auto& x : row)
    x = n(rng);
  row[5000] = 9.0f; // a repeated max: the first index must win
  row[9000] = 9.0f;
  row[777] = std::numeric_limits<float>::quiet_NaN();
  row[778] = std::numeric_limits<float>::infinity();
  row[779] = -std::numeric_limits<float>::infinity();
  const sampling::dist_row<float> r{
      row.data(), static_cast<index_t>(row.size()), distribution_kind::logits};
  for (const float temp : {1.0f, 0.6f}) {
    sampling::sampling_params p;
    p.temperature = temp;
    const row_scan_result full = cpu::serial_executor{}.scan_row(
        r.vocab,
        [&](index_t i) { return row[static_cast<std::size_t>(i)]; },
        weight_mode::exp_scaled,
        1.0f / temp);
    for (const int slices : {1, 2, 5, 32}) {
      const row_scan_result s = split_scan(r, p, slices);
      CHECK(s.max == full.max);
      CHECK(s.argmax == 5000);
      CHECK(s.argmax == full.argmax);
      CHECK(s.invalid == 2);
      CHECK(s.invalid == full.invalid);
      CHECK(std::abs(s.weight_sum - full.weight_sum) <= 1e-5f * full.weight_sum);
    }
  }
}

namespace {

template <class T>
void check_load8(const std::vector<std::uint16_t>& bits16) {
  std::vector<T> v(bits16.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if constexpr (sizeof(T) == 4) {
      const std::uint32_t u =
          (static_cast<std::uint32_t>(bits16[i]) << 16) | bits16[(i * 7) % bits16.size()];
      std::memcpy(&v[i], &u, 4);
    } else {
      v[i] = T{bits16[i]};
    }
  }
  for (index_t i = 0; i + 8 <= static_cast<index_t>(v.size()); ++i) { // aligned and not
    float got[8];
    load8_as_float(v.data(), i, got);
    for (int c = 0; c < 8; ++c) {
      const float want = load_as_float(v.data(), i + c);
      CHECK(std::memcmp(&got[c], &want, 4) == 0);
    }
  }
}

} // namespace

TEST_CASE("load8_as_float equals eight element loads, bit for bit", "[verify][device_logic]") {
  std::vector<std::uint16_t> bits = {0x0000,
                                     0x8000,
                                     0x0001,
                                     0x03ff,
                                     0x7c00,
                                     0xfc00,
                                     0x7e00,
                                     0x3c00,
                                     0xbc00,
                                     0x7bff,
                                     0x4248,
                                     0x0400,
                                     0x7f80,
                                     0xff80,
                                     0x7fc0,
                                     0x3f80,
                                     0x0080,
                                     0x8001};
  std::mt19937 rng(9);
  while (bits.size() < 200)
    bits.push_back(static_cast<std::uint16_t>(rng()));
  check_load8<float>(bits);
  check_load8<half>(bits);
  check_load8<bfloat16>(bits);
}

TEST_CASE("eval8 of the row functors equals eight calls, bit for bit", "[verify][device_logic]") {
  std::mt19937 rng(10);
  std::normal_distribution<float> n(0.0f, 2.0f);
  std::vector<float> logits(256), probs(256);
  for (std::size_t i = 0; i < logits.size(); ++i) {
    logits[i] = n(rng);
    probs[i] = std::abs(n(rng)) * 0.01f;
  }
  probs[3] = -0.5f; // invalid: reads as NaN
  const auto same8 = [](const auto& f, index_t i) {
    float got[8];
    f.eval8(i, got);
    for (int c = 0; c < 8; ++c) {
      const float want = f(i + c);
      CHECK(std::memcmp(&got[c], &want, 4) == 0);
    }
  };
  using sampling::detail::raw_form;
  for (index_t i = 0; i + 8 <= 256; i += 3) {
    same8(sampling::detail::raw_reader<float, raw_form::logits>{logits.data()}, i);
    same8(sampling::detail::raw_reader<float, raw_form::log_of_probabilities>{probs.data()}, i);
    same8(sampling::detail::dynamic_raw_reader<float>{probs.data(), raw_form::probabilities}, i);
    same8(sampling::detail::dynamic_raw_reader<float>{probs.data(), raw_form::log_of_probabilities},
          i);
    same8(sampling::detail::fast_weight<float, false>{logits.data(), 2.0f, 1.3f, -1.0f, 0.25f}, i);
    same8(sampling::detail::fast_weight<float, true>{probs.data(), 0.0f, 1.0f, 0.001f, 3.0f}, i);
    sampling::row_stats st;
    st.mode = weight_mode::exp_scaled;
    st.log_of_probs = true;
    st.max_raw = -1.0f;
    st.inv_temp = 0.8f;
    st.cut = -6.0f;
    same8(
        sampling::detail::generic_weight<float>{
            {probs.data(), 256, distribution_kind::probabilities}, st, 0.5f},
        i);
    st.mode = weight_mode::one_hot;
    st.argmax = 17;
    same8(
        sampling::detail::generic_weight<float>{
            {probs.data(), 256, distribution_kind::probabilities}, st, 1.0f},
        i);
  }
}

TEST_CASE("the tie rule rejects outcomes that are not ties", "[verify][device_logic]") {
  const host_batch<float> h = make_batch<float>({100, 2000, 5, false, 95});
  const verify::rejection_sampling policy{};
  results r = host_run(policy, h);
  CHECK(compare(policy, h, r).hard == 0);
  // A wrong token in one request, a wrong accepted count in another.
  r.next[10] = (r.next[10] + 1) % static_cast<token_id>(h.vocab);
  r.accepted[20] = r.accepted[20] > 0 ? r.accepted[20] - 1 : 1;
  const comparison c = compare(policy, h, r);
  CHECK(c.hard == 2);
  CHECK(c.ties == 0);
}
