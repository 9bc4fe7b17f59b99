// SPDX-License-Identifier: Apache-2.0
// The consumer's flags must not change our results. This program computes, with the public
// headers only, everything whose bits the library promises to be reproducible (the device
// computes the same bits): exp_f, processed rows and sampling (bisection and radix select),
// chain verification for the stochastic rules, the prefix scheduler's Theta trace and lengths
// (early stop and global search), STS calibration and the DSpark head math. It prints one FNV-1a
// digest per section. tests/CMakeLists.txt builds it several times, with -ffp-contract=off as the
// reference and with FMA-capable -march, -ffp-contract=fast (g++'s default), -ffp-contract=on and
// -fno-trapping-math, and cmake/SpecdecFlagsProbe.cmake requires every build to print the
// reference's digests. (Before core/math.hpp made its products unfusable, the -ffp-contract=fast
// build differed from the reference in exp_f, rows, verification and the scheduler.)

#include <specdec/specdec.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

using namespace specdec;

namespace {

struct digest {
  std::uint64_t h = 0xcbf29ce484222325ull;
  template <class T>
  void add(const T& v) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    for (unsigned char c : b) {
      h ^= c;
      h *= 0x100000001b3ull;
    }
  }
};

void print(const char* name, const digest& d, long items) {
  std::printf("%-12s %016llx %ld\n", name, static_cast<unsigned long long>(d.h), items);
}

// std::uniform_real_distribution is implementation-defined; this mapping is not.
float uniform(std::mt19937& g) {
  return static_cast<float>(g() >> 8) * (1.0f / 16777216.0f);
}
float normal_ish(std::mt19937& g, float scale) { // sum of four uniforms, centred
  float s = 0.0f;
  for (int i = 0; i < 4; ++i)
    s += uniform(g);
  return (s - 2.0f) * scale;
}

void probe_exp() {
  digest d;
  long n = 0;
  for (std::uint32_t i = 0; i < (1u << 20); ++i) {
    // Every 4096th float bit pattern, both signs: covers [-inf, inf] with NaNs.
    const float x = detail::bits_float(i * 4096u + (i & 4095u));
    d.add(detail::float_bits(detail::exp_f(x)));
    ++n;
  }
  print("exp_f", d, n);
}

sampling::sampling_params random_params(std::mt19937& g) {
  const float temps[] = {0.0f, 0.3f, 0.7f, 1.0f, 1.3f};
  const int ks[] = {0, 0, 1, 5, 50};
  const float ps[] = {1.0f, 1.0f, 0.9f, 0.5f, 0.97f};
  const float minps[] = {0.0f, 0.0f, 0.05f};
  sampling::sampling_params p;
  p.temperature = temps[g() % 5];
  p.top_k = ks[g() % 5];
  p.top_p = ps[g() % 5];
  p.min_p = minps[g() % 3];
  return p;
}

void probe_rows() {
  const cpu::serial_executor ex{};
  std::mt19937 g(7);
  digest d;
  long n = 0;
  const index_t vocabs[] = {7, 100, 512, 600, 3000};
  for (int it = 0; it < 400; ++it) {
    const index_t v = vocabs[it % 5];
    std::vector<float> row(static_cast<std::size_t>(v));
    const bool probs = it % 7 == 3;
    for (auto& x : row)
      x = probs ? uniform(g) : normal_ish(g, 3.0f);
    const sampling::sampling_params p = random_params(g);
    const sampling::dist_row<float> r{
        row.data(), v, probs ? distribution_kind::probabilities : distribution_kind::logits};
    const sampling::row_stats st = sampling::prepare_row(ex, r, p);
    d.add(st.status.bits);
    d.add(detail::float_bits(st.cut));
    d.add(detail::float_bits(st.mass));
    d.add(detail::float_bits(st.inv_mass));
    for (index_t i = 0; i < v; i += 1 + v / 64)
      d.add(detail::float_bits(sampling::prob_at(r, st, i)));
    for (int s = 0; s < 8; ++s)
      d.add(sampling::sample_row(ex, r, st, uniform(g)));
    ++n;
  }
  print("rows", d, n);
}

template <class Policy>
void probe_chain(const char* name, Policy policy) {
  std::mt19937 g(11);
  digest d;
  long n = 0;
  constexpr index_t V = 300;
  for (int it = 0; it < 60; ++it) {
    const index_t batch = 1 + static_cast<index_t>(g() % 12);
    std::vector<index_t> offsets{0};
    for (index_t b = 0; b < batch; ++b)
      offsets.push_back(offsets.back() + static_cast<index_t>(g() % 6));
    const index_t total = offsets.back();
    std::vector<float> target(static_cast<std::size_t>((total + batch) * V));
    std::vector<float> draft(static_cast<std::size_t>(total * V));
    for (auto& x : target)
      x = normal_ish(g, 2.5f);
    for (auto& x : draft)
      x = normal_ish(g, 2.5f);
    std::vector<token_id> tokens(static_cast<std::size_t>(total));
    for (std::size_t j = 0; j < tokens.size(); ++j) { // the draft row's argmax or a random id
      const float* q = draft.data() + j * V;
      index_t best = 0;
      for (index_t i = 1; i < V; ++i)
        best = q[i] > q[best] ? i : best;
      tokens[j] = static_cast<token_id>(g() % 2 ? best : static_cast<index_t>(g() % V));
    }
    std::vector<std::uint64_t> ids(static_cast<std::size_t>(batch));
    std::vector<index_t> positions(static_cast<std::size_t>(batch));
    for (index_t b = 0; b < batch; ++b) {
      ids[static_cast<std::size_t>(b)] = g();
      positions[static_cast<std::size_t>(b)] = static_cast<index_t>(g() % 1000);
    }
    sampling::sampling_params p = random_params(g);
    if (p.temperature == 0.0f)
      p.temperature = 1.0f;
    verify::chain_batch<float> cb;
    cb.batch = batch;
    cb.draft_offsets = offsets.data();
    cb.tokens = tokens.data();
    cb.target = {target.data(), total + batch, V, V};
    cb.draft = {draft.data(), total, V, V};
    cb.params = &p;
    cb.request_ids = ids.data();
    cb.positions = positions.data();
    cb.seed = 1234;
    std::vector<std::int32_t> accepted(static_cast<std::size_t>(batch));
    std::vector<token_id> next(static_cast<std::size_t>(batch));
    std::vector<row_status> flags(static_cast<std::size_t>(batch));
    const status s =
        cpu::verify_chain_batch(policy, cb, {accepted.data(), next.data(), flags.data()});
    d.add(s.code);
    for (index_t b = 0; b < batch; ++b) {
      d.add(accepted[static_cast<std::size_t>(b)]);
      d.add(next[static_cast<std::size_t>(b)]);
      d.add(flags[static_cast<std::size_t>(b)].bits);
      ++n;
    }
  }
  print(name, d, n);
}

void probe_scheduler() {
  std::mt19937 g(3);
  digest d;
  long n = 0;
  sched::prefix_scheduler sch;
  std::vector<sched::schedule_step> trace;
  for (int it = 0; it < 4000; ++it) {
    const index_t requests = 1 + static_cast<index_t>(g() % 16);
    std::vector<index_t> offsets{0};
    std::vector<double> c;
    for (index_t r = 0; r < requests; ++r) {
      const index_t len = static_cast<index_t>(g() % 8);
      // k / 1024 exactly (inputs must not depend on the flags either: no a * b + c here).
      for (index_t j = 0; j < len; ++j)
        c.push_back(static_cast<double>(1 + g() % 1024) / 1024.0);
      offsets.push_back(static_cast<index_t>(c.size()));
    }
    std::vector<sched::sps_point> pts;
    double sps = 1000.0 * (0.5 + static_cast<double>(uniform(g)));
    for (index_t b = 1; b <= 160; b += 1 + static_cast<index_t>(g() % 20)) {
      pts.push_back({b, sps});
      sps *= 0.55 + 0.5 * static_cast<double>(uniform(g)); // mostly decreasing, sometimes not
    }
    const sched::sps_table table(pts);
    std::vector<index_t> lengths(static_cast<std::size_t>(requests));
    for (const auto mode : {sched::schedule_mode::early_stop, sched::schedule_mode::global}) {
      sched::schedule_result res;
      const status s = sch.schedule(c, offsets, table, lengths, &res, mode, &trace);
      d.add(s.code);
      d.add(res.throughput);
      d.add(res.expected_tokens);
      d.add(res.admitted);
      for (const index_t l : lengths)
        d.add(l);
      for (const auto& step : trace) {
        d.add(step.throughput);
        d.add(step.expected_tokens);
      }
      ++n;
    }
  }
  print("scheduler", d, n);
}

void probe_calibration() {
  std::mt19937 g(5);
  digest d;
  long n = 0;
  for (int it = 0; it < 2000; ++it) {
    const std::size_t len = 1 + g() % 8;
    std::vector<double> z(len), t(len), c(len), a(len);
    for (std::size_t k = 0; k < len; ++k) {
      z[k] = static_cast<double>(normal_ish(g, 4.0f));
      t[k] = 0.25 + 4.0 * static_cast<double>(uniform(g));
    }
    const status s = calib::calibrate(z, t, c, a);
    d.add(s.code);
    for (std::size_t k = 0; k < len; ++k) {
      d.add(c[k]);
      d.add(a[k]);
    }
    ++n;
  }
  print("calibration", d, n);
}

void probe_heads() {
  std::mt19937 g(9);
  digest d;
  long n = 0;
  for (const auto kind :
       {propose::head_kind::markov, propose::head_kind::gated, propose::head_kind::rnn}) {
    constexpr index_t V = 50, rank = 16, hidden = 24;
    propose::sequential_head<float> head;
    head.kind = kind;
    head.vocab = V;
    head.rank = rank;
    head.hidden = hidden;
    head.w1.resize(static_cast<std::size_t>(V * rank));
    head.w2.resize(static_cast<std::size_t>(V * rank));
    for (auto& x : head.w1)
      x = normal_ish(g, 0.5f);
    for (auto& x : head.w2)
      x = normal_ish(g, 0.5f);
    const index_t proj_rows = kind == propose::head_kind::gated ? rank : 3 * rank;
    const index_t proj_in = kind == propose::head_kind::gated ? hidden + rank : 2 * rank + hidden;
    if (kind != propose::head_kind::markov) {
      head.proj_w.resize(static_cast<std::size_t>(proj_rows * proj_in));
      for (auto& x : head.proj_w)
        x = normal_ish(g, 0.3f);
      head.proj_b.resize(static_cast<std::size_t>(proj_rows));
      for (auto& x : head.proj_b)
        x = normal_ish(g, 0.3f);
    }
    if (!head.validate().ok()) {
      std::printf("heads: invalid test head\n");
      continue;
    }
    const auto hv = head.view();
    std::vector<float> e(rank), coef(rank), s_a(rank), s_b(rank), h(hidden);
    for (int it = 0; it < 300; ++it) {
      for (auto& x : h)
        x = normal_ish(g, 1.0f);
      const token_id prev = static_cast<token_id>(g() % V);
      propose::embedding_row(hv, prev, e.data());
      for (index_t j = 0; j < rank; ++j)
        coef[static_cast<std::size_t>(j)] =
            propose::head_coefficient(hv, j, e.data(), h.data(), s_a.data(), s_b.data());
      s_a.swap(s_b);
      for (index_t v = 0; v < V; ++v)
        d.add(detail::float_bits(propose::head_bias(hv, v, coef.data())));
      ++n;
    }
  }
  print("heads", d, n);
}

} // namespace

int main() {
  probe_exp();
  probe_rows();
  probe_chain("rejection", verify::rejection_sampling{});
  probe_chain("block", verify::block_verification{});
  probe_chain("typical", verify::typical_acceptance{});
  probe_scheduler();
  probe_calibration();
  probe_heads();
  return 0;
}
