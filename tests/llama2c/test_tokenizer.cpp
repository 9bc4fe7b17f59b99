// SPDX-License-Identifier: Apache-2.0
//
// The llama2.c tokenizer on tok512.bin: encode/decode round trips, BOS/EOS placement, byte
// fallback, the space after BOS, and bad files (missing, truncated, trailing bytes, bad lengths).
#include <catch2/catch.hpp>

#include "llama2c/paths.hpp"
#include "llama2c/tokenizer.hpp"
#include "support/llama2c.hpp"
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using specdec::errc;
using specdec::token_id;
using specdec_test::file_bytes;
using specdec_test::shared_tokenizer;
using specdec_test::tokenizer_path;
using specdec_test::write_temp;

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
