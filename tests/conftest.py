"""Shared fixtures: real photos (offline, from scikit-image) and GPU test skipping."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


def _gpu_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    if _gpu_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:  # the marker only: "gpu" in item.keywords also matches test names
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


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


@pytest.fixture(scope="session")
def photos224() -> np.ndarray:
    """Four real photos, uint8 [4, 224, 224, 3]."""
    return np.stack([photo(n, 224) for n in PHOTO_NAMES])


@pytest.fixture(scope="session")
def photos32() -> np.ndarray:
    """Four real photos at CIFAR size, uint8 [4, 32, 32, 3]."""
    return np.stack([photo(n, 32) for n in PHOTO_NAMES])


@pytest.fixture(scope="session")
def fractal_like_bank() -> np.ndarray:
    """A small bank of real, structured pictures (photos resized to 256) standing in for
    fractals where the fractal generator is not under test: uint8 [6, 256, 256, 3]."""
    names = (
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "hubble_deep_field",
        "immunohistochemistry",
    )
    return np.stack([photo(n, 256) for n in names])
