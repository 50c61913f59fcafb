// Input checks used at every op boundary. Each raises a Python exception (ValueError for
// bad values and shapes, TypeError for dtypes) that names the argument, what was expected
// and what it got.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <iomanip>
#include <limits>
#include <optional>

#define CHECK_CPU(x) \
  TORCH_CHECK_VALUE((x).device().is_cpu(), #x " must be a CPU tensor (this is the CPU kernel), got ", (x).device())

#define CHECK_DTYPE(x, dtype) \
  TORCH_CHECK_TYPE((x).scalar_type() == (dtype), #x " must be ", (dtype), ", got ", (x).scalar_type())

#define CHECK_CONTIGUOUS(x)                                                                        \
  TORCH_CHECK_VALUE((x).is_contiguous(), #x " must be contiguous (call .contiguous()), got sizes ", \
                    (x).sizes(), " strides ", (x).strides())

#define CHECK_DIM(x, d) \
  TORCH_CHECK_VALUE((x).dim() == (d), #x " must have ", (d), " dimensions, got shape ", (x).sizes())

#define CHECK_SHAPE(x, ...)                                                                    \
  TORCH_CHECK_VALUE((x).sizes() == at::IntArrayRef({__VA_ARGS__}), #x " must have shape ", \
                    at::IntArrayRef({__VA_ARGS__}), ", got ", (x).sizes())

#define CHECK_FINITE(x) \
  TORCH_CHECK_VALUE(glamor::all_finite(x), #x " has NaN or infinite values")

// Gate weights, which the CPU planner stores scaled by up to 2 log2(e) (planner.cpp's pack).
#define CHECK_GATE_RANGE(x)                                                                        \
  TORCH_CHECK_VALUE(glamor::all_finite(x, 253), #x " has NaN or infinite values, or values of "  \
                    "magnitude 2^126 (8.5e37) or more, which overflow float32 once scaled for the gates")

// A contiguous CPU tensor of the given dtype: the usual first three checks.
#define CHECK_INPUT(x, dtype) \
  CHECK_CPU(x);               \
  CHECK_DTYPE(x, dtype);      \
  CHECK_CONTIGUOUS(x)

namespace glamor {

// The ops' bound on plans, widths, sample counts and horizons (int32 indices in the kernels).
constexpr int64_t MAX_SIZE = std::numeric_limits<int32_t>::max();

// The largest clip_logq: the log q of a near-certain token is 0 up to float32 rounding, which
// the CPU, CUDA and reference planners round differently, so a threshold in (-0.001, 0] would
// clip such a token on one and not another (planning.MAX_CLIP_LOGQ is the same number).
constexpr double MAX_CLIP_LOGQ = -1e-3;

// True when every element of a contiguous float32 CPU tensor is finite; with a smaller
// `exponent_limit`, also below 2^(exponent_limit - 127) in magnitude.
inline bool all_finite(const at::Tensor& x, uint32_t exponent_limit = 255) {
  const uint32_t* p = reinterpret_cast<const uint32_t*>(x.data_ptr<float>());
  const int64_t n = x.numel();
  const uint32_t limit = exponent_limit << 23;
  uint32_t bad = 0;  // NaN and infinities have all exponent bits set (vectorises, unlike isfinite)
  for (int64_t i = 0; i < n; ++i) bad |= static_cast<uint32_t>((p[i] & 0x7F800000u) >= limit);
  return bad == 0;
}

// Sizes of a call: M models (1: prior off, 2: on), P plans, n actions, hidden size H.
struct PlannerDims {
  int64_t M, P, n, H;
};

// The shapes every planner op (CPU and CUDA) requires of its weights, after the device, dtype
// and contiguity checks of its own kernel; returns the sizes read off gate_table.
inline PlannerDims check_planner_shapes(const at::Tensor& gate_table, const at::Tensor& h0, const at::Tensor& c0,
                                        const at::Tensor& w_hh, const at::Tensor& head_w, const at::Tensor& head_b) {
  CHECK_DIM(gate_table, 4);
  const int64_t M = gate_table.size(0), P = gate_table.size(1);
  const int64_t n = gate_table.size(2) - 1, H = gate_table.size(3) / 4;
  TORCH_CHECK_VALUE((M == 1 || M == 2) && n >= 1 && H >= 1 && gate_table.size(3) % 4 == 0,
                    "gate_table must be (M, P, n+1, 4H) with M = 1 (prior off) or 2 (prior on), "
                    "n >= 1 actions and H >= 1, got shape ", gate_table.sizes());
  // NotImplementedError: plan(backend="auto") runs such a call on the reference planner.
  TORCH_CHECK_NOT_IMPLEMENTED(H <= 4096 && n <= (1 << 20) && P <= MAX_SIZE,
                              "gate_table is too large for the planner ops: H = ", H, " (at most 4096), n = ", n,
                              " (at most 2**20), P = ", P, " (at most 2**31 - 1); backend='reference' plans it");
  CHECK_SHAPE(h0, M, P, H);
  CHECK_SHAPE(c0, M, P, H);
  CHECK_SHAPE(w_hh, M, 4 * H, H);
  CHECK_SHAPE(head_w, M, n + 2, H);
  CHECK_SHAPE(head_b, M, n + 2);
  return {M, P, n, H};
}

// log(gamma) for gamma in (0, 1], in float32 as `s + math.log(gamma)` on float32 tensors.
inline float checked_log_gamma(double gamma) {
  TORCH_CHECK_VALUE(gamma > 0.0 && gamma <= 1.0, "gamma must be in (0, 1], got ", std::setprecision(17), gamma);
  return static_cast<float>(std::log(gamma));
}

// The optional clip of log q: off (None) or a float32 threshold (beyond float's range +-inf,
// compared on float32 as torch does, not undefined behaviour).
struct Clip {
  bool on;
  float value;
};

inline Clip checked_clip(std::optional<double> clip_logq) {
  if (!clip_logq.has_value()) return {false, 0.0f};
  TORCH_CHECK_VALUE(!std::isnan(*clip_logq), "clip_logq must be a number or None, got NaN");
  const double x = *clip_logq;
  TORCH_CHECK_VALUE(x <= MAX_CLIP_LOGQ, "clip_logq must be None or at most -0.001 (a log q threshold: a "
                    "near-certain token's log q is 0 up to rounding, which the planners round differently), got ",
                    std::setprecision(17), x);
  return {true, x < -std::numeric_limits<float>::max() ? -INFINITY : static_cast<float>(x)};
}

// Sizes of a planning call, the same bounds on the CPU and CUDA ops.
inline void check_horizon(int64_t horizon) {
  TORCH_CHECK_VALUE(horizon >= 1 && horizon < MAX_SIZE, "horizon must be in [1, 2**31 - 1), got ", horizon);
}

inline void check_num_samples(int64_t num_samples) {
  TORCH_CHECK_VALUE(num_samples >= 1 && num_samples <= MAX_SIZE, "num_samples must be in [1, 2**31), got ",
                    num_samples);
}

// Beam search expands width x n candidates per step, which must fit an int32 index.
inline void check_width(int64_t width, int64_t n) {
  TORCH_CHECK_VALUE(width >= 1 && width <= MAX_SIZE / n, "width must be in [1, (2**31 - 1) // n = ", MAX_SIZE / n,
                    "] with n = ", n, " actions, got ", width);
}

}  // namespace glamor
