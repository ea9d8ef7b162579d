"""The evaluation of :mod:`ipmix_train.evaluate` (its command line's help says what is
measured): a checkpoint's model, and its scores on clean and corrupted validation sets read
batch by batch (:mod:`ipmix_train.evalsets`), corrupted on the fly
(:mod:`ipmix_train.corrupt_stream`) or read from ImageNet-C folders or a corruption cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import CheckpointError, load_checkpoint
from .corrupt_stream import OnTheFly
from .corruptions import find_imagenet_c, load_variant
from .evalscore import Tally, corruption_summary, mce_caveats
from .evalsets import ValSet, array_set, imagefolder_set


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
    from .models import build_model

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
    check_classes({"path": str(path), "num_classes": classes}, num_classes)
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


def check_classes(info: dict[str, Any], num_classes: int | None) -> None:
    """CheckpointError when the data's ``num_classes`` (None: unknown) is not the model's."""
    if num_classes is not None and num_classes != info["num_classes"]:
        raise CheckpointError(
            f"{info['path']}: the checkpoint classifies {info['num_classes']} classes, the "
            f"data has {num_classes}"
        )


def _normalisation(state: dict[str, Any], cfg: dict[str, Any]) -> tuple[tuple, tuple]:
    """mean/std: the checkpoint's ``eval`` entry, else what ``train/imagenet.py`` used."""
    ev = state.get("eval") or {}
    if "mean" in ev and "std" in ev:
        return tuple(ev["mean"]), tuple(ev["std"])
    from ipmix_ops.config import mean_std

    try:
        from .config import ipmix_config, make_config

        ipmix = ipmix_config(make_config(cfg))
    except (ValueError, TypeError):  # not a train/imagenet.py config
        ipmix = None
    return mean_std(ipmix)


# ---------------------------------------------------------------------- the evaluation
@torch.no_grad()
def _logits(model: torch.nn.Module, normalise: Any, images: np.ndarray, device: str):
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return model(normalise(x.permute(0, 3, 1, 2))).float()


def evaluate(
    model: torch.nn.Module,
    info: dict[str, Any],
    clean: ValSet,
    corrupted: dict[str, dict[int, Any]] | None = None,
    *,
    on_the_fly: OnTheFly | None = None,
    generated: bool | None = None,
    device: str = "cpu",
    batch_size: int = 100,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Clean and corrupted scores (%, :mod:`ipmix_train.evalscore`).

    ``corrupted``: ``{corruption: {severity: ValSet or a callable returning one}}`` (opened
    when its turn comes); ``on_the_fly``: corrupt ``clean`` while reading it instead.
    ``generated``: the corrupted sets were made here, not read from the released ImageNet-C
    files (default: ``on_the_fly`` is given); it is one of the mCE's caveats. ``info``:
    ``mean``, ``std`` (:func:`load_model`). ``workers``: threads decoding the val images.
    """
    from pipelines.contract import Normalise

    corrupted = corrupted or {}
    normalise = Normalise(info["mean"], info["std"])
    model.eval().to(device)
    tallies: dict[Any, Tally] = {None: Tally(len(clean))}
    if on_the_fly is not None:
        for c in on_the_fly.corruptions:
            for s in on_the_fly.severities:
                tallies[(c, s)] = Tally(len(clean))
        items = on_the_fly.stream(clean, batch_size, workers)
    else:
        items = ((None, st, im, lb) for st, im, lb in clean.batches(batch_size, workers))
    variants = len(tallies) - 1 + sum(len(v) for v in corrupted.values())
    bar = tqdm(
        total=len(clean) * (1 + variants),
        unit="img",
        desc="evaluating",
        disable=not progress,
        smoothing=0.05,
    )
    classes = 0
    for variant, start, images, labels in items:
        logits = _logits(model, normalise, images, device)
        tallies[variant].add(start, logits, labels)
        classes = logits.shape[1]
        bar.update(len(labels))
    for c, sev in corrupted.items():
        for s, src in sorted(sev.items()):
            vs = src() if callable(src) else src
            t = tallies[(c, s)] = Tally(len(vs))
            for start, images, labels in vs.batches(batch_size, workers):
                t.add(start, _logits(model, normalise, images, device), labels)
                bar.update(len(labels))
    bar.close()
    res: dict[str, Any] = {"clean": tallies.pop(None).scores()}
    per: dict[str, dict[int, dict[str, float]]] = {}
    for (c, s), t in tallies.items():
        per.setdefault(c, {})[s] = t.scores()
    res["corrupted"] = per
    if not per:
        return res
    res.update(
        corruption_summary(
            {c: {s: v["top1_err_pct"] for s, v in e.items()} for c, e in per.items()}
        )
    )
    res["corrupted_calib_rms_pct"] = float(
        np.mean([v["calib_rms_pct"] for e in per.values() for v in e.values()])
    )
    caveats = mce_caveats(
        num_classes=int(info.get("num_classes") or classes),
        image_size=clean.image_size,
        images=len(clean),
        classes=clean.classes,
        generated=on_the_fly is not None if generated is None else generated,
        missing=res.get("imagenet_c_missing"),
    )
    res["mce_comparable"], res["mce_caveats"] = not caveats, caveats
    return res


def imagenet_c_sets(
    root: str | os.PathLike, clean: ValSet, size: int, num_classes: int
) -> dict[str, dict[int, Any]]:
    """``{corruption: {severity: opener}}`` of an ImageNet-C tree, labels matched to the val
    set by class name, or by sorted order when the val set has no names (a .beton): then
    every severity folder must hold ``num_classes`` class folders."""

    def opener(folder: Path):
        def open_set() -> ValSet:
            if clean.classes is not None:
                return imagefolder_set(folder, size, crop=False, classes=clean.classes)
            vs = imagefolder_set(folder, size, crop=False)
            if len(vs.classes or ()) != num_classes:
                raise ValueError(
                    f"{folder}: {len(vs.classes or ())} class folders; with a .beton val set "
                    f"(no class names) they are matched by sorted order and must be the "
                    f"model's {num_classes}"
                )
            return vs

        return open_set

    return {c: {s: opener(f) for s, f in sev.items()} for c, sev in find_imagenet_c(root).items()}


def cache_sets(folder: Path, manifest: dict[str, Any], labels: np.ndarray) -> dict:
    """``{corruption: {severity: opener}}`` over a corruption cache (``corrupted_set``'s
    folder and manifest), each variant memory-mapped when its turn comes."""

    def opener(c: str, s: int):
        return lambda: array_set(load_variant(folder, c, s, mmap=True), labels, f"{folder}/{c}/{s}")

    return {c: {s: opener(c, s) for s in manifest["severities"]} for c in manifest["corruptions"]}
