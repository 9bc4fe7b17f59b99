// SPDX-License-Identifier: Apache-2.0
//
// The n-gram (prompt-lookup) tree drafter: which continuations it finds and in what order
// (longer n-grams first, most recent occurrence first), how it merges them into a trie (shared
// prefixes, distinct siblings), and the node, depth, branching, match and window limits.
#include <specdec/propose/concepts.hpp>
#include <specdec/propose/ngram_tree.hpp>
#include <specdec/tree/token_tree.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

namespace {

using specdec::errc;
using specdec::index_t;
using specdec::status;
using specdec::token_id;
using specdec::tree_draft;
using specdec::tree_draft_request;
using specdec::propose::ngram_tree_config;
using specdec::propose::ngram_tree_proposer;

SPECDEC_CHECK(tree_draft_proposer, ngram_tree_proposer);
static_assert(!specdec::dense_tree_draft_proposer<ngram_tree_proposer>);

struct drafted {
  status st;
  std::vector<token_id> tokens;
  std::vector<std::int32_t> parents;
};

drafted draft(ngram_tree_proposer& p,
              const std::vector<token_id>& context,
              std::int32_t max_nodes = 64,
              std::int32_t max_depth = 64) {
  tree_draft d;
  const tree_draft_request r{
      1, {context.data(), static_cast<index_t>(context.size())}, max_nodes, max_depth};
  drafted out;
  out.st = p.propose_tree(r, d);
  out.tokens.assign(d.tree.tokens().begin(), d.tree.tokens().end());
  out.parents.assign(d.tree.parents().begin(), d.tree.parents().end());
  if (d.tree.size() > 0)
    CHECK(specdec::tree::validate(d.tree.view()).ok());
  return out;
}

ngram_tree_config cfg(std::int32_t min_n,
                      std::int32_t max_n,
                      std::int32_t depth,
                      std::int32_t nodes,
                      std::int32_t matches = 8,
                      std::int32_t children = 4,
                      index_t window = 0) {
  return ngram_tree_config{min_n, max_n, depth, nodes, matches, children, window};
}

} // namespace

TEST_CASE("ngram tree: no repeated suffix drafts a lone root") {
  ngram_tree_proposer p(cfg(1, 3, 4, 8));
  const drafted d = draft(p, {1, 2, 3, 4, 5});
  REQUIRE(d.st.ok());
  CHECK(d.tokens == std::vector<token_id>{5});
  CHECK(d.parents == std::vector<std::int32_t>{-1});
  CHECK(p.last_matches() == 0);
  CHECK(draft(p, {7}).tokens == std::vector<token_id>{7});
}

TEST_CASE("ngram tree: continuations merge into a trie, most recent first") {
  // "1 2" occurred twice before: followed by 4 9 (recent) and 3 9 (older).
  ngram_tree_proposer p(cfg(1, 2, 2, 16, 2));
  const drafted d = draft(p, {1, 2, 3, 9, 1, 2, 4, 9, 1, 2});
  REQUIRE(d.st.ok());
  CHECK(d.tokens == std::vector<token_id>{2, 4, 9, 3, 9});
  CHECK(d.parents == std::vector<std::int32_t>{-1, 0, 1, 0, 3});
  CHECK(p.last_matches() == 2);
  CHECK(p.last_match_length() == 2);
}

TEST_CASE("ngram tree: longer n-grams come before more recent shorter ones") {
  // Suffix "5 6": a length-2 match at index 2 (followed by 7), and a more recent length-1 match
  // of "6" at index 5 (followed by 8).
  ngram_tree_proposer p(cfg(1, 2, 1, 8));
  const drafted d = draft(p, {1, 5, 6, 7, 0, 6, 8, 5, 6});
  REQUIRE(d.st.ok());
  CHECK(d.tokens == std::vector<token_id>{6, 7, 8});
  CHECK(d.parents == std::vector<std::int32_t>{-1, 0, 0});
  // With max_ngram 1 the recent match comes first.
  ngram_tree_proposer q(cfg(1, 1, 1, 8));
  CHECK(draft(q, {1, 5, 6, 7, 0, 6, 8, 5, 6}).tokens == std::vector<token_id>{6, 8, 7});
  // min_ngram 2 drops the short match.
  ngram_tree_proposer r(cfg(2, 2, 1, 8));
  CHECK(draft(r, {1, 5, 6, 7, 0, 6, 8, 5, 6}).tokens == std::vector<token_id>{6, 7});
}

TEST_CASE("ngram tree: shared prefixes are shared and exact repeats add nothing") {
  // "0" is followed by "1 2 3" three times and once by "1 2 4".
  const std::vector<token_id> ctx{0, 1, 2, 3, 0, 1, 2, 4, 0, 1, 2, 3, 0, 1, 2, 3, 0};
  ngram_tree_proposer p(cfg(1, 1, 3, 16, 8));
  const drafted d = draft(p, ctx);
  REQUIRE(d.st.ok());
  // Most recent continuation first: 1 2 3, then 1 2 4 branches at depth 3.
  CHECK(d.tokens == std::vector<token_id>{0, 1, 2, 3, 4});
  CHECK(d.parents == std::vector<std::int32_t>{-1, 0, 1, 2, 2});
  CHECK(p.last_matches() == 2);
}

TEST_CASE("ngram tree: node, depth, branching, match and window limits") {
  const std::vector<token_id> ctx{9, 1, 2, 3, 9, 4, 5, 6, 9, 7, 8, 0, 9};
  SECTION("node budget: the request's and the config's, whichever is smaller") {
    ngram_tree_proposer p(cfg(1, 1, 3, 4));
    const drafted d = draft(p, ctx);
    CHECK(d.tokens == std::vector<token_id>{9, 7, 8, 0, 4});
    CHECK(draft(p, ctx, 2).tokens == std::vector<token_id>{9, 7, 8});
    CHECK(draft(p, ctx, 0).tokens == std::vector<token_id>{9});
  }
  SECTION("depth: the request's and the config's") {
    ngram_tree_proposer p(cfg(1, 1, 2, 16));
    const drafted d = draft(p, ctx);
    CHECK(d.tokens == std::vector<token_id>{9, 7, 8, 4, 5, 1, 2});
    CHECK(d.parents == std::vector<std::int32_t>{-1, 0, 1, 0, 3, 0, 5});
    CHECK(draft(p, ctx, 16, 1).tokens == std::vector<token_id>{9, 7, 4, 1});
  }
  SECTION("children per node") {
    ngram_tree_proposer p(cfg(1, 1, 1, 16, 8, 2));
    CHECK(draft(p, ctx).tokens == std::vector<token_id>{9, 7, 4});
  }
  SECTION("matches per step") {
    ngram_tree_proposer p(cfg(1, 1, 3, 16, 1));
    CHECK(draft(p, ctx).tokens == std::vector<token_id>{9, 7, 8, 0});
    ngram_tree_proposer unlimited(cfg(1, 1, 1, 16, 0));
    CHECK(draft(unlimited, ctx).tokens == std::vector<token_id>{9, 7, 4, 1});
  }
  SECTION("window: only matches ending in the last W tokens") {
    ngram_tree_proposer p(cfg(1, 1, 1, 16, 8, 4, 5));
    CHECK(draft(p, ctx).tokens == std::vector<token_id>{9, 7});
    ngram_tree_proposer q(cfg(1, 1, 1, 16, 8, 4, 8));
    CHECK(draft(q, ctx).tokens == std::vector<token_id>{9, 7, 4});
  }
}

TEST_CASE("ngram tree: a self-overlapping run drafts up to the end of the context") {
  ngram_tree_proposer p(cfg(1, 3, 8, 8));
  const drafted d = draft(p, {4, 4, 4, 4});
  REQUIRE(d.st.ok());
  // "4 4 4" ends at index 2, followed by the last token only.
  CHECK(d.tokens == std::vector<token_id>{4, 4, 4, 4});
  CHECK(d.parents == std::vector<std::int32_t>{-1, 0, 1, 2});
}

TEST_CASE("ngram tree: bad settings and input give a status") {
  for (const ngram_tree_config& c : {cfg(0, 2, 4, 8),
                                     cfg(3, 2, 4, 8),
                                     cfg(1, 2, -1, 8),
                                     cfg(1, 2, 4, -1),
                                     cfg(1, 2, 4, 8, -1),
                                     cfg(1, 2, 4, 8, 8, 0),
                                     cfg(1, 2, 4, 8, 8, 17),
                                     cfg(1, 2, 4, 8, 8, 4, -1)}) {
    CHECK(c.validate().code == errc::invalid_value);
    ngram_tree_proposer p(c);
    CHECK(draft(p, {1, 2, 1}).st.code == errc::invalid_value);
  }
  ngram_tree_proposer p(cfg(1, 2, 4, 8));
  CHECK(draft(p, {1, -2, 1}).st.code == errc::invalid_value);
  CHECK(draft(p, {1, 2, 1}, -1).st.code == errc::invalid_value);
  CHECK(draft(p, {}).st.code == errc::invalid_value);
  CHECK(p.max_draft_nodes() == 8);
}
