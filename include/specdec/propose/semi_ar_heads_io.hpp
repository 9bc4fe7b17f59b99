// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The binary file format of DSpark's heads: save_heads / load_heads of a sequential head
///        and an optional confidence head (propose/semi_ar_heads.hpp).
///
/// Kept apart from the heads themselves so that the drafter (propose/semi_ar.hpp) and the device
/// kernels that share the heads' math never pull in `<fstream>` or `<filesystem>`.

#include <specdec/config.hpp>

#include <specdec/core/dtype.hpp>
#include <specdec/core/math.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/propose/semi_ar_heads.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <utility>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace propose {

/// @brief Version of the head file format written by save_heads.
///
/// The format (all integers and floats little-endian, floats IEEE binary32):
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | magic "SPDKHEAD" |
/// | 8 | 4 | u32 version (= heads_file_version) |
/// | 12 | 1 | u8 head_kind (0 none, 1 markov, 2 gated, 3 rnn) |
/// | 13 | 1 | u8 confidence head present (0 or 1) |
/// | 14 | 1 | u8 confidence with_markov (0 or 1; 0 when absent) |
/// | 15 | 1 | u8 reserved, 0 |
/// | 16 | 8 | i64 vocab |
/// | 24 | 8 | i64 rank |
/// | 32 | 8 | i64 hidden |
/// | 40 | 4 | f32 confidence bias (0 when absent) |
/// | 44 | 4 | u32 reserved, 0 |
/// | 48 | ... | f32 arrays, in order: w1 [vocab, rank], w2 [vocab, rank], proj_w, proj_b (sizes as
///   in sequential_head), then the confidence weights [hidden + rank] or [hidden] when present |
///
/// The file keeps one hidden size: the head's for gated and rnn heads (the confidence head must
/// match it), else the confidence head's (a loaded markov or none head gets it as its unused
/// `hidden`). The file ends right after the last array. bfloat16 weights are widened exactly when
/// saved and rounded to nearest even when loaded (exact for files saved from bfloat16).
inline constexpr std::uint32_t heads_file_version = 1;

namespace detail {

inline constexpr char heads_magic[8] = {'S', 'P', 'D', 'K', 'H', 'E', 'A', 'D'};
inline constexpr std::size_t heads_header_bytes = 48;

inline void put_u32(std::vector<unsigned char>& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    b.push_back(static_cast<unsigned char>(v >> (8 * i)));
}
inline void put_u64(std::vector<unsigned char>& b, std::uint64_t v) {
  for (int i = 0; i < 8; ++i)
    b.push_back(static_cast<unsigned char>(v >> (8 * i)));
}
inline std::uint32_t get_u32(const unsigned char* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}
inline std::uint64_t get_u64(const unsigned char* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}
template <class W>
void put_floats(std::vector<unsigned char>& b, const std::vector<W>& v) {
  for (const W& x : v)
    put_u32(b, ::specdec::detail::float_bits(dtype_traits<W>::to_float(x)));
}
template <class W>
void get_floats(const unsigned char*& p, index_t n, std::vector<W>& out) {
  out.resize(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i, p += 4)
    out[static_cast<std::size_t>(i)] =
        dtype_traits<W>::from_float(::specdec::detail::bits_float(get_u32(p)));
}

} // namespace detail

/// @brief Writes a sequential head and an optional confidence head to `path` (format: see
///        heads_file_version), replacing the file.
/// @tparam W the weight element type: float or bfloat16
/// @param[in] path the file to write
/// @param[in] head the sequential head (validated first)
/// @param[in] confidence the confidence head, or null for none (validated first)
/// @return errc::ok; the validate() code of either head (nothing written); errc::shape_mismatch
///   when the confidence head's rank differs from the head's (with_markov); errc::io_error when
///   the file cannot be opened or written
/// @par Complexity
/// O(number of weights), one write.
template <class W>
[[nodiscard]] status save_heads(const std::filesystem::path& path,
                                const sequential_head<W>& head,
                                const confidence_head<W>* confidence = nullptr) {
  if (const status s = head.validate(); !s.ok())
    return s;
  if (confidence != nullptr) {
    if (const status s = confidence->validate(); !s.ok())
      return s;
    if (confidence->with_markov && confidence->rank != head.rank)
      return status{errc::shape_mismatch};
  }
  std::vector<unsigned char> b;
  b.insert(b.end(), detail::heads_magic, detail::heads_magic + 8);
  detail::put_u32(b, heads_file_version);
  b.push_back(static_cast<unsigned char>(head.kind));
  b.push_back(confidence != nullptr ? 1 : 0);
  b.push_back(confidence != nullptr && confidence->with_markov ? 1 : 0);
  b.push_back(0);
  detail::put_u64(b, static_cast<std::uint64_t>(head.vocab));
  detail::put_u64(b, static_cast<std::uint64_t>(head.rank));
  const index_t hidden =
      confidence != nullptr && head.kind != head_kind::gated && head.kind != head_kind::rnn
          ? confidence->hidden
          : head.hidden;
  if (confidence != nullptr && confidence->hidden != hidden)
    return status{errc::shape_mismatch};
  detail::put_u64(b, static_cast<std::uint64_t>(hidden));
  detail::put_u32(b,
                  ::specdec::detail::float_bits(confidence != nullptr ? confidence->bias : 0.0f));
  detail::put_u32(b, 0);
  detail::put_floats(b, head.w1);
  detail::put_floats(b, head.w2);
  detail::put_floats(b, head.proj_w);
  detail::put_floats(b, head.proj_b);
  if (confidence != nullptr)
    detail::put_floats(b, confidence->w);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f)
    return status{errc::io_error};
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  f.flush();
  return f ? status{} : status{errc::io_error};
}

/// @brief Reads heads written by save_heads.
///
/// The header is checked against the file size before anything is allocated, so a corrupt
/// header cannot cause a huge allocation. On failure the outputs are left unchanged.
/// @tparam W the weight element type: float or bfloat16
/// @param[in] path the file
/// @param[out] head receives the sequential head
/// @param[out] confidence receives the confidence head, or std::nullopt when the file has none
/// @return errc::ok; errc::io_error when the file cannot be opened or read; errc::unsupported for
///   a version other than heads_file_version; errc::corrupt_data for a wrong magic, a file shorter
///   than its header, bad flags, kind or dimensions, or a size that differs from what the header
///   promises (truncated or trailing bytes); the validate() code of a head whose loaded weights
///   fail it (e.g. errc::invalid_value for a NaN weight)
/// @par Complexity
/// O(file size).
template <class W>
[[nodiscard]] status load_heads(const std::filesystem::path& path,
                                sequential_head<W>& head,
                                std::optional<confidence_head<W>>& confidence) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    return status{errc::io_error};
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  if (size < 0)
    return status{errc::io_error};
  f.seekg(0, std::ios::beg);
  if (static_cast<std::uint64_t>(size) < detail::heads_header_bytes)
    return status{errc::corrupt_data};
  unsigned char hdr[detail::heads_header_bytes];
  if (!f.read(reinterpret_cast<char*>(hdr), static_cast<std::streamsize>(sizeof(hdr))))
    return status{errc::io_error};
  for (int i = 0; i < 8; ++i)
    if (hdr[i] != static_cast<unsigned char>(detail::heads_magic[i]))
      return status{errc::corrupt_data};
  if (detail::get_u32(hdr + 8) != heads_file_version)
    return status{errc::unsupported};
  const unsigned kind_byte = hdr[12];
  const unsigned has_conf = hdr[13];
  const unsigned conf_markov = hdr[14];
  if (kind_byte > static_cast<unsigned>(head_kind::rnn) || has_conf > 1u || conf_markov > 1u
      || (has_conf == 0u && conf_markov != 0u))
    return status{errc::corrupt_data};
  const auto vocab = static_cast<index_t>(detail::get_u64(hdr + 16));
  const auto rank = static_cast<index_t>(detail::get_u64(hdr + 24));
  const auto hidden = static_cast<index_t>(detail::get_u64(hdr + 32));
  const float bias = ::specdec::detail::bits_float(detail::get_u32(hdr + 40));
  const auto kind = static_cast<head_kind>(kind_byte);
  index_t n[4];
  if (vocab < 0 || rank < 0 || hidden < 0 || !detail::head_sizes(kind, vocab, rank, hidden, n))
    return status{errc::corrupt_data};
  index_t n_conf = 0;
  if (has_conf != 0u && __builtin_add_overflow(hidden, conf_markov != 0u ? rank : 0, &n_conf))
    return status{errc::corrupt_data};
  index_t total = n_conf;
  for (index_t c : n)
    if (__builtin_add_overflow(total, c, &total))
      return status{errc::corrupt_data};
  index_t bytes = 0;
  if (!detail::checked_mul(total, 4, bytes)
      || static_cast<std::uint64_t>(bytes)
             != static_cast<std::uint64_t>(size) - detail::heads_header_bytes)
    return status{errc::corrupt_data};
  std::vector<unsigned char> payload(static_cast<std::size_t>(bytes));
  if (bytes > 0
      && !f.read(reinterpret_cast<char*>(payload.data()), static_cast<std::streamsize>(bytes)))
    return status{errc::io_error};
  sequential_head<W> h;
  h.kind = kind;
  h.vocab = vocab;
  h.rank = rank;
  h.hidden = hidden;
  const unsigned char* p = payload.data();
  detail::get_floats(p, n[0], h.w1);
  detail::get_floats(p, n[1], h.w2);
  detail::get_floats(p, n[2], h.proj_w);
  detail::get_floats(p, n[3], h.proj_b);
  if (const status s = h.validate(); !s.ok())
    return s.code == errc::invalid_value ? s : status{errc::corrupt_data};
  std::optional<confidence_head<W>> c;
  if (has_conf != 0u) {
    c.emplace();
    c->bias = bias;
    c->hidden = hidden;
    c->rank = rank;
    c->with_markov = conf_markov != 0u;
    detail::get_floats(p, n_conf, c->w);
    if (const status s = c->validate(); !s.ok())
      return s.code == errc::invalid_value ? s : status{errc::corrupt_data};
  }
  head = std::move(h);
  confidence = std::move(c);
  return status{};
}

} // namespace propose

SPECDEC_NAMESPACE_END
