// SPDX-License-Identifier: Apache-2.0
// DSpark on the device against the host reference on the same inputs and seeds:
//  - specdec::cuda::markov_head_sampler against propose::sample_block (semi_ar_drafter's uniforms),
//  for
//    the none (DFlash), markov, gated and rnn heads, with and without a confidence head, fp32
//    and bfloat16 weights, greedy / T = 1 / temperature + top-k / top-p requests: L rows and
//    confidence logits bit for bit, tokens exactly in greedy mode and up to proven ties
//    otherwise (a sampled token may differ only when the host, rerun on the same L row with
//    u scaled by 1 +- 2^-12 or top_p scaled by 1 +- 2^-12, gives the device's token; at most
//    one tie per run; the comparison of a request stops at a tie, since later rows depend on
//    the token);
//  - bad anchors, invalid parameters, NaN and all -inf rows, NaN hidden states stay in their
//    request and give the documented flags and fallbacks;
//  - specdec::cuda::prefix_scheduler against sched::schedule_prefixes (early_stop, global) and
//    sched::schedule_top_k for R in {1, 7, 300, 5000} and gamma = 7, with ragged blocks, c = 1
//    and c = 0 entries, duplicate rows and bad requests (NaN, c > 1, too many positions) mixed
//    in (the host gets those requests as empty rows); lengths exactly, except where the host's
//    Theta path has a near-tie (|dTheta| <= 1e-12 Theta) at the decision, which is reported
//    and allowed once per run (the device sums tau in another association); the asynchronous
//    top-K through k_ptr = &result->admitted of a global run; the spec's golden S2 / S3 / S5
//    cases.
// Compile time is the budget of this file: two sampler kernels (float and bfloat16 weights,
// head kind and parameters dispatched at run time) and the scheduler's kernels plus one CUB
// radix sort.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <specdec/cpu/serial_executor.hpp>
#include <specdec/cuda/device/device_dspark.cuh>
#include <specdec/propose/semi_ar.hpp>
#include <specdec/propose/semi_ar_heads.hpp>
#include <specdec/sched/prefix_scheduler.hpp>

#include <catch2/catch.hpp>

#include "support/gpu.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <span>
#include <vector>

using namespace specdec;

namespace {

// ---------------------------------------------------------------------------------------------
// Device memory.

template <class T>
struct dbuf {
  T* ptr = nullptr;
  std::size_t n = 0;
  dbuf() = default;
  explicit dbuf(std::size_t count)
      : n(count) {
    if (count > 0)
      REQUIRE(cudaMalloc(&ptr, count * sizeof(T)) == cudaSuccess);
  }
  explicit dbuf(const std::vector<T>& h)
      : dbuf(h.size()) {
    if (!h.empty())
      REQUIRE(cudaMemcpy(ptr, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice)
              == cudaSuccess);
  }
  ~dbuf() {
    if (ptr != nullptr)
      (void)cudaFree(ptr);
  }
  dbuf(const dbuf&) = delete;
  dbuf& operator=(const dbuf&) = delete;
  std::vector<T> download() const {
    std::vector<T> h(n);
    if (n > 0)
      REQUIRE(cudaMemcpy(h.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
  }
  /// Fills the buffer with a byte pattern (so that unwritten outputs are recognisable).
  void fill(int byte) {
    if (n > 0)
      REQUIRE(cudaMemset(ptr, byte, n * sizeof(T)) == cudaSuccess);
  }
};

/// Equal bits, or both NaN (the GPU's arithmetic returns the canonical NaN, the host's keeps the
/// operand's payload).
bool same_value(float a, float b) {
  if (std::isnan(a) || std::isnan(b))
    return std::isnan(a) && std::isnan(b);
  std::uint32_t x = 0;
  std::uint32_t y = 0;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

std::size_t sz(index_t i) {
  return static_cast<std::size_t>(i);
}

// ---------------------------------------------------------------------------------------------
// Semi-AR blocks.

/// One batch of blocks on the host: heads, inputs, per-request parameters and bad cases.
template <class W>
struct block_batch {
  index_t R = 0, gamma = 0, V = 0, d = 0;
  propose::sequential_head<W> head;
  propose::confidence_head<W> conf;
  bool with_conf = false;
  std::vector<float> U, H;
  std::vector<token_id> anchors;
  std::vector<std::uint64_t> ids;
  std::vector<index_t> positions;
  std::vector<sampling::sampling_params> params;
  std::uint64_t seed = 0x5eedull;
};

template <class W>
std::vector<W> normal_weights(std::mt19937_64& g, index_t n, float sigma) {
  std::normal_distribution<float> nd(0.0f, sigma);
  std::vector<W> w(sz(n));
  for (auto& x : w)
    x = dtype_traits<W>::from_float(nd(g));
  return w;
}

/// Random heads and inputs; the first requests get the bad cases when `bad` is set.
template <class W>
block_batch<W> make_blocks(propose::head_kind kind,
                           bool with_conf,
                           bool bad,
                           index_t R,
                           index_t V,
                           index_t rank,
                           std::uint64_t seed) {
  using propose::head_kind;
  block_batch<W> b;
  b.R = R;
  b.gamma = 7;
  b.V = V;
  b.d = 24;
  std::mt19937_64 g(seed);
  b.head.kind = kind;
  if (kind != head_kind::none) {
    b.head.vocab = V;
    b.head.rank = rank;
    b.head.w1 = normal_weights<W>(g, V * rank, 1.0f);
    b.head.w2 = normal_weights<W>(g, V * rank, 0.3f);
    if (kind == head_kind::gated || kind == head_kind::rnn) {
      b.head.hidden = b.d;
      const index_t rows = kind == head_kind::gated ? rank : 3 * rank;
      const index_t in = kind == head_kind::gated ? b.d + rank : 2 * rank + b.d;
      b.head.proj_w = normal_weights<W>(g, rows * in, 0.2f);
      b.head.proj_b = normal_weights<W>(g, rows, 0.2f);
    }
  }
  REQUIRE(b.head.validate().ok());
  b.with_conf = with_conf;
  if (with_conf) {
    b.conf.with_markov = kind != head_kind::none;
    b.conf.hidden = b.d;
    b.conf.rank = b.conf.with_markov ? rank : 0;
    b.conf.w = normal_weights<W>(g, b.d + b.conf.rank, 0.2f);
    b.conf.bias = 0.1f;
    REQUIRE(b.conf.validate().ok());
  }
  std::normal_distribution<float> logit(0.0f, 1.5f);
  std::normal_distribution<float> unit(0.0f, 1.0f);
  b.U.resize(sz(R * b.gamma * V));
  for (auto& x : b.U)
    x = logit(g);
  for (index_t row = 0; row < R * b.gamma; ++row) // a few peaked tokens per row
    for (int p = 0; p < 3; ++p)
      b.U[sz(row * V + static_cast<index_t>(g() % 64))] += 4.0f - static_cast<float>(p);
  b.H.resize(sz(R * b.gamma * b.d));
  for (auto& x : b.H)
    x = unit(g);
  for (index_t r = 0; r < R; ++r) {
    b.anchors.push_back(static_cast<token_id>(g() % static_cast<std::uint64_t>(V)));
    b.ids.push_back(7919u * static_cast<std::uint64_t>(r) + 3u);
    b.positions.push_back(static_cast<index_t>(g() % 5000));
    sampling::sampling_params p;
    switch (r % 4) {
    case 0:
      p.temperature = 0.0f; // greedy
      break;
    case 1:
      break; // T = 1
    case 2:
      p.temperature = 0.8f;
      p.top_k = 40;
      break;
    default:
      p.top_p = 0.9f;
      break;
    }
    b.params.push_back(p);
  }
  if (bad) {
    REQUIRE(R >= 8);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    b.anchors[1] = static_cast<token_id>(V);                   // anchor_high
    b.anchors[2] = -1;                                         // anchor_negative
    b.params[3].temperature = -1.0f;                           // bad_params
    b.U[sz((4 * b.gamma + 3) * V + 17)] = nan;                 // request 4, row 3: nan_logit
    std::fill_n(b.U.begin() + (5 * b.gamma + 2) * V, V, -inf); // request 5, row 2: dead_row
    b.H[sz((6 * b.gamma + 4) * b.d + 5)] = nan;                // request 6, row 4: nan_hidden
  }
  return b;
}

/// The host's result of one request.
struct host_block {
  status st{};
  std::vector<token_id> tokens;
  std::vector<float> L, z;
  int length = 0;
};

template <class W>
propose::block_inputs block_inputs_of(const block_batch<W>& b, index_t r, std::vector<float>& u) {
  const rng_key key{b.seed ^ propose::semi_ar_seed_salt, b.ids[sz(r)]};
  u.resize(sz(b.gamma));
  for (index_t k = 0; k < b.gamma; ++k)
    u[sz(k)] = uniform_at(key, b.positions[sz(r)] + 1 + k, draw_purpose::sample);
  propose::block_inputs in;
  in.anchor = b.anchors[sz(r)];
  in.base_logits = {b.U.data() + r * b.gamma * b.V, b.gamma, b.V, b.V};
  in.hidden = {b.H.data() + r * b.gamma * b.d, b.gamma, b.d, b.d};
  in.uniforms = {u.data(), b.gamma};
  return in;
}

template <class W>
host_block host_sample(const block_batch<W>& b, index_t r) {
  std::vector<float> u;
  const propose::block_inputs in = block_inputs_of(b, r, u);
  host_block h;
  h.tokens.assign(sz(b.gamma), -1);
  h.L.assign(sz(b.gamma * b.V), 0.0f);
  h.z.assign(sz(b.gamma), 0.0f);
  propose::block_outputs out{
      {h.tokens.data(), b.gamma}, {h.L.data(), b.gamma, b.V, b.V}, {h.z.data(), b.gamma}, 0};
  const propose::sequential_head_view<W> hv = b.head.view();
  const propose::confidence_head_view<W> cv = b.conf.view();
  h.st = propose::sample_block(
      cpu::serial_executor{}, hv, b.with_conf ? &cv : nullptr, in, b.params[sz(r)], out);
  h.length = out.length;
  return h;
}

/// The host token of row k of request r rerun with u scaled by fu and top_p by fp.
template <class W>
index_t
host_redraw(const block_batch<W>& b, index_t r, const float* l_row, index_t k, float fu, float fp) {
  std::vector<float> u;
  (void)block_inputs_of(b, r, u);
  sampling::sampling_params p = b.params[sz(r)];
  if (p.top_p < 1.0f)
    p.top_p = std::min(1.0f, p.top_p * fp);
  const sampling::dist_row<float> row{l_row, b.V, distribution_kind::logits};
  const cpu::serial_executor ex{};
  const sampling::row_stats st = sampling::prepare_row(ex, row, p);
  if (!st.ok())
    return -2;
  return sampling::sample_row(ex, row, st, std::min(u[sz(k)] * fu, 0.99999994f));
}

/// The row_status the device must report for the host's result (no tie involved).
row_status expected_status(const host_block& h, index_t gamma) {
  row_status s;
  switch (h.st.code) {
  case errc::ok:
    break;
  case errc::token_out_of_range:
    s.set(row_status::token_out_of_range);
    break;
  case errc::invalid_value:
    s.set(row_status::draft_invalid);
    break;
  case errc::zero_mass_row:
    s.set(row_status::draft_zero_mass);
    break;
  default: // a parameter error
    s.set(row_status::invalid_params);
    break;
  }
  (void)gamma;
  return s;
}

struct block_comparison {
  int ties = 0;
  int hard = 0;
  int compared_rows = 0;
};

/// Runs the device sampler on the batch and compares every request with the host.
template <class W>
block_comparison run_and_compare(const block_batch<W>& b) {
  const index_t R = b.R;
  const index_t G = b.gamma;
  const index_t V = b.V;
  dbuf<W> w1(b.head.w1), w2(b.head.w2), pw(b.head.proj_w), pb(b.head.proj_b), cw(b.conf.w);
  dbuf<float> U(b.U), H(b.H), L(sz(R * G * V)), z(sz(R * G));
  dbuf<token_id> anchors(b.anchors), tokens(sz(R * G));
  dbuf<std::uint64_t> ids(b.ids);
  dbuf<index_t> positions(b.positions);
  dbuf<sampling::sampling_params> params(b.params);
  dbuf<row_status> status(sz(R));
  L.fill(0xff); // NaN pattern: unwritten rows are recognisable
  tokens.fill(0x7f);

  specdec::cuda::markov_head_problem<W> p;
  p.requests = R;
  p.gamma = G;
  p.vocab = V;
  p.hidden_size = b.d;
  p.head = b.head.view();
  p.head.w1 = w1.ptr;
  p.head.w2 = w2.ptr;
  p.head.proj_w = pw.ptr;
  p.head.proj_b = pb.ptr;
  p.with_confidence = b.with_conf;
  p.confidence = b.conf.view();
  p.confidence.w = cw.ptr;
  p.base_logits = U.ptr;
  p.hidden = H.ptr;
  p.anchors = anchors.ptr;
  p.request_ids = ids.ptr;
  p.positions = positions.ptr;
  p.seed = b.seed;
  p.params = params.ptr;
  p.params_stride = 1;
  p.tokens = tokens.ptr;
  p.logits = L.ptr;
  p.confidence_logits = b.with_conf ? z.ptr : nullptr;
  p.status = status.ptr;
  const specdec::cuda::markov_head_sampler<W> sampler;
  REQUIRE(sampler.workspace_bytes(p) == 0);
  REQUIRE(sampler.run(p, nullptr, 0, nullptr).ok());
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  const std::vector<float> dL = L.download();
  const std::vector<float> dz = z.download();
  const std::vector<token_id> dt = tokens.download();
  const std::vector<row_status> ds = status.download();

  block_comparison c;
  for (index_t r = 0; r < R; ++r) {
    const host_block h = host_sample(b, r);
    const float* dl = dL.data() + r * G * V;
    const token_id* dtok = dt.data() + r * G;
    bool diverged = false;
    // Rows the host wrote: every completed position, plus the bad row where it stopped.
    const bool stopped = !h.st.ok() && h.length < G && h.st.code != errc::token_out_of_range
                         && h.st.code != errc::invalid_argument
                         && b.params[sz(r)].validate() == errc::ok;
    const index_t rows = h.length + (stopped ? 1 : 0);
    for (index_t k = 0; k < rows && !diverged; ++k) {
      ++c.compared_rows;
      for (index_t v = 0; v < V; ++v)
        if (!same_value(dl[k * V + v], h.L[sz(k * V + v)])) {
          INFO("request " << r << " row " << k << " v " << v << ": device " << dl[k * V + v]
                          << " host " << h.L[sz(k * V + v)]);
          CHECK(false);
          ++c.hard;
          break;
        }
      if (k >= h.length)
        break; // the bad row: no token
      if (dtok[k] == h.tokens[sz(k)])
        continue;
      // A differing draw: a proven tie or a hard mismatch (greedy draws never tie).
      bool tie = false;
      if (!b.params[sz(r)].greedy()) {
        const float delta = 1.0f / 4096.0f;
        for (const float fu : {1.0f - delta, 1.0f, 1.0f + delta})
          for (const float fp : {1.0f - delta, 1.0f, 1.0f + delta})
            tie = tie || host_redraw(b, r, h.L.data() + k * V, k, fu, fp) == dtok[k];
      }
      INFO("request " << r << " position " << k << ": device token " << dtok[k] << ", host "
                      << h.tokens[sz(k)] << (tie ? " (tie)" : ""));
      CHECK(tie);
      ++(tie ? c.ties : c.hard);
      diverged = true;
    }
    if (diverged)
      continue;
    INFO("request " << r << " host status " << static_cast<int>(h.st.code) << " length "
                    << h.length);
    CHECK(ds[sz(r)].bits == expected_status(h, G).bits);
    for (index_t k = 0; k < G; ++k)
      CHECK(dtok[k] == (k < h.length ? h.tokens[sz(k)] : -1));
    if (b.with_conf) {
      const bool complete = h.length == G && h.st.code != errc::token_out_of_range
                            && b.params[sz(r)].validate() == errc::ok;
      for (index_t k = 0; k < G; ++k) {
        const float d = dz[sz(r * G + k)];
        if (complete)
          CHECK(same_value(d, h.z[sz(k)]));
        else
          CHECK(std::isnan(d));
      }
    }
    for (index_t k = rows; k < G; ++k) // rows the host never wrote stay untouched
      CHECK(std::isnan(dl[k * V]));
  }
  return c;
}

template <class W>
void check_all_heads(std::uint64_t seed) {
  using propose::head_kind;
  int ties = 0;
  for (const head_kind kind :
       {head_kind::none, head_kind::markov, head_kind::gated, head_kind::rnn}) {
    for (const bool conf : {false, true}) {
      const index_t rank = kind == head_kind::rnn ? 20 : 36; // not a multiple of 8: bias tails
      const block_batch<W> b = make_blocks<W>(kind, conf, conf, 16, 3001, rank, seed++);
      INFO("head kind " << static_cast<int>(kind) << " confidence " << conf);
      const block_comparison c = run_and_compare(b);
      CHECK(c.hard == 0);
      CHECK(c.compared_rows > 0);
      ties += c.ties;
    }
  }
  CHECK(ties <= 1);
}

TEST_CASE("device semi-AR sampler equals propose::sample_block (fp32 weights)",
          "[gpu][dspark][propose]") {
  check_all_heads<float>(11);
}

TEST_CASE("device semi-AR sampler equals propose::sample_block (bfloat16 weights)",
          "[gpu][dspark][propose]") {
  check_all_heads<bfloat16>(101);
}

TEST_CASE("device semi-AR sampler: seed through a device pointer, params shared",
          "[gpu][dspark][propose]") {
  block_batch<float> b =
      make_blocks<float>(propose::head_kind::markov, false, false, 4, 1000, 16, 7);
  for (auto& p : b.params)
    p = sampling::sampling_params{}; // T = 1 for every request
  dbuf<float> w1(b.head.w1), w2(b.head.w2), U(b.U), L(sz(4 * 7 * 1000));
  dbuf<token_id> anchors(b.anchors), tokens(28);
  dbuf<std::uint64_t> ids(b.ids), seed(std::vector<std::uint64_t>{b.seed});
  dbuf<index_t> positions(b.positions);
  dbuf<sampling::sampling_params> params(std::vector<sampling::sampling_params>{b.params[0]});
  dbuf<row_status> status(4);
  specdec::cuda::markov_head_problem<float> p;
  p.requests = 4;
  p.gamma = 7;
  p.vocab = 1000;
  p.head = b.head.view();
  p.head.w1 = w1.ptr;
  p.head.w2 = w2.ptr;
  p.base_logits = U.ptr;
  p.anchors = anchors.ptr;
  p.request_ids = ids.ptr;
  p.positions = positions.ptr;
  p.seed = 0; // replaced by *seed_ptr
  p.seed_ptr = seed.ptr;
  p.params = params.ptr;
  p.params_stride = 0;
  p.tokens = tokens.ptr;
  p.logits = L.ptr;
  p.status = status.ptr;
  REQUIRE(specdec::cuda::markov_head_sampler<float>{}.run(p, nullptr, 0, nullptr).ok());
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  const std::vector<token_id> dt = tokens.download();
  int equal = 0;
  for (index_t r = 0; r < 4; ++r) {
    const host_block h = host_sample(b, r);
    REQUIRE(h.st.ok());
    equal += std::equal(h.tokens.begin(), h.tokens.end(), dt.begin() + r * 7) ? 1 : 0;
  }
  CHECK(equal >= 3); // one proven tie at most; the full check is above
}

TEST_CASE("device semi-AR sampler: host-side checks of run", "[gpu][dspark][bad_input]") {
  const specdec::cuda::markov_head_sampler<float> s;
  specdec::cuda::markov_head_problem<float> p;
  CHECK(s.run(p, nullptr, 0, nullptr).code == errc::invalid_argument); // V = 0
  p.vocab = 10;
  CHECK(s.run(p, nullptr, 0, nullptr).ok()); // R = 0: nothing to do
  p.requests = 2;
  p.gamma = 3;
  CHECK(s.run(p, nullptr, 0, nullptr).code == errc::invalid_argument); // null pointers
  p.head.kind = propose::head_kind::markov;
  p.head.rank = 0;
  CHECK(s.run(p, nullptr, 0, nullptr).code == errc::invalid_argument); // rank 0
  float dummy = 0.0f;
  p.head.rank = 4;
  p.head.w1 = &dummy;
  p.head.w2 = &dummy;
  p.head.vocab = 11;
  CHECK(s.run(p, nullptr, 0, nullptr).code == errc::vocab_mismatch);
  p.head.vocab = 10;
  p.head.rank = specdec::cuda::markov_head_sampler<float>::max_rank + 1;
  CHECK(s.run(p, nullptr, 0, nullptr).code == errc::unsupported);
  p.head.rank = 4;
  p.with_confidence = true;
  p.confidence.hidden = 3;
  CHECK(s.run(p, nullptr, 0, nullptr).code == errc::shape_mismatch); // hidden_size 0
  p.params_stride = 2;
  CHECK(s.run(p, nullptr, 0, nullptr).code == errc::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Prefix scheduler.

/// A ragged batch of conditionals, the requests the device must exclude, and the host's view.
struct sched_batch {
  index_t R = 0;
  index_t gamma = 7;
  std::vector<double> c;
  std::vector<index_t> offsets{0};
  std::vector<std::uint32_t> flags; // expected row_status bits per request
  std::vector<double> host_c;       // bad requests' rows removed
  std::vector<index_t> host_offsets{0};
};

sched_batch make_sched(index_t R, std::uint64_t seed, bool bad) {
  sched_batch s;
  s.R = R;
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (index_t r = 0; r < R; ++r) {
    index_t n = static_cast<index_t>(g() % 8);
    std::uint32_t f = 0;
    const std::size_t start = s.c.size();
    if (r > 0 && s.flags.back() == 0 && g() % 10 == 0) { // a duplicate of a clean row:
      // equal a's, r breaks the ties
      const index_t p0 = s.offsets[sz(r - 1)];
      n = s.offsets[sz(r)] - p0;
      for (index_t k = 0; k < n; ++k)
        s.c.push_back(s.c[sz(p0 + k)]);
    } else {
      for (index_t k = 0; k < n; ++k) {
        const auto w = g() % 25;
        s.c.push_back(w == 0 ? 1.0 : (w == 1 ? 0.0 : 0.05 + 0.95 * u(g)));
      }
    }
    if (bad && R >= 7) {
      if (r % 97 == 2 && n > 0) {
        s.c[start] = std::numeric_limits<double>::quiet_NaN();
        f = row_status::draft_invalid;
      } else if (r % 97 == 5 && n > 0) {
        s.c[start + sz(n - 1)] = 1.5;
        f = row_status::draft_invalid;
      } else if (r % 97 == 3) {
        s.c.push_back(0.9);
        s.c.push_back(0.9);
        while (static_cast<index_t>(s.c.size() - start) < 8)
          s.c.push_back(0.9); // 8 > gamma positions
        f = row_status::bad_shape;
      }
    }
    s.offsets.push_back(static_cast<index_t>(s.c.size()));
    s.flags.push_back(f);
    if (f == 0)
      s.host_c.insert(s.host_c.end(), s.c.begin() + static_cast<std::ptrdiff_t>(start), s.c.end());
    s.host_offsets.push_back(static_cast<index_t>(s.host_c.size()));
  }
  return s;
}

/// A step curve around R: smooth (Theta unimodal, so the early stop lands inside the path) or
/// jagged (cliffs, where the global search goes further).
sched::sps_table make_table(index_t R, bool jagged) {
  std::vector<sched::sps_point> pts;
  const index_t step = std::max<index_t>(1, R / 16);
  for (index_t b = 1; b <= R * 9 + step; b += step) {
    const double x = static_cast<double>(b - R) / static_cast<double>(R);
    double v = 100.0 / (1.0 + 0.4 * x * x);
    if (jagged)
      v *= 1.0 - 0.08 * static_cast<double>((b / step) % 3 == 0);
    pts.push_back({b, v});
  }
  return sched::sps_table(std::span<const sched::sps_point>(pts));
}

struct sched_device_result {
  std::vector<index_t> lengths;
  std::vector<row_status> status;
  sched::schedule_result result;
};

/// Device buffers of a batch and a table, and runs of the scheduler on them.
struct sched_device {
  dbuf<double> c;
  dbuf<index_t> offsets;
  dbuf<index_t> batch;
  dbuf<double> values;
  dbuf<index_t> lengths;
  dbuf<row_status> status;
  dbuf<sched::schedule_result> result;
  index_t R, gamma, total, points;

  sched_device(const sched_batch& s, const sched::sps_table& t)
      : c(s.c)
      , offsets(s.offsets)
      , batch(std::vector<index_t>(t.batches().begin(), t.batches().end()))
      , values(std::vector<double>(t.values().begin(), t.values().end()))
      , lengths(sz(s.R))
      , status(sz(s.R))
      , result(1)
      , R(s.R)
      , gamma(s.gamma)
      , total(static_cast<index_t>(s.c.size()))
      , points(t.size()) {}

  specdec::cuda::prefix_sched_problem problem(specdec::cuda::prefix_admission mode,
                                              index_t k) const {
    specdec::cuda::prefix_sched_problem p;
    p.requests = R;
    p.max_positions = gamma;
    p.total = total;
    p.c = c.ptr;
    p.offsets = offsets.ptr;
    p.sps_batch = batch.ptr;
    p.sps_values = values.ptr;
    p.sps_points = points;
    p.admission = mode;
    p.k = k;
    p.lengths = lengths.ptr;
    p.status = status.ptr;
    p.result = result.ptr;
    return p;
  }

  sched_device_result run(const specdec::cuda::prefix_sched_problem& p) {
    const specdec::cuda::prefix_scheduler<> s;
    const std::size_t bytes = s.workspace_bytes(p);
    REQUIRE(bytes > 0);
    dbuf<unsigned char> ws(bytes);
    REQUIRE(s.run(p, ws.ptr, bytes, nullptr).ok());
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    return {lengths.download(), status.download(), result.download()[0]};
  }
};

/// True when the host path has a near-tie of Theta between the host's and the device's choice.
bool near_tie(const std::vector<sched::schedule_step>& trace, index_t mh, index_t md) {
  const index_t lo = std::min(mh, md);
  const index_t hi = std::max(mh, md) + 1;
  const auto at = [&](index_t m) { return trace[sz(m)].throughput; };
  const index_t last = static_cast<index_t>(trace.size()) - 1;
  for (index_t m = std::max<index_t>(lo, 1); m <= std::min(hi, last); ++m)
    if (std::fabs(at(m) - at(m - 1)) <= 1e-12 * std::fabs(at(m)))
      return true;
  return md <= last && std::fabs(at(md) - at(mh)) <= 1e-12 * std::fabs(at(mh));
}

void check_sched(const sched_batch& s,
                 const sched::sps_table& t,
                 specdec::cuda::prefix_admission mode,
                 index_t k,
                 int& ties) {
  sched_device dev(s, t);
  const sched_device_result d = dev.run(dev.problem(mode, k));
  std::vector<index_t> hl(sz(s.R));
  sched::schedule_result hr{};
  std::vector<sched::schedule_step> trace;
  if (mode == specdec::cuda::prefix_admission::top_k) {
    REQUIRE(
        sched::prefix_scheduler{}.top_k(s.host_c, s.host_offsets, k, hl, &hr.expected_tokens).ok());
    for (const index_t l : hl)
      hr.admitted += l;
    hr.batch = s.R + hr.admitted;
    hr.throughput = sched::prefix_throughput(hr.expected_tokens, t.at(hr.batch));
  } else {
    const auto m = mode == specdec::cuda::prefix_admission::global
                       ? sched::schedule_mode::global
                       : sched::schedule_mode::early_stop;
    REQUIRE(sched::schedule_prefixes(s.host_c, s.host_offsets, t, hl, &hr, m, &trace).ok());
  }
  for (index_t r = 0; r < s.R; ++r)
    CHECK(d.status[sz(r)].bits == s.flags[sz(r)]);
  if (d.lengths != hl) {
    const bool tie = mode != specdec::cuda::prefix_admission::top_k
                     && near_tie(trace, hr.admitted, d.result.admitted);
    INFO("R " << s.R << " mode " << static_cast<int>(mode) << ": device admitted "
              << d.result.admitted << ", host " << hr.admitted << (tie ? " (near-tie)" : ""));
    CHECK(tie);
    ++ties;
    return;
  }
  CHECK(d.result.admitted == hr.admitted);
  CHECK(d.result.batch == hr.batch);
  CHECK(d.result.expected_tokens == Approx(hr.expected_tokens).epsilon(1e-12));
  CHECK(d.result.throughput == Approx(hr.throughput).epsilon(1e-12));
}

TEST_CASE("device prefix scheduler equals sched::schedule_prefixes and schedule_top_k",
          "[gpu][dspark][sched]") {
  int ties = 0;
  std::uint64_t seed = 1;
  for (const index_t R : {1, 7, 300, 5000}) {
    const sched_batch s = make_sched(R, seed++, true);
    index_t candidates = 0;
    for (const double x : s.host_c)
      candidates += x > 0.0 ? 1 : 0; // an upper bound is enough for K
    INFO("R " << R);
    check_sched(s, make_table(R, false), specdec::cuda::prefix_admission::early_stop, 0, ties);
    check_sched(s, make_table(R, true), specdec::cuda::prefix_admission::early_stop, 0, ties);
    check_sched(s, make_table(R, true), specdec::cuda::prefix_admission::global, 0, ties);
    check_sched(s, make_table(R, false), specdec::cuda::prefix_admission::global, 0, ties);
    for (const index_t k : {index_t{0}, index_t{1}, candidates / 3, candidates + 5})
      check_sched(s, make_table(R, false), specdec::cuda::prefix_admission::top_k, k, ties);
  }
  CHECK(ties <= 1);
}

TEST_CASE("device prefix scheduler: asynchronous top-K budget through k_ptr",
          "[gpu][dspark][sched]") {
  const sched_batch s = make_sched(300, 77, false);
  const sched::sps_table t = make_table(300, true);
  sched_device dev(s, t);
  const sched_device_result g = dev.run(dev.problem(specdec::cuda::prefix_admission::global, 0));
  dbuf<sched::schedule_result> hist(1); // the step t-2 result, kept on the device
  REQUIRE(
      cudaMemcpy(hist.ptr, dev.result.ptr, sizeof(sched::schedule_result), cudaMemcpyDeviceToDevice)
      == cudaSuccess);
  specdec::cuda::prefix_sched_problem p = dev.problem(specdec::cuda::prefix_admission::top_k, -1);
  p.k_ptr = &hist.ptr->admitted;
  const sched_device_result d = dev.run(p);
  std::vector<index_t> hl(sz(s.R));
  REQUIRE(sched::schedule_top_k(s.host_c, s.host_offsets, g.result.admitted, hl).ok());
  CHECK(d.lengths == hl);
  CHECK(d.result.admitted == g.result.admitted);
}

TEST_CASE("device prefix scheduler: the spec's golden cases", "[gpu][dspark][sched]") {
  const auto run = [](std::vector<double> c,
                      std::vector<index_t> offsets,
                      sched::sps_table t,
                      specdec::cuda::prefix_admission mode,
                      index_t k) {
    sched_batch s;
    s.R = static_cast<index_t>(offsets.size()) - 1;
    s.gamma = 3;
    s.c = c;
    s.offsets = offsets;
    sched_device dev(s, t);
    return dev.run(dev.problem(mode, k));
  };
  const std::vector<double> c2{0.9, 0.8, 0.5, 0.6, 0.5, 0.9};
  const std::vector<index_t> o2{0, 3, 6};
  const sched::sps_table s2{{2, 1.0}, {3, 0.95}, {4, 0.9}, {5, 0.8}, {6, 0.7}, {7, 0.6}, {8, 0.5}};
  const sched::sps_table s3{
      {2, 1.0}, {3, 0.95}, {4, 0.70}, {5, 0.69}, {6, 0.68}, {7, 0.67}, {8, 0.66}};
  // S2: early stop admits (1,1), (1,2), (2,1): lengths [2, 1], Theta 3.376.
  const sched_device_result a = run(c2, o2, s2, specdec::cuda::prefix_admission::early_stop, 0);
  CHECK(a.lengths == std::vector<index_t>{2, 1});
  CHECK(a.result.throughput == Approx(3.376).epsilon(1e-9));
  // S3 (cliff): early stop [1, 0]; the global search [3, 3] with Theta 3.399.
  CHECK(run(c2, o2, s3, specdec::cuda::prefix_admission::early_stop, 0).lengths
        == std::vector<index_t>{1, 0});
  const sched_device_result g = run(c2, o2, s3, specdec::cuda::prefix_admission::global, 0);
  CHECK(g.lengths == std::vector<index_t>{3, 3});
  CHECK(g.result.throughput == Approx(3.399).epsilon(1e-4));
  // S5 (flat SPS, an a = 0 candidate excluded): [2, 3], Theta 4.495.
  const sched::sps_table flat{
      {1, 1.0}, {2, 1.0}, {3, 1.0}, {4, 1.0}, {5, 1.0}, {6, 1.0}, {7, 1.0}, {8, 1.0}};
  const sched_device_result f =
      run({0.9, 0.8, 0.0, 0.5, 0.5, 0.5}, o2, flat, specdec::cuda::prefix_admission::early_stop, 0);
  CHECK(f.lengths == std::vector<index_t>{2, 3});
  CHECK(f.result.throughput == Approx(4.495).epsilon(1e-9));
  // S4 (ties, c = 1): pop order (1,1), (1,2), (1,3): [3].
  const sched::sps_table s4{{1, 1.0}, {2, 0.99}, {3, 0.98}, {4, 0.97}};
  CHECK(run({1.0, 1.0, 0.5}, {0, 3}, s4, specdec::cuda::prefix_admission::early_stop, 0).lengths
        == std::vector<index_t>{3});
  // Top-K on S2's C, K = 0 .. 6.
  const std::vector<std::vector<index_t>> top{
      {0, 0}, {1, 0}, {2, 0}, {2, 1}, {3, 1}, {3, 2}, {3, 3}};
  for (index_t k = 0; k <= 6; ++k)
    CHECK(run(c2, o2, s2, specdec::cuda::prefix_admission::top_k, k).lengths == top[sz(k)]);
}

TEST_CASE("device prefix scheduler: host-side checks of run", "[gpu][dspark][sched][bad_input]") {
  const specdec::cuda::prefix_scheduler<> s;
  specdec::cuda::prefix_sched_problem p;
  p.requests = 3;
  p.max_positions = 7;
  CHECK(s.run(p, nullptr, 0, nullptr).code == errc::invalid_value); // no table
  p.admission = specdec::cuda::prefix_admission::top_k;
  p.k = -1;
  CHECK(s.run(p, nullptr, 0, nullptr).code == errc::invalid_argument);
  p.k = 2;
  CHECK(s.run(p, nullptr, 0, nullptr).code == errc::invalid_argument); // null pointers
  p.requests = std::numeric_limits<std::int32_t>::max();
  CHECK(s.run(p, nullptr, 0, nullptr).code == errc::overflow);
  p.requests = 0;
  CHECK(s.run(p, nullptr, 0, nullptr).ok());
  CHECK(s.workspace_bytes(p) == 0);
}

} // namespace
