// The CUDA planner kernels: one persistent launch per call runs every horizon step.
// Torch-free (see planner_common.cuh for the warp-tile LSTM step and the token scores).
//
//   sample_kernel    grid (chunks, P), block warps x 32. The block holds one plan's weights in
//                    shared memory and works through its chunk of candidates; each warp keeps R
//                    candidate slots and refills a slot from the chunk (an atomic counter) as
//                    soon as its candidate draws END, so the work is the live candidate-steps.
//                    Draws are keyed by (seed, plan, candidate, step) (csrc/cpu/rng.h), so the
//                    result does not depend on which slot or block ran a candidate. Every
//                    candidate's actions go to `seq`; each block writes its best (score, lowest
//                    candidate on ties, length) and sample_finalize picks the plan's best.
//   sample_pair_kernel  the same with two warps per candidate (one per model), for calls with
//                    too few candidates to fill the GPU (latency).
//   score_kernel     the same loop, teacher-forced by the given actions: scores (P, N).
//   beam_kernel      grid (P x blocks), one plan per block or per thread-block cluster of
//                    `blocks` (<= 8) blocks. Beam rows live in global memory (L2): per step the
//                    blocks advance the live rows in warp tiles (rows gathered by parent),
//                    write the (B, n+1) expansion scores, then the cluster's first block keeps
//                    the best B of the B x n action expansions (a radix select on the 64-bit key
//                    (score order, ~flat index), then a bitonic sort of the B kept keys, so beam
//                    k is the k-th best, exactly as the CPU op) and updates the best finished
//                    plan from the END expansions (strictly better only, lowest beam on ties).
//   uniform_kernel   the sampler's draws, elementwise.
#pragma once

#ifndef GLAMOR_CUDA_EMULATION
#include <cooperative_groups.h>
#endif

#include <climits>

#include "cuda/planner_common.cuh"

namespace glamor {
namespace cuda {

// ---- sampling ----------------------------------------------------------------------------------

struct SampleArgs {
  int N, horizon;
  int chunk, chunks;  // candidates per block, blocks per plan
  uint64_t seed;
  const int64_t* plan_keys;  // (P,) or nullptr: plan p draws as the plan numbered plan_keys[p] (low 32 bits)
  int* seq;           // (P, N, horizon) every candidate's actions
  float* best_score;  // (P, chunks) each block's best candidate
  int* best_cand;
  int* best_len;
};

// ---- what the candidate-slot kernels (sampling, scoring) share --------------------------------------

// c[model][unit][slot] = 0: the cell states of a warp's R slots before any candidate.
template <int U, int R>
__device__ __forceinline__ void zero_cells(float (&c)[2][U][R]) {
#pragma unroll
  for (int m = 0; m < 2; ++m)
#pragma unroll
    for (int j = 0; j < U; ++j)
#pragma unroll
      for (int rr = 0; rr < R; ++rr) c[m][j][rr] = 0.0f;
}

// The slot refill. Groups of G lanes hold one candidate slot each (slot r = lane / G); every
// group whose slot is free (`need`, the same in its G lanes) claims the next candidate of the
// block's chunk from the shared counter `next`, in slot order, so a warp takes one atomicAdd.
// Returns the claimed candidate in the lanes of a claiming group and clears its `need`; -1 in
// the other groups and once the chunk (ending at c_end) has run out. All 32 lanes call it.
template <int G>
__device__ __forceinline__ int claim_candidate(int* next, bool& need, int r, int g, int lane, int c_end) {
  const unsigned needmask = __ballot_sync(kFull, g == 0 && need);
  if (!needmask) return -1;
  int base = 0;
  if (lane == 0) base = atomicAdd(next, __popc(needmask));
  base = __shfl_sync(kFull, base, 0);
  if (!need) return -1;
  need = false;
  const int idx = base + __popc(needmask & ((1u << (r * G)) - 1u));
  return idx < c_end ? idx : -1;
}

// Slots that just claimed a candidate (`fresh` in their G lanes) start from the plan's initial
// state: h rows hbuf (M, R, S) from h0s (M, S), cells c[m][.][slot] from c0s (M, S). All 32
// lanes call it (the copy is spread over the warp).
template <int U, int R, int G>
__device__ __forceinline__ void start_fresh_slots(bool fresh, int g, int lane, const Dims& d, const float* h0s,
                                                  const float* c0s, float* hbuf, float (&c)[2][U][R]) {
  const unsigned freshmask = __ballot_sync(kFull, g == 0 && fresh);
#pragma unroll
  for (int rr = 0; rr < R; ++rr) {
    if (freshmask & (1u << (rr * G))) {
      for (int i = lane; i < d.M * d.S; i += kWarp) {
        const int m = i / d.S, k = i - m * d.S;
        hbuf[(m * R + rr) * d.S + k] = h0s[i];
      }
#pragma unroll
      for (int m = 0; m < 2; ++m)
#pragma unroll
        for (int j = 0; j < U; ++j) {
          const int u = lane + kWarp * j;
          c[m][j][rr] = (m < d.M && u < d.H) ? c0s[m * d.S + u] : 0.0f;
        }
    }
  }
  __syncwarp();
}

// (score, cand, len) <- the other when it is better: a higher score, the lower candidate on ties.
__device__ __forceinline__ void keep_better(float& score, int& cand, int& len, float os, int oc, int ol) {
  if (os > score || (os == score && oc < cand)) score = os, cand = oc, len = ol;
}

// The block's best candidate (over its lanes, then its warps, through the wb_* arrays of
// kMaxWarps entries in shared memory) to slot (p, ch) of a.best_*. All threads call it.
__device__ __forceinline__ void write_block_best(const SampleArgs& a, int p, int ch, float bscore, int bcand, int blen,
                                                 float* wb_score, int* wb_cand, int* wb_len) {
  const int warps = blockDim.x / kWarp, warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
#pragma unroll
  for (int off = kWarp / 2; off > 0; off >>= 1) {
    const float os = __shfl_xor_sync(kFull, bscore, off);
    const int oc = __shfl_xor_sync(kFull, bcand, off);
    const int ol = __shfl_xor_sync(kFull, blen, off);
    keep_better(bscore, bcand, blen, os, oc, ol);
  }
  if (lane == 0) wb_score[warp] = bscore, wb_cand[warp] = bcand, wb_len[warp] = blen;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < warps; ++w) keep_better(bscore, bcand, blen, wb_score[w], wb_cand[w], wb_len[w]);
    const int o = p * a.chunks + ch;
    a.best_score[o] = bscore;
    a.best_cand[o] = bcand;
    a.best_len[o] = blen;
  }
}

// Shapes: see SampleArgs; R candidate slots per warp (R = 1: latency, R = 8 (4 for H > 64):
// throughput), U = ceil(H / 32) units per lane.
template <int U, int R, bool W_SMEM>
__global__ void __launch_bounds__(kMaxWarps* kWarp, 1) sample_kernel(Net net, SampleArgs a) {
  constexpr int G = kWarp / R;
  GLAMOR_DYNAMIC_SMEM(float4, smem4);
  float* sm = reinterpret_cast<float*>(smem4);
  __shared__ int next;
  __shared__ float wb_score[kMaxWarps];
  __shared__ int wb_cand[kMaxWarps], wb_len[kMaxWarps];
  const Dims d = net.d;
  const int p = blockIdx.y, ch = blockIdx.x;
  const int warps = blockDim.x / kWarp, warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int r = lane / G, g = lane % G;
  const int c_begin = ch * a.chunk, c_end = min(a.N, c_begin + a.chunk);
  const Layout L = make_layout(d, W_SMEM, R, warps);
  if (threadIdx.x == 0) next = c_begin;
  load_plan(net, p, sm, L, W_SMEM, warps);
  float* hbuf = sm + L.warps + warp * L.warp_floats;
  float* lg = hbuf + d.M * R * d.S;
  const float* h0s = sm + L.h0;
  const float* c0s = sm + L.c0;
  const uint32_t key = rng::plan_key(a.seed, static_cast<uint32_t>(a.plan_keys ? a.plan_keys[p] : p));
  int j0, j1;
  token_block(d.n, G, g, j0, j1);

  float c[2][U][R];
  zero_cells(c);
  // this group's slot (the same in all G lanes)
  int cand = -1, t = 0, prev = d.n;
  float score = 0.0f;
  bool need = true;
  float bscore = -INFINITY;
  int bcand = INT_MAX, blen = 0;

  for (;;) {
    __syncwarp();
    const int claimed = claim_candidate<G>(&next, need, r, g, lane, c_end);
    const bool fresh = claimed >= 0;
    if (fresh) cand = claimed, t = 0, prev = d.n, score = 0.0f;
    if (__ballot_sync(kFull, cand >= 0) == 0) break;
    start_fresh_slots<U, R, G>(fresh, g, lane, d, h0s, c0s, hbuf, c);
    int prevs[R];
#pragma unroll
    for (int rr = 0; rr < R; ++rr) prevs[rr] = __shfl_sync(kFull, prev, rr * G);
    lstm_tile<U, R, W_SMEM>(net, sm, L, hbuf, c, prevs, lane);
    token_scores<R>(net, sm, L, hbuf, lg, r, g, j0, j1);
    __syncwarp();
    const float* s = lg + r * d.NP;
    // every group draws (the shuffles need all lanes); idle slots and the forced END discard it
    const int tt = cand >= 0 ? t : 1;
    const float u = rng::uniform(key, static_cast<uint32_t>(max(cand, 0)), static_cast<uint32_t>(tt));
    int tok = sample_token<G>(s, tt == 0 ? d.n - 1 : d.n, u, g, j0, j1);
    if (tt == a.horizon) tok = d.n;  // END is forced
    if (cand >= 0) {
      score = score + (s[tok] + net.log_gamma);
      if (tok < d.n) {
        if (g == 0) a.seq[(static_cast<size_t>(p) * a.N + cand) * a.horizon + t] = tok;
        prev = tok;
        ++t;
      } else {
        keep_better(bscore, bcand, blen, score, cand, t);
        need = true;
        cand = -1;
        prev = d.n;
      }
    }
  }
  write_block_best(a, p, ch, bscore, bcand, blen, wb_score, wb_cand, wb_len);
}

// Two warps per candidate (the latency path with the prior on, M = 2): warp 2q runs the IDM's
// LSTM step, head and log-softmax, warp 2q+1 the prior's, for the same candidate; they swap
// log-probabilities through shared memory at a named barrier once per step and both draw the
// token (the same one: same inputs, same draw). Halves a step's critical path when there are too
// few candidates to fill the GPU. Candidates go to warp pairs statically (first + q, + pairs, ..).
// Shared memory: make_layout(d, W_SMEM, 2, warps); each warp's area (4S + 4NP floats) holds
// its model's h row (S), its token scores (NP) and its model's log-probabilities, double-buffered
// by step (2, NP): S + 3NP floats, which fit for every size (the pair's four log-probability rows
// in one warp's area did not when NP > 3S: few hidden units, many tokens).
__device__ __forceinline__ void pair_sync(int pair) {
#ifdef GLAMOR_CUDA_EMULATION
  ::glamor_emu::named_barrier(1 + pair, 2 * kWarp);
#else
  asm volatile("bar.sync %0, %1;" ::"r"(1 + pair), "r"(2 * kWarp) : "memory");
#endif
}

template <int U, bool W_SMEM>
__global__ void __launch_bounds__(kMaxWarps* kWarp, 1) sample_pair_kernel(Net net, SampleArgs a) {
  GLAMOR_DYNAMIC_SMEM(float4, smem4);
  float* sm = reinterpret_cast<float*>(smem4);
  __shared__ float wb_score[kMaxWarps];
  __shared__ int wb_cand[kMaxWarps], wb_len[kMaxWarps];
  const Dims d = net.d;
  const int p = blockIdx.y, ch = blockIdx.x;
  const int warps = blockDim.x / kWarp, warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int pair = warp / 2, m = warp % 2, pairs = warps / 2;
  const int c_begin = ch * a.chunk, c_end = min(a.N, c_begin + a.chunk);
  const Layout L = make_layout(d, W_SMEM, 2, warps);
  load_plan(net, p, sm, L, W_SMEM, warps);
  float* h = sm + L.warps + warp * L.warp_floats;  // (S) this warp's model's h row
  float* s = h + d.S;                                // (NP) token scores
  float* lg_own = s + d.NP;                          // (2, NP) this model's log-probs by step parity
  const float* lg_q = sm + L.warps + 2 * pair * L.warp_floats + d.S + d.NP;  // the IDM warp's (2, NP)
  const float* lg_p = lg_q + L.warp_floats;                                   // the prior warp's (2, NP)
  const uint32_t key = rng::plan_key(a.seed, static_cast<uint32_t>(a.plan_keys ? a.plan_keys[p] : p));
  int j0, j1;
  token_block(d.n, kWarp, lane, j0, j1);
  float bscore = -INFINITY;
  int bcand = INT_MAX, blen = 0;
  int step = 0;  // steps this pair has run: its parity picks the log-prob buffer
  float c[U][1];
  for (int cand = c_begin + pair; cand < c_end; cand += pairs) {
    for (int k = lane; k < d.S; k += kWarp) h[k] = sm[L.h0 + m * d.S + k];
#pragma unroll
    for (int j = 0; j < U; ++j) {
      const int u = lane + kWarp * j;
      c[j][0] = u < d.H ? sm[L.c0 + m * d.S + u] : 0.0f;
    }
    __syncwarp();
    int prev = d.n, t = 0;
    float score = 0.0f;
    for (;; ++t, ++step) {
      const int prevs[1] = {prev};
      lstm_model<U, 1, W_SMEM>(net, sm, L, m, h, c, prevs, lane);
      const int buf = (step & 1) * d.NP;
      head_log_softmax<kWarp>(net, sm, L, m, h, lg_own + buf, lane, j0, j1);
      pair_sync(pair);  // both models' log-probabilities of this step are written
      combine_scores(net, lg_q + buf, lg_p + buf, s, j0, j1);
      __syncwarp();
      const float u = rng::uniform(key, static_cast<uint32_t>(cand), static_cast<uint32_t>(t));
      int tok = sample_token<kWarp>(s, t == 0 ? d.n - 1 : d.n, u, lane, j0, j1);
      if (t == a.horizon) tok = d.n;  // END is forced
      score = score + (s[tok] + net.log_gamma);
      if (tok == d.n) break;
      if (m == 0 && lane == 0) a.seq[(static_cast<size_t>(p) * a.N + cand) * a.horizon + t] = tok;
      prev = tok;
    }
    ++step;  // the END step (the break skipped the loop's increment)
    keep_better(bscore, bcand, blen, score, cand, t);
  }
  // the block's best (a warp's lanes, and both warps of a pair, hold the same)
  write_block_best(a, p, ch, bscore, bcand, blen, wb_score, wb_cand, wb_len);
}

// One block per plan: the best of its blocks' best candidates, and that candidate's actions.
static __global__ void sample_finalize(SampleArgs a, int64_t* actions, int64_t* lengths, float* scores) {
  const int p = blockIdx.x;
  __shared__ int best_cand, best_len;
  if (threadIdx.x == 0) {
    float bs = -INFINITY;
    int bc = INT_MAX, bl = 0;
    for (int ch = 0; ch < a.chunks; ++ch) {
      const int o = p * a.chunks + ch;
      keep_better(bs, bc, bl, a.best_score[o], a.best_cand[o], a.best_len[o]);
    }
    best_cand = bc, best_len = bl;
    lengths[p] = bl;
    scores[p] = bs;
  }
  __syncthreads();
  const int* seq = a.seq + (static_cast<size_t>(p) * a.N + best_cand) * a.horizon;
  for (int t = threadIdx.x; t < a.horizon; t += blockDim.x)
    actions[static_cast<size_t>(p) * a.horizon + t] = t < best_len ? seq[t] : -1;
}

// ---- teacher-forced scoring ---------------------------------------------------------------------

struct ScoreArgs {
  int N, L;
  int chunk, chunks;
  const int64_t* actions;  // (P, N, L)
  const int64_t* lengths;  // (P, N)
  float* out;              // (P, N); NaN for a sequence with a length outside [1, L] or an
                           // action outside [0, n) within its length (no host check on CUDA)
};

template <int U, int R, bool W_SMEM>
__global__ void __launch_bounds__(kMaxWarps* kWarp, 1) score_kernel(Net net, ScoreArgs a) {
  constexpr int G = kWarp / R;
  GLAMOR_DYNAMIC_SMEM(float4, smem4);
  float* sm = reinterpret_cast<float*>(smem4);
  __shared__ int next;
  const Dims d = net.d;
  const int p = blockIdx.y, ch = blockIdx.x;
  const int warps = blockDim.x / kWarp, warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int r = lane / G, g = lane % G;
  const int c_begin = ch * a.chunk, c_end = min(a.N, c_begin + a.chunk);
  const Layout L = make_layout(d, W_SMEM, R, warps);
  if (threadIdx.x == 0) next = c_begin;
  load_plan(net, p, sm, L, W_SMEM, warps);
  float* hbuf = sm + L.warps + warp * L.warp_floats;
  float* lg = hbuf + d.M * R * d.S;
  const float* h0s = sm + L.h0;
  const float* c0s = sm + L.c0;
  int j0, j1;
  token_block(d.n, G, g, j0, j1);

  float c[2][U][R];
  zero_cells(c);
  int cand = -1, t = 0, prev = d.n, len = 0;
  bool bad = false, need = true;
  float score = 0.0f;
  const int64_t* act = nullptr;

  for (;;) {
    __syncwarp();
    const int claimed = claim_candidate<G>(&next, need, r, g, lane, c_end);
    const bool fresh = claimed >= 0;
    if (fresh) {
      cand = claimed, t = 0, prev = d.n, score = 0.0f;
      const size_t row = static_cast<size_t>(p) * a.N + cand;
      const int64_t l64 = a.lengths[row];
      bad = l64 < 1 || l64 > a.L;
      len = bad ? 0 : static_cast<int>(l64);
      act = a.actions + row * a.L;
    }
    if (__ballot_sync(kFull, cand >= 0) == 0) break;
    start_fresh_slots<U, R, G>(fresh, g, lane, d, h0s, c0s, hbuf, c);
    int prevs[R];
#pragma unroll
    for (int rr = 0; rr < R; ++rr) prevs[rr] = __shfl_sync(kFull, prev, rr * G);
    lstm_tile<U, R, W_SMEM>(net, sm, L, hbuf, c, prevs, lane);
    token_scores<R>(net, sm, L, hbuf, lg, r, g, j0, j1);
    __syncwarp();
    if (cand >= 0) {
      const float* s = lg + r * d.NP;
      int tok = d.n;
      if (t < len) {
        const int64_t a64 = act[t];
        if (a64 < 0 || a64 >= d.n) bad = true;
        else tok = static_cast<int>(a64);
      }
      score = score + (s[tok] + net.log_gamma);
      if (t < len && !bad) {
        prev = tok;
        ++t;
      } else {  // END (or a bad sequence, reported as NaN)
        if (g == 0) a.out[static_cast<size_t>(p) * a.N + cand] = bad ? __int_as_float(0x7FC00000) : score;
        need = true;
        cand = -1;
        prev = d.n;
      }
    }
  }
}

// ---- beam search ----------------------------------------------------------------------------------

struct BeamArgs {
  int B, horizon;
  int blocks;        // blocks per plan: a thread-block cluster of this size when > 1
  int sort_pow2;     // the smallest power of two >= B
  int sort_in_smem;  // 1: the first block sorts the kept keys in its warp areas, else in `keys`
  float* h;          // (P, 2, M, B, H) beam states, double-buffered by step
  float* c;          // (P, 2, M, B, H)
  float* cand;       // (P, B, n+1) expansion scores of the step
  int* par;          // (P, B) the beams of the next step: parent row, token, score
  int* tok;
  float* score;
  int* hist_par;     // (P, horizon, B) every step's parents and tokens, for the backtrack
  int* hist_tok;
  unsigned long long* keys;  // (P, sort_pow2) when not sorted in shared memory
  int* live;         // (P) rows with a finite score (a prefix: they sort first)
  int64_t* out_actions;  // (P, horizon)
  int64_t* out_lengths;  // (P)
  float* out_scores;     // (P)
};

// All blocks of one plan (a cluster) meet here; global writes before it are visible after it.
__device__ __forceinline__ void plan_sync(int blocks) {
  if (blocks > 1) {
#if defined(GLAMOR_CUDA_EMULATION)
    ::glamor_emu::cluster_sync();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    __threadfence();
    cooperative_groups::this_cluster().sync();
#else
    __trap();  // clusters need sm_90; the host never launches them elsewhere
#endif
  } else {
    __syncthreads();
  }
}

template <int U, int R, bool W_SMEM>
__global__ void __launch_bounds__(kMaxWarps* kWarp, 1) beam_kernel(Net net, BeamArgs a) {
  constexpr int G = kWarp / R;
  GLAMOR_DYNAMIC_SMEM(float4, smem4);
  float* sm = reinterpret_cast<float*>(smem4);
  __shared__ int hist[256];
  __shared__ int sh[8];
  __shared__ float red_v[kMaxWarps];
  __shared__ int red_i[kMaxWarps];
  __shared__ float best_score;
  __shared__ int best_t, best_beam;

  const Dims d = net.d;
  const int n = d.n, B = a.B;
  const int p = blockIdx.x / a.blocks, rank = blockIdx.x % a.blocks;
  const int tid = threadIdx.x, nt = blockDim.x;
  const int warps = nt / kWarp, warp = tid / kWarp, lane = tid % kWarp;
  const int r = lane / G, g = lane % G;
  const Layout L = make_layout(d, W_SMEM, R, warps);
  load_plan(net, p, sm, L, W_SMEM, warps);
  float* hbuf = sm + L.warps + warp * L.warp_floats;
  float* lg = hbuf + d.M * R * d.S;
  const float* h0s = sm + L.h0;
  const float* c0s = sm + L.c0;
  int j0, j1;
  token_block(n, G, g, j0, j1);

  const size_t state = static_cast<size_t>(d.M) * B * d.H;
  float* hP = a.h + static_cast<size_t>(p) * 2 * state;
  float* cP = a.c + static_cast<size_t>(p) * 2 * state;
  float* cand = a.cand + static_cast<size_t>(p) * B * (n + 1);
  int* par = a.par + static_cast<size_t>(p) * B;
  int* tokn = a.tok + static_cast<size_t>(p) * B;
  float* bscore = a.score + static_cast<size_t>(p) * B;
  int* hist_par = a.hist_par + static_cast<size_t>(p) * a.horizon * B;
  int* hist_tok = a.hist_tok + static_cast<size_t>(p) * a.horizon * B;
  unsigned long long* keys = a.sort_in_smem ? reinterpret_cast<unsigned long long*>(sm + L.warps)
                                            : a.keys + static_cast<size_t>(p) * a.sort_pow2;
  if (tid == 0) best_score = -INFINITY, best_t = 0, best_beam = 0;

  float c[2][U][R];
  for (int t = 0; t <= a.horizon; ++t) {
    const int live = t == 0 ? 1 : __ldcg(a.live + p);
    const float* h_in = hP + ((t + 1) & 1) * state;  // written at step t - 1
    const float* c_in = cP + ((t + 1) & 1) * state;
    float* h_out = hP + (t & 1) * state;
    float* c_out = cP + (t & 1) * state;

    // ---- phase A: advance the live rows, write their expansion scores
    const int tiles = (live + R - 1) / R;
    for (int tile = rank * warps + warp; tile < tiles; tile += a.blocks * warps) {
      const int i = tile * R + r;
      const bool valid = i < live;
      const int src = (t == 0 || !valid) ? 0 : __ldcg(par + i);
      const int ptok = (t == 0 || !valid) ? n : __ldcg(tokn + i);
      const float sc = (t == 0 || !valid) ? 0.0f : __ldcg(bscore + i);
      __syncwarp();
#pragma unroll
      for (int rr = 0; rr < R; ++rr) {
        const int srr = __shfl_sync(kFull, src, rr * G);
        for (int e = lane; e < d.M * d.S; e += kWarp) {
          const int m = e / d.S, k = e - m * d.S;
          float v = 0.0f;
          if (k < d.H) v = t == 0 ? h0s[e] : __ldcg(h_in + (static_cast<size_t>(m) * B + srr) * d.H + k);
          hbuf[(m * R + rr) * d.S + k] = v;
        }
#pragma unroll
        for (int m = 0; m < 2; ++m)
#pragma unroll
          for (int j = 0; j < U; ++j) {
            const int u = lane + kWarp * j;
            float v = 0.0f;
            if (m < d.M && u < d.H)
              v = t == 0 ? c0s[m * d.S + u] : __ldcg(c_in + (static_cast<size_t>(m) * B + srr) * d.H + u);
            c[m][j][rr] = v;
          }
      }
      __syncwarp();
      int prevs[R];
#pragma unroll
      for (int rr = 0; rr < R; ++rr) prevs[rr] = __shfl_sync(kFull, ptok, rr * G);
      lstm_tile<U, R, W_SMEM>(net, sm, L, hbuf, c, prevs, lane);
#pragma unroll
      for (int rr = 0; rr < R; ++rr) {
        const int row = tile * R + rr;
        if (row < live) {
#pragma unroll
          for (int m = 0; m < 2; ++m)
#pragma unroll
            for (int j = 0; j < U; ++j) {
              const int u = lane + kWarp * j;
              if (m < d.M && u < d.H) {  // this lane wrote hbuf[.., u] in lstm_tile
                const size_t o = (static_cast<size_t>(m) * B + row) * d.H + u;
                h_out[o] = hbuf[(m * R + rr) * d.S + u];
                c_out[o] = c[m][j][rr];
              }
            }
        }
      }
      token_scores<R>(net, sm, L, hbuf, lg, r, g, j0, j1);
      if (valid) {
        const float* s = lg + r * d.NP;
        for (int j = j0; j < j1; ++j) cand[static_cast<size_t>(i) * (n + 1) + j] = sc + (s[j] + net.log_gamma);
      }
    }
    plan_sync(a.blocks);

    // ---- phase B (first block of the plan): the best END, the best B action expansions
    if (rank == 0) {
      if (t > 0) {
        float bv = -INFINITY;
        int bi = -1;
        for (int i = tid; i < live; i += nt) {
          const float v = __ldcg(cand + static_cast<size_t>(i) * (n + 1) + n);
          if (v > bv) bv = v, bi = i;
        }
#pragma unroll
        for (int off = kWarp / 2; off > 0; off >>= 1) {
          const float ov = __shfl_xor_sync(kFull, bv, off);
          const int oi = __shfl_xor_sync(kFull, bi, off);
          if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) bv = ov, bi = oi;
        }
        if (lane == 0) red_v[warp] = bv, red_i[warp] = bi;
        __syncthreads();
        if (tid == 0) {
          for (int w = 1; w < warps; ++w)
            if (red_i[w] >= 0 && (bi < 0 || red_v[w] > bv || (red_v[w] == bv && red_i[w] < bi)))
              bv = red_v[w], bi = red_i[w];
          if (bi >= 0 && bv > best_score) best_score = bv, best_t = t, best_beam = bi;  // strictly better
        }
      }
      if (t < a.horizon) {
        const int E = B * n;  // action expansions, flat index beam * n + action
        auto key_of = [&](int f) -> unsigned long long {
          const int i = f / n, ac = f - i * n;
          const float v = i < live ? __ldcg(cand + static_cast<size_t>(i) * (n + 1) + ac) : -INFINITY;
          return beam_key(v, static_cast<uint32_t>(f));
        };
        // radix select of the B-th largest key, 8 bits at a time from the top; stops as soon
        // as every key of the boundary bucket is needed
        unsigned long long prefix = 0, mask = 0;
        int need = B;
        for (int shift = 56; shift >= 0; shift -= 8) {
          for (int i = tid; i < 256; i += nt) hist[i] = 0;
          __syncthreads();
          for (int f0 = warp * kWarp; f0 < E; f0 += nt) {
            const int f = f0 + lane;
            int bin = 256 + lane;  // no bin: unique per lane
            if (f < E) {
              const unsigned long long k = key_of(f);
              if ((k & mask) == prefix) bin = static_cast<int>((k >> shift) & 255u);
            }
            const unsigned same = __match_any_sync(kFull, bin);
            if (bin < 256 && lane == __ffs(same) - 1) atomicAdd(&hist[bin], __popc(same));
          }
          __syncthreads();
          if (warp == 0) {  // lane l scans bins 255 - 8l down to 248 - 8l
            int cnt[8], sum = 0;
#pragma unroll
            for (int q = 0; q < 8; ++q) cnt[q] = hist[255 - (lane * 8 + q)], sum += cnt[q];
            int incl = sum;
#pragma unroll
            for (int off = 1; off < kWarp; off <<= 1) {
              const int up = __shfl_up_sync(kFull, incl, off);
              if (lane >= off) incl += up;
            }
            int above = incl - sum;
            if (above < need && need <= incl) {
#pragma unroll
              for (int q = 0; q < 8; ++q) {
                if (above + cnt[q] >= need) {
                  sh[0] = 255 - (lane * 8 + q), sh[1] = above, sh[2] = cnt[q];
                  break;
                }
                above += cnt[q];
              }
            }
          }
          __syncthreads();
          const int digit = sh[0], above = sh[1], in_bin = sh[2];
          prefix |= static_cast<unsigned long long>(digit) << shift;
          mask |= 255ull << shift;
          need -= above;
          __syncthreads();
          if (in_bin == need) break;
        }
        // the B kept keys (any order), then sorted descending
        if (tid == 0) sh[3] = 0;
        __syncthreads();
        for (int f0 = warp * kWarp; f0 < E; f0 += nt) {
          const int f = f0 + lane;
          unsigned long long k = 0;
          bool sel = false;
          if (f < E) {
            k = key_of(f);
            sel = (k & mask) >= prefix;
          }
          const unsigned bal = __ballot_sync(kFull, sel);
          int base = 0;
          if (lane == 0 && bal) base = atomicAdd(&sh[3], __popc(bal));
          base = __shfl_sync(kFull, base, 0);
          if (sel) keys[base + __popc(bal & ((1u << lane) - 1u))] = k;
        }
        for (int i = B + tid; i < a.sort_pow2; i += nt) keys[i] = 0ull;  // below every real key
        __syncthreads();
        for (int kk = 2; kk <= a.sort_pow2; kk <<= 1)
          for (int jj = kk >> 1; jj > 0; jj >>= 1) {
            for (int i = tid; i < a.sort_pow2; i += nt) {
              const int ixj = i ^ jj;
              if (ixj > i) {
                const unsigned long long x = keys[i], y = keys[ixj];
                if ((i & kk) == 0 ? x < y : x > y) keys[i] = y, keys[ixj] = x;
              }
            }
            __syncthreads();
          }
        // the next step's beams, in key order; finite scores first
        if (tid == 0) sh[4] = 0;
        __syncthreads();
        int finite = 0;
        for (int k = tid; k < B; k += nt) {
          const uint32_t flat = 0xFFFFFFFFu - static_cast<uint32_t>(keys[k] & 0xFFFFFFFFull);
          const int i = static_cast<int>(flat / n), ac = static_cast<int>(flat - i * n);
          const float v = i < live ? __ldcg(cand + static_cast<size_t>(i) * (n + 1) + ac) : -INFINITY;
          par[k] = i;
          tokn[k] = ac;
          bscore[k] = v;
          hist_par[static_cast<size_t>(t) * B + k] = i;
          hist_tok[static_cast<size_t>(t) * B + k] = ac;
          finite += v > -INFINITY ? 1 : 0;
        }
        if (finite) atomicAdd(&sh[4], finite);
        __syncthreads();
        if (tid == 0) a.live[p] = sh[4];
      }
    }
    plan_sync(a.blocks);
  }
  if (rank == 0 && tid == 0) {
    int64_t* out = a.out_actions + static_cast<size_t>(p) * a.horizon;
    const int len = best_t;
    for (int i = a.horizon - 1; i >= len; --i) out[i] = -1;
    int k = best_beam;
    for (int i = len - 1; i >= 0; --i) {
      out[i] = hist_tok[static_cast<size_t>(i) * B + k];
      k = hist_par[static_cast<size_t>(i) * B + k];
    }
    a.out_lengths[p] = len;
    a.out_scores[p] = best_score;
  }
}

// ---- the instantiated kernels, by tile (planner_sample.cu, planner_score.cu, planner_beam.cu) ----

using SampleFn = void (*)(Net, SampleArgs);
using ScoreFn = void (*)(Net, ScoreArgs);
using BeamFn = void (*)(Net, BeamArgs);

// The kernel for U units per lane, R candidates per warp and W_hh in shared memory (w_smem), or
// nullptr when that combination is not instantiated: U in {1, 2, 4}; R in {1, 8} (U <= 2) or
// {1, 4} (U = 4); beam search only R = 8 (4).
SampleFn sample_fn(int U, int R, bool w_smem);
SampleFn sample_pair_fn(int U, bool w_smem);  // two warps per candidate (M = 2)
ScoreFn score_fn(int U, int R, bool w_smem);
BeamFn beam_fn(int U, int R, bool w_smem);

// ---- draws ---------------------------------------------------------------------------------------

static __global__ void uniform_kernel(uint64_t seed, const int64_t* plan, const int64_t* candidate, int64_t numel,
                               uint32_t step, float* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = rng::uniform(rng::plan_key(seed, static_cast<uint32_t>(plan[i])), static_cast<uint32_t>(candidate[i]),
                          step);
}

}  // namespace cuda
}  // namespace glamor
