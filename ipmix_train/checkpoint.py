"""Atomic training checkpoints: model, optimiser, position in the schedule and RNG states.

A checkpoint is one ``torch.save`` file written to a temporary name in the same folder,
flushed to disk and renamed over the old one, so a crash or a kill never leaves a partial
file behind. It loads with ``weights_only=True`` (plain tensors and Python values only).
The loaders' augmentations are keyed by ``(seed, epoch, index)``, so the position
(``epoch``, ``step_in_epoch``) is all the data state there is, for the number of ranks
(``world_size``) that saved it: on another number each rank's shard of the epoch, its
BatchNorm batch statistics and the steps per epoch change, so :func:`check_world_size`
refuses that unless asked.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "ipmix-train-checkpoint-v1"
REQUIRED = ("format", "model", "optimizer", "epoch", "step_in_epoch", "step", "rng")


class CheckpointError(RuntimeError):
    """A checkpoint file that is missing, unreadable or not one of ours."""


def rng_state() -> dict[str, Any]:
    """The global RNG states (torch CPU and CUDA, NumPy, Python) as loadable values."""
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 - the legacy global RNG
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002 - the legacy global RNG
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` under a temporary name, then rename: a reader never sees a
    half-written file (results JSON, "done" markers, README updates)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (``REQUIRED`` keys but ``format``) atomically to ``path``."""
    path = Path(path)
    missing = [k for k in REQUIRED[1:] if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {missing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The state saved by :func:`save_checkpoint` (tensors on the CPU).

    Raises :class:`CheckpointError` naming the file when it is missing, truncated,
    corrupt or lacks the expected entries.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for damaged files
        raise CheckpointError(
            f"{path}: corrupt or not a training checkpoint ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a training checkpoint of format {FORMAT!r}")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    return state


def check_world_size(
    state: dict[str, Any], path: str | os.PathLike, world_size: int, *, allow: bool, warn: bool
) -> None:
    """CheckpointError when ``state`` was saved by another number of ranks than
    ``world_size``, unless ``allow`` (``--allow-world-size-change``: a warning instead, when
    ``warn``). A checkpoint that does not record it (older format) gets a warning."""
    saved = state.get("world_size")
    if saved is None:
        if warn:
            warnings.warn(
                f"{path}: does not record the number of ranks that saved it (an older "
                f"checkpoint); if it was not {world_size}, the resumed run is not exact",
                stacklevel=3,
            )
        return
    if saved == world_size:
        return
    why = (
        f"{path}: saved by a run on {saved} rank(s), this run has {world_size}: on another "
        "number of ranks each rank's shard of the epoch, its BatchNorm batch statistics and "
        "the steps per epoch change, so the run does not continue exactly"
    )
    if not allow:
        raise CheckpointError(
            f"{why}. Resume with {saved} rank(s) (torchrun --nproc_per_node {saved}), or "
            "pass --allow-world-size-change to continue anyway"
        )
    if warn:
        warnings.warn(f"{why} (--allow-world-size-change)", stacklevel=3)
