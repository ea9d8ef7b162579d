"""Shared fixtures: real photos (offline, from scikit-image; tests/helpers.py) and GPU test
skipping."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest
from helpers import PHOTO_NAMES, photo


def pytest_configure(config):
    """The project's caches (ImageFolder header checks, corrupted val sets) in a folder of
    this test session, not in the user's ``~/.cache``; subprocesses inherit it."""
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="ipmix-tests-cache-")


def pytest_unconfigure(config):
    shutil.rmtree(os.environ["XDG_CACHE_HOME"], ignore_errors=True)


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
