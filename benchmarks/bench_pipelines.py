#!/usr/bin/env python
"""Loader throughput per core: torch + the authors' IPMix vs FFCV, without and with IPMix.

    python benchmarks/bench_pipelines.py [--images 1024] [--size 224] [--workers 1] [--quick]
    python benchmarks/bench_pipelines.py --workers 1,2 --betons jpg   # core scaling, jpg only

Data: ImageNet-like JPEGs derived from the 8 colour photos bundled with scikit-image (random
crops of 45-100% of each photo's area, rescaled to 500x375 or 375x500, JPEG quality 90),
as an ImageFolder of 4 classes. FFCV reads two .beton files of the same pictures (max
resolution 500): "jpg", all JPEG q90 (both backends decode the same 500x375 JPEGs), and
"prop", ffcv-imagenet's ResNet-50 recipe (``proportion`` mode: half JPEG q90, half raw
pixels). Fractal bank: ``--fractals`` (a store), else real photos at F = S*256/224 (the
content does not change the cost).
Each loader runs one warm-up epoch (JIT compile, reported apart) and the median of
``--repeats`` epochs; ``img/s/core`` = images/s divided by ``--workers`` (FFCV threads or
DataLoader processes), and ``img/cpu-s`` = images per CPU-second of every thread and worker
process (the consuming main thread and Numba's threads included): the goals and the README
use the latter. ``--workers`` takes a comma list (``all`` = every core): each case is run
at each count (rows carry ``workers``; the goals use the first count). Results: JSON in
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    int_list,
    metadata,
    print_table,
    rate_fields,
    write_result,
)
from ipmix_ops import IPMixConfig  # noqa: E402
from pipelines import build_loader  # noqa: E402
from pipelines.datasets.beton import write_beton  # noqa: E402

IMPL = {"torch": "Pillow reference", "ffcv": "Numba"}
BETON_DESC = {
    "jpg": ".beton jpg: all JPEG q90",
    "prop": ".beton prop: ffcv-imagenet's recipe (50% JPEG q90, 50% raw)",
    "jpg256": ".beton jpg256: all JPEG q90, longer side shrunk to 256 (write_beton's default)",
}
# kind -> (write mode, max resolution); the first two keep the files' 500 px
BETON_WRITE = {"jpg": ("jpg", 500), "prop": ("proportion", 500), "jpg256": ("jpg", 256)}
PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "stereo_motorcycle",
)


def _photos() -> list[np.ndarray]:
    from skimage import data

    out = []
    for name in PHOTOS:
        img = getattr(data, name)()
        img = img[0] if isinstance(img, tuple) else img
        out.append(np.ascontiguousarray(img[..., :3]))
    return out


def photo_bank(size: int) -> tuple[np.ndarray, str]:
    """The stand-in fractal bank (the content does not change the cost): the skimage photos
    resized to ``size``, uint8 [N, size, size, 3], and its description."""
    bank = np.stack([np.asarray(Image.fromarray(x).resize((size, size))) for x in _photos()])
    return bank, f"{len(bank)} skimage photos at {size}px"


def imagenet_like_folder(root: Path, n: int, seed: int = 0) -> dict:
    """``n`` JPEGs (q90, 500x375 or 375x500) cut from the skimage photos, 4 classes."""
    rng = np.random.default_rng(seed)
    photos, sizes = _photos(), []
    for i in range(n):
        p = photos[i % len(photos)]
        h, w = p.shape[:2]
        frac = rng.uniform(0.45, 1.0)
        ch, cw = int(h * np.sqrt(frac)), int(w * np.sqrt(frac))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        size = (500, 375) if rng.uniform() < 0.8 else (375, 500)
        im = Image.fromarray(p[y : y + ch, x : x + cw]).resize(size, Image.Resampling.BILINEAR)
        path = root / f"class{i % 4}" / f"{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path, quality=90)
        sizes.append(path.stat().st_size)
    return {"images": n, "mean_jpeg_kb": round(float(np.mean(sizes)) / 1e3, 1)}


def time_loader(loader, repeats: int) -> tuple[float, float, float]:
    """(first epoch seconds, median wall seconds and median CPU seconds of ``repeats`` later
    epochs). CPU = this process's threads (loader threads, Numba threads, the consuming
    main thread) + its DataLoader worker processes (live or ended)."""

    me = psutil.Process()

    def cpu() -> float:  # DataLoader workers are persistent: read the live ones too
        done = resource.getrusage(resource.RUSAGE_CHILDREN)
        live = 0.0
        for child in me.children(recursive=True):
            try:
                t = child.cpu_times()
                live += t.user + t.system
            except psutil.Error:  # ended meanwhile: counted by RUSAGE_CHILDREN
                pass
        return time.process_time() + done.ru_utime + done.ru_stime + live

    def epoch() -> tuple[float, float]:
        t0, c0 = time.perf_counter(), cpu()
        for _ in loader:
            pass
        return time.perf_counter() - t0, cpu() - c0

    first = epoch()[0]
    runs = [epoch() for _ in range(repeats)]
    return (
        first,
        statistics.median(r[0] for r in runs),
        statistics.median(r[1] for r in runs),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument(
        "--workers",
        type=int_list,
        default=[1],
        help="FFCV threads / DataLoader workers: a count or a comma list such as 1,2 or 1,all",
    )
    p.add_argument(
        "--betons",
        default="jpg,prop,jpg256",
        help="which FFCV .beton files to read, a comma list of jpg, prop, jpg256 (default: all)",
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fractals", default=None, help="a fractal store (default: photos)")
    p.add_argument("--quick", action="store_true", help="256 images, 2 repeats")
    p.add_argument("--out", help="JSON path (default benchmarks/results/pipelines-<time>.json)")
    args = p.parse_args(argv)
    # The consumer here only hands batches on (a trainer would run the model on a GPU): one
    # torch thread, so that OpenMP's idle spinning after each small op is not counted as
    # loader CPU time (FFCV used to force this by resetting torch's thread count).
    torch.set_num_threads(1)
    if args.quick:
        args.images, args.repeats, args.batch = 256, 2, 32
    kinds = [b.strip() for b in args.betons.split(",") if b.strip()]
    if not kinds or set(kinds) - set(BETON_WRITE):
        p.error(f"--betons: a comma list of {', '.join(BETON_WRITE)}; got {args.betons!r}")
    cfg = IPMixConfig.preset("imagenet", image_size=args.size)
    if args.fractals:
        bank_desc, bank = f"fractal store {args.fractals}", args.fractals
    else:
        bank, bank_desc = photo_bank(cfg.fractal_size)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = imagenet_like_folder(tmp / "train", args.images)
        betons = {}
        for kind, (mode, res) in BETON_WRITE.items():
            if kind not in kinds:
                continue
            betons[kind] = tmp / f"{kind}.beton"
            kw = dict(max_resolution=res, write_mode=mode, compress_probability=0.5)
            write_beton(tmp / "train", betons[kind], progress=False, **kw)
        print(
            f"data: {data['images']} JPEGs 500x375/375x500 q90 (mean {data['mean_jpeg_kb']} kB) "
            f"cut from scikit-image's photos; {'; '.join(BETON_DESC[b] for b in betons)}; "
            f"bank: {bank_desc}"
        )
        common = dict(train=True, batch_size=args.batch, image_size=args.size, seed=0, device="cpu")
        ipmix_cases = [
            ("off", None, False),
            ("1 view", "imagenet", False),
            ("JSD", "imagenet", True),
        ]
        cases = [("torch", "ImageFolder", *c) for c in ipmix_cases]
        cases += [("ffcv", f".beton {b}", *c) for b in betons for c in ipmix_cases]
        rows, rate = [], {}
        runs = [(w, *c) for w in args.workers for c in cases]
        for workers, backend, source, label, ipmix, jsd in tqdm(runs, desc="loaders"):
            src = betons[source.split()[-1]] if backend == "ffcv" else tmp / "train"
            loader = build_loader(
                backend, src, ipmix=ipmix, jsd=jsd, num_workers=workers, fractals=bank, **common
            )
            first, t, cpu_s = time_loader(loader, args.repeats)
            n = len(loader) * args.batch
            if workers == args.workers[0]:
                rate[(source, label)] = n / cpu_s  # per CPU-second: every thread and process
            rows.append(
                {
                    "pipeline": backend,
                    "data": source,
                    "IPMix": label if ipmix is None else f"{label} ({IMPL[backend]})",
                    "workers": workers,
                    **rate_fields(n, t, workers, first, cpu_s),
                }
            )
            tqdm.write(
                f"  {backend} {source} {label}, {workers} worker(s): "
                f"{rows[-1]['img/s/core']} img/s/core"
            )
            del loader

    goals = {}
    r1, r3 = rate[("ImageFolder", "1 view")], rate[("ImageFolder", "JSD")]
    for b in betons:
        plain, f1, f3 = (rate[(f".beton {b}", c)] for c in ("off", "1 view", "JSD"))
        over = "IPMix overhead vs plain FFCV (goal <= 25%)"
        speed = "FFCV+IPMix / torch+reference per core (goal >= 5x)"
        goals[f"{b}, 1 view: {over}"] = f"{100 * (plain / f1 - 1):.0f}%"
        goals[f"{b}, JSD: {over}"] = f"{100 * (plain / f3 - 1):.0f}%"
        goals[f"{b}, 1 view: {speed}"] = f"{f1 / r1:.1f}x"
        goals[f"{b}, JSD: {speed}"] = f"{f3 / r3:.1f}x"
    print(
        f"\n{args.size}px, batch {args.batch}, {args.workers} worker(s), median of "
        f"{args.repeats} epochs after a warm-up epoch (first epoch includes JIT compile)"
    )
    print_table(rows, list(rows[0]))
    for k, v in goals.items():
        print(f"{k}: {v}")
    path = write_result(
        "pipelines",
        {
            "meta": metadata("torch", "torchvision", "ffcv"),
            "data": {**data, "source": "scikit-image photos, random crops/rescales, q90"},
            "bank": bank_desc,
            "size": args.size,
            "batch": args.batch,
            "workers": args.workers[0],
            "workers_list": args.workers,
            "repeats": args.repeats,
            "rows": rows,
            "goals": goals,
        },
        args.out,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
