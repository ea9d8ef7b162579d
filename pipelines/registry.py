"""Backends by name, and :func:`build_loader`, the one entry point for all of them.

``BACKENDS`` maps a pipeline name to the module that implements it; each such module has
``make_loader(data, opts: LoaderOptions, augment: IPMixConfig | None, bank) -> Loader``. The
module is imported when a loader is built, so ``import pipelines`` never imports FFCV, DALI
or torchvision, and no backend imports this module (backends depend on
:mod:`pipelines.contract` only).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

import torch

from fractal_store.store import rank_share_of_cores
from ipmix_ops import IPMixConfig
from ipmix_ops.config import mean_std

from .contract import (
    Loader,
    LoaderOptions,
    resolve_bank,
    resolve_device,
    resolve_ipmix,
)
from .device_ipmix import resolve_ipmix_device
from .keyed import SCALE

BACKENDS = {
    "ffcv": "pipelines.ffcv.loader",  # .beton files, CPU (Numba op inside FFCV)
    "torch": "pipelines.dataloader.loader",  # ImageFolder, torch DataLoader (the reference)
    "dali": "pipelines.dali.loader",  # ImageFolder, GPU or CPU
}
PIPELINES = tuple(BACKENDS)


def backend(pipeline: str) -> ModuleType:
    """The module of backend ``pipeline`` (imported on first use)."""
    if pipeline not in BACKENDS:
        raise ValueError(f"pipeline must be one of {PIPELINES}, got {pipeline!r}")
    return importlib.import_module(BACKENDS[pipeline])


def build_loader(
    pipeline: str,
    data: str | os.PathLike,
    *,
    train: bool,
    batch_size: int,
    image_size: int,
    fractals: Any = None,
    ipmix: IPMixConfig | str | None = None,
    jsd: bool = False,
    seed: int = 0,
    num_workers: int | None = None,
    device: str | torch.device = "auto",
    rank: int = 0,
    world_size: int = 1,
    output: str = "uint8",
    drop_last: bool | None = None,
    order: str = "random",
    os_cache: bool = True,
    crop_scale: tuple[float, float] = SCALE,
    bank_cache: str | os.PathLike | None = None,
    ipmix_device: str = "auto",
    bad_files: str = "error",
) -> Loader:
    """A train or val loader that yields the batch contract of :mod:`pipelines.contract`.

    Args:
        pipeline: ``"ffcv"`` (``data`` is a .beton from ``tools/write_beton.py``) or
            ``"torch"`` and ``"dali"`` (``data`` is an ImageFolder directory).
        train: random-resized-crop + flip (+ IPMix); else a centre crop of 224/256 of the
            shorter side, never IPMix.
        fractals: a fractal store path or a uint8 bank ``[N, F, F, 3]`` (needed with IPMix).
        ipmix: an :class:`~ipmix_ops.IPMixConfig`, a preset name, or None (off).
        jsd: yield ``(clean, aug_a, aug_b)`` per sample (needs ``ipmix``).
        num_workers: FFCV threads, DataLoader processes or DALI threads (default: this
            rank's share of the node's usable cores, ``fractal_store.store.rank_share_of_cores``).
        device: ``"auto"`` (CUDA if available, else CPU), or a torch device.
        rank, world_size: this process's shard of each epoch (DistributedSampler rules).
        drop_last: drop the last incomplete batch (default: True when training).
        order: train order, ``"random"``, ``"quasi_random"`` (FFCV, one rank) or
            ``"sequential"``; val is always sequential.
        os_cache: FFCV: let the OS page cache hold the file (else a process cache).
        crop_scale: train crop area range as fractions of the image, ``(lo, hi)`` with
            ``0 < lo <= hi <= 1`` (torchvision's ``RandomResizedCrop(scale=)``; small
            images such as 32 px sets train better with ``(0.35, 1)`` or more).
        bank_cache: a directory for a verified raw copy of the decoded fractal bank (first
            run: decode and write; later runs: ~10x faster loads; a damaged copy is rebuilt).
        ipmix_device: where IPMix runs: ``"cpu"`` (in the loader's workers), ``"cuda"`` (the
            Triton renderer on the device, after the host-to-device copy of the uint8 crops;
            same keys, so the same views up to 1 level in the warps) or ``"auto"`` (default:
            ``"cuda"`` when ``device`` is CUDA). ``"cuda"`` on a CPU device is a ValueError
            unless Triton's interpreter is selected (``TRITON_INTERPRET=1``, for tests); see
            :mod:`pipelines.device_ipmix`.
        bad_files: ImageFolder backends (torch, DALI): every file's header is read once
            before the first batch; ``"error"`` (default) stops at files that are empty or
            no image, naming them all; ``"skip"`` leaves them out with a warning naming
            them. A .beton holds only files that ``tools/write_beton.py`` checked.
    """
    if pipeline not in BACKENDS:
        raise ValueError(f"pipeline must be one of {PIPELINES}, got {pipeline!r}")
    cfg = resolve_ipmix(ipmix, image_size=image_size, jsd=jsd and train)
    augment = cfg if train else None  # val never augments; it keeps cfg's mean/std
    bank = resolve_bank(fractals, augment, bank_cache) if augment is not None else None
    dev = resolve_device(device)
    opts = LoaderOptions(
        train=train,
        batch_size=batch_size,
        image_size=image_size,
        seed=seed,
        num_workers=rank_share_of_cores() if num_workers is None else num_workers,
        device=dev,
        rank=rank,
        world_size=world_size,
        output=output,
        drop_last=train if drop_last is None else drop_last,
        order=order if train else "sequential",
        os_cache=os_cache,
        crop_scale=crop_scale,
        mean=mean_std(cfg)[0],
        std=mean_std(cfg)[1],
        ipmix_device=resolve_ipmix_device(ipmix_device, dev),
        bad_files=bad_files,
    )
    return backend(pipeline).make_loader(data, opts, augment, bank)
