// Shared pieces of the CUDA planner kernels: sizes, the shared-memory layout (computed the same
// way on the host and the device), the weight prologue, the warp-tile LSTM step and the
// per-candidate token scores.
//
// Torch-free: needs only the CUDA runtime headers, so `nvcc -arch=sm_90 -c` compiles it on a
// machine without a GPU or a CUDA build of torch (`make cuda-check`).
//
// Names: M models (2 with the prior: 0 the IDM q, 1 the prior p; 1 without), P plans, n actions
// (token n is END), H hidden units. Inputs as in csrc/ops.cpp: gate_table (M, P, n+1, 4H),
// h0/c0 (M, P, H), w_hh (M, 4H, H), head_w (M, n+2, H), head_b (M, n+2), float32, contiguous.
//
// Work split of every kernel: a warp advances a tile of R candidates one token at a time.
//   * LSTM step: lane l owns the units u = l + 32 j (j < U, U = ceil(H / 32)) and computes their
//     four gate rows for all R candidates: acc[gate][j][r] += W_hh[gate H + u][k] * h[r][k],
//     W rows read as 16-byte vectors from shared memory (row stride S, S/4 odd, so the 8 lanes
//     of a quarter-warp hit distinct banks), h rows broadcast. The cell states c stay in
//     registers of the lane that owns the unit; the new h goes back to the warp's h rows.
//   * Token scores: the G = 32 / R lanes of candidate r own consecutive blocks of the n+1
//     tokens: head logits, log-softmax (max by shuffles within the group, the sum in an order
//     that does not depend on R: tree_sum_exp), the per-token score s = log q - log p (clip:
//     -20 where log q < clip_logq), then the sampler's inverse CDF or the beam's expansion scores.
// The arithmetic follows glamor/planning/reference.py. The gate sigmoids use the hardware exp2
// (__expf) with an IEEE reciprocal (a few ulp; 8 R of them per lane and model-step); the
// log-softmax and the sampler's CDF use the accurate expf and logf (a few per lane and step), so
// scores match the CPU op to ~1e-6 relative and discrete choices match unless two options are
// within that of each other. Every tile size R computes the same operations in the same order
// (and setup.py builds with -fmad=false, so nvcc fuses no a * b + c it was not told to with
// fmaf), so a plan's actions and score bits do not depend on the batch it was planned in.
#pragma once

#ifndef GLAMOR_CUDA_EMULATION  // tests/ops/cuda_emu/ runs these kernels on the CPU
#include <cuda_runtime.h>
#endif

#include <cstdint>

#include "cpu/rng.h"

// The dynamic shared memory of a kernel (the emulator hands each block its own buffer).
#ifdef GLAMOR_CUDA_EMULATION
#define GLAMOR_DYNAMIC_SMEM(T, name) T* name = reinterpret_cast<T*>(::glamor_emu::dynamic_smem())
#else
#define GLAMOR_DYNAMIC_SMEM(T, name) extern __shared__ T name[]
#endif

namespace glamor {
namespace cuda {

constexpr int kWarp = 32;
constexpr int kMaxWarps = 8;        // warps per block (threads <= 256)
constexpr float kClipScore = -20.0f;
constexpr unsigned kFull = 0xFFFFFFFFu;

// ---- sizes and the shared-memory layout ------------------------------------------------------

struct Dims {
  int M, P, n, H;
  int HP;  // H rounded up to 4 (16-byte rows)
  int S;   // row stride (floats) of W, head and h rows in shared memory: HP or HP + 4, S/4 odd
  int NP;  // n + 1 rounded up to 4: logit rows
};

__host__ __device__ inline int round_up4(int x) { return (x + 3) & ~3; }

__host__ __device__ inline Dims make_dims(int M, int P, int n, int H) {
  Dims d;
  d.M = M, d.P = P, d.n = n, d.H = H;
  d.HP = round_up4(H);
  d.S = ((d.HP / 4) % 2 == 1) ? d.HP : d.HP + 4;
  d.NP = round_up4(n + 1);
  return d;
}

// Offsets in floats from the start of dynamic shared memory (all multiples of 4).
struct Layout {
  int w;       // (M, 4H, S) recurrent weights, when held in shared memory
  int table;   // (M, n+1, 4H) this plan's gate table
  int head;    // (M, n+1, S) head weights without the PAD row
  int bias;    // (M, NP)
  int h0, c0;  // (M, S) this plan's initial state
  int warps;   // start of the per-warp areas
  int warp_floats;  // per warp: h (M, R, S) then logits / scores (M, R, NP)
  int total_floats;
};

__host__ __device__ inline Layout make_layout(const Dims& d, bool w_smem, int R, int warps) {
  Layout L;
  int o = 0;
  L.w = o;
  if (w_smem) o += d.M * 4 * d.H * d.S;
  L.table = o;
  o += round_up4(d.M * (d.n + 1) * 4 * d.H);
  L.head = o;
  o += d.M * (d.n + 1) * d.S;
  L.bias = o;
  o += d.M * d.NP;
  L.h0 = o;
  o += d.M * d.S;
  L.c0 = o;
  o += d.M * d.S;
  L.warps = o;
  L.warp_floats = d.M * R * d.S + d.M * R * d.NP;
  L.total_floats = o + warps * L.warp_floats;
  return L;
}

// Everything a kernel reads about the models, passed by value.
struct Net {
  const float* gate_table;
  const float* h0;
  const float* c0;
  const float* w_hh;
  const float* head_w;
  const float* head_b;
  Dims d;
  float log_gamma;
  int clip;  // 0 or 1
  float clip_logq;
};

// ---- small device helpers --------------------------------------------------------------------

__device__ __forceinline__ float sigmoidf_(float x) { return __frcp_rn(1.0f + __expf(-x)); }

// tanh(x) = 2 sigmoid(2x) - 1; exactly 0 at 0 here (__expf(0) = 1 and an IEEE reciprocal), as the
// CPU kernels' (1 - e) / (1 + e) is (simd.h)
__device__ __forceinline__ float tanhf_(float x) { return fmaf(2.0f, sigmoidf_(2.0f * x), -1.0f); }

template <int G>
__device__ __forceinline__ float group_max(float v) {
#pragma unroll
  for (int off = G / 2; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, off));
  return v;
}

template <int G>
__device__ __forceinline__ int group_sum_int(int v) {
#pragma unroll
  for (int off = G / 2; off > 0; off >>= 1) v += __shfl_xor_sync(kFull, v, off);
  return v;
}

// ---- sums over a candidate's tokens that round the same whatever the tile R ------------------
//
// The log-softmax sum and the sampler's CDF add up to n+1 exponentials. Summed lane by lane and
// then across the G = 32 / R lanes of a group, their rounding would depend on R, which is chosen
// from the batch size: one plan could get other score bits (rarely another token) alone than in
// a batch. So every sum has one order, the same for each R: the tokens [0, n1) form 32 leaves
// of b = ceil(n1 / 32) consecutive tokens (empty past n1), each summed in token order, and a
// perfect binary tree adds the leaves, left + right. Lane g of a group holds leaves g R ..
// g R + R - 1: the tree's first log2 R levels run in its registers, the last log2 G across the
// group by shuffles with rising offsets (a + b and b + a round alike, so both lanes of a pair
// hold the same node).

// Tokens [j0, j1) of leaf k.
__device__ __forceinline__ void leaf_tokens(int n1, int k, int& j0, int& j1) {
  const int b = (n1 + kWarp - 1) / kWarp;
  j0 = min(n1, k * b);
  j1 = min(n1, j0 + b);
}

// sum_j exp(x[j] - mx) over j < n1 in the tree order; every lane of the group returns it.
// x: the candidate's row, all n1 entries written and visible to the group.
template <int G>
__device__ __forceinline__ float tree_sum_exp(const float* x, float mx, int n1, int g) {
  constexpr int R = kWarp / G;
  static_assert(R <= 8, "three pending levels hold tiles of up to 8 candidates");
  // the lane's R leaves in order, added pairwise as they come (a binary counter: p<l> holds the
  // left node of width 2^l until its right sibling is done); a loop, not unrolled, and three
  // pending nodes in registers keep the kernels' registers as they were
  float p0 = 0.0f, p1 = 0.0f, p2 = 0.0f, v = 0.0f;
#pragma unroll 1
  for (int i = 0; i < R; ++i) {
    int j0, j1;
    leaf_tokens(n1, g * R + i, j0, j1);
    v = 0.0f;
    for (int j = j0; j < j1; ++j) v += expf(x[j] - mx);
    if (!(i & 1)) {
      p0 = v;
      continue;
    }
    v = p0 + v;
    if (!(i & 2)) {
      p1 = v;
      continue;
    }
    v = p1 + v;
    if (!(i & 4)) {
      p2 = v;
      continue;
    }
    v = p2 + v;
  }
  // after the last leaf (i = R - 1, all bits set below log2 R) v is the lane's node of width R
#pragma unroll
  for (int off = 1; off < G; off <<= 1) v = v + __shfl_xor_sync(kFull, v, off);
  return v;
}

// The running sums of e_j = exp(s[j] - mx) (in double) before each of this lane's R leaves, in
// the tree order (prefix of leaf k: going up the tree from k, each left sibling's node added in
// front, left + sum), and the total (the root).
template <int G>
__device__ __forceinline__ double tree_prefix_exp(const float* s, float mx, int n1, int g,
                                                  double (&before)[kWarp / G]) {
  constexpr int R = kWarp / G;
  double node[R];
#pragma unroll
  for (int i = 0; i < R; ++i) {
    int j0, j1;
    leaf_tokens(n1, g * R + i, j0, j1);
    double v = 0.0;
    for (int j = j0; j < j1; ++j) v += static_cast<double>(expf(s[j] - mx));
    node[i] = v;
    before[i] = 0.0;
  }
#pragma unroll
  for (int w = 1; w < R; w <<= 1) {
#pragma unroll
    for (int i = 0; i < R; ++i)
      if (i & w) before[i] = node[i & ~(2 * w - 1)] + before[i];
#pragma unroll
    for (int i = 0; i < R; i += 2 * w) node[i] = node[i] + node[i + w];
  }
  double v = node[0];
#pragma unroll
  for (int off = 1; off < G; off <<= 1) {
    const double other = __shfl_xor_sync(kFull, v, off);
    if (g & off) {
#pragma unroll
      for (int i = 0; i < R; ++i) before[i] = other + before[i];
    }
    v = v + other;
  }
  return v;
}

// The order of beam candidates as one unsigned key: larger score first, then lower flat index
// (beam * n + action). Equal to score_order/beam_key of csrc/cpu/planner.cpp.
__device__ __forceinline__ uint32_t score_order(float score) {
  score = score + 0.0f;  // -0 -> +0, so that equal scores tie
  const uint32_t u = __float_as_uint(score);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ uint64_t beam_key(float score, uint32_t flat) {
  return (static_cast<uint64_t>(score_order(score)) << 32) | (0xFFFFFFFFu - flat);
}

// ---- prologue: one plan's weights into shared memory -----------------------------------------

// 16 bytes global -> shared without staging in registers (cp.async, sm_80+): all of a thread's
// copies are in flight at once, so the prologue runs at L2 bandwidth, not at load latency.
__device__ __forceinline__ void copy16_async(float* dst_smem, const float* src) {
#ifdef GLAMOR_CUDA_EMULATION
  for (int q = 0; q < 4; ++q) dst_smem[q] = src[q];
#else
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(dst_smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
#endif
}

__device__ __forceinline__ void copy_async_wait_all() {
#ifndef GLAMOR_CUDA_EMULATION
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

// rows x cols floats (cols a multiple of 4) from global rows of stride src_ld to shared rows of
// stride dst_ld, 16 bytes per copy; both strides and both bases 16-byte aligned.
__device__ inline void copy_rows_async(float* dst, int dst_ld, const float* src, size_t src_ld, int rows, int cols) {
  const int per_row = cols / 4, total = rows * per_row;
  for (int i = threadIdx.x; i < total; i += blockDim.x) {
    const int r = i / per_row, c4 = (i - r * per_row) * 4;
    copy16_async(dst + r * dst_ld + c4, src + r * src_ld + c4);
  }
}

// Copies W_hh (when w_smem), the plan's gate table, the head without its PAD row, the bias and
// the plan's initial state; zero-fills the padding and the warp areas. Ends with a barrier.
// With H a multiple of 4 and 16-byte aligned inputs (the usual case) the big arrays move with
// cp.async; otherwise element by element.
__device__ inline void load_plan(const Net& net, int p, float* sm, const Layout& L, bool w_smem, int warps) {
  const Dims& d = net.d;
  const int tid = threadIdx.x, nt = blockDim.x;
  const int G4 = 4 * d.H;
  const int trows = (d.n + 1) * G4;
  const bool vec = d.H % 4 == 0 &&
                   ((reinterpret_cast<uintptr_t>(net.w_hh) | reinterpret_cast<uintptr_t>(net.gate_table) |
                     reinterpret_cast<uintptr_t>(net.head_w)) &
                    15) == 0;
  if (vec) {
    if (w_smem) copy_rows_async(sm + L.w, d.S, net.w_hh, d.H, d.M * G4, d.H);
    for (int m = 0; m < d.M; ++m) {
      copy_rows_async(sm + L.table + m * trows, trows, net.gate_table + (static_cast<size_t>(m) * d.P + p) * trows, 0,
                      1, trows);
      copy_rows_async(sm + L.head + m * (d.n + 1) * d.S, d.S, net.head_w + static_cast<size_t>(m) * (d.n + 2) * d.H,
                      d.H, d.n + 1, d.H);
    }
    if (d.S > d.H) {  // the padding columns (HP = H here)
      const int pad = d.S - d.H;
      if (w_smem)
        for (int i = tid; i < d.M * G4 * pad; i += nt) sm[L.w + (i / pad) * d.S + d.H + i % pad] = 0.0f;
      for (int i = tid; i < d.M * (d.n + 1) * pad; i += nt) sm[L.head + (i / pad) * d.S + d.H + i % pad] = 0.0f;
    }
  } else {
    if (w_smem) {
      const int total = d.M * G4 * d.S;
      for (int i = tid; i < total; i += nt) {
        const int row = i / d.S, k = i - row * d.S;  // row = m * 4H + gate row
        sm[L.w + i] = k < d.H ? net.w_hh[static_cast<size_t>(row) * d.H + k] : 0.0f;
      }
    }
    for (int i = tid; i < d.M * trows; i += nt) {
      const int m = i / trows, r = i - m * trows;
      sm[L.table + i] = net.gate_table[(static_cast<size_t>(m) * d.P + p) * trows + r];
    }
    const int hsz = (d.n + 1) * d.S;
    for (int i = tid; i < d.M * hsz; i += nt) {
      const int m = i / hsz, r = i - m * hsz, j = r / d.S, k = r - j * d.S;
      sm[L.head + i] = k < d.H ? net.head_w[(static_cast<size_t>(m) * (d.n + 2) + j) * d.H + k] : 0.0f;
    }
  }
  for (int i = tid; i < d.M * d.NP; i += nt) {
    const int m = i / d.NP, j = i - m * d.NP;
    sm[L.bias + i] = j <= d.n ? net.head_b[m * (d.n + 2) + j] : 0.0f;
  }
  for (int i = tid; i < d.M * d.S; i += nt) {
    const int m = i / d.S, k = i - m * d.S;
    const size_t src = (static_cast<size_t>(m) * d.P + p) * d.H + k;
    sm[L.h0 + i] = k < d.H ? net.h0[src] : 0.0f;
    sm[L.c0 + i] = k < d.H ? net.c0[src] : 0.0f;
  }
  for (int i = tid; i < warps * L.warp_floats; i += nt) sm[L.warps + i] = 0.0f;
  copy_async_wait_all();
  __syncthreads();
}

// ---- the LSTM step of a warp tile ------------------------------------------------------------

// One LSTM step of model m for the R candidates of a warp tile.
//   h:    the warp's (R, S) h rows of model m (in: the state, out: the new h; padding stays 0)
//   c:    the cell states of this lane's units, c[j][r] for u = lane + 32 j (in/out)
//   prev: the token each candidate was fed last (n: the start row), same in every lane
// W_hh comes from shared memory (W_SMEM) or straight from global memory (larger H).
template <int U, int R, bool W_SMEM>
__device__ __forceinline__ void lstm_model(const Net& net, const float* sm, const Layout& L, int m, float* h,
                                           float (&c)[U][R], const int (&prev)[R], int lane) {
  const Dims& d = net.d;
  const int H = d.H, S = d.S, G4 = 4 * H;
  float acc[4][U][R];
#pragma unroll
  for (int g = 0; g < 4; ++g)
#pragma unroll
    for (int j = 0; j < U; ++j)
#pragma unroll
      for (int r = 0; r < R; ++r) acc[g][j][r] = 0.0f;
  int row[4][U];  // this lane's gate rows (row 0 for units past H: computed, never stored)
#pragma unroll
  for (int j = 0; j < U; ++j) {
    const int u = lane + kWarp * j;
#pragma unroll
    for (int g = 0; g < 4; ++g) row[g][j] = m * G4 + (u < H ? g * H + u : 0);
  }
  for (int k = 0; k < d.HP; k += 4) {
    float4 hv[R];
#pragma unroll
    for (int r = 0; r < R; ++r) hv[r] = *reinterpret_cast<const float4*>(h + r * S + k);
#pragma unroll
    for (int g = 0; g < 4; ++g)
#pragma unroll
      for (int j = 0; j < U; ++j) {
        float4 w;
        if (W_SMEM) {
          w = *reinterpret_cast<const float4*>(sm + L.w + row[g][j] * S + k);
        } else {  // raw (M, 4H, H) rows in global memory; H need not be a multiple of 4
          const float* src = net.w_hh + static_cast<size_t>(row[g][j]) * H + k;
          w.x = __ldg(src);
          w.y = k + 1 < H ? __ldg(src + 1) : 0.0f;
          w.z = k + 2 < H ? __ldg(src + 2) : 0.0f;
          w.w = k + 3 < H ? __ldg(src + 3) : 0.0f;
        }
#pragma unroll
        for (int r = 0; r < R; ++r) {
          float a = acc[g][j][r];
          a = fmaf(w.x, hv[r].x, a);
          a = fmaf(w.y, hv[r].y, a);
          a = fmaf(w.z, hv[r].z, a);
          a = fmaf(w.w, hv[r].w, a);
          acc[g][j][r] = a;
        }
      }
  }
  __syncwarp();  // every lane has read the h rows before any is overwritten
  const float* table = sm + L.table + m * (d.n + 1) * G4;
#pragma unroll
  for (int j = 0; j < U; ++j) {
    const int u = lane + kWarp * j;
    if (u < H) {
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float* t = table + prev[r] * G4;
        const float zi = t[u] + acc[0][j][r];
        const float zf = t[H + u] + acc[1][j][r];
        const float zg = t[2 * H + u] + acc[2][j][r];
        const float zo = t[3 * H + u] + acc[3][j][r];
        const float cn = sigmoidf_(zf) * c[j][r] + sigmoidf_(zi) * tanhf_(zg);
        c[j][r] = cn;
        h[r * S + u] = sigmoidf_(zo) * tanhf_(cn);
      }
    }
  }
  __syncwarp();
}

// Both models: hbuf is the warp's (M, R, S) h rows, c[m][j][r] the cell states.
template <int U, int R, bool W_SMEM>
__device__ __forceinline__ void lstm_tile(const Net& net, const float* sm, const Layout& L, float* hbuf,
                                          float (&c)[2][U][R], const int (&prev)[R], int lane) {
#pragma unroll
  for (int m = 0; m < 2; ++m) {
    if (m >= net.d.M) break;
    lstm_model<U, R, W_SMEM>(net, sm, L, m, hbuf + m * R * net.d.S, c[m], prev, lane);
  }
}

// ---- per-candidate token scores --------------------------------------------------------------

// Model m's head logits and log-softmax over the n+1 tokens (PAD dropped) for one candidate:
// h its (S) h row, x its (NP) row, written at this lane's tokens [j0, j1) (lane g of a group of
// G lanes; the max goes through the group by shuffles, the sum is tree_sum_exp's).
template <int G>
__device__ __forceinline__ void head_log_softmax(const Net& net, const float* sm, const Layout& L, int m,
                                                 const float* h, float* x, int g, int j0, int j1) {
  const Dims& d = net.d;
  const int S = d.S;
  const float* head = sm + L.head + m * (d.n + 1) * S;
  float mx = -INFINITY;
  for (int j = j0; j < j1; ++j) {
    float acc = 0.0f;
    for (int k = 0; k < d.HP; k += 4) {
      const float4 hv = *reinterpret_cast<const float4*>(h + k);
      const float4 wv = *reinterpret_cast<const float4*>(head + j * S + k);
      acc = fmaf(hv.x, wv.x, acc);
      acc = fmaf(hv.y, wv.y, acc);
      acc = fmaf(hv.z, wv.z, acc);
      acc = fmaf(hv.w, wv.w, acc);
    }
    const float v = acc + sm[L.bias + m * d.NP + j];
    x[j] = v;
    mx = fmaxf(mx, v);
  }
  mx = group_max<G>(mx);
  __syncwarp();  // the whole row is written
  const float lse = logf(tree_sum_exp<G>(x, mx, d.n + 1, g));
  __syncwarp();  // the whole row is read
  for (int j = j0; j < j1; ++j) x[j] = (x[j] - mx) - lse;
}

// The per-token score at this lane's tokens: s = log q - log p (log q alone when lp is null),
// -20 where log q < clip_logq when clipping. s may alias lq.
__device__ __forceinline__ void combine_scores(const Net& net, const float* lq, const float* lp, float* s, int j0,
                                               int j1) {
  for (int j = j0; j < j1; ++j) {
    const float q = lq[j];
    float v = lp ? q - lp[j] : q;
    if (net.clip && q < net.clip_logq) v = kClipScore;
    s[j] = v;
  }
}

// For candidate r of the warp tile (this lane is lane g of its group of G = 32 / R lanes):
// head logits, log-softmax of each model, and the per-token score s written to s_row[j] for
// this lane's tokens [j0, j1). lg: the warp's (M, R, NP) rows; s_row aliases model 0's row of
// candidate r. The caller syncs the warp before reading s_row at other tokens.
template <int R>
__device__ __forceinline__ void token_scores(const Net& net, const float* sm, const Layout& L,
                                             const float* hbuf, float* lg, int r, int g, int j0, int j1) {
  constexpr int G = kWarp / R;
  const Dims& d = net.d;
#pragma unroll
  for (int m = 0; m < 2; ++m) {
    if (m >= d.M) break;
    head_log_softmax<G>(net, sm, L, m, hbuf + (m * R + r) * d.S, lg + (m * R + r) * d.NP, g, j0, j1);
  }
  float* s = lg + r * d.NP;
  combine_scores(net, s, d.M == 2 ? lg + (R + r) * d.NP : nullptr, s, j0, j1);
}

// Inverse-CDF draw from softmax(s) over tokens [0, last] with uniform u, as the CPU kernel and
// the reference: cdf_j = float(running sum of exp(s_i - max) in double), the token is how many
// cdf_j (j <= last) are <= u * cdf_last, at most `last`; the running sums in the tree order
// above, so the draw does not depend on R. s: candidate r's row (all written). Every lane of
// the group returns the token.
template <int G>
__device__ __forceinline__ int sample_token(const float* s, int last, float u, int g, int j0, int j1) {
  constexpr int R = kWarp / G;
  const int n1 = last + 1;
  const int e1 = min(j1, n1);
  float mx = -INFINITY;
  for (int j = j0; j < e1; ++j) mx = fmaxf(mx, s[j]);
  mx = group_max<G>(mx);
  double before[R];
  const double total = tree_prefix_exp<G>(s, mx, n1, g, before);
  const float thr = u * static_cast<float>(total);
  int count = 0;
#pragma unroll
  for (int i = 0; i < R; ++i) {
    int k0, k1;
    leaf_tokens(n1, g * R + i, k0, k1);
    double acc = before[i];
    for (int j = k0; j < k1; ++j) {
      acc += static_cast<double>(expf(s[j] - mx));
      count += static_cast<float>(acc) <= thr ? 1 : 0;
    }
  }
  count = group_sum_int<G>(count);
  return min(count, last);
}

// This lane's block of tokens [j0, j1) within its group (lane g of G).
__device__ __forceinline__ void token_block(int n, int G, int g, int& j0, int& j1) {
  const int per = (n + 1 + G - 1) / G;
  j0 = min(n + 1, g * per);
  j1 = min(n + 1, j0 + per);
}

}  // namespace cuda
}  // namespace glamor
