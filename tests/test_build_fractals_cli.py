"""tools/build_fractals.py as a user runs it: a working build, and clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import fractal_store as fs

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "build_fractals.py"


def run_tool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_build_with_preview_and_summary(tmp_path):
    out, preview = tmp_path / "f.zip", tmp_path / "sheet.png"
    res = run_tool(
        "--out",
        str(out),
        "--count",
        "6",
        "--size",
        "32",
        "--seed",
        "2",
        "--workers",
        "2",
        "--preview",
        str(preview),
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    assert "6 images of 32x32" in res.stdout and "bytes per image" in res.stdout
    assert "rejected" in res.stdout
    with fs.open(out) as store:
        assert len(store) == 6 and store.header["generator"]["seed"] == 2
        assert store.encoding == "webp"
        direct = tmp_path / "direct.zip"
        fs.build_store(direct, 6, 32, 2, workers=1, progress=False)
        assert direct.read_bytes() == out.read_bytes()  # CLI == library, any worker count
    sheet = Image.open(preview)
    assert sheet.size[0] > 32 * 6 and sheet.mode == "RGB"


def test_png_flag_writes_a_png_store_with_the_same_pixels(tmp_path):
    out = tmp_path / "p.zip"
    res = run_tool("--out", str(out), "--count", "3", "--size", "24", "--png", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "(png)" in res.stdout
    webp = tmp_path / "w.zip"
    fs.build_store(webp, 3, 24, 0, workers=1, progress=False)
    with fs.open(out) as a, fs.open(webp) as b:
        assert a.encoding == "png" and b.encoding == "webp"
        assert (a.load_bank() == b.load_bank()).all()


def test_import_folder_through_the_tool(tmp_path):
    src = tmp_path / "pics"
    src.mkdir()
    Image.new("RGB", (50, 30), (200, 10, 10)).save(src / "red.png")
    (src / "readme.md").write_text("hello")
    out = tmp_path / "imp.zip"
    res = run_tool("--out", str(out), "--size", "16", "--from-folder", str(src), "--quiet")
    assert res.returncode == 0, res.stderr
    assert "skipped readme.md" in res.stdout
    assert len(fs.open(out)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "0"], "--count: must be a positive integer"),
        (["--count", "-3"], "--count: must be a positive integer"),
        (["--count", "two"], "--count: expected an integer"),
        (["--count", "2", "--seed", "-1"], "--seed must be >= 0"),
        (["--count", "2", "--jpeg", "0"], "--jpeg QUALITY must be in 1..100"),
        (["--count", "2", "--jpeg", "90", "--png"], "--jpeg and --png are exclusive"),
        (["--count", "2", "--families", "spiral"], "invalid choice: 'spiral'"),
        ([], "--count is required"),
    ],
)
def test_bad_arguments_exit_nonzero_with_message(tmp_path, args, message):
    res = run_tool("--out", str(tmp_path / "x.zip"), *args)
    assert res.returncode != 0
    assert message in res.stderr
    assert not (tmp_path / "x.zip").exists()


def test_unwritable_or_missing_destination(tmp_path):
    res = run_tool("--out", str(tmp_path / "missing" / "x.zip"), "--count", "2")
    assert res.returncode != 0 and "does not exist" in res.stderr
    res = run_tool("--out", str(tmp_path), "--count", "2")
    assert res.returncode != 0 and "is a directory" in res.stderr


def test_empty_folder_is_an_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_tool("--out", str(tmp_path / "x.zip"), "--from-folder", str(empty))
    assert res.returncode == 1 and "empty" in res.stderr
    res = run_tool("--out", str(tmp_path / "x.zip"), "--from-folder", str(tmp_path / "nope"))
    assert res.returncode != 0 and "is not a directory" in res.stderr
