// SPDX-License-Identifier: Apache-2.0
//
// Fuzz target: token trees. Two modes, picked by the first byte.
//
// Structure: fuzzed parent arrays (valid, malformed, around tree::max_nodes) with optional
// first-child / next-sibling lists (right, corrupted, half present) and depth limits.
//  - tree::validate equals a brute-force reading of its rules: the first (lowest) offending node
//    and its error (bad root, second root, parent range, cycle vs forward parent, depth limit),
//    list errors, and max_depth on success; check_node agrees node by node;
//  - on valid trees: tree_view depth / is_ancestor / first_child_of / next_sibling_of (with and
//    without lists) and write_path (too small a buffer: -1, nothing written) match brute force;
//  - masks (prefix lengths from 0 to near INT64_MAX): build_dense_mask, build_tree_mask,
//    build_packed_mask(_with_prefix) and positions succeed iff the tree is valid, the prefix /
//    base are in range and the buffer is large enough, write nothing on error and nothing past
//    the shape on success; dense entries are "prefix column or ancestor-or-self"; packed bits
//    equal the dense mask, bits past the last column are 0; mask_word, mask_word_with_prefix,
//    visible and visible_with_prefix agree with them (0 / false out of range); positions are
//    base + depth. On malformed trees the per-word functions terminate inside parents[0, N);
//  - token_tree: assign() accepts iff validate does (the tree unchanged on error, `why` equal
//    to validate's result); add() refuses bad parents and a full tree; the built tree validates
//    with its lists, its depths / leaf paths / positions / find_child match brute force.
//
// Batch: cpu::verify_tree_batch for greedy, rejection_sampling, one_hot_rejection and
// typical_acceptance over float / half / bfloat16 rows, with fuzzed trees (chains, stars past
// max_siblings, random, malformed), lists, draft-row layouts (one row per node, draft_offsets
// with gaps, shared draft_index rows), tokens, parameters, positions, seeds and one optional
// corruption of the batch.
//  - the call fails iff a brute-force reading of verify::validate(tree_batch) finds a problem,
//    with one of its codes, and then writes nothing;
//  - outputs in range: last_node in [0, N_b), next in [0, V), defined flags only; on a valid
//    tree accepted = depth(last_node), else malformed_tree with nothing accepted; the status
//    returned is the errc of the first request with an error flag;
//  - each request's result equals cpu::verify_tree on batch.request(b) and a batch holding only
//    that request (dense rows, one draft row per node; padding, NaN, never read);
//  - greedy equals brute-force greedy descent (flags included); one_hot_rejection with greedy
//    parameters agrees on clean requests, typical_acceptance with the deepest all-argmax path.

#include <specdec/specdec.hpp>

#include "support/fuzz_input.hpp"
#include "support/gen.hpp"
#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

using namespace specdec;
using specdec_fuzz::reader;

namespace {

using i32 = std::int32_t;
constexpr i32 sentinel_i32 = 0x7eadbeef;
constexpr std::uint32_t sentinel_bits = 0xdeadbeefu;

template <class I>
constexpr std::size_t ix(I i) {
  return static_cast<std::size_t>(i);
}

std::string check_str(const tree::tree_check& c) {
  return std::string(tree::message(c.error)) + " at node " + std::to_string(c.node) + ", depth "
         + std::to_string(c.max_depth);
}

// --- brute force -------------------------------------------------------------------------------

/// Children of every node (parents must be in range), in index order.
std::vector<std::vector<i32>> children_of(const std::vector<i32>& parents) {
  std::vector<std::vector<i32>> ch(parents.size());
  for (std::size_t j = 1; j < parents.size(); ++j)
    ch[ix(parents[j])].push_back(static_cast<i32>(j));
  return ch;
}

/// tree::validate's rules read literally.
tree::tree_check brute_validate(const std::vector<i32>& parents,
                                const i32* first_child,
                                const i32* next_sibling,
                                i32 depth_limit) {
  const auto n = static_cast<i32>(parents.size());
  if (n == 0)
    return {tree::tree_error::empty, -1, 0};
  if (n > tree::max_nodes)
    return {tree::tree_error::too_many_nodes, tree::max_nodes, 0};
  std::vector<i32> depth(ix(n), 0);
  i32 max_depth = 0;
  for (i32 j = 0; j < n; ++j) {
    const i32 p = parents[ix(j)];
    if (j == 0) {
      if (p != -1)
        return {tree::tree_error::bad_root, 0, 0};
      continue;
    }
    if (p == -1)
      return {tree::tree_error::second_root, j, 0};
    if (p < -1 || p >= n)
      return {tree::tree_error::parent_range, j, 0};
    if (p >= j) {
      // Does following parents from j come back to j?
      i32 k = p;
      for (i32 steps = 0; steps <= n; ++steps) {
        if (k == j)
          return {tree::tree_error::cycle, j, 0};
        if (k < 0 || k >= n)
          break;
        k = parents[ix(k)];
      }
      return {tree::tree_error::forward_parent, j, 0};
    }
    depth[ix(j)] = depth[ix(p)] + 1; // every lower node passed already
    if (depth_limit >= 0 && depth[ix(j)] > depth_limit)
      return {tree::tree_error::depth_limit, j, 0};
    max_depth = std::max(max_depth, depth[ix(j)]);
  }
  if (first_child != nullptr || next_sibling != nullptr) {
    if (first_child == nullptr || next_sibling == nullptr || next_sibling[0] != -1)
      return {tree::tree_error::inconsistent_lists, 0, 0};
    const auto ch = children_of(parents);
    for (i32 u = 0; u < n; ++u) {
      std::vector<i32> listed;
      for (i32 c = first_child[u]; c != -1 && listed.size() <= ix(n);
           c = c >= 0 && c < n ? next_sibling[c] : -1) {
        listed.push_back(c);
        if (c < 0 || c >= n)
          break;
      }
      if (listed != ch[ix(u)])
        return {tree::tree_error::inconsistent_lists, u, 0};
    }
  }
  return {tree::tree_error::none, -1, max_depth};
}

i32 brute_depth(const std::vector<i32>& parents, i32 j) {
  i32 d = 0;
  for (; j > 0; j = parents[ix(j)])
    ++d;
  return d;
}

bool brute_ancestor_or_self(const std::vector<i32>& parents, i32 a, i32 b) {
  for (i32 k = b; k >= 0; k = parents[ix(k)])
    if (k == a)
      return true;
  return false;
}

/// Correct first-child / next-sibling lists of valid parents.
void make_lists(const std::vector<i32>& parents, std::vector<i32>& fc, std::vector<i32>& ns) {
  fc.assign(parents.size(), -1);
  ns.assign(parents.size(), -1);
  const auto ch = children_of(parents);
  for (std::size_t u = 0; u < ch.size(); ++u)
    for (std::size_t k = 0; k < ch[u].size(); ++k) {
      if (k == 0)
        fc[u] = ch[u][k];
      else
        ns[ix(ch[u][k - 1])] = ch[u][k];
    }
}

/// Parents of n nodes: valid by construction (shape 0 random, 1 chain, 2 star, 3 per-node from
/// the input), then up to `corrupt` fuzzed overrides (any value).
std::vector<i32> read_parents(reader& in, i32 n, int max_corrupt) {
  std::vector<i32> p(ix(n));
  const int shape = in.u8() % 4;
  specdec_fuzz::splitmix g{in.u16()};
  for (i32 j = 0; j < n; ++j) {
    if (j == 0) {
      p[0] = -1;
      continue;
    }
    switch (shape) {
    case 0:
      p[ix(j)] = static_cast<i32>(g.next() % static_cast<std::uint64_t>(j));
      break;
    case 1:
      p[ix(j)] = j - 1;
      break;
    case 2:
      p[ix(j)] = 0;
      break;
    default:
      p[ix(j)] = j <= 64 ? in.range<i32>(0, j - 1)
                         : static_cast<i32>(g.next() % static_cast<std::uint64_t>(j));
      break;
    }
  }
  const int corrupt = max_corrupt > 0 ? in.u8() % (max_corrupt + 1) : 0;
  for (int c = 0; c < corrupt && n > 0; ++c) {
    const i32 j = in.range<i32>(0, n - 1);
    switch (in.u8() % 8) {
    case 0:
      p[ix(j)] = -1;
      break;
    case 1:
      p[ix(j)] = -2;
      break;
    case 2:
      p[ix(j)] = j;
      break;
    case 3:
      p[ix(j)] = n;
      break;
    case 4:
      p[ix(j)] = in.range<i32>(0, n - 1);
      break;
    case 5:
      p[ix(j)] = std::numeric_limits<i32>::min();
      break;
    case 6:
      p[ix(j)] = std::numeric_limits<i32>::max();
      break;
    default:
      p[ix(j)] = static_cast<i32>(in.u32());
      break;
    }
  }
  return p;
}

// --- structure mode ----------------------------------------------------------------------------

void check_masks(reader& in,
                 const tree::tree_view& t,
                 const std::vector<i32>& parents,
                 bool valid) {
  const i32 n = t.num_nodes;
  const std::uint8_t psel = in.u8();
  index_t prefix = 0;
  if (psel < 200)
    prefix = in.range<index_t>(0, 70);
  else if (psel < 215)
    prefix = -in.range<index_t>(1, 3);
  else if (psel < 235)
    prefix =
        std::numeric_limits<index_t>::max() - in.range<index_t>(0, index_t{2} * tree::max_nodes);
  else
    prefix = in.i64();
  const bool small = prefix >= 0 && prefix <= 70 && n <= 400;
  const int slack = in.range<int>(-1, 2);
  const std::string what = "N " + std::to_string(n) + " prefix " + std::to_string(prefix)
                           + (valid ? " (valid tree)" : " (malformed tree)") + ", buffer slack "
                           + std::to_string(slack) + ": ";

  // Dense (prefix + tree, and tree-only).
  for (int form = 0; form < 2; ++form) {
    const index_t pre = form == 0 ? prefix : 0;
    const bool fits = pre >= 0 && pre <= 70 && n <= 400;
    const index_t cols = fits ? pre + n : 0;
    const index_t need = n * cols;
    const index_t size = fits ? std::max<index_t>(0, need + slack) : 64;
    std::vector<std::uint8_t> out(ix(size), 0xab);
    const status s =
        form == 0 ? tree::build_dense_mask(t, pre, out) : tree::build_tree_mask(t, out);
    const bool expect_ok = valid && pre >= 0 && fits && size >= need;
    if (!valid)
      FUZZ_CHECK(s.code == errc::malformed_tree, what + "dense mask: " + s.message());
    else if (pre < 0)
      FUZZ_CHECK(s.code == errc::invalid_argument, what + "dense mask: " + s.message());
    FUZZ_CHECK(s.ok() == expect_ok, what + "dense mask: " + s.message());
    if (!s.ok()) {
      FUZZ_CHECK(std::all_of(out.begin(), out.end(), [](std::uint8_t x) { return x == 0xab; }),
                 what + "dense mask written on error");
      continue;
    }
    for (i32 r = 0; r < n; ++r)
      for (index_t c = 0; c < cols; ++c) {
        const bool want = c < pre || brute_ancestor_or_self(parents, static_cast<i32>(c - pre), r);
        FUZZ_CHECK(out[ix(r * cols + c)] == (want ? 1 : 0),
                   what + "dense entry (" + std::to_string(r) + ", " + std::to_string(c) + ")");
        if (form == 1)
          FUZZ_CHECK(tree::visible(t, r, static_cast<i32>(c)) == want, what + "visible()");
        else
          FUZZ_CHECK(tree::visible_with_prefix(t, pre, r, c) == want,
                     what + "visible_with_prefix()");
      }
    for (index_t i = need; i < size; ++i)
      FUZZ_CHECK(out[ix(i)] == 0xab, what + "dense mask written past its shape");
  }

  // Packed (prefix + tree, and tree-only).
  for (int form = 0; form < 2; ++form) {
    const index_t pre = form == 0 ? prefix : 0;
    const bool fits = pre >= 0 && pre <= 70 && n <= 400;
    const index_t cols = fits ? pre + n : 0;
    const index_t words = (cols + 31) / 32;
    const index_t need = n * words;
    const index_t size = fits ? std::max<index_t>(0, need + slack) : 8;
    std::vector<std::uint32_t> out(ix(size), 0xabababab);
    const status s = form == 0 ? tree::build_packed_mask_with_prefix(t, pre, out)
                               : tree::build_packed_mask(t, out);
    const bool expect_ok = valid && pre >= 0 && fits && size >= need;
    FUZZ_CHECK(s.ok() == expect_ok, what + "packed mask: " + s.message());
    if (fits && valid)
      FUZZ_CHECK((form == 0 ? tree::prefix_mask_words(pre, n) : tree::mask_words(n)) == words,
                 what + "mask word count");
    if (!s.ok()) {
      FUZZ_CHECK(
          std::all_of(out.begin(), out.end(), [](std::uint32_t x) { return x == 0xabababab; }),
          what + "packed mask written on error");
      continue;
    }
    for (i32 r = 0; r < n; ++r)
      for (index_t w = 0; w < words; ++w) {
        std::uint32_t want = 0;
        for (index_t b = 0; b < 32; ++b) {
          const index_t c = w * 32 + b;
          if (c < cols
              && (c < pre || brute_ancestor_or_self(parents, static_cast<i32>(c - pre), r)))
            want |= 1u << b;
        }
        FUZZ_CHECK(out[ix(r * words + w)] == want,
                   what + "packed word (" + std::to_string(r) + ", " + std::to_string(w) + ")");
        const std::uint32_t fn = form == 0 ? tree::mask_word_with_prefix(t, pre, r, w)
                                           : tree::mask_word(t, r, static_cast<i32>(w));
        FUZZ_CHECK(fn == want, what + "mask_word" + (form == 0 ? "_with_prefix" : ""));
      }
    for (index_t i = need; i < size; ++i)
      FUZZ_CHECK(out[ix(i)] == 0xabababab, what + "packed mask written past its shape");
  }

  // The per-entry functions: out of range gives 0 / false; on malformed trees they terminate
  // without reading outside parents[0, N) (ASan checks) whatever the prefix.
  FUZZ_CHECK(tree::mask_word(t, -1, 0) == 0u && tree::mask_word(t, n, 0) == 0u
                 && tree::mask_word(t, 0, -1) == 0u
                 && tree::mask_word(t, 0, tree::mask_words(n)) == 0u,
             what + "mask_word out of range");
  FUZZ_CHECK(!tree::visible(t, -1, 0) && !tree::visible(t, 0, n) && !tree::visible(t, n, 0),
             what + "visible out of range");
  // Known finding (tests/fuzz/README.md): prefix_mask_words, mask_word_with_prefix and
  // visible_with_prefix compute prefix_len + N unchecked.
  const bool skip_prefix = prefix > std::numeric_limits<index_t>::max() - tree::max_nodes
                           && specdec_fuzz::skip_known("mask_prefix_overflow");
  for (int probe = 0; probe < 4 && n > 0; ++probe) {
    const i32 r = in.range<i32>(0, n - 1);
    const index_t w = in.range<index_t>(0, 40);
    const index_t w2 = in.i64();
    const i32 col = in.range<i32>(0, n - 1);
    const index_t col2 = in.i64();
    (void)tree::mask_word(t, r, static_cast<i32>(w));
    (void)tree::visible(t, r, col);
    if (skip_prefix)
      continue;
    (void)tree::mask_word_with_prefix(t, prefix, r, w);
    (void)tree::mask_word_with_prefix(t, prefix, r, w2);
    (void)tree::visible_with_prefix(t, prefix, r, col2);
    (void)tree::prefix_mask_words(prefix, n);
  }
  (void)small;

  // Positions.
  const std::uint8_t bsel = in.u8();
  const index_t base = bsel < 200   ? in.range<index_t>(0, 1000)
                       : bsel < 230 ? std::numeric_limits<index_t>::max()
                                          - in.range<index_t>(0, index_t{2} * tree::max_nodes)
                                    : in.i64();
  const index_t psize = std::max<index_t>(0, n + slack);
  std::vector<index_t> pos(ix(psize), -7);
  const status s = tree::positions(t, base, pos);
  const index_t top = std::numeric_limits<index_t>::max();
  // Documented: overflow when base + N - 1 does not fit; the code is one stricter (base + N), so
  // that boundary may give either.
  const bool boundary = n > 0 && base == top - (n - 1);
  const bool expect_ok = valid && base >= 0 && base <= top - n && psize >= n;
  if (!boundary || !valid || psize < n)
    FUZZ_CHECK(s.ok() == expect_ok,
               what + "positions(base " + std::to_string(base) + "): " + s.message());
  if (!s.ok()) {
    FUZZ_CHECK(std::all_of(pos.begin(), pos.end(), [](index_t x) { return x == -7; }),
               what + "positions written on error");
  } else {
    for (i32 j = 0; j < n; ++j)
      FUZZ_CHECK(pos[ix(j)] == base + brute_depth(parents, j), what + "position of a node");
    for (index_t j = n; j < psize; ++j)
      FUZZ_CHECK(pos[ix(j)] == -7, what + "positions written past N");
  }
}

void structure(reader& in) {
  const std::uint8_t nsel = in.u8();
  const i32 n = nsel < 200   ? in.range<i32>(0, 40)
                : nsel < 250 ? in.range<i32>(41, 300)
                             : in.range<i32>(tree::max_nodes - 4, tree::max_nodes + 4);
  std::vector<i32> parents = read_parents(in, n, 3);
  // Lists: none, right, right then one corrupted entry, or only one of the two.
  const int lists = in.u8() % 4;
  std::vector<i32> fc, ns;
  bool structurally_fine = true; // parents valid enough to build lists from
  for (i32 j = 1; j < n; ++j)
    structurally_fine = structurally_fine && parents[ix(j)] >= 0 && parents[ix(j)] < j;
  if (lists != 0) {
    if (structurally_fine) {
      make_lists(parents, fc, ns);
    } else {
      fc.assign(ix(n), -1);
      ns.assign(ix(n), -1);
    }
    if (lists == 2 && n > 0) {
      std::vector<i32>& v = in.flag() ? fc : ns;
      const i32 j = in.range<i32>(0, n - 1);
      v[ix(j)] = in.flag() ? in.range<i32>(-2, n) : static_cast<i32>(in.u32());
    }
  }
  const std::uint8_t dsel = in.u8();
  const i32 depth_limit = dsel < 180 ? -1 : in.range<i32>(-3, 12);

  tree::tree_view t{parents.empty() ? nullptr : parents.data(), n};
  if (lists != 0) {
    t.first_child = fc.data();
    t.next_sibling = lists == 3 ? nullptr : ns.data();
  }
  const tree::tree_check got = tree::validate(t, depth_limit);
  const tree::tree_check want = brute_validate(parents, t.first_child, t.next_sibling, depth_limit);
  const std::string what = "tree of " + std::to_string(n) + " nodes, lists " + std::to_string(lists)
                           + ", depth limit " + std::to_string(depth_limit) + ": ";
  if (specdec_fuzz::verbose())
    std::fprintf(stderr, "  %svalidate: %s\n", what.c_str(), check_str(got).c_str());
  FUZZ_CHECK(got.error == want.error,
             what + "validate " + check_str(got) + ", brute force " + check_str(want));
  if (want.error != tree::tree_error::inconsistent_lists)
    FUZZ_CHECK(got.node == want.node,
               what + "validate " + check_str(got) + ", brute force " + check_str(want));
  if (got.ok())
    FUZZ_CHECK(got.max_depth == want.max_depth,
               what + "max_depth " + std::to_string(got.max_depth));
  // check_node, node by node, up to the first parent problem.
  if (n > 0 && n <= tree::max_nodes)
    for (i32 j = 0; j < n; ++j) {
      const tree::tree_check cj = tree::check_node(t, j, depth_limit);
      if (!cj.ok()) {
        FUZZ_CHECK(want.node == j || want.error == tree::tree_error::none
                       || want.error == tree::tree_error::inconsistent_lists || want.node < j,
                   what + "check_node(" + std::to_string(j) + ") " + check_str(cj));
        if (want.node == j)
          FUZZ_CHECK(cj.error == want.error,
                     what + "check_node(" + std::to_string(j) + ") " + check_str(cj));
        break;
      }
      FUZZ_CHECK(want.node == -1 || want.node > j
                     || want.error == tree::tree_error::inconsistent_lists
                     || (want.error == tree::tree_error::empty),
                 what + "check_node(" + std::to_string(j) + ") passed the offending node");
    }

  const bool valid = got.ok();
  const tree::tree_view plain{t.parents, n}; // without lists (maybe-valid parents)
  const bool parents_valid = tree::validate(plain).ok();

  if (parents_valid) {
    for (i32 j = 0; j < n; ++j)
      FUZZ_CHECK(plain.depth(j) == brute_depth(parents, j), what + "depth()");
    const auto ch = children_of(parents);
    for (int probe = 0; probe < 8; ++probe) {
      const i32 a = in.range<i32>(0, n - 1);
      const i32 b = in.range<i32>(0, n - 1);
      FUZZ_CHECK(plain.is_ancestor(a, b) == brute_ancestor_or_self(parents, a, b),
                 what + "is_ancestor()");
      const i32 want_first = ch[ix(a)].empty() ? -1 : ch[ix(a)][0];
      FUZZ_CHECK(plain.first_child_of(a) == want_first, what + "first_child_of()");
      if (valid)
        FUZZ_CHECK(t.first_child_of(a) == want_first, what + "first_child_of() with lists");
      if (b > 0) {
        const auto& sib = ch[ix(parents[ix(b)])];
        const auto it = std::find(sib.begin(), sib.end(), b);
        const i32 want_next = it + 1 == sib.end() ? -1 : *(it + 1);
        FUZZ_CHECK(plain.next_sibling_of(b) == want_next, what + "next_sibling_of()");
        if (valid)
          FUZZ_CHECK(t.next_sibling_of(b) == want_next, what + "next_sibling_of() with lists");
      }
      // write_path with a buffer of fuzzed capacity.
      const i32 d = brute_depth(parents, b);
      const i32 cap = in.range<i32>(0, d + 2);
      std::vector<i32> path(ix(cap) + 1, -9);
      const i32 len = tree::write_path(plain, b, path.data(), cap);
      if (cap < d + 1) {
        FUZZ_CHECK(len == -1
                       && std::all_of(path.begin(), path.end(), [](i32 x) { return x == -9; }),
                   what + "write_path into too small a buffer");
      } else {
        FUZZ_CHECK(len == d + 1 && path[0] == 0 && path[ix(d)] == b && path[ix(len)] == -9,
                   what + "write_path");
        for (i32 k = 1; k <= d; ++k)
          FUZZ_CHECK(parents[ix(path[ix(k)])] == path[ix(k - 1)], what + "write_path link");
      }
    }
  } else if (n > 0 && n <= tree::max_nodes) {
    // Malformed: is_ancestor terminates inside the array (ASan checks).
    for (int probe = 0; probe < 4; ++probe)
      (void)plain.is_ancestor(in.range<i32>(0, n - 1), in.range<i32>(0, n - 1));
  }

  // Masks and positions validate without a depth limit.
  const bool mask_valid = brute_validate(parents, t.first_child, t.next_sibling, -1).ok();
  if (n <= 400 || !mask_valid)
    check_masks(in, t, parents, mask_valid);

  // token_tree::assign mirrors validate (without lists, with the depth limit).
  std::vector<token_id> tokens(ix(n));
  for (i32 j = 0; j < n; ++j)
    tokens[ix(j)] = static_cast<token_id>(j * 7 % 13);
  tree::token_tree tt(99);
  (void)tt.add(0, 5);
  tree::tree_check why{tree::tree_error::cycle, 12345, 6};
  const status s = tt.assign(tokens, parents, depth_limit, &why);
  const tree::tree_check plain_check = tree::validate(plain, depth_limit);
  if (n > 0 && n <= tree::max_nodes) {
    FUZZ_CHECK(why.error == plain_check.error && why.node == plain_check.node,
               what + "assign's why " + check_str(why) + ", validate " + check_str(plain_check));
  }
  FUZZ_CHECK(s.ok() == (plain_check.ok() && n > 0), what + "assign: " + s.message());
  if (!s.ok()) {
    FUZZ_CHECK(s.code == errc::malformed_tree, what + "assign: " + s.message());
    FUZZ_CHECK(tt.size() == 2 && tt.parents()[1] == 0 && tt.tokens()[1] == 5,
               what + "a failed assign changed the tree");
  } else {
    FUZZ_CHECK(tt.size() == n, what + "assign: size");
    FUZZ_CHECK(tree::validate(tt.view()).ok(),
               what + "assign: the tree's own view does not validate");
    const index_t base = in.range<index_t>(0, 100);
    const std::vector<index_t> pos = tt.positions(base);
    std::size_t leaves = 0;
    for (i32 j = 0; j < n; ++j) {
      FUZZ_CHECK(tt.parents()[ix(j)] == parents[ix(j)] && tt.tokens()[ix(j)] == tokens[ix(j)],
                 what + "assign: parents / tokens");
      FUZZ_CHECK(tt.depths()[ix(j)] == brute_depth(parents, j), what + "assign: depths");
      FUZZ_CHECK(pos[ix(j)] == base + brute_depth(parents, j), what + "token_tree::positions");
      leaves += tt.first_children()[ix(j)] < 0 ? 1u : 0u;
      if (j > 0)
        FUZZ_CHECK(tt.find_child(parents[ix(j)], tokens[ix(j)]) >= 0, what + "find_child");
    }
    const auto paths = tt.leaf_paths();
    FUZZ_CHECK(paths.size() == leaves, what + "leaf_paths count");
    for (const auto& p : paths) {
      FUZZ_CHECK(!p.empty() && p[0] == 0 && tt.first_children()[ix(p.back())] < 0,
                 what + "leaf path ends");
      for (std::size_t k = 1; k < p.size(); ++k)
        FUZZ_CHECK(parents[ix(p[k])] == p[k - 1], what + "leaf path link");
    }
  }

  // token_tree::add with the (maybe bad) parents: refuses what is not an existing node and a
  // full tree; what it accepts validates.
  tree::token_tree built(1);
  for (i32 j = 1; j < n; ++j) {
    const i32 p = parents[ix(j)];
    const i32 before = built.size();
    const i32 id = built.add(p, tokens[ix(j)]);
    const bool ok = p >= 0 && p < before && before < tree::max_nodes;
    FUZZ_CHECK((id >= 0) == ok
                   && (ok ? id == before && built.size() == before + 1 : built.size() == before),
               what + "token_tree::add(" + std::to_string(p) + ")");
  }
  FUZZ_CHECK(tree::validate(built.view()).ok(), what + "a tree built with add() does not validate");
}

// --- batch mode --------------------------------------------------------------------------------

template <class TT, class TD>
struct tree_case {
  std::vector<index_t> node_offsets;
  std::vector<token_id> tokens;
  std::vector<i32> parents;
  std::vector<i32> first_child, next_sibling;
  std::vector<TT> target;
  std::vector<TD> draft;
  std::vector<index_t> draft_offsets;
  std::vector<i32> draft_index;
  std::vector<sampling::sampling_params> params;
  std::vector<std::uint64_t> ids;
  std::vector<index_t> positions;
  std::vector<i32> accepted, last_node;
  std::vector<token_id> next;
  std::vector<row_status> status;
  verify::tree_batch<TT, TD> batch;
  verify::tree_batch_output out;
  std::string what;
};

template <class TT, class TD>
std::set<errc> problems(const verify::tree_batch<TT, TD>& b,
                        const verify::tree_batch_output& out,
                        bool needs_draft_rows) {
  std::set<errc> p;
  if (b.batch < 0 || b.target.cols <= 0)
    return {errc::invalid_argument};
  if (b.batch == 0)
    return p;
  if (b.node_offsets == nullptr || b.tokens == nullptr || b.parents == nullptr
      || b.target.data == nullptr || b.params == nullptr || b.request_ids == nullptr
      || b.positions == nullptr || out.accepted == nullptr || out.last_node == nullptr
      || out.next == nullptr || out.status == nullptr)
    return {errc::invalid_argument};
  if (b.params_stride != 0 && b.params_stride != 1)
    p.insert(errc::invalid_argument);
  if ((b.first_child == nullptr) != (b.next_sibling == nullptr))
    p.insert(errc::invalid_argument);
  bool offsets_ok = b.node_offsets[0] == 0;
  if (!offsets_ok)
    p.insert(errc::shape_mismatch);
  for (index_t i = 0; i < b.batch; ++i) {
    index_t n = 0;
    if (__builtin_sub_overflow(b.node_offsets[i + 1], b.node_offsets[i], &n) || n < 1
        || n > tree::max_nodes) {
      p.insert(errc::shape_mismatch);
      offsets_ok = false;
    }
    if (b.positions[i] < 0)
      p.insert(errc::invalid_argument);
    else if (b.positions[i] > max_position)
      p.insert(errc::overflow);
  }
  if (offsets_ok) {
    const index_t total = b.node_offsets[b.batch];
    const bool rows_ok = b.target.rows == total; // else the arrays may be shorter than total
    if (!rows_ok || b.target.row_stride < b.target.cols)
      p.insert(errc::shape_mismatch);
    if (needs_draft_rows && rows_ok) {
      if (b.draft.data == nullptr)
        p.insert(errc::invalid_argument);
      else if (b.draft.cols != b.target.cols)
        p.insert(errc::vocab_mismatch);
      else if (b.draft.row_stride < b.draft.cols)
        p.insert(errc::shape_mismatch);
      else
        for (index_t i = 0; i < b.batch; ++i) {
          const index_t n0 = b.node_offsets[i];
          const index_t n = b.node_offsets[i + 1] - n0;
          const index_t d0 = b.draft_offsets != nullptr ? b.draft_offsets[i] : n0 - i;
          // Every request's first draft row must lie in [0, rows], a request without drafts
          // too: request() forms the pointer draft.data + d0 * stride for it.
          if (d0 < 0 || d0 > b.draft.rows)
            p.insert(errc::shape_mismatch);
          for (index_t j = 1; j < n; ++j) {
            index_t row = 0;
            const index_t local = b.draft_index != nullptr ? b.draft_index[n0 + j] : j - 1;
            if (__builtin_add_overflow(d0, local, &row) || row < 0 || row >= b.draft.rows)
              p.insert(errc::shape_mismatch);
          }
        }
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
void read_batch(reader& in, bool needs_draft, tree_case<TT, TD>& c) {
  const auto batch = in.range<index_t>(0, 4);
  c.node_offsets.assign(1, 0);
  std::vector<i32> sizes;
  for (index_t b = 0; b < batch; ++b) {
    const std::uint8_t s = in.u8();
    const i32 n = s < 230 ? in.range<i32>(1, 10) : in.range<i32>(11, 24);
    sizes.push_back(n);
    c.node_offsets.push_back(c.node_offsets.back() + n);
  }
  const index_t total = c.node_offsets.back();
  for (index_t b = 0; b < batch; ++b) {
    const std::vector<i32> p = read_parents(in, sizes[ix(b)], 1);
    c.parents.insert(c.parents.end(), p.begin(), p.end());
  }
  const int lists = in.u8() % 4; // none, right, one corrupted entry, first_child only
  if (lists != 0) {
    for (index_t b = 0; b < batch; ++b) {
      const std::vector<i32> p(c.parents.begin() + c.node_offsets[ix(b)],
                               c.parents.begin() + c.node_offsets[ix(b + 1)]);
      bool fine = true;
      for (std::size_t j = 1; j < p.size(); ++j)
        fine = fine && p[j] >= 0 && p[j] < static_cast<i32>(j);
      std::vector<i32> fc(p.size(), -1), ns(p.size(), -1);
      if (fine)
        make_lists(p, fc, ns);
      c.first_child.insert(c.first_child.end(), fc.begin(), fc.end());
      c.next_sibling.insert(c.next_sibling.end(), ns.begin(), ns.end());
    }
    if (lists == 2 && total > 0) {
      std::vector<i32>& v = in.flag() ? c.first_child : c.next_sibling;
      v[ix(in.range<index_t>(0, total - 1))] = in.range<i32>(-2, 24);
    }
  }
  const std::uint8_t vsel = in.u8();
  const index_t vocab = vsel < 240 ? in.range<index_t>(1, 16) : in.range<index_t>(513, 540);
  const index_t tstride = vocab + in.range<index_t>(0, 2);
  const index_t dstride = vocab + in.range<index_t>(0, 1);
  const std::uint8_t kinds = in.u8();
  const bool tprobs = (kinds & 1u) != 0;
  const bool dprobs = (kinds & 2u) != 0;
  const bool copy = (kinds & 4u) != 0; // draft row of node j = target row of its parent (q == p)
  // Draft-row layout: 0 one row per non-root node (row n0 - b + j - 1); 1 draft_offsets with
  // gaps; 2 draft_offsets and draft_index (1 to 4 rows per request, shared by siblings); 3
  // draft_index without draft_offsets (rows from n0 - b).
  const int layout = in.u8() % 4;
  const bool indexed = layout >= 2;
  // Draft rows of each request: [d0, d0 + rows_b).
  std::vector<index_t> d0(ix(batch)), rows(ix(batch));
  index_t draft_rows = 0;
  for (index_t b = 0; b < batch; ++b) {
    rows[ix(b)] = layout == 2 ? in.range<index_t>(1, 4) : sizes[ix(b)] - 1;
    if (layout == 1)
      draft_rows += in.range<index_t>(0, 2); // a gap
    d0[ix(b)] = layout == 0 || layout == 3 ? c.node_offsets[ix(b)] - b : draft_rows;
    draft_rows = std::max(draft_rows, d0[ix(b)] + rows[ix(b)]);
  }
  if (layout == 1 || layout == 2) {
    c.draft_offsets = d0;
    c.draft_offsets.push_back(draft_rows);
  }
  if (indexed)
    for (index_t b = 0; b < batch; ++b)
      for (i32 j = 0; j < sizes[ix(b)]; ++j)
        c.draft_index.push_back(
            j == 0 || rows[ix(b)] == 0 ? -1 : in.range<i32>(0, static_cast<i32>(rows[ix(b)] - 1)));

  const float nan = std::numeric_limits<float>::quiet_NaN();
  c.target.assign(ix(total * tstride), specdec_fuzz::element<TT>(nan));
  c.draft.assign(ix(std::max<index_t>(draft_rows, 1) * dstride), specdec_fuzz::element<TD>(nan));
  for (index_t r = 0; r < total; ++r)
    specdec_fuzz::read_row(in, c.target.data() + r * tstride, vocab, tprobs);
  // The draft row each node reads (local draft index), to copy parents' target rows into it.
  for (index_t b = 0; b < batch; ++b)
    for (index_t r = 0; r < rows[ix(b)]; ++r) {
      TD* row = c.draft.data() + (d0[ix(b)] + r) * dstride;
      if (!copy) {
        specdec_fuzz::read_row(in, row, vocab, dprobs);
        continue;
      }
      // Copy the target row of the parent of the first node reading this row (or the root's).
      i32 reader_node = 0;
      for (i32 j = 1; j < sizes[ix(b)]; ++j) {
        const index_t local = indexed ? c.draft_index[ix(c.node_offsets[ix(b)] + j)] : j - 1;
        if (local == r) {
          reader_node = j;
          break;
        }
      }
      const i32 p = c.parents[ix(c.node_offsets[ix(b)] + reader_node)];
      const index_t src = c.node_offsets[ix(b)] + (p >= 0 && p < sizes[ix(b)] ? p : 0);
      for (index_t e = 0; e < vocab; ++e)
        row[e] = specdec_fuzz::element<TD>(load_as_float(c.target.data(), src * tstride + e));
    }
  for (index_t b = 0; b < batch; ++b)
    for (i32 j = 0; j < sizes[ix(b)]; ++j) {
      const index_t n0 = c.node_offsets[ix(b)];
      const i32 p = c.parents[ix(n0 + j)];
      index_t tbest = 0;
      index_t dbest = 0;
      if (j > 0 && p >= 0 && p < sizes[ix(b)]) {
        tbest = specdec_fuzz::brute_greedy_row(c.target.data() + (n0 + p) * tstride, vocab, tprobs)
                    .best;
        const index_t local = indexed ? c.draft_index[ix(n0 + j)] : j - 1;
        dbest = specdec_fuzz::brute_greedy_row(
                    c.draft.data() + (d0[ix(b)] + local) * dstride, vocab, dprobs)
                    .best;
      }
      c.tokens.push_back(specdec_fuzz::read_token(in, vocab, tbest, dbest));
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
  c.accepted.assign(ix(batch), sentinel_i32);
  c.last_node.assign(ix(batch), sentinel_i32);
  c.next.assign(ix(batch), sentinel_i32);
  c.status.assign(ix(batch), row_status{sentinel_bits});

  auto& v = c.batch;
  v.batch = batch;
  v.node_offsets = c.node_offsets.data();
  v.tokens = c.tokens.empty() ? nullptr : c.tokens.data();
  v.parents = c.parents.empty() ? nullptr : c.parents.data();
  if (lists != 0) {
    v.first_child = c.first_child.empty() ? nullptr : c.first_child.data();
    v.next_sibling = lists == 3 || c.next_sibling.empty() ? nullptr : c.next_sibling.data();
  }
  v.target = {c.target.empty() ? nullptr : c.target.data(), total, vocab, tstride};
  v.draft = {c.draft.data(), draft_rows, vocab, dstride};
  v.draft_offsets = c.draft_offsets.empty() ? nullptr : c.draft_offsets.data();
  v.draft_index = c.draft_index.empty() ? nullptr : c.draft_index.data();
  v.target_kind = tprobs ? distribution_kind::probabilities : distribution_kind::logits;
  v.draft_kind = dprobs ? distribution_kind::probabilities : distribution_kind::logits;
  v.params = c.params.data();
  v.params_stride = params_stride;
  v.request_ids = c.ids.empty() ? nullptr : c.ids.data();
  v.positions = c.positions.empty() ? nullptr : c.positions.data();
  v.seed = in.u64();
  c.out = {c.accepted.empty() ? nullptr : c.accepted.data(),
           c.last_node.empty() ? nullptr : c.last_node.data(),
           c.next.empty() ? nullptr : c.next.data(),
           c.status.empty() ? nullptr : c.status.data()};

  const std::uint8_t m = in.u8() % 20;
  const index_t i_off = batch > 0 ? in.range<index_t>(0, batch) : 0;
  switch (m) {
  case 10:
    c.node_offsets[0] = in.range<index_t>(1, 4);
    break;
  case 11:
    c.node_offsets[ix(i_off)] = in.i64();
    if (specdec_fuzz::skip_known("offset_overflow"))
      c.node_offsets[ix(i_off)] %= 1000;
    break;
  case 12:
    v.target.rows += in.flag() ? 1 : -1;
    break;
  case 13:
    v.target.row_stride = vocab - in.range<index_t>(1, vocab);
    break;
  case 14:
    switch (in.u8() % 12) {
    case 0:
      v.node_offsets = nullptr;
      break;
    case 1:
      v.tokens = nullptr;
      break;
    case 2:
      v.parents = nullptr;
      break;
    case 3:
      v.target.data = nullptr;
      break;
    case 4:
      v.params = nullptr;
      break;
    case 5:
      v.request_ids = nullptr;
      break;
    case 6:
      v.positions = nullptr;
      break;
    case 7:
      c.out.accepted = nullptr;
      break;
    case 8:
      c.out.last_node = nullptr;
      break;
    case 9:
      c.out.next = nullptr;
      break;
    case 10:
      c.out.status = nullptr;
      break;
    default:
      v.draft.data = nullptr;
      break;
    }
    break;
  case 15:
    v.batch = in.flag() ? -in.range<index_t>(1, 3) : (batch > 0 ? batch - 1 : 0);
    break;
  case 16:
    v.target.cols = in.range<index_t>(-1, vocab + 2);
    break;
  case 17:
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
  case 18:
    if (!c.draft_offsets.empty() && batch > 0) {
      index_t& d = c.draft_offsets[ix(in.range<index_t>(0, batch - 1))];
      d = in.i64();
      // Known findings (tests/fuzz/README.md): request() forms draft pointers from draft_offsets
      // that validate() does not check when the policy reads no draft rows, and validate()
      // adds a draft offset and a draft index unchecked.
      if (specdec_fuzz::skip_known("unchecked_draft_layout")
          || specdec_fuzz::skip_known("offset_overflow"))
        d %= 1000;
    } else if (!c.draft_index.empty()) {
      c.draft_index[ix(in.range<index_t>(0, total - 1))] = static_cast<i32>(in.u32());
    }
    break;
  case 19:
    v.params_stride = in.flag() ? 2 : -1;
    break;
  default:
    break;
  }
  c.what = "B " + std::to_string(v.batch) + " V " + std::to_string(v.target.cols) + " dtype "
           + dtype_traits<TT>::name + "/" + dtype_traits<TD>::name + " lists "
           + std::to_string(lists) + " layout " + std::to_string(layout) + " corruption "
           + std::to_string(m);
}

std::string outcome_str(const verify::tree_outcome& o) {
  return "{accepted " + std::to_string(o.accepted) + ", last " + std::to_string(o.last_node)
         + ", next " + std::to_string(o.next) + ", flags " + std::to_string(o.status.bits) + "}";
}

/// Greedy descent by brute force on a valid tree (flags as greedy_tree sets them).
template <class TT, class TD>
verify::tree_outcome brute_greedy(const verify::tree_request<TT, TD>& r,
                                  const std::vector<i32>& parents) {
  verify::tree_outcome o;
  const bool probs = r.target_kind == distribution_kind::probabilities;
  const auto ch = children_of(parents);
  i32 node = 0;
  for (i32 depth = 0;; ++depth) {
    const auto g =
        specdec_fuzz::brute_greedy_row(r.target + node * r.target_stride, r.vocab, probs);
    o.accepted = depth;
    o.last_node = node;
    o.next = static_cast<token_id>(g.best >= 0 ? g.best : 0);
    if (g.invalid) {
      o.status.set(row_status::target_invalid);
      return o;
    }
    if (g.zero_mass) {
      o.status.set(row_status::target_zero_mass);
      return o;
    }
    i32 match = -1;
    for (i32 c : ch[ix(node)]) {
      if (!r.token_in_range(c))
        o.status.set(row_status::token_out_of_range);
      else if (r.tokens[c] == g.best) {
        match = c;
        break;
      }
    }
    if (match < 0)
      return o;
    node = match;
  }
}

/// Typical acceptance with one-hot rows: the deepest node whose root path is all argmax tokens
/// (lowest index among the deepest), on a valid tree with clean rows.
template <class TT, class TD>
verify::tree_outcome brute_argmax_paths(const verify::tree_request<TT, TD>& r,
                                        const std::vector<i32>& parents) {
  const bool probs = r.target_kind == distribution_kind::probabilities;
  const auto n = static_cast<i32>(parents.size());
  std::vector<char> ok(ix(n), 0);
  ok[0] = 1;
  i32 best = 0;
  i32 best_depth = 0;
  for (i32 j = 1; j < n; ++j) {
    const i32 p = parents[ix(j)];
    if (!ok[ix(p)])
      continue;
    const auto g = specdec_fuzz::brute_greedy_row(r.target + p * r.target_stride, r.vocab, probs);
    if (r.token_in_range(j) && r.tokens[j] == g.best) {
      ok[ix(j)] = 1;
      const i32 d = brute_depth(parents, j);
      if (d > best_depth) {
        best = j;
        best_depth = d;
      }
    }
  }
  verify::tree_outcome o;
  o.accepted = best_depth;
  o.last_node = best;
  const auto g = specdec_fuzz::brute_greedy_row(r.target + best * r.target_stride, r.vocab, probs);
  o.next = static_cast<token_id>(g.best >= 0 ? g.best : 0);
  return o;
}

template <class Policy, class TT, class TD>
void check_batch(const Policy& policy, const char* name, tree_case<TT, TD>& c) {
  const verify::tree_batch<TT, TD>& b = c.batch;
  const std::set<errc> expect = problems(b, c.out, Policy::needs_draft_rows);
  const status s = cpu::verify_tree_batch(policy, b, c.out);
  const std::string what = std::string(name) + ", " + c.what + ": ";
  if (specdec_fuzz::verbose())
    std::fprintf(stderr,
                 "  %sstatus %d, %zu problems\n",
                 what.c_str(),
                 static_cast<int>(s.code),
                 expect.size());
  if (!expect.empty()) {
    FUZZ_CHECK(!s.ok(), what + "a bad batch was accepted");
    FUZZ_CHECK(expect.count(s.code) == 1,
               what + "error " + s.message() + " is not among the problems of the batch");
    for (std::size_t i = 0; i < c.accepted.size(); ++i)
      FUZZ_CHECK(c.accepted[i] == sentinel_i32 && c.last_node[i] == sentinel_i32
                     && c.next[i] == sentinel_i32 && c.status[i].bits == sentinel_bits,
                 what + "an output was written by a failing call");
    return;
  }
  errc first_bad = errc::ok;
  for (index_t i = 0; i < b.batch; ++i) {
    const verify::tree_request<TT, TD> req = b.request(i, Policy::needs_draft_rows);
    const i32 n = req.tree.num_nodes;
    const verify::tree_outcome got{
        c.accepted[ix(i)], c.last_node[ix(i)], c.next[ix(i)], c.status[ix(i)]};
    const std::string at = what + "request " + std::to_string(i) + " (N " + std::to_string(n)
                           + ", position " + std::to_string(req.position) + ") " + outcome_str(got)
                           + ": ";
    FUZZ_CHECK(got.last_node >= 0 && got.last_node < n, at + "last_node out of range");
    FUZZ_CHECK(got.accepted >= 0 && got.accepted < n, at + "accepted out of range");
    FUZZ_CHECK(got.next >= 0 && got.next < req.vocab, at + "next token out of range");
    FUZZ_CHECK((got.status.bits & ~0x3ffu) == 0u, at + "undefined status flags");
    if (first_bad == errc::ok)
      first_bad = got.status.to_errc();
    const std::vector<i32> parents(req.tree.parents, req.tree.parents + n);
    const bool valid = tree::validate(req.tree).ok();
    if (valid) {
      FUZZ_CHECK(got.accepted == brute_depth(parents, got.last_node),
                 at + "accepted != depth(last_node)");
    } else {
      FUZZ_CHECK(got.status.has(row_status::malformed_tree) && got.accepted == 0
                     && got.last_node == 0,
                 at + "a malformed tree was walked");
    }

    const verify::tree_outcome direct =
        cpu::verify_tree(policy, req, rng_key{b.seed, b.request_ids[i]});
    FUZZ_CHECK(direct == got, at + "cpu::verify_tree gives " + outcome_str(direct));

    // Alone, dense rows, one draft row per non-root node (row j - 1 of node j).
    const index_t vocab = req.vocab;
    std::vector<TT> target(ix(n * vocab));
    for (i32 r = 0; r < n; ++r)
      for (index_t e = 0; e < vocab; ++e)
        target[ix(r * vocab + e)] = req.target[r * req.target_stride + e];
    std::vector<TD> draft(ix(std::max<i32>(n - 1, 1) * vocab));
    const bool has_draft = req.draft != nullptr && Policy::needs_draft_rows;
    if (has_draft)
      for (i32 j = 1; j < n; ++j) {
        const sampling::dist_row<TD> dr = req.draft_row(j);
        for (index_t e = 0; e < vocab; ++e)
          draft[ix((j - 1) * vocab + e)] = dr.data[e];
      }
    const index_t offsets[2] = {0, n};
    const sampling::sampling_params params = req.params;
    const std::uint64_t id = b.request_ids[i];
    const index_t position = req.position;
    verify::tree_batch<TT, TD> one;
    one.batch = 1;
    one.node_offsets = offsets;
    one.tokens = req.tokens;
    one.parents = req.tree.parents;
    one.first_child = req.tree.first_child;
    one.next_sibling = req.tree.next_sibling;
    one.target = {target.data(), n, vocab, vocab};
    one.draft = {draft.data(), has_draft ? n - 1 : 0, vocab, vocab};
    one.target_kind = b.target_kind;
    one.draft_kind = b.draft_kind;
    one.params = &params;
    one.request_ids = &id;
    one.positions = &position;
    one.seed = b.seed;
    i32 acc = sentinel_i32;
    i32 last = sentinel_i32;
    token_id nxt = sentinel_i32;
    row_status st{sentinel_bits};
    const status s1 = cpu::verify_tree_batch(policy, one, {&acc, &last, &nxt, &st});
    const verify::tree_outcome alone{acc, last, nxt, st};
    FUZZ_CHECK(s1.code == st.to_errc(), at + "alone: status " + s1.message());
    FUZZ_CHECK(alone == got, at + "alone in a batch it gives " + outcome_str(alone));

    if (!valid)
      continue;
    if constexpr (std::is_same_v<Policy, verify::greedy>) {
      const verify::tree_outcome ref = brute_greedy(req, parents);
      FUZZ_CHECK(ref == got, at + "brute-force greedy descent gives " + outcome_str(ref));
    } else if constexpr (std::is_same_v<Policy, verify::one_hot_rejection>) {
      if (req.params.greedy() && got.status.bits == 0u) {
        const verify::tree_outcome ref = brute_greedy(req, parents);
        FUZZ_CHECK(ref == got,
                   at + "greedy parameters: brute-force greedy gives " + outcome_str(ref));
      }
    } else if constexpr (std::is_same_v<Policy, verify::typical_acceptance>) {
      const float thr = policy.threshold(0.0f);
      if (req.params.greedy() && got.status.bits == 0u && thr >= 0.0f && thr < 1.0f) {
        const verify::tree_outcome ref = brute_argmax_paths(req, parents);
        FUZZ_CHECK(ref == got, at + "greedy parameters: deepest argmax path " + outcome_str(ref));
      }
    }
  }
  FUZZ_CHECK(s.code == first_bad,
             what + "returned " + s.message()
                 + ", not the errc of the first request with an error");
}

template <class TT, class TD>
void run_batch(reader& in, int policy) {
  verify::typical_acceptance typical;
  if (in.u8() >= 200) {
    typical.epsilon = in.value();
    typical.delta = in.value();
  }
  tree_case<TT, TD> c;
  read_batch(in, policy == 1, c); // rejection_sampling reads draft rows
  switch (policy) {
  case 0:
    check_batch(verify::greedy{}, "greedy", c);
    break;
  case 1:
    check_batch(verify::rejection_sampling{}, "rejection_sampling", c);
    break;
  case 2:
    check_batch(verify::one_hot_rejection{}, "one_hot_rejection", c);
    break;
  default:
    check_batch(typical, "typical_acceptance", c);
    break;
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { // NOLINT
  reader in(data, size);
  const std::uint8_t mode = in.u8();
  if (mode % 2 == 0) {
    structure(in);
    return 0;
  }
  const int policy = (mode >> 1) % 4;
  switch (in.u8() % 4) {
  case 0:
    run_batch<float, float>(in, policy);
    break;
  case 1:
    run_batch<half, half>(in, policy);
    break;
  case 2:
    run_batch<bfloat16, bfloat16>(in, policy);
    break;
  default:
    run_batch<float, bfloat16>(in, policy);
    break;
  }
  return 0;
}

// --- seeds ------------------------------------------------------------------------------------
namespace {

/// Structure mode with explicit parents (shape 3, n <= 40), lists, depth limit, prefix and base.
std::vector<std::uint8_t> structure_seed(
    const std::vector<i32>& parents, int lists, i32 depth_limit, index_t prefix, index_t base) {
  specdec_fuzz::writer w;
  const auto n = static_cast<i32>(parents.size());
  w.u8(0); // structure
  w.u8(0); // n selector: small
  w.range<i32>(n, 0, 40);
  w.u8(3); // shape: per node from the input
  w.u16(0);
  std::vector<i32> corrupt;
  for (i32 j = 1; j < n; ++j) {
    const i32 p = parents[ix(j)];
    if (p >= 0 && p < j) {
      w.range<i32>(p, 0, j - 1);
    } else {
      w.range<i32>(0, 0, j - 1);
      corrupt.push_back(j);
    }
  }
  if (parents.size() > 0 && parents[0] != -1)
    corrupt.insert(corrupt.begin(), 0);
  w.u8(corrupt.size()); // overrides (at most 3)
  for (i32 j : corrupt) {
    w.range<i32>(j, 0, n - 1);
    w.u8(7); // any value
    w.u32(static_cast<std::uint32_t>(parents[ix(j)]));
  }
  w.u8(static_cast<std::uint64_t>(lists));
  if (depth_limit < 0) {
    w.u8(0);
  } else {
    w.u8(200);
    w.range<i32>(depth_limit, -3, 12);
  }
  // The probes of the valid-tree checks (a, b, write_path capacity 0), or of is_ancestor on a
  // malformed tree; then the masks.
  bool valid = n > 0 && parents[0] == -1;
  for (i32 j = 1; j < n; ++j)
    valid = valid && parents[ix(j)] >= 0 && parents[ix(j)] < j;
  for (int probe = 0; probe < (valid ? 8 : n > 0 ? 4 : 0); ++probe) {
    w.range<i32>(0, 0, n - 1);
    w.range<i32>(n - 1, 0, n - 1);
    if (valid)
      w.range<i32>(0, 0, 40); // capacity 0: too small
  }
  if (prefix >= 0 && prefix <= 70) {
    w.u8(0);
    w.range<index_t>(prefix, 0, 70);
  } else {
    w.u8(255);
    w.i64(prefix);
  }
  w.range<int>(0, -1, 2); // exact buffers
  for (int probe = 0; probe < 4 && n > 0; ++probe) {
    w.range<i32>(n - 1, 0, n - 1);
    w.range<index_t>(1, 0, 40);
    w.i64(std::numeric_limits<index_t>::max());
    w.range<i32>(0, 0, n - 1);
    w.i64(std::numeric_limits<index_t>::max());
  }
  if (base >= 0 && base <= 1000) {
    w.u8(0);
    w.range<index_t>(base, 0, 1000);
  } else {
    w.u8(255);
    w.i64(base);
  }
  return w.bytes();
}

struct tree_spec {
  std::vector<i32> parents;
  std::vector<std::vector<float>> rows; // one target row per node
  std::vector<token_id> tokens;         // tokens[0] unused
  index_t position = 0;
};

/// Batch mode: explicit trees (<= 10 nodes, in-range parents), rows, tokens; draft rows copy the
/// parents' target rows (q == p).
std::vector<std::uint8_t> batch_seed(int policy,
                                     int dtypes,
                                     index_t vocab,
                                     int lists,
                                     int layout,
                                     const std::vector<tree_spec>& trees,
                                     int temp,
                                     std::int32_t top_k,
                                     int top_p,
                                     std::uint64_t seed,
                                     int corruption = 0,
                                     std::int64_t value = 0) {
  specdec_fuzz::writer w;
  w.u8(1 + 2 * static_cast<std::uint64_t>(policy));
  w.u8(static_cast<std::uint64_t>(dtypes));
  w.u8(0); // typical defaults
  w.range<index_t>(static_cast<index_t>(trees.size()), 0, 4);
  for (const tree_spec& t : trees) {
    w.u8(0);
    w.range<i32>(static_cast<i32>(t.parents.size()), 1, 10);
  }
  for (const tree_spec& t : trees) {
    w.u8(3);
    w.u16(0);
    for (std::size_t j = 1; j < t.parents.size(); ++j)
      w.range<i32>(t.parents[j], 0, static_cast<i32>(j) - 1);
    w.u8(0); // no corruption
  }
  w.u8(static_cast<std::uint64_t>(lists));
  w.u8(0);
  w.range<index_t>(vocab, 1, 16);
  w.range<index_t>(1, 0, 2); // target padding
  w.range<index_t>(0, 0, 1); // draft padding
  w.u8(4);                   // logits, draft rows copied
  w.u8(static_cast<std::uint64_t>(layout));
  for (std::size_t b = 0; b < trees.size(); ++b) {
    if (layout == 1)
      w.range<index_t>(1, 0, 2); // a gap of one row
    if (layout == 2)
      w.range<index_t>(2, 1, 4); // two draft rows, shared by the siblings
  }
  if (layout == 2)
    for (const tree_spec& t : trees)
      for (std::size_t j = 1; j < t.parents.size(); ++j)
        w.range<i32>(static_cast<i32>(j % 2), 0, 1); // node 1 reads row 1
  for (const tree_spec& t : trees)
    for (const auto& row : t.rows)
      specdec_fuzz::write_row(w, row);
  for (const tree_spec& t : trees)
    for (std::size_t j = 0; j < t.parents.size(); ++j) {
      w.u8(200);
      w.range<token_id>(t.tokens[j], 0, static_cast<token_id>(vocab - 1));
    }
  w.u8(0); // params stride 0
  specdec_fuzz::write_params(w, temp, top_k, vocab, top_p, 0);
  for (const tree_spec& t : trees) {
    w.flag(true);
    w.u8(7);
    w.u8(9);
    w.i64(t.position);
  }
  w.u64(seed);
  w.u8(static_cast<std::uint64_t>(corruption));
  const auto b = static_cast<index_t>(trees.size());
  w.range<index_t>(b, 0, b); // the offset the corruption picks: the last
  if (corruption == 11)      // node_offsets[B] = value
    w.i64(value);
  if (corruption == 18) { // draft_offsets[B - 1] = value
    w.range<index_t>(b - 1, 0, b - 1);
    w.i64(value);
  }
  return w.bytes();
}

} // namespace

std::vector<specdec_fuzz::seed> specdec_fuzz::seeds() {
  const index_t big = std::numeric_limits<index_t>::max();
  std::vector<specdec_fuzz::seed> out = {
      {"structure_chain", structure_seed({-1, 0, 1, 2, 3}, 1, -1, 3, 10)},
      {"structure_random_prefix_33", structure_seed({-1, 0, 0, 1, 1, 2, 5, 5, 0, 8}, 1, -1, 33, 0)},
      {"structure_depth_limit", structure_seed({-1, 0, 1, 2, 3, 0}, 0, 2, 0, 0)},
      {"structure_cycle", structure_seed({-1, 2, 1, 0}, 0, -1, 0, 0)},
      {"structure_forward_parent", structure_seed({-1, 0, 3, 0}, 0, -1, 0, 0)},
      {"structure_second_root", structure_seed({-1, 0, -1}, 0, -1, 0, 0)},
      {"structure_bad_root", structure_seed({0, 0, 1}, 0, -1, 0, 0)},
      {"structure_lists_one_missing", structure_seed({-1, 0, 0, 1}, 3, -1, 1, 0)},
      {"finding_mask_prefix_int64_max", structure_seed({-1, 0, 0, 1}, 1, -1, big, big)},
      {"structure_prefix_int64_max_minus_n",
       structure_seed({-1, 0, 0, 1}, 0, -1, big - 4, big - 3)},
  };
  // Trees over a vocabulary of 4: a chain matching the argmax twice, and a star whose second
  // child matches.
  const std::vector<tree_spec> trees = {
      {{-1, 0, 1, 0},
       {{0.f, 3.f, 0.f, 0.f}, {0.f, 0.f, 2.f, 0.f}, {1.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 1.f}},
       {0, 1, 2, 3},
       5},
      {{-1, 0, 0, 0},
       {{0.f, 0.f, 4.f, 1.f}, {1.f, 0.f, 0.f, 0.f}, {0.f, 1.f, 0.f, 0.f}, {0.f, 0.f, 1.f, 0.f}},
       {0, 3, 2, 2},
       9}};
  const char* names[4] = {"greedy", "rejection", "one_hot_rejection", "typical"};
  for (int p = 0; p < 4; ++p) {
    out.push_back({std::string("batch_") + names[p], batch_seed(p, 0, 4, 1, 0, trees, 4, 0, 0, 7)});
    out.push_back({std::string("batch_") + names[p] + "_draft_index_bf16",
                   batch_seed(p, 2, 4, 0, 2, trees, 3, 2, 3, 7)});
  }
  out.push_back({"batch_rejection_draft_offsets_greedy_params",
                 batch_seed(1, 1, 4, 1, 1, trees, 0, 0, 0, 3)});
  // Issue 12: position INT64_MAX (batch validation refuses it) and max_position (accepted).
  std::vector<tree_spec> huge = trees;
  huge[0].position = big;
  out.push_back(
      {"batch_rejection_issue12_int64_max_position", batch_seed(1, 0, 4, 0, 0, huge, 4, 0, 0, 1)});
  // Findings (tests/fuzz/README.md): validate() subtracts node offsets unchecked; request()
  // forms a draft pointer from a draft offset validate() ignores when no draft row is read.
  out.push_back(
      {"finding_batch_node_offsets_int64_min",
       batch_seed(0, 0, 4, 0, 0, trees, 4, 0, 0, 1, 11, std::numeric_limits<index_t>::min())});
  out.push_back(
      {"finding_batch_rejection_draft_offset_int64_max",
       batch_seed(1, 0, 4, 0, 2, trees, 4, 0, 0, 1, 18, std::numeric_limits<index_t>::max())});
  out.push_back({"finding_batch_greedy_draft_offset_2_62",
                 batch_seed(0, 0, 4, 0, 1, trees, 4, 0, 0, 1, 18, std::int64_t{1} << 62)});
  huge[0].position = max_position;
  huge[1].position = max_position - 1;
  out.push_back({"batch_typical_max_position", batch_seed(3, 0, 4, 0, 0, huge, 4, 0, 0, 1)});
  return out;
}
