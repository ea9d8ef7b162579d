"""benchmarks/gpu_proof.py --dry-run: the GPU proof's code runs on the CPU (Triton's
interpreter, a tiny model), so the script cannot rot while no GPU is around."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.gpu_proof_table import BEGIN, END

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_proof_dry_run_writes_a_complete_result(tmp_path):
    out = tmp_path / "proof.json"
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    readme_before = (ROOT / "README.md").read_text()
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_proof.py", "--dry-run", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(out.read_text())
    assert res["dry_run"] is True and res["meta"]["git_sha"]
    steps = res["steps"]
    assert steps["gpu_tests"]["rc"] == 0, steps["gpu_tests"]["tail"]
    assert steps["ipmix_bench"]["rc"] == 0, steps["ipmix_bench"]["tail"]
    train = steps["train"]
    assert set(train["rows"]) == {"one-synthetic", "one-ipmix", "jsd-synthetic", "jsd-ipmix"}
    for row in train["rows"].values():
        assert row["samples/s"] > 0 and row["ms/step"] > 0
    assert 0 < train["ipmix_over_synthetic"]["jsd"] and train["jsd_goal_met"] is None
    assert steps["loaders"] == {"skipped": "no --data given"}
    # the GPU table: printed, written into a temporary copy of the README, never README.md
    assert (ROOT / "README.md").read_text() == readme_before
    copies = list(tmp_path.glob("README-gpu-proof-dry-*.md"))
    assert len(copies) == 1, list(tmp_path.iterdir())
    text = copies[0].read_text()
    section = text.split(BEGIN)[1].split(END)[0]
    assert "DRY RUN" in section and "JSD, synthetic + GPU IPMix" in section
    assert f"{train['rows']['jsd-ipmix']['samples/s']} |" in section
    assert section.strip() in proc.stdout
    assert text.split(BEGIN)[0] == readme_before.split(BEGIN)[0]  # nothing else changed
    assert text.split(END)[1] == readme_before.split(END)[1]


def test_dry_run_refuses_to_write_the_readme():
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_proof.py", "--dry-run", "--readme", "README.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "never writes the project's README" in proc.stderr


def test_a_bad_readme_is_refused_before_the_proof_runs(tmp_path):
    no_markers = tmp_path / "NOTES.md"
    no_markers.write_text("no markers here\n")
    for readme, why in ((tmp_path / "missing.md", "No such file"), (no_markers, "needs exactly")):
        proc = subprocess.run(
            [sys.executable, "benchmarks/gpu_proof.py", "--dry-run", "--readme", str(readme)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2 and f"--readme {readme}" in proc.stderr, proc.stderr
        assert why in proc.stderr and "gpu_proof: " not in proc.stdout  # nothing ran


def test_readme_table_needs_its_markers(tmp_path):
    from benchmarks.gpu_proof_table import write_readme_table

    bad = tmp_path / "README.md"
    bad.write_text("no markers here\n")
    with pytest.raises(ValueError, match="README.md"):
        write_readme_table(bad, "| x |")
    assert BEGIN in (ROOT / "README.md").read_text()
