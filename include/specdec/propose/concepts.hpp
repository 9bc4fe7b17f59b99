// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Every proposer concept in one place: chain and tree proposers (one-hot or dense), the
///        optional per-draft reports (bucket, confidences), the proposer lifecycle
///        (`stateful_proposer`: begin / propose / observe / end) and the proposers fed by target
///        features (`feature_proposer`); the request, draft and outcome types they exchange with a
///        decoding loop; and one `diag::check_<concept>()` per concept for SPECDEC_CHECK.
///
/// This header is what `sched/` and `decode/` see of the proposers (layer order in the README):
/// it includes only `core/` and `tree/`. The target-model concepts are in core/concepts.hpp.
///
/// Lifecycle of a request, as the decoders drive it (propose/observe repeat once per round):
///
///     begin(id, prompt)            (stateful proposers only)
///     propose(request, draft)      context = prompt + every token committed so far
///     observe(outcome)             (stateful proposers only) what verification kept
///     end(id)                      (stateful proposers only) also after an error
///
/// A stateless proposer (only `propose`) keeps working unchanged: the loops call the lifecycle
/// members exactly when the proposer has them.

#include <specdec/config.hpp>

#include <specdec/core/diagnostics.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/tree/token_tree.hpp>

#include <concepts>
#include <cstdint>
#include <span>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

// --- chain proposers
// ------------------------------------------------------------------------------

/// What a proposer is asked for: draft up to `max_tokens` tokens after `context`.
struct draft_request {
  std::uint64_t request_id = 0;     ///< the engine's id of the sequence
  row_view<const token_id> context; ///< committed tokens (prompt + generated), oldest first
  std::int32_t max_tokens = 0;      ///< draft budget for this step, >= 0
};

/// Where a proposer writes its draft: caller-owned buffers.
struct draft_block {
  row_view<token_id> tokens; ///< capacity for the draft tokens
  matrix_view<float> probs;  ///< optional dense draft rows (rows == 0: the drafter has none)
  std::int32_t length = 0;   ///< set by the proposer: tokens written, <= tokens.size
  /// What `probs` rows hold (a dense proposer sets it; logits unless it says otherwise).
  distribution_kind probs_kind = distribution_kind::logits;
};

/// @brief A draft proposer: fills a draft_block for a request.
///
/// Required: `status propose(const draft_request&, draft_block&)` and
/// `int max_draft_len() const`. Semantics: `propose` writes at most
/// min(request.max_tokens, block.tokens.size) tokens and sets `length`; when `probs.rows > 0`
/// and the proposer samples, row j holds the distribution token j was drawn from (before the
/// sampling parameters, which verification applies identically to both sides).
/// `max_draft_len()` only reports what the proposer can offer per round; how many drafts are
/// asked for and verified is decided by the loop's draft-length policy (sched/).
/// @tparam P the candidate proposer type
template <class P>
concept draft_proposer = requires(P& p, const P& cp, const draft_request& r, draft_block& b) {
  { p.propose(r, b) } -> std::same_as<status>;
  { cp.max_draft_len() } -> std::convertible_to<int>;
};

/// @brief A proposer that also writes one dense draft row per drafted token into
///        `draft_block::probs` (needed by rejection sampling with full q).
///
/// Declared by `static constexpr bool writes_draft_rows = true;` in the proposer. The caller then
/// passes `probs` with at least `max_tokens` rows of the target's vocabulary size; the proposer
/// sets `draft_block::probs_kind`. A proposer without it drafts deterministic (one-hot) tokens.
/// @tparam P the candidate proposer type
template <class P>
concept dense_draft_proposer = draft_proposer<P> && requires {
  requires static_cast<bool>(P::writes_draft_rows);
};

/// @brief A proposer that reports a small non-negative integer feature of its last draft (for the
///        n-gram drafter: the length of the matched suffix), used to bucket acceptance statistics.
///
/// Such proposers are cheap to run: the loop asks them for the full budget and the draft-length
/// policy then chooses how many drafts to verify, knowing the bucket.
/// @tparam P the candidate proposer type
template <class P>
concept bucketed_proposer = draft_proposer<P> && requires(const P& cp) {
  { cp.draft_bucket() } -> std::convertible_to<int>;
};

/// @brief A proposer that scores its last draft: `confidences()` holds, for each drafted
///        position k, an estimate of P(draft k accepted | drafts 1..k-1 accepted) that depends only
///        on the drafts before k (propose/semi_ar.hpp's calibrated confidence head).
///
/// Such a proposer only reports: it drafts what it is asked for and never cuts its own draft by
/// its confidences. The cut is the decoder's draft-length policy (a confidence_length_policy,
/// sched/confidence_length.hpp: the threshold theta, Algorithm 1).
/// @tparam P the candidate proposer type
template <class P>
concept confident_proposer = draft_proposer<P> && requires(const P& cp) {
  { cp.confidences() } -> std::convertible_to<std::span<const double>>;
};

// --- tree proposers
// -------------------------------------------------------------------------------

/// @brief What a tree proposer is asked for: a token tree rooted at the last token of `context`.
struct tree_draft_request {
  std::uint64_t request_id = 0;     ///< the engine's id of the sequence
  row_view<const token_id> context; ///< committed tokens (prompt + generated), oldest first
  std::int32_t max_nodes = 0;       ///< most draft nodes, the root excluded (>= 0)
  std::int32_t max_depth = 0;       ///< deepest draft node (root: depth 0), >= 0
};

/// @brief Where a tree proposer writes its draft.
///
/// The proposer rebuilds `tree` (root = `context.back()`, then the draft nodes). A dense
/// proposer also writes draft rows into the caller-owned `probs`: node j >= 1 was drawn from row
/// `draft_index[j]`, or from row j - 1 when `draft_index` is empty (one row per node in node
/// order, which is what a chain-shaped tree needs). Siblings drawn i.i.d. from one row share it.
struct tree_draft {
  tree::token_tree tree;                 ///< the drafted tree (the proposer resets it)
  matrix_view<float> probs;              ///< caller-owned dense rows (rows == 0: none)
  std::vector<std::int32_t> draft_index; ///< empty, or the draft row of every node ([N])
  /// What `probs` rows hold (a dense proposer sets it; logits unless it says otherwise).
  distribution_kind probs_kind = distribution_kind::logits;
};

/// @brief A token-tree proposer: drafts a tree after a context.
///
/// Checked: `status propose_tree(const tree_draft_request&, tree_draft&)` and
/// `int max_draft_nodes() const` (the most draft nodes, root excluded, it can offer per step).
///
/// Semantics: on success `draft.tree` is a valid tree whose root holds `request.context.back()`,
/// with at most `request.max_nodes` draft nodes, none deeper than `request.max_depth`, and at
/// most tree::max_siblings children per node (stochastic verification rules try no more). The
/// tree may be only the root (no draft). A proposer without draft rows drafts deterministic
/// tokens (verify with greedy or one_hot_rejection; distinct siblings keep one-hot rejection
/// lossless).
/// @tparam P the candidate proposer type
template <class P>
concept tree_draft_proposer =
    requires(P& p, const P& cp, const tree_draft_request& r, tree_draft& d) {
  { p.propose_tree(r, d) } -> std::same_as<status>;
  { cp.max_draft_nodes() } -> std::convertible_to<int>;
};

/// @brief A tree proposer that also writes the dense draft row of every draft node (needed by
/// multi-draft rejection sampling with full q).
///
/// Declared by `static constexpr bool writes_draft_rows = true;`. The caller then passes `probs`
/// with at least `max_nodes` rows of the target's vocabulary size; the proposer sets
/// `probs_kind` and, unless it writes one row per node in node order, `draft_index`.
/// @tparam P the candidate proposer type
template <class P>
concept dense_tree_draft_proposer = tree_draft_proposer<P> && requires {
  requires static_cast<bool>(P::writes_draft_rows);
};

// --- lifecycle
// ------------------------------------------------------------------------------------

/// @brief What verification did with one round's draft, as reported to a stateful proposer.
///
/// The round drafted after a context of n tokens c_0..c_{n-1} (the anchor c_{n-1} at position
/// n - 1); verification kept `accepted` drafts and emitted one more token. After the round the
/// committed context is c_0..c_{n-1} followed by `tokens` (accepted drafts, then `next`).
struct round_outcome {
  std::uint64_t request_id = 0; ///< the sequence
  index_t position = 0;         ///< n: absolute position of the first draft (anchor at n - 1)
  std::int32_t drafted = 0;     ///< drafts verified (tree: draft nodes, root excluded)
  std::int32_t accepted = 0;    ///< drafts accepted (chain: a prefix; tree: a root path)
  token_id next = 0;            ///< the emitted token (correction or bonus), == tokens[accepted]
  /// The committed tokens of the round: the accepted drafts then `next` (accepted + 1 tokens).
  row_view<const token_id> tokens;
  /// Target features of the rows whose keys and values the round kept, oldest first: row 0 is
  /// the anchor (position n - 1), row j the j-th accepted draft (accepted + 1 rows); columns
  /// hold the requested layers one after the other (feature_proposer::feature_layers() order,
  /// hidden_size() floats each). rows == 0 when the proposer requested none.
  matrix_view<const float> features;
};

/// @brief The lifecycle members of a stateful proposer (see stateful_proposer).
/// @tparam P the candidate proposer type
template <class P>
concept proposer_lifecycle =
    requires(P& p, std::uint64_t id, row_view<const token_id> prompt, const round_outcome& o) {
  { p.begin(id, prompt) } -> std::same_as<status>;
  { p.observe(o) } -> std::same_as<status>;
  p.end(id);
};

/// @brief A chain or tree proposer that keeps per-request state (a KV cache, an index, target
///        features) and is told what happened to it: llama.cpp's `process` / `accept`, vLLM's
///        proposer fed by the target's hidden states.
///
/// Checked, besides draft_proposer or tree_draft_proposer: `status begin(std::uint64_t id,
/// row_view<const token_id> prompt)`, `status observe(const round_outcome&)` and
/// `end(std::uint64_t id)` (any return type).
///
/// Contract:
/// - `begin(id, context)` starts request `id` at `context` (at least one token; the last one is
///   the first round's anchor). It may be called again for a request that already began: the
///   request was preempted and resumes at `context`, which the proposer must treat as the truth
///   (resynchronise or rebuild; its state from before may be stale). The context of a resumed
///   request need not extend what the proposer saw.
/// - `propose` is called with the context `begin` gave plus every token committed since. A
///   proposer must still return a valid draft (never UB) when the context is not what it
///   expects; it may then draft nothing.
/// - `observe(o)` follows every verified round of the request, drafts or not, before the next
///   `propose`; `o.tokens` are then committed. Its failure stops the loop with that status.
/// - `end(id)` releases the request's state; the loops call it once per `begin`, after an error
///   too. A proposer serves one request at a time unless it says otherwise.
/// @tparam P the candidate proposer type
template <class P>
concept stateful_proposer = (draft_proposer<P> || tree_draft_proposer<P>)&&proposer_lifecycle<P>;

/// @brief A stateful proposer fed by the target's hidden states (EAGLE-3 fuses a low, a middle
///        and a high layer; MTP and DFlash / DSpark read the last one or a few).
///
/// Checked, besides stateful_proposer: `row_view<const std::int32_t> feature_layers() const`,
/// the layers it wants (indices in [0, num_layers()] of a feature_target_model: 0 is the token
/// embedding, l the residual stream after l layers). A loop with a feature_target_model asks
/// for those layers with every verification and passes the rows it keeps to `observe`
/// (round_outcome::features); the proposer may not change the list during a request.
/// @tparam P the candidate proposer type
template <class P>
concept feature_proposer = stateful_proposer<P> && requires(const P& cp) {
  { cp.feature_layers() } -> std::convertible_to<row_view<const std::int32_t>>;
};

/// @brief A feature_proposer that also takes the target features of the prompt, which the loop
///        computes while it prefills (EAGLE-style drafters attend over every earlier position).
///
/// Checked, besides feature_proposer: `status observe_prompt(std::uint64_t id, index_t start,
/// matrix_view<const float> features)`. After `begin(id, prompt)` the loop prefills the prompt
/// c_0..c_{n-2} in chunks with the proposer's feature_layers() and hands each chunk over: row j
/// holds the features of position start + j. Its failure stops the loop with that status.
/// @tparam P the candidate proposer type
template <class P>
concept prompt_feature_proposer = feature_proposer<P> && requires(P& p,
                                                                  std::uint64_t id,
                                                                  index_t start,
                                                                  matrix_view<const float> f) {
  { p.observe_prompt(id, start, f) } -> std::same_as<status>;
};

// --- feature drafter networks
// ---------------------------------------------------------------------

/// @brief One row a feature drafter network appends to its cache (feature_draft_network).
///
/// The row pairs a hidden state with the token that follows it and sits at RoPE position
/// `position`. A target row carries the target's features of the requested layers
/// (feature_size() floats); a draft row carries the hidden output of its parent
/// (hidden_size() floats).
struct feature_draft_step {
  index_t position = 0;          ///< RoPE position of the entry
  token_id token = 0;            ///< the token paired with the hidden state
  const float* hidden = nullptr; ///< target features or the parent's hidden output
  index_t parent = -1;           ///< the entry before it on its path (-1: none)
  bool target_hidden = true;     ///< true: target features; false: an own hidden output
};

/// @brief A drafter network fed by target features (EAGLE-3, MTP): a small model with its own
///        cache of entries, each an (hidden state, next token) pair at a position, on a path of
///        parent links (a committed chain, then a token tree of drafts).
///
/// Checked: `row_view<const std::int32_t> feature_layers() const`, `index_t hidden_size() const`
/// (width of an own hidden output), `index_t feature_size() const` (width of a target row),
/// `index_t vocab_size() const`, `index_t size() const` (entries), `index_t capacity() const`,
/// `status truncate(index_t n)` (drop entries >= n) and `status append(row_view<const
/// feature_draft_step> rows, matrix_view<float> logits, matrix_view<float> hidden)`.
///
/// Semantics of append: the rows become entries size() .. size() + rows - 1; an entry attends to
/// the entries on its own path (its parent's path, then itself); row i of `logits` receives the
/// draft's logits for the token after the row's token, row i of `hidden` its hidden output (the
/// input of a child draft row). One call holds rows of one kind (all target or all own).
/// @tparam N the candidate network type
template <class N>
concept feature_draft_network = requires(
    N& n, const N& cn, index_t k, row_view<const feature_draft_step> rows, matrix_view<float> out) {
  { cn.feature_layers() } -> std::convertible_to<row_view<const std::int32_t>>;
  { cn.hidden_size() } -> std::convertible_to<index_t>;
  { cn.feature_size() } -> std::convertible_to<index_t>;
  { cn.vocab_size() } -> std::convertible_to<index_t>;
  { cn.size() } -> std::convertible_to<index_t>;
  { cn.capacity() } -> std::convertible_to<index_t>;
  { n.truncate(k) } -> std::same_as<status>;
  { n.append(rows, out, out) } -> std::same_as<status>;
};

// --- diagnostics
// ----------------------------------------------------------------------------------

namespace diag {

/// @brief Checks `draft_proposer` clause by clause.
/// @tparam P the type to check against draft_proposer
/// @return true when satisfied (else a static_assert fires).
template <class P>
consteval bool check_draft_proposer() {
  static_assert(
      requires(P & p, const draft_request& r, draft_block& b) {
        { p.propose(r, b) } -> std::same_as<status>;
      },
      "draft_proposer: P needs 'status propose(const draft_request&, draft_block&)'");
  static_assert(
      requires(const P& p) {
        { p.max_draft_len() } -> std::convertible_to<int>;
      },
      "draft_proposer: P needs 'int max_draft_len() const'");
  return true;
}

/// @brief Checks `tree_draft_proposer` clause by clause.
/// @tparam P the type to check against tree_draft_proposer
/// @return true when satisfied (else a static_assert fires).
template <class P>
consteval bool check_tree_draft_proposer() {
  static_assert(
      requires(P & p, const tree_draft_request& r, tree_draft& d) {
        { p.propose_tree(r, d) } -> std::same_as<status>;
      },
      "tree_draft_proposer: P needs 'status propose_tree(const tree_draft_request&, "
      "tree_draft&)'");
  static_assert(
      requires(const P& p) {
        { p.max_draft_nodes() } -> std::convertible_to<int>;
      },
      "tree_draft_proposer: P needs 'int max_draft_nodes() const'");
  return true;
}

/// @brief Checks `stateful_proposer` clause by clause (propose first, then the lifecycle).
/// @tparam P the type to check against stateful_proposer
/// @return true when satisfied (else a static_assert fires).
template <class P>
consteval bool check_stateful_proposer() {
  static_assert(draft_proposer<P> || tree_draft_proposer<P>,
                "stateful_proposer: P needs 'status propose(const draft_request&, draft_block&)' "
                "and 'int max_draft_len() const' (a draft_proposer), or 'status propose_tree(const "
                "tree_draft_request&, tree_draft&)' and 'int max_draft_nodes() const'");
  static_assert(
      requires(P & p, std::uint64_t id, row_view<const token_id> prompt) {
        { p.begin(id, prompt) } -> std::same_as<status>;
      },
      "stateful_proposer: P needs 'status begin(std::uint64_t request_id, row_view<const "
      "token_id> prompt)'");
  static_assert(
      requires(P & p, const round_outcome& o) {
        { p.observe(o) } -> std::same_as<status>;
      },
      "stateful_proposer: P needs 'status observe(const round_outcome&)'");
  static_assert(
      requires(P & p, std::uint64_t id) { p.end(id); },
      "stateful_proposer: P needs 'void end(std::uint64_t request_id)'");
  return true;
}

/// @brief Checks `feature_proposer` clause by clause (the stateful_proposer clauses first).
/// @tparam P the type to check against feature_proposer
/// @return true when satisfied (else a static_assert fires).
template <class P>
consteval bool check_feature_proposer() {
  static_assert(check_stateful_proposer<P>(), "feature_proposer: P must be a stateful_proposer");
  static_assert(
      requires(const P& p) {
        { p.feature_layers() } -> std::convertible_to<row_view<const std::int32_t>>;
      },
      "feature_proposer: P needs 'row_view<const std::int32_t> feature_layers() const'");
  return true;
}

/// @brief Checks `feature_draft_network` clause by clause.
/// @tparam N the type to check against feature_draft_network
/// @return true when satisfied (else a static_assert fires).
template <class N>
consteval bool check_feature_draft_network() {
  static_assert(
      requires(const N& n) {
        { n.feature_layers() } -> std::convertible_to<row_view<const std::int32_t>>;
      },
      "feature_draft_network: N needs 'row_view<const std::int32_t> feature_layers() const'");
  static_assert(
      requires(const N& n) {
        { n.hidden_size() } -> std::convertible_to<index_t>;
        { n.feature_size() } -> std::convertible_to<index_t>;
        { n.vocab_size() } -> std::convertible_to<index_t>;
      },
      "feature_draft_network: N needs 'index_t hidden_size() const', 'index_t feature_size() "
      "const' and 'index_t vocab_size() const'");
  static_assert(
      requires(const N& n) {
        { n.size() } -> std::convertible_to<index_t>;
        { n.capacity() } -> std::convertible_to<index_t>;
      },
      "feature_draft_network: N needs 'index_t size() const' and 'index_t capacity() const' (its "
      "cache entries)");
  static_assert(
      requires(N & n, index_t k) {
        { n.truncate(k) } -> std::same_as<status>;
      },
      "feature_draft_network: N needs 'status truncate(index_t entries)'");
  static_assert(
      requires(N & n, row_view<const feature_draft_step> rows, matrix_view<float> out) {
        { n.append(rows, out, out) } -> std::same_as<status>;
      },
      "feature_draft_network: N needs 'status append(row_view<const feature_draft_step>, "
      "matrix_view<float> logits, matrix_view<float> hidden)'");
  return true;
}

} // namespace diag

SPECDEC_NAMESPACE_END
