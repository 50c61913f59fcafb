// Planner kernels for AVX-512 (F, DQ, BW, VL) with FMA: 16 lanes.
// Chosen at run time by the CPU's features (planner.cpp). The target pragma covers only the
// anonymous namespace below, and everything in it has internal linkage (see simd.h), so no
// code of this file runs on a CPU that lacks these features.
#include <cstddef>
#include <cstdint>

#include "cpu/kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC diagnostic push  // GCC 12 flags the _mm512_undefined_* inside its own intrinsics
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c,bmi,bmi2,popcnt")
namespace glamor {
namespace cpu {
namespace {
#define GLAMOR_SIMD_AVX512
#define GLAMOR_ISA_NAME "avx512"
#include "cpu/simd.h"
#include "cpu/kernel_impl.h"
}  // namespace
}  // namespace cpu
}  // namespace glamor
#pragma GCC diagnostic pop
#pragma GCC pop_options

const glamor::cpu::Kernels& glamor::cpu::kernels_avx512() { return kTable; }

#else  // not x86-64 with GCC or clang: never selected

const glamor::cpu::Kernels& glamor::cpu::kernels_avx512() { return kernels_scalar(); }

#endif
