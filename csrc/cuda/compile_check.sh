#!/usr/bin/env bash
# The CUDA compile check of `make cuda-check` (and so `make test` and CI), for machines without
# a GPU or a CUDA build of torch: nvcc compiles every csrc/cuda/*.cu for sm_90. They are
# torch-free (the torch wrappers are csrc/cuda/*.cpp, built only into the CUDAExtension), so
# this covers every kernel and launch; it prints ptxas' register / shared-memory / spill report
# per kernel and keeps it in build/cuda-check/; then links the objects into one shared library
# (duplicate or missing device symbols show there). Skipped, with a message, when nvcc is absent.
#
# Optionally, with TORCH_CUDA_INCLUDE set to the include folder of a CUDA build of torch (e.g. a
# separate venv's .../site-packages/torch/include; torch 2.14.1+cu130 installs from this disk),
# g++ also compiles the torch wrappers (csrc/cuda/*.cpp, csrc/ops.cpp with GLAMOR_WITH_CUDA).
#
# Usage: csrc/cuda/compile_check.sh [OUT_DIR]   (NVCC=/path/to/nvcc to choose the compiler)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build/cuda-check}
nvcc=${NVCC:-$(command -v nvcc || true)}
if [[ -z "$nvcc" && -x /usr/local/cuda/bin/nvcc ]]; then nvcc=/usr/local/cuda/bin/nvcc; fi
if [[ -z "$nvcc" ]]; then
  echo "cuda-check: SKIPPED (nvcc not found; set NVCC or put it on the PATH)"
  exit 0
fi
mkdir -p "$out"
rm -f "$out"/*.o "$out"/*.ptxas.txt "$out"/*.so
echo "cuda-check: $("$nvcc" --version | tail -n 2 | head -n 1), -arch=sm_90"
status=0
for cu in csrc/cuda/*.cu; do
  name=$(basename "$cu" .cu)
  if ! "$nvcc" -std=c++17 -O3 -fmad=false -arch=sm_90 -lineinfo -Xcompiler -fPIC -Icsrc -Xptxas -v -c "$cu" -o "$out/$name.o" \
      2> "$out/$name.ptxas.txt"; then
    grep -v "^ptxas info" "$out/$name.ptxas.txt" >&2 || true
    echo "cuda-check: FAILED compiling $cu" >&2
    status=1
    continue
  fi
  python3 - "$out/$name.ptxas.txt" "$cu" <<'PY'
import re, shutil, subprocess, sys
path, src = sys.argv[1], sys.argv[2]
rows, cur, stack = [], None, ("0", "0", "0")
for line in open(path):
    if m := re.search(r"Compiling entry function '(\w+)'", line):
        cur = m.group(1)
    elif m := re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line):
        stack = m.groups()
    elif (m := re.search(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?", line)) and cur:
        rows.append([cur, m.group(1), m.group(2) or "0", *stack])
        cur, stack = None, ("0", "0", "0")
if shutil.which("c++filt") and rows:
    names = subprocess.run(["c++filt"], input="\n".join(r[0] for r in rows), capture_output=True, text=True).stdout.split("\n")
    for r, n in zip(rows, names):
        r[0] = re.sub(r"\(.*", "", n.replace("glamor::cuda::", "")).replace("void ", "")
print(f"{src}: {len(rows)} kernels (registers, static smem bytes, stack bytes, spill stores/loads bytes)")
for name, regs, smem, st, ss, sl in sorted(rows):
    flag = "  <- spills" if int(ss) or int(sl) else ""
    print(f"  {name:32s} regs {regs:>3s}  smem {smem:>5s}  stack {st:>4s}  spill {ss}/{sl}{flag}")
PY
done
if [[ $status -eq 0 ]] && ! "$nvcc" -arch=sm_90 -shared -o "$out/libglamor_cuda_check.so" "$out"/*.o; then
  echo "cuda-check: FAILED linking the objects" >&2
  status=1
fi
if [[ $status -eq 0 && -n "${TORCH_CUDA_INCLUDE:-}" ]]; then
  std=-std=c++17
  grep -q "C++20 or later" "$TORCH_CUDA_INCLUDE/ATen/ATen.h" 2>/dev/null && std=-std=c++20
  cuda_home=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
  [[ -d $cuda_home/include ]] || cuda_home=/usr/local/cuda
  pyinc=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  for src in csrc/cuda/*.cpp csrc/ops.cpp; do
    if ! g++ $std -fsyntax-only -Wall -DGLAMOR_WITH_CUDA -DTORCH_API_INCLUDE_EXTENSION_H \
        -DTORCH_EXTENSION_NAME=_C -Icsrc -I"$TORCH_CUDA_INCLUDE" \
        -I"$TORCH_CUDA_INCLUDE/torch/csrc/api/include" -I"$cuda_home/include" -I/usr/local/cuda/include \
        -I"$pyinc" "$src"; then
      echo "cuda-check: FAILED compiling the torch wrapper $src" >&2
      status=1
    fi
  done
  [[ $status -eq 0 ]] && echo "cuda-check: torch wrappers compile against $TORCH_CUDA_INCLUDE ($std)"
fi
if [[ $status -eq 0 ]]; then echo "cuda-check: PASSED (objects and reports in $out)"; fi
exit $status
