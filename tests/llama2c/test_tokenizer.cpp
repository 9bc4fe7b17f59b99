// SPDX-License-Identifier: Apache-2.0
//
// The llama2.c tokenizer on tok512.bin: encode/decode round trips, BOS/EOS placement, byte
// fallback, the space after BOS, and bad files (missing, truncated, trailing bytes, bad lengths).
// Issue 12 (fuzzing): hostile sizes refused before anything is allocated for them, vocabularies
// without the byte tokens, and encode() against run.c's quadratic algorithm (kept below as the
// reference) with its work bounded on a 100 KB prompt.
#include <catch2/catch.hpp>

#include "llama2c/alloc_guard.hpp"
#include "llama2c/paths.hpp"
#include "llama2c/tokenizer.hpp"
#include "support/llama2c.hpp"
#include "support/sanitizer.hpp"
#include "support/scratch_dir.hpp"
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

using specdec::errc;
using specdec::token_id;
using specdec_test::file_bytes;
using specdec_test::shared_tokenizer;
using specdec_test::tokenizer_path;
using specdec_test::write_temp;

/// The test's scratch folders (tests/support/scratch_dir.hpp), named after this file.
struct scratch_dir : specdec_test::scratch_dir {
  scratch_dir()
      : specdec_test::scratch_dir("specdec_tok") {}
};

template <class T>
void put(std::vector<char>& b, T v) {
  const char* p = reinterpret_cast<const char*>(&v);
  b.insert(b.end(), p, p + sizeof v);
}

/// One token of a hand-made tokenizer file.
struct entry {
  std::string piece;
  float score;
};

/// A tokenizer file: max_token_length, then (score, length, bytes) per token.
std::vector<char> tokenizer_file(std::int32_t max_len, const std::vector<entry>& tokens) {
  std::vector<char> b;
  put(b, max_len);
  for (const entry& e : tokens) {
    put(b, e.score);
    put(b, static_cast<std::int32_t>(e.piece.size()));
    b.insert(b.end(), e.piece.begin(), e.piece.end());
  }
  return b;
}

/// <unk>, <s>, </s> and the 256 byte tokens, as llama2.c's tokenizers begin.
std::vector<entry> base_vocabulary() {
  std::vector<entry> v{{"<unk>", 0.0f}, {"\n<s>\n", 0.0f}, {"\n</s>\n", 0.0f}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    v.push_back({name, 0.0f});
  }
  return v;
}

/// The pieces and scores of a tokenizer file, parsed independently of llama2c::tokenizer.
struct reference_vocabulary {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::unordered_map<std::string, token_id> lookup; // the first token of each piece
  mutable std::vector<token_id> merged;             // [a][b] -> id of piece a + piece b, -1, -2

  reference_vocabulary(const std::vector<char>& file, std::size_t vocab) {
    std::size_t at = 4;
    for (std::size_t i = 0; i < vocab; ++i) {
      float score = 0.0f;
      std::int32_t len = 0;
      std::memcpy(&score, file.data() + at, 4);
      std::memcpy(&len, file.data() + at + 4, 4);
      at += 8;
      pieces.emplace_back(file.data() + at, static_cast<std::size_t>(len));
      scores.push_back(score);
      lookup.emplace(pieces.back(), static_cast<token_id>(i));
      at += static_cast<std::size_t>(len);
    }
    merged.assign(vocab * vocab, -2);
  }
  token_id find(const std::string& s) const {
    const auto it = lookup.find(s);
    return it == lookup.end() ? -1 : it->second;
  }
  /// find(piece a + piece b), memoised (only to keep the quadratic reference fast enough).
  token_id pair(token_id a, token_id b) const {
    token_id& m = merged[static_cast<std::size_t>(a) * pieces.size() + static_cast<std::size_t>(b)];
    if (m == -2)
      m = find(pieces[static_cast<std::size_t>(a)] + pieces[static_cast<std::size_t>(b)]);
    return m;
  }
};

/// run.c's encoding, as tokenizer::encode did it before issue 12: after every merge, rescan all
/// adjacent pairs for the best score (strictly greater than the best so far, from -1e10).
std::vector<token_id>
reference_encode(const reference_vocabulary& v, std::string_view text, bool bos, bool eos) {
  std::vector<token_id> out;
  if (bos)
    out.push_back(1);
  if (!text.empty()) {
    const token_id space = v.find(" ");
    if (space >= 0)
      out.push_back(space);
  }
  for (std::size_t i = 0; i < text.size();) {
    std::size_t len = 1;
    while (i + len < text.size() && len < 4
           && (static_cast<unsigned char>(text[i + len]) & 0xC0u) == 0x80u)
      ++len;
    const token_id id = v.find(std::string(text.substr(i, len)));
    if (id >= 0) {
      out.push_back(id);
    } else {
      for (std::size_t j = 0; j < len; ++j)
        out.push_back(static_cast<token_id>(static_cast<unsigned char>(text[i + j]) + 3));
    }
    i += len;
  }
  const std::size_t first = bos ? 1 : 0;
  for (;;) {
    float best = -1e10f;
    std::size_t best_at = 0;
    token_id best_id = -1;
    for (std::size_t i = first; i + 1 < out.size(); ++i) {
      const token_id id = v.pair(out[i], out[i + 1]);
      if (id >= 0 && v.scores[static_cast<std::size_t>(id)] > best) {
        best = v.scores[static_cast<std::size_t>(id)];
        best_at = i;
        best_id = id;
      }
    }
    if (best_id < 0)
      break;
    out[best_at] = best_id;
    out.erase(out.begin() + static_cast<std::ptrdiff_t>(best_at) + 1);
  }
  if (eos)
    out.push_back(2);
  return out;
}

/// Random words from a small English list, separated by spaces and punctuation.
std::string english(std::mt19937& rng, std::size_t bytes) {
  static const char* const words[] = {
      "Once", "upon",  "a",    "time", "there", "was",    "little", "girl",  "named",  "Lily",
      "she",  "liked", "to",   "play", "with",  "her",    "ball",   "in",    "the",    "park",
      "one",  "day",   "saw",  "big",  "dog",   "and",    "said",   "Hello", "happy",  "friends",
      "they", "ran",   "tree", "sun",  "mom",   "smiled", "Tom",    "cat",   "jumped", "sky"};
  std::uniform_int_distribution<std::size_t> pick(0, std::size(words) - 1);
  std::uniform_int_distribution<int> punct(0, 9);
  std::string s;
  while (s.size() < bytes) {
    s += words[pick(rng)];
    const int p = punct(rng);
    s += p == 0 ? ". " : p == 1 ? ", " : p == 2 ? "!\n" : " ";
  }
  s.resize(bytes);
  return s;
}

/// `n` bytes drawn uniformly from `alphabet`.
std::string from_alphabet(std::mt19937& rng, std::string_view alphabet, std::size_t n) {
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  std::string s;
  for (std::size_t i = 0; i < n; ++i)
    s += alphabet[pick(rng)];
  return s;
}

/// `n` valid UTF-8 code points of 1 to 4 bytes (some in tok512, most not).
std::string utf8(std::mt19937& rng, std::size_t n) {
  std::uniform_int_distribution<std::uint32_t> len(1, 4);
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t l = len(rng);
    const std::uint32_t lo = l == 1 ? 0x20 : l == 2 ? 0x80 : l == 3 ? 0x800 : 0x10000;
    const std::uint32_t hi = l == 1 ? 0x7E : l == 2 ? 0x7FF : l == 3 ? 0xD7FF : 0x10FFFF;
    const std::uint32_t c = std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
    if (l == 1) {
      s += static_cast<char>(c);
    } else if (l == 2) {
      s += static_cast<char>(0xC0 | (c >> 6));
      s += static_cast<char>(0x80 | (c & 0x3F));
    } else if (l == 3) {
      s += static_cast<char>(0xE0 | (c >> 12));
      s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (c >> 18));
      s += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return s;
}

/// Every BOS/EOS combination of `text` encodes as the reference does.
void check_same(const llama2c::tokenizer& t,
                const reference_vocabulary& ref,
                const std::string& text) {
  for (const bool bos : {false, true})
    for (const bool eos : {false, true}) {
      INFO("text of " << text.size() << " bytes, bos " << bos << ", eos " << eos);
      CHECK(t.encode(text, bos, eos) == reference_encode(ref, text, bos, eos));
    }
}

} // namespace

TEST_CASE("llama2c tokenizer: encode and decode") {
  const llama2c::tokenizer& t = shared_tokenizer();
  REQUIRE(t.vocab_size() == 512);
  const std::string text = "Once upon a time, there was a little girl named Lily.";
  const std::vector<token_id> ids = t.encode(text, true, true);
  REQUIRE(ids.size() > 3);
  CHECK(ids.front() == 1);
  CHECK(ids.back() == 2);
  // Greedy decoding of the model starts with these ids after BOS (the known llama2.c sample).
  const std::vector<token_id> story = t.encode("Once upon a time", true, false);
  CHECK(story == std::vector<token_id>{1, 403, 407, 261, 378});
  // Decoding drops the dummy-prefix space after BOS and gives the text back.
  const std::vector<token_id> body(ids.begin() + 1, ids.end() - 1);
  CHECK(t.decode(body, 1) == text);
  CHECK(t.encode("", true, false) == std::vector<token_id>{1});
  CHECK(t.encode("", false, false).empty());
  // A character outside the vocabulary falls back to its UTF-8 bytes (id = byte + 3).
  const std::vector<token_id> raw = t.encode("\xff", false, false);
  REQUIRE(!raw.empty());
  CHECK(raw.back() == 0xFF + 3);
  const std::vector<token_id> euro = t.encode("\xe2\x82\xac", false, false);
  CHECK(t.decode(euro, 0).find("\xe2\x82\xac") != std::string::npos);
  CHECK(t.piece(0, 0xE2 + 3) == std::string("\xe2"));
  CHECK(t.piece(0, -1).empty());
  CHECK(t.piece(0, 512).empty());
}

TEST_CASE("llama2c tokenizer: bad files give a status") {
  llama2c::tokenizer t;
  std::string detail;
  CHECK(llama2c::tokenizer::load("/nonexistent/tok.bin", 512, t, &detail).code == errc::io_error);
  const std::vector<char> good = file_bytes(tokenizer_path());
  REQUIRE(good.size() > 100);
  CHECK(llama2c::tokenizer::load(write_temp("specdec_tok_empty.bin", {}), 512, t).code
        == errc::corrupt_data);
  std::vector<char> cut(good.begin(), good.end() - 1);
  CHECK(llama2c::tokenizer::load(write_temp("specdec_tok_cut.bin", cut), 512, t, &detail).code
        == errc::corrupt_data);
  std::vector<char> extra = good;
  extra.push_back('x');
  CHECK(llama2c::tokenizer::load(write_temp("specdec_tok_extra.bin", extra), 512, t).code
        == errc::corrupt_data);
  CHECK(llama2c::tokenizer::load(tokenizer_path(), 511, t).code == errc::corrupt_data);
  std::vector<char> bad_len = good;
  const std::int32_t huge = 1 << 30; // the first token's length field, after the header and score
  std::memcpy(bad_len.data() + 8, &huge, 4);
  CHECK(llama2c::tokenizer::load(write_temp("specdec_tok_len.bin", bad_len), 512, t).code
        == errc::corrupt_data);
  CHECK(llama2c::tokenizer::load(tokenizer_path(), 0, t).code == errc::invalid_argument);
}

TEST_CASE("llama2c tokenizer: hostile sizes are refused before anything is allocated for them",
          "[llama2c][issue12]") {
  const scratch_dir dir;
  const std::vector<char> good = file_bytes(tokenizer_path());
  REQUIRE(good.size() == 6227);
  llama2c::tokenizer t;
  std::string detail;
  // Every load below fits easily in 1 MiB per allocation (tok512.bin is 6 KB); a larger request
  // means a size from the file was trusted, and is refused (std::bad_alloc) and recorded.
  auto load = [&](const std::string& path, specdec::index_t vocab) {
    const specdec_test::allocation_cap cap(1 << 20);
    detail.clear();
    const errc e = llama2c::tokenizer::load(path, vocab, t, &detail).code;
    CHECK(cap.largest_refused() == 0);
    CHECK(!detail.empty());
    return e;
  };
  // The fuzzer's 12-byte file: max_token_length and the first length both 2^31 - 1 (2 GiB).
  std::vector<char> bomb;
  put(bomb, std::numeric_limits<std::int32_t>::max());
  put(bomb, 0.0f);
  put(bomb, std::numeric_limits<std::int32_t>::max());
  REQUIRE(bomb.size() == 12);
  CHECK(load(dir.write("bomb.bin", bomb), 512) == errc::unsupported);
  CHECK(detail.find("max_token_length") != std::string::npos);
  // The same with a plausible header: the length is past the end of the file.
  std::memcpy(bomb.data(), &llama2c::tokenizer::max_piece_length, 4);
  CHECK(load(dir.write("bomb_len.bin", bomb), 512) == errc::corrupt_data);
  // A vocabulary the file cannot hold: 2^24 tokens need at least 128 MiB.
  CHECK(load(tokenizer_path(), llama2c::tokenizer::max_vocab_size) == errc::corrupt_data);
  CHECK(detail.find("6227") != std::string::npos); // the file's size is in the message
  CHECK(load(tokenizer_path(), llama2c::tokenizer::max_vocab_size + 1) == errc::unsupported);
  // A header promising 1 GiB pieces in an otherwise good file.
  std::vector<char> big_header = good;
  const std::int32_t gib = 1 << 30;
  std::memcpy(big_header.data(), &gib, 4);
  CHECK(load(dir.write("big_header.bin", big_header), 512) == errc::unsupported);
  // A length within max_token_length but past the end of the file.
  std::vector<char> long_piece = tokenizer_file(1024, {{"<unk>", 0.0f}});
  const std::int32_t past = 1000;
  std::memcpy(long_piece.data() + 8, &past, 4);
  long_piece.resize(long_piece.size() + 8 * 258 + 16, '\0');
  CHECK(load(dir.write("long_piece.bin", long_piece), 259) == errc::corrupt_data);
  // A file far longer than its vocabulary allows is not read at all.
  std::vector<char> huge = good;
  huge.resize(4 + 512 * (8 + 7) + 1, '\0');
  CHECK(load(dir.write("huge.bin", huge), 512) == errc::corrupt_data);
  // None of these touched the destination; tok512.bin itself still loads.
  CHECK(t.vocab_size() == 0);
  const specdec_test::allocation_cap cap(1 << 20);
  CHECK(llama2c::tokenizer::load(tokenizer_path(), 512, t).ok());
  CHECK(t.vocab_size() == 512);
}

TEST_CASE("llama2c tokenizer: byte, BOS and EOS ids always exist; out-of-range ids decode to "
          "nothing",
          "[llama2c][issue12]") {
  const scratch_dir dir;
  const std::vector<char> good = file_bytes(tokenizer_path());
  // The first 100 tokens of tok512.bin: no byte tokens from 0x61 on, so encode() would emit ids
  // up to 258 into a 100-token vocabulary.
  std::size_t at = 4;
  for (int i = 0; i < 100; ++i) {
    std::int32_t len = 0;
    std::memcpy(&len, good.data() + at + 4, 4);
    at += 8 + static_cast<std::size_t>(len);
  }
  const std::vector<char> small(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(at));
  llama2c::tokenizer t;
  std::string detail;
  CHECK(llama2c::tokenizer::load(dir.write("small.bin", small), 100, t, &detail).code
        == errc::unsupported);
  CHECK(detail.find("259") != std::string::npos);
  CHECK(llama2c::tokenizer::load(dir.write("small.bin", small), 3, t).code == errc::unsupported);
  // An unloaded tokenizer encodes to nothing (no BOS, EOS or byte ids it does not have).
  CHECK(t.vocab_size() == 0);
  CHECK(t.encode("hello \xff\xe2\x82\xac", true, true).empty());
  CHECK(t.decode(std::vector<token_id>{1, 2, 3, 300}).empty());
  // The smallest vocabulary accepted: every byte falls back to an id below 259.
  const std::vector<char> minimal = tokenizer_file(6, base_vocabulary());
  REQUIRE(llama2c::tokenizer::load(dir.write("minimal.bin", minimal), 259, t).ok());
  std::string all_bytes;
  for (int b = 1; b < 256; ++b)
    all_bytes += static_cast<char>(b);
  const std::vector<token_id> ids = t.encode(all_bytes, true, true);
  REQUIRE(ids.size() == 1 + 255 + 1); // no " " piece: no dummy prefix, and nothing merges
  for (std::size_t i = 1; i + 1 < ids.size(); ++i)
    CHECK(ids[i] == static_cast<token_id>(i) + 3);
  CHECK(t.decode(ids, 0) == "\n<s>\n" + all_bytes + "\n</s>\n");
  // Out-of-range ids decode to nothing, whatever precedes them.
  const llama2c::tokenizer& tok = shared_tokenizer();
  const std::vector<token_id> odd{-7, 512, std::numeric_limits<token_id>::max(), 70, -1};
  CHECK(tok.decode(odd, 1) == std::string(tok.piece(512, 70)));
  CHECK(tok.piece(1, std::numeric_limits<token_id>::min()).empty());
}

TEST_CASE("llama2c tokenizer: encode gives exactly run.c's tokens on tok512.bin",
          "[llama2c][issue12]") {
  const llama2c::tokenizer& t = shared_tokenizer();
  const reference_vocabulary ref(file_bytes(tokenizer_path()), 512);
  std::mt19937 rng(12);
  for (const char* s : {"",
                        " ",
                        "a",
                        "Once upon a time",
                        "  two  spaces  ",
                        "\xff",
                        "\xe2\x82\xac",
                        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                        "abababababababab",
                        "the the the the the the",
                        "\xc3",
                        "\x80\x80\x80\x80\x80"})
    check_same(t, ref, s);
  for (int i = 0; i < 40; ++i) {
    const std::size_t n = std::uniform_int_distribution<std::size_t>(0, 300)(rng);
    check_same(t, ref, english(rng, n));
    check_same(t, ref, from_alphabet(rng, "ab ", n));
    check_same(t, ref, from_alphabet(rng, "etaoin shrdlu.\n", n));
    std::string bytes;
    for (std::size_t j = 0; j < n; ++j)
      bytes += static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
    check_same(t, ref, bytes);
    check_same(t, ref, utf8(rng, n / 3));
  }
  // Long inputs (the reference is quadratic: shorter under AddressSanitizer).
  const std::size_t n = specdec_test::by_build<std::size_t>(6000, 1500);
  check_same(t, ref, english(rng, n));
  check_same(t, ref, std::string(n, 'a'));
  check_same(t, ref, from_alphabet(rng, "Lily  ", n));
  check_same(t, ref, utf8(rng, n / 2));
}

TEST_CASE("llama2c tokenizer: encode breaks score ties leftmost and never merges below the floor",
          "[llama2c][issue12]") {
  // Hand-made scores: equal scores for different pairs, -0 against +0, a duplicate piece (the
  // first one counts), an empty byte piece, a piece made of two byte pieces, and merges scoring at
  // or below merge_floor (never taken).
  std::vector<entry> v = base_vocabulary();
  v[3 + '~'].piece = "";
  for (const entry& e : std::vector<entry>{{" ", -1.0f},
                                           {"a", -1.0f},
                                           {"b", -1.0f},
                                           {"c", -1.0f},
                                           {"ab", 1.0f},
                                           {"bc", 1.0f},
                                           {"ca", 1.0f},
                                           {"abc", 1.0f},
                                           {"aa", 0.0f},
                                           {"bb", -0.0f},
                                           {"aaa", 2.0f},
                                           {"ab", 7.0f},
                                           {" a", 0.5f},
                                           {"ba", -1e10f},
                                           {"cc", -3e10f},
                                           {"cb", -9.99e9f},
                                           {"<0xFF><0xFE>", 3.0f},
                                           {"bca", 1.0f}})
    v.push_back(e);
  const scratch_dir dir;
  const std::vector<char> file = tokenizer_file(16, v);
  llama2c::tokenizer t;
  REQUIRE(llama2c::tokenizer::load(
              dir.write("ties.bin", file), static_cast<specdec::index_t>(v.size()), t)
              .ok());
  const reference_vocabulary ref(file, v.size());
  CHECK(t.encode("ba", false, false)
        == std::vector<token_id>{t.find(" "), t.find("b"), t.find("a")});
  CHECK(t.encode("cb", false, false).size() == 2); // " " + "cb": -9.99e9 is above the floor
  std::mt19937 rng(1201);
  for (const char* s : {"abcabc",
                        "bcab",
                        "aaaa",
                        "aaaaa",
                        "bbbb",
                        "abab",
                        "cabcab",
                        "\xff\xfe",
                        "~a~b~",
                        "cccc",
                        "caab"})
    check_same(t, ref, s);
  for (int i = 0; i < 300; ++i)
    check_same(t,
               ref,
               from_alphabet(rng,
                             "abc ~\xff\xfe"
                             "A",
                             std::uniform_int_distribution<std::size_t>(0, 60)(rng)));
  check_same(
      t, ref, from_alphabet(rng, "abc ~\xff\xfe", specdec_test::by_build<std::size_t>(4000, 1000)));
}

TEST_CASE("llama2c tokenizer: a 100 KB prompt encodes with O(n) pair look-ups",
          "[llama2c][issue12]") {
  // run.c's algorithm rescans every pair after every merge: about n^2 / 2 look-ups, minutes for
  // this prompt. The heap needs one look-up per initial pair and two per merge.
  const llama2c::tokenizer& t = shared_tokenizer();
  std::mt19937 rng(100);
  for (const std::string& text :
       {english(rng, 100000), std::string(100000, 'a'), from_alphabet(rng, "ab ", 100000)}) {
    llama2c::encode_stats st;
    const std::vector<token_id> ids = t.encode(text, true, false, &st);
    CHECK(st.symbols == text.size() + 1); // ASCII: one per byte, plus the dummy prefix
    CHECK(st.merges == st.symbols - (ids.size() - 1));
    CHECK(st.pair_lookups <= (st.symbols - 1) + 2 * st.merges);
    CHECK(st.merges > 0);
    CHECK(t.decode(std::span<const token_id>(ids).subspan(1), 1) == text);
  }
  // Random bytes: mostly byte tokens, still one pass.
  std::string bytes;
  for (int j = 0; j < 100000; ++j)
    bytes += static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
  llama2c::encode_stats st;
  const std::vector<token_id> ids = t.encode(bytes, false, false, &st);
  CHECK(st.pair_lookups <= 3 * st.symbols);
  CHECK(ids.size() == st.symbols - st.merges);
}
