"""The Triton renderer (ipmix_ops.gpu) against the Numba fast path, for the same records.

Without CUDA the kernels run in Triton's interpreter on CPU tensors (``TRITON_INTERPRET=1``
is set here, before Triton is imported); with CUDA the same tests run on the GPU (marker
``gpu``). Real photos at 32-48 px, a handful of samples, so the interpreter stays fast.
Exactness: every op except the bilinear warps, every mixing op (wrap and clip), the int16
accumulator and the final rounding must give the same bytes; views whose chains hold a
rotate / shear must be within 1 level on >= 99% of their pixels (the CPU path's own
tolerance against Pillow).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

if not torch.cuda.is_available():  # before the first ``import triton`` of ipmix_ops.gpu
    os.environ.setdefault("TRITON_INTERPRET", "1")

from conftest import PHOTO_NAMES, photo  # noqa: E402

from ipmix_ops import gpu  # noqa: E402
from ipmix_ops.batch import ipmix_apply as cpu_apply  # noqa: E402
from ipmix_ops.config import IPMixConfig  # noqa: E402
from ipmix_ops.optable import (  # noqa: E402
    MIX_NAMES,
    N_ALL_OPS,
    OP_ID,
    OP_NAMES,
    ROTATE,
    SHEAR_X,
    SHEAR_Y,
)
from ipmix_ops.sampling import (  # noqa: E402
    CHAIN,
    KIND_IMAGE,
    KIND_PATCH,
    REC,
    STEP,
    Record,
    chain_offset,
    record_length,
    sample_records,
    step_start,
)

WARPS = {ROTATE, SHEAR_X, SHEAR_Y}  # bilinear with fractional weights: within 1 level
DEVICES = [
    pytest.param(
        "cpu",
        marks=pytest.mark.skipif(
            os.environ.get("TRITON_INTERPRET") != "1", reason="CUDA present: tested on it"
        ),
    ),
    pytest.param("cuda", marks=pytest.mark.gpu),
]
#: a parameter per op that changes real photos (angles/shears larger than sampled ones)
PARAMS = {
    "equalize": 0.0,
    "posterize": 3.0,
    "rotate": -13.0,
    "solarize": 140.0,
    "shear_x": 0.23,
    "shear_y": -0.17,
    "translate_x": 5.0,
    "translate_y": -4.0,
    "mirror": 0.0,
    "invert": 0.0,
    "autocontrast": 7.5,
    "color": 1.7,
    "contrast": 0.4,
    "brightness": 1.45,
    "sharpness": 1.9,
}


def _images(size: int, n: int = 4) -> np.ndarray:
    return np.stack([photo(PHOTO_NAMES[i % len(PHOTO_NAMES)], size) for i in range(n)])


def _bank(size: int) -> np.ndarray:
    return np.stack([photo(n, size) for n in ("hubble_deep_field", "immunohistochemistry")])


def _render(device, images, bank, recs, cfg, **kw) -> np.ndarray:
    out = gpu.ipmix_apply(
        torch.from_numpy(images).to(device), torch.from_numpy(bank).to(device), recs, cfg, **kw
    )
    return out.cpu().numpy()


def _warp_views(recs: np.ndarray, cfg: IPMixConfig) -> np.ndarray:
    """bool [B, V]: the view's record holds a rotate / shear (image op or patch source)."""
    out = np.zeros(recs.shape[:2], bool)
    for b, v in np.ndindex(*recs.shape[:2]):
        r = Record.parse(recs[b, v], cfg.k, cfg.t)
        for ch in r.chains:
            ops = [s.op if ch.kind == KIND_IMAGE else s.src_op for s in ch.steps]
            srcs = [ch.kind == KIND_IMAGE or not s.src_fractal for s in ch.steps]
            out[b, v] |= any(o in WARPS and s for o, s in zip(ops, srcs))
    return out


def _assert_matches(got, ref, warp, clean: int) -> float:
    """Views without warps: equal bytes; with: |diff| <= 1 on >= 99% of the pixels.
    Returns the worst fraction of pixels off by more than 1 level."""
    assert got.shape == ref.shape and got.dtype == ref.dtype
    worst = 0.0
    for b, v in np.ndindex(*got.shape[:2]):
        d = np.abs(got[b, v].astype(np.int32) - ref[b, v].astype(np.int32))
        if v < clean or not warp[b, v - clean]:
            assert d.max() == 0, f"view [{b}, {v}] not bit-identical: max diff {d.max()}"
        else:
            frac = float((d > 1).mean())
            worst = max(worst, frac)
            assert frac <= 0.01, f"view [{b}, {v}]: {frac:.2%} of the pixels off by > 1"
    return worst


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("preset, size, jsd", [("cifar", 32, True), ("imagenet", 48, False)])
def test_sampled_records_match_fast_path(device, preset, size, jsd):
    cfg = IPMixConfig.preset(preset, image_size=size, jsd=jsd, all_ops=(preset == "cifar"))
    images, bank = _images(size, 3), _bank(cfg.fractal_size)
    nv = 2 if jsd else 1
    recs = sample_records(
        cfg,
        seed=3,
        epoch=1,
        indices=np.arange(3),
        n_fractals=2,
        fractal_size=cfg.fractal_size,
        views=nv,
        first_view=int(jsd),
    )
    ref = cpu_apply(images, bank, recs, cfg)
    got = _render(device, images, bank, recs, cfg)
    _assert_matches(got, ref, _warp_views(recs, cfg), int(jsd))
    assert (got[:, int(jsd) :] != images[:, None]).any()


def _blank(cfg: IPMixConfig, n: int) -> np.ndarray:
    """n records of one view: m = 1, weights (0.5, 0.3, 0.2), every chain of depth 0."""
    recs = np.zeros((n, 1, record_length(cfg.k, cfg.t)))
    recs[..., REC.m] = 1.0
    recs[..., REC.w0 : REC.w0 + 3] = (0.5, 0.3, 0.2)
    return recs


def _image_chain(rec, cfg, c, ops):
    base = chain_offset(cfg.k, cfg.t, c)
    rec[base + CHAIN.kind], rec[base + CHAIN.depth] = KIND_IMAGE, len(ops)
    for d, (op, param) in enumerate(ops):
        s0 = step_start(base, d)
        rec[s0 + STEP.op], rec[s0 + STEP.param] = op, param


def _patch_step(rec, cfg, c, d, mix, box, src=None, ab=(0.6, 0.4), p=0.4, seed=12345):
    """Step d of patch chain c: ``box`` (top, left, h, w); ``src`` None: the fractal, else
    (op, param) applied to the clean image."""
    base = chain_offset(cfg.k, cfg.t, c)
    rec[base + CHAIN.kind] = KIND_PATCH
    rec[base + CHAIN.depth] = max(rec[base + CHAIN.depth], d + 1)
    s0 = step_start(base, d)
    top, left, h, w = box
    rec[s0 + STEP.op], rec[s0 + STEP.size] = MIX_NAMES.index(mix), max(h, w)
    rec[s0 + STEP.top], rec[s0 + STEP.left], rec[s0 + STEP.h], rec[s0 + STEP.w] = top, left, h, w
    rec[s0 + STEP.src_fractal] = 1.0 if src is None else 0.0
    if src is not None:
        rec[s0 + STEP.src_op], rec[s0 + STEP.src_param] = src
    rec[s0 + STEP.a], rec[s0 + STEP.b], rec[s0 + STEP.p], rec[s0 + STEP.seed] = ab + (p, seed)


@pytest.mark.parametrize("device", DEVICES)
def test_each_op_forced(device):
    """Each of the 15 ops as an image op on the clean image (chain 0), after invert and
    posterize (chain 1: it reads, and takes its statistics from, the second working plane),
    and as a patch source."""
    s = 32
    cfg = IPMixConfig.preset("cifar", image_size=s, jsd=False, all_ops=True)
    images, bank = _images(s, N_ALL_OPS), _bank(cfg.fractal_size)
    recs = _blank(cfg, N_ALL_OPS)
    for op, name in enumerate(OP_NAMES):
        rec = recs[op, 0]
        _image_chain(rec, cfg, 0, [(op, PARAMS[name])])
        _image_chain(
            rec, cfg, 1, [(OP_ID["invert"], 0.0), (OP_ID["posterize"], 6.0), (op, PARAMS[name])]
        )
        _patch_step(rec, cfg, 2, 0, "add", (3, 5, 20, 17), src=(op, PARAMS[name]), ab=(1.0, 0.0))
    recs[..., REC.fidx], recs[..., REC.fy], recs[..., REC.fx] = 1, 2, 3
    ref = cpu_apply(images, bank, recs, cfg)
    got = _render(device, images, bank, recs, cfg)
    warp = np.isin(np.arange(N_ALL_OPS), sorted(WARPS))[:, None]
    _assert_matches(got, ref, warp, 0)
    for op in range(N_ALL_OPS):  # every op changed its photo
        assert (got[op, 0] != images[op]).any(), OP_NAMES[op]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("overflow", ["wrap", "clip"])
def test_mixing_ops_forced(device, overflow):
    """The four mixing ops with the fractal, an op and the clean image as sources, in
    overlapping boxes (wrap and clip), a full-image box, and a multiply that overflows."""
    s = 32
    cfg = IPMixConfig.preset("cifar", image_size=s, jsd=False, overflow=overflow)
    n = len(MIX_NAMES)
    images, bank = _images(s, n), _bank(cfg.fractal_size)
    recs = _blank(cfg, n)
    recs[:, 0, REC.fidx] = np.arange(n) % 2
    recs[..., REC.fy], recs[..., REC.fx] = 3, 1
    for i in range(n):
        rec = recs[i, 0]
        m = [MIX_NAMES[(i + j) % n] for j in range(4)]
        _patch_step(rec, cfg, 0, 0, m[0], (2, 4, 16, 16), ab=(1.7, -0.7), p=0.3, seed=7 + i)
        _patch_step(
            rec,
            cfg,
            0,
            1,
            m[1],
            (9, 0, 8, 30),
            src=(OP_ID["equalize"], 0.0),
            ab=(0.8, 0.2),
            p=0.75,
            seed=(1 << 31) + 11 * i,
        )
        _patch_step(rec, cfg, 0, 2, m[2], (20, 20, 12, 6), src=(ROTATE, 0.0), ab=(1.4, -0.4))
        _patch_step(rec, cfg, 1, 0, m[3], (0, 0, s, s), ab=(0.3, 0.7), p=0.5, seed=99)
        _image_chain(
            rec,
            cfg,
            2,
            [(OP_ID["solarize"], 100.0), (OP_ID["mirror"], 0.0), (OP_ID["autocontrast"], 3.0)],
        )
    ref = cpu_apply(images, bank, recs, cfg)
    got = _render(device, images, bank, recs, cfg)
    _assert_matches(got, ref, np.zeros((n, 1), bool), 0)
    ref32 = cpu_apply(images, bank, recs, cfg, dtype=np.float32)
    got32 = _render(device, images, bank, recs, cfg, dtype=torch.float32)
    np.testing.assert_array_equal(got32, ref32)


@pytest.mark.parametrize("device", DEVICES)
def test_identity_record_and_clean_view(device):
    """Depth-0 chains (and m = 0) give the clean image; the clean view is the input."""
    s = 32
    cfg = IPMixConfig.preset("cifar", image_size=s, jsd=True)
    images, bank = _images(s, 2), _bank(cfg.fractal_size)
    recs = np.concatenate([_blank(cfg, 2), _blank(cfg, 2)], axis=1)
    _image_chain(recs[1, 1], cfg, 0, [(OP_ID["invert"], 0.0)])
    recs[1, 1, REC.m] = 0.0
    got = _render(device, images, bank, recs, cfg)
    assert got.shape == (2, 3, s, s, 3)
    np.testing.assert_array_equal(got, np.repeat(images[:, None], 3, axis=1))


@pytest.mark.parametrize("device", DEVICES)
def test_ipmix_batch_keys_match_fast_path(device):
    from ipmix_ops.batch import ipmix_batch as cpu_batch

    s = 32
    cfg = IPMixConfig.preset("cifar", image_size=s, jsd=True)
    images, bank = _images(s, 2), _bank(cfg.fractal_size)
    idx = np.array([5, 17])
    ref = cpu_batch(images, bank, cfg, seed=9, epoch=2, indices=idx)
    got = (
        gpu.ipmix_batch(
            torch.from_numpy(images).to(device),
            torch.from_numpy(bank).to(device),
            cfg,
            seed=9,
            epoch=2,
            indices=idx,
        )
        .cpu()
        .numpy()
    )
    recs = sample_records(
        cfg,
        seed=9,
        epoch=2,
        indices=idx,
        n_fractals=2,
        fractal_size=cfg.fractal_size,
        views=2,
        first_view=1,
    )
    _assert_matches(got, ref, _warp_views(recs, cfg), 1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("jsd", [False, True])
def test_scratch_within_two_batches_of_views(device, jsd):
    """GPU memory bound: the scratch tensors a render leaves in the renderer's cache are at
    most two batches of views (2x the uint8 output's bytes), one view and JSD; they are what
    ``scratch_bytes`` reports; one view renders in two groups of launches, and the output
    still matches the fast path."""
    from ipmix_ops.gpu import render

    s, n = 48, 4  # at 48 px a JSD batch's scratch fits in one group, one view's in two
    cfg = IPMixConfig.preset("imagenet", image_size=s, jsd=jsd)
    images, bank = _images(s, n), _bank(cfg.fractal_size)
    vi, clean = (2, 1) if jsd else (1, 0)
    recs = sample_records(
        cfg,
        seed=5,
        epoch=0,
        indices=np.arange(n),
        n_fractals=2,
        fractal_size=cfg.fractal_size,
        views=vi,
        first_view=clean,
    )
    for key in [k for k in render._STATE if k[0] == "scratch"]:
        del render._STATE[key]
    got = _render(device, images, bank, recs, cfg)
    scratch = [v for k, v in render._STATE.items() if k[0] == "scratch"]
    assert len(scratch) == 1
    nbytes = sum(t.nbytes for t in scratch[0])
    views = got.size  # uint8 [B, V, S, S, 3]: one batch of views
    assert nbytes <= render.SCRATCH_BATCHES * views, (nbytes, views)
    assert nbytes == render.scratch_bytes(n, vi, clean, s)
    assert (render.chunk_images(n, vi, clean, s) < n) == (not jsd)
    _assert_matches(got, cpu_apply(images, bank, recs, cfg), _warp_views(recs, cfg), clean)


def test_clear_errors():
    cfg = IPMixConfig.preset("cifar", jsd=False)
    images = torch.zeros((2, 32, 32, 3), dtype=torch.uint8)
    bank = torch.zeros((1, 36, 36, 3), dtype=torch.uint8)
    recs = _blank(cfg, 2)
    with pytest.raises(ValueError, match="images must be contiguous uint8"):
        gpu.ipmix_apply(images.float(), bank, recs, cfg)
    with pytest.raises(ValueError, match="records must be"):
        gpu.ipmix_apply(images, bank, recs[:1], cfg)
    bad = recs.copy()
    bad[0, 0, REC.m] = 1.5
    with pytest.raises(ValueError, match="not a convex mix"):
        gpu.ipmix_apply(images, bank, bad, cfg)
