// A small SIMT emulator: runs the CUDA planner kernels (csrc/cuda/*.cuh) on the CPU, so that
// machines without a GPU test their logic (indexing, warp collectives, barriers, the slot refill,
// the radix select and sort, the cluster phases) against the CPU ops.
//
// Every CUDA thread is a fiber (ucontext) on one OS thread; a block (or a cluster of blocks) runs
// until all its threads finish. Warp collectives (__shfl*_sync, __ballot_sync, __match_any_sync,
// __syncwarp) exchange values among the 32 lanes at a per-warp barrier, __syncthreads is a
// per-block barrier and cluster_sync a per-cluster one. The emulator aborts with a message when
// lanes of a warp meet at different collectives (divergence: undefined on the GPU), when a mask
// is not full, or when no thread can make progress (a deadlock). Dynamic shared memory is filled
// with NaN bytes, so a read of shared memory nothing wrote shows as NaN in the results. Threads
// are scheduled in a random order, so order-dependent results (atomics) vary between runs.
//
// What it does not model: timing, memory ordering between blocks (blocks run one at a time,
// except the blocks of one cluster), bank conflicts, and real floating-point intrinsics
// (__expf is expf here, so results match the GPU's to rounding only).
//
// Include before the kernel headers, with GLAMOR_CUDA_EMULATION defined.
#pragma once

#include <ucontext.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct alignas(16) float4 {
  float x, y, z, w;
};

namespace glamor_emu {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

inline Dim3 threadIdx, blockIdx, blockDim, gridDim;

[[noreturn]] inline void die(const std::string& msg) {
  std::fprintf(stderr, "cuda_emu: %s\n", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

struct Barrier {
  int arrived = 0;
  uint64_t gen = 0;
  long kind = -1;  // the collective (type and call line) the first arrival is at
};

struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  Dim3 tid, bid;
  int block = 0;  // index within the group
  int warp = 0;   // index within the group
  bool done = false;
  std::string waiting;  // what it waits for (for the deadlock report)
};

struct Group {
  std::vector<Fiber> fibers;
  std::vector<Barrier> warp_bars, block_bars;
  std::vector<std::vector<Barrier>> named_bars;  // (block, id): bar.sync id, count
  Barrier cluster_bar;
  std::vector<uint64_t> slots;  // (warps, 2, 32) values exchanged at warp collectives
  std::vector<std::vector<float4>> smem;
  std::function<void()> body;
  ucontext_t sched;
  int current = -1;
  uint64_t progress = 0;
  int threads_per_block = 0;
};

inline Group* g = nullptr;

inline Fiber& me() { return g->fibers[g->current]; }

inline void yield() {
  Fiber& f = me();
  swapcontext(&f.ctx, &g->sched);
}

inline void* dynamic_smem() { return g->smem[me().block].data(); }

inline void wait_gen(Barrier& b, uint64_t gen, const char* what) {
  while (b.gen == gen) {
    me().waiting = what;
    yield();
  }
  me().waiting.clear();
}

// All 32 lanes of this thread's warp deposit `value` and get every lane's value in `all`.
inline void exchange(long kind, uint64_t value, uint64_t* all, unsigned mask) {
  if (mask != 0xFFFFFFFFu) die("a warp collective with a partial mask (the kernels use full warps only)");
  Fiber& f = me();
  const int lane = static_cast<int>(f.tid.x % 32);
  Barrier& b = g->warp_bars[f.warp];
  if (b.arrived == 0) b.kind = kind;
  else if (b.kind != kind)
    die("lanes of warp " + std::to_string(f.warp) + " meet at different collectives (lines " +
        std::to_string(b.kind / 16) + " and " + std::to_string(kind / 16) + "): divergence");
  const uint64_t gen = b.gen;
  uint64_t* slot = g->slots.data() + (static_cast<size_t>(f.warp) * 2 + (gen & 1)) * 32;
  slot[lane] = value;
  ++g->progress;
  if (++b.arrived == 32) {
    b.arrived = 0;
    b.kind = -1;
    ++b.gen;
  } else {
    wait_gen(b, gen, "a warp collective");
  }
  std::memcpy(all, slot, 32 * sizeof(uint64_t));
}

inline void block_barrier() {
  Fiber& f = me();
  Barrier& b = g->block_bars[f.block];
  const uint64_t gen = b.gen;
  ++g->progress;
  if (++b.arrived == g->threads_per_block) {
    b.arrived = 0;
    ++b.gen;
  } else {
    wait_gen(b, gen, "__syncthreads");
  }
}

// bar.sync id, count: the first `count` threads of the block to arrive at barrier `id`.
inline void named_barrier(int id, int count) {
  Fiber& f = me();
  if (id < 0 || id >= 16 || count % 32 != 0) die("bad named barrier " + std::to_string(id));
  Barrier& b = g->named_bars[f.block][id];
  const uint64_t gen = b.gen;
  ++g->progress;
  if (++b.arrived == count) {
    b.arrived = 0;
    ++b.gen;
  } else {
    wait_gen(b, gen, "a named barrier");
  }
}

inline void cluster_sync() {
  Barrier& b = g->cluster_bar;
  const uint64_t gen = b.gen;
  ++g->progress;
  if (++b.arrived == static_cast<int>(g->fibers.size())) {
    b.arrived = 0;
    ++b.gen;
  } else {
    wait_gen(b, gen, "cluster_sync");
  }
}

inline void trampoline() {
  g->body();
  me().done = true;
  ++g->progress;
  swapcontext(&me().ctx, &g->sched);
}

// Runs `blocks` blocks of `threads` threads together (a cluster, or one block), block b with
// blockIdx = block_index(b), each with `smem_bytes` of dynamic shared memory, calling body().
inline void run(int blocks, int threads, size_t smem_bytes, const std::function<Dim3(int)>& block_index,
                const std::function<void()>& body) {
  if (threads % 32 != 0 || threads <= 0) die("blockDim.x must be a positive multiple of 32");
  Group grp;
  g = &grp;
  grp.body = body;
  grp.threads_per_block = threads;
  grp.fibers.resize(static_cast<size_t>(blocks) * threads);
  grp.warp_bars.resize(static_cast<size_t>(blocks) * threads / 32);
  grp.block_bars.resize(blocks);
  grp.named_bars.assign(blocks, std::vector<Barrier>(16));
  grp.slots.assign(grp.warp_bars.size() * 2 * 32, 0);
  grp.smem.resize(blocks);
  for (auto& s : grp.smem) {
    s.resize((smem_bytes + 15) / 16);
    std::memset(static_cast<void*>(s.data()), 0xFF, s.size() * sizeof(float4));  // NaN everywhere
  }
  blockDim = Dim3{static_cast<unsigned>(threads), 1, 1};
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < threads; ++t) {
      Fiber& f = grp.fibers[static_cast<size_t>(b) * threads + t];
      f.tid = Dim3{static_cast<unsigned>(t), 0, 0};
      f.bid = block_index(b);
      f.block = b;
      f.warp = (b * threads + t) / 32;
      f.stack.resize(256 * 1024);
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = f.stack.data();
      f.ctx.uc_stack.ss_size = f.stack.size();
      f.ctx.uc_link = nullptr;
      makecontext(&f.ctx, trampoline, 0);
    }
  // Threads run in a fresh random order on every pass, so that results which depend on the order
  // of atomics or on a missing barrier differ from run to run (CUDA_EMU_SEED sets the seed).
  static std::mt19937 rng(std::getenv("CUDA_EMU_SEED") ? std::atoi(std::getenv("CUDA_EMU_SEED")) : 12345);
  std::vector<size_t> order(grp.fibers.size());
  std::iota(order.begin(), order.end(), size_t{0});
  for (;;) {
    const uint64_t before = grp.progress;
    bool all_done = true;
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t i : order) {
      Fiber& f = grp.fibers[i];
      if (f.done) continue;
      all_done = false;
      grp.current = static_cast<int>(i);
      threadIdx = f.tid;
      blockIdx = f.bid;
      swapcontext(&grp.sched, &f.ctx);
    }
    if (all_done) break;
    if (grp.progress == before) {
      std::string msg = "deadlock: no thread can go on;";
      int shown = 0;
      for (size_t i = 0; i < grp.fibers.size() && shown < 8; ++i)
        if (!grp.fibers[i].done) {
          msg += " block " + std::to_string(grp.fibers[i].block) + " thread " + std::to_string(grp.fibers[i].tid.x) +
                 " waits at " + grp.fibers[i].waiting + ";";
          ++shown;
        }
      die(msg);
    }
  }
  g = nullptr;
}

// ---- CUDA builtins used by the kernels ---------------------------------------------------------

template <class T>
inline uint64_t pack(T v) {
  static_assert(sizeof(T) <= 8, "");
  uint64_t u = 0;
  std::memcpy(&u, &v, sizeof(T));
  return u;
}

template <class T>
inline T unpack(uint64_t u) {
  T v;
  std::memcpy(&v, &u, sizeof(T));
  return v;
}

inline int lane_id() { return static_cast<int>(me().tid.x % 32); }

}  // namespace glamor_emu

using glamor_emu::blockDim;
using glamor_emu::blockIdx;
using glamor_emu::gridDim;
using glamor_emu::threadIdx;

enum : long { kEmuSyncwarp = 1, kEmuShfl, kEmuShflXor, kEmuShflUp, kEmuBallot, kEmuMatch };

inline void __syncwarp(unsigned mask = 0xFFFFFFFFu, int line = __builtin_LINE()) {
  uint64_t all[32];
  glamor_emu::exchange(line * 16L + kEmuSyncwarp, 0, all, mask);
}

inline void __syncthreads() { glamor_emu::block_barrier(); }

template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32, int line = __builtin_LINE()) {
  uint64_t all[32];
  glamor_emu::exchange(line * 16L + kEmuShfl, glamor_emu::pack(v), all, mask);
  const int lane = glamor_emu::lane_id();
  return glamor_emu::unpack<T>(all[(lane & ~(width - 1)) + (src & (width - 1))]);
}

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, int line = __builtin_LINE()) {
  uint64_t all[32];
  glamor_emu::exchange(line * 16L + kEmuShflXor, glamor_emu::pack(v), all, mask);
  const int lane = glamor_emu::lane_id(), src = lane ^ lane_mask;
  return glamor_emu::unpack<T>(all[(src / width == lane / width) ? src : lane]);
}

template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, int line = __builtin_LINE()) {
  uint64_t all[32];
  glamor_emu::exchange(line * 16L + kEmuShflUp, glamor_emu::pack(v), all, mask);
  const int lane = glamor_emu::lane_id();
  return glamor_emu::unpack<T>(all[(lane % width) >= static_cast<int>(delta) ? lane - static_cast<int>(delta) : lane]);
}

inline unsigned __ballot_sync(unsigned mask, int pred, int line = __builtin_LINE()) {
  uint64_t all[32];
  glamor_emu::exchange(line * 16L + kEmuBallot, pred ? 1 : 0, all, mask);
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= (all[i] ? 1u : 0u) << i;
  return r;
}

inline unsigned __match_any_sync(unsigned mask, int v, int line = __builtin_LINE()) {
  uint64_t all[32];
  glamor_emu::exchange(line * 16L + kEmuMatch, glamor_emu::pack(v), all, mask);
  const uint64_t mine = all[glamor_emu::lane_id()];
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= (all[i] == mine ? 1u : 0u) << i;
  return r;
}

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(unsigned x) { return __builtin_ffs(static_cast<int>(x)); }
inline int atomicAdd(int* p, int v) {
  const int old = *p;
  *p = v + old;
  return old;
}
template <class T>
inline T __ldg(const T* p) {
  return *p;
}
template <class T>
inline T __ldcg(const T* p) {
  return *p;
}
inline void __threadfence() {}
[[noreturn]] inline void __trap() { glamor_emu::die("__trap"); }
inline float __expf(float x) { return std::exp(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline unsigned __float_as_uint(float x) { return glamor_emu::unpack<unsigned>(glamor_emu::pack(x)); }
inline float __int_as_float(int x) { return glamor_emu::unpack<float>(glamor_emu::pack(x)); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
