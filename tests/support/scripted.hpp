// SPDX-License-Identifier: Apache-2.0
#pragma once
// Test support: scripted uniform sources and small helpers for building chain requests.

#include <specdec/specdec.hpp>

#include <cstdint>
#include <vector>

namespace specdec_test {

/// A uniform source that returns scripted values: accept coins by draft index (position -
/// base), and one value for every sample draw.
struct scripted_uniforms {
  std::vector<float> accept;
  float sample = 0.0f;
  specdec::index_t base = 0;

  float operator()(specdec::index_t position, specdec::draw_purpose p, std::uint32_t = 0) const {
    if (p == specdec::draw_purpose::accept)
      return accept.at(static_cast<std::size_t>(position - base));
    return sample;
  }
};

/// A chain request over float rows held by the caller.
inline specdec::verify::chain_request<float>
make_request(const std::vector<float>& target,
             const std::vector<float>& draft,
             const std::vector<specdec::token_id>& tokens,
             specdec::index_t vocab,
             specdec::distribution_kind kind,
             specdec::sampling::sampling_params params = {}) {
  specdec::verify::chain_request<float> r;
  r.target = target.data();
  r.target_stride = vocab;
  r.draft = draft.empty() ? nullptr : draft.data();
  r.draft_stride = vocab;
  r.tokens = tokens.data();
  r.num_drafts = static_cast<std::int32_t>(tokens.size());
  r.vocab = vocab;
  r.target_kind = kind;
  r.draft_kind = kind;
  r.params = params;
  return r;
}

} // namespace specdec_test
