// SPDX-License-Identifier: Apache-2.0
//
// Fuzz target: the safetensors reader and writer (io/safetensors.hpp). The input is the file
// itself, parsed from memory (safetensors_file::parse) and loaded from an in-memory file
// (safetensors_file::load).
//
// Properties checked:
//  - parse and load agree (status code, tensors, metadata, bytes); the status is ok,
//    corrupt_data or unsupported (unsupported only for a dtype of the spec this reader lacks);
//    on failure the output is unchanged and `detail` is one non-empty line, on success empty;
//  - on success: the header size N fits the file and the header begins with '{'; the tensors,
//    in (begin, end) order, tile [0, size - 8 - N) exactly; each has rank <= 16, numel >= 0,
//    end - begin == numel * dtype_size, find(name) returns it, bytes() are the file's bytes;
//  - each limit of load_limits, set just below what the file needs, makes parse fail;
//  - typed reads: read_f32 / read_i32 / read_i64 / read_u8 succeed exactly for the dtypes (and,
//    for the range-checked ones, the values) they document, give the values computed here from
//    the raw bytes, refuse a wrong expected shape with shape_mismatch and a missing name with
//    corrupt_data, and leave the output unchanged on error;
//  - round trip: a safetensors_writer copy (F32, F16, F64 through add_f32; BF16 through add_bf16;
//    I32, I64, U8 and BOOL through add_i32, add_i64, add_u8; other dtypes and names the writer
//    refuses are left out) serializes with the data section at a multiple of 8 and parses back
//    to the same tensors, values and metadata; serializing that again is a fixed point;
//  - no allocation larger than the file implies (inputs of a few KB: the replay driver aborts
//    above SPECDEC_FUZZ_MALLOC_LIMIT_MB).

#include <specdec/io/safetensors.hpp>

#include "support/fuzz_input.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

using namespace specdec;
using io::dtype;
using io::safetensors_file;
using io::safetensors_writer;
using io::tensor_info;

namespace {

using bytes_t = std::vector<std::byte>;

std::uint64_t get_u64(const std::byte* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | static_cast<std::uint64_t>(p[i]);
  return v;
}

template <class T>
T load_le(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

bool same_float(float a, float b) {
  return specdec_fuzz::bits(a) == specdec_fuzz::bits(b) || (std::isnan(a) && std::isnan(b));
}

bool same_tensor(const tensor_info& a, const tensor_info& b) {
  return a.name == b.name && a.type == b.type && a.shape == b.shape && a.begin == b.begin
         && a.end == b.end;
}

bool same_file(const safetensors_file& a, const safetensors_file& b) {
  if (a.tensors().size() != b.tensors().size() || a.metadata() != b.metadata())
    return false;
  for (std::size_t i = 0; i < a.tensors().size(); ++i) {
    const tensor_info& x = a.tensors()[i];
    const tensor_info& y = b.tensors()[i];
    if (!same_tensor(x, y))
      return false;
    const auto bx = a.bytes(x);
    const auto by = b.bytes(y);
    if (bx.size() != by.size()
        || (!bx.empty() && std::memcmp(bx.data(), by.data(), bx.size()) != 0))
      return false;
  }
  return true;
}

bool is_float(dtype d) {
  return d == dtype::f32 || d == dtype::f16 || d == dtype::bf16 || d == dtype::f64;
}

/// Element i of t as float, from the raw bytes (read_f32's documented conversions).
float ref_float(const std::byte* p, dtype d, std::size_t i) {
  switch (d) {
  case dtype::f32:
    return load_le<float>(p + 4 * i);
  case dtype::f16:
    return io::f16_to_f32(load_le<std::uint16_t>(p + 2 * i));
  case dtype::bf16:
    return io::bf16_to_f32(load_le<std::uint16_t>(p + 2 * i));
  default: {
    const double v = load_le<double>(p + 8 * i);
    if (std::isnan(v))
      return std::numeric_limits<float>::quiet_NaN();
    // Rounded to nearest even; beyond FLT_MAX + half an ulp, infinity (the tie goes up).
    if (std::fabs(v) >= 0x1.ffffffp127)
      return v > 0 ? std::numeric_limits<float>::infinity()
                   : -std::numeric_limits<float>::infinity();
    return static_cast<float>(v);
  }
  }
}

/// Element i as a 64-bit integer, for the integer dtypes read_i32 / read_i64 / read_u8 take.
std::int64_t ref_int(const std::byte* p, dtype d, std::size_t i) {
  switch (d) {
  case dtype::i32:
    return load_le<std::int32_t>(p + 4 * i);
  case dtype::i64:
    return load_le<std::int64_t>(p + 8 * i);
  case dtype::u32:
    return load_le<std::uint32_t>(p + 4 * i);
  default: // u8, boolean
    return load_le<std::uint8_t>(p + i);
  }
}

void check_error(const status& s, const std::string& detail, const std::string& what) {
  FUZZ_CHECK(!detail.empty() && detail.find('\n') == std::string::npos,
             what + ": detail is not one non-empty line: '" + detail + "' (" + s.message() + ")");
}

/// The typed reads of one tensor against values computed from its bytes.
void check_reads(const safetensors_file& f, const tensor_info& t) {
  const std::string what = "tensor of dtype " + std::string(io::dtype_name(t.type));
  const auto raw = f.bytes(t);
  const std::size_t n = static_cast<std::size_t>(t.numel());
  const std::byte* p = raw.data();
  const dtype d = t.type;
  std::string detail;

  std::vector<float> fv{-7.0f};
  const status sf = f.read_f32(t.name, t.shape, fv, &detail);
  FUZZ_CHECK(sf.ok() == is_float(d), what + ": read_f32 " + sf.message());
  if (sf.ok()) {
    FUZZ_CHECK(fv.size() == n && detail.empty(), what + ": read_f32 size");
    for (std::size_t i = 0; i < n; ++i)
      FUZZ_CHECK(same_float(fv[i], ref_float(p, d, i)),
                 what + ": read_f32 element " + std::to_string(i));
  } else {
    FUZZ_CHECK(sf.code == errc::corrupt_data && fv == std::vector<float>{-7.0f},
               what + ": read_f32 error code or output changed");
    check_error(sf, detail, what + ": read_f32");
  }

  const bool int_type = d == dtype::i32 || d == dtype::i64 || d == dtype::u8 || d == dtype::u32;
  bool fits = int_type;
  for (std::size_t i = 0; fits && i < n; ++i) {
    const std::int64_t v = ref_int(p, d, i);
    fits = v >= std::numeric_limits<std::int32_t>::min()
           && v <= std::numeric_limits<std::int32_t>::max();
  }
  std::vector<std::int32_t> iv{-7};
  const status si = f.read_i32(t.name, {}, iv, &detail);
  FUZZ_CHECK(si.ok() == fits, what + ": read_i32 " + si.message());
  if (si.ok()) {
    FUZZ_CHECK(iv.size() == n, what + ": read_i32 size");
    for (std::size_t i = 0; i < n; ++i)
      FUZZ_CHECK(iv[i] == ref_int(p, d, i), what + ": read_i32 element " + std::to_string(i));
  } else {
    FUZZ_CHECK(si.code == errc::corrupt_data && iv == std::vector<std::int32_t>{-7},
               what + ": read_i32 error code or output changed");
    check_error(si, detail, what + ": read_i32");
  }

  std::vector<std::int64_t> lv{-7};
  const status sl = f.read_i64(t.name, t.shape, lv, &detail);
  FUZZ_CHECK(sl.ok() == (d == dtype::i64 || d == dtype::i32), what + ": read_i64 " + sl.message());
  if (sl.ok()) {
    FUZZ_CHECK(lv.size() == n, what + ": read_i64 size");
    for (std::size_t i = 0; i < n; ++i)
      FUZZ_CHECK(lv[i] == ref_int(p, d, i), what + ": read_i64 element " + std::to_string(i));
  } else {
    FUZZ_CHECK(sl.code == errc::corrupt_data && lv == std::vector<std::int64_t>{-7},
               what + ": read_i64 error code or output changed");
  }

  bool bytes_ok = d == dtype::u8 || d == dtype::boolean;
  for (std::size_t i = 0; d == dtype::boolean && bytes_ok && i < n; ++i)
    bytes_ok = ref_int(p, d, i) <= 1;
  std::vector<std::uint8_t> uv{77};
  const status su = f.read_u8(t.name, {}, uv, &detail);
  FUZZ_CHECK(su.ok() == bytes_ok, what + ": read_u8 " + su.message());
  if (su.ok()) {
    FUZZ_CHECK(uv.size() == n && (n == 0 || std::memcmp(uv.data(), p, n) == 0),
               what + ": read_u8 values");
  } else {
    FUZZ_CHECK(su.code == errc::corrupt_data && uv == std::vector<std::uint8_t>{77},
               what + ": read_u8 error code or output changed");
  }

  // A wrong expected shape, and a name the file cannot hold (not UTF-8).
  std::vector<std::int64_t> wrong = t.shape;
  wrong.push_back(1);
  FUZZ_CHECK(f.read_f32(t.name, wrong, fv, &detail).code == errc::shape_mismatch
                 && f.read_u8(t.name, wrong, uv).code == errc::shape_mismatch,
             what + ": a wrong expected shape is not shape_mismatch");
  FUZZ_CHECK(f.read_i64("\xff", {}, lv, &detail).code == errc::corrupt_data
                 && detail == "no tensor '\\xff'",
             "a missing name: " + detail);
}

/// Copies what the writer can hold; returns the names copied, in insertion order.
std::vector<std::string> copy_into(const safetensors_file& f, safetensors_writer& w) {
  for (const auto& [k, v] : f.metadata())
    w.set_metadata(k, v);
  std::vector<std::string> names;
  for (const tensor_info& t : f.tensors()) {
    status s{errc::unsupported};
    if (is_float(t.type)) {
      std::vector<float> v;
      FUZZ_CHECK(f.read_f32(t.name, {}, v).ok(), "copy: read_f32");
      s = t.type == dtype::bf16 ? w.add_bf16(t.name, t.shape, v) : w.add_f32(t.name, t.shape, v);
    } else if (t.type == dtype::i32) {
      std::vector<std::int32_t> v;
      FUZZ_CHECK(f.read_i32(t.name, {}, v).ok(), "copy: read_i32");
      s = w.add_i32(t.name, t.shape, v);
    } else if (t.type == dtype::i64) {
      std::vector<std::int64_t> v;
      FUZZ_CHECK(f.read_i64(t.name, {}, v).ok(), "copy: read_i64");
      s = w.add_i64(t.name, t.shape, v);
    } else if (t.type == dtype::u8 || t.type == dtype::boolean) {
      std::vector<std::uint8_t> v;
      if (!f.read_u8(t.name, {}, v).ok())
        continue; // a BOOL above 1
      s = w.add_u8(t.name, t.shape, v);
    } else {
      continue; // no writer for this dtype
    }
    const bool name_ok = !t.name.empty() && t.name.size() <= safetensors_writer::max_name_bytes;
    FUZZ_CHECK(s.ok() == name_ok, "copy of " + t.name + ": " + s.message());
    if (s.ok())
      names.push_back(t.name);
    else
      FUZZ_CHECK(s.code == errc::invalid_argument,
                 "copy: refused name gives " + std::string(s.message()));
  }
  FUZZ_CHECK(w.size() == names.size(), "copy: writer size");
  return names;
}

dtype written_type(dtype d) {
  switch (d) {
  case dtype::f16:
  case dtype::f64:
    return dtype::f32;
  case dtype::boolean:
    return dtype::u8;
  default:
    return d;
  }
}

void check_round_trip(const safetensors_file& f) {
  safetensors_writer w;
  const std::vector<std::string> names = copy_into(f, w);
  bytes_t s1;
  const status ss = w.serialize(s1);
  FUZZ_CHECK(ss.ok(), std::string("serialize: ") + ss.message());
  FUZZ_CHECK((8 + get_u64(s1.data())) % 8 == 0, "serialize: the data section is not 8-aligned");
  safetensors_file g;
  std::string detail;
  const status sg = safetensors_file::parse(s1, g, &detail);
  FUZZ_CHECK(sg.ok(), "parse(serialize(copy)): " + detail);
  FUZZ_CHECK(g.tensors().size() == names.size() && g.metadata() == f.metadata(),
             "round trip: tensor count or metadata");
  for (const std::string& name : names) {
    const tensor_info* a = f.find(name);
    const tensor_info* b = g.find(name);
    FUZZ_CHECK(a != nullptr && b != nullptr, "round trip: lost " + name);
    FUZZ_CHECK(b->shape == a->shape && b->type == written_type(a->type),
               "round trip: shape or dtype of " + name);
    if (is_float(a->type)) {
      std::vector<float> x, y;
      FUZZ_CHECK(f.read_f32(name, {}, x).ok() && g.read_f32(name, a->shape, y).ok()
                     && x.size() == y.size(),
                 "round trip: read_f32 of " + name);
      for (std::size_t i = 0; i < x.size(); ++i)
        FUZZ_CHECK(same_float(x[i], y[i]), "round trip: a value of " + name);
    } else {
      const auto bx = f.bytes(*a);
      const auto by = g.bytes(*b);
      FUZZ_CHECK(bx.size() == by.size()
                     && (bx.empty() || std::memcmp(bx.data(), by.data(), bx.size()) == 0),
                 "round trip: the bytes of " + name);
    }
  }
  // A fixed point from the second copy on (the first may reorder zero-sized ties).
  safetensors_writer w2;
  copy_into(g, w2);
  bytes_t s2;
  FUZZ_CHECK(w2.serialize(s2).ok(), "serialize of the copy of the copy");
  safetensors_file h;
  FUZZ_CHECK(safetensors_file::parse(s2, h).ok(), "parse of the second copy");
  safetensors_writer w3;
  copy_into(h, w3);
  bytes_t s3;
  FUZZ_CHECK(w3.serialize(s3).ok() && s3 == s2, "serialize(parse(s)) is not a fixed point");
}

/// parse with each limit just below what the file needs: must fail.
void check_limits(const bytes_t& file, const safetensors_file& f) {
  const std::uint64_t n = get_u64(file.data());
  io::load_limits lim;
  safetensors_file g;
  lim.max_header_bytes = n - 1;
  FUZZ_CHECK(safetensors_file::parse(file, g, nullptr, lim).code == errc::corrupt_data,
             "max_header_bytes = N - 1 accepted");
  lim = {};
  lim.max_file_bytes = file.size() - 1;
  FUZZ_CHECK(safetensors_file::parse(file, g, nullptr, lim).code == errc::unsupported,
             "max_file_bytes = size - 1 accepted");
  if (!f.tensors().empty()) {
    lim = {};
    lim.max_tensors = f.tensors().size() - 1;
    FUZZ_CHECK(safetensors_file::parse(file, g, nullptr, lim).code == errc::corrupt_data,
               "max_tensors = count - 1 accepted");
    int rank = 0;
    for (const tensor_info& t : f.tensors())
      rank = std::max(rank, static_cast<int>(t.shape.size()));
    lim = {};
    lim.max_rank = rank - 1;
    FUZZ_CHECK(safetensors_file::parse(file, g, nullptr, lim).code == errc::corrupt_data,
               "max_rank = rank - 1 accepted");
  }
  FUZZ_CHECK(g.tensors().empty(), "a failed parse changed its output");
}

specdec_fuzz::memory_file& input_file() {
  static specdec_fuzz::memory_file f;
  return f;
}

/// A file to start outputs from, so that "unchanged on error" can be checked.
const safetensors_file& sentinel() {
  static const safetensors_file s = [] {
    safetensors_writer w;
    const float x[] = {1.0f};
    bytes_t b;
    safetensors_file f;
    if (!w.add_f32("sentinel", {1}, x).ok() || !w.serialize(b).ok()
        || !safetensors_file::parse(b, f).ok())
      std::abort();
    return f;
  }();
  return s;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { // NOLINT
  bytes_t file(size);
  if (size > 0)
    std::memcpy(file.data(), data, size);
  safetensors_file f = sentinel();
  std::string detail = "stale";
  const status s = safetensors_file::parse(file, f, &detail);
  if (specdec_fuzz::verbose())
    std::fprintf(stderr, "  %zu bytes: %s %s\n", size, s.message(), detail.c_str());
  FUZZ_CHECK(s.ok() || s.code == errc::corrupt_data || s.code == errc::unsupported,
             std::string("parse: unexpected status ") + s.message());
  FUZZ_CHECK(s.code != errc::unsupported || detail.find("not supported") != std::string::npos,
             "parse: unsupported without an unsupported dtype: " + detail);

  // load() of the same bytes agrees.
  input_file().write(std::span<const std::uint8_t>(data, size));
  safetensors_file l = sentinel();
  std::string ldetail;
  const status ls = safetensors_file::load(input_file().path(), l, &ldetail);
  FUZZ_CHECK(ls.code == s.code,
             std::string("load gives ") + ls.message() + ", parse " + s.message());

  if (!s.ok()) {
    check_error(s, detail, "parse");
    FUZZ_CHECK(same_file(f, sentinel()) && same_file(l, sentinel()),
               "a failed parse or load changed its output");
    return 0;
  }
  FUZZ_CHECK(detail.empty() && ldetail.empty(), "detail not cleared on success");
  FUZZ_CHECK(same_file(f, l), "parse and load differ");

  const std::uint64_t n = get_u64(file.data());
  FUZZ_CHECK(n >= 2 && n <= size - 8 && static_cast<char>(file[8]) == '{', "header size");
  const std::uint64_t data_size = size - 8 - n;
  std::uint64_t at = 0;
  for (const tensor_info& t : f.tensors()) {
    FUZZ_CHECK(t.begin == at && t.end >= t.begin, "tensors do not tile the data: " + t.name);
    at = t.end;
    const std::int64_t numel = t.numel();
    FUZZ_CHECK(t.shape.size() <= 16 && numel >= 0
                   && static_cast<std::uint64_t>(numel) * io::dtype_size(t.type) == t.end - t.begin,
               "tensor size: " + t.name);
    FUZZ_CHECK(f.find(t.name) == &t, "find(name) is not the tensor: " + t.name);
    const auto b = f.bytes(t);
    FUZZ_CHECK(
        b.size() == t.end - t.begin
            && (b.empty() || std::memcmp(b.data(), file.data() + 8 + n + t.begin, b.size()) == 0),
        "bytes() differ from the file: " + t.name);
    check_reads(f, t);
  }
  FUZZ_CHECK(at == data_size, "tensors do not end at the end of the file");
  check_limits(file, f);
  check_round_trip(f);
  return 0;
}

// --- seeds ------------------------------------------------------------------------------------
namespace {

std::vector<std::uint8_t> to_u8(const bytes_t& b) {
  std::vector<std::uint8_t> v(b.size());
  if (!b.empty())
    std::memcpy(v.data(), b.data(), b.size());
  return v;
}

std::vector<std::uint8_t> serialized(const safetensors_writer& w) {
  bytes_t b;
  if (!w.serialize(b).ok())
    std::abort();
  return to_u8(b);
}

/// A file by hand: the 8-byte size of the header (or `n`), the header, the data.
std::vector<std::uint8_t> by_hand(const std::string& header,
                                  const std::vector<std::uint8_t>& data,
                                  std::uint64_t n = ~std::uint64_t{0}) {
  std::vector<std::uint8_t> b;
  const std::uint64_t len = n == ~std::uint64_t{0} ? header.size() : n;
  for (int i = 0; i < 8; ++i)
    b.push_back(static_cast<std::uint8_t>(len >> (8 * i)));
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

std::string entry(const std::string& name,
                  const std::string& dt,
                  const std::string& shape,
                  std::uint64_t begin,
                  std::uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dt + "\",\"shape\":" + shape + ",\"data_offsets\":["
         + std::to_string(begin) + "," + std::to_string(end) + "]}";
}

} // namespace

std::vector<specdec_fuzz::seed> specdec_fuzz::seeds() {
  std::vector<specdec_fuzz::seed> out;
  // Writer files.
  safetensors_writer all;
  all.set_metadata("format", "pt");
  all.set_metadata("note \xc3\xa9", "line\nbreak \"q\"");
  const std::vector<float> f{1.5f,
                             -2.0f,
                             0.1f,
                             std::numeric_limits<float>::infinity(),
                             std::numeric_limits<float>::quiet_NaN(),
                             -0.0f};
  const std::vector<std::int32_t> i32{-7, 0, 2147483647};
  const std::vector<std::int64_t> i64{std::numeric_limits<std::int64_t>::min(), 5, 1LL << 40};
  const std::vector<std::uint8_t> u8{0, 255, 7, 1};
  if (!all.add_f32("w.f32", {2, 3}, f).ok() || !all.add_bf16("w.bf16", {3, 2}, f).ok()
      || !all.add_i32("ids", {3}, i32).ok() || !all.add_i64("big", {3, 1}, i64).ok()
      || !all.add_u8("mask", {2, 2}, u8).ok())
    std::abort();
  out.push_back({"writer_all_types", serialized(all)});
  out.push_back({"writer_empty", serialized(safetensors_writer{})});
  safetensors_writer zero;
  if (!zero.add_f32("z", {0, 4}, {}).ok()
      || !zero.add_u8("one", {1}, std::span<const std::uint8_t>(u8).first(1)).ok()
      || !zero.add_i64("z2", {3, 0}, {}).ok()
      || !zero.add_f32("scalar", {}, std::span<const float>(f).first(1)).ok()
      || !zero.add_u8("weird \"name\"\n\xf0\x9f\x98\x80", {0}, {}).ok())
    std::abort();
  out.push_back({"writer_zero_sized_and_scalar", serialized(zero)});

  // By hand: the reference documentation's example (N = 60, not 8-aligned), the other dtypes.
  out.push_back({"spec_example_i32",
                 by_hand(R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})",
                         std::vector<std::uint8_t>(16, 0))});
  std::vector<std::uint8_t> d;
  const auto le = [&d](auto v) {
    std::uint8_t raw[sizeof(v)];
    std::memcpy(raw, &v, sizeof(v));
    d.insert(d.end(), raw, raw + sizeof(v));
  };
  le(std::uint16_t{0x3c00});
  le(std::uint16_t{0x0001}); // F16 [2] at [0, 4)
  le(0.1);
  le(1e300);                    // F64 [2] at [4, 20)
  d.insert(d.end(), {0, 1, 1}); // BOOL [3] at [20, 23)
  d.push_back(0xff);            // I8 [1] at [23, 24)
  le(std::uint32_t{3000000000u});
  le(std::uint32_t{5}); // U32 [2] at [24, 32)
  le(std::uint64_t{1}); // U64 [1] at [32, 40)
  le(std::int16_t{-3}); // I16 [1] at [40, 42)
  le(std::uint16_t{9}); // U16 [1] at [42, 44)
  const std::string other =
      "{\n  \"__metadata__\": {\"a\": \"\\u00e9\\ud83d\\ude00\"},\n  "
      + entry("f16", "F16", "[2]", 0, 4) + ",\n  " + entry("f64", "F64", "[2]", 4, 20) + ", "
      + entry("flags", "BOOL", "[3]", 20, 23) + ",\t" + entry("i8", "I8", "[1]", 23, 24) + ","
      + entry("u32", "U32", "[2]", 24, 32) + "," + entry("u64", "U64", "[1]", 32, 40) + ","
      + entry("i16", "I16", "[1]", 40, 42) + "," + entry("u16", "U16", "[1]", 42, 44) + "}   ";
  out.push_back({"hand_other_dtypes", by_hand(other, d)});

  // Broken files.
  const std::vector<std::uint8_t> good = out[0].bytes;
  out.push_back({"truncated", std::vector<std::uint8_t>(good.begin(), good.end() - 3)});
  std::vector<std::uint8_t> b = good;
  b.push_back(0);
  out.push_back({"trailing_byte", b});
  out.push_back({"short_file", std::vector<std::uint8_t>(good.begin(), good.begin() + 5)});
  b = good;
  b[7] = 0x7f; // N near 2^63
  out.push_back({"huge_header_size", b});
  b = good;
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | b[static_cast<std::size_t>(i)];
  n += 8; // N past the JSON, into the data
  for (int i = 0; i < 8; ++i)
    b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  out.push_back({"header_size_into_data", b});
  const std::string two_u8 = "{" + entry("a", "U8", "[4]", 0, 4) + ",";
  out.push_back(
      {"gap",
       by_hand(two_u8 + entry("b", "U8", "[4]", 5, 9) + "}", std::vector<std::uint8_t>(9, 1))});
  out.push_back(
      {"overlap",
       by_hand(two_u8 + entry("b", "U8", "[4]", 3, 7) + "}", std::vector<std::uint8_t>(7, 1))});
  out.push_back({"bad_json_trailing_comma", by_hand(two_u8 + "}", {1, 2, 3, 4})});
  out.push_back(
      {"duplicate_key",
       by_hand(two_u8 + entry("a", "U8", "[4]", 4, 8) + "}", std::vector<std::uint8_t>(8, 1))});
  out.push_back({"lone_surrogate",
                 by_hand(R"({"a\ud800":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", {1})});
  out.push_back({"shape_overflow",
                 by_hand("{" + entry("a", "F64", "[9007199254740992,256]", 0, 0) + "}", {})});
  out.push_back(
      {"unsupported_dtype", by_hand("{" + entry("a", "F8_E4M3", "[2]", 0, 2) + "}", {1, 2})});
  out.push_back({"unknown_key",
                 by_hand(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":[]}})", {1})});
  out.push_back({"bool_above_1", by_hand("{" + entry("a", "BOOL", "[2]", 0, 2) + "}", {1, 2})});
  return out;
}
