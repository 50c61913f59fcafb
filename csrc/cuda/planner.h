// CUDA implementations of the glamor ops (schemas in csrc/ops.cpp, registered there under
// GLAMOR_WITH_CUDA; Python twins in glamor/planning/reference.py). Same arguments and results
// as the CPU ops (csrc/cpu/planner.h), except that nothing is read back to the host: the
// finiteness of the weights and the values of score_plans' actions are not checked (an invalid
// sequence scores NaN).
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>

namespace glamor {
namespace cuda {

at::Tensor score_plans(const at::Tensor& gate_table, const at::Tensor& h0, const at::Tensor& c0,
                       const at::Tensor& w_hh, const at::Tensor& head_w, const at::Tensor& head_b,
                       const at::Tensor& actions, const at::Tensor& lengths, double gamma,
                       std::optional<double> clip_logq);

std::tuple<at::Tensor, at::Tensor, at::Tensor> sample_plans(
    const at::Tensor& gate_table, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_hh,
    const at::Tensor& head_w, const at::Tensor& head_b, int64_t num_samples, int64_t horizon,
    int64_t seed, double gamma, std::optional<double> clip_logq,
    const std::optional<at::Tensor>& plan_keys);

std::tuple<at::Tensor, at::Tensor, at::Tensor> beam_search(
    const at::Tensor& gate_table, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_hh,
    const at::Tensor& head_w, const at::Tensor& head_b, int64_t width, int64_t horizon,
    double gamma, std::optional<double> clip_logq);

at::Tensor uniform(int64_t seed, const at::Tensor& plan, const at::Tensor& candidate, int64_t step);

}  // namespace cuda
}  // namespace glamor
