#!/usr/bin/env python
"""Train an ImageNet classifier with IPMix, the input pipeline chosen by ``--pipeline``.

    python train/imagenet.py --config train/configs/paper.yaml --pipeline ffcv \\
        --train-data train.beton --val-data val.beton --fractals fractals.zip --out runs/paper
    torchrun --nproc_per_node 8 train/imagenet.py --config train/configs/fast.yaml ...

Data: ``--pipeline ffcv`` reads .beton files (``tools/write_beton.py``); ``torch`` and
``dali`` read ImageFolder directories. ``--synthetic`` (or ``--pipeline synthetic``):
random batches made once on the device instead of a loader (the compute-bound ceiling).
IPMix is on when ``--fractals`` is given (preset ``--ipmix-preset``, default imagenet);
``--jsd`` (default with IPMix) trains on ``(clean, a, b)`` views with CE + lambda * JSD,
the three views in one forward pass.
The loaders hand over uint8 NCHW; the float cast and normalisation (the IPMix config's
mean/std) happen on the device. On a GPU: bf16 autocast and channels-last; ``--compile``.

DDP: under ``torchrun`` every rank reads its own shard of each epoch (``batch_size`` is the
global batch, split over the ranks); only rank 0 logs and writes checkpoints.

Outputs in ``--out``: ``config.json`` (resolved options, IPMix config, the effective image
sizes and fractal bank side, versions, git SHA), ``log.jsonl`` (one JSON record per epoch:
train loss, val top-1/top-5 and RMS calibration error in %, samples/s and images/s, total
and per rank, compute images/s, data wait in %, peak GPU memory; keys and units in the
README), ``checkpoint.pt`` (atomic; written every epoch, before validation, and when stopped
by ``--max-steps``, SIGTERM or SIGINT). ``--resume`` continues exactly where the checkpoint
stands, mid-epoch included (every loader starts at the saved batch, without reading the
batches before it). A run without ``--resume`` into an ``--out`` that holds a run
(config.json, checkpoint.pt or log.jsonl) refuses and changes nothing, unless
``--overwrite`` (which deletes that run's files and says so).
A checkpoint resumes on the number of ranks that saved it: on another the ranks' shards,
BatchNorm statistics and steps per epoch change, so the run is not exact; that is an error
unless ``--allow-world-size-change`` (then a warning, recorded in config.json).
Start-up checks: train and val must hold the same class folders (ImageFolder) or val labels
within train's range (.beton). What differs from the options as asked is printed and kept
in config.json: the train sizes of progressive resizing (the two ends exact, the sizes
between them multiples of 32), a val size other than the last train size, a fractal store
upscaled to the bank side the crops need, and the Numba compilation the first batch waits for.

No host synchronisation per step: the ranks agree on a stop request (and the loss is read
back) every ``--sync-every`` steps, so a signal takes effect at the next such step.

Exit status: 0 done (or stopped cleanly by a signal, checkpoint written), 2 bad options,
data or checkpoint. Under ``torchrun`` this is each rank's status; ``torchrun`` itself exits
0 when every rank does, so a scheduler should send SIGTERM to the ranks (torchrun's child
processes, e.g. ``pkill -TERM -P <torchrun pid>``): they save, log ``{"event": "stopped"}``,
exit 0, and so does torchrun. A SIGTERM to ``torchrun`` itself is forwarded to the ranks
(they save and stop the same way) but torchrun then exits 1 (``SignalException``) whatever
they did: there, a last ``log.jsonl`` record ``{"event": "stopped"}`` is the sign of a clean
stop. torchrun kills ranks that take longer than ``--shutdown-timeout`` (default 30 s) to
exit: set it above ``--sync-every`` steps plus a checkpoint save.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from fractal_store.store import default_workers
from ipmix_ops import IPMixConfig
from ipmix_ops.config import mean_std
from ipmix_train.checkpoint import (
    CheckpointError,
    check_world_size,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ipmix_train.config import (
    PIPELINES,
    ConfigError,
    TrainConfig,
    field_names,
    ipmix_config,
    load_recipe,
    make_config,
)
from ipmix_train.engine import (
    DistEnv,
    Normalizer,
    SyntheticLoader,
    Trainer,
    any_rank,
    build_model,
    param_groups,
    setup_distributed,
)
from ipmix_train.runinfo import git_sha, versions
from ipmix_train.startup import (
    check_run_folder,
    clear_run_folder,
    count_classes,
    fractal_note,
    jit_note,
    size_notes,
)
from pipelines.device_ipmix import resolve_ipmix_device

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = "checkpoint.pt"
# options that may differ between a run and its resumption
RESUME_MAY_DIFFER = {
    "max_steps",
    "resume",
    "workers",
    "out",
    "progress",
    "compile",
    "device",
    "sync_every",
    "overwrite",
    "allow_world_size_change",
}


# ---------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    """Flags for every :class:`TrainConfig` field; unset flags keep recipe/default values."""
    S = argparse.SUPPRESS
    p = argparse.ArgumentParser(
        prog="train/imagenet.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=S,
    )
    p.add_argument("--config", default=None, help="YAML recipe (train/configs/*.yaml)")
    p.add_argument(
        "--pipeline",
        choices=PIPELINES,
        help="default ffcv; synthetic: random batches made once on the device, no loader",
    )
    p.add_argument("--train-data", help=".beton (ffcv) or ImageFolder directory (torch, dali)")
    p.add_argument("--val-data", help=".beton (ffcv) or ImageFolder directory (torch, dali)")
    p.add_argument("--fractals", help="fractal store (tools/build_fractals.py): IPMix on")
    p.add_argument(
        "--bank-cache",
        metavar="DIR",
        help="keep a verified raw copy of the decoded fractal bank in DIR: later starts "
        "load it ~10x faster than decoding the store",
    )
    p.add_argument(
        "--ipmix-device",
        choices=("auto", "cpu", "cuda"),
        help="where IPMix runs: cpu (in the loader), cuda (Triton, on the GPU after the "
        "loader); default auto: cuda when the training device is",
    )
    p.add_argument("--ipmix-preset", choices=("imagenet", "cifar", "none"))
    p.add_argument("--jsd", action=argparse.BooleanOptionalAction, help="JSD views and loss")
    p.add_argument("--jsd-lambda", type=float, help="weight of the JSD term (preset: 12)")
    p.add_argument("--arch", help="torchvision model name (default resnet50)")
    p.add_argument("--num-classes", type=int, help="default: from the training data")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global batch, split over the ranks")
    p.add_argument("--lr", type=float, help="peak learning rate for --batch-size")
    p.add_argument("--final-lr", type=float, help="learning rate at the last step")
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--momentum", type=float)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--wd-on-bn-bias", action=argparse.BooleanOptionalAction)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument(
        "--crop-scale", type=float, nargs=2, metavar=("LO", "HI"), help="train crop area range"
    )
    p.add_argument("--image-size", type=int, help="train crop side (end of the ramp)")
    p.add_argument("--start-image-size", type=int, help="progressive resizing: first size")
    p.add_argument("--ramp-start-epoch", type=int)
    p.add_argument("--ramp-end-epoch", type=int)
    p.add_argument("--val-image-size", type=int, help="default: --image-size")
    p.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, help="bf16 on the GPU")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, help="GPU only")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile")
    p.add_argument("--out", help="run directory (default runs/latest)")
    p.add_argument(
        "--resume", nargs="?", const="auto", help="checkpoint (default: OUT/checkpoint.pt)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (deletes its config.json, checkpoint.pt and "
        "log.jsonl); without it, or --resume, a run into such a folder is refused",
    )
    p.add_argument(
        "--allow-world-size-change",
        action="store_true",
        help="resume a checkpoint saved by another number of ranks (not exact: shards, "
        "BatchNorm statistics and steps per epoch change); a warning, not an error",
    )
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--sync-every",
        type=int,
        metavar="N",
        help="ranks agree on a stop request and the loss is read back every N steps "
        "(default 50): no host synchronisation in the steps between",
    )
    p.add_argument("--synthetic", action=argparse.BooleanOptionalAction)
    p.add_argument("--synthetic-steps", type=int, help="batches per synthetic epoch")
    p.add_argument("--workers", type=int, help="loader threads/processes (default: cores)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, help="tqdm bar")
    return p


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Defaults < ``--config`` recipe < flags. Raises :class:`ConfigError`."""
    ns = vars(build_parser().parse_args(argv))
    recipe = load_recipe(ns.pop("config")) if ns.get("config") else {}
    ns.pop("config", None)
    assert set(ns) <= set(field_names()), set(ns) - set(field_names())
    return make_config(recipe, **ns)


# ---------------------------------------------------------------------- data
def _is_beton(path: str) -> bool:
    return Path(path).suffix == ".beton"


def check_data(cfg: TrainConfig) -> None:
    """Paths exist and suit the pipeline; IPMix options are consistent. ConfigError if not."""
    if cfg.ipmix_on and cfg.fractals is None:
        raise ConfigError(
            f"--ipmix-preset {cfg.ipmix_preset} needs a fractal store: pass --fractals STORE "
            "(build one with tools/build_fractals.py)"
        )
    if cfg.use_jsd and not cfg.ipmix_on:
        raise ConfigError("--jsd needs IPMix views: pass --fractals STORE (or use --no-jsd)")
    import torchvision

    if cfg.arch not in torchvision.models.list_models(module=torchvision.models):
        raise ConfigError(
            f"--arch {cfg.arch}: not a torchvision classification model (e.g. resnet18, "
            "resnet50; torchvision.models.list_models() has them all)"
        )
    if cfg.fractals is not None and not Path(cfg.fractals).is_file():
        raise ConfigError(f"--fractals {cfg.fractals}: no such fractal store file")
    cache = cfg.bank_cache
    if cache is not None and os.path.exists(cache) and not os.path.isdir(cache):
        raise ConfigError(f"--bank-cache {cache}: exists and is not a directory")
    needs = [("--train-data", cfg.train_data)] if not cfg.synthetic else []
    if cfg.val_data is not None or not cfg.synthetic:
        needs.append(("--val-data", cfg.val_data))
    for flag, path in needs:
        if path is None:
            raise ConfigError(f"{flag} is required (or use --synthetic)")
        if not os.path.exists(path):
            raise ConfigError(f"{flag} {path}: no such file or directory")
        if cfg.pipeline == "ffcv" and (os.path.isdir(path) or not _is_beton(path)):
            raise ConfigError(
                f"{flag} {path}: --pipeline ffcv reads .beton files (write one with "
                "tools/write_beton.py), not ImageFolder directories or other files"
            )
        if cfg.pipeline != "ffcv" and not os.path.isdir(path):
            hint = " (use --pipeline ffcv for .beton files)" if _is_beton(path) else ""
            raise ConfigError(
                f"{flag} {path}: --pipeline {cfg.pipeline} reads ImageFolder directories"
                f" (<class>/<image>), not files{hint}"
            )


class Loaders:
    """The val loader, and one train loader per train size (progressive resizing), built
    on first use through :func:`pipelines.build_loader`."""

    def __init__(self, cfg: TrainConfig, ipmix: IPMixConfig | None, env: DistEnv) -> None:
        self.cfg, self.ipmix, self.env = cfg, ipmix, env
        self.per_rank = cfg.batch_size // env.world_size
        self.train: dict[int, Any] = {}
        self.val: Any = None

    def _build(self, data: str, *, train: bool, size: int) -> Any:
        from pipelines import build_loader

        return build_loader(
            self.cfg.pipeline,
            data,
            train=train,
            batch_size=self.per_rank,
            image_size=size,
            fractals=self.cfg.fractals if train and self.ipmix else None,
            ipmix=self.ipmix if train else None,
            jsd=train and self.cfg.use_jsd,
            seed=self.cfg.seed,
            num_workers=self.cfg.workers,
            device=self.env.device,
            rank=self.env.rank,
            world_size=self.env.world_size,
            output="uint8",
            crop_scale=self.cfg.crop_scale,
            bank_cache=self.cfg.bank_cache,
            ipmix_device=self.cfg.ipmix_device if train else "auto",
        )

    def train_loader(self, epoch: int, classes: int) -> Any:
        size = self.cfg.train_size(epoch)
        if size not in self.train:
            if self.cfg.synthetic:
                views = 3 if self.cfg.use_jsd else 1
                self.train[size] = SyntheticLoader(
                    self.cfg.synthetic_steps,
                    self.per_rank,
                    size,
                    views,
                    classes,
                    self.env.device,
                    self.cfg.seed,
                )
            else:
                self.train[size] = self._build(self.cfg.train_data, train=True, size=size)
        return self.train[size]

    def val_loader(self) -> Any:
        if self.val is None and self.cfg.val_data is not None:
            self.val = self._build(self.cfg.val_data, train=False, size=self.cfg.val_size)
        return self.val


# ---------------------------------------------------------------------- records
def append_log(out: Path, record: dict[str, Any]) -> None:
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


# ---------------------------------------------------------------------- signals
class StopFlag:
    """Set by SIGTERM/SIGINT (a second SIGINT interrupts at once)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def install(self) -> None:
        for s in (signal.SIGTERM, signal.SIGINT):
            self._old[s] = signal.signal(s, self._handle)

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


# ---------------------------------------------------------------------- the run
def make_trainer(cfg: TrainConfig, env: DistEnv, classes: int, steps: int) -> Trainer:
    ipmix = ipmix_config(cfg)
    model = build_model(cfg.arch, classes).to(env.device)
    on_gpu = env.device.type == "cuda"
    if on_gpu:
        torch.backends.cudnn.benchmark = True
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(
        param_groups(model, cfg.weight_decay, cfg.wd_on_bn_bias),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
    )
    fwd: torch.nn.Module = torch.compile(model) if cfg.compile else model
    if env.distributed:
        fwd = DistributedDataParallel(fwd, device_ids=[env.local_rank] if on_gpu else None)
    mean, std = mean_std(ipmix)
    return Trainer(
        model=fwd,
        raw=model,
        optimizer=opt,
        normalize=Normalizer(mean, std, on_gpu and cfg.channels_last),
        env=env,
        steps_per_epoch=steps,
        total_steps=steps * cfg.epochs,
        lr=cfg.lr,
        final_lr=cfg.final_lr,
        warmup_steps=round(cfg.warmup_epochs * steps),
        views=3 if cfg.use_jsd else 1,
        jsd_lambda=ipmix.jsd_lambda if ipmix else 0.0,
        label_smoothing=cfg.label_smoothing,
        amp=cfg.amp,
        sync_every=cfg.sync_every,
    )


def checkpoint_state(t: Trainer, cfg: TrainConfig) -> dict[str, Any]:
    return {
        "model": t.raw.state_dict(),
        "optimizer": t.optimizer.state_dict(),
        "epoch": t.epoch,
        "step_in_epoch": t.step_in_epoch,
        "step": t.step,
        "epoch_sums": t.epoch_sums,
        "world_size": t.env.world_size,
        "rng": rng_state(),
        "config": cfg.to_dict(),
    }


def restore(t: Trainer, cfg: TrainConfig, path: Path) -> int | None:
    """Load ``path`` into ``t`` (model, optimiser, position, RNG); returns the number of
    ranks that saved it (None: not recorded). CheckpointError if bad or saved by another
    number of ranks (:func:`~ipmix_train.checkpoint.check_world_size`)."""
    state = load_checkpoint(path)
    check_world_size(
        state, path, t.env.world_size, allow=cfg.allow_world_size_change, warn=t.env.main
    )
    try:
        t.raw.load_state_dict(state["model"])
        t.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: does not fit this model/optimiser ({e})") from e
    t.epoch, t.step_in_epoch, t.step = state["epoch"], state["step_in_epoch"], state["step"]
    t.epoch_sums = dict(state.get("epoch_sums", {"steps": 0, "loss": 0.0}))
    set_rng_state(state["rng"])
    saved = state.get("config", {})
    changed = sorted(
        k
        for k in saved
        if k not in RESUME_MAY_DIFFER and k in cfg.to_dict() and saved[k] != cfg.to_dict()[k]
    )
    if changed and t.env.main:
        warnings.warn(
            f"resuming {path} with changed options {changed}: the run will not match an "
            "uninterrupted one",
            stacklevel=2,
        )
    return state.get("world_size")


def run(cfg: TrainConfig) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the final record (also the last line of log.jsonl).

    Raises ConfigError / CheckpointError for bad input.
    """
    check_data(cfg)
    check_run_folder(cfg)  # every rank, before any rank can write (init waits for all)
    env = setup_distributed(cfg.device)
    stop = StopFlag()
    try:
        if cfg.batch_size % env.world_size:
            raise ConfigError(
                f"--batch-size {cfg.batch_size} is not divisible by {env.world_size} ranks"
            )
        stop.install()
        return _run(cfg, env, stop)
    finally:
        stop.restore()
        if env.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _run(cfg: TrainConfig, env: DistEnv, stop: StopFlag) -> dict[str, Any]:
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    classes = count_classes(cfg)  # checks the class lists of train and val first
    ipmix = ipmix_config(cfg)
    notes, sizes = size_notes(cfg)
    bank_notes, bank = fractal_note(cfg, ipmix)
    jit = jit_note(cfg, resolve_ipmix_device(cfg.ipmix_device, env.device) if ipmix else "cpu")
    if env.main:
        for note in notes + bank_notes + ([jit] if jit else []):
            print(f"note: {note}", flush=True)
    loaders = Loaders(cfg, ipmix, env)
    first = loaders.train_loader(0, classes)
    val = loaders.val_loader()
    t = make_trainer(cfg, env, classes, len(first))
    ckpt_path = saved_ranks = None
    if cfg.resume is not None:
        ckpt_path = out / CHECKPOINT if cfg.resume == "auto" else Path(cfg.resume)
        saved_ranks = restore(t, cfg, ckpt_path)
    if env.main:
        replaced = clear_run_folder(out) if cfg.overwrite else None
        if replaced:
            print(replaced, flush=True)
        out.mkdir(parents=True, exist_ok=True)
        record = {
            "config": cfg.to_dict(),
            "ipmix": ipmix.to_dict() if ipmix else None,
            "num_classes": classes,
            "steps_per_epoch": t.steps_per_epoch,
            "world_size": env.world_size,
            "device": str(env.device),
            "cpu_cores": default_workers(),
            "resumed_from": str(ckpt_path) if ckpt_path else None,
            "resumed_world_size": saved_ranks,
            "effective": {**sizes, "fractal_bank": bank, "notes": notes + bank_notes},
            "versions": {
                **versions("torch", "torchvision", "numpy", "numba", "ffcv", "nvidia-dali-cuda120"),
                "cuda": torch.version.cuda,
            },
            "git_sha": git_sha(),
            "command": sys.argv,
        }
        (out / "config.json").write_text(json.dumps(record, indent=2) + "\n")
        print(json.dumps({"config": cfg.to_dict(), "ipmix": record["ipmix"]}), flush=True)

    def save() -> None:
        if env.main:
            save_checkpoint(out / CHECKPOINT, checkpoint_state(t, cfg))
        if env.distributed:
            torch.distributed.barrier()

    def stopped() -> dict[str, Any]:
        save()
        if env.main:
            name = signal.Signals(stop.signum).name if stop.signum else "a signal on another rank"
            append_log(out, {"event": "stopped", "signal": name, "step": t.step})
            print(
                f"stopped by {name} at epoch {t.epoch} step {t.step_in_epoch}; checkpoint "
                f"{out / CHECKPOINT} (continue with --resume)",
                flush=True,
            )
        return {"event": "stopped", "step": t.step, "epoch": t.epoch}

    last: dict[str, Any] = {}
    passes: list[dict[str, Any]] = []  # this process's train passes (epochs or parts)
    while t.epoch < cfg.epochs and (cfg.max_steps is None or t.step < cfg.max_steps):
        if any_rank(stop(), env):  # a signal during validation or saving
            return stopped()
        epoch = t.epoch
        stats = t.train_epoch(
            loaders.train_loader(epoch, classes),
            should_stop=stop,
            max_steps=cfg.max_steps,
            progress=cfg.progress,
        )
        passes.append(stats)
        if any_rank(stop(), env):
            return stopped()
        save()  # before validation: a crash there loses no training
        last = {
            "event": "epoch",
            "epoch": epoch,
            "step": t.step,
            "partial": t.epoch == epoch,  # stopped by --max-steps before the epoch's end
            "image_size": cfg.train_size(epoch),
            "lr": t.optimizer.param_groups[0]["lr"],
            **stats,
        }
        if val is not None:
            last.update(t.evaluate(val))
        if env.main:
            append_log(out, last)
            print(json.dumps(last), flush=True)
    if not last and val is not None:  # resumed a finished run: report its accuracy
        last = t.evaluate(val)
    return finish(env, t, last, passes, out)


def process_totals(passes: list[dict[str, Any]]) -> dict[str, Any]:
    """This process's training totals over its ``passes`` (:meth:`Trainer.train_epoch`
    records): steps, seconds and rates in the units of the epoch records."""
    steps = sum(p["steps_run"] for p in passes)
    seconds = sum(p["train_seconds"] for p in passes if p["steps_run"])
    compute = sum(p["compute_seconds"] for p in passes if p["steps_run"])
    wait = sum(p["wait_seconds"] for p in passes if p["steps_run"])
    samples = sum(p["samples_run"] for p in passes)
    views = passes[0]["images_per_sample"] if passes else 1
    peaks = [p["peak_gpu_mem_mib"] for p in passes if p["peak_gpu_mem_mib"] is not None]

    def rate(n: float, s: float) -> float | None:
        return n / s if steps and s > 0 else None

    return {
        "process_steps": steps,
        "process_train_seconds": seconds,
        "images_per_sample": views,
        "samples_per_s": rate(samples, seconds),
        "images_per_s": rate(samples * views, seconds),
        "compute_images_per_s": rate(samples * views, compute),
        "data_wait_pct": 100.0 * wait / (wait + compute) if wait + compute > 0 else None,
        "peak_gpu_mem_mib": max(peaks) if peaks else None,
    }


def finish(
    env: DistEnv,
    t: Trainer,
    last: dict[str, Any],
    passes: list[dict[str, Any]],
    out: Path,
) -> dict[str, Any]:
    """Check the ranks hold the same weights, log and print the final record: the run's
    position (``epoch``, ``step``: optimiser steps of the whole run, resumed parts
    included), the last validation, and this process's own steps, time and rates."""
    checksum = float(sum(p.detach().double().sum() for p in t.raw.parameters()))
    sums = [checksum]
    if env.distributed:
        sums = [None] * env.world_size
        torch.distributed.all_gather_object(sums, checksum)
    mine = process_totals(passes)
    w = env.world_size
    final = {
        "event": "final",
        "epoch": t.epoch,
        "step": t.step,
        "val_top1_pct": last.get("val_top1_pct"),
        "val_top5_pct": last.get("val_top5_pct"),
        "calib_rms_pct": last.get("calib_rms_pct"),
        **mine,
        "images_per_s_per_rank": None if mine["images_per_s"] is None else mine["images_per_s"] / w,
        "compute_images_per_s_per_rank": (
            None if mine["compute_images_per_s"] is None else mine["compute_images_per_s"] / w
        ),
        "world_size": w,
        "param_checksums": sums,
        "ranks_agree": all(abs(s - sums[0]) <= 1e-6 * max(1.0, abs(sums[0])) for s in sums),
    }
    if env.main:
        append_log(out, final)
        acc = "n/a" if final["val_top1_pct"] is None else f"{final['val_top1_pct']:.2f}%"
        top5 = "" if final["val_top5_pct"] is None else f" (top-5 {final['val_top5_pct']:.2f}%)"
        unit = "images" if mine["images_per_sample"] == 1 else "images (3 per sample)"
        print(
            f"final: val top-1 {acc}{top5}; this process trained {mine['process_steps']} "
            f"steps (the run: {t.step}) at {mine['images_per_s'] or 0:.1f} {unit}/s on "
            f"{w} x {env.device.type} (data wait {mine['data_wait_pct'] or 0:.1f}% of the "
            "step time)",
            flush=True,
        )
    return final


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse_config(argv)
        run(cfg)
    except (ValueError, CheckpointError, FileNotFoundError) as e:  # ConfigError included
        print(f"train/imagenet.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
