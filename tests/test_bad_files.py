"""Bad and extreme image files in every backend: the ImageFolder loaders (torch, DALI) name
undecodable files before training; the FFCV loaders survive every picture a .beton holds.

The FFCV loaders run in a subprocess: an empty OpenCV crop aborts the process (exit 134,
no Python traceback), which would end the test session instead of failing a test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import photo
from PIL import Image

from pipelines import build_loader
from pipelines.datasets.folder import BadFilesError, check_image_files, scan_image_folder

ROOT = Path(__file__).resolve().parents[1]
S = 32


def _save(path: Path, name: str, hw: tuple[int, int]) -> None:
    Image.fromarray(photo(name, hw)).save(path, quality=90)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    """``broken``: 6 good JPEGs in 2 classes plus a text file named .jpg and an empty .png;
    ``truncated``: the good ones plus half of a JPEG."""
    root = tmp_path_factory.mktemp("badfiles")
    out = {}
    for kind in ("broken", "truncated"):
        for c, names in (("a", ("astronaut", "chelsea", "coffee")), ("b", ("rocket", "coffee"))):
            (root / kind / c).mkdir(parents=True)
            for i, name in enumerate(names):
                _save(root / kind / c / f"{i}.jpg", name, (40 + 8 * i, 48))
        _save(root / kind / "b" / "2.jpg", "chelsea", (50, 40))
        out[kind] = root / kind
    (root / "broken" / "b" / "broken.jpg").write_text("not a picture\n")
    (root / "broken" / "a" / "empty.png").write_bytes(b"")
    full = (root / "truncated" / "a" / "0.jpg").read_bytes()
    (root / "truncated" / "b" / "half.jpg").write_bytes(full[: len(full) // 2])
    return out


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch) -> Path:
    """The header check's cache in this test's own folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _args(**kw) -> dict:
    return dict(train=True, batch_size=2, image_size=S, num_workers=0, device="cpu", **kw)


def _count(loader) -> int:
    return sum(len(y) for _, y in loader)


def test_header_check_names_every_bad_file_or_skips_them(folders, capsys):
    _, samples, _ = scan_image_folder(folders["broken"])
    with pytest.raises(BadFilesError) as e:
        check_image_files(samples)
    assert sorted(Path(p).name for p, _ in e.value.bad) == ["broken.jpg", "empty.png"]
    msg = str(e.value)
    assert "2 of 8 image files cannot be decoded" in msg and "bad_files='skip'" in msg
    assert "broken.jpg: not an image" in msg and "empty.png: empty file (0 bytes)" in msg
    with pytest.warns(UserWarning, match=r"(?s)left out 2 of 8 .*broken\.jpg"):
        good = check_image_files(samples, bad_files="skip", progress=True, cache=False)
    assert len(good) == 6 and all(Path(p).suffix == ".jpg" for p, _ in good)
    assert "checking" in capsys.readouterr().err  # the progress bar
    with pytest.raises(ValueError, match="bad_files must be"):
        check_image_files(samples, bad_files="ignore")
    only_bad = [s for s in samples if Path(s[0]).name in ("broken.jpg", "empty.png")]
    with pytest.raises(BadFilesError, match="would leave no file to load"):  # not an empty loader
        check_image_files(only_bad, bad_files="skip", cache=False)


def test_header_check_cache_is_used_until_a_file_changes(folders, tmp_path, monkeypatch):
    import shutil

    from pipelines.datasets import folder

    root = tmp_path / "copy"
    shutil.copytree(folders["broken"], root)
    _, samples, _ = scan_image_folder(root)
    opened = []

    def counted(path):
        opened.append(path)
        return header_reason(path)

    header_reason = folder.header_reason
    monkeypatch.setattr(folder, "header_reason", counted)
    with pytest.warns(UserWarning, match="broken.jpg"):
        assert len(check_image_files(samples, bad_files="skip")) == 6
    assert len(opened) == 8 and len(list(folder.check_cache_dir().glob("*.json"))) == 1
    with pytest.raises(BadFilesError, match="empty.png"):  # from the cache: nothing opened
        check_image_files(samples)
    assert len(opened) == 8
    (root / "a" / "0.jpg").write_text("now a text file\n")  # new size and time: checked again
    with pytest.raises(BadFilesError) as e:
        check_image_files(samples)
    assert len(e.value.bad) == 3 and len(opened) == 16
    with pytest.raises(BadFilesError):
        check_image_files(samples, cache=False)
    assert len(opened) == 24


def test_torch_loader_names_bad_files_before_training(folders):
    with pytest.raises(BadFilesError, match="broken.jpg"):
        build_loader("torch", folders["broken"], **_args())
    with pytest.warns(UserWarning, match="empty.png"):
        loader = build_loader("torch", folders["broken"], **_args(bad_files="skip"))
    assert _count(loader) == 6
    with pytest.raises(ValueError, match="bad_files must be"):
        build_loader("torch", folders["broken"], **_args(bad_files="drop"))
    # pixel data that fails later (the header is fine): the error names the file
    loader = build_loader(
        "torch", folders["truncated"], **_args(order="sequential", drop_last=False)
    )
    with pytest.raises(RuntimeError, match=r"half\.jpg: cannot decode .*truncated"):
        _count(loader)


@pytest.mark.dali
def test_dali_loader_names_bad_files_before_training(folders):
    pytest.importorskip("nvidia.dali")
    with pytest.raises(BadFilesError, match="broken.jpg"):
        build_loader("dali", folders["broken"], **_args())
    with pytest.warns(UserWarning, match="broken.jpg"):
        loader = build_loader("dali", folders["broken"], **_args(bad_files="skip"))
    assert _count(loader) == 6


FFCV_SCRIPT = """
import sys, numpy as np
from pipelines import build_loader
bank = np.load(sys.argv[1])
for beton in sys.argv[2:]:
    for train in (True, False):
        kw = dict(fractals=bank, ipmix="imagenet", jsd=True) if train else {}
        loader = build_loader("ffcv", beton, train=train, batch_size=4, image_size=32,
                              num_workers=1, device="cpu", drop_last=False, **kw)
        n = 0
        for x, y in loader:
            for v in x if isinstance(x, tuple) else (x,):
                assert tuple(v.shape[1:]) == (3, 32, 32), v.shape
            n += len(y)
        print(beton, "train" if train else "val", n, flush=True)
"""


def _old_beton(path: Path) -> None:
    """A .beton as the writer wrote it before its size rule (FFCV's writer, raw pixels):
    a 1x1 picture and a 2x256 strip among photos."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    images = [photo("astronaut", (40, 48)), np.full((1, 1, 3), 200, np.uint8)]
    images += [photo("coffee", (2, 256)), photo("chelsea", (48, 40))]

    class Samples:
        def __len__(self) -> int:
            return len(images)

        def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
            return images[i], i % 2

    fields = {"image": RGBImageField(write_mode="raw"), "label": IntField()}
    DatasetWriter(str(path), fields, num_workers=1).from_indexed_dataset(Samples())


@pytest.mark.ffcv
def test_ffcv_loaders_survive_every_picture_a_beton_holds(tmp_path, fractal_like_bank):
    pytest.importorskip("ffcv")
    from pipelines.datasets.beton import read_beton, write_beton

    root = tmp_path / "odd"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        _save(root / c / "normal.jpg", "chelsea", (60, 80))
    Image.fromarray(np.full((1, 1, 3), 128, np.uint8)).save(root / "a" / "1x1.png")
    _save(root / "a" / "20x2000.jpg", "coffee", (20, 2000))
    _save(root / "b" / "2x3.jpg", "rocket", (3, 2))
    floor = tmp_path / "floor.beton"  # the writer's floor: every picture >= 2 px a side
    s = write_beton(root, floor, min_side=2, write_mode="jpg", num_workers=1, progress=False)
    assert [Path(p).name for p, _ in s.skipped] == ["1x1.png"] and s.images == 4
    assert sorted(img.shape[:2] for img, _ in read_beton(floor)) == [
        (2, 256),
        (3, 2),
        (60, 80),
        (60, 80),
    ]
    old = tmp_path / "old.beton"
    _old_beton(old)
    bank = tmp_path / "bank.npy"
    np.save(bank, np.ascontiguousarray(fractal_like_bank[:8, :64, :64]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-c", FFCV_SCRIPT, str(bank), str(floor), str(old)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, (r.returncode, r.stderr[-3000:])
    assert r.stdout.split() == [
        *(str(floor), "train", "4", str(floor), "val", "4"),
        *(str(old), "train", "4", str(old), "val", "4"),
    ]
