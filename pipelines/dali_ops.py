"""Native DALI operator forms of IPMix's image and mixing ops (building blocks of a GPU graph).

Each function takes DALI nodes (uint8 HWC images; per-sample parameters as CPU nodes, e.g.
from ``fn.external_source``) and returns a node; none of them uses the Numba plugin, so the
same code runs with GPU images (move arithmetic parameters with ``.gpu()``). Forms follow
``/work/shared/DALI-NOTES.md`` and match :func:`ipmix_ops.ops.apply_op` /
:mod:`ipmix_ops.mixing` exactly (tested in ``tests/test_pipelines_dali.py``):

=============  ===============================================================
posterize      ``x & mask``, mask = ``256 - 2**(8 - bits)`` (= ``(255 << (8-bits)) & 255``)
solarize       ``x ^ (u8(x >= thr) * 255)``  (thr = 256: identity)
invert         ``x ^ 255``
mirror         ``fn.flip(horizontal=1)``
translate_x/y  ``fn.slice`` at the shifted window, zero padding (integer pixels)
mix_add        ``a*x1 + b*x2 + (1-a-b)/2`` in float32 on x/255, then :func:`wrap_u8`
mix_multiply   ``((2 x1)^a * max(2 x2, 1e-37)^b) / 2`` (exact except pow ulps, see notes)
wrap_u8        the authors' ``np.uint8(255 * y)``: trunc toward zero, mod 256
=============  ===============================================================

Not done here (see the report of issue #6): rotate/shear (``fn.warp_affine``), equalize,
autocontrast, the enhance ops, masks, patch paste (``fn.multi_paste``) and the full graph.
"""

from __future__ import annotations

from typing import Any

from nvidia.dali import fn, math, types


def _u8(v: int) -> Any:
    return types.Constant(v, dtype=types.UINT8)


def posterize(x: Any, bits: Any) -> Any:
    """Keep the top ``bits`` bits (per-sample int node, 0..8), like ``ImageOps.posterize``."""
    mask = 256.0 - math.pow(2.0, 8.0 - fn.cast(bits, dtype=types.FLOAT))
    return x & fn.cast(mask, dtype=types.UINT8)


def solarize(x: Any, threshold: Any) -> Any:
    """Invert pixels ``>= threshold`` (per-sample int node; 256 is the identity)."""
    return x ^ (fn.cast(x >= fn.cast(threshold, dtype=types.INT32), dtype=types.UINT8) * _u8(255))


def invert(x: Any) -> Any:
    """``ImageOps.invert``."""
    return x ^ _u8(255)


def mirror(x: Any) -> Any:
    """``ImageOps.mirror`` (left-right)."""
    return fn.flip(x, horizontal=1)


def translate(x: Any, px: Any, *, axis: str, size: int) -> Any:
    """Pillow's ``AFFINE (1, 0, px, 0, 1, 0)`` (``axis="x"``) or ``(1, 0, 0, 0, 1, px)``
    (``"y"``) for integer ``px`` (per-sample node) on ``size x size`` images: out[y, x] =
    in[y, x + px], zero outside."""
    shift = fn.cast(px, dtype=types.FLOAT)
    zero = shift * 0.0
    anchor = fn.stack(zero, shift) if axis == "x" else fn.stack(shift, zero)
    return fn.slice(
        x,
        anchor,
        types.Constant([float(size), float(size)]),
        axes=[0, 1],
        normalized_anchor=False,
        normalized_shape=False,
        out_of_bounds_policy="pad",
        fill_values=0,
    )


def wrap_u8(y: Any) -> Any:
    """The authors' ``np.uint8(255 * y)`` on float32 ``y``: ``t = trunc(255 y)`` (written with
    floor/ceil), then ``t mod 256`` (``fn.cast`` alone would round and saturate)."""
    v = math.clamp(y * 255.0, -16777216.0, 16777216.0)
    t = math.floor(v) * fn.cast(v >= 0.0, dtype=types.FLOAT) + math.ceil(v) * fn.cast(
        v < 0.0, dtype=types.FLOAT
    )
    return fn.cast(t - 256.0 * math.floor(t / 256.0), dtype=types.UINT8)


def _unit(x: Any) -> Any:
    return fn.cast(x, dtype=types.FLOAT) / 255.0


def mix_add(x1: Any, x2: Any, a: Any, b: Any) -> Any:
    """Additive mixing of uint8 ``x1``, ``x2`` with per-sample float ``a``, ``b``; float32."""
    a, b = fn.cast(a, dtype=types.FLOAT), fn.cast(b, dtype=types.FLOAT)
    return a * _unit(x1) + b * _unit(x2) + (1.0 - a - b) / 2.0


def mix_multiply(x1: Any, x2: Any, a: Any, b: Any) -> Any:
    """Multiplicative mixing of uint8 ``x1``, ``x2`` with per-sample float ``a``, ``b``."""
    a, b = fn.cast(a, dtype=types.FLOAT), fn.cast(b, dtype=types.FLOAT)
    p1 = math.pow(2.0 * _unit(x1), a)
    p2 = math.pow(math.max(2.0 * _unit(x2), 1e-37), b)
    return p1 * p2 / 2.0


__all__ = [
    "invert",
    "mirror",
    "mix_add",
    "mix_multiply",
    "posterize",
    "solarize",
    "translate",
    "wrap_u8",
]
