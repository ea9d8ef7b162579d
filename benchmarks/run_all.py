#!/usr/bin/env python
"""The whole benchmark suite: IPMix, fractals, loaders (torch, FFCV, DALI), then the report.

    python benchmarks/run_all.py                 # full suite (make bench), ~15-30 min
    python benchmarks/run_all.py --quick         # small runs, a few minutes on 2 cores
    python benchmarks/run_all.py --only ipmix,pipelines --quick
    python benchmarks/run_all.py --report-only   # README + plots from the newest JSON files
    python benchmarks/run_all.py --dry-run       # print the commands, run nothing

Each benchmark runs as its own process (``benchmarks/bench_*.py``; each does a warm-up and
the median of several runs, JIT compile reported apart) and writes its JSON to
``benchmarks/results/`` with the command, git SHA, versions, CPU model, core count and GPU.
This script adds ``suite-<time>.json`` (the steps, their files, wall times and failures),
then runs :mod:`benchmarks.report`, which rewrites the README's block between
``<!-- bench:begin -->`` and ``<!-- bench:end -->`` and ``benchmarks/plots/*.png``.
A failed step is reported and the others still run; the exit status is then 1.
Steps: ``ipmix`` (with size / batch / thread sweeps), ``ops`` (per image op), ``fractals``,
``pipelines`` (torch and FFCV at 1..all workers), ``dali`` (DALI CPU at 1..all threads; DALI
GPU too when CUDA is visible), ``gpu`` (the Triton renderer, only when CUDA is visible).
Timings are only as good as the machine is quiet: stop other jobs first.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import RESULTS, write_result  # noqa: E402
from fractal_store.store import default_workers  # noqa: E402
from ipmix_train.runinfo import run_metadata  # noqa: E402

STEPS = ("ipmix", "ops", "fractals", "pipelines", "dali", "gpu")


def core_counts(n: int) -> str:
    """1, 2, 4, ... below ``n``, then ``n`` itself, as a comma list: ``"1,2,4,6"`` for 6."""
    counts, c = [], 1
    while c < n:
        counts.append(c)
        c *= 2
    return ",".join(map(str, [*counts, n]))


def cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def commands(steps: list[str], quick: bool) -> list[tuple[str, list[str]]]:
    """(step, argv) for each selected step; paths relative to the repository root."""
    cores = core_counts(default_workers())
    q = ["--quick"] if quick else []
    out = []
    for step in steps:
        if step == "ipmix":
            sizes = "128,160,192,224,256"
            batches = "16,32,64" if quick else "8,16,32,64,128,256"
            extra = ["--no-compile"] if quick else []
            args = [*q, *extra, "--sizes", sizes, "--batches", batches, "--threads", cores]
            out.append((step, ["benchmarks/bench_ipmix.py", *args]))
        elif step == "ops":
            out.append((step, ["benchmarks/bench_ops.py", *q, "--no-compile"]))
        elif step == "fractals":
            out.append((step, ["benchmarks/bench_fractals.py", *q]))
        elif step == "pipelines":
            betons = ["--betons", "jpg"] if quick else []
            out.append((step, ["benchmarks/bench_pipelines.py", *q, *betons, "--workers", cores]))
        elif step == "dali":
            if importlib.util.find_spec("nvidia.dali") is None:
                print("run_all: nvidia-dali is not installed; skipping the DALI step")
                continue
            out.append((step, ["benchmarks/bench_dali.py", *q, "--threads", cores]))
            if cuda_available():
                out.append(("dali_gpu", ["benchmarks/bench_dali.py", *q, "--device", "gpu"]))
        elif step == "gpu":
            if not cuda_available():
                print("run_all: no CUDA GPU; skipping the Triton renderer step (unmeasured)")
                continue
            out.append((step, ["benchmarks/bench_gpu_ipmix.py", *q]))
    return out


def run_step(argv: list[str]) -> tuple[int, float, list[str]]:
    """Run one benchmark (output streamed); (exit code, seconds, new result files)."""
    before = set(RESULTS.glob("*.json"))
    t0 = time.perf_counter()
    code = subprocess.run([sys.executable, *argv], cwd=ROOT).returncode
    new = sorted(p.name for p in set(RESULTS.glob("*.json")) - before)
    return code, time.perf_counter() - t0, new


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small runs (a few minutes)")
    p.add_argument("--only", default=",".join(STEPS), help=f"comma list of {', '.join(STEPS)}")
    p.add_argument("--report-only", action="store_true", help="regenerate README + plots only")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    steps = [s.strip() for s in args.only.split(",") if s.strip()]
    if not steps or set(steps) - set(STEPS):
        p.error(f"--only: a comma list of {', '.join(STEPS)}; got {args.only!r}")

    from benchmarks import report

    if args.report_only:
        return report.main([])
    plan = commands(steps, args.quick)
    if args.dry_run:
        for step, cmd in plan:
            print(f"{step}: python {' '.join(cmd)}")
        print("report: python benchmarks/report.py")
        return 0

    done, failed = [], []
    t_all = time.perf_counter()
    for i, (step, cmd) in enumerate(plan, 1):
        print(f"\n=== [{i}/{len(plan)}] {step}: python {' '.join(cmd)}", flush=True)
        code, seconds, files = run_step(cmd)
        done.append({"step": step, "argv": cmd, "exit": code, "s": round(seconds, 1)})
        done[-1]["files"] = files
        print(f"=== {step}: exit {code} after {seconds:.0f} s; wrote {', '.join(files) or '-'}")
        if code != 0 or not files:
            failed.append(step)
    suite = {
        "meta": run_metadata("torch", "ffcv", "nvidia-dali-cuda120"),
        "quick": args.quick,
        "steps": done,
        "failed": failed,
        "total_s": round(time.perf_counter() - t_all, 1),
    }
    print(f"\nrun_all: wrote {write_result('suite', suite)}")
    code = report.main([])
    if failed:
        print(f"run_all: FAILED steps: {', '.join(failed)} (see their output above)")
    return 1 if failed or code else 0


if __name__ == "__main__":
    sys.exit(main())
