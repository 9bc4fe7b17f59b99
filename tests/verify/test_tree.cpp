// SPDX-License-Identifier: Apache-2.0
// Tree verification rules, deterministic properties: a chain-shaped tree reproduces every chain
// rule bit for bit; greedy on a tree is chain greedy along the argmax path; at temperature 0 the
// stochastic rules reduce to greedy; typical acceptance keeps the longest accepted path;
// malformed trees and bad rows get their flags and a defined result; the host batch loop equals
// request-by-request verification and rejects bad shapes.

#include <specdec/specdec.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

using namespace specdec;

namespace {

template <class I>
constexpr std::size_t ix(I i) {
  return static_cast<std::size_t>(i);
}

/// Random parents (parents precede children) for n nodes; `shape` 0 random, 1 chain, 2 star.
std::vector<std::int32_t> random_parents(std::mt19937& g, std::int32_t n, int shape) {
  std::vector<std::int32_t> p(ix(n));
  p[0] = -1;
  for (std::int32_t j = 1; j < n; ++j)
    p[ix(j)] = shape == 1   ? j - 1
               : shape == 2 ? 0
                            : std::uniform_int_distribution<std::int32_t>(0, j - 1)(g);
  return p;
}

/// Rows, tokens and parents of one random tree request (one target row per node, one draft row
/// per non-root node).
struct tree_case {
  index_t vocab = 0;
  std::vector<float> target, draft;
  std::vector<token_id> tokens;
  std::vector<std::int32_t> parents;
  verify::tree_request<float, float> request(const sampling::sampling_params& sp,
                                             index_t position = 5) const {
    verify::tree_request<float, float> r;
    r.target = target.data();
    r.target_stride = vocab;
    r.draft = draft.data();
    r.draft_stride = vocab;
    r.tokens = tokens.data();
    r.tree = {parents.data(), static_cast<std::int32_t>(parents.size())};
    r.vocab = vocab;
    r.params = sp;
    r.position = position;
    return r;
  }
};

/// A random case; drafts are the row argmax with probability `hit` (so paths get accepted).
tree_case
make_case(std::mt19937& g, std::vector<std::int32_t> parents, index_t vocab, double hit = 0.6) {
  tree_case c;
  c.vocab = vocab;
  c.parents = std::move(parents);
  const auto n = static_cast<std::int32_t>(c.parents.size());
  std::normal_distribution<float> nd(0.0f, 2.0f);
  c.target.resize(ix(n * vocab));
  c.draft.resize(ix(std::max<std::int32_t>(n - 1, 1) * vocab));
  for (float& x : c.target)
    x = nd(g);
  for (float& x : c.draft)
    x = nd(g);
  c.tokens.resize(ix(n));
  std::uniform_int_distribution<token_id> tok(0, static_cast<token_id>(vocab - 1));
  std::bernoulli_distribution take(hit);
  for (std::int32_t j = 1; j < n; ++j) {
    const float* row = c.target.data() + c.parents[ix(j)] * vocab;
    token_id best = 0;
    for (token_id v = 1; v < vocab; ++v)
      if (row[v] > row[best])
        best = v;
    c.tokens[ix(j)] = take(g) ? best : tok(g);
  }
  return c;
}

/// The chain request over the same storage as a chain-shaped tree case.
verify::chain_request<float, float>
as_chain(const tree_case& c, const sampling::sampling_params& sp, index_t position = 5) {
  verify::chain_request<float, float> r;
  r.target = c.target.data();
  r.target_stride = c.vocab;
  r.draft = c.draft.data();
  r.draft_stride = c.vocab;
  r.tokens = c.tokens.data() + 1;
  r.num_drafts = static_cast<std::int32_t>(c.tokens.size()) - 1;
  r.vocab = c.vocab;
  r.params = sp;
  r.position = position;
  return r;
}

std::vector<sampling::sampling_params> param_sets() {
  sampling::sampling_params t1, t07k, greedy, t08p;
  t07k.temperature = 0.7f;
  t07k.top_k = 5;
  greedy.temperature = 0.0f;
  t08p.temperature = 0.8f;
  t08p.top_p = 0.9f;
  return {t1, t07k, greedy, t08p};
}

template <class Policy>
void check_chain_parity(const Policy& policy) {
  std::mt19937 g(1234);
  const cpu::serial_executor ex{};
  for (int t = 0; t < 400; ++t) {
    const auto k = std::uniform_int_distribution<std::int32_t>(0, 6)(g);
    const tree_case c = make_case(g, random_parents(g, k + 1, 1), 40);
    for (const auto& sp : param_sets()) {
      const philox_uniforms u{rng_key{7, static_cast<std::uint64_t>(t)}};
      const verify::chain_outcome co = policy.verify_chain(ex, as_chain(c, sp), u);
      const verify::tree_outcome to = policy.verify_tree(ex, c.request(sp), u);
      INFO("trial " << t << " k " << k << " T " << sp.temperature);
      REQUIRE(to.accepted == co.accepted);
      REQUIRE(to.last_node == co.accepted); // on a chain, node index = depth
      REQUIRE(to.next == co.next);
      REQUIRE(to.status == co.status);
    }
  }
}

/// The serial executor lending scratch (scratch_executor), as the block executor does: the rule
/// keeps its sibling state in `bytes` instead of a local object. scratch() fills the bytes with
/// a pattern (indeterminate contents); publish counts its calls.
template <bool Dispatch>
struct lending_executor : cpu::serial_executor {
  static constexpr bool runtime_dispatch = Dispatch;
  unsigned char* bytes = nullptr;
  std::size_t size = 0;
  std::size_t* publishes = nullptr;

  template <class T>
  T* scratch() const {
    static_assert(alignof(T) <= 16);
    REQUIRE(sizeof(T) <= size);
    std::fill_n(bytes, size, static_cast<unsigned char>(0xA5));
    return reinterpret_cast<T*>(bytes);
  }
  template <class T>
  void publish(T& dst, const T& v) const {
    const auto* p = reinterpret_cast<const unsigned char*>(&dst);
    CHECK((p >= bytes && p + sizeof(T) <= bytes + size)); // only the scratch is written
    dst = v;
    ++*publishes;
  }
};
static_assert(scratch_executor<lending_executor<false>>);
static_assert(scratch_executor<lending_executor<true>>);
static_assert(!scratch_executor<cpu::serial_executor>);

/// The serial executor with the device's runtime dispatch, lending no scratch.
struct dispatch_executor : cpu::serial_executor {
  static constexpr bool runtime_dispatch = true;
};

/// Multi-draft rejection sampling with a given density and renormalisation (the policies use
/// <true, true> and <false, true>; <., false> is the biased variant).
template <bool Dense, bool Renormalise>
struct tree_rule {
  template <row_executor E, class TT, class TD, uniform_source U>
  verify::tree_outcome
  operator()(const E& ex, const verify::tree_request<TT, TD>& r, const U& u) const {
    return verify::detail::rejection_tree<Dense, Renormalise>(ex, r, u);
  }
};

/// Runs `rule` with the plain executor `Plain` and with the same executor lending scratch, on
/// random trees (stars wider than tree::max_siblings included): bit-identical outcomes.
template <class Plain, bool Dispatch, class Rule>
void check_lent_scratch(const Rule& rule, std::uint32_t seed) {
  std::mt19937 g(seed);
  alignas(16) unsigned char bytes[verify::tree_scratch_bytes<float>];
  std::size_t publishes = 0;
  lending_executor<Dispatch> lend;
  lend.bytes = bytes;
  lend.size = sizeof bytes;
  lend.publishes = &publishes;
  const Plain plain{};
  for (int t = 0; t < 300; ++t) {
    const int shape = t % 3;
    const auto n =
        std::uniform_int_distribution<std::int32_t>(1, shape == 2 ? tree::max_siblings + 4 : 40)(g);
    const tree_case c = make_case(g, random_parents(g, n, shape), 24, 0.3);
    for (const auto& sp : param_sets()) {
      const philox_uniforms u{rng_key{11, static_cast<std::uint64_t>(t)}};
      const verify::tree_outcome a = rule(plain, c.request(sp), u);
      const verify::tree_outcome b = rule(lend, c.request(sp), u);
      INFO("trial " << t << " n " << n << " T " << sp.temperature);
      REQUIRE(a == b);
    }
  }
  CHECK(publishes > 0);
}

} // namespace

TEST_CASE("tree rejection sampling in an executor's scratch gives the same outcomes bit for bit",
          "[verify][tree]") {
  SECTION("rejection sampling") {
    check_lent_scratch<cpu::serial_executor, false>(tree_rule<true, true>{}, 1);
  }
  SECTION("one-hot rejection") {
    check_lent_scratch<cpu::serial_executor, false>(tree_rule<false, true>{}, 2);
  }
  SECTION("the biased variants") {
    check_lent_scratch<cpu::serial_executor, false>(tree_rule<true, false>{}, 3);
    check_lent_scratch<cpu::serial_executor, false>(tree_rule<false, false>{}, 4);
  }
  SECTION("runtime dispatch (the device's functors)") {
    check_lent_scratch<dispatch_executor, true>(tree_rule<true, true>{}, 5);
    check_lent_scratch<dispatch_executor, true>(tree_rule<false, true>{}, 6);
  }
}

TEST_CASE("tree rules on a chain-shaped tree reproduce the chain rules bit for bit",
          "[verify][tree]") {
  SECTION("greedy") {
    check_chain_parity(verify::greedy{});
  }
  SECTION("rejection sampling") {
    check_chain_parity(verify::rejection_sampling{});
  }
  SECTION("one-hot rejection") {
    check_chain_parity(verify::one_hot_rejection{});
  }
  SECTION("typical acceptance") {
    check_chain_parity(verify::typical_acceptance{});
  }
}

TEST_CASE("greedy on a tree equals chain greedy along the argmax path", "[verify][tree]") {
  std::mt19937 g(99);
  const cpu::serial_executor ex{};
  sampling::sampling_params sp;
  sp.temperature = 0.0f;
  for (int t = 0; t < 300; ++t) {
    const auto n = std::uniform_int_distribution<std::int32_t>(1, 40)(g);
    const tree_case c = make_case(g, random_parents(g, n, t % 3), 30, 0.5);
    const verify::tree_outcome to =
        verify::greedy{}.verify_tree(ex, c.request(sp), philox_uniforms{});
    REQUIRE(to.status.ok());
    // The argmax path by brute force, then chain greedy over its tokens and rows.
    const tree::tree_view v{c.parents.data(), n};
    std::vector<std::int32_t> path{0};
    for (;;) {
      const float* row = c.target.data() + path.back() * c.vocab;
      token_id best = 0;
      for (token_id x = 1; x < c.vocab; ++x)
        if (row[x] > row[best])
          best = x;
      std::int32_t next = -1;
      for (std::int32_t j = 1; j < n && next < 0; ++j)
        if (v.parent(j) == path.back() && c.tokens[ix(j)] == best)
          next = j;
      if (next < 0)
        break;
      path.push_back(next);
    }
    std::vector<float> rows;
    std::vector<token_id> toks;
    for (std::size_t d = 0; d < path.size(); ++d) {
      rows.insert(rows.end(),
                  c.target.begin() + path[d] * c.vocab,
                  c.target.begin() + (path[d] + 1) * c.vocab);
      if (d > 0)
        toks.push_back(c.tokens[ix(path[d])]);
    }
    verify::chain_request<float, float> cr;
    cr.target = rows.data();
    cr.target_stride = c.vocab;
    cr.tokens = toks.data();
    cr.num_drafts = static_cast<std::int32_t>(toks.size());
    cr.vocab = c.vocab;
    cr.params = sp;
    const verify::chain_outcome co = verify::greedy{}.verify_chain(ex, cr, philox_uniforms{});
    CHECK(co.accepted == static_cast<std::int32_t>(path.size()) - 1);
    CHECK(to.accepted == co.accepted);
    CHECK(to.last_node == path.back());
    CHECK(to.next == co.next);
  }
}

TEST_CASE("at temperature 0 one-hot tree rejection reduces to greedy", "[verify][tree]") {
  std::mt19937 g(5);
  const cpu::serial_executor ex{};
  sampling::sampling_params sp;
  sp.temperature = 0.0f;
  for (int t = 0; t < 300; ++t) {
    const auto n = std::uniform_int_distribution<std::int32_t>(1, 30)(g);
    const tree_case c = make_case(g, random_parents(g, n, t % 3), 25, 0.5);
    const philox_uniforms u{rng_key{3, static_cast<std::uint64_t>(t)}};
    const verify::tree_outcome gr = verify::greedy{}.verify_tree(ex, c.request(sp), u);
    const verify::tree_outcome oh = verify::one_hot_rejection{}.verify_tree(ex, c.request(sp), u);
    CHECK(oh.accepted == gr.accepted);
    CHECK(oh.last_node == gr.last_node);
    CHECK(oh.next == gr.next);
  }
}

TEST_CASE("typical acceptance on a tree keeps the longest accepted path", "[verify][tree]") {
  // V = 4, target rows: node 0 favours 1 and 2 equally, node 1 (token 1) is a leaf, node 2
  // (token 2) favours 3, node 3 (token 3, under node 2) is a leaf whose row favours 3.
  constexpr index_t V = 4;
  const float lo = -10.0f;
  std::vector<float> target{
      lo, 2.0f, 2.0f, lo, lo, lo, lo, 3.0f, lo, lo, lo, 3.0f, lo, lo, lo, 3.0f};
  std::vector<token_id> tokens{0, 1, 2, 3};
  std::vector<std::int32_t> parents{-1, 0, 0, 2};
  verify::tree_request<float, float> r;
  r.target = target.data();
  r.target_stride = V;
  r.tokens = tokens.data();
  r.tree = {parents.data(), 4};
  r.vocab = V; // temperature 1: node 0 gives tokens 1 and 2 about 0.5 each, both accepted
  const verify::tree_outcome o =
      verify::typical_acceptance{}.verify_tree(cpu::serial_executor{}, r, philox_uniforms{});
  CHECK(o.status.ok());
  CHECK(o.accepted == 2);
  CHECK(o.last_node == 3);
  CHECK(o.next == 3); // node 3's row puts all but e^-13 of its mass on token 3
}

TEST_CASE("malformed trees are flagged; the result is the root row's draw", "[verify][tree]") {
  std::mt19937 g(8);
  const cpu::serial_executor ex{};
  sampling::sampling_params sp;
  sp.temperature = 0.0f;
  tree_case c = make_case(g, random_parents(g, 6, 0), 12);
  token_id root_argmax = 0;
  for (token_id x = 1; x < c.vocab; ++x)
    if (c.target[ix(x)] > c.target[ix(root_argmax)])
      root_argmax = x;
  const std::vector<std::vector<std::int32_t>> bad{
      {0, 0, 1, 2, 3, 4},   // bad root
      {-1, 0, -1, 2, 3, 4}, // second root
      {-1, 0, 7, 2, 3, 4},  // parent out of range
      {-1, 0, 3, 0, 3, 4},  // forward parent
      {-1, 0, 3, 2, 3, 4},  // cycle 2 -> 3 -> 2
      {-1, 0, -5, 2, 3, 4}, // negative parent
  };
  for (const auto& parents : bad) {
    c.parents = parents;
    const auto check = [&](const verify::tree_outcome& o) {
      CHECK(o.status.has(row_status::malformed_tree));
      CHECK_FALSE(o.status.ok());
      CHECK(o.status.to_errc() == errc::malformed_tree);
      CHECK(o.accepted == 0);
      CHECK(o.last_node == 0);
      CHECK(o.next == root_argmax);
    };
    const philox_uniforms u{rng_key{1, 2}};
    check(verify::greedy{}.verify_tree(ex, c.request(sp), u));
    check(verify::rejection_sampling{}.verify_tree(ex, c.request(sp), u));
    check(verify::one_hot_rejection{}.verify_tree(ex, c.request(sp), u));
    check(verify::typical_acceptance{}.verify_tree(ex, c.request(sp), u));
  }
  // No nodes at all.
  verify::tree_request<float, float> empty = c.request(sp);
  empty.tree.num_nodes = 0;
  CHECK(verify::greedy{}
            .verify_tree(ex, empty, philox_uniforms{})
            .status.has(row_status::malformed_tree));
}

TEST_CASE("bad rows and tokens inside a tree get their flags and a defined result",
          "[verify][tree]") {
  std::mt19937 g(21);
  const cpu::serial_executor ex{};
  const sampling::sampling_params sp; // T = 1
  const philox_uniforms u{rng_key{4, 4}};
  const auto star = [&](std::int32_t n) { return make_case(g, random_parents(g, n, 2), 16); };

  SECTION("a NaN row on the accepted path stops there") {
    tree_case c = make_case(g, random_parents(g, 4, 1), 16, 1.0); // chain of argmax drafts
    c.target[ix(2 * c.vocab + 3)] = std::numeric_limits<float>::quiet_NaN();
    c.draft = std::vector<float>(c.draft.size(), 0.0f);
    for (std::int32_t j = 1; j < 4; ++j) // q = the parent's target row: every draft accepted
      std::copy_n(c.target.data() + (j - 1) * c.vocab, c.vocab, c.draft.data() + (j - 1) * c.vocab);
    const verify::tree_outcome o = verify::rejection_sampling{}.verify_tree(ex, c.request(sp), u);
    CHECK(o.status.has(row_status::target_invalid));
    CHECK(o.last_node <= 2);
    CHECK(o.next >= 0);
    CHECK(o.next < c.vocab);
  }
  SECTION("an out-of-range sibling token is flagged") {
    tree_case c = star(4);
    c.tokens[1] = static_cast<token_id>(c.vocab + 3);
    for (const verify::tree_outcome& o :
         {verify::greedy{}.verify_tree(ex, c.request(sp), u),
          verify::rejection_sampling{}.verify_tree(ex, c.request(sp), u),
          verify::one_hot_rejection{}.verify_tree(ex, c.request(sp), u),
          verify::typical_acceptance{}.verify_tree(ex, c.request(sp), u)}) {
      CHECK(o.status.has(row_status::token_out_of_range));
      CHECK(o.next >= 0);
      CHECK(o.next < c.vocab);
    }
  }
  SECTION("a draft giving its own token probability 0 is rejected and flagged") {
    tree_case c = star(3);
    c.draft[ix(0 * c.vocab + c.tokens[1])] = -std::numeric_limits<float>::infinity();
    const verify::tree_outcome o = verify::rejection_sampling{}.verify_tree(ex, c.request(sp), u);
    CHECK(o.status.has(row_status::zero_draft_probability));
    CHECK(o.last_node != 1);
  }
  SECTION("more than tree::max_siblings children: the extra ones are not tried") {
    tree_case c = star(tree::max_siblings + 5);
    const verify::tree_outcome o = verify::rejection_sampling{}.verify_tree(ex, c.request(sp), u);
    if (o.accepted == 0)
      CHECK(o.status.has(row_status::malformed_tree));
    CHECK(o.last_node <= tree::max_siblings);
    CHECK(o.next >= 0);
    CHECK(o.next < c.vocab);
  }
}

TEST_CASE("the host tree batch equals request-by-request verification", "[verify][tree][cpu]") {
  std::mt19937 g(77);
  constexpr index_t V = 20;
  std::vector<tree_case> cases;
  std::vector<index_t> offsets{0};
  std::vector<float> target, draft;
  std::vector<token_id> tokens;
  std::vector<std::int32_t> parents;
  for (int b = 0; b < 12; ++b) {
    cases.push_back(make_case(g, random_parents(g, 1 + b % 7, b % 3), V));
    tree_case& c = cases.back();
    if (b == 5)
      c.parents[ix(c.parents.size() - 1)] = static_cast<std::int32_t>(c.parents.size()); // bad
    if (b == 8)
      c.target[3] = std::numeric_limits<float>::quiet_NaN();
    c.draft.resize(ix((c.parents.size() - 1) * V)); // exactly one draft row per non-root node
    offsets.push_back(offsets.back() + static_cast<index_t>(c.parents.size()));
    target.insert(target.end(), c.target.begin(), c.target.end());
    draft.insert(draft.end(), c.draft.begin(), c.draft.end());
    tokens.insert(tokens.end(), c.tokens.begin(), c.tokens.end());
    parents.insert(parents.end(), c.parents.begin(), c.parents.end());
  }
  const auto B = static_cast<index_t>(cases.size());
  const sampling::sampling_params sp;
  std::vector<std::uint64_t> ids(ix(B));
  std::vector<index_t> positions(ix(B));
  for (index_t b = 0; b < B; ++b) {
    ids[ix(b)] = 100 + static_cast<std::uint64_t>(b);
    positions[ix(b)] = 3 * b;
  }
  verify::tree_batch<float> batch;
  batch.batch = B;
  batch.node_offsets = offsets.data();
  batch.tokens = tokens.data();
  batch.parents = parents.data();
  batch.target = {target.data(), offsets.back(), V, V};
  batch.draft = {draft.data(), static_cast<index_t>(draft.size()) / V, V, V};
  batch.params = &sp;
  batch.request_ids = ids.data();
  batch.positions = positions.data();
  batch.seed = 42;
  std::vector<std::int32_t> acc(ix(B)), last(ix(B));
  std::vector<token_id> next(ix(B));
  std::vector<row_status> st(ix(B));
  const verify::tree_batch_output out{acc.data(), last.data(), next.data(), st.data()};
  const status s = cpu::verify_tree_batch(verify::rejection_sampling{}, batch, out);
  CHECK(s.code == errc::malformed_tree); // request 5 comes first among the bad ones
  for (index_t b = 0; b < B; ++b) {
    const verify::tree_outcome o = cpu::verify_tree(verify::rejection_sampling{},
                                                    cases[ix(b)].request(sp, positions[ix(b)]),
                                                    rng_key{42, ids[ix(b)]});
    CHECK(acc[ix(b)] == o.accepted);
    CHECK(last[ix(b)] == o.last_node);
    CHECK(next[ix(b)] == o.next);
    CHECK(st[ix(b)] == o.status);
    CHECK(st[ix(b)].ok() == (b != 5 && b != 8));
  }

  SECTION("bad shapes are rejected before anything is written") {
    std::vector<index_t> bad_offsets = offsets;
    bad_offsets[3] = bad_offsets[2]; // request 2 without nodes
    verify::tree_batch<float> b2 = batch;
    b2.node_offsets = bad_offsets.data();
    CHECK(cpu::verify_tree_batch(verify::greedy{}, b2, out).code == errc::shape_mismatch);
    b2 = batch;
    b2.target.rows -= 1;
    CHECK(cpu::verify_tree_batch(verify::greedy{}, b2, out).code == errc::shape_mismatch);
    b2 = batch;
    b2.draft.rows -= 1;
    CHECK(cpu::verify_tree_batch(verify::rejection_sampling{}, b2, out).code
          == errc::shape_mismatch);
    CHECK(cpu::verify_tree_batch(verify::greedy{}, b2, out).code != errc::shape_mismatch);
    b2 = batch;
    b2.draft.cols = V - 1;
    CHECK(cpu::verify_tree_batch(verify::rejection_sampling{}, b2, out).code
          == errc::vocab_mismatch);
    b2 = batch;
    b2.parents = nullptr;
    CHECK(cpu::verify_tree_batch(verify::greedy{}, b2, out).code == errc::invalid_argument);
  }
  SECTION("a position whose position + depth would overflow is errc::overflow") {
    // Found by fuzzing (UBSan: position INT64_MAX plus the accepted depth).
    std::vector<index_t> bad_positions = positions;
    verify::tree_batch<float> b2 = batch;
    b2.positions = bad_positions.data();
    for (const index_t pos : {INT64_MAX, max_position + 1}) {
      bad_positions[4] = pos;
      std::fill(acc.begin(), acc.end(), -7);
      CHECK(cpu::verify_tree_batch(verify::rejection_sampling{}, b2, out).code == errc::overflow);
      CHECK(std::all_of(acc.begin(), acc.end(), [](std::int32_t a) { return a == -7; }));
    }
    const verify::tree_outcome o = cpu::verify_tree(
        verify::rejection_sampling{}, cases[0].request(sp, INT64_MAX), rng_key{42, ids[0]});
    CHECK(o.status.has(row_status::bad_shape));
  }
}
