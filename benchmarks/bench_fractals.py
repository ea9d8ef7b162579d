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
* store bytes per image (lossless WebP, the default; PNG; JPEG q90) against raw uint8,
  and a sweep of lossless WebP effort settings (size, encode time, decode rate);
* bank load rate: WebP and PNG decode on 1 thread and all threads, JPEG on 1 thread,
  and the raw ``.npy`` cache;
* ``goals``: the issue's targets next to the values measured in this run (ratios are
  taken within the run; "per core" means one thread).

Writes ``benchmarks/results/fractals-<timestamp>.json`` with the command, versions, core
count, load average and git SHA.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
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
from benchmarks.common import median_time, write_result  # noqa: E402
from fractal_store.build import software_versions  # noqa: E402
from fractal_store.escape_time import ESCAPE_FAMILIES  # noqa: E402
from fractal_store.reference import render_escape_numpy  # noqa: E402
from fractal_store.store import (  # noqa: E402
    DEFAULT_WEBP_METHOD,
    DEFAULT_WEBP_QUALITY,
    default_workers,
    encode_image,
)
from ipmix_train.runinfo import run_metadata  # noqa: E402

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
            ref = timed(lambda recs=recs: [render_escape_numpy(r, size) for r in recs], repeats)
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
    paths = {enc: tmp / f"{enc}.zip" for enc in ("webp", "png", "jpeg")}
    built = fs.build_store(paths["webp"], count, size, 0, workers=cores, progress=False)
    png = fs.build_store(
        paths["png"], count, size, 0, workers=cores, progress=False, encoding="png"
    )
    fs.build_store(paths["jpeg"], count, size, 0, workers=cores, jpeg_quality=90, progress=False)
    raw = size * size * 3
    res = {
        "count": count,
        "build_images_per_s_all_cores_webp": built["images_per_second"],
        "build_images_per_s_all_cores_png": png["images_per_second"],
        "rejection": {f: round(r["rate"], 3) for f, r in built["rejection"].items()},
        "raw_bytes_per_image": raw,
        "webp_settings_default": {"method": DEFAULT_WEBP_METHOD, "quality": DEFAULT_WEBP_QUALITY},
    }
    for enc, path in paths.items():  # whole store file (headers, records included) / raw
        res[f"{enc}_bytes_per_image"] = path.stat().st_size / count
        res[f"{enc}_ratio"] = path.stat().st_size / count / raw
    stores = {enc: fs.open(paths[enc]) for enc in ("webp", "png")}
    for w in sorted({1, cores}):  # codecs interleaved, so load changes hit both alike
        times: dict[str, list[float]] = {enc: [] for enc in stores}
        for store in stores.values():
            store.load_bank(workers=w)  # warm-up
        for _ in range(repeats):
            for enc, store in stores.items():
                t = time.perf_counter()
                store.load_bank(workers=w)
                times[enc].append(time.perf_counter() - t)
        for enc in stores:
            res[f"bank_{enc}_per_s_{w}_threads"] = count / statistics.median(times[enc])
    for enc, store in stores.items():
        res[f"bank_{enc}_per_s_per_core"] = res[f"bank_{enc}_per_s_1_threads"]
        store.close()
    with fs.open(paths["webp"]) as store:
        cache = tmp / "cache"
        t = time.perf_counter()
        store.load_bank(cache_dir=cache, workers=cores)
        res["bank_cache_build_s"] = time.perf_counter() - t
        for w in sorted({1, cores}):
            t = timed(lambda w=w: store.load_bank(cache_dir=cache, workers=w), repeats)
            res[f"bank_npy_cache_per_s_{w}_threads"] = count / t
        res["bank_npy_cache_per_s_per_core"] = res["bank_npy_cache_per_s_1_threads"]
        sample = store.load_bank(workers=cores)
    with fs.open(paths["jpeg"]) as store:
        t = timed(lambda: store.load_bank(workers=1), 1)
        res["bank_jpeg90_per_s_1_threads"] = count / t
    res["webp_settings"] = bench_webp_settings(sample[: min(len(sample), 24)])
    return res


def bench_webp_settings(images: np.ndarray) -> list[dict]:
    """Lossless WebP size / encode time / decode rate per (method, quality) setting, and
    PNG for comparison, on the same images (one thread)."""
    from PIL import Image

    raw = images[0].nbytes
    settings = [("png", 6, None), ("png_optimize", None, None)]
    settings += [("webp", m, q) for m, q in ((0, 0), (1, 50), (2, 50), (3, 50), (4, 50))]
    settings += [("webp", 6, 100)] if len(images) > 12 else []
    rows = []
    for name, a, b in settings:
        t = time.perf_counter()
        if name == "webp":
            blobs = [encode_image(x, "webp", webp_method=a, webp_quality=b) for x in images]
        elif name == "png":
            blobs = [encode_image(x, "png", png_level=a) for x in images]
        else:
            blobs = []
            for x in images:
                buf = io.BytesIO()
                Image.fromarray(x).save(buf, format="PNG", optimize=True)
                blobs.append(buf.getvalue())
        enc_s = time.perf_counter() - t
        t = time.perf_counter()
        exact = True
        for x, blob in zip(images, blobs):
            with Image.open(io.BytesIO(blob)) as im:
                exact &= bool((np.asarray(im) == x).all())
        dec_s = time.perf_counter() - t
        rows.append(
            {
                "codec": name,
                "method_or_level": a,
                "quality": b,
                "ratio": float(np.mean([len(x) for x in blobs]) / raw),
                "encode_ms_per_image": 1e3 * enc_s / len(images),
                "decode_per_s_1_thread": len(images) / dec_s,
                "exact": exact,
            }
        )
    return rows


def goals(render: dict, store: dict) -> dict:
    """The issue's measured goals with this run's values."""
    ratios = {f: r["numba_vs_numpy"] for f, r in render.items() if "numba_vs_numpy" in r}
    worst = min(ratios.values())
    load = {k: store[f"bank_{k}_per_s_per_core"] for k in ("webp", "png", "npy_cache")}
    return {
        "numba_vs_numpy_per_core": {
            "goal": ">= 10",
            "per_family": ratios,
            "worst": worst,
            "met": worst >= 10,
        },
        "store_bytes_vs_raw_lossless": {
            "goal": "<= 1/3",
            "webp": store["webp_ratio"],
            "png": store["png_ratio"],
            "met": store["webp_ratio"] <= 1 / 3,
        },
        "bank_load_per_s_per_core": {
            "goal": ">= 2000",
            **load,
            "met_by": [k for k, v in load.items() if v >= 2000],
        },
    }


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
        "meta": run_metadata(),
        "loadavg_at_end": os.getloadavg(),
        "versions": software_versions(),
        "size": args.size,
        "jit": jit,
        "render": render,
        "store": store,
        "goals": goals(render, store),
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
        f"store bytes / raw: WebP lossless {store['webp_ratio']:.3f}, PNG "
        f"{store['png_ratio']:.3f}, JPEG q90 {store['jpeg_ratio']:.3f}"
    )
    for row in store["webp_settings"]:
        print(
            f"  {row['codec']:12s} {row['method_or_level']!s:>4s} q{row['quality']!s:4s} "
            f"ratio {row['ratio']:.3f} encode {row['encode_ms_per_image']:6.1f} ms "
            f"decode {row['decode_per_s_1_thread']:5.0f}/s exact {row['exact']}"
        )
    loads = [f"{k[5:]} {v:.0f}" for k, v in store.items() if k.endswith("threads")]
    print("bank load /s: " + ", ".join(loads))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
