"""IPMix and keyed crops inside a DALI graph through DALI's Numba plugin (the CPU path).

Two CPU operators built on ``nvidia.dali.plugin.numba.NumbaFunction`` (per-sample mode, so
DALI runs the samples of a batch on its own thread pool):

* :func:`keyed_crop_params` -- per sample ``float32 [5] = (top, left, h, w, flip)`` from the
  encoded image's shape and the sample's dataset index, drawn by :mod:`pipelines.keyed`
  from ``(seed, epoch, index)``: the same crop boxes and flips as the FFCV and PyTorch
  backends.
* :func:`ipmix_views` -- per sample ``uint8 [V, S, S, 3]`` from an ``S x S`` crop and its
  dataset index: the records are drawn in the operator by ``ipmix_ops.sampling``'s
  ``sample_record_k`` keyed by ``(seed, epoch, index, view)`` and the pixels are made by the
  same compiled kernels as :func:`ipmix_ops.ipmix_apply` (``ipmix_ops.batch.render_view_k``), so
  the result is bit-identical to ``ipmix_apply`` on the same crops and records. JSD mode:
  view 0 is the clean crop, views 1 and 2 are IPMix (keys 1 and 2), as in ``ipmix_batch``.
  The mix is rounded half up to uint8 (normalisation happens later, on the device).

The Numba plugin only runs on the CPU (on a GPU pipeline IPMix runs after the iterator, in
the Triton renderer of :mod:`pipelines.device_ipmix`). The fractal bank and the mask table
are not copied into the compiled code: the operator captures their addresses (the caller
keeps the arrays alive) and views them with ``carray``; so are the config arrays (one
operator per config, bank and view count). ``(seed, epoch)`` comes in as a constant int64
input, so one compiled operator serves every epoch. The kernels sit behind a disk-cached
``cfunc`` called through a ctypes pointer, so a new process only compiles the plugin's thin
wrapper (~5 s); the cached entry is dropped when a file of ``ipmix_ops`` changes (Numba
itself would not notice).

The per-sample body is ``ipmix_ops.batch.render_view_k`` (the body of ``ipmix_apply``'s
loop); ``tests/test_pipelines_dali.py`` checks bit-identity with ``ipmix_apply``.
"""

from __future__ import annotations

import ctypes
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from numba import carray, cfunc, njit
from numba import types as nbt
from numba.core.caching import FunctionCache
from nvidia.dali import types
from nvidia.dali.pipeline import do_not_convert
from nvidia.dali.plugin.numba import NumbaFunction, address_as_void_pointer

from ipmix_ops import IPMixConfig
from ipmix_ops.batch import copy_image_k, render_view_k, view_scratch_k
from ipmix_ops.sampling import mask_table, record_length_k, sample_record_k

from ..keyed import RATIO, SCALE, check_crop_scale, keyed_crop, keyed_flip


# ------------------------------------------------------------------------- keyed crop
@njit(nogil=True)
def _crop_params_k(out, shape, index, key, cfg):
    """out = (top, left, h, w, flip) for an image of ``shape`` (H, W, C); ``key`` = (seed,
    epoch); ``cfg`` = (scale0, scale1, ratio0, ratio1, flip probability)."""
    seed, epoch, idx = key[0], key[1], np.int64(index[0])
    top, left, ch, cw = keyed_crop(shape[0], shape[1], cfg[0:2], cfg[2:4], seed, epoch, idx)
    out[0], out[1], out[2], out[3] = top, left, ch, cw
    out[4] = 1.0 if keyed_flip(seed, epoch, idx, cfg[4]) else 0.0


def _crop_setup(outs: Any, ins: Any) -> None:
    for i in range(len(outs[0])):
        outs[0][i][0] = 5


# one compiled operator per crop scale; the settings are frozen into its code
_CROP_OPS: dict[tuple[float, float], NumbaFunction] = {}


# not rewritten by DALI's AutoGraph (pipelines with enable_conditionals=True): Numba must
# compile the plain ``run`` function
@do_not_convert
def _crop_op(scale: tuple[float, float]) -> NumbaFunction:
    if scale not in _CROP_OPS:
        cfg = np.array([*scale, *RATIO, 0.5], np.float64)

        def run(out: np.ndarray, shape: np.ndarray, index: np.ndarray, key: np.ndarray) -> None:
            _crop_params_k(out, shape, index, key, cfg)

        _CROP_OPS[scale] = NumbaFunction(
            run_fn=run,
            setup_fn=_crop_setup,
            out_types=[types.FLOAT],
            in_types=[types.INT64, types.INT32, types.INT64],
            outs_ndim=[1],
            ins_ndim=[1, 1, 1],
            device="cpu",
        )
    return _CROP_OPS[scale]


def keyed_crop_params(shape: Any, index: Any, key: Any, scale: tuple[float, float] = SCALE) -> Any:
    """DALI node: per-sample float32 ``[5]`` (top, left, h, w, flip) of the keyed
    random-resized crop and flip (torchvision's rule, :mod:`pipelines.keyed`) with crop area
    range ``scale``.

    ``shape``: int64 ``[3]`` (``fn.peek_image_shape``), ``index``: int32 ``[1]`` dataset index,
    ``key``: int64 ``[2]`` node ``(seed, epoch)``.
    """
    return _crop_op(check_crop_scale(scale))(shape, index, key)


# ------------------------------------------------------------------------------- IPMix
@njit(nogil=True)
def ipmix_sample_k(out, img, index, seed, epoch, bank, table, icfg, fcfg, clean_first):
    """IPMix views of one crop: ``out`` uint8 [V, S, S, 3] from ``img`` uint8 [S, S, 3].

    View ``v >= clean_first`` is keyed by ``(seed, epoch, index, v)``; with ``clean_first``
    view 0 is ``img``. Pixels as :func:`ipmix_ops.ipmix_apply` (same kernels).
    """
    rec = np.empty(record_length_k(icfg[0], icfg[1]), np.float64)
    scratch = view_scratch_k(img.shape[0], table)
    dummy = np.empty((1, 1, 1), np.float32)
    if clean_first:
        copy_image_k(img, out[0])
    for v in range(clean_first, out.shape[0]):
        sample_record_k(rec, icfg, fcfg, seed, epoch, index, v, bank.shape[0], bank.shape[1])
        render_view_k(img, bank, rec, icfg, scratch, out[v], dummy, False)


def _ipmix_c(out_p, img_p, s, views, clean_first, index, seed, epoch, bank_p, n, f, table_p,
             table_len, icfg_p, icfg_len, fcfg_p):  # fmt: skip
    """C entry point of :func:`ipmix_sample_k` (every argument an int64; arrays by address)."""
    ipmix_sample_k(
        carray(address_as_void_pointer(out_p), (views, s, s, 3), dtype=np.uint8),
        carray(address_as_void_pointer(img_p), (s, s, 3), dtype=np.uint8),
        index,
        seed,
        epoch,
        carray(address_as_void_pointer(bank_p), (n, f, f, 3), dtype=np.uint8),
        carray(address_as_void_pointer(table_p), (table_len,), dtype=np.uint16),
        carray(address_as_void_pointer(icfg_p), (icfg_len,), dtype=np.int64),
        carray(address_as_void_pointer(fcfg_p), (2,), dtype=np.float64),
        clean_first,
    )


_N_C_ARGS = 16
_DEPENDENCIES = ("ipmix_ops", "pipelines/keyed.py")


def _drop_stale_cache(py_func: Any) -> None:
    """Numba's disk cache only checks the function's own file: drop the cached ``py_func``
    when a source file of the kernels it calls (``ipmix_ops``) changed since it was saved."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for dep in _DEPENDENCIES:
        for f in sorted((root / dep).rglob("*.py")) if (root / dep).is_dir() else [root / dep]:
            h.update(f.name.encode() + f.read_bytes())
    try:
        index = Path(FunctionCache(py_func)._cache_file._index_path)
    except Exception:  # no usable cache location: Numba will not cache either
        return
    marker = index.with_name(index.name + ".deps")
    if not marker.exists() or marker.read_text() != h.hexdigest():
        index.unlink(missing_ok=True)
        try:
            marker.write_text(h.hexdigest())
        except OSError:
            pass


_IPMIX_C: list[Any] = []


def _ipmix_c_pointer() -> Any:
    """A ctypes pointer to the compiled (disk-cached) :func:`_ipmix_c`.

    The plugin's wrapper calls it through this pointer: linking the kernels into the wrapper
    instead would make Numba re-optimise them on every process start (~30 s).
    """
    if not _IPMIX_C:
        _drop_stale_cache(_ipmix_c)
        c = cfunc(nbt.void(*[nbt.int64] * _N_C_ARGS), nopython=True, cache=True)(_ipmix_c)
        proto = ctypes.CFUNCTYPE(None, *[ctypes.c_int64] * _N_C_ARGS)
        _IPMIX_C.append((c, proto(c.address)))
    return _IPMIX_C[0][1]


@do_not_convert  # as _crop_op: the run function must stay plain Python for Numba
def _make_ipmix_run(
    bank: np.ndarray, table: np.ndarray, icfg: np.ndarray, fcfg: np.ndarray, clean_first: int
) -> Any:
    """The plugin's run function with the arrays' addresses baked in (the caller keeps
    ``bank``, ``table``, ``icfg`` and ``fcfg`` alive)."""
    call = _ipmix_c_pointer()
    n, f = int(bank.shape[0]), int(bank.shape[1])
    bank_p, table_p, table_len = int(bank.ctypes.data), int(table.ctypes.data), len(table)
    icfg_p, icfg_len, fcfg_p = int(icfg.ctypes.data), len(icfg), int(fcfg.ctypes.data)

    def run(out, img, index, key):  # pragma: no cover - compiled by Numba
        call(
            out.ctypes.data,
            img.ctypes.data,
            img.shape[0],
            out.shape[0],
            clean_first,
            index[0],
            key[0],
            key[1],
            bank_p,
            n,
            f,
            table_p,
            table_len,
            icfg_p,
            icfg_len,
            fcfg_p,
        )

    return run


_IPMIX_OPS: dict[tuple, tuple[NumbaFunction, tuple[np.ndarray, ...]]] = {}


def ipmix_views(
    images: Any,
    index: Any,
    key: Any,
    cfg: IPMixConfig,
    bank: np.ndarray,
    *,
    views: int | None = None,
) -> Any:
    """DALI node (CPU): uint8 ``[V, S, S, 3]`` IPMix views per sample (see module docstring).

    ``images``: uint8 ``[S, S, 3]`` CPU node (``S = cfg.image_size``); ``index``: int32 ``[1]``
    dataset indices; ``key``: int64 ``[2]`` node ``(seed, epoch)``; ``bank``: uint8
    C-contiguous ``[N, F, F, 3]``, kept alive by this module while the operator exists.
    ``views`` defaults to ``cfg.views`` (3 in JSD mode: clean + 2 IPMix views).
    """
    if bank.dtype != np.uint8 or bank.ndim != 4 or not bank.flags.c_contiguous:
        raise ValueError(f"bank must be C-contiguous uint8 [N, F, F, 3], got {bank.shape}")
    if bank.shape[1] < cfg.image_size:
        raise ValueError(f"fractal side {bank.shape[1]} < image size {cfg.image_size}")
    views = cfg.views if views is None else int(views)
    clean_first = int(cfg.jsd and views > 1)
    s = cfg.image_size
    icfg, fcfg = cfg.kernel_args()
    icfg, fcfg = np.ascontiguousarray(icfg, np.int64), np.ascontiguousarray(fcfg, np.float64)
    key_ = (int(bank.ctypes.data), bank.shape, icfg.tobytes(), fcfg.tobytes(), views)
    if key_ not in _IPMIX_OPS:

        def setup(outs, ins):  # pragma: no cover - compiled by Numba
            for i in range(len(outs[0])):
                o = outs[0][i]
                o[0], o[1], o[2], o[3] = views, s, s, 3

        op = NumbaFunction(
            run_fn=_make_ipmix_run(bank, mask_table(), icfg, fcfg, clean_first),
            setup_fn=setup,
            out_types=[types.UINT8],
            in_types=[types.UINT8, types.INT32, types.INT64],
            outs_ndim=[4],
            ins_ndim=[3, 1, 1],
            device="cpu",
        )
        # the arrays must outlive the compiled operator, which holds their addresses
        _IPMIX_OPS[key_] = (op, (bank, icfg, fcfg))
    return _IPMIX_OPS[key_][0](images, index, key)


__all__ = ["ipmix_sample_k", "ipmix_views", "keyed_crop_params"]
