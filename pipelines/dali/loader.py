"""The DALI backend: ImageFolder JPEGs -> DALI graph (decode, keyed crop + flip, IPMix on the
CPU) or DALI graph + the Triton renderer (IPMix on the GPU) -> the batch contract of
:mod:`pipelines.contract`.

One graph-building function, :func:`ipmix_pipeline`, with a ``device`` argument:

* ``"cpu"`` (the only one tested here: no GPU on the development machines): CPU decode,
  crop, resize, flip, and IPMix through DALI's Numba plugin (:mod:`pipelines.dali.numba_plugin`),
  which calls the ``ipmix_ops`` kernels: bit-identical to :func:`ipmix_ops.ipmix_apply` on
  the same crops and records.
* ``"gpu"``: with ``ipmix_device="cuda"`` (``build_loader``'s default on a CUDA device)
  ``device="mixed"`` decode and the keyed crop, resize and flip on the GPU, and IPMix by the
  Triton renderer right after the iterator (below): **the GPU default**. With
  ``ipmix_device="cpu"`` the graph stays on the CPU up to the Numba operator and the views
  are moved with ``.gpu()`` at the end.

There is no native DALI operator graph of IPMix (there was one, ``ipmix_impl="graph"``,
removed in #18): it drew from DALI's own generators (so no exact resume, and not the
augmentations of the other backends), restated the op formulas a second time beside the op
table, and was host-bound on a GPU (~5,000 operators per JSD batch at ~110 us of fixed cost
each). The keyed Triton renderer does the same work on the GPU from the same records.

Order, shards, keys. Each epoch's order is ``DistributedSampler``'s (a permutation from
``torch.randperm`` seeded with ``seed + epoch``, padded to a multiple of ``world_size``) and
rank ``rank`` reads its contiguous shard of it: the DALI and PyTorch backends visit the same
samples in the same order. The graph carries dataset indices (class labels are looked up in
Python), and every random choice is keyed by ``(seed, epoch, index)``: crop boxes and flips
by :mod:`pipelines.keyed` (the same boxes as the FFCV/PyTorch backends; pixels differ
slightly because DALI decodes and resizes with its own kernels), IPMix records by
:mod:`ipmix_ops.sampling`. The epoch is an input: the pipeline is built once and fed each
epoch's paths, indices and keys by :class:`~pipelines.dali.feed.EpochFeed` (files read by
``fn.io.file.read`` on DALI's threads), so ``set_epoch`` resumes exactly without a rebuild,
and ``set_epoch(e, start_batch=k)`` starts the pass at batch k: the feed hands the graph
only batches k, k+1, ..., so the files of the k batches before are never read or decoded.

``ipmix_device="cuda"``: the graph is the IPMix-off one and the Triton renderer
(:mod:`pipelines.device_ipmix`) runs right after the iterator, on torch's stream, with the
reader's dataset indices as keys: the keyed records of the Numba path. It is not a
``torch_python_function`` inside the graph: the renderer never waits for the GPU inside a
batch, so after the iterator its kernels are queued ahead of the training step on the same
GPU and only its host work (records, tables, ~20 launches: ~1 ms per batch of 256, see
``ipmix_ops/gpu/README.md``) is on the training thread; inside the graph the same work would
hold the GIL on DALI's executor thread instead, and the graph would gain a Python operator
(not serialisable, synchronised by hand with DALI's stream). Prefetching of decode, crop and
flip is unchanged either way.

Val: resize the shorter side to ``round(S / 0.875)`` (linear, antialiased) + centre crop S.
Output: uint8 views (IPMix is rounded half up to uint8); ``output="float"`` normalises after
the transfer, on ``opts.device``.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.plugin.pytorch import DALIGenericIterator

from ipmix_ops import IPMixConfig

from ..contract import DEFAULT_CROP_RATIO, EpochLoader, Finisher, LoaderOptions
from ..datasets.folder import check_image_files, scan_image_folder
from ..device_ipmix import make_device_ipmix
from ..keyed import SCALE
from .feed import EpochFeed, epoch_order
from .numba_plugin import ipmix_views, keyed_crop_params


def dali_device(device: str | None = None, torch_device: torch.device | None = None) -> str:
    """``"gpu"`` when CUDA is available (and ``torch_device`` is not the CPU), else ``"cpu"``;
    an explicit ``device`` wins."""
    if device is not None:
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
        return device
    if torch_device is not None and torch_device.type != "cuda":
        return "cpu"
    return "gpu" if torch.cuda.is_available() else "cpu"


def decode_crop(
    jpegs: Any,
    index: Any,
    key: Any,
    *,
    train: bool,
    image_size: int,
    decoder_device: str = "cpu",
    crop_scale: tuple[float, float] = SCALE,
) -> Any:
    """Decode + keyed random-resized-crop + flip (train) or resize + centre crop (val).

    ``index``: int32 ``[1]`` dataset indices; ``key``: int64 ``[2]`` node ``(seed, epoch)``.
    """
    s = image_size
    if not train:
        img = fn.decoders.image(jpegs, device=decoder_device, output_type=types.RGB)
        img = fn.resize(
            img,
            resize_shorter=round(s / DEFAULT_CROP_RATIO),
            interp_type=types.INTERP_LINEAR,
            antialias=True,
        )
        return fn.crop(img, crop=(s, s))
    p = keyed_crop_params(fn.peek_image_shape(jpegs), index, key, crop_scale)
    img = fn.decoders.image_slice(
        jpegs,
        p[0:2],
        p[2:4],
        axes=[0, 1],
        normalized_anchor=False,
        normalized_shape=False,
        device=decoder_device,
        output_type=types.RGB,
    )
    img = fn.resize(img, size=[s, s], interp_type=types.INTERP_LINEAR, antialias=True)
    return fn.flip(img, horizontal=fn.cast(p[4], dtype=types.INT32))


@pipeline_def
def ipmix_pipeline(
    feed: EpochFeed,
    *,
    train: bool,
    image_size: int,
    device: str = "cpu",
    cfg: IPMixConfig | None = None,
    bank: np.ndarray | None = None,
    crop_scale: tuple[float, float] = SCALE,
) -> tuple[Any, Any]:
    """The graph: ``(images, index)``; images uint8 ``[S, S, 3]`` per sample, or
    ``[V, S, S, 3]`` with IPMix (``cfg``/``bank``; train only; the Numba plugin on the CPU,
    keyed by ``(seed, epoch, index)``). ``feed`` (:class:`~pipelines.dali.feed.EpochFeed`)
    gives each batch's file paths, dataset indices and ``(seed, epoch)`` keys, so one built
    pipeline serves every epoch. On ``device="gpu"`` without IPMix: ``mixed`` decode and the
    crop, resize and flip on the GPU."""
    path, index, key = fn.external_source(
        source=feed, num_outputs=3, batch=True, dtype=[types.UINT8, types.INT32, types.INT64]
    )
    jpegs = fn.io.file.read(path)
    ipmix = cfg is not None and train
    decoder = "mixed" if device == "gpu" and not ipmix else "cpu"
    img = decode_crop(
        jpegs,
        index,
        key,
        train=train,
        image_size=image_size,
        decoder_device=decoder,
        crop_scale=crop_scale,
    )
    if ipmix:
        if bank is None:
            raise ValueError("IPMix needs a fractal bank")
        img = ipmix_views(img, index, key, cfg, bank)
    if device == "gpu" and decoder == "cpu":
        img = img.gpu()
    return img, index


class DaliLoader(EpochLoader):
    """Iterable over batches of the contract in :mod:`pipelines.contract` (see module doc).
    Starts mid-epoch (``set_epoch(e, start_batch=k)``) by feeding the graph only the batches
    from k on."""

    starts_mid_epoch = True

    def __init__(
        self,
        data: str | os.PathLike,
        opts: LoaderOptions,
        cfg: IPMixConfig | None,
        bank: np.ndarray | None,
        device: str,
    ) -> None:
        _, samples, _ = scan_image_folder(data)
        samples = check_image_files(samples, bad_files=opts.bad_files)  # names bad files
        self.files = [p for p, _ in samples]
        self.targets = torch.tensor([label for _, label in samples], dtype=torch.int64)
        self.opts, self.cfg, self.bank, self.device = opts, cfg, bank, device
        self.per_rank = math.ceil(len(self.files) / opts.world_size)
        self.finish = Finisher(opts.output, opts.mean, opts.std)
        # ipmix_device="cuda": the graph decodes, crops and flips; IPMix after the iterator
        self.device_ipmix = make_device_ipmix(
            opts.ipmix_device, cfg, bank, opts.seed, opts.device, opts.train
        )
        if self.device_ipmix is not None:
            self.cfg = None
        self.builds = 0  # pipelines built: one for every epoch
        self._it: DALIGenericIterator | None = None
        self._feed: EpochFeed | None = None
        self._in_epoch = False

    def __len__(self) -> int:
        """Batches in a full pass (also while a pass that started mid-epoch runs)."""
        b = self.opts.batch_size
        return self.per_rank // b if self.opts.drop_last else math.ceil(self.per_rank / b)

    def pipeline(self, epoch: int, start_batch: int = 0) -> Any:
        """The (unbuilt) DALI pipeline for this rank, its feed set to ``epoch`` from batch
        ``start_batch`` on; one pipeline serves every epoch."""
        o = self.opts
        dev_id = None
        if self.device == "gpu":
            dev_id = o.device.index if o.device.type == "cuda" and o.device.index else 0
        feed = EpochFeed(
            self.files,
            batch_size=o.batch_size,
            n_batches=len(self),
            rank=o.rank,
            world_size=o.world_size,
            shuffle=o.train and o.order != "sequential",
            seed=o.seed,
        )
        feed.start(epoch, start_batch)
        self.builds += 1
        self._feed = feed
        return ipmix_pipeline(
            feed,
            train=o.train,
            image_size=o.image_size,
            crop_scale=o.crop_scale,
            device=self.device,
            cfg=self.cfg,
            bank=self.bank,
            batch_size=o.batch_size,
            num_threads=max(1, o.num_workers),
            device_id=dev_id,
            seed=o.seed,
        )

    def _iterator(self, epoch: int, start_batch: int) -> DALIGenericIterator:
        """The iterator over ``epoch`` from batch ``start_batch``: the pipeline's first
        build, or the built one reset with its feed set to ``epoch`` (an unfinished epoch is
        stopped and its prefetched batches drained first)."""
        if self._it is None:
            self._it = DALIGenericIterator([self.pipeline(epoch, start_batch)], ["images", "index"])
            self._in_epoch = True
            return self._it
        if self._in_epoch:
            self._feed.stop()
            for _ in self._it:
                pass
        self._feed.start(epoch, start_batch)
        self._it.reset()
        self._in_epoch = True
        return self._it

    def raw_batches(self, epoch: int, start_batch: int = 0) -> Any:
        """This rank's batches ``start_batch, ...`` of ``epoch`` as DALI hands them over:
        ``(images, index)``, images uint8 ``[B, V, S, S, 3]`` (V = 1 without IPMix) in the
        iterator's reused buffers, index int64 ``[B]`` dataset indices on the CPU. The
        batches before ``start_batch`` are never fed to the graph (nor read, nor decoded)."""
        n_batches = len(self)
        if start_batch == n_batches:  # nothing left of this epoch (0 batches: no epoch)
            return
        b = self.opts.batch_size
        last = self.per_rank - (n_batches - 1) * b  # the padded last batch keeps this many
        for n, out in enumerate(self._iterator(epoch, start_batch), start_batch):
            images, index = out[0]["images"], out[0]["index"].reshape(-1).long().cpu()
            if n == n_batches - 1 and last < b:
                images, index = images[:last], index[:last]
            yield images.unsqueeze(1) if images.ndim == 4 else images, index
        self._in_epoch = False

    def __iter__(self) -> Any:
        epoch, start = self._start_epoch()
        dev = self.opts.device
        for images, idx in self.raw_batches(epoch, start):
            if self.device_ipmix is not None:  # a new tensor: no copy of DALI's buffer needed
                images = self.device_ipmix(images.to(dev), idx.numpy(), epoch)
            else:  # the iterator reuses its output buffers: hand out our own copy
                images = images.to(dev) if images.device != dev else images.clone()
            yield self.finish(images, self.targets[idx].to(dev))


def make_loader(
    data: str | os.PathLike,
    opts: LoaderOptions,
    cfg: IPMixConfig | None = None,
    bank: np.ndarray | None = None,
    *,
    device: str | None = None,
) -> DaliLoader:
    """The DALI loader for ``opts`` (``pipelines.build_loader(pipeline="dali")``).

    ``device``: ``"cpu"`` or ``"gpu"`` DALI graph (default: GPU when CUDA is available and
    ``opts.device`` is a CUDA device). Where IPMix runs is ``opts.ipmix_device`` (the
    module docstring); there is no other choice of implementation.
    """
    if not os.path.isdir(data):
        raise FileNotFoundError(f"{data}: no such ImageFolder directory")
    if cfg is not None and opts.train:
        if bank is None:
            raise ValueError("IPMix needs a fractal bank")
        if cfg.image_size != opts.image_size:
            raise ValueError(f"cfg.image_size {cfg.image_size} != image_size {opts.image_size}")
        bank = np.ascontiguousarray(bank)
    return DaliLoader(data, opts, cfg, bank, dali_device(device, opts.device))


__all__ = ["DaliLoader", "dali_device", "decode_crop", "epoch_order", "ipmix_pipeline",
           "make_loader"]  # fmt: skip
