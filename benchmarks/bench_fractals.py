"""Benchmark the fractal renderers, the store size and the bank load rate.

    python benchmarks/bench_fractals.py            # full run (a few minutes on 2 cores)
    python benchmarks/bench_fractals.py --quick    # smaller samples, no cold-compile run

Measures, at ``--size`` (256) px:

* fractals per second per core for each family (serial GIL-free kernel, one thread) and
  on all cores (thread pool of serial kernels), median of several timed runs after a
  warm-up;
* the Numba escape-time renderer against the vectorised NumPy implementation of the same
  algorithm (:mod:`fractal_store.reference`) on the same records, single thread each;
* JIT cost: first call with the cache as found, and (not with ``--quick``) a cold compile
  in a subprocess with an empty ``NUMBA_CACHE_DIR``;
* store bytes per image (PNG, JPEG q90) against raw uint8;
* bank load rate: PNG decode on 1 thread and all threads, and the raw ``.npy`` cache.

Writes ``benchmarks/results/fractals-<timestamp>.json`` with the command, versions, core
count, load average and git SHA.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import fractal_store as fs  # noqa: E402
from benchmarks.common import median_time, metadata, write_result  # noqa: E402
from fractal_store.build import software_versions  # noqa: E402
from fractal_store.escape_time import ESCAPE_FAMILIES  # noqa: E402
from fractal_store.reference import render_escape_numpy  # noqa: E402
from fractal_store.store import default_workers  # noqa: E402

COLD = """
import time, fractal_store as fs
t = time.perf_counter()
for i, f in enumerate(fs.FAMILIES):
    fs.render(fs.draw(0, i, 32)[1], 32, parallel=False)
    fs.render(fs.draw(0, i, 32)[1], 32, parallel=True)
print(time.perf_counter() - t)
"""


def timed(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after one warm-up call."""
    return median_time(fn, repeats=repeats, warmup=1)


def bench_render(records: dict, size: int, repeats: int, cores: int) -> dict:
    out = {}
    for fam, recs in records.items():
        one = timed(lambda recs=recs: [fs.render(r, size, parallel=False) for r in recs], repeats)
        with ThreadPoolExecutor(cores) as ex:

            def pool(recs=recs):
                list(
                    ex.map(
                        fs.render,
                        recs * cores,
                        [size] * (len(recs) * cores),
                        [False] * (len(recs) * cores),
                    )
                )

            allc = timed(pool, repeats)
        row = {
            "images": len(recs),
            "per_core_per_s": len(recs) / one,
            "all_cores_per_s": len(recs) * cores / allc,
            "ms_per_image_1_thread": 1e3 * one / len(recs),
        }
        if fam in ESCAPE_FAMILIES:
            ref = timed(lambda recs=recs: [render_escape_numpy(r, size) for r in recs], 1)
            same = np.mean(
                [
                    np.all(fs.render(r, size) == render_escape_numpy(r, size), -1).mean()
                    for r in recs[:1]
                ]
            )
            row.update(
                numpy_per_s=len(recs) / ref,
                numba_vs_numpy=ref / one,
                pixels_equal_to_numpy=float(same),
            )
        out[fam] = row
    return out


def bench_store(tmp: Path, count: int, size: int, cores: int, repeats: int) -> dict:
    png, jpg = tmp / "png.zip", tmp / "jpg.zip"
    built = fs.build_store(png, count, size, 0, workers=cores, progress=False)
    fs.build_store(jpg, count, size, 0, workers=cores, jpeg_quality=90, progress=False)
    raw = size * size * 3
    res = {
        "count": count,
        "build_images_per_s_all_cores": built["images_per_second"],
        "rejection": {f: round(r["rate"], 3) for f, r in built["rejection"].items()},
        "raw_bytes_per_image": raw,
        "png_bytes_per_image": built["bytes_per_image"],
        "png_ratio": built["bytes_per_image"] / raw,
        "jpeg90_bytes_per_image": jpg.stat().st_size / count,
        "jpeg90_ratio": jpg.stat().st_size / count / raw,
    }
    with fs.open(png) as store:
        for w in sorted({1, cores}):
            t = timed(lambda w=w: store.load_bank(workers=w), repeats)
            res[f"bank_png_per_s_{w}_threads"] = count / t
        res["bank_png_per_s_per_core"] = res["bank_png_per_s_1_threads"]
        cache = tmp / "cache"
        t = time.perf_counter()
        store.load_bank(cache_dir=cache, workers=cores)
        res["bank_cache_build_s"] = time.perf_counter() - t
        for w in sorted({1, cores}):
            t = timed(lambda w=w: store.load_bank(cache_dir=cache, workers=w), repeats)
            res[f"bank_npy_cache_per_s_{w}_threads"] = count / t
    with fs.open(jpg) as store:
        res["bank_jpeg90_per_s_1_threads"] = count / timed(lambda: store.load_bank(workers=1), 1)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small samples, skip cold compile")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    cores = default_workers()
    per_family = 3 if args.quick else 8
    repeats = 3 if args.quick else 5
    store_count = 40 if args.quick else 200

    t = time.perf_counter()
    records = {f: [] for f in fs.FAMILIES}
    first_call = {}
    for i in range(per_family * len(fs.FAMILIES)):
        t1 = time.perf_counter()
        _, rec, _ = fs.draw(0, i, 64)
        if rec["family"] not in first_call:
            fs.render(rec, 32, parallel=False)
            fs.render(rec, 32, parallel=True)
            first_call[rec["family"]] = time.perf_counter() - t1
        records[rec["family"]].append(rec)
    jit = {"first_call_s_cache_as_found": first_call, "sampling_s": time.perf_counter() - t}
    if not args.quick:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            out = subprocess.run(
                [sys.executable, "-c", COLD],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            jit["cold_compile_all_kernels_s"] = float(out.stdout.strip().splitlines()[-1])

    render = bench_render(records, args.size, repeats, cores)
    with tempfile.TemporaryDirectory() as tmp:
        store = bench_store(Path(tmp), store_count, args.size, cores, repeats)

    result = {
        "meta": metadata(),
        "loadavg_at_end": os.getloadavg(),
        "versions": software_versions(),
        "size": args.size,
        "jit": jit,
        "render": render,
        "store": store,
    }
    path = write_result(
        "fractals", result, str(args.out_dir / f"fractals-{time.strftime('%Y%m%d-%H%M%S')}.json")
    )

    print(f"fractals at {args.size} px, {cores} cores, load {os.getloadavg()[0]:.2f}")
    print(f"{'family':14s}{'1 core/s':>10s}{'all/s':>9s}{'numpy/s':>9s}{'x numpy':>9s}")
    for fam, r in render.items():
        extra = f"{r['numpy_per_s']:9.2f}{r['numba_vs_numpy']:9.1f}" if "numpy_per_s" in r else ""
        print(f"{fam:14s}{r['per_core_per_s']:10.2f}{r['all_cores_per_s']:9.2f}{extra}")
    print(
        f"JIT first call (cache as found): "
        f"{', '.join(f'{k} {v:.2f}s' for k, v in first_call.items())}"
    )
    if "cold_compile_all_kernels_s" in jit:
        print(f"cold compile of all kernels: {jit['cold_compile_all_kernels_s']:.1f} s")
    print(
        f"store: PNG {store['png_bytes_per_image']:.0f} B/image = {store['png_ratio']:.3f} of "
        f"raw; JPEG q90 {store['jpeg90_ratio']:.3f} of raw"
    )
    loads = [f"{k[5:]} {v:.0f}" for k, v in store.items() if k.endswith("threads")]
    print("bank load /s: " + ", ".join(loads))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
