// SPDX-License-Identifier: Apache-2.0
// Device tree verification (specdec::specdec::cuda::tree_verifier), tree masks (tree_mask_builder)
// and KV path compaction (kv_path_compactor) against the host reference on the same inputs and
// seeds:
//  - every tree rule on fp32 rows (greedy, rejection_sampling, one_hot_rejection,
//    typical_acceptance): equal accepted, last_node, next and status, up to proven ties (the rule
//    of support/host_batch.hpp, applied to trees), on random batches of chains, stars, deep and
//    random trees (N up to 64, V up to 32000, temperature / top-k / top-p / min-p, logit and
//    probability rows, with and without sibling lists, one draft row per node or shared draft
//    rows), with rows prepared in parallel and inline (bit-identical to each other);
//  - the path output against tree::write_path of the host's last node;
//  - malformed trees, NaN rows and bad tokens in some requests leave the others unchanged and
//    are flagged as on the host; bad shapes (no nodes, too many nodes, negative positions, draft
//    rows out of range) give bad_shape for that request only;
//  - seed and position offset through device pointers;
//  - masks and positions against tree::build_packed_mask / tree::positions;
//  - KV compaction (contiguous position-major and feature-major planes, unaligned widths, paged
//    with a block table and plane pointers) against a host gather.
// Compile time is the budget of this file: few kernel instantiations (four rule kernels, one
// preparation kernel, one mask kernel, two compaction kernels). 16-bit rows are left to
// test_verify_chain_dtypes.cu, which covers the executor's 16-bit loads every rule shares (a
// bfloat16 rule kernel and its preparation kernel would add about 20 s per architecture).
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <specdec/cpu/verify_tree.hpp>
#include <specdec/cuda/device/device_kv.cuh>
#include <specdec/cuda/device/device_tree.cuh>
#include <specdec/specdec.cuh>
#include <specdec/tree/mask.hpp>
#include <specdec/tree/token_tree.hpp>
#include <specdec/verify/tree.hpp>
#include <specdec/verify/tree_batch.hpp>

#include <catch2/catch.hpp>

#include "support/device_batch.hpp"
#include "support/gpu.hpp"
#include "support/host_batch.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <span>
#include <vector>

using namespace specdec;
using namespace specdec_test;

namespace {

// ---------------------------------------------------------------------------------------------
// A packed tree batch on the host.

enum class tree_kind { chain, star, deep, random, binary, root_only };

template <class T>
struct tree_host {
  index_t batch = 0;
  index_t vocab = 0;
  std::vector<index_t> offsets{0};
  std::vector<token_id> tokens;
  std::vector<std::int32_t> parents, first_child, next_sibling, draft_index;
  std::vector<index_t> draft_offsets;
  std::vector<T> target, draft;
  index_t draft_rows = 0;
  std::vector<sampling::sampling_params> params;
  std::vector<std::uint64_t> ids;
  std::vector<index_t> positions;
  std::uint64_t seed = 2024;
  distribution_kind kind = distribution_kind::logits;

  index_t total() const {
    return offsets.back();
  }
  verify::tree_batch<T> view() const {
    verify::tree_batch<T> b;
    b.batch = batch;
    b.node_offsets = offsets.data();
    b.tokens = tokens.data();
    b.parents = parents.data();
    if (!first_child.empty()) {
      b.first_child = first_child.data();
      b.next_sibling = next_sibling.data();
    }
    b.target = {target.data(), total(), vocab, vocab};
    b.draft = {draft.data(), draft_rows, vocab, vocab};
    b.draft_offsets = draft_offsets.empty() ? nullptr : draft_offsets.data();
    b.draft_index = draft_index.empty() ? nullptr : draft_index.data();
    b.target_kind = kind;
    b.draft_kind = kind;
    b.params = params.data();
    b.params_stride = 1;
    b.request_ids = ids.data();
    b.positions = positions.data();
    b.seed = seed;
    return b;
  }
  tree::tree_view tree_of(index_t b) const {
    const index_t n0 = offsets[static_cast<std::size_t>(b)];
    return {parents.data() + n0,
            static_cast<std::int32_t>(offsets[static_cast<std::size_t>(b) + 1] - n0),
            nullptr,
            nullptr};
  }
};

struct tree_shape {
  index_t batch = 32;
  index_t vocab = 4096;
  int max_nodes = 64;
  bool probabilities = false;
  bool lists = false;        // first_child / next_sibling arrays
  bool shared_draft = false; // one draft row per inner node (draft_index, draft_offsets)
  std::uint32_t seed = 7;
  int min_nodes = 1;
};

/// Sibling lists from parents (children in index order).
void make_lists(const std::vector<std::int32_t>& parents,
                index_t n0,
                index_t n,
                std::vector<std::int32_t>& first,
                std::vector<std::int32_t>& next) {
  std::vector<std::int32_t> last(static_cast<std::size_t>(n), -1);
  for (index_t j = 0; j < n; ++j) {
    first[static_cast<std::size_t>(n0 + j)] = -1;
    next[static_cast<std::size_t>(n0 + j)] = -1;
  }
  for (index_t j = 1; j < n; ++j) {
    const std::int32_t p = parents[static_cast<std::size_t>(n0 + j)];
    auto& l = last[static_cast<std::size_t>(p)];
    if (l < 0)
      first[static_cast<std::size_t>(n0 + p)] = static_cast<std::int32_t>(j);
    else
      next[static_cast<std::size_t>(n0 + l)] = static_cast<std::int32_t>(j);
    l = static_cast<std::int32_t>(j);
  }
}

/// Target rows: normal logits (sigma 1.5) with a few peaked tokens; the draft row of node j:
/// its parent's target row plus noise (sigma 0.6); tokens: the draft argmax, a peaked token or
/// a random one. Trees cycle through the kinds; parameters as support/host_batch.hpp.
template <class T>
tree_host<T> make_trees(const tree_shape& s) {
  tree_host<T> h;
  h.batch = s.batch;
  h.vocab = s.vocab;
  h.kind = s.probabilities ? distribution_kind::probabilities : distribution_kind::logits;
  std::mt19937_64 rng(s.seed);
  std::normal_distribution<float> logit(0.0f, 1.5f);
  std::normal_distribution<float> noise(0.0f, 0.6f);
  const index_t v = s.vocab;
  for (index_t b = 0; b < s.batch; ++b) {
    const auto kind = static_cast<tree_kind>(b % 6);
    int n = 1;
    if (kind != tree_kind::root_only || s.min_nodes > 1) {
      const int lo = std::max(2, s.min_nodes);
      n = lo + static_cast<int>(rng() % static_cast<std::uint64_t>(s.max_nodes - lo + 1));
    }
    h.parents.push_back(-1);
    for (int j = 1; j < n; ++j) {
      std::int32_t p = 0;
      switch (kind) {
      case tree_kind::chain:
        p = j - 1;
        break;
      case tree_kind::star:
        p = 0;
        break;
      case tree_kind::deep:
        p = rng() % 10 < 8 ? j - 1 : static_cast<std::int32_t>(rng() % static_cast<unsigned>(j));
        break;
      case tree_kind::binary:
        p = (j - 1) / 2;
        break;
      default:
        p = static_cast<std::int32_t>(rng() % static_cast<unsigned>(j));
        break;
      }
      h.parents.push_back(p);
    }
    h.offsets.push_back(h.offsets.back() + n);
  }
  const index_t total = h.total();
  if (s.lists) {
    h.first_child.resize(static_cast<std::size_t>(total));
    h.next_sibling.resize(static_cast<std::size_t>(total));
    for (index_t b = 0; b < s.batch; ++b)
      make_lists(h.parents,
                 h.offsets[static_cast<std::size_t>(b)],
                 h.offsets[static_cast<std::size_t>(b) + 1]
                     - h.offsets[static_cast<std::size_t>(b)],
                 h.first_child,
                 h.next_sibling);
  }
  // Draft rows: one per non-root node (row of node j: n0 - b + j - 1), or one per inner node.
  std::vector<index_t> draft_source; // the target row each draft row perturbs
  std::vector<index_t> node_draft_row(static_cast<std::size_t>(total), -1); // global
  if (s.shared_draft) {
    h.draft_index.assign(static_cast<std::size_t>(total), 0);
    for (index_t b = 0; b < s.batch; ++b) {
      h.draft_offsets.push_back(static_cast<index_t>(draft_source.size()));
      const index_t n0 = h.offsets[static_cast<std::size_t>(b)];
      const index_t n = h.offsets[static_cast<std::size_t>(b) + 1] - n0;
      std::vector<std::int32_t> row_of(static_cast<std::size_t>(n), -1);
      for (index_t j = 1; j < n; ++j) {
        const std::int32_t p = h.parents[static_cast<std::size_t>(n0 + j)];
        if (row_of[static_cast<std::size_t>(p)] < 0) {
          row_of[static_cast<std::size_t>(p)] = static_cast<std::int32_t>(
              static_cast<index_t>(draft_source.size()) - h.draft_offsets.back());
          draft_source.push_back(n0 + p);
        }
        h.draft_index[static_cast<std::size_t>(n0 + j)] = row_of[static_cast<std::size_t>(p)];
        node_draft_row[static_cast<std::size_t>(n0 + j)] =
            h.draft_offsets.back() + row_of[static_cast<std::size_t>(p)];
      }
    }
    h.draft_offsets.push_back(static_cast<index_t>(draft_source.size()));
  } else {
    for (index_t b = 0; b < s.batch; ++b) {
      const index_t n0 = h.offsets[static_cast<std::size_t>(b)];
      const index_t n = h.offsets[static_cast<std::size_t>(b) + 1] - n0;
      for (index_t j = 1; j < n; ++j) {
        node_draft_row[static_cast<std::size_t>(n0 + j)] =
            static_cast<index_t>(draft_source.size());
        draft_source.push_back(n0 + h.parents[static_cast<std::size_t>(n0 + j)]);
      }
    }
  }
  h.draft_rows = static_cast<index_t>(draft_source.size());
  std::vector<float> t(static_cast<std::size_t>(total * v));
  std::vector<float> d(static_cast<std::size_t>(h.draft_rows * v));
  for (auto& x : t)
    x = logit(rng);
  for (index_t r = 0; r < total; ++r)
    for (int p = 0; p < 4; ++p)
      t[static_cast<std::size_t>(r * v + static_cast<index_t>(rng() % 64))] +=
          6.0f - static_cast<float>(p);
  std::vector<index_t> draft_argmax(static_cast<std::size_t>(h.draft_rows));
  for (index_t r = 0; r < h.draft_rows; ++r) {
    const index_t src = draft_source[static_cast<std::size_t>(r)];
    float best = -1e30f;
    for (index_t i = 0; i < v; ++i) {
      const float x = t[static_cast<std::size_t>(src * v + i)] + noise(rng);
      d[static_cast<std::size_t>(r * v + i)] = x;
      if (x > best) {
        best = x;
        draft_argmax[static_cast<std::size_t>(r)] = i;
      }
    }
  }
  h.tokens.assign(static_cast<std::size_t>(total), 0);
  for (index_t r = 0; r < total; ++r) {
    const index_t dr = node_draft_row[static_cast<std::size_t>(r)];
    if (dr < 0)
      continue; // a root
    const auto pick = rng() % 4;
    h.tokens[static_cast<std::size_t>(r)] = static_cast<token_id>(
        pick < 2 ? draft_argmax[static_cast<std::size_t>(dr)]
                 : (pick == 2 ? static_cast<index_t>(rng() % 64)
                              : static_cast<index_t>(rng() % static_cast<std::uint64_t>(v))));
  }
  convert_rows(t, h.target, v, s.probabilities);
  convert_rows(d, h.draft, v, s.probabilities);
  if (h.draft.empty())
    h.draft.resize(static_cast<std::size_t>(v)); // a non-null draft matrix with 0 rows
  for (index_t b = 0; b < s.batch; ++b) {
    sampling::sampling_params p;
    switch (b % 5) { // co-prime with the 6 tree kinds: every pair occurs
    case 0:
      break;
    case 1:
      p.temperature = 0.7f;
      break;
    case 2:
      p.top_k = 20;
      break;
    case 3:
      p.top_p = 0.8f;
      break;
    default:
      p.temperature = 1.3f;
      p.top_k = 50;
      p.top_p = 0.9f;
      p.min_p = 0.02f;
      break;
    }
    h.params.push_back(p);
    h.ids.push_back(1000003u * static_cast<std::uint64_t>(b) + 17u);
    h.positions.push_back(static_cast<index_t>(rng() % 4096));
  }
  return h;
}

// ---------------------------------------------------------------------------------------------
// Results, host reference, tie rule, device mirror.

struct tree_results {
  std::vector<std::int32_t> accepted, last_node;
  std::vector<token_id> next;
  std::vector<row_status> status;
  std::vector<std::int32_t> path; // [B, path_stride] (device only)
};

constexpr index_t path_stride = 65;

template <class Policy, class T>
tree_results host_run(const Policy& policy, const tree_host<T>& h) {
  tree_results r;
  const auto n = static_cast<std::size_t>(h.batch);
  r.accepted.resize(n);
  r.last_node.resize(n);
  r.next.resize(n);
  r.status.resize(n);
  const status st = cpu::verify_tree_batch(
      policy,
      h.view(),
      verify::tree_batch_output{
          r.accepted.data(), r.last_node.data(), r.next.data(), r.status.data()});
  REQUIRE((st.ok() || st.code != errc::shape_mismatch)); // per-request flags are compared
  return r;
}

/// Device results against the host's under the tie rule of support/host_batch.hpp (is_tie): a
/// request that differs is a tie when a perturbed host rerun reproduces the device's
/// (accepted, last_node, next).
template <class Policy, class T>
comparison compare(const Policy& policy, const tree_host<T>& h, const tree_results& dev) {
  const tree_results host = host_run(policy, h);
  const verify::tree_batch<T> view = h.view();
  comparison c;
  for (index_t b = 0; b < h.batch; ++b) {
    const auto i = static_cast<std::size_t>(b);
    if (host.accepted[i] == dev.accepted[i] && host.last_node[i] == dev.last_node[i]
        && host.next[i] == dev.next[i] && host.status[i] == dev.status[i]) {
      ++c.equal;
      continue;
    }
    const bool tie =
        is_tie(view.request(b).params, [&](const sampling::sampling_params& p, float fu) {
          verify::tree_request<T> r = view.request(b);
          r.params = p;
          const verify::tree_outcome o =
              policy.verify_tree(cpu::serial_executor{}, r, scaled_uniforms{view.uniforms(b), fu});
          return o.accepted == dev.accepted[i] && o.last_node == dev.last_node[i]
                 && o.next == dev.next[i];
        });
    if (tie) {
      ++c.ties;
    } else {
      ++c.hard;
      c.hard_rows.push_back(b);
    }
  }
  return c;
}

template <class T>
struct tree_device {
  device_buffer<index_t> offsets, draft_offsets, positions;
  device_buffer<token_id> tokens;
  device_buffer<std::int32_t> parents, first_child, next_sibling, draft_index;
  device_buffer<T> target, draft;
  device_buffer<sampling::sampling_params> params;
  device_buffer<std::uint64_t> ids;
  device_buffer<std::int32_t> accepted, last_node, path;
  device_buffer<token_id> next;
  device_buffer<row_status> status;
  specdec::cuda::tree_problem<T> problem;

  explicit tree_device(const tree_host<T>& h)
      : offsets(h.offsets)
      , draft_offsets(h.draft_offsets)
      , positions(h.positions)
      , tokens(h.tokens)
      , parents(h.parents)
      , first_child(h.first_child)
      , next_sibling(h.next_sibling)
      , draft_index(h.draft_index)
      , target(h.target)
      , draft(h.draft)
      , params(h.params)
      , ids(h.ids)
      , accepted(static_cast<std::size_t>(h.batch))
      , last_node(static_cast<std::size_t>(h.batch))
      , path(static_cast<std::size_t>(h.batch * path_stride))
      , next(static_cast<std::size_t>(h.batch))
      , status(static_cast<std::size_t>(h.batch)) {
    problem.batch = h.view();
    verify::tree_batch<T>& b = problem.batch;
    b.node_offsets = offsets.ptr;
    b.tokens = tokens.ptr;
    b.parents = parents.ptr;
    b.first_child = first_child.ptr;
    b.next_sibling = next_sibling.ptr;
    b.target.data = target.ptr;
    b.draft.data = draft.ptr;
    b.draft_offsets = draft_offsets.ptr;
    b.draft_index = draft_index.ptr;
    b.params = params.ptr;
    b.request_ids = ids.ptr;
    b.positions = positions.ptr;
    problem.out = {accepted.ptr, last_node.ptr, next.ptr, status.ptr};
    problem.path = path.ptr;
    problem.path_stride = path_stride;
  }

  template <class Verifier>
  tree_results run(const Verifier& v) {
    const std::size_t bytes = v.workspace_bytes(problem);
    device_buffer<unsigned char> ws(bytes);
    REQUIRE(v.run(problem, ws.ptr, bytes, nullptr).ok());
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    return {accepted.download(),
            last_node.download(),
            next.download(),
            status.download(),
            path.download()};
  }
};

/// Every path row equals tree::write_path of the reported last node, -1 padded.
template <class T>
void check_paths(const tree_host<T>& h, const tree_results& dev) {
  int bad = 0;
  for (index_t b = 0; b < h.batch; ++b) {
    const auto i = static_cast<std::size_t>(b);
    std::vector<std::int32_t> want(static_cast<std::size_t>(path_stride), -1);
    // A malformed tree gives accepted 0; a valid one the root path of last_node (a rule may
    // also flag malformed_tree on a valid tree: too many siblings under a visited node).
    if (dev.status[i].has(row_status::bad_shape) || !tree::validate(h.tree_of(b)).ok()) {
      want[0] = 0;
      if (dev.accepted[i] != 0)
        ++bad;
    } else {
      const std::int32_t len = tree::write_path(
          h.tree_of(b), dev.last_node[i], want.data(), static_cast<std::int32_t>(path_stride));
      if (len != dev.accepted[i] + 1)
        ++bad;
    }
    if (!std::equal(want.begin(), want.end(), dev.path.begin() + b * path_stride))
      ++bad;
  }
  CHECK(bad == 0);
}

template <class Policy, class T>
void check_against_host(const Policy& policy, const tree_shape& shape) {
  const tree_host<T> h = make_trees<T>(shape);
  tree_device<T> d(h);
  const specdec::cuda::tree_verifier<Policy, T> inline_rows(policy, 1);    // B >= 1 SM: inline
  const specdec::cuda::tree_verifier<Policy, T> prepared(policy, 1 << 20); // B < SMs: prepared
  REQUIRE_FALSE(inline_rows.prepares_rows(d.problem));
  REQUIRE(prepared.prepares_rows(d.problem));
  const tree_results a = d.run(inline_rows);
  const tree_results p = d.run(prepared);
  // Prepared stats are what the rule computes inline: bit-identical outcomes.
  CHECK(a.accepted == p.accepted);
  CHECK(a.last_node == p.last_node);
  CHECK(a.next == p.next);
  CHECK(a.status == p.status);
  CHECK(a.path == p.path);
  const comparison c = compare(policy, h, a);
  double depth = 0.0;
  for (const auto x : a.accepted)
    depth += x;
  INFO("B " << shape.batch << " V " << shape.vocab << " nodes " << h.total() << ": equal "
            << c.equal << ", ties " << c.ties << ", hard " << c.hard << ", mean accepted "
            << depth / static_cast<double>(shape.batch)
            << (c.hard_rows.empty() ? "" : ", first hard row ")
            << (c.hard_rows.empty() ? index_t{-1} : c.hard_rows.front()));
  CHECK(c.hard == 0);
  CHECK(c.ties <= std::max<index_t>(1, shape.batch / 1000));
  check_paths(h, a);
}

template <class Policy>
void check_rule(const Policy& policy) {
  // Odd V (scalar loads, tiles ending mid-vector), one draft row per node.
  check_against_host<Policy, float>(policy, {60, 5003, 64, false, false, false, 11});
  // Aligned rows, several tiles per row, sibling lists, shared draft rows.
  check_against_host<Policy, float>(policy, {12, 32000, 64, false, true, true, 12});
  // Probability rows, small trees.
  check_against_host<Policy, float>(policy, {48, 4096, 12, true, false, true, 13});
}

} // namespace

TEST_CASE("device tree greedy equals the host", "[gpu][verify][tree]") {
  check_rule(verify::greedy{});
}

TEST_CASE("device tree rejection_sampling equals the host up to proven ties",
          "[gpu][verify][tree]") {
  check_rule(verify::rejection_sampling{});
}

TEST_CASE("device tree one_hot_rejection equals the host up to proven ties",
          "[gpu][verify][tree]") {
  check_rule(verify::one_hot_rejection{});
}

TEST_CASE("device tree typical_acceptance equals the host up to proven ties",
          "[gpu][verify][tree]") {
  check_rule(verify::typical_acceptance{});
}

TEST_CASE("device tree: malformed trees, NaN rows and bad tokens stay in their request",
          "[gpu][verify][tree][bad_input]") {
  tree_shape shape{30, 2048, 24, false, true, false, 41};
  shape.min_nodes = 8;
  const tree_host<float> clean = make_trees<float>(shape);
  tree_host<float> bad = clean;
  const auto at = [&](index_t b, index_t j) {
    return static_cast<std::size_t>(clean.offsets[static_cast<std::size_t>(b)] + j);
  };
  const auto n_of = [&](index_t b) {
    return clean.offsets[static_cast<std::size_t>(b) + 1]
           - clean.offsets[static_cast<std::size_t>(b)];
  };
  bad.parents[at(1, 3)] = 5;                                      // forward parent
  bad.parents[at(2, 2)] = -1;                                     // second root
  bad.parents[at(3, 4)] = static_cast<std::int32_t>(n_of(3) + 7); // out of range
  bad.parents[at(4, 0)] = 0;                                      // bad root
  bad.target[at(5, 0) * static_cast<std::size_t>(clean.vocab) + 17] = std::nanf("");
  bad.tokens[at(6, 1)] = static_cast<token_id>(clean.vocab + 5); // out of range
  bad.next_sibling[at(7, 0)] = 0;                                // inconsistent lists
  bad.target[at(8, n_of(8) - 1) * static_cast<std::size_t>(clean.vocab) + 3] = std::nanf("");
  bad.parents[at(9, 6)] = 6; // self loop
  const std::vector<index_t> touched{1, 2, 3, 4, 5, 6, 7, 8, 9};

  for (int rule = 0; rule < 2; ++rule) {
    tree_device<float> dc(clean);
    tree_device<float> db(bad);
    tree_results a, r;
    comparison c;
    if (rule == 0) {
      const specdec::cuda::tree_verifier<verify::rejection_sampling, float> v;
      a = dc.run(v);
      r = db.run(v);
      c = compare(verify::rejection_sampling{}, bad, r);
    } else {
      const specdec::cuda::tree_verifier<verify::typical_acceptance, float> v;
      a = dc.run(v);
      r = db.run(v);
      c = compare(verify::typical_acceptance{}, bad, r);
    }
    INFO("rule " << rule);
    for (index_t b = 0; b < clean.batch; ++b) {
      const auto i = static_cast<std::size_t>(b);
      CHECK(r.next[i] >= 0);
      CHECK(r.next[i] < clean.vocab);
      if (std::find(touched.begin(), touched.end(), b) != touched.end())
        continue;
      CHECK(a.accepted[i] == r.accepted[i]);
      CHECK(a.last_node[i] == r.last_node[i]);
      CHECK(a.next[i] == r.next[i]);
      CHECK(a.status[i] == r.status[i]);
    }
    for (const index_t b : {1, 2, 3, 4, 7, 9}) {
      CHECK(r.status[static_cast<std::size_t>(b)].has(row_status::malformed_tree));
      CHECK(r.accepted[static_cast<std::size_t>(b)] == 0);
      CHECK(r.last_node[static_cast<std::size_t>(b)] == 0);
    }
    CHECK(r.status[5].has(row_status::target_invalid));
    CHECK(c.hard == 0); // the host flags the same things
    check_paths(bad, r);
  }
}

TEST_CASE("device tree: bad shapes give bad_shape for that request only",
          "[gpu][verify][tree][bad_input]") {
  // Requests 1 (no node), 3 (max_nodes + 1 nodes), 4 (negative position) are bad; greedy
  // reads no draft rows, so the empty request does not shift anyone's rows.
  tree_host<float> h = make_trees<float>({6, 256, 10, false, false, false, 51});
  std::vector<index_t> sizes;
  for (index_t b = 0; b < h.batch; ++b)
    sizes.push_back(h.offsets[static_cast<std::size_t>(b) + 1]
                    - h.offsets[static_cast<std::size_t>(b)]);
  tree_host<float> g = h;
  g.offsets.assign(1, 0);
  g.parents.clear();
  g.tokens.clear();
  g.target.clear();
  const auto v = static_cast<std::size_t>(h.vocab);
  for (index_t b = 0; b < h.batch; ++b) {
    index_t n = sizes[static_cast<std::size_t>(b)];
    const index_t n0 = h.offsets[static_cast<std::size_t>(b)];
    if (b == 1)
      n = 0;
    if (b == 3)
      n = tree::max_nodes + 1;
    for (index_t j = 0; j < n; ++j) {
      const index_t src = n0 + std::min(j, sizes[static_cast<std::size_t>(b)] - 1);
      g.parents.push_back(j == 0 ? -1 : static_cast<std::int32_t>(j - 1));
      g.tokens.push_back(h.tokens[static_cast<std::size_t>(src)]);
      g.target.insert(
          g.target.end(),
          h.target.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(src) * v),
          h.target.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(src + 1) * v));
      if (b != 3 && j > 0) // keep the generated topology of the good requests
        g.parents.back() = h.parents[static_cast<std::size_t>(n0 + j)];
    }
    g.offsets.push_back(g.offsets.back() + n);
  }
  g.positions[4] = -3;
  tree_device<float> d(g);
  const tree_results r = d.run(specdec::cuda::tree_verifier<verify::greedy, float>{});
  const verify::tree_batch<float> view = g.view();
  for (index_t b = 0; b < g.batch; ++b) {
    const auto i = static_cast<std::size_t>(b);
    if (b == 1 || b == 3 || b == 4) {
      CHECK(r.status[i].has(row_status::bad_shape));
      CHECK(r.accepted[i] == 0);
      CHECK(r.last_node[i] == 0);
      CHECK(r.next[i] == 0);
      CHECK(r.path[i * static_cast<std::size_t>(path_stride)] == 0);
      CHECK(r.path[i * static_cast<std::size_t>(path_stride) + 1] == -1);
      continue;
    }
    const verify::tree_outcome o =
        cpu::verify_tree(verify::greedy{}, view.request(b), rng_key{g.seed, g.ids[i]});
    CHECK(r.accepted[i] == o.accepted);
    CHECK(r.last_node[i] == o.last_node);
    CHECK(r.next[i] == o.next);
    CHECK(r.status[i] == o.status);
  }

  // Draft rows out of range (rejection_sampling reads them): request 2 only; the others equal
  // their results in the uncorrupted batch.
  tree_host<float> q = make_trees<float>({5, 512, 10, false, false, true, 52});
  const specdec::cuda::tree_verifier<verify::rejection_sampling, float> rs;
  tree_device<float> dclean(q);
  const tree_results clean = dclean.run(rs);
  const index_t n0 = q.offsets[2];
  REQUIRE(q.offsets[3] - n0 >= 2);
  q.draft_index[static_cast<std::size_t>(n0 + 1)] = static_cast<std::int32_t>(q.draft_rows + 4);
  tree_device<float> dq(q);
  const tree_results s = dq.run(rs);
  for (index_t b = 0; b < q.batch; ++b) {
    const auto i = static_cast<std::size_t>(b);
    if (b == 2) {
      CHECK(s.status[i].has(row_status::bad_shape));
      CHECK(s.accepted[i] == 0);
      continue;
    }
    CHECK(s.accepted[i] == clean.accepted[i]);
    CHECK(s.last_node[i] == clean.last_node[i]);
    CHECK(s.next[i] == clean.next[i]);
    CHECK(s.status[i] == clean.status[i]);
  }
}

TEST_CASE("device tree: host-side checks of run", "[gpu][verify][tree][bad_input]") {
  const tree_host<float> h = make_trees<float>({4, 1024, 8, false, false, false, 53});
  tree_device<float> d(h);
  const specdec::cuda::tree_verifier<verify::rejection_sampling, float> v(
      verify::rejection_sampling{}, 1 << 20);
  device_buffer<unsigned char> ws(v.workspace_bytes(d.problem));
  REQUIRE(ws.n > 0);
  CHECK(v.run(d.problem, nullptr, 0, nullptr).code == errc::invalid_argument);
  auto p = d.problem;
  p.batch.draft.cols = 1000;
  CHECK(v.run(p, ws.ptr, ws.n, nullptr).code == errc::vocab_mismatch);
  p = d.problem;
  p.batch.target.row_stride = p.batch.target.cols - 1;
  CHECK(v.run(p, ws.ptr, ws.n, nullptr).code == errc::shape_mismatch);
  p = d.problem;
  p.path_stride = 0;
  CHECK(v.run(p, ws.ptr, ws.n, nullptr).code == errc::invalid_argument);
  p = d.problem;
  p.batch.parents = nullptr;
  CHECK(v.run(p, ws.ptr, ws.n, nullptr).code == errc::invalid_argument);
}

TEST_CASE("device tree: seed and position offset through device pointers", "[gpu][verify][tree]") {
  tree_host<float> h = make_trees<float>({24, 2048, 16, false, false, false, 61});
  tree_device<float> d(h);
  const specdec::cuda::tree_verifier<verify::rejection_sampling, float> v;
  const std::uint64_t seed = 987654321u;
  const index_t offset = 37;
  device_buffer<std::uint64_t> dseed(std::vector<std::uint64_t>{seed});
  device_buffer<index_t> doff(std::vector<index_t>{offset});
  d.problem.batch.seed = 1; // ignored: the pointer wins
  d.problem.seed_ptr = dseed.ptr;
  d.problem.position_offset_ptr = doff.ptr;
  d.problem.position_offset = 3;
  const tree_results r = d.run(v);
  h.seed = seed;
  for (auto& p : h.positions)
    p += offset + 3;
  const comparison c = compare(verify::rejection_sampling{}, h, r);
  CHECK(c.hard == 0);
  CHECK(c.ties <= 1);
}

TEST_CASE("device tree masks and positions equal the host builders", "[gpu][tree][mask]") {
  tree_host<float> h = make_trees<float>({40, 8, 64, false, false, false, 71});
  // Request 3: a malformed tree (flagged; its words are unspecified). Request 5: too wide for
  // a 1-word stride in the second run.
  const std::size_t bad_node = static_cast<std::size_t>(h.offsets[3] + 1);
  h.parents[bad_node] = 7;
  std::vector<index_t> roots(static_cast<std::size_t>(h.batch));
  for (index_t b = 0; b < h.batch; ++b)
    roots[static_cast<std::size_t>(b)] = 100 * b + 3;
  const index_t total = h.total();
  const index_t stride = tree::mask_words(tree::max_nodes) / 8; // 4 words: up to 128 nodes
  device_buffer<index_t> offsets(h.offsets), droots(roots),
      positions(static_cast<std::size_t>(total));
  device_buffer<std::int32_t> parents(h.parents);
  device_buffer<std::uint32_t> mask(static_cast<std::size_t>(total * stride));
  device_buffer<row_status> status(static_cast<std::size_t>(h.batch));
  specdec::cuda::tree_mask_problem p;
  p.batch = h.batch;
  p.node_offsets = offsets.ptr;
  p.parents = parents.ptr;
  p.total_nodes = total;
  p.mask = mask.ptr;
  p.mask_stride = stride;
  p.positions = positions.ptr;
  p.root_positions = droots.ptr;
  p.status = status.ptr;
  const specdec::cuda::tree_mask_builder<> builder;
  REQUIRE(builder.workspace_bytes(p) == 0);
  REQUIRE(builder.run(p, nullptr, 0, nullptr).ok());
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  const std::vector<std::uint32_t> got = mask.download();
  const std::vector<index_t> pos = positions.download();
  const std::vector<row_status> st = status.download();
  int mismatches = 0;
  for (index_t b = 0; b < h.batch; ++b) {
    const auto i = static_cast<std::size_t>(b);
    const tree::tree_view t = h.tree_of(b);
    if (b == 3) {
      CHECK(st[i].has(row_status::malformed_tree));
      continue;
    }
    CHECK(st[i].ok());
    const index_t n = t.num_nodes;
    const index_t w = tree::mask_words(t.num_nodes);
    std::vector<std::uint32_t> want(static_cast<std::size_t>(n * w));
    std::vector<index_t> want_pos(static_cast<std::size_t>(n));
    REQUIRE(tree::build_packed_mask(t, want).ok());
    REQUIRE(tree::positions(t, roots[i], want_pos).ok());
    const index_t n0 = h.offsets[i];
    for (index_t j = 0; j < n; ++j) {
      for (index_t k = 0; k < stride; ++k) {
        const std::uint32_t expect = k < w ? want[static_cast<std::size_t>(j * w + k)] : 0u;
        mismatches += got[static_cast<std::size_t>((n0 + j) * stride + k)] != expect ? 1 : 0;
      }
      mismatches += pos[static_cast<std::size_t>(n0 + j)] != want_pos[static_cast<std::size_t>(j)];
    }
  }
  CHECK(mismatches == 0);

  // A 1-word stride: requests with more than 32 nodes are bad_shape with zero rows.
  p.mask_stride = 1;
  REQUIRE(builder.run(p, nullptr, 0, nullptr).ok());
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  const std::vector<std::uint32_t> narrow = mask.download();
  const std::vector<row_status> st1 = status.download();
  const std::vector<index_t> pos1 = positions.download();
  for (index_t b = 0; b < h.batch; ++b) {
    const auto i = static_cast<std::size_t>(b);
    const index_t n = h.offsets[i + 1] - h.offsets[i];
    if (n <= 32)
      continue;
    CHECK(st1[i].has(row_status::bad_shape));
    for (index_t j = 0; j < n; ++j) {
      CHECK(narrow[static_cast<std::size_t>(h.offsets[i] + j)] == 0u);
      CHECK(pos1[static_cast<std::size_t>(h.offsets[i] + j)] == -1);
    }
  }
}

namespace {

/// Random accepted paths (root first, strictly increasing) with nodes below `span`.
std::vector<std::int32_t> random_paths(index_t sequences, std::int32_t span, std::mt19937& rng) {
  std::vector<std::int32_t> paths(static_cast<std::size_t>(sequences * path_stride), -1);
  for (index_t b = 0; b < sequences; ++b) {
    std::int32_t* row = paths.data() + b * path_stride;
    row[0] = 0;
    std::int32_t node = 0;
    for (index_t d = 1; d < path_stride; ++d) {
      node += 1 + static_cast<std::int32_t>(rng() % 3);
      if (node >= span || rng() % 10 == 0)
        break;
      row[d] = node;
    }
  }
  return paths;
}

/// Host reference of the compaction: slot base + d of every feature takes what slot
/// base + path[d] held before (a gather from the original), for the sequences not in `bad`.
template <class Element>
std::vector<float> host_compact(const std::vector<float>& old,
                                const std::vector<std::int32_t>& paths,
                                const std::vector<index_t>& bases,
                                index_t planes,
                                index_t width,
                                const std::vector<index_t>& bad,
                                const Element& element) {
  std::vector<float> data = old;
  const auto sequences = static_cast<index_t>(bases.size());
  for (index_t b = 0; b < sequences; ++b) {
    if (std::find(bad.begin(), bad.end(), b) != bad.end())
      continue;
    const std::int32_t* row = paths.data() + b * path_stride;
    const index_t base = bases[static_cast<std::size_t>(b)];
    for (index_t d = 0; d < path_stride && row[d] >= 0; ++d)
      for (index_t p = 0; p < planes; ++p)
        for (index_t f = 0; f < width; ++f)
          data[static_cast<std::size_t>(element(b, p, base + d, f))] =
              old[static_cast<std::size_t>(element(b, p, base + row[d], f))];
  }
  return data;
}

/// Status and new length of every sequence: bad_shape and -1 for `bad`, else clean and
/// base + path length.
void check_kv_reports(const std::vector<row_status>& status,
                      const std::vector<index_t>& lengths,
                      const std::vector<std::int32_t>& paths,
                      const std::vector<index_t>& bases,
                      const std::vector<index_t>& bad) {
  for (std::size_t b = 0; b < bases.size(); ++b) {
    const bool is_bad = std::find(bad.begin(), bad.end(), static_cast<index_t>(b)) != bad.end();
    index_t len = 0;
    while (len < path_stride
           && paths[b * static_cast<std::size_t>(path_stride) + static_cast<std::size_t>(len)] >= 0)
      ++len;
    CHECK(status[b].has(row_status::bad_shape) == is_bad);
    CHECK(lengths[b] == (is_bad ? index_t{-1} : bases[b] + len));
  }
}

} // namespace

TEST_CASE("device KV compaction of accepted paths: contiguous layouts", "[gpu][kv]") {
  std::mt19937 rng(81);
  constexpr index_t sequences = 7;
  constexpr index_t planes = 3;
  constexpr index_t capacity = 96;
  struct layout {
    index_t width;
    bool feature_major;
  };
  // 24 floats (16-byte units), 5 floats (element copies), feature-major planes.
  for (const layout lay : {layout{24, false}, layout{5, false}, layout{8, true}}) {
    INFO("width " << lay.width << (lay.feature_major ? " feature-major" : " position-major"));
    const index_t width = lay.width;
    std::vector<std::int32_t> paths = random_paths(sequences, 40, rng);
    std::vector<index_t> bases(sequences);
    for (auto& b : bases)
      b = static_cast<index_t>(rng() % static_cast<unsigned>(capacity - 40));
    // Sequence 2: a repeated node; sequence 4: a slot past the capacity.
    paths[2 * path_stride + 1] = 2;
    paths[2 * path_stride + 2] = 2;
    bases[4] = capacity - 1;
    paths[4 * path_stride + 1] = 2;
    const std::vector<index_t> bad{2, 4};
    const index_t plane_stride = capacity * width;
    const index_t sequence_stride = planes * plane_stride;
    const index_t slot_stride = lay.feature_major ? 1 : width;
    const index_t feature_stride = lay.feature_major ? capacity : 1;
    const auto element = [&](index_t b, index_t p, index_t s, index_t f) {
      return b * sequence_stride + p * plane_stride + s * slot_stride + f * feature_stride;
    };
    std::vector<float> data(static_cast<std::size_t>(sequences * sequence_stride));
    std::iota(data.begin(), data.end(), 0.0f);
    const std::vector<float> want = host_compact(data, paths, bases, planes, width, bad, element);

    device_buffer<float> d(data);
    device_buffer<std::int32_t> dpaths(paths);
    device_buffer<index_t> dbases(bases), lengths(sequences);
    device_buffer<row_status> status(sequences);
    specdec::cuda::kv_contiguous_problem<float> p;
    p.paths = {sequences, dbases.ptr, dpaths.ptr, path_stride, status.ptr, lengths.ptr};
    p.data = d.ptr;
    p.planes = planes;
    p.width = width;
    p.capacity = capacity;
    p.sequence_stride = sequence_stride;
    p.plane_stride = plane_stride;
    p.slot_stride = slot_stride;
    p.feature_stride = feature_stride;
    const specdec::cuda::kv_path_compactor<> k;
    REQUIRE(k.workspace_bytes(p) == 0);
    REQUIRE(k.run(p, nullptr, 0, nullptr).ok());
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    CHECK(d.download() == want);
    check_kv_reports(status.download(), lengths.download(), paths, bases, bad);
  }
}

TEST_CASE("device KV compaction of accepted paths: paged layout with a block table", "[gpu][kv]") {
  std::mt19937 rng(82);
  constexpr index_t sequences = 5;
  constexpr index_t planes = 2; // K and V, separate allocations through plane pointers
  constexpr index_t width = 12;
  constexpr index_t block_size = 16;
  constexpr index_t table_stride = 8; // 128 slots per sequence
  constexpr index_t num_blocks = 48;
  std::vector<std::int32_t> blocks(num_blocks);
  std::iota(blocks.begin(), blocks.end(), 0);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  std::vector<std::int32_t> table(static_cast<std::size_t>(sequences * table_stride));
  for (std::size_t i = 0; i < table.size(); ++i)
    table[i] = blocks[i];
  std::vector<std::int32_t> paths = random_paths(sequences, 40, rng);
  std::vector<index_t> bases(sequences);
  for (auto& b : bases)
    b = static_cast<index_t>(rng() % 80u);
  // Sequence 1: not increasing; sequence 3: its tree runs into an unmapped block.
  paths[1 * path_stride + 1] = 3;
  paths[1 * path_stride + 2] = 1;
  table[3 * table_stride + 7] = -1;
  bases[3] = 110;
  paths[3 * path_stride + 1] = 5;
  paths[3 * path_stride + 2] = -1;
  const std::vector<index_t> bad{1, 3};
  const index_t block_stride = block_size * width;
  const index_t plane_elems = num_blocks * block_stride;
  const auto element = [&](index_t b, index_t p, index_t s, index_t f) {
    const index_t k = table[static_cast<std::size_t>(b * table_stride + s / block_size)];
    return p * plane_elems + k * block_stride + (s % block_size) * width + f;
  };
  std::vector<float> data(static_cast<std::size_t>(planes * plane_elems));
  std::iota(data.begin(), data.end(), 0.5f);
  const std::vector<float> want = host_compact(data, paths, bases, planes, width, bad, element);

  device_buffer<float> d(data);
  const std::vector<float*> plane_ptrs{d.ptr, d.ptr + plane_elems};
  device_buffer<float*> dplanes(plane_ptrs);
  device_buffer<std::int32_t> dpaths(paths), dtable(table);
  device_buffer<index_t> dbases(bases), lengths(sequences);
  device_buffer<row_status> status(sequences);
  specdec::cuda::kv_paged_problem<float> p;
  p.paths = {sequences, dbases.ptr, dpaths.ptr, path_stride, status.ptr, lengths.ptr};
  p.plane_data = dplanes.ptr;
  p.planes = planes;
  p.width = width;
  p.block_stride = block_stride;
  p.slot_stride = width;
  p.feature_stride = 1;
  p.block_size = block_size;
  p.num_blocks = num_blocks;
  p.block_table = dtable.ptr;
  p.table_stride = table_stride;
  const specdec::cuda::kv_path_compactor<> k;
  REQUIRE(k.run(p, nullptr, 0, nullptr).ok());
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  CHECK(d.download() == want);
  check_kv_reports(status.download(), lengths.download(), paths, bases, bad);
  // Host-side checks.
  specdec::cuda::kv_paged_problem<float> q = p;
  q.block_size = 0;
  CHECK(k.run(q, nullptr, 0, nullptr).code == errc::invalid_argument);
  q = p;
  q.paths.path_stride = 0;
  CHECK(k.run(q, nullptr, 0, nullptr).code == errc::invalid_argument);
}
