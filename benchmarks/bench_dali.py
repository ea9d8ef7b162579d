#!/usr/bin/env python
"""DALI loader throughput per core: without IPMix, IPMix one view, IPMix JSD.

    python benchmarks/bench_dali.py [--images 1024] [--size 224] [--threads 1] [--quick]
    python benchmarks/bench_dali.py --threads 1,all          # core scaling
    python benchmarks/bench_dali.py --device gpu             # mixed decode (needs CUDA)

Data: the ImageNet-like JPEGs of ``bench_pipelines.py`` (random crops/rescales of the
scikit-image photos to 500x375 or 375x500, q90) as a temporary ImageFolder. By default
(``--device cpu``) the DALI graph runs on the CPU (``device_id=None``): ROI JPEG decode,
keyed random-resized crop + flip, and IPMix through DALI's Numba plugin calling the
``ipmix_ops`` kernels. ``--device gpu``: the GPU default of :mod:`pipelines.dali.loader`
(mixed decode, keyed crop and flip on the GPU, IPMix by the Triton renderer after the
iterator, ``ipmix_device="cuda"``), written as ``dali_gpu-<time>.json``.

Each loader runs one warm-up epoch (JIT compile and the one pipeline build, reported apart)
and the median of ``--repeats`` epochs.
``img/s/core`` = images/s divided by the DALI CPU threads (the consuming main thread is not
counted); ``--threads`` takes a comma list (rows carry ``threads``). Results: JSON in
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_pipelines import imagenet_like_folder, photo_bank, time_loader  # noqa: E402
from benchmarks.common import (  # noqa: E402
    int_list,
    print_table,
    rate_fields,
    write_result,
)
from ipmix_ops import IPMixConfig  # noqa: E402
from ipmix_train.runinfo import run_metadata  # noqa: E402
from pipelines.contract import LoaderOptions  # noqa: E402
from pipelines.dali.loader import make_loader  # noqa: E402

CASES = (("off", None), ("1 view", False), ("JSD", True))  # (label, jsd; None: no IPMix)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument(
        "--threads", type=int_list, default=[1], help="DALI CPU threads: a count or a list 1,2"
    )
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="DALI graph device")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="256 images, batch 32, 2 repeats")
    p.add_argument("--out", help="JSON path (default benchmarks/results/dali-<time>.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.repeats, args.batch = 256, 2, 32
    if args.device == "gpu" and not torch.cuda.is_available():
        p.error("--device gpu: no CUDA device visible to torch")
    torch_device = torch.device("cuda" if args.device == "gpu" else "cpu")
    # IPMix: the Numba plugin on the CPU; on a GPU the Triton renderer after the iterator
    ipmix_device = "cuda" if args.device == "gpu" else "cpu"
    impl = {"cpu": "Numba plugin", "cuda": "Triton renderer"}[ipmix_device]
    bank, bank_desc = photo_bank(IPMixConfig.preset("imagenet", image_size=args.size).fractal_size)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "train"
        data = imagenet_like_folder(root, args.images)
        print(
            f"data: {data['images']} JPEGs 500x375/375x500 q90 (mean {data['mean_jpeg_kb']} kB);"
            f" bank: {bank_desc}"
        )
        cases = [(t, *c) for t in args.threads for c in CASES]
        for threads, label, jsd in tqdm(cases, desc="dali loaders"):
            opts = LoaderOptions(
                train=True,
                batch_size=args.batch,
                image_size=args.size,
                seed=0,
                num_workers=threads,
                device=torch_device,
                ipmix_device=ipmix_device,
            )
            cfg = None
            if jsd is not None:
                cfg = IPMixConfig.preset("imagenet", image_size=args.size, jsd=jsd)
                opts = LoaderOptions(**{**opts.__dict__, "mean": cfg.mean, "std": cfg.std})
            loader = make_loader(root, opts, cfg, bank if cfg else None, device=args.device)
            first, t, cpu_s = time_loader(loader, args.repeats)
            n = len(loader) * args.batch
            rows.append(
                {
                    "pipeline": f"dali ({args.device})",
                    "IPMix": label if cfg is None else f"{label} ({impl})",
                    "threads": threads,
                    **rate_fields(n, t, threads, first, cpu_s),
                }
            )
            tqdm.write(
                f"  dali {args.device} {label}, {threads} thread(s): "
                f"{rows[-1]['img/s/core']} img/s/core"
            )
            del loader

    print(
        f"\n{args.size}px, batch {args.batch}, {args.threads} DALI thread(s), median of "
        f"{args.repeats} epochs after a warm-up epoch (first epoch includes JIT compile)"
    )
    print_table(rows, list(rows[0]))
    path = write_result(
        "dali" if args.device == "cpu" else "dali_gpu",
        {
            "meta": run_metadata("nvidia-dali-cuda120", "torch"),
            "data": {**data, "source": "scikit-image photos, random crops/rescales, q90"},
            "bank": bank_desc,
            "size": args.size,
            "batch": args.batch,
            "threads": args.threads[0],
            "threads_list": args.threads,
            "device": args.device,
            "repeats": args.repeats,
            "rows": rows,
        },
        args.out,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
