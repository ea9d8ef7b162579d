"""tools/robustness_experiment.py: settings, the goal check, the reports and the README
section (fast, on constructed results); the whole ``--quick`` run end to end (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ipmix_train.robustness import (
    BEGIN,
    END,
    Spec,
    _run_settings,
    _spec_dict,
    goal,
    markdown,
    summarize,
    update_readme,
)

ROOT = Path(__file__).resolve().parents[1]


def _run(method: str, seed: int, clean: float, corrupt: float) -> dict:
    per = {c: {s: {"top1_err_pct": corrupt + s - 3} for s in range(1, 6)} for c in ("fog", "snow")}
    return {
        "key": {"method": method, "seed": seed},
        "clean": {"top1_err_pct": clean, "top5_err_pct": 0.0, "calib_rms_pct": 2.0, "n": 100},
        "mean_corruption_err_pct": corrupt,
        "corrupted_calib_rms_pct": 5.0,
        "corrupted": per,
        "train_seconds": 10.0,
    }


def _result(ipmix_corrupt: float, ipmix_clean: float) -> dict:
    runs = {
        "vanilla": [_run("vanilla", 0, 10.0, 60.0), _run("vanilla", 1, 12.0, 58.0)],
        "ipmix": [_run("ipmix", 0, ipmix_clean, ipmix_corrupt)] * 2,
    }
    summary = summarize(runs)
    spec = {
        "arch": "cifar_resnet8",
        "train_per_class": 10,
        "epochs": 1,
        "batch_size": 8,
        "seeds": [0, 1],
    }
    return {
        "summary": summary,
        "goal": goal(summary),
        "spec": spec,
        "val_images": 100,
        "test_images": 20,
        "cpu_cores": 2,
        "seconds": 60.0,
        "torch": "x",
        "python": "y",
        "runs": runs,
    }


def test_summary_is_mean_and_std_over_seeds() -> None:
    s = _result(30.0, 11.0)["summary"]
    assert s["vanilla"]["clean_err_pct"] == pytest.approx(11.0)
    assert s["vanilla"]["clean_err_pct_std"] == pytest.approx(2**0.5)  # std of (10, 12), ddof 1
    assert s["vanilla"]["mean_corruption_err_pct"] == pytest.approx(59.0)
    assert s["ipmix"]["seeds"] == 2


@pytest.mark.parametrize(
    ("corrupt", "clean", "met"), [(30.0, 11.5, True), (40.0, 11.0, False), (30.0, 12.5, False)]
)
def test_goal_needs_40_percent_cut_and_clean_within_a_point(corrupt, clean, met) -> None:
    g = _result(corrupt, clean)["goal"]["ipmix"]
    assert g["met"] is met
    assert g["corruption_err_cut_frac"] == pytest.approx(1 - corrupt / 59.0)


def test_readme_section_is_regenerated_between_markers(tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# T\n\n## Robustness\n\n{BEGIN}\nold table\n{END}\n\n## Troubleshooting\n")
    result = _result(30.0, 11.0)
    update_readme(readme, result, "make robustness")
    text = readme.read_text()
    assert "old table" not in text and text.count(BEGIN) == 1 and text.count(END) == 1
    assert text.startswith("# T\n\n## Robustness\n") and text.endswith(
        f"{END}\n\n## Troubleshooting\n"
    )
    assert "| IPMix | 11.0 ± 0.0 | 30.0 ± 0.0 |" in text and "`make robustness`" in text
    assert markdown(result) in text
    update_readme(readme, result, "make robustness")  # idempotent
    assert readme.read_text() == text
    (tmp_path / "bad.md").write_text("no markers\n")
    with pytest.raises(ValueError, match="bad.md: lacks the markers"):
        update_readme(tmp_path / "bad.md", result, "x")


def test_spec_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="methods"):
        Spec(methods=("ipmix",))
    with pytest.raises(ValueError, match="test_per_class"):
        Spec(val_per_class=5, test_per_class=6)
    assert Spec.quick().seeds == (0,) and Spec().seeds == (0, 1)
    with pytest.raises(ValueError, match="crop_scale"):
        Spec(crop_scale=(0.9, 0.5))
    assert Spec(crop_scale=[0.35, 1]).crop_scale == (0.35, 1.0)


def test_finished_runs_are_reused_only_with_the_same_settings() -> None:
    def key(**over):
        return {"method": "ipmix", "seed": 0, "spec": _spec_dict(Spec(**over))}

    # more seeds or fewer methods leave a run as it was; other settings change it
    assert _run_settings(key(seeds=(0, 1, 2))) == _run_settings(key(seeds=(0,)))
    assert _run_settings(key(methods=("vanilla",))) == _run_settings(key())
    assert _run_settings(key(epochs=3)) != _run_settings(key(epochs=4))
    assert _run_settings(key(crop_scale=(0.35, 1))) != _run_settings(key())
    assert _run_settings(key(eval_crop=True)) != _run_settings(key())
    # a key read back from results.json (lists, not tuples) still matches
    assert _run_settings(json.loads(json.dumps(key()))) == _run_settings(key())
    assert _run_settings(None) is None


@pytest.mark.slow
@pytest.mark.ffcv
def test_quick_run_end_to_end(tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN}\n{END}\nrest\n")
    out = tmp_path / "out"
    env = {
        **os.environ,
        "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache" / "test")),
    }
    cmd = [
        sys.executable,
        str(ROOT / "tools" / "robustness_experiment.py"),
        "--quick",
        "--out",
        str(out),
        "--readme",
        str(readme),
        "--no-progress",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert set(result["summary"]) == {"vanilla", "ipmix", "ipmix_jsd", "augmix"}
    for row in result["summary"].values():
        assert 0 <= row["clean_err_pct"] < 90  # learned something (10 classes: chance is 90%)
        assert 0 <= row["mean_corruption_err_pct"] <= 100
    assert result["test_images"] == 100 and len(result["runs"]["vanilla"]) == 1
    assert (out / "robustness.png").stat().st_size > 5000
    assert "| IPMix + JSD |" in (out / "results.md").read_text()
    assert "| vanilla (flip) |" in readme.read_text()
    # every run left a checkpoint that train/evaluate.py can load
    from ipmix_train.evaluate import load_model

    _, info = load_model(out / "runs" / "ipmix-s0")
    assert info["arch"] == "cifar_resnet8" and info["num_classes"] == 10
    assert info["val_crop"] is False  # evaluated whole, as the experiment did
