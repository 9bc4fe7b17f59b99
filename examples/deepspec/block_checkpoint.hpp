// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Block drafter (DFlash / DSpark) checkpoints as safetensors in DeepSpec's layout.
///
/// The backbone's tensors carry DeepSpec's names (`fc.weight` [d, m*d], `hidden_norm.weight`,
/// `layers.{i}.input_layernorm.weight`, `layers.{i}.self_attn.{q,k,v,o}_proj.weight`,
/// `layers.{i}.post_attention_layernorm.weight`, `layers.{i}.mlp.{gate,up,down}_proj.weight`,
/// `norm.weight`, plus the frozen `embed_tokens.weight` / `lm_head.weight`, ignored on load). The
/// heads are written and read by the library (specdec/propose/semi_ar_heads_safetensors.hpp:
/// `markov_head.*`, `confidence_head.*`), so a file of ours is a DeepSpec-layout file and the
/// heads of a DeepSpec file load through the same code. Metadata: `format` =
/// "specdec-block-drafter", DeepSpec's config fields `block_size`, `mask_token_id`,
/// `target_layer_ids`, `markov_rank`, `markov_head_type`, `enable_confidence_head`,
/// `num_draft_layers`, and the shape (`dim`, `heads`, `kv_heads`, `ffn`, `vocab`).

#include <specdec/core/status.hpp>
#include <specdec/io/safetensors.hpp>
#include <specdec/propose/semi_ar_heads_safetensors.hpp>

#include "deepspec/block_drafter.hpp"
#include "deepspec/checkpoint.hpp"
#include "deepspec/tagged_file.hpp"
#include <map>
#include <string>
#include <vector>

namespace deepspec {

/// True for a head slot (written and read through the library's DeepSpec head I/O).
inline bool block_head_slot(int p) {
  return p == bg_w1 || p == bg_w2 || p == bg_proj_w || p == bg_proj_b || p == bg_conf_w
         || p == bg_conf_b;
}

/// @brief The safetensors form of a block drafter (see the file comment), added to `w`, with
///        `extra` metadata and the frozen embedding E as embed_tokens / lm_head.
/// @return the writer's or the head writer's status (`detail` says why)
inline specdec::status encode_block_drafter(const block_weights<float>& W,
                                            const mat<float>& E,
                                            const std::map<std::string, std::string>& extra,
                                            specdec::io::safetensors_writer& w,
                                            std::string* detail = nullptr) {
  const block_config& c = W.cfg;
  w.set_metadata("format", "specdec-block-drafter");
  w.set_metadata("architecture", "LlamaDSparkModel");
  w.set_metadata("dim", std::to_string(c.dim));
  w.set_metadata("heads", std::to_string(c.heads));
  w.set_metadata("kv_heads", std::to_string(c.kv_heads));
  w.set_metadata("ffn", std::to_string(c.ffn));
  w.set_metadata("vocab", std::to_string(c.vocab));
  w.set_metadata("num_draft_layers", std::to_string(c.n_layers));
  w.set_metadata("block_size", std::to_string(c.block));
  w.set_metadata("mask_token_id", std::to_string(c.mask_token));
  w.set_metadata("markov_rank", std::to_string(c.r()));
  w.set_metadata("markov_head_type",
                 c.head == block_head::markov ? "vanilla" : block_head_name(c.head));
  w.set_metadata("enable_confidence_head", c.confidence ? "True" : "False");
  std::string ids;
  for (std::size_t i = 0; i < c.layers.size(); ++i) {
    if (i > 0)
      ids += ',';
    ids += std::to_string(c.layers[i]);
  }
  w.set_metadata("target_layer_ids", ids);
  for (const auto& [k, v] : extra)
    w.set_metadata(k, v);
  for (int p = 0; p < W.slots(); ++p) {
    if (block_head_slot(p) || W[p].size() == 0)
      continue;
    std::vector<std::int64_t> shape;
    if (block_weights<float>::norm_slot(p))
      shape = {W[p].cols()};
    else
      shape = {W[p].rows(), W[p].cols()};
    if (const specdec::status s =
            w.add_f32(W.name(p), shape, {W[p].data(), static_cast<std::size_t>(W[p].size())});
        !s.ok())
      return s;
  }
  const auto head = to_sequential_head(W);
  const auto conf = to_confidence_head(W);
  if (head.kind != specdec::propose::head_kind::none || conf)
    if (const specdec::status s =
            specdec::propose::save_deepspec_heads(w, head, conf ? &*conf : nullptr, detail);
        !s.ok())
      return s;
  const std::span<const float> e{E.data(), static_cast<std::size_t>(E.size())};
  if (const specdec::status s = w.add_f32("embed_tokens.weight", {E.rows(), E.cols()}, e); !s.ok())
    return s;
  return w.add_f32("lm_head.weight", {E.rows(), E.cols()}, e);
}

/// @brief Writes a block drafter to `path` (encode_block_drafter, then the file).
/// @return the writer's or the head writer's status (`detail` says why)
inline specdec::status save_block_drafter(const block_weights<float>& W,
                                          const mat<float>& E,
                                          const std::string& path,
                                          const std::map<std::string, std::string>& extra = {},
                                          std::string* detail = nullptr) {
  specdec::io::safetensors_writer w;
  if (const specdec::status s = encode_block_drafter(W, E, extra, w, detail); !s.ok())
    return s;
  return w.write(path, detail);
}

/// @brief Reads a block drafter held in a parsed safetensors file (what load_block_drafter does
///        once the file is read).
///
/// Checks: the format tag; integer metadata (at most 6 digits) in [1, max_checkpoint_width]
/// (markov_rank and mask_token_id may be 0), num_draft_layers and block_size at most 64; the
/// layer list (comma-separated, at most 64 characters, 4 digits each); a known markov_head_type;
/// the shape validates; every backbone tensor present with its exact shape and finite values;
/// the heads through specdec::propose::load_deepspec_heads, whose kind, rank, vocabulary and
/// confidence head must agree with the metadata. Other tensors are ignored.
/// @param[in] f the file
/// @param[out] out receives the weights on success; unchanged on error
/// @param[in] name what `*detail` is prefixed with (the path)
/// @param[out] detail optional: "name: " and a one-line reason on error; cleared on success
/// @return ok; corrupt_data, shape_mismatch or unsupported (a head tensor our heads cannot hold)
inline specdec::status block_drafter_from(const specdec::io::safetensors_file& f,
                                          block_weights<float>& out,
                                          const std::string& name,
                                          std::string* detail) {
  using specdec::errc;
  using specdec::status;
  auto fail = [&](errc c, const std::string& why) { return fail_with(c, name, why, detail); };
  if (const status s = check_tag(f, "specdec-block-drafter", name, detail); !s.ok())
    return s;
  const auto& md = f.metadata();
  auto get = [&](const char* key) -> const std::string* {
    const auto it = md.find(key);
    return it == md.end() ? nullptr : &it->second;
  };
  auto int_of = [&](const char* key, int& v, int lo) {
    const std::string* s = get(key);
    if (s == nullptr || s->empty() || s->size() > 6
        || s->find_first_not_of("0123456789") != std::string::npos)
      return false;
    v = std::stoi(*s);
    return v >= lo && v <= max_checkpoint_width;
  };
  block_config c;
  if (!int_of("dim", c.dim, 1) || !int_of("heads", c.heads, 1) || !int_of("kv_heads", c.kv_heads, 1)
      || !int_of("ffn", c.ffn, 1) || !int_of("vocab", c.vocab, 1)
      || !int_of("num_draft_layers", c.n_layers, 1) || !int_of("block_size", c.block, 1)
      || !int_of("mask_token_id", c.mask_token, 0) || !int_of("markov_rank", c.rank, 0))
    return fail(errc::corrupt_data, "shape metadata missing or not integers in range");
  if (c.n_layers > 64 || c.block > 64)
    return fail(errc::corrupt_data, "num_draft_layers and block_size must be at most 64");
  const std::string* kind = get("markov_head_type");
  const std::string* conf = get("enable_confidence_head");
  const std::string* ids = get("target_layer_ids");
  if (kind == nullptr || conf == nullptr || ids == nullptr || ids->empty() || ids->size() > 64)
    return fail(errc::corrupt_data, "markov_head_type / enable_confidence_head / target_layer_ids");
  c.head = c.rank == 0          ? block_head::none
           : *kind == "vanilla" ? block_head::markov
           : *kind == "gated"   ? block_head::gated
           : *kind == "rnn"     ? block_head::rnn
                                : block_head::none;
  if (c.rank > 0 && c.head == block_head::none)
    return fail(errc::corrupt_data, "markov_head_type must be vanilla, gated or rnn");
  c.confidence = *conf == "True" || *conf == "true";
  c.layers.clear();
  std::size_t at = 0;
  while (at <= ids->size()) {
    const std::size_t comma = std::min(ids->find(',', at), ids->size());
    const std::string num = ids->substr(at, comma - at);
    if (num.empty() || num.size() > 4 || num.find_first_not_of("0123456789") != std::string::npos)
      return fail(errc::corrupt_data, "metadata 'target_layer_ids' must be comma-separated layers");
    c.layers.push_back(std::stoi(num));
    at = comma + 1;
  }
  if (!c.validate().ok())
    return fail(errc::corrupt_data, "the metadata describe an invalid drafter shape");
  block_weights<float> W;
  W.cfg = c;
  W.w.assign(static_cast<std::size_t>(W.slots()), mat<float>{});
  std::string why;
  for (int p = 0; p < W.slots(); ++p) {
    if (block_head_slot(p))
      continue;
    const auto sh = W.shape(p);
    const std::vector<std::int64_t> want = block_weights<float>::norm_slot(p)
                                               ? std::vector<std::int64_t>{sh[1]}
                                               : std::vector<std::int64_t>{sh[0], sh[1]};
    std::vector<float> v;
    if (const status s = f.read_f32(W.name(p), want, v, &why); !s.ok())
      return fail(s.code, why);
    for (float x : v)
      if (!std::isfinite(x))
        return fail(errc::corrupt_data, W.name(p) + " holds a NaN or infinite value");
    W.w[static_cast<std::size_t>(p)] = Eigen::Map<const mat<float>>(v.data(), sh[0], sh[1]);
  }
  specdec::propose::sequential_head<float> head;
  std::optional<specdec::propose::confidence_head<float>> ch;
  specdec::propose::deepspec_heads_options ho;
  ho.hidden = c.dim;
  if (const status s = specdec::propose::load_deepspec_heads(f, head, ch, &why, ho); !s.ok())
    return fail(s.code == errc::invalid_value ? errc::corrupt_data : s.code, why);
  const int r = c.r();
  using specdec::propose::head_kind;
  const head_kind want = c.head == block_head::markov  ? head_kind::markov
                         : c.head == block_head::gated ? head_kind::gated
                         : c.head == block_head::rnn   ? head_kind::rnn
                                                       : head_kind::none;
  if (head.kind != want || head.rank != r || ch.has_value() != c.confidence
      || (r > 0 && head.vocab != c.vocab)
      || (ch && (ch->hidden != c.dim || ch->with_markov != (r > 0))))
    return fail(errc::shape_mismatch, "the heads disagree with the metadata");
  for (int p : {bg_w1, bg_w2, bg_proj_w, bg_proj_b, bg_conf_w, bg_conf_b}) {
    const auto sh = W.shape(p);
    W.w[static_cast<std::size_t>(p)].resize(sh[0], sh[1]);
  }
  auto put = [&](int p, const std::vector<float>& v) {
    if (static_cast<idx>(v.size()) == W[p].size())
      std::copy(v.begin(), v.end(), W.w[static_cast<std::size_t>(p)].data());
  };
  if (r > 0) {
    put(bg_w1, head.w1);
    put(bg_w2, head.w2);
    put(bg_proj_w, head.proj_w);
    put(bg_proj_b, head.proj_b);
  }
  if (ch) {
    put(bg_conf_w, ch->w);
    W.w[bg_conf_b](0, 0) = ch->bias;
  }
  out = std::move(W);
  if (detail != nullptr)
    detail->clear();
  return status{};
}

/// @brief Reads a block drafter written by save_block_drafter (or laid out the same way): loads
///        `path` (open_tagged), then block_drafter_from (its checks and outputs; `detail` is
///        prefixed with the path).
/// @return io_error / corrupt_data / shape_mismatch / unsupported with a one-line `detail`
inline specdec::status load_block_drafter(const std::string& path,
                                          block_weights<float>& out,
                                          std::string* detail = nullptr) {
  specdec::io::safetensors_file f;
  if (const specdec::status s = open_tagged(path, "specdec-block-drafter", f, detail); !s.ok())
    return s;
  return block_drafter_from(f, out, path, detail);
}

} // namespace deepspec
