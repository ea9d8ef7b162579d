"""ImageFolder trees read the way torchvision reads them, with every bad file explained.

:func:`scan_image_folder` lists ``(path, label)`` in torchvision ``ImageFolder`` order
(classes = sorted sub-folder names; files walked recursively, sorted) and the files it
ignores for their name. :func:`load_rgb` decodes one file to uint8 RGB; :func:`probe` says
why a file cannot be used, or returns its source mode and raw size.
"""

from __future__ import annotations

import os
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


def probe(path: str) -> tuple[str | None, str, int]:
    """``(None, mode, raw RGB bytes)`` for a usable file, else ``(reason, "", 0)``."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)", "", 0
        arr, mode = load_rgb(path)
    except UnidentifiedImageError:
        return "not an image (Pillow cannot identify its format)", "", 0
    except Image.DecompressionBombError as e:
        return f"too large ({e})", "", 0
    except OSError as e:
        if "truncated" in str(e):
            return f"truncated image data ({e})", "", 0
        return f"unreadable ({type(e).__name__}: {e})", "", 0
    except Exception as e:  # any decoder failure means "skip this file", with the reason
        return f"unreadable ({type(e).__name__}: {e})", "", 0
    return None, mode, arr.nbytes
