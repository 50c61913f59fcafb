// Host side of the CUDA planner, torch-free: choosing a kernel configuration for the sizes and
// the device, the workspace it needs, and the launches (planner_launch.cu). The torch ops
// (planner_ops.cpp) check their arguments, allocate the outputs and the workspace with the
// caching allocator and call these on the current stream; nothing here synchronises.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
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
  int tile = 0;           // sampling and scoring: 1 candidate per warp, or 8 (any value > 1: 8, 4 when H > 64)
  int blocks = 0;         // beam search: blocks per plan (a thread-block cluster when > 1), <= 8
  bool w_global = false;  // read W_hh from global memory instead of shared memory
};

// A configuration for one call. `error` non-empty: not supported (it says why).
struct Config {
  std::string error;
  int U = 0;              // hidden units per lane: ceil(H / 32), 1, 2 or 4
  int R = 0;              // candidate slots per warp
  bool w_smem = true;     // W_hh in shared memory
  int warps = 0;          // per block
  int chunk = 0;          // sampling/scoring: candidates per block
  int chunks = 0;         //   blocks per plan
  int blocks = 1;         // beam: blocks per plan
  int sort_pow2 = 0;      // beam: sort size
  int sort_in_smem = 0;   // beam: sort in shared memory
  size_t smem_bytes = 0;  // dynamic shared memory per block
  size_t workspace_bytes = 0;
  std::string describe() const;
};

Config sample_config(const Problem& pr, int N, int horizon, const Options& opt, int device);
cudaError_t sample_launch(const Config& cfg, const Problem& pr, int N, int horizon, uint64_t seed, void* workspace,
                          int64_t* actions, int64_t* lengths, float* scores, cudaStream_t stream);

Config score_config(const Problem& pr, int N, int L, const Options& opt, int device);
cudaError_t score_launch(const Config& cfg, const Problem& pr, int N, int L, const int64_t* actions,
                         const int64_t* lengths, float* out, cudaStream_t stream);

Config beam_config(const Problem& pr, int B, int horizon, const Options& opt, int device);
cudaError_t beam_launch(const Config& cfg, const Problem& pr, int B, int horizon, void* workspace, int64_t* actions,
                        int64_t* lengths, float* scores, cudaStream_t stream);

cudaError_t uniform_launch(uint64_t seed, const int64_t* plan, const int64_t* candidate, int64_t numel, uint32_t step,
                           float* out, cudaStream_t stream);

}  // namespace cuda
}  // namespace glamor
