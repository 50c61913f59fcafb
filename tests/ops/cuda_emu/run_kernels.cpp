// Runs one CUDA planner kernel configuration in the SIMT emulator (emu.h) on the CPU.
//
//   run_kernels OP IN OUT key=value...
//
// OP: sample, beam or score. IN: the float32 inputs gate_table, h0, c0, w_hh, head_w, head_b
// back to back (then, for score, int64 actions (P, N, L) and lengths (P, N)). OUT: for sample
// and beam int64 actions (P, horizon), int64 lengths (P), float32 scores (P); for score float32
// (P, N). Keys: M P n H gamma clip(0/1) clip_logq, N horizon seed (sample), B horizon (beam),
// N L (score), keys=1 (sample: int64 plan keys (P) follow the inputs), and either the launch configuration U R w_smem warps chunk chunks (sample, score),
// blocks sort_pow2 sort_in_smem (beam), or auto=1 with a device's sms and smem (bytes per block)
// and the overrides tile, blocks, w_global: then csrc/cuda/planner_config.h chooses, as on a GPU
// (exit code 3 with its message when it rejects the sizes; dry=1 prints it and stops). Workspaces are carved as there too.
// Built and driven by tests/ops/test_planner_cuda_emulated.py.
#define GLAMOR_CUDA_EMULATION
#include "emu.h"
// emu.h first: the kernels see its builtins
#include "cuda/planner_config.h"

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

bool has(const char* k) { return kv.count(k) > 0; }

Problem problem(const Inputs& x) {
  Problem pr;
  pr.gate_table = x.gt.data(), pr.h0 = x.h0.data(), pr.c0 = x.c0.data();
  pr.w_hh = x.whh.data(), pr.head_w = x.hw.data(), pr.head_b = x.hb.data();
  pr.M = x.net.d.M, pr.P = x.net.d.P, pr.n = x.net.d.n, pr.H = x.net.d.H;
  pr.log_gamma = x.net.log_gamma, pr.clip = x.net.clip != 0, pr.clip_logq = x.net.clip_logq;
  return pr;
}

// The launch configuration: chosen by planner_config.h (auto=1) or given explicitly.
Config config(const std::string& op, const Inputs& x) {
  const Problem pr = problem(x);
  Config cfg;
  if (has("auto")) {
    Options opt;
    opt.tile = has("tile") ? geti("tile") : 0;
    opt.blocks = has("blocks") ? geti("blocks") : 0;
    opt.w_global = has("w_global") && geti("w_global");
    DeviceInfo di;
    di.sms = geti("sms"), di.smem_optin = geti("smem");
    if (op == "sample") cfg = sample_config_for(pr, geti("N"), geti("horizon"), opt, di);
    else if (op == "score") cfg = candidate_config(pr, geti("N"), opt, di);
    else cfg = beam_config_for(pr, geti("B"), geti("horizon"), opt, di);
    if (!cfg.error.empty()) {
      std::fprintf(stderr, "config error: %s\n", cfg.error.c_str());
      std::exit(3);
    }
  } else {
    cfg.U = geti("U"), cfg.R = geti("R"), cfg.w_smem = geti("w_smem") != 0, cfg.warps = geti("warps");
    cfg.pair = has("pair") ? static_cast<int>(geti("pair")) : 0;
    if (op == "beam") {
      cfg.blocks = geti("blocks"), cfg.sort_pow2 = geti("sort_pow2"), cfg.sort_in_smem = geti("sort_in_smem");
    } else {
      cfg.chunk = geti("chunk"), cfg.chunks = geti("chunks");
    }
    cfg.smem_bytes = 4ull * make_layout(x.net.d, cfg.w_smem, cfg.pair ? 2 : cfg.R, cfg.warps).total_floats;
  }
  size_t bytes = 0;
  if (op == "sample") sample_args(cfg, pr, geti("N"), geti("horizon"), 0, nullptr, nullptr, &bytes);
  if (op == "beam") beam_args(cfg, pr, geti("B"), geti("horizon"), nullptr, &bytes);
  cfg.workspace_bytes = bytes;
  std::fprintf(stderr, "config: %s\n", cfg.describe().c_str());
  return cfg;
}

template <int U, int R, bool W>
void sample(const Config& cfg, const Inputs& x, std::ifstream& in, std::ofstream& out) {
  const Net& net = x.net;
  const int P = net.d.P, N = geti("N"), T = geti("horizon");
  std::vector<unsigned char> ws(cfg.workspace_bytes, 0xAB);  // garbage: everything read is written first
  const std::vector<int64_t> keys = has("keys") && geti("keys") ? read<int64_t>(in, size_t(P)) : std::vector<int64_t>();
  const SampleArgs a = sample_args(cfg, problem(x), N, T, geti("seed"), keys.empty() ? nullptr : keys.data(),
                                   ws.data(), nullptr);
  for (int p = 0; p < P; ++p)
    for (int ch = 0; ch < a.chunks; ++ch)
      glamor_emu::run(
          1, cfg.warps * 32, cfg.smem_bytes, [&](int) { return glamor_emu::Dim3{unsigned(ch), unsigned(p), 1}; },
          [&] {
            if (cfg.pair) sample_pair_kernel<U, W>(net, a);
            else sample_kernel<U, R, W>(net, a);
          });
  std::vector<int64_t> actions(size_t(P) * T, -7), lengths(P, -7);
  std::vector<float> scores(P, NAN);
  for (int p = 0; p < P; ++p)
    glamor_emu::run(
        1, 128, 0, [&](int) { return glamor_emu::Dim3{unsigned(p), 1, 1}; },
        [&] { sample_finalize(a, actions.data(), lengths.data(), scores.data()); });
  write(out, actions), write(out, lengths), write(out, scores);
}

template <int U, int R, bool W>
void score(const Config& cfg, const Inputs& x, std::ifstream& in, std::ofstream& out) {
  const Net& net = x.net;
  const int P = net.d.P, N = geti("N"), L = geti("L");
  const std::vector<int64_t> acts = read<int64_t>(in, size_t(P) * N * L), lens = read<int64_t>(in, size_t(P) * N);
  std::vector<float> o(size_t(P) * N, -12345.0f);
  ScoreArgs a;
  a.N = N, a.L = L, a.chunk = cfg.chunk, a.chunks = cfg.chunks;
  a.actions = acts.data(), a.lengths = lens.data(), a.out = o.data();
  for (int p = 0; p < P; ++p)
    for (int ch = 0; ch < a.chunks; ++ch)
      glamor_emu::run(
          1, cfg.warps * 32, cfg.smem_bytes, [&](int) { return glamor_emu::Dim3{unsigned(ch), unsigned(p), 1}; },
          [&] { score_kernel<U, R, W>(net, a); });
  write(out, o);
}

template <int U, int R, bool W>
void beam(const Config& cfg, const Inputs& x, std::ofstream& out) {
  const Net& net = x.net;
  const int P = net.d.P, B = geti("B"), T = geti("horizon"), blocks = cfg.blocks;
  std::vector<unsigned char> ws(cfg.workspace_bytes, 0xAB);
  BeamArgs a = beam_args(cfg, problem(x), B, T, ws.data(), nullptr);
  std::vector<int64_t> actions(size_t(P) * T, -7), lengths(P, -7);
  std::vector<float> scores(P, NAN);
  a.out_actions = actions.data(), a.out_lengths = lengths.data(), a.out_scores = scores.data();
  for (int p = 0; p < P; ++p)
    glamor_emu::run(
        blocks, cfg.warps * 32, cfg.smem_bytes, [&](int b) { return glamor_emu::Dim3{unsigned(p * blocks + b), 1, 1}; },
        [&] { beam_kernel<U, R, W>(net, a); });
  write(out, actions), write(out, lengths), write(out, scores);
}

template <int U, int R, bool W>
void dispatch(const std::string& op, const Config& cfg, const Inputs& x, std::ifstream& in, std::ofstream& out) {
  if (op == "sample") sample<U, R, W>(cfg, x, in, out);
  else if (op == "score") score<U, R, W>(cfg, x, in, out);
  else if (op == "beam") beam<U, R, W>(cfg, x, out);
  else glamor_emu::die("unknown op " + op);
}

template <bool W>
void by_tile(const std::string& op, const Config& cfg, const Inputs& x, std::ifstream& in, std::ofstream& out) {
  const int U = cfg.U, R = cfg.R;
  if (U == 1 && R == 1) return dispatch<1, 1, W>(op, cfg, x, in, out);
  if (U == 1 && R == 8) return dispatch<1, 8, W>(op, cfg, x, in, out);
  if (U == 2 && R == 1) return dispatch<2, 1, W>(op, cfg, x, in, out);
  if (U == 2 && R == 8) return dispatch<2, 8, W>(op, cfg, x, in, out);
  if (U == 4 && R == 1) return dispatch<4, 1, W>(op, cfg, x, in, out);
  if (U == 4 && R == 4) return dispatch<4, 4, W>(op, cfg, x, in, out);
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
  const std::string op = argv[1];
  const Config cfg = config(op, x);
  if (has("dry")) return 0;  // the configuration only (printed by config())
  if (cfg.w_smem) by_tile<true>(op, cfg, x, in, out);
  else by_tile<false>(op, cfg, x, in, out);
  return 0;
}
