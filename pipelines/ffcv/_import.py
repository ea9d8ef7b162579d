"""Import FFCV without its side effect on PyTorch's thread count.

``ffcv.pipeline.compiler`` calls ``torch.set_num_threads(1)`` when it is imported, and every
``ffcv.loader.Loader`` sets it to the loader's worker count (``Compiler.set_num_threads``):
a CPU training or evaluation in the same process then silently runs on one core. Import
this module before anything from ``ffcv`` (it is imported once per process), and build
Loaders inside :func:`keep_torch_threads`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def keep_torch_threads() -> Iterator[None]:
    """Restore ``torch.get_num_threads()`` on exit."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


with keep_torch_threads():
    import ffcv.pipeline.compiler  # noqa: F401
