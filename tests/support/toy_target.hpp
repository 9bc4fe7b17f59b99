// SPDX-License-Identifier: Apache-2.0
#pragma once
// The toy target of the decoder tests and its drafters:
//  - toy_logit: a fixed pseudo-random next-token logit in [-3, 3] after (prev, x) at a position;
//  - toy_law / toy_argmax / toy_first_two_law: its exact law at temperature 1 and its argmax;
//  - toy_target: keeps the token of every slot in a one-plane contiguous cache and reads a row's
//    previous token from it (chain: the slot before; tree: the parent's slot), as a transformer
//    reads its keys, so a wrong rollback or path compaction changes the output;
//  - toy_oracle_drafter (one-hot, greedy with every third position corrupted) and
//    toy_dense_drafter (q = softmax(0.5 * target logits + a position hash), seeded).

#include <specdec/core/rng.hpp>
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/kv/contiguous_cache.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace specdec_test {

inline constexpr specdec::index_t toy_vocab = 16;

inline std::uint32_t toy_mix(std::uint32_t h) {
  h ^= h >> 16;
  h *= 0x7feb352dU;
  h ^= h >> 15;
  h *= 0x846ca68bU;
  h ^= h >> 16;
  return h;
}

/// Logit of token v after (prev, x) with x at position pos: a fixed pseudo-random value in [-3, 3].
inline double
toy_logit(specdec::token_id prev, specdec::token_id x, specdec::index_t pos, specdec::index_t v) {
  using specdec::index_t;
  const auto key =
      static_cast<std::uint32_t>(static_cast<index_t>(prev + 1) * 977
                                 + static_cast<index_t>(x) * 131 + (pos % 3) * 17 + v * 100003);
  return -3.0 + 6.0 * static_cast<double>(toy_mix(key) % 10007U) / 10006.0;
}

/// The exact next-token law at temperature 1 (double precision).
inline std::vector<double>
toy_law(specdec::token_id prev, specdec::token_id x, specdec::index_t pos) {
  std::vector<double> p(static_cast<std::size_t>(toy_vocab));
  double mx = -1e300;
  for (specdec::index_t v = 0; v < toy_vocab; ++v)
    mx = std::max(mx, toy_logit(prev, x, pos, v));
  double sum = 0.0;
  for (specdec::index_t v = 0; v < toy_vocab; ++v)
    sum += p[static_cast<std::size_t>(v)] = std::exp(toy_logit(prev, x, pos, v) - mx);
  for (double& q : p)
    q /= sum;
  return p;
}

/// Joint law of the first two tokens emitted after the prompt {a, b}: cell t0 * vocab + t1.
inline std::vector<double> toy_first_two_law(specdec::token_id a, specdec::token_id b) {
  using specdec::index_t;
  std::vector<double> law(static_cast<std::size_t>(toy_vocab * toy_vocab));
  const std::vector<double> p1 = toy_law(a, b, 1);
  for (index_t t0 = 0; t0 < toy_vocab; ++t0) {
    const std::vector<double> p2 = toy_law(b, static_cast<specdec::token_id>(t0), 2);
    for (index_t t1 = 0; t1 < toy_vocab; ++t1)
      law[static_cast<std::size_t>(t0 * toy_vocab + t1)] =
          p1[static_cast<std::size_t>(t0)] * p2[static_cast<std::size_t>(t1)];
  }
  return law;
}

inline specdec::token_id
toy_argmax(specdec::token_id prev, specdec::token_id x, specdec::index_t pos) {
  specdec::index_t best = 0;
  for (specdec::index_t v = 1; v < toy_vocab; ++v)
    if (toy_logit(prev, x, pos, v) > toy_logit(prev, x, pos, best))
      best = v;
  return static_cast<specdec::token_id>(best);
}

/// The toy target (chain and tree scoring), counting its calls and scored rows.
struct toy_target {
  specdec::kv::contiguous_cache<float> cache;
  std::int64_t tree_calls = 0;
  std::int64_t rows_scored = 0;

  explicit toy_target(specdec::index_t capacity) {
    const specdec::kv::plane_desc d{1, specdec::kv::plane_layout::position_major};
    REQUIRE(cache.allocate(capacity, {&d, 1}).ok());
  }
  specdec::index_t vocab_size() const {
    return toy_vocab;
  }
  specdec::token_id slot_token(specdec::index_t slot) const {
    return slot >= 0 ? static_cast<specdec::token_id>(cache.at(0, slot, 0)) : specdec::token_id{-1};
  }
  specdec::status score(const specdec::score_request& r, specdec::matrix_view<float> out) {
    using specdec::errc;
    using specdec::index_t;
    const index_t n = r.tokens.size;
    if (r.start < 0 || r.start > cache.length() || out.rows < n || out.cols != toy_vocab)
      return specdec::status{errc::invalid_argument};
    if (r.start + n > cache.capacity())
      return specdec::status{errc::overflow};
    (void)cache.rollback(r.start);
    for (index_t i = 0; i < n; ++i) {
      const index_t pos = r.start + i;
      const specdec::token_id prev = slot_token(pos - 1);
      cache.at(0, pos, 0) = static_cast<float>(r.tokens[i]);
      for (index_t v = 0; v < toy_vocab; ++v)
        out(i, v) = static_cast<float>(toy_logit(prev, r.tokens[i], pos, v));
    }
    rows_scored += n;
    return cache.extend(r.start + n);
  }
  specdec::status score_tree(specdec::index_t start,
                             specdec::row_view<const specdec::token_id> tokens,
                             specdec::row_view<const std::int32_t> parents,
                             specdec::matrix_view<float> out) {
    using specdec::errc;
    using specdec::index_t;
    const index_t n = tokens.size;
    if (start < 0 || start > cache.length() || out.rows < n || out.cols != toy_vocab
        || parents.size != n)
      return specdec::status{errc::invalid_argument};
    if (start + n > cache.capacity())
      return specdec::status{errc::overflow};
    (void)cache.rollback(start);
    std::vector<index_t> depth(static_cast<std::size_t>(n), 0);
    for (index_t j = 0; j < n; ++j) {
      const std::int32_t p = parents[j];
      if (p < -1 || p >= j || (j > 0 && p < 0))
        return specdec::status{errc::invalid_argument};
      depth[static_cast<std::size_t>(j)] = p < 0 ? 0 : depth[static_cast<std::size_t>(p)] + 1;
      const index_t pos = start + depth[static_cast<std::size_t>(j)];
      const specdec::token_id prev = p < 0 ? slot_token(start - 1) : slot_token(start + p);
      cache.at(0, start + j, 0) = static_cast<float>(tokens[j]);
      for (index_t v = 0; v < toy_vocab; ++v)
        out(j, v) = static_cast<float>(toy_logit(prev, tokens[j], pos, v));
    }
    ++tree_calls;
    rows_scored += n;
    return cache.extend(start + n);
  }
};

/// One-hot chain drafter: the target's greedy continuation, every third position corrupted.
struct toy_oracle_drafter {
  int max_draft = 6;
  specdec::status propose(const specdec::draft_request& r, specdec::draft_block& b) const {
    using specdec::index_t;
    using specdec::token_id;
    const index_t n = r.context.size;
    token_id prev = n > 1 ? r.context[n - 2] : -1;
    token_id x = r.context[n - 1];
    b.length = 0;
    const index_t k = std::min<index_t>(r.max_tokens, b.tokens.size);
    for (index_t j = 0; j < k; ++j) {
      token_id d = toy_argmax(prev, x, n - 1 + j);
      if ((n + j) % 3 == 0)
        d = static_cast<token_id>((d + 1) % toy_vocab);
      b.tokens[j] = d;
      prev = x;
      x = d;
      b.length = static_cast<std::int32_t>(j + 1);
    }
    return specdec::status{};
  }
  int max_draft_len() const {
    return max_draft;
  }
};

/// Dense chain drafter: q = softmax(0.5 * target logits + a position hash), sampled by its own
/// stream keyed by the request. With `lie` it samples from q but reports the target's rows,
/// which biases rejection sampling.
struct toy_dense_drafter {
  static constexpr bool writes_draft_rows = true;
  int max_draft = 3;
  bool lie = false;
  std::uint64_t seed = 0;

  static double
  q_logit(specdec::token_id prev, specdec::token_id x, specdec::index_t pos, specdec::index_t v) {
    return 0.5 * toy_logit(prev, x, pos, v)
           + static_cast<double>(toy_mix(static_cast<std::uint32_t>(pos * 31 + v)) % 7U) * 0.3;
  }
  specdec::status propose(const specdec::draft_request& r, specdec::draft_block& b) const {
    using specdec::index_t;
    using specdec::token_id;
    const index_t n = r.context.size;
    token_id prev = n > 1 ? r.context[n - 2] : -1;
    token_id x = r.context[n - 1];
    b.length = 0;
    b.probs_kind = specdec::distribution_kind::logits;
    const index_t k = std::min<index_t>({r.max_tokens, b.tokens.size, b.probs.rows});
    const specdec::rng_key key{seed, r.request_id};
    for (index_t j = 0; j < k; ++j) {
      const index_t pos = n - 1 + j;
      std::vector<double> w(static_cast<std::size_t>(toy_vocab));
      double sum = 0.0;
      for (index_t v = 0; v < toy_vocab; ++v) {
        const double ql = q_logit(prev, x, pos, v);
        b.probs(j, v) = static_cast<float>(lie ? toy_logit(prev, x, pos, v) : ql);
        sum += w[static_cast<std::size_t>(v)] = std::exp(ql);
      }
      double u = specdec::uniform_at(key, pos + 1, specdec::draw_purpose::auxiliary) * sum;
      token_id d = toy_vocab - 1;
      for (index_t v = 0; v < toy_vocab; ++v) {
        u -= w[static_cast<std::size_t>(v)];
        if (u < 0.0) {
          d = static_cast<token_id>(v);
          break;
        }
      }
      b.tokens[j] = d;
      prev = x;
      x = d;
      b.length = static_cast<std::int32_t>(j + 1);
    }
    return specdec::status{};
  }
  int max_draft_len() const {
    return max_draft;
  }
};

} // namespace specdec_test
