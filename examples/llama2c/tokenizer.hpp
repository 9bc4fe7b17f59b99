// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief The llama2.c tokenizer (tok512.bin and friends): greedy merge-by-score encoding and
///        byte-aware decoding, as llama2.c's run.c does it.
///
/// File format: int32 max_token_length, then for each of the vocab_size tokens: float score,
/// int32 length, `length` bytes. Token 0 is <unk>, 1 is BOS, 2 is EOS; tokens 3..258 are the raw
/// bytes 0x00..0xFF written as "<0xXX>".

#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llama2c {

/// @brief A loaded llama2.c tokenizer.
class tokenizer {
public:
  /// @brief Loads `path` for a model of `vocab_size` tokens into `out` (unchanged on error).
  /// @param detail when not null, receives a readable explanation of a failure
  /// @return errc::io_error when the file cannot be opened; errc::corrupt_data when it is shorter
  ///         than promised, a length is negative or above max_token_length, a score is not finite,
  ///         or bytes remain after the last token; errc::invalid_argument for vocab_size <= 0
  /// @par Complexity
  /// O(file size).
  static specdec::status load(const std::string& path,
                              specdec::index_t vocab_size,
                              tokenizer& out,
                              std::string* detail = nullptr) {
    using specdec::errc;
    auto fail = [detail](errc e, const std::string& why) {
      if (detail != nullptr)
        *detail = why;
      return specdec::status{e};
    };
    if (vocab_size <= 0)
      return fail(errc::invalid_argument, "vocabulary size must be positive");
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr)
      return fail(errc::io_error, "cannot open " + path);
    std::vector<char> bytes;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;)
      bytes.insert(bytes.end(), buf, buf + n);
    std::fclose(f);
    std::size_t at = 0;
    auto read = [&](void* dst, std::size_t n) {
      if (bytes.size() - at < n)
        return false;
      std::memcpy(dst, bytes.data() + at, n);
      at += n;
      return true;
    };
    tokenizer t;
    std::int32_t max_len = 0;
    if (!read(&max_len, 4) || max_len <= 0)
      return fail(errc::corrupt_data, "missing or invalid max_token_length header");
    t.pieces_.resize(static_cast<std::size_t>(vocab_size));
    t.scores_.resize(static_cast<std::size_t>(vocab_size));
    for (specdec::index_t i = 0; i < vocab_size; ++i) {
      float score = 0.0f;
      std::int32_t len = 0;
      if (!read(&score, 4) || !read(&len, 4))
        return fail(errc::corrupt_data,
                    "truncated at token " + std::to_string(i) + " of "
                        + std::to_string(vocab_size));
      if (!std::isfinite(score) || len < 0 || len > max_len)
        return fail(errc::corrupt_data,
                    "token " + std::to_string(i) + " has an invalid score or length");
      std::string piece(static_cast<std::size_t>(len), '\0');
      if (!read(piece.data(), piece.size()))
        return fail(errc::corrupt_data, "truncated inside token " + std::to_string(i));
      t.scores_[static_cast<std::size_t>(i)] = score;
      t.pieces_[static_cast<std::size_t>(i)] = std::move(piece);
    }
    if (at != bytes.size())
      return fail(errc::corrupt_data,
                  std::to_string(bytes.size() - at)
                      + " bytes after the last token (wrong vocabulary size?)");
    for (specdec::index_t i = 0; i < vocab_size; ++i)
      t.lookup_.emplace(t.pieces_[static_cast<std::size_t>(i)], static_cast<specdec::token_id>(i));
    for (int b = 0; b < 256; ++b)
      t.bytes_[static_cast<std::size_t>(b)] = std::string(1, static_cast<char>(b));
    out = std::move(t);
    return specdec::status{};
  }

  /// @brief Number of tokens. O(1).
  [[nodiscard]] specdec::index_t vocab_size() const noexcept {
    return static_cast<specdec::index_t>(pieces_.size());
  }

  /// @brief Id of an exact piece, or -1. O(|piece|) expected.
  [[nodiscard]] specdec::token_id find(std::string_view piece) const {
    const auto it = lookup_.find(std::string(piece));
    return it == lookup_.end() ? -1 : it->second;
  }

  /// @brief Encodes text as llama2.c does: optional BOS (1); a dummy-prefix " " token when the text
  ///        is non-empty; one token per UTF-8 code point (its byte tokens, id byte + 3, when the
  ///        code point is not in the vocabulary); then repeated merging of the adjacent pair whose
  ///        concatenation is a token with the highest score (leftmost on ties); optional EOS (2).
  /// @par Complexity
  /// O(n^2) in the number of code points (n merges, each a scan), as in run.c.
  [[nodiscard]] std::vector<specdec::token_id>
  encode(std::string_view text, bool bos, bool eos) const {
    std::vector<specdec::token_id> out;
    if (bos)
      out.push_back(1);
    if (!text.empty()) {
      const specdec::token_id space = find(" ");
      if (space >= 0)
        out.push_back(space);
    }
    for (std::size_t i = 0; i < text.size();) {
      std::size_t len = 1; // one UTF-8 code point: a lead byte and its continuation bytes (<= 4)
      while (i + len < text.size() && len < 4
             && (static_cast<unsigned char>(text[i + len]) & 0xC0u) == 0x80u)
        ++len;
      const specdec::token_id id = find(text.substr(i, len));
      if (id >= 0) {
        out.push_back(id);
      } else {
        for (std::size_t j = 0; j < len; ++j)
          out.push_back(
              static_cast<specdec::token_id>(static_cast<unsigned char>(text[i + j]) + 3));
      }
      i += len;
    }
    const std::size_t first = bos ? 1 : 0; // never merge BOS with the text
    std::string pair;
    for (;;) {
      float best = -1e10f;
      std::size_t best_at = 0;
      specdec::token_id best_id = -1;
      for (std::size_t i = first; i + 1 < out.size(); ++i) {
        pair = piece_raw(out[i]);
        pair += piece_raw(out[i + 1]);
        const specdec::token_id id = find(pair);
        if (id >= 0 && scores_[static_cast<std::size_t>(id)] > best) {
          best = scores_[static_cast<std::size_t>(id)];
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

  /// @brief Text of `tok` following `prev`, as run.c prints it: after BOS one leading space is
  ///        dropped; "<0xXX>" pieces are the raw byte. Empty for an id out of range.
  /// @par Complexity
  /// O(1).
  [[nodiscard]] std::string_view piece(specdec::token_id prev, specdec::token_id tok) const {
    if (tok < 0 || tok >= vocab_size())
      return {};
    std::string_view p = pieces_[static_cast<std::size_t>(tok)];
    if (prev == 1 && !p.empty() && p.front() == ' ')
      p.remove_prefix(1);
    unsigned byte = 0;
    if (p.size() == 6 && p.substr(0, 3) == "<0x" && p[5] == '>'
        && std::sscanf(std::string(p).c_str(), "<0x%02X>", &byte) == 1)
      return bytes_[byte & 0xFFu];
    return p;
  }

  /// @brief Concatenated text of `tokens`, the first following `prev`. O(total length).
  [[nodiscard]] std::string decode(std::span<const specdec::token_id> tokens,
                                   specdec::token_id prev = 1) const {
    std::string s;
    for (const specdec::token_id t : tokens) {
      s += piece(prev, t);
      prev = t;
    }
    return s;
  }

private:
  [[nodiscard]] const std::string& piece_raw(specdec::token_id t) const {
    return pieces_[static_cast<std::size_t>(t)];
  }

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, specdec::token_id> lookup_;
  std::string bytes_[256];
};

} // namespace llama2c
