// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief The n-gram (prompt-lookup) drafter: finds the longest suffix of the context that
///        occurred before and proposes the tokens that followed it, from an incrementally
///        maintained suffix automaton.
///
/// No model runs: a step costs one or a few automaton updates, a bounded check that the context
/// still extends what was indexed, and a copy of the draft, whatever the context length. It
/// shines on copy-heavy generation (code edits, summaries quoting their source,
/// retrieval-augmented answers).

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/propose/concepts.hpp>
#include <specdec/propose/suffix_automaton.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>

SPECDEC_NAMESPACE_BEGIN

namespace propose {

/// @brief Settings of the n-gram drafter.
struct ngram_config {
  /// Shortest repeated suffix that produces a draft, >= 1 (shorter matches draft nothing).
  std::int32_t min_match = 1;
  /// Cap on the match length reported by ngram_proposer::last_match_length(); 0 = unbounded,
  /// else >= min_match. It does not shorten the match the draft is copied from.
  std::int32_t max_match = 0;
  /// Most tokens drafted per step, >= 0.
  std::int32_t max_draft = 8;
  /// W: the newest indexed tokens compared with the context on every propose(), >= 0 (see
  /// ngram_proposer, "Context changes"). check_all compares them all (exact detection, O(context)
  /// per call); 0 with check_sweep 0 trusts the caller (contexts only grow).
  std::int32_t check_window = 64;
  /// C: older indexed tokens compared per propose() by a cursor that sweeps them cyclically, on
  /// top of one per new context token, >= 0; 0 turns the sweep off.
  std::int32_t check_sweep = 256;

  /// A check_window that covers any context: every indexed token is verified on every call.
  static constexpr std::int32_t check_all = std::numeric_limits<std::int32_t>::max();

  /// @brief Checks the settings.
  /// @return errc::invalid_value when min_match < 1, max_draft < 0, max_match is neither 0 nor
  ///         >= min_match, check_window < 0 or check_sweep < 0; ok otherwise
  /// @par Complexity
  /// O(1).
  [[nodiscard]] constexpr status validate() const noexcept {
    if (min_match < 1 || max_draft < 0 || (max_match != 0 && max_match < min_match)
        || check_window < 0 || check_sweep < 0)
      return status{errc::invalid_value};
    return status{};
  }
};

/// @brief Prompt-lookup drafter over a suffix_automaton of the request's context.
///
/// Each propose() call syncs the automaton with `r.context`. When the context extends the indexed
/// text (same `r.request_id` as the previous call, at least as long, and passing the checks
/// below), only its new tokens are appended: the per-step cost is then independent of the context
/// length. Otherwise the automaton is rebuilt from the whole context, so drafts never come from a
/// context that the checks show to be gone. One proposer serves one sequence at a time
/// efficiently (switching requests rebuilds).
///
/// @par Context changes (same request id)
/// An engine may hand the same id a context that is not an extension of the last one: a
/// preempted request cut back and regrown, an id reused, an edited prompt. With n indexed tokens,
/// k new ones, W = min(config.check_window, n) and C = config.check_sweep, each call compares
/// the context with the indexed text at: the last W indexed positions [n - W, n), and a chunk of
/// C + k positions of [0, n - W) taken by a cursor that sweeps it cyclically (it restarts at 0
/// after a rebuild and after reaching n - W). Any difference rebuilds. Hence:
/// - detected for sure, at the next call: another request id, a shorter context, and any change
///   to the last W indexed tokens. So a context of at most W tokens (any context when
///   check_window is check_all) is verified completely, and a context cut back by at most W
///   tokens and regrown differently is caught whatever it regrew with;
/// - detected within a bounded number of calls: any other change to an indexed token, as long as
///   it persists, by the (ceil((n - W) / C) + 1)-th call that sees it at the latest (n and W
///   taken at the first such call; the sweep gains C tokens per call on the context's growth, so
///   its cursor comes round however fast the context grows; the bound is attained). Until then
///   the drafts come from the stale index;
/// - detected by chance: such a change is caught at a given call when it falls in that call's
///   chunk, i.e. with probability about (C + k) / (n - W) for a single changed token at a position
///   unrelated to the cursor. A context cut back by more than W tokens and regrown is caught at
///   once unless the regrown tokens at positions [n - W, n) all equal the indexed ones.
///
/// The checks read O(W + C + k) tokens per call and never allocate. A stale draft is still only a
/// draft (verification keeps the output exact): it costs acceptance, not correctness. An engine
/// that knows when it rewrites a context gets exact behaviour at no cost by telling the
/// proposer: call reset(), or give the rewritten sequence a new request id (e.g. mix a
/// generation counter into it). Otherwise check_window = ngram_config::check_all verifies every
/// indexed token on every call (a comparison of O(context) tokens, far cheaper than a rebuild).
///
/// The draft: with the longest repeated suffix of the context of length L >= min_match, whose
/// first occurrence ends at index e, the tokens context[e + 1 ...] (up to the end of the context)
/// are copied, at most min(r.max_tokens, max_draft, b.tokens.size) of them.
///
/// One-hot drafts: the proposer never writes `draft_block::probs` (it leaves it untouched), so
/// verify with one_hot_rejection or greedy.
class ngram_proposer {
public:
  /// A token that follows the last match (see candidates()).
  using candidate = suffix_automaton::candidate;

  /// @brief A drafter with the given settings (checked by every propose()).
  /// @param[in] config the settings
  explicit ngram_proposer(ngram_config config = {}) noexcept
      : config_(config) {}

  /// @brief The settings.
  /// @return the configuration given at construction
  /// @par Complexity
  /// O(1).
  [[nodiscard]] const ngram_config& config() const noexcept {
    return config_;
  }

  /// @brief The most tokens one step drafts.
  /// @return config().max_draft
  /// @par Complexity
  /// O(1).
  [[nodiscard]] int max_draft_len() const noexcept {
    return config_.max_draft;
  }

  /// @brief Syncs with `r.context` and drafts the continuation of its longest repeated suffix.
  /// @param[in] r the request; its context tokens must be >= 0
  /// @param[in,out] b the block: `tokens` receives the draft and `length` its size; `probs` and
  ///                `probs_kind` are left untouched (one-hot drafts)
  /// @return errc::invalid_value for invalid settings, r.max_tokens < 0 or a negative context
  ///         token (then b.length = 0, no token is written and the automaton is unchanged; a
  ///         context found not to extend the indexed text is rebuilt at the next call);
  ///         errc::overflow for a context longer than suffix_automaton::max_size; ok otherwise
  ///         (b.length = 0 when no suffix of length >= min_match repeats)
  /// @par Complexity
  /// O(k + d + W + C) amortised expected, for k new context tokens, d drafted tokens and the
  /// check sizes W = min(check_window, context size) and C = check_sweep (see the class comment);
  /// a rebuild is O(context size).
  [[nodiscard]] status propose(const draft_request& r, draft_block& b) {
    b.length = 0;
    match_ = suffix_automaton::match{};
    if (const status s = config_.validate(); !s.ok())
      return s;
    if (r.max_tokens < 0 || r.context.size < 0)
      return status{errc::invalid_value};
    if (r.context.size > suffix_automaton::max_size)
      return status{errc::overflow};

    const bool same_request = synced_ && r.request_id == request_id_;
    const bool incremental = same_request && extends_index(r.context);
    const index_t from = incremental ? sa_.size() : 0;
    for (index_t i = from; i < r.context.size; ++i)
      if (r.context[i] < 0) {
        if (same_request && !incremental)
          synced_ = false; // the change found now is not forgotten: the next call rebuilds
        return status{errc::invalid_value};
      }
    if (!incremental) {
      sa_.clear();
      sa_.reserve(r.context.size);
      sweep_ = 0;
      ++rebuilds_;
    }
    for (index_t i = from; i < r.context.size; ++i)
      sa_.push_back(r.context[i]);
    synced_ = true;
    request_id_ = r.request_id;

    const suffix_automaton::match m = sa_.longest_repeated_suffix();
    if (m.length == 0 || m.length < config_.min_match)
      return status{};
    match_ = m;
    const index_t cap = std::min({static_cast<index_t>(r.max_tokens),
                                  static_cast<index_t>(config_.max_draft),
                                  std::max<index_t>(b.tokens.size, 0),
                                  sa_.size() - (m.end + 1)});
    for (index_t j = 0; j < cap; ++j)
      b.tokens[j] = sa_.at(m.end + 1 + j);
    b.length = static_cast<std::int32_t>(std::max<index_t>(cap, 0));
    return status{};
  }

  /// @brief Length of the match the last propose() drafted from, clamped to max_match when that
  ///        is set: a confidence feature for the decoding loop.
  /// @return 0 when the last call found no match of length >= min_match (or failed, or none was
  ///         made since construction or reset())
  /// @par Complexity
  /// O(1).
  [[nodiscard]] std::int32_t last_match_length() const noexcept {
    const index_t len =
        config_.max_match > 0 ? std::min<index_t>(match_.length, config_.max_match) : match_.length;
    return static_cast<std::int32_t>(len);
  }

  /// @brief The decoding loop's acceptance bucket for the last draft: last_match_length()
  ///        (so set max_match to bound the number of buckets). Makes the drafter a
  ///        bucketed_proposer: it drafts the full budget and the loop's draft-length policy picks
  ///        how many of the drafts to verify, knowing how long the match was.
  /// @return last_match_length()
  /// @par Complexity
  /// O(1).
  [[nodiscard]] int draft_bucket() const noexcept {
    return last_match_length();
  }

  /// @brief The last match itself (unclamped): its length, first end and automaton state.
  /// @return `{0, -1, 0}` when the last propose() drafted from no match
  /// @par Complexity
  /// O(1).
  [[nodiscard]] const suffix_automaton::match& last_match() const noexcept {
    return match_;
  }

  /// @brief The alternative next tokens after the last match (for a token tree): every distinct
  ///        token that followed an earlier occurrence of the matched suffix, with the end index
  ///        of its first occurrence (see suffix_automaton::continuations for the order).
  /// @param[out] out where the candidates go; at most out.size() are written
  /// @return how many were written; 0 when the last propose() drafted from no match
  /// @par Complexity
  /// O(min(number of alternatives, out.size())).
  [[nodiscard]] std::int32_t candidates(std::span<candidate> out) const noexcept {
    if (match_.length == 0)
      return 0;
    return sa_.continuations(match_, out);
  }

  /// @brief The automaton of the absorbed context.
  /// @return a reference valid as long as the proposer
  /// @par Complexity
  /// O(1).
  [[nodiscard]] const suffix_automaton& automaton() const noexcept {
    return sa_;
  }

  /// @brief How many propose() calls indexed their context from its first token (the first
  ///        call, a request switch, a shorter context, a detected change) since construction:
  ///        each cost O(context size). reset() keeps the count.
  /// @return the rebuild count
  /// @par Complexity
  /// O(1).
  [[nodiscard]] std::int64_t rebuild_count() const noexcept {
    return rebuilds_;
  }

  /// @brief Forgets the absorbed context and the last match (keeps allocated memory); the next
  ///        propose() rebuilds. The exact way for an engine to announce that it rewrote a
  ///        request's context.
  /// @par Complexity
  /// O(capacity of the automaton's hash table).
  void reset() {
    sa_.clear();
    synced_ = false;
    request_id_ = 0;
    sweep_ = 0;
    match_ = suffix_automaton::match{};
  }

private:
  // Whether `ctx` passes the checks of the class comment against the n indexed tokens: at least
  // n tokens, the last W equal, and the sweep's chunk of C + k older ones equal. Advances the
  // sweep cursor. O(W + C + k).
  [[nodiscard]] bool extends_index(row_view<const token_id> ctx) noexcept {
    const index_t n = sa_.size();
    if (ctx.size < n)
      return false;
    const index_t older = n - std::min<index_t>(config_.check_window, n); // [0, older) unchecked
    if (!same_as_indexed(ctx, older, n))
      return false;
    if (config_.check_sweep == 0 || older == 0) {
      sweep_ = 0;
      return true;
    }
    if (sweep_ >= older)
      sweep_ = 0;
    const index_t end = std::min(older, sweep_ + config_.check_sweep + (ctx.size - n));
    const bool same = same_as_indexed(ctx, sweep_, end);
    sweep_ = end == older ? 0 : end;
    return same;
  }

  // Whether ctx[lo, hi) equals the indexed text there; hi <= min(ctx.size, sa_.size()).
  [[nodiscard]] bool
  same_as_indexed(row_view<const token_id> ctx, index_t lo, index_t hi) const noexcept {
    const std::span<const token_id> text = sa_.text();
    return std::equal(ctx.data + lo, ctx.data + hi, text.data() + lo);
  }

  ngram_config config_;
  suffix_automaton sa_;
  bool synced_ = false;
  std::uint64_t request_id_ = 0;
  index_t sweep_ = 0; // next position of the sweep, in [0, indexed size - W)
  std::int64_t rebuilds_ = 0;
  suffix_automaton::match match_{};
};

static_assert(draft_proposer<ngram_proposer>);

} // namespace propose

SPECDEC_NAMESPACE_END
