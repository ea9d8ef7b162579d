"""Random colour palettes for the fractal renderers, as periodic look-up tables.

A palette is a JSON-serialisable dict; :func:`palette_lut` turns it into a float32 table
of shape ``[LUT_SIZE, 3]`` with values in [0, 1] that covers one period ``t in [0, 1)``.
Renderers look up ``frac(t)`` with linear interpolation, so every palette is cyclic and a
colouring value can grow without bound (bands repeat instead of saturating).

Two kinds:

``cosine``
    ``a + b * cos(2 pi (c t + d))`` per channel (the Inigo Quilez form). ``c`` holds
    integers so that the palette has period 1.
``stops``
    3 to 6 random colours at random positions on the circle, linearly interpolated.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np

LUT_SIZE = 1024
PALETTE_KINDS = ("cosine", "stops")


def sample_palette(rng: np.random.Generator) -> dict:
    """Draw a random palette record (see the module docstring for the two kinds)."""
    if rng.random() < 0.6:
        a = rng.uniform(0.35, 0.65, 3)
        b = rng.uniform(0.25, 0.5, 3)
        c = rng.choice([1, 1, 1, 2, 2, 3], size=3)
        if rng.random() < 0.5:  # same frequency on all channels: smoother hue cycles
            c[:] = c[0]
        d = rng.uniform(0.0, 1.0, 3)
        return {
            "kind": "cosine",
            "a": [float(v) for v in a],
            "b": [float(v) for v in b],
            "c": [int(v) for v in c],
            "d": [float(v) for v in d],
        }
    n = int(rng.integers(3, 7))
    positions = np.sort(rng.uniform(0.0, 1.0, n))
    base_hue = rng.random()
    colours = []
    for _ in range(n):
        # Hues spread around a base hue, random saturation and value, one dark stop often.
        h = (base_hue + rng.normal(0.0, 0.25)) % 1.0
        s = rng.uniform(0.35, 1.0)
        v = rng.uniform(0.05, 0.35) if rng.random() < 0.3 else rng.uniform(0.55, 1.0)
        colours.append([float(x) for x in colorsys.hsv_to_rgb(h, s, v)])
    return {"kind": "stops", "positions": [float(p) for p in positions], "colours": colours}


def palette_lut(palette: dict, size: int = LUT_SIZE) -> np.ndarray:
    """Tabulate a palette record over one period: float32 ``[size, 3]`` in [0, 1]."""
    t = np.arange(size, dtype=np.float64) / size
    kind = palette.get("kind")
    if kind == "cosine":
        a = np.asarray(palette["a"], np.float64)
        b = np.asarray(palette["b"], np.float64)
        c = np.asarray(palette["c"], np.float64)
        d = np.asarray(palette["d"], np.float64)
        lut = a + b * np.cos(2.0 * math.pi * (c * t[:, None] + d))
    elif kind == "stops":
        pos = np.asarray(palette["positions"], np.float64)
        col = np.asarray(palette["colours"], np.float64)
        if pos.ndim != 1 or col.shape != (pos.size, 3) or pos.size < 2:
            raise ValueError(f"bad 'stops' palette: {palette!r}")
        # Wrap around: append the first stop one period later, prepend the last one earlier.
        xp = np.concatenate([[pos[-1] - 1.0], pos, [pos[0] + 1.0]])
        fp = np.concatenate([col[-1:], col, col[:1]])
        lut = np.stack([np.interp(t, xp, fp[:, k]) for k in range(3)], axis=1)
    else:
        raise ValueError(f"unknown palette kind {kind!r}; expected one of {PALETTE_KINDS}")
    return np.clip(lut, 0.0, 1.0).astype(np.float32)
