"""``IPMix``: a torchvision-style transform for people who keep a plain PyTorch DataLoader.

It runs the compiled fast path on one sample at a time (still far cheaper than the authors'
Pillow chain). For full speed use a batched pipeline (``pipelines.build_loader``).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import numpy as np
from PIL import Image

from .batch import ipmix_batch
from .config import IPMixConfig


class IPMix:
    """IPMix as a per-sample transform, like ``torchvision.transforms.AugMix``.

    Args:
        fractals: uint8 bank ``[N, F, F, 3]`` (F >= image size), or an object with a
            ``load_bank(size)`` method such as ``fractal_store.open(path)``.
        cfg: the IPMix options (default: ``IPMixConfig.preset("imagenet", jsd=False)``).
        seed: base seed; by default fresh OS entropy per process. Each DataLoader worker
            derives its own stream from it, and each call advances a counter, so no global
            RNG state is read or changed.

    Input: a PIL RGB image or a uint8 tensor ``[3, S, S]`` of side ``cfg.image_size`` (apply
    the crop first). Output: the same type, rounded to uint8; in JSD mode a tuple
    ``(clean, aug_a, aug_b)``.
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
        self.seed = int(np.random.SeedSequence(seed).entropy % (2**62))
        self._counter = itertools.count()
        self._stream: tuple[int, int] | None = None

    def _key(self) -> tuple[int, int]:
        pid = os.getpid()
        if self._stream is None or self._stream[0] != pid:
            worker = 0
            try:
                from torch.utils.data import get_worker_info

                info = get_worker_info()
                worker = 0 if info is None else info.id + 1
            except ImportError:
                pass
            self._stream = (pid, worker)
            self._counter = itertools.count()
        return self._stream[1], next(self._counter)

    def __call__(self, img: Any) -> Any:
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
        worker, index = self._key()
        out = ipmix_batch(
            np.ascontiguousarray(arr)[None],
            self.bank,
            self.cfg,
            seed=self.seed,
            epoch=worker,
            indices=np.array([index]),
        )[0]
        views = [Image.fromarray(v) if is_pil else _to_chw(v) for v in out]
        return tuple(views) if self.cfg.jsd else views[0]

    def __repr__(self) -> str:
        return f"IPMix(fractals={self.bank.shape[0]}, cfg={self.cfg})"


def _to_chw(v: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1)))
