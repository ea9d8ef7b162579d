"""train/evaluate.py and ipmix_train/corruptions.py: calibration, mCE, the ImageNet-C layout, the
corruption cache and the error messages, on real photos (scikit-image) and tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ipmix_train import corruptions as C
from ipmix_train.checkpoint import CheckpointError, rng_state, save_checkpoint
from ipmix_train.evaluate import (
    corruption_summary,
    list_imagefolder,
    load_model,
    main,
    scores,
)
from ipmix_train.models import build_model


def _logits_with_confidence(conf: np.ndarray, hit: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """Two-class logits whose top softmax probability is ``conf`` (> 0.5), and labels that
    make the top class right exactly where ``hit``."""
    conf = torch.tensor(conf, dtype=torch.float64)
    logits = torch.stack([conf.log(), (1 - conf).log()], dim=1).float()
    labels = np.where(hit, 0, 1)
    return logits, labels


# ---------------------------------------------------------------------- calibration
def test_calibration_perfectly_calibrated_is_zero() -> None:
    conf, hit = [], []
    for c in (0.6, 0.7, 0.8, 0.9):  # bins of 100 at confidence c with exactly 100c right
        conf.append(np.full(100, c))
        hit.append(np.arange(100) < round(100 * c))
    logits, labels = _logits_with_confidence(np.concatenate(conf), np.concatenate(hit))
    res = scores(logits, labels)
    assert res["calib_rms_pct"] == pytest.approx(0.0, abs=1e-4)
    assert res["top1_err_pct"] == pytest.approx(100 - 75.0)


def test_calibration_known_miscalibration() -> None:
    # bin 1: confidence 0.7, 70 of 100 right (gap 0); bin 2: confidence 0.9, 60 right
    # (gap 0.3): RMS = sqrt(0.5 * 0 + 0.5 * 0.3^2) = 0.212132
    conf = np.concatenate([np.full(100, 0.7), np.full(100, 0.9)])
    hit = np.concatenate([np.arange(100) < 70, np.arange(100) < 60])
    logits, labels = _logits_with_confidence(conf, hit)
    assert scores(logits, labels)["calib_rms_pct"] == pytest.approx(100 * np.sqrt(0.045), abs=1e-4)


# ---------------------------------------------------------------------- mCE
def test_mce_normalised_by_alexnet_hand_computed() -> None:
    errors = {}
    for c in C.CORRUPTIONS:  # every corruption at half AlexNet's error: CE 50
        a = 100 * C.ALEXNET_ERR[c]
        errors[c] = dict(zip(C.SEVERITIES, (0.4 * a, 0.5 * a, 0.6 * a, 0.5 * a, 0.5 * a)))
    errors["gaussian_noise"] = dict(zip(C.SEVERITIES, (10.0, 20.0, 30.0, 40.0, 50.0)))
    res = corruption_summary(errors)
    # gaussian noise: sum 150 / (5 x 88.6428) = 33.8437%; mCE = (14 x 50 + 33.8437) / 15
    assert res["ce_alexnet_pct"]["gaussian_noise"] == pytest.approx(33.84370, abs=1e-4)
    assert res["ce_alexnet_pct"]["fog"] == pytest.approx(50.0)
    assert res["mce_pct"] == pytest.approx((14 * 50 + 33.84370) / 15, abs=1e-4)
    assert res["corruption_err_pct"]["gaussian_noise"] == pytest.approx(30.0)
    means = [np.mean(list(e.values())) for e in errors.values()]
    assert res["mean_corruption_err_pct"] == pytest.approx(np.mean(means))


def test_mce_needs_all_fifteen_corruptions() -> None:
    res = corruption_summary({"fog": {s: 10.0 for s in C.SEVERITIES}})
    assert "mce_pct" not in res and res["mean_corruption_err_pct"] == pytest.approx(10.0)


# ---------------------------------------------------------------------- data layouts
def _write_folder(root: Path, images: np.ndarray, classes=("cat", "coffee")) -> Path:
    for i, img in enumerate(images):
        d = root / classes[i % len(classes)]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i}.png")
    return root


_EVAL = {"mean": [0.5] * 3, "std": [0.5] * 3, "image_size": 32}


def _checkpoint(
    path: Path,
    classes: int,
    arch: str = "cifar_resnet8",
    config: dict | None = None,
    eval_entry: dict | None = _EVAL,
) -> Path:
    """A training checkpoint of a fresh model; ``config`` defaults to ``{"arch": arch}``;
    ``eval_entry=None`` leaves out the ``eval`` entry (as train/imagenet.py does)."""
    torch.manual_seed(0)
    model = build_model(arch, classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": 1,
        "step_in_epoch": 0,
        "step": 1,
        "rng": rng_state(),
        "config": {"arch": arch} if config is None else config,
    }
    if eval_entry is not None:
        state["eval"] = eval_entry
    return save_checkpoint(path, state)


def test_imagenet_c_layout_is_parsed(tmp_path, photos32) -> None:
    root = tmp_path / "inc"
    for c, s in (("gaussian_noise", 1), ("gaussian_noise", 3), ("fog", 5)):
        _write_folder(root / c / str(s), photos32)
    found = C.find_imagenet_c(root)
    assert sorted(found) == ["fog", "gaussian_noise"]
    assert sorted(found["gaussian_noise"]) == [1, 3]
    assert found["fog"][5] == root / "fog" / "5"


def test_imagenet_c_bad_layout_names_the_folder(tmp_path, photos32) -> None:
    _write_folder(tmp_path / "inc" / "fog" / "6", photos32)
    with pytest.raises(ValueError, match=r"fog/6.*severity"):
        C.find_imagenet_c(tmp_path / "inc")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty.*no <corruption>"):
        C.find_imagenet_c(tmp_path / "empty")


def test_evaluate_cli_with_imagenet_c_folder(tmp_path, photos32, capsys) -> None:
    val = _write_folder(tmp_path / "val", photos32)
    inc = tmp_path / "inc"
    for s in (1, 2):
        _write_folder(inc / "contrast" / str(s), photos32[::-1].copy())
    ckpt = _checkpoint(tmp_path / "run" / "checkpoint.pt", 2)
    out = tmp_path / "res" / "results.json"
    rc = main(
        [
            "--checkpoint",
            str(ckpt.parent),
            "--val-data",
            str(val),
            "--imagenet-c",
            str(inc),
            "--out",
            str(out),
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    res = json.loads(out.read_text())
    assert res["clean"]["n"] == 4 and sorted(res["corrupted"]["contrast"]) == ["1", "2"]
    assert res["corrupted"]["contrast"]["1"]["n"] == 4 and "mce_pct" not in res
    assert out.with_suffix(".png").stat().st_size > 1000
    assert "contrast" in capsys.readouterr().out


# ---------------------------------------------------------------------- corruption cache
@pytest.mark.parametrize("name", ["gaussian_noise", "glass_blur"])
def test_corruptions_are_deterministic(photos32, name) -> None:
    """Keyed by (seed, corruption, severity, index); glass_blur takes its own seed argument
    (else it draws from a fresh default_rng, another result on every call)."""
    a = C.corrupt_images(photos32, name, 3, seed=0)
    assert np.array_equal(a, C.corrupt_images(photos32, name, 3, seed=0))
    assert not np.array_equal(a, C.corrupt_images(photos32, name, 3, seed=1))
    assert a.dtype == np.uint8 and a.shape == photos32.shape
    assert np.abs(a.astype(int) - photos32).mean() > 5  # it did corrupt
    # a chunk of the set gets the pixels of the same images in the whole set
    assert np.array_equal(a[2:], C.corrupt_images(photos32[2:], name, 3, seed=0, start=2))


def test_corruption_cache_is_reused(tmp_path, photos32, monkeypatch) -> None:
    labels = np.arange(4)
    kw = dict(corruptions=("gaussian_noise", "contrast"), severities=(1, 4), progress=False)
    folder, manifest = C.corrupted_set(tmp_path, photos32, labels, **kw)
    assert manifest["images"] == 4 and len(manifest["files"]) == 2 + 4
    first = C.load_variant(folder, "contrast", 4)
    assert first.shape == photos32.shape and not np.array_equal(first, photos32)

    def fail(*a, **k):
        raise AssertionError("regenerated a complete cache")

    monkeypatch.setattr(C, "corrupt_images", fail)
    again, _ = C.corrupted_set(tmp_path, photos32, labels, **kw)
    assert again == folder and np.array_equal(C.load_variant(again, "contrast", 4), first)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary folder left behind


def test_half_written_cache_is_detected(tmp_path, photos32) -> None:
    labels = np.arange(4)
    kw = dict(corruptions=("shot_noise",), severities=(2,), progress=False)
    folder, _ = C.corrupted_set(tmp_path, photos32, labels, **kw)
    variant = folder / "shot_noise" / "2.npy"
    good = variant.read_bytes()
    variant.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(C.CacheError, match=r"shot_noise/2\.npy.*manifest says"):
        C.check_cache(folder)
    (folder / C.MANIFEST).unlink()  # as if the writer died before finishing
    with pytest.raises(C.CacheError, match=f"{folder.name}.*incomplete.*no manifest"):
        C.corrupted_set(tmp_path, photos32, labels, regenerate=False, **kw)
    with pytest.warns(UserWarning, match="regenerating"):
        again, _ = C.corrupted_set(tmp_path, photos32, labels, **kw)
    assert again == folder and variant.read_bytes() == good


# ---------------------------------------------------------------------- clear errors
def test_missing_checkpoint_is_named(tmp_path, capsys, photos32) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pt: no such checkpoint"):
        load_model(tmp_path / "nope.pt")
    val = _write_folder(tmp_path / "val", photos32)
    (tmp_path / "run").mkdir()  # a run directory without its checkpoint.pt
    rc = main(["--checkpoint", str(tmp_path / "run"), "--val-data", str(val), "--no-progress"])
    assert rc == 2 and "run/checkpoint.pt: no such checkpoint file" in capsys.readouterr().err


def test_checkpoint_of_another_architecture(tmp_path) -> None:
    ckpt = _checkpoint(tmp_path / "c.pt", 10, arch="cifar_resnet14")
    with pytest.raises(CheckpointError, match=r"c\.pt: weights do not fit cifar_resnet8"):
        load_model(ckpt, arch="cifar_resnet8")
    model, info = load_model(ckpt)
    assert info["arch"] == "cifar_resnet14" and info["num_classes"] == 10


def test_checkpoint_of_another_class_count(tmp_path) -> None:
    ckpt = _checkpoint(tmp_path / "c.pt", 10)
    with pytest.raises(CheckpointError, match=r"c\.pt: .*10 classes, the data has 2"):
        load_model(ckpt, num_classes=2)


def test_empty_val_folder(tmp_path, capsys) -> None:
    (tmp_path / "val").mkdir()
    with pytest.raises(ValueError, match=r"val: no class folders"):
        list_imagefolder(tmp_path / "val")
    (tmp_path / "val" / "cat").mkdir()
    with pytest.raises(ValueError, match=r"val: no image files"):
        list_imagefolder(tmp_path / "val")
    ckpt = _checkpoint(tmp_path / "c.pt", 2)
    rc = main(["--checkpoint", str(ckpt), "--val-data", str(tmp_path / "val"), "--no-progress"])
    assert rc == 2 and "val: no image files" in capsys.readouterr().err


def test_trainer_checkpoint_normalisation_follows_its_config(tmp_path) -> None:
    """A train/imagenet.py checkpoint has no ``eval`` entry: mean/std come from its
    TrainConfig (the IPMix preset's with IPMix on, ImageNet's without)."""
    from ipmix_ops.config import IMAGENET_MEAN
    from ipmix_train.config import make_config

    for fractals, preset, mean in (("f.zip", "cifar", [0.5] * 3), (None, None, IMAGENET_MEAN)):
        cfg = make_config(
            arch="cifar_resnet8",
            fractals=fractals,
            ipmix_preset=preset,
            image_size=32,
            val_image_size=24,
        ).to_dict()
        ckpt = _checkpoint(tmp_path / "c.pt", 10, config=cfg, eval_entry=None)
        _, info = load_model(ckpt)
        assert info["mean"] == pytest.approx(mean) and info["image_size"] == 24


def test_checkpoint_says_whether_val_images_are_cropped(tmp_path) -> None:
    """The robustness experiment's checkpoints record ``val_crop: false`` (32 px images are
    evaluated whole); others default to the 224/256 centre crop."""
    _, info = load_model(_checkpoint(tmp_path / "a.pt", 10))
    assert info["val_crop"] is True
    _, info = load_model(
        _checkpoint(tmp_path / "b.pt", 10, eval_entry={**_EVAL, "val_crop": False})
    )
    assert info["val_crop"] is False
