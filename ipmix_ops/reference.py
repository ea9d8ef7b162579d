"""The oracle: a Pillow + NumPy port of the authors' per-sample IPMix (docs/algorithm.md §1, §6).

Kept deliberately close to the structure of the authors' ImageNet code: PIL images, Pillow's
own ops, NumPy float32 mixing, ``np.uint8``-style wrap on paste. The only structural change is
that random choices are read from a *record* (:mod:`ipmix_ops.sampling`) instead of being
drawn from NumPy's global RNG in between, so that the reference and the fast path can be
compared pixel for pixel. It is slow on purpose: it is the baseline of every benchmark.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from .config import IPMixConfig
from .mixing import mix_add, mix_multiply, mix_random_elems, mix_random_pixels, to_uint8
from .optable import MIX_ADD, MIX_MULTIPLY, MIX_RANDOM_PIXELS, OP_NAMES
from .sampling import KIND_PATCH, Record, Step, bernoulli_mask, sample_record

_AFFINE = Image.Transform.AFFINE
_BILINEAR = Image.Resampling.BILINEAR


def pillow_op(img: Image.Image, op: int | str, param: float) -> Image.Image:
    """Apply image op ``op`` (id or name) with Pillow parameter ``param``, Pillow's way."""
    name = OP_NAMES[op] if isinstance(op, (int, np.integer)) else op
    w, h = img.size
    if name == "equalize":
        return ImageOps.equalize(img)
    if name == "posterize":
        return ImageOps.posterize(img, int(param))
    if name == "rotate":
        return img.rotate(param, resample=_BILINEAR)
    if name == "solarize":
        return ImageOps.solarize(img, int(param))
    if name == "shear_x":
        return img.transform((w, h), _AFFINE, (1, param, 0, 0, 1, 0), resample=_BILINEAR)
    if name == "shear_y":
        return img.transform((w, h), _AFFINE, (1, 0, 0, param, 1, 0), resample=_BILINEAR)
    if name == "translate_x":
        return img.transform((w, h), _AFFINE, (1, 0, param, 0, 1, 0), resample=_BILINEAR)
    if name == "translate_y":
        return img.transform((w, h), _AFFINE, (1, 0, 0, 0, 1, param), resample=_BILINEAR)
    if name == "mirror":
        return ImageOps.mirror(img)
    if name == "invert":
        return ImageOps.invert(img)
    if name == "autocontrast":
        return ImageOps.autocontrast(img, param)
    if name == "color":
        return ImageEnhance.Color(img).enhance(param)
    if name == "contrast":
        return ImageEnhance.Contrast(img).enhance(param)
    if name == "brightness":
        return ImageEnhance.Brightness(img).enhance(param)
    if name == "sharpness":
        return ImageEnhance.Sharpness(img).enhance(param)
    raise ValueError(f"unknown image op {op!r}")


def patch_step(
    image_aug: Image.Image, image: Image.Image, fractal: Image.Image, step: Step, overflow: str
) -> Image.Image:
    """One P-step: mix a box of the chain image with the same box of the source."""
    if step.src_fractal:
        source = fractal
    else:
        source = pillow_op(image, step.src_op, step.src_param)  # op on the ORIGINAL image
    box = (step.left, step.top, step.left + step.w, step.top + step.h)
    x1 = np.asarray(image_aug.crop(box), dtype=np.float32) / 255.0
    x2 = np.asarray(source.crop(box), dtype=np.float32) / 255.0
    if step.op == MIX_ADD:
        mixed = mix_add(x1, x2, step.a, step.b)
    elif step.op == MIX_MULTIPLY:
        mixed = mix_multiply(x1, x2, step.a, step.b)
    elif step.op == MIX_RANDOM_PIXELS:
        mixed = mix_random_pixels(x1, x2, bernoulli_mask(step.seed, step.p, (step.h, step.w, 1)))
    else:
        mixed = mix_random_elems(x1, x2, bernoulli_mask(step.seed, step.p, (step.h, step.w, 3)))
    out = image_aug.copy()
    out.paste(Image.fromarray(to_uint8(mixed, overflow)), box)
    return out


def ipmix_record(
    img: np.ndarray, fractal: np.ndarray, cfg: IPMixConfig, record: np.ndarray
) -> np.ndarray:
    """IPMix of ``img`` (uint8 S×S×3) with ``fractal`` (uint8 F×F×3, F >= S) under the
    choices in ``record``. Returns float32 S×S×3 in [0, 255] (pre-normalization mix)."""
    s = cfg.image_size
    if img.shape != (s, s, 3) or img.dtype != np.uint8:
        raise ValueError(
            f"reference.ipmix: image must be uint8 {(s, s, 3)}, got {img.dtype} {img.shape}"
        )
    rec = Record.parse(record, cfg.k, cfg.t)
    fy, fx = rec.fractal_y, rec.fractal_x
    if fractal.ndim != 3 or fractal.shape[0] < fy + s or fractal.shape[1] < fx + s:
        raise ValueError(
            f"reference.ipmix: fractal {fractal.shape} too small for a {s}px crop at ({fy}, {fx})"
        )
    image = Image.fromarray(img)
    mixing_pic = Image.fromarray(np.ascontiguousarray(fractal[fy : fy + s, fx : fx + s]))

    mix = np.zeros((s, s, 3), dtype=np.float32)
    for i, chain in enumerate(rec.chains):
        image_aug = image.copy()
        for step in chain.steps:
            if chain.kind == KIND_PATCH:
                image_aug = patch_step(image_aug, image, mixing_pic, step, cfg.overflow)
            else:
                image_aug = pillow_op(image_aug, step.op, step.param)
        mix += np.float32(rec.ws[i]) * np.asarray(image_aug, dtype=np.float32)
    m = np.float32(rec.m)
    return (np.float32(1) - m) * np.asarray(image, dtype=np.float32) + m * mix


def ipmix(
    img: np.ndarray, fractal: np.ndarray, cfg: IPMixConfig, rng: np.random.Generator | np.ndarray
) -> np.ndarray:
    """The authors' per-sample IPMix: float32 S×S×3 in [0, 255].

    ``rng`` is a NumPy ``Generator`` (a sampling key is drawn from it) or a record from
    :func:`ipmix_ops.sampling.sample_records` (fixed parameters). ``fractal`` is this
    sample's fractal picture, uint8 F×F×3 with F >= S; its S×S crop comes from the record.
    """
    if isinstance(rng, np.random.Generator):
        key = tuple(int(v) for v in rng.integers(0, 2**62, size=4))
        record = sample_record(cfg, key, n_fractals=1, fractal_size=fractal.shape[0])
    else:
        record = np.asarray(rng, dtype=np.float64)
    return ipmix_record(img, fractal, cfg, record)
