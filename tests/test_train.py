"""train/imagenet.py: loss, metrics, schedule, recipes, errors, every pipeline, resume,
signals and DDP, on the CPU with a tiny model (resnet18 at 16 px) and real photos
(Fashion-MNIST from the demo set)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import demo_folders, signal_once_started, trainer_env

from ipmix_train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ipmix_train.config import ConfigError, load_recipe, make_config
from ipmix_train.engine import lr_at, param_groups
from ipmix_train.losses import ipmix_loss, jsd_consistency
from ipmix_train.metrics import calibration_rms, topk_correct
from train.imagenet import main, parse_config, run

ROOT = Path(__file__).resolve().parents[1]
TRAINER = str(ROOT / "train" / "imagenet.py")
S = 16  # train/val crop side: resnet18 at 16 px keeps a step well under a second
TINY = dict(arch="resnet18", image_size=S, device="cpu", progress=False, amp=False)

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict[str, Path]:
    """Fashion-MNIST (10 classes) at 16 px: 120 train and 50 val images as ImageFolders."""
    return demo_folders(tmp_path_factory.mktemp("train"), S, 12, 5)


def _log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def _epochs(run_dir: Path) -> list[dict]:
    return [r for r in _log(run_dir) if r["event"] == "epoch"]


# ---------------------------------------------------------------------- metrics and loss
def test_calibration_rms_perfectly_calibrated_is_zero() -> None:
    rng = np.random.default_rng(0)
    conf, hit = [], []
    for c in np.linspace(0.15, 0.95, 9):  # bins of 100 at confidence c, exactly 100c right
        conf.append(np.full(100, c))
        hit.append(np.arange(100) < round(100 * c))
    conf, hit = np.concatenate(conf), np.concatenate(hit)
    order = rng.permutation(conf.size)  # input order must not matter
    assert calibration_rms(conf[order], hit[order]) == pytest.approx(0.0, abs=1e-12)


def test_calibration_rms_known_miscalibration() -> None:
    # 200 samples at confidence 0.9 with half right, 300 at 0.6 with all right:
    # bins (sorted) 0.6|0.6|0.6 gap 0.4, 0.9|0.9 gap 0.4 -> RMS 0.4
    conf = np.r_[np.full(200, 0.9), np.full(300, 0.6)]
    hit = np.r_[np.arange(200) % 2 == 0, np.ones(300, bool)]
    assert calibration_rms(conf, hit) == pytest.approx(0.4)
    # unequal gaps: 100 at 0.7 all right (gap 0.3), 100 at 0.8 none right (gap 0.8)
    conf = np.r_[np.full(100, 0.8), np.full(100, 0.7)]
    hit = np.r_[np.zeros(100, bool), np.ones(100, bool)]
    assert calibration_rms(conf, hit) == pytest.approx(math.sqrt(0.5 * 0.09 + 0.5 * 0.64))
    # the last bin takes the remainder: 150 samples are one bin
    assert calibration_rms(np.full(150, 0.5), np.arange(150) < 60) == pytest.approx(0.1)


def test_topk_correct() -> None:
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.3], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 2, 0])
    assert topk_correct(logits, labels, (1, 2, 5)) == [1.0, 2.0, 3.0]


def test_jsd_loss_matches_spec() -> None:
    g = torch.Generator().manual_seed(0)
    clean, a, b = (torch.randn(8, 5, generator=g) for _ in range(3))
    y = torch.randint(0, 5, (8,), generator=g)
    p = [F.softmax(x, 1) for x in (clean, a, b)]
    m = torch.clamp((p[0] + p[1] + p[2]) / 3, 1e-7, 1)
    kl = [(q * (q.log() - m.log())).sum(1).mean() for q in p]  # KL(p_j || M), batch mean
    want = F.cross_entropy(clean, y) + 12 * sum(kl) / 3
    got = ipmix_loss(torch.cat([clean, a, b]), y, views=3, jsd_lambda=12.0)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert jsd_consistency(clean, clean, clean).item() == pytest.approx(0.0, abs=1e-6)
    assert jsd_consistency(clean, a, b).item() > 0.01


def test_lr_schedule_and_param_groups() -> None:
    kw = dict(lr=1.0, final_lr=0.01, warmup=10)
    assert lr_at(0, 110, **kw) == pytest.approx(0.1)
    assert lr_at(9, 110, **kw) == pytest.approx(1.0)
    assert lr_at(10, 110, **kw) == pytest.approx(1.0)
    assert lr_at(109, 110, **kw) == pytest.approx(0.01)
    assert lr_at(59, 110, lr=1.0, final_lr=0.0, warmup=10) == pytest.approx(0.5, abs=0.02)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    groups = param_groups(model, 5e-4, wd_on_bn_bias=False)
    assert [len(g["params"]) for g in groups] == [1, 3]  # conv weight | conv bias, bn w, b
    assert groups[1]["weight_decay"] == 0.0


# ---------------------------------------------------------------------- options and errors
def test_recipes_load_and_flags_override() -> None:
    for name in ("paper", "fast"):
        load_recipe(ROOT / f"train/configs/{name}.yaml")
    cfg = parse_config(["--config", str(ROOT / "train/configs/paper.yaml"), "--lr", "0.5"])
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.jsd_lambda) == (0.5, 256, 180, 12.0)
    assert cfg.nesterov and cfg.weight_decay == 5e-4 and cfg.final_lr == pytest.approx(5e-7)
    fast = parse_config(["--config", str(ROOT / "train/configs/fast.yaml")])
    assert not fast.use_jsd and not fast.wd_on_bn_bias and fast.label_smoothing == 0.1
    assert (fast.train_size(0), fast.train_size(fast.epochs - 1)) == (160, 192)
    assert fast.crop_scale == (0.08, 1.0)
    cfg = parse_config(["--crop-scale", "0.35", "1", "--bank-cache", "banks"])
    assert cfg.crop_scale == (0.35, 1.0) and cfg.bank_cache == "banks"
    for bad in ([0.5, 0.2], [0.0, 1.0], [0.5], "0.5", [True, 1.0]):
        with pytest.raises(ConfigError, match="crop_scale"):
            make_config(crop_scale=bad)


def test_ipmix_device_flag_reaches_the_train_loader(monkeypatch) -> None:
    import pipelines
    from ipmix_train.engine import DistEnv
    from train.imagenet import Loaders

    assert parse_config([]).ipmix_device == "auto"
    cfg = parse_config(["--ipmix-device", "cuda", "--pipeline", "torch"])
    with pytest.raises(ConfigError, match="ipmix_device"):
        make_config(ipmix_device="gpu")
    seen = []
    monkeypatch.setattr(pipelines, "build_loader", lambda *a, **kw: seen.append(kw))
    loaders = Loaders(cfg, None, DistEnv())
    loaders._build("data", train=True, size=32)
    loaders._build("data", train=False, size=32)
    assert [kw["ipmix_device"] for kw in seen] == ["cuda", "auto"]


def test_unknown_yaml_key_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 0.1\nlearning_rate: 0.2\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        parse_config(["--config", str(bad)])
    with pytest.raises(ConfigError, match="batch_size"):
        make_config(batch_size=0)


def _error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_bad_arguments_give_clear_errors(demo, tmp_path: Path, capsys) -> None:
    train, val = str(demo["train"]), str(demo["val"])
    beton = tmp_path / "x.beton"
    beton.write_bytes(b"not really")
    err = _error(["--pipeline", "ffcv", "--train-data", train, "--val-data", val], capsys)
    assert "--pipeline ffcv reads .beton" in err and train in err
    err = _error(["--pipeline", "torch", "--train-data", str(beton), "--val-data", val], capsys)
    assert "ImageFolder" in err and "--pipeline ffcv" in err
    err = _error(
        ["--pipeline", "torch", "--train-data", train + "_nope", "--val-data", val], capsys
    )
    assert "no such file" in err and "_nope" in err
    err = _error(["--pipeline", "torch", "--train-data", train], capsys)
    assert "--val-data is required" in err
    argv = ["--pipeline", "torch", "--train-data", train, "--val-data", val]
    err = _error([*argv, "--ipmix-preset", "cifar"], capsys)
    assert "--fractals" in err
    err = _error([*argv, "--fractals", str(tmp_path / "none.zip")], capsys)
    assert "none.zip" in err
    (tmp_path / "cache_file").write_text("x")
    err = _error([*argv, "--bank-cache", str(tmp_path / "cache_file")], capsys)
    assert "cache_file" in err and "not a directory" in err
    err = _error([*argv, "--jsd"], capsys)
    assert "--jsd" in err
    err = _error([*argv, "--arch", "resnet_nope", "--device", "cpu"], capsys)
    assert "resnet_nope" in err


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path, capsys) -> None:
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"\x80\x04 this is not a checkpoint")
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        load_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing.pt")
    good = tmp_path / "good.pt"
    save_checkpoint(good, dict(model={}, optimizer={}, epoch=0, step_in_epoch=0, step=0, rng={}))
    good.write_bytes(good.read_bytes()[:100])  # truncated
    with pytest.raises(CheckpointError, match="good.pt"):
        load_checkpoint(good)
    argv = ["--synthetic", "--synthetic-steps", "2", "--arch", "resnet18", "--image-size", "16"]
    argv += ["--num-classes", "10", "--batch-size", "4", "--device", "cpu"]
    err = _error([*argv, "--out", str(ckpt.parent), "--resume"], capsys)
    assert str(ckpt) in err and "corrupt" in err


# ---------------------------------------------------------------------- training runs
@pytest.mark.parametrize(
    "pipeline", ["torch", pytest.param("ffcv", marks=pytest.mark.ffcv), "dali"]
)
def test_each_pipeline_trains_and_loss_goes_down(pipeline: str, demo, tmp_path: Path) -> None:
    train, val = demo["train"], demo["val"]
    if pipeline == "ffcv":
        from pipelines.datasets.beton import write_beton

        train, val = tmp_path / "train.beton", tmp_path / "val.beton"
        write_beton(demo["train"], train, num_workers=1, progress=False)
        write_beton(demo["val"], val, num_workers=1, progress=False)
    cfg = make_config(
        pipeline=pipeline,
        train_data=str(train),
        val_data=str(val),
        epochs=3,
        batch_size=20,
        lr=0.05,
        weight_decay=0.0,
        workers=0 if pipeline == "torch" else 1,
        out=str(tmp_path / "run"),
        **TINY,
    )
    final = run(cfg)
    epochs = _epochs(tmp_path / "run")
    losses = [e["train_loss"] for e in epochs]
    assert len(epochs) == 3 and epochs[-1]["step"] == 18
    assert losses[-1] < 0.85 * losses[0], losses
    for e in epochs:
        assert 0 <= e["val_top1_pct"] <= e["val_top5_pct"] <= 100
        assert 0 <= e["calib_rms_pct"] <= 100
        assert e["images_per_s"] > 0 and 0 <= e["data_wait_pct"] <= 100
    assert final["val_top1_pct"] == epochs[-1]["val_top1_pct"] and final["ranks_agree"]
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["config"]["pipeline"] == pipeline and meta["num_classes"] == 10
    assert meta["versions"]["torch"] and "git_sha" in meta and meta["steps_per_epoch"] == 6
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 3


def test_resume_equals_uninterrupted_run(demo, tmp_path: Path, monkeypatch) -> None:
    """Stopped at step 4 of 7 and resumed: the same weights and momenta as a run that never
    stopped, and the resumed run reads no image of the 4 batches done (the loader starts
    at batch 4 instead of decoding and dropping them)."""
    from pipelines.dataloader.loader import IPMixImageFolder

    common = dict(
        pipeline="torch",
        train_data=str(demo["train"]),
        val_data=str(demo["val"]),
        epochs=2,
        batch_size=16,  # 7 steps per epoch
        lr=0.05,
        warmup_epochs=0.5,
        workers=0,
        **TINY,
    )
    run(make_config(out=str(tmp_path / "a"), max_steps=10, **common))
    run(make_config(out=str(tmp_path / "b"), max_steps=4, **common))  # stops mid-epoch 0
    stopped = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert (stopped["epoch"], stopped["step_in_epoch"], stopped["step"]) == (0, 4, 4)
    read: list[int] = []
    getitem = IPMixImageFolder.__getitem__

    def counted(self, index: int):
        if self.train:
            read.append(index)
        return getitem(self, index)

    monkeypatch.setattr(IPMixImageFolder, "__getitem__", counted)
    run(make_config(out=str(tmp_path / "b"), max_steps=10, resume="auto", **common))
    monkeypatch.undo()
    assert len(read) == (3 + 3) * 16, len(read)  # epoch 0: batches 4-6; epoch 1: 0-2
    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert (a["epoch"], a["step_in_epoch"], a["step"]) == (b["epoch"], b["step_in_epoch"], 10)
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    mom_a = [s["momentum_buffer"] for s in a["optimizer"]["state"].values()]
    mom_b = [s["momentum_buffer"] for s in b["optimizer"]["state"].values()]
    for x, y in zip(mom_a, mom_b, strict=True):
        torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-6)


def _env() -> dict[str, str]:
    return trainer_env(ROOT)


def test_sigterm_saves_a_loadable_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, TRAINER, "--synthetic", "--synthetic-steps", "100000", "--epochs"]
    cmd += ["1", "--arch", "resnet18", "--image-size", "16", "--num-classes", "10"]
    cmd += ["--batch-size", "4", "--device", "cpu", "--no-progress", "--out", str(out)]
    rc, text = signal_once_started(cmd, _env(), out / "config.json")  # after a few steps
    assert rc == 0, text
    assert "stopped by SIGTERM" in text
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] == 0 and 0 < state["step_in_epoch"] == state["step"] < 100000
    assert not list(out.glob(".*.tmp"))
    assert _log(out)[-1]["event"] == "stopped"


@pytest.mark.slow
def test_accuracy_rises_above_chance_on_real_photos(tmp_path: Path) -> None:
    """Fashion-MNIST, 10 classes: a short run reaches well above 10% val top-1."""
    from pipelines.datasets.demo import write_demo_imagefolder

    write_demo_imagefolder(tmp_path / "fm", size=S, train_per_class=80, val_per_class=20)
    cfg = make_config(
        pipeline="torch",
        train_data=str(tmp_path / "fm/train"),
        val_data=str(tmp_path / "fm/val"),
        epochs=2,
        batch_size=32,
        lr=0.02,
        warmup_epochs=0.3,
        weight_decay=5e-5,
        workers=1,
        out=str(tmp_path / "run"),
        **TINY,
    )
    final = run(cfg)
    assert final["val_top1_pct"] > 30.0, final  # chance: 10%; 53% seen


@pytest.mark.slow
def test_ipmix_jsd_training_runs(demo, tmp_path: Path) -> None:
    """IPMix (cifar preset) with JSD: three views through one forward pass, loss logged."""
    import fractal_store

    store = tmp_path / "fractals.zip"
    fractal_store.build_store(store, count=8, size=24, seed=0, progress=False)
    cfg = make_config(
        pipeline="torch",
        train_data=str(demo["train"]),
        val_data=str(demo["val"]),
        fractals=str(store),
        ipmix_preset="cifar",
        epochs=1,
        batch_size=20,
        lr=0.02,
        workers=0,
        out=str(tmp_path / "run"),
        **TINY,
    )
    assert cfg.use_jsd
    final = run(cfg)
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["ipmix"]["jsd"] and meta["ipmix"]["jsd_lambda"] == 12.0
    assert np.isfinite(_epochs(tmp_path / "run")[0]["train_loss"]) and final["step"] == 6


@pytest.mark.slow
def test_ddp_two_processes_gloo(demo, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_port", str(29500 + os.getpid() % 1000), TRAINER, "--pipeline", "torch"]
    cmd += ["--train-data", str(demo["train"]), "--val-data", str(demo["val"]), "--epochs", "1"]
    cmd += ["--arch", "resnet18", "--image-size", str(S), "--batch-size", "20", "--lr", "0.05"]
    cmd += ["--device", "cpu", "--workers", "0", "--no-progress", "--out", str(out)]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    final = _log(out)[-1]
    assert final["event"] == "final" and len(final["param_checksums"]) == 2
    assert final["ranks_agree"], final["param_checksums"]
    epoch = _epochs(out)[0]
    assert epoch["steps"] == 6 and epoch["val_images"] == 50  # 10 per rank per step
    assert json.loads((out / "config.json").read_text())["world_size"] == 2


@pytest.mark.parametrize("sync_every", [1, 10])
def test_ddp_synthetic_has_no_per_step_collective(sync_every: int, tmp_path: Path) -> None:
    """2 gloo ranks, ``--pipeline synthetic``, 40 steps: the trainer's own collectives
    (all counted in tests/count_collectives.py) number ceil(40 / sync_every) stop
    agreements plus a per-epoch handful; ``--sync-every 1`` shows the counter sees them."""
    out, steps = tmp_path / "run", 40
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_port", str(29500 + (os.getpid() + sync_every) % 1000)]
    cmd += [str(ROOT / "tests" / "count_collectives.py"), "--pipeline", "synthetic"]
    cmd += ["--synthetic-steps", str(steps), "--epochs", "1", "--arch", "resnet18"]
    cmd += ["--image-size", "16", "--num-classes", "10", "--batch-size", "4", "--device", "cpu"]
    cmd += ["--no-progress", "--sync-every", str(sync_every), "--out", str(out)]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert _epochs(out)[0]["steps"] == steps and _log(out)[-1]["ranks_agree"]
    for rank in (0, 1):
        calls = json.loads((out / f"collectives-{rank}.json").read_text())
        agreements = math.ceil(steps / sync_every)
        # per run: 2 stop checks around the epoch, its statistics, the checkpoint's barrier
        # and the final checksum gather
        assert agreements <= sum(calls.values()) <= agreements + 5, calls
