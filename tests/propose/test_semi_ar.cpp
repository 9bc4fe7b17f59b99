// SPDX-License-Identifier: Apache-2.0
// DSpark semi-autoregressive drafting (shared/specs/dspark.md sections 5 and 6): the golden cases
// G1 (tie conventions in the loop), G4 (vanilla Markov), G5 (gated), G6 (RNN) and G7 (confidence
// head and threshold cut); float vs bfloat16 head weights; bad input; the head file format; and
// semi_ar_drafter end to end over a toy parallel backbone.

#include <specdec/calib/threshold.hpp>
#include <specdec/core/diagnostics.hpp>
#include <specdec/propose/semi_ar.hpp>
#include <specdec/propose/semi_ar_heads_io.hpp>
#include <specdec/sched/confidence_length.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

using namespace specdec;
using propose::head_kind;

namespace {

const cpu::serial_executor ex{};
constexpr double tol = 1e-6;
constexpr float ninf = -std::numeric_limits<float>::infinity();

template <class I>
constexpr std::size_t ix(I i) {
  return static_cast<std::size_t>(i);
}

sampling::sampling_params greedy() {
  sampling::sampling_params sp;
  sp.temperature = 0.0f;
  return sp;
}

template <class W>
std::vector<W> to_w(const std::vector<float>& v) {
  std::vector<W> out;
  for (float x : v)
    out.push_back(dtype_traits<W>::from_float(x));
  return out;
}

// G4 data: V = 5, r = 2, gamma = 3, anchor 3.
const std::vector<float> g4_w1{1, 0, 0, 1, 1, 1, -1, 0, 0, -1};
const std::vector<float> g4_w2{2, 0, 0, 2, 1, -1, -1, 1, .5f, .5f};
const std::vector<float> g4_u{0, 1.5f, 0, .2f, 0, 1, 0, .3f, .2f, .1f, 0, -3, .5f, 0, 0};
// G5 hidden states (d = 2), also used by G7.
const std::vector<float> g5_h{1, 0, 0, 1, .5f, -.5f};

propose::sequential_head<float> g4_head() {
  propose::sequential_head<float> h;
  h.kind = head_kind::markov;
  h.vocab = 5;
  h.rank = 2;
  h.hidden = 2;
  h.w1 = g4_w1;
  h.w2 = g4_w2;
  return h;
}

propose::sequential_head<float> g5_head() {
  propose::sequential_head<float> h = g4_head();
  h.kind = head_kind::gated;
  h.proj_w = {1, 0, .5f, 0, 0, 1, 0, .5f};
  h.proj_b = {0, -1};
  return h;
}

// G6 data: V = 3, r = 1, d = 1, anchor 0.
propose::sequential_head<float> g6_head() {
  propose::sequential_head<float> h;
  h.kind = head_kind::rnn;
  h.vocab = 3;
  h.rank = 1;
  h.hidden = 1;
  h.w1 = {1, -1, .5f};
  h.w2 = {1, -1, 2};
  h.proj_w = {.5f, 1, 0, 1, .5f, 1, 0, 1, -1};
  h.proj_b = {0, 0, .5f};
  return h;
}
const std::vector<float> g6_u{0, 0, 0, .2f, 0, .1f, 0, .3f, 0};
const std::vector<float> g6_h{1, -1, .5f};

propose::confidence_head<float> g7_conf() {
  propose::confidence_head<float> c;
  c.w = {1, -.5f, .8f, .3f};
  c.bias = .2f;
  c.hidden = 2;
  c.rank = 2;
  return c;
}

/// The result of one sample_block call on owned buffers.
struct block_run {
  status st;
  int length = 0;
  index_t vocab = 0;
  std::vector<token_id> tokens;
  std::vector<float> logits;
  std::vector<float> z;
  std::vector<float> row(index_t k) const {
    return {logits.begin() + k * vocab, logits.begin() + (k + 1) * vocab};
  }
};

template <class W>
block_run run_block(const propose::sequential_head_view<W>& head,
                    const propose::confidence_head_view<std::type_identity_t<W>>* conf,
                    token_id anchor,
                    const std::vector<float>& u,
                    index_t vocab,
                    const std::vector<float>& h,
                    index_t hidden,
                    const sampling::sampling_params& sp,
                    const std::vector<float>& uniforms) {
  const index_t gamma = static_cast<index_t>(u.size()) / vocab;
  block_run r;
  r.vocab = vocab;
  r.tokens.assign(ix(gamma), -1);
  r.logits.assign(ix(gamma * vocab), 0.0f);
  r.z.assign(ix(gamma), 0.0f);
  const propose::block_inputs in{
      anchor,
      {u.data(), gamma, vocab, vocab},
      {h.empty() ? nullptr : h.data(), hidden > 0 ? gamma : 0, hidden, hidden},
      {uniforms.empty() ? nullptr : uniforms.data(), static_cast<index_t>(uniforms.size())}};
  propose::block_outputs out{
      {r.tokens.data(), gamma}, {r.logits.data(), gamma, vocab, vocab}, {r.z.data(), gamma}, 0};
  r.st = propose::sample_block(ex, head, conf, in, sp, out);
  r.length = out.length;
  return r;
}

/// Processed probabilities of a logit row.
std::vector<float> probs(const std::vector<float>& logits, const sampling::sampling_params& sp) {
  const sampling::dist_row<float> row{
      logits.data(), static_cast<index_t>(logits.size()), distribution_kind::logits};
  const auto st = sampling::prepare_row(ex, row, sp);
  REQUIRE(st.ok());
  std::vector<float> p;
  for (index_t i = 0; i < row.vocab; ++i)
    p.push_back(sampling::prob_at(row, st, i));
  return p;
}

void check_row(const std::vector<float>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(std::fabs(static_cast<double>(got[i]) - want[i]) < tol);
  }
}

double sigmoid(double z) {
  return 1.0 / (1.0 + std::exp(-z));
}

} // namespace

// ------------------------------------------------------------------------------------------------
// Golden cases
// ------------------------------------------------------------------------------------------------

TEST_CASE("G4: Markov biases B(prev) = W2 W1[prev]", "[dspark][semi_ar][golden]") {
  const auto head = g4_head();
  REQUIRE(head.validate().ok());
  const auto hv = head.view();
  const std::vector<std::vector<double>> want{{2, 0, 1, -1, .5},
                                              {0, 2, -1, 1, .5},
                                              {2, 2, 0, 0, 1},
                                              {-2, 0, -1, 1, -.5},
                                              {0, -2, 1, -1, -.5}};
  for (token_id prev = 0; prev < 5; ++prev) {
    // Heap buffers: g++ -O3 -march=native reports the vectorised dot products over small stack
    // arrays as reading uninitialised lanes (a false positive).
    std::vector<float> e(2), coef(2);
    propose::embedding_row(hv, prev, e.data());
    for (index_t j = 0; j < 2; ++j)
      coef[ix(j)] = propose::head_coefficient(hv, j, e.data(), nullptr, nullptr, nullptr);
    std::vector<float> b;
    for (index_t v = 0; v < 5; ++v)
      b.push_back(propose::head_bias(hv, v, coef.data()));
    CAPTURE(prev);
    check_row(b, want[ix(prev)]);
  }
}

TEST_CASE("G4: greedy Markov block and DFlash block", "[dspark][semi_ar][golden]") {
  const auto head = g4_head();
  const auto r = run_block(head.view(), nullptr, 3, g4_u, 5, {}, 0, greedy(), {});
  REQUIRE(r.st.ok());
  REQUIRE(r.length == 3);
  CHECK(r.tokens == std::vector<token_id>{1, 1, 3});
  check_row(r.row(0), {-2, 1.5, -1, 1.2, -.5});
  check_row(r.row(1), {1, 2, -.7, 1.2, .6});
  check_row(r.row(2), {0, -1, -.5, 1, .5});

  const propose::sequential_head<float> none{};
  REQUIRE(none.validate().ok());
  const auto d = run_block(none.view(), nullptr, 3, g4_u, 5, {}, 0, greedy(), {});
  REQUIRE(d.st.ok());
  CHECK(d.tokens == std::vector<token_id>{1, 0, 2});
  for (index_t k = 0; k < 3; ++k) // L = U exactly
    CHECK(d.row(k) == std::vector<float>(g4_u.begin() + k * 5, g4_u.begin() + (k + 1) * 5));
}

TEST_CASE("G4: T = 1 Markov block with scripted uniforms", "[dspark][semi_ar][golden]") {
  const auto head = g4_head();
  const sampling::sampling_params t1{};
  const auto r = run_block(head.view(), nullptr, 3, g4_u, 5, {}, 0, t1, {.5f, .9f, .2f});
  REQUIRE(r.st.ok());
  CHECK(r.tokens == std::vector<token_id>{1, 4, 2});
  check_row(r.row(2), {0, -5, 1.5, -1, -.5});
  check_row(probs(r.row(0), t1), {.015187, .502908, .041281, .372563, .068061});
  check_row(probs(r.row(1), t1), {.172631, .469261, .031537, .210852, .115718});
  check_row(probs(r.row(2), t1), {.154731, .001043, .693455, .056922, .093849});
}

TEST_CASE("G5: gated Markov head", "[dspark][semi_ar][golden]") {
  const auto head = g5_head();
  REQUIRE(head.validate().ok());
  const auto g = run_block(head.view(), nullptr, 3, g4_u, 5, g5_h, 2, greedy(), {});
  REQUIRE(g.st.ok());
  CHECK(g.tokens == std::vector<token_id>{1, 1, 3});
  check_row(g.row(0), {-1.244919, 1.5, -.622459, .822459, -.311230});
  check_row(g.row(1), {1, 1.244919, -.322459, .822459, .411230});
  check_row(g.row(2), {0, -2.462117, .231059, .268941, .134471});

  const sampling::sampling_params t1{};
  const auto s = run_block(head.view(), nullptr, 3, g4_u, 5, g5_h, 2, t1, {.5f, .9f, .2f});
  REQUIRE(s.st.ok());
  CHECK(s.tokens == std::vector<token_id>{1, 4, 0});
  check_row(probs(s.row(2), t1), {.211576, .008299, .392991, .187800, .199334});
}

TEST_CASE("G6: RNN head, state recurrence and greedy block", "[dspark][semi_ar][golden]") {
  const auto head = g6_head();
  REQUIRE(head.validate().ok());
  const auto hv = head.view();
  // The state and output per step along the greedy path x0 = 0, x = [2, 2, 2].
  const token_id prevs[3] = {0, 2, 2};
  const double want_s[3] = {.243432, -.004880, .236020};
  const double want_o[3] = {.462117, .964028, .462117};
  float s_prev = 0.0f;
  for (int k = 0; k < 3; ++k) {
    // Heap buffers, not scalars: head_coefficient reads h.hidden values through the pointer, and
    // g++ -O3 with AVX-512 or znver3 code reported the address of a scalar as a maybe-uninitialised
    // array read (the warnings build now uses one baseline ISA on every machine).
    std::vector<float> e(1), s_new(1), hk(1, g6_h[ix(k)]);
    propose::embedding_row(hv, prevs[k], e.data());
    const float o = propose::head_coefficient(
        hv, 0, e.data(), hk.data(), k == 0 ? nullptr : &s_prev, s_new.data());
    CAPTURE(k);
    CHECK(std::fabs(static_cast<double>(o) - want_o[k]) < tol);
    CHECK(std::fabs(static_cast<double>(s_new[0]) - want_s[k]) < tol);
    s_prev = s_new[0];
  }
  // A null state_in equals an explicit zero state, bit for bit.
  float e0[1]{}, s1[1]{}, s2[1]{};
  const float zero = 0.0f, h0 = g6_h[0];
  propose::embedding_row(hv, 0, e0);
  CHECK(propose::head_coefficient(hv, 0, e0, &h0, nullptr, s1)
        == propose::head_coefficient(hv, 0, e0, &h0, &zero, s2));
  CHECK(s1[0] == s2[0]);

  const auto r = run_block(hv, nullptr, 0, g6_u, 3, g6_h, 1, greedy(), {});
  REQUIRE(r.st.ok());
  CHECK(r.tokens == std::vector<token_id>{2, 2, 2});
  check_row(r.row(0), {.462117, -.462117, .924234});
  check_row(r.row(1), {1.164028, -.964028, 2.028055});
  check_row(r.row(2), {.462117, -.162117, .924234});
  const sampling::sampling_params t1{};
  check_row(probs(r.row(0), t1), {.335091, .132976, .531933});
  check_row(probs(r.row(1), t1), {.286388, .034100, .679512});
  check_row(probs(r.row(2), t1), {.320194, .171519, .508287});
}

TEST_CASE("G7: confidence logits, conditionals, products and threshold cuts",
          "[dspark][semi_ar][golden]") {
  const auto head = g4_head();
  const auto conf = g7_conf();
  REQUIRE(conf.validate().ok());
  const auto cv = conf.view();
  const auto r = run_block(head.view(), &cv, 3, g4_u, 5, g5_h, 2, greedy(), {});
  REQUIRE(r.st.ok());
  CHECK(r.tokens == std::vector<token_id>{1, 1, 3});
  check_row(r.z, {.4, 0, 1.25});
  std::vector<float> c;
  double a = 1.0;
  const double want_c[3] = {.598688, .5, .777300};
  const double want_a[3] = {.598688, .299344, .232680};
  for (int k = 0; k < 3; ++k) {
    c.push_back(propose::detail::sigmoid_f(r.z[ix(k)]));
    a *= static_cast<double>(c.back());
    CHECK(std::fabs(static_cast<double>(c.back()) - want_c[k]) < tol);
    CHECK(std::fabs(a - want_a[k]) < tol);
  }
  CHECK(calib::threshold_cut(c, 0.0f) == 3);
  CHECK(calib::threshold_cut(c, -1.0f) == 3);
  CHECK(calib::threshold_cut(c, .55f) == 1);
  CHECK(calib::threshold_cut(c, .6f) == 0);
  CHECK(calib::threshold_cut(c, .5f) == 3); // c = .5 is not below .5
  CHECK(calib::threshold_cut(std::vector<float>{.9f, std::nanf(""), .9f}, .5f) == 1);
  CHECK(calib::threshold_cut(std::vector<float>{}, .5f) == 0);
  // Without the Markov feature: z = w[0..d) . h + b.
  auto plain = conf;
  plain.with_markov = false;
  plain.w = {1, -.5f};
  REQUIRE(plain.validate().ok());
  const auto pv = plain.view();
  const auto p = run_block(head.view(), &pv, 3, g4_u, 5, g5_h, 2, greedy(), {});
  REQUIRE(p.st.ok());
  check_row(p.z, {1.2, -.3, .95});
}

TEST_CASE("G1: greedy ties take the first index; u at the ends of [0, 1)",
          "[dspark][semi_ar][golden]") {
  const propose::sequential_head<float> none{};
  const std::vector<float> u{1, 1, 0, 0, 0, 2, 2, 0};
  const auto g = run_block(none.view(), nullptr, 0, u, 4, {}, 0, greedy(), {});
  REQUIRE(g.st.ok());
  CHECK(g.tokens == std::vector<token_id>{0, 1});
  // u = 0 draws the first token with mass; u just below 1 the last one (-inf has no mass).
  const std::vector<float> m{ninf, 0, 0, ninf, ninf, 0, 0, ninf};
  const auto s = run_block(none.view(), nullptr, 0, m, 4, {}, 0, {}, {0.0f, 0.99999994f});
  REQUIRE(s.st.ok());
  CHECK(s.tokens == std::vector<token_id>{1, 2});
}

// ------------------------------------------------------------------------------------------------
// float vs bfloat16 weights
// ------------------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("head math: bfloat16 weights equal float weights rounded to bfloat16",
                   "[dspark][semi_ar][dtype]",
                   float,
                   bfloat16) {
  using W = TestType;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 0.5f);
  const index_t vocab = 40, rank = 8, hidden = 12;
  for (head_kind kind : {head_kind::markov, head_kind::gated, head_kind::rnn}) {
    propose::sequential_head<float> exact; // weights as drawn
    exact.kind = kind;
    exact.vocab = vocab;
    exact.rank = rank;
    exact.hidden = hidden;
    const auto fill = [&](std::vector<float>& v, index_t n) {
      v.resize(ix(n));
      for (float& x : v)
        x = nd(rng);
    };
    fill(exact.w1, vocab * rank);
    fill(exact.w2, vocab * rank);
    if (kind == head_kind::gated) {
      fill(exact.proj_w, rank * (hidden + rank));
      fill(exact.proj_b, rank);
    } else if (kind == head_kind::rnn) {
      fill(exact.proj_w, 3 * rank * (2 * rank + hidden));
      fill(exact.proj_b, 3 * rank);
    }
    // The same head stored as W, and as float holding the W-rounded values.
    propose::sequential_head<W> stored;
    propose::sequential_head<float> rounded = exact;
    stored.kind = kind;
    stored.vocab = vocab;
    stored.rank = rank;
    stored.hidden = hidden;
    stored.w1 = to_w<W>(exact.w1);
    stored.w2 = to_w<W>(exact.w2);
    stored.proj_w = to_w<W>(exact.proj_w);
    stored.proj_b = to_w<W>(exact.proj_b);
    for (auto* v : {&rounded.w1, &rounded.w2, &rounded.proj_w, &rounded.proj_b})
      for (float& x : *v)
        x = dtype_traits<W>::to_float(dtype_traits<W>::from_float(x));
    REQUIRE(stored.validate().ok());
    propose::confidence_head<W> conf;
    conf.hidden = hidden;
    conf.rank = rank;
    std::vector<float> cw;
    fill(cw, hidden + rank);
    conf.w = to_w<W>(cw);
    conf.bias = .1f;
    propose::confidence_head<float> conf_r;
    conf_r.hidden = hidden;
    conf_r.rank = rank;
    conf_r.bias = .1f;
    for (float x : cw)
      conf_r.w.push_back(dtype_traits<W>::to_float(dtype_traits<W>::from_float(x)));

    std::vector<float> u, h;
    fill(u, 4 * vocab);
    fill(h, 4 * hidden);
    const auto cs = conf.view();
    const auto cr = conf_r.view();
    const auto a = run_block(stored.view(), &cs, 5, u, vocab, h, hidden, {}, {.1f, .4f, .7f, .9f});
    const auto b = run_block(rounded.view(), &cr, 5, u, vocab, h, hidden, {}, {.1f, .4f, .7f, .9f});
    const auto c = run_block(exact.view(), &cr, 5, u, vocab, h, hidden, {}, {.1f, .4f, .7f, .9f});
    REQUIRE(a.st.ok());
    REQUIRE(b.st.ok());
    REQUIRE(c.st.ok());
    CAPTURE(static_cast<int>(kind));
    CHECK(a.tokens == b.tokens); // same float values, same operations: bit-identical
    CHECK(a.logits == b.logits);
    CHECK(a.z == b.z);
    // bfloat16 rounding moves the logits by a few 1e-2 at most against the unrounded head.
    float worst = 0.0f;
    for (std::size_t i = 0; i < ix(vocab); ++i) // first row: same previous token (the anchor)
      worst = std::max(worst, std::fabs(a.logits[i] - c.logits[i]));
    CHECK(worst < (std::is_same_v<W, float> ? 1e-6f : 0.05f));
  }
}

// ------------------------------------------------------------------------------------------------
// Bad input
// ------------------------------------------------------------------------------------------------

TEST_CASE("sample_block: bad rows stop the block with a clear error",
          "[dspark][semi_ar][bad_input]") {
  const auto head = g4_head();
  const auto hv = head.view();
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
    auto u = g4_u;
    u[7] = bad; // row 1
    for (const auto& sp : {greedy(), sampling::sampling_params{}}) {
      const auto r = run_block(hv, nullptr, 3, u, 5, {}, 0, sp, {.5f, .9f, .2f});
      CHECK(r.st.code == errc::invalid_value);
      CHECK(r.length == 1);
      CHECK(r.tokens[0] == 1);
    }
  }
  auto u = g4_u;
  for (int v = 10; v < 15; ++v)
    u[ix(v)] = ninf; // row 2 all -inf
  const auto r = run_block(hv, nullptr, 3, u, 5, {}, 0, {}, {.5f, .9f, .2f});
  CHECK(r.st.code == errc::zero_mass_row);
  CHECK(r.length == 2);
  // Some -inf entries are fine (masked tokens).
  u = g4_u;
  u[0] = ninf;
  CHECK(run_block(hv, nullptr, 3, u, 5, {}, 0, {}, {.5f, .9f, .2f}).st.ok());
  // NaN in H reaches the confidence logits: the tokens are complete, the status says so.
  const auto conf = g7_conf();
  const auto cv = conf.view();
  auto h = g5_h;
  h[2] = std::nanf("");
  const auto z = run_block(hv, &cv, 3, g4_u, 5, h, 2, greedy(), {});
  CHECK(z.st.code == errc::invalid_value);
  CHECK(z.length == 3);
}

TEST_CASE("sample_block: argument checks", "[dspark][semi_ar][bad_input]") {
  const auto head = g4_head();
  const auto hv = head.view();
  for (token_id anchor : {-1, 5, 1000})
    CHECK(run_block(hv, nullptr, anchor, g4_u, 5, {}, 0, greedy(), {}).st.code
          == errc::token_out_of_range);
  // U with 6 columns against a 5-token head.
  const std::vector<float> u6(18, 0.0f);
  const auto vm = run_block(hv, nullptr, 3, u6, 6, {}, 0, greedy(), {});
  CHECK(vm.st.code == errc::vocab_mismatch);
  CHECK(vm.length == 0);
  // Sampling needs gamma uniforms.
  CHECK(run_block(hv, nullptr, 3, g4_u, 5, {}, 0, {}, {.5f}).st.code == errc::shape_mismatch);
  // Gated head: H must have the head's hidden size.
  const auto gh = g5_head();
  CHECK(run_block(gh.view(), nullptr, 3, g4_u, 5, {1, 2, 3}, 1, greedy(), {}).st.code
        == errc::shape_mismatch);
  // Confidence head with a rank other than the head's.
  auto conf = g7_conf();
  conf.rank = 1;
  conf.w = {1, 2, 3};
  const auto cv = conf.view();
  CHECK(run_block(hv, &cv, 3, g4_u, 5, g5_h, 2, greedy(), {}).st.code == errc::shape_mismatch);
  // Bad sampling parameters.
  sampling::sampling_params bad;
  bad.top_p = 0.0f;
  CHECK(run_block(hv, nullptr, 3, g4_u, 5, {}, 0, bad, {.5f, .9f, .2f}).st.code
        == errc::invalid_top_p);
  // Output rows narrower than the vocabulary.
  std::vector<token_id> t(3);
  std::vector<float> l(12);
  const propose::block_inputs in{3, {g4_u.data(), 3, 5, 5}, {}, {}};
  propose::block_outputs out{{t.data(), 3}, {l.data(), 3, 4, 4}, {}, 0};
  CHECK(propose::sample_block(ex,
                              hv,
                              static_cast<const propose::confidence_head_view<float>*>(nullptr),
                              in,
                              greedy(),
                              out)
            .code
        == errc::shape_mismatch);
}

TEST_CASE("heads: validate() checks shapes and weights", "[dspark][semi_ar][bad_input]") {
  auto h = g4_head();
  CHECK(h.validate().ok());
  h.w1.pop_back();
  CHECK(h.validate().code == errc::shape_mismatch);
  h = g4_head();
  h.w2[3] = std::nanf("");
  CHECK(h.validate().code == errc::invalid_value);
  h = g4_head();
  h.w2[3] = std::numeric_limits<float>::infinity();
  CHECK(h.validate().code == errc::invalid_value);
  h = g4_head();
  h.proj_b = {1, 2}; // a Markov head has no projection
  CHECK(h.validate().code == errc::shape_mismatch);
  h = g4_head();
  h.rank = 0;
  CHECK(h.validate().code == errc::invalid_argument);
  h = g4_head();
  h.vocab = -1;
  CHECK(h.validate().code == errc::invalid_argument);
  h = g5_head();
  CHECK(h.validate().ok());
  h.proj_w.push_back(0.0f);
  CHECK(h.validate().code == errc::shape_mismatch);
  auto r = g6_head();
  r.proj_b.pop_back();
  CHECK(r.validate().code == errc::shape_mismatch);
  propose::sequential_head<float> none;
  none.rank = 1;
  CHECK(none.validate().code == errc::invalid_argument);
  h = g4_head();
  h.rank = std::numeric_limits<index_t>::max() / 2;
  CHECK(h.validate().code == errc::overflow);
  propose::sequential_head<bfloat16> b;
  b.kind = head_kind::markov;
  b.vocab = 1;
  b.rank = 1;
  b.w1 = to_w<bfloat16>({1.0f});
  b.w2 = to_w<bfloat16>({std::nanf("")});
  CHECK(b.validate().code == errc::invalid_value);

  auto c = g7_conf();
  CHECK(c.validate().ok());
  c.w.pop_back();
  CHECK(c.validate().code == errc::shape_mismatch);
  c = g7_conf();
  c.bias = std::nanf("");
  CHECK(c.validate().code == errc::invalid_value);
  c = g7_conf();
  c.with_markov = false;
  CHECK(c.validate().code == errc::shape_mismatch);
  c.w.resize(2);
  CHECK(c.validate().ok());
}

// ------------------------------------------------------------------------------------------------
// Head file format
// ------------------------------------------------------------------------------------------------

namespace {

/// A unique temporary path, removed when the object goes away.
struct temp_file {
  std::filesystem::path path;
  explicit temp_file(const std::string& name)
      : path(std::filesystem::temp_directory_path()
             / ("specdec_test_semi_ar_" + std::to_string(std::random_device{}()) + "_" + name)) {}
  ~temp_file() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
  std::vector<char> bytes() const {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  }
  void write(const std::vector<char>& b) const {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(b.data(), static_cast<std::streamsize>(b.size()));
  }
};

template <class W>
bool same_head(const propose::sequential_head<W>& a, const propose::sequential_head<W>& b) {
  const auto eq = [](const std::vector<W>& x, const std::vector<W>& y) {
    if (x.size() != y.size())
      return false;
    for (std::size_t i = 0; i < x.size(); ++i)
      if (dtype_traits<W>::to_float(x[i]) != dtype_traits<W>::to_float(y[i]))
        return false;
    return true;
  };
  return a.kind == b.kind && a.vocab == b.vocab && a.rank == b.rank && eq(a.w1, b.w1)
         && eq(a.w2, b.w2) && eq(a.proj_w, b.proj_w) && eq(a.proj_b, b.proj_b)
         && (a.kind == head_kind::markov || a.kind == head_kind::none || a.hidden == b.hidden);
}

} // namespace

TEST_CASE("head files: save / load round trip", "[dspark][semi_ar][io]") {
  const temp_file f("roundtrip.bin");
  for (const auto& head : {g4_head(), g5_head(), g6_head(), propose::sequential_head<float>{}}) {
    for (bool with_conf : {false, true}) {
      if (with_conf && head.kind == head_kind::rnn)
        continue; // G7's confidence head has d = r = 2
      const auto conf = g7_conf();
      propose::confidence_head<float> none_conf = conf;
      none_conf.with_markov = false;
      none_conf.w = {1, -.5f};
      const propose::confidence_head<float>* c =
          with_conf ? (head.kind == head_kind::none ? &none_conf : &conf) : nullptr;
      REQUIRE(propose::save_heads(f.path, head, c).ok());
      propose::sequential_head<float> h2;
      std::optional<propose::confidence_head<float>> c2;
      REQUIRE(propose::load_heads(f.path, h2, c2).ok());
      CAPTURE(static_cast<int>(head.kind), with_conf);
      CHECK(same_head(head, h2));
      REQUIRE(c2.has_value() == with_conf);
      if (with_conf) {
        CHECK(c2->w == c->w);
        CHECK(c2->bias == c->bias);
        CHECK(c2->with_markov == c->with_markov);
        CHECK(c2->hidden == c->hidden);
      }
    }
  }
  // bfloat16: exact round trip; float file loaded as bfloat16 rounds.
  propose::sequential_head<bfloat16> b;
  b.kind = head_kind::markov;
  b.vocab = 5;
  b.rank = 2;
  b.w1 = to_w<bfloat16>(g4_w1);
  b.w2 = to_w<bfloat16>({2.001f, 0, 0, 2, 1, -1, -1, 1, .5f, .5f});
  REQUIRE(propose::save_heads(f.path, b).ok());
  propose::sequential_head<bfloat16> b2;
  std::optional<propose::confidence_head<bfloat16>> bc;
  REQUIRE(propose::load_heads(f.path, b2, bc).ok());
  CHECK(same_head(b, b2));
  CHECK_FALSE(bc.has_value());
  // The documented layout: magic, version 1, kind, flags, then little-endian dimensions.
  const auto bytes = f.bytes();
  REQUIRE(bytes.size() == 48 + 4 * 20);
  CHECK(std::string(bytes.data(), 8) == "SPDKHEAD");
  CHECK(bytes[8] == 1);
  CHECK(bytes[12] == 1);
  CHECK(bytes[16] == 5);
  CHECK(bytes[24] == 2);
  // 1.0f little-endian is 00 00 80 3f (w1[0] = 1).
  CHECK(static_cast<unsigned char>(bytes[48 + 3]) == 0x3f);
  CHECK(static_cast<unsigned char>(bytes[48 + 2]) == 0x80);
}

TEST_CASE("head files: bad files are reported", "[dspark][semi_ar][io][bad_input]") {
  const temp_file f("bad.bin");
  propose::sequential_head<float> h = g4_head();
  std::optional<propose::confidence_head<float>> c;
  const auto conf = g7_conf();
  const auto load = [&] {
    propose::sequential_head<float> out = g6_head();
    const status s = propose::load_heads(f.path, out, c);
    if (!s.ok())
      CHECK(same_head(out, g6_head())); // outputs untouched on failure
    return s.code;
  };
  CHECK(load() == errc::io_error); // no such file yet
  REQUIRE(propose::save_heads(f.path, h, &conf).ok());
  CHECK(load() == errc::ok);
  CHECK(c.has_value());
  const auto good = f.bytes();
  auto b = good;
  b.resize(b.size() - 1); // truncated payload
  f.write(b);
  CHECK(load() == errc::corrupt_data);
  b = good;
  b.resize(20); // truncated header
  f.write(b);
  CHECK(load() == errc::corrupt_data);
  b = good;
  b[0] = 'X'; // wrong magic
  f.write(b);
  CHECK(load() == errc::corrupt_data);
  b = good;
  b[8] = 2; // unknown version
  f.write(b);
  CHECK(load() == errc::unsupported);
  b = good;
  b[12] = 9; // unknown kind
  f.write(b);
  CHECK(load() == errc::corrupt_data);
  b = good;
  b.push_back(0); // trailing bytes
  f.write(b);
  CHECK(load() == errc::corrupt_data);
  b = good;
  b[23] = 0x40; // vocab of 2^62: sizes no longer match the file (and no huge allocation)
  f.write(b);
  CHECK(load() == errc::corrupt_data);
  b = good;
  b[48 + 3] = static_cast<char>(0x7f); // w1[0] = NaN
  b[48 + 2] = static_cast<char>(0xc0);
  f.write(b);
  CHECK(load() == errc::invalid_value);
  // save_heads validates first.
  h.w1.pop_back();
  CHECK(propose::save_heads(f.path, h).code == errc::shape_mismatch);
  CHECK(propose::save_heads(std::filesystem::path("/nonexistent_dir_specdec/x.bin"), g4_head()).code
        == errc::io_error);
}

// ------------------------------------------------------------------------------------------------
// The drafter
// ------------------------------------------------------------------------------------------------

namespace {

/// A toy backbone: G4's base logits and G5's hidden states when the anchor is 3; otherwise
/// logits and hidden states that depend on the anchor and the position.
struct toy_backbone {
  index_t vocab = 5;
  index_t hidden = 2;
  int block = 4;
  int calls = 0;
  status fail{};
  status run_block(const propose::backbone_request& r, matrix_view<float> U, matrix_view<float> H) {
    ++calls;
    if (!fail.ok())
      return fail;
    const token_id anchor = r.context[r.context.size - 1];
    for (index_t k = 0; k < r.gamma; ++k) {
      for (index_t v = 0; v < vocab; ++v)
        U(k, v) = anchor == 3 && k < 3 && vocab == 5
                      ? g4_u[ix(k * 5 + v)]
                      : std::sin(static_cast<float>(anchor * 7 + k * 3 + v));
      for (index_t d = 0; d < hidden; ++d)
        H(k, d) = anchor == 3 && k < 3 && hidden == 2
                      ? g5_h[ix(k * 2 + d)]
                      : std::cos(static_cast<float>(anchor + k * 5 + d));
    }
    return status{};
  }
  index_t vocab_size() const {
    return vocab;
  }
  index_t hidden_size() const {
    return hidden;
  }
  int block_size() const {
    return block;
  }
};

struct no_run_block {
  index_t vocab_size() const {
    return 1;
  }
  index_t hidden_size() const {
    return 1;
  }
  int block_size() const {
    return 1;
  }
};

struct wrong_return {
  int run_block(const propose::backbone_request&, matrix_view<float>, matrix_view<float>) {
    return 0;
  }
  index_t vocab_size() const {
    return 1;
  }
  index_t hidden_size() const {
    return 1;
  }
  int block_size() const {
    return 1;
  }
};

using drafter = propose::semi_ar_drafter<toy_backbone>;
SPECDEC_CHECK(parallel_backbone, toy_backbone);
SPECDEC_CHECK(draft_proposer, drafter);
static_assert(propose::parallel_backbone<toy_backbone>);
static_assert(!propose::parallel_backbone<no_run_block>);
static_assert(!propose::parallel_backbone<wrong_return>);
static_assert(draft_proposer<drafter>);
static_assert(dense_draft_proposer<drafter>);
static_assert(dense_draft_proposer<propose::semi_ar_drafter<toy_backbone, bfloat16>>);

/// A draft block over owned buffers.
struct block_buf {
  std::vector<token_id> tokens;
  std::vector<float> rows;
  draft_block b;
  block_buf(index_t n, index_t vocab)
      : tokens(ix(n), -1)
      , rows(ix(n * vocab), 0.0f) {
    b.tokens = {tokens.data(), n};
    b.probs = {rows.data(), n, vocab, vocab};
  }
};

const std::vector<token_id> ctx{0, 2, 4, 3}; // anchor 3 at position 3

draft_request req(std::int32_t max_tokens, std::uint64_t id = 11) {
  return {id, {ctx.data(), static_cast<index_t>(ctx.size())}, max_tokens};
}

} // namespace

TEST_CASE("drafter: whole blocks, accessors, max_tokens; the theta cut is the length policy's",
          "[dspark][semi_ar][drafter]") {
  toy_backbone bb;
  propose::semi_ar_config cfg;
  cfg.gamma = 3;
  cfg.params = greedy();
  drafter d(bb, g4_head(), g7_conf(), cfg);
  REQUIRE(d.validate().ok());
  CHECK(d.max_draft_len() == 3);
  const double want_c[3] = {.598688, .5, .777300};
  const double want_a[3] = {.598688, .299344, .232680};
  const std::vector<float> want_l{-2, 1.5f, -1, 1.2f, -.5f, 1, 2, -.7f, 1.2f, .6f};
  for (const auto& [theta, length] :
       std::vector<std::pair<float, int>>{{0, 3}, {.55f, 1}, {.6f, 0}}) {
    block_buf buf(4, 5);
    REQUIRE(d.propose(req(4), buf.b).ok());
    CAPTURE(theta);
    CHECK(buf.b.length == 3); // the drafter offers the whole block and never cuts it itself
    sched::threshold_length cut{theta};
    CHECK(cut.choose_with_confidence(d.confidences(), buf.b.length) == length);
    CHECK(buf.b.probs_kind == distribution_kind::logits);
    REQUIRE(d.tokens().size() == 3); // the whole block, also past the cut
    CHECK(std::vector<token_id>(d.tokens().begin(), d.tokens().end())
          == std::vector<token_id>{1, 1, 3});
    REQUIRE(d.confidences().size() == 3);
    REQUIRE(d.cumulative().size() == 3);
    REQUIRE(d.confidence_logits().size() == 3);
    for (std::size_t k = 0; k < 3; ++k) {
      CHECK(std::fabs(d.confidences()[k] - want_c[k]) < tol);
      CHECK(std::fabs(d.cumulative()[k] - want_a[k]) < tol);
    }
    for (int k = 0; k < length; ++k)
      CHECK(buf.tokens[ix(k)] == d.tokens()[ix(k)]);
    if (length >= 2)
      for (std::size_t i = 0; i < 10; ++i)
        CHECK(std::fabs(buf.rows[i] - want_l[i]) < 1e-6f);
  }
  // max_tokens caps the length; the accessors still cover the whole block.
  block_buf buf(4, 5);
  REQUIRE(d.propose(req(2), buf.b).ok());
  CHECK(buf.b.length == 2);
  CHECK(d.tokens().size() == 3);
  // A block with fewer rows than gamma gets the rows copied.
  block_buf small(2, 5);
  REQUIRE(d.propose(req(4), small.b).ok());
  CHECK(small.b.length == 2);
  for (std::size_t i = 0; i < 10; ++i)
    CHECK(std::fabs(small.rows[i] - want_l[i]) < 1e-6f);
  // A zero budget returns at once.
  const int calls = bb.calls;
  REQUIRE(d.propose(req(0), buf.b).ok());
  CHECK(buf.b.length == 0);
  CHECK(bb.calls == calls);
  CHECK(d.tokens().empty());
  // STS temperatures rescale the logits: c_k = sigmoid(z_k / T_k).
  cfg.sts_temperatures = {2.0, 1.0, 0.5};
  d.set_config(cfg);
  REQUIRE(d.propose(req(4), buf.b).ok());
  CHECK(std::fabs(d.confidences()[0] - sigmoid(.2)) < tol);
  CHECK(std::fabs(d.confidences()[2] - sigmoid(2.5)) < tol);
  CHECK(buf.b.length == 3);
  // c = [sigmoid(.2) = .5498, .5, ...] against .54
  CHECK(sched::threshold_length{.54f}.choose_with_confidence(d.confidences(), buf.b.length) == 1);
}

TEST_CASE("drafter: sampled drafts are the documented Philox draws", "[dspark][semi_ar][drafter]") {
  toy_backbone bb;
  bb.vocab = 7;
  bb.hidden = 3;
  propose::sequential_head<float> head;
  head.kind = head_kind::markov;
  head.vocab = 7;
  head.rank = 2;
  for (int i = 0; i < 14; ++i) {
    head.w1.push_back(std::sin(static_cast<float>(i)));
    head.w2.push_back(std::cos(static_cast<float>(i * 3)));
  }
  propose::semi_ar_config cfg;
  cfg.gamma = 4;
  cfg.params.temperature = 0.8f;
  cfg.params.top_k = 4;
  cfg.seed = 1234;
  propose::semi_ar_drafter<toy_backbone> d(bb, head, std::nullopt, cfg);
  block_buf buf(4, 7);
  REQUIRE(d.propose(req(4, 99), buf.b).ok());
  REQUIRE(buf.b.length == 4);
  CHECK(d.confidence_logits().empty());
  for (std::size_t k = 0; k < 4; ++k) {
    CHECK(d.confidences()[k] == 1.0);
    CHECK(d.cumulative()[k] == 1.0);
  }
  // The same block through sample_block with the documented uniforms.
  std::vector<float> u(28), h(12), uni;
  toy_backbone copy = bb;
  REQUIRE(copy.run_block({99, {ctx.data(), 4}, 4}, {u.data(), 4, 7, 7}, {h.data(), 4, 3, 3}).ok());
  const rng_key key{cfg.seed ^ propose::semi_ar_seed_salt, 99};
  for (index_t k = 0; k < 4; ++k)
    uni.push_back(uniform_at(key, 4 + k, draw_purpose::sample));
  const auto r = run_block(head.view(), nullptr, 3, u, 7, {}, 0, cfg.params, uni);
  REQUIRE(r.st.ok());
  CHECK(r.tokens == buf.tokens);
  CHECK(r.logits == buf.rows);
  // Deterministic for a fixed seed; another seed gives another stream.
  block_buf again(4, 7);
  REQUIRE(d.propose(req(4, 99), again.b).ok());
  CHECK(again.tokens == buf.tokens);
  bool differs = false;
  for (std::uint64_t s = 1; s < 20 && !differs; ++s) {
    d.set_seed(s);
    REQUIRE(d.propose(req(4, 99), again.b).ok());
    differs = again.tokens != buf.tokens;
  }
  CHECK(differs);
}

TEST_CASE("drafter: DFlash (no head) drafts the argmax of U", "[dspark][semi_ar][drafter]") {
  toy_backbone bb;
  propose::semi_ar_config cfg;
  cfg.gamma = 3;
  cfg.params = greedy();
  propose::semi_ar_drafter<toy_backbone> d(bb, {}, std::nullopt, cfg);
  block_buf buf(3, 5);
  REQUIRE(d.propose(req(3), buf.b).ok());
  CHECK(buf.b.length == 3);
  CHECK(buf.tokens == std::vector<token_id>{1, 0, 2});
  CHECK(buf.rows == g4_u);
}

TEST_CASE("drafter: bad configuration and input", "[dspark][semi_ar][drafter][bad_input]") {
  toy_backbone bb;
  propose::semi_ar_config cfg;
  cfg.gamma = 3;
  block_buf buf(3, 5);
  const auto code = [&](drafter& d, const draft_request& r) {
    const status s = d.propose(r, buf.b);
    if (!s.ok())
      CHECK(buf.b.length == 0);
    return s.code;
  };
  {
    drafter d(bb, g4_head(), g7_conf(), cfg);
    CHECK(code(d, {1, {ctx.data(), 0}, 3}) == errc::invalid_argument); // empty context
    CHECK(code(d, req(-1)) == errc::invalid_argument);
    const std::vector<token_id> bad_anchor{0, 9};
    CHECK(code(d, {1, {bad_anchor.data(), 2}, 3}) == errc::token_out_of_range);
    block_buf narrow(3, 4);
    CHECK(d.propose(req(3), narrow.b).code == errc::shape_mismatch);
    bb.fail = status{errc::unsupported};
    CHECK(code(d, req(3)) == errc::unsupported);
    bb.fail = status{};
    CHECK(code(d, req(3)) == errc::ok);
    auto c2 = cfg;
    c2.gamma = 5; // above block_size() = 4
    d.set_config(c2);
    CHECK(code(d, req(3)) == errc::invalid_argument);
    c2 = cfg;
    c2.sts_temperatures = {1.0, 2.0}; // fewer than gamma
    d.set_config(c2);
    CHECK(code(d, req(3)) == errc::invalid_argument);
    c2.sts_temperatures = {1.0, 0.0, 1.0};
    d.set_config(c2);
    CHECK(code(d, req(3)) == errc::invalid_argument);
    c2 = cfg;
    c2.params.temperature = -1.0f;
    d.set_config(c2);
    CHECK(code(d, req(3)) == errc::invalid_temperature);
  }
  {
    toy_backbone wide = bb;
    wide.vocab = 6;
    drafter d(wide, g4_head(), std::nullopt, cfg);
    CHECK(d.validate().code == errc::vocab_mismatch);
  }
  {
    toy_backbone deep = bb;
    deep.hidden = 3;
    drafter d(deep, g4_head(), g7_conf(), cfg);
    CHECK(d.validate().code == errc::shape_mismatch);
    drafter g(deep, g5_head(), std::nullopt, cfg);
    CHECK(g.validate().code == errc::shape_mismatch);
  }
  {
    auto h = g4_head();
    h.w1[0] = std::nanf("");
    drafter d(bb, h, std::nullopt, cfg);
    CHECK(d.validate().code == errc::invalid_value);
  }
}
