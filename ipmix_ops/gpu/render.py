"""Host side of the GPU renderer: checks, tables to the device, one launch per chain step.

``ipmix_apply`` / ``ipmix_batch`` have the arguments and meaning of
:func:`ipmix_ops.batch.ipmix_apply` / :func:`ipmix_ops.batch.ipmix_batch`, on torch uint8
tensors: ``images`` [B, S, S, 3], ``bank`` [N, F, F, 3] (F >= S), both on one device; the
result is [B, V, S, S, 3] uint8 (or float32 in [0, 255]) on that device. Records are sampled
and turned into tables on the host (:mod:`ipmix_ops.gpu.layout`), copied once, and the batch
runs without host synchronisation: per chain c and step d one stats launch (only when a
view needs an equalize / autocontrast / contrast LUT) and one step launch, then one write.
The scratch stays within :data:`SCRATCH_BATCHES` batches of views: a batch whose scratch
would not fit (one view: 3 bytes of scratch per output byte) is rendered in equal groups
of images, each with its own launches (one view: two).

On CPU tensors the kernels run under Triton's interpreter, which must be selected before
Triton is imported: ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import numpy as np
import torch
import triton

import ipmix_ops.gpu.kernels as kernels
import ipmix_ops.gpu.layout as layout

from ..batch import _check_mix_weights
from ..config import IPMixConfig
from ..sampling import mask_table, record_length, sample_records

_INTERP = bool(triton.knobs.runtime.interpret)
#: pixels per step program (more under the interpreter, whose cost is per operation) and
#: bytes per write program
TILE_PIXELS = 4096 if _INTERP else 512
WRITE_BLOCK = 4096
_LAUNCH = dict(num_warps=4, enable_fp_fusion=False)
_STATE: dict[tuple, object] = {}


def _interpreting() -> bool:
    return bool(triton.knobs.runtime.interpret)


def _device_table(device: torch.device) -> torch.Tensor:
    key = ("table", str(device))
    if key not in _STATE:
        _STATE[key] = torch.from_numpy(mask_table().astype(np.int32)).to(device)
    return _STATE[key]


#: the renderer's scratch is at most this many batches of views (uint8 ``[B, V, S, S, 3]``,
#: the output's size): the GPU memory of a batch is the bank, the output and the scratch
SCRATCH_BATCHES = 2


def _alloc_scratch(device: torch.device, n: int, vi: int, clean: int, s: int) -> tuple:
    """The scratch of ``n`` images of ``vi`` IPMix views each: ``bufs`` uint8
    ``[n (vi - clean), S, S, 3]`` (working plane 0 of the views that have no clean slot to
    borrow), ``acc`` int16 ``[n vi, S, S, 3]`` (zeros), ``statlut`` int32 ``[n vi, 3, 256]``."""
    return (
        torch.empty((n * max(vi - clean, 0), s, s, 3), dtype=torch.uint8, device=device),
        torch.zeros((n * vi, s, s, 3), dtype=torch.int16, device=device),
        torch.empty((n * vi, 3, 256), dtype=torch.int32, device=device),
    )


def chunk_images(b: int, vi: int, clean: int, s: int) -> int:
    """Images rendered per group of launches: all ``b`` when their scratch fits in
    :data:`SCRATCH_BATCHES` batches of views (``b * (vi + clean)`` uint8 views), else the
    fewest equal groups that do (one view: two). The bytes per image are those
    :func:`_alloc_scratch` allocates (measured on the ``meta`` device). At least one image."""
    per_image = sum(t.nbytes for t in _alloc_scratch(torch.device("meta"), 1, vi, clean, s))
    budget = SCRATCH_BATCHES * b * (vi + clean) * s * s * 3
    most = max(1, budget // max(per_image, 1))
    groups = -(-b // most)
    return -(-b // groups)


def scratch_bytes(b: int, vi: int, clean: int, s: int) -> int:
    """Bytes of the scratch :func:`ipmix_apply` allocates for ``b`` images of ``vi`` IPMix
    views (plus ``clean`` clean views) at side ``s``."""
    n = chunk_images(b, vi, clean, s)
    return sum(t.nbytes for t in _alloc_scratch(torch.device("meta"), n, vi, clean, s))


def _scratch(device: torch.device, n: int, vi: int, clean: int, s: int) -> tuple:
    """:func:`_alloc_scratch`, cached per (device, n, vi, clean, s)."""
    key = ("scratch", str(device), n, vi, clean, s)
    if key not in _STATE:
        if len(_STATE) > 8:  # a few sizes at most; drop the old scratch
            _STATE.clear()
        _STATE[key] = _alloc_scratch(device, n, vi, clean, s)
    return _STATE[key]


def _check(images: torch.Tensor, bank: torch.Tensor, cfg: IPMixConfig) -> None:
    s = cfg.image_size
    for name, t in (("images", images), ("bank", bank)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"ipmix_ops.gpu: {name} must be a torch tensor, got {type(t).__name__}")
        if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[3] != 3 or not t.is_contiguous():
            raise ValueError(
                f"ipmix_ops.gpu: {name} must be contiguous uint8 [N, H, W, 3], "
                f"got {t.dtype} {tuple(t.shape)}"
            )
    if tuple(images.shape[1:3]) != (s, s):
        raise ValueError(f"ipmix_ops.gpu: images are {tuple(images.shape[1:3])}, cfg wants {s}x{s}")
    if bank.shape[0] == 0 or bank.shape[1] != bank.shape[2] or bank.shape[1] < s:
        raise ValueError(
            f"ipmix_ops.gpu: bank must be non-empty, square, side >= {s}: {tuple(bank.shape)}"
        )
    if images.device != bank.device:
        raise ValueError(f"ipmix_ops.gpu: images on {images.device}, bank on {bank.device}")
    if images.device.type == "cpu" and not _interpreting():
        raise RuntimeError(
            "ipmix_ops.gpu: tensors are on the CPU; pass CUDA tensors, or set TRITON_INTERPRET=1 "
            "before Triton is first imported to run the kernels in Triton's interpreter"
        )


def ipmix_apply(
    images: torch.Tensor,
    bank: torch.Tensor,
    records: np.ndarray,
    cfg: IPMixConfig,
    out: torch.Tensor | None = None,
    *,
    clean_first: bool | None = None,
    dtype: torch.dtype = torch.uint8,
) -> torch.Tensor:
    """IPMix pixels for the fixed choices ``records`` (float64 [B, V, L], host NumPy).

    Returns ``[B, V (+1 if clean_first), S, S, 3]`` uint8 (the mix rounded half up) or
    float32, on the images' device; ``clean_first`` (default ``cfg.jsd``) puts the clean
    image first. Same bytes as :func:`ipmix_ops.batch.ipmix_apply` except the bilinear
    warps (within 1 level; see :mod:`ipmix_ops.gpu`).
    """
    _check(images, bank, cfg)
    clean = int(cfg.jsd if clean_first is None else clean_first)
    records = np.ascontiguousarray(records, np.float64)
    b, s, k, t = images.shape[0], cfg.image_size, cfg.k, cfg.t
    if records.ndim != 3 or records.shape[0] != b or records.shape[2] != record_length(k, t):
        raise ValueError(
            f"ipmix_ops.gpu: records must be [B={b}, V, {record_length(k, t)}], got {records.shape}"
        )
    _check_mix_weights(records, k)
    vi = records.shape[1]
    vout = vi + clean
    if dtype not in (torch.uint8, torch.float32):
        raise ValueError(f"ipmix_ops.gpu: dtype must be torch.uint8 or torch.float32, got {dtype}")
    shape = (b, vout, s, s, 3)
    if out is None:
        out = torch.empty(shape, dtype=dtype, device=images.device)
    elif tuple(out.shape) != shape or out.dtype != dtype or not out.is_contiguous():
        raise ValueError(
            f"ipmix_ops.gpu: out must be contiguous {dtype} {shape}, "
            f"got {out.dtype} {tuple(out.shape)}"
        )
    dev = images.device
    table = mask_table()
    itab_np, ftab_np, dtab_np, luts_np = layout.prepare(
        records, k, t, s, cfg.overflow == "wrap", table
    )
    nb = dev.type == "cuda"
    itab, ftab, dtab, luts = (
        torch.from_numpy(a).to(dev, non_blocking=nb) for a in (itab_np, ftab_np, dtab_np, luts_np)
    )
    group = chunk_images(b, vi, clean, s) if b * vi else max(b, 1)
    scratch = _scratch(dev, group, vi, clean, s)
    for b0 in range(0, b, group):  # groups of launches: the whole batch, one view: halves
        b1 = min(b, b0 + group)
        v0, v1 = b0 * vi, b1 * vi
        _render_group(
            images[b0:b1],
            bank,
            (itab_np[v0:v1], itab[v0:v1], ftab[v0:v1], dtab[v0:v1], luts),
            scratch,
            out[b0:b1],
            cfg,
            vi,
            clean,
        )
    return out


def _render_group(images, bank, tables, scratch, out, cfg, vi, clean) -> None:
    """Every launch of ``images`` [n, S, S, 3] into ``out`` [n, Vout, ...] (no host sync)."""
    itab_np, itab, ftab, dtab, luts = tables
    bufs, acc, statlut = scratch
    b, s, k, t = images.shape[0], cfg.image_size, cfg.k, cfg.t
    vout, bv, dev = vi + clean, b * vi, images.device
    acc[:bv].zero_()
    tw = min(64, triton.next_power_of_2(s))
    th = max(1, TILE_PIXELS // tw)
    n_tx, n_ty = triton.cdiv(s, tw), triton.cdiv(s, th)
    f = bank.shape[1]
    dtable = _device_table(dev)
    wrap = cfg.overflow == "wrap"
    # the second working plane of image chains: each IPMix view's own output slot (and the
    # first plane of view 0 the clean slot, when there is one)
    out8 = out.view(torch.uint8)
    plane1 = (out8, vout, clean, s * s * 3 * out.element_size())
    dtype = out.dtype
    if bufs.numel() == 0:  # every view borrows a clean slot: bufs is never read
        bufs = out8
    for c in range(k if bv else 0):
        for d in range(t):
            if not layout.active(itab_np, c, d):
                continue
            first = d == 0
            if layout.needs_stats(itab_np, c, d):
                kernels.stats_kernel[(bv,)](
                    images,
                    bufs,
                    itab,
                    ftab,
                    statlut,
                    c,
                    d,
                    (d + 1) % 2,
                    *plane1,
                    vi,
                    s,
                    k,
                    t,
                    FIRST=first,
                    BLOCK=1024,
                    **_LAUNCH,
                )
            kernels.step_kernel[(bv, n_tx * n_ty)](
                images,
                bank,
                bufs,
                acc,
                itab,
                ftab,
                dtab,
                luts,
                statlut,
                dtable,
                c,
                d,
                (d + 1) % 2,
                d % 2,
                *plane1,
                vi,
                s,
                f,
                k,
                t,
                n_tx,
                FIRST=first,
                WRAP=wrap,
                TH=th,
                TW=tw,
                **_LAUNCH,
            )
    kernels.write_kernel[(b * vout, triton.cdiv(s * s * 3, WRITE_BLOCK))](
        images,
        acc,
        out,
        vi,
        vout,
        s,
        CLEAN=clean,
        AS_FLOAT=dtype == torch.float32,
        BLOCK=WRITE_BLOCK,
        **_LAUNCH,
    )


def ipmix_batch(
    images: torch.Tensor,
    bank: torch.Tensor,
    cfg: IPMixConfig,
    *,
    seed: int,
    epoch: int,
    indices: np.ndarray,
    views: int | None = None,
    out: torch.Tensor | None = None,
    dtype: torch.dtype = torch.uint8,
) -> torch.Tensor:
    """IPMix a batch on the device; the records of :func:`ipmix_ops.batch.ipmix_batch`
    (keyed by ``seed``, ``epoch``, ``indices``), so the output matches it."""
    _check(images, bank, cfg)
    n_views = cfg.views if views is None else int(views)
    indices = np.asarray(indices)
    if n_views < 1 or indices.shape != (images.shape[0],):
        raise ValueError(
            f"ipmix_ops.gpu: need views >= 1 (got {n_views}) and indices of shape "
            f"({images.shape[0]},) (got {indices.shape})"
        )
    clean = int(cfg.jsd and n_views > 1)  # JSD: view 0 is the clean image
    keys = dict(seed=seed, epoch=epoch, indices=indices, views=n_views - clean, first_view=clean)
    recs = sample_records(cfg, n_fractals=bank.shape[0], fractal_size=bank.shape[1], **keys)
    return ipmix_apply(images, bank, recs, cfg, out, clean_first=bool(clean), dtype=dtype)
