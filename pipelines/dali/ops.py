"""Native DALI operator forms of IPMix's image and mixing ops (building blocks of a GPU graph).

Each function takes DALI nodes (uint8 HWC images; per-sample parameters as CPU nodes, e.g.
from ``fn.external_source``) and returns a node; none of them uses the Numba plugin, so the
same code runs with GPU images (move arithmetic parameters with ``.gpu()``). Forms follow
``docs/architecture.md`` (DALI forms of the ops) and match :func:`ipmix_ops.ops.apply_op` /
:mod:`ipmix_ops.mixing` (tested in ``tests/test_pipelines_dali.py`` and
``tests/test_dali_ops.py``); exact unless said otherwise below:

=============  ===============================================================
posterize      ``x & mask``, mask = ``256 - 2**(8 - bits)`` (= ``(255 << (8-bits)) & 255``)
solarize       ``x ^ (u8(x >= thr) * 255)``  (thr = 256: identity)
invert         ``x ^ 255``
mirror         ``fn.flip(horizontal=1)``
translate_x/y  ``fn.slice`` at the shifted window, zero padding (integer pixels)
mix_add        ``a*x1 + b*x2 + (1-a-b)/2`` in float32 on x/255, then :func:`wrap_u8`
mix_multiply   ``((2 x1)^a * max(2 x2, 1e-37)^b) / 2`` (exact except pow ulps, see notes)
wrap_u8        the authors' ``np.uint8(255 * y)``: trunc toward zero, mod 256
rotate         ``fn.warp_affine`` with Pillow's rotation matrix (``inverse_map=True``), see
               "warps" below
shear_x/y      ``fn.warp_affine`` with Pillow's ``(1, v, 0, 0, 1, 0)`` / ``(1, 0, 0, v, 1, 0)``
equalize       ``fn.equalize`` (OpenCV's formula, NOT Pillow's: see :func:`equalize`)
autocontrast   per-channel cut points by an 8-step binary search on counts
               (``fn.reductions.sum``), then Pillow's LUT formula in float64: exact
color          Pillow's grey ``(19595 R + 38470 G + 7471 B + 32768) >> 16``, then
               ``clip(floor(L + f (x - L)))`` in float32: exact
contrast       ``m = floor(mean(L) + 0.5)``, then ``clip(floor(m + f (x - m)))``: exact
brightness     ``clip(floor(f x))``: exact
sharpness      ``fn.filter`` with Pillow's SMOOTH kernel (float, clamped border), rounded,
               blended and truncated; the 1-px image border is kept from the input: exact
mix_select     ``M x1 + (1 - M) x2`` on uint8 with a 0/1 mask (``random_pixels``: h×w×1,
               ``random_elems``: h×w×3); :func:`bernoulli` draws ``M ~ Bernoulli(p)``
clip_u8        PixMix's ``round(255 clip(y, 0, 1))`` (the ``overflow="clip"`` mode)
=============  ===============================================================

Warps (rotate, shear): Pillow samples bilinearly at the mapped pixel centre, truncates, and
fills with 0 where the centre maps outside the source. The form used here is
``floor(warp(x, FLOAT, clamped border)) * warp(ones, NN, fill 0)``, which matches
:mod:`ipmix_ops.ops` within the tolerance of docs/algorithm.md §3 (at most 1 grey level on
>= 99% of pixels; in practice > 99.5% exact). The matrix is computed per sample in float32 on
the CPU.

Every function works on CPU or GPU images: per-sample parameters are CPU nodes and are
moved with ``.gpu()`` when they meet GPU data in arithmetic (named arguments stay on the
CPU). Static sizes (``size``) are the side ``S`` of the square images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from nvidia.dali import fn, math, types


def _u8(v: int) -> Any:
    return types.Constant(v, dtype=types.UINT8)


def _on(p: Any, x: Any) -> Any:
    """Per-sample parameter ``p`` (a CPU node) placed where image ``x`` lives."""
    return p.gpu() if getattr(x, "device", "cpu") == "gpu" and p.device != "gpu" else p


def posterize(x: Any, bits: Any) -> Any:
    """Keep the top ``bits`` bits (per-sample int node, 0..8), like ``ImageOps.posterize``."""
    mask = 256.0 - math.pow(2.0, 8.0 - fn.cast(bits, dtype=types.FLOAT))
    return x & _on(fn.cast(mask, dtype=types.UINT8), x)


def solarize(x: Any, threshold: Any) -> Any:
    """Invert pixels ``>= threshold`` (per-sample int node; 256 is the identity)."""
    thr = _on(fn.cast(threshold, dtype=types.INT32), x)
    return x ^ (fn.cast(x >= thr, dtype=types.UINT8) * _u8(255))


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
    a, b = _on(fn.cast(a, dtype=types.FLOAT), x1), _on(fn.cast(b, dtype=types.FLOAT), x1)
    return a * _unit(x1) + b * _unit(x2) + (1.0 - a - b) / 2.0


def mix_multiply(x1: Any, x2: Any, a: Any, b: Any) -> Any:
    """Multiplicative mixing of uint8 ``x1``, ``x2`` with per-sample float ``a``, ``b``."""
    a, b = _on(fn.cast(a, dtype=types.FLOAT), x1), _on(fn.cast(b, dtype=types.FLOAT), x1)
    p1 = math.pow(2.0 * _unit(x1), a)
    p2 = math.pow(math.max(2.0 * _unit(x2), 1e-37), b)
    return p1 * p2 / 2.0


# ---------------------------------------------------------------------------- helpers
def _const(value: np.ndarray, like: Any) -> Any:
    """A constant node on the device of ``like``."""
    value = np.ascontiguousarray(value)
    dtype = {np.dtype(np.uint8): types.UINT8, np.dtype(np.float32): types.FLOAT}[value.dtype]
    return types.Constant(value, dtype=dtype, device=getattr(like, "device", "cpu"))


def _f32(p: Any) -> Any:
    return fn.cast(p, dtype=types.FLOAT)


def _to_u8_trunc(v: Any) -> Any:
    """``uint8(clip(v, 0, 255))`` truncating (Pillow's float -> uint8 in blends)."""
    return fn.cast(math.floor(math.clamp(v, 0.0, 255.0)), dtype=types.UINT8)


# ------------------------------------------------------------------------------ warps
def warp(x: Any, matrix: Any, *, size: int) -> Any:
    """Pillow's ``img.transform(size, AFFINE, matrix, BILINEAR)`` on ``size x size`` uint8
    images; ``matrix``: per-sample float32 ``[2, 3]`` CPU node, Pillow's numbers unchanged
    (output pixel centre -> source coordinates)."""
    val = fn.warp_affine(
        x, matrix=matrix, inverse_map=True, dtype=types.FLOAT, interp_type=types.INTERP_LINEAR
    )
    inside = fn.warp_affine(
        _const(np.ones((size, size, 1), np.uint8), x),
        matrix=matrix,
        inverse_map=True,
        interp_type=types.INTERP_NN,
        fill_value=0,
    )
    return fn.cast(math.floor(val), dtype=types.UINT8) * inside


def rotate_matrix(deg: Any, *, size: int) -> Any:
    """Per-sample float32 ``[2, 3]``: the matrix ``Image.rotate(deg)`` builds (centre S/2)."""
    a = _f32(deg) * float(-np.pi / 180.0)
    c, s = math.cos(a), math.sin(a)
    h = size / 2.0
    return fn.reshape(fn.stack(c, s, h - c * h - s * h, -s, c, h + s * h - c * h), shape=[2, 3])


def rotate(x: Any, deg: Any, *, size: int) -> Any:
    """``img.rotate(deg, resample=BILINEAR)`` (no expand, black fill)."""
    return warp(x, rotate_matrix(deg, size=size), size=size)


def shear(x: Any, v: Any, *, axis: str, size: int) -> Any:
    """Pillow's ``AFFINE (1, v, 0, 0, 1, 0)`` (``axis="x"``) or ``(1, 0, 0, v, 1, 0)``."""
    v = _f32(v)
    one, zero = v * 0.0 + 1.0, v * 0.0
    if axis == "x":
        m = fn.stack(one, v, zero, zero, one, zero)
    else:
        m = fn.stack(one, zero, zero, v, one, zero)
    return warp(x, fn.reshape(m, shape=[2, 3]), size=size)


# ------------------------------------------------------------------------ colour ops
def equalize(x: Any) -> Any:
    """``fn.equalize``: per-channel histogram equalisation with **OpenCV's** LUT
    (``round(255 * (cdf(v) - cdf_min) / (n - cdf_min))``), not Pillow's
    (``(cum_below(v) + step // 2) // step``, ``step = (n - last bin) // 255``). The two agree
    in spirit but differ by up to tens of grey levels on most pixels of a photo; an exact
    per-sample LUT has no cheap native form in DALI (docs/architecture.md, DALI forms)."""
    return fn.equalize(x)


def _count_le(x: Any, thr: Any) -> Any:
    """Per-channel counts of ``x <= thr`` (``thr`` int32 [3]): int32 ``[3]``."""
    return fn.reductions.sum(fn.cast(x <= thr, dtype=types.INT32), axes=[0, 1])


def _first_above(x: Any, cut: Any) -> Any:
    """Per channel, the first value ``i`` with ``count(x <= i) > cut`` (int32 [3]), by an
    8-step binary search (``count(x <= 255) = n > cut`` always)."""
    lo = None
    for b in range(7, -1, -1):
        if lo is None:
            cand = _on(types.Constant(np.full(3, 2**b - 1, np.int32), dtype=types.INT32), x)
        else:
            cand = lo + (2**b - 1)
        ok = fn.cast(_count_le(x, cand) <= cut, dtype=types.INT32)
        lo = ok * (2**b) if lo is None else lo + ok * (2**b)
    return lo


def autocontrast(x: Any, cutoff: Any, *, size: int) -> Any:
    """``ImageOps.autocontrast(img, cutoff)`` (``cutoff``: per-sample percent, any float
    type; used in float64 as Pillow does): cut ``floor(n * cutoff / 100)`` samples from each
    end of every channel's histogram, then Pillow's linear LUT (identity if hi <= lo)."""
    n = float(size * size)
    cut = math.floor(_on(fn.cast(cutoff, dtype=types.FLOAT64), x) * n / 100.0)
    lo = _first_above(x, cut)
    hi = 255 - _first_above(x ^ _u8(255), cut)
    span = fn.cast(hi - lo, dtype=types.FLOAT64)
    scale = 255.0 / math.max(span, 1.0)
    offset = -fn.cast(lo, dtype=types.FLOAT64) * scale
    xd = fn.cast(x, dtype=types.FLOAT64)
    out = fn.cast(math.floor(math.clamp(xd * scale + offset, 0.0, 255.0)), dtype=types.UINT8)
    keep = fn.cast(hi <= lo, dtype=types.UINT8)  # per channel: identity
    return out * (_u8(1) - keep) + x * keep


def _grey(x: Any) -> Any:
    """Pillow's RGB -> L, int32 ``[H, W, 1]``."""
    xi = fn.cast(x, dtype=types.INT32)
    return (xi[:, :, 0:1] * 19595 + xi[:, :, 1:2] * 38470 + xi[:, :, 2:3] * 7471 + 32768) // 65536


def _blend(deg: Any, x: Any, f: Any) -> Any:
    """``Image.blend(deg, x, f)``: ``deg + f (x - deg)`` in float32, clip, truncate."""
    return _to_u8_trunc(deg + _on(_f32(f), x) * (_f32(x) - deg))


def brightness(x: Any, f: Any) -> Any:
    """``ImageEnhance.Brightness(img).enhance(f)``."""
    return _to_u8_trunc(_on(_f32(f), x) * _f32(x))


def color(x: Any, f: Any) -> Any:
    """``ImageEnhance.Color(img).enhance(f)`` (blend with the greyscale image)."""
    return _blend(_f32(_grey(x)), x, f)


def contrast(x: Any, f: Any) -> Any:
    """``ImageEnhance.Contrast(img).enhance(f)`` (blend with the mean grey, rounded)."""
    g = _grey(x)
    n = fn.cast(fn.reductions.sum(fn.cast(g, dtype=types.INT64)), dtype=types.FLOAT64)
    m = math.floor(n / fn.cast(fn.reductions.sum(g * 0 + 1), dtype=types.FLOAT64) + 0.5)
    return _blend(_f32(m), x, f)


_SMOOTH = (np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / np.float32(13.0)).astype(
    np.float32
)


def sharpness(x: Any, f: Any, *, size: int) -> Any:
    """``ImageEnhance.Sharpness(img).enhance(f)``: blend with Pillow's SMOOTH filter (rounded
    to uint8); the 1-pixel image border, which Pillow's filter copies, is kept."""
    sm = fn.filter(x, _const(_SMOOTH, None), border="clamp", dtype=types.FLOAT)
    deg = _f32(fn.cast(math.floor(math.clamp(sm + 0.5, 0.0, 255.0)), dtype=types.UINT8))
    inner = np.zeros((size, size, 1), np.uint8)
    inner[1:-1, 1:-1] = 1
    inner = _const(inner, x)
    return _blend(deg, x, f) * inner + x * (_u8(1) - inner)


# ------------------------------------------------------------------------ mixing ops
def clip_u8(y: Any) -> Any:
    """PixMix's conversion (``overflow="clip"``): ``floor(255 clip(y, 0, 1) + 0.5)``."""
    return fn.cast(math.floor(math.clamp(y, 0.0, 1.0) * 255.0 + 0.5), dtype=types.UINT8)


def to_u8(y: Any, overflow: str) -> Any:
    """The mixed patch ``y`` (float32) to uint8 by the config's ``overflow`` mode."""
    if overflow == "wrap":
        return wrap_u8(y)
    if overflow == "clip":
        return clip_u8(y)
    raise ValueError(f"overflow must be 'wrap' or 'clip', got {overflow!r}")


def bernoulli(like: Any, p: Any, *, channels: int) -> Any:
    """uint8 0/1 mask ``M ~ Bernoulli(p)`` of shape ``h x w x channels`` (1 or 3) for the
    uint8 ``h x w x 3`` patch ``like`` (per-sample shapes); drawn on the CPU."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    shp = like.shape(dtype=types.INT32)
    if channels == 1:
        shp = fn.cat(shp[0:2], shp[2:3] * 0 + 1)
    u = fn.random.uniform(range=[0.0, 1.0], shape=shp)
    return fn.cast(u < _f32(p), dtype=types.UINT8)


def mix_select(x1: Any, x2: Any, mask: Any) -> Any:
    """``random_pixels`` / ``random_elems`` on uint8 patches: ``M x1 + (1 - M) x2`` with the
    uint8 0/1 ``mask`` (``h x w x 1`` broadcasts over channels). ``to_uint8(v / 255)`` is the
    identity on bytes in both overflow modes, so no conversion follows."""
    mask = _on(mask, x1)
    return mask * x1 + (_u8(1) - mask) * x2


__all__ = [
    "autocontrast",
    "bernoulli",
    "brightness",
    "clip_u8",
    "color",
    "contrast",
    "equalize",
    "invert",
    "mirror",
    "mix_add",
    "mix_multiply",
    "mix_select",
    "posterize",
    "rotate",
    "rotate_matrix",
    "sharpness",
    "shear",
    "solarize",
    "to_u8",
    "translate",
    "warp",
    "wrap_u8",
]
