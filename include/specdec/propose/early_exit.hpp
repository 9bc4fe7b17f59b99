// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief Early-exit self-speculative drafting: the first L layers of the target itself, then its
///        final norm and classifier, drafting token by token and reusing the target's KV cache.
///
/// Any layered model plugs in through `layered_model`: it scores tokens through only its first
/// `layers` layers, writing the KV of those layers at the drafted positions without committing
/// them. When the target later scores the same tokens at the same positions it overwrites those
/// slots; with a batch-invariant target the values are bitwise the ones the drafter wrote, so the
/// drafter never needs a cache of its own and never invalidates the target's.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/cpu/serial_executor.hpp>
#include <specdec/propose/concepts.hpp>
#include <specdec/sampling/distribution.hpp>
#include <specdec/sampling/params.hpp>

#include <algorithm>
#include <concepts>
#include <cstdint>

SPECDEC_NAMESPACE_BEGIN

namespace propose {

/// The layered target concept (defined with the other target concepts in core/concepts.hpp).
using ::specdec::layered_model;

/// @brief Settings of the early-exit drafter.
struct early_exit_config {
  int layers = 1;    ///< layers the drafter runs, 1 <= layers <= num_layers()
  int max_draft = 4; ///< most drafts per step, >= 0
  sampling::sampling_params
      params{};           ///< how drafts are drawn from the draft rows (match the target)
  std::uint64_t seed = 0; ///< the drafter's random stream (independent of verification)
};

/// @brief Self-speculative drafter over a layered_model (see the file comment).
///
/// Each proposed token costs one `score_layers` call on one token; the draft row (logits) is
/// written to the block, and the token is its argmax at temperature 0, else a draw from the
/// processed row (temperature, top-k, top-p, min-p of `params`) keyed by (seed ^ salt, request id,
/// position), a stream independent of the verifier's. The drafts are therefore dense: verify with
/// rejection_sampling (or greedy).
///
/// Contract: the model's cache holds exactly the committed prefix minus its last token (the loop's
/// invariant), so the first call scores the last committed token at position n - 1.
template <layered_model M>
class early_exit_proposer {
public:
  /// The drafter writes one dense logit row per draft (dense_draft_proposer).
  static constexpr bool writes_draft_rows = true;

  /// @brief Binds the model (which must outlive the drafter) and the settings.
  /// @param[in] model the layered target model
  /// @param[in] config the settings
  early_exit_proposer(M& model, early_exit_config config)
      : model_(&model)
      , config_(config) {}

  /// @brief The settings. O(1).
  /// @return the settings
  [[nodiscard]] const early_exit_config& config() const noexcept {
    return config_;
  }
  /// @brief Replaces the sampling parameters drafts are drawn with (set them to the verifier's).
  ///        Checked by the next propose(). O(1).
  /// @param[in] params the new parameters
  void set_params(const sampling::sampling_params& params) noexcept {
    config_.params = params;
  }
  /// @brief Re-keys the drafter's random stream (per request or per run). Draft tokens must be
  ///        random draws from the rows the drafter reports: reusing one seed across runs whose
  ///        verifier seeds differ makes the drafts a fixed function of the context, and rejection
  ///        sampling is then no longer exact over those runs. O(1).
  /// @param[in] seed the new stream seed
  void set_seed(std::uint64_t seed) noexcept {
    config_.seed = seed;
  }
  /// @brief config().max_draft. O(1).
  /// @return the largest draft per step
  [[nodiscard]] int max_draft_len() const noexcept {
    return config_.max_draft;
  }

  /// @brief Drafts up to min(r.max_tokens, max_draft, capacity of b) tokens after r.context.
  /// @return errc::invalid_argument for an empty context, a negative budget, layers outside
  ///         [1, num_layers()] or invalid params; errc::shape_mismatch when b.probs is not
  ///         vocabulary-wide; the model's status when a score_layers call fails. A draft row
  ///         without mass (NaN logits) ends the draft early with the tokens drafted so far.
  /// @par Complexity
  /// One single-token score_layers call and one O(V) row pass per drafted token.
  /// @param[in] r the context and budget
  /// @param[out] b receives tokens, logit rows and length
  [[nodiscard]] status propose(const draft_request& r, draft_block& b) {
    b.length = 0;
    b.probs_kind = distribution_kind::logits;
    if (r.context.size <= 0 || r.max_tokens < 0)
      return status{errc::invalid_argument};
    if (config_.layers < 1 || config_.layers > model_->num_layers() || config_.max_draft < 0)
      return status{errc::invalid_argument};
    if (config_.params.validate() != errc::ok)
      return status{config_.params.validate()};
    const index_t vocab = model_->vocab_size();
    const index_t cap = std::min<index_t>({static_cast<index_t>(r.max_tokens),
                                           static_cast<index_t>(config_.max_draft),
                                           b.tokens.size,
                                           b.probs.rows});
    if (cap <= 0)
      return status{};
    if (b.probs.cols != vocab || b.probs.row_stride < vocab)
      return status{errc::shape_mismatch};

    const rng_key key{config_.seed ^ stream_salt::early_exit, r.request_id};
    const cpu::serial_executor ex{};
    token_id tok = r.context[r.context.size - 1];
    index_t pos = r.context.size - 1;
    for (index_t j = 0; j < cap; ++j, ++pos) {
      const matrix_view<float> row{b.probs.data + j * b.probs.row_stride, 1, vocab, vocab};
      const score_request req{r.request_id, {&tok, 1}, pos};
      if (const status s = model_->score_layers(req, config_.layers, row); !s.ok())
        return s;
      const sampling::dist_row<float> dr{row.data, vocab, distribution_kind::logits};
      const sampling::row_stats st = sampling::prepare_row(ex, dr, config_.params);
      if (!st.status.ok())
        break;
      const float u = uniform_at(key, pos + 1, draw_purpose::sample);
      const index_t next = sampling::sample_row(ex, dr, st, u);
      if (next < 0 || next >= vocab)
        break;
      tok = static_cast<token_id>(next);
      b.tokens[j] = tok;
      b.length = static_cast<std::int32_t>(j + 1);
    }
    return status{};
  }

private:
  M* model_;
  early_exit_config config_;
};

} // namespace propose

SPECDEC_NAMESPACE_END
