"""Shared benchmark plumbing: timing (warm-up + median), JSON results (run metadata:
``ipmix_train.runinfo.run_metadata``)."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from fractal_store.store import default_workers

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def median_time(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def int_list(text: str) -> list[int]:
    """argparse type: ``"1,2,4"`` -> [1, 2, 4]; ``all`` stands for :func:`default_workers`."""
    try:
        vals = [default_workers() if v.strip() == "all" else int(v) for v in text.split(",")]
    except ValueError as err:
        msg = f"expected a comma list of integers or 'all', got {text!r}"
        raise argparse.ArgumentTypeError(msg) from err
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return list(dict.fromkeys(vals))


def write_result(name: str, payload: dict, out: str | None = None) -> Path:
    """Write ``payload`` as JSON (to ``out`` or ``benchmarks/results/<name>-<time>.json``)."""
    path = Path(out) if out else RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)
    return path


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)))


def rate_fields(
    n_images: int, seconds: float, cores: int, first_s: float, cpu_s: float | None = None
) -> dict:
    """The throughput columns shared by the pipeline benchmarks (per run and per core).

    ``img/s/core`` divides by the nominal worker count; with ``cpu_s`` (CPU seconds of every
    thread and worker process, see ``bench_pipelines.time_loader``) the row also has the
    CPU cost per image and images per CPU-second, which count the consumer thread and any
    extra Numba threads too: the per-core figure to compare backends by."""
    out = {
        "img/s": round(n_images / seconds, 1),
        "img/s/core": round(n_images / seconds / cores, 1),
        "ms/img/core": round(1e3 * seconds * cores / n_images, 2),
        "first epoch s": round(first_s, 1),
        "epoch s": round(seconds, 2),
    }
    if cpu_s is not None:
        out["cpu ms/img"] = round(1e3 * cpu_s / n_images, 2)
        out["img/cpu-s"] = round(n_images / cpu_s, 1)
    return out
