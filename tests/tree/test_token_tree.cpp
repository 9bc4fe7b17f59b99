// SPDX-License-Identifier: Apache-2.0
//
// tree::validate on every kind of malformed tree (each must report its own tree_error and node),
// token_tree construction and queries, and child walks of tree_view with and without sibling
// lists agreeing on random trees.
#include <specdec/tree/token_tree.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

using specdec::errc;
using specdec::index_t;
using specdec::token_id;
namespace tree = specdec::tree;

tree::tree_check check(const std::vector<std::int32_t>& parents, std::int32_t depth_limit = -1) {
  return tree::validate(tree::tree_view{parents.data(), static_cast<std::int32_t>(parents.size())},
                        depth_limit);
}

// Random parents: shape 0 uniform (bushy), 1 near the previous node (deep), 2 a chain.
std::vector<std::int32_t> random_parents(std::mt19937& rng, std::int32_t n, int shape) {
  std::vector<std::int32_t> p(static_cast<std::size_t>(n), -1);
  for (std::int32_t j = 1; j < n; ++j) {
    std::int32_t v = 0;
    if (shape == 0)
      v = static_cast<std::int32_t>(rng() % static_cast<std::uint32_t>(j));
    else if (shape == 1)
      v = j - 1 - static_cast<std::int32_t>(rng() % static_cast<std::uint32_t>(j < 3 ? j : 3));
    else
      v = j - 1;
    p[static_cast<std::size_t>(j)] = v;
  }
  return p;
}

std::vector<std::int32_t> children_of(const tree::tree_view& v, std::int32_t u) {
  std::vector<std::int32_t> out;
  for (std::int32_t c = v.first_child_of(u); c != -1; c = v.next_sibling_of(c))
    out.push_back(c);
  return out;
}

} // namespace

TEST_CASE("validate: well-formed trees pass and report their depth", "[tree][validate]") {
  const tree::tree_check root_only = check({-1});
  CHECK(root_only.ok());
  CHECK(root_only.node == -1);
  CHECK(root_only.max_depth == 0);
  const tree::tree_check c = check({-1, 0, 0, 1, 3, 2});
  CHECK(c.ok());
  CHECK(c.max_depth == 3);
  CHECK(check({-1, 0, 1, 2}, 3).ok()); // depth exactly at the limit
  std::vector<std::int32_t> full(static_cast<std::size_t>(tree::max_nodes));
  for (std::size_t j = 0; j < full.size(); ++j)
    full[j] = static_cast<std::int32_t>(j) - 1;
  CHECK(check(full).ok());
  CHECK(std::string(tree::message(tree::tree_error::none)) == "ok");
}

TEST_CASE("validate: each malformed tree reports its own error and node", "[tree][validate]") {
  SECTION("empty") {
    CHECK(tree::validate(tree::tree_view{}).error == tree::tree_error::empty);
    const std::int32_t p[] = {-1};
    CHECK(tree::validate(tree::tree_view{p, 0}).error == tree::tree_error::empty);
    CHECK(tree::validate(tree::tree_view{p, -3}).error == tree::tree_error::empty);
    CHECK(tree::validate(tree::tree_view{nullptr, 4}).error == tree::tree_error::empty);
  }
  SECTION("bad root") {
    const tree::tree_check c = check({0, 0});
    CHECK(c.error == tree::tree_error::bad_root);
    CHECK(c.node == 0);
    CHECK(check({1, 0}).error == tree::tree_error::bad_root);
  }
  SECTION("second root") {
    const tree::tree_check c = check({-1, 0, -1, 1});
    CHECK(c.error == tree::tree_error::second_root);
    CHECK(c.node == 2);
  }
  SECTION("out-of-range parent") {
    tree::tree_check c = check({-1, 0, 7});
    CHECK(c.error == tree::tree_error::parent_range);
    CHECK(c.node == 2);
    c = check({-1, -2});
    CHECK(c.error == tree::tree_error::parent_range);
    CHECK(c.node == 1);
  }
  SECTION("forward parent") {
    const tree::tree_check c = check({-1, 2, 0});
    CHECK(c.error == tree::tree_error::forward_parent);
    CHECK(c.node == 1);
  }
  SECTION("cycle") {
    tree::tree_check c = check({-1, 2, 1});
    CHECK(c.error == tree::tree_error::cycle);
    CHECK(c.node == 1);
    c = check({-1, 1}); // a node that is its own parent
    CHECK(c.error == tree::tree_error::cycle);
    CHECK(c.node == 1);
    c = check({-1, 0, 4, 2, 3}); // 2 -> 4 -> 3 -> 2
    CHECK(c.error == tree::tree_error::cycle);
    CHECK(c.node == 2);
  }
  SECTION("depth over the limit") {
    const tree::tree_check c = check({-1, 0, 1, 2, 3, 0}, 3);
    CHECK(c.error == tree::tree_error::depth_limit);
    CHECK(c.node == 4);
    CHECK(check({-1, 0}, 0).error == tree::tree_error::depth_limit);
  }
  SECTION("more than max_nodes") {
    std::vector<std::int32_t> p(static_cast<std::size_t>(tree::max_nodes) + 1, 0);
    p[0] = -1;
    CHECK(check(p).error == tree::tree_error::too_many_nodes);
  }
  SECTION("inconsistent sibling lists") {
    // Tree: 0 -> {1, 2}, 1 -> {3}.
    const std::int32_t parents[] = {-1, 0, 0, 1};
    const std::int32_t fc_ok[] = {1, 3, -1, -1};
    const std::int32_t ns_ok[] = {-1, 2, -1, -1};
    CHECK(tree::validate(tree::tree_view{parents, 4, fc_ok, ns_ok}).ok());
    const std::int32_t fc_missing[] = {1, -1, -1, -1}; // node 3 is nobody's child
    CHECK(tree::validate(tree::tree_view{parents, 4, fc_missing, ns_ok}).error
          == tree::tree_error::inconsistent_lists);
    const std::int32_t ns_wrong_parent[] = {-1, 3, -1, -1}; // 3 listed as a child of 0
    CHECK(tree::validate(tree::tree_view{parents, 4, fc_ok, ns_wrong_parent}).error
          == tree::tree_error::inconsistent_lists);
    const std::int32_t fc_order[] = {2, 3, -1, -1}; // 2 then 1: siblings out of index order
    const std::int32_t ns_order[] = {-1, -1, 1, -1};
    CHECK(tree::validate(tree::tree_view{parents, 4, fc_order, ns_order}).error
          == tree::tree_error::inconsistent_lists);
    const std::int32_t ns_root[] = {2, 2, -1, -1}; // the root has a sibling
    CHECK(tree::validate(tree::tree_view{parents, 4, fc_ok, ns_root}).error
          == tree::tree_error::inconsistent_lists);
    CHECK(tree::validate(tree::tree_view{parents, 4, fc_ok, nullptr}).error
          == tree::tree_error::inconsistent_lists); // only one of the two lists
  }
}

TEST_CASE("validate: every error has a distinct message", "[tree][validate]") {
  using e = tree::tree_error;
  const e all[] = {e::none,
                   e::empty,
                   e::too_many_nodes,
                   e::bad_root,
                   e::second_root,
                   e::parent_range,
                   e::forward_parent,
                   e::cycle,
                   e::depth_limit,
                   e::inconsistent_lists};
  for (e a : all)
    for (e b : all)
      if (a != b)
        CHECK(std::string(tree::message(a)) != tree::message(b));
}

TEST_CASE("check_node: nodes are checked independently", "[tree][validate]") {
  const std::vector<std::int32_t> p = {-1, 0, 1, 2, 0};
  const tree::tree_view v{p.data(), 5};
  CHECK(tree::check_node(v, 3).max_depth == 3);
  CHECK(tree::check_node(v, 4).max_depth == 1);
  CHECK(tree::check_node(v, 3, 2).error == tree::tree_error::depth_limit);
  CHECK(tree::check_node(v, 4, 2).ok());
}

TEST_CASE("token_tree: add, find_child and the per-node arrays", "[tree][token_tree]") {
  tree::token_tree t;
  CHECK(t.size() == 0);
  t.reset(100);
  CHECK(t.size() == 1);
  const std::int32_t a = t.add(0, 5);
  const std::int32_t b = t.add(0, 7);
  const std::int32_t c = t.add(a, 9);
  const std::int32_t d = t.add(a, 5);
  CHECK(a == 1);
  CHECK(b == 2);
  CHECK(c == 3);
  CHECK(d == 4);
  CHECK(t.add(-1, 1) == -1);
  CHECK(t.add(5, 1) == -1);
  CHECK(t.size() == 5);
  CHECK(t.find_child(0, 7) == b);
  CHECK(t.find_child(0, 5) == a);
  CHECK(t.find_child(a, 5) == d);
  CHECK(t.find_child(a, 7) == -1);
  CHECK(t.find_child(b, 9) == -1);
  CHECK(std::vector<token_id>(t.tokens().begin(), t.tokens().end())
        == std::vector<token_id>{100, 5, 7, 9, 5});
  CHECK(std::vector<std::int32_t>(t.parents().begin(), t.parents().end())
        == std::vector<std::int32_t>{-1, 0, 0, 1, 1});
  CHECK(std::vector<std::int32_t>(t.depths().begin(), t.depths().end())
        == std::vector<std::int32_t>{0, 1, 1, 2, 2});
  CHECK(std::vector<std::int32_t>(t.first_children().begin(), t.first_children().end())
        == std::vector<std::int32_t>{1, 3, -1, -1, -1});
  CHECK(std::vector<std::int32_t>(t.next_siblings().begin(), t.next_siblings().end())
        == std::vector<std::int32_t>{-1, 2, -1, 4, -1});
  CHECK(t.max_depth() == 2);
  CHECK(tree::validate(t.view()).ok());
  t.reset(3);
  CHECK(t.size() == 1);
  CHECK(t.tokens()[0] == 3);
  CHECK(t.max_depth() == 0);
}

TEST_CASE("token_tree: add stops at max_nodes", "[tree][token_tree]") {
  tree::token_tree t(0);
  for (std::int32_t j = 1; j < tree::max_nodes; ++j)
    REQUIRE(t.add(j - 1, j) == j);
  CHECK(t.size() == tree::max_nodes);
  CHECK(t.add(0, 1) == -1);
  CHECK(t.size() == tree::max_nodes);
  CHECK(t.max_depth() == tree::max_nodes - 1);
}

TEST_CASE("token_tree: assign validates and keeps the tree on error", "[tree][token_tree]") {
  tree::token_tree t(1);
  REQUIRE(t.add(0, 2) == 1);
  const std::vector<token_id> tokens = {10, 11, 12, 13};
  std::vector<std::int32_t> parents = {-1, 0, 0, 2};
  tree::tree_check why;
  REQUIRE(t.assign(tokens, parents, -1, &why).ok());
  CHECK(why.ok());
  CHECK(t.size() == 4);
  CHECK(t.parents()[3] == 2);
  CHECK(t.depths()[3] == 2);
  CHECK(t.find_child(2, 13) == 3);

  parents = {-1, 2, 1, 0}; // cycle 1 <-> 2
  CHECK(t.assign(tokens, parents, -1, &why).code == errc::malformed_tree);
  CHECK(why.error == tree::tree_error::cycle);
  CHECK(t.size() == 4);
  CHECK(t.parents()[3] == 2);

  parents = {-1, 0, 1, 2};
  CHECK(t.assign(tokens, parents, 2, &why).code == errc::malformed_tree);
  CHECK(why.error == tree::tree_error::depth_limit);
  CHECK(t.assign(tokens, std::vector<std::int32_t>{-1, 0}).code == errc::shape_mismatch);
  CHECK(t.assign(std::vector<token_id>{}, std::vector<std::int32_t>{}).code
        == errc::malformed_tree);
  CHECK(t.parents()[3] == 2);
}

TEST_CASE("token_tree: path_to, leaf_paths and positions", "[tree][token_tree]") {
  // 0 -> {1, 2}; 1 -> {3}; 2 -> {4, 5}; 4 -> {6}
  tree::token_tree t;
  REQUIRE(t.assign(std::vector<token_id>{0, 1, 2, 3, 4, 5, 6},
                   std::vector<std::int32_t>{-1, 0, 0, 1, 2, 2, 4})
              .ok());
  CHECK(t.path_to(0) == std::vector<std::int32_t>{0});
  CHECK(t.path_to(3) == std::vector<std::int32_t>{0, 1, 3});
  CHECK(t.path_to(6) == std::vector<std::int32_t>{0, 2, 4, 6});
  const std::vector<std::vector<std::int32_t>> leaves = {{0, 1, 3}, {0, 2, 5}, {0, 2, 4, 6}};
  CHECK(t.leaf_paths() == leaves);
  CHECK(t.positions(10) == std::vector<index_t>{10, 11, 11, 12, 12, 12, 13});
  CHECK(tree::token_tree(7).leaf_paths() == std::vector<std::vector<std::int32_t>>{{0}});

  std::int32_t buf[4] = {-9, -9, -9, -9};
  CHECK(tree::write_path(t.view(), 6, buf, 4) == 4);
  CHECK(std::vector<std::int32_t>(buf, buf + 4) == std::vector<std::int32_t>{0, 2, 4, 6});
  buf[0] = -9;
  CHECK(tree::write_path(t.view(), 6, buf, 3) == -1);
  CHECK(buf[0] == -9);
}

TEST_CASE("tree_view: child walks with and without sibling lists agree on random trees",
          "[tree][view]") {
  std::mt19937 rng(20240611);
  for (int trial = 0; trial < 300; ++trial) {
    const auto n = static_cast<std::int32_t>(1 + rng() % 120);
    const std::vector<std::int32_t> parents = random_parents(rng, n, trial % 3);
    std::vector<token_id> tokens(parents.size());
    for (std::size_t j = 0; j < tokens.size(); ++j)
      tokens[j] = static_cast<token_id>(rng() % 50);
    tree::token_tree t;
    REQUIRE(t.assign(tokens, parents).ok());
    const tree::tree_view with = t.view();
    const tree::tree_view without{parents.data(), n};
    REQUIRE(with.has_lists());
    REQUIRE_FALSE(without.has_lists());
    REQUIRE(tree::validate(with).ok());
    REQUIRE(tree::validate(without).max_depth == t.max_depth());
    for (std::int32_t u = 0; u < n; ++u) {
      // Reference: every later node whose parent is u, in index order.
      std::vector<std::int32_t> ref;
      for (std::int32_t j = u + 1; j < n; ++j)
        if (parents[static_cast<std::size_t>(j)] == u)
          ref.push_back(j);
      CHECK(children_of(with, u) == ref);
      CHECK(children_of(without, u) == ref);
      CHECK(with.depth(u) == t.depths()[static_cast<std::size_t>(u)]);
      CHECK(without.depth(u) == t.depths()[static_cast<std::size_t>(u)]);
      const std::vector<std::int32_t> path = t.path_to(u);
      CHECK(path.size() == static_cast<std::size_t>(t.depths()[static_cast<std::size_t>(u)]) + 1);
      std::int32_t ancestor_mismatches = 0;
      for (std::int32_t a = 0; a < n; ++a) {
        bool on_path = false;
        for (std::int32_t k : path)
          on_path = on_path || k == a;
        ancestor_mismatches += without.is_ancestor(a, u) != on_path ? 1 : 0;
      }
      CHECK(ancestor_mismatches == 0);
    }
  }
}
