"""The IPMix-vs-vanilla robustness experiment (``tools/robustness_experiment.py``).

On the offline demo set (Fashion-MNIST as 32 px RGB), train a small CIFAR ResNet with the
project's FFCV pipeline (:func:`pipelines.build_loader`) and trainer parts
(:class:`ipmix_train.engine.Trainer`) for each method and seed, then measure clean top-1 error,
RMS calibration error and the mean corruption error over the 15 ImageNet-C corruptions at
all 5 severities on a held-out test subset (:mod:`ipmix_train.corruptions`, cached). Methods:

* ``vanilla``: flip (the FFCV train pipeline without IPMix; its random-resized crop is off
  by default, ``crop_scale=(1, 1)``, as 32 px sets are usually trained whole);
* ``ipmix``: the same with IPMix (``cifar`` preset, one view, cross-entropy);
* ``ipmix_jsd``: IPMix with the clean + 2 IPMix views and the JSD consistency loss;
* ``augmix``: torchvision's ``AugMix`` (``all_ops=False``: no op that overlaps the test
  corruptions, as in the AugMix paper) applied per sample after the vanilla pipeline, one
  view, no JSD (the outside baseline).

Every run is saved (``runs/<method>-s<seed>/checkpoint.pt``, loadable by
``train/evaluate.py``) with its results; a later call with the same settings reuses them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fractal_store.store import default_workers
from ipmix_train.checkpoint import write_text_atomic
from ipmix_train.runinfo import versions

METHODS = ("vanilla", "ipmix", "ipmix_jsd", "augmix")
LABELS = {
    "vanilla": "vanilla (flip)",
    "ipmix": "IPMix",
    "ipmix_jsd": "IPMix + JSD",
    "augmix": "AugMix (torchvision, no JSD)",
}
BEGIN, END = "<!-- robustness:begin -->", "<!-- robustness:end -->"


@dataclass(frozen=True)
class Spec:
    """Settings of one experiment (defaults: the ``make robustness`` run)."""

    train_per_class: int = 600
    val_per_class: int = 100
    test_per_class: int = 40
    epochs: int = 8
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-4
    arch: str = "cifar_resnet8"
    seeds: tuple[int, ...] = (0, 1)
    methods: tuple[str, ...] = METHODS
    fractals: int = 128
    crop_scale: tuple[float, float] = (1.0, 1.0)
    eval_crop: bool = False
    workers: int = 1

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown or not self.methods:
            raise ValueError(f"methods must be from {METHODS}, got {self.methods}")
        if "vanilla" not in self.methods:
            raise ValueError("methods must include 'vanilla' (the reference)")
        if self.test_per_class > self.val_per_class:
            raise ValueError("test_per_class must be <= val_per_class")
        for name in ("train_per_class", "val_per_class", "test_per_class", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        from pipelines.keyed import check_crop_scale

        object.__setattr__(self, "crop_scale", check_crop_scale(self.crop_scale))

    @classmethod
    def quick(cls, **overrides: Any) -> Spec:
        """A few minutes on two cores: less data, fewer epochs, one seed."""
        base = dict(
            train_per_class=100,
            val_per_class=40,
            test_per_class=10,
            epochs=3,
            seeds=(0,),
            fractals=32,
        )
        return cls(**{**base, **overrides})


# ---------------------------------------------------------------------- data
def prepare_data(out: Path, spec: Spec, progress: bool = True) -> dict[str, Any]:
    """Demo ImageFolder, train .beton, fractal store, val arrays and the corruption cache."""
    from ipmix_train.corruptions import corrupted_set
    from ipmix_train.evalsets import list_imagefolder, load_images
    from pipelines.datasets.beton import write_beton
    from pipelines.datasets.demo import write_demo_imagefolder

    data = out / f"fashion_mnist-{spec.train_per_class}-{spec.val_per_class}"
    if not (data / "train").is_dir():
        write_demo_imagefolder(
            data,
            size=32,
            train_per_class=spec.train_per_class,
            val_per_class=spec.val_per_class,
            progress=progress,
        )
    beton = data.with_suffix(".beton")
    if not beton.is_file():
        write_beton(data / "train", beton, max_resolution=32, progress=progress)
    store = out / f"fractals-{spec.fractals}.zip"
    if not store.is_file():
        import fractal_store

        fractal_store.build_store(store, count=spec.fractals, size=64, seed=0, progress=progress)
    _, items = list_imagefolder(data / "val")
    val_images, val_labels = load_images(items, 32, crop=spec.eval_crop, workers=default_workers())
    # the held-out corruption subset: the first test_per_class val images of each class
    pick = np.concatenate(
        [np.flatnonzero(val_labels == c)[: spec.test_per_class] for c in range(10)]
    )
    folder, manifest = corrupted_set(
        out / "corruption_cache",
        val_images[pick],
        val_labels[pick],
        workers=default_workers(),
        progress=progress,
        source=str(data / "val"),
    )
    return {
        "beton": beton,
        "store": store,
        "val": (val_images, val_labels),
        "cache": folder,
        "manifest": manifest,
    }


class AugMixLoader:
    """Applies torchvision's AugMix to each uint8 image of another loader's batches."""

    def __init__(self, loader: Any, seed: int) -> None:
        from torchvision.transforms import v2

        self.loader, self.seed = loader, seed
        self.augmix = v2.AugMix(all_ops=False)

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)
        torch.manual_seed(self.seed * 1000 + epoch)

    def __iter__(self):
        for images, labels in self.loader:
            yield torch.stack([self.augmix(x) for x in images.contiguous()]), labels


# ---------------------------------------------------------------------- one run
def train_run(
    method: str, seed: int, spec: Spec, data: dict[str, Any], run_dir: Path, progress: bool = True
) -> dict[str, Any]:
    """Train one (method, seed), evaluate it, save checkpoint and results; returns results."""
    from ipmix_ops import IPMixConfig
    from ipmix_ops.config import mean_std
    from ipmix_train.checkpoint import rng_state, save_checkpoint
    from ipmix_train.engine import DistEnv, Normalizer, Trainer, param_groups
    from ipmix_train.evalcore import cache_sets, evaluate
    from ipmix_train.evalscore import upgrade_keys
    from ipmix_train.evalsets import array_set
    from ipmix_train.models import build_model
    from pipelines import build_loader

    done = run_dir / "results.json"
    key = {"method": method, "seed": seed, "spec": _spec_dict(spec)}
    if done.is_file():
        prev = upgrade_keys(json.loads(done.read_text()))  # older files: unit-less keys
        if _run_settings(prev.get("key")) == _run_settings(key):
            return prev
    ipmix = (
        None
        if method in ("vanilla", "augmix")
        else IPMixConfig.preset("cifar", jsd=method == "ipmix_jsd")
    )
    mean, std = mean_std(ipmix)
    torch.manual_seed(seed)
    loader = build_loader(
        "ffcv",
        data["beton"],
        train=True,
        batch_size=spec.batch_size,
        image_size=32,
        fractals=data["store"] if ipmix else None,
        ipmix=ipmix,
        jsd=method == "ipmix_jsd",
        seed=seed,
        num_workers=spec.workers,
        device="cpu",
        output="uint8",
        crop_scale=spec.crop_scale,
    )
    if method == "augmix":
        loader = AugMixLoader(loader, seed)
    model = build_model(spec.arch, 10).to(memory_format=torch.channels_last)  # ~1.2x on CPU
    opt = torch.optim.SGD(
        param_groups(model, spec.weight_decay, True), lr=spec.lr, momentum=0.9, nesterov=True
    )
    steps = len(loader)
    t = Trainer(
        model=model,
        raw=model,
        optimizer=opt,
        normalize=Normalizer(mean, std, True),
        env=DistEnv(),
        steps_per_epoch=steps,
        total_steps=steps * spec.epochs,
        lr=spec.lr,
        final_lr=0.0,
        warmup_steps=steps // 2,
        views=3 if method == "ipmix_jsd" else 1,
        jsd_lambda=ipmix.jsd_lambda if ipmix else 0.0,
        label_smoothing=0.0,
        amp=False,
    )
    t0 = time.perf_counter()
    losses, startup = [], 0.0
    for _ in range(spec.epochs):
        stats = t.train_epoch(loader, should_stop=lambda: False, progress=progress)
        losses.append(stats["train_loss"])
        startup += stats["first_batch_s"]  # loader start-up and JIT compilation
    train_s = time.perf_counter() - t0
    labels = np.load(data["cache"] / "labels.npy")
    corrupted = cache_sets(data["cache"], data["manifest"], labels)
    info = {"arch": spec.arch, "mean": list(mean), "std": list(std), "image_size": 32}
    info["num_classes"] = 10
    info["val_crop"] = spec.eval_crop  # how train/evaluate.py should feed this checkpoint
    t1 = time.perf_counter()
    val = array_set(*data["val"], where="demo val set")
    res = evaluate(model, info, val, corrupted, generated=True, progress=progress)
    cfg = {
        "arch": spec.arch,
        "num_classes": 10,
        "image_size": 32,
        "seed": seed,
        "method": method,
        "ipmix": ipmix.to_dict() if ipmix else None,
    }
    save_checkpoint(
        run_dir / "checkpoint.pt",
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": t.epoch,
            "step_in_epoch": 0,
            "step": t.step,
            "rng": rng_state(),
            "config": cfg,
            "eval": info,
        },
    )
    out = {
        "key": key,
        "train_loss": losses,
        "train_seconds": train_s,
        "startup_seconds": startup,
        "eval_seconds": time.perf_counter() - t1,
        "steps": t.step,
        **res,
    }
    write_text_atomic(done, json.dumps(out, indent=1) + "\n")
    return out


def _run_settings(key: dict[str, Any] | None) -> dict[str, Any] | None:
    """What decides one run's outcome: the key without the lists of seeds and methods."""
    if not key:
        return None
    spec = {k: v for k, v in key["spec"].items() if k not in ("seeds", "methods")}
    return {**key, "spec": spec}


def _crop_words(spec: dict[str, Any]) -> str:
    lo, hi = spec.get("crop_scale", (0.08, 1.0))
    train = "whole images" if lo == hi == 1.0 else f"random-resized crops, area {lo:g}-{hi:g}"
    val = "centre crops" if spec.get("eval_crop", True) else "whole images"
    return f"train on {train}, evaluate {val}"


def _spec_dict(spec: Spec) -> dict[str, Any]:
    d = dataclasses.asdict(spec)
    d["seeds"], d["methods"] = list(spec.seeds), list(spec.methods)
    d["crop_scale"] = list(spec.crop_scale)
    d.pop("workers")
    return d


# ---------------------------------------------------------------------- the experiment
def run_experiment(out: str | os.PathLike, spec: Spec, progress: bool = True) -> dict[str, Any]:
    """Every method x seed; returns the summary (also written to ``out/results.json``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = prepare_data(out, spec, progress)
    prep_s = time.perf_counter() - t0
    runs: dict[str, list[dict[str, Any]]] = {}
    for seed in spec.seeds:
        for method in spec.methods:
            print(f"== {method}, seed {seed}", flush=True)
            r = train_run(method, seed, spec, data, out / "runs" / f"{method}-s{seed}", progress)
            runs.setdefault(method, []).append(r)
            print(
                f"   clean error {r['clean']['top1_err_pct']:.2f}%, mean corruption error "
                f"{r['mean_corruption_err_pct']:.2f}%, calibration "
                f"{r['clean']['calib_rms_pct']:.2f}%, "
                f"train {r['train_seconds']:.0f}s",
                flush=True,
            )
    summary = summarize(runs)
    result = {
        "spec": _spec_dict(spec),
        "summary": summary,
        "goal": goal(summary),
        "seconds": time.perf_counter() - t0,
        "data_seconds": prep_s,
        "test_images": int(data["manifest"]["images"]),
        "val_images": int(len(data["val"][1])),
        "cpu_cores": default_workers(),
        "torch_threads": torch.get_num_threads(),
        **versions("torch"),
        "runs": {m: [_brief(r) for r in rs] for m, rs in runs.items()},
    }
    write_text_atomic(out / "results.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(out / "results.md", markdown(result) + "\n")
    plot(runs, out / "robustness.png")
    return result


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "train_seconds",
        "eval_seconds",
        "steps",
        "train_loss",
        "mean_corruption_err_pct",
        "corruption_err_pct",
        "corrupted_calib_rms_pct",
        "clean",
    )
    return {"seed": r["key"]["seed"], **{k: r[k] for k in keep}}


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation over seeds (0 for one seed) of each metric per method."""
    metrics = {
        "clean_err_pct": lambda r: r["clean"]["top1_err_pct"],
        "mean_corruption_err_pct": lambda r: r["mean_corruption_err_pct"],
        "calib_rms_pct": lambda r: r["clean"]["calib_rms_pct"],
        "corrupted_calib_rms_pct": lambda r: r["corrupted_calib_rms_pct"],
    }
    out = {}
    for method, rs in runs.items():
        row: dict[str, float] = {"seeds": len(rs)}
        for name, get in metrics.items():
            v = np.array([get(r) for r in rs], dtype=np.float64)
            row[name] = float(v.mean())
            row[name + "_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
        row["train_seconds"] = float(np.mean([r["train_seconds"] for r in rs]))
        out[method] = row
    return out


def goal(summary: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The issue's goal: IPMix cuts mean corruption error >= 40% vs vanilla, clean error
    within 1 point. Checked for each IPMix variant present."""
    van = summary["vanilla"]
    res = {}
    for m in ("ipmix", "ipmix_jsd"):
        if m in summary:
            cut = 1 - summary[m]["mean_corruption_err_pct"] / van["mean_corruption_err_pct"]
            gap = summary[m]["clean_err_pct"] - van["clean_err_pct"]
            res[m] = {
                "corruption_err_cut_frac": cut,
                "clean_err_gap_pct": gap,
                "met": bool(cut >= 0.40 and abs(gap) <= 1.0),
            }
    return res


def markdown(result: dict[str, Any]) -> str:
    """The results table (mean ± std over seeds) and the goal verdict, as Markdown."""
    s, spec = result["summary"], result["spec"]
    n_seeds = len(spec["seeds"])
    lines = [
        "| method | clean error % | mean corruption error % | RMS calibration error % "
        "(clean) | RMS calibration error % (corrupted) | train s/run |",
        "|---|---|---|---|---|---|",
    ]
    for m, row in s.items():
        cells = [
            f"{row[k]:.1f} ± {row[k + '_std']:.1f}"
            for k in (
                "clean_err_pct",
                "mean_corruption_err_pct",
                "calib_rms_pct",
                "corrupted_calib_rms_pct",
            )
        ]
        lines.append(f"| {LABELS[m]} | " + " | ".join(cells) + f" | {row['train_seconds']:.0f} |")
    lines.append("")
    for m, g in result["goal"].items():
        lines.append(
            f"- {LABELS[m]}: mean corruption error {-100 * g['corruption_err_cut_frac']:+.0f}% "
            f"relative to vanilla, clean error {g['clean_err_gap_pct']:+.2f} points (goal: -40% "
            f"or better with clean error within 1 point: {'met' if g['met'] else 'not met'})."
        )
    lines.append(
        f"- Setting: {spec['arch']}, Fashion-MNIST 32 px, {10 * spec['train_per_class']} train "
        f"images, {spec['epochs']} epochs, batch {spec['batch_size']}, FFCV pipeline "
        f"({_crop_words(spec)}); clean "
        f"error on {result['val_images']} test images, corruptions (15 ImageNet-C types x 5 "
        f"severities, `imagecorruptions`) on {result['test_images']}; mean ± std over "
        f"{n_seeds} seed{'s' if n_seeds > 1 else ''} ({', '.join(map(str, spec['seeds']))})."
    )
    lines.append(
        f"- {result['cpu_cores']} CPU cores, {result['seconds'] / 60:.1f} min in all; "
        f"torch {result['torch']}, Python {result['python']}."
    )
    return "\n".join(lines)


def plot(runs: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    """Top-1 error vs severity (mean over corruptions and seeds), one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=110)
    for method, rs in runs.items():
        sev = sorted(int(s) for s in next(iter(rs[0]["corrupted"].values())))
        ys = [np.mean([r["clean"]["top1_err_pct"] for r in rs])]
        for s in sev:
            ys.append(
                np.mean(
                    [
                        e[s if s in e else str(s)]["top1_err_pct"]
                        for r in rs
                        for e in r["corrupted"].values()
                    ]
                )
            )
        ax.plot([0, *sev], ys, marker="o", label=LABELS[method])
    ax.set(
        xlabel="corruption severity (0 = clean)",
        ylabel="top-1 error (%)",
        title="Fashion-MNIST 32 px: error vs severity (15 corruptions)",
    )
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def update_readme(readme: str | os.PathLike, result: dict[str, Any], command: str) -> None:
    """Replace the text between the robustness markers of ``readme`` with the results."""
    readme = Path(readme)
    text = readme.read_text()
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{readme}: lacks the markers {BEGIN} ... {END}")
    body = (
        f"Regenerated by `{command}`; JSON, Markdown and plot (`robustness.png`) in its "
        f"output folder.\n\n{markdown(result)}\n"
    )
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    write_text_atomic(readme, f"{head}{BEGIN}\n{body}{END}{tail}")
