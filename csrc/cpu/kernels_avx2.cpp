// Planner kernels for AVX2 with FMA: 8 lanes.
// Chosen at run time by the CPU's features (planner.cpp). The target pragma covers only the
// anonymous namespace below, and everything in it has internal linkage (see simd.h), so no
// code of this file runs on a CPU that lacks these features.
#include <cstddef>
#include <cstdint>

#include "cpu/kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,bmi,bmi2,popcnt")
namespace glamor {
namespace cpu {
namespace {
#define GLAMOR_SIMD_AVX2
#define GLAMOR_ISA_NAME "avx2"
#include "cpu/simd.h"
#include "cpu/kernel_impl.h"
}  // namespace
}  // namespace cpu
}  // namespace glamor
#pragma GCC pop_options

const glamor::cpu::Kernels& glamor::cpu::kernels_avx2() { return kTable; }

#else  // not x86-64 with GCC or clang: never selected

const glamor::cpu::Kernels& glamor::cpu::kernels_avx2() { return kernels_scalar(); }

#endif
