// SPDX-License-Identifier: Apache-2.0
// The hot kernels of the CUDA backend, instantiated through their public entry points the way
// tests/cuda and bench/cuda instantiate them, in one TU that is only compiled (never linked or
// run): scripts/ptxas_report.sh compiles it with `nvcc -arch=sm_90a -Xptxas -v` and the CTest
// test specdec.test.cuda.ptxas_budget (cmake/SpecdecPtxasBudget.cmake) checks every kernel's
// registers, stack frame and spills against stated limits. No device is needed.
//
// Not named test_*.cu, so tests/CMakeLists.txt does not build it as a GPU test binary.
#include <specdec/specdec.cuh>

#include <cstddef>

namespace {

namespace verify = specdec::verify;
namespace dev = specdec::cuda;
using specdec::bfloat16;

/// Calls run() on each entry point (never executed: this TU is compiled, not run), which
/// instantiates every kernel the entry point launches.
template <class V, class P>
void instantiate(const V& v, const P& p) {
  (void)v.run(p, nullptr, std::size_t{0}, cudaStream_t{});
}

} // namespace

/// Referenced from nowhere; its body is what instantiates the kernels.
void specdec_ptxas_hot_kernels() {
  // Chain verification: the split-vocabulary scan, row preparation and the rule, for the
  // sampling rule on fp32 rows and block verification on bfloat16 rows (bench_verify_chain).
  instantiate(dev::chain_verifier<verify::rejection_sampling, float>{},
              dev::chain_problem<float>{});
  instantiate(dev::chain_verifier<verify::block_verification, bfloat16>{},
              dev::chain_problem<bfloat16>{});
  instantiate(dev::chain_verifier<verify::greedy, float>{}, dev::chain_problem<float>{});
  // Tree verification (bench_verify_tree: bfloat16 rows; test_verify_tree: fp32 rows).
  instantiate(dev::tree_verifier<verify::rejection_sampling, bfloat16>{},
              dev::tree_problem<bfloat16>{});
  instantiate(dev::tree_verifier<verify::rejection_sampling, float>{}, dev::tree_problem<float>{});
  instantiate(dev::tree_mask_builder<>{}, dev::tree_mask_problem{});
  // DSpark: the Markov head block sampler (fp32 and bfloat16 heads) and the prefix scheduler.
  instantiate(dev::markov_head_sampler<float>{}, dev::markov_head_problem<float>{});
  instantiate(dev::markov_head_sampler<bfloat16>{}, dev::markov_head_problem<bfloat16>{});
  instantiate(dev::prefix_scheduler<>{}, dev::prefix_sched_problem{});
  // KV path compaction, contiguous and paged (bench_verify_tree: bfloat16 planes).
  instantiate(dev::kv_path_compactor<>{}, dev::kv_contiguous_problem<bfloat16>{});
  instantiate(dev::kv_path_compactor<>{}, dev::kv_paged_problem<bfloat16>{});
}
