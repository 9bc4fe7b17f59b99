// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Drafter checkpoints as safetensors, with the tensor names the field uses.
///
/// EAGLE-3 (DeepSpec's / SpecForge's names): `fc.weight` [d, m*d],
/// `layers.0.{hidden_norm,input_layernorm,post_attention_layernorm}.weight` [d],
/// `layers.0.self_attn.{q,k,v}_proj.weight` [*, 2d], `layers.0.self_attn.o_proj.weight`,
/// `layers.0.mlp.{gate,up,down}_proj.weight`, `norm.weight`. MTP-1 (DeepSeek-V3's module names):
/// `eh_proj.weight` [d, 2d], `enorm.weight`, `hnorm.weight`, `layers.0.input_layernorm.weight`,
/// the same attention and MLP names, `shared_head.norm.weight`. Both also carry the frozen
/// `embed_tokens.weight` and `lm_head.weight` copied from the target, as DeepSpec saves them
/// (ignored on load: the target's own are used). Metadata: `format` = "specdec-drafter",
/// `arch` (eagle3 | mtp1), `architecture` (the field's class name), `dim`, `heads`, `kv_heads`,
/// `ffn`, `vocab`, `target_layer_ids` ("1,3,4"), plus free-form training facts.

#include <specdec/core/status.hpp>
#include <specdec/io/safetensors.hpp>

#include "deepspec/drafter.hpp"
#include "deepspec/tagged_file.hpp"
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace deepspec {

/// @brief The safetensors form of a drafter, what save_drafter writes: the metadata (the shape,
///        `extra`) and every weight, with the frozen embedding E as embed_tokens / lm_head, added
///        to `w`.
/// @return ok, or the writer's status (then `w` may hold part of the drafter)
inline specdec::status encode_drafter(const drafter_weights<float>& W,
                                      const mat<float>& E,
                                      const std::map<std::string, std::string>& extra,
                                      specdec::io::safetensors_writer& w) {
  const drafter_config& c = W.cfg;
  w.set_metadata("format", "specdec-drafter");
  w.set_metadata("arch", arch_name(c.kind));
  w.set_metadata("architecture",
                 c.kind == arch::eagle3 ? "Eagle3DraftModel" : "DeepseekV3MTPModule");
  w.set_metadata("dim", std::to_string(c.dim));
  w.set_metadata("heads", std::to_string(c.heads));
  w.set_metadata("kv_heads", std::to_string(c.kv_heads));
  w.set_metadata("ffn", std::to_string(c.ffn));
  w.set_metadata("vocab", std::to_string(c.vocab));
  std::string ids;
  for (std::size_t i = 0; i < c.layers.size(); ++i) {
    if (i > 0)
      ids += ',';
    ids += std::to_string(c.layers[i]);
  }
  w.set_metadata("target_layer_ids", ids);
  for (const auto& [k, v] : extra)
    w.set_metadata(k, v);
  for (int p = 0; p < p_count; ++p) {
    if (W.w[p].size() == 0)
      continue;
    std::vector<std::int64_t> shape;
    if (W.w[p].rows() == 1 && is_norm(p))
      shape = {W.w[p].cols()};
    else
      shape = {W.w[p].rows(), W.w[p].cols()};
    const std::span<const float> data{W.w[p].data(), static_cast<std::size_t>(W.w[p].size())};
    if (const specdec::status s = w.add_f32(param_name(c.kind, p), shape, data); !s.ok())
      return s;
  }
  const std::span<const float> e{E.data(), static_cast<std::size_t>(E.size())};
  if (const specdec::status s = w.add_f32("embed_tokens.weight", {E.rows(), E.cols()}, e); !s.ok())
    return s;
  return w.add_f32("lm_head.weight", {E.rows(), E.cols()}, e);
}

/// @brief Writes the weights (and the frozen embedding E as embed_tokens / lm_head) to `path`,
///        with `extra` metadata (encode_drafter, then the file). @return the writer's status
inline specdec::status save_drafter(const drafter_weights<float>& W,
                                    const mat<float>& E,
                                    const std::string& path,
                                    const std::map<std::string, std::string>& extra = {},
                                    std::string* detail = nullptr) {
  specdec::io::safetensors_writer w;
  if (const specdec::status s = encode_drafter(W, E, extra, w); !s.ok())
    return s;
  return w.write(path, detail);
}

/// Most width / heads / vocabulary a checkpoint may declare (a hostile header cannot make the
/// loader allocate more than a few such matrices).
inline constexpr int max_checkpoint_width = 1 << 14;

/// @brief Reads a drafter held in a parsed safetensors file (what load_drafter does once the file
///        is read).
///
/// Checks: the format tag (check_tag); metadata `arch` eagle3 or mtp1; `dim`, `heads`,
/// `kv_heads`, `ffn`, `vocab` decimal integers (at most 6 digits) in [1, max_checkpoint_width];
/// `target_layer_ids` comma-separated decimal layers (at most 64 characters, 4 digits each); the
/// shape they give validates (drafter_config::validate); every weight slot of that shape is present
/// under its param_name with exactly the shape drafter_weights::shape gives (a norm as a vector
/// [d]), of a floating-point dtype, every value finite. Other tensors (embed_tokens, lm_head) and
/// metadata are ignored.
/// @param[in] f the file
/// @param[out] out receives the weights on success (absent slots 0 x 0); unchanged on error
/// @param[in] name what `*detail` is prefixed with (the path)
/// @param[out] detail optional: "name: " and a one-line reason on error; cleared on success
/// @return ok; corrupt_data, shape_mismatch (a tensor of another shape) or unsupported (memory)
inline specdec::status drafter_from(const specdec::io::safetensors_file& f,
                                    drafter_weights<float>& out,
                                    const std::string& name,
                                    std::string* detail) {
  using specdec::errc;
  using specdec::status;
  auto fail = [&](errc c, const std::string& why) { return fail_with(c, name, why, detail); };
  if (const status s = check_tag(f, "specdec-drafter", name, detail); !s.ok())
    return s;
  std::string why;
  const auto& md = f.metadata();
  auto get = [&](const char* key) -> const std::string* {
    const auto it = md.find(key);
    return it == md.end() ? nullptr : &it->second;
  };
  auto int_of = [&](const char* key, int& v) {
    const std::string* s = get(key);
    if (s == nullptr || s->empty() || s->size() > 6
        || s->find_first_not_of("0123456789") != std::string::npos)
      return false;
    v = std::stoi(*s);
    return v >= 1 && v <= max_checkpoint_width;
  };
  drafter_config c;
  const std::string* a = get("arch");
  if (a == nullptr || (*a != "eagle3" && *a != "mtp1"))
    return fail(errc::corrupt_data, "metadata 'arch' must be eagle3 or mtp1");
  c.kind = *a == "eagle3" ? arch::eagle3 : arch::mtp1;
  if (!int_of("dim", c.dim) || !int_of("heads", c.heads) || !int_of("kv_heads", c.kv_heads)
      || !int_of("ffn", c.ffn) || !int_of("vocab", c.vocab))
    return fail(errc::corrupt_data,
                "metadata dim / heads / kv_heads / ffn / vocab must be integers in [1, "
                    + std::to_string(max_checkpoint_width) + "]");
  c.layers.clear();
  const std::string* ids = get("target_layer_ids");
  if (ids == nullptr || ids->empty() || ids->size() > 64)
    return fail(errc::corrupt_data, "metadata 'target_layer_ids' missing or too long");
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
  drafter_weights<float> W;
  W.cfg = c;
  for (int p = 0; p < p_count; ++p) {
    const auto sh = W.shape(p);
    if (sh[0] == 0)
      continue;
    const std::string tensor = param_name(c.kind, p);
    std::vector<std::int64_t> want;
    if (is_norm(p))
      want = {sh[1]};
    else
      want = {sh[0], sh[1]};
    std::vector<float> v;
    if (const status s = f.read_f32(tensor, want, v, &why); !s.ok())
      return fail(s.code, why);
    for (float x : v)
      if (!std::isfinite(x))
        return fail(errc::corrupt_data, tensor + " holds a NaN or infinite value");
    W.w[p] = Eigen::Map<const mat<float>>(v.data(), sh[0], sh[1]);
  }
  out = std::move(W);
  if (detail != nullptr)
    detail->clear();
  return status{};
}

/// @brief Reads a drafter written by save_drafter (or laid out the same way): loads `path`
///        (open_tagged), then drafter_from (whose checks and outputs it has; `detail` is prefixed
///        with the path).
/// @return io_error / corrupt_data / shape_mismatch / unsupported with a one-line `detail`
inline specdec::status
load_drafter(const std::string& path, drafter_weights<float>& out, std::string* detail = nullptr) {
  specdec::io::safetensors_file f;
  if (const specdec::status s = open_tagged(path, "specdec-drafter", f, detail); !s.ok())
    return s;
  return drafter_from(f, out, path, detail);
}

} // namespace deepspec
