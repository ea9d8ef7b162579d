"""The IPMix op table: op names, ids, and the magnitude -> parameter mappings (spec §3).

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


def int_parameter(level: float, maxval: float) -> int:
    """``ip(l, M) = int(l * M / 10)`` (truncation toward zero, as the authors' code)."""
    return int(level * maxval / 10)


def float_parameter(level: float, maxval: float) -> float:
    """``fp(l, M) = l * M / 10``."""
    return float(level) * maxval / 10.0


def op_parameter(op: int, level: float, negate: bool, image_size: int) -> float:
    """Map a sampled ``level`` (and sign flip) to op ``op``'s Pillow parameter.

    Pure Python twin of the Numba sampler's mapping in :mod:`ipmix_ops.sampling`; the tests
    check that both agree.
    """
    sign = -1.0 if negate else 1.0
    if op == POSTERIZE:
        return float(4 - int_parameter(level, 4))
    if op == ROTATE:
        return sign * int_parameter(level, 30)
    if op == SOLARIZE:
        return float(256 - int_parameter(level, 256))
    if op in (SHEAR_X, SHEAR_Y):
        return sign * float_parameter(level, 0.3)
    if op in (TRANSLATE_X, TRANSLATE_Y):
        return sign * int_parameter(level, image_size / 3)
    if op == AUTOCONTRAST:
        return 10.0 - float_parameter(level, 10)
    if op in (COLOR, CONTRAST, BRIGHTNESS, SHARPNESS):
        return float_parameter(level, 1.8) + 0.1
    if 0 <= op < N_ALL_OPS:
        return 0.0
    raise ValueError(f"op id {op} out of range [0, {N_ALL_OPS})")


def is_identity(op: int, param: float) -> bool:
    """True when ``op`` with ``param`` leaves every image unchanged (skippable)."""
    if op in (ROTATE, SHEAR_X, SHEAR_Y, TRANSLATE_X, TRANSLATE_Y):
        return param == 0.0
    if op == SOLARIZE:
        return param >= 256
    if op == POSTERIZE:
        return param >= 8
    return False
