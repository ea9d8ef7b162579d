"""Keyed random-resized-crop and flip choices, shared by every backend.

Each choice is a pure function of ``(seed, epoch, dataset index)``, drawn from the
counter-based stream of :mod:`ipmix_ops.sampling` (its own view code per kind of choice),
so a sample gets the same crop box and flip in the FFCV and the PyTorch pipeline, in any
process or thread. The crop rule is torchvision's/FFCV's ``RandomResizedCrop``: 10 tries of
area ~ U(scale) and log aspect ~ U(log ratio), then a central fallback.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ipmix_ops.sampling import key_state, uniform

# view codes of the keyed crop and flip streams (IPMix uses views 0, 1, 2 and its own code)
CROP_STREAM = 0x0C209
FLIP_STREAM = 0x0F119
SCALE = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)


def check_crop_scale(scale: object) -> tuple[float, float]:
    """``scale`` as a ``(lo, hi)`` float pair with ``0 < lo <= hi <= 1``, else ValueError
    (the one check of every backend, ``ipmix_train/config.py`` and the robustness experiment)."""
    items = list(scale) if isinstance(scale, (list, tuple, np.ndarray)) else []
    if len(items) != 2 or not all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        for v in items
    ):
        raise ValueError(f"crop_scale must be two numbers (lo, hi), got {scale!r}")
    lo, hi = float(items[0]), float(items[1])
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {scale!r}")
    return lo, hi


@njit(cache=True)
def keyed_crop(height, width, scale, ratio, seed, epoch, index):
    """Crop box ``(top, left, h, w)`` of sample ``index`` in an image ``height x width``;
    ``scale``, ``ratio``: float64 arrays of 2 (area fraction and aspect ranges)."""
    st = np.empty(1, np.uint64)
    st[0] = key_state(seed, epoch, index, CROP_STREAM)
    hh, ww = np.int64(height), np.int64(width)
    area = float(hh * ww)
    lr0, lr1 = np.log(ratio[0]), np.log(ratio[1])
    for _ in range(10):
        target = area * (scale[0] + (scale[1] - scale[0]) * uniform(st))
        aspect = np.exp(lr0 + (lr1 - lr0) * uniform(st))
        w = int(round(np.sqrt(target * aspect)))
        h = int(round(np.sqrt(target / aspect)))
        if 0 < w <= ww and 0 < h <= hh:
            top = int(uniform(st) * (hh - h + 1))
            left = int(uniform(st) * (ww - w + 1))
            return top, left, h, w
    in_ratio = ww / hh
    if in_ratio < min(ratio[0], ratio[1]):
        w, h = ww, int(round(ww / min(ratio[0], ratio[1])))
    elif in_ratio > max(ratio[0], ratio[1]):
        w, h = int(round(hh * max(ratio[0], ratio[1]))), hh
    else:
        w, h = ww, hh
    return (hh - h) // 2, (ww - w) // 2, h, w


@njit(cache=True)
def keyed_flip(seed, epoch, index, prob):
    """Whether sample ``index`` is flipped left-right this epoch (probability ``prob``)."""
    st = np.empty(1, np.uint64)
    st[0] = key_state(seed, epoch, index, FLIP_STREAM)
    return uniform(st) < prob
