// SPDX-License-Identifier: Apache-2.0
// Drafter losses of train/loss.hpp (DeepSpec's soft / hard CE, L1, confidence BCE, c*, position
// and step weights): gradients against central finite differences in double, known values,
// cross-checks with decode/round_metrics.hpp, bad input, accumulation semantics.

#include <specdec/decode/round_metrics.hpp>
#include <specdec/train/loss.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <span>
#include <vector>

using namespace specdec;

namespace {

using vec = std::vector<double>;
using cspan = std::span<const double>;

constexpr double inf = std::numeric_limits<double>::infinity();
constexpr double nan_v = std::numeric_limits<double>::quiet_NaN();

// Central finite differences in double: step h and the accepted error
// |fd - analytic| <= rel |analytic| + abs_tol. The absolute floor covers the rounding noise of
// the differenced losses (a few ulp of a loss of size ~6, divided by 2h), which no relative bound
// can absorb where a gradient entry is ~1e-5. Measured worst noise over 160 rows per size: at
// h = 1e-6 it reaches 1.3e-8 at V = 512 (above the floor), at h = 1e-5 1.4e-9 (7x below it);
// hence h = 1e-5, whose truncation error (h^2 / 6 times a third derivative of order 1, ~1e-11)
// stays far under both bounds.
constexpr double fd_h = 1e-5;
constexpr double fd_rel = 1e-6;
constexpr double fd_abs = 1e-8;

// A uniform double in [0, 1) from 53 random bits (portable across standard libraries).
double u01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1p-53;
}

// Random logits, uniform in [-4, 4).
vec random_logits(std::mt19937_64& rng, std::size_t v) {
  vec z(v);
  for (double& x : z)
    x = 8.0 * u01(rng) - 4.0;
  return z;
}

vec softmax_ref(const vec& z) {
  double m = -inf;
  for (const double x : z)
    m = x > m ? x : m;
  double s = 0;
  for (const double x : z)
    s += std::exp(x - m);
  vec p(z.size());
  for (std::size_t i = 0; i < z.size(); ++i)
    p[i] = std::exp(z[i] - m) / s;
  return p;
}

// A random probability row; with `zeros`, about a third of the entries are exactly 0.
vec random_probs(std::mt19937_64& rng, std::size_t v, bool zeros) {
  vec p = softmax_ref(random_logits(rng, v));
  if (zeros) {
    for (std::size_t i = 0; i < v; ++i)
      if (i % 3 == 1)
        p[i] = 0.0;
    double s = 0;
    for (const double x : p)
      s += x;
    for (double& x : p)
      x /= s;
  }
  return p;
}

vec one_hot(std::size_t v, std::size_t at) {
  vec p(v, 0.0);
  p[at] = 1.0;
  return p;
}

// Largest violation max_j (|fd_j - g_j| - rel |g_j| - abs_tol) over the row (<= 0 passes); `f`
// is the unweighted loss as a function of the logits.
double fd_violation(const std::function<double(cspan)>& f, vec z, const vec& g) {
  double worst = -inf;
  for (std::size_t j = 0; j < z.size(); ++j) {
    const double z0 = z[j];
    z[j] = z0 + fd_h;
    const double fp = f(z);
    z[j] = z0 - fd_h;
    const double fm = f(z);
    z[j] = z0;
    const double fd = (fp - fm) / (2.0 * fd_h);
    const double excess = std::fabs(fd - g[j]) - fd_rel * std::fabs(g[j]) - fd_abs;
    worst = excess > worst ? excess : worst;
  }
  return worst;
}

// The targets of the gradient tests for one vocabulary size.
std::vector<vec> targets_for(std::mt19937_64& rng, std::size_t v) {
  return {random_probs(rng, v, false),
          random_probs(rng, v, true),
          random_probs(rng, v, true),
          one_hot(v, v / 2)};
}

// True when every |q_v - p_v| exceeds 100 h q_v: a logit step of h moves q_v by at most h q_v,
// so no sign of q - p changes inside the difference stencil and the L1 loss is smooth there.
bool l1_smooth(const vec& z, const vec& p) {
  const vec q = softmax_ref(z);
  for (std::size_t i = 0; i < q.size(); ++i)
    if (std::fabs(q[i] - p[i]) <= 100.0 * fd_h * q[i])
      return false;
  return true;
}

} // namespace

// -------------------------------------------------------------------------------------------------
// softmax
// -------------------------------------------------------------------------------------------------

TEST_CASE("train: softmax sums to 1, survives huge logits and gives NaN for a bad row",
          "[train][loss]") {
  std::mt19937_64 rng(11);
  const vec z = random_logits(rng, 64);
  vec q(z.size());
  train::softmax<double>(z, q);
  const vec r = softmax_ref(z);
  double s = 0;
  for (std::size_t i = 0; i < q.size(); ++i) {
    s += q[i];
    CHECK(q[i] == Approx(r[i]).epsilon(1e-14));
  }
  CHECK(s == Approx(1.0).epsilon(1e-14));

  // Shift invariance with logits far beyond exp's range; -inf gets probability 0.
  const std::vector<float> big{1000.0f, 999.0f, -std::numeric_limits<float>::infinity()};
  std::vector<float> qb(3);
  train::softmax<float>(big, qb);
  const float e = static_cast<float>(1.0 / (1.0 + std::exp(-1.0)));
  CHECK(qb[0] == Approx(e).epsilon(1e-6));
  CHECK(qb[1] == Approx(1.0f - e).epsilon(1e-6));
  CHECK(qb[2] == 0.0f);

  for (const vec& bad : {vec{0.0, nan_v}, vec{0.0, inf}, vec{-inf, -inf}}) {
    vec out(2, 5.0);
    train::softmax<double>(bad, out);
    CHECK(std::isnan(out[0]));
    CHECK(std::isnan(out[1]));
  }
}

// -------------------------------------------------------------------------------------------------
// gradients against central finite differences (double)
// -------------------------------------------------------------------------------------------------

TEST_CASE("train: soft cross-entropy gradient matches central differences", "[train][loss][fd]") {
  std::mt19937_64 rng(1);
  for (const std::size_t v : {std::size_t{7}, std::size_t{64}, std::size_t{512}}) {
    for (const vec& p : targets_for(rng, v)) {
      const vec z = random_logits(rng, v);
      vec g(v, 0.0);
      const auto r = train::soft_cross_entropy<double>(z, p, 1.0, g);
      REQUIRE(r.st.ok());
      const auto f = [&p](cspan x) {
        const auto l = train::soft_cross_entropy<double>(x, p, 1.0, {});
        return l.value;
      };
      CAPTURE(v);
      CHECK(fd_violation(f, z, g) <= 0.0);
      // Normalised target: the gradient is softmax(z) - p.
      const vec q = softmax_ref(z);
      for (std::size_t i = 0; i < v; ++i)
        CHECK(g[i] == Approx(q[i] - p[i]).margin(1e-15));
    }
  }
}

TEST_CASE("train: hard cross-entropy gradient matches central differences", "[train][loss][fd]") {
  std::mt19937_64 rng(2);
  for (const std::size_t v : {std::size_t{7}, std::size_t{64}, std::size_t{512}}) {
    for (const std::size_t label : {std::size_t{0}, v / 3, v - 1}) {
      const vec z = random_logits(rng, v);
      const auto y = static_cast<std::int32_t>(label);
      vec g(v, 0.0);
      const auto r = train::hard_cross_entropy<double>(z, y, 1.0, g);
      REQUIRE(r.st.ok());
      CHECK(r.value == Approx(-std::log(softmax_ref(z)[label])).epsilon(1e-13));
      const auto f = [y](cspan x) {
        return train::hard_cross_entropy<double>(x, y, 1.0, {}).value;
      };
      CAPTURE(v, label);
      CHECK(fd_violation(f, z, g) <= 0.0);
    }
  }
}

TEST_CASE("train: L1 gradient matches central differences away from q == p", "[train][loss][fd]") {
  std::mt19937_64 rng(3);
  for (const std::size_t v : {std::size_t{7}, std::size_t{64}, std::size_t{512}}) {
    // The derivative is only a subgradient where some q_v == p_v: redraw z until the row is
    // smooth over the stencil (l1_smooth).
    for (const vec& p : targets_for(rng, v)) {
      vec z = random_logits(rng, v);
      while (!l1_smooth(z, p))
        z = random_logits(rng, v);
      vec g(v, 0.0);
      const auto r = train::l1_probability_distance<double>(z, p, 1.0, g);
      REQUIRE(r.st.ok());
      const auto f = [&p](cspan x) {
        return train::l1_probability_distance<double>(x, p, 1.0, {}).value;
      };
      CAPTURE(v);
      CHECK(fd_violation(f, z, g) <= 0.0);
      double ref = 0;
      REQUIRE(decode::l1_distance(cspan(softmax_ref(z)), cspan(p), ref).ok());
      CHECK(r.value == Approx(ref).epsilon(1e-13));
    }
  }
}

TEST_CASE("train: BCE-with-logits gradient matches central differences, |z| = 30 included",
          "[train][loss][fd]") {
  for (const double z : {-30.0, -7.5, -1.0, -0.25, 0.0, 0.3, 2.0, 9.0, 30.0}) {
    for (const double y : {0.0, 0.2, 0.5, 0.93, 1.0}) {
      double g = 0.0;
      const auto r = train::bce_with_logits<double>(z, y, 1.0, &g);
      REQUIRE(r.st.ok());
      const auto f = [y](double x) {
        return train::bce_with_logits<double>(x, y, 1.0, nullptr).value;
      };
      const double fd = (f(z + fd_h) - f(z - fd_h)) / (2.0 * fd_h);
      CAPTURE(z, y);
      CHECK(std::fabs(fd - g) <= fd_rel * std::fabs(g) + fd_abs);
      CHECK(g == Approx(1.0 / (1.0 + std::exp(-z)) - y).margin(1e-15));
      double ref = 0;
      REQUIRE(decode::bce_with_logits(z, y, ref).ok());
      CHECK(r.value == Approx(ref).epsilon(1e-14).margin(1e-300));
    }
  }
  // Far tails stay finite and exact: -log sigmoid(-800) = 800.
  const auto far = train::bce_with_logits<double>(-800.0, 1.0, 1.0, nullptr);
  REQUIRE(far.st.ok());
  CHECK(far.value == Approx(800.0).epsilon(1e-15));
}

// -------------------------------------------------------------------------------------------------
// known values
// -------------------------------------------------------------------------------------------------

TEST_CASE("train: known values of the losses", "[train][loss]") {
  std::mt19937_64 rng(4);
  const vec z = random_logits(rng, 64);
  const vec q = softmax_ref(z);

  // Soft CE of a row against its own softmax is the entropy.
  double entropy = 0;
  for (const double x : q)
    entropy -= x * std::log(x);
  const auto ce = train::soft_cross_entropy<double>(z, q, 1.0, {});
  REQUIRE(ce.st.ok());
  CHECK(ce.value == Approx(entropy).epsilon(1e-13));

  // Uniform logits: hard CE = log V.
  const vec flat(64, 0.25);
  const auto h = train::hard_cross_entropy<double>(flat, 5, 1.0, {});
  REQUIRE(h.st.ok());
  CHECK(h.value == Approx(std::log(64.0)).epsilon(1e-15));

  // L1 of identical rows is 0 (up to rounding), c* = 1.
  const auto same = train::l1_probability_distance<double>(z, q, 1.0, {});
  REQUIRE(same.st.ok());
  CHECK(same.value == Approx(0.0).margin(1e-14));
  CHECK(train::acceptance_estimate<double>(z, q) == Approx(1.0).epsilon(1e-14));

  // Disjoint one-hots: the draft's softmax is exactly (1, 0, 0), the target (0, 1, 0).
  const vec zd{0.0, -inf, -inf};
  const vec pt = one_hot(3, 1);
  const auto dis = train::l1_probability_distance<double>(zd, pt, 1.0, {});
  REQUIRE(dis.st.ok());
  CHECK(dis.value == 2.0);
  CHECK(train::acceptance_estimate<double>(zd, pt) == 0.0);
  // ... and CE against a token of probability 0 is infinite, with a finite gradient.
  vec gd(3, 0.0);
  const auto ce_inf = train::soft_cross_entropy<double>(zd, pt, 1.0, gd);
  REQUIRE(ce_inf.st.ok());
  CHECK(ce_inf.value == inf);
  CHECK(gd == vec{1.0, -1.0, 0.0});

  // BCE at z = 0 is log 2 whatever the label.
  for (const double y : {0.0, 0.3, 1.0}) {
    const auto b = train::bce_with_logits<double>(0.0, y, 1.0, nullptr);
    REQUIRE(b.st.ok());
    CHECK(b.value == Approx(std::log(2.0)).epsilon(1e-15));
  }
}

TEST_CASE("train: c* = 1 - L1 / 2 = sum_v min(q_v, p_v), clamped to [0, 1]", "[train][loss]") {
  std::mt19937_64 rng(5);
  for (int rep = 0; rep < 20; ++rep) {
    const std::size_t v = rep % 2 == 0 ? 64 : 7;
    const vec z = random_logits(rng, v);
    const vec p = random_probs(rng, v, rep % 3 == 0);
    const double c = train::acceptance_estimate<double>(z, p);
    const auto l1 = train::l1_probability_distance<double>(z, p, 1.0, {});
    REQUIRE(l1.st.ok());
    CHECK(c == Approx(1.0 - 0.5 * l1.value).epsilon(1e-15));
    double ref = 0;
    REQUIRE(decode::analytic_acceptance(cspan(softmax_ref(z)), cspan(p), ref).ok());
    CHECK(c == Approx(ref).epsilon(1e-12));
    CHECK(c >= 0.0);
    CHECK(c <= 1.0);
  }
  // Bad input gives NaN.
  CHECK(std::isnan(train::acceptance_estimate<double>(vec{0, 0}, vec{1})));
  CHECK(std::isnan(train::acceptance_estimate<double>(vec{0, nan_v}, vec{.5, .5})));
  CHECK(std::isnan(train::acceptance_estimate<double>(vec{-inf, -inf}, vec{.5, .5})));
  CHECK(std::isnan(train::acceptance_estimate<double>(vec{0, 0}, vec{.5, .6})));
  CHECK(std::isnan(train::acceptance_estimate<double>(vec{0, 0}, vec{-.5, 1.5})));
}

TEST_CASE("train: float rows give the double results rounded", "[train][loss]") {
  std::mt19937_64 rng(6);
  const vec z = random_logits(rng, 512);
  const vec p = random_probs(rng, 512, true);
  const std::vector<float> zf(z.begin(), z.end());
  const std::vector<float> pf(p.begin(), p.end());
  const vec zr(zf.begin(), zf.end()); // the float values, widened
  const vec pr(pf.begin(), pf.end());
  std::vector<float> gf(512, 0.0f);
  vec gd(512, 0.0);
  const auto a = train::soft_cross_entropy<float>(zf, pf, 0.5f, gf);
  const auto b = train::soft_cross_entropy<double>(zr, pr, 0.5, gd);
  REQUIRE(a.st.ok());
  REQUIRE(b.st.ok());
  CHECK(a.value == static_cast<float>(b.value));
  for (std::size_t i = 0; i < gf.size(); ++i)
    CHECK(gf[i] == static_cast<float>(gd[i]));
  const auto l1 = train::l1_probability_distance<float>(zf, pf, 1.0f, {});
  REQUIRE(l1.st.ok());
  CHECK(l1.value
        == static_cast<float>(train::l1_probability_distance<double>(zr, pr, 1.0, {}).value));
}

// -------------------------------------------------------------------------------------------------
// accumulation semantics
// -------------------------------------------------------------------------------------------------

TEST_CASE("train: gradients accumulate across calls and scale with the weight", "[train][loss]") {
  std::mt19937_64 rng(7);
  const vec z = random_logits(rng, 64);
  const vec p = random_probs(rng, 64, true);
  vec g1(64, 0.0);
  const auto one = train::soft_cross_entropy<double>(z, p, 1.0, g1);
  REQUIRE(one.st.ok());

  // Weight 0.25: value and gradient scale by 0.25.
  vec gw(64, 0.0);
  const auto w = train::soft_cross_entropy<double>(z, p, 0.25, gw);
  REQUIRE(w.st.ok());
  CHECK(w.value == Approx(0.25 * one.value).epsilon(1e-15));
  for (std::size_t i = 0; i < 64; ++i)
    CHECK(gw[i] == Approx(0.25 * g1[i]).epsilon(1e-15).margin(1e-300));

  // Two calls add up: CE(w 0.25) + L1(w 0.75) onto a non-zero start.
  vec acc(64, 1.0);
  vec gl(64, 0.0);
  REQUIRE(train::soft_cross_entropy<double>(z, p, 0.25, acc).st.ok());
  const auto l = train::l1_probability_distance<double>(z, p, 0.75, acc);
  REQUIRE(l.st.ok());
  REQUIRE(train::l1_probability_distance<double>(z, p, 0.75, gl).st.ok());
  for (std::size_t i = 0; i < 64; ++i)
    CHECK(acc[i] == Approx(1.0 + gw[i] + gl[i]).epsilon(1e-14));

  // Hard CE and BCE accumulate too.
  vec gh(64, 0.5);
  REQUIRE(train::hard_cross_entropy<double>(z, 3, 2.0, gh).st.ok());
  REQUIRE(train::hard_cross_entropy<double>(z, 3, 2.0, gh).st.ok());
  const vec q = softmax_ref(z);
  for (std::size_t i = 0; i < 64; ++i)
    CHECK(gh[i] == Approx(0.5 + 4.0 * (q[i] - (i == 3 ? 1.0 : 0.0))).epsilon(1e-13));
  double gb = 1.0;
  const auto b1 = train::bce_with_logits<double>(0.7, 0.4, 3.0, &gb);
  const auto b2 = train::bce_with_logits<double>(0.7, 0.4, 1.0, &gb);
  REQUIRE(b1.st.ok());
  REQUIRE(b2.st.ok());
  CHECK(b1.value == Approx(3.0 * b2.value).epsilon(1e-15));
  CHECK(gb == Approx(1.0 + 4.0 * (1.0 / (1.0 + std::exp(-0.7)) - 0.4)).epsilon(1e-14));

  // Weight 0: value 0 and nothing added, even where the loss is infinite.
  vec g0(3, 7.0);
  const auto zero = train::soft_cross_entropy<double>(vec{0.0, -inf, -inf}, one_hot(3, 1), 0.0, g0);
  REQUIRE(zero.st.ok());
  CHECK(zero.value == 0.0);
  CHECK(g0 == vec(3, 7.0));

  // A weighted mean over rows: sum of values / sum of weights.
  train::weighted_mean m;
  CHECK(m.value() == 0.0);
  m.add(one.value * 2.0, 2.0);
  m.add(w.value, 0.25);
  CHECK(m.value() == Approx(one.value).epsilon(1e-15));
  CHECK(m.den == 2.25);
}

// -------------------------------------------------------------------------------------------------
// weights
// -------------------------------------------------------------------------------------------------

TEST_CASE("train: DeepSpec position weights exp(-k/4) and EAGLE-3 step weights 0.8^k",
          "[train][loss]") {
  const vec w4{1, .7788, .6065, .4724, .3679, .2865, .2231};
  double ttt = 1.0;
  for (int k = 0; k < 7; ++k) {
    CHECK(train::block_position_weight(k) == Approx(w4[static_cast<std::size_t>(k)]).margin(5e-5));
    CHECK(train::block_position_weight(k) == std::exp(-k / 4.0));
    CHECK(train::ttt_step_weight(k) == Approx(ttt).epsilon(1e-15));
    ttt *= 0.8;
  }
  // The paper's gamma = 7 variant agrees with decode::position_weights.
  std::vector<double> w7;
  REQUIRE(decode::position_weights(7, 7.0, w7).ok());
  for (int k = 0; k < 7; ++k)
    CHECK(train::block_position_weight(k, 7.0) == w7[static_cast<std::size_t>(k)]);
  CHECK(train::ttt_step_weight(3, 0.5) == 0.125);
  CHECK(train::ttt_step_weight(0, 0.0) == 1.0);

  CHECK(std::isnan(train::block_position_weight(-1)));
  CHECK(std::isnan(train::block_position_weight(2, 0.0)));
  CHECK(std::isnan(train::block_position_weight(2, -4.0)));
  CHECK(std::isnan(train::block_position_weight(2, nan_v)));
  CHECK(std::isnan(train::ttt_step_weight(-1)));
  CHECK(std::isnan(train::ttt_step_weight(2, -0.8)));
  CHECK(std::isnan(train::ttt_step_weight(2, nan_v)));
}

// -------------------------------------------------------------------------------------------------
// bad input
// -------------------------------------------------------------------------------------------------

TEST_CASE("train: bad input to the losses is reported and leaves grad untouched",
          "[train][loss][bad]") {
  const vec z{0.5, -1.0, 2.0};
  const vec p{0.2, 0.3, 0.5};
  const vec sentinel{7.0, 8.0, 9.0};
  vec g = sentinel;

  // soft CE and L1 share their checks.
  using row_loss = train::loss_result<double> (*)(cspan, cspan, double, std::span<double>);
  const row_loss row_losses[] = {&train::soft_cross_entropy<double>,
                                 &train::l1_probability_distance<double>};
  for (const row_loss f : row_losses) {
    const auto code = [&](const vec& zz, const vec& pp, double w, std::span<double> gg) {
      const auto r = f(zz, pp, w, gg);
      CHECK((r.st.ok() || r.value == 0.0));
      return r.st.code;
    };
    CHECK(code(z, vec{0.5, 0.5}, 1.0, g) == errc::shape_mismatch);
    CHECK(code(z, p, 1.0, std::span<double>(g).first(2)) == errc::shape_mismatch);
    CHECK(code(z, p, -1.0, g) == errc::invalid_argument);
    CHECK(code(z, p, nan_v, g) == errc::invalid_argument);
    CHECK(code(z, p, inf, g) == errc::invalid_argument);
    CHECK(code(vec{0.5, nan_v, 2.0}, p, 1.0, g) == errc::invalid_value);
    CHECK(code(vec{0.5, inf, 2.0}, p, 1.0, g) == errc::invalid_value);
    CHECK(code(vec{-inf, -inf, -inf}, p, 1.0, g) == errc::zero_mass_row);
    CHECK(code(vec{}, vec{}, 1.0, {}) == errc::zero_mass_row);
    CHECK(code(z, vec{-0.1, 0.6, 0.5}, 1.0, g) == errc::invalid_value);
    CHECK(code(z, vec{nan_v, 0.5, 0.5}, 1.0, g) == errc::invalid_value);
    CHECK(code(z, vec{inf, 0.5, 0.5}, 1.0, g) == errc::invalid_value);
    CHECK(code(z, vec{0.2, 0.3, 0.6}, 1.0, g) == errc::invalid_value); // sums to 1.1
    CHECK(code(z, vec{0.2, 0.3, 0.5005}, 1.0, g) == errc::ok);         // within 1e-3
    g = sentinel;
    CHECK(code(z, vec{0.2, 0.3, 0.6}, 1.0, {}) == errc::invalid_value); // no grad: same checks
    CHECK(g == sentinel);
  }

  const auto hard = [&](const vec& zz, std::int32_t y, double w, std::span<double> gg) {
    const auto r = train::hard_cross_entropy<double>(zz, y, w, gg);
    CHECK(r.value == 0.0);
    return r.st.code;
  };
  CHECK(hard(z, 0, 1.0, std::span<double>(g).first(1)) == errc::shape_mismatch);
  CHECK(hard(z, 0, -0.5, g) == errc::invalid_argument);
  CHECK(hard(vec{nan_v, 0, 0}, 0, 1.0, g) == errc::invalid_value);
  CHECK(hard(vec{-inf, -inf, -inf}, 0, 1.0, g) == errc::zero_mass_row);
  CHECK(hard(z, -1, 1.0, g) == errc::token_out_of_range);
  CHECK(hard(z, 3, 1.0, g) == errc::token_out_of_range);
  CHECK(g == sentinel);

  double gb = 4.0;
  const auto bce = [&](double zz, double y, double w) {
    const auto r = train::bce_with_logits<double>(zz, y, w, &gb);
    CHECK(r.value == 0.0);
    return r.st.code;
  };
  CHECK(bce(0.5, 0.5, -1.0) == errc::invalid_argument);
  CHECK(bce(0.5, 0.5, nan_v) == errc::invalid_argument);
  CHECK(bce(nan_v, 0.5, 1.0) == errc::invalid_value);
  CHECK(bce(inf, 0.5, 1.0) == errc::invalid_value);
  CHECK(bce(-inf, 0.5, 1.0) == errc::invalid_value);
  CHECK(bce(0.5, 1.5, 1.0) == errc::invalid_value);
  CHECK(bce(0.5, -0.1, 1.0) == errc::invalid_value);
  CHECK(bce(0.5, nan_v, 1.0) == errc::invalid_value);
  CHECK(gb == 4.0);
}
