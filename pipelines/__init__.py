"""Input pipelines that realise IPMix: ``ffcv`` (CPU, Numba), ``dali`` (GPU or CPU) and
``torch`` (the plain PyTorch DataLoader reference). Every backend yields the same batch
contract: ``(images, labels)``, or ``((clean, aug_a, aug_b), labels)`` in JSD mode.

Layout: :mod:`~pipelines.contract` (the batch contract and shared options; imports no
backend), :mod:`~pipelines.registry` (backends by name, :func:`build_loader`),
:mod:`~pipelines.keyed` (keyed crop and flip, shared by all backends), one subpackage per
backend (:mod:`pipelines.ffcv`, :mod:`pipelines.dali`, :mod:`pipelines.dataloader`), and
:mod:`pipelines.datasets` (writing and scanning data sets: ``.beton``, ImageFolder, demo data).
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_loader"]


def __getattr__(name: str) -> Any:
    # build_loader is imported on first use: ``import pipelines.datasets`` stays light
    if name == "build_loader":
        from .registry import build_loader

        return build_loader
    raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
