"""Reading a fractal store: :class:`FractalStore` (random access, verified bulk loading).

The file is memory-mapped; each image member is ``ZIP_STORED``, so its bytes are a slice
of the map found from the ZIP member table (local headers are checked on open). Every
decode first compares the slice's sha256 with ``checksums.sha256`` (whose own hash is in
the header), so corrupt data raises :class:`~fractal_store.store.FractalStoreError`
naming the file and the record. Decoding uses Pillow (WebP, PNG or JPEG, as the header
says; format versions 1 and 2 are read), which releases the GIL, so
:meth:`FractalStore.load_bank` scales over a thread pool.

Decode rates at 256 px on one slow core are ~400 images/s for lossless WebP and PNG
alike (the codecs' entropy decoding is the cost, not copies) and ~900/s for JPEG; the
raw ``.npy`` bank cache (``load_bank(cache_dir=...)``) loads ~10x faster than either.
"""

from __future__ import annotations

import hashlib
import io
import json
import mmap
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from .bank_cache import load_cached_bank
from .store import (
    _LOCAL_HEADER,
    ENCODINGS,
    FORMAT_NAME,
    SUPPORTED_VERSIONS,
    FractalStoreError,
    default_workers,
    image_name,
)

_PIL_FORMAT = {"webp": "WEBP", "png": "PNG", "jpeg": "JPEG"}
_V1_ENCODINGS = ("png", "jpeg")


class FractalStore:
    """A read-only fractal store. ``len(store)``; ``store[i]`` -> uint8 ``[S, S, 3]`` RGB;
    ``store.params(i)`` -> the record dict; ``store.load_bank()`` -> uint8 ``[N, F, F, 3]``.

    Picklable (reopens by path), so it can be handed to worker processes.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self._open()

    # -- opening and validation -------------------------------------------------------
    def _fail(self, what: str) -> FractalStoreError:
        return FractalStoreError(f"{self.path}: {what}")

    def _open(self) -> None:
        try:
            self._zf = zipfile.ZipFile(self.path)
        except FileNotFoundError as e:
            raise self._fail("no such fractal store file") from e
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise self._fail(f"not a readable fractal store (truncated or not a ZIP): {e}") from e
        try:
            self._validate()
        except BaseException:
            self._zf.close()
            raise

    def _member(self, name: str) -> bytes:
        try:
            return self._zf.read(name)
        except KeyError as e:
            raise self._fail(f"member {name!r} is missing (not a fractal store?)") from e
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise self._fail(f"member {name!r} is corrupt: {e}") from e

    def _validate(self) -> None:
        try:
            header = json.loads(self._member("header.json"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise self._fail(f"header.json is not valid JSON: {e}") from e
        if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
            got = header.get("format") if isinstance(header, dict) else None
            raise self._fail(f"not a fractal store: format {got!r}, expected {FORMAT_NAME!r}")
        version = header.get("version")
        if isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
            raise self._fail(
                f"unsupported store version {version!r}; this reader supports versions "
                f"{', '.join(map(str, SUPPORTED_VERSIONS))} (update the package, or rebuild "
                "the store with tools/build_fractals.py)"
            )
        count, size, enc = header.get("count"), header.get("size"), header.get("encoding")
        if not isinstance(count, int) or count < 1 or not isinstance(size, int) or size < 1:
            raise self._fail(f"bad header: count={count!r}, size={size!r}")
        if enc not in (_V1_ENCODINGS if version == 1 else ENCODINGS):
            raise self._fail(f"bad header: unknown encoding {enc!r} for version {version}")
        self.header: dict = header
        self.size: int = size
        self.encoding: str = enc
        sums = self._member("checksums.sha256")
        if hashlib.sha256(sums).hexdigest() != header.get("checksums_sha256"):
            raise self._fail("checksums.sha256 does not match the header's sha256 (corrupt)")
        lines = sums.decode("ascii", "replace").splitlines()
        if len(lines) != count:
            raise self._fail(f"checksums.sha256 lists {len(lines)} images, header says {count}")
        self._names = [image_name(i, enc) for i in range(count)]
        self._sha = []
        for i, line in enumerate(lines):
            digest, _, name = line.partition("  ")
            if name != self._names[i] or len(digest) != 64:
                raise self._fail(f"record {i}: bad checksum line {line[:100]!r}")
            self._sha.append(bytes.fromhex(digest))
        self._fh = open(self.path, "rb")  # noqa: SIM115 - kept open with the map
        self._map = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        self._spans = np.empty((count, 2), np.int64)
        for i, name in enumerate(self._names):
            self._spans[i] = self._locate(i, name)
        self._params: list[bytes] | None = None

    def _locate(self, index: int, name: str) -> tuple[int, int]:
        try:
            info = self._zf.getinfo(name)
        except KeyError as e:
            raise self._fail(f"record {index}: member {name} is missing") from e
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise self._fail(f"record {index} ({name}): member is compressed, expected stored")
        off = info.header_offset
        if off + _LOCAL_HEADER.size > len(self._map):
            raise self._fail(f"record {index} ({name}): local header beyond end of file")
        sig, nlen, xlen = _LOCAL_HEADER.unpack_from(self._map, off)
        start = off + _LOCAL_HEADER.size + nlen + xlen
        local_name = self._map[off + _LOCAL_HEADER.size : off + _LOCAL_HEADER.size + nlen]
        if sig != b"PK\x03\x04" or local_name != name.encode():
            raise self._fail(f"record {index} ({name}): corrupt local header")
        if start + info.file_size > len(self._map):
            raise self._fail(f"record {index} ({name}): data beyond end of file (truncated)")
        return start, info.file_size

    # -- pickling / closing ----------------------------------------------------------
    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.path = state["path"]
        self._open()

    def close(self) -> None:
        """Release the file and the memory map."""
        for res in ("_map", "_fh", "_zf"):
            obj = getattr(self, res, None)
            if obj is not None:
                obj.close()

    def __enter__(self) -> FractalStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FractalStore({self.path!r}, count={len(self)}, size={self.size}, {self.encoding})"

    # -- access ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._names)

    def _index(self, i: int) -> int:
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"store indices must be integers, not {type(i).__name__}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"record {i} out of range for a store of {n}")
        return int(i) % n

    def raw(self, i: int) -> bytes:
        """The verified encoded bytes (WebP, PNG or JPEG: ``self.encoding``) of image ``i``."""
        i = self._index(i)
        start, length = self._spans[i]
        data = self._map[start : start + length]
        if hashlib.sha256(data).digest() != self._sha[i]:
            raise self._fail(f"record {i} ({self._names[i]}): sha256 mismatch (corrupt data)")
        return data

    def _decode(self, i: int, size: int | None) -> np.ndarray:
        data = self.raw(i)
        try:
            with Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[self.encoding]]) as im:
                if im.mode != "RGB":
                    raise OSError(f"mode {im.mode}, expected RGB")
                if size is not None and size != im.size[0]:
                    im = im.resize((size, size), Image.Resampling.BILINEAR)
                arr = np.asarray(im)
        except (OSError, ValueError, SyntaxError) as e:
            raise self._fail(f"record {i} ({self._names[i]}): cannot decode: {e}") from e
        want = (size or self.size,) * 2 + (3,)
        if arr.shape != want:
            raise self._fail(f"record {i} ({self._names[i]}): shape {arr.shape}, expected {want}")
        return arr

    def __getitem__(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 ``[size, size, 3]`` RGB (a fresh, writable array)."""
        return np.array(self._decode(self._index(i), None))

    def params(self, i: int) -> dict:
        """The record of image ``i`` (``render(store.params(i), store.size)`` re-renders it)."""
        i = self._index(i)
        if self._params is None:
            blob = self._member("params.jsonl")
            if hashlib.sha256(blob).hexdigest() != self.header.get("params_sha256"):
                raise self._fail("params.jsonl does not match the header's sha256 (corrupt)")
            lines = blob.split(b"\n")[:-1]
            if len(lines) != len(self):
                raise self._fail(f"params.jsonl has {len(lines)} lines, expected {len(self)}")
            self._params = lines
        try:
            rec = json.loads(self._params[i])
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise self._fail(f"record {i}: params line is not valid JSON: {e}") from e
        if not isinstance(rec, dict):
            raise self._fail(f"record {i}: params line is not a JSON object")
        return rec

    def load_bank(
        self,
        size: int | None = None,
        workers: int | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> np.ndarray:
        """Decode every image into one uint8 array ``[N, F, F, 3]`` (``F = size`` or the
        store's size; resized with Pillow BILINEAR, which antialiases when shrinking).
        Decoding runs on ``workers`` threads (default: all CPUs of this process).
        ``cache_dir``: keep a verified raw ``.npy`` copy there and load that next time
        (see :mod:`fractal_store.bank_cache`; ~10x faster than decoding WebP or PNG)."""
        n = len(self)
        f = self.size if size is None else int(size)
        if f < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if cache_dir is not None:
            return load_cached_bank(self, f, workers, cache_dir)
        bank = np.empty((n, f, f, 3), np.uint8)
        rsize = None if f == self.size else f

        def work(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                bank[i] = self._decode(i, rsize)

        workers = default_workers() if workers is None else max(1, int(workers))
        chunk = max(1, min(64, n // (4 * workers) or 1))
        with ThreadPoolExecutor(workers) as ex:
            for fut in [ex.submit(work, lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]:
                fut.result()
        return bank

    def verify(self) -> dict:
        """Check every image (sha256, decode, shape) and the records; return a summary."""
        for i in range(len(self)):
            self._decode(i, None)
        for i in range(len(self)):
            self.params(i)
        return {"path": self.path, "count": len(self), "size": self.size, "ok": True}


def open_store(path: str | os.PathLike) -> FractalStore:
    """Open a store file for reading (raises :class:`FractalStoreError` when unusable)."""
    return FractalStore(path)
