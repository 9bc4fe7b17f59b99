// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief A separate draft model as an autoregressive drafter: any target_model with its own KV
///        cache drafts token by token, hands its dense rows to rejection sampling, and keeps its
///        cache in step with what verification accepted (no re-prefill of accepted tokens).
///
/// Per round, with the committed context c_0..c_{n-1} and the drafter's cache holding the keys
/// and values of c_0..c_{v-1} (v <= n - 1 after a full round, see below):
///  1. resynchronise: v is cut to the common prefix of the context and what the drafter saw (a
///     rewritten or resumed context is rebuilt from there, never trusted);
///  2. one call scores c_v..c_{n-1} (the token the target emitted last round, and the last
///     accepted draft when every draft was kept); its last row is the first draft row;
///  3. each further draft costs one single-token call: row j is the drafter's logits after
///     d_1..d_j, and d_{j+1} is drawn from its processed distribution (temperature, top-k, top-p,
///     min-p of the config; argmax at temperature 0) with the drafter's own Philox stream keyed
///     by (seed ^ draft_model_seed_salt, request id, position), independent of the verifier's;
///  4. observe(): the cache is rolled back to the anchor and the accepted drafts it scored, so
///     accepted tokens are never scored again; the emitted token is scored with the next round.
///
/// It is a stateful_proposer (begin prefills the prompt, end releases) and a
/// dense_draft_proposer: verify with rejection_sampling (lossless), or greedy. Used without the
/// lifecycle it still works: the first propose() of a request prefills from scratch.
/// The tree form is propose::chain_tree_proposer over it (it forwards the lifecycle).

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/diagnostics.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/cpu/serial_executor.hpp>
#include <specdec/kv/concepts.hpp>
#include <specdec/propose/concepts.hpp>
#include <specdec/sampling/distribution.hpp>
#include <specdec/sampling/params.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace propose {

/// @brief Settings of draft_model_proposer.
struct draft_model_config {
  int max_draft = 4;                  ///< most drafts per round it offers, >= 0
  sampling::sampling_params params{}; ///< how drafts are drawn (match the target's)
  std::uint64_t seed = 0;             ///< the drafter's random stream (independent of verify)
  index_t prefill_chunk = 64;         ///< tokens per call when prefilling or catching up, >= 1
};

/// @brief An autoregressive drafter over a separate model (see the file comment).
/// @tparam M the draft model: a target_model (its rows are the draft rows; its vocabulary must
///   be the target's)
/// @tparam Cache the draft model's own kv::kv_cache (rolled back, never re-filled)
///
/// Holds references to the model and its cache, which must outlive it. One request at a time.
template <class M, class Cache>
class draft_model_proposer {
  SPECDEC_CHECK(target_model, M);
  SPECDEC_CHECK(kv_cache, Cache);

public:
  /// The drafter writes one dense logit row per draft (dense_draft_proposer).
  static constexpr bool writes_draft_rows = true;

  /// @brief Binds the model, its cache and the settings.
  /// @param[in] model the draft model
  /// @param[in] cache its KV cache
  /// @param[in] config the settings
  draft_model_proposer(M& model, Cache& cache, draft_model_config config = {})
      : model_(&model)
      , cache_(&cache)
      , config_(config) {}

  /// @brief config().max_draft: what it offers per round (the loop decides). O(1).
  /// @return the largest draft per round
  [[nodiscard]] int max_draft_len() const noexcept {
    return config_.max_draft;
  }
  /// @brief The settings. O(1).
  /// @return the settings
  [[nodiscard]] const draft_model_config& config() const noexcept {
    return config_;
  }
  /// @brief Re-keys the drafter's stream (drafts must be fresh random draws per run). O(1).
  /// @param[in] seed the new seed
  void set_seed(std::uint64_t seed) noexcept {
    config_.seed = seed;
  }
  /// @brief Tokens the draft model has scored since construction (prefill, catch-up and
  ///        drafting): with the lifecycle, accepted drafts are never scored twice. O(1).
  /// @return the count
  [[nodiscard]] std::int64_t tokens_scored() const noexcept {
    return scored_;
  }

  /// @brief Starts (or resumes) request `id` at `prompt`: resets the cache and prefills every
  ///        prompt token but the last (the first round's anchor).
  /// @param[in] id the request
  /// @param[in] prompt its committed tokens (at least one)
  /// @return errc::invalid_argument for an empty prompt or a bad prefill_chunk; the model's or
  ///   cache's status otherwise
  /// @par Complexity
  /// One model pass over the prompt.
  [[nodiscard]] status begin(std::uint64_t id, row_view<const token_id> prompt) {
    active_ = false;
    if (prompt.size <= 0 || config_.prefill_chunk < 1)
      return status{errc::invalid_argument};
    context_.assign(prompt.data, prompt.data + prompt.size);
    request_ = id;
    valid_ = 0;
    drafts_.clear();
    if (const status s = cache_->rollback(0); !s.ok())
      return s;
    if (const status s = catch_up(prompt.size - 1); !s.ok())
      return s;
    active_ = true;
    return status{};
  }

  /// @brief Drafts up to min(r.max_tokens, max_draft, b.tokens.size, b.probs.rows) tokens.
  /// @param[in] r the context and budget
  /// @param[out] b receives tokens, dense logit rows and length
  /// @return errc::invalid_argument for an empty context, a negative budget or invalid params;
  ///   errc::shape_mismatch when b.probs is not as wide as the model's vocabulary; the model's or
  ///   cache's status. A row without mass (NaN logits) ends the draft early.
  /// @par Complexity
  /// One model call for the pending tokens (usually one or two) and one per further draft, plus
  /// O(context) to check that the context extends what the drafter saw.
  [[nodiscard]] status propose(const draft_request& r, draft_block& b) {
    b.length = 0;
    b.probs_kind = distribution_kind::logits;
    if (r.context.size <= 0 || r.max_tokens < 0 || config_.prefill_chunk < 1)
      return status{errc::invalid_argument};
    if (config_.params.validate() != errc::ok)
      return status{config_.params.validate()};
    const index_t vocab = model_->vocab_size();
    const index_t n = r.context.size;
    index_t cap = std::min<index_t>({static_cast<index_t>(r.max_tokens),
                                     static_cast<index_t>(std::max(0, config_.max_draft)),
                                     b.tokens.size,
                                     b.probs.rows,
                                     cache_->capacity() - n + 1});
    if (cap <= 0)
      return status{};
    if (b.probs.cols != vocab || b.probs.row_stride < vocab)
      return status{errc::shape_mismatch};

    // 1. Resynchronise with the context (a new, rewritten or resumed one is rebuilt).
    index_t keep = 0;
    if (active_ && r.request_id == request_) {
      const index_t m = std::min<index_t>(n, static_cast<index_t>(context_.size()));
      while (keep < m && context_[static_cast<std::size_t>(keep)] == r.context[keep])
        ++keep;
    }
    context_.assign(r.context.data, r.context.data + n);
    request_ = r.request_id;
    active_ = true;
    drafts_.clear();
    valid_ = std::min({valid_, keep, n - 1});
    if (const status s = cache_->rollback(valid_); !s.ok())
      return s;

    // 2. Score the pending tokens up to the anchor; the last row is the first draft row.
    if (const status s = catch_up(n); !s.ok())
      return s;
    std::copy_n(last_row_.data(), vocab, b.probs.data);

    // 3. Draw, then score each draft for the next row.
    const rng_key key{config_.seed ^ draft_model_seed_salt, r.request_id};
    const cpu::serial_executor ex{};
    for (index_t j = 0; j < cap; ++j) {
      float* row = b.probs.data + j * b.probs.row_stride;
      const index_t next =
          sampling::draw_token(ex,
                               sampling::dist_row<float>{row, vocab, distribution_kind::logits},
                               config_.params,
                               uniform_at(key, n + j, draw_purpose::sample));
      if (next < 0)
        break;
      const auto tok = static_cast<token_id>(next);
      b.tokens[j] = tok;
      b.length = static_cast<std::int32_t>(j + 1);
      drafts_.push_back(tok);
      if (j + 1 < cap) {
        const score_request req{r.request_id, {&tok, 1}, n + j};
        const matrix_view<float> out{row + b.probs.row_stride, 1, vocab, vocab};
        if (const status s = model_->score(req, out); !s.ok())
          return s;
        ++scored_;
        valid_ = n + j + 1;
      }
    }
    return status{};
  }

  /// @brief Keeps the cache of the anchor and the accepted drafts it scored; records the
  ///        committed tokens. A round of another request, or one that does not follow the
  ///        drafter's last context, only shortens what the next propose() trusts.
  /// @param[in] o the round's outcome
  /// @return the cache's status
  /// @par Complexity
  /// O(accepted) plus the cache's rollback.
  [[nodiscard]] status observe(const round_outcome& o) {
    if (!active_ || o.request_id != request_)
      return status{};
    index_t keep = o.position;
    for (std::int32_t j = 0; j < o.accepted; ++j)
      if (static_cast<std::size_t>(j) < drafts_.size()
          && drafts_[static_cast<std::size_t>(j)] == o.tokens[j])
        ++keep;
      else
        break;
    if (o.position != static_cast<index_t>(context_.size()))
      keep = std::min<index_t>(keep, static_cast<index_t>(context_.size()) - 1);
    valid_ = std::max<index_t>(0, std::min(valid_, keep));
    drafts_.clear();
    context_.insert(context_.end(), o.tokens.data, o.tokens.data + o.tokens.size);
    return cache_->rollback(valid_);
  }

  /// @brief Ends request `id`: releases its state (the cache is rolled back to 0). O(1).
  /// @param[in] id the request
  void end(std::uint64_t id) {
    if (!active_ || id != request_)
      return;
    active_ = false;
    context_.clear();
    drafts_.clear();
    valid_ = 0;
    (void)cache_->rollback(0);
  }

  /// The salt xor-ed into the seed of the drafter's stream.
  static constexpr std::uint64_t draft_model_seed_salt = stream_salt::draft_model;

private:
  // Scores context_[valid_ .. until) in chunks; the last row lands in last_row_.
  status catch_up(index_t until) {
    const index_t vocab = model_->vocab_size();
    const index_t chunk = config_.prefill_chunk;
    rows_.resize(
        static_cast<std::size_t>(std::min<index_t>(chunk, std::max<index_t>(1, until)) * vocab));
    last_row_.resize(static_cast<std::size_t>(vocab));
    for (index_t start = valid_; start < until; start += chunk) {
      const index_t len = std::min<index_t>(chunk, until - start);
      const score_request req{request_, {context_.data() + start, len}, start};
      if (const status s = model_->score(req, {rows_.data(), len, vocab, vocab}); !s.ok())
        return s;
      scored_ += len;
      valid_ = start + len;
      if (valid_ == until)
        std::copy_n(rows_.data() + (len - 1) * vocab, vocab, last_row_.data());
    }
    return status{};
  }

  M* model_;
  Cache* cache_;
  draft_model_config config_;
  bool active_ = false;
  std::uint64_t request_ = 0;
  index_t valid_ = 0; // cache positions holding the keys and values of context_[0 .. valid_)
  std::int64_t scored_ = 0;
  std::vector<token_id> context_; // committed tokens as the drafter knows them
  std::vector<token_id> drafts_;  // the last round's drafts
  std::vector<float> rows_;
  std::vector<float> last_row_;
};

} // namespace propose

SPECDEC_NAMESPACE_END
