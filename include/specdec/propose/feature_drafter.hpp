// SPDX-License-Identifier: Apache-2.0
#pragma once
/// @file
/// @brief Drafters fed by the target's hidden states (EAGLE-3, MTP), over any
///        feature_draft_network: a chain form that writes dense draft rows (lossless rejection
///        sampling) and an EAGLE-2 top-k tree form; both keep the network's cache in step with
///        what verification kept.
///
/// The network's entry t pairs the target features of position t with the token at t + 1 and
/// predicts the token at t + 2. With the committed context c_0..c_{n-1}, the network holds the
/// n - 1 committed entries 0..n-2 (the features of c_{n-1}, the anchor, arrive with the round's
/// verification), and the output of entry n - 2 is the first draft row. Per request:
///  1. begin(): the cache is emptied; observe_prompt() appends the prompt's entries as the loop
///     prefills (row j of a chunk: the features of position start + j, paired with c_{start+j+1});
///  2. propose: draft 1 is drawn from entry n-2's row; draft j+1 from the row of a draft entry at
///     position n-2+j that pairs the previous entry's own hidden output with draft j (the
///     training-time-test step: the network never sees target features of a draft);
///  3. observe(): the draft entries are dropped and the anchor and the accepted tokens are
///     appended with the target features the round computed, so every committed entry is a
///     target entry. A request the drafter lost track of (features missing, a rewritten or
///     resumed context, a context longer than the network's cache) drafts nothing from then on
///     rather than draft from a stale cache; decoding goes on.
///
/// Draws (chain form) follow propose::draft_model_proposer: the row is processed with the config's
/// sampling parameters and draft j + 1 at position n + j uses the Philox uniform keyed by
/// (seed ^ stream_salt::feature_drafter, request id) at (n + j, sample). The tree form is
/// EAGLE-2's: at each depth the top_k nodes of that depth by cumulative log-probability (the
/// network's row at temperature 1) are expanded, each into its top_k children, and the best
/// max_nodes nodes by cumulative log-probability form the tree (a child never outranks its
/// parent: ties go to the shallower node). Its tokens are deterministic and siblings distinct:
/// verify with greedy or one_hot_rejection, both lossless.

#include <specdec/config.hpp>

#include <specdec/core/diagnostics.hpp>
#include <specdec/core/math.hpp>
#include <specdec/core/rng.hpp>
#include <specdec/core/status.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/views.hpp>
#include <specdec/cpu/serial_executor.hpp>
#include <specdec/propose/concepts.hpp>
#include <specdec/sampling/distribution.hpp>
#include <specdec/sampling/params.hpp>
#include <specdec/tree/token_tree.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace propose {

/// @brief Settings of the feature drafters.
struct feature_drafter_config {
  int max_draft = 5;                  ///< chain: most drafts per round it offers, >= 0
  sampling::sampling_params params{}; ///< chain: how drafts are drawn (match the target's)
  std::uint64_t seed = 0;             ///< chain: the drafter's random stream
  int top_k = 4;      ///< tree: children per expanded node and nodes expanded per depth
  int depth = 5;      ///< tree: deepest draft node
  int max_nodes = 16; ///< tree: draft nodes (root excluded), <= tree::max_nodes - 1
};

namespace detail {

/// The lifecycle both feature drafters share: the committed entries of the network.
template <class Net>
class feature_drafter_base {
  SPECDEC_CHECK(feature_draft_network, Net);

public:
  feature_drafter_base(Net& net, feature_drafter_config config)
      : net_(&net)
      , config_(config) {}

  [[nodiscard]] const feature_drafter_config& config() const noexcept {
    return config_;
  }
  [[nodiscard]] row_view<const std::int32_t> feature_layers() const noexcept {
    return net_->feature_layers();
  }
  [[nodiscard]] Net& network() noexcept {
    return *net_;
  }

  [[nodiscard]] status begin(std::uint64_t id, row_view<const token_id> prompt) {
    active_ = false;
    synced_ = false;
    if (prompt.size <= 0 || prompt.data == nullptr)
      return status{errc::invalid_argument};
    if (const status s = net_->truncate(0); !s.ok())
      return s;
    context_.assign(prompt.data, prompt.data + prompt.size);
    request_ = id;
    active_ = true;
    synced_ = true; // n - 1 entries are due; 0 so far (observe_prompt adds them)
    have_row_ = false;
    return status{};
  }

  [[nodiscard]] status
  observe_prompt(std::uint64_t id, index_t start, matrix_view<const float> features) {
    if (!active_ || id != request_)
      return status{errc::invalid_argument};
    const index_t n = static_cast<index_t>(context_.size());
    if (start != net_->size() || features.rows < 0 || start + features.rows > n - 1)
      return status{errc::invalid_argument};
    if (features.rows == 0)
      return status{};
    if (features.data == nullptr || features.cols != net_->feature_size()
        || features.row_stride < features.cols)
      return status{errc::shape_mismatch};
    return append_targets(start, features);
  }

  [[nodiscard]] status observe(const round_outcome& o) {
    if (!active_ || o.request_id != request_)
      return status{};
    const index_t n = o.position;
    const index_t m = static_cast<index_t>(o.accepted);
    const bool follows = n == static_cast<index_t>(context_.size()) && o.tokens.size == m + 1;
    context_.insert(context_.end(), o.tokens.data, o.tokens.data + o.tokens.size);
    if (!synced_ || !follows || o.features.rows < m + 1 || o.features.cols != net_->feature_size()
        || net_->size() < n - 1) {
      synced_ = false;
      return status{};
    }
    if (const status s = net_->truncate(n - 1); !s.ok())
      return s;
    return append_targets(n - 1,
                          o.features.rows == m + 1
                              ? o.features
                              : matrix_view<const float>{
                                  o.features.data, m + 1, o.features.cols, o.features.row_stride});
  }

  void end(std::uint64_t id) {
    if (!active_ || id != request_)
      return;
    active_ = false;
    synced_ = false;
    context_.clear();
    (void)net_->truncate(0);
  }

protected:
  // True when the network holds exactly the committed entries of `context` (n - 1 of them) and
  // the first draft row is known.
  // Drafts of an earlier propose() without observe() are dropped first.
  [[nodiscard]] bool ready(std::uint64_t id, row_view<const token_id> context) {
    const index_t n = context.size;
    if (!active_ || !synced_ || id != request_ || !have_row_ || n < 2
        || n != static_cast<index_t>(context_.size()) || net_->size() < n - 1
        || !std::equal(context_.begin(), context_.end(), context.data))
      return false;
    return net_->truncate(n - 1).ok();
  }

  // Appends target entries start .. start + rows - 1 (token: the one after each position).
  status append_targets(index_t start, matrix_view<const float> f) {
    const index_t rows = f.rows;
    const index_t vocab = net_->vocab_size();
    const index_t hid = net_->hidden_size();
    steps_.resize(static_cast<std::size_t>(rows));
    for (index_t j = 0; j < rows; ++j)
      steps_[static_cast<std::size_t>(j)] =
          feature_draft_step{start + j,
                             context_[static_cast<std::size_t>(start + j + 1)],
                             f.data + j * f.row_stride,
                             start + j - 1,
                             true};
    logits_.resize(static_cast<std::size_t>(rows * vocab));
    hidden_.resize(static_cast<std::size_t>(rows * hid));
    if (const status s = net_->append({steps_.data(), rows},
                                      {logits_.data(), rows, vocab, vocab},
                                      {hidden_.data(), rows, hid, hid});
        !s.ok()) {
      synced_ = false;
      // A context longer than the network's cache: the drafter stops drafting, decoding goes on.
      return s.code == errc::overflow ? status{} : s;
    }
    row_.assign(logits_.end() - vocab, logits_.end());
    row_hidden_.assign(hidden_.end() - hid, hidden_.end());
    have_row_ = true;
    return status{};
  }

  Net* net_;
  feature_drafter_config config_;
  bool active_ = false;
  bool synced_ = false;
  bool have_row_ = false;
  std::uint64_t request_ = 0;
  std::vector<token_id> context_;
  std::vector<feature_draft_step> steps_;
  std::vector<float> logits_, hidden_;
  std::vector<float> row_;        // the first draft row (output of entry n - 2)
  std::vector<float> row_hidden_; // its hidden output
};

} // namespace detail

/// @brief The chain form (see the file comment): a stateful, prompt-fed feature_proposer and a
///        dense_draft_proposer (verify with rejection_sampling: lossless; or greedy).
/// @tparam Net a feature_draft_network (it must outlive the proposer). One request at a time.
template <class Net>
class feature_chain_proposer : public detail::feature_drafter_base<Net> {
  using base = detail::feature_drafter_base<Net>;

public:
  /// The drafter writes one dense logit row per draft.
  static constexpr bool writes_draft_rows = true;
  /// The salt xor-ed into the seed of the drafter's stream.
  static constexpr std::uint64_t seed_salt = stream_salt::feature_drafter;

  /// @brief Binds the network and the settings.
  /// @param[in] net the drafter network (it must outlive the proposer)
  /// @param[in] config the settings (max_draft, params, seed)
  explicit feature_chain_proposer(Net& net, feature_drafter_config config = {})
      : base(net, config) {}

  /// @brief config().max_draft: what it offers per round (the loop decides). O(1).
  /// @return the largest draft per round
  [[nodiscard]] int max_draft_len() const noexcept {
    return this->config_.max_draft;
  }
  /// @brief Re-keys the drafter's stream. O(1).
  /// @param[in] seed the new seed
  void set_seed(std::uint64_t seed) noexcept {
    this->config_.seed = seed;
  }
  /// @brief Sets how drafts are drawn: pass the decode's sampling parameters, so the drafter
  ///        draws from the row the verifier processes the same way (temperature 0: argmax).
  ///        O(1).
  /// @param[in] params the sampling parameters of the decode
  void set_params(const sampling::sampling_params& params) noexcept {
    this->config_.params = params;
  }

  /// @brief Drafts up to min(r.max_tokens, max_draft, b.tokens.size, b.probs.rows, the cache's
  ///        room) tokens; none when the network is not in step with r.context (see the file
  ///        comment).
  /// @param[in] r the context and budget
  /// @param[out] b receives tokens, dense logit rows and length
  /// @return invalid_argument for an empty context, a negative budget or invalid params;
  ///   shape_mismatch when b.probs is not vocabulary-wide; the network's status. A row without
  ///   mass (NaN logits) ends the draft early.
  /// @par Complexity
  /// O(context) to check it, then one network append per draft after the first.
  [[nodiscard]] status propose(const draft_request& r, draft_block& b) {
    b.length = 0;
    b.probs_kind = distribution_kind::logits;
    if (r.context.size <= 0 || r.max_tokens < 0)
      return status{errc::invalid_argument};
    if (this->config_.params.validate() != errc::ok)
      return status{this->config_.params.validate()};
    if (!this->ready(r.request_id, r.context))
      return status{};
    Net& net = *this->net_;
    const index_t vocab = net.vocab_size();
    const index_t hid = net.hidden_size();
    const index_t n = r.context.size;
    const index_t cap =
        std::min<index_t>({static_cast<index_t>(r.max_tokens),
                           static_cast<index_t>(std::max(0, this->config_.max_draft)),
                           b.tokens.size,
                           b.probs.rows,
                           net.capacity() - net.size() + 1});
    if (cap <= 0)
      return status{};
    if (b.probs.data == nullptr || b.probs.cols != vocab || b.probs.row_stride < vocab)
      return status{errc::shape_mismatch};
    std::copy_n(this->row_.data(), vocab, b.probs.data);
    hid_.assign(this->row_hidden_.begin(), this->row_hidden_.end());
    next_hid_.resize(static_cast<std::size_t>(hid));
    const rng_key key{this->config_.seed ^ seed_salt, r.request_id};
    const cpu::serial_executor ex{};
    for (index_t j = 0; j < cap; ++j) {
      float* row = b.probs.data + j * b.probs.row_stride;
      const index_t next =
          sampling::draw_token(ex,
                               sampling::dist_row<float>{row, vocab, distribution_kind::logits},
                               this->config_.params,
                               uniform_at(key, n + j, draw_purpose::sample));
      if (next < 0)
        break;
      const auto tok = static_cast<token_id>(next);
      b.tokens[j] = tok;
      b.length = static_cast<std::int32_t>(j + 1);
      if (j + 1 < cap) {
        // Draft entry at position n - 1 + j: the previous entry's hidden output and this draft.
        const feature_draft_step step{n - 1 + j, tok, hid_.data(), n - 2 + j, false};
        if (const status s = net.append({&step, 1},
                                        {row + b.probs.row_stride, 1, vocab, vocab},
                                        {next_hid_.data(), 1, hid, hid});
            !s.ok())
          return s;
        hid_.swap(next_hid_);
      }
    }
    return status{};
  }

private:
  std::vector<float> hid_, next_hid_;
};

/// @brief The EAGLE-2 top-k tree form (see the file comment): a stateful, prompt-fed
///        feature_proposer and a tree_draft_proposer with deterministic, distinct siblings.
/// @tparam Net a feature_draft_network (it must outlive the proposer). One request at a time.
template <class Net>
class feature_tree_proposer : public detail::feature_drafter_base<Net> {
  using base = detail::feature_drafter_base<Net>;

public:
  /// @brief Binds the network and the settings (top_k, depth, max_nodes).
  /// @param[in] net the drafter network (it must outlive the proposer)
  /// @param[in] config the settings
  explicit feature_tree_proposer(Net& net, feature_drafter_config config = {})
      : base(net, config) {}

  /// @brief The most draft nodes per step: config().max_nodes, clamped to the tree limit. O(1).
  /// @return the node budget per step
  [[nodiscard]] int max_draft_nodes() const noexcept {
    return std::clamp(this->config_.max_nodes, 0, tree::max_nodes - 1);
  }

  /// @brief Drafts an EAGLE-2 tree of up to min(r.max_nodes, max_nodes) nodes no deeper than
  ///        min(r.max_depth, depth); the root only when the network is not in step.
  /// @param[in] r the context and limits
  /// @param[out] d receives the tree (its root is the anchor)
  /// @return invalid_argument for an empty context or negative limits, or top_k outside
  ///   [1, tree::max_siblings]; the network's status
  /// @par Complexity
  /// One network append per depth (top_k rows) and a partial sort of V per expanded node.
  [[nodiscard]] status propose_tree(const tree_draft_request& r, tree_draft& d) {
    if (r.context.size <= 0 || r.max_nodes < 0 || r.max_depth < 0 || this->config_.top_k < 1
        || this->config_.top_k > tree::max_siblings)
      return status{errc::invalid_argument};
    d.tree.reset(r.context[r.context.size - 1]);
    d.draft_index.clear();
    if (!this->ready(r.request_id, r.context))
      return status{};
    Net& net = *this->net_;
    const index_t vocab = net.vocab_size();
    const index_t hid = net.hidden_size();
    const index_t n = r.context.size;
    const int budget = std::min(r.max_nodes, max_draft_nodes());
    const int depth = std::min(r.max_depth, this->config_.depth);
    const int k = this->config_.top_k;
    if (budget <= 0 || depth <= 0)
      return status{};
    nodes_.clear();
    hidden_rows_.clear();
    if (hid <= 0)
      return status{errc::invalid_argument};
    // Depth 1: children of the root from the first draft row.
    expand(this->row_.data(), vocab, -1, 0.0, 1);
    std::size_t level_begin = 0;
    for (int dep = 2; dep <= depth; ++dep) {
      // The top_k nodes of the last level by score are expanded (one network call).
      const std::size_t level_end = nodes_.size();
      order_.clear();
      for (std::size_t i = level_begin; i < level_end; ++i)
        order_.push_back(static_cast<std::int32_t>(i));
      const auto better = [&](std::int32_t a, std::int32_t b) {
        return nodes_[static_cast<std::size_t>(a)].score > nodes_[static_cast<std::size_t>(b)].score
               || (nodes_[static_cast<std::size_t>(a)].score
                       == nodes_[static_cast<std::size_t>(b)].score
                   && a < b);
      };
      std::sort(order_.begin(), order_.end(), better);
      const index_t e =
          std::min<index_t>(static_cast<index_t>(order_.size()), static_cast<index_t>(k));
      if (e == 0 || net.size() + e > net.capacity())
        break;
      // Inputs: each expanded node's token and its parent's hidden output (copied, since the
      // rows of this call are appended to hidden_rows_).
      tsteps_.resize(static_cast<std::size_t>(e));
      parents_hidden_.resize(static_cast<std::size_t>(e * hid));
      for (index_t i = 0; i < e; ++i) {
        node& nd = nodes_[static_cast<std::size_t>(order_[static_cast<std::size_t>(i)])];
        nd.entry = net.size() + i;
        const node* par = nd.parent < 0 ? nullptr : &nodes_[static_cast<std::size_t>(nd.parent)];
        const float* src =
            par == nullptr ? this->row_hidden_.data() : hidden_rows_.data() + par->hidden_row * hid;
        std::copy_n(src, hid, parents_hidden_.data() + i * hid);
        tsteps_[static_cast<std::size_t>(i)] =
            feature_draft_step{n - 2 + nd.depth,
                               nd.token,
                               parents_hidden_.data() + i * hid,
                               par == nullptr ? n - 2 : par->entry,
                               false};
      }
      const index_t h0 = static_cast<index_t>(hidden_rows_.size()) / hid;
      hidden_rows_.resize(static_cast<std::size_t>((h0 + e) * hid));
      rows_.resize(static_cast<std::size_t>(e * vocab));
      if (const status s = net.append({tsteps_.data(), e},
                                      {rows_.data(), e, vocab, vocab},
                                      {hidden_rows_.data() + h0 * hid, e, hid, hid});
          !s.ok())
        return s;
      level_begin = level_end;
      for (index_t i = 0; i < e; ++i) {
        const std::int32_t id = order_[static_cast<std::size_t>(i)];
        nodes_[static_cast<std::size_t>(id)].hidden_row = h0 + i;
        expand(
            rows_.data() + i * vocab, vocab, id, nodes_[static_cast<std::size_t>(id)].score, dep);
      }
    }
    // The best `budget` nodes by score (a parent ranks before its children), in tree order.
    order_.clear();
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      order_.push_back(static_cast<std::int32_t>(i));
    std::sort(order_.begin(), order_.end(), [&](std::int32_t a, std::int32_t b) {
      const node& x = nodes_[static_cast<std::size_t>(a)];
      const node& y = nodes_[static_cast<std::size_t>(b)];
      if (x.score != y.score)
        return x.score > y.score;
      if (x.depth != y.depth)
        return x.depth < y.depth;
      return a < b;
    });
    if (order_.size() > static_cast<std::size_t>(budget))
      order_.resize(static_cast<std::size_t>(budget));
    std::sort(order_.begin(), order_.end(), [&](std::int32_t a, std::int32_t b) {
      const node& x = nodes_[static_cast<std::size_t>(a)];
      const node& y = nodes_[static_cast<std::size_t>(b)];
      return x.depth != y.depth ? x.depth < y.depth : a < b;
    });
    tree_index_.assign(nodes_.size(), -1);
    for (std::int32_t id : order_) {
      const node& nd = nodes_[static_cast<std::size_t>(id)];
      const std::int32_t parent =
          nd.parent < 0 ? 0 : tree_index_[static_cast<std::size_t>(nd.parent)];
      if (parent < 0)
        continue; // its parent was not kept (cannot happen: a parent outranks its children)
      tree_index_[static_cast<std::size_t>(id)] = d.tree.add(parent, nd.token);
    }
    return status{};
  }

private:
  struct node {
    token_id token;
    std::int32_t parent; // node index, -1: the root
    double score;        // cumulative log-probability
    int depth;
    index_t entry = -1;      // network entry once expanded
    index_t hidden_row = -1; // row of hidden_rows_ once expanded
  };

  // Adds the top_k children of a row (log-softmax at temperature 1) as nodes at `depth`.
  void expand(const float* row, index_t vocab, std::int32_t parent, double score, int depth) {
    double mx = -HUGE_VAL;
    for (index_t v = 0; v < vocab; ++v) {
      if (std::isnan(row[v]))
        return; // one NaN makes the row unusable (as for the chain form): no children
      mx = std::max(mx, static_cast<double>(row[v]));
    }
    if (!(mx > -HUGE_VAL) || !std::isfinite(mx))
      return; // no mass or a +inf row: no children
    double sum = 0;
    for (index_t v = 0; v < vocab; ++v)
      sum += std::exp(static_cast<double>(row[v]) - mx);
    const double lse = mx + std::log(sum);
    cand_.resize(static_cast<std::size_t>(vocab));
    for (index_t v = 0; v < vocab; ++v)
      cand_[static_cast<std::size_t>(v)] = static_cast<token_id>(v);
    const index_t k = std::min<index_t>(vocab, static_cast<index_t>(this->config_.top_k));
    std::partial_sort(cand_.begin(), cand_.begin() + k, cand_.end(), [&](token_id a, token_id b) {
      return row[a] > row[b] || (row[a] == row[b] && a < b);
    });
    for (index_t i = 0; i < k; ++i) {
      const token_id t = cand_[static_cast<std::size_t>(i)];
      if (!(row[t] > -HUGE_VALF))
        break; // probability 0 (and every later candidate too): never a draft
      nodes_.push_back(node{t, parent, score + (static_cast<double>(row[t]) - lse), depth});
    }
  }

  std::vector<node> nodes_;
  std::vector<std::int32_t> order_, tree_index_;
  std::vector<token_id> cand_;
  std::vector<feature_draft_step> tsteps_;
  std::vector<float> rows_, hidden_rows_, parents_hidden_;
};

} // namespace propose

SPECDEC_NAMESPACE_END
