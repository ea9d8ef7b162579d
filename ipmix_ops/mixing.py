"""Patch mixing ops and the uint8 conversion (docs/algorithm.md §4).

Public NumPy functions (float32, values in [0, 1], shapes h×w×3) define the semantics, in the
float32 arithmetic of the authors' torch code:

    mix_add(x1, x2, a, b)          a*x1 + b*x2 + (1 - a - b)/2
    mix_multiply(x1, x2, a, b)     ((2*x1)**a * max(2*x2, 1e-37)**b) / 2
    mix_random_pixels(x1, x2, M)   M*x1 + (1-M)*x2,  M bool h×w×1
    mix_random_elems(x1, x2, M)    M*x1 + (1-M)*x2,  M bool h×w×3
    to_uint8(out, overflow)        "wrap": trunc(255*out) mod 256 (clamped to ±2^24 first)
                                   "clip": floor(255*clip(out, 0, 1) + 0.5)

:func:`mix_patch_k` is the Numba kernel the fast path uses on uint8 images: add and multiply
evaluate the same float32 expressions through 256-entry lookup tables, the two selection ops
pick bytes with masks (bit-identical except where ``pow`` differs by an ulp between libm
builds).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .optable import MIX_ADD, MIX_MULTIPLY, MIX_RANDOM_PIXELS
from .sampling import MASK_TABLE_BITS

_TWO24 = float(2**24)


def _as_unit(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.float32:
        x = x.astype(np.float32)
    if x.ndim != 3:
        raise ValueError(f"{name} must be h×w×c float in [0, 1], got shape {x.shape}")
    return x


def mix_add(x1: np.ndarray, x2: np.ndarray, a: float, b: float) -> np.ndarray:
    """Additive mixing: ``a*x1 + b*x2 + (1 - a - b)/2`` in float32 (may leave [0, 1])."""
    x1, x2 = _as_unit(x1, "x1"), _as_unit(x2, "x2")
    a, b = np.float32(a), np.float32(b)
    return a * x1 + b * x2 + (np.float32(1) - a - b) / np.float32(2)


def mix_multiply(x1: np.ndarray, x2: np.ndarray, a: float, b: float) -> np.ndarray:
    """Multiplicative mixing: ``((2*x1)**a * max(2*x2, 1e-37)**b) / 2`` in float32."""
    x1, x2 = _as_unit(x1, "x1"), _as_unit(x2, "x2")
    a, b = np.float32(a), np.float32(b)
    two = np.float32(2)
    return ((two * x1) ** a * np.maximum(two * x2, np.float32(1e-37)) ** b) / two


def mix_random_pixels(x1: np.ndarray, x2: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-pixel selection: ``mask`` (bool h×w×1, True keeps x1) picks x1 or x2."""
    x1, x2 = _as_unit(x1, "x1"), _as_unit(x2, "x2")
    if mask.shape != x1.shape[:2] + (1,):
        raise ValueError(
            f"random_pixels mask must have shape {x1.shape[:2] + (1,)}, got {mask.shape}"
        )
    return np.where(mask, x1, x2)


def mix_random_elems(x1: np.ndarray, x2: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-element selection: ``mask`` (bool h×w×3, True keeps x1) picks x1 or x2."""
    x1, x2 = _as_unit(x1, "x1"), _as_unit(x2, "x2")
    if mask.shape != x1.shape:
        raise ValueError(f"random_elems mask must have shape {x1.shape}, got {mask.shape}")
    return np.where(mask, x1, x2)


def to_uint8(out: np.ndarray, overflow: str = "wrap") -> np.ndarray:
    """Convert a mixed patch (float, nominally [0, 1]) to uint8 by the ``overflow`` mode.

    ``"wrap"`` reproduces the authors' ``np.uint8(255 * out)``: truncation toward zero, then
    modulo 256 (so -1 -> 255 and 256 -> 0), with the value clamped to ±2^24 first.
    ``"clip"`` is PixMix's saturating conversion, rounding half up.
    """
    v = np.float32(255) * np.asarray(out, dtype=np.float32)
    if overflow == "wrap":
        t = np.trunc(np.clip(v, -_TWO24, _TWO24)).astype(np.int64)
        return (t & 255).astype(np.uint8)
    if overflow == "clip":
        c = np.float32(255) * np.clip(np.asarray(out, np.float32), 0, 1)
        return np.floor(c + np.float32(0.5)).astype(np.uint8)
    raise ValueError(f"overflow must be 'wrap' or 'clip', got {overflow!r}")


# ----------------------------------------------------------------------- Numba kernel
@njit(inline="always")
def _to_u8(v, wrap):
    """Scalar ``to_uint8`` of ``v = 255 * out`` (float32)."""
    if wrap:
        v = min(max(v, np.float32(-_TWO24)), np.float32(_TWO24))
        return np.uint8(int(v) & 255)  # int() truncates toward zero
    v = min(max(v, np.float32(0)), np.float32(255))
    return np.uint8(int(np.floor(v + np.float32(0.5))))


@njit(inline="always")
def _add_byte(l1, l2, c, wrap):
    """The add op's byte from the LUT values ``a*x1``, ``b*x2`` (``mix_add``'s float32 order)."""
    return _to_u8(np.float32(255) * ((l1 + l2) + c), wrap)


@njit(inline="always")
def _multiply_byte(l1, l2, wrap):
    """The multiply op's byte from the LUT values ``(2*x1)**a``, ``max(2*x2, 1e-37)**b``."""
    return _to_u8(np.float32(255) * ((l1 * l2) / np.float32(2)), wrap)


#: bytes of the (patch byte, source byte) table of add/multiply
PAIR_TABLE_SIZE = 256 * 256
#: boxes with at least this many bytes go through the table (filling it costs ~30 us)
PAIR_TABLE_MIN = PAIR_TABLE_SIZE


@njit(nogil=True)
def _fill_pair_table(pair, lut1, lut2, add, c, wrap):
    """``pair[256 p + q]`` = the mixed byte of patch byte p and source byte q."""
    for p in range(256):
        row = pair[256 * p : 256 * p + 256]
        l1 = lut1[p]
        if add:
            for q in range(256):
                row[q] = _add_byte(l1, lut2[q], c, wrap)
        else:
            for q in range(256):
                row[q] = _multiply_byte(l1, lut2[q], wrap)


@njit(nogil=True)
def mix_patch_k(
    xc, top, left, h, w, src, sy, sx, mop, a, b, p, seed, wrap, lut1, lut2, pair, table
):
    """Mix ``xc[top:top+h, left:left+w]`` with ``src[sy:sy+h, sx:sx+w]`` in place.

    ``xc``/``src`` uint8 H×W×3; ``lut1``/``lut2`` float32 [256] scratch; ``pair`` uint8
    [:data:`PAIR_TABLE_SIZE`] scratch (used for boxes of >= :data:`PAIR_TABLE_MIN` bytes);
    ``table`` the mask table of :func:`ipmix_ops.sampling.mask_table` (layout there). Rows are
    processed as flat contiguous runs. add/multiply read per-byte lookup tables; a large box
    first tabulates all 65536 (patch byte, source byte) results from them (~30 us) and then
    reads one table byte per byte (bit-identical, ~1.4x faster on a 224 px box). The two
    selection ops are byte masks (``(x1 & m) | (x2 & ~m)``), which vectorise (~8x faster):
    for them ``to_uint8(255 * (v / 255))`` is exactly ``v`` in float32 for every byte ``v``,
    in both overflow modes, so the result is the selected byte itself.
    """
    f255 = np.float32(255)
    af, bf = np.float32(a), np.float32(b)
    two = np.float32(2)
    c = (np.float32(1) - af - bf) / two
    if mop == MIX_ADD:
        for v in range(256):
            u = np.float32(v) / f255
            lut1[v] = af * u
            lut2[v] = bf * u
    elif mop == MIX_MULTIPLY:
        for v in range(256):
            u = two * (np.float32(v) / f255)
            lut1[v] = u**af
            lut2[v] = max(u, np.float32(1e-37)) ** bf
    n = 3 * w
    # a uint16 table value u keeps x1 iff u < ceil(65536 p); a threshold above 65535 keeps
    # every byte, so the selection leaves the patch as it is
    thr = np.int64(np.ceil(p * 65536.0))
    if mop != MIX_ADD and mop != MIX_MULTIPLY and thr > 65535:
        return
    t16 = np.uint16(max(thr, 0))
    tmask = (1 << MASK_TABLE_BITS) - 1
    if (mop == MIX_ADD or mop == MIX_MULTIPLY) and n * h >= PAIR_TABLE_MIN:
        _fill_pair_table(pair, lut1, lut2, mop == MIX_ADD, c, wrap)
        for y in range(h):
            dst = xc[top + y].reshape(-1)[3 * left : 3 * left + n]
            srow = src[sy + y].reshape(-1)[3 * sx : 3 * sx + n]
            for i in range(n):
                dst[i] = pair[(np.uint32(dst[i]) << np.uint32(8)) | np.uint32(srow[i])]
        return
    for y in range(h):
        dst = xc[top + y].reshape(-1)[3 * left : 3 * left + n]
        srow = src[sy + y].reshape(-1)[3 * sx : 3 * sx + n]
        if mop == MIX_ADD:
            for i in range(n):
                dst[i] = _add_byte(lut1[dst[i]], lut2[srow[i]], c, wrap)
        elif mop == MIX_MULTIPLY:
            for i in range(n):
                dst[i] = _multiply_byte(lut1[dst[i]], lut2[srow[i]], wrap)
        elif mop == MIX_RANDOM_PIXELS:
            base = (seed + y * w) & tmask
            tr = table[base : base + w]
            for x in range(w):
                m = np.uint8(0) - np.uint8(tr[x] < t16)
                i = 3 * x
                dst[i] = (dst[i] & m) | (srow[i] & ~m)
                dst[i + 1] = (dst[i + 1] & m) | (srow[i + 1] & ~m)
                dst[i + 2] = (dst[i + 2] & m) | (srow[i + 2] & ~m)
        else:
            base = (seed + y * n) & tmask
            tr = table[base : base + n]
            for i in range(n):
                m = np.uint8(0) - np.uint8(tr[i] < t16)
                dst[i] = (dst[i] & m) | (srow[i] & ~m)
