// SPDX-License-Identifier: Apache-2.0
// Goodness of fit of the stochastic tree rules (DESIGN section 4): multi-draft rejection sampling
// with sampled siblings and real draft rows (SpecInfer), and its one-hot form with distinct
// deterministic siblings, must emit tokens distributed as the processed target; the variant that
// does not renormalise the residual between siblings (TensorRT-LLM's dynamic-tree kernel) must
// fail the same test.
//
// Setup: V = 6, bigram target P(.|prev) and draft Q(.|prev) logit tables drawn once from a seeded
// generator. The tree after the context x0 has 3 children at depth 1 and 2 children under each
// of them (10 nodes): sampled i.i.d. from the processed Q(.|parent) (dense rule; siblings share
// their parent's draft row through draft_index), or the top-3 / top-2 tokens of Q (one-hot rule;
// distinct). The joint law of the first two emitted tokens (36 cells) must be P'(a|x0) P'(b|a)
// with P' the double-precision reference of support/stats.hpp. 10^6 seeded trials per case
// (10^5 under AddressSanitizer, where the biased variants still fail by a wide margin);
// bound: the 1 - 1e-6 chi-square quantile (Wilson-Hilferty) for the degrees of freedom.

#include <specdec/specdec.hpp>

#include <catch2/catch.hpp>

#include "support/gof.hpp"
#include "support/sanitizer.hpp"
#include "support/stats.hpp"
#include <algorithm>
#include <array>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

using namespace specdec;

namespace {

constexpr index_t V = 6;
// Sanitized builds (about 10x slower per draw) run 10^5 draws; the biased variants still fail
// by a wide margin there.
constexpr std::uint64_t n_trials = specdec_test::by_build<std::uint64_t>(1'000'000, 100'000);
constexpr double alpha = 1e-6;
constexpr token_id x0 = 2;
constexpr std::int32_t k1 = 3; // children of the root
constexpr std::int32_t k2 = 2; // children of each depth-1 node
constexpr std::int32_t N = 1 + k1 + k1 * k2;

template <class I>
constexpr std::size_t ix(I i) {
  return static_cast<std::size_t>(i);
}

/// A V x V logit table drawn from N(0, 1) with a fixed seed.
std::vector<float> logit_table(std::uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> t(ix(V * V));
  for (float& x : t)
    x = n(g);
  return t;
}

/// Processed rows of a table (library float computation) and their CDFs.
struct processed {
  std::vector<sampling::row_stats> stats;
  std::vector<std::vector<double>> prob;
  processed(const std::vector<float>& t, const sampling::sampling_params& sp) {
    const cpu::serial_executor ex{};
    for (token_id c = 0; c < V; ++c) {
      const sampling::dist_row<float> row{t.data() + c * V, V, distribution_kind::logits};
      stats.push_back(sampling::prepare_row(ex, row, sp));
      REQUIRE(stats.back().ok());
      std::vector<double> p(ix(V));
      for (index_t v = 0; v < V; ++v)
        p[ix(v)] = sampling::prob_at(row, stats.back(), v);
      prob.push_back(p);
    }
  }
  /// Inverse-CDF draw from row c.
  token_id draw(token_id c, float u) const {
    const std::vector<double>& p = prob[ix(c)];
    const double goal = static_cast<double>(u) * std::accumulate(p.begin(), p.end(), 0.0);
    double cum = 0.0;
    for (token_id v = 0; v < V - 1; ++v)
      if ((cum += p[ix(v)]) > goal)
        return v;
    return V - 1;
  }
  /// The n most probable tokens of row c, descending (ties: lower id first).
  std::vector<token_id> top(token_id c, int n) const {
    std::vector<token_id> ids(ix(V));
    std::iota(ids.begin(), ids.end(), 0);
    std::stable_sort(ids.begin(), ids.end(), [&](token_id a, token_id b) {
      return prob[ix(c)][ix(a)] > prob[ix(c)][ix(b)];
    });
    ids.resize(ix(n));
    return ids;
  }
};

enum class siblings { sampled, top };

struct counts {
  std::vector<std::uint64_t> pairs = std::vector<std::uint64_t>(ix(V * V), 0);
  std::uint64_t bad = 0;
  double mean_accepted = 0.0;
};

/// Runs the trials of `rule(ex, request, uniforms)`.
template <class Rule>
counts run_trials(const Rule& rule,
                  const std::vector<float>& p_logits,
                  const std::vector<float>& q_logits,
                  const sampling::sampling_params& sp,
                  siblings mode,
                  std::uint64_t seed,
                  std::uint64_t trials = n_trials) {
  const cpu::serial_executor ex{};
  const processed tp(p_logits, sp);
  const processed dp(q_logits, sp);
  // Fixed shape: node 0 root, nodes 1..k1 depth 1, then k2 children per depth-1 node.
  std::array<std::int32_t, N> parents{};
  std::array<std::int32_t, N> draft_index{};
  parents[0] = -1;
  for (std::int32_t i = 0; i < k1; ++i) {
    parents[ix(1 + i)] = 0;
    draft_index[ix(1 + i)] = 0;
    for (std::int32_t c = 0; c < k2; ++c) {
      parents[ix(1 + k1 + i * k2 + c)] = 1 + i;
      draft_index[ix(1 + k1 + i * k2 + c)] = 1 + i;
    }
  }
  std::array<token_id, N> tokens{};
  std::vector<float> trows(ix(N * V));
  std::vector<float> drows(ix((1 + k1) * V));
  verify::tree_request<float, float> r;
  r.target = trows.data();
  r.target_stride = V;
  r.draft = drows.data();
  r.draft_stride = V;
  r.draft_index = draft_index.data();
  r.tokens = tokens.data();
  r.tree = {parents.data(), N};
  r.vocab = V;
  r.params = sp;
  r.position = 0;
  const std::uint64_t own_seed = seed ^ 0x9e3779b97f4a7c15ull;
  counts res;
  std::uint64_t accepted_sum = 0;
  std::vector<std::vector<token_id>> top_of; // top-k1 after x0 at [V], top-k2 after c at [c]
  for (token_id c = 0; c < V; ++c)
    top_of.push_back(dp.top(c, k2));
  top_of.push_back(dp.top(x0, k1));
  for (std::uint64_t t = 0; t < trials; ++t) {
    const rng_key own{own_seed, t};
    tokens[0] = x0;
    std::uint32_t lane = 0;
    const auto pick = [&](token_id ctx, std::int32_t rank, const std::vector<token_id>& top) {
      return mode == siblings::top ? top[ix(rank)]
                                   : dp.draw(ctx, uniform_at(own, 0, draw_purpose::sample, lane++));
    };
    for (std::int32_t i = 0; i < k1; ++i)
      tokens[ix(1 + i)] = pick(x0, i, top_of[ix(V)]);
    for (std::int32_t i = 0; i < k1; ++i) {
      const token_id c = tokens[ix(1 + i)];
      for (std::int32_t k = 0; k < k2; ++k)
        tokens[ix(1 + k1 + i * k2 + k)] = pick(c, k, top_of[ix(c)]);
    }
    for (std::int32_t j = 0; j < N; ++j)
      std::copy_n(p_logits.data() + tokens[ix(j)] * V, V, trows.data() + j * V);
    std::copy_n(q_logits.data() + x0 * V, V, drows.data());
    for (std::int32_t i = 0; i < k1; ++i)
      std::copy_n(q_logits.data() + tokens[ix(1 + i)] * V, V, drows.data() + (1 + i) * V);
    const verify::tree_outcome o = rule(ex, r, philox_uniforms{rng_key{seed, t}});
    if (!o.status.ok() || o.next < 0 || o.next >= V || o.accepted < 0 || o.accepted > 2) {
      ++res.bad;
      continue;
    }
    token_id a = o.next, b = 0;
    if (o.accepted == 2) {
      a = tokens[ix(parents[ix(o.last_node)])];
      b = tokens[ix(o.last_node)];
    } else if (o.accepted == 1) {
      a = tokens[ix(o.last_node)];
      b = o.next;
    } else {
      b = tp.draw(a, uniform_at(own, 1, draw_purpose::sample));
    }
    ++res.pairs[ix(a * V + b)];
    accepted_sum += static_cast<std::uint64_t>(o.accepted);
  }
  res.mean_accepted = static_cast<double>(accepted_sum) / static_cast<double>(trials);
  return res;
}

std::vector<double> pair_law(const std::vector<float>& p_logits,
                             const sampling::sampling_params& sp) {
  std::vector<std::vector<double>> ref;
  for (token_id c = 0; c < V; ++c) {
    const std::vector<double> vals(p_logits.begin() + c * V, p_logits.begin() + (c + 1) * V);
    const auto rr =
        specdec_test::reference_processed(vals, false, specdec_test::reference_params(sp));
    REQUIRE(rr.margin > 1e-4);
    ref.push_back(rr.p);
  }
  std::vector<double> law(ix(V * V));
  for (std::size_t a = 0; a < ix(V); ++a)
    for (std::size_t b = 0; b < ix(V); ++b)
      law[a * ix(V) + b] = ref[ix(x0)][a] * ref[a][b];
  return law;
}

template <bool Dense, bool Renormalise>
struct rule {
  verify::tree_outcome operator()(const cpu::serial_executor& ex,
                                  const verify::tree_request<float, float>& r,
                                  const philox_uniforms& u) const {
    return verify::detail::rejection_tree<Dense, Renormalise>(ex, r, u);
  }
};

sampling::sampling_params t1() {
  return {};
}
sampling::sampling_params t07_top_k3() {
  sampling::sampling_params sp;
  sp.temperature = 0.7f;
  sp.top_k = 3;
  return sp;
}

const std::vector<float>& p_table() {
  static const std::vector<float> t = logit_table(11);
  return t;
}
const std::vector<float>& q_table() {
  static const std::vector<float> t = logit_table(23);
  return t;
}

} // namespace

TEST_CASE("tree rejection (SpecInfer, dense sampled siblings) emits the target law",
          "[verify][tree][gof]") {
  for (const auto& sp : {t1(), t07_top_k3()}) {
    const counts c = run_trials(rule<true, true>{}, p_table(), q_table(), sp, siblings::sampled, 5);
    SPECDEC_CHECK_FITS(c.pairs, pair_law(p_table(), sp), c.bad, c.mean_accepted, n_trials, alpha);
  }
}

TEST_CASE("tree rejection through the policy type matches the detail rule", "[verify][tree][gof]") {
  const auto policy = [](const cpu::serial_executor& ex,
                         const verify::tree_request<float, float>& r,
                         const philox_uniforms& u) {
    return verify::rejection_sampling{}.verify_tree(ex, r, u);
  };
  const counts a =
      run_trials(policy, p_table(), q_table(), t1(), siblings::sampled, 9, n_trials / 20);
  const counts b = run_trials(
      rule<true, true>{}, p_table(), q_table(), t1(), siblings::sampled, 9, n_trials / 20);
  CHECK(a.pairs == b.pairs);
}

TEST_CASE("tree rejection without renormalising between siblings is biased (power)",
          "[verify][tree][gof]") {
  for (const auto& sp : {t1(), t07_top_k3()}) {
    const counts c =
        run_trials(rule<true, false>{}, p_table(), q_table(), sp, siblings::sampled, 5);
    SPECDEC_CHECK_FAILS(c.pairs, pair_law(p_table(), sp), alpha);
  }
}

TEST_CASE("one-hot tree rejection with distinct top-k siblings emits the target law",
          "[verify][tree][gof]") {
  for (const auto& sp : {t1(), t07_top_k3()}) {
    const counts c = run_trials(rule<false, true>{}, p_table(), q_table(), sp, siblings::top, 7);
    SPECDEC_CHECK_FITS(c.pairs, pair_law(p_table(), sp), c.bad, c.mean_accepted, n_trials, alpha);
  }
}

TEST_CASE("one-hot tree rejection without zeroing rejected siblings is biased (power)",
          "[verify][tree][gof]") {
  for (const auto& sp : {t1(), t07_top_k3()}) {
    const counts c = run_trials(rule<false, false>{}, p_table(), q_table(), sp, siblings::top, 7);
    SPECDEC_CHECK_FAILS(c.pairs, pair_law(p_table(), sp), alpha);
  }
}
