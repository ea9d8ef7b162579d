"""Checks and notes before a training run starts (``train/imagenet.py``): nothing here
trains or writes, except :func:`clear_run_folder` (``--overwrite``).

* :func:`check_run_folder`: a new run refuses an ``--out`` that holds a run;
* :func:`count_classes`: the class lists of train and val data agree (ImageFolder: the
  class folders; .beton: the label range, the only class information a .beton holds);
* :func:`size_notes`: the crop sides the run really uses, beside the ones asked;
* :func:`fractal_note`: a fractal store smaller than the bank it must fill is upscaled;
* :func:`jit_note`: the first batch waits for Numba to compile the loader's kernels.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigError, TrainConfig

RUN_FILES = ("config.json", "checkpoint.pt", "log.jsonl")  # what makes a folder a run


# ---------------------------------------------------------------------- the run folder
def run_files(out: str | os.PathLike) -> list[str]:
    """The files of :data:`RUN_FILES` that exist in ``out``."""
    return [name for name in RUN_FILES if (Path(out) / name).exists()]


def check_run_folder(cfg: TrainConfig) -> list[str]:
    """The run files in ``cfg.out``; ConfigError (naming the folder and the two ways out)
    when there are some and the run neither resumes nor overwrites. Reads only."""
    found = run_files(cfg.out)
    if found and cfg.resume is None and not cfg.overwrite:
        raise ConfigError(
            f"--out {cfg.out} already holds a run ({', '.join(found)}); nothing was changed. "
            "Continue it with --resume, or replace it with --overwrite (deletes its "
            "checkpoint and log), or choose another --out"
        )
    return found


def _last_record(log: Path) -> dict[str, Any] | None:
    try:
        lines = log.read_text().splitlines()
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def clear_run_folder(out: str | os.PathLike) -> str | None:
    """Delete the run files in ``out``; returns what was replaced (None: nothing was)."""
    out = Path(out)
    found = run_files(out)
    if not found:
        return None
    last = _last_record(out / "log.jsonl")
    where = ""
    if last is not None:
        where = f"; its log ended with a {last.get('event')!r} record at step {last.get('step')}"
    for name in found:
        (out / name).unlink()
    return f"--overwrite: replaced the run in {out} (deleted {', '.join(found)}{where})"


# ---------------------------------------------------------------------- class lists
@dataclass(frozen=True)
class DataClasses:
    """What a dataset says about its classes: ``names`` (ImageFolder class folders, sorted;
    None for a .beton) and the label range ``[low, high]``."""

    path: str
    names: list[str] | None
    low: int
    high: int

    @property
    def count(self) -> int:
        return self.high + 1


def read_classes(path: str, pipeline: str) -> DataClasses:
    """Class folders of an ImageFolder, or the label range of a .beton (``pipeline="ffcv"``)."""
    if pipeline == "ffcv":
        from pipelines.datasets.beton import beton_labels

        try:
            labels = beton_labels(path)
        except ValueError as e:
            raise ConfigError(f"{e} (a .beton written by tools/write_beton.py)") from None
        if len(labels) == 0:
            raise ConfigError(f"{path}: the .beton holds no samples")
        return DataClasses(path, None, int(labels.min()), int(labels.max()))
    from torchvision.datasets.folder import find_classes

    try:
        names = find_classes(path)[0]
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: {e}") from None
    return DataClasses(path, list(names), 0, len(names) - 1)


def _listed(names: list[str], limit: int = 8) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return "[" + ", ".join(names[:limit]) + "]" + more


def check_classes(train: DataClasses | None, val: DataClasses | None) -> None:
    """ConfigError, naming both datasets and the difference, when val's classes are not
    train's: other class folders (ImageFolder labels are the indices of the sorted folder
    names, so any difference mislabels or crashes), or val labels outside train's range."""
    if train is None or val is None:
        return
    both = f"--train-data {train.path} and --val-data {val.path}"
    if train.names is not None and val.names is not None:
        if train.names != val.names:
            only_t = sorted(set(train.names) - set(val.names))
            only_v = sorted(set(val.names) - set(train.names))
            raise ConfigError(
                f"{both} have different class folders ({len(train.names)} vs "
                f"{len(val.names)}): only in train {_listed(only_t)}, only in val "
                f"{_listed(only_v)}. Labels are the indices of the sorted class folders, so "
                "both must hold the same ones"
            )
        return
    if val.low < 0 or val.high > train.high or train.low < 0:
        raise ConfigError(
            f"{both} do not share their labels: train labels {train.low}..{train.high}, val "
            f"labels {val.low}..{val.high}. Write both .beton files from ImageFolders with "
            "the same class folders (tools/write_beton.py labels the sorted folder names)"
        )


def count_classes(cfg: TrainConfig) -> int:
    """Number of classes of the model: ``num_classes``, else the training data's (1000 for
    --synthetic). Checks the val data against it first (:func:`check_classes`)."""
    train = None if cfg.synthetic else read_classes(cfg.train_data, cfg.pipeline)
    val = None if cfg.val_data is None else read_classes(cfg.val_data, cfg.pipeline)
    check_classes(train, val)
    classes = cfg.num_classes or (train.count if train else 1000)
    for flag, data in (("--train-data", train), ("--val-data", val)):
        if data is not None and data.count > classes:
            raise ConfigError(
                f"--num-classes {classes}: {flag} {data.path} has labels up to {data.high}"
            )
    return classes


# ---------------------------------------------------------------------- what the run uses
def size_notes(cfg: TrainConfig) -> tuple[list[str], dict[str, Any]]:
    """Messages about crop sides that differ from a plain reading of the options, and the
    record for config.json: the train size per first epoch, the val size."""
    sizes = cfg.train_sizes()
    notes = []
    if len(sizes) > 1:
        ends = [e - 1 for e in list(sizes)[1:]] + [cfg.epochs - 1]
        steps = ", ".join(
            f"{s} px (epoch {e})" if e == end else f"{s} px (epochs {e}-{end})"
            for (e, s), end in zip(sizes.items(), ends)
        )
        notes.append(f"progressive resizing: train crops {steps}")
    last = list(sizes.values())[-1]
    if cfg.val_data is not None and cfg.val_size != last:
        notes.append(
            f"val crops are {cfg.val_size} px (--val-image-size / val_image_size), train "
            f"crops end at {last} px (--image-size)"
        )
    record = {"train_image_sizes": {str(e): s for e, s in sizes.items()}}
    record["val_image_size"] = cfg.val_size if cfg.val_data is not None else None
    return notes, record


def fractal_note(cfg: TrainConfig, ipmix: Any) -> tuple[list[str], dict[str, Any] | None]:
    """Messages and the config.json record about the fractal bank: each train size ``S``
    loads the store at ``round(S * fractal_scale)`` px; a smaller store is upscaled."""
    if ipmix is None or cfg.fractals is None or cfg.synthetic:  # synthetic: no loader
        return [], None
    import fractal_store

    with fractal_store.open(cfg.fractals) as store:
        stored = int(store.size)
    banks = {s: ipmix.replace(image_size=s).fractal_size for s in cfg.train_sizes().values()}
    up = sorted({f for f in banks.values() if f > stored})
    notes = []
    if up:
        notes.append(
            f"--fractals {cfg.fractals} holds {stored} px fractals: upscaled (bilinear) to "
            f"{', '.join(map(str, up))} px for the train crops; build a store of "
            f"{max(up)} px or more (tools/build_fractals.py --size) to use them unscaled"
        )
    record = {
        "store_size": stored,
        "bank_size_by_train_size": {str(s): f for s, f in banks.items()},
        "upscaled": bool(up),
    }
    return notes, record


def _cached(dispatcher: Any) -> bool:
    """Whether Numba's disk cache holds a compiled version of ``dispatcher`` for its
    current source (the index file exists and is not stale)."""
    try:
        return bool(dispatcher._cache._cache_file._load_index())
    except Exception:  # noqa: BLE001 - no usable cache: it will compile
        return False


def jit_note(cfg: TrainConfig, ipmix_device: str) -> str | None:
    """The message to print before the first batch when it will wait for Numba to compile
    the loader's kernels (missing from the disk cache, ``NUMBA_CACHE_DIR``, or stale);
    None when they are cached. ``ipmix_device``: ``"cpu"`` or ``"cuda"`` (resolved)."""
    if cfg.synthetic:
        return None
    from pipelines.keyed import keyed_crop, keyed_flip

    kernels = [keyed_crop, keyed_flip]
    if cfg.ipmix_on:
        from ipmix_ops.sampling import _sample_batch_k

        kernels.append(_sample_batch_k)
        if ipmix_device == "cpu":
            from ipmix_ops.batch import _apply_k

            kernels.append(_apply_k)
        else:  # the Triton renderer's host-side layout
            from ipmix_ops.gpu.layout import _prepare_k

            kernels.append(_prepare_k)
    cold = [k.__name__ for k in kernels if not _cached(k)]
    if not cold:  # FFCV still compiles its own pipeline: ~3 s measured (16 px, no IPMix)
        return None
    where = os.environ.get("NUMBA_CACHE_DIR") or "__pycache__ next to the sources"
    return (
        f"Numba compiles {len(cold)} loader kernel(s) ({', '.join(cold)}) not in its cache "
        f"({where}): the first batch may take ~1-2 min; later runs load them from the cache"
    )
