// SPDX-License-Identifier: Apache-2.0
// The ragged batch API of chain verification (verify::chain_batch, cpu::verify_chain_batch):
// results equal per-request verification with the same key; randomness follows the request
// (id, position), never the batch slot, so permuting a batch or moving a request to another
// batch changes nothing; per-request vs broadcast parameters; determinism; 16-bit target rows
// with float drafts; padded row strides. Every chain rule runs through every case.

#include <specdec/specdec.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <ostream>
#include <random>
#include <vector>

using namespace specdec;

namespace {

std::size_t sz(index_t i) {
  return static_cast<std::size_t>(i);
}

/// One request's data in float: K + 1 target rows, K draft rows, K drafts.
struct request_data {
  index_t vocab = 0;
  std::vector<float> target;
  std::vector<float> draft;
  std::vector<token_id> tokens;
  std::uint64_t id = 0;
  index_t position = 0;
  sampling::sampling_params params{};

  std::int32_t k() const {
    return static_cast<std::int32_t>(tokens.size());
  }
};

sampling::sampling_params params_t1() {
  return {};
}
sampling::sampling_params params_truncated() {
  sampling::sampling_params sp;
  sp.temperature = 0.8f;
  sp.top_k = 7;
  sp.top_p = 0.9f;
  sp.min_p = 0.01f;
  return sp;
}
sampling::sampling_params params_greedy() {
  sampling::sampling_params sp;
  sp.temperature = 0.0f;
  return sp;
}

/// Values as stored in T and read back as float (the identity for float).
template <class T>
float rounded(float x) {
  return dtype_traits<T>::to_float(dtype_traits<T>::from_float(x));
}

/// A random request: Gaussian logits (softmaxed for probability rows); drafts drawn from the
/// processed draft rows as the library sees them, stored as TD (the argmax under greedy
/// parameters), so that every request is clean.
template <class TD = float>
request_data random_request(std::mt19937_64& rng,
                            index_t vocab,
                            std::int32_t k,
                            distribution_kind kind,
                            const sampling::sampling_params& sp) {
  request_data r;
  r.vocab = vocab;
  r.id = rng();
  r.position = static_cast<index_t>(rng() % 100000);
  r.params = sp;
  std::normal_distribution<float> logit(0.0f, 2.0f);
  std::uniform_real_distribution<float> unif(0.0f, 1.0f);
  const auto fill = [&](std::vector<float>& rows, std::int32_t n) {
    rows.resize(sz(n * vocab));
    for (auto& x : rows)
      x = logit(rng);
    if (kind == distribution_kind::probabilities) {
      for (std::int32_t j = 0; j < n; ++j) {
        float* row = rows.data() + j * vocab;
        float s = 0.0f;
        for (index_t v = 0; v < vocab; ++v)
          s += row[v] = std::exp(row[v]);
        for (index_t v = 0; v < vocab; ++v)
          row[v] /= s;
      }
    }
  };
  fill(r.target, k + 1);
  fill(r.draft, k);
  const cpu::serial_executor ex{};
  std::vector<float> row_td(sz(vocab));
  for (std::int32_t j = 0; j < k; ++j) {
    for (index_t v = 0; v < vocab; ++v)
      row_td[sz(v)] = rounded<TD>(r.draft[sz(j * vocab + v)]);
    const sampling::dist_row<float> row{row_td.data(), vocab, kind};
    const auto st = sampling::prepare_row(ex, row, sp);
    REQUIRE(st.ok());
    r.tokens.push_back(static_cast<token_id>(sampling::sample_row(ex, row, st, unif(rng))));
  }
  return r;
}

template <class T>
std::vector<T> stored(const std::vector<float>& v) {
  std::vector<T> out;
  out.reserve(v.size());
  for (float x : v)
    out.push_back(dtype_traits<T>::from_float(x));
  return out;
}

/// A ragged batch of requests, rows stored as TT / TD, with `pad` extra elements per row.
template <class TT, class TD>
struct batch_data {
  index_t vocab = 0;
  index_t stride = 0;
  std::vector<TT> target;
  std::vector<TD> draft;
  std::vector<token_id> tokens;
  std::vector<index_t> offsets{0};
  std::vector<std::uint64_t> ids;
  std::vector<index_t> positions;
  std::vector<sampling::sampling_params> params;
  distribution_kind kind;

  batch_data(const std::vector<request_data>& reqs, index_t v, distribution_kind k, index_t pad = 0)
      : vocab(v)
      , stride(v + pad)
      , kind(k) {
    const TT tpad = dtype_traits<TT>::from_float(std::nanf(""));
    const TD dpad = dtype_traits<TD>::from_float(std::nanf("")); // padding must never be read
    for (const auto& r : reqs) {
      const auto t = stored<TT>(r.target);
      const auto d = stored<TD>(r.draft);
      for (std::int32_t j = 0; j <= r.k(); ++j) {
        target.insert(target.end(), t.begin() + j * v, t.begin() + (j + 1) * v);
        target.insert(target.end(), sz(pad), tpad);
      }
      for (std::int32_t j = 0; j < r.k(); ++j) {
        draft.insert(draft.end(), d.begin() + j * v, d.begin() + (j + 1) * v);
        draft.insert(draft.end(), sz(pad), dpad);
      }
      tokens.insert(tokens.end(), r.tokens.begin(), r.tokens.end());
      offsets.push_back(offsets.back() + r.k());
      ids.push_back(r.id);
      positions.push_back(r.position);
      params.push_back(r.params);
    }
  }
  verify::chain_batch<TT, TD> view(std::uint64_t seed, index_t params_stride = 1) const {
    verify::chain_batch<TT, TD> b;
    b.batch = static_cast<index_t>(ids.size());
    b.draft_offsets = offsets.data();
    b.tokens = tokens.data();
    b.target = {target.data(), static_cast<index_t>(target.size()) / stride, vocab, stride};
    b.draft = {draft.data(), static_cast<index_t>(draft.size()) / stride, vocab, stride};
    b.target_kind = kind;
    b.draft_kind = kind;
    b.params = params.data();
    b.params_stride = params_stride;
    b.request_ids = ids.data();
    b.positions = positions.data();
    b.seed = seed;
    return b;
  }
};

struct result {
  std::int32_t accepted = 0;
  token_id next = 0;
  std::uint32_t bits = 0;
  friend bool operator==(const result&, const result&) = default;
};

std::ostream& operator<<(std::ostream& os, const result& r) {
  return os << "{accepted " << r.accepted << ", next " << r.next << ", status 0x" << std::hex
            << r.bits << std::dec << "}";
}

template <class Policy, class TT, class TD>
std::vector<result> run(const Policy& policy,
                        const batch_data<TT, TD>& b,
                        std::uint64_t seed,
                        index_t params_stride = 1) {
  const std::size_t n = b.ids.size();
  std::vector<std::int32_t> accepted(n, -1);
  std::vector<token_id> next(n, -1);
  std::vector<row_status> flags(n);
  const status st = cpu::verify_chain_batch(
      policy, b.view(seed, params_stride), {accepted.data(), next.data(), flags.data()});
  REQUIRE(st.ok());
  std::vector<result> out;
  for (std::size_t i = 0; i < n; ++i)
    out.push_back({accepted[i], next[i], flags[i].bits});
  return out;
}

/// The request verified alone with the single-request API and rng_key{seed, id}.
template <class TT, class TD, class Policy>
result run_single(const Policy& policy,
                  const request_data& q,
                  distribution_kind kind,
                  std::uint64_t seed) {
  const auto t = stored<TT>(q.target);
  const auto d = stored<TD>(q.draft);
  verify::chain_request<TT, TD> r;
  r.target = t.data();
  r.target_stride = q.vocab;
  r.draft = q.k() > 0 ? d.data() : nullptr;
  r.draft_stride = q.vocab;
  r.tokens = q.tokens.data();
  r.num_drafts = q.k();
  r.vocab = q.vocab;
  r.target_kind = kind;
  r.draft_kind = kind;
  r.params = q.params;
  r.position = q.position;
  const auto o = cpu::verify_chain(policy, r, rng_key{seed, q.id});
  return {o.accepted, o.next, o.status.bits};
}

constexpr std::array<std::int32_t, 5> draft_lengths{0, 1, 3, 5, 8};

/// `n` requests with K cycling through 0, 1, 3, 5, 8 in a shuffled order.
template <class TD = float>
std::vector<request_data> ragged_requests(std::uint64_t seed,
                                          std::size_t n,
                                          index_t vocab,
                                          distribution_kind kind,
                                          const std::vector<sampling::sampling_params>& params) {
  std::mt19937_64 rng(seed);
  std::vector<std::int32_t> ks;
  for (std::size_t i = 0; i < n; ++i)
    ks.push_back(draft_lengths[i % draft_lengths.size()]);
  std::shuffle(ks.begin(), ks.end(), rng);
  std::vector<request_data> reqs;
  for (std::size_t i = 0; i < n; ++i)
    reqs.push_back(random_request<TD>(rng, vocab, ks[i], kind, params[i % params.size()]));
  return reqs;
}

#define ALL_RULES                                                                                  \
  verify::greedy, verify::rejection_sampling, verify::one_hot_rejection,                           \
      verify::typical_acceptance, verify::block_verification, verify::one_hot_block_verification

struct config {
  const char* name;
  index_t vocab;
  distribution_kind kind;
  sampling::sampling_params params;
};

const std::vector<config>& configs() {
  static const std::vector<config> list{
      {"V = 11, logits, T = 1", 11, distribution_kind::logits, params_t1()},
      {"V = 11, probabilities, truncated",
       11,
       distribution_kind::probabilities,
       params_truncated()},
      {"V = 11, logits, greedy", 11, distribution_kind::logits, params_greedy()},
      {"V = 1000 (two executor chunks), logits, truncated",
       1000,
       distribution_kind::logits,
       params_truncated()},
      {"V = 1000, probabilities, T = 1", 1000, distribution_kind::probabilities, params_t1()},
  };
  return list;
}

} // namespace

TEMPLATE_TEST_CASE(
    "batch results equal per-request verify_chain with the same key (K in {0, 1, 3, 5, 8})",
    "[verify][chain][cpu]",
    ALL_RULES) {
  for (const auto& c : configs()) {
    INFO(c.name);
    const auto reqs = ragged_requests(17, 30, c.vocab, c.kind, {c.params});
    const batch_data<float, float> b(reqs, c.vocab, c.kind);
    const std::uint64_t seed = 0x5eedull << 40 | 12345;
    const auto got = run(TestType{}, b, seed);
    std::int32_t accepted_total = 0, rejected_somewhere = 0;
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      INFO("request " << i << " K = " << reqs[i].k());
      const result single = run_single<float, float>(TestType{}, reqs[i], c.kind, seed);
      CHECK(got[i] == single);
      CHECK((got[i].bits & row_status::error_mask) == 0);
      CHECK(got[i].accepted >= 0);
      CHECK(got[i].accepted <= reqs[i].k());
      CHECK(got[i].next >= 0);
      CHECK(got[i].next < c.vocab);
      accepted_total += got[i].accepted;
      rejected_somewhere += got[i].accepted < reqs[i].k() ? 1 : 0;
    }
    CAPTURE(accepted_total, rejected_somewhere);
    CHECK(rejected_somewhere > 0); // the inputs exercise rejections...
  }
}

TEMPLATE_TEST_CASE("permuting a batch permutes the results and changes nothing else",
                   "[verify][chain][cpu]",
                   ALL_RULES) {
  for (const auto& c : configs()) {
    INFO(c.name);
    const auto reqs = ragged_requests(23, 25, c.vocab, c.kind, {c.params});
    std::vector<std::size_t> perm(reqs.size());
    std::iota(perm.begin(), perm.end(), std::size_t{0});
    std::mt19937_64 rng(5);
    for (int round = 0; round < 3; ++round) {
      std::shuffle(perm.begin(), perm.end(), rng);
      std::vector<request_data> permuted;
      for (std::size_t i : perm)
        permuted.push_back(reqs[i]); // ids and positions move with them
      const auto base = run(TestType{}, batch_data<float, float>(reqs, c.vocab, c.kind), 77);
      const auto got = run(TestType{}, batch_data<float, float>(permuted, c.vocab, c.kind), 77);
      for (std::size_t i = 0; i < perm.size(); ++i) {
        INFO("slot " << i << " holds request " << perm[i]);
        CHECK(got[i] == base[perm[i]]);
      }
    }
  }
}

TEMPLATE_TEST_CASE("a request gets the same result in two different batches",
                   "[verify][chain][cpu]",
                   ALL_RULES) {
  for (const auto& c : configs()) {
    INFO(c.name);
    const auto a = ragged_requests(31, 12, c.vocab, c.kind, {c.params});
    const auto b = ragged_requests(32, 9, c.vocab, c.kind, {c.params});
    // Request a[4] in batch A (slot 4) and at slot 6 of batch B (between b's requests).
    std::vector<request_data> other(b.begin(), b.begin() + 6);
    other.push_back(a[4]);
    other.insert(other.end(), b.begin() + 6, b.end());
    for (std::uint64_t seed : {1ull, 2ull, 0xffffffffffffull}) {
      const auto ra = run(TestType{}, batch_data<float, float>(a, c.vocab, c.kind), seed);
      const auto rb = run(TestType{}, batch_data<float, float>(other, c.vocab, c.kind), seed);
      CHECK(ra[4] == rb[6]);
      // And alone, in a batch of one.
      const auto alone = run(TestType{}, batch_data<float, float>({a[4]}, c.vocab, c.kind), seed);
      CHECK(alone[0] == ra[4]);
    }
  }
}

TEMPLATE_TEST_CASE("per-request sampling parameters (stride 1) and broadcast parameters (stride 0)",
                   "[verify][chain][cpu]",
                   ALL_RULES) {
  SECTION("identical per-request parameters equal the broadcast") {
    for (const auto& c : configs()) {
      INFO(c.name);
      const auto reqs = ragged_requests(41, 20, c.vocab, c.kind, {c.params});
      const batch_data<float, float> b(reqs, c.vocab, c.kind);
      CHECK(run(TestType{}, b, 9, 1) == run(TestType{}, b, 9, 0));
    }
  }
  SECTION("mixed per-request parameters: each request uses its own") {
    sampling::sampling_params top_k1;
    top_k1.top_k = 1;
    sampling::sampling_params hot;
    hot.temperature = 2.5f;
    hot.min_p = 0.3f;
    const std::vector<sampling::sampling_params> mixed{
        params_t1(), params_truncated(), params_greedy(), top_k1, hot};
    for (const auto kind : {distribution_kind::logits, distribution_kind::probabilities}) {
      const auto reqs = ragged_requests(43, 40, 37, kind, mixed);
      const batch_data<float, float> b(reqs, 37, kind);
      const auto got = run(TestType{}, b, 10, 1);
      for (std::size_t i = 0; i < reqs.size(); ++i) {
        INFO("request " << i);
        CHECK(got[i] == run_single<float, float>(TestType{}, reqs[i], kind, 10));
      }
      // Broadcasting the first request's parameters is a different problem for the others: it
      // must equal the batch whose every request carries those parameters.
      auto same = reqs;
      for (auto& r : same)
        r.params = reqs[0].params;
      CHECK(run(TestType{}, b, 10, 0)
            == run(TestType{}, batch_data<float, float>(same, 37, kind), 10, 1));
    }
  }
}

TEMPLATE_TEST_CASE("same seed, same results; a different seed changes some result",
                   "[verify][chain][cpu]",
                   ALL_RULES) {
  const auto reqs = ragged_requests(51, 200, 23, distribution_kind::logits, {params_t1()});
  const batch_data<float, float> b(reqs, 23, distribution_kind::logits);
  const auto first = run(TestType{}, b, 1000);
  CHECK(run(TestType{}, b, 1000) == first);
  CHECK(run(TestType{}, batch_data<float, float>(reqs, 23, distribution_kind::logits), 1000)
        == first);
  std::size_t differ = 0;
  for (std::uint64_t seed : {1001ull, 1ull << 40}) {
    const auto other = run(TestType{}, b, seed);
    for (std::size_t i = 0; i < reqs.size(); ++i)
      differ += other[i] == first[i] ? 0 : 1;
  }
  CAPTURE(differ);
  if (std::is_same_v<TestType, verify::greedy>)
    CHECK(differ == 0); // greedy verification draws nothing
  else
    CHECK(differ > 0);
}

TEMPLATE_TEST_CASE("the result depends on the request id and position, not on the slot",
                   "[verify][chain][cpu]",
                   ALL_RULES) {
  // Changing every request's id (or position) changes some result for a stochastic rule.
  const auto reqs = ragged_requests(53, 200, 23, distribution_kind::logits, {params_t1()});
  const auto base =
      run(TestType{}, batch_data<float, float>(reqs, 23, distribution_kind::logits), 3);
  auto new_ids = reqs, new_positions = reqs;
  for (auto& r : new_ids)
    r.id ^= 1ull << 33; // only the high word of the id
  for (auto& r : new_positions)
    r.position += 1;
  std::size_t differ_id = 0, differ_pos = 0;
  const auto by_id =
      run(TestType{}, batch_data<float, float>(new_ids, 23, distribution_kind::logits), 3);
  const auto by_pos =
      run(TestType{}, batch_data<float, float>(new_positions, 23, distribution_kind::logits), 3);
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    differ_id += by_id[i] == base[i] ? 0 : 1;
    differ_pos += by_pos[i] == base[i] ? 0 : 1;
  }
  CAPTURE(differ_id, differ_pos);
  if (std::is_same_v<TestType, verify::greedy>) {
    CHECK(differ_id == 0);
    CHECK(differ_pos == 0);
  } else {
    CHECK(differ_id > 0);
    CHECK(differ_pos > 0);
  }
}

namespace {
/// 16-bit rows: the batch equals per-request verification in the same types and the float batch
/// holding the rounded values (every rule reads rows as float, so the results are identical).
template <class TT, class TD, class Policy>
void check_mixed_types(const Policy& policy) {
  for (const auto& c : configs()) {
    INFO(c.name);
    const auto reqs = ragged_requests<TD>(61, 25, c.vocab, c.kind, {c.params});
    const batch_data<TT, TD> b(reqs, c.vocab, c.kind);
    const auto got = run(policy, b, 4);
    auto rounded_reqs = reqs;
    for (auto& r : rounded_reqs) {
      for (auto& x : r.target)
        x = rounded<TT>(x);
      for (auto& x : r.draft)
        x = rounded<TD>(x);
    }
    const auto as_float = run(policy, batch_data<float, float>(rounded_reqs, c.vocab, c.kind), 4);
    CHECK(got == as_float);
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      INFO("request " << i);
      CHECK(got[i] == run_single<TT, TD>(policy, reqs[i], c.kind, 4));
      CHECK((got[i].bits & row_status::error_mask) == 0);
    }
  }
}
} // namespace

TEMPLATE_TEST_CASE("half and bfloat16 target rows with float drafts",
                   "[verify][chain][cpu]",
                   ALL_RULES) {
  SECTION("half target, float draft") {
    check_mixed_types<half, float>(TestType{});
  }
  SECTION("bfloat16 target, float draft") {
    check_mixed_types<bfloat16, float>(TestType{});
  }
  SECTION("float target, bfloat16 draft") {
    check_mixed_types<float, bfloat16>(TestType{});
  }
}

TEMPLATE_TEST_CASE("padded row strides give the same results as dense rows",
                   "[verify][chain][cpu]",
                   ALL_RULES) {
  for (const auto& c : configs()) {
    INFO(c.name);
    const auto reqs = ragged_requests(71, 20, c.vocab, c.kind, {c.params});
    const auto dense = run(TestType{}, batch_data<float, float>(reqs, c.vocab, c.kind, 0), 8);
    const auto padded = run(TestType{}, batch_data<float, float>(reqs, c.vocab, c.kind, 13), 8);
    CHECK(dense == padded);
  }
}
