"""Input pipelines that realise IPMix: ``ffcv`` (CPU, Numba), ``dali`` (GPU or CPU) and
``torch`` (the plain PyTorch reference). Every backend yields the same batch contract:
``(images, labels)``, or ``((clean, aug_a, aug_b), labels)`` in JSD mode.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_loader"]


def __getattr__(name: str) -> Any:
    # build_loader is imported on first use: ``import pipelines.demo_data`` stays light
    if name == "build_loader":
        from .loader import build_loader

        return build_loader
    raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
