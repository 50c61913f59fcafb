"""The C allocator's settings for a training process on a CPU (glibc's malloc only).

A training update allocates and frees the same large blocks every time: the encoders'
activations and their gradients, 1 to 30 MB each at the CPU presets' sizes. glibc's malloc maps
blocks from 128 kB up with mmap until a freed one raises that threshold (to at most 32 MB), and
gives the free memory at the top of its heap back to the kernel (trims it) once it exceeds twice
the threshold. An update frees far more than that, so the next one asks the kernel for the same
pages again: thousands of page faults per update (2k to 6k at the demo's sizes, 6k to 15k at
atari_cpu's and control_cpu's), each a fresh page the kernel zeroes: 5 to 10% of the update's
time.

`keep_freed_memory()` fixes both thresholds: blocks under 32 MB come from the heap, and up to
256 MB of freed memory stays mapped for the next update (the process's peak memory barely
moves: an update needs those pages again anyway). Blocks of 32 MB and more (a large replay,
numpy's zeros of it) are still mapped on their own and still take their pages only as they are
written. It changes where memory comes from, not what is computed: torch's CPU tensors are
aligned to 64 bytes either way. `benchmarks/bench_malloc.py` times it.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 256 << 20

# the user's own settings win: glibc reads these at the start (MALLOC_*_ are its older names)
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
TUNABLES = ("glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold", "glibc.malloc.top_pad")


def keep_freed_memory() -> bool:
    """Set glibc malloc's mmap and trim thresholds for training (see the module docstring), once
    per process; returns whether they are set. Does nothing (False) off Linux, with another C
    library, or where the environment sets malloc's thresholds itself (MALLOC_MMAP_THRESHOLD_,
    MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_ or those GLIBC_TUNABLES)."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in USER_SETTINGS) or any(
            t in os.environ.get("GLIBC_TUNABLES", "") for t in TUNABLES):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # (1 on success; the mmap threshold first: setting either turns glibc's own adjustment off)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
