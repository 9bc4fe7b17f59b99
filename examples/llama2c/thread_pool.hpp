// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief A small persistent thread pool for the llama2.c backend: `n - 1` worker threads plus the
///        calling thread run the tasks of one run() call, with one wake-up and one join per call.
///
/// **Protocol.** run() publishes the job (a type-erased callable, the task count, a task counter)
/// and then bumps a generation number under the mutex and notifies every worker. Workers and the
/// caller take task indices from an atomic counter until it passes the task count; each worker
/// then decrements a "busy" counter, and the last one to finish wakes the caller, which returns
/// only when every worker is done with the job (so the callable, which lives in the caller's
/// frame, is never used after run() returns).
///
/// **Waiting.** An idle worker first spins for a bounded number of pause instructions (`spin`,
/// about a few to tens of microseconds), which catches the next job of a tight decode loop
/// without a futex round trip, and then sleeps on a condition variable; it never spins while the
/// pool stays idle. The caller waits for the workers the same way. The generation is read under
/// the mutex before sleeping (a predicate wait), so no wake-up is lost.
///
/// **Memory ordering.** The job fields are written before the release increment of the
/// generation, which workers read with acquire; each worker's writes happen before its acq_rel
/// decrement of the busy counter, which the caller reads with acquire. Everything a task writes is
/// therefore visible to the caller when run() returns.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace llama2c {

/// @brief A persistent pool of `size() - 1` worker threads that, with the calling thread, run the
///        tasks of one run() call in parallel.
///
/// **Thread safety.** run() must not be called from several threads at once, nor from inside a
/// task; the pool is neither copyable nor movable (workers hold its address). The destructor
/// stops and joins the workers; it must not run concurrently with run().
class thread_pool {
public:
  /// @brief Pause instructions an idle thread spins before it sleeps (the default of `spin`).
  static constexpr int default_spin = 2048;

  /// @brief Starts `threads - 1` workers (none for `threads <= 1`).
  /// @param[in] threads the threads that run a job, the caller included (values below 1 count as
  ///            1)
  /// @param[in] spin pause instructions an idle thread spins before sleeping (0: sleep at once)
  /// @par Complexity
  /// O(threads); may throw std::system_error (no thread could be started; the workers already
  /// started are stopped and joined first) or std::bad_alloc.
  explicit thread_pool(int threads, int spin = default_spin)
      : spin_(spin < 0 ? 0 : spin) {
    const int n = threads < 1 ? 0 : threads - 1;
    workers_.reserve(static_cast<std::size_t>(n));
#if defined(__cpp_exceptions)
    try {
#endif
      for (int i = 0; i < n; ++i)
        workers_.emplace_back([this] { work(); });
#if defined(__cpp_exceptions)
    } catch (...) {
      stop();
      throw;
    }
#endif
  }

  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  /// @brief Stops and joins the workers. O(threads).
  ~thread_pool() {
    stop();
  }

  /// @brief Threads that run a job, the caller included. O(1).
  [[nodiscard]] int size() const noexcept {
    return static_cast<int>(workers_.size()) + 1;
  }

  /// @brief Runs `fn(i)` for every i in `[0, n_tasks)`, spread over the workers and the calling
  ///        thread; returns when every task is done.
  ///
  /// Which thread runs which task is not specified (tasks are taken from a shared counter in
  /// increasing order); a task must not depend on it. With one task or no workers everything runs
  /// on the calling thread, with no synchronisation. An exception escaping a task is caught and the
  /// first one is rethrown here once every task has finished (the remaining tasks still run).
  /// @tparam F a callable taking an `std::int64_t` task index
  /// @param[in] n_tasks number of tasks (nothing happens for n_tasks <= 0)
  /// @param[in] fn the task body
  /// @par Complexity
  /// The tasks' own time plus one wake-up of every worker and one join.
  template <class F>
  void run(std::int64_t n_tasks, F&& fn) {
    if (n_tasks <= 0)
      return;
    if (workers_.empty() || n_tasks == 1) {
      for (std::int64_t i = 0; i < n_tasks; ++i)
        fn(i);
      return;
    }
    using fn_t = std::remove_reference_t<F>;
    call_ = [](void* ctx, std::int64_t i) { (*static_cast<fn_t*>(ctx))(i); };
    ctx_ = const_cast<void*>(static_cast<const void*>(&fn));
    n_tasks_ = n_tasks;
    error_ = nullptr;
    next_.store(0, std::memory_order_relaxed);
    busy_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    drain();
    // Join: spin briefly, then sleep until the last worker reports.
    for (int i = 0; i < spin_ && busy_.load(std::memory_order_acquire) != 0; ++i)
      pause();
    if (busy_.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [this] { return busy_.load(std::memory_order_acquire) == 0; });
    }
    call_ = nullptr;
    ctx_ = nullptr;
#if defined(__cpp_exceptions)
    if (error_ != nullptr) {
      std::exception_ptr e = std::move(error_);
      error_ = nullptr;
      std::rethrow_exception(e);
    }
#endif
  }

private:
  /// One spin-wait step (a pause hint where there is one).
  static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
  }

  /// Runs tasks of the current job until none is left.
  void drain() noexcept {
    for (;;) {
      const std::int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= n_tasks_)
        return;
#if defined(__cpp_exceptions)
      try {
        call_(ctx_, i);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(mutex_);
        if (error_ == nullptr)
          error_ = std::current_exception();
      }
#else
      call_(ctx_, i);
#endif
    }
  }

  /// A worker's loop: wait for a new generation, drain its tasks, report, repeat.
  void work() noexcept {
    std::uint64_t seen = 0;
    for (;;) {
      std::uint64_t g = generation_.load(std::memory_order_acquire);
      for (int i = 0; i < spin_ && g == seen; ++i) {
        pause();
        g = generation_.load(std::memory_order_acquire);
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        g = generation_.load(std::memory_order_acquire);
      }
      seen = g;
      if (stop_)
        return;
      drain();
      if (busy_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        // The lock orders this notification after the caller's predicate check, so it cannot be
        // lost between that check and the caller's sleep.
        const std::lock_guard<std::mutex> lock(mutex_);
        done_.notify_one();
      }
    }
  }

  /// Tells the workers to exit and joins them.
  void stop() noexcept {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (std::thread& t : workers_)
      if (t.joinable())
        t.join();
    workers_.clear();
  }

  int spin_ = 0;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_; // workers: a new generation
  std::condition_variable done_; // caller: busy_ reached 0
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<std::int64_t> next_{0};
  std::atomic<int> busy_{0};
  // The job, written by run() before the generation is bumped.
  void (*call_)(void*, std::int64_t) = nullptr;
  void* ctx_ = nullptr;
  std::int64_t n_tasks_ = 0;
  std::exception_ptr error_; // first exception of the job (guarded by mutex_)
  bool stop_ = false;        // written under mutex_ before the last generation bump
};

} // namespace llama2c
