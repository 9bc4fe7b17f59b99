// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief A validated reader and a writer of safetensors files, the field's weight format.
///
/// Layout of a file: an 8-byte little-endian u64 `N`, then an `N`-byte UTF-8 JSON header, then
/// the data section. The header is one JSON object mapping each tensor name to
/// `{"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}` (byte offsets relative to
/// the start of the data section); the optional key `"__metadata__"` maps to an object of
/// string to string. The header must begin with `{` and may be padded with trailing spaces.
///
/// The reader treats every file as hostile: the header is parsed by a strict parser for exactly
/// this schema (no general JSON), every number is checked before it is used, the tensors must
/// tile the data section exactly, and nothing is allocated from a size that was not first checked
/// against the file's real size. A failure is a status with a one-line explanation, never
/// undefined behaviour or an exception (an allocation failure is errc::unsupported; in a build
/// without exceptions it terminates, as any allocation there does). Assumes a little-endian host.

#include <specdec/config.hpp>

#include <specdec/core/dtype.hpp>
#include <specdec/core/status.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <ios>
#include <limits>
#include <map>
#include <new>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace io {

static_assert(std::endian::native == std::endian::little,
              "specdec/io/safetensors.hpp: safetensors data is little-endian, and so must the host "
              "be");

/// @brief Element types of a safetensors tensor that this reader knows.
///
/// The spec's other types (F8_E4M3, F8_E5M2, F8_E8M0, F6_E2M3, F6_E3M2, F4, C64) are refused with
/// errc::unsupported when a file is parsed.
enum class dtype : std::uint8_t {
  f32,    ///< "F32": IEEE binary32
  f64,    ///< "F64": IEEE binary64
  f16,    ///< "F16": IEEE binary16
  bf16,   ///< "BF16": bfloat16 (the upper half of a binary32)
  i8,     ///< "I8"
  i16,    ///< "I16"
  i32,    ///< "I32"
  i64,    ///< "I64"
  u8,     ///< "U8"
  u16,    ///< "U16"
  u32,    ///< "U32"
  u64,    ///< "U64"
  boolean ///< "BOOL": one byte, 0 or 1
};

/// @brief Bytes per element of a dtype.
/// @param[in] t the dtype
/// @return 1, 2, 4 or 8; 0 for a value that names no enumerator
/// @par Complexity
/// Constant.
[[nodiscard]] constexpr std::size_t dtype_size(dtype t) noexcept {
  switch (t) {
  case dtype::i8:
  case dtype::u8:
  case dtype::boolean:
    return 1;
  case dtype::f16:
  case dtype::bf16:
  case dtype::i16:
  case dtype::u16:
    return 2;
  case dtype::f32:
  case dtype::i32:
  case dtype::u32:
    return 4;
  case dtype::f64:
  case dtype::i64:
  case dtype::u64:
    return 8;
  }
  return 0;
}

/// @brief The name a safetensors header gives a dtype.
/// @param[in] t the dtype
/// @return "F32", "F64", "F16", "BF16", "I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64" or
///   "BOOL" (a static string, never null); "?" for a value that names no enumerator
/// @par Complexity
/// Constant.
[[nodiscard]] constexpr const char* dtype_name(dtype t) noexcept {
  switch (t) {
  case dtype::f32:
    return "F32";
  case dtype::f64:
    return "F64";
  case dtype::f16:
    return "F16";
  case dtype::bf16:
    return "BF16";
  case dtype::i8:
    return "I8";
  case dtype::i16:
    return "I16";
  case dtype::i32:
    return "I32";
  case dtype::i64:
    return "I64";
  case dtype::u8:
    return "U8";
  case dtype::u16:
    return "U16";
  case dtype::u32:
    return "U32";
  case dtype::u64:
    return "U64";
  case dtype::boolean:
    return "BOOL";
  }
  return "?";
}

/// @brief Widens a bfloat16 to float (exact; NaN and infinities kept).
/// @param[in] bits the raw bfloat16 bits
/// @return the float with the same value
/// @par Complexity
/// Constant.
[[nodiscard]] inline float bf16_to_f32(std::uint16_t bits) noexcept {
  return dtype_traits<bfloat16>::to_float(bfloat16{bits});
}

/// @brief Rounds a float to the nearest bfloat16, ties to even; overflow gives infinity, NaN
///        stays NaN (quieted, sign kept).
/// @param[in] f the value
/// @return the raw bfloat16 bits
/// @par Complexity
/// Constant.
[[nodiscard]] inline std::uint16_t f32_to_bf16(float f) noexcept {
  return dtype_traits<bfloat16>::from_float(f).bits;
}

/// @brief Widens an IEEE binary16 to float (exact, subnormals included; NaN and infinities kept).
/// @param[in] bits the raw binary16 bits
/// @return the float with the same value
/// @par Complexity
/// Constant.
[[nodiscard]] inline float f16_to_f32(std::uint16_t bits) noexcept {
  return dtype_traits<half>::to_float(half{bits});
}

namespace detail {

/// Product of the dimensions; -1 for a negative dimension or a product above INT64_MAX (a zero
/// dimension makes it 0 whatever the others are).
inline std::int64_t st_numel(std::span<const std::int64_t> shape) noexcept {
  std::uint64_t n = 1;
  bool zero = false;
  bool overflow = false;
  for (const std::int64_t d : shape) {
    if (d < 0)
      return -1;
    zero = zero || d == 0;
    overflow = overflow || __builtin_mul_overflow(n, static_cast<std::uint64_t>(d), &n);
  }
  if (zero)
    return 0;
  if (overflow || n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return -1;
  return static_cast<std::int64_t>(n);
}

} // namespace detail

/// @brief One tensor of a safetensors file.
struct tensor_info {
  std::string name;                ///< the tensor's name (the header key), UTF-8
  dtype type = dtype::f32;         ///< element type
  std::vector<std::int64_t> shape; ///< dimensions, outermost first (row-major); empty for a scalar
  std::uint64_t begin = 0;         ///< first byte in the data section
  std::uint64_t end = 0;           ///< one past the last byte in the data section

  /// @brief Number of elements: the product of the dimensions (1 for a scalar).
  /// @return the product; -1 when a dimension is negative or the product does not fit int64
  ///   (never for a tensor of a loaded file)
  /// @par Complexity
  /// O(rank).
  [[nodiscard]] std::int64_t numel() const noexcept {
    return detail::st_numel(shape);
  }
};

/// @brief Limits a file must respect to be loaded; each one bounds what a hostile file can make
///        the reader allocate or compute.
struct load_limits {
  std::uint64_t max_header_bytes = 100u << 20;            ///< most header bytes N (100 MiB)
  std::uint64_t max_file_bytes = std::uint64_t{16} << 30; ///< largest file (16 GiB)
  std::size_t max_tensors = 1u << 20;                     ///< most tensors
  int max_rank = 16;                                      ///< most dimensions of one tensor
};

namespace detail {

/// Largest integer a header may hold: JSON numbers are exact up to 2^53.
inline constexpr std::uint64_t st_max_int = std::uint64_t{1} << 53;

/// Index of the first byte of `s` that is not part of valid UTF-8 (overlong forms, surrogates and
/// code points above U+10FFFF are invalid), or s.size() when all of it is valid.
inline std::size_t st_utf8_error(std::string_view s) noexcept {
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80u) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned lo = 0x80u;
    unsigned hi = 0xbfu;
    if (c >= 0xc2u && c <= 0xdfu) {
      len = 2;
    } else if (c >= 0xe0u && c <= 0xefu) {
      len = 3;
      lo = c == 0xe0u ? 0xa0u : 0x80u; // no overlong forms
      hi = c == 0xedu ? 0x9fu : 0xbfu; // no surrogates
    } else if (c >= 0xf0u && c <= 0xf4u) {
      len = 4;
      lo = c == 0xf0u ? 0x90u : 0x80u; // no overlong forms
      hi = c == 0xf4u ? 0x8fu : 0xbfu; // nothing above U+10FFFF
    } else {
      return i;
    }
    if (n - i < len)
      return i;
    const auto c1 = static_cast<unsigned char>(s[i + 1]);
    if (c1 < lo || c1 > hi)
      return i;
    for (std::size_t k = 2; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0u) != 0x80u)
        return i;
    i += len;
  }
  return n;
}

/// A name (or other string) for a one-line message: quoted; control characters, quotes,
/// backslashes and (in a string that is not valid UTF-8) bytes above 0x7f written as \xNN; cut
/// after 200 bytes.
inline std::string st_quote(std::string_view s) {
  const bool cut = s.size() > 200;
  if (cut) {
    std::size_t n = 200;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0u) == 0x80u)
      --n; // at a character boundary
    s = s.substr(0, n);
  }
  const bool utf8 = st_utf8_error(s) == s.size();
  std::string out = "'";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20u || c == 0x7fu || c == '\'' || c == '\\' || (c >= 0x80u && !utf8)) {
      static constexpr char hex[] = "0123456789abcdef";
      out.append("\\x").append(1, hex[c >> 4]).append(1, hex[c & 0xfu]);
    } else {
      out += ch;
    }
  }
  out += cut ? "...'" : "'";
  return out;
}

inline std::string st_shape_string(std::span<const std::int64_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i)
    s += (i == 0 ? "" : ", ") + std::to_string(shape[i]);
  return s + "]";
}

inline void st_append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80u) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800u) {
    out += static_cast<char>(0xc0u | (cp >> 6));
    out += static_cast<char>(0x80u | (cp & 0x3fu));
  } else if (cp < 0x10000u) {
    out += static_cast<char>(0xe0u | (cp >> 12));
    out += static_cast<char>(0x80u | ((cp >> 6) & 0x3fu));
    out += static_cast<char>(0x80u | (cp & 0x3fu));
  } else {
    out += static_cast<char>(0xf0u | (cp >> 18));
    out += static_cast<char>(0x80u | ((cp >> 12) & 0x3fu));
    out += static_cast<char>(0x80u | ((cp >> 6) & 0x3fu));
    out += static_cast<char>(0x80u | (cp & 0x3fu));
  }
}

/// A JSON string literal for the writer: quotes, backslashes and control characters escaped.
inline void st_append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    case '\b':
      out += "\\b";
      break;
    case '\f':
      out += "\\f";
      break;
    default:
      if (c < 0x20u) {
        static constexpr char hex[] = "0123456789abcdef";
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 0xfu];
      } else {
        out += ch;
      }
    }
  }
  out += '"';
}

/// The dtype a header names; errc::unsupported for the spec's types this reader does not know,
/// errc::corrupt_data for anything else.
inline errc st_parse_dtype(std::string_view s, dtype& t) noexcept {
  static constexpr dtype all[] = {dtype::f32,
                                  dtype::f64,
                                  dtype::f16,
                                  dtype::bf16,
                                  dtype::i8,
                                  dtype::i16,
                                  dtype::i32,
                                  dtype::i64,
                                  dtype::u8,
                                  dtype::u16,
                                  dtype::u32,
                                  dtype::u64,
                                  dtype::boolean};
  for (const dtype d : all)
    if (s == dtype_name(d)) {
      t = d;
      return errc::ok;
    }
  static constexpr std::string_view known[] = {
      "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"};
  for (const std::string_view k : known)
    if (s == k)
      return errc::unsupported;
  return errc::corrupt_data;
}

/// The strict parser of a safetensors header (the schema only; see safetensors_file::parse).
/// Nesting is fixed by the schema at 3 levels (object, tensor entry, shape array), within the
/// limit of 4: anything nested deeper is a value of the wrong kind and is refused where it
/// starts, so the parser never recurses.
class st_header_parser {
public:
  st_header_parser(std::string_view text, const load_limits& lim) noexcept
      : s_(text)
      , lim_(lim) {}

  /// Parses the whole header into tensors (header order) and metadata. On failure: false, with
  /// code() and error() set.
  bool run(std::vector<tensor_info>& tensors,
           std::map<std::string, std::string, std::less<>>& meta) {
    if (const std::size_t bad = st_utf8_error(s_); bad != s_.size()) {
      pos_ = bad;
      return fail("invalid UTF-8");
    }
    if (s_.empty() || s_[0] != '{')
      return fail("the header does not begin with '{'");
    ++pos_;
    ws();
    bool seen_meta = false;
    if (at('}')) {
      ++pos_;
    } else {
      for (;;) {
        std::string key;
        if (!string(key, "a tensor name") || !colon())
          return false;
        if (key == "__metadata__") {
          if (seen_meta)
            return fail("duplicate key '__metadata__'");
          seen_meta = true;
          if (!metadata(meta))
            return false;
        } else {
          if (tensors.size() >= lim_.max_tensors)
            return fail("more than " + std::to_string(lim_.max_tensors) + " tensors (the limit)");
          tensor_info t;
          t.name = std::move(key);
          if (!entry(t))
            return false;
          tensors.push_back(std::move(t));
        }
        ws();
        if (at(',')) {
          ++pos_;
          ws();
          continue;
        }
        if (at('}')) {
          ++pos_;
          break;
        }
        return fail("expected ',' or '}' after a value of the header object");
      }
    }
    for (; pos_ < s_.size(); ++pos_)
      if (s_[pos_] != ' ')
        return fail("trailing bytes after the header object (only spaces may pad it)");
    return true;
  }

  [[nodiscard]] errc code() const noexcept {
    return code_;
  }
  [[nodiscard]] const std::string& error() const noexcept {
    return error_;
  }

private:
  bool fail(const std::string& why, errc code = errc::corrupt_data) {
    code_ = code;
    error_ = "header: ";
    if (tensor_ != nullptr)
      error_ += "tensor " + st_quote(*tensor_) + ": ";
    error_ += why + " (at byte " + std::to_string(pos_) + " of " + std::to_string(s_.size()) + ")";
    return false;
  }
  [[nodiscard]] bool at(char c) const noexcept {
    return pos_ < s_.size() && s_[pos_] == c;
  }
  void ws() noexcept {
    while (pos_ < s_.size()
           && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool colon() {
    ws();
    if (!at(':'))
      return fail("expected ':' after a key");
    ++pos_;
    ws();
    return true;
  }
  bool hex4(std::uint32_t& v) {
    v = 0;
    for (int k = 0; k < 4; ++k, ++pos_) {
      if (pos_ >= s_.size())
        return fail("truncated \\u escape");
      const char c = s_[pos_];
      unsigned d = 0;
      if (c >= '0' && c <= '9')
        d = static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f')
        d = static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        d = static_cast<unsigned>(c - 'A' + 10);
      else
        return fail("bad hex digit in a \\u escape");
      v = (v << 4) | d;
    }
    return true;
  }
  /// A JSON string (all escapes; \\u surrogate pairs become one UTF-8 character).
  bool string(std::string& out, const char* what) {
    if (!at('"'))
      return fail(std::string("expected ") + what + " (a string)");
    ++pos_;
    out.clear();
    for (;;) {
      std::size_t j = pos_;
      while (j < s_.size() && s_[j] != '"' && s_[j] != '\\'
             && static_cast<unsigned char>(s_[j]) >= 0x20u)
        ++j;
      out.append(s_.substr(pos_, j - pos_));
      pos_ = j;
      if (pos_ >= s_.size())
        return fail("unterminated string");
      const char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c != '\\')
        return fail("control character " + std::to_string(static_cast<unsigned char>(c))
                    + " inside a string (it must be escaped)");
      if (++pos_ >= s_.size())
        return fail("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
      case '"':
      case '\\':
      case '/':
        out += e;
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        std::uint32_t cp = 0;
        if (!hex4(cp))
          return false;
        if (cp >= 0xdc00u && cp <= 0xdfffu)
          return fail("lone low surrogate in a \\u escape");
        if (cp >= 0xd800u && cp <= 0xdbffu) {
          if (pos_ + 1 >= s_.size() || s_[pos_] != '\\' || s_[pos_ + 1] != 'u')
            return fail("lone high surrogate in a \\u escape");
          pos_ += 2;
          std::uint32_t low = 0;
          if (!hex4(low))
            return false;
          if (low < 0xdc00u || low > 0xdfffu)
            return fail("high surrogate not followed by a low surrogate");
          cp = 0x10000u + ((cp - 0xd800u) << 10) + (low - 0xdc00u);
        }
        st_append_utf8(out, cp);
        break;
      }
      default:
        --pos_;
        return fail("invalid escape in a string");
      }
    }
  }
  /// A nonnegative integer without sign, fraction, exponent or leading zero, at most 2^53.
  bool integer(std::uint64_t& v, const char* what, std::size_t index) {
    const auto name = [&] { return std::string(what) + "[" + std::to_string(index) + "]"; };
    if (at('-'))
      return fail(name() + " is negative");
    if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9')
      return fail("expected an integer for " + name());
    if (s_[pos_] == '0' && pos_ + 1 < s_.size() && s_[pos_ + 1] >= '0' && s_[pos_ + 1] <= '9')
      return fail(name() + " has a leading zero");
    v = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      const auto d = static_cast<std::uint64_t>(s_[pos_] - '0');
      if (v > (st_max_int - d) / 10)
        return fail(name() + " is above 2^53");
      v = v * 10 + d;
      ++pos_;
    }
    if (at('.') || at('e') || at('E'))
      return fail(name() + " is not an integer (fraction or exponent)");
    return true;
  }
  /// `[i, j, ...]` of integers; more than max_items is an error (before anything is stored).
  bool int_array(std::vector<std::int64_t>& out,
                 std::size_t max_items,
                 const char* what,
                 const char* items) {
    if (!at('['))
      return fail(std::string("expected an array for ") + what);
    ++pos_;
    ws();
    if (at(']')) {
      ++pos_;
      return true;
    }
    for (;;) {
      if (out.size() >= max_items)
        return fail(std::string(what) + " holds more than " + std::to_string(max_items) + " "
                    + items);
      std::uint64_t v = 0;
      if (!integer(v, what, out.size()))
        return false;
      out.push_back(static_cast<std::int64_t>(v));
      ws();
      if (at(']')) {
        ++pos_;
        return true;
      }
      if (!at(','))
        return fail(std::string("expected ',' or ']' in ") + what);
      ++pos_;
      ws();
    }
  }
  bool entry(tensor_info& t) {
    tensor_ = &t.name;
    if (!at('{'))
      return fail("expected an object");
    ++pos_;
    ws();
    bool has_dtype = false;
    bool has_shape = false;
    bool has_offsets = false;
    if (at('}')) {
      ++pos_;
    } else {
      for (;;) {
        std::string key;
        if (!string(key, "a key") || !colon())
          return false;
        if (key == "dtype") {
          if (has_dtype)
            return fail("duplicate key 'dtype'");
          has_dtype = true;
          std::string name;
          if (!string(name, "the dtype"))
            return false;
          if (const errc c = st_parse_dtype(name, t.type); c != errc::ok)
            return fail(
                "dtype " + st_quote(name)
                    + (c == errc::unsupported ? " is not supported by this reader" : " is unknown"),
                c);
        } else if (key == "shape") {
          if (has_shape)
            return fail("duplicate key 'shape'");
          has_shape = true;
          if (lim_.max_rank < 0)
            return fail("rank above the limit of " + std::to_string(lim_.max_rank));
          const auto max_rank = static_cast<std::size_t>(lim_.max_rank);
          if (!int_array(t.shape, max_rank, "shape", "dimensions (the rank limit)"))
            return false;
        } else if (key == "data_offsets") {
          if (has_offsets)
            return fail("duplicate key 'data_offsets'");
          has_offsets = true;
          std::vector<std::int64_t> off;
          if (!int_array(off, 2, "data_offsets", "integers"))
            return false;
          if (off.size() != 2)
            return fail("data_offsets holds " + std::to_string(off.size()) + " integers, not 2");
          t.begin = static_cast<std::uint64_t>(off[0]);
          t.end = static_cast<std::uint64_t>(off[1]);
        } else {
          return fail("unknown key " + st_quote(key));
        }
        ws();
        if (at(',')) {
          ++pos_;
          ws();
          continue;
        }
        if (at('}')) {
          ++pos_;
          break;
        }
        return fail("expected ',' or '}'");
      }
    }
    if (!has_dtype || !has_shape || !has_offsets)
      return fail(std::string("missing key '")
                  + (!has_dtype   ? "dtype"
                     : !has_shape ? "shape"
                                  : "data_offsets")
                  + "'");
    tensor_ = nullptr;
    return true;
  }
  bool metadata(std::map<std::string, std::string, std::less<>>& meta) {
    if (!at('{'))
      return fail("__metadata__ is not an object");
    ++pos_;
    ws();
    if (at('}')) {
      ++pos_;
      return true;
    }
    for (;;) {
      std::string key;
      std::string value;
      if (!string(key, "a metadata key") || !colon())
        return false;
      if (!at('"'))
        return fail("__metadata__ value of " + st_quote(key) + " is not a string");
      if (!string(value, "a metadata value"))
        return false;
      if (!meta.emplace(std::move(key), std::move(value)).second)
        return fail("__metadata__ holds a duplicate key");
      ws();
      if (at(',')) {
        ++pos_;
        ws();
        continue;
      }
      if (at('}')) {
        ++pos_;
        return true;
      }
      return fail("__metadata__: expected ',' or '}'");
    }
  }

  std::string_view s_;
  const load_limits& lim_;
  std::size_t pos_ = 0;
  const std::string* tensor_ = nullptr; // the tensor entry being parsed, for messages
  errc code_ = errc::ok;
  std::string error_;
};

/// double -> float, rounded to nearest even, without the undefined behaviour of an out-of-range
/// conversion: magnitudes at or above FLT_MAX + ulp/2 become infinities, NaN a quiet NaN.
inline float st_f64_to_f32(double d) noexcept {
  const auto u = std::bit_cast<std::uint64_t>(d);
  if ((u & 0x7fffffffffffffffu) > 0x7ff0000000000000u) // NaN (a bit test: safe under fast-math)
    return std::bit_cast<float>(static_cast<std::uint32_t>((u >> 32) & 0x80000000u) | 0x7fc00000u);
  constexpr double overflow = 0x1.ffffffp127; // FLT_MAX + half an ulp: the tie rounds up to inf
  if (d >= overflow)
    return std::numeric_limits<float>::infinity();
  if (d <= -overflow)
    return -std::numeric_limits<float>::infinity();
  return static_cast<float>(d);
}

/// n value-initialised elements. Not inlined: g++ 12 -O3 otherwise reports a false
/// -Wstringop-overflow on the vector's construction where n is known to be a byte count.
template <class T>
[[gnu::noinline]] std::vector<T> st_zeros(std::size_t n) {
  return std::vector<T>(n);
}

template <class T>
T st_load(const std::byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

inline status st_fail(std::string& why, errc code, std::string text) {
  why = std::move(text);
  return status{code};
}

/// Runs `f(why)`, which returns a status and may explain a failure in `why`; then sets `*detail`
/// (cleared on success, else `prefix: why`, or `why` for an empty prefix). No exception escapes: an
/// allocation failure (or any other std::exception) becomes errc::unsupported.
template <class F>
status st_run(std::string* detail, std::string_view prefix, F&& f) noexcept {
#if defined(__cpp_exceptions)
  const char* caught = nullptr;
  try {
#endif
    std::string why;
    const status s = std::forward<F>(f)(why);
    if (detail != nullptr) {
      if (s.ok()) {
        detail->clear();
      } else {
        detail->assign(prefix);
        detail->append(prefix.empty() ? "" : ": ").append(why);
      }
    }
    return s;
#if defined(__cpp_exceptions)
  } catch (const std::bad_alloc&) {
    caught = "out of memory";
  } catch (const std::exception&) {
    caught = "exception";
  }
  if (detail != nullptr)
    detail->assign(caught); // fits the small-string buffer: no allocation
  return status{errc::unsupported};
#endif
}

} // namespace detail

/// @brief A safetensors file read into memory and validated.
///
/// Build one with load() (a path) or parse() (bytes). Tensors are held in data-offset order and
/// found by name in O(log n); the data section is copied into the object, so nothing refers to
/// the input after loading.
///
/// Validation (each failure gives errc::corrupt_data with a one-line `detail` naming the tensor
/// and the numbers, unless said otherwise):
///  - the file holds at least 8 bytes; N is not 0, not above load_limits::max_header_bytes, and
///    `8 + N` does not exceed the file size; a file above load_limits::max_file_bytes is
///    errc::unsupported; an unreadable file is errc::io_error;
///  - the header is valid UTF-8 and begins with `{`; the parser accepts exactly the schema: JSON
///    strings with every escape (`\uXXXX` surrogate pairs joined, lone surrogates and raw control
///    characters refused), integers without sign, fraction, exponent or leading zero and at most
///    2^53, JSON whitespace between tokens, nothing but spaces after the object; no duplicate key
///    at any level; a tensor entry holds exactly `dtype`, `shape`, `data_offsets` (two integers);
///    `__metadata__` is an object of string values; nesting is at most 3 deep by the schema;
///  - the dtype is one of io::dtype's (the spec's F8/F6/F4/C64 types: errc::unsupported);
///  - rank at most load_limits::max_rank, at most load_limits::max_tensors tensors;
///  - per tensor, `begin <= end` and `numel * dtype_size == end - begin` (overflow-checked);
///  - sorted by offset, the tensors tile `[0, data size)` exactly: the first begins at 0, each
///    begins where the previous ends, the last ends at the end of the file (zero-sized tensors
///    are allowed anywhere in the sequence).
/// The data section need not be aligned: every read goes through std::memcpy.
class safetensors_file {
public:
  /// @brief Reads and validates a safetensors file.
  /// @param[in] path the file
  /// @param[out] out receives the file on success; unchanged on error
  /// @param[out] detail optional: receives `path: ` and a one-line explanation on error; cleared on
  ///   success
  /// @param[in] lim the limits (see load_limits)
  /// @return ok; errc::io_error when the file cannot be opened or read; errc::unsupported for a
  ///   file above lim.max_file_bytes, a dtype of the spec this reader does not know, or when memory
  ///   runs out; errc::corrupt_data for anything else the class documentation lists
  /// @par Complexity
  /// O(file size) time; memory: the header (at most lim.max_header_bytes, read only once checked
  /// against the file size) and the data section, once the header has been validated against it.
  [[nodiscard]] static status load(const std::string& path,
                                   safetensors_file& out,
                                   std::string* detail = nullptr,
                                   const load_limits& lim = {}) {
    return io::detail::st_run(detail, path, [&](std::string& why) -> status {
      using io::detail::st_fail;
      std::error_code ec;
      if (std::filesystem::is_directory(path, ec))
        return st_fail(why, errc::io_error, "is a directory");
      std::ifstream f(path, std::ios::binary);
      if (!f)
        return st_fail(why, errc::io_error, "cannot open the file");
      f.seekg(0, std::ios::end);
      const std::streamoff size = f.tellg();
      f.seekg(0, std::ios::beg);
      if (size < 0 || !f)
        return st_fail(why, errc::io_error, "cannot determine the file size");
      const auto file_size = static_cast<std::uint64_t>(size);
      if (const status p = check_file_size(file_size, lim, why); !p.ok())
        return p;
      std::byte head[8] = {};
      if (!f.read(reinterpret_cast<char*>(head), 8))
        return st_fail(why, errc::io_error, "cannot read the first 8 bytes");
      const std::uint64_t n = read_u64(head);
      if (const status p = check_header_size(file_size, n, lim, why); !p.ok())
        return p;
      std::string header(static_cast<std::size_t>(n), '\0');
      if (!f.read(header.data(), static_cast<std::streamsize>(n)))
        return st_fail(why, errc::io_error, "cannot read the header");
      safetensors_file r;
      if (const status p = r.parse_header(header, file_size - 8 - n, lim, why); !p.ok())
        return p;
      r.data_.resize(static_cast<std::size_t>(file_size - 8 - n));
      if (!r.data_.empty()
          && !f.read(reinterpret_cast<char*>(r.data_.data()),
                     static_cast<std::streamsize>(r.data_.size())))
        return st_fail(why, errc::io_error, "cannot read the data section");
      out = std::move(r);
      return status{};
    });
  }

  /// @brief Validates a whole safetensors file held in memory (for fuzzing and tests).
  /// @param[in] bytes the file
  /// @param[out] out receives the file on success (the data section is copied); unchanged on error
  /// @param[out] detail optional: receives a one-line explanation on error; cleared on success
  /// @param[in] lim the limits (see load_limits)
  /// @return ok; errc::unsupported for more than lim.max_file_bytes bytes, a dtype of the spec
  ///   this reader does not know, or when memory runs out; errc::corrupt_data for anything else
  ///   the class documentation lists
  /// @par Complexity
  /// O(bytes.size()) time; memory about bytes.size().
  [[nodiscard]] static status parse(std::span<const std::byte> bytes,
                                    safetensors_file& out,
                                    std::string* detail = nullptr,
                                    const load_limits& lim = {}) {
    return io::detail::st_run(detail, {}, [&](std::string& why) -> status {
      if (const status p = check_file_size(bytes.size(), lim, why); !p.ok())
        return p;
      const std::uint64_t n = read_u64(bytes.data());
      if (const status p = check_header_size(bytes.size(), n, lim, why); !p.ok())
        return p;
      const std::string_view header(reinterpret_cast<const char*>(bytes.data() + 8),
                                    static_cast<std::size_t>(n));
      safetensors_file r;
      if (const status p = r.parse_header(header, bytes.size() - 8 - n, lim, why); !p.ok())
        return p;
      const auto data = bytes.subspan(static_cast<std::size_t>(8 + n));
      r.data_.assign(data.begin(), data.end());
      out = std::move(r);
      return status{};
    });
  }

  /// @brief The tensor of a name.
  /// @param[in] name the tensor's name
  /// @return the tensor, or nullptr when the file has none of that name
  /// @par Complexity
  /// O(log(number of tensors) * name length).
  [[nodiscard]] const tensor_info* find(std::string_view name) const noexcept {
    const auto it = std::lower_bound(
        by_name_.begin(), by_name_.end(), name, [this](std::size_t i, std::string_view k) {
          return std::string_view(tensors_[i].name) < k;
        });
    if (it == by_name_.end() || tensors_[*it].name != name)
      return nullptr;
    return &tensors_[*it];
  }

  /// @brief Every tensor, in data-offset order (ties: zero-sized first, then by name).
  /// @return a view that stays valid until the object is assigned or destroyed
  /// @par Complexity
  /// Constant.
  [[nodiscard]] std::span<const tensor_info> tensors() const noexcept {
    return tensors_;
  }

  /// @brief The header's `__metadata__` (empty when the file has none).
  /// @return the key-value pairs
  /// @par Complexity
  /// Constant.
  [[nodiscard]] const std::map<std::string, std::string, std::less<>>& metadata() const noexcept {
    return metadata_;
  }

  /// @brief The raw bytes of a tensor (little-endian elements, not necessarily aligned).
  /// @param[in] t a tensor of this file (from find() or tensors())
  /// @return `end - begin` bytes of the data section; empty when `t`'s range does not lie inside
  ///   this file's data section
  /// @par Complexity
  /// Constant.
  [[nodiscard]] std::span<const std::byte> bytes(const tensor_info& t) const noexcept {
    if (t.begin > t.end || t.end > data_.size())
      return {};
    return std::span<const std::byte>(data_).subspan(static_cast<std::size_t>(t.begin),
                                                     static_cast<std::size_t>(t.end - t.begin));
  }

  /// @brief Reads a floating-point tensor as float.
  ///
  /// F32 is copied; F16 and BF16 are widened exactly; F64 is rounded to nearest even (magnitudes
  /// beyond float's range become infinities).
  /// @param[in] name the tensor's name
  /// @param[in] expected_shape the shape the tensor must have; empty accepts any shape (so it
  ///   cannot ask for a scalar)
  /// @param[out] out receives the numel() elements in row-major order; unchanged on error
  /// @param[out] detail optional: a one-line explanation on error; cleared on success
  /// @return ok; errc::corrupt_data with "no tensor 'x'" for a missing name, or for a dtype that
  ///   is not F32, F16, BF16 or F64; errc::shape_mismatch when the shape differs from a non-empty
  ///   expected_shape (checked before the dtype); errc::unsupported when memory runs out
  /// @par Complexity
  /// O(numel).
  [[nodiscard]] status read_f32(std::string_view name,
                                std::span<const std::int64_t> expected_shape,
                                std::vector<float>& out,
                                std::string* detail = nullptr) const {
    return read_as<float>(name, expected_shape, out, detail);
  }

  /// @brief Reads an integer tensor as int32.
  /// @param[in] name the tensor's name
  /// @param[in] expected_shape as in read_f32
  /// @param[out] out receives the elements; unchanged on error
  /// @param[out] detail optional: a one-line explanation on error; cleared on success
  /// @return ok; errc::corrupt_data for a missing name ("no tensor 'x'"), a dtype other than I32,
  ///   I64, U8 or U32, or an I64 / U32 element outside int32's range (the detail names the
  ///   element); errc::shape_mismatch as in read_f32; errc::unsupported when memory runs out
  /// @par Complexity
  /// O(numel).
  [[nodiscard]] status read_i32(std::string_view name,
                                std::span<const std::int64_t> expected_shape,
                                std::vector<std::int32_t>& out,
                                std::string* detail = nullptr) const {
    return read_as<std::int32_t>(name, expected_shape, out, detail);
  }

  /// @brief Reads an I64 or I32 tensor as int64.
  /// @param[in] name the tensor's name
  /// @param[in] expected_shape as in read_f32
  /// @param[out] out receives the elements; unchanged on error
  /// @param[out] detail optional: a one-line explanation on error; cleared on success
  /// @return ok; errc::corrupt_data for a missing name ("no tensor 'x'") or another dtype;
  ///   errc::shape_mismatch as in read_f32; errc::unsupported when memory runs out
  /// @par Complexity
  /// O(numel).
  [[nodiscard]] status read_i64(std::string_view name,
                                std::span<const std::int64_t> expected_shape,
                                std::vector<std::int64_t>& out,
                                std::string* detail = nullptr) const {
    return read_as<std::int64_t>(name, expected_shape, out, detail);
  }

  /// @brief Reads a U8 or BOOL tensor as bytes.
  /// @param[in] name the tensor's name
  /// @param[in] expected_shape as in read_f32
  /// @param[out] out receives the elements; unchanged on error
  /// @param[out] detail optional: a one-line explanation on error; cleared on success
  /// @return ok; errc::corrupt_data for a missing name ("no tensor 'x'"), another dtype, or a BOOL
  ///   element other than 0 and 1; errc::shape_mismatch as in read_f32; errc::unsupported when
  ///   memory runs out
  /// @par Complexity
  /// O(numel).
  [[nodiscard]] status read_u8(std::string_view name,
                               std::span<const std::int64_t> expected_shape,
                               std::vector<std::uint8_t>& out,
                               std::string* detail = nullptr) const {
    return read_as<std::uint8_t>(name, expected_shape, out, detail);
  }

private:
  static std::uint64_t read_u64(const std::byte* p) noexcept {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
      v = (v << 8) | static_cast<std::uint64_t>(p[i]);
    return v;
  }

  /// Checks made before the 8-byte header size is read.
  static status check_file_size(std::uint64_t file_size, const load_limits& lim, std::string& why) {
    if (file_size > lim.max_file_bytes)
      return io::detail::st_fail(why,
                                 errc::unsupported,
                                 "the file holds " + std::to_string(file_size)
                                     + " bytes, above the limit of "
                                     + std::to_string(lim.max_file_bytes));
    if (file_size < 8)
      return io::detail::st_fail(why,
                                 errc::corrupt_data,
                                 "the file holds " + std::to_string(file_size)
                                     + " bytes, fewer than the 8 of the header size");
    return status{};
  }

  static status check_header_size(std::uint64_t file_size,
                                  std::uint64_t n,
                                  const load_limits& lim,
                                  std::string& why) {
    if (n == 0)
      return io::detail::st_fail(why, errc::corrupt_data, "the header size N is 0");
    if (n > lim.max_header_bytes)
      return io::detail::st_fail(why,
                                 errc::corrupt_data,
                                 "the header size N = " + std::to_string(n)
                                     + " is above the limit of "
                                     + std::to_string(lim.max_header_bytes));
    if (n > file_size - 8)
      return io::detail::st_fail(why,
                                 errc::corrupt_data,
                                 "the header size N = " + std::to_string(n)
                                     + " runs past the end of the " + std::to_string(file_size)
                                     + "-byte file");
    return status{};
  }

  /// Parses and validates the header against a data section of data_size bytes: fills tensors_,
  /// by_name_ and metadata_ (data_ is left to the caller).
  status parse_header(std::string_view header,
                      std::uint64_t data_size,
                      const load_limits& lim,
                      std::string& why) {
    using io::detail::st_fail;
    using io::detail::st_quote;
    io::detail::st_header_parser p(header, lim);
    if (!p.run(tensors_, metadata_))
      return st_fail(why, p.code(), p.error());
    const auto range = [](const tensor_info& t) {
      return "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "]";
    };
    for (const tensor_info& t : tensors_) {
      if (t.end < t.begin)
        return st_fail(why,
                       errc::corrupt_data,
                       "tensor " + st_quote(t.name) + ": " + range(t) + " end before they begin");
      const std::int64_t n = t.numel();
      std::uint64_t bytes = 0;
      if (n < 0
          || __builtin_mul_overflow(static_cast<std::uint64_t>(n), dtype_size(t.type), &bytes))
        return st_fail(why,
                       errc::corrupt_data,
                       "tensor " + st_quote(t.name) + ": the byte size of shape "
                           + io::detail::st_shape_string(t.shape) + " overflows 64 bits");
      if (bytes != t.end - t.begin)
        return st_fail(why,
                       errc::corrupt_data,
                       "tensor " + st_quote(t.name) + ": shape "
                           + io::detail::st_shape_string(t.shape) + " of " + dtype_name(t.type)
                           + " takes " + std::to_string(bytes) + " bytes, " + range(t) + " hold "
                           + std::to_string(t.end - t.begin));
    }
    std::sort(tensors_.begin(), tensors_.end(), [](const tensor_info& a, const tensor_info& b) {
      if (a.begin != b.begin)
        return a.begin < b.begin;
      if (a.end != b.end)
        return a.end < b.end;
      return a.name < b.name;
    });
    by_name_.resize(tensors_.size());
    for (std::size_t i = 0; i < by_name_.size(); ++i)
      by_name_[i] = i;
    std::sort(by_name_.begin(), by_name_.end(), [this](std::size_t a, std::size_t b) {
      return tensors_[a].name < tensors_[b].name;
    });
    for (std::size_t i = 1; i < by_name_.size(); ++i)
      if (tensors_[by_name_[i]].name == tensors_[by_name_[i - 1]].name)
        return st_fail(why,
                       errc::corrupt_data,
                       "header: duplicate key " + st_quote(tensors_[by_name_[i]].name));
    // Sorted by (begin, end), the tensors must tile [0, data_size) exactly.
    std::uint64_t at = 0;
    const tensor_info* prev = nullptr;
    for (const tensor_info& t : tensors_) {
      if (t.begin != at)
        return st_fail(why,
                       errc::corrupt_data,
                       "tensor " + st_quote(t.name) + " begins at byte " + std::to_string(t.begin)
                           + (prev == nullptr
                                  ? std::string(", not at 0 (a gap before it)")
                                  : ", but tensor " + st_quote(prev->name) + " ends at "
                                        + std::to_string(at)
                                        + (t.begin > at ? " (a gap)" : " (an overlap)")));
      at = t.end;
      prev = &t;
    }
    if (at != data_size)
      return st_fail(why,
                     errc::corrupt_data,
                     (prev == nullptr ? std::string("the header has no tensor")
                                      : "the last tensor, " + st_quote(prev->name)
                                            + ", ends at byte " + std::to_string(at))
                         + ", but the data section holds " + std::to_string(data_size) + " bytes"
                         + (at < data_size ? " (trailing bytes)" : " (the file is truncated)"));
    return status{};
  }

  /// The dtypes read_as<T> accepts, for messages and checks.
  template <class T>
  static bool accepts(dtype d, const char*& list) noexcept {
    if constexpr (std::is_same_v<T, float>) {
      list = "read_f32 accepts F32, F16, BF16 and F64";
      return d == dtype::f32 || d == dtype::f16 || d == dtype::bf16 || d == dtype::f64;
    } else if constexpr (std::is_same_v<T, std::int32_t>) {
      list = "read_i32 accepts I32, I64, U8 and U32";
      return d == dtype::i32 || d == dtype::i64 || d == dtype::u8 || d == dtype::u32;
    } else if constexpr (std::is_same_v<T, std::int64_t>) {
      list = "read_i64 accepts I64 and I32";
      return d == dtype::i64 || d == dtype::i32;
    } else {
      static_assert(std::is_same_v<T, std::uint8_t>);
      list = "read_u8 accepts U8 and BOOL";
      return d == dtype::u8 || d == dtype::boolean;
    }
  }

  /// Element i of a tensor of dtype d (one accepted by accepts<T>) as T; false when it does not
  /// fit (I64 / U32 to int32) or is no bool (BOOL above 1), with the value in `bad`.
  template <class T>
  static bool
  element(const std::byte* p, dtype d, std::size_t i, T& v, std::int64_t& bad) noexcept {
    using io::detail::st_load;
    if constexpr (std::is_same_v<T, float>) {
      if (d == dtype::f16)
        v = f16_to_f32(st_load<std::uint16_t>(p + 2 * i));
      else if (d == dtype::bf16)
        v = bf16_to_f32(st_load<std::uint16_t>(p + 2 * i));
      else if (d == dtype::f64)
        v = io::detail::st_f64_to_f32(st_load<double>(p + 8 * i));
      else
        v = st_load<float>(p + 4 * i);
      return true;
    } else if constexpr (std::is_same_v<T, std::int32_t>) {
      std::int64_t x = 0;
      if (d == dtype::i64)
        x = st_load<std::int64_t>(p + 8 * i);
      else if (d == dtype::u32)
        x = st_load<std::uint32_t>(p + 4 * i);
      else if (d == dtype::u8)
        x = st_load<std::uint8_t>(p + i);
      else
        x = st_load<std::int32_t>(p + 4 * i);
      bad = x;
      v = static_cast<std::int32_t>(x);
      return x >= std::numeric_limits<std::int32_t>::min()
             && x <= std::numeric_limits<std::int32_t>::max();
    } else if constexpr (std::is_same_v<T, std::int64_t>) {
      v = d == dtype::i64 ? st_load<std::int64_t>(p + 8 * i) : st_load<std::int32_t>(p + 4 * i);
      return true;
    } else {
      v = st_load<std::uint8_t>(p + i);
      bad = v;
      return d != dtype::boolean || v <= 1u;
    }
  }

  template <class T>
  status read_as(std::string_view name,
                 std::span<const std::int64_t> expected_shape,
                 std::vector<T>& out,
                 std::string* detail) const {
    return io::detail::st_run(detail, {}, [&](std::string& why) -> status {
      using io::detail::st_fail;
      const tensor_info* t = find(name);
      if (t == nullptr)
        return st_fail(why, errc::corrupt_data, "no tensor " + io::detail::st_quote(name));
      if (!expected_shape.empty()
          && !std::equal(
              t->shape.begin(), t->shape.end(), expected_shape.begin(), expected_shape.end()))
        return st_fail(why,
                       errc::shape_mismatch,
                       "tensor " + io::detail::st_quote(name) + " has shape "
                           + io::detail::st_shape_string(t->shape) + ", expected "
                           + io::detail::st_shape_string(expected_shape));
      const char* list = "";
      if (!accepts<T>(t->type, list))
        return st_fail(why,
                       errc::corrupt_data,
                       "tensor " + io::detail::st_quote(name) + " has dtype " + dtype_name(t->type)
                           + "; " + list);
      const std::span<const std::byte> raw = bytes(*t);
      const std::size_t n = raw.size() / dtype_size(t->type);
      std::vector<T> v = io::detail::st_zeros<T>(n);
      if (dtype_size(t->type) == sizeof(T) && t->type != dtype::u32 && t->type != dtype::boolean) {
        if (n > 0)
          std::memcpy(v.data(), raw.data(), n * sizeof(T)); // the same representation
      } else {
        for (std::size_t i = 0; i < n; ++i) {
          std::int64_t bad = 0;
          if (!element<T>(raw.data(), t->type, i, v[i], bad))
            return st_fail(why,
                           errc::corrupt_data,
                           "tensor " + io::detail::st_quote(name) + " element " + std::to_string(i)
                               + " = " + std::to_string(bad) + " (" + dtype_name(t->type) + ") "
                               + (t->type == dtype::boolean ? "is not a BOOL (0 or 1)"
                                                            : "does not fit int32"));
        }
      }
      out = std::move(v);
      return status{};
    });
  }

  std::vector<tensor_info> tensors_; // data-offset order
  std::vector<std::size_t> by_name_; // indices into tensors_, by name
  std::map<std::string, std::string, std::less<>> metadata_;
  std::vector<std::byte> data_; // the data section
};

/// @brief Builds a safetensors file: tensors in insertion order, then serialize() or write().
///
/// The output always loads with safetensors_file under the default load_limits as long as it has
/// at most load_limits::max_tensors tensors and its header stays under 100 MiB.
class safetensors_writer {
public:
  /// @brief Longest tensor name add_* accepts, in bytes.
  static constexpr std::size_t max_name_bytes = 1024;

  /// @brief Sets a `__metadata__` entry, replacing any value the key had.
  /// @param[in] key the key (valid UTF-8, else serialize() fails)
  /// @param[in] value the value (valid UTF-8, else serialize() fails)
  /// @par Complexity
  /// O(log(number of entries)).
  void set_metadata(std::string key, std::string value) {
    metadata_.insert_or_assign(std::move(key), std::move(value));
  }

  /// @brief Adds a F32 tensor (bits copied unchanged).
  /// @param[in] name unique, non-empty, at most max_name_bytes bytes of valid UTF-8, not
  ///   `__metadata__`
  /// @param[in] shape dimensions, each in [0, 2^53], at most load_limits{}.max_rank of them
  /// @param[in] data the elements in row-major order
  /// @return ok; errc::invalid_argument for a bad name (empty, too long, invalid UTF-8,
  ///   `__metadata__`, a duplicate), a negative or too large dimension, too many dimensions, or
  ///   `data.size()` other than the product of the shape; errc::overflow when that product
  ///   overflows 64 bits; errc::unsupported when memory runs out. Nothing is added on error.
  /// @par Complexity
  /// O(data.size() + log(number of tensors)).
  [[nodiscard]] status
  add_f32(std::string name, std::vector<std::int64_t> shape, std::span<const float> data) {
    return add(name, shape, dtype::f32, data.size(), [&](std::byte* p) {
      if (!data.empty())
        std::memcpy(p, data.data(), data.size_bytes());
    });
  }

  /// @brief Adds a BF16 tensor, each float rounded to nearest even (NaN stays NaN).
  /// @param[in] name as in add_f32
  /// @param[in] shape as in add_f32
  /// @param[in] data the elements as floats
  /// @return as add_f32
  /// @par Complexity
  /// O(data.size() + log(number of tensors)).
  [[nodiscard]] status
  add_bf16(std::string name, std::vector<std::int64_t> shape, std::span<const float> data) {
    return add(name, shape, dtype::bf16, data.size(), [&](std::byte* p) {
      for (std::size_t i = 0; i < data.size(); ++i) {
        const std::uint16_t b = f32_to_bf16(data[i]);
        std::memcpy(p + 2 * i, &b, 2);
      }
    });
  }

  /// @brief Adds an I32 tensor.
  /// @param[in] name as in add_f32
  /// @param[in] shape as in add_f32
  /// @param[in] data the elements
  /// @return as add_f32
  /// @par Complexity
  /// O(data.size() + log(number of tensors)).
  [[nodiscard]] status
  add_i32(std::string name, std::vector<std::int64_t> shape, std::span<const std::int32_t> data) {
    return add(name, shape, dtype::i32, data.size(), [&](std::byte* p) {
      if (!data.empty())
        std::memcpy(p, data.data(), data.size_bytes());
    });
  }

  /// @brief Adds an I64 tensor.
  /// @param[in] name as in add_f32
  /// @param[in] shape as in add_f32
  /// @param[in] data the elements
  /// @return as add_f32
  /// @par Complexity
  /// O(data.size() + log(number of tensors)).
  [[nodiscard]] status
  add_i64(std::string name, std::vector<std::int64_t> shape, std::span<const std::int64_t> data) {
    return add(name, shape, dtype::i64, data.size(), [&](std::byte* p) {
      if (!data.empty())
        std::memcpy(p, data.data(), data.size_bytes());
    });
  }

  /// @brief Adds a U8 tensor.
  /// @param[in] name as in add_f32
  /// @param[in] shape as in add_f32
  /// @param[in] data the elements
  /// @return as add_f32
  /// @par Complexity
  /// O(data.size() + log(number of tensors)).
  [[nodiscard]] status
  add_u8(std::string name, std::vector<std::int64_t> shape, std::span<const std::uint8_t> data) {
    return add(name, shape, dtype::u8, data.size(), [&](std::byte* p) {
      if (!data.empty())
        std::memcpy(p, data.data(), data.size_bytes());
    });
  }

  /// @brief The whole file: header (metadata first, then the tensors in insertion order, padded
  ///        with spaces so that the data section starts at a multiple of 8), then the data.
  /// @param[out] out receives the bytes (replaced); unchanged on error
  /// @return ok; errc::invalid_argument when a metadata key or value is not valid UTF-8;
  ///   errc::overflow when the data section would pass 2^53 bytes; errc::unsupported when memory
  ///   runs out
  /// @par Complexity
  /// O(output size).
  [[nodiscard]] status serialize(std::vector<std::byte>& out) const {
    return detail::st_run(nullptr, {}, [&](std::string&) -> status {
      std::string h = "{";
      if (!metadata_.empty()) {
        h += "\"__metadata__\":{";
        for (auto it = metadata_.begin(); it != metadata_.end(); ++it) {
          if (detail::st_utf8_error(it->first) != it->first.size()
              || detail::st_utf8_error(it->second) != it->second.size())
            return status{errc::invalid_argument};
          if (it != metadata_.begin())
            h += ',';
          detail::st_append_json_string(h, it->first);
          h += ':';
          detail::st_append_json_string(h, it->second);
        }
        h += '}';
      }
      std::uint64_t at = 0;
      for (std::size_t i = 0; i < entries_.size(); ++i) {
        const entry& e = entries_[i];
        if (i > 0 || !metadata_.empty())
          h += ',';
        detail::st_append_json_string(h, e.name);
        h.append(":{\"dtype\":\"").append(dtype_name(e.type)).append("\",\"shape\":[");
        for (std::size_t d = 0; d < e.shape.size(); ++d)
          h.append(d > 0 ? "," : "").append(std::to_string(e.shape[d]));
        h.append("],\"data_offsets\":[").append(std::to_string(at)).append(",");
        at += e.data.size();
        if (at > detail::st_max_int)
          return status{errc::overflow};
        h.append(std::to_string(at)).append("]}");
      }
      h += '}';
      h.append((8 - h.size() % 8) % 8, ' '); // the data section starts at a multiple of 8
      std::vector<std::byte> b;
      b.reserve(8 + h.size() + static_cast<std::size_t>(at));
      const std::uint64_t n = h.size();
      for (int i = 0; i < 8; ++i)
        b.push_back(static_cast<std::byte>((n >> (8 * i)) & 0xffu));
      for (const char c : h)
        b.push_back(static_cast<std::byte>(c));
      for (const entry& e : entries_)
        b.insert(b.end(), e.data.begin(), e.data.end());
      out = std::move(b);
      return status{};
    });
  }

  /// @brief Writes the file: serialize(), then `path + ".tmp"`, then a rename onto `path`, so
  ///        `path` never holds a half-written file (the rename is atomic within a file system).
  /// @param[in] path the file to create or replace
  /// @param[out] detail optional: a one-line explanation on error; cleared on success
  /// @return ok; serialize()'s errors; errc::io_error when the temporary file cannot be written or
  ///   renamed (it is removed then)
  /// @par Complexity
  /// O(output size).
  [[nodiscard]] status write(const std::string& path, std::string* detail = nullptr) const {
    return io::detail::st_run(detail, path, [&](std::string& why) -> status {
      using io::detail::st_fail;
      std::vector<std::byte> b;
      if (const status st = serialize(b); !st.ok())
        return st_fail(why, st.code, std::string("cannot serialize: ") + st.message());
      const std::string tmp = path + ".tmp";
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      if (!f)
        return st_fail(why, errc::io_error, "cannot open " + tmp + " for writing");
      f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
      f.close();
      std::error_code ec;
      if (!f) {
        std::filesystem::remove(tmp, ec);
        return st_fail(why, errc::io_error, "cannot write " + tmp);
      }
      std::filesystem::rename(tmp, path, ec);
      if (ec) {
        const std::string what = ec.message();
        std::filesystem::remove(tmp, ec);
        return st_fail(why, errc::io_error, "cannot rename " + tmp + " onto it: " + what);
      }
      return status{};
    });
  }

  /// @brief Number of tensors added.
  /// @return the count
  /// @par Complexity
  /// Constant.
  [[nodiscard]] std::size_t size() const noexcept {
    return entries_.size();
  }

private:
  struct entry {
    std::string name;
    dtype type = dtype::f32;
    std::vector<std::int64_t> shape;
    std::vector<std::byte> data;
  };

  template <class Fill>
  status add(std::string& name,
             std::vector<std::int64_t>& shape,
             dtype type,
             std::size_t count,
             const Fill& fill) {
    return detail::st_run(nullptr, {}, [&](std::string&) -> status {
      if (name.empty() || name.size() > max_name_bytes || name == "__metadata__"
          || detail::st_utf8_error(name) != name.size()
          || shape.size() > static_cast<std::size_t>(load_limits{}.max_rank)
          || names_.count(name) != 0)
        return status{errc::invalid_argument};
      for (const std::int64_t d : shape)
        if (d < 0 || static_cast<std::uint64_t>(d) > detail::st_max_int)
          return status{errc::invalid_argument};
      const std::int64_t n = detail::st_numel(shape);
      std::uint64_t bytes = 0;
      if (n < 0 || __builtin_mul_overflow(static_cast<std::uint64_t>(n), dtype_size(type), &bytes))
        return status{errc::overflow};
      if (static_cast<std::uint64_t>(n) != count)
        return status{errc::invalid_argument};
      entry e;
      e.type = type;
      e.data.resize(static_cast<std::size_t>(bytes));
      fill(e.data.data());
      e.shape = std::move(shape);
      e.name = std::move(name);
      entries_.push_back(std::move(e)); // on a throw nothing changed
#if defined(__cpp_exceptions)
      try {
        names_.insert(entries_.back().name);
      } catch (...) {
        entries_.pop_back();
        throw;
      }
#else
      names_.insert(entries_.back().name);
#endif
      return status{};
    });
  }

  std::vector<entry> entries_;
  std::set<std::string, std::less<>> names_;
  std::map<std::string, std::string, std::less<>> metadata_;
};

} // namespace io

SPECDEC_NAMESPACE_END
