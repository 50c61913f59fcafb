// Counter-based uniforms keyed by (seed, plan, candidate, step): the same function as
// glamor/planning/rng.py, on uint32_t (lowbias32 chained over the keys), so the native
// sampler and the readable reference draw identical numbers, whatever the thread count.
// Torch-free and host/device: the CUDA sampler (csrc/cuda/) includes it too, so that CPU and
// GPU draw from one definition.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define GLAMOR_HD __host__ __device__
#else
#define GLAMOR_HD
#endif

namespace glamor {
namespace rng {

constexpr uint32_t GOLDEN = 0x9E3779B9u;

GLAMOR_HD static inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

// The part of the chain that depends on the seed and the plan only.
GLAMOR_HD static inline uint32_t plan_key(uint64_t seed, uint32_t plan) {
  uint32_t h = mix32(static_cast<uint32_t>(seed) + GOLDEN);
  h = mix32((h ^ static_cast<uint32_t>(seed >> 32)) + GOLDEN);
  return mix32((h ^ plan) + GOLDEN);
}

// float32 in [0, 1), exact: the top 24 bits of the hash times 2**-24.
GLAMOR_HD static inline float uniform(uint32_t plan_key, uint32_t candidate, uint32_t step) {
  uint32_t h = mix32((plan_key ^ candidate) + GOLDEN);
  h = mix32((h ^ step) + GOLDEN);
  return static_cast<float>(h >> 8) * (1.0f / 16777216.0f);
}

}  // namespace rng
}  // namespace glamor
