// The instantiated sample kernels (see planner_kernels.cuh), one file per op so that the
// builds compile them in parallel.
#include "cuda/planner_kernels.cuh"

namespace glamor {
namespace cuda {

#define GLAMOR_TILE_CASES(KERNEL)                                            \
  if (U == 1 && R == 1) return w ? KERNEL<1, 1, true> : KERNEL<1, 1, false>; \
  if (U == 1 && R == 8) return w ? KERNEL<1, 8, true> : KERNEL<1, 8, false>; \
  if (U == 2 && R == 1) return w ? KERNEL<2, 1, true> : KERNEL<2, 1, false>; \
  if (U == 2 && R == 8) return w ? KERNEL<2, 8, true> : KERNEL<2, 8, false>; \
  if (U == 4 && R == 1) return w ? KERNEL<4, 1, true> : KERNEL<4, 1, false>; \
  if (U == 4 && R == 4) return w ? KERNEL<4, 4, true> : KERNEL<4, 4, false>; \
  return nullptr;

SampleFn sample_fn(int U, int R, bool w) { GLAMOR_TILE_CASES(sample_kernel) }

SampleFn sample_pair_fn(int U, bool w) {
  if (U == 1) return w ? sample_pair_kernel<1, true> : sample_pair_kernel<1, false>;
  if (U == 2) return w ? sample_pair_kernel<2, true> : sample_pair_kernel<2, false>;
  if (U == 4) return w ? sample_pair_kernel<4, true> : sample_pair_kernel<4, false>;
  return nullptr;
}

}  // namespace cuda
}  // namespace glamor
