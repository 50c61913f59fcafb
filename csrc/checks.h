// Input checks used at every op boundary. Each raises a Python exception (ValueError for
// bad values and shapes, TypeError for dtypes) that names the argument, what was expected
// and what it got.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#define CHECK_CPU(x) \
  TORCH_CHECK_VALUE((x).device().is_cpu(), #x " must be a CPU tensor (this is the CPU kernel), got ", (x).device())

#define CHECK_DTYPE(x, dtype) \
  TORCH_CHECK_TYPE((x).scalar_type() == (dtype), #x " must be ", (dtype), ", got ", (x).scalar_type())

#define CHECK_CONTIGUOUS(x)                                                                        \
  TORCH_CHECK_VALUE((x).is_contiguous(), #x " must be contiguous (call .contiguous()), got sizes ", \
                    (x).sizes(), " strides ", (x).strides())

#define CHECK_DIM(x, d) \
  TORCH_CHECK_VALUE((x).dim() == (d), #x " must have ", (d), " dimensions, got shape ", (x).sizes())

#define CHECK_SHAPE(x, ...)                                                                    \
  TORCH_CHECK_VALUE((x).sizes() == at::IntArrayRef({__VA_ARGS__}), #x " must have shape ", \
                    at::IntArrayRef({__VA_ARGS__}), ", got ", (x).sizes())

#define CHECK_FINITE(x) \
  TORCH_CHECK_VALUE(glamor::all_finite(x), #x " has NaN or infinite values")

// A contiguous CPU tensor of the given dtype: the usual first three checks.
#define CHECK_INPUT(x, dtype) \
  CHECK_CPU(x);               \
  CHECK_DTYPE(x, dtype);      \
  CHECK_CONTIGUOUS(x)

namespace glamor {

// True when every element of a contiguous float32 CPU tensor is finite.
inline bool all_finite(const at::Tensor& x) {
  const uint32_t* p = reinterpret_cast<const uint32_t*>(x.data_ptr<float>());
  const int64_t n = x.numel();
  uint32_t bad = 0;  // NaN and infinities have all exponent bits set (vectorises, unlike isfinite)
  for (int64_t i = 0; i < n; ++i) bad |= static_cast<uint32_t>((p[i] & 0x7F800000u) == 0x7F800000u);
  return bad == 0;
}

}  // namespace glamor
