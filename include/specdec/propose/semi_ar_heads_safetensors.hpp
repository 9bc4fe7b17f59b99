// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief DSpark's sequential head and confidence head (propose/semi_ar_heads.hpp) read from and
///        written to safetensors files laid out as DeepSeek's DeepSpec saves them.
///
/// DeepSpec (`modeling/dspark/markov_head.py`, `common.py`) names the head parameters
/// `markov_head.*` and `confidence_head.*`, next to the backbone's (`embed_tokens.weight`,
/// `layers.{i}.*`, `norm.weight`, `lm_head.weight`, ...), which these functions ignore. Every
/// tensor maps onto our layout as it is, row-major, without a transpose or a reordering (nn.Linear
/// stores its weight as [out, in], which is our row-per-output layout):
/// - `markov_head.markov_w1.weight` [V, r] -> sequential_head::w1 [V, r]. An nn.Embedding: row t is
///   e = W1[t] for the previous token t.
/// - `markov_head.markov_w2.weight` [V, r] -> sequential_head::w2 [V, r]. nn.Linear(r -> V, no
///   bias): B[v] = row v . coef.
/// - `markov_head.gate_proj.weight` [r, d + r] -> proj_w of a gated head, [r, d + r].
///   nn.Linear(d + r -> r) over [h_k ; e]: columns [0, d) multiply h_k, columns [d, d + r) e.
/// - `markov_head.gate_proj.bias` [r] -> proj_b of a gated head, [r].
/// - `markov_head.joint_proj.weight` [3r, 2r + d] -> proj_w of an rnn head, [3r, 2r + d].
///   nn.Linear(2r + d -> 3r) over z = [s_{k-1} ; e ; h_k]: columns [0, r) multiply s_{k-1},
///   [r, 2r) e, [2r, 2r + d) h_k; rows [0, r) are the gate chunk, [r, 2r) the candidate chunk,
///   [2r, 3r) the output chunk (the order in which DeepSpec splits the output in three).
/// - `markov_head.joint_proj.bias` [3r] -> proj_b of an rnn head, [3r], the same three chunks.
/// - `confidence_head.proj.weight` [1, d + r] (or [1, d] without the Markov feature) ->
///   confidence_head::w [d + r] (or [d]): the single row of nn.Linear(d + r -> 1) over
///   [h_k ; W1[x_{k-1}]], the h_k part first.
/// - `confidence_head.proj.bias` [1] -> confidence_head::bias, a float.
///
/// The kind follows from the tensors present: `markov_head.gate_proj.*` -> gated,
/// `markov_head.joint_proj.*` -> rnn, only w1 and w2 -> markov, no `markov_head.*` tensor at all ->
/// none (DeepSpec's "DFlash" is the DSpark model with r = 0 and no Markov head). The confidence
/// head is loaded when `confidence_head.*` tensors are present.
///
/// What our heads cannot represent is refused with errc::unsupported and a detail naming the
/// tensor, never dropped: any `markov_head.*` or `confidence_head.*` tensor outside the list above
/// for the inferred kind (e.g. a `markov_head.markov_w2.bias`, which sequential_head has no field
/// for, or an extra layer). The converse gaps, what DeepSpec's layout cannot hold: the `hidden` of
/// a markov head (unused by its math) is not stored (it loads as the confidence head's d, else
/// deepspec_heads_options::hidden, else 0), nor is the `vocab` of a none head (it loads as 0).
///
/// Whether the confidence head reads e (DeepSpec's config field `confidence_head_with_markov`) is
/// not a tensor. It comes, in this order, from deepspec_heads_options::confidence_with_markov; from
/// the file's `__metadata__` key `confidence_head_with_markov` ("True"/"False", which
/// save_deepspec_heads writes); False for a none head; from the width when d is known (a gated or
/// rnn head, or deepspec_heads_options::hidden): [1, d + r] reads e, [1, d] does not; else
/// DeepSpec's default, True (a markov head without a hint: d is unknown, so the width cannot tell).

#include <specdec/config.hpp>

#include <specdec/core/dtype.hpp>
#include <specdec/core/math.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/io/safetensors.hpp>
#include <specdec/propose/semi_ar_heads.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace propose {

/// @brief The `__metadata__` key that says whether the confidence head reads e = w1[x_{k-1}]
///        (DeepSpec's config field of the same name); its values are "True" and "False".
inline constexpr std::string_view deepspec_with_markov_key = "confidence_head_with_markov";

/// @brief Options of load_deepspec_heads.
struct deepspec_heads_options {
  /// Prepended to every tensor name, e.g. "model." for a checkpoint whose draft module is
  /// nested; empty by default (DeepSpec's own names).
  std::string prefix;
  /// Whether the confidence head reads e; std::nullopt infers it (see the file comment). When
  /// set it overrides the file's metadata, and the width must match it.
  std::optional<bool> confidence_with_markov;
  /// The backbone's hidden size d when the caller knows it (0: unknown). Checked against the
  /// gated / rnn projection and the confidence head's width; given to a markov or none head
  /// loaded without a confidence head.
  index_t hidden = 0;
  /// Limits for the path overload's safetensors reader.
  io::load_limits limits;
};

namespace detail {

/// The DeepSpec tensor names under a prefix.
struct ds_names {
  std::string mh, ch; // the family prefixes "markov_head." and "confidence_head."
  std::string w1, w2, gate_w, gate_b, joint_w, joint_b, conf_w, conf_b;
  explicit ds_names(std::string_view prefix)
      : mh(std::string(prefix) + "markov_head.")
      , ch(std::string(prefix) + "confidence_head.")
      , w1(mh + "markov_w1.weight")
      , w2(mh + "markov_w2.weight")
      , gate_w(mh + "gate_proj.weight")
      , gate_b(mh + "gate_proj.bias")
      , joint_w(mh + "joint_proj.weight")
      , joint_b(mh + "joint_proj.bias")
      , conf_w(ch + "proj.weight")
      , conf_b(ch + "proj.bias") {}
};

inline bool ds_starts_with(std::string_view s, std::string_view p) noexcept {
  return s.size() >= p.size() && s.substr(0, p.size()) == p;
}

inline std::string ds_q(std::string_view name) {
  return io::detail::st_quote(name);
}

inline std::string ds_shape(const std::vector<std::int64_t>& s) {
  return io::detail::st_shape_string(s);
}

template <class W>
inline constexpr bool ds_weight_type = std::is_same_v<W, float> || std::is_same_v<W, bfloat16>;

/// Reads tensor `name` (shape already checked) as W: F32 / F16 / BF16 (F64) through read_f32,
/// then every value finite, also after rounding to W.
template <class W>
status ds_read(const io::safetensors_file& f,
               const std::string& name,
               const std::vector<std::int64_t>& shape,
               std::vector<W>& out,
               std::string& why) {
  std::vector<float> v;
  std::string d;
  if (const status s = f.read_f32(name, shape, v, &d); !s.ok())
    return io::detail::st_fail(why, s.code, d);
  std::vector<W> w(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!::specdec::detail::is_finite(v[i]))
      return io::detail::st_fail(why,
                                 errc::invalid_value,
                                 "tensor " + ds_q(name) + " element " + std::to_string(i) + " is "
                                     + (::specdec::detail::is_nan(v[i]) ? "NaN" : "infinite"));
    w[i] = dtype_traits<W>::from_float(v[i]);
    if (!::specdec::detail::is_finite(dtype_traits<W>::to_float(w[i])))
      return io::detail::st_fail(why,
                                 errc::invalid_value,
                                 "tensor " + ds_q(name) + " element " + std::to_string(i) + " = "
                                     + std::to_string(v[i]) + " overflows "
                                     + dtype_traits<W>::name);
  }
  out = std::move(w);
  return status{};
}

/// Adds `v` as F32 (W = float) or BF16 (W = bfloat16, exact).
template <class W>
status ds_put(io::safetensors_writer& out,
              const std::string& name,
              std::vector<std::int64_t> shape,
              const std::vector<W>& v,
              std::string& why) {
  status s;
  if constexpr (std::is_same_v<W, float>) {
    s = out.add_f32(name, std::move(shape), std::span<const float>(v));
  } else {
    std::vector<float> f(v.size());
    for (std::size_t i = 0; i < v.size(); ++i)
      f[i] = dtype_traits<W>::to_float(v[i]);
    s = out.add_bf16(name, std::move(shape), std::span<const float>(f));
  }
  if (!s.ok())
    return io::detail::st_fail(
        why, s.code, "cannot add tensor " + ds_q(name) + ": " + std::string(s.message()));
  return status{};
}

} // namespace detail

/// @brief Loads a sequential head and an optional confidence head from a safetensors file in
///        DeepSpec's layout (mapping and inference rules: see the file comment).
///
/// Every check runs before anything is read: the names (kind, unsupported tensors), then the
/// shapes, which must agree on V, r and d across tensors, then the dtypes and values. Tensors
/// outside `markov_head.*` and `confidence_head.*` (under the prefix) are ignored, whatever
/// their dtype. A loaded markov head gets the confidence head's d (else options.hidden) as its
/// unused `hidden`; a none head has vocab 0 and rank 0, and its confidence head rank 0.
/// @tparam W the weight element type: float or bfloat16 (values are rounded to nearest even;
///   the confidence bias stays a float)
/// @param[in] f the validated file
/// @param[out] head receives the sequential head; unchanged on error
/// @param[out] confidence receives the confidence head, or std::nullopt when the file has none;
///   unchanged on error
/// @param[out] detail optional: a one-line explanation naming the tensor on error; cleared on
///   success
/// @param[in] options prefix, hints for the confidence head's layout (see deepspec_heads_options)
/// @return errc::ok;
///   errc::invalid_argument for a negative options.hidden;
///   errc::unsupported for a `markov_head.*` / `confidence_head.*` tensor our heads have no field
///   for (e.g. `markov_w2.bias`), or when memory runs out;
///   errc::corrupt_data for a missing tensor the kind needs (w1, w2, a projection's weight or
///   bias, the confidence head's weight or bias), both gate_proj and joint_proj tensors, a dtype
///   read_f32 refuses (I32, U8, ...: F32, F16, BF16 and F64 are read), or a metadata value of
///   `confidence_head_with_markov` other than True/False/true/false;
///   errc::shape_mismatch for a tensor whose shape disagrees with the file comment's list (wrong
///   rank, a zero V,
///   r or d, V or r differing from w1's, a projection or confidence width implying another d than
///   the other tensors or options.hidden, a confidence width matching neither d + r nor d when d
///   is known, or one that disagrees with a forced with_markov);
///   errc::invalid_value for a NaN or infinite value, or a value that overflows bfloat16 when W is
///   bfloat16
/// @par Complexity
/// O(T) name comparisons for the T tensors of the file, O(log T) per head tensor looked up, and
/// O(number of head weights).
template <class W>
[[nodiscard]] status load_deepspec_heads(const io::safetensors_file& f,
                                         sequential_head<W>& head,
                                         std::optional<confidence_head<W>>& confidence,
                                         std::string* detail = nullptr,
                                         const deepspec_heads_options& options = {}) {
  static_assert(detail::ds_weight_type<W>,
                "load_deepspec_heads: W must be float or bfloat16 (as in semi_ar_heads_io)");
  return io::detail::st_run(detail, {}, [&](std::string& why) -> status {
    using io::detail::st_fail;
    using detail::ds_q;
    using detail::ds_shape;
    using shape_t = std::vector<std::int64_t>;
    if (options.hidden < 0)
      return st_fail(why,
                     errc::invalid_argument,
                     "options.hidden = " + std::to_string(options.hidden) + " is negative");
    const detail::ds_names n(options.prefix);

    // 1. The kind, from the names present.
    bool any_mh = false;
    bool any_gate = false;
    bool any_joint = false;
    bool any_ch = false;
    const std::string gate_family = n.mh + "gate_proj.";
    const std::string joint_family = n.mh + "joint_proj.";
    for (const io::tensor_info& t : f.tensors()) {
      any_mh = any_mh || detail::ds_starts_with(t.name, n.mh);
      any_gate = any_gate || detail::ds_starts_with(t.name, gate_family);
      any_joint = any_joint || detail::ds_starts_with(t.name, joint_family);
      any_ch = any_ch || detail::ds_starts_with(t.name, n.ch);
    }
    if (any_gate && any_joint)
      return st_fail(why,
                     errc::corrupt_data,
                     "both " + ds_q(gate_family + "*") + " (gated) and " + ds_q(joint_family + "*")
                         + " (rnn) tensors: the head kind is ambiguous");
    const head_kind kind = !any_mh     ? head_kind::none
                           : any_gate  ? head_kind::gated
                           : any_joint ? head_kind::rnn
                                       : head_kind::markov;
    const bool gated = kind == head_kind::gated;
    const bool rnn = kind == head_kind::rnn;

    // 2. Nothing our heads cannot hold.
    for (const io::tensor_info& t : f.tensors()) {
      const bool in_mh = detail::ds_starts_with(t.name, n.mh);
      if (!in_mh && !detail::ds_starts_with(t.name, n.ch))
        continue; // the backbone's
      const bool known = t.name == n.w1 || t.name == n.w2 || t.name == n.conf_w
                         || t.name == n.conf_b
                         || (gated && (t.name == n.gate_w || t.name == n.gate_b))
                         || (rnn && (t.name == n.joint_w || t.name == n.joint_b));
      if (!known)
        return st_fail(why,
                       errc::unsupported,
                       "tensor " + ds_q(t.name) + " has no counterpart in propose::"
                           + (in_mh ? "sequential_head" : "confidence_head")
                           + (t.name == n.mh + "markov_w2.bias"
                                  ? " (markov_w2 has no bias there)"
                                  : " (not a DeepSpec DSpark head parameter)"));
    }

    // 3. Shapes: V, r from w1; d from the projection; all cross-checked.
    index_t vocab = 0;
    index_t rank = 0;
    index_t d_head = 0; // gated / rnn
    const auto missing = [&](const std::string& name, const char* why_needed) {
      return st_fail(why, errc::corrupt_data, "no tensor " + ds_q(name) + " (" + why_needed + ")");
    };
    const auto bad_shape = [&](const io::tensor_info& t, const std::string& expected) {
      return st_fail(why,
                     errc::shape_mismatch,
                     "tensor " + ds_q(t.name) + " has shape " + ds_shape(t.shape) + ", expected "
                         + expected);
    };
    const io::tensor_info* tw_proj = nullptr;
    const io::tensor_info* tb_proj = nullptr;
    if (kind != head_kind::none) {
      const io::tensor_info* t1 = f.find(n.w1);
      if (t1 == nullptr)
        return missing(n.w1, "every Markov head has markov_w1");
      if (t1->shape.size() != 2 || t1->shape[0] < 1 || t1->shape[1] < 1)
        return bad_shape(*t1, "[V, r] with V >= 1 and r >= 1");
      vocab = t1->shape[0];
      rank = t1->shape[1];
      const std::string vr =
          "[V, r] = " + ds_shape({vocab, rank}) + " (V and r from " + ds_q(n.w1) + ")";
      const io::tensor_info* t2 = f.find(n.w2);
      if (t2 == nullptr)
        return missing(n.w2, "every Markov head has markov_w2");
      if (t2->shape != shape_t{vocab, rank})
        return bad_shape(*t2, vr);
      if (gated || rnn) {
        const std::string& wn = gated ? n.gate_w : n.joint_w;
        const std::string& bn = gated ? n.gate_b : n.joint_b;
        const index_t rows = gated ? rank : 3 * rank;
        const index_t e_cols = gated ? rank : 2 * rank;
        const char* form = gated ? "[r, d + r]" : "[3r, 2r + d]";
        tw_proj = f.find(wn);
        if (tw_proj == nullptr)
          return missing(wn, gated ? "a gated head needs it" : "an rnn head needs it");
        if (tw_proj->shape.size() != 2 || tw_proj->shape[0] != rows || tw_proj->shape[1] <= e_cols)
          return bad_shape(*tw_proj,
                           std::string(form) + " = " + ds_shape({rows, e_cols})
                               + " + [0, d] with d >= 1 (r from " + ds_q(n.w1) + ")");
        d_head = tw_proj->shape[1] - e_cols;
        if (options.hidden > 0 && d_head != options.hidden)
          return bad_shape(*tw_proj,
                           std::string(form) + " = " + ds_shape({rows, e_cols + options.hidden})
                               + " (d = options.hidden)");
        tb_proj = f.find(bn);
        if (tb_proj == nullptr)
          return missing(bn, "DeepSpec's projection has a bias");
        if (tb_proj->shape != shape_t{rows})
          return bad_shape(*tb_proj, ds_shape({rows}) + " (r from " + ds_q(n.w1) + ")");
      }
    }
    const index_t d_known = d_head > 0 ? d_head : options.hidden;

    const io::tensor_info* tcw = nullptr;
    bool with_markov = false;
    index_t d_conf = 0;
    if (any_ch) {
      tcw = f.find(n.conf_w);
      if (tcw == nullptr)
        return missing(n.conf_w, "a confidence head needs it");
      if (tcw->shape.size() != 2 || tcw->shape[0] != 1 || tcw->shape[1] < 1)
        return bad_shape(*tcw, "[1, d + r] or [1, d]");
      const io::tensor_info* tcb = f.find(n.conf_b);
      if (tcb == nullptr)
        return missing(n.conf_b, "DeepSpec's confidence projection has a bias");
      if (tcb->shape != shape_t{1})
        return bad_shape(*tcb, "[1]");
      const index_t x = tcw->shape[1];
      const std::string d_from = d_head > 0 ? "d from " + ds_q(gated ? n.gate_w : n.joint_w)
                                            : std::string("d = options.hidden");
      std::optional<bool> wm = options.confidence_with_markov;
      if (!wm) {
        const auto& meta = f.metadata();
        if (const auto it = meta.find(deepspec_with_markov_key); it != meta.end()) {
          if (it->second == "True" || it->second == "true")
            wm = true;
          else if (it->second == "False" || it->second == "false")
            wm = false;
          else
            return st_fail(why,
                           errc::corrupt_data,
                           "metadata " + ds_q(deepspec_with_markov_key) + " = " + ds_q(it->second)
                               + " is neither True nor False");
        }
      }
      if (!wm && kind == head_kind::none)
        wm = false;
      if (!wm && d_known > 0) { // the width decides
        if (x != d_known + rank && x != d_known)
          return bad_shape(*tcw,
                           "[1, d + r] = " + ds_shape({1, d_known + rank})
                               + " or [1, d] = " + ds_shape({1, d_known}) + " (" + d_from
                               + ", r from " + ds_q(n.w1) + ")");
        wm = x == d_known + rank;
      }
      if (!wm)
        wm = true; // DeepSpec's default; d is unknown
      with_markov = *wm;
      const index_t e_len = with_markov ? rank : 0;
      d_conf = x - e_len;
      if (d_conf < 1)
        return bad_shape(*tcw, "[1, d + r] with d >= 1 and r = " + std::to_string(rank));
      if (d_known > 0 && d_conf != d_known)
        return bad_shape(*tcw,
                         (with_markov ? "[1, d + r] = " : "[1, d] = ")
                             + ds_shape({1, d_known + e_len}) + " (" + d_from
                             + (with_markov ? ", r from " + ds_q(n.w1) : std::string()) + ")");
    }

    // 4. Values.
    sequential_head<W> h;
    h.kind = kind;
    h.vocab = vocab;
    h.rank = rank;
    h.hidden = d_head > 0 ? d_head : (tcw != nullptr ? d_conf : options.hidden);
    if (kind != head_kind::none) {
      if (const status s = detail::ds_read(f, n.w1, {vocab, rank}, h.w1, why); !s.ok())
        return s;
      if (const status s = detail::ds_read(f, n.w2, {vocab, rank}, h.w2, why); !s.ok())
        return s;
      if (tw_proj != nullptr) {
        if (const status s = detail::ds_read(f, tw_proj->name, tw_proj->shape, h.proj_w, why);
            !s.ok())
          return s;
        if (const status s = detail::ds_read(f, tb_proj->name, tb_proj->shape, h.proj_b, why);
            !s.ok())
          return s;
      }
    }
    if (const status s = h.validate(); !s.ok()) // not expected after the checks above
      return st_fail(why, s.code, std::string("sequential head: ") + s.message());
    std::optional<confidence_head<W>> c;
    if (tcw != nullptr) {
      c.emplace();
      c->hidden = d_conf;
      c->rank = rank;
      c->with_markov = with_markov;
      if (const status s = detail::ds_read(f, n.conf_w, tcw->shape, c->w, why); !s.ok())
        return s;
      std::vector<float> b;
      if (const status s = detail::ds_read(f, n.conf_b, {1}, b, why); !s.ok())
        return s;
      c->bias = b[0];
      if (const status s = c->validate(); !s.ok())
        return st_fail(why, s.code, std::string("confidence head: ") + s.message());
    }
    head = std::move(h);
    confidence = std::move(c);
    return status{};
  });
}

/// @brief Reads the safetensors file at `path` (io::safetensors_file::load, whole file into
///        memory) and loads the heads from it as the overload taking a file does.
/// @tparam W the weight element type: float or bfloat16
/// @param[in] path the file
/// @param[out] head receives the sequential head; unchanged on error
/// @param[out] confidence receives the confidence head or std::nullopt; unchanged on error
/// @param[out] detail optional: `path: ` and a one-line explanation on error; cleared on success
/// @param[in] options as in the other overload; options.limits bound the reader
/// @return errc::ok; io::safetensors_file::load's errors (errc::io_error for a file that cannot
///   be read, errc::corrupt_data for one that is no valid safetensors file, ...); the other
///   overload's errors
/// @par Complexity
/// O(file size) plus the other overload's.
template <class W>
[[nodiscard]] status load_deepspec_heads(const std::filesystem::path& path,
                                         sequential_head<W>& head,
                                         std::optional<confidence_head<W>>& confidence,
                                         std::string* detail = nullptr,
                                         const deepspec_heads_options& options = {}) {
  static_assert(detail::ds_weight_type<W>,
                "load_deepspec_heads: W must be float or bfloat16 (as in semi_ar_heads_io)");
  const std::string p = path.string();
  return io::detail::st_run(detail, {}, [&](std::string& why) -> status {
    io::safetensors_file f;
    std::string d;
    if (const status s = io::safetensors_file::load(p, f, &d, options.limits); !s.ok())
      return io::detail::st_fail(why, s.code, d); // already "path: ..."
    if (const status s = load_deepspec_heads(f, head, confidence, &d, options); !s.ok())
      return io::detail::st_fail(why, s.code, p + ": " + d);
    return status{};
  });
}

/// @brief Adds a sequential head and an optional confidence head to a safetensors writer under
///        DeepSpec's names and shapes (the table in the file comment), so that
///        load_deepspec_heads gives them back exactly.
///
/// W = float writes F32 tensors, W = bfloat16 BF16 tensors (exact). The confidence bias is F32,
/// or BF16 when W is bfloat16 and the bias is exactly a bfloat16. With a confidence head the
/// writer's `__metadata__` gets `confidence_head_with_markov` = "True" or "False" (replacing a
/// previous value). A none head adds no `markov_head.*` tensor (DeepSpec's DFlash layout).
/// @tparam W the weight element type: float or bfloat16
/// @param[in,out] out the writer
/// @param[in] head the sequential head (validated first)
/// @param[in] confidence the confidence head, or null for none (validated first; a non-deduced
///   parameter, so a plain nullptr works)
/// @param[out] detail optional: a one-line explanation on error; cleared on success
/// @param[in] prefix prepended to every tensor name (as deepspec_heads_options::prefix)
/// @return errc::ok; the validate() code of either head; errc::shape_mismatch when the confidence
///   head reads e with a rank other than the head's, or its hidden size differs from a gated or
///   rnn head's; nothing is added in these cases. The writer's errors (errc::invalid_argument for
///   a name already in the writer or an invalid prefix, errc::unsupported when memory runs out),
///   after which the writer may hold some of the tensors and should be discarded.
/// @par Complexity
/// O(number of weights + log(number of tensors in the writer) per tensor).
template <class W>
[[nodiscard]] status
save_deepspec_heads(io::safetensors_writer& out,
                    const sequential_head<W>& head,
                    const std::type_identity_t<confidence_head<W>>* confidence = nullptr,
                    std::string* detail = nullptr,
                    std::string_view prefix = {}) {
  static_assert(detail::ds_weight_type<W>,
                "save_deepspec_heads: W must be float or bfloat16 (as in semi_ar_heads_io)");
  return io::detail::st_run(detail, {}, [&](std::string& why) -> status {
    using io::detail::st_fail;
    if (const status s = head.validate(); !s.ok())
      return st_fail(why, s.code, std::string("sequential head: ") + s.message());
    const bool gated = head.kind == head_kind::gated;
    const bool rnn = head.kind == head_kind::rnn;
    if (confidence != nullptr) {
      if (const status s = confidence->validate(); !s.ok())
        return st_fail(why, s.code, std::string("confidence head: ") + s.message());
      if (confidence->with_markov && confidence->rank != head.rank)
        return st_fail(why,
                       errc::shape_mismatch,
                       "the confidence head reads e with rank " + std::to_string(confidence->rank)
                           + ", the sequential head has rank " + std::to_string(head.rank));
      if ((gated || rnn) && confidence->hidden != head.hidden)
        return st_fail(why,
                       errc::shape_mismatch,
                       "the confidence head has hidden " + std::to_string(confidence->hidden)
                           + ", the sequential head " + std::to_string(head.hidden));
    }
    const detail::ds_names n(prefix);
    const index_t v = head.vocab;
    const index_t r = head.rank;
    const index_t d = head.hidden;
    if (head.kind != head_kind::none) {
      if (const status s = detail::ds_put(out, n.w1, {v, r}, head.w1, why); !s.ok())
        return s;
      if (const status s = detail::ds_put(out, n.w2, {v, r}, head.w2, why); !s.ok())
        return s;
      if (gated || rnn) {
        const index_t rows = gated ? r : 3 * r;
        const index_t cols = gated ? d + r : 2 * r + d;
        if (const status s =
                detail::ds_put(out, gated ? n.gate_w : n.joint_w, {rows, cols}, head.proj_w, why);
            !s.ok())
          return s;
        if (const status s =
                detail::ds_put(out, gated ? n.gate_b : n.joint_b, {rows}, head.proj_b, why);
            !s.ok())
          return s;
      }
    }
    if (confidence != nullptr) {
      const auto x = static_cast<index_t>(confidence->w.size());
      if (const status s = detail::ds_put(out, n.conf_w, {1, x}, confidence->w, why); !s.ok())
        return s;
      const float b = confidence->bias;
      const bool bf16_exact =
          std::is_same_v<
              W,
              bfloat16> && dtype_traits<bfloat16>::to_float(dtype_traits<bfloat16>::from_float(b)) == b;
      const std::vector<float> bv{b};
      const status s = bf16_exact ? out.add_bf16(n.conf_b, {1}, std::span<const float>(bv))
                                  : out.add_f32(n.conf_b, {1}, std::span<const float>(bv));
      if (!s.ok())
        return st_fail(
            why, s.code, "cannot add tensor " + detail::ds_q(n.conf_b) + ": " + s.message());
      out.set_metadata(std::string(deepspec_with_markov_key),
                       confidence->with_markov ? "True" : "False");
    }
    return status{};
  });
}

} // namespace propose

SPECDEC_NAMESPACE_END
