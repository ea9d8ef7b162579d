"""The reference pipeline, as a user would write it today: the baseline of every speed claim.

torchvision ``ImageFolder`` (Pillow decode) + ``DataLoader`` worker processes; per sample,
torchvision's random-resized-crop to S and horizontal flip on the PIL image, then the
authors' per-sample IPMix (:func:`ipmix_ops.reference.ipmix`, Pillow ops) for each view,
with the view's record from :func:`ipmix_ops.sampling.sample_record` keyed by
``(seed, epoch, index, view)`` (JSD: view 0 is the clean crop, views 1 and 2 IPMix, as in
``ipmix_batch``). The float mix is rounded half up to uint8, like the fast path.
With ``ipmix_device="cuda"`` the workers return only the crops and their dataset indices
(:class:`IndexedCrops`) and IPMix runs on the device after the copy, with the same keys
(:mod:`pipelines.device_ipmix`; the Triton renderer realises the fast path's records).
Val: ``Resize(round(S / 0.875))`` + ``CenterCrop(S)`` (224/256 of the shorter side).

Bad files: every file's header is read once when the loader is built
(:func:`pipelines.datasets.folder.check_image_files`): a file that is empty or no image
stops it with an error naming every such file (``bad_files="skip"``: left out, with a
warning naming them). A file whose pixels fail later (truncated data) raises in the worker
with its path in the message.

One change to the plain recipe, for reproducibility: the crop box and the flip are drawn
by :mod:`pipelines.keyed` from ``(seed, epoch, index)`` (the rule and defaults of
``RandomResizedCrop``; the FFCV pipeline's boxes when its .beton keeps the picture size)
and applied with torchvision's ``resized_crop``/``hflip``, which is what
``RandomResizedCrop`` and ``RandomHorizontalFlip`` do after drawing from the global torch
RNG. The same seed thus gives the same bytes whatever the number of workers. (Re-seeding
the torch RNG per sample instead would cost ~0.5 ms per sample.) Batches leave the workers
as uint8 ``[B, V, S, S, 3]`` and follow the common contract (:mod:`pipelines.contract`).
"""

from __future__ import annotations

import ctypes
import itertools
import multiprocessing
import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchvision import transforms as T
from torchvision.datasets import ImageFolder
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from ipmix_ops import IPMixConfig, reference
from ipmix_ops.sampling import REC, sample_record

from ..contract import DEFAULT_CROP_RATIO, EpochLoader, Finisher, LoaderOptions
from ..datasets.folder import check_image_files
from ..device_ipmix import DeviceIPMix, make_device_ipmix
from ..keyed import RATIO, SCALE, check_crop_scale, keyed_crop, keyed_flip

_SCALE, _RATIO = np.array(SCALE), np.array(RATIO)


class IPMixImageFolder(Dataset):
    """ImageFolder samples as ``(uint8 [V, S, S, 3], label)``; V = 3 in JSD mode, else 1.

    ``epoch`` is shared with the worker processes (set it before iterating).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        train: bool,
        image_size: int,
        seed: int = 0,
        cfg: IPMixConfig | None = None,
        bank: np.ndarray | None = None,
        crop_scale: tuple[float, float] = SCALE,
        bad_files: str = "error",
    ) -> None:
        self.folder = ImageFolder(os.fspath(root))
        samples = check_image_files(self.folder.samples, bad_files=bad_files)
        self.folder.samples = self.folder.imgs = samples
        self.folder.targets = [label for _, label in samples]
        self.scale = np.array(check_crop_scale(crop_scale), np.float64)
        self.train, self.seed, self.cfg, self.bank = train, int(seed), cfg, bank
        self._epoch = multiprocessing.RawValue(ctypes.c_int64, 0)
        self.size = s = image_size
        self.val_transform = T.Compose([T.Resize(round(s / DEFAULT_CROP_RATIO)), T.CenterCrop(s)])

    @property
    def epoch(self) -> int:
        return int(self._epoch.value)

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch.value = int(value)

    def __len__(self) -> int:
        return len(self.folder)

    def crop(self, index: int, epoch: int) -> np.ndarray:
        """The decoded, cropped (and flipped) sample: uint8 ``[S, S, 3]``."""
        path = self.folder.samples[index][0]
        try:
            img = self.folder.loader(path)
        except Exception as e:
            raise RuntimeError(f"{path}: cannot decode ({type(e).__name__}: {e})") from e
        if not self.train:
            return np.asarray(self.val_transform(img), np.uint8)
        w, h = img.size
        top, left, ch, cw = keyed_crop(h, w, self.scale, _RATIO, self.seed, epoch, index)
        img = TF.resized_crop(
            img, top, left, ch, cw, [self.size, self.size], InterpolationMode.BILINEAR
        )
        if keyed_flip(self.seed, epoch, index, 0.5):
            img = TF.hflip(img)
        return np.asarray(img, np.uint8)

    def ipmix_view(self, x: np.ndarray, index: int, epoch: int, view: int) -> np.ndarray:
        """The authors' IPMix of ``x`` for key ``(seed, epoch, index, view)``, uint8."""
        rec = sample_record(
            self.cfg,
            (self.seed, epoch, index, view),
            n_fractals=len(self.bank),
            fractal_size=self.bank.shape[1],
        )
        mix = reference.ipmix(x, self.bank[int(rec[REC.fidx])], self.cfg, rec)
        return np.clip(np.floor(mix + np.float32(0.5)), 0, 255).astype(np.uint8)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        epoch = self.epoch
        x = self.crop(index, epoch)
        label = self.folder.targets[index]
        if self.cfg is None or not self.train:
            return x[None], label
        if self.cfg.jsd:
            views = [x] + [self.ipmix_view(x, index, epoch, v) for v in (1, 2)]
        else:
            views = [self.ipmix_view(x, index, epoch, 0)]
        return np.stack(views), label


class IndexedCrops(IPMixImageFolder):
    """The crops (IPMix off) as ``(uint8 [1, S, S, 3], label, index)``: the host side of
    ``ipmix_device="cuda"``, which renders IPMix on the device with the batch's indices."""

    def __getitem__(self, index: int) -> tuple[np.ndarray, int, int]:
        return (*super().__getitem__(index), index)


def collate(samples: list[tuple]) -> tuple[torch.Tensor, ...]:
    """uint8 ``[B, V, S, S, 3]`` and int64 ``[B]`` (and int64 ``[B]`` dataset indices for
    :class:`IndexedCrops`)."""
    images = torch.from_numpy(np.stack([s[0] for s in samples]))
    rest = (
        torch.tensor([s[i] for s in samples], dtype=torch.int64) for i in range(1, len(samples[0]))
    )
    return images, *rest


class StartableSampler(DistributedSampler):
    """``DistributedSampler`` whose pass leaves out its first ``skip`` indices (a resume
    mid-epoch: those samples are never read)."""

    skip: int = 0

    def __iter__(self) -> Any:
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return super().__len__() - self.skip


class TorchLoader(EpochLoader):
    """Iterable over batches of the contract in :mod:`pipelines.contract`; see there.
    Starts mid-epoch (``set_epoch(e, start_batch=k)``) by slicing the sampler's order."""

    starts_mid_epoch = True

    def __init__(
        self,
        dataset: IPMixImageFolder,
        sampler: DistributedSampler,
        loader: DataLoader,
        finish: Finisher,
        device: torch.device,
        device_ipmix: DeviceIPMix | None = None,
    ) -> None:
        self.dataset, self.sampler, self.loader = dataset, sampler, loader
        self.finish, self.device, self.device_ipmix = finish, device, device_ipmix

    def __len__(self) -> int:
        """Batches in a full pass (also while a pass that started mid-epoch runs)."""
        n, b = self.sampler.num_samples, self.loader.batch_size
        return n // b if self.loader.drop_last else -(-n // b)

    def __iter__(self) -> Any:
        epoch, start = self._start_epoch()
        self.dataset.epoch = epoch
        self.sampler.set_epoch(epoch)
        self.sampler.skip = start * self.loader.batch_size
        try:
            for images, labels, *index in self.loader:
                images = images.to(self.device, non_blocking=True)
                if self.device_ipmix is not None:  # IndexedCrops: IPMix here, on the device
                    images = self.device_ipmix(images, index[0].numpy(), epoch)
                yield self.finish(images, labels.to(self.device, non_blocking=True))
        finally:
            self.sampler.skip = 0


def make_loader(
    data: str | os.PathLike,
    opts: LoaderOptions,
    cfg: IPMixConfig | None = None,
    bank: np.ndarray | None = None,
) -> TorchLoader:
    """The PyTorch loader for ``opts`` (``pipelines.build_loader(pipeline="torch")``)."""
    if not os.path.isdir(data):
        raise FileNotFoundError(f"{data}: no such ImageFolder directory")
    keyed_crop(8, 8, _SCALE, _RATIO, 0, 0, 0)  # load the Numba helpers before workers fork
    keyed_flip(0, 0, 0, 0.5)
    if cfg is not None:
        sample_record(cfg, (0, 0, 0, 0), n_fractals=len(bank), fractal_size=bank.shape[1])
    device_ipmix = make_device_ipmix(
        opts.ipmix_device, cfg, bank, opts.seed, opts.device, opts.train
    )
    dataset = (IndexedCrops if device_ipmix else IPMixImageFolder)(
        data,
        train=opts.train,
        image_size=opts.image_size,
        seed=opts.seed,
        cfg=None if device_ipmix else cfg,
        bank=None if device_ipmix else bank,
        crop_scale=opts.crop_scale,
        bad_files=opts.bad_files,
    )
    sampler = StartableSampler(
        dataset,
        num_replicas=opts.world_size,
        rank=opts.rank,
        shuffle=opts.train and opts.order != "sequential",
        seed=opts.seed,
        drop_last=False,
    )
    loader = DataLoader(
        dataset,
        batch_size=opts.batch_size,
        sampler=sampler,
        num_workers=opts.num_workers,
        collate_fn=collate,
        pin_memory=opts.device.type == "cuda",
        drop_last=opts.drop_last,
        persistent_workers=opts.num_workers > 0,
    )
    finish = Finisher(opts.output, opts.mean, opts.std)
    return TorchLoader(dataset, sampler, loader, finish, opts.device, device_ipmix)


__all__ = [
    "IPMixImageFolder",
    "IndexedCrops",
    "StartableSampler",
    "TorchLoader",
    "collate",
    "make_loader",
]
