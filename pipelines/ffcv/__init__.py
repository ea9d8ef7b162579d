"""The FFCV backend (``build_loader("ffcv", ...)``, data: a ``.beton`` file): FFCV's reader
and JPEG decoder with IPMix as a Numba op inside FFCV's compiled pipeline.

:mod:`~pipelines.ffcv.loader` (``make_loader``, the op pipelines), :mod:`~pipelines.ffcv.ops`
(keyed crop decoder, keyed flip, the IPMix op), :mod:`~pipelines.ffcv._import` (import
``ffcv`` through it: keeps torch's thread count). Nothing is imported here: importing FFCV
is the caller's choice.
"""
