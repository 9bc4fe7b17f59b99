// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief `batch_decoder`: many requests decoded together with continuous batching. Requests join
///        (submit) and leave (finish, cancel, preemption) at any step; every step scores every
///        request's anchor and verified drafts, plus chunks of prompts still in prefill, in one
///        ragged target call, verifies the whole batch with one verify_chain_batch, and rolls back
///        and commits per request.
///
/// One step, with the open requests in admission order:
///  1. admit waiting requests while fewer than max_requests are open and the cache opens them;
///  2. every request whose prompt is prefilled drafts (its own proposer instance; up to
///     min(cfg.max_draft, the proposer's max_draft_len(), the cache room, tokens left - 1), or
///     what the length policy asks for);
///  3. the batch length policy (sched/batch_length.hpp: fixed gamma, theta cut, DSpark's
///     Algorithm 1, asynchronous top-K) chooses every verification length from what the requests
///     offer; requests whose rows no longer fit the step's row budget (max_step_tokens) wait for
///     the next step, oldest first;
///  4. the cache reserves each request's rows; when the pool is full the newest request is
///     preempted (its blocks are freed; it waits at the head of the queue and is re-prefilled
///     later, prompt and generated tokens alike); drafts are never cut for lack of room, except
///     for a request alone in the pool;
///  5. the remaining row budget goes to prefill chunks (cfg.prefill_chunk rows at most per request
///     and step), so a long prompt never stalls the decoding requests;
///  6. one score_batch (score_batch_features for a feature_proposer) over the decoding requests'
///     [anchor, drafts] then the prefill chunks;
///  7. one cpu::verify_chain_batch over the decoding requests (per-request sampling parameters,
///     seeds and positions); a request whose rows are bad (row_status) finishes with an error and
///     the others go on;
///  8. per request: roll the cache back to n + accepted, tell the proposer, emit, stop on an end
///     token, stop string, budget or full context; finished requests close their cache.
///
/// **Exactness.** Draws are keyed by (the request's seed, its id, the position), exactly as in
/// speculative_decoder, never by its place in the batch. With a batch-invariant target a request
/// decoded in any batch therefore emits the tokens speculative_decoder emits for it alone when its
/// drafts and verification lengths are the same: always for greedy verification (then equal to
/// plain decoding), and for stochastic verification whenever the length policy does not look at
/// other requests (batch_fixed_length, batch_threshold_length) and the proposer's drafts depend
/// only on the request's own context. The batch schedulers (Algorithm 1, top-K) make lengths
/// depend on the other requests' confidences: the output distribution is still exactly the
/// target's, but the sampled tokens can differ from those decoded alone. Preemption keeps a
/// request's output identical whenever its proposer's state is a function of its context (it is
/// rebuilt by begin() on the full context).
///
/// Bad requests (empty prompt, a prompt longer than the cache capacity, bad token ids, NaN or
/// out-of-range sampling parameters, a duplicate id) are refused by submit() alone; the batch goes
/// on.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/cpu/verify_chain.hpp>
#include <specdec/decode/loop.hpp>
#include <specdec/decode/stats.hpp>
#include <specdec/decode/stop.hpp>
#include <specdec/kv/concepts.hpp>
#include <specdec/propose/concepts.hpp>
#include <specdec/sched/batch_length.hpp>
#include <specdec/verify/batch.hpp>
#include <specdec/verify/policy.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace decode {

/// @brief Engine-wide settings of a batch_decoder.
struct batch_decoder_config {
  index_t max_requests = 64; ///< most requests open (prefilling or decoding) at once, >= 1
  /// Target rows scored per step, >= 1: decoding requests in admission order while their rows
  /// fit (the newer ones wait a step), then prefill chunks in what is left.
  index_t max_step_tokens = 1024;
};

/// @brief A finished request, as batch_decoder::take_finished() hands it back.
struct batch_finished {
  std::uint64_t request_id = 0; ///< the request
  /// Tokens, stop reason, error and counters (its stats.seconds_total is the latency below;
  /// per-phase times are the batch's and are not split per request).
  decode_result result;
  double seconds_latency = 0.0;     ///< submit() to finish
  double seconds_first_token = 0.0; ///< submit() to the first emitted token (0 when none)
  std::int32_t preemptions = 0;     ///< times the request was preempted and re-prefilled
};

/// @brief What one step did (batch_decoder::last_step()).
struct batch_step_stats {
  index_t decoding = 0;          ///< requests that verified a round
  index_t prefilling = 0;        ///< requests that scored a prompt chunk
  index_t rows = 0;              ///< target rows scored
  index_t drafted = 0;           ///< drafts verified
  index_t accepted = 0;          ///< drafts accepted
  index_t emitted = 0;           ///< tokens emitted (accepted drafts and one per round)
  index_t preempted = 0;         ///< requests preempted for lack of cache
  double seconds_draft = 0.0;    ///< proposers (drafting and observing)
  double seconds_schedule = 0.0; ///< the length policy
  double seconds_score = 0.0;    ///< the target call
  double seconds_verify = 0.0;   ///< verification, rollback and commit
};

/// @brief The continuous-batching decoding loop (see the file comment).
///
/// @tparam Target a batch_target_model (a batch_feature_target_model for a feature_proposer)
/// @tparam Cache its kv::batch_kv_cache (opened, reserved, rolled back and closed per request)
/// @tparam Proposer a draft_proposer; every request gets its own instance from the factory
/// @tparam Policy a chain_verification_policy (one that reads draft rows needs a
///         dense_draft_proposer)
/// @tparam Length a sched::batch_length_policy (one that needs confidences needs a
///         confident_proposer)
///
/// Holds references to the target and the cache: they must outlive it. Not thread-safe.
template <batch_target_model Target,
          kv::batch_kv_cache Cache,
          draft_proposer Proposer,
          verify::chain_verification_policy Policy,
          sched::batch_length_policy Length = sched::batch_fixed_length>
class batch_decoder {
  static_assert(!Policy::needs_draft_rows || dense_draft_proposer<Proposer>,
                "specdec: this verification policy reads draft rows (full q), but the proposer "
                "drafts one-hot tokens; use one_hot_rejection / greedy, or a dense_draft_proposer");
  static_assert(!Length::needs_confidences || confident_proposer<Proposer>,
                "specdec: this batch length policy reads draft confidences, but the proposer "
                "reports none; give it a confident_proposer (confidences())");
  static_assert(!feature_proposer<Proposer> || batch_feature_target_model<Target>,
                "specdec: the proposer is fed by target features (feature_proposer), but the "
                "target does not return them in batches (batch_feature_target_model)");

public:
  /// @brief Makes the proposer of a new request (called at every admission, so also again after
  ///        a preemption); it must not return null.
  using proposer_factory = std::function<std::unique_ptr<Proposer>(std::uint64_t request_id)>;

  /// @brief Binds the components.
  /// @param[in] target the batched target model
  /// @param[in] cache its batch cache
  /// @param[in] factory makes one proposer per request
  /// @param[in] policy the verification policy
  /// @param[in] length the batch length policy
  /// @param[in] config engine-wide settings (checked by submit() and step())
  batch_decoder(Target& target,
                Cache& cache,
                proposer_factory factory,
                Policy policy = {},
                Length length = {},
                batch_decoder_config config = {})
      : target_(&target)
      , cache_(&cache)
      , factory_(std::move(factory))
      , policy_(policy)
      , length_(std::move(length))
      , config_(config) {}

  /// @brief Binds the components; every request gets a copy of `prototype`.
  /// @param[in] target the batched target model
  /// @param[in] cache its batch cache
  /// @param[in] prototype the proposer every request copies
  /// @param[in] policy the verification policy
  /// @param[in] length the batch length policy
  /// @param[in] config engine-wide settings
  batch_decoder(Target& target,
                Cache& cache,
                const Proposer& prototype,
                Policy policy = {},
                Length length = {},
                batch_decoder_config config = {}) requires std::copy_constructible<Proposer>
      : batch_decoder(
            target,
            cache,
            [prototype](std::uint64_t) { return std::make_unique<Proposer>(prototype); },
            policy,
            std::move(length),
            config) {}

  batch_decoder(const batch_decoder&) = delete;
  batch_decoder& operator=(const batch_decoder&) = delete;
  ~batch_decoder() {
    for (auto& r : active_)
      close(*r);
  }

  /// @brief The length policy (to read its statistics). O(1).
  /// @return the policy the steps consult
  Length& length_policy() noexcept {
    return length_;
  }

  /// @brief Queues a request; it is admitted by a later step(). Its cfg.request_id is ignored
  ///        (`id` keys the random stream, the proposer and the cache).
  /// @param[in] id a request id not queued or open
  /// @param[in] prompt at least one token, every id in [0, vocab), at most the cache capacity
  /// @param[in] cfg budget, stop conditions, sampling parameters, seed, max_draft, prefill_chunk
  /// @return errc::invalid_argument for an id in use, an empty prompt or a bad config (as
  ///         speculative_decoder::generate, also stop strings without token_text);
  ///         errc::token_out_of_range for a bad prompt token; errc::overflow for a prompt longer
  ///         than the capacity; the sampling parameters' own errors. Nothing is queued on error.
  /// @par Complexity
  /// O(prompt) plus an O(open + waiting) id check.
  [[nodiscard]] status
  submit(std::uint64_t id, std::span<const token_id> prompt, const decode_config& cfg) {
    if (find(id) != nullptr)
      return status{errc::invalid_argument};
    struct cap_view {
      index_t c;
      [[nodiscard]] index_t capacity() const noexcept {
        return c;
      }
    };
    if (const status s =
            detail::validate_generate(*target_, cap_view{cache_->capacity()}, prompt, cfg);
        !s.ok())
      return s;
    auto r = std::make_unique<request>();
    r->id = id;
    r->cfg = cfg;
    r->cfg.request_id = id;
    r->context.assign(prompt.begin(), prompt.end());
    r->out.stats.prompt_tokens = static_cast<std::int64_t>(prompt.size());
    r->stop.reset(cfg.stop_strings);
    r->submitted = clock::now();
    if (cfg.max_new_tokens == 0) {
      finish(*r, stop_reason::budget, status{});
      return status{};
    }
    waiting_.push_back(std::move(r));
    return status{};
  }

  /// @brief Drops a queued or open request without reporting it (its cache is closed).
  /// @param[in] id the request
  /// @return errc::invalid_argument when no such request is queued or open
  /// @par Complexity
  /// O(open + waiting).
  [[nodiscard]] status cancel(std::uint64_t id) {
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
      if ((*it)->id == id) {
        waiting_.erase(it);
        return status{};
      }
    for (auto it = active_.begin(); it != active_.end(); ++it)
      if ((*it)->id == id) {
        close(**it);
        active_.erase(it);
        return status{};
      }
    return status{errc::invalid_argument};
  }

  /// @brief Preempts an open request: its cache is closed (blocks freed), its proposer ended,
  ///        and it waits at the head of the queue; on re-admission its prompt and the tokens it
  ///        has emitted are prefilled again and decoding resumes where it stopped.
  /// @param[in] id an open request
  /// @return errc::invalid_argument when it is not open
  /// @par Complexity
  /// O(open) plus closing its cache.
  [[nodiscard]] status preempt(std::uint64_t id) {
    for (auto it = active_.begin(); it != active_.end(); ++it)
      if ((*it)->id == id) {
        preempt_at(it);
        return status{};
      }
    return status{errc::invalid_argument};
  }

  /// @brief Runs one step (see the file comment); does nothing when no request is queued or open.
  /// @return ok, errc::invalid_argument for a bad batch_decoder_config, or the failure of the
  ///         target call (the whole batch: the requests stay as they were before the step, their
  ///         caches rolled back to their committed lengths). Failures of one request (its
  ///         proposer, its rows) finish that request with an error instead.
  /// @par Complexity
  /// One target call over at most max_step_tokens rows, the proposers' and the policy's costs,
  /// and O(rows + open) bookkeeping.
  [[nodiscard]] status step() {
    last_ = batch_step_stats{};
    if (config_.max_requests < 1 || config_.max_step_tokens < 1)
      return status{errc::invalid_argument};
    admit();
    if (active_.empty())
      return status{};
    const index_t vocab = target_->vocab_size();

    // 2. Draft.
    auto t0 = clock::now();
    decoding_.clear();
    for (auto& r : active_)
      if (r->prefilled == static_cast<index_t>(r->context.size()) - 1)
        decoding_.push_back(r.get());
    for (request* r : decoding_)
      draft(*r, vocab);
    std::erase_if(decoding_, [](const request* r) { return r->failed; });
    retire_failed();
    auto t1 = clock::now();
    last_.seconds_draft += detail::seconds(t0, t1);

    // 3. Lengths.
    choose_lengths();
    fit_budget();
    t0 = clock::now();
    last_.seconds_schedule = detail::seconds(t1, t0);

    // 4. Reserve the decoding rows (preempting the newest requests when the pool is full).
    reserve_decoding();

    // 5. Prefill chunks with the rows left.
    plan_prefill();

    // 6. Score.
    build_call(vocab);
    retire_failed();
    if (calls_.empty())
      return status{};
    t1 = clock::now();
    if (const status s = score(vocab); !s.ok())
      return s; // the target changed nothing; the requests stay as they were
    t0 = clock::now();
    last_.seconds_score = detail::seconds(t1, t0);

    // 7-8. Verify, roll back, commit; advance the prefills.
    verify_and_commit(vocab);
    t1 = clock::now();
    last_.seconds_verify = detail::seconds(t0, t1);
    advance_prefills();
    last_.seconds_draft += detail::seconds(t1, clock::now());
    retire_failed();
    return status{};
  }

  /// @brief True when no request is queued or open. O(1).
  /// @return whether there is nothing to do
  [[nodiscard]] bool idle() const noexcept {
    return active_.empty() && waiting_.empty();
  }
  /// @brief Requests open (prefilling or decoding). O(1).
  /// @return their count
  [[nodiscard]] index_t open_requests() const noexcept {
    return static_cast<index_t>(active_.size());
  }
  /// @brief Requests queued, not yet admitted (or preempted). O(1).
  /// @return their count
  [[nodiscard]] index_t waiting_requests() const noexcept {
    return static_cast<index_t>(waiting_.size());
  }
  /// @brief What the last step did. O(1).
  /// @return its statistics
  [[nodiscard]] const batch_step_stats& last_step() const noexcept {
    return last_;
  }
  /// @brief Hands back the requests finished since the last call, in finishing order. O(count).
  /// @return the finished requests
  [[nodiscard]] std::vector<batch_finished> take_finished() {
    std::vector<batch_finished> out;
    out.swap(finished_);
    return out;
  }

private:
  using clock = detail::decode_clock;

  struct request {
    std::uint64_t id = 0;
    decode_config cfg;
    std::vector<token_id> context; // committed: prompt then emitted tokens
    decode_result out;
    detail::stop_matcher stop;
    std::unique_ptr<Proposer> proposer;
    bool open = false;     // cache open, proposer begun
    bool failed = false;   // finished with an error during this step
    index_t prefilled = 0; // leading context positions whose K/V the cache holds
    std::int32_t max_draft = 0;
    std::vector<token_id> draft_tokens;
    std::vector<float> draft_rows;
    std::vector<double> conf;
    index_t offered = 0; // this step: drafts offered
    index_t k = 0;       // this step: drafts verified
    index_t chunk = 0;   // this step: prefill rows
    index_t row = 0;     // this step: first target row
    clock::time_point submitted{};
    clock::time_point first_token{};
    std::int32_t preemptions = 0;
  };

  request* find(std::uint64_t id) noexcept {
    for (auto& r : active_)
      if (r->id == id)
        return r.get();
    for (auto& r : waiting_)
      if (r->id == id)
        return r.get();
    return nullptr;
  }

  // Ends the proposer and closes the cache of an open request.
  void close(request& r) {
    if (!r.open)
      return;
    if constexpr (proposer_lifecycle<Proposer>)
      r.proposer->end(r.id);
    (void)cache_->close(r.id);
    r.open = false;
    r.prefilled = 0;
  }

  void finish(request& r, stop_reason reason, status error) {
    close(r);
    const auto now = clock::now();
    batch_finished f;
    f.request_id = r.id;
    f.result = std::move(r.out);
    f.result.reason = reason;
    f.result.error = error;
    f.seconds_latency = detail::seconds(r.submitted, now);
    f.result.stats.seconds_total = f.seconds_latency;
    f.seconds_first_token =
        f.result.tokens.empty() ? 0.0 : detail::seconds(r.submitted, r.first_token);
    f.preemptions = r.preemptions;
    finished_.push_back(std::move(f));
  }

  void fail(request& r, status s) {
    r.failed = true;
    finish(r, stop_reason::error, s);
  }

  // Removes the requests that finished with an error during this step.
  void retire_failed() {
    std::erase_if(active_, [](const std::unique_ptr<request>& r) { return r->failed; });
  }

  void preempt_at(typename std::vector<std::unique_ptr<request>>::iterator it) {
    request& r = **it;
    close(r);
    ++r.preemptions;
    ++last_.preempted;
    waiting_.push_front(std::move(*it));
    active_.erase(it);
  }

  // 1. Admission in queue order.
  void admit() {
    while (!waiting_.empty() && static_cast<index_t>(active_.size()) < config_.max_requests) {
      request& r = *waiting_.front();
      const status o = cache_->open(r.id);
      if (o.code == errc::overflow && !active_.empty())
        break; // no room now: wait for a request to leave
      std::unique_ptr<request> owned = std::move(waiting_.front());
      waiting_.pop_front();
      if (!o.ok()) {
        finish(r, stop_reason::error, o);
        continue;
      }
      r.open = true;
      r.prefilled = 0;
      r.proposer = factory_(r.id);
      if (!r.proposer) {
        (void)cache_->close(r.id);
        r.open = false;
        finish(r, stop_reason::error, status{errc::invalid_argument});
        continue;
      }
      r.max_draft = std::min<std::int32_t>(
          r.cfg.max_draft, std::max(0, static_cast<int>(r.proposer->max_draft_len())));
      r.draft_tokens.resize(static_cast<std::size_t>(std::max(1, r.max_draft)));
      if constexpr (dense_draft_proposer<Proposer>)
        r.draft_rows.resize(static_cast<std::size_t>(std::max(1, r.max_draft))
                            * static_cast<std::size_t>(target_->vocab_size()));
      if constexpr (proposer_lifecycle<Proposer>) {
        const status s =
            r.proposer->begin(r.id, {r.context.data(), static_cast<index_t>(r.context.size())});
        if (!s.ok()) {
          (void)cache_->close(r.id);
          r.open = false;
          finish(r, stop_reason::error, s);
          continue;
        }
      }
      active_.push_back(std::move(owned));
    }
  }

  // 2. One request's draft: offered, the tokens (and rows, confidences).
  void draft(request& r, index_t vocab) {
    r.offered = 0;
    r.k = 0;
    r.conf.clear();
    const index_t n = static_cast<index_t>(r.context.size());
    const std::int64_t left = r.cfg.max_new_tokens - static_cast<std::int64_t>(r.out.tokens.size());
    const index_t room = cache_->capacity() - n;
    const index_t available = static_cast<index_t>(std::max<std::int64_t>(
        0, std::min<std::int64_t>({r.max_draft, left - 1, static_cast<std::int64_t>(room)})));
    const index_t ask = std::clamp<index_t>(length_.ask(available), 0, available);
    if (ask == 0)
      return;
    draft_block block{};
    block.tokens = {r.draft_tokens.data(), static_cast<index_t>(r.draft_tokens.size())};
    if constexpr (dense_draft_proposer<Proposer>)
      block.probs = {r.draft_rows.data(), r.max_draft, vocab, vocab};
    const draft_request req{r.id, {r.context.data(), n}, static_cast<std::int32_t>(ask)};
    if (const status s = r.proposer->propose(req, block); !s.ok()) {
      fail(r, s);
      return;
    }
    r.offered = std::clamp<index_t>(block.length, 0, ask);
    if constexpr (confident_proposer<Proposer>) {
      const std::span<const double> c = r.proposer->confidences();
      const std::size_t m = std::min(c.size(), static_cast<std::size_t>(r.offered));
      r.conf.assign(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(m));
    }
  }

  // 3. The length policy over the decoding requests.
  void choose_lengths() {
    const std::size_t count = decoding_.size();
    offered_.resize(count);
    offsets_.assign(count + 1, 0);
    conf_.clear();
    for (std::size_t i = 0; i < count; ++i) {
      offered_[i] = decoding_[i]->offered;
      conf_.insert(conf_.end(), decoding_[i]->conf.begin(), decoding_[i]->conf.end());
      offsets_[i + 1] = static_cast<index_t>(conf_.size());
    }
    lengths_.assign(count, 0);
    const sched::batch_length_input in{offered_, conf_, offsets_};
    if (!length_.choose(in, lengths_).ok())
      std::fill(lengths_.begin(), lengths_.end(), index_t{0}); // plain decoding this step
    for (std::size_t i = 0; i < count; ++i)
      decoding_[i]->k = std::clamp<index_t>(lengths_[i], 0, decoding_[i]->offered);
  }

  // 3b. The row budget: decoding requests in admission order while their rows fit; the newer
  // ones sit this step out (their state is untouched, so they draft again next step). Only a
  // request alone over the budget is trimmed.
  void fit_budget() {
    index_t rows = 0;
    for (std::size_t i = 0; i < decoding_.size(); ++i) {
      request* r = decoding_[i];
      if (i == 0 && r->k + 1 > config_.max_step_tokens)
        r->k = config_.max_step_tokens - 1;
      if (rows + r->k + 1 > config_.max_step_tokens) {
        decoding_.resize(i);
        break;
      }
      rows += r->k + 1;
    }
  }

  // 4. Reserves every decoding request's rows. While the pool is full the newest open request is
  // preempted (possibly this one: it resumes later with the same output); a request alone in the
  // pool first drops its drafts, then fails with errc::overflow (nothing could ever free room).
  void reserve_decoding() {
    for (std::size_t i = 0; i < decoding_.size();) {
      request* r = decoding_[i];
      const index_t need = static_cast<index_t>(r->context.size()) + r->k;
      const status s = cache_->reserve(r->id, need);
      if (s.ok()) {
        ++i;
        continue;
      }
      if (s.code == errc::overflow && active_.size() == 1 && r->k > 0) {
        r->k = 0;
        continue;
      }
      if (s.code != errc::overflow || active_.size() == 1) {
        fail(*r, s);
        decoding_.erase(decoding_.begin() + static_cast<std::ptrdiff_t>(i));
        retire_failed();
        continue;
      }
      const request* victim = active_.back().get();
      preempt_at(std::prev(active_.end()));
      const auto d = std::find(decoding_.begin(), decoding_.end(), victim);
      if (d != decoding_.end())
        decoding_.erase(d); // at or after i: the newest request comes last
    }
  }

  // 5. Prefill chunks for the requests still prefilling, in admission order.
  void plan_prefill() {
    index_t rows = 0;
    for (const request* r : decoding_)
      rows += r->k + 1;
    prefilling_.clear();
    for (std::size_t i = 0; i < active_.size(); ++i) {
      request& r = *active_[i];
      r.chunk = 0;
      const index_t target = static_cast<index_t>(r.context.size()) - 1;
      if (r.prefilled >= target || r.failed)
        continue;
      const index_t left = config_.max_step_tokens - rows;
      if (left <= 0)
        break;
      const index_t chunk = std::min<index_t>({r.cfg.prefill_chunk, target - r.prefilled, left});
      if (const status s = cache_->reserve(r.id, r.prefilled + chunk); !s.ok()) {
        if (s.code != errc::overflow || active_.size() == 1) {
          fail(r, s); // alone in the pool and still no room: it can never fit
          continue;
        }
        // The pool is full: the newest request gives its blocks back (possibly r itself), so the
        // older requests always progress; the rest of the step's prefill waits.
        const request* victim = active_.back().get();
        preempt_at(std::prev(active_.end()));
        std::erase(decoding_, victim);
        break;
      }
      r.chunk = chunk;
      rows += chunk;
      prefilling_.push_back(&r);
    }
  }

  // 6a. The ragged call: decoding requests first (the verify layout), then prefill chunks.
  void build_call(index_t vocab) {
    calls_.clear();
    step_tokens_.clear();
    index_t rows = 0;
    for (request* r : decoding_) {
      r->row = rows;
      rows += r->k + 1;
    }
    for (request* r : prefilling_) {
      r->row = rows;
      rows += r->chunk;
    }
    step_tokens_.resize(static_cast<std::size_t>(rows));
    for (request* r : decoding_) {
      const index_t n = static_cast<index_t>(r->context.size());
      token_id* t = step_tokens_.data() + r->row;
      t[0] = r->context.back();
      std::copy_n(r->draft_tokens.data(), r->k, t + 1);
      calls_.push_back(score_request{r->id, {t, r->k + 1}, n - 1});
    }
    for (request* r : prefilling_) {
      token_id* t = step_tokens_.data() + r->row;
      std::copy_n(r->context.data() + r->prefilled, r->chunk, t);
      calls_.push_back(score_request{r->id, {t, r->chunk}, r->prefilled});
    }
    last_.rows = rows;
    last_.decoding = static_cast<index_t>(decoding_.size());
    last_.prefilling = static_cast<index_t>(prefilling_.size());
    const std::size_t need = static_cast<std::size_t>(rows) * static_cast<std::size_t>(vocab);
    if (logits_.size() < need)
      logits_.resize(need);
  }

  // 6b. The target call.
  status score(index_t vocab) {
    const index_t rows = last_.rows;
    const matrix_view<float> view{logits_.data(), rows, vocab, vocab};
    if constexpr (feature_proposer<Proposer>) {
      // Every request's proposer asks for the same layers (one proposer type, one layer list
      // taken from the first open request).
      const row_view<const std::int32_t> layers = active_.front()->proposer->feature_layers();
      feature_cols_ = layers.size * static_cast<index_t>(target_->hidden_size());
      features_.resize(static_cast<std::size_t>(rows * feature_cols_));
      const feature_request f{layers, {features_.data(), rows, feature_cols_, feature_cols_}};
      return target_->score_batch_features(std::span<const score_request>(calls_), view, f);
    } else {
      return target_->score_batch(std::span<const score_request>(calls_), view);
    }
  }

  // 7-8. verify_chain_batch over the decoding requests, then per request: rollback, observe,
  // emit.
  void verify_and_commit(index_t vocab) {
    const std::size_t count = decoding_.size();
    if (count == 0)
      return;
    draft_offsets_.assign(count + 1, 0);
    ids_.resize(count);
    seeds_.resize(count);
    positions_.resize(count);
    params_.resize(count);
    accepted_.assign(count, 0);
    next_.assign(count, 0);
    row_status_.assign(count, row_status{});
    verify_tokens_.clear();
    for (std::size_t i = 0; i < count; ++i) {
      const request* r = decoding_[i];
      draft_offsets_[i + 1] = draft_offsets_[i] + r->k;
      ids_[i] = r->id;
      seeds_[i] = r->cfg.seed;
      positions_[i] = static_cast<index_t>(r->context.size());
      params_[i] = r->cfg.params;
      verify_tokens_.insert(
          verify_tokens_.end(), r->draft_tokens.begin(), r->draft_tokens.begin() + r->k);
    }
    const index_t drafts = draft_offsets_[count];
    verify::chain_batch<float, float> b{};
    b.batch = static_cast<index_t>(count);
    b.draft_offsets = draft_offsets_.data();
    b.tokens = verify_tokens_.data();
    b.target = {logits_.data(), drafts + b.batch, vocab, vocab};
    if constexpr (dense_draft_proposer<Proposer>) {
      draft_rows_.resize(static_cast<std::size_t>(std::max<index_t>(drafts, 1) * vocab));
      for (std::size_t i = 0; i < count; ++i) {
        const request* r = decoding_[i];
        std::copy_n(r->draft_rows.data(),
                    static_cast<std::size_t>(r->k * vocab),
                    draft_rows_.data() + draft_offsets_[i] * vocab);
      }
      b.draft = {draft_rows_.data(), drafts, vocab, vocab};
      b.draft_kind = distribution_kind::logits;
    }
    b.target_kind = distribution_kind::logits;
    b.params = params_.data();
    b.params_stride = 1;
    b.request_ids = ids_.data();
    b.positions = positions_.data();
    b.seeds = seeds_.data();
    const verify::chain_batch_output o{accepted_.data(), next_.data(), row_status_.data()};
    const status vs = cpu::verify_chain_batch(policy_, b, o);
    const bool shape_error =
        !vs.ok() && std::all_of(row_status_.begin(), row_status_.end(), [](const row_status& s) {
          return s.ok();
        });
    for (std::size_t i = 0; i < count; ++i) {
      request& r = *decoding_[i];
      if (shape_error) {
        fail(r, vs);
        continue;
      }
      if (!row_status_[i].ok()) {
        fail(r, status{row_status_[i].to_errc()});
        continue;
      }
      commit(r, accepted_[i], next_[i]);
    }
  }

  // One request's round outcome: rollback, statistics, proposer, emission.
  void commit(request& r, std::int32_t accepted, token_id next) {
    const index_t n = static_cast<index_t>(r.context.size());
    if (const status s = cache_->rollback(r.id, n + accepted); !s.ok()) {
      fail(r, s);
      return;
    }
    const auto k = static_cast<std::int32_t>(r.k);
    r.out.stats.record_tree_step(k, k, accepted, accepted < k);
    last_.drafted += k;
    last_.accepted += accepted;
    if (r.cfg.on_step)
      r.cfg.on_step(step_record{n - 1, k, accepted, static_cast<std::int32_t>(r.offered)});
    // The committed tokens: the accepted drafts then the emitted token.
    committed_.assign(r.draft_tokens.begin(), r.draft_tokens.begin() + accepted);
    committed_.push_back(next);
    if constexpr (proposer_lifecycle<Proposer>) {
      const auto t0 = clock::now();
      round_outcome oc{};
      oc.request_id = r.id;
      oc.position = n;
      oc.drafted = k;
      oc.accepted = accepted;
      oc.next = next;
      oc.tokens = {committed_.data(), static_cast<index_t>(committed_.size())};
      if (feature_cols_ > 0)
        oc.features = {
            features_.data() + r.row * feature_cols_, accepted + 1, feature_cols_, feature_cols_};
      const status s = r.proposer->observe(oc);
      last_.seconds_draft += detail::seconds(t0, clock::now());
      if (!s.ok()) {
        fail(r, s);
        return;
      }
    }
    r.prefilled = n + accepted; // the anchor and the accepted drafts are in the cache
    for (const token_id t : committed_) {
      if (r.out.tokens.empty())
        r.first_token = clock::now();
      ++last_.emitted;
      if (detail::emit(t, r.context, r.out, r.cfg, r.stop)) {
        done(r, r.out.reason);
        return;
      }
      if (static_cast<std::int64_t>(r.out.tokens.size()) >= r.cfg.max_new_tokens) {
        done(r, stop_reason::budget);
        return;
      }
    }
    if (static_cast<index_t>(r.context.size()) > cache_->capacity())
      done(r, stop_reason::context_full);
  }

  // A normal finish (removed from active_ by retire_failed, which also retires these).
  void done(request& r, stop_reason reason) {
    r.failed = true; // leaves active_ at the end of the step
    finish(r, reason, status{});
  }

  // Prefill chunks scored: advance, and hand a prompt_feature_proposer its features.
  void advance_prefills() {
    for (request* r : prefilling_) {
      if constexpr (prompt_feature_proposer<Proposer> && batch_feature_target_model<Target>) {
        const status s = r->proposer->observe_prompt(
            r->id,
            r->prefilled,
            matrix_view<const float>{
                features_.data() + r->row * feature_cols_, r->chunk, feature_cols_, feature_cols_});
        if (!s.ok()) {
          fail(*r, s);
          continue;
        }
      }
      r->prefilled += r->chunk;
    }
  }

  Target* target_;
  Cache* cache_;
  proposer_factory factory_;
  Policy policy_;
  Length length_;
  batch_decoder_config config_;
  std::vector<std::unique_ptr<request>> active_; // admission order
  std::deque<std::unique_ptr<request>> waiting_;
  std::vector<batch_finished> finished_;
  batch_step_stats last_{};
  // per-step scratch
  std::vector<request*> decoding_, prefilling_;
  std::vector<index_t> offered_, offsets_, lengths_;
  std::vector<double> conf_;
  std::vector<score_request> calls_;
  std::vector<token_id> step_tokens_, verify_tokens_, next_, committed_;
  std::vector<float> logits_, features_, draft_rows_;
  index_t feature_cols_ = 0;
  std::vector<index_t> draft_offsets_, positions_;
  std::vector<std::uint64_t> ids_, seeds_;
  std::vector<sampling::sampling_params> params_;
  std::vector<std::int32_t> accepted_;
  std::vector<row_status> row_status_;
};

/// @brief Deduces the proposer type from a factory callable returning `std::unique_ptr<P>`.
template <class Target, class Cache, class Factory, class Policy, class Length>
  requires std::invocable<Factory&, std::uint64_t>
  batch_decoder(Target&, Cache&, Factory, Policy, Length, batch_decoder_config = {})
->batch_decoder<Target,
                Cache,
                typename std::invoke_result_t<Factory&, std::uint64_t>::element_type,
                Policy,
                Length>;

} // namespace decode

SPECDEC_NAMESPACE_END
