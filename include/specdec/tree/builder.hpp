// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Token-tree builders: the static tree that maximises the expected accepted length for
/// given per-depth, per-rank acceptance statistics (Sequoia-style dynamic programming), and the
/// dynamic tree grown from draft probabilities by a user callback (EAGLE-2-style expansion and
/// reranking).
///
/// Both return trees that follow the conventions of token_tree.hpp: node 0 is the root, parents
/// precede children, siblings are ordered by index.
///
/// - Static (Sequoia, Chen et al. 2024): the shape only. Node c, the rank-r child of a node at
///   depth d, stands for "the r-th most likely draft token" and is the accepted child with
///   probability accept(d, r) given its parent was accepted. The expected number of accepted
///   drafted tokens of a tree is E = sum over non-root nodes of the product of accept along the
///   node's root path; build_static_tree returns the tree of at most `budget` non-root nodes
///   (and depth at most `max_depth`) that maximises E, exactly.
/// - Dynamic (EAGLE-2, Li et al. 2024): `depth` rounds of expansion, each expanding the top_k
///   newest nodes with the highest cumulative draft probability (the product of draft
///   probabilities along the root path), then a rerank of every candidate keeping the `budget`
///   best.

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/tree/token_tree.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace tree {

// ------------------------------------------------------------------------------------------------
// Static trees
// ------------------------------------------------------------------------------------------------

/// @brief Acceptance statistics of a draft model: `accept(d, k)` is the probability that the
/// rank-k child of a node at depth d (root depth 0) is the accepted one, given its parent was
/// accepted.
///
/// Ranks are mutually exclusive events (at most one child is accepted), so every row sums to at
/// most 1. Depths at or past `num_depths` reuse the last row: a one-row table gives
/// depth-independent statistics. Ranks at or past tree::max_siblings are never used by
/// build_static_tree (tree verification tries at most that many siblings).
struct acceptance_table {
  /// accept(d, k) at `values[d * num_ranks + k]`; @shape{[num_depths, num_ranks]}
  std::span<const double> values;
  std::int32_t num_depths = 0; ///< rows (depths 0 .. num_depths - 1), >= 1
  std::int32_t num_ranks = 0;  ///< columns (ranks 0 .. num_ranks - 1), >= 1

  /// @brief accept(depth, rank), the last row standing for deeper depths.
  /// @param[in] depth the parent's depth, >= 0
  /// @param[in] rank the child's rank among its siblings
  /// @return the probability; 0 for a rank outside [0, num_ranks) or a negative depth
  /// @par Complexity
  /// O(1).
  [[nodiscard]] constexpr double at(std::int32_t depth, std::int32_t rank) const noexcept {
    if (depth < 0 || rank < 0 || rank >= num_ranks || num_depths <= 0)
      return 0.0;
    const std::int32_t d = depth < num_depths ? depth : num_depths - 1;
    return values[static_cast<std::size_t>(d) * static_cast<std::size_t>(num_ranks)
                  + static_cast<std::size_t>(rank)];
  }

  /// @brief Checks the dimensions and the values.
  /// @return errc::invalid_argument when num_depths or num_ranks < 1; errc::shape_mismatch
  ///   when `values.size() != num_depths * num_ranks`; errc::invalid_value for a NaN or a value
  ///   outside [0, 1], or a row summing to more than 1 + 1e-6; ok otherwise
  /// @par Complexity
  /// O(num_depths * num_ranks).
  [[nodiscard]] constexpr status validate() const noexcept {
    if (num_depths < 1 || num_ranks < 1)
      return status{errc::invalid_argument};
    const std::size_t k = static_cast<std::size_t>(num_ranks);
    if (values.size() != static_cast<std::size_t>(num_depths) * k)
      return status{errc::shape_mismatch};
    for (std::size_t d = 0; d < static_cast<std::size_t>(num_depths); ++d) {
      double sum = 0.0;
      for (std::size_t r = 0; r < k; ++r) {
        const double v = values[d * k + r];
        if (!(v >= 0.0 && v <= 1.0)) // also rejects NaN
          return status{errc::invalid_value};
        sum += v;
      }
      if (sum > 1.0 + 1e-6)
        return status{errc::invalid_value};
    }
    return status{};
  }
};

/// @brief Limits of a static tree.
struct static_tree_config {
  /// Most non-root nodes (the root, the last committed token, is not counted), in
  /// [0, tree::max_nodes - 1].
  std::int32_t budget = 0;
  /// Deepest depth allowed (root 0, so the longest accepted run); negative: no limit.
  std::int32_t max_depth = -1;

  /// @brief Checks the settings.
  /// @return errc::invalid_argument when budget < 0; errc::overflow when
  ///   budget > tree::max_nodes - 1; ok otherwise
  /// @par Complexity
  /// O(1).
  [[nodiscard]] constexpr status validate() const noexcept {
    if (budget < 0)
      return status{errc::invalid_argument};
    if (budget > max_nodes - 1)
      return status{errc::overflow};
    return status{};
  }
};

/// @brief A static tree and its value.
struct static_tree {
  /// The shape, numbered breadth-first (children of a node are consecutive, in rank order).
  /// Tokens are placeholders: each node's token is its rank (the root's is 0); a drafter puts
  /// the rank-r draft token of the parent there.
  token_tree tree;
  std::vector<std::int32_t> ranks;      ///< rank of each node among its siblings (root -1); [N]
  std::vector<double> path_probability; ///< product of accept along the root path (root 1); [N]
  /// E: the expected number of accepted drafted tokens per step, the sum of path_probability
  /// over the non-root nodes in index order (add 1 for the token the verifier always emits).
  double expected_accepted = 0.0;
};

namespace detail {

// Rank of every node among its siblings (siblings are ordered by index), root -1.
inline std::vector<std::int32_t> sibling_ranks(const tree_view& t) {
  std::vector<std::int32_t> rank(static_cast<std::size_t>(t.num_nodes), -1);
  std::vector<std::int32_t> next(static_cast<std::size_t>(t.num_nodes), 0);
  for (std::int32_t j = 1; j < t.num_nodes; ++j)
    rank[static_cast<std::size_t>(j)] = next[static_cast<std::size_t>(t.parents[j])]++;
  return rank;
}

} // namespace detail

/// @brief The expected number of accepted drafted tokens of a tree under acceptance statistics:
/// E = sum over non-root nodes of the product of accept(depth(parent), rank) along the root
/// path, a node's rank being its position among its siblings.
/// @param[in] accept the statistics (checked with acceptance_table::validate); ranks past the
///   table count as probability 0
/// @param[in] t the tree (checked with tree::validate)
/// @param[out] value receives E (unchanged on error)
/// @return the status of accept.validate(); errc::malformed_tree when validate(t) fails
/// @par Complexity
/// O(N) after validation.
[[nodiscard]] inline status
expected_accepted_length(const acceptance_table& accept, const tree_view& t, double& value) {
  if (const status s = accept.validate(); !s.ok())
    return s;
  if (!validate(t).ok())
    return status{errc::malformed_tree};
  const std::vector<std::int32_t> rank = detail::sibling_ranks(t);
  std::vector<double> pp(static_cast<std::size_t>(t.num_nodes), 1.0);
  std::vector<std::int32_t> depth(static_cast<std::size_t>(t.num_nodes), 0);
  double e = 0.0;
  for (std::int32_t j = 1; j < t.num_nodes; ++j) {
    const auto u = static_cast<std::size_t>(j);
    const auto p = static_cast<std::size_t>(t.parents[j]);
    depth[u] = depth[p] + 1;
    pp[u] = pp[p] * accept.at(depth[p], rank[u]);
    e += pp[u];
  }
  value = e;
  return status{};
}

/// @brief Builds the tree of at most `config.budget` non-root nodes and depth at most
/// `config.max_depth` that maximises the expected accepted length E (see the file comment).
///
/// Exact dynamic programming: f(d, n) is the best value of at most n nodes hanging below a node
/// at depth d, relative to that node's path probability; a knapsack over the child ranks,
/// h(d, k, n) = max over s of h(d, k-1, n-s) + accept(d, k-1) * (1 + f(d+1, s-1)), keeps the
/// children exactly the ranks 0 .. k-1. Among equal values the first found wins (fewer
/// children, smaller first subtrees), so nodes that add nothing (a zero probability on their
/// path) are left out and the tree may have fewer than `budget` nodes.
/// @param[in] accept the acceptance statistics
/// @param[in] config budget and depth limit
/// @param[out] out receives the tree, ranks, path probabilities and E (unchanged on error)
/// @return the status of accept.validate() or config.validate(), else ok
/// @par Complexity
/// O(D * B^2 * K) time and O(D * B * K) memory, with B the budget, D = min(max_depth, B) and
/// K = min(num_ranks, max_siblings, B).
[[nodiscard]] inline status build_static_tree(const acceptance_table& accept,
                                              const static_tree_config& config,
                                              static_tree& out) {
  if (const status s = accept.validate(); !s.ok())
    return s;
  if (const status s = config.validate(); !s.ok())
    return s;
  const std::int32_t budget = config.budget;
  const std::int32_t deepest =
      config.max_depth < 0 ? budget : std::min(config.max_depth, budget); // D
  const std::int32_t ranks = std::min({accept.num_ranks, max_siblings, budget});
  const std::size_t width = static_cast<std::size_t>(budget) + 1; // n = 0 .. budget
  const std::size_t kw = static_cast<std::size_t>(ranks) + 1;     // k = 0 .. ranks
  const auto levels = static_cast<std::size_t>(deepest) + 1;      // d = 0 .. D
  auto fi = [&](std::int32_t d, std::int32_t n) {
    return static_cast<std::size_t>(d) * width + static_cast<std::size_t>(n);
  };
  auto si = [&](std::int32_t d, std::int32_t k, std::int32_t n) {
    return (static_cast<std::size_t>(d) * kw + static_cast<std::size_t>(k)) * width
           + static_cast<std::size_t>(n);
  };
  std::vector<double> f(levels * width, 0.0);               // f(d, n); f(D, n) = 0
  std::vector<std::int16_t> best_k(levels * width, 0);      // children count achieving f
  std::vector<std::int16_t> best_s(levels * kw * width, 0); // size of the rank-(k-1) subtree
  std::vector<double> h_prev(width), h_cur(width);
  for (std::int32_t d = deepest - 1; d >= 0; --d) {
    const std::int32_t n_max = budget - d;        // the d nodes above use part of the budget
    std::fill(h_prev.begin(), h_prev.end(), 0.0); // h(d, 0, n) = 0
    for (std::int32_t k = 1; k <= std::min(ranks, n_max); ++k) {
      const double a = accept.at(d, k - 1);
      for (std::int32_t n = 0; n <= n_max; ++n) {
        double best = -1.0; // below every real value: infeasible
        std::int32_t arg = 0;
        for (std::int32_t s = 1; s <= n - (k - 1); ++s) {
          const double before = h_prev[static_cast<std::size_t>(n - s)];
          if (before < 0.0)
            continue;
          const double v = before + a * (1.0 + f[fi(d + 1, s - 1)]);
          if (v > best) {
            best = v;
            arg = s;
          }
        }
        h_cur[static_cast<std::size_t>(n)] = best;
        best_s[si(d, k, n)] = static_cast<std::int16_t>(arg);
        if (best > f[fi(d, n)]) {
          f[fi(d, n)] = best;
          best_k[fi(d, n)] = static_cast<std::int16_t>(k);
        }
      }
      std::swap(h_prev, h_cur);
    }
  }

  // Rebuild breadth-first: each node's children are appended together, in rank order.
  static_tree r;
  r.tree.reset(0);
  r.ranks.assign(1, -1);
  r.path_probability.assign(1, 1.0);
  struct pending {
    std::int32_t node, depth, size;
  };
  std::vector<pending> queue{{0, 0, budget}};
  std::vector<std::int32_t> sizes;
  for (std::size_t q = 0; q < queue.size(); ++q) {
    const pending it = queue[q];
    if (it.depth >= deepest || it.size == 0)
      continue;
    const std::int32_t k = best_k[fi(it.depth, it.size)];
    sizes.assign(static_cast<std::size_t>(k), 0);
    std::int32_t rem = it.size;
    for (std::int32_t c = k; c >= 1; --c) {
      const std::int32_t s = best_s[si(it.depth, c, rem)];
      sizes[static_cast<std::size_t>(c - 1)] = s;
      rem -= s;
    }
    for (std::int32_t c = 0; c < k; ++c) {
      const std::int32_t j = r.tree.add(it.node, c);
      r.ranks.push_back(c);
      r.path_probability.push_back(r.path_probability[static_cast<std::size_t>(it.node)]
                                   * accept.at(it.depth, c));
      queue.push_back({j, it.depth + 1, sizes[static_cast<std::size_t>(c)] - 1});
    }
  }
  double e = 0.0;
  for (std::size_t j = 1; j < r.path_probability.size(); ++j)
    e += r.path_probability[j];
  r.expected_accepted = e;
  out = std::move(r);
  return status{};
}

// ------------------------------------------------------------------------------------------------
// Dynamic trees
// ------------------------------------------------------------------------------------------------

/// @brief Settings of an EAGLE-2-style dynamic tree.
struct dynamic_tree_config {
  int depth = 0;  ///< expansion rounds (the deepest node's depth), >= 1
  int top_k = 0;  ///< children per expanded node and nodes expanded per round, in [1, max_siblings]
  int budget = 0; ///< non-root nodes kept, in [1, tree::max_nodes - 1]

  /// @brief Checks the settings.
  /// @return errc::invalid_argument when a value is not positive; errc::overflow when
  ///   budget > tree::max_nodes - 1; errc::unsupported when top_k > tree::max_siblings (tree
  ///   verification tries at most that many siblings); ok otherwise
  /// @par Complexity
  /// O(1).
  [[nodiscard]] constexpr status validate() const noexcept {
    if (depth <= 0 || top_k <= 0 || budget <= 0)
      return status{errc::invalid_argument};
    if (budget > max_nodes - 1)
      return status{errc::overflow};
    if (top_k > max_siblings)
      return status{errc::unsupported};
    return status{};
  }
};

/// @brief One draft child proposed by an expansion callback.
struct draft_candidate {
  token_id token = 0;       ///< the drafted token, >= 0, distinct among one node's candidates
  float probability = 0.0f; ///< its draft probability given the node's path, in [0, 1]
};

/// @brief What an expansion callback is asked: the node to expand.
struct expand_request {
  /// Candidate id of the node: 0 for the root, then 1, 2, ... in creation order (candidates
  /// returned by one call get consecutive ids). dynamic_tree::candidate maps tree nodes back
  /// to these ids, so a callback may key per-node state (hidden states, KV slots) on them.
  std::int32_t node = 0;
  std::int32_t depth = 0;         ///< the node's depth (root 0)
  double cumulative = 1.0;        ///< product of draft probabilities on its root path
  std::span<const token_id> path; ///< tokens from the root (first) to the node (last)
};

/// @brief An expansion callback: writes up to `out.size()` (= top_k) children of the requested
/// node into `out`, most likely first, and returns how many it wrote.
///
/// Checked syntax: `f(const expand_request&, std::span<draft_candidate>)` returns something
/// convertible to std::int32_t. Promised semantics: the count is in [0, out.size()], tokens are
/// >= 0 and distinct, probabilities are in [0, 1] (the builder checks all three).
template <class F>
concept tree_expander = requires(F& f, const expand_request& r, std::span<draft_candidate> out) {
  { f(r, out) } -> std::convertible_to<std::int32_t>;
};

/// @brief A dynamic tree with its probabilities.
struct dynamic_tree {
  /// Kept nodes renumbered by decreasing cumulative probability (ties: smaller depth, then
  /// creation order), so parents precede children and siblings are in decreasing cumulative
  /// probability.
  token_tree tree;
  std::vector<double> cumulative;       ///< cumulative draft probability (root 1); [N]
  std::vector<float> draft_probability; ///< draft probability given the parent (root 1); [N]
  std::vector<std::int32_t> candidate;  ///< expand_request::node id of each node (root 0); [N]
  std::int32_t num_candidates = 0;      ///< non-root candidates the expansion produced
};

/// @brief Grows a dynamic tree (EAGLE-2): expansion rounds, then a global rerank.
///
/// Round 1 expands the root. Round r > 1 expands the top_k nodes created in round r - 1 with the
/// highest cumulative probability (ties: creation order). Each expansion calls
/// `expand(request, out)` once with `out` of size top_k; a child's cumulative probability is
/// its parent's times its draft probability. After min(depth, budget) rounds (deeper nodes
/// could never be kept) every non-root candidate is ranked by cumulative probability, ties
/// broken by smaller depth then creation order, and the first min(budget, candidates) are
/// kept. A cumulative probability never increases along a path and a parent wins ties against
/// its child, so the kept set is ancestor-closed.
/// @tparam Expand a tree_expander (checked by a static_assert with a readable message)
/// @param[in] root_token the token of the root (the last committed token)
/// @param[in] config depth, top_k and budget
/// @param[in] expand the expansion callback
/// @param[out] out receives the tree and its probabilities (unchanged on error)
/// @return config.validate()'s status; errc::shape_mismatch when a callback returns a count
///   outside [0, top_k]; errc::token_out_of_range for a negative token; errc::invalid_value for
///   a probability that is NaN or outside [0, 1], or a token repeated among one node's
///   children; ok otherwise
/// @par Complexity
/// At most 1 + (min(depth, budget) - 1) * top_k callback calls; O(C log C) besides, with C the
/// number of candidates (at most top_k + (depth - 1) * top_k^2).
template <class Expand>
[[nodiscard]] status build_dynamic_tree(token_id root_token,
                                        const dynamic_tree_config& config,
                                        Expand&& expand,
                                        dynamic_tree& out) {
  using fn = std::remove_reference_t<Expand>;
  static_assert(tree_expander<fn>,
                "build_dynamic_tree: Expand needs 'int operator()(const tree::expand_request&, "
                "std::span<tree::draft_candidate>)' returning how many candidates it wrote "
                "(at most top_k)");
  if constexpr (!tree_expander<fn>) {
    return status{errc::invalid_argument};
  } else {
    if (const status s = config.validate(); !s.ok())
      return s;
    struct cand {
      std::int32_t parent, depth;
      token_id token;
      float probability;
      double cumulative;
    };
    std::vector<cand> cands{{-1, 0, root_token, 1.0f, 1.0}};
    // Higher cumulative first; then shallower; then created earlier.
    auto better = [&cands](std::int32_t a, std::int32_t b) {
      const cand& x = cands[static_cast<std::size_t>(a)];
      const cand& y = cands[static_cast<std::size_t>(b)];
      if (x.cumulative != y.cumulative)
        return x.cumulative > y.cumulative;
      if (x.depth != y.depth)
        return x.depth < y.depth;
      return a < b;
    };
    const auto top_k = static_cast<std::size_t>(config.top_k);
    std::vector<draft_candidate> buf(top_k);
    std::vector<token_id> path;
    std::vector<std::int32_t> frontier{0}, created;
    const int rounds = std::min(config.depth, config.budget);
    for (int round = 1; round <= rounds && !frontier.empty(); ++round) {
      created.clear();
      for (const std::int32_t u : frontier) {
        const cand node = cands[static_cast<std::size_t>(u)];
        path.assign(static_cast<std::size_t>(node.depth) + 1, 0);
        for (std::int32_t k = u, i = node.depth; k >= 0;
             k = cands[static_cast<std::size_t>(k)].parent, --i)
          path[static_cast<std::size_t>(i)] = cands[static_cast<std::size_t>(k)].token;
        const expand_request req{u, node.depth, node.cumulative, path};
        std::fill(buf.begin(), buf.end(), draft_candidate{});
        const auto count = static_cast<std::int32_t>(expand(req, std::span<draft_candidate>(buf)));
        if (count < 0 || count > config.top_k)
          return status{errc::shape_mismatch};
        for (std::int32_t i = 0; i < count; ++i) {
          const draft_candidate& c = buf[static_cast<std::size_t>(i)];
          if (c.token < 0)
            return status{errc::token_out_of_range};
          if (!(c.probability >= 0.0f && c.probability <= 1.0f))
            return status{errc::invalid_value};
          for (std::int32_t j = 0; j < i; ++j)
            if (buf[static_cast<std::size_t>(j)].token == c.token)
              return status{errc::invalid_value};
          created.push_back(static_cast<std::int32_t>(cands.size()));
          cands.push_back({u,
                           node.depth + 1,
                           c.token,
                           c.probability,
                           node.cumulative * static_cast<double>(c.probability)});
        }
      }
      // The next frontier: the top_k newest nodes (all at depth `round`).
      std::sort(created.begin(), created.end(), better);
      if (created.size() > top_k)
        created.resize(top_k);
      frontier.swap(created);
    }

    std::vector<std::int32_t> order(cands.size() - 1);
    for (std::size_t i = 0; i < order.size(); ++i)
      order[i] = static_cast<std::int32_t>(i + 1);
    std::sort(order.begin(), order.end(), better);
    const std::size_t keep = std::min(order.size(), static_cast<std::size_t>(config.budget));

    dynamic_tree r;
    r.tree.reset(root_token);
    r.cumulative.assign(1, 1.0);
    r.draft_probability.assign(1, 1.0f);
    r.candidate.assign(1, 0);
    r.num_candidates = static_cast<std::int32_t>(order.size());
    std::vector<std::int32_t> index(cands.size(), -1); // candidate id -> tree node
    index[0] = 0;
    for (std::size_t i = 0; i < keep; ++i) {
      const std::int32_t id = order[i];
      const cand& c = cands[static_cast<std::size_t>(id)];
      // Ancestor-closed: the parent ranks earlier, so it is already placed.
      const std::int32_t j = r.tree.add(index[static_cast<std::size_t>(c.parent)], c.token);
      index[static_cast<std::size_t>(id)] = j;
      r.cumulative.push_back(c.cumulative);
      r.draft_probability.push_back(c.probability);
      r.candidate.push_back(id);
    }
    out = std::move(r);
    return status{};
  }
}

} // namespace tree

SPECDEC_NAMESPACE_END
