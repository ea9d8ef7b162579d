#!/usr/bin/env python
"""Per-op cost of the 15 IPMix image ops: Pillow vs the Numba kernels (single thread).

    python benchmarks/bench_ops.py [--size 224] [--repeats 7] [--quick] [--no-compile]
                                   [--out benchmarks/results/ops-<time>.json]

Image: scikit-image's astronaut photo resized to S x S. Pillow times include
``Image.fromarray`` and ``np.asarray`` (what a NumPy pipeline pays); Numba times are one
kernel call ``<op>_k(src, dst, param, 0, 0, S, S)`` on the full image into a preallocated
``dst``. Both: warm-up first, then the median over ``--repeats`` runs of a batch of calls,
reported in microseconds per image. Each result is checked against Pillow
(docs/algorithm.md §3: at most 1 level apart on >= 99% of the pixels). The JIT compile time
of every kernel is measured apart, in a fresh process with an empty Numba cache (skip with
``--no-compile``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import median_time, metadata, print_table, write_result  # noqa: E402
from ipmix_ops import ops  # noqa: E402

# (op, parameter): one typical imagenet-preset value per op, plus larger magnitudes for the
# geometric ops, whose cost depends on the parameter.
CASES: tuple[tuple[str, float], ...] = (
    ("equalize", 0.0),
    ("posterize", 3.0),
    ("rotate", 2.0),
    ("rotate", 10.0),
    ("rotate", 30.0),
    ("solarize", 200.0),
    ("shear_x", 0.03),
    ("shear_x", 0.3),
    ("shear_y", 0.03),
    ("shear_y", 0.3),
    ("translate_x", 7.0),
    ("translate_x", 2.5),
    ("translate_y", -7.0),
    ("mirror", 0.0),
    ("invert", 0.0),
    ("autocontrast", 5.0),
    ("color", 1.5),
    ("contrast", 1.5),
    ("brightness", 1.5),
    ("sharpness", 1.5),
)


def photo(size: int) -> np.ndarray:
    """scikit-image's astronaut (512 x 512 RGB) resized to ``size`` x ``size``, uint8."""
    from skimage import data

    im = Image.fromarray(data.astronaut()).resize((size, size), Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(im))


def pillow_fn(name: str, p: float) -> Callable[[Image.Image], Image.Image]:
    """The Pillow call equivalent to op ``name`` with parameter ``p``."""
    bil = Image.Resampling.BILINEAR
    aff = Image.Transform.AFFINE
    enhance = {
        "color": ImageEnhance.Color,
        "contrast": ImageEnhance.Contrast,
        "brightness": ImageEnhance.Brightness,
        "sharpness": ImageEnhance.Sharpness,
    }
    matrix = {
        "shear_x": (1, p, 0, 0, 1, 0),
        "shear_y": (1, 0, 0, p, 1, 0),
        "translate_x": (1, 0, p, 0, 1, 0),
        "translate_y": (1, 0, 0, 0, 1, p),
    }
    if name in enhance:
        return lambda im: enhance[name](im).enhance(p)
    if name in matrix:
        return lambda im: im.transform(im.size, aff, matrix[name], resample=bil)
    return {
        "equalize": ImageOps.equalize,
        "posterize": lambda im: ImageOps.posterize(im, int(p)),
        "rotate": lambda im: im.rotate(p, resample=bil),
        "solarize": lambda im: ImageOps.solarize(im, p),
        "mirror": ImageOps.mirror,
        "invert": ImageOps.invert,
        "autocontrast": lambda im: ImageOps.autocontrast(im, p),
    }[name]


def per_call_us(fn: Callable[[], object], number: int, repeats: int) -> float:
    """Median microseconds per ``fn()`` call over ``repeats`` batches of ``number`` calls."""

    def batch() -> None:
        for _ in range(number):
            fn()

    return 1e6 * median_time(batch, repeats=repeats, warmup=1) / number


def cold_compile_seconds(size: int) -> dict[str, float]:
    """First-call seconds of every kernel in a fresh process with an empty Numba cache."""
    code = (
        "import json, time, numpy as np\n"
        "from ipmix_ops import ops\n"
        f"src = np.zeros(({size}, {size}, 3), np.uint8); dst = src.copy(); out = {{}}\n"
        "for name in ops.OP_NAMES:\n"
        "    t0 = time.perf_counter()\n"
        f"    getattr(ops, name + '_k')(src, dst, 1.0, 0, 0, {size}, {size})\n"
        "    out[name] = time.perf_counter() - t0\n"
        "t0 = time.perf_counter()\n"
        f"ops.apply_op_k(0, src, dst, 1.0, 0, 0, {size}, {size})\n"
        "out['apply_op_k'] = time.perf_counter() - t0\n"
        "print(json.dumps(out))\n"
    )
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(root)}
        res = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=7, help="timed batches per measurement")
    ap.add_argument("--number", type=int, default=20, help="calls per timed batch")
    ap.add_argument("--quick", action="store_true", help="3 batches of 5 calls")
    ap.add_argument("--no-compile", action="store_true", help="skip the cold-compile timing")
    ap.add_argument("--out", help="JSON path (default benchmarks/results/ops-<time>.json)")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats, args.number = 3, 5

    compile_s = None if args.no_compile else cold_compile_seconds(args.size)
    img = photo(args.size)
    dst = np.empty_like(img)
    s = args.size
    rows = []
    for name, p in CASES:
        kernel = getattr(ops, f"{name}_k")
        pil = pillow_fn(name, p)
        t0 = time.perf_counter()
        kernel(img, dst, p, 0, 0, s, s)  # compile or load from the cache
        first_call = time.perf_counter() - t0
        ref = np.asarray(pil(Image.fromarray(img)))
        diff = np.abs(dst.astype(np.int16) - ref.astype(np.int16))
        # docs/algorithm.md §3: exact for the point ops, <= 1 level on >= 99% of pixels otherwise
        assert np.mean(diff.max(axis=-1) <= 1) >= 0.99, (name, p)
        t_pil = per_call_us(
            lambda pil=pil: np.asarray(pil(Image.fromarray(img))), args.number, args.repeats
        )
        t_nb = per_call_us(
            lambda k=kernel, p=p: k(img, dst, p, 0, 0, s, s), args.number, args.repeats
        )
        rows.append(
            {
                "op": name,
                "param": p,
                "pillow_us": round(t_pil, 1),
                "numba_us": round(t_nb, 1),
                "speedup": round(t_pil / t_nb, 1),
                "first_call_s": round(first_call, 3),
            }
        )

    print(f"IPMix ops, {s}x{s} astronaut, µs per image, Numba single-threaded")
    print_table(rows, ["op", "param", "pillow_us", "numba_us", "speedup"])
    if compile_s is not None:
        total = sum(compile_s.values())
        print(f"cold JIT compile (empty cache, all kernels + dispatcher): {total:.1f} s")
    meta = metadata("scikit-image")
    meta["cpu_count"] = os.cpu_count()
    payload = {
        "meta": meta,
        "size": s,
        "image": "skimage.data.astronaut() resized (bilinear)",
        "repeats": args.repeats,
        "number": args.number,
        "pillow_includes": "Image.fromarray + op + np.asarray",
        "cold_compile_s": compile_s,
        "rows": rows,
    }
    path = write_result("ops", payload, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
