"""``TrainConfig``: every option of ``train/imagenet.py`` in one frozen, validated dataclass.

Values come from three layers, later ones winning: the defaults below, a YAML recipe
(``--config``; unknown keys are errors) and the command line. Field names are the YAML keys
and, with ``_`` written as ``-``, the command-line flags.

Learning rate: ``lr`` is the peak rate for the global batch ``batch_size`` (split evenly
over the DDP ranks); ``final_lr`` is the absolute rate the per-iteration cosine reaches at
the last step. Neither is rescaled automatically when the batch size changes.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from ipmix_ops import IPMixConfig

PIPELINES = ("dali", "ffcv", "synthetic", "torch")
IPMIX_PRESETS = ("imagenet", "cifar", "none")
DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """A bad option, option combination, recipe file or data path."""


@dataclass(frozen=True)
class TrainConfig:
    """Options of one training run (module docstring for the layering).

    Data: ``pipeline`` reads ``train_data``/``val_data`` (.beton files for ``ffcv``,
    ImageFolder directories for ``torch`` and ``dali``). ``synthetic`` (or ``pipeline`` =
    ``"synthetic"``): random uint8 batches made once on the device instead of a loader (the
    compute-bound ceiling); ``synthetic_steps`` batches per epoch.
    IPMix: on when ``fractals`` is given (preset ``imagenet`` unless ``ipmix_preset`` says
    otherwise; ``bank_cache``, a directory for the decoded bank, makes later starts load it
    ~10x faster; ``ipmix_device``: ``"cpu"`` in the loader, ``"cuda"`` the Triton renderer on
    the GPU after it, ``"auto"`` the GPU when the training device is CUDA); ``jsd`` defaults
    to on with IPMix (the authors' setting), ``jsd_lambda`` to
    the preset's 12.
    Optimiser: SGD (``momentum``, ``nesterov``, ``weight_decay``; with
    ``wd_on_bn_bias=False`` 1-d parameters, i.e. BatchNorm weights and all biases, get none),
    linear warm-up over ``warmup_epochs`` then cosine per iteration from ``lr`` to
    ``final_lr``; ``label_smoothing`` for the cross-entropy.
    Augmentation: ``crop_scale`` = (lo, hi), the area range of the random-resized crop.
    Resolution: train crops of ``image_size``; with ``start_image_size`` the size grows
    linearly from it to ``image_size`` between ``ramp_start_epoch`` and ``ramp_end_epoch``:
    the two ends are the sizes asked, the sizes between them are rounded to a multiple of 32
    (as FFCV-ImageNet's progressive resizing) and kept within the two
    (:meth:`train_sizes` lists them). Val uses ``val_image_size`` (default ``image_size``).
    Run: ``max_steps`` stops after that many optimiser steps in all (the schedule still
    spans ``epochs``); ``resume`` is a checkpoint path, or ``"auto"`` for
    ``out/checkpoint.pt``. A new run (no ``resume``) refuses an ``out`` that holds a run
    unless ``overwrite`` (which deletes that run's files first). A checkpoint resumes only on
    the number of ranks that saved it, unless ``allow_world_size_change`` (then with a
    warning: the run is not exact). ``sync_every``: the ranks agree on a stop request (SIGTERM) and
    the host reads the loss back every that many steps, not after each one.
    """

    pipeline: str = "ffcv"
    train_data: str | None = None
    val_data: str | None = None
    fractals: str | None = None
    bank_cache: str | None = None
    ipmix_device: str = "auto"
    ipmix_preset: str | None = None
    jsd: bool | None = None
    jsd_lambda: float | None = None
    arch: str = "resnet50"
    num_classes: int | None = None
    epochs: int = 16
    batch_size: int = 256
    lr: float = 0.01
    final_lr: float = 5e-7
    warmup_epochs: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    wd_on_bn_bias: bool = True
    label_smoothing: float = 0.0
    crop_scale: tuple[float, float] = (0.08, 1.0)
    image_size: int = 224
    start_image_size: int | None = None
    ramp_start_epoch: int = 0
    ramp_end_epoch: int = 0
    val_image_size: int | None = None
    max_steps: int | None = None
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    out: str = "runs/latest"
    resume: str | None = None
    overwrite: bool = False
    allow_world_size_change: bool = False
    seed: int = 0
    synthetic: bool = False
    synthetic_steps: int = 50
    sync_every: int = 50
    workers: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        _choice(self, "pipeline", PIPELINES)
        _choice(self, "device", DEVICES)
        _choice(self, "ipmix_device", DEVICES)
        if self.ipmix_preset is not None:
            _choice(self, "ipmix_preset", IPMIX_PRESETS)
        for name, lo in (
            ("epochs", 1),
            ("batch_size", 1),
            ("image_size", 8),
            ("synthetic_steps", 1),
            ("sync_every", 1),
            ("ramp_start_epoch", 0),
            ("ramp_end_epoch", 0),
        ):
            _int(self, name, lo)
        for name, lo in (
            ("num_classes", 2),
            ("start_image_size", 8),
            ("val_image_size", 8),
            ("max_steps", 1),
            ("workers", 0),
        ):
            if getattr(self, name) is not None:
                _int(self, name, lo)
        for name in ("lr", "final_lr", "warmup_epochs", "momentum", "weight_decay"):
            _float(self, name, 0.0, 1e6)
        _float(self, "label_smoothing", 0.0, 0.999)
        _crop_scale(self)
        if self.jsd_lambda is not None:
            _float(self, "jsd_lambda", 0.0, 1e4)
        for name in ("nesterov", "wd_on_bn_bias", "amp", "channels_last", "compile"):
            _bool(self, name)
        for name in ("synthetic", "progress", "overwrite", "allow_world_size_change"):
            _bool(self, name)
        if self.jsd is not None:
            _bool(self, "jsd")
        if self.pipeline == "synthetic":  # the same as --synthetic, no loader at all
            if self.val_data is not None:
                raise ConfigError(
                    "--pipeline synthetic has no val loader: drop --val-data, or use "
                    "--synthetic with the --pipeline that reads it"
                )
            object.__setattr__(self, "synthetic", True)
        if self.final_lr > self.lr:
            raise ConfigError(f"final_lr ({self.final_lr}) must not exceed lr ({self.lr})")
        if self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov needs momentum > 0")
        if self.ramp_end_epoch < self.ramp_start_epoch:
            raise ConfigError("ramp_end_epoch must be >= ramp_start_epoch")
        if self.overwrite and self.resume is not None:
            raise ConfigError(
                "--overwrite and --resume contradict each other: --resume continues the run "
                "in --out, --overwrite deletes it"
            )

    # ------------------------------------------------------------------ derived values
    @property
    def ipmix_on(self) -> bool:
        """Whether the train loader applies IPMix."""
        return self.ipmix_preset not in (None, "none") or (
            self.ipmix_preset is None and self.fractals is not None
        )

    @property
    def preset_name(self) -> str | None:
        """The IPMix preset in use, or None when IPMix is off."""
        if not self.ipmix_on:
            return None
        return self.ipmix_preset if self.ipmix_preset is not None else "imagenet"

    @property
    def use_jsd(self) -> bool:
        """JSD mode: three views per sample and the consistency loss."""
        return self.ipmix_on if self.jsd is None else self.jsd

    def train_size(self, epoch: int) -> int:
        """Train crop side in ``epoch``: ``start_image_size`` up to ``ramp_start_epoch``,
        ``image_size`` from ``ramp_end_epoch`` on (both exactly as asked), in between the
        linear ramp rounded to a multiple of 32 and kept between the two ends."""
        if self.start_image_size is None:
            return self.image_size
        lo, hi = self.start_image_size, self.image_size
        a, b = self.ramp_start_epoch, self.ramp_end_epoch
        if epoch <= a or b == a:
            return lo if epoch <= a else hi
        if epoch >= b:
            return hi
        size = lo + (hi - lo) * (epoch - a) / (b - a)
        size = int(round(size / 32)) * 32 if size >= 32 else int(size)
        return min(max(size, min(lo, hi)), max(lo, hi))

    def train_sizes(self) -> dict[int, int]:
        """``{first epoch: train crop side}`` for each size the run trains at, in order."""
        sizes: dict[int, int] = {}
        for epoch in range(self.epochs):
            size = self.train_size(epoch)
            if not sizes or size != list(sizes.values())[-1]:
                sizes[epoch] = size
        return sizes

    @property
    def val_size(self) -> int:
        """Val crop side: ``val_image_size``, else ``image_size``."""
        return self.val_image_size or self.image_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def load_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """The options of a YAML recipe; unknown keys and non-mapping files raise ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"--config {path}: not valid YAML ({e})") from e
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: expected a mapping of options, got {values!r}")
    unknown = sorted(set(values) - set(field_names()))
    if unknown:
        raise ConfigError(
            f"--config {path}: unknown key(s) {unknown}; known keys: {', '.join(field_names())}"
        )
    return values


def make_config(recipe: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """Defaults < ``recipe`` < ``overrides``; wrong types/values raise ConfigError."""
    values = {**(recipe or {}), **overrides}
    try:
        return TrainConfig(**values)
    except TypeError as e:
        raise ConfigError(str(e)) from e


def _choice(cfg: TrainConfig, name: str, choices: tuple[str, ...]) -> None:
    if getattr(cfg, name) not in choices:
        raise ConfigError(f"{name} must be one of {choices}, got {getattr(cfg, name)!r}")


def _int(cfg: TrainConfig, name: str, lo: int) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ConfigError(f"{name} must be an integer >= {lo}, got {v!r}")


def _float(cfg: TrainConfig, name: str, lo: float, hi: float) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise ConfigError(f"{name} must be a number in [{lo}, {hi}], got {v!r}")
    object.__setattr__(cfg, name, float(v))


def _crop_scale(cfg: TrainConfig) -> None:
    from pipelines.keyed import check_crop_scale  # imported here: Numba loads with it

    try:
        object.__setattr__(cfg, "crop_scale", check_crop_scale(cfg.crop_scale))
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _bool(cfg: TrainConfig, name: str) -> None:
    if not isinstance(getattr(cfg, name), bool):
        raise ConfigError(f"{name} must be true or false, got {getattr(cfg, name)!r}")


def ipmix_config(cfg: TrainConfig) -> IPMixConfig | None:
    """The IPMix config of the train loader (None when off)."""
    if not cfg.ipmix_on:
        return None
    from ipmix_ops import IPMixConfig  # imported here: Numba loads with it

    extra = {} if cfg.jsd_lambda is None else {"jsd_lambda": cfg.jsd_lambda}
    return IPMixConfig.preset(cfg.preset_name, image_size=cfg.image_size, jsd=cfg.use_jsd, **extra)
