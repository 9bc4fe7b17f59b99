// SPDX-License-Identifier: Apache-2.0
#pragma once
// CUDA plumbing shared by the device benches (bench/cuda): owners of device memory, streams and
// events, error reporting into benchmark::State, the copy-bandwidth baseline every device
// figure is a ratio to, the L2 overwrite between timed launches and the timed loops.

#include <specdec/specdec.cuh>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cuda_runtime.h>
#include <string>
#include <vector>

namespace specdec_bench {

constexpr int harness_threads = 256;                     ///< threads per CTA of the harness
constexpr std::size_t copy_bytes = std::size_t{1} << 30; ///< bytes read by the copy baseline

// ---------------------------------------------------------------------------------------------
// Owners, error reporting.

/// True when a CUDA device is visible (queried once).
inline bool has_device() {
  static const bool has = specdec::cuda::device_count() > 0;
  return has;
}

/// Owns one cudaMalloc allocation.
struct device_buffer {
  void* ptr = nullptr;

  device_buffer() = default;
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer() {
    if (ptr != nullptr)
      (void)cudaFree(ptr);
  }
  cudaError_t allocate(std::size_t bytes) {
    if (ptr != nullptr)
      (void)cudaFree(ptr);
    ptr = nullptr;
    return cudaMalloc(&ptr, bytes > 0 ? bytes : 1);
  }
  template <class U>
  U* as() const {
    return static_cast<U*>(ptr);
  }
};

/// Owns a non-blocking stream and the two events timing it.
struct timed_stream {
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;

  timed_stream() = default;
  timed_stream(const timed_stream&) = delete;
  timed_stream& operator=(const timed_stream&) = delete;
  ~timed_stream() {
    if (stop != nullptr)
      (void)cudaEventDestroy(stop);
    if (start != nullptr)
      (void)cudaEventDestroy(start);
    if (stream != nullptr)
      (void)cudaStreamDestroy(stream);
  }
  cudaError_t create() {
    cudaError_t e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    if (e == cudaSuccess)
      e = cudaEventCreate(&start);
    if (e == cudaSuccess)
      e = cudaEventCreate(&stop);
    return e;
  }
  /// Waits for `stop` and stores the seconds between the two events.
  cudaError_t elapsed(double& seconds) const {
    cudaError_t e = cudaEventSynchronize(stop);
    float ms = 0.0f;
    if (e == cudaSuccess)
      e = cudaEventElapsedTime(&ms, start, stop);
    seconds = 1e-3 * static_cast<double>(ms);
    return e;
  }
};

inline std::string cuda_message(const char* what, cudaError_t e) {
  return std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}

/// Stops the benchmark with the error of a failed CUDA call; true when `e` is cudaSuccess.
inline bool check(benchmark::State& state, cudaError_t e, const char* what) {
  if (e == cudaSuccess)
    return true;
  (void)cudaGetLastError(); // clear the error so that later benchmarks start clean
  state.SkipWithError(cuda_message(what, e).c_str());
  return false;
}

/// Stops the benchmark with the error of a failed specdec call; true when `s` is ok.
inline bool check(benchmark::State& state, const specdec::status& s, const char* what) {
  if (s.ok())
    return true;
  std::string msg = std::string(what) + ": " + s.message();
  if (s.code == specdec::errc::cuda_error)
    msg += std::string(" (") + cudaGetErrorName(static_cast<cudaError_t>(s.cuda_error)) + ")";
  state.SkipWithError(msg.c_str());
  return false;
}

/// Allocates `buf` for `values` and copies them to the device.
template <class U>
bool upload(benchmark::State& state, device_buffer& buf, const std::vector<U>& values) {
  const std::size_t bytes = values.size() * sizeof(U);
  return check(state, buf.allocate(bytes), "cudaMalloc")
         && check(state,
                  cudaMemcpy(buf.ptr, values.data(), bytes, cudaMemcpyHostToDevice),
                  "cudaMemcpy (host to device)");
}

/// Copies `values.size()` entries of `buf` back to the host.
template <class U>
bool download(benchmark::State& state, std::vector<U>& values, const device_buffer& buf) {
  return check(
      state,
      cudaMemcpy(values.data(), buf.ptr, values.size() * sizeof(U), cudaMemcpyDeviceToHost),
      "cudaMemcpy (device to host)");
}

/// An attribute of the current device (0 when the query fails).
inline int device_attribute(cudaDeviceAttr attr) {
  int dev = 0;
  int value = 0;
  if (cudaGetDevice(&dev) != cudaSuccess
      || cudaDeviceGetAttribute(&value, attr, dev) != cudaSuccess)
    (void)cudaGetLastError();
  return value;
}

// ---------------------------------------------------------------------------------------------
// Kernels of the harness (none of them is timed as part of a library call).

/// Copies n 16-byte words, four per thread per step (loads first, so four are in flight).
template <int Threads = harness_threads>
__global__ void __launch_bounds__(Threads)
    copy16_kernel(const uint4* __restrict__ src, uint4* __restrict__ dst, std::size_t n) {
  constexpr std::size_t unroll = 4;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + (unroll - 1) * stride < n; i += unroll * stride) {
    uint4 v[unroll];
#pragma unroll
    for (std::size_t u = 0; u < unroll; ++u)
      v[u] = src[i + u * stride];
#pragma unroll
    for (std::size_t u = 0; u < unroll; ++u)
      dst[i + u * stride] = v[u];
  }
  for (; i < n; i += stride)
    dst[i] = src[i];
}

/// Row r of `dst` = row src_row[r] of `pool`; rows are `words` 16-byte words. grid = rows.
template <int Threads = harness_threads>
__global__ void __launch_bounds__(Threads) gather_rows_kernel(uint4* __restrict__ dst,
                                                              const uint4* __restrict__ pool,
                                                              const int* __restrict__ src_row,
                                                              specdec::index_t words) {
  using specdec::index_t;
  const auto r = static_cast<index_t>(blockIdx.x);
  const uint4* s = pool + static_cast<index_t>(src_row[r]) * words;
  uint4* d = dst + r * words;
  for (auto i = static_cast<index_t>(threadIdx.x); i < words; i += Threads)
    d[i] = s[i];
}

/// Gathers `n_rows` rows of `row_bytes` bytes (a multiple of 16) from `pool` into `dst` on
/// `stream` (row r from pool row src_row[r]) and waits for it.
inline bool gather_rows(benchmark::State& state,
                        void* dst,
                        const void* pool,
                        const int* src_row,
                        specdec::index_t n_rows,
                        std::size_t row_bytes,
                        cudaStream_t stream) {
  gather_rows_kernel<><<<static_cast<unsigned>(n_rows), harness_threads, 0, stream>>>(
      static_cast<uint4*>(dst),
      static_cast<const uint4*>(pool),
      src_row,
      static_cast<specdec::index_t>(row_bytes / sizeof(uint4)));
  return check(state, cudaGetLastError(), "gather_rows_kernel")
         && check(state, cudaStreamSynchronize(stream), "gather_rows_kernel");
}

// ---------------------------------------------------------------------------------------------
// Copy-bandwidth baseline.

/// Two 1 GiB buffers and the launch shape of the copy kernel.
struct copy_setup {
  device_buffer src, dst;
  timed_stream ts;
  unsigned blocks = 1;
  std::size_t words = copy_bytes / sizeof(uint4);

  cudaError_t create() {
    cudaError_t e = ts.create();
    if (e == cudaSuccess)
      e = src.allocate(copy_bytes);
    if (e == cudaSuccess)
      e = dst.allocate(copy_bytes);
    if (e == cudaSuccess)
      e = cudaMemset(src.ptr, 1, copy_bytes);
    const int sms = device_attribute(cudaDevAttrMultiProcessorCount);
    blocks = static_cast<unsigned>(std::max(1, sms) * (2048 / harness_threads));
    return e;
  }
  /// One timed copy of the whole buffer.
  cudaError_t run(double& seconds) {
    cudaError_t e = cudaEventRecord(ts.start, ts.stream);
    if (e != cudaSuccess)
      return e;
    copy16_kernel<>
        <<<blocks, harness_threads, 0, ts.stream>>>(src.as<const uint4>(), dst.as<uint4>(), words);
    e = cudaGetLastError();
    if (e == cudaSuccess)
      e = cudaEventRecord(ts.stop, ts.stream);
    if (e == cudaSuccess)
      e = ts.elapsed(seconds);
    return e;
  }
};

/// The baseline: bytes read per second by the copy kernel, or the error that prevented it.
struct copy_baseline {
  double read_bytes_per_second = 0.0;
  std::string error;
};

/// Best of five timed copies (after a warm-up).
inline copy_baseline measure_copy_baseline() {
  copy_baseline b;
  copy_setup c;
  cudaError_t e = c.create();
  double best = 0.0;
  for (int pass = 0; pass < 6 && e == cudaSuccess; ++pass) { // pass 0 warms up
    double seconds = 0.0;
    e = c.run(seconds);
    if (e == cudaSuccess && pass > 0 && seconds > 0.0)
      best = std::max(best, static_cast<double>(copy_bytes) / seconds);
  }
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    b.error = cuda_message("copy baseline", e);
  } else if (!(best > 0.0)) {
    b.error = "copy baseline: no valid timing";
  }
  b.read_bytes_per_second = best;
  return b;
}

/// Measured once, on first use (the buffers are freed afterwards).
inline const copy_baseline& copy_bandwidth() {
  static const copy_baseline b = measure_copy_baseline();
  return b;
}

/// Common start of every device benchmark: a device and a baseline, else the state is stopped
/// and the result is null.
inline const copy_baseline* start(benchmark::State& state) {
  if (!has_device()) {
    state.SkipWithError("no CUDA device");
    return nullptr;
  }
  const copy_baseline& base = copy_bandwidth();
  if (!base.error.empty()) {
    state.SkipWithError(base.error.c_str());
    return nullptr;
  }
  return &base;
}

// ---------------------------------------------------------------------------------------------
// L2 overwrite and timing.

/// Overwrites the L2 on `stream` (a memset of twice its size), unless SPECDEC_BENCH_HOT is set.
inline bool flush_l2(benchmark::State& state, cudaStream_t stream) {
  static const bool hot = std::getenv("SPECDEC_BENCH_HOT") != nullptr;
  if (hot)
    return true;
  static device_buffer buf;
  static std::size_t bytes = 0;
  if (buf.ptr == nullptr) {
    const int l2 = device_attribute(cudaDevAttrL2CacheSize);
    bytes = 2 * static_cast<std::size_t>(std::max(l2, 32 << 20));
    if (!check(state, buf.allocate(bytes), "cudaMalloc (L2 flush buffer)")) {
      buf.ptr = nullptr;
      return false;
    }
  }
  static int value = 0;
  value = (value + 1) & 0xff;
  return check(state, cudaMemsetAsync(buf.ptr, value, bytes, stream), "cudaMemsetAsync (L2)");
}

/// One timed run of `launch` (L2 overwrite, then events around it).
template <class Launch>
bool timed(benchmark::State& state, const timed_stream& ts, const Launch& launch, double& seconds) {
  return flush_l2(state, ts.stream)
         && check(state, cudaEventRecord(ts.start, ts.stream), "cudaEventRecord") && launch()
         && check(state, cudaEventRecord(ts.stop, ts.stream), "cudaEventRecord")
         && check(state, ts.elapsed(seconds), "cudaEventSynchronize");
}

/// The main loop: a warm-up run, then `launch` timed per iteration; returns the mean seconds
/// (0 on error).
template <class Launch>
double timed_loop(benchmark::State& state, const timed_stream& ts, const Launch& launch) {
  if (!launch() || !check(state, cudaStreamSynchronize(ts.stream), "warm-up"))
    return 0.0;
  double total = 0.0;
  for (auto _ : state) {
    double seconds = 0.0;
    if (!timed(state, ts, launch, seconds))
      return 0.0;
    state.SetIterationTime(seconds);
    total += seconds;
  }
  if (state.error_occurred() || state.iterations() == 0)
    return 0.0;
  return total / static_cast<double>(state.iterations());
}

} // namespace specdec_bench
