// The CUDA planner's launch configuration and workspace layout as pure functions of the sizes,
// the overrides and the device facts (planner_launch.cu reads those off the device; the CPU
// emulator in tests/ops/cuda_emu/ passes an H100's, so both run the same choices).
//
// Choices, per call:
//   * U = ceil(H / 32) units per lane (H <= 128; larger H is rejected with a message).
//   * Sampling and scoring: R = 1 candidate per warp when the call has too few candidates to
//     fill the GPU with tiles of 8 (latency: e.g. 1 plan x 200 samples spreads over ~100
//     blocks; sampling with the prior then gives each candidate two warps, one per model),
//     else R = 8 (4 for H > 64; throughput: each W_hh row read from shared memory feeds 8
//     candidates). Blocks per plan: about #SMs / P, at least one per R candidates.
//   * W_hh of both models in shared memory when it fits next to the gate tables and heads
//     (always for H <= 64 with n <= ~90 actions), else read from global memory (L2).
//   * Beam search: R = 8 (4), one block per plan, or a cluster of up to 8 blocks per plan
//     when there are fewer plans than SMs and the beam has many tiles (planner_launch.cu then
//     checks that such a cluster can be scheduled).
#pragma once

#include <algorithm>
#include <cstdio>
#include <string>

#include "cuda/planner_kernels.cuh"
#include "cuda/planner_types.h"

namespace glamor {
namespace cuda {

constexpr size_t kStaticSmemMargin = 2048;  // the kernels' static shared memory (< 1.2 KB)
constexpr int kMaxClusterBlocks = 8;        // portable cluster size

inline int units_per_lane(int H) { return H <= 32 ? 1 : H <= 64 ? 2 : H <= 128 ? 4 : 0; }
inline int big_tile(int U) { return U == 4 ? 4 : 8; }
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline size_t align256(size_t x) { return (x + 255) & ~static_cast<size_t>(255); }

inline std::string str(const char* fmt, long long a = 0, long long b = 0, long long c = 0, long long d = 0,
                long long e = 0) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), fmt, a, b, c, d, e);
  return buf;
}

// Refuses a size the CUDA kernels do not take (the op raises NotImplementedError, and
// backend='auto' then plans with the reference planner); false, for `return`.
inline bool unsupported(Config& cfg, const std::string& why) {
  cfg.error = why;
  cfg.unsupported = true;
  return false;
}

// Warps per block that fit in shared memory (0: not even one).
inline int fit_warps(const Dims& d, bool w_smem, int R, size_t limit) {
  const Layout L0 = make_layout(d, w_smem, R, 0);
  const size_t fixed = 4ull * L0.total_floats, per = 4ull * L0.warp_floats;
  if (fixed + per > limit) return 0;
  return static_cast<int>(std::min<size_t>(kMaxWarps, (limit - fixed) / per));
}

// U, R, where W_hh lives and the warps per block; false (with cfg.error) when nothing fits.
inline bool choose_tile(const Problem& pr, int R, const Options& opt, const DeviceInfo& di, Config& cfg) {
  const Dims d = make_dims(pr.M, pr.P, pr.n, pr.H);
  cfg.R = R;
  const size_t limit = di.smem_optin > kStaticSmemMargin ? di.smem_optin - kStaticSmemMargin : 0;
  cfg.w_smem = !opt.w_global;
  int wmax = fit_warps(d, cfg.w_smem, R, limit);
  if (wmax == 0 && cfg.w_smem) {
    cfg.w_smem = false;
    wmax = fit_warps(d, false, R, limit);
  }
  if (wmax == 0) {
    const Layout L = make_layout(d, false, R, 1);
    return unsupported(cfg, str("the CUDA planner needs %lld bytes of shared memory per block for n = %lld actions, "
                                "H = %lld, M = %lld models (the gate tables, heads and one warp's rows), more than "
                                "this device's %lld: use fewer actions or the CPU op",
                                4ll * L.total_floats, pr.n, pr.H, pr.M, static_cast<long long>(limit)));
  }
  cfg.warps = wmax;
  return true;
}

inline bool common_checks(const Problem& pr, const DeviceInfo& di, Config& cfg) {
  cfg.U = units_per_lane(pr.H);
  if (cfg.U == 0) {
    return unsupported(cfg, str("the CUDA planner supports hidden sizes H <= 128, got H = %lld (the CPU op has no "
                                "such limit)", pr.H));
  }
  if (di.sms <= 0 || di.smem_optin == 0) {
    cfg.error = "could not read the device's multiprocessor count or shared-memory limit";
    return false;
  }
  return true;
}

// Sampling and scoring: candidates in chunks per block. allow_pair: sampling may use two warps
// per candidate (the prior on, latency mode).
inline Config candidate_config(const Problem& pr, int N, const Options& opt, const DeviceInfo& di,
                               bool allow_pair = false) {
  Config cfg;
  if (!common_checks(pr, di, cfg)) return cfg;
  const int rbig = big_tile(cfg.U);
  if (opt.tile < 0) {
    cfg.error = str("GLAMOR_CUDA_TILE must be 0 (automatic), 1, 2 or 8, got %lld", opt.tile);
    return cfg;
  }
  int R = opt.tile == 0 ? 0 : opt.tile <= 2 ? 1 : rbig;  // "8": the throughput tile (4 when H > 64)
  if (R == 0) R = ceil_div(static_cast<int64_t>(pr.P) * N, rbig) >= 2 * di.sms ? rbig : 1;
  bool pair = allow_pair && pr.M == 2 && R == 1 && opt.tile != 1;
  if (pr.P > 65535) {
    unsupported(cfg, str("the CUDA planner takes at most 65535 plans per call, got %lld", pr.P));
    return cfg;
  }
  if (pair) {  // the layout of two warps' rows per warp (make_layout with R = 2), an even count
    Config pc = cfg;
    if (choose_tile(pr, 2, opt, di, pc) && pc.warps >= 2) cfg = pc;
    else pair = false;
  }
  if (!pair && !choose_tile(pr, R, opt, di, cfg)) return cfg;
  cfg.R = R;
  cfg.pair = pair ? 1 : 0;
  const int64_t target = std::max(1, di.sms / std::max(pr.P, 1));
  int64_t chunks = std::min<int64_t>(target, ceil_div(N, R));
  cfg.chunk = static_cast<int>(ceil_div(N, chunks));
  cfg.chunks = static_cast<int>(ceil_div(N, cfg.chunk));
  if (pair) cfg.warps = 2 * static_cast<int>(std::min<int64_t>(cfg.warps / 2, cfg.chunk));
  else cfg.warps = static_cast<int>(std::min<int64_t>(cfg.warps, ceil_div(cfg.chunk, R)));
  const Dims d = make_dims(pr.M, pr.P, pr.n, pr.H);
  cfg.smem_bytes = 4ull * make_layout(d, cfg.w_smem, pair ? 2 : R, cfg.warps).total_floats;
  return cfg;
}

inline Net make_net(const Problem& pr) {
  Net net;
  net.gate_table = pr.gate_table;
  net.h0 = pr.h0;
  net.c0 = pr.c0;
  net.w_hh = pr.w_hh;
  net.head_w = pr.head_w;
  net.head_b = pr.head_b;
  net.d = make_dims(pr.M, pr.P, pr.n, pr.H);
  net.log_gamma = pr.log_gamma;
  net.clip = pr.clip ? 1 : 0;
  net.clip_logq = pr.clip_logq;
  return net;
}

// Workspace carving: consecutive 256-byte aligned arrays.
struct Carve {
  char* base;
  size_t off = 0;
  template <class T>
  T* take(size_t count) {
    T* p = base ? reinterpret_cast<T*>(base + off) : nullptr;
    off = align256(off + count * sizeof(T));
    return p;
  }
};

inline SampleArgs sample_args(const Config& cfg, const Problem& pr, int N, int horizon, uint64_t seed,
                              const int64_t* plan_keys, void* ws, size_t* bytes) {
  SampleArgs a;
  a.N = N, a.horizon = horizon, a.chunk = cfg.chunk, a.chunks = cfg.chunks, a.seed = seed, a.plan_keys = plan_keys;
  Carve cv{static_cast<char*>(ws)};
  const size_t P = static_cast<size_t>(pr.P);
  a.seq = cv.take<int>(P * N * horizon);
  a.best_score = cv.take<float>(P * cfg.chunks);
  a.best_cand = cv.take<int>(P * cfg.chunks);
  a.best_len = cv.take<int>(P * cfg.chunks);
  if (bytes) *bytes = cv.off;
  return a;
}

inline BeamArgs beam_args(const Config& cfg, const Problem& pr, int B, int horizon, void* ws, size_t* bytes) {
  BeamArgs a;
  a.B = B, a.horizon = horizon, a.blocks = cfg.blocks, a.sort_pow2 = cfg.sort_pow2, a.sort_in_smem = cfg.sort_in_smem;
  Carve cv{static_cast<char*>(ws)};
  const size_t P = static_cast<size_t>(pr.P), state = static_cast<size_t>(pr.M) * B * pr.H;
  a.h = cv.take<float>(P * 2 * state);
  a.c = cv.take<float>(P * 2 * state);
  a.cand = cv.take<float>(P * B * (pr.n + 1));
  a.par = cv.take<int>(P * B);
  a.tok = cv.take<int>(P * B);
  a.score = cv.take<float>(P * B);
  a.hist_par = cv.take<int>(P * horizon * B);
  a.hist_tok = cv.take<int>(P * horizon * B);
  a.keys = cv.take<unsigned long long>(cfg.sort_in_smem ? 0 : P * cfg.sort_pow2);
  a.live = cv.take<int>(P);
  a.out_actions = nullptr, a.out_lengths = nullptr, a.out_scores = nullptr;
  if (bytes) *bytes = cv.off;
  return a;
}

// Beam search: all but the check that a cluster of cfg.blocks blocks can be scheduled, which
// needs the device (planner_launch.cu falls back to one block per plan).
inline Config beam_config_for(const Problem& pr, int B, int horizon, const Options& opt, const DeviceInfo& di) {
  Config cfg;
  if (!common_checks(pr, di, cfg)) return cfg;
  if (static_cast<int64_t>(B) * (pr.n + 1) >= (1ll << 31)) {
    unsupported(cfg, str("width x (n + 1) must be below 2**31 on CUDA, got width %lld with n = %lld", B, pr.n));
    return cfg;
  }
  if (!choose_tile(pr, big_tile(cfg.U), opt, di, cfg)) return cfg;
  const int64_t tiles = ceil_div(B, cfg.R);
  cfg.warps = static_cast<int>(std::min<int64_t>(cfg.warps, tiles));
  int blocks = opt.blocks;
  if (blocks == 0) {
    blocks = static_cast<int>(std::min<int64_t>(kMaxClusterBlocks, ceil_div(tiles, 2 * cfg.warps)));
    if (pr.P >= di.sms) blocks = 1;
    else blocks = std::max(1, std::min(blocks, di.sms / pr.P));
  }
  if (blocks < 1 || blocks > kMaxClusterBlocks) {
    cfg.error = str("GLAMOR_CUDA_BEAM_BLOCKS must be in [1, %lld], got %lld", kMaxClusterBlocks, blocks);
    return cfg;
  }
  if (static_cast<int64_t>(pr.P) * blocks >= (1ll << 31)) {
    unsupported(cfg, "too many plans for one launch");
    return cfg;
  }
  const Dims d = make_dims(pr.M, pr.P, pr.n, pr.H);
  const Layout L = make_layout(d, cfg.w_smem, cfg.R, cfg.warps);
  cfg.smem_bytes = 4ull * L.total_floats;
  cfg.sort_pow2 = 1;
  while (cfg.sort_pow2 < B) cfg.sort_pow2 <<= 1;
  cfg.sort_in_smem = 8ull * cfg.sort_pow2 <= 4ull * cfg.warps * L.warp_floats ? 1 : 0;
  cfg.blocks = blocks;
  size_t bytes = 0;
  beam_args(cfg, pr, B, horizon, nullptr, &bytes);
  cfg.workspace_bytes = bytes;
  return cfg;
}

// The configuration of a sampling call: candidate_config and the workspace.
inline Config sample_config_for(const Problem& pr, int N, int horizon, const Options& opt, const DeviceInfo& di) {
  Config cfg = candidate_config(pr, N, opt, di, /*allow_pair=*/true);
  if (cfg.error.empty()) {
    size_t bytes = 0;
    sample_args(cfg, pr, N, horizon, 0, nullptr, nullptr, &bytes);
    cfg.workspace_bytes = bytes;
  }
  return cfg;
}

}  // namespace cuda
}  // namespace glamor
