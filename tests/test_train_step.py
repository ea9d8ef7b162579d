"""The training step and its records: the prefetcher and data-wait clock
(ipmix_train.inputs), the FFCV loader's mid-epoch start, the checkpoint written before
validation, and the log after a resume (whole-epoch totals, this process's steps apart).
CPU tests use tiny models; the ``gpu`` test runs only where CUDA is."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from ipmix_train.checkpoint import load_checkpoint
from ipmix_train.config import make_config
from ipmix_train.engine import DistEnv, Normalizer, SyntheticLoader, Trainer
from ipmix_train.inputs import DevicePrefetcher, StepClock, to_device
from train.imagenet import run

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
CPU = torch.device("cpu")
SYNTH = dict(
    pipeline="synthetic",
    synthetic=True,
    arch="resnet18",
    image_size=16,
    num_classes=10,
    batch_size=4,
    device="cpu",
    progress=False,
    amp=False,
    lr=0.05,
)


def _log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def _tiny_trainer(steps: int, device: torch.device = CPU, sync_every: int = 50) -> Trainer:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, 2, 1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 10),
    ).to(device)
    return Trainer(
        model=model,
        raw=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        normalize=Normalizer((0.5,) * 3, (0.25,) * 3, channels_last=False),
        env=DistEnv(device=device),
        steps_per_epoch=steps,
        total_steps=steps,
        lr=0.01,
        final_lr=0.0,
        warmup_steps=0,
        views=1,
        jsd_lambda=0.0,
        label_smoothing=0.0,
        amp=False,
        sync_every=sync_every,
    )


# ---------------------------------------------------------------------- prefetcher and clock
class _Batches:
    """Numbered host batches; records whether its generator was closed."""

    def __init__(self, n: int, **attrs) -> None:
        self.n, self.closed = n, False
        self.__dict__.update(attrs)
        self.made: list[tuple] = []

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        try:
            for i in range(self.n):
                b = (torch.full((2, 3, 4, 4), i, dtype=torch.uint8), torch.tensor([i, i]))
                self.made.append(b)
                yield b
        finally:
            self.closed = True


def test_prefetcher_on_the_cpu_is_the_identity_in_order_and_closes_the_loader() -> None:
    loader = _Batches(5)
    pf = DevicePrefetcher(loader, CPU)
    assert not pf.side_stream and len(pf) == 5
    got = list(pf)
    assert len(got) == 5 and all(g is m for g, m in zip(got, loader.made, strict=True))
    assert [int(y[0]) for _, y in got] == [0, 1, 2, 3, 4] and loader.closed
    loader = _Batches(5)
    it = iter(DevicePrefetcher(loader, CPU))
    next(it), next(it)
    it.close()  # the trainer stops mid-epoch: the loader's generator must end too
    assert loader.closed and len(loader.made) == 2
    # FFCV copies on its own streams: no side stream for it, even on CUDA
    ffcv_like = _Batches(1, prefetches_to_device=True)
    assert not DevicePrefetcher(ffcv_like, torch.device("cuda", 0)).side_stream
    assert DevicePrefetcher(_Batches(1), torch.device("cuda", 0)).side_stream
    x = torch.zeros(3)
    assert to_device((x, [x]), CPU)[0] is x and to_device((x, [x]), CPU)[1][0] is x


def test_step_clock_on_the_cpu_counts_the_time_between_steps() -> None:
    clock = StepClock(CPU)
    assert clock.totals() == (0.0, 0.0)
    clock.ready()
    time.sleep(0.02)  # a step
    clock.done()
    time.sleep(0.05)  # the input is late
    clock.ready()
    clock.done()
    wait, span = clock.totals()
    assert 0.045 <= wait <= span and span >= 0.065, (wait, span)


class _SlowLoader(SyntheticLoader):
    """Synthetic batches that arrive ``delay`` seconds late (after the first)."""

    delay = 0.15

    def __iter__(self):
        for n, batch in enumerate(super().__iter__()):
            if n:
                time.sleep(self.delay)
            yield batch


def test_data_wait_and_compute_rate_of_a_slow_loader() -> None:
    steps = 6
    t = _tiny_trainer(steps)
    fast = t.train_epoch(
        SyntheticLoader(steps, 4, 16, 1, 10, CPU), should_stop=lambda: False, progress=False
    )
    slow = t.train_epoch(
        _SlowLoader(steps, 4, 16, 1, 10, CPU), should_stop=lambda: False, progress=False
    )
    for s in (fast, slow):
        assert s["steps"] == s["steps_run"] == steps and s["samples_run"] == steps * 4
        assert s["images_per_sample"] == 1 and s["peak_gpu_mem_mib"] is None  # CPU: none
        assert s["compute_images_per_s"] >= s["images_per_s"] > 0
        assert s["images_per_s_per_rank"] == s["images_per_s"]  # one rank
    # the wait is the loader's delay (a step takes ~10-60 ms here), the fast loader's ~0
    assert slow["data_wait_pct"] > 50 and fast["data_wait_pct"] < slow["data_wait_pct"] / 3
    assert slow["wait_seconds"] >= (steps - 1) * _SlowLoader.delay * 0.9
    # the compute rate leaves the wait out; step time = compute + wait, within the wall time
    assert slow["compute_images_per_s"] > 1.5 * slow["images_per_s"]
    total = slow["compute_seconds"] + slow["wait_seconds"]
    assert 0.8 * slow["train_seconds"] <= total <= slow["train_seconds"]


@pytest.mark.gpu
def test_cuda_step_has_no_host_synchronisation() -> None:
    """On CUDA: batches from pinned host memory through the prefetcher's side stream, the
    step and the clock's events, under torch's sync debug mode set to raise on any
    synchronising call; then the clock reads its events and the weights moved."""
    dev = torch.device("cuda", torch.cuda.current_device())
    t = _tiny_trainer(9, dev)
    clock = StepClock(dev)
    loader = _Batches(8)
    # one step first: the normalisation constants move to the device once (a blocking copy)
    t.train_step(
        torch.zeros(2, 3, 4, 4, dtype=torch.uint8, device=dev),
        torch.zeros(2, device=dev, dtype=torch.int64),
    )
    before = [p.detach().clone() for p in t.raw.parameters()]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for images, labels in DevicePrefetcher(loader, dev):
            assert images.is_cuda and labels.is_cuda
            clock.ready()
            t.train_step(images, labels % 10)
            clock.done()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    wait, span = clock.totals()
    assert 0 <= wait < span
    assert any(not torch.equal(a, b) for a, b in zip(before, t.raw.parameters(), strict=True))


# ---------------------------------------------------------------------- FFCV mid-epoch start
@pytest.mark.ffcv
def test_ffcv_starts_mid_epoch_without_reading_the_batches_before(
    tmp_path: Path, fractal_like_bank, monkeypatch
) -> None:
    """IPMix JSD on FFCV: ``set_epoch(1, start_batch=2)`` yields epoch 1's batches 2.. of an
    uninterrupted pass, byte for byte, and FFCV schedules (reads) only their samples."""
    pytest.importorskip("ffcv")
    from ipmix_ops import IPMixConfig
    from pipelines import build_loader
    from pipelines.datasets.beton import write_beton
    from pipelines.datasets.demo import write_demo_imagefolder

    write_demo_imagefolder(tmp_path / "fm", size=32, train_per_class=6, val_per_class=1)
    beton = tmp_path / "train.beton"
    write_beton(tmp_path / "fm/train", beton, num_workers=1, progress=False)
    bank = fractal_like_bank[:, :64, :64].copy()
    loader = build_loader(
        "ffcv",
        beton,
        train=True,
        batch_size=16,
        image_size=32,
        num_workers=1,
        seed=3,
        drop_last=False,
        ipmix=IPMixConfig.preset("cifar"),
        jsd=True,
        fractals=bank,
    )
    assert loader.starts_mid_epoch and len(loader) == 4  # 60 samples
    scheduled: list[list[int]] = []
    manager = loader.loader.memory_manager
    schedule = manager.schedule_epoch

    def recorded(batches):
        scheduled.append([int(i) for b in batches for i in b])
        return schedule(batches)

    monkeypatch.setattr(manager, "schedule_epoch", recorded)

    def epoch() -> list:
        return [(tuple(v.clone() for v in x), y.clone()) for x, y in loader]

    loader.set_epoch(1)
    full = epoch()
    loader.set_epoch(1, start_batch=2)
    rest = epoch()
    assert len(full) == 4 and len(rest) == 2
    for (xa, ya), (xb, yb) in zip(full[2:], rest, strict=True):
        assert torch.equal(ya, yb)
        assert all(torch.equal(a, b) for a, b in zip(xa, xb, strict=True))  # clean, a, b
    assert not torch.equal(full[2][0][1], full[2][0][0])  # IPMix changed the view
    order = scheduled[0]
    assert len(order) == 60 and scheduled[1] == order[32:]  # batches 0, 1 never read
    assert loader.epoch == 2 and len(epoch()) == 4  # the next pass is whole again


# ---------------------------------------------------------------------- records of the run
def test_checkpoint_is_written_before_validation(tmp_path: Path, monkeypatch) -> None:
    """A validation that raises leaves the epoch's checkpoint (before: nothing saved)."""
    import train.imagenet as trainer

    def broken(self, loader):
        raise RuntimeError("validation crashed")

    monkeypatch.setattr(trainer.Loaders, "val_loader", lambda self: ["a val loader"])
    monkeypatch.setattr(Trainer, "evaluate", broken)
    cfg = make_config(out=str(tmp_path / "run"), epochs=2, synthetic_steps=3, **SYNTH)
    with pytest.raises(RuntimeError, match="validation crashed"):
        run(cfg)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert (state["epoch"], state["step_in_epoch"], state["step"]) == (1, 0, 3)


def test_log_after_a_resume_holds_the_whole_epoch(tmp_path: Path) -> None:
    """Stopped at step 2 of a 6-step epoch and resumed: the epoch's record counts 6 steps,
    its loss is the uninterrupted run's (all 6 steps), partial only before the end; the
    final line counts this process's 4 steps apart from the run's 6."""
    common = dict(epochs=1, synthetic_steps=6, **SYNTH)
    run(make_config(out=str(tmp_path / "a"), **common))
    run(make_config(out=str(tmp_path / "b"), max_steps=2, **common))
    b0 = [r for r in _log(tmp_path / "b") if r["event"] == "epoch"]
    assert len(b0) == 1 and b0[0]["partial"] and b0[0]["steps"] == 2
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["epoch_sums"]["steps"] == 2
    final = run(make_config(out=str(tmp_path / "b"), resume="auto", **common))
    a = [r for r in _log(tmp_path / "a") if r["event"] == "epoch"][0]
    b = [r for r in _log(tmp_path / "b") if r["event"] == "epoch"][-1]
    assert (b["steps"], b["steps_run"], b["partial"]) == (6, 4, False)
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-6)
    assert (final["step"], final["process_steps"]) == (6, 4)
    assert _log(tmp_path / "a")[-1]["process_steps"] == 6
    for key in ("samples_per_s", "images_per_s", "compute_images_per_s", "data_wait_pct"):
        assert final[key] is not None and final[key] >= 0, key
    assert final["peak_gpu_mem_mib"] is None  # the CPU
