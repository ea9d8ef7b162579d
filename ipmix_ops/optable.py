"""The IPMix op table (docs/algorithm.md §3): every image op declared once, in op-id order
(:data:`OPS`).

An :class:`OpDef` carries everything any realisation of the op needs: name and id, whether
it is in the default list, the magnitude -> Pillow parameter rule (:class:`Magnitude`), the
identity rule, Pillow's reference call, the Numba kernel, the default wrapper parameter and
the forms a vectorised backend uses (``affine``: Pillow's inverse matrix of the geometric
ops; ``point``: ``(mask, threshold)`` of the point ops as ``(x & mask) ^ (x >= thr) * 255``,
with :func:`point_lut` the 256-entry table).

Derived from the table, nowhere else written down: :data:`OP_NAMES`, :data:`OP_ID`, the op id
constants, and the compiled dispatchers :func:`op_parameter`, :func:`is_identity` and
:func:`apply_op_k`. Numba cannot loop over functions, so their if/elif chains are generated
from the table at import (``exec`` of source compiled with this file's name: Numba's disk
cache keys them on this file, so an edit here recompiles them and a second process does not).

The magnitude formulas (level ``l ~ U(0.1, severity)``, ``sign`` a fair coin for signed
ops) live in each entry's ``Magnitude``; :func:`formula_table` renders them as generated
(appended to this docstring at import, so ``help()`` shows them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit
from PIL import Image, ImageEnhance, ImageOps

import ipmix_ops._ops_color as _c
import ipmix_ops._ops_geometric as _g

from ._optable_gen import dispatcher_source, parameter_expr


@dataclass(frozen=True)
class Magnitude:
    """``param = offset ± sign * v`` with ``v = int(l * M / 10)`` (``integer``) or
    ``l * M / 10``; ``M = m``, or ``image_size / m`` with ``per_size``. ``sign`` is ±1 (a coin)
    for ``signed`` ops, else 1; ``slope`` (±1) is the sign in front of ``v``."""

    m: float
    integer: bool = False
    offset: float = 0.0
    slope: int = 1
    signed: bool = False
    per_size: bool = False


def _affine(im: Image.Image, matrix: tuple) -> Image.Image:
    return im.transform(im.size, Image.Transform.AFFINE, matrix, resample=_BILINEAR)


def _pillow_trig(deg: float) -> tuple[float, float]:
    """Pillow's rounded cos, sin of ``-radians(deg % 360)`` (``Image.rotate``)."""
    a = -math.radians(deg % 360.0)
    return round(math.cos(a), 15), round(math.sin(a), 15)


@dataclass(frozen=True)
class OpDef:
    """One image op. ``identity(p)``: True when ``p`` leaves every image unchanged (kernels
    are skipped); ``pillow(im, p)``: the spec's Pillow call; ``kernel``: the Numba kernel
    ``(src, dst, param, y0, x0, h, w)``; ``affine(p, w, h)``: Pillow's 6 inverse-matrix numbers
    (plain arithmetic on ``p``); ``point(p)``: ``(mask, threshold)``."""

    name: str
    default: bool
    magnitude: Magnitude | None
    pillow: Callable[[Image.Image, float], Image.Image]
    kernel: Any
    default_param: float = 0.0
    identity: Callable[[float], bool] | None = None
    affine: Callable[[Any, Any, Any], tuple] | None = None
    point: Callable[[Any], tuple] | None = None
    doc: str = ""


_BILINEAR = Image.Resampling.BILINEAR
_ENHANCE = Magnitude(1.8, offset=0.1)
_SHEAR = Magnitude(0.3, signed=True)
_SHIFT = Magnitude(3, integer=True, signed=True, per_size=True)


def _zero(p: float) -> bool:
    return p == 0.0


#: The ops in id order; the first :data:`N_DEFAULT_OPS` form the default list.
OPS: tuple[OpDef, ...] = (
    OpDef("equalize", True, None, lambda im, p: ImageOps.equalize(im), _c.equalize_k,
          doc="``ImageOps.equalize`` (per-channel histogram equalisation)"),
    OpDef("posterize", True, Magnitude(4, integer=True, offset=4, slope=-1),
          lambda im, p: ImageOps.posterize(im, int(p)), _c.posterize_k, 4.0,
          identity=lambda p: p >= 8.0,
          point=lambda p: (256.0 - 2.0 ** (8.0 - p), 256.0),
          doc="``ImageOps.posterize(img, int(param))``: keep ``param`` bits (clamped 0..8)"),
    OpDef("rotate", True, Magnitude(30, integer=True, signed=True),
          lambda im, p: im.rotate(p, resample=_BILINEAR), _g.rotate_k, identity=_zero,
          affine=lambda p, w, h: _g.pillow_rotation(*_pillow_trig(p), w / 2.0, h / 2.0),
          doc="``img.rotate(param, resample=BILINEAR)``: counter-clockwise degrees, black fill"),
    OpDef("solarize", True, Magnitude(256, integer=True, offset=256, slope=-1),
          lambda im, p: ImageOps.solarize(im, p), _c.solarize_k, 128.0,
          identity=lambda p: p >= 256.0, point=lambda p: (255.0, p),
          doc="``ImageOps.solarize(img, param)``: invert samples >= threshold"),
    OpDef("shear_x", True, _SHEAR, lambda im, p: _affine(im, (1, p, 0, 0, 1, 0)),
          _g.shear_x_k, identity=_zero, affine=lambda p, w, h: (1.0, p, 0.0, 0.0, 1.0, 0.0),
          doc="Affine ``(1, param, 0, 0, 1, 0)``, bilinear, black fill"),
    OpDef("shear_y", True, _SHEAR, lambda im, p: _affine(im, (1, 0, 0, p, 1, 0)),
          _g.shear_y_k, identity=_zero, affine=lambda p, w, h: (1.0, 0.0, 0.0, p, 1.0, 0.0),
          doc="Affine ``(1, 0, 0, param, 1, 0)``, bilinear, black fill"),
    OpDef("translate_x", True, _SHIFT, lambda im, p: _affine(im, (1, 0, p, 0, 1, 0)),
          _g.translate_x_k, identity=_zero,
          affine=lambda p, w, h: (1.0, 0.0, p, 0.0, 1.0, 0.0),
          doc="Affine ``(1, 0, param, 0, 1, 0)``: output x shows input x + param"),
    OpDef("translate_y", True, _SHIFT, lambda im, p: _affine(im, (1, 0, 0, 0, 1, p)),
          _g.translate_y_k, identity=_zero,
          affine=lambda p, w, h: (1.0, 0.0, 0.0, 0.0, 1.0, p),
          doc="Affine ``(1, 0, 0, 0, 1, param)``: output y shows input y + param"),
    OpDef("mirror", True, None, lambda im, p: ImageOps.mirror(im), _g.mirror_k,
          affine=lambda p, w, h: (-1.0, 0.0, w, 0.0, 1.0, 0.0),
          doc="``ImageOps.mirror`` (left-right flip)"),
    OpDef("invert", True, None, lambda im, p: ImageOps.invert(im), _c.invert_k,
          point=lambda p: (255.0, 0.0), doc="``ImageOps.invert`` (``255 - v``)"),
    OpDef("autocontrast", False, Magnitude(10, offset=10.0, slope=-1),
          lambda im, p: ImageOps.autocontrast(im, p), _c.autocontrast_k,
          doc="``ImageOps.autocontrast(img, cutoff=param)`` (percent per end)"),
    OpDef("color", False, _ENHANCE, lambda im, p: ImageEnhance.Color(im).enhance(p),
          _c.color_k, 1.0, doc="``ImageEnhance.Color(img).enhance(param)``"),
    OpDef("contrast", False, _ENHANCE, lambda im, p: ImageEnhance.Contrast(im).enhance(p),
          _c.contrast_k, 1.0, doc="``ImageEnhance.Contrast(img).enhance(param)``"),
    OpDef("brightness", False, _ENHANCE, lambda im, p: ImageEnhance.Brightness(im).enhance(p),
          _c.brightness_k, 1.0, doc="``ImageEnhance.Brightness(img).enhance(param)``"),
    OpDef("sharpness", False, _ENHANCE, lambda im, p: ImageEnhance.Sharpness(im).enhance(p),
          _c.sharpness_k, 1.0, doc="``ImageEnhance.Sharpness(img).enhance(param)``"),
)  # fmt: skip

OP_NAMES: tuple[str, ...] = tuple(op.name for op in OPS)
N_DEFAULT_OPS = sum(op.default for op in OPS)
N_ALL_OPS = len(OPS)
OP_ID = {name: i for i, name in enumerate(OP_NAMES)}
if any(not op.default for op in OPS[:N_DEFAULT_OPS]):
    raise RuntimeError("optable: the default ops must come first in OPS")

(
    EQUALIZE,
    POSTERIZE,
    ROTATE,
    SOLARIZE,
    SHEAR_X,
    SHEAR_Y,
    TRANSLATE_X,
    TRANSLATE_Y,
    MIRROR,
    INVERT,
    AUTOCONTRAST,
    COLOR,
    CONTRAST,
    BRIGHTNESS,
    SHARPNESS,
) = (OP_ID[n.lower()] for n in ("EQUALIZE POSTERIZE ROTATE SOLARIZE SHEAR_X SHEAR_Y "
     "TRANSLATE_X TRANSLATE_Y MIRROR INVERT AUTOCONTRAST COLOR CONTRAST BRIGHTNESS "
     "SHARPNESS").split())  # fmt: skip

MIX_NAMES: tuple[str, ...] = ("add", "multiply", "random_pixels", "random_elems")
MIX_ADD, MIX_MULTIPLY, MIX_RANDOM_PIXELS, MIX_RANDOM_ELEMS = range(4)


def point_lut(op: int | str, param: float) -> np.ndarray:
    """uint8 [256]: the lookup table of point op ``op`` (``OpDef.point``) at ``param``."""
    d = OPS[OP_ID[op] if isinstance(op, str) else int(op)]
    if d.point is None:
        raise ValueError(f"optable: {d.name} has no point form")
    mask, thr = d.point(float(param))
    v = np.arange(256)
    return ((v & int(mask)) ^ np.where(v >= thr, 255, 0)).astype(np.uint8)


def formula_table() -> str:
    """The magnitude -> parameter formulas of every op, as generated (a reST table)."""
    rows = [(op.name, parameter_expr(op.magnitude) if op.magnitude else "0.0 (no parameter)")
            for op in OPS]  # fmt: skip
    w = max(len(n) for n, _ in rows)
    rule = "=" * w + "  " + "=" * max(len(e) for _, e in rows)
    body = [f"{n:<{w}}  ``{e}``" for n, e in rows]
    return "\n".join(
        [
            "",
            rule,
            f"{'op':<{w}}  parameter (``level``, ``sign``, ``image_size``)",
            rule,
            *body,
            rule,
            "",
        ]
    )


if __doc__ is not None:
    __doc__ += formula_table()


# ------------------------------------------------------- compiled dispatchers (generated)
_NAMESPACE = {f"_kernel_{op.name}": op.kernel for op in OPS}
_NAMESPACE.update(
    {f"_identity_{op.name}": njit(inline="always")(op.identity) for op in OPS if op.identity}
)
globals().update(_NAMESPACE)
exec(compile(dispatcher_source(OPS), __file__, "exec"), globals())  # noqa: S102

op_parameter: Any  # (op, level, negate, image_size) -> float: Pillow parameter (Numba)
is_identity: Any  # (op, param) -> bool: True when the op leaves every image unchanged
apply_op_k: Any  # (op, src, dst, param, y0, x0, h, w): run op into dst's box (Numba)
