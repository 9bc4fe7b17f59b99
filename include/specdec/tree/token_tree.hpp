// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Token trees: the trivially copyable tree_view shared by host and device (parents,
/// first-child / next-sibling lists, depths, root paths), its validation, and the host-side
/// token_tree that owns the arrays.
///
/// Conventions (every tree/ verify/ kv/ and cuda/ component uses them):
///  - Node 0 is the root: the last committed token (the anchor), whose target row scores the
///    depth-1 drafts. `parents[0] == -1`; every other node j has `0 <= parents[j] < j`
///    (topological order: a parent precedes its children), so a node's index is never below its
///    depth.
///  - Siblings are ordered by node index; verification rules try them in that order.
///  - Node j sits at absolute position `base + depth(j)`, where `base` is the root's position.
///  - Target row j of a tree verification scores the children of node j (N rows in all).

#include <specdec/config.hpp>

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>

#include <cstdint>
#include <span>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

/// @brief Token trees: topology (tree_view, token_tree), validation, attention masks and the
/// static / dynamic tree builders.
namespace tree {

/// Largest tree any component accepts (nodes, root included): bounds per-request scratch on the
/// device (a 1024-bit set of nodes).
inline constexpr std::int32_t max_nodes = 1024;

/// Most siblings a stochastic tree rule tries under one node; later siblings are skipped (still
/// lossless: fewer candidates, the residual absorbs their mass) and flagged malformed_tree.
inline constexpr std::int32_t max_siblings = 16;

/// @brief What is wrong with a tree (tree_error::none when nothing).
enum class tree_error : std::uint8_t {
  none = 0,          ///< well formed
  empty,             ///< no nodes, or a null parent array with nodes
  too_many_nodes,    ///< more than max_nodes nodes
  bad_root,          ///< parents[0] != -1
  second_root,       ///< parents[j] == -1 for some j > 0
  parent_range,      ///< parents[j] < -1 or parents[j] >= num_nodes
  forward_parent,    ///< parents[j] > j (a parent after its child) without a cycle
  cycle,             ///< following parents from some node returns to it
  depth_limit,       ///< a node is deeper than the caller's limit
  inconsistent_lists ///< first_child / next_sibling disagree with parents
};

/// @brief A short message for a tree_error (a static string).
/// @param[in] e the error
/// @return its description
/// @par Complexity
/// Constant. @hd
SPECDEC_HD constexpr const char* message(tree_error e) noexcept {
  switch (e) {
  case tree_error::none:
    return "ok";
  case tree_error::empty:
    return "empty tree";
  case tree_error::too_many_nodes:
    return "more nodes than tree::max_nodes";
  case tree_error::bad_root:
    return "node 0 must be the root (parent -1)";
  case tree_error::second_root:
    return "a second node with parent -1";
  case tree_error::parent_range:
    return "parent index out of range";
  case tree_error::forward_parent:
    return "parent after its child (parents must precede children)";
  case tree_error::cycle:
    return "cycle in the parent links";
  case tree_error::depth_limit:
    return "depth over the limit";
  case tree_error::inconsistent_lists:
    return "first-child / next-sibling lists disagree with the parents";
  }
  return "unknown tree error";
}

/// @brief A validation result: the error and the first node that shows it (-1 when none).
struct tree_check {
  tree_error error = tree_error::none; ///< what is wrong
  std::int32_t node = -1;              ///< the first offending node, or -1
  std::int32_t max_depth = 0;          ///< the depth of the deepest node (valid trees only)

  /// @brief True when the tree is well formed. O(1). @hd
  /// @return `error == tree_error::none`
  SPECDEC_HD constexpr bool ok() const noexcept {
    return error == tree_error::none;
  }
};

/// @brief A non-owning view of a token tree (trivially copyable; host and device).
///
/// Only `parents` is required. `first_child` / `next_sibling`, when both are given, make child
/// iteration O(1) per step; without them a child walk scans later nodes (O(N) per step).
struct tree_view {
  const std::int32_t* parents = nullptr;      ///< parent of each node; @shape{[num_nodes]}
  std::int32_t num_nodes = 0;                 ///< N >= 1 (the root included)
  const std::int32_t* first_child = nullptr;  ///< optional: first child or -1; @shape{[N]}
  const std::int32_t* next_sibling = nullptr; ///< optional: next sibling or -1; @shape{[N]}

  /// @brief Parent of node j (-1 for the root). O(1). @hd
  /// @param[in] j a node, 0 <= j < num_nodes
  /// @return its parent
  SPECDEC_HD constexpr std::int32_t parent(std::int32_t j) const noexcept {
    return parents[j];
  }
  /// @brief True when the sibling lists are present. O(1). @hd
  /// @return both list pointers are non-null
  SPECDEC_HD constexpr bool has_lists() const noexcept {
    return first_child != nullptr && next_sibling != nullptr;
  }
  /// @brief First child of node u (lowest index), or -1. @hd
  /// @param[in] u a node
  /// @return the child
  /// @par Complexity
  /// O(1) with lists, else O(N).
  SPECDEC_HD constexpr std::int32_t first_child_of(std::int32_t u) const noexcept {
    if (has_lists())
      return first_child[u];
    for (std::int32_t j = u + 1; j < num_nodes; ++j)
      if (parents[j] == u)
        return j;
    return -1;
  }
  /// @brief Next sibling of node j (next higher index with the same parent), or -1. @hd
  /// @param[in] j a node other than the root
  /// @return the sibling
  /// @par Complexity
  /// O(1) with lists, else O(N).
  SPECDEC_HD constexpr std::int32_t next_sibling_of(std::int32_t j) const noexcept {
    if (has_lists())
      return next_sibling[j];
    for (std::int32_t k = j + 1; k < num_nodes; ++k)
      if (parents[k] == parents[j])
        return k;
    return -1;
  }
  /// @brief Depth of node j (root 0) on a valid tree. O(depth). @hd
  /// @param[in] j a node
  /// @return the number of edges from the root
  SPECDEC_HD constexpr std::int32_t depth(std::int32_t j) const noexcept {
    std::int32_t d = 0;
    for (std::int32_t k = j; k > 0 && d < num_nodes; k = parents[k])
      ++d;
    return d;
  }
  /// @brief True when node a is an ancestor of node b or b itself. O(depth). @hd
  ///
  /// On a malformed tree the walk still ends (at most num_nodes steps, stopping at any parent
  /// out of range) and the answer is unspecified.
  /// @param[in] a candidate ancestor
  /// @param[in] b a node
  /// @return whether a lies on b's root path
  SPECDEC_HD constexpr bool is_ancestor(std::int32_t a, std::int32_t b) const noexcept {
    std::int32_t k = b;
    for (std::int32_t steps = 0; steps <= num_nodes && k >= a && k < num_nodes; ++steps) {
      if (k == a)
        return true;
      k = parents[k];
    }
    return false;
  }
};

/// @brief Checks node j alone: its parent link, a cycle or forward parent through it, and its
/// depth against the limit. Independent per node, so a device block can check nodes in
/// parallel. @hd
/// @param[in] t the tree (num_nodes in [1, max_nodes], parents non-null)
/// @param[in] j the node
/// @param[in] depth_limit the deepest depth allowed (root 0); negative: no limit
/// @return the problem at j (node = j), or a clean check whose max_depth is depth(j)
/// @par Complexity
/// O(depth(j)) for a valid node; O(N) at worst.
SPECDEC_HD constexpr tree_check
check_node(const tree_view& t, std::int32_t j, std::int32_t depth_limit = -1) noexcept {
  const std::int32_t n = t.num_nodes;
  const std::int32_t p = t.parents[j];
  if (j == 0)
    return p == -1 ? tree_check{} : tree_check{tree_error::bad_root, 0, 0};
  if (p == -1)
    return {tree_error::second_root, j, 0};
  if (p < -1 || p >= n)
    return {tree_error::parent_range, j, 0};
  if (p >= j) { // a cycle when following parents from j comes back to j within n steps
    std::int32_t k = p;
    for (std::int32_t steps = 0; steps < n && k > 0; ++steps) {
      if (k == j)
        return {tree_error::cycle, j, 0};
      const std::int32_t q = t.parents[k];
      if (q < 0 || q >= n)
        break;
      k = q;
    }
    return {tree_error::forward_parent, j, 0};
  }
  // Every ancestor link is checked by its own node; here they may still be bad, so the walk
  // is bounded and stops on anything out of order.
  std::int32_t d = 0;
  for (std::int32_t k = j; k > 0 && d <= n; ++d) {
    const std::int32_t q = t.parents[k];
    if (q < 0 || q >= k)
      break;
    k = q;
  }
  if (depth_limit >= 0 && d > depth_limit)
    return {tree_error::depth_limit, j, 0};
  return {tree_error::none, -1, d};
}

/// @brief Checks that first_child / next_sibling list exactly the children of every node in
/// increasing index order (parents already valid). @hd
/// @param[in] t a tree whose parent links passed check_node
/// @return the first node whose list is wrong, or a clean check
/// @par Complexity
/// O(N).
SPECDEC_HD constexpr tree_check check_lists(const tree_view& t) noexcept {
  if (t.first_child == nullptr && t.next_sibling == nullptr)
    return {};
  if (!t.has_lists() || t.next_sibling[0] != -1)
    return {tree_error::inconsistent_lists, 0, 0};
  const std::int32_t n = t.num_nodes;
  std::int32_t listed = 0;
  for (std::int32_t u = 0; u < n; ++u) {
    std::int32_t prev = u;
    for (std::int32_t c = t.first_child[u]; c != -1; c = t.next_sibling[c]) {
      if (c <= prev || c >= n || t.parents[c] != u)
        return {tree_error::inconsistent_lists, u, 0};
      prev = c;
      ++listed;
    }
  }
  if (listed != n - 1) // some child is missing from its parent's list
    return {tree_error::inconsistent_lists, 0, 0};
  return {};
}

/// @brief Checks a tree: node count, root, parent ranges and order, cycles, depth, and the
/// sibling lists when present. @hd
/// @param[in] t the tree
/// @param[in] depth_limit the deepest depth allowed (root 0); negative: no limit
/// @return the first problem found (lowest node), or a clean check with the tree's depth
/// @par Complexity
/// O(N x depth) for valid trees; O(N^2) at worst.
SPECDEC_HD constexpr tree_check validate(const tree_view& t,
                                         std::int32_t depth_limit = -1) noexcept {
  if (t.num_nodes <= 0 || t.parents == nullptr)
    return {tree_error::empty, -1, 0};
  if (t.num_nodes > max_nodes)
    return {tree_error::too_many_nodes, max_nodes, 0};
  tree_check c;
  for (std::int32_t j = 0; j < t.num_nodes; ++j) {
    const tree_check cj = check_node(t, j, depth_limit);
    if (!cj.ok())
      return cj;
    c.max_depth = cj.max_depth > c.max_depth ? cj.max_depth : c.max_depth;
  }
  const tree_check cl = check_lists(t);
  if (!cl.ok())
    return cl;
  return c;
}

/// @brief Writes the root path of `node` (root first, `node` last) into `out`. @hd
/// @param[in] t a valid tree
/// @param[in] node the last node of the path
/// @param[out] out receives depth(node) + 1 node indices
/// @param[in] capacity elements `out` can hold
/// @return the path length depth(node) + 1, or -1 (nothing written) when it exceeds capacity
/// @par Complexity
/// O(depth).
SPECDEC_HD constexpr std::int32_t write_path(const tree_view& t,
                                             std::int32_t node,
                                             std::int32_t* out,
                                             std::int32_t capacity) noexcept {
  const std::int32_t len = t.depth(node) + 1;
  if (len > capacity)
    return -1;
  std::int32_t k = node;
  for (std::int32_t i = len - 1; i >= 0; --i, k = t.parents[k])
    out[i] = k;
  return len;
}

/// @brief A token tree that owns its arrays: tokens, parents, depths and sibling lists.
///
/// Built node by node (add) or from a parent array (assign); both keep the conventions of this
/// file and maintain first-child / next-sibling lists, so view() gives O(1) child walks.
class token_tree {
public:
  /// @brief An empty tree (no root yet).
  token_tree() = default;

  /// @brief Starts a tree with only the root.
  /// @param[in] root_token the anchor (last committed) token
  explicit token_tree(token_id root_token) {
    reset(root_token);
  }

  /// @brief Drops every node and makes `root_token` the root. O(1) amortised.
  /// @param[in] root_token the anchor token
  void reset(token_id root_token) {
    tokens_.assign(1, root_token);
    parents_.assign(1, -1);
    depths_.assign(1, 0);
    first_child_.assign(1, -1);
    next_sibling_.assign(1, -1);
    last_child_.assign(1, -1);
  }

  /// @brief Appends a child of `parent` holding `token`; it becomes the parent's last sibling.
  /// @param[in] parent an existing node
  /// @param[in] token the drafted token
  /// @return the new node's index, or -1 when `parent` is not a node or the tree is full
  /// @par Complexity
  /// O(1) amortised.
  std::int32_t add(std::int32_t parent, token_id token) {
    if (parent < 0 || parent >= size() || size() >= max_nodes)
      return -1;
    const std::int32_t j = size();
    tokens_.push_back(token);
    parents_.push_back(parent);
    depths_.push_back(depths_[static_cast<std::size_t>(parent)] + 1);
    first_child_.push_back(-1);
    next_sibling_.push_back(-1);
    last_child_.push_back(-1);
    std::int32_t& last = last_child_[static_cast<std::size_t>(parent)];
    if (last < 0)
      first_child_[static_cast<std::size_t>(parent)] = j;
    else
      next_sibling_[static_cast<std::size_t>(last)] = j;
    last = j;
    return j;
  }

  /// @brief The child of `parent` holding `token`, or -1. O(children).
  /// @param[in] parent a node
  /// @param[in] token the token to look for
  /// @return the first such child
  [[nodiscard]] std::int32_t find_child(std::int32_t parent, token_id token) const noexcept {
    for (std::int32_t c = first_child_[static_cast<std::size_t>(parent)]; c >= 0;
         c = next_sibling_[static_cast<std::size_t>(c)])
      if (tokens_[static_cast<std::size_t>(c)] == token)
        return c;
    return -1;
  }

  /// @brief Replaces the tree with the given tokens and parents after validating them.
  /// @param[in] tokens one token per node (tokens[0] is the root's)
  /// @param[in] parents one parent per node
  /// @param[in] depth_limit deepest depth allowed (negative: none)
  /// @param[out] why when non-null, receives the validation result
  /// @return errc::shape_mismatch when the sizes differ; errc::malformed_tree (with `why`
  ///   describing it) when validate() fails; the tree is unchanged on error
  /// @par Complexity
  /// O(N).
  [[nodiscard]] status assign(std::span<const token_id> tokens,
                              std::span<const std::int32_t> parents,
                              std::int32_t depth_limit = -1,
                              tree_check* why = nullptr) {
    if (tokens.size() != parents.size())
      return status{errc::shape_mismatch};
    const tree_view v{parents.data(), static_cast<std::int32_t>(parents.size())};
    const tree_check c = parents.size() > static_cast<std::size_t>(max_nodes)
                             ? tree_check{tree_error::too_many_nodes, max_nodes, 0}
                             : validate(v, depth_limit);
    if (why != nullptr)
      *why = c;
    if (!c.ok())
      return status{errc::malformed_tree};
    reset(tokens[0]);
    for (std::size_t j = 1; j < tokens.size(); ++j)
      (void)add(parents[j], tokens[j]);
    return status{};
  }

  /// @brief Number of nodes, root included. O(1).
  /// @return N
  [[nodiscard]] std::int32_t size() const noexcept {
    return static_cast<std::int32_t>(parents_.size());
  }
  /// @brief Token of every node. O(1).
  /// @return the tokens, [N]
  [[nodiscard]] std::span<const token_id> tokens() const noexcept {
    return tokens_;
  }
  /// @brief Parent of every node. O(1).
  /// @return the parents, [N]
  [[nodiscard]] std::span<const std::int32_t> parents() const noexcept {
    return parents_;
  }
  /// @brief Depth of every node (root 0). O(1).
  /// @return the depths, [N]
  [[nodiscard]] std::span<const std::int32_t> depths() const noexcept {
    return depths_;
  }
  /// @brief First child of every node (-1: a leaf). O(1).
  /// @return the list heads, [N]
  [[nodiscard]] std::span<const std::int32_t> first_children() const noexcept {
    return first_child_;
  }
  /// @brief Next sibling of every node (-1: the last). O(1).
  /// @return the list links, [N]
  [[nodiscard]] std::span<const std::int32_t> next_siblings() const noexcept {
    return next_sibling_;
  }
  /// @brief Depth of the deepest node. O(N).
  /// @return the maximum depth (0 for a lone root)
  [[nodiscard]] std::int32_t max_depth() const noexcept {
    std::int32_t d = 0;
    for (std::int32_t x : depths_)
      d = x > d ? x : d;
    return d;
  }
  /// @brief Absolute position of every node: `base + depth`. O(N).
  /// @param[in] base the root's position
  /// @return the positions, [N]
  [[nodiscard]] std::vector<index_t> positions(index_t base) const {
    std::vector<index_t> out(depths_.size());
    for (std::size_t j = 0; j < out.size(); ++j)
      out[j] = base + depths_[j];
    return out;
  }
  /// @brief The view with sibling lists (valid while the tree is unchanged). O(1).
  /// @return the view
  [[nodiscard]] tree_view view() const noexcept {
    return {parents_.data(), size(), first_child_.data(), next_sibling_.data()};
  }
  /// @brief Root path of `node`, root first. O(depth).
  /// @param[in] node a node
  /// @return the node indices from the root to `node`
  [[nodiscard]] std::vector<std::int32_t> path_to(std::int32_t node) const {
    std::vector<std::int32_t> p(static_cast<std::size_t>(depths_[static_cast<std::size_t>(node)])
                                + 1);
    (void)write_path(view(), node, p.data(), static_cast<std::int32_t>(p.size()));
    return p;
  }
  /// @brief Every root-to-leaf path, leaves in index order. O(N x depth).
  /// @return one node-index path per leaf
  [[nodiscard]] std::vector<std::vector<std::int32_t>> leaf_paths() const {
    std::vector<std::vector<std::int32_t>> out;
    for (std::int32_t j = 0; j < size(); ++j)
      if (first_child_[static_cast<std::size_t>(j)] < 0)
        out.push_back(path_to(j));
    return out;
  }

private:
  std::vector<token_id> tokens_;
  std::vector<std::int32_t> parents_;
  std::vector<std::int32_t> depths_;
  std::vector<std::int32_t> first_child_;
  std::vector<std::int32_t> next_sibling_;
  std::vector<std::int32_t> last_child_;
};

} // namespace tree

SPECDEC_NAMESPACE_END
