"""The parts of the trainer a test may call alone: process group, model, optimiser,
learning-rate schedule, one train epoch and one evaluation (the input side, normalisation,
synthetic batches, prefetcher and data-wait clock, is :mod:`ipmix_train.inputs`)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torchvision
from tqdm import tqdm

from fractal_store.store import rank_share_of_cores

from .inputs import DevicePrefetcher, Normalizer, StepClock, SyntheticLoader
from .losses import ipmix_loss
from .metrics import calibration_rms, topk_correct

__all__ = [
    "DistEnv",
    "Normalizer",
    "SyntheticLoader",
    "Trainer",
    "all_reduce_sum",
    "any_rank",
    "autocast",
    "build_model",
    "lr_at",
    "param_groups",
    "setup_distributed",
]


# ---------------------------------------------------------------------- processes
@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job: ``torchrun`` sets RANK/WORLD_SIZE/LOCAL_RANK."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str) -> DistEnv:
    """Join the ``torchrun`` process group if there is one (NCCL on CUDA, gloo on the CPU).

    ``device``: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"`` (an error when
    there is no GPU). Rank ``r`` uses ``cuda:LOCAL_RANK``; CPU ranks share the cores.
    """
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA GPU is available (use --device cpu)")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1:
        if not dev.type == "cuda":
            os.environ.setdefault("LOCAL_WORLD_SIZE", str(world))  # launched without torchrun
            torch.set_num_threads(rank_share_of_cores())
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank, world, local, dev)


def all_reduce_sum(values: list[float], env: DistEnv) -> list[float]:
    """Element-wise sum of ``values`` over the ranks (identity on one process)."""
    if not env.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return t.tolist()


def any_rank(flag: bool, env: DistEnv) -> bool:
    """True on every rank when ``flag`` is true on any rank."""
    return all_reduce_sum([float(flag)], env)[0] > 0 if env.distributed else flag


# ---------------------------------------------------------------------- model and optimiser
def build_model(arch: str, num_classes: int) -> torch.nn.Module:
    """A torchvision classification model, randomly initialised, with ``num_classes``."""
    names = torchvision.models.list_models(module=torchvision.models)
    if arch not in names:
        raise ValueError(f"unknown --arch {arch!r}; torchvision classification models: {names}")
    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)


def param_groups(
    model: torch.nn.Module, weight_decay: float, wd_on_bn_bias: bool
) -> list[dict[str, Any]]:
    """SGD parameter groups. ``wd_on_bn_bias=False``: parameters with fewer than 2
    dimensions (BatchNorm/LayerNorm weights and every bias) get no weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if wd_on_bn_bias:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_at(step: int, total: int, *, lr: float, final_lr: float, warmup: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based) of ``total``: linear warm-up from
    ``lr / warmup`` to ``lr`` over ``warmup`` steps, then a cosine from ``lr`` down to
    ``final_lr``, reached at the last step."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - 1 - warmup))
    return final_lr + (lr - final_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


# ---------------------------------------------------------------------- batches
def autocast(device: torch.device, amp: bool):
    """bf16 autocast on CUDA when ``amp``; nothing on the CPU."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _close(it: Iterator) -> None:
    close = getattr(it, "close", None)
    if close is not None:  # lets a generator loader (FFCV) stop its threads
        close()


# ---------------------------------------------------------------------- train and evaluate
@dataclass
class Trainer:
    """Model, optimiser and schedule of one run, and where it stands (``step`` counts
    optimiser steps since the start; ``epoch``/``step_in_epoch`` the next batch)."""

    model: torch.nn.Module  # what runs forward (DDP and/or compiled wrapper)
    raw: torch.nn.Module  # the plain module: state dicts
    optimizer: torch.optim.Optimizer
    normalize: Normalizer
    env: DistEnv
    steps_per_epoch: int
    total_steps: int
    lr: float
    final_lr: float
    warmup_steps: int
    views: int
    jsd_lambda: float
    label_smoothing: float
    amp: bool
    sync_every: int = 50  # steps between stop agreements / loss read-backs
    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    # the current epoch's steps and sum of their (rank-mean) losses before this pass: a run
    # stopped mid-epoch keeps them in its checkpoint, so the resumed epoch's record is whole
    epoch_sums: dict[str, float] = field(default_factory=lambda: {"steps": 0, "loss": 0.0})

    def set_lr(self) -> float:
        lr = lr_at(
            self.step,
            self.total_steps,
            lr=self.lr,
            final_lr=self.final_lr,
            warmup=self.warmup_steps,
        )
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        return lr

    def train_step(self, images: Any, labels: torch.Tensor) -> torch.Tensor:
        """One optimiser step; returns the loss (a detached device scalar)."""
        self.set_lr()
        x = self.normalize(images)
        with autocast(self.env.device, self.amp):
            logits = self.model(x)
        loss = ipmix_loss(
            logits,
            labels,
            views=self.views,
            jsd_lambda=self.jsd_lambda,
            label_smoothing=self.label_smoothing,
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        self.step_in_epoch += 1
        return loss.detach()

    def train_epoch(
        self,
        loader: Any,
        *,
        should_stop: Callable[[], bool],
        max_steps: int | None = None,
        progress: bool = True,
    ) -> dict[str, Any]:
        """Train from ``(epoch, step_in_epoch)`` to the end of the epoch, ``max_steps`` or a
        stop request. No host synchronisation per step: the ranks agree on a stop request
        (one all-reduce) every ``sync_every`` steps of the run (``step % sync_every == 0``,
        so every rank stops at the same step), and the loss is read back only then;
        ``max_steps`` and the epoch's end are the same on every rank and need no agreement.
        After a resume mid-epoch a loader with ``starts_mid_epoch`` (all of this
        project's: torch, FFCV, DALI, synthetic) starts the pass at ``step_in_epoch``
        without reading the batches before it; with any other loader those batches are
        drawn and dropped. Either way the rest are the same as in an uninterrupted run.
        Batches come through :class:`~ipmix_train.inputs.DevicePrefetcher` (a side CUDA
        stream; the CPU: as they are) and the data wait is measured by
        :class:`~ipmix_train.inputs.StepClock`.

        Returns the epoch's statistics over all ranks (:meth:`epoch_stats`); ``steps`` and
        ``train_loss`` count the whole epoch, the steps of a run stopped before this one
        included (:attr:`epoch_sums`, kept in the checkpoint).
        """
        self.model.train()
        done = self.step_in_epoch
        if getattr(loader, "starts_mid_epoch", False):
            loader.set_epoch(self.epoch, start_batch=done)
            skip = 0
        else:
            loader.set_epoch(self.epoch)
            skip = done
        dev = self.env.device
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        it = iter(DevicePrefetcher(loader, dev))
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=done,
            desc=f"epoch {self.epoch}",
            disable=not (progress and self.env.main),
            leave=False,
            dynamic_ncols=True,
        )
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        n_batches = n_samples = 0
        first_wait = 0.0
        clock = StepClock(dev)
        t_start = time.perf_counter()
        try:
            for _ in range(skip):
                next(it)
            while self.step_in_epoch < self.steps_per_epoch:
                t0 = time.perf_counter()
                try:
                    images, labels = next(it)
                except StopIteration:
                    break
                if n_batches == 0:  # loader start-up and JIT compilation: reported apart
                    t_start = time.perf_counter()
                    first_wait = t_start - t0
                clock.ready()
                loss = self.train_step(images, labels)
                clock.done()
                loss_sum += loss
                n_batches += 1
                n_samples += labels.shape[0]
                bar.update(1)
                if max_steps is not None and self.step >= max_steps:
                    break
                if self.step % self.sync_every == 0:  # the only host sync between epochs
                    bar.set_postfix(loss=f"{float(loss):.3f}")
                    clock.drain()
                    if any_rank(should_stop(), self.env):
                        break
                elif not self.env.distributed and should_stop():
                    break  # one process: nothing to agree on
            wait, span = clock.totals()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            elapsed = time.perf_counter() - t_start
        finally:
            bar.close()
            _close(it)
        peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
        sums = all_reduce_sum(
            [float(loss_sum), n_batches, n_samples, wait, span, elapsed, first_wait], self.env
        )
        if peak is not None and self.env.distributed:
            most = torch.tensor([peak], dtype=torch.float64, device=dev)
            dist.all_reduce(most, op=dist.ReduceOp.MAX)
            peak = float(most.item())
        return self.epoch_stats(*sums, peak_mib=peak)

    def epoch_stats(
        self,
        loss_sum: float,
        batches: float,
        samples: float,
        wait: float,
        span: float,
        elapsed: float,
        first_wait: float,
        *,
        peak_mib: float | None,
    ) -> dict[str, Any]:
        """The record of the epoch from sums over the ranks of this pass's per-step loss,
        batches, samples, data wait, step span, wall time and first-batch wait (seconds),
        plus :attr:`epoch_sums`; advances to the next epoch when this one is complete.

        Units in the keys: a sample is one dataset image; the network sees
        ``images_per_sample`` images of it (3 in JSD mode: clean + 2 IPMix views).
        ``images_per_s``: over the pass's wall time (first batch excluded);
        ``compute_images_per_s``: over its step time less the data wait; ``_per_rank``:
        one rank's (one GPU's) share; ``data_wait_pct``: wait / step span, percent;
        ``peak_gpu_mem_mib``: the largest peak over the ranks, None on the CPU.
        """
        w = self.env.world_size
        steps_run = round(batches / w)
        carry = self.epoch_sums
        loss_steps = carry["steps"] + steps_run
        loss = (carry["loss"] + loss_sum / w) / max(1, loss_steps)
        seconds, compute = elapsed / w, (span - wait) / w
        images = samples * self.views
        stats: dict[str, Any] = {
            "train_loss": loss,
            "steps": self.step_in_epoch,  # of the whole epoch, before a resume included
            "steps_run": steps_run,  # trained by this pass
            "samples_run": round(samples),  # trained by this pass, all ranks
            "images_per_sample": self.views,
            "samples_per_s": samples / seconds if steps_run else None,
            "images_per_s": images / seconds if steps_run else None,
            "images_per_s_per_rank": images / seconds / w if steps_run else None,
            "compute_images_per_s": images / compute if steps_run and compute > 0 else None,
            "compute_images_per_s_per_rank": (
                images / compute / w if steps_run and compute > 0 else None
            ),
            "data_wait_pct": 100.0 * wait / span if span > 0 else None,
            "peak_gpu_mem_mib": None if peak_mib is None else round(peak_mib, 1),
            "first_batch_s": first_wait / w,
            "train_seconds": seconds,
            "compute_seconds": compute,
            "wait_seconds": wait / w,
        }
        if self.step_in_epoch >= self.steps_per_epoch:
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
            self.epoch_sums = {"steps": 0, "loss": 0.0}
        else:
            self.epoch_sums = {"steps": loss_steps, "loss": carry["loss"] + loss_sum / w}
        return stats

    @torch.no_grad()
    def evaluate(self, loader: Any) -> dict[str, float]:
        """Val loss, top-1/top-5 accuracy and RMS calibration error over all ranks, the
        last three in percent (``_pct``, as :mod:`ipmix_train.evaluate` reports them)."""
        self.raw.eval()
        loss = top1 = top5 = n = 0.0
        conf, hit = [], []
        for images, labels in loader:
            x = self.normalize(images)
            with autocast(self.env.device, self.amp):
                logits = self.raw(x)
            logits = logits.float()
            loss += float(torch.nn.functional.cross_entropy(logits, labels, reduction="sum"))
            c1, c5 = topk_correct(logits, labels)
            top1, top5, n = top1 + c1, top5 + c5, n + labels.shape[0]
            p = logits.softmax(dim=1).max(dim=1)
            conf.append(p.values.cpu().numpy())
            hit.append((p.indices == labels).cpu().numpy())
        conf_all = np.concatenate(conf) if conf else np.zeros(0)
        hit_all = np.concatenate(hit) if hit else np.zeros(0)
        if self.env.distributed:
            parts: list[Any] = [None] * self.env.world_size
            dist.all_gather_object(parts, (conf_all, hit_all))
            conf_all = np.concatenate([c for c, _ in parts])
            hit_all = np.concatenate([h for _, h in parts])
        loss, top1, top5, n = all_reduce_sum([loss, top1, top5, n], self.env)
        if n == 0:
            raise RuntimeError("the val loader yielded no samples")
        return {
            "val_loss": loss / n,
            "val_top1_pct": 100.0 * top1 / n,
            "val_top5_pct": 100.0 * top5 / n,
            "calib_rms_pct": 100.0 * calibration_rms(conf_all, hit_all),
            "val_images": int(n),
        }
