"""Iterated-function-system (IFS) fractals by the chaos game, on textured backgrounds.

A system is 2 to 4 contractive affine maps ``p -> A p + b`` (sampled as in Anderson &
Farrell, "Improving Fractal Pre-training": singular values rescaled so that the system's
sigma factor lies in a band that gives non-degenerate attractors, see
:func:`fractal_store.sampling.sample_ifs_params`). The chaos game iterates a point through
randomly chosen maps (probability ~ |det A|) and counts hits per pixel; each point carries
a colour that moves half-way to the colour of the map just applied, so sub-structures get
their own hue. Density (log-scaled) composites the mean colour over a background made of
a two-colour linear gradient plus a few low-frequency plane waves.

The map choices come from a counter-based hash (splitmix64) seeded by the record's
``chaos_seed``, so rendering is a pure function of the record. Points are split across
:data:`N_CHAINS` independent chains and accumulated as integers, so the parallel and the
serial driver give identical pixels whatever the thread count. Output: uint8
``[size, size, 3]`` RGB.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

N_CHAINS = 8
BURN_IN = 32
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0


@njit(cache=True, nogil=True)
def _splitmix(state):
    """One splitmix64 step: returns (new state, 64 random bits)."""
    state = state + _GOLDEN
    z = state
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return state, z ^ (z >> _S31)


@njit(cache=True, nogil=True)
def _chain(hist, maps, cdf, colours, view, npoints, seed):
    """Run one chaos-game chain, adding (count, r, g, b) hits into ``hist[h, w, 4]``."""
    h, w = hist.shape[0], hist.shape[1]
    cx, cy, half = view[0], view[1], view[2]
    sx = w / (2.0 * half)
    nmaps = maps.shape[0]
    state = seed
    x = 0.0
    y = 0.0
    cr = 0.5
    cg = 0.5
    cb = 0.5
    for i in range(npoints + BURN_IN):
        state, bits = _splitmix(state)
        u = (bits >> _S11) * _INV53
        k = 0
        while k < nmaps - 1 and u >= cdf[k]:
            k += 1
        xn = maps[k, 0] * x + maps[k, 1] * y + maps[k, 4]
        y = maps[k, 2] * x + maps[k, 3] * y + maps[k, 5]
        x = xn
        cr = 0.5 * (cr + colours[k, 0])
        cg = 0.5 * (cg + colours[k, 1])
        cb = 0.5 * (cb + colours[k, 2])
        if i < BURN_IN:
            continue
        fx = (x - cx + half) * sx
        fy = (cy + half - y) * sx
        if fx >= 0.0 and fy >= 0.0 and fx < w and fy < h:
            px = int(fx)
            py = int(fy)
            hist[py, px, 0] += 1
            hist[py, px, 1] += int(cr * 255.0 + 0.5)
            hist[py, px, 2] += int(cg * 255.0 + 0.5)
            hist[py, px, 3] += int(cb * 255.0 + 0.5)


@njit(cache=True, nogil=True)
def _composite_row(out, y, hist, nref, gamma, bg, waves):
    """Density-weighted mean colour over the background, one row."""
    h, w = out.shape[0], out.shape[1]
    lref = math.log1p(nref)
    v = 1.0 - 2.0 * (y + 0.5) / h
    for x in range(w):
        u = 2.0 * (x + 0.5) / w - 1.0
        g = min(max(0.5 + 0.5 * (u * bg[6] + v * bg[7]), 0.0), 1.0)
        ns = 0.0
        for j in range(waves.shape[0]):
            ns += waves[j, 3] * math.sin(
                2.0 * math.pi * (waves[j, 0] * u + waves[j, 1] * v) + waves[j, 2]
            )
        n = hist[y, x, 0]
        a = 0.0
        if n > 0:
            a = min(math.log1p(n) / lref, 1.0) ** gamma
        for k in range(3):
            b = bg[k] * (1.0 - g) + bg[3 + k] * g + bg[8 + k] * ns
            c = b
            if n > 0:
                c = b * (1.0 - a) + (hist[y, x, 1 + k] / (255.0 * n)) * a
            out[y, x, k] = np.uint8(min(max(c * 255.0 + 0.5, 0.0), 255.0))


@njit(cache=True, nogil=True)
def _nonzero_mean(hist):
    s = 0.0
    m = 0
    for y in range(hist.shape[0]):
        for x in range(hist.shape[1]):
            if hist[y, x, 0] > 0:
                s += hist[y, x, 0]
                m += 1
    return s / m if m > 0 else 1.0


@njit(cache=True, nogil=True)
def _render_serial(out, maps, cdf, colours, view, npoints, seeds, gamma, bg, waves, boost):
    hist = np.zeros((out.shape[0], out.shape[1], 4), np.int64)
    for c in range(seeds.shape[0]):
        _chain(hist, maps, cdf, colours, view, npoints, seeds[c])
    nref = boost * _nonzero_mean(hist)
    for y in range(out.shape[0]):
        _composite_row(out, y, hist, nref, gamma, bg, waves)


@njit(parallel=True, cache=True)
def _render_parallel(
    out, maps, cdf, colours, view, npoints, seeds, gamma, bg, waves, boost, nslots
):
    h, w = out.shape[0], out.shape[1]
    parts = np.zeros((nslots, h, w, 4), np.int64)
    for s in prange(nslots):
        for c in range(s, seeds.shape[0], nslots):
            _chain(parts[s], maps, cdf, colours, view, npoints, seeds[c])
    hist = np.zeros((h, w, 4), np.int64)
    for y in prange(h):
        for s in range(nslots):
            hist[y] += parts[s, y]
    nref = boost * _nonzero_mean(hist)
    for y in prange(h):
        _composite_row(out, y, hist, nref, gamma, bg, waves)


@njit(cache=True, nogil=True)
def ifs_points(maps, cdf, npoints, seed):
    """``npoints`` attractor points of one chain (after burn-in): float64 ``[npoints, 2]``."""
    pts = np.empty((npoints, 2), np.float64)
    state = seed
    x = 0.0
    y = 0.0
    nmaps = maps.shape[0]
    for i in range(npoints + BURN_IN):
        state, bits = _splitmix(state)
        u = (bits >> _S11) * _INV53
        k = 0
        while k < nmaps - 1 and u >= cdf[k]:
            k += 1
        xn = maps[k, 0] * x + maps[k, 1] * y + maps[k, 4]
        y = maps[k, 2] * x + maps[k, 3] * y + maps[k, 5]
        x = xn
        if i >= BURN_IN:
            pts[i - BURN_IN, 0] = x
            pts[i - BURN_IN, 1] = y
    return pts


def chain_seeds(chaos_seed: int, n: int = N_CHAINS) -> np.ndarray:
    """Per-chain uint64 seeds derived from a record's ``chaos_seed``."""
    ss = np.random.SeedSequence(int(chaos_seed))
    return ss.generate_state(n, dtype=np.uint64)


def map_cdf(maps: np.ndarray) -> np.ndarray:
    """Cumulative map probabilities, proportional to |det A| (floored at 2% of the mean)."""
    det = np.abs(maps[:, 0] * maps[:, 3] - maps[:, 1] * maps[:, 2])
    p = np.maximum(det, 0.02 * det.mean() + 1e-12)
    return np.cumsum(p / p.sum())


def _pack_ifs(params: dict) -> tuple:
    maps = np.asarray(params["maps"], np.float64).reshape(-1, 6)
    colours = np.asarray(params["colours"], np.float64).reshape(-1, 3)
    if not 1 <= maps.shape[0] <= 8 or colours.shape[0] != maps.shape[0]:
        raise ValueError(f"IFS record needs 1..8 maps with one colour each: {params!r}")
    view = np.array([*params["center"], params["half"]], np.float64)
    bgr = params["background"]
    bg = np.array(
        [*bgr["c0"], *bgr["c1"], math.cos(bgr["angle"]), math.sin(bgr["angle"]), *bgr["tint"]],
        np.float64,
    )
    waves = np.asarray(bgr["waves"], np.float64).reshape(-1, 4)
    return maps, map_cdf(maps), colours, view, bg, waves


def render_ifs(params: dict, size: int, parallel: bool = True) -> np.ndarray:
    """Render an IFS record: uint8 ``[size, size, 3]`` RGB in [0, 255].

    The number of points is ``density * size**2`` (split across the chains), so a record
    renders with the same look at any size.
    """
    maps, cdf, colours, view, bg, waves = _pack_ifs(params)
    seeds = chain_seeds(params["chaos_seed"])
    npoints = max(1, int(round(params["density"] * size * size / len(seeds))))
    out = np.empty((size, size, 3), np.uint8)
    args = (
        out,
        maps,
        cdf,
        colours,
        view,
        npoints,
        seeds,
        float(params["gamma"]),
        bg,
        waves,
        float(params["boost"]),
    )
    if parallel:
        _render_parallel(*args, max(1, min(numba.get_num_threads(), len(seeds))))
    else:
        _render_serial(*args)
    return out


def ifs_coverage(params: dict, grid: int = 48) -> float:
    """Fraction of a ``grid x grid`` raster that the attractor touches (for rejection)."""
    maps, cdf, _, view, _, _ = _pack_ifs(params)
    hist = np.zeros((grid, grid, 4), np.int64)
    colours = np.zeros((maps.shape[0], 3))
    _chain(hist, maps, cdf, colours, view, 4 * grid * grid, chain_seeds(params["chaos_seed"])[0])
    return float(np.count_nonzero(hist[:, :, 0])) / (grid * grid)
