// SPDX-License-Identifier: Apache-2.0
//
// Fuzz target: the llama2.c example backend's loaders and tokenizer (examples/llama2c/model.hpp,
// tokenizer.hpp; header-only example code). Four modes, picked by the first byte:
//  0. tokenizer file: the rest of the input is a tokenizer file (after a vocabulary size and a
//     text), loaded with tokenizer::load;
//  1. model file: the rest of the input is a checkpoint, loaded with model::load;
//  2. model header: a fuzzed 28-byte header, the file extended with zero weights (a sparse file)
//     to the size the header implies when that is at most 40 MB, else left short;
//  3. text for the real tokenizer, tok512.bin from $SPECDEC_MODEL_DIR (else the build's
//     SPECDEC_DEFAULT_MODEL_DIR; the mode does nothing, with a note, when the file is missing).
//
// Properties checked:
//  - tokenizer::load returns exactly the status a brute-force reading of the file format and of
//    its documented limits gives (invalid_argument, unsupported, corrupt_data, ok), with a
//    non-empty explanation on failure and the output unchanged; a loaded tokenizer has the size
//    asked for and the file's pieces;
//  - model::load returns corrupt_data exactly when the documented header rules, the implied file
//    size or the weights' finiteness say so, unsupported only for a context state over its
//    limits, ok otherwise (an explanation on failure; the header's sizes on success); a loaded
//    model scores a chain (ok), score_tree on the same chain and score_layers with every layer
//    give bitwise the same logits;
//  - no huge allocation: the CTest run uses -malloc_limit_mb=1024 and -rss_limit_mb=2048 (the
//    replay driver aborts above 1 GiB), so a loader that allocates from a header before checking
//    it fails;
//  - encode: ids in [0, V), BOS / EOS where asked, the work bounded as documented (symbols <=
//    code points + 1, merges = symbols - tokens, pair look-ups <= 3 x symbols); decode and piece
//    accept any id; with tok512, decode(encode(text)) == text (texts without "<0x").

#include <specdec/specdec.hpp>

#include "llama2c/model.hpp"
#include "llama2c/paths.hpp"
#include "llama2c/tokenizer.hpp"
#include "support/fuzz_input.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using specdec::errc;
using specdec::index_t;
using specdec::token_id;
using specdec_fuzz::reader;

namespace {

__extension__ using u128 = unsigned __int128; // exact size arithmetic (no -Wpedantic warning)

specdec_fuzz::memory_file& scratch() {
  static specdec_fuzz::memory_file f;
  return f;
}

std::int32_t get_i32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = (v << 8) | p[i];
  return static_cast<std::int32_t>(v);
}
float get_f32(const std::uint8_t* p) {
  const std::uint32_t v = static_cast<std::uint32_t>(get_i32(p));
  float f = 0.0f;
  std::memcpy(&f, &v, sizeof(f));
  return f;
}

// --- encode / decode ---------------------------------------------------------------------------

void check_encode(const llama2c::tokenizer& t,
                  std::string_view text,
                  bool bos,
                  bool eos,
                  const std::string& what) {
  llama2c::encode_stats st;
  const std::vector<token_id> ids = t.encode(text, bos, eos, &st);
  const index_t v = t.vocab_size();
  for (token_id id : ids)
    FUZZ_CHECK(id >= 0 && id < v,
               what + ": encode gave id " + std::to_string(id) + " of a vocabulary of "
                   + std::to_string(v));
  std::size_t code_points = 0;
  for (unsigned char c : text)
    code_points += (c & 0xC0u) != 0x80u ? 1u : 0u;
  const std::size_t extra = (bos ? 1u : 0u) + (eos ? 1u : 0u);
  FUZZ_CHECK(ids.size() >= extra && ids.size() - extra == st.symbols - st.merges,
             what + ": " + std::to_string(ids.size()) + " ids from " + std::to_string(st.symbols)
                 + " symbols and " + std::to_string(st.merges) + " merges");
  FUZZ_CHECK(st.symbols <= text.size() + 1 && st.pair_lookups <= 3 * st.symbols,
             what + ": " + std::to_string(st.symbols) + " symbols, "
                 + std::to_string(st.pair_lookups) + " pair look-ups for "
                 + std::to_string(text.size()) + " bytes (" + std::to_string(code_points)
                 + " code points)");
  if (bos)
    FUZZ_CHECK(ids.front() == 1, what + ": no BOS");
  if (eos)
    FUZZ_CHECK(ids.back() == 2, what + ": no EOS");
  (void)t.decode(ids);
  const std::vector<token_id> odd = {
      -1, static_cast<token_id>(v), std::numeric_limits<token_id>::max(), 0, 1, 2};
  (void)t.decode(odd, 1);
  for (token_id id : odd)
    FUZZ_CHECK(id >= 0 && id < v ? true : t.piece(1, id).empty(),
               what + ": piece of an id out of range");
}

// --- tokenizer files ---------------------------------------------------------------------------

/// tokenizer::load's result for `file` and `vocab`, from its documentation.
errc expected_tokenizer_status(const std::vector<std::uint8_t>& file, index_t vocab) {
  if (vocab <= 0)
    return errc::invalid_argument;
  if (vocab < llama2c::tokenizer::min_vocab_size || vocab > llama2c::tokenizer::max_vocab_size)
    return errc::unsupported;
  if (file.size() < 4)
    return errc::corrupt_data;
  const std::int32_t max_len = get_i32(file.data());
  if (max_len <= 0)
    return errc::corrupt_data;
  if (max_len > llama2c::tokenizer::max_piece_length)
    return errc::unsupported;
  const auto size = static_cast<std::uint64_t>(file.size());
  const auto voc = static_cast<std::uint64_t>(vocab);
  if (size < 4 + 8 * voc || size > 4 + voc * (8 + static_cast<std::uint64_t>(max_len)))
    return errc::corrupt_data;
  std::size_t at = 4;
  for (index_t i = 0; i < vocab; ++i) {
    if (file.size() - at < 8)
      return errc::corrupt_data;
    const float score = get_f32(file.data() + at);
    const std::int32_t len = get_i32(file.data() + at + 4);
    at += 8;
    if (!std::isfinite(score) || len < 0 || len > max_len
        || static_cast<std::size_t>(len) > file.size() - at)
      return errc::corrupt_data;
    at += static_cast<std::size_t>(len);
  }
  return at == file.size() ? errc::ok : errc::corrupt_data;
}

/// A tokenizer file: <unk>, <s>, </s>, the 256 byte pieces, then `extra` pieces.
std::vector<std::uint8_t> tokenizer_file(const std::vector<std::pair<std::string, float>>& extra) {
  std::vector<std::pair<std::string, float>> pieces = {
      {"<unk>", 0.0f}, {"<s>", 0.0f}, {"</s>", 0.0f}};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    pieces.emplace_back(buf, 0.0f);
  }
  pieces.insert(pieces.end(), extra.begin(), extra.end());
  std::int32_t max_len = 6;
  for (const auto& p : pieces)
    max_len = std::max<std::int32_t>(max_len, static_cast<std::int32_t>(p.first.size()));
  std::vector<std::uint8_t> out(4);
  std::memcpy(out.data(), &max_len, 4);
  for (const auto& [s, score] : pieces) {
    const auto len = static_cast<std::int32_t>(s.size());
    const std::size_t at = out.size();
    out.resize(at + 8 + s.size());
    std::memcpy(out.data() + at, &score, 4);
    std::memcpy(out.data() + at + 4, &len, 4);
    std::memcpy(out.data() + at + 8, s.data(), s.size());
  }
  return out;
}

/// A small loaded tokenizer, the state "unchanged on error" is checked against.
const llama2c::tokenizer& base_tokenizer() {
  static const llama2c::tokenizer t = [] {
    specdec_fuzz::memory_file f;
    f.write(tokenizer_file({{" ", -1.0f}, {"a", -2.0f}, {" a", -0.5f}}));
    llama2c::tokenizer out;
    if (!llama2c::tokenizer::load(f.path(), 262, out).ok())
      std::abort();
    return out;
  }();
  return t;
}

index_t read_vocab(reader& in) {
  switch (in.u8() % 10) {
  case 0:
    return 259;
  case 1:
    return 260;
  case 2:
    return 262;
  case 3:
    return 512;
  case 4:
    return 258;
  case 5:
    return in.flag() ? 0 : -1;
  case 6:
    return llama2c::tokenizer::max_vocab_size + in.range<index_t>(0, 1);
  default:
    return in.range<index_t>(259, 400);
  }
}

void tokenizer_mode(reader& in) {
  const index_t vocab = read_vocab(in);
  const auto tlen = in.range<std::size_t>(0, 64);
  const auto tb = in.bytes(tlen);
  const std::string text(tb.begin(), tb.end());
  const std::uint8_t flags = in.u8();
  const auto rest = in.rest();
  const std::vector<std::uint8_t> file(rest.begin(), rest.end());
  scratch().write(file);

  llama2c::tokenizer t = base_tokenizer();
  std::string detail = "(untouched)";
  const specdec::status s = llama2c::tokenizer::load(scratch().path(), vocab, t, &detail);
  const errc want = expected_tokenizer_status(file, vocab);
  const std::string what = "tokenizer file of " + std::to_string(file.size()) + " bytes, vocab "
                           + std::to_string(vocab) + ": " + s.message() + " (" + detail
                           + "), expected " + specdec::message(want);
  if (specdec_fuzz::verbose())
    std::fprintf(stderr, "  %s\n", what.c_str());
  FUZZ_CHECK(s.code == want, what);
  if (!s.ok()) {
    FUZZ_CHECK(!detail.empty() && detail != "(untouched)", what + ": no explanation");
    FUZZ_CHECK(t.vocab_size() == base_tokenizer().vocab_size() && t.find(" a") == 261,
               what + ": a failed load changed the tokenizer");
    return;
  }
  FUZZ_CHECK(t.vocab_size() == vocab, what + ": vocab_size " + std::to_string(t.vocab_size()));
  // Every piece as the file has it (piece() turns "<0xXX>" into the byte; prev 0 keeps spaces).
  std::size_t at = 8;
  for (index_t i = 0; i < vocab; ++i) {
    const auto len = static_cast<std::size_t>(get_i32(file.data() + at));
    const std::string_view raw(reinterpret_cast<const char*>(file.data()) + at + 4, len);
    at += 8 + len;
    const std::string_view got = t.piece(0, static_cast<token_id>(i));
    const bool byte_piece = raw.size() == 6 && raw.substr(0, 3) == "<0x" && raw[5] == '>';
    FUZZ_CHECK(byte_piece || got == raw,
               what + ": piece " + std::to_string(i) + " differs from the file");
  }
  check_encode(t, text, (flags & 1u) != 0, (flags & 2u) != 0, what);
}

// --- models ------------------------------------------------------------------------------------

struct header {
  std::int32_t h[7];
};

/// What model::load's documented rules 1, 2 and 4 say about a file (rule 3, the context state,
/// can only add unsupported): ok or corrupt_data; and the number of floats the header implies.
errc expected_model_status(const std::vector<std::uint8_t>& head_and_body,
                           std::uint64_t file_size,
                           bool weights_present,
                           std::uint64_t& n_floats_out) {
  n_floats_out = 0;
  if (head_and_body.size() < 28)
    return errc::corrupt_data;
  std::int64_t h[7];
  for (int i = 0; i < 7; ++i)
    h[i] = get_i32(head_and_body.data() + 4 * static_cast<std::size_t>(i));
  const std::int64_t dim = h[0], hid = h[1], nl = h[2], heads = h[3], kvh = h[4], seq = h[6];
  const std::int64_t voc = h[5] < 0 ? -h[5] : h[5];
  const bool shared = h[5] > 0;
  if (dim <= 0 || hid <= 0 || nl <= 0 || heads <= 0 || kvh <= 0 || voc <= 0 || seq <= 0)
    return errc::corrupt_data;
  if (dim > (1 << 24) || hid > (1 << 24) || voc > (1 << 24) || nl > (1 << 16) || heads > (1 << 16)
      || seq > (1 << 22))
    return errc::corrupt_data;
  if (dim % heads != 0 || heads % kvh != 0 || (dim / heads) % 2 != 0)
    return errc::corrupt_data;
  const u128 hs = static_cast<u128>(dim / heads);
  const u128 kvd = hs * static_cast<u128>(kvh);
  const u128 d = static_cast<u128>(dim);
  const u128 per_layer = 2 * d + 2 * d * d + 2 * kvd * d + 3 * static_cast<u128>(hid) * d;
  const u128 n = static_cast<u128>(voc) * d * (shared ? 1 : 2) + static_cast<u128>(nl) * per_layer
                 + d + static_cast<u128>(seq) * hs;
  if (28 + 4 * n > static_cast<u128>(std::numeric_limits<std::int64_t>::max()))
    return errc::corrupt_data;
  n_floats_out = static_cast<std::uint64_t>(n);
  if (file_size < 28 || file_size != 28 + 4 * static_cast<std::uint64_t>(n))
    return errc::corrupt_data;
  { // rule 3: the context state (KV planes, attention scores) against the file's allowance
    const u128 lanes = static_cast<u128>(llama2c::detail::lanes);
    const u128 s = static_cast<u128>(seq);
    const u128 kv_planes = 2 * static_cast<u128>(nl) * kvd + (s % lanes != 0 ? lanes : 0);
    const u128 att_stride = (s + lanes - 1) / lanes * lanes + lanes;
    const u128 state = 4 * (s * kv_planes + static_cast<u128>(heads) * att_stride);
    const u128 allowed = std::min<u128>(u128{1} << 33, std::max<u128>(u128{1} << 28, file_size));
    if (state > allowed)
      return errc::unsupported;
  }
  if (weights_present) { // finite weights; the RoPE tables (after the final norm) are skipped
    const std::uint64_t rope_begin =
        static_cast<std::uint64_t>(n)
        - static_cast<std::uint64_t>(seq) * static_cast<std::uint64_t>(hs)
        - (shared ? 0 : static_cast<std::uint64_t>(voc * dim));
    const std::uint64_t rope_end =
        rope_begin + static_cast<std::uint64_t>(seq) * static_cast<std::uint64_t>(hs);
    for (std::uint64_t i = 0; i < static_cast<std::uint64_t>(n); ++i)
      if ((i < rope_begin || i >= rope_end)
          && !std::isfinite(get_f32(head_and_body.data() + 28 + 4 * i)))
        return errc::corrupt_data;
  }
  return errc::ok;
}

/// Scores a short chain three ways on a loaded model; the logits must agree bitwise.
void check_forward(llama2c::model& m, reader& in, const std::string& what) {
  const index_t vocab = m.vocab_size();
  const index_t t = std::min<index_t>(m.seq_len(), 1 + in.u8() % 3);
  std::vector<token_id> tokens(static_cast<std::size_t>(t));
  for (token_id& x : tokens)
    x = static_cast<token_id>(in.u16() % static_cast<std::uint64_t>(vocab));
  const std::vector<std::int32_t> chain = [&] {
    std::vector<std::int32_t> p(tokens.size());
    for (std::size_t i = 0; i < p.size(); ++i)
      p[i] = static_cast<std::int32_t>(i) - 1;
    return p;
  }();
  std::vector<float> a(static_cast<std::size_t>(t * vocab)), b(a.size()), c(a.size());
  specdec::score_request r;
  r.request_id = 1;
  r.tokens = {tokens.data(), t};
  r.start = 0;
  m.reset();
  specdec::status s = m.score(r, specdec::make_matrix_view(a.data(), t, vocab));
  FUZZ_CHECK(s.ok(), what + ": score: " + s.message());
  m.reset();
  s = m.score_tree(
      0, {tokens.data(), t}, {chain.data(), t}, specdec::make_matrix_view(b.data(), t, vocab));
  FUZZ_CHECK(s.ok(), what + ": score_tree: " + s.message());
  FUZZ_CHECK(specdec_fuzz::same_bits(a.data(), b.data(), a.size()),
             what + ": score_tree of a chain differs from score");
  m.reset();
  s = m.score_layers(r, m.num_layers(), specdec::make_matrix_view(c.data(), t, vocab));
  FUZZ_CHECK(s.ok(), what + ": score_layers: " + s.message());
  FUZZ_CHECK(specdec_fuzz::same_bits(a.data(), c.data(), a.size()),
             what + ": score_layers with every layer differs from score");
}

void load_model(const std::vector<std::uint8_t>& head_and_body,
                std::uint64_t file_size,
                bool weights_present,
                reader& in,
                const std::string& kind) {
  std::uint64_t n_floats = 0;
  const errc want = expected_model_status(head_and_body, file_size, weights_present, n_floats);
  llama2c::model m;
  std::string detail = "(untouched)";
  const specdec::status s = llama2c::model::load(scratch().path(), m, &detail);
  std::string hdr;
  for (int i = 0; i < 7 && head_and_body.size() >= 28; ++i)
    hdr.append(i ? " " : "")
        .append(std::to_string(get_i32(head_and_body.data() + 4 * static_cast<std::size_t>(i))));
  const std::string what = kind + " of " + std::to_string(file_size) + " bytes, header [" + hdr
                           + "]: " + s.message() + " (" + detail + "), expected "
                           + specdec::message(want);
  if (specdec_fuzz::verbose())
    std::fprintf(stderr, "  %s\n", what.c_str());
  if (want == errc::corrupt_data || want == errc::unsupported)
    FUZZ_CHECK(s.code == want, what);
  else if (file_size <= (std::uint64_t{1} << 20)) // small: nothing may fail to allocate
    FUZZ_CHECK(s.ok(), what);
  else // a large model may still meet an allocation failure (unsupported)
    FUZZ_CHECK(s.ok() || s.code == errc::unsupported, what);
  if (!s.ok()) {
    FUZZ_CHECK(!detail.empty() && detail != "(untouched)", what + ": no explanation");
    FUZZ_CHECK(!m.loaded(), what + ": a failed load left a model");
    return;
  }
  FUZZ_CHECK(detail.empty(), what + ": the explanation was not cleared");
  const llama2c::config& c = m.cfg();
  const std::int32_t* h = reinterpret_cast<const std::int32_t*>(head_and_body.data());
  std::int32_t hv[7];
  std::memcpy(hv, h, sizeof(hv));
  FUZZ_CHECK(c.dim == hv[0] && c.hidden_dim == hv[1] && c.n_layers == hv[2] && c.n_heads == hv[3]
                 && c.n_kv_heads == hv[4] && c.vocab_size == (hv[5] < 0 ? -hv[5] : hv[5])
                 && c.shared_classifier == (hv[5] > 0) && c.seq_len == hv[6],
             what + ": config differs from the header");
  // The forward pass on small models only (the work is O(parameters)).
  if (n_floats <= 200000 && c.dim <= 256 && c.vocab_size <= 4096)
    check_forward(m, in, what);
}

void model_file_mode(reader& in) {
  const std::uint8_t forward_seed = in.u8(); // tokens for the forward pass
  const auto rest = in.rest();
  std::vector<std::uint8_t> file(rest.begin(), rest.end());
  scratch().write(file);
  const std::uint8_t tok[2] = {forward_seed, static_cast<std::uint8_t>(forward_seed * 7u)};
  reader tokens(tok, 2);
  load_model(file, file.size(), true, tokens, "model file");
}

std::int32_t read_field(reader& in) {
  switch (in.u8() % 8) {
  case 0:
  case 1:
    return in.range<std::int32_t>(1, 8);
  case 2:
    return in.range<std::int32_t>(1, 64);
  case 3:
    return std::int32_t{1} << in.range<int>(0, 24);
  case 4:
    return in.range<std::int32_t>(-2, 0);
  case 5: {
    static constexpr std::int32_t edges[] = {1 << 16,
                                             (1 << 16) + 1,
                                             1 << 22,
                                             (1 << 22) + 1,
                                             1 << 24,
                                             (1 << 24) + 1,
                                             std::numeric_limits<std::int32_t>::max(),
                                             std::numeric_limits<std::int32_t>::min()};
    return edges[in.u8() % 8];
  }
  case 6:
    return static_cast<std::int32_t>(in.u32());
  default:
    return in.range<std::int32_t>(1, 4) * 2;
  }
}

void model_header_mode(reader& in) {
  std::vector<std::uint8_t> head(28);
  for (int i = 0; i < 7; ++i) {
    const std::int32_t v = read_field(in);
    std::memcpy(head.data() + 4 * static_cast<std::size_t>(i), &v, 4);
  }
  std::uint64_t n_floats = 0;
  (void)expected_model_status(head, 0, false, n_floats); // the implied size (0: none)
  const std::uint64_t implied = 28 + 4 * n_floats;
  // Exact files up to 40 MB when the context state is over the loader's 256 MiB for any file
  // (it must refuse before reading the weights: cheap), else up to 2 MB (it loads: slow).
  std::int64_t hv[7];
  for (int i = 0; i < 7; ++i)
    hv[i] = get_i32(head.data() + 4 * static_cast<std::size_t>(i));
  const double hs = hv[3] > 0 ? static_cast<double>(hv[0]) / static_cast<double>(hv[3]) : 0.0;
  const double state = 4.0 * static_cast<double>(hv[6])
                       * (2.0 * static_cast<double>(hv[2]) * hs * static_cast<double>(hv[4])
                          + static_cast<double>(hv[3]));
  const std::uint64_t cap = state > 0x1p28 ? std::uint64_t{40} << 20 : std::uint64_t{2} << 20;
  const bool exact = n_floats > 0 && implied <= cap && !in.flag();
  const std::uint64_t size = exact ? implied : 28 + in.range<std::uint64_t>(0, 64);
  // Zero weights (finite) up to the implied size; a short file has 0..64 zero bytes.
  scratch().write(head, size);
  load_model(head, size, false, in, exact ? "model header + zero weights" : "short model file");
}

// --- the real tokenizer ------------------------------------------------------------------------

const llama2c::tokenizer* real_tokenizer() {
  static const std::optional<llama2c::tokenizer> t = []() -> std::optional<llama2c::tokenizer> {
    const std::string path = llama2c::default_model_dir() + "/tok512.bin";
    llama2c::tokenizer out;
    std::string detail;
    if (!llama2c::tokenizer::load(path, 512, out, &detail).ok()) {
      std::fprintf(stderr,
                   "fuzz_llama2c: %s not loaded (%s): real-tokenizer inputs skipped\n",
                   path.c_str(),
                   detail.c_str());
      return std::nullopt;
    }
    return out;
  }();
  return t ? &*t : nullptr;
}

void real_tokenizer_mode(reader& in) {
  const llama2c::tokenizer* t = real_tokenizer();
  if (t == nullptr)
    return;
  const std::uint8_t flags = in.u8();
  const auto rest = in.rest();
  const std::string text(rest.begin(), rest.end());
  const std::string what = "tok512, text of " + std::to_string(text.size()) + " bytes";
  check_encode(*t, text, (flags & 1u) != 0, (flags & 2u) != 0, what);
  // Round trip: after BOS (prev = 1) decode drops the dummy-prefix space encode adds. Texts that
  // spell a byte piece ("<0x41>") may merge into it and decode as the byte.
  if (text.find("<0x") == std::string::npos) {
    const std::vector<token_id> ids = t->encode(text, false, false);
    const std::string back = t->decode(ids, 1);
    FUZZ_CHECK(back == text,
               what + ": decode(encode(text)) differs (" + std::to_string(back.size())
                   + " bytes back)");
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { // NOLINT
  reader in(data, size);
  switch (in.u8() % 4) {
  case 0:
    tokenizer_mode(in);
    break;
  case 1:
    model_file_mode(in);
    break;
  case 2:
    model_header_mode(in);
    break;
  default:
    real_tokenizer_mode(in);
    break;
  }
  return 0;
}

// --- seeds ------------------------------------------------------------------------------------
namespace {

std::vector<std::uint8_t> tokenizer_seed(int vocab_code,
                                         const std::string& text,
                                         int flags,
                                         const std::vector<std::uint8_t>& file) {
  specdec_fuzz::writer w;
  w.u8(0);
  w.u8(static_cast<std::uint64_t>(vocab_code)); // read_vocab: 0 259, 2 262, 3 512
  w.range<std::size_t>(text.size(), 0, 64);
  w.append(text);
  w.u8(static_cast<std::uint64_t>(flags));
  w.append(file);
  return w.bytes();
}

void put_i32(std::vector<std::uint8_t>& b, std::int32_t v) {
  const std::size_t at = b.size();
  b.resize(at + 4);
  std::memcpy(b.data() + at, &v, 4);
}
void put_f32(std::vector<std::uint8_t>& b, float v) {
  const std::size_t at = b.size();
  b.resize(at + 4);
  std::memcpy(b.data() + at, &v, 4);
}

/// A tiny checkpoint (dim 4, hidden 6, 1 layer, 2 heads, 1 kv head, vocab 5, seq_len 4).
std::vector<std::uint8_t> tiny_model(bool shared, float poison = 0.0f, std::size_t poison_at = 0) {
  const std::int32_t dim = 4, hid = 6, nl = 1, heads = 2, kvh = 1, voc = 5, seq = 4;
  std::vector<std::uint8_t> b;
  for (std::int32_t v : {dim, hid, nl, heads, kvh, shared ? voc : -voc, seq})
    put_i32(b, v);
  const std::int64_t d = dim, hs = dim / heads, kvd = hs * kvh, layers = nl, hidden = hid;
  const std::int64_t n = std::int64_t{voc} * d * (shared ? 1 : 2)
                         + layers * (2 * d + 2 * d * d + 2 * kvd * d + 3 * hidden * d) + d
                         + std::int64_t{seq} * hs;
  for (std::int64_t i = 0; i < n; ++i)
    put_f32(b, static_cast<float>((i * 29) % 17 - 8) * 0.0625f);
  if (poison_at != 0)
    std::memcpy(b.data() + 28 + 4 * poison_at, &poison, 4);
  return b;
}

std::vector<std::uint8_t> header_seed(const std::vector<std::int32_t>& h, bool short_file) {
  specdec_fuzz::writer w;
  w.u8(2);
  for (std::int32_t v : h) {
    w.u8(6); // raw
    w.u32(static_cast<std::uint32_t>(v));
  }
  w.flag(short_file);
  if (short_file)
    w.range<std::uint64_t>(0, 0, 64);
  w.u8(0); // forward tokens
  return w.bytes();
}

} // namespace

std::vector<specdec_fuzz::seed> specdec_fuzz::seeds() {
  std::vector<specdec_fuzz::seed> out;
  const std::vector<std::uint8_t> small =
      tokenizer_file({{" ", -1.0f}, {"a", -2.0f}, {" a", -0.5f}});
  out.push_back({"tokenizer_262", tokenizer_seed(2, "a a\xc3\xa9 aa", 3, small)});
  out.push_back({"tokenizer_259_bytes_only", tokenizer_seed(0, "xyz\x80", 1, tokenizer_file({}))});
  out.push_back({"tokenizer_wrong_vocab", tokenizer_seed(3, "a", 0, small)});
  {
    std::vector<std::uint8_t> t = small;
    t.push_back(0);
    out.push_back({"tokenizer_trailing_byte", tokenizer_seed(2, "", 0, t)});
  }
  // Issue 12: a 12-byte tokenizer file (max_token_length 16, then a piece claiming 2^31 - 1 bytes)
  // made the loader allocate 2 GiB before noticing the file is short.
  {
    std::vector<std::uint8_t> t;
    put_i32(t, 16);
    put_f32(t, 0.0f);
    put_i32(t, std::numeric_limits<std::int32_t>::max());
    out.push_back({"issue12_tokenizer_12_bytes", tokenizer_seed(3, "hello", 0, t)});
  }
  {
    specdec_fuzz::writer w;
    w.u8(1);
    w.u8(3);
    w.append(tiny_model(true));
    out.push_back({"model_tiny_shared", w.bytes()});
  }
  {
    specdec_fuzz::writer w;
    w.u8(1);
    w.u8(9);
    w.append(tiny_model(false));
    out.push_back({"model_tiny_own_classifier", w.bytes()});
  }
  {
    specdec_fuzz::writer w;
    w.u8(1);
    w.u8(0);
    w.append(tiny_model(true, std::numeric_limits<float>::quiet_NaN(), 7));
    out.push_back({"model_nan_weight", w.bytes()});
  }
  {
    // A NaN in the RoPE table (the 8 floats after the final norm) is not a weight: loads.
    const std::size_t rope = 5 * 4 + (2 * 4 + 2 * 16 + 2 * 2 * 4 + 3 * 6 * 4) + 4;
    specdec_fuzz::writer w;
    w.u8(1);
    w.u8(0);
    w.append(tiny_model(true, std::numeric_limits<float>::quiet_NaN(), rope + 1));
    out.push_back({"model_nan_in_rope_table", w.bytes()});
  }
  // Issue 12: a 33 MB file whose header says 64 layers x seq_len 2^22 asked for a 16 GiB KV
  // cache (std::bad_alloc) instead of a clear status.
  out.push_back(
      {"issue12_model_64_layers_seq_2_22", header_seed({2, 1, 64, 1, 1, 1, 1 << 22}, false)});
  out.push_back({"model_header_short_file", header_seed({288, 768, 6, 6, 6, 32000, 256}, true)});
  out.push_back({"model_header_tiny_zero_weights", header_seed({8, 16, 2, 2, 1, 11, 8}, false)});
  out.push_back(
      {"model_header_limits", header_seed({1 << 24, 1, (1 << 16) + 1, 1, 1, 1, 1}, true)});
  {
    specdec_fuzz::writer w;
    w.u8(3);
    w.u8(3);
    w.append(
        std::string("Once upon a time, there was a little girl named Lily. \xe2\x9c\x93 \xff\xfe"));
    out.push_back({"tok512_story", w.bytes()});
  }
  {
    specdec_fuzz::writer w;
    w.u8(3);
    w.u8(0);
    w.append(std::string("  leading spaces\n\ttab <0x41> \x01\x02"));
    out.push_back({"tok512_spaces_and_bytes", w.bytes()});
  }
  return out;
}
