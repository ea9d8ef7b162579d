"""Per-sample parameter sampling (docs/algorithm.md §1-§5), keyed by ``(seed, epoch, index, view)``.

All random choices of one IPMix view are drawn by :func:`sample_record_k`, a Numba function,
from a counter-based stream (SplitMix64) whose state is a hash of the key: no global RNG
state, the same key gives the same choices in any process or thread, and a resumed run sees
the same augmentations as an uninterrupted one. The fractal and its crop are drawn from the
key without the view, so the two IPMix views of a JSD triple share one fractal.

The choices are written into a *record*, a float64 vector (integers are stored exactly). The
fast path (:mod:`ipmix_ops.batch`) and the Pillow reference (:mod:`ipmix_ops.reference`) both
consume records, so one record gives the same pixels in both. :class:`Record` reads one.

Record layout (``L = record_length(k, t)``)::

    [M, FIDX, FY, FX, w_0 .. w_{k-1}, chain_0, ..., chain_{k-1}]
    chain = [KIND, DEPTH, step_0 .. step_{t-1}],  step = NF fields (S_* below)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from .config import IPMixConfig
from .optable import MIX_ADD, MIX_MULTIPLY, op_parameter

# --- record layout -----------------------------------------------------------------------
R_M, R_FIDX, R_FY, R_FX, R_W0 = 0, 1, 2, 3, 4
C_KIND, C_DEPTH, C_STEPS = 0, 1, 2
KIND_IMAGE, KIND_PATCH = 0, 1
# step fields: OP is the image op (image chain) or the mixing op (patch chain)
S_OP, S_PARAM, S_SIZE, S_SRC_FRACTAL, S_SRC_OP, S_SRC_PARAM = 0, 1, 2, 3, 4, 5
S_LEFT, S_TOP, S_W, S_H, S_A, S_B, S_P, S_SEED = 6, 7, 8, 9, 10, 11, 12, 13
NF = 14

# --- kernel config layout (IPMixConfig.kernel_args) ------------------------------------
ICFG_K, ICFG_T, ICFG_DMIN, ICFG_NOPS, ICFG_S, ICFG_MIXED, ICFG_WRAP, ICFG_NP, ICFG_P0 = range(9)
FCFG_BETA, FCFG_SEVERITY = 0, 1

_FRACTAL_VIEW = 0xF7AC7A1  # the view code of the fractal stream (shared by all views)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0


def chain_offset(k: int, t: int, c: int) -> int:
    """Index of chain ``c``'s first field in a record."""
    return R_W0 + k + c * (C_STEPS + t * NF)


def record_length(k: int, t: int) -> int:
    """Length of one record for ``k`` chains of at most ``t`` steps."""
    return R_W0 + k + k * (C_STEPS + t * NF)


@njit(inline="always")
def mix64(z):
    """SplitMix64's finalizer: a bijective 64-bit hash (uint64 in, uint64 out)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(inline="always")
def key_state(seed, epoch, index, view):
    """The stream state of key ``(seed, epoch, index, view)`` (all int64)."""
    s = mix64(np.uint64(seed) + _GOLDEN)
    s = mix64(s ^ (np.uint64(epoch) * _M1 + _GOLDEN))
    s = mix64(s ^ (np.uint64(index) * _M2 + _GOLDEN))
    return mix64(s ^ (np.uint64(view) * _GOLDEN + _M1))


@njit(inline="always")
def next_u64(state):
    """Advance a one-element uint64 state array; return the next 64 random bits."""
    state[0] += _GOLDEN
    return mix64(state[0])


@njit(inline="always")
def uniform(state):
    """U[0, 1) with 53 random bits."""
    return float(next_u64(state) >> _S11) * _INV53


@njit(inline="always")
def randint(state, lo, hi):
    """Uniform integer in ``[lo, hi]`` inclusive."""
    return lo + min(int(uniform(state) * (hi - lo + 1)), hi - lo)


@njit(inline="always")
def beta_a1(state, a):
    """Beta(a, 1) = U^(1/a)."""
    return (1.0 - uniform(state)) ** (1.0 / a)


@njit
def _image_op(state, n_ops, severity, size):
    """Draw ``random_image_op``: (op id, Pillow parameter)."""
    op = randint(state, 0, n_ops - 1)
    level = 0.1 + (severity - 0.1) * uniform(state)
    negate = uniform(state) < 0.5
    return op, op_parameter(op, level, negate, size)


@njit
def sample_record_k(rec, icfg, fcfg, seed, epoch, index, view, n_fractals, fsize):
    """Fill ``rec`` (float64 [L]) with every random choice of one IPMix view."""
    k, t, dmin, n_ops, size = (
        icfg[ICFG_K],
        icfg[ICFG_T],
        icfg[ICFG_DMIN],
        icfg[ICFG_NOPS],
        icfg[ICFG_S],
    )
    beta, severity = fcfg[FCFG_BETA], fcfg[FCFG_SEVERITY]
    rec[:] = 0.0
    # the fractal and its crop: shared by the views of one sample
    fs = np.empty(1, np.uint64)
    fs[0] = key_state(seed, epoch, index, _FRACTAL_VIEW)
    rec[R_FIDX] = randint(fs, 0, n_fractals - 1)
    rec[R_FY] = randint(fs, 0, fsize - size)
    rec[R_FX] = randint(fs, 0, fsize - size)

    st = np.empty(1, np.uint64)
    st[0] = key_state(seed, epoch, index, view)
    # ws ~ Dirichlet(1, ..., 1) as normalised Exp(1) draws; m ~ Beta(1, 1)
    total = 0.0
    for c in range(k):
        e = -np.log(1.0 - uniform(st))
        rec[R_W0 + c] = e
        total += e
    for c in range(k):
        rec[R_W0 + c] /= total
    rec[R_M] = uniform(st)
    for c in range(k):
        base = R_W0 + k + c * (C_STEPS + t * NF)
        kind = KIND_IMAGE if uniform(st) < 0.5 else KIND_PATCH
        depth = randint(st, dmin, t)
        rec[base + C_KIND] = kind
        rec[base + C_DEPTH] = depth
        for d in range(depth):
            s0 = base + C_STEPS + d * NF
            if kind == KIND_IMAGE:
                op, param = _image_op(st, n_ops, severity, size)
                rec[s0 + S_OP] = op
                rec[s0 + S_PARAM] = param
                continue
            ps = icfg[ICFG_P0 + randint(st, 0, icfg[ICFG_NP] - 1)]
            mop = randint(st, 0, 3)
            rec[s0 + S_SIZE] = ps
            rec[s0 + S_OP] = mop
            src_fractal = icfg[ICFG_MIXED] == 0 or uniform(st) < 0.5
            rec[s0 + S_SRC_FRACTAL] = 1.0 if src_fractal else 0.0
            if not src_fractal:
                op, param = _image_op(st, n_ops, severity, size)
                rec[s0 + S_SRC_OP] = op
                rec[s0 + S_SRC_PARAM] = param
            rec[s0 + S_LEFT] = randint(st, 0, size - ps)
            rec[s0 + S_TOP] = randint(st, 0, size - ps)
            if uniform(st) < 0.5:
                rec[s0 + S_W] = ps
                rec[s0 + S_H] = ps
            else:
                rec[s0 + S_W] = randint(st, 2, ps)
                rec[s0 + S_H] = randint(st, 2, ps)
            if mop == MIX_ADD or mop == MIX_MULTIPLY:
                if uniform(st) < 0.5:  # get_ab
                    rec[s0 + S_A] = beta_a1(st, beta)
                    rec[s0 + S_B] = 1.0 - beta_a1(st, beta)
                else:
                    rec[s0 + S_A] = 1.0 + (1.0 - beta_a1(st, beta))
                    rec[s0 + S_B] = -(1.0 - beta_a1(st, beta))
            else:
                rec[s0 + S_P] = uniform(st)
                rec[s0 + S_SEED] = float(next_u64(st) >> np.uint64(32))


@njit(parallel=True, cache=True)
def _sample_batch_k(recs, icfg, fcfg, seed, epoch, indices, first_view, n_fractals, fsize):
    n, v = recs.shape[0], recs.shape[1]
    for j in prange(n * v):
        b = j // v
        sample_record_k(
            recs[b, j % v],
            icfg,
            fcfg,
            seed,
            epoch,
            indices[b],
            first_view + j % v,
            n_fractals,
            fsize,
        )


def sample_records(
    cfg: IPMixConfig,
    *,
    seed: int,
    epoch: int,
    indices: np.ndarray,
    n_fractals: int,
    fractal_size: int | None = None,
    views: int = 1,
    first_view: int = 0,
) -> np.ndarray:
    """Records for samples ``indices``: float64 ``[B, views, L]``.

    View ``v`` of sample ``i`` is keyed by ``(seed, epoch, i, first_view + v)``. In JSD mode
    the batch kernel draws IPMix views 1 and 2 (view 0 is the clean image).
    """
    indices = np.ascontiguousarray(indices, dtype=np.int64).reshape(-1)
    fsize = cfg.fractal_size if fractal_size is None else int(fractal_size)
    if n_fractals < 1:
        raise ValueError("sample_records: the fractal bank is empty (n_fractals < 1)")
    if fsize < cfg.image_size:
        raise ValueError(f"sample_records: fractal size {fsize} < image size {cfg.image_size}")
    icfg, fcfg = cfg.kernel_args()
    recs = np.empty((len(indices), views, record_length(cfg.k, cfg.t)), np.float64)
    _sample_batch_k(
        recs, icfg, fcfg, int(seed), int(epoch), indices, int(first_view), int(n_fractals), fsize
    )
    return recs


def sample_record(
    cfg: IPMixConfig,
    key: tuple[int, int, int, int],
    n_fractals: int = 1,
    fractal_size: int | None = None,
) -> np.ndarray:
    """The record (float64 [L]) of one key ``(seed, epoch, index, view)``."""
    seed, epoch, index, view = (int(v) for v in key)
    return sample_records(
        cfg,
        seed=seed,
        epoch=epoch,
        indices=np.array([index]),
        n_fractals=n_fractals,
        fractal_size=fractal_size,
        first_view=view,
    )[0, 0]


# ------------------------------------------------------------------------- readable view
@dataclass(frozen=True)
class Step:
    """One chain step. Image chains use ``op``/``param``; patch chains the rest."""

    op: int
    param: float
    size: int
    src_fractal: bool
    src_op: int
    src_param: float
    left: int
    top: int
    w: int
    h: int
    a: float
    b: float
    p: float
    seed: int


@dataclass(frozen=True)
class Chain:
    kind: int
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Record:
    """Readable form of one record (what the reference and the tests consume)."""

    m: float
    ws: tuple[float, ...]
    fractal_index: int
    fractal_y: int
    fractal_x: int
    chains: tuple[Chain, ...]

    @classmethod
    def parse(cls, rec: np.ndarray, k: int, t: int) -> Record:
        rec = np.asarray(rec, dtype=np.float64)
        if rec.shape != (record_length(k, t),):
            raise ValueError(f"record has shape {rec.shape}, expected ({record_length(k, t)},)")
        chains = []
        for c in range(k):
            base = chain_offset(k, t, c)
            depth = int(rec[base + C_DEPTH])
            steps = []
            for d in range(depth):
                f = rec[base + C_STEPS + d * NF : base + C_STEPS + (d + 1) * NF]
                steps.append(
                    Step(
                        op=int(f[S_OP]),
                        param=float(f[S_PARAM]),
                        size=int(f[S_SIZE]),
                        src_fractal=bool(f[S_SRC_FRACTAL]),
                        src_op=int(f[S_SRC_OP]),
                        src_param=float(f[S_SRC_PARAM]),
                        left=int(f[S_LEFT]),
                        top=int(f[S_TOP]),
                        w=int(f[S_W]),
                        h=int(f[S_H]),
                        a=float(f[S_A]),
                        b=float(f[S_B]),
                        p=float(f[S_P]),
                        seed=int(f[S_SEED]),
                    )
                )
            chains.append(Chain(kind=int(rec[base + C_KIND]), steps=tuple(steps)))
        return cls(
            m=float(rec[R_M]),
            ws=tuple(float(w) for w in rec[R_W0 : R_W0 + k]),
            fractal_index=int(rec[R_FIDX]),
            fractal_y=int(rec[R_FY]),
            fractal_x=int(rec[R_FX]),
            chains=tuple(chains),
        )


# ------------------------------------------------------------------- Bernoulli masks
# Mask bits come from one fixed table of 16-bit uniforms read at a per-step offset (the step's
# seed): contiguous loads and an integer compare per element, so the mixing loops vectorise.
# Row y of an h×w (×1 or ×3) mask reads table[base_y : base_y + rowlen], where
# rowlen = w or 3w and base_y = (seed + y * rowlen) mod 2^MASK_TABLE_BITS; the table is padded
# so a row never wraps. Element e of a row is kept (True: x1) iff table[base_y + e] < thr,
# thr = ceil(p * 65536).
MASK_TABLE_BITS = 20
MASK_TABLE_PAD = 3 * 4096  # the longest row: 3 * the largest image side IPMixConfig allows
_MASK_TABLE: list[np.ndarray] = []


@njit(cache=True)
def _make_mask_table(n):
    out = np.empty(n, np.uint16)
    for i in range(n):
        out[i] = np.uint16(mix64(np.uint64(i) * _GOLDEN + _M2) >> np.uint64(48))
    return out


def mask_table() -> np.ndarray:
    """The fixed uint16 table behind every Bernoulli mask (built once per process, 2 MB)."""
    if not _MASK_TABLE:
        _MASK_TABLE.append(_make_mask_table((1 << MASK_TABLE_BITS) + MASK_TABLE_PAD))
    return _MASK_TABLE[0]


def mask_threshold(p: float) -> int:
    """Integer threshold: a table value ``u`` keeps x1 iff ``u < mask_threshold(p)``."""
    return int(np.ceil(np.float64(p) * 65536.0))


def bernoulli_mask(seed: int, p: float, shape: tuple[int, ...]) -> np.ndarray:
    """The bool mask ``M`` (True: keep ``x1``) of a random_pixels (h×w×1) or random_elems
    (h×w×3) step with ``seed`` and probability ``p``; see the table layout above."""
    h, w, c = shape
    rowlen = w * c
    rows = (int(seed) + np.arange(h, dtype=np.int64) * rowlen) & ((1 << MASK_TABLE_BITS) - 1)
    idx = rows[:, None] + np.arange(rowlen)[None, :]
    return (mask_table()[idx] < mask_threshold(p)).reshape(h, w, c)


__all__ = [
    "Chain",
    "Record",
    "Step",
    "bernoulli_mask",
    "record_length",
    "sample_record",
    "sample_records",
]
