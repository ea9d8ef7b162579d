"""Parameter samplers, degenerate-image rejection, and seeded drawing of one fractal.

Image ``index`` of a set with seed ``seed`` is drawn from ``numpy.random.default_rng([seed,
index])`` alone, so it does not depend on the worker count or on the other images. Its
family is ``families[index % len(families)]`` (an exact round robin). Candidate records
are drawn until one passes the statistics test of :func:`rejection_reason`, which is
decided on a :data:`PROBE_SIZE` proxy render so that the accepted records do not depend on
the output size either.

Records are plain JSON-serialisable dicts (``family`` plus the family's parameters);
:func:`render` turns a record back into pixels.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np

from .escape_time import ESCAPE_FAMILIES, TRAP_SHAPES, escape_counts, pack_escape, render_escape
from .ifs import chain_seeds, ifs_coverage, ifs_points, map_cdf, render_ifs
from .palettes import sample_palette

FAMILIES: tuple[str, ...] = (*ESCAPE_FAMILIES, "ifs")
PROBE_SIZE = 64
MAX_ATTEMPTS = 64
SAMPLER_VERSION = 1
ANTIALIAS = 2  # escape-time records: 2x2 orbits per pixel (smooth boundaries, 4x the work)

_REGIONS = {  # where view centres are searched: (xmin, xmax, ymin, ymax)
    "mandelbrot": (-2.1, 0.7, -1.3, 1.3),
    "burning_ship": (-2.2, 1.4, -2.0, 1.2),
    "multibrot": (-1.6, 1.6, -1.6, 1.6),
    "julia": (-1.7, 1.7, -1.7, 1.7),
}

_MIN_SCALE = {  # deepest zoom (half-width of the view); the burning ship turns to speckle
    "mandelbrot": 0.002,
    "burning_ship": 0.03,
    "multibrot": 0.002,
    "julia": 0.01,
}

# Rejection thresholds on the PROBE_SIZE proxy render (uint8 scale).
MIN_COLOUR_STD = 22.0  # RMS over channels of the per-channel std; near-uniform below
MIN_DETAIL = 0.08  # fraction of pixels on a luminance edge; near-empty below
MAX_MODE = 0.5  # fraction of pixels in the commonest colour; near-empty above
MIN_DISTINCT = 0.005  # distinct 5-bit colours per pixel; posterised / near-empty below
MAX_HF_RATIO = 0.85  # mean |neighbour difference| / std; independent noise ~1.13
MAX_SPECKLE = 0.5  # fraction of pixels with |luma Laplacian| > 40; speckle-covered above
MIN_COLOURFULNESS = 12.0  # Hasler & Suesstrunk colourfulness
MIN_IFS_COVERAGE = 0.04  # fraction of a 48x48 raster the attractor touches


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _count_at(base: dict, x: float, y: float) -> int:
    rec = {**base, "center": [x, y], "scale": 1.0, "rotation": 0.0}
    ip, fp = pack_escape(rec)
    return int(escape_counts(ip, fp, 1)[0, 0])


def _sample_escape(family: str, rng: np.random.Generator) -> dict:
    """Trap, palette, colouring; for Julia forms a constant near the boundary of the
    parameter set; then a random zoom and a centre whose orbit escapes late (close to
    the set's boundary), accepted when a 16x16 escape-count preview shows structure."""
    julia = family == "julia" or (family == "multibrot" and rng.random() < 0.5)
    power = int(rng.integers(3, 7)) if family == "multibrot" else 2
    shape = TRAP_SHAPES[int(rng.integers(len(TRAP_SHAPES)))]
    rec: dict = {
        "family": family,
        "power": power,
        "julia": bool(julia),
        "c": [0.0, 0.0],
        "max_iter": 64,
        "antialias": ANTIALIAS,
        "trap": {
            "shape": shape,
            "center": [float(v) for v in rng.uniform(-0.8, 0.8, 2)],
            "angle": float(rng.uniform(0.0, math.pi)),
            "radius": float(rng.uniform(0.15, 1.0)),
        },
    }
    rec["palette"] = sample_palette(rng)
    rec["colour"] = {
        "falloff": _log_uniform(rng, 1.0, 40.0),
        "freq": float(rng.uniform(0.3, 1.6)),
        "offset": float(rng.uniform(0.0, 1.0)),
        "escape_mix": 0.0 if rng.random() < 0.5 else _log_uniform(rng, 0.003, 0.03),
        "glow": 0.0 if rng.random() < 0.5 else float(rng.uniform(0.1, 0.6)),
        "interior": 1.0 if rng.random() < 0.5 else float(rng.uniform(0.15, 0.8)),
    }
    if julia:  # a constant near the boundary of the parameter set gives a rich Julia set
        mand = {**rec, "julia": False, "max_iter": 160}
        for _ in range(200):
            c = rng.uniform(-1.6, 1.6, 2) if power > 2 else rng.uniform([-2.0, -1.2], [0.6, 1.2])
            if 12 <= _count_at(mand, *c) < 160:
                break
        rec["c"] = [float(c[0]), float(c[1])]
    region = _REGIONS["julia" if julia else family]
    smin = _MIN_SCALE["julia" if julia else family]
    for _ in range(30):
        scale = _log_uniform(rng, smin, 1.6)
        depth = math.log10(1.6 / scale)
        rec["max_iter"] = int(min(80 + 60 * depth, 400))
        lo = int(4 + 12 * depth)
        for _ in range(60):
            x = float(rng.uniform(region[0], region[1]))
            y = float(rng.uniform(region[2], region[3]))
            if lo <= _count_at(rec, x, y) < rec["max_iter"]:
                break
        rec.update(center=[x, y], scale=scale, rotation=float(rng.uniform(0.0, 2.0 * math.pi)))
        ip, fp = pack_escape(rec)
        counts = escape_counts(ip, fp, 16)
        inside = float(np.mean(counts == rec["max_iter"]))
        if inside < 0.9 and np.unique(counts).size >= 6:
            break
    return rec


def _hsv(h: float, s: float, v: float) -> list[float]:
    return [float(x) for x in colorsys.hsv_to_rgb(h % 1.0, s, v)]


def _affine_map(rng: np.random.Generator, share: float) -> list[float]:
    """One map with sigma1 + 2 sigma2 = share, both singular values < 1 (contractive)."""
    s1 = float(rng.uniform(max(share / 3.0, share - 2.0), min(1.0, share)))
    s1 = min(s1, 0.98)
    s2 = min((share - s1) / 2.0, s1, 0.98)
    t, p = rng.uniform(0.0, 2.0 * math.pi, 2)
    rot_t = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    rot_p = np.array([[math.cos(p), -math.sin(p)], [math.sin(p), math.cos(p)]])
    flip = np.diag(rng.choice([-1.0, 1.0], 2))
    a = rot_t @ np.diag([s1, s2]) @ rot_p @ flip
    b = rng.uniform(-1.0, 1.0, 2)
    return [float(v) for v in (a[0, 0], a[0, 1], a[1, 0], a[1, 1], b[0], b[1])]


def sample_ifs_params(rng: np.random.Generator) -> dict:
    """A random contractive IFS (2-4 maps, sigma factor in [(5+N)/2, (6+N)/2]) with colours,
    a view fitted to the attractor and a random background."""
    n = int(rng.integers(2, 5))
    alpha = rng.uniform(0.5 * (5 + n), 0.5 * (6 + n))
    for _ in range(100):
        shares = rng.dirichlet(np.full(n, 2.0)) * alpha
        if shares.max() <= 2.9:
            break
    shares = np.minimum(shares, 2.9)
    maps = [_affine_map(rng, float(s)) for s in shares]
    seed = int(rng.integers(0, 2**63 - 1))
    pts = ifs_points(np.asarray(maps), map_cdf(np.asarray(maps)), 4000, chain_seeds(seed)[0])
    lo = np.percentile(pts, 0.5, axis=0)
    hi = np.percentile(pts, 99.5, axis=0)
    half = float(max(hi - lo) / 2.0 * rng.uniform(1.05, 1.3)) + 1e-9
    hue = rng.random()
    dark = rng.random() < 0.65
    v0, v1 = rng.uniform(0.0, 0.3, 2) if dark else rng.uniform(0.55, 0.95, 2)
    bg_hue = hue + 0.5 + rng.normal(0.0, 0.15)
    return {
        "family": "ifs",
        "maps": maps,
        "colours": [
            _hsv(
                hue + rng.uniform(-0.3, 0.3),
                rng.uniform(0.5, 1.0),
                rng.uniform(0.7, 1.0) if dark else rng.uniform(0.3, 0.8),
            )
            for _ in range(n)
        ],
        "center": [float(v) for v in (lo + hi) / 2.0],
        "half": half,
        "chaos_seed": seed,
        "density": float(rng.uniform(1.5, 5.0)),
        "gamma": float(rng.uniform(0.4, 1.0)),
        "boost": float(rng.uniform(1.5, 4.0)),
        "background": {
            "c0": _hsv(bg_hue, rng.uniform(0.1, 0.8), float(v0)),
            "c1": _hsv(bg_hue + rng.normal(0.0, 0.15), rng.uniform(0.1, 0.8), float(v1)),
            "angle": float(rng.uniform(0.0, 2.0 * math.pi)),
            "tint": [float(v) for v in rng.uniform(-0.12, 0.12, 3)],
            "waves": [
                [
                    float(rng.uniform(-3.0, 3.0)),
                    float(rng.uniform(-3.0, 3.0)),
                    float(rng.uniform(0.0, 2.0 * math.pi)),
                    float(rng.uniform(0.1, 0.6)),
                ]
                for _ in range(int(rng.integers(1, 4)))
            ],
        },
    }


def sample_params(family: str, rng: np.random.Generator) -> dict:
    """Draw one candidate record of ``family`` (one of :data:`FAMILIES`)."""
    if family == "ifs":
        return sample_ifs_params(rng)
    if family in ESCAPE_FAMILIES:
        return _sample_escape(family, rng)
    raise ValueError(f"unknown fractal family {family!r}; expected one of {FAMILIES}")


def render(params: dict, size: int, parallel: bool = True) -> np.ndarray:
    """Render a record: uint8 ``[size, size, 3]`` RGB. ``parallel``: Numba threads inside
    (True) or a serial, GIL-free kernel for use from a thread pool (False); same pixels."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if params.get("family") == "ifs":
        return render_ifs(params, size, parallel)
    return render_escape(params, size, parallel)


def image_stats(img: np.ndarray) -> dict:
    """Statistics used for rejection, on uint8 ``[H, W, 3]`` (values on the 0..255 scale).

    ``luma_std``: std of luminance; ``colour_std``: RMS of the R, G, B stds; ``detail``:
    fraction of pixels whose luminance differs from a neighbour by more than 6; ``mode``:
    fraction of pixels in the most common 5-bit colour; ``distinct``: number of distinct
    5-bit colours / pixels; ``hf_ratio``: mean absolute neighbour difference / luma std
    (independent noise gives ~1.13, smooth images ~0); ``speckle``: fraction of pixels
    whose luminance Laplacian exceeds 40 (chaotic, noise-like regions);
    ``colourfulness``: Hasler & Suesstrunk's metric (> 15 is "slightly colourful").
    """
    f = img.astype(np.float32)
    luma = f @ np.array([0.299, 0.587, 0.114], np.float32)
    std = float(luma.std())
    dy = np.abs(np.diff(luma, axis=0))
    dx = np.abs(np.diff(luma, axis=1))
    hf = 0.5 * (float(dy.mean()) + float(dx.mean()))
    lap = np.abs(
        4.0 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:]
    )
    edge = np.zeros(luma.shape, bool)
    edge[1:] |= dy > 6.0
    edge[:, 1:] |= dx > 6.0
    q = (img >> 3).astype(np.int32)
    codes = ((q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]).ravel()
    counts = np.bincount(codes, minlength=1 << 15)
    rg = f[..., 0] - f[..., 1]
    yb = 0.5 * (f[..., 0] + f[..., 1]) - f[..., 2]
    colourful = math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean())
    return {
        "luma_std": std,
        "colour_std": float(np.sqrt(f.reshape(-1, 3).var(axis=0).mean())),
        "detail": float(edge.mean()),
        "mode": float(counts.max() / codes.size),
        "distinct": float(np.count_nonzero(counts) / codes.size),
        "hf_ratio": hf / (std + 1e-6),
        "speckle": float((lap > 40.0).mean()),
        "colourfulness": float(colourful),
    }


def rejection_reason(stats: dict) -> str | None:
    """Why an image is degenerate (``uniform``, ``empty``, ``noise``, ``grey``), or None.

    Thresholds (module constants) are tuned for :data:`PROBE_SIZE` renders.
    """
    if stats["colour_std"] < MIN_COLOUR_STD:
        return "uniform"
    if stats["detail"] < MIN_DETAIL or stats["mode"] > MAX_MODE or stats["distinct"] < MIN_DISTINCT:
        return "empty"
    if stats["hf_ratio"] > MAX_HF_RATIO or stats["speckle"] > MAX_SPECKLE:
        return "noise"
    if stats["colourfulness"] < MIN_COLOURFULNESS:
        return "grey"
    return None


def draw(
    seed: int, index: int, size: int, families: tuple[str, ...] = FAMILIES, parallel: bool = False
) -> tuple[np.ndarray, dict, list[str]]:
    """Draw image ``index`` of the set ``seed``: ``(uint8 [size, size, 3], record, reasons)``
    where ``reasons`` lists why each rejected candidate was rejected."""
    if not families:
        raise ValueError("families must not be empty")
    rng = np.random.default_rng([int(seed), int(index)])
    family = families[index % len(families)]
    reasons: list[str] = []
    for attempt in range(MAX_ATTEMPTS):
        rec = sample_params(family, rng)
        if family == "ifs" and ifs_coverage(rec) < MIN_IFS_COVERAGE:
            reason = "empty"
        else:
            probe = render(rec, PROBE_SIZE, parallel)
            reason = rejection_reason(image_stats(probe))
        if reason is None or attempt == MAX_ATTEMPTS - 1:
            break
        reasons.append(reason)
    rec["attempts"] = attempt + 1
    img = probe if size == PROBE_SIZE and reason != "empty" else render(rec, size, parallel)
    return img, rec, reasons
