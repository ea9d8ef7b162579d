#!/usr/bin/env python
"""Evaluate a trained classifier: clean error, calibration and corruption robustness.

    python train/evaluate.py --checkpoint runs/paper --val-data imagenet/val \\
        --imagenet-c imagenet-c/ --out results.json
    python train/evaluate.py --checkpoint runs/demo/checkpoint.pt --val-data demo/val \\
        --corrupt-on-the-fly --cache-dir corruption_cache --out results.json

``--checkpoint``: a run directory of ``train/imagenet.py`` (its ``checkpoint.pt``) or a
checkpoint file; the architecture, class count, input size and normalisation come from it.
``--val-data``: an ImageFolder tree (``<class>/<image>``); each image is centre-cropped to
224/256 of its shorter side and resized to the input size (the trainers' val transform), or
resized whole with ``--no-crop`` (the default of checkpoints whose ``eval`` entry says
``val_crop: false``, such as the robustness experiment's 32 px models).

Reported: top-1/top-5 error (%) and RMS calibration error (%; adaptive bins of 100 samples
sorted by confidence, :func:`ipmix_train.metrics.calibration_rms`) on the clean set, and per
corruption and severity; the mean corruption error (the plain mean of the corrupted top-1
errors) and the mCE (each corruption's error summed over severities divided by AlexNet's,
averaged over the 15 ImageNet-C corruptions, in %; meaningful for ImageNet only).

Corrupted data: ``--imagenet-c DIR`` reads the benchmark's ``DIR/<corruption>/<severity>/
<class>/*`` (already centre crops: only resized to the input size). Otherwise
``--corrupt-on-the-fly`` applies the 15 corruptions x 5 severities to the preprocessed val
images with ``imagecorruptions`` and caches the result (``--cache-dir``; see
:mod:`ipmix_train.corruptions`). Outputs: a table on stdout, ``--out`` JSON and a PNG plot next
to it (error vs severity per corruption). Exit status: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ipmix_train.checkpoint import CheckpointError, load_checkpoint, write_text_atomic
from ipmix_train.corruptions import (
    ALEXNET_ERR,
    CORRUPTIONS,
    SEVERITIES,
    corrupted_set,
    find_imagenet_c,
    load_variant,
)
from ipmix_train.metrics import calibration_rms, topk_correct
from pipelines.datasets.folder import IMG_EXTENSIONS

CROP_RATIO = 224 / 256
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ipmix-corrupt"


# ---------------------------------------------------------------------- model
def load_model(
    checkpoint: str | os.PathLike, num_classes: int | None = None, arch: str | None = None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model of a checkpoint (eval mode, CPU) and how to feed it.

    ``checkpoint``: a file, or a run directory holding ``checkpoint.pt``. ``num_classes``
    (of the data) and ``arch`` (when given) must match the checkpoint. Returns
    ``(model, info)``, ``info`` with ``arch``, ``num_classes``, ``image_size``, ``mean``,
    ``std`` and ``path``. Raises :class:`CheckpointError` naming the file and the problem.
    """
    from ipmix_train.models import build_model

    path = Path(checkpoint)
    if path.is_dir():
        path = path / "checkpoint.pt"
    state = load_checkpoint(path)
    cfg = state.get("config") or {}
    saved_arch = cfg.get("arch")
    arch = arch or saved_arch
    if arch is None:
        raise CheckpointError(f"{path}: names no architecture (config.arch); pass --arch")
    weights = [(k, v) for k, v in state["model"].items() if k.endswith("weight") and v.ndim == 2]
    if not weights:
        raise CheckpointError(f"{path}: no classifier weight in the model state")
    classes = int(weights[-1][1].shape[0])
    if num_classes is not None and num_classes != classes:
        raise CheckpointError(
            f"{path}: the checkpoint classifies {classes} classes, the data has {num_classes}"
        )
    try:
        model = build_model(arch, classes)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from e
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(
            f"{path}: weights do not fit {arch} with {classes} classes (saved arch "
            f"{saved_arch!r}; {first} ...)"
        ) from e
    model.eval()
    mean, std = _normalisation(state, cfg)
    ev = state.get("eval") or {}
    size = ev.get("image_size") or cfg.get("val_image_size") or cfg.get("image_size") or 224
    info = {"path": str(path), "arch": arch, "num_classes": classes, "image_size": int(size)}
    info["val_crop"] = bool(ev.get("val_crop", True))
    return model, {**info, "mean": list(mean), "std": list(std)}


def _normalisation(state: dict[str, Any], cfg: dict[str, Any]) -> tuple[tuple, tuple]:
    """mean/std: the checkpoint's ``eval`` entry, else what ``train/imagenet.py`` used."""
    ev = state.get("eval") or {}
    if "mean" in ev and "std" in ev:
        return tuple(ev["mean"]), tuple(ev["std"])
    from ipmix_ops.config import IMAGENET_MEAN, IMAGENET_STD

    try:
        from ipmix_train.config import ipmix_config, make_config

        ipmix = ipmix_config(make_config(cfg))
    except (ValueError, TypeError):  # not a train/imagenet.py config
        ipmix = None
    return (ipmix.mean, ipmix.std) if ipmix else (IMAGENET_MEAN, IMAGENET_STD)


# ---------------------------------------------------------------------- data
def list_imagefolder(root: str | os.PathLike) -> tuple[list[str], list[tuple[Path, int]]]:
    """``(class names, [(image path, class index)])`` of an ImageFolder tree; ValueError
    naming the folder when it is missing, empty or has no images."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{root}: empty folder (expected ImageFolder <class>/<image> folders)")
    items = [
        (p, i)
        for i, c in enumerate(classes)
        for p in sorted((root / c).iterdir())
        if p.suffix.lower() in IMG_EXTENSIONS
    ]
    if not items:
        raise ValueError(f"{root}: no images in its {len(classes)} class folders")
    return classes, items


def load_images(
    items: list[tuple[Path, int]], size: int, *, crop: bool = True, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[N, size, size, 3]`` and int64 labels. ``crop``: centre square of 224/256 of
    the shorter side, then resize (the val transform); else resize the whole image."""
    out = np.empty((len(items), size, size, 3), np.uint8)
    for n, (path, _) in enumerate(tqdm(items, desc="loading", disable=not progress)):
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
        except OSError as e:
            raise ValueError(f"{path}: unreadable image ({e})") from e
        if crop:
            w, h = im.size
            s = max(1, round(CROP_RATIO * min(w, h)))
            left, top = (w - s) // 2, (h - s) // 2
            im = im.crop((left, top, left + s, top + s))
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        out[n] = np.asarray(im)
    return out, np.array([c for _, c in items], np.int64)


# ---------------------------------------------------------------------- metrics
@torch.no_grad()
def predict(
    model: torch.nn.Module,
    images: np.ndarray,
    mean: Any,
    std: Any,
    batch_size: int = 500,
    device: str = "cpu",
) -> torch.Tensor:
    """float32 logits ``[N, C]`` of uint8 NHWC ``images``, normalised ``(x/255-mean)/std``."""
    model.eval().to(device)
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1) * 255
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1) * 255
    out = []
    for lo in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[lo : lo + batch_size])).to(device)
        x = (x.permute(0, 3, 1, 2).float() - m) / s
        out.append(model(x).float().cpu())
    return torch.cat(out)


def scores(logits: torch.Tensor, labels: np.ndarray | torch.Tensor) -> dict[str, float]:
    """top-1/top-5 error and RMS calibration error, in %, and the sample count."""
    labels = torch.as_tensor(labels, dtype=torch.int64)
    c1, c5 = topk_correct(logits, labels)
    p = logits.softmax(dim=1).max(dim=1)
    calib = calibration_rms(p.values.numpy(), (p.indices == labels).numpy())
    n = len(labels)
    return {
        "top1_err": 100 - 100 * c1 / n,
        "top5_err": 100 - 100 * c5 / n,
        "calib_rms": 100 * calib,
        "n": n,
    }


def corruption_summary(errors: dict[str, dict[int, float]]) -> dict[str, Any]:
    """From top-1 errors (%) per corruption and severity: per-corruption mean error, the
    mean corruption error over everything given, and (only when all 15 ImageNet-C
    corruptions at all 5 severities are present) the AlexNet-normalised CE and mCE (%)."""
    if not errors:
        raise ValueError("no corruption errors to summarise")
    per = {c: float(np.mean(list(e.values()))) for c, e in errors.items()}
    out: dict[str, Any] = {
        "corruption_err": per,
        "mean_corruption_err": float(np.mean(list(per.values()))),
    }
    full = set(CORRUPTIONS) <= set(errors) and all(
        set(errors[c]) >= set(SEVERITIES) for c in CORRUPTIONS
    )
    if full:
        # CE_c = sum_s E_{s,c} / sum_s E^AlexNet_{s,c}; ALEXNET_ERR holds the mean over s
        ce = {c: per[c] / (100 * ALEXNET_ERR[c]) * 100 for c in CORRUPTIONS}
        out["ce_alexnet"] = ce
        out["mce"] = float(np.mean(list(ce.values())))
    return out


# ---------------------------------------------------------------------- the evaluation
def evaluate(
    model: torch.nn.Module,
    info: dict[str, Any],
    clean: tuple[np.ndarray, np.ndarray],
    corrupted: dict[str, dict[int, Any]],
    *,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Clean and corrupted scores. ``corrupted``: ``{corruption: {severity: source}}``, a
    source being ``(images, labels)`` or a callable returning them (loaded when needed)."""
    mean, std = info["mean"], info["std"]
    res: dict[str, Any] = {
        "clean": scores(predict(model, clean[0], mean, std, device=device), clean[1])
    }
    jobs = [(c, s, src) for c, sev in corrupted.items() for s, src in sorted(sev.items())]
    per: dict[str, dict[int, dict[str, float]]] = {}
    for c, s, src in tqdm(jobs, desc="corrupted sets", disable=not progress or not jobs):
        images, labels = src() if callable(src) else src
        per.setdefault(c, {})[s] = scores(predict(model, images, mean, std, device=device), labels)
    res["corrupted"] = per
    if per:
        res.update(
            corruption_summary(
                {c: {s: v["top1_err"] for s, v in e.items()} for c, e in per.items()}
            )
        )
        res["corrupted_calib_rms"] = float(
            np.mean([v["calib_rms"] for e in per.values() for v in e.values()])
        )
    return res


def format_table(res: dict[str, Any]) -> str:
    """A plain-text table: clean scores, then error per corruption and severity."""
    c = res["clean"]
    lines = [
        f"clean: top-1 error {c['top1_err']:.2f}%, top-5 error {c['top5_err']:.2f}%, "
        f"RMS calibration error {c['calib_rms']:.2f}% ({c['n']} images)"
    ]
    per = res.get("corrupted") or {}
    if per:
        sev = sorted({s for e in per.values() for s in e})
        head = f"{'corruption':<18}" + "".join(f"{'s' + str(s):>7}" for s in sev)
        lines += ["", head + f"{'mean':>7}" + (f"{'CE':>7}" if "ce_alexnet" in res else "")]
        for name, e in per.items():
            row = f"{name:<18}" + "".join(
                f"{e[s]['top1_err']:>7.1f}" if s in e else f"{'-':>7}" for s in sev
            )
            row += f"{res['corruption_err'][name]:>7.1f}"
            if "ce_alexnet" in res and name in res["ce_alexnet"]:
                row += f"{res['ce_alexnet'][name]:>7.1f}"
            lines.append(row)
        lines.append(f"mean corruption error {res['mean_corruption_err']:.2f}%")
        if "mce" in res:
            lines.append(f"mCE (AlexNet-normalised, ImageNet-C convention) {res['mce']:.2f}%")
        lines.append(f"mean RMS calibration error, corrupted: {res['corrupted_calib_rms']:.2f}%")
    return "\n".join(lines)


def plot_severity(res: dict[str, Any], path: str | os.PathLike, title: str = "") -> Path:
    """PNG of top-1 error vs severity, one line per corruption (clean error at severity 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    clean = res["clean"]["top1_err"]
    cmap = plt.get_cmap("tab20")
    for i, (name, e) in enumerate((res.get("corrupted") or {}).items()):
        sev = sorted(e)
        style = "-" if i < 10 else "--"
        ax.plot(
            [0, *sev],
            [clean] + [e[s]["top1_err"] for s in sev],
            style,
            marker="o",
            ms=3,
            color=cmap(i % 20),
            label=name,
        )
    ax.axhline(clean, color="k", lw=0.8, ls=":", label="clean")
    ax.set(xlabel="severity (0 = clean)", ylabel="top-1 error (%)", ylim=(0, 100))
    ax.set_title(f"{title}: error vs severity" if title else "error vs corruption severity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="train/evaluate.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="run directory or checkpoint file")
    p.add_argument("--val-data", required=True, help="ImageFolder tree <class>/<image>")
    p.add_argument("--imagenet-c", help="ImageNet-C tree <corruption>/<severity>/<class>/*")
    p.add_argument(
        "--corrupt-on-the-fly",
        action="store_true",
        help="without --imagenet-c: corrupt the val set (cached)",
    )
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="corruption cache folder")
    p.add_argument("--arch", help="check the checkpoint against this architecture")
    p.add_argument("--image-size", type=int, help="input side (default: the checkpoint's)")
    p.add_argument(
        "--crop",
        action=argparse.BooleanOptionalAction,
        help="centre-crop 224/256 of the val images (default: the checkpoint's setting, else on)",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=1, help="processes corrupting the val set")
    p.add_argument("--seed", type=int, default=0, help="seed of the corruption noise")
    p.add_argument("--out", help="results JSON (a PNG plot is written next to it)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    try:
        classes, items = list_imagefolder(args.val_data)
        model, info = load_model(args.checkpoint, num_classes=len(classes), arch=args.arch)
        size = args.image_size or info["image_size"]
        info["image_size"] = size
        if args.crop is not None:
            info["val_crop"] = args.crop
        clean = load_images(items, size, crop=info["val_crop"], progress=args.progress)
        corrupted: dict[str, dict[int, Any]] = {}
        source = source_kind = "none"
        if args.imagenet_c:
            source = f"ImageNet-C folder {args.imagenet_c}"
            source_kind = "ImageNet-C"
            for c, sev in find_imagenet_c(args.imagenet_c).items():
                for s, folder in sev.items():
                    corrupted.setdefault(c, {})[s] = _folder_source(folder, classes, size)
        elif args.corrupt_on_the_fly:
            folder, manifest = corrupted_set(
                args.cache_dir,
                *clean,
                workers=args.workers,
                seed=args.seed,
                progress=args.progress,
                source=str(Path(args.val_data).resolve()),
            )
            source = f"imagecorruptions on the val set, cache {folder}"
            source_kind = "val set corrupted with imagecorruptions"
            corrupted = cache_sources(folder, manifest, clean[1])
        res = evaluate(model, info, clean, corrupted, device=args.device, progress=args.progress)
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        print(f"train/evaluate.py: error: {e}", file=sys.stderr)
        return 2
    res = {
        "checkpoint": info,
        "val_data": str(args.val_data),
        "corruptions": source,
        "seconds": time.perf_counter() - t0,
        **res,
    }
    print(format_table(res))
    if args.out:
        out = write_text_atomic(args.out, json.dumps(res, indent=2) + "\n")
        print(f"results: {out}")
        if res.get("corrupted"):
            png = plot_severity(
                res, out.with_suffix(".png"), title=f"{info['arch']}: {source_kind}"
            )
            print(f"plot: {png}")
    return 0


def _folder_source(folder: Path, classes: list[str], size: int):
    """A loader of one ImageNet-C ImageFolder, labels mapped by class name to the val's."""
    index = {c: i for i, c in enumerate(classes)}

    def load() -> tuple[np.ndarray, np.ndarray]:
        names, items = list_imagefolder(folder)
        unknown = sorted(set(names) - set(index))
        if unknown:
            raise ValueError(f"{folder}: class folders {unknown[:5]} are not in the val data")
        items = [(path, index[names[i]]) for path, i in items]
        return load_images(items, size, crop=False, progress=False)

    return load


def cache_sources(
    folder: Path, manifest: dict[str, Any], labels: np.ndarray
) -> dict[str, dict[int, Any]]:
    """``{corruption: {severity: loader}}`` over a corruption cache (``corrupted_set``'s
    folder and manifest): each loader returns ``(images, labels)`` when :func:`evaluate`
    asks, so one variant is in memory at a time."""

    def source(corruption: str, severity: int):
        return lambda: (load_variant(folder, corruption, severity), labels)

    return {c: {s: source(c, s) for s in manifest["severities"]} for c in manifest["corruptions"]}


if __name__ == "__main__":
    sys.exit(main())
