"""The 15 IPMix image ops (docs/algorithm.md §3) as Numba kernels equal to Pillow, plus Python
wrappers.

Kernels
    ``<name>_k(src, dst, param, y0, x0, h, w)`` for every name in
    :data:`ipmix_ops.optable.OP_NAMES`, compiled with ``@njit(cache=True, nogil=True)`` (not
    parallel: callers parallelise over the batch). ``src`` and ``dst`` are distinct C-contiguous
    uint8 arrays of shape (H, W, 3); ``param`` is a float64 in Pillow's meaning (see
    :mod:`ipmix_ops.optable`; ignored by equalize, mirror and invert). A kernel writes only
    ``dst[y0:y0 + h, x0:x0 + w, :]``: the op's full-image result restricted to that box, so an
    op can be computed inside a patch only. Whole-image statistics (equalize histogram,
    autocontrast cutoffs, contrast mean) always come from the full ``src``.

    :func:`apply_op_k` dispatches on the op id and can be called from other ``@njit`` code.
    The kernels need arrays that Numba types as C-contiguous (e.g. ``batch[i]`` of a C array);
    they allocate only small per-call scratch (256-entry tables, a few row-length arrays).

Wrappers
    ``equalize(img, param=None)`` ... ``sharpness(img, param=None)`` and
    :func:`apply_op` take an (H, W, 3) uint8 array and return a new array; the input is never
    modified. ``param=None`` selects :data:`DEFAULT_PARAMS`.

Accuracy
    The point ops (equalize, posterize, solarize, mirror, invert, autocontrast), integer
    translations, zero parameters and rotations by multiples of 90 degrees are bit-exact with
    Pillow, and so are the enhance ops (``Image.blend`` and the SMOOTH filter are emulated in
    float32 like Pillow's C code). The bilinear resampling cases (rotate, shear_x/_y,
    non-integer translations) blend in float32 along runs of constant source offsets and
    are within the tolerance of docs/algorithm.md §3 (at most 1 grey level apart on >= 99% of
    pixels); on
    photos they are at most 1 level off on ~0.1% of the pixels. ``tests/test_ops.py``
    asserts exactness where it holds and the tolerance elsewhere.

Speed (``benchmarks/bench_ops.py``): all loops index flat arrays with unsigned offsets so
that they vectorise; geometric ops have a kernel per case (row copies for integer
translations, run-based float32 blends for shears and small rotations, a two-pass general
warp for large angles). See the module docstrings of :mod:`ipmix_ops._ops_geometric` and
:mod:`ipmix_ops._ops_color`.

Numba's cache does not track dependencies across files: after changing these kernels, clear
``NUMBA_CACHE_DIR`` so that cached callers (``apply_op_k``, :mod:`ipmix_ops.batch`) recompile.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._ops_color import (
    autocontrast_k,
    brightness_k,
    color_k,
    contrast_k,
    equalize_k,
    invert_k,
    posterize_k,
    sharpness_k,
    solarize_k,
)
from ._ops_geometric import (
    mirror_k,
    rotate_k,
    rotate_matrix,
    shear_x_k,
    shear_y_k,
    translate_x_k,
    translate_y_k,
)
from .optable import (
    AUTOCONTRAST,
    BRIGHTNESS,
    COLOR,
    CONTRAST,
    EQUALIZE,
    INVERT,
    MIRROR,
    N_ALL_OPS,
    OP_ID,
    OP_NAMES,
    POSTERIZE,
    ROTATE,
    SHARPNESS,
    SHEAR_X,
    SHEAR_Y,
    SOLARIZE,
    TRANSLATE_X,
    TRANSLATE_Y,
)

__all__ = [
    "DEFAULT_PARAMS",
    "KERNELS",
    "apply_op",
    "apply_op_k",
    "check_image",
    "rotate_matrix",
    *OP_NAMES,
    *(f"{name}_k" for name in OP_NAMES),
]

#: Parameter used when a wrapper gets ``param=None``: Pillow's own default where it has one
#: (solarize 128, autocontrast cutoff 0), posterize 4 bits, and the identity for the rest
#: (0 degrees / shear / pixels, enhance factor 1.0). Ignored by equalize, mirror and invert.
DEFAULT_PARAMS: dict[str, float] = {
    "equalize": 0.0,
    "posterize": 4.0,
    "rotate": 0.0,
    "solarize": 128.0,
    "shear_x": 0.0,
    "shear_y": 0.0,
    "translate_x": 0.0,
    "translate_y": 0.0,
    "mirror": 0.0,
    "invert": 0.0,
    "autocontrast": 0.0,
    "color": 1.0,
    "contrast": 1.0,
    "brightness": 1.0,
    "sharpness": 1.0,
}

#: Kernels in op-id order (``KERNELS[op_id]``), for Python-level callers.
KERNELS = (
    equalize_k,
    posterize_k,
    rotate_k,
    solarize_k,
    shear_x_k,
    shear_y_k,
    translate_x_k,
    translate_y_k,
    mirror_k,
    invert_k,
    autocontrast_k,
    color_k,
    contrast_k,
    brightness_k,
    sharpness_k,
)


@njit(cache=True, nogil=True)
def apply_op_k(op_id, src, dst, param, y0, x0, h, w):
    """Run op ``op_id`` (see :data:`OP_NAMES`) on ``src`` into ``dst[y0:y0+h, x0:x0+w]``.

    Unknown ids leave ``dst`` untouched.
    """
    if op_id == EQUALIZE:
        equalize_k(src, dst, param, y0, x0, h, w)
    elif op_id == POSTERIZE:
        posterize_k(src, dst, param, y0, x0, h, w)
    elif op_id == ROTATE:
        rotate_k(src, dst, param, y0, x0, h, w)
    elif op_id == SOLARIZE:
        solarize_k(src, dst, param, y0, x0, h, w)
    elif op_id == SHEAR_X:
        shear_x_k(src, dst, param, y0, x0, h, w)
    elif op_id == SHEAR_Y:
        shear_y_k(src, dst, param, y0, x0, h, w)
    elif op_id == TRANSLATE_X:
        translate_x_k(src, dst, param, y0, x0, h, w)
    elif op_id == TRANSLATE_Y:
        translate_y_k(src, dst, param, y0, x0, h, w)
    elif op_id == MIRROR:
        mirror_k(src, dst, param, y0, x0, h, w)
    elif op_id == INVERT:
        invert_k(src, dst, param, y0, x0, h, w)
    elif op_id == AUTOCONTRAST:
        autocontrast_k(src, dst, param, y0, x0, h, w)
    elif op_id == COLOR:
        color_k(src, dst, param, y0, x0, h, w)
    elif op_id == CONTRAST:
        contrast_k(src, dst, param, y0, x0, h, w)
    elif op_id == BRIGHTNESS:
        brightness_k(src, dst, param, y0, x0, h, w)
    elif op_id == SHARPNESS:
        sharpness_k(src, dst, param, y0, x0, h, w)


# --------------------------------------------------------------------------- Python wrappers


def check_image(img: np.ndarray) -> np.ndarray:
    """Validate an RGB image and return it as a C-contiguous (H, W, 3) uint8 array.

    Raises ValueError for anything else (no silent casting). Non-contiguous input is copied.
    """
    if not isinstance(img, np.ndarray):
        raise ValueError(f"expected a numpy array, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise ValueError(f"expected dtype uint8, got {img.dtype}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {img.shape}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"expected a non-empty image, got shape {img.shape}")
    return np.ascontiguousarray(img)


def _resolve(name_or_id: str | int) -> int:
    if isinstance(name_or_id, str):
        if name_or_id not in OP_ID:
            raise ValueError(f"unknown op {name_or_id!r}; expected one of {OP_NAMES}")
        return OP_ID[name_or_id]
    op = int(name_or_id)
    if not 0 <= op < N_ALL_OPS:
        raise ValueError(f"op id {op} out of range [0, {N_ALL_OPS})")
    return op


def apply_op(name_or_id: str | int, img: np.ndarray, param: float | None = None) -> np.ndarray:
    """Apply one op to an (H, W, 3) uint8 image; returns a new array (input untouched).

    ``param`` is in Pillow's meaning (see :mod:`ipmix_ops.optable`); ``None`` selects
    :data:`DEFAULT_PARAMS`. Raises ValueError for a bad image, op or non-finite parameter.
    """
    op = _resolve(name_or_id)
    src = check_image(img)
    value = DEFAULT_PARAMS[OP_NAMES[op]] if param is None else float(param)
    if not math.isfinite(value):
        raise ValueError(f"{OP_NAMES[op]}: parameter must be finite, got {param!r}")
    dst = np.empty_like(src)
    KERNELS[op](src, dst, value, 0, 0, src.shape[0], src.shape[1])
    return dst


def equalize(img: np.ndarray, param: float | None = None) -> np.ndarray:
    """``ImageOps.equalize`` (per-channel histogram equalisation); ``param`` is ignored."""
    return apply_op(EQUALIZE, img, param)


def posterize(img: np.ndarray, param: float | None = None) -> np.ndarray:
    """``ImageOps.posterize(img, int(param))``: keep ``param`` bits (default 4; clamped 0..8)."""
    return apply_op(POSTERIZE, img, param)


def rotate(img: np.ndarray, param: float | None = None) -> np.ndarray:
    """``img.rotate(param, resample=BILINEAR)``: counter-clockwise degrees, black fill
    (default 0)."""
    return apply_op(ROTATE, img, param)


def solarize(img: np.ndarray, param: float | None = None) -> np.ndarray:
    """``ImageOps.solarize(img, param)``: invert samples >= threshold (default 128)."""
    return apply_op(SOLARIZE, img, param)


def shear_x(img: np.ndarray, param: float | None = None) -> np.ndarray:
    """Affine ``(1, param, 0, 0, 1, 0)`` with bilinear resampling, black fill (default 0)."""
    return apply_op(SHEAR_X, img, param)


def shear_y(img: np.ndarray, param: float | None = None) -> np.ndarray:
    """Affine ``(1, 0, 0, param, 1, 0)`` with bilinear resampling, black fill (default 0)."""
    return apply_op(SHEAR_Y, img, param)


def translate_x(img: np.ndarray, param: float | None = None) -> np.ndarray:
    """Affine ``(1, 0, param, 0, 1, 0)``: output x shows input x + param, black fill
    (default 0)."""
    return apply_op(TRANSLATE_X, img, param)


def translate_y(img: np.ndarray, param: float | None = None) -> np.ndarray:
    """Affine ``(1, 0, 0, 0, 1, param)``: output y shows input y + param, black fill
    (default 0)."""
    return apply_op(TRANSLATE_Y, img, param)


def mirror(img: np.ndarray, param: float | None = None) -> np.ndarray:
    """``ImageOps.mirror`` (left-right flip); ``param`` is ignored."""
    return apply_op(MIRROR, img, param)


def invert(img: np.ndarray, param: float | None = None) -> np.ndarray:
    """``ImageOps.invert`` (``255 - v``); ``param`` is ignored."""
    return apply_op(INVERT, img, param)


def autocontrast(img: np.ndarray, param: float | None = None) -> np.ndarray:
    """``ImageOps.autocontrast(img, cutoff=param)`` (percent per end, default 0)."""
    return apply_op(AUTOCONTRAST, img, param)


def color(img: np.ndarray, param: float | None = None) -> np.ndarray:
    """``ImageEnhance.Color(img).enhance(param)`` (default 1.0: identity)."""
    return apply_op(COLOR, img, param)


def contrast(img: np.ndarray, param: float | None = None) -> np.ndarray:
    """``ImageEnhance.Contrast(img).enhance(param)`` (default 1.0: identity)."""
    return apply_op(CONTRAST, img, param)


def brightness(img: np.ndarray, param: float | None = None) -> np.ndarray:
    """``ImageEnhance.Brightness(img).enhance(param)`` (default 1.0: identity)."""
    return apply_op(BRIGHTNESS, img, param)


def sharpness(img: np.ndarray, param: float | None = None) -> np.ndarray:
    """``ImageEnhance.Sharpness(img).enhance(param)`` (default 1.0: identity)."""
    return apply_op(SHARPNESS, img, param)
