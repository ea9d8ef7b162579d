"""The IPMix op table: op names, ids, and the magnitude -> parameter mappings
(docs/algorithm.md §3).

This module is the single place where the list of image-level ops, their order and their
magnitude formulas are written down. Every backend imports from here.

Op ids are positions in :data:`OP_NAMES`. The first :data:`N_DEFAULT_OPS` ops form the
default list; ``all_ops=True`` uses all 15. Parameters are in Pillow's meaning:

=============  =======================  =================================
op             parameter                formula (level ``l ~ U(0.1, severity)``)
=============  =======================  =================================
equalize       none (0.0)               --
posterize      bits                     ``4 - int(l * 4 / 10)``
rotate         degrees                  ``± int(l * 30 / 10)``
solarize       threshold                ``256 - int(l * 256 / 10)``
shear_x/_y     shear factor             ``± l * 0.3 / 10``
translate_x/_y pixels                   ``± int(l * (S / 3) / 10)``
mirror         none (0.0)               --
invert         none (0.0)               --
autocontrast   cutoff percent           ``10 - l * 10 / 10``
color, ...     enhance factor           ``l * 1.8 / 10 + 0.1``
=============  =======================  =================================
"""

from __future__ import annotations

from numba import njit

OP_NAMES: tuple[str, ...] = (
    "equalize",
    "posterize",
    "rotate",
    "solarize",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "mirror",
    "invert",
    "autocontrast",
    "color",
    "contrast",
    "brightness",
    "sharpness",
)
N_DEFAULT_OPS = 10
N_ALL_OPS = len(OP_NAMES)
OP_ID = {name: i for i, name in enumerate(OP_NAMES)}

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
) = range(N_ALL_OPS)

#: Ops whose sign is flipped with p = 0.5.
SIGNED_OPS = frozenset({ROTATE, SHEAR_X, SHEAR_Y, TRANSLATE_X, TRANSLATE_Y})

MIX_NAMES: tuple[str, ...] = ("add", "multiply", "random_pixels", "random_elems")
MIX_ADD, MIX_MULTIPLY, MIX_RANDOM_PIXELS, MIX_RANDOM_ELEMS = range(4)


@njit(cache=True)
def op_parameter(op: int, level: float, negate: bool, image_size: int) -> float:
    """Map a sampled ``level`` (and sign flip) to op ``op``'s Pillow parameter.

    ``ip(l, M) = int(l * M / 10)`` truncates toward zero and ``fp(l, M) = l * M / 10``, as in
    the authors' code. Compiled with Numba: the sampler calls it from compiled code, and it
    is callable from Python as is.
    """
    sign = -1.0 if negate else 1.0
    if op == POSTERIZE:
        return float(4 - int(level * 4 / 10))
    if op == ROTATE:
        return sign * int(level * 30 / 10)
    if op == SOLARIZE:
        return float(256 - int(level * 256 / 10))
    if op == SHEAR_X or op == SHEAR_Y:
        return sign * (level * 0.3 / 10)
    if op == TRANSLATE_X or op == TRANSLATE_Y:
        return sign * int(level * (image_size / 3) / 10)
    if op == AUTOCONTRAST:
        return 10.0 - level * 10 / 10
    if op == COLOR or op == CONTRAST or op == BRIGHTNESS or op == SHARPNESS:
        return level * 1.8 / 10 + 0.1
    return 0.0


@njit(cache=True)
def is_identity(op: int, param: float) -> bool:
    """True when ``op`` with ``param`` leaves every image unchanged (the kernels skip it)."""
    if op == ROTATE or op == SHEAR_X or op == SHEAR_Y or op == TRANSLATE_X or op == TRANSLATE_Y:
        return param == 0.0
    if op == SOLARIZE:
        return param >= 256.0
    if op == POSTERIZE:
        return param >= 8.0
    return False
