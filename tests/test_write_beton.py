"""tools/write_beton.py and pipelines.datasets.beton: round trip on real images, every bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import photo
from PIL import Image

from pipelines.datasets.beton import (
    BadImageError,
    BetonError,
    DataDirError,
    format_summary,
    read_beton,
    write_beton,
)
from pipelines.datasets.demo import write_demo_imagefolder

pytestmark = pytest.mark.ffcv
pytest.importorskip("ffcv")
cv2 = pytest.importorskip("cv2")  # installed with FFCV

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Fashion-MNIST (10 classes x 6, 32 px JPEG) plus a class of 3 real photos (JPEG,
    non-square, larger than the 64 px max resolution used below)."""
    root = tmp_path_factory.mktemp("data")
    write_demo_imagefolder(root / "fm", size=32, train_per_class=6, val_per_class=2, progress=False)
    tree = root / "fm" / "train"
    (tree / "zz-photos").mkdir()
    for name, hw in (("astronaut", (90, 120)), ("chelsea", (120, 96)), ("coffee", (75, 100))):
        Image.fromarray(photo(name, hw)).save(tree / "zz-photos" / f"{name}.jpg", quality=95)
    return tree


def _pil_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_round_trip_keeps_labels_counts_and_pixels(folder, tmp_path):
    from torchvision.datasets import ImageFolder

    out = tmp_path / "train.beton"
    s = write_beton(folder, out, max_resolution=64, write_mode="jpg", num_workers=2, progress=False)
    ref = ImageFolder(str(folder))
    assert s.images == len(ref.samples) == 63 and s.skipped == [] and s.ignored == []
    assert s.classes == ref.classes
    assert s.per_class == {c: 3 if c == "zz-photos" else 6 for c in ref.classes}
    assert s.bytes == out.stat().st_size > 0 and "wrote 63 images" in format_summary(s)
    samples = list(read_beton(out))
    assert [label for _, label in samples] == ref.targets
    for (img, _), (path, _) in zip(samples, ref.samples):
        src = _pil_rgb(Path(path))
        tol = 3.0  # mean |diff| of a JPEG q90 re-encode
        if max(src.shape[:2]) > 64:  # shrunk (OpenCV area filter): longer side 64, aspect kept
            h, w = src.shape[:2]
            assert max(img.shape[:2]) == 64
            assert abs(img.shape[0] / img.shape[1] - h / w) < 0.05
            src = cv2.resize(src, img.shape[1::-1], interpolation=cv2.INTER_AREA)
            tol = 5.5  # busy 64 px photos lose more to JPEG's chroma subsampling
        assert img.shape == src.shape
        diff = np.abs(img.astype(int) - src.astype(int))
        assert diff.mean() < tol, (path, diff.mean())
    assert not list(tmp_path.glob(".*partial"))


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory) -> Path:
    """Class ``a``: images in every convertible mode; class ``b``: broken files."""
    root = tmp_path_factory.mktemp("bad")
    a, b = root / "a", root / "b"
    a.mkdir()
    b.mkdir()
    rgb = photo("astronaut", (30, 40))
    im = Image.fromarray(rgb)
    im.save(a / "rgb.png")
    im.convert("L").save(a / "grey.png")
    im.convert("CMYK").save(a / "cmyk.jpg", quality=95)
    pal = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    pal.save(a / "palette.png", transparency=0)
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 80, np.uint8)])).save(a / "rgba.png")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(a / "grey16.png")
    Image.fromarray(photo("chelsea", (60, 80))).save(b / "good.jpg", quality=90)
    full = (b / "good.jpg").read_bytes()
    (b / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (b / "empty.jpg").write_bytes(b"")
    (b / "text.jpg").write_text("this is not a picture\n")
    (b / "notes.txt").write_text("readme\n")
    return root


def test_bad_inputs_converted_or_skipped_with_reason(bad_folder, tmp_path):
    out = tmp_path / "bad.beton"
    s = write_beton(bad_folder, out, num_workers=1, progress=False)
    assert s.images == 7 and s.per_class == {"a": 6, "b": 1}
    reasons = {Path(p).name: why for p, why in s.skipped}
    assert set(reasons) == {"truncated.jpg", "empty.jpg", "text.jpg"}
    assert "truncated" in reasons["truncated.jpg"]
    assert "empty" in reasons["empty.jpg"]
    assert "not an image" in reasons["text.jpg"]
    assert [Path(p).name for p, _ in s.ignored] == ["notes.txt"]
    assert {"CMYK", "L", "P", "RGBA", "RGB"} <= set(s.source_modes)
    text = format_summary(s)
    assert "truncated.jpg" in text and "notes.txt" in text
    # small images are stored raw by the smart mode: pixels must be exactly Pillow's RGB
    got = {
        n: img
        for n, (img, _) in zip(
            sorted(p.name for p in (bad_folder / "a").iterdir()), read_beton(out)
        )
    }
    rgb = _pil_rgb(bad_folder / "a" / "rgb.png")
    assert np.array_equal(got["rgb.png"], rgb)
    grey = _pil_rgb(bad_folder / "a" / "grey.png")
    assert np.array_equal(got["grey.png"], grey) and (grey[..., 0] == grey[..., 2]).all()
    assert np.array_equal(got["cmyk.jpg"], _pil_rgb(bad_folder / "a" / "cmyk.jpg"))
    assert np.array_equal(got["rgba.png"], rgb)  # alpha dropped, colour kept
    with Image.open(bad_folder / "a" / "palette.png") as im:
        assert np.array_equal(got["palette.png"], np.asarray(im.convert("RGBA"))[..., :3])
    assert np.array_equal(got["grey16.png"][..., 0], rgb[..., 0])  # 16-bit scaled to 8
    assert got["rgb.png"].shape == (30, 40, 3)


def test_strict_stops_at_first_bad_file_and_writes_nothing(bad_folder, tmp_path):
    out = tmp_path / "strict.beton"
    with pytest.raises(BadImageError) as e:
        write_beton(bad_folder, out, strict=True, num_workers=1, progress=False)
    assert Path(e.value.path).name == "empty.jpg"  # first in ImageFolder order
    assert list(tmp_path.iterdir()) == []
    # the tool: non-zero exit, the file named on stderr, no output
    r = subprocess.run(
        [
            sys.executable,
            "tools/write_beton.py",
            "--data-dir",
            str(bad_folder),
            "--out",
            str(out),
            "--strict",
            "--no-progress",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "empty.jpg" in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    from torchvision.datasets.folder import IMG_EXTENSIONS

    from pipelines.datasets.folder import IMG_EXTENSIONS as OURS
    from tools.write_beton import main

    assert OURS == tuple(IMG_EXTENSIONS)  # the same files as torchvision's ImageFolder

    out = tmp_path / "x.beton"
    with pytest.raises(DataDirError, match="no such directory"):
        write_beton(tmp_path / "nope", out, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataDirError, match="no class folders"):
        write_beton(tmp_path / "empty", out, progress=False)
    (tmp_path / "empty" / "cls").mkdir()
    (tmp_path / "empty" / "cls" / "readme.txt").write_text("x")
    with pytest.raises(DataDirError, match="no image files"):
        write_beton(tmp_path / "empty", out, progress=False)
    assert main(["--data-dir", str(tmp_path / "nope"), "--out", str(out)]) == 1
    assert not out.exists()


def test_failure_while_writing_leaves_no_file(bad_folder, tmp_path, monkeypatch):
    import pipelines.datasets.beton as beton

    load = beton.load_rgb

    def flaky(path):
        if Path(path).name == "grey.png":
            raise OSError("disk went away")
        return load(path)

    monkeypatch.setattr(beton, "load_rgb", flaky)  # the check pass still sees a good file
    work = tmp_path / "out"
    with pytest.raises(BetonError, match="grey.png"):
        write_beton(bad_folder, work / "x.beton", num_workers=1, progress=False)
    assert list(work.iterdir()) == []


def test_subset_spreads_over_classes_and_all_bad_is_an_error(folder, bad_folder, tmp_path):
    s = write_beton(folder, tmp_path / "sub.beton", subset=11, num_workers=1, progress=False)
    assert s.images == 11 and sum(n > 0 for n in s.per_class.values()) >= 10
    only_bad = tmp_path / "only_bad"
    shutil.copytree(bad_folder / "b", only_bad / "b")
    (only_bad / "b" / "good.jpg").unlink()
    with pytest.raises(BetonError, match="none of the 3 image files") as e:
        write_beton(only_bad, tmp_path / "bad.beton", progress=False)
    named = ("empty.jpg", "text.jpg", "truncated.jpg")
    assert all(f"{only_bad / 'b' / n}: " in str(e.value) for n in named)
    with pytest.raises(ValueError, match="write_mode"):
        write_beton(folder, tmp_path / "y.beton", write_mode="png", progress=False)


@pytest.fixture(scope="module")
def odd_sizes(tmp_path_factory) -> Path:
    """Real photos of sizes at and past the size rule's edges (names: ``<width>x<height>``)."""
    root = tmp_path_factory.mktemp("odd")
    for c in ("a", "b"):
        (root / c).mkdir()
        Image.fromarray(photo("chelsea", (60, 80))).save(root / c / "normal.jpg", quality=90)
    Image.fromarray(np.full((1, 1, 3), 128, np.uint8)).save(root / "a" / "1x1.png")
    Image.fromarray(photo("coffee", (2000, 20))).save(root / "a" / "20x2000.jpg", quality=90)
    Image.fromarray(photo("astronaut", (16, 16))).save(root / "b" / "16x16.png")
    Image.fromarray(photo("coffee", (20, 320))).save(root / "b" / "320x20.jpg", quality=90)
    Image.fromarray(photo("rocket", (320, 20))).save(root / "b" / "20x320.jpg", quality=90)
    return root


def test_size_rule_skips_what_no_crop_can_use_and_says_why(odd_sizes, tmp_path):
    from pipelines.datasets.folder import stored_size

    s = write_beton(odd_sizes, tmp_path / "x.beton", num_workers=1, progress=False)
    reasons = {Path(p).name: why for p, why in s.skipped}
    assert set(reasons) == {"1x1.png", "20x2000.jpg"}
    assert reasons["1x1.png"] == "too small (1x1 px: shorter side < min_side 16)"
    assert "20x2000 px, 2x256 once shrunk to max_resolution 256" in reasons["20x2000.jpg"]
    assert s.skipped_counts == {"too small": 2} and s.per_class == {"a": 1, "b": 4}
    text = format_summary(s)
    assert "skipped: 2 file(s) (too small 2)" in text and "1x1.png" in text
    shapes = sorted(img.shape[:2] for img, _ in read_beton(tmp_path / "x.beton"))
    assert shapes == [(16, 16), (16, 256), (60, 80), (60, 80), (256, 16)]  # kept: 16 px
    assert stored_size(2000, 20, 256) == (256, 2) and stored_size(2000, 20, None) == (2000, 20)
    assert stored_size(20, 2000, 64) == (0, 64)  # FFCV's resizer would make an empty picture
    # an aspect limit of its own, and strict mode stops at the first picture the rule skips
    s = write_beton(odd_sizes, tmp_path / "y.beton", max_aspect=10, num_workers=1, progress=False)
    elongated = {Path(p).name for p, why in s.skipped if why.startswith("too elongated")}
    assert elongated == {"20x2000.jpg", "320x20.jpg", "20x320.jpg"}
    with pytest.raises(BadImageError, match="1x1.png: too small"):
        write_beton(odd_sizes, tmp_path / "z.beton", strict=True, progress=False)
    for bad in (dict(min_side=1), dict(min_side=300), dict(max_aspect=0.5)):
        with pytest.raises(ValueError, match="min_side|max_aspect"):
            write_beton(odd_sizes, tmp_path / "z.beton", progress=False, **bad)
    assert not (tmp_path / "z.beton").exists()


def test_tool_reports_skipped_files_in_a_sidecar(odd_sizes, tmp_path):
    out = tmp_path / "t.beton"
    cmd = [sys.executable, "tools/write_beton.py", "--data-dir", str(odd_sizes), "--out", str(out)]
    r = subprocess.run([*cmd, "--no-progress"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "skipped: 2 file(s) (too small 2)" in r.stdout and "1x1.png: too small" in r.stdout
    report = Path(f"{out}.skipped.tsv").read_text().splitlines()
    assert [Path(line.split("\t")[0]).name for line in report] == ["1x1.png", "20x2000.jpg"]
    r = subprocess.run([*cmd, "--no-progress", "--min-side", "2"], cwd=ROOT, capture_output=True)
    assert r.returncode == 0  # the floor: 1 px sides only; the sidecar is this run's list
    assert Path(f"{out}.skipped.tsv").read_text().count("\n") == 1
