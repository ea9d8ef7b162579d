#!/usr/bin/env python
"""Evaluate a trained classifier: clean error, calibration and corruption robustness.

    python train/evaluate.py --checkpoint runs/paper --val-data imagenet/val \\
        --imagenet-c imagenet-c/ --out results.json
    python train/evaluate.py --checkpoint runs/paper --val-data val.beton \\
        --corrupt-on-the-fly --estimate-only          # how long would it take?
    python train/evaluate.py --checkpoint runs/demo/checkpoint.pt --val-data demo/val \\
        --corrupt-on-the-fly --corruptions fog contrast --severities 1 3 5 --out results.json

``--checkpoint``: a run directory of ``train/imagenet.py`` (its ``checkpoint.pt``) or a
checkpoint file; the architecture, class count, input size and normalisation come from it.
``--val-data``: an ImageFolder tree (``<class>/<image>``; each image centre-cropped to
224/256 of its shorter side and resized to the input size, the trainers' val transform, or
resized whole with ``--no-crop``, the default of checkpoints whose ``eval`` entry says
``val_crop: false``), or a ``.beton`` file (``tools/write_beton.py``), read through the FFCV
val loader (its centre crop of 224/256; no whole-image mode). The set is read batch by
batch, never held in memory whole.

Reported, all in percent (JSON keys ending in ``_pct``): top-1/top-5 error and RMS
calibration error (adaptive bins of 100 samples sorted by confidence) on the clean set and
per corruption and severity; the mean corruption error (the plain mean of the corrupted
top-1 errors); and the mCE: each ImageNet-C corruption's top-1 error summed over its 5
severities divided by AlexNet's (the benchmark's normaliser: 100 means AlexNet's
robustness), averaged over the 15 corruptions. The mCE needs all 15 x 5 variants: with
fewer, the missing ones are listed and a ``mce_partial_pct`` over the complete corruptions
is reported instead. It is comparable to published numbers only on ImageNet's 1000-class
val set at 224 px with the released ImageNet-C files; otherwise the output and the JSON
(``mce_comparable``, ``mce_caveats``) say why not.

Corrupted data: ``--imagenet-c DIR`` reads the benchmark's ``DIR/<corruption>/<severity>/
<class>/*`` (already centre crops: only resized). With a ``.beton`` val set its class
folders are matched by sorted order (a .beton stores no class names). Otherwise
``--corrupt-on-the-fly`` corrupts the val images with ``imagecorruptions`` while reading
them (``--corruptions``/``--severities``: default all 15 x 5), on ``--workers`` processes
(default: this rank's share of the cores), streamed: each corrupted batch is scored and
dropped. Before starting it times every variant on ``--estimate-sample`` images and prints
the estimated CPU-hours and hours. ``--cache-dir DIR`` instead writes every variant to disk
once (raw uint8, for re-evaluating many checkpoints on a small set; the estimate shows the
bytes, and a cache larger than the disk's free space is refused).

Outputs: a table on stdout, ``--out`` JSON and a PNG plot next to it (error vs severity per
corruption). Exit status: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fractal_store.store import rank_share_of_cores
from ipmix_train.checkpoint import CheckpointError, write_text_atomic
from ipmix_train.corrupt_stream import OnTheFly, check_names, measure, open_pool
from ipmix_train.corruptions import (
    CORRUPTIONS,
    SEVERITIES,
    CacheError,
    cache_bytes,
    cache_folder,
    corrupted_set,
)
from ipmix_train.evalcore import (
    cache_sets,
    check_classes,
    evaluate,
    imagenet_c_sets,
    load_model,
)
from ipmix_train.evalreport import format_table, plot_severity
from ipmix_train.evalscore import corruption_summary, scores, upgrade_keys
from ipmix_train.evalsets import ValSet, array_set, list_imagefolder, load_images, val_set

__all__ = [
    "cache_sets",
    "corruption_summary",
    "evaluate",
    "list_imagefolder",
    "load_images",
    "load_model",
    "main",
    "scores",
    "upgrade_keys",
]
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ipmix-corrupt"
UNITS = {"*_pct": "percent (0-100)", "n": "images", "seconds": "wall-clock seconds"}


# ---------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train/evaluate.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="run directory or checkpoint file")
    p.add_argument("--val-data", required=True, help="ImageFolder tree or .beton file")
    p.add_argument("--imagenet-c", help="ImageNet-C tree <corruption>/<severity>/<class>/*")
    p.add_argument(
        "--corrupt-on-the-fly",
        action="store_true",
        help="without --imagenet-c: corrupt the val set while reading it (streamed)",
    )
    p.add_argument(
        "--corruptions",
        nargs="+",
        metavar="NAME",
        help="with --corrupt-on-the-fly: these corruptions (default: the 15)",
    )
    p.add_argument(
        "--severities",
        nargs="+",
        type=int,
        metavar="S",
        help="with --corrupt-on-the-fly: these severities (default 1-5)",
    )
    p.add_argument(
        "--estimate-sample",
        type=int,
        default=2,
        metavar="K",
        help="time the corruptions on K val images before starting (default 2)",
    )
    p.add_argument(
        "--estimate-only",
        action="store_true",
        help="print the time estimate of --corrupt-on-the-fly and stop",
    )
    p.add_argument(
        "--cache-dir",
        help="write the corrupted sets once to this folder (raw "
        f"uint8; default: stream, no cache; e.g. {DEFAULT_CACHE})",
    )
    p.add_argument("--arch", help="check the checkpoint against this architecture")
    p.add_argument("--image-size", type=int, help="input side (default: the checkpoint's)")
    p.add_argument(
        "--crop",
        action=argparse.BooleanOptionalAction,
        help="centre-crop 224/256 of the val images (default: the checkpoint's setting, else on)",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=100, help="images per forward pass")
    p.add_argument(
        "--workers",
        type=int,
        help="corruption processes and decoding threads "
        "(default: this rank's share of the cores, rank_share_of_cores())",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the corruption noise")
    p.add_argument("--out", help="results JSON (a PNG plot is written next to it)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def _free_bytes(path: Path) -> int:
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    t0 = time.perf_counter()
    pool = None
    try:
        _check_flags(args)
        workers = rank_share_of_cores() if args.workers is None else max(1, args.workers)
        path = Path(args.val_data)
        model, info = load_model(args.checkpoint, arch=args.arch)
        size = args.image_size or info["image_size"]
        crop = info["val_crop"] if args.crop is None else args.crop
        clean = val_set(path, size, crop)
        check_classes(info, None if clean.classes is None else len(clean.classes))
        top = int(clean.labels.max())
        if top >= info["num_classes"]:
            raise ValueError(
                f"{path}: label {top}, but the checkpoint classifies {info['num_classes']} classes"
            )
        info.update(image_size=size, val_crop=crop)
        corrupted: dict[str, dict[int, Any]] = {}
        on_the_fly, estimate, generated = None, None, args.corrupt_on_the_fly
        source = source_kind = "none"
        if args.imagenet_c:
            source, source_kind = f"ImageNet-C folder {args.imagenet_c}", "ImageNet-C"
            corrupted = imagenet_c_sets(args.imagenet_c, clean, size, info["num_classes"])
            generated = False
        elif args.corrupt_on_the_fly:
            cs = tuple(dict.fromkeys(args.corruptions or CORRUPTIONS))
            ss = tuple(sorted(set(args.severities or SEVERITIES)))
            check_names(cs, ss)
            pool = open_pool(workers)
            first = clean.batches(min(args.estimate_sample, len(clean)), workers)
            sample = next(first)[1]
            first.close()
            nbytes = cache_bytes(len(clean), size, len(cs) * len(ss)) if args.cache_dir else 0
            estimate = measure(
                sample,
                len(clean),
                cs,
                ss,
                pool=pool,
                workers=workers,
                seed=args.seed,
                cache_bytes=nbytes,
            )
            print("\n".join(estimate.lines()), flush=True)
            if args.estimate_only:
                return 0
            source_kind = "val set corrupted with imagecorruptions"
            if args.cache_dir:
                corrupted, clean, source = _cached(args, clean, cs, ss, workers, nbytes, pool)
            else:
                source = f"imagecorruptions on the val set, streamed on {workers} worker(s)"
                on_the_fly = OnTheFly(cs, ss, pool, args.seed, window=2 * workers)
        res = evaluate(
            model,
            info,
            clean,
            corrupted,
            on_the_fly=on_the_fly,
            generated=generated,
            device=args.device,
            batch_size=args.batch_size,
            workers=workers,
            progress=args.progress,
        )
    except (CheckpointError, CacheError, ValueError, FileNotFoundError) as e:
        print(f"train/evaluate.py: error: {e}", file=sys.stderr)
        return 2
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    res = {
        "checkpoint": info,
        "val_data": str(args.val_data),
        "val_format": clean.kind,
        "corruptions": source,
        "units": UNITS,
        "seconds": time.perf_counter() - t0,
        **({"corruption_estimate": estimate.to_dict()} if estimate else {}),
        **res,
    }
    print(format_table(res))
    if args.out:
        out = write_text_atomic(args.out, json.dumps(res, indent=2) + "\n")
        print(f"results: {out}")
        if res.get("corrupted"):
            png = plot_severity(
                res, out.with_suffix(".png"), title=f"{info['arch']}: {source_kind}"
            )
            print(f"plot: {png}")
    return 0


def _check_flags(args: argparse.Namespace) -> None:
    """ValueError naming a flag that is out of range or has no effect with the others."""
    if args.batch_size < 1 or args.estimate_sample < 1:
        raise ValueError("--batch-size and --estimate-sample must be >= 1")
    if args.imagenet_c and args.corrupt_on_the_fly:
        raise ValueError("--imagenet-c and --corrupt-on-the-fly: choose one")
    needs = ("corruptions", "severities", "estimate_only", "cache_dir")
    given = [f"--{k.replace('_', '-')}" for k in needs if getattr(args, k)]
    if given and not args.corrupt_on_the_fly:
        raise ValueError(f"{', '.join(given)} only apply with --corrupt-on-the-fly")
    if args.out:  # found now, not after the evaluation (the folder is made when writing)
        out = Path(args.out).resolve()
        if out.is_dir():
            raise ValueError(f"--out {args.out}: is a folder; give a file name (results.json)")
        base = next(p for p in out.parents if p.exists())
        if not base.is_dir() or not os.access(base, os.W_OK):
            raise ValueError(f"--out {args.out}: cannot write there ({base} is not writable)")


def _cached(args, clean: ValSet, cs, ss, workers: int, nbytes: int, pool):
    """``--cache-dir``: the clean images in memory, every variant written once to disk."""
    images = np.concatenate([b for _, b, _ in clean.batches(args.batch_size, workers)])
    folder = cache_folder(args.cache_dir, images, clean.labels, cs, ss, args.seed)
    free = None if folder.exists() else _free_bytes(Path(args.cache_dir))
    if free is not None and nbytes > free:
        raise ValueError(
            f"--cache-dir {args.cache_dir}: the cache needs {nbytes / 1e9:,.1f} GB, the disk "
            f"has {free / 1e9:,.1f} GB free; leave out --cache-dir to stream the corruptions "
            "instead"
        )
    folder, manifest = corrupted_set(
        args.cache_dir,
        images,
        clean.labels,
        corruptions=cs,
        severities=ss,
        seed=args.seed,
        workers=workers,
        progress=args.progress,
        source=str(Path(args.val_data).resolve()),
        pool=pool,
        folder=folder,
    )
    arrays = dataclasses.replace(
        array_set(images, clean.labels, clean.where), kind=clean.kind, classes=clean.classes
    )
    return cache_sets(folder, manifest, clean.labels), arrays, f"cache {folder}"


if __name__ == "__main__":
    sys.exit(main())
