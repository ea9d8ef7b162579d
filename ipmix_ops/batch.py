"""The fast path: IPMix of a whole batch in one Numba call, parallel over samples.

``ipmix_batch`` = ``sample_records`` (per-sample choices keyed by seed/epoch/index/view) +
``ipmix_apply`` (pixels from records). Both are compiled, ``prange`` over batch × views, with
no Python per sample; per-thread scratch buffers are cached, so a call with ``out=`` given
allocates nothing but the small record array.

Pixel arithmetic (docs/architecture.md, fast path): the mix is accumulated as
``x + m·Σ wᵢ(cᵢ − x)`` so chains of depth 0 cost nothing and patch chains only touch the
union of their boxes; identity ops are skipped; an image op used as a patch source is computed
only inside its box.

The accumulator is int16 fixed point in 1/64 grey level (:data:`ACC_SHIFT`): each chain adds
``floor(64·wᵢ·(cᵢ − x))`` with the weight in Q15, which LLVM turns into one ``pmulhw`` per 16
values (about 2x faster than a float32 accumulator, and the final write 2.5x). Each term is
rounded down by less than 1/64 level and the Q15 weight adds at most 255/65536 level either
way, so before the final rounding the mix lies within [−3/64 − 0.012, +0.012] levels of the
exact one (k = 3). On photos about 0.4% of the uint8 pixels come out 1 level below the
rounded float64 mix, a mean bias of −0.004 level (``tests/test_ipmix_batch.py`` checks the
bound, and ≤ 1 level against the reference). The records must describe a convex mix
(``0 ≤ m ≤ 1``, ``wᵢ ≥ 0``, ``Σ wᵢ ≤ 1``), which keeps ``|acc| ≤ 64·255`` far inside int16;
``ipmix_apply`` checks it.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .config import IPMixConfig
from .mixing import PAIR_TABLE_SIZE, mix_patch_k
from .ops import apply_op_k
from .optable import is_identity
from .sampling import (
    C_DEPTH,
    C_KIND,
    C_STEPS,
    ICFG_K,
    ICFG_T,
    ICFG_WRAP,
    KIND_PATCH,
    NF,
    R_FIDX,
    R_FX,
    R_FY,
    R_M,
    R_W0,
    S_A,
    S_B,
    S_H,
    S_LEFT,
    S_OP,
    S_P,
    S_PARAM,
    S_SEED,
    S_SRC_FRACTAL,
    S_SRC_OP,
    S_SRC_PARAM,
    S_TOP,
    S_W,
    mask_table,
    record_length,
    sample_records,
)

#: The accumulator holds the mix minus x in units of 2**-ACC_SHIFT grey levels (int16).
ACC_SHIFT = 6


@njit(inline="always")
def _weight_q15(w):
    """A weight in [0, 1] as int16 Q15, 1.0 saturating to 32767. No min/max clamp: LLVM
    would learn the value's range from it and miss the ``pmulhw`` pattern of
    :func:`_acc_term` (4x slower); ``ipmix_apply`` checks that weights lie in [0, 1]."""
    v = int(w * 32768.0 + 0.5)
    return np.int16(v - (v >> 15))


@njit(inline="always")
def _acc_term(p, q, wq):
    """``floor(64·w·(p − q))`` for bytes p, q and the Q15 weight ``wq``: ``(p − q) << 7`` fits
    int16 and the product's high half is the term, which LLVM emits as ``pmulhw``."""
    d7 = np.int16(np.int16(np.int16(p) - np.int16(q)) << 7)
    return np.int16((np.int32(d7) * np.int32(wq)) >> 16)


@njit(nogil=True)
def _accumulate_boxes(acc, img, x, w, rects, first, n, iv):
    """acc += w * (img - x) over the union of rectangles ``rects[first:first+n]``, each pixel
    once (rows: the covering x-intervals are sorted and merged; ``iv`` int64 [2n] scratch)."""
    wq = _weight_q15(w)
    y0, y1 = 1 << 30, 0
    for r in range(first, first + n):
        y0, y1 = min(y0, rects[4 * r]), max(y1, rects[4 * r + 2])
    for y in range(y0, y1):
        m = 0
        for r in range(first, first + n):
            if rects[4 * r] <= y < rects[4 * r + 2]:
                lo, hi = rects[4 * r + 1], rects[4 * r + 3]
                j = m  # insertion sort by start
                while j > 0 and iv[2 * (j - 1)] > lo:
                    iv[2 * j], iv[2 * j + 1] = iv[2 * (j - 1)], iv[2 * (j - 1) + 1]
                    j -= 1
                iv[2 * j], iv[2 * j + 1] = lo, hi
                m += 1
        done = 0  # pixels [0, done) of this row are accumulated
        for j in range(m):
            lo, hi = 3 * max(iv[2 * j], done), 3 * iv[2 * j + 1]
            if hi > lo:
                a = acc[y].reshape(-1)[lo:hi]
                p, q = img[y].reshape(-1)[lo:hi], x[y].reshape(-1)[lo:hi]
                for i in range(hi - lo):
                    a[i] = np.int16(a[i] + _acc_term(p[i], q[i], wq))
            done = max(done, iv[2 * j + 1])


@njit(nogil=True)
def _accumulate_full(acc, img, x, w):
    """acc += w * (img - x) over the whole image (flat, vectorisable)."""
    wq = _weight_q15(w)
    a, p, q = acc.reshape(-1), img.reshape(-1), x.reshape(-1)
    for i in range(a.size):
        a[i] = np.int16(a[i] + _acc_term(p[i], q[i], wq))


@njit(nogil=True)
def _image_chain(x, rec, base, depth, buf_a, buf_b):
    """Run an image-op chain on ``x``: (result, number of ops applied; 0 -> result is x)."""
    cur = x
    applied = 0
    for d in range(depth):
        s0 = base + C_STEPS + d * NF
        op, param = int(rec[s0 + S_OP]), rec[s0 + S_PARAM]
        if is_identity(op, param):
            continue
        nxt = buf_a if applied % 2 == 0 else buf_b
        apply_op_k(op, cur, nxt, param, 0, 0, x.shape[0], x.shape[1])
        cur = nxt
        applied += 1
    return cur, applied


@njit(nogil=True)
def _patch_chain(
    x, fractal, fy, fx, rec, base, depth, xc, srcbuf, lut1, lut2, pair, wrap, rects, first, table
):
    """Run a patch chain. ``xc`` equals the chain's result inside its step boxes, which are
    written to ``rects[4*first:]`` as (y0, x0, y1, x1); outside them the chain equals x.
    ``pair``: uint8 scratch of ``mix_patch_k`` (``PAIR_TABLE_SIZE`` bytes, or fewer when S
    is too small for a box to reach ``PAIR_TABLE_MIN``)."""
    for d in range(depth):
        s0 = base + C_STEPS + d * NF
        top, left = int(rec[s0 + S_TOP]), int(rec[s0 + S_LEFT])
        r = 4 * (first + d)
        rects[r], rects[r + 1] = top, left
        rects[r + 2], rects[r + 3] = top + int(rec[s0 + S_H]), left + int(rec[s0 + S_W])
        lo, hi = 3 * left, 3 * rects[r + 3]
        for y in range(top, rects[r + 2]):
            dst, srow = xc[y].reshape(-1)[lo:hi], x[y].reshape(-1)[lo:hi]
            for i in range(hi - lo):
                dst[i] = srow[i]
    for d in range(depth):
        s0 = base + C_STEPS + d * NF
        top, left = int(rec[s0 + S_TOP]), int(rec[s0 + S_LEFT])
        h, w = int(rec[s0 + S_H]), int(rec[s0 + S_W])
        if rec[s0 + S_SRC_FRACTAL] != 0.0:
            src, sy, sx = fractal, fy + top, fx + left
        else:
            op, param = int(rec[s0 + S_SRC_OP]), rec[s0 + S_SRC_PARAM]
            if is_identity(op, param):
                src = x
            else:
                apply_op_k(op, x, srcbuf, param, top, left, h, w)
                src = srcbuf
            sy, sx = top, left
        mix_patch_k(
            xc,
            top,
            left,
            h,
            w,
            src,
            sy,
            sx,
            int(rec[s0 + S_OP]),
            rec[s0 + S_A],
            rec[s0 + S_B],
            rec[s0 + S_P],
            np.int64(rec[s0 + S_SEED]),
            wrap,
            lut1,
            lut2,
            pair,
            table,
        )


@njit(nogil=True)
def _one_view(x, bank, rec, icfg, acc, bufs, luts, box, ivs, table):
    """Add m·Σ wᵢ(cᵢ − x) of one IPMix view into ``acc`` (int16 fixed point, all zeros on
    entry; see the module docstring).

    Returns the number of touched rectangles, recorded in ``box`` as (y0, x0, y1, x1) each,
    or -1 when the whole image is touched; 0: the view equals x.
    """
    k, t, wrap = icfg[ICFG_K], icfg[ICFG_T], icfg[ICFG_WRAP] != 0
    fractal = bank[int(rec[R_FIDX])]
    fy, fx = int(rec[R_FY]), int(rec[R_FX])
    m = rec[R_M]
    nrect = 0
    for c in range(k):
        base = R_W0 + k + c * (C_STEPS + t * NF)
        depth = int(rec[base + C_DEPTH])
        if depth == 0:
            continue
        w = m * rec[R_W0 + c]
        if int(rec[base + C_KIND]) == KIND_PATCH:
            xc, srcbuf, lut1, lut2 = bufs[0], bufs[2], luts[0], luts[1]
            pair = bufs[1].reshape(-1)[:PAIR_TABLE_SIZE]  # free while a patch chain runs
            first = nrect if nrect >= 0 else 0
            _patch_chain(
                x,
                fractal,
                fy,
                fx,
                rec,
                base,
                depth,
                xc,
                srcbuf,
                lut1,
                lut2,
                pair,
                wrap,
                box,
                first,
                table,
            )
            _accumulate_boxes(acc, xc, x, w, box, first, depth, ivs)
            if nrect >= 0:
                nrect += depth
        else:
            res, applied = _image_chain(x, rec, base, depth, bufs[0], bufs[1])
            if applied > 0:
                _accumulate_full(acc, res, x, w)
                nrect = -1
    return nrect


@njit(inline="always")
def _mix_u8(xv, av):
    """``x + acc`` rounded half up and clamped to uint8, in int16 (vectorises to packs)."""
    r = np.int16((np.int16(av >> (ACC_SHIFT - 1)) + np.int16(1)) >> 1)
    v = np.int16(np.int16(xv) + r)
    return np.uint8(min(max(v, np.int16(0)), np.int16(255)))


@njit(nogil=True)
def _write_rect(x, acc, y0, x0, y1, x1, out_u8, out_f32, as_float, reset):
    """out[rect] = x + acc (rounded half up to uint8, or float32); with ``reset`` the
    rectangle of ``acc`` is zeroed in the same pass (only where rectangles cannot overlap).

    Runs are sliced first so the inner loops index from 0: Numba then drops its
    negative-index checks and the loops vectorise (about 3x faster). A full-width rectangle
    is one contiguous run (per-row loops cost 1.7x more for the whole image)."""
    sw = x.shape[1]
    if x0 == 0 and x1 == sw:  # rows [y0, y1) are contiguous: one run
        _write_run(x, acc, y0 * 3 * sw, y1 * 3 * sw, 0, out_u8, out_f32, as_float, reset)
    else:
        for y in range(y0, y1):
            _write_run(x, acc, 3 * x0, 3 * x1, y, out_u8, out_f32, as_float, reset)


@njit(inline="always")
def _write_run(x, acc, lo, hi, y, out_u8, out_f32, as_float, reset):
    """The flat elements [lo, hi) of row ``y`` (of the whole image when lo/hi span rows)."""
    xs = x[y:].reshape(-1)[lo:hi]
    a = acc[y:].reshape(-1)[lo:hi]
    if as_float:
        o = out_f32[y:].reshape(-1)[lo:hi]
        unit = np.float32(1.0 / (1 << ACC_SHIFT))
        for i in range(hi - lo):
            o[i] = np.float32(xs[i]) + np.float32(a[i]) * unit
        if reset:
            for i in range(hi - lo):
                a[i] = 0
    else:
        o8 = out_u8[y:].reshape(-1)[lo:hi]
        if reset:
            for i in range(hi - lo):
                o8[i] = _mix_u8(xs[i], a[i])
                a[i] = 0
        else:
            for i in range(hi - lo):
                o8[i] = _mix_u8(xs[i], a[i])


@njit(nogil=True)
def _write_out(x, acc, box, nrect, out_u8, out_f32, as_float):
    """out = x + acc, and acc reset to zero. Outside the touched rectangles (see
    ``_one_view``) the output is a plain copy of x, so small patches cost little."""
    s, sw = x.shape[0], x.shape[1]
    area = 0  # acc is zero outside the rectangles: the full pass is right for any nrect,
    for r in range(max(nrect, 0)):  # and cheaper once they cover about 3/4 of the image
        area += (box[4 * r + 2] - box[4 * r]) * (box[4 * r + 3] - box[4 * r + 1])
    if nrect < 0 or 4 * area >= 3 * s * sw:  # acc zeroed in the same pass (-20% vs a second)
        _write_rect(x, acc, 0, 0, s, sw, out_u8, out_f32, as_float, True)
        return
    xs = x.reshape(-1)
    if as_float:
        o = out_f32.reshape(-1)
        for i in range(xs.size):
            o[i] = np.float32(xs[i])
    else:
        o8 = out_u8.reshape(-1)
        for i in range(xs.size):  # explicit loops: Numba's o[:] = xs is ~5x slower
            o8[i] = xs[i]
    # rectangles may overlap: write all of them, then reset all of them
    for r in range(nrect):
        _write_rect(
            x,
            acc,
            box[4 * r],
            box[4 * r + 1],
            box[4 * r + 2],
            box[4 * r + 3],
            out_u8,
            out_f32,
            as_float,
            False,
        )
    for r in range(nrect):
        lo, hi = 3 * box[4 * r + 1], 3 * box[4 * r + 3]
        for y in range(box[4 * r], box[4 * r + 2]):
            a = acc[y].reshape(-1)[lo:hi]
            for i in range(hi - lo):
                a[i] = 0


@njit(parallel=True, cache=True, nogil=True)
def _apply_k(
    images,
    bank,
    recs,
    icfg,
    clean_first,
    out_u8,
    out_f32,
    as_float,
    view_major,
    scr_u8,
    scr_acc,
    scr_lut,
    scr_box,
    mask_table,
):
    """Views of ``images`` [B, S, S, 3] into ``out_u8`` or ``out_f32`` (``as_float``), laid
    out [B, V, S, S, 3], or [V, B, S, S, 3] with ``view_major``: each view is then one
    contiguous NHWC batch, i.e. a channels-last NCHW tensor without a copy."""
    n, v_ipmix = recs.shape[0], recs.shape[1]
    nv = v_ipmix + clean_first
    for j in prange(n * nv):
        b, v = j // nv, j % nv
        tid = numba.get_thread_id()
        acc = scr_acc[tid]
        nrect = 0
        if v >= clean_first:
            nrect = _one_view(
                images[b],
                bank,
                recs[b, v - clean_first],
                icfg,
                acc,
                scr_u8[tid],
                scr_lut[tid],
                scr_box[tid, :1024],
                scr_box[tid, 1024:],
                mask_table,
            )
        if as_float:
            o32 = out_f32[v, b] if view_major else out_f32[b, v]
            _write_out(images[b], acc, scr_box[tid], nrect, out_u8[0, 0], o32, True)
        else:
            o8 = out_u8[v, b] if view_major else out_u8[b, v]
            _write_out(images[b], acc, scr_box[tid], nrect, o8, out_f32[0, 0], False)


_SCRATCH: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}


def _scratch(size: int) -> tuple[np.ndarray, ...]:
    """The trailing arguments of ``_apply_k``: per-thread buffers for side ``size`` and the
    shared mask table (allocated once per process and size)."""
    n = numba.config.NUMBA_NUM_THREADS
    key = (size, n)
    if key not in _SCRATCH:
        _SCRATCH[key] = (
            np.empty((n, 3, size, size, 3), np.uint8),
            np.zeros((n, size, size, 3), np.int16),  # accumulator: all zero between views
            np.empty((n, 2, 256), np.float32),
            np.empty((n, 4 * 16 * 16 + 2 * 16), np.int64),  # k*t rectangles + intervals
            mask_table(),
        )
    return _SCRATCH[key]


def _check_images(images: np.ndarray, bank: np.ndarray, cfg: IPMixConfig) -> None:
    s = cfg.image_size
    for name, arr in (("images", images), ("bank", bank)):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"ipmix: {name} must be a NumPy array, got {type(arr).__name__}")
        if arr.dtype != np.uint8:
            raise ValueError(f"ipmix: {name} must be uint8, got {arr.dtype}")
        if arr.ndim != 4 or arr.shape[3] != 3:
            raise ValueError(f"ipmix: {name} must be [N, H, W, 3] (NHWC RGB), got {arr.shape}")
        if not arr.flags.c_contiguous:
            raise ValueError(f"ipmix: {name} must be C-contiguous (use np.ascontiguousarray)")
    if images.shape[1:3] != (s, s):
        raise ValueError(
            f"ipmix: images are {images.shape[1]}x{images.shape[2]}, the config "
            f"expects {s}x{s} (IPMixConfig.image_size)"
        )
    if bank.shape[0] == 0:
        raise ValueError("ipmix: the fractal bank is empty")
    if bank.shape[1] != bank.shape[2] or bank.shape[1] < s:
        raise ValueError(
            f"ipmix: fractal bank must be square with side >= {s}, "
            f"got {bank.shape[1]}x{bank.shape[2]}"
        )


def _check_mix_weights(records: np.ndarray, k: int) -> None:
    """The fixed-point accumulator needs a convex mix: 0 <= m <= 1, w >= 0, sum(w) <= 1."""
    m, w = records[..., R_M], records[..., R_W0 : R_W0 + k]
    bad = (m < 0) | (m > 1) | (w < 0).any(-1) | (w.sum(-1) > 1 + 1e-6)
    if bad.any():
        b, v = np.argwhere(bad)[0]
        raise ValueError(
            f"ipmix: record [{b}, {v}] is not a convex mix (needs 0 <= m <= 1, weights >= 0 "
            f"summing to <= 1): m = {m[b, v]:g}, weights = {w[b, v].tolist()}"
        )


def ipmix_apply(
    images: np.ndarray,
    bank: np.ndarray,
    records: np.ndarray,
    cfg: IPMixConfig,
    *,
    clean_first: bool | None = None,
    out: np.ndarray | None = None,
    dtype: type = np.uint8,
) -> np.ndarray:
    """IPMix pixels for fixed choices ``records`` (float64 [B, V, L] from ``sample_records``).

    Returns ``[B, V (+1 if clean_first), S, S, 3]``: uint8 (the mix rounded half up) or
    float32 in [0, 255]. ``clean_first`` (default: ``cfg.jsd``) puts the clean image first.
    """
    _check_images(images, bank, cfg)
    if clean_first is None:
        clean_first = cfg.jsd
    records = np.ascontiguousarray(records, dtype=np.float64)
    b, s = images.shape[0], cfg.image_size
    if (
        records.ndim != 3
        or records.shape[0] != b
        or records.shape[2] != record_length(cfg.k, cfg.t)
    ):
        raise ValueError(
            f"ipmix: records must be [B={b}, V, {record_length(cfg.k, cfg.t)}], got {records.shape}"
        )
    _check_mix_weights(records, cfg.k)
    shape = (b, records.shape[1] + int(clean_first), s, s, 3)
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.float32):
        raise ValueError(f"ipmix: output dtype must be uint8 or float32, got {dtype}")
    if out is None:
        out = np.empty(shape, dtype)
    elif out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"ipmix: out must be C-contiguous {dtype} {shape}, got {out.dtype} {out.shape}"
        )
    dummy_u8 = np.empty((1, 1, 1, 1, 1), np.uint8)
    dummy_f32 = np.empty((1, 1, 1, 1, 1), np.float32)
    as_float = dtype == np.float32
    icfg, _ = cfg.kernel_args()
    _apply_k(
        images,
        bank,
        records,
        icfg,
        int(clean_first),
        dummy_u8 if as_float else out,
        out if as_float else dummy_f32,
        as_float,
        False,
        *_scratch(s),
    )
    return out


def ipmix_batch(
    images: np.ndarray,
    bank: np.ndarray,
    cfg: IPMixConfig,
    *,
    seed: int,
    epoch: int,
    indices: np.ndarray,
    views: int | None = None,
    out: np.ndarray | None = None,
    dtype: type = np.uint8,
) -> np.ndarray:
    """IPMix a batch: uint8 ``images`` [B,S,S,3], fractal ``bank`` uint8 [N,F,F,3] (F >= S).

    ``indices`` (int64 [B]) are the samples' dataset indices; with ``seed`` and ``epoch`` they
    key every random choice. ``views`` defaults to ``cfg.views``; in JSD mode (``cfg.jsd`` and
    views > 1) view 0 is the clean image and the others are independent IPMix draws sharing
    one fractal.
    Returns uint8 ``[B, views, S, S, 3]`` (rounded mix) or float32 in [0, 255].
    """
    _check_images(images, bank, cfg)
    views = cfg.views if views is None else int(views)
    if views < 1:
        raise ValueError(f"ipmix: views must be >= 1, got {views}")
    indices = np.asarray(indices)
    if indices.shape != (images.shape[0],):
        raise ValueError(
            f"ipmix: indices must have shape ({images.shape[0]},), got {indices.shape}"
        )
    clean_first = cfg.jsd and views > 1
    recs = sample_records(
        cfg,
        seed=seed,
        epoch=epoch,
        indices=indices,
        n_fractals=bank.shape[0],
        fractal_size=bank.shape[1],
        views=views - int(clean_first),
        first_view=int(clean_first),
    )
    return ipmix_apply(images, bank, recs, cfg, clean_first=clean_first, out=out, dtype=dtype)
