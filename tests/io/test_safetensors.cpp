// SPDX-License-Identifier: Apache-2.0
// io/safetensors.hpp: the safetensors reader and writer. Round trips of every writer type,
// bfloat16 / half conversions, files written by hand after the public spec, one failing case per
// validation rule (with the expected errc), typed reads and their conversions.

#include <specdec/io/safetensors.hpp>

#include <catch2/catch.hpp>

#include "support/scratch_dir.hpp"
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <vector>

using namespace specdec;
using io::dtype;
using io::safetensors_file;
using io::safetensors_writer;

namespace {

using bytes_t = std::vector<std::byte>;

std::uint32_t bits_of(float f) {
  std::uint32_t u = 0;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(std::uint32_t u) {
  float f = 0;
  std::memcpy(&f, &u, 4);
  return f;
}

void put_u64(bytes_t& b, std::uint64_t v) {
  for (int i = 0; i < 8; ++i)
    b.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xffu));
}

/// A file: the 8-byte size of `header` (or `n` when given), the header, the data.
bytes_t file_of(const std::string& header,
                const std::vector<std::uint8_t>& data = {},
                std::uint64_t n = ~std::uint64_t{0}) {
  bytes_t b;
  put_u64(b, n == ~std::uint64_t{0} ? header.size() : n);
  for (const char c : header)
    b.push_back(static_cast<std::byte>(c));
  for (const std::uint8_t c : data)
    b.push_back(static_cast<std::byte>(c));
  return b;
}

std::vector<std::uint8_t> zeros(std::size_t n) {
  return std::vector<std::uint8_t>(n, 0);
}

template <class T>
void append_le(std::vector<std::uint8_t>& d, T v) {
  std::uint8_t raw[sizeof(T)];
  std::memcpy(raw, &v, sizeof(T));
  d.insert(d.end(), raw, raw + sizeof(T));
}

/// Parses `b`; returns the status code, `detail` receives the explanation.
errc parse_code(const bytes_t& b, std::string* detail = nullptr, const io::load_limits& lim = {}) {
  safetensors_file f;
  return safetensors_file::parse(b, f, detail, lim).code;
}

/// One tensor entry of a header.
std::string entry(const std::string& name,
                  const std::string& dt,
                  const std::string& shape,
                  std::uint64_t begin,
                  std::uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dt + "\",\"shape\":" + shape + ",\"data_offsets\":["
         + std::to_string(begin) + "," + std::to_string(end) + "]}";
}

std::vector<char> as_chars(const bytes_t& b) {
  std::vector<char> c(b.size());
  if (!b.empty())
    std::memcpy(c.data(), b.data(), b.size());
  return c;
}

/// A small valid file with every writer type and metadata.
bytes_t sample_file() {
  safetensors_writer w;
  w.set_metadata("format", "pt");
  const std::vector<float> f{1.5f, -2.0f, 0.25f, 3.0f, -0.0f, 1e-3f};
  const std::vector<std::int32_t> i32{-7, 0, 2147483647};
  const std::vector<std::int64_t> i64{std::numeric_limits<std::int64_t>::min(), 5};
  const std::vector<std::uint8_t> u8{0, 255, 7};
  REQUIRE(w.add_f32("w.f32", {2, 3}, f).ok());
  REQUIRE(w.add_bf16("w.bf16", {3}, std::span<const float>(f).first(3)).ok());
  REQUIRE(w.add_i32("ids", {3}, i32).ok());
  REQUIRE(w.add_i64("big", {2, 1}, i64).ok());
  REQUIRE(w.add_u8("mask", {3}, u8).ok());
  bytes_t out;
  REQUIRE(w.serialize(out).ok());
  return out;
}

} // namespace

// -------------------------------------------------------------------------------------------------
// dtypes and conversions
// -------------------------------------------------------------------------------------------------

TEST_CASE("safetensors: dtype sizes and names", "[io][safetensors]") {
  CHECK(io::dtype_size(dtype::f32) == 4);
  CHECK(io::dtype_size(dtype::f64) == 8);
  CHECK(io::dtype_size(dtype::f16) == 2);
  CHECK(io::dtype_size(dtype::bf16) == 2);
  CHECK(io::dtype_size(dtype::i8) == 1);
  CHECK(io::dtype_size(dtype::i16) == 2);
  CHECK(io::dtype_size(dtype::i32) == 4);
  CHECK(io::dtype_size(dtype::i64) == 8);
  CHECK(io::dtype_size(dtype::u8) == 1);
  CHECK(io::dtype_size(dtype::u16) == 2);
  CHECK(io::dtype_size(dtype::u32) == 4);
  CHECK(io::dtype_size(dtype::u64) == 8);
  CHECK(io::dtype_size(dtype::boolean) == 1);
  static_assert(io::dtype_size(dtype::bf16) == 2);
  static_assert(io::dtype_name(dtype::boolean)[0] == 'B');
  CHECK(std::string(io::dtype_name(dtype::f32)) == "F32");
  CHECK(std::string(io::dtype_name(dtype::bf16)) == "BF16");
  CHECK(std::string(io::dtype_name(dtype::u64)) == "U64");
  CHECK(std::string(io::dtype_name(dtype::boolean)) == "BOOL");
}

TEST_CASE("safetensors: bfloat16 conversions, exact and rounded to nearest even",
          "[io][safetensors][bf16]") {
  CHECK(io::bf16_to_f32(0x3f80) == 1.0f);
  CHECK(io::bf16_to_f32(0xc000) == -2.0f);
  CHECK(io::bf16_to_f32(0x3fc0) == 1.5f);
  CHECK(io::bf16_to_f32(0x7f80) == std::numeric_limits<float>::infinity());
  CHECK(io::bf16_to_f32(0xff80) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(io::bf16_to_f32(0x7fc0)));
  CHECK(io::bf16_to_f32(0x0001) == std::ldexp(1.0f, -133)); // smallest subnormal
  CHECK(std::signbit(io::bf16_to_f32(0x8000)));

  CHECK(io::f32_to_bf16(1.0f) == 0x3f80);
  CHECK(io::f32_to_bf16(-2.0f) == 0xc000);
  // Ties go to the even neighbour; anything above a tie rounds up.
  CHECK(io::f32_to_bf16(float_of(0x3f808000u)) == 0x3f80);
  CHECK(io::f32_to_bf16(float_of(0x3f818000u)) == 0x3f82);
  CHECK(io::f32_to_bf16(float_of(0x3f808001u)) == 0x3f81);
  CHECK(io::f32_to_bf16(float_of(0x3f807fffu)) == 0x3f80);
  CHECK(io::f32_to_bf16(float_of(0xbf818000u)) == 0xbf82);
  // Overflow to infinity; infinities and NaN kept.
  CHECK(io::f32_to_bf16(std::numeric_limits<float>::max()) == 0x7f80);
  CHECK(io::f32_to_bf16(std::numeric_limits<float>::infinity()) == 0x7f80);
  CHECK(io::f32_to_bf16(-std::numeric_limits<float>::infinity()) == 0xff80);
  CHECK(std::isnan(io::bf16_to_f32(io::f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isnan(io::bf16_to_f32(io::f32_to_bf16(float_of(0x7f800001u))))); // payload low only
  CHECK((io::f32_to_bf16(float_of(0xff800001u)) & 0x8000u) != 0);             // sign kept
  // Subnormals: the tie at half the smallest subnormal goes to 0, above it to the subnormal.
  CHECK(io::f32_to_bf16(float_of(0x00008000u)) == 0x0000);
  CHECK(io::f32_to_bf16(float_of(0x00008001u)) == 0x0001);
  CHECK(io::f32_to_bf16(float_of(0x00018000u)) == 0x0002);
  // Every bfloat16 widens to its bits << 16 and survives a round trip (NaNs stay NaN).
  int bad = 0;
  for (std::uint32_t b = 0; b <= 0xffffu; ++b) {
    const auto h = static_cast<std::uint16_t>(b);
    const float f = io::bf16_to_f32(h);
    const std::uint16_t back = io::f32_to_bf16(f);
    if (bits_of(f) != (b << 16) || (std::isnan(f) ? !std::isnan(io::bf16_to_f32(back)) : back != h))
      ++bad;
  }
  CHECK(bad == 0);
}

TEST_CASE("safetensors: half to float is exact, subnormals included", "[io][safetensors][f16]") {
  CHECK(io::f16_to_f32(0x3c00) == 1.0f);
  CHECK(io::f16_to_f32(0xc000) == -2.0f);
  CHECK(io::f16_to_f32(0x7bff) == 65504.0f);
  CHECK(io::f16_to_f32(0x0001) == std::ldexp(1.0f, -24));
  CHECK(io::f16_to_f32(0x03ff) == std::ldexp(1023.0f, -24));
  CHECK(io::f16_to_f32(0x0400) == std::ldexp(1.0f, -14));
  CHECK(io::f16_to_f32(0x7c00) == std::numeric_limits<float>::infinity());
  CHECK(io::f16_to_f32(0xfc00) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(io::f16_to_f32(0x7e00)));
  CHECK(std::isnan(io::f16_to_f32(0x7c01)));
  CHECK(std::signbit(io::f16_to_f32(0x8000)));
  CHECK(io::f16_to_f32(0x8000) == 0.0f);
  // Every finite pattern against (-1)^s * 2^(e-15) * (1 + m/1024), or m * 2^-24 for e = 0.
  int bad = 0;
  for (std::uint32_t b = 0; b <= 0xffffu; ++b) {
    const std::uint32_t e = (b >> 10) & 0x1fu;
    if (e == 31)
      continue;
    const std::uint32_t m = b & 0x3ffu;
    double v = e == 0 ? std::ldexp(static_cast<double>(m), -24)
                      : std::ldexp(1.0 + static_cast<double>(m) / 1024.0, static_cast<int>(e) - 15);
    if ((b & 0x8000u) != 0)
      v = -v;
    if (bits_of(io::f16_to_f32(static_cast<std::uint16_t>(b))) != bits_of(static_cast<float>(v)))
      ++bad;
  }
  CHECK(bad == 0);
}

// -------------------------------------------------------------------------------------------------
// Writer and round trips
// -------------------------------------------------------------------------------------------------

TEST_CASE("safetensors: every writer type and the metadata round-trip", "[io][safetensors]") {
  const bytes_t b = sample_file();
  // The header is padded with spaces so that the data section starts at a multiple of 8.
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | static_cast<std::uint64_t>(b[static_cast<std::size_t>(i)]);
  CHECK((8 + n) % 8 == 0);
  std::string header(n, ' ');
  std::memcpy(header.data(), b.data() + 8, n);
  CHECK(header.front() == '{');
  const std::size_t last = header.find_last_not_of(' ');
  CHECK(header[last] == '}'); // then spaces only
  CHECK(header.size() - last - 1 < 8);

  safetensors_file f;
  std::string detail = "stale";
  REQUIRE(safetensors_file::parse(b, f, &detail).ok());
  CHECK(detail.empty());
  REQUIRE(f.tensors().size() == 5);
  // Insertion order is data order.
  const char* names[] = {"w.f32", "w.bf16", "ids", "big", "mask"};
  for (std::size_t i = 0; i < 5; ++i)
    CHECK(f.tensors()[i].name == names[i]);
  REQUIRE(f.metadata().size() == 1);
  CHECK(f.metadata().at("format") == "pt");

  std::vector<float> fv;
  const std::int64_t s23[] = {2, 3};
  REQUIRE(f.read_f32("w.f32", s23, fv).ok());
  const std::vector<float> want{1.5f, -2.0f, 0.25f, 3.0f, -0.0f, 1e-3f};
  REQUIRE(fv.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i)
    CHECK(bits_of(fv[i]) == bits_of(want[i]));
  REQUIRE(f.read_f32("w.bf16", {}, fv).ok());
  CHECK(fv == std::vector<float>{1.5f, -2.0f, 0.25f}); // exact in bfloat16
  CHECK(f.find("w.bf16")->type == dtype::bf16);

  std::vector<std::int32_t> iv;
  REQUIRE(f.read_i32("ids", {}, iv).ok());
  CHECK(iv == std::vector<std::int32_t>{-7, 0, 2147483647});
  std::vector<std::int64_t> lv;
  const std::int64_t s21[] = {2, 1};
  REQUIRE(f.read_i64("big", s21, lv).ok());
  CHECK(lv == std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(), 5});
  std::vector<std::uint8_t> uv;
  REQUIRE(f.read_u8("mask", {}, uv).ok());
  CHECK(uv == std::vector<std::uint8_t>{0, 255, 7});

  const io::tensor_info* t = f.find("ids");
  REQUIRE(t != nullptr);
  CHECK(t->numel() == 3);
  CHECK(t->end - t->begin == 12);
  CHECK(f.bytes(*t).size() == 12);
  CHECK(f.find("absent") == nullptr);
  CHECK(f.find("") == nullptr);
}

TEST_CASE("safetensors: write() then load() gives the same file, atomically", "[io][safetensors]") {
  specdec_test::scratch_dir dir("specdec_safetensors");
  const std::string path = dir.write("probe", {});
  const std::string target =
      (std::filesystem::path(path).parent_path() / "model.safetensors").string();

  safetensors_writer w;
  w.set_metadata("k", "v1");
  w.set_metadata("k", "v2"); // replaces
  w.set_metadata("unicode \xc3\xa9\xe2\x82\xac", "line\nbreak \"quoted\" \\ tab\t \x01");
  const std::vector<float> x{0.1f, 0.2f, 0.3f, 0.4f};
  REQUIRE(w.add_bf16("emb", {2, 2}, x).ok());
  REQUIRE(w.add_i64("empty", {0, 5}, std::span<const std::int64_t>{}).ok());
  REQUIRE(w.add_f32("scalar", {}, std::span<const float>(x).first(1)).ok());
  REQUIRE(w.add_u8("weird \"name\"\n\xf0\x9f\x98\x80", {1}, std::vector<std::uint8_t>{9}).ok());
  CHECK(w.size() == 4);
  std::string detail = "stale";
  REQUIRE(w.write(target, &detail).ok());
  CHECK(detail.empty());
  CHECK(std::filesystem::exists(target));
  CHECK_FALSE(std::filesystem::exists(target + ".tmp"));

  safetensors_file f;
  REQUIRE(safetensors_file::load(target, f, &detail).ok());
  CHECK(detail.empty());
  CHECK(f.metadata().at("k") == "v2");
  CHECK(f.metadata().at("unicode \xc3\xa9\xe2\x82\xac") == "line\nbreak \"quoted\" \\ tab\t \x01");
  std::vector<float> got;
  REQUIRE(f.read_f32("emb", {}, got).ok());
  REQUIRE(got.size() == 4);
  for (std::size_t i = 0; i < 4; ++i)
    CHECK(got[i] == io::bf16_to_f32(io::f32_to_bf16(x[i])));
  std::vector<std::int64_t> e{1, 2};
  const std::int64_t s05[] = {0, 5};
  REQUIRE(f.read_i64("empty", s05, e).ok());
  CHECK(e.empty());
  REQUIRE(f.read_f32("scalar", {}, got).ok());
  CHECK(got == std::vector<float>{0.1f});
  CHECK(f.find("scalar")->shape.empty());
  CHECK(f.find("scalar")->numel() == 1);
  std::vector<std::uint8_t> u;
  REQUIRE(f.read_u8("weird \"name\"\n\xf0\x9f\x98\x80", {}, u).ok());
  CHECK(u == std::vector<std::uint8_t>{9});

  // The same bytes as serialize().
  bytes_t ser;
  REQUIRE(w.serialize(ser).ok());
  safetensors_file g;
  REQUIRE(safetensors_file::parse(ser, g).ok());
  CHECK(g.tensors().size() == f.tensors().size());

  // A directory that does not exist: io_error, nothing left behind.
  const std::string bad = (std::filesystem::path(target).parent_path() / "no" / "x").string();
  REQUIRE(w.write(bad, &detail).code == errc::io_error);
  CHECK_FALSE(detail.empty());
  CHECK_FALSE(std::filesystem::exists(bad));
  CHECK_FALSE(std::filesystem::exists(bad + ".tmp"));
  // A rename onto a directory fails; the temporary file is removed.
  const std::string sub = (std::filesystem::path(target).parent_path() / "subdir").string();
  std::filesystem::create_directory(sub);
  std::filesystem::create_directory(sub + "/inner");
  REQUIRE(w.write(sub, &detail).code == errc::io_error);
  CHECK_FALSE(std::filesystem::exists(sub + ".tmp"));
}

TEST_CASE("safetensors: writer refuses bad names, shapes and sizes", "[io][safetensors]") {
  safetensors_writer w;
  const std::vector<float> four(4, 1.0f);
  REQUIRE(w.add_f32("a", {2, 2}, four).ok());
  CHECK(w.add_f32("a", {4}, four).code == errc::invalid_argument); // duplicate
  CHECK(w.add_i32("a", {0}, std::span<const std::int32_t>{}).code == errc::invalid_argument);
  CHECK(w.add_f32("", {4}, four).code == errc::invalid_argument);
  CHECK(w.add_f32(std::string(1025, 'n'), {4}, four).code == errc::invalid_argument);
  CHECK(w.add_f32(std::string(1024, 'n'), {4}, four).ok());
  CHECK(w.add_f32("__metadata__", {4}, four).code == errc::invalid_argument);
  CHECK(w.add_f32("bad\xff utf8", {4}, four).code == errc::invalid_argument);
  CHECK(w.add_f32("neg", {-1, -4}, four).code == errc::invalid_argument);
  CHECK(w.add_f32("neg2", {4, -1}, four).code == errc::invalid_argument);
  CHECK(w.add_f32("count", {5}, four).code == errc::invalid_argument);
  CHECK(w.add_f32("count2", {2, 3}, four).code == errc::invalid_argument);
  CHECK(w.add_f32("huge", {std::int64_t{1} << 40, std::int64_t{1} << 40}, four).code
        == errc::overflow);
  CHECK(w.add_u8("huge2", {std::int64_t{1} << 31, std::int64_t{1} << 31, 4}, {}).code
        == errc::overflow);
  CHECK(w.add_f32("dim_above_2_53", {(std::int64_t{1} << 53) + 1, 0}, {}).code
        == errc::invalid_argument);
  CHECK(w.add_f32("zero_times_big", {std::int64_t{1} << 53, 0}, {}).ok());
  CHECK(w.add_f32("rank17", std::vector<std::int64_t>(17, 1), std::span<const float>(four).first(1))
            .code
        == errc::invalid_argument);
  CHECK(w.add_f32("rank16", std::vector<std::int64_t>(16, 1), std::span<const float>(four).first(1))
            .ok());
  CHECK(w.size() == 4);
  bytes_t b;
  REQUIRE(w.serialize(b).ok());
  safetensors_file f;
  REQUIRE(safetensors_file::parse(b, f).ok());
  CHECK(f.tensors().size() == 4);
  // Metadata that is not UTF-8 is refused when serializing.
  w.set_metadata("k", "\xc0\x80");
  CHECK(w.serialize(b).code == errc::invalid_argument);
}

// -------------------------------------------------------------------------------------------------
// Files written by hand after the public spec
// -------------------------------------------------------------------------------------------------

TEST_CASE("safetensors: the spec's example file parses", "[io][safetensors][spec]") {
  // The byte string of the reference implementation's documentation: N = 60 ('<'), one I32
  // tensor [2, 2] at [0, 16], 16 zero bytes (the data section is not 8-aligned: 8 + 60 = 68).
  const std::string header = R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})";
  const bytes_t b = file_of(header, zeros(16));
  REQUIRE(header.size() == 60);
  CHECK(static_cast<char>(b[0]) == '<');
  safetensors_file f;
  std::string detail;
  REQUIRE(safetensors_file::parse(b, f, &detail).ok());
  REQUIRE(f.tensors().size() == 1);
  const io::tensor_info& t = f.tensors()[0];
  CHECK(t.name == "test");
  CHECK(t.type == dtype::i32);
  CHECK(t.shape == std::vector<std::int64_t>{2, 2});
  CHECK(t.begin == 0);
  CHECK(t.end == 16);
  std::vector<std::int32_t> v;
  const std::int64_t s22[] = {2, 2};
  REQUIRE(f.read_i32("test", s22, v).ok());
  CHECK(v == std::vector<std::int32_t>{0, 0, 0, 0});
}

TEST_CASE("safetensors: a pretty-printed header with metadata, escapes and padding parses",
          "[io][safetensors][spec]") {
  // As the spec describes it: "__metadata__" holds strings only, offsets are relative to the data
  // section, the header may be padded with spaces; any JSON whitespace between tokens.
  const std::string header = "{\n"
                             "  \"__metadata__\": {\"format\": \"pt\", \"note\": \"a\\u00e9\\ud83d"
                             "\\ude00\\n\\/\"},\n"
                             "  \"model.embed\": {\"dtype\": \"F16\", \"shape\": [2, 1],\n"
                             "\t\"data_offsets\": [0, 4]},\r\n"
                             "  \"model.norm\" : { \"shape\" : [ 1 ] , \"data_offsets\" : [4,12], "
                             "\"dtype\" : \"F64\" }\n"
                             "}     ";
  std::vector<std::uint8_t> data;
  append_le<std::uint16_t>(data, 0x3c00); // 1.0
  append_le<std::uint16_t>(data, 0xc000); // -2.0
  append_le<double>(data, 0.1);
  safetensors_file f;
  std::string detail;
  REQUIRE(safetensors_file::parse(file_of(header, data), f, &detail).ok());
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.metadata().at("note") == "a\xc3\xa9\xf0\x9f\x98\x80\n/");
  REQUIRE(f.tensors().size() == 2);
  CHECK(f.tensors()[0].name == "model.embed");
  CHECK(f.tensors()[1].name == "model.norm");
  std::vector<float> v;
  REQUIRE(f.read_f32("model.embed", {}, v).ok());
  CHECK(v == std::vector<float>{1.0f, -2.0f});
  REQUIRE(f.read_f32("model.norm", {}, v).ok());
  CHECK(v == std::vector<float>{0.1f}); // rounded to nearest
}

TEST_CASE("safetensors: empty headers, zero-sized tensors and tie order", "[io][safetensors]") {
  safetensors_file f;
  REQUIRE(safetensors_file::parse(file_of("{}"), f).ok());
  CHECK(f.tensors().empty());
  REQUIRE(safetensors_file::parse(file_of("{ }   "), f).ok());
  CHECK(parse_code(file_of("{}", zeros(1))) == errc::corrupt_data); // trailing byte
  // Zero-sized tensors at the start, in the middle (sharing an offset with a real one) and at the
  // end; tensors() orders ties zero-sized first, then by name.
  const std::string header =
      "{" + entry("z2", "F32", "[0]", 0, 0) + "," + entry("b", "U8", "[2]", 2, 4) + ","
      + entry("z1", "I64", "[3,0]", 0, 0) + "," + entry("a", "U8", "[2]", 0, 2) + ","
      + entry("mid", "BF16", "[0, 7]", 2, 2) + "," + entry("end", "F64", "[0]", 4, 4) + "}";
  std::string detail;
  REQUIRE(safetensors_file::parse(file_of(header, {1, 2, 3, 4}), f, &detail).ok());
  std::vector<std::string> order;
  for (const auto& t : f.tensors())
    order.push_back(t.name);
  CHECK(order == std::vector<std::string>{"z1", "z2", "a", "mid", "b", "end"});
  std::vector<std::uint8_t> u;
  REQUIRE(f.read_u8("b", {}, u).ok());
  CHECK(u == std::vector<std::uint8_t>{3, 4});
  // A shape of 2^53 times 0 is valid.
  REQUIRE(safetensors_file::parse(
              file_of("{" + entry("big0", "F32", "[9007199254740992,0]", 0, 0) + "}"), f)
              .ok());
  CHECK(f.find("big0")->numel() == 0);
}

// -------------------------------------------------------------------------------------------------
// Validation: one failing case per rule
// -------------------------------------------------------------------------------------------------

TEST_CASE("safetensors: file size and header size checks", "[io][safetensors][validation]") {
  for (std::size_t n = 0; n < 8; ++n) {
    bytes_t b(n, std::byte{0});
    std::string detail;
    CHECK(parse_code(b, &detail) == errc::corrupt_data);
    CHECK(detail.find(std::to_string(n) + " bytes") != std::string::npos);
  }
  std::string detail;
  CHECK(parse_code(file_of("", {}, 0), &detail) == errc::corrupt_data); // N = 0
  CHECK(detail.find("0") != std::string::npos);
  // Huge N: refused before anything is allocated for it.
  CHECK(parse_code(file_of("{}", {}, ~std::uint64_t{0} - 1), &detail) == errc::corrupt_data);
  CHECK(parse_code(file_of("{}", {}, std::uint64_t{1} << 63), &detail) == errc::corrupt_data);
  CHECK(detail.find("9223372036854775808") != std::string::npos);
  // N above the limit, though the file would hold it.
  io::load_limits small;
  small.max_header_bytes = 16;
  const std::string h17 = "{}" + std::string(15, ' ');
  CHECK(parse_code(file_of(h17), &detail, small) == errc::corrupt_data);
  CHECK(detail.find("limit") != std::string::npos);
  small.max_header_bytes = 17;
  CHECK(parse_code(file_of(h17), &detail, small) == errc::ok);
  // 8 + N past the end of the file.
  CHECK(parse_code(file_of("{}", {}, 3), &detail) == errc::corrupt_data);
  CHECK(detail.find("past the end") != std::string::npos);
  // A file above max_file_bytes: unsupported.
  io::load_limits tiny;
  tiny.max_file_bytes = 9;
  CHECK(parse_code(file_of("{}"), &detail, tiny) == errc::unsupported);
  tiny.max_file_bytes = 10;
  CHECK(parse_code(file_of("{}"), &detail, tiny) == errc::ok);
}

TEST_CASE("safetensors: load() of missing, unreadable and oversized files",
          "[io][safetensors][validation]") {
  specdec_test::scratch_dir dir("specdec_safetensors");
  safetensors_file f;
  std::string detail;
  const std::string good = dir.write("good.safetensors", as_chars(sample_file()));
  const std::string folder = std::filesystem::path(good).parent_path().string();
  CHECK(safetensors_file::load(folder + "/absent", f, &detail).code == errc::io_error);
  CHECK(detail.find(folder + "/absent: ") == 0);
  CHECK(safetensors_file::load(folder, f, &detail).code == errc::io_error); // a directory
  io::load_limits tiny;
  tiny.max_file_bytes = 64;
  CHECK(safetensors_file::load(good, f, &detail, tiny).code == errc::unsupported);
  CHECK(f.tensors().empty()); // unchanged
  REQUIRE(safetensors_file::load(good, f, &detail).ok());
  CHECK(f.tensors().size() == 5);
  // A failed load leaves the previous content.
  const std::string bad = dir.write("bad.safetensors", as_chars(file_of("{", {})));
  CHECK(safetensors_file::load(bad, f, &detail).code == errc::corrupt_data);
  CHECK(detail.find("bad.safetensors: ") != std::string::npos);
  CHECK(f.tensors().size() == 5);
}

TEST_CASE("safetensors: every truncation of a valid file is an error",
          "[io][safetensors][validation]") {
  const bytes_t b = sample_file();
  specdec_test::scratch_dir dir("specdec_safetensors");
  for (std::size_t len = 0; len < b.size(); ++len) {
    const bytes_t cut(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(len));
    std::string detail;
    safetensors_file f;
    const status s = safetensors_file::parse(cut, f, &detail);
    CHECK(s.code == errc::corrupt_data);
    CHECK_FALSE(detail.empty());
    CHECK(detail.find('\n') == std::string::npos);
    CHECK(f.tensors().empty());
    if (len % 16 == 0) { // and through load(), for a sample of lengths
      const std::string p = dir.write("cut", as_chars(cut));
      CHECK(safetensors_file::load(p, f, &detail).code == errc::corrupt_data);
    }
  }
  // The same file with one byte more is an error too (trailing bytes).
  bytes_t longer = b;
  longer.push_back(std::byte{0});
  CHECK(parse_code(longer) == errc::corrupt_data);
}

TEST_CASE("safetensors: malformed JSON headers are refused",
          "[io][safetensors][validation][json]") {
  const std::string ok_entry = entry("t", "U8", "[1]", 0, 1);
  struct bad_case {
    const char* what;
    std::string header;
  };
  const bad_case cases[] = {
      {"leading space", " {" + ok_entry + "}"},
      {"not an object", "[" + ok_entry + "]"},
      {"unterminated object", "{" + ok_entry},
      {"trailing comma in the object", "{" + ok_entry + ",}"},
      {"trailing comma in an array", R"({"t":{"dtype":"U8","shape":[1,],"data_offsets":[0,1]}})"},
      {"missing colon", R"({"t" {"dtype":"U8","shape":[1],"data_offsets":[0,1]}})"},
      {"single quotes", R"({'t':{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})"},
      {"unquoted key", R"({t:{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})"},
      {"unterminated string", R"({"t)"},
      {"raw control character",
       "{\"t\x01\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}"},
      {"raw newline in a string",
       "{\"t\n\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}"},
      {"invalid escape", R"({"t\x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})"},
      {"bad hex in \\u", R"({"t\u00g0":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})"},
      {"truncated \\u", R"({"t\u00)"},
      {"lone high surrogate", R"({"t\ud83d":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})"},
      {"high surrogate then a letter",
       R"({"t\ud83dx":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})"},
      {"high surrogate then a non-surrogate escape",
       R"({"t\ud83d\u0041":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})"},
      {"two high surrogates",
       R"({"t\ud83d\ud83d":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})"},
      {"lone low surrogate", R"({"t\ude00":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})"},
      {"trailing garbage", "{" + ok_entry + "}x"},
      {"trailing newline", "{" + ok_entry + "}\n"},
      {"trailing NUL", std::string("{" + ok_entry + "}") + std::string(1, '\0')},
      {"second object", "{" + ok_entry + "}{}"},
      {"fraction", R"({"t":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}})"},
      {"exponent", R"({"t":{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]}})"},
      {"exponent in an offset", R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1E0]}})"},
      {"leading zero", R"({"t":{"dtype":"U8","shape":[01],"data_offsets":[0,1]}})"},
      {"minus", R"({"t":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})"},
      {"minus zero", R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[-0,1]}})"},
      {"plus", R"({"t":{"dtype":"U8","shape":[+1],"data_offsets":[0,1]}})"},
      {"above 2^53", R"({"t":{"dtype":"U8","shape":[9007199254740993,0],"data_offsets":[0,0]}})"},
      {"far above 2^64",
       R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,100000000000000000000000]}})"},
      {"a string for a dimension", R"({"t":{"dtype":"U8","shape":["1"],"data_offsets":[0,1]}})"},
      {"null dimension", R"({"t":{"dtype":"U8","shape":[null],"data_offsets":[0,1]}})"},
      {"shape not an array", R"({"t":{"dtype":"U8","shape":1,"data_offsets":[0,1]}})"},
      {"nested shape", R"({"t":{"dtype":"U8","shape":[[1]],"data_offsets":[0,1]}})"},
      {"entry not an object", R"({"t":["U8",[1],[0,1]]})"},
      {"entry is null", R"({"t":null})"},
      {"entry is true", R"({"t":true})"},
      {"unknown key in an entry",
       R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":1}})"},
      {"unknown key, differing case", R"({"t":{"DType":"U8","shape":[1],"data_offsets":[0,1]}})"},
      {"missing dtype", R"({"t":{"shape":[1],"data_offsets":[0,1]}})"},
      {"missing shape", R"({"t":{"dtype":"U8","data_offsets":[0,1]}})"},
      {"missing data_offsets", R"({"t":{"dtype":"U8","shape":[1]}})"},
      {"empty entry", R"({"t":{}})"},
      {"duplicate dtype", R"({"t":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}})"},
      {"duplicate shape", R"({"t":{"dtype":"U8","shape":[1],"shape":[1],"data_offsets":[0,1]}})"},
      {"duplicate data_offsets",
       R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"data_offsets":[0,1]}})"},
      {"duplicate tensor", "{" + ok_entry + "," + ok_entry + "}"},
      {"duplicate __metadata__", R"({"__metadata__":{},"__metadata__":{}})"},
      {"duplicate metadata key", R"({"__metadata__":{"a":"1","a":"2"}})"},
      {"metadata value a number", R"({"__metadata__":{"a":1}})"},
      {"metadata value null", R"({"__metadata__":{"a":null}})"},
      {"metadata value an object", R"({"__metadata__":{"a":{}}})"},
      {"metadata not an object", R"({"__metadata__":"pt"})"},
      {"metadata trailing comma", R"({"__metadata__":{"a":"b",}})"},
      {"unknown dtype", R"({"t":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})"},
      {"lower-case dtype", R"({"t":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})"},
      {"dtype not a string", R"({"t":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})"},
      {"three offsets", R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})"},
      {"one offset", R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[1]}})"},
      {"no offsets", R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[]}})"},
      {"invalid UTF-8 byte", "{\"t\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}"},
      {"overlong UTF-8", "{\"t\xc0\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}"},
      {"UTF-8 surrogate",
       "{\"t\xed\xa0\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}"},
      {"truncated UTF-8",
       "{\"t\xe2\x82\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}"},
      {"UTF-8 above U+10FFFF",
       "{\"t\xf4\x90\x80\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}"},
      {"invalid UTF-8 in the padding", "{" + ok_entry + "}  \xff"},
      {"deep nesting", std::string(10000, '[') + std::string(10000, ']')},
      {"deep nesting in a value", "{\"t\":" + std::string(10000, '{')},
      {"deep nesting in metadata", "{\"__metadata__\":{\"a\":" + std::string(5000, '[')},
  };
  for (const bad_case& c : cases) {
    INFO(c.what);
    std::string detail;
    CHECK(parse_code(file_of(c.header, {7}), &detail) == errc::corrupt_data);
    INFO(detail);
    CHECK(detail.rfind("header", 0) == 0);
    CHECK(detail.find('\n') == std::string::npos);
  }
  // The good entry itself parses (so each case above fails for its own reason).
  CHECK(parse_code(file_of("{" + ok_entry + "}", {7})) == errc::ok);
  // Escapes and surrogate pairs that are valid.
  safetensors_file f;
  REQUIRE(
      safetensors_file::parse(
          file_of(
              R"({"\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac\uD83D\uDE00\u0000":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
              {7}),
          f)
          .ok());
  CHECK(f.tensors()[0].name
        == std::string("\"\\/\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80")
               + std::string(1, '\0'));
  // 2^53 itself is accepted.
  CHECK(parse_code(
            file_of(R"({"t":{"dtype":"U8","shape":[9007199254740992,0],"data_offsets":[0,0]}})"))
        == errc::ok);
}

TEST_CASE("safetensors: dtypes of the spec this reader does not know are unsupported",
          "[io][safetensors][validation]") {
  for (const char* dt : {"F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"}) {
    std::string detail;
    CHECK(parse_code(file_of(std::string(R"({"t":{"dtype":")") + dt
                                 + R"(","shape":[1],"data_offsets":[0,1]}})",
                             {0}),
                     &detail)
          == errc::unsupported);
    CHECK(detail.find(dt) != std::string::npos);
  }
}

TEST_CASE("safetensors: rank and tensor count limits", "[io][safetensors][validation]") {
  std::string shape17 = "[1";
  for (int i = 1; i < 17; ++i)
    shape17 += ",1";
  shape17 += "]";
  const bytes_t b = file_of("{" + entry("t", "U8", shape17, 0, 1) + "}", {5});
  std::string detail;
  CHECK(parse_code(b, &detail) == errc::corrupt_data);
  CHECK(detail.find("rank") != std::string::npos);
  io::load_limits lim;
  lim.max_rank = 17;
  CHECK(parse_code(b, &detail, lim) == errc::ok);
  lim.max_rank = 0;
  CHECK(parse_code(file_of("{" + entry("s", "U8", "[]", 0, 1) + "}", {5}), &detail, lim)
        == errc::ok);
  CHECK(parse_code(file_of("{" + entry("s", "U8", "[1]", 0, 1) + "}", {5}), &detail, lim)
        == errc::corrupt_data);

  const bytes_t three =
      file_of("{" + entry("a", "U8", "[1]", 0, 1) + "," + entry("b", "U8", "[1]", 1, 2) + ","
                  + entry("c", "U8", "[1]", 2, 3) + "}",
              {1, 2, 3});
  lim = {};
  lim.max_tensors = 2;
  CHECK(parse_code(three, &detail, lim) == errc::corrupt_data);
  CHECK(detail.find("more than 2 tensors") != std::string::npos);
  lim.max_tensors = 3;
  CHECK(parse_code(three, &detail, lim) == errc::ok);
}

TEST_CASE("safetensors: per-tensor offsets, sizes and overflow", "[io][safetensors][validation]") {
  std::string detail;
  // end < begin
  CHECK(parse_code(file_of("{" + entry("t", "U8", "[0]", 4, 0) + "}", zeros(4)), &detail)
        == errc::corrupt_data);
  CHECK(detail.find("'t'") != std::string::npos);
  CHECK(detail.find("[4, 0]") != std::string::npos);
  // numel * size != end - begin
  CHECK(parse_code(file_of("{" + entry("t", "F32", "[2,2]", 0, 12) + "}", zeros(12)), &detail)
        == errc::corrupt_data);
  CHECK(detail.find("16") != std::string::npos);
  CHECK(detail.find("12") != std::string::npos);
  CHECK(parse_code(file_of("{" + entry("t", "F32", "[3]", 0, 16) + "}", zeros(16)))
        == errc::corrupt_data);
  // The element count overflows 64 bits (2^52 * 2^52), or only its byte size does: 2^61 * 8
  // wraps around to exactly 0, the offsets' difference.
  CHECK(
      parse_code(file_of("{" + entry("t", "U8", "[4503599627370496,4503599627370496]", 0, 0) + "}"),
                 &detail)
      == errc::corrupt_data);
  CHECK(detail.find("overflow") != std::string::npos);
  CHECK(parse_code(file_of("{" + entry("t", "F64", "[9007199254740992,256]", 0, 0) + "}"), &detail)
        == errc::corrupt_data);
  CHECK(detail.find("overflow") != std::string::npos);
}

TEST_CASE("safetensors: tensors must tile the data section exactly",
          "[io][safetensors][validation]") {
  std::string detail;
  const auto two = [](std::uint64_t b0, std::uint64_t e0, std::uint64_t b1, std::uint64_t e1) {
    return "{" + entry("a", "U8", "[" + std::to_string(e0 - b0) + "]", b0, e0) + ","
           + entry("b", "U8", "[" + std::to_string(e1 - b1) + "]", b1, e1) + "}";
  };
  CHECK(parse_code(file_of(two(0, 4, 4, 8), zeros(8))) == errc::ok);
  CHECK(parse_code(file_of(two(4, 8, 0, 4), zeros(8))) == errc::ok); // header order is free
  // Gap before the first tensor.
  CHECK(parse_code(file_of(two(2, 4, 4, 8), zeros(8)), &detail) == errc::corrupt_data);
  CHECK(detail.find("'a' begins at byte 2") != std::string::npos);
  // Gap between tensors.
  CHECK(parse_code(file_of(two(0, 4, 5, 8), zeros(8)), &detail) == errc::corrupt_data);
  CHECK(detail.find("gap") != std::string::npos);
  // Overlap.
  CHECK(parse_code(file_of(two(0, 4, 3, 8), zeros(8)), &detail) == errc::corrupt_data);
  CHECK(detail.find("overlap") != std::string::npos);
  // The same range twice.
  CHECK(parse_code(file_of(two(0, 4, 0, 4), zeros(4)), &detail) == errc::corrupt_data);
  // Trailing bytes after the last tensor.
  CHECK(parse_code(file_of(two(0, 4, 4, 8), zeros(9)), &detail) == errc::corrupt_data);
  CHECK(detail.find("trailing") != std::string::npos);
  // The last tensor runs past the end of the file.
  CHECK(parse_code(file_of(two(0, 4, 4, 8), zeros(7)), &detail) == errc::corrupt_data);
  CHECK(detail.find("truncated") != std::string::npos);
  // Offsets near 2^53.
  CHECK(parse_code(file_of(two(0, 4, 4, 9007199254740992), zeros(8))) == errc::corrupt_data);
  // No tensor but data.
  CHECK(parse_code(file_of(R"({"__metadata__":{"a":"b"}})", zeros(3)), &detail)
        == errc::corrupt_data);
}

// -------------------------------------------------------------------------------------------------
// Typed reads
// -------------------------------------------------------------------------------------------------

TEST_CASE("safetensors: typed reads convert, range-check and check shapes",
          "[io][safetensors][read]") {
  std::vector<std::uint8_t> d;
  std::string h = "{";
  std::uint64_t at = 0;
  const auto add = [&](const std::string& name,
                       const char* dt,
                       const std::string& shape,
                       const std::vector<std::uint8_t>& raw) {
    h += (at == 0 ? "" : ",") + entry(name, dt, shape, at, at + raw.size());
    d.insert(d.end(), raw.begin(), raw.end());
    at += raw.size();
  };
  std::vector<std::uint8_t> raw;
  const auto le = [&raw](auto v) { append_le(raw, v); };
  raw.clear();
  for (double v : {0.1, 1e300, -1e300, 0x1.ffffffp127, 0x1.fffffefffffffp127, -0.0})
    le(v);
  le(std::numeric_limits<double>::quiet_NaN());
  le(std::numeric_limits<double>::denorm_min());
  add("f64", "F64", "[8]", raw);
  raw.clear();
  le(std::uint16_t{0x3c00});
  le(std::uint16_t{0x0001});
  add("f16", "F16", "[2]", raw);
  raw.clear();
  le(std::uint16_t{0x3fc0});
  le(std::uint16_t{0xff80});
  add("bf16", "BF16", "[1,2]", raw);
  raw.clear();
  le(std::int64_t{-2147483648LL});
  le(std::int64_t{2147483647LL});
  add("i64_ok", "I64", "[2]", raw);
  raw.clear();
  le(std::int64_t{2147483648LL});
  add("i64_big", "I64", "[1]", raw);
  raw.clear();
  le(std::int64_t{-2147483649LL});
  add("i64_small", "I64", "[1]", raw);
  raw.clear();
  le(std::uint32_t{7});
  le(std::uint32_t{2147483647u});
  add("u32_ok", "U32", "[2]", raw);
  raw.clear();
  le(std::uint32_t{1});
  le(std::uint32_t{3000000000u});
  add("u32_big", "U32", "[2]", raw);
  add("u8", "U8", "[3]", {0, 128, 255});
  raw.clear();
  le(std::int32_t{-5});
  le(std::int32_t{6});
  add("i32", "I32", "[2]", raw);
  add("bool", "BOOL", "[3]", {0, 1, 1});
  add("bool_bad", "BOOL", "[2]", {1, 2});
  add("i8", "I8", "[1]", {0xff});
  add("i16", "I16", "[1]", {0, 0});
  add("u16", "U16", "[1]", {0, 0});
  add("u64", "U64", "[1]", zeros(8));
  raw.clear();
  le(1.25f);
  add("f32", "F32", "[1]", raw);
  h += "}";
  safetensors_file f;
  std::string detail;
  REQUIRE(safetensors_file::parse(file_of(h, d), f, &detail).ok());

  std::vector<float> fv;
  REQUIRE(f.read_f32("f64", {}, fv).ok());
  REQUIRE(fv.size() == 8);
  CHECK(fv[0] == 0.1f);
  CHECK(fv[1] == std::numeric_limits<float>::infinity());
  CHECK(fv[2] == -std::numeric_limits<float>::infinity());
  CHECK(fv[3] == std::numeric_limits<float>::infinity()); // FLT_MAX + half an ulp: a tie, to inf
  CHECK(fv[4] == std::numeric_limits<float>::max());      // just below it
  CHECK(std::signbit(fv[5]));
  CHECK(std::isnan(fv[6]));
  CHECK(fv[7] == 0.0f); // underflows
  REQUIRE(f.read_f32("f16", {}, fv).ok());
  CHECK(fv == std::vector<float>{1.0f, std::ldexp(1.0f, -24)});
  const std::int64_t s12[] = {1, 2};
  REQUIRE(f.read_f32("bf16", s12, fv).ok());
  CHECK(fv == std::vector<float>{1.5f, -std::numeric_limits<float>::infinity()});
  REQUIRE(f.read_f32("f32", {}, fv).ok());
  CHECK(fv == std::vector<float>{1.25f});

  std::vector<std::int32_t> iv{42};
  REQUIRE(f.read_i32("i64_ok", {}, iv).ok());
  CHECK(iv == std::vector<std::int32_t>{std::numeric_limits<std::int32_t>::min(), 2147483647});
  REQUIRE(f.read_i32("u32_ok", {}, iv).ok());
  CHECK(iv == std::vector<std::int32_t>{7, 2147483647});
  REQUIRE(f.read_i32("u8", {}, iv).ok());
  CHECK(iv == std::vector<std::int32_t>{0, 128, 255});
  REQUIRE(f.read_i32("i32", {}, iv).ok());
  CHECK(iv == std::vector<std::int32_t>{-5, 6});
  const std::vector<std::int32_t> before = iv;
  CHECK(f.read_i32("i64_big", {}, iv, &detail).code == errc::corrupt_data);
  CHECK(detail.find("2147483648") != std::string::npos);
  CHECK(iv == before); // unchanged on error
  CHECK(f.read_i32("i64_small", {}, iv, &detail).code == errc::corrupt_data);
  CHECK(f.read_i32("u32_big", {}, iv, &detail).code == errc::corrupt_data);
  CHECK(detail.find("element 1 = 3000000000") != std::string::npos);
  for (const char* n : {"i8", "i16", "u16", "u64", "f32", "bool"})
    CHECK(f.read_i32(n, {}, iv).code == errc::corrupt_data);

  std::vector<std::int64_t> lv;
  REQUIRE(f.read_i64("i32", {}, lv).ok());
  CHECK(lv == std::vector<std::int64_t>{-5, 6});
  REQUIRE(f.read_i64("i64_big", {}, lv).ok());
  CHECK(lv == std::vector<std::int64_t>{2147483648LL});
  for (const char* n : {"u8", "u32_ok", "u64", "f64", "bool"})
    CHECK(f.read_i64(n, {}, lv).code == errc::corrupt_data);

  std::vector<std::uint8_t> uv;
  REQUIRE(f.read_u8("bool", {}, uv).ok());
  CHECK(uv == std::vector<std::uint8_t>{0, 1, 1});
  REQUIRE(f.read_u8("u8", {}, uv).ok());
  CHECK(uv == std::vector<std::uint8_t>{0, 128, 255});
  CHECK(f.read_u8("bool_bad", {}, uv, &detail).code == errc::corrupt_data);
  CHECK(detail.find("element 1 = 2") != std::string::npos);
  CHECK(f.read_u8("i8", {}, uv).code == errc::corrupt_data);

  for (const char* n : {"i32", "u8", "bool", "i64_ok", "u16"})
    CHECK(f.read_f32(n, {}, fv, &detail).code == errc::corrupt_data);
  CHECK(detail.find("U16") != std::string::npos);

  // Shapes: empty accepts anything; otherwise exact.
  const std::int64_t s2[] = {2};
  const std::int64_t s21[] = {2, 1};
  const std::int64_t s3[] = {3};
  CHECK(f.read_f32("f16", s2, fv).ok());
  CHECK(f.read_f32("f16", s21, fv, &detail).code == errc::shape_mismatch);
  CHECK(detail == "tensor 'f16' has shape [2], expected [2, 1]");
  CHECK(f.read_i32("i32", s3, iv, &detail).code == errc::shape_mismatch);
  CHECK(f.read_i64("i32", s3, lv).code == errc::shape_mismatch);
  CHECK(f.read_u8("u8", s2, uv).code == errc::shape_mismatch);

  // Missing names.
  CHECK(f.read_f32("x", {}, fv, &detail).code == errc::corrupt_data);
  CHECK(detail == "no tensor 'x'");
  CHECK(f.read_i32("x", {}, iv).code == errc::corrupt_data);
  CHECK(f.read_i64("x", {}, lv).code == errc::corrupt_data);
  CHECK(f.read_u8("x", {}, uv).code == errc::corrupt_data);

  // bytes() of a tensor that is not this file's is empty.
  io::tensor_info foreign;
  foreign.begin = 0;
  foreign.end = 1u << 20;
  CHECK(f.bytes(foreign).empty());
  foreign.begin = 5;
  foreign.end = 4;
  CHECK(f.bytes(foreign).empty());
  CHECK(f.bytes(*f.find("u8")).size() == 3);

  // numel() of hand-made tensor_info values.
  io::tensor_info t;
  CHECK(t.numel() == 1);
  t.shape = {-1, 3};
  CHECK(t.numel() == -1);
  t.shape = {std::int64_t{1} << 40, std::int64_t{1} << 40};
  CHECK(t.numel() == -1);
  t.shape = {std::int64_t{1} << 40, std::int64_t{1} << 40, 0};
  CHECK(t.numel() == 0);
}
