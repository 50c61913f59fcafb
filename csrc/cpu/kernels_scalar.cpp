// Planner kernels in plain C++, one lane: the fallback that runs on any CPU.
#include <cstddef>
#include <cstdint>

#include "cpu/kernels.h"

namespace glamor {
namespace cpu {
namespace {
#define GLAMOR_SIMD_SCALAR
#define GLAMOR_ISA_NAME "scalar"
#include "cpu/simd.h"
#include "cpu/kernel_impl.h"
}  // namespace

const Kernels& kernels_scalar() { return kTable; }

}  // namespace cpu
}  // namespace glamor
