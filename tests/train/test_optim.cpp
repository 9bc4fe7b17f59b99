// SPDX-License-Identifier: Apache-2.0
// AdamW, global-norm clipping and DeepSpec's warm-up + cosine schedule (train/optim.hpp): a
// double-precision reference of PyTorch's AdamW formula, clipping, bad input, the schedule's
// values, determinism, checkpoint restore and convergence on a quadratic.

#include <specdec/train/optim.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <random>
#include <span>
#include <vector>

using namespace specdec;

namespace {

using fvec = std::vector<float>;

constexpr double nan_v = std::numeric_limits<double>::quiet_NaN();
constexpr double inf = std::numeric_limits<double>::infinity();

// A uniform double in [0, 1) from 53 random bits (portable across standard libraries).
double u01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1p-53;
}

// PyTorch's AdamW (torch.optim.AdamW, single tensor) in double, with clip_grad_norm_'s factor
// (computed over every tensor) applied to the gradients first.
struct reference_adamw {
  double beta1, beta2, eps, wd, clip;
  std::vector<std::vector<double>> x, m, v;
  std::vector<bool> decay;
  int t = 0;

  void step(const std::vector<std::vector<double>>& grads, double lr) {
    ++t;
    double sq = 0;
    for (const auto& g : grads)
      for (const double e : g)
        sq += e * e;
    const double norm = std::sqrt(sq);
    const double c = clip > 0 ? std::fmin(1.0, clip / (norm + 1e-6)) : 1.0;
    for (std::size_t k = 0; k < x.size(); ++k)
      for (std::size_t i = 0; i < x[k].size(); ++i) {
        const double g = grads[k][i] * c;
        if (decay[k])
          x[k][i] *= 1.0 - lr * wd;
        m[k][i] = beta1 * m[k][i] + (1.0 - beta1) * g;
        v[k][i] = beta2 * v[k][i] + (1.0 - beta2) * g * g;
        const double bc1 = 1.0 - std::pow(beta1, t);
        const double bc2 = 1.0 - std::pow(beta2, t);
        const double denom = std::sqrt(v[k][i]) / std::sqrt(bc2) + eps;
        x[k][i] -= lr / bc1 * m[k][i] / denom;
      }
  }
};

// f(x) = 0.5 sum_i a_i (x_i - c_i)^2 and its gradient.
struct quadratic {
  std::vector<double> a, c;

  double loss(const fvec& x) const {
    double s = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double d = static_cast<double>(x[i]) - c[i];
      s += 0.5 * a[i] * d * d;
    }
    return s;
  }
  void grad(const fvec& x, fvec& g) const {
    for (std::size_t i = 0; i < x.size(); ++i)
      g[i] = static_cast<float>(a[i] * (static_cast<double>(x[i]) - c[i]));
  }
};

quadratic make_quadratic(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  quadratic q;
  for (std::size_t i = 0; i < n; ++i) {
    q.a.push_back(0.5 + 4.5 * u01(rng));
    q.c.push_back(4.0 * u01(rng) - 2.0);
  }
  return q;
}

// `steps` more AdamW steps on the quadratic, each at the schedule's rate for opt.steps() (so a
// restored optimizer continues where its checkpoint stopped).
void run_quadratic(train::adamw& opt,
                   const quadratic& q,
                   const train::lr_schedule& sched,
                   fvec& x,
                   fvec& g,
                   std::int64_t steps) {
  for (std::int64_t s = 0; s < steps; ++s) {
    opt.zero_grad();
    q.grad(x, g);
    const auto rep = opt.step(sched.at(opt.steps()));
    REQUIRE(rep.st.ok());
  }
}

} // namespace

// -------------------------------------------------------------------------------------------------
// the update against a reference of PyTorch's formula
// -------------------------------------------------------------------------------------------------

TEST_CASE("train: AdamW matches a double reference of PyTorch's AdamW over 3 steps",
          "[train][optim]") {
  const bool clip_on = GENERATE(false, true);
  CAPTURE(clip_on);
  std::mt19937_64 rng(21);
  train::adamw_config cfg;
  cfg.lr = 1e-2;
  cfg.beta1 = 0.9;
  cfg.beta2 = 0.999;
  cfg.eps = 1e-8;
  cfg.weight_decay = 0.05;
  cfg.clip_norm = clip_on ? 1.0 : 0.0; // the gradients' norm is about 4: clipping is active

  // Two tensors, the second without weight decay; fixed signs per element so that no moment
  // cancels to near zero (the comparison is relative).
  const std::size_t sizes[2] = {8, 5};
  std::vector<fvec> x(2), g(2);
  std::vector<std::vector<double>> sign(2);
  reference_adamw ref{
      cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, cfg.clip_norm, {}, {}, {}, {true, false}};
  train::adamw opt(cfg);
  for (std::size_t k = 0; k < 2; ++k) {
    for (std::size_t i = 0; i < sizes[k]; ++i) {
      const double s = u01(rng) < 0.5 ? -1.0 : 1.0;
      sign[k].push_back(s);
      x[k].push_back(static_cast<float>(s * (0.5 + u01(rng))));
    }
    g[k].assign(sizes[k], 0.0f);
    ref.x.emplace_back(x[k].begin(), x[k].end());
    ref.m.emplace_back(sizes[k], 0.0);
    ref.v.emplace_back(sizes[k], 0.0);
    REQUIRE(opt.add(x[k], g[k], k == 0).ok());
  }
  REQUIRE(opt.size() == 2);

  const double lrs[3] = {1e-2, 2e-2, 5e-3};
  for (int t = 0; t < 3; ++t) {
    std::vector<std::vector<double>> gd(2);
    for (std::size_t k = 0; k < 2; ++k)
      for (std::size_t i = 0; i < sizes[k]; ++i) {
        g[k][i] = static_cast<float>(sign[k][i] * (0.5 + 1.5 * u01(rng)));
        gd[k].push_back(static_cast<double>(g[k][i]));
      }
    const auto rep = opt.step(lrs[t]);
    REQUIRE(rep.st.ok());
    CHECK(rep.lr == lrs[t]);
    CHECK(opt.steps() == t + 1);
    ref.step(gd, lrs[t]);
    CHECK((rep.scale < 1.0) == clip_on);
    for (std::size_t k = 0; k < 2; ++k)
      for (std::size_t i = 0; i < sizes[k]; ++i) {
        CAPTURE(t, k, i);
        CHECK(static_cast<double>(x[k][i]) == Approx(ref.x[k][i]).epsilon(1e-6));
        CHECK(static_cast<double>(opt.first_moment(k)[i]) == Approx(ref.m[k][i]).epsilon(1e-6));
        CHECK(static_cast<double>(opt.second_moment(k)[i]) == Approx(ref.v[k][i]).epsilon(1e-6));
      }
  }
}

TEST_CASE("train: AdamW weight decay is decoupled and applies to decay tensors only",
          "[train][optim]") {
  train::adamw_config cfg;
  cfg.weight_decay = 0.1;
  train::adamw opt(cfg);
  fvec a{1.0f, -2.0f}, b{1.0f, -2.0f}, ga(2, 0.0f), gb(2, 0.0f);
  REQUIRE(opt.add(a, ga, true).ok());
  REQUIRE(opt.add(b, gb, false).ok());
  // Zero gradients: the Adam part is 0 / (0 + eps) = 0, only the decay moves a.
  const auto rep = opt.step(0.5);
  REQUIRE(rep.st.ok());
  CHECK(rep.grad_norm == 0.0);
  CHECK(rep.scale == 1.0);
  CHECK(a[0] == static_cast<float>(1.0 * (1.0 - 0.05)));
  CHECK(a[1] == static_cast<float>(-2.0 * (1.0 - 0.05)));
  CHECK(b == fvec{1.0f, -2.0f});
}

// -------------------------------------------------------------------------------------------------
// clipping
// -------------------------------------------------------------------------------------------------

TEST_CASE("train: clipping scales the gradients exactly when their norm exceeds clip_norm",
          "[train][optim]") {
  train::adamw_config on;
  on.clip_norm = 1.0;
  train::adamw_config off = on;
  off.clip_norm = 0.0;

  SECTION("norm 5 > 1: scale 1 / (5 + 1e-6)") {
    fvec x1{1.0f, 1.0f}, g1{3.0f, 4.0f}, x2 = x1, g2 = g1;
    train::adamw a(on), b(off);
    REQUIRE(a.add(x1, g1).ok());
    REQUIRE(b.add(x2, g2).ok());
    const auto ra = a.step(1e-2);
    const auto rb = b.step(1e-2);
    REQUIRE(ra.st.ok());
    REQUIRE(rb.st.ok());
    CHECK(ra.grad_norm == 5.0);
    CHECK(rb.grad_norm == 5.0);
    CHECK(ra.scale == 1.0 / (5.0 + 1e-6));
    CHECK(rb.scale == 1.0);
    for (std::size_t i = 0; i < 2; ++i) {
      const double gi = static_cast<double>(g1[i]);
      CHECK(static_cast<double>(a.first_moment(0)[i]) == Approx(0.1 * gi * ra.scale).epsilon(1e-7));
      CHECK(static_cast<double>(a.second_moment(0)[i])
            == Approx(0.001 * gi * gi * ra.scale * ra.scale).epsilon(1e-7));
      CHECK(static_cast<double>(b.first_moment(0)[i]) == Approx(0.1 * gi).epsilon(1e-7));
    }
    CHECK(g1 == fvec{3.0f, 4.0f}); // gradients are read, never written
  }
  SECTION("norm 0.5 < 1: no scaling, bitwise the unclipped run") {
    fvec x1{1.0f, -1.0f}, g1{0.3f, 0.4f}, x2 = x1, g2 = g1;
    train::adamw a(on), b(off);
    REQUIRE(a.add(x1, g1).ok());
    REQUIRE(b.add(x2, g2).ok());
    for (int t = 0; t < 3; ++t) {
      const auto ra = a.step(1e-2);
      REQUIRE(ra.st.ok());
      REQUIRE(b.step(1e-2).st.ok());
      CHECK(ra.scale == 1.0);
      CHECK(ra.grad_norm == Approx(0.5).epsilon(1e-7));
    }
    CHECK(x1 == x2);
    for (std::size_t i = 0; i < 2; ++i) {
      CHECK(a.first_moment(0)[i] == b.first_moment(0)[i]);
      CHECK(a.second_moment(0)[i] == b.second_moment(0)[i]);
    }
  }
}

// -------------------------------------------------------------------------------------------------
// bad input
// -------------------------------------------------------------------------------------------------

TEST_CASE("train: a NaN or infinite gradient is rejected and nothing changes",
          "[train][optim][bad]") {
  const float bad = GENERATE(std::numeric_limits<float>::quiet_NaN(),
                             std::numeric_limits<float>::infinity(),
                             -std::numeric_limits<float>::infinity());
  train::adamw opt;
  fvec x{1.0f, 2.0f, 3.0f}, g{0.1f, 0.2f, 0.3f};
  fvec y{-1.0f}, gy{0.5f};
  REQUIRE(opt.add(x, g).ok());
  REQUIRE(opt.add(y, gy).ok());
  REQUIRE(opt.step(1e-2).st.ok()); // non-zero moments
  const fvec x0 = x, y0 = y;
  const fvec m0(opt.first_moment(0).begin(), opt.first_moment(0).end());
  const fvec v0(opt.second_moment(0).begin(), opt.second_moment(0).end());

  gy[0] = bad;
  const auto rep = opt.step(1e-2);
  CHECK(rep.st.code == errc::invalid_value);
  CHECK(!std::isfinite(rep.grad_norm));
  CHECK(opt.steps() == 1);
  CHECK(x == x0);
  CHECK(y == y0);
  CHECK(fvec(opt.first_moment(0).begin(), opt.first_moment(0).end()) == m0);
  CHECK(fvec(opt.second_moment(0).begin(), opt.second_moment(0).end()) == v0);
  CHECK(g == fvec{0.1f, 0.2f, 0.3f}); // gradients left as they are
  CHECK((std::isnan(gy[0]) || std::isinf(gy[0])));
}

TEST_CASE("train: bad configurations, learning rates and registrations are reported",
          "[train][optim][bad]") {
  CHECK(train::adamw_config{}.validate().ok());
  const auto bad_cfg = [](auto edit) {
    train::adamw_config c;
    edit(c);
    return c.validate().code;
  };
  CHECK(bad_cfg([](auto& c) { c.lr = -1e-3; }) == errc::invalid_argument);
  CHECK(bad_cfg([](auto& c) { c.lr = nan_v; }) == errc::invalid_argument);
  CHECK(bad_cfg([](auto& c) { c.beta1 = 1.0; }) == errc::invalid_argument);
  CHECK(bad_cfg([](auto& c) { c.beta2 = -0.1; }) == errc::invalid_argument);
  CHECK(bad_cfg([](auto& c) { c.eps = 0.0; }) == errc::invalid_argument);
  CHECK(bad_cfg([](auto& c) { c.eps = inf; }) == errc::invalid_argument);
  CHECK(bad_cfg([](auto& c) { c.weight_decay = -0.1; }) == errc::invalid_argument);
  CHECK(bad_cfg([](auto& c) { c.clip_norm = nan_v; }) == errc::invalid_argument);
  CHECK(bad_cfg([](auto& c) { c.clip_norm = -1.0; }) == errc::ok); // clipping off

  fvec x{1.0f, 2.0f}, g{0.5f, 0.5f}, g1{0.5f};
  {
    train::adamw_config c;
    c.beta1 = 2.0;
    train::adamw opt(c);
    REQUIRE(opt.add(x, g).ok());
    CHECK(opt.step(1e-3).st.code == errc::invalid_argument);
    CHECK(opt.steps() == 0);
    CHECK(x == fvec{1.0f, 2.0f});
  }
  train::adamw opt;
  CHECK(opt.add(x, g1).code == errc::invalid_argument);
  CHECK(opt.size() == 0);
  REQUIRE(opt.add(x, g).ok());
  CHECK(opt.step(-1e-3).st.code == errc::invalid_argument);
  CHECK(opt.step(nan_v).st.code == errc::invalid_argument);
  CHECK(opt.step(inf).st.code == errc::invalid_argument);
  CHECK(x == fvec{1.0f, 2.0f});
  CHECK(opt.steps() == 0);
  const auto rep = opt.step(); // config lr
  REQUIRE(rep.st.ok());
  CHECK(rep.lr == 1e-3);
  fvec late{0.0f}, glate{0.0f};
  CHECK(opt.add(late, glate).code == errc::unsupported);
  CHECK(opt.first_moment(1).empty());
  CHECK(opt.second_moment(7).empty());

  // zero_grad
  opt.zero_grad();
  CHECK(g == fvec{0.0f, 0.0f});

  // checkpoint setters
  const fvec m2{0.1f, 0.2f};
  CHECK(opt.set_moments(1, m2, m2).code == errc::invalid_argument);
  CHECK(opt.set_moments(0, fvec{0.1f}, m2).code == errc::shape_mismatch);
  CHECK(opt.set_moments(0, m2, fvec{0.1f, -0.2f}).code == errc::invalid_value);
  CHECK(opt.set_moments(0, fvec{0.1f, std::numeric_limits<float>::quiet_NaN()}, m2).code
        == errc::invalid_value);
  CHECK(opt.set_steps(-1).code == errc::invalid_argument);
  CHECK(opt.steps() == 1);
}

// -------------------------------------------------------------------------------------------------
// schedule
// -------------------------------------------------------------------------------------------------

TEST_CASE("train: warm-up + cosine schedule values (DeepSpec CosineAnnealingWarmupLR)",
          "[train][optim][schedule]") {
  train::lr_schedule s;
  s.peak = 6e-4;
  s.total_steps = 100;
  s.warmup_ratio = 0.04;
  REQUIRE(s.validate().ok());
  REQUIRE(s.warmup_steps() == 4);
  CHECK(s.at(0) == Approx(6e-4 / 4).epsilon(1e-15));
  CHECK(s.at(1) == Approx(6e-4 / 2).epsilon(1e-15));
  CHECK(s.at(3) == Approx(6e-4).epsilon(1e-15)); // W - 1
  CHECK(s.at(4) == Approx(6e-4).epsilon(1e-15)); // W: the cosine starts at the peak
  CHECK(s.at(5) == Approx(6e-4 * 0.5 * (1 + std::cos(std::numbers::pi / 96))).epsilon(1e-14));
  CHECK(s.at(52) == Approx(3e-4).epsilon(1e-12)); // halfway through the cosine
  CHECK(s.at(99) == Approx(6e-4 * 0.5 * (1 + std::cos(std::numbers::pi * 95 / 96))).epsilon(1e-10));
  CHECK(s.at(100) == 0.0);
  CHECK(s.at(1000) == 0.0); // clamped past the end
  CHECK(s.at(-3) == s.at(0));
  for (std::int64_t t = 4; t < 100; ++t)
    CHECK(s.at(t + 1) <= s.at(t));

  s.min_lr = 1e-4;
  CHECK(s.at(52) == Approx(1e-4 + 5e-4 * 0.5).epsilon(1e-12));
  CHECK(s.at(100) == 1e-4);
  CHECK(s.at(0) == Approx(6e-4 / 4).epsilon(1e-15)); // the warm-up ignores min_lr

  // W = int(ratio * total) as Python computes it: 0.29 * 100 = 28.999999999999996 -> 28.
  train::lr_schedule p;
  p.total_steps = 100;
  p.warmup_ratio = 0.29;
  CHECK(p.warmup_steps() == 28);
  p.warmup_ratio = 0.07; // 7.000000000000001 -> 7
  CHECK(p.warmup_steps() == 7);
  // No warm-up (ratio * total < 1): step 0 gets the peak, the cosine runs over all steps.
  p.warmup_ratio = 0.001;
  CHECK(p.warmup_steps() == 0);
  CHECK(p.at(0) == p.peak);
  CHECK(p.at(50) == Approx(p.peak / 2).epsilon(1e-12));
  // All warm-up.
  p.warmup_ratio = 1.0;
  CHECK(p.warmup_steps() == 100);
  CHECK(p.at(99) == p.peak);
  CHECK(p.at(100) == 0.0);
  // One step.
  train::lr_schedule one;
  CHECK(one.total_steps == 1);
  CHECK(one.at(0) == one.peak);
  CHECK(one.at(1) == 0.0);

  const auto bad = [](auto edit) {
    train::lr_schedule b;
    edit(b);
    return b.validate().code == errc::invalid_argument && std::isnan(b.at(0));
  };
  CHECK(bad([](auto& b) { b.peak = -1.0; }));
  CHECK(bad([](auto& b) { b.peak = nan_v; }));
  CHECK(bad([](auto& b) { b.total_steps = 0; }));
  CHECK(bad([](auto& b) { b.warmup_ratio = 1.5; }));
  CHECK(bad([](auto& b) { b.warmup_ratio = -0.1; }));
  CHECK(bad([](auto& b) { b.min_lr = 2.0; }));
  CHECK(bad([](auto& b) { b.min_lr = -1e-5; }));
}

// -------------------------------------------------------------------------------------------------
// determinism, checkpoints, convergence
// -------------------------------------------------------------------------------------------------

TEST_CASE("train: two identical runs give bitwise-equal parameters and moments", "[train][optim]") {
  const quadratic q = make_quadratic(64, 5);
  train::lr_schedule sched;
  sched.peak = 0.05;
  sched.total_steps = 200;
  train::adamw_config cfg;
  cfg.weight_decay = 0.01;
  cfg.clip_norm = 1.0;
  const auto run = [&](fvec& x) {
    fvec g(x.size(), 0.0f);
    train::adamw opt(cfg);
    REQUIRE(opt.add(x, g).ok());
    run_quadratic(opt, q, sched, x, g, 150);
    return fvec(opt.second_moment(0).begin(), opt.second_moment(0).end());
  };
  fvec x1(64, 0.0f), x2(64, 0.0f);
  const fvec v1 = run(x1);
  const fvec v2 = run(x2);
  CHECK(x1 == x2);
  CHECK(v1 == v2);
}

TEST_CASE("train: restoring moments and steps continues a run bitwise", "[train][optim]") {
  const quadratic q = make_quadratic(16, 6);
  train::lr_schedule sched;
  sched.peak = 0.05;
  sched.total_steps = 20;
  sched.warmup_ratio = 0.25;
  train::adamw_config cfg;
  cfg.weight_decay = 0.02;

  fvec xa(16, 0.0f), ga(16, 0.0f);
  train::adamw a(cfg);
  REQUIRE(a.add(xa, ga).ok());
  run_quadratic(a, q, sched, xa, ga, 20);

  fvec xb(16, 0.0f), gb(16, 0.0f);
  train::adamw b(cfg);
  REQUIRE(b.add(xb, gb).ok());
  run_quadratic(b, q, sched, xb, gb, 8);

  fvec xc = xb, gc(16, 0.0f); // the checkpointed values
  train::adamw c(cfg);
  REQUIRE(c.add(xc, gc).ok());
  REQUIRE(c.set_moments(0, b.first_moment(0), b.second_moment(0)).ok());
  REQUIRE(c.set_steps(b.steps()).ok());
  CHECK(c.steps() == 8);
  run_quadratic(c, q, sched, xc, gc, 12);
  CHECK(c.steps() == 20);
  CHECK(xc == xa);
}

TEST_CASE("train: AdamW with the schedule minimises a quadratic", "[train][optim]") {
  const quadratic q = make_quadratic(32, 7);
  fvec x(32, 0.0f), g(32, 0.0f);
  const double start = q.loss(x);
  train::adamw_config cfg;
  cfg.clip_norm = 1.0;
  train::adamw opt(cfg);
  REQUIRE(opt.add(x, g).ok());
  train::lr_schedule sched;
  sched.peak = 0.1;
  sched.total_steps = 400;
  run_quadratic(opt, q, sched, x, g, sched.total_steps);
  const double end = q.loss(x);
  CAPTURE(start, end);
  CHECK(end < 1e-3 * start);
}
