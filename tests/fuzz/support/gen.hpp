// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Generators shared by the verification fuzz targets (chain and tree): sampling
/// parameters (valid or not), distribution rows of any dtype, draft tokens, positions, and a
/// brute-force greedy reference for one row.

#include <specdec/specdec.hpp>

#include "support/fuzz_input.hpp"
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace specdec_fuzz {

using specdec::index_t;
using specdec::token_id;

/// Formats a double for messages.
inline std::string str(double x) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", x);
  return buf;
}

/// A float as row element T (rounded for half / bfloat16).
template <class T>
T element(float v) {
  if constexpr (std::is_same_v<T, float>)
    return v;
  else
    return specdec::dtype_traits<T>::from_float(v);
}

/// Sampling parameters: usually valid (a table of typical and edge values), sometimes anything
/// (NaN, infinities, negatives, top-k below 0), which batch validation must refuse.
inline specdec::sampling::sampling_params read_params(reader& in, index_t vocab) {
  specdec::sampling::sampling_params p;
  const std::uint8_t mode = in.u8();
  if (mode >= 240) { // anything
    p.temperature = in.value();
    p.top_k = in.range<std::int32_t>(-2, static_cast<std::int32_t>(vocab) + 2);
    p.top_p = in.value();
    p.min_p = in.value();
    return p;
  }
  static constexpr float temps[] = {0.0f, 1e-6f, 1e-5f, 0.5f, 1.0f, 1.0f, 1.0f, 2.0f, 100.0f};
  p.temperature = temps[mode % 9];
  const std::uint8_t t = in.u8();
  p.top_k = t < 170 ? 0 : in.range<std::int32_t>(1, static_cast<std::int32_t>(vocab) + 1);
  static constexpr float top_ps[] = {1.0f, 1.0f, 1.0f, 0.99f, 0.9f, 0.5f, 0x1p-149f};
  p.top_p = top_ps[in.u8() % 7];
  static constexpr float min_ps[] = {0.0f, 0.0f, 0.0f, 0.0f, 0.05f, 0.5f, 1.0f};
  p.min_p = min_ps[in.u8() % 7];
  return p;
}

/// Writes what read_params reads for table entries (temperature index into {0, 1e-6, 1e-5, 0.5,
/// 1, 1, 1, 2, 100}, top-k 0 for none, top-p index into {1, 1, 1, .99, .9, .5, 2^-149}, min-p
/// index into {0, 0, 0, 0, .05, .5, 1}).
inline void
write_params(writer& w, int temp, std::int32_t top_k, index_t vocab, int top_p, int min_p) {
  w.u8(static_cast<std::uint64_t>(temp));
  if (top_k == 0) {
    w.u8(0);
  } else {
    w.u8(200);
    w.range<std::int32_t>(top_k, 1, static_cast<std::int32_t>(vocab) + 1);
  }
  w.u8(static_cast<std::uint64_t>(top_p));
  w.u8(static_cast<std::uint64_t>(min_p));
}

/// A decode position: mostly small, often at and around max_position and INT64_MAX, sometimes
/// negative or any 64-bit value.
inline index_t read_position(reader& in) {
  constexpr index_t big = std::numeric_limits<index_t>::max();
  switch (in.u8() % 10) {
  case 0:
  case 1:
  case 2:
  case 3:
    return in.range<index_t>(0, 1000);
  case 4:
    return specdec::max_position - in.range<index_t>(0, 8);
  case 5:
    return specdec::max_position + in.range<index_t>(1, 8);
  case 6:
    return big - in.range<index_t>(0, 8);
  case 7:
    return -in.range<index_t>(1, 8);
  case 8:
    return std::numeric_limits<index_t>::min() + in.range<index_t>(0, 8);
  default:
    return in.i64();
  }
}

/// Fills `n` elements of a row from the input: a style (explicit values, spread values, a few
/// tied values, one peak), then up to 7 overrides. Probability rows get non-negative values from
/// the generated styles (explicit values and overrides may be anything).
template <class T>
void read_row(reader& in, T* row, index_t n, bool probs) {
  const int style = in.u8() % 4;
  splitmix g{in.u16()};
  float palette[3] = {in.value(), in.value(), in.value()};
  const float scale = static_cast<float>(1 + in.u8() % 16);
  const index_t peak = n > 0 ? static_cast<index_t>(g.next() % static_cast<std::uint64_t>(n)) : 0;
  for (index_t i = 0; i < n; ++i) {
    float v = 0.0f;
    switch (style) {
    case 0:
      v = i < 8 ? in.value() : static_cast<float>(g.unit() * scale);
      break;
    case 1:
      v = static_cast<float>((g.unit() * 2.0 - 1.0) * scale);
      break;
    case 2:
      v = palette[g.next() % 3];
      break;
    default:
      v = i == peak ? scale : (probs ? 0.0f : -std::numeric_limits<float>::infinity());
      break;
    }
    if (probs && style != 0 && style != 2)
      v = std::fabs(v);
    row[i] = element<T>(v);
  }
  const int overrides = n > 0 ? in.u8() % 8 : 0;
  for (int o = 0; o < overrides; ++o) {
    const index_t i = in.range<index_t>(0, n - 1);
    row[i] = element<T>(in.value());
  }
}

/// Writes a row that read_row reads as `values` exactly (style 0: at most 8 explicit values, the
/// rest must be absent: n <= 8), without overrides.
inline void write_row(writer& w, const std::vector<float>& values) {
  w.u8(0);  // style 0
  w.u16(0); // generator seed
  for (int c = 0; c < 3; ++c)
    w.value(0.0f);
  w.u8(0); // scale 1
  for (float v : values) {
    w.any_value(v);
  }
  if (!values.empty())
    w.u8(0); // no overrides
}

/// First index of the largest valid raw value of a row under greedy parameters (valid: not NaN,
/// not +inf; for probability rows, not negative either), or -1 when none is above -inf; and
/// whether the row is usable (no invalid value, some mass).
struct greedy_row {
  index_t best = -1;      ///< first argmax, -1 when none
  bool invalid = false;   ///< a NaN, +inf (or negative probability)
  bool zero_mass = false; ///< valid but without mass
};

template <class T>
greedy_row brute_greedy_row(const T* row, index_t n, bool probs) {
  greedy_row g;
  float best_v = -std::numeric_limits<float>::infinity();
  for (index_t i = 0; i < n; ++i) {
    const float x = specdec::load_as_float(row, i);
    const bool bad =
        std::isnan(x) || x == std::numeric_limits<float>::infinity() || (probs && x < 0.0f);
    g.invalid = g.invalid || bad;
    if (!bad && x > best_v) {
      best_v = x;
      g.best = i;
    }
  }
  g.zero_mass = !g.invalid && (g.best < 0 || (probs && !(best_v > 0.0f)));
  return g;
}

/// A draft token for a position: often the target's greedy choice (so that drafts get accepted),
/// sometimes the draft row's, any id of the vocabulary, or one outside it.
inline token_id read_token(reader& in, index_t vocab, index_t target_best, index_t draft_best) {
  const std::uint8_t s = in.u8();
  if (s < 110)
    return static_cast<token_id>(target_best >= 0 ? target_best : 0);
  if (s < 150)
    return static_cast<token_id>(draft_best >= 0 ? draft_best : 0);
  if (s < 230)
    return in.range<token_id>(0, static_cast<token_id>(vocab - 1));
  if (s < 240)
    return static_cast<token_id>(vocab);
  if (s < 250)
    return -1;
  return static_cast<token_id>(in.u32());
}

} // namespace specdec_fuzz
