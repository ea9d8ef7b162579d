#!/usr/bin/env python
"""CPU time per sample of the FFCV loader threads for each IPMix placement.

    python benchmarks/bench_placement.py [--size 64] [--per-class 40] [--batch 32] [--epochs 3]

Iterates the FFCV ``Loader`` inside the train loader (the loader threads' work only, not the
consumer's) for: plain FFCV (IPMix off), ``ipmix_device="cpu"`` (IPMix on the loader threads)
and ``ipmix_device="cuda"`` (crops + indices only; IPMix would run on the device in the
consumer). Process CPU time over one epoch of a Fashion-MNIST demo .beton, min of
``--epochs``; one loader thread. Without CUDA the "cuda" loader is built under Triton's
interpreter (its renderer is not called here). The claim checked: the "cuda" placement's
host cost per sample equals plain FFCV's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _cpu_per_sample(loader, epochs: int) -> float:
    """Min over epochs of process CPU seconds per sample of iterating FFCV's Loader."""
    inner = loader.loader
    best = float("inf")
    for e in range(epochs + 1):  # the first pass compiles
        loader.cell.epoch = e
        inner.next_epoch = e
        t0, n = time.process_time(), 0
        for images, _ in inner:
            n += images.shape[0]
        if e:
            best = min(best, (time.process_time() - t0) / n)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--per-class", type=int, default=40)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    a = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    from ipmix_ops import IPMixConfig
    from pipelines import build_loader
    from pipelines.datasets.beton import write_beton
    from pipelines.datasets.demo import write_demo_imagefolder

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_demo_imagefolder(
            root / "fm", size=a.size, train_per_class=a.per_class, val_per_class=1, progress=False
        )
        beton = root / "train.beton"
        write_beton(root / "fm/train", beton, write_mode="jpg", num_workers=1, progress=False)
        rng = np.random.default_rng(0)  # the pixels do not change the CPU time
        bank = rng.integers(0, 256, (16, 2 * a.size, 2 * a.size, 3), np.uint8)
        cfg = IPMixConfig.preset("imagenet")
        kw = dict(train=True, batch_size=a.batch, image_size=a.size, num_workers=1, device=dev)
        rows = {
            "plain FFCV (IPMix off)": build_loader("ffcv", str(beton), **kw),
            "ipmix_device=cpu": build_loader(
                "ffcv", str(beton), ipmix=cfg, fractals=bank, ipmix_device="cpu", **kw
            ),
            "ipmix_device=cuda": build_loader(
                "ffcv", str(beton), ipmix=cfg, fractals=bank, ipmix_device="cuda", **kw
            ),
        }
        print(f"FFCV loader threads, {a.size} px, batch {a.batch}, 1 thread, device {dev}")
        for name, loader in rows.items():
            us = 1e6 * _cpu_per_sample(loader, a.epochs)
            print(f"  {name:24s} {us:8.1f} us CPU per sample")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
