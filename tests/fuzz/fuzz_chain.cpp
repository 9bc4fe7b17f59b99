// SPDX-License-Identifier: Apache-2.0
//
// Fuzz target: cpu::verify_chain_batch for every chain policy (greedy, rejection_sampling,
// one_hot_rejection, typical_acceptance with fuzzed epsilon / delta, block_verification,
// one_hot_block_verification) over float, half and bfloat16 rows (and float target with
// bfloat16 draft rows), with fuzzed shapes (batch size, ragged draft offsets, vocabulary size up
// to radix-select lengths, padded row strides), sampling parameters (NaN, infinities, negative
// values included), row contents (NaN, +-inf, -0.0, denormals), draft tokens (in and out of
// range), request ids, positions (around max_position and INT64_MAX, negative), seeds, and one
// optional corruption of the batch (offsets, row counts, strides, null pointers, widths,
// parameter stride, batch size).
//
// Properties checked:
//  - validation: the call fails iff a brute-force reading of verify::validate's documented rules
//    finds a problem (and then with one of the codes those rules give), and a failing call writes
//    nothing (every output keeps its sentinel);
//  - outputs in range: 0 <= accepted <= K_b, 0 <= next < V, only defined status flags; the
//    status returned is the errc of the first request with an error flag;
//  - each request's result equals cpu::verify_chain on batch.request(b, needs_draft_rows), and the
//  result
//    of a batch holding only that request, with dense rows (so it depends neither on its slot
//    nor on the other requests, and row padding, filled with NaN, is never read);
//  - greedy: the outcome (accepted, token, flags) is brute-force greedy decoding of the target
//    rows; one_hot_rejection, typical_acceptance and one_hot_block_verification with greedy
//    parameters agree with it on clean requests.

#include <specdec/specdec.hpp>

#include "support/fuzz_input.hpp"
#include "support/gen.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

using namespace specdec;
using specdec_fuzz::reader;
using specdec_fuzz::str;

namespace {

constexpr std::int32_t sentinel_i32 = 0x7eadbeef;
constexpr std::uint32_t sentinel_bits = 0xdeadbeefu;
constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();

/// Everything a fuzzed batch points to, and the batch view (possibly corrupted).
template <class TT, class TD>
struct chain_case {
  std::vector<index_t> offsets;
  std::vector<token_id> tokens;
  std::vector<TT> target;
  std::vector<TD> draft;
  std::vector<sampling::sampling_params> params;
  std::vector<std::uint64_t> ids;
  std::vector<index_t> positions;
  std::vector<std::int32_t> accepted;
  std::vector<token_id> next;
  std::vector<row_status> status;
  verify::chain_batch<TT, TD> batch;
  verify::chain_batch_output out;
  std::string what; // a description for messages
};

/// The problems verify::validate's documentation names for this batch (empty: valid).
template <class TT, class TD>
std::set<errc> problems(const verify::chain_batch<TT, TD>& b,
                        const verify::chain_batch_output& out,
                        bool needs_draft_rows) {
  std::set<errc> p;
  if (b.batch < 0 || b.target.cols <= 0)
    return {errc::invalid_argument};
  if (b.batch == 0)
    return p;
  if (b.draft_offsets == nullptr || b.target.data == nullptr || b.params == nullptr
      || b.request_ids == nullptr || b.positions == nullptr || out.accepted == nullptr
      || out.next == nullptr || out.status == nullptr)
    return {errc::invalid_argument};
  if (b.params_stride != 0 && b.params_stride != 1)
    p.insert(errc::invalid_argument);
  bool offsets_ok = b.draft_offsets[0] == 0;
  if (!offsets_ok)
    p.insert(errc::shape_mismatch);
  for (index_t i = 0; i < b.batch; ++i) {
    index_t k = 0;
    if (__builtin_sub_overflow(b.draft_offsets[i + 1], b.draft_offsets[i], &k) || k < 0) {
      p.insert(errc::shape_mismatch);
      offsets_ok = false;
    } else if (k > INT32_MAX - 1) {
      p.insert(errc::overflow);
      offsets_ok = false;
    }
    if (b.positions[i] < 0)
      p.insert(errc::invalid_argument);
    else if (b.positions[i] > max_position)
      p.insert(errc::overflow);
  }
  if (offsets_ok) {
    const index_t total = b.draft_offsets[b.batch];
    if (total > 0 && b.tokens == nullptr)
      p.insert(errc::invalid_argument);
    if (b.target.rows != total + b.batch || b.target.row_stride < b.target.cols)
      p.insert(errc::shape_mismatch);
    if (needs_draft_rows && total > 0) {
      if (b.draft.data == nullptr)
        p.insert(errc::invalid_argument);
      else if (b.draft.cols != b.target.cols)
        p.insert(errc::vocab_mismatch);
      else if (b.draft.rows != total || b.draft.row_stride < b.draft.cols)
        p.insert(errc::shape_mismatch);
    }
  }
  if (b.params_stride == 0 || b.params_stride == 1) {
    const index_t n_params = b.params_stride == 0 ? 1 : b.batch;
    for (index_t i = 0; i < n_params; ++i)
      if (const errc e = b.params[i].validate(); e != errc::ok)
        p.insert(e);
  }
  return p;
}

template <class TT, class TD>
void read_case(reader& in, bool needs_draft, chain_case<TT, TD>& c) {
  const auto batch = in.range<index_t>(0, 5);
  c.offsets.assign(1, 0);
  for (index_t b = 0; b < batch; ++b)
    c.offsets.push_back(c.offsets.back() + in.range<index_t>(0, 5));
  const index_t total = c.offsets.back();
  const std::uint8_t vsel = in.u8();
  const index_t vocab = vsel < 200   ? in.range<index_t>(1, 24)
                        : vsel < 250 ? in.range<index_t>(25, 100)
                                     : in.range<index_t>(513, 600);
  const index_t tstride = vocab + in.range<index_t>(0, 2);
  const index_t dstride = vocab + in.range<index_t>(0, 2);
  const std::uint8_t kinds = in.u8();
  const bool tprobs = (kinds & 1u) != 0;
  const bool dprobs = (kinds & 2u) != 0;
  const bool copy = (kinds & 4u) != 0; // draft rows equal to the target rows (q == p)
  // Padding (elements past the vocabulary) is NaN: reading it would change the results.
  c.target.assign(static_cast<std::size_t>((total + batch) * tstride),
                  specdec_fuzz::element<TT>(nan_f));
  c.draft.assign(static_cast<std::size_t>(total * dstride), specdec_fuzz::element<TD>(nan_f));
  for (index_t r = 0; r < total + batch; ++r)
    specdec_fuzz::read_row(in, c.target.data() + r * tstride, vocab, tprobs);
  for (index_t b = 0; b < batch; ++b)
    for (index_t j = c.offsets[b]; j < c.offsets[b + 1]; ++j) {
      TD* row = c.draft.data() + j * dstride;
      if (copy)
        for (index_t i = 0; i < vocab; ++i)
          row[i] = specdec_fuzz::element<TD>(load_as_float(c.target.data(), (j + b) * tstride + i));
      else
        specdec_fuzz::read_row(in, row, vocab, dprobs);
    }
  for (index_t b = 0; b < batch; ++b)
    for (index_t j = c.offsets[b]; j < c.offsets[b + 1]; ++j) {
      const auto tb =
          specdec_fuzz::brute_greedy_row(c.target.data() + (j + b) * tstride, vocab, tprobs);
      const auto db = specdec_fuzz::brute_greedy_row(c.draft.data() + j * dstride, vocab, dprobs);
      c.tokens.push_back(specdec_fuzz::read_token(in, vocab, tb.best, db.best));
    }
  const std::uint8_t ssel = in.u8() % 8;
  const index_t params_stride = ssel < 4 ? 0 : ssel < 7 ? 1 : in.range<index_t>(-2, 3);
  const index_t n_params = params_stride == 1 ? batch : 1;
  for (index_t i = 0; i < n_params; ++i)
    c.params.push_back(specdec_fuzz::read_params(in, vocab));
  for (index_t b = 0; b < batch; ++b) {
    c.ids.push_back(in.flag() ? in.u8() : in.u64());
    c.positions.push_back(specdec_fuzz::read_position(in));
  }
  c.accepted.assign(static_cast<std::size_t>(batch), sentinel_i32);
  c.next.assign(static_cast<std::size_t>(batch), sentinel_i32);
  c.status.assign(static_cast<std::size_t>(batch), row_status{sentinel_bits});

  auto& v = c.batch;
  v.batch = batch;
  v.draft_offsets = c.offsets.data();
  v.tokens = c.tokens.empty() ? nullptr : c.tokens.data();
  v.target = {c.target.empty() ? nullptr : c.target.data(), total + batch, vocab, tstride};
  v.draft = {c.draft.empty() ? nullptr : c.draft.data(), total, vocab, dstride};
  v.target_kind = tprobs ? distribution_kind::probabilities : distribution_kind::logits;
  v.draft_kind = dprobs ? distribution_kind::probabilities : distribution_kind::logits;
  v.params = c.params.data();
  v.params_stride = params_stride;
  v.request_ids = c.ids.empty() ? nullptr : c.ids.data();
  v.positions = c.positions.empty() ? nullptr : c.positions.data();
  v.seed = in.u64();
  c.out = {c.accepted.empty() ? nullptr : c.accepted.data(),
           c.next.empty() ? nullptr : c.next.data(),
           c.status.empty() ? nullptr : c.status.data()};

  // One optional corruption.
  const std::uint8_t m = in.u8() % 20;
  const index_t i_off = batch > 0 ? in.range<index_t>(0, batch) : 0;
  switch (m) {
  case 10:
    c.offsets[0] = in.flag() ? in.range<index_t>(1, 4) : in.i64();
    break;
  case 11:
    c.offsets[static_cast<std::size_t>(i_off)] = in.i64();
    // Known finding (tests/fuzz/README.md): validate subtracts offsets without overflow checks.
    if (specdec_fuzz::skip_known("offset_overflow"))
      c.offsets[static_cast<std::size_t>(i_off)] %= 1000;
    break;
  case 12: // a valid reshape: move an inner boundary between its neighbours
    if (i_off > 0 && i_off < batch)
      c.offsets[static_cast<std::size_t>(i_off)] =
          in.range<index_t>(c.offsets[static_cast<std::size_t>(i_off - 1)],
                            c.offsets[static_cast<std::size_t>(i_off + 1)]);
    break;
  case 13:
    v.target.rows += in.flag() ? 1 : -1;
    break;
  case 14:
    v.target.row_stride = vocab - in.range<index_t>(1, vocab);
    break;
  case 15:
    switch (in.u8() % 10) {
    case 0:
      v.draft_offsets = nullptr;
      break;
    case 1:
      v.tokens = nullptr;
      break;
    case 2:
      v.target.data = nullptr;
      break;
    case 3:
      v.params = nullptr;
      break;
    case 4:
      v.request_ids = nullptr;
      break;
    case 5:
      v.positions = nullptr;
      break;
    case 6:
      c.out.accepted = nullptr;
      break;
    case 7:
      c.out.next = nullptr;
      break;
    case 8:
      c.out.status = nullptr;
      break;
    default:
      v.draft.data = nullptr;
      break;
    }
    break;
  case 16:
    v.batch = in.flag() ? -in.range<index_t>(1, 3) : (batch > 0 ? batch - 1 : 0);
    break;
  case 17:
    v.target.cols = in.range<index_t>(-1, vocab + 2);
    break;
  case 18:
    switch (in.u8() % 3) {
    case 0:
      v.draft.cols += in.flag() ? 1 : -1;
      break;
    case 1:
      v.draft.rows += in.flag() ? 1 : -1;
      break;
    default:
      // Any stride where the policy reads no draft row (validate() then ignores the draft
      // layout); else one below the width (a stride >= the width would be a valid claim about
      // a buffer this harness does not have).
      if (needs_draft || specdec_fuzz::skip_known("unchecked_draft_layout"))
        v.draft.row_stride = vocab - 1;
      else
        v.draft.row_stride = in.flag() ? vocab - 1 : in.i64();
      break;
    }
    break;
  case 19:
    v.params_stride = in.flag() ? 2 : -1;
    break;
  default:
    break;
  }
  c.what = "B " + std::to_string(v.batch) + " V " + std::to_string(v.target.cols) + " dtype "
           + dtype_traits<TT>::name + "/" + dtype_traits<TD>::name + " corruption "
           + std::to_string(m);
}

/// Brute-force greedy decoding of a request's target rows: accepted drafts, token and flags.
template <class TT, class TD>
verify::chain_outcome brute_greedy(const verify::chain_request<TT, TD>& r) {
  verify::chain_outcome o;
  const bool probs = r.target_kind == distribution_kind::probabilities;
  for (std::int32_t k = 0; k <= r.num_drafts; ++k) {
    const auto g = specdec_fuzz::brute_greedy_row(r.target + k * r.target_stride, r.vocab, probs);
    o.accepted = k;
    o.next = static_cast<token_id>(g.best >= 0 ? g.best : 0);
    if (g.invalid) {
      o.status.set(row_status::target_invalid);
      return o;
    }
    if (g.zero_mass) {
      o.status.set(row_status::target_zero_mass);
      return o;
    }
    if (k == r.num_drafts || r.tokens[k] != g.best) {
      if (k < r.num_drafts && !r.token_in_range(k))
        o.status.set(row_status::token_out_of_range);
      return o;
    }
  }
  return o;
}

std::string outcome_str(const verify::chain_outcome& o) {
  return "{accepted " + std::to_string(o.accepted) + ", next " + std::to_string(o.next) + ", flags "
         + std::to_string(o.status.bits) + "}";
}

template <class Policy, class TT, class TD>
void check(const Policy& policy, const char* name, chain_case<TT, TD>& c) {
  const verify::chain_batch<TT, TD>& b = c.batch;
  const std::set<errc> expect = problems(b, c.out, Policy::needs_draft_rows);
  const status s = cpu::verify_chain_batch(policy, b, c.out);
  const std::string what = std::string(name) + ", " + c.what + ": ";
  if (specdec_fuzz::verbose())
    std::fprintf(stderr,
                 "  %s status %d, %zu problems\n",
                 what.c_str(),
                 static_cast<int>(s.code),
                 expect.size());

  if (!expect.empty()) {
    FUZZ_CHECK(!s.ok(), what + "a bad batch was accepted");
    FUZZ_CHECK(expect.count(s.code) == 1,
               what + "error " + s.message() + " is not among the problems of the batch");
    for (std::size_t i = 0; i < c.accepted.size(); ++i)
      FUZZ_CHECK(c.accepted[i] == sentinel_i32 && c.next[i] == sentinel_i32
                     && c.status[i].bits == sentinel_bits,
                 what + "an output was written by a failing call");
    return;
  }
  errc first_bad = errc::ok;
  for (index_t i = 0; i < b.batch; ++i) {
    const verify::chain_request<TT, TD> req = b.request(i, Policy::needs_draft_rows);
    const verify::chain_outcome got{c.accepted[static_cast<std::size_t>(i)],
                                    c.next[static_cast<std::size_t>(i)],
                                    c.status[static_cast<std::size_t>(i)]};
    const std::string at = what + "request " + std::to_string(i) + " (K "
                           + std::to_string(req.num_drafts) + ", position "
                           + std::to_string(req.position) + ") " + outcome_str(got) + ": ";
    FUZZ_CHECK(got.accepted >= 0 && got.accepted <= req.num_drafts, at + "accepted out of range");
    FUZZ_CHECK(got.next >= 0 && got.next < req.vocab, at + "next token out of range");
    FUZZ_CHECK((got.status.bits & ~0x3ffu) == 0u, at + "undefined status flags");
    if (first_bad == errc::ok)
      first_bad = got.status.to_errc();

    // Request alone, through the single-request entry point.
    const verify::chain_outcome direct =
        cpu::verify_chain(policy, req, rng_key{b.seed, b.request_ids[i]});
    FUZZ_CHECK(direct == got, at + "cpu::verify_chain gives " + outcome_str(direct));

    // Request alone in a batch of one, dense rows.
    const index_t k = req.num_drafts;
    const index_t vocab = req.vocab;
    std::vector<TT> target(static_cast<std::size_t>((k + 1) * vocab));
    for (index_t r = 0; r <= k; ++r)
      for (index_t e = 0; e < vocab; ++e)
        target[static_cast<std::size_t>(r * vocab + e)] = req.target[r * req.target_stride + e];
    std::vector<TD> draft;
    if (req.draft != nullptr && Policy::needs_draft_rows) {
      draft.resize(static_cast<std::size_t>(k * vocab));
      for (index_t r = 0; r < k; ++r)
        for (index_t e = 0; e < vocab; ++e)
          draft[static_cast<std::size_t>(r * vocab + e)] = req.draft[r * req.draft_stride + e];
    }
    const index_t offsets[2] = {0, k};
    const sampling::sampling_params params = req.params;
    const std::uint64_t id = b.request_ids[i];
    const index_t position = req.position;
    verify::chain_batch<TT, TD> one;
    one.batch = 1;
    one.draft_offsets = offsets;
    one.tokens = req.tokens;
    one.target = {target.data(), k + 1, vocab, vocab};
    one.draft = {draft.empty() ? nullptr : draft.data(), draft.empty() ? 0 : k, vocab, vocab};
    one.target_kind = b.target_kind;
    one.draft_kind = b.draft_kind;
    one.params = &params;
    one.request_ids = &id;
    one.positions = &position;
    one.seed = b.seed;
    std::int32_t acc = sentinel_i32;
    token_id nxt = sentinel_i32;
    row_status st{sentinel_bits};
    const status s1 = cpu::verify_chain_batch(policy, one, {&acc, &nxt, &st});
    const verify::chain_outcome alone{acc, nxt, st};
    FUZZ_CHECK(s1.code == st.to_errc(), at + "alone: status " + s1.message());
    FUZZ_CHECK(alone == got, at + "alone in a batch it gives " + outcome_str(alone));

    // Greedy decoding, brute force.
    const bool greedy_params = req.params.greedy();
    if constexpr (std::is_same_v<Policy, verify::greedy>) {
      const verify::chain_outcome ref = brute_greedy(req);
      FUZZ_CHECK(ref == got, at + "brute-force greedy gives " + outcome_str(ref));
    } else if constexpr (
        std::is_same_v<
            Policy,
            verify::
                one_hot_rejection> || std::is_same_v<Policy, verify::typical_acceptance> || std::is_same_v<Policy, verify::one_hot_block_verification>) {
      // Typical acceptance reduces to greedy when its threshold at entropy 0, min(epsilon,
      // delta), lies in [0, 1): p is one-hot, so only the argmax passes.
      bool reduces = true;
      if constexpr (std::is_same_v<Policy, verify::typical_acceptance>)
        reduces = policy.threshold(0.0f) >= 0.0f && policy.threshold(0.0f) < 1.0f;
      if (greedy_params && reduces && got.status.bits == 0u) {
        const verify::chain_outcome ref = brute_greedy(req);
        FUZZ_CHECK(ref == got,
                   at + "greedy parameters, brute-force greedy gives " + outcome_str(ref));
      }
    }
  }
  FUZZ_CHECK(s.code == first_bad,
             what + "returned " + s.message()
                 + ", not the errc of the first request with an error");
}

template <class TT, class TD>
void run(reader& in, int policy) {
  chain_case<TT, TD> c;
  // Typical acceptance's thresholds: Medusa's defaults, or anything.
  verify::typical_acceptance typical;
  if (in.u8() >= 200) {
    typical.epsilon = in.value();
    typical.delta = in.value();
  }
  read_case(in, policy == 1 || policy == 4, c); // rejection, block: draft rows
  switch (policy) {
  case 0:
    check(verify::greedy{}, "greedy", c);
    break;
  case 1:
    check(verify::rejection_sampling{}, "rejection_sampling", c);
    break;
  case 2:
    check(verify::one_hot_rejection{}, "one_hot_rejection", c);
    break;
  case 3:
    check(typical, "typical_acceptance", c);
    break;
  case 4:
    check(verify::block_verification{}, "block_verification", c);
    break;
  default:
    check(verify::one_hot_block_verification{}, "one_hot_block_verification", c);
    break;
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { // NOLINT
  reader in(data, size);
  const int policy = in.u8() % 6;
  switch (in.u8() % 4) {
  case 0:
    run<float, float>(in, policy);
    break;
  case 1:
    run<half, half>(in, policy);
    break;
  case 2:
    run<bfloat16, bfloat16>(in, policy);
    break;
  default:
    run<float, bfloat16>(in, policy);
    break;
  }
  return 0;
}

// --- seeds ------------------------------------------------------------------------------------
namespace {

struct request_spec {
  std::vector<std::vector<float>> target; // K + 1 rows
  std::vector<std::vector<float>> draft;  // K rows (unused when the case copies the target)
  std::vector<token_id> tokens;           // K tokens (written as explicit ids)
  std::uint64_t id = 1;
  index_t position = 0;
};

/// A batch of explicit requests (vocabulary <= 8 so that rows are written value by value).
std::vector<std::uint8_t> batch_seed(int policy,
                                     int dtypes,
                                     index_t vocab,
                                     bool probs,
                                     bool copy,
                                     const std::vector<request_spec>& reqs,
                                     int temp,
                                     std::int32_t top_k,
                                     int top_p,
                                     int min_p,
                                     std::uint64_t seed,
                                     int corruption = 0) {
  specdec_fuzz::writer w;
  w.u8(static_cast<std::uint64_t>(policy));
  w.u8(static_cast<std::uint64_t>(dtypes));
  w.u8(0); // typical: default thresholds
  w.range<index_t>(static_cast<index_t>(reqs.size()), 0, 5);
  for (const request_spec& r : reqs)
    w.range<index_t>(static_cast<index_t>(r.tokens.size()), 0, 5);
  w.u8(0); // small vocabulary
  w.range<index_t>(vocab, 1, 24);
  w.range<index_t>(1, 0, 2); // target padding 1
  w.range<index_t>(0, 0, 2); // draft padding 0
  w.u8((probs ? 3u : 0u) | (copy ? 4u : 0u));
  for (const request_spec& r : reqs)
    for (const auto& row : r.target)
      specdec_fuzz::write_row(w, row);
  if (!copy)
    for (const request_spec& r : reqs)
      for (const auto& row : r.draft)
        specdec_fuzz::write_row(w, row);
  for (const request_spec& r : reqs)
    for (token_id t : r.tokens) {
      if (t >= 0 && t < vocab) {
        w.u8(200);
        w.range<token_id>(t, 0, static_cast<token_id>(vocab - 1));
      } else {
        w.u8(255);
        w.u32(static_cast<std::uint32_t>(t));
      }
    }
  w.u8(0); // params stride 0
  specdec_fuzz::write_params(w, temp, top_k, vocab, top_p, min_p);
  for (const request_spec& r : reqs) {
    w.flag(false);
    w.u64(r.id);
    w.u8(9); // any 64-bit position
    w.i64(r.position);
  }
  w.u64(seed);
  w.u8(static_cast<std::uint64_t>(corruption));
  if (!reqs.empty()) // the request / offset the corruption picks: the last
    w.range<index_t>(static_cast<index_t>(reqs.size()), 0, static_cast<index_t>(reqs.size()));
  if (corruption == 11) // that offset becomes INT64_MIN
    w.i64(std::numeric_limits<index_t>::min());
  if (corruption == 13) // one target row too many
    w.flag(true);
  if (corruption == 18) { // a draft row stride of 2^62: d0 * stride overflows for d0 >= 2
    w.u8(2);
    w.flag(false);
    w.i64(std::int64_t{1} << 62);
  }
  return w.bytes();
}

} // namespace

std::vector<specdec_fuzz::seed> specdec_fuzz::seeds() {
  const float ninf = -std::numeric_limits<float>::infinity();
  const float dmin = std::numeric_limits<float>::denorm_min();
  // Two requests over a vocabulary of 4: the first drafts the target's argmax twice, the second
  // one wrong token after a right one.
  const std::vector<request_spec> two = {
      {{{0.f, 3.f, 1.f, 0.f}, {2.f, 0.f, 0.f, 1.f}, {0.f, 0.f, 5.f, 0.f}},
       {{0.f, 2.f, 1.f, 0.f}, {1.f, 0.f, 0.f, 1.f}},
       {1, 0},
       7,
       100},
      {{{1.f, 0.f, 0.f, 0.f}, {0.f, 1.f, 0.f, 0.f}}, {{1.f, 0.f, 0.f, 0.f}}, {3}, 8, 5}};
  // Issue 12: position INT64_MAX with one accepted draft (signed overflow of position + k).
  const std::vector<request_spec> huge_position = {{{{0.f, 4.f, 0.f}, {1.f, 0.f, 0.f}},
                                                    {{0.f, 4.f, 0.f}},
                                                    {1},
                                                    3,
                                                    std::numeric_limits<index_t>::max()}};
  const std::vector<request_spec> at_max_position = {
      {{{0.f, 4.f, 0.f}, {1.f, 0.f, 0.f}}, {{0.f, 4.f, 0.f}}, {1}, 3, max_position}};
  // Issue 12's hang rows inside a batch, with top-p 0.99.
  const std::vector<request_spec> signed_zero = {
      {{{dmin, -0.0f}, {dmin, -0.0f}}, {{dmin, -0.0f}}, {0}, 11, 0}};
  // Bad rows: NaN target, all -inf target, an out-of-range token, nothing drafted.
  const std::vector<request_spec> bad_rows = {
      {{{0.f, std::nanf(""), 1.f}, {0.f, 0.f, 0.f}}, {{0.f, 1.f, 0.f}}, {2}, 1, 0},
      {{{ninf, ninf, ninf}, {0.f, 0.f, 0.f}}, {{0.f, 1.f, 0.f}}, {0}, 2, 0},
      {{{0.f, 0.f, 9.f}, {0.f, 0.f, 0.f}}, {{0.f, 1.f, 0.f}}, {7}, 3, 0},
      {{{1.f, 0.f, 0.f}}, {}, {}, 4, 0}};
  std::vector<specdec_fuzz::seed> out;
  const char* names[6] = {
      "greedy", "rejection", "one_hot_rejection", "typical", "block", "one_hot_block"};
  for (int p = 0; p < 6; ++p) {
    out.push_back({std::string(names[p]) + "_two_requests",
                   batch_seed(p, 0, 4, false, false, two, 4, 0, 0, 0, 42)});
    out.push_back({std::string(names[p]) + "_issue12_int64_max_position",
                   batch_seed(p, 0, 3, false, true, huge_position, 4, 0, 0, 0, 1)});
  }
  out.push_back(
      {"rejection_max_position", batch_seed(1, 0, 3, false, true, at_max_position, 4, 0, 0, 0, 1)});
  out.push_back({"rejection_issue12_signed_zero_top_p",
                 batch_seed(1, 0, 2, false, true, signed_zero, 4, 0, 3, 0, 5)});
  out.push_back({"block_issue12_signed_zero_top_k",
                 batch_seed(4, 0, 2, false, true, signed_zero, 4, 2, 0, 0, 5)});
  out.push_back(
      {"rejection_bad_rows_half", batch_seed(1, 1, 3, false, false, bad_rows, 4, 0, 0, 0, 9)});
  out.push_back(
      {"greedy_bad_rows_bf16", batch_seed(0, 2, 3, false, false, bad_rows, 0, 0, 0, 0, 9)});
  out.push_back({"block_probs_mixed_dtypes", batch_seed(4, 3, 4, true, false, two, 5, 2, 4, 4, 3)});
  out.push_back({"typical_probs_greedy", batch_seed(3, 0, 4, true, false, two, 0, 0, 0, 0, 3)});
  out.push_back(
      {"finding_offsets_int64_min", batch_seed(1, 0, 4, false, false, two, 4, 0, 0, 0, 42, 11)});
  out.push_back(
      {"one_hot_block_corrupt_rows", batch_seed(5, 0, 4, false, false, two, 4, 0, 0, 0, 42, 13)});
  // Finding (tests/fuzz/README.md): request() multiplies a draft row stride that validate()
  // ignores when the policy reads no draft row.
  out.push_back({"finding_greedy_draft_stride_2_62",
                 batch_seed(0, 0, 4, false, false, two, 4, 0, 0, 0, 42, 18)});
  return out;
}
