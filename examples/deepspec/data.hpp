// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Self-distillation data for the miniature DeepSpec: the target writes its own training
///        and held-out sets, and the on-disk format that holds them.
///
/// Prompts (DeepSpec regenerates the answers of a prompt set with the target; here the prompt set
/// is the target's own domain):
///  - "story" prompts: BOS alone, so the target writes a whole story;
///  - "opening" prompts: BOS and one of a fixed set of story openings (`openings()`).
/// Sequence i of a split alternates the two kinds and is generated with its own random stream,
/// keyed by (seed, split salt, i): the train and held-out sets are disjoint by seed, and the
/// whole file is a function of (model, seed, counts, sampling settings). Answers are sampled at
/// the stated temperature / top-k / top-p (DeepSpec regenerates Qwen3's answers at T 0.7, top-p
/// 0.8, top-k 20, the defaults here) and end at BOS (the end of a story) or at max_new tokens.
/// The loss mask is implied: every token after the prompt is supervised (the prompt is not).
///
/// On disk: one safetensors file (examples/deepspec/README in the project README, section
/// "DeepSpec in miniature"), tensors
///  - `tokens` I32 [N]: every sequence, concatenated;
///  - `offsets` I64 [S + 1]: sequence s is tokens[offsets[s] .. offsets[s+1]);
///  - `prompt_lengths` I32 [S]: the unsupervised prompt of each sequence (>= 1);
///  - optionally `features.<l>` F32 or BF16 [N, d]: the target's residual stream at layer l
///    (0: embedding; l: after l layers) at every token;
///  - optionally `top_ids` I32 [N, K] and `top_logits` F32 [N, K]: the target's K largest logits
///    at every token (row t predicts token t + 1), so training need not rerun the target;
/// and metadata `format` = "specdec-deepspec-data", `version` = "1", the split, seed and sampling
/// settings. load_dataset() (dataset_from() for a file parsed from memory) checks every size and id
/// against the file and the target.

#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/io/safetensors.hpp>
#include <specdec/propose/no_draft.hpp>
#include <specdec/sched/draft_length.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/rejection.hpp>

#include "deepspec/tagged_file.hpp"
#include "llama2c/model.hpp"
#include "llama2c/tokenizer.hpp"
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace deepspec {

/// @brief The fixed story openings of the "opening" prompts and of the evaluation's "openings"
///        set (text after BOS).
inline const std::vector<std::string>& openings() {
  static const std::vector<std::string> o{"Once upon a time, there was a little girl named",
                                          "One day, a boy named Tim went to the park",
                                          "Lily and her mom were in the kitchen",
                                          "There was a big dog who liked to",
                                          "The sun was shining and the birds",
                                          "Ben had a red ball. He",
                                          "Once upon a time, in a small house, there lived",
                                          "Sue wanted to play with her friend",
                                          "A little cat was sad because",
                                          "Mom said, \"Let's go to the store",
                                          "Tom and his dad went fishing",
                                          "The bird flew high in the sky and"};
  return o;
}

/// @brief How a split is generated.
struct data_options {
  std::int64_t sequences = 256; ///< sequences in the split
  std::int64_t max_new = 192;   ///< most generated tokens per sequence
  float temperature = 0.7f;     ///< answer sampling (DeepSpec's Qwen3 settings by default)
  int top_k = 20;               ///< 0: off
  float top_p = 0.8f;           ///< 1: off
  std::uint64_t seed = 42;      ///< the data seed
  bool heldout = false;         ///< the held-out split (another stream of the same seed)
  std::vector<std::int32_t> feature_layers; ///< layers to store (empty: none)
  bool bf16_features = true;                ///< store features as BF16 (else F32)
  int top_logits = 0;                       ///< K top logits to store per token (0: none)
  bool progress = true;                     ///< a progress line on stderr
};

/// @brief A split in memory.
struct dataset {
  std::vector<std::int32_t> tokens;         ///< concatenated
  std::vector<std::int64_t> offsets{0};     ///< [S + 1]
  std::vector<std::int32_t> prompt_lengths; ///< [S]
  std::vector<std::int32_t> feature_layers; ///< stored layers (may be empty)
  std::vector<std::vector<float>> features; ///< one [N x d] block per stored layer
  int top_k = 0;                            ///< K of top_ids / top_logits (0: none)
  std::vector<std::int32_t> top_ids;        ///< [N x K]
  std::vector<float> top_logits;            ///< [N x K]
  int dim = 0;                              ///< feature width d

  /// Number of sequences.
  [[nodiscard]] std::int64_t size() const noexcept {
    return static_cast<std::int64_t>(prompt_lengths.size());
  }
  /// Tokens of sequence s.
  [[nodiscard]] std::vector<std::int32_t> sequence(std::int64_t s) const {
    return {tokens.begin() + offsets[static_cast<std::size_t>(s)],
            tokens.begin() + offsets[static_cast<std::size_t>(s) + 1]};
  }
  /// Supervised (generated) tokens in the split.
  [[nodiscard]] std::int64_t supervised_tokens() const noexcept {
    std::int64_t n = 0;
    for (std::int64_t s = 0; s < size(); ++s)
      n += offsets[static_cast<std::size_t>(s) + 1] - offsets[static_cast<std::size_t>(s)]
           - prompt_lengths[static_cast<std::size_t>(s)];
    return n;
  }
};

/// The salt of a split's streams (train and held-out never share a stream).
inline std::uint64_t split_salt(bool heldout) {
  return heldout ? 0x68656c646f7574ull : 0x747261696e00ull;
}

/// @brief The prompt of sequence i of a split: BOS, plus an opening for odd i.
inline std::vector<specdec::token_id> prompt_of(const llama2c::tokenizer& tok, std::int64_t i) {
  if (i % 2 == 0)
    return {1};
  const auto& o = openings();
  return tok.encode(o[static_cast<std::size_t>(i / 2) % o.size()], true, false);
}

/// @brief Samples `max_new` tokens (stopping at BOS) after `prompt` with the target.
inline specdec::status sample_answer(llama2c::model& m,
                                     const std::vector<specdec::token_id>& prompt,
                                     const specdec::sampling::sampling_params& params,
                                     std::uint64_t seed,
                                     std::uint64_t request,
                                     std::int64_t max_new,
                                     std::vector<specdec::token_id>& out) {
  using namespace specdec;
  decode::decode_config cfg;
  cfg.max_new_tokens = max_new;
  cfg.params = params;
  cfg.seed = seed;
  cfg.request_id = request;
  cfg.max_draft = 0;
  cfg.end_tokens = {1};
  propose::no_drafter none;
  decode::decode_result r;
  status s{};
  if (params.greedy()) {
    decode::speculative_decoder dec(
        m, m.cache(), none, verify::greedy{}, sched::fixed_draft_length{0});
    s = dec.generate(prompt, cfg, r);
  } else {
    decode::speculative_decoder dec(
        m, m.cache(), none, verify::one_hot_rejection{}, sched::fixed_draft_length{0});
    s = dec.generate(prompt, cfg, r);
  }
  out = std::move(r.tokens);
  return s;
}

/// @brief Generates a split with the target (see the file comment).
/// @return the model's status; invalid_argument for bad options (a layer outside
///   [0, num_layers], K outside [0, vocab], counts below 1)
inline specdec::status generate_dataset(llama2c::model& m,
                                        const llama2c::tokenizer& tok,
                                        const data_options& o,
                                        dataset& out) {
  using namespace specdec;
  out = dataset{};
  if (o.sequences < 1 || o.max_new < 1 || o.top_logits < 0 || o.top_logits > m.vocab_size())
    return status{errc::invalid_argument};
  for (std::int32_t l : o.feature_layers)
    if (l < 0 || l > m.num_layers())
      return status{errc::invalid_argument};
  sampling::sampling_params p;
  p.temperature = o.temperature;
  p.top_k = o.top_k;
  p.top_p = o.top_p;
  if (p.validate() != errc::ok)
    return status{p.validate()};
  const auto t0 = std::chrono::steady_clock::now();
  const std::uint64_t salt = split_salt(o.heldout);
  std::vector<token_id> ans;
  for (std::int64_t i = 0; i < o.sequences; ++i) {
    const std::vector<token_id> prompt = prompt_of(tok, i);
    const std::int64_t room = m.seq_len() - static_cast<std::int64_t>(prompt.size());
    if (const status s = sample_answer(m,
                                       prompt,
                                       p,
                                       o.seed ^ salt,
                                       static_cast<std::uint64_t>(i),
                                       std::min(o.max_new, room),
                                       ans);
        !s.ok())
      return s;
    out.tokens.insert(out.tokens.end(), prompt.begin(), prompt.end());
    out.tokens.insert(out.tokens.end(), ans.begin(), ans.end());
    out.offsets.push_back(static_cast<std::int64_t>(out.tokens.size()));
    out.prompt_lengths.push_back(static_cast<std::int32_t>(prompt.size()));
    if (o.progress && ((i + 1) % 16 == 0 || i + 1 == o.sequences)) {
      const double sec =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr,
                   "\r[data] %s %lld/%lld sequences, %zu tokens, %.1f s",
                   o.heldout ? "held-out" : "train",
                   static_cast<long long>(i + 1),
                   static_cast<long long>(o.sequences),
                   out.tokens.size(),
                   sec);
      if (i + 1 == o.sequences)
        std::fprintf(stderr, "\n");
    }
  }
  // Optional target outputs: one feature pass per sequence.
  out.feature_layers = o.feature_layers;
  out.dim = static_cast<int>(m.hidden_size());
  out.top_k = o.top_logits;
  if (o.feature_layers.empty() && o.top_logits == 0)
    return status{};
  const index_t N = static_cast<index_t>(out.tokens.size());
  const index_t d = m.hidden_size();
  const index_t V = m.vocab_size();
  const index_t nl = static_cast<index_t>(o.feature_layers.size());
  out.features.assign(static_cast<std::size_t>(nl),
                      std::vector<float>(static_cast<std::size_t>(N * d)));
  out.top_ids.resize(static_cast<std::size_t>(N * o.top_logits));
  out.top_logits.resize(static_cast<std::size_t>(N * o.top_logits));
  std::vector<float> logits, feats;
  std::vector<std::int32_t> ids(static_cast<std::size_t>(V));
  for (std::int64_t s = 0; s < out.size(); ++s) {
    const index_t b = out.offsets[static_cast<std::size_t>(s)];
    const index_t L = out.offsets[static_cast<std::size_t>(s) + 1] - b;
    logits.resize(static_cast<std::size_t>(L * V));
    feats.resize(static_cast<std::size_t>(L * std::max<index_t>(1, nl) * d));
    m.reset();
    const feature_request f{{o.feature_layers.data(), nl}, {feats.data(), L, nl * d, nl * d}};
    if (const status st =
            m.score_features({0, {out.tokens.data() + b, L}, 0}, {logits.data(), L, V, V}, f);
        !st.ok())
      return st;
    for (index_t t = 0; t < L; ++t) {
      for (index_t l = 0; l < nl; ++l)
        std::copy_n(feats.data() + t * nl * d + l * d,
                    d,
                    out.features[static_cast<std::size_t>(l)].data() + (b + t) * d);
      if (o.top_logits > 0) {
        const float* row = logits.data() + t * V;
        for (index_t v = 0; v < V; ++v)
          ids[static_cast<std::size_t>(v)] = static_cast<std::int32_t>(v);
        std::partial_sort(ids.begin(),
                          ids.begin() + o.top_logits,
                          ids.end(),
                          [&](std::int32_t x, std::int32_t y) {
                            return row[x] > row[y] || (row[x] == row[y] && x < y);
                          });
        for (int k = 0; k < o.top_logits; ++k) {
          out.top_ids[static_cast<std::size_t>((b + t) * o.top_logits + k)] =
              ids[static_cast<std::size_t>(k)];
          out.top_logits[static_cast<std::size_t>((b + t) * o.top_logits + k)] =
              row[ids[static_cast<std::size_t>(k)]];
        }
      }
    }
  }
  m.reset();
  return status{};
}

/// @brief The safetensors form of a split, what save_dataset writes (see the file comment for
///        the layout): metadata and tensors added to `w` (features as BF16 or F32 per
///        `o.bf16_features`).
/// @return ok; the writer's status when a block's size does not match its shape (then `w` may
///   hold part of the split)
inline specdec::status
encode_dataset(const dataset& d, const data_options& o, specdec::io::safetensors_writer& w) {
  w.set_metadata("format", "specdec-deepspec-data");
  w.set_metadata("version", "1");
  w.set_metadata("split", o.heldout ? "heldout" : "train");
  w.set_metadata("seed", std::to_string(o.seed));
  w.set_metadata("temperature", std::to_string(o.temperature));
  w.set_metadata("top_k", std::to_string(o.top_k));
  w.set_metadata("top_p", std::to_string(o.top_p));
  w.set_metadata("max_new", std::to_string(o.max_new));
  const auto N = static_cast<std::int64_t>(d.tokens.size());
  const auto S = d.size();
  specdec::status s = w.add_i32("tokens", {N}, d.tokens);
  if (s.ok())
    s = w.add_i64("offsets", {S + 1}, d.offsets);
  if (s.ok())
    s = w.add_i32("prompt_lengths", {S}, d.prompt_lengths);
  for (std::size_t l = 0; s.ok() && l < d.feature_layers.size(); ++l) {
    const std::string name = "features." + std::to_string(d.feature_layers[l]);
    s = o.bf16_features ? w.add_bf16(name, {N, d.dim}, d.features[l])
                        : w.add_f32(name, {N, d.dim}, d.features[l]);
  }
  if (s.ok() && d.top_k > 0) {
    s = w.add_i32("top_ids", {N, d.top_k}, d.top_ids);
    if (s.ok())
      s = w.add_f32("top_logits", {N, d.top_k}, d.top_logits);
  }
  return s;
}

/// @brief Writes a split (encode_dataset, then the file).
/// @return encode_dataset's status (detail "cannot encode the dataset"), else the writer's
inline specdec::status save_dataset(const dataset& d,
                                    const data_options& o,
                                    const std::string& path,
                                    std::string* detail = nullptr) {
  specdec::io::safetensors_writer w;
  if (const specdec::status s = encode_dataset(d, o, w); !s.ok()) {
    if (detail != nullptr)
      *detail = "cannot encode the dataset";
    return s;
  }
  return w.write(path, detail);
}

/// @brief Validates a split held in a parsed safetensors file (what load_dataset does once the
///        file is read) for a target of `vocab` tokens, `dim` wide, with a context of `seq_len`.
///
/// Checks: the format tag (check_tag); offsets start at 0, rise by at least 2 and at most
/// seq_len per sequence, end at N; each prompt length in [1, sequence length); every token in
/// [0, vocab); feature blocks [N, dim] (F32, BF16, F16 or F64) named features.<l> with l a
/// decimal layer number >= 0 without leading zeros (at most 6 digits); top_ids / top_logits both
/// or neither, [N, K] with 1 <= K <= vocab and ids in [0, vocab); every feature and logit finite.
/// Other tensors are ignored. A split of no sequences (offsets [0], no tokens) is valid.
/// @param[in] f the file
/// @param[in] vocab the target's vocabulary
/// @param[in] dim the target's width (out.dim on success)
/// @param[in] seq_len the target's context
/// @param[out] out receives the split on success (features in data-offset order of the
///   file's tensors); unchanged on error
/// @param[in] name what `*detail` is prefixed with (the path)
/// @param[out] detail optional: "name: " and a one-line reason on error; cleared on success
/// @return ok; corrupt_data, shape_mismatch (a block of another shape) or unsupported (memory)
inline specdec::status dataset_from(const specdec::io::safetensors_file& f,
                                    std::int64_t vocab,
                                    std::int64_t dim,
                                    std::int64_t seq_len,
                                    dataset& out,
                                    const std::string& name,
                                    std::string* detail) {
  using specdec::errc;
  using specdec::status;
  auto fail = [&](errc c, const std::string& why) { return fail_with(c, name, why, detail); };
  if (const status s = check_tag(f, "specdec-deepspec-data", name, detail); !s.ok())
    return s;
  std::string why;
  dataset d;
  if (const status s = f.read_i32("tokens", {}, d.tokens, &why); !s.ok())
    return fail(s.code, why);
  if (const status s = f.read_i64("offsets", {}, d.offsets, &why); !s.ok())
    return fail(s.code, why);
  if (const status s = f.read_i32("prompt_lengths", {}, d.prompt_lengths, &why); !s.ok())
    return fail(s.code, why);
  const auto N = static_cast<std::int64_t>(d.tokens.size());
  const auto S = static_cast<std::int64_t>(d.prompt_lengths.size());
  if (static_cast<std::int64_t>(d.offsets.size()) != S + 1 || d.offsets[0] != 0
      || d.offsets.back() != N)
    return fail(errc::corrupt_data,
                "offsets must have S + 1 = " + std::to_string(S + 1)
                    + " entries from 0 to the token count " + std::to_string(N));
  for (std::int64_t s = 0; s < S; ++s) {
    // offsets[s] >= 0 here (they rise from 0), so b - a cannot overflow once b >= a.
    const std::int64_t a = d.offsets[static_cast<std::size_t>(s)];
    const std::int64_t b = d.offsets[static_cast<std::size_t>(s) + 1];
    if (b < a || b - a < 2 || b - a > seq_len)
      return fail(errc::corrupt_data,
                  "sequence " + std::to_string(s) + " runs from offset " + std::to_string(a)
                      + " to " + std::to_string(b) + " (must be 2 .. " + std::to_string(seq_len)
                      + " tokens)");
    const std::int64_t len = b - a;
    const std::int32_t p = d.prompt_lengths[static_cast<std::size_t>(s)];
    if (p < 1 || p >= len)
      return fail(errc::corrupt_data,
                  "sequence " + std::to_string(s) + ": prompt length " + std::to_string(p)
                      + " outside [1, " + std::to_string(len) + ")");
  }
  for (std::int64_t t = 0; t < N; ++t)
    if (d.tokens[static_cast<std::size_t>(t)] < 0 || d.tokens[static_cast<std::size_t>(t)] >= vocab)
      return fail(errc::corrupt_data,
                  "token " + std::to_string(t) + " = "
                      + std::to_string(d.tokens[static_cast<std::size_t>(t)])
                      + " is outside the vocabulary of " + std::to_string(vocab));
  d.dim = static_cast<int>(dim);
  for (const auto& ti : f.tensors()) {
    if (ti.name.rfind("features.", 0) != 0)
      continue;
    const std::string num = ti.name.substr(9);
    // Canonical numbers only: "features.1" and "features.01" would be the same layer twice.
    if (num.empty() || num.size() > 6 || num.find_first_not_of("0123456789") != std::string::npos
        || (num.size() > 1 && num[0] == '0'))
      return fail(errc::corrupt_data,
                  "bad feature tensor name " + specdec::io::detail::st_quote(ti.name));
    d.feature_layers.push_back(std::stoi(num));
    d.features.emplace_back();
    const std::int64_t shape[2] = {N, dim};
    if (const status s = f.read_f32(ti.name, shape, d.features.back(), &why); !s.ok())
      return fail(s.code, why);
    for (float x : d.features.back())
      if (!std::isfinite(x))
        return fail(errc::corrupt_data, ti.name + " holds a NaN or infinite value");
  }
  const bool ids = f.find("top_ids") != nullptr;
  if (ids != (f.find("top_logits") != nullptr))
    return fail(errc::corrupt_data, "top_ids and top_logits come together");
  if (ids) {
    const auto* ti = f.find("top_ids");
    if (ti->shape.size() != 2 || ti->shape[0] != N || ti->shape[1] < 1 || ti->shape[1] > vocab)
      return fail(errc::corrupt_data, "top_ids must be [N, K] with 1 <= K <= vocab");
    d.top_k = static_cast<int>(ti->shape[1]);
    const std::int64_t shape[2] = {N, d.top_k};
    if (const status s = f.read_i32("top_ids", shape, d.top_ids, &why); !s.ok())
      return fail(s.code, why);
    if (const status s = f.read_f32("top_logits", shape, d.top_logits, &why); !s.ok())
      return fail(s.code, why);
    for (std::int32_t v : d.top_ids)
      if (v < 0 || v >= vocab)
        return fail(errc::corrupt_data, "top_ids holds an id outside the vocabulary");
    for (float x : d.top_logits)
      if (!std::isfinite(x))
        return fail(errc::corrupt_data, "top_logits holds a NaN or infinite value");
  }
  out = std::move(d);
  if (detail != nullptr)
    detail->clear();
  return status{};
}

/// @brief Reads and validates a split written by save_dataset: loads `path` (open_tagged), then
///        dataset_from (whose checks and outputs it has; `detail` is prefixed with the path).
/// @return io_error / corrupt_data / shape_mismatch / unsupported with a one-line `detail`
inline specdec::status load_dataset(const std::string& path,
                                    std::int64_t vocab,
                                    std::int64_t dim,
                                    std::int64_t seq_len,
                                    dataset& out,
                                    std::string* detail = nullptr) {
  specdec::io::safetensors_file f;
  if (const specdec::status s = open_tagged(path, "specdec-deepspec-data", f, detail); !s.ok())
    return s;
  return dataset_from(f, vocab, dim, seq_len, out, path, detail);
}

} // namespace deepspec
