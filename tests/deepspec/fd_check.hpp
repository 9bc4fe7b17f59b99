// SPDX-License-Identifier: Apache-2.0
#pragma once
// Central finite differences in double precision, shared by the miniature DeepSpec gradient
// tests: a random linear functional of an operation's output is differentiated by the backward
// and by (f(x + h e_i) - f(x - h e_i)) / 2h for every input element i (h = 1e-6); the bound is a
// relative error of 1e-6 against max(1, |analytic|) per element.

#include <catch2/catch.hpp>

#include "deepspec/nn.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>

namespace deepspec_test {

using md = deepspec::mat<double>;
using deepspec::idx;

/// A seeded matrix of uniform values in [-scale, scale].
inline md random_mat(idx r, idx c, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  md m(r, c);
  for (idx i = 0; i < m.size(); ++i)
    m.data()[i] = scale * u(g);
  return m;
}

/// sum(a .* b).
inline double dot(const md& a, const md& b) {
  return (a.array() * b.array()).sum();
}

/// Checks the analytic gradient `ga` of f at x against central differences (x is perturbed in
/// place and restored).
inline void
check_grad(md& x, const md& ga, const std::function<double()>& f, const std::string& what) {
  INFO(what);
  REQUIRE(ga.rows() == x.rows());
  REQUIRE(ga.cols() == x.cols());
  const double h = 1e-6;
  double worst = 0;
  for (idx i = 0; i < x.size(); ++i) {
    const double x0 = x.data()[i];
    x.data()[i] = x0 + h;
    const double fp = f();
    x.data()[i] = x0 - h;
    const double fm = f();
    x.data()[i] = x0;
    const double num = (fp - fm) / (2 * h);
    worst = std::max(worst, std::abs(num - ga.data()[i]) / std::max(1.0, std::abs(ga.data()[i])));
  }
  CHECK(worst < 1e-6);
}

} // namespace deepspec_test
