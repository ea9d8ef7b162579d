"""Records (float64, :mod:`ipmix_ops.sampling` layout) -> the per-step tables the kernels read.

This is the only module of :mod:`ipmix_ops.gpu` that knows the record layout (the ``R_*``,
``C_*``, ``S_*`` offsets); the kernels only see the tables below, so a new record layout is
one edit here. :func:`prepare` runs on the host (Numba, microseconds per view):

``itab`` int32 ``[BV, k, t, NI]`` (``BV = B * views``), one row per chain step, columns ``I_*``:
    chain kind and *effective* depth (image chains: identity ops dropped, as the CPU skips
    them), the image op (image chain) or the patch source op (-1: the fractal or the clean
    image), its integer parameter (posterize mask, solarize threshold, autocontrast cut),
    the mix op, the box, the mask threshold and table offset, the add/multiply LUT slot, the
    fractal crop, the bounding box of the chain's boxes and the chain weight in Q15.
``ftab`` float32 ``[BV, k, t, NFL]``: the enhance factor and the add constant.
``dtab`` float64 ``[BV, k, t, 6]``: the affine matrix of rotate / shear / translate (Pillow's).
``luts`` float32 ``[slots, 2, 256]``: the add / multiply lookup tables (built by the CPU's own
    :func:`ipmix_ops.mixing.mix_patch_k`, so they are the same floats).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._ops_geometric import rotate_matrix
from ..mixing import mix_patch_k
from ..optable import (
    AUTOCONTRAST,
    CONTRAST,
    EQUALIZE,
    MIX_ADD,
    MIX_MULTIPLY,
    POSTERIZE,
    ROTATE,
    SHEAR_X,
    SHEAR_Y,
    SOLARIZE,
    TRANSLATE_X,
    TRANSLATE_Y,
    is_identity,
)
from ..sampling import CHAIN, KIND_PATCH, MASK_TABLE_BITS, REC, STEP, chain_offset_k, step_start_k

# The record fields this module reads, by name (the layout lives in ipmix_ops.sampling)
R_M, R_FIDX, R_FY, R_FX, R_W0 = REC.m, REC.fidx, REC.fy, REC.fx, REC.w0
C_KIND, C_DEPTH = CHAIN.kind, CHAIN.depth
S_OP, S_PARAM, S_SRC_FRACTAL, S_SRC_OP, S_SRC_PARAM = (
    STEP.op,
    STEP.param,
    STEP.src_fractal,
    STEP.src_op,
    STEP.src_param,
)
S_LEFT, S_TOP, S_W, S_H, S_A, S_B, S_P, S_SEED = (
    STEP.left,
    STEP.top,
    STEP.w,
    STEP.h,
    STEP.a,
    STEP.b,
    STEP.p,
    STEP.seed,
)

(
    I_KIND,
    I_DEPTH,
    I_OP,
    I_PI,
    I_MIX,
    I_SRCF,
    I_TOP,
    I_LEFT,
    I_H,
    I_W,
    I_THR,
    I_MSEED,
    I_SLOT,
    I_FIDX,
    I_FY,
    I_FX,
    I_UY0,
    I_UX0,
    I_UY1,
    I_UX1,
    I_WQ,
) = range(21)
NI = 21
F_ALPHA, F_C = 0, 1
NFL = 2
TABLE_MASK = (1 << MASK_TABLE_BITS) - 1
#: the ops whose result needs whole-image statistics (a LUT from the stats kernel)
STATS_OPS = (EQUALIZE, AUTOCONTRAST, CONTRAST)


@njit(cache=True, nogil=True)
def _op_fields(op, param, size, irow, frow, drow):
    """An image op's parameter as the kernels take it (integers exact, Pillow's matrices)."""
    irow[I_OP] = op
    frow[F_ALPHA] = np.float32(param)
    if op == POSTERIZE:
        bits = min(max(int(param), 0), 8)
        irow[I_PI] = (0xFF << (8 - bits)) & 0xFF
    elif op == SOLARIZE:
        irow[I_PI] = 256 if param > 255.0 else max(int(np.ceil(param)), 0)
    elif op == AUTOCONTRAST:
        irow[I_PI] = int((size * size * param) // 100.0) if param != 0.0 else 0
    m = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    if op == ROTATE:
        m = rotate_matrix(param % 360.0, size, size)
    elif op == SHEAR_X:
        m = (1.0, param, 0.0, 0.0, 1.0, 0.0)
    elif op == SHEAR_Y:
        m = (1.0, 0.0, 0.0, param, 1.0, 0.0)
    elif op == TRANSLATE_X:
        m = (1.0, 0.0, param, 0.0, 1.0, 0.0)
    elif op == TRANSLATE_Y:
        m = (1.0, 0.0, 0.0, 0.0, 1.0, param)
    for j in range(6):
        drow[j] = m[j]


@njit(cache=True, nogil=True)
def _first_slots(recs, k, t):
    """Per view, the first LUT slot: an exclusive prefix sum of its add / multiply steps
    (int64 [BV + 1], the last entry the total)."""
    out = np.zeros(recs.shape[0] + 1, np.int64)
    for j in range(recs.shape[0]):
        n = 0
        for c in range(k):
            base = chain_offset_k(k, t, c)
            if int(recs[j, base + C_KIND]) == KIND_PATCH:
                for d in range(int(recs[j, base + C_DEPTH])):
                    mop = int(recs[j, step_start_k(base, d) + S_OP])
                    n += mop == MIX_ADD or mop == MIX_MULTIPLY
        out[j + 1] = out[j] + n
    return out


@njit(cache=True, nogil=True, parallel=True)
def _prepare_k(recs, k, t, size, wrap, itab, ftab, dtab, luts, table, slots):
    """Fill the tables from ``recs`` float64 [BV, L], views in parallel (multiply LUTs call
    ``pow`` 512 times: ~10 us a step on one core)."""
    for j in prange(recs.shape[0]):
        dummy = np.zeros((1, 1, 3), np.uint8)
        pair = np.empty(1, np.uint8)
        nslot = slots[j]
        rec = recs[j]
        m = rec[R_M]
        for c in range(k):
            base = chain_offset_k(k, t, c)
            depth = int(rec[base + C_DEPTH])
            kind = int(rec[base + C_KIND])
            v = int(m * rec[R_W0 + c] * 32768.0 + 0.5)  # batch._weight_q15
            wq = v - (v >> 15)
            row = itab[j, c]
            row[:, :] = 0
            row[:, I_OP] = -1
            uy0, ux0, uy1, ux1 = size, size, 0, 0
            eff = 0
            for d in range(depth):
                s0 = step_start_k(base, d)
                if kind != KIND_PATCH:
                    op, param = int(rec[s0 + S_OP]), rec[s0 + S_PARAM]
                    if is_identity(op, param):
                        continue
                    _op_fields(op, param, size, row[eff], ftab[j, c, eff], dtab[j, c, eff])
                    eff += 1
                    continue
                r = row[d]
                top, left = int(rec[s0 + S_TOP]), int(rec[s0 + S_LEFT])
                h, w = int(rec[s0 + S_H]), int(rec[s0 + S_W])
                r[I_TOP], r[I_LEFT], r[I_H], r[I_W] = top, left, h, w
                uy0, ux0 = min(uy0, top), min(ux0, left)
                uy1, ux1 = max(uy1, top + h), max(ux1, left + w)
                mop = int(rec[s0 + S_OP])
                r[I_MIX] = mop
                r[I_FIDX], r[I_FY], r[I_FX] = int(rec[R_FIDX]), int(rec[R_FY]), int(rec[R_FX])
                if rec[s0 + S_SRC_FRACTAL] != 0.0:
                    r[I_SRCF] = 1
                else:
                    op, param = int(rec[s0 + S_SRC_OP]), rec[s0 + S_SRC_PARAM]
                    if not is_identity(op, param):
                        _op_fields(op, param, size, r, ftab[j, c, d], dtab[j, c, d])
                a, b, p = rec[s0 + S_A], rec[s0 + S_B], rec[s0 + S_P]
                if mop == MIX_ADD or mop == MIX_MULTIPLY:
                    af, bf = np.float32(a), np.float32(b)
                    ftab[j, c, d, F_C] = (np.float32(1) - af - bf) / np.float32(2)
                    # a zero-row box: mix_patch_k only fills its two lookup tables
                    mix_patch_k(
                        dummy,
                        0,
                        0,
                        0,
                        1,
                        dummy,
                        0,
                        0,
                        mop,
                        a,
                        b,
                        p,
                        0,
                        wrap,
                        luts[nslot, 0],
                        luts[nslot, 1],
                        pair,
                        table,
                    )
                    r[I_SLOT] = nslot
                    nslot += 1
                else:
                    r[I_THR] = int(np.ceil(p * 65536.0))
                    r[I_MSEED] = np.int64(rec[s0 + S_SEED]) & TABLE_MASK
            if kind != KIND_PATCH:
                depth = eff
                uy0, ux0, uy1, ux1 = 0, 0, size, size
            for d in range(t):
                row[d, I_KIND], row[d, I_DEPTH], row[d, I_WQ] = kind, depth, wq
                row[d, I_UY0], row[d, I_UX0] = uy0, ux0
                row[d, I_UY1], row[d, I_UX1] = uy1, ux1


def prepare(
    records: np.ndarray, k: int, t: int, size: int, wrap: bool, table: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(itab, ftab, dtab, luts)`` for float64 ``records`` [B, V, L] (see the module doc)."""
    recs = np.ascontiguousarray(records, np.float64).reshape(-1, records.shape[-1])
    bv = recs.shape[0]
    itab = np.zeros((bv, k, t, NI), np.int32)
    ftab = np.zeros((bv, k, t, NFL), np.float32)
    dtab = np.zeros((bv, k, t, 6), np.float64)
    slots = _first_slots(recs, k, t)
    luts = np.empty((max(int(slots[-1]), 1), 2, 256), np.float32)
    _prepare_k(recs, k, t, size, wrap, itab, ftab, dtab, luts, table, slots)
    return itab, ftab, dtab, luts


def needs_stats(itab: np.ndarray, c: int, d: int) -> bool:
    """Whether step ``d`` of chain ``c`` has an active equalize / autocontrast / contrast."""
    rows = itab[:, c, d]
    active = rows[:, I_DEPTH] > d
    return bool((active & np.isin(rows[:, I_OP], STATS_OPS)).any())


def active(itab: np.ndarray, c: int, d: int) -> bool:
    """Whether any view runs step ``d`` of chain ``c``."""
    return bool((itab[:, c, 0, I_DEPTH] > d).any())


__all__ = ["NI", "NFL", "prepare", "needs_stats", "active"]
