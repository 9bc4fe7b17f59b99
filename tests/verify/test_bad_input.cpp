// SPDX-License-Identifier: Apache-2.0
// Bad input gets a defined outcome, never UB (DESIGN section 4): batch-level problems (shapes,
// null pointers, sampling parameters) return their errc and write nothing; row-level problems
// (NaN/+Inf logits, negative or all-zero probabilities, all -inf rows, bad token ids,
// q(x) = 0) flag the request, give it a valid result, and leave every other request of the
// batch bit-identical. Every chain rule runs through every case.

#include <specdec/specdec.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

using namespace specdec;

namespace {

constexpr index_t V = 11; // not a multiple of the executor's lanes
constexpr float ninf = -std::numeric_limits<float>::infinity();
constexpr float pinf = std::numeric_limits<float>::infinity();
const float qnan = std::numeric_limits<float>::quiet_NaN();

std::size_t sz(index_t i) {
  return static_cast<std::size_t>(i);
}

/// One request's data: K + 1 target rows, K draft rows, K drafts.
struct request_data {
  std::vector<float> target;
  std::vector<float> draft;
  std::vector<token_id> tokens;
  std::uint64_t id = 0;
  index_t position = 0;
  sampling::sampling_params params{};

  std::int32_t k() const {
    return static_cast<std::int32_t>(tokens.size());
  }
  float* trow(index_t j) {
    return target.data() + j * V;
  }
  float* drow(index_t j) {
    return draft.data() + j * V;
  }
};

/// A random request: Gaussian logits (softmaxed for probability rows), drafts drawn from the
/// processed draft rows (the argmax under greedy parameters), so that a clean request is clean
/// for every rule.
request_data random_request(std::mt19937_64& rng,
                            std::int32_t k,
                            distribution_kind kind,
                            const sampling::sampling_params& sp,
                            std::uint64_t id,
                            index_t position) {
  request_data r;
  r.id = id;
  r.position = position;
  r.params = sp;
  std::normal_distribution<float> logit(0.0f, 1.5f);
  std::uniform_real_distribution<float> unif(0.0f, 1.0f);
  const auto fill = [&](std::vector<float>& rows, std::int32_t n) {
    rows.resize(sz(n * V));
    for (auto& x : rows)
      x = logit(rng);
    if (kind == distribution_kind::probabilities) {
      for (std::int32_t j = 0; j < n; ++j) {
        float* row = rows.data() + j * V;
        float s = 0.0f;
        for (index_t v = 0; v < V; ++v)
          s += row[v] = std::exp(row[v]);
        for (index_t v = 0; v < V; ++v)
          row[v] /= s;
      }
    }
  };
  fill(r.target, k + 1);
  fill(r.draft, k);
  const cpu::serial_executor ex{};
  for (std::int32_t j = 0; j < k; ++j) {
    const sampling::dist_row<float> row{r.drow(j), V, kind};
    const auto st = sampling::prepare_row(ex, row, sp);
    r.tokens.push_back(static_cast<token_id>(sampling::sample_row(ex, row, st, unif(rng))));
  }
  return r;
}

/// A batch assembled from requests (all of one distribution kind).
struct batch_data {
  std::vector<float> target, draft;
  std::vector<token_id> tokens;
  std::vector<index_t> offsets{0};
  std::vector<std::uint64_t> ids;
  std::vector<index_t> positions;
  std::vector<sampling::sampling_params> params;
  distribution_kind kind = distribution_kind::logits;

  batch_data(const std::vector<request_data>& reqs, distribution_kind k)
      : kind(k) {
    for (const auto& r : reqs) {
      target.insert(target.end(), r.target.begin(), r.target.end());
      draft.insert(draft.end(), r.draft.begin(), r.draft.end());
      tokens.insert(tokens.end(), r.tokens.begin(), r.tokens.end());
      offsets.push_back(offsets.back() + r.k());
      ids.push_back(r.id);
      positions.push_back(r.position);
      params.push_back(r.params);
    }
  }
  index_t size() const {
    return static_cast<index_t>(ids.size());
  }
  verify::chain_batch<float> view(std::uint64_t seed) const {
    verify::chain_batch<float> b;
    b.batch = size();
    b.draft_offsets = offsets.data();
    b.tokens = tokens.data();
    b.target = {target.data(), static_cast<index_t>(target.size()) / V, V, V};
    b.draft = {draft.data(), static_cast<index_t>(draft.size()) / V, V, V};
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

constexpr std::int32_t sentinel = -77;

struct batch_result {
  status st{};
  std::vector<std::int32_t> accepted;
  std::vector<token_id> next;
  std::vector<row_status> flags;

  explicit batch_result(index_t n)
      : accepted(sz(n), sentinel)
      , next(sz(n), sentinel)
      , flags(sz(n), row_status{0xdeadu}) {}
  verify::chain_batch_output out() {
    return {accepted.data(), next.data(), flags.data()};
  }
  bool untouched() const {
    for (std::size_t i = 0; i < accepted.size(); ++i)
      if (accepted[i] != sentinel || next[i] != sentinel || flags[i].bits != 0xdeadu)
        return false;
    return true;
  }
};

template <class Policy>
batch_result run_batch(const Policy& policy, const batch_data& b, std::uint64_t seed) {
  batch_result res(b.size());
  res.st = cpu::verify_chain_batch(policy, b.view(seed), res.out());
  return res;
}

template <class Policy>
constexpr bool is_block =
    std::is_same_v<
        Policy,
        verify::block_verification> || std::is_same_v<Policy, verify::one_hot_block_verification>;

/// True when the rule emits argmax decisions for these parameters (never reads probabilities
/// beyond the argmax).
template <class Policy>
bool argmax_mode(const sampling::sampling_params& sp) {
  return std::is_same_v<Policy, verify::greedy> || sp.greedy();
}

sampling::sampling_params params_t1() {
  return {};
}
sampling::sampling_params params_truncated() {
  sampling::sampling_params sp;
  sp.temperature = 0.7f;
  sp.top_k = 5;
  sp.top_p = 0.9f;
  sp.min_p = 0.02f;
  return sp;
}
sampling::sampling_params params_greedy() {
  sampling::sampling_params sp;
  sp.temperature = 0.0f;
  return sp;
}

/// A corruption of one request, at position `at` (row or draft index).
struct corruption {
  const char* name;
  distribution_kind kind; ///< the batch's row kind
  bool draft_side;        ///< only rules reading draft rows see it
  std::uint32_t flag;     ///< the exact error flag expected
  errc code;              ///< the errc the batch call returns for it
  void (*apply)(request_data&, index_t at);
};

const std::vector<corruption>& corruptions() {
  static const std::vector<corruption> list{
      {"NaN target logit",
       distribution_kind::logits,
       false,
       row_status::target_invalid,
       errc::invalid_value,
       [](request_data& r, index_t at) { r.trow(at)[3] = qnan; }},
      {"+Inf target logit",
       distribution_kind::logits,
       false,
       row_status::target_invalid,
       errc::invalid_value,
       [](request_data& r, index_t at) { r.trow(at)[7] = pinf; }},
      {"all -inf target logits",
       distribution_kind::logits,
       false,
       row_status::target_zero_mass,
       errc::zero_mass_row,
       [](request_data& r, index_t at) { std::fill_n(r.trow(at), V, ninf); }},
      {"negative target probability",
       distribution_kind::probabilities,
       false,
       row_status::target_invalid,
       errc::invalid_value,
       [](request_data& r, index_t at) { r.trow(at)[2] = -0.25f; }},
      {"+Inf target probability",
       distribution_kind::probabilities,
       false,
       row_status::target_invalid,
       errc::invalid_value,
       [](request_data& r, index_t at) { r.trow(at)[5] = pinf; }},
      {"all-zero target probabilities",
       distribution_kind::probabilities,
       false,
       row_status::target_zero_mass,
       errc::zero_mass_row,
       [](request_data& r, index_t at) { std::fill_n(r.trow(at), V, 0.0f); }},
      {"negative token id",
       distribution_kind::logits,
       false,
       row_status::token_out_of_range,
       errc::token_out_of_range,
       [](request_data& r, index_t at) { r.tokens[sz(at)] = -1; }},
      {"token id == V",
       distribution_kind::logits,
       false,
       row_status::token_out_of_range,
       errc::token_out_of_range,
       [](request_data& r, index_t at) { r.tokens[sz(at)] = V; }},
      {"token id INT32_MIN",
       distribution_kind::logits,
       false,
       row_status::token_out_of_range,
       errc::token_out_of_range,
       [](request_data& r, index_t at) {
         r.tokens[sz(at)] = std::numeric_limits<token_id>::min();
       }},
      {"token id INT32_MAX",
       distribution_kind::logits,
       false,
       row_status::token_out_of_range,
       errc::token_out_of_range,
       [](request_data& r, index_t at) {
         r.tokens[sz(at)] = std::numeric_limits<token_id>::max();
       }},
      {"NaN draft logit",
       distribution_kind::logits,
       true,
       row_status::draft_invalid,
       errc::invalid_value,
       [](request_data& r, index_t at) { r.drow(at)[4] = qnan; }},
      {"+Inf draft logit",
       distribution_kind::logits,
       true,
       row_status::draft_invalid,
       errc::invalid_value,
       [](request_data& r, index_t at) { r.drow(at)[0] = pinf; }},
      {"all -inf draft logits",
       distribution_kind::logits,
       true,
       row_status::draft_zero_mass,
       errc::zero_mass_row,
       [](request_data& r, index_t at) { std::fill_n(r.drow(at), V, ninf); }},
      {"negative draft probability",
       distribution_kind::probabilities,
       true,
       row_status::draft_invalid,
       errc::invalid_value,
       [](request_data& r, index_t at) { r.drow(at)[9] = -1.0f; }},
      {"all-zero draft probabilities",
       distribution_kind::probabilities,
       true,
       row_status::draft_zero_mass,
       errc::zero_mass_row,
       [](request_data& r, index_t at) { std::fill_n(r.drow(at), V, 0.0f); }},
      {"q(x) = 0 for the drafted token (-inf draft logit)",
       distribution_kind::logits,
       true,
       row_status::zero_draft_probability,
       errc::zero_draft_probability,
       [](request_data& r, index_t at) { r.drow(at)[r.tokens[sz(at)]] = ninf; }},
      {"q(x) = 0 for the drafted token (zero draft probability)",
       distribution_kind::probabilities,
       true,
       row_status::zero_draft_probability,
       errc::zero_draft_probability,
       [](request_data& r, index_t at) { r.drow(at)[r.tokens[sz(at)]] = 0.0f; }},
  };
  return list;
}

/// The request at `idx` must be flagged with exactly `flag` (or be clean when flag is 0), have a
/// valid result, and every request outside `bad` must equal its result in `reference` (the
/// batch without the bad requests).
void check_isolated(const batch_result& full,
                    const batch_result& reference,
                    const std::vector<std::size_t>& bad) {
  std::size_t j = 0;
  for (std::size_t i = 0; i < full.accepted.size(); ++i) {
    if (std::find(bad.begin(), bad.end(), i) != bad.end())
      continue;
    INFO("request " << i);
    CHECK(full.accepted[i] == reference.accepted[j]);
    CHECK(full.next[i] == reference.next[j]);
    CHECK(full.flags[i].bits == reference.flags[j].bits);
    ++j;
  }
  CHECK(j == reference.accepted.size());
}

template <class Policy>
void run_row_level_cases(const Policy& policy) {
  const std::vector<sampling::sampling_params> param_sets{
      params_t1(), params_truncated(), params_greedy()};
  const std::vector<const char*> param_names{
      "T = 1", "T = 0.7 top-k 5 top-p 0.9 min-p 0.02", "greedy"};
  const std::vector<std::int32_t> ks{3, 0, 5, 4, 2, 1, 4};
  constexpr std::size_t bad_idx = 2;    // the corrupted request
  constexpr std::size_t second_bad = 4; // a second bad request: token id V at position 0
  for (std::size_t ps = 0; ps < param_sets.size(); ++ps) {
    const auto& sp = param_sets[ps];
    for (const corruption& c : corruptions()) {
      for (const index_t at : {index_t{0}, index_t{2}}) {
        INFO("params: " << param_names[ps] << "; corruption: " << c.name << " at position " << at);
        std::mt19937_64 rng(1234 + ps);
        std::vector<request_data> reqs;
        for (std::size_t i = 0; i < ks.size(); ++i)
          reqs.push_back(
              random_request(rng, ks[i], c.kind, sp, 1000 + 17 * i, static_cast<index_t>(5 * i)));
        c.apply(reqs[bad_idx], at);
        reqs[second_bad].tokens[0] = V;
        const batch_data full_batch(reqs, c.kind);
        std::vector<request_data> clean_reqs;
        for (std::size_t i = 0; i < reqs.size(); ++i)
          if (i != bad_idx && i != second_bad)
            clean_reqs.push_back(reqs[i]);
        const batch_data clean_batch(clean_reqs, c.kind);
        const std::uint64_t seed = 99;
        const auto full = run_batch(policy, full_batch, seed);
        const auto reference = run_batch(policy, clean_batch, seed);
        REQUIRE(reference.st.ok());

        const bool reads = !c.draft_side || Policy::needs_draft_rows;
        const std::int32_t acc = full.accepted[bad_idx];
        const std::uint32_t err_bits = full.flags[bad_idx].bits & row_status::error_mask;
        CHECK(full.next[bad_idx] >= 0);
        CHECK(full.next[bad_idx] < V);
        CHECK(acc >= 0);
        CHECK(acc <= at); // nothing at or after the bad position is accepted
        bool flagged_expected = reads;
        if (at > 0 && reads && !is_block<Policy>)
          flagged_expected = acc == at; // reached it?
        if (flagged_expected)
          CHECK(err_bits == c.flag);
        else
          CHECK(err_bits == 0);
        // The second bad request is always flagged; the call reports the first bad request.
        CHECK(full.flags[second_bad].bits == row_status::token_out_of_range);
        CHECK(full.accepted[second_bad] == 0);
        CHECK(full.next[second_bad] >= 0);
        CHECK(full.next[second_bad] < V);
        CHECK(full.st.code == (flagged_expected ? c.code : errc::token_out_of_range));
        check_isolated(full, reference, {bad_idx, second_bad});
      }
    }
  }
}

#define ALL_RULES                                                                                  \
  verify::greedy, verify::rejection_sampling, verify::one_hot_rejection,                           \
      verify::typical_acceptance, verify::block_verification, verify::one_hot_block_verification

} // namespace

TEMPLATE_TEST_CASE(
    "row-level bad input is flagged exactly, gets a valid result and leaves the others untouched",
    "[verify][chain][cpu]",
    ALL_RULES) {
  run_row_level_cases(TestType{});
}

TEMPLATE_TEST_CASE("the batch call returns the errc of the first bad request in batch order",
                   "[verify][chain][cpu]",
                   ALL_RULES) {
  std::mt19937_64 rng(7);
  std::vector<request_data> reqs;
  for (std::uint64_t i = 0; i < 4; ++i)
    reqs.push_back(random_request(rng, 3, distribution_kind::logits, {}, i, 0));
  SECTION("NaN target row before a bad token") {
    reqs[1].trow(0)[0] = qnan;
    reqs[3].tokens[0] = -5;
    const auto res = run_batch(TestType{}, batch_data(reqs, distribution_kind::logits), 1);
    CHECK(res.st.code == errc::invalid_value);
    CHECK(res.flags[1].bits == row_status::target_invalid);
    CHECK(res.flags[3].bits == row_status::token_out_of_range);
  }
  SECTION("bad token before a NaN target row") {
    reqs[1].tokens[0] = -5;
    reqs[3].trow(0)[0] = qnan;
    const auto res = run_batch(TestType{}, batch_data(reqs, distribution_kind::logits), 1);
    CHECK(res.st.code == errc::token_out_of_range);
    CHECK(res.flags[1].bits == row_status::token_out_of_range);
    CHECK(res.flags[3].bits == row_status::target_invalid);
  }
}

TEMPLATE_TEST_CASE("-inf logits are legal: probability 0, never emitted, no flag",
                   "[verify][chain][cpu]",
                   ALL_RULES) {
  // Tokens 0, 4 and 10 are impossible in every target row; the draft forbids 1 and 7 but may
  // propose 0, 4 or 10, which must then be rejected.
  for (const auto& sp : {params_t1(), params_truncated(), params_greedy()}) {
    std::mt19937_64 rng(11);
    std::vector<request_data> reqs;
    for (std::uint64_t i = 0; i < 64; ++i) {
      auto r = random_request(rng, 4, distribution_kind::logits, sp, i, 3);
      for (std::int32_t j = 0; j <= r.k(); ++j)
        for (index_t v : {0, 4, 10})
          r.trow(j)[v] = ninf;
      for (std::int32_t j = 0; j < r.k(); ++j) {
        for (index_t v : {1, 7})
          r.drow(j)[v] = ninf;
        // Redraw the token from the modified draft row, so that q(x) > 0.
        const cpu::serial_executor ex{};
        const sampling::dist_row<float> row{r.drow(j), V, distribution_kind::logits};
        const auto st = sampling::prepare_row(ex, row, sp);
        r.tokens[sz(j)] = static_cast<token_id>(
            sampling::sample_row(ex, row, st, static_cast<float>(i % 16) / 16.0f + 0.01f));
      }
      reqs.push_back(r);
    }
    const batch_data b(reqs, distribution_kind::logits);
    const auto res = run_batch(TestType{}, b, 5);
    REQUIRE(res.st.ok());
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      INFO("request " << i);
      CHECK(res.flags[i].ok());
      const std::int32_t acc = res.accepted[i];
      REQUIRE(acc >= 0);
      REQUIRE(acc <= reqs[i].k());
      for (std::int32_t j = 0; j < acc; ++j)
        CHECK(std::isfinite(reqs[i].trow(j)[reqs[i].tokens[sz(j)]]));
      REQUIRE(res.next[i] >= 0);
      REQUIRE(res.next[i] < V);
      CHECK(std::isfinite(reqs[i].trow(acc)[res.next[i]]));
    }
  }
}

TEMPLATE_TEST_CASE("K = 0 is valid: only the bonus token is drawn",
                   "[verify][chain][cpu]",
                   ALL_RULES) {
  std::mt19937_64 rng(3);
  std::vector<request_data> reqs;
  for (std::uint64_t i = 0; i < 8; ++i)
    reqs.push_back(random_request(rng, 0, distribution_kind::logits, {}, i, 0));
  batch_data b(reqs, distribution_kind::logits);
  auto view = b.view(1);
  view.tokens = nullptr; // no drafts: neither tokens nor draft rows are needed
  view.draft = {};
  batch_result res(b.size());
  REQUIRE(cpu::verify_chain_batch(TestType{}, view, res.out()).ok());
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    CHECK(res.accepted[i] == 0);
    CHECK(res.next[i] >= 0);
    CHECK(res.next[i] < V);
    CHECK(res.flags[i].bits == 0);
    // The single-request API agrees.
    verify::chain_request<float> r;
    r.target = reqs[i].target.data();
    r.target_stride = V;
    r.vocab = V;
    const auto o = cpu::verify_chain(TestType{}, r, rng_key{1, reqs[i].id});
    CHECK(o.accepted == 0);
    CHECK(o.next == res.next[i]);
    CHECK(o.status.bits == 0);
  }
}

// ------------------------------------------------------------------------------------------------
// Batch-level problems: the errc, and nothing written
// ------------------------------------------------------------------------------------------------

namespace {
struct batch_fixture {
  std::vector<request_data> reqs;
  batch_data data;
  batch_fixture()
      : reqs(make())
      , data(reqs, distribution_kind::logits) {}
  static std::vector<request_data> make() {
    std::mt19937_64 rng(21);
    std::vector<request_data> r;
    for (std::uint64_t i = 0; i < 4; ++i)
      r.push_back(random_request(
          rng, static_cast<std::int32_t>(i + 1), distribution_kind::logits, {}, i, 0));
    return r;
  }
};

template <class Policy>
status run_view(const Policy& policy, const verify::chain_batch<float>& view, batch_result& res) {
  return cpu::verify_chain_batch(policy, view, res.out());
}
} // namespace

TEMPLATE_TEST_CASE("bad sampling parameters are rejected before anything is written",
                   "[verify][chain][cpu]",
                   ALL_RULES) {
  batch_fixture fx;
  struct bad_param {
    const char* name;
    void (*apply)(sampling::sampling_params&);
    errc code;
  };
  const std::vector<bad_param> cases{
      {"T < 0",
       [](sampling::sampling_params& p) { p.temperature = -0.5f; },
       errc::invalid_temperature},
      {"T = NaN",
       [](sampling::sampling_params& p) { p.temperature = qnan; },
       errc::invalid_temperature},
      {"T = +Inf",
       [](sampling::sampling_params& p) { p.temperature = pinf; },
       errc::invalid_temperature},
      {"top-k < 0", [](sampling::sampling_params& p) { p.top_k = -1; }, errc::invalid_top_k},
      {"top-p = 0", [](sampling::sampling_params& p) { p.top_p = 0.0f; }, errc::invalid_top_p},
      {"top-p = 1.5", [](sampling::sampling_params& p) { p.top_p = 1.5f; }, errc::invalid_top_p},
      {"top-p = NaN", [](sampling::sampling_params& p) { p.top_p = qnan; }, errc::invalid_top_p},
      {"top-p < 0", [](sampling::sampling_params& p) { p.top_p = -0.1f; }, errc::invalid_top_p},
      {"min-p > 1", [](sampling::sampling_params& p) { p.min_p = 1.5f; }, errc::invalid_min_p},
      {"min-p < 0", [](sampling::sampling_params& p) { p.min_p = -0.1f; }, errc::invalid_min_p},
      {"min-p = NaN", [](sampling::sampling_params& p) { p.min_p = qnan; }, errc::invalid_min_p},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    {
      auto data = fx.data; // per-request parameters: the third request is bad
      c.apply(data.params[2]);
      batch_result res(data.size());
      CHECK(run_view(TestType{}, data.view(1), res).code == c.code);
      CHECK(res.untouched());
    }
    {
      auto data = fx.data; // broadcast parameters
      c.apply(data.params[0]);
      auto view = data.view(1);
      view.params_stride = 0;
      batch_result res(data.size());
      CHECK(run_view(TestType{}, view, res).code == c.code);
      CHECK(res.untouched());
    }
  }
  // Boundary values are valid.
  for (auto apply : {+[](sampling::sampling_params& p) { p.top_p = 1.0f; },
                     +[](sampling::sampling_params& p) { p.min_p = 1.0f; },
                     +[](sampling::sampling_params& p) { p.min_p = 0.0f; },
                     +[](sampling::sampling_params& p) { p.temperature = 0.0f; },
                     +[](sampling::sampling_params& p) { p.top_k = 0; }}) {
    auto data = fx.data;
    for (auto& p : data.params)
      apply(p);
    // Drafts were drawn at T = 1; under the stricter parameters some may get q(x) = 0, which is a
    // row-level flag, not a batch error.
    batch_result res(data.size());
    const status st = run_view(TestType{}, data.view(1), res);
    CHECK((st.ok() || st.code == errc::zero_draft_probability));
    CHECK(!res.untouched());
  }
}

TEMPLATE_TEST_CASE("bad shapes and offsets are shape_mismatch, nothing written",
                   "[verify][chain][cpu]",
                   ALL_RULES) {
  batch_fixture fx; // K = 1, 2, 3, 4: offsets 0 1 3 6 10, 14 target rows, 10 draft rows
  const bool dense = TestType::needs_draft_rows;
  const auto expect = [&](const verify::chain_batch<float>& view, errc code) {
    batch_result res(fx.data.size());
    CHECK(run_view(TestType{}, view, res).code == code);
    CHECK(res.untouched());
  };
  SECTION("offsets not starting at 0") {
    auto data = fx.data;
    for (auto& o : data.offsets)
      o += 1;
    auto view = data.view(1);
    view.target.rows += 1; // even with matching row counts
    view.draft.rows += 1;
    expect(view, errc::shape_mismatch);
  }
  SECTION("decreasing offsets") {
    auto data = fx.data;
    std::swap(data.offsets[1], data.offsets[2]); // 0 3 1 6 10
    expect(data.view(1), errc::shape_mismatch);
  }
  SECTION("too few or too many target rows") {
    auto view = fx.data.view(1);
    view.target.rows -= 1;
    expect(view, errc::shape_mismatch);
    view.target.rows += 2;
    expect(view, errc::shape_mismatch);
  }
  SECTION("a draft longer than INT32_MAX - 1 is overflow") {
    auto data = fx.data;
    for (std::size_t i = 1; i < data.offsets.size(); ++i)
      data.offsets[i] += index_t{1} << 31;
    expect(data.view(1), errc::overflow); // found before any row count is compared
  }
  SECTION("target row stride below the vocabulary") {
    auto view = fx.data.view(1);
    view.target.row_stride = V - 1;
    expect(view, errc::shape_mismatch);
  }
  SECTION("too few or too many draft rows (rules reading them)") {
    auto view = fx.data.view(1);
    view.draft.rows -= 1;
    if (dense) {
      expect(view, errc::shape_mismatch);
    } else {
      batch_result res(fx.data.size());
      CHECK(run_view(TestType{}, view, res).ok());
    }
    view.draft.rows += 2;
    if (dense)
      expect(view, errc::shape_mismatch);
  }
  SECTION("draft and target vocabularies differ") {
    // Draft rows of V + 1 columns (the data has V; only the view matters before any row is read).
    std::vector<float> wide(sz(10 * (V + 1)), 0.0f);
    auto view = fx.data.view(1);
    view.draft = {wide.data(), 10, V + 1, V + 1};
    if (dense) {
      expect(view, errc::vocab_mismatch);
    } else {
      batch_result res(fx.data.size());
      CHECK(run_view(TestType{}, view, res).ok()); // draft rows are never read
    }
    view.draft = {wide.data(), 10, V - 1, V - 1};
    if (dense)
      expect(view, errc::vocab_mismatch);
  }
}

TEMPLATE_TEST_CASE("null pointers and bad sizes are invalid_argument, nothing written",
                   "[verify][chain][cpu]",
                   ALL_RULES) {
  batch_fixture fx;
  const auto expect = [&](const verify::chain_batch<float>& view, errc code) {
    batch_result res(fx.data.size());
    CHECK(run_view(TestType{}, view, res).code == code);
    CHECK(res.untouched());
  };
  auto view = fx.data.view(1);
  SECTION("draft_offsets") {
    view.draft_offsets = nullptr;
    expect(view, errc::invalid_argument);
  }
  SECTION("tokens") {
    view.tokens = nullptr;
    expect(view, errc::invalid_argument);
  }
  SECTION("target data") {
    view.target.data = nullptr;
    expect(view, errc::invalid_argument);
  }
  SECTION("draft data (rules reading draft rows; see the bug test below for the others)") {
    view.draft.data = nullptr;
    if (TestType::needs_draft_rows)
      expect(view, errc::invalid_argument);
  }
  SECTION("params") {
    view.params = nullptr;
    expect(view, errc::invalid_argument);
  }
  SECTION("request ids") {
    view.request_ids = nullptr;
    expect(view, errc::invalid_argument);
  }
  SECTION("positions") {
    view.positions = nullptr;
    expect(view, errc::invalid_argument);
  }
  SECTION("outputs") {
    for (int which = 0; which < 3; ++which) {
      batch_result res(fx.data.size());
      auto out = res.out();
      if (which == 0)
        out.accepted = nullptr;
      if (which == 1)
        out.next = nullptr;
      if (which == 2)
        out.status = nullptr;
      CHECK(cpu::verify_chain_batch(TestType{}, view, out).code == errc::invalid_argument);
      CHECK(res.untouched());
    }
  }
  SECTION("negative batch size, zero vocabulary, bad params stride, negative position") {
    auto v = view;
    v.batch = -1;
    expect(v, errc::invalid_argument);
    v = view;
    v.target.cols = 0;
    expect(v, errc::invalid_argument);
    v = view;
    v.params_stride = 2;
    expect(v, errc::invalid_argument);
    auto data = fx.data;
    data.positions[1] = -1;
    expect(data.view(1), errc::invalid_argument);
  }
  SECTION("an empty batch is fine and writes nothing") {
    view.batch = 0;
    view.draft_offsets = nullptr;
    expect(view, errc::ok);
  }
}

// ------------------------------------------------------------------------------------------------
// Regression tests for header bugs these tests found (all fixed)
// ------------------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("argmax mode flags negative and all-zero probability rows",
                   "[verify][chain][cpu]",
                   ALL_RULES) {
  // Was a bug (fixed in 34bf57c): in weight_mode::one_hot (greedy parameters, and the greedy
  // rule at any temperature) serial_executor::scan_row accepted negative probabilities (only
  // linear mode rejected them) and reported weight_sum = 1 whenever an argmax existed, so an
  // all-zero or all-negative probability row was processed as valid and nothing was flagged.
  struct bad_row {
    const char* name;
    void (*apply)(float* row);
    std::uint32_t flag;
    errc code;
  };
  const std::vector<bad_row> cases{
      {"negative target probability",
       [](float* row) { row[2] = -0.25f; },
       row_status::target_invalid,
       errc::invalid_value},
      {"all-negative target probabilities",
       [](float* row) { std::fill_n(row, V, -1.0f); },
       row_status::target_invalid,
       errc::invalid_value},
      {"all-zero target probabilities",
       [](float* row) { std::fill_n(row, V, 0.0f); },
       row_status::target_zero_mass,
       errc::zero_mass_row},
  };
  for (const auto& sp : {params_greedy(), params_t1()}) {
    if (!argmax_mode<TestType>(sp))
      continue;
    for (const auto& c : cases) {
      INFO(c.name << (sp.greedy() ? " (greedy parameters)" : " (T = 1)"));
      std::mt19937_64 rng(5);
      auto r = random_request(rng, 2, distribution_kind::probabilities, sp, 1, 0);
      c.apply(r.trow(0));
      const auto res = run_batch(TestType{}, batch_data({r}, distribution_kind::probabilities), 1);
      CHECK(res.flags[0].bits == c.flag);
      CHECK(res.st.code == c.code);
      CHECK(res.next[0] >= 0);
      CHECK(res.next[0] < V);
      CHECK(res.accepted[0] == 0);
    }
  }
}

TEMPLATE_TEST_CASE("cpu::verify_chain flags invalid sampling parameters of a single request",
                   "[verify][chain][cpu]",
                   ALL_RULES) {
  // Was a gap (fixed in 34bf57c): the single-request entry point did not validate
  // chain_request::params and no rule set row_status::invalid_params (T = NaN came out as
  // target_zero_mass, through exp_f(NaN); T < 0 or top-p = 0 as zero_draft_probability or
  // nothing). Rules now flag invalid_params and fall back to greedy. The outcome must be defined.
  std::mt19937_64 rng(9);
  const auto base = random_request(rng, 3, distribution_kind::logits, {}, 1, 0);
  for (auto apply : {+[](sampling::sampling_params& p) { p.temperature = qnan; },
                     +[](sampling::sampling_params& p) { p.temperature = -1.0f; },
                     +[](sampling::sampling_params& p) { p.top_k = -3; },
                     +[](sampling::sampling_params& p) { p.top_p = 0.0f; },
                     +[](sampling::sampling_params& p) { p.top_p = qnan; },
                     +[](sampling::sampling_params& p) { p.min_p = 2.0f; }}) {
    verify::chain_request<float> r;
    r.target = base.target.data();
    r.target_stride = V;
    r.draft = base.draft.data();
    r.draft_stride = V;
    r.tokens = base.tokens.data();
    r.num_drafts = base.k();
    r.vocab = V;
    apply(r.params);
    const auto o = cpu::verify_chain(TestType{}, r, rng_key{1, 1});
    CAPTURE(o.status.bits);
    CHECK(o.next >= 0);
    CHECK(o.next < V);
    CHECK(o.accepted >= 0);
    CHECK(o.accepted <= r.num_drafts);
    CHECK(o.status.has(row_status::invalid_params));
  }
}

TEMPLATE_TEST_CASE(
    "a null draft matrix with rows > 0 is harmless for rules that never read draft rows",
    "[verify][chain][cpu]",
    verify::greedy,
    verify::one_hot_rejection,
    verify::typical_acceptance,
    verify::one_hot_block_verification) {
  // Was a bug (UBSan): validate() accepts draft.data == nullptr with draft.rows > 0 when the rule
  // does not need draft rows, and chain_batch::request() computed `draft.data + d0 * row_stride`,
  // a non-zero offset applied to a null pointer. request() now keeps the null.
  batch_fixture fx;
  auto view = fx.data.view(1);
  view.draft.data = nullptr;
  batch_result res(fx.data.size());
  CHECK(run_view(TestType{}, view, res).ok());
  CHECK(!res.untouched());
}

TEMPLATE_TEST_CASE("positions near INT64_MAX: overflow in a batch, a flagged fallback alone",
                   "[verify][chain][cpu]",
                   ALL_RULES) {
  // Found by fuzzing (UBSan): validate() accepted any position >= 0 and the rules computed
  // position + k, signed overflow for position INT64_MAX with one accepted draft.
  batch_fixture fx;
  for (const index_t pos : {INT64_MAX, INT64_MAX - 1, max_position + 1}) {
    auto data = fx.data;
    data.positions[2] = pos;
    batch_result res(data.size());
    CHECK(run_view(TestType{}, data.view(1), res).code == errc::overflow);
    CHECK(res.untouched());
  }
  { // the largest valid position is fine
    auto data = fx.data;
    data.positions[2] = max_position;
    batch_result res(data.size());
    CHECK(run_view(TestType{}, data.view(1), res).ok());
  }
  // A single request (no validation pass) at INT64_MAX: flagged, verified as at position 0.
  std::mt19937_64 rng(11);
  const auto base = random_request(rng, 3, distribution_kind::logits, {}, 1, 0);
  verify::chain_request<float> r;
  r.target = base.target.data();
  r.target_stride = V;
  r.draft = base.draft.data();
  r.draft_stride = V;
  r.tokens = base.tokens.data();
  r.num_drafts = base.k();
  r.vocab = V;
  r.position = 0;
  const auto at0 = cpu::verify_chain(TestType{}, r, rng_key{1, 1});
  for (const index_t pos : {INT64_MAX, index_t{-5}}) {
    r.position = pos;
    const auto o = cpu::verify_chain(TestType{}, r, rng_key{1, 1});
    CHECK(o.status.has(row_status::bad_shape));
    CHECK(o.accepted == at0.accepted);
    CHECK(o.next == at0.next);
  }
}

TEST_CASE("exp_f(NaN) is NaN without undefined behaviour", "[verify][chain][cpu]") {
  // Was a bug (UBSan): exp_f converted the NaN range-reduction quotient to int. It now reduces 0
  // in place of NaN and selects the NaN at the end.
  CHECK(std::isnan(detail::exp_f(qnan)));
}
