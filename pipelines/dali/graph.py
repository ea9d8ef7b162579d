"""IPMix as a native DALI operator graph: one graph-building code for ``device="cpu"`` or
``"gpu"`` (issue #6). No Numba plugin and no ``python_function``: every pixel op is a native
DALI operator (:mod:`pipelines.dali.ops`), every random choice a DALI random operator.

Usage (inside ``@pipeline_def(enable_conditionals=True)``)::

    from pipelines.dali.graph import FractalCrops, fractal_crops, ipmix_graph_views

    feed = FractalCrops(bank, cfg.image_size, batch_size=B, seed=seed)
    fractals = fractal_crops(feed, device)  # uint8 [S, S, 3] per sample, on device
    views = ipmix_graph_views(crops, fractals, cfg, device=device)  # uint8 [V, S, S, 3]

``crops``: uint8 ``S x S x 3`` (after random-resized-crop + flip; on ``device``);
``fractals``: one uint8 ``S x S x 3`` fractal crop per sample (on ``device``).
:func:`ipmix_graph` makes one IPMix view; :func:`ipmix_graph_views` stacks ``(clean, a, b)``
in JSD mode (both views share the sample's fractal, independent randomness) or ``(a,)``.
``pipelines.dali.loader.ipmix_pipeline(..., ipmix_impl="graph")`` wires it into the loader.

Fractal source. :class:`FractalCrops` is the ``fn.external_source`` callback: per sample a
uniform fractal index and a uniform ``S x S`` crop position in the ``F x F`` bank picture,
drawn on the host from a NumPy generator seeded with the loader's ``(seed, epoch, rank)``
(docs/algorithm.md §8: one fractal per sample, shared by all chains and views). Called
directly it returns the crops (cut on the calling thread); :func:`fractal_crops`, which the
loader uses, feeds zero-copy views of the bank's pictures and the crop corners instead and
cuts the same crops with ``fn.slice`` on DALI's threads, so the training thread (which runs
the external source's callback) only draws the indices.

Sampling (:func:`sample_params`, docs/algorithm.md §1, §4). All random choices of a view are
drawn up front, vectorised over chains ``k`` and steps ``t`` (hoisted out of the conditionals:
a DALI operator costs ~0.2 ms per batch however small its input):

=================  ==========================================================================
weights ``w``      Dirichlet(1, ..., 1) as normalised Exp(1) = Gamma(1) draws,
                   ``-log(1 - U)`` over their sum
``m``              Beta(1, 1) = ``U[0, 1)``
chain kind         ``fn.random.coin_flip(0.5)`` (1: patch chain)
depth              ``fn.random.choice(depth_min .. t)``
image op           ``fn.random.choice(n_ops)``; level ``0.1 + (severity - 0.1) U``; sign coin;
                   Pillow parameter by :func:`op_param` (the formulas of
                   :mod:`ipmix_ops.optable`, written in DALI arithmetic, checked against
                   ``op_parameter`` in the tests)
patch size         ``fn.random.choice(cfg.resolved_patch_sizes)``
mixing op          ``fn.random.choice(4)`` (add, multiply, random_pixels, random_elems)
P-step source      coin (``patch_source="mixed"``) between the fractal and an image op of x
box                ``left, top = min(floor(U (S - s + 1)), S - s)``; square with p = 0.5,
                   else ``w, h = 2 + min(floor(U (s - 1)), s - 2)``
``get_ab``         ``fn.random.beta``: coin ? (Beta(beta, 1), Beta(1, beta))
                   : (1 + Beta(1, beta), -Beta(1, beta))
mask probability   ``U[0, 1)``; the masks themselves are drawn in the step
                   (:func:`pipelines.dali.ops.bernoulli`)
=================  ==========================================================================

Randomness comes from DALI's generators (the pipeline seed), not from the
``(seed, epoch, index, view)`` keys of :mod:`ipmix_ops.sampling`: the graph realises the same
distributions, not the same draws (docs/algorithm.md §5 allows this for backends with their
own RNG).
Parameters can be fed from outside (``params=``, same names and shapes); the op forms are
tested against the kernels that way, but a whole-view comparison with
:func:`ipmix_ops.ipmix_apply` on a converted record is not written yet.

Graph (docs/algorithm.md §1). Per chain: ``xc = x``; for each step ``d < t``:
``if depth > d`` (omitted for ``d < depth_min``) -> ``if kind == patch``: P-step else image
op -> ``if/elif`` over the op *classes* (:data:`OP_CLASS`: one ``fn.warp_affine`` with a
per-sample Pillow matrix serves rotate/shear/translate/mirror, one bitwise expression
serves posterize/solarize/invert, then equalize; with ``all_ops`` also autocontrast and
the four enhance ops), whose per-sample inputs (:func:`op_forms`) are computed vectorised
in :func:`sample_params`. The P-step: source (fractal, or an image op of the
ORIGINAL x) -> ``fn.slice`` both images at the box -> ``if/elif`` over the 4 mixing ops
(add/multiply in float32 then :func:`pipelines.dali.ops.to_u8` by ``cfg.overflow``: the
authors' wrap or PixMix's clip; random pixels/elements as a uint8 select with a
Bernoulli mask) -> ``fn.multi_paste`` of the patch onto ``xc``. Then
``out = (1 - m) x + m sum_i w_i xc_i`` in float32, rounded half up to uint8 (docs/algorithm.md §6).

Op mapping (details and exactness in :mod:`pipelines.dali.ops`):

=============  ====================================  =========================================
op             DALI form                             vs ``ipmix_ops`` / Pillow
=============  ====================================  =========================================
equalize       ``fn.equalize``                       **deviation**: OpenCV's LUT, not Pillow's
                                                     (mean |diff| ~ 5-10 levels on photos)
posterize      ``x & mask``                          exact
rotate         ``fn.warp_affine`` (Pillow matrix)    <= 1 level on >= 99% (border band)
solarize       ``x ^ (x >= thr) * 255``              exact
shear_x/_y     ``fn.warp_affine``                    <= 1 level on >= 99%
translate_x/y  ``fn.warp_affine`` (integer shift)     exact
mirror         ``fn.warp_affine`` (-1, 0, S, ...)    exact
invert         ``x ^ 255``                           exact
autocontrast   binary search on counts + LUT math    exact
color          grey + float32 blend                  exact
contrast       mean grey + float32 blend             exact
brightness     float32 scale                         exact
sharpness      ``fn.filter`` SMOOTH + blend          exact
add/multiply   float32 arithmetic + wrap/clip        exact (multiply: rare pow ulps)
random_pix/el  uint8 select, ``fn.random.uniform``   exact for a given mask
                mask                                 (masks: own RNG, same distribution)
=============  ====================================  =========================================

Cost: the graph has several hundred operators per view (each chain step carries an image-op
switch and a P-step with its own source-op switch); on a CPU it is far slower (~50 img/s
on 2 threads, 224 px, one view, vs ~3k img/s) than the Numba plugin
(:mod:`pipelines.dali.numba_plugin`), which stays the CPU default. It is meant for the GPU, where
it has not been measured yet (no GPU on the development machines).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from nvidia.dali import fn, math, types

from ipmix_ops import IPMixConfig
from ipmix_ops._ops_geometric import pillow_rotation
from ipmix_ops._optable_gen import magnitude_constants
from ipmix_ops.optable import (
    BRIGHTNESS,
    COLOR,
    CONTRAST,
    EQUALIZE,
    MIX_ADD,
    MIX_MULTIPLY,
    MIX_RANDOM_PIXELS,
    OP_ID,
    OPS,
    ROTATE,
)

from . import ops

#: Names of the per-sample parameter nodes (see :func:`sample_params`): ``[k]`` per chain,
#: ``[k, t]`` per step, ``m`` a scalar.
CHAIN_PARAMS = ("w", "kind", "depth")  # m: scalar
STEP_PARAMS = (
    "op", "level", "neg", "size", "mop", "src_fractal", "src_op", "src_level", "src_neg",
    "left", "top", "bw", "bh", "a", "b", "p",
)  # fmt: skip
INT_PARAMS = frozenset(
    {"kind", "depth", "op", "neg", "size", "mop", "src_fractal", "src_op", "src_neg", "left",
     "top", "bw", "bh"}
)  # fmt: skip


# ---------------------------------------------------------------------------- sampling
def _u(shape: list[int]) -> Any:
    return fn.random.uniform(range=[0.0, 1.0], shape=shape)


def _randint(u: Any, lo: Any, hi: Any) -> Any:
    """Uniform integer in ``[lo, hi]`` (int32) from ``u ~ U[0, 1)`` (float32)."""
    n = fn.cast(hi - lo, dtype=types.FLOAT)
    return lo + fn.cast(math.min(math.floor(u * (n + 1.0)), n), dtype=types.INT32)


def sample_params(cfg: IPMixConfig) -> dict[str, Any]:
    """Every random choice of one IPMix view as per-sample CPU nodes (module docstring):
    ``m`` float32 scalar; ``w`` float32 ``[k]``, ``kind``/``depth`` int32 ``[k]``; per step
    (``[k, t]``): ``op``, ``level``, ``neg``, ``size``, ``mop``, ``src_fractal``, ``src_op``,
    ``src_level``, ``src_neg``, ``left``, ``top``, ``bw``, ``bh`` (int32 but the levels) and
    ``a``, ``b``, ``p`` (float32). With ``t = 0`` there are no step parameters."""
    k, t, s = cfg.k, cfg.t, cfg.image_size
    e = -math.log(1.0 - _u([k]))
    p: dict[str, Any] = {"m": fn.random.uniform(range=[0.0, 1.0]), "w": e / fn.reductions.sum(e)}
    p["kind"] = fn.cast(fn.random.coin_flip(probability=0.5, shape=[k]), dtype=types.INT32)
    p["depth"] = fn.random.choice(list(range(cfg.depth_min, t + 1)), shape=[k])
    if t == 0:
        return p
    kt = [k, t]
    sev = float(cfg.severity)
    for pre in ("", "src_"):
        p[pre + "op"] = fn.random.choice(cfg.n_ops, shape=kt)
        p[pre + "level"] = 0.1 + (sev - 0.1) * _u(kt)
        p[pre + "neg"] = fn.cast(fn.random.coin_flip(probability=0.5, shape=kt), dtype=types.INT32)
    size = fn.random.choice(list(cfg.resolved_patch_sizes), shape=kt)
    p["size"] = size
    p["mop"] = fn.random.choice(4, shape=kt)
    if cfg.patch_source == "mixed":
        src = fn.random.coin_flip(probability=0.5, shape=kt)
    else:
        src = fn.random.coin_flip(probability=1.0, shape=kt)
    p["src_fractal"] = fn.cast(src, dtype=types.INT32)
    p["left"] = _randint(_u(kt), 0, s - size)
    p["top"] = _randint(_u(kt), 0, s - size)
    square = fn.cast(fn.random.coin_flip(probability=0.5, shape=kt), dtype=types.INT32)
    p["bw"] = square * size + (1 - square) * _randint(_u(kt), 2, size)
    p["bh"] = square * size + (1 - square) * _randint(_u(kt), 2, size)
    beta = float(cfg.beta)
    first = fn.cast(fn.random.coin_flip(probability=0.5, shape=kt), dtype=types.FLOAT)
    ba1 = fn.random.beta(alpha=beta, beta=1.0, shape=kt)
    b1 = [fn.random.beta(alpha=1.0, beta=beta, shape=kt) for _ in range(3)]
    p["a"] = first * ba1 + (1.0 - first) * (1.0 + b1[1])
    p["b"] = first * b1[0] - (1.0 - first) * b1[2]
    p["p"] = _u(kt)
    for pre in ("", "src_"):
        param = op_param(p[pre + "op"], p[pre + "level"], p[pre + "neg"], s)
        p.update({pre + n: v for n, v in op_forms(p[pre + "op"], param, s).items()})
    return p


# op classes of the image-op switch: ops of one class share one DALI form (from the op
# table: an affine form -> one warp, a point form -> one bitwise expression)
CLS_EQUALIZE, CLS_AFFINE, CLS_POINT, CLS_AUTOCONTRAST, CLS_ENHANCE = range(5)
OP_CLASS = {
    i: CLS_AFFINE
    if op.affine
    else CLS_POINT
    if op.point
    else {EQUALIZE: CLS_EQUALIZE, OP_ID["autocontrast"]: CLS_AUTOCONTRAST}.get(i, CLS_ENHANCE)
    for i, op in enumerate(OPS)
}


def _table(op: Any, values: dict[int, int]) -> Any:
    """int32 per-op constants (a static ``fn.lookup_table``; missing ids give 0)."""
    keys = sorted(values)
    return fn.lookup_table(
        op, keys=keys, values=[float(values[i]) for i in keys], dtype=types.INT32
    )


def op_param(op: Any, level: Any, neg: Any, size: int) -> Any:
    """Pillow parameter (float64) of image op ids ``op`` (int32 node, any shape) for
    ``level`` and sign flags ``neg``: the table's ``OpDef.magnitude``
    (``c0 + c1 * sign * v`` with ``v = int(l * M / 10)`` or ``l * M / 10``) with per-op
    constants from static lookups, evaluated in float64 in the same order as the compiled
    :func:`ipmix_ops.optable.op_parameter` (exact)."""
    mags = {i: d.magnitude for i, d in enumerate(OPS) if d.magnitude is not None}
    consts = {i: magnitude_constants(m, size) for i, m in mags.items()}
    m30 = {i: c[0] for i, c in consts.items()}
    c0_10 = {i: c[1] for i, c in consts.items() if c[1]}
    c1 = {i: c[2] for i, c in consts.items()}
    is_int = {i: 1 for i, m in mags.items() if m.integer}
    signed = {i: 1 for i, m in mags.items() if m.signed}

    def f64(v: Any) -> Any:
        return fn.cast(v, dtype=types.FLOAT64)

    v = fn.cast(level, dtype=types.FLOAT64) * (f64(_table(op, m30)) / 30.0) / 10.0
    iv = f64(_table(op, is_int))
    v = iv * math.floor(v) + (1.0 - iv) * v
    sign = 1.0 - 2.0 * f64(_table(op, signed)) * f64(neg)
    return f64(_table(op, c0_10)) / 10.0 + f64(_table(op, c1)) * (sign * v)


def _select(is_op: dict[int, Any], form: dict[int, tuple], identity: tuple) -> list[Any]:
    """Entry-wise ``identity + sum_op is_op * (form_op - identity)`` (one-hot ``is_op``)."""
    out = []
    for j, e in enumerate(identity):
        acc: Any = e
        for i, f in form.items():
            if not (isinstance(f[j], float) and f[j] == e):
                acc = acc + is_op[i] * (f[j] - e)
        out.append(acc)
    return out


def op_forms(op: Any, param: Any, size: int) -> dict[str, Any]:
    """The per-step inputs of :func:`image_op` for op ids ``op`` with Pillow parameters
    ``param`` (both any shape ``[...]``): ``cls`` int32 (``OP_CLASS``), ``mat`` float32
    ``[..., 2, 3]`` (the table's ``OpDef.affine``, Pillow's numbers; identity for other
    ops), ``pmask`` uint8 and ``thr`` int32 (the table's ``OpDef.point``: the point ops as
    ``(x & pmask) ^ (x >= thr) * 255``), and ``param`` itself."""

    def is_(i: int, o: Any) -> Any:
        return fn.cast(o == i, dtype=types.FLOAT64)

    shp = fn.cat(param.shape(), types.Constant(np.array([2, 3], np.int64), dtype=types.INT64))
    o1, p1 = fn.reshape(op, shape=[-1]), fn.reshape(param, shape=[-1])  # stack on axis 1
    affine = {}
    for i, d in enumerate(OPS):
        if i == ROTATE:  # DALI's cos/sin (Pillow's are rounded to 15 decimals)
            ang = p1 * (-np.pi / 180.0)
            affine[i] = pillow_rotation(math.cos(ang), math.sin(ang), size / 2.0, size / 2.0)
        elif d.affine is not None:
            affine[i] = tuple(
                float(v) if isinstance(v, int) else v for v in d.affine(p1, size, size)
            )
    is_aff = {i: is_(i, o1) for i in affine}
    mat = fn.stack(*_select(is_aff, affine, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)), axis=1)
    mat = fn.reshape(fn.cast(mat, dtype=types.FLOAT), shape=shp)
    point = {i: d.point(param) for i, d in enumerate(OPS) if d.point is not None}
    pmask, thr = _select({i: is_(i, op) for i in point}, point, (255.0, 256.0))
    return {
        "cls": _table(op, OP_CLASS),
        "mat": mat,
        "pmask": fn.cast(pmask, dtype=types.UINT8),
        "thr": fn.cast(thr, dtype=types.INT32),
        "param": param,
    }


def image_op(x: Any, q: dict[str, Any], cfg: IPMixConfig) -> Any:
    """``random_image_op`` on ``x`` with one step's :func:`op_forms` values ``q`` (plus
    ``op``): a switch over the op classes (3 with the default ops, 5 with ``all_ops``)."""
    if cfg.all_ops:
        return _image_op_all(x, q, cfg)
    cls = q["cls"]
    if cls == CLS_AFFINE:
        y = ops.warp(x, q["mat"], size=cfg.image_size)
    elif cls == CLS_POINT:
        y = ops.point(x, q["pmask"], q["thr"])
    else:
        y = ops.equalize(x)
    return y


def _image_op_all(x: Any, q: dict[str, Any], cfg: IPMixConfig) -> Any:
    s = cfg.image_size
    cls = q["cls"]
    if cls == CLS_AFFINE:
        y = ops.warp(x, q["mat"], size=s)
    elif cls == CLS_POINT:
        y = ops.point(x, q["pmask"], q["thr"])
    elif cls == CLS_EQUALIZE:
        y = ops.equalize(x)
    elif cls == CLS_AUTOCONTRAST:
        y = ops.autocontrast(x, q["param"], size=s)
    else:
        y = _enhance(x, q["op"], q["param"], s)
    return y


def _enhance(x: Any, op: Any, f: Any, size: int) -> Any:
    if op == COLOR:  # the enhance ops' DALI forms (pipelines.dali.ops)
        y = ops.color(x, f)
    elif op == CONTRAST:
        y = ops.contrast(x, f)
    elif op == BRIGHTNESS:
        y = ops.brightness(x, f)
    else:
        y = ops.sharpness(x, f, size=size)
    return y


def _step_q(p: dict[str, Any], pre: str, c: int, d: int) -> dict[str, Any]:
    return {name: p[pre + name][c, d] for name in ("op", "cls", "mat", "pmask", "thr", "param")}


def patch_step(xc: Any, x: Any, f: Any, p: dict[str, Any], c: int, d: int, cfg: IPMixConfig) -> Any:
    """One P-step on the chain image ``xc`` (docs/algorithm.md §1) with step ``(c, d)`` of ``p``."""
    s = cfg.image_size
    if cfg.patch_source == "mixed":
        if p["src_fractal"][c, d] == 1:
            src = f
        else:
            src = image_op(x, _step_q(p, "src_", c, d), cfg)
    else:
        src = f
    top, left, bh, bw = (p[name][c, d] for name in ("top", "left", "bh", "bw"))
    a, b, prob, mop = (p[name][c, d] for name in ("a", "b", "p", "mop"))
    anchor = fn.cast(fn.stack(top, left), dtype=types.FLOAT)
    shape = fn.cast(fn.stack(bh, bw), dtype=types.FLOAT)
    box = dict(axes=[0, 1], normalized_anchor=False, normalized_shape=False)
    p1 = fn.slice(xc, anchor, shape, **box)
    p2 = fn.slice(src, anchor, shape, **box)
    if mop == MIX_ADD:
        mixed = ops.to_u8(ops.mix_add(p1, p2, a, b), cfg.overflow)
    elif mop == MIX_MULTIPLY:
        mixed = ops.to_u8(ops.mix_multiply(p1, p2, a, b), cfg.overflow)
    elif mop == MIX_RANDOM_PIXELS:
        mixed = ops.mix_select(p1, p2, ops.bernoulli(p1, prob, channels=1))
    else:
        mixed = ops.mix_select(p1, p2, ops.bernoulli(p1, prob, channels=3))
    zero = top * 0
    full = zero + s
    return fn.multi_paste(
        xc,
        mixed,
        in_anchors=fn.stack(fn.stack(zero, zero), fn.stack(zero, zero)),
        shapes=fn.stack(fn.stack(full, full), fn.stack(bh, bw)),
        out_anchors=fn.stack(fn.stack(zero, zero), fn.stack(top, left)),
        output_size=[s, s],
    )


def _chain_step(
    xc: Any, x: Any, f: Any, patch_chain: Any, p: dict[str, Any], c: int, d: int, cfg: IPMixConfig
) -> Any:
    if patch_chain:
        y = patch_step(xc, x, f, p, c, d, cfg)
    else:
        y = image_op(xc, _step_q(p, "", c, d), cfg)
    return y


def ipmix_graph(
    images: Any,
    fractals: Any,
    cfg: IPMixConfig,
    *,
    device: str = "cpu",
    params: dict[str, Any] | None = None,
) -> Any:
    """One IPMix view (uint8 ``S x S x 3`` node) of ``images`` mixed with ``fractals``
    (uint8 ``S x S x 3`` nodes on ``device``). ``params``: the nodes of
    :func:`sample_params` (default: drawn here), e.g. fed from outside in tests. Must be
    called inside a ``pipeline_def(enable_conditionals=True)``."""
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
    for node, what in ((images, "images"), (fractals, "fractals")):
        if getattr(node, "device", device) != device:
            raise ValueError(f"{what} are on {node.device!r}, the graph on {device!r}")
    p = sample_params(cfg) if params is None else params
    acc = None
    for c in range(cfg.k):
        xc = images
        patch_chain = p["kind"][c] == 1
        depth = p["depth"][c]
        for d in range(cfg.t):
            if d < cfg.depth_min:
                xc = _chain_step(xc, images, fractals, patch_chain, p, c, d, cfg)
            elif depth > d:
                xc = _chain_step(xc, images, fractals, patch_chain, p, c, d, cfg)
        term = ops._on(p["w"][c], images) * fn.cast(xc, dtype=types.FLOAT)
        acc = term if acc is None else acc + term
    m = ops._on(fn.cast(p["m"], dtype=types.FLOAT), images)
    out = (1.0 - m) * fn.cast(images, dtype=types.FLOAT) + m * acc
    return fn.cast(math.floor(math.clamp(out, 0.0, 255.0) + 0.5), dtype=types.UINT8)


def ipmix_graph_views(
    images: Any, fractals: Any, cfg: IPMixConfig, *, device: str = "cpu", views: int | None = None
) -> Any:
    """uint8 ``[V, S, S, 3]`` per sample like :func:`pipelines.dali.numba_plugin.ipmix_views`: JSD
    mode ``(clean, ipmix_a, ipmix_b)`` (same fractal, independent draws), else
    ``views`` IPMix views (default ``cfg.views``)."""
    views = cfg.views if views is None else int(views)
    clean_first = cfg.jsd and views > 1
    out = [images] if clean_first else []
    out += [ipmix_graph(images, fractals, cfg, device=device) for _ in range(views - clean_first)]
    return fn.stack(*out)


_KEEP_BATCHES = 8  # > DALI's prefetch depth: anchors handed out with no_copy stay alive


class FractalCrops:
    """``fn.external_source`` batch callback: per sample a uniform fractal of ``bank``
    (uint8 ``[N, F, F, 3]``, ``F >= size``) and a uniform ``size x size`` crop of it, from
    ``np.random.default_rng(seed)``. Returns a list of ``batch_size`` C-contiguous arrays."""

    def __init__(self, bank: np.ndarray, size: int, *, batch_size: int, seed: Any = 0) -> None:
        bank = np.asarray(bank)
        if bank.dtype != np.uint8 or bank.ndim != 4 or bank.shape[-1] != 3 or len(bank) == 0:
            raise ValueError(f"bank must be uint8 [N, F, F, 3] with N >= 1, got {bank.shape}")
        if min(bank.shape[1:3]) < size:
            raise ValueError(f"fractal side {bank.shape[1:3]} < image size {size}")
        self.bank, self.size, self.batch_size = (
            np.ascontiguousarray(bank),
            int(size),
            int(batch_size),
        )
        self.rng = np.random.default_rng(seed)
        self._alive: deque[list[np.ndarray]] = deque(maxlen=_KEEP_BATCHES)

    def _draws(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, fh, fw = self.bank.shape[:3]
        s, b = self.size, self.batch_size
        idx = self.rng.integers(0, n, b)
        ys = self.rng.integers(0, fh - s + 1, b)
        xs = self.rng.integers(0, fw - s + 1, b)
        return idx, ys, xs

    def __call__(self) -> list[np.ndarray]:
        s = self.size
        return [
            np.ascontiguousarray(self.bank[i, y : y + s, x : x + s])
            for i, y, x in zip(*self._draws())
        ]

    def tiles(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The same draws as ``__call__`` as ``(pictures, anchors)``: views of the bank's
        whole uint8 ``[F, F, 3]`` pictures (no copy) and int32 ``[2]`` ``(y, x)`` crop corners,
        for :func:`fractal_crops` (the crop is cut by DALI, not on the feeding thread)."""
        idx, ys, xs = self._draws()
        anchors = [np.array([y, x], np.int32) for y, x in zip(ys, xs)]
        self._alive.append(anchors)  # no_copy: DALI reads them after this call returns
        return [self.bank[i] for i in idx], anchors


def fractal_crops(feed: FractalCrops, device: str = "cpu") -> Any:
    """DALI node: one uint8 ``S x S x 3`` fractal crop per sample on ``device``, the crops of
    ``feed`` (its ``__call__``'s pixels) cut by ``fn.slice`` on DALI's CPU threads from
    zero-copy views of the bank, so the feeding (training) thread only draws the indices."""
    pictures, anchors = fn.external_source(
        source=feed.tiles, num_outputs=2, batch=True, no_copy=True, layout=["HWC", ""]
    )
    s = feed.size
    crops = fn.slice(
        pictures,
        anchors,
        np.array([s, s], np.int32),
        axes=[0, 1],
        normalized_anchor=False,
        normalized_shape=False,
        out_of_bounds_policy="error",
    )
    return crops.gpu() if device == "gpu" else crops


__all__ = [
    "CHAIN_PARAMS",
    "FractalCrops",
    "fractal_crops",
    "INT_PARAMS",
    "STEP_PARAMS",
    "image_op",
    "ipmix_graph",
    "ipmix_graph_views",
    "op_param",
    "patch_step",
    "sample_params",
]
