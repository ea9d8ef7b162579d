"""``IPMix``: a torchvision-style transform for people who keep a plain PyTorch DataLoader.

It runs the compiled fast path on one sample at a time (still far cheaper than the authors'
Pillow chain). For full speed use a batched pipeline (``pipelines.build_loader``).

Two ways to key the draws (the contract; README "Using IPMix"):

- keyed, reproducible: ``IPMixDataset(dataset, ipmix)`` (or ``ipmix(img, index=i)`` in your
  own ``Dataset``) and ``set_epoch(e)`` before iterating epoch ``e``, like
  ``DistributedSampler.set_epoch``. View ``v`` of sample ``i`` is keyed by
  ``(seed, epoch, i, v)``, exactly as in every batched loader: the bytes equal
  ``ipmix_batch(img[None], bank, cfg, seed=seed, epoch=e, indices=[i])[0]`` whatever the
  worker count, persistence or order.
- plain, ``ipmix(img)``: each process keeps a counter on a stream of its own, which never
  repeats from one epoch to the next: a DataLoader worker keys its stream by torch's worker
  seed (new for every epoch's workers unless they are persistent, whose counters go on), the
  main process by its counter, any other process by fresh OS entropy. Repeatable only with
  the same ``seed``, torch seed, worker count and call order.
"""

from __future__ import annotations

import itertools
import os
import secrets
from typing import Any

import numpy as np
from PIL import Image

from .batch import ipmix_batch
from .config import IPMixConfig

_SEED_BITS = 62  # seeds the sampling kernels take as int64
_MAIN, _WORKER, _OTHER = 0, 1, 2  # tags of the plain-call streams


def _derive(*words: int) -> int:
    """A 62-bit seed from non-negative integers (SeedSequence mixing)."""
    state = np.random.SeedSequence([int(w) % 2**64 for w in words]).generate_state(1, np.uint64)
    return int(state[0]) % 2**_SEED_BITS


class _Epoch:
    """The epoch for keyed draws: a shared-memory int64 when torch is there, so that
    ``set_epoch`` in the main process reaches persistent DataLoader workers; a plain int
    otherwise (without torch there are no workers)."""

    def __init__(self) -> None:
        try:
            import torch
        except ImportError:
            self._value: Any = [0]
        else:
            self._value = torch.zeros(1, dtype=torch.int64).share_memory_()

    def get(self) -> int:
        return int(self._value[0])

    def set(self, epoch: int) -> None:
        self._value[0] = int(epoch)


class IPMix:
    """IPMix as a per-sample transform, like ``torchvision.transforms.AugMix``.

    Args:
        fractals: uint8 bank ``[N, F, F, 3]`` (F >= image size), or an object with a
            ``load_bank(size)`` method such as ``fractal_store.open(path)``.
        cfg: the IPMix options (default: ``IPMixConfig.preset("imagenet", jsd=False)``).
        seed: base seed; by default fresh OS entropy per instance. No global RNG state is
            read or changed.

    Call ``ipmix(img)`` (plain: never repeats across epochs, not keyed) or
    ``ipmix(img, index=i)`` (keyed by ``(seed, epoch, i, view)``, the epoch from
    :meth:`set_epoch` unless ``epoch=`` is given); see the module docstring for the contract.

    Input: a PIL RGB image or a uint8 tensor ``[3, S, S]`` of side ``cfg.image_size`` (apply
    the crop first). Output: one image of the input's type (uint8 pixels); with ``cfg.jsd``
    not the same type but a tuple ``(clean, aug_a, aug_b)`` of three such images.
    """

    def __init__(
        self, fractals: Any, cfg: IPMixConfig | None = None, *, seed: int | None = None
    ) -> None:
        self.cfg = cfg if cfg is not None else IPMixConfig.preset("imagenet", jsd=False)
        if hasattr(fractals, "load_bank"):
            fractals = fractals.load_bank(size=self.cfg.fractal_size)
        bank = np.asarray(fractals)
        if bank.dtype != np.uint8 or bank.ndim != 4 or bank.shape[-1] != 3 or len(bank) == 0:
            raise ValueError(
                f"IPMix: fractals must be a non-empty uint8 [N, F, F, 3] bank, "
                f"got {bank.dtype} {bank.shape}"
            )
        self.bank = np.ascontiguousarray(bank)
        self.seed = int(np.random.SeedSequence(seed).entropy % (2**_SEED_BITS))
        self._epoch = _Epoch()
        self._owner = os.getpid()
        self._stream: tuple[Any, int, Any] | None = None  # (stream id, seed, counter)

    def set_epoch(self, epoch: int) -> None:
        """The epoch of keyed calls (``index=`` given); call it before iterating the loader
        for that epoch, like ``DistributedSampler.set_epoch``. Reaches persistent workers."""
        if int(epoch) < 0:
            raise ValueError(f"IPMix.set_epoch: epoch must be >= 0, got {epoch}")
        self._epoch.set(epoch)

    @property
    def epoch(self) -> int:
        """The epoch keyed calls use (0 until :meth:`set_epoch`)."""
        return self._epoch.get()

    def _plain_key(self) -> tuple[int, int]:
        """(seed, index) of the next plain call on this process's own stream."""
        stream: Any = (_MAIN,)
        try:
            from torch.utils.data import get_worker_info

            info = get_worker_info()
        except ImportError:
            info = None
        if info is not None:
            stream = (_WORKER, os.getpid(), info.seed)
        elif os.getpid() != self._owner:
            stream = (_OTHER, os.getpid())
        if self._stream is None or self._stream[0] != stream:
            words = (_OTHER, secrets.randbits(64)) if stream[0] == _OTHER else stream[::2]
            self._stream = (stream, _derive(self.seed, *words), itertools.count())
        return self._stream[1], next(self._stream[2])

    def __call__(self, img: Any, index: int | None = None, epoch: int | None = None) -> Any:
        is_pil = isinstance(img, Image.Image)
        if is_pil:
            arr = np.asarray(img.convert("RGB"))
        else:
            import torch

            if not isinstance(img, torch.Tensor) or img.dtype != torch.uint8 or img.ndim != 3:
                raise TypeError(
                    "IPMix expects a PIL image or a uint8 tensor [3, H, W], got "
                    f"{type(img).__name__}"
                )
            arr = img.permute(1, 2, 0).numpy()
        s = self.cfg.image_size
        if arr.shape[:2] != (s, s):
            raise ValueError(
                f"IPMix: image is {arr.shape[1]}x{arr.shape[0]}, expected {s}x{s}; "
                "crop/resize before IPMix (IPMixConfig.image_size)"
            )
        if index is None:
            if epoch is not None:
                raise ValueError("IPMix: epoch= needs index= (a keyed call)")
            (seed, index), epoch = self._plain_key(), 0
        else:
            seed = self.seed
            epoch = self.epoch if epoch is None else int(epoch)
            if int(index) < 0 or epoch < 0:
                raise ValueError(f"IPMix: index and epoch must be >= 0, got {index}, {epoch}")
        out = ipmix_batch(
            np.ascontiguousarray(arr)[None],
            self.bank,
            self.cfg,
            seed=seed,
            epoch=epoch,
            indices=np.array([int(index)], np.int64),
        )[0]
        views = [Image.fromarray(v) if is_pil else _to_chw(v) for v in out]
        return tuple(views) if self.cfg.jsd else views[0]

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (spawned workers, copies) without the plain-call stream: a copy starts
        its own (and ``itertools.count`` does not pickle on newer Pythons)."""
        return {**self.__dict__, "_stream": None}

    def __repr__(self) -> str:
        return f"IPMix(fractals={self.bank.shape[0]}, cfg={self.cfg})"


class IPMixDataset:
    """A map-style dataset whose items get IPMix keyed by their index.

    ``dataset[i]`` must give ``(image, *rest)`` with the image already cropped to
    ``cfg.image_size`` (PIL or uint8 ``[3, S, S]`` tensor); item ``i`` becomes
    ``(post(ipmix(image, index=i)), *rest)``, ``post`` (e.g. ``ToTensor``) applied to each
    view in JSD mode. Call :meth:`set_epoch` before each epoch's loop. Only IPMix's draws are
    keyed: a random crop inside ``dataset`` still draws from torch's RNG.
    """

    def __init__(self, dataset: Any, ipmix: IPMix, post: Any = None) -> None:
        if not isinstance(ipmix, IPMix):
            raise TypeError(f"IPMixDataset: ipmix must be an IPMix, got {type(ipmix).__name__}")
        self.dataset, self.ipmix, self.post = dataset, ipmix, post

    def set_epoch(self, epoch: int) -> None:
        """Like ``DistributedSampler.set_epoch``: key epoch ``epoch``'s draws."""
        self.ipmix.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        img, rest = (item[0], tuple(item[1:])) if isinstance(item, tuple) else (item, None)
        out = self.ipmix(img, index=int(index))
        if self.post is not None:
            out = tuple(map(self.post, out)) if isinstance(out, tuple) else self.post(out)
        return out if rest is None else (out, *rest)


def _to_chw(v: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1)))
