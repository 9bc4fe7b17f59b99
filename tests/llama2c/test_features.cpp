// SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief llama2c::model as a feature_target_model on stories260K: the logits are score()'s
///        bitwise, the feature rows are batch-invariant (chunkings and tree vs chain agree
///        bitwise), layer 0 is the embedding, and bad requests change nothing.
#include <specdec/core/concepts.hpp>
#include <specdec/core/diagnostics.hpp>

#include <catch2/catch.hpp>

#include "llama2c/model.hpp"
#include "support/llama2c.hpp"
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

using specdec::index_t;
using specdec::token_id;

SPECDEC_CHECK(feature_target_model, llama2c::model);
SPECDEC_CHECK(tree_feature_target_model, llama2c::model);

const std::vector<token_id> tokens{1, 403, 261, 378, 285, 269, 286, 346, 60, 334, 285};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

} // namespace

TEST_CASE("llama2c features: logits unchanged, rows batch-invariant, layer 0 the embedding",
          "[llama2c][features]") {
  llama2c::model& m = specdec_test::shared_model();
  const index_t V = m.vocab_size();
  const index_t d = m.hidden_size();
  const index_t T = static_cast<index_t>(tokens.size());
  const std::vector<std::int32_t> layers{0, 1, m.num_layers()};
  const index_t cols = static_cast<index_t>(layers.size()) * d;
  const specdec::row_view<const std::int32_t> lv{layers.data(),
                                                 static_cast<index_t>(layers.size())};

  // Plain logits.
  std::vector<float> plain(static_cast<std::size_t>(T * V));
  m.reset();
  REQUIRE(m.score({0, {tokens.data(), T}, 0}, {plain.data(), T, V, V}).ok());

  // All rows in one call, with features.
  std::vector<float> logits(static_cast<std::size_t>(T * V));
  std::vector<float> feat(static_cast<std::size_t>(T * cols));
  m.reset();
  REQUIRE(m.score_features({0, {tokens.data(), T}, 0},
                           {logits.data(), T, V, V},
                           {lv, {feat.data(), T, cols, cols}})
              .ok());
  CHECK(same_bits(logits, plain));

  // Row by row: the same feature bits (batch invariance).
  std::vector<float> feat1(static_cast<std::size_t>(T * cols));
  std::vector<float> row(static_cast<std::size_t>(V));
  m.reset();
  for (index_t t = 0; t < T; ++t)
    REQUIRE(m.score_features({0, {tokens.data() + t, 1}, t},
                             {row.data(), 1, V, V},
                             {lv, {feat1.data() + t * cols, 1, cols, cols}})
                .ok());
  CHECK(same_bits(feat1, feat));

  // Layer 0 is the token embedding: the same for equal tokens at any position.
  CHECK(std::memcmp(feat.data() + 4 * cols,
                    feat.data() + 10 * cols,
                    sizeof(float) * static_cast<std::size_t>(d))
        == 0);
  // Deeper layers differ from the embedding.
  CHECK(std::memcmp(feat.data(), feat.data() + d, sizeof(float) * static_cast<std::size_t>(d))
        != 0);

  // No layer requested: score() itself (out untouched).
  std::vector<float> untouched(4, 7.0f);
  m.reset();
  REQUIRE(m.score_features({0, {tokens.data(), T}, 0},
                           {logits.data(), T, V, V},
                           {{}, {untouched.data(), 1, 4, 4}})
              .ok());
  CHECK(same_bits(logits, plain));
  CHECK(untouched == std::vector<float>(4, 7.0f));
}

TEST_CASE("llama2c features: a tree node's features equal its root path scored as a chain",
          "[llama2c][features][tree]") {
  llama2c::model& m = specdec_test::shared_model();
  const index_t V = m.vocab_size();
  const index_t d = m.hidden_size();
  const std::vector<std::int32_t> layers{m.num_layers(), 2};
  const index_t cols = 2 * d;
  const specdec::row_view<const std::int32_t> lv{layers.data(), 2};
  const index_t P = 5; // committed prefix tokens[0..P)

  // Tree after the prefix: root = tokens[P], children a = 261 and b = 378, a's child 285.
  const std::vector<token_id> nodes{tokens[P], 261, 378, 285};
  const std::vector<std::int32_t> parents{-1, 0, 0, 1};
  std::vector<float> logits(4 * static_cast<std::size_t>(V));
  std::vector<float> feat(4 * static_cast<std::size_t>(cols));
  m.reset();
  std::vector<float> scratch(static_cast<std::size_t>(P * V));
  REQUIRE(m.score({0, {tokens.data(), P}, 0}, {scratch.data(), P, V, V}).ok());
  REQUIRE(m.score_tree_features(P,
                                {nodes.data(), 4},
                                {parents.data(), 4},
                                {logits.data(), 4, V, V},
                                {lv, {feat.data(), 4, cols, cols}})
              .ok());

  // Path root -> a -> 285 as a chain.
  const std::vector<token_id> path{tokens[P], 261, 285};
  std::vector<float> clog(3 * static_cast<std::size_t>(V));
  std::vector<float> cfeat(3 * static_cast<std::size_t>(cols));
  m.reset();
  REQUIRE(m.score({0, {tokens.data(), P}, 0}, {scratch.data(), P, V, V}).ok());
  REQUIRE(m.score_features({0, {path.data(), 3}, P},
                           {clog.data(), 3, V, V},
                           {lv, {cfeat.data(), 3, cols, cols}})
              .ok());
  const auto bytes = sizeof(float) * static_cast<std::size_t>(cols);
  CHECK(std::memcmp(feat.data(), cfeat.data(), bytes) == 0);                       // root
  CHECK(std::memcmp(feat.data() + cols, cfeat.data() + cols, bytes) == 0);         // a
  CHECK(std::memcmp(feat.data() + 3 * cols, cfeat.data() + 2 * cols, bytes) == 0); // 285
}

TEST_CASE("llama2c features: bad layers or a small output fail and change nothing",
          "[llama2c][features]") {
  llama2c::model& m = specdec_test::shared_model();
  const index_t V = m.vocab_size();
  const index_t d = m.hidden_size();
  std::vector<float> logits(static_cast<std::size_t>(2 * V));
  std::vector<float> feat(static_cast<std::size_t>(2 * d));
  m.reset();
  const std::vector<std::int32_t> bad{m.num_layers() + 1};
  CHECK(m.score_features({0, {tokens.data(), 2}, 0},
                         {logits.data(), 2, V, V},
                         {{bad.data(), 1}, {feat.data(), 2, d, d}})
            .code
        == specdec::errc::invalid_argument);
  const std::vector<std::int32_t> neg{-1};
  CHECK(m.score_features({0, {tokens.data(), 2}, 0},
                         {logits.data(), 2, V, V},
                         {{neg.data(), 1}, {feat.data(), 2, d, d}})
            .code
        == specdec::errc::invalid_argument);
  const std::vector<std::int32_t> two{0, 1};
  CHECK(m.score_features({0, {tokens.data(), 2}, 0},
                         {logits.data(), 2, V, V},
                         {{two.data(), 2}, {feat.data(), 2, d, d}})
            .code
        == specdec::errc::shape_mismatch);
  CHECK(m.cache().length() == 0);
}
