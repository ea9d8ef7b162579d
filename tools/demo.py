#!/usr/bin/env python
"""The product's main job on an embedded default, offline (``make demo``).

Steps:
  1. fractal store    render a small fractal set with the Numba generator
  2. demo dataset     Fashion-MNIST (Debian package) as an RGB ImageFolder tree
  3. IPMix            a sample grid PNG + fast path vs Pillow reference throughput
  4. .beton           ImageFolder -> FFCV file              (tools/write_beton.py)
  5. training         short CPU runs, --pipeline dali / ffcv (train/imagenet.py)
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import fractal_store
from ipmix_ops import IPMixConfig, ipmix_batch, reference, sample_records
from pipelines.datasets.demo import write_demo_imagefolder

ROOT = Path(__file__).resolve().parents[1]


def banner(n: int, title: str) -> None:
    print(f"\n== [{n}/5] {title}", flush=True)


def step_fractals(out: Path, cfg: IPMixConfig, count: int) -> np.ndarray:
    banner(1, "fractal store")
    store_path = out / "fractals.zip"
    t0 = time.perf_counter()
    if not store_path.exists():
        fractal_store.build_store(store_path, count=count, size=64, seed=0, progress=True)
    store = fractal_store.open(store_path)
    bank = store.load_bank(size=cfg.fractal_size)
    print(
        f"   {len(store)} fractals in {store_path} ({store_path.stat().st_size / 1e3:.0f} kB), "
        f"bank {bank.shape} loaded, {time.perf_counter() - t0:.1f}s"
    )
    sheet = np.concatenate(
        [
            np.concatenate(list(bank[r * 8 : (r + 1) * 8]), axis=1)
            for r in range(min(4, len(bank) // 8))
        ],
        axis=0,
    )
    Image.fromarray(sheet).resize((sheet.shape[1] * 2, sheet.shape[0] * 2)).save(
        out / "fractals.png"
    )
    print(f"   contact sheet: {out / 'fractals.png'}")
    return bank


def step_dataset(out: Path, size: int, per_class: int) -> Path:
    banner(2, "demo dataset (Fashion-MNIST, real product photos, offline)")
    root = out / "fashion_mnist"
    if (root / "train").is_dir() and (root / "val").is_dir():
        print(f"   exists: {root}")
    else:
        counts = write_demo_imagefolder(
            root, size=size, train_per_class=per_class, val_per_class=max(10, per_class // 5)
        )
        print(f"   wrote {counts['train']} train + {counts['val']} val images to {root}")
    return root


def step_ipmix(out: Path, data_root: Path, bank: np.ndarray, cfg: IPMixConfig) -> None:
    banner(3, "IPMix samples and throughput")
    every = sorted((data_root / "val").glob("*/*"))
    paths = every[:: max(1, len(every) // 16)][:16]
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    idx = np.arange(len(images))
    views = ipmix_batch(images, bank, cfg, seed=0, epoch=0, indices=idx)  # [B, 3, S, S, 3]
    rows = [np.concatenate(list(views[:, v]), axis=1) for v in range(views.shape[1])]
    grid = np.concatenate(rows, axis=0)
    s = cfg.image_size
    grid_img = Image.fromarray(grid).resize(
        (grid.shape[1] * 3, grid.shape[0] * 3), Image.Resampling.NEAREST
    )
    grid_img.save(out / "ipmix_grid.png")
    labels = ", ".join(p.parent.name for p in paths[:4])
    print(
        f"   grid (rows: clean, IPMix view a, view b; {s}px; first: {labels}, ...): "
        f"{out / 'ipmix_grid.png'}"
    )

    big = np.ascontiguousarray(np.repeat(images, 16, axis=0))
    t0 = time.perf_counter()
    ipmix_batch(big, bank, cfg, seed=0, epoch=1, indices=np.arange(len(big)))
    fast = len(big) / (time.perf_counter() - t0)
    recs = sample_records(cfg, seed=0, epoch=1, indices=idx, n_fractals=len(bank), views=2)
    reference.ipmix(images[0], bank[int(recs[0, 0, 1])], cfg, recs[0, 0])
    t0 = time.perf_counter()
    for i in idx:
        for v in range(2):
            reference.ipmix(images[i], bank[int(recs[i, v, 1])], cfg, recs[i, v])
    ref = len(idx) / (time.perf_counter() - t0)
    print(
        f"   JSD triples/s at {s}px: fast path {fast:.0f}, Pillow reference {ref:.0f} "
        f"({fast / ref:.1f}x; all cores vs one)"
    )


def step_beton(out: Path, data_root: Path) -> Path:
    banner(4, ".beton dataset (FFCV)")
    tool = ROOT / "tools" / "write_beton.py"
    beton = out / "demo_train.beton"
    subprocess.run(
        [
            sys.executable,
            str(tool),
            "--data-dir",
            str(data_root / "train"),
            "--out",
            str(beton),
            "--max-resolution",
            "64",
        ],
        check=True,
    )
    return beton


def step_train(out: Path, data_root: Path, beton: Path) -> None:
    banner(5, "short training runs on the CPU")
    trainer = ROOT / "train" / "imagenet.py"
    store = out / "fractals.zip"
    # resnet18 at 32 px, IPMix (cifar preset, one view: --no-jsd keeps it short), capped
    # at two epochs of the 2,000-image demo set (about a minute per run on two cores)
    common = ["--device", "cpu", "--arch", "resnet18", "--image-size", "32", "--epochs", "2"]
    common += ["--batch-size", "64", "--lr", "0.02", "--warmup-epochs", "0.2", "--max-steps"]
    common += ["62", "--no-progress", "--fractals", str(store), "--ipmix-preset", "cifar"]
    common += ["--no-jsd", "--overwrite"]  # a rerun of the demo replaces its runs
    for pipeline in ("dali", "ffcv"):
        if pipeline == "ffcv":
            from pipelines.datasets.beton import write_beton

            val = out / "demo_val.beton"
            if not val.exists():
                write_beton(data_root / "val", val, max_resolution=64, progress=False)
            data = ["--train-data", str(beton), "--val-data", str(val)]
        else:
            data = ["--train-data", str(data_root / "train"), "--val-data"]
            data += [str(data_root / "val")]
        run_dir = out / f"run_{pipeline}"
        cmd = [sys.executable, str(trainer), "--pipeline", pipeline, *data, *common]
        print(f"   --pipeline {pipeline}: {' '.join(cmd[2:])}", flush=True)
        res = subprocess.run(
            [*cmd, "--out", str(run_dir)], capture_output=True, text=True, check=False
        )
        if res.returncode != 0:
            print(res.stdout[-3000:] + res.stderr[-3000:])
            rc = res.returncode
            how = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
            raise SystemExit(f"training with --pipeline {pipeline} failed ({how})")
        final = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()][-1]
        print(
            f"   {pipeline}: {final['step']} steps, val top-1 {final['val_top1_pct']:.1f}% "
            f"(10 classes, chance 10%), {final['samples_per_s']:.0f} train samples/s, "
            f"data wait {final['data_wait_pct']:.0f}% of the step time; log {run_dir}"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default=str(ROOT / "demo_out"), help="output folder")
    p.add_argument("--per-class", type=int, default=200, help="demo training images per class")
    p.add_argument("--fractals", type=int, default=64, help="fractals to render")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cfg = IPMixConfig.preset("cifar")  # 32 px demo images
    bank = step_fractals(out, cfg, args.fractals)
    data_root = step_dataset(out, cfg.image_size, args.per_class)
    step_ipmix(out, data_root, bank, cfg)
    beton = step_beton(out, data_root)
    step_train(out, data_root, beton)
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f}s; outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
