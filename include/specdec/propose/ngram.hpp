// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief The n-gram (prompt-lookup) drafter: finds the longest suffix of the context that
///        occurred before and proposes the tokens that followed it, from an incrementally
///        maintained suffix automaton.
///
/// No model runs: a step costs one or a few automaton updates and a copy of the draft, whatever
/// the context length. It shines on copy-heavy generation (code edits, summaries quoting their
/// source, retrieval-augmented answers).

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/propose/suffix_automaton.hpp>

#include <algorithm>
#include <cstdint>
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

  /// @brief Checks the settings.
  /// @return errc::invalid_value when min_match < 1, max_draft < 0, or max_match is neither 0
  ///         nor >= min_match; ok otherwise
  /// @par Complexity
  /// O(1).
  [[nodiscard]] constexpr status validate() const noexcept {
    if (min_match < 1 || max_draft < 0 || (max_match != 0 && max_match < min_match))
      return status{errc::invalid_value};
    return status{};
  }
};

/// @brief Prompt-lookup drafter over a suffix_automaton of the request's context.
///
/// Each propose() call syncs the automaton with `r.context` incrementally: when `r.request_id` is
/// the one of the previous call, the context is at least as long as what was absorbed, and its
/// last absorbed token is unchanged, only the new tokens are appended (the per-step cost is then
/// independent of the context length). Otherwise (another request, a shorter or edited context)
/// the automaton is rebuilt from the whole context. The proposer thus assumes a request's context
/// only grows (committed tokens), which is what the decoding loop passes; one proposer serves one
/// sequence at a time efficiently (switching requests rebuilds).
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
  ///         token (then b.length = 0, no token is written and the automaton is unchanged);
  ///         errc::overflow for a context longer than suffix_automaton::max_size; ok otherwise
  ///         (b.length = 0 when no suffix of length >= min_match repeats)
  /// @par Complexity
  /// O(k + d) amortised expected, for k new context tokens and d drafted tokens; a rebuild is
  /// O(context size).
  [[nodiscard]] status propose(const draft_request& r, draft_block& b) {
    b.length = 0;
    match_ = suffix_automaton::match{};
    if (const status s = config_.validate(); !s.ok())
      return s;
    if (r.max_tokens < 0 || r.context.size < 0)
      return status{errc::invalid_value};
    if (r.context.size > suffix_automaton::max_size)
      return status{errc::overflow};

    const index_t absorbed = sa_.size();
    const bool incremental = synced_ && r.request_id == request_id_ && r.context.size >= absorbed
                             && (absorbed == 0 || r.context[absorbed - 1] == sa_.at(absorbed - 1));
    const index_t from = incremental ? absorbed : 0;
    for (index_t i = from; i < r.context.size; ++i)
      if (r.context[i] < 0)
        return status{errc::invalid_value};
    if (!incremental) {
      sa_.clear();
      sa_.reserve(r.context.size);
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

  /// @brief Forgets the absorbed context and the last match (keeps allocated memory); the next
  ///        propose() rebuilds.
  /// @par Complexity
  /// O(capacity of the automaton's hash table).
  void reset() {
    sa_.clear();
    synced_ = false;
    request_id_ = 0;
    match_ = suffix_automaton::match{};
  }

private:
  ngram_config config_;
  suffix_automaton sa_;
  bool synced_ = false;
  std::uint64_t request_id_ = 0;
  suffix_automaton::match match_{};
};

static_assert(draft_proposer<ngram_proposer>);

} // namespace propose

SPECDEC_NAMESPACE_END
