// Plain C++ types of the CUDA planner's host side: the problem, the overrides, the chosen
// configuration and the device facts it depends on. No CUDA or torch headers, so the torch
// wrappers (planner_ops.cpp), the launches (planner_launch.cu) and the CPU emulator of the
// kernels (tests/ops/cuda_emu/) share them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace glamor {
namespace cuda {

// The six model inputs (float32, contiguous, on the current device) and their sizes.
struct Problem {
  const float* gate_table;  // (M, P, n+1, 4H)
  const float* h0;          // (M, P, H)
  const float* c0;          // (M, P, H)
  const float* w_hh;        // (M, 4H, H)
  const float* head_w;      // (M, n+2, H)
  const float* head_b;      // (M, n+2)
  int M, P, n, H;
  float log_gamma;
  bool clip;
  float clip_logq;
};

// Overrides of the automatic choices (0 / false: automatic). The ops read them from the
// environment (GLAMOR_CUDA_TILE, GLAMOR_CUDA_BEAM_BLOCKS, GLAMOR_CUDA_W_GLOBAL) so that the
// tests can run every kernel variant.
struct Options {
  int tile = 0;           // sampling and scoring: 1 candidate per warp; 2: sampling with two warps per
                          // candidate (one per model; 1 when the prior is off or for scoring);
                          // 8 (any other value > 2): 8 candidates per warp, 4 when H > 64
  int blocks = 0;         // beam search: blocks per plan (a thread-block cluster when > 1), <= 8
  bool w_global = false;  // read W_hh from global memory instead of shared memory
};

// A configuration for one call. `error` non-empty: not supported (it says why).
struct Config {
  std::string error;
  bool unsupported = false;  // the error is a size the CUDA kernels do not take (the CPU op does)
  int U = 0;              // hidden units per lane: ceil(H / 32), 1, 2 or 4
  int R = 0;              // candidate slots per warp
  int pair = 0;           // sampling: two warps per candidate (R = 1)
  bool w_smem = true;     // W_hh in shared memory
  int warps = 0;          // per block
  int chunk = 0;          // sampling/scoring: candidates per block
  int chunks = 0;         //   blocks per plan
  int blocks = 1;         // beam: blocks per plan
  int sort_pow2 = 0;      // beam: sort size
  int sort_in_smem = 0;   // beam: sort in shared memory
  size_t smem_bytes = 0;  // dynamic shared memory per block
  size_t workspace_bytes = 0;
  std::string describe() const {
    char buf[256];
    std::snprintf(buf, sizeof(buf),
                  "U=%d R=%d pair=%d w_smem=%d warps=%d chunk=%d chunks=%d blocks=%d sort_pow2=%d "
                  "sort_in_smem=%d smem=%zu workspace=%zu",
                  U, R, pair, w_smem ? 1 : 0, warps, chunk, chunks, blocks, sort_pow2, sort_in_smem, smem_bytes,
                  workspace_bytes);
    return buf;
  }
};

// What the configuration depends on about the device.
struct DeviceInfo {
  int sms = 0;            // multiprocessors
  size_t smem_optin = 0;  // the most dynamic shared memory a block may ask for (bytes)
};

}  // namespace cuda
}  // namespace glamor
