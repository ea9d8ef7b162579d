"""Importing an existing folder of pictures (e.g. the authors' or PixMix's fractal set).

Every file under the folder (recursively, in sorted path order) that Pillow can read is
converted to RGB, resized so that its shorter side is ``size`` (Pillow LANCZOS, after a
JPEG draft-mode reduction for large photos) and centre-cropped to ``size x size``.
Unreadable files are skipped and listed in the summary. The record of an imported image
is ``{"family": "imported", "source": <path relative to the folder>, "source_sha256": ...,
"source_size": [w, h]}``.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .build import (
    _check_args,
    _progress,
    ordered_map,
    resolve_encoding,
    software_versions,
    store_summary,
)
from .store import DEFAULT_PNG_LEVEL, FractalStoreError, StoreWriter, default_workers, encode_image


def fit_square(img: Image.Image, size: int) -> np.ndarray:
    """Shorter side to ``size`` then centre crop: uint8 ``[size, size, 3]`` RGB."""
    img = img.convert("RGB")
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.LANCZOS)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)))


def _load(path: Path, size: int) -> tuple[np.ndarray, str, tuple[int, int]]:
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        orig = im.size
        im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale >= size (fast)
        arr = fit_square(im, size)
    return arr, hashlib.sha256(data).hexdigest(), orig


def import_folder(
    path: str | os.PathLike,
    folder: str | os.PathLike,
    size: int,
    jpeg_quality: int | None = None,
    workers: int | None = None,
    progress: bool = True,
    png_level: int = DEFAULT_PNG_LEVEL,
    encoding: str | None = None,
) -> dict:
    """Write every readable picture under ``folder`` into a new store at ``path``.

    ``encoding`` / ``jpeg_quality``: as for :func:`~fractal_store.build.build_store`
    (lossless WebP by default).

    Returns a summary like :func:`~fractal_store.build.build_store`'s plus ``skipped``:
    a list of ``(relative path, reason)``. Raises :class:`FractalStoreError` when the
    folder does not exist or holds no readable picture (nothing is written then).
    """
    _check_args(1, size, 0, jpeg_quality)
    root = Path(folder)
    if not root.is_dir():
        raise FractalStoreError(f"{root}: not a directory (--from-folder needs a folder)")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if not files:
        raise FractalStoreError(f"{root}: folder is empty, no pictures to import")
    workers = default_workers() if workers is None else max(1, int(workers))
    encoding = resolve_encoding(encoding, jpeg_quality)
    generator = {
        "kind": "folder",
        "folder": root.name,
        "files_seen": len(files),
        "resize": "shorter side to size (LANCZOS), centre crop",
        "software": software_versions(),
    }

    def job(p: Path):
        rel = p.relative_to(root).as_posix()
        try:
            arr, digest, orig = _load(p, size)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            return rel, None, f"{type(e).__name__}: {e}"
        rec = {
            "family": "imported",
            "source": rel,
            "source_sha256": digest,
            "source_size": list(orig),
        }
        return rel, encode_image(arr, encoding, jpeg_quality or 90, png_level), rec

    skipped: list[tuple[str, str]] = []
    t0 = time.perf_counter()
    with (
        StoreWriter(path, size, encoding, generator, jpeg_quality, png_level) as writer,
        _progress(len(files), progress, "import") as bar,
    ):
        for rel, data, rec in ordered_map(job, files, workers):
            if data is None:
                skipped.append((rel, rec))
            else:
                writer.add(data, rec)
            bar.update()
        count = len(writer)
        if count == 0:
            raise FractalStoreError(
                f"{root}: no readable pictures among {len(files)} files "
                f"(first problem: {skipped[0][0]}: {skipped[0][1]})"
            )
    seconds = time.perf_counter() - t0
    return {**store_summary(path, count, size, encoding, seconds, workers), "skipped": skipped}
