// SPDX-License-Identifier: Apache-2.0
#pragma once
// Test support shared by the GPU tests and the host tests of the device logic: a ragged chain
// batch built on the host, results, and the comparison with the tie rule of the GPU tests.
//
// The tie rule. The device executor sums in a different order from the host executor, so a
// probability, a residual mass or a top-p cut can differ in the last bits. A decision then
// differs only when the uniform (or the top-p goal) lies within that rounding of the threshold.
// A request whose device outcome differs from the host's counts as a tie when the host, rerun
// with its uniforms scaled by 1 +- 2^-12 or its top_p scaled by 1 +- 2^-12, reproduces the device
// outcome exactly; anything else is a hard mismatch. Tests require no hard mismatch and at most
// max(1, n / 1000) ties.
#include <specdec/specdec.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace specdec_test {

/// A ragged chain batch on the host.
template <class T>
struct host_batch {
  specdec::index_t batch = 0;
  specdec::index_t vocab = 0;
  std::vector<specdec::index_t> offsets;
  std::vector<specdec::token_id> tokens;
  std::vector<T> target, draft;
  std::vector<specdec::sampling::sampling_params> params;
  std::vector<std::uint64_t> ids;
  std::vector<specdec::index_t> positions;
  std::uint64_t seed = 2024;
  specdec::distribution_kind kind = specdec::distribution_kind::logits;

  specdec::index_t total() const {
    return offsets.back();
  }
  specdec::verify::chain_batch<T> view() const {
    specdec::verify::chain_batch<T> b;
    b.batch = batch;
    b.draft_offsets = offsets.data();
    b.tokens = tokens.data();
    b.target = {target.data(), total() + batch, vocab, vocab};
    b.draft = {draft.data(), total(), vocab, vocab};
    b.target_kind = kind;
    b.draft_kind = kind;
    b.params = params.data();
    b.params_stride = 1;
    b.request_ids = ids.data();
    b.positions = positions.data();
    b.seed = seed;
    return b;
  }
};

/// Rows of `vocab` logits into T: the logits themselves, or their softmax (in double) when
/// `probabilities`. Shared by the chain batch below and the tree batch of test_verify_tree.cu.
template <class T>
void convert_rows(const std::vector<float>& src,
                  std::vector<T>& dst,
                  specdec::index_t v,
                  bool probabilities) {
  using specdec::index_t;
  dst.resize(src.size());
  const std::size_t rows = src.size() / static_cast<std::size_t>(v);
  for (std::size_t r = 0; r < rows; ++r) {
    const float* row = src.data() + r * static_cast<std::size_t>(v);
    float mx = -1e30f;
    double z = 0.0;
    if (probabilities) {
      for (index_t i = 0; i < v; ++i)
        mx = std::max(mx, row[i]);
      for (index_t i = 0; i < v; ++i)
        z += std::exp(static_cast<double>(row[i] - mx));
    }
    for (index_t i = 0; i < v; ++i) {
      const float x = probabilities
                          ? static_cast<float>(std::exp(static_cast<double>(row[i] - mx)) / z)
                          : row[i];
      dst[r * static_cast<std::size_t>(v) + static_cast<std::size_t>(i)] =
          specdec::dtype_traits<T>::from_float(x);
    }
  }
}

/// Options of make_batch.
struct batch_shape {
  specdec::index_t batch = 64;
  specdec::index_t vocab = 4096;
  int max_drafts = 6;
  bool probabilities = false;
  std::uint32_t seed = 7;
};

/// Target rows: normal logits (sigma 1.5) with a few peaked tokens; draft rows: target plus
/// noise (sigma 0.6); tokens: the draft argmax, a peaked token or a random one. Probability rows
/// are the softmax of those logits. Parameters cycle through plain, temperature, top-k, top-p,
/// min-p and a combination.
template <class T>
host_batch<T> make_batch(const batch_shape& s) {
  using specdec::index_t;
  host_batch<T> h;
  h.batch = s.batch;
  h.vocab = s.vocab;
  h.kind = s.probabilities ? specdec::distribution_kind::probabilities
                           : specdec::distribution_kind::logits;
  std::mt19937_64 rng(s.seed);
  std::normal_distribution<float> logit(0.0f, 1.5f);
  std::normal_distribution<float> noise(0.0f, 0.6f);
  h.offsets.push_back(0);
  for (index_t b = 0; b < s.batch; ++b)
    h.offsets.push_back(
        h.offsets.back()
        + static_cast<index_t>(rng() % static_cast<std::uint64_t>(s.max_drafts + 1)));
  const index_t total = h.total();
  const index_t v = s.vocab;
  std::vector<float> t(static_cast<std::size_t>((total + s.batch) * v));
  std::vector<float> d(static_cast<std::size_t>(total * v));
  for (auto& x : t)
    x = logit(rng);
  for (index_t r = 0; r < total + s.batch; ++r)
    for (int p = 0; p < 4; ++p)
      t[static_cast<std::size_t>(r * v + static_cast<index_t>(rng() % 64))] +=
          6.0f - static_cast<float>(p);
  h.tokens.resize(static_cast<std::size_t>(total));
  for (index_t b = 0; b < s.batch; ++b) {
    for (index_t j = h.offsets[b]; j < h.offsets[b + 1]; ++j) {
      const index_t trow = j + b; // the target row scoring draft j
      float best = -1e30f;
      index_t arg = 0;
      for (index_t i = 0; i < v; ++i) {
        const float x = t[static_cast<std::size_t>(trow * v + i)] + noise(rng);
        d[static_cast<std::size_t>(j * v + i)] = x;
        if (x > best) {
          best = x;
          arg = i;
        }
      }
      const auto pick = rng() % 4;
      h.tokens[static_cast<std::size_t>(j)] = static_cast<specdec::token_id>(
          pick < 2 ? arg
                   : (pick == 2 ? static_cast<index_t>(rng() % 64)
                                : static_cast<index_t>(rng() % static_cast<std::uint64_t>(v))));
    }
  }
  convert_rows(t, h.target, v, s.probabilities);
  convert_rows(d, h.draft, v, s.probabilities);
  for (index_t b = 0; b < s.batch; ++b) {
    specdec::sampling::sampling_params p;
    switch (b % 6) {
    case 0:
      break;
    case 1:
      p.temperature = 0.7f;
      break;
    case 2:
      p.top_k = 20;
      break;
    case 3:
      p.top_p = 0.8f;
      break;
    case 4:
      p.min_p = 0.05f;
      break;
    default:
      p.temperature = 1.3f;
      p.top_k = 50;
      p.top_p = 0.9f;
      break;
    }
    h.params.push_back(p);
    h.ids.push_back(1000003u * static_cast<std::uint64_t>(b) + 17u);
    h.positions.push_back(static_cast<index_t>(rng() % 4096));
  }
  return h;
}

/// Results of one batch (host or device).
struct results {
  std::vector<std::int32_t> accepted;
  std::vector<specdec::token_id> next;
  std::vector<specdec::row_status> status;
};

/// Host results of the same batch.
template <class Policy, class T>
results host_run(const Policy& policy, const host_batch<T>& h) {
  results r;
  r.accepted.resize(static_cast<std::size_t>(h.batch));
  r.next.resize(static_cast<std::size_t>(h.batch));
  r.status.resize(static_cast<std::size_t>(h.batch));
  const specdec::status st = specdec::cpu::verify_chain_batch(
      policy,
      h.view(),
      specdec::verify::chain_batch_output{r.accepted.data(), r.next.data(), r.status.data()});
  (void)st; // bad rows are expected in some tests; per-request flags are compared instead
  return r;
}

/// Uniforms scaled by a factor (the tie rule's perturbation).
struct scaled_uniforms {
  specdec::philox_uniforms base;
  float factor;
  SPECDEC_HD float
  operator()(specdec::index_t pos, specdec::draw_purpose p, std::uint32_t lane = 0) const {
    const float x = base(pos, p, lane) * factor;
    return x < 0.99999994f ? x : 0.99999994f;
  }
};

/// Comparison counts.
struct comparison {
  int equal = 0;
  int ties = 0;
  int hard = 0;
  std::vector<specdec::index_t> hard_rows;
};

/// The tie rule (see the file comment) for one request whose device outcome differs from the
/// host's: true when `rerun(params, factor)` (the host rule rerun with `params`, its top_p
/// scaled by 1 +- 2^-12 when below 1, and its uniforms scaled by `factor` = 1 +- 2^-12 or 1)
/// reproduces the device outcome for some perturbation. Shared by chain and tree comparisons.
template <class Rerun>
bool is_tie(const specdec::sampling::sampling_params& params, Rerun&& rerun) {
  const float delta = 1.0f / 4096.0f;
  for (const float fu : {1.0f - delta, 1.0f, 1.0f + delta}) {
    for (const float fp : {1.0f - delta, 1.0f, 1.0f + delta}) {
      specdec::sampling::sampling_params p = params;
      if (p.top_p < 1.0f)
        p.top_p = std::min(1.0f, p.top_p * fp);
      else if (fp != 1.0f)
        continue;
      if (rerun(p, fu))
        return true;
    }
  }
  return false;
}

/// Compares device results with the host's under the tie rule (see the file comment).
template <class Policy, class T>
comparison compare(const Policy& policy, const host_batch<T>& h, const results& dev) {
  const results host = host_run(policy, h);
  comparison c;
  const auto view = h.view();
  for (specdec::index_t b = 0; b < h.batch; ++b) {
    const auto i = static_cast<std::size_t>(b);
    if (host.accepted[i] == dev.accepted[i] && host.next[i] == dev.next[i]
        && host.status[i] == dev.status[i]) {
      ++c.equal;
      continue;
    }
    const bool tie =
        is_tie(view.request(b).params, [&](const specdec::sampling::sampling_params& p, float fu) {
          specdec::verify::chain_request<T> r = view.request(b);
          r.params = p;
          const specdec::verify::chain_outcome o = policy.verify_chain(
              specdec::cpu::serial_executor{}, r, scaled_uniforms{view.uniforms(b), fu});
          return o.accepted == dev.accepted[i] && o.next == dev.next[i];
        });
    if (tie) {
      ++c.ties;
    } else {
      ++c.hard;
      c.hard_rows.push_back(b);
    }
  }
  return c;
}

} // namespace specdec_test
