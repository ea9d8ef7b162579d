"""The DALI backend: ImageFolder JPEGs -> DALI graph (decode, keyed crop + flip, IPMix) ->
the batch contract of :mod:`pipelines.contract`.

One graph-building function, :func:`ipmix_pipeline`, with a ``device`` argument:

* ``"cpu"`` (the only one tested here: no GPU on the development machines): CPU decode,
  crop, resize, flip, and IPMix through DALI's Numba plugin (:mod:`pipelines.dali.numba_plugin`),
  which calls the ``ipmix_ops`` kernels: **this is the CPU path**, bit-identical to
  :func:`ipmix_ops.ipmix_apply` on the same crops and records.
* ``"gpu"``: ``device="mixed"`` decode and GPU resize/flip; IPMix as the native DALI operator
  graph of :mod:`pipelines.dali.graph` on the GPU (fractal crops fed by ``fn.external_source``).

``ipmix_impl`` picks the IPMix implementation: ``"numba"`` (the plugin, CPU only, keyed and
bit-identical to ``ipmix_apply``), ``"graph"`` (native operators, CPU or GPU; DALI's own RNG
seeded from ``(seed, epoch, rank)``, same distributions, not the keyed draws) or ``"auto"``
(default: graph on the GPU, Numba on the CPU). With ``"numba"`` on the GPU the graph stays
on the CPU up to the Numba operator and the views are moved with ``.gpu()`` at the end.

Order, shards, keys. Each epoch the file list is built like ``DistributedSampler`` (a
permutation from ``torch.randperm`` seeded with ``seed + epoch``, padded to a multiple of
``world_size``) and laid out so that ``fn.readers.file``'s contiguous shard ``rank`` of
``num_shards = world_size`` holds exactly the sampler's indices for that rank: the DALI and
PyTorch backends visit the same samples in the same order. The reader's ``labels`` are the
dataset indices (class labels are looked up in Python), and every random choice is keyed by
``(seed, epoch, index)``: crop boxes and flips by :mod:`pipelines.keyed` (the same boxes as
the FFCV/PyTorch backends; pixels differ slightly because DALI decodes and resizes with its
own kernels), IPMix records by :mod:`ipmix_ops.sampling`. The graph is rebuilt per epoch
(the epoch is a constant input), so ``set_epoch`` resumes exactly.

``ipmix_device="cuda"`` (``build_loader``'s default on a CUDA device): the graph is the
IPMix-off one (``mixed`` decode, keyed crop and flip on the GPU when the graph is on the GPU)
and the Triton renderer (:mod:`pipelines.device_ipmix`) runs right after the iterator, on
torch's stream, with the reader's dataset indices as keys: the keyed records of the Numba
path. It is not a ``torch_python_function`` inside the graph: the renderer never waits for
the GPU inside a batch, so after the iterator its kernels are queued ahead of the training
step on the same GPU and only its host work (records, tables, ~20 launches: ~1 ms per batch
of 256, see ``ipmix_ops/gpu/README.md``) is on the training thread; inside the graph the same
work would hold the GIL on DALI's executor thread instead, and the graph would gain a
Python operator (not serialisable, synchronised by hand with DALI's stream). Prefetching of
decode, crop and flip is unchanged either way.

Val: resize the shorter side to ``round(S / 0.875)`` (linear, antialiased) + centre crop S.
Output: uint8 views (IPMix is rounded half up to uint8 in the graph); ``output="float"``
normalises after the transfer, on ``opts.device``.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.pipeline import Pipeline
from nvidia.dali.plugin.base_iterator import LastBatchPolicy
from nvidia.dali.plugin.pytorch import DALIGenericIterator

from ipmix_ops import IPMixConfig

from ..contract import DEFAULT_CROP_RATIO, EpochLoader, Finisher, LoaderOptions
from ..datasets.folder import scan_image_folder
from ..device_ipmix import make_device_ipmix
from ..keyed import SCALE
from .numba_plugin import ipmix_views, keyed_crop_params

READER = "Reader"

IPMIX_IMPLS = ("auto", "numba", "graph")


def resolve_ipmix_impl(impl: str, device: str) -> str:
    """``"numba"`` or ``"graph"`` for ``impl`` (``"auto"``: graph on the GPU) on ``device``."""
    if impl not in IPMIX_IMPLS:
        raise ValueError(f"ipmix_impl must be one of {IPMIX_IMPLS}, got {impl!r}")
    if impl == "auto":
        return "graph" if device == "gpu" else "numba"
    return impl


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
    files: list[str],
    indices: list[int],
    *,
    train: bool,
    image_size: int,
    key_seed: int,
    epoch: int,
    shard_id: int = 0,
    num_shards: int = 1,
    device: str = "cpu",
    cfg: IPMixConfig | None = None,
    bank: np.ndarray | None = None,
    ipmix_impl: str = "auto",
    fractal_seed: Any = 0,
    crop_scale: tuple[float, float] = SCALE,
) -> tuple[Any, Any]:
    """The graph: ``(images, index)``; images uint8 ``[S, S, 3]`` per sample, or
    ``[V, S, S, 3]`` with IPMix (``cfg``/``bank``; train only), keyed by
    ``(key_seed, epoch, index)`` (``ipmix_impl="numba"``) or drawn by DALI's generators
    (``"graph"``; fractal crops from ``np.random.default_rng(fractal_seed)``). ``files`` are
    read in order (``indices``: their dataset indices) and split into ``num_shards``
    contiguous shards. The graph implementation needs the pipeline built with
    ``enable_conditionals=True`` (a call-time pipeline argument)."""
    jpegs, index = fn.readers.file(
        files=files,
        labels=indices,
        shard_id=shard_id,
        num_shards=num_shards,
        random_shuffle=False,
        pad_last_batch=True,
        name=READER,
    )
    key = types.Constant(np.array([key_seed, epoch], np.int64), dtype=types.INT64, device="cpu")
    ipmix = cfg is not None and train
    impl = resolve_ipmix_impl(ipmix_impl, device)
    decoder = "mixed" if device == "gpu" and (not ipmix or impl == "graph") else "cpu"
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
        if impl == "graph":
            from .graph import FractalCrops, ipmix_graph_views

            batch = Pipeline.current().max_batch_size
            feed = FractalCrops(bank, cfg.image_size, batch_size=batch, seed=fractal_seed)
            gdev = "gpu" if decoder == "mixed" else "cpu"
            fractals = fn.external_source(source=feed, batch=True, layout="HWC", device=gdev)
            img = ipmix_graph_views(img, fractals, cfg, device=gdev)
        else:
            img = ipmix_views(img, index, key, cfg, bank)
    if device == "gpu" and decoder == "cpu":
        img = img.gpu()
    return img, index


def epoch_order(n: int, *, world_size: int, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    """All ranks' indices of one epoch, rank-major: ``DistributedSampler``'s order and padding
    (``order[r * m:(r + 1) * m]`` is rank ``r``'s list, ``m = ceil(n / world_size)``)."""
    if shuffle:
        g = torch.Generator()
        g.manual_seed(seed + epoch)
        idx = torch.randperm(n, generator=g).numpy()
    else:
        idx = np.arange(n)
    m = math.ceil(n / world_size)
    total = m * world_size
    if total > n:
        idx = np.concatenate([idx, np.resize(idx, total - n)])
    return np.concatenate([idx[r::world_size] for r in range(world_size)]).astype(np.int64)


class DaliLoader(EpochLoader):
    """Iterable over batches of the contract in :mod:`pipelines.contract` (see module doc)."""

    def __init__(
        self,
        data: str | os.PathLike,
        opts: LoaderOptions,
        cfg: IPMixConfig | None,
        bank: np.ndarray | None,
        device: str,
        ipmix_impl: str = "auto",
    ) -> None:
        _, samples, _ = scan_image_folder(data)
        self.files = [p for p, _ in samples]
        self.targets = torch.tensor([label for _, label in samples], dtype=torch.int64)
        self.opts, self.cfg, self.bank, self.device = opts, cfg, bank, device
        self.ipmix_impl = resolve_ipmix_impl(ipmix_impl, device)
        self.per_rank = math.ceil(len(self.files) / opts.world_size)
        self.finish = Finisher(opts.output, opts.mean, opts.std)
        # ipmix_device="cuda": the graph decodes, crops and flips; IPMix after the iterator
        self.device_ipmix = make_device_ipmix(
            opts.ipmix_device, cfg, bank, opts.seed, opts.device, opts.train
        )
        if self.device_ipmix is not None:
            self.cfg = None

    def __len__(self) -> int:
        b = self.opts.batch_size
        return self.per_rank // b if self.opts.drop_last else math.ceil(self.per_rank / b)

    def pipeline(self, epoch: int) -> Any:
        """The (unbuilt) DALI pipeline of ``epoch`` for this rank."""
        o = self.opts
        order = epoch_order(
            len(self.files),
            world_size=o.world_size,
            shuffle=o.train and o.order != "sequential",
            seed=o.seed,
            epoch=epoch,
        )
        dev_id = None
        if self.device == "gpu":
            dev_id = o.device.index if o.device.type == "cuda" and o.device.index else 0
        graph = self.ipmix_impl == "graph" and self.cfg is not None and o.train
        extra: dict[str, Any] = {"ipmix_impl": self.ipmix_impl}
        seed = o.seed
        if graph:  # DALI's generators: a fresh, reproducible stream per (seed, epoch, rank)
            ss = np.random.SeedSequence([o.seed, epoch, o.rank])
            seed = int(ss.generate_state(1)[0] & 0x7FFFFFFF)
            extra.update(enable_conditionals=True, fractal_seed=ss)
        return ipmix_pipeline(
            [self.files[i] for i in order],
            order.tolist(),
            train=o.train,
            image_size=o.image_size,
            crop_scale=o.crop_scale,
            key_seed=o.seed,
            epoch=epoch,
            shard_id=o.rank,
            num_shards=o.world_size,
            device=self.device,
            cfg=self.cfg,
            bank=self.bank,
            batch_size=o.batch_size,
            num_threads=max(1, o.num_workers),
            device_id=dev_id,
            seed=seed,
            **extra,
        )

    def raw_batches(self, epoch: int) -> Any:
        """This rank's batches of ``epoch`` as DALI hands them over: ``(images, index)``,
        images uint8 ``[B, V, S, S, 3]`` (V = 1 without IPMix) in the iterator's reused
        buffers, index int64 ``[B]`` dataset indices on the CPU."""
        n_batches = len(self)
        if n_batches == 0:
            return
        pipe = self.pipeline(epoch)
        policy = LastBatchPolicy.DROP if self.opts.drop_last else LastBatchPolicy.PARTIAL
        it = DALIGenericIterator(
            [pipe], ["images", "index"], reader_name=READER, last_batch_policy=policy
        )
        try:
            for n, out in enumerate(it):
                if n >= n_batches:
                    break
                images = out[0]["images"]
                yield (
                    images.unsqueeze(1) if images.ndim == 4 else images,
                    out[0]["index"].reshape(-1).long().cpu(),
                )
        finally:
            del it, pipe

    def __iter__(self) -> Any:
        epoch = self._start_epoch()
        dev = self.opts.device
        for images, idx in self.raw_batches(epoch):
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
    ipmix_impl: str = "auto",
) -> DaliLoader:
    """The DALI loader for ``opts`` (``pipelines.build_loader(pipeline="dali")``).

    ``device``: ``"cpu"`` or ``"gpu"`` DALI graph (default: GPU when CUDA is available and
    ``opts.device`` is a CUDA device). ``ipmix_impl``: ``"auto"`` (native graph on the GPU,
    Numba plugin on the CPU), ``"numba"`` or ``"graph"`` (see the module docstring).
    """
    if not os.path.isdir(data):
        raise FileNotFoundError(f"{data}: no such ImageFolder directory")
    if cfg is not None and opts.train:
        if bank is None:
            raise ValueError("IPMix needs a fractal bank")
        if cfg.image_size != opts.image_size:
            raise ValueError(f"cfg.image_size {cfg.image_size} != image_size {opts.image_size}")
        bank = np.ascontiguousarray(bank)
    dev = dali_device(device, opts.device)
    return DaliLoader(data, opts, cfg, bank, dev, resolve_ipmix_impl(ipmix_impl, dev))


__all__ = ["IPMIX_IMPLS", "DaliLoader", "dali_device", "decode_crop", "epoch_order",
           "ipmix_pipeline", "make_loader", "resolve_ipmix_impl"]  # fmt: skip
