"""A vectorised NumPy implementation of the escape-time orbit-trap renderer.

Same algorithm and formulas as :mod:`fractal_store.escape_time` (whole-image array
operations, with the still-iterating pixels compacted whenever some escape), kept as an
oracle for tests and as the baseline of ``benchmarks/bench_fractals.py``. Pixels agree
with the Numba renderer except where ``exp``/``log`` differ in the last bit and a value
sits on a uint8 rounding boundary.
"""

from __future__ import annotations

import numpy as np

from . import escape_time as et
from .palettes import palette_lut


def _trap_distance(zr: np.ndarray, zi: np.ndarray, ip: np.ndarray, fp: np.ndarray) -> np.ndarray:
    shape = ip[et.I_SHAPE]
    dx = zr - fp[et.F_TX]
    dy = zi - fp[et.F_TY]
    if shape == 0:
        return dx * dx + dy * dy
    if shape == 3:
        return np.abs(np.sqrt(dx * dx + dy * dy) - fp[et.F_TRAD])
    u = dx * fp[et.F_TCOS] + dy * fp[et.F_TSIN]
    v = dy * fp[et.F_TCOS] - dx * fp[et.F_TSIN]
    if shape == 1:
        return np.abs(v)
    if shape == 2:
        return np.minimum(np.abs(u), np.abs(v))
    if shape == 4:
        return np.abs(np.maximum(np.abs(u), np.abs(v)) - fp[et.F_TRAD])
    return np.abs(np.abs(u) + np.abs(v) - fp[et.F_TRAD])


def _colours(ip: np.ndarray, fp: np.ndarray, lut: np.ndarray, pr: np.ndarray, pi: np.ndarray):
    """Orbit-trap colour (float64 ``[n, 3]``, before averaging and rounding) of points."""
    kind, power, max_iter = ip[et.I_KIND], ip[et.I_POWER], ip[et.I_MAXIT]
    npix = pr.size
    if ip[et.I_JULIA]:
        zr, zi = pr.copy(), pi.copy()
        cr, ci = np.full(npix, fp[et.F_JR]), np.full(npix, fp[et.F_JI])
    else:
        zr, zi, cr, ci = np.zeros(npix), np.zeros(npix), pr, pi
    idx = np.arange(npix)
    dmin = np.full(npix, 1.0e30)
    n_out = np.full(npix, max_iter, np.int64)
    r2_out = np.zeros(npix)
    esc_out = np.zeros(npix, bool)
    for it in range(max_iter):
        if kind == 1:
            np.abs(zr, out=zr)
            np.abs(zi, out=zi)
        if kind == 2:
            qr, qi = zr, zi
            for _ in range(power - 1):
                qr, qi = qr * zr - qi * zi, qr * zi + qi * zr
            zr, zi = qr + cr, qi + ci
        else:
            zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
        r2 = zr * zr + zi * zi
        esc = r2 > et.BAILOUT2
        if esc.any():
            gone = idx[esc]
            n_out[gone] = it + 1
            r2_out[gone] = r2[esc]
            esc_out[gone] = True
            keep = ~esc
            zr, zi, cr, ci, idx = zr[keep], zi[keep], cr[keep], ci[keep], idx[keep]
            if idx.size == 0:
                break
        dmin[idx] = np.minimum(dmin[idx], _trap_distance(zr, zi, ip, fp))
    if ip[et.I_SHAPE] == 0:
        dmin = np.sqrt(dmin)
    falloff = fp[et.F_FALLOFF]
    t = fp[et.F_FREQ] * np.log1p(falloff * dmin) + fp[et.F_OFFSET]
    if fp[et.F_ESCMIX] != 0.0:
        with np.errstate(invalid="ignore", divide="ignore"):
            nu = n_out + 1.0 - np.log(0.5 * np.log(r2_out)) * (1.0 / np.log(power))
        t = np.where(esc_out, t + fp[et.F_ESCMIX] * nu, t)
    t -= np.floor(t)
    nlut = lut.shape[0]
    pos = t * nlut
    i0 = pos.astype(np.int64)
    frac = (pos - i0)[:, None]
    i0 = np.minimum(i0, nlut - 1)
    i1 = np.where(i0 + 1 < nlut, i0 + 1, 0)
    g = (fp[et.F_GLOW] * np.exp(-4.0 * falloff * dmin))[:, None]
    shade = np.where(esc_out, 1.0, fp[et.F_INTERIOR])[:, None]
    c = lut[i0] * (1.0 - frac) + lut[i1] * frac
    return (c + (1.0 - c) * g) * shade


def render_escape_numpy(params: dict, size: int) -> np.ndarray:
    """Render an escape-time record with NumPy: uint8 ``[size, size, 3]`` RGB."""
    ip, fp = et.pack_escape(params)
    lut = palette_lut(params["palette"]).astype(np.float64)
    aa = int(ip[et.I_AA])
    pitch = 2.0 / size
    scale, cs, sn = fp[et.F_SCALE], fp[et.F_COS], fp[et.F_SIN]
    xs = np.arange(size, dtype=np.float64)
    acc = np.zeros((size * size, 3))
    for sy in range(aa):
        v = (0.5 * size - xs - (sy + 0.5) / aa) * pitch
        for sx in range(aa):
            u = (xs + (sx + 0.5) / aa) * pitch - 1.0
            uu, vv = np.meshgrid(u, v)
            pr = (fp[et.F_CX] + scale * (uu * cs - vv * sn)).ravel()
            pi = (fp[et.F_CY] + scale * (uu * sn + vv * cs)).ravel()
            acc = acc + _colours(ip, fp, lut, pr, pi)
    out = np.clip(acc * (1.0 / (aa * aa)) * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    return out.reshape(size, size, 3)
