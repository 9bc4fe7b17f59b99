// SPDX-License-Identifier: Apache-2.0
//
// Speculative decoding on the real model (stories260K):
//   - greedy speculative output equals plain greedy output token for token, for the n-gram and
//     early-exit drafters at several draft lengths and with the cost-aware controller, on a story
//     prompt and on a copy-heavy prompt;
//   - at temperature 1 the joint law of the first two emitted tokens after a fixed prompt matches
//     the model's exact law (chi-square on 1e6 seeded runs, cells expected < 5 pooled, bound: the
//     1 - 1e-6 quantile), for both drafters; a loop that skips verification fails the same test.
//
// The 1e6 runs go through a memoising wrapper of the model: it returns the rows the real model
// computes for (committed prefix + scored tokens), computing each distinct key once by scoring the
// whole key from position 0. Because the backend is batch-invariant those rows are bitwise the
// ones incremental decoding would see, so the wrapper changes the cost, not the law.
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/propose/early_exit.hpp>
#include <specdec/propose/ngram.hpp>
#include <specdec/propose/no_draft.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/rejection.hpp>

#include <catch2/catch.hpp>

#include "llama2c/cli.hpp"
#include "llama2c/model.hpp"
#include "llama2c/paths.hpp"
#include "llama2c/session.hpp"
#include "support/llama2c.hpp"
#include "support/sanitizer.hpp"
#include "support/stats.hpp"
#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace {

using specdec::index_t;
using specdec::status;
using specdec::token_id;
using specdec_test::shared_model_once;
namespace decode = specdec::decode;

std::vector<token_id> greedy_story(std::int64_t n) {
  llama2c::model& m = shared_model_once();
  specdec::propose::no_drafter none;
  decode::speculative_decoder dec(
      m, m.cache(), none, specdec::verify::greedy{}, specdec::sched::fixed_draft_length{0});
  decode::decode_config cfg;
  cfg.max_new_tokens = n;
  cfg.params.temperature = 0.0f;
  decode::decode_result r;
  REQUIRE(dec.generate(std::vector<token_id>{1}, cfg, r).ok());
  return r.tokens;
}

} // namespace

TEST_CASE("llama2c speculative: greedy output equals plain greedy for every drafter and length") {
  llama2c::model& m = shared_model_once();
  const std::vector<token_id> story = greedy_story(346);
  std::vector<token_id> copy_heavy{1};
  copy_heavy.insert(copy_heavy.end(), story.begin(), story.end());
  struct prompt_case {
    std::vector<token_id> tokens;
    std::int64_t steps;
  };
  for (const prompt_case& pc : {prompt_case{{1}, 160}, prompt_case{copy_heavy, 100}}) {
    llama2c::session_options base;
    base.steps = pc.steps;
    base.repeat = 1;
    base.profile_reps = 2;
    base.stop_at_bos = false;
    for (int k : {-1, 1, 2, 4, 8}) {
      CAPTURE(pc.tokens.size(), k);
      llama2c::session_options o = base;
      o.drafter = llama2c::drafter_kind::ngram;
      o.draft_len = k;
      llama2c::session_report r;
      REQUIRE(llama2c::run_session(m, pc.tokens, o, r).ok());
      REQUIRE(r.plain.tokens.size() == static_cast<std::size_t>(pc.steps));
      CHECK(r.speculative.tokens == r.plain.tokens);
      if (k > 0)
        CHECK(r.speculative.stats.accepted > 0);
    }
    for (int layers : {1, 3}) {
      for (int k : {-1, 1, 3}) {
        CAPTURE(pc.tokens.size(), layers, k);
        llama2c::session_options o = base;
        o.drafter = llama2c::drafter_kind::early_exit;
        o.layers = layers;
        o.draft_len = k;
        llama2c::session_report r;
        REQUIRE(llama2c::run_session(m, pc.tokens, o, r).ok());
        CHECK(r.speculative.tokens == r.plain.tokens);
        if (k > 0)
          CHECK(r.speculative.stats.drafted > 0);
      }
    }
  }
  // The copy-heavy prompt is what it claims: the n-gram drafter's drafts are mostly accepted.
  llama2c::session_options o;
  o.steps = 100;
  o.repeat = 1;
  o.profile_reps = 2;
  o.stop_at_bos = false;
  o.draft_len = 4;
  llama2c::session_report r;
  REQUIRE(llama2c::run_session(m, copy_heavy, o, r).ok());
  CHECK(r.speculative.stats.tau() > 2.0);
}

namespace {

// Memoising layered target over the real model (see the file comment). Its cache is virtual: the
// committed tokens, rolled back by the decoder like a real cache.
class memo_target {
public:
  struct cache_type {
    static constexpr specdec::kv::rollback_class rollback_kind =
        specdec::kv::rollback_class::partial;
    std::vector<token_id> tokens;
    index_t capacity_ = 0;
    [[nodiscard]] status rollback(index_t n) {
      if (n < 0 || n > static_cast<index_t>(tokens.size()))
        return status{specdec::errc::invalid_argument};
      tokens.resize(static_cast<std::size_t>(n));
      return status{};
    }
    [[nodiscard]] index_t length() const {
      return static_cast<index_t>(tokens.size());
    }
    [[nodiscard]] index_t capacity() const {
      return capacity_;
    }
  };

  explicit memo_target(llama2c::model& m)
      : m_(&m) {
    cache_.capacity_ = m.cache().capacity();
  }
  cache_type& cache() {
    return cache_;
  }
  index_t vocab_size() const {
    return m_->vocab_size();
  }
  int num_layers() const {
    return m_->num_layers();
  }
  status score(const specdec::score_request& r, specdec::matrix_view<float> out) {
    if (r.start > cache_.length())
      return status{specdec::errc::invalid_argument};
    std::vector<token_id> key(cache_.tokens.begin(), cache_.tokens.begin() + r.start);
    key.insert(key.end(), r.tokens.begin(), r.tokens.end());
    const status s = rows(key, 0, r.tokens.size, out);
    if (s.ok())
      cache_.tokens = key;
    draft_.clear();
    return s;
  }
  status
  score_layers(const specdec::score_request& r, int layers, specdec::matrix_view<float> out) {
    // The drafter chains single tokens past the committed length: keep them in draft_.
    if (r.start < cache_.length()
        || r.start > cache_.length() + static_cast<index_t>(draft_.size()))
      return status{specdec::errc::invalid_argument};
    draft_.resize(static_cast<std::size_t>(r.start - cache_.length()));
    std::vector<token_id> key = cache_.tokens;
    key.insert(key.end(), draft_.begin(), draft_.end());
    key.insert(key.end(), r.tokens.begin(), r.tokens.end());
    draft_.insert(draft_.end(), r.tokens.begin(), r.tokens.end());
    return rows(key, layers, r.tokens.size, out);
  }
  std::size_t misses = 0;

private:
  // The last `n` rows of scoring `key` from position 0 through `layers` layers (0 = all).
  status
  rows(const std::vector<token_id>& key, int layers, index_t n, specdec::matrix_view<float> out) {
    std::vector<token_id> k = key;
    k.push_back(-1 - layers);
    auto it = memo_.find(k);
    const index_t V = m_->vocab_size();
    if (it == memo_.end()) {
      ++misses;
      const index_t T = static_cast<index_t>(key.size());
      std::vector<float> all(static_cast<std::size_t>(T * V));
      (void)m_->cache().rollback(0);
      const specdec::score_request req{0, {key.data(), T}, 0};
      const status s = layers == 0 ? m_->score(req, {all.data(), T, V, V})
                                   : m_->score_layers(req, layers, {all.data(), T, V, V});
      if (!s.ok())
        return s;
      it = memo_.emplace(std::move(k), std::move(all)).first;
    }
    const index_t T = static_cast<index_t>(key.size());
    for (index_t i = 0; i < n; ++i)
      for (index_t v = 0; v < V; ++v)
        out(i, v) = it->second[static_cast<std::size_t>((T - n + i) * V + v)];
    return status{};
  }

  llama2c::model* m_;
  cache_type cache_;
  std::vector<token_id> draft_;
  std::map<std::vector<token_id>, std::vector<float>> memo_;
};

// Skips verification: accepts every draft, then samples the bonus token. A bug the test must see.
struct accept_all {
  static constexpr bool needs_draft_rows = false;
  template <class E, class TT, class TD, class U>
  specdec::verify::chain_outcome
  verify_chain(const E& ex, const specdec::verify::chain_request<TT, TD>& r, const U& u) const {
    specdec::verify::chain_request<TT, TD> tail = r;
    tail.target = r.target + r.num_drafts * r.target_stride;
    tail.num_drafts = 0;
    tail.position = r.position + r.num_drafts;
    specdec::verify::chain_outcome o =
        specdec::verify::one_hot_rejection{}.verify_chain(ex, tail, u);
    o.accepted = r.num_drafts;
    return o;
  }
};

// Exact law of the first two tokens after `prompt` at temperature 1, from the model's rows.
std::vector<double> exact_first_two(llama2c::model& m, const std::vector<token_id>& prompt) {
  const index_t V = m.vocab_size();
  const index_t n = static_cast<index_t>(prompt.size());
  std::vector<float> rows(static_cast<std::size_t>(n * V));
  REQUIRE(m.cache().rollback(0).ok());
  REQUIRE(m.score({0, {prompt.data(), n}, 0}, {rows.data(), n, V, V}).ok());
  auto softmax = [V](const float* x) {
    std::vector<double> p(static_cast<std::size_t>(V));
    double mx = -1e300, sum = 0.0;
    for (index_t v = 0; v < V; ++v)
      mx = std::max(mx, static_cast<double>(x[v]));
    for (index_t v = 0; v < V; ++v)
      sum += p[static_cast<std::size_t>(v)] = std::exp(static_cast<double>(x[v]) - mx);
    for (double& q : p)
      q /= sum;
    return p;
  };
  const std::vector<double> p1 = softmax(rows.data() + (n - 1) * V);
  std::vector<double> law(static_cast<std::size_t>(V * V), 0.0);
  std::vector<float> row(static_cast<std::size_t>(V));
  for (index_t a = 0; a < V; ++a) {
    const auto t = static_cast<token_id>(a);
    REQUIRE(m.score({0, {&t, 1}, n}, {row.data(), 1, V, V}).ok());
    REQUIRE(m.cache().rollback(n).ok());
    const std::vector<double> p2 = softmax(row.data());
    for (index_t b = 0; b < V; ++b)
      law[static_cast<std::size_t>(a * V + b)] =
          p1[static_cast<std::size_t>(a)] * p2[static_cast<std::size_t>(b)];
  }
  return law;
}

template <class Proposer, class Policy>
bool first_two_fit(memo_target& target,
                   Proposer& p,
                   Policy policy,
                   const std::vector<token_id>& prompt,
                   const std::vector<double>& law,
                   std::uint64_t draws,
                   double& statistic,
                   double& bound) {
  decode::speculative_decoder dec(
      target, target.cache(), p, policy, specdec::sched::fixed_draft_length{3});
  decode::decode_config cfg;
  cfg.max_new_tokens = 2;
  cfg.params.temperature = 1.0f;
  cfg.request_id = 5;
  const std::size_t V = static_cast<std::size_t>(target.vocab_size());
  std::vector<std::uint64_t> counts(V * V, 0);
  decode::decode_result out;
  for (std::uint64_t i = 0; i < draws; ++i) {
    cfg.seed = i;
    if constexpr (requires { p.set_seed(i); })
      p.set_seed(i * 7919 + 3);
    if (!dec.generate(prompt, cfg, out).ok() || out.tokens.size() != 2)
      FAIL("generate failed at draw " << i);
    ++counts[static_cast<std::size_t>(out.tokens[0]) * V + static_cast<std::size_t>(out.tokens[1])];
  }
  const std::vector<double> expected = specdec_test::expected_counts(law, draws);
  const specdec_test::chi_square_result chi = specdec_test::pooled_chi_square(counts, expected);
  statistic = chi.statistic;
  bound = specdec_test::chi_square_upper_quantile(chi.degrees_of_freedom, 1e-6);
  return specdec_test::fits(chi, 1e-6);
}

} // namespace

// Sanitized builds run 1e5 draws (about 10x slower per draw); release builds run the full 1e6.
constexpr std::uint64_t gof_draws = specdec_test::by_build<std::uint64_t>(1000000, 100000);

TEST_CASE("llama2c speculative: at T=1 the first two tokens follow the model's law (1e6 runs)") {
  llama2c::model& m = shared_model_once();
  // "Once upon a time" then a repeated phrase, so the n-gram drafter has matches to draft from.
  const std::vector<token_id> story = greedy_story(24);
  std::vector<token_id> prompt{1};
  prompt.insert(prompt.end(), story.begin(), story.begin() + 12);
  prompt.insert(prompt.end(), story.begin(), story.begin() + 6);
  const std::vector<double> law = exact_first_two(m, prompt);
  double stat = 0.0, bound = 0.0;

  memo_target t1(m);
  specdec::propose::ngram_proposer ngram({1, 0, 3});
  CHECK(first_two_fit(
      t1, ngram, specdec::verify::one_hot_rejection{}, prompt, law, gof_draws, stat, bound));
  INFO("n-gram: chi2 " << stat << " bound " << bound << " distinct scorings " << t1.misses);
  CHECK(stat <= bound);

  memo_target t2(m);
  specdec::sampling::sampling_params params;
  params.temperature = 1.0f;
  specdec::propose::early_exit_proposer<memo_target> early(t2, {2, 3, params, 99});
  CHECK(first_two_fit(
      t2, early, specdec::verify::rejection_sampling{}, prompt, law, gof_draws, stat, bound));
  INFO("early exit: chi2 " << stat << " bound " << bound << " distinct scorings " << t2.misses);
  CHECK(stat <= bound);

  memo_target t3(m);
  specdec::propose::ngram_proposer biased({1, 0, 3});
  CHECK_FALSE(first_two_fit(t3, biased, accept_all{}, prompt, law, gof_draws, stat, bound));
  INFO("accept-all: chi2 " << stat << " bound " << bound);
}

TEST_CASE("llama2c cli: --layers beyond the model names the model's layer count",
          "[llama2c][issue12]") {
  llama2c::model& m = shared_model_once();
  REQUIRE(m.num_layers() == 5);
  auto parse = [](std::vector<std::string> args, llama2c::cli_options& o) {
    std::vector<char*> argv;
    for (std::string& a : args)
      argv.push_back(a.data());
    return llama2c::parse_cli(static_cast<int>(argv.size()), argv.data(), o);
  };
  for (const char* layers : {"1000", "6", "100000"}) {
    llama2c::cli_options o;
    REQUIRE(parse({"speculative_generate", "--drafter", "early-exit", "--layers", layers}, o)
            == -1);
    CHECK(llama2c::check_model(o, m)
          == "--layers " + std::string(layers) + ": the model has 5 layers");
  }
  for (const char* layers : {"1", "5"}) {
    llama2c::cli_options o;
    REQUIRE(parse({"speculative_generate", "--layers", layers}, o) == -1);
    CHECK(llama2c::check_model(o, m).empty());
  }
}
