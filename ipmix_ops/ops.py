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

    :func:`apply_op_k` (generated from the op table, :mod:`ipmix_ops.optable`) dispatches on
    the op id and can be called from other ``@njit`` code.
    The kernels need arrays that Numba types as C-contiguous (e.g. ``batch[i]`` of a C array);
    they allocate only small per-call scratch (256-entry tables, a few row-length arrays).

Wrappers
    ``equalize(img, param=None)`` ... ``sharpness(img, param=None)`` (one per table entry,
    made from it) and :func:`apply_op` take an (H, W, 3) uint8 array and return a new
    array; the input is never modified. ``param=None`` selects :data:`DEFAULT_PARAMS`.

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
from collections.abc import Callable

import numpy as np

from ._ops_geometric import _copy_box, rotate_matrix
from .optable import N_ALL_OPS, OP_ID, OP_NAMES, OPS, apply_op_k

__all__ = [
    "DEFAULT_PARAMS",
    "KERNELS",
    "apply_op",
    "apply_op_k",
    "check_image",
    "copy_box_k",
    "rotate_matrix",
    *OP_NAMES,
    *(f"{name}_k" for name in OP_NAMES),
]

#: Parameter used when a wrapper gets ``param=None`` (``OpDef.default_param``): Pillow's own
#: default where it has one (solarize 128, autocontrast cutoff 0), posterize 4 bits, and the
#: identity for the rest (0 degrees / shear / pixels, enhance factor 1.0).
DEFAULT_PARAMS: dict[str, float] = {op.name: op.default_param for op in OPS}

#: Kernels in op-id order (``KERNELS[op_id]``), for Python-level callers.
KERNELS = tuple(op.kernel for op in OPS)
globals().update({f"{op.name}_k": op.kernel for op in OPS})

#: ``copy_box_k(src, dst, y0, x0, h, w)``: ``dst[box] = src[box]`` (the kernels' byte copy,
#: compiled; uint8 (H, W, 3) C-contiguous arrays).
copy_box_k = _copy_box


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


def _wrapper(op_id: int) -> Callable[..., np.ndarray]:
    d = OPS[op_id]

    def wrapper(img: np.ndarray, param: float | None = None) -> np.ndarray:
        return apply_op(op_id, img, param)

    wrapper.__name__ = wrapper.__qualname__ = d.name
    wrapper.__doc__ = f"{d.doc}; ``param=None``: {d.default_param!r}. Returns a new array."
    return wrapper


globals().update({op.name: _wrapper(i) for i, op in enumerate(OPS)})
