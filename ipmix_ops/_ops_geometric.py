"""Geometric IPMix ops as Numba kernels that reproduce Pillow's bilinear affine warp.

All kernels share the signature ``kernel(src, dst, param, y0, x0, h, w)``: ``src`` and ``dst``
are distinct uint8 arrays of shape (H, W, 3) (C-contiguous), ``param`` is a float64 in Pillow's
meaning, and only ``dst[y0:y0 + h, x0:x0 + w, :]`` is written, with the full-image result of the
op restricted to that box.

Pillow's ``Image.transform(..., AFFINE, BILINEAR)`` (``Geometry.c``) maps every output pixel
centre ``(x + 0.5, y + 0.5)`` through the matrix in float64, fills black when the source point
falls outside ``[0, W) x [0, H)``, interpolates the 2x2 neighbourhood with edge clamping and
truncates to uint8. The kernels evaluate the very same float64 expressions in the same order,
so they are bit-exact (float32 or fixed-point maths would be faster but only within +-1), and
specialise the common cases for speed:

* integer translations are row shifts (the interpolation weight is exactly 0);
* ``shear_x``/``translate_x`` blend 2 horizontal taps (Pillow's ``dy`` is exactly 0);
* ``shear_y``/``translate_y`` blend 2 vertical taps (Pillow's ``dx`` is exactly 0);
* zero parameters copy, and ``rotate`` reproduces Pillow's shortcuts for 0, 180 and (square
  images) 90/270 degrees.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._ops_color import copy_bytes, fill_zero, row_view

_DEG_TO_RAD = math.pi / 180.0  # CPython's math.radians multiplies by this constant
_SPLIT = 134217729.0  # 2**27 + 1, Veltkamp splitting constant
_TEN15 = 1e15  # exactly representable


# --------------------------------------------------------------------------- helpers


@njit(cache=True, nogil=True)
def _copy_box(src, dst, y0, x0, h, w):
    """``dst[box] = src[box]``."""
    for y in range(y0, y0 + h):
        copy_bytes(row_view(src, y, x0, w), row_view(dst, y, x0, w))


@njit(cache=True, nogil=True)
def _round15(v):
    """Python's ``round(v, 15)`` (correctly rounded, half-even) for ``|v| <= 1``.

    The product ``v * 1e15`` is split into a double and its exact rounding error (Dekker), so
    the decision to round up or down is taken on the exact decimal value, as CPython does.
    """
    p = v * _TEN15
    c = _SPLIT * v
    vh = c - (c - v)
    vl = v - vh
    c = _SPLIT * _TEN15
    th = c - (c - _TEN15)
    tl = _TEN15 - th
    err = ((vh * th - p) + vh * tl + vl * th) + vl * tl
    z = float(round(p))  # nearest integer, ties to even
    frac = (p - z) + err  # p - z is exact
    if frac > 0.5 or (frac == 0.5 and z % 2.0 != 0.0):
        z += 1.0
    elif frac < -0.5 or (frac == -0.5 and z % 2.0 != 0.0):
        z -= 1.0
    return z / _TEN15


@njit(cache=True, nogil=True)
def rotate_matrix(angle, width, height):
    """The affine matrix Pillow's ``Image.rotate`` builds for ``angle`` (already ``% 360``)."""
    a = -(angle * _DEG_TO_RAD)
    m0 = _round15(math.cos(a))
    m1 = _round15(math.sin(a))
    m3 = _round15(-math.sin(a))
    m4 = _round15(math.cos(a))
    cx = width / 2.0
    cy = height / 2.0
    m2 = (m0 * -cx + m1 * -cy + 0.0) + cx
    m5 = (m3 * -cx + m4 * -cy + 0.0) + cy
    return m0, m1, m2, m3, m4, m5


# --------------------------------------------------------------------------- warps
#
# The warps run in two passes per output row. Pass A evaluates Pillow's float64 expressions
# for every pixel's source point in a branch-free loop over float arrays (LLVM vectorises
# it) and stores the byte offset of the top-left sample in the flattened source (-1 when the
# point is outside the image: black), the byte steps to the right / lower sample (0 where
# Pillow clamps at the border) and the weights ``dx = xs - floor(xs)``, ``dy = ys - floor(ys)``.
# Pass B gathers the 2 or 4 samples with unsigned indices and blends them in float64 with
# Pillow's formula and truncation. Shear/translate matrices have ``dy == 0`` (or ``dx == 0``)
# exactly, so they use a 2-tap blend.

_MODE_H = 0  # matrix (1, a1, a2, 0, 1, 0): the source row is y, dy == 0  (shear_x, translate_x)
_MODE_V = 1  # matrix (1, 0, 0, a3, 1, a5): the source column is x, dx == 0  (shear_y, translate_y)
_MODE_G = 2  # any matrix (rotate)


@njit(cache=True, nogil=True)
def _pass_a_h(cols, y, m, fw, rb, base, step, wt):
    """Pass A for ``_MODE_H``: ``xin = 1.0 * (x + 0.5) + a1 * (y + 0.5) + a2``."""
    bx = m[1] * (y + 0.5)
    a2 = m[2]
    row = y * rb
    for j in range(cols.shape[0]):
        xin = (cols[j] + 0.5) + bx + a2
        xs = xin - 0.5
        fx = np.floor(xs)
        ok = (xin >= 0.0) & (xin < fw)
        xa = max(fx, 0.0)
        xb = min(fx + 1.0, fw - 1.0)
        base[j] = np.int32(row + 3.0 * xa) if ok else np.int32(-1)
        step[j] = np.int32(3.0 * (xb - xa)) if ok else np.int32(0)
        wt[j] = xs - fx


@njit(cache=True, nogil=True)
def _pass_a_v(cols, y, m, fh, rb, base, step, wt):
    """Pass A for ``_MODE_V``: ``yin = a3 * (x + 0.5) + 1.0 * (y + 0.5) + a5``."""
    yc = y + 0.5
    a3 = m[3]
    a5 = m[5]
    for j in range(cols.shape[0]):
        xf = cols[j]
        yin = a3 * (xf + 0.5) + yc + a5
        ys = yin - 0.5
        fy = np.floor(ys)
        ok = (yin >= 0.0) & (yin < fh)
        ya = max(fy, 0.0)
        yb = min(fy + 1.0, fh - 1.0)
        base[j] = np.int32(ya * rb + 3.0 * xf) if ok else np.int32(-1)
        step[j] = np.int32(rb * (yb - ya)) if ok else np.int32(0)
        wt[j] = ys - fy


@njit(cache=True, nogil=True)
def _pass_a_g(cols, y, m, fw, fh, rb, base, sx, sy, wx, wy):
    """Pass A for ``_MODE_G``: ``xin = a0 x' + a1 y' + a2``, ``yin = a3 x' + a4 y' + a5``."""
    a0, a1, a2, a3, a4, a5 = m
    yc = y + 0.5
    bx = a1 * yc
    by = a4 * yc
    for j in range(cols.shape[0]):
        xc = cols[j] + 0.5
        xin = a0 * xc + bx + a2
        yin = a3 * xc + by + a5
        xs = xin - 0.5
        ys = yin - 0.5
        fx = np.floor(xs)
        fy = np.floor(ys)
        ok = (xin >= 0.0) & (xin < fw) & (yin >= 0.0) & (yin < fh)
        xa = max(fx, 0.0)
        xb = min(fx + 1.0, fw - 1.0)
        ya = max(fy, 0.0)
        yb = min(fy + 1.0, fh - 1.0)
        base[j] = np.int32(ya * rb + 3.0 * xa) if ok else np.int32(-1)
        sx[j] = np.int32(3.0 * (xb - xa)) if ok else np.int32(0)
        sy[j] = np.int32(rb * (yb - ya)) if ok else np.int32(0)
        wx[j] = xs - fx
        wy[j] = ys - fy


@njit(cache=True, nogil=True)
def _pass_b2(flat, drow, base, step, wt):
    """Pass B, 2 taps: ``p0 + (p1 - p0) * t`` truncated, p1 ``step`` bytes after p0."""
    one = np.uint64(1)
    two = np.uint64(2)
    for j in range(base.shape[0]):
        o = 3 * j
        b = base[j]
        if b < 0:
            drow[o] = 0
            drow[o + 1] = 0
            drow[o + 2] = 0
            continue
        u = np.uint64(b)
        v = u + np.uint64(step[j])
        t = wt[j]
        p0 = float(flat[u])
        drow[o] = np.int32(p0 + (float(flat[v]) - p0) * t)
        p0 = float(flat[u + one])
        drow[o + 1] = np.int32(p0 + (float(flat[v + one]) - p0) * t)
        p0 = float(flat[u + two])
        drow[o + 2] = np.int32(p0 + (float(flat[v + two]) - p0) * t)


@njit(cache=True, nogil=True)
def _pass_b4(flat, drow, base, sx, sy, wx, wy):
    """Pass B, 4 taps: Pillow's bilinear blend (horizontal lerps, then vertical)."""
    for j in range(base.shape[0]):
        o = 3 * j
        b = base[j]
        if b < 0:
            drow[o] = 0
            drow[o + 1] = 0
            drow[o + 2] = 0
            continue
        u00 = np.uint64(b)
        u01 = u00 + np.uint64(sx[j])
        u10 = u00 + np.uint64(sy[j])
        u11 = u10 + np.uint64(sx[j])
        dx = wx[j]
        dy = wy[j]
        for c in range(3):
            cc = np.uint64(c)
            p00 = float(flat[u00 + cc])
            p10 = float(flat[u10 + cc])
            v1 = p00 + (float(flat[u01 + cc]) - p00) * dx
            v2 = p10 + (float(flat[u11 + cc]) - p10) * dx
            drow[o + c] = np.int32(v1 + (v2 - v1) * dy)


@njit(cache=True, nogil=True)
def _warp(src, dst, mode, m, y0, x0, h, w):
    """Bilinear affine warp with matrix ``m`` (6-tuple) into ``dst[box]``, bit-exact with
    Pillow. ``mode`` selects the specialisation; ``m`` must satisfy its precondition (see the
    ``_MODE_*`` constants)."""
    fw = float(src.shape[1])
    fh = float(src.shape[0])
    rb = 3.0 * src.shape[1]  # bytes per row
    flat = src.reshape(src.size)
    cols = np.empty(w, np.float64)
    for j in range(w):
        cols[j] = x0 + j
    base = np.empty(w, np.int32)
    sx = np.empty(w, np.int32)
    sy = np.empty(w, np.int32)
    wx = np.empty(w, np.float64)
    wy = np.empty(w, np.float64)
    for y in range(y0, y0 + h):
        drow = dst[y].reshape(3 * dst.shape[1])[3 * x0 : 3 * (x0 + w)]
        if mode == _MODE_H:
            _pass_a_h(cols, float(y), m, fw, rb, base, sx, wx)
            _pass_b2(flat, drow, base, sx, wx)
        elif mode == _MODE_V:
            _pass_a_v(cols, float(y), m, fh, rb, base, sy, wy)
            _pass_b2(flat, drow, base, sy, wy)
        else:
            _pass_a_g(cols, float(y), m, fw, fh, rb, base, sx, sy, wx, wy)
            _pass_b4(flat, drow, base, sx, sy, wx, wy)


@njit(cache=True, nogil=True)
def _shift_x(src, dst, shift, y0, x0, h, w):
    """``dst[y, x] = src[y, x + shift]``, black where ``x + shift`` leaves the image."""
    ww = src.shape[1]
    lo = min(max(-shift, x0), x0 + w)  # first x with x + shift >= 0
    hi = max(min(ww - shift, x0 + w), lo)  # first x with x + shift >= W
    for y in range(y0, y0 + h):
        fill_zero(row_view(dst, y, x0, lo - x0))
        copy_bytes(row_view(src, y, lo + shift, hi - lo), row_view(dst, y, lo, hi - lo))
        fill_zero(row_view(dst, y, hi, x0 + w - hi))


@njit(cache=True, nogil=True)
def _shift_y(src, dst, shift, y0, x0, h, w):
    """``dst[y, x] = src[y + shift, x]``, black where ``y + shift`` leaves the image."""
    for y in range(y0, y0 + h):
        sy = y + shift
        if 0 <= sy < src.shape[0]:
            copy_bytes(row_view(src, sy, x0, w), row_view(dst, y, x0, w))
        else:
            fill_zero(row_view(dst, y, x0, w))


@njit(cache=True, nogil=True)
def _integral_shift(px, size):
    """``int(px)`` if ``px`` is a whole number (clamped to +-size), else a sentinel > size."""
    if px != math.floor(px):
        return size + 1  # not integral (or NaN)
    if px >= size:
        return size
    if px <= -size:
        return -size
    return int(px)


# --------------------------------------------------------------------------- kernels


@njit(cache=True, nogil=True)
def _reverse_pixels(s, d):
    """``d`` = the pixels of the flat RGB row ``s`` in reverse order."""
    n = d.shape[0] // 3
    for j in range(n):
        k = 3 * (n - 1 - j)
        d[3 * j] = s[k]
        d[3 * j + 1] = s[k + 1]
        d[3 * j + 2] = s[k + 2]


@njit(cache=True, nogil=True)
def mirror_k(src, dst, param, y0, x0, h, w):
    """``ImageOps.mirror``: left-right flip; ``param`` is ignored."""
    sx0 = src.shape[1] - x0 - w  # source columns of the box, reversed
    for y in range(y0, y0 + h):
        _reverse_pixels(row_view(src, y, sx0, w), row_view(dst, y, x0, w))


@njit(cache=True, nogil=True)
def _rotate_quarter(src, dst, quarter, y0, x0, h, w):
    """Pillow's transposes ROTATE_90 (1), ROTATE_180 (2), ROTATE_270 (3), counter-clockwise;
    90/270 only for square images (as ``Image.rotate`` uses them)."""
    lh = src.shape[0] - 1
    lw = src.shape[1] - 1
    if quarter == 2:
        for y in range(y0, y0 + h):
            _reverse_pixels(row_view(src, lh - y, lw + 1 - x0 - w, w), row_view(dst, y, x0, w))
        return
    for y in range(y0, y0 + h):
        for x in range(x0, x0 + w):
            sy = x if quarter == 1 else lh - x
            sx = lw - y if quarter == 1 else y
            dst[y, x, 0] = src[sy, sx, 0]
            dst[y, x, 1] = src[sy, sx, 1]
            dst[y, x, 2] = src[sy, sx, 2]


@njit(cache=True, nogil=True)
def rotate_k(src, dst, param, y0, x0, h, w):
    """``img.rotate(param, resample=BILINEAR)``: counter-clockwise degrees, black fill."""
    hh = src.shape[0]
    ww = src.shape[1]
    angle = param % 360.0  # Python semantics, as Pillow
    if angle == 0.0:
        _copy_box(src, dst, y0, x0, h, w)
    elif angle == 180.0:
        _rotate_quarter(src, dst, 2, y0, x0, h, w)
    elif (angle == 90.0 or angle == 270.0) and hh == ww:
        _rotate_quarter(src, dst, 1 if angle == 90.0 else 3, y0, x0, h, w)
    else:
        m0, m1, m2, m3, m4, m5 = rotate_matrix(angle, ww, hh)
        _warp(src, dst, _MODE_G, (m0, m1, m2, m3, m4, m5), y0, x0, h, w)


@njit(cache=True, nogil=True)
def shear_x_k(src, dst, param, y0, x0, h, w):
    """``img.transform(size, AFFINE, (1, param, 0, 0, 1, 0), BILINEAR)``."""
    if param == 0.0:
        _copy_box(src, dst, y0, x0, h, w)
    else:
        _warp(src, dst, _MODE_H, (1.0, param, 0.0, 0.0, 1.0, 0.0), y0, x0, h, w)


@njit(cache=True, nogil=True)
def shear_y_k(src, dst, param, y0, x0, h, w):
    """``img.transform(size, AFFINE, (1, 0, 0, param, 1, 0), BILINEAR)``."""
    if param == 0.0:
        _copy_box(src, dst, y0, x0, h, w)
    else:
        _warp(src, dst, _MODE_V, (1.0, 0.0, 0.0, param, 1.0, 0.0), y0, x0, h, w)


@njit(cache=True, nogil=True)
def translate_x_k(src, dst, param, y0, x0, h, w):
    """``img.transform(size, AFFINE, (1, 0, param, 0, 1, 0), BILINEAR)``: output x shows
    source x + param (positive moves the content left); black where uncovered."""
    ww = src.shape[1]
    shift = _integral_shift(param, ww)
    if shift == 0:
        _copy_box(src, dst, y0, x0, h, w)
    elif shift <= ww:
        _shift_x(src, dst, shift, y0, x0, h, w)
    else:
        _warp(src, dst, _MODE_H, (1.0, 0.0, param, 0.0, 1.0, 0.0), y0, x0, h, w)


@njit(cache=True, nogil=True)
def translate_y_k(src, dst, param, y0, x0, h, w):
    """``img.transform(size, AFFINE, (1, 0, 0, 0, 1, param), BILINEAR)``: output y shows
    source y + param (positive moves the content up); black where uncovered."""
    hh = src.shape[0]
    shift = _integral_shift(param, hh)
    if shift == 0:
        _copy_box(src, dst, y0, x0, h, w)
    elif shift <= hh:
        _shift_y(src, dst, shift, y0, x0, h, w)
    else:
        _warp(src, dst, _MODE_V, (1.0, 0.0, 0.0, 0.0, 1.0, param), y0, x0, h, w)
