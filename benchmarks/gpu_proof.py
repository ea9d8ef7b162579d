#!/usr/bin/env python
"""The GPU proof: one short command that measures what the product promises on a CUDA GPU.

    python benchmarks/gpu_proof.py              # make gpu-proof: <= ~6 min on one GPU
    python benchmarks/gpu_proof.py --dry-run    # the same code on the CPU, tiny sizes, Triton's
                                                # interpreter: < 1 min (run by the CPU suite)

Steps, each timed and recorded in one JSON file (``benchmarks/results/gpu-proof-<time>.json``;
``--dry-run`` writes to ``--out`` or a temporary file, never into the results), then the
README's GPU table (between ``<!-- gpu-proof:begin -->`` and ``<!-- gpu-proof:end -->``,
:mod:`benchmarks.gpu_proof_table`) rendered from that JSON; ``--dry-run`` prints the table
and writes it into a temporary copy of the README only (``--readme``), never README.md:

1. ``gpu_tests``: ``pytest -m gpu tests/test_gpu_*.py tests/test_train_step.py`` (the
   prefetcher and the step without host synchronisation; ``--dry-run``: only collects them).
2. ``ipmix_bench``: ``benchmarks/bench_gpu_ipmix.py`` (the renderer alone, beside its roofline
   and the CPU fast path per core).
3. ``train``: ResNet-50 (bf16 autocast, channels-last, SGD, batch 256, 224 px) on synthetic
   uint8 batches made once on the device, the compute ceiling (DeepLearningExamples'
   ``synthetic`` backend), against the same step with IPMix rendered on the GPU
   (``ipmix_ops.gpu``), one view and JSD. The JSD baseline forwards the clean batch three
   times, so both sides do the same model work and the ratio is the cost of IPMix alone.
   Goal: JSD with IPMix >= 97% of its baseline's samples/s.
4. ``loaders``: with ``--data`` (an ImageFolder, or a .beton for FFCV) and where FFCV / DALI
   import, samples/s of their loaders on this GPU. Skipped with the reason otherwise.

Only torch, Triton, NumPy and Numba are needed (a GPU machine may have neither FFCV nor DALI).
Timing: a warm-up, then ``--steps`` steps between two CUDA synchronisations (no host sync
inside the timed loop). The fractal bank is uniform noise: the renderer's cost does not depend
on pixel values, and building real fractals would spend GPU-machine minutes on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if "--dry-run" in sys.argv:  # before anything imports Triton: kernels run on CPU tensors
    os.environ.setdefault("TRITON_INTERPRET", "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the benchmarks package sits at the root
    sys.path.insert(0, str(ROOT))

from benchmarks.common import write_result  # noqa: E402
from benchmarks.gpu_proof_table import (  # noqa: E402
    readme_with_table,
    render_table,
    write_readme_table,
)
from ipmix_train.runinfo import run_metadata  # noqa: E402

JSD_GOAL = 0.97


def _run(cmd: list[str], timeout: float) -> dict:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        rc, text = 124, f"timed out after {timeout:.0f} s\n{err.stdout or ''}"
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return {
        "command": " ".join(cmd),
        "rc": rc,
        "seconds": round(time.perf_counter() - t0, 1),
        "tail": lines[-15:],
    }


def gpu_tests(dry: bool) -> dict:
    # the files that hold GPU tests: the other test modules import FFCV or DALI, which a GPU
    # machine may not have
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_gpu_*.py"))
    files.append("tests/test_train_step.py")  # imports torch only, FFCV inside its test
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", *files]
    if dry:
        cmd.insert(3, "--collect-only")
    return _run(cmd, timeout=300)


def ipmix_bench(dry: bool, out: Path) -> dict:
    cmd = [sys.executable, "benchmarks/bench_gpu_ipmix.py", "--out", str(out)]
    if dry:
        cmd.append("--dry-run")
    res = _run(cmd, timeout=600)  # a cold Numba cache compiles the CPU baseline first
    res["result_file"] = str(out) if out.exists() else None
    return res


class Sizes:
    """The proof's sizes: the real ones, or tiny ones for ``--dry-run``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.dry = args.dry_run
        self.batch = 2 if self.dry else args.batch
        self.size = 32 if self.dry else args.image_size
        self.steps = 1 if self.dry else args.steps
        self.warmup = 1 if self.dry else args.warmup
        self.fractals = 8 if self.dry else 64


def _model(dry: bool, device):
    import torch
    import torchvision

    if dry:  # a tiny convnet: the same code path, seconds on the CPU
        model = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, 2, 1),
            torch.nn.BatchNorm2d(8),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(8, 10),
        )
    else:
        model = torchvision.models.resnet50(num_classes=1000)
    return model.to(device).to(memory_format=torch.channels_last)


def train_rates(sizes: Sizes, device) -> dict:
    """Samples/s of the training step: synthetic vs synthetic + GPU IPMix, one view and JSD."""
    import numpy as np
    import torch

    from ipmix_ops import IPMixConfig
    from ipmix_ops import gpu as ipmix_gpu
    from ipmix_ops.config import IMAGENET_MEAN, IMAGENET_STD
    from ipmix_train.losses import ipmix_loss

    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    gen = torch.Generator(device=device).manual_seed(0)
    b, s = sizes.batch, sizes.size
    images = torch.randint(0, 256, (b, s, s, 3), generator=gen, device=device, dtype=torch.uint8)
    labels = torch.randint(0, 10 if sizes.dry else 1000, (b,), generator=gen, device=device)
    fsize = round(s * 256 / 224)
    bank = torch.randint(
        0, 256, (sizes.fractals, fsize, fsize, 3), generator=gen, device=device, dtype=torch.uint8
    )
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
    indices = np.arange(b, dtype=np.int64)
    model = _model(sizes.dry, device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)

    def views_of(mode: str, ipmix: bool, step: int) -> list:
        if not ipmix:
            return [images] * (3 if mode == "jsd" else 1)
        cfg = IPMixConfig.preset("imagenet", image_size=s, jsd=mode == "jsd")
        out = ipmix_gpu.ipmix_batch(images, bank, cfg, seed=0, epoch=step, indices=indices)
        return [out[:, v] for v in range(out.shape[1])]

    def step(mode: str, ipmix: bool, i: int) -> None:
        views = views_of(mode, ipmix, i)
        x = torch.cat([v.permute(0, 3, 1, 2) for v in views])
        x = x.contiguous(memory_format=torch.channels_last).float().sub_(mean).div_(std)
        with autocast:
            logits = model(x)
        loss = ipmix_loss(logits, labels, views=len(views))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    rows = {}
    for mode in ("one", "jsd"):
        for ipmix in (False, True):
            name = f"{mode}-{'ipmix' if ipmix else 'synthetic'}"
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            for i in range(sizes.warmup):
                step(mode, ipmix, i)
            sync()
            t0 = time.perf_counter()
            for i in range(sizes.steps):
                step(mode, ipmix, sizes.warmup + i)
            sync()
            sec = time.perf_counter() - t0
            rows[name] = {
                "samples/s": round(b * sizes.steps / sec, 1),
                "ms/step": round(1e3 * sec / sizes.steps, 2),
                "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
            }
            print(f"train {name:16s} {rows[name]['samples/s']:>10} samples/s", flush=True)
    ratios = {
        mode: round(rows[f"{mode}-ipmix"]["samples/s"] / rows[f"{mode}-synthetic"]["samples/s"], 4)
        for mode in ("one", "jsd")
    }
    return {
        "model": "tiny convnet" if sizes.dry else "resnet50",
        "precision": "bf16 autocast" if cuda else "float32",
        "batch": b,
        "image_size": s,
        "steps": sizes.steps,
        "warmup": sizes.warmup,
        "rows": rows,
        "ipmix_over_synthetic": ratios,
        "jsd_goal": JSD_GOAL,
        "jsd_goal_met": None if sizes.dry else ratios["jsd"] >= JSD_GOAL,
    }


def loader_rates(data: Path | None, sizes: Sizes, device) -> dict:
    """Samples/s of the FFCV / DALI loaders with GPU IPMix on this device (where they run)."""
    if data is None:
        return {"skipped": "no --data given"}
    from pipelines import build_loader

    out = {}
    for pipeline in ("ffcv", "dali"):
        module = "ffcv" if pipeline == "ffcv" else "nvidia.dali"
        try:
            __import__(module)
        except ImportError:
            out[pipeline] = {"skipped": f"{module} does not import here"}
            continue
        if (pipeline == "ffcv") != (data.suffix == ".beton"):
            out[pipeline] = {
                "skipped": f"{data} is not a {'.beton' if pipeline == 'ffcv' else 'folder'}"
            }
            continue
        loader = build_loader(
            pipeline,
            data,
            train=True,
            batch_size=sizes.batch,
            image_size=sizes.size,
            device=device,
        )
        n, t0 = 0, time.perf_counter()
        for i, (_, y) in enumerate(loader):
            n += len(y)
            if i + 1 >= 10 * sizes.steps:
                break
        out[pipeline] = {"samples/s": round(n / (time.perf_counter() - t0), 1), "samples": n}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, Triton interpreter")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per case")
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--data", type=Path, help="a dataset for the loader step (optional)")
    ap.add_argument("--skip", default="", help="comma list of steps to skip")
    ap.add_argument("--out", type=Path, help="the JSON file (default: benchmarks/results/)")
    ap.add_argument(
        "--readme",
        type=Path,
        help="the README to write the GPU table into (default: README.md after a GPU run, "
        "a temporary copy of it for --dry-run)",
    )
    args = ap.parse_args(argv)
    readme = ROOT / "README.md"
    if args.dry_run and args.readme is not None and args.readme.resolve() == readme.resolve():
        ap.error(f"--readme {args.readme}: a dry run never writes the project's README")
    if args.readme is not None:  # checked now, not after minutes of device time
        try:
            readme_with_table(args.readme, "")
        except (OSError, ValueError) as e:
            ap.error(f"--readme {args.readme}: {e}")

    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        print("gpu_proof: no CUDA GPU here; nothing measured (use --dry-run to check the script)")
        return 0
    device = torch.device("cuda" if cuda and not args.dry_run else "cpu")
    sizes = Sizes(args)
    skip = {s for s in args.skip.split(",") if s}
    out = args.out
    if out is None and args.dry_run:
        out = Path(tempfile.gettempdir()) / f"gpu-proof-dry-{os.getpid()}.json"
    t0 = time.perf_counter()
    result: dict = {"meta": run_metadata("torch", "triton"), "dry_run": args.dry_run, "steps": {}}
    steps = result["steps"]
    with tempfile.TemporaryDirectory() as tmp:
        if "gpu_tests" not in skip:
            steps["gpu_tests"] = gpu_tests(args.dry_run)
        if "ipmix_bench" not in skip:
            steps["ipmix_bench"] = ipmix_bench(args.dry_run, Path(tmp) / "bench.json")
            if steps["ipmix_bench"]["result_file"]:
                steps["ipmix_bench"]["result"] = json.loads(
                    Path(steps["ipmix_bench"]["result_file"]).read_text()
                )
        if "train" not in skip:
            steps["train"] = train_rates(sizes, device)
        if "loaders" not in skip:
            steps["loaders"] = loader_rates(args.data, sizes, device)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    path = write_result("gpu-proof", result, str(out) if out else None)
    failed = [k for k, v in steps.items() if isinstance(v, dict) and v.get("rc", 0) != 0]
    print(f"gpu_proof: {result['seconds']} s, wrote {path}")
    table = render_table(result, path.name)
    target = args.readme
    if target is None and args.dry_run:
        target = path.with_name(f"README-gpu-proof-dry-{os.getpid()}.md")
        shutil.copyfile(readme, target)
    print(table)
    print(f"gpu_proof: GPU table written into {write_readme_table(target or readme, table)}")
    if failed:
        print(f"gpu_proof: failed steps: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
