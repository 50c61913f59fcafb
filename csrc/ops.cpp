// The glamor ops: schemas (once, for every device) and their CPU implementations.
//
// Shapes (M = 2 with the prior, 1 without; P plans; n actions; H hidden; see
// glamor/planning/inputs.py): gate_table (M, P, n+1, 4H), h0 and c0 (M, P, H), w_hh (M, 4H, H),
// head_w (M, n+2, H), head_b (M, n+2), all float32 and contiguous.
//
//   score_plans   -> scores (P, N) of actions (P, N, L) int64 with lengths (P, N) in [1, L]
//   sample_plans  -> actions (P, horizon) int64 padded with -1, lengths (P,) int64, scores (P,);
//                    draws keyed by (seed, plan, candidate, step), the plan by its index or by
//                    plan_keys (P,) int64 (low 32 bits) when given
//   beam_search   -> the same, by beam search of the given width
//   uniform       -> the sampler's draws (broadcast of plan and candidate), float32
//
// The Python side (glamor/ops/__init__.py) registers their fake (meta) implementations.
// CUDA implementations (csrc/cuda/) are registered when the extension is built with CUDA
// (setup.py defines GLAMOR_WITH_CUDA then).
#include <torch/extension.h>
#include <torch/library.h>

#include "cpu/planner.h"
#ifdef GLAMOR_WITH_CUDA
#include "cuda/planner.h"
#endif

TORCH_LIBRARY(glamor, m) {
  m.def(
      "score_plans(Tensor gate_table, Tensor h0, Tensor c0, Tensor w_hh, Tensor head_w, Tensor head_b, "
      "Tensor actions, Tensor lengths, float gamma, float? clip_logq) -> Tensor");
  m.def(
      "sample_plans(Tensor gate_table, Tensor h0, Tensor c0, Tensor w_hh, Tensor head_w, Tensor head_b, "
      "int num_samples, int horizon, int seed, float gamma, float? clip_logq, Tensor? plan_keys=None) "
      "-> (Tensor actions, Tensor lengths, Tensor scores)");
  m.def(
      "beam_search(Tensor gate_table, Tensor h0, Tensor c0, Tensor w_hh, Tensor head_w, Tensor head_b, "
      "int width, int horizon, float gamma, float? clip_logq) "
      "-> (Tensor actions, Tensor lengths, Tensor scores)");
  m.def("uniform(int seed, Tensor plan, Tensor candidate, int step) -> Tensor");
}

TORCH_LIBRARY_IMPL(glamor, CPU, m) {
  m.impl("score_plans", &glamor::cpu::score_plans);
  m.impl("sample_plans", &glamor::cpu::sample_plans);
  m.impl("beam_search", &glamor::cpu::beam_search);
  m.impl("uniform", &glamor::cpu::uniform);
}

#ifdef GLAMOR_WITH_CUDA
TORCH_LIBRARY_IMPL(glamor, CUDA, m) {
  m.impl("score_plans", &glamor::cuda::score_plans);
  m.impl("sample_plans", &glamor::cuda::sample_plans);
  m.impl("beam_search", &glamor::cuda::beam_search);
  m.impl("uniform", &glamor::cuda::uniform);
}
#endif

// Not differentiable: plans are discrete, and the scores are for ranking them. Autograd passes
// the ops through, so their outputs never require grad (no silent "no autograd kernel" path).
TORCH_LIBRARY_IMPL(glamor, Autograd, m) {
  m.impl("score_plans", torch::CppFunction::makeFallthrough());
  m.impl("sample_plans", torch::CppFunction::makeFallthrough());
  m.impl("beam_search", torch::CppFunction::makeFallthrough());
  m.impl("uniform", torch::CppFunction::makeFallthrough());
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "glamor native planner ops; importing this module registers torch.ops.glamor.*";
  m.def("cpu_isa", &glamor::cpu::isa,
        "The instruction set the CPU kernels use now: avx512, avx2 or scalar (the best this CPU "
        "has, or the one named by the environment variable GLAMOR_CPU_ISA).");
}
