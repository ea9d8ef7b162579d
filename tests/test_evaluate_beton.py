"""train/evaluate.py on a .beton val set (FFCV users may not keep the ImageFolder): clean
scores, calibration and on-the-fly corruptions through the FFCV val loader, on a small real
.beton of photos; the errors it gives for what it cannot do."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import PHOTO_NAMES, photo
from PIL import Image
from test_evaluate import _EVAL, _checkpoint
from test_evaluate_corrupt import run_cli

from ipmix_train import corruptions as C
from ipmix_train.evalscore import Tally
from ipmix_train.evalsets import beton_set, imagefolder_set
from ipmix_train.evaluate import load_model

pytestmark = pytest.mark.ffcv
pytest.importorskip("ffcv")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """4 classes (one per photo) x 2 non-square PNGs (48 x 64 and its mirror image)."""
    root = tmp_path_factory.mktemp("val")
    for name in PHOTO_NAMES:
        img = photo(name, (48, 64))
        (root / name).mkdir()
        Image.fromarray(img).save(root / name / "a.png")
        Image.fromarray(np.ascontiguousarray(img[:, ::-1])).save(root / name / "b.png")
    return root


@pytest.fixture(scope="module")
def beton(folder, tmp_path_factory) -> Path:
    from pipelines.datasets.beton import write_beton

    out = tmp_path_factory.mktemp("beton") / "val.beton"
    write_beton(folder, out, max_resolution=64, write_mode="raw", num_workers=1, progress=False)
    return out


def test_beton_set_reads_the_same_centre_crops_as_the_folder(folder, beton) -> None:
    b = beton_set(beton, 32)
    f = imagefolder_set(folder, 32, crop=True)
    assert len(b) == len(f) == 8 and b.classes is None and b.kind == ".beton"
    assert np.array_equal(b.labels, f.labels)
    got = np.concatenate([x for _, x, _ in b.batches(3)])
    want = np.concatenate([x for _, x, _ in f.batches(3)])
    assert got.shape == want.shape == (8, 32, 32, 3) and got.dtype == np.uint8
    # FFCV crops 224/256 of the shorter side and resizes with OpenCV, Pillow bilinearly
    diff = np.abs(got.astype(int) - want.astype(int)).mean(axis=(1, 2, 3))
    assert diff.max() < 3.0, diff  # measured: 0.34-1.32


def test_evaluate_cli_on_a_beton_with_corruptions_on_the_fly(tmp_path, beton, capsys) -> None:
    ckpt = _checkpoint(tmp_path / "c.pt", 4)
    out = tmp_path / "r.json"
    flags = "--corrupt-on-the-fly --corruptions contrast --severities 3 --workers 1"
    rc = run_cli(ckpt, beton, flags + " --batch-size 5", "--out", str(out))
    assert rc == 0, capsys.readouterr().err
    res = json.loads(out.read_text())
    assert res["val_format"] == ".beton" and res["clean"]["n"] == 8
    # the scores of the FFCV val loader's images, corrupted here in one piece
    from pipelines.contract import Normalise

    model, info = load_model(ckpt)
    b = beton_set(beton, 32)
    pixels = np.concatenate([x for _, x, _ in b.batches(8)])
    norm = Normalise(info["mean"], info["std"])
    for key, x in ((None, pixels), ("contrast", C.corrupt_images(pixels, "contrast", 3))):
        t = Tally(8)
        with torch.no_grad():
            t.add(0, model(norm(torch.from_numpy(x).permute(0, 3, 1, 2))), b.labels)
        got = res["clean"] if key is None else res["corrupted"]["contrast"]["3"]
        assert got == pytest.approx(t.scores(), abs=1e-9)
    assert "class folders are not" not in " ".join(res["mce_caveats"])  # names unknown


def test_beton_errors_name_the_file_and_the_problem(tmp_path, beton, capsys) -> None:
    whole = _checkpoint(tmp_path / "w.pt", 4, eval_entry={**_EVAL, "val_crop": False})
    assert run_cli(whole, beton) == 2
    err = capsys.readouterr().err
    assert "val.beton: the FFCV val loader always centre-crops" in err and "--crop" in err
    two = _checkpoint(tmp_path / "two.pt", 2)
    assert run_cli(two, beton) == 2
    assert "val.beton: label 3, but the checkpoint classifies 2 classes" in capsys.readouterr().err
    junk = tmp_path / "junk.beton"
    junk.write_bytes(b"not a beton" * 100)
    ckpt = _checkpoint(tmp_path / "c.pt", 4)
    assert run_cli(ckpt, junk) == 2
    assert "junk.beton: not a readable .beton" in capsys.readouterr().err
