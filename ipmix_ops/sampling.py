"""Per-sample parameter sampling (docs/algorithm.md §1-§5), keyed by ``(seed, epoch, index, view)``.

All random choices of one IPMix view are drawn by :func:`sample_record_k`, a Numba function,
from a counter-based stream (SplitMix64) whose state is a hash of the key: no global RNG
state, the same key gives the same choices in any process or thread, and a resumed run sees
the same augmentations as an uninterrupted one. The fractal and its crop are drawn from the
key without the view, so the two IPMix views of a JSD triple share one fractal.

The choices are written into a *record*, a float64 vector (integers are stored exactly). The
fast path (:mod:`ipmix_ops.batch`) and the Pillow reference (:mod:`ipmix_ops.reference`) both
consume records, so one record gives the same pixels in both. :class:`Record` reads one.

Record layout (``L = record_length(k, t)``), generated from the field lists below::

    [RECORD_HEADER (m, fidx, fy, fx), w_0 .. w_{k-1}, chain_0, ..., chain_{k-1}]
    chain = [CHAIN_HEADER (kind, depth), step_0 .. step_{t-1}],  step = STEP_FIELDS

``REC``, ``CHAIN`` and ``STEP`` name the offsets (``rec[base + STEP.param]``);
:func:`chain_offset` / :func:`step_offset` place a chain or step; :func:`field_offsets`
lists every field of a ``(k, t)`` record by name.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, fields

import numpy as np
from numba import njit, prange

from .config import IPMixConfig
from .optable import MIX_ADD, MIX_MULTIPLY, op_parameter

# --- record layout: generated from the field lists (one place) -----------------------
#: Record header fields; the k chain weights follow (``REC.w0``), then the k chains.
RECORD_HEADER = ("m", "fidx", "fy", "fx")
#: Chain header fields; its t steps follow (``CHAIN.steps``).
CHAIN_HEADER = ("kind", "depth")


@dataclass(frozen=True)
class Step:
    """One chain step, and the step layout of a record (its fields in order). Image chains
    use ``op``/``param`` (``op``: image op id); patch chains the rest (``op``: mixing op)."""

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


#: Step fields: the fields of :class:`Step`, in order.
STEP_FIELDS = tuple(f.name for f in fields(Step))
#: Field offsets as named-tuple constants (Numba folds them; plain ints for Triton):
#: ``REC.m .. REC.fx, REC.w0``; ``CHAIN.kind, CHAIN.depth, CHAIN.steps`` (from a chain's
#: start); ``STEP.op .. STEP.seed`` (from a step's start).
REC = namedtuple("RecordOffsets", (*RECORD_HEADER, "w0"))(*range(len(RECORD_HEADER) + 1))
CHAIN = namedtuple("ChainOffsets", (*CHAIN_HEADER, "steps"))(*range(len(CHAIN_HEADER) + 1))
STEP = namedtuple("StepOffsets", STEP_FIELDS)(*range(len(STEP_FIELDS)))
NF = len(STEP_FIELDS)  # fields per step
KIND_IMAGE, KIND_PATCH = 0, 1

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
    """Index of chain ``c``'s first field in a record (also compiled: :func:`chain_offset_k`)."""
    return REC.w0 + k + c * (CHAIN.steps + t * NF)


def step_start(chain_base: int, d: int) -> int:
    """Index of step ``d`` of the chain starting at ``chain_base``."""
    return chain_base + CHAIN.steps + d * NF


def step_offset(k: int, t: int, c: int, d: int) -> int:
    """Index of step ``d`` of chain ``c`` in a record."""
    return step_start(chain_offset(k, t, c), d)


def record_length(k: int, t: int) -> int:
    """Length of one record for ``k`` chains of at most ``t`` steps."""
    return chain_offset(k, t, k)


chain_offset_k = njit(inline="always")(chain_offset)
step_start_k = njit(inline="always")(step_start)


@njit(inline="always")
def record_length_k(k, t):
    """:func:`record_length` for compiled callers."""
    return chain_offset_k(k, t, k)


def field_offsets(k: int, t: int) -> dict[str, int]:
    """Every field's index in a ``(k, t)`` record by name (``"m"``, ``"w1"``, ``"c0.kind"``,
    ``"c2.s1.src_op"``, ...), e.g. for a GPU kernel's constexprs."""
    out = {name: i for i, name in enumerate(RECORD_HEADER)}
    out.update({f"w{c}": REC.w0 + c for c in range(k)})
    for c in range(k):
        out.update({f"c{c}.{n}": chain_offset(k, t, c) + i for i, n in enumerate(CHAIN_HEADER)})
        for d in range(t):
            out.update(
                {f"c{c}.s{d}.{n}": step_offset(k, t, c, d) + i for n, i in STEP._asdict().items()}
            )
    return out


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
    rec[REC.fidx] = randint(fs, 0, n_fractals - 1)
    rec[REC.fy] = randint(fs, 0, fsize - size)
    rec[REC.fx] = randint(fs, 0, fsize - size)

    st = np.empty(1, np.uint64)
    st[0] = key_state(seed, epoch, index, view)
    # ws ~ Dirichlet(1, ..., 1) as normalised Exp(1) draws; m ~ Beta(1, 1)
    total = 0.0
    for c in range(k):
        e = -np.log(1.0 - uniform(st))
        rec[REC.w0 + c] = e
        total += e
    for c in range(k):
        rec[REC.w0 + c] /= total
    rec[REC.m] = uniform(st)
    for c in range(k):
        base = chain_offset_k(k, t, c)
        kind = KIND_IMAGE if uniform(st) < 0.5 else KIND_PATCH
        depth = randint(st, dmin, t)
        rec[base + CHAIN.kind] = kind
        rec[base + CHAIN.depth] = depth
        for d in range(depth):
            s0 = step_start_k(base, d)
            if kind == KIND_IMAGE:
                op, param = _image_op(st, n_ops, severity, size)
                rec[s0 + STEP.op] = op
                rec[s0 + STEP.param] = param
                continue
            ps = icfg[ICFG_P0 + randint(st, 0, icfg[ICFG_NP] - 1)]
            mop = randint(st, 0, 3)
            rec[s0 + STEP.size] = ps
            rec[s0 + STEP.op] = mop
            src_fractal = icfg[ICFG_MIXED] == 0 or uniform(st) < 0.5
            rec[s0 + STEP.src_fractal] = 1.0 if src_fractal else 0.0
            if not src_fractal:
                op, param = _image_op(st, n_ops, severity, size)
                rec[s0 + STEP.src_op] = op
                rec[s0 + STEP.src_param] = param
            rec[s0 + STEP.left] = randint(st, 0, size - ps)
            rec[s0 + STEP.top] = randint(st, 0, size - ps)
            if uniform(st) < 0.5:
                rec[s0 + STEP.w] = ps
                rec[s0 + STEP.h] = ps
            else:
                rec[s0 + STEP.w] = randint(st, 2, ps)
                rec[s0 + STEP.h] = randint(st, 2, ps)
            if mop == MIX_ADD or mop == MIX_MULTIPLY:
                if uniform(st) < 0.5:  # get_ab
                    rec[s0 + STEP.a] = beta_a1(st, beta)
                    rec[s0 + STEP.b] = 1.0 - beta_a1(st, beta)
                else:
                    rec[s0 + STEP.a] = 1.0 + (1.0 - beta_a1(st, beta))
                    rec[s0 + STEP.b] = -(1.0 - beta_a1(st, beta))
            else:
                rec[s0 + STEP.p] = uniform(st)
                rec[s0 + STEP.seed] = float(next_u64(st) >> np.uint64(32))


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
_STEP_TYPES = {f.name: {"int": int, "float": float, "bool": bool}[f.type] for f in fields(Step)}


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
        """Read a float64 ``[record_length(k, t)]`` record (layout: the field lists above)."""
        rec = np.asarray(rec, dtype=np.float64)
        if rec.shape != (record_length(k, t),):
            raise ValueError(f"record has shape {rec.shape}, expected ({record_length(k, t)},)")
        chains = []
        for c in range(k):
            base = chain_offset(k, t, c)
            steps = []
            for d in range(int(rec[base + CHAIN.depth])):
                f = rec[step_offset(k, t, c, d) :]
                steps.append(Step(**{n: _STEP_TYPES[n](f[i]) for n, i in STEP._asdict().items()}))
            chains.append(Chain(kind=int(rec[base + CHAIN.kind]), steps=tuple(steps)))
        return cls(
            m=float(rec[REC.m]),
            ws=tuple(float(w) for w in rec[REC.w0 : REC.w0 + k]),
            fractal_index=int(rec[REC.fidx]),
            fractal_y=int(rec[REC.fy]),
            fractal_x=int(rec[REC.fx]),
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
    "CHAIN",
    "REC",
    "STEP",
    "Chain",
    "Record",
    "Step",
    "bernoulli_mask",
    "chain_offset",
    "field_offsets",
    "record_length",
    "step_offset",
    "sample_record",
    "sample_records",
]
