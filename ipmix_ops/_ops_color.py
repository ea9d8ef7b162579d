"""Colour / point IPMix ops as Numba kernels that reproduce Pillow exactly.

All kernels share the signature ``kernel(src, dst, param, y0, x0, h, w)``: ``src`` and ``dst``
are distinct C-contiguous uint8 arrays of shape (H, W, 3), ``param`` is a float64 in Pillow's
meaning, and only ``dst[y0:y0 + h, x0:x0 + w, :]`` is written. Whole-image statistics
(equalize and autocontrast histograms, the contrast mean) always come from the full ``src``.

Pillow behaviour reproduced here:

* ``ImageOps`` point ops are integer lookup tables (``equalize`` and ``autocontrast`` per
  channel from the RGB histogram; ``Image.point`` clips LUT values to 255).
* ``ImageEnhance`` is ``Image.blend(degenerate, image, factor)``, computed in C as
  ``(uint8) clip(float32(deg) + float32(factor) * float32(img - deg))`` (truncation).
  Degenerates: greyscale ``L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16`` (color), a flat
  ``int(mean(L) + 0.5)`` image (contrast), black (brightness) and the SMOOTH 3x3 filter with the
  1-pixel border copied from the input (sharpness: float32 weights ``[1 1 1; 1 5 1; 1 1 1] / 13``
  plus 0.5 for rounding, rows accumulated bottom first, as ``Filter.c`` does).

Inner loops run over flat, contiguous row views (:func:`row_view`) so that LLVM vectorises them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_K1 = np.float32(1.0) / np.float32(13.0)  # SMOOTH kernel weights, float32 as in Filter.c
_K5 = np.float32(5.0) / np.float32(13.0)
_HALF = np.float32(0.5)
_ZERO = np.float32(0.0)
_MAX = np.float32(255.0)


# --------------------------------------------------------------------------- helpers


@njit(cache=True, nogil=True)
def row_view(img, y, x0, w):
    """Flat uint8 view of the 3 * w bytes of pixels ``x0 .. x0 + w - 1`` of row ``y``."""
    return img[y].reshape(3 * img.shape[1])[3 * x0 : 3 * (x0 + w)]


@njit(cache=True, nogil=True)
def copy_bytes(s, d):
    """``d[:] = s`` for equally long flat views (an explicit loop: no overlap checks)."""
    for i in range(d.shape[0]):
        d[i] = s[i]


@njit(cache=True, nogil=True)
def fill_zero(d):
    """``d[:] = 0`` for a flat view."""
    for i in range(d.shape[0]):
        d[i] = 0


@njit(cache=True, nogil=True)
def _histogram(src):
    """Per-channel histogram of the full image: int64 array (3, 256).

    Even and odd pixels count into separate tables (fewer store-to-load stalls on runs of
    equal values), summed at the end.
    """
    part = np.zeros((6, 256), np.int64)
    h0 = part[0]
    h1 = part[1]
    h2 = part[2]
    h3 = part[3]
    h4 = part[4]
    h5 = part[5]
    flat = src.reshape(src.size)
    n = src.size // 6
    for i in range(n):
        h0[flat[6 * i]] += 1
        h1[flat[6 * i + 1]] += 1
        h2[flat[6 * i + 2]] += 1
        h3[flat[6 * i + 3]] += 1
        h4[flat[6 * i + 4]] += 1
        h5[flat[6 * i + 5]] += 1
    if src.size % 6:  # odd pixel count: the last pixel
        k = src.size - 3
        h0[flat[k]] += 1
        h1[flat[k + 1]] += 1
        h2[flat[k + 2]] += 1
    return part[0:3] + part[3:6]


@njit(cache=True, nogil=True)
def _apply_lut3(src, dst, lut, y0, x0, h, w):
    """``dst[box, c] = lut[c, src[box, c]]`` with ``lut`` uint8 (3, 256)."""
    l0 = lut[0]
    l1 = lut[1]
    l2 = lut[2]
    for y in range(y0, y0 + h):
        s = row_view(src, y, x0, w)
        d = row_view(dst, y, x0, w)
        for j in range(w):
            d[3 * j] = l0[s[3 * j]]
            d[3 * j + 1] = l1[s[3 * j + 1]]
            d[3 * j + 2] = l2[s[3 * j + 2]]


@njit(cache=True, nogil=True)
def _grey(r, g, b):
    """Pillow's RGB -> L conversion (ITU-R 601-2 luma, 16-bit fixed point, rounded)."""
    return (19595 * np.int32(r) + 38470 * np.int32(g) + 7471 * np.int32(b) + 0x8000) >> 16


@njit(cache=True, nogil=True)
def _blend1(deg, val, alpha):
    """``Image.blend`` of one sample: ``deg + alpha * (val - deg)`` in float32, clip, truncate."""
    fdeg = np.float32(deg)
    t = fdeg + alpha * (np.float32(val) - fdeg)  # int differences are exact in float32
    return np.int32(min(max(t, _ZERO), _MAX))


@njit(cache=True, nogil=True)
def _blend_flat(src, dst, deg, alpha, y0, x0, h, w):
    """``Image.blend(flat image of value deg, src, alpha)`` on the box."""
    fdeg = np.float32(deg)
    for y in range(y0, y0 + h):
        s = row_view(src, y, x0, w)
        d = row_view(dst, y, x0, w)
        for i in range(s.shape[0]):
            t = fdeg + alpha * (np.float32(s[i]) - fdeg)
            d[i] = np.int32(min(max(t, _ZERO), _MAX))


# --------------------------------------------------------------------------- LUT ops


@njit(cache=True, nogil=True)
def invert_k(src, dst, param, y0, x0, h, w):
    """``ImageOps.invert``: ``255 - v``; ``param`` is ignored."""
    for y in range(y0, y0 + h):
        s = row_view(src, y, x0, w)
        d = row_view(dst, y, x0, w)
        for i in range(s.shape[0]):
            d[i] = s[i] ^ np.uint8(255)


@njit(cache=True, nogil=True)
def posterize_k(src, dst, param, y0, x0, h, w):
    """``ImageOps.posterize(img, int(param))``: keep the top ``bits`` bits.

    Pillow accepts 1..8 bits; here ``int(param)`` is clamped to 0..8 (0 gives black).
    """
    bits = min(max(int(param), 0), 8)
    mask = np.uint8((0xFF << (8 - bits)) & 0xFF)
    for y in range(y0, y0 + h):
        s = row_view(src, y, x0, w)
        d = row_view(dst, y, x0, w)
        for i in range(s.shape[0]):
            d[i] = s[i] & mask


@njit(cache=True, nogil=True)
def solarize_k(src, dst, param, y0, x0, h, w):
    """``ImageOps.solarize(img, param)``: ``v if v < threshold else 255 - v`` (256 = identity)."""
    if param > 255.0:  # no sample is >= threshold: identity
        for y in range(y0, y0 + h):
            copy_bytes(row_view(src, y, x0, w), row_view(dst, y, x0, w))
        return
    thr = np.uint8(max(math.ceil(param), 0))  # v < param  <=>  v < ceil(param), integer v
    for y in range(y0, y0 + h):
        s = row_view(src, y, x0, w)
        d = row_view(dst, y, x0, w)
        for i in range(s.shape[0]):
            v = s[i]
            d[i] = v if v < thr else v ^ np.uint8(255)


@njit(cache=True, nogil=True)
def _equalize_lut(hist):
    """``ImageOps.equalize``'s per-channel LUT (uint8 (3, 256)) from the full histogram."""
    lut = np.empty((3, 256), np.uint8)
    for c in range(3):
        nonzero = 0
        total = 0
        last = 0
        for i in range(256):
            if hist[c, i] != 0:
                nonzero += 1
                total += hist[c, i]
                last = hist[c, i]
        step = (total - last) // 255 if nonzero > 1 else 0
        if step == 0:
            for i in range(256):
                lut[c, i] = i
        else:
            n = step // 2
            for i in range(256):
                lut[c, i] = min(n // step, 255)
                n += hist[c, i]
    return lut


@njit(cache=True, nogil=True)
def equalize_k(src, dst, param, y0, x0, h, w):
    """``ImageOps.equalize``: per-channel histogram equalisation; ``param`` is ignored."""
    _apply_lut3(src, dst, _equalize_lut(_histogram(src)), y0, x0, h, w)


@njit(cache=True, nogil=True)
def _cut(h, cut, start, stop, step):
    """Remove ``cut`` samples from the histogram ``h`` walking from ``start`` (in place)."""
    for i in range(start, stop, step):
        if cut > h[i]:
            cut -= h[i]
            h[i] = 0
        else:
            h[i] -= cut
            cut = 0
        if cut <= 0:
            break


@njit(cache=True, nogil=True)
def _autocontrast_lut(hist, cutoff):
    """``ImageOps.autocontrast(img, cutoff)``'s per-channel LUT (uint8 (3, 256))."""
    lut = np.empty((3, 256), np.uint8)
    h = np.empty(256, np.int64)
    for c in range(3):
        n = 0
        for i in range(256):
            h[i] = hist[c, i]
            n += h[i]
        if cutoff != 0.0:
            cut = int((n * cutoff) // 100.0)  # Numba's float // follows CPython
            _cut(h, cut, 0, 256, 1)
            _cut(h, cut, 255, -1, -1)
        lo = 255
        for i in range(256):
            if h[i] != 0:
                lo = i
                break
        hi = 0
        for i in range(255, -1, -1):
            if h[i] != 0:
                hi = i
                break
        if hi <= lo:
            for i in range(256):
                lut[c, i] = i
        else:
            scale = 255.0 / (hi - lo)
            offset = -lo * scale
            for i in range(256):
                lut[c, i] = min(max(int(i * scale + offset), 0), 255)
    return lut


@njit(cache=True, nogil=True)
def autocontrast_k(src, dst, param, y0, x0, h, w):
    """``ImageOps.autocontrast(img, cutoff=param)``: per-channel stretch after cutting
    ``param`` percent of the samples from each end of the histogram."""
    _apply_lut3(src, dst, _autocontrast_lut(_histogram(src), param), y0, x0, h, w)


# --------------------------------------------------------------------------- enhance ops


@njit(cache=True, nogil=True)
def brightness_k(src, dst, param, y0, x0, h, w):
    """``ImageEnhance.Brightness(img).enhance(param)`` (blend with black)."""
    _blend_flat(src, dst, np.int32(0), np.float32(param), y0, x0, h, w)


@njit(cache=True, nogil=True)
def _mean_grey(src):
    """``int(ImageStat.Stat(img.convert("L")).mean[0] + 0.5)`` of the full image."""
    flat = src.reshape(src.size)
    n = src.size // 3
    total = 0
    for i in range(n):
        total += _grey(flat[3 * i], flat[3 * i + 1], flat[3 * i + 2])
    return np.int32(total / n + 0.5)


@njit(cache=True, nogil=True)
def contrast_k(src, dst, param, y0, x0, h, w):
    """``ImageEnhance.Contrast(img).enhance(param)`` (blend with the flat mean grey)."""
    _blend_flat(src, dst, _mean_grey(src), np.float32(param), y0, x0, h, w)


@njit(cache=True, nogil=True)
def color_k(src, dst, param, y0, x0, h, w):
    """``ImageEnhance.Color(img).enhance(param)`` (blend with the greyscale image)."""
    alpha = np.float32(param)
    for y in range(y0, y0 + h):
        s = row_view(src, y, x0, w)
        d = row_view(dst, y, x0, w)
        for j in range(w):
            r = np.int32(s[3 * j])
            g = np.int32(s[3 * j + 1])
            b = np.int32(s[3 * j + 2])
            grey = _grey(r, g, b)
            d[3 * j] = _blend1(grey, r, alpha)
            d[3 * j + 1] = _blend1(grey, g, alpha)
            d[3 * j + 2] = _blend1(grey, b, alpha)


@njit(cache=True, nogil=True)
def _sharpen_row(up, mid, down, d, alpha):
    """Interior bytes of one row: ``blend(SMOOTH(img), img, alpha)``. ``up``/``mid``/``down``
    are rows y-1, y, y+1 from one pixel left of the output to one pixel right of it."""
    for i in range(d.shape[0]):
        s = _HALF
        s += (np.float32(down[i]) * _K1 + np.float32(down[i + 3]) * _K1) + np.float32(
            down[i + 6]
        ) * _K1
        s += (np.float32(mid[i]) * _K1 + np.float32(mid[i + 3]) * _K5) + np.float32(
            mid[i + 6]
        ) * _K1
        s += (np.float32(up[i]) * _K1 + np.float32(up[i + 3]) * _K1) + np.float32(up[i + 6]) * _K1
        deg = np.float32(np.int32(min(max(s, _ZERO), _MAX)))
        t = deg + alpha * (np.float32(mid[i + 3]) - deg)
        d[i] = np.int32(min(max(t, _ZERO), _MAX))


@njit(cache=True, nogil=True)
def sharpness_k(src, dst, param, y0, x0, h, w):
    """``ImageEnhance.Sharpness(img).enhance(param)`` (blend with the SMOOTH-filtered image;
    the 1-pixel image border, where the filter copies its input, is unchanged)."""
    alpha = np.float32(param)
    hh = src.shape[0]
    ww = src.shape[1]
    xa = max(x0, 1)  # interior columns of the box
    xb = max(min(x0 + w, ww - 1), xa)
    for y in range(y0, y0 + h):
        if y == 0 or y == hh - 1 or xb == xa:
            copy_bytes(row_view(src, y, x0, w), row_view(dst, y, x0, w))
            continue
        copy_bytes(row_view(src, y, x0, xa - x0), row_view(dst, y, x0, xa - x0))
        copy_bytes(row_view(src, y, xb, x0 + w - xb), row_view(dst, y, xb, x0 + w - xb))
        n = xb - xa
        _sharpen_row(
            row_view(src, y - 1, xa - 1, n + 2),
            row_view(src, y, xa - 1, n + 2),
            row_view(src, y + 1, xa - 1, n + 2),
            row_view(dst, y, xa, n),
            alpha,
        )
