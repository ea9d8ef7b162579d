"""Fractal renderers and samplers: determinism, ranges, agreement with NumPy, variety."""

from __future__ import annotations

import itertools
import json
import math
import platform

import numpy as np
import pytest
from numba import njit

import fractal_store as fs
from fractal_store import escape_time
from fractal_store.escape_time import ESCAPE_FAMILIES, TRAP_SHAPES, render_escape
from fractal_store.ifs import render_ifs
from fractal_store.palettes import palette_lut, sample_palette
from fractal_store.reference import render_escape_numpy
from fractal_store.sampling import image_stats, rejection_reason, sample_ifs_params

SIZE = 48


def _first_of(family: str, seed: int = 0, size: int = SIZE, n: int = 1):
    """The first ``n`` draws of ``family`` from set ``seed`` (all families in rotation)."""
    k = fs.FAMILIES.index(family)
    return [fs.draw(seed, k + j * len(fs.FAMILIES), size) for j in range(n)]


@pytest.fixture(scope="module")
def sample_set() -> dict[str, list]:
    """Four accepted draws per family: {family: [(img, record, reasons), ...]}."""
    return {f: _first_of(f, seed=11, n=4) for f in fs.FAMILIES}


def test_families_and_traps_are_declared():
    assert set(fs.FAMILIES) == {*ESCAPE_FAMILIES, "ifs"}
    assert {"mandelbrot", "julia"} <= set(ESCAPE_FAMILIES) and len(ESCAPE_FAMILIES) >= 3
    assert len(TRAP_SHAPES) >= 5


@pytest.mark.parametrize("family", fs.FAMILIES)
def test_render_dtype_shape_and_parallel_equals_serial(family, sample_set):
    img, rec, _ = sample_set[family][0]
    assert img.dtype == np.uint8 and img.shape == (SIZE, SIZE, 3) and img.flags.c_contiguous
    assert rec["family"] == family
    par = fs.render(rec, 40, parallel=True)
    ser = fs.render(rec, 40, parallel=False)
    assert par.dtype == np.uint8 and par.shape == (40, 40, 3)
    np.testing.assert_array_equal(par, ser)


def test_draw_is_deterministic_and_index_keyed():
    a_img, a_rec, a_rej = fs.draw(5, 3, SIZE)
    b_img, b_rec, b_rej = fs.draw(5, 3, SIZE)
    np.testing.assert_array_equal(a_img, b_img)
    assert a_rec == b_rec and a_rej == b_rej
    c_img, _, _ = fs.draw(6, 3, SIZE)  # other seed
    d_img, _, _ = fs.draw(5, 8, SIZE)  # same family, other index
    assert np.abs(a_img.astype(int) - c_img).mean() > 5
    assert np.abs(a_img.astype(int) - d_img).mean() > 5


@pytest.mark.parametrize("family", fs.FAMILIES)
def test_record_survives_json_and_re_renders(family, sample_set):
    img, rec, _ = sample_set[family][1]
    again = json.loads(json.dumps(rec))
    np.testing.assert_array_equal(fs.render(again, SIZE), img)


@pytest.mark.parametrize("family", ESCAPE_FAMILIES)
def test_numba_matches_vectorised_numpy(family, sample_set):
    for _, rec, _ in sample_set[family][:2]:
        got = render_escape(rec, 32)
        want = render_escape_numpy(rec, 32)
        same = np.all(got == want, axis=-1).mean()
        assert same >= 0.999, f"{family}: only {same:.4f} of pixels agree"
        assert np.abs(got.astype(int) - want).max() <= 255  # sanity: same dtype/range


@pytest.mark.parametrize("julia, power", [(False, 3), (True, 3), (False, 7), (True, 7)])
def test_multibrot_paths_match_numpy_for_all_traps(julia, power, sample_set):
    """Multibrot orbits run in lanes (powers 3-6) or four at a time (2, 7, 8); check every
    trap, both forms, 1x1 and 2x2 samples, and a width that is not a multiple of four
    (padded last group of the four-at-a-time path)."""
    _, rec, _ = sample_set["multibrot"][0]
    rec = json.loads(json.dumps(rec))
    rec.update(julia=julia, c=[-0.62, 0.43], center=[0.05, -0.1], scale=1.3, power=power)
    rec["max_iter"] = 40
    for shape, aa in itertools.product(TRAP_SHAPES, (1, 2)):
        rec["trap"]["shape"] = shape
        rec["antialias"] = aa
        got, want = render_escape(rec, 23), render_escape_numpy(rec, 23)
        same = np.all(got == want, axis=-1).mean()
        assert same >= 0.995 and np.abs(got.astype(int) - want).max() <= 1, (shape, aa, same)


def test_every_trap_shape_renders_differently(sample_set):
    _, rec, _ = sample_set["mandelbrot"][0]
    rec = json.loads(json.dumps(rec))
    rec.update(center=[-0.6, 0.0], scale=1.4, rotation=0.0, max_iter=60)
    rec["trap"].update(center=[0.1, 0.2], angle=0.5, radius=0.5)
    rec["colour"].update(falloff=4.0, freq=1.0, escape_mix=0.0, glow=0.0)
    imgs = []
    for shape in TRAP_SHAPES:
        rec["trap"]["shape"] = shape
        imgs.append(render_escape(rec, 32).astype(int))
    for (s1, a), (s2, b) in itertools.combinations(zip(TRAP_SHAPES, imgs), 2):
        assert np.abs(a - b).mean() > 3.0, f"{s1} and {s2} look the same"


@pytest.mark.parametrize("family", fs.FAMILIES)
def test_each_family_is_varied_and_colourful(family, sample_set):
    imgs = [img for img, _, _ in sample_set[family]]
    for img in imgs:
        st = image_stats(img)
        assert st["colour_std"] > 15, st
        assert st["colourfulness"] > 10, st
        assert st["detail"] > 0.03, st
    for a, b in itertools.combinations(imgs, 2):
        assert np.abs(a.astype(int) - b).mean() > 15, "two draws look alike"


def test_rejection_catches_degenerate_images():
    rng = np.random.default_rng(0)
    flat = np.full((64, 64, 3), (200, 40, 90), np.uint8)
    assert rejection_reason(image_stats(flat)) == "uniform"
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert rejection_reason(image_stats(noise)) == "noise"
    dot = np.zeros((64, 64, 3), np.uint8)
    dot[30:34, 30:34] = 255
    assert rejection_reason(image_stats(dot)) in ("uniform", "empty")
    half = np.zeros((64, 64, 3), np.uint8)
    half[:, 32:] = (30, 220, 120)
    assert rejection_reason(image_stats(half)) == "empty"
    grey = np.repeat(np.tile(np.linspace(0, 255, 64), (64, 1))[..., None], 3, axis=2)
    grey = (grey + 40 * np.sin(np.arange(64) / 3)[:, None, None]).clip(0, 255).astype(np.uint8)
    assert rejection_reason(image_stats(grey)) == "grey"


def test_ifs_maps_are_contractive():
    rng = np.random.default_rng(1)
    for _ in range(20):
        rec = sample_ifs_params(rng)
        assert 2 <= len(rec["maps"]) <= 4
        for a, b, c, d, _, _ in rec["maps"]:
            assert np.linalg.svd(np.array([[a, b], [c, d]]), compute_uv=False).max() < 1.0
        assert rec["half"] > 0


def test_ifs_density_scales_with_size(sample_set):
    _, rec, _ = sample_set["ifs"][0]
    small = render_ifs(rec, 32).astype(float).mean(axis=(0, 1))
    large = render_ifs(rec, 64).astype(float).mean(axis=(0, 1))
    assert np.abs(small - large).max() < 25  # same look at another size


def test_palettes_are_periodic_tables_in_unit_range():
    rng = np.random.default_rng(2)
    for _ in range(10):
        pal = sample_palette(rng)
        lut = palette_lut(pal)
        assert lut.dtype == np.float32 and lut.shape == (1024, 3)
        assert lut.min() >= 0 and lut.max() <= 1
        assert np.abs(lut[0] - lut[-1]).max() < 0.05  # wraps around smoothly
    with pytest.raises(ValueError, match="unknown palette kind"):
        palette_lut({"kind": "plaid"})


def test_bad_records_and_sizes_raise():
    _, rec, _ = fs.draw(0, 0, 16)
    with pytest.raises(ValueError, match="unknown fractal family"):
        fs.sample_params("sierpinski", np.random.default_rng(0))
    with pytest.raises(ValueError, match="size"):
        fs.render(rec, 0)
    with pytest.raises(ValueError, match="antialias"):
        fs.render({**rec, "antialias": 9}, 16)


@pytest.mark.parametrize("kind, power", [(0, 2), (1, 2), (2, 3), (2, 4), (2, 5), (2, 6)])
def test_lane_orbits_are_bit_identical_to_the_one_orbit_loop(kind, power):
    """The vectorised lane kernels against ``_orbit``, exactly: z^2 + c, burning ship and
    every multibrot power with a lane kernel; every trap, both forms, orbit lengths that
    end inside and between blocks, rows shorter and longer than the 16 lanes, points inside
    the set, escaping at once, on the boundary, and so far out that z overflows."""
    rng = np.random.default_rng(7)
    for ns, max_iter, julia in itertools.product((1, 15, 17, 203), (0, 1, 2, 3, 5, 37), (0, 1)):
        pts = rng.uniform(-2.2, 2.2, (2, ns))
        pts[:, : ns // 3] *= 0.2  # some orbits that never escape
        if ns > 10:  # far-out starts, which overflow within a block of lane steps
            pts[:, -2:] = [[1e40, 3e200], [-0.5, 2.0]]
        s = np.zeros((7, ns))
        if julia:
            s[0], s[1], s[2], s[3] = pts[0], pts[1], -0.75, 0.11
        else:
            s[2], s[3] = pts
        for shape in range(len(TRAP_SHAPES)):
            trap = (0.1, -0.2, math.cos(0.7), math.sin(0.7), 0.4)
            got = s.copy()
            escape_time._lane_orbits(got, ns, kind, power, max_iter, shape, *trap)
            for j in range(ns):
                n, _, dmin, r2 = escape_time._orbit(*s[:4, j], kind, power, max_iter, shape, *trap)
                np.testing.assert_array_equal(  # NaN == NaN here: huge starts overflow
                    got[[5, 4, 6], j], [n, dmin, r2], err_msg=str((ns, max_iter, shape, j))
                )


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 assembly")
def test_lane_kernels_stay_vectorised():
    """The lane kernels are only fast as packed SIMD code without masked loads/stores
    (a ternary on the live flag, for one, turns every access into ``vmaskmovpd``)."""
    et = escape_time
    lanes = njit(nogil=True)(et._lane_orbits.py_func)  # not cached: cached code cannot be inspected

    @njit(nogil=True)
    def circle_z4(st, fmax, tx, ty, tcos, tsin, trad):
        et._lane_steps(
            st, 2, 4, 3, et.POW_LANE_STEPS, et.POW_LANE_CLAMP, fmax, tx, ty, tcos, tsin, trad
        )

    trap = (0.1, -0.2, 1.0, 0.0, 0.4)
    lanes(np.zeros((7, 20)), 20, 0, 2, 9, 5, *trap)
    circle_z4(np.zeros(8 * et.LANES), 0.5, *trap)
    for fn in (lanes, circle_z4):
        asm = "\n".join(fn.inspect_asm().values())
        assert "mulpd" in asm, f"{fn.__name__}: no packed double multiplies"
        assert "maskmov" not in asm, f"{fn.__name__}: masked loads or stores"
