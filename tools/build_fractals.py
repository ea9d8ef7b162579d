"""Build a fractal store for IPMix (or import a folder of pictures as one).

    python tools/build_fractals.py --out data/fractals.zip --count 10000 --size 256 --seed 0
    python tools/build_fractals.py --out data/pixmix.zip --size 256 --from-folder ~/fractals
    python tools/build_fractals.py --out f.zip --count 48 --size 128 --seed 1 --preview f.png

The same arguments give a byte-identical file whatever ``--workers`` is. The store is
written to a hidden temporary file next to ``--out`` and renamed when complete, so an
interrupted run never leaves a broken store (stale temporary files are cleaned up on the
next run). All logic lives in :mod:`fractal_store`; this file only parses arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import fractal_store


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", required=True, type=Path, help="store file to write (.zip)")
    p.add_argument("--count", type=_positive_int, help="number of fractals to render")
    p.add_argument("--size", type=_positive_int, default=256, help="image side in px (256)")
    p.add_argument("--seed", type=int, default=0, help="set seed, >= 0 (0)")
    p.add_argument(
        "--families",
        nargs="+",
        choices=fractal_store.FAMILIES,
        metavar="FAMILY",
        help="fractal families, used round robin (default: all of %(choices)s)",
    )
    p.add_argument("--workers", type=_positive_int, help="threads (default: all CPUs)")
    p.add_argument(
        "--from-folder",
        type=Path,
        metavar="DIR",
        help="import the pictures under DIR instead of rendering",
    )
    p.add_argument(
        "--jpeg",
        type=int,
        metavar="QUALITY",
        help="store JPEG of this quality (1-100) instead of lossless WebP",
    )
    p.add_argument(
        "--png",
        action="store_true",
        help="store lossless PNG instead of lossless WebP (~1.3x larger, same decode speed)",
    )
    p.add_argument(
        "--preview",
        type=Path,
        metavar="PNG",
        help="also write a contact sheet of the first 48 images",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.from_folder is None and args.count is None:
        p.error("--count is required unless --from-folder is given")
    if args.from_folder is not None and (args.count is not None or args.families):
        p.error("--count and --families do not apply to --from-folder")
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    if args.jpeg is not None and not 1 <= args.jpeg <= 100:
        p.error(f"--jpeg QUALITY must be in 1..100, got {args.jpeg}")
    if args.jpeg is not None and args.png:
        p.error("--jpeg and --png are exclusive")
    if not 8 <= args.size <= 4096:
        p.error(f"--size must be in 8..4096, got {args.size}")
    parent = args.out.resolve().parent
    if args.out.is_dir():
        p.error(f"--out {args.out} is a directory; give a file name such as fractals.zip")
    if not parent.is_dir():
        p.error(f"--out {args.out}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        p.error(f"--out {args.out}: directory {parent} is not writable")
    if args.from_folder is not None and not args.from_folder.is_dir():
        p.error(f"--from-folder {args.from_folder} is not a directory")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.from_folder is not None:
            summary = fractal_store.import_folder(
                args.out,
                args.from_folder,
                args.size,
                jpeg_quality=args.jpeg,
                workers=args.workers,
                progress=not args.quiet,
                encoding="png" if args.png else None,
            )
        else:
            summary = fractal_store.build_store(
                args.out,
                args.count,
                args.size,
                args.seed,
                families=args.families,
                workers=args.workers,
                jpeg_quality=args.jpeg,
                progress=not args.quiet,
                encoding="png" if args.png else None,
            )
        if args.preview is not None:
            summary["preview"] = fractal_store.write_preview(args.out, args.preview)
    except (fractal_store.FractalStoreError, ValueError, OSError) as e:
        print(f"build_fractals: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(fractal_store.format_summary(summary))
        if args.preview is not None:
            print(f"preview: {summary['preview']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
