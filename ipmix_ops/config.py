"""``IPMixConfig``: every option of IPMix (docs/algorithm.md §2, §7) in one frozen, validated
dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from .optable import N_ALL_OPS, N_DEFAULT_OPS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PATCH_SOURCES = ("mixed", "fractal")
OVERFLOW_MODES = ("wrap", "clip")


@dataclass(frozen=True)
class IPMixConfig:
    """IPMix options; defaults are the authors' ImageNet code path (``preset("imagenet")``).

    Fields:
        k: number of chains mixed per view.
        t: maximum chain depth.
        depth_min: minimum chain depth (0 in the authors' code, 1 in the paper).
        beta: Beta parameter of the add/multiply mixing coefficients (``get_ab``).
        severity: image-op magnitudes are ``level ~ U(0.1, severity)``.
        patch_sizes: candidate patch sides; sizes above ``image_size`` are dropped and
            ``image_size`` itself is always appended (pixel-level mixing), see
            :attr:`resolved_patch_sizes`.
        patch_source: ``"mixed"`` (fractal or an image-op of x, 50/50; ImageNet code) or
            ``"fractal"`` (fractal only; CIFAR code).
        all_ops: use all 15 image ops instead of the 10 default ones.
        overflow: ``"wrap"`` (authors: trunc toward zero, mod 256) or ``"clip"`` (PixMix)
            for the uint8 conversion after add/multiply patch mixing.
        image_size: S, the side of the (square) training crop.
        fractal_scale: the fractal bank side is ``round(S * fractal_scale)``; each sample
            takes a random S×S crop of its fractal (256/224 ImageNet, 36/32 CIFAR).
        mean, std: normalization in [0, 1] units, applied on the device.
        jsd: yield (clean, ipmix_a, ipmix_b) per sample and use the JSD consistency loss.
        jsd_lambda: weight of the JSD term.
    """

    k: int = 3
    t: int = 3
    depth_min: int = 0
    beta: float = 4.0
    severity: float = 1.0
    patch_sizes: tuple[int, ...] = (4, 8, 16, 32, 64)
    patch_source: str = "mixed"
    all_ops: bool = False
    overflow: str = "wrap"
    image_size: int = 224
    fractal_scale: float = 256 / 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    jsd: bool = True
    jsd_lambda: float = 12.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "patch_sizes", tuple(int(p) for p in self.patch_sizes))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        _check_int(self, "k", 1, 16)
        _check_int(self, "t", 0, 16)
        _check_int(self, "depth_min", 0, self.t)
        _check_int(self, "image_size", 8, 4096)
        _check_float(self, "beta", 1e-3, 1e3)
        _check_float(self, "severity", 0.1, 30.0)
        _check_float(self, "fractal_scale", 1.0, 4.0)
        _check_float(self, "jsd_lambda", 0.0, 1e4)
        _check_choice(self, "patch_source", PATCH_SOURCES)
        _check_choice(self, "overflow", OVERFLOW_MODES)
        for name in ("all_ops", "jsd"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"IPMixConfig.{name} must be a bool, got {getattr(self, name)!r}")
        if any(p < 2 for p in self.patch_sizes):
            raise ValueError(
                f"IPMixConfig.patch_sizes must all be >= 2 (and are capped at image_size), "
                f"got {self.patch_sizes}"
            )
        for name in ("mean", "std"):
            vals = getattr(self, name)
            if len(vals) != 3:
                raise ValueError(f"IPMixConfig.{name} needs 3 values (RGB), got {vals}")
        if any(not 0.0 < s <= 10.0 for s in self.std):
            raise ValueError(f"IPMixConfig.std values must be in (0, 10], got {self.std}")
        if any(not -10.0 <= m <= 10.0 for m in self.mean):
            raise ValueError(f"IPMixConfig.mean values must be in [-10, 10], got {self.mean}")

    # ------------------------------------------------------------------ derived values
    @property
    def n_ops(self) -> int:
        """Size of the active op list (ids ``0 .. n_ops-1`` of :data:`optable.OP_NAMES`)."""
        return N_ALL_OPS if self.all_ops else N_DEFAULT_OPS

    @property
    def views(self) -> int:
        """Images per sample: 3 in JSD mode (clean first), else 1."""
        return 3 if self.jsd else 1

    @property
    def resolved_patch_sizes(self) -> tuple[int, ...]:
        """Patch sides actually sampled: sizes < S in ascending order, then S."""
        s = self.image_size
        return tuple(sorted({p for p in self.patch_sizes if p < s})) + (s,)

    @property
    def fractal_size(self) -> int:
        """Side F of the fractal bank this config expects (F >= S)."""
        return max(self.image_size, int(round(self.image_size * self.fractal_scale)))

    # ------------------------------------------------------------------ construction
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> IPMixConfig:
        """``"imagenet"`` (authors' ImageNet code, default) or ``"cifar"``, with overrides.

        >>> IPMixConfig.preset("cifar", jsd=False).image_size
        32
        """
        presets = {
            "imagenet": {},
            "cifar": dict(
                beta=3.0,
                severity=3.0,
                patch_sizes=(4, 8, 16, 32),
                patch_source="fractal",
                image_size=32,
                fractal_scale=36 / 32,
                mean=(0.5, 0.5, 0.5),
                std=(0.5, 0.5, 0.5),
            ),
        }
        if name not in presets:
            raise ValueError(f"unknown IPMix preset {name!r}; choose one of {sorted(presets)}")
        return cls.from_dict({**presets[name], **overrides})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> IPMixConfig:
        """Build from a mapping; unknown keys are a ``ValueError`` naming them."""
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown IPMixConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def replace(self, **changes: Any) -> IPMixConfig:
        """A copy with ``changes`` applied (validated like the constructor)."""
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-serialisable values of every field."""
        out = {}
        for f in dataclasses.fields(self):
            if f.init:
                v = getattr(self, f.name)
                out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    # ------------------------------------------------------------------ kernel arguments
    def kernel_args(self) -> tuple[np.ndarray, np.ndarray]:
        """(int64 array, float64 array) consumed by the Numba sampler and kernels.

        Layout is private to :mod:`ipmix_ops.sampling` (``ICFG_*`` / ``FCFG_*`` indices).
        """
        sizes = self.resolved_patch_sizes
        icfg = np.array(
            [
                self.k,
                self.t,
                self.depth_min,
                self.n_ops,
                self.image_size,
                1 if self.patch_source == "mixed" else 0,
                1 if self.overflow == "wrap" else 0,
                len(sizes),
                *sizes,
            ],
            dtype=np.int64,
        )
        fcfg = np.array([self.beta, self.severity], dtype=np.float64)
        return icfg, fcfg


def _check_int(cfg: IPMixConfig, name: str, lo: int, hi: int) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
        raise ValueError(f"IPMixConfig.{name} must be an integer in [{lo}, {hi}], got {v!r}")
    object.__setattr__(cfg, name, int(v))


def _check_float(cfg: IPMixConfig, name: str, lo: float, hi: float) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not lo <= v <= hi:
        raise ValueError(f"IPMixConfig.{name} must be a number in [{lo}, {hi}], got {v!r}")
    object.__setattr__(cfg, name, float(v))


def _check_choice(cfg: IPMixConfig, name: str, choices: tuple[str, ...]) -> None:
    v = getattr(cfg, name)
    if v not in choices:
        raise ValueError(f"IPMixConfig.{name} must be one of {choices}, got {v!r}")
