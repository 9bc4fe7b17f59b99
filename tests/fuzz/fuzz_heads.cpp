// SPDX-License-Identifier: Apache-2.0
//
// Fuzz target: the DSpark head-file loader, propose::load_heads (semi_ar_heads.hpp). The input
// is the file itself (written to an in-memory file, since the loader takes a path), loaded with
// float and with bfloat16 weights.
//
// Properties checked:
//  - the status is exactly what a brute-force reading of the documented format gives: ok,
//    corrupt_data (short file, magic, flags, kind, dimensions, sizes that overflow or differ from
//    the file's, a head that fails validate()), unsupported (version), invalid_value (a weight or
//    the confidence bias not finite once converted to W);
//  - on failure the outputs are unchanged; on success both heads validate, their dimensions and
//    every weight are the file's (rounded to W), the confidence head's rank is the head's;
//  - save_heads(load_heads(x)) succeeds and, with float weights, gives back x byte for byte (up to
//    the reserved fields and the bias of an absent confidence head, which the loader does not
//    check); with bfloat16 weights loading the saved file gives the same heads again;
//  - no allocation larger than the file implies: the CTest run uses -malloc_limit_mb=64 and inputs
//    of at most a few KB, so a loader that sized a buffer from the header before checking it
//    against the file size fails (the replay driver aborts above 1 GiB).

#include <specdec/propose/semi_ar_heads_io.hpp>
#include <specdec/specdec.hpp>

#include "support/fuzz_input.hpp"
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

using namespace specdec;
using propose::confidence_head;
using propose::head_kind;
using propose::sequential_head;

namespace {

__extension__ using i128 = __int128; // exact size arithmetic (no -Wpedantic warning)

std::uint64_t get_u64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}
std::uint32_t get_u32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}
float as_float(std::uint32_t u) {
  float f = 0.0f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

/// A float of the file as W sees it.
template <class W>
float through(float f) {
  return dtype_traits<W>::to_float(dtype_traits<W>::from_float(f));
}

/// What load_heads must return for `file`, from the format's documentation (semi_ar_heads.hpp).
/// On ok, `arrays` receives the element counts of w1, w2, proj_w, proj_b, confidence w.
template <class W>
errc expected_status(const std::vector<std::uint8_t>& file, i128 (&arrays)[5]) {
  if (file.size() < 48)
    return errc::corrupt_data;
  if (std::memcmp(file.data(), "SPDKHEAD", 8) != 0)
    return errc::corrupt_data;
  if (get_u32(file.data() + 8) != 1)
    return errc::unsupported;
  const unsigned kind = file[12];
  const unsigned has_conf = file[13];
  const unsigned conf_markov = file[14];
  if (kind > 3 || has_conf > 1 || conf_markov > 1 || (has_conf == 0 && conf_markov != 0))
    return errc::corrupt_data;
  const auto vocab = static_cast<std::int64_t>(get_u64(file.data() + 16));
  const auto rank = static_cast<std::int64_t>(get_u64(file.data() + 24));
  const auto hidden = static_cast<std::int64_t>(get_u64(file.data() + 32));
  if (vocab < 0 || rank < 0 || hidden < 0)
    return errc::corrupt_data;
  // Element counts in 128-bit arithmetic; anything that does not fit 63 bits is corrupt.
  const i128 v = vocab;
  const i128 r = rank;
  const i128 h = hidden;
  constexpr i128 limit = static_cast<i128>(INT64_MAX);
  const auto mul = [](i128 a, i128 b) -> i128 { // saturating above limit
    return a != 0 && b > limit / a ? limit + 1 : a * b;
  };
  i128 n[5] = {0, 0, 0, 0, 0};
  if (kind != 0) {
    n[0] = n[1] = mul(v, r);
    if (kind == 2) {
      n[2] = mul(r, h + r);
      n[3] = r;
    } else if (kind == 3) {
      n[2] = mul(mul(3, r), 2 * r + h);
      n[3] = 3 * r;
    }
  }
  if (has_conf != 0)
    n[4] = h + (conf_markov != 0 ? r : 0);
  i128 total = 0;
  for (const i128 c : n) {
    if (c > limit)
      return errc::corrupt_data;
    total += c;
  }
  if (total > limit || total * 4 > limit)
    return errc::corrupt_data;
  if (total * 4 != static_cast<i128>(file.size()) - 48)
    return errc::corrupt_data;
  // sequential_head::validate: rank 0 for kind none, rank and vocab >= 1 otherwise.
  if (kind == 0 ? rank != 0 : (rank < 1 || vocab < 1))
    return errc::corrupt_data;
  for (int a = 0; a < 5; ++a)
    arrays[a] = n[a];
  const std::uint8_t* p = file.data() + 48;
  const i128 head_floats = n[0] + n[1] + n[2] + n[3];
  for (i128 i = 0; i < head_floats; ++i, p += 4)
    if (!std::isfinite(through<W>(as_float(get_u32(p)))))
      return errc::invalid_value;
  if (has_conf != 0) {
    for (i128 i = 0; i < n[4]; ++i, p += 4)
      if (!std::isfinite(through<W>(as_float(get_u32(p)))))
        return errc::invalid_value;
    if (!std::isfinite(as_float(get_u32(file.data() + 40))))
      return errc::invalid_value;
  }
  return errc::ok;
}

std::uint32_t raw_bits(float x) {
  return specdec_fuzz::bits(x);
}
std::uint32_t raw_bits(bfloat16 x) {
  return x.bits;
}

template <class W>
bool same(const std::vector<W>& a, const std::vector<W>& b) {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (raw_bits(a[i]) != raw_bits(b[i]))
      return false;
  return true;
}

template <class W>
bool same_heads(const sequential_head<W>& a, const sequential_head<W>& b) {
  return a.kind == b.kind && a.vocab == b.vocab && a.rank == b.rank && a.hidden == b.hidden
         && same(a.w1, b.w1) && same(a.w2, b.w2) && same(a.proj_w, b.proj_w)
         && same(a.proj_b, b.proj_b);
}

template <class W>
bool same_conf(const std::optional<confidence_head<W>>& a,
               const std::optional<confidence_head<W>>& b) {
  if (a.has_value() != b.has_value())
    return false;
  if (!a)
    return true;
  return specdec_fuzz::bits(a->bias) == specdec_fuzz::bits(b->bias) && a->hidden == b->hidden
         && a->rank == b->rank && a->with_markov == b->with_markov && same(a->w, b->w);
}

specdec_fuzz::memory_file& input_file() {
  static specdec_fuzz::memory_file f;
  return f;
}
specdec_fuzz::memory_file& output_file() {
  static specdec_fuzz::memory_file f;
  return f;
}

template <class W>
void check(const std::vector<std::uint8_t>& file) {
  const char* wname = dtype_traits<W>::name;
  i128 n[5] = {0, 0, 0, 0, 0};
  const errc want = expected_status<W>(file, n);

  // Outputs start as a recognisable head, so that "unchanged on error" can be checked.
  sequential_head<W> head;
  head.kind = head_kind::markov;
  head.vocab = 1;
  head.rank = 1;
  head.hidden = 7;
  head.w1 = {dtype_traits<W>::from_float(0.5f)};
  head.w2 = {dtype_traits<W>::from_float(-2.0f)};
  std::optional<confidence_head<W>> conf;
  conf.emplace();
  conf->hidden = 7;
  conf->rank = 3;
  conf->bias = 1.5f;
  conf->w.assign(10, dtype_traits<W>::from_float(0.25f));
  const sequential_head<W> head0 = head;
  const std::optional<confidence_head<W>> conf0 = conf;

  const status s = propose::load_heads(input_file().path(), head, conf);
  const std::string what = std::string(wname) + " load of a " + std::to_string(file.size())
                           + "-byte file: " + s.message() + ", expected " + message(want);
  if (specdec_fuzz::verbose())
    std::fprintf(stderr, "  %s\n", what.c_str());
  FUZZ_CHECK(s.code == want, what);
  if (!s.ok()) {
    FUZZ_CHECK(same_heads(head, head0) && same_conf(conf, conf0), what + ": outputs changed");
    return;
  }
  FUZZ_CHECK(head.validate().ok() && (!conf || conf->validate().ok()),
             what + ": a loaded head does not validate");
  FUZZ_CHECK(static_cast<unsigned>(head.kind) == file[12]
                 && head.vocab == static_cast<index_t>(get_u64(file.data() + 16))
                 && head.rank == static_cast<index_t>(get_u64(file.data() + 24))
                 && head.hidden == static_cast<index_t>(get_u64(file.data() + 32)),
             what + ": dimensions differ from the header");
  FUZZ_CHECK(conf.has_value() == (file[13] != 0), what + ": confidence head presence");
  if (conf)
    FUZZ_CHECK(conf->hidden == head.hidden && conf->rank == head.rank
                   && conf->with_markov == (file[14] != 0)
                   && specdec_fuzz::bits(conf->bias) == get_u32(file.data() + 40),
               what + ": confidence head fields");
  // Every weight, in file order.
  const std::uint8_t* p = file.data() + 48;
  const auto same_as_file = [&p](const std::vector<W>& v) {
    for (const W& x : v) {
      const float f = through<W>(as_float(get_u32(p)));
      p += 4;
      const float got = dtype_traits<W>::to_float(x);
      if (specdec_fuzz::bits(f) != specdec_fuzz::bits(got))
        return false;
    }
    return true;
  };
  FUZZ_CHECK(static_cast<i128>(head.w1.size()) == n[0] && static_cast<i128>(head.w2.size()) == n[1]
                 && static_cast<i128>(head.proj_w.size()) == n[2]
                 && static_cast<i128>(head.proj_b.size()) == n[3]
                 && (!conf || static_cast<i128>(conf->w.size()) == n[4]),
             what + ": array sizes");
  FUZZ_CHECK(same_as_file(head.w1) && same_as_file(head.w2) && same_as_file(head.proj_w)
                 && same_as_file(head.proj_b) && (!conf || same_as_file(conf->w)),
             what + ": a weight differs from the file");

  // Round trip.
  const status saved = propose::save_heads(output_file().path(), head, conf ? &*conf : nullptr);
  FUZZ_CHECK(saved.ok(), what + ": save_heads of the loaded heads: " + saved.message());
  if constexpr (std::is_same_v<W, float>) {
    std::vector<std::uint8_t> expect = file;
    expect[15] = 0; // reserved
    for (int i = 44; i < 48; ++i)
      expect[static_cast<std::size_t>(i)] = 0; // reserved
    if (file[13] == 0)
      for (int i = 40; i < 44; ++i)
        expect[static_cast<std::size_t>(i)] = 0; // bias of an absent confidence head
    FUZZ_CHECK(output_file().read() == expect, what + ": save(load(x)) differs from x");
  } else {
    sequential_head<W> again;
    std::optional<confidence_head<W>> again_conf;
    const status s2 = propose::load_heads(output_file().path(), again, again_conf);
    FUZZ_CHECK(s2.ok() && same_heads(again, head) && same_conf(again_conf, conf),
               what + ": load(save(load(x))) differs from load(x): " + s2.message());
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { // NOLINT
  const std::vector<std::uint8_t> file(data, data + size);
  input_file().write(file);
  check<float>(file);
  check<bfloat16>(file);
  return 0;
}

// --- seeds ------------------------------------------------------------------------------------
namespace {

std::vector<std::uint8_t> saved(const sequential_head<float>& h, const confidence_head<float>* c) {
  specdec_fuzz::memory_file f;
  const status s = propose::save_heads(f.path(), h, c);
  if (!s.ok()) {
    std::fprintf(stderr, "seed: save_heads failed: %s\n", s.message());
    std::abort();
  }
  return f.read();
}

std::vector<float> ramp(index_t n, float scale) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i)
    v[static_cast<std::size_t>(i)] = scale * static_cast<float>((i * 37) % 11 - 5);
  return v;
}

sequential_head<float> make_head(head_kind kind, index_t vocab, index_t rank, index_t hidden) {
  sequential_head<float> h;
  h.kind = kind;
  h.vocab = vocab;
  h.rank = rank;
  h.hidden = hidden;
  if (kind != head_kind::none) {
    h.w1 = ramp(vocab * rank, 0.125f);
    h.w2 = ramp(vocab * rank, -0.25f);
  }
  if (kind == head_kind::gated) {
    h.proj_w = ramp(rank * (hidden + rank), 0.5f);
    h.proj_b = ramp(rank, 1.0f);
  } else if (kind == head_kind::rnn) {
    h.proj_w = ramp(3 * rank * (2 * rank + hidden), 0.5f);
    h.proj_b = ramp(3 * rank, 1.0f);
  }
  return h;
}

confidence_head<float> make_conf(index_t hidden, index_t rank, bool with_markov) {
  confidence_head<float> c;
  c.hidden = hidden;
  c.rank = rank;
  c.with_markov = with_markov;
  c.bias = -0.75f;
  c.w = ramp(hidden + (with_markov ? rank : 0), 0.0625f);
  return c;
}

void put_u64(std::vector<std::uint8_t>& b, std::size_t at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i)
    b[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
}

} // namespace

std::vector<specdec_fuzz::seed> specdec_fuzz::seeds() {
  const confidence_head<float> conf_markov = make_conf(3, 2, true);
  const confidence_head<float> conf_plain = make_conf(2, 1, false);
  const confidence_head<float> conf_none = make_conf(4, 0, false);
  std::vector<specdec_fuzz::seed> out = {
      {"markov_with_confidence", saved(make_head(head_kind::markov, 5, 2, 3), &conf_markov)},
      {"gated", saved(make_head(head_kind::gated, 4, 2, 3), nullptr)},
      {"rnn_with_plain_confidence", saved(make_head(head_kind::rnn, 3, 1, 2), &conf_plain)},
      {"none_with_confidence", saved(make_head(head_kind::none, 0, 0, 4), &conf_none)},
      {"none_header_only", saved(make_head(head_kind::none, 0, 0, 0), nullptr)},
  };
  // Weights that bfloat16 cannot hold (rounded, and one that overflows to inf in bfloat16).
  sequential_head<float> odd = make_head(head_kind::markov, 2, 1, 0);
  odd.w1 = {0.1f, std::numeric_limits<float>::max()};
  odd.w2 = {std::numeric_limits<float>::denorm_min(), -0.0f};
  out.push_back({"markov_bf16_overflow_and_denormal", saved(odd, nullptr)});
  // Corruptions of the markov file.
  const std::vector<std::uint8_t> base = out[0].bytes;
  std::vector<std::uint8_t> b = base;
  b[8] = 2;
  out.push_back({"bad_version", b});
  b = base;
  b.pop_back();
  out.push_back({"truncated", b});
  b = base;
  b.push_back(0);
  out.push_back({"trailing_byte", b});
  b = base;
  std::memcpy(b.data() + 48, "\xff\xff\xff\x7f", 4); // a NaN weight
  out.push_back({"nan_weight", b});
  b = base;
  b[15] = 9;
  b[44] = 1;
  out.push_back({"reserved_bytes_set", b});
  b = base;
  put_u64(b, 16, std::uint64_t{1} << 62); // vocab 2^62: sizes overflow
  out.push_back({"vocab_2_62", b});
  b = base;
  put_u64(b, 16, std::uint64_t{1} << 40); // vocab 2^40: a 32 TiB file promised, 150 bytes given
  out.push_back({"vocab_2_40_short_file", b});
  b = base;
  put_u64(b, 32, ~std::uint64_t{0}); // hidden -1
  out.push_back({"negative_hidden", b});
  b = base;
  b[12] = 0; // kind none with rank 2
  out.push_back({"none_with_rank", b});
  b.assign(base.begin(), base.begin() + 12);
  out.push_back({"short_header", b});
  return out;
}
