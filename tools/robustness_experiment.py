#!/usr/bin/env python
"""IPMix vs vanilla (and AugMix) on corruption robustness and calibration (``make robustness``).

    python tools/robustness_experiment.py                 # default: 2 seeds, ~30 min on 2 cores
    python tools/robustness_experiment.py --quick         # a few minutes, one seed
    python tools/robustness_experiment.py --seeds 0 1 2 --epochs 12 --out runs/robustness

Trains a CIFAR ResNet-8 on the offline Fashion-MNIST demo set (32 px RGB) through the FFCV
pipeline for each method and seed, evaluates clean error, mean corruption error (15
ImageNet-C corruptions x 5 severities on a held-out test subset) and RMS calibration error,
and writes ``results.json``, ``results.md`` and ``robustness.png`` to ``--out``. The default
run also regenerates the README section between the robustness markers (``--readme``).
Finished runs are reused when called again with the same settings (see ipmix_train/robustness.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ipmix_train.robustness import METHODS, Spec, run_experiment, update_readme

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small data, 3 epochs, one seed")
    p.add_argument("--out", help="output folder (default runs/robustness/default, or .../quick)")
    p.add_argument("--seeds", type=int, nargs="+", help="training seeds")
    p.add_argument("--methods", nargs="+", choices=METHODS, help="default: all")
    p.add_argument("--epochs", type=int)
    p.add_argument("--train-per-class", type=int)
    p.add_argument("--val-per-class", type=int)
    p.add_argument("--test-per-class", type=int, help="corrupted test images per class")
    p.add_argument("--arch", help="cifar_resnet8 (default), cifar_resnet20, ...")
    p.add_argument("--workers", type=int, help="FFCV threads and corruption processes")
    p.add_argument(
        "--eval-crop",
        action=argparse.BooleanOptionalAction,
        help="evaluate centre crops of 224/256 (ImageNet style) instead of whole images",
    )
    p.add_argument(
        "--crop-scale", type=float, nargs=2, metavar=("LO", "HI"), help="train crop area range"
    )
    p.add_argument(
        "--readme",
        nargs="?",
        const=str(ROOT / "README.md"),
        help="update this README's robustness section (default run: README.md)",
    )
    p.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    over = {
        k: v
        for k, v in {
            "seeds": tuple(args.seeds) if args.seeds else None,
            "methods": tuple(args.methods) if args.methods else None,
            "epochs": args.epochs,
            "train_per_class": args.train_per_class,
            "val_per_class": args.val_per_class,
            "test_per_class": args.test_per_class,
            "arch": args.arch,
            "workers": args.workers,
            "crop_scale": tuple(args.crop_scale) if args.crop_scale else None,
            "eval_crop": args.eval_crop,
        }.items()
        if v is not None
    }
    try:
        spec = Spec.quick(**over) if args.quick else Spec(**over)
    except (TypeError, ValueError) as e:
        p.error(str(e))
    out = Path(args.out or (ROOT / "runs" / "robustness" / ("quick" if args.quick else "default")))
    readme = args.readme
    if readme is None and not args.quick and not over:
        readme = str(ROOT / "README.md")
    if args.no_readme:
        readme = None
    t0 = time.perf_counter()
    result = run_experiment(out, spec, progress=args.progress)
    print((out / "results.md").read_text())
    if readme:
        cmd = (
            "make robustness"
            if not argv and not sys.argv[1:]
            else " ".join(
                [
                    "python tools/robustness_experiment.py",
                    *(argv if argv is not None else sys.argv[1:]),
                ]
            )
        )
        update_readme(readme, result, cmd)
        print(f"updated {readme}")
    print(f"done in {(time.perf_counter() - t0) / 60:.1f} min; outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
