// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief Statistics of a speculative decoding run: drafts, acceptance per position, tau, and where
///        the time went.

#include <specdec/config.hpp>

#include <specdec/core/types.hpp>

#include <cstdint>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace decode {

/// @brief Counters of one generate() call (or several, merged with operator+=).
///
/// A *step* is one verification: the target scores the anchor plus k >= 0 drafts (for a token
/// tree: the root plus k draft nodes, so k + 1 rows) and the policy emits accepted + 1 tokens.
/// Steps with k = 0 are plain decoding steps. Rows scored by verification: drafted + steps.
struct decode_stats {
  std::int64_t steps = 0;         ///< verification steps (including steps without drafts)
  std::int64_t draft_steps = 0;   ///< steps that verified at least one draft
  std::int64_t drafted = 0;       ///< draft tokens verified
  std::int64_t accepted = 0;      ///< draft tokens accepted
  std::int64_t emitted = 0;       ///< tokens emitted by verification steps (before stop truncation)
  std::int64_t prompt_tokens = 0; ///< prompt tokens prefilled
  /// tried[j]: steps in which draft position j + 1 was verified with all earlier drafts accepted.
  std::vector<std::int64_t> tried;
  /// hits[j]: of those, the steps in which draft j + 1 was accepted.
  std::vector<std::int64_t> hits;
  double seconds_draft = 0.0;   ///< time inside the proposer
  double seconds_verify = 0.0;  ///< time scoring with the target and running the policy
  double seconds_prefill = 0.0; ///< time scoring the prompt
  double seconds_total = 0.0;   ///< wall time of generate()

  /// @brief Records one verified step with k drafts of which `acc` were accepted. O(k).
  /// @param[in] k drafts verified in the step
  /// @param[in] acc drafts accepted, 0 .. k
  void record_step(int k, int acc) {
    ++steps;
    emitted += acc + 1;
    if (k <= 0)
      return;
    ++draft_steps;
    drafted += k;
    accepted += acc;
    if (tried.size() < static_cast<std::size_t>(k)) {
      tried.resize(static_cast<std::size_t>(k), 0);
      hits.resize(static_cast<std::size_t>(k), 0);
    }
    const int seen = acc < k ? acc + 1 : k;
    for (int j = 0; j < seen; ++j) {
      ++tried[static_cast<std::size_t>(j)];
      if (j < acc)
        ++hits[static_cast<std::size_t>(j)];
    }
  }

  /// @brief Records one verified token-tree step: `nodes` draft nodes (root excluded) in a tree
  ///        of depth `depth`, of which `acc` were accepted (the depth of the last accepted node).
  ///
  /// Per depth, `tried[d]` counts the steps whose accepted path reached depth d with a child to
  /// try, and `hits[d]` those that accepted a depth-(d + 1) node. A chain of k drafts recorded
  /// with `depth = k` and `deeper = acc < k` gives exactly what record_step(k, acc) gives.
  /// @param[in] nodes draft nodes verified in the step (the tree's size minus the root)
  /// @param[in] depth the depth of the tree's deepest node (sizes `tried` and `hits`)
  /// @param[in] acc accepted drafts, 0 .. depth
  /// @param[in] deeper the last accepted node has children (one more depth was tried and failed)
  /// @par Complexity
  /// O(depth).
  void record_tree_step(int nodes, int depth, int acc, bool deeper) {
    ++steps;
    emitted += acc + 1;
    if (nodes <= 0)
      return;
    ++draft_steps;
    drafted += nodes;
    accepted += acc;
    if (tried.size() < static_cast<std::size_t>(depth)) {
      tried.resize(static_cast<std::size_t>(depth), 0);
      hits.resize(static_cast<std::size_t>(depth), 0);
    }
    const int seen = deeper && acc < depth ? acc + 1 : acc;
    for (int j = 0; j < seen; ++j) {
      ++tried[static_cast<std::size_t>(j)];
      if (j < acc)
        ++hits[static_cast<std::size_t>(j)];
    }
  }

  /// @brief Mean tokens emitted per verification step, bonus token included (tau). 0 without steps.
  /// @return emitted / steps
  [[nodiscard]] double tau() const noexcept {
    return steps > 0 ? static_cast<double>(emitted) / static_cast<double>(steps) : 0.0;
  }
  /// @brief tau over the steps that verified drafts only (1 + accepted per draft step).
  /// @return 1 + accepted / draft_steps
  [[nodiscard]] double tau_drafting() const noexcept {
    return draft_steps > 0 ? 1.0 + static_cast<double>(accepted) / static_cast<double>(draft_steps)
                           : 0.0;
  }
  /// @brief Fraction of verified drafts accepted. 0 without drafts.
  /// @return accepted / drafted
  [[nodiscard]] double acceptance_rate() const noexcept {
    return drafted > 0 ? static_cast<double>(accepted) / static_cast<double>(drafted) : 0.0;
  }
  /// @brief Conditional acceptance of draft position j + 1 given drafts 1..j were accepted;
  ///        -1 when that position was never tried. O(1).
  /// @param[in] j zero-based draft position
  /// @return hits[j] / tried[j], or -1
  [[nodiscard]] double conditional_acceptance(std::size_t j) const noexcept {
    if (j >= tried.size() || tried[j] == 0)
      return -1.0;
    return static_cast<double>(hits[j]) / static_cast<double>(tried[j]);
  }
  /// @brief Time outside drafting, verification and prefill (bookkeeping, stop checks).
  /// @return seconds, never negative
  [[nodiscard]] double seconds_rest() const noexcept {
    const double r = seconds_total - seconds_draft - seconds_verify - seconds_prefill;
    return r > 0.0 ? r : 0.0;
  }

  /// @brief Adds another run's counters and times. O(positions).
  /// @param[in] o the counters to add
  /// @return *this
  decode_stats& operator+=(const decode_stats& o) {
    steps += o.steps;
    draft_steps += o.draft_steps;
    drafted += o.drafted;
    accepted += o.accepted;
    emitted += o.emitted;
    prompt_tokens += o.prompt_tokens;
    if (tried.size() < o.tried.size()) {
      tried.resize(o.tried.size(), 0);
      hits.resize(o.hits.size(), 0);
    }
    for (std::size_t j = 0; j < o.tried.size(); ++j) {
      tried[j] += o.tried[j];
      hits[j] += o.hits[j];
    }
    seconds_draft += o.seconds_draft;
    seconds_verify += o.seconds_verify;
    seconds_prefill += o.seconds_prefill;
    seconds_total += o.seconds_total;
    return *this;
  }
};

} // namespace decode

SPECDEC_NAMESPACE_END
