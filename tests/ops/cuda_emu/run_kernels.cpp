// Runs one CUDA planner kernel configuration in the SIMT emulator (emu.h) on the CPU.
//
//   run_kernels OP IN OUT key=value...
//
// OP: sample, beam or score. IN: the float32 inputs gate_table, h0, c0, w_hh, head_w, head_b
// back to back (then, for score, int64 actions (P, N, L) and lengths (P, N)). OUT: for sample
// and beam int64 actions (P, horizon), int64 lengths (P), float32 scores (P); for score float32
// (P, N). Keys: M P n H gamma clip(0/1) clip_logq, N horizon seed (sample), B horizon (beam),
// N L (score), and the launch configuration U R w_smem warps chunk chunks (sample, score),
// blocks sort_pow2 sort_in_smem (beam), as planner_launch.cu would choose or a test forces.
// Built and driven by tests/ops/test_planner_cuda_emulated.py.
#define GLAMOR_CUDA_EMULATION
#include "emu.h"
// emu.h first: the kernels see its builtins
#include "cuda/planner_kernels.cuh"

#include <cmath>
#include <fstream>
#include <map>
#include <stdexcept>

using namespace glamor::cuda;

namespace {

std::map<std::string, std::string> kv;

int64_t geti(const char* k) {
  auto it = kv.find(k);
  if (it == kv.end()) glamor_emu::die(std::string("missing argument ") + k);
  return std::stoll(it->second);
}

double getd(const char* k) {
  auto it = kv.find(k);
  if (it == kv.end()) glamor_emu::die(std::string("missing argument ") + k);
  return std::stod(it->second);
}

template <class T>
std::vector<T> read(std::ifstream& in, size_t n) {
  std::vector<T> v(n);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * sizeof(T)));
  if (!in) glamor_emu::die("input file too short");
  return v;
}

template <class T>
void write(std::ofstream& out, const std::vector<T>& v) {
  out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
}

struct Inputs {
  std::vector<float> gt, h0, c0, whh, hw, hb;
  Net net;
};

Inputs load(std::ifstream& in) {
  Inputs x;
  const int M = geti("M"), P = geti("P"), n = geti("n"), H = geti("H");
  x.gt = read<float>(in, size_t(M) * P * (n + 1) * 4 * H);
  x.h0 = read<float>(in, size_t(M) * P * H);
  x.c0 = read<float>(in, size_t(M) * P * H);
  x.whh = read<float>(in, size_t(M) * 4 * H * H);
  x.hw = read<float>(in, size_t(M) * (n + 2) * H);
  x.hb = read<float>(in, size_t(M) * (n + 2));
  Net& net = x.net;
  net.gate_table = x.gt.data(), net.h0 = x.h0.data(), net.c0 = x.c0.data();
  net.w_hh = x.whh.data(), net.head_w = x.hw.data(), net.head_b = x.hb.data();
  net.d = make_dims(M, P, n, H);
  net.log_gamma = static_cast<float>(std::log(getd("gamma")));
  net.clip = static_cast<int>(geti("clip"));
  net.clip_logq = static_cast<float>(getd("clip_logq"));
  return x;
}

size_t smem_bytes(const Net& net, bool w_smem, int R, int warps) {
  return 4ull * make_layout(net.d, w_smem, R, warps).total_floats;
}

template <int U, int R, bool W>
void sample(const Inputs& x, std::ofstream& out) {
  const Net& net = x.net;
  const int P = net.d.P, N = geti("N"), T = geti("horizon"), warps = geti("warps");
  SampleArgs a;
  a.N = N, a.horizon = T, a.chunk = geti("chunk"), a.chunks = geti("chunks"), a.seed = geti("seed");
  std::vector<int> seq(size_t(P) * N * T, -7), bc(size_t(P) * a.chunks, -7), bl(bc.size(), -7);
  std::vector<float> bs(bc.size(), NAN);
  a.seq = seq.data(), a.best_score = bs.data(), a.best_cand = bc.data(), a.best_len = bl.data();
  for (int p = 0; p < P; ++p)
    for (int ch = 0; ch < a.chunks; ++ch)
      glamor_emu::run(
          1, warps * 32, smem_bytes(net, W, R, warps),
          [&](int) { return glamor_emu::Dim3{unsigned(ch), unsigned(p), 1}; },
          [&] { sample_kernel<U, R, W>(net, a); });
  std::vector<int64_t> actions(size_t(P) * T, -7), lengths(P, -7);
  std::vector<float> scores(P, NAN);
  for (int p = 0; p < P; ++p)
    glamor_emu::run(
        1, 128, 0, [&](int) { return glamor_emu::Dim3{unsigned(p), 1, 1}; },
        [&] { sample_finalize(a, actions.data(), lengths.data(), scores.data()); });
  write(out, actions), write(out, lengths), write(out, scores);
}

template <int U, int R, bool W>
void score(const Inputs& x, std::ifstream& in, std::ofstream& out) {
  const Net& net = x.net;
  const int P = net.d.P, N = geti("N"), L = geti("L"), warps = geti("warps");
  const std::vector<int64_t> acts = read<int64_t>(in, size_t(P) * N * L), lens = read<int64_t>(in, size_t(P) * N);
  std::vector<float> o(size_t(P) * N, -12345.0f);
  ScoreArgs a;
  a.N = N, a.L = L, a.chunk = geti("chunk"), a.chunks = geti("chunks");
  a.actions = acts.data(), a.lengths = lens.data(), a.out = o.data();
  for (int p = 0; p < P; ++p)
    for (int ch = 0; ch < a.chunks; ++ch)
      glamor_emu::run(
          1, warps * 32, smem_bytes(net, W, R, warps),
          [&](int) { return glamor_emu::Dim3{unsigned(ch), unsigned(p), 1}; },
          [&] { score_kernel<U, R, W>(net, a); });
  write(out, o);
}

template <int U, int R, bool W>
void beam(const Inputs& x, std::ofstream& out) {
  const Net& net = x.net;
  const int P = net.d.P, M = net.d.M, n = net.d.n, H = net.d.H;
  const int B = geti("B"), T = geti("horizon"), warps = geti("warps"), blocks = geti("blocks");
  BeamArgs a;
  a.B = B, a.horizon = T, a.blocks = blocks, a.sort_pow2 = geti("sort_pow2"), a.sort_in_smem = geti("sort_in_smem");
  const size_t state = size_t(M) * B * H;
  std::vector<float> h(size_t(P) * 2 * state, NAN), c(h.size(), NAN), cand(size_t(P) * B * (n + 1), NAN);
  std::vector<int> par(size_t(P) * B, -7), tok(par.size(), -7), hp(size_t(P) * T * B, -7), ht(hp.size(), -7);
  std::vector<int> live(P, -7);
  std::vector<float> sc(par.size(), NAN);
  std::vector<unsigned long long> keys(a.sort_in_smem ? 0 : size_t(P) * a.sort_pow2, 0xDEADull);
  std::vector<int64_t> actions(size_t(P) * T, -7), lengths(P, -7);
  std::vector<float> scores(P, NAN);
  a.h = h.data(), a.c = c.data(), a.cand = cand.data(), a.par = par.data(), a.tok = tok.data(), a.score = sc.data();
  a.hist_par = hp.data(), a.hist_tok = ht.data(), a.keys = keys.data(), a.live = live.data();
  a.out_actions = actions.data(), a.out_lengths = lengths.data(), a.out_scores = scores.data();
  for (int p = 0; p < P; ++p)
    glamor_emu::run(
        blocks, warps * 32, smem_bytes(net, W, R, warps),
        [&](int b) { return glamor_emu::Dim3{unsigned(p * blocks + b), 1, 1}; },
        [&] { beam_kernel<U, R, W>(net, a); });
  write(out, actions), write(out, lengths), write(out, scores);
}

template <int U, int R, bool W>
void dispatch(const std::string& op, const Inputs& x, std::ifstream& in, std::ofstream& out) {
  if (op == "sample") sample<U, R, W>(x, out);
  else if (op == "score") score<U, R, W>(x, in, out);
  else if (op == "beam") beam<U, R, W>(x, out);
  else glamor_emu::die("unknown op " + op);
}

template <bool W>
void by_tile(const std::string& op, const Inputs& x, std::ifstream& in, std::ofstream& out) {
  const int U = geti("U"), R = geti("R");
  if (U == 1 && R == 1) return dispatch<1, 1, W>(op, x, in, out);
  if (U == 1 && R == 8) return dispatch<1, 8, W>(op, x, in, out);
  if (U == 2 && R == 1) return dispatch<2, 1, W>(op, x, in, out);
  if (U == 2 && R == 8) return dispatch<2, 8, W>(op, x, in, out);
  if (U == 4 && R == 1) return dispatch<4, 1, W>(op, x, in, out);
  if (U == 4 && R == 4) return dispatch<4, 4, W>(op, x, in, out);
  glamor_emu::die("no kernel for U = " + std::to_string(U) + ", R = " + std::to_string(R));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) glamor_emu::die("usage: run_kernels OP IN OUT key=value...");
  for (int i = 4; i < argc; ++i) {
    const std::string s = argv[i];
    const size_t eq = s.find('=');
    if (eq == std::string::npos) glamor_emu::die("bad argument " + s);
    kv[s.substr(0, eq)] = s.substr(eq + 1);
  }
  std::ifstream in(argv[2], std::ios::binary);
  std::ofstream out(argv[3], std::ios::binary);
  const Inputs x = load(in);
  if (geti("w_smem")) by_tile<true>(argv[1], x, in, out);
  else by_tile<false>(argv[1], x, in, out);
  return 0;
}
