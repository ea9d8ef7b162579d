"""ImageFolder trees read the way torchvision reads them, with every bad file explained.

:func:`scan_image_folder` lists ``(path, label)`` in torchvision ``ImageFolder`` order
(classes = sorted sub-folder names; files walked recursively, sorted) and the files it
ignores for their name. :func:`load_rgb` decodes one file to uint8 RGB; :func:`probe` says
why a file cannot be used, or returns its source mode and size (the .beton writer's full
check). :func:`check_image_files` is the loaders' fast check (headers only, before training:
the torch and DALI backends), :func:`size_reason` the writer's rule on picture sizes.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class BetonError(Exception):
    """A .beton could not be written (the message says why)."""


class DataDirError(BetonError):
    """The data folder is missing, not a folder, or holds no class folder or image."""


class BadImageError(BetonError):
    """A file that cannot be used (raised in strict mode); ``path`` and ``reason``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


class BadFilesError(ValueError):
    """Files of an ImageFolder that no loader can decode; ``bad``: ``[(path, reason)]``."""

    def __init__(self, message: str, bad: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.bad = bad


BAD_FILES = ("error", "skip")  # what the loaders do with a file that fails the header check
# torchvision.datasets.folder.IMG_EXTENSIONS (kept equal by a test; importing torchvision
# would cost seconds of start-up in tools that fail fast)
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def scan_image_folder(
    data_dir: str | os.PathLike,
) -> tuple[list[str], list[tuple[str, int]], list[tuple[str, str]]]:
    """``(classes, samples [(path, label)], ignored [(path, reason)])`` of an ImageFolder.

    Raises :class:`DataDirError` if the folder is missing or holds no class folder or no
    file with an image extension.
    """
    root = Path(data_dir)
    if not root.exists():
        raise DataDirError(f"{root}: no such directory")
    if not root.is_dir():
        raise DataDirError(f"{root}: not a directory")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not classes:
        raise DataDirError(
            f"{root}: no class folders (expected {root}/<class>/<image>, as for "
            "torchvision's ImageFolder)"
        )
    exts = IMG_EXTENSIONS
    samples, ignored = [], []
    for label, name in enumerate(classes):
        for dirpath, _, files in sorted(os.walk(root / name, followlinks=True)):
            for f in sorted(files):
                path = os.path.join(dirpath, f)
                if f.lower().endswith(exts):
                    samples.append((path, label))
                else:
                    ext = os.path.splitext(f)[1] or "none"
                    ignored.append((path, f"not an image file name (extension {ext})"))
    if not samples:
        raise DataDirError(
            f"{root}: no image files ({', '.join(exts)}) in its {len(classes)} class folders"
        )
    return classes, samples, ignored


def to_rgb(im: Image.Image) -> Image.Image:
    """Pillow image -> RGB: alpha dropped, 16/32-bit grey scaled to 8 bits first."""
    if im.mode == "RGB":
        return im
    if im.mode == "I" or im.mode.startswith("I;16"):
        a = np.asarray(im).astype(np.int64)
        top = 255 if im.mode == "I" and a.max(initial=0) <= 255 else 65535
        grey = ((a.clip(0, top) * 255 + top // 2) // top).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if im.mode in ("P", "PA") and (im.mode == "PA" or "transparency" in im.info):
        return im.convert("RGBA").convert("RGB")
    return im.convert("RGB")


def load_rgb(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Decode ``path`` in full: (uint8 ``[H, W, 3]`` RGB, the file's Pillow mode).

    Raises ``ValueError`` for an empty file and Pillow's exceptions for the rest.
    """
    if os.path.getsize(path) == 0:
        raise ValueError("empty file (0 bytes)")
    with Image.open(path) as im:
        mode = im.mode
        im.load()
        arr = np.asarray(to_rgb(im))
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.size == 0:
        raise ValueError(f"decoded to an unusable array {arr.shape}")
    return np.ascontiguousarray(arr), mode


def probe(path: str) -> tuple[str | None, str, tuple[int, int]]:
    """``(None, mode, (height, width))`` for a file that decodes in full, else
    ``(reason, "", (0, 0))``."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)", "", (0, 0)
        arr, mode = load_rgb(path)
    except UnidentifiedImageError:
        return NOT_AN_IMAGE, "", (0, 0)
    except Image.DecompressionBombError as e:
        return f"too large ({e})", "", (0, 0)
    except OSError as e:
        if "truncated" in str(e):
            return f"truncated image data ({e})", "", (0, 0)
        return f"unreadable ({type(e).__name__}: {e})", "", (0, 0)
    except Exception as e:  # any decoder failure means "skip this file", with the reason
        return f"unreadable ({type(e).__name__}: {e})", "", (0, 0)
    return None, mode, arr.shape[:2]


NOT_AN_IMAGE = "not an image (Pillow cannot identify its format)"


def stored_size(height: int, width: int, max_resolution: int | None) -> tuple[int, int]:
    """``(height, width)`` of a picture once FFCV's ``RGBImageField`` has shrunk its longer
    side to ``max_resolution`` (its own arithmetic: float scale, sizes truncated)."""
    if max_resolution is None:
        return height, width
    size = np.array([width, height])
    ratio = max_resolution / size.max()
    if ratio >= 1:
        return height, width
    w, h = (ratio * size).astype(int)
    return int(h), int(w)


def size_reason(
    height: int, width: int, max_resolution: int | None, min_side: int, max_aspect: float | None
) -> str | None:
    """Why a ``height x width`` picture is left out of a .beton, or None (the writer's rule:
    see :func:`pipelines.datasets.beton.write_beton`)."""
    h, w = stored_size(height, width, max_resolution)
    aspect = max(height, width) / min(height, width)
    size = f"{width}x{height} px"
    if max_aspect is not None and aspect > max_aspect:
        return f"too elongated ({size}, aspect {aspect:.1f}:1 > max_aspect {max_aspect:g})"
    if min(h, w) < min_side:
        if (h, w) != (height, width):
            size += f", {w}x{h} once shrunk to max_resolution {max_resolution}"
        return f"too small ({size}: shorter side < min_side {min_side})"
    return None


def header_reason(path: str) -> str | None:
    """Why ``path`` cannot be an image, from its header only (Pillow identifies the format
    and reads the size without decoding the pixels), or None. Truncated pixel data passes."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as im:
            w, h = im.size
    except UnidentifiedImageError:
        return NOT_AN_IMAGE
    except Exception as e:  # noqa: BLE001 - any failure to read the header names the file
        return f"unreadable header ({type(e).__name__}: {e})"
    if w < 1 or h < 1:
        return f"no pixels ({w}x{h})"
    return None


def check_cache_dir() -> Path:
    """Where :func:`check_image_files` keeps its results: ``$XDG_CACHE_HOME`` (default
    ``~/.cache``) ``/ipmix-pipelines/file-checks``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ipmix-pipelines" / "file-checks"


def _listing_digest(paths: list[str]) -> str | None:
    """A digest of every file's absolute path, size and modification time (None if one
    cannot be stat'ed: no cache then, the check names it)."""
    h = hashlib.sha256()
    try:
        for p in paths:
            st = os.stat(p)
            h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    except OSError:
        return None
    return h.hexdigest()[:32]


def _header_reasons(paths: list[str], workers: int, show: bool) -> list[str | None]:
    """:func:`header_reason` of each path, on ``workers`` threads, in chunks of 512 files."""
    from tqdm import tqdm

    chunks = [paths[i : i + 512] for i in range(0, len(paths), 512)]
    reasons: list[str | None] = []
    with (
        ThreadPoolExecutor(max(1, workers)) as pool,
        tqdm(total=len(paths), desc="checking", unit="file", disable=not show) as bar,
    ):
        for part in pool.map(lambda c: [header_reason(p) for p in c], chunks):
            reasons += part
            bar.update(len(part))
    return reasons


def check_image_files(
    samples: list[tuple[str, int]],
    *,
    bad_files: str = "error",
    workers: int = 8,
    progress: bool | None = None,
    cache: bool = True,
) -> list[tuple[str, int]]:
    """Header check (:func:`header_reason`) of every ImageFolder sample, before training.

    ``bad_files="error"``: raise :class:`BadFilesError` naming every bad file (up to 20 in
    the message, all in ``.bad``); ``"skip"``: warn, naming them, and return the other
    samples (later indices shift). ``workers`` threads read the headers (Pillow's parsing
    is Python, so they overlap mainly the I/O); ``progress``: a tqdm bar (default: for
    20000 files or more). ``cache``: the bad files of a listing whose paths, sizes and
    modification times are unchanged are read from :func:`check_cache_dir` instead (a
    ``stat`` per file, no open).
    """
    if bad_files not in BAD_FILES:
        raise ValueError(f"bad_files must be one of {BAD_FILES}, got {bad_files!r}")
    show = len(samples) >= 20000 if progress is None else progress
    paths = [p for p, _ in samples]
    digest = _listing_digest(paths) if cache else None
    record = check_cache_dir() / f"{digest}.json"
    if digest is not None and record.is_file():
        reasons: list[str | None] = [None] * len(paths)
        for i, r in json.loads(record.read_text())["bad"]:
            reasons[i] = r
    else:
        reasons = _header_reasons(paths, workers, show)
        if digest is not None:
            bad_index = [(i, r) for i, r in enumerate(reasons) if r is not None]
            tmp = record.with_name(f".{record.name}.{os.getpid()}")
            try:
                record.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(json.dumps({"files": len(paths), "bad": bad_index}))
                os.replace(tmp, record)
            except OSError as e:
                warnings.warn(f"{record}: cannot keep the file check ({e})", stacklevel=2)
    bad = [(p, r) for p, r in zip(paths, reasons) if r is not None]
    if not bad:
        return samples
    listed = "".join(f"\n  {p}: {r}" for p, r in bad[:20])
    more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
    if bad_files == "error" or len(bad) == len(samples):  # skipping all would load nothing
        hint = (
            "remove or replace them, or pass bad_files='skip' to leave them out"
            if bad_files == "error"
            else "bad_files='skip' would leave no file to load"
        )
        raise BadFilesError(
            f"{len(bad)} of {len(samples)} image files cannot be decoded:{listed}{more}\n{hint}",
            bad,
        )
    warnings.warn(
        f"left out {len(bad)} of {len(samples)} image files (bad_files='skip'):{listed}{more}",
        stacklevel=2,
    )
    dropped = {p for p, _ in bad}
    return [s for s in samples if s[0] not in dropped]
