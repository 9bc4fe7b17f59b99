// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief What every fuzz target shares: a byte reader that turns the fuzzer's input into
/// values (and never fails: past the end it reads zeros), its mirror writer for the seed
/// generators, the FUZZ_CHECK property macro, interesting floats, and in-memory files for the
/// loaders that take a path.
///
/// Built with clang's libFuzzer and with any other compiler (the replay driver), so it needs no
/// header of LLVM's (FuzzedDataProvider reads integers from the end of the input, which makes
/// hand-written seeds awkward; this reader reads everything front to back).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <span>
#include <string>
#include <sys/mman.h>
#include <type_traits>
#include <unistd.h>
#include <vector>

namespace specdec_fuzz {

/// Prints a failed property (where, the condition, details) and aborts, which libFuzzer reports
/// as a crash and saves the input of.
[[noreturn]] inline void
fail(const char* file, int line, const char* condition, const std::string& detail) {
  std::fprintf(stderr,
               "\n*** fuzz property failed: %s\n    at %s:%d\n    %s\n",
               condition,
               file,
               line,
               detail.c_str());
  std::fflush(stderr);
  std::abort();
}

} // namespace specdec_fuzz

/// Checks a property; on failure prints `detail` (a std::string expression, evaluated only then)
/// and aborts.
#define FUZZ_CHECK(cond, detail)                                                                   \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      ::specdec_fuzz::fail(__FILE__, __LINE__, #cond, (detail));                                   \
  } while (0)

namespace specdec_fuzz {

/// True when the environment variable SPECDEC_FUZZ_SKIP (a comma-separated list) names `tag`: lets
/// a developer keep fuzzing past a known, reported finding. CI never sets it.
inline bool skip_known(const char* tag) {
  // Built with append only: g++ 12 -O3 reports a false -Wrestrict on "literal" + std::string.
  static const std::string list = [] {
    const char* env = std::getenv("SPECDEC_FUZZ_SKIP");
    std::string l = ",";
    l.append(env != nullptr ? env : "").append(",");
    return l;
  }();
  std::string key = ",";
  key.append(tag).append(",");
  return list.find(key) != std::string::npos;
}

/// True when SPECDEC_FUZZ_VERBOSE is set: targets then print what each input exercised (for
/// checking seeds with the replay driver).
inline bool verbose() {
  static const bool v = std::getenv("SPECDEC_FUZZ_VERBOSE") != nullptr;
  return v;
}

/// A seed file: its name in the corpus folder and its bytes.
struct seed {
  std::string name;                ///< file name
  std::vector<std::uint8_t> bytes; ///< content
};

/// The seeds of the target this file is linked into (defined by every fuzz_<name>.cpp; the replay
/// driver writes them with --write-seeds <dir>).
std::vector<seed> seeds();

/// The bits of a float (bitwise comparisons: NaN payloads, signed zeros).
inline std::uint32_t bits(float f) noexcept {
  std::uint32_t u = 0;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

/// True when two float arrays are equal bit for bit.
inline bool same_bits(const float* a, const float* b, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i)
    if (bits(a[i]) != bits(b[i]))
      return false;
  return true;
}

/// Bytes an integer of the given span (hi - lo) is read from: 1, 2, 4 or 8.
constexpr int width_of(std::uint64_t span) noexcept {
  return span <= 0xffu ? 1 : span <= 0xffffu ? 2 : span <= 0xffffffffu ? 4 : 8;
}

/// Values that break float code: signed zeros, denormals, infinities, NaN, extremes, exp's
/// overflow and underflow points. Index with special(i).
inline float special(int i) noexcept {
  constexpr int n = 16;
  switch (((i % n) + n) % n) {
  case 0:
    return 0.0f;
  case 1:
    return -0.0f;
  case 2:
    return 1.0f;
  case 3:
    return -1.0f;
  case 4:
    return std::numeric_limits<float>::infinity();
  case 5:
    return -std::numeric_limits<float>::infinity();
  case 6:
    return std::numeric_limits<float>::quiet_NaN();
  case 7:
    return std::numeric_limits<float>::denorm_min();
  case 8:
    return -std::numeric_limits<float>::denorm_min();
  case 9:
    return std::numeric_limits<float>::min();
  case 10:
    return std::numeric_limits<float>::max();
  case 11:
    return std::numeric_limits<float>::lowest();
  case 12:
    return 0.5f;
  case 13:
    return 2.0f;
  case 14:
    return 88.75f; // exp overflows just above
  default:
    return -104.0f; // exp underflows to 0 below about -103.97
  }
}

/// Reads the fuzzer's bytes front to back; past the end every read gives zeros.
class reader {
public:
  reader(const std::uint8_t* data, std::size_t size) noexcept
      : data_(data)
      , size_(size) {}

  /// Bytes not yet read.
  [[nodiscard]] std::size_t remaining() const noexcept {
    return size_ - pos_;
  }
  /// True when every byte was read.
  [[nodiscard]] bool empty() const noexcept {
    return pos_ >= size_;
  }
  /// One byte (0 past the end).
  std::uint8_t u8() noexcept {
    return pos_ < size_ ? data_[pos_++] : std::uint8_t{0};
  }
  /// A little-endian unsigned integer of `bytes` bytes (1 to 8).
  std::uint64_t uint(int bytes) noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
      v |= static_cast<std::uint64_t>(u8()) << (8 * i);
    return v;
  }
  /// 16, 32 and 64-bit little-endian integers.
  std::uint16_t u16() noexcept {
    return static_cast<std::uint16_t>(uint(2));
  }
  std::uint32_t u32() noexcept {
    return static_cast<std::uint32_t>(uint(4));
  }
  std::uint64_t u64() noexcept {
    return uint(8);
  }
  /// A signed 64-bit integer (two's complement bits).
  std::int64_t i64() noexcept {
    return static_cast<std::int64_t>(u64());
  }
  /// An integer in [lo, hi]: lo + (raw % (hi - lo + 1)), raw read in width_of(hi - lo) bytes.
  template <class I>
  I range(I lo, I hi) noexcept {
    static_assert(std::is_integral_v<I>);
    const auto span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
    const std::uint64_t raw = uint(width_of(span));
    const std::uint64_t off =
        span == std::numeric_limits<std::uint64_t>::max() ? raw : raw % (span + 1);
    return static_cast<I>(static_cast<std::uint64_t>(lo) + off);
  }
  /// A boolean (the low bit of a byte).
  bool flag() noexcept {
    return (u8() & 1u) != 0;
  }
  /// A float: selector byte s < 16 gives special(s); s < 128 gives (s - 72) / 4 (the quarter
  /// steps of [-14, 13.75]); else 4 more bytes are the raw bits.
  float value() noexcept {
    const std::uint8_t s = u8();
    if (s < 16)
      return special(s);
    if (s < 128)
      return static_cast<float>(static_cast<int>(s) - 72) * 0.25f;
    float f = 0.0f;
    const std::uint32_t bits = u32();
    std::memcpy(&f, &bits, sizeof(f));
    return f;
  }
  /// A uniform in [0, 1) from 3 bytes (0 past the end).
  float unit() noexcept {
    return static_cast<float>(uint(3)) * 0x1p-24f;
  }
  /// Up to `n` bytes (fewer at the end of the input).
  std::span<const std::uint8_t> bytes(std::size_t n) noexcept {
    const std::size_t k = n < remaining() ? n : remaining();
    const std::span<const std::uint8_t> s{data_ + pos_, k};
    pos_ += k;
    return s;
  }
  /// Everything not yet read.
  std::span<const std::uint8_t> rest() noexcept {
    return bytes(remaining());
  }

private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

/// The mirror of reader: what a seed generator writes so that reader reads it back. The two
/// members that grow the buffer are not inlined: g++ 12 -O3 otherwise reports false
/// -Wstringop-overflow warnings on vector growth from a known-empty start.
class writer {
public:
  [[gnu::noinline]] void u8(std::uint64_t v) {
    bytes_.push_back(static_cast<std::uint8_t>(v));
  }
  void uint(std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i)
      u8(v >> (8 * i));
  }
  void u16(std::uint64_t v) {
    uint(v, 2);
  }
  void u32(std::uint64_t v) {
    uint(v, 4);
  }
  void u64(std::uint64_t v) {
    uint(v, 8);
  }
  void i64(std::int64_t v) {
    uint(static_cast<std::uint64_t>(v), 8);
  }
  /// Writes v (lo <= v <= hi) as reader::range(lo, hi) reads it.
  template <class I>
  void range(I v, I lo, I hi) {
    const auto span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
    uint(static_cast<std::uint64_t>(v) - static_cast<std::uint64_t>(lo), width_of(span));
  }
  void flag(bool b) {
    u8(b ? 1 : 0);
  }
  /// reader::value() of special(i).
  void special_value(int i) {
    u8(static_cast<std::uint64_t>(i));
  }
  /// reader::value() of a float: a quarter step of [-14, 13.75] takes one byte, anything else
  /// five (specials are written by special_value).
  void value(float f) {
    const float q = f * 4.0f + 72.0f;
    if (q >= 16.0f && q < 128.0f) {
      const int s = static_cast<int>(q);
      const float back = static_cast<float>(s - 72) * 0.25f;
      if (bits(back) == bits(f)) { // exactly f (not -0, not a denormal)
        u8(static_cast<std::uint64_t>(s));
        return;
      }
    }
    std::uint32_t bits = 0;
    std::memcpy(&bits, &f, sizeof(bits));
    u8(200);
    u32(bits);
  }
  /// reader::value() of any float: -0, NaN and infinities as their one-byte specials, the rest
  /// through value().
  void any_value(float v) {
    if (v == 0.0f && std::signbit(v))
      special_value(1);
    else if (std::isnan(v))
      special_value(6);
    else if (std::isinf(v))
      special_value(v > 0 ? 4 : 5);
    else
      value(v);
  }
  /// reader::unit() returning k * 2^-24.
  void unit(std::uint32_t k) {
    uint(k, 3);
  }
  [[gnu::noinline]] void append(std::span<const std::uint8_t> b) {
    bytes_.insert(bytes_.end(), b.begin(), b.end());
  }
  void append(const std::string& s) {
    append(
        std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
  }
  [[nodiscard]] const std::vector<std::uint8_t>& bytes() const noexcept {
    return bytes_;
  }

private:
  std::vector<std::uint8_t> bytes_;
};

/// A small deterministic generator (splitmix64) for inputs too large to spell out byte by byte.
struct splitmix {
  std::uint64_t state; ///< the counter
  std::uint64_t next() noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1).
  double unit() noexcept {
    return static_cast<double>(next() >> 11) * 0x1p-53;
  }
};

/// A file in memory (memfd; a temporary file where memfd is missing) whose path loaders can open.
/// One per target: every call of write() replaces the content.
class memory_file {
public:
  memory_file() {
#if defined(MFD_CLOEXEC)
    fd_ = ::memfd_create("specdec-fuzz", MFD_CLOEXEC);
#endif
    if (fd_ >= 0) {
      path_ = "/proc/self/fd/" + std::to_string(fd_);
      return;
    }
    const char* tmp = std::getenv("TMPDIR");
    std::string templ =
        std::string(tmp != nullptr && tmp[0] != '\0' ? tmp : "/tmp") + "/specdec-fuzz-XXXXXX";
    fd_ = ::mkstemp(templ.data());
    if (fd_ < 0) {
      std::perror("specdec fuzz: cannot create a temporary file");
      std::abort();
    }
    path_ = templ;
    unlink_ = true;
  }
  ~memory_file() {
    if (fd_ >= 0)
      ::close(fd_);
    if (unlink_)
      ::unlink(path_.c_str());
  }
  memory_file(const memory_file&) = delete;
  memory_file& operator=(const memory_file&) = delete;

  /// The path to open.
  [[nodiscard]] const std::string& path() const noexcept {
    return path_;
  }
  /// Replaces the content with `b`, then extends the file with zeros (sparse, no memory) to
  /// `size` bytes when that is larger.
  void write(std::span<const std::uint8_t> b, std::uint64_t size = 0) {
    bool ok = ::ftruncate(fd_, 0) == 0;
    std::size_t done = 0;
    while (ok && done < b.size()) {
      const ssize_t w = ::pwrite(fd_, b.data() + done, b.size() - done, static_cast<off_t>(done));
      ok = w > 0;
      done += ok ? static_cast<std::size_t>(w) : 0;
    }
    if (ok && size > b.size())
      ok = ::ftruncate(fd_, static_cast<off_t>(size)) == 0;
    if (!ok) {
      std::perror("specdec fuzz: cannot write the temporary file");
      std::abort();
    }
  }
  /// The current content.
  [[nodiscard]] std::vector<std::uint8_t> read() const {
    std::vector<std::uint8_t> out;
    std::uint8_t buf[4096];
    for (off_t at = 0;;) {
      const ssize_t r = ::pread(fd_, buf, sizeof(buf), at);
      if (r <= 0)
        break;
      out.insert(out.end(), buf, buf + r);
      at += r;
    }
    return out;
  }

private:
  int fd_ = -1;
  std::string path_;
  bool unlink_ = false;
};

} // namespace specdec_fuzz
