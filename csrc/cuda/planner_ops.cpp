// The torch side of the CUDA ops: argument checks (checks.h), a device guard, the current
// stream, outputs and workspace from the caching allocator, and the launches of
// planner_launch.cu. No host synchronisation and no allocation outside the caching allocator,
// so every op can be captured in a CUDA graph. Built only into the CUDAExtension (setup.py).
#include "cuda/planner.h"

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

#include "checks.h"
#include "cuda/planner_launch.h"

namespace glamor {
namespace cuda {
namespace {

// Candidates per plan: the kernels' shared claim counter (int) may run up to a few warps' worth
// of slots past the last candidate, so it stays 2**16 below int's limit.
constexpr int64_t MAX_CANDIDATES = MAX_SIZE - (1 << 16);
constexpr double MAX_WORKSPACE_BYTES = 16.0 * (1ull << 30);

#define CHECK_CUDA_ON(x, dev)                                                                      \
  TORCH_CHECK_VALUE((x).is_cuda(), #x " must be a CUDA tensor (this is the CUDA kernel), got ", \
                    (x).device());                                                                 \
  TORCH_CHECK_VALUE((x).device() == (dev), #x " is on ", (x).device(), ", gate_table on ", (dev))

#define CHECK_CUDA_INPUT(x, dtype, dev) \
  CHECK_CUDA_ON(x, dev);                \
  CHECK_DTYPE(x, dtype);                \
  CHECK_CONTIGUOUS(x)

Problem check_inputs(const at::Tensor& gate_table, const at::Tensor& h0, const at::Tensor& c0,
                     const at::Tensor& w_hh, const at::Tensor& head_w, const at::Tensor& head_b) {
  const at::Device dev = gate_table.device();
  CHECK_CUDA_INPUT(gate_table, at::kFloat, dev);
  CHECK_CUDA_INPUT(h0, at::kFloat, dev);
  CHECK_CUDA_INPUT(c0, at::kFloat, dev);
  CHECK_CUDA_INPUT(w_hh, at::kFloat, dev);
  CHECK_CUDA_INPUT(head_w, at::kFloat, dev);
  CHECK_CUDA_INPUT(head_b, at::kFloat, dev);
  const PlannerDims d = check_planner_shapes(gate_table, h0, c0, w_hh, head_w, head_b);
  // Finiteness is not checked here: that would read the weights back to the host (a sync).
  Problem pr;
  pr.gate_table = gate_table.data_ptr<float>();
  pr.h0 = h0.data_ptr<float>();
  pr.c0 = c0.data_ptr<float>();
  pr.w_hh = w_hh.data_ptr<float>();
  pr.head_w = head_w.data_ptr<float>();
  pr.head_b = head_b.data_ptr<float>();
  pr.M = static_cast<int>(d.M), pr.P = static_cast<int>(d.P), pr.n = static_cast<int>(d.n), pr.H = static_cast<int>(d.H);
  return pr;
}

void set_gamma_clip(Problem& pr, double gamma, std::optional<double> clip_logq) {
  pr.log_gamma = checked_log_gamma(gamma);
  const Clip clip = checked_clip(clip_logq);
  pr.clip = clip.on;
  pr.clip_logq = clip.value;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  TORCH_CHECK_VALUE(end != v && *end == '\0', name, " must be an integer, got '", v, "'");
  return static_cast<int>(x);
}

// Overrides for tests and experiments, read at every call.
Options options_from_env() {
  Options o;
  o.tile = env_int("GLAMOR_CUDA_TILE", 0);
  o.blocks = env_int("GLAMOR_CUDA_BEAM_BLOCKS", 0);
  o.w_global = env_int("GLAMOR_CUDA_W_GLOBAL", 0) != 0;
  return o;
}

// GLAMOR_CUDA_VERBOSE=1 prints each call's configuration (tile, warps, blocks, memory) to stderr.
void check_config(const char* op, const Config& cfg) {
  if (env_int("GLAMOR_CUDA_VERBOSE", 0) != 0)
    std::fprintf(stderr, "glamor cuda %s: %s%s%s\n", op, cfg.describe().c_str(), cfg.error.empty() ? "" : " error: ",
                 cfg.error.c_str());
  TORCH_CHECK_NOT_IMPLEMENTED(!cfg.unsupported, cfg.error);  // NotImplementedError: backend='auto' falls back
  TORCH_CHECK_VALUE(cfg.error.empty(), cfg.error);
  TORCH_CHECK_VALUE(static_cast<double>(cfg.workspace_bytes) <= MAX_WORKSPACE_BYTES, "this call would need ",
                    cfg.workspace_bytes / double(1ull << 30),
                    " GiB of CUDA planner workspace (at most 16): lower the width, horizon or plans");
}

at::Tensor workspace(const at::Tensor& like, size_t bytes) {
  return at::empty({static_cast<int64_t>(bytes > 0 ? bytes : 1)}, like.options().dtype(at::kByte));
}

}  // namespace

at::Tensor score_plans(const at::Tensor& gate_table, const at::Tensor& h0, const at::Tensor& c0,
                       const at::Tensor& w_hh, const at::Tensor& head_w, const at::Tensor& head_b,
                       const at::Tensor& actions, const at::Tensor& lengths, double gamma,
                       std::optional<double> clip_logq) {
  CHECK_CUDA_ON(gate_table, gate_table.device());
  c10::cuda::CUDAGuard guard(gate_table.device());
  Problem pr = check_inputs(gate_table, h0, c0, w_hh, head_w, head_b);
  set_gamma_clip(pr, gamma, clip_logq);
  CHECK_CUDA_INPUT(actions, at::kLong, gate_table.device());
  CHECK_CUDA_INPUT(lengths, at::kLong, gate_table.device());
  CHECK_DIM(actions, 3);
  TORCH_CHECK_VALUE(actions.size(0) == pr.P, "actions must be (P=", pr.P, ", N, L), got shape ", actions.sizes());
  const int64_t N = actions.size(1), L = actions.size(2);
  CHECK_SHAPE(lengths, pr.P, N);
  // L + 1 steps (the last feeds END) are counted in an int: L below 2**31 - 1, as a horizon (as the CPU op)
  TORCH_CHECK_VALUE(N <= MAX_SIZE && L < MAX_SIZE, "actions is too large: (P, N <= 2**31 - 1, L < 2**31 - 1), "
                    "got shape ", actions.sizes());
  TORCH_CHECK_NOT_IMPLEMENTED(N <= MAX_CANDIDATES, "the CUDA planner scores at most 2**31 - 2**16 sequences per "
                              "plan, got ", N);
  at::Tensor out = at::empty({pr.P, N}, gate_table.options());
  if (pr.P == 0 || N == 0) return out;
  TORCH_CHECK_VALUE(L >= 1, "actions must have L >= 1, got shape ", actions.sizes());
  const Config cfg = score_config(pr, static_cast<int>(N), static_cast<int>(L), options_from_env(),
                                  gate_table.get_device());
  check_config("score_plans", cfg);
  C10_CUDA_CHECK(score_launch(cfg, pr, static_cast<int>(N), static_cast<int>(L), actions.data_ptr<int64_t>(),
                              lengths.data_ptr<int64_t>(), out.data_ptr<float>(),
                              c10::cuda::getCurrentCUDAStream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sample_plans(
    const at::Tensor& gate_table, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_hh,
    const at::Tensor& head_w, const at::Tensor& head_b, int64_t num_samples, int64_t horizon,
    int64_t seed, double gamma, std::optional<double> clip_logq, const std::optional<at::Tensor>& keys_opt) {
  CHECK_CUDA_ON(gate_table, gate_table.device());
  c10::cuda::CUDAGuard guard(gate_table.device());
  Problem pr = check_inputs(gate_table, h0, c0, w_hh, head_w, head_b);
  set_gamma_clip(pr, gamma, clip_logq);
  const int64_t* keys = nullptr;
  if (keys_opt) {
    const at::Tensor& plan_keys = *keys_opt;
    CHECK_CUDA_INPUT(plan_keys, at::kLong, gate_table.device());
    CHECK_SHAPE(plan_keys, pr.P);
    keys = plan_keys.data_ptr<int64_t>();
  }
  check_num_samples(num_samples);
  TORCH_CHECK_NOT_IMPLEMENTED(num_samples <= MAX_CANDIDATES, "the CUDA planner samples at most 2**31 - 2**16 "
                              "candidates per plan, got ", num_samples);
  check_horizon(horizon);
  TORCH_CHECK_VALUE(seed >= 0, "seed must be in [0, 2**63), got ", seed);
  const auto opts = gate_table.options();
  at::Tensor actions = at::empty({pr.P, horizon}, opts.dtype(at::kLong));
  at::Tensor lengths = at::empty({pr.P}, opts.dtype(at::kLong));
  at::Tensor scores = at::empty({pr.P}, opts);
  if (pr.P == 0) return {actions, lengths, scores};
  const Config cfg = sample_config(pr, static_cast<int>(num_samples), static_cast<int>(horizon), options_from_env(),
                                   gate_table.get_device());
  check_config("sample_plans", cfg);
  at::Tensor ws = workspace(gate_table, cfg.workspace_bytes);
  C10_CUDA_CHECK(sample_launch(cfg, pr, static_cast<int>(num_samples), static_cast<int>(horizon),
                               static_cast<uint64_t>(seed), keys, ws.data_ptr(), actions.data_ptr<int64_t>(),
                               lengths.data_ptr<int64_t>(), scores.data_ptr<float>(),
                               c10::cuda::getCurrentCUDAStream()));
  return {actions, lengths, scores};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> beam_search(
    const at::Tensor& gate_table, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_hh,
    const at::Tensor& head_w, const at::Tensor& head_b, int64_t width, int64_t horizon, double gamma,
    std::optional<double> clip_logq) {
  CHECK_CUDA_ON(gate_table, gate_table.device());
  c10::cuda::CUDAGuard guard(gate_table.device());
  Problem pr = check_inputs(gate_table, h0, c0, w_hh, head_w, head_b);
  set_gamma_clip(pr, gamma, clip_logq);
  check_width(width, pr.n);
  check_horizon(horizon);
  const auto opts = gate_table.options();
  at::Tensor actions = at::empty({pr.P, horizon}, opts.dtype(at::kLong));
  at::Tensor lengths = at::empty({pr.P}, opts.dtype(at::kLong));
  at::Tensor scores = at::empty({pr.P}, opts);
  if (pr.P == 0) return {actions, lengths, scores};
  const Config cfg = beam_config(pr, static_cast<int>(width), static_cast<int>(horizon), options_from_env(),
                                 gate_table.get_device());
  check_config("beam_search", cfg);
  at::Tensor ws = workspace(gate_table, cfg.workspace_bytes);
  C10_CUDA_CHECK(beam_launch(cfg, pr, static_cast<int>(width), static_cast<int>(horizon), ws.data_ptr(),
                             actions.data_ptr<int64_t>(), lengths.data_ptr<int64_t>(), scores.data_ptr<float>(),
                             c10::cuda::getCurrentCUDAStream()));
  return {actions, lengths, scores};
}

at::Tensor uniform(int64_t seed, const at::Tensor& plan, const at::Tensor& candidate, int64_t step) {
  TORCH_CHECK_VALUE(seed >= 0, "seed must be in [0, 2**63), got ", seed);
  CHECK_CUDA_ON(plan, plan.device());
  CHECK_CUDA_ON(candidate, plan.device());
  c10::cuda::CUDAGuard guard(plan.device());
  CHECK_DTYPE(plan, at::kLong);
  CHECK_DTYPE(candidate, at::kLong);
  auto both = at::broadcast_tensors({plan, candidate});
  const at::Tensor p = both[0].contiguous(), c = both[1].contiguous();
  at::Tensor out = at::empty(p.sizes(), plan.options().dtype(at::kFloat));
  C10_CUDA_CHECK(uniform_launch(static_cast<uint64_t>(seed), p.data_ptr<int64_t>(), c.data_ptr<int64_t>(), out.numel(),
                                static_cast<uint32_t>(step), out.data_ptr<float>(), c10::cuda::getCurrentCUDAStream()));
  return out;
}

}  // namespace cuda
}  // namespace glamor
