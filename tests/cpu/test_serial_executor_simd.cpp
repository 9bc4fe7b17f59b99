// SPDX-License-Identifier: Apache-2.0
// core/simd.hpp and the host executor's explicit-vector lane loops against their scalar twins
// (the code the device runs): every lane of exp_v, min, max, select and fmul equals the scalar
// rule bit for bit (special values, random bit patterns), and whole rows give bit-identical
// results for every primitive and for the rules built on them (prepare_row with every filter,
// sampling, residual sums, chain verification).

#include <specdec/core/math.hpp>
#include <specdec/core/simd.hpp>
#include <specdec/cpu/serial_executor.hpp>
#include <specdec/cpu/verify_chain.hpp>
#include <specdec/sampling/distribution.hpp>
#include <specdec/verify/rejection.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

using namespace specdec;

namespace {

/// The vector lane loops with the same truncation as the scalar reference (radix select).
const cpu::basic_serial_executor<true, false> vec{};
const cpu::scalar_executor ref{};

std::uint32_t bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

/// A row of logits (or probabilities when `probs`) with the awkward values sprinkled in:
/// NaN, +-inf, -0, subnormals, huge values, exact ties.
std::vector<float> awkward_row(std::size_t n, unsigned seed, bool probs, bool specials) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::uniform_real_distribution<float> ud(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v)
    x = probs ? ud(rng) * ud(rng)
              : std::round(nd(rng) * 4.0f) / 4.0f + (ud(rng) < 0.5f ? 0.0f : nd(rng));
  if (specials && n > 8) {
    const float sp[] = {std::numeric_limits<float>::quiet_NaN(),
                        std::numeric_limits<float>::infinity(),
                        -std::numeric_limits<float>::infinity(),
                        -0.0f,
                        0x1p-149f,
                        -1e30f,
                        probs ? -0.5f : 80.0f};
    for (const float x : sp)
      v[rng() % n] = x;
  }
  return v;
}

bool same_scan(const row_scan_result& a, const row_scan_result& b) {
  return bits(a.max) == bits(b.max) && a.argmax == b.argmax
         && bits(a.weight_sum) == bits(b.weight_sum) && a.invalid == b.invalid;
}

bool same_stats(const sampling::row_stats& a, const sampling::row_stats& b) {
  return a.mode == b.mode && a.log_of_probs == b.log_of_probs && bits(a.max_raw) == bits(b.max_raw)
         && bits(a.cut) == bits(b.cut) && bits(a.mass) == bits(b.mass)
         && bits(a.inv_mass) == bits(b.inv_mass) && a.argmax == b.argmax
         && a.status.bits == b.status.bits;
}

const std::size_t sizes[] = {1, 7, 15, 16, 17, 100, 511, 512, 513, 1000, 4099, 32000};

} // namespace

TEST_CASE("the host executor runs its lane loops as vectors", "[cpu][simd]") {
#if SPECDEC_HOST_SIMD
  STATIC_REQUIRE(cpu::serial_executor::vector);
  // The weight functors the verifiers pass offer the vector form the executor looks for.
  using fw = sampling::detail::fast_weight<float, false>;
  STATIC_REQUIRE(requires(const fw& f) { f.eval_v(index_t{0}); });
#else
  SUCCEED("no vector extensions on this host compiler: the scalar path is the only one");
#endif
  STATIC_REQUIRE(!cpu::scalar_executor::vector);
}

TEST_CASE("scan_row: vector and scalar lane loops agree bit for bit", "[cpu][simd]") {
  int checked = 0;
  // Every width of the run-time dispatched exp loops this CPU has (4, 8, 16 lanes).
  std::vector<int> widths{0};
#if SPECDEC_HOST_SIMD && SPECDEC_HOST_WIDE
  widths = {detail::simd::width};
  for (const int w : {8, 16}) {
    detail::simd::limit_wide_lanes(w);
    if (detail::simd::wide_lanes() == w && w > detail::simd::width)
      widths.push_back(w);
  }
  detail::simd::limit_wide_lanes(0);
#endif
  for (const int width : widths) {
    CAPTURE(width);
#if SPECDEC_HOST_SIMD && SPECDEC_HOST_WIDE
    detail::simd::limit_wide_lanes(width);
#endif
    for (const std::size_t n : sizes)
      for (unsigned seed = 0; seed < 6; ++seed)
        for (const bool specials : {false, true}) {
          const bool probs = seed % 2 == 1;
          const auto v = awkward_row(n, seed * 31u + static_cast<unsigned>(n), probs, specials);
          const auto raw = [&v](index_t i) { return v[static_cast<std::size_t>(i)]; };
          const auto in = static_cast<index_t>(n);
          for (const weight_mode mode :
               {weight_mode::exp_scaled, weight_mode::linear, weight_mode::one_hot})
            for (const float inv_t : {1.0f, 1.7f, 0.3f}) {
              const auto a = vec.scan_row(in, raw, mode, inv_t);
              const auto b = ref.scan_row(in, raw, mode, inv_t);
              CHECK(same_scan(a, b));
              ++checked;
            }
        }
  }
#if SPECDEC_HOST_SIMD && SPECDEC_HOST_WIDE
  detail::simd::limit_wide_lanes(0);
#endif
  CHECK(checked == 12 * 6 * 2 * 9 * static_cast<int>(widths.size()));
}

TEST_CASE("prepare_row, sample_row and entropy agree bit for bit under every filter",
          "[cpu][simd]") {
  struct cfg {
    float t, p, minp;
    int k;
  };
  const cfg cfgs[] = {{1.0f, 1.0f, 0.0f, 0},
                      {0.7f, 1.0f, 0.0f, 0},
                      {1.0f, 0.9f, 0.0f, 0},
                      {0.8f, 0.95f, 0.0f, 50},
                      {1.3f, 1.0f, 0.05f, 0},
                      {1.0f, 0.5f, 0.02f, 20},
                      {0.0f, 1.0f, 0.0f, 0}};
  std::mt19937 rng(7);
  int rows = 0;
  for (const std::size_t n : sizes)
    for (unsigned seed = 0; seed < 4; ++seed) {
      const bool probs = seed % 2 == 1;
      const auto v = awkward_row(n, seed + 1000u * static_cast<unsigned>(n), probs, seed == 3);
      const sampling::dist_row<float> row{v.data(),
                                          static_cast<index_t>(n),
                                          probs ? distribution_kind::probabilities
                                                : distribution_kind::logits};
      for (const cfg& c : cfgs) {
        sampling::sampling_params sp;
        sp.temperature = c.t;
        sp.top_p = c.p;
        sp.top_k = c.k;
        sp.min_p = c.minp;
        const auto a = sampling::prepare_row(vec, row, sp);
        const auto b = sampling::prepare_row(ref, row, sp);
        REQUIRE(same_stats(a, b));
        ++rows;
        if (!a.ok())
          continue;
        for (int d = 0; d < 4; ++d) {
          const float u = std::uniform_real_distribution<float>(0.0f, 1.0f)(rng);
          CHECK(sampling::sample_row(vec, row, a, u) == sampling::sample_row(ref, row, b, u));
        }
        CHECK(bits(sampling::entropy(vec, row, a)) == bits(sampling::entropy(ref, row, b)));
      }
    }
  CHECK(rows == 12 * 4 * 7);
}

TEST_CASE("chain verification decides identically with either executor", "[cpu][simd]") {
  // Rejection sampling reads both rows, sums the residual and samples from it: the vector
  // residual (eval_v of residual_fn) must give the same tokens and statuses.
  const index_t vocab = 1000;
  const int k = 4;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> target((k + 1) * vocab), draft(k * vocab);
  int differing = 0;
  int accepted_some = 0;
  for (int trial = 0; trial < 200; ++trial) {
    for (auto& x : target)
      x = nd(rng);
    for (std::size_t i = 0; i < draft.size(); ++i)
      draft[i] = target[i] + 0.8f * nd(rng);
    sampling::sampling_params sp;
    sp.temperature = trial % 3 == 0 ? 1.0f : 0.8f;
    sp.top_p = trial % 4 == 1 ? 0.9f : 1.0f;
    std::vector<token_id> tokens(k);
    for (int j = 0; j < k; ++j) {
      const sampling::dist_row<float> drow{
          draft.data() + j * vocab, vocab, distribution_kind::logits};
      tokens[static_cast<std::size_t>(j)] = static_cast<token_id>(
          sampling::draw_token(ref, drow, sp, std::uniform_real_distribution<float>(0, 1)(rng)));
    }
    const std::uint64_t seed = rng();
    const index_t offsets[2] = {0, k};
    const std::uint64_t id = static_cast<std::uint64_t>(trial);
    const index_t position = 5;
    verify::chain_batch<float, float> batch;
    batch.batch = 1;
    batch.draft_offsets = offsets;
    batch.tokens = tokens.data();
    batch.target = matrix_view<const float>{target.data(), k + 1, vocab, vocab};
    batch.draft = matrix_view<const float>{draft.data(), k, vocab, vocab};
    batch.params = &sp;
    batch.request_ids = &id;
    batch.positions = &position;
    batch.seed = seed;
    const auto a =
        verify::rejection_sampling{}.verify_chain(vec, batch.request(0), batch.uniforms(0));
    const auto b =
        verify::rejection_sampling{}.verify_chain(ref, batch.request(0), batch.uniforms(0));
    differing += (a.accepted != b.accepted || a.next != b.next || !(a.status == b.status));
    accepted_some += a.accepted > 0 && a.accepted < k;
  }
  CHECK(differing == 0);
  CHECK(accepted_some > 20); // partial acceptance: the residual path ran
}

TEST_CASE("residual sums agree bit for bit", "[cpu][simd]") {
  using fw = sampling::detail::fast_weight<float, false>;
  using res = verify::detail::residual_fn<fw, fw>;
#if SPECDEC_HOST_SIMD
  STATIC_REQUIRE(requires(const res& r) { r.eval_v(index_t{0}); });
#endif
  int checked = 0;
  for (const std::size_t n : sizes) {
    const auto p = awkward_row(n, 11u + static_cast<unsigned>(n), false, false);
    auto q = p;
    std::mt19937 rng(static_cast<unsigned>(n));
    for (auto& x : q)
      x += std::normal_distribution<float>(0.0f, 1.0f)(rng);
    const sampling::dist_row<float> prow{
        p.data(), static_cast<index_t>(n), distribution_kind::logits};
    const sampling::dist_row<float> qrow{
        q.data(), static_cast<index_t>(n), distribution_kind::logits};
    sampling::sampling_params sp;
    sp.temperature = 0.9f;
    const auto ps = sampling::prepare_row(ref, prow, sp);
    const auto qs = sampling::prepare_row(ref, qrow, sp);
    REQUIRE(ps.ok());
    REQUIRE(qs.ok());
    for (const float scale : {1.0f, 0.7f, 1.5f}) {
      const res r{fw{p.data(), ps.max_raw, ps.inv_temp, ps.cut, ps.inv_mass},
                  fw{q.data(), qs.max_raw, qs.inv_temp, qs.cut, qs.inv_mass},
                  scale};
      const auto in = static_cast<index_t>(n);
      const float a = vec.sum(in, r);
      const float b = ref.sum(in, r);
      CHECK(bits(a) == bits(b));
      for (const float u : {0.1f, 0.5f, 0.93f})
        CHECK(vec.sample_inverse_cdf(in, r, u * a) == ref.sample_inverse_cdf(in, r, u * b));
      ++checked;
    }
  }
  CHECK(checked == 36);
}

// ---- core/simd.hpp lane by lane ----------------------------------------------------------------

#if SPECDEC_HOST_SIMD
namespace {
namespace simd = specdec::detail::simd;

std::vector<float> test_inputs() {
  std::vector<float> xs = {0.0f,
                           -0.0f,
                           1.0f,
                           -1.0f,
                           88.0f,
                           88.5f,
                           -87.33654f,
                           -87.3366f,
                           -87.33653f,
                           -200.0f,
                           1e30f,
                           -1e30f,
                           std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::infinity(),
                           std::numeric_limits<float>::quiet_NaN(),
                           -std::numeric_limits<float>::quiet_NaN(),
                           1e-40f,
                           -1e-40f,
                           0.34657359f,
                           -0.34657359f};
  std::mt19937 rng(20261207);
  std::uniform_real_distribution<float> u(-100.0f, 100.0f);
  for (int i = 0; i < 400000; ++i)
    xs.push_back(u(rng));
  for (int i = 0; i < 400000; ++i)
    xs.push_back(detail::bits_float(static_cast<std::uint32_t>(rng())));
  while (xs.size() % simd::width != 0)
    xs.push_back(0.0f);
  return xs;
}
} // namespace

TEST_CASE("simd exp_v equals exp_f lane by lane", "[core][simd]") {
  const auto xs = test_inputs();
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < xs.size(); i += simd::width) {
    const simd::vf e = simd::exp_v(simd::load(xs.data() + i));
    for (int c = 0; c < simd::width; ++c)
      mismatches += detail::float_bits(e[c]) != detail::float_bits(detail::exp_f(xs[i + c]));
  }
  CHECK(mismatches == 0);
  CHECK(xs.size() > 800000);
}

#if SPECDEC_HOST_SIMD && SPECDEC_HOST_WIDE
namespace {
typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));
// The executor's exp blocks compiled for AVX2 and AVX-512F, as the executor compiles them; with
// m = 0 and inv_temp = 1 the stored terms are exp(x) itself.
__attribute__((target("avx2"))) void exp_blocks8(const float* x, int n, float* out) {
  float acc[16];
  for (int i = 0; i < n; i += 512)
    (void)simd::any_width::exp_sum_blocks<true, v8f>(
        x + i, std::min(512, n - i), 0.0f, 1.0f, acc, out + i);
}
__attribute__((target("avx512f"))) void exp_blocks16(const float* x, int n, float* out) {
  float acc[16];
  for (int i = 0; i < n; i += 512)
    (void)simd::any_width::exp_sum_blocks<true, v16f>(
        x + i, std::min(512, n - i), 0.0f, 1.0f, acc, out + i);
}
} // namespace

TEST_CASE("the 8- and 16-lane exp loops equal exp_f lane by lane", "[core][simd]") {
  auto xs = test_inputs();
  while (xs.size() % 512 != 0)
    xs.push_back(1.0f);
  const int n = static_cast<int>(xs.size());
  int widths = 0;
  for (const int w : {8, 16}) {
    __builtin_cpu_init();
    if (w == 8 ? !__builtin_cpu_supports("avx2") : !__builtin_cpu_supports("avx512f"))
      continue;
    ++widths;
    std::vector<float> out(xs.size(), -1.0f);
    if (w == 8)
      exp_blocks8(xs.data(), n, out.data());
    else
      exp_blocks16(xs.data(), n, out.data());
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < xs.size(); ++i)
      mismatches += detail::float_bits(out[i]) != detail::float_bits(detail::exp_f(xs[i]));
    CAPTURE(w);
    CHECK(mismatches == 0);
  }
  if (widths == 0)
    SUCCEED("neither AVX2 nor AVX-512F on this CPU: only the 4-lane loops run here");
}
#endif

TEST_CASE("simd min, max, select and fmul equal the scalar rules", "[core][simd]") {
  const auto xs = test_inputs();
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i + 2 * simd::width <= xs.size(); i += 2 * simd::width) {
    const simd::vf a = simd::load(xs.data() + i);
    const simd::vf b = simd::load(xs.data() + i + simd::width);
    const simd::vf mn = simd::min(a, b);
    const simd::vf mx = simd::max(a, b);
    const simd::vf pr = simd::fmul(a, b);
    const simd::vf sel = simd::select(a < b, a, b);
    for (int c = 0; c < simd::width; ++c) {
      const float x = xs[i + c];
      const float y = xs[i + simd::width + c];
      mismatches += detail::float_bits(mn[c]) != detail::float_bits(detail::min_f(x, y));
      mismatches += detail::float_bits(mx[c]) != detail::float_bits(detail::max_f(x, y));
      mismatches += detail::float_bits(pr[c]) != detail::float_bits(detail::fmul(x, y));
      mismatches += detail::float_bits(sel[c]) != detail::float_bits(x < y ? x : y);
    }
  }
  CHECK(mismatches == 0);
}
#else
TEST_CASE("simd: no vector extensions on this compiler", "[core][simd]") {
  SUCCEED("the executors use their scalar lane loops only");
}
#endif
