// SPDX-License-Identifier: Apache-2.0
//
// Fuzz target: the DeepSpec example's loaders (examples/deepspec/data.hpp, checkpoint.hpp;
// block_checkpoint.hpp; header-only example code). The first byte picks the loader: even, a data
// split (dataset_from for a target of vocabulary 512, width 64, context 512); low bits 01, a
// drafter checkpoint (drafter_from); low bits 11, a block drafter checkpoint (block_drafter_from,
// whose heads go through the library's load_deepspec_heads). The rest of the input is a safetensors
// file, parsed from memory (io::safetensors_file::parse); when it parses, the from-memory loader
// runs on it, and the path loader (load_dataset / load_drafter) on the same bytes in an in-memory
// file.
//
// Properties checked:
//  - the status is ok, corrupt_data or shape_mismatch; on failure the output is unchanged (a
//    sentinel object) and `detail` is one non-empty line prefixed with the name given; on success
//    `detail` is cleared;
//  - a split that loads holds every documented invariant: offsets from 0 rising by 2 .. 512 per
//    sequence to N, prompt lengths in [1, sequence length), tokens in [0, 512), width 64, one
//    feature block of N x 64 finite values per features.<l> tensor (l distinct, named canonically,
//    the tensor's values), top_ids / top_logits [N, K] with 1 <= K <= 512 exactly when the file
//    has them, ids in range, logits finite;
//  - a drafter that loads has a config that validates, within max_checkpoint_width, the
//    metadata's; every slot exactly drafter_weights::shape(p) (absent slots 0 x 0), the file's
//    values, all finite;
//  - a block drafter that loads has a config that validates and agrees with the metadata, every
//    slot exactly block_weights::shape(p), all finite; its failures may also be unsupported (a
//    head tensor our heads cannot hold);
//  - round trip: encode_dataset (F32 features) / encode_drafter / encode_block_drafter,
//    serialized and parsed again,
//    loads the same object bit for bit; with BF16 features the split loads with the features
//    rounded to bfloat16, or is refused exactly when one rounds to infinity;
//  - load_dataset / load_drafter on the file give the from-memory loader's status, object and
//    detail (the parser's status and an unchanged object when it does not parse);
//  - no crash, sanitizer report or leak, and no allocation larger than the file implies (the
//    CTest run uses -malloc_limit_mb=64; inputs are a few KB).

#include <specdec/io/safetensors.hpp>

#include "deepspec/block_checkpoint.hpp"
#include "deepspec/checkpoint.hpp"
#include "deepspec/data.hpp"
#include "support/fuzz_input.hpp"
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

using namespace specdec;
using deepspec::arch;
using deepspec::dataset;
using deepspec::drafter_config;
using deepspec::drafter_weights;
using deepspec::mat;
using io::safetensors_file;
using io::safetensors_writer;

namespace {

constexpr std::int64_t vocab = 512;
constexpr std::int64_t width = 64;
constexpr std::int64_t context = 512;

specdec_fuzz::memory_file& input_file() {
  static specdec_fuzz::memory_file f;
  return f;
}

bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && specdec_fuzz::same_bits(a.data(), b.data(), a.size());
}

bool same_dataset(const dataset& a, const dataset& b) {
  if (a.tokens != b.tokens || a.offsets != b.offsets || a.prompt_lengths != b.prompt_lengths
      || a.feature_layers != b.feature_layers || a.features.size() != b.features.size()
      || a.top_k != b.top_k || a.top_ids != b.top_ids || !same_floats(a.top_logits, b.top_logits)
      || a.dim != b.dim)
    return false;
  for (std::size_t l = 0; l < a.features.size(); ++l)
    if (!same_floats(a.features[l], b.features[l]))
      return false;
  return true;
}

bool same_config(const drafter_config& a, const drafter_config& b) {
  return a.kind == b.kind && a.dim == b.dim && a.heads == b.heads && a.kv_heads == b.kv_heads
         && a.ffn == b.ffn && a.vocab == b.vocab && a.layers == b.layers;
}

bool same_drafter(const drafter_weights<float>& a, const drafter_weights<float>& b) {
  if (!same_config(a.cfg, b.cfg))
    return false;
  for (int p = 0; p < deepspec::p_count; ++p) {
    const mat<float>& x = a.w[static_cast<std::size_t>(p)];
    const mat<float>& y = b.w[static_cast<std::size_t>(p)];
    if (x.rows() != y.rows() || x.cols() != y.cols()
        || !specdec_fuzz::same_bits(x.data(), y.data(), static_cast<std::size_t>(x.size())))
      return false;
  }
  return true;
}

/// Recognisable outputs, for "unchanged on failure".
dataset sentinel_dataset() {
  dataset d;
  d.tokens = {7, 8, 9};
  d.offsets = {0, 3};
  d.prompt_lengths = {1};
  d.feature_layers = {3};
  d.features = {{0.5f, -1.0f, 2.0f}};
  d.top_k = 1;
  d.top_ids = {4, 5, 6};
  d.top_logits = {1.0f, 2.0f, 3.0f};
  d.dim = 1;
  return d;
}

drafter_weights<float> sentinel_drafter() {
  drafter_weights<float> w;
  w.cfg.kind = arch::mtp1;
  w.cfg.dim = 3;
  w.cfg.heads = 5;
  w.cfg.kv_heads = 7;
  w.cfg.ffn = 11;
  w.cfg.vocab = 13;
  w.cfg.layers = {9};
  w.w[0] = mat<float>::Constant(1, 2, 0.25f);
  return w;
}

std::vector<std::byte> serialized(const safetensors_writer& w) {
  std::vector<std::byte> b;
  FUZZ_CHECK(w.serialize(b).ok(), "cannot serialize a round-trip file");
  return b;
}

bool is_failure(errc c) {
  return c == errc::corrupt_data || c == errc::shape_mismatch;
}

/// The properties of any failure: the output is the sentinel, detail one line prefixed `name: `.
template <class T, class Same>
void check_failure(
    const status& s, const std::string& detail, const T& out, const T& sentinel, Same same) {
  FUZZ_CHECK(is_failure(s.code), std::string("unexpected status ") + s.message() + ": " + detail);
  FUZZ_CHECK(same(out, sentinel), std::string("a failed load changed its output: ") + detail);
  const std::string prefix = input_file().path() + ": ";
  FUZZ_CHECK(detail.size() > prefix.size() && detail.compare(0, prefix.size(), prefix) == 0,
             "detail is not '" + prefix + "reason': '" + detail + "'");
  FUZZ_CHECK(detail.find('\n') == std::string::npos, "detail is not one line: " + detail);
}

/// The path loader on the file: `want` its status, `got` what the from-memory loader gave.
template <class T, class Load, class Same>
void check_path_loader(const status& want,
                       const T& got,
                       const std::string& want_detail,
                       const T& sentinel,
                       Load load,
                       Same same) {
  T out = sentinel;
  std::string detail = "stale";
  const status s = load(input_file().path(), out, &detail);
  FUZZ_CHECK(s.code == want.code,
             std::string("the path loader gives ") + s.message() + ", the file " + want.message()
                 + ": " + detail);
  FUZZ_CHECK(same(out, got), "the path loader gives another object: " + detail);
  FUZZ_CHECK(detail == want_detail,
             "the path loader explains otherwise: '" + detail + "' vs '" + want_detail + "'");
}

// --- data splits ------------------------------------------------------------------------------

void check_dataset(const safetensors_file& f) {
  const std::string& name = input_file().path();
  const dataset sentinel = sentinel_dataset();
  dataset d = sentinel;
  std::string detail = "stale";
  const status s = deepspec::dataset_from(f, vocab, width, context, d, name, &detail);
  if (specdec_fuzz::verbose())
    std::fprintf(stderr, "  data split: %s %s\n", s.message(), detail.c_str());
  check_path_loader(
      s,
      d,
      detail,
      sentinel,
      [](const std::string& path, dataset& out, std::string* why) {
        return deepspec::load_dataset(path, vocab, width, context, out, why);
      },
      same_dataset);
  if (!s.ok()) {
    check_failure(s, detail, d, sentinel, same_dataset);
    return;
  }
  FUZZ_CHECK(detail.empty(), "detail not cleared on success: " + detail);

  // The invariants of a loaded split.
  const auto N = static_cast<std::int64_t>(d.tokens.size());
  const std::int64_t S = d.size();
  FUZZ_CHECK(d.dim == width, "dim " + std::to_string(d.dim));
  FUZZ_CHECK(static_cast<std::int64_t>(d.offsets.size()) == S + 1 && d.offsets.front() == 0
                 && d.offsets.back() == N,
             "offsets do not run from 0 to N");
  for (std::int64_t q = 0; q < S; ++q) {
    const std::int64_t len =
        d.offsets[static_cast<std::size_t>(q) + 1] - d.offsets[static_cast<std::size_t>(q)];
    FUZZ_CHECK(len >= 2 && len <= context, "sequence " + std::to_string(q) + " length");
    const std::int32_t p = d.prompt_lengths[static_cast<std::size_t>(q)];
    FUZZ_CHECK(p >= 1 && p < len, "sequence " + std::to_string(q) + " prompt length");
  }
  for (const std::int32_t t : d.tokens)
    FUZZ_CHECK(t >= 0 && t < vocab, "token " + std::to_string(t));
  std::size_t feature_tensors = 0;
  for (const io::tensor_info& t : f.tensors())
    feature_tensors += t.name.rfind("features.", 0) == 0 ? 1 : 0;
  FUZZ_CHECK(d.feature_layers.size() == feature_tensors
                 && d.features.size() == d.feature_layers.size(),
             "feature blocks and the file's features.<l> tensors differ");
  std::set<std::int32_t> layers;
  for (std::size_t l = 0; l < d.features.size(); ++l) {
    const std::string tname = "features." + std::to_string(d.feature_layers[l]);
    FUZZ_CHECK(d.feature_layers[l] >= 0 && layers.insert(d.feature_layers[l]).second
                   && f.find(tname) != nullptr,
               "feature layer " + std::to_string(d.feature_layers[l]));
    FUZZ_CHECK(static_cast<std::int64_t>(d.features[l].size()) == N * width,
               tname + ": not N x 64");
    for (const float x : d.features[l])
      FUZZ_CHECK(std::isfinite(x), tname + " holds a non-finite value");
    std::vector<float> raw;
    FUZZ_CHECK(f.read_f32(tname, {}, raw).ok() && same_floats(raw, d.features[l]),
               tname + ": not the file's values");
  }
  const bool has_top = f.find("top_ids") != nullptr;
  FUZZ_CHECK(has_top == (d.top_k > 0) && has_top == (f.find("top_logits") != nullptr),
             "top_ids / top_logits presence");
  FUZZ_CHECK(d.top_k >= 0 && d.top_k <= vocab
                 && static_cast<std::int64_t>(d.top_ids.size()) == N * d.top_k
                 && d.top_logits.size() == d.top_ids.size(),
             "top_ids / top_logits sizes");
  for (const std::int32_t v : d.top_ids)
    FUZZ_CHECK(v >= 0 && v < vocab, "top id " + std::to_string(v));
  for (const float x : d.top_logits)
    FUZZ_CHECK(std::isfinite(x), "a non-finite top logit");

  // Round trip with F32 features: the same split bit for bit.
  deepspec::data_options o;
  o.bf16_features = false;
  safetensors_writer w;
  FUZZ_CHECK(deepspec::encode_dataset(d, o, w).ok(), "encode_dataset refuses a loaded split");
  safetensors_file back_file;
  std::string why;
  FUZZ_CHECK(safetensors_file::parse(serialized(w), back_file, &why).ok(),
             "the encoded split does not parse: " + why);
  dataset back = sentinel;
  FUZZ_CHECK(deepspec::dataset_from(back_file, vocab, width, context, back, name, &why).ok(),
             "the encoded split does not load: " + why);
  FUZZ_CHECK(same_dataset(back, d), "the round trip changes the split");

  // With BF16 features: rounded, or refused where a value rounds to infinity.
  if (!d.features.empty()) {
    o.bf16_features = true;
    safetensors_writer wb;
    FUZZ_CHECK(deepspec::encode_dataset(d, o, wb).ok(), "encode_dataset (BF16) refuses");
    FUZZ_CHECK(safetensors_file::parse(serialized(wb), back_file, &why).ok(),
               "the BF16 split does not parse: " + why);
    dataset want = d;
    bool finite = true;
    for (std::vector<float>& block : want.features)
      for (float& x : block) {
        x = io::bf16_to_f32(io::f32_to_bf16(x));
        finite = finite && std::isfinite(x);
      }
    back = sentinel;
    const status sb = deepspec::dataset_from(back_file, vocab, width, context, back, name, &why);
    FUZZ_CHECK(sb.ok() == finite, std::string("BF16 round trip: ") + sb.message() + ": " + why);
    FUZZ_CHECK(same_dataset(back, finite ? want : sentinel),
               "the BF16 round trip gives another split");
  }
}

// --- block drafter checkpoints ----------------------------------------------------------------

bool same_block(const deepspec::block_weights<float>& a, const deepspec::block_weights<float>& b) {
  const deepspec::block_config& x = a.cfg;
  const deepspec::block_config& y = b.cfg;
  if (x.dim != y.dim || x.heads != y.heads || x.kv_heads != y.kv_heads || x.ffn != y.ffn
      || x.vocab != y.vocab || x.n_layers != y.n_layers || x.block != y.block
      || x.mask_token != y.mask_token || x.layers != y.layers || x.head != y.head
      || x.rank != y.rank || x.confidence != y.confidence || a.w.size() != b.w.size())
    return false;
  for (std::size_t p = 0; p < a.w.size(); ++p)
    if (a.w[p].rows() != b.w[p].rows() || a.w[p].cols() != b.w[p].cols()
        || !specdec_fuzz::same_bits(
            a.w[p].data(), b.w[p].data(), static_cast<std::size_t>(a.w[p].size())))
      return false;
  return true;
}

deepspec::block_weights<float> sentinel_block() {
  deepspec::block_weights<float> w;
  w.cfg.dim = 5;
  w.cfg.vocab = 9;
  w.cfg.layers = {7};
  w.w.assign(2, mat<float>::Constant(1, 3, 0.75f));
  return w;
}

void check_block(const safetensors_file& f) {
  const std::string& name = input_file().path();
  const deepspec::block_weights<float> sentinel = sentinel_block();
  deepspec::block_weights<float> W = sentinel;
  std::string detail = "stale";
  const status s = deepspec::block_drafter_from(f, W, name, &detail);
  if (specdec_fuzz::verbose())
    std::fprintf(stderr, "  block drafter: %s %s\n", s.message(), detail.c_str());
  check_path_loader(
      s,
      W,
      detail,
      sentinel,
      [](const std::string& path, deepspec::block_weights<float>& out, std::string* why) {
        return deepspec::load_block_drafter(path, out, why);
      },
      same_block);
  if (!s.ok()) {
    // The heads' loader may also refuse a tensor our heads cannot hold (unsupported).
    if (s.code == errc::unsupported) {
      FUZZ_CHECK(same_block(W, sentinel), "a failed load changed its output: " + detail);
      FUZZ_CHECK(!detail.empty() && detail.find('\n') == std::string::npos,
                 "detail is not one line: " + detail);
    } else {
      check_failure(s, detail, W, sentinel, same_block);
    }
    return;
  }
  FUZZ_CHECK(detail.empty(), "detail not cleared on success: " + detail);
  const deepspec::block_config& c = W.cfg;
  FUZZ_CHECK(c.validate().ok(), "the loaded block config does not validate");
  const auto& md = f.metadata();
  const auto meta = [&md](const char* key) {
    const auto it = md.find(key);
    return it == md.end() ? std::string("<none>") : it->second;
  };
  FUZZ_CHECK(std::stoi(meta("dim")) == c.dim && std::stoi(meta("vocab")) == c.vocab
                 && std::stoi(meta("markov_rank")) == c.rank
                 && std::stoi(meta("num_draft_layers")) == c.n_layers
                 && std::stoi(meta("block_size")) == c.block,
             "sizes differ from the metadata");
  FUZZ_CHECK(static_cast<int>(W.w.size()) == W.slots(), "wrong slot count");
  for (int p = 0; p < W.slots(); ++p) {
    const auto sh = W.shape(p);
    const mat<float>& m = W[p];
    FUZZ_CHECK(m.rows() == sh[0] && m.cols() == sh[1], W.name(p) + ": not the shape of shape(p)");
    for (Eigen::Index i = 0; i < m.size(); ++i)
      FUZZ_CHECK(std::isfinite(m.data()[i]), W.name(p) + " holds a non-finite value");
  }
  safetensors_writer w;
  std::string why;
  FUZZ_CHECK(deepspec::encode_block_drafter(W, mat<float>(0, 0), {}, w, &why).ok(),
             "encode_block_drafter refuses a loaded drafter: " + why);
  safetensors_file back_file;
  FUZZ_CHECK(safetensors_file::parse(serialized(w), back_file, &why).ok(),
             "the encoded block drafter does not parse: " + why);
  deepspec::block_weights<float> back = sentinel;
  FUZZ_CHECK(deepspec::block_drafter_from(back_file, back, name, &why).ok(),
             "the encoded block drafter does not load: " + why);
  FUZZ_CHECK(same_block(back, W), "the round trip changes the block drafter");
}

// --- drafter checkpoints ----------------------------------------------------------------------

void check_drafter(const safetensors_file& f) {
  const std::string& name = input_file().path();
  const drafter_weights<float> sentinel = sentinel_drafter();
  drafter_weights<float> W = sentinel;
  std::string detail = "stale";
  const status s = deepspec::drafter_from(f, W, name, &detail);
  if (specdec_fuzz::verbose())
    std::fprintf(stderr, "  drafter: %s %s\n", s.message(), detail.c_str());
  check_path_loader(
      s,
      W,
      detail,
      sentinel,
      [](const std::string& path, drafter_weights<float>& out, std::string* why) {
        return deepspec::load_drafter(path, out, why);
      },
      same_drafter);
  if (!s.ok()) {
    check_failure(s, detail, W, sentinel, same_drafter);
    return;
  }
  FUZZ_CHECK(detail.empty(), "detail not cleared on success: " + detail);

  // The invariants of a loaded drafter.
  const drafter_config& c = W.cfg;
  FUZZ_CHECK(c.validate().ok(), "the loaded config does not validate");
  for (const int v : {c.dim, c.heads, c.kv_heads, c.ffn, c.vocab})
    FUZZ_CHECK(v >= 1 && v <= deepspec::max_checkpoint_width, "a size outside the limit");
  const auto& md = f.metadata();
  const auto meta = [&md](const char* key) {
    const auto it = md.find(key);
    return it == md.end() ? std::string("<none>") : it->second;
  };
  FUZZ_CHECK(meta("arch") == deepspec::arch_name(c.kind), "arch differs from the metadata");
  FUZZ_CHECK(std::stoi(meta("dim")) == c.dim && std::stoi(meta("heads")) == c.heads
                 && std::stoi(meta("kv_heads")) == c.kv_heads && std::stoi(meta("ffn")) == c.ffn
                 && std::stoi(meta("vocab")) == c.vocab,
             "sizes differ from the metadata");
  std::string ids;
  for (std::size_t i = 0; i < c.layers.size(); ++i)
    ids += (i ? "," : "") + std::to_string(c.layers[i]);
  const std::string meta_ids = meta("target_layer_ids");
  std::string canonical; // the metadata's list without leading zeros
  for (std::size_t at = 0; at <= meta_ids.size();) {
    const std::size_t comma = std::min(meta_ids.find(',', at), meta_ids.size());
    canonical += (at ? "," : "") + std::to_string(std::stoi(meta_ids.substr(at, comma - at)));
    at = comma + 1;
  }
  FUZZ_CHECK(ids == canonical, "layers " + ids + " differ from the metadata's " + meta_ids);
  for (int p = 0; p < deepspec::p_count; ++p) {
    const mat<float>& m = W.w[static_cast<std::size_t>(p)];
    const auto sh = W.shape(p);
    const std::string pname = deepspec::param_name(c.kind, p);
    FUZZ_CHECK(m.rows() == sh[0] && m.cols() == sh[1], pname + ": not the shape of shape(p)");
    for (Eigen::Index i = 0; i < m.size(); ++i)
      FUZZ_CHECK(std::isfinite(m.data()[i]), pname + " holds a non-finite value");
    if (m.size() == 0)
      continue;
    std::vector<float> raw;
    FUZZ_CHECK(f.read_f32(pname, {}, raw).ok()
                   && specdec_fuzz::same_bits(raw.data(), m.data(), raw.size())
                   && static_cast<Eigen::Index>(raw.size()) == m.size(),
               pname + ": not the file's values");
  }

  // Round trip (an empty embedding: drafter_from ignores it).
  safetensors_writer w;
  FUZZ_CHECK(deepspec::encode_drafter(W, mat<float>(0, 0), {}, w).ok(),
             "encode_drafter refuses a loaded drafter");
  safetensors_file back_file;
  std::string why;
  FUZZ_CHECK(safetensors_file::parse(serialized(w), back_file, &why).ok(),
             "the encoded drafter does not parse: " + why);
  drafter_weights<float> back = sentinel;
  FUZZ_CHECK(deepspec::drafter_from(back_file, back, name, &why).ok(),
             "the encoded drafter does not load: " + why);
  FUZZ_CHECK(same_drafter(back, W), "the round trip changes the drafter");
}

} // namespace

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's name
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0)
    return 0;
  const bool drafter = (data[0] & 1u) != 0;
  const bool block = (data[0] & 3u) == 3u;
  const std::span<const std::uint8_t> file(data + 1, size - 1);
  input_file().write(file);
  safetensors_file f;
  std::string why;
  const status parsed = safetensors_file::parse(std::as_bytes(file), f, &why);
  if (specdec_fuzz::verbose())
    std::fprintf(stderr,
                 "%s, %zu bytes: parse %s %s\n",
                 block     ? "block drafter"
                 : drafter ? "drafter"
                           : "data",
                 file.size(),
                 parsed.message(),
                 why.c_str());
  if (!parsed.ok()) {
    // The path loaders refuse it with the parser's status, their output unchanged.
    std::string detail;
    if (block) {
      deepspec::block_weights<float> W = sentinel_block();
      const status s = deepspec::load_block_drafter(input_file().path(), W, &detail);
      FUZZ_CHECK(s.code == parsed.code && same_block(W, sentinel_block()) && !detail.empty(),
                 std::string("load_block_drafter on an unparsable file: ") + s.message());
    } else if (drafter) {
      drafter_weights<float> W = sentinel_drafter();
      const status s = deepspec::load_drafter(input_file().path(), W, &detail);
      FUZZ_CHECK(s.code == parsed.code && same_drafter(W, sentinel_drafter()) && !detail.empty(),
                 std::string("load_drafter on an unparsable file: ") + s.message());
    } else {
      dataset d = sentinel_dataset();
      const status s =
          deepspec::load_dataset(input_file().path(), vocab, width, context, d, &detail);
      FUZZ_CHECK(s.code == parsed.code && same_dataset(d, sentinel_dataset()) && !detail.empty(),
                 std::string("load_dataset on an unparsable file: ") + s.message());
    }
    return 0;
  }
  if (block)
    check_block(f);
  else if (drafter)
    check_drafter(f);
  else
    check_dataset(f);
  return 0;
}

// --- seeds ------------------------------------------------------------------------------------
namespace {

std::vector<std::uint8_t> with_mode(std::uint8_t mode, const safetensors_writer& w) {
  const std::vector<std::byte> b = serialized(w);
  std::vector<std::uint8_t> out(b.size() + 1);
  out[0] = mode;
  std::memcpy(out.data() + 1, b.data(), b.size());
  return out;
}

/// Three short sequences: BOS stories and one opening of two tokens.
dataset tiny_split(bool features, bool top) {
  dataset d;
  d.tokens = {1, 5, 6, 7, 1, 20, 30, 1, 2, 9, 10, 11};
  d.offsets = {0, 4, 7, 12};
  d.prompt_lengths = {1, 2, 1};
  d.dim = static_cast<int>(width);
  const std::size_t N = d.tokens.size();
  specdec_fuzz::splitmix g{42};
  if (features) {
    d.feature_layers = {1};
    d.features.assign(1, std::vector<float>(N * static_cast<std::size_t>(width)));
    for (float& x : d.features[0])
      x = static_cast<float>(g.unit() * 4.0 - 2.0);
  }
  if (top) {
    d.top_k = 2;
    for (std::size_t t = 0; t < N; ++t) {
      d.top_ids.push_back(d.tokens[(t + 1) % N]);
      d.top_ids.push_back(static_cast<std::int32_t>(t * 37 % 512));
      d.top_logits.push_back(3.5f);
      d.top_logits.push_back(-1.25f);
    }
  }
  return d;
}

std::vector<std::uint8_t> data_seed(const dataset& d, bool bf16 = true) {
  deepspec::data_options o;
  o.sequences = 3;
  o.max_new = 8;
  o.bf16_features = bf16;
  safetensors_writer w;
  if (!deepspec::encode_dataset(d, o, w).ok())
    std::abort();
  return with_mode(0, w);
}

drafter_weights<float> tiny_drafter(arch kind) {
  drafter_config c;
  c.kind = kind;
  c.dim = 8;
  c.heads = 2;
  c.kv_heads = 1;
  c.ffn = 12;
  c.vocab = 16;
  c.layers = kind == arch::eagle3 ? std::vector<std::int32_t>{1, 3} : std::vector<std::int32_t>{4};
  drafter_weights<float> W;
  W.init(c, 7);
  return W;
}

std::vector<std::uint8_t> drafter_seed(const drafter_weights<float>& W,
                                       const std::map<std::string, std::string>& meta = {},
                                       const std::string& drop = "") {
  mat<float> E(W.cfg.vocab, W.cfg.dim);
  specdec_fuzz::splitmix g{3};
  for (Eigen::Index i = 0; i < E.size(); ++i)
    E.data()[i] = static_cast<float>(g.unit() - 0.5);
  safetensors_writer w;
  if (drop.empty()) {
    if (!deepspec::encode_drafter(W, E, meta, w).ok())
      std::abort();
    return with_mode(1, w);
  }
  // Without one tensor: re-encode every other one by hand.
  safetensors_writer full;
  if (!deepspec::encode_drafter(W, E, meta, full).ok())
    std::abort();
  safetensors_file f;
  if (!safetensors_file::parse(serialized(full), f).ok())
    std::abort();
  for (const auto& [k, v] : f.metadata())
    w.set_metadata(k, v);
  for (const io::tensor_info& t : f.tensors()) {
    if (t.name == drop)
      continue;
    std::vector<float> v;
    if (!f.read_f32(t.name, {}, v).ok() || !w.add_f32(t.name, t.shape, v).ok())
      std::abort();
  }
  return with_mode(1, w);
}

deepspec::block_weights<float> tiny_block(deepspec::block_head h, int rank, bool conf) {
  deepspec::block_config c;
  c.dim = 8;
  c.heads = 2;
  c.kv_heads = 1;
  c.ffn = 12;
  c.vocab = 16;
  c.n_layers = 1;
  c.block = 3;
  c.layers = {1, 3};
  c.head = h;
  c.rank = rank;
  c.confidence = conf;
  deepspec::block_weights<float> W;
  W.init(c, 9);
  return W;
}

/// A block drafter file (mode 3); `meta` overrides metadata, `drop` leaves a tensor out, `extra`
/// adds a tensor of that name (shape [2]), `poison` gets a NaN in its second value.
std::vector<std::uint8_t> block_seed(const deepspec::block_weights<float>& W,
                                     const std::map<std::string, std::string>& meta = {},
                                     const std::string& drop = "",
                                     const std::string& extra = "",
                                     const std::string& poison = "") {
  mat<float> E(W.cfg.vocab, W.cfg.dim);
  specdec_fuzz::splitmix g{5};
  for (Eigen::Index i = 0; i < E.size(); ++i)
    E.data()[i] = static_cast<float>(g.unit() - 0.5);
  safetensors_writer full;
  std::string why;
  if (const status st = deepspec::encode_block_drafter(W, E, {}, full, &why); !st.ok()) {
    std::fprintf(stderr, "block_seed: %s %s\n", st.message(), why.c_str());
    std::abort();
  }
  safetensors_file f;
  if (!safetensors_file::parse(serialized(full), f).ok())
    std::abort();
  safetensors_writer w;
  for (const auto& [k, v] : f.metadata())
    w.set_metadata(k, v);
  for (const auto& [k, v] : meta)
    w.set_metadata(k, v);
  for (const io::tensor_info& t : f.tensors()) {
    if (t.name == drop)
      continue;
    std::vector<float> v;
    if (!f.read_f32(t.name, {}, v).ok())
      std::abort();
    if (t.name == poison && v.size() > 1)
      v[1] = std::numeric_limits<float>::quiet_NaN();
    if (!w.add_f32(t.name, t.shape, v).ok())
      std::abort();
  }
  if (!extra.empty() && !w.add_f32(extra, {2}, std::vector<float>{1.0f, 2.0f}).ok())
    std::abort();
  return with_mode(3, w);
}

} // namespace

std::vector<specdec_fuzz::seed> specdec_fuzz::seeds() {
  std::vector<specdec_fuzz::seed> out;
  // Data splits (first byte 0).
  const dataset plain = tiny_split(false, false);
  const dataset full = tiny_split(true, true);
  out.push_back({"data_tiny", data_seed(plain)});
  out.push_back({"data_tiny_features1_bf16_top2", data_seed(full)});
  out.push_back({"data_tiny_features1_f32", data_seed(tiny_split(true, false), false)});
  out.push_back({"data_empty_split", data_seed([] {
                   dataset d;
                   d.dim = static_cast<int>(width);
                   return d;
                 }())});
  dataset bad = plain;
  for (std::int64_t& o : bad.offsets)
    o += 1;
  bad.tokens.push_back(1);
  out.push_back({"data_bad_offsets_not_from_0", data_seed(bad)});
  bad = plain;
  bad.offsets = {0, 2, std::numeric_limits<std::int64_t>::min(), 12};
  out.push_back({"data_bad_offsets_fall_to_int64_min", data_seed(bad)});
  bad = plain;
  bad.offsets = {0, 4, 4, 12};
  out.push_back({"data_bad_empty_sequence", data_seed(bad)});
  bad = plain;
  bad.prompt_lengths[1] = 0;
  out.push_back({"data_bad_prompt_length_0", data_seed(bad)});
  bad = plain;
  bad.prompt_lengths[0] = 4;
  out.push_back({"data_bad_prompt_is_whole_sequence", data_seed(bad)});
  bad = plain;
  bad.tokens[5] = 600;
  out.push_back({"data_bad_token_600", data_seed(bad)});
  bad = full;
  bad.top_ids[3] = 512;
  out.push_back({"data_bad_top_id_512", data_seed(bad)});
  bad = full;
  bad.features[0][17] = std::numeric_limits<float>::quiet_NaN();
  out.push_back({"data_bad_feature_nan", data_seed(bad, false)});
  bad = full;
  bad.top_logits[2] = std::numeric_limits<float>::infinity();
  out.push_back({"data_bad_top_logit_inf", data_seed(bad)});
  {
    deepspec::data_options o;
    safetensors_writer w;
    if (!deepspec::encode_dataset(plain, o, w).ok())
      std::abort();
    w.set_metadata("format", "specdec-drafter");
    out.push_back({"data_bad_format_tag", with_mode(0, w)});
  }
  {
    safetensors_writer w;
    w.set_metadata("format", "specdec-deepspec-data");
    if (!w.add_i32("tokens", {12}, plain.tokens).ok()
        || !w.add_i64("offsets", {4}, plain.offsets).ok())
      std::abort();
    out.push_back({"data_bad_missing_prompt_lengths", with_mode(0, w)});
  }
  {
    deepspec::data_options o;
    safetensors_writer w;
    // Layer 1 twice ("features.1" and "features.01"): a split that could not be saved again.
    if (!deepspec::encode_dataset(full, o, w).ok()
        || !w.add_bf16("features.01", {12, width}, full.features[0]).ok())
      std::abort();
    out.push_back({"data_bad_feature_layer_1_twice", with_mode(0, w)});
  }
  {
    deepspec::data_options o;
    safetensors_writer w;
    if (!deepspec::encode_dataset(plain, o, w).ok()
        || !w.add_i32("top_ids", {12, 2}, full.top_ids).ok())
      std::abort();
    out.push_back({"data_bad_top_ids_alone", with_mode(0, w)});
  }
  {
    deepspec::data_options o;
    safetensors_writer w;
    if (!deepspec::encode_dataset(plain, o, w).ok()
        || !w.add_f32("features.2", {12, 32}, std::span<const float>(full.features[0]).first(384))
                .ok())
      std::abort();
    out.push_back({"data_bad_feature_width_32", with_mode(0, w)});
  }

  // Drafter checkpoints (first byte 1).
  const drafter_weights<float> eagle = tiny_drafter(arch::eagle3);
  const drafter_weights<float> mtp = tiny_drafter(arch::mtp1);
  out.push_back({"ckpt_eagle3_tiny", drafter_seed(eagle, {{"note", "seed"}})});
  out.push_back({"ckpt_mtp1_tiny", drafter_seed(mtp)});
  out.push_back(
      {"ckpt_bad_format_tag", drafter_seed(eagle, {{"format", "specdec-deepspec-data"}})});
  out.push_back({"ckpt_bad_missing_q_proj",
                 drafter_seed(eagle, {}, deepspec::param_name(arch::eagle3, deepspec::p_wq))});
  out.push_back({"ckpt_bad_dim_0", drafter_seed(eagle, {{"dim", "0"}})});
  out.push_back(
      {"ckpt_bad_layers_empty_entry", drafter_seed(eagle, {{"target_layer_ids", "1,,2"}})});
  out.push_back({"ckpt_bad_heads_3", drafter_seed(eagle, {{"heads", "3"}})});
  out.push_back({"ckpt_bad_mtp1_two_layers", drafter_seed(mtp, {{"target_layer_ids", "4,5"}})});
  out.push_back({"ckpt_bad_arch", drafter_seed(eagle, {{"arch", "medusa"}})});
  drafter_weights<float> not_finite = eagle;
  not_finite.w[deepspec::p_down](2, 3) = std::numeric_limits<float>::quiet_NaN();
  out.push_back({"ckpt_bad_weight_nan", drafter_seed(not_finite)});
  drafter_weights<float> ffn = eagle;
  ffn.cfg.ffn = 10; // metadata 10, tensors of 12
  out.push_back({"ckpt_bad_ffn_lies", drafter_seed(ffn)});
  out.push_back(
      {"ckpt_leading_zeros", drafter_seed(eagle, {{"dim", "0008"}, {"target_layer_ids", "01,3"}})});
  // Block drafters (first byte 3).
  using deepspec::block_head;
  const auto markov = tiny_block(block_head::markov, 2, true);
  out.push_back({"block_dflash_tiny", block_seed(tiny_block(block_head::none, 0, false))});
  out.push_back({"block_dspark_markov_tiny", block_seed(markov)});
  out.push_back({"block_dspark_gated_tiny", block_seed(tiny_block(block_head::gated, 2, true))});
  out.push_back({"block_dspark_rnn_tiny", block_seed(tiny_block(block_head::rnn, 3, false))});
  out.push_back({"block_conf_only_tiny", block_seed(tiny_block(block_head::none, 0, true))});
  out.push_back({"block_bad_rank_lies", block_seed(markov, {{"markov_rank", "3"}})});
  out.push_back({"block_bad_kind_lies", block_seed(markov, {{"markov_head_type", "gated"}})});
  out.push_back({"block_bad_kind_unknown", block_seed(markov, {{"markov_head_type", "lstm"}})});
  out.push_back(
      {"block_bad_no_confidence", block_seed(markov, {{"enable_confidence_head", "False"}})});
  out.push_back({"block_bad_missing_w2", block_seed(markov, {}, "markov_head.markov_w2.weight")});
  out.push_back({"block_bad_missing_layer", block_seed(markov, {}, "layers.0.mlp.up_proj.weight")});
  out.push_back(
      {"block_bad_extra_head_tensor", block_seed(markov, {}, "", "markov_head.markov_w2.bias")});
  out.push_back({"block_bad_mask_token_16", block_seed(markov, {{"mask_token_id", "16"}})});
  out.push_back({"block_bad_block_size_0", block_seed(markov, {{"block_size", "0"}})});
  out.push_back(
      {"block_bad_head_nan", block_seed(markov, {}, "", "", "markov_head.markov_w1.weight")});
  out.push_back({"block_bad_backbone_nan", block_seed(markov, {}, "", "", "fc.weight")});
  return out;
}
