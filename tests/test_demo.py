"""The offline demo dataset and the `make demo` entry point."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.datasets.demo import CLASSES, load_fashion_mnist, read_idx, write_demo_imagefolder

ROOT = Path(__file__).resolve().parents[1]


def test_fashion_mnist_is_real_and_balanced():
    images, labels = load_fashion_mnist("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.array_equal(np.bincount(labels), np.full(10, 1000))
    assert images.std() > 50  # real photos, not a blank placeholder


def test_write_demo_imagefolder(tmp_path):
    counts = write_demo_imagefolder(
        tmp_path / "fm", size=32, train_per_class=3, val_per_class=2, progress=False
    )
    assert counts == {"train": 30, "val": 20}
    assert sorted(p.name for p in (tmp_path / "fm" / "train").iterdir()) == sorted(CLASSES)
    files = sorted((tmp_path / "fm" / "val").glob("*/*.jpg"))
    assert len(files) == 20
    im = Image.open(files[0])
    assert im.mode == "RGB" and im.size == (32, 32)
    assert not (tmp_path / "fm.partial").exists()


def test_bad_idx_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x1c\x00\x00\x00\x1c" + b"\0" * 100)
    with pytest.raises(ValueError, match="truncated IDX"):
        read_idx(bad)
    (tmp_path / "y.gz").write_bytes(gzip.compress(b"PK\x03\x04"))
    with pytest.raises(ValueError, match="not a uint8 IDX"):
        read_idx(tmp_path / "y.gz")


@pytest.mark.slow
def test_make_demo_runs_end_to_end(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "demo.py"),
            "--out",
            str(tmp_path),
            "--per-class",
            "20",
            "--fractals",
            "16",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (tmp_path / "ipmix_grid.png").exists()
    assert "demo finished" in res.stdout
