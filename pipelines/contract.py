"""The batch contract and the options every backend shares (this module imports no
backend; :func:`pipelines.build_loader` picks one by name, see :mod:`pipelines.registry`).

The batch contract (the same for every backend, for the same options):

* ``(images, labels)``, or ``((clean, aug_a, aug_b), labels)`` when ``jsd=True``;
* images: NCHW ``[B, 3, S, S]`` in ``torch.channels_last`` memory format, on ``device``;
  ``output="uint8"``: uint8 in [0, 255]; ``output="float"``: float32 normalised with the
  IPMix config's ``mean``/``std`` (ImageNet's when IPMix is off), i.e. ``(x/255 - mean)/std``;
* labels: int64 ``[B]`` on ``device``;
* ``len(loader)`` is the number of batches of one epoch for this rank.

Every random choice (crop, flip, IPMix) is keyed by ``(seed, epoch, dataset index)``. The
loader starts at epoch 0 and advances one epoch per pass; ``set_epoch(e)`` makes the next
pass epoch ``e`` (e.g. when resuming). Batches of the FFCV backend live in the loader's ring
buffer: use them (or copy them) before asking for ``batches_ahead`` more batches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from ipmix_ops import IPMixConfig
from ipmix_ops.config import IMAGENET_MEAN, IMAGENET_STD

from .keyed import SCALE, check_crop_scale

OUTPUTS = ("uint8", "float")
ORDERS = ("random", "quasi_random", "sequential")
DEFAULT_CROP_RATIO = 224 / 256  # validation: centre crop of 224/256 of the shorter side


class Loader(Protocol):
    """What :func:`build_loader` returns."""

    epoch: int

    def __len__(self) -> int: ...
    def __iter__(self) -> Any: ...
    def set_epoch(self, epoch: int) -> None: ...


class EpochLoader:
    """Epoch bookkeeping shared by the backends: pass n runs epoch n, unless
    :meth:`set_epoch` says otherwise (e.g. when resuming).

    A backend with ``starts_mid_epoch = True`` honours ``set_epoch(e, start_batch=k)``: the
    next pass yields batches k, k+1, ... of epoch e (the keyed order and augmentation make
    them the same as in a full pass) without reading the k before them. Others raise.
    """

    epoch: int = 0
    start_batch: int = 0
    starts_mid_epoch: bool = False

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Make the next pass epoch ``epoch`` (order, crops and IPMix keys), from batch
        ``start_batch`` (0-based) on."""
        if start_batch and not self.starts_mid_epoch:
            raise ValueError(
                f"{type(self).__name__} cannot start a pass at batch {start_batch}: "
                "draw and drop the batches before it instead"
            )
        if start_batch and not 0 <= start_batch <= len(self):  # type: ignore[arg-type]
            raise ValueError(f"start_batch must be in [0, {len(self)}], got {start_batch}")
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def _start_epoch(self) -> tuple[int, int]:
        """``(epoch, start_batch)`` of the pass that starts now; advances the epoch counter
        and clears ``start_batch``, so the passes after it are whole."""
        epoch, start = self.epoch, self.start_batch
        self.epoch, self.start_batch = epoch + 1, 0
        return epoch, start


@dataclass(frozen=True)
class LoaderOptions:
    """Options shared by every backend (validated; see :func:`build_loader`)."""

    train: bool
    batch_size: int
    image_size: int
    seed: int = 0
    num_workers: int = 1
    device: torch.device = torch.device("cpu")
    rank: int = 0
    world_size: int = 1
    output: str = "uint8"
    drop_last: bool = True
    order: str = "random"
    os_cache: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_scale: tuple[float, float] = SCALE
    ipmix_device: str = "cpu"  # where IPMix runs: "cpu" (in the loader) or "cuda" (after it)
    bad_files: str = "error"  # ImageFolder files that fail the header check: "error" or "skip"

    def __post_init__(self) -> None:
        object.__setattr__(self, "crop_scale", check_crop_scale(self.crop_scale))
        for name, lo in (("batch_size", 1), ("image_size", 8), ("num_workers", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if not 1 <= self.world_size or not 0 <= self.rank < self.world_size:
            raise ValueError(
                f"need world_size >= 1 and 0 <= rank < world_size, got rank={self.rank}, "
                f"world_size={self.world_size}"
            )
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        if self.ipmix_device not in ("cpu", "cuda"):
            raise ValueError(f"ipmix_device must be 'cpu' or 'cuda', got {self.ipmix_device!r}")
        if self.bad_files not in ("error", "skip"):
            raise ValueError(f"bad_files must be 'error' or 'skip', got {self.bad_files!r}")
        if self.order == "quasi_random" and self.world_size > 1:
            raise ValueError("order='quasi_random' is not available with world_size > 1")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; anything else as ``torch.device``."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_ipmix(
    ipmix: IPMixConfig | str | None, *, image_size: int, jsd: bool
) -> IPMixConfig | None:
    """The IPMix config of a loader, or None (off). A preset name or a config; the loader's
    ``image_size`` and ``jsd`` override the config's (IPMix runs on the loader's crops)."""
    if ipmix is None:
        if jsd:
            raise ValueError("jsd=True needs IPMix views: pass ipmix= (a preset name or config)")
        return None
    if isinstance(ipmix, str):
        return IPMixConfig.preset(ipmix, image_size=image_size, jsd=jsd)
    if isinstance(ipmix, IPMixConfig):
        return ipmix.replace(image_size=image_size, jsd=jsd)
    raise TypeError(f"ipmix must be an IPMixConfig, a preset name or None, got {ipmix!r}")


def resolve_bank(
    fractals: Any, cfg: IPMixConfig, cache_dir: str | os.PathLike | None = None
) -> np.ndarray:
    """The fractal bank: uint8 ``[N, F, F, 3]`` (F >= S), C-contiguous.

    ``fractals``: a uint8 array, a path to a ``fractal_store`` file (loaded at
    ``cfg.fractal_size``), or an object with ``load_bank(size=...)``. ``cache_dir``: keep a
    verified raw copy of a store's decoded bank there (:mod:`fractal_store.bank_cache`):
    the first run decodes and writes it, later runs read it ~10x faster.
    """
    if fractals is None:
        raise ValueError("IPMix needs fractals=: a fractal store path or a uint8 bank")
    cache = {} if cache_dir is None else {"cache_dir": cache_dir}
    if isinstance(fractals, (str, os.PathLike)):
        import fractal_store

        with fractal_store.open(fractals) as store:
            fractals = store.load_bank(size=cfg.fractal_size, **cache)
    elif hasattr(fractals, "load_bank"):
        fractals = fractals.load_bank(size=cfg.fractal_size, **cache)
    bank = np.asarray(fractals)
    s = cfg.image_size
    if (
        bank.dtype != np.uint8
        or bank.ndim != 4
        or bank.shape[-1] != 3
        or len(bank) == 0
        or bank.shape[1] != bank.shape[2]
        or bank.shape[1] < s
    ):
        raise ValueError(
            f"fractals must be a non-empty uint8 [N, F, F, 3] bank with F >= {s}, "
            f"got {bank.dtype} {bank.shape}"
        )
    return np.ascontiguousarray(bank)


class Normalise:
    """NCHW images (uint8 or float in [0, 255]) -> float32 ``(x / 255 - mean) / std``, the
    one normalisation of loaders, trainer and evaluation; ``mean``/``std`` RGB fractions of
    255 (:func:`ipmix_ops.config.mean_std`). The constants follow the input's device."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean.device != x.device:
            self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
        return x.to(torch.float32).sub_(self.mean).div_(self.std)


class Finisher:
    """The device-side end of every backend: views to NCHW channels-last, optional
    normalisation. Input: uint8 ``[B, V, S, S, 3]`` (NHWC per view) or an NCHW batch.

    ``view_major``: a ``[B, V, S, S, 3]`` input whose memory holds ``[V, B, S, S, 3]`` (the
    FFCV IPMix op writes JSD views so): every view is then already a contiguous NHWC batch
    and is handed out as a channels-last view of it, with no copy."""

    def __init__(
        self,
        output: str,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        view_major: bool = False,
    ) -> None:
        self.output, self.view_major = output, view_major
        self._normalise = Normalise(mean, std)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[Any, torch.Tensor]:
        if images.ndim == 5 and self.view_major:
            b, v = images.shape[:2]
            by_view = images.view(v, b, *images.shape[2:])
            views = [by_view[i].permute(0, 3, 1, 2) for i in range(v)]
        elif images.ndim == 5:
            v = images.shape[1]
            views = [images[:, i].permute(0, 3, 1, 2) for i in range(v)]
            if v > 1:
                views = [x.contiguous(memory_format=torch.channels_last) for x in views]
        else:
            views = [images]
        if self.output == "float":
            views = [self._normalise(x) for x in views]
        return (tuple(views) if len(views) > 1 else views[0]), labels.reshape(-1)
