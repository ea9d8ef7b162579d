"""The native IPMix DALI graph (:mod:`pipelines.dali.graph`) on the CPU: the graph's op
forms against the ``ipmix_ops`` kernels, its own sampling against the distributions of
docs/algorithm.md, end-to-end runs, and the loader hook (``ipmix_impl``). Tiny batches
(64 px): ~1 min.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

pytest.importorskip("nvidia.dali")

from nvidia.dali import fn, pipeline_def  # noqa: E402

from ipmix_ops import IPMixConfig  # noqa: E402
from ipmix_ops.ops import apply_op  # noqa: E402
from ipmix_ops.optable import N_ALL_OPS, OP_NAMES, op_parameter  # noqa: E402
from pipelines.dali import graph as dali_graph  # noqa: E402

pytestmark = pytest.mark.dali

S = 64


def _src(a: np.ndarray):
    return lambda: a


def run(build, *inputs: np.ndarray, batch: int, device: str = "cpu", iters: int = 1):
    """Outputs (list of arrays, one per output, iterations concatenated) of ``build``."""

    @pipeline_def(
        batch_size=batch,
        num_threads=2,
        device_id=0 if device == "gpu" else None,
        enable_conditionals=True,
        seed=7,
    )
    def pipe():
        ins = [
            fn.external_source(source=_src(a), batch=True, layout="HWC" if a.ndim == 4 else "")
            for a in inputs
        ]
        out = build(*ins)
        return tuple(out) if isinstance(out, (tuple, list)) else out

    pp = pipe()
    pp.build()
    res = []
    for _ in range(iters):
        outs = pp.run()
        res.append([np.array((o.as_cpu() if device == "gpu" else o).as_tensor()) for o in outs])
    return [np.concatenate(r) for r in zip(*res)]


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    from helpers import PHOTO_NAMES, photo

    return np.stack([photo(n, S) for n in PHOTO_NAMES])


# ------------------------------------------------------------------- (a) op forms
LEVELS = np.array([0.1, 2.3, 5.0, 7.7, 9.99], np.float32)  # severity 10: the whole range


def test_op_param_equals_optable():
    ops = np.repeat(np.arange(N_ALL_OPS, dtype=np.int32), len(LEVELS) * 2)
    lv = np.tile(np.repeat(LEVELS, 2), N_ALL_OPS)
    neg = np.tile(np.array([0, 1], np.int32), N_ALL_OPS * len(LEVELS))
    (out,) = run(
        lambda o, l, n: dali_graph.op_param(o, l, n, S),
        ops.reshape(1, -1),
        lv.reshape(1, -1),
        neg.reshape(1, -1),
        batch=1,
    )
    ref = [op_parameter(int(o), float(lv_), bool(n), S) for o, lv_, n in zip(ops, lv, neg)]
    np.testing.assert_array_equal(out[0], np.array(ref))


@pytest.mark.parametrize("device", ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def test_image_op_forms_equal_kernels(photos, device):
    """Every op of the graph's class switch, parameters fed from outside, vs ipmix_ops."""
    from helpers import opencv_equalize

    cfg = IPMixConfig(image_size=S, all_ops=True)
    cases = []  # (op, param) pairs: 2 levels per op, both signs
    for op in range(N_ALL_OPS):
        for lv, neg in ((1.7, False), (8.3, True)):
            cases.append((op, op_parameter(op, lv, neg, S)))
    n = len(cases)
    imgs = np.stack([photos[i % 4] for i in range(n)])
    ops = np.array([c[0] for c in cases], np.int32)
    params = np.array([c[1] for c in cases], np.float64)

    def build(x, o, q):
        if device == "gpu":
            x = x.gpu()
        forms = dali_graph.op_forms(o, q, S)
        return dali_graph.image_op(x, {**forms, "op": o}, cfg)

    (out,) = run(build, imgs, ops, params, batch=n, device=device)
    for i, (op, q) in enumerate(cases):
        name = OP_NAMES[op]
        if name == "equalize":  # documented deviation: OpenCV's formula
            ref = opencv_equalize(imgs[i])
            assert np.abs(out[i].astype(int) - ref).max() <= 1
            continue
        ref = apply_op(name, imgs[i], q)
        diff = np.abs(out[i].astype(int) - ref.astype(int))
        if name in ("rotate", "shear_x", "shear_y"):
            assert (diff <= 1).mean() >= 0.99, (name, q, (diff <= 1).mean())
        else:
            assert diff.max() == 0, (name, q, diff.max(), (diff > 0).mean())


# ------------------------------------------------------------------- (b) sampling
def _chi2_uniform(values: np.ndarray, support) -> float:
    counts = np.array([(values == v).sum() for v in support])
    assert counts.sum() == values.size, "values outside the support"
    return stats.chisquare(counts).pvalue


@pytest.mark.parametrize("all_ops", [False, True])
def test_sampling_distributions(all_ops):
    cfg = IPMixConfig(image_size=S, all_ops=all_ops, beta=4.0, severity=1.0)
    names = ["m", "w", "kind", "depth", "op", "level", "neg", "size", "mop", "src_fractal",
             "left", "top", "bw", "bh", "a", "b", "p"]  # fmt: skip

    def build():
        q = dali_graph.sample_params(cfg)  # once: every output from the same draws
        return tuple(q[name] for name in names)

    outs = run(build, batch=64, iters=5)
    p = dict(zip(names, outs))
    n, k, t = 320, cfg.k, cfg.t
    assert p["w"].shape == (n, k) and p["op"].shape == (n, k, t)
    alpha = 1e-4  # per test; a fixed seed makes the run deterministic anyway
    assert _chi2_uniform(p["op"], range(cfg.n_ops)) > alpha
    assert _chi2_uniform(p["depth"], range(cfg.depth_min, t + 1)) > alpha
    assert _chi2_uniform(p["kind"], (0, 1)) > alpha
    assert _chi2_uniform(p["neg"], (0, 1)) > alpha
    assert _chi2_uniform(p["src_fractal"], (0, 1)) > alpha
    assert _chi2_uniform(p["mop"], range(4)) > alpha
    assert _chi2_uniform(p["size"], cfg.resolved_patch_sizes) > alpha
    # levels U(0.1, severity)
    assert stats.kstest(p["level"].ravel(), stats.uniform(0.1, 0.9).cdf).pvalue > alpha
    # Dirichlet(1,..,1): sums to 1, mean 1/k, var (k-1)/(k^2 (k+1)); m ~ U(0, 1)
    w = p["w"]
    np.testing.assert_allclose(w.sum(1), 1, atol=1e-5)
    assert abs(w.mean() - 1 / k) < 0.02
    assert abs(w.var() - (k - 1) / (k * k * (k + 1))) < 0.01
    assert stats.kstest(w[:, 0], stats.beta(1, k - 1).cdf).pvalue > alpha
    assert stats.kstest(p["m"].ravel(), stats.uniform(0, 1).cdf).pvalue > alpha
    # boxes inside the image, sides in [2, s], square half of the time
    size, left, top, bw, bh = (p[x] for x in ("size", "left", "top", "bw", "bh"))
    assert (left >= 0).all() and (left <= S - size).all() and (top <= S - size).all()
    assert (bw >= 2).all() and (bw <= size).all() and (bh >= 2).all() and (bh <= size).all()
    big = size == S  # left uniform on {0}: skip; the 64-px case on {0..S-s} for s = 4
    assert _chi2_uniform(left[size == 4], range(S - 3)) > alpha
    sq = (bw == size) & (bh == size)
    assert 0.45 < sq[~big].mean() < 0.6  # 0.5 + P(both scar sides = s)
    # get_ab: mixture of (Beta(b,1), Beta(1,b)) and (1 + Beta(1,b), -Beta(1,b))
    a, b, beta = p["a"].ravel(), p["b"].ravel(), cfg.beta
    first = a <= 1
    assert abs(first.mean() - 0.5) < 0.05
    assert stats.kstest(a[first], stats.beta(beta, 1).cdf).pvalue > alpha
    assert stats.kstest(b[first], stats.beta(1, beta).cdf).pvalue > alpha
    assert stats.kstest(a[~first] - 1, stats.beta(1, beta).cdf).pvalue > alpha
    assert stats.kstest(-b[~first], stats.beta(1, beta).cdf).pvalue > alpha
    mean_a = 0.5 * beta / (beta + 1) + 0.5 * (1 + 1 / (1 + beta))
    assert abs(a.mean() - mean_a) < 0.02
    assert stats.kstest(p["p"].ravel(), stats.uniform(0, 1).cdf).pvalue > alpha


def test_sampling_fractal_only_source():
    cfg = IPMixConfig.preset("cifar", image_size=32, jsd=False)
    (src,) = run(lambda: dali_graph.sample_params(cfg)["src_fractal"], batch=16)
    assert (src == 1).all()


# ------------------------------------------------------------------- (c) end to end
@pytest.fixture(scope="module")
def bank() -> np.ndarray:
    from helpers import photo

    return np.stack([photo(n, 80) for n in ("hubble_deep_field", "immunohistochemistry")])


def run_graph(photos, bank, cfg, device="cpu"):
    feed = dali_graph.FractalCrops(bank, S, batch_size=len(photos), seed=0)

    def build(x):
        f = fn.external_source(source=feed, batch=True, layout="HWC", device=device)
        x = x.gpu() if device == "gpu" else x
        return dali_graph.ipmix_graph_views(x, f, cfg, device=device)

    (out,) = run(build, photos, batch=len(photos), device=device)
    return out


@pytest.mark.parametrize("device", ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def test_graph_end_to_end(photos, bank, device):
    cfg = IPMixConfig(image_size=S, jsd=True, overflow="clip" if device == "gpu" else "wrap")
    out = run_graph(photos, bank, cfg, device)
    assert out.shape == (4, 3, S, S, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, 0], photos)  # JSD: clean view first
    assert (out[:, 1] != photos).mean() > 0.05 and (out[:, 2] != photos).mean() > 0.05
    assert (out[:, 1] != out[:, 2]).mean() > 0.05


def test_graph_depth_zero_is_identity(photos, bank):
    cfg = IPMixConfig(image_size=S, jsd=False, t=0)
    out = run_graph(photos, bank, cfg)
    assert out.shape == (4, 1, S, S, 3)
    np.testing.assert_array_equal(out[:, 0], photos)


def test_graph_rejects_wrong_device(photos):
    cfg = IPMixConfig(image_size=S, jsd=False, t=0)
    with pytest.raises(ValueError, match="device"):
        run(lambda x: dali_graph.ipmix_graph(x, x, cfg, device="tpu"), photos, batch=4)


def test_fractal_crops(bank):
    feed = dali_graph.FractalCrops(bank, S, batch_size=50, seed=1)
    crops = feed()
    assert len(crops) == 50 and all(c.shape == (S, S, 3) and c.dtype == np.uint8 for c in crops)
    with pytest.raises(ValueError):
        dali_graph.FractalCrops(bank, 100, batch_size=2)


# ------------------------------------------------------------------- loader hook
def test_resolve_ipmix_impl():
    from pipelines.dali.loader import resolve_ipmix_impl

    assert resolve_ipmix_impl("auto", "cpu") == "numba"
    assert resolve_ipmix_impl("auto", "gpu") == "graph"
    assert resolve_ipmix_impl("graph", "cpu") == "graph"
    with pytest.raises(ValueError):
        resolve_ipmix_impl("pillow", "cpu")


def test_loader_graph_impl_on_cpu(tmp_path, fractal_like_bank):
    from pipelines.contract import LoaderOptions
    from pipelines.dali.loader import make_loader
    from pipelines.datasets.demo import write_demo_imagefolder

    s = 32
    root = tmp_path / "demo"
    write_demo_imagefolder(root, size=s, train_per_class=1, val_per_class=1, progress=False)
    cfg = IPMixConfig.preset("cifar", image_size=s, jsd=True, k=1, t=1)
    bank = np.ascontiguousarray(fractal_like_bank[:, :40, :40])
    o = LoaderOptions(train=True, batch_size=5, image_size=s, seed=3, num_workers=2)
    loader = make_loader(root / "train", o, cfg, bank, device="cpu", ipmix_impl="graph")
    assert loader.ipmix_impl == "graph"
    (clean, a, b), labels = next(iter(loader))
    assert clean.shape == a.shape == (5, 3, s, s) and labels.shape == (5,)
    plain = next(iter(make_loader(root / "train", o, None, None, device="cpu")))
    assert np.array_equal(clean.numpy(), plain[0].numpy())  # the same keyed crops


def test_fractal_crops_cut_by_dali_equal_the_host_crops(bank):
    """fractal_crops (zero-copy bank views + fn.slice) gives FractalCrops' own crops."""
    host = dali_graph.FractalCrops(bank, S, batch_size=5, seed=3)
    want = np.concatenate([np.stack(host()) for _ in range(3)])
    feed = dali_graph.FractalCrops(bank, S, batch_size=5, seed=3)
    (got,) = run(lambda: dali_graph.fractal_crops(feed), batch=5, iters=3)
    assert got.shape == (15, S, S, 3) and len(np.unique(want.reshape(15, -1), axis=0)) > 1
    np.testing.assert_array_equal(got, want)
