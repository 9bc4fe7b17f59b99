// SPDX-License-Identifier: Apache-2.0
// Device chain verification on 16-bit rows (half, bfloat16): the device reads the rows with
// 16-byte loads and converts them exactly as the host does, so accepted counts, tokens and
// statuses equal the host's up to proven ties (support/device_batch.hpp states the rule).
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <specdec/specdec.cuh>

#include <catch2/catch.hpp>

#include "support/device_batch.hpp"
#include "support/gpu.hpp"

using namespace specdec;
using namespace specdec_test;

namespace {

template <class T>
void check_dtype(const batch_shape& shape) {
  const host_batch<T> h = make_batch<T>(shape);
  device_batch<T> d(h);
  const specdec::cuda::chain_verifier<verify::rejection_sampling, T> v;
  const results dev = d.run(v);
  const comparison c = compare(verify::rejection_sampling{}, h, dev);
  INFO(dtype_traits<T>::name << " B " << shape.batch << " V " << shape.vocab << ": equal "
                             << c.equal << ", ties " << c.ties << ", hard " << c.hard);
  CHECK(c.hard == 0);
  CHECK(c.ties <= std::max<index_t>(1, shape.batch / 1000));
}

} // namespace

TEMPLATE_TEST_CASE("device rejection_sampling on 16-bit rows equals the host up to proven ties",
                   "[gpu][verify][dtype]",
                   specdec::half,
                   specdec::bfloat16) {
  check_dtype<TestType>({200, 32000, 6, false, 81});
  check_dtype<TestType>({129, 5001, 4, false, 82}); // unaligned rows: element loads
  check_dtype<TestType>({64, 4096, 4, true, 83});   // probability rows
}
