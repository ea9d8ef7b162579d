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

Inner loops index the flattened images with unsigned 64-bit offsets (:func:`_u`): Numba then
emits no negative-index wrap-around checks and LLVM vectorises the loops (a byte loop written
with signed offsets or on row slices runs 5-30x slower).
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

_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U3 = np.uint64(3)


@njit(cache=True, nogil=True)
def _u(v):
    return np.uint64(v)


@njit(cache=True, nogil=True)
def _copy(fs, so, fd, do, n):
    """``fd[do:do + n] = fs[so:so + n]`` (flat uint8 arrays, uint64 offsets)."""
    for i in range(n):
        fd[do + i] = fs[so + i]


@njit(cache=True, nogil=True)
def _histogram(src):
    """Per-channel histogram of the full image: int64 array (3, 256).

    Even and odd pixels count into separate tables (fewer store-to-load stalls on runs of
    equal values), summed at the end.
    """
    part = np.zeros((6, 256), np.int32)
    h0 = part[0]
    h1 = part[1]
    h2 = part[2]
    h3 = part[3]
    h4 = part[4]
    h5 = part[5]
    flat = src.reshape(src.size)
    n = _u(src.size // 6)
    for k in range(n):
        i = k * np.uint64(6)
        h0[flat[i]] += 1
        h1[flat[i + _U1]] += 1
        h2[flat[i + _U2]] += 1
        h3[flat[i + _U3]] += 1
        h4[flat[i + np.uint64(4)]] += 1
        h5[flat[i + np.uint64(5)]] += 1
    if src.size % 6:  # odd pixel count: the last pixel
        k = src.size - 3
        h0[flat[k]] += 1
        h1[flat[k + 1]] += 1
        h2[flat[k + 2]] += 1
    out = np.empty((3, 256), np.int64)
    for c in range(3):
        for v in range(256):
            out[c, v] = np.int64(part[c, v]) + np.int64(part[c + 3, v])
    return out


@njit(cache=True, nogil=True)
def _apply_lut3(src, dst, lut, y0, x0, h, w):
    """``dst[box, c] = lut[c, src[box, c]]`` with ``lut`` uint8 (3, 256)."""
    l0 = lut[0]
    l1 = lut[1]
    l2 = lut[2]
    fs = src.reshape(src.size)
    fd = dst.reshape(dst.size)
    rb = 3 * src.shape[1]
    for y in range(y0, y0 + h):
        o = _u(y * rb + 3 * x0)
        for j in range(_u(w)):
            i = o + _U3 * j
            fd[i] = l0[fs[i]]
            fd[i + _U1] = l1[fs[i + _U1]]
            fd[i + _U2] = l2[fs[i + _U2]]


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
    fs = src.reshape(src.size)
    fd = dst.reshape(dst.size)
    rb = 3 * src.shape[1]
    n = _u(3 * w)
    for y in range(y0, y0 + h):
        o = _u(y * rb + 3 * x0)
        for i in range(n):
            t = fdeg + alpha * (np.float32(fs[o + i]) - fdeg)
            fd[o + i] = np.int32(min(max(t, _ZERO), _MAX))


# --------------------------------------------------------------------------- LUT ops


@njit(cache=True, nogil=True)
def invert_k(src, dst, param, y0, x0, h, w):
    """``ImageOps.invert``: ``255 - v``; ``param`` is ignored."""
    fs = src.reshape(src.size)
    fd = dst.reshape(dst.size)
    rb = 3 * src.shape[1]
    for y in range(y0, y0 + h):
        o = _u(y * rb + 3 * x0)
        for i in range(_u(3 * w)):
            fd[o + i] = fs[o + i] ^ np.uint8(255)


@njit(cache=True, nogil=True)
def posterize_k(src, dst, param, y0, x0, h, w):
    """``ImageOps.posterize(img, int(param))``: keep the top ``bits`` bits.

    Pillow accepts 1..8 bits; here ``int(param)`` is clamped to 0..8 (0 gives black).
    """
    bits = min(max(int(param), 0), 8)
    mask = np.uint8((0xFF << (8 - bits)) & 0xFF)
    fs = src.reshape(src.size)
    fd = dst.reshape(dst.size)
    rb = 3 * src.shape[1]
    for y in range(y0, y0 + h):
        o = _u(y * rb + 3 * x0)
        for i in range(_u(3 * w)):
            fd[o + i] = fs[o + i] & mask


@njit(cache=True, nogil=True)
def solarize_k(src, dst, param, y0, x0, h, w):
    """``ImageOps.solarize(img, param)``: ``v if v < threshold else 255 - v`` (256 = identity)."""
    fs = src.reshape(src.size)
    fd = dst.reshape(dst.size)
    rb = 3 * src.shape[1]
    n = _u(3 * w)
    if param > 255.0:  # no sample is >= threshold: identity
        for y in range(y0, y0 + h):
            o = _u(y * rb + 3 * x0)
            _copy(fs, o, fd, o, n)
        return
    thr = np.uint8(max(math.ceil(param), 0))  # v < param  <=>  v < ceil(param), integer v
    for y in range(y0, y0 + h):
        o = _u(y * rb + 3 * x0)
        for i in range(n):
            v = fs[o + i]
            fd[o + i] = v if v < thr else v ^ np.uint8(255)


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
    for j in range(_u(n)):
        i = _U3 * j
        total += _grey(flat[i], flat[i + _U1], flat[i + _U2])
    return np.int32(total / n + 0.5)


@njit(cache=True, nogil=True)
def contrast_k(src, dst, param, y0, x0, h, w):
    """``ImageEnhance.Contrast(img).enhance(param)`` (blend with the flat mean grey)."""
    _blend_flat(src, dst, _mean_grey(src), np.float32(param), y0, x0, h, w)


@njit(cache=True, nogil=True)
def color_k(src, dst, param, y0, x0, h, w):
    """``ImageEnhance.Color(img).enhance(param)`` (blend with the greyscale image)."""
    alpha = np.float32(param)
    fs = src.reshape(src.size)
    fd = dst.reshape(dst.size)
    rb = 3 * src.shape[1]
    for y in range(y0, y0 + h):
        o = _u(y * rb + 3 * x0)
        for j in range(_u(w)):
            i = o + _U3 * j
            r = np.int32(fs[i])
            g = np.int32(fs[i + _U1])
            b = np.int32(fs[i + _U2])
            grey = _grey(r, g, b)
            fd[i] = _blend1(grey, r, alpha)
            fd[i + _U1] = _blend1(grey, g, alpha)
            fd[i + _U2] = _blend1(grey, b, alpha)


@njit(cache=True, nogil=True)
def _sharpen_row(fs, up, mid, down, fd, do, n, alpha):
    """``n`` interior bytes of one row: ``blend(SMOOTH(img), img, alpha)``. ``up``/``mid``/
    ``down`` are the offsets in ``fs`` of rows y-1, y, y+1 one pixel left of the output."""
    u6 = np.uint64(6)
    for i in range(n):
        a = up + i
        b = mid + i
        c = down + i
        s = _HALF
        s += (np.float32(fs[c]) * _K1 + np.float32(fs[c + _U3]) * _K1) + np.float32(
            fs[c + u6]
        ) * _K1
        s += (np.float32(fs[b]) * _K1 + np.float32(fs[b + _U3]) * _K5) + np.float32(
            fs[b + u6]
        ) * _K1
        s += (np.float32(fs[a]) * _K1 + np.float32(fs[a + _U3]) * _K1) + np.float32(
            fs[a + u6]
        ) * _K1
        deg = np.float32(np.int32(min(max(s, _ZERO), _MAX)))
        t = deg + alpha * (np.float32(fs[b + _U3]) - deg)
        fd[do + i] = np.int32(min(max(t, _ZERO), _MAX))


@njit(cache=True, nogil=True)
def sharpness_k(src, dst, param, y0, x0, h, w):
    """``ImageEnhance.Sharpness(img).enhance(param)`` (blend with the SMOOTH-filtered image;
    the 1-pixel image border, where the filter copies its input, is unchanged)."""
    alpha = np.float32(param)
    hh = src.shape[0]
    ww = src.shape[1]
    xa = max(x0, 1)  # interior columns of the box
    xb = max(min(x0 + w, ww - 1), xa)
    fs = src.reshape(src.size)
    fd = dst.reshape(dst.size)
    rb = 3 * ww
    for y in range(y0, y0 + h):
        row = y * rb
        if y == 0 or y == hh - 1 or xb == xa:
            o = _u(row + 3 * x0)
            _copy(fs, o, fd, o, _u(3 * w))
            continue
        o = _u(row + 3 * x0)
        _copy(fs, o, fd, o, _u(3 * (xa - x0)))
        o = _u(row + 3 * xb)
        _copy(fs, o, fd, o, _u(3 * (x0 + w - xb)))
        left = row + 3 * (xa - 1)
        _sharpen_row(
            fs,
            _u(left - rb),
            _u(left),
            _u(left + rb),
            fd,
            _u(row + 3 * xa),
            _u(3 * (xb - xa)),
            alpha,
        )
