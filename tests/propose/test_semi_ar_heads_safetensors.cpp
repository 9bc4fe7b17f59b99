// SPDX-License-Identifier: Apache-2.0
// DSpark heads in DeepSpec's safetensors layout (propose/semi_ar_heads_safetensors.hpp). The files
// are written here, tensor by tensor with io::safetensors_writer (a hand-made header for F16),
// from DeepSpec's names and shapes (shared/anchors/deepspec-training.md section 2.4); the loaded
// heads' outputs, through semi_ar_heads.hpp's public functions, are compared with DeepSpec's
// formulas (shared/specs/dspark.md sections 5.2, 5.3, 6.1) evaluated here in double from the raw
// tensors, as PyTorch's nn.Embedding / nn.Linear (y = W x + b, W [out, in]) and chunk(3) would.
// Tolerance: |ours - reference| <= 1e-5 (1 + |reference|): our float math accumulates at most
// 2r + d = 17 products of values below 1 in float (error ~1e-6) and our tanh is within 1e-7.

#include <specdec/io/safetensors.hpp>
#include <specdec/propose/semi_ar_heads.hpp>
#include <specdec/propose/semi_ar_heads_safetensors.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <unistd.h>
#include <vector>

using namespace specdec;
using propose::head_kind;

namespace {

template <class I>
constexpr std::size_t ix(I i) {
  return static_cast<std::size_t>(i);
}

// ---- DeepSpec's raw tensors --------------------------------------------------------------------

enum class ds_kind { none, vanilla, gated, rnn };

/// The head parameters as DeepSpec holds them (row-major, PyTorch shapes).
struct ds_model {
  ds_kind kind = ds_kind::vanilla;
  std::int64_t vocab = 0, rank = 0, hidden = 0;
  std::vector<float> w1;   // markov_w1.weight [V, r] (nn.Embedding)
  std::vector<float> w2;   // markov_w2.weight [V, r] (nn.Linear(r, V, bias=False))
  std::vector<float> pw;   // gate_proj.weight [r, d + r] or joint_proj.weight [3r, 2r + d]
  std::vector<float> pb;   // its bias [r] or [3r]
  bool conf = false;       // confidence head present
  bool conf_markov = true; // confidence_head_with_markov
  std::vector<float> cw;   // confidence_head.proj.weight [1, d + r] or [1, d]
  float cb = 0.0f;         // confidence_head.proj.bias [1]
};

std::vector<float> uniform(std::mt19937& g, std::int64_t n) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(ix(n));
  for (float& x : v)
    x = u(g);
  return v;
}

ds_model make_model(ds_kind kind,
                    bool conf,
                    bool conf_markov = true,
                    unsigned seed = 1,
                    std::int64_t vocab = 7,
                    std::int64_t rank = 3,
                    std::int64_t hidden = 5) {
  std::mt19937 g(seed);
  ds_model m;
  m.kind = kind;
  m.hidden = hidden;
  if (kind != ds_kind::none) {
    m.vocab = vocab;
    m.rank = rank;
    m.w1 = uniform(g, vocab * rank);
    m.w2 = uniform(g, vocab * rank);
  }
  if (kind == ds_kind::gated) {
    m.pw = uniform(g, rank * (hidden + rank));
    m.pb = uniform(g, rank);
  } else if (kind == ds_kind::rnn) {
    m.pw = uniform(g, 3 * rank * (2 * rank + hidden));
    m.pb = uniform(g, 3 * rank);
  }
  m.conf = conf;
  m.conf_markov = conf_markov && kind != ds_kind::none;
  if (conf) {
    m.cw = uniform(g, hidden + (m.conf_markov ? m.rank : 0));
    m.cb = uniform(g, 1)[0];
  }
  return m;
}

float round_bf16(float x) {
  return io::bf16_to_f32(io::f32_to_bf16(x));
}

/// The model with every weight rounded to bfloat16 (the confidence bias too when `bias`).
ds_model rounded_bf16(ds_model m, bool bias) {
  for (std::vector<float>* v : {&m.w1, &m.w2, &m.pw, &m.pb, &m.cw})
    for (float& x : *v)
      x = round_bf16(x);
  if (bias)
    m.cb = round_bf16(m.cb);
  return m;
}

// ---- DeepSpec's formulas in double
// ----------------------------------------------------------------

using dvec = std::vector<double>;

/// nn.Linear: y = W x (+ b), W [out, in] row-major.
dvec linear(const std::vector<float>& w,
            const std::vector<float>* b,
            std::int64_t out,
            std::int64_t in,
            const dvec& x) {
  REQUIRE(ix(out * in) == w.size());
  REQUIRE(ix(in) == x.size());
  dvec y(ix(out));
  for (std::int64_t o = 0; o < out; ++o) {
    double acc = b != nullptr ? static_cast<double>((*b)[ix(o)]) : 0.0;
    for (std::int64_t i = 0; i < in; ++i)
      acc += static_cast<double>(w[ix(o * in + i)]) * x[ix(i)];
    y[ix(o)] = acc;
  }
  return y;
}

dvec cat(const dvec& a, const dvec& b) {
  dvec c = a;
  c.insert(c.end(), b.begin(), b.end());
  return c;
}

dvec slice(const dvec& a, std::int64_t from, std::int64_t n) {
  return dvec(a.begin() + from, a.begin() + from + n);
}

double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

dvec to_d(const std::vector<float>& v) {
  return dvec(v.begin(), v.end());
}

/// e = markov_w1(prev).
dvec ref_embedding(const ds_model& m, std::int64_t prev) {
  return to_d(std::vector<float>(m.w1.begin() + prev * m.rank, m.w1.begin() + (prev + 1) * m.rank));
}

/// DeepSpec's B_k (all V entries) and, for rnn, the new state; `state` is s_{k-1} (updated).
dvec ref_bias(const ds_model& m, std::int64_t prev, const dvec& h, dvec& state) {
  const std::int64_t r = m.rank;
  const std::int64_t d = m.hidden;
  const dvec e = ref_embedding(m, prev);
  dvec coef;
  switch (m.kind) {
  case ds_kind::vanilla:
    coef = e;
    break;
  case ds_kind::gated: {
    const dvec g = linear(m.pw, &m.pb, r, d + r, cat(h, e)); // gate_proj([h; e])
    coef = dvec(ix(r));
    for (std::int64_t j = 0; j < r; ++j)
      coef[ix(j)] = sigmoid(g[ix(j)]) * e[ix(j)];
    break;
  }
  case ds_kind::rnn: {
    const dvec y = linear(m.pw, &m.pb, 3 * r, 2 * r + d, cat(cat(state, e), h)); // [s; e; h]
    const dvec g = slice(y, 0, r);                                               // chunk(3)
    const dvec c = slice(y, r, r);
    const dvec o = slice(y, 2 * r, r);
    coef = dvec(ix(r));
    for (std::int64_t j = 0; j < r; ++j) {
      const double sg = sigmoid(g[ix(j)]);
      state[ix(j)] = sg * state[ix(j)] + (1.0 - sg) * std::tanh(c[ix(j)]);
      coef[ix(j)] = std::tanh(o[ix(j)]);
    }
    break;
  }
  case ds_kind::none:
    return dvec(ix(m.vocab), 0.0);
  }
  return linear(m.w2, nullptr, m.vocab, r, coef); // markov_w2(coef)
}

/// confidence_head.proj([h; e]) or proj(h).
double ref_conf(const ds_model& m, std::int64_t prev, const dvec& h) {
  const dvec x = m.conf_markov ? cat(h, ref_embedding(m, prev)) : h;
  const std::vector<float> b{m.cb};
  return linear(m.cw, &b, 1, static_cast<std::int64_t>(x.size()), x)[0];
}

bool close(double ours, double ref) {
  return std::abs(ours - ref) <= 1e-5 * (1.0 + std::abs(ref));
}

// ---- our heads' outputs
// ----------------------------------------------------------------------------

/// B (all V entries) from the loaded head; `state` is s_{k-1} (empty: the zero state), updated.
template <class W>
std::vector<float> our_bias(const propose::sequential_head<W>& head,
                            std::int64_t prev,
                            const std::vector<float>& h,
                            std::vector<float>& state) {
  const propose::sequential_head_view<W> v = head.view();
  std::vector<float> e(ix(head.rank));
  std::vector<float> coef(ix(head.rank));
  std::vector<float> next(ix(head.rank));
  propose::embedding_row(v, static_cast<token_id>(prev), e.data());
  for (index_t j = 0; j < head.rank; ++j)
    coef[ix(j)] = propose::head_coefficient(
        v, j, e.data(), h.data(), state.empty() ? nullptr : state.data(), next.data());
  if (head.kind == head_kind::rnn)
    state = next;
  std::vector<float> b(ix(head.vocab));
  for (index_t t = 0; t < head.vocab; ++t)
    b[ix(t)] = propose::head_bias(v, t, coef.data());
  return b;
}

template <class W>
float our_conf(const propose::sequential_head<W>& head,
               const propose::confidence_head<W>& c,
               std::int64_t prev,
               const std::vector<float>& h) {
  std::vector<float> e(ix(head.rank));
  if (head.rank > 0)
    propose::embedding_row(head.view(), static_cast<token_id>(prev), e.data());
  const propose::confidence_head_view<W> cv = c.view();
  return propose::confidence_logit(cv, h.data(), e.data());
}

/// Every output of the loaded heads equals DeepSpec's formula: biases for every previous token
/// (gated / markov: at a few hidden states), an rnn block of 5 steps (state and bias per step),
/// and the confidence logit for every previous token.
template <class W>
void check_outputs(const ds_model& m,
                   const propose::sequential_head<W>& head,
                   const std::optional<propose::confidence_head<W>>& conf) {
  std::mt19937 g(99);
  const std::int64_t prevs = m.kind == ds_kind::none ? 1 : m.vocab;
  int checked = 0;
  for (int trial = 0; trial < 3; ++trial) {
    const std::vector<float> h = uniform(g, m.hidden);
    const dvec hd = to_d(h);
    if (m.kind == ds_kind::rnn) {
      std::vector<float> s;
      dvec sd(ix(m.rank), 0.0);
      for (int k = 0; k < 5; ++k) { // one block: s_0 = 0, prevs x0, x1, ...
        const std::int64_t prev = (3 * k + trial) % m.vocab;
        const std::vector<float> b = our_bias(head, prev, h, s);
        const dvec rb = ref_bias(m, prev, hd, sd);
        for (std::int64_t j = 0; j < m.rank; ++j) {
          CHECK(close(s[ix(j)], sd[ix(j)]));
          ++checked;
        }
        for (std::int64_t t = 0; t < m.vocab; ++t) {
          CHECK(close(b[ix(t)], rb[ix(t)]));
          ++checked;
        }
      }
    } else if (m.kind != ds_kind::none) {
      for (std::int64_t prev = 0; prev < m.vocab; ++prev) {
        std::vector<float> s;
        dvec sd;
        const std::vector<float> b = our_bias(head, prev, h, s);
        const dvec rb = ref_bias(m, prev, hd, sd);
        for (std::int64_t t = 0; t < m.vocab; ++t) {
          CHECK(close(b[ix(t)], rb[ix(t)]));
          ++checked;
        }
      }
    }
    if (m.conf) {
      REQUIRE(conf.has_value());
      for (std::int64_t prev = 0; prev < prevs; ++prev) {
        CHECK(close(our_conf(head, *conf, prev, h), ref_conf(m, prev, hd)));
        ++checked;
      }
    }
  }
  CHECK((checked > 0 || (m.kind == ds_kind::none && !m.conf)));
}

// ---- files
// ----------------------------------------------------------------------------------------

/// One tensor to write: type 'f' F32, 'b' BF16, 'h' F16, 'i' I32 (values truncated).
struct entry {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> v;
  char type = 'f';
};

/// DeepSpec's tensors of a model, in DeepSpec's names and shapes.
std::vector<entry> entries(const ds_model& m, char type = 'f', const std::string& prefix = "") {
  std::vector<entry> es;
  const std::int64_t v = m.vocab;
  const std::int64_t r = m.rank;
  const std::int64_t d = m.hidden;
  if (m.kind != ds_kind::none) {
    es.push_back({prefix + "markov_head.markov_w1.weight", {v, r}, m.w1, type});
    es.push_back({prefix + "markov_head.markov_w2.weight", {v, r}, m.w2, type});
  }
  if (m.kind == ds_kind::gated) {
    es.push_back({prefix + "markov_head.gate_proj.weight", {r, d + r}, m.pw, type});
    es.push_back({prefix + "markov_head.gate_proj.bias", {r}, m.pb, type});
  } else if (m.kind == ds_kind::rnn) {
    es.push_back({prefix + "markov_head.joint_proj.weight", {3 * r, 2 * r + d}, m.pw, type});
    es.push_back({prefix + "markov_head.joint_proj.bias", {3 * r}, m.pb, type});
  }
  if (m.conf) {
    const std::int64_t x = d + (m.conf_markov ? r : 0);
    es.push_back({prefix + "confidence_head.proj.weight", {1, x}, m.cw, type});
    es.push_back({prefix + "confidence_head.proj.bias", {1}, {m.cb}, type});
  }
  return es;
}

/// Some of DeepSpec's backbone tensors (ignored by the loader), with an I32 among them.
std::vector<entry> backbone(std::int64_t vocab, std::int64_t hidden) {
  std::mt19937 g(5);
  return {{"embed_tokens.weight", {vocab, hidden}, uniform(g, vocab * hidden), 'b'},
          {"fc.weight", {hidden, 2 * hidden}, uniform(g, 2 * hidden * hidden), 'f'},
          {"layers.0.self_attn.q_proj.weight", {hidden, hidden}, uniform(g, hidden * hidden), 'f'},
          {"norm.weight", {hidden}, uniform(g, hidden), 'f'},
          {"lm_head.weight", {vocab, hidden}, uniform(g, vocab * hidden), 'b'},
          {"step", {1}, {3.0f}, 'i'}};
}

std::uint16_t f16_bits(float x) {
  return dtype_traits<half>::from_float(x).bits;
}

/// A safetensors file holding `es` (and `meta`): io::safetensors_writer, or, when an entry is
/// F16 (which the writer cannot add), a header written here.
std::vector<std::byte> serialize(const std::vector<entry>& es,
                                 const std::map<std::string, std::string>& meta = {}) {
  bool f16 = false;
  for (const entry& e : es)
    f16 = f16 || e.type == 'h';
  if (!f16) {
    io::safetensors_writer w;
    for (const auto& [k, val] : meta)
      w.set_metadata(k, val);
    for (const entry& e : es) {
      status s;
      if (e.type == 'b') {
        s = w.add_bf16(e.name, e.shape, std::span<const float>(e.v));
      } else if (e.type == 'i') {
        std::vector<std::int32_t> iv;
        for (float x : e.v)
          iv.push_back(static_cast<std::int32_t>(x));
        s = w.add_i32(e.name, e.shape, std::span<const std::int32_t>(iv));
      } else {
        s = w.add_f32(e.name, e.shape, std::span<const float>(e.v));
      }
      REQUIRE(s.ok());
    }
    std::vector<std::byte> out;
    REQUIRE(w.serialize(out).ok());
    return out;
  }
  REQUIRE(meta.empty());
  std::string h = "{";
  std::vector<std::byte> data;
  for (const entry& e : es) {
    REQUIRE((e.type == 'f' || e.type == 'h'));
    const std::size_t begin = data.size();
    for (float x : e.v) {
      if (e.type == 'h') {
        const std::uint16_t b = f16_bits(x);
        data.push_back(static_cast<std::byte>(b & 0xffu));
        data.push_back(static_cast<std::byte>(b >> 8));
      } else {
        std::byte b[4];
        std::memcpy(b, &x, 4);
        data.insert(data.end(), b, b + 4);
      }
    }
    h.append(h.size() > 1 ? ",\"" : "\"").append(e.name).append("\":{\"dtype\":\"");
    h.append(e.type == 'h' ? "F16" : "F32").append("\",\"shape\":[");
    for (std::size_t i = 0; i < e.shape.size(); ++i)
      h.append(i > 0 ? "," : "").append(std::to_string(e.shape[i]));
    h.append("],\"data_offsets\":[").append(std::to_string(begin)).append(",");
    h.append(std::to_string(data.size())).append("]}");
  }
  h += "}";
  std::vector<std::byte> out;
  out.reserve(8 + h.size() + data.size());
  const std::uint64_t n = h.size();
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<std::byte>((n >> (8 * i)) & 0xffu));
  for (char c : h)
    out.push_back(static_cast<std::byte>(c));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

io::safetensors_file parse(const std::vector<entry>& es,
                           const std::map<std::string, std::string>& meta = {}) {
  io::safetensors_file f;
  std::string d;
  const std::vector<std::byte> b = serialize(es, meta);
  const status s = io::safetensors_file::parse(std::span<const std::byte>(b), f, &d);
  INFO(d);
  REQUIRE(s.ok());
  return f;
}

head_kind our_kind(ds_kind k) {
  switch (k) {
  case ds_kind::vanilla:
    return head_kind::markov;
  case ds_kind::gated:
    return head_kind::gated;
  case ds_kind::rnn:
    return head_kind::rnn;
  case ds_kind::none:
    break;
  }
  return head_kind::none;
}

template <class W>
std::vector<float> widen(const std::vector<W>& v) {
  std::vector<float> out;
  out.reserve(v.size());
  for (const W& x : v)
    out.push_back(dtype_traits<W>::to_float(x));
  return out;
}

/// Loads `m` written as `type` and checks the fields against the raw tensors (exact: the layouts
/// are identical) and the outputs against DeepSpec's formulas.
template <class W>
void load_and_check(const ds_model& m,
                    char type,
                    const propose::deepspec_heads_options& opt = {},
                    const std::map<std::string, std::string>& meta = {}) {
  std::vector<entry> es = entries(m, type, opt.prefix);
  const io::safetensors_file f = parse(es, meta);
  propose::sequential_head<W> head;
  std::optional<propose::confidence_head<W>> conf;
  std::string detail = "stale";
  const status s = propose::load_deepspec_heads(f, head, conf, &detail, opt);
  INFO(detail);
  REQUIRE(s.ok());
  CHECK(detail.empty());
  // What the file holds, as read back by a float reader.
  const bool w_bf16 = std::is_same_v<W, bfloat16>;
  ds_model held = type == 'b' ? rounded_bf16(m, true) : m;
  if (type == 'h') {
    for (std::vector<float>* v : {&held.w1, &held.w2, &held.pw, &held.pb, &held.cw})
      for (float& x : *v)
        x = dtype_traits<half>::to_float(half{f16_bits(x)});
    held.cb = dtype_traits<half>::to_float(half{f16_bits(held.cb)});
  }
  // What W holds: rounded to bfloat16 when W is (the confidence bias stays a float).
  const ds_model expect = w_bf16 ? rounded_bf16(held, false) : held;
  CHECK(head.kind == our_kind(m.kind));
  CHECK(head.vocab == m.vocab);
  CHECK(head.rank == m.rank);
  CHECK(widen(head.w1) == expect.w1);
  CHECK(widen(head.w2) == expect.w2);
  CHECK(widen(head.proj_w) == expect.pw);
  CHECK(widen(head.proj_b) == expect.pb);
  if (m.kind == ds_kind::gated || m.kind == ds_kind::rnn || m.conf)
    CHECK(head.hidden == m.hidden);
  REQUIRE(conf.has_value() == m.conf);
  if (m.conf) {
    CHECK(conf->with_markov == m.conf_markov);
    CHECK(conf->hidden == m.hidden);
    CHECK(conf->rank == m.rank);
    CHECK(widen(conf->w) == expect.cw);
    CHECK(conf->bias == expect.cb);
  }
  check_outputs(expect, head, conf);
}

template <class W>
struct sentinel {
  propose::sequential_head<W> head;
  std::optional<propose::confidence_head<W>> conf;
  sentinel() {
    head.kind = head_kind::markov;
    head.vocab = 1;
    head.rank = 1;
    head.hidden = 42;
    head.w1 = {dtype_traits<W>::from_float(0.25f)};
    head.w2 = {dtype_traits<W>::from_float(-0.5f)};
    conf.emplace();
    conf->hidden = 1;
    conf->rank = 1;
    conf->w = {dtype_traits<W>::from_float(1.0f), dtype_traits<W>::from_float(2.0f)};
    conf->bias = 3.0f;
  }
  [[nodiscard]] bool unchanged() const {
    const sentinel fresh;
    return head.kind == fresh.head.kind && head.vocab == 1 && head.rank == 1 && head.hidden == 42
           && widen(head.w1) == widen(fresh.head.w1) && widen(head.w2) == widen(fresh.head.w2)
           && head.proj_w.empty() && head.proj_b.empty() && conf.has_value() && conf->hidden == 1
           && widen(conf->w) == widen(fresh.conf->w) && conf->bias == 3.0f;
  }
};

/// Loading `es` fails with `code`, a detail containing `needle`, and untouched outputs.
template <class W = float>
void expect_error(const std::vector<entry>& es,
                  errc code,
                  const std::string& needle,
                  const propose::deepspec_heads_options& opt = {},
                  const std::map<std::string, std::string>& meta = {}) {
  const io::safetensors_file f = parse(es, meta);
  sentinel<W> out;
  std::string detail;
  const status s = propose::load_deepspec_heads(f, out.head, out.conf, &detail, opt);
  INFO("detail: " << detail);
  CHECK(s.code == code);
  CHECK(detail.find(needle) != std::string::npos);
  CHECK(detail.find('\n') == std::string::npos);
  CHECK(out.unchanged());
}

entry* entry_of(std::vector<entry>& es, const std::string& name) {
  for (entry& e : es)
    if (e.name == name)
      return &e;
  FAIL("no entry " << name);
  return nullptr;
}

void remove_entry(std::vector<entry>& es, const std::string& name) {
  for (auto it = es.begin(); it != es.end(); ++it)
    if (it->name == name) {
      es.erase(it);
      return;
    }
  FAIL("no entry " << name);
}

/// Gives an entry another shape (values: a fixed pattern of the right count).
void reshape(std::vector<entry>& es, const std::string& name, std::vector<std::int64_t> shape) {
  entry* e = entry_of(es, name);
  std::int64_t n = 1;
  for (std::int64_t d : shape)
    n *= d;
  e->shape = std::move(shape);
  e->v.assign(ix(n), 0.125f);
}

const std::string w1n = "markov_head.markov_w1.weight";
const std::string w2n = "markov_head.markov_w2.weight";
const std::string gwn = "markov_head.gate_proj.weight";
const std::string gbn = "markov_head.gate_proj.bias";
const std::string jwn = "markov_head.joint_proj.weight";
const std::string jbn = "markov_head.joint_proj.bias";
const std::string cwn = "confidence_head.proj.weight";
const std::string cbn = "confidence_head.proj.bias";

template <class W>
bool same_heads(const propose::sequential_head<W>& a,
                const propose::sequential_head<W>& b,
                const propose::confidence_head<W>* ca,
                const std::optional<propose::confidence_head<W>>& cb) {
  const auto bits = [](const std::vector<W>& v) {
    std::vector<std::uint32_t> out;
    out.reserve(v.size());
    for (const W& x : v)
      out.push_back(::specdec::detail::float_bits(dtype_traits<W>::to_float(x)));
    return out;
  };
  bool same = a.kind == b.kind && a.vocab == b.vocab && a.rank == b.rank && a.hidden == b.hidden
              && bits(a.w1) == bits(b.w1) && bits(a.w2) == bits(b.w2)
              && bits(a.proj_w) == bits(b.proj_w) && bits(a.proj_b) == bits(b.proj_b);
  same = same && (ca != nullptr) == cb.has_value();
  if (ca != nullptr && cb.has_value())
    same = same && bits(ca->w) == bits(cb->w)
           && ::specdec::detail::float_bits(ca->bias) == ::specdec::detail::float_bits(cb->bias)
           && ca->hidden == cb->hidden && ca->rank == cb->rank
           && ca->with_markov == cb->with_markov;
  return same;
}

/// Our own heads, built from a raw model (through its fields: the tested mapping is the
/// identity, which load_and_check pins independently).
template <class W>
propose::sequential_head<W> to_head(const ds_model& m) {
  propose::sequential_head<W> h;
  h.kind = our_kind(m.kind);
  h.vocab = m.vocab;
  h.rank = m.rank;
  h.hidden = m.kind == ds_kind::gated || m.kind == ds_kind::rnn || m.conf ? m.hidden : 0;
  for (float x : m.w1)
    h.w1.push_back(dtype_traits<W>::from_float(x));
  for (float x : m.w2)
    h.w2.push_back(dtype_traits<W>::from_float(x));
  for (float x : m.pw)
    h.proj_w.push_back(dtype_traits<W>::from_float(x));
  for (float x : m.pb)
    h.proj_b.push_back(dtype_traits<W>::from_float(x));
  return h;
}

template <class W>
propose::confidence_head<W> to_conf(const ds_model& m) {
  propose::confidence_head<W> c;
  c.hidden = m.hidden;
  c.rank = m.rank;
  c.with_markov = m.conf_markov;
  for (float x : m.cw)
    c.w.push_back(dtype_traits<W>::from_float(x));
  c.bias = m.cb;
  return c;
}

struct temp_path {
  std::filesystem::path path;
  explicit temp_path(const char* name)
      : path(std::filesystem::temp_directory_path()
             / (std::string("specdec_ds_heads_") + std::to_string(::getpid()) + "_" + name)) {}
  temp_path(const temp_path&) = delete;
  temp_path& operator=(const temp_path&) = delete;
  ~temp_path() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

} // namespace

// ---- loading DeepSpec's layout
// ----------------------------------------------------------------------

TEMPLATE_TEST_CASE("deepspec heads: markov head and its confidence head follow DeepSpec's formulas",
                   "[propose][dspark][safetensors]",
                   float,
                   bfloat16) {
  SECTION("no confidence head") {
    load_and_check<TestType>(make_model(ds_kind::vanilla, false), 'f');
  }
  SECTION("confidence head over [h; e] (DeepSpec's default with_markov)") {
    load_and_check<TestType>(make_model(ds_kind::vanilla, true, true, 2), 'f');
  }
  SECTION("confidence head over h alone, said by the option") {
    propose::deepspec_heads_options opt;
    opt.confidence_with_markov = false;
    load_and_check<TestType>(make_model(ds_kind::vanilla, true, false, 3), 'f', opt);
  }
  SECTION("confidence head over h alone, said by the metadata") {
    load_and_check<TestType>(make_model(ds_kind::vanilla, true, false, 3),
                             'f',
                             {},
                             {{"confidence_head_with_markov", "False"}});
  }
  SECTION("confidence head over h alone, told by options.hidden") {
    propose::deepspec_heads_options opt;
    opt.hidden = 5;
    load_and_check<TestType>(make_model(ds_kind::vanilla, true, false, 3), 'f', opt);
  }
  SECTION("BF16 tensors") {
    load_and_check<TestType>(make_model(ds_kind::vanilla, true, true, 4), 'b');
  }
  SECTION("F16 tensors") {
    load_and_check<TestType>(make_model(ds_kind::vanilla, true, true, 5), 'h');
  }
}

TEST_CASE("deepspec heads: a markov head's [1, d] confidence width alone reads as DeepSpec's "
          "default with_markov",
          "[propose][dspark][safetensors]") {
  // d = 5, r = 3: [1, 5] without a hint is taken as [h; e] with d = 2 (documented ambiguity).
  const ds_model m = make_model(ds_kind::vanilla, true, false, 3);
  const io::safetensors_file f = parse(entries(m));
  propose::sequential_head<float> head;
  std::optional<propose::confidence_head<float>> conf;
  REQUIRE(propose::load_deepspec_heads(f, head, conf).ok());
  REQUIRE(conf.has_value());
  CHECK(conf->with_markov);
  CHECK(conf->hidden == 2);
  CHECK(head.hidden == 2);
}

TEMPLATE_TEST_CASE("deepspec heads: gated head follows DeepSpec's formula",
                   "[propose][dspark][safetensors]",
                   float,
                   bfloat16) {
  SECTION("no confidence head") {
    load_and_check<TestType>(make_model(ds_kind::gated, false, true, 11), 'f');
  }
  SECTION("confidence over [h; e], inferred from the width") {
    load_and_check<TestType>(make_model(ds_kind::gated, true, true, 12), 'f');
  }
  SECTION("confidence over h alone, inferred from the width") {
    load_and_check<TestType>(make_model(ds_kind::gated, true, false, 13), 'f');
  }
  SECTION("BF16, other sizes (d < r)") {
    load_and_check<TestType>(make_model(ds_kind::gated, true, true, 14, 9, 4, 2), 'b');
  }
}

TEMPLATE_TEST_CASE("deepspec heads: rnn head's state and bias follow DeepSpec's formula",
                   "[propose][dspark][safetensors]",
                   float,
                   bfloat16) {
  SECTION("no confidence head") {
    load_and_check<TestType>(make_model(ds_kind::rnn, false, true, 21), 'f');
  }
  SECTION("confidence over [h; e]") {
    load_and_check<TestType>(make_model(ds_kind::rnn, true, true, 22), 'f');
  }
  SECTION("confidence over h alone") {
    load_and_check<TestType>(make_model(ds_kind::rnn, true, false, 23), 'f');
  }
  SECTION("BF16") {
    load_and_check<TestType>(make_model(ds_kind::rnn, true, true, 24, 6, 2, 3), 'b');
  }
  SECTION("F16") {
    load_and_check<TestType>(make_model(ds_kind::rnn, false, true, 25), 'h');
  }
}

TEST_CASE("deepspec heads: the G6 golden RNN case of the spec", "[propose][dspark][safetensors]") {
  // shared/specs/dspark.md G6: V = 3, r = 1, d = 1; joint_proj rows (gate, cand, out) over
  // [s, e, h]. Step 1 (prev 0, h = 1): s_1 = .243432, B_1 = [.462117, -.462117, .924234].
  const std::vector<entry> es = {
      {w1n, {3, 1}, {1, -1, .5f}},
      {w2n, {3, 1}, {1, -1, 2}},
      {jwn, {3, 3}, {.5f, 1, 0, 1, .5f, 1, 0, 1, -1}},
      {jbn, {3}, {0, 0, .5f}},
  };
  propose::sequential_head<float> head;
  std::optional<propose::confidence_head<float>> conf;
  REQUIRE(propose::load_deepspec_heads(parse(es), head, conf).ok());
  std::vector<float> s;
  const std::vector<float> b1 = our_bias(head, 0, {1.0f}, s);
  CHECK(s[0] == Approx(.243432).margin(1e-6));
  CHECK(b1[0] == Approx(.462117).margin(1e-6));
  CHECK(b1[2] == Approx(.924234).margin(1e-6));
  const std::vector<float> b2 = our_bias(head, 2, {-1.0f}, s);
  CHECK(s[0] == Approx(-.004880).margin(1e-6));
  CHECK(b2[2] == Approx(1.928055).margin(1e-6));
}

TEST_CASE("deepspec heads: F32 values load into bfloat16 rounded to nearest even",
          "[propose][dspark][safetensors]") {
  load_and_check<bfloat16>(make_model(ds_kind::gated, true, true, 31), 'f');
  // The confidence bias stays a float.
  ds_model m = make_model(ds_kind::vanilla, true, true, 32);
  m.cb = 0.1f; // not a bfloat16
  propose::sequential_head<bfloat16> head;
  std::optional<propose::confidence_head<bfloat16>> conf;
  REQUIRE(propose::load_deepspec_heads(parse(entries(m)), head, conf).ok());
  CHECK(conf->bias == 0.1f);
}

TEST_CASE("deepspec heads: backbone tensors are ignored, a prefix is honoured",
          "[propose][dspark][safetensors]") {
  const ds_model m = make_model(ds_kind::gated, true, true, 41);
  SECTION("backbone around the heads") {
    std::vector<entry> es = backbone(m.vocab, m.hidden);
    const std::vector<entry> heads = entries(m);
    es.insert(es.begin() + 2, heads.begin(), heads.end());
    propose::sequential_head<float> head;
    std::optional<propose::confidence_head<float>> conf;
    std::string detail;
    REQUIRE(propose::load_deepspec_heads(parse(es), head, conf, &detail).ok());
    CHECK(head.kind == head_kind::gated);
    CHECK(widen(head.proj_w) == m.pw);
    check_outputs(m, head, conf);
  }
  SECTION("prefixed names") {
    propose::deepspec_heads_options opt;
    opt.prefix = "model.draft.";
    load_and_check<float>(m, 'f', opt);
    // Unprefixed head tensors are someone else's: without the prefix this is a DFlash file.
    std::vector<entry> es = entries(m, 'f', "model.draft.");
    propose::sequential_head<float> head;
    std::optional<propose::confidence_head<float>> conf;
    REQUIRE(propose::load_deepspec_heads(parse(es), head, conf).ok());
    CHECK(head.kind == head_kind::none);
    CHECK_FALSE(conf.has_value());
  }
  SECTION("a backbone-only file (DeepSpec's DFlash, r = 0) loads a none head") {
    propose::sequential_head<float> head = to_head<float>(make_model(ds_kind::vanilla, false));
    std::optional<propose::confidence_head<float>> conf = to_conf<float>(m);
    REQUIRE(propose::load_deepspec_heads(parse(backbone(7, 5)), head, conf).ok());
    CHECK(head.kind == head_kind::none);
    CHECK(head.rank == 0);
    CHECK(head.vocab == 0);
    CHECK(head.w1.empty());
    CHECK_FALSE(conf.has_value());
    CHECK(head.validate().ok());
  }
  SECTION("DFlash with a confidence head over h") {
    load_and_check<float>(make_model(ds_kind::none, true, false, 42), 'f');
  }
}

TEST_CASE("deepspec heads: path overload", "[propose][dspark][safetensors]") {
  const temp_path tp("path.safetensors");
  const ds_model m = make_model(ds_kind::rnn, true, true, 51);
  propose::sequential_head<float> head;
  std::optional<propose::confidence_head<float>> conf;
  std::string detail;
  {
    io::safetensors_writer w;
    for (const entry& e : entries(m))
      REQUIRE(w.add_f32(e.name, e.shape, std::span<const float>(e.v)).ok());
    REQUIRE(w.write(tp.path.string()).ok());
  }
  REQUIRE(propose::load_deepspec_heads(tp.path, head, conf, &detail).ok());
  CHECK(detail.empty());
  check_outputs(m, head, conf);
  {
    std::vector<entry> es = entries(m);
    remove_entry(es, jbn);
    io::safetensors_writer w;
    for (const entry& e : es)
      REQUIRE(w.add_f32(e.name, e.shape, std::span<const float>(e.v)).ok());
    REQUIRE(w.write(tp.path.string()).ok());
  }
  sentinel<float> out;
  CHECK(propose::load_deepspec_heads(tp.path, out.head, out.conf, &detail).code
        == errc::corrupt_data);
  CHECK(detail.rfind(tp.path.string() + ": ", 0) == 0);
  CHECK(detail.find(jbn) != std::string::npos);
  CHECK(out.unchanged());
  const std::filesystem::path nowhere = tp.path.string() + ".missing";
  CHECK(propose::load_deepspec_heads(nowhere, out.head, out.conf, &detail).code == errc::io_error);
  CHECK(detail.rfind(nowhere.string() + ": ", 0) == 0);
  CHECK(out.unchanged());
}

// ---- errors
// -----------------------------------------------------------------------------------------

TEST_CASE("deepspec heads: wrong shapes are shape_mismatch naming the tensor",
          "[propose][dspark][safetensors]") {
  const ds_model mk = make_model(ds_kind::vanilla, true);
  const ds_model gt = make_model(ds_kind::gated, true);
  const ds_model rn = make_model(ds_kind::rnn, true);
  std::vector<entry> es;
  SECTION("w1 not 2-D") {
    es = entries(mk);
    reshape(es, w1n, {21});
    expect_error(es, errc::shape_mismatch, w1n);
  }
  SECTION("w1 with r = 0") {
    es = entries(mk);
    reshape(es, w1n, {7, 0});
    expect_error(es, errc::shape_mismatch, w1n);
  }
  SECTION("w2's r disagrees with w1's") {
    es = entries(mk);
    reshape(es, w2n, {7, 4});
    expect_error(es, errc::shape_mismatch, w2n);
  }
  SECTION("w2's V disagrees with w1's") {
    es = entries(mk);
    reshape(es, w2n, {8, 3});
    expect_error(es, errc::shape_mismatch, w2n);
  }
  SECTION("w2 transposed") {
    es = entries(mk);
    reshape(es, w2n, {3, 7});
    expect_error(es, errc::shape_mismatch, w2n);
  }
  SECTION("gate_proj rows other than r") {
    es = entries(gt);
    reshape(es, gwn, {4, 8});
    expect_error(es, errc::shape_mismatch, gwn);
  }
  SECTION("gate_proj with no h columns") {
    es = entries(gt);
    reshape(es, gwn, {3, 3});
    expect_error(es, errc::shape_mismatch, gwn);
  }
  SECTION("gate_proj transposed") {
    es = entries(gt);
    reshape(es, gwn, {8, 3});
    expect_error(es, errc::shape_mismatch, gwn);
  }
  SECTION("gate_proj bias of the wrong length") {
    es = entries(gt);
    reshape(es, gbn, {4});
    expect_error(es, errc::shape_mismatch, gbn);
  }
  SECTION("joint_proj rows other than 3r") {
    es = entries(rn);
    reshape(es, jwn, {6, 11});
    expect_error(es, errc::shape_mismatch, jwn);
  }
  SECTION("joint_proj bias [r]") {
    es = entries(rn);
    reshape(es, jbn, {3});
    expect_error(es, errc::shape_mismatch, jbn);
  }
  SECTION("confidence weight 1-D") {
    es = entries(gt);
    reshape(es, cwn, {8});
    expect_error(es, errc::shape_mismatch, cwn);
  }
  SECTION("confidence weight with two outputs") {
    es = entries(gt);
    reshape(es, cwn, {2, 8});
    expect_error(es, errc::shape_mismatch, cwn);
  }
  SECTION("confidence width neither d + r nor d") {
    es = entries(gt);
    reshape(es, cwn, {1, 7});
    expect_error(es, errc::shape_mismatch, cwn);
  }
  SECTION("confidence width d + r against a forced with_markov = false") {
    es = entries(rn);
    propose::deepspec_heads_options opt;
    opt.confidence_with_markov = false;
    expect_error(es, errc::shape_mismatch, cwn, opt);
  }
  SECTION("confidence width d + r with r from w1 but d from options.hidden disagreeing") {
    es = entries(mk);
    propose::deepspec_heads_options opt;
    opt.hidden = 4;
    expect_error(es, errc::shape_mismatch, cwn, opt);
  }
  SECTION("confidence width not above r (with_markov)") {
    es = entries(mk);
    reshape(es, cwn, {1, 3});
    expect_error(es, errc::shape_mismatch, cwn);
  }
  SECTION("confidence bias [2]") {
    es = entries(mk);
    reshape(es, cbn, {2});
    expect_error(es, errc::shape_mismatch, cbn);
  }
  SECTION("confidence bias a scalar") {
    es = entries(mk);
    reshape(es, cbn, {});
    expect_error(es, errc::shape_mismatch, cbn);
  }
  SECTION("options.hidden disagrees with gate_proj's d") {
    es = entries(gt);
    propose::deepspec_heads_options opt;
    opt.hidden = 6;
    expect_error(es, errc::shape_mismatch, gwn, opt);
  }
}

TEST_CASE("deepspec heads: missing and ambiguous tensors are corrupt_data naming the tensor",
          "[propose][dspark][safetensors]") {
  const ds_model mk = make_model(ds_kind::vanilla, true);
  const ds_model gt = make_model(ds_kind::gated, true);
  const ds_model rn = make_model(ds_kind::rnn, true);
  std::vector<entry> es;
  SECTION("no w2") {
    es = entries(mk);
    remove_entry(es, w2n);
    expect_error(es, errc::corrupt_data, "no tensor '" + w2n + "'");
  }
  SECTION("no w1") {
    es = entries(gt);
    remove_entry(es, w1n);
    expect_error(es, errc::corrupt_data, "no tensor '" + w1n + "'");
  }
  SECTION("no gate_proj bias") {
    es = entries(gt);
    remove_entry(es, gbn);
    expect_error(es, errc::corrupt_data, "no tensor '" + gbn + "'");
  }
  SECTION("a gate_proj bias without its weight") {
    es = entries(gt);
    remove_entry(es, gwn);
    expect_error(es, errc::corrupt_data, "no tensor '" + gwn + "'");
  }
  SECTION("no joint_proj weight") {
    es = entries(rn);
    remove_entry(es, jwn);
    expect_error(es, errc::corrupt_data, "no tensor '" + jwn + "'");
  }
  SECTION("no confidence bias") {
    es = entries(mk);
    remove_entry(es, cbn);
    expect_error(es, errc::corrupt_data, "no tensor '" + cbn + "'");
  }
  SECTION("a confidence bias without its weight") {
    es = entries(mk);
    remove_entry(es, cwn);
    expect_error(es, errc::corrupt_data, "no tensor '" + cwn + "'");
  }
  SECTION("both gate_proj and joint_proj") {
    es = entries(gt);
    es.push_back(entries(rn)[2]);
    expect_error(es, errc::corrupt_data, "joint_proj");
  }
  SECTION("a bad metadata value") {
    es = entries(mk);
    expect_error(es,
                 errc::corrupt_data,
                 "confidence_head_with_markov",
                 {},
                 {{"confidence_head_with_markov", "yes"}});
  }
}

TEST_CASE("deepspec heads: what our heads cannot hold is unsupported, never dropped",
          "[propose][dspark][safetensors]") {
  const ds_model mk = make_model(ds_kind::vanilla, true);
  const ds_model gt = make_model(ds_kind::gated, false);
  std::vector<entry> es = entries(mk);
  SECTION("a bias on markov_w2") {
    es.push_back({"markov_head.markov_w2.bias", {7}, std::vector<float>(7, 0.5f)});
    expect_error(es, errc::unsupported, "markov_head.markov_w2.bias");
  }
  SECTION("an extra layer in the Markov head") {
    es.push_back({"markov_head.norm.weight", {3}, std::vector<float>(3, 1.0f)});
    expect_error(es, errc::unsupported, "markov_head.norm.weight");
  }
  SECTION("an extra layer in the confidence head") {
    es.push_back({"confidence_head.proj2.weight", {1, 1}, {1.0f}});
    expect_error(es, errc::unsupported, "confidence_head.proj2.weight");
  }
  SECTION("an unknown gate_proj tensor") {
    es = entries(gt);
    es.push_back({"markov_head.gate_proj.scale", {3}, std::vector<float>(3, 1.0f)});
    expect_error(es, errc::unsupported, "markov_head.gate_proj.scale");
  }
}

TEST_CASE("deepspec heads: bad values and dtypes", "[propose][dspark][safetensors]") {
  const ds_model gt = make_model(ds_kind::gated, true);
  std::vector<entry> es = entries(gt);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  SECTION("NaN in w1") {
    entry_of(es, w1n)->v[4] = nan;
    expect_error(es, errc::invalid_value, w1n);
  }
  SECTION("inf in the gate bias") {
    entry_of(es, gbn)->v[1] = -inf;
    expect_error(es, errc::invalid_value, gbn);
  }
  SECTION("NaN in the confidence bias (BF16)") {
    for (entry& e : es)
      e.type = 'b';
    entry_of(es, cbn)->v[0] = nan;
    expect_error(es, errc::invalid_value, cbn);
  }
  SECTION("inf in w2 (F16)") {
    for (entry& e : es)
      e.type = 'h';
    entry_of(es, w2n)->v[0] = 70000.0f; // overflows binary16 to inf
    expect_error(es, errc::invalid_value, w2n);
  }
  SECTION("a float overflowing bfloat16 when W is bfloat16") {
    entry_of(es, cwn)->v[2] = 3.4e38f;
    expect_error<bfloat16>(es, errc::invalid_value, cwn);
    // ... but fine as float
    propose::sequential_head<float> head;
    std::optional<propose::confidence_head<float>> conf;
    CHECK(propose::load_deepspec_heads(parse(es), head, conf).ok());
  }
  SECTION("I32 w2") {
    entry_of(es, w2n)->type = 'i';
    expect_error(es, errc::corrupt_data, w2n);
    expect_error(es, errc::corrupt_data, "I32");
  }
  SECTION("I32 confidence weight") {
    entry_of(es, cwn)->type = 'i';
    expect_error(es, errc::corrupt_data, cwn);
  }
  SECTION("negative options.hidden") {
    propose::deepspec_heads_options opt;
    opt.hidden = -1;
    expect_error(es, errc::invalid_argument, "options.hidden", opt);
  }
}

// ---- saving
// -------------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("deepspec heads: save then load gives the heads back exactly",
                   "[propose][dspark][safetensors]",
                   float,
                   bfloat16) {
  using wt = TestType;
  int n = 0;
  for (ds_kind k : {ds_kind::none, ds_kind::vanilla, ds_kind::gated, ds_kind::rnn})
    for (int c = 0; c < 3; ++c) { // no confidence head, over [h; e], over h
      if (k == ds_kind::none && c == 1)
        continue;
      const ds_model m = make_model(k, c > 0, c == 1, static_cast<unsigned>(60 + n++));
      const propose::sequential_head<wt> head = to_head<wt>(m);
      const propose::confidence_head<wt> cf = to_conf<wt>(m);
      const propose::confidence_head<wt>* cp = c > 0 ? &cf : nullptr;
      for (const char* prefix : {"", "draft."}) {
        CAPTURE(static_cast<int>(k), c, prefix);
        io::safetensors_writer w;
        std::string detail = "stale";
        REQUIRE(propose::save_deepspec_heads(w, head, cp, &detail, prefix).ok());
        CHECK(detail.empty());
        std::vector<std::byte> bytes;
        REQUIRE(w.serialize(bytes).ok());
        io::safetensors_file f;
        REQUIRE(io::safetensors_file::parse(std::span<const std::byte>(bytes), f).ok());
        // DeepSpec's names, shapes and dtype.
        const std::string p = prefix;
        const io::dtype dt = std::is_same_v<wt, float> ? io::dtype::f32 : io::dtype::bf16;
        for (const entry& e : entries(m, 'f', p)) {
          const io::tensor_info* t = f.find(e.name);
          REQUIRE(t != nullptr);
          CHECK(t->shape == e.shape);
          if (e.name != p + cbn)
            CHECK(t->type == dt);
        }
        CHECK(f.tensors().size() == entries(m).size());
        propose::sequential_head<wt> back;
        std::optional<propose::confidence_head<wt>> cback;
        propose::deepspec_heads_options opt;
        opt.prefix = p;
        REQUIRE(propose::load_deepspec_heads(f, back, cback, &detail, opt).ok());
        CHECK(same_heads(head, back, cp, cback));
      }
    }
  // A bfloat16 head's confidence bias that is no bfloat16 is kept exactly (written as F32).
  ds_model m = make_model(ds_kind::vanilla, true, true, 77);
  m.cb = 0.1f;
  const propose::sequential_head<wt> head = to_head<wt>(m);
  const propose::confidence_head<wt> cf = to_conf<wt>(m);
  io::safetensors_writer w;
  REQUIRE(propose::save_deepspec_heads(w, head, &cf).ok());
  std::vector<std::byte> bytes;
  REQUIRE(w.serialize(bytes).ok());
  io::safetensors_file f;
  REQUIRE(io::safetensors_file::parse(std::span<const std::byte>(bytes), f).ok());
  CHECK(f.find(cbn)->type == io::dtype::f32);
  propose::sequential_head<wt> back;
  std::optional<propose::confidence_head<wt>> cback;
  REQUIRE(propose::load_deepspec_heads(f, back, cback).ok());
  CHECK(same_heads(head, back, &cf, cback));
}

TEST_CASE("deepspec heads: save refuses inconsistent heads and adds nothing",
          "[propose][dspark][safetensors]") {
  const ds_model gt = make_model(ds_kind::gated, true);
  const propose::sequential_head<float> head = to_head<float>(gt);
  io::safetensors_writer w;
  std::string detail;
  SECTION("an invalid head") {
    propose::sequential_head<float> bad = head;
    bad.proj_b.pop_back();
    CHECK(propose::save_deepspec_heads(w, bad, nullptr, &detail).code == errc::shape_mismatch);
    CHECK(detail.find("sequential head") != std::string::npos);
    bad = head;
    bad.w2[3] = std::numeric_limits<float>::quiet_NaN();
    CHECK(propose::save_deepspec_heads(w, bad).code == errc::invalid_value);
  }
  SECTION("a confidence head with another rank") {
    propose::confidence_head<float> c = to_conf<float>(gt);
    c.rank = 2;
    c.w.pop_back();
    CHECK(propose::save_deepspec_heads(w, head, &c, &detail).code == errc::shape_mismatch);
    CHECK(detail.find("rank") != std::string::npos);
  }
  SECTION("a confidence head with another hidden size than a gated head") {
    propose::confidence_head<float> c = to_conf<float>(gt);
    c.hidden = 4;
    c.w.pop_back();
    CHECK(propose::save_deepspec_heads(w, head, &c, &detail).code == errc::shape_mismatch);
    CHECK(detail.find("hidden") != std::string::npos);
  }
  CHECK(w.size() == 0);
  SECTION("a name already in the writer") {
    const std::vector<float> one{1.0f};
    REQUIRE(w.add_f32(gbn, {1}, std::span<const float>(one)).ok());
    CHECK(propose::save_deepspec_heads(w, head, nullptr, &detail).code == errc::invalid_argument);
    CHECK(detail.find(gbn) != std::string::npos);
  }
}
