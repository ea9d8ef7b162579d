"""The IPMix image ops and mixing ops as Triton device functions, one per op.

Pixels are blocks ``[P, 4]`` of int32 (``P`` pixels, channels R, G, B and a masked 4th lane);
``y``, ``x`` are int32 ``[P]`` pixel coordinates, ``ch`` the int32 ``[4]`` channel index and
``m2`` the ``[P, 4]`` load mask. Images are uint8 ``S x S x 3`` (HWC) at ``base``.

The arithmetic is that of the Numba kernels (:mod:`ipmix_ops._ops_color`,
:mod:`ipmix_ops._ops_geometric`, :mod:`ipmix_ops.mixing`): integer LUT ops and the float32
blends of ``Image.blend`` in the same order, so the results are the same bytes as long as the
compiler fuses no multiply-add (the launches pass ``enable_fp_fusion=False``). The bilinear
warps take Pillow's float64 source point and blend in float32 (the CPU's run-based kernels
blend in float32 too; both are within 1 level of Pillow). Whole-image statistics (equalize,
autocontrast, contrast) arrive as a per-channel LUT built by :mod:`ipmix_ops.gpu.kernels`.
"""

from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from ..optable import (
    AUTOCONTRAST,
    BRIGHTNESS,
    COLOR,
    CONTRAST,
    EQUALIZE,
    INVERT,
    MIRROR,
    MIX_ADD,
    MIX_MULTIPLY,
    MIX_RANDOM_PIXELS,
    POSTERIZE,
    SHARPNESS,
    SOLARIZE,
)
from .layout import TABLE_MASK

_EQUALIZE = tl.constexpr(EQUALIZE)
_POSTERIZE = tl.constexpr(POSTERIZE)
_SOLARIZE = tl.constexpr(SOLARIZE)
_MIRROR = tl.constexpr(MIRROR)
_INVERT = tl.constexpr(INVERT)
_AUTOCONTRAST = tl.constexpr(AUTOCONTRAST)
_COLOR = tl.constexpr(COLOR)
_CONTRAST = tl.constexpr(CONTRAST)
_BRIGHTNESS = tl.constexpr(BRIGHTNESS)
_SHARPNESS = tl.constexpr(SHARPNESS)
_MIX_ADD = tl.constexpr(MIX_ADD)
_MIX_MULTIPLY = tl.constexpr(MIX_MULTIPLY)
_MIX_RANDOM_PIXELS = tl.constexpr(MIX_RANDOM_PIXELS)
_TABLE_MASK = tl.constexpr(TABLE_MASK)
# the SMOOTH kernel's float32 weights (float32(1) / float32(13) as in Filter.c), exact literals
_K1 = tl.constexpr(float(np.float32(1) / np.float32(13)))
_K5 = tl.constexpr(float(np.float32(5) / np.float32(13)))
_TWO24 = tl.constexpr(16777216.0)


@triton.jit
def load_px(base, y, x, ch, S, m2):
    """The bytes at pixels (y, x) as int32 [P, 4] (coordinates must be inside the image)."""
    off = (y * S + x) * 3
    return tl.load(base + off[:, None] + ch[None, :], mask=m2, other=0).to(tl.int32)


@triton.jit
def _clamp_u8f(t):
    """float32 -> int32 as ``int(min(max(t, 0), 255))`` (truncation)."""
    return tl.minimum(tl.maximum(t, 0.0), 255.0).to(tl.int32)


# ----------------------------------------------------------------------- point ops
@triton.jit
def posterize(v, mask):
    """``v & mask`` (mask = the kept high bits, from the host)."""
    return v & mask


@triton.jit
def solarize(v, thr):
    """``v if v < thr else 255 - v`` (thr 256: identity)."""
    return tl.where(v < thr, v, 255 - v)


@triton.jit
def invert(v):
    return 255 - v


@triton.jit
def lut3(v, lut, ch, m2):
    """Per-channel LUT ``lut[c, v]`` (int32 [3, 256] at ``lut``)."""
    return tl.load(lut + ch[None, :] * 256 + v, mask=m2, other=0)


# equalize, autocontrast and contrast are LUTs built from whole-image statistics
equalize = lut3
autocontrast = lut3
contrast = lut3


@triton.jit
def brightness(v, alpha):
    """``Image.blend(black, img, alpha)``: ``0 + alpha * (v - 0)`` in float32, clip, truncate."""
    return _clamp_u8f(alpha * v.to(tl.float32))


@triton.jit
def color(v, alpha, ch):
    """``Image.blend(grey, img, alpha)`` with Pillow's 16-bit fixed-point luma."""
    wts = tl.where(ch == 0, 19595, tl.where(ch == 1, 38470, tl.where(ch == 2, 7471, 0)))
    grey = (tl.sum(v * wts[None, :], axis=1) + 0x8000) >> 16
    fdeg = grey.to(tl.float32)[:, None]
    return _clamp_u8f(fdeg + alpha * (v.to(tl.float32) - fdeg))


# ----------------------------------------------------------------------- neighbourhood ops
@triton.jit
def _row3(base, yy, x, ch, S, m2, w0, w1):
    """``(p(x-1) * w0 + p(x) * w1) + p(x+1) * w0`` of row ``yy`` in float32 (Filter.c order)."""
    xl = tl.maximum(x - 1, 0)
    xr = tl.minimum(x + 1, S - 1)
    a = load_px(base, yy, xl, ch, S, m2).to(tl.float32)
    b = load_px(base, yy, x, ch, S, m2).to(tl.float32)
    c = load_px(base, yy, xr, ch, S, m2).to(tl.float32)
    return (a * w0 + b * w1) + c * w0


@triton.jit
def sharpness(base, y, x, ch, S, m2, alpha):
    """``Image.blend(SMOOTH(img), img, alpha)``; the 1-pixel border is the input."""
    centre = load_px(base, y, x, ch, S, m2)
    yu = tl.maximum(y - 1, 0)
    yd = tl.minimum(y + 1, S - 1)
    s = tl.full(centre.shape, 0.5, tl.float32)
    s += _row3(base, yd, x, ch, S, m2, _K1, _K1)
    s += _row3(base, y, x, ch, S, m2, _K1, _K5)
    s += _row3(base, yu, x, ch, S, m2, _K1, _K1)
    deg = _clamp_u8f(s).to(tl.float32)
    out = _clamp_u8f(deg + alpha * (centre.to(tl.float32) - deg))
    border = (y == 0) | (y == S - 1) | (x == 0) | (x == S - 1)
    return tl.where(border[:, None], centre, out)


@triton.jit
def mirror(base, y, x, ch, S, m2):
    """``ImageOps.mirror``: left-right flip."""
    return load_px(base, y, S - 1 - x, ch, S, m2)


@triton.jit
def affine(base, y, x, ch, S, m2, a0, a1, a2, a3, a4, a5):
    """Pillow's bilinear ``AFFINE`` transform (rotate, shear_x/_y, translate_x/_y): the
    output pixel centre through the float64 matrix, black outside ``[0, S)^2``, edge-clamped
    2x2 taps blended in float32 and truncated."""
    fs = S * 1.0
    xc = x.to(tl.float64) + 0.5
    yc = y.to(tl.float64) + 0.5
    xin = a0 * xc + a1 * yc + a2
    yin = a3 * xc + a4 * yc + a5
    inside = (xin >= 0.0) & (xin < fs) & (yin >= 0.0) & (yin < fs)
    xs = xin - 0.5
    ys = yin - 0.5
    fx = tl.floor(xs)
    fy = tl.floor(ys)
    dx = (xs - fx).to(tl.float32)[:, None]
    dy = (ys - fy).to(tl.float32)[:, None]
    ix = tl.where(inside, fx, 0.0).to(tl.int32)
    iy = tl.where(inside, fy, 0.0).to(tl.int32)
    xa = tl.minimum(tl.maximum(ix, 0), S - 1)
    xb = tl.minimum(tl.maximum(ix + 1, 0), S - 1)
    ya = tl.minimum(tl.maximum(iy, 0), S - 1)
    yb = tl.minimum(tl.maximum(iy + 1, 0), S - 1)
    p00 = load_px(base, ya, xa, ch, S, m2).to(tl.float32)
    p01 = load_px(base, ya, xb, ch, S, m2).to(tl.float32)
    p10 = load_px(base, yb, xa, ch, S, m2).to(tl.float32)
    p11 = load_px(base, yb, xb, ch, S, m2).to(tl.float32)
    v1 = p00 + (p01 - p00) * dx
    v2 = p10 + (p11 - p10) * dx
    out = (v1 + (v2 - v1) * dy).to(tl.int32)
    return tl.where(inside[:, None], out, 0)


rotate = affine
shear_x = affine
shear_y = affine
translate_x = affine
translate_y = affine


@triton.jit
def apply_op(op, base, y, x, ch, S, m2, ipar, alpha, lut, drow):
    """Image op ``op`` (an :data:`ipmix_ops.optable.OP_NAMES` id; -1: none) of the image at
    ``base`` at pixels (y, x): int32 [P, 4]. ``ipar``/``alpha``: the integer / float32
    parameter, ``lut``: the stats LUT, ``drow``: the float64 affine matrix (6 values)."""
    v = tl.zeros(m2.shape, tl.int32)
    if op == _MIRROR:
        v = mirror(base, y, x, ch, S, m2)
    elif op == _SHARPNESS:
        v = sharpness(base, y, x, ch, S, m2, alpha)
    elif (op == _EQUALIZE) | (op == _AUTOCONTRAST) | (op == _CONTRAST):
        v = lut3(load_px(base, y, x, ch, S, m2), lut, ch, m2)
    elif (op < 0) | (op == _POSTERIZE) | (op == _SOLARIZE) | (op == _INVERT):
        v = load_px(base, y, x, ch, S, m2)
        if op == _POSTERIZE:
            v = posterize(v, ipar)
        elif op == _SOLARIZE:
            v = solarize(v, ipar)
        elif op == _INVERT:
            v = invert(v)
    elif op == _BRIGHTNESS:
        v = brightness(load_px(base, y, x, ch, S, m2), alpha)
    elif op == _COLOR:
        v = color(load_px(base, y, x, ch, S, m2), alpha, ch)
    else:  # rotate, shear_x/_y, translate_x/_y
        a0 = tl.load(drow)
        a1 = tl.load(drow + 1)
        a2 = tl.load(drow + 2)
        a3 = tl.load(drow + 3)
        a4 = tl.load(drow + 4)
        a5 = tl.load(drow + 5)
        v = affine(base, y, x, ch, S, m2, a0, a1, a2, a3, a4, a5)
    return v


# ----------------------------------------------------------------------- mixing ops
@triton.jit
def to_u8(v, WRAP: tl.constexpr):
    """``mixing._to_u8`` of ``v = 255 * out`` (float32): wrap (trunc, mod 256) or clip."""
    if WRAP:
        t = tl.minimum(tl.maximum(v, -_TWO24), _TWO24).to(tl.int32)
        return t & 255
    else:
        return tl.floor(tl.minimum(tl.maximum(v, 0.0), 255.0) + 0.5).to(tl.int32)


@triton.jit
def mix_add(p, q, lut, c, m2, WRAP: tl.constexpr):
    """``a*x1 + b*x2 + (1-a-b)/2`` via the LUTs ``lut[0] = a*u``, ``lut[1] = b*u``."""
    l1 = tl.load(lut + p, mask=m2, other=0.0)
    l2 = tl.load(lut + 256 + q, mask=m2, other=0.0)
    return to_u8(255.0 * ((l1 + l2) + c), WRAP)


@triton.jit
def mix_multiply(p, q, lut, m2, WRAP: tl.constexpr):
    """``((2*x1)**a * max(2*x2, 1e-37)**b) / 2`` via the LUTs (``/ 2`` is exactly ``* 0.5``)."""
    l1 = tl.load(lut + p, mask=m2, other=0.0)
    l2 = tl.load(lut + 256 + q, mask=m2, other=0.0)
    return to_u8(255.0 * ((l1 * l2) * 0.5), WRAP)


@triton.jit
def mix_random_pixels(p, q, table, mseed, thr, yy, xx, w, valid):
    """Per-pixel selection: table value ``< thr`` keeps the patch byte ``p``."""
    base = (mseed + yy * w) & _TABLE_MASK
    u = tl.load(table + base + xx, mask=valid, other=0)
    return tl.where((u < thr)[:, None], p, q)


@triton.jit
def mix_random_elems(p, q, table, mseed, thr, yy, xx, w, ch, m2):
    """Per-element selection (3 table values per pixel)."""
    base = (mseed + yy * (3 * w)) & _TABLE_MASK
    u = tl.load(table + (base + 3 * xx)[:, None] + ch[None, :], mask=m2, other=0)
    return tl.where(u < thr, p, q)


@triton.jit
def apply_mix(mop, p, q, lut, c, table, mseed, thr, yy, xx, w, ch, m2, valid, WRAP: tl.constexpr):
    """Mix op ``mop`` (:data:`ipmix_ops.optable.MIX_NAMES` id) of patch bytes ``p`` and
    source bytes ``q``; ``yy``/``xx`` are box-relative coordinates (int32 [P])."""
    r = p
    if mop == _MIX_ADD:
        r = mix_add(p, q, lut, c, m2, WRAP)
    elif mop == _MIX_MULTIPLY:
        r = mix_multiply(p, q, lut, m2, WRAP)
    elif mop == _MIX_RANDOM_PIXELS:
        r = mix_random_pixels(p, q, table, mseed, thr, yy, xx, w, valid)
    else:
        r = mix_random_elems(p, q, table, mseed, thr, yy, xx, w, ch, m2)
    return r


#: device function per op name (the op table can reference these)
OP_FUNCS = {
    "equalize": equalize,
    "posterize": posterize,
    "rotate": rotate,
    "solarize": solarize,
    "shear_x": shear_x,
    "shear_y": shear_y,
    "translate_x": translate_x,
    "translate_y": translate_y,
    "mirror": mirror,
    "invert": invert,
    "autocontrast": autocontrast,
    "color": color,
    "contrast": contrast,
    "brightness": brightness,
    "sharpness": sharpness,
}
MIX_FUNCS = {
    "add": mix_add,
    "multiply": mix_multiply,
    "random_pixels": mix_random_pixels,
    "random_elems": mix_random_elems,
}
