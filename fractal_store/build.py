"""Building a store of rendered fractals, and contact sheets for looking at one.

:func:`build_store` draws images ``0 .. count-1`` of the set ``seed`` (see
:mod:`fractal_store.sampling`) on a thread pool of serial, GIL-free Numba renderers,
encodes them there, and writes them in index order, so the file is byte-identical for
the same arguments whatever ``workers`` is.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from .sampling import FAMILIES, PROBE_SIZE, SAMPLER_VERSION, draw, render, sample_params
from .store import (
    DEFAULT_ENCODING,
    DEFAULT_PNG_LEVEL,
    ENCODINGS,
    LOSSLESS_ENCODINGS,
    StoreWriter,
    default_workers,
    encode_image,
)

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map(fn, items)`` on a thread pool, results in input order, at most ``4 * workers``
    items in flight (bounded memory)."""
    with ThreadPoolExecutor(max(1, workers)) as ex:
        window: deque = deque()
        for item in items:
            window.append(ex.submit(fn, item))
            if len(window) >= 4 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def software_versions() -> dict:
    """Versions of the libraries that determine a store's bytes."""
    import numba
    import PIL

    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "numba": numba.__version__,
        "pillow": PIL.__version__,
    }


def _check_args(count: int, size: int, seed: int, jpeg_quality: int | None) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 4096:
        raise ValueError(f"size must be an integer in 8..4096, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if jpeg_quality is not None and not 1 <= jpeg_quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {jpeg_quality!r}")


def resolve_encoding(encoding: str | None, jpeg_quality: int | None) -> str:
    """The store encoding for the writer arguments: ``jpeg_quality`` means JPEG; otherwise
    ``encoding`` (``webp`` by default, or ``png``)."""
    if encoding is None:
        return DEFAULT_ENCODING if jpeg_quality is None else "jpeg"
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")
    if encoding in LOSSLESS_ENCODINGS and jpeg_quality is not None:
        raise ValueError(f"jpeg_quality={jpeg_quality} given with lossless encoding {encoding!r}")
    return encoding


def _progress(total: int, enabled: bool, desc: str, unit: str = "img"):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit=unit, dynamic_ncols=True)


def warm_up(families: Sequence[str], progress: bool = True) -> float:
    """Compile the renderers of ``families`` (or load them from Numba's cache) before the
    worker threads start, under a progress bar of their own: on a machine's first run this
    takes about a minute, and the image bar would otherwise sit at 0 without saying why.
    Returns the seconds taken (well under one once cached)."""
    t0 = time.perf_counter()
    desc = "renderers (a first run compiles them, ~1 min)"
    with _progress(len(families), progress, desc, unit="family") as bar:
        for i, family in enumerate(families):
            render(sample_params(family, np.random.default_rng(i)), 8, parallel=False)
            bar.update()
    return time.perf_counter() - t0


def build_store(
    path: str | os.PathLike,
    count: int,
    size: int,
    seed: int,
    families: Sequence[str] | None = None,
    workers: int | None = None,
    jpeg_quality: int | None = None,
    progress: bool = True,
    png_level: int = DEFAULT_PNG_LEVEL,
    encoding: str | None = None,
) -> dict:
    """Render ``count`` fractals of ``size`` px (set ``seed``) into the store at ``path``.

    ``families``: subset of :data:`~fractal_store.sampling.FAMILIES` (default: all),
    used round robin. ``encoding``: ``"webp"`` (default, lossless), ``"png"`` (lossless,
    larger) or ``"jpeg"``; ``jpeg_quality`` alone selects JPEG (default quality 90). Returns a
    summary dict: ``count``, ``bytes``, ``bytes_per_image``, ``raw_bytes_per_image``,
    ``seconds``, ``images_per_second`` and per-family ``rejection`` statistics.
    """
    _check_args(count, size, seed, jpeg_quality)
    families = tuple(FAMILIES if families is None else families)
    unknown = sorted(set(families) - set(FAMILIES))
    if not families or unknown or len(set(families)) != len(families):
        raise ValueError(f"families must be distinct names from {FAMILIES}, got {families}")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    encoding = resolve_encoding(encoding, jpeg_quality)
    generator = {
        "kind": "fractals",
        "seed": seed,
        "families": list(families),
        "family_of_index": "families[index % len(families)]",
        "rng": "numpy.random.default_rng([seed, index])",
        "sampler_version": SAMPLER_VERSION,
        "probe_size": PROBE_SIZE,
        "software": software_versions(),
    }

    def job(index: int) -> tuple[bytes, dict, list[str]]:
        img, rec, reasons = draw(seed, index, size, families, parallel=False)
        return encode_image(img, encoding, jpeg_quality or 90, png_level), rec, reasons

    warm_up(families, progress)
    accepted: Counter = Counter()
    rejected: dict[str, Counter] = {f: Counter() for f in families}
    t0 = time.perf_counter()
    with (
        StoreWriter(path, size, encoding, generator, jpeg_quality, png_level) as writer,
        _progress(count, progress, "fractals") as bar,
    ):
        for data, rec, reasons in ordered_map(job, range(count), workers):
            writer.add(data, rec)
            accepted[rec["family"]] += 1
            rejected[rec["family"]].update(reasons)
            bar.update()
    seconds = time.perf_counter() - t0
    rejection = {}
    for f in families:
        n_rej = sum(rejected[f].values())
        rejection[f] = {
            "images": accepted[f],
            "rejected": n_rej,
            "rate": n_rej / max(1, n_rej + accepted[f]),
            "reasons": dict(sorted(rejected[f].items())),
        }
    return {**store_summary(path, count, size, encoding, seconds, workers), "rejection": rejection}


def store_summary(
    path: str | os.PathLike, count: int, size: int, encoding: str, seconds: float, workers: int
) -> dict:
    """The summary fields every store writer reports (sizes, rate, settings)."""
    nbytes = os.path.getsize(path)
    return {
        "path": os.fspath(path),
        "count": count,
        "size": size,
        "encoding": encoding,
        "bytes": nbytes,
        "bytes_per_image": nbytes / count,
        "raw_bytes_per_image": size * size * 3,
        "seconds": seconds,
        "images_per_second": count / seconds if seconds > 0 else float("inf"),
        "workers": workers,
    }


def contact_sheet(
    images: Sequence[np.ndarray] | np.ndarray, cols: int = 8, pad: int = 2
) -> np.ndarray:
    """Tile equally sized uint8 ``[H, W, 3]`` images into one uint8 sheet (white gaps)."""
    n = len(images)
    if n == 0:
        raise ValueError("no images for the contact sheet")
    h, w = images[0].shape[:2]
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        sheet[y : y + h, x : x + w] = img
    return sheet


def write_preview(
    store_path: str | os.PathLike, out_png: str | os.PathLike, n: int = 48, tile: int = 128
) -> str:
    """Save a contact sheet of the first ``n`` images of a store (read back and verified),
    each resized to ``tile`` px; returns the PNG path."""
    from PIL import Image

    from .reader import FractalStore

    with FractalStore(store_path) as store:
        k = min(n, len(store))
        tiles = []
        for i in range(k):
            img = Image.fromarray(store[i])
            if img.size[0] != tile:
                img = img.resize((tile, tile), Image.Resampling.BILINEAR)
            tiles.append(np.asarray(img))
    Image.fromarray(contact_sheet(tiles)).save(out_png)
    return os.fspath(out_png)


def format_summary(summary: dict) -> str:
    """Human-readable lines for a :func:`build_store` / ``import_folder`` summary."""
    lines = [
        f"wrote {summary['path']}: {summary['count']} images of {summary['size']}x"
        f"{summary['size']} ({summary['encoding']}), {summary['bytes'] / 1e6:.2f} MB",
        f"bytes per image: {summary['bytes_per_image']:.0f} "
        f"(raw {summary['raw_bytes_per_image']}, ratio "
        f"{summary['bytes_per_image'] / summary['raw_bytes_per_image']:.3f})",
        f"time: {summary['seconds']:.2f} s ({summary['images_per_second']:.1f} images/s, "
        f"{summary['workers']} workers)",
    ]
    for fam, r in summary.get("rejection", {}).items():
        reasons = ", ".join(f"{k} {v}" for k, v in r["reasons"].items()) or "-"
        lines.append(
            f"  {fam:13s} {r['images']:6d} images, {r['rejected']:5d} rejected "
            f"({100 * r['rate']:.1f}%): {reasons}"
        )
    for path, why in summary.get("skipped", [])[:20]:
        lines.append(f"  skipped {path}: {why}")
    if len(summary.get("skipped", [])) > 20:
        lines.append(f"  ... and {len(summary['skipped']) - 20} more skipped")
    return "\n".join(lines)
