"""Validation sets for :mod:`ipmix_train.evaluate`, read batch by batch (never all in memory).

A :class:`ValSet` knows its labels up front and yields uint8 NHWC batches ``[B, S, S, 3]``
(RGB, 0-255) in index order. Sources:

* :func:`imagefolder_set`: an ImageFolder tree (``<class>/<image>``, classes and order as
  torchvision's ``ImageFolder``: :func:`pipelines.datasets.folder.scan_image_folder`),
  decoded with Pillow on a thread pool; each image is centre-cropped to 224/256 of its
  shorter side and resized to ``S`` (bilinear), the trainers' val transform, or resized
  whole (``crop=False``);
* :func:`beton_set`: a ``.beton`` (``tools/write_beton.py``) through the FFCV val loader
  (:func:`pipelines.build_loader`, ``train=False``: FFCV's centre crop of 224/256, resized
  to ``S``; it has no whole-image mode, so ``crop=False`` is refused);
* :func:`array_set`: arrays already in memory (or memory-mapped ``.npy`` files).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.contract import DEFAULT_CROP_RATIO
from pipelines.datasets.beton import beton_labels
from pipelines.datasets.folder import DataDirError, scan_image_folder, to_rgb

Reader = Callable[[int, int], Iterator[np.ndarray]]  # (batch_size, workers) -> uint8 batches


@dataclass(frozen=True)
class ValSet:
    """A validation set: ``labels`` int64 ``[N]``, ``classes`` (names, or None where the
    source stores none, as a .beton), and ``read(batch_size, workers)`` yielding uint8
    ``[B, S, S, 3]`` batches in index order. ``where`` names it in messages."""

    where: str
    kind: str
    labels: np.ndarray
    classes: list[str] | None
    image_size: int
    read: Reader

    def __len__(self) -> int:
        return len(self.labels)

    def batches(
        self, batch_size: int, workers: int = 1
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(start index, uint8 images [B, S, S, 3], int64 labels [B])`` over the set."""
        start = 0
        for images in self.read(batch_size, workers):
            n = len(images)
            if images.shape[1:] != (self.image_size, self.image_size, 3):
                raise ValueError(
                    f"{self.where}: batch of shape {images.shape}, expected "
                    f"[B, {self.image_size}, {self.image_size}, 3]"
                )
            yield start, images, self.labels[start : start + n]
            start += n
        if start != len(self.labels):
            raise ValueError(f"{self.where}: read {start} images, expected {len(self.labels)}")


def list_imagefolder(root: str | os.PathLike) -> tuple[list[str], list[tuple[Path, int]]]:
    """``(class names, [(image path, class index)])`` of an ImageFolder tree; ValueError
    naming the folder when it is missing or holds no class folder or image."""
    try:
        classes, samples, _ = scan_image_folder(root)
    except DataDirError as e:
        raise ValueError(str(e)) from None
    return classes, [(Path(p), label) for p, label in samples]


def load_image(path: str | os.PathLike, size: int, crop: bool = True) -> np.ndarray:
    """uint8 ``[size, size, 3]`` of one file: centre square of 224/256 of the shorter side
    (``crop``) or the whole image, resized bilinearly. ValueError naming an unreadable file."""
    try:
        with Image.open(path) as im:
            im.load()
            im = to_rgb(im)
    except OSError as e:
        raise ValueError(f"{path}: unreadable image ({e})") from e
    if crop:
        w, h = im.size
        s = max(1, round(DEFAULT_CROP_RATIO * min(w, h)))
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s))
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im)


def load_images(
    items: list[tuple[Path, int]], size: int, *, crop: bool = True, workers: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """All of ``items`` at once: uint8 ``[N, size, size, 3]`` and int64 labels (small sets)."""
    s = imagefolder_set_from(items, None, size, crop, "images")
    return np.concatenate([b for _, b, _ in s.batches(256, workers)]), s.labels


def imagefolder_set(
    root: str | os.PathLike, size: int, crop: bool = True, classes: list[str] | None = None
) -> ValSet:
    """The ImageFolder tree ``root`` at ``size`` px. ``classes``: label the class folders by
    these names (their index in the list) instead of their sorted order; a folder not in
    the list is a ValueError naming it."""
    names, items = list_imagefolder(root)
    if classes is not None:
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted(set(names) - set(index))
        if unknown:
            raise ValueError(f"{root}: class folders {unknown[:5]} are not in the val data")
        items = [(p, index[names[i]]) for p, i in items]
        names = list(classes)
    return imagefolder_set_from(items, names, size, crop, str(root))


def imagefolder_set_from(
    items: list[tuple[Path, int]], classes: list[str] | None, size: int, crop: bool, where: str
) -> ValSet:
    """A :class:`ValSet` over listed ``(path, label)`` files."""

    def read(batch_size: int, workers: int) -> Iterator[np.ndarray]:
        with ThreadPoolExecutor(max(1, workers)) as pool:  # Pillow releases the GIL
            for lo in range(0, len(items), batch_size):
                paths = [p for p, _ in items[lo : lo + batch_size]]
                yield np.stack(list(pool.map(lambda p: load_image(p, size, crop), paths)))

    labels = np.array([c for _, c in items], np.int64)
    return ValSet(where, "ImageFolder", labels, classes, size, read)


def array_set(images: np.ndarray, labels: np.ndarray, where: str = "arrays") -> ValSet:
    """A :class:`ValSet` over uint8 ``[N, S, S, 3]`` images (a memory map is read lazily)."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"{where}: need uint8 images [N, S, S, 3], got {images.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{where}: {len(images)} images but {len(labels)} labels")

    def read(batch_size: int, workers: int) -> Iterator[np.ndarray]:
        for lo in range(0, len(images), batch_size):
            yield np.array(images[lo : lo + batch_size], dtype=np.uint8)  # a writable copy

    labels = np.asarray(labels, np.int64)
    return ValSet(where, "arrays", labels, None, int(images.shape[1]), read)


def beton_set(path: str | os.PathLike, size: int, crop: bool = True) -> ValSet:
    """The .beton ``path`` at ``size`` px through the FFCV val loader (centre crop)."""
    if not crop:
        raise ValueError(
            f"{path}: the FFCV val loader always centre-crops 224/256 of the shorter side; "
            "whole-image evaluation (--no-crop, or a checkpoint with val_crop: false) needs "
            "the ImageFolder tree, or pass --crop to evaluate centre crops"
        )
    labels = beton_labels(path)
    if not len(labels):
        raise ValueError(f"{path}: no samples")

    def read(batch_size: int, workers: int) -> Iterator[np.ndarray]:
        from pipelines import build_loader

        loader = build_loader(
            "ffcv",
            path,
            train=False,
            batch_size=batch_size,
            image_size=size,
            num_workers=max(1, workers),
            device="cpu",
            output="uint8",
        )
        start = 0
        for images, got in loader:  # NCHW channels_last: its NHWC view is contiguous
            want = labels[start : start + len(got)]
            if not np.array_equal(got.numpy(), want):
                raise ValueError(f"{path}: the FFCV val loader's labels disagree with the file's")
            start += len(got)
            yield images.permute(0, 2, 3, 1).numpy().copy()  # the ring buffer is reused

    return ValSet(str(path), ".beton", labels, None, size, read)


def val_set(path: str | os.PathLike, size: int, crop: bool = True) -> ValSet:
    """:func:`beton_set` for a file, :func:`imagefolder_set` for a folder."""
    p = Path(path)
    if p.is_file():
        return beton_set(p, size, crop)
    if not p.exists():
        raise FileNotFoundError(f"--val-data {p}: no such file or directory")
    return imagefolder_set(p, size, crop)
