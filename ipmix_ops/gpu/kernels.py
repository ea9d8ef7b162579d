"""The three Triton kernels of one IPMix batch: step, stats and write.

Per chain ``c`` and step ``d`` the host launches :func:`stats_kernel` (only when some view's
step needs an equalize / autocontrast / contrast LUT) and :func:`step_kernel` once for the
whole batch; :func:`write_kernel` then writes every view. Programs read their view's step
from ``itab`` (:mod:`ipmix_ops.gpu.layout`); views whose chain is shorter return at once.

Buffers (``IMG = S * S * 3`` bytes): two planes of one image per IPMix view: plane 1 is the
view's own slot of the output (``out8``, written last by :func:`write_kernel`, so it is free
until then), plane 0 the image's clean slot of the output for its first IPMix view when the
output has one (JSD), else the view's plane of ``bufs`` uint8 [B (Vi - clean), S, S, 3].
Image chains ping-pong (step d reads plane (d+1) % 2 and writes plane d % 2); patch chains
mix in place in plane 0.
``acc`` int16 [BV, S, S, 3] is the mix minus x in 1/64 level (:mod:`ipmix_ops.batch`): the
last step of each chain adds ``floor(64 w (c - x))`` (``((c - x) << 7) * wq >> 16``).
"""

from __future__ import annotations

import triton
import triton.language as tl

import ipmix_ops.gpu.layout as L

from ..optable import AUTOCONTRAST, CONTRAST, EQUALIZE
from ..sampling import KIND_PATCH
from .ops import apply_mix, apply_op, load_px

_KIND_PATCH = tl.constexpr(KIND_PATCH)
_EQ = tl.constexpr(EQUALIZE)
_AC = tl.constexpr(AUTOCONTRAST)
_CT = tl.constexpr(CONTRAST)
# the table columns of :mod:`ipmix_ops.gpu.layout`, as constants the kernels can read
_I_KIND = tl.constexpr(L.I_KIND)
_I_DEPTH = tl.constexpr(L.I_DEPTH)
_I_OP = tl.constexpr(L.I_OP)
_I_PI = tl.constexpr(L.I_PI)
_I_MIX = tl.constexpr(L.I_MIX)
_I_SRCF = tl.constexpr(L.I_SRCF)
_I_TOP = tl.constexpr(L.I_TOP)
_I_LEFT = tl.constexpr(L.I_LEFT)
_I_H = tl.constexpr(L.I_H)
_I_W = tl.constexpr(L.I_W)
_I_THR = tl.constexpr(L.I_THR)
_I_MSEED = tl.constexpr(L.I_MSEED)
_I_SLOT = tl.constexpr(L.I_SLOT)
_I_FIDX = tl.constexpr(L.I_FIDX)
_I_FY = tl.constexpr(L.I_FY)
_I_FX = tl.constexpr(L.I_FX)
_I_UY0 = tl.constexpr(L.I_UY0)
_I_UX0 = tl.constexpr(L.I_UX0)
_I_UY1 = tl.constexpr(L.I_UY1)
_I_UX1 = tl.constexpr(L.I_UX1)
_I_WQ = tl.constexpr(L.I_WQ)
_NI = tl.constexpr(L.NI)
_F_ALPHA = tl.constexpr(L.F_ALPHA)
_F_C = tl.constexpr(L.F_C)
_NFL = tl.constexpr(L.NFL)


@triton.jit
def _row(itab, bv, c, d, k, t):
    return itab + ((bv * k + c) * t + d) * _NI


@triton.jit
def _plane(bufs, out8, bv, plane, Vi, Vout, clean, img, out_stride):
    """The image of view ``bv`` in ``plane``: 1: its output slot; 0: the image's clean slot
    for its first view when there is one (``clean``), else its own ``bufs`` plane."""
    n = bv // Vi
    j = bv % Vi
    if plane == 0:
        if j < clean:
            base = out8 + (n * Vout).to(tl.int64) * out_stride
        else:
            base = bufs + (n * (Vi - clean) + j - clean).to(tl.int64) * img
    else:
        base = out8 + (n * Vout + clean + j).to(tl.int64) * out_stride
    return base


@triton.jit
def step_kernel(
    images,
    bank,
    bufs,
    acc,
    itab,
    ftab,
    dtab,
    luts,
    statlut,
    table,
    c,
    d,
    in_plane,
    out_plane,
    out8,
    Vout,
    clean,
    out_stride,
    Vi,
    S,
    F,
    k,
    t,
    n_tx,
    FIRST: tl.constexpr,
    WRAP: tl.constexpr,
    TH: tl.constexpr,
    TW: tl.constexpr,
):
    """Step ``d`` of chain ``c`` for one view (program_id 0) and one TH x TW tile."""
    bv = tl.program_id(0)
    tile = tl.program_id(1)
    row = _row(itab, bv, c, d, k, t)
    depth = tl.load(row + _I_DEPTH)
    if d >= depth:
        return
    is_patch = tl.load(row + _I_KIND) == _KIND_PATCH
    last = d == depth - 1
    ty0 = (tile // n_tx) * TH
    tx0 = (tile % n_tx) * TW
    top = tl.load(row + _I_TOP)
    left = tl.load(row + _I_LEFT)
    bh = tl.load(row + _I_H)
    bw = tl.load(row + _I_W)
    if is_patch:
        if last | (d == 0):  # the bounding box of all the chain's boxes
            ry0 = tl.load(row + _I_UY0)
            rx0 = tl.load(row + _I_UX0)
            ry1 = tl.load(row + _I_UY1)
            rx1 = tl.load(row + _I_UX1)
        else:
            ry0 = top
            rx0 = left
            ry1 = top + bh
            rx1 = left + bw
        if (ty0 >= ry1) | (ty0 + TH <= ry0) | (tx0 >= rx1) | (tx0 + TW <= rx0):
            return  # nothing of this tile changes
    i = tl.arange(0, TH * TW)
    y = ty0 + i // TW
    x = tx0 + i % TW
    ch = tl.arange(0, 4)
    valid = (y < S) & (x < S)
    y = tl.minimum(y, S - 1)
    x = tl.minimum(x, S - 1)
    m2 = valid[:, None] & (ch < 3)[None, :]
    img = S * S * 3
    x_base = images + (bv // Vi).to(tl.int64) * img
    if FIRST:
        cur_base = x_base
    else:
        plane = tl.where(is_patch, 0, in_plane)
        cur_base = _plane(bufs, out8, bv, plane, Vi, Vout, clean, img, out_stride)
    if is_patch:
        src_base = x_base
    else:
        src_base = cur_base
    frow = ftab + ((bv * k + c) * t + d) * _NFL
    v = apply_op(
        tl.load(row + _I_OP),
        src_base,
        y,
        x,
        ch,
        S,
        m2,
        tl.load(row + _I_PI),
        tl.load(frow + _F_ALPHA),
        statlut + bv * 768,
        dtab + ((bv * k + c) * t + d) * 6,
    )
    if is_patch:
        cur = load_px(cur_base, y, x, ch, S, m2)
        if tl.load(row + _I_SRCF) != 0:
            fb = bank + tl.load(row + _I_FIDX).to(tl.int64) * (F * F * 3)
            fy = tl.load(row + _I_FY) + y
            fx = tl.load(row + _I_FX) + x
            inb = valid & (fy < F) & (fx < F)
            q = load_px(fb, tl.minimum(fy, F - 1), tl.minimum(fx, F - 1), ch, F, inb[:, None] & m2)
        else:
            q = v
        mixed = apply_mix(
            tl.load(row + _I_MIX),
            cur,
            q,
            luts + tl.load(row + _I_SLOT).to(tl.int64) * 512,
            tl.load(frow + _F_C),
            table,
            tl.load(row + _I_MSEED),
            tl.load(row + _I_THR),
            y - top,
            x - left,
            bw,
            ch,
            m2,
            valid,
            WRAP,
        )
        inbox = (y >= top) & (y < top + bh) & (x >= left) & (x < left + bw) & valid
        v = tl.where(inbox[:, None], mixed, cur)
    off = ((y * S + x) * 3)[:, None] + ch[None, :]
    if last:
        xv = tl.load(x_base + off, mask=m2, other=0).to(tl.int32)
        term = (((v - xv) << 7) * tl.load(row + _I_WQ)) >> 16
        ap = acc + bv.to(tl.int64) * img + off
        a = tl.load(ap, mask=m2, other=0).to(tl.int32)
        tl.store(ap, (a + term).to(tl.int16), mask=m2)
    else:
        plane = tl.where(is_patch, 0, out_plane)
        dst = _plane(bufs, out8, bv, plane, Vi, Vout, clean, img, out_stride)
        tl.store(dst + off, v.to(tl.uint8), mask=m2)


@triton.jit
def _equalize_lut(h, idx):
    """``ImageOps.equalize``'s LUT of one channel from its histogram (int32 [256])."""
    nz = h != 0
    nonzero = tl.sum(nz.to(tl.int32), axis=0)
    total = tl.sum(h, axis=0)
    last_i = tl.max(tl.where(nz, idx, -1), axis=0)
    last = tl.sum(tl.where(idx == last_i, h, 0), axis=0)
    step = tl.where(nonzero > 1, (total - last) // 255, 0)
    n = step // 2 + tl.cumsum(h, axis=0) - h
    return tl.where(step == 0, idx, tl.minimum(n // tl.maximum(step, 1), 255))


@triton.jit
def _autocontrast_lut(h, idx, cut):
    """``ImageOps.autocontrast``'s LUT: ``cut`` samples removed from each end, then the
    float64 linear stretch of Pillow (truncated, clipped)."""
    h1 = h - tl.minimum(h, tl.maximum(cut - (tl.cumsum(h, axis=0) - h), 0))
    above = tl.sum(h1, axis=0) - tl.cumsum(h1, axis=0)
    h2 = h1 - tl.minimum(h1, tl.maximum(cut - above, 0))
    nz = h2 != 0
    lo = tl.min(tl.where(nz, idx, 255), axis=0)
    hi = tl.max(tl.where(nz, idx, 0), axis=0)
    scale = 255.0 / tl.maximum(hi - lo, 1).to(tl.float64)
    offset = -(lo.to(tl.float64)) * scale
    val = (idx.to(tl.float64) * scale + offset).to(tl.int32)
    return tl.where(hi <= lo, idx, tl.minimum(tl.maximum(val, 0), 255))


@triton.jit
def stats_kernel(
    images,
    bufs,
    itab,
    ftab,
    statlut,
    c,
    d,
    in_plane,
    out8,
    Vout,
    clean,
    out_stride,
    Vi,
    S,
    k,
    t,
    FIRST: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """The whole-image LUT (int32 [3, 256] per view in ``statlut``) of step ``d``'s
    equalize / autocontrast / contrast, from the step's input image (patch: the clean one)."""
    bv = tl.program_id(0)
    row = _row(itab, bv, c, d, k, t)
    op = tl.load(row + _I_OP)
    if (d >= tl.load(row + _I_DEPTH)) | ((op != _EQ) & (op != _AC) & (op != _CT)):
        return
    img = S * S * 3
    x_base = images + (bv // Vi).to(tl.int64) * img
    if FIRST:
        base = x_base
    else:
        if tl.load(row + _I_KIND) == _KIND_PATCH:
            base = x_base
        else:
            base = _plane(bufs, out8, bv, in_plane, Vi, Vout, clean, img, out_stride)
    h0 = tl.zeros([256], tl.int32)
    h1 = tl.zeros([256], tl.int32)
    h2 = tl.zeros([256], tl.int32)
    gsum = tl.zeros([BLOCK], tl.int64)
    cnt = tl.zeros([BLOCK], tl.int32)
    for start in range(0, S * S, BLOCK):
        p = start + tl.arange(0, BLOCK)
        m = p < S * S
        r = tl.load(base + 3 * p, mask=m, other=0).to(tl.int32)
        g = tl.load(base + 3 * p + 1, mask=m, other=0).to(tl.int32)
        b = tl.load(base + 3 * p + 2, mask=m, other=0).to(tl.int32)
        h0 += tl.histogram(r, 256, mask=m)
        h1 += tl.histogram(g, 256, mask=m)
        h2 += tl.histogram(b, 256, mask=m)
        cnt += m.to(tl.int32)
        grey = (19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16
        gsum += tl.where(m, grey, 0).to(tl.int64)
    idx = tl.arange(0, 256)
    out = statlut + bv * 768 + idx
    if op == _EQ:
        l0 = _equalize_lut(h0, idx)
        l1 = _equalize_lut(h1, idx)
        l2 = _equalize_lut(h2, idx)
    elif op == _AC:
        cut = tl.load(row + _I_PI)
        l0 = _autocontrast_lut(h0, idx, cut)
        l1 = _autocontrast_lut(h1, idx, cut)
        l2 = _autocontrast_lut(h2, idx, cut)
    else:  # contrast: blend with the flat mean grey int(mean(L) + 0.5)
        mean = (tl.sum(gsum, axis=0).to(tl.float64) / tl.sum(cnt, axis=0).to(tl.float64) + 0.5).to(
            tl.int32
        )
        fdeg = mean.to(tl.float32)
        alpha = tl.load(ftab + ((bv * k + c) * t + d) * _NFL + _F_ALPHA)
        t0 = fdeg + alpha * (idx.to(tl.float32) - fdeg)
        l0 = tl.minimum(tl.maximum(t0, 0.0), 255.0).to(tl.int32)
        l1 = l0
        l2 = l0
    tl.store(out, l0)
    tl.store(out + 256, l1)
    tl.store(out + 512, l2)


@triton.jit
def write_kernel(
    images, acc, out, Vi, Vout, S, CLEAN: tl.constexpr, AS_FLOAT: tl.constexpr, BLOCK: tl.constexpr
):
    """``out[b, v] = x + acc`` rounded half up to uint8 (``batch._mix_u8``) or float32;
    the first ``CLEAN`` views are the clean image."""
    pid = tl.program_id(0)
    b = pid // Vout
    v = pid % Vout
    img = S * S * 3
    off = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    m = off < img
    xv = tl.load(images + b.to(tl.int64) * img + off, mask=m, other=0).to(tl.int32)
    a = tl.zeros([BLOCK], tl.int32)
    if v >= CLEAN:
        bv = b * Vi + v - CLEAN
        a = tl.load(acc + bv.to(tl.int64) * img + off, mask=m, other=0).to(tl.int32)
    dst = out + pid.to(tl.int64) * img + off
    if AS_FLOAT:
        tl.store(dst, xv.to(tl.float32) + a.to(tl.float32) * 0.015625, mask=m)
    else:
        r = xv + (((a >> 5) + 1) >> 1)
        tl.store(dst, tl.minimum(tl.maximum(r, 0), 255).to(tl.uint8), mask=m)
