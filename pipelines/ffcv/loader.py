"""FFCV train and val loaders from a .beton file (``tools/write_beton.py``), with IPMix.

Train image pipeline (the ffcv-imagenet one, with IPMix inserted)::

    KeyedRandomResizedCropDecoder((S, S))  compiled, parallel over the batch
    KeyedRandomHorizontalFlip()             compiled, parallel over the batch
    IPMixOp(bank, cfg)                      only with IPMix: one Python call per batch into
                                            the batch-parallel Numba kernels of ipmix_ops
    ToTensor(), ToDevice(device), ToTorchImage(channels_last=True)   (JSD: no ToTorchImage;
                                            CPU: no ToDevice, the batch is already there)

Val: FFCV's ``CenterCropRGBImageDecoder((S, S), ratio=224/256)``, ``ToTensor``,
``ToDevice``, ``ToTorchImage``. Labels: ``IntDecoder``, ``ToTensor``, ``Squeeze(1)``,
``ToDevice``. uint8 is moved to the device; normalisation (``output="float"``) and the
split of JSD views happen there (:class:`pipelines.contract.Finisher`; the IPMix op writes the
JSD views view-major, so the split copies nothing).

Design choice for IPMix inside FFCV: a non-jitted FFCV op placed after the compiled crop and
flip and before ``ToTensor`` (see :mod:`pipelines.ffcv.ops`). FFCV supports such ops (its
``ToTensor`` is one); the 1.0.2 hang only occurs when a compiled op *follows* a non-compiled
one, which never happens here. IPMix thus runs in FFCV's loader thread, overlapped with
training, batch-parallel on ``num_workers`` Numba threads, with no per-sample Python; the
bank stays an ordinary array. With IPMix off the op is simply absent: the pipeline is
exactly the plain one built by :func:`train_pipeline` with ``cfg=None``.

Crop and flip are keyed by ``(seed, epoch, index)`` instead of FFCV's unseeded Numba RNG, so
the same seed gives the same bytes whatever the thread count; IPMix is keyed the same way.
An error inside IPMix is re-raised in the consumer (FFCV itself would end its loader thread
and leave the consumer waiting forever).

Mid-epoch start (``set_epoch(e, start_batch=k)``, a resume): FFCV's traversal order for
epoch ``e`` is cut to the samples from ``k * batch_size`` on (:class:`StartAt`), so FFCV
neither reads nor decodes the first ``k`` batches; the keyed crops, flips and IPMix make
batches ``k, k+1, ...`` byte for byte those of a full pass. (``order="quasi_random"``:
FFCV's own order there depends on how often it was drawn before, so no restart of a
process reproduces it, with or without this.)

``ipmix_device="cuda"``: the loader threads run exactly the plain pipeline (decode, keyed
crop and flip, uint8 to the device), so their CPU cost per sample is plain FFCV's; the label
pipeline also yields each sample's dataset index (:mod:`pipelines.ffcv.indexed`) and IPMix
runs on the device in the consumer (:mod:`pipelines.device_ipmix`), with the same keys.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

# isort: off
from ._import import keep_torch_threads  # before any ffcv import

# isort: on
import torch
from ffcv.fields.basics import IntDecoder
from ffcv.loader import Loader, OrderOption
from ffcv.pipeline.operation import Operation
from ffcv.transforms import Squeeze, ToDevice, ToTensor, ToTorchImage
from ffcv.traversal_order.base import TraversalOrder
from torch.utils.data import DistributedSampler

from ipmix_ops import IPMixConfig

from ..contract import DEFAULT_CROP_RATIO, EpochLoader, Finisher, LoaderOptions
from ..device_ipmix import DeviceIPMix, make_device_ipmix
from .indexed import indexed_label_pipeline, split_labels
from .ops import (
    CenterCropDecoder,
    EpochCell,
    IPMixOp,
    KeyedRandomHorizontalFlip,
    KeyedRandomResizedCropDecoder,
)

_ORDERS = {
    "random": OrderOption.RANDOM,
    "quasi_random": OrderOption.QUASI_RANDOM,
    "sequential": OrderOption.SEQUENTIAL,
}


class ShardOrder(TraversalOrder):
    """One rank's share of each epoch, by torch's ``DistributedSampler`` rules (padded to a
    multiple of ``world_size``), with rank and world size given instead of read from
    ``torch.distributed`` (FFCV's ``distributed=True`` needs an initialised process group)."""

    def __init__(self, shuffle: bool, rank: int, world_size: int) -> None:
        self.shuffle, self.rank, self.world_size = shuffle, rank, world_size

    def __call__(self, loader: Loader) -> ShardOrder:
        # FFCV calls ``order(loader)`` on the instance it is given
        super().__init__(loader)
        self.sampler = DistributedSampler(
            self.indices,
            num_replicas=self.world_size,
            rank=self.rank,
            shuffle=self.shuffle,
            seed=self.seed,
            drop_last=False,
        )
        return self

    def sample_order(self, epoch: int) -> np.ndarray:
        self.sampler.set_epoch(epoch)
        return self.indices[np.fromiter(iter(self.sampler), np.int64)]


class StartAt:
    """A loader's FFCV traversal order, from sample ``start`` of the epoch on: FFCV's
    ``Loader.__iter__`` draws ``sample_order(epoch)`` and schedules (reads, decodes) only
    what it returns. ``len(loader)`` is unchanged (FFCV counts its first order, drawn at
    construction with ``start=0``)."""

    def __init__(self, inner: TraversalOrder) -> None:
        self.inner, self.start = inner, 0

    def sample_order(self, epoch: int) -> np.ndarray:
        return self.inner.sample_order(epoch)[self.start :]


def to_device(device: torch.device) -> list[Operation]:
    """FFCV's ``ToDevice``, or nothing for the CPU: there it would only copy every batch
    into a second CPU buffer (the batch already lives in the loader's ring buffer)."""
    return [] if device.type == "cpu" else [ToDevice(device, non_blocking=True)]


def label_pipeline(device: torch.device) -> list[Operation]:
    """Labels: int64 ``[B]`` on ``device``."""
    return [IntDecoder(), ToTensor(), Squeeze(1), *to_device(device)]


def train_pipeline(
    opts: LoaderOptions,
    cell: EpochCell,
    cfg: IPMixConfig | None = None,
    bank: np.ndarray | None = None,
) -> list[Operation]:
    """The train image pipeline (module docstring); ``cfg=None``: the plain FFCV pipeline.
    ``opts.ipmix_device="cuda"``: the plain pipeline up to the device, uint8 NHWC crops
    ``[B, S, S, 3]`` (no ``ToTorchImage``), for IPMix there (:mod:`pipelines.ffcv.indexed`)."""
    s = opts.image_size
    ops: list[Operation] = [
        KeyedRandomResizedCropDecoder((s, s), opts.seed, cell, scale=opts.crop_scale),
        KeyedRandomHorizontalFlip(opts.seed, cell),
    ]
    host = cfg is not None and opts.ipmix_device == "cpu"
    if host:
        ops.append(IPMixOp(bank, cfg, opts.seed, cell))
    ops += [ToTensor(), *to_device(opts.device)]
    if cfg is None or (host and cfg.views == 1):
        ops.append(ToTorchImage(channels_last=True, convert_back_int16=False))
    return ops


def val_pipeline(opts: LoaderOptions) -> list[Operation]:
    """The val image pipeline: centre crop of 224/256 of the shorter side, resized to S."""
    s = opts.image_size
    return [
        CenterCropDecoder((s, s), ratio=DEFAULT_CROP_RATIO),
        ToTensor(),
        *to_device(opts.device),
        ToTorchImage(channels_last=True, convert_back_int16=False),
    ]


def ffcv_order(opts: LoaderOptions) -> OrderOption | ShardOrder:
    """FFCV's own order for one rank, :class:`ShardOrder` for several."""
    if opts.world_size > 1:
        return ShardOrder(opts.order != "sequential", opts.rank, opts.world_size)
    return _ORDERS[opts.order]


class FFCVLoader(EpochLoader):
    """Iterable over batches of the contract in :mod:`pipelines.contract`; see there.
    Starts mid-epoch (``set_epoch(e, start_batch=k)``) by cutting FFCV's order
    (:class:`StartAt`). FFCV copies to the device on its own streams and guards its ring
    buffer with events on the consumer's stream: ``prefetches_to_device``."""

    starts_mid_epoch = True
    prefetches_to_device = True

    def __init__(
        self,
        loader: Loader,
        cell: EpochCell,
        finish: Finisher,
        ipmix: IPMixOp | None,
        device_ipmix: DeviceIPMix | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.loader, self.cell, self.finish, self.ipmix = loader, cell, finish, ipmix
        self.device_ipmix, self.device = device_ipmix, device
        self.order = StartAt(loader.traversal_order)
        loader.traversal_order = self.order

    def _check(self, batches: Any) -> None:
        """Raise what went wrong in FFCV's loader thread instead of waiting forever."""
        if self.ipmix is not None and self.ipmix.errors:
            raise RuntimeError("IPMix failed in FFCV's loader thread") from self.ipmix.errors[0]
        if not batches.is_alive() and batches.output_queue.empty():
            raise RuntimeError("FFCV's loader thread ended early (its error is printed above)")

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Any:
        epoch, start = self._start_epoch()
        self.cell.epoch = epoch
        self.loader.next_epoch = epoch
        self.order.start = start * self.loader.batch_size
        try:
            with keep_torch_threads():
                batches = iter(self.loader)  # draws the order: only batches start.. are read
        finally:
            self.order.start = 0
        finished = False
        try:
            while True:
                _wait_for_batch(batches)
                self._check(batches)
                try:
                    images, labels = next(batches)
                except StopIteration:
                    break
                self._check(batches)
                if self.device_ipmix is not None:  # labels [B, 2]: (label, index)
                    labels, indices = split_labels(labels, self.device)
                    images = self.device_ipmix(images, indices, epoch)
                yield self.finish(images, labels)
            finished = True
        finally:
            if not finished:  # the caller broke out: let FFCV's loader thread end
                batches.terminate_event.set()


def _wait_for_batch(batches: Any) -> None:
    """Block until FFCV's loader thread has put a batch (or the end) in its queue, or has
    died: FFCV's own ``next`` waits on the queue forever, so a thread that dies between
    :meth:`FFCVLoader._check` and ``next`` would hang the consumer. A put wakes the wait at
    once; the 0.1 s timeout only bounds how late a dead thread is noticed."""
    q = batches.output_queue
    with q.not_empty:
        while not q._qsize() and batches.is_alive():
            q.not_empty.wait(0.1)


def make_loader(
    data: str | os.PathLike,
    opts: LoaderOptions,
    cfg: IPMixConfig | None = None,
    bank: np.ndarray | None = None,
) -> FFCVLoader:
    """The FFCV loader for ``opts`` (``pipelines.build_loader(pipeline="ffcv")``)."""
    path = os.fspath(data)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such .beton file (write one: tools/write_beton.py)")
    cell = EpochCell()
    image = train_pipeline(opts, cell, cfg, bank) if opts.train else val_pipeline(opts)
    device_ipmix = make_device_ipmix(
        opts.ipmix_device, cfg, bank, opts.seed, opts.device, opts.train
    )
    labels = indexed_label_pipeline() if device_ipmix else label_pipeline(opts.device)
    with keep_torch_threads():
        loader = Loader(
            path,
            batch_size=opts.batch_size,
            num_workers=max(1, opts.num_workers),
            order=ffcv_order(opts),
            os_cache=opts.os_cache,
            seed=opts.seed,
            drop_last=opts.drop_last,
            pipelines={"image": image, "label": labels},
        )
    ipmix = next((op for op in image if isinstance(op, IPMixOp)), None)
    finish = Finisher(opts.output, opts.mean, opts.std, view_major=ipmix is not None)
    return FFCVLoader(loader, cell, finish, ipmix, device_ipmix, opts.device)
