// SPDX-License-Identifier: Apache-2.0
#pragma once

/// @file
/// @brief AdamW with global-norm gradient clipping, and DeepSpec's linear warm-up + cosine
///        learning-rate schedule, over float parameter tensors the caller owns.
///
/// DeepSpec trains every drafter with torch.optim.AdamW on an fp32 master copy (betas (0.9,
/// 0.999), eps 1e-8, weight decay 0), lr 6e-4, clip_grad_norm 1.0, and a warm-up over 4% of the
/// steps followed by a cosine decay to 0 (anchors/deepspec-training.md section 4;
/// deepspec/utils/optim.py). adamw reproduces PyTorch's AdamW step (decoupled weight decay,
/// bias-corrected moments, eps added after the square root) with PyTorch's clip_grad_norm_ factor
/// folded in; lr_schedule reproduces DeepSpec's CosineAnnealingWarmupLR.
///
/// Arithmetic (the project's flags rule): every update is computed in double from the float
/// inputs, with each product that feeds a sum through core/math.hpp's unfused dmul, and rounded to
/// float once per stored value (each moment, each parameter). The results are therefore the same
/// bits under any -ffp-contract or -march. The global norm is accumulated in double in
/// registration order, so a run is bitwise reproducible.

#include <specdec/config.hpp>

#include <specdec/core/math.hpp>
#include <specdec/core/status.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <span>
#include <vector>

SPECDEC_NAMESPACE_BEGIN

namespace train {

namespace detail {

inline bool finite_nonneg(double x) noexcept {
  return x >= 0.0 && x <= std::numeric_limits<double>::max();
}

} // namespace detail

/// @brief Hyper-parameters of adamw (PyTorch's names and defaults, plus the clipping norm).
struct adamw_config {
  double lr = 1e-3;          ///< learning rate used by adamw::step() without an argument
  double beta1 = 0.9;        ///< first-moment decay, in [0, 1)
  double beta2 = 0.999;      ///< second-moment decay, in [0, 1)
  double eps = 1e-8;         ///< added to the bias-corrected sqrt of the second moment, > 0
  double weight_decay = 0.0; ///< decoupled weight decay, >= 0 (DeepSpec: 0)
  double clip_norm = 1.0;    ///< global L2 clipping norm; <= 0 turns clipping off (not NaN)

  /// @brief Checks the ranges above.
  /// @return ok; errc::invalid_argument when lr or weight_decay is negative or not finite, a
  ///         beta is outside [0, 1), eps is not finite and > 0, or clip_norm is NaN
  /// @par Complexity
  /// O(1).
  [[nodiscard]] status validate() const noexcept {
    const bool ok = detail::finite_nonneg(lr) && beta1 >= 0.0 && beta1 < 1.0 && beta2 >= 0.0
                    && beta2 < 1.0 && eps > 0.0 && detail::finite_nonneg(eps)
                    && detail::finite_nonneg(weight_decay) && !std::isnan(clip_norm);
    return ok ? status{} : status{errc::invalid_argument};
  }
};

/// @brief DeepSpec's learning-rate schedule: a linear warm-up, then a cosine decay
///        (deepspec/utils/optim.py CosineAnnealingWarmupLR, as BF16Optimizer builds it).
///
/// With W = warmup_steps() = floor(warmup_ratio * total_steps) (Python's int() of the product,
/// as DeepSpec computes it) and N = total_steps:
///   - step s < W: peak * (s + 1) / W (step 0 gets peak / W, step W - 1 gets peak);
///   - W <= s < N: min_lr + (peak - min_lr) (1 + cos(pi (s - W) / (N - W))) / 2 (peak at s = W);
///   - s >= N: min_lr (PyTorch's cosine would rise again past its period; clamped here).
/// W = 0 means no warm-up (step 0 gets peak). Negative steps are treated as step 0.
struct lr_schedule {
  double peak = 1e-3;           ///< the learning rate reached at the end of the warm-up, >= 0
  std::int64_t total_steps = 1; ///< N, the optimizer steps of the run, >= 1
  double warmup_ratio = 0.04;   ///< fraction of N spent warming up, in [0, 1]
  double min_lr = 0.0;          ///< the rate at and after step N, in [0, peak]

  /// @brief The number of warm-up steps W = floor(warmup_ratio * total_steps).
  /// @return W in [0, total_steps]
  /// @par Complexity
  /// O(1).
  [[nodiscard]] std::int64_t warmup_steps() const noexcept {
    const double w = std::floor(warmup_ratio * static_cast<double>(total_steps));
    if (!(w > 0.0))
      return 0;
    const auto n = static_cast<double>(total_steps);
    return static_cast<std::int64_t>(w < n ? w : n);
  }

  /// @brief The learning rate of optimizer step `step` (0-based).
  /// @param[in] step the number of steps already taken
  /// @return the rate (see the struct comment); NaN when validate() fails
  /// @par Complexity
  /// O(1).
  [[nodiscard]] double at(std::int64_t step) const noexcept {
    if (!validate().ok())
      return std::numeric_limits<double>::quiet_NaN();
    const std::int64_t s = step < 0 ? 0 : step;
    const std::int64_t w = warmup_steps();
    if (s >= total_steps)
      return min_lr;
    if (s < w)
      return peak * static_cast<double>(s + 1) / static_cast<double>(w);
    const double t = static_cast<double>(s - w) / static_cast<double>(total_steps - w);
    const double c = 0.5 * (1.0 + std::cos(std::numbers::pi * t));
    return ::specdec::detail::dadd(min_lr, ::specdec::detail::dmul(peak - min_lr, c));
  }

  /// @brief Checks the ranges above.
  /// @return ok; errc::invalid_argument when peak is negative or not finite, total_steps < 1,
  ///         warmup_ratio is outside [0, 1], or min_lr is outside [0, peak]
  /// @par Complexity
  /// O(1).
  [[nodiscard]] status validate() const noexcept {
    const bool ok = detail::finite_nonneg(peak) && total_steps >= 1 && warmup_ratio >= 0.0
                    && warmup_ratio <= 1.0 && min_lr >= 0.0 && min_lr <= peak;
    return ok ? status{} : status{errc::invalid_argument};
  }
};

/// @brief AdamW (PyTorch semantics) with global-norm gradient clipping over registered float
///        tensors (values and gradients owned by the caller).
///
/// One step, with t = steps() + 1, g the registered gradient and c the clip factor:
///
///     norm = sqrt(sum over every registered gradient element of g^2)       (before clipping)
///     c    = min(1, clip_norm / (norm + 1e-6))   if clip_norm > 0, else 1  (clip_grad_norm_)
///     g'   = c g
///     m    = beta1 m + (1 - beta1) g'
///     v    = beta2 v + (1 - beta2) g'^2
///     x    = x (1 - lr weight_decay)                                        (decay tensors only)
///     x    = x - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
///
/// The gradients are only read (c is applied inside the update, not written back); m and v are
/// stored as float, and the update uses the stored values, as PyTorch's float32 state does.
/// Register every tensor before the first step: the bias correction counts steps globally.
class adamw {
public:
  /// @brief What step() did.
  struct step_report {
    status st;            ///< ok; or why nothing was updated
    double grad_norm = 0; ///< global L2 norm of the gradients before clipping
    double scale = 1;     ///< clip factor applied to the gradients (1: no clipping)
    double lr = 0;        ///< learning rate used
  };

  /// @brief An optimizer with no tensors.
  /// @param[in] cfg hyper-parameters; checked by step(), not here
  /// @par Complexity
  /// O(1).
  explicit adamw(adamw_config cfg = {}) noexcept
      : cfg_(cfg) {}

  /// @brief The hyper-parameters.
  /// @return the configuration given at construction
  [[nodiscard]] const adamw_config& config() const noexcept {
    return cfg_;
  }

  /// @brief Registers a parameter tensor and its gradient, with zero moments.
  /// @param[in,out] value the parameter values, updated by step(); must outlive the optimizer
  /// @param[in] grad its gradient, read by step() and zeroed by zero_grad(); same size as value
  /// @param[in] decay whether weight decay applies to this tensor
  /// @return ok; errc::invalid_argument when the sizes differ; errc::unsupported after the first
  ///         step (the moments of a late tensor would miss the bias correction's step count)
  /// @pre value and grad do not overlap each other or another registered tensor
  /// @par Complexity
  /// O(size) time and memory (two moment buffers).
  [[nodiscard]] status add(std::span<float> value, std::span<float> grad, bool decay = true) {
    if (value.size() != grad.size())
      return status{errc::invalid_argument};
    if (steps_ != 0)
      return status{errc::unsupported};
    params_.push_back(param{value,
                            grad,
                            decay,
                            std::vector<float>(value.size(), 0.0f),
                            std::vector<float>(value.size(), 0.0f)});
    return status{};
  }

  /// @brief One AdamW step over every registered tensor (see the class comment).
  /// @param[in] lr the learning rate of this step (e.g. lr_schedule::at(steps())), finite, >= 0
  /// @return the report; st is errc::invalid_argument for a bad lr or configuration
  ///         (adamw_config::validate()) and errc::invalid_value when the gradient norm is NaN or
  ///         infinite. On error nothing changes: values, moments, gradients and steps() stay.
  /// @post on success steps() has grown by one.
  /// @par Complexity
  /// O(total parameters), two passes; no allocation.
  step_report step(double lr) noexcept {
    using ::specdec::detail::dadd;
    using ::specdec::detail::ddiv;
    using ::specdec::detail::dmul;
    using ::specdec::detail::dsub;
    step_report rep;
    rep.lr = lr;
    if (const status s = cfg_.validate(); !s.ok()) {
      rep.st = s;
      return rep;
    }
    if (!detail::finite_nonneg(lr)) {
      rep.st = status{errc::invalid_argument};
      return rep;
    }
    double sq = 0.0;
    for (const param& p : params_)
      for (const float g : p.grad)
        sq = dadd(sq, dmul(static_cast<double>(g), static_cast<double>(g)));
    const double norm = std::sqrt(sq);
    rep.grad_norm = norm;
    if (!std::isfinite(norm)) {
      rep.st = status{errc::invalid_value};
      return rep;
    }
    double scale = 1.0;
    if (cfg_.clip_norm > 0.0) {
      const double c = cfg_.clip_norm / (norm + 1e-6);
      scale = c < 1.0 ? c : 1.0;
    }
    rep.scale = scale;

    const std::int64_t t = steps_ + 1;
    const double b1 = cfg_.beta1;
    const double b2 = cfg_.beta2;
    const double one_m_b1 = 1.0 - b1;
    const double one_m_b2 = 1.0 - b2;
    const double bias1 = 1.0 - std::pow(b1, static_cast<double>(t));
    const double bias2_sqrt = std::sqrt(1.0 - std::pow(b2, static_cast<double>(t)));
    const double step_size = lr / bias1;
    const double keep = dsub(1.0, dmul(lr, cfg_.weight_decay)); // 1 - lr * wd
    for (param& p : params_) {
      const bool decay = p.decay && cfg_.weight_decay != 0.0;
      for (std::size_t i = 0; i < p.value.size(); ++i) {
        const double g = dmul(static_cast<double>(p.grad[i]), scale);
        const auto m =
            static_cast<float>(dadd(dmul(b1, static_cast<double>(p.m[i])), dmul(one_m_b1, g)));
        const auto v = static_cast<float>(
            dadd(dmul(b2, static_cast<double>(p.v[i])), dmul(one_m_b2, dmul(g, g))));
        p.m[i] = m;
        p.v[i] = v;
        double x = static_cast<double>(p.value[i]);
        if (decay)
          x = dmul(x, keep);
        const double denom = dadd(std::sqrt(static_cast<double>(v)) / bias2_sqrt, cfg_.eps);
        x = dsub(x, dmul(step_size, ddiv(static_cast<double>(m), denom)));
        p.value[i] = static_cast<float>(x);
      }
    }
    steps_ = t;
    return rep;
  }

  /// @brief One step at the configured learning rate, step(config().lr).
  /// @return as step(double)
  /// @par Complexity
  /// O(total parameters).
  step_report step() noexcept {
    return step(cfg_.lr);
  }

  /// @brief Sets every registered gradient to zero.
  /// @par Complexity
  /// O(total parameters).
  void zero_grad() noexcept {
    for (param& p : params_)
      for (float& g : p.grad)
        g = 0.0f;
  }

  /// @brief Steps taken (successful step() calls, or the value given to set_steps()).
  /// @return the count t of the last step's bias correction
  /// @par Complexity
  /// O(1).
  [[nodiscard]] std::int64_t steps() const noexcept {
    return steps_;
  }

  /// @brief Number of registered tensors.
  /// @return the count
  /// @par Complexity
  /// O(1).
  [[nodiscard]] std::size_t size() const noexcept {
    return params_.size();
  }

  /// @brief First moment m of tensor i (registration order), for checkpoints.
  /// @param[in] i index in [0, size())
  /// @return the moment, one float per value; empty when i is out of range
  /// @par Complexity
  /// O(1).
  [[nodiscard]] std::span<const float> first_moment(std::size_t i) const noexcept {
    return i < params_.size() ? std::span<const float>(params_[i].m) : std::span<const float>{};
  }

  /// @brief Second moment v of tensor i (registration order), for checkpoints.
  /// @param[in] i index in [0, size())
  /// @return the moment, one float per value; empty when i is out of range
  /// @par Complexity
  /// O(1).
  [[nodiscard]] std::span<const float> second_moment(std::size_t i) const noexcept {
    return i < params_.size() ? std::span<const float>(params_[i].v) : std::span<const float>{};
  }

  /// @brief Restores the moments of tensor i from a checkpoint.
  /// @param[in] i index in [0, size())
  /// @param[in] m first moment, one value per parameter of tensor i
  /// @param[in] v second moment, one value per parameter of tensor i, each >= 0 and finite
  /// @return ok; errc::invalid_argument for i out of range; errc::shape_mismatch for a size other
  ///         than the tensor's; errc::invalid_value for a non-finite m or a negative or
  ///         non-finite v. Nothing changes on error.
  /// @par Complexity
  /// O(tensor size).
  [[nodiscard]] status
  set_moments(std::size_t i, std::span<const float> m, std::span<const float> v) noexcept {
    if (i >= params_.size())
      return status{errc::invalid_argument};
    param& p = params_[i];
    if (m.size() != p.m.size() || v.size() != p.v.size())
      return status{errc::shape_mismatch};
    for (std::size_t k = 0; k < m.size(); ++k)
      if (!std::isfinite(m[k]) || !(v[k] >= 0.0f && std::isfinite(v[k])))
        return status{errc::invalid_value};
    for (std::size_t k = 0; k < m.size(); ++k) {
      p.m[k] = m[k];
      p.v[k] = v[k];
    }
    return status{};
  }

  /// @brief Restores the step count from a checkpoint (the next step uses t = n + 1).
  /// @param[in] n steps already taken, >= 0
  /// @return ok; errc::invalid_argument for a negative n (nothing changes)
  /// @par Complexity
  /// O(1).
  [[nodiscard]] status set_steps(std::int64_t n) noexcept {
    if (n < 0)
      return status{errc::invalid_argument};
    steps_ = n;
    return status{};
  }

private:
  struct param {
    std::span<float> value;
    std::span<float> grad;
    bool decay = true;
    std::vector<float> m;
    std::vector<float> v;
  };

  adamw_config cfg_;
  std::vector<param> params_;
  std::int64_t steps_ = 0;
};

} // namespace train

SPECDEC_NAMESPACE_END
