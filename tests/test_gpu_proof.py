"""benchmarks/gpu_proof.py --dry-run: the GPU proof's code runs on the CPU (Triton's
interpreter, a tiny model), so the script cannot rot while no GPU is around."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_proof_dry_run_writes_a_complete_result(tmp_path):
    out = tmp_path / "proof.json"
    env = {**os.environ, "TRITON_INTERPRET": "1"}
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
