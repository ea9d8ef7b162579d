"""Helpers shared by the tests (the fixtures built on them are in conftest.py): real photos
from scikit-image and reference formulas."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def photo(name: str, size: int | tuple[int, int] = 224) -> np.ndarray:
    """A real photo from skimage.data, centre-cropped square and resized: uint8 H×W×3."""
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    hw = (size, size) if isinstance(size, int) else size
    im = Image.fromarray(np.ascontiguousarray(img)).resize((hw[1], hw[0]), Image.BILINEAR)
    return np.asarray(im).copy()


PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "rocket")


def opencv_equalize(img: np.ndarray) -> np.ndarray:
    """OpenCV's ``equalizeHist`` per channel (the formula ``fn.equalize`` follows)."""
    out = np.empty_like(img)
    for c in range(3):
        ch = img[..., c]
        hist = np.bincount(ch.ravel(), minlength=256)
        first = int(np.nonzero(hist)[0][0])
        if hist[first] == ch.size:
            out[..., c] = first
            continue
        scale = 255.0 / (ch.size - hist[first])
        lut = np.clip(np.round(np.cumsum(hist) * scale - hist[first] * scale), 0, 255)
        lut[: first + 1] = 0
        out[..., c] = lut.astype(np.uint8)[ch]
    return out


def demo_folders(root, size: int, train_per_class: int, val_per_class: int) -> dict:
    """Fashion-MNIST ImageFolders (10 classes, real photos) at ``size`` px under ``root``:
    ``{"train": root/fm/train, "val": root/fm/val, "root": root}``."""
    from pipelines.datasets.demo import write_demo_imagefolder

    write_demo_imagefolder(
        root / "fm",
        size=size,
        train_per_class=train_per_class,
        val_per_class=val_per_class,
        progress=False,
    )
    return {"train": root / "fm/train", "val": root / "fm/val", "root": root}


def trainer_env(root, **extra: str) -> dict:
    """The environment of a ``train/imagenet.py`` subprocess: the checkout ``root`` first on
    PYTHONPATH, its Numba cache, one OpenMP thread; ``extra`` overrides."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(root / ".numba_cache"), OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    return {**env, **extra}


def signal_once_started(cmd: list[str], env: dict, started, pids=None, after: float = 2.0):
    """Run ``cmd``; once the file ``started`` exists, wait ``after`` s, send SIGTERM to
    ``pids(proc)`` (default: the process itself) and wait for the end (120 s at most
    each). Returns ``(exit status, stdout + stderr)``; the process never outlives it."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and proc.poll() is None:
            assert time.monotonic() < deadline, f"{cmd[:4]} did not start"
            time.sleep(0.2)
        time.sleep(after)
        for pid in pids(proc) if pids else [proc.pid]:
            os.kill(pid, signal.SIGTERM)
        text = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, text
