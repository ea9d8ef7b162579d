#!/usr/bin/env python
"""Write the offline demo dataset (Fashion-MNIST as an RGB ImageFolder tree).

python tools/make_demo_dataset.py --out demo_out/fashion_mnist --size 32
"""

from __future__ import annotations

import argparse
import sys
import time

from pipelines.datasets.demo import write_demo_imagefolder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (train/ and val/ inside)")
    p.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    p.add_argument("--train-per-class", type=int, default=500)
    p.add_argument("--val-per-class", type=int, default=100)
    p.add_argument("--format", choices=("jpg", "png"), default="jpg")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.size < 8 or args.train_per_class < 1 or args.val_per_class < 1:
        p.error("--size must be >= 8 and the per-class counts >= 1")
    t0 = time.perf_counter()
    try:
        counts = write_demo_imagefolder(
            args.out,
            size=args.size,
            fmt=args.format,
            train_per_class=args.train_per_class,
            val_per_class=args.val_per_class,
            seed=args.seed,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"make_demo_dataset: error: {e}", file=sys.stderr)
        return 1
    print(
        f"wrote {counts['train']} train + {counts['val']} val images ({args.size}px) to "
        f"{args.out} in {time.perf_counter() - t0:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
