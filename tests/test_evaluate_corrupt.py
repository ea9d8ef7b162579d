"""train/evaluate.py at scale: streamed on-the-fly corruptions on worker processes and their
cost estimate, partial ImageNet-C trees, when an mCE is comparable, and the units of the
results (real photos, tiny models; the full 15 x 5 run is ``slow``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import photo
from test_evaluate import _checkpoint, _write_folder

from fractal_store.store import rank_share_of_cores
from ipmix_train import corruptions as C
from ipmix_train.corrupt_stream import Estimate, InlineExecutor, measure
from ipmix_train.evalreport import format_table
from ipmix_train.evalscore import Tally, corruption_summary, mce_caveats, upgrade_keys
from ipmix_train.evalsets import imagefolder_set, list_imagefolder
from ipmix_train.evaluate import load_model, main

_EVAL = {"mean": [0.5] * 3, "std": [0.5] * 3, "image_size": 32}


def run_cli(ckpt: Path, val: Path, flags: str = "", *more: str) -> int:
    """train/evaluate.py's ``main`` on the CPU, no progress bars; ``flags`` split on spaces."""
    base = ["--checkpoint", str(ckpt), "--val-data", str(val), "--no-progress", "--device", "cpu"]
    return main([*base, *flags.split(), *more])


def _eight(photos32: np.ndarray) -> np.ndarray:
    """8 distinct 32 px images: the 4 photos and their mirror images."""
    return np.ascontiguousarray(np.concatenate([photos32, photos32[:, :, ::-1]]))


def _direct(ckpt: Path, images: np.ndarray, labels: np.ndarray, variants, seed=0) -> dict:
    """Scores computed here, without the stream: the whole set corrupted at once."""
    from pipelines.contract import Normalise

    model, info = load_model(ckpt)
    norm = Normalise(info["mean"], info["std"])
    out = {}
    for v in [None, *variants]:
        x = images if v is None else C.corrupt_images(images, *v, seed=seed)
        t = Tally(len(x))
        with torch.no_grad():
            t.add(0, model(norm(torch.from_numpy(x).permute(0, 3, 1, 2))), labels)
        out[v] = t.scores()
    return out


# ---------------------------------------------------------------------- streamed on the fly
VARIANTS = [(c, s) for c in ("gaussian_noise", "contrast") for s in (2, 5)]


def test_on_the_fly_is_streamed_on_workers_and_matches_corrupting_the_whole_set(
    tmp_path, photos32, capsys, monkeypatch
) -> None:
    val = _write_folder(tmp_path / "val", _eight(photos32))
    ckpt = _checkpoint(tmp_path / "run" / "checkpoint.pt", 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")  # default workers: all this node's cores
    out = tmp_path / "res.json"
    flags = "--corrupt-on-the-fly --corruptions gaussian_noise contrast --severities 2 5"
    rc = run_cli(ckpt, val, flags + " --no-crop --batch-size 3", "--out", str(out))
    assert rc == 0, capsys.readouterr().err
    res = json.loads(out.read_text())
    text = capsys.readouterr().out
    assert "8 images x 2 corruptions x 2 severities = 32 corrupted 32 px images" in text
    assert "CPU-hours" in text and "streamed" in text
    est = res["corruption_estimate"]
    assert est["workers"] == rank_share_of_cores()  # forkserver processes when > 1
    assert est["images"] == 8 and est["variants"] == 4 and est["cache_bytes"] == 0
    assert est["cpu_hours"] > 0 and est["sample"] == 2
    written = sorted(p.name for p in tmp_path.iterdir())  # streamed: nothing cached
    assert written == ["res.json", "res.png", "run", "val"]
    assert res["corruptions"].startswith("imagecorruptions on the val set, streamed")
    # the same scores as corrupting the whole set at once (keyed by image index)
    clean = imagefolder_set(val, 32, crop=False)
    pixels = np.concatenate([b for _, b, _ in clean.batches(50)])
    want = _direct(ckpt, pixels, clean.labels, VARIANTS)
    assert res["clean"] == pytest.approx(want[None], abs=1e-9)
    for c, s in VARIANTS:
        assert res["corrupted"][c][str(s)] == pytest.approx(want[(c, s)], abs=1e-9), (c, s)
    assert "mce_pct" not in res and "ce_alexnet_pct" not in res
    assert len(res["imagenet_c_missing"]) == 15


def test_stream_does_not_depend_on_batches_chunks_or_window(tmp_path, photos32) -> None:
    from ipmix_train.corrupt_stream import OnTheFly
    from ipmix_train.evalcore import evaluate

    val = _write_folder(tmp_path / "val", _eight(photos32))
    ckpt = _checkpoint(tmp_path / "c.pt", 2)
    model, info = load_model(ckpt)
    clean = imagefolder_set(val, 32, crop=False)
    pixels = np.concatenate([b for _, b, _ in clean.batches(50)])
    _, items = list_imagefolder(val)
    assert np.array_equal(pixels, _eight(photos32)[[int(p.stem) for p, _ in items]])  # PNG
    want = _direct(ckpt, pixels, clean.labels, VARIANTS)
    otf = OnTheFly(("gaussian_noise", "contrast"), (2, 5), InlineExecutor(), window=1, chunk=2)
    res = evaluate(model, info, clean, on_the_fly=otf, batch_size=5, progress=False)
    assert res["clean"] == pytest.approx(want[None], abs=1e-9)
    for c, s in VARIANTS:
        assert res["corrupted"][c][s] == pytest.approx(want[(c, s)], abs=1e-9), (c, s)
    assert res["mce_comparable"] is False


def test_estimate_only_prints_the_cost_and_stops(tmp_path, photos32, capsys) -> None:
    val = _write_folder(tmp_path / "val", photos32)
    ckpt = _checkpoint(tmp_path / "c.pt", 2)
    out = tmp_path / "r.json"
    flags = "--corrupt-on-the-fly --corruptions contrast zoom_blur --estimate-only"
    rc = run_cli(ckpt, val, flags + " --estimate-sample 1 --workers 1", "--out", str(out))
    text = capsys.readouterr().out
    assert rc == 0 and "4 images x 2 corruptions x 5 severities = 40 corrupted" in text
    assert "measured on 1 sample image(s)" in text
    assert re.search(r"slowest (contrast|zoom_blur) \d\.\d{3} s per image per severity", text)
    assert "clean:" not in text and not out.exists()  # estimated, nothing evaluated


def test_estimate_extrapolates_to_imagenet_scale() -> None:
    per = {c: {s: 0.1 for s in C.SEVERITIES} for c in C.CORRUPTIONS}
    per["glass_blur"] = {s: 1.0 for s in C.SEVERITIES}
    e = Estimate(50_000, 224, workers=8, sample=2, seconds_per_image=per)
    assert e.variants == 75
    assert e.cpu_hours == pytest.approx(50_000 * (14 * 5 * 0.1 + 5 * 1.0) / 3600)  # 166.7
    assert e.hours == pytest.approx(e.cpu_hours / 8)
    text = "\n".join(e.lines())
    assert "50,000 images x 15 corruptions x 5 severities = 3,750,000 corrupted 224 px" in text
    assert "166.67 CPU-hours, 20.83 h on 8 worker processes" in text
    short = Estimate(20, 32, 2, 2, {"fog": {1: 0.5, 5: 1.0}}).lines()[2]
    assert (
        short
        == "estimate: 0.01 CPU-hours (30.0 s of CPU time), 15.0 s on 2 worker processes (at best),"
        " corrupting only: decoding and the model's forward passes come on top"
    )
    assert "slowest glass_blur 1.000 s" in text and "nothing is written" in text
    # the raw cache the issue measured: ~570 GB for ImageNet's val set at 224 px
    nbytes = C.cache_bytes(50_000, 224, 75)
    assert nbytes == 50_000 * 224 * 224 * 3 * 76
    cached = Estimate(50_000, 224, 8, 2, per, cache_bytes=nbytes)
    assert "cache: 572.0 GB of raw uint8 arrays" in "\n".join(cached.lines())


def test_measure_times_every_variant(photos32) -> None:
    e = measure(photos32[:2], 1000, ("contrast", "fog"), (1, 4), pool=InlineExecutor(), workers=1)
    assert set(e.seconds_per_image) == {"contrast", "fog"}
    assert all(set(v) == {1, 4} and min(v.values()) > 0 for v in e.seconds_per_image.values())
    assert e.cpu_hours == pytest.approx(
        1000 * sum(sum(v.values()) for v in e.seconds_per_image.values()) / 3600
    )


def test_bad_corruption_names_are_refused(tmp_path, photos32, capsys) -> None:
    val = _write_folder(tmp_path / "val", photos32)
    ckpt = _checkpoint(tmp_path / "c.pt", 2)
    assert run_cli(ckpt, val, "--corrupt-on-the-fly --corruptions fogg") == 2
    assert "--corruptions: unknown ['fogg']" in capsys.readouterr().err
    assert run_cli(ckpt, val, "--corrupt-on-the-fly --severities 0") == 2
    assert "--severities must be from (1, 2, 3, 4, 5)" in capsys.readouterr().err
    assert run_cli(ckpt, val, "--corruptions fog --estimate-only") == 2  # no on-the-fly
    assert "--corruptions, --estimate-only only apply with --corrupt-on-the-fly" in (
        capsys.readouterr().err
    )
    assert run_cli(ckpt, val, "--corrupt-on-the-fly --imagenet-c x") == 2
    assert "--imagenet-c and --corrupt-on-the-fly: choose one" in capsys.readouterr().err
    blocker = tmp_path / "a_file"  # --out under a file: refused before evaluating anything
    blocker.write_text("x")
    assert run_cli(ckpt, val, "--out", str(blocker / "r.json")) == 2
    assert f"--out {blocker / 'r.json'}: cannot write there" in capsys.readouterr().err
    assert run_cli(ckpt, val, "--out", str(tmp_path)) == 2
    assert "is a folder; give a file name" in capsys.readouterr().err


def test_cache_larger_than_the_disk_is_refused(tmp_path, photos32, capsys, monkeypatch) -> None:
    import ipmix_train.evaluate as E

    val = _write_folder(tmp_path / "val", photos32)
    ckpt = _checkpoint(tmp_path / "c.pt", 2)
    monkeypatch.setattr(E, "_free_bytes", lambda path: 1000)  # a nearly full disk
    flags = "--corrupt-on-the-fly --corruptions contrast --severities 1 --workers 1"
    rc = run_cli(ckpt, val, flags, "--cache-dir", str(tmp_path / "cache"))
    err = capsys.readouterr()
    assert rc == 2 and "cache: 0.0 GB" in err.out  # 4 x 32 x 32 x 3 x 2 bytes
    assert "--cache-dir" in err.err and "leave out --cache-dir to stream" in err.err
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------------- partial ImageNet-C
def test_partial_imagenet_c_tree_names_what_is_missing(tmp_path, photos32, capsys) -> None:
    val = _write_folder(tmp_path / "val", photos32)
    inc = tmp_path / "inc"
    for c, sev in (("contrast", C.SEVERITIES), ("pixelate", C.SEVERITIES), ("fog", (1, 2))):
        for s in sev:
            _write_folder(inc / c / str(s), C.corrupt_images(photos32, c, s))
    ckpt = _checkpoint(tmp_path / "run" / "checkpoint.pt", 2)
    out = tmp_path / "r.json"
    rc = run_cli(ckpt, val, "--imagenet-c", str(inc), "--out", str(out))
    text = capsys.readouterr().out
    assert rc == 0
    res = json.loads(out.read_text())
    missing = res["imagenet_c_missing"]
    assert len(missing) == 13 and missing["fog"] == [3, 4, 5] and missing["snow"] == [1, 2, 3, 4, 5]
    assert "mce_pct" not in res and res["mce_partial_over"] == ["contrast", "pixelate"]
    ce = {
        c: np.mean([res["corrupted"][c][str(s)]["top1_err_pct"] for s in C.SEVERITIES])
        / C.ALEXNET_ERR[c]
        for c in ("contrast", "pixelate")
    }
    assert res["ce_alexnet_pct"] == pytest.approx(ce)
    assert res["mce_partial_pct"] == pytest.approx(np.mean(list(ce.values())))
    assert "ImageNet-C variants missing: gaussian_noise, " in text
    assert "fog (severities 3, 4, 5)" in text and "partial mCE over the 2 complete" in text
    assert res["mce_comparable"] is False and res["mce_caveats"][0].startswith("partial")
    assert "generated" not in " ".join(res["mce_caveats"])  # read from files, not made here


def test_summary_without_any_complete_corruption_says_so() -> None:
    res = corruption_summary({"fog": {1: 10.0}})
    assert "mce_pct" not in res and "mce_partial_pct" not in res
    assert res["imagenet_c_missing"]["fog"] == [2, 3, 4, 5]
    assert res["mean_corruption_err_pct"] == pytest.approx(10.0)


# ---------------------------------------------------------------------- comparability
def test_mce_caveats_name_every_departure_from_imagenet() -> None:
    wnids = [f"n{i:08d}" for i in range(1000)]
    ok = dict(num_classes=1000, image_size=224, images=50_000, classes=wnids, generated=False)
    assert mce_caveats(**ok) == []
    small = mce_caveats(
        num_classes=4, image_size=64, images=400, classes=list("abcd"), generated=True
    )
    assert small == [
        "4 classes, not ImageNet's 1000",
        "64 px inputs, not 224",
        "400 val images, not ImageNet's 50,000",
        "class folders are not ImageNet's WordNet ids (n01440764, ...)",
        "corruptions generated here with imagecorruptions (own random draws, no JPEG round "
        "trip), not the released ImageNet-C files",
    ]
    assert mce_caveats(**{**ok, "classes": None}) == []  # a .beton: names unknown


def test_table_prints_the_caveats_next_to_the_mce() -> None:
    errors = {c: {s: 50.0 for s in C.SEVERITIES} for c in C.CORRUPTIONS}
    res = {"clean": {"top1_err_pct": 5.0, "top5_err_pct": 1.0, "calib_rms_pct": 2.0, "n": 400}}
    res["corrupted"] = {c: {s: {"top1_err_pct": 50.0} for s in C.SEVERITIES} for c in C.CORRUPTIONS}
    res.update(corruption_summary(errors), corrupted_calib_rms_pct=9.0)
    res["mce_caveats"] = ["4 classes, not ImageNet's 1000"]
    text = format_table(res)
    assert "mCE (AlexNet-normalised, ImageNet-C convention)" in text
    assert "NOT comparable to published ImageNet-C mCEs: 4 classes, not ImageNet's 1000" in text
    res["mce_caveats"] = []
    assert "NOT comparable" not in format_table(res)


@pytest.mark.slow
def test_full_mce_of_a_small_set_carries_the_caveat(tmp_path, capsys) -> None:
    """The issue's case: all 15 x 5 on the fly for a 4-class 64 px set."""
    names = ("astronaut", "chelsea", "coffee", "rocket")
    val = _write_folder(tmp_path / "val", np.stack([photo(n, 64) for n in names]), names)
    ckpt = _checkpoint(tmp_path / "c.pt", 4, eval_entry={**_EVAL, "image_size": 64})
    out = tmp_path / "r.json"
    rc = run_cli(ckpt, val, "--corrupt-on-the-fly", "--out", str(out))
    text = capsys.readouterr().out
    res = json.loads(out.read_text())
    assert rc == 0 and "mce_pct" in res and res["mce_comparable"] is False
    assert "4 classes, not ImageNet's 1000" in res["mce_caveats"]
    assert "64 px inputs, not 224" in res["mce_caveats"]
    assert "NOT comparable to published ImageNet-C mCEs" in text


# ---------------------------------------------------------------------- units
def test_results_name_their_units(tmp_path, photos32) -> None:
    val = _write_folder(tmp_path / "val", photos32)
    ckpt = _checkpoint(tmp_path / "c.pt", 2)
    out = tmp_path / "r.json"
    flags = "--corrupt-on-the-fly --corruptions contrast --severities 1 --workers 1"
    assert run_cli(ckpt, val, flags, "--out", str(out)) == 0
    res = json.loads(out.read_text())
    assert sorted(res["clean"]) == ["calib_rms_pct", "n", "top1_err_pct", "top5_err_pct"]
    assert sorted(res["corrupted"]["contrast"]["1"]) == sorted(res["clean"])
    for k in ("mean_corruption_err_pct", "corrupted_calib_rms_pct", "corruption_err_pct"):
        assert k in res
    assert res["units"]["*_pct"] == "percent (0-100)"
    old = {
        "clean": {"top1_err": 12.0, "calib_rms": 3.0, "n": 4},
        "mce": 70.0,
        "corrupted": {"fog": {"1": {"top1_err": 30.0}}},
        "corruption_err": {"fog": 30.0},
    }
    assert upgrade_keys(old) == {
        "clean": {"top1_err_pct": 12.0, "calib_rms_pct": 3.0, "n": 4},
        "mce_pct": 70.0,
        "corrupted": {"fog": {"1": {"top1_err_pct": 30.0}}},
        "corruption_err_pct": {"fog": 30.0},
    }


def test_robustness_run_written_with_old_keys_is_reused(tmp_path) -> None:
    """A per-run results.json of an earlier version (unit-less keys) still summarises."""
    from ipmix_train.robustness import Spec, _spec_dict, summarize, train_run

    spec = Spec.quick()
    run = tmp_path / "vanilla-s0"
    run.mkdir()
    old = {
        "key": {"method": "vanilla", "seed": 0, "spec": _spec_dict(spec)},
        "clean": {"top1_err": 20.0, "top5_err": 2.0, "calib_rms": 4.0, "n": 10},
        "mean_corruption_err": 50.0,
        "corrupted_calib_rms": 9.0,
        "train_seconds": 1.0,
    }
    (run / "results.json").write_text(json.dumps(old))
    r = train_run("vanilla", 0, spec, {}, run, progress=False)  # no training: reused
    s = summarize({"vanilla": [r]})["vanilla"]
    assert s["clean_err_pct"] == 20.0 and s["mean_corruption_err_pct"] == 50.0
    assert s["calib_rms_pct"] == 4.0 and s["corrupted_calib_rms_pct"] == 9.0
