// SPDX-License-Identifier: Apache-2.0
// 00_demo: every chain verification rule on synthetic target/draft distributions.
//
// Each round is one request: K+1 target logit rows over V tokens (a normal bulk plus a few peaked
// tokens) and K draft rows (target + N(0, noise^2), so --noise sets the draft quality); the K
// drafts are sampled from the processed draft rows. Rounds are verified 16 per batch with
// cpu::verify_chain_batch under every chain rule, at T = 1 and at T = 0.7 with top-p = 0.9. The
// table gives tau (mean tokens per round, bonus included), the conditional acceptance at each
// draft position (P[accept x_j | x_1..x_{j-1} accepted]) and verification throughput (rows handed
// to the verifier per second: K+1 target rows, plus K draft rows for rules that read them).
// Flags: --rounds N (default 64) --k K (6) --vocab V (32000) --seed S (1) --noise X (0.6) --json
// (one JSON object on stdout). The default run takes seconds; the T = 0.7 / top-p rows take most
// of it, since top-p costs the host executor many vocabulary passes. --rounds 400 tightens the
// per-position estimates.

#include <specdec/specdec.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using namespace specdec;

struct options {
  int rounds = 64, k = 6; // 64 rounds keep the default run short: see the note above
  index_t vocab = 32000;
  std::uint64_t seed = 1;
  float noise = 0.6f;
  bool json = false;
};

struct rng { // splitmix64
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() {
    return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f);
  }
  float normal() { // Irwin-Hall(4), unit variance
    const std::uint64_t w = next();
    float sum = 0.0f;
    for (int i = 0; i < 4; ++i)
      sum += static_cast<float>((w >> (16 * i)) & 0xffffu);
    return (sum / 65536.0f - 2.0f) * 1.7320508f;
  }
};

struct setting {
  const char* name;
  sampling::sampling_params params;
  std::vector<token_id> tokens; // the drafts of the current batch, sampled under `params`
};

struct result {
  std::string setting, rule;
  const char* lossless;
  std::vector<double> reached; // reached[j]: rounds with at least j drafts accepted
  double rows = 0, seconds = 0;
};

/// Verifies the batch under `rule` and adds its outcomes to `r`.
template <class Policy>
void verify_batch(const Policy& rule, const verify::chain_batch<float>& batch, result& r, int k) {
  const auto n = static_cast<std::size_t>(batch.batch);
  std::vector<std::int32_t> accepted(n);
  std::vector<token_id> next(n);
  std::vector<row_status> flags(n);
  const auto t0 = std::chrono::steady_clock::now();
  const status s =
      cpu::verify_chain_batch(rule, batch, {accepted.data(), next.data(), flags.data()});
  r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!s.ok())
    std::fprintf(stderr, "%s: %s\n", r.rule.c_str(), s.message());
  r.reached.resize(static_cast<std::size_t>(k) + 1);
  for (std::int32_t a : accepted)
    for (std::int32_t j = 0; j <= a; ++j)
      r.reached[static_cast<std::size_t>(j)] += 1;
  r.rows +=
      static_cast<double>(batch.target.rows + (Policy::needs_draft_rows ? batch.draft.rows : 0));
}

bool parse(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--json")
      o.json = true;
    else if (a == "--rounds")
      o.rounds = std::atoi(v), ++i;
    else if (a == "--k")
      o.k = std::atoi(v), ++i;
    else if (a == "--vocab")
      o.vocab = std::atol(v), ++i;
    else if (a == "--seed")
      o.seed = std::strtoull(v, nullptr, 10), ++i;
    else if (a == "--noise")
      o.noise = std::strtof(v, nullptr), ++i;
    else
      return false;
  }
  return o.rounds > 0 && o.k >= 1 && o.k <= 64 && o.vocab >= 2 && o.noise >= 0.0f;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  if (!parse(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: %s [--rounds N] [--k K] [--vocab V] [--seed S] [--noise X] [--json]\n",
                 argv[0]);
    return 2;
  }
  const index_t V = o.vocab, K = o.k, per_batch = 16;
  sampling::sampling_params t1, t07;
  t07.temperature = 0.7f;
  t07.top_p = 0.9f;
  std::vector<setting> settings{{"T=1", t1, {}}, {"T=0.7,top_p=0.9", t07, {}}};
  std::vector<result> results;
  const char* names[] = {"greedy",
                         "rejection_sampling",
                         "one_hot_rejection",
                         "typical_acceptance",
                         "block_verification",
                         "one_hot_block_verification"};
  // greedy emits the target's argmax; the one-hot rules are lossless only for deterministic
  // drafters (these drafts are sampled); typical acceptance is lossy by design.
  const char* lossless[] = {"argmax", "yes", "no*", "no", "yes", "no*"};
  for (const setting& s : settings)
    for (int i = 0; i < 6; ++i)
      results.push_back({s.name, names[i], lossless[i], {}, 0, 0});

  const auto start = std::chrono::steady_clock::now();
  rng g{o.seed};
  std::vector<float> target, draft;
  for (int done = 0; done < o.rounds; done += static_cast<int>(per_batch)) {
    const index_t B = std::min<index_t>(per_batch, o.rounds - done);
    target.resize(static_cast<std::size_t>(B * (K + 1) * V));
    draft.resize(static_cast<std::size_t>(B * K * V));
    for (index_t r = 0; r < B * (K + 1); ++r) {
      float* row = target.data() + r * V;
      for (index_t i = 0; i < V; ++i)
        row[i] = 1.5f * g.normal();
      float boost = std::log(static_cast<float>(V)) + 0.125f + 5.0f * g.uniform();
      for (int p = 1 + static_cast<int>(g.next() % 8u); p > 0;
           --p, boost -= 0.5f + 3.5f * g.uniform())
        row[g.next() % static_cast<std::uint64_t>(V)] = boost;
    }
    for (index_t b = 0; b < B; ++b)
      for (index_t j = 0; j < K; ++j)
        for (index_t i = 0; i < V; ++i)
          draft[static_cast<std::size_t>((b * K + j) * V + i)] =
              target[static_cast<std::size_t>((b * (K + 1) + j) * V + i)] + o.noise * g.normal();

    std::vector<index_t> offsets, positions(static_cast<std::size_t>(B), 0);
    std::vector<std::uint64_t> ids;
    for (index_t b = 0; b <= B; ++b)
      offsets.push_back(b * K);
    for (index_t b = 0; b < B; ++b)
      ids.push_back(static_cast<std::uint64_t>(done + b));
    std::size_t res = 0;
    for (setting& s : settings) {
      // The drafter's draws: each draft token from its processed draft row.
      s.tokens.clear();
      const cpu::serial_executor ex{};
      for (index_t r = 0; r < B * K; ++r) {
        const sampling::dist_row<float> row{draft.data() + r * V, V, distribution_kind::logits};
        const sampling::row_stats st = sampling::prepare_row(ex, row, s.params);
        s.tokens.push_back(static_cast<token_id>(sampling::sample_row(ex, row, st, g.uniform())));
      }
      verify::chain_batch<float> batch;
      batch.batch = B;
      batch.draft_offsets = offsets.data();
      batch.tokens = s.tokens.data();
      batch.target = make_matrix_view<const float>(target.data(), B * (K + 1), V);
      batch.draft = make_matrix_view<const float>(draft.data(), B * K, V);
      batch.params = &s.params;
      batch.request_ids = ids.data();
      batch.positions = positions.data();
      batch.seed = o.seed;
      verify_batch(verify::greedy{}, batch, results[res++], o.k);
      verify_batch(verify::rejection_sampling{}, batch, results[res++], o.k);
      verify_batch(verify::one_hot_rejection{}, batch, results[res++], o.k);
      verify_batch(verify::typical_acceptance{}, batch, results[res++], o.k);
      verify_batch(verify::block_verification{}, batch, results[res++], o.k);
      verify_batch(verify::one_hot_block_verification{}, batch, results[res++], o.k);
    }
  }

  // Both formats take the same arguments: JSON whitespace absorbs the text table's padding.
  const bool js = o.json;
  std::printf(
      js ? "{\"vocab\":%ld,\"k\":%d,\"rounds\":%d,\"seed\":%llu,\"noise\":%g,\"results\":["
         : "specdec demo: synthetic target/draft, V = %ld, K = %d, %d rounds, seed %llu, "
           "draft noise %.2f\n\nsetting          rule                        lossless   tau  ",
      static_cast<long>(V),
      o.k,
      o.rounds,
      static_cast<unsigned long long>(o.seed),
      static_cast<double>(o.noise));
  if (!js)
    std::printf("%-*s    rows/s\n", 5 * o.k, "acceptance at draft position 1..K");
  for (std::size_t i = 0; i < results.size(); ++i) {
    const result& r = results[i];
    double tau = 0;
    std::string alpha;
    for (std::size_t j = 0; j < r.reached.size(); ++j)
      tau += r.reached[j] / o.rounds;
    for (std::size_t j = 1; j < r.reached.size(); ++j) {
      char buf[32];
      const char* sep = j == 1 ? "" : (js ? "," : " ");
      if (r.reached[j - 1] > 0) // else no round got this far: no estimate
        std::snprintf(
            buf, sizeof buf, js ? "%s%.4f" : "%s%4.2f", sep, r.reached[j] / r.reached[j - 1]);
      else
        std::snprintf(buf, sizeof buf, js ? "%snull" : "%s   -", sep);
      alpha += buf;
    }
    std::printf(js ? "%s{\"setting\":\"%s\",\"rule\":\"%s\",\"lossless\":\"%s\",\"tau\":%.4f,"
                     "\"acceptance\":[%-*s],\"rows_per_s\":%.1f}"
                   : "%s%-16s %-27s %-8s %5.2f  %-*s %9.3g\n",
                i > 0 && js ? "," : "",
                r.setting.c_str(),
                r.rule.c_str(),
                r.lossless,
                tau,
                5 * o.k,
                alpha.c_str(),
                r.seconds > 0 ? r.rows / r.seconds : 0.0);
  }
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(js ? "],\"seconds\":%.2f}\n"
                 : "\n*: lossless only for deterministic drafters (these drafts are sampled).\n"
                   "%.1f s in all, data generation and draft sampling included.\n",
              total);
  return 0;
}
