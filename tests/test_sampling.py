"""Parameter sampling: keyed determinism, distributions (chi-square, moments), ranges."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ipmix_ops import IPMixConfig, Record, sample_record, sample_records
from ipmix_ops.optable import N_ALL_OPS, ROTATE, SHEAR_X, op_parameter
from ipmix_ops.sampling import KIND_PATCH

P_MIN = 1e-3  # fixed seeds make these deterministic; a wrong distribution fails by far


def _records(cfg, n=6000, seed=1, views=1):
    recs = sample_records(
        cfg,
        seed=seed,
        epoch=0,
        indices=np.arange(n),
        n_fractals=7,
        fractal_size=cfg.fractal_size,
        views=views,
    )
    return [Record.parse(r, cfg.k, cfg.t) for r in recs[:, 0]], recs


@pytest.fixture(scope="module")
def imagenet_draws():
    cfg = IPMixConfig.preset("imagenet")
    recs, raw = _records(cfg)
    return cfg, recs, raw


def test_same_key_same_record_and_keys_differ():
    cfg = IPMixConfig.preset("imagenet")
    a = sample_record(cfg, (3, 1, 42, 1), n_fractals=10)
    assert np.array_equal(a, sample_record(cfg, (3, 1, 42, 1), n_fractals=10))
    for other in [(4, 1, 42, 1), (3, 2, 42, 1), (3, 1, 43, 1), (3, 1, 42, 2)]:
        assert not np.array_equal(a, sample_record(cfg, other, n_fractals=10)), other
    batch = sample_records(
        cfg, seed=3, epoch=1, indices=np.array([7, 42]), n_fractals=10, first_view=1
    )
    assert np.array_equal(batch[1, 0], a)


def test_views_share_the_fractal_but_not_the_rest():
    cfg = IPMixConfig.preset("imagenet")
    raw = sample_records(cfg, seed=0, epoch=0, indices=np.arange(50), n_fractals=1000, views=2)
    for r in raw:
        a, b = Record.parse(r[0], 3, 3), Record.parse(r[1], 3, 3)
        assert (a.fractal_index, a.fractal_y, a.fractal_x) == (
            b.fractal_index,
            b.fractal_y,
            b.fractal_x,
        )
        assert a.ws != b.ws


def test_chain_kind_depth_and_op_choice_are_uniform(imagenet_draws):
    cfg, recs, _ = imagenet_draws
    kinds = [c.kind for r in recs for c in r.chains]
    depths = [len(c.steps) for r in recs for c in r.chains]
    ops = [s.op for r in recs for c in r.chains if c.kind != KIND_PATCH for s in c.steps]
    assert stats.chisquare(np.bincount(kinds, minlength=2)).pvalue > P_MIN
    assert stats.chisquare(np.bincount(depths, minlength=4)).pvalue > P_MIN
    counts = np.bincount(ops, minlength=N_ALL_OPS)
    assert counts[10:].sum() == 0, "all_ops=False must never draw the 5 extra ops"
    assert stats.chisquare(counts[:10]).pvalue > P_MIN


def test_all_ops_draws_fifteen():
    cfg = IPMixConfig.preset("imagenet", all_ops=True)
    recs, _ = _records(cfg, n=3000)
    ops = [s.op for r in recs for c in r.chains if c.kind != KIND_PATCH for s in c.steps]
    assert stats.chisquare(np.bincount(ops, minlength=N_ALL_OPS)).pvalue > P_MIN


def test_patch_steps(imagenet_draws):
    cfg, recs, _ = imagenet_draws
    steps = [s for r in recs for c in r.chains if c.kind == KIND_PATCH for s in c.steps]
    sizes = cfg.resolved_patch_sizes
    size_counts = np.array([sum(s.size == p for s in steps) for p in sizes])
    assert stats.chisquare(size_counts).pvalue > P_MIN
    assert stats.chisquare(np.bincount([s.op for s in steps], minlength=4)).pvalue > P_MIN
    assert stats.chisquare(np.bincount([s.src_fractal for s in steps])).pvalue > P_MIN
    S = cfg.image_size
    for s in steps:
        assert 0 <= s.left <= S - s.size and 0 <= s.top <= S - s.size
        assert 2 <= s.w <= s.size and 2 <= s.h <= s.size
    # square with p = 0.5; a scar equals the square by chance with p = 1/(s-1)^2
    expected = np.mean([0.5 + 0.5 / (s.size - 1) ** 2 for s in steps])
    square = np.mean([s.w == s.h == s.size for s in steps])
    assert abs(square - expected) < 4 * np.sqrt(0.25 / len(steps))
    scar_w = [s.w for s in steps if s.size == 8 and not s.w == s.h == 8]
    assert set(scar_w) == set(range(2, 9))


def test_weight_moments(imagenet_draws):
    _, recs, _ = imagenet_draws
    ws = np.array([r.ws for r in recs])
    np.testing.assert_allclose(ws.sum(1), 1, atol=1e-12)
    n = len(ws)
    # Dirichlet(1,1,1): mean 1/3, variance 2/36
    assert np.all(np.abs(ws.mean(0) - 1 / 3) < 4 * np.sqrt(2 / 36 / n))
    assert np.all(np.abs(ws.var(0) - 2 / 36) < 0.005)
    m = np.array([r.m for r in recs])  # Beta(1, 1)
    assert abs(m.mean() - 0.5) < 0.015 and abs(m.var() - 1 / 12) < 0.005


def test_get_ab_moments(imagenet_draws):
    cfg, recs, _ = imagenet_draws
    ab = np.array(
        [
            (s.a, s.b)
            for r in recs
            for c in r.chains
            if c.kind == KIND_PATCH
            for s in c.steps
            if s.op in (0, 1)
        ]
    )
    convex = ab[ab[:, 0] < 1]  # a ~ Beta(4,1), b ~ Beta(1,4)
    extrap = ab[ab[:, 0] >= 1]  # a = 1 + Beta(1,4), b = -Beta(1,4)
    assert abs(len(convex) / len(ab) - 0.5) < 0.03
    assert abs(convex[:, 0].mean() - 0.8) < 0.01 and abs(convex[:, 0].var() - 4 / 150) < 0.004
    assert abs(convex[:, 1].mean() - 0.2) < 0.01
    assert abs(extrap[:, 0].mean() - 1.2) < 0.01 and abs(extrap[:, 1].mean() + 0.2) < 0.01
    assert np.all(extrap[:, 1] <= 0) and np.all(convex[:, 1] >= 0)


def test_depth_min_and_cifar_source():
    cfg = IPMixConfig.preset("cifar", depth_min=1)
    recs, _ = _records(cfg, n=1000)
    assert min(len(c.steps) for r in recs for c in r.chains) == 1
    steps = [s for r in recs for c in r.chains if c.kind == KIND_PATCH for s in c.steps]
    assert all(s.src_fractal for s in steps), "cifar preset: P-step source is always the fractal"


@pytest.mark.parametrize(
    "name, level, negate, expected",
    [
        ("posterize", 0.99, False, 4.0),
        ("posterize", 3.0, False, 3.0),
        ("posterize", 10.0, False, 0.0),
        ("rotate", 1.0, False, 3.0),
        ("rotate", 1.0, True, -3.0),
        ("rotate", 0.33, False, 0.0),
        ("solarize", 1.0, False, 231.0),
        ("solarize", 0.1, False, 254.0),
        ("shear_x", 1.0, True, -0.03),
        ("shear_y", 5.0, False, 0.15),
        ("translate_x", 1.0, False, 7.0),
        ("translate_y", 3.0, True, -22.0),
        ("autocontrast", 1.0, False, 9.0),
        ("color", 1.0, False, 0.28),
        ("sharpness", 10.0, False, 1.9),
        ("equalize", 5.0, True, 0.0),
        ("invert", 1.0, False, 0.0),
    ],
)
def test_parameter_map_follows_the_spec_formulas(name, level, negate, expected):
    """ip(l, M) = int(l*M/10), fp(l, M) = l*M/10 (docs/algorithm.md §3), at S = 224."""
    from ipmix_ops.optable import OP_ID

    assert op_parameter(OP_ID[name], level, negate, 224) == pytest.approx(expected, abs=1e-12)


def test_identity_parameters():
    from ipmix_ops.optable import OP_ID, is_identity

    assert is_identity(OP_ID["rotate"], 0.0) and not is_identity(OP_ID["rotate"], 1.0)
    assert is_identity(OP_ID["solarize"], 256.0) and not is_identity(OP_ID["solarize"], 255.0)
    assert is_identity(OP_ID["posterize"], 8.0) and not is_identity(OP_ID["posterize"], 7.0)
    assert not is_identity(OP_ID["equalize"], 0.0)


def test_severity_one_parameter_ranges(imagenet_draws):
    _, recs, _ = imagenet_draws
    rot = {
        s.param
        for r in recs
        for c in r.chains
        if c.kind != KIND_PATCH
        for s in c.steps
        if s.op == ROTATE
    }
    assert rot == {-2.0, -1.0, 0.0, 1.0, 2.0}
    shear = [
        s.param
        for r in recs
        for c in r.chains
        if c.kind != KIND_PATCH
        for s in c.steps
        if s.op == SHEAR_X
    ]
    assert max(np.abs(shear)) <= 0.03 and min(shear) < 0 < max(shear)


def test_fractal_choice_uniform_and_crop_in_range():
    cfg = IPMixConfig.preset("imagenet")
    raw = sample_records(cfg, seed=5, epoch=0, indices=np.arange(4000), n_fractals=8)
    recs = [Record.parse(r, 3, 3) for r in raw[:, 0]]
    assert stats.chisquare(np.bincount([r.fractal_index for r in recs], minlength=8)).pvalue > P_MIN
    assert all(0 <= r.fractal_y <= 32 and 0 <= r.fractal_x <= 32 for r in recs)
    with pytest.raises(ValueError, match="fractal bank is empty"):
        sample_records(cfg, seed=0, epoch=0, indices=np.arange(2), n_fractals=0)
