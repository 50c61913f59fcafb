// CPU implementations of the glamor ops (schemas in csrc/ops.cpp, Python twins in
// glamor/planning/reference.py).
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <tuple>

namespace glamor {
namespace cpu {

at::Tensor score_plans(const at::Tensor& gate_table, const at::Tensor& h0, const at::Tensor& c0,
                       const at::Tensor& w_hh, const at::Tensor& head_w, const at::Tensor& head_b,
                       const at::Tensor& actions, const at::Tensor& lengths, double gamma,
                       std::optional<double> clip_logq);

std::tuple<at::Tensor, at::Tensor, at::Tensor> sample_plans(
    const at::Tensor& gate_table, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_hh,
    const at::Tensor& head_w, const at::Tensor& head_b, int64_t num_samples, int64_t horizon,
    int64_t seed, double gamma, std::optional<double> clip_logq, const std::optional<at::Tensor>& plan_keys);

std::tuple<at::Tensor, at::Tensor, at::Tensor> beam_search(
    const at::Tensor& gate_table, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_hh,
    const at::Tensor& head_w, const at::Tensor& head_b, int64_t width, int64_t horizon,
    double gamma, std::optional<double> clip_logq);

at::Tensor uniform(int64_t seed, const at::Tensor& plan, const at::Tensor& candidate, int64_t step);

// The instruction set the kernels use now: "avx512", "avx2" or "scalar" (the best this CPU
// has, or the one named by the environment variable GLAMOR_CPU_ISA).
std::string isa();

}  // namespace cpu
}  // namespace glamor
