"""A quick, verbose check of the CUDA planner ops against the CPU ops: one line per call.

Used by benchmarks/gpu_check.sh before the test suite (a first diagnosis in seconds) and, with
--small, under compute-sanitizer. Every call is synchronised and compared with the CPU op on
the same inputs (actions and lengths exact, scores 1e-4 relative); each call prints its kernel
configuration (GLAMOR_CUDA_VERBOSE=1). After a CUDA error the context is unusable, so the
script stops there. Exit code 1 when any call failed or differed.

Example:
    python benchmarks/gpu_smoke.py            # all kernel variants, a few seconds
    compute-sanitizer --tool memcheck python benchmarks/gpu_smoke.py --small
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

import torch

from glamor import ops
from glamor.planning.inputs import PlanningInputs


def inputs(M, P, n, H, seed=0) -> PlanningInputs:
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    return PlanningInputs(
        r(M, P, n + 1, 4 * H, scale=0.5),
        r(M, P, H, scale=0.5),
        r(M, P, H, scale=0.5),
        r(M, 4 * H, H, scale=H**-0.5),
        r(M, n + 2, H, scale=2 * H**-0.5),
        r(M, n + 2, scale=0.5),
    )


def calls(small: bool):
    """(name, env overrides, function of device -> outputs)."""
    out = []

    def add(name, env, M, P, n, H, op, **kw):
        inp = inputs(M, P, n, H, seed=len(out))

        def fn(dev, inp=inp):
            x = PlanningInputs(*(t.to(dev) for t in inp.tensors()))
            if op == "sample":
                return ops.sample_plans(x, kw["N"], kw["T"], 7, 0.99, kw.get("clip"))
            if op == "beam":
                return ops.beam_search(x, kw["N"], kw["T"], 0.95, kw.get("clip"))
            g = torch.Generator().manual_seed(1)
            acts = torch.randint(0, n, (P, kw["N"], kw["T"]), generator=g).to(dev)
            lens = torch.randint(1, kw["T"] + 1, (P, kw["N"]), generator=g).to(dev)
            return ops.score_plans(x, acts, lens, 0.99, kw.get("clip"))

        label = f"{op} M{M} P{P} n{n} H{H} " + " ".join(f"{k}={v}" for k, v in kw.items())
        out.append((label, env, fn))

    t1, t8, wg = {"GLAMOR_CUDA_TILE": "1"}, {"GLAMOR_CUDA_TILE": "8"}, {"GLAMOR_CUDA_W_GLOBAL": "1"}
    add("", {}, 2, 2, 5, 16, "sample", N=33, T=6)  # two warps per candidate (auto)
    add("", t1, 2, 2, 5, 16, "sample", N=33, T=6)
    add("", t8, 2, 2, 5, 16, "sample", N=33, T=6)
    add("", {}, 2, 2, 5, 16, "beam", N=40, T=6)
    add("", {"GLAMOR_CUDA_BEAM_BLOCKS": "2"}, 2, 1, 5, 16, "beam", N=40, T=6, clip=-2.0)
    add("", t1, 1, 3, 4, 33, "score", N=20, T=7)
    add("", t8, 1, 3, 4, 33, "score", N=20, T=7)
    add("", t1, 2, 1, 3, 100, "sample", N=9, T=4)
    add("", {}, 2, 1, 3, 100, "beam", N=16, T=4)
    if small:
        return out
    add("", {}, 2, 1, 18, 64, "sample", N=200, T=50)  # the paper's configuration (pairs)
    add("", t1, 2, 1, 18, 64, "sample", N=200, T=50)
    add("", t8, 2, 4, 18, 64, "sample", N=200, T=20)
    add("", wg, 2, 2, 18, 64, "sample", N=64, T=12)
    add("", {}, 2, 1, 18, 64, "beam", N=200, T=20)
    add("", {"GLAMOR_CUDA_BEAM_BLOCKS": "1"}, 2, 2, 18, 64, "beam", N=300, T=5)
    add("", {"GLAMOR_CUDA_BEAM_BLOCKS": "4"}, 2, 2, 18, 64, "beam", N=300, T=5)
    add("", {"GLAMOR_CUDA_BEAM_BLOCKS": "8"}, 2, 1, 18, 64, "beam", N=2049, T=3)
    add("", wg, 1, 2, 18, 64, "beam", N=64, T=8)
    add("", {}, 2, 3, 18, 128, "sample", N=50, T=8)
    add("", t8, 2, 3, 18, 128, "sample", N=50, T=8)
    add("", {}, 2, 2, 18, 128, "beam", N=50, T=6)
    add("", {}, 2, 64, 18, 64, "score", N=200, T=30)
    return out


def compare(got, want) -> str:
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        a = a.cpu()
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"output {i}: {a.dtype}{tuple(a.shape)} vs {b.dtype}{tuple(b.shape)}"
        if a.is_floating_point():
            ok = torch.isclose(a, b, rtol=1e-4, atol=1e-4)
            if not bool(ok.all()):
                d = (a.double() - b.double()).abs().max().item()
                return f"scores differ (max |diff| {d:.3g}) at {(~ok).nonzero().tolist()[:4]}"
        elif not torch.equal(a, b):
            bad = (a != b).reshape(a.shape[0], -1).any(dim=1).nonzero().flatten().tolist()
            return f"output {i} differs for plans {bad[:8]}: cuda {a[bad[:2]].tolist()} cpu {b[bad[:2]].tolist()}"
    return ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", action="store_true", help="a few small calls (for the sanitizers)")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("SMOKE: no CUDA device")
        return 1
    if not torch._C._dispatch_has_kernel_for_dispatch_key("glamor::beam_search", "CUDA"):
        print(f"SMOKE: glamor._C has no CUDA kernels (import error: {ops.import_error()})")
        return 1
    os.environ["GLAMOR_CUDA_VERBOSE"] = "1"
    failed = 0
    for label, env, fn in calls(args.small):
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        tag = " ".join(f"{k.replace('GLAMOR_CUDA_', '')}={v}" for k, v in env.items())
        try:
            want = fn("cpu")
            got = fn("cuda")
            torch.cuda.synchronize()
            msg = compare(got, want)
            print(f"{'ok  ' if not msg else 'DIFF'} {label} {tag} {msg}", flush=True)
            failed += bool(msg)
        except Exception as e:  # noqa: BLE001 - report and decide whether to go on
            failed += 1
            print(f"ERR  {label} {tag}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(limit=3)
            if "CUDA error" in str(e) or type(e).__name__ == "AcceleratorError":
                print("SMOKE: CUDA error; the context is unusable, stopping here", flush=True)
                return 1
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    # the draws
    plan, cand = torch.arange(5).view(5, 1), torch.arange(300).view(1, 300)
    u_cpu = ops.uniform(11, plan, cand, 3)
    u_gpu = ops.uniform(11, plan.cuda(), cand.cuda(), 3).cpu()
    same = torch.equal(u_cpu, u_gpu)
    print(f"{'ok  ' if same else 'DIFF'} uniform bit for bit")
    failed += not same
    print(f"SMOKE: {'PASSED' if not failed else f'{failed} FAILED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
