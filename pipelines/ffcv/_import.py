"""Import FFCV without two side effects: on PyTorch's thread count, and on Numba's types.

Threads: ``ffcv.pipeline.compiler`` calls ``torch.set_num_threads(1)`` when it is imported,
and every ``ffcv.loader.Loader`` sets it to the loader's worker count
(``Compiler.set_num_threads``): a CPU training or evaluation in the same process then
silently runs on one core. Import this module before anything from ``ffcv`` (it is imported
once per process), and build Loaders inside :func:`keep_torch_threads`.

Numba types: FFCV 1.0's ``OSCacheManager.state_type`` (the page-cache reader, the default)
takes Numba's interned ``uint8[::1]`` type and sets ``mutable = False`` on it in place. Numba
interns types and hashes them by those fields, so from then on every dict holding that type
in a key (each dispatcher's overload table, the typing caches) holds a key whose hash has
changed: compiling or finalising a kernel that took ``uint8[::1]`` then fails with a
``KeyError`` in ``Dispatcher.nopython_signatures`` (seen on a cold Numba cache, after an FFCV
loader had been built in the same process). :func:`_fix_os_cache_types` replaces the two
methods with ones that build Numba's readonly array type instead of mutating the shared one;
the compiled reader has the same signature as before (readonly bytes in and out).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba as nb
import numpy as np
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


def _fix_os_cache_types() -> None:
    from ffcv.memory_managers.os_cache import OSCacheManager
    from ffcv.pipeline.compiler import Compiler

    readonly_bytes = nb.types.Array(nb.uint8, 1, "C", readonly=True)
    offsets = nb.types.Array(nb.uint64, 1, "C")

    def state_type(self) -> nb.types.Tuple:
        """(file bytes, sample offsets, sample sizes), as FFCV's context holds them."""
        return nb.types.Tuple([readonly_bytes, offsets, offsets])

    def compile_reader(self):
        def read(address, mem_state):  # the stored bytes of the sample at ``address``
            data, ptrs, sizes = mem_state
            n = sizes[np.searchsorted(ptrs, address)]
            return data[address : address + n]

        return Compiler.compile(read, readonly_bytes(nb.uint64, self.state_type))

    OSCacheManager.state_type = property(state_type)
    OSCacheManager.compile_reader = compile_reader


with keep_torch_threads():
    _fix_os_cache_types()
