#!/usr/bin/env python
"""IPMix per-core throughput: the Pillow reference vs the Numba fast path (``ipmix_batch``).

    python benchmarks/bench_ipmix.py [--size 224] [--batch 64] [--repeats 5] [--quick]
    python benchmarks/bench_ipmix.py --sizes 128,160,192,224,256 --batches 16,32,64,128 \
        --threads 1,2      # also the scaling sweeps (fast path only)

Images: real photos from scikit-image (7 photos, random crops resized to S). Bank: the same
kind of real pictures at F = S·256/224 (the fractal content does not change the cost).
Reports images/s per core for one view and JSD (clean + 2 views), the ratio fast/reference,
and the JIT compile time measured apart in a fresh process with an empty Numba cache.
Scaling sweeps (``--sizes``, ``--batches``, ``--threads``, comma lists): the fast path's
rate for one view and JSD, varying one of image size (at ``--batch``, 1 thread), batch size
(at ``--size``, 1 thread) and threads (at ``--size`` and ``--batch``); JSON key ``scaling``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    int_list,
    median_time,
    print_table,
    write_result,
)
from ipmix_ops import IPMixConfig, ipmix_batch, reference, sample_records  # noqa: E402
from ipmix_train.runinfo import run_metadata  # noqa: E402

PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "retina",
    "hubble_deep_field",
    "immunohistochemistry",
)


def real_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` random crops (40-100% of the shorter side) of the skimage photos, resized."""
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = [getattr(data, name)()[..., :3] for name in PHOTOS]
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        p = photos[i % len(photos)]
        h, w = p.shape[:2]
        s = int(min(h, w) * rng.uniform(0.4, 1.0))
        y, x = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        crop = Image.fromarray(np.ascontiguousarray(p[y : y + s, x : x + s]))
        out[i] = np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR))
    return out


def bench_reference(images, bank, cfg, views: int) -> float:
    """Seconds per sample of the Pillow reference (``views`` IPMix views per sample)."""
    recs = sample_records(
        cfg, seed=0, epoch=0, indices=np.arange(len(images)), n_fractals=len(bank), views=views
    )
    reference.ipmix(images[0], bank[int(recs[0, 0, 1])], cfg, recs[0, 0])  # warm-up
    t0 = time.perf_counter()
    for i, img in enumerate(images):
        for v in range(views):
            reference.ipmix(img, bank[int(recs[i, v, 1])], cfg, recs[i, v])
    return (time.perf_counter() - t0) / len(images)


def bench_fast(images, bank, cfg, threads: int, repeats: int) -> float:
    """Seconds per sample of ``ipmix_batch`` on ``threads`` threads (median of runs)."""
    numba.set_num_threads(threads)
    out = np.empty((len(images), cfg.views, *images.shape[1:]), np.uint8)
    idx = np.arange(len(images))
    epoch = iter(range(10**6))
    t = median_time(
        lambda: ipmix_batch(images, bank, cfg, seed=0, epoch=next(epoch), indices=idx, out=out),
        repeats=repeats,
        warmup=1,
    )
    return t / len(images)


def cold_compile_seconds(size: int) -> float:
    """First-call time of ipmix_batch in a fresh process with an empty Numba cache."""
    code = (
        "import time, numpy as np; t0 = time.perf_counter();"
        "from ipmix_ops import IPMixConfig, ipmix_batch;"
        f"cfg = IPMixConfig.preset('imagenet', image_size={size});"
        f"im = np.zeros((2, {size}, {size}, 3), np.uint8);"
        "bank = np.zeros((1, cfg.fractal_size, cfg.fractal_size, 3), np.uint8);"
        "ipmix_batch(im, bank, cfg, seed=0, epoch=0, indices=np.arange(2));"
        "print(time.perf_counter() - t0)"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        res = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
    return float(res.stdout.strip().splitlines()[-1])


def scaling(args) -> list[dict]:
    """Fast-path img/s and ms/img along the size, batch and thread sweeps of ``args``."""
    from tqdm import tqdm

    cases = [("size", s, args.batch, 1) for s in args.sizes or []]
    cases += [("batch", args.size, b, 1) for b in args.batches or []]
    cases += [("threads", args.size, args.batch, t) for t in args.threads or []]
    rows, data = [], {}
    for axis, size, batch, threads in tqdm(cases, desc="scaling", disable=not cases):
        if (size, batch) not in data:
            cfg = IPMixConfig.preset("imagenet", image_size=size, jsd=False)
            bank = real_images(8, cfg.fractal_size, seed=1)
            data[size, batch] = real_images(batch, size), bank, cfg
        images, bank, cfg = data[size, batch]
        for mode, c in (("one view", cfg), ("JSD", cfg.replace(jsd=True))):
            t = bench_fast(images, bank, c, threads, args.repeats)
            rows.append(
                {
                    "axis": axis,
                    "mode": mode,
                    "size": size,
                    "batch": batch,
                    "threads": threads,
                    "img/s": round(1 / t, 1),
                    "img/s/core": round(1 / t / threads, 1),
                    "ms/img/core": round(1e3 * t * threads, 3),
                }
            )
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--ref-samples", type=int, default=32, help="samples timed for the reference")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="fewer samples and runs")
    p.add_argument("--no-compile", action="store_true", help="skip the cold-compile timing")
    p.add_argument("--sizes", type=int_list, help="scaling sweep: image sizes, e.g. 128,224")
    p.add_argument("--batches", type=int_list, help="scaling sweep: batch sizes, e.g. 16,64")
    p.add_argument("--threads", type=int_list, help="scaling sweep: threads, e.g. 1,all")
    p.add_argument("--out", help="JSON path (default benchmarks/results/ipmix-<time>.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.ref_samples, args.repeats = 32, 12, 3
    if args.threads and max(args.threads) > numba.config.NUMBA_NUM_THREADS:
        p.error(f"--threads: at most {numba.config.NUMBA_NUM_THREADS} (NUMBA_NUM_THREADS)")

    cores = numba.config.NUMBA_NUM_THREADS
    images = real_images(args.batch, args.size)
    cfg1 = IPMixConfig.preset("imagenet", image_size=args.size, jsd=False)
    cfg3 = cfg1.replace(jsd=True)
    bank = real_images(8, cfg1.fractal_size, seed=1)
    compile_s = None if args.no_compile else cold_compile_seconds(args.size)
    bench_fast(images[:2].copy(), bank, cfg1, 1, 1)  # load/compile before timing

    rows = []
    for mode, cfg, views in (("one view", cfg1, 1), ("JSD", cfg3, 2)):
        ref = bench_reference(images[: args.ref_samples], bank, cfg, views)
        one = bench_fast(images, bank, cfg, 1, args.repeats)
        allc = bench_fast(images, bank, cfg, cores, args.repeats)
        rows.append(
            {
                "mode": mode,
                "reference img/s/core": round(1 / ref, 1),
                "fast 1-thread img/s": round(1 / one, 1),
                f"fast {cores}-thread img/s": round(1 / allc, 1),
                "fast img/s/core (all cores)": round(1 / allc / cores, 1),
                "speed-up per core (1 thread)": round(ref / one, 1),
                "ms/img reference": round(1e3 * ref, 3),
                "ms/img fast 1-thread": round(1e3 * one, 3),
            }
        )
    cols = list(rows[0])
    print(
        f"IPMix {args.size}px, k=3 t=3 (imagenet preset), batch {args.batch}, real photos; "
        f"{cores} cores"
    )
    print_table(rows, cols)
    scale = scaling(args)
    if scale:
        print("\nscaling (fast path)")
        print_table(scale, list(scale[0]))
    if compile_s is not None:
        print(f"cold JIT compile + first call: {compile_s:.1f} s (cached afterwards)")
    path = write_result(
        "ipmix",
        {
            "meta": run_metadata(),
            "size": args.size,
            "batch": args.batch,
            "cold_compile_s": compile_s,
            "rows": rows,
            "scaling": scale,
        },
        args.out,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
