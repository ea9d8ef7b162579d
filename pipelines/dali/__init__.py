"""The DALI backend (``build_loader("dali", ...)``, data: an ImageFolder directory), on the
GPU or the CPU.

:mod:`~pipelines.dali.loader` (``make_loader``: reader, decode, keyed crops, sharding),
:mod:`~pipelines.dali.numba_plugin` (IPMix through DALI's Numba plugin, the CPU default),
:mod:`~pipelines.dali.graph` and :mod:`~pipelines.dali.ops` (IPMix as a native DALI operator
graph, the GPU default). Nothing is imported here: importing DALI is the caller's choice.
"""
