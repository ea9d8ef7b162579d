"""A raw ``.npy`` cache of decoded banks, for loads faster than image decoding allows.

Lossless decoding (WebP or PNG alike) costs ~2.5 ms per 256 px image on a slow core (the
codecs' entropy decoding; copies are a few percent), so a 10k bank takes seconds even on
many threads. ``store.load_bank(cache_dir=d)`` decodes once and saves
``d/<store>-<id>-<F>.npy`` (uint8 ``[N, F, F, 3]``) plus a ``.json`` with a sha256 per
block of 64 images; later loads read the array and check those hashes on a thread pool
(hashlib releases the GIL; ~6,000 images/s per core with SHA extensions), so a damaged
cache is never returned: it is rebuilt from the store. ``<id>`` is derived from the store's checksum
list, so a rebuilt store never meets a stale cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .store import default_workers

BLOCK = 64  # images per hashed block


class FractalStore(Protocol):
    """What the cache needs of a store (:class:`fractal_store.FractalStore` has it): the
    cache does not import the reader, the reader imports the cache."""

    path: str
    header: dict[str, Any]

    def __len__(self) -> int: ...
    def load_bank(self, size: int | None = None, workers: int | None = None) -> np.ndarray: ...


def _block_hashes(bank: np.ndarray, workers: int) -> list[str]:
    blocks = range(0, len(bank), BLOCK)
    with ThreadPoolExecutor(workers) as ex:
        return list(ex.map(lambda lo: hashlib.sha256(bank[lo : lo + BLOCK]).hexdigest(), blocks))


def cache_paths(store: FractalStore, size: int, cache_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``(npy, json)`` paths of the cache of ``store`` at ``size``."""
    key = f"{Path(store.path).stem}-{store.header['checksums_sha256'][:16]}-{size}"
    d = Path(cache_dir)
    return d / f"{key}.npy", d / f"{key}.json"


def _read(store: FractalStore, npy: Path, meta: Path, size: int, workers: int):
    try:
        info = json.loads(meta.read_text())
        bank = np.load(npy, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    want = (len(store), size, size, 3)
    if bank.dtype != np.uint8 or bank.shape != want or info.get("shape") != list(want):
        return None
    if info.get("block") != BLOCK or _block_hashes(bank, workers) != info.get("sha256"):
        return None
    return bank


def load_cached_bank(
    store: FractalStore, size: int, workers: int | None, cache_dir: str | os.PathLike
) -> np.ndarray:
    """The bank of ``store`` at ``size`` from the cache in ``cache_dir``, (re)built when
    missing or damaged. uint8 ``[N, size, size, 3]``, writable."""
    workers = default_workers() if workers is None else max(1, int(workers))
    npy, meta = cache_paths(store, size, cache_dir)
    if npy.exists() and meta.exists():
        bank = _read(store, npy, meta, size, workers)
        if bank is not None:
            return bank
    bank = store.load_bank(size, workers)
    npy.parent.mkdir(parents=True, exist_ok=True)
    for path, write in (
        (npy, lambda f: np.save(f, bank, allow_pickle=False)),
        (
            meta,
            lambda f: f.write(
                json.dumps(
                    {
                        "shape": list(bank.shape),
                        "block": BLOCK,
                        "sha256": _block_hashes(bank, workers),
                    }
                ).encode()
            ),
        ),
    ):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    return bank
