// SPDX-License-Identifier: Apache-2.0
#pragma once
// An allocation cap for loader tests: while a specdec_test::allocation_cap is alive, any single
// operator new request above its limit is refused (std::bad_alloc, nothing allocated) and
// recorded. A loader that sizes a buffer from a hostile header before checking it then fails the
// test at once (an exception escapes, or largest_refused() is non-zero) instead of touching
// gigabytes of memory.
//
// This header REPLACES the global operator new and delete (malloc/free underneath, which
// AddressSanitizer still tracks): include it in exactly one translation unit of a test binary.

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace specdec_test {

/// The current cap in bytes (0: none) and the largest request refused under it.
inline std::atomic<std::size_t> allocation_limit{0};
inline std::atomic<std::size_t> allocation_refused{0};

/// Refuses single allocations above `bytes` while alive (scopes do not nest).
class allocation_cap {
public:
  explicit allocation_cap(std::size_t bytes) noexcept {
    allocation_refused = 0;
    allocation_limit = bytes;
  }
  ~allocation_cap() {
    allocation_limit = 0;
  }
  allocation_cap(const allocation_cap&) = delete;
  allocation_cap& operator=(const allocation_cap&) = delete;
  /// The largest request refused so far in this scope (0: none).
  [[nodiscard]] std::size_t largest_refused() const noexcept {
    return allocation_refused;
  }
};

/// Throws std::bad_alloc (and records the size) when `n` is above the current cap.
inline void check_allocation(std::size_t n) {
  const std::size_t cap = allocation_limit;
  if (cap != 0 && n > cap) {
    std::size_t seen = allocation_refused;
    while (n > seen && !allocation_refused.compare_exchange_weak(seen, n)) {
    }
    throw std::bad_alloc{};
  }
}

/// free() out of line, so that g++ does not inline it into delete expressions and then warn
/// (-Wmismatched-new-delete) about memory from operator new reaching free().
[[gnu::noinline]] inline void release(void* p) noexcept {
  std::free(p);
}

} // namespace specdec_test

// Every replaceable form (AddressSanitizer interposes each one, so none may be left to it).
void* operator new(std::size_t n) {
  specdec_test::check_allocation(n);
  if (void* p = std::malloc(n == 0 ? 1 : n))
    return p;
  throw std::bad_alloc{};
}

void* operator new(std::size_t n, std::align_val_t al) {
  specdec_test::check_allocation(n);
  const auto a = static_cast<std::size_t>(al);
  const std::size_t rounded = (n + a - 1) / a * a; // aligned_alloc wants a multiple of a
  if (void* p = std::aligned_alloc(a, rounded == 0 ? a : rounded))
    return p;
  throw std::bad_alloc{};
}

void* operator new[](std::size_t n) {
  return ::operator new(n);
}

void* operator new[](std::size_t n, std::align_val_t al) {
  return ::operator new(n, al);
}

void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return ::operator new(n);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return ::operator new(n, std::nothrow);
}

void* operator new(std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  try {
    return ::operator new(n, al);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void* operator new[](std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  return ::operator new(n, al, std::nothrow);
}

void operator delete(void* p) noexcept {
  specdec_test::release(p);
}

void operator delete[](void* p) noexcept {
  specdec_test::release(p);
}

void operator delete(void* p, std::size_t) noexcept {
  specdec_test::release(p);
}

void operator delete[](void* p, std::size_t) noexcept {
  specdec_test::release(p);
}

void operator delete(void* p, const std::nothrow_t&) noexcept {
  specdec_test::release(p);
}

void operator delete[](void* p, const std::nothrow_t&) noexcept {
  specdec_test::release(p);
}

void operator delete(void* p, std::align_val_t) noexcept {
  specdec_test::release(p);
}

void operator delete[](void* p, std::align_val_t) noexcept {
  specdec_test::release(p);
}

void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  specdec_test::release(p);
}

void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  specdec_test::release(p);
}

void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  specdec_test::release(p);
}

void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  specdec_test::release(p);
}
