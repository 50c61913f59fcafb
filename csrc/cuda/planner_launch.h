// Host side of the CUDA planner, torch-free: choosing a kernel configuration for the sizes and
// the device, the workspace it needs, and the launches (planner_launch.cu). The torch ops
// (planner_ops.cpp) check their arguments, allocate the outputs and the workspace with the
// caching allocator and call these on the current stream; nothing here synchronises.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "cuda/planner_types.h"

namespace glamor {
namespace cuda {

Config sample_config(const Problem& pr, int N, int horizon, const Options& opt, int device);
cudaError_t sample_launch(const Config& cfg, const Problem& pr, int N, int horizon, uint64_t seed,
                          const int64_t* plan_keys, void* workspace,
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
