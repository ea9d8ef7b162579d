"""Helpers shared by the tests (the fixtures built on them are in conftest.py): real photos
from scikit-image and reference formulas."""

from __future__ import annotations

import numpy as np
from PIL import Image


def photo(name: str, size: int | tuple[int, int] = 224) -> np.ndarray:
    """A real photo from skimage.data, centre-cropped square and resized: uint8 H×W×3."""
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    hw = (size, size) if isinstance(size, int) else size
    im = Image.fromarray(np.ascontiguousarray(img)).resize((hw[1], hw[0]), Image.BILINEAR)
    return np.asarray(im).copy()


PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "rocket")


def opencv_equalize(img: np.ndarray) -> np.ndarray:
    """OpenCV's ``equalizeHist`` per channel (the formula ``fn.equalize`` follows)."""
    out = np.empty_like(img)
    for c in range(3):
        ch = img[..., c]
        hist = np.bincount(ch.ravel(), minlength=256)
        first = int(np.nonzero(hist)[0][0])
        if hist[first] == ch.size:
            out[..., c] = first
            continue
        scale = 255.0 / (ch.size - hist[first])
        lut = np.clip(np.round(np.cumsum(hist) * scale - hist[first] * scale), 0, 255)
        lut[: first + 1] = 0
        out[..., c] = lut.astype(np.uint8)[ch]
    return out
