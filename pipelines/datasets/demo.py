"""The demo dataset: real labelled photos that install offline (Debian's Fashion-MNIST),
written as an ImageFolder tree (``<out>/{train,val}/<class>/<n>.jpg``) like ImageNet's.

Fashion-MNIST's 28×28 grey product photos are converted to RGB and resized to ``size``; the
classes are balanced. Nothing is downloaded: the IDX files come from the
``dataset-fashion-mnist`` package (``tools/setup_system.sh`` installs it).
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a (gzipped) IDX file into a uint8 array; a malformed file raises ``ValueError``."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(f"{path}: not a uint8 IDX file (bad magic {data[:4]!r})")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: truncated IDX file ({body.size} of {np.prod(dims)} bytes)")
    return body.reshape(dims)


def load_fashion_mnist(
    split: str, root: str | os.PathLike = FASHION_MNIST_DIR
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels uint8 [N]) of ``split`` "train" or "test"."""
    prefix = {"train": "train", "test": "t10k"}[split]
    root = Path(root)
    img_path = root / f"{prefix}-images-idx3-ubyte.gz"
    if not img_path.exists():
        raise FileNotFoundError(
            f"{img_path} not found: install Debian's dataset-fashion-mnist package "
            "(make setup does this: tools/setup_system.sh)"
        )
    return read_idx(img_path), read_idx(root / f"{prefix}-labels-idx1-ubyte.gz")


def write_demo_imagefolder(
    out: str | os.PathLike,
    *,
    size: int = 32,
    train_per_class: int = 500,
    val_per_class: int = 100,
    fmt: str = "jpg",
    seed: int = 0,
    progress: bool = True,
) -> dict[str, int]:
    """Write a balanced Fashion-MNIST subset as ImageFolder ``out/{train,val}/<class>/``.

    Images are RGB ``size``×``size`` (bicubic upscale), JPEG q95 or PNG. The tree is built
    under a temporary name and renamed at the end. Returns images written per split.
    """
    if fmt not in ("jpg", "png"):
        raise ValueError(f"fmt must be 'jpg' or 'png', got {fmt!r}")
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    counts = {}
    for split, src, per_class in (
        ("train", "train", train_per_class),
        ("val", "test", val_per_class),
    ):
        images, labels = load_fashion_mnist(src)
        chosen = []
        for c in range(len(CLASSES)):
            idx = np.flatnonzero(labels == c)
            if per_class > len(idx):
                raise ValueError(f"{split}: {per_class} per class requested, only {len(idx)}")
            chosen.extend(rng.choice(idx, per_class, replace=False))
        for c in CLASSES:
            (tmp / split / c).mkdir(parents=True, exist_ok=True)
        for n, i in enumerate(tqdm(chosen, desc=f"demo {split}", disable=not progress)):
            im = Image.fromarray(images[i]).convert("RGB")
            if size != 28:
                im = im.resize((size, size), Image.Resampling.BICUBIC)
            path = tmp / split / CLASSES[labels[i]] / f"{n:06d}.{fmt}"
            im.save(path, quality=95) if fmt == "jpg" else im.save(path)
        counts[split] = len(chosen)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return counts
