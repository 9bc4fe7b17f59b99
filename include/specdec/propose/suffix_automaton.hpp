// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief An online suffix automaton over token ids, the index behind the n-gram (prompt-lookup)
///        drafter: after each appended token it names, in O(1), the longest suffix of the text
///        that occurred before and where it first ended.
///
/// Transitions are not a vocabulary-sized array per state (vocabularies reach 2^31 ids): each
/// state keeps a singly linked list of its out-edges, and one open-addressing hash table keyed by
/// (state, token) finds an edge in O(1) expected probes. The table is a power of two in size,
/// probed linearly, and doubled (rehashed) before its load would exceed one half. Host only.

#include <specdec/config.hpp>

#include <specdec/core/types.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace propose {

/// @brief An online suffix automaton (Blumer et al.; the construction of cp-algorithms) of a
///        token sequence that grows one token at a time.
///
/// Each state stores `len` (its longest string), `link` (the suffix link) and `first_end` (the end
/// index of the first occurrence of its strings; a clone copies it from the state it splits).
/// The text itself is kept as well, so callers can read the tokens after an occurrence.
///
/// Invariants after n tokens (n >= 2): at most 2n - 1 states and 3n - 4 edges; the hash table
/// holds every edge and is never more than half full.
///
/// Memory: 16 bytes per state, 8 per edge and 12 per hash slot (two to four slots per edge): about
/// 80 bytes per token on natural text, at most about 200 (binary alphabets).
class suffix_automaton {
public:
  /// The largest number of tokens the automaton holds (state and edge indices are 32-bit).
  static constexpr index_t max_size = index_t{1} << 29;

  /// @brief A repeated suffix: its length, where its first occurrence ends and its state.
  struct match {
    index_t length = 0;     ///< tokens in the suffix; 0 means no repeat
    index_t end = -1;       ///< end index of the suffix's first occurrence (-1 when length is 0)
    std::int32_t state = 0; ///< the automaton state of the suffix (0, the root, when length is 0)
  };

  /// @brief A token that follows some occurrence of a matched suffix.
  struct candidate {
    token_id token = 0; ///< the following token
    /// Index of that token at its first occurrence after the suffix: text[end + 1 ...] is the
    /// continuation after it.
    index_t end = -1;
  };

  /// @brief An empty automaton (the root state only).
  /// @par Complexity
  /// O(1) plus a small initial hash table.
  suffix_automaton() {
    clear();
  }

  /// @brief Forgets the text; keeps the allocated capacity.
  /// @post size() == 0, num_states() == 1, num_edges() == 0, probe_count() == 0.
  /// @par Complexity
  /// O(capacity of the hash table) (its slots are marked empty).
  void clear() {
    text_.clear();
    states_.clear();
    edges_.clear();
    states_.push_back(state{0, -1, -1, -1});
    last_ = 0;
    probes_ = 0;
    if (slots_.empty())
      slots_.resize(initial_slots);
    std::fill(slots_.begin(), slots_.end(), slot{});
  }

  /// @brief Reserves room for `tokens` tokens, so that appending up to that many never
  ///        reallocates nor rehashes.
  /// @param[in] tokens the expected text length (values <= 0 do nothing; clamped to max_size)
  /// @par Complexity
  /// O(tokens) allocation; a rehash of the present edges when the table grows.
  void reserve(index_t tokens) {
    if (tokens <= 0)
      return;
    const auto n = static_cast<std::size_t>(std::min(tokens, max_size));
    text_.reserve(n);
    states_.reserve(2 * n + 1);
    edges_.reserve(3 * n + 1);
    std::size_t cap = slots_.size();
    while (cap < 2 * (3 * n + 1))
      cap *= 2;
    if (cap != slots_.size())
      rehash(cap);
  }

  /// @brief Appends token `t` to the text and updates the automaton.
  /// @param[in] t the token (any value; the automaton never interprets it)
  /// @pre size() < max_size (checked by SPECDEC_ASSERT).
  /// @par Complexity
  /// Amortised O(1) expected: over n calls, O(n) hash probes and edge copies in total.
  void push_back(token_id t) {
    SPECDEC_ASSERT(size() < max_size, "suffix_automaton: more than max_size tokens");
    text_.push_back(t);
    const auto i = static_cast<std::int32_t>(text_.size() - 1);
    const std::int32_t cur = new_state(states_[static_cast<std::size_t>(last_)].len + 1, -1, i);
    std::int32_t p = last_;
    std::int32_t q = -1;
    // Walk the suffix links adding p --t--> cur until a state already has a t-edge (to q).
    while (p != -1) {
      reserve_edge();
      const std::size_t s = find_slot(p, t);
      if (slots_[s].target != -1) {
        q = slots_[s].target;
        break;
      }
      insert_edge(s, p, t, cur);
      p = states_[static_cast<std::size_t>(p)].link;
    }
    if (p == -1) {
      states_[static_cast<std::size_t>(cur)].link = 0;
    } else if (states_[static_cast<std::size_t>(p)].len + 1
               == states_[static_cast<std::size_t>(q)].len) {
      states_[static_cast<std::size_t>(cur)].link = q;
    } else {
      const std::int32_t clone = split(p, q);
      // Redirect the t-edges into q from p and its suffix-link ancestors to the clone.
      for (; p != -1; p = states_[static_cast<std::size_t>(p)].link) {
        slot& sl = slots_[find_slot(p, t)];
        if (sl.target != q)
          break;
        sl.target = clone;
      }
      states_[static_cast<std::size_t>(q)].link = clone;
      states_[static_cast<std::size_t>(cur)].link = clone;
    }
    last_ = cur;
  }

  /// @brief Tokens appended since the last clear().
  /// @return the text length
  /// @par Complexity
  /// O(1).
  [[nodiscard]] index_t size() const noexcept {
    return static_cast<index_t>(text_.size());
  }

  /// @brief Token `i` of the text.
  /// @param[in] i the index
  /// @return text[i]
  /// @pre 0 <= i < size().
  /// @par Complexity
  /// O(1).
  [[nodiscard]] token_id at(index_t i) const noexcept {
    SPECDEC_ASSERT(i >= 0 && i < size(), "suffix_automaton::at: index out of range");
    return text_[static_cast<std::size_t>(i)];
  }

  /// @brief The whole text, oldest token first.
  /// @return a view that stays valid until the next push_back, reserve or clear
  /// @par Complexity
  /// O(1).
  [[nodiscard]] std::span<const token_id> text() const noexcept {
    return {text_.data(), text_.size()};
  }

  /// @brief The longest suffix of the text that also ends at an earlier position.
  ///
  /// That is the suffix-link parent of the state of the whole text: `length` is its `len`, `end`
  /// its `first_end` (always < size() - 1 when length > 0), `state` the state itself. When no
  /// suffix repeats (or the text is empty) the result is `{0, -1, 0}`.
  /// @return the match
  /// @par Complexity
  /// O(1).
  [[nodiscard]] match longest_repeated_suffix() const noexcept {
    if (last_ == 0)
      return match{};
    const std::int32_t s = states_[static_cast<std::size_t>(last_)].link;
    const state& st = states_[static_cast<std::size_t>(s)];
    if (st.len == 0)
      return match{};
    return match{st.len, st.first_end, s};
  }

  /// @brief The distinct tokens that follow some occurrence of the suffix matched by `m`: the
  ///        out-edges of `m.state`.
  ///
  /// Each candidate carries the end index of the first occurrence of (suffix, token), i.e. the
  /// `first_end` of the edge's target, so text[end] == token and text[end + 1 ...] continues it.
  /// Order (deterministic): the state's edge list, most recently created edge first; a clone's
  /// list starts as a copy of its original's, in the same order. For the root (`m.length == 0`)
  /// these are all distinct tokens of the text.
  /// @param[in] m a match of this automaton (from longest_repeated_suffix, or a state of it)
  /// @param[out] out where the candidates go; at most out.size() are written
  /// @return how many candidates were written
  /// @pre 0 <= m.state < num_states().
  /// @par Complexity
  /// O(min(out-degree of m.state, out.size())).
  [[nodiscard]] std::int32_t continuations(const match& m,
                                           std::span<candidate> out) const noexcept {
    SPECDEC_ASSERT(m.state >= 0 && m.state < num_states(),
                   "suffix_automaton::continuations: state out of range");
    std::int32_t n = 0;
    for (std::int32_t e = states_[static_cast<std::size_t>(m.state)].head;
         e != -1 && static_cast<std::size_t>(n) < out.size();
         e = edges_[static_cast<std::size_t>(e)].next) {
      const slot& sl = slots_[edges_[static_cast<std::size_t>(e)].slot];
      out[static_cast<std::size_t>(n++)] =
          candidate{sl.token, states_[static_cast<std::size_t>(sl.target)].first_end};
    }
    return n;
  }

  /// @brief The transition of `s` on token `t`.
  /// @param[in] s a state
  /// @param[in] t a token
  /// @return the target state, or -1 when `s` has no t-edge
  /// @pre 0 <= s < num_states().
  /// @par Complexity
  /// O(1) expected (one hash lookup; not counted by probe_count()).
  [[nodiscard]] std::int32_t transition(std::int32_t s, token_id t) const noexcept {
    SPECDEC_ASSERT(s >= 0 && s < num_states(), "suffix_automaton::transition: state out of range");
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash(s, t) & mask;; i = (i + 1) & mask) {
      const slot& sl = slots_[i];
      if (sl.target == -1 || (sl.state == s && sl.token == t))
        return sl.target;
    }
  }

  /// @brief Number of states, the root included.
  /// @return the state count (<= 2 size() - 1 once size() >= 2)
  /// @par Complexity
  /// O(1).
  [[nodiscard]] index_t num_states() const noexcept {
    return static_cast<index_t>(states_.size());
  }

  /// @brief Number of transitions (edges).
  /// @return the edge count (<= 3 size() - 4 once size() >= 3)
  /// @par Complexity
  /// O(1).
  [[nodiscard]] index_t num_edges() const noexcept {
    return static_cast<index_t>(edges_.size());
  }

  /// @brief Hash slots inspected by push_back (rehashes included) since the last clear(): the
  ///        construction's work measure, linear in size() in expectation.
  /// @return the probe count
  /// @par Complexity
  /// O(1).
  [[nodiscard]] std::int64_t probe_count() const noexcept {
    return probes_;
  }

  /// @brief Slots of the hash table (a power of two, at least twice num_edges()).
  /// @return the table size
  /// @par Complexity
  /// O(1).
  [[nodiscard]] index_t hash_capacity() const noexcept {
    return static_cast<index_t>(slots_.size());
  }

private:
  static constexpr std::size_t initial_slots = 64;

  struct state {
    std::int32_t len;       // length of the longest string of the state
    std::int32_t link;      // suffix link (-1 for the root)
    std::int32_t first_end; // end index of the first occurrence (-1 for the root)
    std::int32_t head;      // first out-edge, or -1
  };
  // An edge is a node of its source's list; its label and target live in its hash slot, so a
  // lookup or a redirection touches the slot only.
  struct edge {
    std::int32_t next;  // next edge of the same source, or -1
    std::uint32_t slot; // the hash slot holding (source, label, target)
  };
  struct slot {
    std::int32_t state = -1;  // source state of the edge
    token_id token = 0;       // its label
    std::int32_t target = -1; // the state it leads to, or -1 for an empty slot
  };

  static std::size_t hash(std::int32_t s, token_id t) noexcept {
    std::uint64_t k = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(s)) << 32)
                      | static_cast<std::uint32_t>(t);
    k ^= k >> 33; // murmur3 fmix64
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return static_cast<std::size_t>(k);
  }

  // The slot holding (s, t), or the empty slot where it would go.
  std::size_t find_slot(std::int32_t s, token_id t) noexcept {
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash(s, t) & mask;; i = (i + 1) & mask) {
      ++probes_;
      const slot& sl = slots_[i];
      if (sl.target == -1 || (sl.state == s && sl.token == t))
        return i;
    }
  }

  // Grows the table so that one more edge keeps the load at most one half.
  void reserve_edge() {
    if (2 * (edges_.size() + 1) > slots_.size())
      rehash(2 * slots_.size());
  }

  void rehash(std::size_t cap) {
    std::vector<slot> old(cap);
    old.swap(slots_);
    for (edge& e : edges_) {
      const slot sl = old[e.slot];
      const std::size_t at = find_slot(sl.state, sl.token);
      slots_[at] = sl;
      e.slot = static_cast<std::uint32_t>(at);
    }
  }

  std::int32_t new_state(std::int32_t len, std::int32_t link, std::int32_t first_end) {
    states_.push_back(state{len, link, first_end, -1});
    return static_cast<std::int32_t>(states_.size() - 1);
  }

  // Adds edge s --t--> target at the front of s's list, filling hash slot `at` (empty).
  void insert_edge(std::size_t at, std::int32_t s, token_id t, std::int32_t target) {
    state& st = states_[static_cast<std::size_t>(s)];
    edges_.push_back(edge{st.head, static_cast<std::uint32_t>(at)});
    st.head = static_cast<std::int32_t>(edges_.size() - 1);
    slots_[at] = slot{s, t, target};
  }

  // Clones q as a state of length len(p) + 1 with q's link, first_end and out-edges (same order).
  std::int32_t split(std::int32_t p, std::int32_t q) {
    const state sq = states_[static_cast<std::size_t>(q)];
    const std::int32_t clone =
        new_state(states_[static_cast<std::size_t>(p)].len + 1, sq.link, sq.first_end);
    std::int32_t tail = -1;
    for (std::int32_t e = sq.head; e != -1; e = edges_[static_cast<std::size_t>(e)].next) {
      reserve_edge(); // may move slots: read the source edge's slot after it
      const slot src = slots_[edges_[static_cast<std::size_t>(e)].slot];
      const std::size_t at = find_slot(clone, src.token);
      const auto ne = static_cast<std::int32_t>(edges_.size());
      edges_.push_back(edge{-1, static_cast<std::uint32_t>(at)});
      slots_[at] = slot{clone, src.token, src.target};
      if (tail == -1)
        states_[static_cast<std::size_t>(clone)].head = ne;
      else
        edges_[static_cast<std::size_t>(tail)].next = ne;
      tail = ne;
    }
    return clone;
  }

  std::vector<token_id> text_;
  std::vector<state> states_;
  std::vector<edge> edges_;
  std::vector<slot> slots_;
  std::int32_t last_ = 0;
  std::int64_t probes_ = 0;
};

} // namespace propose

SPECDEC_NAMESPACE_END
