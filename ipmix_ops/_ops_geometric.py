"""Geometric IPMix ops as Numba kernels that reproduce Pillow's bilinear affine warp.

All kernels share the signature ``kernel(src, dst, param, y0, x0, h, w)``: ``src`` and ``dst``
are distinct uint8 arrays of shape (H, W, 3) (C-contiguous), ``param`` is a float64 in Pillow's
meaning, and only ``dst[y0:y0 + h, x0:x0 + w, :]`` is written, with the full-image result of the
op restricted to that box.

Pillow's ``Image.transform(..., AFFINE, BILINEAR)`` (``Geometry.c``) maps every output pixel
centre ``(x + 0.5, y + 0.5)`` through the matrix in float64, fills black when the source point
falls outside ``[0, W) x [0, H)``, interpolates the 2x2 neighbourhood with edge clamping and
truncates to uint8.

Accuracy: mirror, integer translations, zero parameters and rotations by multiples of 90
degrees are exact (row copies / transposes). The resampling cases are within the
tolerance of docs/algorithm.md §3 (at most 1 grey level apart on >= 99% of the pixels); on photos
they differ from Pillow by at most 1 level on a few pixels in 10^4 (see ``tests/test_ops.py``):

* the black fill, the border pixels where Pillow clamps a column, and anything else that
  is not an interior run are evaluated per pixel with Pillow's own float64 expressions;
* the interior of every output row is split into runs where the source column offset
  ``floor(xs) - x`` and the source row ``floor(ys)`` are constant (a whole row for
  ``shear_x``/``translate_x``; ~1 / |v| pixels for ``shear_y`` and small rotations). In a run
  the 2 (or 4) taps are contiguous rows of the source, and the weights are linear in ``x``,
  so the blend is a flat float32 byte loop that LLVM vectorises (``_lerp_*``);
* rotations whose runs would be short (large angles) use a general per-pixel warp.

All inner loops index flat arrays with unsigned 64-bit offsets: Numba then emits no
negative-index wrap-around checks and LLVM vectorises the loops.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_DEG_TO_RAD = math.pi / 180.0  # CPython's math.radians multiplies by this constant
_SPLIT = 134217729.0  # 2**27 + 1, Veltkamp splitting constant
_TEN15 = 1e15  # exactly representable

_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U3 = np.uint64(3)
_F0 = np.float32(0.0)
_F1 = np.float32(1.0)

#: Rotations use the run-based warp while the runs are long enough: at most this many
#: run breaks per output pixel (|cos a - 1| + |sin a|: 0.19 at 10 degrees; |v| for shear_y).
_MAX_BREAKS = 0.22


# --------------------------------------------------------------------------- helpers


@njit(cache=True, nogil=True)
def _copy(fs, so, fd, do, n):
    """``fd[do:do + n] = fs[so:so + n]`` (flat uint8 arrays, uint64 offsets)."""
    for i in range(n):
        fd[do + i] = fs[so + i]


@njit(cache=True, nogil=True)
def _zero(fd, do, n):
    """``fd[do:do + n] = 0``."""
    for i in range(n):
        fd[do + i] = 0


@njit(cache=True, nogil=True)
def _u(v):
    return np.uint64(v)


@njit(cache=True, nogil=True)
def _copy_box(src, dst, y0, x0, h, w):
    """``dst[box] = src[box]``."""
    fs = src.reshape(src.size)
    fd = dst.reshape(dst.size)
    rb = 3 * src.shape[1]
    for y in range(y0, y0 + h):
        o = _u(y * rb + 3 * x0)
        _copy(fs, o, fd, o, _u(3 * w))


@njit(cache=True, nogil=True)
def _reverse_pixels(fs, last, fd, do, n):
    """``n`` pixels to ``fd[do:]`` taken from ``fs`` backwards, starting at the pixel at byte
    offset ``last`` (which must be >= 3 * (n - 1))."""
    for j in range(n):
        i = do + _U3 * j
        k = last - _U3 * j
        fd[i] = fs[k]
        fd[i + _U1] = fs[k + _U1]
        fd[i + _U2] = fs[k + _U2]


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


def pillow_rotation(c, s, cx, cy):
    """Pillow's ``Image.rotate`` matrix (output pixel centre -> source) from ``c, s`` = cos
    and sin of minus the angle (Pillow rounds both to 15 decimals) about centre ``(cx, cy)``.

    The one place of this formula: plain arithmetic, so the same function serves Python
    floats (the op table's ``affine``) and Numba (:func:`rotate_matrix`).
    ``round(-sin, 15) == -round(sin, 15)``, so the fourth entry is ``-s``.
    """
    return c, s, (c * -cx + s * -cy + 0.0) + cx, -s, c, (-s * -cx + c * -cy + 0.0) + cy


_pillow_rotation_k = njit(inline="always")(pillow_rotation)


@njit(cache=True, nogil=True)
def rotate_matrix(angle, width, height):
    """The affine matrix Pillow's ``Image.rotate`` builds for ``angle`` (already ``% 360``)."""
    a = -(angle * _DEG_TO_RAD)
    return _pillow_rotation_k(
        _round15(math.cos(a)), _round15(math.sin(a)), width / 2.0, height / 2.0
    )


# --------------------------------------------------------------------------- exact pixel


@njit(cache=True, nogil=True)
def _pixel(fs, fd, do, ww, hh, xin, yin):
    """One output pixel exactly as Pillow's ``bilinear_filter32RGB`` (float64, truncation)."""
    if not ((xin >= 0.0) & (xin < ww) & (yin >= 0.0) & (yin < hh)):
        fd[do] = 0
        fd[do + _U1] = 0
        fd[do + _U2] = 0
        return
    xs = xin - 0.5
    ys = yin - 0.5
    fx = math.floor(xs)
    fy = math.floor(ys)
    dx = xs - fx
    dy = ys - fy
    rb = 3 * ww
    xa = 3 * min(max(fx, 0), ww - 1)
    xb = 3 * min(max(fx + 1, 0), ww - 1)
    ya = rb * min(max(fy, 0), hh - 1)
    yb = rb * min(max(fy + 1, 0), hh - 1)
    for c in range(3):
        p00 = float(fs[ya + xa + c])
        p10 = float(fs[yb + xa + c])
        v1 = p00 + (float(fs[ya + xb + c]) - p00) * dx
        v2 = p10 + (float(fs[yb + xb + c]) - p10) * dx
        fd[do + _u(c)] = np.int32(v1 + (v2 - v1) * dy)


# --------------------------------------------------------------------------- run blends


@njit(cache=True, nogil=True)
def _lerp_h(fs, a, fd, do, n, t):
    """``n`` bytes: ``p + (q - p) * t`` with q the sample one pixel right of p (constant t)."""
    for i in range(n):
        p = np.float32(fs[a + i])
        fd[do + i] = np.int32(p + (np.float32(fs[a + i + _U3]) - p) * t)


@njit(cache=True, nogil=True)
def _lerp_v(fs, a, b, fd, do, n, c, g, go):
    """``n`` bytes: ``p + (q - p) * t``, p from offset ``a``, q from ``b``,
    ``t = clip(c + g[go + i], 0, 1)``."""
    for i in range(n):
        t = c + g[go + i]
        p = np.float32(fs[a + i])
        fd[do + i] = np.int32(p + (np.float32(fs[b + i]) - p) * t)


@njit(cache=True, nogil=True)
def _lerp_4(fs, a, b, fd, do, n, cx, gx, cy, gy, go):
    """``n`` bytes of Pillow's bilinear blend in float32: rows at offsets ``a`` and ``b``,
    right neighbours 3 bytes on, weights ``clip(c + g[go + i], 0, 1)``."""
    for i in range(n):
        tx = cx + gx[go + i]
        ty = cy + gy[go + i]
        p00 = np.float32(fs[a + i])
        p01 = np.float32(fs[a + i + _U3])
        p10 = np.float32(fs[b + i])
        p11 = np.float32(fs[b + i + _U3])
        v1 = p00 + (p01 - p00) * tx
        v2 = p10 + (p11 - p10) * tx
        fd[do + i] = np.int32(v1 + (v2 - v1) * ty)


# --------------------------------------------------------------------------- run-based warp


@njit(cache=True, nogil=True)
def _ok(x, a0, bx, a2, a3, by, a5, ww, hh, interior):
    """Pillow's test for output column ``x`` of the row (``bx = a1 (y + .5)``,
    ``by = a4 (y + .5)``): the source point is inside the image; with ``interior`` also
    both source columns are inside (no column clamping)."""
    xc = x + 0.5
    xin = a0 * xc + bx + a2
    yin = a3 * xc + by + a5
    ok = (yin >= 0.0) & (yin < hh)
    if interior:
        xs = xin - 0.5
        return ok & (xs >= 0.0) & (xs < ww - 1.0)
    return ok & (xin >= 0.0) & (xin < ww)


@njit(cache=True, nogil=True)
def _lin_range(f0, s, lo, hi, xa, xb):
    """Estimate of ``{x in [xa, xb): lo <= f0 + s (x + 0.5) < hi}`` as ``(l, r)``."""
    if s == 0.0:
        return (xa, xb) if (f0 >= lo) & (f0 < hi) else (xa, xa)
    u = (lo - f0) / s - 0.5
    v = (hi - f0) / s - 0.5
    if s > 0.0:
        l = np.ceil(u)
        r = np.ceil(v)
    else:
        l = np.floor(v) + 1.0
        r = np.floor(u) + 1.0
    l = min(max(l, float(xa)), float(xb))
    r = min(max(r, float(xa)), float(xb))
    return int(l), int(r)


@njit(cache=True, nogil=True)
def _range(a0, bx, a2, a3, by, a5, ww, hh, xa, xb, interior):
    """The columns of ``[xa, xb)`` that pass :func:`_ok` (an interval, since the source point
    moves monotonically along a row): analytic estimate, then fixed with the exact test."""
    e = 0.5 if interior else 0.0
    l1, r1 = _lin_range(bx + a2, a0, e, ww - e, xa, xb)
    l2, r2 = _lin_range(by + a5, a3, 0.0, hh, xa, xb)
    l = max(l1, l2)
    r = max(min(r1, r2), l)
    while l > xa and _ok(l - 1, a0, bx, a2, a3, by, a5, ww, hh, interior):
        l -= 1
    while l < r and not _ok(l, a0, bx, a2, a3, by, a5, ww, hh, interior):
        l += 1
    while r > l and not _ok(r - 1, a0, bx, a2, a3, by, a5, ww, hh, interior):
        r -= 1
    while r < xb and _ok(r, a0, bx, a2, a3, by, a5, ww, hh, interior):
        r += 1
    return l, r


@njit(cache=True, nogil=True)
def _run_end(t0, s, x, end):
    """First column after ``x`` where ``floor(t0 + s * (col - x))`` leaves 0 (t0 in [0, 1)),
    capped at ``end``."""
    if s > 0.0:
        e = x + np.ceil((1.0 - t0) / s)
    elif s < 0.0:
        e = x + np.floor(t0 / -s) + 1.0
    else:
        return end
    return int(min(max(e, x + 1.0), float(end)))


@njit(cache=True, nogil=True)
def _warp_runs(src, dst, m, y0, x0, h, w):
    """Bilinear affine warp with matrix ``m`` into ``dst[box]`` (see the module docstring)."""
    a0, a1, a2, a3, a4, a5 = m
    hh = src.shape[0]
    ww = src.shape[1]
    fw = float(ww)
    fh = float(hh)
    rb = 3 * ww
    fs = src.reshape(src.size)
    fd = dst.reshape(dst.size)
    sx = a0 - 1.0  # change of the source column offset per output pixel
    sy = a3  # change of the source row per output pixel
    gx = np.empty(3 * w, np.float32)
    gy = np.empty(3 * w, np.float32)
    for j in range(w):
        vx = np.float32(sx * j)
        vy = np.float32(sy * j)
        for c in range(3):
            gx[3 * j + c] = vx
            gy[3 * j + c] = vy
    xe = x0 + w
    for y in range(y0, y0 + h):
        yc = y + 0.5
        bx = a1 * yc
        by = a4 * yc
        row = y * rb
        xl, xr = _range(a0, bx, a2, a3, by, a5, fw, fh, x0, xe, False)
        cl, cr = _range(a0, bx, a2, a3, by, a5, fw, fh, xl, xr, True)
        _zero(fd, _u(row + 3 * x0), _u(3 * (xl - x0)))
        _zero(fd, _u(row + 3 * xr), _u(3 * (xe - xr)))
        for x in range(xl, cl):
            xc = x + 0.5
            _pixel(fs, fd, _u(row + 3 * x), ww, hh, a0 * xc + bx + a2, a3 * xc + by + a5)
        for x in range(cr, xr):
            xc = x + 0.5
            _pixel(fs, fd, _u(row + 3 * x), ww, hh, a0 * xc + bx + a2, a3 * xc + by + a5)
        x = cl
        while x < cr:
            xc = x + 0.5
            xs = a0 * xc + bx + a2 - 0.5
            ys = a3 * xc + by + a5 - 0.5
            fx = math.floor(xs)
            fy = math.floor(ys)
            tx = xs - fx
            ty = ys - fy
            kx = int(fx) - x  # source column - output column, constant in the run
            e = min(_run_end(tx, sx, x, cr), _run_end(ty, sy, x, cr), ww - 1 - kx)
            n = _u(3 * (e - x))
            do = _u(row + 3 * x)
            a = _u(min(max(int(fy), 0), hh - 1) * rb + 3 * (x + kx))
            b = _u(min(max(int(fy) + 1, 0), hh - 1) * rb + 3 * (x + kx))
            go = _u(3 * (x - x0))
            if sx == 0.0 and sy == 0.0 and ty == 0.0:
                _lerp_h(fs, a, fd, do, n, np.float32(tx))
            elif sx == 0.0 and tx == 0.0:
                _lerp_v(fs, a, b, fd, do, n, np.float32(ty - sy * (x - x0)), gy, go)
            else:
                cx = np.float32(tx - sx * (x - x0))
                cy = np.float32(ty - sy * (x - x0))
                _lerp_4(fs, a, b, fd, do, n, cx, gx, cy, gy, go)
            x = e


# --------------------------------------------------------------------------- general warp


@njit(cache=True, nogil=True)
def _pass_a_g(cols, y, m, fw, fh, rb, base, sx, sy, wx, wy):
    """Pass A: Pillow's float64 source point of every pixel of the row, as the byte offset of
    the top-left sample (-1: outside, black), byte steps to the right / lower sample (0 where
    Pillow clamps) and the weights."""
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
        wx[j] = np.float32(xs - fx)
        wy[j] = np.float32(ys - fy)


@njit(cache=True, nogil=True)
def _pass_b4(fs, fd, do, base, sx, sy, wx, wy):
    """Pass B: gather the 4 samples (unsigned offsets) and blend in float32."""
    for j in range(base.shape[0]):
        o = do + _U3 * _u(j)
        b = base[j]
        if b < 0:
            fd[o] = 0
            fd[o + _U1] = 0
            fd[o + _U2] = 0
            continue
        u00 = _u(b)
        u01 = u00 + _u(sx[j])
        u10 = u00 + _u(sy[j])
        u11 = u10 + _u(sx[j])
        dx = wx[j]
        dy = wy[j]
        for c in range(3):
            cc = _u(c)
            p00 = np.float32(fs[u00 + cc])
            p10 = np.float32(fs[u10 + cc])
            v1 = p00 + (np.float32(fs[u01 + cc]) - p00) * dx
            v2 = p10 + (np.float32(fs[u11 + cc]) - p10) * dx
            fd[o + cc] = np.int32(v1 + (v2 - v1) * dy)


@njit(cache=True, nogil=True)
def _warp_pixels(src, dst, m, y0, x0, h, w):
    """Bilinear affine warp for any matrix, in two passes per row: a vectorised float64
    pass computing every pixel's source point (:func:`_pass_a_g`) and a gather / float32
    blend pass (:func:`_pass_b4`). Used where runs would be a few pixels long."""
    fw = float(src.shape[1])
    fh = float(src.shape[0])
    rb = 3 * src.shape[1]
    fs = src.reshape(src.size)
    fd = dst.reshape(dst.size)
    cols = np.empty(w, np.float64)
    for j in range(w):
        cols[j] = x0 + j
    base = np.empty(w, np.int32)
    sx = np.empty(w, np.int32)
    sy = np.empty(w, np.int32)
    wx = np.empty(w, np.float32)
    wy = np.empty(w, np.float32)
    for y in range(y0, y0 + h):
        _pass_a_g(cols, float(y), m, fw, fh, float(rb), base, sx, sy, wx, wy)
        _pass_b4(fs, fd, _u(y * rb + 3 * x0), base, sx, sy, wx, wy)


# --------------------------------------------------------------------------- shifts


@njit(cache=True, nogil=True)
def _shift_x(src, dst, shift, y0, x0, h, w):
    """``dst[y, x] = src[y, x + shift]``, black where ``x + shift`` leaves the image."""
    ww = src.shape[1]
    rb = 3 * ww
    fs = src.reshape(src.size)
    fd = dst.reshape(dst.size)
    lo = min(max(-shift, x0), x0 + w)  # first x with x + shift >= 0
    hi = max(min(ww - shift, x0 + w), lo)  # first x with x + shift >= W
    for y in range(y0, y0 + h):
        row = y * rb
        _zero(fd, _u(row + 3 * x0), _u(3 * (lo - x0)))
        _copy(fs, _u(row + 3 * (lo + shift)), fd, _u(row + 3 * lo), _u(3 * (hi - lo)))
        _zero(fd, _u(row + 3 * hi), _u(3 * (x0 + w - hi)))


@njit(cache=True, nogil=True)
def _shift_y(src, dst, shift, y0, x0, h, w):
    """``dst[y, x] = src[y + shift, x]``, black where ``y + shift`` leaves the image."""
    rb = 3 * src.shape[1]
    fs = src.reshape(src.size)
    fd = dst.reshape(dst.size)
    n = _u(3 * w)
    for y in range(y0, y0 + h):
        sy = y + shift
        do = _u(y * rb + 3 * x0)
        if 0 <= sy < src.shape[0]:
            _copy(fs, _u(sy * rb + 3 * x0), fd, do, n)
        else:
            _zero(fd, do, n)


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
def mirror_k(src, dst, param, y0, x0, h, w):
    """``ImageOps.mirror``: left-right flip; ``param`` is ignored."""
    ww = src.shape[1]
    rb = 3 * ww
    fs = src.reshape(src.size)
    fd = dst.reshape(dst.size)
    for y in range(y0, y0 + h):
        row = y * rb
        _reverse_pixels(fs, _u(row + 3 * (ww - 1 - x0)), fd, _u(row + 3 * x0), _u(w))


@njit(cache=True, nogil=True)
def _rotate_quarter(src, dst, quarter, y0, x0, h, w):
    """Pillow's transposes ROTATE_90 (1), ROTATE_180 (2), ROTATE_270 (3), counter-clockwise;
    90/270 only for square images (as ``Image.rotate`` uses them)."""
    lh = src.shape[0] - 1
    lw = src.shape[1] - 1
    if quarter == 2:
        rb = 3 * src.shape[1]
        fs = src.reshape(src.size)
        fd = dst.reshape(dst.size)
        for y in range(y0, y0 + h):
            last = _u((lh - y) * rb + 3 * (lw - x0))
            _reverse_pixels(fs, last, fd, _u(y * rb + 3 * x0), _u(w))
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
        m = rotate_matrix(angle, ww, hh)
        if abs(m[0] - 1.0) + abs(m[3]) <= _MAX_BREAKS:
            _warp_runs(src, dst, m, y0, x0, h, w)
        else:
            _warp_pixels(src, dst, m, y0, x0, h, w)


@njit(cache=True, nogil=True)
def shear_x_k(src, dst, param, y0, x0, h, w):
    """``img.transform(size, AFFINE, (1, param, 0, 0, 1, 0), BILINEAR)``."""
    if param == 0.0:
        _copy_box(src, dst, y0, x0, h, w)
    else:
        _warp_runs(src, dst, (1.0, param, 0.0, 0.0, 1.0, 0.0), y0, x0, h, w)


@njit(cache=True, nogil=True)
def shear_y_k(src, dst, param, y0, x0, h, w):
    """``img.transform(size, AFFINE, (1, 0, 0, param, 1, 0), BILINEAR)``."""
    if param == 0.0:
        _copy_box(src, dst, y0, x0, h, w)
    elif abs(param) <= _MAX_BREAKS:  # long runs
        _warp_runs(src, dst, (1.0, 0.0, 0.0, param, 1.0, 0.0), y0, x0, h, w)
    else:
        _warp_pixels(src, dst, (1.0, 0.0, 0.0, param, 1.0, 0.0), y0, x0, h, w)


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
        _warp_runs(src, dst, (1.0, 0.0, param, 0.0, 1.0, 0.0), y0, x0, h, w)


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
        _warp_runs(src, dst, (1.0, 0.0, 0.0, 0.0, 1.0, param), y0, x0, h, w)
