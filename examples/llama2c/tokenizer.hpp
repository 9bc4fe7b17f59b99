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

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llama2c {

/// @brief Work done by one tokenizer::encode() call, for tests and profiling.
struct encode_stats {
  std::size_t symbols = 0;      ///< tokens before merging (code points and byte fallbacks)
  std::size_t pair_lookups = 0; ///< vocabulary look-ups of two adjacent pieces' concatenation
  std::size_t merges = 0;       ///< adjacent pairs merged into one token
};

/// @brief A loaded llama2.c tokenizer.
class tokenizer {
public:
  /// @brief Largest vocabulary load() accepts: 2^24 tokens, the model loader's limit on
  ///        vocab_size too (real vocabularies have at most a few hundred thousand tokens).
  static constexpr specdec::index_t max_vocab_size = specdec::index_t{1} << 24;
  /// @brief Smallest vocabulary load() accepts: <unk> (0), BOS (1), EOS (2) and the 256 byte
  ///        tokens (ids 3 .. 258) that encode() falls back on.
  static constexpr specdec::index_t min_vocab_size = 259;
  /// @brief Longest piece, in bytes, that load() accepts, and the largest max_token_length
  ///        header. tok512.bin's longest piece has 7 bytes, Llama 2's a few dozen; 1024 leaves
  ///        room and keeps a lying length field harmless.
  static constexpr std::int32_t max_piece_length = 1024;
  /// @brief encode() never merges a pair whose merged token scores at or below this (run.c's
  ///        initial best score).
  static constexpr float merge_floor = -1e10f;

  /// @brief Loads `path` for a model of `vocab_size` tokens into `out` (unchanged on error).
  ///
  /// Every size is checked before anything is allocated for it: the file's size must lie between
  /// the least (`4 + 8 * vocab_size`) and the most (`4 + vocab_size * (8 + max_token_length)`) that
  /// the header and vocab_size allow, and each piece's length must fit max_token_length,
  /// max_piece_length and the bytes left in the file.
  /// @param detail when not null, receives a readable explanation of a failure
  /// @return errc::io_error when the file cannot be opened or read; errc::corrupt_data when it is
  ///         shorter or longer than promised, max_token_length is not positive, a length is
  ///         negative, above max_token_length or past the end of the file, or a score is not
  ///         finite; errc::unsupported for vocab_size outside [min_vocab_size, max_vocab_size]
  ///         or max_token_length above max_piece_length; errc::invalid_argument for
  ///         vocab_size <= 0
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
    if (vocab_size < min_vocab_size || vocab_size > max_vocab_size)
      return fail(errc::unsupported,
                  "a vocabulary of " + std::to_string(vocab_size) + " tokens is outside "
                      + std::to_string(min_vocab_size) + " .. " + std::to_string(max_vocab_size)
                      + " (<unk>, BOS, EOS and the 256 byte tokens are required)");
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr)
      return fail(errc::io_error, "cannot open " + path);
    long end = -1;
    if (std::fseek(f, 0, SEEK_END) == 0)
      end = std::ftell(f);
    if (end < 0 || std::fseek(f, 0, SEEK_SET) != 0) {
      std::fclose(f);
      return fail(errc::io_error, "cannot determine the size of " + path);
    }
    const auto file_size = static_cast<std::uint64_t>(end);
    std::int32_t max_len = 0;
    const bool got_header = std::fread(&max_len, 4, 1, f) == 1;
    if (!got_header || max_len <= 0) {
      std::fclose(f);
      return fail(errc::corrupt_data, "missing or invalid max_token_length header");
    }
    if (max_len > max_piece_length) {
      std::fclose(f);
      return fail(errc::unsupported,
                  "max_token_length " + std::to_string(max_len) + " is above the limit of "
                      + std::to_string(max_piece_length) + " bytes");
    }
    // Both bounds fit 64 bits: vocab_size <= 2^24 and max_len <= 2^10.
    const auto voc = static_cast<std::uint64_t>(vocab_size);
    const std::uint64_t least = 4 + 8 * voc;
    const std::uint64_t most = 4 + voc * (8 + static_cast<std::uint64_t>(max_len));
    if (file_size < least || file_size > most) {
      std::fclose(f);
      return fail(errc::corrupt_data,
                  "the file holds " + std::to_string(file_size) + " bytes; "
                      + std::to_string(vocab_size) + " tokens of at most " + std::to_string(max_len)
                      + " bytes take " + std::to_string(least) + " .. " + std::to_string(most)
                      + (file_size < least ? " (truncated?)" : " (wrong vocabulary size?)"));
    }
    std::vector<char> bytes(static_cast<std::size_t>(file_size - 4));
    const bool got_body = std::fread(bytes.data(), 1, bytes.size(), f) == bytes.size();
    std::fclose(f);
    if (!got_body)
      return fail(errc::io_error, "cannot read " + path);
    std::size_t at = 0;
    auto read = [&](void* dst, std::size_t n) {
      if (bytes.size() - at < n)
        return false;
      std::memcpy(dst, bytes.data() + at, n);
      at += n;
      return true;
    };
    tokenizer t;
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
      if (static_cast<std::size_t>(len) > bytes.size() - at)
        return fail(errc::corrupt_data,
                    "token " + std::to_string(i) + " is " + std::to_string(len)
                        + " bytes long, past the end of the file");
      t.scores_[static_cast<std::size_t>(i)] = score;
      t.pieces_[static_cast<std::size_t>(i)].assign(bytes.data() + at,
                                                    static_cast<std::size_t>(len));
      at += static_cast<std::size_t>(len);
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

  /// @brief Number of tokens (0 before load()). O(1).
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
  ///        concatenation is a token with the highest score (leftmost on ties; pairs scoring at
  ///        or below merge_floor are never merged); optional EOS (2).
  ///
  /// The result is exactly run.c's, which rescans every pair after each merge (O(n^2)). Here the
  /// candidate pairs wait in a heap ordered by (score, position), the symbols form a linked list,
  /// and a merge looks up only the two pairs it creates. An unloaded tokenizer encodes every text
  /// to an empty vector.
  /// @param[out] stats when not null, receives the work done (symbols, look-ups, merges)
  /// @par Complexity
  /// O(n log n) for n code points: at most 3n pair look-ups and 3n heap operations.
  [[nodiscard]] std::vector<specdec::token_id>
  encode(std::string_view text, bool bos, bool eos, encode_stats* stats = nullptr) const {
    encode_stats work;
    std::vector<specdec::token_id> out;
    if (vocab_size() >= min_vocab_size) {
      if (bos)
        out.push_back(1);
      std::vector<specdec::token_id> sym = symbols(text);
      work.symbols = sym.size();
      merge(sym, work);
      out.insert(out.end(), sym.begin(), sym.end());
      if (eos)
        out.push_back(2);
    }
    if (stats != nullptr)
      *stats = work;
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

  /// @brief Concatenated text of `tokens`, the first following `prev`; ids out of range add
  ///        nothing. O(total length).
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

  /// The text before merging: the dummy prefix, then one token per code point (or its bytes).
  [[nodiscard]] std::vector<specdec::token_id> symbols(std::string_view text) const {
    std::vector<specdec::token_id> sym;
    if (!text.empty()) {
      const specdec::token_id space = find(" ");
      if (space >= 0)
        sym.push_back(space);
    }
    for (std::size_t i = 0; i < text.size();) {
      std::size_t len = 1; // one UTF-8 code point: a lead byte and its continuation bytes (<= 4)
      while (i + len < text.size() && len < 4
             && (static_cast<unsigned char>(text[i + len]) & 0xC0u) == 0x80u)
        ++len;
      const specdec::token_id id = find(text.substr(i, len));
      if (id >= 0) {
        sym.push_back(id);
      } else {
        for (std::size_t j = 0; j < len; ++j) // ids 3 .. 258: the vocabulary has at least 259
          sym.push_back(
              static_cast<specdec::token_id>(static_cast<unsigned char>(text[i + j]) + 3));
      }
      i += len;
    }
    return sym;
  }

  /// Merges `sym` in place: always the best-scoring adjacent pair, the leftmost of equals.
  void merge(std::vector<specdec::token_id>& sym, encode_stats& work) const {
    const std::size_t n = sym.size();
    if (n < 2)
      return;
    constexpr std::size_t none = static_cast<std::size_t>(-1);
    // Symbol i is node i of a doubly linked list; a merge keeps the left node (so list order is
    // index order) and removes the right one. A node's version changes whenever its token does
    // or it is removed, which makes every heap entry that names it stale.
    std::vector<std::size_t> prev(n), next(n);
    std::vector<std::uint32_t> version(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
      prev[i] = i == 0 ? none : i - 1;
      next[i] = i + 1 == n ? none : i + 1;
    }
    struct candidate {
      float score;
      std::size_t left, right;
      std::uint32_t left_version, right_version;
      specdec::token_id id;
    };
    // Lower priority: a smaller score, or the same score further right (run.c scans left to
    // right and keeps the first strict maximum).
    const auto lower = [](const candidate& a, const candidate& b) {
      return a.score != b.score ? a.score < b.score : a.left > b.left;
    };
    std::vector<candidate> heap;
    heap.reserve(n);
    std::string pair;
    const auto consider = [&](std::size_t left) {
      const std::size_t right = next[left];
      if (right == none)
        return;
      pair = piece_raw(sym[left]);
      pair += piece_raw(sym[right]);
      ++work.pair_lookups;
      const auto it = lookup_.find(pair);
      if (it == lookup_.end())
        return;
      const float score = scores_[static_cast<std::size_t>(it->second)];
      if (!(score > merge_floor))
        return;
      heap.push_back({score, left, right, version[left], version[right], it->second});
      std::push_heap(heap.begin(), heap.end(), lower);
    };
    for (std::size_t i = 0; i + 1 < n; ++i)
      consider(i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), lower);
      const candidate c = heap.back();
      heap.pop_back();
      if (version[c.left] != c.left_version || version[c.right] != c.right_version
          || next[c.left] != c.right)
        continue; // stale: one of its symbols has changed since
      sym[c.left] = c.id;
      ++version[c.left];
      ++version[c.right];
      next[c.left] = next[c.right];
      if (next[c.right] != none)
        prev[next[c.right]] = c.left;
      ++work.merges;
      if (prev[c.left] != none)
        consider(prev[c.left]);
      consider(c.left);
    }
    std::size_t kept = 0;
    for (std::size_t i = 0; i != none; i = next[i])
      sym[kept++] = sym[i];
    sym.resize(kept);
  }

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, specdec::token_id> lookup_;
  std::string bytes_[256];
};

} // namespace llama2c
