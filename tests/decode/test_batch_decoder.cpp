// SPDX-License-Identifier: Apache-2.0
// decode::batch_decoder against speculative_decoder run alone, on a toy batch target whose rows
// read the whole cached history from a paged pool (so a wrong rollback, a leaked or shared block,
// or a preemption that resumes from the wrong state changes the output): greedy and T = 1
// outputs identical alone and in any batch, requests joining / leaving / preempted mid-stream,
// no block leaked after 10^4 random steps, bad requests refused alone, the batch schedulers.

#include <specdec/decode/batch_decoder.hpp>
#include <specdec/decode/speculative_decoder.hpp>
#include <specdec/kv/batch_cache.hpp>
#include <specdec/propose/no_draft.hpp>
#include <specdec/sched/batch_length.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/rejection.hpp>

#include <catch2/catch.hpp>

#include "support/sanitizer.hpp"
#include "support/stats.hpp"
#include "support/toy_target.hpp"
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <vector>

namespace {

using specdec::index_t;
using specdec::status;
using specdec::token_id;
namespace decode = specdec::decode;
namespace sched = specdec::sched;
namespace kv = specdec::kv;
using specdec_test::toy_vocab;

// The logit of v after history h (tokens at positions [0, pos)) and x at pos: the toy logit of
// (h.back(), x) plus a term that depends on a hash of the whole history.
double hist_logit(
    const std::vector<token_id>& h, token_id x, index_t pos, index_t v, bool history = true) {
  std::uint32_t acc = 2166136261U;
  for (const token_id t : h)
    acc = (acc ^ static_cast<std::uint32_t>(t + 7)) * 16777619U;
  const token_id prev = h.empty() ? -1 : h.back();
  if (!history)
    return specdec_test::toy_logit(prev, x, pos, v);
  const double extra = (specdec_test::toy_mix(acc + static_cast<std::uint32_t>(v)) % 4U) * 0.35;
  return specdec_test::toy_logit(prev, x, pos, v) + extra;
}

// The single-sequence reference target (contiguous cache of tokens).
struct hist_target {
  kv::contiguous_cache<float> cache;
  explicit hist_target(index_t capacity) {
    const kv::plane_desc d{1, kv::plane_layout::position_major};
    REQUIRE(cache.allocate(capacity, {&d, 1}).ok());
  }
  index_t vocab_size() const {
    return toy_vocab;
  }
  status score(const specdec::score_request& r, specdec::matrix_view<float> out) {
    const index_t n = r.tokens.size;
    if (r.start < 0 || r.start > cache.length() || out.rows < n || out.cols != toy_vocab)
      return status{specdec::errc::invalid_argument};
    if (r.start + n > cache.capacity())
      return status{specdec::errc::overflow};
    (void)cache.rollback(r.start);
    std::vector<token_id> h;
    for (index_t p = 0; p < r.start; ++p)
      h.push_back(static_cast<token_id>(cache.at(0, p, 0)));
    for (index_t i = 0; i < n; ++i) {
      const index_t pos = r.start + i;
      cache.at(0, pos, 0) = static_cast<float>(r.tokens[i]);
      for (index_t v = 0; v < toy_vocab; ++v)
        out(i, v) = static_cast<float>(hist_logit(h, r.tokens[i], pos, v));
      h.push_back(r.tokens[i]);
    }
    return cache.extend(r.start + n);
  }
};

// The batch target over a paged pool (one plane of width 1: the token of each position).
struct hist_batch_target {
  kv::paged_batch_cache<float> cache;
  std::int64_t calls = 0;
  index_t max_rows = 0;
  bool history = true; // false: exactly the toy target's logits (its law is known in closed form)
  hist_batch_target(index_t blocks, index_t block_size, index_t capacity) {
    const kv::plane_desc d{1, kv::plane_layout::position_major};
    REQUIRE(cache.allocate(blocks, block_size, {&d, 1}, capacity).ok());
  }
  index_t vocab_size() const {
    return toy_vocab;
  }
  status score_batch(std::span<const specdec::score_request> reqs,
                     specdec::matrix_view<float> out) {
    index_t rows = 0;
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      const auto& r = reqs[i];
      if (!cache.contains(r.request_id) || r.start < 0 || r.start > cache.length(r.request_id))
        return status{specdec::errc::invalid_argument};
      for (std::size_t j = 0; j < i; ++j)
        if (reqs[j].request_id == r.request_id)
          return status{specdec::errc::invalid_argument};
      if (r.start + r.tokens.size > cache.capacity()
          || cache.pool().reserved(cache.sequence(r.request_id)) < r.start + r.tokens.size)
        return status{specdec::errc::overflow};
      rows += r.tokens.size;
    }
    if (out.rows < rows || out.cols != toy_vocab)
      return status{specdec::errc::shape_mismatch};
    ++calls;
    max_rows = std::max(max_rows, rows);
    auto& pool = cache.pool();
    index_t row = 0;
    for (const auto& r : reqs) {
      const kv::sequence_id s = cache.sequence(r.request_id);
      if (!pool.rollback(s, r.start).ok())
        return status{specdec::errc::invalid_argument};
      std::vector<token_id> h;
      for (index_t p = 0; p < r.start; ++p)
        h.push_back(static_cast<token_id>(*pool.slot(s, p, 0)));
      if (!pool.extend(s, r.start + r.tokens.size).ok())
        return status{specdec::errc::overflow};
      for (index_t i = 0; i < r.tokens.size; ++i, ++row) {
        const index_t pos = r.start + i;
        *pool.writable(s, pos, 0) = static_cast<float>(r.tokens[i]);
        for (index_t v = 0; v < toy_vocab; ++v)
          out(row, v) = static_cast<float>(hist_logit(h, r.tokens[i], pos, v, history));
        h.push_back(r.tokens[i]);
      }
    }
    return status{};
  }
};
static_assert(specdec::batch_target_model<hist_batch_target>);

// A confident dense drafter: the toy dense drafter reporting max_v q_k(v) as its confidence of
// draft k, a function of the tokens before d_k only (as DSpark's confidence head: c_k may depend
// on x_{k-1}, never on d_k itself, or a confidence-based cut would select drafts by their value
// and bias the output).
struct confident_drafter : specdec_test::toy_dense_drafter {
  std::vector<double> conf;
  status propose(const specdec::draft_request& r, specdec::draft_block& b) {
    const status s = toy_dense_drafter::propose(r, b);
    conf.clear();
    for (index_t j = 0; j < b.length; ++j) {
      double mx = -1e300, sum = 0.0;
      for (index_t v = 0; v < toy_vocab; ++v)
        mx = std::max(mx, static_cast<double>(b.probs(j, v)));
      for (index_t v = 0; v < toy_vocab; ++v)
        sum += std::exp(static_cast<double>(b.probs(j, v)) - mx);
      conf.push_back(1.0 / sum); // the largest probability of row j
    }
    return s;
  }
  std::span<const double> confidences() const {
    return conf;
  }
};
static_assert(specdec::confident_proposer<confident_drafter>);

std::vector<token_id> make_prompt(std::mt19937& g, index_t len) {
  std::vector<token_id> p(static_cast<std::size_t>(len));
  for (token_id& t : p)
    t = static_cast<token_id>(g() % toy_vocab);
  return p;
}

// Decodes a request alone with speculative_decoder (the reference).
template <class Proposer, class Policy>
std::vector<token_id> alone(const std::vector<token_id>& prompt,
                            decode::decode_config cfg,
                            std::uint64_t id,
                            Proposer proposer,
                            Policy policy,
                            index_t gamma,
                            index_t capacity) {
  hist_target target(capacity);
  cfg.request_id = id;
  decode::speculative_decoder dec(
      target, target.cache, proposer, policy, sched::fixed_draft_length{static_cast<int>(gamma)});
  decode::decode_result out;
  REQUIRE(dec.generate(prompt, cfg, out).ok());
  return out.tokens;
}

struct job {
  std::uint64_t id;
  std::vector<token_id> prompt;
  decode::decode_config cfg;
};

std::vector<job> make_jobs(std::mt19937& g, int count, float temperature) {
  std::vector<job> jobs;
  for (int i = 0; i < count; ++i) {
    job j;
    j.id = 1000 + static_cast<std::uint64_t>(i) * 7919;
    j.prompt = make_prompt(g, 1 + static_cast<index_t>(g() % 40));
    j.cfg.max_new_tokens = 5 + static_cast<std::int64_t>(g() % 40);
    j.cfg.params.temperature = temperature;
    j.cfg.seed = 17 + static_cast<std::uint64_t>(i % 3);
    j.cfg.max_draft = 6;
    j.cfg.prefill_chunk = 1 + static_cast<std::int32_t>(g() % 9);
    if (i % 4 == 1)
      j.cfg.end_tokens = {static_cast<token_id>(g() % toy_vocab)};
    jobs.push_back(j);
  }
  return jobs;
}

// Runs jobs through a batch decoder, submitting job i at step `join[i]`; returns the outputs.
template <class Decoder>
std::map<std::uint64_t, decode::batch_finished>
run_batch(Decoder& dec, const std::vector<job>& jobs, const std::vector<int>& join) {
  std::map<std::uint64_t, decode::batch_finished> done;
  int step = 0;
  std::size_t submitted = 0;
  while (submitted < jobs.size() || !dec.idle()) {
    for (std::size_t i = 0; i < jobs.size(); ++i)
      if (join[i] == step) {
        REQUIRE(dec.submit(jobs[i].id, jobs[i].prompt, jobs[i].cfg).ok());
        ++submitted;
      }
    REQUIRE(dec.step().ok());
    for (auto& f : dec.take_finished())
      done.emplace(f.request_id, std::move(f));
    ++step;
    REQUIRE(step < 100000);
  }
  return done;
}

} // namespace

TEST_CASE("batch decoder: greedy output of every request equals decoding it alone",
          "[decode][batch]") {
  std::mt19937 g(11);
  const std::vector<job> jobs = make_jobs(g, 24, 0.0f);
  for (const index_t max_requests : {1, 3, 8, 64}) {
    CAPTURE(max_requests);
    hist_batch_target target(512, 4, 256);
    decode::batch_decoder dec(target,
                              target.cache,
                              specdec_test::toy_oracle_drafter{},
                              specdec::verify::greedy{},
                              sched::batch_fixed_length{4},
                              decode::batch_decoder_config{max_requests, 40});
    std::vector<int> join(jobs.size());
    for (std::size_t i = 0; i < jobs.size(); ++i)
      join[i] = static_cast<int>(g() % 30);
    const auto done = run_batch(dec, jobs, join);
    REQUIRE(done.size() == jobs.size());
    for (const job& j : jobs) {
      const auto& f = done.at(j.id);
      REQUIRE(f.result.reason != decode::stop_reason::error);
      const auto plain = alone(
          j.prompt, j.cfg, j.id, specdec::propose::no_drafter{}, specdec::verify::greedy{}, 0, 256);
      CHECK(f.result.tokens == plain);
    }
    CHECK(target.max_rows <= 40);
    CHECK(target.cache.open_sequences() == 0);
    CHECK(target.cache.pool().free_blocks() == 512);
  }
}

TEST_CASE("batch decoder: at T = 1 a seeded request emits the same tokens alone and in any batch",
          "[decode][batch]") {
  std::mt19937 g(12);
  const std::vector<job> jobs = make_jobs(g, 20, 1.0f);
  specdec_test::toy_dense_drafter drafter;
  drafter.max_draft = 5;
  std::map<std::uint64_t, std::vector<token_id>> ref;
  for (const job& j : jobs)
    ref[j.id] =
        alone(j.prompt, j.cfg, j.id, drafter, specdec::verify::rejection_sampling{}, 3, 256);
  for (int trial = 0; trial < 3; ++trial) {
    CAPTURE(trial);
    // A small pool forces preemptions in the later trials.
    const index_t blocks = trial == 0 ? 1024 : (trial == 1 ? 60 : 40);
    hist_batch_target target(blocks, 4, 256);
    decode::batch_decoder dec(target,
                              target.cache,
                              drafter,
                              specdec::verify::rejection_sampling{},
                              sched::batch_fixed_length{3},
                              decode::batch_decoder_config{6 + 5 * trial, 64});
    std::vector<int> join(jobs.size());
    for (std::size_t i = 0; i < jobs.size(); ++i)
      join[i] = static_cast<int>(g() % 20);
    const auto done = run_batch(dec, jobs, join);
    REQUIRE(done.size() == jobs.size());
    std::int32_t preemptions = 0;
    for (const job& j : jobs) {
      const auto& f = done.at(j.id);
      REQUIRE(f.result.reason != decode::stop_reason::error);
      CHECK(f.result.tokens == ref[j.id]);
      preemptions += f.preemptions;
    }
    if (trial > 0)
      CHECK(preemptions > 0);
    CHECK(target.cache.pool().free_blocks() == blocks);
  }
}

TEST_CASE("batch decoder: explicit preemption and cancellation mid-stream", "[decode][batch]") {
  std::mt19937 g(13);
  const std::vector<job> jobs = make_jobs(g, 10, 1.0f);
  specdec_test::toy_dense_drafter drafter;
  hist_batch_target target(256, 4, 256);
  decode::batch_decoder dec(target,
                            target.cache,
                            drafter,
                            specdec::verify::rejection_sampling{},
                            sched::batch_fixed_length{3});
  for (const job& j : jobs)
    REQUIRE(dec.submit(j.id, j.prompt, j.cfg).ok());
  CHECK(dec.submit(jobs[0].id, jobs[0].prompt, jobs[0].cfg).code
        == specdec::errc::invalid_argument); // duplicate id
  std::map<std::uint64_t, decode::batch_finished> done;
  for (int step = 0; !dec.idle(); ++step) {
    REQUIRE(dec.step().ok());
    if (step == 3 || step == 7)
      CHECK(dec.preempt(jobs[2].id).ok());
    if (step == 5)
      CHECK(dec.cancel(jobs[5].id).ok());
    if (step == 9) // the first request still open
      for (const job& j : jobs)
        if (dec.preempt(j.id).ok())
          break;
    for (auto& f : dec.take_finished())
      done.emplace(f.request_id, std::move(f));
    REQUIRE(step < 10000);
  }
  CHECK(dec.cancel(jobs[5].id).code == specdec::errc::invalid_argument);
  CHECK_FALSE(done.contains(jobs[5].id));
  for (const job& j : jobs) {
    if (j.id == jobs[5].id)
      continue;
    const auto ref =
        alone(j.prompt, j.cfg, j.id, drafter, specdec::verify::rejection_sampling{}, 3, 256);
    CHECK(done.at(j.id).result.tokens == ref);
  }
  CHECK(target.cache.pool().free_blocks() == 256);
}

TEST_CASE("batch decoder: no block leaked after 10^4 random join / leave / preempt steps",
          "[decode][batch]") {
  std::mt19937 g(14);
  hist_batch_target target(96, 4, 128);
  specdec_test::toy_dense_drafter drafter;
  decode::batch_decoder dec(target,
                            target.cache,
                            drafter,
                            specdec::verify::rejection_sampling{},
                            sched::batch_fixed_length{4},
                            decode::batch_decoder_config{12, 48});
  std::vector<std::uint64_t> live;
  std::uint64_t next_id = 1;
  std::int64_t finished = 0, preempted = 0, cancelled = 0;
  for (int step = 0; step < 10000; ++step) {
    const unsigned action = g() % 16;
    if (action < 3) {
      decode::decode_config cfg;
      cfg.max_new_tokens = 1 + static_cast<std::int64_t>(g() % 60);
      cfg.params.temperature = (g() % 2) ? 1.0f : 0.7f;
      cfg.seed = g();
      cfg.prefill_chunk = 1 + static_cast<std::int32_t>(g() % 16);
      const auto prompt = make_prompt(g, 1 + static_cast<index_t>(g() % 100));
      REQUIRE(dec.submit(next_id, prompt, cfg).ok());
      live.push_back(next_id++);
    } else if (action == 3 && !live.empty()) {
      const std::uint64_t id = live[g() % live.size()];
      if (dec.preempt(id).ok())
        ++preempted;
    } else if (action == 4 && !live.empty()) {
      const std::size_t at = g() % live.size();
      if (dec.cancel(live[at]).ok()) {
        ++cancelled;
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(at));
      }
    }
    REQUIRE(dec.step().ok());
    for (const auto& f : dec.take_finished()) {
      CAPTURE(f.result.error.message());
      REQUIRE(f.result.reason != decode::stop_reason::error);
      std::erase(live, f.request_id);
      ++finished;
    }
    // Every held block belongs to an open request.
    index_t held = 0;
    for (const std::uint64_t id : live)
      if (target.cache.contains(id))
        held +=
            static_cast<index_t>(target.cache.pool().block_table(target.cache.sequence(id)).size());
    REQUIRE(held == target.cache.pool().used_blocks());
  }
  while (!dec.idle()) {
    REQUIRE(dec.step().ok());
    for (const auto& f : dec.take_finished())
      std::erase(live, f.request_id);
  }
  CHECK(live.empty());
  CHECK(finished > 100);
  CHECK(preempted > 50);
  CHECK(cancelled > 50);
  CHECK(target.cache.open_sequences() == 0);
  CHECK(target.cache.pool().free_blocks() == 96);
}

TEST_CASE("batch decoder: bad requests are refused alone and the batch goes on",
          "[decode][batch]") {
  hist_batch_target target(256, 4, 64);
  decode::batch_decoder dec(target,
                            target.cache,
                            specdec_test::toy_oracle_drafter{},
                            specdec::verify::greedy{},
                            sched::batch_fixed_length{4});
  decode::decode_config good;
  good.max_new_tokens = 20;
  const std::vector<token_id> prompt{1, 2, 3};
  REQUIRE(dec.submit(1, prompt, good).ok());
  REQUIRE(dec.step().ok());
  CHECK(dec.submit(2, {}, good).code == specdec::errc::invalid_argument);
  const std::vector<token_id> long_prompt(65, 1);
  CHECK(dec.submit(3, long_prompt, good).code == specdec::errc::overflow);
  decode::decode_config nan_temp = good;
  nan_temp.params.temperature = std::numeric_limits<float>::quiet_NaN();
  CHECK_FALSE(dec.submit(4, prompt, nan_temp).ok());
  decode::decode_config bad_p = good;
  bad_p.params.top_p = 1.5f;
  CHECK(dec.submit(5, prompt, bad_p).code == specdec::errc::invalid_top_p);
  const std::vector<token_id> bad_token{1, toy_vocab};
  CHECK(dec.submit(6, bad_token, good).code == specdec::errc::token_out_of_range);
  CHECK(dec.submit(1, prompt, good).code == specdec::errc::invalid_argument);
  decode::decode_config neg = good;
  neg.max_new_tokens = -1;
  CHECK(dec.submit(7, prompt, neg).code == specdec::errc::invalid_argument);
  REQUIRE(dec.submit(8, prompt, good).ok());
  std::map<std::uint64_t, decode::batch_finished> done;
  while (!dec.idle()) {
    REQUIRE(dec.step().ok());
    for (auto& f : dec.take_finished())
      done.emplace(f.request_id, std::move(f));
  }
  REQUIRE(done.size() == 2);
  const auto ref =
      alone(prompt, good, 1, specdec::propose::no_drafter{}, specdec::verify::greedy{}, 0, 64);
  CHECK(done.at(1).result.tokens == ref);
  CHECK(done.at(8).result.tokens.size() == 20);
  // A bad engine config is refused by step().
  decode::batch_decoder bad(target,
                            target.cache,
                            specdec_test::toy_oracle_drafter{},
                            specdec::verify::greedy{},
                            sched::batch_fixed_length{4},
                            decode::batch_decoder_config{0, 4});
  CHECK(bad.step().code == specdec::errc::invalid_argument);
}

TEST_CASE("batch decoder: the batch schedulers keep greedy output exact and cut by confidence",
          "[decode][batch][sched]") {
  std::mt19937 g(15);
  const std::vector<job> jobs = make_jobs(g, 16, 0.0f);
  // A step curve where verification is cheap up to 24 tokens, then slows down.
  const sched::sps_table table{{1, 100.0}, {8, 99.0}, {24, 95.0}, {48, 50.0}, {96, 20.0}};
  auto check_policy = [&](auto length, const char* name) {
    CAPTURE(name);
    hist_batch_target target(1024, 4, 256);
    confident_drafter drafter;
    drafter.max_draft = 6;
    decode::batch_decoder dec(target,
                              target.cache,
                              drafter,
                              specdec::verify::greedy{},
                              std::move(length),
                              decode::batch_decoder_config{16, 128});
    std::vector<int> join(jobs.size(), 0);
    index_t drafted = 0, offered_cut = 0;
    std::map<std::uint64_t, decode::batch_finished> done;
    std::size_t submitted = 0;
    for (int step = 0; submitted < jobs.size() || !dec.idle(); ++step) {
      for (; submitted < jobs.size(); ++submitted)
        REQUIRE(dec.submit(jobs[submitted].id, jobs[submitted].prompt, jobs[submitted].cfg).ok());
      REQUIRE(dec.step().ok());
      drafted += dec.last_step().drafted;
      for (auto& f : dec.take_finished())
        done.emplace(f.request_id, std::move(f));
      REQUIRE(step < 10000);
    }
    (void)offered_cut;
    REQUIRE(done.size() == jobs.size());
    for (const job& j : jobs) {
      const auto plain = alone(
          j.prompt, j.cfg, j.id, specdec::propose::no_drafter{}, specdec::verify::greedy{}, 0, 256);
      CHECK(done.at(j.id).result.tokens == plain);
    }
    return drafted;
  };
  const index_t all = check_policy(sched::batch_fixed_length{6}, "fixed 6");
  const index_t theta = check_policy(sched::batch_threshold_length{0.3}, "theta 0.3");
  const index_t alg1 = check_policy(sched::batch_prefix_schedule{table}, "algorithm 1");
  const index_t global =
      check_policy(sched::batch_prefix_schedule{table, sched::schedule_mode::global}, "global");
  const index_t topk = check_policy(sched::batch_async_top_k{table}, "async top-K");
  // The cuts verify fewer drafts than always verifying six.
  CHECK(theta < all);
  CHECK(alg1 < all);
  CHECK(global < all);
  CHECK(topk < all);
  CHECK(alg1 > 0);
}

namespace {

// The first two tokens emitted after {3, 7} by `draws` requests decoded 256 at a time at T = 1
// with Algorithm 1 choosing every step's lengths from the whole batch's confidences.
specdec_test::chi_square_result batch_first_two(bool lie, std::int64_t draws, double& bound) {
  const std::vector<token_id> prompt{3, 7};
  hist_batch_target target(4096, 4, 16);
  target.history = false;
  confident_drafter drafter;
  drafter.max_draft = 2;
  drafter.lie = lie;
  // Verification is nearly free up to 400 tokens, then slows: lengths depend on the batch.
  const sched::sps_table table{{1, 100.0}, {400, 99.0}, {600, 60.0}, {1000, 30.0}};
  decode::batch_decoder dec(target,
                            target.cache,
                            drafter,
                            specdec::verify::rejection_sampling{},
                            sched::batch_prefix_schedule{table},
                            decode::batch_decoder_config{256, 4096});
  std::vector<std::uint64_t> counts(static_cast<std::size_t>(toy_vocab * toy_vocab), 0);
  std::int64_t sent = 0, got = 0, drafted = 0, bad = 0;
  auto send = [&] {
    decode::decode_config cfg;
    cfg.max_new_tokens = 3;
    cfg.max_draft = 2;
    cfg.params.temperature = 1.0f;
    cfg.seed = static_cast<std::uint64_t>(sent) * 7919 + 1;
    bad += dec.submit(static_cast<std::uint64_t>(sent) + 1, prompt, cfg).ok() ? 0 : 1;
    ++sent;
  };
  while (sent < 256)
    send();
  // Failures are counted and checked once (an assertion per request would dominate the run).
  while (!dec.idle() && bad == 0) {
    bad += dec.step().ok() ? 0 : 1;
    drafted += dec.last_step().drafted;
    for (const auto& f : dec.take_finished()) {
      if (f.result.tokens.size() < 2) {
        ++bad;
        continue;
      }
      ++counts[static_cast<std::size_t>(f.result.tokens[0] * toy_vocab + f.result.tokens[1])];
      ++got;
      if (sent < draws)
        send();
    }
  }
  REQUIRE(bad == 0);
  REQUIRE(got == draws);
  CHECK(drafted > draws / 4); // the scheduler verified drafts (and cut others)
  CHECK(drafted < 2 * draws);
  const std::vector<double> law = specdec_test::toy_first_two_law(prompt[0], prompt[1]);
  const auto chi =
      specdec_test::pooled_chi_square(counts, specdec_test::expected_counts(law, draws));
  bound = specdec_test::chi_square_upper_quantile(chi.degrees_of_freedom, 1e-6);
  return chi;
}

} // namespace

TEST_CASE("batch decoder: at T = 1 under Algorithm 1 the first two tokens follow the target law "
          "(10^6 requests), and a drafter misreporting q fails the same test",
          "[decode][batch][gof]") {
  // Sanitized builds (about 10x slower per request) decode 2e5 requests; release builds 1e6.
  const std::int64_t draws = specdec_test::by_build<std::int64_t>(1000000, 200000);
  double bound = 0.0;
  const auto chi = batch_first_two(false, draws, bound);
  INFO("chi2 " << chi.statistic << " dof " << chi.degrees_of_freedom << " bound " << bound
               << " min expected " << chi.min_expected);
  CHECK(chi.min_expected > 5.0);
  CHECK(specdec_test::fits(chi, 1e-6));
  double bound2 = 0.0;
  const auto biased = batch_first_two(true, draws, bound2);
  INFO("biased: chi2 " << biased.statistic << " bound " << bound2);
  CHECK_FALSE(specdec_test::fits(biased, 1e-6));
}
