// SPDX-License-Identifier: Apache-2.0
// 01_bring_your_own_backend: plug an engine's own model types into specdec.
//
// The engine owns a character bigram target (log-probabilities in an Eigen matrix) and a unigram
// draft proposer; SPECDEC_CHECK proves they model specdec's target_model and draft_proposer. Each
// round proposes a draft (sampled from the unigram, whose rows become the draft probs), scores
// anchor + draft with the target and verifies it with cpu::verify_chain_batch, once with lossless
// rejection sampling and once with greedy verification. The bigram is batch-invariant (row j
// depends on token j only), so greedy speculation must equal plain greedy decoding: checked.

#include <specdec/specdec.hpp>

#include <Eigen/Dense>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace {

using namespace specdec;
using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

const std::string alphabet = " abcdefghijklmnopqrstuvwxyz"; // token id = index
constexpr index_t V = 27;
const std::string corpus = "the cat sat on the mat and the dog sat on the log then the cat ran to "
                           "the dog and the dog ran to the sun and they sat in the hot sun";

token_id to_token(char c) {
  const auto pos = alphabet.find(c);
  return pos == std::string::npos ? 0 : static_cast<token_id>(pos);
}

/// The engine's target: log P(next | previous) from bigram counts (+0.001 smoothing).
class my_bigram_target {
public:
  explicit my_bigram_target(const std::string& text)
      : logp_(row_major::Constant(V, V, 0.001f)) {
    for (std::size_t i = 1; i < text.size(); ++i)
      logp_(to_token(text[i - 1]), to_token(text[i])) += 1;
    const Eigen::VectorXf totals = logp_.rowwise().sum();
    logp_ = (logp_.array().colwise() / totals.array()).log().matrix();
  }
  index_t vocab_size() const {
    return V;
  }
  /// Row j: the distribution of the token after tokens[0..j] (a bigram looks at tokens[j] only).
  status score(const score_request& r, matrix_view<float> logits) {
    if (logits.rows < r.tokens.size || logits.cols != V)
      return {errc::shape_mismatch};
    for (index_t j = 0; j < r.tokens.size; ++j) {
      if (r.tokens[j] < 0 || r.tokens[j] >= V)
        return {errc::token_out_of_range};
      Eigen::Map<Eigen::RowVectorXf>(logits.row(j).data, V) = logp_.row(r.tokens[j]);
    }
    return {};
  }

private:
  row_major logp_;
};
SPECDEC_CHECK(target_model, my_bigram_target);

/// The engine's drafter: samples every draft token from the corpus's unigram distribution
/// (Philox-keyed, so runs are reproducible) and writes that distribution as each draft row.
class my_unigram_drafter {
public:
  my_unigram_drafter(const std::string& text, int max_len, std::uint64_t seed)
      : probs_(Eigen::RowVectorXf::Constant(V, 0.01f))
      , max_len_(max_len)
      , seed_(seed) {
    for (char c : text)
      probs_(to_token(c)) += 1;
    probs_ /= probs_.sum();
  }
  int max_draft_len() const {
    return max_len_;
  }
  status propose(const draft_request& r, draft_block& b) {
    const cpu::serial_executor ex{};
    const sampling::dist_row<float> row{probs_.data(), V, distribution_kind::probabilities};
    const sampling::row_stats st = sampling::prepare_row(ex, row, sampling::sampling_params{});
    b.length = std::min({r.max_tokens, static_cast<std::int32_t>(b.tokens.size), max_len_});
    for (std::int32_t j = 0; j < b.length; ++j) {
      const float u =
          uniform_at({seed_, r.request_id}, r.context.size + j, draw_purpose::auxiliary);
      b.tokens[j] = static_cast<token_id>(sampling::sample_row(ex, row, st, u));
      if (j < b.probs.rows)
        Eigen::Map<Eigen::RowVectorXf>(b.probs.row(j).data, V) = probs_;
    }
    return {};
  }

private:
  Eigen::RowVectorXf probs_;
  std::int32_t max_len_;
  std::uint64_t seed_;
};
SPECDEC_CHECK(draft_proposer, my_unigram_drafter);

/// Speculative generation of `length` tokens after "t" with one verification rule.
template <class Policy>
std::vector<token_id>
generate(const char* name, const Policy& rule, my_bigram_target& target, std::size_t length) {
  my_unigram_drafter drafter(corpus, 4, /*seed=*/11);
  const std::int32_t K = drafter.max_draft_len();
  std::vector<token_id> text{to_token('t')}, chain(static_cast<std::size_t>(K) + 1);
  row_major draft_probs(K, V), logits(K + 1, V);
  std::printf("%-18s accepted per round:", name);
  while (text.size() < length) {
    draft_block block{{chain.data() + 1, K}, make_matrix_view(draft_probs.data(), K, V), 0};
    const draft_request dreq{1, {text.data(), static_cast<index_t>(text.size())}, K};
    if (!drafter.propose(dreq, block).ok())
      return {};
    chain[0] = text.back(); // the anchor: the last committed token
    const auto start = static_cast<index_t>(text.size()) - 1;
    const score_request sreq{1, {chain.data(), block.length + 1}, start};
    if (!target.score(sreq, make_matrix_view(logits.data(), block.length + 1, V)).ok())
      return {};

    const index_t offsets[2] = {0, block.length}, positions[1] = {start + 1};
    const std::uint64_t ids[1] = {1};
    const sampling::sampling_params params{}; // T = 1, no truncation
    verify::chain_batch<float> batch;
    batch.batch = 1;
    batch.draft_offsets = offsets;
    batch.tokens = chain.data() + 1;
    batch.target = make_matrix_view<const float>(logits.data(), block.length + 1, V);
    batch.draft = make_matrix_view<const float>(draft_probs.data(), block.length, V);
    batch.draft_kind = distribution_kind::probabilities;
    batch.params = &params;
    batch.request_ids = ids;
    batch.positions = positions;
    batch.seed = 2024;
    verify::chain_outcome o;
    if (!cpu::verify_chain_batch(rule, batch, {&o.accepted, &o.next, &o.status}).ok())
      return {};
    text.insert(text.end(), chain.begin() + 1, chain.begin() + 1 + o.accepted);
    text.push_back(o.next);
    std::printf(" %d", o.accepted);
  }
  text.resize(length);
  std::string s;
  for (token_id t : text)
    s += alphabet[static_cast<std::size_t>(t)];
  std::printf("\n%-18s text: \"%s\"\n", "", s.c_str());
  return text;
}

} // namespace

int main() {
  constexpr std::size_t length = 60;
  my_bigram_target target(corpus);
  generate("rejection_sampling", verify::rejection_sampling{}, target, length);
  const std::vector<token_id> spec = generate("greedy", verify::greedy{}, target, length);
  // Plain greedy decoding of the same target, for comparison.
  std::vector<token_id> plain{to_token('t')};
  std::vector<float> row(V);
  while (plain.size() < length) {
    const score_request r{1, {&plain.back(), 1}, static_cast<index_t>(plain.size()) - 1};
    if (!target.score(r, make_matrix_view(row.data(), 1, V)).ok())
      return 1;
    plain.push_back(static_cast<token_id>(std::max_element(row.begin(), row.end()) - row.begin()));
  }
  const bool same = spec == plain;
  std::printf("greedy speculation %s plain greedy decoding\n", same ? "matches" : "DIFFERS FROM");
  return same ? 0 : 1;
}
