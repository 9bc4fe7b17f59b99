// SPDX-License-Identifier: Apache-2.0
//
// Tree builders against brute force.
//  - Static: the expected accepted length reported by build_static_tree equals the maximum over
//    every ordered rooted tree with at most `budget` non-root nodes (enumerated as Dyck words,
//    children being the ranks 0..m-1), for random acceptance tables, budgets and depth limits;
//    the returned tree achieves the value it reports.
//  - Dynamic: with a deterministic synthetic draft callback, the kept nodes are exactly the
//    top-`budget` candidates by cumulative probability of an independent re-implementation of
//    the expansion, as a set of token paths; ancestor closure, numbering and tie rules.
#include <specdec/tree/builder.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <span>
#include <vector>

namespace {

using specdec::errc;
using specdec::token_id;
namespace tree = specdec::tree;

// --- static trees ---------------------------------------------------------------------------

// Every ordered rooted tree with exactly `edges` non-root nodes, as parent arrays (root first,
// DFS numbering): one per Dyck word of length 2 * edges ('(' = new child of the current node).
void dyck_trees(int edges, std::vector<std::vector<std::int32_t>>& out) {
  std::vector<char> word;
  auto rec = [&](auto&& self, int open, int close) -> void {
    if (open == edges && close == edges) {
      std::vector<std::int32_t> parents{-1};
      std::vector<std::int32_t> stack{0};
      for (char c : word) {
        if (c == '(') {
          parents.push_back(stack.back());
          stack.push_back(static_cast<std::int32_t>(parents.size()) - 1);
        } else {
          stack.pop_back();
        }
      }
      out.push_back(parents);
      return;
    }
    if (open < edges) {
      word.push_back('(');
      self(self, open + 1, close);
      word.pop_back();
    }
    if (close < open) {
      word.push_back(')');
      self(self, open, close + 1);
      word.pop_back();
    }
  };
  rec(rec, 0, 0);
}

struct table {
  std::vector<double> values;
  std::int32_t depths = 0, ranks = 0;
  double at(std::int32_t d, std::int32_t k) const {
    if (k >= ranks)
      return 0.0;
    const std::int32_t row = std::min(d, depths - 1);
    return values[static_cast<std::size_t>(row * ranks + k)];
  }
  tree::acceptance_table view() const {
    return {values, depths, ranks};
  }
};

// E and depth of a tree given as parents (the test's own evaluation: rank = earlier siblings).
struct tree_value {
  double e = 0.0;
  std::int32_t depth = 0;
};
tree_value evaluate(const table& t, const std::vector<std::int32_t>& parents) {
  const std::size_t n = parents.size();
  std::vector<double> pp(n, 1.0);
  std::vector<std::int32_t> depth(n, 0), rank(n, 0), children(n, 0);
  tree_value v;
  for (std::size_t j = 1; j < n; ++j) {
    const auto p = static_cast<std::size_t>(parents[j]);
    rank[j] = children[p]++;
    depth[j] = depth[p] + 1;
    pp[j] = pp[p] * t.at(depth[p], rank[j]);
    v.e += pp[j];
    v.depth = std::max(v.depth, depth[j]);
  }
  return v;
}

table random_table(std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  table t;
  t.depths = static_cast<std::int32_t>(1 + rng() % 3);
  t.ranks = static_cast<std::int32_t>(1 + rng() % 4);
  for (std::int32_t d = 0; d < t.depths; ++d) {
    std::vector<double> row(static_cast<std::size_t>(t.ranks));
    double sum = 0.0;
    for (double& x : row) {
      x = rng() % 5 == 0 ? 0.0 : u(rng); // some exact zeros
      sum += x;
    }
    const double total = 0.2 + 0.8 * u(rng); // the row's acceptance mass
    if (sum > 0.0)
      for (double& x : row)
        x = x / sum * total * (1.0 - 1e-9);
    if (rng() % 2 == 0) // usually decreasing in rank, but not always
      std::sort(row.begin(), row.end(), std::greater<>());
    t.values.insert(t.values.end(), row.begin(), row.end());
  }
  return t;
}

// The static builder's result must be a valid tree that it evaluates correctly.
void check_static_result(const table& t,
                         const tree::static_tree_config& cfg,
                         const tree::static_tree& r) {
  const std::int32_t n = r.tree.size();
  REQUIRE(n >= 1);
  CHECK(n - 1 <= cfg.budget);
  REQUIRE(tree::validate(r.tree.view()).ok());
  if (cfg.max_depth >= 0)
    CHECK(r.tree.max_depth() <= cfg.max_depth);
  REQUIRE(r.ranks.size() == static_cast<std::size_t>(n));
  REQUIRE(r.path_probability.size() == static_cast<std::size_t>(n));
  CHECK(r.ranks[0] == -1);
  CHECK(r.path_probability[0] == 1.0);
  std::vector<std::int32_t> count(static_cast<std::size_t>(n), 0);
  for (std::int32_t j = 1; j < n; ++j) {
    const auto p = static_cast<std::size_t>(r.tree.parents()[static_cast<std::size_t>(j)]);
    CHECK(r.ranks[static_cast<std::size_t>(j)] == count[p]++);
    CHECK(r.tree.tokens()[static_cast<std::size_t>(j)] == r.ranks[static_cast<std::size_t>(j)]);
  }
  const std::vector<std::int32_t> parents(r.tree.parents().begin(), r.tree.parents().end());
  const tree_value v = evaluate(t, parents);
  CHECK(std::abs(r.expected_accepted - v.e) <= 1e-12);
  double lib = -1.0;
  REQUIRE(tree::expected_accepted_length(t.view(), r.tree.view(), lib).ok());
  CHECK(lib == r.expected_accepted);
}

// --- dynamic trees --------------------------------------------------------------------------

std::uint64_t hash_path(std::span<const token_id> path) {
  std::uint64_t h = 1469598103934665603ull;
  for (token_id t : path) {
    h ^= static_cast<std::uint64_t>(t) + 0x9e3779b97f4a7c15ull;
    h *= 1099511628211ull;
    h ^= h >> 29;
  }
  return h;
}

// Deterministic synthetic drafter: for a path, `width` distinct tokens (width may be below
// top_k, even 0) with decreasing probabilities summing to at most 1.
struct synthetic_draft {
  int top_k = 4;
  int vocab = 50;
  bool allow_short = true;

  std::vector<tree::draft_candidate> children(std::span<const token_id> path) const {
    std::mt19937_64 rng(hash_path(path));
    int width = top_k;
    if (allow_short && rng() % 4 == 0)
      width = static_cast<int>(rng() % static_cast<std::uint64_t>(top_k + 1));
    std::set<token_id> used;
    std::vector<tree::draft_candidate> out;
    std::uniform_real_distribution<float> u(0.001f, 1.0f);
    float sum = 0.0f;
    while (static_cast<int>(out.size()) < width) {
      const auto tok = static_cast<token_id>(rng() % static_cast<std::uint64_t>(vocab));
      if (!used.insert(tok).second)
        continue;
      const float p = u(rng);
      out.push_back({tok, p});
      sum += p;
    }
    const float mass = std::uniform_real_distribution<float>(0.5f, 0.999f)(rng);
    for (auto& c : out)
      c.probability = std::min(1.0f, c.probability / sum * mass);
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
      return a.probability > b.probability;
    });
    return out;
  }

  std::int32_t operator()(const tree::expand_request& r,
                          std::span<tree::draft_candidate> out) const {
    const std::vector<tree::draft_candidate> c = children(r.path);
    REQUIRE(c.size() <= out.size());
    std::copy(c.begin(), c.end(), out.begin());
    return static_cast<std::int32_t>(c.size());
  }
};

struct brute_candidate {
  std::vector<token_id> path;
  double cumulative = 1.0;
  std::int32_t depth = 0;
};

// Independent EAGLE-2 expansion over token paths: the candidate set.
std::vector<brute_candidate>
brute_expand(const synthetic_draft& draft, token_id root, int depth, int top_k) {
  std::vector<brute_candidate> all;
  std::vector<brute_candidate> frontier{{{root}, 1.0, 0}};
  for (int round = 1; round <= depth; ++round) {
    std::vector<brute_candidate> layer;
    for (const brute_candidate& f : frontier)
      for (const tree::draft_candidate& c : draft.children(f.path)) {
        brute_candidate n = f;
        n.path.push_back(c.token);
        n.cumulative = f.cumulative * static_cast<double>(c.probability);
        n.depth = f.depth + 1;
        layer.push_back(n);
      }
    all.insert(all.end(), layer.begin(), layer.end());
    std::stable_sort(layer.begin(), layer.end(), [](const auto& a, const auto& b) {
      return a.cumulative > b.cumulative;
    });
    if (layer.size() > static_cast<std::size_t>(top_k))
      layer.resize(static_cast<std::size_t>(top_k));
    frontier = layer;
  }
  return all;
}

std::vector<token_id> token_path(const tree::dynamic_tree& r, std::int32_t node) {
  std::vector<token_id> p;
  for (std::int32_t k : r.tree.path_to(node))
    p.push_back(r.tree.tokens()[static_cast<std::size_t>(k)]);
  return p;
}

// Structural checks every dynamic result must pass.
void check_dynamic_structure(const tree::dynamic_tree& r) {
  const std::int32_t n = r.tree.size();
  REQUIRE(tree::validate(r.tree.view()).ok());
  REQUIRE(r.cumulative.size() == static_cast<std::size_t>(n));
  REQUIRE(r.draft_probability.size() == static_cast<std::size_t>(n));
  REQUIRE(r.candidate.size() == static_cast<std::size_t>(n));
  CHECK(r.cumulative[0] == 1.0);
  CHECK(r.candidate[0] == 0);
  std::set<std::int32_t> ids;
  for (std::int32_t j = 1; j < n; ++j) {
    const auto u = static_cast<std::size_t>(j);
    const auto p = static_cast<std::size_t>(r.tree.parents()[u]);
    CHECK(r.cumulative[u] == r.cumulative[p] * static_cast<double>(r.draft_probability[u]));
    CHECK(r.cumulative[u] <= r.cumulative[p]);
    CHECK(ids.insert(r.candidate[u]).second);
    CHECK(r.candidate[u] >= 1);
    CHECK(r.candidate[u] <= r.num_candidates);
    // Siblings in decreasing cumulative probability.
    const std::int32_t next = r.tree.next_siblings()[u];
    if (next >= 0)
      CHECK(r.cumulative[static_cast<std::size_t>(next)] <= r.cumulative[u]);
  }
  // Node order is the rank order: cumulative never increases with the index.
  for (std::int32_t j = 2; j < n; ++j)
    CHECK(r.cumulative[static_cast<std::size_t>(j)]
          <= r.cumulative[static_cast<std::size_t>(j - 1)]);
}

} // namespace

TEST_CASE("static builder: the Dyck enumeration yields the Catalan numbers", "[tree][builder]") {
  const std::size_t catalan[] = {1, 1, 2, 5, 14, 42, 132, 429};
  for (int e = 0; e < 8; ++e) {
    std::vector<std::vector<std::int32_t>> trees;
    dyck_trees(e, trees);
    CHECK(trees.size() == catalan[e]);
    for (const auto& p : trees)
      CHECK(tree::validate(tree::tree_view{p.data(), static_cast<std::int32_t>(p.size())}).ok());
  }
}

TEST_CASE("static builder: expected length equals a brute force over all trees",
          "[tree][builder][static]") {
  constexpr int max_edges = 8;
  std::vector<std::vector<std::vector<std::int32_t>>> by_size(max_edges + 1);
  for (int e = 0; e <= max_edges; ++e)
    dyck_trees(e, by_size[static_cast<std::size_t>(e)]);
  std::mt19937 rng(31337);
  for (int trial = 0; trial < 40; ++trial) {
    const table t = random_table(rng);
    for (std::int32_t budget = 0; budget <= max_edges; ++budget) {
      for (std::int32_t max_depth : {-1, 0, 1, 2, 3}) {
        const tree::static_tree_config cfg{budget, max_depth};
        double best = 0.0;
        for (std::int32_t e = 0; e <= budget; ++e)
          for (const auto& p : by_size[static_cast<std::size_t>(e)]) {
            const tree_value v = evaluate(t, p);
            if (max_depth < 0 || v.depth <= max_depth)
              best = std::max(best, v.e);
          }
        tree::static_tree r;
        REQUIRE(tree::build_static_tree(t.view(), cfg, r).ok());
        INFO("trial " << trial << ", budget " << budget << ", max_depth " << max_depth);
        CHECK(std::abs(r.expected_accepted - best) <= 1e-12);
        check_static_result(t, cfg, r);
      }
    }
  }
}

TEST_CASE("static builder: known shapes", "[tree][builder][static]") {
  SECTION("one rank gives a chain as deep as allowed") {
    const std::vector<double> v = {0.5};
    tree::static_tree r;
    REQUIRE(tree::build_static_tree({v, 1, 1}, {6, 4}, r).ok());
    CHECK(r.tree.size() == 5);
    CHECK(r.tree.max_depth() == 4);
    CHECK(r.expected_accepted == Approx(0.5 + 0.25 + 0.125 + 0.0625));
    CHECK(std::vector<std::int32_t>(r.tree.parents().begin(), r.tree.parents().end())
          == std::vector<std::int32_t>{-1, 0, 1, 2, 3});
  }
  SECTION("depth limit 1 gives a star of the useful ranks, numbered in rank order") {
    const std::vector<double> v = {0.4, 0.3, 0.2, 0.0};
    tree::static_tree r;
    REQUIRE(tree::build_static_tree({v, 1, 4}, {10, 1}, r).ok());
    CHECK(r.tree.size() == 4); // the rank-3 child adds nothing and is left out
    CHECK(r.ranks == std::vector<std::int32_t>{-1, 0, 1, 2});
    CHECK(r.expected_accepted == Approx(0.9));
  }
  SECTION("budget 0 or depth 0 gives the root alone") {
    const std::vector<double> v = {0.9};
    tree::static_tree r;
    REQUIRE(tree::build_static_tree({v, 1, 1}, {0, -1}, r).ok());
    CHECK(r.tree.size() == 1);
    CHECK(r.expected_accepted == 0.0);
    REQUIRE(tree::build_static_tree({v, 1, 1}, {5, 0}, r).ok());
    CHECK(r.tree.size() == 1);
  }
  SECTION("ranks must be contiguous: a good rank 1 needs rank 0 too") {
    const std::vector<double> v = {0.0, 0.9};
    tree::static_tree r;
    REQUIRE(tree::build_static_tree({v, 1, 2}, {1, 1}, r).ok());
    CHECK(r.tree.size() == 1); // one node can only be rank 0, worth 0
    REQUIRE(tree::build_static_tree({v, 1, 2}, {2, 1}, r).ok());
    CHECK(r.tree.size() == 3);
    CHECK(r.expected_accepted == Approx(0.9));
  }
}

TEST_CASE("static builder: value grows with the budget and parents precede children",
          "[tree][builder][static]") {
  const std::vector<double> v = {0.55, 0.2, 0.1, 0.05, 0.6, 0.15, 0.05, 0.02, 0.7, 0.1, 0.05, 0.01};
  const tree::acceptance_table a{v, 3, 4};
  double previous = 0.0;
  for (std::int32_t budget = 1; budget <= 96; budget += 5) {
    tree::static_tree r;
    REQUIRE(tree::build_static_tree(a, {budget, 12}, r).ok());
    CHECK(r.expected_accepted >= previous);
    previous = r.expected_accepted;
    CHECK(r.tree.size() - 1 <= budget);
    CHECK(r.tree.max_depth() <= 12);
    CHECK(tree::validate(r.tree.view(), 12).ok());
    // Breadth-first numbering: depths never decrease with the index.
    for (std::int32_t j = 1; j < r.tree.size(); ++j)
      CHECK(r.tree.depths()[static_cast<std::size_t>(j)]
            >= r.tree.depths()[static_cast<std::size_t>(j - 1)]);
  }
  CHECK(previous > 2.0);
  // The largest budget, with a depth limit to keep it quick.
  tree::static_tree big;
  REQUIRE(tree::build_static_tree(a, {tree::max_nodes - 1, 6}, big).ok());
  CHECK(big.tree.size() == tree::max_nodes);
  CHECK(big.tree.max_depth() <= 6);
}

TEST_CASE("static builder: invalid tables and configs give their status",
          "[tree][builder][static]") {
  tree::static_tree r;
  REQUIRE(
      tree::build_static_tree(tree::acceptance_table{std::span<const double>{}, 0, 0}, {1, -1}, r)
          .code
      == errc::invalid_argument);
  const std::vector<double> ok = {0.5, 0.3};
  CHECK(tree::build_static_tree({ok, 1, 3}, {1, -1}, r).code == errc::shape_mismatch);
  CHECK(tree::build_static_tree({ok, 2, 2}, {1, -1}, r).code == errc::shape_mismatch);
  CHECK(tree::build_static_tree({ok, 0, 2}, {1, -1}, r).code == errc::invalid_argument);
  CHECK(tree::build_static_tree({ok, 1, 2}, {-1, -1}, r).code == errc::invalid_argument);
  CHECK(tree::build_static_tree({ok, 1, 2}, {tree::max_nodes, -1}, r).code == errc::overflow);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (const std::vector<double>& bad : {std::vector<double>{nan, 0.1},
                                         std::vector<double>{-0.1, 0.1},
                                         std::vector<double>{1.5, 0.0},
                                         std::vector<double>{inf, 0.0},
                                         std::vector<double>{0.6, 0.4 + 2e-6}}) {
    CHECK(tree::build_static_tree({bad, 1, 2}, {1, -1}, r).code == errc::invalid_value);
    double e = 0.0;
    CHECK(tree::expected_accepted_length({bad, 1, 2}, r.tree.view(), e).code
          == errc::invalid_value);
  }
  CHECK(r.tree.size() == 0);                            // untouched on error
  const std::vector<double> almost = {0.6, 0.4 + 5e-7}; // within the 1e-6 tolerance
  CHECK(tree::build_static_tree({almost, 1, 2}, {3, -1}, r).ok());
  double e = 0.0;
  const std::int32_t cyc[] = {-1, 2, 1};
  CHECK(tree::expected_accepted_length({ok, 1, 2}, tree::tree_view{cyc, 3}, e).code
        == errc::malformed_tree);
}

TEST_CASE("dynamic builder: keeps the top-budget candidates of the expansion",
          "[tree][builder][dynamic]") {
  std::mt19937 rng(2718);
  int compared = 0;
  for (int trial = 0; trial < 120; ++trial) {
    synthetic_draft draft;
    draft.top_k = static_cast<int>(1 + rng() % 6);
    draft.vocab = static_cast<int>(draft.top_k + 1 + static_cast<int>(rng() % 40));
    draft.allow_short = trial % 2 == 0;
    const tree::dynamic_tree_config cfg{
        static_cast<int>(1 + rng() % 7), draft.top_k, static_cast<int>(1 + rng() % 60)};
    const auto root = static_cast<token_id>(rng() % 1000);
    INFO("trial " << trial << ": depth " << cfg.depth << ", top_k " << cfg.top_k << ", budget "
                  << cfg.budget);

    // The callback also checks the requests it gets against the candidates seen so far.
    std::map<std::int32_t, std::vector<token_id>> seen{{0, {root}}};
    std::int32_t next_id = 1;
    std::int32_t calls = 0;
    auto expand = [&](const tree::expand_request& req, std::span<tree::draft_candidate> out) {
      ++calls;
      const std::vector<token_id> path(req.path.begin(), req.path.end());
      CHECK(seen.at(req.node) == path);
      CHECK(req.depth + 1 == static_cast<std::int32_t>(path.size()));
      CHECK(out.size() == static_cast<std::size_t>(cfg.top_k));
      const std::int32_t n = draft(req, out);
      for (std::int32_t i = 0; i < n; ++i) {
        std::vector<token_id> child = path;
        child.push_back(out[static_cast<std::size_t>(i)].token);
        seen[next_id++] = child;
      }
      return n;
    };
    tree::dynamic_tree r;
    REQUIRE(tree::build_dynamic_tree(root, cfg, expand, r).ok());
    check_dynamic_structure(r);

    const std::vector<brute_candidate> all = brute_expand(draft, root, cfg.depth, cfg.top_k);
    const auto rounds = std::min(cfg.depth, cfg.budget);
    const auto expanded = std::count_if(
        all.begin(), all.end(), [&](const brute_candidate& c) { return c.depth <= rounds; });
    CHECK(r.num_candidates == expanded);
    CHECK(next_id - 1 == expanded);
    const std::size_t keep = std::min(static_cast<std::size_t>(cfg.budget), all.size());
    CHECK(r.tree.size() - 1 == static_cast<std::int32_t>(keep));

    // The brute-force top `keep` by cumulative probability, as token paths.
    std::vector<brute_candidate> sorted = all;
    std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
      return a.cumulative > b.cumulative;
    });
    // Random probabilities: a tie at the cut would make the set ambiguous; skip those draws.
    if (keep < sorted.size() && sorted[keep].cumulative == sorted[keep - 1].cumulative)
      continue;
    std::set<std::vector<token_id>> expected, got;
    for (std::size_t i = 0; i < keep; ++i)
      expected.insert(sorted[i].path);
    for (std::int32_t j = 1; j < r.tree.size(); ++j) {
      got.insert(token_path(r, j));
      CHECK(seen.at(r.candidate[static_cast<std::size_t>(j)]) == token_path(r, j));
    }
    CHECK(got == expected);
    // Ancestor-closed: every prefix of a kept path is kept (or is the root).
    for (const auto& p : got)
      if (p.size() > 2)
        CHECK(got.count(std::vector<token_id>(p.begin(), p.end() - 1)) == 1);
    ++compared;
  }
  CHECK(compared > 100);
}

TEST_CASE("dynamic builder: ties keep the result ancestor-closed", "[tree][builder][dynamic]") {
  // Every draft probability is 1 (or 0): all cumulative probabilities tie, so the depth and the
  // creation order decide.
  for (float p : {1.0f, 0.0f, 0.5f}) {
    auto expand = [p](const tree::expand_request& req, std::span<tree::draft_candidate> out) {
      for (std::size_t i = 0; i < out.size(); ++i)
        out[i] = {static_cast<token_id>(100 * req.depth + static_cast<int>(i)), p};
      return static_cast<int>(out.size());
    };
    for (int budget : {1, 2, 3, 5, 8, 13, 40}) {
      tree::dynamic_tree r;
      REQUIRE(tree::build_dynamic_tree(7, {4, 3, budget}, expand, r).ok());
      check_dynamic_structure(r);
      CHECK(r.tree.size() - 1 == std::min(budget, r.num_candidates));
      if (p == 1.0f) {
        // Breadth-first: the first 3 nodes are the root's children, in callback order.
        for (std::int32_t j = 1; j < std::min(4, r.tree.size()); ++j) {
          CHECK(r.tree.parents()[static_cast<std::size_t>(j)] == 0);
          CHECK(r.tree.tokens()[static_cast<std::size_t>(j)] == j - 1);
        }
      }
    }
  }
}

TEST_CASE("dynamic builder: a callback drafting nothing gives the root alone",
          "[tree][builder][dynamic]") {
  int calls = 0;
  auto none = [&calls](const tree::expand_request&, std::span<tree::draft_candidate>) {
    ++calls;
    return 0;
  };
  tree::dynamic_tree r;
  REQUIRE(tree::build_dynamic_tree(5, {3, 2, 10}, none, r).ok());
  CHECK(calls == 1);
  CHECK(r.tree.size() == 1);
  CHECK(r.tree.tokens()[0] == 5);
  CHECK(r.num_candidates == 0);
}

TEST_CASE("dynamic builder: bad configs and bad callbacks give their status",
          "[tree][builder][dynamic]") {
  const synthetic_draft draft{3, 20, false};
  tree::dynamic_tree r;
  CHECK(tree::build_dynamic_tree(0, {0, 3, 10}, draft, r).code == errc::invalid_argument);
  CHECK(tree::build_dynamic_tree(0, {2, 0, 10}, draft, r).code == errc::invalid_argument);
  CHECK(tree::build_dynamic_tree(0, {2, 3, 0}, draft, r).code == errc::invalid_argument);
  CHECK(tree::build_dynamic_tree(0, {-1, 3, 10}, draft, r).code == errc::invalid_argument);
  CHECK(tree::build_dynamic_tree(0, {2, -3, 10}, draft, r).code == errc::invalid_argument);
  CHECK(tree::build_dynamic_tree(0, {2, 3, -10}, draft, r).code == errc::invalid_argument);
  CHECK(tree::build_dynamic_tree(0, {2, 3, tree::max_nodes}, draft, r).code == errc::overflow);
  CHECK(tree::build_dynamic_tree(0, {2, tree::max_siblings + 1, 10}, draft, r).code
        == errc::unsupported);
  CHECK(tree::build_dynamic_tree(0, {2, 3, tree::max_nodes - 1}, draft, r).ok());

  auto scripted = [](tree::draft_candidate bad, int count) {
    return [bad, count](const tree::expand_request& req, std::span<tree::draft_candidate> out) {
      if (req.depth == 0) { // the root gets two good children
        out[0] = {1, 0.5f};
        out[1] = {2, 0.25f};
        return 2;
      }
      out[0] = bad;
      return count;
    };
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const tree::dynamic_tree_config cfg{3, 2, 10};
  tree::dynamic_tree untouched;
  REQUIRE(tree::build_dynamic_tree(9, cfg, scripted({3, 0.5f}, 1), untouched).ok());
  CHECK(untouched.tree.size() == 7); // 2 + 2 + 2 candidates
  CHECK(tree::build_dynamic_tree(9, cfg, scripted({3, nan}, 1), untouched).code
        == errc::invalid_value);
  CHECK(tree::build_dynamic_tree(9, cfg, scripted({3, -0.1f}, 1), untouched).code
        == errc::invalid_value);
  CHECK(tree::build_dynamic_tree(9, cfg, scripted({3, 1.5f}, 1), untouched).code
        == errc::invalid_value);
  CHECK(tree::build_dynamic_tree(9, cfg, scripted({-3, 0.5f}, 1), untouched).code
        == errc::token_out_of_range);
  CHECK(tree::build_dynamic_tree(9, cfg, scripted({3, 0.5f}, 3), untouched).code
        == errc::shape_mismatch);
  CHECK(tree::build_dynamic_tree(9, cfg, scripted({3, 0.5f}, -1), untouched).code
        == errc::shape_mismatch);
  auto duplicate = [](const tree::expand_request&, std::span<tree::draft_candidate> out) {
    out[0] = {4, 0.5f};
    out[1] = {4, 0.25f};
    return 2;
  };
  CHECK(tree::build_dynamic_tree(9, cfg, duplicate, untouched).code == errc::invalid_value);
  CHECK(untouched.tree.size() == 7); // unchanged by the failed calls
}

TEST_CASE("dynamic builder: the expander concept accepts lambdas, functors and size_t counts",
          "[tree][builder][dynamic]") {
  using tree::draft_candidate;
  using tree::expand_request;
  auto l = [](const expand_request&, std::span<draft_candidate>) { return 0; };
  auto s = [](const expand_request&, std::span<draft_candidate>) { return std::size_t{0}; };
  auto wrong_args = [](int) { return 0; };
  auto no_result = [](const expand_request&, std::span<draft_candidate>) {};
  STATIC_REQUIRE(tree::tree_expander<decltype(l)>);
  STATIC_REQUIRE(tree::tree_expander<const decltype(l)>);
  STATIC_REQUIRE(tree::tree_expander<decltype(s)>);
  STATIC_REQUIRE(tree::tree_expander<synthetic_draft>);
  STATIC_REQUIRE_FALSE(tree::tree_expander<decltype(wrong_args)>);
  STATIC_REQUIRE_FALSE(tree::tree_expander<decltype(no_result)>);
  tree::dynamic_tree r;
  CHECK(tree::build_dynamic_tree(1, {1, 1, 1}, s, r).ok());
}
