"""The DALI backend (``build_loader("dali", ...)``, data: an ImageFolder directory), on the
GPU or the CPU.

:mod:`~pipelines.dali.loader` (``make_loader``: decode, keyed crops, sharding, IPMix on the
CPU or after the iterator on the GPU), :mod:`~pipelines.dali.feed` (the epoch as an input),
:mod:`~pipelines.dali.numba_plugin` (IPMix through DALI's Numba plugin, the CPU path). There
is no native DALI operator graph of IPMix (see :mod:`~pipelines.dali.loader`). Nothing is
imported here: importing DALI is the caller's choice.
"""
