// SPDX-License-Identifier: Apache-2.0
// Status codes and per-row flags.

#include <specdec/core/status.hpp>

#include <catch2/catch.hpp>

#include <string>

using namespace specdec;

TEST_CASE("every error code has a distinct message", "[core][status]") {
  std::string prev;
  for (int c = 0; c <= static_cast<int>(errc::malformed_tree); ++c) {
    const std::string m = message(static_cast<errc>(c));
    CHECK(!m.empty());
    CHECK(m != prev);
    prev = m;
  }
  CHECK(status{}.ok());
  CHECK_FALSE(status{errc::invalid_top_p}.ok());
  CHECK(std::string(status{errc::invalid_top_p}.message()) == "top-p must be in (0, 1]");
}

TEST_CASE("row_status maps flags to error codes; informational flags stay ok", "[core][status]") {
  row_status s;
  CHECK(s.ok());
  s.set(row_status::residual_fallback);
  CHECK(s.ok());
  CHECK(s.to_errc() == errc::ok);
  s.set(row_status::zero_draft_probability);
  CHECK_FALSE(s.ok());
  CHECK(s.to_errc() == errc::zero_draft_probability);
  s.set(row_status::target_invalid);
  CHECK(s.to_errc() == errc::invalid_value);
}
