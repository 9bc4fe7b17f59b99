// SPDX-License-Identifier: Apache-2.0
// The Catch2 main, compiled once (object library specdec.test.main) and linked into every test.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
