// Host side of the CUDA planner (planner_launch.h): reads the device's facts, takes the
// configuration and workspace layout from planner_config.h, and launches the kernels of
// planner_kernels.cuh (instantiated in planner_{sample,score,beam}.cu, three files that compile
// in parallel). Torch-free, so plain nvcc compiles it (`make cuda-check`).
#include "cuda/planner_launch.h"

#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>

#include "cuda/planner_config.h"

namespace glamor {
namespace cuda {
namespace {

// Driver queries and attribute changes happen once per device / kernel / size and are cached:
// none of them then runs inside a CUDA graph capture (the first, eager call makes them).
std::mutex cache_mutex;

// A first call for new sizes may still come during a capture. The queries and attribute changes
// are not stream work, but a capture in global mode (torch.cuda.graph's default) refuses
// "potentially unsafe" calls from any thread; this thread makes them in relaxed mode, as
// PyTorch's own guard (c10::cuda::CUDAStreamCaptureModeGuard) does. Outside a capture: no effect.
struct RelaxedCaptureMode {
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  RelaxedCaptureMode() { cudaThreadExchangeStreamCaptureMode(&mode); }
  ~RelaxedCaptureMode() { cudaThreadExchangeStreamCaptureMode(&mode); }
  RelaxedCaptureMode(const RelaxedCaptureMode&) = delete;
  RelaxedCaptureMode& operator=(const RelaxedCaptureMode&) = delete;
};

DeviceInfo device_info(int device) {
  static std::map<int, DeviceInfo> cache;
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto it = cache.find(device);
  if (it != cache.end()) return it->second;
  DeviceInfo di;
  int v = 0;
  RelaxedCaptureMode relaxed;
  const cudaError_t sms_err = cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device);
  if (sms_err == cudaSuccess) di.sms = v;
  const cudaError_t smem_err = cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (smem_err == cudaSuccess) di.smem_optin = static_cast<size_t>(v);
  if (sms_err != cudaSuccess || smem_err != cudaSuccess) {
    cudaGetLastError();  // our failed query's error, not left for the caller's next check
    return di;           // reported by the config; not cached
  }
  if (di.sms == 0) return di;
  cache[device] = di;
  return di;
}

int current_device() {
  int dev = 0;
  cudaGetDevice(&dev);
  return dev;
}

// Raises the kernel's dynamic shared-memory limit to at least `bytes` on the current device.
template <class Fn>
cudaError_t allow_smem(Fn fn, size_t bytes) {
  static std::map<std::pair<const void*, int>, size_t> done;
  const void* key = reinterpret_cast<const void*>(fn);
  const int dev = current_device();
  std::lock_guard<std::mutex> lock(cache_mutex);
  size_t& have = done[{key, dev}];
  if (bytes <= have) return cudaSuccess;
  RelaxedCaptureMode relaxed;
  const cudaError_t err =
      cudaFuncSetAttribute(key, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (err == cudaSuccess) have = bytes;
  return err;
}

}  // namespace

// ---- sampling ------------------------------------------------------------------------------------

Config sample_config(const Problem& pr, int N, int horizon, const Options& opt, int device) {
  return sample_config_for(pr, N, horizon, opt, device_info(device));
}

cudaError_t sample_launch(const Config& cfg, const Problem& pr, int N, int horizon, uint64_t seed,
                          const int64_t* plan_keys, void* workspace,
                          int64_t* actions, int64_t* lengths, float* scores, cudaStream_t stream) {
  SampleFn fn = cfg.pair ? sample_pair_fn(cfg.U, cfg.w_smem) : sample_fn(cfg.U, cfg.R, cfg.w_smem);
  if (fn == nullptr) return cudaErrorInvalidConfiguration;
  cudaError_t err = allow_smem(fn, cfg.smem_bytes);
  if (err != cudaSuccess) return err;
  const SampleArgs a = sample_args(cfg, pr, N, horizon, seed, plan_keys, workspace, nullptr);
  fn<<<dim3(cfg.chunks, pr.P), cfg.warps * kWarp, cfg.smem_bytes, stream>>>(make_net(pr), a);
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  sample_finalize<<<pr.P, 128, 0, stream>>>(a, actions, lengths, scores);
  return cudaGetLastError();
}

// ---- scoring -------------------------------------------------------------------------------------

Config score_config(const Problem& pr, int N, int L, const Options& opt, int device) {
  (void)L;
  return candidate_config(pr, N, opt, device_info(device));
}

cudaError_t score_launch(const Config& cfg, const Problem& pr, int N, int L, const int64_t* actions,
                         const int64_t* lengths, float* out, cudaStream_t stream) {
  ScoreFn fn = score_fn(cfg.U, cfg.R, cfg.w_smem);
  if (fn == nullptr) return cudaErrorInvalidConfiguration;
  cudaError_t err = allow_smem(fn, cfg.smem_bytes);
  if (err != cudaSuccess) return err;
  ScoreArgs a;
  a.N = N, a.L = L, a.chunk = cfg.chunk, a.chunks = cfg.chunks, a.actions = actions, a.lengths = lengths, a.out = out;
  fn<<<dim3(cfg.chunks, pr.P), cfg.warps * kWarp, cfg.smem_bytes, stream>>>(make_net(pr), a);
  return cudaGetLastError();
}

// ---- beam search ---------------------------------------------------------------------------------

Config beam_config(const Problem& pr, int B, int horizon, const Options& opt, int device) {
  Config cfg = beam_config_for(pr, B, horizon, opt, device_info(device));
  if (!cfg.error.empty() || cfg.blocks == 1) return cfg;
  // can a cluster of this many blocks (one per SM, for their shared memory) be scheduled?
  // (asked once per kernel, cluster size, shared memory and device)
  BeamFn fn = beam_fn(cfg.U, cfg.R, cfg.w_smem);
  static std::map<std::tuple<const void*, int, size_t, int, int>, std::pair<cudaError_t, int>> asked;
  const auto key = std::make_tuple(reinterpret_cast<const void*>(fn), cfg.blocks, cfg.smem_bytes, cfg.warps, device);
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = asked.find(key);
    if (it != asked.end()) {
      if (it->second.first != cudaSuccess || it->second.second < 1) {
        if (opt.blocks > 1) {
          cfg.error = str("a cluster of %lld blocks with %lld bytes of shared memory each cannot be scheduled on "
                          "this device (GLAMOR_CUDA_BEAM_BLOCKS)",
                          cfg.blocks, static_cast<long long>(cfg.smem_bytes));
          return cfg;
        }
        cfg.blocks = 1;
      }
      return cfg;
    }
  }
  int clusters = 0;
  cudaError_t err = fn ? allow_smem(fn, cfg.smem_bytes) : cudaErrorInvalidConfiguration;
  if (err == cudaSuccess) {
    cudaLaunchConfig_t lc = {};
    lc.gridDim = dim3(pr.P * cfg.blocks);
    lc.blockDim = dim3(cfg.warps * kWarp);
    lc.dynamicSmemBytes = cfg.smem_bytes;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = cfg.blocks;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    lc.attrs = attr;
    lc.numAttrs = 1;
    RelaxedCaptureMode relaxed;
    err = cudaOccupancyMaxActiveClusters(&clusters, reinterpret_cast<const void*>(fn), &lc);
  }
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    asked[key] = {err, clusters};
  }
  if (err != cudaSuccess || clusters < 1) {
    if (err != cudaSuccess) cudaGetLastError();  // clear our query's error only, not one of the caller's
    if (opt.blocks > 1) {
      cfg.error = str("a cluster of %lld blocks with %lld bytes of shared memory each cannot be scheduled on this "
                      "device (GLAMOR_CUDA_BEAM_BLOCKS): ",
                      cfg.blocks, static_cast<long long>(cfg.smem_bytes));
      cfg.error += err != cudaSuccess ? cudaGetErrorString(err) : "no active cluster fits";
      return cfg;
    }
    cfg.blocks = 1;
  }
  return cfg;
}

cudaError_t beam_launch(const Config& cfg, const Problem& pr, int B, int horizon, void* workspace, int64_t* actions,
                        int64_t* lengths, float* scores, cudaStream_t stream) {
  BeamFn fn = beam_fn(cfg.U, cfg.R, cfg.w_smem);
  if (fn == nullptr) return cudaErrorInvalidConfiguration;
  cudaError_t err = allow_smem(fn, cfg.smem_bytes);
  if (err != cudaSuccess) return err;
  BeamArgs a = beam_args(cfg, pr, B, horizon, workspace, nullptr);
  a.out_actions = actions, a.out_lengths = lengths, a.out_scores = scores;
  const Net net = make_net(pr);
  if (cfg.blocks == 1) {
    fn<<<pr.P, cfg.warps * kWarp, cfg.smem_bytes, stream>>>(net, a);
    return cudaGetLastError();
  }
  cudaLaunchConfig_t lc = {};
  lc.gridDim = dim3(pr.P * cfg.blocks);
  lc.blockDim = dim3(cfg.warps * kWarp);
  lc.dynamicSmemBytes = cfg.smem_bytes;
  lc.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = cfg.blocks;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  lc.attrs = attr;
  lc.numAttrs = 1;
  err = cudaLaunchKernelEx(&lc, fn, net, a);
  if (err != cudaSuccess) return err;
  return cudaGetLastError();
}

// ---- draws ---------------------------------------------------------------------------------------

cudaError_t uniform_launch(uint64_t seed, const int64_t* plan, const int64_t* candidate, int64_t numel, uint32_t step,
                           float* out, cudaStream_t stream) {
  if (numel == 0) return cudaSuccess;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>(ceil_div(numel, threads), 4096);
  uniform_kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(seed, plan, candidate, numel, step, out);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace glamor
