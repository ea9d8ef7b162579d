#!/usr/bin/env python
"""Write an ImageFolder tree (<data-dir>/<class>/<image>) into an FFCV .beton file.

python tools/write_beton.py --data-dir imagenet/train --out train.beton --max-resolution 256

Fields: image (RGBImageField) and label (IntField, ImageFolder's class index). Grey, CMYK,
palette and alpha images are converted to RGB. Unreadable files, and pictures whose shorter
side once stored (after --max-resolution) is under --min-side px (default 16: FFCV's crops of
a 1 px side are empty and abort training; under ~16 px they show no class) or whose aspect
exceeds --max-aspect, are skipped: counted by reason and listed here, all of them in
<out>.skipped.tsv (--strict: stop at the first one, exit status 1). The file appears only
when complete.
Logic: pipelines/datasets/beton.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines.datasets.beton import (
    MIN_SIDE,
    WRITE_MODES,
    BetonError,
    format_summary,
    write_beton,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", required=True, help="ImageFolder root: <class>/<image> inside")
    p.add_argument("--out", required=True, help="the .beton file to write")
    p.add_argument(
        "--max-resolution",
        type=int,
        default=256,
        help="shrink the longer side to this many pixels; 0 keeps sizes (default 256)",
    )
    p.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality (default 90)")
    p.add_argument(
        "--compress-probability",
        type=float,
        default=0.5,
        help="proportion mode: share of images stored as JPEG (default 0.5)",
    )
    p.add_argument(
        "--write-mode",
        choices=WRITE_MODES,
        default="smart",
        help="smart: raw up to 96x96 px, JPEG above (default); raw; jpg; proportion",
    )
    p.add_argument("--num-workers", type=int, default=None, help="processes (default: cores)")
    p.add_argument("--chunk-size", type=int, default=100, help="images per work item")
    p.add_argument("--subset", type=int, default=None, help="write N images spread evenly")
    p.add_argument("--seed", type=int, default=0, help="proportion mode: which are JPEG")
    p.add_argument(
        "--min-side",
        type=int,
        default=MIN_SIDE,
        help=f"skip pictures with a shorter stored side under this (px, >= 2; default {MIN_SIDE})",
    )
    p.add_argument(
        "--max-aspect",
        type=float,
        default=None,
        help="skip pictures more elongated than this (long/short side; default: no limit)",
    )
    p.add_argument("--strict", action="store_true", help="stop at the first unusable file")
    p.add_argument("--summary-json", default=None, help="also write the summary as JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    try:
        summary = write_beton(
            args.data_dir,
            args.out,
            max_resolution=args.max_resolution or None,
            jpeg_quality=args.jpeg_quality,
            compress_probability=args.compress_probability,
            write_mode=args.write_mode,
            num_workers=args.num_workers,
            chunk_size=args.chunk_size,
            subset=args.subset,
            min_side=args.min_side,
            max_aspect=args.max_aspect,
            strict=args.strict,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except (BetonError, ValueError) as e:
        print(f"write_beton: error: {e}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    report = Path(f"{args.out}.skipped.tsv")
    report.unlink(missing_ok=True)  # an earlier run's list would describe another file
    if summary.skipped:
        report.write_text("".join(f"{p}\t{why}\n" for p, why in summary.skipped))
        print(f"all {len(summary.skipped)} skipped files, with reasons: {report}")
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
