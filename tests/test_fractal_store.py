"""The fractal store: round trips (WebP, PNG, JPEG, version-1 stores), byte determinism,
corruption detection, folder import."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fractal_store as fs
from fractal_store.bank_cache import cache_paths
from fractal_store.folder_import import fit_square
from fractal_store.store import image_name

COUNT, SIZE, SEED = 10, 40, 3


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store") / "fractals.zip"
    summary = fs.build_store(path, COUNT, SIZE, SEED, workers=2, progress=False)
    assert summary["count"] == COUNT and summary["bytes"] == path.stat().st_size
    assert set(summary["rejection"]) == set(fs.FAMILIES)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


def _rewrite(src: Path, dst: Path, edit) -> Path:
    """Copy a store member by member, passing each (name, bytes) through ``edit``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info, edit(info.filename, zin.read(info.filename)))
    return dst


def test_round_trip_is_lossless_and_re_renderable(store_path):
    with fs.open(store_path) as store:
        assert len(store) == COUNT and store.size == SIZE and store.encoding == "webp"
        bank = store.load_bank(workers=2)
        assert bank.dtype == np.uint8 and bank.shape == (COUNT, SIZE, SIZE, 3)
        for i in range(COUNT):
            img, rec, _ = fs.draw(SEED, i, SIZE)
            np.testing.assert_array_equal(store[i], img)
            np.testing.assert_array_equal(bank[i], img)
            assert store.params(i) == json.loads(json.dumps(rec))
            np.testing.assert_array_equal(fs.render(store.params(i), SIZE), img)
        np.testing.assert_array_equal(store[-1], store[COUNT - 1])
        small = store.load_bank(size=20, workers=1)
        assert small.shape == (COUNT, 20, 20, 3)
        want = np.asarray(Image.fromarray(bank[4]).resize((20, 20), Image.Resampling.BILINEAR))
        np.testing.assert_array_equal(small[4], want)
        assert store.verify()["ok"]


def test_store_is_inspectable_zip(store_path):
    with zipfile.ZipFile(store_path) as z:
        names = z.namelist()
        assert z.testzip() is None
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
        header = json.loads(z.read("header.json"))
        sums = z.read("checksums.sha256").decode().splitlines()
        data = z.read(image_name(2, "webp"))
    assert {"header.json", "params.jsonl", "checksums.sha256"} <= set(names)
    assert header["format"] == fs.FORMAT_NAME and header["version"] == fs.FORMAT_VERSION
    assert header["count"] == COUNT and header["generator"]["seed"] == SEED
    assert header["encoding"] == "webp" and header["lossless"] is True
    assert sums[2] == f"{hashlib.sha256(data).hexdigest()}  images/000002.webp"
    assert data[:4] == b"RIFF" and data[8:16] == b"WEBPVP8L"  # VP8L: the lossless bitstream
    with Image.open(io.BytesIO(data)) as im:  # a standard file any WebP decoder reads
        assert im.format == "WEBP" and im.size == (SIZE, SIZE)


def test_same_arguments_give_identical_bytes(store_path, tmp_path):
    other = tmp_path / "again.zip"
    fs.build_store(other, COUNT, SIZE, SEED, workers=1, progress=False)
    assert _sha(other) == _sha(store_path)
    fs.build_store(tmp_path / "seed4.zip", COUNT, SIZE, SEED + 1, workers=1, progress=False)
    assert _sha(tmp_path / "seed4.zip") != _sha(store_path)


def test_png_store_round_trip_is_exact_and_matches_webp(store_path, tmp_path):
    path = tmp_path / "png.zip"
    fs.build_store(path, COUNT, SIZE, SEED, workers=2, progress=False, encoding="png")
    with fs.open(path) as png, fs.open(store_path) as webp:
        assert png.encoding == "png" and png.header["png_compress_level"] is not None
        assert png.raw(0)[:8] == b"\x89PNG\r\n\x1a\n"
        np.testing.assert_array_equal(png.load_bank(workers=2), webp.load_bank(workers=1))
        assert [png.params(i) for i in range(COUNT)] == [webp.params(i) for i in range(COUNT)]
    assert store_path.stat().st_size < path.stat().st_size  # WebP is the smaller codec


def _write_v1_store(path: Path, images: list[np.ndarray], records: list[dict]) -> Path:
    """A format-version-1 store (PNG members, no WebP fields), written independently of
    the package's writer, as stores made before WebP became the default look."""
    names = [f"images/{i:06d}.png" for i in range(len(images))]
    blobs = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", compress_level=6)
        blobs.append(buf.getvalue())
    params = b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in records)
    sums = "".join(f"{hashlib.sha256(b).hexdigest()}  {n}\n" for b, n in zip(blobs, names))
    header = {
        "format": fs.FORMAT_NAME,
        "version": 1,
        "count": len(images),
        "size": images[0].shape[0],
        "channels": 3,
        "dtype": "uint8",
        "encoding": "png",
        "jpeg_quality": None,
        "png_compress_level": 6,
        "generator": {"kind": "fractals"},
        "params_sha256": hashlib.sha256(params).hexdigest(),
        "checksums_sha256": hashlib.sha256(sums.encode()).hexdigest(),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, blob in zip(names, blobs):
            z.writestr(name, blob)
        z.writestr("params.jsonl", params)
        z.writestr("checksums.sha256", sums)
        z.writestr("header.json", json.dumps(header))
    return path


def test_version_1_png_stores_still_load(store_path, tmp_path):
    with fs.open(store_path) as new:
        images = [new[i] for i in range(4)]
        records = [new.params(i) for i in range(4)]
    old = _write_v1_store(tmp_path / "old.zip", images, records)
    with fs.open(old) as store:
        assert store.header["version"] == 1 and store.encoding == "png" and len(store) == 4
        np.testing.assert_array_equal(store.load_bank(workers=2), np.stack(images))
        assert store.params(3) == records[3] and store.verify()["ok"]
        np.testing.assert_array_equal(store.load_bank(cache_dir=tmp_path / "c")[2], images[2])
    raw = bytearray(old.read_bytes())  # corruption is still caught in old stores
    raw[raw.find(b"IDAT") + 40] ^= 0x01
    bad = tmp_path / "old_bad.zip"
    bad.write_bytes(bytes(raw))
    with fs.open(bad) as store, pytest.raises(fs.FractalStoreError, match="record 0.*sha256"):
        store[0]


def test_undecodable_webp_with_matching_checksum_names_record(store_path, tmp_path):
    """Bytes that pass the sha256 (e.g. a buggy writer) but are not a valid WebP."""
    broken: dict = {}

    def edit(name, data):
        if name == image_name(1, "webp"):
            data = data[: len(data) // 3]
            broken["sha"] = hashlib.sha256(data).hexdigest()
        return data

    tmp = _rewrite(store_path, tmp_path / "stage.zip", edit)

    def fix(name, data):
        if name == "checksums.sha256":
            lines = data.decode().splitlines()
            lines[1] = f"{broken['sha']}  {image_name(1, 'webp')}"
            data = ("\n".join(lines) + "\n").encode()
            broken["sums"] = hashlib.sha256(data).hexdigest()
        elif name == "header.json":
            data = json.dumps({**json.loads(data), "checksums_sha256": broken["sums"]}).encode()
        return data

    # checksums.sha256 precedes header.json in the archive, so one pass fixes both
    bad = _rewrite(tmp, tmp_path / "undecodable.zip", fix)
    with fs.open(bad) as store:
        np.testing.assert_array_equal(store[0], fs.open(store_path)[0])
        with pytest.raises(fs.FractalStoreError, match=r"record 1 .*cannot decode"):
            store[1]
        with pytest.raises(fs.FractalStoreError, match="record 1"):
            store.load_bank(workers=2)


def test_jpeg_round_trip_within_tolerance(tmp_path):
    path = tmp_path / "jpeg.zip"
    summary = fs.build_store(path, 5, 48, 1, jpeg_quality=95, workers=2, progress=False)
    assert summary["encoding"] == "jpeg"
    with fs.open(path) as store:
        assert store.header["jpeg_quality"] == 95
        for i in range(5):
            err = np.abs(store[i].astype(int) - fs.draw(1, i, 48)[0]).mean()
            assert err < 6, f"record {i}: mean error {err:.2f}"


def test_bit_flip_in_an_image_names_file_and_record(store_path, tmp_path):
    bad = _copy(store_path, tmp_path / "flipped.zip")
    with fs.open(store_path) as store:
        start, length = store._spans[6]
    raw = bytearray(bad.read_bytes())
    raw[start + length // 2] ^= 0x10
    bad.write_bytes(bytes(raw))
    with fs.open(bad) as store:
        np.testing.assert_array_equal(store[5], fs.open(store_path)[5])  # others fine
        with pytest.raises(fs.FractalStoreError, match=r"flipped\.zip.*record 6.*sha256"):
            store[6]
        with pytest.raises(fs.FractalStoreError, match="record 6"):
            store.load_bank(workers=2)
        with pytest.raises(fs.FractalStoreError, match="record 6"):
            store.verify()


@pytest.mark.parametrize("member", ["header.json", "checksums.sha256", "params.jsonl"])
def test_corrupt_metadata_is_detected(store_path, tmp_path, member):
    def edit(name, data):
        return data.replace(b"0", b"1", 1) if name == member else data

    bad = _rewrite(store_path, tmp_path / "meta.zip", edit)
    with pytest.raises(fs.FractalStoreError, match=r"meta\.zip"):
        with fs.open(bad) as store:
            store.params(0)


def test_truncated_and_foreign_files_are_rejected(store_path, tmp_path):
    data = store_path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 100):
        short = tmp_path / f"cut{cut}.zip"
        short.write_bytes(data[:cut])
        with pytest.raises(fs.FractalStoreError, match=rf"cut{cut}\.zip"):
            fs.open(short)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(os.urandom(5000))
    with pytest.raises(fs.FractalStoreError, match="not a readable fractal store"):
        fs.open(junk)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(fs.FractalStoreError, match="header.json.*missing"):
        fs.open(other)
    with pytest.raises(fs.FractalStoreError, match="no such"):
        fs.open(tmp_path / "absent.zip")


def test_wrong_format_or_version_is_rejected(store_path, tmp_path):
    def bump(field, value):
        def edit(name, data):
            if name != "header.json":
                return data
            return json.dumps({**json.loads(data), field: value}).encode()

        return edit

    v3 = _rewrite(store_path, tmp_path / "v3.zip", bump("version", 3))
    with pytest.raises(fs.FractalStoreError, match=r"v3\.zip.*unsupported store version 3"):
        fs.open(v3)
    v1 = _rewrite(store_path, tmp_path / "v1.zip", bump("version", 1))  # v1 had no WebP
    with pytest.raises(fs.FractalStoreError, match=r"v1\.zip.*unknown encoding 'webp'"):
        fs.open(v1)
    fmt = _rewrite(store_path, tmp_path / "fmt.zip", bump("format", "something-else"))
    with pytest.raises(fs.FractalStoreError, match="not a fractal store"):
        fs.open(fmt)


def test_indexing_and_pickling(store_path):
    store = fs.open(store_path)
    with pytest.raises(IndexError):
        store[COUNT]
    with pytest.raises(TypeError):
        store["0"]
    clone = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(clone[3], store[3])
    store.close()
    clone.close()


def test_writes_are_atomic_and_stale_temps_cleaned(tmp_path, monkeypatch):
    target = tmp_path / "atomic.zip"
    stale = tmp_path / ".atomic.zip.partial-999999999"
    stale.write_bytes(b"left by a killed run")

    def boom(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr("fractal_store.build.encode_image", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        fs.build_store(target, 3, 16, 0, workers=1, progress=False)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == [], "temporary files left behind"
    monkeypatch.undo()
    fs.build_store(target, 3, 16, 0, workers=1, progress=False)
    assert fs.open(target).verify()["count"] == 3


def test_bad_arguments_raise_value_errors(tmp_path):
    for kwargs, match in [
        ({"count": 0}, "count"),
        ({"size": 2}, "size"),
        ({"seed": -1}, "seed"),
        ({"families": ["mandelbrot", "nope"]}, "families"),
        ({"jpeg_quality": 0}, "quality"),
        ({"encoding": "gif"}, "unknown encoding"),
        ({"encoding": "png", "jpeg_quality": 90}, "lossless"),
    ]:
        args = {"count": 2, "size": 16, "seed": 0, **kwargs}
        with pytest.raises(ValueError, match=match):
            fs.build_store(tmp_path / "x.zip", progress=False, **args)
    with pytest.raises(fs.FractalStoreError, match="does not exist"):
        fs.build_store(tmp_path / "no" / "x.zip", 2, 16, 0, progress=False)


def test_families_subset_round_robin(tmp_path):
    path = tmp_path / "sub.zip"
    fs.build_store(path, 4, 24, 0, families=["julia", "ifs"], progress=False)
    with fs.open(path) as store:
        assert [store.params(i)["family"] for i in range(4)] == ["julia", "ifs"] * 2


def test_bank_cache_round_trip_and_repair(store_path, tmp_path):
    cache = tmp_path / "cache"
    with fs.open(store_path) as store:
        direct = store.load_bank(size=24)
        first = store.load_bank(size=24, cache_dir=cache)
        np.testing.assert_array_equal(first, direct)
        npy, meta = cache_paths(store, 24, cache)
        assert npy.exists() and meta.exists()
        raw = bytearray(npy.read_bytes())
        raw[-100] ^= 0xFF  # damage the cache: it must be rebuilt, not returned
        npy.write_bytes(bytes(raw))
        np.testing.assert_array_equal(store.load_bank(size=24, cache_dir=cache), direct)


def _photos(folder: Path) -> list[str]:
    from skimage import data

    (folder / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(data.astronaut()).save(folder / "astronaut.jpg", quality=92)
    Image.fromarray(data.chelsea()).save(folder / "sub" / "chelsea.png")
    Image.fromarray(data.coffee()).save(folder / "sub" / "deeper" / "coffee.jpg")
    (folder / "notes.txt").write_text("not a picture")
    (folder / "sub" / "broken.jpg").write_bytes((folder / "astronaut.jpg").read_bytes()[:300])
    return ["astronaut.jpg", "sub/chelsea.png", "sub/deeper/coffee.jpg"]


def test_import_folder_resizes_crops_and_skips(tmp_path):
    src = tmp_path / "pictures"
    src.mkdir()
    good = _photos(src)
    path = tmp_path / "imported.zip"
    summary = fs.import_folder(path, src, 64, workers=2, progress=False)
    assert summary["count"] == 3
    assert sorted(p for p, _ in summary["skipped"]) == ["notes.txt", "sub/broken.jpg"]
    with fs.open(path) as store:
        assert [store.params(i)["source"] for i in range(3)] == good
        assert store.params(2)["source_size"] == [600, 400]
        want = fit_square(Image.open(src / "sub" / "chelsea.png"), 64)
        np.testing.assert_array_equal(store[1], want)  # PNG source: exact
        astro = fit_square(Image.open(src / "astronaut.jpg"), 64).astype(int)
        assert np.abs(store[0].astype(int) - astro).mean() < 4  # JPEG draft decode
        assert store.verify()["count"] == 3


def test_import_empty_or_unreadable_folder_fails_cleanly(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(fs.FractalStoreError, match="empty"):
        fs.import_folder(tmp_path / "e.zip", empty, 32, progress=False)
    (empty / "a.txt").write_text("text")
    with pytest.raises(fs.FractalStoreError, match="no readable pictures"):
        fs.import_folder(tmp_path / "e.zip", empty, 32, progress=False)
    assert not (tmp_path / "e.zip").exists()
    assert not list(tmp_path.glob(".e.zip*"))


def test_contact_sheet_layout():
    tiles = [np.full((8, 8, 3), i * 20, np.uint8) for i in range(5)]
    sheet = fs.contact_sheet(tiles, cols=3, pad=2)
    assert sheet.shape == (2 + 2 * 10, 2 + 3 * 10, 3)
    assert (sheet[12:20, 2:10] == 60).all()  # tile 3 starts the second row
