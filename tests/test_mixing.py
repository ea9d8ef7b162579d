"""Mixing ops and to_uint8 vs float64 formulas; the Numba patch kernel vs the NumPy ops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ipmix_ops import mix_add, mix_multiply, mix_random_elems, mix_random_pixels, to_uint8
from ipmix_ops.mixing import PAIR_TABLE_MIN, PAIR_TABLE_SIZE, mix_patch_k
from ipmix_ops.optable import MIX_ADD, MIX_MULTIPLY, MIX_RANDOM_ELEMS, MIX_RANDOM_PIXELS
from ipmix_ops.sampling import bernoulli_mask, mask_table

PT = np.empty(PAIR_TABLE_SIZE, np.uint8)  # the pair-table scratch of mix_patch_k
TABLE = mask_table()


@pytest.fixture(scope="module")
def pair(photos224):
    return photos224[0], photos224[1]


def test_add_and_multiply_match_float64_formulas(pair):
    x1 = pair[0].astype(np.float64) / 255
    x2 = pair[1].astype(np.float64) / 255
    for a, b in [(0.8, 0.2), (0.95, 0.01), (1.3, -0.3), (1.99, -0.99)]:
        ref = a * x1 + b * x2 + (1 - a - b) / 2
        np.testing.assert_allclose(mix_add(x1, x2, a, b), ref, atol=2e-6)
        ref = (2 * x1) ** a * np.maximum(2 * x2, 1e-37) ** b / 2
        np.testing.assert_allclose(mix_multiply(x1, x2, a, b), ref, rtol=2e-5, atol=1e-6)


def test_selection_ops():
    rng = np.random.default_rng(0)
    x1, x2 = rng.random((5, 7, 3)), rng.random((5, 7, 3))
    m1 = rng.random((5, 7, 1)) < 0.3
    out = mix_random_pixels(x1, x2, m1)
    assert np.array_equal(out, np.where(m1, x1, x2).astype(np.float32))
    m3 = rng.random((5, 7, 3)) < 0.3
    assert np.array_equal(mix_random_elems(x1, x2, m3), np.where(m3, x1, x2).astype(np.float32))
    with pytest.raises(ValueError, match="mask must have shape"):
        mix_random_pixels(x1, x2, m3)


@pytest.mark.parametrize(
    "value",
    [
        0.0,
        0.5 / 255,
        1.0,
        1.2,
        256 / 255,
        300 / 255,
        -0.5 / 255,
        -1 / 255,
        -1.5 / 255,
        -0.7,
        -3.0,
        40.0,
        1e9,
        -1e9,
    ],
)
def test_wrap_is_trunc_toward_zero_mod_256(value):
    v = float(np.float32(255) * np.float32(value))
    v = max(min(v, 2.0**24), -(2.0**24))
    expected = math.trunc(v) % 256
    assert to_uint8(np.array([[[value]]], np.float32), "wrap")[0, 0, 0] == expected


def test_wrap_known_bytes_including_negatives():
    out = np.array([[[-1 / 255, 256 / 255, 257.9 / 255, -255.5 / 255]]], np.float32)
    assert to_uint8(out, "wrap").ravel().tolist() == [255, 0, 1, 1]


def test_clip_mode():
    out = np.array([[[-0.3, 0.0, 0.5, 1.0, 7.0, 0.999 / 255]]], np.float32)
    assert to_uint8(out, "clip").ravel().tolist() == [0, 0, 128, 255, 255, 1]
    with pytest.raises(ValueError, match="overflow"):
        to_uint8(out, "saturate")


def test_bernoulli_mask_rate_and_extremes():
    assert bernoulli_mask(7, 0.0, (64, 64, 3)).sum() == 0
    assert bernoulli_mask(7, 1.0, (64, 64, 3)).all()
    m = bernoulli_mask(7, 0.3, (200, 200, 1))
    assert abs(m.mean() - 0.3) < 0.01
    e = bernoulli_mask(123456, 0.7, (150, 90, 3))
    assert abs(e.mean() - 0.7) < 0.01
    # neighbouring pixels and rows are not correlated
    assert abs(np.corrcoef(e[:, :-1].ravel(), e[:, 1:].ravel())[0, 1]) < 0.03
    assert abs(np.corrcoef(e[:-1].ravel(), e[1:].ravel())[0, 1]) < 0.03
    assert not np.array_equal(m, bernoulli_mask(8, 0.3, (200, 200, 1)))


@pytest.mark.parametrize("mop", [MIX_ADD, MIX_MULTIPLY, MIX_RANDOM_PIXELS, MIX_RANDOM_ELEMS])
@pytest.mark.parametrize("wrap", [True, False])
def test_patch_kernel_equals_numpy_ops(pair, mop, wrap):
    """The Numba kernel (LUT form) gives the NumPy op's bytes; multiply may differ by pow
    ulps on a few pixels (tolerance: <= 0.1% of the patch)."""
    rng = np.random.default_rng(mop * 2 + wrap)
    lut1, lut2 = np.empty(256, np.float32), np.empty(256, np.float32)
    for trial in range(6):
        h, w = rng.integers(2, 64, size=2)
        top, left = rng.integers(0, 224 - 64, size=2)
        sy, sx = rng.integers(0, 224 - 64, size=2)
        a, b = (
            (rng.uniform(0.5, 1), rng.uniform(0, 0.5))
            if trial % 2
            else (1 + rng.uniform(0, 1), -rng.uniform(0, 1))
        )
        p, seed = rng.random(), int(rng.integers(2**32))
        xc = pair[0].copy()
        x1 = pair[0][top : top + h, left : left + w].astype(np.float32) / 255
        x2 = pair[1][sy : sy + h, sx : sx + w].astype(np.float32) / 255
        if mop == MIX_ADD:
            ref = mix_add(x1, x2, a, b)
        elif mop == MIX_MULTIPLY:
            ref = mix_multiply(x1, x2, a, b)
        elif mop == MIX_RANDOM_PIXELS:
            ref = mix_random_pixels(x1, x2, bernoulli_mask(seed, p, (h, w, 1)))
        else:
            ref = mix_random_elems(x1, x2, bernoulli_mask(seed, p, (h, w, 3)))
        ref = to_uint8(ref, "wrap" if wrap else "clip")
        mix_patch_k(
            xc, top, left, h, w, pair[1], sy, sx, mop, a, b, p, seed, wrap, lut1, lut2, PT, TABLE
        )
        got = xc[top : top + h, left : left + w]
        mismatch = np.mean(got != ref)
        assert mismatch <= (1e-3 if mop == MIX_MULTIPLY else 0.0), (mop, trial, mismatch)
        outside = xc.copy()
        outside[top : top + h, left : left + w] = pair[0][top : top + h, left : left + w]
        assert np.array_equal(outside, pair[0]), "kernel wrote outside its box"


def test_wrap_happens_on_real_patches(pair):
    """The authors' wrap matters: a sizeable share of add/multiply pixels overflow."""
    x1 = pair[0].astype(np.float32) / 255
    x2 = pair[1].astype(np.float32) / 255
    raw = 255 * mix_add(x1, x2, 1.8, -0.8)
    assert 0.01 < np.mean((raw < 0) | (raw >= 256)) < 0.6


def test_selection_byte_identity_in_float32():
    """Why the kernel's selection ops copy bytes: to_uint8(255 * (v / 255)) == v for every
    byte in both overflow modes (float32, as the authors' torch code computes it)."""
    v = np.arange(256, dtype=np.float32)[None, None, :]
    for mode in ("wrap", "clip"):
        assert np.array_equal(to_uint8(v / np.float32(255), mode).ravel(), np.arange(256))


@pytest.mark.parametrize("mop", [MIX_RANDOM_PIXELS, MIX_RANDOM_ELEMS])
@pytest.mark.parametrize("p", [0.0, 1e-6, 0.5, 1 - 1e-6, 1.0])
def test_selection_kernel_edge_probabilities(pair, mop, p):
    """p = 0 takes the source everywhere, p = 1 keeps the patch; thresholds near the ends
    agree with the NumPy mask."""
    h, w, top, left, sy, sx = 50, 70, 30, 40, 5, 9
    xc = pair[0].copy()
    lut1, lut2 = np.empty(256, np.float32), np.empty(256, np.float32)
    mix_patch_k(
        xc, top, left, h, w, pair[1], sy, sx, mop, 0.0, 0.0, p, 99, True, lut1, lut2, PT, TABLE
    )
    shape = (h, w, 1 if mop == MIX_RANDOM_PIXELS else 3)
    m = np.broadcast_to(bernoulli_mask(99, p, shape), (h, w, 3))
    ref = np.where(m, pair[0][top : top + h, left : left + w], pair[1][sy : sy + h, sx : sx + w])
    assert np.array_equal(xc[top : top + h, left : left + w], ref)
    if p == 0.0:
        assert np.array_equal(ref, pair[1][sy : sy + h, sx : sx + w])
    if p == 1.0:
        assert np.array_equal(xc, pair[0])


@pytest.mark.parametrize("mop", [MIX_ADD, MIX_MULTIPLY])
@pytest.mark.parametrize("wrap", [True, False])
def test_large_boxes_pair_table_is_bit_identical(pair, mop, wrap):
    """Boxes of >= PAIR_TABLE_MIN bytes go through the (patch byte, source byte) table: the
    same bytes as the per-byte LUT path (the box mixed in strips below the threshold) and
    the NumPy op's bytes (multiply: pow ulps on <= 0.1%)."""
    lut1, lut2 = np.empty(256, np.float32), np.empty(256, np.float32)
    src = np.ascontiguousarray(np.roll(pair[1], (3, 5), (0, 1)))
    for a, b, top, left, h, w in [(0.7, 0.3, 0, 0, 224, 224), (1.6, -0.7, 9, 20, 150, 201)]:
        assert 3 * h * w >= PAIR_TABLE_MIN
        whole, strips = pair[0].copy(), pair[0].copy()
        mix_patch_k(whole, top, left, h, w, src, top, left, mop, a, b, 0.5, 1, wrap, lut1, lut2,
                    PT, TABLE)  # fmt: skip
        for y in range(top, top + h, 16):
            hs = min(16, top + h - y)
            assert 3 * hs * w < PAIR_TABLE_MIN
            mix_patch_k(strips, y, left, hs, w, src, y, left, mop, a, b, 0.5, 1, wrap, lut1,
                        lut2, PT, TABLE)  # fmt: skip
        assert np.array_equal(whole, strips), (a, b)
        x1 = pair[0][top : top + h, left : left + w].astype(np.float32) / 255
        x2 = src[top : top + h, left : left + w].astype(np.float32) / 255
        op = mix_add if mop == MIX_ADD else mix_multiply
        ref = to_uint8(op(x1, x2, a, b), "wrap" if wrap else "clip")
        got = whole[top : top + h, left : left + w]
        assert np.mean(got != ref) <= (1e-3 if mop == MIX_MULTIPLY else 0.0)
        outside = whole.copy()
        outside[top : top + h, left : left + w] = pair[0][top : top + h, left : left + w]
        assert np.array_equal(outside, pair[0]), "kernel wrote outside its box"
