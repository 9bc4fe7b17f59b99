// SPDX-License-Identifier: Apache-2.0
// Instruction-count probe of the host hot loops (tests/portability/vector_guard.sh runs it under
// valgrind's cachegrind): `vector_probe <op> <passes> [scalar]` runs one operation `passes` times
// on a fixed 151,936-entry fp32 logit row; the guard takes the difference of two runs, so set-up
// and process start cancel, and divides by the elements processed. The count is deterministic
// (no clock), so a regression to scalar code fails CI reliably where a timing would not.
// Ops: scan (prepare_row, T = 0.8), topp (top-p 0.9), topk (top-k 50), sample (inverse CDF),
// residual (the rejection residual's sum). `scalar` runs cpu::scalar_executor instead: the
// guard requires it to exceed the bound, so the check can fail. The executor runs at the build's
// own width (4 lanes at x86-64's baseline), whatever wider loops the CPU could run.

#include <specdec/cpu/serial_executor.hpp>
#include <specdec/sampling/distribution.hpp>
#include <specdec/verify/chain.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

using namespace specdec;

namespace {

volatile float sink_f;
volatile index_t sink_i;

std::vector<float> fixed_row(std::size_t n, std::uint32_t seed) {
  std::vector<float> v(n);
  std::uint32_t s = seed;
  for (auto& x : v) { // sum of four uniforms: roughly normal logits, no library RNG needed
    float acc = 0.0f;
    for (int k = 0; k < 4; ++k) {
      s = s * 1664525u + 1013904223u;
      acc += static_cast<float>(s >> 8) * (1.0f / 16777216.0f);
    }
    x = (acc - 2.0f) * 3.5f;
  }
  return v;
}

template <class E>
int run(const char* op, int passes) {
  const E ex{};
  const index_t n = 151936;
  const auto t = fixed_row(static_cast<std::size_t>(n), 1u);
  const auto d = fixed_row(static_cast<std::size_t>(n), 2u);
  const sampling::dist_row<float> trow{t.data(), n, distribution_kind::logits};
  const sampling::dist_row<float> drow{d.data(), n, distribution_kind::logits};
  sampling::sampling_params sp;
  sp.temperature = 0.8f;
  sampling::sampling_params tp = sp;
  tp.top_p = 0.9f;
  sampling::sampling_params tk = sp;
  tk.top_k = 50;
  const sampling::row_stats ts = sampling::prepare_row(ex, trow, sp);
  const sampling::row_stats ds = sampling::prepare_row(ex, drow, sp);
  for (int i = 0; i < passes; ++i) {
    if (std::strcmp(op, "scan") == 0) {
      sink_f = sampling::prepare_row(ex, trow, sp).mass;
    } else if (std::strcmp(op, "topp") == 0) {
      sink_f = sampling::prepare_row(ex, trow, tp).mass;
    } else if (std::strcmp(op, "topk") == 0) {
      sink_f = sampling::prepare_row(ex, trow, tk).mass;
    } else if (std::strcmp(op, "sample") == 0) {
      sink_i = sampling::sample_row(ex, trow, ts, 0.999f);
    } else if (std::strcmp(op, "residual") == 0) {
      using fw = sampling::detail::fast_weight<float, false>;
      const verify::detail::residual_fn<fw, fw> r{
          fw{t.data(), ts.max_raw, ts.inv_temp, ts.cut, ts.inv_mass},
          fw{d.data(), ds.max_raw, ds.inv_temp, ds.cut, ds.inv_mass},
          1.0f};
      sink_f = ex.sum(n, r);
    } else {
      std::fprintf(stderr, "vector_probe: unknown op %s\n", op);
      return 2;
    }
  }
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: vector_probe scan|topp|topk|sample|residual <passes> [scalar]\n");
    return 2;
  }
  const int passes = std::atoi(argv[2]);
#if SPECDEC_HOST_WIDE
  // The build's own vector width, not the CPU's widest: the counts then do not depend on the CPU
  // (the run-time dispatched 8- and 16-lane loops are checked bit for bit by the simd tests).
  specdec::detail::simd::limit_wide_lanes(specdec::detail::simd::width);
#endif
  if (argc > 3 && std::strcmp(argv[3], "scalar") == 0)
    return run<cpu::scalar_executor>(argv[1], passes);
  return run<cpu::serial_executor>(argv[1], passes);
}
