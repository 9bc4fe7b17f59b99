// SPDX-License-Identifier: Apache-2.0
//
// Fuzz target: one distribution row alone, sampling::prepare_row / sample_row / prob_at /
// entropy with cpu::serial_executor, on float, half and bfloat16 rows of logits or probabilities
// (NaN, +-inf, -0.0, denormals, extremes) under temperature / top-k / min-p / top-p, for rows of
// up to 512 entries (thresholds by bisection) and longer ones (radix select).
//
// Properties checked (brute force over the row):
//  - prepare_row terminates (libFuzzer's -timeout) and flags exactly what the row deserves:
//    target_invalid iff a raw value is NaN or +inf (a negative probability reads as NaN),
//    otherwise target_zero_mass iff no entry has mass; no other flag;
//  - argmax / max_raw: the first index of the largest raw value;
//  - when ok: 0 < mass < inf, inv_mass = 1 / mass > 0, prob_at sums to 1 (within 2e-3), the top
//    token keeps positive probability, greedy rows are one-hot at the argmax;
//  - truncation: the cut is at most the max; top-k leaves fewer than k entries strictly above it
//    (and, alone, keeps at least k); every kept entry has p >= min_p * p_max (and min-p alone
//    drops nothing above that); top-p keeps at least top_p of the mass before it and the entries
//    strictly above its cut hold less than that (within 1e-3); the stats' mass is the kept mass;
//  - sample_row(u) for a fuzzed u, u = 0 and u = 1 - 2^-24: an index in [0, V) with positive
//    probability, at the inverse-CDF point (within 1e-3 of the mass); the argmax when greedy;
//  - entropy: finite, in [0, log |support|] (within 1e-3);
//  - half / bfloat16: to_float is exact (checked against an independent decoder) and from_float
//    rounds to nearest, ties to even.

#include <specdec/specdec.hpp>

#include "support/fuzz_input.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

using namespace specdec;
using specdec_fuzz::reader;

namespace {

constexpr float inf = std::numeric_limits<float>::infinity();

std::string str(double x) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", x);
  return buf;
}

std::uint32_t bits_of(float f) {
  std::uint32_t u = 0;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

/// An independent binary16 decoder.
double half_value(std::uint16_t b) {
  const int e = (b >> 10) & 31;
  const int m = b & 1023;
  const double s = (b & 0x8000u) != 0 ? -1.0 : 1.0;
  if (e == 0)
    return s * std::ldexp(m, -24);
  if (e == 31)
    return m == 0 ? s * std::numeric_limits<double>::infinity()
                  : std::numeric_limits<double>::quiet_NaN();
  return s * std::ldexp(1024 + m, e - 25);
}

template <class T>
T from_bits(std::uint16_t b) {
  T x{};
  x.bits = b;
  return x;
}

/// to_float exact and from_float nearest-even, for one 16-bit element and one float.
template <class T>
void check_conversion(std::uint16_t b, float f) {
  using tr = dtype_traits<T>;
  const float v = tr::to_float(from_bits<T>(b));
  if constexpr (std::is_same_v<T, half>) {
    const double ref = half_value(b);
    FUZZ_CHECK((std::isnan(ref) && std::isnan(v))
                   || (bits_of(v) == bits_of(static_cast<float>(ref))),
               "half " + std::to_string(b) + " -> " + str(v) + ", expected " + str(ref));
  } else {
    FUZZ_CHECK(bits_of(v) == static_cast<std::uint32_t>(b) << 16 || std::isnan(v),
               "bfloat16 " + std::to_string(b) + " -> " + str(v));
  }
  if (!std::isnan(v))
    FUZZ_CHECK(tr::from_float(v).bits == b,
               "from_float(to_float(x)) != x for " + std::to_string(b));
  if (std::isnan(f)) {
    FUZZ_CHECK(std::isnan(tr::to_float(tr::from_float(f))), "NaN lost its NaN-ness");
    return;
  }
  // Nearest, ties to even: no other representable value of the same sign is closer.
  const T r = tr::from_float(f);
  const double got = tr::to_float(r);
  const double err = std::fabs(got - static_cast<double>(f));
  for (int d = -1; d <= 1; d += 2) {
    const int nb = static_cast<int>(r.bits & 0x7fffu) + d;
    const int max_finite = std::is_same_v<T, half> ? 0x7bff : 0x7f7f;
    if (nb < 0 || nb > max_finite)
      continue;
    const double other =
        tr::to_float(from_bits<T>(static_cast<std::uint16_t>((r.bits & 0x8000u) | nb)));
    const double oerr = std::fabs(other - static_cast<double>(f));
    if (std::isinf(got)) { // overflow: allowed only when f rounds past the largest finite value
      FUZZ_CHECK(std::fabs(static_cast<double>(f))
                     >= (std::is_same_v<T, half> ? 65520.0 : 3.3961775292304957e38),
                 "from_float(" + str(f) + ") overflowed");
      continue;
    }
    FUZZ_CHECK(oerr > err || (oerr == err && (r.bits & 1u) == 0u),
               "from_float(" + str(f) + ") = " + str(got) + " is not the nearest (even) value, "
                   + str(other) + " is");
  }
}

sampling::sampling_params read_params(reader& in, index_t n) {
  sampling::sampling_params p;
  switch (in.u8() % 13) {
  case 0:
    p.temperature = 0.0f;
    break;
  case 1:
    p.temperature = 1e-6f;
    break;
  case 2:
    p.temperature = sampling::greedy_temperature_threshold;
    break;
  case 3:
    p.temperature = 0.25f;
    break;
  case 4:
    p.temperature = 0.5f;
    break;
  case 5:
  case 6:
    p.temperature = 1.0f;
    break;
  case 7:
    p.temperature = 2.0f;
    break;
  case 8:
    p.temperature = 100.0f;
    break;
  case 9:
    p.temperature = 3e38f;
    break;
  case 10:
    p.temperature = std::numeric_limits<float>::denorm_min();
    break;
  default:
    p.temperature = std::fabs(in.value());
    break;
  }
  const std::uint8_t k = in.u8();
  p.top_k = k < 128 ? 0 : in.range<std::int32_t>(1, static_cast<std::int32_t>(n) + 2);
  switch (in.u8() % 10) {
  case 0:
  case 1:
  case 2:
    p.top_p = 1.0f;
    break;
  case 3:
    p.top_p = 0.99f;
    break;
  case 4:
    p.top_p = 0.9f;
    break;
  case 5:
    p.top_p = 0.5f;
    break;
  case 6:
    p.top_p = std::numeric_limits<float>::denorm_min();
    break;
  case 7:
    p.top_p = std::nextafter(1.0f, 0.0f);
    break;
  default:
    p.top_p = in.unit() + 0x1p-24f;
    break;
  }
  switch (in.u8() % 8) {
  case 0:
  case 1:
  case 2:
  case 3:
    p.min_p = 0.0f;
    break;
  case 4:
    p.min_p = 1.0f;
    break;
  case 5:
    p.min_p = std::numeric_limits<float>::denorm_min();
    break;
  default:
    p.min_p = in.unit();
    break;
  }
  return p;
}

/// Element i of a row described by (style, seed) before overrides.
float styled(specdec_fuzz::splitmix& g, int style, float scale, const float* palette, int colours) {
  switch (style) {
  case 1: // spread logits
    return static_cast<float>((g.unit() * 2.0 - 1.0) * scale);
  case 2: // a few distinct values (ties)
    return palette[g.next() % static_cast<std::uint64_t>(colours)];
  case 3: // specials and quarter steps
    return g.next() % 4 == 0 ? specdec_fuzz::special(static_cast<int>(g.next() % 16))
                             : static_cast<float>(static_cast<int>(g.next() % 112) - 56) * 0.25f;
  default: { // raw bits
    const auto u = static_cast<std::uint32_t>(g.next());
    float f = 0.0f;
    std::memcpy(&f, &u, sizeof(f));
    return f;
  }
  }
}

template <class T>
void run(reader& in, bool probs) {
  const bool long_row = in.flag();
  const index_t n = long_row ? in.range<index_t>(513, 4096) : in.range<index_t>(0, 512);
  const sampling::sampling_params params = read_params(in, n);
  if (params.validate() != errc::ok)
    return; // prepare_row's contract: parameters validated by the caller
  // The row: explicit values from the input (style 0), or a generated pattern, then overrides.
  const int style = in.u8() % 5;
  specdec_fuzz::splitmix g{in.u64()};
  const float scale = std::fabs(in.value());
  float palette[4];
  const int colours = 1 + in.u8() % 4;
  for (float& c : palette)
    c = in.value();
  std::vector<T> row(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    const float x = style == 0 ? in.value() : styled(g, style, scale, palette, colours);
    float v = probs && style != 0 && style != 4 ? std::fabs(x) : x;
    if constexpr (std::is_same_v<T, float>)
      row[static_cast<std::size_t>(i)] = v;
    else
      row[static_cast<std::size_t>(i)] = style == 4
                                             ? from_bits<T>(static_cast<std::uint16_t>(g.next()))
                                             : dtype_traits<T>::from_float(v);
  }
  const int overrides = n > 0 ? in.u8() % 32 : 0;
  for (int o = 0; o < overrides; ++o) {
    const auto i = static_cast<std::size_t>(in.range<index_t>(0, n - 1));
    if constexpr (std::is_same_v<T, float>)
      row[i] = in.value();
    else
      row[i] = in.flag() ? from_bits<T>(in.u16()) : dtype_traits<T>::from_float(in.value());
  }
  const float u_fuzzed = in.unit();
  if constexpr (!std::is_same_v<T, float>)
    for (int c = 0; c < 4; ++c)
      check_conversion<T>(in.u16(), in.value());

  const distribution_kind kind =
      probs ? distribution_kind::probabilities : distribution_kind::logits;
  const sampling::dist_row<T> dr{row.data(), n, kind};
  const cpu::serial_executor ex{};
  const sampling::row_stats st = sampling::prepare_row(ex, dr, params);

  // --- flags --------------------------------------------------------------------------------
  const bool greedy = params.greedy();
  std::vector<float> x(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i)
    x[static_cast<std::size_t>(i)] = load_as_float(row.data(), i);
  bool invalid = false;
  float max_x = -inf;
  for (float v : x) {
    invalid = invalid || std::isnan(v) || v == inf || (probs && v < 0.0f);
    max_x = std::isnan(v) ? max_x : std::fmax(max_x, v);
  }
  const bool zero_mass = !invalid && (probs ? !(max_x > 0.0f) : !(max_x > -inf));
  const std::uint32_t expected =
      invalid ? row_status::target_invalid : (zero_mass ? row_status::target_zero_mass : 0u);
  std::string what = std::string(probs ? "probabilities" : "logits") + " row of "
                     + std::to_string(n) + " " + dtype_traits<T>::name + ", T "
                     + str(params.temperature) + " top-k " + std::to_string(params.top_k)
                     + " top-p " + str(params.top_p) + " min-p " + str(params.min_p) + ", max "
                     + str(max_x);
  if (n <= 16) {
    std::string vals;
    for (float v : x)
      vals.append(vals.empty() ? "" : ", ").append(str(v));
    what += " {" + vals + "}";
  }
  if (specdec_fuzz::verbose())
    std::fprintf(stderr, "  %s: flags %u\n", what.c_str(), st.status.bits);
  FUZZ_CHECK(st.status.bits == expected,
             what + ": flags " + std::to_string(st.status.bits) + ", expected "
                 + std::to_string(expected));
  if (!st.ok()) {
    FUZZ_CHECK(st.inv_mass == 0.0f, what + ": a bad row with inv_mass " + str(st.inv_mass));
    return;
  }

  // --- max and argmax over the raw values -----------------------------------------------------
  std::vector<float> raw(static_cast<std::size_t>(n));
  index_t arg = -1;
  for (index_t i = 0; i < n; ++i) {
    const float r = sampling::raw_value(dr, st.log_of_probs, i);
    raw[static_cast<std::size_t>(i)] = r;
    if (arg < 0 || r > raw[static_cast<std::size_t>(arg)])
      arg = i;
  }
  FUZZ_CHECK(st.argmax == arg,
             what + ": argmax " + std::to_string(st.argmax) + ", expected " + std::to_string(arg));
  const float max_raw = raw[static_cast<std::size_t>(arg)];
  FUZZ_CHECK(bits_of(st.max_raw) == bits_of(max_raw) || st.max_raw == max_raw,
             what + ": max_raw " + str(st.max_raw) + ", expected " + str(max_raw));

  // --- normalisation ------------------------------------------------------------------------
  // Known finding (see tests/fuzz/README.md): probability rows at T = 1 normalise by 1 / mass in
  // float, which overflows when the mass is below 2^-128 and is 0 when the mass overflows.
  if (st.mode == weight_mode::linear && !(st.mass >= 0x1p-126f && std::isfinite(st.mass))
      && specdec_fuzz::skip_known("linear_mass"))
    return;
  FUZZ_CHECK(st.mass > 0.0f && std::isfinite(st.mass),
             what + ": mass " + str(st.mass) + " of a valid row");
  FUZZ_CHECK(st.inv_mass > 0.0f && std::isfinite(st.inv_mass),
             what + ": inv_mass " + str(st.inv_mass) + " (mass " + str(st.mass) + ")");
  double total = 0.0;
  std::size_t support = 0;
  for (index_t i = 0; i < n; ++i) {
    const float p = sampling::prob_at(dr, st, i);
    FUZZ_CHECK(p >= 0.0f && std::isfinite(p),
               what + ": prob_at(" + std::to_string(i) + ") = " + str(p));
    total += p;
    support += p > 0.0f ? 1u : 0u;
    if (greedy)
      FUZZ_CHECK((p == 1.0f) == (i == arg) && (p == 0.0f) == (i != arg),
                 what + ": a greedy row is not one-hot at the argmax");
  }
  FUZZ_CHECK(std::fabs(total - 1.0) <= 2e-3,
             what + ": probabilities sum to " + str(total) + " (mass " + str(st.mass) + ")");
  FUZZ_CHECK(sampling::prob_at(dr, st, arg) > 0.0f, what + ": the top token was truncated");

  // --- truncation ---------------------------------------------------------------------------
  if (!greedy && params.truncates()) {
    const bool linear = st.mode == weight_mode::linear;
    const auto weight = [&](float r) -> double {
      return linear ? static_cast<double>(r)
                    : static_cast<double>(::specdec::detail::exp_f((r - st.max_raw) * st.inv_temp));
    };
    const float cut = st.cut;
    FUZZ_CHECK(cut <= max_raw, what + ": cut " + str(cut) + " above the max " + str(max_raw));
    std::int64_t above = 0;
    std::int64_t kept = 0;
    double kept_mass = 0.0;
    double above_mass = 0.0;
    for (float r : raw) {
      above += r > cut ? 1 : 0;
      kept += r >= cut ? 1 : 0;
      kept_mass += r >= cut ? weight(r) : 0.0;
      above_mass += r > cut ? weight(r) : 0.0;
    }
    if (params.top_k > 0) {
      // At least the k-th largest: fewer than k entries strictly above the cut (or k at most).
      FUZZ_CHECK(above < params.top_k || kept <= params.top_k,
                 what + ": " + std::to_string(above) + " entries strictly above the top-k cut "
                     + str(cut));
      if (params.min_p == 0.0f && params.top_p == 1.0f)
        FUZZ_CHECK(kept >= std::min<std::int64_t>(params.top_k, n),
                   what + ": top-k kept only " + std::to_string(kept));
    }
    if (params.min_p > 0.0f) {
      const double wmax = weight(max_raw);
      const double floor = static_cast<double>(params.min_p) * wmax;
      for (float r : raw) {
        if (r >= cut && weight(r) > 0.0) // in the support
          FUZZ_CHECK(weight(r) >= floor * (1.0 - 1e-4) - 1e-37,
                     what + ": kept " + str(r) + " below min-p (weight " + str(weight(r)) + " < "
                         + str(floor) + ")");
        else if (params.top_k == 0 && params.top_p == 1.0f)
          FUZZ_CHECK(weight(r) < floor * (1.0 + 1e-4) + 1e-37,
                     what + ": min-p dropped " + str(r) + " (weight " + str(weight(r))
                         + " >= " + str(floor) + ")");
      }
    }
    if (params.top_p < 1.0f) {
      // The cut of min-p and top-k, as prepare_row applies them before top-p.
      float cut_mk = -inf;
      if (params.min_p > 0.0f)
        cut_mk = ::specdec::detail::min_f(
            linear ? ::specdec::detail::fmul(params.min_p, st.max_raw)
                   : st.max_raw
                         + ::specdec::detail::fmul(::specdec::detail::log_f(params.min_p),
                                                   params.temperature),
            st.max_raw);
      if (params.top_k > 0) {
        std::vector<float> vals;
        for (float r : raw)
          if (r >= cut_mk)
            vals.push_back(r);
        if (static_cast<std::size_t>(params.top_k) < vals.size()) {
          std::nth_element(vals.begin(),
                           vals.begin() + (params.top_k - 1),
                           vals.end(),
                           [](float a, float b) { return a > b; });
          cut_mk = std::fmax(cut_mk, vals[static_cast<std::size_t>(params.top_k - 1)]);
        }
      }
      double pre = 0.0;
      for (float r : raw)
        pre += r >= cut_mk ? weight(r) : 0.0;
      const double goal = static_cast<double>(params.top_p) * pre;
      FUZZ_CHECK(kept_mass >= goal * (1.0 - 1e-3) - 1e-37,
                 what + ": top-p kept mass " + str(kept_mass) + " of " + str(pre));
      FUZZ_CHECK(above_mass < goal * (1.0 + 1e-3) + 1e-37,
                 what + ": top-p is not minimal: " + str(above_mass) + " above the cut of "
                     + str(pre));
    }
    FUZZ_CHECK(std::fabs(kept_mass - static_cast<double>(st.mass)) <= 1e-3 * kept_mass + 1e-37,
               what + ": mass " + str(st.mass) + ", kept " + str(kept_mass));
  }

  // --- sampling -----------------------------------------------------------------------------
  for (const float u : {u_fuzzed, 0.0f, 1.0f - 0x1p-24f}) {
    const index_t t = sampling::sample_row(ex, dr, st, u);
    FUZZ_CHECK(t >= 0 && t < n, what + ": sample_row(" + str(u) + ") = " + std::to_string(t));
    // In the support: a positive weight (prob_at itself may underflow to 0 for a tiny weight
    // over a huge mass, e.g. {2.3e-38, 5.3e19} at T = 1, and u = 0 then samples index 0).
    FUZZ_CHECK(greedy || st.weight(raw[static_cast<std::size_t>(t)]) > 0.0f,
               what + ": sampled " + std::to_string(t) + " outside the support");
    if (greedy) {
      FUZZ_CHECK(t == arg, what + ": greedy sample is not the argmax");
      continue;
    }
    // Inverse CDF: the weight before t is at most u * mass, up to t at least u * mass.
    const double target = static_cast<double>(u) * static_cast<double>(st.mass);
    double before = 0.0;
    for (index_t i = 0; i < t; ++i)
      before += static_cast<double>(st.weight(raw[static_cast<std::size_t>(i)]));
    const double upto = before + static_cast<double>(st.weight(raw[static_cast<std::size_t>(t)]));
    const double tol = 1e-3 * static_cast<double>(st.mass) + 1e-37;
    FUZZ_CHECK(before <= target + tol && upto >= target - tol,
               what + ": sample_row(" + str(u) + ") = " + std::to_string(t) + " but CDF before "
                   + str(before) + ", after " + str(upto) + ", target " + str(target));
  }

  // --- entropy ------------------------------------------------------------------------------
  // Known finding (see tests/fuzz/README.md): at T = 1 a probability row's entropy sums
  // w * log(w) over the raw probabilities, which overflows for w above about 3.8e36.
  if (st.mode == weight_mode::linear && specdec_fuzz::skip_known("linear_entropy")) {
    double wlogw = 0.0;
    for (float r : raw) {
      const double w = st.weight(r);
      wlogw += w > 0.0 ? w * std::fabs(std::log(w)) : 0.0;
    }
    if (wlogw > 1e38)
      return;
  }
  const float h = sampling::entropy(ex, dr, st);
  FUZZ_CHECK(std::isfinite(h) && h >= -1e-3f
                 && static_cast<double>(h) <= std::log(static_cast<double>(support)) + 1e-3,
             what + ": entropy " + str(h) + " with " + std::to_string(support)
                 + " tokens in the support");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { // NOLINT
  reader in(data, size);
  const std::uint8_t head = in.u8(); // bits 0-1: float, half, bfloat16 (3: float); bit 2: probs
  const bool probs = (head & 4u) != 0;
  switch ((head & 3u) % 3u) {
  case 0:
    run<float>(in, probs);
    break;
  case 1:
    run<half>(in, probs);
    break;
  default:
    run<bfloat16>(in, probs);
    break;
  }
  return 0;
}

// --- seeds ------------------------------------------------------------------------------------
namespace {

/// Writes what read_params reads. Codes: temperature (u8 % 13: 0 greedy, 4 T = 0.5, 5 T = 1,
/// 8 T = 100), top-p (u8 % 10: 0 off, 3 0.99, 5 0.5, 8 fuzzed 0.25), min-p (u8 % 8: 0 off, 4 1.0,
/// 6 fuzzed 0.25); fuzzed values are written as 0.25.
void write_params(
    specdec_fuzz::writer& w, int temp, std::int32_t top_k, index_t n, int top_p, int min_p) {
  w.u8(static_cast<std::uint64_t>(temp));
  if (temp % 13 >= 11)
    w.value(0.25f);
  if (top_k == 0) {
    w.u8(0);
  } else {
    w.u8(200);
    w.range<std::int32_t>(top_k, 1, static_cast<std::int32_t>(n) + 2);
  }
  w.u8(static_cast<std::uint64_t>(top_p));
  if (top_p % 10 >= 8)
    w.unit(1u << 22);
  w.u8(static_cast<std::uint64_t>(min_p));
  if (min_p % 8 >= 6)
    w.unit(1u << 22);
}

void write_head(specdec_fuzz::writer& w, int dtype, bool probs, index_t n) {
  w.u8(static_cast<std::uint64_t>(dtype | (probs ? 4 : 0)));
  w.flag(n > 512);
  if (n > 512)
    w.range<index_t>(n, 513, 4096);
  else
    w.range<index_t>(n, 0, 512);
}

/// A row given element by element (style 0); dtype 0 float, 1 half, 2 bfloat16.
std::vector<std::uint8_t> explicit_row(int dtype,
                                       bool probs,
                                       const std::vector<float>& values,
                                       int temp,
                                       std::int32_t top_k,
                                       int top_p,
                                       int min_p) {
  specdec_fuzz::writer w;
  const auto n = static_cast<index_t>(values.size());
  write_head(w, dtype, probs, n);
  write_params(w, temp, top_k, n, top_p, min_p);
  w.u8(0);       // style 0: explicit
  w.u64(0);      // seed
  w.value(1.0f); // scale
  w.u8(0);       // colours
  for (int c = 0; c < 4; ++c)
    w.value(0.0f);
  for (float v : values) {
    w.any_value(v);
  }
  if (n > 0)
    w.u8(0);        // no overrides
  w.unit(1u << 23); // u = 0.5
  return w.bytes();
}

/// A generated row (style 1 spread, 2 ties, 3 specials, 4 raw bits) of n > 0 entries.
std::vector<std::uint8_t> generated_row(int dtype,
                                        bool probs,
                                        index_t n,
                                        int style,
                                        std::uint64_t seed,
                                        int temp,
                                        std::int32_t top_k,
                                        int top_p,
                                        int min_p) {
  specdec_fuzz::writer w;
  write_head(w, dtype, probs, n);
  write_params(w, temp, top_k, n, top_p, min_p);
  w.u8(static_cast<std::uint64_t>(style));
  w.u64(seed);
  w.value(8.0f); // scale
  w.u8(2);       // 3 colours
  w.value(1.0f);
  w.special_value(1);
  w.special_value(7);
  w.value(-3.0f);
  w.u8(3); // overrides
  w.range<index_t>(0, 0, n - 1);
  w.special_value(5);
  w.range<index_t>(n / 2, 0, n - 1);
  w.value(5.0f);
  w.range<index_t>(n - 1, 0, n - 1);
  w.special_value(1);
  w.unit(12345);
  return w.bytes();
}

} // namespace

std::vector<specdec_fuzz::seed> specdec_fuzz::seeds() {
  const float dmin = std::numeric_limits<float>::denorm_min();
  const float fmax = std::numeric_limits<float>::max();
  return {
      // Issue 12: the bisection hang, {0x1p-149f, -0.0f} at T = 1, top-p 0.99.
      {"issue12_top_p_signed_zero", explicit_row(0, false, {dmin, -0.0f}, 5, 0, 3, 0)},
      // Issue 12: top-k 2 on {0x1p-149f, -0.0f, 1.0f}.
      {"issue12_top_k_signed_zero", explicit_row(0, false, {dmin, -0.0f, 1.0f}, 5, 2, 0, 0)},
      {"logits_top_k_ties",
       explicit_row(0, false, {1.0f, 3.0f, 3.0f, -inf, 2.0f, 3.0f}, 5, 2, 0, 0)},
      {"probs_min_p_half", explicit_row(1, true, {0.1f, 0.4f, 0.0f, 0.5f}, 4, 0, 5, 6)},
      {"probs_nan", explicit_row(0, true, {0.1f, std::nanf(""), 0.5f}, 5, 0, 0, 0)},
      {"probs_signed_zero_bf16", explicit_row(2, true, {-0.0f, 0.0f, 0.25f}, 5, 0, 3, 0)},
      {"logits_all_neg_inf", explicit_row(0, false, {-inf, -inf, -inf}, 5, 0, 0, 0)},
      {"logits_greedy_pos_inf", explicit_row(0, false, {1.0f, inf, 2.0f}, 0, 0, 0, 0)},
      {"empty_row", explicit_row(0, false, {}, 5, 0, 0, 0)},
      {"short_spread_top_p", generated_row(0, false, 300, 1, 7, 5, 0, 5, 0)},
      {"long_spread_top_k_radix", generated_row(0, false, 1500, 1, 11, 4, 40, 3, 0)},
      {"long_ties_top_p_min_p_radix_half", generated_row(1, false, 700, 2, 3, 5, 0, 5, 6)},
      {"long_probs_bf16_radix", generated_row(2, true, 2048, 1, 5, 8, 100, 3, 6)},
      {"short_raw_bits_half", generated_row(1, false, 64, 4, 9, 5, 3, 8, 0)},
      // Findings (tests/fuzz/README.md): probability rows at T = 1 whose mass is below 2^-128
      // (1 / mass overflows) or above FLT_MAX, and whose entropy sum w log w overflows.
      {"finding_linear_mass_denormal", explicit_row(0, true, {dmin}, 5, 0, 0, 0)},
      {"finding_linear_mass_overflow", explicit_row(0, true, {fmax, fmax}, 5, 0, 0, 0)},
      {"finding_linear_entropy_overflow", explicit_row(0, true, {0.0f, fmax}, 5, 0, 0, 0)},
  };
}
