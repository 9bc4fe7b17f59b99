// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Tree verification: the problem of one request (a token tree with one target row per
/// node), its outcome (the accepted root path and exactly one more token), the shared rules
/// (greedy descent, multi-draft rejection sampling with dense or one-hot drafts, typical
/// acceptance) and the tree_verification_policy concept.
///
/// Multi-draft rejection sampling (SpecInfer, Miao et al. 2024): at an accepted node the
/// children are tried in index order against the current residual r_0 = p. Child i, drawn from
/// q_i, is accepted with probability min(1, r_i(x_i) / q_i(x_i)); after a rejection the
/// residual becomes r_{i+1} = norm(max(0, r_i - q_i)). When every child is rejected the
/// emitted token is a sample of the last residual. Each step is a token-wise rejection step
/// whose target is the current residual, so by induction the emitted token follows p exactly
/// whenever each x_i is distributed as q_i given the earlier siblings (i.i.d. siblings share
/// one q; siblings drawn without replacement pass their conditional rows). Skipping the
/// residual update between siblings (TensorRT-LLM's dynamic-tree kernel) is biased.
///
/// The residuals are kept unnormalised: R_0 = p, R_{i+1} = max(0, R_i - M_i q_i) with
/// M_i = sum R_i (so r_i = R_i / M_i), evaluated per vocabulary entry by looping over the
/// rejected siblings: O(i) per entry, one vocabulary pass per rejection, no scratch rows. The
/// rejected siblings' draft distributions and the masses M_i (about 1.2 KB at
/// tree::max_siblings) live in the executor's scratch when it lends one (scratch_executor: the
/// block executor's shared memory, one copy per CTA), else in a local object.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/executor.hpp>
#include <specdec/core/math.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/sampling/distribution.hpp>
#include <specdec/sampling/params.hpp>
#include <specdec/tree/token_tree.hpp>
#include <specdec/verify/chain.hpp>
#include <specdec/verify/policy.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>

SPECDEC_NAMESPACE_BEGIN

namespace verify {

/// @brief One request's token tree and the rows that score it.
///
/// Target row j (0 <= j < N) is the target's distribution for the token after node j's root
/// path: it scores node j's children, and gives the bonus token when j is the last accepted
/// node. The draft row of node j >= 1 is the distribution x_j was drawn from: row
/// `draft_index[j]` when draft_index is given (siblings drawn i.i.d. from their parent's draft
/// row share it), else row j - 1 (one row per non-root node, in node order: a chain-shaped tree
/// then reads exactly the rows of the equivalent chain_request).
/// @tparam TT target element type, a row_element (float, half, bfloat16)
/// @tparam TD draft element type, a row_element (defaults to TT)
template <class TT, class TD = TT>
struct tree_request {
  const TT* target = nullptr;                ///< target row 0; @shape{[N, vocab]}
  index_t target_stride = 0;                 ///< elements between target rows
  const TD* draft = nullptr;                 ///< draft row 0 (null for rules without draft rows)
  index_t draft_stride = 0;                  ///< elements between draft rows
  const std::int32_t* draft_index = nullptr; ///< optional draft row of each node; @shape{[N]}
  const token_id* tokens = nullptr;          ///< token of each node (tokens[0]: the root, unused)
  tree::tree_view tree{};                    ///< the topology (N = tree.num_nodes)
  index_t vocab = 0;                         ///< vocabulary size V, shared by target and draft
  distribution_kind target_kind = distribution_kind::logits; ///< what target rows hold
  distribution_kind draft_kind = distribution_kind::logits;  ///< what draft rows hold
  sampling::sampling_params params{}; ///< applied identically to target and draft rows
  index_t position = 0;               ///< absolute position of the depth-1 nodes (keys draws)

  /// @brief Target row j (scores node j's children).
  /// @param[in] j a node
  /// @return the row at `target + j * target_stride`
  /// @hd
  SPECDEC_HD sampling::dist_row<TT> target_row(index_t j) const noexcept {
    return {target + j * target_stride, vocab, target_kind};
  }
  /// @brief The draft row node j was drawn from.
  /// @param[in] j a node other than the root
  /// @return row `draft_index[j]` (or j - 1)
  /// @pre the request has draft rows
  /// @hd
  SPECDEC_HD sampling::dist_row<TD> draft_row(index_t j) const noexcept {
    const index_t row = draft_index != nullptr ? draft_index[j] : j - 1;
    return {draft + row * draft_stride, vocab, draft_kind};
  }
  /// @brief True when node j's token is a valid id.
  /// @param[in] j a node
  /// @return `0 <= tokens[j] < vocab`
  /// @hd
  SPECDEC_HD bool token_in_range(index_t j) const noexcept {
    return tokens[j] >= 0 && static_cast<index_t>(tokens[j]) < vocab;
  }
};

/// @brief The result of verifying one tree: the deepest accepted node, then one more token.
struct tree_outcome {
  std::int32_t accepted = 0;  ///< accepted drafts: the depth of #last_node
  std::int32_t last_node = 0; ///< the last accepted node (0: none accepted, only the root)
  token_id next = 0;          ///< the correction or bonus token emitted after #last_node
  row_status status{};        ///< what went wrong with this request's input, if anything

  /// @brief Equal when all fields are.
  /// @return true when every field is equal
  /// @hd
  friend constexpr bool operator==(const tree_outcome&, const tree_outcome&) = default;
};

namespace detail {

/// The outcome for a malformed tree: flagged, nothing accepted, the root row's draw (greedy:
/// its argmax) or the safe token when the root row is itself unusable. @hd
template <row_executor E, class TT, class TD, uniform_source U>
SPECDEC_HD tree_outcome
malformed_outcome(const E& ex, const tree_request<TT, TD>& r, const U& u, tree_outcome out) {
  out.status.set(row_status::malformed_tree);
  out.accepted = 0;
  out.last_node = 0;
  out.next = 0;
  if (r.target == nullptr || r.vocab <= 0)
    return out;
  const sampling::dist_row<TT> trow = r.target_row(0);
  const sampling::row_stats ts = sampling::prepare_row(ex, trow, r.params);
  merge_row_status(out.status, ts, false);
  out.next =
      ts.ok() ? draw_from(ex, trow, ts, u(r.position, draw_purpose::sample)) : safe_token(ts);
  return out;
}

/// True when the request's tree can be walked (see tree::validate). @hd
template <class TT, class TD>
SPECDEC_HD bool tree_usable(const tree_request<TT, TD>& r) noexcept {
  return r.tokens != nullptr && tree::validate(r.tree).ok();
}

/// The sibling state of rejection_tree at one node: what the residual R_m reads.
template <class TD>
struct sibling_state {
  draft_dist<TD> q[tree::max_siblings]; ///< the rejected siblings' draft distributions
  float mass[tree::max_siblings + 1];   ///< M_0 = 1, M_1, ... M_m
};

/// Where a rule keeps a T: the executor's scratch when it lends one (scratch_executor, one copy
/// for every thread running the rule), else this object's own member.
template <class E, class T, bool Lent = scratch_executor<E>>
struct rule_scratch {
  T own; ///< the object (default-initialised)
  /// Takes no storage from `ex`. @hd
  SPECDEC_HD explicit rule_scratch(const E&) noexcept {}
  /// The object. @hd
  SPECDEC_HD T& get() noexcept {
    return own;
  }
  /// Stores v at dst (a member of get()). @hd
  template <class V>
  SPECDEC_HD static void publish(const E&, V& dst, const V& v) noexcept {
    dst = v;
  }
};

/// rule_scratch in the executor's scratch.
template <class E, class T>
struct rule_scratch<E, T, true> {
  T* lent; ///< `ex.scratch<T>()`
  /// Views the executor's scratch as a T. @hd
  SPECDEC_HD explicit rule_scratch(const E& ex) noexcept
      : lent(ex.template scratch<T>()) {}
  /// The object. @hd
  SPECDEC_HD T& get() const noexcept {
    return *lent;
  }
  /// Stores v at dst (a member of get()) for every thread: `ex.publish`, a collective. @hd
  template <class V>
  SPECDEC_HD static void publish(const E& ex, V& dst, const V& v) {
    ex.publish(dst, v);
  }
};

/// The residual R_m over the vocabulary after m rejected siblings (see the file comment):
/// R_0 = p, R_{s+1} = max(0, R_s - M_s q_s). One functor, runtime branches.
template <class TT, class TD>
struct sibling_residual {
  sampling::detail::generic_weight<TT> p; ///< the processed target probabilities
  const draft_dist<TD>* q;                ///< the rejected siblings' draft distributions
  const float* mass;                      ///< M_0 = 1, M_1, ... M_{m-1}
  std::int32_t m;                         ///< rejected siblings
  /// R_m(i). @hd
  SPECDEC_HD float operator()(index_t i) const noexcept {
    float v = p(i);
    for (std::int32_t s = 0; s < m; ++s) {
      const float d = v - ::specdec::detail::fmul(mass[s], q[s].prob(i));
      v = d > 0.0f ? d : 0.0f;
    }
    return v;
  }
};

/// Calls f with the functor of R_m; m == 1 uses the chain's row-specialised residual (the same
/// values, so a chain-shaped tree reproduces the chain rule bit for bit). @hd
template <bool Dynamic, class TT, class TD, class F>
SPECDEC_HD auto visit_sibling_residual(const sampling::dist_row<TT>& trow,
                                       const sampling::row_stats& ts,
                                       const draft_dist<TD>* q,
                                       const float* mass,
                                       std::int32_t m,
                                       F&& f) {
  if (m == 1)
    return visit_residual<Dynamic>(trow, ts, q[0], 1.0f, f);
  return f(sibling_residual<TT, TD>{{trow, ts, ts.inv_mass}, q, mass, m});
}

/// Multi-draft rejection sampling over a tree, dense (`Dense`) or one-hot drafts.
/// `Renormalise = false` is the biased variant that keeps the target row for every sibling's
/// coin (tests only: it must fail the goodness-of-fit tests). @hd
template <bool Dense, bool Renormalise, row_executor E, class TT, class TD, uniform_source U>
SPECDEC_HD tree_outcome rejection_tree(const E& ex, const tree_request<TT, TD>& req, const U& u) {
  constexpr bool dynamic = sampling::detail::runtime_dispatch<E>;
  tree_outcome out;
  const tree_request<TT, TD> r = checked(req, out.status);
  if (!tree_usable(r))
    return malformed_outcome(ex, r, u, out);
  using scratch = rule_scratch<E, sibling_state<TD>>;
  scratch held(ex);
  sibling_state<TD>& st = held.get(); // read here, written through scratch::publish only
  scratch::publish(ex, st.mass[0], 1.0f);
  std::int32_t node = 0;
  for (std::int32_t depth = 0;; ++depth) {
    const index_t pos = r.position + depth;
    const sampling::dist_row<TT> trow = r.target_row(node);
    const sampling::row_stats ts = sampling::prepare_row(ex, trow, r.params);
    out.accepted = depth;
    out.last_node = node;
    if (!ts.ok()) {
      merge_row_status(out.status, ts, false);
      out.next = safe_token(ts);
      return out;
    }
    std::int32_t m = 0; // rejected siblings folded into the residual
    std::int32_t accepted_child = -1;
    std::int32_t lane = 0;
    bool stop = false; // draw from the current residual now (bad sibling input)
    for (std::int32_t c = r.tree.first_child_of(node); c >= 0 && !stop;
         c = r.tree.next_sibling_of(c), ++lane) {
      if (lane >= tree::max_siblings) { // later siblings are not tried
        out.status.set(row_status::malformed_tree);
        break;
      }
      if (!r.token_in_range(c)) {
        out.status.set(row_status::token_out_of_range);
        stop = true;
        break;
      }
      draft_dist<TD> qc;
      qc.token = r.tokens[c];
      qc.one_hot = !Dense;
      if constexpr (Dense) {
        qc.row = r.draft_row(c);
        qc.stats = sampling::prepare_row(ex, qc.row, r.params);
        if (!qc.ok()) {
          merge_row_status(out.status, qc.stats, true);
          stop = true;
          break;
        }
      }
      const token_id x = r.tokens[c];
      const std::int32_t level = Renormalise ? m : 0;
      const float qx = qc.prob(x);
      float keep = 0.0f;
      if (!(qx > 0.0f)) {
        out.status.set(row_status::zero_draft_probability); // rejected below
      } else if (level == 0) {
        const float px = sampling::prob_at(trow, ts, x);
        keep = px >= qx ? 1.0f : px / qx;
      } else {
        const float rx = sibling_residual<TT, TD>{{trow, ts, ts.inv_mass}, st.q, st.mass, level}(
            static_cast<index_t>(x));
        const float mq = ::specdec::detail::fmul(st.mass[level], qx);
        keep = rx >= mq ? 1.0f : rx / mq;
      }
      if (u(pos, draw_purpose::accept, static_cast<std::uint32_t>(lane)) < keep) {
        accepted_child = c;
        break;
      }
      // Rejected: fold q_c into the residual (the biased variant keeps only the last sibling).
      if (Renormalise) {
        scratch::publish(ex, st.q[m], qc);
        ++m;
      } else {
        scratch::publish(ex, st.q[0], qc);
        m = 1;
      }
      const float next_mass = visit_sibling_residual<dynamic>(
          trow, ts, st.q, st.mass, m, [&](const auto& res) { return ex.sum(trow.vocab, res); });
      if (!(next_mass > residual_mass_floor)) {
        out.status.set(row_status::residual_fallback);
        out.next = draw_from(ex, trow, ts, u(pos, draw_purpose::sample));
        return out;
      }
      scratch::publish(ex, st.mass[m], next_mass);
    }
    if (accepted_child >= 0) {
      node = accepted_child;
      continue;
    }
    const float us = u(pos, draw_purpose::sample);
    if (m == 0) { // a leaf, or bad sibling input before any rejection: draw from p
      out.next = draw_from(ex, trow, ts, us);
      return out;
    }
    out.next = visit_sibling_residual<dynamic>(
        trow, ts, st.q, st.mass, m, [&](const auto& res) -> token_id {
          const index_t t =
              ex.sample_inverse_cdf(trow.vocab, res, ::specdec::detail::fmul(us, st.mass[m]));
          return t >= 0 ? static_cast<token_id>(t) : safe_token(ts);
        });
    return out;
  }
}

/// Greedy descent: follow the target argmax while a child holds it. @hd
template <row_executor E, class TT, class TD, uniform_source U>
SPECDEC_HD tree_outcome greedy_tree(const E& ex, const tree_request<TT, TD>& req, const U& u) {
  tree_outcome out;
  tree_request<TT, TD> r = req;
  (void)checked(req, out.status); // flags invalid parameters; greedy ignores them
  r.params = sampling::sampling_params{};
  r.params.temperature = 0.0f;
  if (!tree_usable(r))
    return malformed_outcome(ex, r, u, out);
  std::int32_t node = 0;
  for (std::int32_t depth = 0;; ++depth) {
    const sampling::row_stats ts = sampling::prepare_row(ex, r.target_row(node), r.params);
    merge_row_status(out.status, ts, false);
    const token_id best = safe_token(ts);
    out.accepted = depth;
    out.last_node = node;
    out.next = best;
    if (!ts.ok())
      return out;
    std::int32_t match = -1;
    for (std::int32_t c = r.tree.first_child_of(node); c >= 0; c = r.tree.next_sibling_of(c)) {
      if (!r.token_in_range(c))
        out.status.set(row_status::token_out_of_range);
      else if (r.tokens[c] == best) {
        match = c;
        break;
      }
    }
    if (match < 0)
      return out;
    node = match;
  }
}

/// A set of up to tree::max_nodes nodes (host and device scratch).
struct node_set {
  std::uint32_t words[tree::max_nodes / 32] = {}; ///< bit j: node j is in the set
  /// Adds node j. @hd
  SPECDEC_HD void insert(std::int32_t j) noexcept {
    words[j >> 5] |= 1u << (j & 31);
  }
  /// True when node j is in the set. @hd
  SPECDEC_HD bool contains(std::int32_t j) const noexcept {
    return ((words[j >> 5] >> (j & 31)) & 1u) != 0;
  }
};

/// Typical acceptance on a tree: a child is accepted when its parent is and the parent's row
/// gives it more than `threshold(entropy)`; the deepest accepted node wins (lowest index among
/// equals), and the extra token is drawn from its row (Medusa's longest accepted candidate). @hd
template <row_executor E, class TT, class TD, uniform_source U, class Threshold>
SPECDEC_HD tree_outcome
typical_tree(const E& ex, const tree_request<TT, TD>& req, const U& u, const Threshold& threshold) {
  tree_outcome out;
  const tree_request<TT, TD> r = checked(req, out.status);
  if (!tree_usable(r))
    return malformed_outcome(ex, r, u, out);
  node_set accepted;
  accepted.insert(0);
  std::int32_t best = 0;
  std::int32_t best_depth = 0;
  for (std::int32_t j = 0; j < r.tree.num_nodes; ++j) {
    if (!accepted.contains(j))
      continue;
    const std::int32_t d = r.tree.depth(j);
    if (d > best_depth) {
      best = j;
      best_depth = d;
    }
    if (r.tree.first_child_of(j) < 0)
      continue;
    const sampling::dist_row<TT> trow = r.target_row(j);
    const sampling::row_stats ts = sampling::prepare_row(ex, trow, r.params);
    if (!ts.ok()) {
      merge_row_status(out.status, ts, false);
      continue;
    }
    const float t = threshold(sampling::entropy(ex, trow, ts));
    for (std::int32_t c = r.tree.first_child_of(j); c >= 0; c = r.tree.next_sibling_of(c)) {
      if (!r.token_in_range(c))
        out.status.set(row_status::token_out_of_range);
      else if (sampling::prob_at(trow, ts, r.tokens[c]) > t)
        accepted.insert(c);
    }
  }
  out.accepted = best_depth;
  out.last_node = best;
  const sampling::dist_row<TT> trow = r.target_row(best);
  const sampling::row_stats ts = sampling::prepare_row(ex, trow, r.params);
  if (!ts.ok()) {
    merge_row_status(out.status, ts, false);
    out.next = safe_token(ts);
    return out;
  }
  out.next = draw_from(ex, trow, ts, u(r.position + best_depth, draw_purpose::sample));
  return out;
}

} // namespace detail

/// @brief Bytes of executor scratch the tree rules of this header use with draft element type TD
/// when the executor lends scratch (scratch_executor): multi-draft rejection sampling's sibling
/// state (the rejected siblings' draft distributions and residual masses, about 1.2 KB). A
/// device kernel gives its block executor this much shared memory.
/// @tparam TD draft element type
template <class TD>
inline constexpr std::size_t tree_scratch_bytes = sizeof(detail::sibling_state<TD>);

/// @brief A tree verification policy: a type with
/// `tree_outcome verify_tree(const E&, const tree_request<TT, TD>&, const U&) const` for any
/// row_executor E and uniform_source U, and `static constexpr bool needs_draft_rows`.
///
/// Semantics: the outcome depends only on the request's rows, tokens, tree, parameters and the
/// uniforms drawn; the accepted nodes form the root path of `last_node`; exactly one extra
/// token is emitted. On a chain-shaped tree (`parents[j] = j - 1`) a policy that also verifies
/// chains returns the chain outcome (accepted count and token) with the same uniforms.
/// @tparam P the candidate policy type
template <class P>
concept tree_verification_policy = requires(const P& p,
                                            const detail::executor_archetype& ex,
                                            const tree_request<float, float>& r,
                                            const philox_uniforms& u) {
  { p.verify_tree(ex, r, u) } -> std::same_as<tree_outcome>;
  { P::needs_draft_rows } -> std::convertible_to<bool>;
};

} // namespace verify

namespace diag {

/// @brief Checks `verify::tree_verification_policy` clause by clause.
/// @tparam P the type to check against verify::tree_verification_policy
/// @return true when satisfied (else a static_assert fires).
template <class P>
consteval bool check_tree_verification_policy() {
  static_assert(
      requires(const P& p,
               const verify::detail::executor_archetype& ex,
               const verify::tree_request<float, float>& r,
               const philox_uniforms& u) {
        { p.verify_tree(ex, r, u) } -> std::same_as<verify::tree_outcome>;
      },
      "tree_verification_policy: P needs 'template <row_executor E, class TT, class TD, "
      "uniform_source U> tree_outcome verify_tree(const E&, const tree_request<TT, TD>&, "
      "const U&) const' (greedy, rejection_sampling, one_hot_rejection and typical_acceptance "
      "have one; block_verification does not)");
  static_assert(
      requires {
        { P::needs_draft_rows } -> std::convertible_to<bool>;
      },
      "tree_verification_policy: P needs 'static constexpr bool needs_draft_rows'");
  return true;
}

} // namespace diag

SPECDEC_NAMESPACE_END
