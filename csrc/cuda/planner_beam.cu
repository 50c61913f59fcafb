// The instantiated beam kernels (see planner_kernels.cuh), one file per op so that the
// builds compile them in parallel.
#include "cuda/planner_kernels.cuh"

namespace glamor {
namespace cuda {

BeamFn beam_fn(int U, int R, bool w) {
  if (U == 1 && R == 8) return w ? beam_kernel<1, 8, true> : beam_kernel<1, 8, false>;
  if (U == 2 && R == 8) return w ? beam_kernel<2, 8, true> : beam_kernel<2, 8, false>;
  if (U == 4 && R == 4) return w ? beam_kernel<4, 4, true> : beam_kernel<4, 4, false>;
  return nullptr;
}

}  // namespace cuda
}  // namespace glamor
