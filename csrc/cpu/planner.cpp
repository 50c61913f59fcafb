// The CPU planners: input checks, weight packing, threading and the per-step bookkeeping
// (sampling, teacher forcing, beam selection) around the vector kernels of kernels.h.
//
// Work split (OpenMP, at::get_num_threads() threads):
//   sampling and scoring: candidates are independent, so each (plan, chunk of candidates) is
//     one work item run through all steps without synchronisation. Finished candidates drop
//     out of the chunk (the next step reads the survivors' rows through `src`).
//   beam search: whole plans per thread when there are at least as many plans as threads;
//     otherwise all threads share each plan's rows, with barriers around the top-B selection.
// Every candidate row is computed by the same instruction sequence wherever it sits, and the
// draws are keyed by (seed, plan, candidate, step), so results do not depend on the threads.
#include "cpu/planner.h"

#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "checks.h"
#include "cpu/kernels.h"
#include "cpu/rng.h"

namespace glamor {
namespace cpu {
namespace {

constexpr float NEG_INF = -std::numeric_limits<float>::infinity();
constexpr double MAX_WORKSPACE_BYTES = 8.0 * (1ull << 30);
constexpr int CHUNK = 128;  // candidates per work item (their state stays in L2)

// The kernels for this CPU, chosen at run time (the build itself targets any x86-64).
const Kernels& select_kernels() {
#if defined(__x86_64__) && defined(__GNUC__)
  const bool has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool has_avx512 = has_avx2 && __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl");
#else
  const bool has_avx2 = false, has_avx512 = false;
#endif
  const char* env = std::getenv("GLAMOR_CPU_ISA");
  const std::string want = env ? env : "";
  if (want.empty() || want == "auto") {
    return has_avx512 ? kernels_avx512() : has_avx2 ? kernels_avx2() : kernels_scalar();
  }
  TORCH_CHECK_VALUE(want == "avx512" || want == "avx2" || want == "scalar",
                    "GLAMOR_CPU_ISA must be auto, avx512, avx2 or scalar, got '", want, "'");
  TORCH_CHECK_VALUE(want != "avx512" || has_avx512, "GLAMOR_CPU_ISA=avx512 but this CPU lacks AVX-512");
  TORCH_CHECK_VALUE(want != "avx2" || has_avx2, "GLAMOR_CPU_ISA=avx2 but this CPU lacks AVX2/FMA");
  return want == "avx512" ? kernels_avx512() : want == "avx2" ? kernels_avx2() : kernels_scalar();
}

int64_t round_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

// Workspaces live in thread_local caches of the calling thread and only grow, so that
// repeated calls (a planner replans at every environment step) neither allocate nor clear
// memory. Every element a kernel reads is written earlier in the same call, except the
// logits rows past the last candidate in a vector of W lanes, whose results are dropped.
template <class T>
void grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

template <class... Caches>
void release_if_large(double bytes, Caches&... caches) {
  if (bytes > 256.0 * (1 << 20)) (..., (caches.clear(), caches.shrink_to_fit()));
}

// ---- checks ---------------------------------------------------------------------------------

using Dims = PlannerDims;

Dims check_inputs(const at::Tensor& gate_table, const at::Tensor& h0, const at::Tensor& c0,
                  const at::Tensor& w_hh, const at::Tensor& head_w, const at::Tensor& head_b) {
  CHECK_INPUT(gate_table, at::kFloat);
  CHECK_INPUT(h0, at::kFloat);
  CHECK_INPUT(c0, at::kFloat);
  CHECK_INPUT(w_hh, at::kFloat);
  CHECK_INPUT(head_w, at::kFloat);
  CHECK_INPUT(head_b, at::kFloat);
  const Dims d = check_planner_shapes(gate_table, h0, c0, w_hh, head_w, head_b);
  CHECK_GATE_RANGE(gate_table);
  CHECK_FINITE(h0);
  CHECK_FINITE(c0);
  CHECK_GATE_RANGE(w_hh);
  CHECK_FINITE(head_w);
  CHECK_FINITE(head_b);
  return d;
}

void check_workspace(double bytes) {
  TORCH_CHECK_VALUE(bytes <= MAX_WORKSPACE_BYTES, "this call would need ", bytes / (1 << 30),
                    " GiB of planner workspace and outputs (at most 8): lower the width, horizon or plans");
}

// ---- packed weights (layouts in kernels.h) -------------------------------------------------

struct Packed {
  int M, H, Hp, nub, n, npad, W;
  std::vector<float> whh, head, bias, table;  // table: (M, P, n+1, nub, 4, W)

  Net net(int64_t p) const {
    Net x;
    x.M = M, x.H = H, x.Hp = Hp, x.nub = nub, x.n = n, x.npad = npad;
    const size_t table_plan = static_cast<size_t>(n + 1) * nub * 4 * W;
    const size_t P = table.size() / (table_plan * M);
    for (int m = 0; m < 2; ++m) {
      const int mm = m < M ? m : 0;
      x.whh[m] = whh.data() + static_cast<size_t>(mm) * nub * H * 4 * W;
      x.head[m] = head.data() + static_cast<size_t>(mm) * H * npad;
      x.bias[m] = bias.data() + static_cast<size_t>(mm) * npad;
      x.table[m] = table.data() + (static_cast<size_t>(mm) * P + p) * table_plan;
    }
    return x;
  }
};

Packed pack(const Kernels& K, const Dims& d, const at::Tensor& gate_table, const at::Tensor& w_hh,
            const at::Tensor& head_w, const at::Tensor& head_b) {
  Packed pk;
  const int W = K.W, H = static_cast<int>(d.H), n = static_cast<int>(d.n), M = static_cast<int>(d.M);
  pk.M = M, pk.H = H, pk.n = n, pk.W = W;
  pk.Hp = static_cast<int>(round_up(H, W));
  pk.nub = pk.Hp / W;
  pk.npad = static_cast<int>(round_up(n + 1, W));
  const int nub = pk.nub, npad = pk.npad;
  const int64_t P = d.P;
  // Checked before it is allocated: the table is Hp / H times gate_table (up to W = 16 times).
  check_workspace(4.0 * M * (static_cast<double>(nub) * H * 4 * W + static_cast<double>(H + 1) * npad +
                             static_cast<double>(P) * (n + 1) * nub * 4 * W));
  pk.whh.assign(static_cast<size_t>(M) * nub * H * 4 * W, 0.0f);
  pk.head.assign(static_cast<size_t>(M) * H * npad, 0.0f);
  pk.bias.assign(static_cast<size_t>(M) * npad, 0.0f);
  pk.table.assign(static_cast<size_t>(M) * P * (n + 1) * nub * 4 * W, 0.0f);
  const float* whh = w_hh.data_ptr<float>();
  const float* hw = head_w.data_ptr<float>();
  const float* hb = head_b.data_ptr<float>();
  const float* gt = gate_table.data_ptr<float>();
  // Gate rows are stored times -log2(e) (g: -2 log2(e)), the units the kernels' sigmoid
  // takes (simd.h): a rounding of each weight, well below the float32 GEMM's own.
  const float log2e = 1.4426950408889634f;
  const float scale[4] = {-log2e, -log2e, -2.0f * log2e, -log2e};
  for (int m = 0; m < M; ++m) {
    for (int ub = 0; ub < nub; ++ub)
      for (int k = 0; k < H; ++k)
        for (int g = 0; g < 4; ++g)
          for (int l = 0; l < W; ++l) {
            const int u = ub * W + l;
            if (u < H)
              pk.whh[(((static_cast<size_t>(m) * nub + ub) * H + k) * 4 + g) * W + l] =
                  whh[(static_cast<size_t>(m) * 4 * H + g * H + u) * H + k] * scale[g];
          }
    for (int k = 0; k < H; ++k)
      for (int j = 0; j <= n; ++j)
        pk.head[(static_cast<size_t>(m) * H + k) * npad + j] = hw[(static_cast<size_t>(m) * (n + 2) + j) * H + k];
    for (int j = 0; j <= n; ++j) pk.bias[static_cast<size_t>(m) * npad + j] = hb[static_cast<size_t>(m) * (n + 2) + j];
  }
  for (int64_t mp = 0; mp < M * P; ++mp)
    for (int tok = 0; tok <= n; ++tok) {
      const float* src = gt + (static_cast<size_t>(mp) * (n + 1) + tok) * 4 * H;
      float* dst = pk.table.data() + (static_cast<size_t>(mp) * (n + 1) + tok) * nub * 4 * W;
      for (int ub = 0; ub < nub; ++ub)
        for (int g = 0; g < 4; ++g)
          for (int l = 0; l < W; ++l) {
            const int u = ub * W + l;
            if (u < H) dst[(ub * 4 + g) * W + l] = src[g * H + u] * scale[g];
          }
    }
  return pk;
}

// ---- per-thread buffers for one block of candidate rows ------------------------------------

struct Block {
  int cap = 0;  // rows
  std::vector<float> h[2], c[2];  // [buffer] (M, cap, Hp)
  std::vector<float> logits;      // (M, cap, npad)
  std::vector<float> work, s;     // token-score scratch
  std::vector<int32_t> src[2], prev[2];

  void init(const Packed& pk, int rows) {
    cap = rows;
    const size_t state = static_cast<size_t>(pk.M) * rows * pk.Hp;
    for (int b = 0; b < 2; ++b) {
      grow(h[b], state);
      grow(c[b], state);
      grow(src[b], rows);
      grow(prev[b], rows);
    }
    grow(logits, static_cast<size_t>(pk.M) * rows * pk.npad);
    grow(work, static_cast<size_t>(pk.M + 1) * (pk.n + 1) * pk.W);
    grow(s, static_cast<size_t>(pk.n + 1) * pk.W);
  }

  static double bytes(const Packed& pk, int rows) {
    return 4.0 * (4.0 * pk.M * rows * pk.Hp + 1.0 * pk.M * rows * pk.npad + 4.0 * rows +
                  (pk.M + 2.0) * (pk.n + 1) * pk.W);
  }

  // Row 0 of buffer b holds the plan's initial state.
  void load_initial(const Packed& pk, int b, const float* h0, const float* c0, int64_t P, int64_t p) {
    for (int m = 0; m < pk.M; ++m) {
      std::memcpy(h[b].data() + static_cast<size_t>(m) * cap * pk.Hp, h0 + (m * P + p) * pk.H, 4 * pk.H);
      std::memcpy(c[b].data() + static_cast<size_t>(m) * cap * pk.Hp, c0 + (m * P + p) * pk.H, 4 * pk.H);
    }
  }

  // The step that reads buffer b and writes buffer 1 - b.
  Rows rows(const Packed& pk, int b) {
    Rows rw;
    for (int m = 0; m < 2; ++m) {
      const size_t off = static_cast<size_t>(m < pk.M ? m : 0) * cap * pk.Hp;
      rw.h_in[m] = h[b].data() + off;
      rw.c_in[m] = c[b].data() + off;
      rw.h_out[m] = h[1 - b].data() + off;
      rw.c_out[m] = c[1 - b].data() + off;
      rw.logits[m] = logits.data() + static_cast<size_t>(m < pk.M ? m : 0) * cap * pk.npad;
    }
    rw.src = src[b].data();
    rw.prev = prev[b].data();
    return rw;
  }

  // Both LSTMs and heads on rows [r0, r1).
  void step(const Kernels& K, const Net& net, const Rows& rw, int r0, int r1) {
    for (int m = 0; m < net.M; ++m) K.lstm_rows(net, rw, m, r0, r1);
    for (int m = 0; m < net.M; ++m) K.head_rows(net, rw, m, r0, r1);
  }
};

int row_align(const Kernels& K) { return std::max(K.W, K.R); }

// The most threads a call of `items` work items runs on (threads_for's bound; 0 for no work):
// what the checks made before the weights are packed count per-thread workspaces for.
int64_t most_threads(int64_t items) { return std::min<int64_t>(at::get_num_threads(), items); }

// Threads for a call of `steps` candidate-steps: one when the work is too small to pay for
// waking the others (tens of microseconds; on a busy machine a thread may not be scheduled
// for milliseconds), else at::get_num_threads(), at most one per work item.
int threads_for(const Packed& pk, double steps, int64_t items) {
  const double flops = steps * pk.M * 2.0 * (4.0 * pk.H * pk.H + (pk.n + 2.0) * pk.H);
  if (flops < 4e6) return 1;
  return static_cast<int>(std::max<int64_t>(1, most_threads(items)));
}

// ---- sampling and teacher-forced scoring: independent candidates in chunks -----------------

// The candidates first, first + stride, ... (count of them) of one plan. Interleaving the
// chunks of a plan balances them: how long sampled candidates live varies with the candidate.
struct Chunk {
  int64_t plan;
  int first, stride, count;
  int candidate(int i) const { return first + i * stride; }
  int local(int candidate) const { return (candidate - first) / stride; }
};

int64_t chunks_per_plan(int64_t P, int64_t N, int threads) {
  return std::min<int64_t>(N, std::max<int64_t>((N + CHUNK - 1) / CHUNK, (threads + P - 1) / std::max<int64_t>(P, 1)));
}

std::vector<Chunk> make_chunks(int64_t P, int64_t N, int threads) {
  const int64_t per_plan = chunks_per_plan(P, N, threads);
  std::vector<Chunk> chunks;
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < per_plan; ++i)
      chunks.push_back({p, static_cast<int>(i), static_cast<int>(per_plan),
                        static_cast<int>((N - i + per_plan - 1) / per_plan)});
  return chunks;
}

int max_chunk(const std::vector<Chunk>& chunks) {
  int m = 1;
  for (const Chunk& ch : chunks) m = std::max(m, ch.count);
  return m;
}

// Candidate bookkeeping of a chunk, double-buffered for the compaction of finished rows.
struct Lanes {
  std::vector<int32_t> cand[2];
  std::vector<float> score[2];
  void init(int rows) {
    for (int b = 0; b < 2; ++b) {
      grow(cand[b], rows);
      grow(score[b], rows);
    }
  }
};

// Runs one chunk through all steps. `token(i, cand, t, s, lane)` gives row i's token at step
// t (s: the group's token scores); `finish(cand, t, score)` records a candidate at its END;
// `emit(cand, t, tok)` records an action.
template <class TokenFn, class FinishFn, class EmitFn>
void run_chunk(const Kernels& K, const Packed& pk, const Net& net, Block& blk, Lanes& ln,
               const Chunk& ch, int max_steps, float log_gamma, Clip clip, const float* h0,
               const float* c0, int64_t P, TokenFn&& token, FinishFn&& finish, EmitFn&& emit) {
  const int W = K.W, n = pk.n;
  int b = 0, rows = ch.count;
  blk.load_initial(pk, b, h0, c0, P, ch.plan);
  for (int i = 0; i < rows; ++i) {
    blk.src[b][i] = 0;
    blk.prev[b][i] = n;
    ln.cand[b][i] = ch.candidate(i);
    ln.score[b][i] = 0.0f;
  }
  int32_t tok[64];
  for (int t = 0; t < max_steps && rows > 0; ++t) {
    // Compute whole register tiles only; the last group of W lanes may read stale (finite)
    // logits rows beyond them, whose results are dropped.
    const int padded = static_cast<int>(round_up(rows, K.R));
    for (int i = rows; i < padded; ++i) {
      blk.src[b][i] = 0;
      blk.prev[b][i] = n;
    }
    const Rows rw = blk.rows(pk, b);
    blk.step(K, net, rw, 0, padded);
    const int nb = 1 - b;
    int kept = 0;
    for (int g = 0; g < rows; g += W) {
      K.token_scores(net, rw, g, clip.on, clip.value, blk.work.data(), blk.s.data());
      token(g, ln.cand[b].data(), rows, t, blk.s.data(), tok);
      for (int l = 0; l < W && g + l < rows; ++l) {
        const int i = g + l, tk = tok[l], cand = ln.cand[b][i];
        const float score = ln.score[b][i] + (blk.s[tk * W + l] + log_gamma);
        if (tk == n) {
          finish(cand, t, score);
        } else {
          emit(cand, t, tk);
          blk.src[nb][kept] = i;
          blk.prev[nb][kept] = tk;
          ln.cand[nb][kept] = cand;
          ln.score[nb][kept] = score;
          ++kept;
        }
      }
    }
    b = nb;
    rows = kept;
  }
}

// ---- beam search ----------------------------------------------------------------------------

// The order of candidates: score descending, then flat index (beam * n + action) ascending,
// as one uint64 key (a total order, NaN included).
inline uint32_t score_order(float score) {
  score = score + 0.0f;  // -0 -> +0, so that equal scores tie
  uint32_t u;
  std::memcpy(&u, &score, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

inline uint64_t beam_key(uint32_t order, uint32_t flat) {
  return (static_cast<uint64_t>(order) << 32) | (0xFFFFFFFFu - flat);
}

// The best `keep` action expansions of beams [b0, b1) (cand[a * cap + beam]) as sorted keys;
// returns how many (keep, or all of them when fewer). A threshold from a strided sample first
// leaves out the expansions that cannot be kept (exact: when fewer than `keep` pass it, all
// are taken).
int select_best(const float* cand, int cap, int b0, int b1, int n, int keep, uint64_t* keys,
                std::vector<uint32_t>& sample) {
  const int rows = b1 - b0;
  const size_t total = static_cast<size_t>(std::max(rows, 0)) * n;
  keep = static_cast<int>(std::min<size_t>(keep, total));
  if (keep == 0) return 0;
  uint32_t threshold = 0;
  if (total > 4 * static_cast<size_t>(keep) && total > 2048) {
    const size_t S = 2048;
    sample.resize(S);
    for (size_t i = 0; i < S; ++i) {
      const size_t f = i * total / S;  // a-major over the rows
      sample[i] = score_order(cand[(f / rows) * cap + b0 + f % rows]);
    }
    const size_t k = std::min<size_t>(S, (S * keep * 5) / (total * 4) + 16);  // ~1.25 keep pass
    std::nth_element(sample.begin(), sample.begin() + (k - 1), sample.end(), std::greater<uint32_t>());
    threshold = sample[k - 1];
  }
  size_t count = 0;
  for (int pass = 0; pass < 2; ++pass) {
    count = 0;
    for (int a = 0; a < n; ++a) {
      const float* row = cand + static_cast<size_t>(a) * cap;
      for (int i = b0; i < b1; ++i) {
        const uint32_t o = score_order(row[i]);
        if (o >= threshold) keys[count++] = beam_key(o, static_cast<uint32_t>(i * n + a));
      }
    }
    if (count >= static_cast<size_t>(keep)) break;
    threshold = 0;  // the sample misled: take everything
  }
  if (count > static_cast<size_t>(keep))
    std::nth_element(keys, keys + (keep - 1), keys + count, std::greater<uint64_t>());
  std::sort(keys, keys + keep, std::greater<uint64_t>());
  return keep;
}

struct BeamWork {
  Block blk;
  std::vector<float> score[2];   // (cap) accumulated score of each row
  std::vector<float> cand;       // (n+1, cap) expansions
  // per team member: its rows' best expansions (sorted keys), their count, its best END
  std::vector<std::vector<uint64_t>> keys;
  std::vector<std::vector<uint32_t>> sample;
  std::vector<int> count, end_arg, pos;
  std::vector<float> end_best;
  std::vector<int32_t> parent, token;  // (horizon, B)
  int b = 0;                      // the buffer the next step reads
  float best_score = NEG_INF;
  int best_t = 0, best_beam = 0;

  void init(const Packed& pk, int rows, int64_t B, int64_t horizon, int members) {
    blk.init(pk, rows);
    grow(keys, members);
    grow(sample, members);
    for (int i = 0; i < members; ++i) grow(keys[i], static_cast<size_t>(B) * pk.n);
    grow(count, members);
    grow(end_arg, members);
    grow(pos, members);
    grow(end_best, members);
    for (int i = 0; i < 2; ++i) grow(score[i], rows);
    grow(cand, static_cast<size_t>(pk.n + 1) * rows);
    grow(parent, static_cast<size_t>(horizon) * B);
    grow(token, static_cast<size_t>(horizon) * B);
  }
  static double bytes(const Packed& pk, int rows, int64_t B, int64_t horizon, int members) {
    return Block::bytes(pk, rows) + 4.0 * (2.0 * rows + (pk.n + 1.0) * rows + 2.0 * horizon * B) +
           (8.0 * B * pk.n + 4.0 * 2048) * members;
  }
};

// One plan's beam search. Called by all `nt` threads of a team (tid: this thread) when
// `shared`, else by one thread alone; rows are split between the team at `align` multiples.
void beam_plan(const Kernels& K, const Packed& pk, BeamWork& bw, std::vector<float>& work,
               std::vector<float>& s, int64_t p, int64_t P, int B, int horizon, float log_gamma,
               Clip clip, const float* h0, const float* c0, int tid, int nt, bool shared,
               int64_t* out_actions, int64_t* out_length, float* out_score) {
  auto barrier = [&] {
    if (shared) {
#pragma omp barrier
    }
  };
  const int W = K.W, align = row_align(K), n = pk.n, cap = bw.blk.cap;
  const Net net = pk.net(p);
  const int units = cap / align;
  const int live_rows = static_cast<int>(round_up(B, K.R));  // rows past B only pad W lanes
  const int r0 = static_cast<int>(static_cast<int64_t>(units) * tid / nt) * align;
  const int r1 = static_cast<int>(static_cast<int64_t>(units) * (tid + 1) / nt) * align;
  if (tid == 0) {
    bw.b = 0;
    bw.blk.load_initial(pk, 0, h0, c0, P, p);
    std::fill(bw.blk.src[0].begin(), bw.blk.src[0].end(), 0);
    std::fill(bw.blk.prev[0].begin(), bw.blk.prev[0].end(), n);
    std::fill(bw.score[0].begin(), bw.score[0].end(), NEG_INF);
    bw.score[0][0] = 0.0f;  // one live beam: the empty sequence
    bw.best_score = NEG_INF;
    bw.best_t = 0;
    bw.best_beam = 0;
  }
  barrier();
  for (int t = 0; t <= horizon; ++t) {
    const int b = bw.b;
    const Rows rw = bw.blk.rows(pk, b);
    bw.blk.step(K, net, rw, r0, std::min(r1, live_rows));
    for (int g = r0; g < r1; g += W) {
      K.token_scores(net, rw, g, clip.on, clip.value, work.data(), s.data());
      for (int j = 0; j <= n; ++j)
        for (int l = 0; l < W; ++l)
          bw.cand[static_cast<size_t>(j) * cap + g + l] = bw.score[b][g + l] + (s[j * W + l] + log_gamma);
    }
    // this member's rows: the best END expansion (lowest beam on ties), the best B actions
    const int b1 = std::min(r1, B);
    const float* end = bw.cand.data() + static_cast<size_t>(n) * cap;
    bw.end_arg[tid] = -1;
    bw.end_best[tid] = NEG_INF;
    for (int i = r0; i < b1; ++i)
      if (end[i] > bw.end_best[tid]) bw.end_best[tid] = end[i], bw.end_arg[tid] = i;
    if (t < horizon) bw.count[tid] = select_best(bw.cand.data(), cap, r0, b1, n, B, bw.keys[tid].data(), bw.sample[tid]);
    barrier();
    if (tid == 0) {
      if (t > 0) {  // the best END of this step replaces the best plan only if strictly better
        int arg = -1;
        float best = NEG_INF;
        for (int i = 0; i < nt; ++i)  // members in row order: the lowest beam wins ties
          if (bw.end_arg[i] >= 0 && bw.end_best[i] > best) best = bw.end_best[i], arg = bw.end_arg[i];
        if (arg >= 0 && best > bw.best_score) {
          bw.best_score = best;
          bw.best_t = t;
          bw.best_beam = arg;
        }
      }
      if (t < horizon) {  // keep the best B action expansions, in key order: merge the members'
        const int nb = 1 - b;
        int32_t* par = bw.parent.data() + static_cast<size_t>(t) * B;
        int32_t* tokn = bw.token.data() + static_cast<size_t>(t) * B;
        int* pos = bw.pos.data();
        std::fill(pos, pos + nt, 0);
        for (int k = 0; k < B; ++k) {
          int from = -1;
          for (int i = 0; i < nt; ++i)
            if (pos[i] < bw.count[i] && (from < 0 || bw.keys[i][pos[i]] > bw.keys[from][pos[from]])) from = i;
          const uint64_t key = bw.keys[from][pos[from]++];
          const uint32_t flat = 0xFFFFFFFFu - static_cast<uint32_t>(key & 0xFFFFFFFFu);
          const int beam = static_cast<int>(flat / n), a = static_cast<int>(flat % n);
          par[k] = beam;
          tokn[k] = a;
          bw.blk.src[nb][k] = beam;
          bw.blk.prev[nb][k] = a;
          bw.score[nb][k] = bw.cand[static_cast<size_t>(a) * cap + beam];
        }
        for (int k = B; k < cap; ++k) {
          bw.blk.src[nb][k] = 0;
          bw.blk.prev[nb][k] = n;
          bw.score[nb][k] = NEG_INF;
        }
        bw.b = nb;
      }
    }
    barrier();
  }
  if (tid == 0) {
    const int len = bw.best_t;
    for (int i = 0; i < horizon; ++i) out_actions[i] = -1;
    int k = bw.best_beam;
    for (int i = len - 1; i >= 0; --i) {
      out_actions[i] = bw.token[static_cast<size_t>(i) * B + k];
      k = bw.parent[static_cast<size_t>(i) * B + k];
    }
    *out_length = len;
    *out_score = bw.best_score;
  }
}

// The calling thread's workspaces (see grow()); bind a reference before a parallel region,
// as a thread_local named inside it would be the worker thread's own.
struct ChunkCache {
  std::vector<Block> blocks;
  std::vector<Lanes> lanes;
  std::vector<std::vector<int32_t>> seqs, final_len;  // sampling: (chunk, horizon), (chunk)
  std::vector<std::vector<float>> finals;             // sampling: (chunk)
};

struct BeamCache {
  std::vector<BeamWork> teams;
  std::vector<std::vector<float>> work, s;  // per thread
};

ChunkCache& chunk_cache() {
  thread_local ChunkCache cache;  // one per calling thread: Python threads may plan at once
  return cache;
}

BeamCache& beam_cache() {
  thread_local BeamCache cache;
  return cache;
}

}  // namespace

// ---- ops ------------------------------------------------------------------------------------

std::string isa() { return select_kernels().name; }

at::Tensor score_plans(const at::Tensor& gate_table, const at::Tensor& h0, const at::Tensor& c0,
                       const at::Tensor& w_hh, const at::Tensor& head_w, const at::Tensor& head_b,
                       const at::Tensor& actions, const at::Tensor& lengths, double gamma,
                       std::optional<double> clip_logq) {
  const Dims d = check_inputs(gate_table, h0, c0, w_hh, head_w, head_b);
  const float log_gamma = checked_log_gamma(gamma);
  const Clip clip = checked_clip(clip_logq);
  CHECK_INPUT(actions, at::kLong);
  CHECK_INPUT(lengths, at::kLong);
  CHECK_DIM(actions, 3);
  TORCH_CHECK_VALUE(actions.size(0) == d.P, "actions must be (P=", d.P, ", N, L), got shape ", actions.sizes());
  const int64_t N = actions.size(1), L = actions.size(2);
  CHECK_SHAPE(lengths, d.P, N);
  // L + 1 steps (the last feeds END) are counted in an int: L below 2**31 - 1, as a horizon
  TORCH_CHECK_VALUE(N <= MAX_SIZE && L < MAX_SIZE, "actions is too large: (P, N <= 2**31 - 1, L < 2**31 - 1), "
                    "got shape ", actions.sizes());
  const int64_t* act = actions.data_ptr<int64_t>();
  const int64_t* len = lengths.data_ptr<int64_t>();
  for (int64_t i = 0; i < d.P * N; ++i) {
    TORCH_CHECK_VALUE(len[i] >= 1 && len[i] <= L, "lengths must be in [1, L=", L, "], got ", len[i],
                      " at flat index ", i);
    for (int64_t t = 0; t < len[i]; ++t)
      TORCH_CHECK_VALUE(act[i * L + t] >= 0 && act[i * L + t] < d.n, "actions must be in [0, n=", d.n,
                        ") within each plan's length, got ", act[i * L + t], " at flat index ", i * L + t);
  }
  at::Tensor out = at::empty({d.P, N}, gate_table.options());
  if (d.P == 0 || N == 0) return out;

  const Kernels& K = select_kernels();
  const Packed pk = pack(K, d, gate_table, w_hh, head_w, head_b);
  const int threads = threads_for(pk, static_cast<double>(d.P) * N * (L + 1), d.P * N);
  const std::vector<Chunk> chunks = make_chunks(d.P, N, threads);
  const int rows = static_cast<int>(round_up(max_chunk(chunks), row_align(K)));
  const double bytes = threads * Block::bytes(pk, rows);
  check_workspace(bytes + 4.0 * pk.table.size());
  ChunkCache& cache = chunk_cache();
  grow(cache.blocks, threads);
  grow(cache.lanes, threads);
  for (int i = 0; i < threads; ++i) cache.blocks[i].init(pk, rows), cache.lanes[i].init(rows);
  float* o = out.data_ptr<float>();
  const float* h0p = h0.data_ptr<float>();
  const float* c0p = c0.data_ptr<float>();
  const int n = pk.n, W = K.W;

#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
    for (int64_t ci = 0; ci < static_cast<int64_t>(chunks.size()); ++ci) {
      const Chunk& ch = chunks[ci];
      const int64_t base = ch.plan * N;
      auto token = [&](int g, const int32_t* cand, int rows_, int t, const float*, int32_t* tok) {
        for (int l = 0; l < W; ++l) {
          const int64_t i = g + l < rows_ ? base + cand[g + l] : -1;
          tok[l] = (i < 0 || t >= len[i]) ? n : static_cast<int32_t>(act[i * L + t]);
        }
      };
      auto finish = [&](int cand, int, float score) { o[base + cand] = score; };
      auto emit = [](int, int, int) {};
      run_chunk(K, pk, pk.net(ch.plan), cache.blocks[tid], cache.lanes[tid], ch, static_cast<int>(L) + 1,
                log_gamma, clip, h0p, c0p, d.P, token, finish, emit);
    }
  }
  release_if_large(bytes, cache.blocks, cache.lanes);
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sample_plans(
    const at::Tensor& gate_table, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_hh,
    const at::Tensor& head_w, const at::Tensor& head_b, int64_t num_samples, int64_t horizon,
    int64_t seed, double gamma, std::optional<double> clip_logq, const std::optional<at::Tensor>& keys_opt) {
  const Dims d = check_inputs(gate_table, h0, c0, w_hh, head_w, head_b);
  const float log_gamma = checked_log_gamma(gamma);
  const Clip clip = checked_clip(clip_logq);
  check_num_samples(num_samples);
  check_horizon(horizon);
  TORCH_CHECK_VALUE(seed >= 0, "seed must be in [0, 2**63), got ", seed);
  const int64_t* keys = nullptr;
  if (keys_opt) {
    const at::Tensor& plan_keys = *keys_opt;
    CHECK_INPUT(plan_keys, at::kLong);
    CHECK_SHAPE(plan_keys, d.P);
    keys = plan_keys.data_ptr<int64_t>();
  }
  const int64_t P = d.P, N = num_samples;
  check_workspace(8.0 * P * horizon + 4.0 * std::min<int64_t>(N, CHUNK) * horizon * most_threads(P * N));
  at::Tensor actions = at::full({P, horizon}, -1, gate_table.options().dtype(at::kLong));
  at::Tensor lengths = at::zeros({P}, gate_table.options().dtype(at::kLong));
  at::Tensor scores = at::empty({P}, gate_table.options());
  if (P == 0) return {actions, lengths, scores};

  const Kernels& K = select_kernels();
  const Packed pk = pack(K, d, gate_table, w_hh, head_w, head_b);
  const int threads = threads_for(pk, static_cast<double>(P) * N * (horizon + 1), P * N);
  // The chunk list and each chunk's best plan, counted before the list is built.
  check_workspace(static_cast<double>(P) * chunks_per_plan(P, N, threads) * (sizeof(Chunk) + 4.0 * (horizon + 3)));
  const std::vector<Chunk> chunks = make_chunks(P, N, threads);
  const int most = max_chunk(chunks);
  const int rows = static_cast<int>(round_up(most, row_align(K)));
  const double bytes = threads * (Block::bytes(pk, rows) + 4.0 * most * (horizon + 2));
  check_workspace(bytes + 4.0 * pk.table.size() + 4.0 * chunks.size() * (horizon + 3));
  ChunkCache& cache = chunk_cache();
  for (auto* v : {&cache.seqs, &cache.final_len}) grow(*v, threads);
  grow(cache.finals, threads);
  grow(cache.blocks, threads);
  grow(cache.lanes, threads);
  for (int i = 0; i < threads; ++i) {
    cache.blocks[i].init(pk, rows);
    cache.lanes[i].init(rows);
    grow(cache.seqs[i], static_cast<size_t>(most) * horizon);
    grow(cache.finals[i], most);
    grow(cache.final_len[i], most);
  }
  // Each chunk's best candidate: score, candidate, length and actions.
  std::vector<float> best_score(chunks.size());
  std::vector<int32_t> best_cand(chunks.size()), best_len(chunks.size());
  std::vector<int32_t> best_seq(chunks.size() * horizon);
  const float* h0p = h0.data_ptr<float>();
  const float* c0p = c0.data_ptr<float>();
  const int n = pk.n, W = K.W, H_ = static_cast<int>(horizon);
  const uint64_t useed = static_cast<uint64_t>(seed);

#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
    float u[64];
#pragma omp for schedule(dynamic, 1)
    for (int64_t ci = 0; ci < static_cast<int64_t>(chunks.size()); ++ci) {
      const Chunk& ch = chunks[ci];
      // plan p draws as the plan numbered plan_keys[p] (its low 32 bits), by default as plan p
      const uint32_t key = rng::plan_key(useed, static_cast<uint32_t>(keys ? keys[ch.plan] : ch.plan));
      int32_t* seq = cache.seqs[tid].data();
      float* fin = cache.finals[tid].data();
      int32_t* flen = cache.final_len[tid].data();
      float* work = cache.blocks[tid].work.data() + static_cast<size_t>(pk.M) * (n + 1) * W;
      auto token = [&](int g, const int32_t* cand, int rows_, int t, const float* s, int32_t* tok) {
        if (t == H_) {  // END is forced
          for (int l = 0; l < W; ++l) tok[l] = n;
          return;
        }
        for (int l = 0; l < W; ++l)
          u[l] = g + l < rows_ ? rng::uniform(key, static_cast<uint32_t>(cand[g + l]), static_cast<uint32_t>(t)) : 0.0f;
        K.sample_tokens(n, t == 0 ? n - 1 : n, s, u, work, tok);  // no END as the first token
      };
      auto finish = [&](int cand, int t, float score) {
        fin[ch.local(cand)] = score;
        flen[ch.local(cand)] = t;
      };
      auto emit = [&](int cand, int t, int tok) { seq[static_cast<size_t>(ch.local(cand)) * H_ + t] = tok; };
      run_chunk(K, pk, pk.net(ch.plan), cache.blocks[tid], cache.lanes[tid], ch, H_ + 1, log_gamma, clip, h0p, c0p,
                P, token, finish, emit);
      int best = 0;  // the first of the highest scores
      for (int i = 1; i < ch.count; ++i)
        if (fin[i] > fin[best]) best = i;
      best_score[ci] = fin[best];
      best_cand[ci] = ch.candidate(best);
      best_len[ci] = flen[best];
      for (int t = 0; t < H_; ++t) best_seq[ci * H_ + t] = t < flen[best] ? seq[static_cast<size_t>(best) * H_ + t] : -1;
    }
  }

  release_if_large(bytes, cache.blocks, cache.lanes, cache.seqs, cache.finals, cache.final_len);
  int64_t* a = actions.data_ptr<int64_t>();
  int64_t* ln = lengths.data_ptr<int64_t>();
  float* sc = scores.data_ptr<float>();
  for (size_t ci = 0; ci < chunks.size();) {  // chunks of a plan are consecutive, in order
    size_t best = ci, cj = ci;
    for (; cj < chunks.size() && chunks[cj].plan == chunks[ci].plan; ++cj)  // lowest candidate on ties
      if (best_score[cj] > best_score[best] ||
          (best_score[cj] == best_score[best] && best_cand[cj] < best_cand[best]))
        best = cj;
    const int64_t p = chunks[ci].plan;
    sc[p] = best_score[best];
    ln[p] = best_len[best];
    for (int t = 0; t < H_; ++t) a[p * H_ + t] = best_seq[best * H_ + t];
    ci = cj;
  }
  return {actions, lengths, scores};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> beam_search(
    const at::Tensor& gate_table, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_hh,
    const at::Tensor& head_w, const at::Tensor& head_b, int64_t width, int64_t horizon, double gamma,
    std::optional<double> clip_logq) {
  const Dims d = check_inputs(gate_table, h0, c0, w_hh, head_w, head_b);
  const float log_gamma = checked_log_gamma(gamma);
  const Clip clip = checked_clip(clip_logq);
  check_width(width, d.n);
  check_horizon(horizon);
  const int64_t P = d.P, B = width;
  check_workspace(8.0 * P * horizon + 8.0 * B * horizon * most_threads(P));
  at::Tensor actions = at::full({P, horizon}, -1, gate_table.options().dtype(at::kLong));
  at::Tensor lengths = at::zeros({P}, gate_table.options().dtype(at::kLong));
  at::Tensor scores = at::empty({P}, gate_table.options());
  if (P == 0) return {actions, lengths, scores};

  const Kernels& K = select_kernels();
  const Packed pk = pack(K, d, gate_table, w_hh, head_w, head_b);
  const int threads = threads_for(pk, static_cast<double>(P) * B * (horizon + 1), P * B);
  const bool shared = P < threads;  // all threads on each plan, else one plan per thread
  const int teams = shared ? 1 : threads;
  const int rows = static_cast<int>(round_up(B, row_align(K)));
  const int members = shared ? threads : 1;
  const double bytes = teams * BeamWork::bytes(pk, rows, B, horizon, members);
  check_workspace(bytes + threads * 4.0 * (pk.M + 2) * (pk.n + 1) * K.W + 4.0 * pk.table.size());
  BeamCache& cache = beam_cache();
  grow(cache.teams, teams);
  for (int i = 0; i < teams; ++i) cache.teams[i].init(pk, rows, B, horizon, members);
  grow(cache.work, threads);
  grow(cache.s, threads);
  for (int i = 0; i < threads; ++i) {
    grow(cache.work[i], static_cast<size_t>(pk.M + 1) * (pk.n + 1) * K.W);
    grow(cache.s[i], static_cast<size_t>(pk.n + 1) * K.W);
  }
  int64_t* a = actions.data_ptr<int64_t>();
  int64_t* ln = lengths.data_ptr<int64_t>();
  float* sc = scores.data_ptr<float>();
  const float* h0p = h0.data_ptr<float>();
  const float* c0p = c0.data_ptr<float>();

#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    if (shared) {
      for (int64_t p = 0; p < P; ++p)
        beam_plan(K, pk, cache.teams[0], cache.work[tid], cache.s[tid], p, P, static_cast<int>(B), static_cast<int>(horizon),
                  log_gamma, clip, h0p, c0p, tid, nt, true, a + p * horizon, ln + p, sc + p);
    } else {
#pragma omp for schedule(dynamic, 1)
      for (int64_t p = 0; p < P; ++p)
        beam_plan(K, pk, cache.teams[tid], cache.work[tid], cache.s[tid], p, P, static_cast<int>(B), static_cast<int>(horizon),
                  log_gamma, clip, h0p, c0p, 0, 1, false, a + p * horizon, ln + p, sc + p);
    }
  }
  release_if_large(bytes, cache.teams);
  return {actions, lengths, scores};
}

at::Tensor uniform(int64_t seed, const at::Tensor& plan, const at::Tensor& candidate, int64_t step) {
  TORCH_CHECK_VALUE(seed >= 0, "seed must be in [0, 2**63), got ", seed);
  CHECK_CPU(plan);
  CHECK_CPU(candidate);
  CHECK_DTYPE(plan, at::kLong);
  CHECK_DTYPE(candidate, at::kLong);
  auto both = at::broadcast_tensors({plan, candidate});
  const at::Tensor p = both[0].contiguous(), c = both[1].contiguous();
  at::Tensor out = at::empty(p.sizes(), plan.options().dtype(at::kFloat));
  const int64_t* pp = p.data_ptr<int64_t>();
  const int64_t* cp = c.data_ptr<int64_t>();
  float* o = out.data_ptr<float>();
  const uint64_t useed = static_cast<uint64_t>(seed);
  for (int64_t i = 0; i < out.numel(); ++i)
    o[i] = rng::uniform(rng::plan_key(useed, static_cast<uint32_t>(pp[i])), static_cast<uint32_t>(cp[i]),
                        static_cast<uint32_t>(step));
  return out;
}

}  // namespace cpu
}  // namespace glamor
