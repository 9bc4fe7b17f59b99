// SPDX-License-Identifier: Apache-2.0
// Consumer of the installed specdec package (see CMakeLists.txt next to this file): includes the
// umbrella header and verifies one small chain with rejection sampling through the host batch
// API, exiting non-zero unless the call reports success.
#include <specdec/specdec.hpp>
#include <specdec/version.hpp>

#include <cstdint>
#include <cstdio>

#if defined(SPECDEC_CONSUMER_CUDA)
#include <cuda_runtime_api.h>
#endif

int main() {
  std::printf("specdec %s (installed package)\n", SPECDEC_VERSION_STRING);

  // One request, V = 4, drafts x = [0, 1, 3]: draft rows (probabilities) and K + 1 target rows.
  namespace sd = specdec;
  const float draft[] = {.5f, .3f, .1f, .1f, .2f, .6f, .1f, .1f, .1f, .1f, .4f, .4f};
  const float target[] = {
      .7f, .1f, .1f, .1f, .1f, .3f, .5f, .1f, .4f, .3f, .2f, .1f, .1f, .1f, .1f, .7f};
  const sd::token_id tokens[] = {0, 1, 3};
  const sd::index_t offsets[] = {0, 3};
  const sd::index_t positions[] = {0};
  const std::uint64_t ids[] = {7};
  const sd::sampling::sampling_params params{};

  sd::verify::chain_batch<float> batch;
  batch.batch = 1;
  batch.draft_offsets = offsets;
  batch.tokens = tokens;
  batch.target = sd::make_matrix_view<const float>(target, 4, 4);
  batch.draft = sd::make_matrix_view<const float>(draft, 3, 4);
  batch.target_kind = sd::distribution_kind::probabilities;
  batch.draft_kind = sd::distribution_kind::probabilities;
  batch.params = &params;
  batch.request_ids = ids;
  batch.positions = positions;
  batch.seed = 42;

  std::int32_t accepted = -1;
  sd::token_id next = -1;
  sd::row_status flags{};
  const sd::status s = sd::cpu::verify_chain_batch(
      sd::verify::rejection_sampling{}, batch, {&accepted, &next, &flags});
  if (!s.ok() || !flags.ok() || accepted < 0 || accepted > 3 || next < 0 || next >= 4) {
    std::printf("verify_chain_batch failed: %s\n", s.message());
    return 1;
  }
  std::printf("rejection sampling: accepted %d of 3 drafts, next token %d\n", accepted, next);

#if defined(SPECDEC_CONSUMER_CUDA)
  int runtime = 0;
  if (cudaRuntimeGetVersion(&runtime) != cudaSuccess) {
    std::printf("cudaRuntimeGetVersion failed\n");
    return 1;
  }
  std::printf("linked against the CUDA runtime %d\n", runtime);
#endif
  return 0;
}
