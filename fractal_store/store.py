"""The fractal store: one uncompressed ZIP file of WebP, PNG or JPEG pictures plus metadata.

Layout (all members ``ZIP_STORED``, fixed timestamps, so equal inputs give equal bytes)::

    images/000000.webp ...  one RGB picture per record, size x size (``.png`` / ``.jpg``)
    params.jsonl            one JSON object per line: the record that re-renders image i
    checksums.sha256        "<sha256>  images/000000.webp" lines (``sha256sum -c`` format)
    header.json             format name + version, count, size, encoding (codec) and its
                            settings, generator settings, and the sha256 of params.jsonl
                            and checksums.sha256

Encodings: ``webp`` (default since format version 2: lossless WebP, ~0.31 of raw bytes
for fractals against ~0.41 for PNG; decodes about as fast as PNG), ``png`` (lossless)
and ``jpeg`` (lossy, 4:4:4). The encoding is recorded per store in the header; readers
accept format versions 1 (PNG or JPEG only) and 2. WebP is decoded by Pillow, OpenCV,
browsers and NVIDIA DALI's ``fn.decoders.image``.

Every image read (``store[i]``, :meth:`FractalStore.load_bank`) checks the image bytes
against their sha256 before decoding, and opening a store checks the header, the
checksum list and the member table, so a truncated, bit-flipped, foreign or
wrong-version file raises :class:`FractalStoreError` naming the file and the record
instead of returning wrong pixels. Writers write to a hidden temporary file in the
target directory and rename it into place when complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

FORMAT_NAME = "ipmix-fractal-store"
FORMAT_VERSION = 2  # 2: adds the "webp" encoding and its header fields
SUPPORTED_VERSIONS = (1, 2)  # what the reader loads; version 1 stores are PNG or JPEG
ENCODINGS = ("webp", "png", "jpeg")
LOSSLESS_ENCODINGS = ("webp", "png")
DEFAULT_ENCODING = "webp"
DEFAULT_PNG_LEVEL = 6  # zlib level; decode speed barely depends on it, size does
# Lossless WebP effort: libwebp's ``method`` (0-6) and, for lossless, ``quality`` (0-100)
# is compression effort too. Measured on 256 px fractals (benchmarks/bench_fractals.py,
# "webp_settings"): 3/50 gives ~0.32 of raw bytes, 4/50 ~0.31 at ~2x the encode time
# (~0.1 s per image on a slow core, about the render time), 6/100 ~0.30 at ~50x. 4/50 is
# the default: it keeps a margin below 1/3 of raw. Decoding speed does not depend on it.
DEFAULT_WEBP_METHOD = 4
DEFAULT_WEBP_QUALITY = 50
_EXTENSIONS = {"webp": "webp", "png": "png", "jpeg": "jpg"}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... name length, extra length


class FractalStoreError(ValueError):
    """A store file is missing, truncated, corrupt, of another format or version."""


def default_workers() -> int:
    """Number of CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def rank_share_of_cores() -> int:
    """This rank's share of the node's usable CPUs: ``max(1, default_workers() //
    LOCAL_WORLD_SIZE)`` (``LOCAL_WORLD_SIZE``: processes on this node, set by torchrun;
    default 1), so ranks on one node do not each take every core."""
    raw = os.environ.get("LOCAL_WORLD_SIZE", "1")
    try:
        local = int(raw)
    except ValueError:
        raise ValueError(f"LOCAL_WORLD_SIZE must be a positive integer, got {raw!r}") from None
    if local < 1:
        raise ValueError(f"LOCAL_WORLD_SIZE must be a positive integer, got {raw!r}")
    return max(1, default_workers() // local)


def image_name(index: int, encoding: str) -> str:
    """Member name of image ``index``: ``images/000042.webp`` (at least 6 digits)."""
    return f"images/{index:06d}.{_EXTENSIONS[encoding]}"


def encode_image(
    img: np.ndarray,
    encoding: str = DEFAULT_ENCODING,
    quality: int = 90,
    png_level: int = DEFAULT_PNG_LEVEL,
    webp_method: int = DEFAULT_WEBP_METHOD,
    webp_quality: int = DEFAULT_WEBP_QUALITY,
) -> bytes:
    """Encode uint8 ``[H, W, 3]`` RGB as lossless WebP, PNG (both exact) or JPEG
    (``quality``, 4:4:4 chroma)."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected uint8 [H, W, 3], got {img.dtype} {img.shape}")
    buf = io.BytesIO()
    pil = Image.fromarray(np.ascontiguousarray(img), "RGB")
    if encoding == "webp":
        pil.save(
            buf, format="WEBP", lossless=True, method=int(webp_method), quality=int(webp_quality)
        )
    elif encoding == "png":
        pil.save(buf, format="PNG", compress_level=png_level)
    elif encoding == "jpeg":
        pil.save(buf, format="JPEG", quality=int(quality), subsampling=0)
    else:
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")
    return buf.getvalue()


def _zinfo(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = 0o644 << 16
    return info


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.partial-"


def clean_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete temporary files left next to ``path`` by writers that no longer run."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(_temp_prefix(path) + "*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
            if pid != os.getpid():
                continue  # a live writer owns it
        except (ValueError, IndexError, OverflowError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


class StoreWriter:
    """Write a store atomically::

        with StoreWriter(path, size=256, generator={...}) as w:
            for data, record in ...:
                w.add(data, record)   # data: bytes from encode_image()

    ``generator`` is a JSON-serialisable dict saved in the header (seed, families, ...).
    Nothing appears at ``path`` unless the block completes without an exception and with
    at least one image; stale temporary files of interrupted writers are removed on entry.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        size: int,
        encoding: str = DEFAULT_ENCODING,
        generator: dict | None = None,
        jpeg_quality: int | None = None,
        png_level: int = DEFAULT_PNG_LEVEL,
        webp_method: int = DEFAULT_WEBP_METHOD,
        webp_quality: int = DEFAULT_WEBP_QUALITY,
    ) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if not (0 <= webp_method <= 6 and 0 <= webp_quality <= 100):
            raise ValueError(
                f"WebP method must be in 0..6 and quality in 0..100, got {webp_method}, "
                f"{webp_quality}"
            )
        self.path = Path(path)
        self.size = int(size)
        self.encoding = encoding
        self.generator = dict(generator or {})
        self.jpeg_quality = jpeg_quality
        self.png_level = png_level
        self.webp_method = webp_method
        self.webp_quality = webp_quality
        self._sums: list[str] = []
        self._params: list[bytes] = []
        self._zf: zipfile.ZipFile | None = None
        self._tmp: Path | None = None

    def __len__(self) -> int:
        return len(self._sums)

    def __enter__(self) -> StoreWriter:
        parent = self.path.parent
        if not parent.is_dir():
            raise FractalStoreError(f"{self.path}: directory {parent} does not exist")
        if self.path.is_dir():
            raise FractalStoreError(f"{self.path}: is a directory")
        clean_stale_temps(self.path)
        self._tmp = parent / f"{_temp_prefix(self.path)}{os.getpid()}"
        try:
            self._zf = zipfile.ZipFile(self._tmp, "w", zipfile.ZIP_STORED, allowZip64=True)
        except OSError as e:
            raise FractalStoreError(f"{self.path}: cannot write in {parent}: {e}") from e
        return self

    def add(self, data: bytes, params: dict) -> None:
        """Append one encoded image (bytes from :func:`encode_image`) and its record."""
        if self._zf is None:
            raise RuntimeError("use StoreWriter as a context manager")
        index = len(self._sums)
        self._sums.append(hashlib.sha256(data).hexdigest())
        self._params.append(json.dumps(params, sort_keys=True, separators=(",", ":")).encode())
        self._zf.writestr(_zinfo(image_name(index, self.encoding)), data)

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._zf is not None and self._tmp is not None
        try:
            if exc_type is None:
                self._finish()
        finally:
            self._zf.close()
            if self._tmp.exists():
                self._tmp.unlink()

    def _finish(self) -> None:
        if not self._sums:
            raise FractalStoreError(f"{self.path}: no images were added; store not written")
        params = b"".join(p + b"\n" for p in self._params)
        count = len(self._sums)
        names = [image_name(i, self.encoding) for i in range(count)]
        sums = "".join(f"{s}  {n}\n" for s, n in zip(self._sums, names)).encode()
        header = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "count": count,
            "size": self.size,
            "channels": 3,
            "dtype": "uint8",
            "encoding": self.encoding,
            "jpeg_quality": self.jpeg_quality if self.encoding == "jpeg" else None,
            "png_compress_level": self.png_level if self.encoding == "png" else None,
            "webp_method": self.webp_method if self.encoding == "webp" else None,
            "webp_quality": self.webp_quality if self.encoding == "webp" else None,
            "lossless": self.encoding in LOSSLESS_ENCODINGS,
            "generator": self.generator,
            "params_sha256": hashlib.sha256(params).hexdigest(),
            "checksums_sha256": hashlib.sha256(sums).hexdigest(),
        }
        zf = self._zf
        zf.writestr(_zinfo("params.jsonl"), params)
        zf.writestr(_zinfo("checksums.sha256"), sums)
        zf.writestr(_zinfo("header.json"), json.dumps(header, indent=1, sort_keys=True) + "\n")
        zf.close()
        with open(self._tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self._tmp, self.path)
