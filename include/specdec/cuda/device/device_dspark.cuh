// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Host entry points of the DSpark device primitives: markov_head_sampler (the
/// semi-autoregressive block loop of propose::sample_block, one CTA per request) and
/// prefix_scheduler (sched::prefix_scheduler's Algorithm 1, global search and top-K for large
/// batches). Both follow the workspace query + launch-on-a-stream pattern: no allocation, no
/// host synchronisation.

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/cuda/detail/verifier_common.cuh>
#include <specdec/cuda/kernels/markov_head_kernel.cuh>
#include <specdec/cuda/kernels/prefix_sched_kernel.cuh>
#include <specdec/cuda/launch.cuh>
#include <specdec/propose/semi_ar_heads.hpp>
#include <specdec/sched/prefix_scheduler.hpp>

#include <cub/device/device_radix_sort.cuh>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

SPECDEC_CUDA_NAMESPACE_BEGIN

/// @brief Device semi-autoregressive block sampling (DSpark spec 5.4): for every request of a
/// batch, the left-to-right loop of propose::sample_block over its base logits U, with a
/// vanilla Markov, gated or RNN head (or none: DFlash) and an optional confidence head.
///
/// `run` launches one CTA per request (kernels::markov_head_kernel); results match the host's
/// sample_block with semi_ar_drafter's uniforms (see markov_head_problem for the parity and the
/// per-request outcomes). Host-side checks cover what the host can see (sizes, null pointers,
/// head shapes); anchors and parameters are checked per request in the kernel.
///
/// Cost: per position, the bias pass reads the whole w2 ([V, rank] weights: 32 MB in fp32 at
/// V = 32000, r = 256) in one CTA, which dominates; the token draw adds one or two passes over
/// the L row. Weights in bfloat16 halve the bias pass's bytes.
/// @tparam W the heads' weight type: float or bfloat16
/// @tparam Threads threads per CTA (256)
template <class W, int Threads = 256>
class markov_head_sampler {
public:
  /// Largest rank served (shared memory: 2 rank floats, 4 rank for rnn, per CTA).
  static constexpr index_t max_rank = 2048;

  /// @brief Workspace bytes `run` needs (none).
  /// @param[in] p the problem
  /// @return 0
  /// @par Complexity
  /// Constant.
  std::size_t workspace_bytes(const markov_head_problem<W>& p) const noexcept {
    (void)p;
    return 0;
  }

  /// @brief Samples the blocks on `stream`.
  /// @param[in] p the problem: device pointers, host-side sizes (see markov_head_problem)
  /// @param[in] workspace unused (may be null)
  /// @param[in] workspace_size unused
  /// @param[in] stream the stream
  /// @return ok once the kernel is enqueued (R = 0: nothing to do); errc::invalid_argument (R
  ///   outside [0, 2^31), gamma < 0, V < 1, a hidden size < 0, params_stride not 0 or 1, an
  ///   unknown head kind, rank < 1 for a head other than none, a null pointer the problem needs);
  ///   errc::vocab_mismatch (the head's vocab, when not 0, differs from V); errc::shape_mismatch
  ///   (a gated or rnn head's hidden size or the confidence head's differs from hidden_size, or
  ///   the confidence head's rank differs from the head's with with_markov); errc::unsupported
  ///   (rank > max_rank); errc::cuda_error from the launch. What depends on device memory is
  ///   checked per request in the kernel and reported in `p.status`.
  /// @par Complexity
  /// One launch of R CTAs; per position O(V * rank / Threads) per thread for the bias (plus
  /// O(hidden + rank) per coefficient for gated and rnn, 3x that for rnn) and
  /// O(V / Threads) per executor pass.
  [[nodiscard]] status run(const markov_head_problem<W>& p,
                           void* workspace,
                           std::size_t workspace_size,
                           cudaStream_t stream) const {
    (void)workspace;
    (void)workspace_size;
    using propose::head_kind;
    const propose::sequential_head_view<W>& h = p.head;
    if (p.requests < 0 || p.requests > INT32_MAX || p.gamma < 0 || p.vocab < 1 || p.hidden_size < 0
        || (p.params_stride != 0 && p.params_stride != 1))
      return {errc::invalid_argument};
    if (h.kind != head_kind::none && h.kind != head_kind::markov && h.kind != head_kind::gated
        && h.kind != head_kind::rnn)
      return {errc::invalid_argument};
    const bool recurrent = h.kind == head_kind::gated || h.kind == head_kind::rnn;
    if (h.kind != head_kind::none
        && (h.rank < 1 || h.w1 == nullptr || h.w2 == nullptr
            || (recurrent && (h.proj_w == nullptr || h.proj_b == nullptr))))
      return {errc::invalid_argument};
    if (h.kind != head_kind::none && h.vocab != 0 && h.vocab != p.vocab)
      return {errc::vocab_mismatch};
    if ((recurrent && h.hidden != p.hidden_size)
        || (p.with_confidence
            && (p.confidence.hidden != p.hidden_size
                || (p.confidence.with_markov
                    && p.confidence.rank != (h.kind == head_kind::none ? 0 : h.rank)))))
      return {errc::shape_mismatch};
    if (h.kind != head_kind::none && h.rank > max_rank)
      return {errc::unsupported};
    if (p.requests == 0)
      return {};
    const bool uses_hidden = recurrent || p.with_confidence;
    const bool has_rows = p.gamma > 0;
    if (p.anchors == nullptr || p.request_ids == nullptr || p.positions == nullptr
        || p.params == nullptr || p.status == nullptr
        || (has_rows
            && (p.base_logits == nullptr || p.logits == nullptr || p.tokens == nullptr
                || (uses_hidden && p.hidden_size > 0 && p.hidden == nullptr)))
        || (p.with_confidence && has_rows
            && (p.confidence_logits == nullptr
                || (p.confidence.w == nullptr
                    && p.confidence.hidden + (p.confidence.with_markov ? p.confidence.rank : 0)
                           > 0))))
      return {errc::invalid_argument};
    const auto smem =
        static_cast<std::size_t>(kernels::detail::head_shared_floats(h)) * sizeof(float);
    kernels::markov_head_kernel<Threads, W>
        <<<static_cast<unsigned>(p.requests), Threads, smem, stream>>>(p);
    SPECDEC_CUDA_TRY(cudaGetLastError());
    return {};
  }
};

/// @brief The DSpark prefix scheduler on the device (spec 8, sched::prefix_scheduler's rule) for
/// large batches: Algorithm 1 (early stop), the global search, or top-K admission.
///
/// `run` enqueues: per-request candidates (cumulative products a_{r,j} in double, left to right
/// exactly as sched::cumulative_products; statuses), a stable cub::DeviceRadixSort of the
/// candidates by a descending, enumerated j-major then r so that the sorted order is the key
/// (-a, j asc, r asc) of the host's heap merge, tau(m) = R + the first m sorted a's and Theta(m)
/// = tau(m) * SPS(R + m) (sched::sps_lookup and prefix_throughput, bit for bit the host's
/// sps_table::at), then admission:
/// - early_stop: the longest strictly increasing run of Theta from Theta(0) = R * SPS(R);
/// - global: the first maximum of Theta over the whole path;
/// - top_k: min(K, candidates with a > 0);
/// and lengths per request (atomicMax of the admitted j).
///
/// Sums. The host adds the admitted a's to tau one at a time; the device computes the prefix
/// sums with a deterministic tile scan (fixed association, so every run gives the same bits,
/// which cub::DeviceScan does not promise for floating-point sums): tau, and so Theta, may differ
/// from the host's in the last bits. Lengths therefore equal the host's except where two
/// Theta values along the path are within rounding of each other (a near-tie; the GPU tests
/// use random data without them and report any difference). The cumulative products, the
/// order, the candidate count and top-K admission are exact.
///
/// Per-request status for bad input (see prefix_sched_problem): that request is excluded and
/// gets length 0. Unlike the host (which rejects the whole call), the other requests are
/// scheduled. It allocates nothing and never synchronises, so it can be captured in a CUDA graph.
/// @tparam Threads threads per CTA of the scheduler's own kernels (256)
/// @tparam Items consecutive elements per thread in the tile scans (8)
template <int Threads = 256, int Items = 8>
class prefix_scheduler {
public:
  /// @brief Workspace bytes `run` needs for this problem: the candidate grid twice (keys and
  /// slot ids, unsorted and sorted), tau and Theta, the tile sums and CUB's sort storage.
  /// @param[in] p the problem (only its host-side sizes are read)
  /// @return the size (any buffer of at least this many bytes, 256-byte aligned, will do); 0 for
  ///   a problem run() rejects or when CUB's size query fails (no device: run() then reports the
  ///   CUDA error)
  /// @par Complexity
  /// Constant (CUB's size query).
  std::size_t workspace_bytes(const prefix_sched_problem& p) const noexcept {
    layout l;
    return plan(p, l).ok() ? l.total : 0;
  }

  /// @brief Schedules the batch on `stream`.
  /// @param[in] p the problem: device pointers, host-side sizes (see prefix_sched_problem)
  /// @param[in] workspace device memory of at least workspace_bytes(p) bytes, 256-byte aligned
  /// @param[in] workspace_size its size in bytes
  /// @param[in] stream the stream
  /// @return ok once the kernels are enqueued (R = 0: nothing to do); errc::invalid_argument (R
  ///   or max_positions negative, total negative, a null pointer the problem needs, an unknown
  ///   admission, k < 0 for top_k without k_ptr, a workspace too small or misaligned);
  ///   errc::invalid_value (early_stop or global without a table: sps_points < 1, as the host
  ///   rejects an empty sps_table); errc::overflow (R * max_positions + 1 does not fit int32);
  ///   errc::cuda_error from CUB or a launch. Bad requests are reported per request in
  ///   `p.status` (see prefix_sched_problem).
  /// @par Complexity
  /// Five to seven launches of its own plus CUB's radix sort of N = R * max_positions (double,
  /// int32) pairs: O(N) work, O(N / (Threads * Items)) CTAs per scan pass, plus O(R *
  /// max_positions) per-request work in the candidate kernel (one thread per request).
  [[nodiscard]] status run(const prefix_sched_problem& p,
                           void* workspace,
                           std::size_t workspace_size,
                           cudaStream_t stream) const {
    layout lay;
    if (const status s = plan(p, lay); !s.ok())
      return s;
    if (p.requests == 0)
      return {};
    if (p.offsets == nullptr || p.lengths == nullptr || (p.total > 0 && p.c == nullptr)
        || (p.sps_points > 0 && (p.sps_batch == nullptr || p.sps_values == nullptr)))
      return {errc::invalid_argument};
    if (!detail::workspace_ok(workspace, workspace_size, lay.total))
      return {errc::invalid_argument};

    auto* base = static_cast<unsigned char*>(workspace);
    kernels::prefix_sched_launch l;
    l.p = p;
    l.n = lay.n;
    l.tiles = lay.tiles;
    l.keys = reinterpret_cast<double*>(base + lay.keys);
    l.ids = reinterpret_cast<std::int32_t*>(base + lay.ids);
    l.sorted = reinterpret_cast<double*>(base + lay.sorted);
    l.order = reinterpret_cast<std::int32_t*>(base + lay.order);
    l.tau = reinterpret_cast<double*>(base + lay.tau);
    l.theta = reinterpret_cast<double*>(base + lay.theta);
    l.tile_sums = reinterpret_cast<double*>(base + lay.tile_sums);
    l.tile_offsets = reinterpret_cast<double*>(base + lay.tile_offsets);
    l.scalars = reinterpret_cast<kernels::prefix_sched_scalars*>(base + lay.scalars);

    const index_t req_blocks = (p.requests + Threads - 1) / Threads;
    kernels::prefix_candidates_kernel<Threads>
        <<<static_cast<unsigned>(req_blocks < 4096 ? req_blocks : 4096), Threads, 0, stream>>>(l);
    SPECDEC_CUDA_TRY(cudaGetLastError());
    if (lay.n > 0) {
      std::size_t sort_bytes = lay.sort_bytes;
      SPECDEC_CUDA_TRY(cub::DeviceRadixSort::SortPairsDescending(base + lay.sort_temp,
                                                                 sort_bytes,
                                                                 l.keys,
                                                                 l.sorted,
                                                                 l.ids,
                                                                 l.order,
                                                                 lay.n,
                                                                 0,
                                                                 64,
                                                                 stream));
      kernels::prefix_tile_sum_kernel<Threads, Items>
          <<<static_cast<unsigned>(lay.tiles), Threads, 0, stream>>>(l);
      SPECDEC_CUDA_TRY(cudaGetLastError());
      kernels::prefix_tile_offsets_kernel<Threads, Items><<<1, Threads, 0, stream>>>(l);
      SPECDEC_CUDA_TRY(cudaGetLastError());
    }
    const int tiles = lay.tiles > 0 ? lay.tiles : 1;
    kernels::prefix_theta_kernel<Threads, Items>
        <<<static_cast<unsigned>(tiles), Threads, 0, stream>>>(l);
    SPECDEC_CUDA_TRY(cudaGetLastError());
    const auto points = static_cast<unsigned>((static_cast<index_t>(lay.n) + Threads) / Threads);
    if (p.admission != prefix_admission::top_k) {
      kernels::prefix_admission_kernel<Threads><<<points, Threads, 0, stream>>>(l, 0);
      SPECDEC_CUDA_TRY(cudaGetLastError());
      if (p.admission == prefix_admission::global) {
        kernels::prefix_admission_kernel<Threads><<<points, Threads, 0, stream>>>(l, 1);
        SPECDEC_CUDA_TRY(cudaGetLastError());
      }
    }
    kernels::prefix_lengths_kernel<Threads><<<points, Threads, 0, stream>>>(l);
    SPECDEC_CUDA_TRY(cudaGetLastError());
    return {};
  }

private:
  /// Byte offsets of the workspace regions (each 256-byte aligned) and the sizes.
  struct layout {
    int n = 0;
    int tiles = 0;
    std::size_t sort_bytes = 0;
    std::size_t keys = 0, ids = 0, sorted = 0, order = 0, tau = 0, theta = 0;
    std::size_t tile_sums = 0, tile_offsets = 0, scalars = 0, sort_temp = 0, total = 0;
  };

  /// Checks the host-side sizes and computes the layout (CUB's size query included).
  static status plan(const prefix_sched_problem& p, layout& l) noexcept {
    if (p.requests < 0 || p.max_positions < 0 || p.total < 0 || p.sps_points < 0)
      return {errc::invalid_argument};
    switch (p.admission) {
    case prefix_admission::early_stop:
    case prefix_admission::global:
      if (p.sps_points < 1)
        return {errc::invalid_value};
      break;
    case prefix_admission::top_k:
      if (p.k_ptr == nullptr && p.k < 0)
        return {errc::invalid_argument};
      break;
    default:
      return {errc::invalid_argument};
    }
    if (p.requests == 0)
      return {};
    if (p.max_positions > 0 && p.requests > (INT32_MAX - 1) / p.max_positions)
      return {errc::overflow};
    l.n = static_cast<int>(p.requests * p.max_positions);
    const int tile = Threads * Items;
    l.tiles = static_cast<int>((static_cast<index_t>(l.n) + tile - 1) / tile); // n near INT32_MAX
    if (l.n > 0) {
      const cudaError_t e =
          cub::DeviceRadixSort::SortPairsDescending(nullptr,
                                                    l.sort_bytes,
                                                    static_cast<const double*>(nullptr),
                                                    static_cast<double*>(nullptr),
                                                    static_cast<const std::int32_t*>(nullptr),
                                                    static_cast<std::int32_t*>(nullptr),
                                                    l.n,
                                                    0,
                                                    64,
                                                    cudaStream_t{});
      if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return to_status(e);
      }
    }
    const auto n = static_cast<std::size_t>(l.n);
    const auto t = static_cast<std::size_t>(l.tiles);
    std::size_t at = 0;
    const auto take = [&at](std::size_t bytes) {
      const std::size_t off = at;
      at += detail::align256(bytes);
      return off;
    };
    l.keys = take(n * sizeof(double));
    l.ids = take(n * sizeof(std::int32_t));
    l.sorted = take(n * sizeof(double));
    l.order = take(n * sizeof(std::int32_t));
    l.tau = take((n + 1) * sizeof(double));
    l.theta = take((n + 1) * sizeof(double));
    l.tile_sums = take(t * sizeof(double));
    l.tile_offsets = take(t * sizeof(double));
    l.scalars = take(sizeof(kernels::prefix_sched_scalars));
    l.sort_temp = take(l.sort_bytes);
    l.total = at;
    return {};
  }
};

SPECDEC_CUDA_NAMESPACE_END
