// SPDX-License-Identifier: Apache-2.0
#pragma once
// Whether this test binary is built with AddressSanitizer (GCC's __SANITIZE_ADDRESS__ or
// Clang's __has_feature(address_sanitizer)): sanitized builds run about 10x slower, so the
// randomised and statistical tests scale their trials down with by_build.

namespace specdec_test {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool address_sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool address_sanitized = true;
#else
inline constexpr bool address_sanitized = false;
#endif
#else
inline constexpr bool address_sanitized = false;
#endif

/// `release` in plain builds, `sanitized` under AddressSanitizer.
template <class T>
constexpr T by_build(T release, T sanitized) {
  return address_sanitized ? sanitized : release;
}

} // namespace specdec_test
