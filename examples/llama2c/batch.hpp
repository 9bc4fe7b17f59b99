// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief `llama2c::batch_model`: the llama2.c backend for continuous batching. Many sequences,
///        each in its own preallocated KV cache, are scored together by score_batch(), split over
///        a persistent thread pool; it models specdec::batch_feature_target_model and
///        specdec::kv::batch_kv_cache.
///
/// **Batch invariance (bitwise).** A request's logits and features are bitwise those of scoring
/// the same chain alone with model::score() / model::score_features() after the same committed
/// history, whatever the other requests of the call, their order and the number of threads. Each
/// group of requests is scored by model::score_rows(), whose rows are batch-invariant across
/// sequences (model.hpp's file comment); the grouping only decides which thread computes which
/// rows, never how a row is computed.

#include <specdec/config.hpp>

#include <specdec/core/concepts.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/kv/concepts.hpp>
#include <specdec/kv/contiguous_cache.hpp>

#include "llama2c/model.hpp"
#include "llama2c/thread_pool.hpp"
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llama2c {

/// @brief Several sequences of one llama2.c model, scored in batches on several threads.
///
/// init() takes a loaded model (whose packed weights it shares, so the model may be destroyed
/// afterwards), a thread count and the most sequences open at once. It makes `threads` workers
/// (model::share_weights(): shared weights, scratch of their own, no KV cache) and
/// `max_sequences` KV caches of capacity seq_len() each (model::allocate_cache()), all allocated
/// once; a request id names an open slot.
///
/// **Cache (specdec::kv::batch_kv_cache).** open() takes a free slot (errc::invalid_argument for an
/// id already open, errc::overflow when every slot is taken); close() frees it; rollback() keeps
/// a prefix; reserve() only checks `n <= capacity()` (errc::overflow otherwise), since every slot
/// already holds capacity() positions; every call on an id that is not open fails with
/// errc::invalid_argument. A failed call changes nothing.
///
/// **Scoring (specdec::batch_feature_target_model).** score_batch() validates every request
/// first, then splits the requests into at most threads() contiguous groups of about equal row
/// counts (a request's rows are never split: they attend to the keys and values its earlier rows
/// write in the same layer) and scores each group with one worker's model::score_rows() on its
/// own thread of the pool (the caller's thread is one of them). Rows land directly in the
/// caller's logits and feature rows. Batch invariance: see the file comment.
///
/// **Thread safety.** Not safe to use from several threads at once: one thread calls the members;
/// score_batch() uses the pool internally and returns when every group is done. Workers touch
/// only their own scratch and the caches of their own requests (distinct ids: distinct caches).
///
/// **Complexity.** score_batch() costs about `1 / min(threads, groups)` of one forward pass over
/// all N rows (`O(N * parameters + n_layers * dim * sum of row positions)`) plus one wake-up and
/// one join of the pool and O(R) for R requests; it allocates only when a worker's scratch grows
/// past its largest group so far. open(), close(), rollback(), reserve() and length() are O(1)
/// on average.
class batch_model {
public:
  /// @brief An empty batch model (every call fails until init()).
  batch_model() = default;

  /// @brief Sets up the workers, the pool and `max_sequences` caches; closes every sequence.
  /// @param[in] m a loaded model (its weights are shared, not copied; its cache is not used)
  /// @param[in] threads threads that score a batch, the calling thread included, >= 1
  /// @param[in] max_sequences the most sequences open at once, >= 1
  /// @return errc::invalid_argument for an unloaded model, threads < 1 or max_sequences < 1;
  ///         errc::unsupported when memory or a thread cannot be had. On error nothing changes.
  /// @par Complexity
  /// O(max_sequences * n_layers * kv_dim * seq_len) (zero-filled caches) plus starting
  /// `threads - 1` threads.
  [[nodiscard]] specdec::status init(const model& m, int threads, specdec::index_t max_sequences) {
    using specdec::errc;
    if (!m.loaded() || threads < 1 || max_sequences < 1)
      return specdec::status{errc::invalid_argument};
    auto build = [&]() -> specdec::status {
      batch_model b;
      b.workers_.reserve(static_cast<std::size_t>(threads));
      for (int i = 0; i < threads; ++i)
        b.workers_.push_back(m.share_weights());
      b.caches_.resize(static_cast<std::size_t>(max_sequences));
      for (specdec::kv::contiguous_cache<float>& c : b.caches_)
        if (const specdec::status s = m.allocate_cache(c); !s)
          return s;
      b.free_.reserve(static_cast<std::size_t>(max_sequences));
      for (specdec::index_t s = max_sequences; s-- > 0;)
        b.free_.push_back(s); // slot 0 is taken first
      b.ids_.reserve(static_cast<std::size_t>(max_sequences));
      b.stamp_.assign(static_cast<std::size_t>(max_sequences), 0);
      b.ptrs_.assign(static_cast<std::size_t>(max_sequences), nullptr);
      b.groups_.reserve(static_cast<std::size_t>(threads));
      b.results_.assign(static_cast<std::size_t>(threads), specdec::status{});
      b.vocab_ = m.vocab_size();
      b.layers_ = m.num_layers();
      b.dim_ = m.hidden_size();
      b.seq_len_ = m.seq_len();
      b.pool_ = std::make_unique<thread_pool>(threads);
      *this = std::move(b);
      return specdec::status{};
    };
#if defined(__cpp_exceptions)
    try {
      return build();
    } catch (const std::bad_alloc&) {
      return specdec::status{errc::unsupported};
    } catch (const std::system_error&) {
      return specdec::status{errc::unsupported};
    }
#else
    return build();
#endif
  }

  // ----- batch_kv_cache ---------------------------------------------------------------------

  /// @brief Opens an empty sequence for `seq` in a free slot.
  /// @param[in] seq the request id
  /// @return errc::invalid_argument when `seq` is open already (or before init()),
  ///         errc::overflow when every slot is taken
  /// @par Complexity
  /// O(1) on average; may throw std::bad_alloc (the id map), changing nothing.
  [[nodiscard]] specdec::status open(std::uint64_t seq) {
    using specdec::errc;
    if (caches_.empty() || ids_.contains(seq))
      return specdec::status{errc::invalid_argument};
    if (free_.empty())
      return specdec::status{errc::overflow};
    ids_.emplace(seq, free_.back());
    free_.pop_back();
    return specdec::status{};
  }
  /// @brief Closes `seq`: its slot (emptied) goes back to the free slots.
  /// @param[in] seq an open request
  /// @return errc::invalid_argument when it is not open
  /// @par Complexity
  /// O(1) on average.
  [[nodiscard]] specdec::status close(std::uint64_t seq) {
    const auto it = ids_.find(seq);
    if (it == ids_.end())
      return specdec::status{specdec::errc::invalid_argument};
    caches_[static_cast<std::size_t>(it->second)].clear();
    free_.push_back(it->second); // within the capacity reserved by init(): no allocation
    ids_.erase(it);
    return specdec::status{};
  }
  /// @brief Keeps positions [0, n) of `seq`, drops the rest.
  /// @param[in] seq an open request
  /// @param[in] n positions to keep, 0 <= n <= length(seq)
  /// @return errc::invalid_argument for a request that is not open or a bad n
  /// @par Complexity
  /// O(1) on average (O(dropped positions) with SPECDEC_ENABLE_EXTRA_CHECKS' poisoning).
  [[nodiscard]] specdec::status rollback(std::uint64_t seq, specdec::index_t n) {
    specdec::kv::contiguous_cache<float>* c = find(seq);
    if (c == nullptr)
      return specdec::status{specdec::errc::invalid_argument};
    return c->rollback(n);
  }
  /// @brief Checks that `seq` may hold n positions; every slot already holds capacity() of them.
  /// @param[in] seq an open request
  /// @param[in] n positions, >= 0
  /// @return errc::invalid_argument for a request that is not open or n < 0; errc::overflow when
  ///         n > capacity()
  /// @par Complexity
  /// O(1) on average.
  [[nodiscard]] specdec::status reserve(std::uint64_t seq, specdec::index_t n) const {
    using specdec::errc;
    if (find(seq) == nullptr || n < 0)
      return specdec::status{errc::invalid_argument};
    if (n > capacity())
      return specdec::status{errc::overflow};
    return specdec::status{};
  }
  /// @brief Committed positions of `seq` (0 when it is not open). O(1) on average.
  /// @param[in] seq the request id
  /// @return its length
  [[nodiscard]] specdec::index_t length(std::uint64_t seq) const noexcept {
    const specdec::kv::contiguous_cache<float>* c = find(seq);
    return c == nullptr ? 0 : c->length();
  }
  /// @brief Most positions one sequence may hold: seq_len(). O(1).
  /// @return the per-sequence capacity
  [[nodiscard]] specdec::index_t capacity() const noexcept {
    return seq_len_;
  }
  /// @brief True when `seq` is open. O(1) on average.
  /// @param[in] seq the request id
  /// @return whether it is open
  [[nodiscard]] bool contains(std::uint64_t seq) const noexcept {
    return ids_.contains(seq);
  }
  /// @brief Open sequences. O(1).
  /// @return their count
  [[nodiscard]] specdec::index_t open_sequences() const noexcept {
    return static_cast<specdec::index_t>(ids_.size());
  }
  /// @brief The most sequences open at once (init()'s max_sequences). O(1).
  /// @return the slot count
  [[nodiscard]] specdec::index_t max_sequences() const noexcept {
    return static_cast<specdec::index_t>(caches_.size());
  }

  // ----- batch_feature_target_model --------------------------------------------------------

  /// @brief Scores a ragged batch of chains, one per request (specdec::batch_target_model).
  ///
  /// Request i's token t sits at position `start + t` of sequence `request_id`, and its logit
  /// row is row `sum_{j<i} tokens_j.size + t` of `logits`. Requires every request_id open and
  /// distinct, else errc::invalid_argument; per request `0 <= start <= length(request_id)`, else
  /// errc::invalid_argument; a non-negative token count with data, else errc::invalid_argument;
  /// `start + tokens.size <= seq_len()`, else errc::overflow; every token in `[0, vocab_size())`,
  /// else errc::token_out_of_range; for N rows in all, `logits.rows >= N`, `logits.cols ==
  /// vocab_size()` and `logits.row_stride >= logits.cols`, else errc::shape_mismatch (null data
  /// with N > 0: errc::invalid_argument). Everything is checked before anything is scored: on
  /// error nothing changes. A request with no tokens changes nothing.
  ///
  /// On success each request's sequence has length `start + tokens.size` (a longer committed
  /// tail is dropped). Rows are bitwise batch-invariant (file comment).
  /// @param[in] requests the chains, in the order their rows are stacked
  /// @param[out] logits N rows of vocab_size() logits
  /// @return ok or the first error found, as above
  /// @par Complexity
  /// See the class comment.
  [[nodiscard]] specdec::status score_batch(std::span<const specdec::score_request> requests,
                                            specdec::matrix_view<float> logits) {
    return run(requests, logits, nullptr);
  }

  /// @brief score_batch() that also returns the residual stream at the layers `f.layers` for
  ///        every row (specdec::batch_feature_target_model): feature row j belongs to logit row j,
  ///        as model::score_features() defines them.
  ///
  /// The logits are bitwise score_batch()'s, the features bitwise model::score_features()'s.
  /// Errors as in score_batch(), plus a layer outside [0, num_layers()] (errc::invalid_argument)
  /// and `f.out` with fewer than N rows or `layers * hidden_size()` columns
  /// (errc::shape_mismatch); on error nothing changes. An empty `f.layers` is score_batch().
  /// @param[in] requests the chains, in the order their rows are stacked
  /// @param[out] logits N rows of vocab_size() logits
  /// @param[in] f the layers and the feature rows
  /// @return ok or the first error found
  /// @par Complexity
  /// As score_batch(), plus O(N * layers * dim) copies.
  [[nodiscard]] specdec::status
  score_batch_features(std::span<const specdec::score_request> requests,
                       specdec::matrix_view<float> logits,
                       const specdec::feature_request& f) {
    return run(requests, logits, &f);
  }

  /// @brief Vocabulary size (the width of a logit row); 0 before init(). O(1).
  /// @return the vocabulary size
  [[nodiscard]] specdec::index_t vocab_size() const noexcept {
    return vocab_;
  }
  /// @brief Transformer layers (feature layers run over [0, num_layers()]). O(1).
  /// @return the layer count
  [[nodiscard]] int num_layers() const noexcept {
    return layers_;
  }
  /// @brief Model width (the length of one feature layer of a row). O(1).
  /// @return the hidden size
  [[nodiscard]] specdec::index_t hidden_size() const noexcept {
    return dim_;
  }
  /// @brief Maximum context of one sequence: positions 0 .. seq_len()-1. O(1).
  /// @return the context length
  [[nodiscard]] specdec::index_t seq_len() const noexcept {
    return seq_len_;
  }
  /// @brief Threads that score a batch, the caller included (0 before init()). O(1).
  /// @return the thread count
  [[nodiscard]] int threads() const noexcept {
    return static_cast<int>(workers_.size());
  }

private:
  using index_t = specdec::index_t;
  using cache_t = specdec::kv::contiguous_cache<float>;

  /// A contiguous run of requests scored by one worker.
  struct group {
    std::size_t begin, end; // requests [begin, end)
    index_t row, rows;      // their rows [row, row + rows)
  };

  [[nodiscard]] cache_t* find(std::uint64_t seq) noexcept {
    const auto it = ids_.find(seq);
    return it == ids_.end() ? nullptr : &caches_[static_cast<std::size_t>(it->second)];
  }
  [[nodiscard]] const cache_t* find(std::uint64_t seq) const noexcept {
    const auto it = ids_.find(seq);
    return it == ids_.end() ? nullptr : &caches_[static_cast<std::size_t>(it->second)];
  }

  /// Validates everything, plans the groups, then scores them on the pool.
  [[nodiscard]] specdec::status run(std::span<const specdec::score_request> requests,
                                    specdec::matrix_view<float> logits,
                                    const specdec::feature_request* f) {
    using specdec::errc;
    if (workers_.empty() || requests.size() > ids_.size())
      return specdec::status{errc::invalid_argument}; // some id is unknown or repeated
    ++stamp_now_;
    index_t N = 0;
    for (std::size_t i = 0; i < requests.size(); ++i) {
      const specdec::score_request& r = requests[i];
      const auto it = ids_.find(r.request_id);
      if (it == ids_.end())
        return specdec::status{errc::invalid_argument};
      const auto slot = static_cast<std::size_t>(it->second);
      if (stamp_[slot] == stamp_now_)
        return specdec::status{errc::invalid_argument}; // a repeated id
      stamp_[slot] = stamp_now_;
      cache_t* c = &caches_[slot];
      ptrs_[i] = c;
      const index_t T = r.tokens.size;
      if (r.start < 0 || r.start > c->length() || T < 0 || (T > 0 && r.tokens.data == nullptr))
        return specdec::status{errc::invalid_argument};
      if (T > seq_len_ - r.start)
        return specdec::status{errc::overflow};
      for (index_t t = 0; t < T; ++t)
        if (r.tokens[t] < 0 || r.tokens[t] >= vocab_)
          return specdec::status{errc::token_out_of_range};
      N += T;
    }
    const bool want_features = f != nullptr && f->layers.size != 0;
    if (f != nullptr) {
      if (f->layers.size < 0 || (f->layers.size > 0 && f->layers.data == nullptr))
        return specdec::status{errc::invalid_argument};
      for (index_t i = 0; i < f->layers.size; ++i)
        if (f->layers[i] < 0 || f->layers[i] > layers_)
          return specdec::status{errc::invalid_argument};
      if (want_features
          && (f->out.data == nullptr || f->out.rows < N || f->out.cols < f->layers.size * dim_
              || f->out.row_stride < f->out.cols))
        return specdec::status{errc::shape_mismatch};
    }
    if (N == 0)
      return specdec::status{};
    if (logits.data == nullptr)
      return specdec::status{errc::invalid_argument};
    if (logits.rows < N || logits.cols != vocab_ || logits.row_stride < logits.cols)
      return specdec::status{errc::shape_mismatch};

    plan(requests, N);
    // Grow the workers' scratch here, on the calling thread: the scoring itself then neither
    // allocates nor throws, so either every group is scored or (std::bad_alloc) none is.
    for (std::size_t g = 0; g < groups_.size(); ++g)
      workers_[g].reserve_scratch(groups_[g].rows);
    const std::span<cache_t* const> caches(ptrs_.data(), requests.size());
    pool_->run(static_cast<std::int64_t>(groups_.size()), [&](std::int64_t task) {
      const auto gi = static_cast<std::size_t>(task);
      const group& g = groups_[gi];
      const specdec::matrix_view<float> out{
          logits.data + g.row * logits.row_stride, g.rows, logits.cols, logits.row_stride};
      specdec::feature_request sub{};
      if (want_features)
        sub = specdec::feature_request{
            f->layers,
            {f->out.data + g.row * f->out.row_stride, g.rows, f->out.cols, f->out.row_stride}};
      results_[gi] = workers_[gi].score_rows(requests.subspan(g.begin, g.end - g.begin),
                                             caches.subspan(g.begin, g.end - g.begin),
                                             out,
                                             want_features ? &sub : nullptr);
    });
    for (std::size_t g = 0; g < groups_.size(); ++g)
      if (!results_[g]) // unreachable: everything was validated above
        return results_[g];
    return specdec::status{};
  }

  /// Splits the requests into at most threads() contiguous groups of about N / threads() rows:
  /// each cut is the request boundary nearest to its target; requests without tokens are left
  /// out of the count (they change nothing).
  void plan(std::span<const specdec::score_request> requests, index_t N) {
    groups_.clear();
    const auto G = static_cast<index_t>(workers_.size());
    const std::size_t R = requests.size();
    std::size_t b = 0;
    index_t done = 0;
    for (index_t g = 0; g < G && done < N; ++g) {
      const index_t target = g + 1 == G ? N : N * (g + 1) / G;
      std::size_t e = b;
      index_t rows = 0;
      while (e < R && done + rows + requests[e].tokens.size <= target)
        rows += requests[e++].tokens.size;
      if (e < R && done + rows < target
          && done + rows + requests[e].tokens.size - target < target - (done + rows))
        rows += requests[e++].tokens.size;
      if (rows > 0)
        groups_.push_back(group{b, e, done, rows});
      done += rows;
      b = e;
    }
  }

  std::vector<model> workers_;  // one per thread: shared weights, own scratch, no cache
  std::vector<cache_t> caches_; // one per slot, capacity seq_len
  std::vector<index_t> free_;   // free slots (a stack)
  std::unordered_map<std::uint64_t, index_t> ids_;
  std::unique_ptr<thread_pool> pool_;
  // per-call scratch (sized by init(): no allocation while scoring)
  std::vector<std::uint64_t> stamp_; // per slot: the call that last named it (repeat check)
  std::uint64_t stamp_now_ = 0;
  std::vector<cache_t*> ptrs_; // request i's cache
  std::vector<group> groups_;
  std::vector<specdec::status> results_;
  index_t vocab_ = 0, dim_ = 0, seq_len_ = 0;
  int layers_ = 0;
};

static_assert(specdec::batch_feature_target_model<batch_model>);
static_assert(specdec::kv::batch_kv_cache<batch_model>);

} // namespace llama2c
