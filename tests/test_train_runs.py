"""train/imagenet.py start-up: run folders, class lists, world size of a checkpoint, SIGTERM
under torchrun, effective image sizes and fractal bank, the JIT-compile message. CPU only,
resnet18 at 16 px, real photos (Fashion-MNIST from the demo set)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import demo_folders, signal_once_started, trainer_env

from ipmix_train.checkpoint import load_checkpoint, save_checkpoint
from ipmix_train.config import ipmix_config, make_config
from ipmix_train.startup import fractal_note, size_notes
from train.imagenet import main, parse_config

ROOT = Path(__file__).resolve().parents[1]
TRAINER = str(ROOT / "train" / "imagenet.py")
S = 16
SYNTH = ["--pipeline", "synthetic", "--synthetic-steps", "2", "--epochs", "1"]
SYNTH += ["--arch", "resnet18", "--image-size", str(S), "--num-classes", "10"]
SYNTH += ["--batch-size", "4", "--device", "cpu", "--no-progress", "--no-amp"]

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict[str, Path]:
    """Fashion-MNIST (10 classes) at 16 px: 4 train and 2 val images per class."""
    return demo_folders(tmp_path_factory.mktemp("runs"), S, 4, 2)


def _subset(src: Path, dst: Path, classes: list[str]) -> Path:
    for c in classes:
        shutil.copytree(src / c, dst / c)
    return dst


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


# ---------------------------------------------------------------------- 1: run folders
def test_a_new_run_into_a_run_folder_is_refused_and_overwrite_replaces_it(
    tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    assert main([*SYNTH, "--out", str(out)]) == 0
    capsys.readouterr()
    before = _snapshot(out)
    assert {"config.json", "checkpoint.pt", "log.jsonl"} <= set(before)
    assert main([*SYNTH, "--out", str(out), "--max-steps", "1"]) == 2
    err = capsys.readouterr().err
    assert f"--out {out} already holds a run" in err
    assert "--resume" in err and "--overwrite" in err and "nothing was changed" in err
    assert _snapshot(out) == before  # not a byte or a timestamp changed
    (out / "config.json").unlink()  # a log alone is a run too
    assert main([*SYNTH, "--out", str(out)]) == 2
    assert "log.jsonl" in capsys.readouterr().err
    assert main([*SYNTH, "--out", str(out), "--resume", "--overwrite"]) == 2
    assert "contradict" in capsys.readouterr().err
    assert main([*SYNTH, "--out", str(out), "--overwrite", "--max-steps", "1"]) == 0
    text = capsys.readouterr().out
    assert f"--overwrite: replaced the run in {out}" in text and "'final'" in text
    log = _log(out)  # the old run's records are gone, not mixed in
    assert [r["event"] for r in log] == ["epoch", "final"] and log[-1]["step"] == 1
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 1


# ---------------------------------------------------------------------- 2: class lists
def test_train_and_val_class_folders_must_agree(demo, tmp_path: Path, capsys) -> None:
    classes = sorted(p.name for p in demo["train"].iterdir())
    train = _subset(demo["train"], tmp_path / "train", classes[:2])
    val = _subset(demo["val"], tmp_path / "val", classes[:4])
    out = tmp_path / "run"
    argv = ["--pipeline", "torch", "--train-data", str(train), "--val-data", str(val)]
    argv += ["--arch", "resnet18", "--image-size", str(S), "--device", "cpu", "--workers", "0"]
    argv += ["--batch-size", "4", "--no-progress", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(train) in err and str(val) in err and "different class folders" in err
    assert f"only in val [{classes[2]}, {classes[3]}]" in err and "only in train []" in err
    assert not out.exists()  # refused before any training or writing
    full = ["--train-data", str(demo["train"]), "--val-data", str(demo["val"])]
    assert main([*argv, *full, "--num-classes", "4"]) == 2
    assert "--num-classes 4" in capsys.readouterr().err


@pytest.mark.ffcv
def test_beton_label_ranges_must_agree(demo, tmp_path: Path, capsys) -> None:
    from pipelines.datasets.beton import write_beton

    classes = sorted(p.name for p in demo["train"].iterdir())
    train, val = tmp_path / "train.beton", tmp_path / "val.beton"
    write_beton(_subset(demo["train"], tmp_path / "t", classes[:2]), train, progress=False)
    write_beton(_subset(demo["val"], tmp_path / "v", classes[:4]), val, progress=False)
    argv = ["--pipeline", "ffcv", "--train-data", str(train), "--val-data", str(val)]
    argv += ["--arch", "resnet18", "--image-size", str(S), "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert str(train) in err and str(val) in err
    assert "train labels 0..1, val labels 0..3" in err
    assert not (tmp_path / "run").exists()
    junk = tmp_path / "junk.beton"  # not a .beton: named, exit 2, no traceback
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    argv[argv.index(str(val))] = str(junk)
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    assert f"{junk}: not a readable .beton" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------- 4, 5: torchrun
def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


@pytest.mark.parametrize("target", ["ranks", "torchrun"])
def test_sigterm_under_torchrun(target: str, tmp_path: Path, capsys) -> None:
    """SIGTERM to the ranks: each saves, and torchrun exits 0 (what the help tells a
    scheduler to do). SIGTERM to torchrun: forwarded, the ranks save the same way, but
    torchrun exits 1 (SignalException); the log's last record says "stopped". The 2-rank
    checkpoint then refuses to resume on 1 rank unless --allow-world-size-change."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_port", str(29500 + (os.getpid() * 7 + len(target)) % 1000), TRAINER]
    cmd += [*SYNTH, "--synthetic-steps", "100000", "--sync-every", "2", "--out", str(out)]

    def ranks(proc) -> list[int]:
        kids = _children(proc.pid)
        assert len(kids) == 2, kids
        return kids if target == "ranks" else [proc.pid]

    rc, text = signal_once_started(cmd, trainer_env(ROOT), out / "config.json", ranks)
    assert rc == (0 if target == "ranks" else 1), text
    if target == "torchrun":
        assert "SignalException" in text
    assert "stopped by SIGTERM" in text and _log(out)[-1]["event"] == "stopped"
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["world_size"] == 2 and state["step"] > 0
    if target == "torchrun":
        return
    capsys.readouterr()
    assert main([*SYNTH, "--synthetic-steps", "100000", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "saved by a run on 2 rank(s), this run has 1" in err
    assert "--nproc_per_node 2" in err and "--allow-world-size-change" in err


def test_world_size_change_needs_the_override_and_warns(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main([*SYNTH, "--out", str(out), "--max-steps", "1"]) == 0
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["world_size"] == 1
    save_checkpoint(out / "checkpoint.pt", {**state, "world_size": 4})  # as if 4 ranks
    before = _snapshot(out)
    assert main([*SYNTH, "--out", str(out), "--resume"]) == 2
    assert "saved by a run on 4 rank(s), this run has 1" in capsys.readouterr().err
    assert _snapshot(out) == before
    with pytest.warns(UserWarning, match="does not continue exactly"):
        rc = main([*SYNTH, "--out", str(out), "--resume", "--allow-world-size-change"])
    assert rc == 0
    meta = json.loads((out / "config.json").read_text())
    assert meta["resumed_world_size"] == 4 and meta["world_size"] == 1
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 2


# ---------------------------------------------------------------------- 8: what is used
def test_progressive_resizing_ends_at_the_size_asked(tmp_path: Path, capsys) -> None:
    cfg = make_config(image_size=208, start_image_size=128, ramp_end_epoch=2, epochs=4)
    assert [cfg.train_size(e) for e in range(4)] == [128, 160, 208, 208]
    assert cfg.train_sizes() == {0: 128, 1: 160, 2: 208}
    fast = parse_config(["--config", str(ROOT / "train/configs/fast.yaml")])
    assert fast.train_sizes() == {0: 160, 32: 192}  # the recipe's ramp is unchanged
    out = tmp_path / "run"
    argv = [*SYNTH, "--synthetic-steps", "1", "--epochs", "3", "--batch-size", "2"]
    argv += ["--image-size", "80", "--start-image-size", "32", "--ramp-end-epoch", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    want = "train crops 32 px (epoch 0), 64 px (epoch 1), 80 px (epoch 2)"
    assert want in text, text
    assert [r["image_size"] for r in _log(out) if r["event"] == "epoch"] == [32, 64, 80]
    meta = json.loads((out / "config.json").read_text())
    assert meta["config"]["image_size"] == 80
    assert meta["effective"]["train_image_sizes"] == {"0": 32, "1": 64, "2": 80}


def test_val_size_follows_image_size_unless_asked() -> None:
    paper = str(ROOT / "train/configs/paper.yaml")
    assert parse_config(["--config", paper, "--image-size", "128"]).val_size == 128
    assert parse_config(["--config", paper]).val_size == 224
    fast = parse_config(["--config", str(ROOT / "train/configs/fast.yaml"), "--val-data", "v"])
    notes, record = size_notes(fast.replace(image_size=128))
    assert any("val crops are 256 px" in n and "end at 128 px" in n for n in notes), notes
    assert record["val_image_size"] == 256 and record["train_image_sizes"]["0"] == 160


def test_an_upscaled_fractal_store_is_said_and_recorded(demo, tmp_path: Path) -> None:
    from fractal_store.folder_import import import_folder

    store = tmp_path / "small.zip"
    import_folder(store, demo["train"], size=24, progress=False)  # real photos, 24 px
    cfg = make_config(fractals=str(store), ipmix_preset="cifar", image_size=32)
    notes, record = fractal_note(cfg, ipmix_config(cfg))
    assert record == {"store_size": 24, "bank_size_by_train_size": {"32": 36}, "upscaled": True}
    assert len(notes) == 1 and "holds 24 px fractals: upscaled" in notes[0] and "36" in notes[0]
    cfg = cfg.replace(image_size=16)  # 18 px banks: shrunk, which is the normal case
    notes, record = fractal_note(cfg, ipmix_config(cfg))
    assert notes == [] and not record["upscaled"]


# ---------------------------------------------------------------------- 9: JIT message
def test_first_batch_compile_message(demo, tmp_path: Path) -> None:
    """A cold Numba cache: the message comes before the first batch; warm: no message."""
    cmd = [sys.executable, TRAINER, "--pipeline", "torch", "--train-data", str(demo["train"])]
    cmd += ["--val-data", str(demo["val"]), "--arch", "resnet18", "--image-size", str(S)]
    cmd += ["--batch-size", "8", "--max-steps", "1", "--device", "cpu", "--workers", "0"]
    cmd += ["--no-progress", "--no-amp", "--out"]
    env = trainer_env(ROOT, NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"))
    cold = subprocess.run([*cmd, str(tmp_path / "cold")], env=env, capture_output=True, text=True)
    assert cold.returncode == 0, cold.stdout + cold.stderr
    lines = cold.stdout.splitlines()
    note = [i for i, line in enumerate(lines) if line.startswith("note: Numba compiles")]
    first_epoch = [i for i, line in enumerate(lines) if line.startswith('{"event": "epoch"')]
    assert len(note) == 1 and note[0] < first_epoch[0], cold.stdout
    assert "keyed_crop" in lines[note[0]] and str(tmp_path / "numba_cache") in lines[note[0]]
    warm = subprocess.run([*cmd, str(tmp_path / "warm")], env=env, capture_output=True, text=True)
    assert warm.returncode == 0, warm.stdout + warm.stderr
    assert "Numba compiles" not in warm.stdout, warm.stdout
